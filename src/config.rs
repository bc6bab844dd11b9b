//! Configuration: `config.yaml`, strict.
//!
//! Every key has a default (documented in place in the shipped `config.yaml`, which a test
//! keeps in step with this file). Unknown keys and bad values are errors that name the key
//! and the line: value checks live in `TryFrom` newtypes, so the YAML deserializer reports
//! them with the key's path and position; checks that span several keys run afterwards and
//! look the line up in the text. CLI flags override keys (`--set key.path=value`), applied to
//! the parsed config and checked again.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_norway::from_str(s).map_err(|_| {
            format!(
                "unknown source `{s}` (expected synthetic, v4l2, libcamera, http-mjpeg or command)"
            )
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Motion JPEG: every frame a JPEG, passed through untouched when the camera makes it.
    Mjpg,
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
    /// Core the capture thread is pinned to: a number, `auto` (the last core, then the
    /// ones before it for further cameras), or `none`.
    pub cpu_core: CpuCore,
    /// Run the capture thread at real-time priority (SCHED_FIFO) when the system allows
    /// it (root, CAP_SYS_NICE, or systemd's LimitRTPRIO=); otherwise normal priority, logged.
    pub realtime: bool,
    /// Raspberry Pi Global Shutter camera (IMX296): before the camera starts, set the
    /// sensor's crop to `resolution`, centred, with media-ctl, for high frame rates
    /// (libcamera and command sources, e.g. rpicam-vid).
    pub imx296_crop: bool,
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
            cpu_core: CpuCore::Auto,
            realtime: true,
            imx296_crop: false,
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

/// `auto`, `true` or `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "Value")]
pub enum Toggle {
    Auto,
    On,
    Off,
}

impl Checked for Toggle {
    fn check(v: Value) -> Result<Self, String> {
        match &v {
            Value::Bool(true) => Ok(Toggle::On),
            Value::Bool(false) => Ok(Toggle::Off),
            Value::String(s) if s == "auto" => Ok(Toggle::Auto),
            _ => Err(format!("expected auto, true or false, got {}", show(&v))),
        }
    }
}

