//! The ntfy trigger against the real ntfy server (the Go server from Debian, run here on
//! loopback with its own cache and access control): start/stop from messages, resuming
//! after the server goes away, many commands in a row, protected topics, messages that are
//! not commands, rig addresses, and dead connections.

mod common;

use std::time::Duration;

use common::ntfy::Ntfy;
use common::*;
use serde_json::Value;

fn config(server: &str, topic: &str, extra: &str) -> String {
    format!(
        "rig: rig-a\nbuffer:\n  duration: 1\n  max_bytes: 32MiB\ncameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: 30\nlsl:\n  enabled: false\ntrigger:\n  ntfy:\n    enabled: true\n    server: {server}\n    topic: {topic}\n    keepalive_interval: 5\n{extra}"
    )
}

fn ntfy_status(h: &mut Hindsight) -> Value {
    h.status()["ntfy"].clone()
}

fn wait_connected(h: &mut Hindsight) {
    h.wait_until("ntfy is connected", Duration::from_secs(30), |h| {
        ntfy_status(h)["connected"] == true
    });
}

/// hindsight on `cfg`, once ntfy is connected and `buffered` seconds are in the buffer.
fn connected(cfg: &str, buffered: f64) -> Hindsight {
    let mut h = Hindsight::start(cfg);
    wait_connected(&mut h);
    h.wait_buffered(buffered);
    h
}

