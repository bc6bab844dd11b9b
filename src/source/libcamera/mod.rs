//! `libcamera`: Raspberry Pi cameras (cargo feature `libcamera`, off by default: it links
//! the system's libcamera, 0.4 to 0.7, which Raspberry Pi OS has and Debian 12 does not).
//!
//! libcamera allows one camera manager per process, and its objects may not leave the
//! thread that made them, so one thread (`service`) owns the manager and every camera
//! opened from it: it opens, configures, starts, re-queues and stops. A camera's
//! completed requests go straight from libcamera's callback to that camera's capture
//! thread (`source`), which encodes the frame with libjpeg-turbo from the mapped
//! buffer (YUV 4:2:0 or NV12, whichever the camera gives; no copy of the picture) and
//! hands the request back to be queued again. When the capture thread is late, the
//! camera runs out of buffers and the sensor's frames are lost: libcamera's sequence
//! numbers jump, and the capture layer counts the gap, as for V4L2.
//!
//! A frame's capture time is libcamera's `SensorTimestamp` (start of exposure of the
//! first line). libcamera documents it as CLOCK_BOOTTIME, while the Raspberry Pi
//! pipeline passes on the V4L2 buffer time, which is CLOCK_MONOTONIC: the two differ by
//! the time the machine was suspended. [`sensor_time`] decides per frame which clock a
//! timestamp is on and maps it onto the LSL clock (CLOCK_MONOTONIC).
//!
//! Everything in this file is plain code, tested without a camera and compiled with or
//! without the feature: the clock mapping, the rate and size checks and the errors a
//! user reads.

use crate::clock::LslTime;

pub mod controls;
#[cfg(feature = "libcamera")]
mod service;
#[cfg(feature = "libcamera")]
mod source;
#[cfg(feature = "libcamera")]
pub use service::{list, model_of};
#[cfg(feature = "libcamera")]
pub use source::open;

/// What hindsight gives libcamera when the lab did not set `LIBCAMERA_LOG_LEVELS`.
pub const QUIET_LEVELS: &str = "*:WARN";

/// libcamera writes INFO lines of its own format to stderr (its version when a camera
/// manager starts, each camera's "configuring streams"), in the middle of hindsight's log
/// and under `hindsight devices`' listing. Unless the lab set `LIBCAMERA_LOG_LEVELS`, this
/// keeps it to warnings and errors ([`QUIET_LEVELS`]), as liblsl is kept
/// ([`crate::lsl::quiet_unless_configured`]); camera programs this process starts (a
/// command camera's `rpicam-vid`) inherit it. libcamera reads the variable when it first
/// logs. Call at the start of `main`, before any thread runs: it sets the environment.
/// Returns whether it did.
pub fn quiet_unless_configured() -> bool {
    if std::env::var_os("LIBCAMERA_LOG_LEVELS").is_some() {
        return false;
    }
    std::env::set_var("LIBCAMERA_LOG_LEVELS", QUIET_LEVELS);
    true
}

/// CLOCK_BOOTTIME now, ns.
pub fn boottime_now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    // `time_t` and `long` are 32 bits on a 32-bit Raspberry Pi OS: widened before the
    // multiplication, which would overflow there.
    #[allow(clippy::useless_conversion)]
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    sec * 1_000_000_000 + nsec
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

/// The frame duration to ask for, µs (libcamera's unit for `FrameDurationLimits`).
pub fn frame_duration_us(fps: f64) -> i64 {
    (1e6 / fps).round() as i64
}

/// Whether the camera's frame-duration range (`FrameDurationLimits`'s minimum and maximum,
/// µs) allows `fps`; if not, what it offers, in frame rates.
pub fn check_rate(fps: f64, min_us: i64, max_us: i64) -> Result<(), String> {
    let want = frame_duration_us(fps);
    if min_us > 0 && max_us >= min_us && (want < min_us || want > max_us) {
        return Err(rate_range(min_us, max_us));
    }
    Ok(())
}

/// A frame-duration range (µs) as the frame rates it allows.
pub fn rate_range(min_us: i64, max_us: i64) -> String {
    format!(
        "{} to {} fps",
        rate_str(1e6 / max_us as f64),
        rate_str(1e6 / min_us as f64)
    )
}

/// Whether the frame duration the camera reports (`FrameDuration`, µs) is the rate asked
/// for, within 1% (as for V4L2).
pub fn rate_granted(fps: f64, reported_us: i64) -> bool {
    reported_us > 0 && ((1e6 / reported_us as f64) - fps).abs() <= fps * 0.01
}

fn rate_str(fps: f64) -> String {
    if (fps - fps.round()).abs() < 0.05 {
        format!("{}", fps.round())
    } else {
        format!("{fps:.1}")
    }
}

/// Why a libcamera camera cannot be used: one line a Pi user can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LibcameraError {
    #[error(
        "libcamera finds no camera{}: is the ribbon cable seated and the camera enabled \
         (`rpicam-hello --list-cameras` lists what libcamera sees)?",
        wanted.as_deref().map(|w| format!(" `{w}`")).unwrap_or_default()
    )]
    NoCameras { wanted: Option<String> },
    #[error("libcamera has no camera `{wanted}`; it has: {available}")]
    NoSuchCamera { wanted: String, available: String },
    #[error(
        "camera {camera} is in use by another program (rpicam-*, a picamera2 script, \
         another hindsight?): stop it and try again"
    )]
    Busy { camera: String },
    #[error("camera {camera} cannot give {width}x{height}: it offers {offers}")]
    Size {
        camera: String,
        width: u32,
        height: u32,
        offers: String,
    },
    #[error("camera {camera} cannot run {width}x{height} at {fps} fps: it offers {offers}")]
    Rate {
        camera: String,
        width: u32,
        height: u32,
        fps: f64,
        offers: String,
    },
    #[error("camera {camera} was asked for {asked} fps and runs at {runs} fps; refusing to record something else")]
    NotGranted {
        camera: String,
        asked: f64,
        runs: String,
    },
    #[error("libcamera {runtime} is installed, but this hindsight was built for libcamera {built}: rebuild it (scripts/install.sh --features libcamera)")]
    Version { built: String, runtime: String },
    #[error("libcamera cannot start: {0}")]
    Manager(String),
    #[error("{camera} is already open in this hindsight: two cameras in the configuration name the same device")]
    AlreadyOpen { camera: String },
    #[error("{camera}: {what}")]
    Failed { camera: String, what: String },
    /// A control the camera does not have, or a value it does not take (the message
    /// names the camera).
    #[error("{0}")]
    Control(String),
}

#[cfg(feature = "libcamera")]
impl LibcameraError {
    pub(crate) fn failed(camera: &str, what: impl Into<String>) -> Self {
        LibcameraError::Failed {
            camera: camera.to_string(),
            what: what.into(),
        }
    }
}

/// Whether libcamera's version (`major.minor...`) is the one this build's headers
/// describe: libcamera's ABI changes with every minor release before 1.0.
pub fn same_release(built: &str, runtime: &str) -> bool {
    let mm = |v: &str| {
        v.trim_start_matches('v')
            .split(['.', '+', '-'])
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    };
    mm(built) == mm(runtime)
}

#[cfg(test)]
mod tests;
