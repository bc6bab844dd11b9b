//! `source: libcamera` end to end, on libcamera's own `virtual` pipeline handler as
//! scripts/build-libcamera.sh builds it (Debian's libcamera source with our test patches:
//! the virtual camera exposes frame n at start + n * frame duration, stamps that as its
//! SensorTimestamp, loses frames that find no buffer, and shows image n.jpg as frame n).
//! Its images are the synthetic camera's own JPEGs, so every recorded frame says in its
//! pixels which sensor frame it is. Files are judged by ffprobe and ffmpeg.
//!
//! The recording tests take turns (`serial`): on a 2-core machine, several cameras at
//! once starve each other's capture threads, and the virtual sensor then really loses
//! frames (as a Pi's would), which is what only one test here is about.
//!
//! Built without `--features libcamera` (no libcamera on the machine), every test here
//! is reported as ignored, with the reason; scripts/test.sh builds the test libcamera and
//! runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::virtual_camera::*;
use common::*;
use serde_json::json;

fn config(cams: &str) -> String {
    format!(
        "buffer:\n  duration: 1.5\n  max_bytes: 128MiB\naudio:\n  enabled: false\ncameras:\n{cams}"
    )
}

fn camera(name: &str, device: &str, w: u32, h: u32, fps: f64, quality: u8) -> String {
    format!(
        "  - name: {name}\n    source: libcamera\n    device: \"{device}\"\n    resolution: {{width: {w}, height: {h}}}\n    fps: {fps}\n    quality: {quality}\n"
    )
}

/// Starts hindsight on the virtual cameras described by `yaml`, with `env` added.
fn start(config: &str, yaml: &Path, env: &[(&str, &str)]) -> Hindsight {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    Hindsight::start_with(dir, root, config, |c| {
        c.env("LIBCAMERA_VIRTUAL_CONFIG", yaml)
            .env("LIBCAMERA_LOG_LEVELS", "*:ERROR");
        for (k, v) in env {
            c.env(k, v);
        }
    })
}

/// Starts hindsight on one virtual Pi camera at `fps` (with `more` of its configuration)
/// whose frames are each handled 0 to `delay_ms` ms late, as a busy capture thread would
/// (`HINDSIGHT_TEST_LIBCAMERA_DELAY_MS`); the camera's images go under `dir`.
fn start_late(dir: &Path, fps: f64, more: &str, delay_ms: u32) -> Hindsight {
    let yaml = virtual_cameras(dir, &[PI]);
    start(
        &config(&(camera("pi", "0", 320, 240, fps, 80) + more)),
        &yaml,
        &[("HINDSIGHT_TEST_LIBCAMERA_DELAY_MS", &delay_ms.to_string())],
    )
}

/// Records `secs` seconds (after the buffer filled); returns the recording's MKV.
fn record(h: &mut Hindsight, secs: f64) -> PathBuf {
    let before: Vec<PathBuf> = h.mkv_files();
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    let new: Vec<PathBuf> = h
        .mkv_files()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(new.len(), 1, "one new file: {new:?}");
    new[0].clone()
}

