//! A write that fails mid-recording (disk full, file too large, device gone): the error is
//! reported, the file keeps everything written before and plays, the recorder goes back to
//! buffering and keeps running.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Every file hindsight writes may grow to this size; writing beyond fails with EFBIG,
/// exactly as a full disk fails with ENOSPC.
const FILE_LIMIT: u64 = 3 << 20;

#[test]
fn a_failing_write_stops_the_recording_cleanly_and_keeps_what_was_written() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let mut h = Hindsight::start_with(dir, root, &synthetic_config(400, 400, 100.0, 1.0), |cmd| {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: FILE_LIMIT,
                    rlim_max: FILE_LIMIT,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                // Ignored signals stay ignored across exec: writes then fail with EFBIG
                // instead of killing the process.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    h.wait_buffered(0.9);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
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

    // The file holds everything up to the failure, and ffmpeg decodes it all.
    let mkv = h.mkv_files().pop().expect("the file");
    let size = std::fs::metadata(&mkv).unwrap().len();
    assert!(size > FILE_LIMIT / 2 && size <= FILE_LIMIT, "{size} bytes");
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
    // The sidecar never lists a frame the file does not have.
    let rows = read_sidecar(&mkv);
    assert!(rows.len() <= decoded.len());
    assert!(rows.iter().zip(&decoded).all(|(r, d)| r.frame_number == *d));

    // Still running and buffering; commands are still answered.
    std::thread::sleep(Duration::from_millis(500));
    let s = h.status();
    assert_eq!(s["state"], "buffering");
    assert!(s["cameras"][0]["buffered_seconds"].as_f64().unwrap() > 0.9);
    let (code, r) = h.post("stop", json!({}));
    assert_eq!((code, r["outcome"].as_str()), (200, Some("no-op")));
    assert!(h.terminate().success());
}
