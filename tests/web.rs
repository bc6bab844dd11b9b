//! The web page's HTTP side against a running recorder (synthetic camera: frame numbers
//! in the pixels): the recordings list agrees with the files, downloads honour Range
//! byte for byte, the frame viewer returns the very JPEG stored in the MKV (checked
//! against mkvextract and by decoding the frame number from its pixels), on finished,
//! unfinished and repaired files; live views show changing frames, are bounded, and cost
//! no frame; bad ids, frame numbers and traversal attempts get a clear 404; a recording
//! being written is never deleted.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn get(h: &Hindsight, path: &str) -> reqwest::blocking::Response {
    client()
        .get(format!("http://{}{path}", h.api))
        .send()
        .unwrap()
}

fn recordings(h: &Hindsight) -> Vec<Value> {
    let r = get(h, "/api/recordings");
    assert_eq!(r.status(), 200);
    let j: Value = r.json().unwrap();
    j["recordings"].as_array().unwrap().clone()
}

fn frame_number_in(jpeg: &[u8]) -> Option<u64> {
    let img = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::GRAY).expect("a JPEG");
    hindsight::source::synthetic::decode_frame_number(&img.pixels, img.width, img.height)
}

/// Every video frame of `mkv` as stored, split from ffmpeg's copy of the track's packets
/// by the sidecar's sizes.
fn extracted_frames(mkv: &Path) -> Vec<Vec<u8>> {
    require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("video.raw");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mkv)
        .args(["-map", "0:v", "-c", "copy", "-f", "rawvideo"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let all = std::fs::read(&out).unwrap();
    let mut at = 0;
    let mut frames = Vec::new();
    for row in read_sidecar(mkv) {
        frames.push(all[at..at + row.bytes as usize].to_vec());
        at += row.bytes as usize;
    }
    assert_eq!(at, all.len(), "the sidecar's sizes add up to the track");
    frames
}

fn frame_url(id: &str, camera: &str, n: u64) -> String {
    format!("/api/recordings/{id}/frames/{camera}/{n}.jpg")
}

/// The id (stem) of a recording file.
fn id_of(mkv: &Path) -> String {
    let name = mkv.file_name().unwrap().to_str().unwrap();
    name.strip_suffix("_cam0.mkv").unwrap().to_string()
}

#[test]
fn recordings_are_listed_downloaded_viewed_frame_by_frame_and_deleted() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(160, 120, 30.0, 1.0));
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_millis(700));
    h.post("mark", json!({"text": "stimulus, on"}));
    std::thread::sleep(Duration::from_millis(700));

    // While recording: listed as open, and not deletable.
    let open = recordings(&h);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["open"], true);
    let id = open[0]["id"].as_str().unwrap().to_string();
    let refused = client()
        .delete(format!("http://{}/api/recordings/{id}", h.api))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 409);
    let said: Value = refused.json().unwrap();
    assert!(said["message"].as_str().unwrap().contains("being written"));
    h.post("stop", json!({}));
    h.wait_idle_files();
    // A second recording, by `start N`.
    h.post("start", json!({"seconds": 1}));
    h.wait_until("start N ends", Duration::from_secs(15), |h| {
        h.status()["state"] == "buffering" && h.mkv_files().len() == 2
    });
    h.wait_idle_files();

    let listed = recordings(&h);
    assert_eq!(listed.len(), 2);
    let files = h.mkv_files();
    let first_mkv = files.iter().find(|f| id_of(f) == id).unwrap().clone();
    // Newest first.
    assert_ne!(listed[0]["id"], id.as_str());
    let rec = listed.iter().find(|r| r["id"] == id.as_str()).unwrap();
    let rows = read_sidecar(&first_mkv);
    assert_eq!(rec["open"], false);
    let started = rec["started"].as_str().unwrap();
    assert!(
        id.ends_with(&started[11..].replace(':', "-")),
        "{started} for {id}"
    );
    let live = &h.status()["cameras"][0];
    let skipped = assert_nothing_lost(&rows, live);
    assert_eq!(rec["frames"], rows.len() as u64);
    assert_eq!(rec["missing_frames"], skipped);
    assert_eq!(rec["unfinished"], false);
    assert_eq!(rec["repaired"], false);
    assert!(rec["trigger"].as_str().unwrap().starts_with("api"), "{rec}");
    assert_eq!(rec["marks"][0]["text"], "stimulus, on");
    let cam = &rec["cameras"][0];
    assert_eq!(cam["camera"], "cam0");
    assert_eq!(cam["lost_while_recording"]["writer_queue_full"], 0, "{cam}");
    assert!(
        cam["lost_while_recording"]["source_gaps"].as_u64().unwrap()
            <= live["drops"]["source_gaps"].as_u64().unwrap(),
        "{cam}"
    );
    assert_eq!(cam["first_frame"], rows[0].frame_number);
    assert_eq!(cam["last_frame"], rows.last().unwrap().frame_number);
    let span = rows.last().unwrap().lsl_time - rows[0].lsl_time;
    assert!((cam["duration_s"].as_f64().unwrap() - span).abs() < 1e-6);
    let names: Vec<&str> = rec["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let dir = first_mkv.parent().unwrap();
    for f in rec["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let folder = match name.ends_with(".wav") {
            true => dir.parent().unwrap().join("audio"),
            false => dir.to_path_buf(),
        };
        let on_disk = std::fs::metadata(folder.join(name)).unwrap().len();
        assert_eq!(f["bytes"], on_disk, "{name}");
    }
    assert!(names.iter().any(|n| n.ends_with("_cam0.mkv")));
    assert!(names.iter().any(|n| n.ends_with(".frames.csv")));
    assert!(names.iter().any(|n| n.ends_with(".events.csv")));

    // Downloads: whole, a range, the last bytes.
    let mkv_name = first_mkv.file_name().unwrap().to_str().unwrap();
    let bytes = std::fs::read(&first_mkv).unwrap();
    let url = format!("http://{}/api/recordings/{id}/files/{mkv_name}", h.api);
    let whole = client().get(&url).send().unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().unwrap().as_ref(), &bytes[..]);
    let part = client()
        .get(&url)
        .header("Range", "bytes=1000-4999")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), &bytes[1000..5000]);
    let tail = client()
        .get(&url)
        .header("Range", "bytes=-100")
        .send()
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().unwrap().as_ref(), &bytes[bytes.len() - 100..]);
    let beyond = client()
        .get(&url)
        .header("Range", format!("bytes={}-", bytes.len() + 10))
        .send()
        .unwrap();
    assert_eq!(beyond.status(), 416);

    // The viewer: frame n is the stored JPEG of frame n, its pixels say n.
    let stored = extracted_frames(&first_mkv);
    for k in [0, rows.len() / 2, rows.len() - 1] {
        let n = rows[k].frame_number;
        let r = get(&h, &frame_url(&id, "cam0", n));
        assert_eq!(r.status(), 200);
        let hd = |k: &str| r.headers()[k].to_str().unwrap().to_string();
        assert_eq!(hd("x-frame-number"), n.to_string());
        assert_eq!(hd("x-frame-position"), k.to_string());
        let lsl: f64 = hd("x-lsl-time").parse().unwrap();
        assert!((lsl - rows[k].lsl_time).abs() < 1e-9);
        if k > 0 {
            assert_eq!(hd("x-prev-frame"), rows[k - 1].frame_number.to_string());
        }
        let jpeg = r.bytes().unwrap();
        assert_eq!(jpeg.as_ref(), &stored[k][..], "frame {n} as stored");
        assert_eq!(frame_number_in(&jpeg), Some(n), "the pixels of frame {n}");
    }
    // Scrubbing: the first frame at or after a number.
    let r = get(&h, &format!("{}?near=1", frame_url(&id, "cam0", 0)));
    assert_eq!(
        r.headers()["x-frame-number"],
        rows[0].frame_number.to_string().as_str()
    );

    // Bad input: 404 with a reason, nothing outside the recordings.
    for (path, says) in [
        ("/api/recordings/nope".to_string(), "no recording"),
        (
            frame_url(&id, "cam0", rows.last().unwrap().frame_number + 1000),
            "no frame number",
        ),
        (frame_url(&id, "cam9", rows[0].frame_number), "no camera"),
        (format!("/api/recordings/{id}/frames/cam0/abc"), "no frame"),
        (
            format!("/api/recordings/{id}/files/..%2F..%2Fconfig.yaml"),
            "has no file",
        ),
        (
            format!("/api/recordings/{id}/files/%2Fetc%2Fpasswd"),
            "has no file",
        ),
        (
            format!("/api/recordings/..%2F{id}/files/{mkv_name}"),
            "no recording",
        ),
        ("/api/cameras/nope/snapshot.jpg".to_string(), "no camera"),
    ] {
        let r = get(&h, &path);
        assert_eq!(r.status(), 404, "{path}");
        let j: Value = r.json().unwrap();
        assert!(j["message"].as_str().unwrap().contains(says), "{path}: {j}");
    }
    // A link planted among the recordings is neither listed nor served.
    let planted = dir.join(format!("{id}_evil.mkv"));
    std::os::unix::fs::symlink(h.dir.path().join("config.yaml"), &planted).unwrap();
    let r = get(
        &h,
        &format!(
            "/api/recordings/{id}/files/{}",
            planted.file_name().unwrap().to_str().unwrap()
        ),
    );
    assert_eq!(r.status(), 404);
    std::fs::remove_file(&planted).unwrap();

    // The quality report: on the page, and as a file from the command line.
    let report = get(&h, &format!("/api/recordings/{id}/report.html"));
    assert_eq!(report.status(), 200);
    let report = report.text().unwrap();
    assert!(report.contains("<svg") && report.contains("frame interval"));
    assert!(
        report.contains(&format!("{} frames", rows.len())),
        "the frame count"
    );
    assert!(report.contains("stimulus, on"), "the mark");
    let written = report_html(&first_mkv, h.dir.path());
    assert_eq!(
        written.matches("<svg").count(),
        2,
        "interval and histogram plots"
    );
    let refused = Command::new(BIN)
        .arg("report")
        .arg(h.dir.path().join("config.yaml"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is not a file of a hindsight recording")
    );

    // Delete: from another site refused; from the page, every file of it goes.
    let cross = client()
        .delete(format!("http://{}/api/recordings/{id}", h.api))
        .header("Origin", "http://evil.example")
        .send()
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(first_mkv.exists());
    let gone = client()
        .delete(format!("http://{}/api/recordings/{id}", h.api))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 200);
    assert!(!first_mkv.exists());
    assert!(!sidecar_of(&first_mkv).exists());
    let left = recordings(&h);
    assert_eq!(left.len(), 1);
    assert_ne!(left[0]["id"], id.as_str());
    // Deleting the last recording of a past day removes its emptied day folder; today's
    // stays (a recording may be creating it).
    let today = first_mkv.parent().unwrap().parent().unwrap().to_path_buf();
    let past = h.root.join("2020_01_01");
    std::fs::rename(&today, &past).unwrap();
    let last = left[0]["id"].as_str().unwrap().to_string();
    let gone = client()
        .delete(format!("http://{}/api/recordings/{last}", h.api))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 200);
    assert!(!past.exists(), "the emptied day folder is left");
    assert!(recordings(&h).is_empty());
    assert!(h.terminate().success());
}

