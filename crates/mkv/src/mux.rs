//! Sans-IO Matroska muxer for the recorder's files: one `V_MJPEG` track with the
//! frames' real (variable) capture times, optionally `A_PCM/INT/LIT` audio.
//!
//! The muxer never touches a file. It appends bytes to a `Vec<u8>` that the caller
//! writes at the end of the file, and returns [`Patch`]es (absolute offset, bytes) that
//! the caller writes over bytes it has *already* written (pwrite). That keeps every
//! I/O decision (batching, fdatasync policy, disk-full handling) in the writer thread,
//! and lets tests and the repair tool run the very same code in memory.
//!
//! # Layout
//!
//! ```text
//! EBML header                       DocType matroska, version 4, read version 2
//! Segment        size: 8-byte unknown       -> patched by finish
//!   SeekHead     size: 8 bytes  } region of SEEK_REGION_LEN bytes, rewritten by
//!   Void                        } finish with the Cues/Chapters entries added
//!   Info         TimestampScale, Void(11)   -> Duration (same 11 bytes) by finish,
//!                DateUTC, Title, MuxingApp, WritingApp
//!   Tracks       TrackEntry per track
//!   Tags         one global Tag (TargetTypeValue 50), if any tags
//!   Cluster      size: 8-byte unknown       -> patched when the next cluster opens
//!     Timestamp, SimpleBlock...
//!   Cluster ...  (the last one stays unknown-size until finish)
//!   Cues         one CuePoint per cluster   } appended by finish
//!   Chapters     one ChapterAtom per mark   }
//! ```
//!
//! A file cut at any byte after the header is a valid prefix: the Segment and the last
//! Cluster have unknown size, so players read up to the last complete block. Finishing
//! appends the index and patches sizes, Duration and SeekHead, so the file becomes an
//! ordinary seekable Matroska file. The finishing step lives in [`Layout::finalize`],
//! which the repair reader ([`crate::read`]) calls too after rebuilding a
//! [`Layout`] from a crash-cut file: one code path for finishing, not two.
//!
//! What belongs here: the layout and every byte of it, finishing (`Layout::finalize`).
//! What does not: I/O, clocks, the recorder's tags (passed in as pairs).

use crate::ebml::{self, id};
use thiserror::Error;

/// Bytes reserved at the start of the Segment for the SeekHead and its padding: the
/// SeekHead header (4-byte ID + 8-byte size) plus room for five entries (Info, Tracks,
/// Tags, Cues, Chapters). Every entry has the same length, so what is left after any
/// number of entries is either nothing or a Void of at least one entry's length.
pub const SEEK_REGION_LEN: u64 = SEEK_HEAD_HEADER_LEN + 5 * SEEK_ENTRY_LEN;
const SEEK_HEAD_HEADER_LEN: u64 = 12;
/// Seek { SeekID (4-byte ID as binary), SeekPosition (8-byte uint) }: 3 + 7 + 11 bytes.
const SEEK_ENTRY_LEN: u64 = 21;
/// The Duration element (2-byte ID, 1-byte size, f64) and the Void that holds its place.
pub const DURATION_SLOT_LEN: u64 = 11;
/// Seconds from the Unix epoch to 2001-01-01T00:00:00Z, Matroska's DateUTC origin.
const MATROSKA_EPOCH_UNIX_S: i64 = 978_307_200;
/// SimpleBlock flags bit for keyframes.
const KEYFRAME_FLAG: u8 = 0x80;

