use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use turbojpeg::PixelFormat;

use super::*;
use crate::clock::{ClockPair, SimulatedClocks, WallTime};

/// The camera modes the project uses, the size limits, and odd sizes.
const SIZES: [(u32, u32); 11] = [
    (64, 48),
    (65, 49),
    (224, 96),
    (400, 400),
    (688, 136),
    (1456, 96),
    (641, 479),
    (1280, 720),
    (1920, 1080),
    (3840, 2160),
    (4096, 4096),
];
const NUMBERS: [u64; 7] = [
    0,
    1,
    99,
    12345,
    (1 << 32) + 7,
    (1 << 40) - 1,
    (1 << FRAME_NUMBER_BITS) - 1,
];

fn gray(jpeg: &[u8]) -> (Vec<u8>, usize, usize) {
    let image = turbojpeg::decompress(jpeg, PixelFormat::GRAY).expect("decodable JPEG");
    assert_eq!(image.pitch, image.width);
    (image.pixels, image.width, image.height)
}

fn start() -> ClockPair {
    ClockPair {
        lsl: LslTime::from_nanos(5_000_000_000),
        wall: WallTime::from_nanos(1_700_000_000_123_456_789),
    }
}

fn source(
    fps: f64,
    pacing: Pacing,
    pool: Option<usize>,
) -> (SyntheticSource, Arc<SimulatedClocks>) {
    let clocks = Arc::new(SimulatedClocks::new(start()));
    let cfg = SyntheticConfig {
        width: 224,
        height: 96,
        fps,
        quality: 75,
        pacing,
        pool,
    };
    let source = SyntheticSource::new(cfg, clocks.clone()).expect("source");
    (source, clocks)
}

/// Exact slot offset in ns, computed independently: round(n · 10^9 / fps).
fn expected_offset(n: u64, fps: u64) -> i64 {
    ((u128::from(n) * 1_000_000_000 + u128::from(fps) / 2) / u128::from(fps)) as i64
}

#[test]
fn every_size_and_number_survives_jpeg_at_quality_50_and_90() {
    for (width, height) in SIZES {
        for quality in [50, 90] {
            let mut encoder = PatternEncoder::new(width, height, quality).unwrap();
            for n in NUMBERS {
                let (luma, w, h) = gray(encoder.encode(n).unwrap());
                assert_eq!((w, h), (width as usize, height as usize));
                assert_eq!(
                    decode_frame_number(&luma, w, h),
                    Some(n),
                    "{width}x{height} q{quality} frame {n}"
                );
            }
        }
    }
}

#[test]
fn numbers_wrap_at_48_bits() {
    let mut encoder = PatternEncoder::new(400, 400, 75).unwrap();
    let (luma, w, h) = gray(encoder.encode((1 << FRAME_NUMBER_BITS) + 5).unwrap());
    assert_eq!(decode_frame_number(&luma, w, h), Some(5));
}

#[test]
fn picture_depends_only_on_the_frame_number() {
    let mut a = PatternEncoder::new(688, 136, 80).unwrap();
    let mut b = PatternEncoder::new(688, 136, 80).unwrap();
    let first = a.encode(42).unwrap().to_vec();
    for n in [7, 1 << 40, 3] {
        b.encode(n).unwrap();
    }
    assert_eq!(b.encode(42).unwrap(), &first[..]);
    assert_ne!(
        a.encode(43).unwrap(),
        &first[..],
        "consecutive frames differ"
    );
}

