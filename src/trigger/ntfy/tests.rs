use super::*;

#[test]
fn ids_are_applied_once() {
    let mut s = Seen::default();
    assert!(s.insert("a"));
    assert!(!s.insert("a"));
    for i in 0..5000 {
        s.insert(&i.to_string());
    }
    assert_eq!(s.order.len(), 4096);
    assert!(
        s.insert("a"),
        "the oldest ids are forgotten, the newest kept"
    );
    assert!(!s.insert("4999"));
}

#[test]
fn late_commands_take_the_time_they_were_sent() {
    let arrived = ClockPair {
        lsl: LslTime::from_secs_f64(500.0),
        wall: WallTime::from_nanos(1_000_000_000_500_000_000),
    };
    // Nothing heard from the server yet, or its events agree with this machine's clock
    // (keepalives that came 10 ms after their second began, and 990 ms): the wall clock.
    let mut agreeing = ServerClock::default();
    for (secs_ago, into_second) in [(40.0, 0.01), (20.0, 0.99)] {
        let t = 1_000_000_000.5 - secs_ago - into_second;
        agreeing.observe(LslTime::from_secs_f64(500.0 - secs_ago), t.floor() as i64);
    }
    for clock in [ServerClock::default(), agreeing] {
        let start = Command::Start { seconds: None };
        // On time (within 2 s): the arrival.
        assert_eq!(
            command_time(&start, 999_999_999, arrived, &clock),
            (arrived, None)
        );
        // 10.5 s late (replayed after a reconnection): the start of the second it was
        // sent in.
        let (t, note) = command_time(&start, 999_999_990, arrived, &clock);
        assert_eq!(t.wall.as_nanos(), 999_999_990_000_000_000);
        assert_eq!(t.lsl, LslTime::from_secs_f64(489.5));
        assert!(note.unwrap().contains("whole seconds"));
        // A late stop: the end of its second, so that nothing asked for is cut.
        let (t, _) = command_time(&Command::Stop, 999_999_990, arrived, &clock);
        assert_eq!(t.wall.as_nanos(), 999_999_991_000_000_000);
        assert_eq!(t.lsl, LslTime::from_secs_f64(490.5));
    }
}

/// A server whose clock is `behind` this machine's wall clock (a rig whose clock runs
/// ahead, or one an hour behind before NTP set it): its keepalives say so, and the
/// messages are placed by them, not by the wall clock.
fn server_behind(behind: f64) -> (ServerClock, impl Fn(f64) -> ClockPair) {
    // Wall = LSL + 1e9 s on this machine; the server's wall = ours - behind.
    let pair = |lsl: f64| ClockPair {
        lsl: LslTime::from_secs_f64(lsl),
        wall: WallTime::from_nanos(((lsl + 1e9) * 1e9) as i64),
    };
    let server_secs = move |lsl: f64| (lsl + 1e9 - behind).floor() as i64;
    let mut clock = ServerClock::default();
    // Keepalives 45 s apart, each 3 ms on the way.
    for k in 0..10 {
        let sent = 100.0 + 45.0 * f64::from(k) + 0.137 * f64::from(k);
        clock.observe(LslTime::from_secs_f64(sent + 0.003), server_secs(sent));
    }
    (clock, pair)
}

