//! Helpers for end-to-end tests: run the real `hindsight` binary, drive it through its
//! API, and judge its files with ffprobe, ffmpeg, mkvmerge and mkvinfo.
#![allow(dead_code)]

pub mod camera_server;
pub mod ntfy;
pub mod virtual_camera;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_hindsight");

/// Tests that run a recorder at 100 fps take turns: two at once on a 2-core machine would
/// measure the machine, not hindsight.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Checks that an external tool the tests need is installed (they are required: CI
/// installs them; a missing tool fails the test with this message).
pub fn require_tool(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    assert!(
        ok,
        "`{tool}` is needed by this test: run scripts/install-deps.sh"
    );
}

/// The recorder the end-to-end tests run: this build, or the command line in
/// `HINDSIGHT_TEST_PROGRAM` (words split at spaces), e.g. a Raspberry Pi's build under
/// qemu-user, `qemu-arm -E LD_LIBRARY_PATH=<its liblsl>/lib <cross-target>/.../hindsight`,
/// to run a suite against it by hand (README, "A Raspberry Pi's builds"). `ctl`, `repair`
/// and the other one-shot commands stay this build's.
pub fn recorder_program() -> Vec<std::ffi::OsString> {
    match std::env::var("HINDSIGHT_TEST_PROGRAM") {
        Ok(p) if !p.trim().is_empty() => p.split_whitespace().map(Into::into).collect(),
        _ => vec![BIN.into()],
    }
}

/// A running `hindsight run`.
pub struct Hindsight {
    pub child: Option<Child>,
    pub api: String,
    pub root: PathBuf,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Hindsight {
    /// Starts hindsight with `config` (YAML) in a fresh directory; `storage.root` and
    /// `api.listen` are set here. Waits until the API answers.
    pub fn start(config: &str) -> Hindsight {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        Self::start_in(dir, root, config)
    }

    pub fn start_in(dir: tempfile::TempDir, root: PathBuf, config: &str) -> Hindsight {
        Self::start_with(dir, root, config, |_| {})
    }

    /// As `start_in`, with a chance to adjust the command (environment, limits).
    pub fn start_with(
        dir: tempfile::TempDir,
        root: PathBuf,
        config: &str,
        adjust: impl FnOnce(&mut Command),
    ) -> Hindsight {
        Self::start_wrapped(dir, root, config, &[], adjust)
    }

    /// As `start_with`, run through `wrapper` (a program and its arguments that end by
    /// exec'ing the rest of the command line, e.g. `unshare ... sh -c '... exec "$@"'`).
    pub fn start_wrapped(
        dir: tempfile::TempDir,
        root: PathBuf,
        config: &str,
        wrapper: &[std::ffi::OsString],
        adjust: impl FnOnce(&mut Command),
    ) -> Hindsight {
        let mut program = wrapper.to_vec();
        program.extend(recorder_program());
        Self::start_program(dir, root, config, &program, adjust)
    }

    /// As `start_with`, with another hindsight binary: `program` is the command line that
    /// runs it (`qemu-arm <an ARM build>`), before `run` and its arguments.
    pub fn start_program(
        dir: tempfile::TempDir,
        root: PathBuf,
        config: &str,
        program: &[std::ffi::OsString],
        adjust: impl FnOnce(&mut Command),
    ) -> Hindsight {
        // Its LSL streams stay on this machine, in this run's session.
        lsl_session();
        let port = free_port();
        let api = format!("127.0.0.1:{port}");
        let cfg_path = dir.path().join("config.yaml");
        std::fs::write(&cfg_path, config).unwrap();
        let log = dir.path().join(format!("hindsight-{port}.log"));
        let (first, args) = program.split_first().expect("a program to run");
        let mut cmd = Command::new(first);
        cmd.args(args);
        cmd.args(["run", "--config"])
            .arg(&cfg_path)
            .arg("--root")
            .arg(&root)
            .args(["--api", &api])
            .env("HINDSIGHT_LOG", "info")
            // Not a service unless a test says so (tests/service.rs).
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        adjust(&mut cmd);
        let child = cmd.spawn().expect("start hindsight");
        let mut h = Hindsight {
            child: Some(child),
            api,
            root,
            dir,
            log,
        };
        h.wait_until("the API answers", Duration::from_secs(20), |h| {
            h.try_status().is_some()
        });
        h
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_status(&mut self) -> Option<Value> {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!("hindsight exited ({st}):\n{}", self.log_text());
            }
        }
        let r = reqwest::blocking::Client::new()
            .get(format!("http://{}/api/status", self.api))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()?;
        r.json().ok()
    }

