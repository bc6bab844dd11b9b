//! A write that fails mid-recording (disk full, file too large, device gone): the error is
//! reported, the file keeps everything written before and plays, the recorder goes back to
//! buffering and keeps running.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// The disk the recordings are on: the first failing write comes when it is full.
const DISK_MIB: u64 = 12;

/// A disk that fills with the disk guard off: a write fails mid-recording with "No space
/// left on device", as any write that fails does (a file size limit hindsight cannot
/// know of, a device gone).
#[test]
fn a_failing_write_stops_the_recording_cleanly_and_keeps_what_was_written() {
    let _g = serial();
    let config = format!(
        "storage:\n  min_free: null\naudio:\n  enabled: false\n{}",
        synthetic_config(400, 400, 100.0, 1.0)
    );
    let mut h = start_on_tiny_disk(DISK_MIB as u32, &config);
    h.wait_buffered(0.9);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    let mkv = inside(&h, r["files"][0].as_str().unwrap());
    h.wait_until(
        "the failed recording is given up",
        Duration::from_secs(30),
        |h| h.status()["state"] == "buffering",
    );
    let s = h.status();
    let warnings = s["warnings"].to_string();
    assert!(
        warnings.contains("failed"),
        "the status says what happened: {s}"
    );
    assert!(
        s["cameras"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("writing"),
        "{s}"
    );
    assert!(h.log_text().contains("writing") && h.log_text().contains("failed"));

    assert!(h.log_text().contains("No space left on device"));

    // The file holds everything up to the failure, and ffmpeg decodes it all.
    let size = std::fs::metadata(&mkv).unwrap().len();
    assert!(
        size > (DISK_MIB << 20) / 2 && size <= DISK_MIB << 20,
        "{size} bytes"
    );
    let decoded: Vec<u64> = decoded_frame_numbers(&mkv, 400, 400)
        .into_iter()
        .map(|n| n.expect("readable frame number"))
        .collect();
    assert!(decoded.len() > 100, "{} frames kept", decoded.len());
    assert!(decoded.windows(2).all(|w| w[1] == w[0] + 1));
    // Finished from what reached the disk: a clean file, or (when not even the index fits
    // any more) a live-layout file that plays as it is, with the way to finish it logged.
    // The writer's own repair is not refused as a file being recorded (it closed it).
    assert!(
        !h.log_text().contains("being recorded now"),
        "{}",
        h.log_text()
    );
    if h.log_text().contains("finished as written") {
        mkvmerge_clean(&mkv);
        assert!(ffprobe_format(&mkv)["format"]["duration"].is_string());
    } else {
        assert!(
            h.log_text().contains("hindsight repair"),
            "{}",
            h.log_text()
        );
    }
    // The sidecar lists each frame the file has, and no other.
    let rows: Vec<u64> = read_sidecar(&mkv).iter().map(|r| r.frame_number).collect();
    assert_eq!(rows, decoded);

    // Still running and buffering; commands are still answered.
    std::thread::sleep(Duration::from_millis(500));
    let s = h.status();
    assert_eq!(s["state"], "buffering");
    assert!(s["cameras"][0]["buffered_seconds"].as_f64().unwrap() > 0.9);
    let (code, r) = h.post("stop", json!({}));
    assert_eq!((code, r["outcome"].as_str()), (200, Some("no-op")));
    assert!(h.terminate().success());
}
