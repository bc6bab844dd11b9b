//! The writer thread on a simulated clock: its waits are measured on the clock it is
//! given, so a test moves time instead of sleeping through it.

use super::*;
use crate::clock::{ClockPair, SimulatedClocks};
use crate::frame::FrameMeta;
use crate::recorder::TriggerSource;
use crossbeam_channel::Receiver;

/// A writer thread on a simulated clock, with the file of recording 1 open and three
/// frames in it.
struct Rig {
    tmp: tempfile::TempDir,
    start: ClockPair,
    clocks: Arc<SimulatedClocks>,
    h: WriterHandle,
    erx: Receiver<WriterEvent>,
    jpeg: Vec<u8>,
}

impl Rig {
    fn new(audio: Option<AudioTrackSpec>, audio_start: bool) -> Rig {
        let rig = Rig::without_frames(audio, audio_start);
        rig.frames(0..3);
        rig
    }

    /// Recording 1's file open, no frame in it yet.
    fn without_frames(audio: Option<AudioTrackSpec>, audio_start: bool) -> Rig {
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
        let jpeg = crate::source::synthetic::PatternEncoder::new(64, 48, 80)
            .unwrap()
            .encode(0)
            .unwrap()
            .to_vec();
        let rig = Rig {
            tmp,
            start,
            clocks,
            h,
            erx,
            jpeg,
        };
        rig.open(1, audio, audio_start);
        rig
    }

    fn paths(&self, id: u64) -> files::RecordingPaths {
        files::RecordingPaths::new(self.tmp.path(), &format!("rec{id}"), "cam0")
    }

    fn open(&self, id: u64, audio: Option<AudioTrackSpec>, audio_start: bool) {
        self.open_spec(self.spec(id, audio, audio_start));
    }

    fn open_spec(&self, spec: OpenSpec) {
        self.h.tx.send(WriterMsg::Open(Box::new(spec))).unwrap();
    }

    fn spec(&self, id: u64, audio: Option<AudioTrackSpec>, audio_start: bool) -> OpenSpec {
        let t0 = self.start.lsl;
        OpenSpec {
            id,
            kind: FileKind::Recording,
            paths: self.paths(id),
            trigger: t0,
            trigger_wall: self.start.wall_at(t0),
            pre_trigger: Duration::ZERO,
            origin: Origin::new(TriggerSource::Test, "start"),
            camera: CameraTags::default(),
            fsync_interval: None,
            audio,
            audio_start,
            max_bytes: None,
            part: 1,
            exposure: false,
        }
    }

    /// Live frames `seq`, 10 ms apart from the start.
    fn frames(&self, seq: std::ops::Range<u64>) {
        self.frames_of(seq, (64, 48), &self.jpeg);
    }

    /// Live frames `seq` of `size`, each `jpeg`, 10 ms apart from the start.
    fn frames_of(&self, seq: std::ops::Range<u64>, (width, height): (u16, u16), jpeg: &[u8]) {
        for n in seq {
            let capture = self.start.lsl + Duration::from_millis(10 * n);
            self.h
                .tx
                .send(WriterMsg::Frame(Frame {
                    meta: FrameMeta {
                        seq: n,
                        capture,
                        wall: self.start.wall_at(capture),
                        width,
                        height,
                        keyframe: true,
                    },
                    data: Bytes::from(jpeg.to_vec()),
                }))
                .unwrap();
        }
    }

    fn close(&self) {
        self.close_id(1, 30);
    }

    /// Closes recording `id`, ending it `end_ms` after the start.
    fn close_id(&self, id: u64, end_ms: u64) {
        self.h
            .tx
            .send(WriterMsg::Close {
                id,
                end: Some(self.start.lsl + Duration::from_millis(end_ms)),
                reason: StopReason::Timer,
                late: false,
            })
            .unwrap();
    }

    /// Closes recording `id` at `end_ms` as the next recording opens at once: frames
    /// exposed before then may still come among the next one's.
    fn close_late(&self, id: u64, end_ms: u64) {
        self.h
            .tx
            .send(WriterMsg::Close {
                id,
                end: Some(self.start.lsl + Duration::from_millis(end_ms)),
                reason: StopReason::Timer,
                late: true,
            })
            .unwrap();
    }

