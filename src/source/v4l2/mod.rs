//! `v4l2`: USB/UVC cameras and the Raspberry Pi's V4L2 nodes.
//!
//! Opening negotiates format, size and rate ([`negotiate`]) and checks what the driver
//! granted. Each buffer's `bytesused` bytes are the frame (MJPEG passed through
//! untouched; YUYV/NV12 encoded, [`encode`]). The driver's `sequence` numbers the frames,
//! so frames the driver dropped show up as gaps (counted by the capture thread), and its
//! CLOCK_MONOTONIC buffer timestamp is the capture time (`design/time.md`). The device
//! layer is a trait so that all of this is tested without a camera; [`device`] is the
//! real one, on the `v4l` crate.

pub mod device;
pub mod encode;
pub mod negotiate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clocks, LslTime};
use crate::frame::FrameMeta;
use crate::source::{FrameSource, SourceError, SourceInfo};
use encode::{EncodeError, RawEncoder};
use negotiate::{check_granted, choose, Choice, FormatCaps, Granted, NegotiateError, Pixel, Want};

/// How long a dequeue may block, so that shutdown is noticed.
pub const POLL: Duration = Duration::from_millis(200);
/// V4L2 buffers queued with the driver (a late capture thread gets this many back to back).
pub const BUFFERS: u32 = 4;

/// One dequeued buffer's metadata.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BufferMeta {
    pub sequence: u32,
    /// The buffer's timestamp, µs.
    pub timestamp_us: i64,
    /// The timestamp is CLOCK_MONOTONIC (`V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`).
    pub monotonic: bool,
    /// The driver flagged the buffer as damaged (`V4L2_BUF_FLAG_ERROR`).
    pub error: bool,
}

/// Why a dequeue returned no frame.
#[derive(Debug)]
pub enum DequeueError {
    /// Nothing within the timeout.
    Timeout,
    /// The device is gone or broken.
    Lost(String),
}

/// Why the device refused a step of its set-up.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot open {path}: {source} (is the camera plugged in, and is the user in the `video` group?)")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a V4L2 device: {source}")]
    NotV4l2 {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} ({card}) cannot capture video (it may be the metadata node of a camera: try the next /dev/video number)")]
    NoCapture { path: String, card: String },
    #[error("cannot list formats: {0}")]
    Formats(std::io::Error),
    #[error("setting {choice}: {source}")]
    SetFormat {
        choice: String,
        source: std::io::Error,
    },
    #[error("setting {fps} fps: {source}")]
    SetRate { fps: f64, source: std::io::Error },
    #[error("{path}: cannot map buffers: {source}")]
    MapBuffers {
        path: String,
        source: std::io::Error,
    },
}

/// Why a V4L2 camera could not be set up, naming the device.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    #[error(transparent)]
    Open(#[from] DeviceError),
    #[error("{device}: {source}")]
    Setup { device: String, source: DeviceError },
    #[error("{device}: {source}")]
    Negotiate {
        device: String,
        source: NegotiateError,
    },
    #[error("{device}: {source}")]
    Encoder { device: String, source: EncodeError },
}

/// Why a frame the device delivered is not usable (counted as corrupt).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the driver flagged the frame as damaged")]
    Damaged,
    #[error("empty buffer")]
    Empty,
    #[error("no JPEG start marker")]
    NoStart,
    #[error("truncated JPEG ({0} bytes, no end marker)")]
    Truncated(usize),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// The part of a V4L2 device hindsight uses; faked in the tests.
pub trait CaptureDevice: Send {
    /// Card and driver, for logs and file tags.
    fn describe(&self) -> String;
    /// Formats, sizes and rates; stepwise sizes are reported for `want`'s size if it is
    /// in range.
    fn capabilities(&mut self, want: Want) -> Result<Vec<FormatCaps>, DeviceError>;
    /// Sets format, size and rate; returns what the driver set.
    fn configure(&mut self, choice: Choice) -> Result<Granted, DeviceError>;
    fn start(&mut self) -> Result<(), DeviceError>;
    /// Waits up to `timeout` for the next buffer: its `bytesused` bytes where the driver
    /// filled them, valid until the next call, which gives the buffer back to the driver.
    fn dequeue(&mut self, timeout: Duration) -> Result<(&[u8], BufferMeta), DequeueError>;
}

