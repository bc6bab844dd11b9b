//! Where each audio sample sits on the LSL clock.
//!
//! Audio arrives in chunks of a period. For each, the input side estimates the capture time
//! of its first sample: the LSL clock read when the chunk was found there minus what the
//! driver says was still buffered (ALSA's delay, as cpal's `callback - capture` was). The
//! samples themselves are evenly spaced at the device's rate, so each chunk gives an
//! estimate of one number, the offset
//! `estimate - k / rate` of sample `k`, and the estimates differ only by their errors:
//!
//! - a chunk taken late makes its estimate late (never early);
//! - a driver's report of what is buffered is coarse. Through PulseAudio's ALSA plugin
//!   (the tests' device, and what a Raspberry Pi's default device goes through) the
//!   reports fall on two levels 8.3 ms apart (about half the chunks on each), and the
//!   first few chunks of each 2 s burst report up to 8 ms more, an excess that shrinks
//!   burst by burst and comes back every half minute or so: a minority of early
//!   estimates.
//!
//! So the mapping takes the lower quartile of the offsets over the last few seconds, not
//! their minimum: a quarter of the chunks on time is enough to ignore the late ones, and
//! early ones that are fewer than a quarter cannot move it. (The minimum followed the
//! burst starts' excess up and down: the markers wandered by 8 ms within 40 s.) The window
//! follows the slow drift between the device's clock and CLOCK_MONOTONIC (typically tens
//! of ppm: well under a millisecond over the window). A chunk whose driver reported less
//! than the chunk itself as buffered (PulseAudio's first burst reports nothing, so all its
//! chunks say "now") only bounds its offset from above; such bounds define the mapping,
//! by their minimum, only while no reported estimate is in the window.

use std::collections::VecDeque;

use crate::clock::LslTime;

/// How long an estimate keeps counting.
const WINDOW_SAMPLES_SECONDS: u64 = 5;

#[derive(Debug)]
pub struct Timeline {
    rate: u32,
    /// (sample index, offset ns = estimate − index/rate, reported), increasing index.
    window: VecDeque<(u64, i64, bool)>,
    /// The offsets of the reported estimates in the window, sorted.
    reported: Vec<i64>,
    /// The offsets of the unreported ones (upper bounds), sorted.
    bounds: Vec<i64>,
}

impl Timeline {
    pub fn new(rate: u32) -> Timeline {
        Timeline {
            rate,
            window: VecDeque::with_capacity(1024),
            reported: Vec::with_capacity(1024),
            bounds: Vec::new(),
        }
    }

    fn ns_of(&self, samples: u64) -> i64 {
        (samples as i128 * 1_000_000_000 / self.rate as i128) as i64
    }

    /// A chunk whose first sample, index `first`, was captured at about `estimate`
    /// (`reported`: from the driver's report of what was buffered; otherwise a bound).
    pub fn observe(&mut self, first: u64, estimate: LslTime, reported: bool) {
        let offset = estimate.as_nanos() - self.ns_of(first);
        let horizon = first.saturating_sub(WINDOW_SAMPLES_SECONDS * self.rate as u64);
        while let Some(&(i, old, was_reported)) = self.window.front() {
            if i >= horizon {
                break;
            }
            self.window.pop_front();
            let sorted = if was_reported {
                &mut self.reported
            } else {
                &mut self.bounds
            };
            if let Ok(at) = sorted.binary_search(&old) {
                sorted.remove(at);
            }
        }
        self.window.push_back((first, offset, reported));
        let sorted = if reported {
            &mut self.reported
        } else {
            &mut self.bounds
        };
        let at = sorted.partition_point(|&o| o < offset);
        sorted.insert(at, offset);
    }

    /// The offset the mapping uses: the lower quartile of the reported estimates, or the
    /// least of the bounds while there are none.
    fn offset(&self) -> Option<i64> {
        match self.reported.len() {
            0 => self.bounds.first().copied(),
            n => Some(self.reported[(n - 1) / 4]),
        }
    }

    /// The time of sample `index`, if any chunk has been observed.
    pub fn time_of(&self, index: u64) -> Option<LslTime> {
        let offset = self.offset()?;
        Some(LslTime::from_nanos(offset + self.ns_of(index)))
    }