    /// The audio thread's word of where recording 1's WAV starts.
    fn audio_start_note(&self) {
        self.audio_start_note_of(1);
    }

    fn audio_start_note_of(&self, id: u64) {
        let at = self.start.lsl + Duration::from_millis(3);
        self.h
            .tx
            .send(WriterMsg::Note {
                id,
                at,
                wall: self.start.wall_at(at),
                event: NoteKind::AudioStart,
                detail: format!("rec{id}.wav: its first sample (8000 Hz)"),
            })
            .unwrap();
    }

    /// The summary of the next file closed, if one closes within `wait` of real time.
    fn closed(&self, wait: Duration) -> Option<FileSummary> {
        let until = std::time::Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match self.erx.recv_timeout(left) {
                Ok(WriterEvent::Closed { summary, .. }) => return Some(summary),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The summary of the next file closed, which must come within 3 s of real time (the
    /// writer's clock is not moved): its recording and frames.
    fn closes_now(&self, what: &str) -> (u64, u64) {
        let s = self
            .closed(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{what} did not close"));
        (s.recording_id, s.frames)
    }

    /// The `audio_start` rows of recording 1's events sidecar.
    fn audio_start_rows(&self) -> Vec<String> {
        self.audio_start_rows_of(1)
    }

    fn audio_start_rows_of(&self, id: u64) -> Vec<String> {
        std::fs::read_to_string(&self.paths(id).events_csv)
            .unwrap()
            .lines()
            .filter(|l| l.contains(",audio_start,"))
            .map(str::to_string)
            .collect()
    }

    /// Ends the writer thread (as the process's exit does); the files stay until the
    /// returned directory is dropped.
    fn finish(self) -> tempfile::TempDir {
        drop(self.h.tx);
        self.h.join.join().unwrap();
        self.tmp
    }
}

/// The writer's loop comes round every 250 ms of real time: a close that still waits
/// after 800 ms waits for something, not for the loop.
const STILL_WAITING: Duration = Duration::from_millis(800);

/// A stop's close waits for the audio track's end, at most `AUDIO_END_WAIT` of the
/// writer's clock; then the file ends without it, finished and playable.
#[test]
fn a_close_waits_for_the_audio_end_only_as_long_as_its_clock_says() {
    let rig = Rig::new(
        Some(AudioTrackSpec {
            rate: 8_000,
            channels: 1,
        }),
        false,
    );
    rig.close();
    // The writer's clock has not moved.
    assert!(
        rig.closed(STILL_WAITING).is_none(),
        "closed before the audio's end or its wait was over"
    );
    rig.clocks.advance(AUDIO_END_WAIT);
    // Well before AUDIO_END_WAIT of real time has passed: the writer's clock, not the
    // machine's, ended the wait.
    let summary = rig
        .closed(Duration::from_secs(3))
        .expect("closed once the wait was over");
    assert_eq!(summary.frames, 3);
    assert_eq!(summary.error, None);
    rig.finish();
}

/// The audio thread answers late (it was opening the audio device): a stop or a clip's
/// close waits for where the WAV starts, and the events sidecar gets its row.
#[test]
fn a_late_audio_start_still_reaches_the_events_sidecar() {
    let rig = Rig::new(None, true);
    rig.close();
    assert!(
        rig.closed(STILL_WAITING).is_none(),
        "closed before the audio thread said where the WAV starts"
    );
    rig.audio_start_note();
    let summary = rig
        .closed(Duration::from_secs(3))
        .expect("closed once told");
    assert_eq!(summary.frames, 3);
    let rows = rig.audio_start_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("rec1.wav: its first sample"), "{rows:?}");
    rig.finish();
}

/// A file begun while the microphone is away: the audio thread sends its `audio_lost`
/// row before the `audio_start` note (a clip's file closes as soon as that note is in).
/// The row follows the `audio_start` row in the events sidecar, whether the file was still
/// open or had closed without its row and gets both later.
#[test]
fn an_audio_lost_row_sent_before_the_audio_start_follows_it() {
    let lost = |rig: &Rig| {
        let at = rig.start.lsl + Duration::from_millis(3);
        rig.h
            .tx
            .send(WriterMsg::Note {
                id: 1,
                at,
                wall: rig.start.wall_at(at),
                event: NoteKind::AudioLost,
                detail: "lost when this recording began: no audio for 5 s".into(),
            })
            .unwrap();
    };
    let kinds = |rig: &Rig| -> Vec<String> {
        std::fs::read_to_string(&rig.paths(1).events_csv)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .collect()
    };
    // Open: the close waits for the note, then the rows are in order.
    let rig = Rig::new(None, true);
    rig.close();
    lost(&rig);
    assert!(
        rig.closed(STILL_WAITING).is_none(),
        "the row is no audio_start"
    );
    rig.audio_start_note();
    assert!(rig.closed(Duration::from_secs(3)).is_some());
    assert_eq!(kinds(&rig), ["start", "audio_start", "audio_lost", "stop"]);
    rig.finish();

    // Closed without its row (the notes sat behind a full queue): both come after it.
    let rig = Rig::new(None, true);
    rig.close();
    assert!(rig.closed(STILL_WAITING).is_none());
    rig.clocks.advance(AUDIO_END_WAIT);
    assert!(rig.closed(Duration::from_secs(3)).is_some());
    lost(&rig);
    rig.audio_start_note();
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while kinds(&rig).len() < 4 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(kinds(&rig), ["start", "stop", "audio_start", "audio_lost"]);
    rig.finish();
}

/// The usual order (the note before the stop) closes at once; so does word that there
/// is no WAV, with no row; and with no word at all the close waits only `AUDIO_END_WAIT`
/// of the writer's clock.
#[test]
fn a_close_goes_at_once_when_the_audio_start_is_known_and_never_waits_forever() {
    let rig = Rig::new(None, true);
    rig.audio_start_note();
    rig.close();
    // The writer's clock does not move: only the note can have let the close go.
    assert!(rig.closed(Duration::from_secs(3)).is_some());
    assert_eq!(rig.audio_start_rows().len(), 1);
    rig.finish();

    let rig = Rig::new(None, true);
    rig.close();
    rig.h.tx.send(WriterMsg::NoWav { id: 1 }).unwrap();
    assert!(rig.closed(Duration::from_secs(3)).is_some());
    assert!(rig.audio_start_rows().is_empty());
    rig.finish();

    let rig = Rig::new(None, true);
    rig.close();
    assert!(rig.closed(STILL_WAITING).is_none());
    rig.clocks.advance(AUDIO_END_WAIT);
    let summary = rig
        .closed(Duration::from_secs(3))
        .expect("closed once the wait was over");
    assert_eq!(summary.frames, 3);
    assert!(rig.audio_start_rows().is_empty());
    rig.finish();
}

/// The audio thread answers after the close stopped waiting (its note sat behind a queue
/// a stalled disk kept full): the row is still added, after the `stop` row, to the closed
/// file's events sidecar, and to no other; a note for a recording this writer never
/// closed without its row adds nothing anywhere.
#[test]
fn an_audio_start_that_comes_after_the_close_is_added_to_the_closed_sidecar() {
    let rig = Rig::new(None, true);
    rig.close();
    assert!(rig.closed(STILL_WAITING).is_none());
    rig.clocks.advance(AUDIO_END_WAIT);
    assert!(rig.closed(Duration::from_secs(3)).is_some());
    assert!(rig.audio_start_rows().is_empty());
    // The next recording is open when the late note comes.
    rig.open(2, None, false);
    rig.frames(3..5);
    rig.audio_start_note_of(7);
    rig.audio_start_note();
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while rig.audio_start_rows().is_empty() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rows = rig.audio_start_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("rec1.wav: its first sample"), "{rows:?}");
    let text = std::fs::read_to_string(rig.paths(1).events_csv).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains(",audio_start,"),
        "the row is added at the end: {text}"
    );
    assert!(text.contains(",stop,"), "{text}");
    rig.close_id(2, 50);
    assert_eq!(rig.closes_now("recording 2"), (2, 2));
    assert!(rig.audio_start_rows_of(2).is_empty());
    // The same note again adds nothing: the file got its row.
    rig.audio_start_note();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rig.audio_start_rows().len(), 1);
    let stray = rig.paths(7);
    let dir = rig.finish();
    for p in stray.all() {
        assert!(!p.exists(), "{} was made", p.display());
    }
    drop(dir);
}

