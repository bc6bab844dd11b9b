//! The status snapshot: one consistent picture of the recorder, served by the API as JSON
//! and read by the dashboard and the LSL status outlets. Field names are part of the
//! interface users' scripts rely on (SPEC section 8a).
//!
//! Only the types live here (plain data, importing only the recorder's vocabulary), so
//! that every thread can fill its part without importing another's; `crate::hub` puts
//! them together.

use serde::{Deserialize, Serialize};

use crate::recorder::{FileKind, OutcomeKind, State, TriggerSource};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// "idle" | "buffering" | "recording"
    pub state: State,
    /// LSL status code of `state`: 0 idle, 1 recording, 2 buffering.
    pub state_code: u8,
    pub rig: String,
    pub version: String,
    pub uptime_s: f64,
    /// When this snapshot was taken, on the LSL clock and the wall clock.
    pub lsl_time: f64,
    pub unix_time: f64,
    /// Files being written now.
    pub current_files: Vec<String>,
    pub recording: Option<RecordingStatus>,
    pub last_command: Option<CommandStatus>,
    /// The most recently finished file per camera.
    pub last_files: Vec<FileSummary>,
    pub cameras: Vec<CameraStatus>,
    /// Recordings found at start-up that were never finalized (`hindsight repair FILE`).
    pub unfinished_files: Vec<String>,
    /// Problems worth a human's attention (writer errors, lost cameras).
    pub warnings: Vec<String>,
    /// LSL streams and the marker trigger, when LSL is enabled.
    pub lsl: Option<LslStatus>,
    /// The ntfy subscription, when enabled: connection state, last message and its time.
    pub ntfy: Option<NtfyStatus>,
    /// Audio capture, when enabled.
    pub audio: Option<AudioStatus>,
    /// The recordings root's filesystem: free space, write rate, the disk guard, retention.
    pub disk: Option<DiskStatus>,
}

/// What the status shows about LSL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LslStatus {
    /// Stream names this process publishes.
    pub streams: Vec<String>,
    /// Whether any inlet (LabRecorder, a viewer) is connected to each frame stream.
    pub consumers: Vec<bool>,
    /// The marker trigger's state, when it is enabled.
    pub marker_trigger: Option<String>,
}

/// What the status shows about ntfy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NtfyStatus {
    pub server: String,
    pub topic: String,
    /// "connecting", "connected", "disconnected: …; retrying in N s", "refused: …".
    pub state: String,
    pub connected: bool,
    pub last_message: Option<String>,
    /// When the last message was received (Unix time).
    pub last_message_time: Option<f64>,
    pub last_message_id: Option<String>,
    pub commands_applied: u64,
    pub last_error: Option<String>,
}

/// What the status shows about audio.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioStatus {
    pub device: String,
    pub synthetic: bool,
    pub sample_rate: u32,
    pub channels: u16,
    pub format: String,
    /// "capturing", "lost: …; retrying in N s", "starting".
    pub state: String,
    pub capturing: bool,
    /// RMS level of the last 100 ms, dBFS.
    pub level_dbfs: f64,
    /// Frames the input could not hand over in time (filled with silence).
    pub overrun_frames: u64,
    /// Frames of silence put in for gaps (lost device, overruns).
    pub silence_frames: u64,
    pub buffered_seconds: f64,
    pub current_file: Option<String>,
    pub last_file: Option<AudioFileSummary>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioFileSummary {
    /// The recording's WAV (its first part, if the size limit cut it into parts).
    pub path: String,
    /// Files the WAV is in: `path`, then `.part002.wav`, ... (1 without a size limit).
    #[serde(default)]
    pub parts: u32,
    pub recording_id: u64,
    /// Sample frames, and their duration, over all its parts.
    pub frames: u64,
    pub duration_s: f64,
    /// LSL time of the file's first sample.
    pub first_sample_lsl_time: f64,
    /// Sample frames of it that are silence put in for audio that did not come (a lost
    /// input, an overrun): zeros that keep the later samples at their times.
    #[serde(default)]
    pub silence_frames: u64,
    pub error: Option<String>,
}

