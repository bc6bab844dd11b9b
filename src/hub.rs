//! The status hub: one place that puts the status snapshot together (`crate::status`
//! types), from what each thread publishes: the control thread's view of recordings and
//! commands, the cameras' counters (read live), and the LSL, ntfy, audio and disk states.
//! The API, the dashboard, the LSL status outlets and systemd's STATUS line all read it.
//! No thread runs here and nothing is decided here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::capture::{Camera, CameraFigures};
use crate::clock::ClockPair;
use crate::recorder::{ActiveRecording, State};
use crate::status::{
    AudioStatus, CommandStatus, DiskStatus, FileSummary, LslStatus, NtfyStatus, RecordingStatus,
    Status,
};

/// The parts of the status the control thread owns; camera counters are read live.
#[derive(Default)]
pub(crate) struct ControlView {
    pub(crate) state: Option<State>,
    pub(crate) recording: Option<ActiveRecording>,
    pub(crate) current_files: Vec<String>,
    /// The file each camera writes now (the newest, if a clip and a recording overlap).
    pub(crate) current_by_camera: BTreeMap<usize, String>,
    pub(crate) last_command: Option<CommandStatus>,
    pub(crate) last_files: BTreeMap<usize, FileSummary>,
    pub(crate) warnings: Vec<String>,
    /// The number the next recording will get.
    pub(crate) next_recording: Option<u64>,
    /// Cameras the recorder knows are lost.
    pub(crate) lost_cameras: Vec<usize>,
}

/// What [`StatusHub::figures`] reads: the LSL status samples' numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusFigures {
    pub state_code: u8,
    /// In the configuration's order.
    pub cameras: Vec<CameraFigures>,
    pub audio: Option<AudioFigures>,
}

/// The audio's figures in its LSL status stream.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AudioFigures {
    pub capturing: bool,
    pub level_dbfs: f64,
    pub overrun_frames: u64,
    pub buffered_seconds: f64,
}

/// Builds [`Status`] snapshots for the API (and later the dashboard and LSL status).
pub struct StatusHub {
    started: Instant,
    rig: String,
    cameras: Vec<Arc<Camera>>,
    /// Files a crash left unfinished, found at start-up; those finished or deleted since
    /// leave ([`StatusHub::recheck_unfinished`]).
    unfinished: Mutex<Vec<String>>,
    pub(crate) view: Mutex<ControlView>,
    lsl: Option<Arc<Mutex<LslStatus>>>,
    ntfy: Option<Arc<Mutex<NtfyStatus>>>,
    audio: Option<Arc<Mutex<AudioStatus>>>,
    disk: Option<Arc<Mutex<DiskStatus>>>,
}

impl StatusHub {
    pub fn new(rig: String, cameras: Vec<Arc<Camera>>, unfinished: Vec<String>) -> StatusHub {
        StatusHub {
            started: Instant::now(),
            rig,
            cameras,
            unfinished: Mutex::new(unfinished),
            view: Mutex::new(ControlView::default()),
            lsl: None,
            ntfy: None,
            audio: None,
            disk: None,
        }
    }

    /// Includes the disk guard's view of the recordings root.
    pub fn with_disk(mut self, disk: Arc<Mutex<DiskStatus>>) -> StatusHub {
        self.disk = Some(disk);
        self
    }

    /// Includes the audio capture's state.
    pub fn with_audio(mut self, audio: Arc<Mutex<AudioStatus>>) -> StatusHub {
        self.audio = Some(audio);
        self
    }

    /// Includes the ntfy subscription's state.
    pub fn with_ntfy(mut self, ntfy: Arc<Mutex<NtfyStatus>>) -> StatusHub {
        self.ntfy = Some(ntfy);
        self
    }

    /// Includes what the LSL threads report.
    pub fn with_lsl(mut self, lsl: Arc<Mutex<LslStatus>>) -> StatusHub {
        self.lsl = Some(lsl);
        self
    }

    /// Drops from the status's unfinished files those that are not any more: finished (by
    /// `hindsight repair`, the web page's Repair) or deleted (by hand, retention). Reads
    /// each listed file's header, and nothing while none is listed.
    pub fn recheck_unfinished(&self) {
        let listed = self.unfinished.lock().clone();
        if listed.is_empty() {
            return;
        }
        let still: Vec<String> = listed
            .into_iter()
            .filter(|p| {
                crate::recordings::finish::is_unfinished(std::path::Path::new(p)) == Ok(true)
            })
            .collect();
        self.unfinished.lock().retain(|p| still.contains(p));
    }