/// A command burst: the next recording starts while the last one's close still waits for
/// where its WAV starts. The next recording's messages wait behind it, in order: the first
/// file gets its row, the second file all its frames.
#[test]
fn the_next_recording_waits_behind_a_close_that_waits_for_its_audio_start() {
    let rig = Rig::new(None, true);
    rig.close();
    rig.open(2, None, true);
    rig.frames(3..8);
    assert!(
        rig.closed(STILL_WAITING).is_none(),
        "recording 1 closed before the audio thread said where its WAV starts"
    );
    rig.audio_start_note_of(1);
    assert_eq!(rig.closes_now("recording 1"), (1, 3));
    assert_eq!(rig.audio_start_rows().len(), 1);
    // Recording 2's note before its stop: it closes at once, with its five frames.
    rig.audio_start_note_of(2);
    rig.close_id(2, 80);
    assert_eq!(rig.closes_now("recording 2"), (2, 5));
    assert_eq!(rig.audio_start_rows_of(2).len(), 1);
    rig.finish();
}

/// A stop and at once the next start: the frames exposed before the stop that were still
/// on their way come after the next recording's Open, among its frames (which begin with
/// its pre-trigger part, frames the first file has). The first file takes those it lacks,
/// up to its end, and closes at the first frame after it; the next gets them all.
#[test]
fn a_file_stopped_as_the_next_opens_takes_its_last_frames_from_the_next_ones() {
    let rig = Rig::new(None, false);
    rig.close_late(1, 45);
    rig.open(2, None, false);
    assert!(
        rig.closed(STILL_WAITING).is_none(),
        "recording 1 closed before the frames exposed before its end came"
    );
    // Frames 0-2 it has; 3 and 4 (30 and 40 ms) it lacks; 5 (50 ms) is after its end.
    rig.frames(0..8);
    assert_eq!(rig.closes_now("recording 1"), (1, 5));
    rig.close_id(2, 80);
    assert_eq!(rig.closes_now("recording 2"), (2, 8));
    let tmp = rig.finish();
    let rows = |id: u64| {
        let csv = std::fs::read_to_string(
            files::RecordingPaths::new(tmp.path(), &format!("rec{id}"), "cam0").frames_csv,
        )
        .unwrap();
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse::<u64>().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(1), [0, 1, 2, 3, 4]);
    assert_eq!(rows(2), (0..8).collect::<Vec<_>>());
}

