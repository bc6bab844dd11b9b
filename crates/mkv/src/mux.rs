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
    pub blocks: u64,
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
    pub blocks: u64,
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
mod tests {
    use super::*;
    use crate::ebml::Reader;

    fn video_cfg(unit: u64) -> MuxerConfig {
        MuxerConfig {
            timestamp_unit_ns: unit,
            max_cluster_ns: 1_000_000_000,
            tracks: vec![TrackSpec {
                number: 1,
                uid: 7,
                name: String::new(),
                kind: TrackKind::VideoMjpeg {
                    width: 2,
                    height: 2,
                },
            }],
            tags: Vec::new(),
            writing_app: "t".into(),
            date_utc_unix_ns: None,
            title: None,
        }
    }

    fn with_audio(mut cfg: MuxerConfig) -> MuxerConfig {
        cfg.tracks.push(TrackSpec {
            number: 2,
            uid: 8,
            name: "mic".into(),
            kind: TrackKind::AudioPcmLe {
                sample_rate: 48_000.0,
                channels: 1,
                bit_depth: 16,
            },
        });
        cfg
    }

    fn apply(file: &mut [u8], patches: &[Patch]) {
        Patch::apply_all(file, patches);
    }

    /// Muxer plus the file it produced, with patches applied as the writer would.
    struct Run {
        mux: MkvMuxer,
        file: Vec<u8>,
        patches: Vec<Patch>,
    }

    impl Run {
        fn new(cfg: MuxerConfig) -> Run {
            let mut mux = MkvMuxer::new(cfg);
            let mut file = Vec::new();
            mux.header(&mut file);
            Run {
                mux,
                file,
                patches: Vec::new(),
            }
        }
        fn block(&mut self, track: u64, t_ns: i64, key: bool) -> Result<i64, MuxError> {
            let mut out = Vec::new();
            let mut patches = Vec::new();
            let r = self
                .mux
                .write_block(track, t_ns, key, b"data", &mut out, &mut patches);
            self.file.extend_from_slice(&out);
            apply(&mut self.file, &patches);
            self.patches.extend(patches);
            r
        }
        fn finish(&mut self) -> FinishSummary {
            let mut out = Vec::new();
            let mut patches = Vec::new();
            let s = self.mux.finish(&mut out, &mut patches).unwrap();
            self.file.extend_from_slice(&out);
            apply(&mut self.file, &patches);
            self.patches.extend(patches);
            assert_eq!(self.file.len() as u64, self.mux.position());
            s
        }
        /// Cluster timestamps, in file order (the last cluster has unknown size).
        fn cluster_timestamps(&self) -> Vec<u64> {
            let mut at = self.mux.layout.segment_data_start as usize;
            let mut ts = Vec::new();
            while at < self.file.len() {
                let h = ebml::read_header(&self.file[at..]).unwrap();
                if h.id == id::CLUSTER {
                    let mut r = Reader::new(&self.file[at + h.len..]);
                    let (t, v) = r.next_element().unwrap().unwrap();
                    assert_eq!(t.id, id::TIMESTAMP);
                    ts.push(ebml::read_uint(v).unwrap());
                }
                match h.size {
                    Some(size) => at += h.len + size as usize,
                    None => break,
                }
            }
            ts
        }
    }

