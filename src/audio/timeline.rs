//! Where each audio sample sits on the LSL clock.
//!
//! Audio arrives in callback chunks. For each, the input side estimates the capture time of
//! its first sample: the LSL clock read in the callback minus what the driver says was
//! still buffered (cpal's `callback - capture`). Such an estimate is never early and often
//! late (the callback may run late), while the samples themselves are evenly spaced at the
//! device's rate. So the offset of sample `k` is taken as the smallest
//! `estimate - k / rate` over the last few seconds: the least delayed callback defines
//! the mapping, and the window follows the slow drift between the device's clock and
//! CLOCK_MONOTONIC (typically tens of ppm: well under a millisecond over the window).

use std::collections::VecDeque;

use crate::clock::LslTime;

/// How long an estimate keeps counting towards the minimum.
const WINDOW_SAMPLES_SECONDS: u64 = 5;

#[derive(Debug)]
pub struct Timeline {
    rate: u32,
    /// (sample index, offset ns = estimate − index/rate), increasing index.
    estimates: VecDeque<(u64, i64)>,
}

impl Timeline {
    pub fn new(rate: u32) -> Timeline {
        Timeline {
            rate,
            estimates: VecDeque::with_capacity(1024),
        }
    }

    fn ns_of(&self, samples: u64) -> i64 {
        (samples as i128 * 1_000_000_000 / self.rate as i128) as i64
    }

    /// A chunk whose first sample, index `first`, was captured at about `estimate`.
    pub fn observe(&mut self, first: u64, estimate: LslTime) {
        let offset = estimate.as_nanos() - self.ns_of(first);
        let horizon = first.saturating_sub(WINDOW_SAMPLES_SECONDS * self.rate as u64);
        while self.estimates.front().is_some_and(|&(i, _)| i < horizon) {
            self.estimates.pop_front();
        }
        // Keep the deque increasing in offset from the back (a monotone queue): an older
        // estimate with a larger offset can never be the minimum again.
        while self.estimates.back().is_some_and(|&(_, o)| o >= offset) {
            self.estimates.pop_back();
        }
        self.estimates.push_back((first, offset));
    }

    /// The time of sample `index`, if any chunk has been observed.
    pub fn time_of(&self, index: u64) -> Option<LslTime> {
        let &(_, offset) = self.estimates.front()?;
        Some(LslTime::from_nanos(offset + self.ns_of(index)))
    }

    /// The index of the first sample captured at or after `t` (may be beyond what exists).
    pub fn index_at(&self, t: LslTime) -> Option<u64> {
        let &(_, offset) = self.estimates.front()?;
        let ns = t.as_nanos() - offset;
        if ns <= 0 {
            return Some(0);
        }
        // Ceiling: the first sample not before `t`.
        Some(((ns as i128 * self.rate as i128 + 999_999_999) / 1_000_000_000) as u64)
    }

    pub fn forget(&mut self) {
        self.estimates.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_delayed_chunk_defines_the_mapping() {
        let mut t = Timeline::new(48_000);
        let t0 = 1_000_000_000_000i64;
        // 480-sample chunks; arrival delays of 0.3 to 2 ms, one of them 0.1 ms.
        let delays_us = [300, 800, 2000, 100, 700, 1500, 900, 400];
        for (n, d) in delays_us.iter().enumerate() {
            let first = n as u64 * 480;
            let true_ns = t0 + (first as i64 * 1_000_000_000 / 48_000);
            t.observe(first, LslTime::from_nanos(true_ns + d * 1000));
        }
        // Sample 48000 (1 s in) is mapped 0.1 ms late: the best estimate seen.
        let got = t.time_of(48_000).unwrap().as_nanos();
        assert_eq!(got - (t0 + 1_000_000_000), 100_000);
        assert_eq!(
            t.index_at(LslTime::from_nanos(t0 + 100_000 + 10_000_000)),
            Some(480)
        );
        assert_eq!(
            t.index_at(LslTime::from_nanos(t0 + 100_000 + 10_000_001)),
            Some(481)
        );
    }

    #[test]
    fn old_estimates_leave_the_window() {
        let mut t = Timeline::new(1000);
        t.observe(0, LslTime::from_nanos(0)); // an early, very good estimate
                                              // 10 s later every estimate is 5 ms late (the device clock drifted).
        for k in 1..=10 {
            t.observe(
                k * 1000,
                LslTime::from_nanos(k as i64 * 1_000_000_000 + 5_000_000),
            );
        }
        assert_eq!(t.time_of(10_000).unwrap().as_nanos(), 10_005_000_000);
    }

    #[test]
    fn nothing_is_known_before_the_first_chunk() {
        let t = Timeline::new(48_000);
        assert_eq!(t.time_of(0), None);
        assert_eq!(t.index_at(LslTime::from_nanos(5)), None);
    }
}
