//! LSL interop with an independent client: pylsl from PyPI, with the liblsl its wheel
//! carries, in a venv of its own (`scripts/pylsl-venv.sh`, cached), resolves hindsight's
//! frame stream and reads it as a lab's Python script would. Every frame of the file must
//! reach it with exactly the sidecar's LSL timestamp, and the stream says which liblsl
//! hindsight runs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The venv's python, made (or found in the cache) by the script.
fn python() -> String {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/pylsl-venv.sh"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pylsl could not be set up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

/// Resolves the stream with `source_id`, prints a header line (JSON), then one line per
/// sample for `seconds`: the frame number and the timestamp as Python prints it (the
/// shortest text that reads back as the same double).
const READER: &str = r#"
import json, sys, time
import pylsl
source_id, seconds = sys.argv[1], float(sys.argv[2])
found = pylsl.resolve_byprop("source_id", source_id, 1, 30.0)
if not found:
    print(json.dumps({"error": "stream not found"}), flush=True)
    sys.exit(1)
inlet = pylsl.StreamInlet(found[0], max_buflen=360, recover=False)
info = inlet.info(10.0)
acq = info.desc().child("acquisition")
inlet.open_stream(10.0)
print(json.dumps({
    "liblsl": pylsl.library_version(),
    "hindsight_liblsl": acq.child_value("liblsl"),
    "software": acq.child_value("software"),
    "channels": info.channel_count(),
}), flush=True)
end = time.time() + seconds
while time.time() < end:
    samples, stamps = inlet.pull_chunk(timeout=0.2)
    for s, t in zip(samples, stamps):
        print(int(s[0]), repr(t))
sys.stdout.flush()
"#;

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "pylsl's wheels carry a liblsl for x86_64 only"
)]
fn pylsl_with_its_own_liblsl_reads_every_frame_at_the_sidecars_time() {
    lsl_session();
    let _g = serial();
    let py = python();
    let mut h = Hindsight::start(
        "rig: pyrig\nbuffer:\n  duration: 1\n  max_bytes: 64MiB\naudio:\n  enabled: false\ncameras:\n  - name: cam0\n    source: synthetic\n    resolution: {width: 320, height: 240}\n    fps: 100\n",
    );
    h.wait_buffered(0.5);
    let mut reader = Command::new(&py)
        .args(["-c", READER, "hindsight_pyrig_cam0_frames", "6"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    let header: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    eprintln!("pylsl: {header}");
    assert!(header.get("error").is_none(), "{header}");
    assert_eq!(header["channels"], 4);
    assert!(
        header["software"]
            .as_str()
            .unwrap()
            .starts_with("hindsight "),
        "{header}"
    );
    // The stream names the liblsl hindsight runs: the current one where the test script
    // linked it (its folder is named by its version, <cache>/liblsl/1.18.0/lib: 1.18 from
    // the wheel, 1.17 built from source), the lsl crate's 1.13 otherwise.
    let expected = match std::env::var("HINDSIGHT_LIBLSL") {
        Ok(lib) => {
            let folder = std::path::Path::new(&lib)
                .parent()
                .unwrap()
                .file_name()
                .unwrap();
            let version = folder.to_str().unwrap().split('.').take(2);
            version.collect::<Vec<_>>().join(".")
        }
        Err(_) => "1.13".to_string(),
    };
    assert_eq!(header["hindsight_liblsl"], expected, "{header}");
    assert_eq!(header["liblsl"], 118, "pylsl's own liblsl");

    // A recording while the reader reads: the buffer's second and two seconds live.
    std::thread::sleep(Duration::from_secs(1));
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_secs(2));
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();

    let mut seen = std::collections::HashMap::new();
    for line in lines {
        let line = line.unwrap();
        let (n, t) = line.split_once(' ').unwrap();
        seen.insert(n.parse::<u64>().unwrap(), t.parse::<f64>().unwrap());
    }
    assert!(reader.wait().unwrap().success());
    let mkv = h.mkv_files().pop().unwrap();
    let rows = read_sidecar(&mkv);
    assert!(rows.len() > 200, "{} frames in the file", rows.len());
    // Every frame of the file reached pylsl, at exactly its sidecar time.
    for row in &rows {
        let t = seen
            .get(&row.frame_number)
            .unwrap_or_else(|| panic!("frame {} never reached pylsl", row.frame_number));
        assert_eq!(*t, row.lsl_time, "frame {}", row.frame_number);
    }
    // And pylsl saw the frames before and after the recording too: one sample per frame.
    let mut numbers: Vec<u64> = seen.keys().copied().collect();
    numbers.sort();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in the frame stream as pylsl read it"
    );
    assert!(numbers.len() > rows.len(), "{} samples", numbers.len());
}

