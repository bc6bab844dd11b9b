//! Reading back recordings written by [`crate::mux`]: is a file finished, and if not
//! (the process was killed, the power failed, the disk filled up), how to finish it.
//!
//! The input is untrusted: a file cut at an arbitrary byte, or anything a user points
//! the `repair` command at. So the reader never panics, never allocates from a size
//! field it has not bounded, and reports problems with the byte offset they occur at.
//!
//! Planning is separate from doing: [`plan_repair`] only reads and returns a
//! [`RepairPlan`] (where to cut, what to append, what to patch), computed by rebuilding
//! the muxer's [`Layout`] from the file and calling the muxer's own
//! [`Layout::finalize`], so a repaired file has exactly the index a clean finish would
//! have written. [`apply_plan`] is the only function here that writes.
//!
//! Scanning reads element headers, never frame payloads: one small read per element,
//! so the cost is proportional to the number of frames, not to the file size, and the
//! memory is one CuePoint per cluster. Every block header is visited (also in clusters
//! whose size is known) because the plan reports the exact number of frames recovered,
//! which users check against the `.frames.csv` sidecar, and because the Duration needs
//! the last two video frames' times.
//!
//! What belongs here: reading and planning. What does not: writing a file's bytes
//! (`mux`), the recorder's sidecars and marks (the recorder's `writer::repair`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::ebml::{self, id, EbmlError, Header};
use crate::mux::{Chapter, Layout, MuxError, OpenCluster, Patch, DURATION_SLOT_LEN};
use thiserror::Error;

/// Bounds for the elements read into memory; ours are a few hundred bytes.
const MAX_EBML_HEADER: u64 = 4 << 10;
const MAX_SEEK_HEAD: u64 = 64 << 10;
const MAX_INFO: u64 = 64 << 10;
const MAX_TRACKS: u64 = 1 << 20;
const MAX_CHAPTERS: u64 = 1 << 20;
/// An element header is at most a 4-byte ID and an 8-byte size; a SimpleBlock header
/// adds at most an 8-byte track number, 2 bytes of timestamp and 1 of flags.
const PROBE_LEN: usize = 32;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("I/O error at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("not a Matroska file: {0}")]
    NotMatroska(String),
    #[error(
        "the file ends at byte {len}, inside the {what} that starts at byte {offset}: \
         the header is incomplete, so no frame can be recovered"
    )]
    HeaderCut {
        offset: u64,
        what: &'static str,
        len: u64,
    },
    #[error("malformed {what} at byte {offset}: {detail}")]
    Malformed {
        offset: u64,
        what: &'static str,
        detail: String,
    },
    #[error("the {what} at byte {offset} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        offset: u64,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("not laid out like a hindsight recording (byte {offset}): {detail}")]
    Unsupported { offset: u64, detail: String },
    #[error("cannot finish the file: {0}")]
    Finish(#[from] MuxError),
}

/// What [`apply_plan`] does to finish a file.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairPlan {
    /// The Segment has a known size, the Cues are in place and Duration is written:
    /// nothing to do (`tail` and `patches` are empty, `truncate_to` is the file length).
    pub already_final: bool,
    /// Cut the file here: the end of the last complete cluster data. A partial block,
    /// a cluster without a complete block and any old index are dropped.
    pub truncate_to: u64,
    /// Appended at `truncate_to`: Cues and Chapters.
    pub tail: Vec<u8>,
    /// Cluster sizes, Duration, SeekHead and (last) the Segment size.
    pub patches: Vec<Patch>,
    /// Complete blocks kept, all tracks (video frames, plus audio blocks if muxed).
    pub blocks: u64,
    /// Of those, the video frames (every block of a file without video).
    pub frames: u64,
    pub clusters: u64,
    /// Duration as the finished file states it (0 without video frames).
    pub duration_ns: i64,
    /// Bytes after the last complete block that are cut away.
    pub dropped_bytes: u64,
}

