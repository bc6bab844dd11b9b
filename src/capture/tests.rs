use super::*;
use crate::clock::WallTime;
use crate::ring::RingLimits;

fn cam() -> Camera {
    test_camera(RingLimits {
        duration: Duration::from_secs(1),
        max_bytes: 1 << 20,
        max_frames: 1000,
    })
}

fn meta(seq: u64) -> FrameMeta {
    FrameMeta {
        seq,
        capture: LslTime::from_nanos(seq as i64 * 10_000_000),
        wall: WallTime::from_nanos(0),
        width: 16,
        height: 16,
        keyframe: true,
    }
}

#[test]
fn gaps_in_frame_numbers_are_counted_as_source_drops() {
    let c = cam();
    let mut step = CaptureStep::default();
    for seq in [0, 1, 2, 5, 6, 10] {
        step.frame(&c, meta(seq), b"jpeg");
    }
    let st = c.status(None, meta(10).capture);
    assert_eq!(st.frames_captured, 6);
    assert_eq!(st.drops.source_gaps, 2 + 3);
    assert_eq!(st.last_frame_number, Some(10));
}

#[test]
fn live_frames_reach_the_writer_only_while_recording_and_until_the_deadline() {
    let c = cam();
    let mut step = CaptureStep::default();
    let (tx, rx) = crate::writer::queue::queue(100, None);
    for seq in 0..10 {
        step.frame(&c, meta(seq), b"jpeg");
    }
    // Buffered frames from 50 ms on, then live ones up to 150 ms.
    let (sent, lost, _) = c.begin_recording(
        7,
        &tx,
        LslTime::from_nanos(50_000_000),
        Some(LslTime::from_nanos(150_000_000)),
    );
    assert_eq!((sent, lost), (5, 0));
    for seq in 10..20 {
        step.frame(&c, meta(seq), b"jpeg");
    }
    assert!(c.end_recording(7));
    step.frame(&c, meta(20), b"jpeg");
    let seqs: Vec<u64> = std::iter::from_fn(|| rx.try_recv())
        .flat_map(|m| match m {
            WriterMsg::Frame(f) => vec![f.meta.seq],
            WriterMsg::Buffered(fs) => fs.iter().map(|f| f.meta.seq).collect(),
            _ => panic!("only frames"),
        })
        .collect();
    assert_eq!(seqs, (5..=15).collect::<Vec<_>>());
}

#[test]
fn a_full_writer_queue_counts_drops_and_never_blocks() {
    let c = cam();
    let mut step = CaptureStep::default();
    let (tx, _rx) = crate::writer::queue::queue(3, None);
    c.begin_recording(1, &tx, LslTime::from_nanos(0), None);
    for seq in 0..10 {
        step.frame(&c, meta(seq), b"jpeg");
    }
    assert_eq!(c.status(None, meta(9).capture).drops.writer_queue_full, 7);
}

/// However much the ring holds, a recording's buffered frames take one message: a
/// burst of starts cannot fill the writer's queue with them.
#[test]
fn buffered_frames_go_as_one_message_up_to_a_known_end() {
    let c = cam();
    let mut step = CaptureStep::default();
    for seq in 0..50 {
        step.frame(&c, meta(seq), b"jpeg");
    }
    let (tx, rx) = crate::writer::queue::queue(0, None);
    for id in 1..=2 {
        // A replayed start whose stop is known: nothing after the stop goes.
        let (sent, lost, _) = c.begin_recording(
            id,
            &tx,
            LslTime::from_nanos(100_000_000),
            Some(LslTime::from_nanos(300_000_000)),
        );
        assert_eq!((sent, lost), (21, 0));
        c.end_recording(id);
    }
    let msgs: Vec<WriterMsg> = std::iter::from_fn(|| rx.try_recv()).collect();
    assert_eq!(msgs.len(), 2);
    for m in msgs {
        let WriterMsg::Buffered(fs) = m else {
            panic!("{m:?}")
        };
        let seqs: Vec<u64> = fs.iter().map(|f| f.meta.seq).collect();
        assert_eq!(seqs, (10..=30).collect::<Vec<_>>());
    }
}

#[test]
fn frame_numbers_start_where_the_last_process_left_off() {
    let mut r = SeqRebase::starting_at(5000);
    assert_eq!([17, 18, 20].map(|s| r.map(s)), [5000, 5001, 5003]);
    let mut zero = SeqRebase::starting_at(0);
    assert_eq!(zero.map(42), 0);
}

#[test]
fn frame_numbers_keep_increasing_across_a_reopened_source() {
    let mut r = SeqRebase::default();
    assert_eq!([5, 6, 8].map(|s| r.map(s)), [5, 6, 8], "gaps stay gaps");
    r.reopened();
    // The new stream counts from 0 again: it follows on.
    assert_eq!([0, 1, 3].map(|s| r.map(s)), [9, 10, 12]);
    r.reopened();
    assert_eq!(r.map(100), 13);
}

#[test]
fn fps_is_measured_from_capture_times() {
    let c = cam();
    let mut step = CaptureStep::default();
    for seq in 0..=150 {
        step.frame(&c, meta(seq), b"jpeg");
    }
    assert!((c.status(None, meta(150).capture).fps - 100.0).abs() < 0.01);
    // Frames stop coming (a camera lost, or sending only corrupt frames): the rate of
    // usable frames falls to 0 once the meter's window and three periods have passed.
    assert!((c.status(None, meta(230).capture).fps - 100.0).abs() < 0.01);
    assert_eq!(c.status(None, meta(300).capture).fps, 0.0);
}

