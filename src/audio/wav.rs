//! WAV files that survive a crash, and that may grow past 4 GiB.
//!
//! `hound` encodes the format chunk (its speaker mask set as ffmpeg sets it,
//! [`speaker_mask`]) and reads files back to check a repair; this module
//! writes the file around it, decides when what was written reaches the disk, and finishes
//! a WAV that a crash or power cut left with stale sizes (`hindsight repair`).
//!
//! A WAV's header holds two sizes (the RIFF chunk's and the `data` chunk's) that a writer
//! can only know once it has stopped. While a file grows:
//! - the samples go to the kernel as they are written (a `BufWriter` of 8 KiB in between);
//! - the header's sizes are brought up to date after the first samples (so that a file
//!   killed a moment after its start already plays them) and then at least every
//!   [`Durability::header_every`]: a kill -9 leaves a file whose header is at most that far
//!   behind its data, and every player reads it;
//! - the data and the header are `fdatasync`ed every `storage.fsync_interval`, as the
//!   video is: a power cut loses at most that (and what the disk has not taken yet). Those
//!   syncs run on a thread of the file's own (`wav-sync`): on a disk slower than the
//!   video one waits tens of seconds behind the video's writeback, and the audio thread,
//!   which must take its input within 2 s, lost the audio meanwhile (found with a disk
//!   limited to 250 kB/s: 54 s of a 70 s recording). So does the last one, at `finish`,
//!   whose failure is logged; [`wait_for_syncs`] waits for every last sync (the audio
//!   thread's end).
//!
//! Those sizes are 32-bit: a RIFF WAV holds at most 4 GiB, which a recording reaches in
//! 47 minutes at 384 kHz in f32, in 6 hours at 48 kHz stereo f32, in 25 hours at the
//! defaults. So every file is written as `ffmpeg -rf64 auto` writes one (EBU Tech 3306): a
//! 28-byte `JUNK` chunk right after `WAVE` holds a place that every reader skips, and a file
//! that grows past 4 GiB becomes an RF64 file in place: `RF64` instead of `RIFF`, and the
//! `JUNK` chunk becomes the `ds64` chunk with the 64-bit sizes (the 32-bit ones say
//! 0xFFFFFFFF). ffmpeg, sox, libsndfile (soundfile, MATLAB) read RF64.
//!
//! `hindsight repair` (and the scan at start-up) finds a WAV whose sizes disagree with its
//! length and rewrites them from the data actually on disk, never cutting a sample frame.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::SampleFormat;

/// The longest the header may lag the data, whatever the fsync policy (kill -9 safety).
const HEADER_MAX: Duration = Duration::from_millis(500);

/// The most a RIFF header can state: the RIFF chunk's size (the file's length less 8).
const RIFF_MAX: u64 = u32::MAX as u64;

/// The `ds64` chunk's body: RIFF size, data size, sample count (64-bit each) and an empty
/// table of other chunks' sizes. A `JUNK` chunk of this size holds its place.
const DS64_BODY: usize = 28;

/// Where the place-holding `JUNK` chunk (later `ds64`) begins: right after `RIFF....WAVE`.
const RESERVE_AT: u64 = 12;

/// The 32-bit size fields of an RF64 file: "see the ds64 chunk".
const SEE_DS64: u32 = u32::MAX;

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
    /// Sample bytes go here, appended.
    out: BufWriter<File>,
    /// The same open file: the header's sizes are written in place (`pwrite`, which leaves
    /// the appending offset alone), and it is `fdatasync`ed.
    file: File,
    format: SampleFormat,
    /// Bytes of one sample frame (one sample per channel).
    block_align: u64,
    /// Offset of the first sample byte; the `data` chunk's size field is just before it.
    data_start: u64,
    /// Sample bytes handed to `out`, and how many of them the header states.
    written: u64,
    declared: u64,
    /// The header is RF64's (the file passed `riff_max`).
    rf64: bool,
    /// The largest RIFF size the file may state before it becomes RF64 ([`RIFF_MAX`];
    /// smaller in tests, to reach it with a few kilobytes).
    riff_max: u64,
    /// The samples of one `write` as bytes.
    bytes: Vec<u8>,
    policy: Durability,
    /// Samples written since the header was last brought up to date / since the last sync.
    unheadered: bool,
    unsynced: bool,
    /// The header has never been brought up to date (it still says 0 bytes).
    fresh: bool,
    last_header: Instant,
    last_sync: Instant,
    syncer: Syncer,
}

/// The `wav-sync` thread of one file: an `fdatasync` each time it is asked (asks that come
/// while one is pending are one), the first followed by an `fsync` of the file's folder
/// (its name made durable); a failure kept for the writer's next look.
struct Syncer {
    ask: Option<crossbeam_channel::Sender<()>>,
    failed: std::sync::Arc<parking_lot::Mutex<Option<io::Error>>>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn new(file: File, path: PathBuf) -> io::Result<Syncer> {
        let (ask, asked) = crossbeam_channel::bounded::<()>(1);
        let failed = std::sync::Arc::new(parking_lot::Mutex::new(None));
        let join = std::thread::Builder::new().name("wav-sync".into()).spawn({
            let failed = failed.clone();
            move || {
                let dir = path.parent().unwrap_or(Path::new("."));
                let mut named = false;
                while asked.recv().is_ok() {
                    let synced = file.sync_data().and_then(|()| {
                        if !named {
                            crate::writer::files::sync_dir(dir)?;
                            named = true;
                        }
                        Ok(())
                    });
                    if let Err(e) = synced {
                        failed.lock().get_or_insert(e);
                    }
                }
                // The file is finished (or dropped): the last sync, said if it fails.
                if let Err(e) = file.sync_data() {
                    let at = file.metadata().map_or(0, |m| m.len());
                    let hint = crate::writer::files::write_error_hint(&e, at);
                    tracing::error!("audio: finishing {} failed: {e}{hint}", path.display());
                }
            }
        })?;
        Ok(Syncer {
            ask: Some(ask),
            failed,
            join: Some(join),
        })
    }

