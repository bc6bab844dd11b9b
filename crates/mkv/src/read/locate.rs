//! Finding one video frame's bytes in a recording without decoding anything: the Cues
//! (one CuePoint per cluster, written when a file is finished or repaired) give the
//! cluster that holds a timestamp; a file without them (still being written, or cut by a
//! crash and not yet repaired) has its cluster headers walked instead, one small read per
//! cluster. Inside the cluster only block headers are read, as the repair scan does.

use std::io::{Read, Seek};

use super::{block_head, is_cluster_child, malformed, read_head, read_segment, Probe, Source};
use super::{ReadError, PROBE_LEN};
use crate::ebml::{self, id};

/// The Cues are one CuePoint (≈ 20 bytes) per cluster of ≤ 1 s: 16 MiB is years.
const MAX_CUES: u64 = 16 << 20;

/// Where a block's frame is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockAt {
    /// The first byte of the frame (after the block's track, timestamp and flags).
    pub offset: u64,
    pub len: u64,
    /// The block's timestamp, in the file's unit.
    pub timestamp: i64,
}

/// A file's clusters by timestamp, to find frames in it.
#[derive(Clone, Debug)]
pub struct ClusterIndex {
    /// (timestamp in the file's unit, absolute position of the Cluster), in file order.
    clusters: Vec<(i64, u64)>,
    /// Nanoseconds per timestamp unit.
    pub timestamp_unit_ns: u64,
    video_tracks: Vec<u64>,
    /// Where the data the index covers ends (the Segment's end or the file's).
    limit: u64,
    /// Whether the index came from the file's Cues.
    pub from_cues: bool,
}

impl ClusterIndex {
    /// Reads the index of the file in `r`: its Cues if it has them, else its clusters.
    pub fn read<R: Read + Seek>(r: &mut R) -> Result<ClusterIndex, ReadError> {
        let mut src = Source::new(r)?;
        let seg = read_segment(&mut src)?;
        let limit = seg.end(src.len);
        let head = read_head(&mut src, &seg, limit)?;
        let mut index = ClusterIndex {
            clusters: Vec::new(),
            timestamp_unit_ns: head.timestamp_unit_ns,
            video_tracks: head.video_tracks.clone(),
            limit,
            from_cues: false,
        };
        let cues = head
            .seek_entries
            .iter()
            .find(|(element, _)| *element == id::CUES)
            .map(|&(_, at)| at);
        if let Some(at) = cues.filter(|&at| at < limit) {
            if let Some(clusters) = read_cues(&mut src, at, seg.data_start, limit)? {
                index.clusters = clusters;
                index.from_cues = true;
                return Ok(index);
            }
        }
        index.clusters = walk_clusters(&mut src, head.end, limit)?;
        Ok(index)
    }

    /// Clusters found.
    pub fn clusters(&self) -> usize {
        self.clusters.len()
    }

    /// The video block with timestamp `timestamp` (in the file's unit), if there is one.
    pub fn video_block<R: Read + Seek>(
        &self,
        r: &mut R,
        timestamp: i64,
    ) -> Result<Option<BlockAt>, ReadError> {
        // The last cluster that starts at or before the timestamp.
        let k = self.clusters.partition_point(|&(t, _)| t <= timestamp);
        let Some(&(_, pos)) = k.checked_sub(1).and_then(|k| self.clusters.get(k)) else {
            return Ok(None);
        };
        let mut src = Source::new(r)?;
        let limit = self.limit.min(src.len);
        let mut buf = [0; PROBE_LEN];
        let Probe::Element(h) = src.probe(pos, &mut buf)?.0 else {
            return Ok(None);
        };
        if h.id != id::CLUSTER {
            return Err(ReadError::Malformed {
                offset: pos,
                what: "Cluster",
                detail: "the index points at another element".into(),
            });
        }
        let data_start = pos + h.len as u64;
        let bound = h
            .size
            .and_then(|s| data_start.checked_add(s))
            .map_or(limit, |end| end.min(limit));
        let mut cluster_ts: Option<i64> = None;
        let mut p = data_start;
        while p < bound {
            let (probe, n) = src.probe(p, &mut buf)?;
            let Probe::Element(c) = probe else { break };
            if !is_cluster_child(c.id) {
                break;
            }
            let Some(end) = c.size.and_then(|s| (p + c.len as u64).checked_add(s)) else {
                break;
            };
            if end > bound {
                break;
            }
            let size = end - p - c.len as u64;
            let head = &buf[c.len.min(n)..n];
            let head = &head[..head.len().min(usize::try_from(size).unwrap_or(usize::MAX))];
            match c.id {
                id::TIMESTAMP => {
                    cluster_ts = ebml::read_uint(head)
                        .ok()
                        .and_then(|t| i64::try_from(t).ok());
                }
                id::SIMPLE_BLOCK => {
                    let (Some((track, rel, _)), Some(base)) = (block_head(head), cluster_ts) else {
                        break;
                    };
                    let ts = base.saturating_add(i64::from(rel));
                    let video = self.video_tracks.is_empty()
                        || self.video_tracks.binary_search(&track).is_ok();
                    if video && ts == timestamp {
                        let track_len = ebml::read_size(head).map_or(1, |(_, l)| l) as u64;
                        let offset = p + c.len as u64 + track_len + 3;
                        return Ok(Some(BlockAt {
                            offset,
                            len: end.saturating_sub(offset),
                            timestamp: ts,
                        }));
                    }
                    if video && ts > timestamp {
                        return Ok(None);
                    }
                }
                _ => {}
            }
            p = end;
        }
        Ok(None)
    }
}

