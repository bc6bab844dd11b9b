//! WAV files that survive a crash.
//!
//! `hound` writes the format; this module decides when what was written reaches the disk,
//! and finishes a WAV that a crash or power cut left with stale sizes (`hindsight repair`).
//!
//! A WAV's header holds two sizes (the RIFF chunk's and the `data` chunk's) that a writer
//! can only know once it has stopped. While a file grows:
//! - the samples go to the kernel as they are written (a `BufWriter` of 8 KiB in between);
//! - the header's sizes are brought up to date after the first samples (so that a file
//!   killed a moment after its start already plays them) and then at least every
//!   [`Durability::header_every`]: a kill -9 leaves a file whose header is at most that far
//!   behind its data, and every player reads it;
//! - the data and the header are `fdatasync`ed every `storage.fsync_interval`, as the
//!   video is: a power cut loses at most that.
//!
//! `hindsight repair` (and the scan at start-up) finds a WAV whose sizes disagree with its
//! length and rewrites them from the data actually on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::SampleFormat;

/// The longest the header may lag the data, whatever the fsync policy (kill -9 safety).
const HEADER_MAX: Duration = Duration::from_millis(500);

/// When a growing WAV's header and data reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    /// Sizes in the header are rewritten at least this often while samples arrive.
    pub header_every: Duration,
    /// `fdatasync` this often (`storage.fsync_interval`); `None`: leave it to the kernel.
    pub sync_every: Option<Duration>,
}

impl Durability {
    /// The policy for `storage.fsync_interval` (`None` = never sync; zero = after every write).
    pub fn for_fsync_interval(interval: Option<Duration>) -> Durability {
        Durability {
            header_every: interval.map_or(HEADER_MAX, |i| i.min(HEADER_MAX)),
            sync_every: interval,
        }
    }
}

/// A WAV file being written.
pub struct WavOutput {
    wav: hound::WavWriter<BufWriter<File>>,
    /// The same open file, for `fdatasync`.
    file: File,
    format: SampleFormat,
    policy: Durability,
    /// Samples written since the header was last brought up to date / since the last sync.
    unheadered: bool,
    unsynced: bool,
    /// The header has never been brought up to date (it still says 0 bytes).
    fresh: bool,
    last_header: Instant,
    last_sync: Instant,
}

impl WavOutput {
    /// Creates `path` (never overwriting) and makes its name durable.
    pub fn create(
        path: &Path,
        rate: u32,
        channels: u16,
        format: SampleFormat,
        policy: Durability,
    ) -> io::Result<WavOutput> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: match format {
                SampleFormat::S16 => 16,
                SampleFormat::F32 => 32,
            },
            sample_format: match format {
                SampleFormat::S16 => hound::SampleFormat::Int,
                SampleFormat::F32 => hound::SampleFormat::Float,
            },
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = crate::writer::files::create_new(path)?;
        let sync = file.try_clone()?;
        let wav = hound::WavWriter::new(BufWriter::new(file), spec).map_err(to_io)?;
        if policy.sync_every.is_some() {
            sync.sync_data()?;
        }
        crate::writer::files::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        let now = Instant::now();
        Ok(WavOutput {
            wav,
            file: sync,
            format,
            policy,
            unheadered: false,
            unsynced: false,
            fresh: true,
            last_header: now,
            last_sync: now,
        })
    }

    /// Appends interleaved samples in [-1, 1].
    pub fn write(&mut self, samples: &[f32]) -> io::Result<()> {
        for &s in samples {
            match self.format {
                SampleFormat::S16 => self.wav.write_sample(super::to_i16(s)),
                SampleFormat::F32 => self.wav.write_sample(s),
            }
            .map_err(to_io)?;
        }
        self.unheadered |= !samples.is_empty();
        Ok(())
    }

    /// Appends `samples` zeros (interleaved count).
    pub fn write_silence(&mut self, samples: u64) -> io::Result<()> {
        for _ in 0..samples {
            match self.format {
                SampleFormat::S16 => self.wav.write_sample(0i16),
                SampleFormat::F32 => self.wav.write_sample(0f32),
            }
            .map_err(to_io)?;
        }
        self.unheadered |= samples > 0;
        Ok(())
    }

    /// Brings the header up to date and syncs, as the policy says. Called after writing.
    pub fn settle(&mut self) -> io::Result<()> {
        if self.unheadered && (self.fresh || self.last_header.elapsed() >= self.policy.header_every)
        {
            // hound's flush rewrites both sizes and empties the BufWriter.
            self.wav.flush().map_err(to_io)?;
            self.fresh = false;
            self.unheadered = false;
            self.unsynced = true;
            self.last_header = Instant::now();
        }
        if let Some(every) = self.policy.sync_every {
            if self.unsynced && self.last_sync.elapsed() >= every {
                self.file.sync_data()?;
                self.unsynced = false;
                self.last_sync = Instant::now();
            }
        }
        Ok(())
    }

    /// Writes the final sizes and makes the file durable, whatever the policy.
    pub fn finish(self) -> io::Result<()> {
        self.wav.finalize().map_err(to_io)?;
        self.file.sync_data()
    }
}

