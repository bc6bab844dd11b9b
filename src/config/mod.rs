//! Configuration: `config.yaml`, strict.
//!
//! Every key has a default (documented in place in the shipped `config.yaml`, which a test
//! keeps in step with this file). Unknown keys and bad values are errors that name the key
//! and the line: value checks live in `TryFrom` newtypes, so the YAML deserializer reports
//! them with the key's path and position; checks that span several keys run afterwards and
//! look the line up in the text. CLI flags override keys (`--set key.path=value`), applied to
//! the parsed config and checked again.
//!
//! What belongs here: the configuration's structure, defaults, loading, overrides and the
//! checks that span several keys. What does not: single checked values (`values.rs`),
//! finding keys and lines in the YAML text (`locate.rs`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

mod controls;
mod locate;
mod values;

pub use controls::{Controls, Setting};
pub use locate::PathError;
use locate::{duplicate_key_line, line_of, set_path};
use values::Checked;
pub use values::{
    BufferSeconds, ByteSize, CpuCore, Days, Dimension, Encoders, FileNamePart, Fps, MaxFileSize,
    Quality, Seconds, Toggle, ValueError,
};

/// A configuration problem, ready to show to the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn at(origin: &str, line: Option<usize>, key: &str, msg: impl fmt::Display) -> Self {
        match line {
            Some(l) => ConfigError(format!("{origin}, line {l}: {key}: {msg}")),
            None => ConfigError(format!("{origin}: {key}: {msg}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name of this rig: in LSL source ids and ntfy addressing. Default: the hostname.
    pub rig: Option<String>,
    pub storage: StorageConfig,
    pub buffer: BufferConfig,
    pub cameras: Vec<CameraConfig>,
    pub audio: AudioConfig,
    pub trigger: TriggerConfig,
    pub lsl: LslConfig,
    pub api: ApiConfig,
    pub dashboard: DashboardConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rig: None,
            storage: StorageConfig::default(),
            buffer: BufferConfig::default(),
            cameras: vec![CameraConfig::default()],
            audio: AudioConfig::default(),
            trigger: TriggerConfig::default(),
            lsl: LslConfig::default(),
            api: ApiConfig::default(),
            dashboard: DashboardConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Recordings go to `<root>/<YYYY_MM_DD>/video/`.
    pub root: PathBuf,
    /// First part of every file name.
    pub prefix: FileNamePart,
    /// Seconds between `fdatasync`s of open files; 0 = after every write; null = never
    /// (the kernel decides). What a power cut can lose.
    pub fsync_interval: Option<Seconds>,
    /// Disk guard: below this much free space under `root` a recording is stopped (its
    /// files finished) and new ones are refused, before the disk fills. null = no guard.
    pub min_free: Option<ByteSize>,
    /// A recording's video goes on in a next file (`..._cam0.part002.mkv`, ...) before its
    /// file grows past this: `auto` = what the filesystem allows (FAT: 4 GiB), or a size.
    pub max_file_size: MaxFileSize,
    /// Deleting old recordings (off unless a limit is set).
    pub retention: RetentionConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            root: PathBuf::from("./recordings"),
            prefix: FileNamePart("rec".into()),
            fsync_interval: Some(Seconds(1.0)),
            min_free: Some(ByteSize(512 << 20)),
            max_file_size: MaxFileSize::Auto,
            retention: RetentionConfig::default(),
        }
    }
}

/// Which recordings are deleted, oldest first. Only hindsight's own recordings (names in
/// its layout) are ever deleted, never a file being written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete recordings whose newest file is older than this many days. null = keep.
    pub max_age_days: Option<Days>,
    /// Delete the oldest recordings while all of them together take more than this.
    /// null = no limit.
    pub max_total: Option<ByteSize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Keep a pre-trigger buffer at all. Without it a recording starts at the trigger.
    pub enabled: bool,
    /// Seconds kept before the trigger.
    pub duration: BufferSeconds,
    /// The most memory the buffer's JPEG bytes may take (per camera): it grows to what its
    /// frames need, up to this.
    pub max_bytes: ByteSize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            enabled: true,
            duration: BufferSeconds(20.0),
            max_bytes: ByteSize(512 << 20),
        }
    }
}

