//! A libcamera camera as a [`FrameSource`]: the capture thread takes each completed
//! request, encodes its buffer to JPEG straight from the mapping, stamps the frame with
//! the sensor's timestamp and hands the request back to be queued again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use libcamera::{
    controls::{AnalogueGain, DigitalGain, ExposureTime, SensorTimestamp},
    framebuffer::AsFrameBuffer,
    request::{Request, RequestStatus, ReuseFlag},
};

use super::service::{commands, stop, Cmd, Mapped, Opened, Want};
use super::{boottime_now, sensor_time, LibcameraError};
use crate::clock::{Clocks, ThreadCpuClock};
use crate::frame::exif::Exposure;
use crate::frame::FrameMeta;
use crate::source::v4l2::encode::{auto_threads, noise_frame_cost, RawEncoder, AUTO_SHARE};
use crate::source::{FrameSource, SourceError, SourceInfo};

/// A camera that delivers nothing for this long (and at least 10 frame periods) is lost.
const SILENCE: Duration = Duration::from_secs(5);

/// For tests only: `HINDSIGHT_TEST_LIBCAMERA_DELAY_MS=N` holds each frame for 0 to N ms
/// (varying) after it arrives and before it is stamped, as a busy capture thread would.
/// The recorded times must not move: they are the sensor's, not the arrival's.
const TEST_DELAY: &str = "HINDSIGHT_TEST_LIBCAMERA_DELAY_MS";

/// For tests only: `HINDSIGHT_TEST_LIBCAMERA_STALL_AFTER=N`: the first camera opened in
/// the process stops handing its buffers back after N frames, so that it delivers
/// nothing (as a camera whose cable came loose) until it is found lost and opened again.
const TEST_STALL: &str = "HINDSIGHT_TEST_LIBCAMERA_STALL_AFTER";
static STALLED_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub struct LibcameraSource {
    info: SourceInfo,
    key: u64,
    started: bool,
    frames: Option<Receiver<Request>>,
    disconnected: Arc<AtomicBool>,
    /// Encoding on this thread (`encoders: 1`), or on a pool of threads that take frames
    /// in turn.
    encoding: Option<Encoding>,
    pool: Option<Pool>,
    last_frame: Instant,
    silence: Duration,
    /// Test hook (`TEST_STALL`): frames after which requests are kept, not queued again.
    stall_after: Option<u64>,
    stalled: Vec<Request>,
    frames_seen: u64,
}

/// What turning one completed request into a frame needs: the capture thread's own, and
/// one per encoding thread.
struct Encoding {
    stream: libcamera::stream::Stream,
    encoder: RawEncoder,
    width: u16,
    height: u16,
    clocks: Arc<dyn Clocks>,
    model: String,
    test_delay_ms: u64,
    logged_clock: Arc<AtomicBool>,
    /// The Exif block with the frame's exposure, put in its JPEG (reused).
    exif: Vec<u8>,
}

/// Encoding threads (`encoders` > 1). Frame n goes to thread n mod N and its result is
/// taken from that thread's channel in the same turn, so frames come out in order with
/// no sorting; at most N are in flight (one each).
struct Pool {
    jobs: Vec<Sender<Job>>,
    done: Vec<Receiver<Done>>,
    /// Frames handed out and taken back.
    sent: u64,
    taken: u64,
    /// JPEG buffers to hand out with the next requests (the one the capture thread's
    /// caller has finished with comes back here).
    spare: Vec<Vec<u8>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    cpu: Vec<ThreadCpuClock>,
}

struct Job {
    req: Request,
    n: u64,
    jpeg: Vec<u8>,
}

struct Done {
    frame: Result<FrameMeta, SourceError>,
    jpeg: Vec<u8>,
}

