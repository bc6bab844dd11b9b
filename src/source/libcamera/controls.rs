//! A camera's `controls:` against what the camera offers: each named control must be one
//! of the camera's, its value of the control's type and within its range (libcamera
//! itself would clamp or ignore a wrong one without a word). Plain code, tested without a
//! camera: the libcamera thread describes each control it finds as a [`Spec`] and turns
//! the [`Typed`] values into libcamera's.
//!
//! One rule is added to what the lab wrote: on libcamera 0.5 and later a manual
//! `ExposureTime` or `AnalogueGain` counts only while `ExposureTimeMode` or
//! `AnalogueGainMode` is `Manual` (the Raspberry Pi's ignores it otherwise, silently), so a
//! configuration that sets the value and not its mode gets the mode too
//! ([`with_modes`]), as `rpicam-vid --shutter` does.

use crate::config::{Controls, Setting};

/// The types of control hindsight can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Byte,
    Int32,
    Int64,
    Float,
    /// `[x, y, width, height]`.
    Rectangle,
    /// What hindsight does not set (strings, sizes, points).
    Other,
}

/// What the camera says of one of its controls.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    pub kind: Kind,
    /// Values it holds: 1 for a single value, N for a fixed array, 0 for an array of any
    /// length.
    pub size: usize,
    /// The range the camera gives, where it is a number.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The values it allows (an enumeration's), when it lists them; with their names
    /// without the part they share ([`short_names`]: `Manual` for libcamera's
    /// `ExposureTimeModeManual`).
    pub values: Vec<(i64, Option<String>)>,
    /// The part the values' names share (`ExposureTimeMode`): a name is also taken whole.
    pub prefix: String,
}

/// An enumeration's value names without the words they all begin with: libcamera names
/// `ExposureTimeModeAuto` and `ExposureTimeModeManual` what a lab calls `Auto` and
/// `Manual`. Returns the shared part and the short names; a name is cut only before a
/// capital letter, and never to nothing.
pub fn short_names(names: &[String]) -> (String, Vec<String>) {
    let Some(first) = names.first() else {
        return (String::new(), Vec::new());
    };
    let mut cut = 0;
    for (i, c) in first.char_indices().skip(1) {
        if !c.is_ascii_uppercase() {
            continue;
        }
        let shared = &first[..i];
        if names.iter().all(|n| n.starts_with(shared) && n.len() > i) {
            cut = i;
        } else {
            break;
        }
    }
    if names.len() < 2 {
        cut = 0;
    }
    (
        first[..cut].to_string(),
        names.iter().map(|n| n[cut..].to_string()).collect(),
    )
}

/// A value ready for libcamera.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    Bool(bool),
    Byte(Vec<u8>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Rectangle([i64; 4]),
}

/// The controls to give the camera: the lab's, with the modes their manual values need
/// where the camera has those modes (`has`) and the lab named neither the mode nor
/// `AeEnable`. The modes go first.
pub fn with_modes(controls: &Controls, has: impl Fn(&str) -> bool) -> Controls {
    let mut modes = Vec::new();
    for (value, mode) in [
        ("ExposureTime", "ExposureTimeMode"),
        ("AnalogueGain", "AnalogueGainMode"),
    ] {
        if controls.get(value).is_some()
            && controls.get(mode).is_none()
            && controls.get("AeEnable").is_none()
            && has(mode)
        {
            modes.push((mode.to_string(), Setting::Name("Manual".into())));
        }
    }
    Controls(
        modes
            .into_iter()
            .chain(controls.0.iter().cloned())
            .collect(),
    )
}

