//! Control on a simulated clock: every test drives the control thread's steps
//! directly (a message, then `step`), moves time by `advance`, and reads what the
//! writers were told. Nothing sleeps; nothing depends on the machine's speed.

use super::*;
use crate::capture::CaptureStep;
use crate::clock::{SimulatedClocks, WallTime};
use crate::frame::FrameMeta;
use crate::recorder::{State, StopReason, TriggerSource};
use crate::ring::RingLimits;
use crate::status::FileSummary;

struct Sim {
    _tmp: tempfile::TempDir,
    clocks: Arc<SimulatedClocks>,
    control: Control,
    cams: Vec<Arc<Camera>>,
    writers: Vec<Receiver<WriterMsg>>,
    hub: Arc<StatusHub>,
    step: CaptureStep,
}

/// A control with `cameras` cameras (`cam0`, `cam1`, ...) whose writer queues the test
/// reads, a 1 s pre-trigger buffer, on a simulated clock.
fn sim(cameras: usize) -> Sim {
    sim_of(cameras, crate::config::SourceKind::Synthetic)
}

/// [`sim`] with cameras that stand for sources of `kind`.
fn sim_of(cameras: usize, kind: crate::config::SourceKind) -> Sim {
    let tmp = tempfile::tempdir().unwrap();
    let clocks = Arc::new(SimulatedClocks::new(ClockPair {
        lsl: LslTime::from_nanos(1_000_000_000_000),
        wall: WallTime::from_nanos(1_700_000_000_000_000_000),
    }));
    let cams: Vec<Arc<Camera>> = (0..cameras)
        .map(|i| {
            Arc::new(crate::capture::test_camera_of(
                i,
                RingLimits::for_rate(Duration::from_secs(1), 100.0, 4 << 20),
                kind,
            ))
        })
        .collect();
    let (txs, writers): (Vec<_>, Vec<_>) = (0..cameras)
        .map(|_| crossbeam_channel::bounded(1000))
        .unzip();
    let hub = Arc::new(StatusHub::new("r".into(), cams.clone(), Vec::new()));
    let settings = ControlSettings {
        root: tmp.path().to_path_buf(),
        prefix: "rec".into(),
        fsync_interval: None,
        rig: "r".into(),
        host: "h".into(),
        pre_trigger: Duration::from_secs(1),
        audio_track: None,
        min_free: None,
        max_file_size: crate::config::MaxFileSize::Auto,
        root_fs: None,
    };
    let control = Control::new(
        settings,
        cams.clone(),
        txs.into_iter().map(WriterQueue::from).collect(),
        hub.clone(),
        clocks.clone(),
        ControlLinks::default(),
    );
    Sim {
        _tmp: tmp,
        clocks,
        control,
        cams,
        writers,
        hub,
        step: CaptureStep::default(),
    }
}

impl Sim {
    fn now(&self) -> LslTime {
        self.clocks.now().lsl
    }

    /// A command received now; its reply.
    fn command(&mut self, command: Command) -> tokio::sync::oneshot::Receiver<Reply> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.control.message(ControlMsg::Command(Envelope {
            command,
            origin: Origin::new(TriggerSource::Test, "test"),
            received: self.clocks.now(),
            note: None,
            reply: Some(tx),
        }));
        self.control.step();
        rx
    }

    fn advance(&mut self, d: Duration) {
        self.clocks.advance(d);
        self.control.step();
    }

    /// A frame of camera `cam` captured at `at`, delivered now.
    fn frame(&mut self, cam: usize, seq: u64, at: LslTime) {
        let meta = FrameMeta {
            seq,
            capture: at,
            wall: self.clocks.now().wall_at(at),
            width: 16,
            height: 16,
            keyframe: true,
        };
        self.step.frame(&self.cams[cam], meta, b"jpeg");
    }

    /// What camera `cam`'s writer was told since the last look.
    fn told(&self, cam: usize) -> Vec<WriterMsg> {
        self.writers[cam].try_iter().collect()
    }

    /// The writer of `cam` announces recording `id`'s file.
    fn opened(&mut self, cam: usize, id: u64) {
        self.control.writer_event(WriterEvent::Opened {
            camera: cam,
            id,
            path: format!("rec{id}_cam{cam}.mkv"),
            first_frame: 0,
            first_lsl: self.now(),
            size: (64, 48),
        });
        self.control.step();
    }

    /// The writer of `cam` finished recording `id`'s file.
    fn closed(&mut self, cam: usize, id: u64) {
        self.control.writer_event(WriterEvent::Closed {
            camera: cam,
            id,
            summary: FileSummary::default(),
        });
        self.control.step();
    }

    fn state(&self) -> State {
        self.hub.snapshot().state
    }
}