    pub fn status(&mut self) -> Value {
        self.try_status().expect("status")
    }

    /// `GET /api/recordings`: every recording under the root, as the web page lists them.
    pub fn recordings(&self) -> Vec<Value> {
        let list: Value = reqwest::blocking::Client::new()
            .get(format!("http://{}/api/recordings", self.api))
            .timeout(Duration::from_secs(15))
            .send()
            .expect("API reachable")
            .json()
            .expect("JSON answer");
        list["recordings"]
            .as_array()
            .unwrap_or_else(|| panic!("no recordings list: {list}"))
            .clone()
    }

    /// POSTs a command; returns (HTTP status, JSON body).
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::blocking::Client::new()
            .post(format!("http://{}/api/{path}", self.api))
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .expect("API reachable");
        let code = r.status().as_u16();
        (code, r.json().expect("JSON answer"))
    }

    pub fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&mut Self) -> bool,
    ) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out after {limit:?} waiting until {what}:\n{}",
            self.log_text()
        );
    }

    /// Waits until camera 0 has at least `secs` buffered.
    pub fn wait_buffered(&mut self, secs: f64) {
        self.wait_until(
            &format!("{secs} s are buffered"),
            Duration::from_secs(60),
            |h| {
                h.status()["cameras"][0]["buffered_seconds"]
                    .as_f64()
                    .unwrap()
                    >= secs
            },
        );
    }

    /// Starts a recording through the API (asserting it starts), lets it run `secs`,
    /// stops it and waits until its files are closed. Returns the start's answer.
    pub fn record_for(&mut self, secs: f64) -> Value {
        let (code, r) = self.post("start", serde_json::json!({}));
        assert_eq!(code, 200, "{r}");
        std::thread::sleep(Duration::from_secs_f64(secs));
        self.post("stop", serde_json::json!({}));
        self.wait_idle_files();
        r
    }

    /// Waits until no file is open.
    pub fn wait_idle_files(&mut self) {
        self.wait_until("all files are closed", Duration::from_secs(30), |h| {
            h.status()["current_files"].as_array().unwrap().is_empty()
        });
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("ctl")
            .args(["--api", &self.api])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }

    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                start.elapsed() < limit,
                "hindsight did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Every MKV under the root, sorted.
    pub fn mkv_files(&self) -> Vec<PathBuf> {
        mkv_files(&self.root)
    }
}

impl Drop for Hindsight {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A wrapper (strace) killed alone would leave hindsight running, detached, after
            // a failed test: every process under the child goes with it.
            let under = descendants(c.id());
            let _ = c.kill();
            for pid in under {
                // SAFETY: plain kill(2) on a process this test started (or its children).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            let _ = c.wait();
        }
    }
}

/// Every process started by `pid`, its children's children included.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for c in text.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

pub fn mkv_files(root: &Path) -> Vec<PathBuf> {
    recording_files(root, "video", "mkv")
}

/// Every WAV under the root, sorted.
pub fn wav_files(root: &Path) -> Vec<PathBuf> {
    recording_files(root, "audio", "wav")
}