/// The first frame's JPEG, as stored (ffmpeg copies it out).
fn first_jpeg(mkv: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mkv)
        .args([
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-c",
            "copy",
            "-f",
            "mjpeg",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The JPEG quality the luminance quantisation table was made with (libjpeg's scaling of
/// the standard table: its DC entry 16).
fn jpeg_quality_dc(jpeg: &[u8]) -> u8 {
    let mut i = 2;
    while i + 4 < jpeg.len() {
        assert_eq!(jpeg[i], 0xFF, "marker at {i}");
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xDB {
            // Pq/Tq, then 64 values in zigzag order: the first is DC.
            return jpeg[i + 5];
        }
        i += 2 + len;
    }
    panic!("no quantisation table");
}

/// libjpeg's DC quantiser for `quality`.
fn dc_for_quality(quality: u32) -> u8 {
    let scale = if quality < 50 {
        5000 / quality
    } else {
        200 - 2 * quality
    };
    ((16 * scale + 50) / 100).clamp(1, 255) as u8
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_virtual_camera_records_its_frames_at_their_sensor_times() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let t_before = monotonic();
    let mut h = start(&config(&camera("pi", "0", 320, 240, 30.0, 80)), &yaml, &[]);
    let s = h.status();
    let cam = &s["cameras"][0];
    assert_eq!(cam["source"], "libcamera");
    assert!(
        cam["model"] == "virtual-imx708, YUV420 encoded to JPEG"
            && cam["width"] == 320
            && cam["height"] == 240
            && cam["target_fps"] == 30.0,
        "{cam}"
    );
    let mkv = record(&mut h, 2.0);
    let t_after = monotonic();

    // The file: MJPEG at the size asked for, every frame decodable.
    assert_eq!(ffprobe_video(&mkv), (320, 240, "mjpeg".to_string()));
    let shown = shown(&mkv, 320, 240);
    let rows = read_sidecar(&mkv);
    let pre = rows.iter().filter(|r| r.pre_trigger).count();
    assert!(
        pre >= 25,
        "1 s was buffered before the start: {pre} pre-trigger frames"
    );
    assert!(
        rows.len() >= 60,
        "2 s live at 30 fps, and what was buffered: {}",
        rows.len()
    );
    assert_eq!(ffprobe_frame_count(&mkv), rows.len() as u64);
    // Consecutive sensor frames, and frame numbers that follow them.
    assert!(steps(&shown).iter().all(|&s| s == 1), "{:?}", steps(&shown));
    for w in rows.windows(2) {
        assert_eq!(w[1].frame_number, w[0].frame_number + 1);
    }
    // Times: the sensor's, on the LSL clock (CLOCK_MONOTONIC, read here too).
    assert_sensor_times(&rows, &shown, period(30.0));
    for r in &rows {
        assert!(
            r.lsl_time > t_before && r.lsl_time < t_after,
            "{} outside [{t_before}, {t_after}]",
            r.lsl_time
        );
    }
    // The quality asked for.
    assert_eq!(jpeg_quality_dc(&first_jpeg(&mkv)), dc_for_quality(80));
    assert_eq!(h.status()["cameras"][0]["drops"]["source_gaps"], 0);
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn frames_handled_late_keep_their_sensor_times() {
    let _one_at_a_time = serial();
    // Each frame is held 0 to 20 ms before it is stamped: times taken at arrival would
    // wander by as much; the sensor's stay on the 30 fps grid.
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_late(dir.path(), 30.0, "", 20);
    let mkv = record(&mut h, 2.0);
    let shown = shown(&mkv, 320, 240);
    let rows = read_sidecar(&mkv);
    assert!(
        steps(&shown).iter().all(|&s| s == 1),
        "none lost at 20 ms: {:?}",
        steps(&shown)
    );
    assert_sensor_times(&rows, &shown, period(30.0));
    let intervals: Vec<f64> = rows
        .windows(2)
        .map(|w| w[1].lsl_time - w[0].lsl_time)
        .collect();
    assert!(
        intervals.iter().all(|d| (d - period(30.0)).abs() < 3e-6),
        "{intervals:?}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_clip_waits_for_the_frames_exposed_before_it_that_are_still_on_their_way() {
    let _one_at_a_time = serial();
    // At 10 fps, each frame handled 0 to 80 ms after its exposure (as a sensor's frame
    // comes in a frame or more after it): when a clip is asked for, the frame exposed
    // just before may not be in yet. The clip ends with it all the same, as a stop does.
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_late(dir.path(), 10.0, "", 80);
    h.wait_buffered(1.4);
    let p = period(10.0);
    for i in 0..8 {
        let before = h.mkv_files();
        let (code, r) = h.post("clip", json!({"seconds": 1}));
        assert_eq!(code, 200, "{r}");
        h.wait_idle_files();
        let new: Vec<PathBuf> = h
            .mkv_files()
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        assert_eq!(new.len(), 1, "clip {i}: one new file: {new:?}");
        let clip = &new[0];
        let trigger: f64 = tags(clip)["TRIGGER_LSL_TIME"].parse().unwrap();
        let rows = read_sidecar(clip);
        let last = rows.last().expect("frames").lsl_time;
        assert!(
            trigger - last < p,
            "clip {i}: its last frame was exposed {:.0} ms before the clip was asked for: \
             the next one, exposed before it too, is missing",
            (trigger - last) * 1e3
        );
        assert!(
            rows[0].lsl_time >= trigger - 1.0 && rows[0].lsl_time < trigger - 1.0 + p,
            "clip {i}: its first frame {:.3} s before the command",
            trigger - rows[0].lsl_time
        );
        assert_eq!(rows.len(), 10, "clip {i}: 1 s at 10 fps");
        assert_eq!(ffprobe_frame_count(clip), 10, "clip {i}");
        let shown = shown(clip, 320, 240);
        assert!(
            steps(&shown).iter().all(|&s| s == 1),
            "clip {i}: {:?}",
            steps(&shown)
        );
        // Another phase of the frame period for the next.
        std::thread::sleep(Duration::from_millis(230));
    }
    assert_eq!(h.status()["state"], "buffering");
    assert!(h.terminate().success());
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_stop_and_a_start_at_once_each_take_keeps_its_last_frames() {
    let _one_at_a_time = serial();
    // Trials one after the other: an experiment's script says stop and start at once.
    // At 10 fps with frames coming in up to 80 ms after their exposure, the frames
    // exposed just before a stop may not be in when the next start opens its files: the
    // take that stopped still ends with them (the next one has them in its pre-trigger
    // part too).
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_late(dir.path(), 10.0, "", 80);
    h.wait_buffered(1.4);
    let p = period(10.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let mut stops = Vec::new();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(730));
        let (code, r) = h.post("stop", json!({}));
        assert_eq!(code, 200, "{r}");
        let (code, r) = h.post("start", json!({}));
        assert_eq!(code, 200, "{r}");
        stops.push(r);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    let mut files = h.mkv_files();
    files.sort();
    assert_eq!(files.len(), 7, "{files:?}");
    for (i, take) in files[..6].iter().enumerate() {
        let (stop, _) = event_row(take, "stop");
        let rows = read_sidecar(take);
        let last = rows.last().expect("frames").lsl_time;
        assert!(
            stop - last < p && last <= stop,
            "take {}: its last frame was exposed {:.0} ms before its stop: the next one, \
             exposed before the stop too, went only to the next take ({:?})",
            i + 1,
            (stop - last) * 1e3,
            stops[i]
        );
        let shown = shown(take, 320, 240);
        assert!(
            steps(&shown).iter().all(|&s| s == 1),
            "take {}: {:?}",
            i + 1,
            steps(&shown)
        );
        // Each row has its own frame's exposure (the camera's automatic one, half the
        // 100 ms frame period) and gains, the last frames handled late among them.
        assert_exposures(&rows, &shown, 50_000);
        // Every frame of the sidecar is in the MKV.
        assert_eq!(
            ffprobe_frame_count(take),
            rows.len() as u64,
            "take {}",
            i + 1
        );
    }
    assert_eq!(h.status()["state"], "buffering");
    assert!(h.terminate().success());
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn frames_the_camera_lost_are_counted_from_its_sequence_numbers() {
    let _one_at_a_time = serial();
    // Held up to 100 ms each (50 on average) at 30 fps, the capture thread returns
    // buffers too late: the sensor's frames find none and are lost.
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_late(dir.path(), 30.0, "", 100);
    let mkv = record(&mut h, 3.0);
    let shown = shown(&mkv, 320, 240);
    let rows = read_sidecar(&mkv);
    let steps = steps(&shown);
    let lost_in_pixels: u64 = steps.iter().map(|s| s - 1).sum();
    assert!(lost_in_pixels > 5, "frames were lost: {steps:?}");
    // The sidecar's frame numbers jump exactly where the pixels do.
    for (i, w) in rows.windows(2).enumerate() {
        assert_eq!(
            w[1].frame_number - w[0].frame_number,
            steps[i],
            "at row {i}"
        );
    }
    // The times are still the lost frames' neighbours' exposures.
    assert_sensor_times(&rows, &shown, period(30.0));
    // And the status counts them as the camera's.
    let gaps = h.status()["cameras"][0]["drops"]["source_gaps"]
        .as_u64()
        .unwrap();
    assert!(
        gaps >= lost_in_pixels,
        "status: {gaps} gaps, the file shows {lost_in_pixels}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn frames_slower_to_handle_than_their_period_are_all_kept_on_several_encoding_threads() {
    let _one_at_a_time = serial();
    // The same 0 to 100 ms a frame (50 on average) that loses frames at 30 fps on the
    // capture thread alone (the test above), on 4 encoding threads that take frames in
    // turn: each has 4 periods for its frame, so none is lost, and they come out in order
    // at their sensor times.
    let dir = tempfile::tempdir().unwrap();
    let mut h = start_late(dir.path(), 30.0, "    encoders: 4\n", 100);
    let cam = &h.status()["cameras"][0];
    assert_eq!(
        cam["model"], "virtual-imx708, YUV420 encoded to JPEG on 4 threads",
        "{cam}"
    );
    let mkv = record(&mut h, 3.0);
    let shown = shown(&mkv, 320, 240);
    let rows = read_sidecar(&mkv);
    assert!(rows.len() >= 90, "{} frames", rows.len());
    assert!(
        steps(&shown).iter().all(|&s| s == 1),
        "none lost: {:?}",
        steps(&shown)
    );
    for w in rows.windows(2) {
        assert_eq!(w[1].frame_number, w[0].frame_number + 1);
    }
    assert_sensor_times(&rows, &shown, period(30.0));
    assert_eq!(jpeg_quality_dc(&first_jpeg(&mkv)), dc_for_quality(80));
    let cam = &h.status()["cameras"][0];
    assert_eq!(cam["drops"]["source_gaps"], 0, "{cam}");
    assert!(cam["capture_cpu"].as_f64().is_some(), "{cam}");
    // The next recording too; and the process ends cleanly, its threads joined before
    // the camera is closed.
    let again = record(&mut h, 1.0);
    let shown = self::shown(&again, 320, 240);
    assert!(steps(&shown).iter().all(|&s| s == 1), "{:?}", steps(&shown));
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn nv12_and_yuv420_cameras_both_record_two_cameras_in_one_process() {
    let _one_at_a_time = serial();
    // Two cameras (a Pi 5 has two ports): one gives YUV420, the other NV12 only.
    let dir = tempfile::tempdir().unwrap();
    let second = Virtual {
        id: "Virtual1",
        model: "virtual-imx296",
        width: 160,
        height: 120,
        rates: (10, 60),
    };
    let yaml = virtual_cameras(dir.path(), &[PI, second]);
    let cams = camera("a", "Virtual0", 320, 240, 30.0, 50)
        + &camera("b", "virtual-imx296", 160, 120, 20.0, 90);
    let judge = |[a, b]: [PathBuf; 2]| {
        for (mkv, (w, hh, fps, q)) in [(a, (320, 240, 30.0, 50)), (b, (160, 120, 20.0, 90))] {
            assert_eq!(ffprobe_video(&mkv), (w, hh, "mjpeg".to_string()));
            let shown = shown(&mkv, w as usize, hh as usize);
            assert!(
                steps(&shown).iter().all(|&s| s == 1),
                "{}: {:?}",
                mkv.display(),
                steps(&shown)
            );
            assert_sensor_times(&read_sidecar(&mkv), &shown, period(fps));
            assert_eq!(jpeg_quality_dc(&first_jpeg(&mkv)), dc_for_quality(q));
        }
    };
    // NV12 only for both...
    let mut h = start(
        &config(&cams),
        &yaml,
        &[("LIBCAMERA_VIRTUAL_NV12_ONLY", "1")],
    );
    let s = h.status();
    for c in 0..2 {
        assert!(
            s["cameras"][c]["model"].as_str().unwrap().contains("NV12"),
            "{}",
            s["cameras"][c]
        );
    }
    judge(record_both(&mut h));
    drop(h);
    // ... and YUV420 for both.
    let mut h = start(&config(&cams), &yaml, &[]);
    let s = h.status();
    for c in 0..2 {
        assert!(
            s["cameras"][c]["model"]
                .as_str()
                .unwrap()
                .contains("YUV420"),
            "{}",
            s["cameras"][c]
        );
    }
    judge(record_both(&mut h));
}

/// Records 1.5 s with two cameras; returns their two files.
fn record_both(h: &mut Hindsight) -> [PathBuf; 2] {
    h.wait_until("both cameras buffer", Duration::from_secs(30), |h| {
        let s = h.status();
        (0..2).all(|c| s["cameras"][c]["buffered_seconds"].as_f64().unwrap() >= 1.0)
    });
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 2, "{files:?}");
    let pick = |cam: &str| {
        files
            .iter()
            .find(|f| {
                f.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(&format!("_{cam}"))
            })
            .unwrap_or_else(|| panic!("no file of camera {cam} in {files:?}"))
            .clone()
    };
    [pick("a"), pick("b")]
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn start_stop_and_start_again_then_a_new_process_opens_the_camera_again() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let cfg = config(&camera("pi", "0", 320, 240, 30.0, 80));
    let mut h = start(&cfg, &yaml, &[]);
    let first = record(&mut h, 1.0);
    let second = record(&mut h, 1.0);
    let (a, b) = (read_sidecar(&first), read_sidecar(&second));
    assert!(b.last().unwrap().frame_number > a.last().unwrap().frame_number + 30);
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());
    // The camera was released: a new process opens it and records.
    let mut h = start(&cfg, &yaml, &[]);
    let third = record(&mut h, 1.0);
    for mkv in [&first, &second, &third] {
        let shown = shown(mkv, 320, 240);
        assert!(
            steps(&shown).iter().all(|&s| s == 1),
            "{}: {:?}",
            mkv.display(),
            steps(&shown)
        );
        assert_sensor_times(&read_sidecar(mkv), &shown, period(30.0));
    }
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_camera_not_there_at_start_up_is_opened_and_recorded_once_it_appears() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let made = virtual_cameras(dir.path(), &[PI]);
    // libcamera is told of a camera configuration that is not there yet: it finds none.
    let later = dir.path().join("later.yaml");
    let cfg = config(&camera("pi", "0", 320, 240, 30.0, 80));
    let mut h = start(&cfg, &later, &[]);
    h.wait_until("the camera is found lost", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == true
    });
    let s = h.status();
    let why = s["cameras"][0]["last_error"].as_str().unwrap();
    assert!(
        why.contains("could not be opened at start-up")
            && why.contains("libcamera finds no camera"),
        "{s}"
    );
    // The camera appears (as one plugged in or enabled): hindsight opens it by itself,
    // within its 5 s backoff, and it records as any other.
    std::fs::rename(&made, &later).unwrap();
    h.wait_until("the camera delivers", Duration::from_secs(30), |h| {
        let c = &h.status()["cameras"][0];
        c["lost"] == false && c["frames_captured"].as_u64().unwrap() > 30
    });
    let s = h.status();
    assert!(
        s["cameras"][0]["model"]
            .as_str()
            .unwrap()
            .starts_with("virtual-imx708"),
        "{s}"
    );
    assert_eq!(s["cameras"][0]["width"], 320, "{s}");
    let mkv = record(&mut h, 1.0);
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());
    // Its coming says what it opened as (its LSL description could not).
    let log = h.log_text();
    assert!(
        log.lines().any(|l| l.contains("camera pi back")
            && l.contains("its first frames since start-up")
            && l.contains("virtual-imx708")
            && l.contains("320x240")),
        "{log}"
    );
    let shown = shown(&mkv, 320, 240);
    assert!(shown.len() >= 30, "{} frames", shown.len());
    assert!(steps(&shown).iter().all(|&s| s == 1), "{:?}", steps(&shown));
    assert_sensor_times(&read_sidecar(&mkv), &shown, period(30.0));
}

/// The virtual camera has a Pi's exposure and gain controls (test patch 06): a manual
/// ExposureTime or AnalogueGain counts only while its mode is Manual, and each frame's
/// metadata says what it was exposed with (Auto: half the frame period, and gains that
/// change from frame to frame).
#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn controls_fix_the_exposure_and_gain_the_camera_reports_in_every_file() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let fixed = "    controls:\n      ExposureTime: 2000\n      AnalogueGain: 4\n";
    lsl_session();
    let name = format!("VS_controls_{}", std::process::id());
    let mut h = start(
        &(config(&(camera("pi", "0", 320, 240, 30.0, 80) + fixed))
            + &format!("lsl:\n  name: {name}\n")),
        &yaml,
        &[],
    );
    // The modes the values need were added: the camera exposes 2 ms at gain 4, and
    // every file of the process says so (the second recording too: the camera is
    // started again with them).
    let said = "ExposureTimeMode=Manual AnalogueGainMode=Manual ExposureTime=2000 \
                AnalogueGain=4 (its frames report ExposureTime 2000, AnalogueGain 4)";
    // And the frame stream's description, which LabRecorder keeps in the XDF.
    let (_inlet, mut info) = lsl_connect(&name, false);
    assert_eq!(
        info.desc().child("camera").child_value_named("controls"),
        said
    );
    for _ in 0..2 {
        let mkv = record(&mut h, 1.0);
        let t = tags(&mkv);
        assert_eq!(
            t.get("CAMERA_CONTROLS").map(String::as_str),
            Some(said),
            "{t:?}"
        );
        assert!(
            t["SOURCE"].ends_with(&format!(", controls {said}")),
            "{t:?}"
        );
        assert!(ffprobe_frame_count(&mkv) >= 30, "{}", mkv.display());
    }
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());
    let log = h.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("runs 320x240") && l.contains(&format!("controls {said}"))),
        "{log}"
    );
    assert!(!log.contains("does not do what was asked"), "{log}");

    // A lab that keeps the exposure mode on Auto gets what the camera does (its own
    // exposure), said in the log and in the file, not what it asked for.
    let auto = "    controls:\n      ExposureTimeMode: Auto\n      ExposureTime: 2000\n";
    let mut h = start(
        &config(&(camera("pi", "0", 320, 240, 30.0, 80) + auto)),
        &yaml,
        &[],
    );
    let mkv = record(&mut h, 1.0);
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());
    let t = tags(&mkv);
    assert_eq!(
        t.get("CAMERA_CONTROLS").map(String::as_str),
        Some("ExposureTimeMode=Auto ExposureTime=2000 (its frames report ExposureTime 16666)"),
        "{t:?}"
    );
    let log = h.log_text();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("was asked for ExposureTimeMode=Auto ExposureTime=2000")
            && l.contains("its frames report ExposureTime 16666 (asked 2000)")),
        "{log}"
    );
}

