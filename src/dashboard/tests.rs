//! The dashboard drawn into ratatui's `TestBackend` for each state, and its keys.

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;

use super::view::{self, View};
use super::*;
use crate::status::AudioStatus;
use crate::status::{CameraStatus, DiskStatus, RecordingStatus};
use crate::status::{LslStatus, NtfyStatus};

fn camera() -> CameraStatus {
    CameraStatus {
        name: "top".into(),
        source: "v4l2".into(),
        model: "HD USB Camera".into(),
        codec: "mjpg".into(),
        width: 400,
        height: 400,
        target_fps: 100.0,
        fps: 98.2,
        frames_captured: 32154,
        frames_written: 0,
        frames_dropped: 0,
        buffered_seconds: 15.2,
        buffered_frames: 1498,
        buffer_fill: 0.76,
        ..Default::default()
    }
}

fn buffering() -> Status {
    Status {
        state: crate::recorder::State::Buffering,
        state_code: 2,
        rig: "lab-a".into(),
        version: "0.1.0".into(),
        uptime_s: 332.0,
        unix_time: 1_700_000_000.0,
        cameras: vec![camera()],
        ntfy: Some(NtfyStatus {
            server: "https://ntfy.sh".into(),
            topic: "lab-a-7f3k".into(),
            state: "connected".into(),
            connected: true,
            last_message: Some("Stop Recording".into()),
            last_message_time: Some(1_700_000_000.0 - 120.0),
            ..Default::default()
        }),
        audio: Some(AudioStatus {
            device: "USB Microphone".into(),
            sample_rate: 48000,
            channels: 1,
            state: "capturing".into(),
            capturing: true,
            level_dbfs: -30.0,
            ..Default::default()
        }),
        disk: Some(DiskStatus {
            free_bytes: 71_900_000_000,
            total_bytes: 250_000_000_000,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn recording() -> Status {
    let mut s = buffering();
    s.state = crate::recorder::State::Recording;
    s.state_code = 1;
    s.recording = Some(RecordingStatus {
        id: 3,
        elapsed_s: 12.3,
        pre_trigger_s: 20.0,
        trigger_source: crate::recorder::TriggerSource::Ntfy,
        trigger_text: "Start Recording".into(),
        trigger_lsl_time: 0.0,
        remaining_s: None,
        cameras_lost: Vec::new(),
    });
    let file = "/data/2026_12_01/video/rec_2026-12-01_10-00-00_top.mkv";
    s.current_files = vec![file.into()];
    s.cameras[0].current_file = Some(file.into());
    s.cameras[0].current_file_bytes = Some(12_300_000);
    s.cameras[0].frames_written = 3230;
    s.disk.as_mut().unwrap().seconds_left = Some(20.5 * 3600.0);
    s.disk.as_mut().unwrap().write_rate_bytes_per_s = 1_000_000.0;
    s
}

fn draw(view: &View) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(110, 34)).unwrap();
    t.draw(|f| view::render(f, view)).unwrap();
    t.backend().buffer().clone()
}

fn text(b: &Buffer) -> String {
    let area = b.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| b[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn view_of(s: Status) -> View {
    View {
        now_unix: s.unix_time,
        status: Some(s),
        ..View::default()
    }
}

/// The background colour of the first cell of `word` on screen.
fn bg_of(b: &Buffer, word: &str) -> Color {
    let t = text(b);
    for (y, line) in t.lines().enumerate() {
        if let Some(byte) = line.find(word) {
            let x = line[..byte].chars().count();
            return b[(x as u16, y as u16)].bg;
        }
    }
    panic!("{word} not on screen:\n{t}");
}

/// The foreground colour of the cell just after the first `label` on screen.
fn fg_after(b: &Buffer, label: &str) -> Color {
    let t = text(b);
    for (y, line) in t.lines().enumerate() {
        if let Some(byte) = line.find(label) {
            let x = line[..byte + label.len()].chars().count();
            return b[(x as u16, y as u16)].fg;
        }
    }
    panic!("{label} not on screen:\n{t}");
}

#[test]
fn buffering_shows_the_buffer_rates_ntfy_audio_and_disk() {
    let b = draw(&view_of(buffering()));
    let t = text(&b);
    assert!(t.contains(" BUFFERING "), "{t}");
    assert_eq!(bg_of(&b, "BUFFERING"), Color::Green);
    assert!(t.contains("rig lab-a  up 00:05:32"), "{t}");
    assert!(t.contains("top v4l2 400x400 mjpg"), "{t}");
    assert!(t.contains("fps 98.2 / 100"), "{t}");
    assert!(t.contains("captured 32154  written 0  dropped 0"), "{t}");
    assert!(
        t.contains("[███████████████░░░░░] 76%  15.2 s  1498 frames"),
        "{t}"
    );
    assert!(
        t.contains("ntfy  connected https://ntfy.sh/lab-a-7f3k"),
        "{t}"
    );
    assert!(t.contains("last message \"Stop Recording\" at"), "{t}");
    assert!(t.contains("(2 min ago)"), "{t}");
    assert!(t.contains("-30 dBFS  USB Microphone  48000 Hz 1 ch"), "{t}");
    assert!(t.contains("disk  67.0 GiB free of 232.8 GiB"), "{t}");
    assert!(t.contains("file  none open"), "{t}");
    assert!(t.contains("no recording yet"), "{t}");
    assert!(t.contains(" S  start"), "{t}");
    assert!(t.contains(" Q  quit (files are finished first)"), "{t}");
    assert!(t.contains(" log "), "in-process: the log pane: {t}");
}

#[test]
fn the_last_file_says_what_its_camera_lost() {
    let mut s = buffering();
    s.last_files.push(crate::status::FileSummary {
        path: "/rec/2026_12_01/video/rec_2026-12-01_10-00-00_top.mkv".into(),
        frames: 436,
        duration_s: 15.0,
        camera_losses: 3,
        camera_lost_s: 0.61,
        ..Default::default()
    });
    let b = draw(&view_of(s.clone()));
    let t = text(&b);
    assert!(
        t.contains(
            "last file: rec_2026-12-01_10-00-00_top.mkv (436 frames, 15.0 s) camera lost 3×, 0.6 s"
        ),
        "{t}"
    );
    assert_eq!(fg_after(&b, "15.0 s) "), Color::Yellow);
    // A file that lacks nothing says nothing more.
    let f = s.last_files.last_mut().unwrap();
    f.camera_losses = 0;
    f.missing_frames = 2;
    let t = text(&draw(&view_of(s.clone())));
    assert!(t.contains("(436 frames, 15.0 s) 2 missing\n"), "{t}");
    s.last_files.last_mut().unwrap().missing_frames = 0;
    let t = text(&draw(&view_of(s.clone())));
    assert!(t.contains("(436 frames, 15.0 s)\n"), "{t}");
    // A camera lost the whole take: its file was never made.
    let f = s.last_files.last_mut().unwrap();
    (f.frames, f.duration_s, f.camera_losses, f.camera_lost_s) = (0, 0.0, 1, 6.0);
    f.error = Some("no frames: the camera was lost for all 6.0 s of it".into());
    let t = text(&draw(&view_of(s.clone())));
    assert!(
        t.contains("(0 frames, 0.0 s) camera lost 1×, 6.0 s, no video file\n"),
        "{t}"
    );
    // Beside another camera's file of the same take (listed before or after it): that
    // file is shown, and the lost camera's lack is said after it. An older take's file is
    // not.
    s.last_files[0].camera = "side".into();
    s.last_files.insert(
        0,
        crate::status::FileSummary {
            camera: "top".into(),
            path: "/rec/2026_12_01/video/rec_2026-12-01_10-00-00_top.mkv".into(),
            frames: 600,
            duration_s: 6.0,
            ..Default::default()
        },
    );
    s.last_files.push(crate::status::FileSummary {
        camera: "old".into(),
        recording_id: 0,
        frames: 1,
        missing_frames: 5,
        path: "/rec/old.mkv".into(),
        ..Default::default()
    });
    for f in &mut s.last_files[..2] {
        f.recording_id = 1;
    }
    for order in [false, true] {
        if order {
            s.last_files.swap(0, 1);
        }
        let t = text(&draw(&view_of(s.clone())));
        assert!(
            t.contains(
                "last file: rec_2026-12-01_10-00-00_top.mkv (600 frames, 6.0 s) side: camera \
                 lost 1×, 6.0 s, no video file\n"
            ),
            "{t}"
        );
    }
}

#[test]
fn recording_shows_the_file_its_size_and_time_left() {
    let b = draw(&view_of(recording()));
    let t = text(&b);
    assert!(t.contains(" RECORDING "), "{t}");
    assert_eq!(bg_of(&b, "RECORDING"), Color::Red);
    assert!(
        t.contains("recording 3: 12.3 s, 20.0 s before the trigger, from ntfy \"Start Recording\""),
        "{t}"
    );
    assert!(
        t.contains("file  rec_2026-12-01_10-00-00_top.mkv 11 MiB"),
        "{t}"
    );
    assert!(t.contains("20.5 h left at 977 KiB/s"), "{t}");
    assert!(t.contains("written 3230"), "{t}");
}

#[test]
fn a_lost_ntfy_connection_and_audio_off_are_plain_to_see() {
    let mut s = buffering();
    let n = s.ntfy.as_mut().unwrap();
    n.connected = false;
    n.state = "disconnected: connection refused; retrying in 4 s".into();
    s.audio = None;
    s.cameras[0].lost = true;
    s.cameras[0].last_error = Some("camera lost: no frame for 5 s".into());
    s.cameras[0].frames_dropped = 7;
    let b = draw(&view_of(s.clone()));
    let t = text(&b);
    assert!(
        t.contains("ntfy  DISCONNECTED https://ntfy.sh/lab-a-7f3k (disconnected: connection refused; retrying in 4 s)"),
        "{t}"
    );
    assert!(t.contains("audio off"), "{t}");
    assert!(t.contains("LOST camera lost: no frame for 5 s"), "{t}");
    assert!(t.contains("400x400"), "{t}");
    // A camera not opened since start-up has no size yet: said so, not "0x0".
    s.cameras[0].width = 0;
    s.cameras[0].height = 0;
    let t = text(&draw(&view_of(s)));
    assert!(t.contains("(not opened yet)") && !t.contains("0x0"), "{t}");
    assert!(t.contains("dropped 7"), "{t}");
}

#[test]
fn attached_it_says_where_and_q_only_detaches() {
    let mut v = view_of(buffering());
    v.attached = Some("127.0.0.1:8787".into());
    v.error = Some("cannot reach hindsight at http://127.0.0.1:8787".into());
    let t = text(&draw(&v));
    assert!(t.contains("hindsight — attached to 127.0.0.1:8787"), "{t}");
    assert!(t.contains("Q  detach (the service keeps running)"), "{t}");
    assert!(t.contains("(status is stale)"), "{t}");
    assert!(t.contains("cannot reach hindsight"), "{t}");
    assert!(!t.contains(" log "), "{t}");
    // Before the first status.
    let t = text(&draw(&View::default()));
    assert!(t.contains("CONNECTING"), "{t}");
}

#[test]
fn the_disk_guard_is_shown() {
    let mut s = buffering();
    s.disk.as_mut().unwrap().guard =
        Some("disk nearly full: 300 MiB free under /data, below storage.min_free 512 MiB".into());
    let t = text(&draw(&view_of(s)));
    assert!(t.contains("disk nearly full: 300 MiB free"), "{t}");
}

#[test]
fn a_recordings_disk_that_is_gone_is_shown_instead_of_free_space() {
    let mut s = buffering();
    let d = s.disk.as_mut().unwrap();
    d.free_bytes = 0;
    d.total_bytes = 0;
    d.error = Some("recordings root /mnt/usb/rec is gone with its disk (/mnt/usb)".into());
    let t = text(&draw(&view_of(s)));
    assert!(t.contains("recordings root /mnt/usb/rec is gone"), "{t}");
    assert!(!t.contains("free of"), "{t}");
}

/// Remembers the commands it is sent.
#[derive(Default)]
struct FakeLink {
    sent: Vec<String>,
}

impl Link for FakeLink {
    fn status(&mut self) -> Result<Status, LinkError> {
        Ok(buffering())
    }
    fn command(&mut self, command: Command) -> Result<Answer, LinkError> {
        self.sent.push(command.to_string());
        Ok(Answer::now(Ok("done: ok".into())))
    }
}

#[test]
fn s_starts_x_stops_q_quits() {
    let mut link = FakeLink::default();
    let mut app = App::new(None);
    let none = KeyModifiers::NONE;
    assert_eq!(app.key(KeyCode::Char('s'), none, &mut link), Flow::Continue);
    assert_eq!(app.view().message.as_deref(), Some("start: done: ok"));
    assert_eq!(app.key(KeyCode::Char('X'), none, &mut link), Flow::Continue);
    assert_eq!(app.key(KeyCode::Char('a'), none, &mut link), Flow::Continue);
    assert_eq!(app.key(KeyCode::Enter, none, &mut link), Flow::Continue);
    assert_eq!(link.sent, ["start", "stop"]);
    assert_eq!(app.key(KeyCode::Char('q'), none, &mut link), Flow::Quit);
    assert_eq!(
        app.key(KeyCode::Char('c'), KeyModifiers::CONTROL, &mut link),
        Flow::Quit
    );
    assert_eq!(link.sent.len(), 2, "quitting sends nothing");
}

/// The keys go on the command bus as key commands, each stamped when it is pressed: a
/// stop pressed while the start's answer is still awaited (it waits up to 1.5 s for its
/// files) goes at once, and each answer is shown when it comes. Waiting for the start's
/// answer first, the stop was read, and stamped, only after it, and the screen froze.
#[test]
fn in_process_keys_go_on_the_command_bus_at_once_and_their_answers_show_when_they_come() {
    let (bus, inbox) = crate::bus::command_bus();
    let hub = Arc::new(StatusHub::new("r".into(), Vec::new(), Vec::new()));
    let recorder = std::thread::spawn(move || {
        let mut got = Vec::new();
        // Both commands come before the first is answered.
        for _ in 0..2 {
            let env = inbox
                .next_command(Duration::from_secs(10))
                .expect("a command");
            got.push(env);
        }
        let described: Vec<_> = got
            .iter()
            .map(|e| {
                (
                    e.command.to_string(),
                    e.origin.source.to_string(),
                    e.origin.text.clone(),
                    e.received.lsl,
                )
            })
            .collect();
        for (env, said) in got
            .into_iter()
            .zip(["recording 1 started", "stopped recording 1"])
        {
            let _ = env.reply.unwrap().send(crate::bus::Reply {
                outcome: crate::recorder::Outcome::Done(said.into()),
                state: crate::recorder::State::Recording,
                files: Vec::new(),
            });
        }
        described
    });
    let mut link = InProcess {
        hub,
        bus,
        finished: Box::new(|| false),
    };
    let mut app = App::new(None);
    app.key(KeyCode::Char('S'), KeyModifiers::NONE, &mut link);
    assert_eq!(app.view().message.as_deref(), Some("start: sent"));
    let stop_pressed = crate::clock::LslTime::now();
    app.key(KeyCode::Char('x'), KeyModifiers::NONE, &mut link);
    let got = recorder.join().unwrap();
    let kinds: Vec<_> = got
        .iter()
        .map(|(c, s, t, _)| (c.as_str(), s.as_str(), t.as_str()))
        .collect();
    assert_eq!(kinds, [("start", "key", "S"), ("stop", "key", "X")]);
    let stamped = got[1].3;
    assert!(
        stamped >= stop_pressed && stamped.nanos_since(stop_pressed) < 100_000_000,
        "the stop was stamped {} ms after it was pressed",
        stamped.nanos_since(stop_pressed) / 1_000_000
    );
    app.refresh(&mut link);
    assert_eq!(
        app.view().message.as_deref(),
        Some("stop: done: stopped recording 1"),
        "the answers, in order, as they came"
    );
}

#[test]
fn log_lines_show_the_time_of_day() {
    assert_eq!(
        view::short_log_line("2026-12-01T20:02:25.614605Z  INFO capture{camera=cam0}: pinned"),
        "20:02:25.614  INFO capture{camera=cam0}: pinned"
    );
    assert_eq!(view::short_log_line("no time here"), "no time here");
}

#[test]
fn a_capture_thread_busy_nearly_all_the_time_stands_out() {
    let mut s = buffering();
    let t = text(&draw(&view_of(s.clone())));
    assert!(!t.contains("capture cpu"), "not measured yet: {t}");
    s.cameras[0].capture_cpu = Some(0.042);
    let b = draw(&view_of(s.clone()));
    assert!(text(&b).contains("capture cpu 4%"), "{}", text(&b));
    assert_eq!(fg_after(&b, "capture cpu "), Color::Reset);
    s.cameras[0].capture_cpu = Some(0.97);
    let b = draw(&view_of(s));
    assert!(text(&b).contains("capture cpu 97%"), "{}", text(&b));
    assert_eq!(fg_after(&b, "capture cpu "), Color::Yellow);
}

/// A libcamera camera's line says what its newest frame was exposed with, on a line of
/// its own (the lines below keep their place beneath it).
#[test]
fn a_camera_that_reports_its_exposure_shows_it() {
    let mut s = buffering();
    let t = text(&draw(&view_of(s.clone())));
    assert!(!t.contains("exposure"), "{t}");
    s.cameras[0].exposure = Some(crate::frame::exif::Exposure {
        time_us: Some(2000),
        analogue_gain: Some(2.75),
        digital_gain: Some(1.125),
    });
    let t = text(&draw(&view_of(s)));
    assert!(
        t.contains("exposure 2000 µs · analogue gain 2.75 · digital gain 1.125"),
        "{t}"
    );
    assert!(t.contains("file  none open"), "{t}");
}

#[test]
fn the_marker_trigger_says_whether_it_follows_the_experiments_stream() {
    // Off: no line for it, and the file line keeps its place.
    let t = text(&draw(&view_of(buffering())));
    assert!(!t.contains("markers:"), "{t}");
    assert!(t.contains("file  none open"), "{t}");

    let with = |state: &str| {
        let mut s = buffering();
        s.lsl = Some(LslStatus {
            streams: vec!["hindsight_top_frames".into()],
            consumers: vec![false],
            marker_trigger: Some(state.into()),
        });
        draw(&view_of(s))
    };
    let b = with("following `PsychoPyMarkers` from stim-pc (experiment-1)");
    let t = text(&b);
    assert!(
        t.contains("lsl   markers: following `PsychoPyMarkers` from stim-pc (experiment-1)"),
        "{t}"
    );
    assert_eq!(fg_after(&b, "markers: "), Color::Green);
    // Every other line is still there, the file line last.
    assert!(t.contains("-30 dBFS  USB Microphone"), "{t}");
    assert!(t.contains("file  none open"), "{t}");

    let b = with("looking for marker stream `PsychoPyMarkers`");
    let t = text(&b);
    assert!(
        t.contains("markers: looking for marker stream `PsychoPyMarkers`"),
        "{t}"
    );
    assert_eq!(fg_after(&b, "markers: "), Color::Yellow);
    assert!(t.contains("file  none open"), "{t}");
}