fn recording_files(root: &Path, folder: &str, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(days) = std::fs::read_dir(root) {
        for d in days.flatten() {
            if let Ok(files) = std::fs::read_dir(d.path().join(folder)) {
                for f in files.flatten() {
                    if f.path().extension().is_some_and(|e| e == ext) {
                        out.push(f.path());
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// A row of `<stem>.frames.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct SidecarRow {
    pub frame_number: u64,
    /// Kept as text too: it must equal the file's Tag exactly.
    pub lsl_text: String,
    pub lsl_time: f64,
    pub unix_time: f64,
    pub pts: f64,
    pub bytes: u64,
    pub pre_trigger: bool,
    /// `exposure_us`, `analogue_gain`, `digital_gain` as written (empty: not reported),
    /// where the sidecar has those columns (a libcamera camera's).
    pub exposure: Option<[String; 3]>,
}

/// A synthetic camera's file lost nothing the recorder could cause. Its frame numbers
/// follow each other, except over frames the camera never delivered: a synthetic
/// camera's thread that this machine holds up for more than 4 frame periods (a VM stall)
/// skips them, as a camera driver with 4 buffers would. Those are counted as
/// `source_gaps` by `cam` (a camera of `status`, read after the frames were captured),
/// are the only drops of any cause, and are rare: at most 2 places in the file, so a
/// recorder that holds its capture thread up over and over still fails here. Returns
/// the numbers skipped.
pub fn assert_nothing_lost(rows: &[SidecarRow], cam: &Value) -> u64 {
    let numbers: Vec<u64> = rows.iter().map(|r| r.frame_number).collect();
    assert_numbers_lost_nothing(&numbers, cam)
}

/// [`assert_nothing_lost`] for frame numbers read some other way (decoded from pixels).
pub fn assert_numbers_lost_nothing(numbers: &[u64], cam: &Value) -> u64 {
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "frame numbers out of order or repeated"
    );
    let skipped: u64 = numbers.windows(2).map(|w| w[1] - w[0] - 1).sum();
    let places = numbers.windows(2).filter(|w| w[1] != w[0] + 1).count();
    let gaps = cam["drops"]["source_gaps"].as_u64().unwrap();
    assert_eq!(
        cam["frames_dropped"].as_u64().unwrap(),
        gaps,
        "frames lost by a cause other than the source: {cam}"
    );
    assert!(
        skipped <= gaps && places <= 2,
        "{skipped} frame numbers missing in {places} places, {gaps} counted as source gaps: {cam}"
    );
    if skipped > 0 {
        eprintln!("note: {skipped} frames the source never delivered ({places} places): {cam}");
    }
    skipped
}

/// `hindsight report FILE --out <dir>/report.html`: the report it wrote (it must succeed).
pub fn report_html(file: &Path, dir: &Path) -> String {
    let out = dir.join("report.html");
    let made = Command::new(BIN)
        .arg("report")
        .arg(file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "hindsight report {}: {}",
        file.display(),
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read_to_string(&out).unwrap()
}

/// Runs `hindsight repair FILE`; its output, whatever it says.
pub fn repair(file: &Path) -> Output {
    Command::new(BIN).arg("repair").arg(file).output().unwrap()
}

/// Runs the checker users run on their recordings (`tools/check-recording.py`) on `mkv`:
/// its exit code and what it printed.
pub fn check_recording(mkv: &Path) -> (Option<i32>, String) {
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/check-recording.py");
    let out = Command::new("python3").arg(tool).arg(mkv).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs `hindsight repair FILE`, which must succeed; what it printed.
pub fn repair_ok(file: &Path) -> String {
    let out = repair(file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sizes in a WAV's header, and the sample bytes actually in the file.
pub fn wav_sizes(path: &Path) -> (u64, u64) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    let at = bytes.windows(4).position(|w| w == b"data").unwrap();
    let declared = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as u64;
    (declared, (bytes.len() - at - 8) as u64)
}

/// A WAV file's duration as sox reads it (sox must read it).
pub fn sox_seconds(path: &Path) -> f64 {
    let out = Command::new("sox")
        .arg("--i")
        .arg("-D")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sox cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The time (s) of the first block of the MKV's audio track, from ffprobe.
pub fn first_audio_block_s(mkv: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args([
            "-show_entries",
            "packet=pts_time",
            "-read_intervals",
            "%+#1",
        ])
        .args(["-of", "csv=p=0"])
        .arg(mkv)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("{}: no audio block", mkv.display()))
}

pub fn sidecar_of(mkv: &Path) -> PathBuf {
    mkv.with_extension("frames.csv")
}

pub fn events_of(mkv: &Path) -> PathBuf {
    mkv.with_extension("events.csv")
}

/// The first `kind` row of an MKV's events sidecar: its LSL time, and the row.
pub fn event_row(mkv: &Path, kind: &str) -> (f64, String) {
    let events = std::fs::read_to_string(events_of(mkv)).unwrap();
    let row = events
        .lines()
        .find(|l| l.split(',').nth(2) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} row in {}:\n{events}", mkv.display()))
        .to_string();
    (row.split(',').next().unwrap().parse().unwrap(), row)
}

pub fn read_sidecar(mkv: &Path) -> Vec<SidecarRow> {
    let text = std::fs::read_to_string(sidecar_of(mkv)).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let columns = [
        "frame_number,lsl_time,unix_time,pts,bytes,pre_trigger",
        "frame_number,lsl_time,unix_time,pts,bytes,pre_trigger,exposure_us,analogue_gain,digital_gain",
    ]
    .iter()
    .find(|h| **h == header)
    .unwrap_or_else(|| panic!("{}: header {header:?}", mkv.display()))
    .split(',')
    .count();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), columns, "row {l}");
            SidecarRow {
                exposure: (columns == 9).then(|| [6, 7, 8].map(|i| f[i].to_string())),
                frame_number: f[0].parse().unwrap(),
                lsl_text: f[1].to_string(),
                lsl_time: f[1].parse().unwrap(),
                unix_time: f[2].parse().unwrap(),
                pts: f[3].parse().unwrap(),
                bytes: f[4].parse().unwrap(),
                pre_trigger: f[5] == "1",
            }
        })
        .collect()
}

fn run_tool(tool: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e} (run scripts/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{tool} {args:?} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Frame count as ffprobe counts it by reading every frame.
pub fn ffprobe_frame_count(mkv: &Path) -> u64 {
    ffprobe_count(mkv, "frames")
}

/// Video packets in the file, counted by ffprobe from the container (no decoding).
pub fn ffprobe_packet_count(mkv: &Path) -> u64 {
    ffprobe_count(mkv, "packets")
}

/// ffprobe's count of the video stream's `frames` (decoded) or `packets`.
fn ffprobe_count(mkv: &Path, what: &str) -> u64 {
    run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            &format!("-count_{what}"),
            "-select_streams",
            "v:0",
            "-show_entries",
            &format!("stream=nb_read_{what}"),
            "-of",
            "csv=p=0",
        ],
        mkv,
    )
    .trim()
    .parse()
    .unwrap()
}

/// Every video packet's pts in seconds, in file order.
pub fn ffprobe_pts(mkv: &Path) -> Vec<f64> {
    run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ],
        mkv,
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| l.trim().trim_end_matches(',').parse().unwrap())
    .collect()
}

