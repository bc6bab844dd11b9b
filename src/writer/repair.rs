//! Finishing an MKV that a crash or power cut left unfinished, with its sidecars (what
//! `hindsight repair FILE` does to a video file, and what the writer does to a file whose
//! writes failed).
//!
//! The Matroska part is planned by the reader (`mkv_read`: cut a partial block, size the
//! last cluster, append Cues, write Duration and sizes) and then checked with an
//! independent parser, the `matroska` crate. The frames sidecar loses a partial last line.
//! Marks (chapters, which a file only gets when it is finished) come back from the events
//! sidecar, where each was written as it happened.

use std::fs::OpenOptions;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use mkv::read as mkv_read;

/// What a repair did.
#[derive(Debug)]
pub struct Repaired {
    pub already_final: bool,
    /// Video frames kept.
    pub frames: u64,
    /// Audio blocks kept (a muxed audio track).
    pub audio_blocks: u64,
    pub duration_s: f64,
    pub dropped_bytes: u64,
    /// What the frames sidecar lost to fit the file.
    pub sidecar: SidecarCut,
}

/// What repair removed from the sidecars: the frames sidecar's incomplete last line and
/// its rows of frames the file does not hold; the events sidecar's incomplete last row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SidecarCut {
    pub partial_line: bool,
    pub rows: u64,
    pub partial_event: bool,
}

impl SidecarCut {
    /// "; the sidecar's ..." for repair's line, or nothing.
    pub fn said(&self) -> String {
        let rows = match self.rows {
            0 => None,
            1 => Some("its row of a frame the file does not hold".to_string()),
            n => Some(format!("its {n} rows of frames the file does not hold")),
        };
        let frames = match (self.partial_line, rows) {
            (false, None) => String::new(),
            (true, None) => "; sidecar's partial last line removed".into(),
            (false, Some(r)) => format!("; sidecar: {r} removed"),
            (true, Some(r)) => format!("; sidecar: its partial last line and {r} removed"),
        };
        match self.partial_event {
            true => frames + "; events sidecar's incomplete last row removed",
            false => frames,
        }
    }
}

impl Repaired {
    /// "N frames", and the audio blocks of a muxed track: the frames are what the writer's
    /// summary, the `stop` row and the frames sidecar count.
    pub fn contents(&self) -> String {
        match self.audio_blocks {
            0 => format!("{} frames", self.frames),
            n => format!("{} frames and {n} audio blocks", self.frames),
        }
    }
}

/// Why a recording could not be finished, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    /// A running recorder holds it (`writer::files::create_new`).
    #[error("{}: {RECORDING_NOW}", path.display())]
    Recording { path: PathBuf },
    /// Not a recording, or cut inside its header (the reader says where).
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: mkv_read::ReadError,
    },
    #[error("{}: {source}", path.display())]
    Sidecar { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{} still does not parse after repair: {cause}", path.display())]
    StillBroken { path: PathBuf, cause: String },
    #[error("{} has no duration after repair", path.display())]
    NoDuration { path: PathBuf },
}

/// Why a file that a running hindsight is writing is left alone: a repair would fix its
/// size where the recording is now, and a crash later would hide everything written
/// after (and the next repair cut it off as an incomplete frame).
pub const RECORDING_NOW: &str = "being recorded now, by a running hindsight: it is finished \
    when its recording stops, not by repair (nothing was changed)";

