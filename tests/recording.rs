//! End to end: the real binary with the synthetic camera, driven through the local API,
//! its files judged by ffprobe, ffmpeg, mkvmerge, mkvinfo and two Matroska parsers.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const W: usize = 400;
const H: usize = 400;
/// One frame period at 100 fps.
const PERIOD: f64 = 0.01;

/// The acceptance test of the core recorder: a 3 s ring, start once it is full, stop 2 s
/// later; the file must hold every frame from (start − 3 s) to stop, exactly once, with
/// the timestamps the sidecar gives, and be a clean, seekable Matroska file.
#[test]
fn a_recording_holds_the_ring_then_live_frames_with_exact_times() {
    let _g = serial();
    for t in ["ffprobe", "ffmpeg", "mkvmerge", "mkvinfo", "python3"] {
        require_tool(t);
    }
    let mut h = Hindsight::start(&synthetic_config(400, 400, 100.0, 3.0));
    // Its rate is shown from its first frames (a third of a second of them), not as 0 fps
    // until a whole second is measured: "0.0/100 fps" looks like a camera that is broken.
    let mut first = Value::Null;
    h.wait_until("30 frames are captured", Duration::from_secs(30), |h| {
        first = h.status()["cameras"][0].clone();
        first["frames_captured"].as_u64().unwrap_or(0) >= 30
    });
    assert!(first["fps"].as_f64().unwrap() > 50.0, "{first}");
    h.wait_buffered(2.95);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(h.status()["state"], "buffering");

    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["outcome"], "done");
    assert_eq!(r["state"], "recording");
    let opened = r["files"][0].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let s = h.status();
    assert_eq!(s["state"], "recording");
    assert_eq!(s["current_files"][0], opened.as_str());
    let (code, r) = h.post("stop", json!({}));
    assert_eq!((code, r["outcome"].as_str()), (200, Some("done")), "{r}");
    h.wait_idle_files();
    assert_eq!(
        h.status()["state"],
        "buffering",
        "buffering continues after stop"
    );

    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "exactly one recording: {files:?}");
    let mkv = &files[0];
    assert_eq!(mkv.display().to_string(), opened);
    let name = mkv.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("rec_") && name.ends_with("_cam0.mkv"),
        "{name}"
    );

    let rows = read_sidecar(mkv);
    let tags = tags(mkv);
    let trigger: f64 = tags["TRIGGER_LSL_TIME"].parse().unwrap();
    let events = std::fs::read_to_string(events_of(mkv)).unwrap();
    let stop_row = events
        .lines()
        .find(|l| l.contains(",stop,"))
        .expect("stop event");
    let stop: f64 = stop_row.split(',').next().unwrap().parse().unwrap();

    // Every frame once, consecutive, from (trigger − 3 s) to the stop.
    let numbers: Vec<u64> = rows.iter().map(|r| r.frame_number).collect();
    let skipped = assert_nothing_lost(&rows, &h.status()["cameras"][0]);
    let first = &rows[0];
    let last = rows.last().unwrap();
    assert!(
        first.lsl_time >= trigger - 3.0 && first.lsl_time < trigger - 3.0 + 2.0 * PERIOD,
        "first frame {} vs trigger {trigger}",
        first.lsl_time
    );
    assert!(
        last.lsl_time <= stop && last.lsl_time > stop - 3.0 * PERIOD,
        "last frame {} vs stop {stop}",
        last.lsl_time
    );
    let pre = rows.iter().filter(|r| r.pre_trigger).count();
    let pre_span = rows[pre - 1].frame_number - first.frame_number + 1;
    assert!(
        (299..=301).contains(&pre_span),
        "{pre} pre-trigger frames (numbers spanning {pre_span}) for a 3 s ring at 100 fps"
    );
    assert!(rows
        .iter()
        .take(pre)
        .all(|r| r.pre_trigger && r.lsl_time < trigger));
    assert!(rows
        .iter()
        .skip(pre)
        .all(|r| !r.pre_trigger && r.lsl_time >= trigger));

    // ffmpeg decodes every frame, and the numbers drawn in them are the sidecar's.
    assert_eq!(ffprobe_frame_count(mkv), rows.len() as u64);
    let decoded = decoded_frame_numbers(mkv, W, H);
    let decoded: Vec<u64> = decoded
        .iter()
        .map(|n| n.expect("every frame's number is readable"))
        .collect();
    assert_eq!(decoded, numbers);

    // Block timestamps: the sidecar's pts, and the capture times relative to the first
    // frame (whose LSL time the Tags carry exactly) within the 100 µs unit.
    assert_eq!(tags["LSL_FIRST_FRAME_TIME"], first.lsl_text);
    let pts = ffprobe_pts(mkv);
    assert_eq!(pts.len(), rows.len());
    for (p, r) in pts.iter().zip(&rows) {
        assert!(
            (p - r.pts).abs() < 1e-6,
            "frame {}: ffprobe pts {p} vs sidecar {}",
            r.frame_number,
            r.pts
        );
        let from_lsl = r.lsl_time - first.lsl_time;
        assert!(
            (p - from_lsl).abs() <= 0.00005 + 1e-9,
            "frame {}: pts {p} vs LSL offset {from_lsl}",
            r.frame_number
        );
    }

    // A clean, finished Matroska file: no complaints, Duration, Cues, our Tags.
    let j = mkvmerge_clean(mkv);
    assert_eq!(j["tracks"][0]["properties"]["codec_id"], "V_MJPEG");
    let fmt = ffprobe_format(mkv);
    let duration: f64 = fmt["format"]["duration"].as_str().unwrap().parse().unwrap();
    let span = last.lsl_time - first.lsl_time;
    assert!(
        duration >= span && duration <= span + 2.0 * PERIOD,
        "duration {duration} vs span {span}"
    );
    assert!(
        mkvinfo_cue_points(mkv) >= 5,
        "one cue point per ≤1 s cluster"
    );
    for key in [
        "CAMERA",
        "HOST",
        "SOURCE_ID",
        "TRIGGER_SOURCE",
        "PRE_TRIGGER_SECONDS",
        "ENCODER",
    ] {
        assert!(tags.contains_key(key), "tag {key} missing: {tags:?}");
    }
    assert_eq!(tags["TRIGGER_SOURCE"], "api");
    assert_eq!(tags["PRE_TRIGGER_SECONDS"], "3.000");

    // Two independent parsers agree.
    let m = matroska::open(mkv).expect("matroska crate opens the file");
    assert!(m.info.duration.is_some());
    assert_eq!(m.tracks[0].codec_id, "V_MJPEG");
    let mut demux =
        matroska_demuxer::MatroskaFile::open(std::fs::File::open(mkv).unwrap()).unwrap();
    let mut frame = matroska_demuxer::Frame::default();
    let mut sizes = Vec::new();
    while demux.next_frame(&mut frame).unwrap() {
        sizes.push(frame.data.len() as u64);
    }
    assert_eq!(sizes, rows.iter().map(|r| r.bytes).collect::<Vec<_>>());

    // The checker users run on their own recordings agrees, and catches a damaged sidecar.
    let (code, text) = check_recording(mkv);
    assert!(code == Some(0) && text.starts_with("OK"), "{text}");
    let copy = tempfile::tempdir().unwrap();
    let mkv2 = copy.path().join(mkv.file_name().unwrap());
    std::fs::copy(mkv, &mkv2).unwrap();
    let csv = std::fs::read_to_string(sidecar_of(mkv)).unwrap();
    let damaged: Vec<&str> = csv
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 50)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(sidecar_of(&mkv2), damaged.join("\n") + "\n").unwrap();
    let (code, text) = check_recording(&mkv2);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL") && text.contains("sidecar lists"),
        "{text}"
    );

    let s = h.status();
    assert_nothing_lost(&rows, &s["cameras"][0]);
    assert_eq!(s["last_files"][0]["frames"], rows.len() as u64);
    assert_eq!(s["last_files"][0]["missing_frames"], skipped);
    assert!(h.terminate().success());
}

