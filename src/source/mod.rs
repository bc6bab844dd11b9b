//! Camera sources: where frames come from. Each yields JPEG frames with their
//! [`FrameMeta`]; the capture thread (`crate::capture`) drives one source.

pub mod command;
pub mod http_mjpeg;
pub mod imx296;
pub mod libcamera;
pub mod mjpeg;
pub mod stream;
pub mod synthetic;
pub mod v4l2;

use std::fmt;

use crate::frame::FrameMeta;

/// What a source delivers, for file headers, LSL `desc()` and the status.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    /// Source kind as in the config.
    pub kind: crate::config::SourceKind,
    /// Human-readable device description ("synthetic test pattern", camera model, URL).
    pub model: String,
    pub width: u32,
    pub height: u32,
    /// Nominal frames per second (what was asked for or granted; actual rates are measured).
    pub fps: f64,
    /// Always MJPEG for now: every source yields JPEG frames.
    pub codec: crate::config::Codec,
    /// Each frame is encoded to JPEG on the capture thread (libcamera, a V4L2 camera
    /// without MJPEG, the synthetic pattern drawn live): what limits the rate this
    /// machine can take, said when frames are lost to it.
    pub encodes: bool,
    /// The controls the camera was started with, and what its first frames report of
    /// them (libcamera: `ExposureTimeMode=Manual ExposureTime=2000 (its frames report
    /// ExposureTime 1998)`); empty when none were set.
    pub controls: String,
    /// What its first frames reported otherwise than the controls asked
    /// (`ExposureTime 16666 (asked 2000)`), if anything.
    pub controls_off: Option<String>,
}

/// Whether a source's frames come in some time after the instant they are stamped with:
/// a sensor's exposure (libcamera, V4L2), a frame period or more before the frame is
/// handed over. Other sources stamp a frame as it arrives (a stream's first byte, the
/// synthetic pattern's moment), so a frame stamped before a stop is already in when the
/// stop comes, give or take the rest of its bytes.
pub fn frames_come_after_their_time(kind: crate::config::SourceKind) -> bool {
    matches!(
        kind,
        crate::config::SourceKind::Libcamera | crate::config::SourceKind::V4l2
    )
}

/// Whether a source's frames carry what they were exposed with (`frame::exif`): those
/// hindsight encodes from a libcamera camera's buffers, with the request's metadata.
pub fn reports_exposure(kind: crate::config::SourceKind) -> bool {
    matches!(kind, crate::config::SourceKind::Libcamera)
}

/// Why a source could not deliver a frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The frame was unusable (corrupt or truncated JPEG). Counted and skipped.
    #[error("corrupt frame: {0}")]
    Corrupt(String),
    /// The device went away or the stream closed. The capture thread reports it and
    /// reopens the source with backoff.
    #[error("source lost: {0}")]
    Lost(String),
    /// Nothing arrived within the source's poll interval (≤ 250 ms); ask again. Lets the
    /// capture thread notice shutdown while a network camera or a program is silent.
    #[error("no frame yet")]
    Idle,
    /// The source was told to stop.
    #[error("source stopped")]
    Stopped,
}

/// Opens a camera's source again after it was lost.
pub type Reopen = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, OpenError> + Send>;

/// Why a camera's source could not be opened, naming the camera.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("camera {camera}: source {kind} needs `{key}`")]
    Missing {
        camera: String,
        kind: &'static str,
        key: &'static str,
    },
    #[error(
        "camera {camera}: this hindsight was built without libcamera support: build it with \
         `cargo build --release --features libcamera` on Raspberry Pi OS (libcamera ≥ 0.4), \
         or use source: command with `rpicam-vid -t 0 --codec mjpeg -o -`"
    )]
    NoLibcamera { camera: String },
    /// The device, program or URL refused or failed (what it said): at start-up, the
    /// camera starts lost ([`NotOpened`]) and is opened again with backoff.
    #[error("camera {camera}: {cause}")]
    Failed { camera: String, cause: String },
    /// Another camera of the configuration has the device open: a mistake in the
    /// configuration, which waiting does not mend; it stops the start.
    #[error("camera {camera}: {cause}")]
    Conflict { camera: String, cause: String },
}

/// A camera. Implementations must not block the pipeline on network or disk: `next_frame`
/// blocks only until the device has the next frame.
pub trait FrameSource: Send {
    fn info(&self) -> &SourceInfo;

    /// Waits for the next frame and returns its metadata and its JPEG bytes: where the
    /// source already holds them when it can (a V4L2 buffer the driver filled, a stream
    /// source's read buffer, the synthetic camera's encoder output), else in `scratch`
    /// (cleared first; its capacity is reused, so steady state allocates nothing). They
    /// are valid until the next call. The capture thread copies them once, into its ring.
    fn next_frame_ref<'a>(
        &'a mut self,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError>;