/// The recordings root's filesystem, as the disk guard sees it (every 0.5 s).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskStatus {
    pub root: String,
    /// Bytes this user may still write there, and the filesystem's size.
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// `storage.min_free` (null: no guard).
    pub min_free_bytes: Option<u64>,
    /// Bytes per second hindsight is writing now (video files, over the last 5 s).
    pub write_rate_bytes_per_s: f64,
    /// Seconds of recording left at that rate before the guard stops it (null when
    /// nothing is being written).
    pub seconds_left: Option<f64>,
    /// Set while free space is below `min_free`: why recordings are stopped and refused.
    pub guard: Option<String>,
    /// What retention last deleted, and when (unix time).
    pub retention_last: Option<String>,
    /// Why nothing can be recorded on the root's disk now, if so: it is gone (another
    /// disk in its place), it is read-only, or its free space cannot be read.
    pub error: Option<String>,
    /// The disk is there but read-only (turned so by the kernel after errors on it): its
    /// recordings can still be read and copied off.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingStatus {
    pub id: u64,
    pub trigger_lsl_time: f64,
    pub elapsed_s: f64,
    pub pre_trigger_s: f64,
    /// Seconds left of a `start N`.
    pub remaining_s: Option<f64>,
    pub trigger_source: TriggerSource,
    pub trigger_text: String,
    /// Cameras lost now: the recording goes on without them, and each one's file
    /// continues when it is back.
    pub cameras_lost: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandStatus {
    pub command: String,
    pub source: TriggerSource,
    pub text: String,
    pub unix_time: f64,
    /// "done" | "no-op" | "rejected" | "failed"
    pub outcome: OutcomeKind,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraStatus {
    pub name: String,
    pub source: String,
    pub model: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub target_fps: f64,
    /// Measured over the last second of capture times.
    pub fps: f64,
    pub frames_captured: u64,
    pub frames_written: u64,
    /// Frames lost before reaching a file, all causes (see `drops`).
    pub frames_dropped: u64,
    pub drops: DropCounts,
    /// Frames evicted from the buffer before they were `buffer.duration` old (budget full):
    /// the pre-trigger was shorter than configured for them. Not lost from a recording.
    pub buffer_evicted_early: u64,
    pub buffered_seconds: f64,
    pub buffered_frames: u64,
    pub buffered_bytes: u64,
    /// Memory the buffer holds for JPEG bytes now (it grows with the need).
    pub buffer_capacity_bytes: u64,
    /// The most it may grow to (`buffer.max_bytes`).
    pub buffer_max_bytes: u64,
    /// `buffered_seconds / buffer.duration`, 0..1.
    pub buffer_fill: f64,
    pub last_frame_number: Option<u64>,
    pub current_file: Option<String>,
    /// Bytes of `current_file` written so far.
    pub current_file_bytes: Option<u64>,
    /// MKV bytes this camera has written since start.
    pub bytes_written: u64,
    pub cpu_core: Option<usize>,
    /// The capture thread runs at real-time priority.
    pub realtime: bool,
    /// Frame samples the LSL frame stream missed because its queue was full.
    pub lsl_samples_dropped: u64,
    /// The camera is lost (unplugged, stream closed, program exited) and being reopened.
    pub lost: bool,
    /// Times it was lost, and opened again.
    pub losses: u64,
    pub reopened: u64,
    pub last_error: Option<String>,
    /// The capture thread's share of one core over the last second, with its encoding
    /// threads' where it has them (1.0 for the capture thread alone: it never waited for
    /// the camera, so frames came faster than it could take them).
    pub capture_cpu: Option<f64>,
    /// What its newest frame was exposed with, as the camera reported it (a libcamera
    /// camera's, read from the frame: `frame::exif`); `None` for other sources.
    #[serde(default)]
    pub exposure: Option<crate::frame::exif::Exposure>,
}

/// Frames lost, by cause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DropCounts {
    /// Gaps in the source's frame numbers (camera or driver dropped them).
    pub source_gaps: u64,
    /// Corrupt or truncated JPEGs from the source.
    pub corrupt: u64,
    /// Buffer storage still held by a writer that fell far behind.
    pub buffer_held_by_writer: u64,
    /// Frames bigger than a buffer chunk.
    pub too_large: u64,
    /// The writer's queue was full while recording.
    pub writer_queue_full: u64,
}