/// Opens the camera (`device`: index, libcamera id or model; default the first).
pub fn open(
    cam: &crate::config::CameraConfig,
    clocks: Arc<dyn Clocks>,
) -> Result<Box<dyn FrameSource>, LibcameraError> {
    let (w, h, fps) = (cam.resolution.width.0, cam.resolution.height.0, cam.fps.0);
    let threads = match cam.encoders.threads() {
        Some(n) => u32::from(n).max(1),
        None => auto_encoders(cam),
    };
    let (reply, rx) = bounded(1);
    let gone = || LibcameraError::Manager("the libcamera thread ended".into());
    commands()
        .send(Cmd::Open {
            want: Want {
                device: cam.device.clone(),
                width: w,
                height: h,
                fps,
                // Each encoding thread holds one buffer while it encodes.
                extra_buffers: threads - 1,
                controls: cam.controls.clone(),
            },
            reply,
        })
        .map_err(|_| gone())?;
    let opened: Opened = rx.recv().map_err(|_| gone())??;
    let encoder = |_| RawEncoder::new(opened.pixel, w, h, opened.stride, cam.quality.0);
    let encoders = match (0..threads).map(encoder).collect::<Result<Vec<_>, _>>() {
        Ok(e) => e,
        Err(e) => {
            stop(opened.key, true);
            return Err(LibcameraError::failed(&opened.model, e.to_string()));
        }
    };
    let format = match opened.pixel {
        crate::source::v4l2::negotiate::Pixel::Nv12 => "NV12",
        _ => "YUV420",
    };
    let on = if threads > 1 {
        format!(" on {threads} threads")
    } else {
        String::new()
    };
    let model = format!("{}, {format} encoded to JPEG{on}", opened.model);
    let test_delay_ms = std::env::var(TEST_DELAY)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let logged_clock = Arc::new(AtomicBool::new(false));
    let mut encodings: Vec<Encoding> = encoders
        .into_iter()
        .map(|encoder| Encoding {
            stream: opened.stream,
            encoder,
            width: w as u16,
            height: h as u16,
            clocks: clocks.clone(),
            model: model.clone(),
            test_delay_ms,
            logged_clock: logged_clock.clone(),
            exif: Vec::with_capacity(128),
        })
        .collect();
    let (encoding, pool) = if threads > 1 {
        match Pool::start(opened.key, encodings) {
            Ok(pool) => (None, Some(pool)),
            Err(e) => {
                stop(opened.key, true);
                return Err(LibcameraError::failed(
                    &opened.model,
                    format!("cannot start its encoding threads: {e}"),
                ));
            }
        }
    } else {
        (encodings.pop(), None)
    };
    Ok(Box::new(LibcameraSource {
        info: SourceInfo {
            kind: crate::config::SourceKind::Libcamera,
            model,
            width: w,
            height: h,
            fps,
            codec: crate::config::Codec::Mjpg,
            encodes: true,
            controls: opened.controls.clone(),
            controls_off: opened.controls_off.clone(),
        },
        key: opened.key,
        started: false,
        frames: Some(opened.frames),
        disconnected: opened.disconnected,
        encoding,
        pool,
        last_frame: Instant::now(),
        silence: SILENCE.max(Duration::from_secs_f64(10.0 / fps)),
        stall_after: std::env::var(TEST_STALL)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|_| !STALLED_ONCE.swap(true, Ordering::Relaxed)),
        stalled: Vec::new(),
        frames_seen: 0,
    }))
}