/// A camera left on automatic gain (or exposure) changes it from frame to frame: each
/// frame carries what it was exposed with, in its sidecar row (`exposure_us`,
/// `analogue_gain`, `digital_gain`) and in its JPEG's Exif block, which ffprobe reads
/// from the file. The virtual camera's automatic gains are a function of the frame's
/// number (test patch 06), which its pixels show: each row and each frame in the file
/// must have its own frame's values, the buffered frames and the live ones, through 3
/// encoding threads, in the first recording of the process and the next.
#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn each_frame_carries_its_own_exposure_and_gains_in_the_sidecar_and_the_file() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    // A fixed exposure; the gains left to the camera.
    let more = "    encoders: 3\n    controls: {ExposureTime: 2000}\n";
    let mut h = start(
        &config(&(camera("pi", "0", 320, 240, 30.0, 80) + more)),
        &yaml,
        &[],
    );
    for take in 1..=2 {
        let mkv = record(&mut h, 1.0);
        let rows = read_sidecar(&mkv);
        let shown = shown(&mkv, 320, 240);
        assert_eq!(rows.len(), shown.len(), "take {take}");
        assert!(
            rows.iter().any(|r| r.pre_trigger) && rows.iter().any(|r| !r.pre_trigger),
            "take {take}: buffered and live frames"
        );
        assert_exposures(&rows, &shown, 2000);
        assert_exif(&mkv, &shown, 2000);
        // All 8 automatic analogue gains are in the file: the values changed from
        // frame to frame within it, and each row still had its own.
        let gains: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter_map(|r| Some(r.exposure.as_ref()?[1].as_str()))
            .collect();
        assert_eq!(gains.len(), 8, "take {take}: {gains:?}");
        // The quality report says it in the camera's table.
        let report = report_html(&mkv, dir.path());
        let changed = rows
            .windows(2)
            .filter(|w| w[0].exposure.as_ref().unwrap()[1] != w[1].exposure.as_ref().unwrap()[1])
            .count();
        assert!(
            report.contains(&format!(
                "<td class=\"exposure\">exposure 2000 µs in every frame · analogue gain \
                 1–2.75, changed {changed} times · digital gain 1–1.25, changed"
            )),
            "take {take}: {report}"
        );
        // And plots it: the exposure and both gains, a point for every frame.
        let plot = report
            .split("<figure class=\"plot exposure\">")
            .nth(1)
            .and_then(|p| p.split("</figure>").next())
            .unwrap_or_else(|| panic!("take {take}: no exposure plot: {report}"));
        for colour in ["#0000FF", "#FF0000", "#00FF00"] {
            let points = plot
                .split("<polyline")
                .find(|l| l.contains(&format!("stroke=\"{colour}\"")))
                .and_then(|l| l.split("points=\"").nth(1)?.split('"').next())
                .map_or(0, |p| p.split_whitespace().count());
            assert_eq!(points, rows.len(), "take {take}: the {colour} line");
        }
    }
    // While it runs, the status and `hindsight ctl status` say what its newest frame
    // was exposed with (the gains of one frame: a pair of the camera's automatic ones).
    let st = h.status();
    let e = &st["cameras"][0]["exposure"];
    assert_eq!(e["time_us"], 2000, "{st}");
    let (analogue, digital) = (e["analogue_gain"].as_f64(), e["digital_gain"].as_f64());
    assert!(
        (0..24)
            .map(auto_gains)
            .any(|(a, d)| (Some(f64::from(a)), Some(f64::from(d))) == (analogue, digital)),
        "{e}"
    );
    let out = h.ctl(&["status"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.lines()
            .any(|l| l.starts_with("pi: exposure 2000 µs · analogue gain ")
                && l.contains(" · digital gain ")),
        "{said}"
    );
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());
}

