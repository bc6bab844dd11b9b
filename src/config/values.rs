//! The configuration's checked values: each type accepts only good values, and its
//! refusal reaches the user with the key's path and line (the YAML deserializer reports it
//! while it still knows where it is). Numbers with a range are one macro
//! ([`checked_number!`]); values with their own syntax (byte sizes, `auto`/core numbers,
//! file-name parts, toggles) are written out.
//!
//! What does not belong here: checks that span several keys (`mod.rs`, after parsing).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_norway::Value;

/// Why a value was refused, in words for the user (the deserializer adds key and line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl From<String> for ValueError {
    fn from(s: String) -> Self {
        ValueError(s)
    }
}

// Checked values are deserialized through a visitor, so that a refusal is raised while the
// YAML deserializer still knows the key's path and line (a `try_from` conversion runs after
// it has moved on and the error would name only the enclosing section).

pub(super) trait Checked: Sized {
    fn check(v: Value) -> Result<Self, ValueError>;
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

/// `auto`, `true` or `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "Value")]
pub enum Toggle {
    Auto,
    On,
    Off,
}

impl Checked for Toggle {
    fn check(v: Value) -> Result<Self, ValueError> {
        match &v {
            Value::Bool(true) => Ok(Toggle::On),
            Value::Bool(false) => Ok(Toggle::Off),
            Value::String(s) if s == "auto" => Ok(Toggle::Auto),
            _ => Err(ValueError(format!(
                "expected auto, true or false, got {}",
                show(&v)
            ))),
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

/// A number checked on the way in: the type, what it holds, how it is read (`number` or
/// `whole_number`), the test it must pass and what the user is told when it does not
/// (", got <value>" is added).
macro_rules! checked_number {
    ($(#[$doc:meta])* $name:ident($inner:ty), $read:ident, |$v:ident| $ok:expr, $msg:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
        pub struct $name(pub $inner);

        impl Checked for $name {
            fn check(v: Value) -> Result<Self, ValueError> {
                let $v = $read(&v)?;
                if $ok {
                    Ok($name($v as $inner))
                } else {
                    Err(ValueError(format!(concat!($msg, ", got {}"), $v)))
                }
            }
        }

        impl From<$name> for $inner {
            fn from(v: $name) -> $inner {
                v.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        deserialize_checked!($name);
    };
}

checked_number!(
    /// Frames per second: 0 < fps ≤ 10000.
    Fps(f64),
    number,
    |v| v.is_finite() && v > 0.0 && v <= 10_000.0,
    "frame rate must be > 0 and ≤ 10000 per second"
);

checked_number!(
    /// A non-negative number of seconds, up to a day.
    Seconds(f64),
    number,
    |v| v.is_finite() && (0.0..=86_400.0).contains(&v),
    "must be a number of seconds from 0 to 86400"
);

checked_number!(
    /// A number of days, more than 0.
    Days(f64),
    number,
    |v| v.is_finite() && v > 0.0 && v <= 36_500.0,
    "must be a number of days above 0"
);

checked_number!(
    /// The pre-trigger length: 0 to 3600 s (the ring lives in RAM).
    BufferSeconds(f64),
    number,
    |v| v.is_finite() && (0.0..=3600.0).contains(&v),
    "buffer duration must be 0 to 3600 seconds"
);

checked_number!(
    /// An image dimension in pixels: 16 to 16384.
    Dimension(u32),
    whole_number,
    |v| (16..=16384).contains(&v),
    "image size must be 16 to 16384 pixels"
);

checked_number!(
    /// JPEG quality, 1 to 100.
    Quality(u8),
    whole_number,
    |v| (1..=100).contains(&v),
    "JPEG quality must be 1 to 100"
);

/// Threads that encode a libcamera camera's frames to JPEG: `auto` (as many as its size,
/// quality and rate need on this machine, decided each time it opens) or 1 to 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "Value")]
pub enum Encoders {
    Auto,
    Threads(u8),
}

impl Checked for Encoders {
    fn check(v: Value) -> Result<Self, ValueError> {
        const SAY: &str = "encoders must be `auto` or 1 to 16 threads";
        match &v {
            Value::String(s) if s == "auto" => Ok(Encoders::Auto),
            Value::Number(_) => match whole_number(&v)? {
                n @ 1..=16 => Ok(Encoders::Threads(n as u8)),
                n => Err(ValueError(format!("{SAY}, got {n}"))),
            },
            _ => Err(ValueError(format!("{SAY}, got {}", show(&v)))),
        }
    }
}

impl Encoders {
    /// Threads set in the configuration (`None`: `auto`).
    pub fn threads(self) -> Option<u8> {
        match self {
            Encoders::Auto => None,
            Encoders::Threads(n) => Some(n),
        }
    }
}

impl From<Encoders> for Value {
    fn from(v: Encoders) -> Value {
        match v {
            Encoders::Auto => Value::String("auto".into()),
            Encoders::Threads(n) => Value::Number(n.into()),
        }
    }
}

// Whole numbers compare exactly.
impl Eq for Dimension {}
impl Eq for Quality {}

/// A part of a file name (prefix, camera name): 1 to 64 of `A-Z a-z 0-9 - _ .`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct FileNamePart(pub String);

impl Checked for FileNamePart {
    fn check(v: Value) -> Result<Self, ValueError> {
        let v = text(&v)?;
        let ok = !v.is_empty()
            && v.len() <= 64
            && !v.starts_with('.')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if ok {
            Ok(FileNamePart(v))
        } else {
            Err(ValueError(format!(
                "`{v}` cannot be part of a file name: use 1 to 64 letters, digits, `-`, `_` or `.`"
            )))
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
    fn check(v: Value) -> Result<Self, ValueError> {
        let n = match &v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| ValueError(format!("byte size must be a whole number, got {n}")))?,
            Value::String(s) => parse_byte_size(s)?,
            other => {
                return Err(ValueError(format!(
                    "expected a byte size like 512MiB, got {}",
                    show(other)
                )))
            }
        };
        if n < 1 << 20 {
            return Err(ValueError(format!(
                "at least 1MiB is needed, got {n} bytes"
            )));
        }
        Ok(ByteSize(n))
    }
}

impl From<ByteSize> for u64 {
    fn from(v: ByteSize) -> u64 {
        v.0
    }
}

fn parse_byte_size(s: &str) -> Result<u64, ValueError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| ValueError(format!("`{s}` is not a byte size (like 512MiB)")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        u => {
            return Err(ValueError(format!(
                "unknown unit `{u}` in `{s}` (use B, kB, KiB, MB, MiB, GB, GiB)"
            )))
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
    fn check(v: Value) -> Result<Self, ValueError> {
        match &v {
            Value::Null => Ok(CpuCore::Unpinned),
            Value::String(s) if s == "auto" => Ok(CpuCore::Auto),
            Value::String(s) if s == "none" => Ok(CpuCore::Unpinned),
            Value::Number(n) if n.as_u64().is_some() => {
                Ok(CpuCore::Core(n.as_u64().unwrap_or(0) as usize))
            }
            _ => Err(ValueError(format!(
                "expected a core number, `auto` or `none`, got {}",
                show(&v)
            ))),
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

/// The largest file a recording writes before it goes on in a next part: `auto` (what the
/// recordings' filesystem allows, just under 4 GiB on FAT, and the process's own file size
/// limit if it has one; no limit elsewhere) or a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "Value")]
pub enum MaxFileSize {
    Auto,
    Bytes(ByteSize),
}

impl Checked for MaxFileSize {
    fn check(v: Value) -> Result<Self, ValueError> {
        match &v {
            Value::String(s) if s == "auto" => Ok(MaxFileSize::Auto),
            Value::Number(_) | Value::String(_) => ByteSize::check(v)
                .map(MaxFileSize::Bytes)
                .map_err(|e| ValueError(format!("expected `auto` or a size like 2GiB: {e}"))),
            _ => Err(ValueError(format!(
                "expected `auto` or a size like 2GiB, got {}",
                show(&v)
            ))),
        }
    }
}

impl MaxFileSize {
    /// The size set, if one is (`auto`: the filesystem's, which `storage` asks).
    pub fn bytes(self) -> Option<u64> {
        match self {
            MaxFileSize::Auto => None,
            MaxFileSize::Bytes(b) => Some(b.0),
        }
    }
}

impl From<MaxFileSize> for Value {
    fn from(v: MaxFileSize) -> Value {
        match v {
            MaxFileSize::Auto => Value::String("auto".into()),
            MaxFileSize::Bytes(b) => Value::Number(b.0.into()),
        }
    }
}

deserialize_checked!(
    Toggle,
    FileNamePart,
    ByteSize,
    CpuCore,
    MaxFileSize,
    Encoders
);

fn number(v: &Value) -> Result<f64, ValueError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ValueError(format!("expected a number, got {n}"))),
        other => Err(ValueError(format!(
            "expected a number, got {}",
            show(other)
        ))),
    }
}

fn whole_number(v: &Value) -> Result<i64, ValueError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| ValueError(format!("expected a whole number, got {n}"))),
        other => Err(ValueError(format!(
            "expected a whole number, got {}",
            show(other)
        ))),
    }
}

fn text(v: &Value) -> Result<String, ValueError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(ValueError(format!("expected text, got {}", show(other)))),
    }
}

/// A value as an error names it: `` `text` ``, a number, "an empty list".
pub(super) fn show(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("`{s}`"),
        Value::Sequence(s) if s.is_empty() => "an empty list".into(),
        _ => "a list or section".into(),
    }
}
