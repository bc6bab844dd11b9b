//! LSL chunk markers, stamped once later audio has confirmed where their chunks sit.
//!
//! A marker carries the LSL time of its chunk's first sample, from the [`Timeline`]. The
//! timeline's answer for a chunk gets better as later chunks come in, and can get a lot
//! better: a driver that hands over a burst of buffered audio (PulseAudio's plugin does,
//! in 2 s bursts) delivers chunks that are all taken at the same moment, so within
//! the burst each chunk looks captured "now", and only a later delivery shows when they
//! were. Stamping each marker as its chunk arrived put a burst's first markers up to the
//! burst's length late (the first 2 s of markers squeezed into a few milliseconds), and
//! the first markers of the next burst a chunk late. So markers wait: a chunk's marker is
//! stamped once the deliveries after its own have brought [`CONFIRM`] of audio and one of
//! them came [`CONFIRM`] or more after its own (a burst can be drained in two or three
//! turns of the audio thread, milliseconds apart, and its second part confirms nothing), from
//! the mapping as it then stands. LSL consumers get them that much later, with their
//! times.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::timeline::Timeline;
use crate::clock::LslTime;

/// How much audio from later deliveries, and how long after the chunk's own, confirms a
/// chunk's place: a marker's delay. A second: the timeline's lower quartile needs the
/// best part of a burst's reports to settle (0.5 s of them, all from a burst's start,
/// can be mostly the early reports it must outvote).
pub const CONFIRM: Duration = Duration::from_millis(1000);

/// Markers waiting for their chunks to be confirmed, in chunk order.
#[derive(Debug)]
pub struct MarkerHold {
    rate: u32,
    confirm_frames: u64,
    pending: VecDeque<Pending>,
    /// Frames of all chunks delivered so far (silence put in for gaps is not delivered).
    delivered: u64,
    next_index: u64,
    /// The time the last marker was stamped with.
    last: Option<LslTime>,
}

#[derive(Debug)]
struct Pending {
    index: u64,
    first_sample: u64,
    /// Stamped once `delivered` reaches this...
    confirmed_at: u64,
    /// ...by a delivery at or after this instant.
    confirmed_after: Instant,
}

impl MarkerHold {
    pub fn new(rate: u32) -> MarkerHold {
        MarkerHold {
            rate,
            confirm_frames: (CONFIRM.as_secs_f64() * f64::from(rate)).round() as u64,
            pending: VecDeque::new(),
            delivered: 0,
            next_index: 0,
            last: None,
        }
    }

    /// One delivery's chunks, `(first sample index, frames)` each, taken at `now`, after
    /// the timeline has observed all of them.
    pub fn delivered(&mut self, chunks: impl IntoIterator<Item = (u64, u64)>, now: Instant) {
        let start = self.pending.len();
        for (first_sample, frames) in chunks {
            self.pending.push_back(Pending {
                index: self.next_index,
                first_sample,
                confirmed_at: 0,
                confirmed_after: now + CONFIRM,
            });
            self.next_index += 1;
            self.delivered += frames;
        }
        let confirmed_at = self.delivered + self.confirm_frames;
        for p in self.pending.iter_mut().skip(start) {
            p.confirmed_at = confirmed_at;
        }
    }

