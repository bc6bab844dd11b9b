//! The pre-trigger ring: the last `buffer.duration` seconds of one camera's JPEG frames, in RAM.
//!
//! Storage is a set of equal chunks (`bytes::BytesMut`), each allocated and touched before
//! the ring gets it. A frame's bytes are copied once, from the source's scratch buffer into
//! the current chunk, and split off as a reference-counted `Bytes`: the ring and the writer
//! share that payload and nothing copies it again. When the current chunk is full the ring
//! moves to the next one, evicting the frames still stored there (they are the oldest) and
//! reclaiming the chunk in place. `BytesMut::try_reclaim` never allocates: it succeeds only
//! when no `Bytes` into the chunk is alive any more. A chunk still held by the writer (a
//! recording far behind) cannot be reused, and the new frame is dropped and counted.
//!
//! Memory follows the need, up to `max_bytes`: the ring starts with a few chunks and, from
//! the bytes per second its frames actually take, says when it wants another
//! ([`PreTriggerRing::wants_chunks`]): when its capacity is short of `duration` of frames
//! plus a quarter (at least [`SLACK_SECONDS`] of frames) and two chunks of slack, or when
//! it had to drop or evict early. Another
//! thread allocates and touches the chunk ([`new_chunk`]) and hands it over
//! ([`PreTriggerRing::add_chunk`]), so the capture thread never allocates or faults.
//!
//! Eviction is O(1) per frame (pop from the front of a preallocated `VecDeque`); push is
//! O(1) amortized (one memcpy). In steady state nothing is allocated.
//!
//! Bounds: frames older than `duration` (relative to the newest) go; the byte budget holds
//! between (chunks − 1)/chunks and all of the chunks' bytes of JPEG data, because space is
//! recycled a chunk at a time; the slot budget bounds the metadata. Slots start at what
//! `duration` at the configured `fps` needs ([`RingLimits::for_rate`]) and grow the same
//! way as storage, to what the frames' real rate needs, when they run out before the
//! oldest frame is `duration` old: a network or program camera sets its own rate
//! ([`PreTriggerRing::wants_slots`], [`new_slots`], [`PreTriggerRing::take_slots`]).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;

use crate::clock::LslTime;
use crate::frame::{Frame, FrameMeta};

/// Size limits of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLimits {
    /// Keep frames captured no more than this long before the newest.
    pub duration: Duration,
    /// JPEG bytes the ring may hold at most: a ceiling, allocated as needed.
    pub max_bytes: usize,
    /// Frame slots; allocated up front.
    pub max_frames: usize,
}

impl RingLimits {
    /// Limits for `duration` at a nominal `fps`: slots for 25 % more frames than the
    /// nominal rate gives, so a camera running slightly fast never shortens the buffer.
    pub fn for_rate(duration: Duration, fps: f64, max_bytes: usize) -> RingLimits {
        let nominal = (duration.as_secs_f64() * fps).ceil() as usize;
        RingLimits {
            duration,
            max_bytes,
            max_frames: nominal + nominal / 4 + 64,
        }
    }
}

/// Why a frame could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// The space it needs is still held by the writer: a recording has fallen far behind.
    WriterBehind,
    /// The frame is larger than one storage chunk (`max_bytes` / chunks).
    TooLarge,
}

/// What the ring did with frames, by cause. Monotonic counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    pub stored: u64,
    /// Frames evicted before they were `duration` old because the byte budget was full:
    /// the pre-trigger buffer was shorter than configured for them.
    pub evicted_early_bytes: u64,
    /// Same, because all frame slots were in use.
    pub evicted_early_slots: u64,
    pub dropped_writer_behind: u64,
    pub dropped_too_large: u64,
}

/// The least slack a ring asks for beyond `duration` of frames, in time at the rate its
/// frames take: with a short buffer a quarter of it (and two chunks) is little time for a
/// writer held up at a recording's start (a busy machine, a disk's write-back).
pub const SLACK_SECONDS: Duration = Duration::from_secs(2);

/// Chunks a ring starts with (or all of them, if `max_bytes` allows fewer).
pub const INITIAL_CHUNKS: usize = 4;