/// A take long enough to go into several files, each with more rows than the viewer
/// reads at once (it keeps where every 1024th row of a sidecar starts, and reads a few
/// blocks of rows for each frame): every frame is found, stepping through all of them as
/// the viewer's arrows do, with its place in the whole take and its neighbours across
/// the files' boundaries.
#[test]
fn every_frame_of_a_take_in_several_files_is_found_with_its_neighbours() {
    let config = format!(
        "{}storage:\n  max_file_size: 6MiB\naudio:\n  enabled: false\n",
        synthetic_config(160, 120, 400.0, 2.0)
    );
    let mut h = Hindsight::start(&config);
    h.wait_buffered(2.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("three files", Duration::from_secs(60), |h| {
        h.mkv_files().len() >= 3
    });
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    let parts = h.mkv_files();
    let id = id_of(&parts[0]);
    let by_part: Vec<Vec<SidecarRow>> = parts.iter().map(|p| read_sidecar(p)).collect();
    assert!(
        by_part.iter().any(|rows| rows.len() > 1024),
        "{:?} rows",
        by_part.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let rows: Vec<&SidecarRow> = by_part.iter().flatten().collect();
    let client = client();
    let header =
        |r: &reqwest::blocking::Response, k: &str| r.headers()[k].to_str().unwrap().to_string();
    let number = |k: Option<&&SidecarRow>| k.map_or(String::new(), |r| r.frame_number.to_string());
    for (k, row) in rows.iter().enumerate() {
        let n = row.frame_number;
        let url = format!("http://{}{}", h.api, frame_url(&id, "cam0", n));
        let r = client.get(&url).send().unwrap();
        assert_eq!(r.status(), 200, "frame {n}");
        assert_eq!(header(&r, "x-frame-number"), n.to_string());
        assert_eq!(header(&r, "x-frame-position"), k.to_string(), "frame {n}");
        assert_eq!(header(&r, "x-frame-count"), rows.len().to_string());
        let prev = k.checked_sub(1).and_then(|p| rows.get(p));
        assert_eq!(header(&r, "x-prev-frame"), number(prev), "frame {n}");
        assert_eq!(
            header(&r, "x-next-frame"),
            number(rows.get(k + 1)),
            "frame {n}"
        );
        let lsl: f64 = header(&r, "x-lsl-time").parse().unwrap();
        assert!((lsl - row.lsl_time).abs() < 1e-9, "frame {n}");
        assert_eq!(frame_number_in(&r.bytes().unwrap()), Some(n), "frame {n}");
    }
    // Scrubbing between two files lands on the first frame of the next; past the end, on
    // the last frame.
    let first_of_second = by_part[1][0].frame_number;
    let between = by_part[0].last().unwrap().frame_number + 1;
    if between < first_of_second {
        let r = get(&h, &format!("{}?near=1", frame_url(&id, "cam0", between)));
        assert_eq!(header(&r, "x-frame-number"), first_of_second.to_string());
    }
    let last = rows.last().unwrap().frame_number;
    let r = get(&h, &format!("{}?near=1", frame_url(&id, "cam0", last + 50)));
    assert_eq!(header(&r, "x-frame-number"), last.to_string());
    assert_eq!(header(&r, "x-next-frame"), "");
    assert!(h.terminate().success());
}

/// The recording in progress, viewed while it grows: its newest frames are found as they
/// come (the viewer's notes of its sidecar are read on), and so is every frame of it
/// once it is stopped.
#[test]
fn the_recording_in_progress_is_viewed_as_it_grows() {
    let mut h = Hindsight::start(&synthetic_config(160, 120, 100.0, 1.0));
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let mkv = loop {
        if let Some(m) = h.mkv_files().pop() {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let id = id_of(&mkv);
    let mut counts = Vec::new();
    for look in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        // The newest frame its sidecar has a whole row of, and one from the start.
        let rows = read_sidecar(&mkv);
        for row in [&rows[0], rows.last().unwrap()] {
            let n = row.frame_number;
            let r = get(&h, &frame_url(&id, "cam0", n));
            assert_eq!(r.status(), 200, "look {look}, frame {n}");
            let count: usize = r.headers()["x-frame-count"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(count >= rows.len(), "look {look}: {count} < {}", rows.len());
            counts.push(count);
            assert_eq!(frame_number_in(&r.bytes().unwrap()), Some(n), "look {look}");
        }
    }
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]) && counts.last() > counts.first(),
        "{counts:?}"
    );
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    let rows = read_sidecar(&mkv);
    for (k, row) in rows
        .iter()
        .enumerate()
        .step_by(37)
        .chain([(rows.len() - 1, rows.last().unwrap())])
    {
        let r = get(&h, &frame_url(&id, "cam0", row.frame_number));
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-frame-position"], k.to_string().as_str());
        assert_eq!(
            r.headers()["x-frame-count"],
            rows.len().to_string().as_str()
        );
    }
    assert!(h.terminate().success());
}

/// A disk slow to take the recording's writes (an SD card writing back; here strace holds
/// each write of the video back, 300 ms, then 5 s). A batch's sidecar rows are written
/// just before its frames, so the newest row names a frame the file does not have yet: the
/// viewer shows it once it is written, and when that takes more than 2 s says so (503,
/// "not written to the file yet") and shows it when asked again. Not "cut by a crash".
#[test]
fn the_newest_frame_on_a_slow_disk_is_shown_once_it_is_written() {
    require_tool("strace");
    let config = format!(
        "audio:\n  enabled: false\n{}",
        synthetic_config(160, 120, 30.0, 1.0)
    );
    let mut h = Hindsight::start(&config);
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let mkv = std::path::PathBuf::from(r["files"][0].as_str().unwrap());
    let id = id_of(&mkv);
    let hold_writes = |us: u64| {
        strace_attached(
            &h,
            &[
                "-P".into(),
                mkv.clone().into(),
                "-e".into(),
                "trace=writev".into(),
                "-e".into(),
                format!("inject=writev:delay_enter={us}").into(),
            ],
        )
    };
    let let_go = |mut strace: std::process::Child| {
        // SAFETY: kill(2) on the strace this test started; it detaches and exits.
        unsafe { libc::kill(strace.id() as i32, libc::SIGTERM) };
        strace.wait().unwrap();
    };
    let newest = || read_sidecar(&mkv).last().unwrap().frame_number;
    let shown = |n: u64| {
        let r = get(&h, &frame_url(&id, "cam0", n));
        let code = r.status().as_u16();
        (code, r.bytes().unwrap())
    };

    // Each write held 300 ms: the newest row's frame is shown all the same.
    let strace = hold_writes(300_000);
    for look in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        let n = newest();
        let (code, body) = shown(n);
        assert_eq!(code, 200, "look {look}: {}", String::from_utf8_lossy(&body));
        assert_eq!(frame_number_in(&body), Some(n), "look {look}");
    }
    let_go(strace);

    // Held 5 s: asked in that time, the answer says the frame is not written yet; asked
    // again once it is, the frame.
    let strace = hold_writes(5_000_000);
    let (n, said) = (0..10)
        .find_map(|_| {
            let n = newest();
            let (code, body) = shown(n);
            (code == 503).then(|| (n, String::from_utf8_lossy(&body).into_owned()))
        })
        .expect("a frame not written yet");
    assert!(
        said.contains(&format!(
            "frame {n} is not written to the file yet (the disk is slow to take it): ask again"
        )),
        "{said}"
    );
    let started = Instant::now();
    loop {
        let (code, body) = shown(n);
        if code == 200 {
            assert_eq!(frame_number_in(&body), Some(n));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{code}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let_go(strace);
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    assert!(h.terminate().success());
}

#[test]
fn frames_of_unfinished_and_repaired_files_are_found() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(160, 120, 30.0, 1.0));
    h.wait_buffered(1.0);
    h.post("start", json!({}));
    std::thread::sleep(Duration::from_millis(2500));
    h.kill9();
    let mkv = h.mkv_files().pop().unwrap();
    let id = id_of(&mkv);
    // A second process serves the same root.
    let dir = tempfile::tempdir().unwrap();
    let h2 = Hindsight::start_in(dir, h.root.clone(), &synthetic_config(160, 120, 30.0, 1.0));
    let rows = read_sidecar(&mkv);
    let check = |h2: &Hindsight, unfinished: bool, repaired: bool| {
        let listed = recordings(h2);
        let rec = listed.iter().find(|r| r["id"] == id.as_str()).unwrap();
        assert_eq!(rec["unfinished"], unfinished, "{rec}");
        assert_eq!(rec["repaired"], repaired, "{rec}");
        for k in [0, rows.len() / 2, rows.len() - 1] {
            let n = rows[k].frame_number;
            let r = get(h2, &frame_url(&id, "cam0", n));
            assert_eq!(r.status(), 200, "frame {n}");
            assert_eq!(frame_number_in(&r.bytes().unwrap()), Some(n));
        }
    };
    check(&h2, true, false);
    // Its video and its WAV: a WAV a crash cut keeps the take unfinished.
    repair_ok(&h.root);
    check(&h2, false, true);
    let mut h2 = h2;
    assert!(h2.terminate().success());
}

