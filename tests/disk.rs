//! The disk guard on a real, tiny filesystem, and retention on real recordings.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::ntfy::Ntfy;
use common::*;
use serde_json::json;

/// Checks that `mkv` holds exactly the frames its sidecar lists (ffprobe) and that
/// mkvmerge reads it without a complaint; returns the sidecar's rows.
fn whole(mkv: &Path) -> Vec<SidecarRow> {
    let rows = read_sidecar(mkv);
    assert!(!rows.is_empty());
    assert_eq!(
        ffprobe_frame_count(mkv),
        rows.len() as u64,
        "{}",
        mkv.display()
    );
    mkvmerge_clean(mkv);
    rows
}

/// Checks that `mkv` is finished and playable; returns its frames. Frames missing inside
/// it must be frames the camera never delivered (`source_gaps` of `status`), none lost
/// on the way to the file.
fn check_finished(mkv: &Path, status: &serde_json::Value) -> usize {
    let rows = whole(mkv);
    assert!(mkvinfo_cue_points(mkv) > 0, "a finished file has Cues");
    let missing: u64 = rows
        .windows(2)
        .map(|w| w[1].frame_number - w[0].frame_number - 1)
        .sum();
    let gaps = status["cameras"][0]["drops"]["source_gaps"]
        .as_u64()
        .unwrap();
    assert!(
        missing <= gaps,
        "{missing} frames missing, the camera skipped {gaps}"
    );
    rows.len()
}

#[test]
fn a_filling_disk_stops_the_recording_cleanly_and_buffering_goes_on() {
    let _g = serial();
    // The scientist's phone follows the reply topic.
    let ntfy = Ntfy::start(false);
    // ~3 MB/s of video onto a 48 MiB filesystem that must keep 28 MiB free.
    let config = format!(
        "storage:\n  min_free: 28MiB\nbuffer:\n  duration: 3\n  max_bytes: 64MiB\n\
         cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 640, height: 480}}\n    fps: 60\n    quality: 95\n\
         audio:\n  enabled: false\n\
         trigger:\n  ntfy:\n    enabled: true\n    server: {}\n    topic: rig-disk\n    reply_topic: rig-disk-log\n",
        ntfy.url()
    );
    let mut h = start_on_tiny_disk(48, &config);
    h.wait_buffered(2.9);
    let s = h.status();
    assert!(s["disk"]["free_bytes"].as_u64().unwrap() > 40 << 20, "{s}");
    assert_eq!(s["disk"]["min_free_bytes"], 28u64 << 20);
    assert_eq!(s["disk"]["guard"], json!(null));

    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let file = r["files"][0].as_str().unwrap().to_string();
    h.wait_until(
        "the recording is written with a rate",
        Duration::from_secs(10),
        |h| {
            let d = &h.status()["disk"];
            d["write_rate_bytes_per_s"].as_f64().unwrap() > 100_000.0
                && d["seconds_left"].is_number()
        },
    );
    // The guard stops it by itself, before the disk is full.
    h.wait_until(
        "the disk guard stops the recording",
        Duration::from_secs(60),
        |h| h.status()["state"] == "buffering",
    );
    h.wait_idle_files();
    let s = h.status();
    let guard = s["disk"]["guard"].as_str().unwrap_or_default();
    assert!(
        guard.contains("disk nearly full") && guard.contains("storage.min_free"),
        "{s}"
    );
    assert!(
        s["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("stopped recording 1")),
        "{s}"
    );
    assert_eq!(s["last_files"][0]["error"], json!(null), "{s}");
    assert!(
        s["disk"]["free_bytes"].as_u64().unwrap() > 10 << 20,
        "never filled: {s}"
    );
    let mkv = inside(&h, &file);
    let frames = check_finished(&mkv, &s);
    assert!(frames > 200, "{frames} frames before the guard stopped it");
    let events = std::fs::read_to_string(events_of(&mkv)).unwrap();
    assert!(events.contains("disk-guard"), "{events}");
    // The phone hears why.
    h.wait_until("the reply says why", Duration::from_secs(10), |_| {
        ntfy.messages("rig-disk-log", None)
            .iter()
            .any(|m| m.starts_with("recording stopped: disk nearly full"))
    });

    // New recordings are refused while the disk is this full, and buffering goes on.
    let captured = h.status()["cameras"][0]["frames_captured"]
        .as_u64()
        .unwrap();
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 400, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("disk nearly full"),
        "{r}"
    );
    let (code, r) = h.post("clip", json!({"seconds": 1}));
    assert_eq!(code, 400, "{r}");
    std::thread::sleep(Duration::from_millis(500));
    let s = h.status();
    assert_eq!(s["state"], "buffering");
    assert!(s["cameras"][0]["frames_captured"].as_u64().unwrap() > captured + 20);
    assert!(s["cameras"][0]["buffered_seconds"].as_f64().unwrap() > 2.9);

    // Room again (the scientist moved the file away): recording works again, and the
    // phone hears that it can.
    std::fs::remove_file(&mkv).unwrap();
    h.wait_until("the guard lifts", Duration::from_secs(10), |h| {
        h.status()["disk"]["guard"].is_null()
    });
    h.wait_until(
        "the reply says there is room",
        Duration::from_secs(10),
        |_| {
            ntfy.messages("rig-disk-log", None)
                .iter()
                .any(|m| m.starts_with("disk: ") && m.ends_with(" again; recordings can start"))
        },
    );
    let (code, r) = h.post("start", json!({"seconds": 1}));
    assert_eq!(code, 200, "{r}");
    let second = inside(&h, r["files"][0].as_str().unwrap());
    h.wait_until("the second recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let s = h.status();
    let frames = check_finished(&second, &s);
    assert!(frames >= 200, "{frames}: 3 s buffered + 1 s live at 60 fps");
    assert!(h.terminate().success());
}

/// Every file under `dir` (recursively), as the recorder sees them.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// With the disk guard off, a start on a disk that is already full is answered
/// "failed" with the reason, names no file and leaves no empty file behind; once there is
/// room, recording works again. (Once it left 0-byte MKV, CSV and WAV files and said
/// "done".)
#[test]
fn a_start_on_a_full_disk_without_the_guard_fails_clearly_and_leaves_nothing() {
    let _g = serial();
    let config = "storage:\n  min_free: null\nbuffer:\n  duration: 2\n  max_bytes: 16MiB\n\
         cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {width: 320, height: 240}\n    fps: 30\n\
         audio:\n  enabled: true\n  source: synthetic\n";
    let mut h = start_on_tiny_disk(16, config);
    h.wait_buffered(1.9);
    // Something else fills the disk.
    let filler = inside(&h, &format!("{}/filler", h.root.display()));
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![7u8; 1 << 20];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);
    let recordings = inside(&h, &h.root.display().to_string());
    let before = files_under(&recordings);

    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 500, "{r}");
    assert_eq!(r["outcome"], "failed", "{r}");
    assert_eq!(r["state"], "buffering", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("No space left"),
        "{r}"
    );
    assert_eq!(r["files"], json!([]), "{r}");
    // Said as failed in the status too.
    let s = h.status();
    assert_eq!(s["last_command"]["outcome"], "failed", "{s}");
    assert!(
        s["last_command"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no file was made: camera cam0: writing "),
        "{s}"
    );
    assert!(
        h.log_text().contains("recording 1: no file was made"),
        "{}",
        h.log_text()
    );
    h.wait_until("back to buffering", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    std::thread::sleep(Duration::from_secs(1));
    let after = files_under(&recordings);
    let new: Vec<&PathBuf> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(new.is_empty(), "files left behind: {new:?}");
    let s = h.status();
    assert!(s["warnings"].to_string().contains("No space left"), "{s}");

    // Room again: the next start records.
    std::fs::remove_file(&filler).unwrap();
    let (code, r) = h.post("start", json!({"seconds": 0.5}));
    assert_eq!(code, 200, "{r}");
    let mkv = inside(&h, r["files"][0].as_str().unwrap());
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    check_finished(&mkv, &h.status());
    assert!(h.terminate().success());
}

/// The recordings disk is unmounted (unplugged, or a USB disk ejected) while hindsight
/// runs. Starts are refused with why, and nothing is made on the disk below, where the
/// files would fill the system disk and lie hidden under the recordings disk once it is
/// mounted again; not even when a root appears there. Buffering goes on, and once the
/// disk is back the next start records, with its whole pre-trigger and its WAV.
#[test]
fn a_recordings_disk_that_goes_away_is_not_replaced_by_the_disk_below() {
    let _g = serial();
    require_tool("nsenter");
    // The scientist's phone follows the reply topic.
    let ntfy = Ntfy::start(false);
    let config = format!(
        "storage:\n  min_free: 1MiB\nbuffer:\n  duration: 3\n  max_bytes: 16MiB\n\
         cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: 30\n\
         audio:\n  enabled: true\n  source: synthetic\n\
         trigger:\n  ntfy:\n    enabled: true\n    server: {}\n    topic: rig-gone\n    reply_topic: rig-gone-log\n",
        ntfy.url()
    );
    let phone_hears = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let heard = ntfy.messages("rig-gone-log", None);
            if heard.iter().any(|m| m.contains(what)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the reply topic never said {what:?}: {heard:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mut h = start_on_tiny_disk(32, &config);
    let root = h.root.display().to_string();
    let mount = h.root.parent().unwrap().display().to_string();
    h.wait_buffered(2.9);
    let (code, r) = h.post("start", json!({"seconds": 0.5}));
    assert_eq!(code, 200, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("recording 1 started"),
        "{r}"
    );
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let log = h.log_text();
    assert!(
        log.contains(&format!(
            "recordings root {root} on the filesystem mounted at {mount}"
        )),
        "{log}"
    );

    // The disk goes.
    in_its_namespace(&h, &["umount", "--lazy", &mount]);
    let below = inside(&h, &root);
    for (command, body) in [("start", json!({})), ("clip", json!({"seconds": 2}))] {
        let (code, r) = h.post(command, body);
        assert_eq!(code, 400, "{command}: {r}");
        assert_eq!(r["outcome"], "rejected", "{r}");
        assert_eq!(
            r["message"],
            format!(
                "recordings root {root} is gone with its disk ({mount}): not recording until \
                 that disk is mounted again (hindsight does not make the root on the disk below)"
            ),
            "{r}"
        );
    }
    h.wait_until(
        "the status says the disk is gone",
        Duration::from_secs(10),
        |h| {
            let s = h.status();
            s["warnings"].to_string().contains("is gone with its disk")
                && s["disk"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("is gone"))
        },
    );
    assert_eq!(
        h.status()["disk"]["free_bytes"],
        0,
        "no other disk's free space"
    );
    // The phone hears it when it happens, not only when the next start is refused.
    phone_hears(&format!(
        "recordings root {root} is gone with its disk ({mount})"
    ));
    // Nor did the disk thread (the numbers file, which would: `numbers` unit test).
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !below.exists(),
        "{} was made on the disk below",
        below.display()
    );

    // A root made on the disk below (by hand, or by another program) is not recorded to.
    std::fs::create_dir(&below).unwrap();
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 400, "{r}");
    let why = r["message"].as_str().unwrap();
    assert!(
        why.starts_with(&format!("recordings root {root} is on the disk at "))
            && why.contains(&format!(
                "not on the one at {mount} that hindsight started with"
            )),
        "{r}"
    );
    assert!(files_under(&below).is_empty(), "{:?}", files_under(&below));
    std::fs::remove_dir(&below).unwrap();
    let s = h.status();
    assert_eq!(s["state"], "buffering", "{s}");

    // The disk comes back (mounted again, with its folder): the next start records.
    in_its_namespace(
        &h,
        &[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=32m",
            "hindsight-test",
            &mount,
        ],
    );
    in_its_namespace(&h, &["mkdir", &root]);
    h.wait_until("the disk is back", Duration::from_secs(10), |h| {
        h.status()["disk"]["error"].is_null()
    });
    let back =
        format!("recordings root {root} is back on its disk ({mount}): recordings can start");
    assert!(h.log_text().contains(&back));
    phone_hears(&back);
    // The refused starts made no recording, and the buffer was kept whole meanwhile.
    record_a_moment(&mut h, "recording 2 started (3.0 s before trigger)");
    let wavs: Vec<PathBuf> = files_under(&inside(&h, &root))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    assert_eq!(wavs.len(), 1, "{wavs:?}");
    assert!(
        std::fs::metadata(&wavs[0]).unwrap().len() > 100_000,
        "{wavs:?}"
    );

    // The root deleted (by hand) on a disk that is still there: made again there.
    in_its_namespace(&h, &["rm", "-rf", &root]);
    record_a_moment(&mut h, "recording 3 started");
    assert!(h.status()["disk"]["error"].is_null());
    assert!(h.terminate().success());
}

/// `start 0.5`, answered with `said`, makes a finished file of at least 100 frames (the
/// 3 s buffer at 30 fps, and the half second).
fn record_a_moment(h: &mut Hindsight, said: &str) {
    let (code, r) = h.post("start", json!({"seconds": 0.5}));
    assert_eq!(code, 200, "{r}");
    assert!(r["message"].as_str().unwrap().starts_with(said), "{r}");
    let mkv = inside(h, r["files"][0].as_str().unwrap());
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    assert!(check_finished(&mkv, &h.status()) >= 100);
}

/// A disk already below the guard when hindsight starts: the status and the phone say so
/// at once.
#[test]
fn a_guard_that_trips_at_start_up_is_a_warning() {
    let _g = serial();
    let ntfy = Ntfy::start(false);
    let config = format!(
        "storage:\n  min_free: 64MiB\nbuffer:\n  duration: 1\n  max_bytes: 8MiB\n\
         cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: 30\n\
         audio:\n  enabled: false\n\
         trigger:\n  ntfy:\n    enabled: true\n    server: {}\n    topic: rig-low\n    reply_topic: rig-low-log\n",
        ntfy.url()
    );
    let mut h = start_on_tiny_disk(16, &config);
    h.wait_until(
        "the guard is in the warnings",
        Duration::from_secs(10),
        |h| {
            h.status()["warnings"]
                .to_string()
                .contains("disk nearly full")
        },
    );
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 400, "{r}");
    // The phone hears it before anyone tries to record.
    h.wait_until("the reply topic says so", Duration::from_secs(10), |_| {
        ntfy.messages("rig-low-log", None).iter().any(|m| {
            m.starts_with("disk nearly full: ")
                && m.ends_with("recordings and clips are refused until there is room")
        })
    });
    assert!(h.terminate().success());
}