#[test]
fn start_n_stops_by_itself_and_clip_keeps_buffering() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(400, 400, 100.0, 2.0));
    h.wait_buffered(1.9);

    // start 2: stops by itself 2 s after the trigger.
    let (code, r) = h.post("start", json!({"seconds": 2}));
    assert_eq!(code, 200, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("stops after 2"),
        "{r}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(h.status()["state"], "recording");
    h.wait_until(
        "the timer stops the recording",
        Duration::from_secs(5),
        |h| h.status()["state"] == "buffering",
    );
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 1);
    let rows = read_sidecar(&files[0]);
    let trigger: f64 = tags(&files[0])["TRIGGER_LSL_TIME"].parse().unwrap();
    let live = rows.last().unwrap().lsl_time - trigger;
    assert!(
        (2.0 - PERIOD - 1e-6..=2.0).contains(&live),
        "live part {live} s"
    );
    assert_nothing_lost(&rows, &h.status()["cameras"][0]);

    // clip 1: about one second from the buffer, written while buffering goes on.
    let captured_before = h.status()["cameras"][0]["frames_captured"]
        .as_u64()
        .unwrap();
    let (code, r) = h.post("clip", json!({"seconds": 1}));
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["state"], "buffering");
    // The reply names the clip's recording (the second), not a number the user might
    // take for the seconds asked.
    assert_eq!(r["message"], "recording 2: a clip of the last 1.0 s", "{r}");
    h.wait_idle_files();
    assert_eq!(h.status()["state"], "buffering");
    // Capture goes on (a clip can be written within one frame period, so wait for one).
    h.wait_until(
        "frames are captured after the clip",
        Duration::from_secs(2),
        |h| {
            h.status()["cameras"][0]["frames_captured"]
                .as_u64()
                .unwrap()
                > captured_before
        },
    );
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    let clip = files
        .iter()
        .find(|f| tags(f)["RECORDING_KIND"] == "clip")
        .expect("clip file");
    let rows = read_sidecar(clip);
    let skipped = assert_nothing_lost(&rows, &h.status()["cameras"][0]);
    assert!(
        (99..=101).contains(&(rows.len() as u64 + skipped)),
        "{} frames ({skipped} never delivered) in a 1 s clip at 100 fps",
        rows.len()
    );
    assert!(rows.iter().all(|r| r.pre_trigger));
    assert_eq!(ffprobe_frame_count(clip), rows.len() as u64);
    mkvmerge_clean(clip);

    // And the recorder still records afterwards.
    let (code, _) = h.post("start", json!({"seconds": 0.5}));
    assert_eq!(code, 200);
    h.wait_until("the second recording ends", Duration::from_secs(5), |h| {
        h.status()["state"] == "buffering"
            && h.status()["current_files"].as_array().unwrap().is_empty()
    });
    assert_eq!(h.mkv_files().len(), 3);
    assert!(h.terminate().success());
}