    /// Asks for a sync; never waits.
    fn ask(&self) {
        if let Some(a) = &self.ask {
            let _ = a.try_send(());
        }
    }

    /// A sync that failed since the last look.
    fn failure(&self) -> Option<io::Error> {
        self.failed.lock().take()
    }
}

/// The sync threads of finished files, until their last sync is done.
static LAST_SYNCS: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>> =
    parking_lot::Mutex::new(Vec::new());

impl Drop for Syncer {
    /// The thread makes its last sync and ends; [`wait_for_syncs`] waits for it.
    fn drop(&mut self) {
        self.ask = None;
        if let Some(j) = self.join.take() {
            let mut last = LAST_SYNCS.lock();
            last.retain(|j| !j.is_finished());
            last.push(j);
        }
    }
}

/// Waits until every finished file's last sync is done (at the audio thread's end: a
/// clean exit leaves every WAV on the disk).
pub fn wait_for_syncs() {
    let threads: Vec<_> = LAST_SYNCS.lock().drain(..).collect();
    for j in threads {
        let _ = j.join();
    }
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
        Self::create_with_limit(path, rate, channels, format, policy, RIFF_MAX)
    }

    fn create_with_limit(
        path: &Path,
        rate: u32,
        channels: u16,
        format: SampleFormat,
        policy: Durability,
        riff_max: u64,
    ) -> io::Result<WavOutput> {
        let header = header(rate, channels, format)?;
        if let Some(dir) = path.parent() {
            crate::writer::files::make_dir(dir)?;
        }
        let file = crate::writer::files::open_claimed(path)?;
        if let Err(e) = file.write_all_at(&header.bytes, 0) {
            // A file without its header (a full disk) would only mislead.
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        let sync = file.try_clone()?;
        // The header and the file's name reach the disk on the sync thread too: on a slow
        // disk the first sync waits behind the video's pre-trigger buffer.
        // Opened again, not cloned: a clone would share the recording's lock (`flock`),
        // and the file would look as if still being recorded until its last sync is done.
        let syncer = Syncer::new(File::open(path)?, path.to_path_buf())?;
        syncer.ask();
        let mut out = BufWriter::new(file);
        out.seek(SeekFrom::Start(header.bytes.len() as u64))?;
        let now = Instant::now();
        Ok(WavOutput {
            out,
            file: sync,
            format,
            block_align: u64::from(header.block_align),
            data_start: header.bytes.len() as u64,
            written: 0,
            declared: 0,
            rf64: false,
            riff_max,
            bytes: Vec::new(),
            policy,
            unheadered: false,
            unsynced: false,
            fresh: true,
            last_header: now,
            last_sync: now,
            syncer,
        })
    }

    /// How many more sample frames the file takes before it would be longer than
    /// `max_bytes`.
    pub fn frames_that_fit(&self, max_bytes: u64) -> u64 {
        max_bytes.saturating_sub(self.data_start + self.written) / self.block_align.max(1)
    }

    /// Appends interleaved samples in [-1, 1].
    pub fn write(&mut self, samples: &[f32]) -> io::Result<()> {
        self.bytes.clear();
        match self.format {
            SampleFormat::S16 => {
                for &s in samples {
                    self.bytes
                        .extend_from_slice(&super::to_i16(s).to_le_bytes());
                }
            }
            SampleFormat::F32 => {
                for &s in samples {
                    self.bytes.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
        self.out.write_all(&self.bytes)?;
        self.written += self.bytes.len() as u64;
        self.unheadered |= !samples.is_empty();
        Ok(())
    }

    /// Appends `samples` zeros (interleaved count).
    pub fn write_silence(&mut self, samples: u64) -> io::Result<()> {
        let width = u64::from(sample_bytes(self.format));
        let mut left = samples * width;
        let zeros = [0u8; 8192];
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            self.out.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        self.written += samples * width;
        self.unheadered |= samples > 0;
        Ok(())
    }

    /// Brings the header up to date and asks for a sync, as the policy says; says a sync
    /// that failed since. Called after writing.
    pub fn settle(&mut self) -> io::Result<()> {
        if let Some(e) = self.syncer.failure() {
            return Err(e);
        }
        if self.unheadered && (self.fresh || self.last_header.elapsed() >= self.policy.header_every)
        {
            self.declare()?;
            self.fresh = false;
            self.unheadered = false;
            self.unsynced = true;
            self.last_header = Instant::now();
        }
        if let Some(every) = self.policy.sync_every {
            if self.unsynced && self.last_sync.elapsed() >= every {
                self.syncer.ask();
                self.unsynced = false;
                self.last_sync = Instant::now();
            }
        }
        Ok(())
    }

    /// Writes the final sizes; the file is made durable on its sync thread, whatever the
    /// policy, without waiting.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.syncer.failure() {
            return Err(e);
        }
        // The last sync is the thread's, as it ends (dropped with `self`).
        self.declare()
    }

    /// Hands the samples to the kernel, then states them in the header: the header never
    /// states a byte that is not in the file. Past `riff_max` the file becomes RF64.
    fn declare(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let sizes = Sizes {
            data_start: self.data_start,
            data: self.written,
            block_align: self.block_align,
        };
        if !self.rf64 && sizes.riff() > self.riff_max {
            promote(&self.file, &sizes)?;
            self.rf64 = true;
        } else if self.rf64 {
            self.file.write_all_at(&sizes.ds64_body(), RESERVE_AT + 8)?;
        } else {
            self.file
                .write_all_at(&(sizes.riff() as u32).to_le_bytes(), 4)?;
            self.file
                .write_all_at(&(sizes.data as u32).to_le_bytes(), self.data_start - 4)?;
        }
        self.declared = self.written;
        Ok(())
    }
}

impl Drop for WavOutput {
    /// A file dropped without `finish` (an error on the way) still states what it holds.
    fn drop(&mut self) {
        if self.declared != self.written {
            let _ = self.declare();
        }
    }
}

/// The sizes a header states for `data` sample bytes after `data_start` bytes of header.
struct Sizes {
    data_start: u64,
    data: u64,
    block_align: u64,
}

impl Sizes {
    /// The RIFF (or RF64) chunk's size: the file's length less 8.
    fn riff(&self) -> u64 {
        self.data_start + self.data - 8
    }

    /// The `ds64` chunk's body.
    fn ds64_body(&self) -> [u8; DS64_BODY] {
        let mut b = [0u8; DS64_BODY];
        b[0..8].copy_from_slice(&self.riff().to_le_bytes());
        b[8..16].copy_from_slice(&self.data.to_le_bytes());
        b[16..24].copy_from_slice(&(self.data / self.block_align.max(1)).to_le_bytes());
        b
    }
}

/// Makes the file RF64: first the `ds64` chunk in the place its `JUNK` chunk held (a RIFF
/// reader skips either), then `RF64` and the 32-bit sizes that send readers to it. A crash
/// between the writes leaves a RIFF file that `repair` finishes as RF64.
fn promote(file: &File, sizes: &Sizes) -> io::Result<()> {
    let mut chunk = Vec::with_capacity(8 + DS64_BODY);
    chunk.extend_from_slice(b"ds64");
    chunk.extend_from_slice(&(DS64_BODY as u32).to_le_bytes());
    chunk.extend_from_slice(&sizes.ds64_body());
    file.write_all_at(&chunk, RESERVE_AT)?;
    file.write_all_at(&SEE_DS64.to_le_bytes(), sizes.data_start - 4)?;
    let mut head = Vec::with_capacity(8);
    head.extend_from_slice(b"RF64");
    head.extend_from_slice(&SEE_DS64.to_le_bytes());
    file.write_all_at(&head, 0)
}

/// Bytes of one sample of `format`.
fn sample_bytes(format: SampleFormat) -> u16 {
    match format {
        SampleFormat::S16 => 2,
        SampleFormat::F32 => 4,
    }
}

/// A new file's header: `RIFF`, size, `WAVE`, the `JUNK` chunk that holds the `ds64`
/// chunk's place, the format chunk as `hound` writes it, and the `data` chunk's head.
struct Header {
    bytes: Vec<u8>,
    block_align: u16,
}

fn header(rate: u32, channels: u16, format: SampleFormat) -> io::Result<Header> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 8 * sample_bytes(format),
        sample_format: match format {
            SampleFormat::S16 => hound::SampleFormat::Int,
            SampleFormat::F32 => hound::SampleFormat::Float,
        },
    };
    // hound's empty file: RIFF size WAVE, its format chunk(s), then `data` and a zero size.
    let mut empty = io::Cursor::new(Vec::new());
    hound::WavWriter::new(&mut empty, spec)
        .and_then(|w| w.finalize())
        .map_err(to_io)?;
    let empty = empty.into_inner();
    let mut format_chunks = empty
        .get(12..empty.len().saturating_sub(8))
        .filter(|_| empty.ends_with(b"data\0\0\0\0"))
        .ok_or_else(|| io::Error::other("hound wrote a WAV header of an unknown shape"))?
        .to_vec();
    speaker_mask(&mut format_chunks, channels);
    let mut bytes = Vec::with_capacity(12 + 8 + DS64_BODY + format_chunks.len() + 8);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(b"WAVE");
    bytes.extend_from_slice(b"JUNK");
    bytes.extend_from_slice(&(DS64_BODY as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; DS64_BODY]);
    bytes.extend_from_slice(&format_chunks);
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&0u32.to_le_bytes());
    let riff = bytes.len() as u32 - 8;
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    Ok(Header {
        bytes,
        block_align: channels * sample_bytes(format),
    })
}