impl Config {
    /// Whether a build whose pointers have `pointer_bits` bits can hold the microphone's
    /// buffer; the reason why not.
    pub fn audio_buffer_fits(&self, pointer_bits: u32) -> Result<(), String> {
        let bytes = self.audio_buffer_bytes();
        if pointer_bits < 64 && bytes > MAX_AUDIO_BUFFER_BYTES_32_BIT {
            return Err(format!(
                "the microphone's buffer would take {} MiB ({:.0} s at {} Hz × {} channel(s)): \
                 more than this 32-bit build can hold (1 GiB); shorten the buffer, lower \
                 audio.sample_rate or audio.channels, or use a 64-bit OS",
                bytes >> 20,
                (self.buffer.pre_trigger() + AUDIO_BUFFER_SLACK).as_secs_f64(),
                self.audio.sample_rate,
                self.audio.channels
            ));
        }
        Ok(())
    }

    /// The memory the microphone's pre-trigger buffer takes, all of it from the start
    /// (32-bit samples, the pre-trigger and [`AUDIO_BUFFER_SLACK`]); 0 without audio.
    pub fn audio_buffer_bytes(&self) -> u64 {
        if !self.audio.enabled {
            return 0;
        }
        let frames = (self.buffer.pre_trigger() + AUDIO_BUFFER_SLACK).as_secs_f64()
            * f64::from(self.audio.sample_rate);
        frames as u64 * u64::from(self.audio.channels.max(1)) * 4
    }
}

impl BufferConfig {
    /// The pre-trigger length actually kept (zero when the buffer is disabled).
    pub fn pre_trigger(&self) -> Duration {
        if self.enabled {
            Duration::from_secs_f64(self.duration.0)
        } else {
            Duration::ZERO
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    Synthetic,
    V4l2,
    Libcamera,
    HttpMjpeg,
    Command,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Synthetic => "synthetic",
            SourceKind::V4l2 => "v4l2",
            SourceKind::Libcamera => "libcamera",
            SourceKind::HttpMjpeg => "http-mjpeg",
            SourceKind::Command => "command",
        }
    }
}

