//! Puts video frames and audio blocks into one file in time order.
//!
//! Video reaches the writer at once (the buffered frames, then each live frame), audio a
//! little later (the sound card's and the audio thread's latency: up to a couple of
//! seconds with some servers). So video is held back until the audio covering it has
//! come, but never more than `hold` of capture time: a missing or late microphone must
//! not stall the video file. A frame goes as soon as an audio block reaching past its
//! time has gone (audio comes in order, so none can come before it any more): held until
//! the next block began after it, the frames of a sound server's 2 s bursts waited a
//! burst more, and a crash lost 3 s of this file's video where the WAV lost 1. Audio that comes later than the video already written is
//! written when it comes (Matroska allows it within a cluster's reach). Likewise audio
//! waits for the video of its time, but not once newer audio has come `hold` after it:
//! a camera lost in the middle of a recording must not keep the audio of its absence in
//! memory (a second of stereo 48 kHz is 192 kB) and out of the file until it is back, nor
//! one lost before the recording began (whose file then has no frame yet) the audio of
//! the whole recording.

use std::collections::VecDeque;
use std::time::Duration;

use super::AudioTrackSpec;
use crate::clock::LslTime;
use crate::frame::Frame;

/// PCM samples (16-bit little-endian, interleaved) whose first sample was captured at `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioBlock {
    pub at: LslTime,
    pub pcm: Vec<u8>,
}

#[derive(Debug)]
pub enum Item {
    Video(Frame),
    Audio(AudioBlock),
}

#[derive(Debug)]
pub struct Interleaver {
    video: VecDeque<Frame>,
    audio: VecDeque<AudioBlock>,
    /// No more audio will come for this file.
    pub audio_done: bool,
    /// Time of the newest video frame handed out.
    last_video: Option<LslTime>,
    /// Where the newest audio block handed out ends (its last sample's time plus one
    /// sample): video before it goes without waiting for more audio.
    audio_until: Option<LslTime>,
    track: AudioTrackSpec,
    hold: Duration,
    /// Until the first audio block comes, video waits for it until this time of the
    /// writer's clock (`hold` after the file opened), however much of it there is: a
    /// recording starts with its whole pre-trigger buffer at once, whose audio the audio
    /// thread sends as soon as it can. Going by the frames' own times, all but the last
    /// `hold` of a 20 s buffer went before its audio came, and that audio, too far behind
    /// the video written for a Matroska cluster to take it, was left out of the file.
    first_audio_by: Option<LslTime>,
}

impl Interleaver {
    /// `opened`: the writer's clock when the file opened; `track`: the audio's rate and
    /// channels (16-bit samples), which give a block's length.
    pub fn new(hold: Duration, opened: LslTime, track: AudioTrackSpec) -> Interleaver {
        Interleaver {
            video: VecDeque::new(),
            audio: VecDeque::new(),
            audio_done: false,
            last_video: None,
            audio_until: None,
            track,
            hold,
            first_audio_by: Some(opened + hold),
        }
    }

    pub fn push_video(&mut self, f: Frame) {
        self.video.push_back(f);
    }

    pub fn push_audio(&mut self, b: AudioBlock) {
        self.first_audio_by = None;
        self.audio.push_back(b);
    }

    pub fn is_empty(&self) -> bool {
        self.video.is_empty() && self.audio.is_empty()
    }

    /// The next item to write, in time order; `closing`: everything goes, in order.
    /// `now`: the writer's clock.
    pub fn next(&mut self, closing: bool, now: LslTime) -> Option<Item> {
        match (self.video.front(), self.audio.front()) {
            (Some(v), Some(a)) => {
                // The file's first block is a video frame: it sets the file's time
                // origin (and audio from just before it goes in at time 0).
                if self.last_video.is_some() && a.at <= v.meta.capture {
                    self.pop_audio()
                } else {
                    self.pop_video()
                }
            }
            (Some(v), None) => {
                let newest = self.video.back().map_or(v.meta.capture, |b| b.meta.capture);
                let waited = newest.saturating_since(v.meta.capture);
                let first_audio_awaited = self.first_audio_by.is_some_and(|t| now < t);
                let covered = self.audio_until.is_some_and(|end| v.meta.capture < end);
                if closing
                    || self.audio_done
                    || covered
                    || (waited >= self.hold && !first_audio_awaited)
                {
                    self.pop_video()
                } else {
                    None
                }
            }
            (None, Some(a)) => {
                // Audio that the written video has already passed goes now; audio ahead
                // of it waits for the video that covers it, at most `hold` of audio. Before
                // the file's first frame (which sets its time origin) too: a frame that
                // comes later was captured later, so that audio goes to the writer, which
                // leaves it out, instead of piling up while a camera lost at the start
                // stays away.
                let newest = self.audio.back().map_or(a.at, |b| b.at);
                let video_missing = newest.saturating_since(a.at) >= self.hold;
                if closing || video_missing || self.last_video.is_some_and(|t| a.at <= t) {
                    self.pop_audio()
                } else {
                    None
                }
            }
            (None, None) => None,
        }
    }