/// A crash a moment after a start, while the buffered frames are being written: after
/// `hindsight repair` every frame the file kept still has its own exposure and gains, in
/// its sidecar row and in its JPEG, and the recorder started again on the same root
/// records the next take with them too.
#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_crash_a_moment_after_start_keeps_each_frames_exposure_through_the_repair() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let cfg =
        config(&(camera("pi", "0", 320, 240, 30.0, 80) + "    controls: {ExposureTime: 2000}\n"));
    let mut h = start(&cfg, &yaml, &[]);
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_millis(250));
    h.kill9();
    let mkv = h.mkv_files().pop().expect("a file");
    let said = repair_ok(&mkv);
    assert!(
        said.contains(&format!("{}: repaired", mkv.display())),
        "{said}"
    );

    let kept = shown(&mkv, 320, 240);
    let rows = read_sidecar(&mkv);
    // The 1.5 s buffer (45 frames at 30 fps) went out at the start, before the kill; each
    // frame kept has its row, and no row is left of a frame the file lacks.
    assert_eq!(rows.len(), kept.len(), "{said}");
    assert!(rows.len() >= 30, "{} frames kept", kept.len());
    assert!(rows.iter().any(|r| r.pre_trigger));
    assert_exposures(&rows, &kept, 2000);
    assert_exif(&mkv, &kept, 2000);

    // Started again on the same root (as systemd does): nothing is left unfinished, and
    // the next take's frames carry their exposure too.
    let root = h.root.clone();
    let mut h = Hindsight::start_with(tempfile::tempdir().unwrap(), root, &cfg, |c| {
        c.env("LIBCAMERA_VIRTUAL_CONFIG", &yaml)
            .env("LIBCAMERA_LOG_LEVELS", "*:ERROR");
    });
    assert_eq!(
        h.status()["unfinished_files"],
        json!([]),
        "{}",
        h.log_text()
    );
    let next = record(&mut h, 1.0);
    assert_ne!(next, mkv);
    let (rows, shown) = (read_sidecar(&next), shown(&next, 320, 240));
    assert_exposures(&rows, &shown, 2000);
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());

    // The checker users run agrees, and finds a row whose exposure is not its frame's.
    let (code, text) = check_recording(&next);
    assert!(
        code == Some(0)
            && text.contains("each frame's exposure and gain in its JPEG as in the sidecar"),
        "{text}"
    );
    let copy = tempfile::tempdir().unwrap();
    let damaged = copy.path().join(next.file_name().unwrap());
    std::fs::copy(&next, &damaged).unwrap();
    let csv = std::fs::read_to_string(sidecar_of(&next)).unwrap();
    let mut lines: Vec<&str> = csv.lines().collect();
    let changed = lines[11].replacen(",2000,", ",2500,", 1);
    lines[11] = &changed;
    let gains = format!("{},2000,9,1", lines[21].rsplitn(4, ',').last().unwrap());
    lines[21] = &gains;
    std::fs::write(sidecar_of(&damaged), lines.join("\n") + "\n").unwrap();
    let (code, text) = check_recording(&damaged);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "row 11 (frame {}): exposure_us 2500 in the sidecar, ExposureTime 2000:1000000 s \
             in the frame",
            rows[10].frame_number
        )),
        "{text}"
    );
    let mut lines: Vec<&str> = csv.lines().collect();
    lines[21] = &gains;
    std::fs::write(sidecar_of(&damaged), lines.join("\n") + "\n").unwrap();
    let (code, text) = check_recording(&damaged);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "row 21 (frame {}): gains 9 x 1 in the sidecar, ISO {} in the frame",
            rows[20].frame_number,
            auto_iso(shown[20])
        )),
        "{text}"
    );
}