/// POSTs the web page's Repair of recording `id`, with no body, as the page does.
fn repair_by_api(h: &Hindsight, id: &str) -> (u16, Value) {
    let r = client()
        .post(format!("http://{}/api/recordings/{id}/repair", h.api))
        .send()
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap())
}

/// The status's unfinished files, as `hindsight ctl status` prints them.
fn unfinished_in_status(h: &mut Hindsight) -> Vec<String> {
    let s = h.status();
    let list = s["unfinished_files"].as_array().unwrap();
    list.iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// Two recordings a crash cut (video and WAV each): the next process lists them in its
/// status and on the page as unfinished. The page's Repair finishes the first (the video
/// has its index, the WAV its sizes, sox reads it as long as the video), which leaves the
/// status at once and is listed repaired; a second Repair says there was nothing left to
/// do. `hindsight repair` run by hand finishes the second, which leaves the status within
/// seconds. A Repair of the recording being written is refused and changes nothing, and
/// that recording goes on.
#[test]
fn recordings_a_crash_cut_are_repaired_from_the_page_and_leave_the_status() {
    let _g = serial();
    let config =
        synthetic_config(160, 120, 30.0, 1.0) + "audio:\n  enabled: true\n  source: synthetic\n";
    let (mut takes, mut killed) = (Vec::new(), Vec::new());
    let mut h = Hindsight::start(&config);
    let root = h.root.clone();
    for _ in 0..2 {
        h.wait_buffered(1.0);
        let (code, r) = h.post("start", json!({}));
        assert_eq!(code, 200, "{r}");
        std::thread::sleep(Duration::from_millis(2500));
        let known: Vec<_> = takes
            .iter()
            .map(|(m, _): &(std::path::PathBuf, _)| m.clone())
            .collect();
        let mkv = h
            .mkv_files()
            .into_iter()
            .find(|m| !known.contains(m))
            .unwrap();
        h.kill9();
        let id = id_of(&mkv);
        let wav = wav_files(&root)
            .into_iter()
            .find(|w| w.file_name().unwrap().to_str().unwrap() == format!("{id}.wav"))
            .expect("the take's WAV");
        // Its header lags its data by up to 0.5 s: a kill right after an update leaves a
        // whole file. Samples after the update, as a kill a moment later leaves them.
        let (declared, on_disk) = wav_sizes(&wav);
        if declared == on_disk {
            let mut f = std::fs::OpenOptions::new().append(true).open(&wav).unwrap();
            std::io::Write::write_all(&mut f, &[0u8; 960]).unwrap();
        }
        takes.push((mkv, wav));
        let next = Hindsight::start_in(tempfile::tempdir().unwrap(), root.clone(), &config);
        // Kept: the first one's folder holds the recordings root.
        killed.push(std::mem::replace(&mut h, next));
    }
    let all: Vec<String> = takes
        .iter()
        .flat_map(|(m, w)| [m.display().to_string(), w.display().to_string()])
        .collect();
    let mut listed = unfinished_in_status(&mut h);
    listed.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(
        listed,
        want,
        "the status names both takes' video and WAV: {}",
        h.log_text()
    );
    let listed_as = |h: &Hindsight, id: &str| {
        let rec = recordings(h).into_iter().find(|r| r["id"] == id).unwrap();
        (
            rec["unfinished"].as_bool().unwrap(),
            rec["repaired"].as_bool().unwrap(),
        )
    };
    let (first, second) = (id_of(&takes[0].0), id_of(&takes[1].0));
    assert_eq!(listed_as(&h, &first), (true, false));
    assert_eq!(listed_as(&h, &second), (true, false));
    assert_eq!(mkvinfo_cue_points(&takes[0].0), 0, "unfinished: no index");

    // The recording being written: refused, nothing changed, it goes on.
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_until(
        "the new take's video is open",
        Duration::from_secs(10),
        |h| {
            h.status()["current_files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f.as_str().unwrap().ends_with("_cam0.mkv"))
        },
    );
    let files = h.status()["current_files"].clone();
    let mut live = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap());
    let live_id = id_of(Path::new(live.find(|f| f.ends_with(".mkv")).unwrap()));
    let (code, r) = repair_by_api(&h, &live_id);
    assert_eq!(code, 409, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("is being written"),
        "{r}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(h.status()["state"], "recording");
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_idle_files();
    assert_eq!(listed_as(&h, &live_id), (false, false), "stopped cleanly");

    // Another site's page cannot make the browser repair anything.
    let cross = client()
        .post(format!("http://{}/api/recordings/{first}/repair", h.api))
        .header("Origin", "http://evil.example")
        .send()
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(mkvinfo_cue_points(&takes[0].0), 0, "nothing was changed");
    // The page's Repair: the first take.
    let (code, r) = repair_by_api(&h, &first);
    assert_eq!(code, 200, "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{first}_cam0.mkv: repaired: ")),
        "{message}"
    );
    assert!(
        message.contains(&format!("{first}.wav: repaired: ")),
        "{message}"
    );
    assert!(
        mkvinfo_cue_points(&takes[0].0) > 0,
        "the video has its index"
    );
    let video_s = ffprobe_format(&takes[0].0)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    let audio_s = sox_seconds(&takes[0].1);
    assert!(
        (video_s - audio_s).abs() < 0.5,
        "video {video_s} s, WAV {audio_s} s"
    );
    let mut left = unfinished_in_status(&mut h);
    left.sort();
    let mut second_take = all[2..].to_vec();
    second_take.sort();
    assert_eq!(
        left, second_take,
        "the repaired take leaves the status at once"
    );
    assert_eq!(listed_as(&h, &first), (false, true));
    let (code, r) = repair_by_api(&h, &first);
    assert_eq!(code, 200, "{r}");
    let again = r["message"].as_str().unwrap();
    assert!(
        again.contains("_cam0.mkv: already complete") && again.contains(".wav: already complete"),
        "{again}"
    );
    let (code, r) = repair_by_api(&h, "rec_2020-01-01_00-00-00");
    assert_eq!(code, 404, "{r}");

    // By hand, on the rig: the second take.
    repair_ok(&takes[1].0);
    repair_ok(&takes[1].1);
    h.wait_until(
        "the status forgets the take repaired by hand",
        Duration::from_secs(20),
        |h| {
            h.status()["unfinished_files"]
                .as_array()
                .unwrap()
                .is_empty()
        },
    );
    assert_eq!(listed_as(&h, &second), (false, true));
    assert!(h.terminate().success());
}