/// A rig without the pre-trigger buffer (`buffer.enabled: false`): each start, the
/// second as the first, records from its trigger with nothing before it, and a clip,
/// which can never be made there, is refused (`ctl` exits 1, saying which setting), not
/// answered as if done.
#[test]
fn without_the_buffer_starts_record_from_their_trigger_and_a_clip_is_refused() {
    let _g = serial();
    let mut h = Hindsight::start(
        "buffer:\n  enabled: false\ncameras:\n  - name: cam0\n    source: synthetic\n    \
         resolution: {width: 320, height: 240}\n    fps: 50\n",
    );
    h.wait_until("frames are captured", Duration::from_secs(10), |h| {
        h.status()["cameras"][0]["frames_captured"]
            .as_u64()
            .unwrap_or(0)
            > 25
    });
    assert_eq!(h.status()["state"], "idle");
    assert_eq!(h.status()["cameras"][0]["buffered_seconds"], 0.0);
    let out = h.ctl(&["clip", "5"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("buffer.enabled: false"), "{said}");
    assert!(h.mkv_files().is_empty());
    for take in 1..=2 {
        let (code, r) = h.post("start", json!({"seconds": 1}));
        assert_eq!(code, 200, "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("(0.0 s before trigger)"),
            "{r}"
        );
        h.wait_until("the timer stops it", Duration::from_secs(5), |h| {
            h.status()["state"] == "idle"
                && h.status()["current_files"].as_array().unwrap().is_empty()
        });
        h.wait_idle_files();
        let files = h.mkv_files();
        assert_eq!(files.len(), take, "{files:?}");
        let mkv = &files[take - 1];
        let rows = read_sidecar(mkv);
        let trigger: f64 = tags(mkv)["TRIGGER_LSL_TIME"].parse().unwrap();
        assert!(rows.iter().all(|r| !r.pre_trigger), "take {take}");
        let first = rows[0].lsl_time - trigger;
        assert!(
            (0.0..0.04).contains(&first),
            "take {take}: first frame {first} s after the trigger"
        );
        assert!(
            (48..=51).contains(&rows.len()),
            "take {take}: {} frames in 1 s",
            rows.len()
        );
        assert_nothing_lost(&rows, &h.status()["cameras"][0]);
        assert_eq!(ffprobe_frame_count(mkv), rows.len() as u64, "take {take}");
    }
    assert!(h.terminate().success());
}

#[test]
fn marks_are_recorded_in_the_events_and_as_chapters() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(320, 240, 50.0, 1.0));
    h.wait_buffered(0.9);
    h.post("start", json!({}));
    std::thread::sleep(Duration::from_millis(400));
    let (code, r) = h.post("mark", json!({"text": "trial 1"}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_millis(300));
    let out = h.ctl(&["mark", "reward,", "large"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    h.post("stop", json!({}));
    h.wait_idle_files();
    let mkv = &h.mkv_files()[0];
    let events = std::fs::read_to_string(events_of(mkv)).unwrap();
    assert!(
        events.contains(",mark,api: mark trial 1,trial 1\n"),
        "{events}"
    );
    assert!(events.contains("\"reward, large\""), "{events}");
    let fmt = ffprobe_format(mkv);
    let chapters: Vec<&str> = fmt["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tags"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(chapters, ["trial 1", "reward, large"]);
    // The chapter sits where the mark was given: about 1.4 s into the file (1 s buffer).
    let at: f64 = fmt["chapters"][0]["start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1.2..1.8).contains(&at), "chapter at {at}");
    // A mark while not recording is accepted (it goes to the event stream only).
    let (code, r) = h.post("mark", json!({"text": "between trials"}));
    assert_eq!(code, 200, "{r}");
    assert!(h.terminate().success());
}

/// The chapters of a file: (start time in s, title), from ffprobe.
fn chapters(mkv: &std::path::Path) -> Vec<(f64, String)> {
    ffprobe_format(mkv)["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["start_time"].as_str().unwrap().parse().unwrap(),
                c["tags"]["title"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Marks survive a crash: killed during its second recording, the process leaves a file
/// whose marks `hindsight repair` restores as chapters, at the times they were given. A
/// mark's row cut part way (a disk filling in that write, a power cut) is removed by the
/// repair, and said: it made CSV readers fail on the file, and a chapter of the cut text.
#[test]
fn marks_survive_kill_9_and_repair_restores_them_as_chapters() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(320, 240, 50.0, 1.0));
    h.wait_buffered(0.9);
    h.post("start", json!({}));
    h.post("mark", json!({"text": "first recording"}));
    std::thread::sleep(Duration::from_millis(300));
    h.post("stop", json!({}));
    h.wait_idle_files();
    let first = h.mkv_files()[0].clone();
    assert_eq!(chapters(&first).len(), 1);

    h.post("start", json!({}));
    std::thread::sleep(Duration::from_millis(400));
    h.post("mark", json!({"text": "trial 1"}));
    std::thread::sleep(Duration::from_millis(500));
    h.post("mark", json!({"text": "reward, \"large\""}));
    // Past the next fsync, so that the events file is on disk as it would be after a
    // power cut too.
    std::thread::sleep(Duration::from_millis(1200));
    let mkv = std::path::PathBuf::from(h.status()["current_files"][0].as_str().unwrap());
    h.kill9();
    assert_ne!(mkv, first);
    assert!(
        chapters(&mkv).is_empty(),
        "a killed file has no chapters yet"
    );
    // And a mark whose row was cut in its quoted text (a disk that filled in that write,
    // a power cut on a FAT card): repair removes it and says so.
    let events = events_of(&mkv);
    let whole = std::fs::read_to_string(&events).unwrap();
    let cut = "9.5,1700000009.5,mark,api: mark,\"cut off\nin the";
    std::fs::write(&events, format!("{whole}{cut}")).unwrap();
    // Python's csv module, strict as pandas is, refuses such a file ("unexpected end of
    // data"), and takes it back once repaired.
    let strict_csv = || {
        std::process::Command::new("python3")
            .args([
                "-c",
                "import csv,sys; list(csv.reader(open(sys.argv[1], newline=''), strict=True))",
            ])
            .arg(&events)
            .output()
            .unwrap()
    };
    let out = strict_csv();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("end of data"),
        "{out:?}"
    );
    let said = repair_ok(&mkv);
    assert!(
        said.contains("events sidecar's incomplete last row removed"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&events).unwrap(), whole);
    assert!(strict_csv().status.success());
    let got = chapters(&mkv);
    let titles: Vec<&str> = got.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(titles, ["trial 1", "reward, \"large\""]);
    // Where the marks were given: their LSL times from the events file, against the
    // first frame's.
    let rows = read_sidecar(&mkv);
    let events = std::fs::read_to_string(events_of(&mkv)).unwrap();
    let marks: Vec<f64> = events
        .lines()
        .filter(|l| l.contains(",mark,"))
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(marks.len(), 2);
    for (c, m) in got.iter().zip(&marks) {
        let want = m - rows[0].lsl_time;
        assert!(
            (c.0 - want).abs() < 0.001,
            "chapter at {} for a mark at {want}",
            c.0
        );
    }
    mkvmerge_clean(&mkv);
}

/// Marks of any text a person or a script may send (quotes, commas, line breaks, other
/// scripts) make an events file that Python's csv module reads back exactly; a mark too
/// long to be an annotation is refused clearly, and so is a body of a megabyte.
#[test]
fn marks_make_events_files_that_csv_readers_take_and_huge_ones_are_refused() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(160, 120, 30.0, 1.0));
    h.wait_buffered(0.9);
    h.post("start", json!({}));
    let texts = [
        "trial 3, \"reward\"",
        "line one\nline two",
        "Versuch ä ö ü — 実験",
        &"x".repeat(1000),
    ];
    for t in texts {
        let (code, r) = h.post("mark", json!({ "text": t }));
        assert_eq!(code, 200, "{r}");
    }
    let (code, r) = h.post("mark", json!({"text": "y".repeat(1001)}));
    assert_eq!(code, 400, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("at most 1000 characters"),
        "{r}"
    );
    // A NUL would cut a chapter's title short and CSV readers refuse it: refused, saying
    // where, and the recording goes on.
    let (code, r) = h.post("mark", json!({"text": "trial\u{0} 4"}));
    assert_eq!(code, 400, "{r}");
    let why = r["message"].as_str().unwrap();
    assert!(why.contains("U+0000 at character 6"), "{why}");
    assert_eq!(h.status()["state"], "recording");
    let huge = reqwest::blocking::Client::new()
        .post(format!("http://{}/api/mark", h.api))
        .json(&json!({"text": "z".repeat(1 << 20)}))
        .send()
        .unwrap();
    assert_eq!(huge.status().as_u16(), 413);
    h.post("stop", json!({}));
    h.wait_idle_files();
    let mkv = h.mkv_files().pop().unwrap();
    let script = "import csv, json, sys\n\
                  rows = list(csv.DictReader(open(sys.argv[1], newline='', encoding='utf-8')))\n\
                  print(json.dumps([r['detail'] for r in rows if r['event'] == 'mark']))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(events_of(&mkv))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read, texts);
    // The chapters carry the same texts; the log says each mark on one line.
    let titles: Vec<(f64, String)> = chapters(&mkv);
    let titles: Vec<&str> = titles.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(titles, texts);
    let log = h.log_text();
    assert!(log.contains("mark: line one\\nline two"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("line two")), "{log}");
    assert!(h.terminate().success());
}

#[test]
fn commands_that_make_no_sense_are_answered_and_change_nothing() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(160, 120, 30.0, 1.0));
    h.wait_buffered(0.5);
    let (code, r) = h.post("stop", json!({}));
    assert_eq!((code, r["outcome"].as_str()), (200, Some("no-op")), "{r}");
    // Half a second into a 1 s buffer: the reply says how much it really held, where it
    // says how far back the recording begins.
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200);
    let said = r["message"].as_str().unwrap();
    let back: f64 = said
        .strip_prefix("recording 1 started (")
        .and_then(|m| {
            m.split_once(
                " s before trigger: the buffer held only that much of the 1.0 s asked for)",
            )
        })
        .and_then(|(s, _)| s.parse().ok())
        .unwrap_or_else(|| panic!("{r}"));
    assert!((0.4..1.0).contains(&back), "{r}");
    // `start 5` does not end the open-ended recording, and the answer says so.
    let (code, r) = h.post("start", json!({"seconds": 5}));
    assert_eq!((code, r["outcome"].as_str()), (200, Some("no-op")), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .ends_with("it goes on until a stop, not for the 5 s asked)"),
        "{r}"
    );
    // A start with an N that can never be is refused as such; the recording goes on.
    let (code, r) = h.post("start", json!({"seconds": -5}));
    assert_eq!(
        (code, r["outcome"].as_str()),
        (400, Some("rejected")),
        "{r}"
    );
    assert_eq!(h.status()["state"], "recording");
    let (code, r) = h.post("clip", json!({"seconds": -1}));
    assert_eq!(
        (code, r["outcome"].as_str()),
        (400, Some("rejected")),
        "{r}"
    );
    let (code, r) = h.post("clip", json!({}));
    assert_eq!(code, 400, "{r}");
    let (code, r) = h.post("mark", json!({"text": "   "}));
    assert_eq!(code, 400, "{r}");
    let (code, _) = h.post("start", json!({"seconds": "soon"}));
    assert_eq!(code, 400);
    // The recording started above is untouched by all of that.
    let s = h.status();
    assert_eq!(s["state"], "recording");
    assert_eq!(s["recording"]["id"], 1);
    assert_eq!(s["current_files"].as_array().unwrap().len(), 1);
    // Requests the API cannot parse never reach the recorder; the last one that did was
    // the blank mark.
    assert_eq!(
        s["last_command"]["command"].as_str().unwrap().trim(),
        "mark",
        "{s}"
    );
    assert_eq!(s["last_command"]["outcome"], "rejected", "{s}");

    // The same through `hindsight ctl`: the state, each camera, the microphone, the disk.
    let out = h.ctl(&["status"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("state: recording"), "{said}");
    assert!(said.contains("\ncam0: synthetic "), "{said}");
    assert!(said.contains("\naudio: "), "{said}");
    assert!(
        said.contains(" free of ") && said.contains(&format!("at {}\n", h.root.display())),
        "{said}"
    );
    let out = h.ctl(&["stop"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("done (buffering)"));
    let out = h.ctl(&["clip", "0"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected command fails the ctl call"
    );
    // A negative number reaches the recorder, which says why it is refused.
    let out = h.ctl(&["start", "-3"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("seconds must be more than 0"), "{said}");
    // No number at all (JSON cannot carry these) is refused by ctl itself, never sent as
    // a plain start that would record until someone says stop.
    for v in ["inf", "NaN", "1e400", "soon"] {
        let out = h.ctl(&["start", v]);
        assert_eq!(out.status.code(), Some(2), "start {v}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("seconds must be a number"), "start {v}: {err}");
        assert_eq!(h.ctl(&["clip", v]).status.code(), Some(2), "clip {v}");
    }
    // A query the API cannot read is answered in JSON, as every error.
    for query in ["seconds=soon", "seconds=5&seconds=6", "seconds="] {
        let r = reqwest::blocking::Client::new()
            .post(format!("http://{}/api/start?{query}", h.api))
            .timeout(Duration::from_secs(15))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{query}");
        let j: serde_json::Value = r.json().expect("a JSON answer");
        let message = j["message"].as_str().unwrap();
        assert!(
            message.starts_with("the query must be like ?seconds=10"),
            "{j}"
        );
    }
    // So are a path it does not have, a command asked with GET, and a body too large.
    let client = reqwest::blocking::Client::new();
    let url = |path: &str| format!("http://{}/api/{path}", h.api);
    for (request, code, said) in [
        (
            client.post(url("begin")),
            404,
            "no such request: /api/begin",
        ),
        (client.get(url("start")), 405, "sent with POST"),
        (
            client
                .post(url("start"))
                .header("content-type", "application/json")
                .body(format!("{{\"text\": \"{}\"}}", "x".repeat(100_000))),
            413,
            "at most 64 kB",
        ),
    ] {
        let r = request.timeout(Duration::from_secs(15)).send().unwrap();
        assert_eq!(r.status().as_u16(), code, "{said}");
        let j: serde_json::Value = r.json().expect("a JSON answer");
        assert_eq!(j["ok"], false, "{j}");
        assert!(j["message"].as_str().unwrap().contains(said), "{j}");
    }
    // A page that is not there says so, and where the page is.
    let r = client
        .get(format!("http://{}/recordings", h.api))
        .timeout(Duration::from_secs(15))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let said = r.text().unwrap();
    assert!(
        said.contains("no such page: /recordings") && said.contains("page is at /"),
        "{said}"
    );
    let s = h.status();
    assert_eq!(
        s["state"], "buffering",
        "none of that started a recording: {s}"
    );
    assert_eq!(h.mkv_files().len(), 1, "{:?}", h.mkv_files());
    let out = h.ctl(&["status", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["state", "current_files", "cameras"] {
        assert!(j.get(key).is_some(), "status lacks {key}");
    }
    for key in [
        "fps",
        "frames_captured",
        "frames_written",
        "frames_dropped",
        "buffered_seconds",
    ] {
        assert!(
            j["cameras"][0].get(key).is_some(),
            "camera status lacks {key}"
        );
    }
    assert!(h.terminate().success());
}

#[test]
fn ctl_says_clearly_when_nothing_is_running() {
    let port = free_port();
    let out = std::process::Command::new(BIN)
        .args(["ctl", "--api", &format!("127.0.0.1:{port}"), "start"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach hindsight") && err.contains("running"),
        "{err}"
    );
}

/// Records 1.5 s after the buffer is full, then `stop` ends the process; the exit must be
/// clean and the one file finished (sidecar, mkvmerge, cues, ffprobe's frames and
/// duration). The process and the file, for what each test checks besides.
fn a_recording_ended_by(
    stop: impl FnOnce(&mut Hindsight) -> std::process::ExitStatus,
) -> (Hindsight, std::path::PathBuf) {
    let mut h = Hindsight::start(&synthetic_config(400, 400, 100.0, 1.0));
    h.wait_buffered(0.9);
    h.post("start", json!({}));
    std::thread::sleep(Duration::from_millis(1500));
    let st = stop(&mut h);
    assert!(st.success(), "exit {st}:\n{}", h.log_text());
    let files = h.mkv_files();
    assert_eq!(files.len(), 1);
    let rows = read_sidecar(&files[0]);
    assert!(rows.len() >= 240, "{} frames", rows.len());
    mkvmerge_clean(&files[0]);
    assert!(mkvinfo_cue_points(&files[0]) >= 2);
    assert_eq!(ffprobe_frame_count(&files[0]), rows.len() as u64);
    assert!(ffprobe_format(&files[0])["format"]["duration"].is_string());
    let file = files[0].clone();
    (h, file)
}

#[test]
fn sigterm_finishes_the_open_recording() {
    let _g = serial();
    let (_h, mkv) = a_recording_ended_by(|h| h.terminate());
    let events = std::fs::read_to_string(events_of(&mkv)).unwrap();
    assert!(events.contains("shutdown"), "{events}");
}

/// The terminal `hindsight run` runs in closes (an SSH session drops): SIGHUP, from the
/// kernel and again from the shell. The recording is finished as SIGTERM finishes it, and
/// the log says why. SIGHUP's default action killed it at once: an unfinished file to
/// repair, and nothing in the log.
#[test]
fn a_closed_terminal_finishes_the_open_recording() {
    let _g = serial();
    let (h, mkv) = a_recording_ended_by(|h| {
        h.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(20));
        h.signal(libc::SIGHUP);
        h.wait_exit(Duration::from_secs(30))
    });
    assert!(h.log_text().contains("SIGHUP: the terminal closed"));
    let out = repair(&mkv);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already complete"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// kill -9 while recording: the file plays up to its last cluster; the next start reports
/// it; `hindsight repair` makes it a finished, seekable file with the right duration.
#[test]
fn a_killed_recording_plays_and_repair_finishes_it() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(400, 400, 100.0, 1.0));
    h.wait_buffered(0.9);
    h.post("start", json!({}));
    std::thread::sleep(Duration::from_millis(3200));
    let cam = h.status()["cameras"][0].clone();
    let last_captured = cam["last_frame_number"].as_u64().unwrap();
    h.kill9();
    let mkv = h.mkv_files().pop().expect("a file");

    // Playable as it stands: ffmpeg decodes it, and it holds all but the last moments.
    let decoded: Vec<u64> = decoded_frame_numbers(&mkv, W, H)
        .into_iter()
        .map(|n| n.unwrap())
        .collect();
    assert_numbers_lost_nothing(&decoded, &cam);
    let lost = last_captured.saturating_sub(*decoded.last().unwrap());
    assert!(lost <= 100, "{lost} frames (more than 1 s) lost by kill -9");

    // The next start finds it unfinished and says how to finish it.
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().unwrap());
    let root = h.root.clone();
    let mut h2 = Hindsight::start_in(dir, root, &synthetic_config(400, 400, 100.0, 1.0));
    let s = h2.status();
    let unfinished: Vec<&str> = s["unfinished_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The MKV, and the recording's WAV (of the synthetic tone) if its header lags its data.
    let video: Vec<&str> = unfinished
        .iter()
        .copied()
        .filter(|f| f.ends_with(".mkv"))
        .collect();
    assert_eq!(video, [mkv.to_str().unwrap()]);
    for f in unfinished.iter().filter(|f| !f.ends_with(".mkv")) {
        assert!(
            f.contains("/audio/") && f.ends_with(".wav"),
            "{unfinished:?}"
        );
    }
    assert!(h2.log_text().contains("hindsight repair"));
    assert!(h2.terminate().success());

    // `hindsight repair <day>/video/*`: the sidecars are named too, and repaired with
    // their video; given alone, one is refused with the command that repairs it.
    let alone = repair(&sidecar_of(&mkv));
    assert!(!alone.status.success());
    let said = String::from_utf8_lossy(&alone.stderr);
    assert!(
        said.contains(&format!(
            "is a sidecar: it is repaired with its video, `hindsight repair {}`",
            mkv.display()
        )),
        "{said}"
    );
    let mut folder: Vec<_> = std::fs::read_dir(mkv.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    folder.sort();
    assert_eq!(folder.len(), 3, "{folder:?}");
    let out = Command::new(BIN)
        .arg("repair")
        .args(&folder)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains(&format!("{}: repaired", mkv.display())),
        "{printed}"
    );
    for sidecar in [sidecar_of(&mkv), events_of(&mkv)] {
        assert!(
            printed.contains(&format!(
                "{}: a sidecar of {}, repaired with it",
                sidecar.display(),
                mkv.display()
            )),
            "{printed}"
        );
    }
    mkvmerge_clean(&mkv);
    assert!(mkvinfo_cue_points(&mkv) >= 3);
    let frames = ffprobe_frame_count(&mkv);
    assert!(
        frames as usize >= decoded.len(),
        "repair kept {frames} of {} frames",
        decoded.len()
    );
    let pts = ffprobe_pts(&mkv);
    let duration: f64 = ffprobe_format(&mkv)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last_pts = *pts.last().unwrap();
    assert!(
        duration >= last_pts && duration <= last_pts + 2.0 * PERIOD,
        "duration {duration}, last pts {last_pts}"
    );
    // The sidecar has a row for each frame of the repaired file, and none more.
    let rows = read_sidecar(&mkv);
    assert_eq!(rows.len() as u64, frames);
    let again = repair(&mkv);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already complete"));
}

/// A crash between a batch's sidecar rows and its frames: strace kills the recorder
/// mid-recording as it is about to write the frames sidecar, then (a second process) the
/// video. After `hindsight repair` every frame in the file has its row (the same frame
/// number as in its pixels) and the sidecar no row of a frame the file lacks, and the
/// checker users run says so. Rows were written after their frames: a kill at the rows
/// left the batch's frames (5 at 100 fps) without their times, 125 frames and 120 rows.
#[test]
fn a_crash_between_a_batchs_rows_and_its_frames_leaves_every_frame_its_row() {
    let _g = serial();
    require_tool("strace");
    let config = format!(
        "audio:\n  enabled: false\n{}",
        synthetic_config(160, 120, 100.0, 1.0)
    );
    for (syscall, file) in [("write", "frames.csv"), ("writev", "mkv")] {
        let mut h = Hindsight::start(&config);
        h.wait_buffered(0.9);
        let (code, r) = h.post("start", json!({}));
        assert_eq!(code, 200, "{r}");
        let mkv = std::path::PathBuf::from(r["files"][0].as_str().unwrap());
        // The third write of that file from now on is never made: the recorder dies
        // entering it (strace attached to all its threads, counting that file's writes).
        let mut strace = strace_attached(
            &h,
            &[
                "-P".into(),
                mkv.with_extension(file).into(),
                "-e".into(),
                format!("trace={syscall}").into(),
                "-e".into(),
                format!("inject={syscall}:signal=KILL:when=3").into(),
            ],
        );
        let st = h.wait_exit(Duration::from_secs(30));
        strace.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL),
            "{st}"
        );
        let said = repair_ok(&mkv);
        let decoded: Vec<u64> = decoded_frame_numbers(&mkv, 160, 120)
            .into_iter()
            .map(|n| n.expect("readable frame number"))
            .collect();
        let rows: Vec<u64> = read_sidecar(&mkv).iter().map(|r| r.frame_number).collect();
        // The buffer (0.9 s at least, at 100 fps) and what followed before the kill.
        assert!(decoded.len() >= 85, "{said}");
        assert_eq!(rows, decoded, "killed at a {syscall} of its {file}: {said}");
        // Killed before the frames whose rows were written: repair says what it removed.
        if file == "mkv" {
            assert!(said.contains("the file does not hold removed"), "{said}");
        }
        let (code, text) = check_recording(&mkv);
        let ok = format!("OK {}", mkv.display());
        assert!(code == Some(0) && text.contains(&ok), "{text}");
    }
}

/// A crash while a recording waits for its camera's first frame leaves what the start
/// claimed: an empty MKV and a frame sidecar without a row. The next start-up removes them
/// (as a clean stop does), says so, keeps the events that say what happened, and records on.
#[test]
fn a_crash_while_the_camera_is_lost_leaves_no_empty_video_after_the_restart() {
    let _g = serial();
    let lost = "buffer:\n  duration: 1\naudio:\n  enabled: false\ncameras:\n  - name: cam0\n    \
                source: command\n    command: \"sh -c 'exit 1'\"\n    \
                resolution: {width: 64, height: 64}\n    fps: 10\n";
    let mut h = Hindsight::start(lost);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let said = r["message"].as_str().unwrap();
    assert!(said.contains("no file yet: camera cam0 is lost"), "{r}");
    let number = |said: &str| -> u64 {
        let n = said
            .strip_prefix("recording ")
            .and_then(|s| s.split(' ').next());
        n.and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{said}"))
    };
    let first = number(said);
    h.wait_until(
        "the start is in the events sidecar",
        Duration::from_secs(20),
        |h| {
            h.mkv_files().first().is_some_and(|m| {
                std::fs::read_to_string(events_of(m)).is_ok_and(|t| t.contains(",start,"))
            })
        },
    );
    let mkv = h.mkv_files().pop().unwrap();
    h.kill9();
    let (rows, events) = (sidecar_of(&mkv), events_of(&mkv));
    assert_eq!(std::fs::metadata(&mkv).unwrap().len(), 0);
    let said = repair_ok(&mkv);
    assert!(
        said.contains("empty: its recording wrote nothing into it") && said.contains("removes it"),
        "{said}"
    );

    // systemd restarts a crashed recorder 5 s later; the camera is back.
    std::thread::sleep(Duration::from_millis(5500));
    let mut h = Hindsight::start_in(
        tempfile::tempdir().unwrap(),
        h.root.clone(),
        &synthetic_config(64, 64, 10.0, 1.0),
    );
    let log = h.log_text();
    assert!(
        log.contains(&format!(
            "removed 2 files that a crash left before their recording's first frame: {}, {}",
            rows.display(),
            mkv.display()
        )),
        "{log}"
    );
    assert!(!mkv.exists() && !rows.exists());
    assert!(std::fs::read_to_string(&events)
        .unwrap()
        .contains(",start,"));
    assert_eq!(h.status()["unfinished_files"], json!([]), "{log}");
    let rec = &h.recordings()[0];
    assert_eq!(
        (&rec["frames"], &rec["repaired"], &rec["unfinished"]),
        (&json!(0), &json!(false), &json!(false)),
        "{rec}"
    );
    assert_eq!(rec["files"].as_array().unwrap().len(), 1, "{rec}");
    // The list names the camera, with no frames and lost (for how long is not known: a
    // crash ended it).
    let cam = &rec["cameras"][0];
    assert_eq!(
        (&cam["camera"], &cam["frames"]),
        (&json!("cam0"), &json!(0)),
        "{rec}"
    );
    assert_eq!(cam["outages"][0]["until_lsl_time"], Value::Null, "{rec}");
    // `hindsight repair <day>/video/*` over what is left succeeds: the events file alone
    // has no video to repair.
    let said = repair_ok(&events);
    assert!(
        said.contains("made no video") && said.contains("nothing to repair"),
        "{said}"
    );

    // The next recording has a new number and its frames.
    h.wait_buffered(0.5);
    let r = h.record_for(1.0);
    // (After a crash the numbers skip what was reserved; they never repeat.)
    assert!(number(r["message"].as_str().unwrap()) > first, "{r}");
    let next = h.mkv_files();
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(ffprobe_frame_count(&next[0]) >= 10);
    mkvmerge_clean(&next[0]);
}

/// A crash as a take's first batch is about to reach the disk: strace kills the recorder
/// as it enters the take's first write of its video, then (a second process) of its
/// events sidecar. What describes a batch is written before its frames (frames sidecar,
/// events, video), so after the restart a take keeps its start wherever it keeps
/// anything. Killed at the video, the take is listed with no frame and its trigger, the
/// empty video and the frame sidecar (one row, of no frame) removed and said so; killed
/// at the events, nothing of it is left. Rows after frames left a sidecar listing a frame
/// no file held, and events after the video a take whose start and trigger were lost.
#[test]
fn a_crash_at_a_takes_first_write_leaves_no_row_of_no_frame_and_no_take_without_its_start() {
    let _g = serial();
    require_tool("strace");
    let config = format!(
        "audio:\n  enabled: false\n{}",
        synthetic_config(160, 120, 30.0, 1.0)
    );
    for (syscall, file) in [("writev", "mkv"), ("write", "events.csv")] {
        let mut h = Hindsight::start(&config);
        h.wait_buffered(0.9);
        // The take's names are the start's local time: strace watches the names of the
        // next seconds', and kills the recorder as it enters the first write to one.
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let now = chrono::Local::now();
        for s in -1..=5 {
            let t = now + chrono::Duration::seconds(s);
            let name = format!("rec_{}_cam0.{file}", t.format("%Y-%m-%d_%H-%M-%S"));
            let day = t.format("%Y_%m_%d").to_string();
            args.extend([
                "-P".into(),
                h.root.join(day).join("video").join(name).into(),
            ]);
        }
        for a in ["-e", &format!("trace={syscall}")] {
            args.push(a.into());
        }
        args.extend([
            "-e".into(),
            format!("inject={syscall}:signal=KILL:when=1").into(),
        ]);
        let mut strace = strace_attached(&h, &args);
        // No answer: the recorder dies first.
        let _ = reqwest::blocking::Client::new()
            .post(format!("http://{}/api/start", h.api))
            .timeout(Duration::from_secs(10))
            .send();
        let st = h.wait_exit(Duration::from_secs(30));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL),
            "{st}"
        );
        strace.wait().unwrap();
        let mkv = h.mkv_files().pop().expect("the take's video");
        let (rows, events) = (sidecar_of(&mkv), events_of(&mkv));
        assert_eq!(
            std::fs::metadata(&mkv).unwrap().len(),
            0,
            "killed at its {file}"
        );
        assert_eq!(read_sidecar(&mkv).len(), 1, "the first frame's row");

        // Restarted on the same root, 5 s on (as systemd restarts it).
        std::thread::sleep(Duration::from_millis(5500));
        let mut h = Hindsight::start_in(tempfile::tempdir().unwrap(), h.root.clone(), &config);
        let log = h.log_text();
        assert!(
            log.contains("files that a crash left before their recording's first frame")
                && log.contains(&rows.display().to_string())
                && log.contains(&mkv.display().to_string()),
            "{log}"
        );
        assert!(!mkv.exists() && !rows.exists());
        let listed = h.recordings();
        if file == "mkv" {
            // Its events sidecar says it started, and when: the take, without frames.
            assert!(
                std::fs::read_to_string(&events).is_ok_and(|t| t.contains(",start,")),
                "the take's start row is kept: {log}"
            );
            assert_eq!(listed.len(), 1, "{listed:?}");
            let rec = &listed[0];
            assert_eq!(
                (&rec["frames"], &rec["trigger"]),
                (&json!(0), &json!("api: start")),
                "{rec}"
            );
        } else {
            // Nothing of it is left (its events sidecar was empty).
            assert!(!events.exists());
            assert_eq!(listed, Vec::<Value>::new(), "{log}");
        }
        h.wait_buffered(0.5);
        h.record_for(1.0);
        let next = h.mkv_files();
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(
            read_sidecar(&next[0]).len() as u64,
            ffprobe_frame_count(&next[0])
        );
        assert!(h.terminate().success());
    }
}

/// A crash as a take stops: strace holds the recorder in the write of the take's last
/// events row (the stop, which says how many frames the file holds and what the camera
/// lost), after it (the row is in the file) and before it (the row is not), and the test
/// kills it there. The stop row is written once the finished video is on the disk, so a
/// take whose events say it stopped has a whole file (Cues, Duration: `mkvinfo`), and one
/// without it is listed as ended by a crash ("repaired"). Before, the stop row came first:
/// killed after it, the file was unfinished and, once repaired, listed as stopped cleanly.
#[test]
fn a_crash_as_a_take_stops_leaves_a_stop_row_only_beside_a_finished_video() {
    let _g = serial();
    require_tool("strace");
    let config = format!(
        "audio:\n  enabled: false\n{}",
        synthetic_config(160, 120, 100.0, 1.0)
    );
    for (hold, row_written) in [("delay_exit", true), ("delay_enter", false)] {
        let mut h = Hindsight::start(&config);
        h.wait_buffered(0.9);
        let (code, r) = h.post("start", json!({}));
        assert_eq!(code, 200, "{r}");
        let mkv = std::path::PathBuf::from(r["files"][0].as_str().unwrap());
        let events = events_of(&mkv);
        let said = |what: &str| {
            std::fs::read_to_string(&events)
                .unwrap_or_default()
                .contains(what)
        };
        h.wait_until("the take's start row", Duration::from_secs(10), |_| {
            said(",start,")
        });
        std::thread::sleep(Duration::from_millis(500));
        // The next write of the events sidecar is the stop's: held 4 s.
        let mut strace = strace_attached(
            &h,
            &[
                "-P".into(),
                events.clone().into(),
                "-e".into(),
                "trace=write".into(),
                "-e".into(),
                format!("inject=write:{hold}=4000000").into(),
            ],
        );
        let api = h.api.clone();
        let stop = std::thread::spawn(move || {
            reqwest::blocking::Client::new()
                .post(format!("http://{api}/api/stop"))
                .timeout(Duration::from_secs(10))
                .send()
                .map(|r| r.status().as_u16())
        });
        // The writer is in that write once its thread waits in it (or the row is there).
        let writer_held = |h: &Hindsight| {
            let pid = h.child.as_ref().unwrap().id();
            std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
                tasks.flatten().any(|t| {
                    let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    comm.starts_with("writer") && stat.contains(") t ")
                })
            })
        };
        // (strace stops it for a moment at every system call: held is held for 300 ms.)
        let mut seen = 0;
        h.wait_until("the stop row's write held", Duration::from_secs(20), |h| {
            seen = if writer_held(h) { seen + 1 } else { 0 };
            seen == 6
        });
        assert_eq!(said(",stop,"), row_written, "held {hold}");
        h.kill9();
        let _ = strace.wait();
        let _ = stop.join();

        // Finished before its stop row was written: mkvinfo finds its Cues, repair has
        // nothing to do.
        assert!(
            mkvinfo_cue_points(&mkv) > 0,
            "held {hold}: the video is not finished"
        );
        let fixed = repair_ok(&mkv);
        assert!(fixed.contains("already complete"), "{fixed}");
        let (code, text) = check_recording(&mkv);
        assert!(code == Some(0), "{text}");
        let decoded = decoded_frame_numbers(&mkv, 160, 120).len() as u64;
        assert_eq!(read_sidecar(&mkv).len() as u64, decoded);

        let mut h = Hindsight::start_in(tempfile::tempdir().unwrap(), h.root.clone(), &config);
        assert_eq!(h.status()["unfinished_files"], json!([]));
        let rec = &h.recordings()[0];
        assert_eq!(rec["frames"], json!(decoded), "{rec}");
        assert_eq!(rec["unfinished"], json!(false), "{rec}");
        // Stopped, it says so and what was lost; cut before its stop row, a crash ended it.
        assert_eq!(rec["repaired"], json!(!row_written), "held {hold}: {rec}");
        let lost = &rec["cameras"][0]["lost_while_recording"];
        assert_eq!(lost.is_null(), !row_written, "{rec}");
        if row_written {
            let (_, row) = event_row(&mkv, "stop");
            assert!(row.contains(&format!(",\"{decoded} frames;")), "{row}");
        }
        assert!(h.terminate().success());
    }
}