/// Publishes a stream named argv[1] for argv[2] seconds.
const OUTLET: &str = r#"
import sys, time
import pylsl
info = pylsl.StreamInfo(sys.argv[1], "Test", 1, 10.0, "float32", sys.argv[1])
outlet = pylsl.StreamOutlet(info)
print("up", flush=True)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    outlet.push_sample([1.0])
    time.sleep(0.1)
"#;

/// A stream published by another liblsl under `config` (an LSL API config file); whether
/// this process finds it within 3 s.
fn found_from(py: &str, config: &std::path::Path, name: &str) -> bool {
    let mut outlet = Command::new(py)
        .args(["-c", OUTLET, name, "8"])
        .env("LSLAPICFG", config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = String::new();
    BufReader::new(outlet.stdout.take().unwrap())
        .read_line(&mut up)
        .unwrap();
    assert_eq!(up.trim(), "up");
    let found = lsl::resolve_byprop("name", name, 1, 3.0).unwrap();
    let _ = outlet.kill();
    let _ = outlet.wait();
    !found.is_empty()
}

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "pylsl's wheels carry a liblsl for x86_64 only"
)]
fn the_tests_lsl_settings_hold_with_the_current_liblsl_a_session_sees_only_its_own_streams() {
    let session = lsl_session();
    let _g = serial();
    let py = python();
    let ours = std::path::PathBuf::from(std::env::var("LSLAPICFG").unwrap());
    // The same settings with another SessionID.
    let text = std::fs::read_to_string(&ours).unwrap();
    assert!(text.contains(session));
    let other = ours.with_extension("other.cfg");
    std::fs::write(&other, text.replace(session, &format!("{session}-other"))).unwrap();
    let name = format!("hindsight_session_probe_{}", std::process::id());
    // Control: a stream in this run's session is found (machine-local discovery works).
    assert!(
        found_from(&py, &ours, &format!("{name}_same")),
        "a stream of the same session was not found"
    );
    // Another session's stream on the same machine is not.
    assert!(
        !found_from(&py, &other, &format!("{name}_other")),
        "a stream of another SessionID was found"
    );
    let _ = std::fs::remove_file(&other);
}

/// An experiment script as PsychoPy runs one: publishes string markers named argv[1] with
/// source id argv[2], says whether a consumer (hindsight) connected within 30 s, then
/// pushes each line of its input as a marker.
const EXPERIMENT: &str = r#"
import sys
import pylsl
info = pylsl.StreamInfo(sys.argv[1], "Markers", 1, 0.0, "string", sys.argv[2])
outlet = pylsl.StreamOutlet(info)
print("connected" if outlet.wait_for_consumers(30.0) else "alone", flush=True)
for line in sys.stdin:
    outlet.push_sample([line.strip()])
"#;