#[test]
fn a_damaged_strip_reads_as_none_never_as_a_wrong_number() {
    let mut encoder = PatternEncoder::new(400, 400, 50).unwrap();
    let n = (1 << 40) - 1;
    let (luma, w, h) = gray(encoder.encode(n).unwrap());
    assert_eq!(decode_frame_number(&luma, w, h), Some(n));

    // Each single cell inverted (8-pixel cells, 50 to a row at this size).
    for cell in 0..64 {
        let mut bad = luma.clone();
        let (x0, y0) = ((cell % 50) * 8, (cell / 50) * 8);
        for y in y0..y0 + 8 {
            for v in &mut bad[y * w + x0..y * w + x0 + 8] {
                *v = 255 - *v;
            }
        }
        assert_eq!(
            decode_frame_number(&bad, w, h),
            None,
            "cell {cell} inverted"
        );
    }
    // A cell washed out to grey: no longer decisive.
    let mut bad = luma.clone();
    for y in 0..8 {
        bad[y * w + 80..y * w + 88].fill(128);
    }
    assert_eq!(decode_frame_number(&bad, w, h), None);
    // Uniform pictures, a wrong size, a short buffer.
    assert_eq!(decode_frame_number(&vec![0; w * h], w, h), None);
    assert_eq!(decode_frame_number(&vec![255; w * h], w, h), None);
    assert_eq!(decode_frame_number(&vec![128; w * h], w, h), None);
    assert_eq!(decode_frame_number(&luma, 200, 800), None);
    assert_eq!(decode_frame_number(&luma[..w * h - 1], w, h), None);
    assert_eq!(decode_frame_number(&luma, 32, 32), None);
}

#[test]
fn paced_capture_times_are_exact_slots_without_drift() {
    for fps in [30, 536] {
        let (mut source, clocks) = source(fps as f64, Pacing::RealTime, None);
        let mut jpeg = Vec::new();
        for n in 0..1000 {
            let meta = source.next_frame(&mut jpeg).unwrap();
            assert_eq!(meta.seq, n);
            let offset = expected_offset(n, fps);
            assert_eq!(
                meta.capture.nanos_since(start().lsl),
                offset,
                "{fps} fps frame {n}"
            );
            assert_eq!(meta.wall.as_nanos(), start().wall.as_nanos() + offset);
            // The source slept until the slot (the simulated clock jumped there).
            assert_eq!(clocks.now().lsl, meta.capture);
            assert!(meta.keyframe);
            assert_eq!((meta.width, meta.height), (224, 96));
        }
        // Far into a run, still exact: after a long quiet stretch up to slot n, the
        // queued slots n-3..=n come, each at its own exact time.
        let n = 10_000_000;
        clocks.sleep_until(start().lsl + Duration::from_nanos(expected_offset(n, fps) as u64));
        for k in n + 1 - QUEUE_DEPTH..=n {
            let meta = source.next_frame(&mut jpeg).unwrap();
            assert_eq!(meta.seq, k);
            assert_eq!(
                meta.capture.nanos_since(start().lsl),
                expected_offset(k, fps)
            );
        }
    }
}

#[test]
fn a_late_caller_gets_the_queued_frames_and_loses_older_ones() {
    let fps = 30;
    let (mut source, clocks) = source(fps as f64, Pacing::RealTime, None);
    let mut jpeg = Vec::new();
    let period = Duration::from_nanos(expected_offset(1, fps) as u64);
    let mut step = |late: Duration| {
        clocks.advance(late);
        let meta = source.next_frame(&mut jpeg).unwrap();
        let (luma, w, h) = gray(&jpeg);
        assert_eq!(
            decode_frame_number(&luma, w, h),
            Some(meta.seq),
            "picture = seq"
        );
        assert_eq!(
            meta.capture.nanos_since(start().lsl),
            expected_offset(meta.seq, fps)
        );
        meta.seq
    };
    assert_eq!(step(Duration::ZERO), 0);
    assert_eq!(step(Duration::ZERO), 1);
    // Slot 2 is due one period after slot 1: the caller returning within the period
    // (here at half of it) is on time, and even half a period after the due time the
    // frame is merely delivered late, not dropped.
    assert_eq!(step(period / 2), 2);
    assert_eq!(step(period * 3 / 2), 3);
    // That left the clock half a period past slot 3. Three more periods of stall: slots
    // 4, 5 and 6 are all due; they fit the driver queue, so all come, back to back,
    // each stamped with its own due time.
    assert_eq!(step(period * 3), 4);
    assert_eq!(step(Duration::ZERO), 5);
    assert_eq!(step(Duration::ZERO), 6);
    // Ten periods of stall: slots 7 to 16 are due, the queue holds the last four (13
    // to 16), so 7 to 12 are lost and the seq jumps.
    assert_eq!(step(period * 10), 13);
    assert_eq!(step(Duration::ZERO), 14);
    assert_eq!(step(Duration::ZERO), 15);
    assert_eq!(step(Duration::ZERO), 16);
    // And the schedule carries on from there.
    assert_eq!(step(Duration::ZERO), 17);
}