#[test]
fn a_server_clock_apart_from_ours_neither_cuts_a_stop_nor_takes_live_messages_as_replayed() {
    for behind in [5.0, -3600.0, 3600.0, 1.5] {
        let (clock, pair) = server_behind(behind);
        let server_secs = |lsl: f64| (lsl + 1e9 - behind).floor() as i64;
        // A stop sent at LSL 600.4 arrives 50 ms later: on time, whatever the clocks say.
        let arrived = pair(600.45);
        let (t, note) = command_time(&Command::Stop, server_secs(600.4), arrived, &clock);
        assert_eq!((t, note), (arrived, None), "{behind} s: a live stop");
        // Replayed 30 s later: a start at the start of its second on the server's clock
        // (never after it), a stop at its end (never before it), on our clocks.
        let arrived = pair(630.0);
        let sent = server_secs(600.4);
        let second_began = sent as f64 - 1e9 + behind; // on the LSL clock
        let (t, note) = command_time(&Command::Start { seconds: None }, sent, arrived, &clock);
        assert!(note.is_some(), "{behind} s: replayed");
        let start = t.lsl.as_secs_f64();
        assert!(
            start <= second_began + 1e-6 && start > second_began - 1.5,
            "{behind} s: the start taken at {start}, its second began at {second_began}"
        );
        assert_eq!(
            t.wall.as_nanos() - t.lsl.as_nanos(),
            1_000_000_000 * 1_000_000_000
        );
        let (t, _) = command_time(&Command::Stop, sent, arrived, &clock);
        let stop = t.lsl.as_secs_f64();
        assert!(
            stop >= second_began + 1.0 - 1e-6 && stop < second_began + 1.5,
            "{behind} s: the stop taken at {stop}, its second ended at {}",
            second_began + 1.0
        );
    }
}

/// Where the subscription begins, from the messages the start-up question found.
#[test]
fn the_subscription_begins_after_the_newest_message_sent_before_hindsight_began() {
    let m = |list: &[(&str, i64)]| -> Vec<(String, i64)> {
        list.iter().map(|(id, t)| (id.to_string(), *t)).collect()
    };
    // Sent before (or in the second) hindsight began: after the newest of them, so that
    // the one sent after, while the server could not be reached, is replayed.
    let old_and_new = m(&[("a", 900), ("b", 990), ("c", 1000), ("d", 1001)]);
    assert_eq!(resume(&old_and_new, 800, 1000), Resume::After("c".into()));
    // Nothing before: from where the question began, which replays all of them.
    assert_eq!(resume(&m(&[("d", 1001)]), 940, 1000), Resume::From(940));
    assert_eq!(resume(&[], 940, 1000), Resume::From(940));
    // A question that began after hindsight did (a clock ahead of the server's) cannot
    // tell what came just before: ask again, a minute back in the server's seconds.
    assert_eq!(resume(&[], 1100, 1000), Resume::AskFrom(940));
    assert_eq!(resume(&m(&[("e", 1101)]), 1100, 1000), Resume::AskFrom(940));
}

/// The server's second in which hindsight began: by this machine's wall clock when it
/// agrees with the server's `Date`, else counted back from `Date` on the monotonic clock.
#[test]
fn the_second_hindsight_began_is_the_servers() {
    let at = |lsl: f64, wall: f64| ClockPair {
        lsl: LslTime::from_secs_f64(lsl),
        wall: WallTime::from_nanos((wall * 1e9) as i64),
    };
    let began = at(100.0, 1_000_000_000.3);
    // Answered 30.5 s later (the server could not be reached until then).
    let answered = at(130.5, 1_000_000_030.8);
    let recent = |date: Option<i64>| Recent {
        messages: Vec::new(),
        server_secs: date,
        answered,
    };
    // No `Date`, or one that agrees (the network's delay allowed): the wall clock's second.
    for date in [None, Some(1_000_000_030), Some(1_000_000_031)] {
        assert_eq!(recent(date).second_of(began), 1_000_000_000, "{date:?}");
    }
    // A server two hours ahead of this machine (a rig clock behind: a Pi before NTP):
    // its second 1_000_007_230 began up to 1 s before the answer, so hindsight began in
    // its second 1_000_007_200 or, at the latest, 1_000_007_201.
    let two_hours = 7200;
    let second = recent(Some(1_000_000_030 + two_hours)).second_of(began);
    assert!(
        (1_000_007_200..=1_000_007_201).contains(&second),
        "{second}"
    );
    // A server five minutes behind (a rig clock ahead).
    let second = recent(Some(1_000_000_030 - 300)).second_of(began);
    assert!((999_999_700..=999_999_701).contains(&second), "{second}");
}

