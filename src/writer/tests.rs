//! The writer thread on a simulated clock: its waits are measured on the clock it is
//! given, so a test moves time instead of sleeping through it.

use super::*;
use crate::clock::{ClockPair, SimulatedClocks};
use crate::frame::FrameMeta;
use crate::recorder::TriggerSource;

/// A writer thread on a simulated clock, with the file of recording 1 open and three
/// frames in it.
struct Rig {
    _tmp: tempfile::TempDir,
    start: ClockPair,
    clocks: Arc<SimulatedClocks>,
    h: WriterHandle,
    erx: Receiver<WriterEvent>,
    events_csv: std::path::PathBuf,
}

impl Rig {
    fn new(audio: Option<AudioTrackSpec>, audio_start: bool) -> Rig {
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
        let paths = files::RecordingPaths::new(tmp.path(), "rec", "cam0");
        let events_csv = paths.events_csv.clone();
        h.tx.send(WriterMsg::Open(Box::new(OpenSpec {
            id: 1,
            kind: FileKind::Recording,
            paths,
            trigger: t0,
            trigger_wall: start.wall,
            pre_trigger: Duration::ZERO,
            origin: Origin::new(TriggerSource::Test, "start"),
            camera: CameraTags::default(),
            fsync_interval: None,
            audio,
            audio_start,
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
        Rig {
            _tmp: tmp,
            start,
            clocks,
            h,
            erx,
            events_csv,
        }
    }

    fn close(&self) {
        self.h
            .tx
            .send(WriterMsg::Close {
                id: 1,
                end: Some(self.start.lsl + Duration::from_millis(30)),
                reason: StopReason::Timer,
            })
            .unwrap();
    }

    /// The audio thread's word of where recording 1's WAV starts.
    fn audio_start_note(&self) {
        let at = self.start.lsl + Duration::from_millis(3);
        self.h
            .tx
            .send(WriterMsg::Note {
                id: 1,
                at,
                wall: self.start.wall_at(at),
                event: NoteKind::AudioStart,
                detail: "rec.wav: its first sample (8000 Hz)".into(),
            })
            .unwrap();
    }

    /// The summary of the file's close, if it comes within `wait` of real time.
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

    /// The events sidecar's `audio_start` rows.
    fn audio_start_rows(&self) -> Vec<String> {
        std::fs::read_to_string(&self.events_csv)
            .unwrap()
            .lines()
            .filter(|l| l.contains(",audio_start,"))
            .map(str::to_string)
            .collect()
    }

    fn finish(self) {
        drop(self.h.tx);
        self.h.join.join().unwrap();
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
    assert!(rows[0].contains("rec.wav: its first sample"), "{rows:?}");
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