    /// The index of the first sample captured at or after `t` (may be beyond what exists).
    pub fn index_at(&self, t: LslTime) -> Option<u64> {
        let offset = self.offset()?;
        let ns = t.as_nanos() - offset;
        if ns <= 0 {
            return Some(0);
        }
        // Ceiling: the first sample not before `t`.
        Some(((ns as i128 * self.rate as i128 + 999_999_999) / 1_000_000_000) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_000_000_000_000;

    fn true_ns(sample: u64, rate: u32) -> i64 {
        T0 + (sample as i128 * 1_000_000_000 / i128::from(rate)) as i64
    }

    #[test]
    fn late_callbacks_leave_the_lower_quartile() {
        let mut t = Timeline::new(48_000);
        // 480-sample chunks; arrival delays of 0.1 to 2 ms.
        let delays_us = [300, 800, 2000, 100, 700, 1500, 900, 400, 1200];
        for (n, d) in delays_us.iter().enumerate() {
            let first = n as u64 * 480;
            t.observe(
                first,
                LslTime::from_nanos(true_ns(first, 48_000) + d * 1000),
                true,
            );
        }
        // Sorted: 100, 300, 400, 700, ... 2000, the third of nine the lower quartile:
        // sample 48000 (1 s in) is mapped 0.4 ms late.
        let got = t.time_of(48_000).unwrap().as_nanos();
        assert_eq!(got - true_ns(48_000, 48_000), 400_000);
        assert_eq!(
            t.index_at(LslTime::from_nanos(T0 + 400_000 + 10_000_000)),
            Some(480)
        );
        assert_eq!(
            t.index_at(LslTime::from_nanos(T0 + 400_000 + 10_000_001)),
            Some(481)
        );
    }

    /// PulseAudio's plugin as the tests' device shows it: 2 s bursts of 800-sample chunks
    /// whose reports sit on two levels 8.3 ms apart (runs of 20 chunks), the first few of
    /// each burst reporting up to 8 ms more (early estimates), an excess that shrinks by
    /// 0.5 ms a burst and comes back. The mapping stays on the lower level throughout; the
    /// minimum of the window followed the excess and moved by 8 ms.
    #[test]
    fn a_minority_of_early_reports_does_not_move_the_mapping() {
        let rate = 48_000;
        let chunk = 800;
        let mut t = Timeline::new(rate);
        let mut mapped = Vec::new();
        for burst in 0..20u64 {
            let excess = 8_000_000 - (burst % 16) as i64 * 500_000;
            let early_chunks = 12 - (burst % 16) * 2 / 3;
            for c in 0..120u64 {
                let first = (burst * 120 + c) * chunk;
                let level = if (c / 20) % 2 == 0 { 0 } else { 8_333_333 };
                let error = if c < early_chunks { -excess } else { level };
                t.observe(
                    first,
                    LslTime::from_nanos(true_ns(first, rate) + error),
                    true,
                );
            }
            let end = (burst + 1) * 120 * chunk;
            mapped.push(t.time_of(end).unwrap().as_nanos() - true_ns(end, rate));
        }
        assert!(
            mapped.iter().all(|&e| e == 0),
            "mapped off by (ns, per burst) {mapped:?}"
        );
    }

    /// A burst that reported nothing as buffered ("now" for every chunk) bounds the
    /// mapping until a reported chunk comes; then the reported ones decide it, even
    /// where a bound is lower.
    #[test]
    fn bounds_count_only_while_nothing_is_reported() {
        let rate = 1000;
        let mut t = Timeline::new(rate);
        // 1 s of 100-sample chunks arriving at once, at 1.0 s: the last is the best bound.
        for k in 0..10u64 {
            t.observe(k * 100, LslTime::from_nanos(true_ns(1000, rate)), false);
        }
        assert_eq!(
            t.time_of(0).unwrap().as_nanos() - true_ns(0, rate),
            100_000_000,
            "the least bound: the last chunk's"
        );
        // A bound below the truth (a driver that prefills) and a reported chunk 2 ms late.
        t.observe(
            1000,
            LslTime::from_nanos(true_ns(1000, rate) - 5_000_000),
            false,
        );
        t.observe(
            1100,
            LslTime::from_nanos(true_ns(1100, rate) + 2_000_000),
            true,
        );
        assert_eq!(
            t.time_of(0).unwrap().as_nanos() - true_ns(0, rate),
            2_000_000
        );
    }

    #[test]
    fn old_estimates_leave_the_window() {
        let mut t = Timeline::new(1000);
        // An early, very good estimate; 10 s later every estimate is 5 ms late (the device
        // clock drifted).
        t.observe(0, LslTime::from_nanos(0), true);
        for k in 1..=10 {
            t.observe(
                k * 1000,
                LslTime::from_nanos(k as i64 * 1_000_000_000 + 5_000_000),
                true,
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