    /// The complete header of a minimal file, assembled by hand from the Matroska
    /// specification, to pin the byte layout.
    #[test]
    fn header_matches_golden_bytes() {
        let mut mux = MkvMuxer::new(video_cfg(100_000));
        let mut out = vec![0xEE]; // unrelated bytes the caller has not written yet
        mux.header(&mut out);
        let mut g: Vec<u8> = vec![0xEE];
        // EBML header: 7 children, 35 bytes
        g.extend([0x1A, 0x45, 0xDF, 0xA3, 0xA3]);
        g.extend([
            0x42, 0x86, 0x81, 1, 0x42, 0xF7, 0x81, 1, 0x42, 0xF2, 0x81, 4,
        ]);
        g.extend([0x42, 0xF3, 0x81, 8, 0x42, 0x82, 0x88]);
        g.extend(b"matroska");
        g.extend([0x42, 0x87, 0x81, 4, 0x42, 0x85, 0x81, 2]);
        // Segment, unknown size; data starts at 40 + 12 = 52
        g.extend([
            0x18, 0x53, 0x80, 0x67, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        // SeekHead: 2 entries (42 bytes), then a 63-byte Void (3 spare entries)
        g.extend([0x11, 0x4D, 0x9B, 0x74, 1, 0, 0, 0, 0, 0, 0, 42]);
        let info_rel = 117u8; // Info right after the 117-byte region
        g.extend([0x4D, 0xBB, 0x92, 0x53, 0xAB, 0x84, 0x15, 0x49, 0xA9, 0x66]);
        g.extend([0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0, info_rel]);
        let tracks_rel = info_rel + 5 + 26; // Info header + body
        g.extend([0x4D, 0xBB, 0x92, 0x53, 0xAB, 0x84, 0x16, 0x54, 0xAE, 0x6B]);
        g.extend([0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0, tracks_rel]);
        g.extend([0xEC, 0xBD]);
        g.extend([0; 61]);
        // Info (26 bytes): TimestampScale 100000, Duration slot, MuxingApp, WritingApp
        g.extend([0x15, 0x49, 0xA9, 0x66, 0x9A]);
        g.extend([0x2A, 0xD7, 0xB1, 0x83, 0x01, 0x86, 0xA0]);
        g.extend([0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        g.extend([0x4D, 0x80, 0x81, b't', 0x57, 0x41, 0x81, b't']);
        // Tracks > TrackEntry (37 bytes)
        g.extend([0x16, 0x54, 0xAE, 0x6B, 0xA7, 0xAE, 0xA5]);
        g.extend([
            0xD7, 0x81, 1, 0x73, 0xC5, 0x81, 7, 0x83, 0x81, 1, 0x9C, 0x81, 0,
        ]);
        g.extend([0x22, 0xB5, 0x9C, 0x83, b'u', b'n', b'd']);
        g.extend([0x86, 0x87]);
        g.extend(b"V_MJPEG");
        g.extend([0xE0, 0x86, 0xB0, 0x81, 2, 0xBA, 0x81, 2]);
        assert_eq!(out, g);
        assert_eq!(mux.position(), g.len() as u64 - 1);
        assert_eq!(mux.layout.segment_data_start, 52);
        assert_eq!(mux.layout.duration_slot, 52 + 117 + 5 + 7);
        assert_eq!(out[mux.layout.duration_slot as usize + 1], 0xEC);
    }

    #[test]
    fn first_block_opens_a_cluster_with_unknown_size() {
        let mut run = Run::new(video_cfg(100_000));
        let header_len = run.file.len();
        assert_eq!(run.block(1, 123_456_789, true), Ok(1235));
        let mut expect = vec![0x1F, 0x43, 0xB6, 0x75];
        expect.extend(ebml::UNKNOWN_SIZE);
        expect.extend([0xE7, 0x82, 0x04, 0xD3]); // Timestamp 1235
        expect.extend([0xA3, 0x88, 0x81, 0, 0, 0x80]); // track 1, rel 0, keyframe
        expect.extend(b"data");
        assert_eq!(&run.file[header_len..], &expect[..]);
        assert!(run.patches.is_empty(), "the open cluster is not patched");
    }

    #[test]
    fn header_then_payload_is_byte_identical_to_a_whole_block() {
        let frames: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 100 + i * 37]).collect();
        let (mut a, mut b) = (
            MkvMuxer::new(video_cfg(100_000)),
            MkvMuxer::new(video_cfg(100_000)),
        );
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        a.header(&mut out_a);
        b.header(&mut out_b);
        for (i, f) in frames.iter().enumerate() {
            let t = i as i64 * 70_000_000;
            let ta = a.write_block(1, t, true, f, &mut out_a, &mut pa).unwrap();
            let tb = b
                .write_block_header(1, t, true, f.len(), &mut out_b, &mut pb)
                .unwrap();
            out_b.extend_from_slice(f);
            assert_eq!(ta, tb);
            assert_eq!(a.position(), b.position());
            assert_eq!(b.position(), out_b.len() as u64);
        }
        a.finish(&mut out_a, &mut pa).unwrap();
        b.finish(&mut out_b, &mut pb).unwrap();
        apply(&mut out_a, &pa);
        apply(&mut out_b, &pb);
        assert_eq!(out_a, out_b);
    }

    #[test]
    fn timestamps_round_half_up_to_units() {
        let mut run = Run::new(video_cfg(100_000));
        assert_eq!(run.block(1, 0, true), Ok(0));
        assert_eq!(run.block(1, 49_999, true), Ok(0));
        assert_eq!(run.block(1, 50_000, true), Ok(1));
        assert_eq!(run.block(1, 149_999, true), Ok(1));
        assert_eq!(run.block(1, 150_000, true), Ok(2));
        let mut run = Run::new(video_cfg(1_000));
        assert_eq!(run.block(1, 1_499, true), Ok(1));
        assert_eq!(run.block(1, 1_500, true), Ok(2));
        let mut run = Run::new(video_cfg(1_000_000));
        assert_eq!(run.block(1, 2_500_000, true), Ok(3));
    }

    #[test]
    fn clusters_split_at_max_duration_on_video_keyframes() {
        let mut run = Run::new(with_audio(video_cfg(100_000)));
        run.block(1, 0, true).unwrap();
        run.block(2, 500_000_000, true).unwrap();
        run.block(1, 999_900_000, true).unwrap();
        assert_eq!(run.cluster_timestamps(), [0]);
        // audio at the limit does not split: clusters start with a video frame
        run.block(2, 1_000_000_000, true).unwrap();
        // neither does a video block that is not a keyframe
        run.block(1, 1_010_000_000, false).unwrap();
        assert_eq!(run.cluster_timestamps(), [0]);
        run.block(1, 1_020_000_000, true).unwrap();
        assert_eq!(run.cluster_timestamps(), [0, 10_200]);
        assert_eq!(run.patches.len(), 1, "closing a cluster patches its size");
        let s = run.finish();
        assert_eq!((s.blocks, s.clusters), (6, 2));
        assert_eq!(
            run.mux
                .layout
                .cue_points
                .iter()
                .map(|c| c.time)
                .collect::<Vec<_>>(),
            [0, 10_200]
        );
    }

    #[test]
    fn relative_timestamps_stay_in_i16_range() {
        let mut run = Run::new(with_audio(video_cfg(100_000)));
        // unit 100 µs: i16 reaches 3.2767 s, more than max_cluster, so only a
        // non-keyframe stream (here audio) reaches the limit
        run.block(2, 5_000_000_000, true).unwrap();
        run.block(2, 5_000_000_000 + 3_276_700_000, true).unwrap();
        assert_eq!(run.cluster_timestamps(), [50_000]);
        run.block(2, 5_000_000_000 + 3_276_800_000, true).unwrap();
        assert_eq!(run.cluster_timestamps(), [50_000, 82_768]);
        // back in time: at most 32768 units before the cluster start
        assert!(run.block(1, 5_000_000_000, true).is_ok());
        assert_eq!(
            run.block(1, 4_999_900_000, true),
            Err(MuxError::TooFarBack {
                time_ns: 4_999_900_000,
                behind: 32_769,
                cluster_timestamp: 82_768
            })
        );
        // with a 1 µs unit the i16 range (32.767 ms) is shorter than max_cluster
        let mut run = Run::new(video_cfg(1_000));
        for i in 0..10 {
            run.block(1, i * 10_000_000, true).unwrap();
        }
        assert_eq!(run.cluster_timestamps(), [0, 40_000, 80_000]);
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let mut mux = MkvMuxer::new(video_cfg(100_000));
        let (mut out, mut patches) = (Vec::new(), Vec::new());
        assert_eq!(
            mux.write_block(1, 0, true, b"x", &mut out, &mut patches),
            Err(MuxError::NoHeader)
        );
        assert_eq!(mux.finish(&mut out, &mut patches), Err(MuxError::NoHeader));
        mux.header(&mut out);
        let len = out.len();
        mux.header(&mut out);
        assert_eq!(out.len(), len, "a second header() writes nothing");
        assert_eq!(
            mux.write_block(3, 0, true, b"x", &mut out, &mut patches),
            Err(MuxError::UnknownTrack(3))
        );
        assert_eq!(
            mux.write_block(1, -1, true, b"x", &mut out, &mut patches),
            Err(MuxError::NegativeTime(-1))
        );
        assert_eq!(out.len(), len, "failed calls write nothing");
        mux.finish(&mut out, &mut patches).unwrap();
        assert_eq!(
            mux.write_block(1, 0, true, b"x", &mut out, &mut patches),
            Err(MuxError::Finished)
        );
        assert_eq!(mux.finish(&mut out, &mut patches), Err(MuxError::Finished));

        let mut cfg = with_audio(video_cfg(100_000));
        cfg.tracks[1].number = 1;
        let mut mux = MkvMuxer::new(cfg);
        let mut out = Vec::new();
        mux.header(&mut out);
        assert!(out.is_empty());
        assert!(matches!(
            mux.write_block(1, 0, true, b"x", &mut out, &mut patches),
            Err(MuxError::InvalidConfig(_))
        ));
        for bad in [
            MuxerConfig {
                tracks: vec![],
                ..video_cfg(100_000)
            },
            video_cfg(0),
        ] {
            assert!(matches!(
                MkvMuxer::new(bad).finish(&mut out, &mut patches),
                Err(MuxError::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn finish_patches_sizes_duration_and_seekhead() {
        let mut cfg = video_cfg(100_000);
        cfg.tags = vec![("CAMERA".into(), "cam0".into())];
        let mut run = Run::new(cfg);
        for (i, t) in [0i64, 40_000_000, 1_100_000_000, 1_133_300_000]
            .iter()
            .enumerate()
        {
            run.block(1, *t, i % 2 == 0).unwrap();
        }
        run.mux.add_chapter(1_000_000_000, "b");
        run.mux.add_chapter(-5, "a");
        let s = run.finish();
        // last video block 11333 + interval 333 units
        assert_eq!(s.duration_ns, 11_666 * 100_000);
        assert_eq!((s.blocks, s.clusters), (4, 2));
        // the Segment size is the last patch, and says "up to the end of the file"
        let last = run.patches.last().unwrap();
        assert_eq!(last.offset, 44);
        assert_eq!(last.bytes, ebml::size8(run.file.len() as u64 - 52));

        let f = &run.file;
        let mut top = Reader::new(&f[52..]);
        let mut seen = Vec::new();
        let mut seek = Vec::new();
        while let Some((h, body)) = top.next_element().unwrap() {
            seen.push(h.id);
            match h.id {
                id::SEEK_HEAD => {
                    assert_eq!(h.size_len, 8);
                    let mut r = Reader::new(body);
                    while let Some((_, s)) = r.next_element().unwrap() {
                        let mut r = Reader::new(s);
                        let (_, sid) = r.next_element().unwrap().unwrap();
                        let (_, pos) = r.next_element().unwrap().unwrap();
                        seek.push((sid.to_vec(), ebml::read_uint(pos).unwrap()));
                    }
                }
                id::INFO => {
                    let mut r = Reader::new(body);
                    r.next_element().unwrap();
                    let (d, v) = r.next_element().unwrap().unwrap();
                    assert_eq!((d.id, ebml::read_float(v)), (id::DURATION, Ok(11_666.0)));
                }
                id::CLUSTER => assert_eq!(h.size_len, 8),
                _ => {}
            }
        }
        let c = [id::CLUSTER, id::CLUSTER];
        assert_eq!(
            seen,
            [
                &[id::SEEK_HEAD, id::INFO, id::TRACKS, id::TAGS][..],
                &c,
                &[id::CUES, id::CHAPTERS]
            ]
            .concat()
        );
        assert_eq!(
            seek.len(),
            5,
            "the region is full: no Void after the SeekHead"
        );
        for (sid, pos) in seek {
            let at = 52 + pos as usize;
            assert_eq!(&f[at..at + 4], &sid[..], "seek entry points at its element");
        }
        let mut tail = Vec::new();
        write_chapters(&mut tail, &run.mux.layout.chapters);
        assert!(f.ends_with(&tail));
        let at = |s: u8| tail.windows(3).position(|w| w == [0x85, 0x81, s]).unwrap();
        let (a, b) = (at(b'a'), at(b'b'));
        assert!(a < b, "chapters are written in time order");
    }

    #[test]
    fn finishing_without_blocks_leaves_a_valid_empty_segment() {
        let mut run = Run::new(video_cfg(100_000));
        let header_len = run.file.len();
        let s = run.finish();
        assert_eq!(
            s,
            FinishSummary {
                duration_ns: 0,
                blocks: 0,
                clusters: 0
            }
        );
        assert_eq!(run.file.len(), header_len, "no Cues without clusters");
        // no Duration: the Void stays
        assert_eq!(run.file[run.mux.layout.duration_slot as usize], 0xEC);
        assert_eq!(run.patches.len(), 2, "SeekHead region and Segment size");
    }

    #[test]
    fn duration_is_the_last_frame_plus_the_last_interval() {
        let mut layout = Layout::new(52, SEEK_REGION_LEN, Vec::new(), 0, 100_000);
        assert_eq!(layout.duration_units(), None);
        let mut cluster = layout.open_cluster(100);
        layout.record_block(&mut cluster, 1, 0, true, true);
        assert_eq!(
            layout.duration_units(),
            Some(1),
            "Duration must be positive"
        );
        layout.record_block(&mut cluster, 2, 50, false, true);
        layout.record_block(&mut cluster, 1, 40, true, true);
        assert_eq!(layout.duration_units(), Some(80), "audio does not count");
        // timestamps from a damaged file cannot overflow it
        layout.record_block(&mut cluster, 1, -32_768, true, true);
        layout.record_block(&mut cluster, 1, i64::MAX, true, true);
        assert_eq!(layout.duration_units(), Some(i64::MAX));
        assert_eq!(layout.cue_points.len(), 1, "one cue per cluster");
    }

    #[test]
    fn finalize_refuses_a_too_small_seek_region() {
        let mut layout = Layout::new(52, 12 + 2 * 21 + 1, vec![(id::INFO, 200)], 300, 1000);
        let mut cluster = layout.open_cluster(400);
        layout.record_block(&mut cluster, 1, 0, true, true);
        let (mut out, mut patches) = (Vec::new(), Vec::new());
        assert_eq!(
            layout.finalize(500, &mut out, &mut patches),
            Err(MuxError::SeekRegionTooSmall {
                needed: 54,
                reserved: 55
            })
        );
        assert!(out.is_empty() && patches.is_empty());
        layout.seek_region_len = 54;
        layout.finalize(500, &mut out, &mut patches).unwrap();
        assert_eq!(patches[1].bytes.len(), 54);
    }
}