/// A burst: stop, start, stop, start before any of the late frames came. Each stopped
/// file takes its last frames from those held behind it, and none waits for a frame that
/// is already there.
#[test]
fn files_stopped_in_a_burst_each_take_their_last_frames_from_those_held() {
    let rig = Rig::new(None, false);
    rig.close_late(1, 45);
    rig.open(2, None, false);
    rig.close_late(2, 45);
    rig.open(3, None, false);
    rig.frames(3..7);
    assert_eq!(rig.closes_now("recording 1"), (1, 5));
    assert_eq!(rig.closes_now("recording 2"), (2, 2));
    rig.close_id(3, 80);
    assert_eq!(rig.closes_now("recording 3"), (3, 4));
    rig.finish();
}

/// A camera that delivers nothing more: the stopped file waits for its last frames only
/// `LATE_FRAMES_WAIT` of the writer's clock, then closes with what it has, and the next
/// recording gets every frame that waited behind it.
#[test]
fn a_file_stopped_as_the_next_opens_waits_for_its_last_frames_only_a_moment() {
    let rig = Rig::new(None, false);
    rig.close_late(1, 45);
    rig.open(2, None, false);
    assert!(rig.closed(STILL_WAITING).is_none());
    rig.clocks.advance(LATE_FRAMES_WAIT);
    assert_eq!(rig.closes_now("recording 1"), (1, 3));
    rig.frames(10..12);
    rig.close_id(2, 200);
    assert_eq!(rig.closes_now("recording 2"), (2, 2));
    rig.finish();
}