pub fn repair_file(path: &Path) -> Result<Repaired, RepairError> {
    let at = || path.to_path_buf();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| RepairError::Open { path: at(), source })?;
    // Held until the repair ends: nothing else writes the file meanwhile.
    if let Ok(false) = crate::writer::files::hold(&file) {
        return Err(RepairError::Recording { path: at() });
    }
    // Before the marks are read from it: a cut row is no mark.
    let events = path.with_extension("events.csv");
    let partial_event = fit_events(&events).map_err(|source| RepairError::Sidecar {
        path: events,
        source,
    })?;
    let marks = marks_of(path);
    let plan = mkv_read::plan_repair_with(&mut file, &marks)
        .map_err(|source| RepairError::Read { path: at(), source })?;
    let sidecar = sidecar_of(path);
    let mut sidecar =
        fit_sidecar(&sidecar, plan.frames).map_err(|source| RepairError::Sidecar {
            path: sidecar,
            source,
        })?;
    sidecar.partial_event = partial_event;
    if plan.already_final {
        return Ok(Repaired {
            already_final: true,
            frames: plan.frames,
            audio_blocks: plan.blocks - plan.frames,
            duration_s: plan.duration_ns as f64 / 1e9,
            dropped_bytes: 0,
            sidecar,
        });
    }
    mkv_read::apply_plan(&mut file, &plan)
        .map_err(|source| RepairError::Write { path: at(), source })?;
    drop(file);
    let m = matroska::open(path).map_err(|e| RepairError::StillBroken {
        path: at(),
        cause: e.to_string(),
    })?;
    if m.info.duration.is_none() {
        return Err(RepairError::NoDuration { path: at() });
    }
    Ok(Repaired {
        already_final: false,
        frames: plan.frames,
        audio_blocks: plan.blocks - plan.frames,
        duration_s: plan.duration_ns as f64 / 1e9,
        dropped_bytes: plan.dropped_bytes,
        sidecar,
    })
}

fn sidecar_of(mkv: &Path) -> PathBuf {
    mkv.with_extension("frames.csv")
}

/// Seconds with up to 9 decimals (as the sidecars write them) to exact nanoseconds.
pub fn parse_ns(text: &str) -> Option<i64> {
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
pub fn marks_of(mkv: &Path) -> Vec<mkv::mux::Chapter> {
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
            Some(mkv::mux::Chapter {
                time_ns: (at - origin).max(0) as u64,
                title: r.get(4)?.to_string(),
            })
        })
        .collect()
}

/// Fits the frames sidecar at `path`, if it exists, to a file of `frames` frames: drops an
/// incomplete last line (no trailing newline), and the rows after the file's last frame. A
/// batch's rows are written before its frames, so a crash between the two leaves rows of
/// frames that never reached the file; rows of frames the file holds are never touched,
/// and a sidecar with fewer rows than that (a power cut that kept frames whose rows were
/// not on the disk yet) keeps them all. Read line by line: an hour's sidecar is 100 MB.
fn fit_sidecar(path: &Path, frames: u64) -> io::Result<SidecarCut> {
    let f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SidecarCut::default()),
        Err(e) => return Err(e),
    };
    let header = crate::writer::sidecar::FRAMES_HEADER
        .split(',')
        .next()
        .expect("a first column");
    let mut lines = io::BufReader::with_capacity(1 << 16, &f);
    let mut line = Vec::new();
    let (mut read, mut keep, mut rows) = (0u64, 0u64, 0u64);
    let mut cut = SidecarCut::default();
    loop {
        line.clear();
        let n = lines.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if !line.ends_with(b"\n") {
            cut.partial_line = true;
            break;
        }
        let is_header = read == 0 && line.starts_with(header.as_bytes());
        read += n as u64;
        if is_header || rows < frames {
            rows += u64::from(!is_header);
            keep = read;
        } else {
            cut.rows += 1;
        }
    }
    if cut != SidecarCut::default() {
        f.set_len(keep)?;
        f.sync_data()?;
    }
    Ok(cut)
}