/// `hindsight repair` on the files of a recording that is still being made (a glob over
/// today's folder after a crash and a restart, say) leaves them alone and says why. A
/// repair then would fix the file's size where the recording was, and after a crash the
/// next repair would cut off everything recorded since as "an incomplete last frame". The
/// start-up of another rig sharing the root does not list them as unfinished either, and
/// its web page neither calls them unfinished nor deletes them.
#[test]
fn repair_leaves_a_recording_in_progress_alone_and_finishes_it_after_a_crash() {
    let _g = serial();
    let config = format!(
        "{}audio:\n  enabled: true\n  source: synthetic\n",
        synthetic_config(400, 400, 100.0, 1.0)
    );
    let mut h = Hindsight::start(&config);
    h.wait_buffered(0.9);
    h.post("start", json!({}));
    std::thread::sleep(Duration::from_millis(1500));
    let mkv = h.mkv_files().pop().expect("a file");
    let wav = wav_files(&h.root).pop().expect("a WAV");
    // Named one by one, or as the recordings folder.
    for args in [vec![mkv.clone(), wav.clone()], vec![h.root.clone()]] {
        let out = Command::new(BIN)
            .arg("repair")
            .args(&args)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "repair succeeded on a live file: {said}"
        );
        for f in [&mkv, &wav] {
            assert!(
                said.contains(&format!(
                    "{}: being recorded now, by a running hindsight",
                    f.display()
                )),
                "{said}"
            );
        }
    }

    // Another rig on the same root starts while this one records: nothing to repair.
    let other = format!("rig: other-rig\n{}", synthetic_config(64, 64, 10.0, 1.0));
    let mut h2 = Hindsight::start_in(tempfile::tempdir().unwrap(), h.root.clone(), &other);
    assert_eq!(
        h2.status()["unfinished_files"],
        json!([]),
        "{}",
        h2.log_text()
    );
    // Its web page lists the recording as being written, not as unfinished, and does not
    // delete it.
    let rec = &h2.recordings()[0];
    assert_eq!(
        (&rec["open"], &rec["unfinished"]),
        (&json!(true), &json!(false)),
        "{rec}"
    );
    let refused = reqwest::blocking::Client::new()
        .delete(format!(
            "http://{}/api/recordings/{}",
            h2.api,
            rec["id"].as_str().unwrap()
        ))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert!(mkv.exists() && wav.exists());
    assert!(h2.terminate().success());

    std::thread::sleep(Duration::from_millis(2000));
    let cam = h.status()["cameras"][0].clone();
    h.kill9();
    let decoded: Vec<u64> = decoded_frame_numbers(&mkv, W, H)
        .into_iter()
        .map(|n| n.unwrap())
        .collect();
    assert_numbers_lost_nothing(&decoded, &cam);

    // Repaired now (the whole recordings folder, as after a power cut), it keeps all of
    // it: 1 s before the trigger and 3.5 s after.
    let (declared, on_disk) = wav_sizes(&wav);
    let printed = repair_ok(&h.root);
    assert!(
        printed.contains(&format!("{}: repaired: ", mkv.display())),
        "{printed}"
    );
    mkvmerge_clean(&mkv);
    let frames = ffprobe_frame_count(&mkv);
    assert!(
        frames as usize >= decoded.len() && frames >= 400,
        "repair kept {frames} frames of {} decoded after the crash",
        decoded.len()
    );
    let duration: f64 = ffprobe_format(&mkv)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(duration >= 4.0, "duration {duration} s");
    // A kill just after the header was brought up to date leaves nothing to repair.
    let expected = if declared == on_disk {
        "already complete"
    } else {
        "repaired"
    };
    assert!(
        printed.contains(&format!("{}: {expected}", wav.display())),
        "declared {declared}, on disk {on_disk}: {printed}"
    );
    let secs = sox_seconds(&wav);
    assert!(secs >= 3.0, "the WAV lasts {secs} s");
}