impl std::str::FromStr for SourceKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        serde_norway::from_str(s).map_err(|_| {
            ConfigError(format!(
                "unknown source `{s}` (expected synthetic, v4l2, libcamera, http-mjpeg or command)"
            ))
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Motion JPEG: every frame a JPEG, passed through untouched when the camera makes it.
    Mjpg,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Mjpg => "mjpg",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    pub width: Dimension,
    pub height: Dimension,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// In file names and LSL stream names; letters, digits, `-`, `_`, `.`.
    pub name: FileNamePart,
    pub source: SourceKind,
    /// v4l2: device path or index.
    pub device: Option<String>,
    /// http-mjpeg: stream URL.
    pub url: Option<String>,
    /// command: program writing MJPEG to stdout.
    pub command: Option<String>,
    pub resolution: Resolution,
    pub fps: Fps,
    pub codec: Codec,
    /// JPEG quality where hindsight encodes (synthetic, YUYV cameras).
    pub quality: Quality,
    /// libcamera: threads that encode its frames to JPEG. 1 encodes on the capture
    /// thread; more take frames in turn, for a rate one core cannot encode, at the cost
    /// of a thread wake per frame. `auto` (the default): as many as the camera's size,
    /// quality and rate need on this machine, up to its cores, decided each time the
    /// camera opens (`source::v4l2::encode::auto_threads`).
    pub encoders: Encoders,
    /// Core the capture thread is pinned to: a number, `auto` (the last core, then the
    /// ones before it for further cameras), or `none` (the default: where the kernel
    /// likes; see `design/architecture.md`, "Where the capture thread runs").
    pub cpu_core: CpuCore,
    /// Run the capture thread at real-time priority (SCHED_FIFO) when the system allows
    /// it (root, CAP_SYS_NICE, or systemd's LimitRTPRIO=); otherwise normal priority,
    /// logged. `auto` (the default): above [`REALTIME_AUTO_ABOVE_FPS`] only.
    pub realtime: Toggle,
    /// Raspberry Pi Global Shutter camera (IMX296): before the camera starts, set the
    /// sensor's crop to `resolution`, centred, with media-ctl, for high frame rates
    /// (libcamera and command sources, e.g. rpicam-vid). `auto` (the default): for a
    /// libcamera camera whose model is the IMX296 asked for more than
    /// [`crate::source::imx296::FULL_SENSOR_FPS`] (`imx296::auto_crop`); never for a
    /// command camera, whose program may open any camera.
    pub imx296_crop: Toggle,
    /// libcamera: the controls the camera is started with (`ExposureTime: 2000`,
    /// `AnalogueGain: 4`, ...), checked against what it offers when it opens. Empty: the
    /// camera's own automatic exposure, gain and white balance.
    pub controls: Controls,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            name: FileNamePart("cam0".into()),
            source: SourceKind::Synthetic,
            device: None,
            url: None,
            command: None,
            resolution: Resolution {
                width: Dimension(400),
                height: Dimension(400),
            },
            fps: Fps(100.0),
            codec: Codec::Mjpg,
            quality: Quality(80),
            encoders: Encoders::Auto,
            cpu_core: CpuCore::Unpinned,
            realtime: Toggle::Auto,
            imx296_crop: Toggle::Auto,
            controls: Controls::default(),
        }
    }
}

/// `realtime: auto` asks for real-time priority for cameras faster than this. A camera
/// driver queues about 4 frames, which at 150 fps last 27 ms: about as long as a busy
/// Linux scheduler may keep a woken normal thread waiting (its latency period, 18 ms on
/// 4 cores, plus the frame's own work). Slower cameras' queues last longer than that, and
/// a real-time thread, which the kernel wakes on the core it last ran on, may cost more
/// to wake (`design/performance.md`, `design/architecture.md`).
pub const REALTIME_AUTO_ABOVE_FPS: f64 = 150.0;

/// The largest `buffer.max_bytes` a 32-bit build takes (armv7, the 32-bit Raspberry Pi
/// OS): a 32-bit process has 3 GiB of address space for everything, and no single buffer
/// may span more than 2 GiB of it. A 64-bit build takes any size.
pub const MAX_BUFFER_BYTES_32_BIT: u64 = 2 << 30;

/// The most a 32-bit build's microphone buffer may take (it is allocated whole at start).
pub const MAX_AUDIO_BUFFER_BYTES_32_BIT: u64 = 1 << 30;

/// Audio the microphone's buffer holds beyond the pre-trigger: time for a start to arrive.
pub const AUDIO_BUFFER_SLACK: Duration = Duration::from_secs(5);

/// Whether a buffer ceiling of `max_bytes` per camera can be held by a build whose
/// pointers have `pointer_bits` bits (`usize::BITS`); the reason why not.
pub fn buffer_ceiling_fits(max_bytes: u64, pointer_bits: u32) -> Result<(), String> {
    if pointer_bits < 64 && max_bytes > MAX_BUFFER_BYTES_32_BIT {
        return Err(format!(
            "{} per camera is more than this 32-bit build can hold (at most 2GiB: a 32-bit \
             process has 3 GiB of address space for everything); lower it, or use a 64-bit \
             OS (64-bit Raspberry Pi OS) to give the buffers more",
            if max_bytes.is_multiple_of(1 << 30) {
                format!("{}GiB", max_bytes >> 30)
            } else {
                format!("{}MiB", max_bytes >> 20)
            }
        ));
    }
    Ok(())
}

