//! The rig's power and heat, as the kernel reports them: a Raspberry Pi's under-voltage
//! alarm and the CPU's temperature.
//!
//! A Pi whose supply sags (below about 4.63 V) raises the under-voltage alarm; its
//! firmware then slows the cores, USB cameras and microphones may drop out, and an SD
//! card being written may be corrupted. A Pi 4 or 5 at 80 °C slows its cores as well.
//! Either makes cameras lose frames for a reason the recording alone does not show:
//! `hindsight check` says so before a session, and a running recorder says when it
//! begins and ends (control: the log, the status's warnings, the ntfy reply topic, the
//! LSL `power` event and a row in each recording's events file).
//!
//! Read from sysfs (`/sys`, or `$HINDSIGHT_SYSFS`, a folder of the same shape, for
//! tests): the `rpi_volt` hwmon device's `in0_lcrit_alarm` (the Pi firmware's driver
//! asks the firmware every 2 s and clears its record: 1 when there was under-voltage
//! since its last look) and every thermal zone's `temp` (millidegrees Celsius) with its
//! `type` (`cpu-thermal` on a Pi); the hottest counts. Only on a Raspberry Pi (that
//! sensor, or the device tree's model): another machine's CPU has limits of its own.
//! The older `soc:firmware/get_throttled` file is not read: newer kernels log a warning
//! for each reader.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::LslTime;

/// Where a Raspberry Pi 4 or 5 begins to slow its cores.
pub const HOT_C: f64 = 80.0;
/// Below this again, a hot CPU is said to be cool.
pub const COOL_C: f64 = 75.0;
/// Without the alarm this long, an under-voltage is said to be over (the alarm comes
/// and goes with the load: one line per episode, not one per look).
pub const POWER_OK_AFTER: Duration = Duration::from_secs(30);
/// How often a running recorder looks: the driver keeps an under-voltage in its alarm
/// for one of its 2 s looks only, so a brief one is seen only by looking at least as often.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The folder the kernel's sysfs is read from.
pub fn sysfs() -> PathBuf {
    std::env::var_os("HINDSIGHT_SYSFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys"))
}

/// The files that say this machine's power and heat, found once.
#[derive(Clone, Debug, Default)]
pub struct Sensors {
    /// The Pi's under-voltage alarm (`.../hwmon/hwmonN/in0_lcrit_alarm` of `rpi_volt`).
    alarm: Option<PathBuf>,
    /// Each thermal zone's `temp` and `type`.
    zones: Vec<(PathBuf, String)>,
}

/// One look.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// `None`: no under-voltage sensor (not a Raspberry Pi), or it could not be read.
    pub under_voltage: Option<bool>,
    /// The hottest zone's type and temperature in °C.
    pub hottest: Option<(String, f64)>,
}