/// A control the camera does not have does not keep the other cameras from recording:
/// that camera starts lost, and says why in the status (and `check` fails it).
#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_control_the_camera_lacks_leaves_it_lost_with_the_reason_and_the_others_record() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let cams = "  - name: syn\n    source: synthetic\n    resolution: {width: 64, height: 48}\n    fps: 30\n".to_string()
        + &camera("pi", "0", 320, 240, 30.0, 80)
        + "    controls: {Brightness: 0.5}\n";
    let mut h = start(&config(&cams), &yaml, &[]);
    h.wait_until("the camera is found lost", Duration::from_secs(20), |h| {
        h.status()["cameras"][1]["lost"] == true
    });
    let s = h.status();
    let why = s["cameras"][1]["last_error"].as_str().unwrap();
    assert!(
        why.contains("virtual-imx708 has no control Brightness; it has: AnalogueGain (1 to 16)"),
        "{s}"
    );
    h.wait_buffered(1.0);
    let r = h.record_for(1.0);
    assert_eq!(h.terminate().code(), Some(0), "{}", h.log_text());
    let syn: Vec<PathBuf> = h
        .mkv_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with("_syn.mkv"))
        .collect();
    assert_eq!(syn.len(), 1, "{r}");
    assert!(ffprobe_frame_count(&syn[0]) >= 30, "{r}");
}

