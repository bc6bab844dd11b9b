//! Real camera sources that can run on this machine: a program writing MJPEG to stdout
//! (ffmpeg) and a network camera (ffmpeg serving multipart MJPEG over HTTP on loopback).
//! Files are judged with ffprobe, ffmpeg and mkvmerge.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const TESTSRC: &str =
    "ffmpeg -v error -re -f lavfi -i testsrc2=size=640x480:rate=30 -c:v mjpeg -q:v 5 -f mjpeg -";

fn camera_config(cams: &str) -> String {
    format!(
        "buffer:\n  duration: 2\n  max_bytes: 256MiB\naudio:\n  enabled: false\ncameras:\n{cams}"
    )
}

/// Decodes every frame with ffmpeg: the errors it prints (none for a good file). Frames
/// keep their own times (`passthrough`): a network camera's frames come in bursts.
fn decode_errors(mkv: &std::path::Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mkv)
        .args([
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn video_size(mkv: &std::path::Path) -> String {
    let (w, h, _) = ffprobe_video(mkv);
    format!("{w},{h}")
}

/// The recording is complete and consistent: ffprobe's frame count equals the sidecar's
/// rows, frame numbers are consecutive, every frame decodes, mkvmerge is content.
fn check_file(mkv: &std::path::Path) -> Vec<SidecarRow> {
    let rows = read_sidecar(mkv);
    assert_eq!(
        ffprobe_frame_count(mkv),
        rows.len() as u64,
        "{}",
        mkv.display()
    );
    assert!(rows
        .windows(2)
        .all(|w| w[1].frame_number == w[0].frame_number + 1));
    assert_eq!(decode_errors(mkv), "", "ffmpeg decodes every frame");
    mkvmerge_clean(mkv);
    rows
}

#[test]
fn a_program_writing_mjpeg_to_stdout_is_a_camera() {
    let _g = serial();
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: pipe\n    source: command\n    command: \"{TESTSRC}\"\n    fps: 30\n"
    )));
    h.wait_buffered(1.9);
    let s = h.status();
    assert_eq!(s["cameras"][0]["source"], "command");
    assert_eq!(s["cameras"][0]["width"], 640);
    assert_eq!(s["cameras"][0]["height"], 480);
    let (code, r) = h.post("start", json!({"seconds": 2}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let mkv = h.mkv_files().pop().unwrap();
    let rows = check_file(&mkv);
    assert_eq!(video_size(&mkv), "640,480");
    // 2 s buffered + 2 s live at 30 fps, give or take the edges.
    let span = rows.last().unwrap().lsl_time - rows[0].lsl_time;
    let expected = (span * 30.0).round() as i64 + 1;
    assert!(
        (rows.len() as i64 - expected).abs() <= 2,
        "{} frames over {span:.3} s at 30 fps",
        rows.len()
    );
    assert!((3.8..4.4).contains(&span), "span {span}");
    assert_eq!(h.status()["cameras"][0]["frames_dropped"], 0);
    assert!(h.terminate().success());
    // The program is stopped with hindsight.
    let left = Command::new("pgrep")
        .args(["-f", "testsrc2=size=640x480"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "ffmpeg left running");
}

/// A camera that delivers more frames a second than its `fps` (a network or program
/// camera whose rate is set on the camera itself): the pre-trigger buffer still holds the
/// whole `duration`. Its frame slots were sized from `fps` alone, so at 90 fps for 30 the
/// buffer held 2.4 s of the 4 s asked for, with memory to spare, and each recording began
/// 1.6 s late.
#[test]
fn a_camera_faster_than_its_fps_keeps_the_whole_pre_trigger_buffer() {
    let _g = serial();
    let fast = TESTSRC.replace("640x480:rate=30", "320x240:rate=90");
    let mut h = Hindsight::start(
        &camera_config(&format!(
            "  - name: quick\n    source: command\n    command: \"{fast}\"\n    \
             resolution: {{width: 320, height: 240}}\n    fps: 30\n"
        ))
        .replace("duration: 2", "duration: 4"),
    );
    h.wait_until("4 s are buffered", Duration::from_secs(30), |h| {
        h.status()["cameras"][0]["buffered_seconds"]
            .as_f64()
            .unwrap()
            >= 3.95
    });
    let s = h.status();
    assert!(s["cameras"][0]["fps"].as_f64().unwrap() > 80.0, "{s}");
    let (code, r) = h.post("start", json!({"seconds": 1}));
    assert_eq!(code, 200, "{r}");
    assert!(!r["message"].as_str().unwrap().contains("held only"), "{r}");
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let mkv = h.mkv_files().pop().unwrap();
    let rows = check_file(&mkv);
    let pre: Vec<_> = rows.iter().filter(|r| r.pre_trigger).collect();
    let span = pre.last().unwrap().lsl_time - pre[0].lsl_time;
    assert!(span >= 3.9, "{span:.2} s before the trigger, of 4 s");
    assert!(
        pre.len() >= 340,
        "{} frames before the trigger at 90 fps",
        pre.len()
    );
    assert!(h.log_text().contains("frame slots instead of"));
    assert!(h.terminate().success());
}

/// Hindsight with camera `pipe` (fps 30): [`TESTSRC`] piped through a Python program
/// that runs `first`, then splits the stream into JPEGs and runs `each` (indented two
/// spaces) on every one: `f` the frame, `n` its number, `o`/`e` stdout/stderr (bytes).
fn through_python(first: &str, each: &str) -> (Hindsight, tempfile::TempDir) {
    let program = format!(
        "import sys\nb=sys.stdin.buffer\no=sys.stdout.buffer\ne=sys.stderr.buffer\n{first}\nbuf=b''\nn=0\nwhile True:\n d=b.read1(65536)\n if not d: break\n buf+=d\n while True:\n  s=buf.find(b'\\xff\\xd8')\n  t=buf.find(b'\\xff\\xd9',s+2)\n  if s<0 or t<0: break\n  f=buf[s:t+2]; buf=buf[t+2:]; n+=1\n{each}"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("camera.py");
    std::fs::write(&script, program).unwrap();
    let cmd = format!("{TESTSRC} | python3 -u {}", script.display());
    let h = Hindsight::start(&camera_config(&format!(
        "  - name: pipe\n    source: command\n    command: \"{cmd}\"\n    fps: 30\n"
    )));
    (h, dir)
}

/// A camera program that says a line on stderr for every frame (as rpicam-vid does),
/// after one line that is not UTF-8: it keeps delivering. Its stderr was read as UTF-8
/// lines, and the first byte that was not ended the reading: the pipe filled, the program
/// blocked writing its next line, and the camera was lost a second later, again after each
/// restart.
#[test]
fn a_camera_program_that_talks_on_stderr_in_any_bytes_keeps_delivering() {
    let _g = serial();
    let (mut h, _dir) = through_python(
        "e.write(b'\\xff\\xfe\\xb0C starting\\n'); e.flush()",
        "  o.write(f); o.flush()\n  e.write(b'#%d ' % n + b'x' * 2000 + b'\\r\\n'); e.flush()\n",
    );
    h.wait_buffered(1.9);
    // 8 s more: 480 kB of stderr, seven times a pipe's 64 kB.
    std::thread::sleep(Duration::from_secs(8));
    let s = h.status();
    let cam = &s["cameras"][0];
    assert_eq!(cam["lost"], false, "{cam}");
    assert!(cam["frames_captured"].as_u64().unwrap() >= 270, "{cam}");
    assert!(cam["fps"].as_f64().unwrap() > 25.0, "{cam}");
    assert!(!h.log_text().contains("lost"), "{}", h.log_text());
    assert!(h.terminate().success());
}

#[test]
fn truncated_and_corrupt_frames_are_counted_and_never_written() {
    let _g = serial();
    // Every 7th frame cut in half, and garbage between frames.
    let (mut h, _dir) = through_python(
        "",
        "  o.write(f[:len(f)//2] if n%7==0 else f)\n  o.write(b'--junk--\\r\\n')\n  o.flush()\n",
    );
    h.wait_buffered(1.9);
    h.post("start", json!({"seconds": 1}));
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let s = h.status();
    let corrupt = s["cameras"][0]["drops"]["corrupt"].as_u64().unwrap();
    let captured = s["cameras"][0]["frames_captured"].as_u64().unwrap();
    assert!(
        corrupt * 7 >= captured.saturating_sub(7),
        "{corrupt} corrupt of {captured} good"
    );
    let mkv = h.mkv_files().pop().unwrap();
    let rows = read_sidecar(&mkv);
    assert_eq!(ffprobe_frame_count(&mkv), rows.len() as u64);
    assert_eq!(decode_errors(&mkv), "", "no broken frame reached the file");
    assert!(rows.len() > 60);
    // The stop row counts what was lost while the file was written, by cause, and the
    // quality report says it.
    let events = std::fs::read_to_string(events_of(&mkv)).unwrap();
    let stop = events.lines().find(|l| l.contains(",stop,")).unwrap();
    let lost: u64 = stop
        .split("corrupt ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of corrupt frames: {stop}"));
    assert!((2..=corrupt).contains(&lost), "{lost} of {corrupt}: {stop}");
    let report = report_html(&mkv, h.dir.path());
    assert!(
        report.contains(&format!("corrupt {lost}")),
        "the report says it"
    );
    // A camera that says nothing of its exposure gets no exposure plot.
    assert!(report.contains("plot interval") && !report.contains("plot exposure"));
    // The log says the first at once and counts the rest (it said every one, several
    // lines a second), and what is left at exit.
    let said = h.log_text().matches("corrupt frame").count();
    assert!(said <= 2 && corrupt >= 10, "{said} lines for {corrupt}");
    assert!(h.terminate().success());
    let log = h.log_text();
    let counted: u64 = log
        .lines()
        .filter(|l| l.contains("dropped ") && l.contains(" corrupt frame"))
        .map(|l| {
            let n = l
                .split("dropped ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            n.parse().unwrap_or(1)
        })
        .sum();
    assert!(
        counted >= corrupt,
        "the lines add up to {counted}, not {corrupt}:\n{log}"
    );
}

/// Whether something listens on 127.0.0.1:`port`, or already took its client there (read
/// from /proc: connecting would use up ffmpeg's one client; and hindsight, reconnecting
/// with backoff, may be accepted before the listening socket is ever seen).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // 0A: listening; 01: a connection accepted on that port.
            f.len() > 3 && f[1] == want && (f[3] == "0A" || f[3] == "01")
        })
}