    fn pop_audio(&mut self) -> Option<Item> {
        let a = self.audio.pop_front()?;
        let frame_bytes = 2 * u64::from(self.track.channels.max(1));
        let samples = a.pcm.len() as u64 / frame_bytes;
        let ns = samples * 1_000_000_000 / u64::from(self.track.rate.max(1));
        let end = a.at + Duration::from_nanos(ns);
        self.audio_until = Some(self.audio_until.map_or(end, |u| u.max(end)));
        Some(Item::Audio(a))
    }

    fn pop_video(&mut self) -> Option<Item> {
        let f = self.video.pop_front()?;
        self.last_video = Some(f.meta.capture);
        Some(Item::Video(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::WallTime;
    use crate::frame::FrameMeta;

    /// The writer's clock in these tests: past any wait for the first audio.
    const LATER: LslTime = LslTime::from_nanos(1_000_000_000_000);

    /// 1 kHz mono: `audio(ms)`'s 4 bytes are 2 ms of it.
    const TRACK: AudioTrackSpec = AudioTrackSpec {
        rate: 1000,
        channels: 1,
    };

    fn frame(ms: i64) -> Frame {
        Frame {
            meta: FrameMeta {
                seq: ms as u64,
                capture: LslTime::from_nanos(ms * 1_000_000),
                wall: WallTime::from_nanos(0),
                width: 1,
                height: 1,
                keyframe: true,
            },
            data: bytes::Bytes::from_static(b"f"),
        }
    }

    fn audio(ms: i64) -> AudioBlock {
        AudioBlock {
            at: LslTime::from_nanos(ms * 1_000_000),
            pcm: vec![0; 4],
        }
    }

    fn drain(i: &mut Interleaver, closing: bool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = i.next(closing, LATER) {
            out.push(match item {
                Item::Video(f) => format!("v{}", f.meta.capture.as_nanos() / 1_000_000),
                Item::Audio(a) => format!("a{}", a.at.as_nanos() / 1_000_000),
            });
        }
        out
    }

    #[test]
    fn video_waits_for_the_audio_that_covers_it() {
        let mut i = Interleaver::new(Duration::from_secs(3), LslTime::from_nanos(0), TRACK);
        for ms in [0, 10, 20, 30] {
            i.push_video(frame(ms));
        }
        assert!(drain(&mut i, false).is_empty(), "no audio yet: video waits");
        i.push_audio(audio(0));
        i.push_audio(audio(15));
        assert_eq!(drain(&mut i, false), ["v0", "a0", "v10", "a15"]);
        i.audio_done = true;
        assert_eq!(drain(&mut i, false), ["v20", "v30"]);
    }

    /// A sound server delivers in bursts (2 s through PulseAudio): the frames a block
    /// covers go as soon as it has gone, not only once the next block has come.
    #[test]
    fn video_covered_by_the_audio_written_goes_without_waiting_for_more() {
        let mut i = Interleaver::new(Duration::from_secs(3), LslTime::from_nanos(0), TRACK);
        for ms in (0..1000).step_by(10) {
            i.push_video(frame(ms));
        }
        // 500 ms of 1 kHz mono from 0.
        i.push_audio(AudioBlock {
            at: LslTime::from_nanos(0),
            pcm: vec![0; 1000],
        });
        let out = drain(&mut i, false);
        let mut want = vec!["v0".to_string(), "a0".to_string()];
        want.extend((10..500).step_by(10).map(|ms| format!("v{ms}")));
        assert_eq!(out, want, "every frame before 500 ms, none after");
        // The next block, from 500 ms: the frames it covers follow it.
        i.push_audio(AudioBlock {
            at: LslTime::from_nanos(500_000_000),
            pcm: vec![0; 200],
        });
        let out = drain(&mut i, false);
        assert_eq!(out[..2], ["a500", "v500"]);
        assert_eq!(out.last().unwrap(), "v590");
    }

    #[test]
    fn video_does_not_wait_longer_than_the_hold() {
        let mut i = Interleaver::new(Duration::from_millis(100), LslTime::from_nanos(0), TRACK);
        for ms in (0..=200).step_by(50) {
            i.push_video(frame(ms));
        }
        // Frames more than 100 ms older than the newest go without audio.
        assert_eq!(drain(&mut i, false), ["v0", "v50", "v100"]);
        // Late audio for the time already written goes at once.
        i.push_audio(audio(40));
        i.push_audio(audio(160));
        assert_eq!(drain(&mut i, false), ["a40", "v150", "a160"]);
    }

    /// A recording's pre-trigger buffer comes at once: its frames wait for the first
    /// audio (the buffer's own), up to `hold` of the writer's clock, not only `hold` of
    /// their own times; then they go with it, in time order.
    #[test]
    fn a_buffer_of_frames_waits_for_its_first_audio() {
        let opened = LslTime::from_nanos(50_000_000_000);
        let mut i = Interleaver::new(Duration::from_millis(100), opened, TRACK);
        for ms in (0..=1000).step_by(100) {
            i.push_video(frame(ms));
        }
        let soon = opened + Duration::from_millis(60);
        assert!(i.next(false, soon).is_none(), "went before its audio");
        i.push_audio(audio(0));
        i.push_audio(audio(450));
        let mut out = Vec::new();
        while let Some(item) = i.next(false, soon) {
            out.push(match item {
                Item::Video(f) => format!("v{}", f.meta.capture.as_nanos() / 1_000_000),
                Item::Audio(a) => format!("a{}", a.at.as_nanos() / 1_000_000),
            });
        }
        assert_eq!(
            out,
            [
                "v0", "a0", "v100", "v200", "v300", "v400", "a450", "v500", "v600", "v700", "v800",
                "v900"
            ]
        );
        // No audio at all: after `hold` of the writer's clock the frames go by their times.
        let mut i = Interleaver::new(Duration::from_millis(100), opened, TRACK);
        for ms in (0..=300).step_by(100) {
            i.push_video(frame(ms));
        }
        assert!(i.next(false, soon).is_none());
        let late = opened + Duration::from_millis(100);
        assert!(matches!(i.next(false, late), Some(Item::Video(_))));
    }

    #[test]
    fn audio_does_not_wait_longer_than_the_hold_for_a_lost_camera() {
        let mut i = Interleaver::new(Duration::from_millis(100), LslTime::from_nanos(0), TRACK);
        i.push_video(frame(0));
        i.push_audio(audio(0));
        assert_eq!(drain(&mut i, false), ["v0", "a0"]);
        // The camera is lost: audio goes once newer audio is 100 ms past it.
        for ms in (50..=300).step_by(50) {
            i.push_audio(audio(ms));
        }
        assert_eq!(drain(&mut i, false), ["a50", "a100", "a150", "a200"]);
        // Back: its frames and the audio after them in time order.
        i.push_video(frame(320));
        i.push_audio(audio(350));
        assert_eq!(drain(&mut i, false), ["a250", "a300", "v320"]);
        assert_eq!(drain(&mut i, true), ["a350"]);
    }

    /// A camera lost before the recording began: its file has no frame yet. The audio
    /// waits for the first frame no longer than the hold (it held all of it, the whole
    /// recording's, once); what goes before the first frame, the writer leaves out.
    #[test]
    fn audio_before_the_first_frame_waits_for_it_no_longer_than_the_hold() {
        let mut i = Interleaver::new(Duration::from_millis(100), LslTime::from_nanos(0), TRACK);
        for ms in (0..=500).step_by(50) {
            i.push_audio(audio(ms));
        }
        assert_eq!(
            drain(&mut i, false),
            ["a0", "a50", "a100", "a150", "a200", "a250", "a300", "a350", "a400"]
        );
        // The camera is back: its first frame sets the origin, then the audio in order.
        i.push_video(frame(520));
        i.push_video(frame(700));
        assert_eq!(drain(&mut i, false), ["v520", "a450", "a500"]);
        assert_eq!(drain(&mut i, true), ["v700"]);
    }

    #[test]
    fn the_first_frame_goes_before_audio_from_the_same_instant() {
        let mut i = Interleaver::new(Duration::from_secs(3), LslTime::from_nanos(0), TRACK);
        i.push_audio(audio(0));
        i.push_video(frame(0));
        i.push_video(frame(10));
        i.push_audio(audio(5));
        assert_eq!(drain(&mut i, false), ["v0", "a0", "a5"]);
        i.audio_done = true;
        assert_eq!(drain(&mut i, false), ["v10"]);
    }

    #[test]
    fn closing_writes_everything_in_order() {
        let mut i = Interleaver::new(Duration::from_secs(3), LslTime::from_nanos(0), TRACK);
        i.push_video(frame(0));
        i.push_video(frame(20));
        i.push_audio(audio(10));
        i.push_audio(audio(30));
        assert_eq!(drain(&mut i, true), ["v0", "a10", "v20", "a30"]);
        assert!(i.is_empty());
    }
}