/// The audio thread does not answer, and the next recording is to start: the first file's
/// close waits only `NEXT_WAITS` more of the writer's clock, then ends without the row,
/// and the next recording gets every frame that waited behind it.
#[test]
fn the_next_recording_waits_only_a_moment_for_a_silent_audio_thread() {
    let rig = Rig::new(None, true);
    rig.close();
    rig.open(2, None, false);
    rig.frames(3..8);
    assert!(rig.closed(STILL_WAITING).is_none());
    rig.clocks.advance(NEXT_WAITS);
    assert_eq!(rig.closes_now("recording 1"), (1, 3));
    assert!(rig.audio_start_rows().is_empty());
    rig.close_id(2, 80);
    assert_eq!(rig.closes_now("recording 2"), (2, 5));
    rig.finish();
}

/// A stop followed at once by the next start, with an audio track: the first file's close
/// waits for its track's end past `NEXT_WAITS` (a sound server's audio comes in bursts),
/// until `AUDIO_HOLD` after its stop; the audio that comes meanwhile is in the file, and
/// the next recording gets every frame that waited behind it. Audio that never comes ends
/// the wait then.
#[test]
fn the_next_recording_waits_for_the_audio_tracks_end_as_long_as_the_video_would() {
    let track = Some(AudioTrackSpec {
        rate: 8_000,
        channels: 1,
    });
    // Recording 1 stopped 30 ms after its start, recording 2 opened behind it, and
    // everything sent is taken (the wait is cut from when the next recording came).
    let stopped_and_next_behind = || {
        let rig = Rig::new(track, false);
        rig.close();
        rig.open(2, None, false);
        rig.frames(3..8);
        assert!(rig.closed(STILL_WAITING).is_none());
        rig
    };
    let rig = stopped_and_next_behind();
    rig.clocks.advance(NEXT_WAITS + Duration::from_millis(100));
    assert!(
        rig.closed(STILL_WAITING).is_none(),
        "recording 1 closed without its audio track's end"
    );
    // The last second of recording 1's audio, in a pattern the file must hold.
    let pcm = vec![0x5A_u8; 16_000];
    rig.h
        .tx
        .send(WriterMsg::Audio {
            id: 1,
            block: AudioBlock {
                at: rig.start.lsl,
                pcm: pcm.clone(),
            },
        })
        .unwrap();
    rig.h.tx.send(WriterMsg::AudioEnd { id: 1 }).unwrap();
    assert_eq!(rig.closes_now("recording 1"), (1, 3));
    let file = std::fs::read(rig.paths(1).mkv).unwrap();
    assert!(
        file.windows(pcm.len()).any(|w| w == pcm.as_slice()),
        "the audio block is not in recording 1's file"
    );
    rig.close_id(2, 80);
    assert_eq!(rig.closes_now("recording 2"), (2, 5));
    rig.finish();

    let rig = stopped_and_next_behind();
    rig.clocks.advance(AUDIO_HOLD + Duration::from_millis(30));
    assert_eq!(rig.closes_now("recording 1"), (1, 3));
    rig.close_id(2, 80);
    assert_eq!(rig.closes_now("recording 2"), (2, 5));
    rig.finish();
}

