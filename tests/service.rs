//! hindsight as a service: the systemd notify protocol (readiness, watchdog, stopping)
//! spoken to a real notify socket, a capture loop really stalled (the thread frozen with
//! ptrace) starving the watchdog, the journal log format, and the unit file checked by
//! `systemd-analyze verify`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A notify socket as systemd's: the service sends datagrams of `KEY=VALUE` lines.
struct NotifySocket {
    sock: UnixDatagram,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::Builder::new()
            .prefix("hs-notify")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            sock,
            path,
            _dir: dir,
        }
    }

    /// Every message that arrives within `d`.
    fn collect(&self, d: Duration) -> Vec<String> {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while start.elapsed() < d {
            if let Ok(n) = self.sock.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    /// Waits up to `limit` for a message containing `line`; returns it.
    fn wait_for(&self, line: &str, limit: Duration) -> Option<String> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < limit {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if m.lines().any(|l| l == line) {
                    return Some(m);
                }
            }
        }
        None
    }
}

fn count(msgs: &[String], line: &str) -> usize {
    msgs.iter().filter(|m| m.lines().any(|l| l == line)).count()
}

/// The thread of `pid` called `name`.
fn thread_id(pid: u32, name: &str) -> i32 {
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return t.file_name().to_str().unwrap().parse().unwrap();
        }
    }
    panic!("no thread {name} in {pid}");
}