/// Parts of a multipart/x-mixed-replace stream read for `for_how_long`: their frame numbers.
fn live_parts(api: &str, camera: &str, for_how_long: Duration) -> (u16, Vec<u64>) {
    use std::io::Read;
    let mut r = client()
        .get(format!("http://{api}/api/cameras/{camera}/live.mjpeg"))
        .send()
        .unwrap();
    let code = r.status().as_u16();
    if code != 200 {
        eprintln!("live view refused: {code} {}", r.text().unwrap_or_default());
        return (code, Vec::new());
    }
    let mut data = Vec::new();
    let until = Instant::now() + for_how_long;
    let mut buf = [0u8; 65536];
    while Instant::now() < until {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&data);
    let numbers = text
        .split("X-Frame-Number: ")
        .skip(1)
        .filter_map(|s| s.split("\r\n").next()?.parse().ok())
        .collect();
    (code, numbers)
}

#[test]
fn live_views_show_new_frames_are_bounded_and_cost_no_frame() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(400, 400, 100.0, 1.0));
    h.wait_buffered(1.0);
    // A snapshot is the newest frame: its pixels carry its number, which moves on.
    let snap = |h: &Hindsight| {
        let r = get(h, "/api/cameras/cam0/snapshot.jpg");
        assert_eq!(r.status(), 200);
        let said: u64 = r.headers()["x-frame-number"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let jpeg = r.bytes().unwrap();
        assert_eq!(frame_number_in(&jpeg), Some(said));
        said
    };
    let a = snap(&h);
    std::thread::sleep(Duration::from_millis(300));
    assert!(snap(&h) > a + 10);

    h.post("start", json!({}));
    // 20 viewers at once while recording at 100 fps.
    let api = h.api.clone();
    let viewers: Vec<_> = (0..20)
        .map(|_| {
            let api = api.clone();
            std::thread::spawn(move || live_parts(&api, "cam0", Duration::from_secs(3)))
        })
        .collect();
    let seen: Vec<(u16, Vec<u64>)> = viewers.into_iter().map(|v| v.join().unwrap()).collect();
    h.post("stop", json!({}));
    h.wait_idle_files();
    for (code, numbers) in &seen {
        assert_eq!(*code, 200);
        // ≤ 10 frames/s by default (3 s: 31, and one the last read may catch), new
        // frames, in order.
        assert!(
            numbers.len() >= 10 && numbers.len() <= 32,
            "{} parts",
            numbers.len()
        );
        assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    }
    let rows = read_sidecar(&h.mkv_files()[0]);
    assert_nothing_lost(&rows, &h.status()["cameras"][0]);

    // Bounded: one viewer more than the slots is told so (503), not queued. (A viewer that
    // has gone holds its slot until a write finds its connection closed: a frame or two.)
    std::thread::sleep(Duration::from_millis(1500));
    let api = h.api.clone();
    let crowd: Vec<_> = (0..33)
        .map(|_| {
            let api = api.clone();
            std::thread::spawn(move || live_parts(&api, "cam0", Duration::from_secs(2)).0)
        })
        .collect();
    let mut codes: Vec<u16> = crowd.into_iter().map(|t| t.join().unwrap()).collect();
    codes.sort();
    // (A viewer that has just gone may hold its slot until its next frame is due.)
    let served = codes.iter().filter(|&&c| c == 200).count();
    assert!((30..=32).contains(&served), "{codes:?}");
    assert_eq!(
        served + codes.iter().filter(|&&c| c == 503).count(),
        33,
        "{codes:?}"
    );
    // Once they have gone, a viewer gets frames again.
    std::thread::sleep(Duration::from_millis(500));
    let (code, numbers) = live_parts(&h.api, "cam0", Duration::from_secs(1));
    assert_eq!(code, 200);
    assert!(!numbers.is_empty());
    let bad = get(&h, "/api/cameras/cam0/live.mjpeg?fps=500");
    assert_eq!(bad.status(), 400);
    assert!(h.terminate().success());
}