/// Extends the driver's 32-bit `sequence` to 64 bits across wrap-around.
#[derive(Debug, Default)]
pub struct SeqTracker {
    last: Option<(u32, u64)>,
}

impl SeqTracker {
    pub fn next(&mut self, seq: u32) -> u64 {
        let out = match self.last {
            None => u64::from(seq),
            // A driver that repeats a number (some never count): still one frame on.
            Some((prev, ext)) if seq == prev => ext + 1,
            Some((prev, ext)) => ext + u64::from(seq.wrapping_sub(prev)),
        };
        self.last = Some((seq, out));
        out
    }
}

pub struct V4l2Source<D: CaptureDevice> {
    info: SourceInfo,
    dev: D,
    pixel: Pixel,
    encoder: Option<RawEncoder>,
    seq: SeqTracker,
    clocks: Arc<dyn Clocks>,
    last_frame: Instant,
    warned_clock: bool,
    /// Frames the driver's sequence says were dropped (for the log; the capture thread
    /// counts them from the frame numbers).
    pub driver_drops: u64,
    last_seq: Option<u64>,
    /// Corrupt frames so far (they are taken out of the frame numbers).
    corrupt: u64,
}

impl<D: CaptureDevice> V4l2Source<D> {
    /// Negotiates, configures and starts the device.
    pub fn open(
        mut dev: D,
        want: Want,
        quality: u8,
        clocks: Arc<dyn Clocks>,
    ) -> Result<V4l2Source<D>, V4l2Error> {
        let name = dev.describe();
        let setup = |source| V4l2Error::Setup {
            device: name.clone(),
            source,
        };
        let negotiate = |source| V4l2Error::Negotiate {
            device: name.clone(),
            source,
        };
        let caps = dev.capabilities(want).map_err(setup)?;
        let choice = choose(&caps, want).map_err(negotiate)?;
        let granted = dev.configure(choice).map_err(setup)?;
        check_granted(choice, granted).map_err(negotiate)?;
        let encoder = match choice.pixel {
            Pixel::Mjpeg => None,
            p => Some(
                RawEncoder::new(p, granted.width, granted.height, granted.stride, quality)
                    .map_err(|source| V4l2Error::Encoder {
                        device: name.clone(),
                        source,
                    })?,
            ),
        };
        if encoder.is_some() {
            tracing::info!(
                "{name}: no MJPEG at this size and rate; encoding {} with libjpeg-turbo",
                negotiate::fourcc_str(granted.fourcc)
            );
        }
        dev.start().map_err(setup)?;
        Ok(V4l2Source {
            info: SourceInfo {
                kind: crate::config::SourceKind::V4l2,
                model: format!("{name} ({choice})"),
                width: granted.width,
                height: granted.height,
                fps: granted.fps,
                codec: crate::config::Codec::Mjpg,
                encodes: encoder.is_some(),
                controls: String::new(),
                controls_off: None,
            },
            dev,
            pixel: choice.pixel,
            encoder,
            seq: SeqTracker::default(),
            clocks,
            last_frame: Instant::now(),
            warned_clock: false,
            driver_drops: 0,
            last_seq: None,
            corrupt: 0,
        })
    }
}

/// A plausible whole JPEG: starts with SOI, ends with EOI (UVC cameras may pad after it).
fn check_jpeg(data: &[u8]) -> Result<&[u8], FrameError> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err(FrameError::NoStart);
    }
    let tail = data.len().saturating_sub(1024);
    match data[tail..].windows(2).rposition(|w| w == [0xFF, 0xD9]) {
        Some(i) => Ok(&data[..tail + i + 2]),
        None => Err(FrameError::Truncated(data.len())),
    }
}