impl From<Toggle> for Value {
    fn from(v: Toggle) -> Value {
        match v {
            Toggle::Auto => Value::String("auto".into()),
            Toggle::On => Value::Bool(true),
            Toggle::Off => Value::Bool(false),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checked value types. Their `TryFrom` errors reach the user with the key's path and line.

/// Frames per second: 0 < fps ≤ 10000.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(into = "f64")]
pub struct Fps(pub f64);

impl Checked for Fps {
    fn check(v: Value) -> Result<Self, String> {
        let v = number(&v)?;
        if v.is_finite() && v > 0.0 && v <= 10_000.0 {
            Ok(Fps(v))
        } else {
            Err(format!(
                "frame rate must be > 0 and ≤ 10000 per second, got {v}"
            ))
        }
    }
}

impl From<Fps> for f64 {
    fn from(v: Fps) -> f64 {
        v.0
    }
}

/// A non-negative number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(into = "f64")]
pub struct Seconds(pub f64);

impl Checked for Seconds {
    fn check(v: Value) -> Result<Self, String> {
        let v = number(&v)?;
        if v.is_finite() && (0.0..=86_400.0).contains(&v) {
            Ok(Seconds(v))
        } else {
            Err(format!(
                "must be a number of seconds from 0 to 86400, got {v}"
            ))
        }
    }
}

impl From<Seconds> for f64 {
    fn from(v: Seconds) -> f64 {
        v.0
    }
}

/// A number of days, more than 0.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(into = "f64")]
pub struct Days(pub f64);

impl Checked for Days {
    fn check(v: Value) -> Result<Self, String> {
        let v = number(&v)?;
        if v.is_finite() && v > 0.0 && v <= 36_500.0 {
            Ok(Days(v))
        } else {
            Err(format!("must be a number of days above 0, got {v}"))
        }
    }
}

impl From<Days> for f64 {
    fn from(v: Days) -> f64 {
        v.0
    }
}

/// The pre-trigger length: 0 to 3600 s (the ring lives in RAM).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(into = "f64")]
pub struct BufferSeconds(pub f64);

impl Checked for BufferSeconds {
    fn check(v: Value) -> Result<Self, String> {
        let v = number(&v)?;
        if v.is_finite() && (0.0..=3600.0).contains(&v) {
            Ok(BufferSeconds(v))
        } else {
            Err(format!(
                "buffer duration must be 0 to 3600 seconds, got {v}"
            ))
        }
    }
}

impl From<BufferSeconds> for f64 {
    fn from(v: BufferSeconds) -> f64 {
        v.0
    }
}

/// An image dimension in pixels: 16 to 16384.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "u32")]
pub struct Dimension(pub u32);

impl Checked for Dimension {
    fn check(v: Value) -> Result<Self, String> {
        let v = whole_number(&v)?;
        if (16..=16384).contains(&v) {
            Ok(Dimension(v as u32))
        } else {
            Err(format!("image size must be 16 to 16384 pixels, got {v}"))
        }
    }
}

impl From<Dimension> for u32 {
    fn from(v: Dimension) -> u32 {
        v.0
    }
}

/// JPEG quality, 1 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "u8")]
pub struct Quality(pub u8);

impl Checked for Quality {
    fn check(v: Value) -> Result<Self, String> {
        let v = whole_number(&v)?;
        if (1..=100).contains(&v) {
            Ok(Quality(v as u8))
        } else {
            Err(format!("JPEG quality must be 1 to 100, got {v}"))
        }
    }
}

impl From<Quality> for u8 {
    fn from(v: Quality) -> u8 {
        v.0
    }
}

/// A part of a file name (prefix, camera name): 1 to 64 of `A-Z a-z 0-9 - _ .`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct FileNamePart(pub String);

impl Checked for FileNamePart {
    fn check(v: Value) -> Result<Self, String> {
        let v = text(&v)?;
        let ok = !v.is_empty()
            && v.len() <= 64
            && !v.starts_with('.')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if ok {
            Ok(FileNamePart(v))
        } else {
            Err(format!(
                "`{v}` cannot be part of a file name: use 1 to 64 letters, digits, `-`, `_` or `.`"
            ))
        }
    }
}

impl From<FileNamePart> for String {
    fn from(v: FileNamePart) -> String {
        v.0
    }
}

impl fmt::Display for FileNamePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A byte count: an integer, or a string with a unit (`512MiB`, `2 GiB`, `800MB`, `64k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "u64")]
pub struct ByteSize(pub u64);

impl Checked for ByteSize {
    fn check(v: Value) -> Result<Self, String> {
        let n = match &v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| format!("byte size must be a whole number, got {n}"))?,
            Value::String(s) => parse_byte_size(s)?,
            other => {
                return Err(format!(
                    "expected a byte size like 512MiB, got {}",
                    show(other)
                ))
            }
        };
        if n < 1 << 20 {
            return Err(format!("at least 1MiB is needed, got {n} bytes"));
        }
        Ok(ByteSize(n))
    }
}

impl From<ByteSize> for u64 {
    fn from(v: ByteSize) -> u64 {
        v.0
    }
}

fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a byte size (like 512MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        u => {
            return Err(format!(
                "unknown unit `{u}` in `{s}` (use B, kB, KiB, MB, MiB, GB, GiB)"
            ))
        }
    };
    Ok((num * mult as f64).round() as u64)
}

/// Where a capture thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "Value")]
pub enum CpuCore {
    Auto,
    Unpinned,
    Core(usize),
}

impl Checked for CpuCore {
    fn check(v: Value) -> Result<Self, String> {
        match &v {
            Value::Null => Ok(CpuCore::Unpinned),
            Value::String(s) if s == "auto" => Ok(CpuCore::Auto),
            Value::String(s) if s == "none" => Ok(CpuCore::Unpinned),
            Value::Number(n) if n.as_u64().is_some() => {
                Ok(CpuCore::Core(n.as_u64().unwrap_or(0) as usize))
            }
            _ => Err(format!(
                "expected a core number, `auto` or `none`, got {}",
                show(&v)
            )),
        }
    }
}

impl From<CpuCore> for Value {
    fn from(v: CpuCore) -> Value {
        match v {
            CpuCore::Auto => Value::String("auto".into()),
            CpuCore::Unpinned => Value::String("none".into()),
            CpuCore::Core(n) => Value::Number((n as u64).into()),
        }
    }
}

// Checked values are deserialized through a visitor, so that a refusal is raised while the
// YAML deserializer still knows the key's path and line (a `try_from` conversion runs after
// it has moved on and the error would name only the enclosing section).

trait Checked: Sized {
    fn check(v: Value) -> Result<Self, String>;
}

struct CheckedVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Checked> serde::de::Visitor<'de> for CheckedVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<T, E> {
        T::check(Value::Bool(v)).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        T::check(Value::Number(v.into())).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        T::check(Value::Number(v.into())).map_err(E::custom)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        T::check(Value::Number(v.into())).map_err(E::custom)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        T::check(Value::String(v.to_string())).map_err(E::custom)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<T, E> {
        T::check(Value::Null).map_err(E::custom)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<T, E> {
        T::check(Value::Null).map_err(E::custom)
    }
}

macro_rules! deserialize_checked {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(CheckedVisitor::<$t>(std::marker::PhantomData))
            }
        }
    )*};
}

deserialize_checked!(
    Toggle,
    Fps,
    Seconds,
    Days,
    BufferSeconds,
    Dimension,
    Quality,
    FileNamePart,
    ByteSize,
    CpuCore
);

fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("expected a number, got {n}")),
        other => Err(format!("expected a number, got {}", show(other))),
    }
}

fn whole_number(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("expected a whole number, got {n}")),
        other => Err(format!("expected a whole number, got {}", show(other))),
    }
}

fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("expected text, got {}", show(other))),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("`{s}`"),
        _ => "a list or section".into(),
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
            let path: Vec<&str> = key.split('.').collect();
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
            if self.cameras[..i].iter().any(|c| c.name == cam.name) {
                return Err(ConfigError::at(
                    origin,
                    line(&["cameras", &idx, "name"]),
                    &key("name"),
                    format!(
                        "`{}` is used by another camera; names must differ",
                        cam.name
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
        for part in key.split('.') {
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

fn set_path(tree: &mut Value, path: &[&str], value: Value) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        *tree = value;
        return Ok(());
    };
    match tree {
        Value::Mapping(map) => {
            let key = Value::String((*head).to_string());
            if !map.contains_key(&key) {
                let known: Vec<String> = map
                    .keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                return Err(format!(
                    "unknown key `{head}` (known here: {})",
                    known.join(", ")
                ));
            }
            set_path(map.get_mut(&key).expect("checked"), rest, value)
        }
        Value::Sequence(seq) => {
            if *head == "*" {
                for item in seq.iter_mut() {
                    set_path(item, rest, value.clone())?;
                }
                Ok(())
            } else {
                let i: usize = head
                    .parse()
                    .map_err(|_| format!("`{head}` is not a list index (use a number or *)"))?;
                let len = seq.len();
                let item = seq.get_mut(i).ok_or_else(|| {
                    format!("index {i} is out of range: the list has {len} entries")
                })?;
                set_path(item, rest, value)
            }
        }
        _ => Err(format!("`{head}`: the key above it is not a section")),
    }
}

/// Finds the 1-based line of a key path in block-style YAML (`["cameras", "1", "fps"]`).
/// Good enough for naming the line of a cross-key error; `None` if not found.
/// For a "duplicate field `key`" error, the line of the second `key:` in the mapping the
/// error names (`at line L column C`: where the mapping starts; none: the top level).
fn duplicate_key_line(text: &str, msg: &str) -> Option<usize> {
    let key = msg.split("duplicate field `").nth(1)?.split('`').next()?;
    let (from, column) = match msg.rsplit_once(" at line ") {
        Some((_, at)) => {
            let mut it = at.split(" column ");
            let l: usize = it.next()?.trim().parse().ok()?;
            let c: usize = it
                .next()?
                .trim()
                .split(|ch: char| !ch.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            (l - 1, c - 1)
        }
        None => (0, 0),
    };
    text.lines()
        .enumerate()
        .skip(from)
        .filter(|(n, l)| {
            // On the mapping's first line the key may follow a `- `.
            let body = if *n == from {
                l.get(column..).unwrap_or("")
            } else {
                l
            };
            let indent = if *n == from {
                column
            } else {
                l.len() - l.trim_start().len()
            };
            indent == column
                && body
                    .trim_start()
                    .strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|(n, _)| n + 1)
        .nth(1)
}

fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut min_indent = 0usize;
    let mut found = None;
    for part in path {
        if let Ok(index) = part.parse::<usize>() {
            // The index-th sequence item below the current position.
            let mut seen = 0;
            let mut hit = None;
            for (n, l) in lines.iter().enumerate().skip(start) {
                let indent = l.len() - l.trim_start().len();
                let t = l.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                if indent < min_indent {
                    break;
                }
                if t.starts_with("- ") || t == "-" {
                    if seen == index {
                        hit = Some((n, indent + 2));
                        break;
                    }
                    seen += 1;
                }
            }
            let (n, ind) = hit?;
            // Keys of the item may sit on the dash line itself.
            start = n;
            min_indent = ind;
            found = Some(n);
            continue;
        }
        // A key inside a flow mapping on the parent's line: `resolution: {width: 400, ...}`.
        if let Some(n) = found {
            let l = lines[n];
            if let Some(brace) = l.find('{') {
                if l[brace..].contains(&format!("{part}:")) {
                    start = n + 1;
                    continue;
                }
            }
        }
        let mut hit = None;
        for (n, l) in lines.iter().enumerate().skip(start) {
            let t = l.trim_start().trim_start_matches("- ");
            let indent = l.len() - t.len();
            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                continue;
            }
            if n > start && indent < min_indent {
                break;
            }
            if t.starts_with(&format!("{part}:")) {
                hit = Some((n, indent + 1));
                break;
            }
        }
        let (n, ind) = hit?;
        start = n + 1;
        min_indent = ind;
        found = Some(n);
    }
    found.map(|n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        Config::from_yaml(yaml, "test.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_files_duplicates_and_tabs_get_clear_answers() {
        assert!(err("").contains("holds no setting"));
        assert!(err("# just a comment\n\n").contains("holds no setting"));
        let dup = err("rig: a\nstorage:\n  prefix: x\nrig: b\n");
        assert!(
            dup.starts_with("test.yaml, line 4: duplicate field `rig`"),
            "{dup}"
        );
        let nested = err("storage:\n  prefix: x\n  root: /a\n  prefix: y\n");
        assert!(nested.contains("line 4"), "{nested}");
        let tab = err("storage:\n\tprefix: x\n");
        assert!(tab.contains("line 2") && tab.contains("a tab"), "{tab}");
        // A tab where YAML allows it is fine.
        assert!(Config::from_yaml("rig: a\t# the rig\n", "t").is_ok());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = err("buffer:\n  duration: 5\ncameras:\n  - name: cam0\n    fpx: 100\n");
        assert!(e.contains("cameras[0]"), "{e}");
        assert!(e.contains("unknown field `fpx`"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn wrong_type_is_named_with_its_line() {
        let e = err("buffer:\n  duration: twenty\n");
        assert!(e.contains("buffer.duration"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn impossible_values_are_refused_with_key_and_line() {
        let e = err("cameras:\n  - name: a\n    fps: 0\n");
        assert!(
            e.contains("cameras[0].fps") && e.contains("line 3") && e.contains("> 0"),
            "{e}"
        );
        let e = err("cameras:\n  - resolution: {width: 100000, height: 10}\n");
        assert!(e.contains("width") && e.contains("16384"), "{e}");
        let e = err("buffer:\n  max_bytes: 12 parsecs\n");
        assert!(
            e.contains("buffer.max_bytes") && e.contains("parsecs"),
            "{e}"
        );
        let e = err("storage:\n  prefix: a/b\n");
        assert!(
            e.contains("storage.prefix") && e.contains("file name"),
            "{e}"
        );
        let e = err("cameras:\n  - quality: 101\n");
        assert!(
            e.contains("cameras[0].quality") && e.contains("1 to 100"),
            "{e}"
        );
    }

    #[test]
    fn cross_key_errors_find_their_line() {
        let yaml = "cameras:\n  - name: a\n  - name: b\n    fps: 30\n  - name: a\n";
        let e = err(yaml);
        assert!(e.contains("line 5") && e.contains("cameras[2].name"), "{e}");
        let e = err("cameras:\n  - name: net\n    source: http-mjpeg\n");
        assert!(e.contains("cameras[0].url") && e.contains("line 3"), "{e}");
        let e = err("cameras:\n  - cpu_core: 4096\n");
        assert!(e.contains("core 4096 does not exist"), "{e}");
        let e = err("api:\n  listen: 0.0.0.0:8787\n");
        assert!(e.contains("api.listen") && e.contains("token"), "{e}");
    }

    #[test]
    fn an_enabled_ntfy_trigger_needs_a_topic_of_its_own() {
        let e = err("trigger:\n  ntfy:\n    enabled: true\n");
        assert!(
            e.contains("trigger.ntfy.topic") && e.contains("of your own"),
            "{e}"
        );
        let e = err("trigger:\n  ntfy:\n    enabled: true\n    topic: a/b\n");
        assert!(
            e.contains("not an ntfy topic") && e.contains("line 4"),
            "{e}"
        );
        let e = err("trigger:\n  ntfy:\n    enabled: true\n    topic: lab\n    server: ntfy.sh\n");
        assert!(e.contains("https://"), "{e}");
        assert!(Config::from_yaml(
            "trigger:\n  ntfy:\n    enabled: true\n    topic: lab-7\n",
            "x"
        )
        .is_ok());
    }

    #[test]
    fn byte_sizes_parse_with_units() {
        let c = Config::from_yaml("buffer:\n  max_bytes: 512MiB\n", "x").unwrap();
        assert_eq!(c.buffer.max_bytes.0, 512 << 20);
        let c = Config::from_yaml("buffer:\n  max_bytes: 2 GB\n", "x").unwrap();
        assert_eq!(c.buffer.max_bytes.0, 2_000_000_000);
        let c = Config::from_yaml("buffer:\n  max_bytes: 1048576\n", "x").unwrap();
        assert_eq!(c.buffer.max_bytes.0, 1 << 20);
        assert!(err("buffer:\n  max_bytes: 1k\n").contains("at least 1MiB"));
    }

    #[test]
    fn overrides_change_keys_and_are_checked() {
        let base = Config::default();
        let sets: Vec<_> = [
            "buffer.duration=3",
            "cameras.0.fps=30",
            "cameras.*.resolution={width: 640, height: 480}",
        ]
        .iter()
        .map(|a| parse_override(a).unwrap())
        .collect();
        let c = base.with_overrides(&sets).unwrap();
        assert_eq!(c.buffer.duration.0, 3.0);
        assert_eq!(c.cameras[0].fps.0, 30.0);
        assert_eq!(c.cameras[0].resolution.width.0, 640);
        let e = base
            .with_overrides(&[parse_override("buffer.durashun=3").unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `durashun`"), "{e}");
        let e = base
            .with_overrides(&[parse_override("cameras.0.fps=-1").unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cameras.0.fps") && e.contains("> 0"), "{e}");
        assert!(parse_override("no-equals-sign").is_err());
    }

    /// The shipped config.yaml is the config reference: it must parse, and it must mention
    /// every key this file knows, with the default value.
    #[test]
    fn shipped_config_yaml_documents_every_key_with_its_default() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"))
            .expect("config.yaml at the top level");
        let shipped = Config::from_yaml(&text, "config.yaml").expect("config.yaml parses");
        assert_eq!(
            shipped,
            Config::default(),
            "config.yaml must show the built-in defaults"
        );
        let tree = serde_norway::to_value(Config::default()).unwrap();
        let mut missing = Vec::new();
        collect_leaf_keys(&tree, &mut Vec::new(), &mut |path| {
            if line_of(&text, path).is_none() {
                missing.push(path.join("."));
            }
        });
        assert!(
            missing.is_empty(),
            "config.yaml does not document: {missing:?}"
        );
    }

    fn collect_leaf_keys<'a>(v: &'a Value, path: &mut Vec<&'a str>, f: &mut dyn FnMut(&[&str])) {
        match v {
            Value::Mapping(m) => {
                for (k, child) in m {
                    path.push(k.as_str().unwrap());
                    collect_leaf_keys(child, path, f);
                    path.pop();
                }
            }
            Value::Sequence(s) if !s.is_empty() && s[0].is_mapping() => {
                path.push("0");
                collect_leaf_keys(&s[0], path, f);
                path.pop();
            }
            _ => f(path),
        }
    }
}
