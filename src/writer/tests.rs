//! The writer thread on a simulated clock: its waits are measured on the clock it is
//! given, so a test moves time instead of sleeping through it.

use super::*;
use crate::clock::{ClockPair, SimulatedClocks};
use crate::frame::FrameMeta;
use crate::recorder::TriggerSource;

/// A stop's close waits for the audio track's end, at most `AUDIO_END_WAIT` of the
/// writer's clock; then the file ends without it, finished and playable.
#[test]
fn a_close_waits_for_the_audio_end_only_as_long_as_its_clock_says() {
    let tmp = tempfile::tempdir().unwrap();
    let start = ClockPair::now();
    let clocks = Arc::new(SimulatedClocks::new(start));
    let cam = WriterCamera {
        index: 0,
        name: "cam0".into(),
        stats: Arc::default(),
        drops: Arc::new(DropCounts::default),
    };
    let (etx, erx) = crossbeam_channel::unbounded();
    let h = spawn_writer(cam, etx, 64, clocks.clone());
    let t0 = start.lsl;
    h.tx.send(WriterMsg::Open(Box::new(OpenSpec {
        id: 1,
        kind: FileKind::Recording,
        paths: files::RecordingPaths::new(tmp.path(), "rec", "cam0"),
        trigger: t0,
        trigger_wall: start.wall,
        pre_trigger: Duration::ZERO,
        origin: Origin::new(TriggerSource::Test, "start"),
        camera: CameraTags::default(),
        fsync_interval: None,
        audio: Some(AudioTrackSpec {
            rate: 8_000,
            channels: 1,
        }),
    })))
    .unwrap();
    let jpeg = crate::source::synthetic::PatternEncoder::new(64, 48, 80)
        .unwrap()
        .encode(0)
        .unwrap()
        .to_vec();
    for n in 0..3u64 {
        let capture = t0 + Duration::from_millis(10 * n);
        h.tx.send(WriterMsg::Frame(Frame {
            meta: FrameMeta {
                seq: n,
                capture,
                wall: start.wall_at(capture),
                width: 64,
                height: 48,
                keyframe: true,
            },
            data: Bytes::from(jpeg.clone()),
        }))
        .unwrap();
    }
    h.tx.send(WriterMsg::Close {
        id: 1,
        end: Some(t0 + Duration::from_millis(30)),
        reason: StopReason::Timer,
    })
    .unwrap();
    let closed = |wait: Duration| {
        let until = std::time::Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match erx.recv_timeout(left) {
                Ok(WriterEvent::Closed { summary, .. }) => return Some(summary),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    // The writer's loop comes round every 250 ms of real time; its clock has not moved.
    assert!(
        closed(Duration::from_millis(800)).is_none(),
        "closed before the audio's end or its wait was over"
    );
    clocks.advance(AUDIO_END_WAIT);
    // Well before AUDIO_END_WAIT of real time has passed: the writer's clock, not the
    // machine's, ended the wait.
    let summary = closed(Duration::from_secs(3)).expect("closed once the wait was over");
    assert_eq!(summary.frames, 3);
    assert_eq!(summary.error, None);
    drop(h.tx);
    h.join.join().unwrap();
}