fn closes(msgs: &[WriterMsg]) -> Vec<(u64, Option<LslTime>, StopReason)> {
    msgs.iter()
        .filter_map(|m| match m {
            WriterMsg::Close {
                id, end, reason, ..
            } => Some((*id, *end, reason.clone())),
            _ => None,
        })
        .collect()
}

fn reply(rx: &mut tokio::sync::oneshot::Receiver<Reply>) -> Reply {
    rx.try_recv().expect("answered")
}

#[test]
fn start_n_stops_at_n_seconds() {
    let mut s = sim(1);
    let t0 = s.now();
    let mut rx = s.command(Command::Start { seconds: Some(5.0) });
    assert!(matches!(s.told(0).first(), Some(WriterMsg::Open(spec)) if spec.id == 1));
    assert!(rx.try_recv().is_err(), "the answer waits for the file");
    s.opened(0, 1);
    let r = reply(&mut rx);
    assert!(matches!(r.outcome, Outcome::Done(_)), "{r:?}");
    assert_eq!(r.files, ["rec1_cam0.mkv"]);

    s.advance(Duration::from_millis(4_999));
    assert!(closes(&s.told(0)).is_empty(), "not before 5 s");
    assert_eq!(s.state(), State::Recording);
    s.advance(Duration::from_millis(1));
    assert_ne!(s.state(), State::Recording, "the timer fired at 5 s");
    // The stop waits for frames exposed before it: a frame after it ends the file.
    s.frame(0, 1, t0 + Duration::from_millis(5_010));
    s.control.step();
    assert_eq!(
        closes(&s.told(0)),
        [(1, Some(t0 + Duration::from_secs(5)), StopReason::Timer)]
    );
}

#[test]
fn a_lost_camera_is_reported_and_its_file_ended_by_control() {
    let mut s = sim(2);
    let mut rx = s.command(Command::Start { seconds: None });
    s.opened(0, 1);
    s.opened(1, 1);
    assert_eq!(reply(&mut rx).files.len(), 2);
    let lost_at = s.now();
    s.control.camera_event(CameraEvent::Lost {
        camera: 1,
        why: "no frame for 5 s".into(),
        at: lost_at,
    });
    s.control.step();
    let status = s.hub.snapshot();
    assert_eq!(status.state, State::Recording, "the recording goes on");
    assert_eq!(status.recording.unwrap().cameras_lost, ["cam1"]);
    assert!(
        status
            .warnings
            .iter()
            .any(|w| w.contains("camera cam1 lost during recording 1")),
        "{:?}",
        status.warnings
    );
    assert!(
        s.told(1).iter().any(|m| matches!(
            m,
            WriterMsg::Note {
                id: 1,
                event: NoteKind::CameraLost,
                ..
            }
        )),
        "the lost camera's events file hears of it"
    );
    // A stop: camera 0 delivers a frame after it and closes; the lost camera never
    // will, and control ends its file after the grace period.
    let stop_at = s.now() + Duration::from_millis(500);
    s.advance(Duration::from_millis(500));
    s.command(Command::Stop);
    s.frame(0, 1, stop_at + Duration::from_millis(10));
    s.control.step();
    assert_eq!(closes(&s.told(0)).len(), 1);
    assert!(
        closes(&s.told(1)).is_empty(),
        "waits for frames exposed before the stop"
    );
    s.advance(STOP_GRACE);
    let c = closes(&s.told(1));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, Some(stop_at));
    assert!(matches!(c[0].2, StopReason::Command(_)));
    // Back: the recorder and status say so.
    s.control.camera_event(CameraEvent::Back {
        camera: 1,
        at: s.now(),
        gap: Duration::from_secs(6),
        first: None,
    });
    s.control.step();
    assert!(s.control.recorder.lost_cameras().is_empty());
}