#[test]
fn unpaced_frames_count_up_and_take_the_clock_now() {
    let (mut source, clocks) = source(30.0, Pacing::Unpaced, None);
    let mut jpeg = Vec::new();
    for n in 0..5 {
        clocks.advance(Duration::from_micros(7));
        let before = clocks.now();
        let meta = source.next_frame(&mut jpeg).unwrap();
        assert_eq!(meta.seq, n);
        assert_eq!((meta.capture, meta.wall), (before.lsl, before.wall));
        // No sleeping.
        assert_eq!(clocks.now(), before);
        let (luma, w, h) = gray(&jpeg);
        assert_eq!(decode_frame_number(&luma, w, h), Some(n));
    }
}

#[test]
fn a_pool_cycles_its_pictures_while_seq_counts_on() {
    let (mut source, _clocks) = source(100.0, Pacing::Unpaced, Some(3));
    let mut reference = PatternEncoder::new(224, 96, 75).unwrap();
    let mut jpeg = Vec::new();
    for n in 0..8 {
        let meta = source.next_frame(&mut jpeg).unwrap();
        assert_eq!(meta.seq, n);
        assert_eq!(jpeg, reference.encode(n % 3).unwrap());
        let (luma, w, h) = gray(&jpeg);
        assert_eq!(decode_frame_number(&luma, w, h), Some(n % 3));
    }
}

#[test]
fn the_callers_buffer_and_the_sources_own_are_reused() {
    let (mut source, _clocks) = source(100.0, Pacing::Unpaced, None);
    let mut jpeg = Vec::with_capacity(1 << 20);
    let ptr = jpeg.as_ptr();
    source.next_frame(&mut jpeg).unwrap();
    let Frames::Live(encoder) = &source.frames else {
        unreachable!("no pool configured")
    };
    let out = (encoder.out.as_ptr(), encoder.out.capacity());
    for _ in 0..50 {
        source.next_frame(&mut jpeg).unwrap();
    }
    assert_eq!(jpeg.as_ptr(), ptr);
    assert_eq!(jpeg.capacity(), 1 << 20);
    let Frames::Live(encoder) = &source.frames else {
        unreachable!("no pool configured")
    };
    assert_eq!((encoder.out.as_ptr(), encoder.out.capacity()), out);
}