/// Each frame's ExposureTime and ISOSpeedRatings as ffprobe reads them from the Exif
/// block of its JPEG in the file ("" and 0 where a frame has none).
pub fn ffprobe_exif(mkv: &Path) -> Vec<(String, u32)> {
    let text = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame_tags=ExposureTime,ISOSpeedRatings",
            "-of",
            "json",
        ],
        mkv,
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let tag = |k: &str| f["tags"][k].as_str().unwrap_or_default().trim().to_string();
            (
                tag("ExposureTime"),
                tag("ISOSpeedRatings").parse().unwrap_or(0),
            )
        })
        .collect()
}

/// The container's tags and duration, from ffprobe.
pub fn ffprobe_format(mkv: &Path) -> Value {
    let text = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_format",
            "-show_chapters",
            "-of",
            "json",
        ],
        mkv,
    );
    serde_json::from_str(&text).unwrap()
}

/// `mkvmerge -J`, asserting it found no errors and no warnings.
pub fn mkvmerge_clean(mkv: &Path) -> Value {
    let out = Command::new("mkvmerge")
        .arg("-J")
        .arg(mkv)
        .output()
        .expect("mkvmerge (apt install mkvtoolnix)");
    let j: Value = serde_json::from_slice(&out.stdout).expect("mkvmerge -J prints JSON");
    assert_eq!(j["errors"], Value::Array(vec![]), "mkvmerge errors: {j}");
    assert_eq!(
        j["warnings"],
        Value::Array(vec![]),
        "mkvmerge warnings: {j}"
    );
    assert_eq!(j["container"]["recognized"], true);
    j
}