fn hindsight_cmd(args: &[&str], cfg: &Path, yaml: &Path, path: Option<&str>) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hindsight"));
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .env("LIBCAMERA_VIRTUAL_CONFIG", yaml)
        .env("LIBCAMERA_LOG_LEVELS", "*:FATAL")
        .env("HINDSIGHT_LOG", "warn");
    if let Some(p) = path {
        c.env("PATH", p);
    }
    // Its output goes to a file, so that a command that does not end (a `run` that
    // should have been refused) is killed after 60 s instead of holding the suite.
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = c
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(out.path()).unwrap_or_default();
    match status {
        Some(st) => (st.success(), text),
        None => panic!("hindsight {args:?} still ran after 60 s:\n{text}"),
    }
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn devices_lists_the_camera_and_check_opens_it_or_says_why_not_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let out = Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .arg("devices")
        .env("LIBCAMERA_VIRTUAL_CONFIG", &yaml)
        .env("LIBCAMERA_LOG_LEVELS", "*:FATAL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("libcamera 0 `Virtual0`"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("virtual-imx708")
            && line.contains("320x240")
            && line.contains("10 to 60 fps"),
        "{line}"
    );
    // Under it, the controls a lab may set, with their ranges.
    assert!(
        text.contains(&format!(
            "{line}\n  its controls (cameras[].controls): AnalogueGain (1 to 16), \
             AnalogueGainMode (Auto, Manual), ExposureTime (1 to 100000), ExposureTimeMode \
             (Auto, Manual)\n"
        )),
        "{text}"
    );

    let check = |cams: &str, yaml: &Path| {
        let cfg = dir.path().join("check.yaml");
        std::fs::write(
            &cfg,
            config(cams)
                + "storage:\n  root: "
                + &dir.path().join("rec").display().to_string()
                + "\n",
        )
        .unwrap();
        let (_, text) = hindsight_cmd(&["check"], &cfg, yaml, None);
        let line = text
            .lines()
            .find(|l| l.contains("camera pi"))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string();
        // One line, in words: never a Rust Debug dump of an OS error.
        assert!(!line.contains("Os {") && !line.contains("code:"), "{line}");
        line
    };
    // It opens and delivers, at its rate, and says what a frame costs to encode.
    let l = check(&camera("pi", "0", 320, 240, 30.0, 80), &yaml);
    assert!(
        l.to_uppercase().starts_with("PASS") && l.contains("virtual-imx708"),
        "{l}"
    );
    let fps: f64 = l
        .split(" fps, ")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no measured rate in {l}"));
    assert!((27.0..33.0).contains(&fps), "{l}");
    assert!(l.contains(" ms of CPU a frame"), "{l}");
    // On encoding threads too.
    let l = check(
        &(camera("pi", "0", 320, 240, 30.0, 80) + "    encoders: 2\n"),
        &yaml,
    );
    assert!(
        l.to_uppercase().starts_with("PASS") && l.contains("encoded to JPEG on 2 threads"),
        "{l}"
    );
    assert!(l.contains(" ms of CPU a frame"), "{l}");
    // A size it does not offer: what it offers.
    let l = check(&camera("pi", "0", 640, 480, 30.0, 80), &yaml);
    assert!(
        l.to_uppercase().starts_with("FAIL")
            && l.contains("cannot give 640x480")
            && l.contains("320x240"),
        "{l}"
    );
    // A rate it does not offer: what it offers.
    let l = check(&camera("pi", "0", 320, 240, 100.0, 80), &yaml);
    assert!(
        l.to_uppercase().starts_with("FAIL")
            && l.contains("at 100 fps")
            && l.contains("10 to 60 fps"),
        "{l}"
    );
    // Controls: the camera's own, in range, or what it has.
    let l = check(
        &(camera("pi", "0", 320, 240, 30.0, 80) + "    controls: {AnalogueGain: 2.5}\n"),
        &yaml,
    );
    assert!(
        l.to_uppercase().starts_with("PASS")
            && l.contains("controls AnalogueGainMode=Manual AnalogueGain=2.5 (its frames report AnalogueGain 2.5)"),
        "{l}"
    );
    // A mode left on Auto: the camera exposes as it likes, and says so.
    let l = check(
        &(camera("pi", "0", 320, 240, 30.0, 80)
            + "    controls: {ExposureTimeMode: Auto, ExposureTime: 2000}\n"),
        &yaml,
    );
    assert!(
        l.to_uppercase().starts_with("WARN")
            && l.contains("its frames report ExposureTime 16666 (asked 2000)")
            && l.contains("a mode left on Auto"),
        "{l}"
    );
    for (controls, says) in [
        (
            "{AnalogueGain: 40}",
            "AnalogueGain 40 is outside what the camera allows (1 to 16)",
        ),
        (
            "{ExposureTimeMode: Fixed}",
            "ExposureTimeMode `Fixed` is not one of its values: Auto, Manual",
        ),
        (
            "{ExposureTime: 2.5}",
            "ExposureTime takes a whole number, not `2.5`",
        ),
        (
            "{AwbEnable: false}",
            "virtual-imx708 has no control AwbEnable; it has: AnalogueGain (1 to 16), \
             AnalogueGainMode (Auto, Manual), ExposureTime (1 to 100000), ExposureTimeMode \
             (Auto, Manual)",
        ),
    ] {
        let l = check(
            &(camera("pi", "0", 320, 240, 30.0, 80) + &format!("    controls: {controls}\n")),
            &yaml,
        );
        assert!(
            l.to_uppercase().starts_with("FAIL")
                && l.contains(says)
                && l.contains("`hindsight devices` lists"),
            "{l}"
        );
    }
    // A camera that is not there: which ones are.
    let l = check(&camera("pi", "3", 320, 240, 30.0, 80), &yaml);
    assert!(
        l.to_uppercase().starts_with("FAIL")
            && l.contains("no camera `3`")
            && l.contains("0 `Virtual0` (virtual-imx708)"),
        "{l}"
    );
    // No camera at all.
    let empty = dir.path().join("none.yaml");
    std::fs::write(&empty, "%YAML 1.1\n---\n").unwrap();
    let l = check(&camera("pi", "0", 320, 240, 30.0, 80), &empty);
    assert!(
        l.to_uppercase().starts_with("FAIL") && l.contains("libcamera finds no camera"),
        "{l}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn libcamera_keeps_to_warnings_unless_the_lab_set_its_levels() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    // libcamera's INFO lines, as it writes them: "[0:12.34] [123]  INFO Camera ...".
    let info = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("]  INFO "))
            .map(String::from)
            .collect()
    };
    let devices = |levels: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hindsight"));
        c.arg("devices").env("LIBCAMERA_VIRTUAL_CONFIG", &yaml);
        match levels {
            Some(l) => c.env("LIBCAMERA_LOG_LEVELS", l),
            None => c.env_remove("LIBCAMERA_LOG_LEVELS"),
        };
        let out = c.output().unwrap();
        assert!(out.status.success());
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // As a user types it: the listing, without libcamera's own INFO lines under it.
    let (listing, said) = devices(None);
    assert!(listing.contains("`Virtual0`"), "{listing}");
    assert!(info(&said).is_empty(), "{said}");
    // The lab's own levels are kept: libcamera says what they ask for.
    let (_, said) = devices(Some("*:INFO"));
    assert!(
        info(&said)
            .iter()
            .any(|l| l.contains("camera_manager.cpp") && l.contains("libcamera v")),
        "{said}"
    );

    // A recorder's log: its own lines, not libcamera's "configuring streams".
    let run = tempfile::tempdir().unwrap();
    let root = run.path().join("recordings");
    let mut h = Hindsight::start_with(
        run,
        root,
        &config(&camera("pi", "0", 320, 240, 30.0, 80)),
        |c| {
            c.env("LIBCAMERA_VIRTUAL_CONFIG", &yaml)
                .env_remove("LIBCAMERA_LOG_LEVELS");
        },
    );
    let mkv = record(&mut h, 1.0);
    assert!(ffprobe_frame_count(&mkv) >= 30);
    assert!(h.terminate().success());
    let log = h.log_text();
    assert!(log.contains("recording 1: writing"), "{log}");
    assert!(info(&log).is_empty(), "{log}");
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn the_same_camera_twice_in_one_configuration_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let cams =
        camera("pi", "0", 320, 240, 30.0, 80) + &camera("again", "Virtual0", 320, 240, 30.0, 80);
    let cfg = dir.path().join("twice.yaml");
    std::fs::write(
        &cfg,
        config(&cams) + "storage:\n  root: " + &dir.path().join("rec").display().to_string() + "\n",
    )
    .unwrap();
    let (ok, text) = hindsight_cmd(&["run"], &cfg, &yaml, None);
    assert!(!ok, "{text}");
    assert!(
        text.contains("camera again: virtual-imx708 is already open in this hindsight: two cameras in the configuration name the same device"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn the_imx296_crop_is_set_before_the_camera_is_configured_at_the_cropped_size_and_rate() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let gs = Virtual {
        id: "Virtual0",
        model: "imx296",
        width: 1456,
        height: 96,
        rates: (10, 536),
    };
    let yaml = virtual_cameras(dir.path(), &[gs]);
    // A media-ctl that knows an IMX296 on /dev/media0 and records what it is told.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.path().join("media-ctl.calls");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1 $2 $3\" = '-d /dev/media0 -p' ]; then\n  printf -- '- entity 20: imx296 10-001a (1 pad, 1 link, 0 routes)\\n             type V4L2 subdev subtype Sensor flags 0\\n\\tpad0: Source\\n\\t\\t[stream:0 fmt:SBGGR10_1X10/1456x1088]\\n'\nfi\nexit 0\n",
        calls.display()
    );
    let mc = bin.join("media-ctl");
    std::fs::write(&mc, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&mc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let set = "-d /dev/media0 --set-v4l2 'imx296 10-001a':0 [fmt:SBGGR10_1X10/1456x96 crop:(0,496)/1456x96]";

    // `imx296_crop: auto` (the default), as the old tool did without a flag: an IMX296 at
    // a rate its whole sensor cannot give gets the crop.
    let cam = camera("gs", "0", 1456, 96, 536.0, 80);
    let mut h = start(&config(&cam), &yaml, &[("PATH", &path)]);
    let mkv = record(&mut h, 1.0);
    let said = std::fs::read_to_string(&calls).unwrap();
    assert!(said.contains(set), "{said}");
    // The crop was set before libcamera configured the camera at that size and rate.
    let log = h.log_text();
    assert!(
        log.contains(
            "imx296_crop auto: imx296 asked for 536 fps, more than its whole sensor gives (60 fps)"
        ),
        "{log}"
    );
    let crop_at = log
        .find("IMX296 crop set")
        .unwrap_or_else(|| panic!("{log}"));
    let runs_at = log
        .find("imx296 runs 1456x96 YUV420 at 536 fps")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(crop_at < runs_at, "{log}");
    assert_eq!(ffprobe_video(&mkv), (1456, 96, "mjpeg".to_string()));
    let rows = read_sidecar(&mkv);
    let shown = shown(&mkv, 1456, 96);
    assert_sensor_times(&rows, &shown, period(536.0));
    assert!(h.terminate().success());

    // At a rate the whole sensor gives, `auto` leaves it whole (the full field of view,
    // scaled); `true` crops all the same, and `false` never does.
    for (key, fps, crops) in [
        ("", 30.0, false),
        ("    imx296_crop: true\n", 30.0, true),
        ("    imx296_crop: false\n", 536.0, false),
    ] {
        let _ = std::fs::remove_file(&calls);
        let cam = camera("gs", "0", 1456, 96, fps, 80) + key;
        let mut h = start(&config(&cam), &yaml, &[("PATH", &path)]);
        h.wait_until("the camera runs", Duration::from_secs(20), |h| {
            h.status()["cameras"][0]["model"]
                .as_str()
                .is_some_and(|m| m.starts_with("imx296, YUV420 encoded to JPEG"))
        });
        let said = std::fs::read_to_string(&calls).unwrap_or_default();
        assert_eq!(said.contains(set), crops, "{key:?} at {fps} fps: {said}");
        assert!(
            !h.log_text().contains("imx296_crop auto"),
            "{}",
            h.log_text()
        );
        assert!(h.terminate().success());
    }
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_camera_that_stops_delivering_is_opened_again_and_rejoins_the_recording() {
    // With controls: the camera opened again is given them again, and says so.
    let log = lost_and_back(Some(1), "    controls: {ExposureTime: 2000}\n");
    let opened = log
        .lines()
        .filter(|l| {
            l.contains("runs 320x240")
                && l.contains("controls ExposureTimeMode=Manual ExposureTime=2000 (its frames report ExposureTime 2000)")
        })
        .count();
    assert_eq!(
        opened, 2,
        "opened, then opened again, with its controls:\n{log}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_camera_on_encoding_threads_that_stops_delivering_is_opened_again_with_them() {
    lost_and_back(Some(3), "");
}

/// With `encoders: auto` (the default) the cost of a frame is measured again when the
/// lost camera is opened again, and the camera rejoins the recording as before.
#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn a_camera_on_automatic_encoders_that_stops_delivering_is_measured_and_opened_again() {
    let log = lost_and_back(None, "");
    let decided: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("encoders auto: 1 thread: "))
        .collect();
    assert_eq!(decided.len(), 2, "at start-up and when opened again: {log}");
}

/// A camera (encoded on `encoders` threads, or as `auto` decides; `more` of its
/// configuration) that stops delivering after 3 s is found lost, opened again and rejoins
/// the recording in progress. Returns the log.
fn lost_and_back(encoders: Option<u8>, more: &str) -> String {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let key = encoders.map_or(String::new(), |n| format!("    encoders: {n}\n"));
    // After 90 frames (3 s) the camera delivers nothing, as if its cable came loose.
    let mut h = start(
        &config(&(camera("pi", "0", 320, 240, 30.0, 80) + &key + more)),
        &yaml,
        &[("HINDSIGHT_TEST_LIBCAMERA_STALL_AFTER", "90")],
    );
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("the camera is lost", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == true
    });
    h.wait_until("the camera is back", Duration::from_secs(20), |h| {
        h.status()["cameras"][0]["lost"] == false
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();

    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "one recording, one file: {files:?}");
    let mkv = &files[0];
    let rows = read_sidecar(mkv);
    let shown = shown(mkv, 320, 240);
    let split = rows
        .windows(2)
        .position(|w| w[1].lsl_time - w[0].lsl_time > 1.0)
        .expect("a gap while the camera was away");
    let away = rows[split + 1].lsl_time - rows[split].lsl_time;
    assert!((5.0..10.0).contains(&away), "away {away:.1} s");
    // Before and after: consecutive sensor frames at their exposure times, each with its
    // own exposure and gains (the reopened camera's frames carry theirs too: 2000 µs
    // where the controls fix it, else the camera's own, half the frame period), and frame
    // numbers that go on from where they were.
    let exposure_us = if more.contains("ExposureTime: 2000") {
        2000
    } else {
        16_666
    };
    let (before, after) = (split + 1, rows.len() - split - 1);
    assert!(
        before >= 55 && after >= 30,
        "{before} frames before, {after} after"
    );
    for (r, s) in [
        (&rows[..=split], &shown[..=split]),
        (&rows[split + 1..], &shown[split + 1..]),
    ] {
        assert!(steps(s).iter().all(|&x| x == 1), "{:?}", steps(s));
        assert_sensor_times(r, s, period(30.0));
        assert_exposures(r, s, exposure_us);
    }
    assert!(rows[split + 1].frame_number > rows[split].frame_number);
    let events = std::fs::read_to_string(events_of(mkv)).unwrap();
    let kinds: Vec<&str> = events
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["start", "camera_lost", "camera_back", "stop"],
        "{events}"
    );
    h.log_text()
}