    /// Adds a warning to the status (for threads other than the control thread; keeps the
    /// newest 10).
    pub fn add_warning(&self, msg: String) {
        let mut view = self.view.lock();
        view.warnings.push(msg);
        let excess = view.warnings.len().saturating_sub(10);
        view.warnings.drain(..excess);
    }

    /// Adds a warning that takes the place of any earlier one starting with `about`: a
    /// loss repeated every second (a camera this machine cannot keep up with) keeps one
    /// line, its newest, and never pushes the other warnings out of the ten kept.
    pub fn replace_warning(&self, about: &str, msg: String) {
        self.replace_warnings(&[about], msg);
    }

    /// Adds a warning that takes the place of any earlier one starting with one of
    /// `abouts`.
    pub fn replace_warnings<S: AsRef<str>>(&self, abouts: &[S], msg: String) {
        self.view
            .lock()
            .warnings
            .retain(|w| !abouts.iter().any(|a| w.starts_with(a.as_ref())));
        self.add_warning(msg);
    }

    /// The cameras, as the capture threads share them (the web page's live views read
    /// their rings).
    pub fn cameras(&self) -> &[Arc<Camera>] {
        &self.cameras
    }

    /// The files being written now.
    pub fn current_files(&self) -> Vec<String> {
        self.view.lock().current_files.clone()
    }

    /// The number of the recording running now, if one is, and the files being written
    /// (a clip's too): what the `disk` thread looks at twice a second, without building
    /// the whole status.
    pub fn recording_and_files(&self) -> (Option<u64>, Vec<String>) {
        let view = self.view.lock();
        (
            view.recording.as_ref().map(|r| r.id),
            view.current_files.clone(),
        )
    }

    /// What the LSL status outlets send at each 10 Hz tick, read from the same sources
    /// as [`StatusHub::snapshot`] without building the whole status (its strings, file
    /// lists and warnings): `out` is filled in place.
    pub fn figures(&self, out: &mut StatusFigures) {
        let now = ClockPair::now();
        out.state_code = self.view.lock().state.unwrap_or(State::Idle).lsl_code();
        out.cameras.clear();
        out.cameras
            .extend(self.cameras.iter().map(|c| c.figures(now.lsl)));
        out.audio = self.audio.as_ref().map(|a| {
            let a = a.lock();
            AudioFigures {
                capturing: a.capturing,
                level_dbfs: a.level_dbfs,
                overrun_frames: a.overrun_frames,
                buffered_seconds: a.buffered_seconds,
            }
        });
    }

    /// The number the next recording will get, as the control thread last published it.
    pub fn next_recording(&self) -> Option<u64> {
        self.view.lock().next_recording
    }