impl<D: CaptureDevice> FrameSource for V4l2Source<D> {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame_ref<'a>(
        &'a mut self,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError> {
        let (data, meta) = match self.dev.dequeue(POLL) {
            Ok(got) => got,
            Err(DequeueError::Timeout) => {
                if self.last_frame.elapsed() >= crate::source::stream::STALL {
                    return Err(SourceError::Lost(format!(
                        "{}: no frame for {} s",
                        self.info.model,
                        crate::source::stream::STALL.as_secs()
                    )));
                }
                return Err(SourceError::Idle);
            }
            Err(DequeueError::Lost(e)) => {
                return Err(SourceError::Lost(format!("{}: {e}", self.info.model)))
            }
        };
        self.last_frame = Instant::now();
        let frame: Result<&'a [u8], FrameError> = if meta.error {
            Err(FrameError::Damaged)
        } else if data.is_empty() {
            Err(FrameError::Empty)
        } else if self.pixel == Pixel::Mjpeg {
            check_jpeg(data)
        } else {
            match self
                .encoder
                .as_mut()
                .expect("raw formats have an encoder")
                .encode(data, scratch)
            {
                Ok(()) => Ok(scratch.as_slice()),
                Err(e) => Err(FrameError::from(e)),
            }
        };
        let driver_seq = self.seq.next(meta.sequence);
        if let Some(prev) = self.last_seq {
            if driver_seq > prev + 1 {
                self.driver_drops += driver_seq - prev - 1;
            }
        }
        self.last_seq = Some(driver_seq);
        let frame = match frame {
            Ok(frame) => frame,
            Err(why) => {
                // Counted once, as corrupt: the frame numbers after it close ranks, so
                // that only frames the driver dropped leave gaps.
                self.corrupt += 1;
                return Err(SourceError::Corrupt(why.to_string()));
            }
        };
        let seq = driver_seq - self.corrupt;
        let now = self.clocks.now();
        let capture = if meta.monotonic {
            LslTime::from_nanos(meta.timestamp_us * 1000)
        } else {
            if !self.warned_clock {
                self.warned_clock = true;
                tracing::warn!(
                    "{}: the driver's timestamps are not CLOCK_MONOTONIC; using the time each \
                     frame is dequeued instead (later than the exposure by the transfer time)",
                    self.info.model
                );
            }
            now.lsl
        };
        let meta = FrameMeta {
            seq,
            capture,
            wall: now.wall_at(capture),
            width: self.info.width as u16,
            height: self.info.height as u16,
            keyframe: true,
        };
        Ok((meta, frame))
    }
}

/// Opens the device a camera's config names: a path, or an index (`0` = /dev/video0).
pub fn open(
    cam: &crate::config::CameraConfig,
    clocks: Arc<dyn Clocks>,
) -> Result<Box<dyn FrameSource>, V4l2Error> {
    let dev = device::LinuxDevice::open(&cam.device)?;
    let want = Want {
        width: cam.resolution.width.0,
        height: cam.resolution.height.0,
        fps: cam.fps.0,
    };
    V4l2Source::open(dev, want, cam.quality.0, clocks).map(|s| Box::new(s) as Box<dyn FrameSource>)
}

#[cfg(test)]
mod tests {
    use super::negotiate::{Rates, SizeCaps};
    use super::*;
    use crate::clock::{ClockPair, SimulatedClocks, WallTime};
    use std::collections::VecDeque;

    /// A camera that answers from a script.
    struct Fake {
        caps: Vec<FormatCaps>,
        /// What `configure` grants (None: what was asked).
        grant: Option<Granted>,
        frames: VecDeque<Result<(Vec<u8>, BufferMeta), DequeueError>>,
        started: bool,
        /// The frame handed out last.
        held: Vec<u8>,
    }

