use super::*;

fn t(s: f64) -> LslTime {
    LslTime::from_secs_f64(s)
}

fn api() -> Origin {
    Origin::new(TriggerSource::Api, "test")
}

fn buffering() -> Recorder {
    let mut r = Recorder::new(Duration::from_secs(20));
    r.set_buffering(true);
    r
}

#[test]
fn states_follow_buffering_and_recording() {
    let mut r = Recorder::new(Duration::from_secs(20));
    assert_eq!(r.state(), State::Idle);
    r.set_buffering(true);
    assert_eq!(r.state(), State::Buffering);
    r.handle(&Command::Start { seconds: None }, &api(), t(100.0));
    assert_eq!(r.state(), State::Recording);
    r.handle(&Command::Stop, &api(), t(101.0));
    assert_eq!(r.state(), State::Buffering);
    assert_eq!(
        [State::Idle, State::Recording, State::Buffering].map(State::lsl_code),
        [0, 1, 2]
    );
}

#[test]
fn start_records_the_buffer_then_stop_ends_it() {
    let mut r = buffering();
    let d = r.handle(&Command::Start { seconds: None }, &api(), t(100.0));
    assert_eq!(
        d.actions,
        vec![Action::StartRecording {
            id: 1,
            trigger: t(100.0),
            pre_trigger: Duration::from_secs(20),
            until: None,
            origin: api(),
        }]
    );
    assert!(matches!(d.outcome, Outcome::Done(_)));
    let d = r.handle(&Command::Stop, &api(), t(102.5));
    assert_eq!(
        d.actions,
        vec![Action::StopRecording {
            id: 1,
            at: t(102.5),
            reason: StopReason::Command(api()),
        }]
    );
}

/// A start replayed together with its stop takes no frame after the stop; the stop
/// ends it at its own time.
#[test]
fn a_start_whose_stop_is_known_records_exactly_that_span() {
    let mut r = buffering();
    let d = r.handle_until(
        &Command::Start { seconds: None },
        &api(),
        t(10.0),
        Some(t(11.2)),
    );
    assert!(matches!(
        &d.actions[..],
        [Action::StartRecording { trigger, until: Some(u), .. }] if *trigger == t(10.0) && *u == t(11.2)
    ));
    let d = r.handle(&Command::Stop, &api(), t(11.2));
    assert!(matches!(
        &d.actions[..],
        [Action::StopRecording { at, .. }] if *at == t(11.2)
    ));
    // `start N` with a known stop before its N seconds: the earlier of the two.
    let d = r.handle_until(
        &Command::Start {
            seconds: Some(60.0),
        },
        &api(),
        t(20.0),
        Some(t(21.0)),
    );
    assert!(matches!(
        &d.actions[..],
        [Action::StartRecording { until: Some(u), .. }] if *u == t(21.0)
    ));
}

#[test]
fn start_while_recording_and_stop_while_not_are_no_ops() {
    let mut r = buffering();
    let d = r.handle(&Command::Stop, &api(), t(1.0));
    assert!(d.actions.is_empty());
    assert!(matches!(d.outcome, Outcome::NoOp(_)));
    r.handle(&Command::Start { seconds: None }, &api(), t(2.0));
    let d = r.handle(&Command::Start { seconds: Some(5.0) }, &api(), t(3.0));
    assert!(d.actions.is_empty());
    match d.outcome {
        Outcome::NoOp(m) => assert_eq!(
            m,
            "already recording (recording 1, for 1.0 s; it goes on until a stop, not for \
             the 5 s asked)"
        ),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        r.recording().unwrap().id,
        1,
        "the running recording is untouched"
    );
    assert_eq!(r.recording().unwrap().until, None);
    // A `start N` with an N that can never be is refused as such, and the recording
    // goes on untouched.
    for bad in [-5.0, 0.0, f64::NAN] {
        let d = r.handle(&Command::Start { seconds: Some(bad) }, &api(), t(4.0));
        assert!(d.actions.is_empty());
        match d.outcome {
            Outcome::Rejected(m) => assert!(m.starts_with(&format!("start {bad}: ")), "{m}"),
            o => panic!("{o:?}"),
        }
        assert_eq!(r.recording().unwrap().id, 1);
        assert_eq!(r.recording().unwrap().until, None);
    }
}