/// Two rigs record into one root (a lab's shared disk) and one trigger reaches both at the
/// same moment, as a shared ntfy topic does: each makes its own recording, with its own
/// stem, every time. (They used to pick the same stem in the same second, and one of the
/// two failed with "File exists".)
#[test]
fn two_rigs_on_one_root_started_together_both_record() {
    let _g = serial();
    let config = |rig: &str| {
        format!(
            "rig: {rig}\naudio:\n  enabled: true\n  source: synthetic\n{}",
            synthetic_config(160, 120, 30.0, 1.0)
        )
    };
    let mut a = Hindsight::start(&config("rig-a"));
    let mut b = Hindsight::start_in(
        tempfile::tempdir().unwrap(),
        a.root.clone(),
        &config("rig-b"),
    );
    a.wait_buffered(0.9);
    b.wait_buffered(0.9);
    let mut answered = Vec::new();
    for _ in 0..4 {
        let both = std::thread::scope(|s| {
            let ta = s.spawn(|| a.post("start", json!({"seconds": 0.5})));
            let tb = s.spawn(|| b.post("start", json!({"seconds": 0.5})));
            [ta.join().unwrap(), tb.join().unwrap()]
        });
        for (code, r) in both {
            assert_eq!(code, 200, "{r}");
            answered.push(r["files"][0].as_str().unwrap().to_string());
        }
        for h in [&mut a, &mut b] {
            h.wait_until("the recording ends", Duration::from_secs(20), |h| {
                h.status()["state"] == "buffering"
            });
            h.wait_idle_files();
        }
    }
    let mut stems: Vec<&str> = answered
        .iter()
        .map(|f| f.rsplit_once('_').unwrap().0)
        .collect();
    stems.sort();
    stems.dedup();
    assert_eq!(stems.len(), 8, "{answered:?}");
    // Every one finished and playable, with the WAV of its own rig.
    let mkvs = mkv_files(&a.root);
    assert_eq!(mkvs.len(), 8, "{mkvs:?}");
    for mkv in &mkvs {
        assert!(ffprobe_frame_count(mkv) >= 40, "{}", mkv.display());
        mkvmerge_clean(mkv);
    }
    let wavs = wav_files(&a.root);
    assert_eq!(wavs.len(), 8, "{wavs:?}");
    for wav in &wavs {
        assert!(sox_seconds(wav) >= 1.0, "{}", wav.display());
    }
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// The first SIGTERM finishes files gracefully; a second one, while that is under way,
/// exits at once, and what was written still plays and can be finished by repair.
#[test]
fn a_second_sigterm_exits_at_once() {
    let _g = serial();
    // One frame every 2 s: a graceful stop waits (up to a second) for the frames exposed
    // before it, which leaves time for the second signal to arrive mid-shutdown.
    let mut h = Hindsight::start(&synthetic_config(320, 240, 0.5, 5.0));
    h.wait_until("two frames are buffered", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["frames_captured"]
            .as_u64()
            .unwrap()
            >= 2
    });
    h.post("start", json!({}));
    h.wait_until("the header is written", Duration::from_secs(10), |h| {
        h.mkv_files()
            .first()
            .is_some_and(|f| std::fs::metadata(f).unwrap().len() > 0)
    });
    h.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(150));
    h.signal(libc::SIGTERM);
    let st = h.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(130), "{}", h.log_text());
    assert!(h.log_text().contains("second signal"));
    let mkv = &h.mkv_files()[0];
    let decoded = decoded_frame_numbers(mkv, 320, 240);
    assert!(!decoded.is_empty() && decoded.iter().all(Option::is_some));
    repair_ok(mkv);
    mkvmerge_clean(mkv);
}