    /// Stamps the markers whose chunks the delivery taken at `now` confirms (`all`: every
    /// one, when no more audio is coming: a shutdown, a lost device) and hands each to
    /// `send` as (chunk index, first sample index, time). A marker is never stamped before
    /// the previous one plus one sample (see [`marker_time`]).
    pub fn release(
        &mut self,
        timeline: &Timeline,
        all: bool,
        now: Instant,
        mut send: impl FnMut(u64, u64, LslTime),
    ) {
        while let Some(p) = self.pending.front() {
            if !all && (self.delivered < p.confirmed_at || now < p.confirmed_after) {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if let Some(mapped) = timeline.time_of(p.first_sample) {
                let at = marker_time(self.last, mapped, self.rate);
                self.last = Some(at);
                send(p.index, p.first_sample, at);
            }
        }
    }

    /// Frames of later audio that confirm a chunk's time.
    pub fn confirm_frames(&self) -> u64 {
        self.confirm_frames
    }

    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

/// The time an LSL chunk marker is stamped with: the mapped time of its first sample, but
/// never before the marker sent last plus one sample. LSL consumers expect times that
/// rise; should the mapping move earlier by more than a chunk after a marker was sent
/// (rare, now that markers wait for confirmation), the next marker is one sample after the
/// last, and within a chunk or two the mapped time is ahead again and used as it is.
pub fn marker_time(last: Option<LslTime>, mapped: LslTime, rate: u32) -> LslTime {
    let sample = Duration::from_nanos(1_000_000_000 / u64::from(rate.max(1)));
    match last {
        Some(last) => mapped.max(last + sample),
        None => mapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const CHUNK: u64 = 800; // 16.7 ms
    /// The true capture time of sample 0, ns.
    const T0: i64 = 1_000_000_000_000;

    fn true_time(sample: u64) -> i64 {
        T0 + (sample as i128 * 1_000_000_000 / i128::from(RATE)) as i64
    }

    /// A timeline and a hold fed deliveries as the audio thread feeds them.
    struct Feed {
        timeline: Timeline,
        hold: MarkerHold,
        start: Instant,
    }

    impl Feed {
        /// `n` chunks from `first_chunk` on, taken `at_ms` into the test, each with the
        /// capture estimate `estimate_of(first sample)`: the timeline observes all of
        /// them, the hold gets them, and what they confirm is released.
        fn deliver(
            &mut self,
            at_ms: u64,
            first_chunk: u64,
            n: u64,
            reported: bool,
            estimate_of: impl Fn(u64) -> i64,
        ) -> Vec<(u64, u64, i64)> {
            let chunks: Vec<(u64, u64)> = (first_chunk..first_chunk + n)
                .map(|c| (c * CHUNK, CHUNK))
                .collect();
            for &(first, _) in &chunks {
                self.timeline
                    .observe(first, LslTime::from_nanos(estimate_of(first)), reported);
            }
            let now = self.start + Duration::from_millis(at_ms);
            self.hold.delivered(chunks, now);
            self.released(false, at_ms)
        }

        fn released(&mut self, all: bool, at_ms: u64) -> Vec<(u64, u64, i64)> {
            let now = self.start + Duration::from_millis(at_ms);
            let mut out = Vec::new();
            self.hold.release(&self.timeline, all, now, |i, s, at| {
                out.push((i, s, at.as_nanos()))
            });
            out
        }
    }

    /// A driver's first delivery is 2 s of buffered audio whose chunks all say "now"
    /// with nothing reported as buffered (PulseAudio's plugin at a stream's start),
    /// drained by the audio thread in two turns 50 ms apart; then chunks come as
    /// captured, 1 ms late, three every 50 ms. Every
    /// marker of the burst gets its true time (to the 1 ms the later chunks are late),
    /// none of them the burst's arrival time.
    #[test]
    fn a_burst_of_buffered_chunks_is_stamped_where_it_was_captured() {
        let mut feed = Feed {
            timeline: Timeline::new(RATE),
            hold: MarkerHold::new(RATE),
            start: Instant::now(),
        };
        let burst = 120; // 2 s
        let arrival = true_time(burst * CHUNK);
        let mut out = feed.deliver(0, 0, 60, false, |_| arrival);
        out.extend(feed.deliver(50, 60, 60, false, |_| arrival));
        assert!(out.is_empty(), "nothing is stamped from the burst alone");
        let (mut next, mut at_ms) = (burst, 50);
        while out.len() < burst as usize {
            at_ms += 50;
            out.extend(feed.deliver(at_ms, next, 3, true, |s| true_time(s) + 1_000_000));
            next += 3;
        }
        assert_eq!(out[0].0, 0, "chunk indices from 0");
        for (k, &(index, first, at)) in out.iter().enumerate() {
            assert_eq!((index, first), (k as u64, k as u64 * CHUNK));
            let err = at - true_time(first);
            assert!(
                (0..=1_000_000).contains(&err),
                "chunk {index} stamped {err} ns from its true time"
            );
        }
        // The hold keeps about CONFIRM of chunks, and gives up the rest when no more come.
        let waiting = feed.hold.waiting() as u64;
        assert!((59..=66).contains(&waiting), "{waiting} waiting");
        let rest = feed.released(true, at_ms);
        assert_eq!(rest.len() as u64, waiting);
        assert_eq!(rest.last().unwrap().0, next - 1);
        assert!(rest.windows(2).all(|w| w[1].2 > w[0].2));
    }

    #[test]
    fn chunk_markers_never_step_back_and_rejoin_the_mapping() {
        let t = LslTime::from_nanos;
        // 800-sample chunks at 48 kHz (16.7 ms); the mapping moves 25 ms earlier at chunk 2.
        let mapped = [
            t(0),
            t(16_666_667),
            t(8_333_333),
            t(25_000_000),
            t(41_666_667),
        ];
        let mut last = None;
        let mut stamped = Vec::new();
        for m in mapped {
            let at = marker_time(last, m, 48_000);
            last = Some(at);
            stamped.push(at.as_nanos());
        }
        assert_eq!(
            stamped,
            [0, 16_666_667, 16_666_667 + 20_833, 25_000_000, 41_666_667]
        );
    }
}