/// Number of cue points mkvinfo finds (`-a`: it stops at the first cluster otherwise).
pub fn mkvinfo_cue_points(mkv: &Path) -> usize {
    let text = run_tool("mkvinfo", &["-a"], mkv);
    text.lines().filter(|l| l.contains("Cue point")).count()
}

/// Decodes every frame of the file with ffmpeg and reads the frame number drawn in it.
pub fn decoded_frame_numbers(mkv: &Path, width: usize, height: usize) -> Vec<Option<u64>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mkv)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}: {}",
        mkv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let size = width * height;
    assert_eq!(out.stdout.len() % size, 0);
    out.stdout
        .chunks(size)
        .map(|f| hindsight::source::synthetic::decode_frame_number(f, width, height))
        .collect()
}

/// The tags of a file as a map, from ffprobe.
pub fn tags(mkv: &Path) -> BTreeMap<String, String> {
    let f = ffprobe_format(mkv);
    f["format"]["tags"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_uppercase(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A config for the synthetic camera, with a short buffer.
/// Writes `<dir>/config.yaml` for a one-shot command (`check`): recordings under `root`,
/// then `rest` (YAML: indented lines first are more `storage` keys), then the API on a
/// free loopback port. Its path.
pub fn config_file(dir: &Path, root: &Path, rest: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "storage:\n  root: {}\n{rest}api:\n  listen: 127.0.0.1:{}\n",
            root.display(),
            free_port()
        ),
    )
    .unwrap();
    path
}

pub fn synthetic_config(width: u32, height: u32, fps: f64, buffer_s: f64) -> String {
    format!(
        "buffer:\n  duration: {buffer_s}\n  max_bytes: 256MiB\ncameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: {width}, height: {height}}}\n    fps: {fps}\n"
    )
}

/// Sets up liblsl for this test process and the recorders it starts: discovery limited to
/// this machine, and a SessionID of its own, so that parallel runs never see each other's
/// streams. Call before any liblsl call; the child processes inherit it (LSLAPICFG).
pub fn lsl_session() -> &'static str {
    static SESSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SESSION.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let session = format!("hindsight-test-{}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(format!("{session}.cfg"));
        std::fs::write(
            &path,
            // Machine scope over an IPv4 multicast group with TTL 0: every socket on this
            // machine hears a query, nothing leaves it. (Machine scope's default address
            // is IPv6, and plain 127.0.0.1 reaches only one of several outlets.)
            format!(
                "[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n\
                 MachineAddresses = {{224.0.0.183}}\nTTLOverride = 0\n[lab]\nSessionID = {session}\n"
            ),
        )
        .unwrap();
        std::env::set_var("LSLAPICFG", &path);
        session
    })
}

/// The video stream's width, height and codec, from ffprobe.
pub fn ffprobe_video(mkv: &Path) -> (u64, u64, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(mkv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        mkv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    (
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
        s["codec_name"].as_str().unwrap().to_string(),
    )
}

/// Starts `strace` on the running recorder `h` with `args` (after `-f -qq -o /dev/null
/// -p PID`), and returns once it traces every thread (each one's `TracerPid`), so that
/// what it is to catch cannot happen before it looks.
pub fn strace_attached(h: &Hindsight, args: &[std::ffi::OsString]) -> Child {
    let pid = h.child.as_ref().unwrap().id();
    let strace = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-p", &pid.to_string()])
        .args(args)
        .spawn()
        .unwrap();
    // (A recorder gone already, killed by what strace was to do, has nothing to wait for.)
    let traced = || match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Err(_) => true,
        Ok(tasks) => tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("TracerPid:"))
                    .is_some_and(|v| v.trim() != "0")
            })
        }),
    };
    let start = Instant::now();
    while !traced() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "strace did not attach to every thread of {pid}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    strace
}

