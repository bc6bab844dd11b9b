//! `libcamera`: Raspberry Pi cameras (cargo feature `libcamera`, off by default: the
//! `libcamera` crate needs libcamera ≥ 0.4, which Raspberry Pi OS has and Debian 12 does
//! not).
//!
//! The camera runs on a thread of its own (libcamera's objects live there), asking for
//! planar YUV 4:2:0 at the configured size and a fixed frame duration, encoding each
//! frame with libjpeg-turbo and handing it to the capture thread through a bounded
//! queue. A frame's capture time is libcamera's `SensorTimestamp` (start of exposure of
//! the first line). libcamera documents it as CLOCK_BOOTTIME, while the Raspberry Pi
//! pipeline passes on the V4L2 buffer time, which is CLOCK_MONOTONIC: the two differ by
//! the time the machine was suspended. [`sensor_time`] decides per frame which clock a
//! timestamp is on and maps it onto the LSL clock (CLOCK_MONOTONIC); it is plain code,
//! tested without a camera, and compiled with or without the feature.

use crate::clock::LslTime;

/// CLOCK_BOOTTIME now, ns.
pub fn boottime_now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Which clock a sensor timestamp was taken on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SensorClock {
    Monotonic,
    Boottime,
    /// The machine never suspended: both clocks agree (to 1 ms).
    Same,
}

/// Maps a sensor timestamp (`ts`, ns) onto the LSL clock, given both clocks read just
/// after the frame arrived. A timestamp cannot be in the future: one later than
/// CLOCK_MONOTONIC now must be on CLOCK_BOOTTIME, and is shifted by the time suspended.
pub fn sensor_time(ts: i64, mono_now: i64, boot_now: i64) -> (LslTime, SensorClock) {
    let suspended = boot_now - mono_now;
    if suspended < 1_000_000 {
        return (LslTime::from_nanos(ts), SensorClock::Same);
    }
    if ts > mono_now + 1_000_000 {
        (LslTime::from_nanos(ts - suspended), SensorClock::Boottime)
    } else {
        (LslTime::from_nanos(ts), SensorClock::Monotonic)
    }
}

#[cfg(feature = "libcamera")]
pub use imp::open;

#[cfg(feature = "libcamera")]
mod imp {
    use std::sync::Arc;
    use std::time::Duration;

    use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
    use libcamera::{
        camera::CameraConfigurationStatus,
        camera_manager::CameraManager,
        control::ControlList,
        controls::{FrameDurationLimits, SensorTimestamp},
        framebuffer::AsFrameBuffer,
        framebuffer_allocator::{FrameBuffer, FrameBufferAllocator},
        framebuffer_map::MemoryMappedFrameBuffer,
        geometry::Size,
        pixel_format::PixelFormat,
        properties,
        request::ReuseFlag,
        stream::StreamRole,
    };

    use super::{boottime_now, sensor_time};
    use crate::clock::Clocks;
    use crate::frame::FrameMeta;
    use crate::source::v4l2::encode::RawEncoder;
    use crate::source::v4l2::negotiate::Pixel;
    use crate::source::{FrameSource, SourceError, SourceInfo};

    /// DRM fourcc of planar YUV 4:2:0 ("YU12").
    const YUV420: PixelFormat = PixelFormat::new(u32::from_le_bytes(*b"YU12"), 0);

    type Item = Result<(FrameMeta, Vec<u8>), LibcameraError>;

    /// Why the camera could not start or stopped delivering, naming the camera (its
    /// model, or `libcamera` before one is found) and what libcamera said.
    #[derive(Debug, Clone, thiserror::Error)]
    #[error("{camera}: {problem}")]
    pub struct LibcameraError {
        pub camera: String,
        pub problem: String,
    }

    impl LibcameraError {
        fn new(camera: &str, problem: String) -> Self {
            LibcameraError {
                camera: camera.to_string(),
                problem,
            }
        }
    }

