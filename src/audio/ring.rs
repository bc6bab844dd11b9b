//! The audio pre-trigger buffer: the last seconds of interleaved samples, each frame (one
//! sample per channel) known by its absolute index since capture started. Allocated and
//! touched up front; appending is a copy, nothing is allocated afterwards.

use std::collections::VecDeque;

/// How many spans of put-in silence the ring keeps apart; past that its oldest two are
/// counted as one (the frames between them then count as silence too).
const SILENT_SPANS: usize = 64;

#[derive(Debug)]
pub struct AudioRing {
    channels: usize,
    /// Interleaved samples; frame `i` lives at `(i % frames_capacity) * channels`.
    data: Vec<f32>,
    frames_capacity: u64,
    /// Index of the next frame to be appended.
    end: u64,
    /// The frames `[a, b)` that are silence put in for audio that did not come
    /// ([`AudioRing::push_silence`]), oldest first, while the ring may hold them.
    silent: VecDeque<(u64, u64)>,
}

impl AudioRing {
    pub fn new(channels: u16, frames_capacity: u64) -> AudioRing {
        let channels = channels.max(1) as usize;
        let frames_capacity = frames_capacity.max(1);
        AudioRing {
            channels,
            // A non-zero fill writes (touches) every page now.
            // The configuration keeps a 32-bit build's buffer within its reach.
            data: vec![
                f32::MIN_POSITIVE;
                usize::try_from(frames_capacity)
                    .ok()
                    .and_then(|f| f.checked_mul(channels))
                    .expect("an audio buffer this build can address")
            ],
            frames_capacity,
            end: 0,
            silent: VecDeque::with_capacity(SILENT_SPANS),
        }
    }

    /// Index one past the newest frame.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Index of the oldest frame still held.
    pub fn start(&self) -> u64 {
        self.end.saturating_sub(self.frames_capacity)
    }

    /// Appends whole frames of interleaved samples.
    pub fn push(&mut self, samples: &[f32]) {
        debug_assert_eq!(samples.len() % self.channels, 0);
        for frame in samples.chunks_exact(self.channels) {
            let at = (self.end % self.frames_capacity) as usize * self.channels;
            self.data[at..at + self.channels].copy_from_slice(frame);
            self.end += 1;
        }
    }

    /// Appends `frames` frames of silence (a gap the device did not deliver).
    pub fn push_silence(&mut self, frames: u64) {
        if frames == 0 {
            return;
        }
        let from = self.end;
        // What the ring will hold from, once these are in.
        let start = (from + frames).saturating_sub(self.frames_capacity);
        while self.silent.front().is_some_and(|&(_, b)| b <= start) {
            self.silent.pop_front();
        }
        match self.silent.back_mut() {
            Some(last) if last.1 == from => last.1 = from + frames,
            _ => {
                if self.silent.len() == SILENT_SPANS {
                    let (a, _) = self.silent.pop_front().expect("full");
                    self.silent.front_mut().expect("more than one").0 = a;
                }
                self.silent.push_back((from, from + frames));
            }
        }
        // More silence than the ring holds: only the last ring-full matters.
        let skip = frames.saturating_sub(self.frames_capacity);
        self.end += skip;
        for _ in skip..frames {
            let at = (self.end % self.frames_capacity) as usize * self.channels;
            self.data[at..at + self.channels].fill(0.0);
            self.end += 1;
        }
    }

    /// How many of the frames `[from, to)` are silence put in by [`AudioRing::push_silence`].
    pub fn silence_within(&self, from: u64, to: u64) -> u64 {
        self.silent
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum()
    }

    /// Calls `f` with the held samples of frames `[from, to)` (clamped to what is held),
    /// in at most two contiguous slices.
    pub fn read(&self, from: u64, to: u64, mut f: impl FnMut(&[f32])) {
        let from = from.max(self.start());
        let to = to.min(self.end);
        if from >= to {
            return;
        }
        let a = (from % self.frames_capacity) as usize;
        let b = (to % self.frames_capacity) as usize;
        let c = self.channels;
        if a < b || b == 0 {
            let end = if b == 0 {
                self.frames_capacity as usize
            } else {
                b
            };
            f(&self.data[a * c..end * c]);
        } else {
            f(&self.data[a * c..]);
            f(&self.data[..b * c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(r: &AudioRing, from: u64, to: u64) -> Vec<f32> {
        let mut v = Vec::new();
        r.read(from, to, |s| v.extend_from_slice(s));
        v
    }

    #[test]
    fn keeps_the_newest_frames_by_absolute_index() {
        let mut r = AudioRing::new(2, 4);
        let samples: Vec<f32> = (0..20).map(|i| i as f32).collect(); // 10 stereo frames
        r.push(&samples[..6]);
        r.push(&samples[6..]);
        assert_eq!((r.start(), r.end()), (6, 10));
        assert_eq!(
            collect(&r, 0, 100),
            (12..20).map(|i| i as f32).collect::<Vec<_>>()
        );
        assert_eq!(collect(&r, 7, 9), vec![14.0, 15.0, 16.0, 17.0]);
        assert!(collect(&r, 10, 12).is_empty());
    }

    #[test]
    fn silence_fills_gaps() {
        let mut r = AudioRing::new(1, 8);
        r.push(&[1.0, 2.0]);
        r.push_silence(3);
        r.push(&[3.0]);
        assert_eq!(collect(&r, 0, 6), vec![1.0, 2.0, 0.0, 0.0, 0.0, 3.0]);
        r.push_silence(100);
        assert_eq!(r.end(), 106);
        assert_eq!(collect(&r, 0, 200), vec![0.0; 8]);
    }

    #[test]
    fn put_in_silence_is_known_by_its_frames() {
        let mut r = AudioRing::new(1, 8);
        r.push(&[1.0, 2.0]);
        r.push_silence(3);
        r.push(&[3.0]);
        assert_eq!(r.silence_within(0, 6), 3);
        assert_eq!(r.silence_within(3, 4), 1);
        assert_eq!(r.silence_within(0, 2), 0);
        assert_eq!(r.silence_within(5, 6), 0);
        // Back to back: one span.
        r.push_silence(2);
        r.push_silence(1);
        assert_eq!(r.silence_within(6, 9), 3);
        assert_eq!(r.silent.len(), 2);
        // Spans the ring no longer holds are let go.
        r.push(&[4.0; 20]);
        r.push_silence(1);
        assert_eq!(r.silent.len(), 1);
        assert_eq!(r.silence_within(0, 100), 1);
        // Never more spans than it keeps apart: the oldest merge, and nothing is lost.
        let mut r = AudioRing::new(1, 10_000);
        for _ in 0..SILENT_SPANS + 5 {
            r.push(&[1.0]);
            r.push_silence(2);
        }
        assert_eq!(r.silent.len(), SILENT_SPANS);
        assert!(r.silent.capacity() <= SILENT_SPANS.next_power_of_two());
        assert!(r.silence_within(0, r.end()) >= 2 * (SILENT_SPANS as u64 + 5));
    }
}