#[test]
fn the_disk_guard_stops_the_recording_and_starts_are_refused() {
    let mut s = sim(1);
    drop(s.command(Command::Start { seconds: None }));
    s.opened(0, 1);
    s.control
        .message(ControlMsg::DiskFull("disk nearly full: 90 MiB free".into()));
    s.control.step();
    assert_eq!(s.state(), State::Idle);
    s.advance(STOP_GRACE);
    let c = closes(&s.told(0));
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].2,
        StopReason::DiskFull("disk nearly full: 90 MiB free".into())
    );
    let status = s.hub.snapshot();
    assert!(
        status
            .warnings
            .iter()
            .any(|w| w.contains("disk nearly full") && w.contains("stopped recording 1")),
        "{:?}",
        status.warnings
    );
    s.closed(0, 1);
    // While free space is below `storage.min_free`, starts and clips are refused and
    // no file is opened.
    s.control.settings.min_free = Some(u64::MAX / 2);
    for command in [
        Command::Start { seconds: None },
        Command::Clip { seconds: 1.0 },
    ] {
        let mut rx = s.command(command);
        let r = reply(&mut rx);
        assert!(matches!(r.outcome, Outcome::Rejected(_)), "{r:?}");
    }
    assert!(s.told(0).is_empty(), "nothing opened");
}

/// Files that cannot be made at all (here the root is a file; on a rig, a disk that
/// turned read-only or ran out of inodes): the start failed, and the answer, the status's
/// last command and the recorder's state all say so, not "started".
#[test]
fn a_start_whose_files_cannot_be_made_is_failed_everywhere() {
    let mut s = sim(1);
    let not_a_folder = s._tmp.path().join("a-file");
    std::fs::write(&not_a_folder, b"x").unwrap();
    s.control.settings.root = not_a_folder;
    let (lsl, events) = crossbeam_channel::unbounded();
    s.control.lsl = Some(lsl);
    for command in [
        Command::Start { seconds: None },
        Command::Clip { seconds: 1.0 },
    ] {
        let mut rx = s.command(command.clone());
        let r = reply(&mut rx);
        let Outcome::Failed(m) = &r.outcome else {
            panic!("{command}: {r:?}")
        };
        assert!(
            m.starts_with("no file was made: cannot create the recording's files: Not a directory"),
            "{m}"
        );
        assert_eq!(s.state(), State::Idle);
        let last = s.hub.view.lock().last_command.clone().unwrap();
        assert_eq!(
            (last.outcome, last.message.as_str()),
            (r.outcome.kind(), m.as_str())
        );
        // The lab's LSL events say it failed too.
        let said: Vec<crate::recorder::OutcomeKind> = events
            .try_iter()
            .filter_map(|e| match e {
                LslMsg::Event {
                    event: Event::Command { outcome, .. },
                    ..
                } => Some(outcome),
                _ => None,
            })
            .collect();
        assert_eq!(said, [r.outcome.kind()], "{command}");
        s.advance(STOP_GRACE);
        assert!(
            !s.told(0).iter().any(|m| matches!(m, WriterMsg::Open(_))),
            "nothing opened"
        );
    }
}

#[test]
fn shutdown_finishes_the_open_files_and_refuses_commands() {
    let mut s = sim(2);
    drop(s.command(Command::Start { seconds: None }));
    s.opened(0, 1);
    s.opened(1, 1);
    s.told(0);
    s.told(1);
    s.control.message(ControlMsg::Shutdown);
    s.control.step();
    let mut rx = s.command(Command::Start { seconds: None });
    assert!(matches!(reply(&mut rx).outcome, Outcome::Rejected(m) if m == "shutting down"));
    s.advance(STOP_GRACE);
    for cam in 0..2 {
        let c = closes(&s.told(cam));
        assert_eq!(c.len(), 1, "camera {cam}");
        assert_eq!(c[0].2, StopReason::Shutdown);
    }
    assert!(!s.control.open.is_empty(), "waits for the writers");
    s.closed(0, 1);
    s.closed(1, 1);
    assert!(s.control.open.is_empty(), "every file finished");
    assert!(s.hub.snapshot().current_files.is_empty());
}