/// The slot ceiling: one slot per this many bytes of `max_bytes` (a slot is 64 bytes, so
/// slots take at most 1/16 of `max_bytes` more). A 160x120 JPEG takes 3 to 5 kB.
pub const MIN_FRAME_BYTES: usize = 1024;

/// Frame slots, allocated off the capture thread with every page touched (as
/// [`new_chunk`] does for storage); `None` if the memory is not there.
pub fn new_slots(n: usize) -> Option<VecDeque<Frame>> {
    let mut d = VecDeque::new();
    d.try_reserve_exact(n).ok()?;
    let blank = Frame {
        meta: FrameMeta {
            seq: 0,
            capture: LslTime::from_nanos(0),
            wall: crate::clock::WallTime::from_nanos(0),
            width: 0,
            height: 0,
            keyframe: false,
        },
        data: bytes::Bytes::new(),
    };
    d.resize(d.capacity(), blank);
    d.clear();
    Some(d)
}

/// See the module documentation.
pub struct PreTriggerRing {
    limits: RingLimits,
    /// In the order they are filled: after `current` come the oldest frames.
    chunks: Vec<BytesMut>,
    /// Start address of each chunk's allocation, to tell which chunk a frame lives in.
    chunk_bases: Vec<usize>,
    chunk_size: usize,
    /// Chunks `max_bytes` allows; both vectors have room for them from the start.
    max_chunks: usize,
    current: usize,
    frames: VecDeque<Frame>,
    bytes: usize,
    counters: RingCounters,
    /// Chunks that would help now (see the module documentation).
    wants: usize,
    /// Frame slots that would hold `duration` of frames at the rate they come (0: enough).
    wants_slots: usize,
}

/// Chunk size and count for a ceiling of `max_bytes`: an eighth of it, from 256 KiB to
/// 8 MiB (the largest frame a ring holds is one chunk), and as many as fit.
fn chunking(max_bytes: usize) -> (usize, usize) {
    let size = (max_bytes / 8).clamp(256 << 10, 8 << 20);
    (size, (max_bytes / size).max(2))
}

/// Allocates one chunk of `size` bytes and touches every page, so that the thread that
/// fills it never waits on a page fault; `None` if the memory is not there. Called off the
/// capture thread.
pub fn new_chunk(size: usize) -> Option<BytesMut> {
    fresh_large_allocations();
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(size).ok()?;
    ask_for_huge_pages(&v);
    // Writing every byte faults every page in now (a non-zero byte, so that no allocator
    // or compiler can turn this into lazily mapped zero pages).
    v.resize(size, 0xFF);
    // Both conversions keep the allocation (a Vec whose length is its capacity, then a
    // unique Bytes): no copy.
    let mut c = BytesMut::from(bytes::Bytes::from(v));
    c.clear();
    // Splitting once turns the chunk into a shared buffer; later splits only bump a
    // reference count instead of allocating the shared header on first use.
    drop(c.split());
    Some(c)
}

/// Makes every allocation of 1 MiB or more a mapping of its own, fresh from the kernel,
/// once per process. glibc's malloc maps large blocks of its own only up to a threshold
/// that it raises to the size of any such block freed (up to 32 MiB): after, say, the
/// rows of a quality report (tens of MB) were freed, a chunk was cut from malloc's heap,
/// from memory touched before, which 4 KiB pages already back and [`ask_for_huge_pages`]
/// can no longer change (found by the huge-page test, which failed now and then among the
/// others, whose rings are freed as they end). A fixed threshold is never raised. Nothing
/// on the capture path allocates (SPEC §2); what does, 1 MiB or more at a time (a chunk,
/// a report's rows), pays a `mmap` for it.
fn fresh_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only sets a parameter of glibc's allocator, under its lock.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        });
    }
}

