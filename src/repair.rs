//! `hindsight repair FILE`: finishes a recording that a crash or power cut left unfinished.
//!
//! The Matroska part is planned by the reader in `writer::mkv_read` (cut a partial block,
//! size the last cluster, append Cues, write Duration and sizes) and then checked with an
//! independent parser, the `matroska` crate. The sidecar loses a partial last line. Marks
//! (chapters, which a file only gets when it is finished) come back from the events
//! sidecar, where each was written as it happened.
//! A WAV file gets the sizes of the data actually in it (`audio::wav::repair`), checked
//! with an independent reader (`hound`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::writer::mkv_read;

/// What a repair did.
#[derive(Debug)]
pub struct Repaired {
    pub already_final: bool,
    pub blocks: u64,
    pub duration_s: f64,
    pub dropped_bytes: u64,
    pub sidecar_trimmed: bool,
}

pub fn repair_file(path: &Path) -> Result<Repaired, String> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let marks = marks_of(path);
    let plan = mkv_read::plan_repair_with(&mut file, &marks)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let sidecar_trimmed = trim_partial_line(&sidecar_of(path))
        .map_err(|e| format!("{}: {e}", sidecar_of(path).display()))?;
    if plan.already_final {
        return Ok(Repaired {
            already_final: true,
            blocks: plan.blocks,
            duration_s: plan.duration_ns as f64 / 1e9,
            dropped_bytes: 0,
            sidecar_trimmed,
        });
    }
    mkv_read::apply_plan(&mut file, &plan)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    drop(file);
    let m = matroska::open(path)
        .map_err(|e| format!("{} still does not parse after repair: {e}", path.display()))?;
    if m.info.duration.is_none() {
        return Err(format!("{} has no duration after repair", path.display()));
    }
    Ok(Repaired {
        already_final: false,
        blocks: plan.blocks,
        duration_s: plan.duration_ns as f64 / 1e9,
        dropped_bytes: plan.dropped_bytes,
        sidecar_trimmed,
    })
}

fn sidecar_of(mkv: &Path) -> PathBuf {
    mkv.with_extension("frames.csv")
}

/// Seconds with up to 9 decimals (as the sidecars write them) to exact nanoseconds.
fn parse_ns(text: &str) -> Option<i64> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ns =
        secs.parse::<i64>().ok()? * 1_000_000_000 + format!("{frac:0<9}").parse::<i64>().ok()?;
    Some(if neg { -ns } else { ns })
}

/// The marks of a recording, as chapters: each `mark` row of its events sidecar, timed
/// from its first frame (the frames sidecar's first row, which is the file's time origin).
/// Nothing if either sidecar is missing or unreadable: the video matters more.
pub fn marks_of(mkv: &Path) -> Vec<crate::writer::mkv::Chapter> {
    let origin = std::fs::read_to_string(sidecar_of(mkv)).ok().and_then(|t| {
        t.lines()
            .nth(1)
            .and_then(|row| row.split(',').nth(1))
            .and_then(parse_ns)
    });
    let Some(origin) = origin else {
        return Vec::new();
    };
    let Ok(mut events) = csv::Reader::from_path(mkv.with_extension("events.csv")) else {
        return Vec::new();
    };
    events
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.get(2) == Some("mark"))
        .filter_map(|r| {
            let at = parse_ns(r.get(0)?)?;
            Some(crate::writer::mkv::Chapter {
                time_ns: (at - origin).max(0) as u64,
                title: r.get(4)?.to_string(),
            })
        })
        .collect()
}

/// Drops an incomplete last line (no trailing newline) from a text file, if it exists.
fn trim_partial_line(path: &Path) -> io::Result<bool> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    f.read_to_end(&mut text)?;
    if text.is_empty() || text.ends_with(b"\n") {
        return Ok(false);
    }
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    f.set_len(keep as u64)?;
    f.sync_data()?;
    Ok(true)
}

/// Recordings under `<root>/*/` that a crash left unfinished: Matroska files in `video/`
/// whose Segment was never finalized, and WAV files in `audio/` whose header's sizes do
/// not match their data.
pub fn find_unfinished(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(days) = fs::read_dir(root) else {
        return found;
    };
    for day in days.flatten() {
        for (folder, ext) in [("video", "mkv"), ("audio", "wav")] {
            let Ok(files) = fs::read_dir(day.path().join(folder)) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_none_or(|e| e != ext) {
                    continue;
                }
                let unfinished = if ext == "mkv" {
                    File::open(&p)
                        .map_err(|e| e.to_string())
                        .and_then(|mut file| {
                            mkv_read::is_unfinished(&mut file).map_err(|e| e.to_string())
                        })
                } else {
                    crate::audio::wav::is_unfinished(&p).map_err(|e| e.to_string())
                };
                match unfinished {
                    Ok(true) => found.push(p),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("cannot read {}: {e}", p.display()),
                }
            }
        }
    }
    found.sort();
    found
}

