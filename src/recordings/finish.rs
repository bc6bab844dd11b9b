//! Finishing what a crash or power cut left unfinished, one file at a time: what
//! `hindsight repair` does to each file it is given and the web page's Repair does to
//! each file of a recording, said the same way by both.
//!
//! A video is finished by `writer::repair` (with its sidecars), a WAV by
//! `audio::wav::repair`. A file a running hindsight is writing is left alone by both
//! (they hold the file while they change it, and refuse one that is held).

use std::path::Path;

use crate::writer::files::being_written;
use crate::writer::repair::repair_file;

/// Whether `path` (a recording's MKV or WAV) is one a crash left unfinished: a video whose
/// Segment was never finalized, a WAV whose header's sizes do not match its data. An
/// empty file (claimed, nothing written yet) is not.
pub fn is_unfinished(path: &Path) -> Result<bool, String> {
    if std::fs::metadata(path).map_err(|e| e.to_string())?.len() == 0 {
        return Ok(false);
    }
    if is_wav(path) {
        crate::audio::wav::is_unfinished(path).map_err(|e| e.to_string())
    } else {
        std::fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|mut f| mkv::read::is_unfinished(&mut f).map_err(|e| e.to_string()))
    }
}

pub fn is_wav(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// Finishes one MKV (with its sidecars) or WAV and says what it did, without the file's
/// name ("repaired: 301 frames, 10.033 s", "already complete (...)"); or why it could
/// not, naming the file.
pub fn finish_file(p: &Path) -> Result<String, String> {
    if std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0) && !being_written(p) {
        return Ok(
            "empty: its recording wrote nothing into it (stopped by a crash before its \
                   first frame or sample); nothing to repair, and hindsight's next start-up \
                   removes it"
                .into(),
        );
    }
    if is_wav(p) {
        let r = crate::audio::wav::repair(p).map_err(|e| e.to_string())?;
        return Ok(if r.already_final {
            format!(
                "already complete ({} sample frames, {:.3} s)",
                r.frames, r.duration_s
            )
        } else {
            format!(
                "repaired: {} sample frames, {:.3} s{}{}",
                r.frames,
                r.duration_s,
                if r.rf64 {
                    ", as an RF64 file (more than 4 GiB)"
                } else {
                    ""
                },
                if r.dropped_bytes > 0 {
                    format!(
                        ", {} bytes of an incomplete last sample removed",
                        r.dropped_bytes
                    )
                } else {
                    String::new()
                }
            )
        });
    }
    let r = repair_file(p).map_err(|e| e.to_string())?;
    Ok(if r.already_final {
        format!(
            "already complete ({}, {:.3} s){}",
            r.contents(),
            r.duration_s,
            r.sidecar.said()
        )
    } else {
        format!(
            "repaired: {}, {:.3} s{}{}",
            r.contents(),
            r.duration_s,
            if r.dropped_bytes > 0 {
                format!(
                    ", {} bytes of an incomplete last frame removed",
                    r.dropped_bytes
                )
            } else {
                String::new()
            },
            r.sidecar.said()
        )
    })
}
