//! The capture path makes no heap allocation per frame in steady state (SPEC section 2):
//! neither the synthetic source nor the capture thread's own work (ring push with eviction
//! and chunk recycling, forwarding to the writer's queue, counters).
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
use hindsight::source::SourceInfo;

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

/// A synthetic source on the simulated clock.
fn synthetic(
    width: u32,
    height: u32,
    fps: f64,
    quality: u8,
    pacing: Pacing,
    pool: Option<usize>,
) -> SyntheticSource {
    let cfg = SyntheticConfig {
        width,
        height,
        fps,
        quality,
        pacing,
        pool,
    };
    SyntheticSource::new(cfg, simulated_clocks()).expect("source")
}

#[test]
fn paced_encoding_source_allocates_nothing_per_frame() {
    let source = synthetic(400, 400, 100.0, 80, Pacing::RealTime, None);
    assert_eq!(allocations_in_steady_state(source), 0);
}

#[test]
fn unpaced_encoding_source_allocates_nothing_per_frame() {
    let source = synthetic(1456, 96, 536.0, 50, Pacing::Unpaced, None);
    assert_eq!(allocations_in_steady_state(source), 0);
}

#[test]
fn pooled_source_allocates_nothing_per_frame() {
    let source = synthetic(400, 400, 100.0, 80, Pacing::Unpaced, Some(16));
    assert_eq!(allocations_in_steady_state(source), 0);
}

/// The capture step on a full, recycling ring, first buffering and then forwarding every
/// frame to a writer queue drained by another thread.
#[test]
fn the_capture_step_allocates_nothing_per_frame() {
    use hindsight::capture::{Camera, CameraSetup, CaptureStep};
    use hindsight::frame::FrameMeta;
    use hindsight::ring::{PreTriggerRing, RingLimits};
    use std::time::Duration;

    // 2 s at 100 fps in 4 MiB: the byte budget, not the duration, forces eviction, so chunk
    // recycling is part of what is measured.
    let ring = PreTriggerRing::new(RingLimits::for_rate(Duration::from_secs(2), 100.0, 4 << 20));
    let info = SourceInfo {
        kind: hindsight::config::SourceKind::Synthetic,
        model: "test".into(),
        width: 400,
        height: 400,
        fps: 100.0,
        codec: hindsight::config::Codec::Mjpg,
        encodes: false,
        controls: String::new(),
        controls_off: None,
    };
    let cam = Camera::new(CameraSetup::plain(0, "cam0", info), ring);
    let jpegs: Vec<Vec<u8>> = (0..7).map(|i| vec![i as u8; 20_000 + i * 3_001]).collect();
    let meta = |n: u64| FrameMeta {
        seq: n,
        capture: LslTime::from_nanos(n as i64 * 10_000_000),
        wall: WallTime::from_nanos(n as i64 * 10_000_000),
        width: 400,
        height: 400,
        keyframe: true,
    };
    let mut step = CaptureStep::default();
    let mut n = 0u64;
    let (tx, rx) = hindsight::writer::queue::queue(4096, None);
    let mut forwarded = 0u64;
    // The writer's side is played on this thread, releasing each frame right after the
    // capture step (as the writer does once a frame is muxed): deterministic, and a
    // release never allocates.
    let mut run = |frames: u64, step: &mut CaptureStep| {
        for _ in 0..frames {
            step.frame(&cam, meta(n), &jpegs[n as usize % jpegs.len()]);
            n += 1;
            forwarded += std::iter::from_fn(|| rx.try_recv()).count() as u64;
        }
    };
    run(1_000, &mut step);
    let before = allocations();
    run(1_000, &mut step);
    assert_eq!(allocations() - before, 0, "allocations while buffering");
    let s = cam.status(None, hindsight::clock::LslTime::now());
    assert!(
        s.buffer_evicted_early > 0,
        "the byte budget must have recycled chunks"
    );
    assert_eq!(s.frames_dropped, 0);

    let (sent, _, _) = cam.begin_recording(1, &tx, LslTime::from_nanos(0), None);
    let buffered_sent = std::iter::from_fn(|| rx.try_recv())
        .map(|m| match m {
            hindsight::writer::WriterMsg::Buffered(frames) => frames.len() as u64,
            other => panic!("{other:?}"),
        })
        .sum::<u64>();
    assert_eq!(buffered_sent, sent);
    run(500, &mut step);
    let before = allocations();
    run(2_000, &mut step);
    assert_eq!(allocations() - before, 0, "allocations while recording");
    cam.end_recording(1);
    assert_eq!(
        forwarded + buffered_sent,
        sent + 2_500,
        "every frame reached the writer queue"
    );
    assert_eq!(
        cam.status(None, hindsight::clock::LslTime::now())
            .frames_dropped,
        0
    );
}

/// A stream camera (`source: command`, `http-mjpeg`) as the capture thread reads it
/// (`next_frame_ref`: each frame where it was read): bytes read in pieces that cut frames
/// anywhere come out as the same frames, with no allocation per frame.
#[test]
fn a_stream_source_allocates_nothing_per_frame() {
    use hindsight::source::stream::{FrameStream, Read};

    let mut source = synthetic(400, 400, 100.0, 80, Pacing::Unpaced, None);
    let frames: Vec<Vec<u8>> = (0..8)
        .map(|_| {
            let mut jpeg = Vec::new();
            source.next_frame(&mut jpeg).expect("frame");
            jpeg
        })
        .collect();
    let bytes: Vec<u8> = frames.concat();
    let mut stream = FrameStream::new(1 << 20, simulated_clocks());
    let mut at = 0usize;
    let mut piece = 0usize;
    let mut read = |buf: &mut [u8]| {
        // Pieces of 1 to 9 kB, wrapping round the frames: boundaries fall anywhere.
        piece += 1;
        let n = (1_000 + piece * 997 % 8_000).min(buf.len());
        for b in buf[..n].iter_mut() {
            *b = bytes[at];
            at = (at + 1) % bytes.len();
        }
        Read::Bytes(n)
    };
    let take = |count: usize, stream: &mut FrameStream, read: &mut dyn FnMut(&mut [u8]) -> Read| {
        for i in 0..count {
            let (meta, data) = stream.next_frame_ref(&mut *read).expect("frame");
            assert_eq!(
                data,
                &frames[meta.seq as usize % frames.len()][..],
                "frame {i}"
            );
        }
    };
    take(50, &mut stream, &mut read);
    let before = allocations();
    take(200, &mut stream, &mut read);
    assert_eq!(allocations() - before, 0);
}
