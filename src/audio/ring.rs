//! The audio pre-trigger buffer: the last seconds of interleaved samples, each frame (one
//! sample per channel) known by its absolute index since capture started. Allocated and
//! touched up front; appending is a copy, nothing is allocated afterwards.

#[derive(Debug)]
pub struct AudioRing {
    channels: usize,
    /// Interleaved samples; frame `i` lives at `(i % frames_capacity) * channels`.
    data: Vec<f32>,
    frames_capacity: u64,
    /// Index of the next frame to be appended.
    end: u64,
}

impl AudioRing {
    pub fn new(channels: u16, frames_capacity: u64) -> AudioRing {
        let channels = channels.max(1) as usize;
        let frames_capacity = frames_capacity.max(1);
        AudioRing {
            channels,
            // A non-zero fill writes (touches) every page now.
            data: vec![f32::MIN_POSITIVE; frames_capacity as usize * channels],
            frames_capacity,
            end: 0,
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
        // More silence than the ring holds: only the last ring-full matters.
        let skip = frames.saturating_sub(self.frames_capacity);
        self.end += skip;
        for _ in skip..frames {
            let at = (self.end % self.frames_capacity) as usize * self.channels;
            self.data[at..at + self.channels].fill(0.0);
            self.end += 1;
        }
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
}