/// Freezes one thread of another process (not the process: its other threads run on)
/// for `d`, with ptrace, as a camera driver call that never returns would.
fn freeze_thread(tid: i32, d: Duration) {
    // SAFETY: ptrace on a thread of our own child process; every request is checked.
    unsafe {
        assert_eq!(
            libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0),
            0,
            "PTRACE_SEIZE: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0), 0);
        let mut status = 0;
        assert_eq!(libc::waitpid(tid, &mut status, libc::__WALL), tid);
        std::thread::sleep(d);
        assert_eq!(
            libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0),
            0,
            "PTRACE_DETACH: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn ready_after_frames_watchdog_fed_while_capture_runs_stopping_on_sigterm() {
    let _g = serial();
    let notify = NotifySocket::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let config = synthetic_config(320, 240, 100.0, 2.0) + "audio:\n  enabled: false\n";
    let mut h = Hindsight::start_with(dir, root, &config, |c| {
        c.env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "2000000");
    });
    let ready = notify
        .wait_for("READY=1", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no READY=1:\n{}", h.log_text()));
    // Ready means frames: the camera delivers.
    assert!(
        h.status()["cameras"][0]["frames_captured"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(ready.contains("STATUS="), "{ready}");

    // Fed every 0.5 s (a quarter of the 2 s interval), with STATUS lines for systemctl.
    let msgs = notify.collect(Duration::from_secs(3));
    let fed = count(&msgs, "WATCHDOG=1");
    assert!(
        (4..=8).contains(&fed),
        "{fed} watchdog pings in 3 s: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("STATUS=buffering: cam0")),
        "{msgs:?}"
    );

    // The capture loop stuck (its thread frozen): the watchdog is starved within about
    // half the interval, so systemd would restart hindsight; the API still answers.
    let pid = h.child.as_ref().unwrap().id();
    let tid = thread_id(pid, "capture-cam0");
    let freezer = std::thread::spawn(move || freeze_thread(tid, Duration::from_secs(5)));
    // (What was sent in the first 2 s of the stall is read and set aside.)
    let _ = notify.collect(Duration::from_secs(2));
    let during = notify.collect(Duration::from_millis(2500));
    assert_eq!(
        count(&during, "WATCHDOG=1"),
        0,
        "fed while stalled: {during:?}"
    );
    assert!(h.try_status().is_some(), "the API answers during the stall");
    freezer.join().unwrap();
    let after = notify.collect(Duration::from_secs(2));
    assert!(count(&after, "WATCHDOG=1") >= 2, "fed again: {after:?}");
    let log = h.log_text();
    assert!(
        log.contains("capture loop stalled: cam0") && log.contains("running again"),
        "{log}"
    );

    // A graceful stop says so first.
    h.signal(libc::SIGTERM);
    assert!(
        notify
            .wait_for("STOPPING=1", Duration::from_secs(5))
            .is_some(),
        "no STOPPING=1"
    );
    assert!(h.wait_exit(Duration::from_secs(30)).success());
}

/// A camera not there at start-up does not hold the service's start: READY comes once
/// the others deliver (systemd would otherwise kill and restart hindsight after
/// TimeoutStartSec, and record nothing meanwhile), and the log says which is missing.
#[test]
fn ready_comes_without_a_camera_that_is_not_there() {
    let _g = serial();
    let notify = NotifySocket::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let config = synthetic_config(320, 240, 30.0, 2.0)
        + "  - name: gone\n    source: v4l2\n    device: /dev/video95\naudio:\n  enabled: false\n";
    let mut h = Hindsight::start_with(dir, root, &config, |c| {
        c.env("NOTIFY_SOCKET", &notify.path);
    });
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no READY=1:\n{}", h.log_text()));
    let s = h.status();
    assert!(
        s["cameras"][0]["frames_captured"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert_eq!(s["cameras"][1]["lost"], true, "{s}");
    let log = h.log_text();
    assert!(log.contains("ready without camera gone"), "{log}");
    assert!(h.terminate().success());
}

/// A camera program that, started again, takes its time before its first frame (up to
/// the 15 s an open waits) is not a stalled capture loop: the watchdog is fed all the
/// while and the log raises no stall. (Before, the loop's heartbeat stood still for the
/// whole wait: past half the watchdog interval the feeding stopped and the log said
/// "capture loop stalled ... restarts hindsight"; and a stop waited for the rest of the
/// 15 s.)
#[test]
fn the_watchdog_is_fed_while_a_camera_program_is_waited_for() {
    let _g = serial();
    let notify = NotifySocket::new();
    let dir = tempfile::tempdir().unwrap();
    // Delivers for 2 s the first time; every later start says nothing for 30 s.
    let script = dir.path().join("camera.sh");
    let ran = dir.path().join("ran");
    std::fs::write(
        &script,
        format!(
            "if [ -e {ran} ]; then exec sleep 30; fi\ntouch {ran}\n\
             exec ffmpeg -v error -re -f lavfi -i testsrc2=size=160x120:rate=30 -t 2 -c:v mjpeg -f mjpeg -\n",
            ran = ran.display()
        ),
    )
    .unwrap();
    let root = dir.path().join("recordings");
    let config = synthetic_config(320, 240, 30.0, 2.0)
        + &format!(
            "  - name: prog\n    source: command\n    command: \"sh {}\"\n    fps: 30\naudio:\n  enabled: false\n",
            script.display()
        );
    let mut h = Hindsight::start_with(dir, root, &config, |c| {
        c.env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "4000000");
    });
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no READY=1:\n{}", h.log_text()));
    h.wait_until("the program ends", Duration::from_secs(20), |h| {
        h.status()["cameras"][1]["lost"] == true
    });
    // The program is started again and waited for (15 s); the stall limit is 2 s.
    let _ = notify.collect(Duration::from_millis(500));
    let during = notify.collect(Duration::from_secs(8));
    let s = h.status();
    assert_eq!(s["cameras"][1]["lost"], true, "still waited for: {s}");
    let fed = count(&during, "WATCHDOG=1");
    assert!(fed >= 6, "{fed} watchdog pings in 8 s: {during:?}");
    let log = h.log_text();
    assert!(!log.contains("capture loop stalled"), "{log}");
    // The synthetic camera recorded on meanwhile.
    assert!(s["cameras"][0]["fps"].as_f64().unwrap() > 25.0, "{s}");
    // A stop does not wait out the program's 15 s: the wait ends with it, and is not
    // reported as one more failure to open.
    assert!(h.terminate().success());
    let log = h.log_text();
    assert!(log.contains("capture stopped"), "{log}");
    assert!(!log.contains("no JPEG frame within"), "{log}");
}

#[test]
fn the_log_speaks_journald_when_stderr_is_the_journal() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("journal.log");
    let file = std::fs::File::create(&log).unwrap();
    // JOURNAL_STREAM names the stream systemd connected: here, this file.
    let meta = std::os::unix::fs::MetadataExt::dev(&file.metadata().unwrap());
    let ino = std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap());
    let root = dir.path().join("rec");
    let mut child = Command::new(BIN)
        .args(["run", "--root"])
        .arg(&root)
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .args(["--set", "audio.enabled=false", "--set", "lsl.enabled=false"])
        .env_remove("HINDSIGHT_LOG_FORMAT")
        .env("JOURNAL_STREAM", format!("{meta}:{ino}"))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains("capturing") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no capture started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 5, "{text}");
    for l in &lines {
        let p = l.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&p),
            "no priority: {l}"
        );
        assert!(!l.contains('\u{1b}'), "colour codes in the journal: {l}");
        // No timestamp of its own: the journal has one.
        assert!(!l[3..].trim_start().starts_with("20"), "{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("SYNTHETIC test pattern")),
        "{text}"
    );
    // Each stage logs in its span.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("capture{camera=cam0}: ")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains(" control: ")), "{text}");

    // Without the journal: plain text with times.
    let log2 = dir.path().join("text.log");
    let mut child = Command::new(BIN)
        .args(["run", "--root"])
        .arg(&root)
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .args(["--set", "audio.enabled=false", "--set", "lsl.enabled=false"])
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log2).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log2).unwrap();
    assert!(text.lines().next().unwrap().starts_with("20"), "{text}");
}

#[test]
fn sigterm_is_answered_even_when_nobody_reads_the_log() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--root"])
        .arg(dir.path())
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .args(["--set", "audio.enabled=false", "--set", "lsl.enabled=false"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first line, then go away (`hindsight run 2>&1 | head -1`): stderr is a
    // closed pipe from now on, and every log line fails to be written.
    let mut err = child.stderr.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read(&mut err, &mut first).unwrap();
    drop(err);
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "SIGTERM left unanswered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    require_tool("systemd-analyze");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/hindsight.service"
    ))
    .unwrap();
    // verify checks that ExecStart's program exists: point it at the binary just built.
    assert!(unit.contains("ExecStart=/usr/local/bin/hindsight run"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hindsight.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/hindsight", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(!said.contains("hindsight.service"), "{said}");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=hindsight",
        "SupplementaryGroups=video audio",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(key)), "{key}");
    }
}