impl RepairPlan {
    /// What [`apply_plan`] does to a file, done to a file held in memory (tests, tools).
    pub fn apply_in_memory(&self, file: &mut Vec<u8>) {
        if !self.already_final {
            file.truncate(self.truncate_to as usize);
            file.extend_from_slice(&self.tail);
            Patch::apply_all(file, &self.patches);
        }
    }
}

/// True if the file's Segment has unknown size: a recording that was never finished.
/// Reads only the first few dozen bytes, so it is cheap enough to run over a whole
/// directory at start-up.
pub fn is_unfinished<R: Read + Seek>(r: &mut R) -> Result<bool, ReadError> {
    let mut src = Source::new(r)?;
    Ok(read_segment(&mut src)?.size.is_none())
}

/// Works out how to finish the file in `r` (see [`RepairPlan`]).
///
/// Handles files cut anywhere after the header (inside a block, inside a cluster
/// header, between clusters), trailing garbage or zeros, and finishes that were
/// interrupted (a partial or complete old index after the clusters is cut away and
/// rewritten; complete old Chapters are kept).
///
/// A file with no complete block is finished as an empty Segment, as the muxer
/// finishes a recording without frames: it keeps the header's metadata (proof that a
/// recording was triggered, and when) and is no longer reported as unfinished.
/// mkvmerge and mkvinfo read it; ffmpeg refuses any Matroska file without a Cluster
/// (mkvmerge's own output included), and `blocks == 0` lets the caller say so.
///
/// A file cut inside its header (before the Tracks are complete) cannot be recovered
/// and gives [`ReadError::HeaderCut`].
pub fn plan_repair<R: Read + Seek>(r: &mut R) -> Result<RepairPlan, ReadError> {
    plan_repair_with(r, &[])
}

/// As [`plan_repair`]; a file that lost its marks (chapters are written when a file is
/// finished, so a crash loses them) gets `marks` as its chapters.
pub fn plan_repair_with<R: Read + Seek>(
    r: &mut R,
    marks: &[Chapter],
) -> Result<RepairPlan, ReadError> {
    let mut src = Source::new(r)?;
    let seg = read_segment(&mut src)?;
    let limit = seg.end(src.len);
    let head = read_head(&mut src, &seg, limit)?;
    let region = head.seek_region.ok_or_else(|| ReadError::Unsupported {
        offset: seg.data_start,
        detail: "the Segment does not start with a SeekHead".into(),
    })?;
    let duration_slot = head.duration_slot.ok_or_else(|| ReadError::Unsupported {
        offset: head.info.unwrap_or(seg.data_start),
        detail: format!("Info has no {DURATION_SLOT_LEN}-byte Void or Duration to overwrite"),
    })?;
    let mut header_elements = Vec::new();
    for (element, at) in [
        (id::INFO, head.info),
        (id::TRACKS, head.tracks),
        (id::TAGS, head.tags),
    ] {
        if let Some(at) = at {
            header_elements.push((element, at));
        }
    }
    let mut layout = Layout::new(
        seg.data_start,
        region.1 - region.0,
        header_elements,
        duration_slot,
        head.timestamp_unit_ns,
    );
    layout.seek_region_start = region.0;

    let mut scan = ClusterScan {
        src: &mut src,
        layout: &mut layout,
        video_tracks: &head.video_tracks,
        limit,
    };
    let clusters = scan.run(head.end)?;
    let tail = scan.read_tail(clusters.tail_at)?;

    let intact = clusters.patches.is_empty() && !clusters.damaged;
    let cues_indexed = layout.cue_points.is_empty()
        || tail
            .cues_at
            .is_some_and(|at| head.seek_entries.contains(&(id::CUES, at)));
    let duration_written = head.has_duration || layout.duration_units().is_none();
    let already_final = seg.size.is_some_and(|s| seg.data_start + s <= src.len)
        && intact
        && cues_indexed
        && duration_written;
    let unit = i64::try_from(layout.timestamp_unit_ns).unwrap_or(i64::MAX);
    if already_final {
        return Ok(RepairPlan {
            already_final,
            truncate_to: src.len,
            tail: Vec::new(),
            patches: Vec::new(),
            blocks: layout.blocks,
            frames: layout.frames,
            clusters: layout.clusters,
            duration_ns: layout
                .duration_units()
                .map_or(0, |d| d.saturating_mul(unit)),
            dropped_bytes: 0,
        });
    }

    if seg.size_len != 8 {
        return Err(ReadError::Unsupported {
            offset: seg.data_start - seg.size_len as u64,
            detail: "the Segment size field is not 8 bytes long, so it cannot be patched".into(),
        });
    }
    match tail.chapters {
        Some(chapters) => layout.chapters = chapters,
        None => layout.chapters = marks.to_vec(),
    }
    let mut patches = clusters.patches;
    let mut out = Vec::new();
    let summary = layout.finalize(clusters.data_end, &mut out, &mut patches)?;
    Ok(RepairPlan {
        already_final,
        truncate_to: clusters.data_end,
        tail: out,
        patches,
        blocks: summary.blocks,
        frames: summary.frames,
        clusters: summary.clusters,
        duration_ns: summary.duration_ns,
        dropped_bytes: src.len - clusters.data_end,
    })
}