/// The clusters the Cues at `at` point to, or None when they are not usable.
fn read_cues<R: Read + Seek>(
    src: &mut Source<'_, R>,
    at: u64,
    segment: u64,
    limit: u64,
) -> Result<Option<Vec<(i64, u64)>>, ReadError> {
    let mut buf = [0; PROBE_LEN];
    let h = match src.probe(at, &mut buf)?.0 {
        Probe::Element(h) if h.id == id::CUES => h,
        _ => return Ok(None),
    };
    if h.size.is_none_or(|s| at + h.len as u64 + s > limit) {
        return Ok(None);
    }
    let body = src.body(at, &h, "Cues", MAX_CUES)?;
    let mut out = Vec::new();
    let mut points = ebml::Reader::new(&body);
    while let Some((p, point)) = points.next_element().map_err(malformed(at, "Cues"))? {
        if p.id != id::CUE_POINT {
            continue;
        }
        let (mut time, mut position) = (None, None);
        let mut fields = ebml::Reader::new(point);
        while let Some((f, value)) = fields.next_element().map_err(malformed(at, "CuePoint"))? {
            match f.id {
                id::CUE_TIME => time = ebml::read_uint(value).ok(),
                id::CUE_TRACK_POSITIONS => {
                    let mut inner = ebml::Reader::new(value);
                    while let Some((g, v)) = inner
                        .next_element()
                        .map_err(malformed(at, "CueTrackPositions"))?
                    {
                        if g.id == id::CUE_CLUSTER_POSITION {
                            position = ebml::read_uint(v).ok();
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(t), Some(rel)) = (time, position) {
            let (Ok(t), Some(pos)) = (i64::try_from(t), segment.checked_add(rel)) else {
                return Ok(None);
            };
            out.push((t, pos));
        }
    }
    out.sort_unstable();
    out.dedup_by_key(|&mut (_, pos)| pos);
    Ok((!out.is_empty()).then_some(out))
}

/// Every cluster from `first` on, with its timestamp: one read per cluster whose size is
/// known (all but a live file's last), the children of one that is not.
fn walk_clusters<R: Read + Seek>(
    src: &mut Source<'_, R>,
    first: u64,
    limit: u64,
) -> Result<Vec<(i64, u64)>, ReadError> {
    let mut out = Vec::new();
    let mut buf = [0; PROBE_LEN];
    let mut pos = first;
    while pos < limit {
        let h = match src.probe(pos, &mut buf)?.0 {
            Probe::Element(h) if h.id == id::CLUSTER => h,
            _ => break,
        };
        let data_start = pos + h.len as u64;
        // The cluster's Timestamp is its first child (as every muxer writes it).
        let (probe, n) = src.probe(data_start, &mut buf)?;
        if let Probe::Element(c) = probe {
            if c.id == id::TIMESTAMP {
                let body_end = n.min(c.len.saturating_add(c.size.unwrap_or(0) as usize));
                let t = ebml::read_uint(&buf[c.len.min(body_end)..body_end])
                    .ok()
                    .and_then(|t| i64::try_from(t).ok());
                if let Some(t) = t {
                    out.push((t, pos));
                }
            }
        }
        match h.size.and_then(|s| data_start.checked_add(s)) {
            Some(end) if end <= limit => pos = end,
            // Unknown size (the live cluster, or one whose size patch was lost): its end
            // is the next top-level element.
            _ => {
                let mut p = data_start;
                loop {
                    let Probe::Element(c) = src.probe(p, &mut buf)?.0 else {
                        return Ok(out);
                    };
                    if !is_cluster_child(c.id) {
                        break;
                    }
                    match c.size.and_then(|s| (p + c.len as u64).checked_add(s)) {
                        Some(end) if end <= limit => p = end,
                        _ => return Ok(out),
                    }
                }
                pos = p;
            }
        }
    }
    Ok(out)
}