    impl CaptureDevice for Fake {
        fn describe(&self) -> String {
            "Fake Cam (uvcvideo)".into()
        }
        fn capabilities(&mut self, _want: Want) -> Result<Vec<FormatCaps>, DeviceError> {
            Ok(self.caps.clone())
        }
        fn configure(&mut self, c: Choice) -> Result<Granted, DeviceError> {
            Ok(self.grant.unwrap_or(Granted {
                fourcc: c.pixel.fourcc(),
                width: c.width,
                height: c.height,
                fps: c.fps,
                stride: if c.pixel == Pixel::Yuyv {
                    2 * c.width
                } else {
                    c.width
                },
            }))
        }
        fn start(&mut self) -> Result<(), DeviceError> {
            self.started = true;
            Ok(())
        }
        fn dequeue(&mut self, _timeout: Duration) -> Result<(&[u8], BufferMeta), DequeueError> {
            // Like a driver's buffer: the frame stays where it is until the next call.
            match self.frames.pop_front() {
                Some(Ok((data, meta))) => {
                    self.held = data;
                    Ok((&self.held, meta))
                }
                Some(Err(e)) => Err(e),
                None => Err(DequeueError::Timeout),
            }
        }
    }

    fn caps(fourcc: &[u8; 4]) -> Vec<FormatCaps> {
        vec![FormatCaps {
            fourcc: *fourcc,
            sizes: vec![SizeCaps {
                width: 64,
                height: 48,
                rates: Rates::Discrete(vec![100.0, 30.0]),
            }],
        }]
    }

    fn jpeg_bytes() -> Vec<u8> {
        let pixels = vec![90u8; 64 * 48 * 3];
        let image = turbojpeg::Image {
            pixels: &pixels[..],
            width: 64,
            pitch: 64 * 3,
            height: 48,
            format: turbojpeg::PixelFormat::RGB,
        };
        turbojpeg::compress(image, 80, turbojpeg::Subsamp::Sub2x2)
            .unwrap()
            .to_vec()
    }

    fn buf(seq: u32, ms: i64) -> BufferMeta {
        BufferMeta {
            sequence: seq,
            timestamp_us: ms * 1000,
            monotonic: true,
            error: false,
        }
    }

    fn clocks() -> Arc<dyn Clocks> {
        Arc::new(SimulatedClocks::new(ClockPair {
            lsl: LslTime::from_nanos(1_000_000_000_000),
            wall: WallTime::from_nanos(1_700_000_000_000_000_000),
        }))
    }

    fn want() -> Want {
        Want {
            width: 64,
            height: 48,
            fps: 100.0,
        }
    }

    #[test]
    fn mjpeg_frames_pass_through_with_driver_times_and_sequence_gaps() {
        let j = jpeg_bytes();
        let mut padded = j.clone();
        padded.extend([0u8; 37]); // UVC padding after EOI
        let mut truncated = j.clone();
        truncated.truncate(j.len() - 10);
        let frames = VecDeque::from(vec![
            Ok((j.clone(), buf(7, 1000))),
            Ok((padded, buf(8, 1010))),
            Ok((j.clone(), buf(11, 1040))), // the driver dropped 9 and 10
            Ok((truncated, buf(12, 1050))),
            Ok((
                j.clone(),
                BufferMeta {
                    error: true,
                    ..buf(13, 1060)
                },
            )),
            Ok((j.clone(), buf(14, 1070))),
            Err(DequeueError::Lost("No such device (os error 19)".into())),
        ]);
        let dev = Fake {
            caps: caps(b"MJPG"),
            grant: None,
            frames,
            started: false,
            held: Vec::new(),
        };
        let mut s = V4l2Source::open(dev, want(), 80, clocks()).unwrap();
        assert!(s.dev.started);
        assert_eq!(s.info().fps, 100.0);
        let mut out = Vec::new();
        let mut seqs = Vec::new();
        let mut corrupt = 0;
        loop {
            // As the capture thread takes it.
            let got = match s.next_frame_ref(&mut out) {
                Ok((m, data)) => {
                    assert_eq!(data, &j[..], "bytesused, untouched, padding cut");
                    Some((m, data.as_ptr()))
                }
                Err(SourceError::Corrupt(_)) => {
                    corrupt += 1;
                    None
                }
                Err(SourceError::Lost(why)) => {
                    assert!(why.contains("No such device"), "{why}");
                    break;
                }
                Err(e) => panic!("{e}"),
            };
            if let Some((m, at)) = got {
                assert_eq!(
                    at,
                    s.dev.held.as_ptr(),
                    "where the driver put it, not a copy"
                );
                seqs.push((m.seq, m.capture.as_nanos() / 1_000_000));
            }
        }
        assert!(
            out.is_empty(),
            "an MJPEG camera's frames need no scratch space"
        );
        // 9 and 10 were dropped by the driver: a gap. The two corrupt frames are counted
        // as such, and leave no gap (they are not counted twice).
        assert_eq!(seqs, [(7, 1000), (8, 1010), (11, 1040), (12, 1070)]);
        assert_eq!(corrupt, 2, "the truncated and the flagged frame");
        assert_eq!(s.driver_drops, 2);
    }