/// A recorder (synthetic camera) whose API needs `token`.
fn with_token(token: &str) -> Hindsight {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let config = synthetic_config(160, 120, 30.0, 1.0) + "api:\n  token_env: HS_WEB_TOKEN\n";
    Hindsight::start_with(dir, root, &config, |c| {
        c.env("HS_WEB_TOKEN", token);
    })
}

#[test]
fn with_a_token_every_request_needs_it_and_the_login_form_sets_a_strict_cookie() {
    let _g = serial();
    let mut h = with_token("s3cret; with=odd chars");
    // As reached from elsewhere: another host name.
    let ask = |path: &str, cookie: Option<&str>| {
        let no_redirects = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut req = no_redirects
            .get(format!("http://{}{path}", h.api))
            .header("Host", "rig.example:8787");
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        req.send().unwrap()
    };
    for path in [
        "/api/status",
        "/api/recordings",
        "/api/cameras/cam0/snapshot.jpg",
        "/api/cameras/cam0/live.mjpeg",
        "/api/recordings/x/frames/cam0/1.jpg",
    ] {
        assert_eq!(ask(path, None).status(), 401, "{path}");
        assert_eq!(
            ask(path, Some("hindsight_token=wrong")).status(),
            401,
            "{path}"
        );
    }
    // The page sends a browser to the login form.
    let page = ask("/", None);
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login");
    assert_eq!(ask("/login", None).status(), 200);
    let form = |token: &str| {
        reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("http://{}/login", h.api))
            .form(&[("token", token)])
            .send()
            .unwrap()
    };
    assert_eq!(form("guess").status(), 401);
    let ok = form("s3cret; with=odd chars");
    assert_eq!(ok.status(), 303);
    let set = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(ask("/", Some(&cookie)).status(), 200);
    assert_eq!(ask("/api/recordings", Some(&cookie)).status(), 200);
    // The header works as before.
    let bearer = client()
        .get(format!("http://{}/api/status", h.api))
        .header("Authorization", "Bearer s3cret; with=odd chars")
        .send()
        .unwrap();
    assert_eq!(bearer.status(), 200);
    // State changes are never made by GET.
    let r = ask("/api/start", Some(&cookie));
    assert_eq!(r.status(), 405);
    let st: Value = client()
        .get(format!("http://{}/api/status", h.api))
        .header("Authorization", "Bearer s3cret; with=odd chars")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_ne!(st["state"], "recording");
    assert!(h.terminate().success());
}

