//! The synthetic source makes no Rust heap allocation per frame in steady state (SPEC
//! section 2: the capture thread never allocates per frame).
//!
//! This needs a counting `#[global_allocator]`, which only an integration test (its own
//! binary) can install. The count is per thread, so the test harness's other threads do
//! not disturb it. libjpeg-turbo allocates its per-image working memory with C `malloc`,
//! which this allocator does not see; that memory is out of our control and not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use hindsight::clock::{ClockPair, Clocks, LslTime, SimulatedClocks, WallTime};
use hindsight::source::synthetic::{Pacing, SyntheticConfig, SyntheticSource};
use hindsight::source::FrameSource;

struct CountingAllocator;

thread_local! {
    // `const` initialisation: reading it never allocates, so the allocator may use it.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// a thread-local integer.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

/// Runs `warm_up` frames (the caller's `Vec` grows to its working size), then counts the
/// allocations made by the next 200 frames.
fn allocations_in_steady_state(mut source: SyntheticSource) -> u64 {
    let mut jpeg = Vec::new();
    for _ in 0..5 {
        source.next_frame(&mut jpeg).expect("frame");
    }
    // The picture's content (and so the JPEG's size) varies; give the caller's buffer the
    // headroom a capture loop would give it, so that only the source itself is measured.
    jpeg.reserve(jpeg.len() * 2);
    let before = allocations();
    for _ in 0..200 {
        source.next_frame(&mut jpeg).expect("frame");
    }
    allocations() - before
}

fn simulated_clocks() -> Arc<dyn Clocks> {
    Arc::new(SimulatedClocks::new(ClockPair {
        lsl: LslTime::from_nanos(1_000_000_000),
        wall: WallTime::from_nanos(1_700_000_000_000_000_000),
    }))
}

#[test]
fn paced_encoding_source_allocates_nothing_per_frame() {
    let cfg = SyntheticConfig {
        width: 400,
        height: 400,
        fps: 100.0,
        quality: 80,
        pacing: Pacing::RealTime,
        pool: None,
    };
    let source = SyntheticSource::new(cfg, simulated_clocks()).expect("source");
    assert_eq!(allocations_in_steady_state(source), 0);
}

#[test]
fn unpaced_encoding_source_allocates_nothing_per_frame() {
    let cfg = SyntheticConfig {
        width: 1456,
        height: 96,
        fps: 536.0,
        quality: 50,
        pacing: Pacing::Unpaced,
        pool: None,
    };
    let source = SyntheticSource::new(cfg, simulated_clocks()).expect("source");
    assert_eq!(allocations_in_steady_state(source), 0);
}

#[test]
fn pooled_source_allocates_nothing_per_frame() {
    let cfg = SyntheticConfig {
        width: 400,
        height: 400,
        fps: 100.0,
        quality: 80,
        pacing: Pacing::Unpaced,
        pool: Some(16),
    };
    let source = SyntheticSource::new(cfg, simulated_clocks()).expect("source");
    assert_eq!(allocations_in_steady_state(source), 0);
}