#[test]
fn credentials_come_from_the_config_a_file_or_the_environment() {
    use crate::config::NtfyConfig;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("token");
    std::fs::write(&file, "tk_fromfile\n").unwrap();
    let none = NtfyConfig {
        token_env: Some("HINDSIGHT_TEST_UNSET_VARIABLE".into()),
        password_env: None,
        ..NtfyConfig::default()
    };
    assert_eq!(resolve_auth(&none).unwrap(), None);
    let literal = NtfyConfig {
        token: Some("tk_literal".into()),
        token_file: Some(file.clone()),
        ..none.clone()
    };
    assert_eq!(
        resolve_auth(&literal).unwrap(),
        Some(Auth::Bearer("tk_literal".into()))
    );
    let from_file = NtfyConfig {
        token_file: Some(file.clone()),
        ..none.clone()
    };
    assert_eq!(
        resolve_auth(&from_file).unwrap(),
        Some(Auth::Bearer("tk_fromfile".into()))
    );
    std::env::set_var("HINDSIGHT_TEST_TOKEN_VAR", "tk_fromenv");
    let from_env = NtfyConfig {
        token_env: Some("HINDSIGHT_TEST_TOKEN_VAR".into()),
        ..none.clone()
    };
    assert_eq!(
        resolve_auth(&from_env).unwrap(),
        Some(Auth::Bearer("tk_fromenv".into()))
    );
    let missing = NtfyConfig {
        token_file: Some(tmp.path().join("nope")),
        ..none.clone()
    };
    let e = resolve_auth(&missing).unwrap_err().to_string();
    assert!(
        e.contains("trigger.ntfy.token_file") && e.contains("nope"),
        "{e}"
    );
    let user = NtfyConfig {
        user: Some("alice".into()),
        password_file: Some(file),
        ..none.clone()
    };
    assert_eq!(
        resolve_auth(&user).unwrap(),
        Some(Auth::Basic {
            user: "alice".into(),
            password: "tk_fromfile".into()
        })
    );
    let no_password = NtfyConfig {
        user: Some("alice".into()),
        ..none
    };
    assert!(resolve_auth(&no_password)
        .unwrap_err()
        .to_string()
        .contains("no password"));
}

#[test]
fn secrets_stay_out_of_logs() {
    let a = Auth::Bearer("tk_secret".into());
    assert!(!format!("{a:?}").contains("secret"));
    let b = Auth::Basic {
        user: "alice".into(),
        password: "hunter2".into(),
    };
    assert!(!format!("{b:?}").contains("hunter2"));
}