/// ffmpeg serving multipart MJPEG on `port` to one client (`-listen 1`), as a network
/// camera does.
fn serving_camera(port: u16) -> Child {
    let child = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-c:v",
            "mjpeg",
            "-q:v",
            "5",
            "-f",
            "mpjpeg",
            "-content_type",
            "multipart/x-mixed-replace;boundary=ffmpeg",
            "-listen",
            "1",
        ])
        .arg(format!("http://127.0.0.1:{port}/cam.mjpg"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !listening(port) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ffmpeg does not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn a_network_camera_is_recorded_and_reconnected_after_it_goes_away() {
    let _g = serial();
    let port = free_port();
    let server = serving_camera(port);
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: net\n    source: http-mjpeg\n    url: http://127.0.0.1:{port}/cam.mjpg\n    fps: 25\n"
    )));
    h.wait_buffered(1.9);
    assert_eq!(h.status()["cameras"][0]["width"], 320);

    // A recording during which the camera goes away: it goes on (its file stays open),
    // and the status says what happened.
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_secs(1));
    stop(server);
    h.wait_until("the loss is reported", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == true
    });
    let s = h.status();
    assert_eq!(s["state"], "recording", "{s}");
    assert!(
        s["cameras"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("camera lost"),
        "{s}"
    );
    assert!(
        s["warnings"]
            .to_string()
            .contains("camera net lost during recording"),
        "{s}"
    );
    h.post("stop", json!({}));
    h.wait_idle_files();
    let first = h.mkv_files().pop().unwrap();
    let rows = check_file(&first);
    assert!(rows.len() >= 70, "{} frames before the loss", rows.len());

    // The camera comes back: hindsight reconnects by itself and records again.
    let server = serving_camera(port);
    h.wait_until("the camera is back", Duration::from_secs(30), |h| {
        let c = &h.status()["cameras"][0];
        c["lost"] == false && c["reopened"].as_u64().unwrap() >= 1
    });
    std::thread::sleep(Duration::from_secs(2));
    let (code, r) = h.post("start", json!({"seconds": 1}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("the second recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    let second = files.iter().find(|f| **f != first).unwrap();
    let rows2 = check_file(second);
    assert!(rows2.len() >= 50, "{} frames", rows2.len());
    // Frame numbers keep increasing across the reconnect.
    assert!(rows2[0].frame_number > rows.last().unwrap().frame_number);
    assert!(h.terminate().success());
    stop(server);
}

/// The lines of `log` that contain `text`.
fn lines_with(log: &str, text: &str) -> usize {
    log.lines().filter(|l| l.contains(text)).count()
}

#[test]
fn a_network_camera_not_there_at_start_up_leaves_the_others_recording_and_joins_when_it_comes() {
    let _g = serial();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/cam.mjpg");
    let config = camera_config(&format!(
        "  - name: synth\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: 25\n  - name: net\n    source: http-mjpeg\n    url: {url}\n    fps: 25\n"
    ));
    // `hindsight check`, the pre-flight, still fails for it, naming it.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, &config).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("net") && said.contains(&url), "{said}");

    // `hindsight run` runs on: the synthetic camera buffers, the network one is lost
    // with its reason, in the status and the warnings.
    let mut h = Hindsight::start(&config);
    h.wait_buffered(1.95);
    assert_eq!(h.status()["state"], "buffering");
    let s = h.status();
    let net = &s["cameras"][1];
    assert_eq!(net["lost"], true, "{s}");
    assert_eq!(net["width"], 0, "its size is not known yet: {s}");
    let why = net["last_error"].as_str().unwrap();
    assert!(
        why.contains("could not be opened at start-up") && why.contains(&url),
        "{s}"
    );
    assert!(
        s["warnings"]
            .to_string()
            .contains("camera net lost: could not be opened at start-up"),
        "{s}"
    );
    let out = h.ctl(&["status"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("\nnet: http-mjpeg LOST: could not be opened at start-up: "),
        "{said}"
    );

    // A recording meanwhile, some seconds later: the reply says the camera is lost, and
    // that the buffer held what was asked for (the synthetic camera's).
    std::thread::sleep(Duration::from_secs(3));
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let said = r["message"].as_str().unwrap();
    assert!(said.contains("camera net is lost"), "{r}");
    assert!(!said.contains("the buffer held only"), "{r}");
    // Why, once: the failures to open it again are the same.
    assert_eq!(said.matches("Connection refused").count(), 1, "{r}");
    std::thread::sleep(Duration::from_secs(1));

    // The camera comes during it: it is opened by itself, at its own size, and its file
    // in this recording starts with its first frame.
    let server = serving_camera(port);
    h.wait_until(
        "the network camera delivers",
        Duration::from_secs(30),
        |h| {
            let c = &h.status()["cameras"][1];
            c["lost"] == false && c["frames_captured"].as_u64().unwrap() > 25
        },
    );
    let s = h.status();
    assert_eq!(s["cameras"][1]["width"], 320, "{s}");
    assert_eq!(s["cameras"][1]["height"], 240, "{s}");
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    let first = h.mkv_files();
    assert_eq!(first.len(), 2, "{first:?}");
    let is_net = |f: &&std::path::PathBuf| f.to_string_lossy().ends_with("_net.mkv");
    let net_file = first.iter().find(is_net).unwrap();
    assert!(check_file(net_file).len() >= 25);
    assert_eq!(video_size(net_file), "320,240");
    let synth_file = first.iter().find(|f| !is_net(f)).unwrap();
    assert!(check_file(synth_file).len() >= 75);
    // Its events file says from the start that it was lost, and why; then that it came,
    // with the size it opened at (its LSL description was made before it opened; the LSL
    // events stream and the log have the same).
    let ev = events(net_file);
    let kinds: Vec<&str> = ev.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        kinds,
        ["start", "camera_lost", "camera_back", "stop"],
        "{ev:?}"
    );
    assert!(
        ev[1].2.contains("lost when this recording began")
            && ev[1].2.contains("could not be opened at start-up")
            && ev[1].2.contains(&url),
        "{ev:?}"
    );
    assert!(
        ev[2].2.contains("its first frames since start-up") && ev[2].2.contains("320x240"),
        "{ev:?}"
    );
    // The file's summary counts the time it was away within the file's span (from 2 s
    // before the start), not since start-up, and the loss.
    let summary = h.status()["last_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("_net.mkv"))
        .cloned()
        .unwrap();
    assert_eq!(summary["camera_losses"], 1, "{summary}");
    let away = summary["camera_lost_s"].as_f64().unwrap();
    let within = ev[2].0 - (ev[0].0 - 2.0);
    assert!(
        away > 2.0 && away <= within + 0.001,
        "{away} s away, {within} s from the file's start to its first frame: {summary}"
    );
    // The loss row is at the file's start, so the report's span is the summary's.
    assert!((ev[1].0 - (ev[0].0 - 2.0)).abs() < 0.05, "{ev:?}");
    let report = report_html(net_file, h.dir.path());
    let said = report
        .split("id=\"camera-net\"")
        .nth(1)
        .and_then(|r| r.split("camera-lost\">").nth(1))
        .and_then(|r| r.split(" s without").next())
        .unwrap_or_default();
    let secs: f64 = said
        .strip_prefix("1 time, ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the net camera's losses: {said}"));
    assert!(
        (secs - away).abs() < 0.01,
        "report {secs} s, summary {away} s"
    );

    // And the next recording has both from its start, the file's tags saying the size
    // the camera opened at.
    std::thread::sleep(Duration::from_secs(2));
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    assert!(!r["message"].as_str().unwrap().contains("lost"), "{r}");
    std::thread::sleep(Duration::from_secs(2));
    h.post("stop", json!({}));
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 4, "{files:?}");
    let net_file = files
        .iter()
        .filter(is_net)
        .find(|f| !first.contains(f))
        .unwrap();
    assert!(check_file(net_file).len() >= 75);
    assert_eq!(video_size(net_file), "320,240");
    let tags = tags(net_file);
    assert!(
        tags.values().any(|v| v.contains("320x240")),
        "the file says the size the camera opened at: {tags:?}"
    );

    // It goes away, and a recording starts and stops without it: that camera's summary
    // counts the whole span away (the 2 s before the start and the recording).
    stop(server);
    h.wait_until("the network camera is lost", Duration::from_secs(20), |h| {
        h.status()["cameras"][1]["lost"] == true
    });
    std::thread::sleep(Duration::from_secs(3));
    h.record_for(2.0);
    let last = h.status()["last_files"].clone();
    let third = last
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["recording_id"] == 3 && f["camera"] == "net")
        .unwrap_or_else(|| panic!("no summary of recording 3's net file: {last}"));
    assert_eq!(third["frames"], 0, "{third}");
    assert_eq!(third["camera_losses"], 1, "{third}");
    let synth = last
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["recording_id"] == 3 && f["camera"] == "synth")
        .unwrap();
    let away = third["camera_lost_s"].as_f64().unwrap();
    let span = synth["duration_s"].as_f64().unwrap();
    assert!(
        (away - span).abs() < 0.2,
        "away {away} s of a recording whose other camera's file spans {span} s: {third}"
    );
    // It made no video, only its events file; everything a user reads after the take
    // says so, and why, rather than list the other camera's file as the whole recording.
    let net_events =
        std::path::PathBuf::from(third["path"].as_str().unwrap()).with_extension("events.csv");
    assert!(net_events.exists() && !net_events.with_extension("").with_extension("mkv").exists());
    let said = String::from_utf8_lossy(&h.ctl(&["status"]).stdout).into_owned();
    assert!(
        said.lines().any(|l| l.starts_with("last file: ")
            && l.contains("_net.mkv: no frames: the camera was lost for all ")),
        "{said}"
    );
    let rec = h
        .recordings()
        .into_iter()
        .find(|r| {
            r["trigger"].as_str().is_some_and(|t| t.contains("start"))
                && r["cameras"].as_array().unwrap().len() == 2
                && r["cameras"][0]["frames"] == 0
        })
        .unwrap_or_else(|| {
            panic!(
                "recording 3 lists no camera without frames: {:?}",
                h.recordings()
            )
        });
    let net = &rec["cameras"][0];
    assert_eq!(net["camera"], "net", "{rec}");
    assert_eq!(rec["camera_losses"], 1, "{rec}");
    let outage = &net["outages"][0];
    assert_eq!(outage["came_back"], false, "{outage}");
    assert!(
        outage["why"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{outage}"
    );
    let listed =
        outage["until_lsl_time"].as_f64().unwrap() - outage["lost_lsl_time"].as_f64().unwrap();
    assert!(
        (listed - away).abs() < 0.05,
        "listed {listed} s, summary {away} s"
    );
    let report = report_html(&net_events, h.dir.path());
    let net_part = report.split("camera net</h2>").nth(1).unwrap_or_default();
    assert!(
        net_part.contains("class=\"bad no-frames\">none: "),
        "{net_part}"
    );
    assert!(net_part.contains("the stop: never back"), "{net_part}");
    let got = reqwest::blocking::get(format!(
        "http://{}/api/recordings/{}/frames/net/0.jpg",
        h.api,
        rec["id"].as_str().unwrap()
    ))
    .unwrap();
    assert_eq!(got.status().as_u16(), 404);
    let r: serde_json::Value = got.json().unwrap();
    assert!(
        r["message"].as_str().unwrap().contains("has no frames"),
        "{r}"
    );
    assert!(h.terminate().success());

    // Said once, not at every try: one line for the start-up, one for its coming.
    let log = h.log_text();
    assert_eq!(
        lines_with(&log, "could not be opened at start-up"),
        1,
        "{log}"
    );
    assert_eq!(lines_with(&log, "camera net back"), 1, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("camera net back during recording 1")
                && l.contains("its first frames since start-up")
                && l.contains("320x240")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("capturing: the camera opened") && l.contains("320x240")),
        "{log}"
    );
}