/// Drops an incomplete last row of the events sidecar at `path`, if it exists and has one
/// (cut by a write that failed part way, a disk filling, or a power cut): CSV readers such
/// as pandas refuse a file that ends inside a quoted field, and a lenient one would read a
/// cut mark as a mark. A row ends at a line break outside quotes (a mark's text may hold
/// line breaks, quoted). Returns whether it dropped one.
fn fit_events(path: &Path) -> io::Result<bool> {
    let f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut lines = io::BufReader::with_capacity(1 << 16, &f);
    let mut line = Vec::new();
    let (mut read, mut keep, mut quoted) = (0u64, 0u64, false);
    loop {
        line.clear();
        let n = lines.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        // An escaped quote is two: only an odd count opens or closes a quoted field.
        quoted ^= line.iter().filter(|&&b| b == b'"').count() % 2 == 1;
        if line.ends_with(b"\n") && !quoted {
            keep = read;
        }
    }
    if keep == read {
        return Ok(false);
    }
    f.set_len(keep)?;
    f.sync_data()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row cut anywhere (in a quoted mark that holds a line break, too) goes; whole rows,
    /// multi-line marks among them, stay.
    #[test]
    fn the_events_sidecars_incomplete_last_row_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.events.csv");
        let whole = "lsl_time,unix_time,event,source,detail\n\
                     1.0,2.0,start,api: start,recording 1\n\
                     1.5,2.5,mark,api: mark,\"two\nlines, \"\"quoted\"\"\"\n\
                     1.6,2.6,mark,api: mark,plain\n";
        let fit = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let cut = fit_events(&path).unwrap();
            (cut, std::fs::read_to_string(&path).unwrap())
        };
        assert_eq!(fit(whole), (false, whole.to_string()));
        for cut_at in [
            "1.7,2.7,mark,api: mark,\"cut\nin a line",
            "1.7,2.7,ma",
            "\"",
            "1.7\r",
        ] {
            assert_eq!(fit(&format!("{whole}{cut_at}")), (true, whole.to_string()));
        }
        // Cut inside the multi-line mark: the rows before it stay.
        let at = whole.find("lines").unwrap();
        let before = &whole[..whole.find("1.5,").unwrap()];
        assert_eq!(fit(&whole[..at]), (true, before.to_string()));
        // Cut inside the header: nothing is left; no file: nothing to do.
        assert_eq!(fit("lsl_time,un"), (true, String::new()));
        assert!(!fit_events(&tmp.path().join("none.events.csv")).unwrap());
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

    /// A crash between a batch's rows and its frames, or inside either: the sidecar keeps
    /// the rows of the frames the file holds, whole, and no other.
    #[test]
    fn the_sidecar_is_fitted_to_the_frames_the_file_holds() {
        use crate::writer::sidecar::{FRAMES_HEADER, FRAMES_HEADER_EXPOSURE};
        for (header, tail) in [(FRAMES_HEADER, ""), (FRAMES_HEADER_EXPOSURE, ",2000,4,1")] {
            let tmp = tempfile::tempdir().unwrap();
            let csv = tmp.path().join("x.frames.csv");
            let row = |n: u64| format!("{n},1.0,2.0,0.0,100,0{tail}\n");
            let rows = |k: u64| -> String { (0..k).map(row).collect() };
            let fit = |text: &str, frames: u64| {
                std::fs::write(&csv, text).unwrap();
                let cut = fit_sidecar(&csv, frames).unwrap();
                (cut, std::fs::read_to_string(&csv).unwrap())
            };
            let whole = header.to_string() + &rows(7);
            // Rows of 7 frames, a partial eighth; the file kept 5 frames.
            let (cut, left) = fit(&(whole.clone() + "7,1.0,2"), 5);
            assert_eq!((cut.partial_line, cut.rows), (true, 2));
            assert_eq!(left, header.to_string() + &rows(5));
            assert_eq!(
                cut.said(),
                "; sidecar: its partial last line and its 2 rows of frames the file does \
                 not hold removed"
            );
            // As many rows as frames: untouched, and nothing said.
            assert_eq!(fit(&whole, 7), (SidecarCut::default(), whole.clone()));
            assert_eq!(SidecarCut::default().said(), "");
            // Fewer rows than frames (a power cut kept frames before their rows): kept.
            assert_eq!(fit(&whole, 9), (SidecarCut::default(), whole.clone()));
            // One row too many, and a partial line alone.
            let (cut, left) = fit(&whole, 6);
            assert_eq!(
                (cut.said(), left),
                (
                    "; sidecar: its row of a frame the file does not hold removed".into(),
                    header.to_string() + &rows(6)
                )
            );
            let (cut, left) = fit(&(whole.clone() + "7,"), 7);
            assert_eq!(
                (cut.said(), left),
                (
                    "; sidecar's partial last line removed".into(),
                    whole.clone()
                )
            );
            // A file of no frame keeps the header; a sidecar cut inside it loses it.
            assert_eq!(fit(&whole, 0).1, header);
            assert_eq!(fit("frame_num", 0).1, "");
        }
        // No sidecar: nothing to do.
        let tmp = tempfile::tempdir().unwrap();
        let none = fit_sidecar(&tmp.path().join("none.frames.csv"), 3).unwrap();
        assert_eq!(none, SidecarCut::default());
    }
}
