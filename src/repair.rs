//! `hindsight repair FILE`: finishes recordings that a crash or power cut left unfinished,
//! and finds them at start-up.
//!
//! An MKV (with its sidecars) is finished by `writer::repair`; a WAV file gets the sizes of
//! the data actually in it (`audio::wav::repair`; RF64's sizes past 4 GiB), checked with
//! an independent reader (`hound`) where it is a RIFF file.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::writer::files::being_written;
use crate::writer::repair::repair_file;
use mkv::read as mkv_read;

/// Recordings under `<root>/*/` that a crash left unfinished: Matroska files in `video/`
/// whose Segment was never finalized, and WAV files in `audio/` whose header's sizes do
/// not match their data. Files that a running hindsight is writing are not among them.
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
                if p.extension().is_none_or(|e| e != ext) || being_written(&p) {
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
                    "{}: repaired: {} sample frames, {:.3} s{}{}",
                    p.display(),
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
                "{}: already complete ({}, {:.3} s){}",
                p.display(),
                r.contents(),
                r.duration_s,
                if r.sidecar_trimmed {
                    "; sidecar's partial last line removed"
                } else {
                    ""
                }
            ),
            Ok(r) => println!(
                "{}: repaired: {}, {:.3} s{}{}",
                p.display(),
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
    use std::fs::OpenOptions;

    #[test]
    fn unfinished_recordings_are_found_by_their_headers() {
        use crate::audio::wav::{Durability, WavOutput};
        let tmp = tempfile::tempdir().unwrap();
        let audio = tmp.path().join("2026_01_02").join("audio");
        fs::create_dir_all(&audio).unwrap();
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
}