impl CameraConfig {
    /// Whether this camera's capture thread asks for real-time priority when its source
    /// delivers `fps` frames a second.
    pub fn wants_realtime(&self, fps: f64) -> bool {
        match self.realtime {
            Toggle::On => true,
            Toggle::Off => false,
            Toggle::Auto => fps > REALTIME_AUTO_ABOVE_FPS,
        }
    }
}

/// How samples are stored in files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleFormat {
    /// 16-bit signed integers (WAV PCM, MKV `A_PCM/INT/LIT`).
    S16,
    /// 32-bit floats (WAV IEEE float).
    F32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// Record audio beside the video.
    pub enabled: bool,
    /// `default` (the system's default input; the synthetic tone when there is none),
    /// a device name as `hindsight devices` lists it, or `synthetic`.
    pub source: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// How samples are written: `s16` or `f32`.
    pub sample_format: SampleFormat,
    /// Also put the audio into the (first camera's) MKV as a PCM track.
    pub mux_into_video: bool,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            enabled: true,
            source: "default".into(),
            sample_rate: 48000,
            channels: 1,
            sample_format: SampleFormat::S16,
            mux_into_video: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    pub ntfy: NtfyConfig,
    pub lsl_markers: LslMarkersConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NtfyConfig {
    /// Subscribe to `server/topic` and take commands from its messages.
    pub enabled: bool,
    pub server: String,
    pub topic: String,
    /// Access token written here (prefer `token_env` or `token_file`).
    pub token: Option<String>,
    /// Environment variable holding an access token (`tk_...`).
    pub token_env: Option<String>,
    /// File holding an access token.
    pub token_file: Option<PathBuf>,
    /// User name, for a password instead of a token.
    pub user: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Topic to publish what happened to (null = no replies).
    pub reply_topic: Option<String>,
    /// Also answer messages that are not commands.
    pub reply_unknown: bool,
    /// The server's keepalive interval (s); a connection quiet for twice this plus 5 s
    /// is taken as dead and replaced.
    pub keepalive_interval: Seconds,
    /// First wait before reconnecting (s); doubles up to `reconnect_max`.
    pub reconnect_initial: Seconds,
    pub reconnect_max: Seconds,
}

impl Default for NtfyConfig {
    fn default() -> Self {
        NtfyConfig {
            enabled: false,
            server: "https://ntfy.sh".into(),
            topic: "change-me".into(),
            token: None,
            token_env: Some("HINDSIGHT_NTFY_TOKEN".into()),
            token_file: None,
            user: None,
            password_env: Some("HINDSIGHT_NTFY_PASSWORD".into()),
            password_file: None,
            reply_topic: None,
            reply_unknown: false,
            keepalive_interval: Seconds(45.0),
            reconnect_initial: Seconds(1.0),
            reconnect_max: Seconds(60.0),
        }
    }
}

/// An ntfy topic name: 1 to 64 of `A-Z a-z 0-9 - _`.
fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LslMarkersConfig {
    /// Follow an LSL string marker stream and turn markers into commands.
    pub enabled: bool,
    /// Name of the marker stream (looked up again whenever it goes away).
    pub stream: String,
    /// Markers that start a recording (exact strings).
    pub start: Vec<String>,
    /// Markers that stop it.
    pub stop: Vec<String>,
    /// Markers recorded as marks (events and chapters) in the running recording.
    pub mark: Vec<String>,
    /// Record every other marker as a mark too.
    pub mark_all: bool,
}