#[test]
fn a_synthetic_and_a_program_camera_record_together() {
    let _g = serial();
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: synth\n    source: synthetic\n    resolution: {{width: 320, height: 240}}\n    fps: 50\n  - name: pipe\n    source: command\n    command: \"{TESTSRC}\"\n    fps: 30\n"
    )));
    h.wait_until("both buffered", Duration::from_secs(30), |h| {
        let s = h.status();
        (0..2).all(|i| s["cameras"][i]["buffered_seconds"].as_f64().unwrap() >= 1.9)
    });
    h.post("start", json!({"seconds": 1}));
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    let stems: Vec<String> = files
        .iter()
        .map(|f| {
            let n = f.file_name().unwrap().to_str().unwrap();
            n[..n.rfind('_').unwrap()].to_string()
        })
        .collect();
    assert_eq!(stems[0], stems[1], "one stem for one recording");
    let synth = files
        .iter()
        .find(|f| f.to_str().unwrap().ends_with("_synth.mkv"))
        .unwrap();
    let pipe = files
        .iter()
        .find(|f| f.to_str().unwrap().ends_with("_pipe.mkv"))
        .unwrap();
    let a = check_file(synth);
    let b = check_file(pipe);
    assert_eq!(video_size(synth), "320,240");
    assert_eq!(video_size(pipe), "640,480");
    // Both cover the same span: the 2 s buffer and 1 s live.
    let span = |r: &[SidecarRow]| r.last().unwrap().lsl_time - r[0].lsl_time;
    assert!(
        (span(&a) - span(&b)).abs() < 0.1,
        "{} vs {}",
        span(&a),
        span(&b)
    );
    assert!((a.len() as f64 - span(&a) * 50.0).abs() <= 3.0);
    assert!(h.terminate().success());
}

