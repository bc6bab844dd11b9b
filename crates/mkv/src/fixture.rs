//! A recording made in memory with the muxer, as a writer leaves it on disk while live
//! (every cluster sized but the last) and what a clean finish appends and patches.
//!
//! The unit tests of [`crate::read`] and the integration tests that judge files with
//! ffprobe, mkvmerge and other demuxers both cut, damage and repair such recordings:
//! this is the one place that makes them.

use crate::mux::{FinishSummary, MkvMuxer, MuxerConfig, Patch};

/// One block as the muxer wrote it.
#[derive(Clone, Debug)]
pub struct Block {
    pub track: u64,
    /// Absolute offset just past the block.
    pub end: u64,
    /// Timestamp in the file's units, as returned by the muxer.
    pub ts: i64,
    pub data: Vec<u8>,
}

/// A recording: the live file, its blocks, and what a clean finish adds.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The live file: every cluster sized except the last.
    pub live: Vec<u8>,
    /// The cluster size patches that made it so (already applied to `live`).
    pub live_patches: Vec<Patch>,
    /// Bytes before the first cluster.
    pub header_len: u64,
    /// Every block, in file order.
    pub blocks: Vec<Block>,
    /// What `finish` appends.
    pub tail: Vec<u8>,
    /// What `finish` patches.
    pub finish_patches: Vec<Patch>,
    pub summary: FinishSummary,
}

impl Recording {
    /// The cleanly finished file.
    pub fn finished(&self) -> Vec<u8> {
        let mut file = self.live.clone();
        file.extend_from_slice(&self.tail);
        Patch::apply_all(&mut file, &self.finish_patches);
        file
    }

    /// The blocks of one track, in order.
    pub fn track(&self, track: u64) -> impl Iterator<Item = &Block> {
        self.blocks.iter().filter(move |b| b.track == track)
    }

    /// Blocks of `track` complete in the first `len` bytes.
    pub fn complete(&self, track: u64, len: u64) -> usize {
        self.track(track).filter(|b| b.end <= len).count()
    }
}

/// Writes `blocks` (track, time in ns, payload; every block a keyframe) with a muxer
/// made from `config`, adds `chapters` (time in ns, title) and finishes.
///
/// # Panics
/// If the muxer refuses a block (the caller's test data is wrong) or the patches do not
/// land inside the live file.
pub fn record(
    config: MuxerConfig,
    blocks: impl IntoIterator<Item = (u64, i64, Vec<u8>)>,
    chapters: &[(i64, &str)],
) -> Recording {
    let mut mux = MkvMuxer::new(config);
    let mut live = Vec::new();
    mux.header(&mut live);
    let header_len = live.len() as u64;
    let mut written = Vec::new();
    let mut live_patches = Vec::new();
    for (track, t, data) in blocks {
        let ts = mux
            .write_block(track, t, true, &data, &mut live, &mut live_patches)
            .expect("the muxer takes the fixture's block");
        written.push(Block {
            track,
            end: mux.position(),
            ts,
            data,
        });
    }
    Patch::apply_all(&mut live, &live_patches);
    assert_eq!(live.len() as u64, mux.position());
    for &(t, title) in chapters {
        mux.add_chapter(t, title);
    }
    let (mut tail, mut finish_patches) = (Vec::new(), Vec::new());
    let summary = mux
        .finish(&mut tail, &mut finish_patches)
        .expect("the fixture's recording finishes");
    Recording {
        live,
        live_patches,
        header_len,
        blocks: written,
        tail,
        finish_patches,
        summary,
    }
}