/// Voluntary context switches (a thread that slept and woke) of each thread of `pid`, by
/// thread name (threads of one name summed), from /proc.
pub fn thread_switches(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = entry.unwrap().path();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue;
        };
        let n: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        *out.entry(comm.trim().to_string()).or_default() += n;
    }
    out
}

/// How often thread `name` woke between two [`thread_switches`] readings.
pub fn woke_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    name: &str,
) -> u64 {
    after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
}

/// A recorder that may not write a file past `kib` KiB (`ulimit -f`, as a shell sets it:
/// a write past it would end the process with SIGXFSZ, which hindsight ignores, so that it
/// fails with "File too large" as on FAT past 4 GiB). `adjust` as for `start_with`.
pub fn start_under_a_file_limit(
    kib: u32,
    config: &str,
    adjust: impl FnOnce(&mut Command),
) -> Hindsight {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let wrapper: Vec<std::ffi::OsString> = vec![
        "bash".into(),
        "-c".into(),
        format!("ulimit -f {kib} && exec \"$@\"").into(),
        "limited".into(),
    ];
    Hindsight::start_wrapped(dir, root, config, &wrapper, adjust)
}

/// A recorder whose recordings root is a tmpfs of `mib` MiB, mounted in a mount namespace
/// of its own (`unshare`: no privileges needed, nothing mounted on the host). The test
/// sees the files through `/proc/<pid>/root`.
pub fn start_on_tiny_disk(mib: u32, config: &str) -> Hindsight {
    start_on_own_mounts(
        &format!("mount -t tmpfs -o size={mib}m hindsight-test \"$0\""),
        config,
    )
}

/// A recorder in a user and mount namespace of its own, whose folder `<tmp>/fs` (`$0` in
/// `script`, a shell command) `script` mounts before it starts; its recordings root is
/// `<tmp>/fs/rec`.
pub fn start_on_own_mounts(script: &str, config: &str) -> Hindsight {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("fs");
    std::fs::create_dir(&mount).unwrap();
    let root = mount.join("rec");
    let wrapper: Vec<std::ffi::OsString> = vec![
        "unshare".into(),
        "--user".into(),
        "--map-root-user".into(),
        "--mount".into(),
        "sh".into(),
        "-c".into(),
        format!("{script} && exec \"$@\"").into(),
        mount.clone().into(),
    ];
    Hindsight::start_wrapped(dir, root, config, &wrapper, |_| {})
}

/// A real ext4 filesystem of `mib` MiB in an image file, and a command prefix that mounts
/// it (on a loop device, with `options`) at `mount` in a mount namespace of its own, so
/// that it goes when the program run through it does: (the folder holding both, the
/// image, `mount`, the prefix). `None` (said on stderr) where this cannot be done: not
/// root, no loop devices, or no ext4 tools.
pub fn ext4_disk(
    mib: u64,
    options: &str,
) -> Option<(tempfile::TempDir, PathBuf, PathBuf, Vec<std::ffi::OsString>)> {
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    let tools = ["mkfs.ext4", "debugfs", "e2fsck", "losetup"]
        .iter()
        .all(|t| Command::new(t).arg("-V").output().is_ok());
    if !root_user || !Path::new("/dev/loop-control").exists() || !tools {
        eprintln!(
            "NOT RUN: a real ext4 disk needs root, loop devices and e2fsprogs \
             (root: {root_user}, e2fsprogs: {tools})"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let mount = dir.path().join("disk");
    std::fs::create_dir(&mount).unwrap();
    let wrapper: Vec<std::ffi::OsString> = vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        format!("mount -o {options} \"$1\" \"$0\" && shift && exec \"$@\"").into(),
        mount.clone().into(),
        image.clone().into(),
    ];
    Some((dir, image, mount, wrapper))
}

/// A recorder whose recordings root is on a real ext4 filesystem ([`ext4_disk`]) mounted
/// `errors=remount-ro` (as Raspberry Pi OS mounts its SD card). With the image file and the
/// loop device's name.
pub fn start_on_ext4(mib: u64, config: &str) -> Option<(Hindsight, PathBuf, String)> {
    let (dir, image, mount, wrapper) = ext4_disk(mib, "loop,errors=remount-ro")?;
    let root = mount.join("rec");
    let h = Hindsight::start_wrapped(dir, root, config, &wrapper, |_| {});
    let pid = h.child.as_ref().unwrap().id();
    let device = device_mounted_at(pid, &mount)
        .unwrap_or_else(|| panic!("{} is not mounted", mount.display()));
    Some((h, image, device))
}

/// The device (`loop3`) mounted at `mount`, from the mount table of process `pid` (in
/// its own mount namespace).
pub fn device_mounted_at(pid: u32, mount: &Path) -> Option<String> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let at = mount.display().to_string();
    table.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (f[4] == at).then(|| f[dash + 2].trim_start_matches("/dev/").to_string())
    })
}

