//! The events stream's schema: what hindsight tells the lab, one JSON object per LSL
//! sample on each camera's `<rig>_<camera>_events` stream (and in LabRecorder's XDF).
//!
//! Analysis scripts parse these objects: the field names and the `event` values are a
//! contract, documented in the README ("LSL events"). Every event is a variant of
//! [`Event`], serialised here and nowhere else; one event per fact (a mark is a `mark`,
//! not also a `command`).
//!
//! What does not belong here: when an event is sent (the threads that see the fact), the
//! sample's timestamp (the sender's, beside the event), the frame and status streams.

use serde::Serialize;

use crate::recorder::{FileKind, OutcomeKind, TriggerSource};

/// One event. Serialised as `{"event": "<snake_case name>", ...fields}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A command (start, stop, clip, status) and how it went. The sample's time is the
    /// command's time (when its source received it, or the time it was sent, replayed).
    Command {
        command: String,
        source: TriggerSource,
        text: String,
        /// `done`, `no-op`, `rejected`, `failed`.
        outcome: OutcomeKind,
        message: String,
        /// How the command's time was found when it is not its arrival (a replayed ntfy
        /// message: its send time, to the second).
        time_note: Option<String>,
    },
    /// A mark. The sample's time is the mark's.
    Mark {
        text: String,
        source: TriggerSource,
        /// The recording it went into, if one was running.
        recording: Option<u64>,
    },
    /// A recording ended without a stop command: `reason` is `timer` (start N),
    /// `disk_full`, `write_error` or `shutdown`. The sample's time is the end.
    RecordingStopped {
        recording: u64,
        reason: &'static str,
        message: String,
    },
    /// A camera's file has its header and first frame.
    FileOpened {
        recording: u64,
        path: String,
        first_frame: u64,
        first_frame_lsl_time: f64,
        /// Its video's frame size: a camera whose frames change size goes on in a next
        /// file at the new one, and the frame stream's description keeps the first.
        width: u16,
        height: u16,
    },
    /// A camera's file is finished (or failed: `error`).
    FileClosed {
        recording: u64,
        /// `recording` or `clip`.
        kind: FileKind,
        path: String,
        frames: u64,
        first_frame: Option<u64>,
        last_frame: Option<u64>,
        missing_frames: u64,
        /// Times the camera was lost while the file was open, and for how long in all.
        camera_losses: u64,
        camera_lost_s: f64,
        duration_s: f64,
        error: Option<String>,
    },
    /// A camera's writer failed (disk full, unwritable).
    Error { recording: u64, message: String },
    /// A camera stopped delivering usable frames; the recording goes on.
    CameraLost {
        camera: String,
        recording: Option<u64>,
        message: String,
    },
    /// A lost camera delivers again.
    CameraBack {
        camera: String,
        recording: Option<u64>,
        message: String,
    },
    AudioFileOpened {
        recording: u64,
        path: String,
        first_sample_lsl_time: f64,
        /// The WAV's first sample in the count of the `_Audio` chunk markers'
        /// `first_sample_index`: where the file sits among the markers.
        first_sample_index: u64,
    },
    AudioFileClosed {
        recording: u64,
        path: String,
        frames: u64,
        /// Frames of it that are silence put in for audio that did not come.
        silence_frames: u64,
        duration_s: f64,
    },
    /// The audio input or an audio file failed.
    AudioError {
        recording: Option<u64>,
        message: String,
    },
    /// The audio input delivers again after a loss (an `audio_error` of the input).
    AudioBack {
        recording: Option<u64>,
        message: String,
    },
    /// The ntfy subscription's state changed.
    Ntfy { state: String, topic: String },
    /// The rig's power or heat (`src/power.rs`): `state` is `under_voltage` (a Raspberry
    /// Pi's supply gives too little), `power_ok` (none seen for 30 s), `cpu_hot` (80 °C,
    /// where a Pi slows its cores) or `cpu_cool` (below 75 °C again). The sample's time
    /// is when it was seen (looked at every second).
    Power {
        state: &'static str,
        recording: Option<u64>,
        message: String,
    },
}

impl Event {
    /// The JSON object sent as the LSL sample.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parsed(e: &Event) -> Value {
        serde_json::from_str(&e.to_json()).unwrap()
    }

    #[test]
    fn events_are_tagged_objects_with_the_documented_fields() {
        let e = Event::Command {
            command: "start 5".into(),
            source: TriggerSource::Ntfy,
            text: "Start Recording 5".into(),
            outcome: OutcomeKind::Done,
            message: "recording 1 started".into(),
            time_note: None,
        };
        assert_eq!(
            parsed(&e),
            json!({"event": "command", "command": "start 5", "source": "ntfy",
                   "text": "Start Recording 5", "outcome": "done",
                   "message": "recording 1 started", "time_note": null})
        );
        let e = Event::RecordingStopped {
            recording: 3,
            reason: "disk_full",
            message: "below 1 GiB".into(),
        };
        assert_eq!(parsed(&e)["event"], "recording_stopped");
        let e = Event::CameraLost {
            camera: "cam0".into(),
            recording: Some(2),
            message: "no frame for 5 s".into(),
        };
        assert_eq!(parsed(&e)["event"], "camera_lost");
        let e = Event::Mark {
            text: "trial 1".into(),
            source: TriggerSource::DiskGuard,
            recording: None,
        };
        assert_eq!(parsed(&e)["source"], "disk-guard");
        let e = Event::AudioBack {
            recording: Some(4),
            message: "after 4.0 s without audio (silence put in)".into(),
        };
        assert_eq!(
            parsed(&e),
            json!({"event": "audio_back", "recording": 4,
                   "message": "after 4.0 s without audio (silence put in)"})
        );
        let e = Event::Power {
            state: "cpu_hot",
            recording: None,
            message: "cpu-thermal at 81 °C".into(),
        };
        assert_eq!(
            parsed(&e),
            json!({"event": "power", "state": "cpu_hot", "recording": null,
                   "message": "cpu-thermal at 81 °C"})
        );
    }
}
