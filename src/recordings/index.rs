//! Finding one row of a frames sidecar without reading all of it: what the frame viewer
//! asks for with every step. A sidecar of an hour at 536 fps holds 1.9 million rows
//! (114 MB); parsing it for every frame shown took a second and 300 MB of the recorder's
//! memory, in the process that records. So each sidecar is read once, and where every
//! [`STEP`]th row starts is kept (30 kB for that hour); a lookup then reads a few blocks
//! of rows. A sidecar that grew (the recording in progress) is read on from where the
//! last look ended; one that changed otherwise is read again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{parse_row, FrameRow};

/// Rows between two kept positions.
#[cfg(not(test))]
const STEP: usize = 1024;
#[cfg(test)]
const STEP: usize = 4;

/// The most sidecars whose positions are kept (a viewer looks at one camera of one
/// recording at a time; a few browsers at once).
const KEPT: usize = 16;

/// The indexes kept, at most [`KEPT`]: the one looked at longest ago makes room (the
/// recording in progress and the one in the viewer stay while the list reads others).
#[derive(Default)]
struct Kept {
    by_path: HashMap<PathBuf, (u64, SidecarIndex)>,
    /// Counts looks: each entry's is when it was last looked at.
    looks: u64,
}

impl Kept {
    fn get(&mut self, path: &Path) -> Option<SidecarIndex> {
        self.looks += 1;
        let (seen, index) = self.by_path.get_mut(path)?;
        *seen = self.looks;
        Some(index.clone())
    }

    fn put(&mut self, path: &Path, index: SidecarIndex) {
        self.looks += 1;
        if self.by_path.len() >= KEPT && !self.by_path.contains_key(path) {
            let oldest = self.by_path.iter().min_by_key(|(_, (seen, _))| *seen);
            if let Some(p) = oldest.map(|(p, _)| p.clone()) {
                self.by_path.remove(&p);
            }
        }
        self.by_path.insert(path.to_path_buf(), (self.looks, index));
    }
}

/// Where a sidecar's rows are.
#[derive(Clone, Debug)]
pub struct SidecarIndex {
    /// The file as it was when last read: length and modification time.
    len: u64,
    modified: Option<SystemTime>,
    /// Where the complete lines end (a partial last line, cut by a crash or being
    /// written, is left for the next look).
    end: u64,
    /// Rows (lines that parse as rows; the header and others are skipped, as
    /// [`super::read_frame_rows`] skips them).
    pub rows: usize,
    /// Every [`STEP`]th row's frame number and where its line starts.
    marks: Vec<(u64, u64)>,
    /// The first and the last row: frame number and LSL time (ns).
    pub first: Option<(u64, i64)>,
    pub last: Option<(u64, i64)>,
    /// Frame numbers missing between rows, in all and the most at once.
    pub missing: u64,
    pub largest_gap: u64,
}

impl SidecarIndex {
    /// The index of the sidecar at `path`, from the kept ones if it has not changed
    /// since, read on where it only grew.
    pub fn of(path: &Path) -> io::Result<SidecarIndex> {
        static KEPT_INDEXES: parking_lot::Mutex<Option<Kept>> = parking_lot::Mutex::new(None);
        let meta = std::fs::metadata(path)?;
        let (len, modified) = (meta.len(), meta.modified().ok());
        let had = KEPT_INDEXES.lock().as_mut().and_then(|k| k.get(path));
        let index = match had {
            Some(i) if i.len == len && i.modified == modified => return Ok(i),
            // Only appended to since: read on.
            Some(i) if len > i.len => i.read_on(path)?,
            _ => SidecarIndex::empty().read_on(path)?,
        };
        let mut kept = KEPT_INDEXES.lock();
        kept.get_or_insert_with(Kept::default)
            .put(path, index.clone());
        Ok(index)
    }

    fn empty() -> SidecarIndex {
        SidecarIndex {
            len: 0,
            modified: None,
            end: 0,
            rows: 0,
            marks: Vec::new(),
            first: None,
            last: None,
            missing: 0,
            largest_gap: 0,
        }
    }