#[test]
fn a_program_that_exits_is_started_again() {
    let _g = serial();
    // Runs for 2 s, then exits: as rpicam-vid does when the camera hiccups.
    let cmd =
        "ffmpeg -v error -re -f lavfi -i testsrc2=size=320x240:rate=30 -t 2 -c:v mjpeg -f mjpeg -";
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: pipe\n    source: command\n    command: \"{cmd}\"\n    fps: 30\n"
    )));
    h.wait_until("restarted twice", Duration::from_secs(30), |h| {
        h.status()["cameras"][0]["reopened"].as_u64().unwrap() >= 2
    });
    let s = h.status();
    assert!(
        s["cameras"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("exited"),
        "{s}"
    );
    h.post("start", json!({"seconds": 1}));
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let rows = check_file(&h.mkv_files().pop().unwrap());
    assert!(rows.len() > 30, "{} frames", rows.len());
    assert!(h.terminate().success());
}

/// Cameras are opened side by side at start-up: two camera programs that each start
/// streaming only once the other has started (as two slow starters whose waits would
/// add up) both open. Opened one after the other, the first waited for its first frame
/// while the second was not yet started, gave up after 10 s and started lost.
#[test]
fn cameras_are_opened_side_by_side_at_start_up() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let script = |me: &str, other: &str| {
        let path = dir.path().join(format!("{me}.sh"));
        std::fs::write(
            &path,
            format!(
                "touch {d}/{me}.started\ni=0\nwhile [ ! -e {d}/{other}.started ]; do \
                 i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done\n\
                 exec ffmpeg -v error -re -f lavfi -i testsrc2=size=160x120:rate=25 -c:v mjpeg -f mjpeg -\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        path
    };
    let (a, b) = (script("a", "b"), script("b", "a"));
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: a\n    source: command\n    command: \"sh {}\"\n    fps: 25\n  - name: b\n    source: command\n    command: \"sh {}\"\n    fps: 25\n",
        a.display(),
        b.display()
    )));
    h.wait_until("both cameras deliver", Duration::from_secs(40), |h| {
        let s = h.status();
        (0..2).all(|i| s["cameras"][i]["frames_captured"].as_u64().unwrap_or(0) > 25)
    });
    let s = h.status();
    for i in 0..2 {
        assert_eq!(s["cameras"][i]["reopened"], 0, "opened at start-up: {s}");
        assert_eq!(s["cameras"][i]["lost"], false, "{s}");
    }
    assert!(h.terminate().success());
    let log = h.log_text();
    assert!(!log.contains("could not be opened at start-up"), "{log}");
}