/// Several cameras: one command starts and stops them all; each writes its own file, all
/// with the same stem, each complete.
#[test]
fn one_command_records_every_camera_into_files_sharing_a_stem() {
    let _g = serial();
    let config = "buffer:\n  duration: 1\n  max_bytes: 64MiB\ncameras:\n\
        \x20 - {name: top, source: synthetic, resolution: {width: 320, height: 240}, fps: 50}\n\
        \x20 - {name: side, source: synthetic, resolution: {width: 224, height: 96}, fps: 200}\n";
    let mut h = Hindsight::start(config);
    h.wait_until("both buffers fill", Duration::from_secs(20), |h| {
        let s = h.status();
        s["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["buffered_seconds"].as_f64().unwrap() > 0.9)
    });
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["files"].as_array().unwrap().len(), 2, "{r}");
    std::thread::sleep(Duration::from_millis(1500));
    h.post("stop", json!({}));
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    let stems: Vec<String> = files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            name[..name.rfind('_').unwrap()].to_string()
        })
        .collect();
    assert_eq!(stems[0], stems[1], "one stem for the recording");
    let s = h.status();
    for (f, (name, w, h_, fps)) in files
        .iter()
        .zip([("side", 224, 96, 200.0), ("top", 320, 240, 50.0)])
    {
        assert!(f.to_str().unwrap().ends_with(&format!("_{name}.mkv")));
        let rows = read_sidecar(f);
        let cam = s["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let skipped = assert_nothing_lost(&rows, cam);
        let span = rows.last().unwrap().lsl_time - rows[0].lsl_time;
        assert!(span > 2.3 && span < 2.7, "{}: {span} s", f.display());
        assert!(
            ((rows.len() as u64 + skipped) as f64 - span * fps).abs() <= 1.5,
            "{}: {} frames in {span} s at {fps} fps",
            f.display(),
            rows.len()
        );
        let decoded: Vec<u64> = decoded_frame_numbers(f, w, h_)
            .into_iter()
            .map(|n| n.unwrap())
            .collect();
        assert_eq!(
            decoded,
            rows.iter().map(|r| r.frame_number).collect::<Vec<_>>()
        );
        mkvmerge_clean(f);
    }
    assert!(h.terminate().success());
}