impl Default for LslMarkersConfig {
    fn default() -> Self {
        LslMarkersConfig {
            enabled: false,
            stream: "Markers".into(),
            start: vec!["start".into()],
            stop: vec!["stop".into()],
            mark: Vec::new(),
            mark_all: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LslConfig {
    /// Publish the frame, status and events streams.
    pub enabled: bool,
    /// Frame stream name; `<name>_Status` and `<name>_Events` follow it. With several
    /// cameras: `<name>_<camera>`.
    pub name: String,
    /// Content type of the frame stream (the old tool's `Markers`).
    #[serde(rename = "type")]
    pub frames_type: String,
    pub status_type: String,
    pub events_type: String,
    /// Samples per transmitted chunk; 0 = each sample as it is pushed.
    pub chunk_size: u32,
    /// Seconds of samples an outlet keeps for a slow consumer.
    pub max_buffered: u32,
}

impl Default for LslConfig {
    fn default() -> Self {
        LslConfig {
            enabled: true,
            name: "VideoStream".into(),
            frames_type: "Markers".into(),
            status_type: "RecordingStatus".into(),
            events_type: "Markers".into(),
            chunk_size: 0,
            max_buffered: 360,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the local control API. Anything but loopback needs `token_env`.
    pub listen: SocketAddr,
    /// Environment variable holding a bearer token the API requires (null = none).
    pub token_env: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            token_env: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Terminal dashboard: `auto` = when `hindsight run` is on a terminal.
    pub enabled: Toggle,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: Toggle::Auto,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loading

/// A loaded, checked configuration and where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// "config.yaml" path, or "built-in defaults".
    pub origin: String,
}

impl Config {
    /// Parses and checks YAML text. `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // A file with nothing in it is a mistake (a truncated copy, the wrong file), not a
        // wish for the defaults: running without --config is how to ask for those.
        let has_content = text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if !has_content {
            return Err(ConfigError(format!(
                "{origin}: the file holds no setting (it is empty, or only comments): a truncated \
                 copy? Give at least one key, or run without --config for the built-in defaults"
            )));
        }
        let config: Config = serde_norway::from_str(text).map_err(|e| {
            let msg = e.to_string();
            // YAML's own words for a tab ("cannot start any token") do not say "tab".
            let tab = text.lines().position(|l| {
                l.chars()
                    .take_while(|c| c.is_whitespace())
                    .any(|c| c == '\t')
            });
            if let Some(n) = tab {
                return ConfigError::at(
                    origin,
                    Some(n + 1),
                    "indentation",
                    format!("a tab: YAML indents with spaces only ({msg})"),
                );
            }
            match duplicate_key_line(text, &msg) {
                Some(line) => ConfigError(format!("{origin}, line {line}: {msg}")),
                None => ConfigError(format!("{origin}: {msg}")),
            }
        })?;
        config.check(origin, Some(text))?;
        Ok(config)
    }

    /// Loads `path`, or the built-in defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        match path {
            None => Ok(Loaded {
                config: Config::default(),
                origin: "built-in defaults".into(),
            }),
            Some(p) => {
                let origin = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("cannot read config file {origin}: {e}")))?;
                Ok(Loaded {
                    config: Config::from_yaml(&text, &origin)?,
                    origin,
                })
            }
        }
    }