/// The value of control `spec` that `setting` asks for, or why it cannot be, in words that
/// name the camera.
pub fn resolve(camera: &str, spec: &Spec, setting: &Setting) -> Result<Typed, String> {
    let name = &spec.name;
    let wrong = |wants: &str| format!("{camera}: {name} takes {wants}, not `{setting}`");
    let numbers = || given(camera, spec, setting);
    let in_range = |x: f64| -> Result<(), String> {
        let (lo, hi) = (spec.min.unwrap_or(f64::MIN), spec.max.unwrap_or(f64::MAX));
        if spec.values.is_empty() && (x < lo || x > hi) && lo <= hi {
            return Err(format!(
                "{camera}: {name} {x} is outside what the camera allows ({} to {})",
                show(lo),
                show(hi)
            ));
        }
        Ok(())
    };
    match spec.kind {
        Kind::Bool => match setting {
            Setting::Bool(b) => Ok(Typed::Bool(*b)),
            _ => Err(wrong("true or false")),
        },
        Kind::Float => {
            let mut out = Vec::new();
            for s in numbers()? {
                let x = s.number().ok_or_else(|| wrong("a number"))?;
                in_range(x)?;
                out.push(x as f32);
            }
            Ok(Typed::Float(out))
        }
        Kind::Int32 | Kind::Int64 | Kind::Byte => {
            let mut out = Vec::new();
            for s in numbers_or_name(spec, setting, camera)? {
                in_range(s as f64)?;
                out.push(s);
            }
            let fits = |lo: i64, hi: i64| out.iter().all(|x| (lo..=hi).contains(x));
            match spec.kind {
                Kind::Int32 if fits(i32::MIN.into(), i32::MAX.into()) => {
                    Ok(Typed::Int32(out.iter().map(|&x| x as i32).collect()))
                }
                Kind::Byte if fits(0, 255) => {
                    Ok(Typed::Byte(out.iter().map(|&x| x as u8).collect()))
                }
                Kind::Int64 => Ok(Typed::Int64(out)),
                _ => Err(wrong("a smaller number")),
            }
        }
        Kind::Rectangle => match setting {
            Setting::List(l) if l.len() == 4 => {
                let mut r = [0i64; 4];
                for (i, s) in l.iter().enumerate() {
                    match s {
                        Setting::Int(n) if *n >= 0 => r[i] = *n,
                        _ => return Err(wrong("[x, y, width, height] in whole pixels")),
                    }
                }
                Ok(Typed::Rectangle(r))
            }
            _ => Err(wrong("[x, y, width, height]")),
        },
        Kind::Other => Err(format!(
            "{camera}: {name} is not a control hindsight sets (of a type other than true/false, \
             numbers or a rectangle)"
        )),
    }
    .and_then(|t| {
        if let (Some(n), false) = (int_of(&t), spec.values.is_empty()) {
            if !spec.values.iter().any(|(v, _)| *v == n) {
                return Err(format!(
                    "{camera}: {name} `{setting}` is not one of its values: {}",
                    values_list(spec)
                ));
            }
        }
        Ok(t)
    })
}

/// The values given, one or a list, checked against the count the control holds.
fn given<'a>(camera: &str, spec: &Spec, setting: &'a Setting) -> Result<Vec<&'a Setting>, String> {
    let list: Vec<&Setting> = match setting {
        Setting::List(l) => l.iter().collect(),
        one => vec![one],
    };
    if spec.size != 0 && list.len() != spec.size {
        return Err(format!(
            "{camera}: {} takes {} value{}, not {} (`{setting}`)",
            spec.name,
            spec.size,
            if spec.size == 1 { "" } else { "s" },
            list.len()
        ));
    }
    Ok(list)
}

/// A whole-number control's values: numbers, or the name of one of its values.
fn numbers_or_name(spec: &Spec, setting: &Setting, camera: &str) -> Result<Vec<i64>, String> {
    let name = &spec.name;
    given(camera, spec, setting)?
        .into_iter()
        .map(|s| match s {
            Setting::Int(n) => Ok(*n),
            Setting::Name(word) => spec
                .values
                .iter()
                .find(|(_, n)| {
                    n.as_deref().is_some_and(|n| {
                        n.eq_ignore_ascii_case(word)
                            || format!("{}{n}", spec.prefix).eq_ignore_ascii_case(word)
                    })
                })
                .map(|(v, _)| *v)
                .ok_or_else(|| {
                    if spec.values.iter().any(|(_, n)| n.is_some()) {
                        format!(
                            "{camera}: {name} `{word}` is not one of its values: {}",
                            values_list(spec)
                        )
                    } else {
                        format!("{camera}: {name} takes a whole number, not `{word}`")
                    }
                }),
            other => Err(format!(
                "{camera}: {name} takes a whole number{}, not `{other}`",
                if spec.values.iter().any(|(_, n)| n.is_some()) {
                    format!(" or one of {}", values_list(spec))
                } else {
                    String::new()
                }
            )),
        })
        .collect()
}

