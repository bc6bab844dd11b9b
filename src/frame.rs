//! The frame model: what every source yields and every later stage reads.

pub mod exif;

use bytes::Bytes;

use crate::clock::{LslTime, WallTime};

/// The files' time unit (Matroska TimestampScale): 100 µs (`design/time.md`). Two frames'
/// capture times are never closer than this, or the file could not tell them apart.
pub const TIMESTAMP_UNIT_NS: u64 = 100_000;

/// Everything known about one captured frame except its bytes. Small and `Copy`: it is
/// sent to the LSL and status threads by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// The source's frame counter. Consecutive frames differ by 1; a larger step means the
    /// source (camera or driver) lost frames in between.
    pub seq: u64,
    /// When the frame was captured (start of exposure where the source knows it; see
    /// `design/time.md`), on the LSL clock.
    pub capture: LslTime,
    /// The wall-clock time of the same instant.
    pub wall: WallTime,
    pub width: u16,
    pub height: u16,
    /// Every MJPEG frame is a keyframe; kept so that other codecs fit the same model.
    pub keyframe: bool,
}

/// A frame with its JPEG bytes. The payload is reference-counted and lives in the
/// pre-trigger ring's preallocated storage: the ring and the writer share it, nothing copies it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub meta: FrameMeta,
    pub data: Bytes,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC section 10: ring memory = JPEG bytes + at most 64 B per frame.
    #[test]
    fn a_ring_slot_costs_at_most_64_bytes_beyond_the_jpeg() {
        assert!(
            std::mem::size_of::<Frame>() <= 64,
            "Frame is {} bytes",
            std::mem::size_of::<Frame>()
        );
    }
}