/// Carries out `plan` on `file`: cut, append the tail, sync, patch, sync. The sync in
/// between keeps the repair itself crash-safe: the Segment size (the last patch) never
/// reaches the disk before the index it covers, and a repair interrupted at any point
/// can simply be planned and applied again.
pub fn apply_plan(file: &mut File, plan: &RepairPlan) -> io::Result<()> {
    // Same steps as `RepairPlan::apply_in_memory`, on a file.
    if plan.already_final {
        return Ok(());
    }
    file.set_len(plan.truncate_to)?;
    file.seek(SeekFrom::Start(plan.truncate_to))?;
    file.write_all(&plan.tail)?;
    file.sync_data()?;
    for patch in &plan.patches {
        file.seek(SeekFrom::Start(patch.offset))?;
        file.write_all(&patch.bytes)?;
    }
    file.sync_data()
}

/// Positioned reads over the input.
struct Source<'r, R> {
    r: &'r mut R,
    len: u64,
}

/// What is found at a position where an element should start.
enum Probe {
    /// End of the data.
    End,
    /// The data ends inside the element header.
    Cut,
    /// Bytes that are no element header (garbage, or zeros left by a power failure).
    Invalid(EbmlError),
    Element(Header),
}

impl<'r, R: Read + Seek> Source<'r, R> {
    fn new(r: &'r mut R) -> Result<Self, ReadError> {
        let len = r
            .seek(SeekFrom::End(0))
            .map_err(|source| ReadError::Io { offset: 0, source })?;
        Ok(Source { r, len })
    }