fn int_of(t: &Typed) -> Option<i64> {
    match t {
        Typed::Int32(v) if v.len() == 1 => Some(v[0].into()),
        Typed::Int64(v) if v.len() == 1 => Some(v[0]),
        Typed::Byte(v) if v.len() == 1 => Some(v[0].into()),
        _ => None,
    }
}

fn values_list(spec: &Spec) -> String {
    spec.values
        .iter()
        .map(|(v, n)| n.clone().unwrap_or_else(|| v.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// One line of the controls a camera offers, for `hindsight devices` and for an unknown
/// control's error: `ExposureTime (1 to 66666)`, `AeEnable (true/false)`, `AwbMode
/// (Auto, Daylight, ...)`.
pub fn describe(specs: &[Spec]) -> String {
    let mut names: Vec<String> = specs
        .iter()
        .filter(|s| s.kind != Kind::Other && s.name != "FrameDurationLimits")
        .map(|s| {
            let what = if !s.values.is_empty() {
                values_list(s)
            } else if s.kind == Kind::Bool {
                "true/false".into()
            } else if s.kind == Kind::Rectangle {
                "[x, y, width, height]".into()
            } else {
                match (s.min, s.max) {
                    (Some(lo), Some(hi)) if lo < hi => format!("{} to {}", show(lo), show(hi)),
                    _ => String::new(),
                }
            };
            let count = match s.size {
                1 => String::new(),
                0 => " list".into(),
                n => format!(" x{n}"),
            };
            if what.is_empty() {
                format!("{}{count}", s.name)
            } else {
                format!("{}{count} ({what})", s.name)
            }
        })
        .collect();
    names.sort();
    names.join(", ")
}

/// What a frame's metadata says against what was asked: the controls the camera reported
/// otherwise (a number off by more than 5% or a named value other than asked), as
/// `ExposureTime 10000 (asked 2000)`. `reported` holds the value the camera reported for
/// each control it reports.
pub fn differences(asked: &[(String, Typed)], reported: &[(String, Typed)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in asked {
        let Some((_, got)) = reported.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let (a, g) = (numbers_of(want), numbers_of(got));
        let same = a.len() == g.len()
            && a.iter()
                .zip(&g)
                .all(|(a, g)| (a - g).abs() <= 0.05 * a.abs().max(1e-9));
        if !same {
            out.push(format!(
                "{name} {} (asked {})",
                show_typed(got),
                show_typed(want)
            ));
        }
    }
    out
}

/// A value as the log shows it: `2000`, `4.000`, `[1.800, 1.500]`, `false`.
pub fn show_typed(t: &Typed) -> String {
    match t {
        Typed::Bool(b) => b.to_string(),
        // As the f32 it is: 1.8, not 1.7999999523.
        Typed::Float(v) if v.len() == 1 => v[0].to_string(),
        Typed::Float(v) => format!(
            "[{}]",
            v.iter().map(f32::to_string).collect::<Vec<_>>().join(", ")
        ),
        other => list(&numbers_of(other)),
    }
}

fn numbers_of(t: &Typed) -> Vec<f64> {
    match t {
        Typed::Bool(b) => vec![f64::from(u8::from(*b))],
        Typed::Byte(v) => v.iter().map(|&x| x.into()).collect(),
        Typed::Int32(v) => v.iter().map(|&x| x.into()).collect(),
        Typed::Int64(v) => v.iter().map(|&x| x as f64).collect(),
        Typed::Float(v) => v.iter().map(|&x| x.into()).collect(),
        Typed::Rectangle(r) => r.iter().map(|&x| x as f64).collect(),
    }
}

fn list(v: &[f64]) -> String {
    let each: Vec<String> = v.iter().map(|&x| show(x)).collect();
    if each.len() == 1 {
        each[0].clone()
    } else {
        format!("[{}]", each.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: Kind, size: usize, min: f64, max: f64) -> Spec {
        Spec {
            name: name.into(),
            kind,
            size,
            min: Some(min),
            max: Some(max),
            values: Vec::new(),
            prefix: String::new(),
        }
    }

    fn mode(name: &str) -> Spec {
        Spec {
            name: name.into(),
            kind: Kind::Int32,
            size: 1,
            min: Some(0.0),
            max: Some(1.0),
            values: vec![(0, Some("Auto".into())), (1, Some("Manual".into()))],
            prefix: name.into(),
        }
    }

    #[test]
    fn enumerations_are_named_without_the_words_their_values_share() {
        let s = |v: &[&str]| short_names(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["ExposureTimeModeAuto", "ExposureTimeModeManual"]),
            (
                "ExposureTimeMode".into(),
                vec!["Auto".into(), "Manual".into()]
            )
        );
        assert_eq!(
            s(&["AwbAuto", "AwbIncandescent", "AwbTungsten"]).1,
            vec!["Auto", "Incandescent", "Tungsten"]
        );
        // Cut before a capital only, and never to nothing.
        assert_eq!(s(&["FlickerOff", "FlickerOffset"]).1, vec!["Off", "Offset"]);
        assert_eq!(s(&["Off", "Offset"]).1, vec!["Off", "Offset"]);
        assert_eq!(s(&["ModeA", "ModeAB"]).1, vec!["A", "AB"]);
        assert_eq!(s(&["HdrModeOff"]).1, vec!["HdrModeOff"]);
    }

    #[test]
    fn values_of_each_type_within_the_camera_s_range() {
        let exposure = spec("ExposureTime", Kind::Int32, 1, 1.0, 66666.0);
        assert_eq!(
            resolve("imx296", &exposure, &Setting::Int(2000)),
            Ok(Typed::Int32(vec![2000]))
        );
        let e = resolve("imx296", &exposure, &Setting::Int(70000)).unwrap_err();
        assert_eq!(
            e,
            "imx296: ExposureTime 70000 is outside what the camera allows (1 to 66666)"
        );
        let e = resolve("imx296", &exposure, &Setting::Float(1.5)).unwrap_err();
        assert!(
            e.contains("ExposureTime takes a whole number, not `1.5`"),
            "{e}"
        );

        let gain = spec("AnalogueGain", Kind::Float, 1, 1.0, 16.0);
        assert_eq!(
            resolve("imx296", &gain, &Setting::Int(4)),
            Ok(Typed::Float(vec![4.0]))
        );
        let e = resolve("imx296", &gain, &Setting::Float(0.5)).unwrap_err();
        assert!(
            e.contains("AnalogueGain 0.5 is outside what the camera allows (1 to 16)"),
            "{e}"
        );
        let e = resolve("imx296", &gain, &Setting::Bool(true)).unwrap_err();
        assert!(e.contains("AnalogueGain takes a number, not `true`"), "{e}");

        let gains = spec("ColourGains", Kind::Float, 2, 0.0, 32.0);
        assert_eq!(
            resolve(
                "imx477",
                &gains,
                &Setting::List(vec![Setting::Float(1.8), Setting::Int(2)])
            ),
            Ok(Typed::Float(vec![1.8, 2.0]))
        );
        let e = resolve("imx477", &gains, &Setting::Float(1.8)).unwrap_err();
        assert!(e.contains("ColourGains takes 2 values, not 1"), "{e}");

        let ae = Spec {
            kind: Kind::Bool,
            min: None,
            max: None,
            ..spec("AeEnable", Kind::Bool, 1, 0.0, 0.0)
        };
        assert_eq!(
            resolve("c", &ae, &Setting::Bool(false)),
            Ok(Typed::Bool(false))
        );
        let e = resolve("c", &ae, &Setting::Int(0)).unwrap_err();
        assert!(e.contains("AeEnable takes true or false, not `0`"), "{e}");

        let crop = spec("ScalerCrop", Kind::Rectangle, 1, 0.0, 0.0);
        let r = Setting::List([0, 8, 1456, 96].map(Setting::Int).to_vec());
        assert_eq!(
            resolve("c", &crop, &r),
            Ok(Typed::Rectangle([0, 8, 1456, 96]))
        );
        assert!(resolve("c", &crop, &Setting::Int(3)).is_err());
    }

    #[test]
    fn an_enumeration_by_its_value_s_name_or_number() {
        let m = mode("ExposureTimeMode");
        assert_eq!(
            resolve("c", &m, &Setting::Name("manual".into())),
            Ok(Typed::Int32(vec![1]))
        );
        assert_eq!(
            resolve("c", &m, &Setting::Name("ExposureTimeModeManual".into())),
            Ok(Typed::Int32(vec![1]))
        );
        assert_eq!(
            resolve("c", &m, &Setting::Int(0)),
            Ok(Typed::Int32(vec![0]))
        );
        let e = resolve("c", &m, &Setting::Name("Fixed".into())).unwrap_err();
        assert_eq!(
            e,
            "c: ExposureTimeMode `Fixed` is not one of its values: Auto, Manual"
        );
        let e = resolve("c", &m, &Setting::Int(7)).unwrap_err();
        assert!(
            e.contains("`7` is not one of its values: Auto, Manual"),
            "{e}"
        );
    }

    #[test]
    fn a_manual_value_brings_its_mode_unless_the_lab_chose_one() {
        let has = |n: &str| n.ends_with("Mode");
        let c = |pairs: &[(&str, Setting)]| {
            Controls(
                pairs
                    .iter()
                    .map(|(n, s)| (n.to_string(), s.clone()))
                    .collect(),
            )
        };
        let given = c(&[
            ("ExposureTime", Setting::Int(2000)),
            ("AnalogueGain", Setting::Float(4.0)),
        ]);
        assert_eq!(
            with_modes(&given, has).to_string(),
            "ExposureTimeMode=Manual AnalogueGainMode=Manual ExposureTime=2000 AnalogueGain=4"
        );
        // The lab's own mode, or AeEnable, is left as it is.
        let own = c(&[
            ("ExposureTimeMode", Setting::Name("Auto".into())),
            ("ExposureTime", Setting::Int(2000)),
        ]);
        assert_eq!(with_modes(&own, has), own);
        let ae = c(&[
            ("AeEnable", Setting::Bool(false)),
            ("ExposureTime", Setting::Int(2000)),
        ]);
        assert_eq!(with_modes(&ae, has), ae);
        // A camera without the modes (libcamera 0.4) gets none.
        assert_eq!(with_modes(&given, |_| false), given);
    }

    #[test]
    fn what_the_camera_offers_in_one_line() {
        let specs = [
            spec("ExposureTime", Kind::Int32, 1, 1.0, 66666.0),
            spec("AnalogueGain", Kind::Float, 1, 1.0, 16.0),
            mode("ExposureTimeMode"),
            spec("ColourGains", Kind::Float, 2, 0.0, 32.0),
            spec("Something", Kind::Other, 1, 0.0, 0.0),
        ];
        assert_eq!(
            describe(&specs),
            "AnalogueGain (1 to 16), ColourGains x2 (0 to 32), ExposureTime (1 to 66666), \
             ExposureTimeMode (Auto, Manual)"
        );
    }

    #[test]
    fn what_the_camera_reports_otherwise_than_asked() {
        let asked = vec![
            ("ExposureTime".to_string(), Typed::Int32(vec![2000])),
            ("AnalogueGain".to_string(), Typed::Float(vec![4.0])),
            ("AwbEnable".to_string(), Typed::Bool(false)),
        ];
        // The sensor's own steps (a line's time, a gain code) are within 5%.
        let close = vec![
            ("ExposureTime".to_string(), Typed::Int32(vec![1996])),
            ("AnalogueGain".to_string(), Typed::Float(vec![3.98])),
        ];
        assert!(differences(&asked, &close).is_empty());
        let off = vec![
            ("ExposureTime".to_string(), Typed::Int32(vec![5000])),
            ("AnalogueGain".to_string(), Typed::Float(vec![1.5])),
        ];
        assert_eq!(
            differences(&asked, &off),
            vec![
                "ExposureTime 5000 (asked 2000)".to_string(),
                "AnalogueGain 1.5 (asked 4)".to_string()
            ]
        );
    }
}