#[derive(Debug, Clone, PartialEq)]
pub struct MuxerConfig {
    /// TimestampScale in ns; we use 100_000 (100 µs), fine enough for 536 fps.
    pub timestamp_unit_ns: u64,
    /// A new cluster starts at the first video keyframe this far after the cluster start.
    pub max_cluster_ns: u64,
    pub tracks: Vec<TrackSpec>,
    /// Global SimpleTags (TargetTypeValue 50), written in the header.
    pub tags: Vec<(String, String)>,
    /// WritingApp and MuxingApp, e.g. "hindsight 0.1.0".
    pub writing_app: String,
    /// Info/DateUTC, as ns since the Unix epoch.
    pub date_utc_unix_ns: Option<i64>,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackSpec {
    pub number: u64,
    pub uid: u64,
    pub name: String,
    pub kind: TrackKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrackKind {
    /// CodecID V_MJPEG, TrackType 1.
    VideoMjpeg { width: u32, height: u32 },
    /// CodecID A_PCM/INT/LIT, TrackType 2.
    AudioPcmLe {
        sample_rate: f64,
        channels: u16,
        bit_depth: u16,
    },
}

impl TrackKind {
    fn is_video(&self) -> bool {
        matches!(self, TrackKind::VideoMjpeg { .. })
    }
}

/// Bytes to write over bytes already in the file, at an absolute offset. Patches
/// always refer to bytes handed out earlier, so apply them after writing `out`, in
/// the order given (the Segment size comes last, so a file whose Segment has a known
/// size has had all its other finishing patches applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

impl Patch {
    /// Applies patches to a file held in memory (tests, tools): what the writer does with
    /// `pwrite`. Panics if a patch lies beyond `file`.
    pub fn apply_all(file: &mut [u8], patches: &[Patch]) {
        for p in patches {
            let at = p.offset as usize;
            file[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
    }

    /// Writes `size` into the 8-byte size field at `field_offset`.
    pub fn size8(field_offset: u64, size: u64) -> Patch {
        Patch {
            offset: field_offset,
            bytes: ebml::size8(size).to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishSummary {
    pub duration_ns: i64,
    /// Blocks of all tracks.
    pub blocks: u64,
    /// Blocks of the reference track: the video frames (every block without video).
    pub frames: u64,
    pub clusters: u64,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MuxError {
    #[error("invalid muxer configuration: {0}")]
    InvalidConfig(String),
    #[error("header() must be called before blocks are written or the file is finished")]
    NoHeader,
    #[error("the file is already finished")]
    Finished,
    #[error("block for unknown track number {0}")]
    UnknownTrack(u64),
    #[error("block time {0} ns is before the file's time origin")]
    NegativeTime(i64),
    #[error(
        "block at {time_ns} ns is {behind} timestamp units before its cluster's start \
         (timestamp {cluster_timestamp}); a block may precede it by at most 32768 units"
    )]
    TooFarBack {
        time_ns: i64,
        behind: i64,
        cluster_timestamp: i64,
    },
    #[error("block of {0} bytes is too large for an EBML element")]
    BlockTooLarge(usize),
    #[error("the SeekHead needs {needed} bytes but only {reserved} are reserved for it")]
    SeekRegionTooSmall { needed: u64, reserved: u64 },
}

/// One CuePoint: a cluster's first video keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CuePoint {
    /// In timestamp units.
    pub time: u64,
    pub track: u64,
    /// Cluster position relative to the Segment's data start.
    pub cluster_position: u64,
}

/// A chapter ("mark"), written at finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    pub time_ns: u64,
    pub title: String,
}

/// The cluster blocks are currently added to, as far as cues are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenCluster {
    /// Absolute position of the Cluster element.
    pub position: u64,
    /// Whether the cluster already has its CuePoint.
    pub cued: bool,
}

/// Everything the finishing step needs: where the patched header slots are, and what
/// the index will contain. The muxer fills it while writing; the repair reader
/// rebuilds it from a file. [`Layout::record_block`] and [`Layout::open_cluster`] are
/// the only places where cue and duration bookkeeping happens, so a muxed file and a
/// repaired one get the same index.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Absolute position of the first byte of Segment data (the Segment's 8-byte size
    /// field is the 8 bytes before it).
    pub segment_data_start: u64,
    /// Absolute position and length of the SeekHead region (SeekHead + padding Void).
    pub seek_region_start: u64,
    pub seek_region_len: u64,
    /// (ID, absolute position) of the header elements the SeekHead lists.
    pub header_elements: Vec<(u32, u64)>,
    /// Absolute position of the 11-byte Void (or Duration) inside Info.
    pub duration_slot: u64,
    pub timestamp_unit_ns: u64,
    pub cue_points: Vec<CuePoint>,
    /// Timestamps (units) of the last two reference blocks: video blocks, or every
    /// block if the file has no video track.
    pub last_reference: Option<i64>,
    pub previous_reference: Option<i64>,
    pub chapters: Vec<Chapter>,
    /// Blocks of all tracks.
    pub blocks: u64,
    /// Blocks of reference tracks: the video frames (every block without video).
    pub frames: u64,
    pub clusters: u64,
}

impl Layout {
    /// An empty layout for a segment whose header is described by the arguments.
    pub fn new(
        segment_data_start: u64,
        seek_region_len: u64,
        header_elements: Vec<(u32, u64)>,
        duration_slot: u64,
        timestamp_unit_ns: u64,
    ) -> Layout {
        Layout {
            segment_data_start,
            seek_region_start: segment_data_start,
            seek_region_len,
            header_elements,
            duration_slot,
            timestamp_unit_ns,
            cue_points: Vec::new(),
            last_reference: None,
            previous_reference: None,
            chapters: Vec::new(),
            blocks: 0,
            frames: 0,
            clusters: 0,
        }
    }

    /// Counts a new cluster starting at absolute `position`.
    pub fn open_cluster(&mut self, position: u64) -> OpenCluster {
        self.clusters += 1;
        OpenCluster {
            position,
            cued: false,
        }
    }

    /// Counts a block (timestamp `ts` in units) and updates cues and duration: the
    /// first reference keyframe of each cluster becomes its CuePoint, so a player
    /// seeking to a cue lands on a decodable video frame.
    pub fn record_block(
        &mut self,
        cluster: &mut OpenCluster,
        track: u64,
        ts: i64,
        reference: bool,
        keyframe: bool,
    ) {
        self.blocks += 1;
        if !reference {
            return;
        }
        self.frames += 1;
        self.previous_reference = self.last_reference;
        self.last_reference = Some(ts);
        if keyframe && !cluster.cued {
            cluster.cued = true;
            self.cue_points.push(CuePoint {
                time: ts.max(0) as u64,
                track,
                cluster_position: cluster.position.saturating_sub(self.segment_data_start),
            });
        }
    }

    /// Duration in timestamp units: the last reference block's time plus the interval
    /// before it (the best guess for how long the last frame is shown). `None` without
    /// reference blocks; at least one unit otherwise, since Duration must be positive.
    pub fn duration_units(&self) -> Option<i64> {
        let last = self.last_reference?;
        // Saturating: the repair reader feeds timestamps from untrusted files.
        let interval = self
            .previous_reference
            .map_or(0, |p| last.saturating_sub(p).max(0));
        Some(last.saturating_add(interval).max(1))
    }

    /// At most how many bytes [`Layout::finalize`] appends (Cues and Chapters), so that a
    /// caller keeping a file under a size limit can leave room for them.
    pub fn tail_bound(&self) -> u64 {
        // Element IDs of at most 4 bytes, sizes of at most 8, unsigned values of at most 8.
        const MASTER: u64 = 4 + 8;
        const CUE_POINT: u64 = MASTER + 3 * (4 + 8 + 8) + MASTER;
        const CHAPTER: u64 = 3 * MASTER + 4 * (4 + 8 + 8);
        let cues = match self.cue_points.len() as u64 {
            0 => 0,
            n => MASTER + n * CUE_POINT,
        };
        let chapters = match self.chapters.len() {
            0 => 0,
            _ => {
                2 * MASTER
                    + self
                        .chapters
                        .iter()
                        .map(|c| CHAPTER + c.title.len() as u64)
                        .sum::<u64>()
            }
        };
        cues + chapters
    }

    /// Finishes a segment whose media data ends at absolute offset `end`: appends Cues
    /// and Chapters to `out` (to be written at `end`) and pushes the patches for
    /// Duration, the SeekHead region and, last, the Segment size. Cluster sizes are the
    /// caller's business (it knows which clusters are still open). Fails before
    /// touching `out` if the SeekHead region cannot hold the entries.
    pub fn finalize(
        &self,
        end: u64,
        out: &mut Vec<u8>,
        patches: &mut Vec<Patch>,
    ) -> Result<FinishSummary, MuxError> {
        let entries = self.header_elements.len()
            + usize::from(!self.cue_points.is_empty())
            + usize::from(!self.chapters.is_empty());
        let needed = SEEK_HEAD_HEADER_LEN + entries as u64 * SEEK_ENTRY_LEN;
        let spare = self.seek_region_len.checked_sub(needed);
        if spare.is_none() || spare == Some(1) {
            return Err(MuxError::SeekRegionTooSmall {
                needed,
                reserved: self.seek_region_len,
            });
        }

        let start = out.len();
        let mut seek = self.header_elements.clone();
        if !self.cue_points.is_empty() {
            seek.push((id::CUES, end));
            write_cues(out, &self.cue_points);
        }
        if !self.chapters.is_empty() {
            seek.push((id::CHAPTERS, end + (out.len() - start) as u64));
            write_chapters(out, &self.chapters);
        }
        let tail_end = end + (out.len() - start) as u64;

        let duration = self.duration_units();
        if let Some(units) = duration {
            let mut bytes = Vec::with_capacity(DURATION_SLOT_LEN as usize);
            ebml::put_float(&mut bytes, id::DURATION, units as f64);
            patches.push(Patch {
                offset: self.duration_slot,
                bytes,
            });
        }
        let mut region = Vec::with_capacity(self.seek_region_len as usize);
        write_seek_region(
            &mut region,
            &seek,
            self.segment_data_start,
            self.seek_region_len,
        );
        patches.push(Patch {
            offset: self.seek_region_start,
            bytes: region,
        });
        patches.push(Patch::size8(
            self.segment_data_start.saturating_sub(8),
            tail_end.saturating_sub(self.segment_data_start),
        ));

        let unit = i64::try_from(self.timestamp_unit_ns).unwrap_or(i64::MAX);
        Ok(FinishSummary {
            duration_ns: duration.map_or(0, |d| d.saturating_mul(unit)),
            blocks: self.blocks,
            frames: self.frames,
            clusters: self.clusters,
        })
    }
}

/// SeekHead (8-byte size) listing `entries` (ID, absolute position), padded with a
/// Void to exactly `len` bytes. The caller has checked that `len` is large enough.
fn write_seek_region(out: &mut Vec<u8>, entries: &[(u32, u64)], segment: u64, len: u64) {
    let start = out.len();
    ebml::put_id(out, id::SEEK_HEAD);
    out.extend_from_slice(&ebml::size8(entries.len() as u64 * SEEK_ENTRY_LEN));
    for &(element, position) in entries {
        ebml::put_master(out, id::SEEK, |b| {
            ebml::put_bytes(b, id::SEEK_ID, &element.to_be_bytes());
            ebml::put_uint8(b, id::SEEK_POSITION, position.saturating_sub(segment));
        });
    }
    let used = (out.len() - start) as u64;
    ebml::put_void(out, (len - used) as usize);
}

fn write_cues(out: &mut Vec<u8>, cues: &[CuePoint]) {
    ebml::put_master(out, id::CUES, |b| {
        for cue in cues {
            ebml::put_master(b, id::CUE_POINT, |b| {
                ebml::put_uint(b, id::CUE_TIME, cue.time);
                ebml::put_master(b, id::CUE_TRACK_POSITIONS, |b| {
                    ebml::put_uint(b, id::CUE_TRACK, cue.track);
                    ebml::put_uint(b, id::CUE_CLUSTER_POSITION, cue.cluster_position);
                });
            });
        }
    });
}

/// One edition, chapters in time order. ChapterUIDs only have to be unique and
/// non-zero within the file, so they are the chapters' ranks: deterministic output.
fn write_chapters(out: &mut Vec<u8>, chapters: &[Chapter]) {
    let mut sorted: Vec<&Chapter> = chapters.iter().collect();
    sorted.sort_by_key(|c| c.time_ns);
    ebml::put_master(out, id::CHAPTERS, |b| {
        ebml::put_master(b, id::EDITION_ENTRY, |b| {
            for (rank, chapter) in sorted.iter().enumerate() {
                ebml::put_master(b, id::CHAPTER_ATOM, |b| {
                    ebml::put_uint(b, id::CHAPTER_UID, rank as u64 + 1);
                    ebml::put_uint(b, id::CHAPTER_TIME_START, chapter.time_ns);
                    ebml::put_master(b, id::CHAPTER_DISPLAY, |b| {
                        ebml::put_str(b, id::CHAP_STRING, &chapter.title);
                        ebml::put_str(b, id::CHAP_LANGUAGE, "und");
                    });
                });
            }
        });
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Writing,
    Finished,
}

/// Per-track data the block path needs, precomputed so writing a block is a lookup
/// and a few appends.
#[derive(Debug, Clone, Copy)]
struct TrackSlot {
    number: u64,
    encoded: ebml::Vint,
    reference: bool,
}

#[derive(Debug, Clone, Copy)]
struct Cluster {
    cues: OpenCluster,
    /// Cluster timestamp in units.
    timestamp: i64,
}

/// Length of a Cluster element header: 4-byte ID + 8-byte size.
const CLUSTER_HEADER_LEN: u64 = 12;

pub struct MkvMuxer {
    cfg: MuxerConfig,
    tracks: Vec<TrackSlot>,
    /// Why the configuration is unusable; reported by every fallible call, since
    /// `new` and `header` cannot fail.
    invalid: Option<MuxError>,
    state: State,
    pos: u64,
    layout: Layout,
    cluster: Option<Cluster>,
}

impl MkvMuxer {
    /// A muxer for `cfg`. An invalid configuration (no tracks, duplicate or zero track
    /// numbers or UIDs, zero timestamp unit, zero picture size, bad audio format) makes
    /// `header` write nothing and `write_block`/`finish` return
    /// [`MuxError::InvalidConfig`].
    pub fn new(cfg: MuxerConfig) -> MkvMuxer {
        let invalid = validate(&cfg).err().map(MuxError::InvalidConfig);
        let any_video = cfg.tracks.iter().any(|t| t.kind.is_video());
        let tracks = cfg
            .tracks
            .iter()
            .filter_map(|t| {
                Some(TrackSlot {
                    number: t.number,
                    encoded: ebml::vint(t.number)?,
                    reference: t.kind.is_video() || !any_video,
                })
            })
            .collect();
        let layout = Layout::new(0, SEEK_REGION_LEN, Vec::new(), 0, cfg.timestamp_unit_ns);
        MkvMuxer {
            cfg,
            tracks,
            invalid,
            state: State::New,
            pos: 0,
            layout,
            cluster: None,
        }
    }

    /// Absolute number of bytes emitted so far (the file length once the caller has
    /// written everything).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// At most how many bytes [`MkvMuxer::finish`] will append to what is written so far.
    pub fn finish_bound(&self) -> u64 {
        self.layout.tail_bound()
    }

    /// EBML header, Segment (unknown size), SeekHead region, Info (with the Duration
    /// slot), Tracks and Tags. Call once, first; later calls write nothing.
    pub fn header(&mut self, out: &mut Vec<u8>) {
        if self.state != State::New || self.invalid.is_some() {
            return;
        }
        let start = out.len();
        let base = self.pos;
        let abs = |at: usize| base + (at - start) as u64;

        ebml::put_master(out, id::EBML, |b| {
            ebml::put_uint(b, id::EBML_VERSION, 1);
            ebml::put_uint(b, id::EBML_READ_VERSION, 1);
            ebml::put_uint(b, id::EBML_MAX_ID_LENGTH, 4);
            ebml::put_uint(b, id::EBML_MAX_SIZE_LENGTH, 8);
            ebml::put_str(b, id::DOC_TYPE, "matroska");
            ebml::put_uint(b, id::DOC_TYPE_VERSION, 4);
            ebml::put_uint(b, id::DOC_TYPE_READ_VERSION, 2);
        });
        ebml::put_master_unknown(out, id::SEGMENT);
        let segment_at = out.len();
        // The SeekHead lists elements written after it: reserve its region now and fill
        // it in once their positions are known (the region has a fixed length).
        out.resize(out.len() + SEEK_REGION_LEN as usize, 0);

        let cfg = &self.cfg;
        let info_at = out.len();
        let mut slot_in_body = 0;
        let info_body = ebml::put_master(out, id::INFO, |b| {
            let body = b.len();
            ebml::put_uint(b, id::TIMESTAMP_SCALE, cfg.timestamp_unit_ns);
            slot_in_body = b.len() - body;
            ebml::put_void(b, DURATION_SLOT_LEN as usize);
            if let Some(unix_ns) = cfg.date_utc_unix_ns {
                let since_2001 = unix_ns.saturating_sub(MATROSKA_EPOCH_UNIX_S * 1_000_000_000);
                ebml::put_int(b, id::DATE_UTC, since_2001);
            }
            if let Some(title) = &cfg.title {
                ebml::put_str(b, id::TITLE, title);
            }
            ebml::put_str(b, id::MUXING_APP, &cfg.writing_app);
            ebml::put_str(b, id::WRITING_APP, &cfg.writing_app);
        });
        let tracks_at = out.len();
        ebml::put_master(out, id::TRACKS, |b| {
            for track in &cfg.tracks {
                write_track_entry(b, track);
            }
        });
        let mut header_elements = vec![(id::INFO, abs(info_at)), (id::TRACKS, abs(tracks_at))];
        if !cfg.tags.is_empty() {
            header_elements.push((id::TAGS, abs(out.len())));
            write_tags(out, &cfg.tags);
        }

        let segment_data_start = abs(segment_at);
        let mut region = Vec::with_capacity(SEEK_REGION_LEN as usize);
        write_seek_region(
            &mut region,
            &header_elements,
            segment_data_start,
            SEEK_REGION_LEN,
        );
        out[segment_at..segment_at + region.len()].copy_from_slice(&region);

        self.layout = Layout::new(
            segment_data_start,
            SEEK_REGION_LEN,
            header_elements,
            abs(info_body + slot_in_body),
            cfg.timestamp_unit_ns,
        );
        self.pos += (out.len() - start) as u64;
        self.state = State::Writing;
    }

    /// Appends a SimpleBlock for `track` at `time_ns` (ns since the file's time origin),
    /// opening a new Cluster first when this is the first block, when the block is a
    /// reference keyframe at least `max_cluster_ns` after the cluster start, or when
    /// its relative timestamp would overflow i16. Closing a cluster pushes the patch
    /// with its size. Returns the block's timestamp in units, `round(time_ns / unit)`.
    pub fn write_block(
        &mut self,
        track: u64,
        time_ns: i64,
        keyframe: bool,
        data: &[u8],
        out: &mut Vec<u8>,
        patches: &mut Vec<Patch>,
    ) -> Result<i64, MuxError> {
        let ts = self.write_block_header(track, time_ns, keyframe, data.len(), out, patches)?;
        out.extend_from_slice(data);
        Ok(ts)
    }

    /// As [`MkvMuxer::write_block`], but appends everything except the `len` payload
    /// bytes, which the caller must write right after what `out` holds (e.g. with
    /// `writev`, straight from where the frame already is: one copy fewer).
    pub fn write_block_header(
        &mut self,
        track: u64,
        time_ns: i64,
        keyframe: bool,
        len: usize,
        out: &mut Vec<u8>,
        patches: &mut Vec<Patch>,
    ) -> Result<i64, MuxError> {
        self.check_writable()?;
        let slot = *self
            .tracks
            .iter()
            .find(|t| t.number == track)
            .ok_or(MuxError::UnknownTrack(track))?;
        if time_ns < 0 {
            return Err(MuxError::NegativeTime(time_ns));
        }
        let unit = self.cfg.timestamp_unit_ns;
        // Round half up; cannot overflow: time_ns < 2^63 and unit / 2 < 2^63.
        let ts = ((time_ns as u64 + unit / 2) / unit) as i64;
        // track number + 2-byte relative timestamp + flags
        let block_len = slot.encoded.as_bytes().len() + 3 + len;
        if block_len as u64 > ebml::MAX_SIZE {
            return Err(MuxError::BlockTooLarge(len));
        }

        let start = out.len();
        let split = match self.cluster {
            None => true,
            Some(c) => {
                let rel = ts - c.timestamp;
                if rel < i64::from(i16::MIN) {
                    return Err(MuxError::TooFarBack {
                        time_ns,
                        behind: -rel,
                        cluster_timestamp: c.timestamp,
                    });
                }
                // Time-based splits wait for a video keyframe so every cluster starts
                // with a decodable frame; the i16 limit splits on any block.
                rel > i64::from(i16::MAX)
                    || (keyframe
                        && slot.reference
                        && rel >= 0
                        && (rel as u64).saturating_mul(unit) >= self.cfg.max_cluster_ns)
            }
        };
        let mut cluster = match self.cluster {
            Some(c) if !split => c,
            previous => {
                let here = self.pos;
                if let Some(c) = previous {
                    patches.push(close_cluster(c, here));
                }
                ebml::put_master_unknown(out, id::CLUSTER);
                ebml::put_uint(out, id::TIMESTAMP, ts as u64);
                Cluster {
                    cues: self.layout.open_cluster(here),
                    timestamp: ts,
                }
            }
        };
        // In i16 range: checked above, or 0 in a new cluster.
        let rel = (ts - cluster.timestamp) as i16;

        out.push(id::SIMPLE_BLOCK as u8);
        ebml::put_size(out, block_len as u64);
        out.extend_from_slice(slot.encoded.as_bytes());
        out.extend_from_slice(&rel.to_be_bytes());
        out.push(if keyframe { KEYFRAME_FLAG } else { 0 });
        self.layout
            .record_block(&mut cluster.cues, track, ts, slot.reference, keyframe);
        self.cluster = Some(cluster);
        self.pos += (out.len() - start + len) as u64;
        Ok(ts)
    }

    /// Records a chapter ("mark") at `time_ns` (negative times are clamped to 0),
    /// written at finish. Has no effect once the file is finished.
    pub fn add_chapter(&mut self, time_ns: i64, title: &str) {
        if self.state != State::Finished {
            self.layout.chapters.push(Chapter {
                time_ns: time_ns.max(0) as u64,
                title: title.to_owned(),
            });
        }
    }

    /// Closes the last cluster, appends Cues and Chapters, and patches Duration, the
    /// SeekHead and the Segment size: afterwards the file is ordinary and seekable.
    pub fn finish(
        &mut self,
        out: &mut Vec<u8>,
        patches: &mut Vec<Patch>,
    ) -> Result<FinishSummary, MuxError> {
        self.check_writable()?;
        if let Some(c) = self.cluster.take() {
            patches.push(close_cluster(c, self.pos));
        }
        let start = out.len();
        let summary = self.layout.finalize(self.pos, out, patches)?;
        self.pos += (out.len() - start) as u64;
        self.state = State::Finished;
        Ok(summary)
    }

    fn check_writable(&self) -> Result<(), MuxError> {
        if let Some(e) = &self.invalid {
            return Err(e.clone());
        }
        match self.state {
            State::New => Err(MuxError::NoHeader),
            State::Finished => Err(MuxError::Finished),
            State::Writing => Ok(()),
        }
    }
}

/// The size patch for a cluster whose data ends at absolute offset `end`.
fn close_cluster(c: Cluster, end: u64) -> Patch {
    let data_start = c.cues.position + CLUSTER_HEADER_LEN;
    Patch::size8(c.cues.position + 4, end - data_start)
}

fn write_track_entry(out: &mut Vec<u8>, track: &TrackSpec) {
    ebml::put_master(out, id::TRACK_ENTRY, |b| {
        ebml::put_uint(b, id::TRACK_NUMBER, track.number);
        ebml::put_uint(b, id::TRACK_UID, track.uid);
        let (kind, codec) = match track.kind {
            TrackKind::VideoMjpeg { .. } => (1, "V_MJPEG"),
            TrackKind::AudioPcmLe { .. } => (2, "A_PCM/INT/LIT"),
        };
        ebml::put_uint(b, id::TRACK_TYPE, kind);
        // Lacing defaults to "may be used"; we never lace, and say so.
        ebml::put_uint(b, id::FLAG_LACING, 0);
        if !track.name.is_empty() {
            ebml::put_str(b, id::NAME, &track.name);
        }
        // The default language is "eng", which would be a false statement.
        ebml::put_str(b, id::LANGUAGE, "und");
        ebml::put_str(b, id::CODEC_ID, codec);
        match track.kind {
            TrackKind::VideoMjpeg { width, height } => {
                ebml::put_master(b, id::VIDEO, |b| {
                    ebml::put_uint(b, id::PIXEL_WIDTH, width.into());
                    ebml::put_uint(b, id::PIXEL_HEIGHT, height.into());
                });
            }
            TrackKind::AudioPcmLe {
                sample_rate,
                channels,
                bit_depth,
            } => {
                ebml::put_master(b, id::AUDIO, |b| {
                    ebml::put_float(b, id::SAMPLING_FREQUENCY, sample_rate);
                    ebml::put_uint(b, id::CHANNELS, channels.into());
                    ebml::put_uint(b, id::BIT_DEPTH, bit_depth.into());
                });
            }
        }
    });
}

fn write_tags(out: &mut Vec<u8>, tags: &[(String, String)]) {
    ebml::put_master(out, id::TAGS, |b| {
        ebml::put_master(b, id::TAG, |b| {
            // 50 = the whole segment ("movie"): players show these as file metadata.
            ebml::put_master(b, id::TARGETS, |b| {
                ebml::put_uint(b, id::TARGET_TYPE_VALUE, 50);
            });
            for (name, value) in tags {
                ebml::put_master(b, id::SIMPLE_TAG, |b| {
                    ebml::put_str(b, id::TAG_NAME, name);
                    ebml::put_str(b, id::TAG_STRING, value);
                });
            }
        });
    });
}

fn validate(cfg: &MuxerConfig) -> Result<(), String> {
    if cfg.timestamp_unit_ns == 0 {
        return Err("timestamp_unit_ns must be positive".into());
    }
    if cfg.tracks.is_empty() {
        return Err("at least one track is needed".into());
    }
    for (i, t) in cfg.tracks.iter().enumerate() {
        if t.number == 0 || ebml::vint(t.number).is_none() {
            return Err(format!("track number {} is out of range", t.number));
        }
        if t.uid == 0 {
            return Err(format!("track {} has UID 0", t.number));
        }
        if let Some(other) = cfg.tracks[..i]
            .iter()
            .find(|o| o.number == t.number || o.uid == t.uid)
        {
            return Err(format!(
                "tracks {} and {} share a number or UID",
                other.number, t.number
            ));
        }
        match t.kind {
            TrackKind::VideoMjpeg { width, height } if width == 0 || height == 0 => {
                return Err(format!("track {}: picture size {width}x{height}", t.number));
            }
            TrackKind::AudioPcmLe {
                sample_rate,
                channels,
                bit_depth,
            } if !(sample_rate.is_finite() && sample_rate > 0.0)
                || channels == 0
                || bit_depth == 0
                || bit_depth % 8 != 0 =>
            {
                return Err(format!(
                    "track {}: audio format {sample_rate} Hz, {channels} channels, {bit_depth} bits",
                    t.number
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