impl DropCounts {
    /// The counts since `before` (counters only grow).
    pub fn since(&self, before: &DropCounts) -> DropCounts {
        DropCounts {
            source_gaps: self.source_gaps.saturating_sub(before.source_gaps),
            corrupt: self.corrupt.saturating_sub(before.corrupt),
            buffer_held_by_writer: self
                .buffer_held_by_writer
                .saturating_sub(before.buffer_held_by_writer),
            too_large: self.too_large.saturating_sub(before.too_large),
            writer_queue_full: self
                .writer_queue_full
                .saturating_sub(before.writer_queue_full),
        }
    }

    /// These counts and `other`'s together (a recording's parts).
    pub fn plus(&self, other: &DropCounts) -> DropCounts {
        DropCounts {
            source_gaps: self.source_gaps + other.source_gaps,
            corrupt: self.corrupt + other.corrupt,
            buffer_held_by_writer: self.buffer_held_by_writer + other.buffer_held_by_writer,
            too_large: self.too_large + other.too_large,
            writer_queue_full: self.writer_queue_full + other.writer_queue_full,
        }
    }

    /// `source_gaps 0, corrupt 0, ...`: as the events sidecar's stop row says them.
    pub fn listed(&self) -> String {
        format!(
            "source_gaps {}, corrupt {}, buffer_held_by_writer {}, too_large {}, writer_queue_full {}",
            self.source_gaps,
            self.corrupt,
            self.buffer_held_by_writer,
            self.too_large,
            self.writer_queue_full
        )
    }

    pub fn total(&self) -> u64 {
        self.source_gaps
            + self.corrupt
            + self.buffer_held_by_writer
            + self.too_large
            + self.writer_queue_full
    }
}

/// What a finished file holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    pub camera: String,
    pub path: String,
    pub recording_id: u64,
    /// "recording" or "clip"
    pub kind: FileKind,
    pub frames: u64,
    pub pre_trigger_frames: u64,
    pub first_frame_number: Option<u64>,
    pub last_frame_number: Option<u64>,
    /// Frames missing between first and last (gaps in frame numbers inside the file).
    pub missing_frames: u64,
    /// Times the camera was lost while this file was open, and for how long in all (the
    /// frames around each loss are in the file; the gap shows in their times).
    pub camera_losses: u64,
    pub camera_lost_s: f64,
    pub duration_s: f64,
    pub bytes: u64,
    /// Set when the file could not be completed normally.
    pub error: Option<String>,
}