/// Asks the kernel to back the not yet touched allocation of `v` with transparent huge
/// pages (2 MiB on x86-64 and on arm64 with 4 KiB pages) wherever whole ones fit in it.
/// The capture thread copies each frame into a part of the ring it has not touched for
/// seconds: with 4 KiB pages every frame of 20 kB costs five page-table walks on cold
/// memory, which a virtual machine's nested page tables make dear (a 20 kB copy after the
/// thread slept 10 ms: 9–13 µs on 4 KiB pages, 3–4 µs on huge ones, on the project's VM).
/// Nothing changes where the kernel has no such pages (`transparent_hugepage` off, or a
/// Raspberry Pi 5's 16 KiB pages, whose huge pages are larger than a chunk): a refusal
/// is not an error.
fn ask_for_huge_pages(v: &Vec<u8>) {
    // SAFETY: sysconf only reads a constant of the system.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
    if page == 0 {
        return;
    }
    let start = (v.as_ptr() as usize).next_multiple_of(page);
    let end = (v.as_ptr() as usize + v.capacity()) / page * page;
    if end > start {
        // SAFETY: `start..end` lies inside `v`'s allocation, which nothing else uses;
        // MADV_HUGEPAGE changes how its pages are backed, never what they hold.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

impl PreTriggerRing {
    /// A ring with its first chunks ([`INITIAL_CHUNKS`]) allocated and touched now; it
    /// asks for more as it learns what its frames take (see the module documentation).
    pub fn new(limits: RingLimits) -> PreTriggerRing {
        Self::with_chunks(limits, INITIAL_CHUNKS)
    }

    /// A ring with `initial` chunks (at most what `max_bytes` allows) allocated now.
    pub fn with_chunks(limits: RingLimits, initial: usize) -> PreTriggerRing {
        assert!(limits.max_frames > 0, "a ring needs frame slots");
        let (chunk_size, max_chunks) = chunking(limits.max_bytes);
        let mut ring = PreTriggerRing {
            limits,
            chunks: Vec::with_capacity(max_chunks),
            chunk_bases: Vec::with_capacity(max_chunks),
            chunk_size,
            max_chunks,
            current: 0,
            frames: VecDeque::with_capacity(limits.max_frames),
            bytes: 0,
            counters: RingCounters::default(),
            wants: 0,
            wants_slots: 0,
        };
        for _ in 0..initial.clamp(2, max_chunks) {
            let c =
                new_chunk(chunk_size).expect("memory for the pre-trigger buffer's first chunks");
            ring.add_chunk(c);
        }
        ring.current = 0;
        ring
    }

    /// Adds an empty chunk (from [`new_chunk`], of [`PreTriggerRing::chunk_size`] bytes)
    /// right after the one being filled, so it is filled next. Never allocates. Returns
    /// false (and drops nothing: the chunk is returned to the allocator by the caller's
    /// drop) if the ring is at its ceiling or the chunk is the wrong size.
    pub fn add_chunk(&mut self, chunk: BytesMut) -> bool {
        if self.chunks.len() >= self.max_chunks || chunk.capacity() < self.chunk_size {
            return false;
        }
        let at = if self.chunks.is_empty() {
            0
        } else {
            self.current + 1
        };
        self.chunk_bases.insert(at, chunk.as_ptr() as usize);
        self.chunks.insert(at, chunk);
        self.wants = self.wants.saturating_sub(1);
        true
    }

    /// How many more chunks would help: the capacity is short of what `duration` of
    /// frames takes (plus a quarter, at least [`SLACK_SECONDS`] of frames, and two chunks
    /// of slack), or frames had to be dropped or evicted early for want of space. 0 at the
    /// ceiling.
    pub fn wants_chunks(&self) -> usize {
        self.wants
    }

    /// Bytes per chunk: what [`new_chunk`] must be given.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Whether the frame's bytes live in chunk `i`.
    fn in_chunk(&self, f: &Frame, i: usize) -> bool {
        let (p, b) = (f.data.as_ptr() as usize, self.chunk_bases[i]);
        p >= b && p < b + self.chunk_size
    }

    /// Works out how many more chunks would help; `short`: space just ran out.
    fn update_wants(&mut self, short: bool) {
        let room = self.max_chunks - self.chunks.len();
        let span = self.span().as_nanos();
        let mut deficit = 0;
        if span >= 1_000_000_000 {
            // What `duration` of frames takes at the rate the buffered ones do, and the
            // slack: what a writer may fall behind by before its frames pin the space
            // new ones need (a recording's start hands it the whole buffer at once).
            let need = self.bytes as u128 * self.limits.duration.as_nanos() / span;
            let seconds = self.bytes as u128 * SLACK_SECONDS.as_nanos() / span;
            let want = need + (need / 4).max(seconds) + 2 * self.chunk_size as u128;
            let cap = self.capacity_bytes() as u128;
            if cap < want {
                deficit = (want - cap).div_ceil(self.chunk_size as u128) as usize;
            }
        }
        if short {
            deficit = deficit.max(1);
        }
        self.wants = deficit.min(room);
    }

    /// The slots `duration` of frames needs at the rate the buffered ones came, with the
    /// slack [`RingLimits::for_rate`] gives the configured rate: the slots were all in use
    /// before the oldest frame was `duration` old (a camera faster than its `fps`: a
    /// network or program camera whose rate is set on the camera). At most one slot per
    /// [`MIN_FRAME_BYTES`] of `max_bytes`.
    fn update_wants_slots(&mut self) {
        // A tenth of a second of frames is enough to say the rate: a short buffer fills
        // its slots sooner than a second, and each run-out asks again.
        let span = self.span().as_nanos();
        if span < 100_000_000 {
            return;
        }
        let need =
            (self.frames.len() as u128 * self.limits.duration.as_nanos()).div_ceil(span) as usize;
        let want = (need + need / 4 + 64).min(self.slot_ceiling());
        self.wants_slots = if want > self.frames.capacity() {
            want
        } else {
            0
        };
    }

    /// The most frame slots the ring grows to.
    fn slot_ceiling(&self) -> usize {
        (self.limits.max_bytes / MIN_FRAME_BYTES).max(self.limits.max_frames)
    }

    /// How many frame slots the ring would like (0: it has enough): see
    /// [`PreTriggerRing::take_slots`].
    pub fn wants_slots(&self) -> usize {
        self.wants_slots
    }

    /// Moves the buffered frames into `bigger` (allocated, and its pages touched, off the
    /// capture thread) and keeps it; returns the slots it had, for the caller to free.
    /// Never allocates. `bigger` is returned unused if it is not larger.
    pub fn take_slots(&mut self, mut bigger: VecDeque<Frame>) -> VecDeque<Frame> {
        if bigger.capacity() <= self.frames.capacity() {
            return bigger;
        }
        bigger.clear();
        bigger.extend(self.frames.drain(..));
        self.wants_slots = 0;
        std::mem::replace(&mut self.frames, bigger)
    }

    /// Frame slots now.
    pub fn slots(&self) -> usize {
        self.frames.capacity()
    }

    /// Stores a frame (copying `jpeg` into ring storage) and evicts what is now too old.
    /// Returns the stored frame, sharing its payload, or why it could not be stored.
    pub fn push(&mut self, meta: FrameMeta, jpeg: &[u8]) -> Result<&Frame, DropCause> {
        let len = jpeg.len();
        if len > self.chunk_size {
            self.counters.dropped_too_large += 1;
            return Err(DropCause::TooLarge);
        }
        if self.chunks[self.current].capacity() < len {
            let next = (self.current + 1) % self.chunks.len();
            let mut evicted = false;
            while self.frames.front().is_some_and(|f| self.in_chunk(f, next)) {
                self.pop_front();
                self.counters.evicted_early_bytes += 1;
                evicted = true;
            }
            if !self.chunks[next].try_reclaim(self.chunk_size) {
                self.counters.dropped_writer_behind += 1;
                self.update_wants(true);
                return Err(DropCause::WriterBehind);
            }
            self.current = next;
            // Once per chunk filled, not per frame: the estimate moves slowly.
            self.update_wants(evicted);
        }
        if self.frames.len() == self.frames.capacity() {
            self.pop_front();
            self.counters.evicted_early_slots += 1;
            self.update_wants_slots();
        }
        let chunk = &mut self.chunks[self.current];
        chunk.extend_from_slice(jpeg);
        let data = chunk.split().freeze();
        self.frames.push_back(Frame { meta, data });
        self.bytes += len;
        self.counters.stored += 1;

        let horizon = meta.capture - self.limits.duration;
        while self
            .frames
            .front()
            .is_some_and(|f| f.meta.capture < horizon)
        {
            self.pop_front();
        }
        debug_assert!(self.bytes <= self.capacity_bytes());
        Ok(self.frames.back().expect("just pushed"))
    }

    fn pop_front(&mut self) {
        if let Some(f) = self.frames.pop_front() {
            self.bytes -= f.len();
        }
    }

    /// Buffered frames captured at or after `t`, oldest first.
    pub fn frames_since(&self, t: LslTime) -> impl Iterator<Item = &Frame> + '_ {
        let start = self.frames.partition_point(|f| f.meta.capture < t);
        self.frames.range(start..)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// JPEG bytes currently buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes allocated for JPEG data now.
    pub fn capacity_bytes(&self) -> usize {
        self.chunk_size * self.chunks.len()
    }

    /// The most bytes it will ever allocate for JPEG data (`max_bytes`, in whole chunks).
    pub fn ceiling_bytes(&self) -> usize {
        self.chunk_size * self.max_chunks
    }

    /// Largest frame the ring can hold.
    pub fn max_frame_bytes(&self) -> usize {
        self.chunk_size
    }

    pub fn limits(&self) -> RingLimits {
        self.limits
    }

    /// Time from the oldest to the newest buffered frame.
    pub fn span(&self) -> Duration {
        match (self.frames.front(), self.frames.back()) {
            (Some(a), Some(b)) => b.meta.capture.saturating_since(a.meta.capture),
            _ => Duration::ZERO,
        }
    }

    pub fn newest(&self) -> Option<&Frame> {
        self.frames.back()
    }

    pub fn oldest(&self) -> Option<&Frame> {
        self.frames.front()
    }

    pub fn counters(&self) -> RingCounters {
        self.counters
    }

    /// Memory the ring has allocated: chunk storage plus frame slots.
    pub fn allocated_bytes(&self) -> usize {
        self.capacity_bytes() + self.frames.capacity() * std::mem::size_of::<Frame>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::WallTime;

    const MS: i64 = 1_000_000;

    fn meta(seq: u64, t_ms: i64) -> FrameMeta {
        FrameMeta {
            seq,
            capture: LslTime::from_nanos(t_ms * MS),
            wall: WallTime::from_nanos(t_ms * MS),
            width: 16,
            height: 16,
            keyframe: true,
        }
    }

    fn payload(seq: u64, len: usize) -> Vec<u8> {
        (0..len).map(|i| (seq as usize + i) as u8).collect()
    }

    fn ring(duration_ms: u64, max_bytes: usize, max_frames: usize) -> PreTriggerRing {
        PreTriggerRing::new(RingLimits {
            duration: Duration::from_millis(duration_ms),
            max_bytes,
            max_frames,
        })
    }

    #[test]
    fn keeps_exactly_the_last_duration() {
        let mut r = ring(1000, 4 << 20, 1000);
        for i in 0..300u64 {
            r.push(meta(i, i as i64 * 10), &payload(i, 100)).unwrap();
        }
        // Newest at 2990 ms: frames from 1990 ms on are kept (101 frames).
        assert_eq!(r.oldest().unwrap().meta.seq, 199);
        assert_eq!(r.newest().unwrap().meta.seq, 299);
        assert_eq!(r.len(), 101);
        assert_eq!(r.span(), Duration::from_millis(1000));
        assert_eq!(r.bytes(), 101 * 100);
        let c = r.counters();
        assert_eq!(c.stored, 300);
        assert_eq!(c.evicted_early_bytes + c.evicted_early_slots, 0);
    }

    /// Slots for 4 s at 30 fps; the camera delivers 90: the slots fill at about 2.4 s, the
    /// ring asks for what 4 s at 90 fps need, and once it has them keeps the whole 4 s,
    /// with every frame it had when they came.
    #[test]
    fn a_camera_faster_than_its_fps_gets_the_slots_its_duration_needs() {
        let mut r =
            PreTriggerRing::new(RingLimits::for_rate(Duration::from_secs(4), 30.0, 16 << 20));
        let slots = r.slots();
        let mut t = 0;
        let mut seq = 0;
        let mut push = |r: &mut PreTriggerRing, secs: i64| {
            for _ in 0..secs * 90 {
                r.push(meta(seq, t / 90), &payload(seq, 200)).unwrap();
                seq += 1;
                t += 1000;
            }
        };
        push(&mut r, 5);
        assert!(r.span() < Duration::from_millis(2500), "{:?}", r.span());
        assert!(r.counters().evicted_early_slots > 0);
        let want = r.wants_slots();
        assert!(
            (450..=520).contains(&want),
            "4 s at 90 fps and a quarter more: {want} (had {slots})"
        );
        let before: Vec<u64> = r
            .frames_since(LslTime::from_nanos(0))
            .map(|f| f.meta.seq)
            .collect();
        let old = r.take_slots(new_slots(want).unwrap());
        assert_eq!(old.capacity(), slots);
        assert!(old.is_empty());
        assert_eq!(r.wants_slots(), 0);
        let after: Vec<u64> = r
            .frames_since(LslTime::from_nanos(0))
            .map(|f| f.meta.seq)
            .collect();
        assert_eq!(before, after, "the frames buffered are kept, in order");
        let early = r.counters().evicted_early_slots;
        push(&mut r, 6);
        assert_eq!(
            r.counters().evicted_early_slots,
            early,
            "no more evicted early"
        );
        assert!(r.span() >= Duration::from_millis(3980), "{:?}", r.span());
        assert_eq!(r.wants_slots(), 0);
        // Slots that are not more are handed back unused.
        let same = r.take_slots(new_slots(10).unwrap());
        assert!(same.capacity() < want);
        assert!(r.slots() >= want);

        // A short buffer fills its slots in less than a second: half a second at 500 fps
        // for 30 still asks.
        let mut r = PreTriggerRing::new(RingLimits::for_rate(
            Duration::from_millis(500),
            30.0,
            16 << 20,
        ));
        for i in 0..500u64 {
            r.push(meta(i, i as i64 * 2), &payload(i, 200)).unwrap();
        }
        let want = r.wants_slots();
        assert!((250..=400).contains(&want), "{want}");
        drop(r.take_slots(new_slots(want).unwrap()));
        for i in 500..1000u64 {
            r.push(meta(i, i as i64 * 2), &payload(i, 200)).unwrap();
        }
        assert!(r.span() >= Duration::from_millis(498), "{:?}", r.span());
    }

    #[test]
    fn payloads_are_stored_intact() {
        let mut r = ring(10_000, 1 << 20, 1000);
        for i in 0..50u64 {
            r.push(meta(i, i as i64), &payload(i, 1000 + i as usize))
                .unwrap();
        }
        for f in r.frames_since(LslTime::from_nanos(0)) {
            assert_eq!(
                &f.data[..],
                &payload(f.meta.seq, 1000 + f.meta.seq as usize)[..]
            );
        }
    }

    #[test]
    fn byte_budget_evicts_oldest_and_counts_it() {
        // 1 MiB in 4 chunks of 256 KiB; 10 kB frames, all within the duration.
        let mut r = ring(1_000_000, 1 << 20, 10_000);
        for i in 0..500u64 {
            r.push(meta(i, i as i64), &payload(i, 10_000)).unwrap();
        }
        assert!(r.bytes() <= 1 << 20);
        // At least three of four chunks are full of frames.
        assert!(r.bytes() >= 3 * (1 << 18) - 3 * 10_000, "{}", r.bytes());
        let c = r.counters();
        assert_eq!(c.evicted_early_bytes, 500 - r.len() as u64);
        // The survivors are the newest, in order, with no holes.
        let seqs: Vec<u64> = r
            .frames_since(LslTime::from_nanos(0))
            .map(|f| f.meta.seq)
            .collect();
        assert_eq!(*seqs.last().unwrap(), 499);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn slot_budget_evicts_oldest_and_counts_it() {
        let mut r = ring(1_000_000, 1 << 20, 10);
        let slots = r.frames.capacity();
        for i in 0..(slots as u64 + 5) {
            r.push(meta(i, i as i64), &payload(i, 10)).unwrap();
        }
        assert_eq!(r.len(), slots);
        assert_eq!(r.counters().evicted_early_slots, 5);
        assert_eq!(r.oldest().unwrap().meta.seq, 5);
    }

    #[test]
    fn a_chunk_held_by_the_writer_is_not_overwritten() {
        let mut r = ring(1_000_000, 1 << 20, 10_000);
        // The "writer" holds the first frame, pinning chunk 0.
        let held = r.push(meta(0, 0), &payload(0, 10_000)).unwrap().clone();
        let mut dropped = 0;
        for i in 1..200u64 {
            if r.push(meta(i, i as i64), &payload(i, 10_000)).err() == Some(DropCause::WriterBehind)
            {
                dropped += 1;
            }
        }
        assert!(dropped > 0, "the ring must refuse rather than overwrite");
        assert_eq!(r.counters().dropped_writer_behind, dropped);
        assert_eq!(
            &held.data[..],
            &payload(0, 10_000)[..],
            "held payload intact"
        );
        // Once the writer lets go, storing works again.
        drop(held);
        assert!(r.push(meta(500, 500), &payload(500, 10_000)).is_ok());
    }

    #[test]
    fn oversized_frames_are_refused_and_counted() {
        let mut r = ring(1000, 1 << 20, 100);
        let too_big = vec![0u8; r.max_frame_bytes() + 1];
        assert_eq!(
            r.push(meta(0, 0), &too_big).unwrap_err(),
            DropCause::TooLarge
        );
        assert_eq!(r.counters().dropped_too_large, 1);
        assert!(r.is_empty());
    }

    #[test]
    fn frames_since_finds_the_pre_trigger_start() {
        let mut r = ring(10_000, 1 << 20, 1000);
        for i in 0..100u64 {
            r.push(meta(i, i as i64 * 10), &payload(i, 10)).unwrap();
        }
        let first = r
            .frames_since(LslTime::from_nanos(455 * MS))
            .next()
            .unwrap();
        assert_eq!(first.meta.seq, 46);
        assert_eq!(r.frames_since(LslTime::from_nanos(2000 * MS)).count(), 0);
    }

    #[test]
    fn a_zero_duration_ring_keeps_only_the_newest_frame() {
        let mut r = ring(0, 1 << 20, 100);
        for i in 0..10u64 {
            r.push(meta(i, i as i64), &payload(i, 10)).unwrap();
        }
        assert_eq!(r.len(), 1);
        assert_eq!(r.newest().unwrap().meta.seq, 9);
    }

    #[test]
    fn a_new_chunk_is_one_allocation_of_its_size() {
        let c = new_chunk(1 << 20).unwrap();
        assert!(c.capacity() >= 1 << 20);
        assert!(c.is_empty());
    }

    /// The ring's chunks ask for huge pages: where the kernel has 2 MiB ones to give
    /// (`transparent_hugepage` not `never`, 4 KiB base pages), an 8 MiB chunk (the
    /// default `buffer.max_bytes` makes such chunks) lies on at least one of them; without
    /// the request a kernel in `madvise` mode (this project's CI machines) gives none.
    /// 64-bit builds only: a 32-bit ARM kernel has such pages only with LPAE, and the
    /// 32-bit build's tests run under user-mode emulation, which ignores the request.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_chunk_lies_on_huge_pages_where_the_kernel_has_them() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        // SAFETY: sysconf only reads a constant of the system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if mode.contains("[never]") || mode.is_empty() || page != 4096 {
            eprintln!("skipped: no 2 MiB transparent huge pages here ({mode:?}, {page} B pages)");
            return;
        }
        // After a large block was freed (which raises glibc's own threshold for mapping
        // a block apart), and one of the chunk's size was written and freed: the chunk is
        // fresh memory all the same.
        new_chunk(1 << 20);
        drop(std::hint::black_box(vec![1u8; 9 << 20]));
        drop(std::hint::black_box(vec![1u8; 8 << 20]));
        let c = new_chunk(8 << 20).unwrap();
        let (lo, hi) = (c.as_ptr() as usize, c.as_ptr() as usize + c.capacity());
        // The chunk's mappings in /proc/self/smaps: a header line `lo-hi perms ...`, then
        // `Key: N kB` lines.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut huge_kib = 0;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = a < hi && b > lo;
                        continue;
                    }
                }
            }
            if let Some(v) = line.strip_prefix("AnonHugePages:").filter(|_| inside) {
                huge_kib += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<usize>()
                    .unwrap();
            }
        }
        assert!(
            huge_kib >= 2048,
            "an 8 MiB chunk at {lo:#x} lies on {huge_kib} KiB of huge pages (kernel: {mode:?})"
        );
    }

    /// The ring starts small and asks for what its frames need: `duration` of them, a
    /// quarter more and two chunks, never beyond `max_bytes`. Chunks added while it fills
    /// are used next, and nothing is evicted early.
    #[test]
    fn memory_follows_the_frames_up_to_the_ceiling() {
        // 20 s at 100 fps of 20 kB frames: 40 MB. Ceiling 512 MiB in 8 MiB chunks.
        let mut r = PreTriggerRing::new(RingLimits::for_rate(
            Duration::from_secs(20),
            100.0,
            512 << 20,
        ));
        assert_eq!(r.capacity_bytes(), INITIAL_CHUNKS * (8 << 20));
        assert_eq!(r.ceiling_bytes(), 512 << 20);
        for i in 0..3000u64 {
            r.push(meta(i, i as i64 * 10), &payload(i, 20_000)).unwrap();
            // The other thread's part, played here: add what is asked for.
            while r.wants_chunks() > 0 {
                assert!(r.add_chunk(new_chunk(r.chunk_size()).unwrap()));
            }
        }
        let c = r.counters();
        assert_eq!(c.evicted_early_bytes + c.evicted_early_slots, 0);
        assert_eq!(r.span(), Duration::from_secs(20));
        let need = 2001 * 20_000;
        assert!(
            r.capacity_bytes() >= need + need / 4,
            "{}",
            r.capacity_bytes()
        );
        assert!(
            r.capacity_bytes() <= need + need / 4 + 4 * r.chunk_size(),
            "{} for {need} bytes of frames",
            r.capacity_bytes()
        );
        // A ceiling below the need: it stops asking there, and evicts early instead.
        let mut small = PreTriggerRing::new(RingLimits::for_rate(
            Duration::from_secs(20),
            100.0,
            16 << 20,
        ));
        for i in 0..3000u64 {
            small
                .push(meta(i, i as i64 * 10), &payload(i, 20_000))
                .unwrap();
            while small.wants_chunks() > 0 {
                assert!(small.add_chunk(new_chunk(small.chunk_size()).unwrap()));
            }
        }
        assert_eq!(small.capacity_bytes(), 16 << 20);
        assert!(!small.add_chunk(new_chunk(small.chunk_size()).unwrap()));
        assert!(small.counters().evicted_early_bytes > 0);
    }

    /// A short buffer of large frames (2 s of 100 kB at 260 fps, as 1080p on a machine
    /// that keeps up with 260 fps): a recording's start hands the writer every buffered
    /// frame, and the writer, held up 1.5 s (a busy machine, the disk's write-back), then
    /// catches up at twice the rate. The ring had asked for enough slack beforehand: no
    /// frame is dropped.
    #[test]
    fn a_writer_held_up_at_a_recordings_start_loses_no_frame() {
        let mut r = PreTriggerRing::new(RingLimits::for_rate(
            Duration::from_secs(2),
            260.0,
            256 << 20,
        ));
        let t = |i: u64| (i * 1000 / 260) as i64;
        let mut writer: VecDeque<Frame> = VecDeque::new();
        let start = 4 * 260;
        for i in 0..start + 6 * 260 {
            if i == start {
                writer.extend(r.frames_since(LslTime::from_nanos(0)).cloned());
            }
            let f = r.push(meta(i, t(i)), &payload(i, 100_000)).unwrap().clone();
            if i >= start {
                writer.push_back(f);
                if i >= start + 390 {
                    writer.pop_front();
                    writer.pop_front();
                }
            }
            while r.wants_chunks() > 0 {
                assert!(r.add_chunk(new_chunk(r.chunk_size()).unwrap()));
            }
        }
        assert!(writer.is_empty(), "the writer caught up");
        assert_eq!(r.counters().dropped_writer_behind, 0);
        assert!(r.capacity_bytes() <= r.ceiling_bytes());
    }

    #[test]
    fn storage_is_reused_not_reallocated() {
        let mut r = ring(1_000_000, 1 << 20, 100_000);
        let bases = r.chunk_bases.clone();
        for i in 0..5_000u64 {
            let f = r.push(meta(i, i as i64), &payload(i, 3_000)).unwrap();
            let p = f.data.as_ptr() as usize;
            assert!(bases.iter().any(|&b| p >= b && p < b + r.chunk_size));
        }
        assert_eq!(r.chunk_bases, bases);
    }
}