    /// This index extended by the complete lines after `end`.
    fn read_on(mut self, path: &Path) -> io::Result<SidecarIndex> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        (self.len, self.modified) = (meta.len(), meta.modified().ok());
        file.seek(SeekFrom::Start(self.end))?;
        let mut reader = BufReader::with_capacity(256 << 10, file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            let Some(text) = line.strip_suffix('\n') else {
                break; // the end, or a partial last line
            };
            if let Some(row) = parse_row(text) {
                if self.rows.is_multiple_of(STEP) {
                    self.marks.push((row.frame, self.end));
                }
                if let Some((before, _)) = self.last {
                    let gap = row.frame.saturating_sub(before).saturating_sub(1);
                    self.missing += gap;
                    self.largest_gap = self.largest_gap.max(gap);
                }
                self.rows += 1;
                self.first.get_or_insert((row.frame, row.lsl_ns));
                self.last = Some((row.frame, row.lsl_ns));
            }
            self.end += n as u64;
        }
        Ok(self)
    }

    /// The last row's frame number.
    pub fn last_frame(&self) -> Option<u64> {
        self.last.map(|(frame, _)| frame)
    }

    /// The position of the first row whose frame number is `n` or more (rows are in
    /// frame-number order), `rows` if there is none.
    pub fn position_of(&self, path: &Path, n: u64) -> io::Result<usize> {
        let k = self.marks.partition_point(|&(frame, _)| frame < n);
        if k == 0 {
            return Ok(0);
        }
        let from = (k - 1) * STEP;
        let block = self.rows_at(path, from, from + STEP)?;
        Ok(from + block.iter().take_while(|r| r.frame < n).count())
    }

    /// The rows at positions `from..to` (those of them there are).
    pub fn rows_at(&self, path: &Path, from: usize, to: usize) -> io::Result<Vec<FrameRow>> {
        let to = to.min(self.rows);
        let Some(&(_, offset)) = self.marks.get(from / STEP) else {
            return Ok(Vec::new());
        };
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut reader = BufReader::with_capacity(64 << 10, file);
        let mut out = Vec::with_capacity(to.saturating_sub(from));
        let (mut at, mut line) = (from / STEP * STEP, String::new());
        while at < to {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let Some(row) = line.strip_suffix('\n').and_then(parse_row) else {
                continue;
            };
            if at >= from {
                out.push(row);
            }
            at += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_text(n: u64) -> String {
        format!(
            "{n},{}.5,{}.0,{}.0,{},0\n",
            100 + n,
            1_700_000_000 + n,
            n,
            1000 + n
        )
    }

    /// The list reading many recordings' sidecars makes room by the one looked at longest
    /// ago: the one the viewer steps through (looked at between) stays, and it is read
    /// once. Until December 2026 a full cache was emptied, so a list of more than 16
    /// files read the recording in progress again from its start (a second for an hour
    /// at 536 fps).
    #[test]
    fn the_index_looked_at_longest_ago_makes_room() {
        let mut kept = Kept::default();
        let viewed = Path::new("/rec/viewed.frames.csv");
        kept.put(viewed, SidecarIndex::empty());
        for i in 0..3 * KEPT {
            let other = PathBuf::from(format!("/rec/{i}.frames.csv"));
            assert!(kept.get(&other).is_none());
            kept.put(&other, SidecarIndex::empty());
            assert!(kept.get(viewed).is_some(), "lost after {i} others");
            assert!(kept.by_path.len() <= KEPT);
        }
        // The latest others are kept; the first ones went.
        let last = PathBuf::from(format!("/rec/{}.frames.csv", 3 * KEPT - 1));
        assert!(kept.get(&last).is_some());
        assert!(kept.get(Path::new("/rec/0.frames.csv")).is_none());
        assert_eq!(kept.by_path.len(), KEPT);
    }

    #[test]
    fn every_row_is_found_as_reading_them_all_finds_it_and_growth_is_read_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.frames.csv");
        // Frame numbers with gaps, a line that is not a row, and a partial last line.
        let numbers: Vec<u64> = (0..23).map(|i| 10 + i * 2 + i / 7).collect();
        let mut text = String::from("frame_number,lsl_time,unix_time,pts,bytes,pre_trigger\n");
        for (i, &n) in numbers.iter().enumerate() {
            text.push_str(&row_text(n));
            if i == 9 {
                text.push_str("not a row\n");
            }
        }
        text.push_str("999,1.0,2");
        std::fs::write(&path, &text).unwrap();
        let all = super::super::read_frame_rows(&path).unwrap();
        assert_eq!(all.len(), numbers.len());
        let index = SidecarIndex::of(&path).unwrap();
        assert_eq!(index.rows, all.len());
        assert_eq!(index.last_frame(), numbers.last().copied());
        assert_eq!(index.first, Some((10, 110_500_000_000)));
        let steps = numbers.windows(2).map(|w| w[1] - w[0] - 1);
        assert_eq!(index.missing, steps.clone().sum::<u64>());
        assert_eq!(index.largest_gap, steps.max().unwrap());
        for n in 0..numbers.last().unwrap() + 3 {
            let want = all.iter().take_while(|r| r.frame < n).count();
            assert_eq!(index.position_of(&path, n).unwrap(), want, "frame {n}");
        }
        for from in 0..all.len() {
            for to in from..all.len() + 2 {
                let got = index.rows_at(&path, from, to).unwrap();
                assert_eq!(got, all[from..to.min(all.len())], "{from}..{to}");
            }
        }
        // The partial line completed and more rows: read on from where it ended.
        let mut more = text.trim_end_matches("999,1.0,2").to_string();
        for n in 100..110 {
            more.push_str(&row_text(n));
        }
        std::fs::write(&path, &more).unwrap();
        let grown = SidecarIndex::of(&path).unwrap();
        let all = super::super::read_frame_rows(&path).unwrap();
        assert_eq!(grown.rows, all.len());
        assert_eq!(grown.rows_at(&path, 0, all.len()).unwrap(), all);
        assert_eq!(grown.position_of(&path, 105).unwrap(), all.len() - 5);
        // Cut shorter (a repair): read again.
        let cut: String = more.lines().take(6).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, &cut).unwrap();
        let again = SidecarIndex::of(&path).unwrap();
        assert_eq!(again.rows, 5);
        assert_eq!(
            again.rows_at(&path, 0, 9).unwrap(),
            super::super::read_frame_rows(&path).unwrap()
        );
    }
}