fn is_wav(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

pub fn run(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for p in files {
        if is_wav(p) {
            match crate::audio::wav::repair(p) {
                Ok(r) if r.already_final => println!(
                    "{}: already complete ({} sample frames, {:.3} s)",
                    p.display(),
                    r.frames,
                    r.duration_s
                ),
                Ok(r) => println!(
                    "{}: repaired: {} sample frames, {:.3} s{}",
                    p.display(),
                    r.frames,
                    r.duration_s,
                    if r.dropped_bytes > 0 {
                        format!(
                            ", {} bytes of an incomplete last sample removed",
                            r.dropped_bytes
                        )
                    } else {
                        String::new()
                    }
                ),
                Err(e) => {
                    eprintln!("hindsight repair: {e}");
                    failed = true;
                }
            }
            continue;
        }
        match repair_file(p) {
            Ok(r) if r.already_final => println!(
                "{}: already complete ({} frames, {:.3} s){}",
                p.display(),
                r.blocks,
                r.duration_s,
                if r.sidecar_trimmed {
                    "; sidecar's partial last line removed"
                } else {
                    ""
                }
            ),
            Ok(r) => println!(
                "{}: repaired: {} frames, {:.3} s{}{}",
                p.display(),
                r.blocks,
                r.duration_s,
                if r.dropped_bytes > 0 {
                    format!(
                        ", {} bytes of an incomplete last frame removed",
                        r.dropped_bytes
                    )
                } else {
                    String::new()
                },
                if r.sidecar_trimmed {
                    "; sidecar's partial last line removed"
                } else {
                    ""
                }
            ),
            Err(e) => {
                eprintln!("hindsight repair: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_recordings_are_found_by_their_headers() {
        use crate::audio::wav::{Durability, WavOutput};
        let tmp = tempfile::tempdir().unwrap();
        let audio = tmp.path().join("2026_01_02").join("audio");
        let done = audio.join("rec_a.wav");
        let cut = audio.join("rec_b.wav");
        for p in [&done, &cut] {
            let policy = Durability::for_fsync_interval(None);
            let mut w =
                WavOutput::create(p, 8000, 1, crate::audio::SampleFormat::S16, policy).unwrap();
            w.write(&[0.1; 4000]).unwrap();
            w.finish().unwrap();
        }
        // Audio after the header's last update, as a crash leaves it.
        let mut f = OpenOptions::new().append(true).open(&cut).unwrap();
        std::io::Write::write_all(&mut f, &[0u8; 1000]).unwrap();
        fs::write(audio.join("notes.txt"), b"not a recording").unwrap();
        assert_eq!(find_unfinished(tmp.path()), vec![cut]);
    }

    #[test]
    fn sidecar_times_parse_to_exact_nanoseconds() {
        assert_eq!(parse_ns("8123.456789012"), Some(8_123_456_789_012));
        assert_eq!(parse_ns("1.5"), Some(1_500_000_000));
        assert_eq!(parse_ns("-0.000000001"), Some(-1));
        assert_eq!(parse_ns("12"), Some(12_000_000_000));
        assert_eq!(parse_ns("1.0000000001"), None);
        assert_eq!(parse_ns("x"), None);
    }

    #[test]
    fn marks_come_back_from_the_events_sidecar() {
        let tmp = tempfile::tempdir().unwrap();
        let mkv = tmp.path().join("rec_cam0.mkv");
        std::fs::write(
            mkv.with_extension("frames.csv"),
            "frame_number,lsl_time,unix_time,pts,bytes,pre_trigger\n7,100.250000000,1.0,0.0,10,1\n",
        )
        .unwrap();
        std::fs::write(
            mkv.with_extension("events.csv"),
            "lsl_time,unix_time,event,source,detail\n\
             101.000000000,2.0,start,api: start,recording 1\n\
             101.500000000,2.5,mark,api: mark,\"trial 3, \"\"reward\"\"\"\n\
             102.000000000,3.0,mark,api: mark,second\n",
        )
        .unwrap();
        let marks = marks_of(&mkv);
        assert_eq!(marks.len(), 2);
        assert_eq!(marks[0].time_ns, 1_250_000_000);
        assert_eq!(marks[0].title, "trial 3, \"reward\"");
        assert_eq!(marks[1].time_ns, 1_750_000_000);
    }
}