/// A stop ends the recording with the last frame exposed before it, even when that
/// frame reaches us after the stop command did (cameras deliver after exposure).
#[test]
fn a_stop_waits_for_frames_exposed_before_it() {
    let mut s = sim(1);
    let start = s.now();
    for n in 0..50u64 {
        s.frame(
            0,
            n,
            start - Duration::from_millis(500) + Duration::from_millis(10 * n),
        );
    }
    drop(s.command(Command::Start { seconds: None }));
    s.advance(Duration::from_millis(50));
    drop(s.command(Command::Stop));
    let stop_sent = s.now();
    s.advance(Duration::from_millis(50));
    // Open and the buffered frames; no Close yet: frames exposed before the stop may
    // still come.
    let early = s.told(0);
    assert!(matches!(early.first(), Some(WriterMsg::Open(_))));
    assert!(
        matches!(&early[1..], [WriterMsg::Buffered(f)] if f.len() == 50),
        "Open and the 50 buffered frames"
    );
    // Exposed before the stop, delivered 50 ms after it: belongs in the recording.
    s.frame(0, 50, stop_sent - Duration::from_millis(1));
    s.advance(Duration::from_millis(20));
    // The first frame exposed after the stop: the recording is complete, it closes.
    s.frame(0, 51, stop_sent + Duration::from_millis(9));
    s.control.step();
    let msgs = s.told(0);
    let frames: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            WriterMsg::Frame(f) => Some(f.meta.seq),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames,
        vec![50],
        "the late frame is forwarded, the one after the stop is not"
    );
    assert!(
        matches!(msgs.last(), Some(WriterMsg::Close { .. })),
        "{msgs:?}"
    );
}

