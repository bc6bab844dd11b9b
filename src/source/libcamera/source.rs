//! A libcamera camera as a [`FrameSource`]: the capture thread takes each completed
//! request, encodes its buffer to JPEG straight from the mapping, stamps the frame with
//! the sensor's timestamp and hands the request back to be queued again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use libcamera::{
    controls::SensorTimestamp,
    framebuffer::AsFrameBuffer,
    request::{Request, RequestStatus, ReuseFlag},
};

use super::service::{commands, Cmd, Mapped, Opened, Want};
use super::{boottime_now, sensor_time, LibcameraError};
use crate::clock::Clocks;
use crate::frame::FrameMeta;
use crate::source::v4l2::encode::RawEncoder;
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
    disconnected: Arc<std::sync::atomic::AtomicBool>,
    stream: libcamera::stream::Stream,
    encoder: RawEncoder,
    clocks: Arc<dyn Clocks>,
    last_frame: Instant,
    silence: Duration,
    logged_clock: bool,
    test_delay_ms: u64,
    /// Test hook (`TEST_STALL`): frames after which requests are kept, not queued again.
    stall_after: Option<u64>,
    stalled: Vec<Request>,
    frames_seen: u64,
}

/// Opens the camera (`device`: index, libcamera id or model; default the first).
pub fn open(
    cam: &crate::config::CameraConfig,
    clocks: Arc<dyn Clocks>,
) -> Result<Box<dyn FrameSource>, LibcameraError> {
    let (w, h, fps) = (cam.resolution.width.0, cam.resolution.height.0, cam.fps.0);
    let (reply, rx) = bounded(1);
    let gone = || LibcameraError::Manager("the libcamera thread ended".into());
    commands()
        .send(Cmd::Open {
            want: Want {
                device: cam.device.clone(),
                width: w,
                height: h,
                fps,
            },
            reply,
        })
        .map_err(|_| gone())?;
    let opened: Opened = rx.recv().map_err(|_| gone())??;
    let encoder = match RawEncoder::new(opened.pixel, w, h, opened.stride, cam.quality.0) {
        Ok(e) => e,
        Err(e) => {
            let _ = commands().send(Cmd::Close { key: opened.key });
            return Err(LibcameraError::failed(&opened.model, e.to_string()));
        }
    };
    let format = match opened.pixel {
        crate::source::v4l2::negotiate::Pixel::Nv12 => "NV12",
        _ => "YUV420",
    };
    Ok(Box::new(LibcameraSource {
        info: SourceInfo {
            kind: crate::config::SourceKind::Libcamera,
            model: format!("{}, {format} encoded to JPEG", opened.model),
            width: w,
            height: h,
            fps,
            codec: crate::config::Codec::Mjpg,
            encodes: true,
        },
        key: opened.key,
        started: false,
        frames: Some(opened.frames),
        disconnected: opened.disconnected,
        stream: opened.stream,
        encoder,
        clocks,
        last_frame: Instant::now(),
        silence: SILENCE.max(Duration::from_secs_f64(10.0 / fps)),
        logged_clock: false,
        test_delay_ms: std::env::var(TEST_DELAY)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        stall_after: std::env::var(TEST_STALL)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|_| !STALLED_ONCE.swap(true, Ordering::Relaxed)),
        stalled: Vec::new(),
        frames_seen: 0,
    }))
}

impl Drop for LibcameraSource {
    fn drop(&mut self) {
        // Requests held here go first, while the camera's buffers still exist.
        self.frames = None;
        self.stalled.clear();
        let _ = commands().send(Cmd::Close { key: self.key });
    }
}

impl LibcameraSource {
    fn requeue(&mut self, mut req: Request) {
        if self.stall_after.is_some_and(|n| self.frames_seen > n) {
            self.stalled.push(req);
            return;
        }
        req.reuse(ReuseFlag::REUSE_BUFFERS);
        let _ = commands().send(Cmd::Requeue { key: self.key, req });
    }

    fn model(&self) -> &str {
        &self.info.model
    }
}

impl FrameSource for LibcameraSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Encoded into `scratch` from the buffer libcamera filled.
    fn next_frame_ref<'a>(
        &'a mut self,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError> {
        let meta = self.encode_next(scratch)?;
        Ok((meta, scratch.as_slice()))
    }
}

impl LibcameraSource {
    /// Waits for libcamera's next completed request and encodes it into `jpeg`.
    fn encode_next(&mut self, jpeg: &mut Vec<u8>) -> Result<FrameMeta, SourceError> {
        if !self.started {
            self.started = true;
            self.last_frame = Instant::now();
            let _ = commands().send(Cmd::Start { key: self.key });
        }
        let req = {
            let frames = self.frames.as_ref().expect("open until dropped");
            match frames.recv_timeout(crate::source::stream::POLL) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    if self.disconnected.load(Ordering::Relaxed) {
                        return Err(SourceError::Lost(format!(
                            "{}: libcamera says the camera was disconnected",
                            self.model()
                        )));
                    }
                    if self.last_frame.elapsed() > self.silence {
                        return Err(SourceError::Lost(format!(
                            "{}: no frame for {} s",
                            self.model(),
                            self.silence.as_secs()
                        )));
                    }
                    return Err(SourceError::Idle);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SourceError::Lost("the libcamera thread ended".into()))
                }
            }
        };
        if req.status() != RequestStatus::Complete {
            // Cancelled when the camera was stopped after its first frame: queued again.
            self.requeue(req);
            return Err(SourceError::Idle);
        }
        self.frames_seen += 1;
        let ts = req.metadata().get::<SensorTimestamp>().map(|t| t.0);
        let Some(fb) = req.buffer::<Mapped>(&self.stream) else {
            self.requeue(req);
            return Err(SourceError::Lost(format!(
                "{}: a completed request without its buffer",
                self.model()
            )));
        };
        let seq = fb.metadata().map(|m| m.sequence());
        let encoded = self.encoder.encode_planes(&fb.data(), jpeg);
        if self.test_delay_ms > 0 {
            let ms = self.frames_seen * 7 % (self.test_delay_ms + 1);
            std::thread::sleep(Duration::from_millis(ms));
        }
        let now = self.clocks.now();
        self.requeue(req);
        self.last_frame = Instant::now();
        let capture = match ts {
            Ok(ts) => {
                let (t, clock) = sensor_time(ts, now.lsl.as_nanos(), boottime_now());
                if !self.logged_clock {
                    self.logged_clock = true;
                    tracing::info!("{}: sensor timestamps are on {clock:?}", self.info.model);
                }
                t
            }
            Err(_) => now.lsl,
        };
        if let Err(e) = encoded {
            return Err(SourceError::Lost(format!("{}: {e}", self.model())));
        }
        let Some(seq) = seq else {
            return Err(SourceError::Lost(format!(
                "{}: a frame without its metadata",
                self.model()
            )));
        };
        Ok(FrameMeta {
            seq: u64::from(seq),
            capture,
            wall: now.wall_at(capture),
            width: self.info.width as u16,
            height: self.info.height as u16,
            keyframe: true,
        })
    }
}