#[test]
fn the_first_frame_after_a_watched_time_tells_the_control_thread_once() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut c = cam();
    c.setup.events = Some(tx);
    let mut step = CaptureStep::default();
    step.frame(&c, meta(0), b"jpeg");
    step.frame(&c, meta(1), b"jpeg");
    // Asked about a time already passed: answered at once, no event needed.
    assert!(c.watch_frame_after(meta(0).capture));
    // Asked about frame 3's time: frames 2 and 3 are not after it, frame 4 is.
    assert!(!c.watch_frame_after(meta(3).capture));
    // A later time asked meanwhile does not push the watch back.
    assert!(!c.watch_frame_after(meta(6).capture));
    step.frame(&c, meta(2), b"jpeg");
    step.frame(&c, meta(3), b"jpeg");
    assert!(
        rx.try_recv().is_err(),
        "no frame after the watched time yet"
    );
    step.frame(&c, meta(4), b"jpeg");
    assert_eq!(
        rx.try_recv(),
        Ok(CameraEvent::FrameAfter {
            camera: c.setup.index
        })
    );
    // Once: the watch is cleared by the event.
    step.frame(&c, meta(5), b"jpeg");
    step.frame(&c, meta(7), b"jpeg");
    assert!(rx.try_recv().is_err(), "one event per watch");
}

/// What a warning of frames lost says of the CPU: busy, or kept from it by other work.
#[test]
fn a_loaded_capture_thread_is_said_to_be_busy_or_kept_from_the_cpu() {
    let load = |busy, wanted, encoders| CpuLoad {
        total: busy,
        busy,
        wanted,
        encoders,
    };
    let l = load(0.97, 0.99, 0);
    assert!(l.overloaded());
    assert_eq!(
        l.said(),
        "its capture thread was busy 97% of the last second"
    );
    let l = load(0.92, 0.95, 3);
    assert_eq!(
        l.said(),
        "its 3 encoding threads were busy 92% of the last second"
    );
    let l = load(0.48, 0.97, 0);
    assert!(l.overloaded());
    assert_eq!(
        l.said(),
        "its capture thread needed a CPU 97% of the last second and had one 48% (this machine is busy with other work)"
    );
    // Waiting for the camera most of the time: not the CPU's doing.
    assert!(!load(0.3, 0.4, 0).overloaded());
}

/// A camera lost for an hour, its source failing to open with the same error: the log
/// has each try while the backoff grows, then a line a minute with the tries since, not
/// one every 5 s; a different error is said at once.
#[test]
fn a_camera_lost_for_an_hour_is_said_once_a_minute() {
    let start = Instant::now();
    let mut log = StillLost::default();
    let mut backoff = Duration::from_millis(100);
    let (mut at, mut lines, mut tries) = (Duration::ZERO, Vec::new(), 0);
    while at < Duration::from_secs(3600) {
        at += backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tries += 1;
        lines.extend(log.failed(start + at, "/dev/video0: No such device", backoff));
    }
    // 0.2, 0.4, 0.8, 1.6 and 3.2 s while the backoff grows, then one a minute.
    assert!(
        (64..=66).contains(&lines.len()),
        "{}: {lines:#?}",
        lines.len()
    );
    assert_eq!(
        lines[0],
        "camera still lost: /dev/video0: No such device; retrying in 200ms"
    );
    assert!(
        lines[6].ends_with("; retrying in 5s (11 more tries since the last line)"),
        "{}",
        lines[6]
    );
    let said: u32 = lines
        .iter()
        .map(|l| {
            1 + l
                .split(" (")
                .nth(1)
                .map_or(0, |n| n.split(' ').next().unwrap().parse::<u32>().unwrap())
        })
        .sum();
    assert!(said <= tries && said + 12 >= tries, "{said} of {tries}");
    // Another error: said at once.
    let other = log.failed(
        start + at + MAX_BACKOFF,
        "/dev/video0: Device or resource busy",
        MAX_BACKOFF,
    );
    assert!(other.unwrap().contains("Device or resource busy"));
    assert_eq!(
        log.failed(
            start + at + 2 * MAX_BACKOFF,
            "/dev/video0: Device or resource busy",
            MAX_BACKOFF
        ),
        None
    );
}

#[test]
fn the_rate_is_shown_from_a_quarter_second_of_frames_and_not_across_an_absence() {
    let mut m = FpsMeter::default();
    let at = |ms: i64| LslTime::from_nanos(ms * 1_000_000);
    // 25 fps (40 ms): nothing until the frames span 0.25 s, then their rate.
    let said: Vec<Option<f64>> = (0..8).map(|k| m.frame(at(40 * k))).collect();
    assert!(said[..7].iter().all(Option::is_none), "{said:?}");
    assert!((said[7].unwrap() - 25.0).abs() < 1e-9, "{said:?}");
    // Each frame of the first second says the rate so far; the full window says it too.
    for k in 8..25 {
        assert!((m.frame(at(40 * k)).unwrap() - 25.0).abs() < 1e-9);
    }
    assert!((m.frame(at(1000)).unwrap() - 25.0).abs() < 1e-9);
    // Then once a second only.
    assert!(m.frame(at(1040)).is_none());
    // Back after 5 s without frames, at 50 fps: its new rate, not one averaged over the
    // absence.
    let back: Vec<Option<f64>> = (0..14).map(|k| m.frame(at(6040 + 20 * k))).collect();
    let first = back.iter().position(Option::is_some).unwrap();
    assert_eq!(first, 13, "{back:?}");
    assert!((back[13].unwrap() - 50.0).abs() < 1e-9, "{back:?}");
}