/// A recording started and stopped by the messages `[start, stop]` on `topic`, `hold`
/// apart, once each is seen carried out; returns when its files are closed.
fn a_take(server: &Ntfy, h: &mut Hindsight, topic: &str, [start, stop]: [&str; 2], hold: Duration) {
    server.publish(topic, start);
    h.wait_until("recording", Duration::from_secs(10), |h| {
        h.status()["state"] == "recording"
    });
    std::thread::sleep(hold);
    server.publish(topic, stop);
    h.wait_until("stopped", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `cfg` with a second camera that is lost (its program exits): a start's answer waits
/// 1.5 s for its file.
fn with_a_lost_camera(cfg: String) -> String {
    cfg.replace(
        "lsl:\n",
        "  - name: gone\n    source: command\n    command: \"sh -c 'exit 1'\"\n    \
         resolution: {width: 160, height: 120}\n    fps: 30\nlsl:\n",
    )
}

/// Waits (10 s at most) until ntfy's state says it is waiting to try the server again.
fn wait_retrying(h: &mut Hindsight, what: &str) {
    h.wait_until(what, Duration::from_secs(10), |h| {
        ntfy_status(h)["state"]
            .as_str()
            .unwrap()
            .contains("retrying in")
    });
}

/// hindsight on `topic` of `server` (with `extra` ntfy settings) and a second camera that
/// is lost, once ntfy is connected: a start's answer waits 1.5 s for the lost one's file.
fn connected_with_a_lost_camera(server: &Ntfy, topic: &str, extra: &str) -> Hindsight {
    connected(
        &with_a_lost_camera(config(&server.url(), topic, extra)),
        0.9,
    )
}

/// Waits until `n` commands are applied and the recording they made is finished; its
/// one file.
fn the_file_once_applied(h: &mut Hindsight, n: u64) -> std::path::PathBuf {
    h.wait_until(
        &format!("{n} commands applied"),
        Duration::from_secs(20),
        |h| ntfy_status(h)["commands_applied"] == n,
    );
    h.wait_until("stopped", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn start_and_stop_recording_from_ntfy_messages() {
    let _g = serial();
    let server = Ntfy::start(false);
    // Sent before hindsight started: never applied.
    server.publish("lab1", "Start Recording");
    std::thread::sleep(Duration::from_millis(1100));
    let cfg = config(&server.url(), "lab1", "    reply_topic: lab1-replies\n");
    let mut h = connected(&cfg, 0.9);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        h.status()["state"],
        "buffering",
        "the old message was not applied"
    );

    a_take(
        &server,
        &mut h,
        "lab1",
        ["Start Recording", "Stop Recording"],
        Duration::from_secs(1),
    );
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let rows = read_sidecar(&files[0]);
    let pre = rows.iter().filter(|r| r.pre_trigger).count();
    assert!(
        (28..=31).contains(&pre),
        "{pre} pre-trigger frames (1 s at 30 fps)"
    );
    assert!(rows.len() > pre + 20, "live frames follow");
    let t = tags(&files[0]);
    assert_eq!(t["TRIGGER_SOURCE"], "ntfy");
    assert_eq!(t["TRIGGER_MESSAGE"], "Start Recording");
    mkvmerge_clean(&files[0]);

    // The phone sees what happened.
    h.wait_until("the replies are published", Duration::from_secs(10), |_| {
        server.messages("lab1-replies", None).len() >= 3
    });
    let replies = server.messages("lab1-replies", None);
    assert!(
        replies[0].starts_with("recording 1 started (1.0 s before trigger)"),
        "{replies:?}"
    );
    assert!(replies[0].contains(files[0].to_str().unwrap()));
    assert!(replies[1].starts_with("stopped recording 1"), "{replies:?}");
    assert!(
        replies[2].starts_with("recording finished") && replies[2].contains("0 missing"),
        "{replies:?}"
    );
    let s = ntfy_status(&mut h);
    assert_eq!(s["last_message"], "Stop Recording");
    assert_eq!(s["commands_applied"], 2);
    // `hindsight ctl status` says it too.
    let out = h.ctl(&["status"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "\nntfy: connected to {}/lab1, last message \"Stop Recording\", 2 commands applied\n",
            server.url()
        )),
        "{said}"
    );
    assert!(h.terminate().success());
}

/// `status` from a phone before a session: the state, and whether every camera, the
/// microphone and the disk are ready: a camera that is not there is named, with why.
#[test]
fn status_from_a_phone_says_which_camera_is_not_ready_and_why() {
    let _g = serial();
    let server = Ntfy::start(false);
    let cfg = config(&server.url(), "lab10", "    reply_topic: lab10-replies\n").replace(
        "lsl:\n",
        "  - name: side\n    source: v4l2\n    device: /dev/video94\nlsl:\n",
    );
    let mut h = connected(&cfg, 0.9);
    // Its rate is measured over a second, once a second.
    std::thread::sleep(Duration::from_secs(2));
    server.publish("lab10", "status");
    // (The reply topic also has the loss, said when it was found.)
    let reply = |_: &mut Hindsight| {
        server
            .messages("lab10-replies", None)
            .into_iter()
            .find(|m| m.starts_with("buffering"))
    };
    h.wait_until("the reply is published", Duration::from_secs(10), |h| {
        reply(h).is_some()
    });
    let reply = reply(&mut h).unwrap();
    let fps: f64 = reply
        .strip_prefix("buffering; cam0 ")
        .and_then(|r| r.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the state, then the first camera: {reply}"));
    assert!(fps > 20.0, "{reply}");
    assert!(reply.contains("/30 fps "), "{reply}");
    assert!(reply.contains(" s buffered, side LOST ("), "{reply}");
    assert!(
        reply.contains("/dev/video94: No such file or directory")
            && reply.contains("is the camera plugged in"),
        "why, whole: {reply}"
    );
    let free = reply
        .split("disk ")
        .nth(1)
        .and_then(|r| r.strip_suffix(" free"))
        .unwrap_or_else(|| panic!("the disk's free space last: {reply}"));
    assert!(free.ends_with("iB"), "{free}");
    assert!(h.terminate().success());
}

/// Commands sent while hindsight could not hear them (the server restarted; hindsight
/// waits to reconnect) are applied once, in order, when it is back; a start replayed with
/// its stop records the span they asked for from the buffer (ntfy gives whole seconds:
/// from the start of the start's second to the end of the stop's), nothing after it, and
/// the reply says the times were replayed.
#[test]
fn commands_sent_while_disconnected_are_applied_once_in_order_after_reconnecting() {
    let _g = serial();
    let mut server = Ntfy::start(false);
    let cfg = config(
        &server.url(),
        "lab2",
        "    reconnect_initial: 6
    reconnect_max: 8
    reply_topic: lab2-replies
",
    )
    .replace(
        "duration: 1\n  max_bytes: 32MiB",
        "duration: 12\n  max_bytes: 64MiB",
    );
    let mut h = connected(&cfg, 11.9);
    // A message while connected, so that the resume is by message id.
    server.publish("lab2", "status");
    h.wait_until("status applied", Duration::from_secs(10), |h| {
        ntfy_status(h)["commands_applied"] == 1
    });

    server.stop();
    wait_retrying(&mut h, "the loss is noticed");
    assert!(ntfy_status(&mut h)["last_error"].is_string());
    server.spawn();
    // Sent while hindsight waits to reconnect.
    let (_, start_sent) = server.publish_timed("lab2", "start");
    std::thread::sleep(Duration::from_millis(1200));
    let (_, stop_sent) = server.publish_timed("lab2", "stop");
    assert_eq!(
        h.status()["state"],
        "buffering",
        "nothing applied yet: still in backoff"
    );
    h.wait_until(
        "reconnected and both applied",
        Duration::from_secs(30),
        |h| ntfy_status(h)["commands_applied"] == 3,
    );
    h.wait_idle_files();
    assert_eq!(h.mkv_files().len(), 1, "start then stop: one file");
    assert_eq!(h.status()["state"], "buffering");
    assert_eq!(
        ntfy_status(&mut h)["last_error"],
        Value::Null,
        "connected again: no stale error"
    );
    let log = h.log_text();
    let (a, b) = (
        log.find("start: recording 1 started").unwrap(),
        log.find("stop: stopped recording 1").unwrap(),
    );
    assert!(a < b, "in order");
    assert_eq!(log.matches("source=ntfy").count(), 3, "each applied once");

    // The span asked for: from the start's second (with the buffer before it, as far as
    // the buffer still reached back) to the end of the stop's second, and nothing later.
    let mkv = &h.mkv_files()[0];
    let rows = read_sidecar(mkv);
    let (from, to) = (start_sent as f64, stop_sent as f64 + 1.0);
    assert!(
        rows.iter().any(|r| r.pre_trigger),
        "frames from before the start"
    );
    assert!(
        rows.iter().all(|r| r.pre_trigger == (r.unix_time < from)),
        "pre_trigger marks the frames before {from}"
    );
    let last = rows.last().unwrap();
    assert!(
        last.unix_time <= to && last.unix_time > to - 0.1,
        "the last frame ({}) is the last one before the stop's second ends ({to})",
        last.unix_time
    );
    assert_nothing_lost(&rows, &h.status()["cameras"][0]);
    // The stop row pairs its LSL time with the same instant's unix time, as the frames do.
    let events = std::fs::read_to_string(events_of(mkv)).unwrap();
    let stop: Vec<f64> = events
        .lines()
        .find(|l| l.contains(",stop,"))
        .unwrap()
        .split(',')
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    let offset = |lsl: f64, unix: f64| unix - lsl;
    assert!(
        (offset(stop[0], stop[1]) - offset(last.lsl_time, last.unix_time)).abs() < 0.001,
        "stop row {stop:?} against the frames' clock pairing"
    );
    assert!(
        (stop[1] - to).abs() < 0.001,
        "the stop is at {to}: {stop:?}"
    );
    // The phone hears that the times were replayed.
    h.wait_until("the replies are published", Duration::from_secs(10), |_| {
        server.messages("lab2-replies", None).len() >= 3
    });
    let replies = server.messages("lab2-replies", None);
    let start_reply = replies
        .iter()
        .find(|r| r.contains("recording 1 started"))
        .unwrap();
    assert!(
        start_reply.contains("replayed") && start_reply.contains("whole seconds"),
        "{replies:?}"
    );
    assert!(h.terminate().success());
}

/// A start and a stop replayed after the buffer has moved past them: nothing to record,
/// and the answer says why.
#[test]
fn a_replayed_span_that_left_the_buffer_is_refused_clearly() {
    let _g = serial();
    let mut server = Ntfy::start(false);
    let cfg = config(
        &server.url(),
        "lab9",
        "    reconnect_initial: 5
    reconnect_max: 5
    reply_topic: lab9-replies
",
    );
    let mut h = connected(&cfg, 0.9);
    server.publish("lab9", "status");
    h.wait_until("status applied", Duration::from_secs(10), |h| {
        ntfy_status(h)["commands_applied"] == 1
    });
    server.stop();
    wait_retrying(&mut h, "the loss is noticed");
    server.spawn();
    server.publish("lab9", "start");
    server.publish("lab9", "stop");
    h.wait_until("both applied", Duration::from_secs(30), |h| {
        ntfy_status(h)["commands_applied"] == 3
    });
    h.wait_until("the replies are published", Duration::from_secs(10), |_| {
        server.messages("lab9-replies", None).len() >= 2
    });
    let replies = server.messages("lab9-replies", None);
    assert!(
        replies
            .iter()
            .any(|r| r.starts_with("failed:") && r.contains("no longer in the buffer")),
        "{replies:?}"
    );
    h.wait_idle_files();
    assert!(h.mkv_files().is_empty());
    assert!(h.terminate().success());
}

/// A message published a moment before hindsight starts, in the same second, is never
/// applied (ntfy's times are whole seconds: a time filter cannot tell; asking the server
/// for its newest message at start-up can).
#[test]
fn a_message_sent_just_before_the_start_is_never_applied() {
    let _g = serial();
    let server = Ntfy::start(false);
    for run in 0..3 {
        let topic = format!("lab8-{run}");
        // Early in a second, so that hindsight starts within the same one.
        while std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis()
            > 150
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (_, sent) = server.publish_timed(&topic, "Start Recording");
        let mut h = Hindsight::start(&config(&server.url(), &topic, ""));
        wait_connected(&mut h);
        h.wait_buffered(0.9);
        std::thread::sleep(Duration::from_millis(500));
        let s = h.status();
        assert_eq!(
            s["state"], "buffering",
            "run {run}: a start sent at {sent}, before hindsight started ({}), was applied",
            s["unix_time"]
        );
        assert_eq!(ntfy_status(&mut h)["commands_applied"], 0);
        // What is sent afterwards is applied.
        server.publish(&topic, "start 1");
        h.wait_until("a later start works", Duration::from_secs(10), |h| {
            h.status()["state"] == "recording"
        });
        assert!(h.terminate().success());
    }
}

/// A command sent right after a start takes the time it was sent, not the time the start
/// was answered. A start's answer waits for its files (here up to 1.5 s, for a camera that
/// is lost; on a rig also while a writer finishes the file before): the messages behind it
/// were read only then, so a mark landed up to 1.5 s late (or, counted as replayed, at the
/// start of its second, before the recording began), and a stop recorded 1.5 s more.
#[test]
fn a_mark_and_a_stop_right_after_a_start_take_the_times_they_were_sent() {
    let _g = serial();
    let server = Ntfy::start(false);
    let mut h = connected_with_a_lost_camera(&server, "lab9", "");
    let now = unix_now;
    let before_start = now();
    server.publish("lab9", "start");
    let before_mark = now();
    server.publish("lab9", "mark trial 1");
    let after_mark = now();
    std::thread::sleep(Duration::from_millis(400));
    let before_stop = now();
    server.publish("lab9", "stop");
    let after_stop = now();
    let mkv = the_file_once_applied(&mut h, 3);
    let events = std::fs::read_to_string(events_of(&mkv)).unwrap();
    let time_of = |event: &str| -> f64 {
        events
            .lines()
            .map(|l| l.splitn(5, ',').collect::<Vec<_>>())
            .find(|f| f.len() == 5 && f[2] == event)
            .unwrap_or_else(|| panic!("no {event} row in\n{events}"))[1]
            .parse()
            .unwrap()
    };
    // Loopback delivery takes milliseconds; 0.3 s is slack for a loaded machine, well
    // under the answer's 1.5 s.
    let (start, mark, stop) = (time_of("start"), time_of("mark"), time_of("stop"));
    assert!(
        (before_start - 0.01..after_mark + 0.3).contains(&start),
        "start at {start}, sent at {before_start}\n{events}"
    );
    assert!(
        (before_mark - 0.01..after_mark + 0.3).contains(&mark) && mark >= start,
        "the mark sent at {before_mark}..{after_mark} was taken at {mark} (start {start})\n{events}"
    );
    assert!(
        (before_stop - 0.01..after_stop + 0.3).contains(&stop),
        "the stop sent at {before_stop}..{after_stop} was taken at {stop}\n{events}"
    );
    // The file ends at the stop, not when the start was answered.
    let rows = read_sidecar(&mkv);
    let last = rows.last().unwrap().unix_time;
    assert!(
        last <= stop && last > stop - 0.1,
        "the last frame at {last}, the stop at {stop}"
    );
    assert!(h.terminate().success());
}

/// The phone hears a start's answer before the "finished" of the files that start made,
/// also when a stop follows at once while a camera is lost (the start's answer waits
/// 1.5 s for that camera's file, and the stop finished the other's meanwhile): the
/// "finished" came first, as if the recording had ended before it began.
#[test]
fn a_starts_answer_comes_before_the_finished_of_its_files() {
    let _g = serial();
    let server = Ntfy::start(false);
    let mut h = connected_with_a_lost_camera(&server, "lab15", "    reply_topic: lab15-replies\n");
    server.publish("lab15", "start");
    std::thread::sleep(Duration::from_millis(300));
    server.publish("lab15", "stop");
    the_file_once_applied(&mut h, 2);
    h.wait_until("the replies are published", Duration::from_secs(15), |_| {
        server
            .messages("lab15-replies", None)
            .iter()
            .any(|l| l.contains("finished"))
    });
    let lines = server.messages("lab15-replies", None);
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in {lines:?}"))
    };
    assert!(
        at("recording 1 started") < at("stopped recording 1"),
        "{lines:?}"
    );
    assert!(at("stopped recording 1") < at("finished"), "{lines:?}");
    assert!(h.terminate().success());
}

/// A rig whose clock runs 5 s ahead of the ntfy server's (no NTP on the rig's network, a
/// clock that drifted): its messages are on time, and a stop stops when it was sent. Taken
/// by the wall clock, every message looked 5 s late, was taken as replayed, and the stop
/// was put at the end of its second on the server's clock: 4 s before it was sent, so
/// the recording lost its last 4 s.
#[test]
fn a_rig_clock_ahead_of_the_servers_neither_cuts_a_recording_nor_replays_its_messages() {
    let _g = serial();
    let server = Ntfy::start(false);
    let shifted = common::ntfy::ShiftedClock::start(server.port, -5);
    let cfg = config(&shifted.url(), "lab10", "");
    let mut h = connected(&cfg, 0.9);
    let now = unix_now;
    let before_start = now();
    server.publish("lab10", "start");
    let after_start = now();
    std::thread::sleep(Duration::from_secs(2));
    let before_stop = now();
    server.publish("lab10", "stop");
    let after_stop = now();
    let mkv = the_file_once_applied(&mut h, 2);
    let events = std::fs::read_to_string(events_of(&mkv)).unwrap();
    assert!(!events.contains("replayed"), "{events}");
    let rows = read_sidecar(&mkv);
    let trigger = rows.iter().find(|r| !r.pre_trigger).unwrap().unix_time;
    assert!(
        (before_start - 0.05..after_start + 0.3).contains(&trigger),
        "the first live frame at {trigger}, the start sent at {before_start}..{after_start}"
    );
    let last = rows.last().unwrap().unix_time;
    assert!(
        (before_stop - 0.1..after_stop + 0.3).contains(&last),
        "the last frame at {last}, the stop sent at {before_stop}..{after_stop}\n{events}"
    );
    assert!(h.terminate().success());
}

/// A rig that cannot reach the server when it starts (its network comes up later) and
/// whose clock is hours behind the server's (a Raspberry Pi has no real-time clock: it
/// boots with the time it was shut down, until NTP sets it, which needs the network too)
/// or minutes ahead (a lab PC without NTP). When the server can be reached, what was sent
/// after hindsight began is applied, and nothing sent before: by the rig's clock, the
/// first replayed the last session's start, which recorded unasked, and the second
/// ignored every command of its first minutes.
#[test]
fn a_rig_clock_hours_off_that_could_not_reach_the_server_at_start_applies_only_what_came_after() {
    let _g = serial();
    let server = Ntfy::start(false);
    for (run, server_ahead) in [(0, 2 * 3600), (1, -300)] {
        let topic = format!("lab13-{run}");
        // The last session's commands: it ended recording.
        server.publish(&topic, "start");
        server.publish(&topic, "stop");
        server.publish(&topic, "start");
        std::thread::sleep(Duration::from_millis(1100));
        let port = free_port();
        let cfg = config(
            &format!("http://127.0.0.1:{port}"),
            &topic,
            "    reconnect_initial: 1\n    reconnect_max: 2\n",
        );
        let mut h = Hindsight::start(&cfg);
        h.wait_buffered(0.9);
        wait_retrying(&mut h, "the server is out of reach");
        // The status says why, not only reqwest's "error sending request".
        let error = ntfy_status(&mut h)["last_error"].to_string();
        assert!(error.contains("Connection refused"), "{error}");
        std::thread::sleep(Duration::from_millis(1100));
        // Sent after hindsight began, while it could not reach the server.
        server.publish(&topic, "status");
        let _proxy = common::ntfy::ShiftedClock::start_on(port, server.port, server_ahead);
        h.wait_until(
            "what was sent meanwhile is applied",
            Duration::from_secs(20),
            |h| ntfy_status(h)["commands_applied"] == 1,
        );
        std::thread::sleep(Duration::from_secs(2));
        let s = h.status();
        assert_eq!(
            s["state"],
            "buffering",
            "run {run}: the last session's start was applied\n{}",
            h.log_text()
        );
        assert_eq!(ntfy_status(&mut h)["commands_applied"], 1, "run {run}");
        // And what is sent now is applied.
        server.publish(&topic, "start 1");
        h.wait_until("a new start works", Duration::from_secs(10), |h| {
            h.status()["state"] == "recording"
        });
        h.wait_until("its second recorded", Duration::from_secs(10), |h| {
            h.status()["state"] == "buffering"
        });
        h.wait_idle_files();
        assert_eq!(h.mkv_files().len(), 1, "run {run}");
        assert!(h.terminate().success());
    }
}

/// A rig clock minutes ahead of the server's, connected from the start, then an outage
/// before any message came: what was sent during the outage is applied when the server is
/// back. The subscription resumes from a time until a message has come; in the rig's
/// seconds that time lay in the server's future, and the outage's commands were lost.
#[test]
fn a_rig_clock_minutes_ahead_loses_no_command_sent_during_an_outage_before_the_first_message() {
    let _g = serial();
    let mut server = Ntfy::start(false);
    let proxy = common::ntfy::ShiftedClock::start(server.port, -300);
    // A buffer that still holds the start when it is replayed with its stop.
    let cfg = config(
        &proxy.url(),
        "lab14",
        "    reconnect_initial: 6\n    reconnect_max: 8\n",
    )
    .replace(
        "duration: 1\n  max_bytes: 32MiB",
        "duration: 12\n  max_bytes: 64MiB",
    );
    let mut h = connected(&cfg, 11.9);
    server.stop();
    wait_retrying(&mut h, "the loss is noticed");
    server.spawn();
    // Sent while hindsight waits to reconnect.
    server.publish("lab14", "start");
    std::thread::sleep(Duration::from_millis(1200));
    server.publish("lab14", "stop");
    the_file_once_applied(&mut h, 2);
    assert!(h.terminate().success());
}

#[test]
fn fifty_start_stop_pairs_make_fifty_files() {
    let _g = serial();
    let server = Ntfy::start(false);
    let mut h = Hindsight::start(&config(&server.url(), "lab3", ""));
    wait_connected(&mut h);
    h.wait_buffered(0.9);
    for _ in 0..50 {
        server.publish("lab3", "start");
        server.publish("lab3", "stop");
    }
    h.wait_until("100 commands applied", Duration::from_secs(60), |h| {
        ntfy_status(h)["commands_applied"] == 100
    });
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 50, "no duplicates, none missed");
    let mut ids: Vec<String> = files
        .iter()
        .map(|f| tags(f)["RECORDING_ID"].clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert!(
        !h.log_text().contains("no-op"),
        "no start ever found a recording running"
    );
    assert!(h.terminate().success());
}

#[test]
fn a_protected_topic_works_with_its_token_and_is_refused_clearly_without() {
    let _g = serial();
    let server = Ntfy::start(true);
    let token = server.user_with_token("alice", "lab4");
    // Without a token (its variable set, but empty: a common slip): a clear refusal,
    // retried slowly, the empty variable named, and the recorder keeps buffering.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let mut without = Hindsight::start_with(
        dir,
        root,
        &config(
            &server.url(),
            "lab4",
            "    reconnect_max: 30\n    token_env: LAB4_TOKEN\n",
        ),
        |cmd| {
            cmd.env("LAB4_TOKEN", "");
        },
    );
    without.wait_until("the refusal is reported", Duration::from_secs(20), |h| {
        ntfy_status(h)["state"]
            .as_str()
            .unwrap()
            .starts_with("refused: 403")
    });
    without.wait_buffered(0.9);
    let s = without.status();
    assert_eq!(s["state"], "buffering");
    assert!(
        s["ntfy"]["last_error"]
            .as_str()
            .unwrap()
            .contains("credentials"),
        "{s}"
    );
    assert!(without.log_text().contains("refused: 403"));
    assert!(
        without.log_text().contains("LAB4_TOKEN is set but empty"),
        "{}",
        without.log_text()
    );
    assert!(without.terminate().success());

    // With the token (from an environment variable, as under systemd).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let cfg = config(&server.url(), "lab4", "    token_env: LAB4_TOKEN\n");
    let mut with = Hindsight::start_with(dir, root, &cfg, |cmd| {
        cmd.env("LAB4_TOKEN", &token);
    });
    wait_connected(&mut with);
    with.wait_buffered(0.9);
    let publish = |text: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/lab4", server.url()))
            .bearer_auth(&token)
            .body(text.to_string())
            .send()
            .unwrap();
        assert!(r.status().is_success());
    };
    publish("start");
    with.wait_until("recording", Duration::from_secs(10), |h| {
        h.status()["state"] == "recording"
    });
    publish("stop");
    with.wait_until("stopped", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    with.wait_idle_files();
    assert_eq!(with.mkv_files().len(), 1);
    assert!(
        !with.log_text().contains(&token),
        "the token never reaches the log"
    );
    assert!(with.terminate().success());
}

#[test]
fn messages_that_are_not_commands_are_logged_and_change_nothing() {
    let _g = serial();
    let server = Ntfy::start(false);
    // A second camera that is lost: a start's answer waits 1.5 s for its file.
    let mut h = connected_with_a_lost_camera(
        &server,
        "lab5",
        "    reply_topic: lab5-replies\n    reply_unknown: true\n",
    );
    // 3 kB: still a message, too long to be a command; 20 kB: ntfy makes it an attachment.
    let long = "start ".repeat(500);
    let huge = "start ".repeat(3500);
    for text in [
        "hello",
        "please start the camera",
        "start stop",
        "{\"json\": true}",
        &long,
        &huge,
        "restart",
        "stop",
    ] {
        server.publish("lab5", text);
    }
    h.wait_until("all eight seen", Duration::from_secs(20), |h| {
        ntfy_status(h)["last_message"] == "stop"
    });
    std::thread::sleep(Duration::from_millis(500));
    let s = h.status();
    assert_eq!(s["state"], "buffering");
    assert!(h.mkv_files().is_empty());
    let log = h.log_text();
    assert!(log.contains("`hello` is not a command"), "{log}");
    assert!(log.contains("`start stop` is not a command"), "{log}");
    assert!(log.contains("is too long for a command"), "{log}");
    assert!(
        log.contains("You received a file"),
        "the attachment's notice text is not a command: {log}"
    );
    assert!(log.contains("stop: no-op"), "{log}");
    let replies = server.messages("lab5-replies", None);
    assert!(
        replies
            .iter()
            .any(|r| r.starts_with("not understood: \"hello\"")),
        "{replies:?}"
    );
    // And the recorder still takes commands. A typo right behind a start is answered
    // after it, in the order they were sent, though the start's answer waits for the lost
    // camera's file.
    server.publish("lab5", "start 1");
    server.publish("lab5", "strat 1");
    h.wait_until("a recording of 1 s", Duration::from_secs(10), |h| {
        h.mkv_files().len() == 1
    });
    h.wait_until("it ends", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_until("both answered", Duration::from_secs(10), |_| {
        server
            .messages("lab5-replies", None)
            .iter()
            .any(|r| r.starts_with("not understood: \"strat 1\""))
    });
    let replies = server.messages("lab5-replies", None);
    let at = |p: &str| replies.iter().position(|r| r.starts_with(p));
    assert!(
        at("recording 1 started") < at("not understood: \"strat 1\""),
        "{replies:?}"
    );
    assert!(h.terminate().success());
}

#[test]
fn rig_addresses_pick_which_recorders_act() {
    let _g = serial();
    let server = Ntfy::start(false);
    let mut a = Hindsight::start(&config(&server.url(), "lab6", ""));
    let mut b =
        Hindsight::start(&config(&server.url(), "lab6", "").replace("rig: rig-a", "rig: rig-b"));
    wait_connected(&mut a);
    wait_connected(&mut b);
    a.wait_buffered(0.9);
    b.wait_buffered(0.9);
    server.publish("lab6", "start @rig-a");
    a.wait_until("a records", Duration::from_secs(10), |h| {
        h.status()["state"] == "recording"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.status()["state"], "buffering", "b was not addressed");
    server.publish("lab6", "stop @RIG-A");
    a.wait_until("a stops", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    server.publish("lab6", "start");
    a.wait_until("a records again", Duration::from_secs(10), |h| {
        h.status()["state"] == "recording"
    });
    b.wait_until("b records", Duration::from_secs(10), |h| {
        h.status()["state"] == "recording"
    });
    server.publish("lab6", "stop");
    a.wait_until("a stops", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    b.wait_until("b stops", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    a.wait_idle_files();
    b.wait_idle_files();
    assert_eq!(a.mkv_files().len(), 2);
    assert_eq!(b.mkv_files().len(), 1);
    assert!(b.log_text().contains("is for rig-a; not this rig"));
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// A server that stops answering without closing the connection (frozen, or a network
/// that silently drops packets): no keepalive comes, hindsight gives up on the
/// connection, and reconnects when the server answers again.
#[test]
fn a_dead_connection_is_noticed_and_replaced() {
    let _g = serial();
    let server = Ntfy::start(false);
    let cfg = config(
        &server.url(),
        "lab7",
        "    reconnect_initial: 1\n    reconnect_max: 2\n",
    );
    let mut h = Hindsight::start(&cfg);
    wait_connected(&mut h);
    server.signal(libc::SIGSTOP);
    h.wait_until(
        "the silence is taken as a dead connection",
        Duration::from_secs(30),
        |h| {
            ntfy_status(h)["state"]
                .as_str()
                .unwrap()
                .contains("dead connection")
        },
    );
    server.signal(libc::SIGCONT);
    wait_connected(&mut h);
    // A frozen server is not taken for a keepalive_interval set too short.
    assert!(
        !h.log_text().contains("in a row opened"),
        "{}",
        h.log_text()
    );
    h.wait_buffered(0.9);
    server.publish("lab7", "start 1");
    h.wait_until("commands work again", Duration::from_secs(20), |h| {
        h.mkv_files().len() == 1
    });
    assert!(h.terminate().success());
}

/// A keepalive_interval shorter than the server's: each connection opens, hears no
/// keepalive in time and is replaced. Commands still work, and the log and status say
/// what to set once it has happened twice in a row (a server frozen once is not named).
#[test]
fn a_keepalive_interval_shorter_than_the_servers_is_named() {
    let _g = serial();
    let server = Ntfy::start_with_keepalive(45);
    // Dead after 2 x 1 s + 5 s without a keepalive.
    let cfg = config(&server.url(), "lab11", "").replace(
        "keepalive_interval: 5",
        "keepalive_interval: 1\n    reconnect_initial: 0.5",
    );
    let mut h = Hindsight::start(&cfg);
    wait_connected(&mut h);
    h.wait_until("the first dead connection", Duration::from_secs(20), |h| {
        h.log_text().contains("dead connection")
    });
    let first = h.log_text();
    assert!(!first.contains("keepalive_interval"), "{first}");
    h.wait_until("the hint", Duration::from_secs(30), |h| {
        ntfy_status(h)["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("2 connections in a row opened and heard no keepalive")
    });
    let said = ntfy_status(&mut h)["last_error"].to_string();
    assert!(
        said.contains("less often than every 1 s (trigger.ntfy.keepalive_interval)")
            && said.contains("ntfy's default is 45 s"),
        "{said}"
    );
    h.wait_buffered(0.9);
    wait_connected(&mut h);
    server.publish("lab11", "start 1");
    h.wait_until("commands work", Duration::from_secs(20), |h| {
        h.mkv_files().len() == 1
    });
    assert!(h.terminate().success());
}

/// A server that takes the connection and never answers (stopped here) holds hindsight's
/// first question, for the topic's newest message, for its 10 s timeout: stopping
/// hindsight meanwhile does not wait for that.
#[test]
fn a_server_that_never_answers_does_not_hold_up_the_exit() {
    let _g = serial();
    let server = Ntfy::start(false);
    server.signal(libc::SIGSTOP);
    let mut h = Hindsight::start(&config(&server.url(), "lab8", ""));
    h.wait_buffered(0.5);
    assert_eq!(ntfy_status(&mut h)["connected"], false);
    let asked = std::time::Instant::now();
    h.signal(libc::SIGTERM);
    let status = h.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    server.signal(libc::SIGCONT);
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(6),
        "the exit waited {took:?} for a server that does not answer:\n{}",
        h.log_text()
    );
}

/// A session of short trials started and stopped from a phone: an ntfy server lets each
/// address make only so many requests (by default 60 at once, then one every 5 s; this
/// server: 8, then one every 5 s). The rig's replies and "finished" notices keep within
/// it, so the phone gets every one of them and the server refuses none.
#[test]
fn a_session_of_short_trials_gets_every_reply_within_the_servers_request_limit() {
    let _g = serial();
    let server = Ntfy::start_rate_limited(8);
    let cfg = config(&server.url(), "lab10", "    reply_topic: lab10-replies\n");
    let mut h = connected(&cfg, 0.9);
    const TRIALS: usize = 8;
    let began = std::time::Instant::now();
    for _ in 0..TRIALS {
        a_take(
            &server,
            &mut h,
            "lab10",
            ["start", "stop"],
            Duration::from_millis(500),
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    assert_eq!(h.mkv_files().len(), TRIALS);
    let expected = |replies: &[String]| {
        (1..=TRIALS).all(|n| {
            let has = |p: String| replies.iter().any(|r| r.starts_with(&p));
            has(format!("recording {n} started"))
                && has(format!("stopped recording {n} "))
                && replies
                    .iter()
                    .filter(|r| r.starts_with("recording finished"))
                    .count()
                    == TRIALS
        })
    };
    h.wait_until("every reply is published", Duration::from_secs(60), |_| {
        expected(&server.messages("lab10-replies", None))
    });
    let session = began.elapsed().as_secs_f64();
    let replies = server.messages("lab10-replies", None);
    assert_eq!(replies.len(), 3 * TRIALS, "{replies:#?}");
    // In the order they happened.
    let at = |p: &str| replies.iter().position(|r| r.starts_with(p)).unwrap();
    for n in 1..TRIALS {
        assert!(
            at(&format!("stopped recording {n} ")) < at(&format!("recording {} started", n + 1)),
            "{replies:#?}"
        );
    }
    let messages = server.whole_messages("lab10-replies", None).len();
    eprintln!(
        "{} replies in {messages} messages over {session:.1} s of trials",
        replies.len()
    );
    let log = h.log_text();
    assert!(!log.contains("not published"), "{log}");
    assert!(h.terminate().success());
}
