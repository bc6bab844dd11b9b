//! The dashboard in a real terminal (tmux), driven with its keys: attached to a running
//! service (`hindsight dashboard`), and inside `hindsight run`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A tmux server of this test's own, with one session.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        require_tool("tmux");
        // Its programs inherit this process's environment (the LSL session among it).
        lsl_session();
        let socket = format!("hindsight-test-{}-{name}", std::process::id());
        let t = Tmux {
            socket,
            session: name.to_string(),
        };
        // A shell first, so that the pane stays (dead) after the program exits and its
        // last screen, or the log written after it, can still be read.
        t.ok(&["new-session", "-d", "-s", name, "-x", "110", "-y", "34"]);
        t.ok(&["set-option", "-t", name, "remain-on-exit", "on"]);
        t
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Replaces the pane's shell with `command`.
    fn start(&self, command: &str) {
        self.ok(&["respawn-pane", "-k", "-t", &self.session, command]);
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", &self.session])
    }

    fn keys(&self, keys: &str) {
        self.ok(&["send-keys", "-t", &self.session, keys]);
    }

    fn dead(&self) -> bool {
        self.ok(&["display-message", "-p", "-t", &self.session, "#{pane_dead}"])
            .trim()
            == "1"
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "`{text}` not on screen after {limit:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn quote(p: &std::path::Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn attached_dashboard_starts_and_stops_a_running_service_and_detaches() {
    let _g = serial();
    let mut h =
        Hindsight::start(&(synthetic_config(320, 240, 50.0, 3.0) + "audio:\n  enabled: false\n"));
    h.wait_buffered(2.9);
    let tmux = Tmux::new("attached");
    tmux.start(&format!("{BIN} dashboard --api {}", h.api));
    let s = tmux.wait_for("BUFFERING", Duration::from_secs(20));
    assert!(s.contains(&format!("attached to {}", h.api)), "{s}");
    assert!(s.contains("cam0 synthetic 320x240 mjpg"), "{s}");
    assert!(s.contains("detach (the service keeps running)"), "{s}");

    tmux.keys("S");
    let s = tmux.wait_for("RECORDING", Duration::from_secs(10));
    assert!(s.contains("from api"), "{s}");
    assert_eq!(h.status()["state"], "recording");
    tmux.wait_for("file  rec_", Duration::from_secs(5));

    tmux.keys("x");
    let s = tmux.wait_for("BUFFERING", Duration::from_secs(10));
    assert!(s.contains("stop: done"), "{s}");
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 1);
    let rows = read_sidecar(&files[0]);
    assert_eq!(ffprobe_frame_count(&files[0]), rows.len() as u64);
    assert!(
        rows.len() >= 140,
        "3 s buffered at 50 fps and more: {}",
        rows.len()
    );
    mkvmerge_clean(&files[0]);

    // Q leaves the dashboard; the service goes on.
    tmux.keys("q");
    let start = Instant::now();
    while !tmux.dead() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Q did not detach"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = h.status()["cameras"][0]["frames_captured"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let s = h.status();
    assert_eq!(s["state"], "buffering");
    assert!(s["cameras"][0]["frames_captured"].as_u64().unwrap() > before);
    assert!(h.terminate().success());
}

/// `hindsight run` with its dashboard in a tmux session of its own: a synthetic 320x240
/// camera at 50 fps, `buffer` seconds buffered, no audio; `redirect` is appended to the
/// command line.
struct InTmux {
    tmux: Tmux,
    root: std::path::PathBuf,
    api: String,
    _dir: tempfile::TempDir,
}

impl InTmux {
    fn start(session: &str, buffer: f64, redirect: &str) -> InTmux {
        Self::start_with(session, buffer, "", redirect)
    }

    /// With `cameras` (YAML list items) beside the synthetic one.
    fn start_with(session: &str, buffer: f64, cameras: &str, redirect: &str) -> InTmux {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            synthetic_config(320, 240, 50.0, buffer) + cameras + "audio:\n  enabled: false\n",
        )
        .unwrap();
        let api = format!("127.0.0.1:{}", free_port());
        let tmux = Tmux::new(session);
        tmux.start(&format!(
            "{BIN} run --config {} --root {} --api {api}{redirect}",
            quote(&config),
            quote(&root)
        ));
        InTmux {
            tmux,
            root,
            api,
            _dir: dir,
        }
    }
}