/// A plain `start` during a `start N` leaves the timer as it is, and says so: the
/// recording still stops by itself, and the answer says when.
#[test]
fn start_during_start_n_says_when_the_recording_stops() {
    let mut r = buffering();
    r.handle(&Command::Start { seconds: Some(3.0) }, &api(), t(10.0));
    let d = r.handle(&Command::Start { seconds: None }, &api(), t(11.0));
    assert!(d.actions.is_empty());
    match d.outcome {
        Outcome::NoOp(m) => assert_eq!(
            m,
            "already recording (recording 1, for 1.0 s; it stops by itself in 2.0 s)"
        ),
        o => panic!("{o:?}"),
    }
    assert_eq!(r.next_deadline(), Some(t(13.0)), "the timer is untouched");
    // Without a timer, nothing is said of an end.
    let mut r = buffering();
    r.handle(&Command::Start { seconds: None }, &api(), t(10.0));
    match r
        .handle(&Command::Start { seconds: None }, &api(), t(11.0))
        .outcome
    {
        Outcome::NoOp(m) => assert_eq!(m, "already recording (recording 1, for 1.0 s)"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn start_n_stops_by_itself_at_exactly_n_seconds() {
    let mut r = buffering();
    r.handle(&Command::Start { seconds: Some(2.0) }, &api(), t(10.0));
    assert_eq!(r.next_deadline(), Some(t(12.0)));
    assert!(r.tick(t(11.999)).is_none());
    let d = r.tick(t(12.3)).expect("due");
    assert_eq!(
        d.actions,
        vec![Action::StopRecording {
            id: 1,
            at: t(12.0),
            reason: StopReason::Timer
        }]
    );
    assert_eq!(r.state(), State::Buffering);
    assert!(r.tick(t(13.0)).is_none());
}

#[test]
fn stop_before_the_timer_cancels_it() {
    let mut r = buffering();
    r.handle(
        &Command::Start {
            seconds: Some(60.0),
        },
        &api(),
        t(0.0),
    );
    r.handle(&Command::Stop, &api(), t(1.0));
    assert_eq!(r.next_deadline(), None);
    assert!(r.tick(t(61.0)).is_none());
}

#[test]
fn clip_takes_the_last_n_seconds_and_keeps_buffering() {
    let mut r = buffering();
    let d = r.handle(&Command::Clip { seconds: 5.0 }, &api(), t(100.0));
    assert_eq!(
        d.actions,
        vec![Action::Clip {
            id: 1,
            from: t(95.0),
            to: t(100.0),
            origin: api()
        }]
    );
    assert_eq!(r.state(), State::Buffering);
    // Longer than the buffer: clipped to what it holds, and said so.
    let d = r.handle(&Command::Clip { seconds: 60.0 }, &api(), t(200.0));
    assert!(matches!(&d.actions[0], Action::Clip { from, .. } if *from == t(180.0)));
    assert!(
        d.outcome.message().contains("holds 20.0 s"),
        "{:?}",
        d.outcome
    );
    assert_eq!(
        d.outcome.message(),
        "recording 2: a clip of the last 20.0 s (asked for 60 s; the buffer holds 20.0 s)"
    );
    // Shorter than a tenth: said as asked, not as "0.0 s".
    let d = r.handle(&Command::Clip { seconds: 0.01 }, &api(), t(300.0));
    assert_eq!(
        d.outcome.message(),
        "recording 3: a clip of the last 0.01 s"
    );
}

/// A clip while recording is a no-op (the recording holds those frames); without a
/// pre-trigger buffer a clip can never be made on this rig, and is refused saying why.
#[test]
fn clip_while_recording_is_a_no_op_and_without_a_buffer_refused() {
    let mut r = buffering();
    r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
    let d = r.handle(&Command::Clip { seconds: 1.0 }, &api(), t(2.0));
    assert!(d.actions.is_empty() && matches!(d.outcome, Outcome::NoOp(_)));
    let mut r = Recorder::new(Duration::ZERO);
    r.set_buffering(true);
    assert_eq!(r.state(), State::Idle);
    let d = r.handle(&Command::Clip { seconds: 1.0 }, &api(), t(2.0));
    assert!(d.actions.is_empty());
    match d.outcome {
        Outcome::Rejected(m) => assert!(m.contains("buffer.enabled: false"), "{m}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(r.state(), State::Idle);
}

#[test]
fn start_without_buffer_records_from_the_trigger() {
    let mut r = Recorder::new(Duration::ZERO);
    let d = r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
    assert!(matches!(
        &d.actions[0],
        Action::StartRecording { pre_trigger, .. } if pre_trigger.is_zero()
    ));
    assert_eq!(r.state(), State::Recording);
    r.handle(&Command::Stop, &api(), t(2.0));
    assert_eq!(r.state(), State::Idle);
}

#[test]
fn bad_durations_are_rejected_without_changing_state() {
    let mut r = buffering();
    for s in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
        let d = r.handle(&Command::Start { seconds: Some(s) }, &api(), t(1.0));
        assert!(matches!(d.outcome, Outcome::Rejected(_)), "start {s}");
        let d = r.handle(&Command::Clip { seconds: s }, &api(), t(1.0));
        assert!(matches!(d.outcome, Outcome::Rejected(_)), "clip {s}");
    }
    assert_eq!(r.state(), State::Buffering);
}

#[test]
fn marks_go_to_the_running_recording() {
    let mut r = buffering();
    let d = r.handle(
        &Command::Mark {
            text: "  trial 1 ".into(),
        },
        &api(),
        t(1.0),
    );
    assert!(
        matches!(&d.actions[0], Action::Mark { recording: None, text, .. } if text == "trial 1")
    );
    r.handle(&Command::Start { seconds: None }, &api(), t(2.0));
    let d = r.handle(
        &Command::Mark {
            text: "reward".into(),
        },
        &api(),
        t(3.0),
    );
    assert!(matches!(&d.actions[0], Action::Mark { recording: Some(1), at, .. } if *at == t(3.0)));
    let d = r.handle(&Command::Mark { text: "   ".into() }, &api(), t(3.0));
    assert!(matches!(d.outcome, Outcome::Rejected(_)));
}

/// A mark keeps its line breaks and tabs (files and LSL carry them); a control character
/// no file keeps as written (a NUL cuts a Matroska chapter's title) is refused with where
/// it is, and the recording goes on. Log lines and answers show the mark on one line.
#[test]
fn a_mark_keeps_line_breaks_and_is_refused_with_a_nul_or_an_escape() {
    let mut r = buffering();
    r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
    let two_lines = Command::Mark {
        text: "left\r\nright\tside".into(),
    };
    let d = r.handle(&two_lines, &api(), t(2.0));
    assert!(
        matches!(&d.actions[0], Action::Mark { text, recording: Some(1), .. } if text == "left\r\nright\tside")
    );
    assert_eq!(
        d.outcome,
        Outcome::Done("marked \"left\\r\\nright\\tside\" in recording 1".into())
    );
    assert_eq!(two_lines.to_string(), "mark left\\r\\nright\\tside");
    for (text, want) in [
        ("trial\u{0} 3", "U+0000 at character 6"),
        ("\u{1b}[2Jtrial", "U+001B at character 1"),
        ("ok \u{85} go", "U+0085 at character 4"),
    ] {
        let d = r.handle(&Command::Mark { text: text.into() }, &api(), t(3.0));
        assert!(d.actions.is_empty(), "{text:?}");
        match &d.outcome {
            Outcome::Rejected(m) => assert!(m.contains(want), "{text:?}: {m}"),
            o => panic!("{text:?}: {o:?}"),
        }
    }
    assert_eq!(r.state(), State::Recording);
}

#[test]
fn ids_are_unique_across_recordings_and_clips() {
    let mut r = buffering();
    let mut ids = Vec::new();
    for i in 0..5 {
        let now = t(i as f64 * 10.0);
        for a in r
            .handle(&Command::Start { seconds: None }, &api(), now)
            .actions
        {
            if let Action::StartRecording { id, .. } = a {
                ids.push(id)
            }
        }
        r.handle(&Command::Stop, &api(), now + Duration::from_secs(1));
        for a in r
            .handle(
                &Command::Clip { seconds: 1.0 },
                &api(),
                now + Duration::from_secs(2),
            )
            .actions
        {
            if let Action::Clip { id, .. } = a {
                ids.push(id)
            }
        }
    }
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 10);
}

#[test]
fn a_failed_recording_returns_to_buffering_once() {
    let mut r = buffering();
    r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
    assert!(
        r.recording_failed(99, "x", t(2.0)).is_none(),
        "other ids ignored"
    );
    let d = r.recording_failed(1, "disk full", t(2.0)).unwrap();
    assert!(matches!(
        &d.actions[0],
        Action::StopRecording {
            reason: StopReason::WriteError(_),
            ..
        }
    ));
    assert_eq!(r.state(), State::Buffering);
    assert!(r.recording_failed(1, "disk full", t(2.0)).is_none());
}

#[test]
fn the_disk_guard_stops_a_recording_with_its_reason() {
    let mut r = buffering();
    assert!(
        r.disk_full("disk nearly full", t(1.0)).is_none(),
        "nothing to stop"
    );
    r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
    let d = r.disk_full("disk nearly full", t(3.0)).unwrap();
    assert_eq!(
        d.actions,
        vec![Action::StopRecording {
            id: 1,
            at: t(3.0),
            reason: StopReason::DiskFull("disk nearly full".into()),
        }]
    );
    assert!(d.outcome.message().contains("stopped recording 1"));
    assert_eq!(r.state(), State::Buffering);
}

#[test]
fn a_lost_camera_does_not_stop_the_recording_and_is_said() {
    let mut r = buffering();
    r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
    r.camera_lost(1);
    assert_eq!(r.state(), State::Recording);
    assert_eq!(r.lost_cameras(), vec![1]);
    let d = r.handle(&Command::Status, &api(), t(2.0));
    assert!(d.outcome.message().contains("1 camera lost"), "{d:?}");
    r.camera_back(1);
    assert!(r.lost_cameras().is_empty());
    let d = r.handle(&Command::Status, &api(), t(3.0));
    assert!(!d.outcome.message().contains("lost"), "{d:?}");
}

#[test]
fn status_describes_the_state() {
    let mut r = buffering();
    assert_eq!(
        r.handle(&Command::Status, &api(), t(0.0)).outcome.message(),
        "buffering"
    );
    r.handle(
        &Command::Start {
            seconds: Some(10.0),
        },
        &api(),
        t(0.0),
    );
    let m = r
        .handle(&Command::Status, &api(), t(4.0))
        .outcome
        .message()
        .to_string();
    assert!(
        m.contains("4.0 s so far") && m.contains("6.0 s left"),
        "{m}"
    );
}

#[test]
fn bad_seconds_are_refused_and_repeated_short() {
    let mut r = buffering();
    for (command, said) in [
        (
            Command::Start {
                seconds: Some(1e308),
            },
            "start 1e308",
        ),
        (Command::Clip { seconds: 1e308 }, "clip 1e308"),
        (
            Command::Start {
                seconds: Some(-1.0),
            },
            "start -1",
        ),
        (Command::Clip { seconds: f64::NAN }, "clip NaN"),
    ] {
        assert_eq!(command.to_string(), said);
        let d = r.handle(&command, &api(), t(1.0));
        assert!(d.actions.is_empty(), "{command}");
        assert_eq!(
            d.outcome,
            Outcome::Rejected(format!(
                "{said}: seconds must be more than 0 and at most {MAX_COMMAND_SECONDS}"
            ))
        );
    }
    assert_eq!(
        Command::Start { seconds: Some(0.5) }.to_string(),
        "start 0.5"
    );
}