#[test]
fn bad_configurations_are_refused_with_the_limits() {
    let clocks: Arc<dyn Clocks> = Arc::new(SimulatedClocks::new(start()));
    let cfg = SyntheticConfig {
        width: 400,
        height: 400,
        fps: 100.0,
        quality: 80,
        pacing: Pacing::RealTime,
        pool: None,
    };
    let error = |change: &dyn Fn(&mut SyntheticConfig)| {
        let mut cfg = cfg.clone();
        change(&mut cfg);
        match SyntheticSource::new(cfg, clocks.clone()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    };
    let too_small = error(&|c| c.height = 47);
    assert_eq!(
        too_small,
        "synthetic frame size 400x47 is not supported: width must be 64 to 4096 and \
             height 48 to 4096 pixels"
    );
    assert!(error(&|c| c.width = 4097).contains("4097x400"));
    for fps in [0.0, -1.0, f64::NAN, 10_000.5, f64::INFINITY] {
        let e = error(&|c| c.fps = fps);
        assert!(e.contains("from 0.001 to 10000"), "{e}");
    }
    assert!(error(&|c| c.quality = 0).contains("quality 0 is out of range"));
    assert!(error(&|c| c.quality = 101).contains("from 1 to 100"));
    assert!(error(&|c| c.pool = Some(0)).contains("at least 1"));
    assert!(SyntheticSource::new(cfg, clocks.clone()).is_ok());
}

#[test]
fn info_describes_the_source() {
    let (source, _clocks) = source(536.0, Pacing::RealTime, None);
    let info = source.info();
    assert_eq!(
        (info.kind.as_str(), info.model.as_str(), info.codec.as_str()),
        ("synthetic", "synthetic test pattern", "mjpg")
    );
    assert_eq!((info.width, info.height, info.fps), (224, 96, 536.0));
}

/// The end-to-end tests read recordings through ffmpeg exactly like this; prove that
/// every frame number comes back through ffmpeg's own JPEG decoder and gray
/// conversion.
#[test]
fn ffmpeg_reads_every_frame_number_of_an_mjpeg_stream() {
    let dir = tempfile::tempdir().unwrap();
    for (width, height) in [
        (64, 48),
        (224, 96),
        (400, 400),
        (688, 136),
        (1456, 96),
        (1920, 1080),
    ] {
        let path = dir.path().join(format!("{width}x{height}.mjpeg"));
        let mut file = std::fs::File::create(&path).unwrap();
        let mut encoder = PatternEncoder::new(width, height, 50).unwrap();
        let numbers: Vec<u64> = (0..20).map(|i| i * 1_000_003 + (1 << 40) - 20).collect();
        for &n in &numbers {
            file.write_all(encoder.encode(n).unwrap()).unwrap();
        }
        drop(file);
        let output = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "mjpeg", "-i"])
            .arg(&path)
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .expect("ffmpeg must be installed to run this test");
        assert!(
            output.status.success(),
            "ffmpeg: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let frame_len = (width * height) as usize;
        assert_eq!(
            output.stdout.len(),
            numbers.len() * frame_len,
            "{width}x{height}"
        );
        let decoded: Vec<Option<u64>> = output
            .stdout
            .chunks_exact(frame_len)
            .map(|luma| decode_frame_number(luma, width as usize, height as usize))
            .collect();
        let expected: Vec<Option<u64>> = numbers.iter().map(|&n| Some(n)).collect();
        assert_eq!(decoded, expected, "{width}x{height}");
    }
}

/// Draw + encode time per frame. Run with
/// `cargo test --release encode_timing -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test"]
fn encode_timing() {
    for (width, height) in [(400, 400), (1456, 96), (1920, 1080)] {
        for quality in [50, 80, 90] {
            let mut encoder = PatternEncoder::new(width, height, quality).unwrap();
            let frames = if width >= 1920 { 200 } else { 2000 };
            let mut bytes = 0;
            let start = Instant::now();
            for n in 0..frames {
                bytes += encoder.encode(n).unwrap().len();
            }
            let per_frame = start.elapsed() / frames as u32;
            println!(
                "{width}x{height} q{quality}: {per_frame:?} per frame, {} bytes average",
                bytes / frames as usize
            );
        }
    }
}

/// What the capture thread takes (`next_frame_ref`, the frame where the encoder or the
/// pool holds it) is what `next_frame` copies out: the same frames, numbers and times,
/// live and from a pool, and the frame number is in the pixels.
#[test]
fn the_frame_in_place_is_the_frame_copied_out() {
    for pool in [None, Some(4)] {
        let (mut copied, _) = source(100.0, Pacing::RealTime, pool);
        let (mut in_place, _) = source(100.0, Pacing::RealTime, pool);
        let (mut jpeg, mut scratch) = (Vec::new(), Vec::new());
        for n in 0..12u64 {
            let a = copied.next_frame(&mut jpeg).unwrap();
            let (b, bytes) = in_place.next_frame_ref(&mut scratch).unwrap();
            assert_eq!(a, b, "{pool:?} frame {n}");
            assert_eq!(bytes, &jpeg[..], "{pool:?} frame {n}");
            let (luma, w, h) = gray(bytes);
            let shown = decode_frame_number(&luma, w, h);
            // A pool repeats its frames: their pixels show the number they were made with.
            let want = pool.map_or(n, |p| n % p as u64);
            assert_eq!(shown, Some(want), "{pool:?} frame {n}");
        }
        assert!(scratch.is_empty(), "nothing is put in the scratch space");
    }
}