    /// CPU clocks of the threads that work for this source besides the capture thread
    /// (a libcamera camera's encoding threads): counted with it in `capture_cpu` and by
    /// `hindsight check`.
    fn helper_cpu_clocks(&self) -> Vec<crate::clock::ThreadCpuClock> {
        Vec::new()
    }

    /// As [`FrameSource::next_frame_ref`], with the bytes copied into `jpeg`: for callers
    /// that keep a frame past the next one (`hindsight check`, the benchmark, tests).
    fn next_frame(&mut self, jpeg: &mut Vec<u8>) -> Result<FrameMeta, SourceError> {
        let mut scratch = Vec::new();
        let (meta, data) = self.next_frame_ref(&mut scratch)?;
        jpeg.clear();
        jpeg.extend_from_slice(data);
        Ok(meta)
    }
}

impl fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) {}x{} @ {} fps {}",
            self.kind.as_str(),
            self.model,
            self.width,
            self.height,
            self.fps,
            self.codec.as_str()
        )?;
        if !self.controls.is_empty() {
            write!(f, ", controls {}", self.controls)?;
        }
        Ok(())
    }
}

/// What stands for a camera's source while it is not open.
///
/// - A camera that could not be opened at start-up ([`NotOpened::new`]; SPEC §9: the
///   process keeps running where it can, with its other cameras and audio): the capture
///   thread finds it lost at once, says why, and opens the camera with backoff as it
///   does a camera lost later. Its size is not known (0x0) until it opens: a V4L2 driver
///   may grant another than the configured one, and http and command cameras learn
///   theirs from their first frame.
/// - A lost source, closed while it is opened again ([`NotOpened::closed`]): a device (a
///   V4L2 node, a libcamera camera) cannot be opened twice.
pub struct NotOpened {
    info: SourceInfo,
    /// Why it is lost; `None`: it is closed, and stopped.
    why: Option<String>,
}

impl NotOpened {
    /// Stands for `info`'s source, closed.
    pub fn closed(info: SourceInfo) -> NotOpened {
        NotOpened { info, why: None }
    }

    /// Camera `cam`, which failed to open with `cause` (without the camera's name).
    pub fn new(cam: &crate::config::CameraConfig, cause: &str) -> NotOpened {
        use crate::config::SourceKind;
        NotOpened {
            info: SourceInfo {
                kind: cam.source,
                model: "not opened yet".into(),
                width: 0,
                height: 0,
                fps: cam.fps.0,
                codec: cam.codec,
                encodes: matches!(cam.source, SourceKind::Libcamera | SourceKind::Synthetic),
                controls: String::new(),
                controls_off: None,
            },
            why: Some(format!("could not be opened at start-up: {cause}")),
        }
    }
}

impl FrameSource for NotOpened {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame_ref<'a>(
        &'a mut self,
        _scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError> {
        Err(match &self.why {
            Some(why) => SourceError::Lost(why.clone()),
            None => SourceError::Stopped,
        })
    }
}