/// A camera lost before the recording began: its file's first frame comes 4.06 s after
/// the start, the audio from the start (as the WAV has it). The MKV's track begins at that
/// frame, from the sample nearest to it; what came before is left out. (It was written
/// too, all of it at time 0: eight of the ten blocks piled on one another at the start.)
#[test]
fn audio_from_before_a_late_first_frame_is_left_out_of_the_track() {
    let rate = 8_000;
    let rig = Rig::without_frames(Some(AudioTrackSpec { rate, channels: 1 }), false);
    // 5 s of audio in blocks of 0.5 s; each sample is its own index.
    let sample = |i: u32| (i % 30_000) as i16;
    for b in 0..10u32 {
        let pcm = (b * 4_000..(b + 1) * 4_000)
            .flat_map(|i| sample(i).to_le_bytes())
            .collect();
        let at = rig.start.lsl + Duration::from_millis(500 * u64::from(b));
        rig.h
            .tx
            .send(WriterMsg::Audio {
                id: 1,
                block: AudioBlock { at, pcm },
            })
            .unwrap();
    }
    rig.h.tx.send(WriterMsg::AudioEnd { id: 1 }).unwrap();
    rig.frames(406..410);
    rig.close_id(1, 4_100);
    assert_eq!(rig.closes_now("recording 1"), (1, 4));
    let tmp = rig.finish();
    let mkv = files::RecordingPaths::new(tmp.path(), "rec1", "cam0").mkv;
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&mkv)
        .args(["-map", "0:a", "-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<u8> = (32_480..40_000)
        .flat_map(|i| sample(i).to_le_bytes())
        .collect();
    assert_eq!(out.stdout.len(), expected.len(), "samples in the track");
    assert!(
        out.stdout == expected,
        "the track is not the audio from the first frame on"
    );
}

/// The process ends while a file waits for its audio and the next recording waits behind
/// it: both files are finished, nothing that reached the writer is lost.
#[test]
fn a_shutdown_finishes_the_waiting_file_and_what_waited_behind_it() {
    let rig = Rig::new(None, true);
    rig.close();
    rig.open(2, None, true);
    rig.frames(3..8);
    let (paths1, paths2) = (rig.paths(1), rig.paths(2));
    let erx = rig.erx.clone();
    let _files = rig.finish();
    let mut closed: Vec<(u64, u64)> = erx
        .try_iter()
        .filter_map(|e| match e {
            WriterEvent::Closed { summary, .. } => Some((summary.recording_id, summary.frames)),
            _ => None,
        })
        .collect();
    closed.sort();
    assert_eq!(closed, vec![(1, 3), (2, 5)]);
    // Each file's frames sidecar has a row for each of its frames.
    for (p, frames) in [(paths1, 3), (paths2, 5)] {
        let rows = std::fs::read_to_string(&p.frames_csv)
            .unwrap()
            .lines()
            .count();
        assert_eq!(rows, 1 + frames, "{}", p.frames_csv.display());
    }
}

/// A libcamera camera's frames carry their exposure (an Exif block): its sidecar has the
/// three columns, each row its own frame's values, empty for a frame without the block.
#[test]
fn the_sidecar_of_a_camera_that_reports_exposure_has_each_frames_values() {
    let rig = Rig::new(None, false);
    rig.close();
    rig.closes_now("recording 1");
    rig.open_spec(OpenSpec {
        exposure: true,
        ..rig.spec(2, None, false)
    });
    let with = |time_us, gain| {
        let e = exif::Exposure {
            time_us: Some(time_us),
            analogue_gain: Some(gain),
            digital_gain: Some(1.125),
        };
        let at = exif::place(&rig.jpeg);
        let mut jpeg = rig.jpeg[..at].to_vec();
        e.write_app1(&mut jpeg);
        jpeg.extend_from_slice(&rig.jpeg[at..]);
        jpeg
    };
    rig.frames_of(3..4, (64, 48), &with(2000, 4.0));
    rig.frames_of(4..5, (64, 48), &with(16_666, 2.75));
    rig.frames_of(5..6, (64, 48), &rig.jpeg);
    rig.close_id(2, 60);
    assert_eq!(rig.closes_now("recording 2"), (2, 3));
    let text = std::fs::read_to_string(rig.paths(2).frames_csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], sidecar::FRAMES_HEADER_EXPOSURE.trim_end());
    let tails: Vec<String> = lines[1..]
        .iter()
        .map(|l| l.split(',').skip(6).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(tails, ["2000,4,1.125", "16666,2.75,1.125", ",,"]);
    // Recording 1 (a camera that does not report) kept the six columns.
    let first = std::fs::read_to_string(rig.paths(1).frames_csv).unwrap();
    assert!(first.starts_with(sidecar::FRAMES_HEADER));
    assert!(first.lines().skip(1).all(|l| l.split(',').count() == 6));
}

/// A camera whose frames change size in a recording (a network camera set to another
/// resolution): a file's video has one size, so the recording goes on in a next part at
/// the new size, every frame kept, and the events files say why.
#[test]
fn frames_of_a_new_size_go_on_in_the_next_part() {
    let rig = Rig::new(None, false);
    let larger = crate::source::synthetic::PatternEncoder::new(96, 64, 80)
        .unwrap()
        .encode(0)
        .unwrap()
        .to_vec();
    rig.frames_of(3..6, (96, 64), &larger);
    rig.close_id(1, 60);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let mut continued = None;
    let mut closed = None;
    while closed.is_none() && std::time::Instant::now() < until {
        match rig.erx.recv_timeout(Duration::from_millis(100)) {
            Ok(WriterEvent::Continued { summary, next, .. }) => continued = Some((summary, next)),
            Ok(WriterEvent::Closed { summary, .. }) => closed = Some(summary),
            _ => {}
        }
    }
    let (first, next) = continued.expect("the first part is finished");
    let second = closed.expect("the second part is closed");
    assert_eq!((first.frames, second.frames), (3, 3));
    let part2 = rig.paths(1).part(2);
    assert_eq!(next, part2.mkv.display().to_string());
    let size = |path: &std::path::Path| match &matroska::open(path).unwrap().tracks[0].settings {
        matroska::Settings::Video(v) => (v.pixel_width, v.pixel_height),
        other => panic!("{other:?}"),
    };
    assert_eq!(size(&rig.paths(1).mkv), (64, 48));
    assert_eq!(size(&part2.mkv), (96, 64));
    let events = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let end = events(&rig.paths(1).events_csv);
    assert!(
        end.lines()
            .any(|l| l.contains(",part_end,writer: frame size changed,")),
        "{end}"
    );
    let start = events(&part2.events_csv);
    assert!(
        start
            .lines()
            .any(|l| l.contains(",part_start,writer: frame size changed,")
                && l.contains("after its frame 2, at 96x64")),
        "{start}"
    );
    rig.finish();
}

/// Late rows appended to a closed file's events sidecar (an `audio_start` that came after
/// the close) that a full disk cuts part way are taken back whole: the file keeps ending
/// in whole rows, and the next late row, once there is space, is not joined to a part.
#[test]
fn a_late_row_a_full_disk_cuts_is_taken_back_whole() {
    let before = "lsl_time,unix_time,event,source,detail\n1.0,2.0,stop,api,x\n";
    let late = "3.5,4.5,audio_start,audio,\"the WAV's first sample\"\n";
    for room in [0, 5, late.len() - 1] {
        let mut disk = Filling {
            taken: before.as_bytes().to_vec(),
            room,
        };
        let e = write_whole(&mut disk, late.as_bytes(), |d| {
            d.taken.truncate(before.len())
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            String::from_utf8(disk.taken.clone()).unwrap(),
            before,
            "room {room}"
        );
        disk.room = usize::MAX;
        write_whole(&mut disk, late.as_bytes(), |_| {
            panic!("nothing to take back")
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(disk.taken).unwrap(),
            format!("{before}{late}")
        );
    }
}

/// A disk that takes `room` more bytes, then is full.
struct Filling {
    taken: Vec<u8>,
    room: usize,
}

impl Write for Filling {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.room);
        if n == 0 {
            return Err(io::ErrorKind::StorageFull.into());
        }
        self.room -= n;
        self.taken.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An events write that fails part way (the disk filled in it) goes on from where it
/// stopped: what is appended after the failure completes the row that was cut (in a
/// character, too) instead of writing every row again after a broken one.
#[test]
fn an_events_write_cut_by_a_full_disk_goes_on_where_it_stopped() {
    let rows = "12.5,1700000012.5,mark,api,\"trial 3: 20 µl\"\n13.0,1700000013.0,mark,api,b\n";
    let cut = rows.find('µ').unwrap() + 1;
    for room in [0, 7, cut, rows.len() - 1] {
        let mut disk = Filling {
            taken: Vec::new(),
            room,
        };
        let mut done = 0;
        let e = write_on(&mut disk, rows.as_bytes(), &mut done).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(done, room, "what reached the file is counted");
        // Space again (a file deleted): the rest, as the failure path appends it.
        disk.room = usize::MAX;
        write_on(&mut disk, rows.as_bytes(), &mut done).unwrap();
        assert_eq!(String::from_utf8(disk.taken).unwrap(), rows, "room {room}");
    }
}