    /// Applies `key.path` = value overrides; `cameras.*.key` sets the key on every camera.
    pub fn with_overrides(&self, overrides: &[(String, Value)]) -> Result<Config, ConfigError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut tree = serde_norway::to_value(self).expect("config serializes");
        let mut config = self.clone();
        // One at a time, so that a refused value is blamed on the override that set it.
        for (key, value) in overrides {
            let path = key_path(key);
            set_path(&mut tree, &path, value.clone())
                .map_err(|e| ConfigError(format!("override {key}: {e}")))?;
            config = serde_norway::from_value(tree.clone())
                .map_err(|e| ConfigError(format!("override {key}: {e}")))?;
        }
        config.check("command-line override", None)?;
        Ok(config)
    }

    /// Checks that span several keys.
    fn check(&self, origin: &str, text: Option<&str>) -> Result<(), ConfigError> {
        let line = |path: &[&str]| text.and_then(|t| line_of(t, path));
        if self.cameras.is_empty() {
            return Err(ConfigError::at(
                origin,
                line(&["cameras"]),
                "cameras",
                "at least one camera is needed",
            ));
        }
        for (i, cam) in self.cameras.iter().enumerate() {
            let idx = i.to_string();
            let key = |k: &str| format!("cameras[{i}].{k}");
            // Names that differ only in letter case name one file on the disks rigs record
            // to (FAT and exFAT: USB sticks, SD cards) and where recordings are copied
            // (Windows, macOS): the second camera's file could not be made.
            let same = |c: &&CameraConfig| c.name.0.eq_ignore_ascii_case(&cam.name.0);
            if let Some(other) = self.cameras[..i].iter().find(same) {
                let also = match other.name == cam.name {
                    true => String::new(),
                    false => format!(" (as `{}`)", other.name),
                };
                return Err(ConfigError::at(
                    origin,
                    line(&["cameras", &idx, "name"]),
                    &key("name"),
                    format!(
                        "`{}` is used by another camera{also}; names must differ, in more \
                         than letter case (they name its files, and FAT and exFAT disks, \
                         Windows and macOS do not tell `Left` from `left`)",
                        cam.name
                    ),
                ));
            }
            // One V4L2 device, one camera: a second could never have it (a mistake in the
            // configuration, which waiting does not mend).
            let same_device = |c: &&CameraConfig| {
                c.source == SourceKind::V4l2
                    && cam.source == SourceKind::V4l2
                    && same_file(&v4l2_device_path(&c.device), &v4l2_device_path(&cam.device))
            };
            if let Some(first) = self.cameras[..i].iter().find(same_device) {
                return Err(ConfigError::at(
                    origin,
                    line(&["cameras", &idx, "device"]).or(line(&["cameras", &idx, "name"])),
                    &key("device"),
                    format!(
                        "`{}` is camera `{}`'s device too: a V4L2 device gives its frames to one \
                         camera",
                        v4l2_device_path(&cam.device),
                        first.name
                    ),
                ));
            }
            let needs = match cam.source {
                SourceKind::V4l2 => None, // device defaults to /dev/video0
                SourceKind::HttpMjpeg if cam.url.is_none() => Some("url"),
                SourceKind::Command if cam.command.is_none() => Some("command"),
                _ => None,
            };
            if let Some(k) = needs {
                return Err(ConfigError::at(
                    origin,
                    line(&["cameras", &idx, "source"]),
                    &key(k),
                    format!("source `{}` needs `{k}`", cam.source.as_str()),
                ));
            }
            let threads = cam.encoders.threads().unwrap_or(1);
            if threads > 1 && cam.source != SourceKind::Libcamera {
                return Err(ConfigError::at(
                    origin,
                    line(&["cameras", &idx, "encoders"]),
                    &key("encoders"),
                    format!(
                        "{} encoders: only a libcamera camera's frames are encoded on several \
                         threads (source `{}` encodes on its capture thread, or not at all)",
                        threads,
                        cam.source.as_str()
                    ),
                ));
            }
            if let Err(why) = controls_fit(cam) {
                return Err(ConfigError::at(
                    origin,
                    line(&["cameras", &idx, "controls"]),
                    &key("controls"),
                    why,
                ));
            }
            if let CpuCore::Core(n) = cam.cpu_core {
                let cores = core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1);
                if n >= cores {
                    return Err(ConfigError::at(
                        origin,
                        line(&["cameras", &idx, "cpu_core"]),
                        &key("cpu_core"),
                        format!(
                            "core {n} does not exist: this machine has cores 0 to {}",
                            cores - 1
                        ),
                    ));
                }
            }
        }
        if !self.buffer.pre_trigger().is_zero() {
            if let Err(why) = buffer_ceiling_fits(self.buffer.max_bytes.0, usize::BITS) {
                return Err(ConfigError::at(
                    origin,
                    line(&["buffer", "max_bytes"]),
                    "buffer.max_bytes",
                    why,
                ));
            }
        }
        if let Some(rig) = &self.rig {
            if FileNamePart::check(Value::String(rig.clone())).is_err() {
                return Err(ConfigError::at(
                    origin,
                    line(&["rig"]),
                    "rig",
                    format!("`{rig}`: use letters, digits, `-`, `_` or `.`"),
                ));
            }
        }
        let a = &self.audio;
        if a.enabled && !(1_000..=384_000).contains(&a.sample_rate) {
            return Err(ConfigError::at(
                origin,
                line(&["audio", "sample_rate"]),
                "audio.sample_rate",
                format!(
                    "{} Hz is not an audio sample rate (1000 to 384000)",
                    a.sample_rate
                ),
            ));
        }
        if a.enabled && !(1..=32).contains(&a.channels) {
            return Err(ConfigError::at(
                origin,
                line(&["audio", "channels"]),
                "audio.channels",
                format!("{} channels: use 1 to 32", a.channels),
            ));
        }
        if let Err(why) = self.audio_buffer_fits(usize::BITS) {
            return Err(ConfigError::at(
                origin,
                line(&["buffer", "duration"]),
                "buffer.duration",
                why,
            ));
        }
        let n = &self.trigger.ntfy;
        if n.enabled {
            let line_n = |k: &str| line(&["trigger", "ntfy", k]);
            if n.topic == "change-me" {
                return Err(ConfigError::at(
                    origin,
                    line_n("topic"),
                    "trigger.ntfy.topic",
                    "choose a topic of your own: anyone who knows a topic can publish to it",
                ));
            }
            for (key, topic) in [
                ("topic", Some(&n.topic)),
                ("reply_topic", n.reply_topic.as_ref()),
            ] {
                if let Some(t) = topic {
                    if !valid_topic(t) {
                        return Err(ConfigError::at(
                            origin,
                            line_n(key),
                            &format!("trigger.ntfy.{key}"),
                            format!("`{t}` is not an ntfy topic: use 1 to 64 letters, digits, `-` or `_`"),
                        ));
                    }
                }
            }
            if !(n.server.starts_with("http://") || n.server.starts_with("https://")) {
                return Err(ConfigError::at(
                    origin,
                    line_n("server"),
                    "trigger.ntfy.server",
                    format!("`{}` must start with https:// (or http://)", n.server),
                ));
            }
            if n.keepalive_interval.0 < 1.0
                || n.reconnect_initial.0 <= 0.0
                || n.reconnect_max.0 < n.reconnect_initial.0
            {
                return Err(ConfigError::at(
                    origin,
                    line_n("reconnect_max"),
                    "trigger.ntfy",
                    "keepalive_interval must be at least 1 s, reconnect_initial more than 0 s, and reconnect_max at least reconnect_initial",
                ));
            }
        }
        if !self.api.listen.ip().is_loopback() && self.api.token_env.is_none() {
            return Err(ConfigError::at(
                origin,
                line(&["api", "listen"]),
                "api.listen",
                format!(
                    "{} is reachable from other machines: set api.token_env to require a token",
                    self.api.listen
                ),
            ));
        }
        Ok(())
    }

    /// The rig name: configured, or the hostname.
    pub fn rig_name(&self) -> String {
        self.rig.clone().unwrap_or_else(|| {
            let h = gethostname::gethostname().to_string_lossy().into_owned();
            let clean: String = h
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            if clean.is_empty() {
                "rig".into()
            } else {
                clean
            }
        })
    }
}