#[test]
fn in_process_dashboard_records_with_keys_and_q_finishes_the_files() {
    let _g = serial();
    let run = InTmux::start("inprocess", 3.0, "");
    let (tmux, root) = (&run.tmux, &run.root);
    let s = tmux.wait_for("BUFFERING", Duration::from_secs(30));
    assert!(s.contains("quit (files are finished first)"), "{s}");
    // The log goes to the dashboard's pane, not over it.
    assert!(s.contains(" log "), "{s}");
    tmux.wait_for("100%", Duration::from_secs(10));

    tmux.keys("S");
    let s = tmux.wait_for("RECORDING", Duration::from_secs(10));
    assert!(s.contains("from key \"S\""), "{s}");
    std::thread::sleep(Duration::from_secs(1));
    tmux.keys("X");
    tmux.wait_for("stop: done", Duration::from_secs(10));
    tmux.keys("S");
    tmux.wait_for("recording 2", Duration::from_secs(10));

    // Q stops hindsight gracefully: the open recording is finished, then it exits.
    tmux.keys("Q");
    let start = Instant::now();
    while !tmux.dead() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Q did not stop hindsight"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // After the dashboard, the log it held is on the terminal.
    let s = tmux.screen();
    assert!(s.contains("dashboard: Q: stopping gracefully"), "{s}");
    assert!(s.contains("stopped"), "{s}");
    let files = mkv_files(root);
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let rows = read_sidecar(f);
        assert_eq!(ffprobe_frame_count(f), rows.len() as u64);
        mkvmerge_clean(f);
        assert!(mkvinfo_cue_points(f) > 0, "finished: {}", f.display());
    }
    let events = std::fs::read_to_string(events_of(&files[0])).unwrap();
    assert!(events.contains("key"), "{events}");
}

/// S and X pressed together while a camera is lost: the start's answer waits 1.5 s for
/// that camera's file, and X goes at once, stamped when it was pressed. Waiting for the
/// start's answer, the dashboard read X only after it: the recording ran 1.5 s longer
/// than asked, and the screen froze meanwhile.
#[test]
fn a_stop_key_pressed_while_the_starts_answer_waits_is_taken_when_pressed() {
    let _g = serial();
    let lost =
        "  - name: gone\n    source: command\n    command: \"sh -c 'exit 1'\"\n    fps: 30\n";
    let run = InTmux::start_with("keysnow", 3.0, lost, "");
    let (tmux, root) = (&run.tmux, &run.root);
    tmux.wait_for("BUFFERING", Duration::from_secs(30));
    tmux.wait_for("100%", Duration::from_secs(10));
    tmux.keys("S");
    std::thread::sleep(Duration::from_millis(200));
    tmux.keys("X");
    tmux.wait_for("stop: done", Duration::from_secs(10));
    let files = mkv_files(root);
    let cam0 = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("_cam0.mkv"))
        .unwrap_or_else(|| panic!("{files:?}"));
    // The stop row is written as the file is finished, a moment after the answer.
    let read = || std::fs::read_to_string(events_of(cam0)).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !read().contains(",stop,") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = read();
    let held = event_row(cam0, "stop").0 - event_row(cam0, "start").0;
    assert!(
        (0.1..0.8).contains(&held),
        "X pressed 0.2 s after S was taken {held:.2} s after it\n{events}"
    );
    tmux.keys("Q");
    let start = Instant::now();
    while !tmux.dead() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The terminal of `hindsight run` goes away while it records (an SSH session that
/// dropped; here the tmux session is killed, which hangs up its pane's terminal and sends
/// SIGHUP): the recording is finished and hindsight exits. SIGHUP's default action killed
/// it with the file unfinished; caught, the dashboard then spun at 100% of a core inside
/// crossterm, reading end-of-file from the dead terminal, and the process never exited.
#[test]
fn a_closed_terminal_finishes_the_recording_and_hindsight_exits() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let run = InTmux::start("hangup", 2.0, &format!(" 2>{}", quote(&log)));
    let (tmux, root, api) = (&run.tmux, &run.root, &run.api);
    tmux.wait_for("BUFFERING", Duration::from_secs(30));
    tmux.wait_for("100%", Duration::from_secs(10));
    let pid = String::from_utf8(
        Command::new("pgrep")
            .args(["-n", "-f", &format!("run --config .* --api {api}")])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let pid: i32 = pid.trim().parse().expect("hindsight's pid");
    let r = reqwest::blocking::Client::new()
        .post(format!("http://{api}/api/start"))
        .json(&serde_json::json!({}))
        .timeout(Duration::from_secs(15))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    std::thread::sleep(Duration::from_secs(1));
    tmux.ok(&["kill-session", "-t", "hangup"]);
    let start = Instant::now();
    // SAFETY: signal 0 only asks whether the process is there.
    while unsafe { libc::kill(pid, 0) } == 0 {
        if start.elapsed() > Duration::from_secs(30) {
            // SAFETY: our own child's child; not left behind spinning.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!(
                "hindsight did not exit after its terminal closed:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("SIGHUP: the terminal closed"), "{text}");
    assert!(text.contains("stopped"), "{text}");
    let files = mkv_files(root);
    assert_eq!(files.len(), 1, "{files:?}");
    let rows = read_sidecar(&files[0]);
    assert!(
        rows.len() >= 140,
        "{} frames: 2 s buffered and 1 s live",
        rows.len()
    );
    assert_eq!(ffprobe_frame_count(&files[0]), rows.len() as u64);
    mkvmerge_clean(&files[0]);
    assert!(mkvinfo_cue_points(&files[0]) > 0, "finished");
}
