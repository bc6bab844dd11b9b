//! LSL, judged by real liblsl inlets over loopback (discovery limited to this machine, a
//! SessionID per test run): every frame on the common clock, 10 Hz status, events, the
//! marker trigger, and recovery after a restart.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lsl::ExPushable;
use serde_json::{json, Value};

/// A stream name no other test (or run) uses.
fn unique(base: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{base}_{}_{n}", std::process::id())
}

fn config(name: &str, extra: &str) -> String {
    format!(
        "rig: testrig\nbuffer:\n  duration: 2\n  max_bytes: 64MiB\ncameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 400, height: 400}}\n    fps: 100\nlsl:\n  name: {name}\n{extra}"
    )
}

/// Status samples (value, timestamp) one 10 Hz tick apart, none skipped.
fn assert_ticks_100_ms_apart(samples: &[(Vec<f64>, f64)]) {
    for w in samples.windows(2) {
        assert!(
            (w[1].1 - w[0].1 - 0.1).abs() < 1e-6,
            "status ticks {} -> {}",
            w[0].1,
            w[1].1
        );
    }
}

#[test]
fn every_frame_is_on_the_lsl_clock_exactly_as_in_the_files_and_events_say_what_happened() {
    lsl_session();
    let _g = serial();
    let name = unique("VS_frames");
    let mut h = Hindsight::start(&config(&name, ""));
    let (frames, mut info) = lsl_connect(&name, false);
    let (events, _) = lsl_connect(&format!("{name}_Events"), false);

    // The stream says what it is.
    assert_eq!(info.channel_count(), 4);
    assert_eq!(info.nominal_srate(), 100.0);
    assert_eq!(info.stream_type(), "Markers");
    assert_eq!(info.source_id(), "hindsight_testrig_cam0_frames");
    let desc = info.desc();
    let mut labels = Vec::new();
    let mut ch = desc.child("channels").child("channel");
    while ch.is_valid() && !ch.empty() {
        labels.push(ch.child_value_named("label"));
        ch = ch.next_sibling_named("channel");
    }
    assert_eq!(
        labels,
        [
            "frame_number",
            "unix_time",
            "is_keyframe",
            "recording_active"
        ]
    );
    assert_eq!(
        desc.child("synchronization")
            .child_value_named("can_drop_samples"),
        "true"
    );
    assert_eq!(desc.child("camera").child_value_named("width"), "400");
    assert_eq!(desc.child("camera").child_value_named("codec"), "mjpg");

    // The whole 2 s buffer is captured after the inlets connected.
    std::thread::sleep(Duration::from_secs(3));
    h.record_for(2.0);
    std::thread::sleep(Duration::from_millis(800));
    let samples = lsl_pull_numbers(&frames);
    let mkv = h.mkv_files().pop().unwrap();
    let rows = read_sidecar(&mkv);
    let first_lsl: f64 = tags(&mkv)["LSL_FIRST_FRAME_TIME"].parse().unwrap();
    let pts = ffprobe_pts(&mkv);

    // One sample per captured frame, none missing: a number the stream skips is one the
    // camera never delivered (a synthetic camera's thread held up for more than 4 frame
    // periods on a busy machine skips those frames), and counted as such.
    let numbers: Vec<u64> = samples.iter().map(|(v, _)| v[0] as u64).collect();
    assert!(numbers.len() > 500, "{} samples", numbers.len());
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "frame numbers in order"
    );
    let skipped: u64 = numbers.windows(2).map(|w| w[1] - w[0] - 1).sum();
    let cam = &h.status()["cameras"][0];
    assert_eq!(cam["lsl_samples_dropped"], 0, "{cam}");
    assert!(
        skipped <= cam["drops"]["source_gaps"].as_u64().unwrap(),
        "{skipped} frame numbers missing from the frame stream: {cam}"
    );
    // Each frame of the file: its LSL timestamp is its sidecar time, exactly, and its
    // pts plus the first frame's LSL time, to the file's 100 µs unit.
    let by_number: std::collections::HashMap<u64, &(Vec<f64>, f64)> =
        samples.iter().map(|s| (s.0[0] as u64, s)).collect();
    for (row, p) in rows.iter().zip(&pts) {
        let (v, ts) = by_number
            .get(&row.frame_number)
            .unwrap_or_else(|| panic!("frame {} not on the LSL stream", row.frame_number));
        assert_eq!(*ts, row.lsl_time, "frame {}", row.frame_number);
        // Unix time in f64 seconds resolves ~0.24 µs today.
        assert!(
            (v[1] - row.unix_time).abs() < 1e-6,
            "frame {}",
            row.frame_number
        );
        assert_eq!(v[2], 1.0, "every MJPEG frame is a keyframe");
        assert_eq!(
            v[3] == 1.0,
            !row.pre_trigger,
            "recording_active of frame {}",
            row.frame_number
        );
        assert!(
            (first_lsl + p - ts).abs() <= 0.00005 + 1e-9,
            "frame {}",
            row.frame_number
        );
    }
    // Frames outside the recording are not marked active.
    let (first, last) = (rows[0].frame_number, rows.last().unwrap().frame_number);
    assert!(samples
        .iter()
        .filter(|(v, _)| (v[0] as u64) < first || (v[0] as u64) > last)
        .all(|(v, _)| v[3] == 0.0));
    assert!(
        samples.iter().any(|(v, _)| (v[0] as u64) > last),
        "frames after the stop were sampled"
    );

    // Events: the start command, the file with its first frame, the stop, the file with
    // its last frame.
    let ev = lsl_pull_events(&events);
    // (The audio thread's WAV file has events of its own: the audio tests look at those.)
    let ev: Vec<_> = ev
        .into_iter()
        .filter(|(e, _)| !e["event"].as_str().unwrap().starts_with("audio_"))
        .collect();
    let kinds: Vec<&str> = ev
        .iter()
        .map(|(e, _)| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["command", "file_opened", "command", "file_closed"],
        "{ev:?}"
    );
    let trigger: f64 = tags(&mkv)["TRIGGER_LSL_TIME"].parse().unwrap();
    assert_eq!(ev[0].0["command"], "start");
    assert!(
        (ev[0].1 - trigger).abs() < 1e-6,
        "the command event is stamped with the trigger"
    );
    assert_eq!(ev[1].0["first_frame"], first);
    assert_eq!(ev[1].0["path"], mkv.to_str().unwrap());
    assert_eq!(
        (&ev[1].0["width"], &ev[1].0["height"]),
        (&400.into(), &400.into())
    );
    assert_eq!(ev[2].0["command"], "stop");
    assert_eq!(ev[3].0["last_frame"], last);
    assert_eq!(ev[3].0["frames"], rows.len());
    // A camera that was never lost: said as none, not left out.
    assert_eq!(
        (&ev[3].0["camera_losses"], &ev[3].0["camera_lost_s"]),
        (&0.into(), &0.0.into()),
        "{:?}",
        ev[3].0
    );
    assert!(h.terminate().success());
}