    pub fn snapshot(&self) -> Status {
        let now = ClockPair::now();
        let view = self.view.lock();
        let state = view.state.unwrap_or(State::Idle);
        let cameras = self
            .cameras
            .iter()
            .map(|c| c.status(view.current_by_camera.get(&c.setup.index).cloned(), now.lsl))
            .collect();
        Status {
            state,
            state_code: state.lsl_code(),
            rig: self.rig.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            lsl_time: now.lsl.as_secs_f64(),
            unix_time: now.wall.as_secs_f64(),
            current_files: view.current_files.clone(),
            recording: view.recording.as_ref().map(|r| RecordingStatus {
                id: r.id,
                trigger_lsl_time: r.trigger.as_secs_f64(),
                elapsed_s: now.lsl.saturating_since(r.trigger).as_secs_f64(),
                pre_trigger_s: r.pre_trigger.as_secs_f64(),
                remaining_s: r.until.map(|u| u.saturating_since(now.lsl).as_secs_f64()),
                trigger_source: r.origin.source,
                trigger_text: r.origin.text.clone(),
                cameras_lost: view
                    .lost_cameras
                    .iter()
                    .filter_map(|&i| self.cameras.get(i).map(|c| c.setup.name.clone()))
                    .collect(),
            }),
            last_command: view.last_command.clone(),
            last_files: view.last_files.values().cloned().collect(),
            cameras,
            unfinished_files: self.unfinished.lock().clone(),
            warnings: view.warnings.clone(),
            lsl: self.lsl.as_ref().map(|l| l.lock().clone()),
            ntfy: self.ntfy.as_ref().map(|n| n.lock().clone()),
            audio: self.audio.as_ref().map(|a| a.lock().clone()),
            disk: self.disk.as_ref().map(|d| d.lock().clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{test_camera_n, CaptureStep};
    use crate::clock::{LslTime, WallTime};
    use crate::frame::FrameMeta;
    use crate::ring::RingLimits;
    use std::time::Duration;

    /// The LSL status outlets read [`StatusHub::figures`], the API and the dashboard read
    /// [`StatusHub::snapshot`]: both say the same.
    #[test]
    fn the_lsl_figures_are_the_status_snapshots_own() {
        let limits = RingLimits {
            duration: Duration::from_secs(5),
            max_bytes: 1 << 20,
            max_frames: 1000,
        };
        let cameras: Vec<Arc<Camera>> =
            (0..2).map(|i| Arc::new(test_camera_n(i, limits))).collect();
        // Camera 0: 1.5 s of frames at 100 fps up to now, with numbers 50 and 51 missing.
        let now = LslTime::now();
        let mut step = CaptureStep::default();
        for seq in (0..150u64).filter(|s| !(50..52).contains(s)) {
            let meta = FrameMeta {
                seq,
                capture: now - Duration::from_millis(10 * (150 - seq)),
                wall: WallTime::from_nanos(0),
                width: 16,
                height: 16,
                keyframe: true,
            };
            step.frame(&cameras[0], meta, b"jpeg");
        }
        let audio = Arc::new(Mutex::new(AudioStatus {
            capturing: true,
            level_dbfs: -23.5,
            overrun_frames: 7,
            buffered_seconds: 4.25,
            ..AudioStatus::default()
        }));
        let hub = StatusHub::new("rig".into(), cameras, Vec::new()).with_audio(audio);
        hub.view.lock().state = Some(State::Recording);

        // Filled in place: what an earlier tick left is replaced.
        let mut f = StatusFigures {
            state_code: 9,
            cameras: vec![CameraFigures::default(); 5],
            audio: None,
        };
        hub.figures(&mut f);
        let s = hub.snapshot();
        assert_eq!(f.state_code, 1);
        assert_eq!(f.state_code, s.state_code);
        assert_eq!(f.cameras.len(), 2);
        for (fig, cam) in f.cameras.iter().zip(&s.cameras) {
            assert_eq!(fig.fps, cam.fps, "{}", cam.name);
            assert_eq!(fig.frames_dropped, cam.frames_dropped, "{}", cam.name);
            assert_eq!(fig.buffered_seconds, cam.buffered_seconds, "{}", cam.name);
        }
        assert!((f.cameras[0].fps - 100.0).abs() < 3.0, "{:?}", f.cameras[0]);
        assert_eq!(f.cameras[0].frames_dropped, 2);
        assert!(f.cameras[0].buffered_seconds > 1.4, "{:?}", f.cameras[0]);
        assert_eq!(f.cameras[1], CameraFigures::default(), "no frame yet");
        let a = f.audio.expect("audio figures");
        let sa = s.audio.expect("audio status");
        assert!(a.capturing && sa.capturing);
        assert_eq!(
            (a.level_dbfs, a.overrun_frames, a.buffered_seconds),
            (sa.level_dbfs, sa.overrun_frames, sa.buffered_seconds)
        );
        assert_eq!((a.level_dbfs, a.overrun_frames), (-23.5, 7));
    }

    #[test]
    fn a_loss_said_every_second_keeps_one_line_and_pushes_no_other_warning_out() {
        let hub = StatusHub::new("rig".into(), Vec::new(), Vec::new());
        hub.add_warning("writing rec_1_cam0.mkv failed: No space left on device".into());
        hub.add_warning("camera side lost: no frame for 5 s".into());
        for n in 1..=30 {
            hub.replace_warning(
                "camera top: frames lost",
                format!("camera top: frames lost: {n} (gaps in the camera's frame numbers)"),
            );
            hub.replace_warning(
                "camera side: frames lost",
                format!("camera side: frames lost: {n} (the writer's queue was full)"),
            );
        }
        assert_eq!(
            hub.snapshot().warnings,
            [
                "writing rec_1_cam0.mkv failed: No space left on device",
                "camera side lost: no frame for 5 s",
                "camera top: frames lost: 30 (gaps in the camera's frame numbers)",
                "camera side: frames lost: 30 (the writer's queue was full)",
            ]
        );
    }
}