#[test]
fn wrong_tokens_from_one_address_are_stopped_and_nothing_recorded_is_lost() {
    let _g = serial();
    let mut h = with_token("right-token");
    // Two clients on this machine, from two loopback addresses.
    let from = |ip: &str| {
        reqwest::blocking::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    };
    let (guesser, user) = (from("127.0.0.1"), from("127.0.0.2"));
    let api = h.api.clone();
    let ask = |c: &reqwest::blocking::Client, method: &str, path: &str, token: &str| {
        let url = format!("http://{api}{path}");
        let req = match method {
            "POST" => c.post(url).json(&json!({})),
            _ => c.get(url),
        };
        req.header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap()
    };
    let r = ask(&user, "POST", "/api/start", "right-token");
    assert_eq!(r.status(), 200);
    h.wait_until("recording", Duration::from_secs(20), |h| {
        h.mkv_files().len() == 1
    });
    // Asking without a token is not a guess: as often as a script likes.
    for _ in 0..15 {
        let r = guesser
            .get(format!("http://{api}/api/status"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // A page still polling with the cookie of a token since changed: one wrong token, sent
    // again and again, is one guess; its user can still log in from there.
    for _ in 0..15 {
        let r = guesser
            .get(format!("http://{api}/api/status"))
            .header("Cookie", "hindsight_token=old-token")
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let login = guesser
        .post(format!("http://{api}/login"))
        .form(&[("token", "right-token")])
        .send()
        .unwrap();
    assert_eq!(login.status(), 303);
    // Nine more different wrong tokens make ten.
    for i in 0..9 {
        let r = ask(&guesser, "GET", "/api/status", &format!("guess-{i}"));
        assert_eq!(r.status(), 401, "guess {i}");
    }
    // The next request is refused whatever it says, the right token included, with how long.
    let r = ask(&guesser, "GET", "/api/status", "right-token");
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&wait), "{wait}");
    let body: Value = r.json().unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too many wrong tokens from this address"),
        "{body}"
    );
    let login = guesser
        .post(format!("http://{api}/login"))
        .form(&[("token", "right-token")])
        .send()
        .unwrap();
    assert_eq!(login.status(), 429);
    // Another address is served, and the recording went on throughout.
    let st: Value = ask(&user, "GET", "/api/status", "right-token")
        .json()
        .unwrap();
    assert_eq!(st["state"], "recording");
    let before = st["cameras"][0]["frames_captured"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let r = ask(&user, "POST", "/api/stop", "right-token");
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    let mut st = Value::Null;
    while t.elapsed() < Duration::from_secs(30) {
        st = ask(&user, "GET", "/api/status", "right-token")
            .json()
            .unwrap();
        if st["current_files"].as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mkv = h.mkv_files().pop().unwrap();
    let rows = read_sidecar(&mkv);
    assert_eq!(ffprobe_frame_count(&mkv), rows.len() as u64);
    assert!(rows.len() as u64 >= before, "{} < {before}", rows.len());
    // Consecutive frame numbers: nothing was lost while the guesses were refused.
    assert_nothing_lost(&rows, &st["cameras"][0]);
    assert!(h.terminate().success());
}
