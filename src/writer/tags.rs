//! The Matroska tags hindsight writes into every file: one typed struct, and the one
//! place that names the keys. Analysis scripts read these keys (`mkvinfo`,
//! `ffprobe -show_format`): renaming one is a change of the file format.
//!
//! What does not belong here: how tags are encoded (the `mkv` crate), the sidecars'
//! columns (`sidecar.rs`).

use std::time::Duration;

use crate::clock::{LslTime, WallTime};
use crate::frame::TIMESTAMP_UNIT_NS;
use crate::recorder::Origin;

use super::FileKind;

/// What identifies a camera in its files: the same for every recording of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CameraTags {
    /// The camera's name in the configuration.
    pub camera: String,
    /// What the source is (kind, size, rate, codec), as `check` prints it.
    pub source: String,
    /// The device or URL it was opened from (without a password).
    pub source_id: String,
    pub host: String,
    pub rig: String,
    /// The libcamera controls it was started with and what its first frames reported of
    /// them (empty: none set; then no tag).
    pub controls: String,
}

/// Every tag of one file. Made when the file's first frame is known: its times are in
/// the tags.
#[derive(Clone, Debug)]
pub struct FileTags<'a> {
    pub camera: &'a CameraTags,
    /// The first frame's capture time on the LSL clock.
    pub first_frame: LslTime,
    pub first_frame_number: u64,
    pub first_frame_wall: WallTime,
    pub trigger: LslTime,
    pub origin: &'a Origin,
    /// The pre-trigger length asked for.
    pub pre_trigger: Duration,
    pub kind: FileKind,
    pub recording_id: u64,
    /// Which file of the recording's video this is (1, or more where a file size limit
    /// made it go on in parts).
    pub part: u32,
}

/// The program that wrote the file, as its tags and Info say.
pub fn writing_app() -> String {
    format!("hindsight {}", env!("CARGO_PKG_VERSION"))
}

impl FileTags<'_> {
    /// The tags as (key, value) pairs, in the order they are written.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let actual = self.trigger.nanos_since(self.first_frame).max(0) as f64 / 1e9;
        let c = self.camera;
        let part = (self.part > 1).then(|| ("PART", self.part.to_string()));
        let controls = (!c.controls.is_empty()).then(|| ("CAMERA_CONTROLS", c.controls.clone()));
        [
            ("LSL_FIRST_FRAME_TIME", self.first_frame.to_string()),
            (
                "LSL_CLOCK",
                "CLOCK_MONOTONIC (lsl::local_clock)".to_string(),
            ),
            ("FIRST_FRAME_NUMBER", self.first_frame_number.to_string()),
            ("FIRST_FRAME_UNIX_TIME", self.first_frame_wall.to_string()),
            ("TRIGGER_LSL_TIME", self.trigger.to_string()),
            ("TRIGGER_SOURCE", self.origin.source.to_string()),
            ("TRIGGER_MESSAGE", self.origin.text.clone()),
            (
                "PRE_TRIGGER_SECONDS",
                format!("{:.3}", self.pre_trigger.as_secs_f64()),
            ),
            ("PRE_TRIGGER_SECONDS_ACTUAL", format!("{actual:.6}")),
            ("RECORDING_KIND", self.kind.as_str().to_string()),
            ("RECORDING_ID", self.recording_id.to_string()),
            ("TIMESTAMP_UNIT_NS", TIMESTAMP_UNIT_NS.to_string()),
            ("CAMERA", c.camera.clone()),
            ("SOURCE", c.source.clone()),
            ("SOURCE_ID", c.source_id.clone()),
            ("HOST", c.host.clone()),
            ("RIG", c.rig.clone()),
            ("ENCODER", writing_app()),
        ]
        .into_iter()
        .chain(controls)
        .chain(part)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::TriggerSource;

    #[test]
    fn every_key_once_with_the_first_frames_times() {
        let camera = CameraTags {
            camera: "cam0".into(),
            source: "synthetic 64x48".into(),
            source_id: "synthetic".into(),
            host: "rig-pc".into(),
            rig: "rig1".into(),
            controls: String::new(),
        };
        let origin = Origin::new(TriggerSource::Api, "start");
        let tags = FileTags {
            camera: &camera,
            first_frame: LslTime::from_nanos(10_000_000_000),
            first_frame_number: 7,
            first_frame_wall: WallTime::from_nanos(1_700_000_000_000_000_000),
            trigger: LslTime::from_nanos(30_000_000_000),
            origin: &origin,
            pre_trigger: Duration::from_secs(20),
            kind: FileKind::Recording,
            recording_id: 3,
            part: 1,
        };
        assert!(
            tags.pairs().iter().all(|(k, _)| k != "PART"),
            "part 1 says nothing"
        );
        assert!(FileTags {
            part: 2,
            ..tags.clone()
        }
        .pairs()
        .contains(&("PART".to_string(), "2".to_string())));
        // A camera started with controls says which, in its own key.
        assert!(tags.pairs().iter().all(|(k, _)| k != "CAMERA_CONTROLS"));
        let controlled = CameraTags {
            controls: "ExposureTimeMode=Manual ExposureTime=2000".into(),
            ..camera.clone()
        };
        assert!(FileTags {
            camera: &controlled,
            ..tags.clone()
        }
        .pairs()
        .contains(&(
            "CAMERA_CONTROLS".to_string(),
            "ExposureTimeMode=Manual ExposureTime=2000".to_string()
        )));
        let tags = tags.pairs();
        let keys: std::collections::BTreeSet<_> = tags.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), tags.len(), "a key written twice: {tags:?}");
        let get = |k: &str| tags.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("PRE_TRIGGER_SECONDS_ACTUAL"), "20.000000");
        assert_eq!(get("FIRST_FRAME_NUMBER"), "7");
        assert_eq!(get("CAMERA"), "cam0");
        assert_eq!(get("TRIGGER_SOURCE"), "api");
        assert_eq!(get("RECORDING_ID"), "3");
    }
}