    /// Reads up to `buf.len()` bytes at `pos`, fewer at the end of the file.
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, ReadError> {
        let io = |source| ReadError::Io {
            offset: pos,
            source,
        };
        let want = buf
            .len()
            .min(usize::try_from(self.len.saturating_sub(pos)).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        self.r.seek(SeekFrom::Start(pos)).map_err(io)?;
        let mut filled = 0;
        while filled < want {
            match self.r.read(&mut buf[filled..want]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(filled)
    }

    /// Reads what is at `pos` into `buf` and decodes the element header there.
    fn probe(&mut self, pos: u64, buf: &mut [u8; PROBE_LEN]) -> Result<(Probe, usize), ReadError> {
        let n = self.read_at(pos, buf)?;
        let probe = match ebml::read_header(&buf[..n]) {
            _ if n == 0 => Probe::End,
            Ok(h) => Probe::Element(h),
            Err(EbmlError::Incomplete) => Probe::Cut,
            Err(e) => Probe::Invalid(e),
        };
        Ok((probe, n))
    }

    /// The body of the sized element `h` at `pos`, which must fit in the file and in
    /// `limit` bytes.
    fn body(
        &mut self,
        pos: u64,
        h: &Header,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, ReadError> {
        let size = h.size.ok_or(ReadError::Malformed {
            offset: pos,
            what,
            detail: "unknown size".into(),
        })?;
        if size > limit {
            return Err(ReadError::TooLarge {
                offset: pos,
                what,
                size,
                limit,
            });
        }
        let mut body = vec![0; size as usize];
        let n = self.read_at(pos + h.len as u64, &mut body)?;
        if n < body.len() {
            return Err(ReadError::HeaderCut {
                offset: pos,
                what,
                len: self.len,
            });
        }
        Ok(body)
    }
}

fn malformed(offset: u64, what: &'static str) -> impl FnOnce(EbmlError) -> ReadError {
    move |e| ReadError::Malformed {
        offset,
        what,
        detail: e.to_string(),
    }
}

/// Where the Segment's data starts, and its size field.
struct SegmentStart {
    data_start: u64,
    size: Option<u64>,
    size_len: usize,
}

impl SegmentStart {
    /// Where the Segment's data ends in a file of `len` bytes: at its size, or at the end
    /// of the file when the size is unknown (live, or cut) or larger than the file.
    fn end(&self, len: u64) -> u64 {
        self.size
            .and_then(|s| self.data_start.checked_add(s))
            .map_or(len, |end| end.min(len))
    }
}

fn read_segment<R: Read + Seek>(src: &mut Source<'_, R>) -> Result<SegmentStart, ReadError> {
    let mut buf = [0; PROBE_LEN];
    let h = match src.probe(0, &mut buf)?.0 {
        Probe::Element(h) if h.id == id::EBML => h,
        Probe::End => return Err(ReadError::NotMatroska("the file is empty".into())),
        Probe::Cut => {
            return Err(ReadError::HeaderCut {
                offset: 0,
                what: "EBML header",
                len: src.len,
            })
        }
        _ => return Err(ReadError::NotMatroska("no EBML header at byte 0".into())),
    };
    let body = src.body(0, &h, "EBML header", MAX_EBML_HEADER)?;
    let mut doc_type = None;
    let mut children = ebml::Reader::new(&body);
    while let Some((c, value)) = children
        .next_element()
        .map_err(malformed(0, "EBML header"))?
    {
        if c.id == id::DOC_TYPE {
            doc_type = Some(ebml::read_string(value));
        }
    }
    match doc_type.as_deref() {
        Some("matroska" | "webm") => {}
        other => {
            return Err(ReadError::NotMatroska(format!(
                "DocType is {other:?}, not \"matroska\""
            )))
        }
    }
    let at = h.len as u64 + body.len() as u64;
    match src.probe(at, &mut buf)?.0 {
        Probe::Element(s) if s.id == id::SEGMENT => Ok(SegmentStart {
            data_start: at + s.len as u64,
            size: s.size,
            size_len: s.size_len,
        }),
        Probe::End | Probe::Cut => Err(ReadError::HeaderCut {
            offset: at,
            what: "Segment header",
            len: src.len,
        }),
        _ => Err(ReadError::NotMatroska(format!(
            "no Segment after the EBML header (byte {at})"
        ))),
    }
}

/// The header elements before the first Cluster.
#[derive(Default)]
struct Head {
    /// Start and end of the SeekHead and the Voids right after it.
    seek_region: Option<(u64, u64)>,
    /// (ID, absolute position) entries of that SeekHead.
    seek_entries: Vec<(u32, u64)>,
    info: Option<u64>,
    tracks: Option<u64>,
    tags: Option<u64>,
    timestamp_unit_ns: u64,
    duration_slot: Option<u64>,
    has_duration: bool,
    /// Sorted numbers of the video tracks.
    video_tracks: Vec<u64>,
    /// Where the first Cluster starts, or where the header ends if there is none.
    end: u64,
}

fn read_head<R: Read + Seek>(
    src: &mut Source<'_, R>,
    seg: &SegmentStart,
    limit: u64,
) -> Result<Head, ReadError> {
    let mut head = Head {
        timestamp_unit_ns: 1_000_000, // the Matroska default
        ..Head::default()
    };
    let mut buf = [0; PROBE_LEN];
    let mut pos = seg.data_start;
    // The header is usable once SeekHead, Info and Tracks are complete; anything cut
    // after them (the Tags, say) is dropped like a partial cluster.
    let complete =
        |head: &Head| head.seek_region.is_some() && head.info.is_some() && head.tracks.is_some();
    let len = src.len;
    let cut = |offset, what| ReadError::HeaderCut { offset, what, len };
    loop {
        if pos >= limit {
            break;
        }
        let h = match src.probe(pos, &mut buf)?.0 {
            Probe::Element(h) => h,
            Probe::Invalid(e) if !complete(&head) => {
                return Err(malformed(pos, "Segment header")(e))
            }
            _ if complete(&head) => break,
            _ => return Err(cut(pos, "Segment header")),
        };
        if h.id == id::CLUSTER {
            break;
        }
        let what = element_name(h.id);
        let end = h
            .size
            .and_then(|s| (pos + h.len as u64).checked_add(s))
            .ok_or(ReadError::Malformed {
                offset: pos,
                what,
                detail: "unknown or impossible size before the first Cluster".into(),
            })?;
        if end > limit {
            if complete(&head) {
                break;
            }
            return Err(cut(pos, what));
        }
        match h.id {
            id::SEEK_HEAD if pos == seg.data_start => {
                let body = src.body(pos, &h, what, MAX_SEEK_HEAD)?;
                head.seek_entries =
                    parse_seek_head(&body, seg.data_start).map_err(malformed(pos, what))?;
                // The region is rewritten as a whole; its size field must keep its length.
                if h.size_len == 8 {
                    head.seek_region = Some((pos, end));
                } else {
                    return Err(ReadError::Unsupported {
                        offset: pos,
                        detail: "the SeekHead size field is not 8 bytes long".into(),
                    });
                }
            }
            id::VOID => {
                // The region is rebuilt in memory by the finish, so it is bounded too.
                if let Some((start, region_end)) = head.seek_region {
                    if region_end == pos && end - start <= MAX_SEEK_HEAD {
                        head.seek_region = Some((start, end));
                    }
                }
            }
            id::INFO if head.info.is_none() => {
                let body = src.body(pos, &h, what, MAX_INFO)?;
                parse_info(&body, pos + h.len as u64, &mut head).map_err(malformed(pos, what))?;
                if head.timestamp_unit_ns == 0 {
                    return Err(ReadError::Malformed {
                        offset: pos,
                        what,
                        detail: "TimestampScale is 0".into(),
                    });
                }
                head.info = Some(pos);
            }
            id::TRACKS if head.tracks.is_none() => {
                let body = src.body(pos, &h, what, MAX_TRACKS)?;
                head.video_tracks = parse_video_tracks(&body).map_err(malformed(pos, what))?;
                head.tracks = Some(pos);
            }
            id::TAGS if head.tags.is_none() => head.tags = Some(pos),
            _ => {}
        }
        pos = end;
    }
    if !complete(&head) {
        if pos >= len {
            return Err(cut(seg.data_start, "Segment header"));
        }
        let missing: Vec<&str> = [
            ("SeekHead", head.seek_region.is_none()),
            ("Info", head.info.is_none()),
            ("Tracks", head.tracks.is_none()),
        ]
        .iter()
        .filter_map(|&(name, absent)| absent.then_some(name))
        .collect();
        return Err(ReadError::Unsupported {
            offset: pos,
            detail: format!("no {} before the first Cluster", missing.join(", ")),
        });
    }
    head.end = pos;
    Ok(head)
}

fn parse_seek_head(body: &[u8], segment: u64) -> Result<Vec<(u32, u64)>, EbmlError> {
    let mut entries = Vec::new();
    let mut seeks = ebml::Reader::new(body);
    while let Some((h, seek)) = seeks.next_element()? {
        if h.id != id::SEEK {
            continue;
        }
        let (mut element, mut position) = (None, None);
        let mut fields = ebml::Reader::new(seek);
        while let Some((f, value)) = fields.next_element()? {
            match f.id {
                id::SEEK_ID if value.len() <= 4 => element = Some(ebml::read_uint(value)? as u32),
                id::SEEK_POSITION => position = segment.checked_add(ebml::read_uint(value)?),
                _ => {}
            }
        }
        if let (Some(e), Some(p)) = (element, position) {
            entries.push((e, p));
        }
    }
    Ok(entries)
}

fn parse_info(body: &[u8], body_at: u64, head: &mut Head) -> Result<(), EbmlError> {
    let mut children = ebml::Reader::new(body);
    loop {
        let at = body_at + children.position() as u64;
        let Some((h, value)) = children.next_element()? else {
            return Ok(());
        };
        let slot_sized = h.len + value.len() == DURATION_SLOT_LEN as usize;
        match h.id {
            id::TIMESTAMP_SCALE => head.timestamp_unit_ns = ebml::read_uint(value)?,
            id::DURATION => {
                // A torn write can leave anything here; only a real duration counts.
                head.has_duration = ebml::read_float(value).is_ok_and(|d| d.is_finite() && d > 0.0);
                if slot_sized {
                    head.duration_slot = Some(at);
                }
            }
            id::VOID if slot_sized && head.duration_slot.is_none() => head.duration_slot = Some(at),
            _ => {}
        }
    }
}

fn parse_video_tracks(body: &[u8]) -> Result<Vec<u64>, EbmlError> {
    let mut video = Vec::new();
    let mut entries = ebml::Reader::new(body);
    while let Some((h, entry)) = entries.next_element()? {
        if h.id != id::TRACK_ENTRY {
            continue;
        }
        let (mut number, mut kind) = (None, None);
        let mut fields = ebml::Reader::new(entry);
        while let Some((f, value)) = fields.next_element()? {
            match f.id {
                id::TRACK_NUMBER => number = Some(ebml::read_uint(value)?),
                id::TRACK_TYPE => kind = Some(ebml::read_uint(value)?),
                _ => {}
            }
        }
        if let (Some(n), Some(1)) = (number, kind) {
            video.push(n);
        }
    }
    video.sort_unstable();
    Ok(video)
}

fn parse_chapters(body: &[u8]) -> Result<Vec<Chapter>, EbmlError> {
    let mut chapters = Vec::new();
    let mut editions = ebml::Reader::new(body);
    while let Some((h, edition)) = editions.next_element()? {
        if h.id != id::EDITION_ENTRY {
            continue;
        }
        let mut atoms = ebml::Reader::new(edition);
        while let Some((h, atom)) = atoms.next_element()? {
            if h.id != id::CHAPTER_ATOM {
                continue;
            }
            let mut chapter = Chapter {
                time_ns: 0,
                title: String::new(),
            };
            let mut fields = ebml::Reader::new(atom);
            while let Some((f, value)) = fields.next_element()? {
                match f.id {
                    id::CHAPTER_TIME_START => chapter.time_ns = ebml::read_uint(value)?,
                    id::CHAPTER_DISPLAY => {
                        let mut display = ebml::Reader::new(value);
                        while let Some((d, s)) = display.next_element()? {
                            if d.id == id::CHAP_STRING {
                                chapter.title = ebml::read_string(s);
                            }
                        }
                    }
                    _ => {}
                }
            }
            chapters.push(chapter);
        }
    }
    Ok(chapters)
}

fn element_name(element: u32) -> &'static str {
    match element {
        id::SEEK_HEAD => "SeekHead",
        id::INFO => "Info",
        id::TRACKS => "Tracks",
        id::TAGS => "Tags",
        id::CUES => "Cues",
        id::CHAPTERS => "Chapters",
        id::CLUSTER => "Cluster",
        id::VOID => "Void",
        _ => "element",
    }
}

/// Level-1 elements: in a cluster of unknown size, one of these ends the cluster.
fn is_top_level(element: u32) -> bool {
    matches!(
        element,
        id::CLUSTER
            | id::CUES
            | id::CHAPTERS
            | id::TAGS
            | id::SEEK_HEAD
            | id::INFO
            | id::TRACKS
            | id::ATTACHMENTS
    )
}

fn is_cluster_child(element: u32) -> bool {
    matches!(
        element,
        id::TIMESTAMP
            | id::SIMPLE_BLOCK
            | id::BLOCK_GROUP
            | id::POSITION
            | id::PREV_SIZE
            | id::VOID
            | id::CRC32
    )
}

/// Outcome of scanning the clusters.
struct Clusters {
    /// End of the last cluster kept: where the file is cut and the index goes.
    data_end: u64,
    /// Size patches for clusters of unknown size, or that have to shrink.
    patches: Vec<Patch>,
    /// The data stopped making sense (a cut, or garbage) before the clusters ended.
    damaged: bool,
    /// A top-level element after the clusters (an old index), if any.
    tail_at: Option<u64>,
}

/// Why the walk through one cluster's children stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClusterEnd {
    /// At the end given by its size field.
    Declared,
    /// Unknown size: at the next top-level element or at the end of the data.
    Open,
    /// Inside a child, at garbage, or at a child that does not fit.
    Cut,
}

struct ClusterScan<'s, 'r, R> {
    src: &'s mut Source<'r, R>,
    layout: &'s mut Layout,
    video_tracks: &'s [u64],
    limit: u64,
}

impl<R: Read + Seek> ClusterScan<'_, '_, R> {
    fn run(&mut self, first: u64) -> Result<Clusters, ReadError> {
        let mut result = Clusters {
            data_end: first,
            patches: Vec::new(),
            damaged: false,
            tail_at: None,
        };
        let mut buf = [0; PROBE_LEN];
        let mut pos = first;
        while pos < self.limit {
            let h = match self.src.probe(pos, &mut buf)?.0 {
                Probe::Element(h) if h.id == id::CLUSTER => h,
                Probe::Element(h) if is_top_level(h.id) => {
                    result.tail_at = Some(pos);
                    break;
                }
                _ => {
                    result.damaged = true;
                    break;
                }
            };
            let (end, how, blocks) = self.cluster(pos, &h)?;
            if blocks == 0 && how != ClusterEnd::Declared {
                // A cluster cut before its first complete block: nothing to keep.
                result.damaged = true;
                break;
            }
            if how != ClusterEnd::Declared {
                let data_start = pos + h.len as u64;
                let size_at = data_start - h.size_len as u64;
                let size = ebml::vint_fixed(end - data_start, h.size_len).ok_or_else(|| {
                    ReadError::Unsupported {
                        offset: pos,
                        detail: "the Cluster size field is too short for its size".into(),
                    }
                })?;
                result.patches.push(Patch {
                    offset: size_at,
                    bytes: size.as_bytes().to_vec(),
                });
            }
            result.data_end = end;
            if how == ClusterEnd::Cut {
                result.damaged = true;
                break;
            }
            pos = end;
        }
        Ok(result)
    }

    /// Walks the children of the Cluster at `pos`, recording its complete blocks.
    /// Returns where the kept part of the cluster ends, why, and how many blocks it has.
    fn cluster(&mut self, pos: u64, h: &Header) -> Result<(u64, ClusterEnd, u64), ReadError> {
        let data_start = pos + h.len as u64;
        // A size that overruns the data is as good as unknown (a cut after the size
        // was written); it cannot be trusted to find the next cluster.
        let declared = h
            .size
            .and_then(|s| data_start.checked_add(s))
            .filter(|&end| end <= self.limit);
        let bound = declared.unwrap_or(self.limit);
        let mut open: Option<OpenCluster> = None;
        let mut timestamp: Option<i64> = None;
        let mut blocks = 0;
        let mut buf = [0; PROBE_LEN];
        let mut p = data_start;
        let how = loop {
            if p >= bound {
                break if declared.is_some() {
                    ClusterEnd::Declared
                } else {
                    ClusterEnd::Open
                };
            }
            let (probe, n) = self.src.probe(p, &mut buf)?;
            let c = match probe {
                Probe::Element(c) => c,
                Probe::End => break ClusterEnd::Open,
                Probe::Cut | Probe::Invalid(_) => break ClusterEnd::Cut,
            };
            if declared.is_none() && !is_cluster_child(c.id) {
                break if is_top_level(c.id) {
                    ClusterEnd::Open
                } else {
                    ClusterEnd::Cut
                };
            }
            let Some(end) = c.size.and_then(|s| (p + c.len as u64).checked_add(s)) else {
                break ClusterEnd::Cut;
            };
            if end > bound {
                break ClusterEnd::Cut;
            }
            // The start of the body, as far as the probe read it: all of a Timestamp,
            // and the track, timestamp and flags of a SimpleBlock.
            let size = end - p - c.len as u64;
            let head = &buf[c.len.min(n)..n];
            let head = &head[..head.len().min(usize::try_from(size).unwrap_or(usize::MAX))];
            match c.id {
                id::TIMESTAMP => match ebml::read_uint(head) {
                    Ok(t) if size <= 8 && t <= i64::MAX as u64 => timestamp = Some(t as i64),
                    _ => break ClusterEnd::Cut,
                },
                id::SIMPLE_BLOCK => {
                    let (Some((track, rel, flags)), Some(cluster_ts)) =
                        (block_head(head), timestamp)
                    else {
                        break ClusterEnd::Cut;
                    };
                    let ts = cluster_ts.saturating_add(i64::from(rel));
                    let reference = self.video_tracks.is_empty()
                        || self.video_tracks.binary_search(&track).is_ok();
                    let cluster = open.get_or_insert_with(|| self.layout.open_cluster(pos));
                    self.layout
                        .record_block(cluster, track, ts, reference, flags & 0x80 != 0);
                    blocks += 1;
                }
                _ => {}
            }
            p = end;
        };
        let end = match how {
            ClusterEnd::Declared => bound,
            ClusterEnd::Open | ClusterEnd::Cut => p,
        };
        Ok((end, how, blocks))
    }

    /// Reads the top-level elements after the clusters (left by a finish that was
    /// interrupted, or by a complete one): where complete Cues are, and complete
    /// Chapters so that marks survive the repair.
    fn read_tail(&mut self, from: Option<u64>) -> Result<Tail, ReadError> {
        let mut tail = Tail {
            cues_at: None,
            chapters: None,
        };
        let mut buf = [0; PROBE_LEN];
        let mut pos = match from {
            Some(p) => p,
            None => return Ok(tail),
        };
        while pos < self.limit {
            let Probe::Element(h) = self.src.probe(pos, &mut buf)?.0 else {
                break;
            };
            let Some(end) = h
                .size
                .and_then(|s| (pos + h.len as u64).checked_add(s))
                .filter(|&end| end <= self.limit)
            else {
                break;
            };
            match h.id {
                id::CUES => tail.cues_at = Some(pos),
                id::CHAPTERS if h.size.is_some_and(|s| s <= MAX_CHAPTERS) => {
                    let body = self.src.body(pos, &h, "Chapters", MAX_CHAPTERS)?;
                    // Damaged chapters are not worth failing the repair for.
                    tail.chapters = parse_chapters(&body).ok();
                }
                _ => {}
            }
            pos = end;
        }
        Ok(tail)
    }
}

struct Tail {
    cues_at: Option<u64>,
    chapters: Option<Vec<Chapter>>,
}

/// Track number, relative timestamp and flags at the start of a SimpleBlock body.
fn block_head(body: &[u8]) -> Option<(u64, i16, u8)> {
    let (track, len) = ebml::read_size(body).ok()?;
    match body.get(len..len + 3)? {
        &[hi, lo, flags] => Some((track?, i16::from_be_bytes([hi, lo]), flags)),
        _ => None,
    }
}

mod locate;
pub use locate::{BlockAt, ClusterIndex};

#[cfg(test)]
mod tests;