/// Fifty start and stop requests at once (a script gone wrong, a room full of phones):
/// no frame is dropped, every start answered "done" names its file, and every file holds
/// the whole buffer and is complete.
#[test]
fn a_burst_of_commands_drops_no_frame_and_every_answered_file_exists() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(400, 400, 100.0, 10.0));
    h.wait_buffered(9.98);
    let replies = command_burst(&h.api, 50, Duration::ZERO);
    h.post("stop", json!({}));
    h.wait_idle_files();
    let started: Vec<&serde_json::Value> = replies
        .iter()
        .filter(|(start, _, r)| *start && r["outcome"] == "done")
        .map(|(_, _, r)| r)
        .collect();
    assert!(!started.is_empty(), "{replies:?}");
    assert!(
        replies.iter().all(|(_, code, _)| *code == 200),
        "{replies:?}"
    );
    let s = h.status();
    let cam = &s["cameras"][0];
    for r in &started {
        let files = r["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "a start answered done names its file: {r}");
        let mkv = std::path::Path::new(files[0].as_str().unwrap());
        assert!(mkv.exists(), "{} is missing", mkv.display());
        let rows = read_sidecar(mkv);
        eprintln!("{}:", mkv.display());
        assert_nothing_lost(&rows, cam);
        // The whole 10 s buffer, and the file holds exactly its sidecar's frames.
        let span = rows.last().unwrap().lsl_time - rows[0].lsl_time;
        assert!(span >= 9.9, "{}: {span:.2} s", mkv.display());
        assert_eq!(ffprobe_packet_count(mkv), rows.len() as u64);
    }
    mkvmerge_clean(std::path::Path::new(
        started.last().unwrap()["files"][0].as_str().unwrap(),
    ));
    assert!(!h.log_text().contains("frames lost"), "{}", h.log_text());
    assert!(h.terminate().success());
}

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