impl Config {
    /// The value of `key.path` (`storage.root`, `cameras.0.fps`, `trigger.ntfy`), as YAML.
    pub fn get(&self, key: &str) -> Result<Value, ConfigError> {
        let mut v = serde_norway::to_value(self).expect("config serializes");
        if key.is_empty() {
            return Ok(v);
        }
        for part in key_path(key) {
            v = match v {
                Value::Mapping(mut m) => m
                    .remove(Value::String(part.to_string()))
                    .ok_or_else(|| ConfigError(format!("{key}: no key `{part}` here")))?,
                Value::Sequence(mut s) => {
                    let i: usize = part
                        .parse()
                        .map_err(|_| ConfigError(format!("{key}: `{part}` is not a list index")))?;
                    if i >= s.len() {
                        return Err(ConfigError(format!(
                            "{key}: index {i} is out of range: the list has {} entries",
                            s.len()
                        )));
                    }
                    s.swap_remove(i)
                }
                _ => return Err(ConfigError(format!("{key}: `{part}` is below a value"))),
            };
        }
        Ok(v)
    }
}

/// The parts of a key path: `cameras.0.fps`, or `cameras[0].fps` as the messages about a
/// camera's keys write it.
fn key_path(key: &str) -> Vec<&str> {
    key.split(['.', '[', ']'])
        .filter(|p| !p.is_empty())
        .collect()
}

