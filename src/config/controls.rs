//! `cameras[].controls`: the libcamera controls a camera is started with (a fixed exposure
//! and gain above all), as the lab writes them. Here only their form is checked: a
//! control's name, and a value of a kind libcamera has (true/false, a number, a list of
//! numbers, or the name of one of a control's values such as `Manual`). Whether the camera
//! has the control and takes the value is checked when it opens, against what the camera
//! says it offers (`source::libcamera::controls`).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use super::values::show;

/// The controls, in the order the configuration gives them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(into = "Value")]
pub struct Controls(pub Vec<(String, Setting)>);

/// One control's value as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Setting {
    Bool(bool),
    Int(i64),
    Float(f64),
    /// One of the control's named values (`Manual`, `Off`, ...).
    Name(String),
    /// Numbers (`ColourGains: [1.8, 1.5]`, `ScalerCrop: [x, y, width, height]`): each an
    /// `Int` or a `Float`.
    List(Vec<Setting>),
}

impl Controls {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// The controls as one line: `ExposureTime=2000 AnalogueGain=4`.
impl fmt::Display for Controls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, s)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Bool(b) => write!(f, "{b}"),
            Setting::Int(n) => write!(f, "{n}"),
            Setting::Float(x) => write!(f, "{x}"),
            Setting::Name(s) => f.write_str(s),
            Setting::List(l) => {
                f.write_str("[")?;
                for (i, s) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{s}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl Setting {
    /// The value as a number, where it is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Setting::Int(n) => Some(*n as f64),
            Setting::Float(x) => Some(*x),
            _ => None,
        }
    }

    fn from_value(name: &str, v: &Value) -> Result<Setting, String> {
        let number = |v: &Value| match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                n.as_i64().map(Setting::Int).ok_or_else(|| n.to_string())
            }
            Value::Number(n) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Setting::Float)
                .ok_or_else(|| n.to_string()),
            _ => Err(String::new()),
        };
        let kinds = "true/false, a number, a list of numbers, or the name of one of its values \
                     (such as `Manual`)";
        match v {
            Value::Bool(b) => Ok(Setting::Bool(*b)),
            Value::Number(n) => {
                number(v).map_err(|_| format!("{name}: {n} is not a number libcamera takes"))
            }
            Value::String(s) if is_name(s) => Ok(Setting::Name(s.clone())),
            Value::Sequence(items) if !items.is_empty() => items
                .iter()
                .map(|i| {
                    number(i)
                        .map_err(|_| format!("{name}: a list holds numbers only, got {}", show(i)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Setting::List),
            other => Err(format!("{name}: takes {kinds}; got {}", show(other))),
        }
    }
}

/// A libcamera control's name: `ExposureTime`, a vendor's `rpi::StatsOutputEnable`.
fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '_')
}

impl From<Setting> for Value {
    fn from(s: Setting) -> Value {
        match s {
            Setting::Bool(b) => Value::Bool(b),
            Setting::Int(n) => Value::Number(n.into()),
            Setting::Float(x) => Value::Number(x.into()),
            Setting::Name(s) => Value::String(s),
            Setting::List(l) => Value::Sequence(l.into_iter().map(Value::from).collect()),
        }
    }
}

impl From<Controls> for Value {
    fn from(c: Controls) -> Value {
        let mut m = Mapping::new();
        for (name, s) in c.0 {
            m.insert(Value::String(name), s.into());
        }
        Value::Mapping(m)
    }
}

struct ControlsVisitor;

impl<'de> serde::de::Visitor<'de> for ControlsVisitor {
    type Value = Controls;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a section of libcamera controls, one per line (`ExposureTime: 2000`)")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Controls, E> {
        Ok(Controls::default())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Controls, E> {
        Ok(Controls::default())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Controls, A::Error> {
        use serde::de::Error;
        let mut out: Vec<(String, Setting)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if !is_name(&name) {
                return Err(A::Error::custom(format!(
                    "`{name}` is not a libcamera control's name (such as ExposureTime, \
                     AnalogueGain: `hindsight devices` lists a camera's)"
                )));
            }
            if name == "FrameDurationLimits" {
                return Err(A::Error::custom(
                    "FrameDurationLimits is hindsight's to set: it follows the camera's `fps`",
                ));
            }
            let v: Value = map.next_value()?;
            let s = Setting::from_value(&name, &v).map_err(A::Error::custom)?;
            if out.iter().any(|(n, _)| *n == name) {
                return Err(A::Error::custom(format!("{name} is set twice")));
            }
            out.push((name, s));
        }
        Ok(Controls(out))
    }
}

impl<'de> Deserialize<'de> for Controls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ControlsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Controls, String> {
        serde_norway::from_str::<Controls>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_of_value_in_the_order_written_and_back() {
        let c = parse(
            "ExposureTime: 2000\nAnalogueGain: 4.5\nAeEnable: false\nAwbMode: Daylight\n\
             ColourGains: [1.8, 2]\n",
        )
        .unwrap();
        assert_eq!(
            c.0,
            vec![
                ("ExposureTime".into(), Setting::Int(2000)),
                ("AnalogueGain".into(), Setting::Float(4.5)),
                ("AeEnable".into(), Setting::Bool(false)),
                ("AwbMode".into(), Setting::Name("Daylight".into())),
                (
                    "ColourGains".into(),
                    Setting::List(vec![Setting::Float(1.8), Setting::Int(2)])
                ),
            ]
        );
        assert_eq!(
            c.to_string(),
            "ExposureTime=2000 AnalogueGain=4.5 AeEnable=false AwbMode=Daylight ColourGains=[1.8, 2]"
        );
        // Through a YAML value (as `--set` overrides go) and back: the same.
        let v: Value = c.clone().into();
        assert_eq!(serde_norway::from_value::<Controls>(v).unwrap(), c);
        assert!(parse("~").unwrap().is_empty());
    }

    #[test]
    fn what_is_no_control_value_is_refused_in_words() {
        let e = parse("ExposureTime: [a, b]\n").unwrap_err();
        assert!(e.contains("a list holds numbers only, got `a`"), "{e}");
        let e = parse("ExposureTime: {a: 1}\n").unwrap_err();
        assert!(
            e.contains("ExposureTime: takes true/false, a number"),
            "{e}"
        );
        let e = parse("ExposureTime: \"2 ms\"\n").unwrap_err();
        assert!(e.contains("got `2 ms`"), "{e}");
        let e = parse("Exposure Time: 2000\n").unwrap_err();
        assert!(
            e.contains("`Exposure Time` is not a libcamera control's name"),
            "{e}"
        );
        let e = parse("FrameDurationLimits: [10000, 10000]\n").unwrap_err();
        assert!(e.contains("it follows the camera's `fps`"), "{e}");
        let e = parse("ColourGains: []\n").unwrap_err();
        assert!(e.contains("got an empty list"), "{e}");
        let e = parse("- ExposureTime\n").unwrap_err();
        assert!(e.contains("a section of libcamera controls"), "{e}");
    }
}