/// The speakers an extensible format chunk (f32, or more than two channels) names, as
/// ffmpeg names them: one channel is a microphone heard from the front centre (hound says
/// front left, which players that follow the mask play on the left alone, and ffprobe
/// shows as `FL`), two are left and right, and more (a microphone array) are named no
/// speaker at all rather than hound's front, centre, LFE, ... A PCM chunk has no mask.
fn speaker_mask(format_chunks: &mut [u8], channels: u16) {
    const EXTENSIBLE: [u8; 2] = 0xFFFEu16.to_le_bytes();
    // `fmt `, its size, then: format tag (2), ..., cbSize at 16, valid bits at 18, the
    // channel mask at 20..24.
    let is_extensible = format_chunks.starts_with(b"fmt ")
        && format_chunks.get(8..10) == Some(&EXTENSIBLE[..])
        && format_chunks.len() >= 8 + 24;
    if is_extensible {
        let mask: u32 = match channels {
            1 => 0x4,
            2 => 0x3,
            _ => 0,
        };
        format_chunks[28..32].copy_from_slice(&mask.to_le_bytes());
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
    /// An RF64 file (`RF64` or `BW64`): its sizes are the `ds64` chunk's.
    pub rf64: bool,
    /// The RIFF chunk's size as the header states it (RF64: the `ds64` chunk's).
    pub riff_size: u64,
    /// Offset of the `data` chunk's size field, and of its first sample byte.
    pub data_size_at: u64,
    pub data_start: u64,
    /// The `data` chunk's size as the header states it (RF64: the `ds64` chunk's).
    pub data_size: u64,
    /// Offset of a chunk right after `WAVE` with room for the `ds64` chunk's body (the
    /// `JUNK` chunk hindsight writes, or the `ds64` chunk itself).
    pub reserve_at: Option<u64>,
    pub block_align: u16,
    pub rate: u32,
    pub channels: u16,
    /// The file's length.
    pub len: u64,
}

impl WavLayout {
    /// Sample bytes actually in the file: whole frames after the header.
    pub fn data_on_disk(&self) -> u64 {
        let raw = self.len.saturating_sub(self.data_start);
        let align = u64::from(self.block_align.max(1));
        raw / align * align
    }

    /// Sample frames actually in the file.
    pub fn frames_on_disk(&self) -> u64 {
        self.data_on_disk() / u64::from(self.block_align.max(1))
    }

    /// The header's sizes agree with the data on disk: a finished file. A RIFF file with
    /// more than 4 GiB of samples never is: its header cannot say so.
    pub fn is_final(&self) -> bool {
        let data = self.data_on_disk();
        self.data_size == data
            && self.riff_size == self.data_start + data - 8
            && self.len == self.data_start + data
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

/// Reads the header of the WAV (RIFF or RF64) in `r`.
pub fn layout<R: Read + Seek>(r: &mut R) -> Result<WavLayout, WavError> {
    let len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 12];
    read_exact_or(r, &mut head, 0)?;
    let rf64 = match &head[0..4] {
        b"RIFF" => false,
        b"RF64" | b"BW64" => true,
        _ => return Err(WavError::NotWav("no RIFF/WAVE header")),
    };
    if &head[8..12] != b"WAVE" {
        return Err(WavError::NotWav("no RIFF/WAVE header"));
    }
    let mut riff_size = u64::from(le32(&head[4..8]));
    let mut data64: Option<u64> = None;
    let mut reserve_at = None;
    let mut pos = RESERVE_AT;
    let mut fmt: Option<(u16, u32, u16)> = None;
    loop {
        let mut ch = [0u8; 8];
        read_exact_or(r, &mut ch, pos)?;
        let size = le32(&ch[4..8]);
        let body = pos + 8;
        match &ch[0..4] {
            b"ds64" | b"JUNK" if pos == RESERVE_AT && size as usize >= DS64_BODY => {
                reserve_at = Some(pos);
                if &ch[0..4] == b"ds64" {
                    let mut d = [0u8; 16];
                    read_exact_or(r, &mut d, body)?;
                    if rf64 {
                        riff_size = le64(&d[0..8]);
                    }
                    data64 = Some(le64(&d[8..16]));
                }
            }
            b"fmt " => {
                let mut f = [0u8; 16];
                if size < 16 {
                    return Err(WavError::NotWav("a fmt chunk shorter than 16 bytes"));
                }
                read_exact_or(r, &mut f, body)?;
                let channels = u16::from_le_bytes([f[2], f[3]]);
                let rate = le32(&f[4..8]);
                let align = u16::from_le_bytes([f[12], f[13]]);
                fmt = Some((align, rate, channels));
            }
            b"data" => {
                let (block_align, rate, channels) = fmt.ok_or(WavError::NotWav(
                    "the data chunk comes before the fmt chunk",
                ))?;
                let data_size = match data64 {
                    Some(d) if rf64 && size == SEE_DS64 => d,
                    _ => u64::from(size),
                };
                if rf64 && data64.is_none() {
                    return Err(WavError::NotWav("an RF64 file without its ds64 chunk"));
                }
                return Ok(WavLayout {
                    rf64,
                    riff_size,
                    data_size_at: pos + 4,
                    data_start: body,
                    data_size,
                    reserve_at,
                    block_align,
                    rate,
                    channels,
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

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
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

/// The runs of at least `min_frames` sample frames whose every byte is 0 (digital
/// silence: what hindsight puts in where no audio came), as (first frame, frames), in the
/// samples the header states that are on disk. Reads the file once, in 64 KiB pieces.
pub fn zero_runs(path: &Path, min_frames: u64) -> Result<Vec<(u64, u64)>, WavError> {
    let mut f = File::open(path)?;
    let l = layout(&mut f)?;
    let align = usize::from(l.block_align.max(1));
    let frames = l.data_size.min(l.data_on_disk()) / align as u64;
    f.seek(SeekFrom::Start(l.data_start))?;
    let (mut runs, mut run_from) = (Vec::new(), None::<u64>);
    let mut buf = vec![0u8; (1 << 16) / align * align];
    let mut index = 0u64;
    let end_run = |from: u64, to: u64, runs: &mut Vec<(u64, u64)>| {
        if to - from >= min_frames {
            runs.push((from, to - from));
        }
    };
    while index < frames {
        let n = ((frames - index) as usize).min(buf.len() / align);
        f.read_exact(&mut buf[..n * align])?;
        for frame in buf[..n * align].chunks_exact(align) {
            let zero = frame.iter().all(|&b| b == 0);
            match (zero, run_from) {
                (true, None) => run_from = Some(index),
                (false, Some(from)) => {
                    end_run(from, index, &mut runs);
                    run_from = None;
                }
                _ => {}
            }
            index += 1;
        }
    }
    if let Some(from) = run_from {
        end_run(from, index, &mut runs);
    }
    Ok(runs)
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
    /// The finished file is RF64 (more than 4 GiB).
    pub rf64: bool,
}

/// Finishes a WAV cut by a crash: the sizes are written from the data on disk (a partial
/// last sample frame is cut), as RF64's if there are more than a RIFF header can state;
/// then the file is read back (RIFF: with `hound`, an independent reader).
pub fn repair(path: &Path) -> Result<WavRepaired, WavRepairError> {
    let at = || path.to_path_buf();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| WavRepairError::Open { path: at(), source })?;
    // Held until the repair ends: nothing else writes the file meanwhile.
    if let Ok(false) = crate::writer::files::hold(&f) {
        return Err(WavRepairError::Recording { path: at() });
    }
    let l = layout(&mut f).map_err(|source| WavRepairError::Layout { path: at(), source })?;
    let sizes = Sizes {
        data_start: l.data_start,
        data: l.data_on_disk(),
        block_align: u64::from(l.block_align.max(1)),
    };
    let frames = l.frames_on_disk();
    let rf64 = l.rf64 || sizes.riff() > RIFF_MAX;
    let repaired = WavRepaired {
        already_final: l.is_final(),
        frames,
        duration_s: frames as f64 / f64::from(l.rate.max(1)),
        dropped_bytes: l.len - (l.data_start + sizes.data),
        rf64,
    };
    if repaired.already_final {
        return Ok(repaired);
    }
    if rf64 && l.reserve_at != Some(RESERVE_AT) {
        // Nothing is changed: cutting the file to 4 GiB would lose the rest of it.
        return Err(WavRepairError::TooLongForRiff {
            path: at(),
            gib: sizes.data as f64 / f64::from(1u32 << 30),
        });
    }
    let write = |f: &mut File| -> io::Result<()> {
        f.set_len(l.data_start + sizes.data)?;
        f.sync_data()?;
        if rf64 {
            promote(f, &sizes)?;
        } else {
            f.write_all_at(&(sizes.data as u32).to_le_bytes(), l.data_size_at)?;
            f.write_all_at(&(sizes.riff() as u32).to_le_bytes(), 4)?;
        }
        f.sync_data()
    };
    write(&mut f).map_err(|source| WavRepairError::Write { path: at(), source })?;
    let found = if rf64 {
        let back =
            layout(&mut f).map_err(|source| WavRepairError::Layout { path: at(), source })?;
        back.is_final()
            .then_some(back.data_size / u64::from(back.block_align.max(1)))
    } else {
        drop(f);
        let r = hound::WavReader::open(path)
            .map_err(|source| WavRepairError::StillBroken { path: at(), source })?;
        Some(u64::from(r.duration()))
    };
    if found != Some(frames) {
        return Err(WavRepairError::Mismatch {
            path: at(),
            found: found.unwrap_or(0),
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
    /// A running recorder holds it (`writer::files::create_new`).
    #[error("{}: {}", path.display(), crate::writer::repair::RECORDING_NOW)]
    Recording { path: PathBuf },
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
    #[error(
        "{}: its {gib:.2} GiB of audio are more than a RIFF WAV header can state (4 GiB), and \
         its header has no room for an RF64 file's 64-bit sizes (hindsight wrote it before \
         December 2026); the file is left as it is. To read all of it: `ffmpeg \
         -ignore_length 1 -i {} -c copy -rf64 auto WHOLE.wav`",
        path.display(),
        path.display()
    )]
    TooLongForRiff { path: PathBuf, gib: f64 },
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
    fn runs_of_put_in_silence_are_found_in_either_format() {
        let tmp = tempfile::tempdir().unwrap();
        for format in [SampleFormat::S16, SampleFormat::F32] {
            let p = tmp.path().join(format!("{format:?}.wav"));
            let policy = Durability::for_fsync_interval(None);
            let mut w = WavOutput::create(&p, 8000, 2, format, policy).unwrap();
            // One channel at 0 alone, or a single frame of zeros, is no run.
            w.write(&[0.5, 0.0, 0.0, 0.0, 0.25, 0.25]).unwrap();
            w.write_silence(2 * 100).unwrap();
            w.write(&[0.5, 0.5]).unwrap();
            // A run at the end is found too, and in an unfinished file.
            w.write_silence(2 * 30).unwrap();
            w.settle().unwrap();
            assert_eq!(
                zero_runs(&p, 10).unwrap(),
                [(3, 100), (104, 30)],
                "{format:?}"
            );
            assert_eq!(zero_runs(&p, 50).unwrap(), [(3, 100)]);
            assert_eq!(zero_runs(&p, 1).unwrap(), [(1, 1), (3, 100), (104, 30)]);
            w.finish().unwrap();
            assert_eq!(zero_runs(&p, 10).unwrap(), [(3, 100), (104, 30)]);
        }
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
                bytes[4..8].copy_from_slice(&(stale + start as u32 - 8).to_le_bytes());
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

    /// Samples that differ from one to the next, in [-1, 1).
    fn ramp(n: usize, from: usize) -> Vec<f32> {
        (from..from + n)
            .map(|i| ((i * 7919) % 65536) as f32 / 32768.0 - 1.0)
            .collect()
    }

    /// The bytes a WAV of `format` holds for `samples`.
    fn pcm(samples: &[f32], format: SampleFormat) -> Vec<u8> {
        let mut b = Vec::new();
        for &s in samples {
            match format {
                SampleFormat::S16 => b.extend_from_slice(&crate::audio::to_i16(s).to_le_bytes()),
                SampleFormat::F32 => b.extend_from_slice(&s.to_le_bytes()),
            }
        }
        b
    }

    /// What a program prints; it must succeed.
    fn output(args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The file begins with `form` and, right after `WAVE`, the chunk `first`; ffmpeg and
    /// sox decode exactly `expected` from it (raw bytes of its own format).
    fn assert_ffmpeg_and_sox_read(
        path: &Path,
        form: &[u8; 4],
        first: &[u8; 4],
        expected: &[u8],
        format: SampleFormat,
    ) {
        let mut head = [0u8; 16];
        File::open(path).unwrap().read_exact(&mut head).unwrap();
        assert_eq!((&head[0..4], &head[12..16]), (&form[..], &first[..]));
        let p = path.to_str().unwrap();
        let raw = match format {
            SampleFormat::S16 => "s16le",
            SampleFormat::F32 => "f32le",
        };
        for (tool, got) in [
            (
                "ffmpeg",
                output(&["ffmpeg", "-v", "error", "-i", p, "-f", raw, "-"]),
            ),
            ("sox", output(&["sox", p, "-t", "raw", "-"])),
        ] {
            assert!(
                got == expected,
                "{tool} reads {} bytes of {}",
                got.len(),
                expected.len()
            );
        }
    }

    /// What ffprobe says of the stream's `entry` (`duration_ts`, `channel_layout`).
    fn ffprobe_stream(path: &str, entry: &str) -> String {
        let show = format!("stream={entry}");
        let args = [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            &show,
            "-of",
            "csv=p=0",
            path,
        ];
        String::from_utf8(output(&args)).unwrap().trim().to_string()
    }

    /// The sample frames ffprobe finds in a WAV's header (sox, too, counts them right, but
    /// reads all of an RF64 file to do it: a minute for 5 GiB).
    fn samples_by_ffprobe(path: &str) -> u64 {
        let out = ffprobe_stream(path, "duration_ts");
        out.parse().unwrap_or_else(|_| panic!("ffprobe: {out}"))
    }

    fn policy_every_write() -> Durability {
        Durability {
            header_every: Duration::ZERO,
            sync_every: None,
        }
    }

    /// A short file is a RIFF file, its `JUNK` chunk skipped by every reader.
    #[test]
    fn a_short_file_is_riff_and_every_reader_reads_it_whole() {
        let tmp = tempfile::tempdir().unwrap();
        for (format, channels) in [(SampleFormat::S16, 1), (SampleFormat::F32, 2)] {
            let p = tmp.path().join(format!("short-{channels}.wav"));
            let samples = ramp(8000 * usize::from(channels), 0);
            let mut w =
                WavOutput::create(&p, 8000, channels, format, policy_every_write()).unwrap();
            w.write(&samples).unwrap();
            w.finish().unwrap();
            assert_ffmpeg_and_sox_read(&p, b"RIFF", b"JUNK", &pcm(&samples, format), format);
            let r = hound::WavReader::open(&p).unwrap();
            assert_eq!(r.duration(), 8000);
            assert_eq!(r.spec().channels, channels);
        }
    }

    /// ffprobe names the channels as it does those of ffmpeg's own WAVs of the same
    /// format (mono, stereo; "unknown" for 16-bit PCM, whose format chunk names none), and
    /// a microphone array's channels as no loudspeakers ("unknown" too). hound's
    /// extensible format chunk said front left for one channel, and front left, front
    /// right, centre and LFE for four.
    #[test]
    fn the_channels_are_named_as_ffmpeg_names_them() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = |p: &Path| ffprobe_stream(p.to_str().unwrap(), "channel_layout");
        for format in [SampleFormat::F32, SampleFormat::S16] {
            for channels in [1u16, 2, 4] {
                let p = tmp.path().join(format!("{channels}-{format:?}.wav"));
                let samples = ramp(800 * usize::from(channels), 0);
                let mut w =
                    WavOutput::create(&p, 8000, channels, format, policy_every_write()).unwrap();
                w.write(&samples).unwrap();
                w.finish().unwrap();
                // No speakers named: ffprobe says so as for 16-bit PCM.
                let expected = if channels > 2 {
                    "unknown".to_string()
                } else {
                    let theirs = tmp.path().join(format!("ffmpeg-{channels}-{format:?}.wav"));
                    let codec = match format {
                        SampleFormat::S16 => "pcm_s16le",
                        SampleFormat::F32 => "pcm_f32le",
                    };
                    output(&[
                        "ffmpeg",
                        "-v",
                        "error",
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=f=440:d=0.1",
                        "-ac",
                        &channels.to_string(),
                        "-c:a",
                        codec,
                        theirs.to_str().unwrap(),
                    ]);
                    layout(&theirs)
                };
                assert_eq!(layout(&p), expected, "{channels} channels, {format:?}");
                assert_ffmpeg_and_sox_read(&p, b"RIFF", b"JUNK", &pcm(&samples, format), format);
            }
        }
    }

    /// A file that outgrows a RIFF header's sizes becomes RF64 as it grows; at every
    /// step (what a kill -9 would leave) its header states all that is in it, and when it
    /// is finished ffmpeg and sox read every sample. The limit is lowered to 64 KiB here;
    /// `a_recording_past_4_gib_...` and `a_crash_past_4_gib_...` go past the real one.
    #[test]
    fn a_file_past_a_riff_headers_sizes_becomes_rf64_and_keeps_every_sample() {
        let tmp = tempfile::tempdir().unwrap();
        for (format, channels) in [(SampleFormat::S16, 2), (SampleFormat::F32, 1)] {
            let p = tmp.path().join(format!("grow-{channels}.wav"));
            let limit = 64 * 1024;
            let mut w = WavOutput::create_with_limit(
                &p,
                48000,
                channels,
                format,
                policy_every_write(),
                limit,
            )
            .unwrap();
            let mut all = Vec::new();
            let mut became_rf64 = None;
            for step in 0..40 {
                let chunk = ramp(1000 * usize::from(channels), all.len());
                w.write(&chunk).unwrap();
                w.settle().unwrap();
                all.extend(chunk);
                let l = layout(&mut File::open(&p).unwrap()).unwrap();
                assert!(l.is_final(), "step {step}: {l:?}");
                assert_eq!(
                    l.frames_on_disk(),
                    (all.len() / usize::from(channels)) as u64
                );
                assert_eq!(l.rf64, l.riff_size > limit, "step {step}: {l:?}");
                if l.rf64 {
                    became_rf64.get_or_insert(step);
                }
            }
            assert!(
                became_rf64.is_some_and(|s| s > 0),
                "RIFF first, then RF64: {became_rf64:?}"
            );
            w.finish().unwrap();
            assert_ffmpeg_and_sox_read(&p, b"RF64", b"ds64", &pcm(&all, format), format);
            // A crash after more samples: repair finishes it as RF64, whole frames only.
            let mut f = OpenOptions::new().append(true).open(&p).unwrap();
            let width = usize::from(sample_bytes(format));
            f.write_all(&vec![7u8; 1000 * width * usize::from(channels) + 1])
                .unwrap();
            assert!(is_unfinished(&p).unwrap());
            let r = repair(&p).unwrap();
            assert!(r.rf64 && !r.already_final);
            assert_eq!(r.frames, (all.len() / usize::from(channels)) as u64 + 1000);
            assert_eq!(r.dropped_bytes, 1);
            assert!(!is_unfinished(&p).unwrap());
        }
    }

    /// `(a directory, what it is)` with `bytes` free (for the tests that write past
    /// 4 GiB): the RAM disk if there is RAM to spare, else the temporary directory.
    fn room_for(bytes: u64) -> Option<tempfile::TempDir> {
        fn free(dir: &Path) -> u64 {
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: a valid C string and a zeroed struct for the call to fill.
            if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
                return 0;
            }
            s.f_bavail as u64 * s.f_frsize as u64
        }
        let available_ram = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib * 1024);
        let shm = Path::new("/dev/shm");
        if free(shm) > bytes + (1 << 30) && available_ram > 2 * bytes {
            return tempfile::tempdir_in(shm).ok();
        }
        let tmp = std::env::temp_dir();
        if free(&tmp) > bytes + (2 << 30) {
            return tempfile::tempdir_in(tmp).ok();
        }
        None
    }

    /// A recording that writes more than 4 GiB (47 minutes at 384 kHz in f32): the header
    /// states all of it while it grows and when it is finished, and readers find its last
    /// samples where they were written. (hound's 32-bit count wrapped, and the header said
    /// a few seconds.)
    #[test]
    fn a_recording_past_4_gib_stays_readable_to_its_last_sample() {
        let Some(dir) = room_for(4_400_000_000) else {
            eprintln!("SKIPPED: no 5 GiB free in /dev/shm or the temporary directory");
            return;
        };
        let p = dir.path().join("long.wav");
        let rate = 384_000u32;
        let mut w =
            WavOutput::create(&p, rate, 1, SampleFormat::F32, policy_every_write()).unwrap();
        let head = ramp(rate as usize, 0);
        w.write(&head).unwrap();
        // 1.1 billion samples of silence (4.4 GB), the header brought up to date as it goes.
        let silent: u64 = 1_100_000_000;
        let mut left = silent;
        while left > 0 {
            let n = left.min(1 << 26);
            w.write_silence(n).unwrap();
            w.settle().unwrap();
            left -= n;
            let l = layout(&mut File::open(&p).unwrap()).unwrap();
            assert!(l.is_final(), "{l:?}");
        }
        let tail = ramp(rate as usize, 12345);
        w.write(&tail).unwrap();
        w.finish().unwrap();
        let frames = 2 * u64::from(rate) + silent;
        let l = layout(&mut File::open(&p).unwrap()).unwrap();
        assert!(l.rf64 && l.is_final(), "{l:?}");
        assert_eq!(l.data_size, frames * 4);
        let path = p.to_str().unwrap();
        assert_eq!(samples_by_ffprobe(path), frames);
        // The last second, decoded from where the header says it is.
        let last = format!("{:.6}", (frames - u64::from(rate)) as f64 / f64::from(rate));
        let got = output(&[
            "ffmpeg", "-v", "error", "-ss", &last, "-i", path, "-f", "f32le", "-",
        ]);
        assert!(
            got == pcm(&tail, SampleFormat::F32),
            "ffmpeg's last second: {} bytes",
            got.len()
        );
        assert!(repair(&p).unwrap().already_final);
    }

    /// A power cut after 5 GiB of a recording, with the header last written after its
    /// first second: repair states all 5 GiB (RF64) and cuts only the partial last frame.
    /// The 5 GiB are a hole in the file: no disk is used.
    #[test]
    fn a_crash_past_4_gib_is_repaired_as_rf64_without_losing_a_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("cut.wav");
        let policy = Durability::for_fsync_interval(None);
        let mut w = WavOutput::create(&p, 48000, 1, SampleFormat::S16, policy).unwrap();
        w.write(&ramp(48000, 0)).unwrap();
        w.finish().unwrap();
        let start = layout(&mut File::open(&p).unwrap()).unwrap().data_start;
        let data: u64 = 5 << 30;
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(start + data + 1).unwrap();
        f.write_all_at(&0x1234i16.to_le_bytes(), start + data - 2)
            .unwrap();
        drop(f);
        assert!(is_unfinished(&p).unwrap());
        let r = repair(&p).unwrap();
        assert!(r.rf64 && !r.already_final, "{r:?}");
        assert_eq!((r.frames, r.dropped_bytes), (data / 2, 1));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), start + data);
        assert!(!is_unfinished(&p).unwrap());
        let path = p.to_str().unwrap();
        assert_eq!(samples_by_ffprobe(path), data / 2);
        let last = format!("{:.6}", (data / 2 - 4800) as f64 / 48000.0);
        let got = output(&[
            "ffmpeg", "-v", "error", "-ss", &last, "-i", path, "-f", "s16le", "-",
        ]);
        assert_eq!(got.len(), 9600, "ffmpeg reads to the end");
        assert_eq!(&got[got.len() - 2..], &0x1234i16.to_le_bytes());
        assert!(repair(&p).unwrap().already_final);
    }

    /// A RIFF file past 4 GiB with no room for RF64's sizes (as hindsight wrote WAVs before
    /// December 2026, with hound's 44-byte header) is left as it is, and the error says how
    /// to read all of it. (Repair used to cut such a file to 4 GiB.)
    #[test]
    fn a_riff_file_past_4_gib_without_room_is_left_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("old.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..48000 {
            w.write_sample((i % 1000) as i16).unwrap();
        }
        w.finalize().unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(44 + (5 << 30)).unwrap();
        drop(f);
        let mut head = vec![0u8; 44];
        File::open(&p).unwrap().read_exact_at(&mut head, 0).unwrap();
        let e = repair(&p).unwrap_err().to_string();
        assert!(
            e.contains("5.00 GiB") && e.contains("ffmpeg -ignore_length 1 -i"),
            "{e}"
        );
        let f = File::open(&p).unwrap();
        let mut now = vec![0u8; 44];
        f.read_exact_at(&mut now, 0).unwrap();
        assert_eq!(now, head, "the header is unchanged");
        assert_eq!(
            f.metadata().unwrap().len(),
            44 + (5 << 30),
            "nothing is cut"
        );
        assert!(is_unfinished(&p).unwrap(), "start-up still names it");

        // What the error proposes reads past a header's stale sizes (a short file here,
        // whose header states 100 of its 48000 samples).
        let short = tmp.path().join("short.wav");
        let mut w = hound::WavWriter::create(&short, spec).unwrap();
        for i in 0..48000 {
            w.write_sample((i % 1000) as i16).unwrap();
        }
        w.finalize().unwrap();
        let f = OpenOptions::new().write(true).open(&short).unwrap();
        f.write_all_at(&200u32.to_le_bytes(), 40).unwrap();
        f.write_all_at(&236u32.to_le_bytes(), 4).unwrap();
        let whole = tmp.path().join("whole.wav");
        let (s, o) = (short.to_str().unwrap(), whole.to_str().unwrap());
        let n = String::from_utf8(output(&["sox", "--i", "-s", s])).unwrap();
        assert_eq!(n.trim(), "100", "readers trust the header");
        let proposed = [
            "ffmpeg",
            "-v",
            "error",
            "-ignore_length",
            "1",
            "-i",
            s,
            "-c",
            "copy",
            "-rf64",
            "auto",
            o,
        ];
        output(&proposed);
        let n = String::from_utf8(output(&["sox", "--i", "-s", o])).unwrap();
        assert_eq!(n.trim(), "48000");
    }
}