#[test]
fn a_v4l2_camera_that_is_not_there_is_said_clearly_and_hindsight_runs_on() {
    let _g = serial();
    let mut h = Hindsight::start(&camera_config(
        "  - name: cam0\n    source: v4l2\n    device: /dev/video97\n",
    ));
    h.wait_until("the camera is found lost", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == true
    });
    let s = h.status();
    let why = s["cameras"][0]["last_error"].as_str().unwrap();
    assert!(
        why.contains("cannot open /dev/video97") && why.contains("plugged in"),
        "{s}"
    );
    // Tried again, still there to answer, and it stops cleanly.
    h.wait_until("tried again", Duration::from_secs(10), |h| {
        h.status()["cameras"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("reopening")
    });
    assert!(h.terminate().success());
    let log = h.log_text();
    assert!(
        log.contains("camera cam0 lost: could not be opened at start-up: cannot open /dev/video97"),
        "{log}"
    );
    // `hindsight devices` says what there is.
    let out = Command::new(BIN).arg("devices").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("camera: synthetic"), "{text}");
}

/// A camera whose frames change size during a recording: a network camera set to another
/// resolution (its stream goes on at the new size), then one that comes back at yet
/// another (its program ends and starts again). A file's video has one size, so the
/// recording goes on in a next part at each new size, every part whole; before, the
/// frames of the new size were refused until hindsight was restarted.
#[test]
fn a_camera_whose_frames_change_size_goes_on_in_a_new_part_at_the_new_size() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let src = |size: &str, secs: &str| {
        format!(
            "ffmpeg -v error -re -f lavfi -i testsrc2=size={size}:rate=25 {secs} -c:v mjpeg -q:v 5 -f mjpeg -"
        )
    };
    // First run: 3 s at 160x120, then 3 s at 320x240 in the same stream, then it ends;
    // started again: 240x180.
    let cmd = format!(
        "sh -c 'if [ -e {ran} ]; then exec {again}; fi; touch {ran}; {first}; {second}'",
        ran = ran.display(),
        again = src("240x180", ""),
        first = src("160x120", "-t 3"),
        second = src("320x240", "-t 3"),
    );
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: pipe\n    source: command\n    command: \"{cmd}\"\n    fps: 25\n"
    )));
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("the camera comes back", Duration::from_secs(30), |h| {
        h.status()["cameras"][0]["width"] == 240
    });
    std::thread::sleep(Duration::from_secs(2));
    h.post("stop", json!({}));
    h.wait_idle_files();
    assert_eq!(h.status()["state"], "buffering");

    let files = h.mkv_files();
    let sizes: Vec<String> = files.iter().map(|f| video_size(f)).collect();
    assert_eq!(sizes, ["160,120", "320,240", "240,180"], "{files:?}");
    let parts: Vec<Vec<SidecarRow>> = files.iter().map(|f| check_file(f)).collect();
    for (rows, least) in parts.iter().zip([25, 75, 40]) {
        assert!(rows.len() >= least, "{} frames", rows.len());
    }
    // The stream's change loses no frame: the frames of the new size held until it was
    // sure are the next part's first, numbered on; the camera that came back: numbered on.
    let first_after =
        |i: usize| parts[i + 1][0].frame_number - parts[i].last().unwrap().frame_number;
    assert_eq!(first_after(0), 1, "frames missing at the stream's change");
    assert!(first_after(1) >= 1);
    // Every frame of the stream's 3 s at 320x240 is in its part (by ffprobe, in check_file).
    assert_eq!(parts[1].len(), 75, "frames of the 320x240 stream recorded");
    for (i, f) in files.iter().enumerate().skip(1) {
        let ev = events(f);
        assert!(
            ev.iter()
                .any(|e| e.1 == "part_start" && e.2.contains("continues")),
            "{ev:?}"
        );
        let origin = std::fs::read_to_string(events_of(f)).unwrap();
        assert!(
            origin.contains("part_start,writer: frame size changed"),
            "{i}: {origin}"
        );
    }
    assert!(
        h.log_text()
            .contains("the camera now delivers 320x240 frames (it was 160x120)"),
        "{}",
        h.log_text()
    );
    assert!(h.terminate().success());
}

/// The rows of an events sidecar: (lsl_time, event, detail).
fn events(mkv: &std::path::Path) -> Vec<(f64, String, String)> {
    std::fs::read_to_string(events_of(mkv))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, ',').collect();
            (f[0].parse().unwrap(), f[2].to_string(), f[4].to_string())
        })
        .collect()
}

