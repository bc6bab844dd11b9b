//! The rig's power and heat (`src/power.rs`): `hindsight check` and a running recorder
//! on this machine's own sysfs (no sensor: nothing to say), and on a folder shaped as a
//! Raspberry Pi's kernel shows its under-voltage alarm and CPU temperature
//! (`HINDSIGHT_SYSFS`), whose files the test changes as the firmware's driver would.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A Pi's sysfs as hindsight reads it: hwmon devices (`cpu_thermal`, `rpi_volt` with its
/// alarm) and the `cpu-thermal` zone.
struct PiSysfs {
    dir: tempfile::TempDir,
}

impl PiSysfs {
    fn new() -> PiSysfs {
        let dir = tempfile::tempdir().unwrap();
        let hw = dir.path().join("class/hwmon");
        for (n, name) in [("hwmon0", "cpu_thermal"), ("hwmon1", "rpi_volt")] {
            std::fs::create_dir_all(hw.join(n)).unwrap();
            std::fs::write(hw.join(n).join("name"), format!("{name}\n")).unwrap();
        }
        let zone = dir.path().join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
        let s = PiSysfs { dir };
        s.set(false, 48_686);
        s
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The alarm as the driver shows it (`0`/`1`) and the temperature in m°C.
    fn set(&self, under_voltage: bool, milli_c: i64) {
        let write = |rel: &str, text: String| {
            // Replaced whole, so that a reader never sees half a value.
            let path: PathBuf = self.path().join(rel);
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        write(
            "class/hwmon/hwmon1/in0_lcrit_alarm",
            format!("{}\n", u8::from(under_voltage)),
        );
        write("class/thermal/thermal_zone0/temp", format!("{milli_c}\n"));
    }

    /// A recorder reading this sysfs: a 160x120 synthetic camera at 30 fps with a buffer
    /// of `buffer_s`, no audio, LSL streams named `name`, and `more` config.
    fn recorder(&self, name: &str, buffer_s: f64, more: &str) -> Hindsight {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let sysfs = self.path().to_path_buf();
        Hindsight::start_with(
            dir,
            root,
            &format!(
                "{}audio:\n  enabled: false\nlsl:\n  name: {name}\n{more}",
                synthetic_config(160, 120, 30.0, buffer_s),
            ),
            move |c| {
                c.env("HINDSIGHT_SYSFS", &sysfs);
            },
        )
    }
}

/// `hindsight check`'s "power and heat" line (level and text) with `sysfs`.
fn check_line(sysfs: Option<&Path>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &dir.path().join("recordings"),
        "audio:\n  enabled: false\n",
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--config"]).arg(&config);
    match sysfs {
        Some(p) => cmd.env("HINDSIGHT_SYSFS", p),
        None => cmd.env_remove("HINDSIGHT_SYSFS"),
    };
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.get(6..).is_some_and(|r| r.starts_with("power and heat ")))
        .unwrap_or_else(|| panic!("no power line in:\n{text}"));
    // A warning alone does not fail the check.
    assert_eq!(out.status.code(), Some(0), "{text}");
    line.to_string()
}

#[test]
fn check_says_the_pis_power_and_heat_with_what_to_do() {
    // This machine, unless it is a Raspberry Pi: nothing to judge.
    let here = check_line(None);
    let model = std::fs::read("/sys/firmware/devicetree/base/model").unwrap_or_default();
    let rpi_volt = std::fs::read_dir("/sys/class/hwmon").is_ok_and(|d| {
        d.flatten().any(|e| {
            std::fs::read_to_string(e.path().join("name")).is_ok_and(|n| n.trim() == "rpi_volt")
        })
    });
    if !model.starts_with(b"Raspberry Pi") && !rpi_volt {
        assert!(
            here.starts_with("pass") && here.contains("not a Raspberry Pi"),
            "{here}"
        );
    }
    let pi = PiSysfs::new();
    let ok = check_line(Some(pi.path()));
    assert!(ok.starts_with("pass"), "{ok}");
    assert!(ok.contains("no under-voltage; cpu-thermal 49 °C"), "{ok}");
    pi.set(true, 48_686);
    let low = check_line(Some(pi.path()));
    assert!(low.starts_with("warn"), "{low}");
    assert!(low.contains("under-voltage now"), "{low}");
    assert!(low.contains("5.1 V under load"), "{low}");
    pi.set(false, 82_300);
    let hot = check_line(Some(pi.path()));
    assert!(hot.starts_with("warn"), "{hot}");
    assert!(hot.contains("cpu-thermal at 82 °C"), "{hot}");
    assert!(hot.contains("heatsink or a fan"), "{hot}");
    assert!(!hot.contains("under-voltage"), "{hot}");
    // Both at once: both said, with both remedies.
    pi.set(true, 82_300);
    let both = check_line(Some(pi.path()));
    assert!(
        both.contains("under-voltage now") && both.contains("cpu-thermal at 82 °C"),
        "{both}"
    );
    assert!(
        both.contains("5.1 V under load") && both.contains("heatsink or a fan"),
        "{both}"
    );
}

/// The power rows of a recording's events file, each split in its 5 columns.
fn power_rows(mkv: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(events_of(mkv))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.splitn(5, ',').map(str::to_string).collect())
        .filter(|r: &Vec<String>| r[3].starts_with("power: "))
        .collect()
}