    pub struct LibcameraSource {
        info: SourceInfo,
        rx: Receiver<Item>,
        stop: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Drop for LibcameraSource {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl FrameSource for LibcameraSource {
        fn info(&self) -> &SourceInfo {
            &self.info
        }

        fn next_frame(&mut self, jpeg: &mut Vec<u8>) -> Result<FrameMeta, SourceError> {
            match self.rx.recv_timeout(crate::source::stream::POLL) {
                Ok(Ok((meta, data))) => {
                    jpeg.clear();
                    jpeg.extend_from_slice(&data);
                    Ok(meta)
                }
                Ok(Err(e)) => Err(SourceError::Lost(e.to_string())),
                Err(RecvTimeoutError::Timeout) => Err(SourceError::Idle),
                Err(RecvTimeoutError::Disconnected) => {
                    Err(SourceError::Lost("the libcamera thread ended".into()))
                }
            }
        }
    }

    /// Opens the camera (`device`: index or libcamera id; default the first) on its thread.
    pub fn open(
        cam: &crate::config::CameraConfig,
        clocks: Arc<dyn Clocks>,
    ) -> Result<Box<dyn FrameSource>, LibcameraError> {
        let (w, h, fps, quality) = (
            cam.resolution.width.0,
            cam.resolution.height.0,
            cam.fps.0,
            cam.quality.0,
        );
        let device = cam.device.clone();
        let (tx, rx) = bounded::<Item>(8);
        let (ready_tx, ready_rx) = bounded::<Result<String, LibcameraError>>(1);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::Builder::new()
            .name(format!("libcamera-{}", cam.name))
            .spawn(move || {
                let _span = tracing::info_span!("libcamera").entered();
                if let Err(e) = run(device, w, h, fps, quality, clocks, &tx, &ready_tx, &stop2) {
                    let _ = ready_tx.try_send(Err(e.clone()));
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| {
                LibcameraError::new("libcamera", format!("cannot start its thread: {e}"))
            })?;
        let model = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| {
                LibcameraError::new(
                    "libcamera",
                    "did not start the camera within 10 s".to_string(),
                )
            })??;
        Ok(Box::new(LibcameraSource {
            info: SourceInfo {
                kind: crate::config::SourceKind::Libcamera,
                model,
                width: w,
                height: h,
                fps,
                codec: crate::config::Codec::Mjpg,
            },
            rx,
            stop,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        device: Option<String>,
        w: u32,
        h: u32,
        fps: f64,
        quality: u8,
        clocks: Arc<dyn Clocks>,
        tx: &crossbeam_channel::Sender<Item>,
        ready: &crossbeam_channel::Sender<Result<String, LibcameraError>>,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<(), LibcameraError> {
        let mgr =
            CameraManager::new().map_err(|e| LibcameraError::new("libcamera", format!("{e}")))?;
        let cameras = mgr.cameras();
        let cam = match device.as_deref() {
            None => cameras.get(0),
            Some(d) => match d.parse::<usize>() {
                Ok(i) => cameras.get(i),
                Err(_) => mgr.get(d),
            },
        }
        .ok_or_else(|| {
            LibcameraError::new(
                "libcamera",
                format!("no camera {}", device.as_deref().unwrap_or("0")),
            )
        })?;
        let model = cam
            .properties()
            .get::<properties::Model>()
            .map(|m| (*m).clone())
            .unwrap_or_else(|_| cam.id().to_string());
        let mut cam = cam.acquire().map_err(|e| {
            LibcameraError::new(
                &model,
                format!("cannot acquire the camera (is another program using it?): {e}"),
            )
        })?;
        let mut cfgs = cam
            .generate_configuration(&[StreamRole::VideoRecording])
            .ok_or_else(|| LibcameraError::new(&model, "no video configuration".to_string()))?;
        {
            let mut c = cfgs.get_mut(0).expect("one stream");
            c.set_pixel_format(YUV420);
            c.set_size(Size {
                width: w,
                height: h,
            });
            c.set_buffer_count(6);
        }
        if let CameraConfigurationStatus::Invalid = cfgs.validate() {
            return Err(LibcameraError::new(
                &model,
                format!("{w}x{h} YUV420 is not possible"),
            ));
        }
        let (size, stride, format) = {
            let c = cfgs.get(0).expect("one stream");
            (c.get_size(), c.get_stride(), c.get_pixel_format())
        };
        if size.width != w || size.height != h || format != YUV420 {
            return Err(format!(
                "{model}: asked for {w}x{h} YUV420, libcamera would give {}x{} {format:?}; refusing",
                size.width, size.height
            ));
        }
        cam.configure(&mut cfgs)
            .map_err(|e| LibcameraError::new(&model, format!("configure: {e}")))?;
        let mut alloc = FrameBufferAllocator::new(&cam);
        let stream = cfgs
            .get(0)
            .expect("one stream")
            .stream()
            .expect("configured");
        let buffers = alloc
            .alloc(&stream)
            .map_err(|e| LibcameraError::new(&model, format!("buffers: {e}")))?;
        let mut reqs = Vec::new();
        for (i, buf) in buffers.into_iter().enumerate() {
            let buf = MemoryMappedFrameBuffer::new(buf)
                .map_err(|e| LibcameraError::new(&model, format!("mmap: {e}")))?;
            let mut req = cam.create_request(Some(i as u64)).ok_or_else(|| {
                LibcameraError::new(&model, "cannot create a request".to_string())
            })?;
            req.add_buffer(&stream, buf)
                .map_err(|e| LibcameraError::new(&model, format!("{e}")))?;
            reqs.push(req);
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        cam.on_request_completed(move |req| {
            let _ = done_tx.send(req);
        });
        // A fixed frame duration: the frame rate asked for, exactly.
        let frame_us = (1e6 / fps).round() as i64;
        let mut controls = ControlList::new();
        controls
            .set(FrameDurationLimits([frame_us, frame_us]))
            .map_err(|e| LibcameraError::new(&model, format!("frame duration: {e}")))?;
        cam.start(Some(&*controls))
            .map_err(|e| LibcameraError::new(&model, format!("start: {e}")))?;
        for req in reqs {
            cam.queue_request(req)
                .map_err(|(_, e)| LibcameraError::new(&model, format!("queue: {e}")))?;
        }
        let mut encoder = RawEncoder::new(Pixel::Yuv420, w, h, stride, quality)
            .map_err(|e| LibcameraError::new(&model, format!("{e}")))?;
        let _ = ready.send(Ok(format!("{model} ({w}x{h} YUV420 @ {fps} fps, encoded)")));
        let mut logged_clock = false;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let mut req = match done_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(r) => r,
                Err(_) => return Err(LibcameraError::new(&model, "no frame for 5 s".to_string())),
            };
            let ts = req.metadata().get::<SensorTimestamp>().map(|t| t.0);
            let fb: &MemoryMappedFrameBuffer<FrameBuffer> = req
                .buffer(&stream)
                .ok_or_else(|| LibcameraError::new(&model, "request without buffer".to_string()))?;
            let seq = fb.metadata().map(|m| m.sequence()).unwrap_or(0);
            let planes = fb.data();
            let raw: Vec<u8> = planes.concat();
            let mut jpeg = Vec::new();
            let encoded = encoder.encode(&raw, &mut jpeg);
            let now = clocks.now();
            let capture = match ts {
                Ok(ts) => {
                    let (t, clock) = sensor_time(ts, now.lsl.as_nanos(), boottime_now());
                    if !logged_clock {
                        logged_clock = true;
                        tracing::info!("{model}: sensor timestamps are on {clock:?}");
                    }
                    t
                }
                Err(_) => now.lsl,
            };
            req.reuse(ReuseFlag::REUSE_BUFFERS);
            cam.queue_request(req)
                .map_err(|(_, e)| LibcameraError::new(&model, format!("queue: {e}")))?;
            match encoded {
                Ok(()) => {
                    let meta = FrameMeta {
                        seq: u64::from(seq),
                        capture,
                        wall: now.wall_at(capture),
                        width: w as u16,
                        height: h as u16,
                        keyframe: true,
                    };
                    if tx.try_send(Ok((meta, jpeg))).is_err() {
                        tracing::warn!(
                            "{model}: the capture thread is behind; a frame was dropped"
                        );
                    }
                }
                Err(e) => tracing::warn!("{model}: {e}"),
            }
        }
        let _ = cam.stop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_timestamps_from_either_clock_land_on_the_lsl_clock() {
        let mono = 5_000_000_000_000; // 5000 s since boot, awake
                                      // Never suspended: the clocks agree; the timestamp is taken as it is.
        assert_eq!(
            sensor_time(mono - 3_000_000, mono, mono + 20_000),
            (LslTime::from_nanos(mono - 3_000_000), SensorClock::Same)
        );
        // Suspended for 600 s: a BOOTTIME stamp is 600 s ahead of MONOTONIC.
        let boot = mono + 600_000_000_000;
        let (t, c) = sensor_time(boot - 3_000_000, mono, boot);
        assert_eq!(
            (t, c),
            (LslTime::from_nanos(mono - 3_000_000), SensorClock::Boottime)
        );
        // A MONOTONIC stamp on the same machine stays as it is.
        let (t, c) = sensor_time(mono - 3_000_000, mono, boot);
        assert_eq!(
            (t, c),
            (
                LslTime::from_nanos(mono - 3_000_000),
                SensorClock::Monotonic
            )
        );
        // The two clocks of this machine are readable.
        assert!(boottime_now() >= crate::clock::LslTime::now().as_nanos() - 1_000_000);
    }
}