impl Status {
    /// The cameras, the microphone and the disk in one line, for a glance from a phone or
    /// `systemctl status`: `top 100/100 fps 20.0 s buffered, side LOST (the program
    /// exited); audio -30 dBFS; disk 67.0 GiB free`. A lost camera's and a lost input's
    /// reason is cut at 200 characters (the status API has it whole).
    pub fn health(&self) -> String {
        let cut = |why: &str| -> String {
            match why.char_indices().nth(200) {
                Some((at, _)) => format!("{}…", &why[..at]),
                None => why.to_string(),
            }
        };
        let mut parts = vec![self
            .cameras
            .iter()
            .map(|c| {
                if c.lost {
                    match c.lost_why() {
                        Some(why) => format!("{} LOST ({})", c.name, cut(why)),
                        None => format!("{} LOST", c.name),
                    }
                } else {
                    format!(
                        "{} {:.0}/{} fps {:.1} s buffered",
                        c.name, c.fps, c.target_fps, c.buffered_seconds
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(", ")];
        if let Some(a) = &self.audio {
            parts.push(if a.capturing && a.synthetic {
                format!("audio: synthetic tone, {:.0} dBFS", a.level_dbfs)
            } else if a.capturing {
                format!("audio {:.0} dBFS", a.level_dbfs)
            } else {
                format!("audio {}", cut(&a.state))
            });
        }
        if let Some(d) = &self.disk {
            parts.push(match &d.error {
                Some(why) => format!("disk: {}", cut(why)),
                None => format!("disk {} free", crate::storage::size(d.free_bytes)),
            });
        }
        parts.join("; ")
    }
}

impl CameraStatus {
    /// Why it delivers nothing now, without the status's "camera lost: " before it.
    pub fn lost_why(&self) -> Option<&str> {
        self.last_error
            .as_deref()
            .map(|e| e.trim_start_matches("camera lost: "))
    }
}

/// `; 0.980 s of it silence put in for audio that did not come (...)`, or nothing when
/// none was put in: how the log and `ctl status` say a WAV's put-in silence.
pub fn silence_said(frames: u64, rate: u32) -> String {
    if frames == 0 {
        return String::new();
    }
    format!(
        "; {:.3} s of it silence put in for audio that did not come (a lost input, an overrun)",
        frames as f64 / f64::from(rate.max(1))
    )
}

impl FileSummary {
    /// `436 frames, 15.0 s, 0 missing`, and `; camera lost 3 times, 0.6 s without frames`
    /// where the camera was lost while the file was open (its frame numbers need not show
    /// it: a program's or a network camera's are counted by hindsight). How the log and
    /// the notices say a finished file.
    pub fn figures(&self) -> String {
        let mut s = format!(
            "{} frames, {:.1} s, {} missing",
            self.frames, self.duration_s, self.missing_frames
        );
        if self.camera_losses > 0 {
            s.push_str(&format!(
                "; camera lost {} time{}, {:.1} s without frames",
                self.camera_losses,
                if self.camera_losses == 1 { "" } else { "s" },
                self.camera_lost_s
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_each_camera_the_microphone_and_the_disk() {
        let mut s = Status::default();
        s.cameras.push(CameraStatus {
            name: "top".into(),
            fps: 99.6,
            target_fps: 100.0,
            buffered_seconds: 20.0,
            ..Default::default()
        });
        s.cameras.push(CameraStatus {
            name: "side".into(),
            lost: true,
            last_error: Some(format!(
                "camera lost: the program exited{}",
                " and".repeat(60)
            )),
            ..Default::default()
        });
        s.audio = Some(AudioStatus {
            state: "lost: no audio for 5 s; reopening".into(),
            ..Default::default()
        });
        s.disk = Some(DiskStatus {
            free_bytes: 71_900_000_000,
            ..Default::default()
        });
        let h = s.health();
        let cut = format!("the program exited{}", " and".repeat(60));
        let cut: String = cut.chars().take(200).collect();
        assert_eq!(
            h,
            format!(
                "top 100/100 fps 20.0 s buffered, side LOST ({cut}…); \
                 audio lost: no audio for 5 s; reopening; disk 67.0 GiB free"
            )
        );
        // What is ready says only its figures; a disk that cannot be used says why.
        s.cameras.truncate(1);
        s.audio.as_mut().unwrap().capturing = true;
        s.audio.as_mut().unwrap().level_dbfs = -30.2;
        s.disk.as_mut().unwrap().error = Some("the disk is read-only".into());
        assert_eq!(
            s.health(),
            "top 100/100 fps 20.0 s buffered; audio -30 dBFS; disk: the disk is read-only"
        );
    }

    #[test]
    fn a_finished_file_says_its_camera_losses() {
        let mut s = FileSummary {
            frames: 436,
            duration_s: 15.0,
            ..FileSummary::default()
        };
        assert_eq!(s.figures(), "436 frames, 15.0 s, 0 missing");
        s.camera_losses = 3;
        s.camera_lost_s = 0.61;
        assert_eq!(
            s.figures(),
            "436 frames, 15.0 s, 0 missing; camera lost 3 times, 0.6 s without frames"
        );
    }
}