/// `path` as the recorder (in its mount namespace) sees it.
pub fn inside(h: &Hindsight, path: &str) -> PathBuf {
    let pid = h.child.as_ref().unwrap().id();
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// Runs `args` in the recorder's mount namespace (as its `unshare` made it).
pub fn in_its_namespace(h: &Hindsight, args: &[&str]) {
    let pid = h.child.as_ref().unwrap().id().to_string();
    let out = std::process::Command::new("nsenter")
        .args(["--target", &pid, "--user", "--mount", "--"])
        .args(args)
        .output()
        .expect("nsenter");
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// A burst of `n` requests to `api` from as many threads: starts (even) and stops (odd),
/// the k-th pair sent `spacing` × k after the first (`Duration::ZERO`: all at once).
/// Each request's (was it a start, HTTP status, answer), in request order.
pub fn command_burst(api: &str, n: usize, spacing: Duration) -> Vec<(bool, u16, Value)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                s.spawn(move || {
                    std::thread::sleep(spacing * (i / 2) as u32);
                    let start = i % 2 == 0;
                    let r = reqwest::blocking::Client::new()
                        .post(format!(
                            "http://{api}/api/{}",
                            if start { "start" } else { "stop" }
                        ))
                        .json(&serde_json::json!({}))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .unwrap();
                    (start, r.status().as_u16(), r.json().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Finds the LSL stream `name` (waiting up to a minute for it to appear) and connects an
/// inlet to it (`recover`: liblsl's recovery across restarts); the inlet and the stream's
/// full description.
pub fn lsl_connect(name: &str, recover: bool) -> (lsl::StreamInlet, lsl::StreamInfo) {
    let start = Instant::now();
    loop {
        let found = lsl::resolve_byprop("name", name, 1, 2.0).unwrap();
        if let Some(info) = found.into_iter().next() {
            let inlet = lsl::StreamInlet::new(&info, 360, 0, recover).unwrap();
            inlet.open_stream(20.0).unwrap();
            let full = inlet.info(20.0).unwrap();
            return (inlet, full);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stream {name} not found"
        );
    }
}

/// Every event (JSON) an inlet of an `_Events` stream holds now, with its timestamp.
pub fn lsl_pull_events(inlet: &lsl::StreamInlet) -> Vec<(Value, f64)> {
    use lsl::Pullable;
    let mut out = Vec::new();
    loop {
        let (v, ts): (Vec<String>, f64) = inlet.pull_sample(0.0).unwrap();
        if ts == 0.0 {
            return out;
        }
        out.push((serde_json::from_str(&v[0]).unwrap(), ts));
    }
}

/// Every sample an inlet holds now, with its timestamp.
pub fn lsl_pull_numbers(inlet: &lsl::StreamInlet) -> Vec<(Vec<f64>, f64)> {
    use lsl::Pullable;
    let mut out = Vec::new();
    loop {
        let (v, ts): (Vec<f64>, f64) = inlet.pull_sample(0.0).unwrap();
        if ts == 0.0 {
            return out;
        }
        out.push((v, ts));
    }
}
