//! The synthetic camera: a deterministic moving test pattern, JPEG-encoded with
//! libjpeg-turbo, at any size and rate.
//!
//! It is how a newcomer tries hindsight on a machine without a camera, and how every test
//! and benchmark runs: each frame carries its frame number both as digits and as a bar
//! code ([`decode_frame_number`]), so a test can decode any frame of a recording and
//! know exactly which frame it is, and so whether anything was lost, repeated or
//! reordered on the way to the file.
//!
//! The picture is drawn straight into YUV 4:2:0 planes (see `pattern`) and compressed
//! from them into a buffer sized once for the worst case, so steady state makes no Rust
//! heap allocation per frame. libjpeg-turbo allocates its own per-image working memory
//! with `malloc` inside `tj3CompressFromYUV8`; that is out of our control.
//!
//! For benchmarks, [`SyntheticConfig::pool`] precomputes a few frames and cycles through
//! them, so throughput is not limited by the encoder.

mod pattern;

use std::sync::Arc;

use turbojpeg::{Compressor, Subsamp};

use crate::clock::{Clocks, LslTime};
use crate::frame::FrameMeta;
use crate::source::{FrameSource, SourceError, SourceInfo};

pub use pattern::{
    decode_frame_number, size_supported, FRAME_NUMBER_BITS, MAX_HEIGHT, MAX_WIDTH, MIN_HEIGHT,
    MIN_WIDTH,
};

/// The environment variable that makes `source: synthetic` cameras encode this many
/// frames at start-up and cycle through them ([`SyntheticConfig::pool`]): for `hindsight
/// bench --process`, which measures the recorder without the encoder.
pub const POOL_VARIABLE: &str = "HINDSIGHT_BENCH_SYNTHETIC_POOL";

/// Slowest rate: one frame every 1000 s. The schedule counts in micro-hertz.
pub const MIN_FPS: f64 = 0.001;
/// Fastest rate; the fastest real camera mode is 536 fps.
pub const MAX_FPS: f64 = 10_000.0;

/// How the source spaces its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Like a camera: frame n is due at `t0 + n·period` on the given clocks, and the
    /// source sleeps until then. `t0` is the moment of the first `next_frame` call.
    RealTime,
    /// As fast as the caller asks (benchmarks): no sleeping, capture time = clock now.
    Unpaced,
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Frame size in pixels: `MIN_WIDTH..=MAX_WIDTH` by `MIN_HEIGHT..=MAX_HEIGHT`.
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate, `MIN_FPS..=MAX_FPS`; used for pacing and reported in the info.
    pub fps: f64,
    /// JPEG quality, 1..=100 (chroma is always subsampled 4:2:0, like most cameras).
    pub quality: u8,
    pub pacing: Pacing,
    /// `Some(k)`: encode frames 0..k once at construction and send frame n as picture
    /// n % k (its sequence number still counts n). Memory: k encoded frames.
    pub pool: Option<usize>,
}

/// Why a synthetic source could not be made or could not encode.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error(
        "synthetic frame size {width}x{height} is not supported: width must be \
         {MIN_WIDTH} to {MAX_WIDTH} and height {MIN_HEIGHT} to {MAX_HEIGHT} pixels"
    )]
    BadSize { width: u32, height: u32 },
    #[error(
        "synthetic frame rate {0} fps is not supported: it must be from {MIN_FPS} to {MAX_FPS}"
    )]
    BadFps(f64),
    #[error("JPEG quality {0} is out of range: it must be from 1 to 100")]
    BadQuality(u8),
    #[error("a frame pool of 0 frames cannot be cycled: give at least 1 or no pool")]
    EmptyPool,
    #[error("JPEG encoder failed: {0}")]
    Encoder(#[from] turbojpeg::Error),
}

/// Draws and encodes test-pattern frames of one size and quality. Reuses its planes and
/// output buffer, so encoding allocates nothing on the Rust heap. Public so that tests
/// can make the exact frames a synthetic source would send.
pub struct PatternEncoder {
    canvas: pattern::Canvas,
    compressor: Compressor,
    /// `buf_len` bytes: libjpeg-turbo's worst case for this size, so it never needs to
    /// reallocate (it is told not to: the slice is borrowed).
    out: Vec<u8>,
}

impl PatternEncoder {
    pub fn new(width: u32, height: u32, quality: u8) -> Result<Self, SyntheticError> {
        if !size_supported(width, height) {
            return Err(SyntheticError::BadSize { width, height });
        }
        if !(1..=100).contains(&quality) {
            return Err(SyntheticError::BadQuality(quality));
        }
        let (w, h) = (width as usize, height as usize);
        let mut compressor = Compressor::new()?;
        compressor.set_quality(i32::from(quality))?;
        // Before buf_len: the worst-case size depends on the subsampling.
        compressor.set_subsamp(Subsamp::Sub2x2)?;
        let out = vec![0; compressor.buf_len(w, h)?];
        Ok(PatternEncoder {
            canvas: pattern::Canvas::new(w, h),
            compressor,
            out,
        })
    }

    /// Frame `n` as a JPEG (valid until the next call). The picture shows `n` modulo
    /// 2^[`FRAME_NUMBER_BITS`].
    pub fn encode(&mut self, n: u64) -> Result<&[u8], SyntheticError> {
        self.canvas.draw(n);
        let len = self
            .compressor
            .compress_yuv_to_slice(self.canvas.image(), &mut self.out)?;
        Ok(&self.out[..len])
    }
}