impl Sensors {
    /// The sensors of a Raspberry Pi (its `rpi_volt` alarm, or the device tree's model
    /// saying so); none elsewhere: another machine's CPU has limits of its own, which
    /// the Pi's 80 °C does not judge.
    pub fn find(sys: &Path) -> Sensors {
        let mut s = Sensors::default();
        for dev in read_dir_sorted(&sys.join("class/hwmon")) {
            if read_trimmed(&dev.join("name")).as_deref() == Some("rpi_volt") {
                let alarm = dev.join("in0_lcrit_alarm");
                if alarm.exists() {
                    s.alarm = Some(alarm);
                    break;
                }
            }
        }
        // `Raspberry Pi 4 Model B Rev 1.4` and a NUL.
        let model = std::fs::read(sys.join("firmware/devicetree/base/model")).unwrap_or_default();
        let pi = s.alarm.is_some() || model.starts_with(b"Raspberry Pi");
        if !pi {
            return s;
        }
        for zone in read_dir_sorted(&sys.join("class/thermal")) {
            let is_zone = zone
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("thermal_zone"));
            let temp = zone.join("temp");
            if is_zone && temp.exists() {
                let kind = read_trimmed(&zone.join("type")).unwrap_or_else(|| {
                    zone.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                s.zones.push((temp, kind));
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.alarm.is_none() && self.zones.is_empty()
    }

    pub fn has_under_voltage_sensor(&self) -> bool {
        self.alarm.is_some()
    }

    pub fn read(&self) -> Reading {
        let under_voltage = self
            .alarm
            .as_ref()
            .and_then(|a| read_trimmed(a))
            .and_then(|v| v.parse::<u8>().ok())
            .map(|v| v != 0);
        let hottest = self
            .zones
            .iter()
            .filter_map(|(temp, kind)| {
                // A zone can fail to read (a sensor asleep: ENODATA) or say nonsense.
                let milli: i64 = read_trimmed(temp)?.parse().ok()?;
                let c = milli as f64 / 1000.0;
                (-40.0..=150.0).contains(&c).then(|| (kind.clone(), c))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        Reading {
            under_voltage,
            hottest,
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// What people should do about an under-voltage.
pub const UNDER_VOLTAGE_HINT: &str = "use a supply that gives 5.1 V under load (the \
    official one: 3 A for a Pi 4, 5 A for a Pi 5) and a short, thick cable; a Pi short of \
    power slows down, drops USB cameras and microphones, and can corrupt its SD card";

/// What people should do about a hot CPU.
pub const HOT_HINT: &str = "give the Pi a heatsink or a fan (the official case fan, the \
    Pi 5's active cooler) and air around it";

/// The temperature as people read it: `cpu-thermal 52 °C`.
pub fn temperature(r: &Reading) -> Option<String> {
    r.hottest
        .as_ref()
        .map(|(kind, c)| format!("{kind} {c:.0} °C"))
}

/// What began or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    UnderVoltage,
    PowerOk,
    Hot,
    Cool,
}

impl Condition {
    /// As the events file's row and the LSL event's `state` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::UnderVoltage => "under_voltage",
            Condition::PowerOk => "power_ok",
            Condition::Hot => "cpu_hot",
            Condition::Cool => "cpu_cool",
        }
    }

    /// A problem (a warning), or its end.
    pub fn is_problem(self) -> bool {
        matches!(self, Condition::UnderVoltage | Condition::Hot)
    }

    /// The start of the status warning it replaces (its begin's or its end's).
    pub fn about(self) -> &'static str {
        match self {
            Condition::UnderVoltage | Condition::PowerOk => "under-voltage",
            Condition::Hot | Condition::Cool => "temperature",
        }
    }

    /// The sensor that said it, for the events file's `source` column.
    pub fn sensor(self) -> &'static str {
        match self {
            Condition::UnderVoltage | Condition::PowerOk => "rpi_volt",
            Condition::Hot | Condition::Cool => "thermal",
        }
    }
}

/// A change worth saying.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub condition: Condition,
    /// For people: the log, the status, the ntfy reply topic (with what to do).
    pub message: String,
    /// The fact alone: the events file's row and the LSL event.
    pub detail: String,
}

/// A running recorder's view of the readings: what began and what ended.
#[derive(Debug, Default)]
pub struct Watch {
    /// Since when (seconds on the caller's clock) there has been under-voltage, and
    /// when it was last seen.
    under_voltage: Option<(f64, f64)>,
    hot: bool,
}

impl Watch {
    /// A look at `now` (seconds on a monotonic clock).
    pub fn update(&mut self, now: f64, r: &Reading) -> Vec<Change> {
        let mut out = Vec::new();
        match (r.under_voltage, self.under_voltage) {
            (Some(true), None) => {
                self.under_voltage = Some((now, now));
                let detail = "the Raspberry Pi's power supply gives too little".to_string();
                out.push(Change {
                    condition: Condition::UnderVoltage,
                    message: format!(
                        "under-voltage: {detail}; cameras and the microphone may lose data: \
                         {UNDER_VOLTAGE_HINT}"
                    ),
                    detail,
                });
            }
            (Some(true), Some((since, _))) => self.under_voltage = Some((since, now)),
            (_, Some((since, last))) if now - last >= POWER_OK_AFTER.as_secs_f64() => {
                self.under_voltage = None;
                let seen = match last - since {
                    d if d > 0.0 => format!("seen over {d:.0} s"),
                    _ => "seen at one look".to_string(),
                };
                let detail = format!("none for {:.0} s ({seen})", now - last);
                out.push(Change {
                    condition: Condition::PowerOk,
                    message: format!("under-voltage over: {detail}"),
                    detail,
                });
            }
            _ => {}
        }
        if let Some((kind, c)) = &r.hottest {
            let detail = format!("{kind} at {c:.0} °C");
            if !self.hot && *c >= HOT_C {
                self.hot = true;
                out.push(Change {
                    condition: Condition::Hot,
                    message: format!(
                        "temperature: {detail}; a Raspberry Pi slows its cores from \
                         {HOT_C:.0} °C and cameras may lose frames: {HOT_HINT}"
                    ),
                    detail,
                });
            } else if self.hot && *c < COOL_C {
                self.hot = false;
                out.push(Change {
                    condition: Condition::Cool,
                    message: format!("temperature: {detail}, below {COOL_C:.0} °C again"),
                    detail,
                });
            }
        }
        out
    }
}

/// A change as a recording's events file notes it: what, when, and the row's text.
#[derive(Clone, Debug, PartialEq)]
pub struct Noted {
    pub condition: Condition,
    pub at: LslTime,
    pub detail: String,
}

/// The changes a new recording's span can reach: those of the last `reach` (its
/// pre-trigger buffer, the farthest back a recording or clip begins) and, before them,
/// the last of each kind (what was going on when the oldest span begins).
#[derive(Debug)]
pub struct History {
    reach: Duration,
    changes: VecDeque<Noted>,
}

impl History {
    pub fn new(reach: Duration) -> History {
        History {
            reach,
            changes: VecDeque::new(),
        }
    }

    /// A change, at or after every earlier one. Changes too old for any span are
    /// forgotten, but for the last of each kind before the reach.
    pub fn push(&mut self, change: Noted) {
        let cutoff = change.at - self.reach;
        self.changes.push_back(change);
        let old = |c: &Noted| c.at < cutoff;
        let mut keep = vec![true; self.changes.len()];
        for (i, c) in self.changes.iter().enumerate().filter(|(_, c)| old(c)) {
            let about = c.condition.about();
            keep[i] = !self
                .changes
                .iter()
                .skip(i + 1)
                .any(|later| old(later) && later.condition.about() == about);
        }
        let mut keep = keep.into_iter();
        self.changes.retain(|_| keep.next().unwrap_or(true));
    }

    /// What the events file of a recording spanning `begin` to `end` (`None`: on from
    /// now) notes: each problem going on at its start, at its start and saying since
    /// when; then each change within it, at its own time.
    pub fn rows_for(&self, begin: LslTime, end: Option<LslTime>) -> Vec<Noted> {
        let mut at_begin: std::collections::BTreeMap<&str, &Noted> = Default::default();
        for c in self.changes.iter().filter(|c| c.at <= begin) {
            at_begin.insert(c.condition.about(), c);
        }
        let going_on = at_begin
            .into_values()
            .filter(|c| c.condition.is_problem())
            .map(|c| Noted {
                condition: c.condition,
                at: begin,
                detail: format!(
                    "{}; going on since {:.1} s before this recording's start",
                    c.detail,
                    begin.saturating_since(c.at).as_secs_f64()
                ),
            });
        let within = self
            .changes
            .iter()
            .filter(|c| c.at > begin && end.is_none_or(|end| c.at <= end))
            .cloned();
        going_on.chain(within).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs-shaped folder as a Pi's kernel shows it: the `rpi_volt` hwmon device among
    /// others, thermal zones (one that cannot be read), and links elsewhere ignored.
    fn pi(alarm: &str, temps: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let hw = d.path().join("class/hwmon");
        for (n, name) in [("hwmon0", "cpu_thermal"), ("hwmon1", "rpi_volt")] {
            std::fs::create_dir_all(hw.join(n)).unwrap();
            std::fs::write(hw.join(n).join("name"), format!("{name}\n")).unwrap();
        }
        std::fs::write(hw.join("hwmon1/in0_lcrit_alarm"), alarm).unwrap();
        let th = d.path().join("class/thermal");
        std::fs::create_dir_all(th.join("cooling_device0")).unwrap();
        for (i, (kind, temp)) in temps.iter().enumerate() {
            let z = th.join(format!("thermal_zone{i}"));
            std::fs::create_dir_all(&z).unwrap();
            std::fs::write(z.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(z.join("temp"), temp).unwrap();
        }
        d
    }

    #[test]
    fn reads_a_pis_alarm_and_its_hottest_zone() {
        let d = pi(
            "0\n",
            &[
                ("cpu-thermal", "52582\n"),
                ("wifi", ""),
                ("x", "90000000\n"),
            ],
        );
        let s = Sensors::find(d.path());
        assert!(s.has_under_voltage_sensor());
        let r = s.read();
        assert_eq!(r.under_voltage, Some(false));
        assert_eq!(r.hottest, Some(("cpu-thermal".into(), 52.582)));
        assert_eq!(temperature(&r).unwrap(), "cpu-thermal 53 °C");
        std::fs::write(d.path().join("class/hwmon/hwmon1/in0_lcrit_alarm"), "1\n").unwrap();
        assert_eq!(s.read().under_voltage, Some(true));
    }

    #[test]
    fn a_machine_without_sensors_has_nothing_to_say() {
        let d = tempfile::tempdir().unwrap();
        let s = Sensors::find(d.path());
        assert!(s.is_empty());
        assert_eq!(s.read(), Reading::default());
    }

    /// A PC's thermal zones are not judged by a Pi's limits; a Pi whose kernel has no
    /// `rpi_volt` is known by its model, and its temperature watched.
    #[test]
    fn only_a_raspberry_pis_temperature_is_watched() {
        let d = pi("0\n", &[("x86_pkg_temp", "85000\n")]);
        std::fs::remove_dir_all(d.path().join("class/hwmon/hwmon1")).unwrap();
        assert!(Sensors::find(d.path()).is_empty());
        let dt = d.path().join("firmware/devicetree/base");
        std::fs::create_dir_all(&dt).unwrap();
        std::fs::write(dt.join("model"), b"Raspberry Pi 4 Model B Rev 1.4\0").unwrap();
        let s = Sensors::find(d.path());
        assert!(!s.has_under_voltage_sensor());
        assert_eq!(
            s.read(),
            Reading {
                under_voltage: None,
                hottest: Some(("x86_pkg_temp".into(), 85.0))
            }
        );
    }

    /// One line when an under-voltage begins, however often the alarm comes and goes
    /// within it, and one when none was seen for [`POWER_OK_AFTER`]; heat with a margin.
    #[test]
    fn says_each_episode_once() {
        let mut w = Watch::default();
        let r = |uv: bool, c: f64| Reading {
            under_voltage: Some(uv),
            hottest: Some(("cpu-thermal".into(), c)),
        };
        assert!(w.update(0.0, &r(false, 60.0)).is_empty());
        let c = w.update(5.0, &r(true, 60.0));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].condition, Condition::UnderVoltage);
        assert!(c[0].message.starts_with("under-voltage:"));
        // The alarm flickers with the load: nothing new.
        for (t, uv) in [(10.0, false), (15.0, true), (20.0, false), (40.0, false)] {
            assert!(w.update(t, &r(uv, 60.0)).is_empty(), "at {t}");
        }
        let c = w.update(45.0, &r(false, 60.0));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].condition, Condition::PowerOk);
        assert_eq!(c[0].detail, "none for 30 s (seen over 10 s)");
        let c = w.update(50.0, &r(false, 81.2));
        assert_eq!(c[0].condition, Condition::Hot);
        assert!(c[0].message.contains("at 81 °C"), "{c:?}");
        assert!(w.update(55.0, &r(false, 77.0)).is_empty());
        let c = w.update(60.0, &r(false, 74.0));
        assert_eq!(c[0].condition, Condition::Cool, "{c:?}");
    }