/// A network camera that shows a web page for 8 s in the middle of a recording (as one
/// does while it restarts) rejoins the recording when it serves video again: one file,
/// with the frames before and after, the gap visible in their times, and the loss and
/// return in the status, the events file and the file summary.
#[test]
fn a_camera_that_comes_back_rejoins_the_recording_in_progress() {
    use common::camera_server::{jpeg_frames, CameraServer, Serve};
    let _g = serial();
    let server = CameraServer::start(jpeg_frames(320, 240, 25), 25.0, None);
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: net\n    source: http-mjpeg\n    url: {}\n    fps: 25\n",
        server.url("")
    )));
    h.wait_buffered(1.9);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_secs(2));
    server.set(Serve::Html);
    let lost_at = Instant::now();
    h.wait_until("the loss is reported", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == true
    });
    h.wait_until(
        "its rate of usable frames is 0",
        Duration::from_secs(3),
        |h| h.status()["cameras"][0]["fps"] == 0.0,
    );
    let s = h.status();
    assert_eq!(s["state"], "recording");
    assert!(
        s["warnings"]
            .to_string()
            .contains("camera net lost during recording 1"),
        "{s}"
    );
    while lost_at.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.set(Serve::Mjpeg);
    h.wait_until("the camera is back", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == false
    });
    assert!(
        h.status()["warnings"]
            .to_string()
            .contains("camera net back during recording 1"),
        "{}",
        h.status()
    );
    std::thread::sleep(Duration::from_secs(2));
    h.post("stop", json!({}));
    h.wait_idle_files();

    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "one recording, one file: {files:?}");
    let rows = check_file(&files[0]);
    let gaps: Vec<f64> = rows
        .windows(2)
        .map(|w| w[1].lsl_time - w[0].lsl_time)
        .filter(|&d| d > 1.0)
        .collect();
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    assert!(
        (7.5..15.0).contains(&gaps[0]),
        "the camera was away {gaps:?} s"
    );
    let split = rows
        .windows(2)
        .position(|w| w[1].lsl_time - w[0].lsl_time > 1.0)
        .unwrap();
    assert!(
        split >= 80,
        "{split} frames before the loss (2 s buffered + 2 s)"
    );
    assert!(
        rows.len() - split >= 35,
        "{} frames after it",
        rows.len() - split - 1
    );
    let ev = events(&files[0]);
    let kinds: Vec<&str> = ev.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        kinds,
        ["start", "camera_lost", "camera_back", "stop"],
        "{ev:?}"
    );
    let summary = &h.status()["last_files"][0];
    assert_eq!(summary["camera_losses"], 1, "{summary}");
    assert!(
        summary["camera_lost_s"].as_f64().unwrap() > 7.5,
        "{summary}"
    );
    // The log's line for the finished file says the loss, not only "0 missing" (this
    // camera's frame numbers are hindsight's count: they have no gap).
    assert!(
        h.log_text()
            .lines()
            .any(|l| l.contains("closed ") && l.contains("0 missing; camera lost 1 time, ")),
        "{}",
        h.log_text()
    );
    // The recordings list and the quality report say it too, with its span.
    let rec = &h.recordings()[0];
    assert_eq!(rec["camera_losses"], 1, "{rec}");
    let outage = &rec["cameras"][0]["outages"][0];
    assert_eq!(outage["came_back"], true, "{outage}");
    let away =
        outage["until_lsl_time"].as_f64().unwrap() - outage["lost_lsl_time"].as_f64().unwrap();
    assert!((7.0..15.0).contains(&away), "away {away:.1} s: {outage}");
    let report = report_html(&files[0], h.dir.path());
    let said = report
        .split("camera-lost\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_default();
    assert!(said.starts_with("1 time, "), "{said}");
    let secs: f64 = said["1 time, ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((away - secs).abs() < 0.01, "{secs} s against {away:.3} s");
    assert!(report.contains(", back</td>"), "the outages table");
    assert!(h.terminate().success());
}

/// A program that exits every 2 s (as rpicam-vid does when the camera hiccups) is started
/// again each time, and a recording spanning several restarts holds the frames of all.
#[test]
fn a_recording_keeps_a_program_camera_across_its_restarts() {
    let _g = serial();
    let cmd =
        "ffmpeg -v error -re -f lavfi -i testsrc2=size=320x240:rate=30 -t 2 -c:v mjpeg -f mjpeg -";
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: pipe\n    source: command\n    command: \"{cmd}\"\n    fps: 30\n"
    )));
    let (code, r) = h.post("start", json!({"seconds": 8}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("the recording ends", Duration::from_secs(30), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let mkv = h.mkv_files().pop().unwrap();
    let rows = check_file(&mkv);
    let live: Vec<&SidecarRow> = rows.iter().filter(|r| !r.pre_trigger).collect();
    let span = live.last().unwrap().lsl_time - live[0].lsl_time;
    assert!(span > 7.0, "live frames span {span:.1} of the 8 s");
    // Three or more runs of the program, each 2 s at 30 fps: most of the 8 s is there.
    assert!(
        live.len() >= 150,
        "{} live frames in 8 s of a 30 fps camera that restarts every 2 s",
        live.len()
    );
    let ev = events(&mkv);
    let losses = ev.iter().filter(|e| e.1 == "camera_lost").count();
    assert!(losses >= 3, "{ev:?}");
    // The quality report counts every restart as a loss (the frame numbers, hindsight's
    // count for a program, have no gap) and shows the longest interval across one.
    let report = report_html(&mkv, h.dir.path());
    assert!(
        report.contains(&format!("camera-lost\">{losses} times, ")),
        "{losses} losses: {}",
        report.split("<h2").nth(1).unwrap_or_default()
    );
    assert_eq!(
        report.matches(", back</td>").count(),
        losses,
        "each came back"
    );
    let longest_ms = rows
        .windows(2)
        .map(|w| (w[1].lsl_time - w[0].lsl_time) * 1e3)
        .fold(0.0, f64::max);
    assert!(
        report.contains(&format!("<td class=\"bad\">{longest_ms:.3} ms, ending at ")),
        "longest {longest_ms:.3} ms: {}",
        report.split("<h2").nth(1).unwrap_or_default()
    );
    assert!(h.terminate().success());
}

/// A camera that keeps sending, but nothing usable (frames cut short, after a good
/// start), is lost after 5 s, reported, and its program started again; its rate is that
/// of usable frames (0); a start while it delivers nothing names no file it did not make.
/// (Frames of another size were the unusable ones here until a camera that changes size
/// was recorded at the new one.)
#[test]
fn a_camera_sending_only_unusable_frames_is_lost_and_reopened() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    // Its first run: 2 s of whole frames, then only frames cut in half; later runs: only
    // cut ones.
    let (mut h, _script) = through_python(
        &format!(
            "import os\nfirst = not os.path.exists('{r}')\nopen('{r}', 'a').write('run\\n')",
            r = ran.display()
        ),
        "  o.write(f if first and n <= 60 else f[:len(f)//2]); o.flush()\n",
    );
    h.wait_until("the bad frames start", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["drops"]["corrupt"]
            .as_u64()
            .unwrap()
            > 10
    });
    // The rate is that of usable frames: none for a second, 0.
    h.wait_until(
        "its rate of usable frames is 0",
        Duration::from_secs(3),
        |h| h.status()["cameras"][0]["fps"] == 0.0,
    );
    assert_eq!(h.status()["cameras"][0]["lost"], false, "not yet lost");
    h.wait_until("the loss is reported", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == true
    });
    let err = h.status()["cameras"][0]["last_error"].to_string();
    assert!(err.contains("no usable frame for 5 s"), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    // Its program is started again, and gives nothing usable either.
    h.wait_until("it was started again", Duration::from_secs(30), |_| {
        std::fs::read_to_string(&ran).is_ok_and(|runs| runs.lines().count() >= 2)
    });
    std::thread::sleep(Duration::from_secs(3));
    let (code, r) = h.post("start", json!({}));
    assert_eq!(r["files"], json!([]), "no file is claimed: {r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("camera pipe is lost"),
        "{code} {r}"
    );
    h.post("stop", json!({}));
    h.wait_idle_files();
    assert!(h.mkv_files().is_empty(), "{:?}", h.mkv_files());
    assert!(h.terminate().success());
}