/// A start that comes while the last recording still waits for its last frames closes
/// that recording first: its writer sees Close before the new Open.
#[test]
fn a_quick_restart_closes_the_previous_file_first() {
    use crate::config::SourceKind;
    // No frame after the stop has come: a sensor's frames exposed before it may still
    // come, and the writer is told to take them from the next recording's; a stream's
    // frames are stamped as they arrive, so none is on its way.
    for (kind, late) in [(SourceKind::Libcamera, true), (SourceKind::Command, false)] {
        let mut s = sim_of(1, kind);
        let t0 = s.now();
        for n in 0..10u64 {
            s.frame(
                0,
                n,
                t0 - Duration::from_millis(100) + Duration::from_millis(10 * n),
            );
        }
        drop(s.command(Command::Start { seconds: None }));
        drop(s.command(Command::Stop));
        drop(s.command(Command::Start { seconds: None }));
        let order: Vec<String> = s
            .told(0)
            .into_iter()
            .filter_map(|m| match m {
                WriterMsg::Open(spec) => Some(format!("open {}", spec.id)),
                WriterMsg::Close { id, late, .. } => Some(format!("close {id} late {late}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            order,
            ["open 1", &format!("close 1 late {late}"), "open 2"],
            "{kind:?}"
        );
    }
}

/// The real thread, end to end over the bus: a start and a stop, then a shutdown
/// that returns once the writer has finished the file.
#[test]
fn the_thread_runs_commands_from_the_bus_and_returns_on_shutdown() {
    let s = sim(1);
    let (bus, inbox) = crate::bus::command_bus();
    let (etx, erx) = crossbeam_channel::unbounded();
    let (_ctx, crx) = crossbeam_channel::unbounded();
    let Sim {
        control,
        writers,
        clocks,
        _tmp,
        ..
    } = s;
    let thread = std::thread::spawn(move || control.run(inbox, erx, crx));
    bus.send(
        Command::Start { seconds: None },
        Origin::new(TriggerSource::Test, "start"),
    )
    .unwrap();
    bus.shutdown();
    // The writer is told to open, then to close once the stop's grace period has
    // passed on the simulated clock (moved on here, in bounded steps).
    let mut told = Vec::new();
    for _ in 0..1000 {
        match writers[0].recv_timeout(Duration::from_millis(10)) {
            Ok(m) => {
                let close = matches!(m, WriterMsg::Close { .. });
                told.push(m);
                if close {
                    break;
                }
            }
            Err(_) => clocks.advance(Duration::from_millis(100)),
        }
    }
    assert!(matches!(told.first(), Some(WriterMsg::Open(_))), "{told:?}");
    assert!(
        matches!(told.last(), Some(WriterMsg::Close { .. })),
        "{told:?}"
    );
    etx.send(WriterEvent::Closed {
        camera: 0,
        id: 1,
        summary: FileSummary::default(),
    })
    .unwrap();
    thread.join().unwrap();
}

/// The loop sleeps a second only while every camera delivers and the status says so: the
/// last camera's first frame, which sends no message, is taken in at the next 100 ms
/// (the status says "buffering"), and only then does the loop sleep long.
#[test]
fn the_loop_sleeps_long_only_once_the_status_says_buffering() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut s = sim(2);
    for c in &s.cams {
        c.stats.running.store(true, Relaxed);
    }
    s.control.step();
    assert_eq!(s.control.wait(), IDLE_WAIT_UNTIL_DELIVERING, "no frame yet");
    let t = s.now();
    s.frame(0, 0, t);
    s.control.step();
    assert_eq!(s.state(), State::Idle, "one camera of two delivers");
    assert_eq!(s.control.wait(), IDLE_WAIT_UNTIL_DELIVERING);
    // The second camera's first frame comes between two looks: the status does not say
    // so yet, and the loop must not sleep a second before it does.
    s.frame(1, 0, t);
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.control.wait(), IDLE_WAIT_UNTIL_DELIVERING);
    s.advance(IDLE_WAIT_UNTIL_DELIVERING);
    assert_eq!(s.state(), State::Buffering);
    assert_eq!(s.control.wait(), IDLE_WAIT);
    // A recording with `start N` wakes the loop at its end, not a second later.
    drop(s.command(Command::Start {
        seconds: Some(0.25),
    }));
    assert_eq!(s.state(), State::Recording);
    assert!(s.control.wait() <= Duration::from_millis(250));
}

/// The power notes recording `id`'s writer of camera 0 was told: (row, time, text).
fn power_notes(msgs: &[WriterMsg], id: u64) -> Vec<(&'static str, LslTime, String)> {
    msgs.iter()
        .filter_map(|m| match m {
            WriterMsg::Note {
                id: i,
                at,
                event: NoteKind::Power(c),
                detail,
                ..
            } if *i == id => Some((c.as_str(), *at, detail.clone())),
            _ => None,
        })
        .collect()
}

impl Sim {
    /// The disk thread's look found the rig's power or heat changed, now; when.
    fn power(&mut self, condition: crate::power::Condition, detail: &str) -> LslTime {
        let at = self.now();
        let change = crate::power::Change {
            condition,
            message: format!("said: {detail}"),
            detail: detail.into(),
        };
        self.control.message(ControlMsg::Power(change, at));
        at
    }

    /// Recording `id` (on both cameras) stopped, `after` passed, its files closed, and
    /// what the writers were told forgotten.
    fn stop_and_close(&mut self, id: u64, after: Duration) {
        self.command(Command::Stop);
        self.advance(after);
        for cam in 0..self.cams.len() {
            self.closed(cam, id);
            self.told(cam);
        }
    }

    /// A start whose files opened on every camera: what camera 0's writer was told.
    fn start_opened(&mut self, id: u64) -> Vec<WriterMsg> {
        self.command(Command::Start { seconds: None });
        let told = self.told(0);
        for cam in 0..self.cams.len() {
            self.opened(cam, id);
        }
        told
    }
}

#[test]
fn a_recording_started_during_an_under_voltage_notes_it_at_its_start() {
    use crate::power::Condition;
    let mut s = sim(2);
    s.start_opened(1);
    let sagged = s.power(Condition::UnderVoltage, "too little");
    assert_eq!(
        power_notes(&s.told(0), 1),
        [("under_voltage", sagged, "too little".to_string())]
    );
    s.stop_and_close(1, Duration::from_secs(10));
    // Recording 2 begins with its 1 s buffer, 9 s after the sag began: a row at its
    // start says so, in every camera's events file.
    let begin = s.now() - Duration::from_secs(1);
    let going_on = (
        "under_voltage",
        begin,
        "too little; going on since 9.0 s before this recording's start".to_string(),
    );
    s.command(Command::Start { seconds: None });
    assert_eq!(power_notes(&s.told(0), 2), std::slice::from_ref(&going_on));
    assert_eq!(power_notes(&s.told(1), 2), [going_on]);
    s.opened(0, 2);
    s.opened(1, 2);
    // Heat that began within its buffer's span is noted at its own time.
    let hot_at = s.power(Condition::Hot, "at 81 °C");
    s.stop_and_close(2, Duration::from_millis(500));
    let notes = power_notes(&s.start_opened(3), 3);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.contains(&("cpu_hot", hot_at, "at 81 °C".to_string())));
    assert!(notes.iter().any(|(r, _, _)| *r == "under_voltage"));
    // Once both are over, a new recording notes neither.
    s.power(Condition::PowerOk, "enough");
    s.power(Condition::Cool, "at 70 °C");
    s.stop_and_close(3, Duration::from_secs(1));
    assert_eq!(power_notes(&s.start_opened(4), 4), []);
    // A clip of the last second notes what went on through it, not what began after it.
    s.stop_and_close(4, Duration::from_secs(1));
    s.power(Condition::UnderVoltage, "too little");
    s.advance(Duration::from_secs(2));
    let later = crate::power::Change {
        condition: Condition::Hot,
        message: "hot".into(),
        detail: "at 82 °C".into(),
    };
    let after_the_clip = s.now() + Duration::from_millis(5);
    s.control.message(ControlMsg::Power(later, after_the_clip));
    s.command(Command::Clip { seconds: 1.0 });
    assert_eq!(
        power_notes(&s.told(0), 5),
        [(
            "under_voltage",
            s.now() - Duration::from_secs(1),
            "too little; going on since 1.0 s before this recording's start".to_string()
        )]
    );
}