/// Makes a recording's files look `days` old.
fn age_files(files: &[PathBuf], days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * 86_400);
    for f in files {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

fn files_of(mkv: &Path) -> Vec<PathBuf> {
    vec![mkv.to_path_buf(), sidecar_of(mkv), events_of(mkv)]
}

/// Two clips of `seconds` (a buffer of 2 s or more) made by a hindsight under `root` that
/// then exits; it (which holds `dir`, where `root` may be) and their MKVs, the older first.
fn two_clips(
    dir: tempfile::TempDir,
    root: &Path,
    config: &str,
    seconds: f64,
) -> (Hindsight, Vec<PathBuf>) {
    let mut h = Hindsight::start_in(dir, root.to_path_buf(), config);
    h.wait_buffered(1.9);
    for _ in 0..2 {
        let (code, r) = h.post("clip", json!({ "seconds": seconds }));
        assert_eq!(code, 200, "{r}");
        h.wait_idle_files();
        std::thread::sleep(Duration::from_millis(1100)); // another stem (names carry seconds)
    }
    assert!(h.terminate().success());
    let mkvs = mkv_files(root);
    assert_eq!(mkvs.len(), 2, "{mkvs:?}");
    (h, mkvs)
}

#[test]
fn retention_deletes_old_recordings_whole_and_nothing_else() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let config =
        synthetic_config(160, 120, 50.0, 2.0) + "audio:\n  enabled: true\n  source: synthetic\n";
    let (_made_them, mkvs) = two_clips(dir, &root, &config, 1.0);
    let (old, new) = (&mkvs[0], &mkvs[1]);
    let day = old.parent().unwrap().parent().unwrap().to_path_buf();
    let old_wav = std::fs::read_dir(day.join("audio"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .min()
        .unwrap();
    let mut old_files = files_of(old);
    old_files.push(old_wav.clone());
    age_files(&old_files, 40);
    // Someone's notes beside the videos, just as old: not a recording, never deleted.
    let notes = old.parent().unwrap().join("notes.txt");
    std::fs::write(&notes, "animal 3 moved at 10:02").unwrap();
    age_files(std::slice::from_ref(&notes), 40);

    let dir = tempfile::tempdir().unwrap();
    let config = config + "storage:\n  retention:\n    max_age_days: 30\n";
    let mut h = Hindsight::start_in(dir, root.clone(), &config);
    h.wait_until("retention has run", Duration::from_secs(20), |h| {
        h.status()["disk"]["retention_last"].is_string()
    });
    let s = h.status();
    let said = s["disk"]["retention_last"].as_str().unwrap();
    assert!(said.starts_with("deleted 1 recording "), "{said}");
    for f in &old_files {
        assert!(!f.exists(), "{} should be deleted", f.display());
    }
    for f in files_of(new) {
        assert!(f.exists(), "{} must stay", f.display());
    }
    assert!(notes.exists(), "notes are not a recording");
    assert!(
        h.log_text().contains("retention: deleted recording"),
        "{}",
        h.log_text()
    );
    assert!(h.terminate().success());
}

/// The bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

/// A rig whose retention keeps a total deletes the oldest recording soon after the
/// recording that took the total over it, not at its next 10-minute pass (by which time
/// a filling disk may have stopped a recording); a total the disk cannot hold is said at
/// start-up.
#[test]
fn retention_keeps_its_total_soon_after_a_recording() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    // (Retention's total is at least 1 MiB: frames of 20-30 kB.)
    let config = synthetic_config(640, 480, 50.0, 2.0) + "audio:\n  enabled: false\n";
    // Two recordings of 2 s, made two days ago.
    let (_made_them, old) = two_clips(dir, &root, &config, 2.0);
    for mkv in &old {
        age_files(&files_of(mkv), 2);
    }
    let total = bytes_under(&root);

    // A total that holds those two, but not them and another.
    let dir = tempfile::tempdir().unwrap();
    let with_total = format!(
        "{config}storage:\n  retention:\n    max_total: {}\n",
        total + 1024
    );
    let mut h = Hindsight::start_in(dir, root.clone(), &with_total);
    h.wait_buffered(1.9);
    std::thread::sleep(Duration::from_secs(1)); // past the first pass (2 s after start)
    assert!(old.iter().all(|f| f.exists()), "the total held them");
    assert_eq!(h.status()["disk"]["retention_last"], json!(null));
    let (code, r) = h.post("clip", json!({"seconds": 1}));
    assert_eq!(code, 200, "{r}");
    let new = PathBuf::from(r["files"][0].as_str().unwrap());
    h.wait_idle_files();
    let ended = std::time::Instant::now();
    h.wait_until(
        "retention deletes the oldest recording",
        Duration::from_secs(20),
        |h| h.status()["disk"]["retention_last"].is_string(),
    );
    eprintln!(
        "retention deleted {:.1} s after the recording ended",
        ended.elapsed().as_secs_f64()
    );
    let said = h.status()["disk"]["retention_last"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(said.starts_with("deleted 1 recording "), "{said}");
    for f in files_of(&old[0]) {
        assert!(!f.exists(), "{} should be deleted", f.display());
    }
    for f in files_of(&old[1]).into_iter().chain(files_of(&new)) {
        assert!(f.exists(), "{} must stay", f.display());
    }
    assert!(bytes_under(&root) <= total + 1024);
    assert!(h.terminate().success());

    // A total larger than the disk can hold: said at start-up, where the page shows it.
    let dir = tempfile::tempdir().unwrap();
    let too_much = format!("{config}storage:\n  retention:\n    max_total: 100000GiB\n");
    let mut h = Hindsight::start_in(dir, root.clone(), &too_much);
    h.wait_until("the warning", Duration::from_secs(10), |h| {
        h.status()["warnings"]
            .to_string()
            .contains("more than this disk can hold")
    });
    assert!(h.terminate().success());
}

/// A recording's MKVs under `root`, part 1 first, by recording (stem).
fn parts_by_recording(root: &Path) -> Vec<Vec<PathBuf>> {
    let mut by: std::collections::BTreeMap<String, Vec<(u32, PathBuf)>> = Default::default();
    for mkv in mkv_files(root) {
        let name = mkv.file_name().unwrap().to_str().unwrap().to_string();
        let (stem, rest) = name.split_once("_cam0").unwrap();
        let part = match rest.strip_prefix(".part") {
            Some(n) => n.strip_suffix(".mkv").unwrap().parse().unwrap(),
            None => 1,
        };
        by.entry(stem.to_string()).or_default().push((part, mkv));
    }
    by.into_values()
        .map(|mut v| {
            v.sort();
            let numbers: Vec<u32> = v.iter().map(|(n, _)| *n).collect();
            assert_eq!(
                numbers,
                (1..=v.len() as u32).collect::<Vec<_>>(),
                "parts in a row"
            );
            v.into_iter().map(|(_, p)| p).collect()
        })
        .collect()
}

/// A recorder that may not write a file past 1 MiB.
fn start_under_a_1_mib_file_limit(config: &str) -> Hindsight {
    start_under_a_file_limit(1024, config, |_| {})
}

/// A file size limit (FAT's 4 GiB, or `storage.max_file_size`) ends a camera's file
/// and the recording goes on in the next one, losing nothing between them. Here the limit
/// is 1 MiB, and the process may not write a file past 1 MiB at all (`ulimit -f`: a write
/// past it fails with "File too large", as on FAT): a recording with its pre-trigger
/// buffer and a mark, then a `start N`.
#[test]
fn a_file_size_limit_continues_the_recording_in_parts_that_lose_nothing() {
    let _g = serial();
    let limit: u64 = 1 << 20;
    let config = format!(
        "{}storage:\n  max_file_size: 1MiB\naudio:\n  mux_into_video: true\n  channels: 2\n  sample_format: f32\n",
        synthetic_config(640, 480, 30.0, 3.0)
    );
    let mut h = start_under_a_1_mib_file_limit(&config);
    h.wait_buffered(3.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    // The start names the first part, whichever part is being written when it answers.
    let first = r["files"][0].as_str().unwrap().to_string();
    assert!(first.ends_with("_cam0.mkv"), "{r}");
    std::thread::sleep(Duration::from_secs(2));
    h.post("mark", json!({"text": "in a later part"}));
    std::thread::sleep(Duration::from_secs(2));
    h.post("stop", json!({}));
    h.wait_idle_files();
    // What the status says of the recording's WAV: its first part, how many, how long.
    let wav_seconds = |h: &mut Hindsight, id: u64| -> (f64, PathBuf, u64) {
        h.wait_until("the WAV is closed", Duration::from_secs(20), |h| {
            h.status()["audio"]["last_file"]["recording_id"] == id
        });
        let said = h.status()["audio"]["last_file"].clone();
        (
            said["duration_s"].as_f64().unwrap(),
            PathBuf::from(said["path"].as_str().unwrap()),
            said["parts"].as_u64().unwrap(),
        )
    };
    let mut audio_said = vec![wav_seconds(&mut h, 1)];
    let (code, r) = h.post("start", json!({"seconds": 3}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("start 3 ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    audio_said.push(wav_seconds(&mut h, 2));
    let status = h.status();
    let cam = &status["cameras"][0];
    let log = h.log_text();
    assert!(!log.contains("File too large"), "{log}");
    assert!(
        log.contains(
            "storage.max_file_size 1.0 MiB: a camera's video and the WAV go on in a next file"
        ),
        "the log says so at start-up: {log}"
    );

    let recordings = parts_by_recording(&h.root);
    assert_eq!(recordings.len(), 2);
    // The WAV too (384 kB/s): parts under the limit that sox reads, as long together as
    // the recorder says the recording's audio is.
    let mut wavs: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for wav in wav_files(&h.root) {
        let name = wav.file_name().unwrap().to_str().unwrap().to_string();
        let stem = name.split('.').next().unwrap().to_string();
        wavs.entry(stem).or_default().push(wav);
    }
    assert_eq!(wavs.len(), 2, "{wavs:?}");
    for (parts, (said, first, count)) in wavs.values_mut().zip(&audio_said) {
        // `<stem>.wav` first, then `.part002.wav`, ...
        parts.sort_by_key(|p| (p.to_str().unwrap().contains(".part"), p.clone()));
        assert!(parts.len() >= 2, "{parts:?}");
        assert_eq!((&parts[0], parts.len() as u64), (first, *count));
        let mut seconds = 0.0;
        for wav in parts.iter() {
            assert!(std::fs::metadata(wav).unwrap().len() <= limit);
            seconds += sox_seconds(wav);
        }
        assert!(
            (seconds - said).abs() < 0.001,
            "{parts:?}: {seconds} s, the status says {said} s"
        );
    }
    for (k, parts) in recordings.iter().enumerate() {
        // ~570 kB/s for 6 or 7 s: at least 3 files of at most 1 MiB.
        assert!(parts.len() >= 3, "recording {}: {parts:?}", k + 1);
        let mut numbers = Vec::new();
        for (i, mkv) in parts.iter().enumerate() {
            let bytes = std::fs::metadata(mkv).unwrap().len();
            assert!(bytes <= limit, "{}: {bytes} bytes", mkv.display());
            // Finished as at a stop: Cues, the frame count, no complaint from mkvmerge.
            check_finished(mkv, &status);
            let rows = read_sidecar(mkv);
            let decoded: Vec<u64> = decoded_frame_numbers(mkv, 640, 480)
                .into_iter()
                .map(|n| n.expect("a frame number in the pixels"))
                .collect();
            let listed: Vec<u64> = rows.iter().map(|r| r.frame_number).collect();
            assert_eq!(decoded, listed, "{}", mkv.display());
            numbers.extend(decoded);
            // Its share of the muxed audio: from its first frame to where the next part
            // begins, no more (the pre-trigger audio comes as one block of seconds, cut
            // between the parts), so that parts joined end to end stay in step.
            let video_s = rows.len() as f64 / 30.0;
            let (first_audio, audio_s) = audio_track_seconds(mkv);
            assert!(
                first_audio < 0.001 && (audio_s - video_s).abs() < 0.04,
                "{}: {audio_s} s of audio from {first_audio} s, {video_s} s of video",
                mkv.display()
            );
            let t = tags(mkv);
            assert_eq!(t["RECORDING_ID"], (k + 1).to_string());
            assert_eq!(
                t.get("PART").map(String::as_str),
                (i > 0).then(|| (i + 1).to_string()).as_deref()
            );
            let events = std::fs::read_to_string(events_of(mkv)).unwrap();
            assert!(
                events.contains(",start,"),
                "every part says its recording's start"
            );
            if i > 0 {
                let before = parts[i - 1].file_name().unwrap().to_str().unwrap();
                assert!(events.contains(&format!("part_start,writer: file size limit,part {} of recording {}: continues {before}", i + 1, k + 1)), "{events}");
            }
            match parts.get(i + 1) {
                Some(next) => {
                    let next = next.file_name().unwrap().to_str().unwrap();
                    assert!(
                        events.contains(&format!(
                            "part_end,writer: file size limit,\"{} frames; continued in {next};",
                            rows.len()
                        )),
                        "{events}"
                    );
                    assert!(!events.contains(",stop,"), "{events}");
                }
                None => assert!(events.contains(",stop,"), "{events}"),
            }
        }
        // Joined end to end (`mkvmerge a.mkv + b.mkv ...`, as README says), the audio
        // is as long as the video: no part repeats audio of the one before.
        let joined = std::env::temp_dir().join(format!("joined-{}-{k}.mkv", std::process::id()));
        let mut args: Vec<std::ffi::OsString> =
            vec!["-q".into(), "-o".into(), joined.clone().into()];
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                args.push("+".into());
            }
            args.push(p.clone().into());
        }
        let st = Command::new("mkvmerge").args(&args).status().unwrap();
        assert!(st.success());
        let (_, joined_audio) = audio_track_seconds(&joined);
        let _ = std::fs::remove_file(&joined);
        let joined_video = numbers.len() as f64 / 30.0;
        assert!(
            (joined_audio - joined_video).abs() < 0.04,
            "joined: {joined_audio} s of audio, {joined_video} s of video"
        );
        // One run of frame numbers over the parts: nothing lost between them.
        assert_numbers_lost_nothing(&numbers, cam);
        if k == 0 {
            // The pre-trigger buffer went into the first part.
            assert!(read_sidecar(&parts[0])[0].pre_trigger);
            let marks: usize = parts
                .iter()
                .map(|p| {
                    std::fs::read_to_string(events_of(p))
                        .unwrap()
                        .matches(",mark,")
                        .count()
                })
                .sum();
            assert_eq!(
                marks, 1,
                "the mark is in the part being written when it came"
            );
        }
    }

    // The web API sees one camera in several files, and serves a frame from the last.
    let client = reqwest::blocking::Client::new();
    let listed = h.recordings();
    assert_eq!(listed.len(), 2);
    for (parts, (audio_s, _, _)) in recordings.iter().zip(&audio_said) {
        let name = parts[0].file_name().unwrap().to_str().unwrap();
        let rec = listed
            .iter()
            .find(|r| name.starts_with(&format!("{}_", r["id"].as_str().unwrap())))
            .unwrap();
        let frames: usize = parts.iter().map(|p| read_sidecar(p).len()).sum();
        let cams = rec["cameras"].as_array().unwrap();
        assert_eq!(cams.len(), 1, "{rec}");
        assert_eq!(cams[0]["parts"], parts.len(), "{rec}");
        assert_eq!(cams[0]["frames"], frames, "{rec}");
        assert_eq!(rec["repaired"], false, "{rec}");
        assert_eq!(rec["unfinished"], false, "{rec}");
        let last = read_sidecar(parts.last().unwrap())[1].frame_number;
        let id = rec["id"].as_str().unwrap();
        let jpeg = client
            .get(format!(
                "http://{}/api/recordings/{id}/frames/cam0/{last}.jpg",
                h.api
            ))
            .send()
            .unwrap();
        assert_eq!(jpeg.status(), 200);
        let img =
            turbojpeg::decompress(&jpeg.bytes().unwrap(), turbojpeg::PixelFormat::GRAY).unwrap();
        let shown =
            hindsight::source::synthetic::decode_frame_number(&img.pixels, img.width, img.height);
        assert_eq!(shown, Some(last));
        // Its quality report counts every part's frames, and every part of the WAV.
        let report = client
            .get(format!("http://{}/api/recordings/{id}/report.html", h.api))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let first = read_sidecar(&parts[0])[0].frame_number;
        let last = read_sidecar(parts.last().unwrap())
            .last()
            .unwrap()
            .frame_number;
        let pre: usize = parts
            .iter()
            .map(|p| read_sidecar(p).iter().filter(|r| r.pre_trigger).count())
            .sum();
        let counted = format!("<td>{frames} (numbers {first}–{last}; {pre} before the trigger)");
        assert!(report.contains(&counted), "{counted} not in {report}");
        let audio = format!("channel(s): {audio_s:.3} s.");
        assert!(report.contains(&audio), "{audio} not in {report}");
    }
}

/// The process's own file size limit (`ulimit -f`, systemd's `LimitFSIZE=`) is known at
/// start-up as FAT's is: a recording goes on in parts below it, losing nothing, and no
/// write fails. (Before, the first write past it ended the recording with "File too
/// large"; without SIGXFSZ ignored by whoever started hindsight, it ended the process.)
#[test]
fn a_process_file_size_limit_is_known_and_recordings_go_on_in_parts() {
    let _g = serial();
    let config = format!(
        "{}audio:\n  enabled: false\n",
        synthetic_config(640, 480, 30.0, 3.0)
    );
    let mut h = start_under_a_1_mib_file_limit(&config);
    h.wait_buffered(3.0);
    let log = h.log_text();
    assert!(
        log.contains(
            "this process's file size limit (ulimit -f, or systemd's LimitFSIZE) allows files \
             of at most 1.0 MiB: a camera's video and the WAV go on in a next file"
        ),
        "{log}"
    );
    h.record_for(3.0);
    let log = h.log_text();
    assert!(!log.contains("File too large"), "{log}");
    let recordings = parts_by_recording(&h.root);
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let parts = &recordings[0];
    assert!(parts.len() >= 3, "{parts:?}");
    let mut numbers = Vec::new();
    for part in parts {
        assert!(std::fs::metadata(part).unwrap().len() <= 1 << 20);
        mkvmerge_clean(part);
        numbers.extend(
            decoded_frame_numbers(part, 640, 480)
                .into_iter()
                .map(|n| n.expect("a readable frame number")),
        );
    }
    assert!(numbers.len() >= 150, "{} frames", numbers.len());
    assert_numbers_lost_nothing(&numbers, &h.status()["cameras"][0]);
}

/// When the audio track of `mkv` begins (its first block's time) and how long it plays,
/// decoded by ffmpeg (48 kHz mono).
fn audio_track_seconds(mkv: &Path) -> (f64, f64) {
    let first = first_audio_block_s(mkv);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mkv)
        .args([
            "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        mkv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (first, out.stdout.len() as f64 / 2.0 / 48_000.0)
}

/// A burst of starts and stops while recordings go into parts: each start's pre-trigger
/// buffer alone fills more than one part, and the muxed audio makes each stop wait for
/// its last block while the next start comes. Every start answered names a file that
/// exists, and each recording's parts follow one another with nothing lost between them.
#[test]
fn a_burst_of_commands_over_part_boundaries_loses_nothing() {
    let _g = serial();
    let limit: u64 = 1 << 20;
    let config = format!(
        "{}storage:\n  max_file_size: 1MiB\naudio:\n  mux_into_video: true\n",
        synthetic_config(640, 480, 30.0, 3.0)
    );
    let mut h = start_under_a_1_mib_file_limit(&config);
    h.wait_buffered(3.0);
    // Starts and stops in pairs, a pair every 150 ms: some stops come while the buffer
    // is still being written, some while a stop waits for its audio.
    let replies = command_burst(&h.api, 24, Duration::from_millis(150));
    h.post("stop", json!({}));
    h.wait_idle_files();
    assert!(
        replies.iter().all(|(_, code, _)| *code == 200),
        "{replies:?}"
    );
    let started: Vec<PathBuf> = replies
        .iter()
        .filter(|(start, _, r)| *start && r["outcome"] == "done")
        .map(|(_, _, r)| PathBuf::from(r["files"][0].as_str().unwrap()))
        .collect();
    assert!(started.len() >= 2, "{replies:?}");
    let status = h.status();
    let cam = &status["cameras"][0];
    let log = h.log_text();
    assert!(!log.contains("File too large"), "{log}");
    assert!(!log.contains("frames lost"), "{log}");
    let recordings = parts_by_recording(&h.root);
    for mkv in &started {
        assert!(
            recordings.iter().any(|parts| parts[0] == *mkv),
            "{} was answered, and is not the first part of a recording: {recordings:?}",
            mkv.display()
        );
    }
    let mut in_parts = 0;
    for parts in &recordings {
        in_parts += usize::from(parts.len() > 1);
        let mut rows = Vec::new();
        for mkv in parts {
            assert!(std::fs::metadata(mkv).unwrap().len() <= limit);
            check_finished(mkv, &status);
            rows.extend(read_sidecar(mkv));
        }
        // One run of frame numbers over the parts, the whole 3 s buffer at its head.
        eprintln!("{parts:?}:");
        assert_nothing_lost(&rows, cam);
        let span = rows.last().unwrap().lsl_time - rows[0].lsl_time;
        assert!(span >= 2.9, "{parts:?}: {span:.2} s");
        assert!(rows[0].pre_trigger, "{parts:?}");
    }
    assert!(
        in_parts >= 2,
        "the burst's recordings went into parts: {recordings:?}"
    );
    assert!(h.terminate().success());
}

/// A crash in the middle of a recording in parts: the parts before it are whole, the next
/// start names the part being written as unfinished (only it), `hindsight repair`
/// finishes it, and the web page lists one recording of all its parts, nothing lost up
/// to the crash's last moment.
#[test]
fn a_crash_in_a_later_part_leaves_the_parts_before_whole_and_repair_finishes_the_last() {
    let _g = serial();
    let config = format!(
        "{}storage:\n  max_file_size: 1MiB\naudio:\n  enabled: false\n",
        synthetic_config(640, 480, 30.0, 3.0)
    );
    let mut h = start_under_a_1_mib_file_limit(&config);
    h.wait_buffered(3.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("part 4 is written", Duration::from_secs(30), |h| {
        mkv_files(&h.root).len() >= 4
    });
    std::thread::sleep(Duration::from_millis(800));
    let cam = h.status()["cameras"][0].clone();
    let last_captured = cam["last_frame_number"].as_u64().unwrap();
    h.kill9();
    let recordings = parts_by_recording(&h.root);
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let parts = recordings[0].clone();
    let (last, whole) = parts.split_last().unwrap();
    let status = json!({ "cameras": [cam.clone()] });
    for mkv in whole {
        check_finished(mkv, &status);
    }

    // The next start: only the part being written is unfinished.
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().unwrap());
    let root = h.root.clone();
    let mut h2 = Hindsight::start_in(dir, root, &config);
    let unfinished = h2.status()["unfinished_files"].clone();
    assert_eq!(
        unfinished,
        json!([last.to_str().unwrap()]),
        "{}",
        h2.log_text()
    );
    let listed = |h2: &Hindsight| -> serde_json::Value {
        let list = h2.recordings();
        assert_eq!(list.len(), 1, "{list:?}");
        list[0].clone()
    };
    let rec = listed(&h2);
    assert_eq!(rec["unfinished"], true, "{rec}");
    assert_eq!(rec["cameras"][0]["parts"], parts.len(), "{rec}");

    let printed = repair_ok(last);
    assert!(printed.contains("repaired"), "{printed}");
    mkvmerge_clean(last);
    assert!(mkvinfo_cue_points(last) > 0, "a repaired file has Cues");
    let frames = ffprobe_frame_count(last) as usize;
    assert!(frames >= 10, "repair kept {frames} frames of the last part");
    let rec = listed(&h2);
    assert_eq!(
        (&rec["unfinished"], &rec["repaired"]),
        (&json!(false), &json!(true)),
        "{rec}"
    );
    // The pixels' frame numbers are the sidecars' (the last's up to where repair cut it).
    let mut numbers = Vec::new();
    let mut rows = 0;
    for mkv in &parts {
        let decoded: Vec<u64> = decoded_frame_numbers(mkv, 640, 480)
            .into_iter()
            .map(|n| n.expect("a frame number in the pixels"))
            .collect();
        let listed: Vec<u64> = read_sidecar(mkv).iter().map(|r| r.frame_number).collect();
        assert!(listed.starts_with(&decoded), "{}", mkv.display());
        rows += listed.len();
        numbers.extend(decoded);
    }
    assert_eq!(rec["cameras"][0]["frames"], rows, "{rec}");
    assert_numbers_lost_nothing(&numbers, &cam);
    let lost = last_captured.saturating_sub(*numbers.last().unwrap());
    assert!(lost <= 30, "{lost} frames (more than 1 s) lost by kill -9");
    assert!(h2.terminate().success());
}

/// An SD card or USB disk failing mid-recording: the kernel turns its filesystem
/// read-only (ext4 with `errors=remount-ro`; the error raised by ext4's own trigger, on a
/// real ext4 disk). The recording stops with why and what to do; the status says the disk
/// is read-only; starts and clips are refused with that, the buffer kept meanwhile. The
/// disk checked with fsck, as the message says, and mounted again at its place: the next
/// start records with its whole pre-trigger. And on the checked disk the first recording's
/// video plays, every whole line of its sidecar is one of its frames, `hindsight repair`
/// finishes it, the sidecar then lists exactly its frames, and its WAV is there.
#[test]
fn a_recordings_disk_that_turns_read_only_keeps_what_reached_it_and_says_why() {
    let _g = serial();
    let config = "storage:\n  min_free: 1MiB\nbuffer:\n  duration: 3\n  max_bytes: 16MiB\n\
         cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {width: 320, height: 240}\n    fps: 30\n\
         audio:\n  enabled: true\n  source: synthetic\n";
    let Some((mut h, image, device)) = start_on_ext4(128, config) else {
        return;
    };
    let mount = h.root.parent().unwrap().to_path_buf();
    h.wait_buffered(2.9);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    // More than one fsync_interval (1 s) of it reaches the disk.
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(
        format!("/sys/fs/ext4/{device}/trigger_fs_error"),
        "hindsight test: a failing disk\n",
    )
    .unwrap();
    h.wait_until("the recording is given up", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    let said = |v: &serde_json::Value| {
        let t = v.to_string();
        t.contains("Read-only file system") && t.contains("turned read-only") && t.contains("fsck")
    };
    let read_only = format!(
        "the recordings disk at {} has turned read-only: not recording until it is writable \
         again (the kernel does that after errors on a disk, as when an SD card or USB disk \
         is failing: see `dmesg`; copy the recordings off, check the disk (fsck) and mount it \
         again)",
        mount.display()
    );
    // The WAV's writer finds out at its next write (its stop).
    h.wait_until("the status says why", Duration::from_secs(10), |h| {
        let s = h.status();
        said(&s["cameras"][0]["last_error"])
            && said(&s["audio"]["last_error"])
            && s["disk"]["error"] == read_only.as_str()
            && s["disk"]["read_only"] == true
            && s["warnings"].to_string().contains("has turned read-only")
    });

    // Starts and clips: refused with why; the buffer kept whole meanwhile.
    for (command, body) in [("start", json!({})), ("clip", json!({"seconds": 2}))] {
        let (code, r) = h.post(command, body);
        assert_eq!(code, 400, "{command}: {r}");
        assert_eq!(r["outcome"], "rejected", "{r}");
        assert_eq!(r["message"], read_only.as_str(), "{r}");
    }
    let s = h.status();
    assert_eq!(s["state"], "buffering", "{s}");
    assert!(
        s["cameras"][0]["buffered_seconds"].as_f64().unwrap() > 2.8,
        "{s}"
    );

    // Its owner checks the disk (a copy of it: the failed one is still held by the old
    // mount) and mounts it again at its place: the next start records.
    let checked = image.with_file_name("checked.img");
    std::fs::copy(&image, &checked).unwrap();
    let fsck = Command::new("e2fsck")
        .arg("-fy")
        .arg(&checked)
        .output()
        .unwrap();
    assert!(fsck.status.code().is_some_and(|c| c <= 1), "{fsck:?}");
    let pid = h.child.as_ref().unwrap().id().to_string();
    let at = mount.display().to_string();
    for args in [
        vec!["umount", "--lazy", &at],
        vec!["mount", "-o", "loop", checked.to_str().unwrap(), &at],
    ] {
        let out = Command::new("nsenter")
            .args(["--target", &pid, "--mount", "--"])
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    h.wait_until("the disk is writable again", Duration::from_secs(10), |h| {
        let s = h.status();
        s["disk"]["error"].is_null() && s["disk"]["read_only"] == false
    });
    assert!(h.log_text().contains(&format!(
        "the recordings disk at {at} is writable again: recordings can start"
    )));
    record_a_moment(&mut h, "recording 2 started (3.0 s before trigger)");
    assert!(h.terminate().success(), "{}", h.log_text());

    // The checked disk, read back without mounting it.
    let out = tempfile::tempdir().unwrap();
    let dumped = Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump /rec {}", out.path().display()))
        .arg(&checked)
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{dumped:?}");
    let mut files = files_under(&out.path().join("rec"));
    files.sort(); // by name: by time
    let of = |ext: &str| -> Vec<&PathBuf> {
        files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(ext))
            .collect()
    };
    let (mkvs, wavs) = (of(".mkv"), of(".wav"));
    assert_eq!((mkvs.len(), wavs.len()), (2, 2), "{files:?}");
    let (mkv, wav) = (mkvs[0], wavs[0]);
    let decoded: Vec<u64> = decoded_frame_numbers(mkv, 320, 240)
        .into_iter()
        .map(|n| n.expect("a readable frame number"))
        .collect();
    assert!(decoded.windows(2).all(|w| w[1] == w[0] + 1), "{decoded:?}");
    // The 3 s before the start and at least a second after it reached the disk.
    assert!(decoded.len() >= 4 * 30 * 9 / 10, "{} frames", decoded.len());
    // As the failure left it: whole lines, then at most a partial last one. (ext4 can
    // commit a file's new size, with another file's sync or its 5 s commit, before the
    // data appended into the file's last block reaches the disk: that tail reads as
    // zeros. Nothing but a sync per row would prevent it; repair cuts it.)
    let raw = std::fs::read(sidecar_of(mkv)).unwrap();
    let whole = raw.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    assert!(
        raw.len() - whole < 4096,
        "{} bytes after the sidecar's last whole line",
        raw.len() - whole
    );
    repair_ok(mkv);
    mkvmerge_clean(mkv);
    // Whole lines from the start: those of the file's frames (a batch's rows are written
    // before its frames, so the failure may have kept the last rows' frames out).
    let kept = std::fs::read(sidecar_of(mkv)).unwrap();
    assert!(
        raw[..whole].starts_with(&kept) && kept.ends_with(b"\n"),
        "repair keeps the sidecar's first whole lines and only them"
    );
    let rows = read_sidecar(mkv);
    let numbers: Vec<u64> = rows.iter().map(|r| r.frame_number).collect();
    assert_eq!(
        numbers, decoded,
        "the sidecar lists exactly the file's frames"
    );
    let video_s: f64 = ffprobe_format(mkv)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wav_s = sox_seconds(wav);
    assert!(
        wav_s > 3.0 && (wav_s - video_s).abs() < 1.5,
        "WAV {wav_s} s, video {video_s} s"
    );
}

/// The service's view of its disk (systemd's `ProtectSystem=strict` with the root in
/// `ReadWritePaths=`): the disk's top folder is mounted read-only for hindsight, the
/// root's folder bound writable over it. That is no read-only disk: recordings start and
/// nothing is said. (In a user and mount namespace of its own: a tmpfs, the root bound
/// onto itself, the tmpfs made read-only.)
#[test]
fn a_root_writable_in_a_read_only_view_of_its_disk_records() {
    let _g = serial();
    let config = "storage:\n  min_free: 1MiB\nbuffer:\n  duration: 3\n  max_bytes: 16MiB\n\
         cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {width: 160, height: 120}\n    fps: 30\n\
         audio:\n  enabled: false\n";
    let mut h = start_on_own_mounts(
        "mount -t tmpfs -o size=32m hindsight-test \"$0\" && mkdir \"$0/rec\" \
         && mount --bind \"$0/rec\" \"$0/rec\" && mount -o remount,bind,ro \"$0\"",
        config,
    );
    let top = h.root.parent().unwrap().to_path_buf();
    h.wait_buffered(2.9);
    // Its view is as meant: the top read-only, the root writable.
    in_its_namespace(&h, &["sh", "-c", &format!("! touch {}/x", top.display())]);
    std::thread::sleep(Duration::from_secs(1));
    let s = h.status();
    assert!(s["disk"]["error"].is_null(), "{s}");
    assert_eq!(s["disk"]["read_only"], false, "{s}");
    record_a_moment(&mut h, "recording 1 started (3.0 s before trigger)");
    assert!(!h.log_text().contains("read-only"), "{}", h.log_text());
    assert!(h.terminate().success());
}

/// A write-speed limit on one block device for one process, through the kernel's block
/// I/O controller (cgroup v1 `blkio`, or v2 `io`): what a slow SD card is. Lifted and
/// removed when dropped. `None` (said on stderr) where the controller cannot be used.
struct SlowDisk {
    group: PathBuf,
    /// The file that sets the limit, and the lines that set and lift it.
    knob: PathBuf,
    lift: String,
    /// Where the process goes back to.
    parent_procs: PathBuf,
    pid: u32,
}

impl SlowDisk {
    fn new(pid: u32, device: &str, bytes_per_s: u64) -> Option<SlowDisk> {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(format!("/dev/{device}")).ok()?.rdev();
        let dev = format!("{}:{}", libc::major(rdev), libc::minor(rdev));
        let name = format!("hindsight-test-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/blkio");
        let v2 = Path::new("/sys/fs/cgroup");
        let (parent, knob, set, lift) = if v1.join("blkio.throttle.write_bps_device").exists() {
            (
                v1.to_path_buf(),
                "blkio.throttle.write_bps_device",
                format!("{dev} {bytes_per_s}"),
                format!("{dev} 0"),
            )
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"))
            && std::fs::write(v2.join("cgroup.subtree_control"), "+io").is_ok()
        {
            (
                v2.to_path_buf(),
                "io.max",
                format!("{dev} wbps={bytes_per_s}"),
                format!("{dev} wbps=max"),
            )
        } else {
            eprintln!("NOT RUN: a slow disk needs the kernel's block I/O controller (cgroup blkio or io) and root");
            return None;
        };
        let group = parent.join(&name);
        if let Err(e) = std::fs::create_dir(&group) {
            eprintln!(
                "NOT RUN: a slow disk needs a cgroup of its own ({}: {e})",
                group.display()
            );
            return None;
        }
        let knob = group.join(knob);
        std::fs::write(&knob, set).unwrap();
        std::fs::write(group.join("cgroup.procs"), pid.to_string()).unwrap();
        Some(SlowDisk {
            group,
            knob,
            lift,
            parent_procs: parent.join("cgroup.procs"),
            pid,
        })
    }

    fn lift(&self) {
        let _ = std::fs::write(&self.knob, &self.lift);
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        self.lift();
        let _ = std::fs::write(&self.parent_procs, self.pid.to_string());
        let _ = std::fs::remove_dir(&self.group);
    }
}

/// A recorder with `config` on an ext4 disk of `mib` MiB, its buffer filled (4.9 s), then
/// the disk made an SD card at 200 kB/s. `None` (said) where that cannot be done.
fn on_a_slow_disk(mib: u64, config: &str) -> Option<(Hindsight, PathBuf, SlowDisk)> {
    let (mut h, image, device) = start_on_ext4(mib, config)?;
    let pid = h.child.as_ref().unwrap().id();
    h.wait_buffered(4.9);
    let Some(slow) = SlowDisk::new(pid, &device, 200_000) else {
        assert!(h.terminate().success());
        return None;
    };
    Some((h, image, slow))
}

/// The `stat` file of the thread of `pid` named `name`.
fn thread_named(pid: u32, name: &str) -> PathBuf {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| std::fs::read_to_string(d.join("comm")).is_ok_and(|c| c.trim() == name))
        .unwrap_or_else(|| panic!("no thread {name} in process {pid}"))
        .join("stat")
}

/// A recordings disk slower than the video (an SD card at 200 kB/s, with clips of 5 s
/// of 400x400@100 queued on it): the control thread, which answers every command, never
/// waits for the disk, and every command is answered while the writers wait tens of
/// seconds for it. The frame and recording numbers' file, extended after the sixth
/// recording, was written by the control thread, whose `fdatasync` waited behind the
/// video's writeback: 5 to 30 s without an answer to any command (found by hand, where a
/// start got "no answer from the recorder within 10s"). The control thread's state is
/// sampled every 20 ms (`D`: waiting for the disk); a count, not a timing. The
/// microphone loses nothing meanwhile: its WAVs' syncs (at the start, every second, at
/// the end) held the audio thread, whose 2 s of input overflowed (54 s of a 70 s take lost,
/// by hand, at 250 kB/s).
#[test]
fn a_slow_disk_never_holds_up_the_commands_or_the_microphone() {
    let _g = serial();
    let config = "storage:\n  min_free: 1MiB\nbuffer:\n  duration: 5\n  max_bytes: 128MiB\n\
         cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {width: 400, height: 400}\n    fps: 100\n\
         audio:\n  enabled: true\n  source: synthetic\n";
    let Some((mut h, _image, slow)) = on_a_slow_disk(256, config) else {
        return;
    };
    let pid = h.child.as_ref().unwrap().id();
    let control = thread_named(pid, "control");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let done = done.clone();
        move || {
            let (mut samples, mut waiting) = (0u32, 0u32);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(stat) = std::fs::read_to_string(&control) {
                    // The state follows the command name's closing parenthesis.
                    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                    samples += 1;
                    waiting += u32::from(state.starts_with('D'));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (samples, waiting)
        }
    });
    let mut answers = Vec::new();
    for i in 0..8 {
        let asked = std::time::Instant::now();
        let (code, r) = h.post("clip", json!({"seconds": 5}));
        answers.push((i, code, r, asked.elapsed()));
        std::thread::sleep(Duration::from_millis(1500));
    }
    let asked = std::time::Instant::now();
    let (code, r) = h.post("mark", json!({"text": "still here"}));
    answers.push((8, code, r, asked.elapsed()));
    // The writers are far behind: the disk is the slow one.
    let behind = h.status()["current_files"].as_array().unwrap().len();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (samples, waiting) = sampler.join().unwrap();
    slow.lift();
    for (i, code, r, took) in &answers {
        eprintln!("command {i}: {code} in {took:?}: {r}");
    }
    for (i, code, r, _) in &answers {
        assert_eq!(*code, 200, "command {i}: {r}");
        assert_eq!(r["ok"], true, "command {i}: {r}");
    }
    // The microphone lost nothing: the audio thread took its input all along (it waited
    // for the WAVs' syncs, its 2 s of input overflowed, and it took the input for lost).
    let audio = h.status()["audio"].clone();
    assert_eq!(audio["overrun_frames"], 0, "{audio}");
    assert_eq!(audio["silence_frames"], 0, "{audio}");
    assert!(audio["last_error"].is_null(), "{audio}");
    assert!(
        samples > 300,
        "{samples} samples of the control thread's state"
    );
    assert!(
        waiting <= 5,
        "the control thread waited for the disk in {waiting} of {samples} samples (20 ms apart)"
    );
    assert!(
        behind > 0,
        "no file was still being written: the disk was not slow"
    );
    // The numbers' file holds the reservation made after the sixth recording.
    let rig = h.status()["rig"].as_str().unwrap().to_string();
    let file = inside(
        &h,
        &format!("{}/.hindsight/{rig}.numbers.json", h.root.display()),
    );
    h.wait_until(
        "the reservation reaches the disk",
        Duration::from_secs(60),
        |_| {
            std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["next_recording"].as_u64() >= Some(16))
        },
    );
    h.wait_idle_files();
    assert!(h.terminate().success());
    drop(slow);
}

/// A recording on a disk slower than its video, long enough that the writer's queue
/// fills (an SD card at 200 kB/s under a camera's 1 MB/s): frames are dropped and
/// counted as `writer_queue_full`, and everything people and events tell the writer
/// still reaches it: every command is answered, each mark is in the events file, the
/// next recording gets its file. The control thread waited in a blocking send for room
/// in that queue: found by hand, 10 of 40 marks got "no answer from the recorder within
/// 10s" (the API's limit), nine of them in a row, 100 s in which no command was answered
/// (400x400@100 then). And the file is there from the start: its name was not known for the first 19 s. The
/// camera lost and back meanwhile has both rows in the events file, in the order things
/// happened (the old code, run with this test, wrote the loss before the mark made
/// before it).
#[test]
fn a_writer_whose_queue_is_full_holds_up_no_command_and_loses_no_mark() {
    let _g = serial();
    // A program camera (its program killed below, as a camera lost), 1 MB/s.
    let token = format!("slowdisk{}", std::process::id());
    let config = format!(
        "storage:\n  min_free: 1MiB\nbuffer:\n  duration: 5\n  max_bytes: 256MiB\n\
         cameras:\n  - name: cam0\n    source: command\n    fps: 25\n    command: \"ffmpeg -v error \
         -re -f lavfi -i testsrc2=size=640x480:rate=25 -c:v mjpeg -q:v 4 -metadata title={token} \
         -f mjpeg -\"\n"
    );
    let Some((mut h, _image, slow)) = on_a_slow_disk(512, &config) else {
        return;
    };
    let (code, r) = h.post("start", json!({}));
    assert_eq!((code, &r["ok"]), (200, &json!(true)), "{r}");
    let queue_full = |h: &mut Hindsight| {
        h.status()["cameras"][0]["drops"]["writer_queue_full"]
            .as_u64()
            .unwrap()
    };
    h.wait_until(
        "the writer's queue is full",
        Duration::from_secs(120),
        |h| queue_full(h) > 0,
    );
    // The file exists and is said, though its writer is far behind: its first frame
    // was synced alone (once the whole first 4 MB batch of the buffer was, 20 s here).
    assert!(
        h.log_text().contains("recording 1: writing "),
        "{}",
        h.log_text()
    );
    let mut answers = Vec::new();
    for i in 0..6 {
        answers.push(h.post("mark", json!({"text": format!("mark {i}")})));
        std::thread::sleep(Duration::from_millis(500));
        if i == 2 {
            // The camera lost and back meanwhile: both rows reach the events file (a
            // full queue dropped them before).
            let killed = Command::new("pkill").args(["-f", &token]).status().unwrap();
            assert!(killed.success(), "the camera's ffmpeg was not found");
            h.wait_until("the camera is lost", Duration::from_secs(10), |h| {
                h.status()["cameras"][0]["lost"] == true
            });
            h.wait_until("the camera is back", Duration::from_secs(20), |h| {
                h.status()["cameras"][0]["lost"] == false
            });
        }
    }
    answers.push(h.post("stop", json!({})));
    answers.push(h.post("start", json!({})));
    answers.push(h.post("mark", json!({"text": "in the second"})));
    answers.push(h.post("stop", json!({})));
    let dropped = queue_full(&mut h);
    slow.lift();
    for (code, r) in &answers {
        eprintln!("{code}: {r}");
    }
    for (i, (code, r)) in answers.iter().enumerate() {
        assert_eq!(*code, 200, "command {i}: {r}");
        assert_eq!(r["ok"], true, "command {i}: {r}");
    }
    assert!(dropped > 0, "no frame was dropped: the queue never filled");
    h.wait_until("both files are closed", Duration::from_secs(240), |h| {
        h.status()["last_files"][0]["recording_id"] == 2
            && h.status()["current_files"].as_array().unwrap().is_empty()
    });
    let files = mkv_files(&inside(&h, &h.root.display().to_string()));
    assert_eq!(files.len(), 2, "{files:?}");
    let first: Vec<String> = (0..6)
        .map(|i| format!("mark: mark {i}"))
        .flat_map(|m| {
            let lost_and_back = m
                .ends_with(" 2")
                .then(|| ["camera_lost: camera", "camera_back: camera"].map(String::from));
            std::iter::once(m).chain(lost_and_back.into_iter().flatten())
        })
        .collect();
    for (mkv, rows_wanted) in files
        .iter()
        .zip([first, vec!["mark: in the second".to_string()]])
    {
        whole(mkv);
        let events = std::fs::read_to_string(events_of(mkv)).unwrap();
        // Marks by their text, the camera's rows by who tells them.
        let got: Vec<String> = events
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(5, ',').collect();
                match f[2] {
                    "mark" => Some(format!("mark: {}", f[4])),
                    "camera_lost" | "camera_back" => {
                        Some(format!("{}: {}", f[2], f[3].split(':').next().unwrap()))
                    }
                    _ => None,
                }
            })
            .collect();
        assert_eq!(got, rows_wanted, "{events}");
        assert!(
            events.lines().last().unwrap().contains(",stop,"),
            "{events}"
        );
    }
    // The first file's stop row counts the frames its writer's full queue cost it.
    let events = std::fs::read_to_string(events_of(&files[0])).unwrap();
    let stop = events.lines().last().unwrap();
    let counted: u64 = stop
        .split("writer_queue_full ")
        .nth(1)
        .and_then(|n| n.trim_end_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("{stop}"));
    assert!(counted > 0, "{stop}");
    assert!(h.terminate().success());
    drop(slow);
}

/// `hindsight check` on a recordings disk slower than the cameras (a real ext4 disk, an
/// SD card at 200 kB/s by the kernel's I/O controller, a 400x400@100 synthetic camera
/// making about 1.1 MiB/s) warns with the speed it measured and what to do, where the
/// writers would fall behind and lose frames; on the same disk unthrottled it passes.
/// (Found by hand in the last session: a rig on such a card lost frames; check said
/// nothing.) `None` where a slow disk cannot be made here: NOT RUN, said.
#[test]
fn check_measures_a_recordings_disk_slower_than_the_cameras() {
    let _g = serial();
    let Some((_dir, _image, mount, wrapper)) = ext4_disk(128, "loop") else {
        return;
    };
    let config_dir = tempfile::tempdir().unwrap();
    // (`storage.min_free` at its default, 512 MiB, would leave no room for the test file.)
    let cfg = config_file(
        config_dir.path(),
        &mount.join("rec"),
        &format!(
            "  min_free: 1MiB\n{}audio:\n  enabled: false\n",
            synthetic_config(400, 400, 100.0, 2.0)
        ),
    );
    // Held at a `read` until the disk is slowed; the same process from mount to check.
    let run = |bytes_per_s: Option<u64>| -> String {
        use std::io::Write;
        let mut child = Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .args(["sh", "-c", "read _ && exec \"$0\" \"$@\""])
            .arg(BIN)
            .args(["check", "--config"])
            .arg(&cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut device = None;
        for _ in 0..200 {
            device = device_mounted_at(pid, &mount);
            if device.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let device = device.unwrap_or_else(|| panic!("{} was not mounted", mount.display()));
        let slow = bytes_per_s.map(|b| SlowDisk::new(pid, &device, b));
        if matches!(slow, Some(None)) {
            let _ = child.kill();
            let _ = child.wait();
            return String::new();
        }
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        drop(slow);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{text}");
        text.lines()
            .find(|l| l.get(6..).is_some_and(|r| r.starts_with("disk speed ")))
            .unwrap_or_else(|| panic!("no disk speed line:\n{text}"))
            .to_string()
    };
    let fast = run(None);
    assert!(fast.starts_with("pass"), "{fast}");
    assert!(fast.contains("× the cameras'"), "{fast}");
    let slow = run(Some(200_000));
    if slow.is_empty() {
        return;
    }
    assert!(slow.starts_with("warn"), "{slow}");
    assert!(slow.contains("the writers cannot keep up"), "{slow}");
    assert!(slow.contains("an SD card rated A2 or V30"), "{slow}");
    // The figure is the disk's: between 100 and 300 kB/s ("193 KiB/s").
    let figure: f64 = slow
        .split("disk speed")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{slow}"));
    let unit = slow.split_whitespace().nth(4).unwrap_or_default();
    let kb = figure
        * match unit {
            "KiB/s" => 1.024,
            "MiB/s" => 1048.576,
            _ => 0.001,
        };
    assert!((100.0..300.0).contains(&kb), "{kb} kB/s: {slow}");
}

/// A real exFAT filesystem (what SD cards over 32 GB and most USB disks come formatted
/// with) on a loop device, mounted through FUSE (`exfat-fuse`; a Raspberry Pi's kernel has
/// its own exFAT driver, which this machine's lacks), unmounted when dropped.
struct ExfatCard {
    _dir: tempfile::TempDir,
    mount: PathBuf,
    device: String,
}

impl ExfatCard {
    /// `None` (said on stderr) where this cannot be done: not root, no loop devices, no
    /// FUSE, no exFAT tools.
    fn new(mib: u64) -> Option<ExfatCard> {
        // SAFETY: geteuid has no preconditions.
        let root_user = unsafe { libc::geteuid() } == 0;
        let tools = ["mkfs.exfat", "mount.exfat-fuse", "losetup"]
            .iter()
            .all(|t| Command::new(t).arg("-V").output().is_ok());
        let devices = Path::new("/dev/loop-control").exists() && Path::new("/dev/fuse").exists();
        if !root_user || !tools || !devices {
            eprintln!(
                "NOT RUN: an exFAT card needs root, loop devices, /dev/fuse, exfatprogs and \
                 exfat-fuse (root: {root_user}, tools: {tools}, devices: {devices})"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("card.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        run(Command::new("mkfs.exfat").args(["-L", "CARD"]).arg(&image));
        let device = run(Command::new("losetup").args(["-f", "--show"]).arg(&image));
        let mount = dir.path().join("card");
        std::fs::create_dir(&mount).unwrap();
        let card = ExfatCard {
            _dir: dir,
            mount,
            device,
        };
        run(Command::new("mount.exfat-fuse")
            .arg(&card.device)
            .arg(&card.mount));
        Some(card)
    }
}

impl Drop for ExfatCard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// Recording onto an exFAT card as a rig does, video and audio: a take with a mark, a
/// second take killed (kill -9), the restart naming it unfinished, `hindsight repair` over
/// the card finishing it and its WAV, and the list, the files and their sidecars agreeing
/// after. exFAT has no owners, no
/// permissions, no symbolic links, and takes `Left` for `left` (two cameras so named are
/// refused at start-up: `tests/bad_config.rs`).
#[test]
fn recordings_on_an_exfat_card_survive_a_crash_and_a_repair() {
    let _g = serial();
    let Some(card) = ExfatCard::new(192) else {
        return;
    };
    let config = format!(
        "audio:\n  enabled: true\n  source: synthetic\nstorage:\n  min_free: 16MiB\n{}",
        synthetic_config(320, 240, 30.0, 1.0)
    );
    let root = card.mount.join("rec");
    let mut h = Hindsight::start_in(tempfile::tempdir().unwrap(), root.clone(), &config);
    h.wait_buffered(0.9);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let first = PathBuf::from(r["files"][0].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(700));
    let (code, r) = h.post("mark", json!({"text": "trial 1"}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_millis(700));
    h.post("stop", json!({}));
    h.wait_idle_files();
    // The card does not tell letter cases apart: a second camera `CAM0` would have had
    // this one's files.
    let upper = first.with_file_name(first.file_name().unwrap().to_str().unwrap().to_uppercase());
    assert!(
        upper.exists(),
        "{} is not case-insensitive",
        card.mount.display()
    );
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let second = PathBuf::from(r["files"][0].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    h.kill9();

    let mut h = Hindsight::start_in(tempfile::tempdir().unwrap(), root.clone(), &config);
    // The killed take's video and WAV (`<stem>.wav` in the day's audio folder).
    let stem = second.file_stem().unwrap().to_str().unwrap();
    let wav = second
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("audio")
        .join(format!("{}.wav", stem.trim_end_matches("_cam0")));
    assert_eq!(
        h.status()["unfinished_files"],
        json!([wav.to_str().unwrap(), second.to_str().unwrap()]),
        "{}",
        h.log_text()
    );
    let said = repair_ok(&root);
    assert!(
        said.contains("already complete") && said.contains(": repaired:"),
        "{said}"
    );
    // Each take's WAV, the killed one's finished too, as long as its video (the buffer
    // and what followed), read by sox.
    let wavs = wav_files(&root);
    assert_eq!(wavs.len(), 2, "{wavs:?}");
    for (wav, mkv) in wavs.iter().zip([&first, &second]) {
        assert!(said.contains(&format!("{}: ", wav.display())), "{said}");
        let video = ffprobe_frame_count(mkv) as f64 / 30.0;
        let audio = sox_seconds(wav);
        assert!(
            (audio - video).abs() < 0.5,
            "{}: {audio} s, video {video} s",
            wav.display()
        );
    }
    for mkv in [&first, &second] {
        let rows = whole(mkv);
        assert!(mkvinfo_cue_points(mkv) > 0, "{}", mkv.display());
        let decoded: Vec<u64> = decoded_frame_numbers(mkv, 320, 240)
            .into_iter()
            .map(|n| n.expect("a frame number in the pixels"))
            .collect();
        let listed: Vec<u64> = rows.iter().map(|r| r.frame_number).collect();
        assert_eq!(listed, decoded, "{}", mkv.display());
    }
    let list = h.recordings();
    assert_eq!(list.len(), 2, "{list:?}");
    // Newest first: the killed take, repaired; the first, stopped, with its mark.
    assert_eq!(
        (&list[0]["repaired"], &list[0]["unfinished"]),
        (&json!(true), &json!(false)),
        "{}",
        list[0]
    );
    assert_eq!(list[0]["frames"], json!(read_sidecar(&second).len()));
    assert_eq!(list[1]["repaired"], json!(false), "{}", list[1]);
    assert_eq!(list[1]["marks"][0]["text"], json!("trial 1"), "{}", list[1]);
    // The next take, on the numbers kept on the card.
    h.wait_buffered(0.9);
    let r = h.record_for(1.0);
    let third = PathBuf::from(r["files"][0].as_str().unwrap());
    whole(&third);
    assert!(h.terminate().success());
    // The frame numbers run on across the three takes and the restart.
    let firsts: Vec<u64> = [&first, &second, &third]
        .iter()
        .map(|m| read_sidecar(m)[0].frame_number)
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
}