    fn t(secs: f64) -> LslTime {
        LslTime::from_secs_f64(1000.0 + secs)
    }

    fn noted(condition: Condition, at: f64, detail: &str) -> Noted {
        Noted {
            condition,
            at: t(at),
            detail: detail.into(),
        }
    }

    /// A span gets what went on before it and is not over, and what began or ended in it;
    /// nothing that ended before it or came after it.
    #[test]
    fn a_span_notes_what_went_on_at_its_start_and_every_change_within_it() {
        use Condition::*;
        let mut h = History::new(Duration::from_secs(20));
        for c in [
            noted(UnderVoltage, 0.0, "sag"),
            noted(Hot, 2.0, "81"),
            noted(PowerOk, 40.0, "ok"),
            noted(Cool, 55.0, "74"),
            noted(UnderVoltage, 58.0, "sag again"),
            noted(PowerOk, 59.0, "ok again"),
        ] {
            h.push(c);
        }
        // 45 to 60: heat going on at its start; heat's end and a whole sag within it.
        assert_eq!(
            h.rows_for(t(45.0), None),
            [
                noted(
                    Hot,
                    45.0,
                    "81; going on since 43.0 s before this recording's start"
                ),
                noted(Cool, 55.0, "74"),
                noted(UnderVoltage, 58.0, "sag again"),
                noted(PowerOk, 59.0, "ok again"),
            ]
        );
        // A clip of 50 to 58.5: not the sag's end after it.
        let clip = h.rows_for(t(50.0), Some(t(58.5)));
        assert_eq!(clip.len(), 3, "{clip:?}");
        assert_eq!(clip[2], noted(UnderVoltage, 58.0, "sag again"));
        // After everything: nothing going on, nothing within.
        assert_eq!(h.rows_for(t(60.0), None), []);
        // Older changes are forgotten but for the last of each kind before the reach
        // (20 s): at 70 s the first sag goes (its end at 40 s says the state), the heat
        // of 2 s stays (its end came at 55 s), and says so to a span from 50 s.
        h.push(noted(Hot, 70.0, "82"));
        assert!(!h.changes.contains(&noted(UnderVoltage, 0.0, "sag")));
        assert_eq!(h.changes.len(), 6, "{:?}", h.changes);
        let rows = h.rows_for(t(50.0), None);
        assert_eq!(
            rows[0],
            noted(
                Hot,
                50.0,
                "81; going on since 48.0 s before this recording's start"
            )
        );
        assert_eq!(rows.len(), 5, "{rows:?}");
    }
}