/// Parses a `--set key.path=value` argument; the value is YAML (`5`, `true`, `"text"`,
/// `{width: 640, height: 480}`).
pub fn parse_override(arg: &str) -> Result<(String, Value), ConfigError> {
    let (key, raw) = arg.split_once('=').ok_or_else(|| {
        ConfigError(format!(
            "--set {arg}: expected KEY=VALUE, e.g. buffer.duration=5"
        ))
    })?;
    let value: Value = serde_norway::from_str(raw)
        .map_err(|e| ConfigError(format!("--set {arg}: the value is not YAML: {e}")))?;
    Ok((key.trim().to_string(), value))
}

#[cfg(test)]
mod tests;

/// The device node a V4L2 camera's `device` names: a path, or an index (`0`, the default,
/// is `/dev/video0`).
pub fn v4l2_device_path(device: &Option<String>) -> String {
    let spec = device.as_deref().unwrap_or("0");
    match spec.parse::<usize>() {
        Ok(i) => format!("/dev/video{i}"),
        Err(_) => spec.to_string(),
    }
}

/// Whether two paths name one file: the same once links are followed (a
/// `/dev/v4l/by-id/...` name and the `/dev/videoN` it points at), or the same text when
/// they cannot be followed (a device not plugged in).
fn same_file(a: &str, b: &str) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Whether camera `cam`'s controls can be given to it: only a libcamera camera takes them,
/// and a fixed exposure must fit in a frame at its rate.
fn controls_fit(cam: &CameraConfig) -> Result<(), String> {
    if cam.controls.is_empty() {
        return Ok(());
    }
    let elsewhere = match cam.source {
        SourceKind::Libcamera => None,
        SourceKind::Command => Some(
            "a command camera's program takes its own (rpicam-vid --shutter 2000 --gain 4 \
             --awbgains 1.8,1.5)",
        ),
        SourceKind::V4l2 => Some(
            "a V4L2 camera keeps what v4l2-ctl sets before hindsight starts \
             (v4l2-ctl -d /dev/video0 -c auto_exposure=1,exposure_time_absolute=20)",
        ),
        SourceKind::HttpMjpeg => Some("a network camera is set up through its own web page"),
        SourceKind::Synthetic => Some("the synthetic camera has none"),
    };
    if let Some(why) = elsewhere {
        return Err(format!(
            "only a libcamera camera is given controls (source `{}`: {why})",
            cam.source.as_str()
        ));
    }
    if let Some(us) = cam.controls.get("ExposureTime").and_then(Setting::number) {
        let frame = 1e6 / cam.fps.0;
        if us > frame {
            return Err(format!(
                "ExposureTime {us} µs is longer than a frame at {} fps ({frame:.0} µs): the \
                 camera would lower its rate to expose that long; at most {:.0}",
                cam.fps.0,
                frame.floor()
            ));
        }
    }
    Ok(())
}
