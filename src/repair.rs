//! `hindsight repair FILE`: finishes a recording that a crash or power cut left unfinished.
//!
//! The Matroska part is planned by the reader in `writer::mkv_read` (cut a partial block,
//! size the last cluster, append Cues, write Duration and sizes) and then checked with an
//! independent parser, the `matroska` crate. The sidecar loses a partial last line.
//! A WAV file gets the sizes of the data actually in it (`audio::wav::repair`), checked
//! with an independent reader (`hound`).

use std::fs::OpenOptions;
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
    let plan = mkv_read::plan_repair(&mut file).map_err(|e| format!("{}: {e}", path.display()))?;
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