struct Experiment {
    child: std::process::Child,
    said: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Experiment {
    fn start(py: &str, stream: &str, source_id: &str) -> Experiment {
        let mut child = Command::new(py)
            .args(["-c", EXPERIMENT, stream, source_id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let said = BufReader::new(child.stdout.take().unwrap()).lines();
        Experiment { child, said }
    }

    /// "connected" once hindsight follows the stream, "alone" after 30 s without it.
    fn connected(&mut self) -> String {
        self.said.next().unwrap().unwrap()
    }

    fn push(&mut self, marker: &str) {
        use std::io::Write;
        writeln!(self.child.stdin.as_mut().unwrap(), "{marker}").unwrap();
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the child this test started.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Experiment {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An experiment script (`experiment-1`) publishing markers named `<prefix>_<pid>`, and a
/// recorder following it (`begin_trial` starts, `end_trial` stops), buffering; with the
/// venv's python and the stream's name.
fn followed_experiment(prefix: &str) -> (String, String, Experiment, Hindsight) {
    lsl_session();
    let py = python();
    let stream = format!("{prefix}_{}", std::process::id());
    let mut exp = Experiment::start(&py, &stream, "experiment-1");
    let mut h = Hindsight::start(&format!(
        "rig: pyrig\nbuffer:\n  duration: 1\n  max_bytes: 64MiB\naudio:\n  enabled: false\ncameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: 20\ntrigger:\n  lsl_markers:\n    enabled: true\n    stream: {stream}\n    start: [begin_trial]\n    stop: [end_trial]\n"
    ));
    assert_eq!(exp.connected(), "connected", "{}", h.log_text());
    h.wait_buffered(0.9);
    (py, stream, exp, h)
}

/// A trial by markers: `begin_trial` starts a recording, `end_trial` stops it.
fn trial(h: &mut Hindsight, experiment: &mut Experiment) {
    experiment.push("begin_trial");
    h.wait_until(
        "the marker starts a recording",
        Duration::from_secs(10),
        |h| h.status()["state"] == "recording",
    );
    std::thread::sleep(Duration::from_millis(500));
    experiment.push("end_trial");
    h.wait_until("the marker stops it", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
}

/// The experiment's machine hangs (its script stopped with SIGSTOP: its connection stays
/// open, nothing more comes, it answers nothing), and the experimenter starts the script
/// again (elsewhere, or after a reboot), with a new source id. liblsl never tells an inlet
/// without recovery that such a stream is gone: hindsight asks, and once the new one
/// answers, leaves the hung stream for it; the new one's markers record.
#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "pylsl's wheels carry a liblsl for x86_64 only"
)]
fn a_hung_experiment_is_given_up_and_its_script_started_again_is_followed() {
    let _g = serial();
    let (py, stream, mut first, mut h) = followed_experiment("HS_experiment");
    trial(&mut h, &mut first);

    first.signal(libc::SIGSTOP);
    let mut second = Experiment::start(&py, &stream, "experiment-2");
    assert_eq!(
        second.connected(),
        "connected",
        "hindsight kept to the hung stream:\n{}",
        h.log_text()
    );
    assert!(
        h.log_text().contains("no longer answers"),
        "{}",
        h.log_text()
    );
    trial(&mut h, &mut second);
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert_eq!(tags(f)["TRIGGER_MESSAGE"], "begin_trial", "{}", f.display());
    }
    let s = h.status();
    let following = s["lsl"]["marker_trigger"].as_str().unwrap();
    assert!(following.contains("experiment-2"), "{s}");
    assert!(h.terminate().success());
}

/// The experiment's machine hangs for a few seconds mid-trial (its script stopped with
/// SIGSTOP) and comes back: the trial's `end_trial`, sent the moment it resumes, stops
/// the recording, and the next trial records. hindsight notices that the stream does not
/// answer, but keeps its connection while it looks for the stream: a new connection would
/// get only what is sent after it connects, and that marker would be lost.
#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "pylsl's wheels carry a liblsl for x86_64 only"
)]
fn an_experiment_that_hangs_mid_trial_and_resumes_loses_no_marker() {
    let _g = serial();
    let (_py, stream, mut exp, mut h) = followed_experiment("HS_resumed");
    exp.push("begin_trial");
    h.wait_until(
        "the marker starts a recording",
        Duration::from_secs(10),
        |h| h.status()["state"] == "recording",
    );

    exp.signal(libc::SIGSTOP);
    let hung = std::time::Instant::now();
    h.wait_until(
        "hindsight notices that the stream does not answer",
        Duration::from_secs(20),
        |h| h.log_text().contains("no longer answers"),
    );
    // `hindsight ctl status` says so, as the dashboard does.
    let said = String::from_utf8_lossy(&h.ctl(&["status"]).stdout).into_owned();
    assert!(
        said.contains(&format!(
            "lsl markers: `{stream}` from {} (experiment-1) does not answer",
            hostname()
        )),
        "{said}"
    );
    // The trial ends as the machine resumes: the marker is sent at once (it is read from
    // the script's input, written while it is stopped).
    exp.push("end_trial");
    exp.signal(libc::SIGCONT);
    let hung_for = hung.elapsed();
    h.wait_until(
        "the end_trial sent as the script resumed stops the recording",
        Duration::from_secs(10),
        |h| h.status()["state"] == "buffering",
    );
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "{files:?}");
    // It ran through the hang, to the marker sent after it.
    let frames = read_sidecar(&files[0]).len() as f64;
    assert!(
        frames >= hung_for.as_secs_f64() * 20.0,
        "{frames} frames for a recording over a hang of {hung_for:?}"
    );
    h.wait_until(
        "hindsight says the stream answers again",
        Duration::from_secs(20),
        |h| h.log_text().contains("answers again"),
    );

    // The next trial, from the same script.
    trial(&mut h, &mut exp);
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert_eq!(tags(f)["TRIGGER_MESSAGE"], "begin_trial", "{}", f.display());
    }
    let said = String::from_utf8_lossy(&h.ctl(&["status"]).stdout).into_owned();
    assert!(
        said.contains(&format!(
            "lsl markers: following `{stream}` from {} (experiment-1)",
            hostname()
        )),
        "{said}"
    );
    assert!(h.terminate().success());
}

/// This machine's name, as liblsl gives it in a stream's info.
fn hostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