/// The `power` events of the events stream, `n` of them or what came within `wait` (the
/// LSL thread pushes at its next tick, up to a second once idle): state, time, recording.
fn power_events(
    events: &lsl::StreamInlet,
    n: usize,
    wait: Duration,
) -> Vec<(String, f64, Option<u64>)> {
    let mut said = Vec::new();
    let until = std::time::Instant::now() + wait;
    while said.len() < n && std::time::Instant::now() < until {
        said.extend(
            lsl_pull_events(events)
                .into_iter()
                .filter(|(e, _)| e["event"] == "power")
                .map(|(e, t)| {
                    (
                        e["state"].as_str().unwrap().to_string(),
                        t,
                        e["recording"].as_u64(),
                    )
                }),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    said
}

/// A Pi whose supply sags, then that runs hot, while it records: each said once, in the
/// log, the status's warnings, the ntfy reply topic (the real server), the LSL events and
/// the events file, when it begins (within a look, a second) and when the heat is gone,
/// and the recording goes on whole; the next recording, while the supply still sags, says
/// so from its start.
#[test]
fn a_recording_rig_says_when_its_power_sags_and_when_it_runs_hot() {
    let pi = PiSysfs::new();
    let name = format!("power_{}", std::process::id());
    let ntfy = common::ntfy::Ntfy::start(false);
    let mut h = pi.recorder(
        &name,
        1.0,
        &format!(
            "trigger:\n  ntfy:\n    enabled: true\n    server: {}\n    topic: {name}\n    \
             reply_topic: {name}-replies\n",
            ntfy.url()
        ),
    );
    let (events, _) = lsl_connect(&format!("{name}_Events"), false);
    let warnings = |h: &mut Hindsight| -> Vec<String> {
        h.status()["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    let (code, r) = h.post("start", serde_json::json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !warnings(&mut h).iter().any(|w| w.contains("under-voltage")),
        "{:?}",
        warnings(&mut h)
    );
    pi.set(true, 50_000);
    h.wait_until(
        "the status says under-voltage",
        Duration::from_secs(12),
        |h| warnings(h).iter().any(|w| w.starts_with("under-voltage:")),
    );
    // The alarm comes and goes with the load: one episode, said once.
    pi.set(true, 83_000);
    h.wait_until("the status says the heat", Duration::from_secs(12), |h| {
        warnings(h)
            .iter()
            .any(|w| w.starts_with("temperature: cpu-thermal at 83 °C"))
    });
    pi.set(true, 70_000);
    h.wait_until("the status says it cooled", Duration::from_secs(12), |h| {
        warnings(h)
            .iter()
            .any(|w| w.contains("at 70 °C, below 75 °C again"))
    });
    h.post("stop", serde_json::json!({}));
    h.wait_idle_files();
    // The lab's streams and the recording's events file say each, at the same time.
    let said = power_events(&events, 3, Duration::from_secs(10));
    let states: Vec<&str> = said.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(states, ["under_voltage", "cpu_hot", "cpu_cool"], "{said:?}");
    assert!(said.iter().all(|(_, _, r)| *r == Some(1)), "{said:?}");
    let mkv = h.mkv_files().pop().expect("a recording");
    let rows = power_rows(&mkv);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, (state, t, _)) in rows.iter().zip(&said) {
        assert_eq!(&row[2], state, "{row:?}");
        assert_eq!(row[0].parse::<f64>().unwrap(), *t, "{row:?}");
    }
    assert_eq!(rows[0][3], "power: rpi_volt");
    assert_eq!(rows[1][3], "power: thermal");
    // The recordings list and the quality report show the spans: the under-voltage
    // still going on at the stop (its end needs 30 s without it), the heat over.
    let listed = h.recordings();
    let uv = &listed[0]["under_voltage"];
    assert_eq!(uv.as_array().map(Vec::len), Some(1), "{uv}");
    assert_eq!(uv[0]["lost_lsl_time"].as_f64(), Some(said[0].1), "{uv}");
    assert_eq!(uv[0]["came_back"], false, "{uv}");
    let hot = &listed[0]["cpu_hot"][0];
    assert_eq!(hot["lost_lsl_time"].as_f64(), Some(said[1].1), "{hot}");
    assert_eq!(hot["until_lsl_time"].as_f64(), Some(said[2].1), "{hot}");
    let report = report_html(&mkv, h.dir.path());
    assert!(report.contains("under-voltage from (s)"), "{report}");
    assert!(report.contains(", the stop: still then</td>"), "{report}");
    assert!(report.contains("CPU at 80 °C from (s)"), "{report}");
    assert!(report.contains(", over</td>"), "{report}");
    // The phone's reply topic hears each, once, with what to do.
    let topic = format!("{name}-replies");
    h.wait_until("the replies are published", Duration::from_secs(10), |_| {
        ntfy.messages(&topic, None)
            .iter()
            .any(|r| r.contains("below 75 °C again"))
    });
    let replies = ntfy.messages(&topic, None);
    let about = |text: &str| replies.iter().filter(|r| r.contains(text)).count();
    assert_eq!(about("under-voltage: the Raspberry Pi"), 1, "{replies:?}");
    assert_eq!(about("use a supply that gives 5.1 V"), 1, "{replies:?}");
    assert_eq!(about("temperature: cpu-thermal at 83"), 1, "{replies:?}");
    assert_eq!(about("below 75 °C again"), 1, "{replies:?}");
    let log = h.log_text();
    // Once each, however many looks saw it.
    assert_eq!(
        log.matches("under-voltage: the Raspberry Pi").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("temperature: cpu-thermal at 83").count(),
        1,
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("under-voltage:")),
        "{log}"
    );
    // The recording went on through it (at least the 6 s before the sag and the
    // buffer's second), every frame its sidecar lists in the file.
    let rows = read_sidecar(&mkv);
    assert!(rows.len() > 7 * 30 - 10, "{} frames", rows.len());
    assert_nothing_lost(&rows, &h.status()["cameras"][0]);
    assert_eq!(ffprobe_packet_count(&mkv), rows.len() as u64);
    mkvmerge_clean(&mkv);
    // The next recording, while the supply still sags: its events file and report say
    // so from its start, without a second LSL event (the lab's streams have it at its time).
    let (code, r) = h.post("start", serde_json::json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_secs(2));
    h.post("stop", serde_json::json!({}));
    h.wait_idle_files();
    let second = h
        .mkv_files()
        .into_iter()
        .find(|m| *m != mkv)
        .expect("recording 2");
    let rows = power_rows(&second);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][2], "under_voltage", "{rows:?}");
    assert!(
        rows[0][4].contains("going on since")
            && rows[0][4].contains("before this recording's start"),
        "{rows:?}"
    );
    let first_frame = read_sidecar(&second)[0].lsl_time;
    let row_at = rows[0][0].parse::<f64>().unwrap();
    assert!(
        row_at > said[0].1 && row_at <= first_frame + 0.1,
        "{row_at} {first_frame} {said:?}"
    );
    let report = report_html(&second, h.dir.path());
    assert!(report.contains("under-voltage from (s)"), "{report}");
    std::thread::sleep(Duration::from_millis(1500));
    let again: Vec<_> = lsl_pull_events(&events)
        .into_iter()
        .filter(|(e, _)| e["event"] == "power")
        .collect();
    assert!(again.is_empty(), "{again:?}");
    h.terminate();
}