fn to_io(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Where a WAV's parts are, read from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavLayout {
    /// The RIFF chunk's size as the header states it.
    pub riff_size: u32,
    /// Offset of the `data` chunk's size field, and of its first sample byte.
    pub data_size_at: u64,
    pub data_start: u64,
    /// The `data` chunk's size as the header states it.
    pub data_size: u32,
    pub block_align: u16,
    pub rate: u32,
    /// The file's length.
    pub len: u64,
}

impl WavLayout {
    /// Sample bytes actually in the file: whole frames after the header.
    pub fn data_on_disk(&self) -> u64 {
        let raw = self.len.saturating_sub(self.data_start);
        let align = u64::from(self.block_align.max(1));
        (raw / align * align).min(u64::from(u32::MAX) / align * align)
    }

    /// The header's sizes agree with the data on disk: a finished file.
    pub fn is_final(&self) -> bool {
        u64::from(self.data_size) == self.data_on_disk()
            && u64::from(self.riff_size) == self.data_start + self.data_on_disk() - 8
            && self.len == self.data_start + self.data_on_disk()
    }
}

/// Why a file is not a WAV this module can read or repair.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a WAV file: {0}")]
    NotWav(&'static str),
    #[error("the file ends inside its header (byte {0}): there is no audio to keep")]
    HeaderCut(u64),
}

/// Reads the header of the WAV in `r`.
pub fn layout<R: Read + Seek>(r: &mut R) -> Result<WavLayout, WavError> {
    let len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 12];
    read_exact_or(r, &mut head, 0)?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(WavError::NotWav("no RIFF/WAVE header"));
    }
    let riff_size = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let mut pos = 12u64;
    let mut fmt: Option<(u16, u32)> = None;
    loop {
        let mut ch = [0u8; 8];
        read_exact_or(r, &mut ch, pos)?;
        let size = u32::from_le_bytes(ch[4..8].try_into().expect("4 bytes"));
        let body = pos + 8;
        match &ch[0..4] {
            b"fmt " => {
                let mut f = [0u8; 16];
                if size < 16 {
                    return Err(WavError::NotWav("a fmt chunk shorter than 16 bytes"));
                }
                read_exact_or(r, &mut f, body)?;
                let rate = u32::from_le_bytes(f[4..8].try_into().expect("4 bytes"));
                let align = u16::from_le_bytes(f[12..14].try_into().expect("2 bytes"));
                fmt = Some((align, rate));
            }
            b"data" => {
                let (block_align, rate) = fmt.ok_or(WavError::NotWav(
                    "the data chunk comes before the fmt chunk",
                ))?;
                return Ok(WavLayout {
                    riff_size,
                    data_size_at: pos + 4,
                    data_start: body,
                    data_size: size,
                    block_align,
                    rate,
                    len,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        pos = body + u64::from(size) + u64::from(size & 1);
        if pos >= len {
            return Err(WavError::HeaderCut(len));
        }
    }
}

fn read_exact_or<R: Read + Seek>(r: &mut R, buf: &mut [u8], at: u64) -> Result<(), WavError> {
    r.seek(SeekFrom::Start(at))?;
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            WavError::HeaderCut(at)
        } else {
            WavError::Io(e)
        }
    })
}

/// True if `path` is a WAV whose header does not match its data (a crash cut it).
pub fn is_unfinished(path: &Path) -> Result<bool, WavError> {
    let mut f = File::open(path)?;
    Ok(!layout(&mut f)?.is_final())
}

/// What a WAV repair did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WavRepaired {
    pub already_final: bool,
    /// Sample frames (one sample per channel) in the finished file.
    pub frames: u64,
    pub duration_s: f64,
    /// Bytes of an incomplete last sample frame that were cut away.
    pub dropped_bytes: u64,
}