/// `encoders: auto`, the default, encodes on the capture thread where one core is plenty,
/// and on as many threads as the cost of a frame needs where it is not, up to the
/// machine's cores, measured when the camera opens and said in the log (a warning when
/// even every core may not be enough). The cost is that of a frame of noise, the dearest:
/// 1280x720 at 1000 fps needs several cores on any machine this runs on (4.2 on the
/// 2-core VM the project is built on), 320x240 at 30 fps a few percent of one.
#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn encoders_auto_take_the_threads_the_camera_needs_on_this_machine() {
    let _one_at_a_time = serial();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // What the log says was measured, and the threads it gave.
    let decided = |log: &str| -> (f64, u32) {
        let line = log
            .lines()
            .find(|l| l.contains("encoders auto: "))
            .unwrap_or_else(|| panic!("{log}"));
        let threads = line
            .split("encoders auto: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        let ms: f64 = line
            .split(" takes ")
            .nth(1)
            .and_then(|r| r.split(" ms").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        (ms, threads)
    };

    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let mut h = start(&config(&camera("pi", "0", 320, 240, 30.0, 80)), &yaml, &[]);
    let (ms, threads) = decided(&h.log_text());
    assert_eq!(threads, 1, "{}", h.log_text());
    assert!(ms * 30.0 / 1e3 < 0.75, "{ms} ms a frame of noise");
    assert_eq!(
        h.status()["cameras"][0]["model"],
        "virtual-imx708, YUV420 encoded to JPEG"
    );
    let mkv = record(&mut h, 1.0);
    assert_sensor_times(&read_sidecar(&mkv), &shown(&mkv, 320, 240), period(30.0));
    assert!(h.terminate().success());

    let dir = tempfile::tempdir().unwrap();
    let fast = Virtual {
        id: "Virtual0",
        model: "virtual-fast",
        width: 1280,
        height: 720,
        rates: (10, 1000),
    };
    let yaml = virtual_cameras_showing(dir.path(), &[fast], 8);
    let mut h = start(
        &config(&camera("fast", "0", 1280, 720, 1000.0, 80)),
        &yaml,
        &[],
    );
    let log = h.log_text();
    let (ms, threads) = decided(&log);
    let need = ms * 1000.0 / 1e3;
    let wanted = ((need / 0.75).ceil() as usize).clamp(1, 16).min(cores) as u32;
    assert_eq!(threads, wanted, "{need} cores needed, {cores} here: {log}");
    assert!(threads >= 2 || cores == 1, "{log}");
    assert_eq!(
        h.status()["cameras"][0]["model"],
        format!("virtual-fast, YUV420 encoded to JPEG on {threads} threads")
    );
    // Every core, and still more than 75% on each: said as a warning.
    if need / f64::from(threads) > 0.75 {
        assert!(
            log.contains(" WARN ")
                && log.contains("may lose frames; lower fps, resolution or quality"),
            "{log}"
        );
    }
    assert!(h.terminate().success());
}