/// A recording that goes on in parts (a file size limit): the events close each part and
/// open the next with the next frame, and the WAV's parts join sample for sample.
#[test]
fn the_events_follow_a_recording_from_part_to_part() {
    lsl_session();
    let _g = serial();
    let name = unique("VS_parts");
    let extra = "storage:\n  max_file_size: 1MiB\naudio:\n  channels: 2\n  sample_format: f32\n";
    let mut h = Hindsight::start(&config(&name, extra));
    let (events, _) = lsl_connect(&format!("{name}_Events"), false);
    h.wait_buffered(2.0);
    h.record_for(2.0);
    h.wait_until("the WAV is closed", Duration::from_secs(20), |h| {
        h.status()["audio"]["last_file"]["recording_id"] == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    let ev: Vec<Value> = lsl_pull_events(&events)
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let of = |kind: &str| -> Vec<&Value> { ev.iter().filter(|e| e["event"] == kind).collect() };

    // Video: opened, closed, opened, ... closed, one pair per part, in order, each part
    // taking up with the frame after the last of the one before.
    let mkvs = h.mkv_files();
    assert!(mkvs.len() >= 3, "{mkvs:?}");
    let files: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "file_opened" || e["event"] == "file_closed")
        .collect();
    assert_eq!(files.len(), 2 * mkvs.len(), "{files:?}");
    let mut last_frame: Option<u64> = None;
    for pair in files.chunks(2) {
        let (opened, closed) = (pair[0], pair[1]);
        assert_eq!(
            (opened["event"].as_str(), closed["event"].as_str()),
            (Some("file_opened"), Some("file_closed"))
        );
        assert_eq!(opened["path"], closed["path"]);
        let path = std::path::PathBuf::from(opened["path"].as_str().unwrap());
        let rows = read_sidecar(&path);
        assert_eq!(opened["first_frame"], rows[0].frame_number);
        assert_eq!(closed["last_frame"], rows.last().unwrap().frame_number);
        assert_eq!(closed["frames"], rows.len());
        assert_eq!(closed["error"], Value::Null);
        if let Some(before) = last_frame {
            assert_eq!(rows[0].frame_number, before + 1, "{}", path.display());
        }
        last_frame = Some(rows.last().unwrap().frame_number);
    }

    // Audio: each part's first sample follows the last of the part before.
    let (opened, closed) = (of("audio_file_opened"), of("audio_file_closed"));
    assert!(opened.len() >= 2, "{ev:?}");
    assert_eq!(opened.len(), closed.len());
    assert_eq!(opened.len(), wav_files(&h.root).len());
    for k in 1..opened.len() {
        let before = opened[k - 1]["first_sample_index"].as_u64().unwrap();
        let frames = closed[k - 1]["frames"].as_u64().unwrap();
        assert_eq!(
            opened[k]["first_sample_index"].as_u64().unwrap(),
            before + frames
        );
        let t = |e: &Value| e["first_sample_lsl_time"].as_f64().unwrap();
        let expected = t(opened[k - 1]) + frames as f64 / 48_000.0;
        assert!((t(opened[k]) - expected).abs() < 1e-6, "{ev:?}");
        let wav = std::path::PathBuf::from(closed[k - 1]["path"].as_str().unwrap());
        assert!((sox_seconds(&wav) - frames as f64 / 48_000.0).abs() < 1e-6);
    }
    assert!(h.terminate().success());
}

#[test]
fn the_status_stream_ticks_at_10_hz_and_follows_the_state() {
    lsl_session();
    let _g = serial();
    let name = unique("VS_status");
    let mut h = Hindsight::start(&config(&name, ""));
    let (status, info) = lsl_connect(&format!("{name}_Status"), false);
    assert_eq!(info.nominal_srate(), 10.0);
    h.wait_buffered(1.9);
    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    while Instant::now() < at(3.0) {
        std::thread::sleep(Duration::from_millis(20));
    }
    h.post("start", json!({}));
    while Instant::now() < at(6.0) {
        std::thread::sleep(Duration::from_millis(20));
    }
    h.post("stop", json!({}));
    while Instant::now() < at(11.0) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let samples = lsl_pull_numbers(&status);
    let begin = samples
        .iter()
        .map(|s| s.1)
        .find(|&t| t > samples[0].1 + 0.5)
        .unwrap();
    let in_10s = samples
        .iter()
        .filter(|s| s.1 >= begin && s.1 < begin + 10.0)
        .count();
    assert!(
        (95..=105).contains(&in_10s),
        "{in_10s} status samples in 10 s"
    );
    // Regular: consecutive timestamps 100 ms apart.
    assert_ticks_100_ms_apart(&samples);
    let mut states: Vec<f64> = samples.iter().map(|s| s.0[0]).collect();
    states.dedup();
    // An inlet that connects while the recorder is still starting (a current liblsl
    // connects that fast) sees its idle state first.
    if states.first() == Some(&0.0) {
        states.remove(0);
    }
    assert_eq!(
        states,
        [2.0, 1.0, 2.0],
        "(idle ->) buffering -> recording -> buffering"
    );
    let last = &samples.last().unwrap().0;
    assert!((last[2] - 100.0).abs() < 2.0, "fps channel {}", last[2]);
    assert!((last[4] - 2.0).abs() < 0.05, "buffered seconds {}", last[4]);
    // The dropped-frames channel says what the status says, taken around a tick. On a
    // busy machine the synthetic camera's thread can be held up for more than 4 frame
    // periods and skip frames: counted as source gaps; the pipeline itself loses none.
    let drops = |h: &mut Hindsight| -> (f64, u64) {
        let cam = &h.status()["cameras"][0];
        let gaps = cam["drops"]["source_gaps"].as_u64().unwrap();
        (cam["frames_dropped"].as_f64().unwrap(), gaps)
    };
    let (before, _) = drops(&mut h);
    std::thread::sleep(Duration::from_millis(300));
    let ticked = lsl_pull_numbers(&status);
    let (after, gaps) = drops(&mut h);
    let channel = ticked.last().expect("a status tick in 300 ms").0[3];
    assert!(
        before <= channel && channel <= after,
        "dropped-frames channel {channel}, status {before} then {after}"
    );
    assert_eq!(
        after, gaps as f64,
        "every drop is a frame the camera skipped"
    );
    assert!(h.terminate().success());
}

#[test]
fn an_idle_rig_looks_once_a_second_and_an_inlet_that_connects_later_gets_every_frame_until_it_goes()
{
    lsl_session();
    let _g = serial();
    let name = unique("VS_idle");
    let mut h = Hindsight::start(&config(&name, ""));
    h.wait_buffered(1.9);
    let pid = h.child.as_ref().unwrap().id();
    // Nobody listens: liblsl would drop every sample, and the LSL thread looks once a
    // second instead of at every 10 Hz status tick.
    let secs = 3.0;
    let before = thread_switches(pid);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let idle = woke_between(&before, &thread_switches(pid), "lsl") as f64 / secs;
    assert!(
        idle <= 2.0,
        "with no inlet the LSL thread woke {idle:.1} times a second"
    );
    // An analysis starts: LabRecorder connects to the frame and status streams.
    let (frames, _) = lsl_connect(&name, false);
    let (status, _) = lsl_connect(&format!("{name}_Status"), false);
    let connected = lsl::local_clock();
    std::thread::sleep(Duration::from_secs(1));
    let before = thread_switches(pid);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let heard = woke_between(&before, &thread_switches(pid), "lsl") as f64 / secs;
    std::thread::sleep(Duration::from_millis(500));
    let got = lsl_pull_numbers(&frames);
    let ticks = lsl_pull_numbers(&status);
    let cam = h.status()["cameras"][0].clone();
    assert_eq!(h.status()["lsl"]["consumers"], json!([true]));
    assert!(
        (7.0..=15.0).contains(&heard),
        "with inlets connected the LSL thread woke {heard:.1} times a second (its 10 Hz ticks)"
    );
    // The analysis ends: once liblsl has seen the inlets go, the status says nobody
    // listens and the thread is back to its look once a second.
    drop(frames);
    drop(status);
    h.wait_until(
        "the status says no inlet is connected",
        Duration::from_secs(20),
        |h| h.status()["lsl"]["consumers"] == json!([false]),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = thread_switches(pid);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let gone = woke_between(&before, &thread_switches(pid), "lsl") as f64 / secs;
    assert!(h.terminate().success());
    assert!(
        gone <= 2.0,
        "after the inlets went away the LSL thread woke {gone:.1} times a second"
    );
    // Every frame from the connection on, none missing (a number the stream skips is one
    // the synthetic camera never delivered, counted as such), each on its capture time.
    let seqs: Vec<u64> = got.iter().map(|s| s.0[0] as u64).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "frame numbers in order"
    );
    let skipped: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
    assert_eq!(cam["lsl_samples_dropped"], 0, "{cam}");
    assert!(
        skipped <= cam["drops"]["source_gaps"].as_u64().unwrap(),
        "{skipped} frame numbers missing from the frame stream: {cam}"
    );
    let first = got.first().expect("no frame sample reached the inlet").1;
    let last = got.last().unwrap().1;
    assert!(
        first <= connected + 0.05,
        "the first frame sample was captured {:.3} s after the inlet connected",
        first - connected
    );
    assert!(
        last - first >= 3.5 && (seqs.len() as u64 + skipped) as f64 >= (last - first) * 99.0,
        "{} frame samples over {:.2} s at 100 fps",
        seqs.len(),
        last - first
    );
    // The status stream from its first sample on: every 100 ms tick, none skipped.
    assert!(ticks.len() >= 30, "{} status samples in 4.5 s", ticks.len());
    assert_ticks_100_ms_apart(&ticks);
    assert!(
        ticks[0].1 <= connected + 1.2,
        "the first status sample came {:.2} s after the inlet connected",
        ticks[0].1 - connected
    );
}

#[test]
fn markers_from_an_experiment_start_and_stop_recordings_and_are_followed_across_restarts() {
    lsl_session();
    let _g = serial();
    let markers = unique("HS_Markers");
    let name = unique("VS_markers");
    let extra = format!(
        "trigger:\n  lsl_markers:\n    enabled: true\n    stream: {markers}\n    start: [begin_trial]\n    stop: [end_trial]\n    mark: [reward]\n"
    );
    let make_outlet = |id: &str| {
        let info =
            lsl::StreamInfo::new(&markers, "Markers", 1, 0.0, lsl::ChannelFormat::String, id)
                .unwrap();
        lsl::StreamOutlet::new(&info, 0, 360).unwrap()
    };
    let outlet = make_outlet("experiment-1");
    let mut h = Hindsight::start(&config(&name, &extra));
    assert!(
        outlet.wait_for_consumers(30.0),
        "hindsight never connected to the marker stream"
    );
    h.wait_buffered(1.9);
    let push = |o: &lsl::StreamOutlet, m: &str| -> f64 {
        let t = lsl::local_clock();
        o.push_sample_ex(&vec![m.to_string()], t, true).unwrap();
        t
    };

    push(&outlet, "fixation");
    let started = push(&outlet, "begin_trial");
    h.wait_until(
        "the marker starts a recording",
        Duration::from_secs(10),
        |h| h.status()["state"] == "recording",
    );
    std::thread::sleep(Duration::from_millis(700));
    push(&outlet, "reward");
    std::thread::sleep(Duration::from_millis(500));
    push(&outlet, "end_trial");
    h.wait_until("the marker stops it", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let t = tags(&files[0]);
    assert_eq!(t["TRIGGER_SOURCE"], "lsl");
    assert_eq!(t["TRIGGER_MESSAGE"], "begin_trial");
    let trigger: f64 = t["TRIGGER_LSL_TIME"].parse().unwrap();
    // The marker's own time, clock-corrected (on one machine the correction is ~0, within
    // the round-trip time of liblsl's clock probes).
    assert!(
        (trigger - started).abs() < 0.001,
        "the recording starts at the marker's own time: {trigger} vs {started}"
    );
    let chapters = ffprobe_format(&files[0])["chapters"].clone();
    assert_eq!(chapters[0]["tags"]["title"], "reward");
    assert!(
        h.log_text().contains("`fixation` is not mapped"),
        "unmapped markers are logged"
    );

    // The experiment script ends, and starts again with a new source id: the trigger
    // finds the new stream.
    drop(outlet);
    let outlet = make_outlet("experiment-2");
    assert!(
        outlet.wait_for_consumers(30.0),
        "hindsight did not find the new marker stream"
    );
    push(&outlet, "begin_trial");
    h.wait_until(
        "the new stream's marker starts a recording",
        Duration::from_secs(10),
        |h| h.status()["state"] == "recording",
    );
    push(&outlet, "end_trial");
    h.wait_until("and stops it", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    assert_eq!(h.mkv_files().len(), 2);
    let s = h.status();
    assert!(
        s["lsl"]["marker_trigger"]
            .as_str()
            .unwrap()
            .contains("experiment-2"),
        "{s}"
    );
    assert!(h.terminate().success());
}

#[test]
fn an_inlet_with_recovery_resumes_after_a_restart_and_frame_numbers_never_repeat() {
    lsl_session();
    let _g = serial();
    let name = unique("VS_restart");
    let cfg = config(&name, "");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let mut h = Hindsight::start_with(tempfile::tempdir().unwrap(), root.clone(), &cfg, |_| {});
    let (frames, info) = lsl_connect(&name, true);
    // Long enough that a restarted count would soon repeat these numbers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before = Vec::new();
    while before.len() < 600 && Instant::now() < deadline {
        before.extend(lsl_pull_numbers(&frames));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(before.len() >= 600);
    // A crash, as the worst case: the numbers must still never repeat.
    h.kill9();

    let mut h2 = Hindsight::start_with(tempfile::tempdir().unwrap(), root, &cfg, |_| {});
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = Vec::new();
    while after.len() < 200 && Instant::now() < deadline {
        after.extend(
            lsl_pull_numbers(&frames)
                .into_iter()
                .filter(|(_, ts)| *ts > before.last().unwrap().1),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(after.len() >= 200, "the inlet did not resume");
    let mut all: Vec<u64> = before
        .iter()
        .chain(&after)
        .map(|(v, _)| v[0] as u64)
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "the stream holds a frame number twice");
    // One stream across both processes: its frame numbers never repeat (a restart, even
    // after kill -9, continues above every number the last process could have used).
    let last_before = before.iter().map(|(v, _)| v[0]).fold(0.0, f64::max);
    assert!(
        after.iter().all(|(v, _)| v[0] > last_before),
        "frame numbers after the restart ({}) repeat those before it (up to {last_before})",
        after[0].0[0]
    );
    assert_eq!(
        frames.info(5.0).unwrap().source_id(),
        info.source_id(),
        "same source id"
    );
    assert!(h2.terminate().success());
}

/// The rig-checking tool lists hindsight's streams and summarizes them live.
#[test]
fn the_listener_shows_a_running_recorders_streams() {
    lsl_session();
    let _g = serial();
    let name = unique("VS_listen");
    let mut h = Hindsight::start(&config(&name, ""));
    lsl_connect(&name, false);
    h.wait_buffered(1.0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hindsight-lsl-listen"))
        .args(["--name", &name, "--seconds", "2.5"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stream in [
        name.clone(),
        format!("{name}_Status"),
        format!("{name}_Events"),
    ] {
        assert!(
            text.contains(&format!("{stream}: type")),
            "{stream} not listed:\n{text}"
        );
    }
    assert!(
        text.contains("source_id hindsight_testrig_cam0_frames"),
        "{text}"
    );
    assert!(text.contains("0 gaps so far"), "{text}");
    assert!(text.contains("buffering, "), "{text}");
    assert!(h.terminate().success());
}

/// liblsl's own INFO lines ("Loaded default config", its git hash) stay out of the log of
/// a machine without LSL configuration, and a lab's `lsl_api.cfg` where liblsl looks for
/// it is still what liblsl runs with: its SessionID (the stream is found in this run's
/// session) and its own log level (liblsl says which file it loaded).
#[test]
fn liblsl_keeps_to_warnings_unless_the_lab_configured_it() {
    let session = lsl_session();
    let _g = serial();
    let name = unique("VS_quiet");
    let session_cfg = std::fs::read_to_string(std::env::var("LSLAPICFG").unwrap()).unwrap();

    // A recorder started in `home` (its home and working directory), without LSLAPICFG.
    let start_in = |home: &std::path::Path| {
        Hindsight::start_with(
            tempfile::tempdir().unwrap(),
            home.join("recordings"),
            &config(&name, ""),
            |c| {
                c.env_remove("LSLAPICFG")
                    .env("HOME", home)
                    .current_dir(home);
            },
        )
    };

    // No configuration anywhere liblsl looks: its defaults, at warnings.
    let home = tempfile::tempdir().unwrap();
    let mut h = start_in(home.path());
    h.wait_buffered(0.5);
    h.wait_until("the LSL streams are up", Duration::from_secs(10), |h| {
        h.log_text().contains("LSL streams:")
    });
    assert!(h.terminate().success());
    let log = h.log_text();
    if std::path::Path::new("/etc/lsl_api/lsl_api.cfg").exists() {
        assert!(
            log.contains("/etc/lsl_api/lsl_api.cfg") || !log.contains("INFO|"),
            "this machine's /etc/lsl_api/lsl_api.cfg was not what liblsl ran with:\n{log}"
        );
    } else {
        assert!(
            !log.contains("INFO|"),
            "liblsl's INFO lines in the log:\n{log}"
        );
        assert!(!log.contains("Loaded default config"), "{log}");
    }

    // The lab's file in the working directory (no LSLAPICFG): liblsl reads it.
    let lab = tempfile::tempdir().unwrap();
    std::fs::write(
        lab.path().join("lsl_api.cfg"),
        format!("{session_cfg}[log]\nlevel = 0\n"),
    )
    .unwrap();
    let mut h = start_in(lab.path());
    // Found by this process's inlet, which only sees streams of its SessionID.
    let (inlet, info) = lsl_connect(&name, false);
    assert_eq!(info.session_id(), session);
    drop(inlet);
    assert!(h.terminate().success());
    let log = h.log_text();
    assert!(
        log.contains("Configuration loaded from lsl_api.cfg"),
        "the lab's lsl_api.cfg was not loaded:\n{log}"
    );
}