#[test]
fn the_json_stream_is_cut_into_lines_whatever_the_chunks() {
    let mut lines = Lines::default();
    lines.push(br#"{"id":"a","event":"open"}"#);
    assert!(lines.next_line().is_none(), "no newline yet");
    lines.push(b"\n{\"id\":\"b\",\"ev");
    assert_eq!(
        lines.next_line().unwrap().unwrap(),
        r#"{"id":"a","event":"open"}"#
    );
    assert!(lines.next_line().is_none());
    lines.push(b"ent\":\"keepalive\"}\n\n{\"id\":\"c\"}\n");
    assert_eq!(
        lines.next_line().unwrap().unwrap(),
        r#"{"id":"b","event":"keepalive"}"#
    );
    assert_eq!(lines.next_line().unwrap().unwrap(), "");
    assert_eq!(lines.next_line().unwrap().unwrap(), r#"{"id":"c"}"#);
    assert!(lines.next_line().is_none());
}

#[test]
fn a_stream_that_is_not_ntfys_is_refused_not_buffered_forever() {
    let mut lines = Lines::default();
    lines.push(&vec![b'x'; MAX_LINE + 1]);
    let e = lines.next_line().unwrap().unwrap_err();
    assert!(e.contains("not an ntfy stream"), "{e}");
    let mut lines = Lines::default();
    lines.push(b"\xff\xfe\n");
    assert!(lines.next_line().unwrap().is_err());
}

#[test]
fn replies_close_together_go_as_one_message_and_messages_are_spaced() {
    let t0 = tokio::time::Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut q = ReplyQueue::default();
    assert_eq!(q.due(), None, "nothing to say");
    q.push(at(0), "stopped recording 4 after 3.0 s".into());
    assert_eq!(q.due(), Some(at(1000)), "gathered for a second");
    q.push(
        at(300),
        "recording finished: a.mkv, 300 frames, 0 missing".into(),
    );
    let (text, n) = q.message();
    assert_eq!(n, 2);
    assert_eq!(
        text,
        "stopped recording 4 after 3.0 s\nrecording finished: a.mkv, 300 frames, 0 missing"
    );
    q.sent(n, at(1000));
    assert_eq!(q.due(), None);
    // The next, a second later, waits for the spacing after the last message.
    q.push(at(2000), "recording 5 started".into());
    assert_eq!(q.due(), Some(at(6000)));
    // Long after the last message: gathered only.
    q.sent(1, at(6000));
    q.push(at(20_000), "recording 6 started".into());
    assert_eq!(q.due(), Some(at(21_000)));
}

#[test]
fn a_reply_the_server_refuses_for_now_is_tried_again_and_long_ones_are_split() {
    let t0 = tokio::time::Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut q = ReplyQueue::default();
    // 3 lines of 1500 bytes: two fit in a message of at most 4000.
    for c in ['a', 'b', 'c'] {
        q.push(at(0), c.to_string().repeat(1500));
    }
    let (text, n) = q.message();
    assert_eq!((text.len(), n), (3001, 2));
    // 429: nothing is dropped, tried again after the spacing.
    assert_eq!(q.failed(at(1)), 0);
    assert_eq!(q.lines.len(), 3);
    assert_eq!(q.due(), Some(at(6)));
    q.sent(n, at(6));
    let (text, n) = q.message();
    assert_eq!((text.len(), n), (1500, 1));
    // A single line too long for a message is cut, on a character boundary.
    let mut q = ReplyQueue::default();
    q.push(at(0), "é".repeat(3000));
    let (text, n) = q.message();
    assert_eq!((text.len(), n), (4000, 1));
    // Given up after 10 minutes unpublished.
    q.push(at(300), "later".into());
    assert_eq!(q.failed(at(601)), 1);
    assert_eq!(q.lines.len(), 1);
}

/// An answer has its place from when its command was read: the "finished" of the files
/// the command made, which can come before the answer does (a start's waits for its
/// files), waits behind it.
#[test]
fn an_answer_keeps_its_place_before_the_notices_that_came_while_it_was_awaited() {
    let t0 = tokio::time::Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut q = ReplyQueue::default();
    q.push(at(0), "camera gone lost".into());
    q.take(at(10), Line::Hold(0)); // start
    q.take(at(300), Line::Hold(1)); // stop
    q.push(at(400), "recording finished: a.mkv".into());
    // What came before the first place goes; nothing after it.
    assert_eq!(q.message(), ("camera gone lost".into(), 1));
    q.sent(1, at(1000));
    assert_eq!(q.due(), None, "the start's answer is not in yet");
    q.take(at(1500), Line::Fill(1, vec!["stopped recording 1".into()]));
    assert_eq!(q.due(), None, "nor is it now: the stop's came first");
    q.take(at(1510), Line::Fill(0, vec!["recording 1 started".into()]));
    assert_eq!(
        q.due(),
        Some(at(6000)),
        "the spacing after the last message"
    );
    assert_eq!(
        q.message(),
        (
            "recording 1 started\nstopped recording 1\nrecording finished: a.mkv".into(),
            3
        )
    );
    // A place given up (10 minutes unpublished) takes its answer at the end; one still
    // held when hindsight stops is given up, and what came after it goes.
    let mut q = ReplyQueue::default();
    q.take(at(0), Line::Hold(7));
    q.push(at(1), "later".into());
    q.take(at(2), Line::Hold(8));
    q.lines.pop_front();
    q.take(at(3), Line::Fill(7, vec!["answer".into()]));
    assert_eq!(q.message(), ("later".into(), 1));
    q.unhold();
    assert_eq!(q.message(), ("later\nanswer".into(), 2));
}