/// A sag that began and ended within a recording's buffered span is in its events files at
/// its own times; a change after a recording's stop or a clip's end, while their files
/// are still being finished, is not in them.
#[test]
fn power_changes_within_a_span_are_noted_and_none_after_its_end() {
    use crate::power::Condition;
    let mut s = sim(2);
    let sagged = s.power(Condition::UnderVoltage, "too little");
    s.advance(Duration::from_millis(300));
    let ok = s.power(Condition::PowerOk, "enough");
    s.advance(Duration::from_millis(300));
    // Recording 1's 1 s buffer began 0.4 s before the sag.
    let told = s.start_opened(1);
    let whole = [
        ("under_voltage", sagged, "too little".to_string()),
        ("power_ok", ok, "enough".to_string()),
    ];
    assert_eq!(power_notes(&told, 1), whole);
    assert_eq!(power_notes(&s.told(1), 1), whole);
    // Stopped; heat comes before its files are finished: not in them.
    s.command(Command::Stop);
    s.advance(Duration::from_millis(10));
    let hot = s.power(Condition::Hot, "at 81 °C");
    assert_eq!(power_notes(&s.told(0), 1), []);
    for cam in 0..2 {
        s.closed(cam, 1);
    }
    // A clip of the last half second (after the sag's end): the heat within it; its end,
    // which comes while the clip is written, is not.
    s.advance(Duration::from_millis(400));
    s.command(Command::Clip { seconds: 0.5 });
    s.advance(Duration::from_millis(10));
    s.power(Condition::Cool, "at 70 °C");
    assert_eq!(
        power_notes(&s.told(0), 2),
        [("cpu_hot", hot, "at 81 °C".to_string())]
    );
}