/// The default setup (one 400x400 camera at 100 fps, a 20 s buffer, audio, LSL) takes the
/// memory its frames need, not its ceiling: the buffer grows to 20 s of JPEG plus slack,
/// nothing is evicted early, and the process stays under 150 MiB. A ceiling of 4 GiB
/// changes nothing but the ceiling.
#[test]
fn the_buffer_takes_the_memory_its_frames_need() {
    let _g = serial();
    for ceiling in ["512MiB", "4GiB"] {
        let mut h = Hindsight::start(&format!("buffer:\n  max_bytes: {ceiling}\n"));
        h.wait_buffered(19.9);
        std::thread::sleep(Duration::from_secs(2));
        let s = h.status();
        let cam = &s["cameras"][0];
        assert_eq!(cam["buffer_evicted_early"], 0, "{cam}");
        // Nothing the buffer's size could cause is lost. (A synthetic camera's thread held
        // up for more than 4 frame periods on a busy machine skips frames, counted as gaps
        // in the source's numbers: not the buffer's doing.)
        let drops = &cam["drops"];
        for cause in [
            "too_large",
            "buffer_held_by_writer",
            "writer_queue_full",
            "corrupt",
        ] {
            assert_eq!(drops[cause], 0, "{cause}: {cam}");
        }
        let need = cam["buffered_bytes"].as_u64().unwrap();
        let capacity = cam["buffer_capacity_bytes"].as_u64().unwrap();
        let max = cam["buffer_max_bytes"].as_u64().unwrap();
        assert!(max >= 512 << 20, "{cam}");
        assert!(
            capacity >= need + need / 4 && capacity <= need + need / 4 + (32 << 20),
            "{capacity} bytes for {need} bytes of frames (ceiling {ceiling})"
        );
        let rss = rss_bytes(h.child.as_ref().unwrap().id());
        assert!(
            rss <= 150 << 20,
            "{} MiB resident with a {} MiB buffer (ceiling {ceiling})",
            rss >> 20,
            capacity >> 20
        );
        // Recording still works from the grown buffer.
        let (code, r) = h.post("start", json!({"seconds": 1}));
        assert_eq!(code, 200, "{r}");
        h.wait_until("the recording ends", Duration::from_secs(20), |h| {
            h.status()["state"] == "buffering"
        });
        h.wait_idle_files();
        let rows = read_sidecar(&h.mkv_files()[0]);
        assert_nothing_lost(&rows, &h.status()["cameras"][0]);
        assert!(rows.last().unwrap().lsl_time - rows[0].lsl_time > 20.9);
        assert!(h.terminate().success());
    }
}

/// The frame numbers' reservation as the state file holds it.
fn reserved_frames(root: &std::path::Path) -> u64 {
    let dir = root.join(".hindsight");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".numbers.json"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v["next_frame"]["cam0"].as_u64().unwrap()
}

/// Frame and recording numbers never repeat on a rig: after kill -9 the next process
/// numbers above everything the dead one could have used; after a clean exit it
/// continues exactly where the last one stopped.
#[test]
fn frame_and_recording_numbers_never_repeat_across_restarts() {
    let _g = serial();
    let cfg = synthetic_config(320, 240, 50.0, 1.0);
    let record = |h: &mut Hindsight| -> (Vec<SidecarRow>, u64) {
        h.wait_buffered(0.9);
        let before: Vec<std::path::PathBuf> = h.mkv_files();
        let (code, r) = h.post("start", json!({"seconds": 0.5}));
        assert_eq!(code, 200, "{r}");
        h.wait_until("the recording ends", Duration::from_secs(20), |h| {
            h.status()["state"] == "buffering"
        });
        h.wait_idle_files();
        let mkv = h
            .mkv_files()
            .into_iter()
            .find(|f| !before.contains(f))
            .unwrap();
        let id: u64 = tags(&mkv)["RECORDING_ID"].parse().unwrap();
        (read_sidecar(&mkv), id)
    };
    let mut h = Hindsight::start(&cfg);
    let root = h.root.clone();
    let (rows1, id1) = record(&mut h);
    assert_eq!(id1, 1);
    std::thread::sleep(Duration::from_millis(500));
    let captured1 = h.status()["cameras"][0]["last_frame_number"]
        .as_u64()
        .unwrap();
    h.kill9();

    let mut h2 = Hindsight::start_in(tempfile::tempdir().unwrap(), root.clone(), &cfg);
    let (rows2, id2) = record(&mut h2);
    assert!(id2 > id1, "recording {id2} after recording {id1}");
    assert!(
        rows2[0].frame_number > captured1
            && rows2[0].frame_number > rows1.last().unwrap().frame_number,
        "frame {} after a crash at frame {captured1}",
        rows2[0].frame_number
    );
    assert!(h2.terminate().success());
    // A clean exit keeps the exact next numbers.
    let next = reserved_frames(&root);
    let mut h3 = Hindsight::start_in(tempfile::tempdir().unwrap(), root.clone(), &cfg);
    h3.wait_buffered(0.5);
    let (code, r) = h3.post("start", json!({"seconds": 0.2}));
    assert_eq!(code, 200, "{r}");
    h3.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h3.wait_idle_files();
    let mkv = std::path::PathBuf::from(r["files"][0].as_str().unwrap());
    let rows3 = read_sidecar(&mkv);
    assert_eq!(tags(&mkv)["RECORDING_ID"], (id2 + 1).to_string());
    assert_eq!(
        rows3[0].frame_number, next,
        "the first frame of the new process continues the last one's count"
    );
    assert!(h3.terminate().success());
}

/// A second `hindsight run` of the same rig into the same root (by hand, beside the
/// service) stops at once with a message naming the first; the first records on,
/// untouched, and its numbers are not moved. After the first is killed (kill -9) the
/// rig is free again.
#[test]
fn a_second_recorder_of_the_same_rig_and_root_is_refused_and_the_first_goes_on() {
    let _g = serial();
    let cfg = synthetic_config(320, 240, 25.0, 1.0);
    let mut h = Hindsight::start(&cfg);
    let root = h.root.clone();
    h.wait_buffered(0.5);
    let numbers = std::fs::read_dir(root.join(".hindsight"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".numbers.json"))
        .unwrap();
    let reserved = std::fs::read(&numbers).unwrap();
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");

    let second = tempfile::tempdir().unwrap();
    let cfg_path = second.path().join("config.yaml");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let log = second.path().join("second.log");
    let mut child = std::process::Command::new(BIN)
        .args(["run", "--no-dashboard", "--config"])
        .arg(&cfg_path)
        .arg("--root")
        .arg(&root)
        .args(["--api", &api])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "a second recorder of the same rig and root ran beside the first:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    let pid = h.child.as_ref().unwrap().id();
    assert!(
        err.contains(&format!(
            "another hindsight (pid {pid}) is already running rig"
        )),
        "{err}"
    );
    assert!(err.contains("systemctl stop hindsight"), "{err}");
    // It opened nothing: no camera, no API, no warning about the first one's open file.
    assert!(!err.contains("unfinished recording"), "{err}");
    assert!(!err.contains("capturing"), "{err}");
    assert_eq!(
        std::fs::read(&numbers).unwrap(),
        reserved,
        "the numbers moved"
    );

    // The first one records on and its file is whole.
    std::thread::sleep(Duration::from_millis(500));
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    let mkv = h.mkv_files().pop().unwrap();
    let rows = read_sidecar(&mkv);
    assert_eq!(ffprobe_frame_count(&mkv), rows.len() as u64);
    assert_nothing_lost(&rows, &h.status()["cameras"][0]);

    // Killed, it holds nothing: the next recorder of the rig starts on the same root.
    h.kill9();
    let mut h2 = Hindsight::start_in(tempfile::tempdir().unwrap(), root.clone(), &cfg);
    h2.wait_buffered(0.5);
    assert!(h2.terminate().success());
}