thread_local! {
    /// Set by [`opening`] for the open it runs on this thread.
    static OPENING_ALIVE: std::cell::RefCell<Option<Box<dyn Fn() -> bool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `open` on this thread with `alive` called each time the open's wait comes round
/// ([`still_opening`]; a stream source waits up to [`stream::FIRST_FRAME`] for its first
/// frame, reading every [`stream::POLL`]); `alive` says whether to go on waiting.
///
/// The capture thread passes its heartbeat, by which the systemd watchdog knows its loop
/// is not stuck (a camera that takes 15 s to send its first frame is not a stalled loop;
/// a driver call that never returns is: it does not come round, and `alive` is not
/// called), and whether hindsight is stopping (a stop does not wait out the 15 s).
pub fn opening<R>(alive: Box<dyn Fn() -> bool>, open: impl FnOnce() -> R) -> R {
    struct Unset;
    impl Drop for Unset {
        fn drop(&mut self) {
            OPENING_ALIVE.with(|a| *a.borrow_mut() = None);
        }
    }
    OPENING_ALIVE.with(|a| *a.borrow_mut() = Some(alive));
    let _unset = Unset;
    open()
}

/// A source's open says its wait came round (see [`opening`]): whether to wait on
/// (always, outside [`opening`]).
pub(crate) fn still_opening() -> bool {
    OPENING_ALIVE.with(|a| a.borrow().as_ref().is_none_or(|alive| alive()))
}

/// Opens the source a camera's config asks for.
pub fn open(
    cam: &crate::config::CameraConfig,
    clocks: std::sync::Arc<dyn crate::clock::Clocks>,
) -> Result<Box<dyn FrameSource>, OpenError> {
    let failed = |cause: String| OpenError::Failed {
        camera: cam.name.0.clone(),
        cause,
    };
    use crate::config::SourceKind;
    if crops_imx296(cam) {
        let done = imx296::apply(cam.resolution.width.0, cam.resolution.height.0)
            .map_err(|e| failed(e.to_string()))?;
        tracing::info!(camera = %cam.name, "IMX296 crop set: {done}");
    }
    match cam.source {
        SourceKind::Synthetic => {
            let cfg = synthetic::SyntheticConfig {
                width: cam.resolution.width.0,
                height: cam.resolution.height.0,
                fps: cam.fps.0,
                quality: cam.quality.0,
                pacing: synthetic::Pacing::RealTime,
                // `hindsight bench --process` measures the recorder without the encoder.
                pool: std::env::var(synthetic::POOL_VARIABLE)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0),
            };
            synthetic::SyntheticSource::new(cfg, clocks)
                .map(|s| Box::new(s) as Box<dyn FrameSource>)
                .map_err(|e| failed(e.to_string()))
        }
        SourceKind::Command => {
            let command = cam.command.as_deref().ok_or_else(|| OpenError::Missing {
                camera: cam.name.0.clone(),
                kind: "command",
                key: "command",
            })?;
            command::CommandSource::open(&cam.name.0, command, cam.fps.0, MAX_FRAME, clocks)
                .map(|s| Box::new(s) as Box<dyn FrameSource>)
                .map_err(|e| failed(e.to_string()))
        }
        SourceKind::HttpMjpeg => {
            let url = cam.url.as_deref().ok_or_else(|| OpenError::Missing {
                camera: cam.name.0.clone(),
                kind: "http-mjpeg",
                key: "url",
            })?;
            http_mjpeg::HttpMjpegSource::open(url, cam.fps.0, MAX_FRAME, clocks)
                .map(|s| Box::new(s) as Box<dyn FrameSource>)
                .map_err(|e| failed(e.to_string()))
        }
        SourceKind::V4l2 => v4l2::open(cam, clocks).map_err(|e| failed(e.to_string())),
        #[cfg(feature = "libcamera")]
        SourceKind::Libcamera => libcamera::open(cam, clocks).map_err(|e| match e {
            libcamera::LibcameraError::AlreadyOpen { .. } => OpenError::Conflict {
                camera: cam.name.0.clone(),
                cause: e.to_string(),
            },
            e => failed(e.to_string()),
        }),
        #[cfg(not(feature = "libcamera"))]
        SourceKind::Libcamera => Err(OpenError::NoLibcamera {
            camera: cam.name.0.clone(),
        }),
    }
}

/// Whether camera `cam`'s IMX296 crop is to be set before it opens (`imx296_crop`).
fn crops_imx296(cam: &crate::config::CameraConfig) -> bool {
    use crate::config::Toggle;
    match cam.imx296_crop {
        Toggle::On => true,
        Toggle::Off => false,
        Toggle::Auto => auto_crops_imx296(cam),
    }
}

/// `imx296_crop: auto`: a libcamera camera that libcamera says is an IMX296 (asked which
/// camera `device` names, without opening it), at a rate its whole sensor cannot give.
#[cfg(feature = "libcamera")]
fn auto_crops_imx296(cam: &crate::config::CameraConfig) -> bool {
    if cam.source != crate::config::SourceKind::Libcamera || cam.fps.0 <= imx296::FULL_SENSOR_FPS {
        return false;
    }
    // A camera libcamera cannot find is said by the open that follows.
    let model = libcamera::model_of(cam.device.as_deref()).unwrap_or_default();
    let crop = imx296::auto_crop(&model, cam.fps.0);
    if crop {
        tracing::info!(
            camera = %cam.name,
            "imx296_crop auto: {model} asked for {} fps, more than its whole sensor gives \
             ({} fps): its crop is set to {}x{}",
            cam.fps.0,
            imx296::FULL_SENSOR_FPS,
            cam.resolution.width.0,
            cam.resolution.height.0
        );
    }
    crop
}

/// Without libcamera, no camera of this build is an IMX296 that `auto` would crop.
#[cfg(not(feature = "libcamera"))]
fn auto_crops_imx296(_cam: &crate::config::CameraConfig) -> bool {
    false
}

/// The largest JPEG frame a network or program source may deliver (a 4K frame at high
/// quality is ~3 MB); anything larger is taken as a broken stream.
pub const MAX_FRAME: usize = 16 << 20;