/// A camera that wants a login gets it in exactly one `Authorization` header (strict
/// cameras refuse two with 400), with the password decoded from the URL.
#[test]
fn a_network_camera_with_a_password_in_its_url_gets_one_login() {
    use common::camera_server::{jpeg_frames, CameraServer};
    let _g = serial();
    let server = CameraServer::start(jpeg_frames(320, 240, 25), 25.0, Some("admin:s@cret"));
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: net\n    source: http-mjpeg\n    url: {}\n    fps: 25\n",
        server.url("admin:s%40cret@")
    )));
    h.wait_buffered(1.9);
    let (code, r) = h.post("start", json!({"seconds": 1}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let rows = check_file(&h.mkv_files()[0]);
    assert!(rows.len() >= 70, "{} frames", rows.len());
    let seen = server.auth_headers.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for headers in &seen {
        assert_eq!(
            headers.len(),
            1,
            "Authorization headers of a request: {headers:?}"
        );
    }
    assert!(
        !h.log_text().contains("s@cret") && !h.log_text().contains("s%40cret"),
        "the password stays out of the log"
    );
    assert!(h.terminate().success());
}

/// The number that follows `after` in `text` (up to a space or `%`).
fn number_after(text: &str, after: &str) -> f64 {
    text.split(after)
        .nth(1)
        .and_then(|r| r.split([' ', '%']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{after}` in {text}"))
}

/// A camera whose frames this machine cannot encode at its rate (1080p asked for at 2000
/// fps): the frames it loses are said to be that, in the log and the status's warnings,
/// with the rate this machine keeps up with and what to change; the status shows its
/// capture thread's share of a core. A light camera beside it is not blamed. And the
/// recording holds every frame the camera delivered: the recorder lost none of them.
#[test]
fn frames_lost_to_a_capture_thread_that_cannot_keep_up_are_said_to_be_that() {
    let _g = serial();
    let mut h = Hindsight::start(&camera_config(
        "  - name: big\n    source: synthetic\n    resolution: {width: 1920, height: 1080}\n    fps: 2000\n  - name: small\n    source: synthetic\n    resolution: {width: 160, height: 120}\n    fps: 20\n",
    ));
    let started = std::time::Instant::now();
    let said = |s: &serde_json::Value| -> Option<String> {
        s["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .find(|w| w.starts_with("camera big: frames lost") && w.contains("busy"))
            .map(str::to_string)
    };
    h.wait_until(
        "the big camera's losses explained",
        Duration::from_secs(30),
        |h| said(&h.status()).is_some(),
    );
    let s = h.status();
    let warning = said(&s).unwrap();
    assert!(
        warning.contains("(gaps in the camera's frame numbers)"),
        "{warning}"
    );
    assert!(
        warning.contains("encoding 1920x1080 frames to JPEG, this machine keeps up with about "),
        "{warning}"
    );
    assert!(
        warning.contains("lower fps, resolution or quality"),
        "{warning}"
    );
    // Busy itself, or (when the machine's other work held the CPU) wanting it: either
    // way it hardly ever waited for the camera.
    let wanted = if warning.contains("was busy ") {
        number_after(&warning, "was busy ")
    } else {
        number_after(&warning, "needed a CPU ")
    };
    assert!(wanted >= 80.0, "{warning}");
    let can = number_after(&warning, "keeps up with about ");
    assert!(can > 0.0 && can < 2000.0 * 0.8, "{warning}");
    // The log says why at once too (its first line may not: the thread's CPU is known
    // after a second).
    h.wait_until("the log says why", Duration::from_secs(5), |h| {
        h.log_text().lines().any(|l| {
            l.contains("camera big: frames lost")
                && l.contains(
                    "encoding 1920x1080 frames to JPEG, this machine keeps up with about ",
                )
        })
    });
    let big = &s["cameras"][0];
    let small = &s["cameras"][1];
    let (big_cpu, small_cpu) = (
        big["capture_cpu"].as_f64().unwrap(),
        small["capture_cpu"].as_f64().unwrap(),
    );
    assert!(
        big_cpu > 0.3 && big_cpu > 10.0 * small_cpu,
        "{big}\n{small}"
    );
    assert!(small_cpu < 0.5, "{small}");
    for w in s["warnings"].as_array().unwrap() {
        let w = w.as_str().unwrap();
        assert!(
            !(w.starts_with("camera small") && w.contains("busy")),
            "{w}"
        );
    }
    // A second's recording: every frame delivered is in the file, the recorder lost none.
    // Once the buffer has grown to what its frames need (it starts small, and this one,
    // 35 MB/s, needs 150 MB): a recording started before can lose a frame to the writer
    // that holds the whole buffer, said as that (tested in `ring.rs`).
    let mut capacity = 0;
    h.wait_until("the buffer has grown", Duration::from_secs(30), |h| {
        std::thread::sleep(Duration::from_millis(500));
        let big = &h.status()["cameras"][0];
        let now = big["buffer_capacity_bytes"].as_u64().unwrap();
        let grown = now == capacity && big["buffered_seconds"].as_f64().unwrap() > 1.9;
        capacity = now;
        grown
    });
    h.post("start", json!({"seconds": 1}));
    h.wait_until("the recording ends", Duration::from_secs(30), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let mkv = h
        .mkv_files()
        .into_iter()
        .find(|f| f.to_str().unwrap().ends_with("_big.mkv"))
        .unwrap();
    let rows = read_sidecar(&mkv);
    assert_eq!(ffprobe_frame_count(&mkv), rows.len() as u64);
    assert!(rows
        .windows(2)
        .all(|w| w[1].frame_number > w[0].frame_number));
    let s = h.status();
    let big = &s["cameras"][0];
    assert_eq!(
        big["frames_dropped"], big["drops"]["source_gaps"],
        "only the camera's own gaps: {big}"
    );
    // Only its newest in the status, so that it never pushes another warning out of the
    // ten the status keeps; in the log at once, then once a minute while it goes on, and
    // when the recording or the process ends: lines that add up to every frame lost.
    let said: Vec<&str> = s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| w.starts_with("camera big: frames lost"))
        .collect();
    assert_eq!(said.len(), 1, "{said:#?}");
    // Losing frames for 12 s at least, to tell a line a second from one a minute.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    let lost = h.status()["cameras"][0]["drops"]["source_gaps"]
        .as_u64()
        .unwrap();
    let ran = started.elapsed().as_secs();
    assert!(h.terminate().success());
    let log = h.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("camera big: frames lost"))
        .collect();
    let in_lines: u64 = lines
        .iter()
        .map(|l| {
            let before = l
                .split(" (gaps in the camera's frame numbers)")
                .next()
                .unwrap();
            before.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert!(in_lines >= lost, "{in_lines} < {lost} in\n{lines:#?}");
    // Lost in each of the `ran` seconds, said in: the first line and the totals before
    // the recording, its first line and its totals, the first line after it and the
    // totals at exit, and one a minute.
    assert!(
        lines.len() as u64 <= 6 + ran / 60,
        "{} lines in {ran} s:\n{lines:#?}",
        lines.len()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("camera big: frames lost during recording 1: ")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("since the last line: ")),
        "{lines:#?}"
    );
}

/// A network camera whose stream closes after every two frames, during a recording: it
/// is reopened at once each time, and its frames keep coming into the file. People hear
/// of its first loss and return at once, and of the rest once a minute (not several
/// times a second in the log, the status and the ntfy reply topic); the events file has
/// every loss and return.
#[test]
fn a_camera_lost_and_back_again_and_again_is_said_once_not_every_time() {
    use common::camera_server::{jpeg_frames, CameraServer, Serve};
    let _g = serial();
    let server = CameraServer::start(jpeg_frames(320, 240, 25), 25.0, None);
    let mut h = Hindsight::start(&camera_config(&format!(
        "  - name: net\n    source: http-mjpeg\n    url: {}\n    fps: 25\n",
        server.url("")
    )));
    h.wait_buffered(0.9);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    server.set(Serve::TwoFrames);
    h.wait_until(
        "it was lost and back 10 times",
        Duration::from_secs(30),
        |h| h.status()["cameras"][0]["losses"].as_u64().unwrap() >= 10,
    );
    std::thread::sleep(Duration::from_secs(2));
    server.set(Serve::Mjpeg);
    h.wait_until("it delivers", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == false
    });
    h.post("stop", json!({}));
    h.wait_idle_files();
    let s = h.status();
    let losses = s["cameras"][0]["losses"].as_u64().unwrap();
    let said: Vec<&str> = s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| w.starts_with("camera net lost") || w.starts_with("camera net back"))
        .collect();
    assert_eq!(said.len(), 1, "one line of the status for it: {said:#?}");
    let log = h.log_text();
    let logged = log.matches("camera net lost").count() + log.matches("camera net back").count();
    assert!(logged <= 3, "{logged} lines for {losses} losses:\n{log}");
    assert!(
        log.contains("camera net lost during recording 1: "),
        "{log}"
    );
    assert!(
        log.contains("camera net back during recording 1, "),
        "{log}"
    );
    // Every loss and return is in the events file, and frames kept coming.
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let ev = events(&files[0]);
    let lost_rows = ev.iter().filter(|e| e.1 == "camera_lost").count() as u64;
    let back_rows = ev.iter().filter(|e| e.1 == "camera_back").count() as u64;
    assert!(
        lost_rows >= 10 && lost_rows + 1 >= losses && back_rows + 1 >= lost_rows,
        "{losses} losses: {ev:?}"
    );
    let rows = check_file(&files[0]);
    assert!(rows.len() as u64 >= 2 * lost_rows, "{} frames", rows.len());
    // Those not said yet are said at exit: with the first, every loss.
    assert!(h.terminate().success());
    let log = h.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("camera net lost ") && l.contains(" more time"))
        .unwrap_or_else(|| panic!("{log}"));
    let more: u64 = line
        .split(" more time")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(more + 1, losses, "{line}");
    assert!(line.ends_with("it delivers now"), "{line}");
}

/// A network camera that takes the connection and never answers holds each request for up
/// to its 10 s timeout. Stopping hindsight meanwhile finishes the recording at once and does
/// not wait for that answer.
#[test]
fn a_network_camera_that_never_answers_does_not_hold_up_the_exit() {
    let _g = serial();
    // Takes connections and keeps them, reading and answering nothing, for at most 2 min.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let silent = {
        let taken = taken.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(120) && held.len() < 10 {
                match listener.accept() {
                    Ok((conn, _)) => {
                        held.push(conn);
                        taken.store(held.len(), std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let config = camera_config(&format!(
        "  - name: synth\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: 25\n  - name: net\n    source: http-mjpeg\n    url: http://127.0.0.1:{port}/cam.mjpg\n    fps: 25\n"
    ));
    let mut h = Hindsight::start(&config);
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    // Once it asks again (the start-up's request timed out), and is kept waiting.
    h.wait_until(
        "the network camera is asked again",
        Duration::from_secs(60),
        |_| taken.load(std::sync::atomic::Ordering::SeqCst) >= 2,
    );
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    h.signal(libc::SIGTERM);
    let status = h.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(6),
        "the exit waited {took:?} for a camera that does not answer:\n{}",
        h.log_text()
    );
    // The recording of the camera that works is finished.
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(check_file(&files[0]).len() >= 25);
    mkvmerge_clean(&files[0]);
    drop(silent);
}