/// Heat that came and went while the rig only buffered is in the events files of a clip
/// and of a recording whose buffered span holds it, at the times the lab's streams have
/// it: the files alone say why frames of that span may be missing.
#[test]
fn heat_that_came_and_went_in_the_buffer_is_in_the_recordings_that_hold_it() {
    let pi = PiSysfs::new();
    let name = format!("power_buffered_{}", std::process::id());
    let mut h = pi.recorder(&name, 10.0, "");
    let (events, _) = lsl_connect(&format!("{name}_Events"), false);
    h.wait_buffered(1.0);
    let warned = |h: &mut Hindsight, text: &str| {
        h.status()["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(text))
    };
    pi.set(false, 83_000);
    h.wait_until("the status says the heat", Duration::from_secs(12), |h| {
        warned(h, "cpu-thermal at 83 °C")
    });
    pi.set(false, 70_000);
    h.wait_until("the status says it cooled", Duration::from_secs(12), |h| {
        warned(h, "below 75 °C again")
    });
    // Said on the lab's streams as it happened, in no recording.
    let said = power_events(&events, 2, Duration::from_secs(10));
    let states: Vec<&str> = said.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(states, ["cpu_hot", "cpu_cool"], "{said:?}");
    assert!(said.iter().all(|(_, _, r)| r.is_none()), "{said:?}");
    // A clip of the last 10 s, then a recording (its 10 s buffer and a second).
    let (code, r) = h.post("clip", serde_json::json!({"seconds": 10}));
    assert_eq!(code, 200, "{r}");
    h.record_for(1.0);
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    for mkv in &files {
        let rows = power_rows(mkv);
        assert_eq!(rows.len(), 2, "{}: {rows:?}", mkv.display());
        let frames = read_sidecar(mkv);
        for (row, (state, t, _)) in rows.iter().zip(&said) {
            assert_eq!(&row[2], state, "{row:?}");
            let at = row[0].parse::<f64>().unwrap();
            assert_eq!(at, *t, "{row:?}");
            assert!(
                (frames[0].lsl_time..=frames.last().unwrap().lsl_time).contains(&at),
                "{}: {row:?} outside its frames",
                mkv.display()
            );
        }
        assert!(rows[1][4].contains("70 °C"), "{rows:?}");
        let report = report_html(mkv, h.dir.path());
        assert!(report.contains("CPU at 80 °C from (s)"), "{report}");
    }
    // Nothing said twice on the lab's streams (two of the LSL thread's idle ticks).
    assert_eq!(power_events(&events, 1, Duration::from_secs(2)), []);
    h.terminate();
}