    #[test]
    fn yuyv_frames_are_encoded() {
        let raw = vec![128u8; 64 * 48 * 2];
        let dev = Fake {
            caps: caps(b"YUYV"),
            grant: None,
            frames: VecDeque::from(vec![Ok((raw, buf(0, 5)))]),
            started: false,
            held: Vec::new(),
        };
        let mut s = V4l2Source::open(dev, want(), 80, clocks()).unwrap();
        let mut out = Vec::new();
        let (m, data) = s.next_frame_ref(&mut out).unwrap();
        assert_eq!((m.width, m.height, m.seq), (64, 48, 0));
        let h = turbojpeg::read_header(data).unwrap();
        assert_eq!((h.width, h.height), (64, 48));
        let at = data.as_ptr();
        assert_eq!(at, out.as_ptr(), "encoded into the scratch space");
    }

    #[test]
    fn a_driver_that_grants_something_else_is_refused() {
        let dev = Fake {
            caps: caps(b"MJPG"),
            grant: Some(Granted {
                fourcc: *b"MJPG",
                width: 64,
                height: 48,
                fps: 30.0,
                stride: 0,
            }),
            frames: VecDeque::new(),
            started: false,
            held: Vec::new(),
        };
        let e = V4l2Source::open(dev, want(), 80, clocks())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("Fake Cam") && e.contains("@ 30 fps"), "{e}");
    }

    #[test]
    fn sequence_numbers_survive_wrap_around_and_repeats() {
        let mut t = SeqTracker::default();
        assert_eq!(t.next(u32::MAX - 1), u64::from(u32::MAX) - 1);
        assert_eq!(t.next(u32::MAX), u64::from(u32::MAX));
        assert_eq!(t.next(1), u64::from(u32::MAX) + 2, "0 was dropped");
        assert_eq!(t.next(1), u64::from(u32::MAX) + 3, "a repeated number");
    }

    #[test]
    fn a_silent_camera_is_idle_then_lost_and_non_monotonic_clocks_are_not_trusted() {
        let dev = Fake {
            caps: caps(b"MJPG"),
            grant: None,
            frames: VecDeque::from(vec![Ok((
                jpeg_bytes(),
                BufferMeta {
                    monotonic: false,
                    ..buf(0, 5)
                },
            ))]),
            started: false,
            held: Vec::new(),
        };
        let clocks = clocks();
        let mut s = V4l2Source::open(dev, want(), 80, clocks.clone()).unwrap();
        let mut out = Vec::new();
        let m = s.next_frame(&mut out).unwrap();
        assert_eq!(
            m.capture,
            clocks.now().lsl,
            "dequeue time, not the driver's"
        );
        assert!(matches!(s.next_frame(&mut out), Err(SourceError::Idle)));
        s.last_frame = Instant::now() - Duration::from_secs(6);
        assert!(matches!(s.next_frame(&mut out), Err(SourceError::Lost(_))));
    }
}