/// The synthetic camera. See the module documentation.
pub struct SyntheticSource {
    info: SourceInfo,
    clocks: Arc<dyn Clocks>,
    pacing: Pacing,
    /// The frame rate rounded to the micro-hertz, so that slot times are exact integer
    /// arithmetic.
    fps_micro: u64,
    /// Slot 0's due time: set by the first `next_frame` call (RealTime only).
    t0: Option<LslTime>,
    /// The sequence number (= slot) of the next frame, unless slots are skipped.
    next_seq: u64,
    frames: Frames,
}

enum Frames {
    Live(PatternEncoder),
    Pool(Vec<Vec<u8>>),
}

impl SyntheticSource {
    pub fn new(cfg: SyntheticConfig, clocks: Arc<dyn Clocks>) -> Result<Self, SyntheticError> {
        // `contains` is false for NaN too.
        if !(MIN_FPS..=MAX_FPS).contains(&cfg.fps) {
            return Err(SyntheticError::BadFps(cfg.fps));
        }
        let mut encoder = PatternEncoder::new(cfg.width, cfg.height, cfg.quality)?;
        let frames = match cfg.pool {
            None => Frames::Live(encoder),
            Some(0) => return Err(SyntheticError::EmptyPool),
            Some(len) => Frames::Pool(
                (0..len as u64)
                    .map(|n| encoder.encode(n).map(<[u8]>::to_vec))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(SyntheticSource {
            info: SourceInfo {
                kind: crate::config::SourceKind::Synthetic,
                model: "synthetic test pattern".to_string(),
                width: cfg.width,
                height: cfg.height,
                fps: cfg.fps,
                codec: crate::config::Codec::Mjpg,
                encodes: matches!(frames, Frames::Live(_)),
                controls: String::new(),
                controls_off: None,
            },
            clocks,
            pacing: cfg.pacing,
            fps_micro: (cfg.fps * 1e6).round() as u64,
            t0: None,
            next_seq: 0,
            frames,
        })
    }

    /// Nanoseconds from slot 0 to slot `n`: `round(n · 10^15 / fps_µHz)`, computed per
    /// slot from integers, so rounding never accumulates over a long run.
    fn slot_offset(&self, n: u64) -> i64 {
        let nanos = (u128::from(n) * 1_000_000_000_000_000 + u128::from(self.fps_micro / 2))
            / u128::from(self.fps_micro);
        i64::try_from(nanos).unwrap_or(i64::MAX)
    }

    /// The last slot due at or before `elapsed` ns after slot 0 (`elapsed` >= 0).
    fn last_slot_due(&self, elapsed: i64) -> u64 {
        let elapsed = elapsed.max(0);
        // The estimate is within one slot of the answer (rounding); settle it exactly.
        let mut n = (elapsed as u128 * u128::from(self.fps_micro) / 1_000_000_000_000_000)
            .min(u128::from(u64::MAX - 1)) as u64;
        while n > 0 && self.slot_offset(n) > elapsed {
            n -= 1;
        }
        while self.slot_offset(n + 1) <= elapsed {
            n += 1;
        }
        n
    }
}

/// Frames a late caller can still get: a V4L2 driver typically queues 4 buffers, so a
/// capture thread held up for a few frame periods loses nothing, and one held up longer
/// loses the oldest.
pub const QUEUE_DEPTH: u64 = 4;

impl FrameSource for SyntheticSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// RealTime: waits for the next slot, then draws and encodes. The capture time is the
    /// slot's due instant, not the moment this thread woke: a real camera's exposures are
    /// crystal-timed, and the scheduler's wake-up delay is delivery jitter, not exposure
    /// jitter. A late caller gets the frames it missed, back to back, as a camera driver
    /// hands over the [`QUEUE_DEPTH`] frames its buffer queue holds; slots older than that
    /// are skipped and the sequence number jumps over them, exactly as a camera that
    /// dropped frames: the caller sees the loss as the gap in `seq`.
    ///
    /// Unpaced: returns at once; the capture time is the clock read at the call.
    fn next_frame_ref<'a>(
        &'a mut self,
        _scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError> {
        let now = self.clocks.now();
        let (seq, capture) = match self.pacing {
            Pacing::Unpaced => (self.next_seq, now.lsl),
            Pacing::RealTime => {
                let t0 = *self.t0.get_or_insert(now.lsl);
                let latest = self.last_slot_due(now.lsl.nanos_since(t0));
                let seq = self.next_seq.max(latest.saturating_sub(QUEUE_DEPTH - 1));
                let due = LslTime::from_nanos(t0.as_nanos().saturating_add(self.slot_offset(seq)));
                self.clocks.sleep_until(due);
                (seq, due)
            }
        };
        let bytes = match &mut self.frames {
            Frames::Live(encoder) => encoder
                .encode(seq)
                .map_err(|e| SourceError::Lost(format!("synthetic source: {e}")))?,
            Frames::Pool(pool) => &pool[(seq % pool.len() as u64) as usize],
        };
        self.next_seq = seq + 1;
        let meta = FrameMeta {
            seq,
            capture,
            // One pairing of the two clocks per frame; valid for any instant near it.
            wall: now.wall_at(capture),
            width: self.info.width as u16,
            height: self.info.height as u16,
            keyframe: true,
        };
        Ok((meta, bytes))
    }
}

#[cfg(test)]
mod tests;