/// Finishes a WAV cut by a crash: the sizes are written from the data on disk (a partial
/// last sample frame is cut), then the file is read back with an independent reader.
pub fn repair(path: &Path) -> Result<WavRepaired, WavRepairError> {
    let at = || path.to_path_buf();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| WavRepairError::Open { path: at(), source })?;
    let l = layout(&mut f).map_err(|source| WavRepairError::Layout { path: at(), source })?;
    let data = l.data_on_disk();
    let frames = data / u64::from(l.block_align.max(1));
    let repaired = WavRepaired {
        already_final: l.is_final(),
        frames,
        duration_s: frames as f64 / f64::from(l.rate.max(1)),
        dropped_bytes: l.len - (l.data_start + data),
    };
    if repaired.already_final {
        return Ok(repaired);
    }
    let write = |f: &mut File| -> io::Result<()> {
        f.set_len(l.data_start + data)?;
        f.sync_data()?;
        f.seek(SeekFrom::Start(l.data_size_at))?;
        f.write_all(&(data as u32).to_le_bytes())?;
        f.seek(SeekFrom::Start(4))?;
        f.write_all(&((l.data_start + data - 8) as u32).to_le_bytes())?;
        f.sync_data()
    };
    write(&mut f).map_err(|source| WavRepairError::Write { path: at(), source })?;
    drop(f);
    let r = hound::WavReader::open(path)
        .map_err(|source| WavRepairError::StillBroken { path: at(), source })?;
    if u64::from(r.duration()) != frames {
        return Err(WavRepairError::Mismatch {
            path: at(),
            found: u64::from(r.duration()),
            frames,
        });
    }
    Ok(repaired)
}

/// Why a WAV could not be finished, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WavRepairError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Layout { path: PathBuf, source: WavError },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{} still does not read after repair: {source}", path.display())]
    StillBroken { path: PathBuf, source: hound::Error },
    #[error("{}: after repair a reader finds {found} sample frames, not {frames}", path.display())]
    Mismatch {
        path: PathBuf,
        found: u64,
        frames: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, frames: usize, channels: u16) -> Vec<u8> {
        let policy = Durability::for_fsync_interval(None);
        let mut w = WavOutput::create(path, 8000, channels, SampleFormat::S16, policy).unwrap();
        let s: Vec<f32> = (0..frames * channels as usize)
            .map(|i| ((i % 200) as f32 - 100.0) / 200.0)
            .collect();
        w.write(&s).unwrap();
        w.finish().unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_finished_wav_is_final_and_needs_no_repair() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.wav");
        write_wav(&p, 1000, 2);
        assert!(!is_unfinished(&p).unwrap());
        let r = repair(&p).unwrap();
        assert!(r.already_final);
        assert_eq!(r.frames, 1000);
    }

    /// Every cut after the header, with the sizes a crash leaves (zero, or lagging), is
    /// repaired to exactly the whole sample frames on disk.
    #[test]
    fn every_cut_is_repaired_to_its_whole_sample_frames() {
        let tmp = tempfile::tempdir().unwrap();
        let full = write_wav(&tmp.path().join("full.wav"), 300, 2);
        let start = layout(&mut io::Cursor::new(&full)).unwrap().data_start as usize;
        for cut in start..=full.len() {
            for stale in [0u32, 100] {
                let mut bytes = full[..cut].to_vec();
                let at = start - 4;
                bytes[at..start].copy_from_slice(&stale.to_le_bytes());
                bytes[4..8].copy_from_slice(&(stale + 36).to_le_bytes());
                let p = tmp.path().join(format!("cut-{cut}-{stale}.wav"));
                std::fs::write(&p, &bytes).unwrap();
                let whole = ((cut - start) / 4) as u64;
                let final_already = stale as u64 == whole * 4 && cut == start + whole as usize * 4;
                assert_eq!(is_unfinished(&p).unwrap(), !final_already, "cut {cut}");
                let r = repair(&p).unwrap();
                assert_eq!(r.frames, whole, "cut {cut}");
                assert_eq!(r.dropped_bytes, (cut - start) as u64 % 4);
                let back = std::fs::read(&p).unwrap();
                assert_eq!(
                    &back[start..],
                    &full[start..back.len()],
                    "samples untouched"
                );
                assert!(!is_unfinished(&p).unwrap());
            }
        }
    }

    #[test]
    fn other_files_are_refused_with_a_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.wav");
        std::fs::write(&p, b"not a wav at all, just text").unwrap();
        assert!(repair(&p).unwrap_err().to_string().contains("not a WAV"));
        std::fs::write(&p, b"RIFF\0\0\0\0WAVEfmt ").unwrap();
        assert!(repair(&p)
            .unwrap_err()
            .to_string()
            .contains("inside its header"));
    }

    #[test]
    fn the_header_follows_the_data_from_the_first_write() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("grow.wav");
        let policy = Durability {
            header_every: Duration::from_secs(3600),
            sync_every: None,
        };
        let mut w = WavOutput::create(&p, 8000, 1, SampleFormat::S16, policy).unwrap();
        w.write(&[0.25; 800]).unwrap();
        w.settle().unwrap();
        // Without finishing (as after kill -9): the first samples are already declared.
        let l = layout(&mut File::open(&p).unwrap()).unwrap();
        assert_eq!((l.data_size, l.data_on_disk()), (1600, 1600));
        w.write(&[0.25; 800]).unwrap();
        w.settle().unwrap();
        let l = layout(&mut File::open(&p).unwrap()).unwrap();
        assert_eq!(l.data_size, 1600, "later updates wait for header_every");
        drop(w);
    }
}