/// The threads `encoders: auto` gives camera `cam` here, measured now and said in the
/// log (1 if this thread cannot measure: the encoder's own error follows).
fn auto_encoders(cam: &crate::config::CameraConfig) -> u32 {
    let (w, h, fps, q) = (
        cam.resolution.width.0,
        cam.resolution.height.0,
        cam.fps.0,
        cam.quality.0,
    );
    let Ok(cost) = noise_frame_cost(w, h, q) else {
        return 1;
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = auto_threads(cost, fps, cores);
    let need = cost.as_secs_f64() * fps;
    let said = format!(
        "encoders auto: {threads} thread{}: a frame of noise (the dearest kind) at {w}x{h}, \
         quality {q} takes {:.2} ms of CPU here, {:.0}% of a core at {fps} fps",
        if threads == 1 { "" } else { "s" },
        cost.as_secs_f64() * 1e3,
        need * 100.0
    );
    if need / f64::from(threads) > AUTO_SHARE {
        tracing::warn!(
            camera = %cam.name,
            "{said}, more than {:.0}% on each of the {threads} this machine has: a detailed \
             or noisy scene may lose frames; lower fps, resolution or quality",
            AUTO_SHARE * 100.0
        );
    } else {
        tracing::info!(camera = %cam.name, "{said}");
    }
    threads
}

impl Drop for LibcameraSource {
    fn drop(&mut self) {
        // The encoding threads end first, each request they hold queued again (or, not
        // yet begun, dropped). Then the camera stops, which hands back every queued
        // request into `frames`: a request dropped while libcamera still works on it
        // (one completed into a closed channel) crashed the process. The requests are
        // dropped while the camera's buffers still exist; then it is freed.
        if let Some(pool) = self.pool.take() {
            pool.stop();
        }
        stop(self.key, false);
        self.frames = None;
        self.stalled.clear();
        stop(self.key, true);
    }
}

/// Hands `req` back to libcamera to be filled again.
fn requeue(key: u64, mut req: Request) {
    req.reuse(ReuseFlag::REUSE_BUFFERS);
    let _ = commands().send(Cmd::Requeue { key, req });
}

impl LibcameraSource {
    fn requeue(&mut self, req: Request) {
        if self.stall_after.is_some_and(|n| self.frames_seen > n) {
            self.stalled.push(req);
            return;
        }
        requeue(self.key, req);
    }

    fn model(&self) -> &str {
        &self.info.model
    }

    /// Waits up to [`crate::source::stream::POLL`] for libcamera's next completed request:
    /// `Idle` when none came, `Lost` when the camera is gone or has been silent too long.
    fn next_request(&mut self) -> Result<Request, SourceError> {
        if !self.started {
            self.started = true;
            self.last_frame = Instant::now();
            let _ = commands().send(Cmd::Start { key: self.key });
        }
        let frames = self.frames.as_ref().expect("open until dropped");
        match frames.recv_timeout(crate::source::stream::POLL) {
            Ok(r) => Ok(r),
            Err(RecvTimeoutError::Timeout) => Err(self.quiet()),
            Err(RecvTimeoutError::Disconnected) => {
                Err(SourceError::Lost("the libcamera thread ended".into()))
            }
        }
    }

    /// Why no request came: the camera is gone, silent too long, or not yet due.
    fn quiet(&self) -> SourceError {
        if self.disconnected.load(Ordering::Relaxed) {
            return SourceError::Lost(format!(
                "{}: libcamera says the camera was disconnected",
                self.model()
            ));
        }
        if self.last_frame.elapsed() > self.silence {
            return SourceError::Lost(format!(
                "{}: no frame for {} s",
                self.model(),
                self.silence.as_secs()
            ));
        }
        SourceError::Idle
    }

    /// Encodes the next frame on this thread.
    fn encode_next(&mut self, jpeg: &mut Vec<u8>) -> Result<FrameMeta, SourceError> {
        let req = self.next_request()?;
        if req.status() != RequestStatus::Complete {
            // Cancelled when the camera was stopped after its first frame: queued again.
            self.requeue(req);
            return Err(SourceError::Idle);
        }
        self.frames_seen += 1;
        let encoding = self.encoding.as_mut().expect("encoders: 1 encodes here");
        let frame = encoding.frame(&req, self.frames_seen, jpeg);
        self.requeue(req);
        self.last_frame = Instant::now();
        frame
    }

    /// The next frame from the encoding threads, in order: requests are handed out as
    /// they come while a thread is free, and the oldest one's frame is waited for.
    fn pooled_next(&mut self, jpeg: &mut Vec<u8>) -> Result<FrameMeta, SourceError> {
        let pool = self.pool.as_mut().expect("pooled");
        let threads = pool.jobs.len() as u64;
        let frames = self.frames.as_ref().expect("open until dropped").clone();
        loop {
            let pool = self.pool.as_mut().expect("pooled");
            if pool.sent == pool.taken {
                let req = self.next_request()?;
                self.hand_out(req)?;
                continue;
            }
            let free = pool.sent - pool.taken < threads;
            let oldest = pool.done[(pool.taken % threads) as usize].clone();
            let none = crossbeam_channel::never();
            crossbeam_channel::select! {
                recv(oldest) -> done => {
                    let pool = self.pool.as_mut().expect("pooled");
                    pool.taken += 1;
                    let Ok(done) = done else {
                        return Err(SourceError::Lost(format!("{}: an encoding thread ended", self.model())));
                    };
                    pool.spare.push(std::mem::replace(jpeg, done.jpeg));
                    if done.frame.is_ok() {
                        self.last_frame = Instant::now();
                    }
                    return done.frame;
                }
                recv(if free { &frames } else { &none }) -> req => match req {
                    Ok(req) => self.hand_out(req)?,
                    Err(_) => return Err(SourceError::Lost("the libcamera thread ended".into())),
                },
            }
        }
    }

    /// Gives a completed request to the next encoding thread in turn.
    fn hand_out(&mut self, req: Request) -> Result<(), SourceError> {
        if self.stall_after.is_some_and(|n| self.frames_seen >= n) {
            self.stalled.push(req);
            return Ok(());
        }
        self.frames_seen += 1;
        let n = self.frames_seen;
        let pool = self.pool.as_mut().expect("pooled");
        let threads = pool.jobs.len() as u64;
        let job = Job {
            req,
            n,
            jpeg: pool.spare.pop().unwrap_or_default(),
        };
        pool.jobs[(pool.sent % threads) as usize]
            .send(job)
            .map_err(|_| SourceError::Lost("an encoding thread ended".into()))?;
        pool.sent += 1;
        Ok(())
    }
}

impl Pool {
    fn start(key: u64, encodings: Vec<Encoding>) -> std::io::Result<Pool> {
        let (clock_tx, clock_rx) = crossbeam_channel::unbounded();
        let mut pool = Pool {
            jobs: Vec::new(),
            done: Vec::new(),
            sent: 0,
            taken: 0,
            spare: Vec::new(),
            threads: Vec::new(),
            cpu: Vec::new(),
        };
        for mut enc in encodings {
            let (job_tx, jobs) = bounded::<Job>(1);
            let (done, done_rx) = bounded::<Done>(1);
            let clock_tx = clock_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("encode".into())
                .spawn(move || {
                    if let Some(c) = ThreadCpuClock::of_this_thread() {
                        let _ = clock_tx.send(c);
                    }
                    drop(clock_tx);
                    for Job { req, n, mut jpeg } in jobs {
                        let frame = if req.status() == RequestStatus::Complete {
                            enc.frame(&req, n, &mut jpeg)
                        } else {
                            Err(SourceError::Idle)
                        };
                        requeue(key, req);
                        if done.send(Done { frame, jpeg }).is_err() {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(t) => {
                    pool.jobs.push(job_tx);
                    pool.done.push(done_rx);
                    pool.threads.push(t);
                }
                Err(e) => {
                    pool.stop();
                    return Err(e);
                }
            }
        }
        drop(clock_tx);
        pool.cpu = clock_rx.iter().collect();
        Ok(pool)
    }

    /// Ends the threads once each has handed back the request it holds.
    fn stop(self) {
        drop(self.jobs);
        drop(self.done);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Encoding {
    /// Encodes `req`'s buffer into `jpeg`, with what the frame was exposed with in an
    /// Exif block (`frame::exif`), and stamps it with the sensor's time. `n` counts the
    /// frames seen (for the test delay).
    fn frame(
        &mut self,
        req: &Request,
        n: u64,
        jpeg: &mut Vec<u8>,
    ) -> Result<FrameMeta, SourceError> {
        let metadata = req.metadata();
        let ts = metadata.get::<SensorTimestamp>().map(|t| t.0);
        let exposure = Exposure {
            time_us: metadata
                .get::<ExposureTime>()
                .ok()
                .and_then(|t| u32::try_from(t.0).ok()),
            analogue_gain: metadata.get::<AnalogueGain>().ok().map(|g| g.0),
            digital_gain: metadata.get::<DigitalGain>().ok().map(|g| g.0),
        };
        self.exif.clear();
        exposure.write_app1(&mut self.exif);
        let Some(fb) = req.buffer::<Mapped>(&self.stream) else {
            return Err(SourceError::Lost(format!(
                "{}: a completed request without its buffer",
                self.model
            )));
        };
        let seq = fb.metadata().map(|m| m.sequence());
        let encoded = self.encoder.encode_planes(&fb.data(), &self.exif, jpeg);
        if self.test_delay_ms > 0 {
            let ms = n * 7 % (self.test_delay_ms + 1);
            std::thread::sleep(Duration::from_millis(ms));
        }
        let now = self.clocks.now();
        let capture = match ts {
            Ok(ts) => {
                let (t, clock) = sensor_time(ts, now.lsl.as_nanos(), boottime_now());
                if !self.logged_clock.swap(true, Ordering::Relaxed) {
                    tracing::info!("{}: sensor timestamps are on {clock:?}", self.model);
                }
                t
            }
            Err(_) => now.lsl,
        };
        if let Err(e) = encoded {
            return Err(SourceError::Lost(format!("{}: {e}", self.model)));
        }
        let Some(seq) = seq else {
            return Err(SourceError::Lost(format!(
                "{}: a frame without its metadata",
                self.model
            )));
        };
        let (width, height) = (self.width, self.height);
        Ok(FrameMeta {
            seq: u64::from(seq),
            capture,
            wall: now.wall_at(capture),
            width,
            height,
            keyframe: true,
        })
    }
}

impl FrameSource for LibcameraSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Encoded into `scratch` from the buffer libcamera filled (by this thread, or by an
    /// encoding thread whose buffer is swapped in).
    fn next_frame_ref<'a>(
        &'a mut self,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError> {
        let meta = if self.pool.is_some() {
            self.pooled_next(scratch)?
        } else {
            self.encode_next(scratch)?
        };
        Ok((meta, scratch.as_slice()))
    }

    fn helper_cpu_clocks(&self) -> Vec<ThreadCpuClock> {
        self.pool
            .as_ref()
            .map(|p| p.cpu.clone())
            .unwrap_or_default()
    }
}
