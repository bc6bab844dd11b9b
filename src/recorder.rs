//! The recorder state machine: what a command means in the current state.
//!
//! Plain code, no I/O and no clock reads: it is given the time of each command and
//! returns the [`Action`]s to carry out and an [`Outcome`] to report. The control thread
//! (`crate::control`) carries the actions out. Every trigger source (API, ntfy, keys, LSL
//! markers, timers) ends up here through the same [`Command`]s.
//!
//! States and their LSL status codes: idle (0), recording (1), buffering (2). A command
//! that makes no sense in the current state (start while recording, stop while not) is a
//! logged, reported no-op, never an error that stops anything.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::LslTime;

/// Longest `start N` / `clip N` accepted: a day.
pub const MAX_COMMAND_SECONDS: f64 = 86_400.0;
/// Longest mark text: an annotation, not a document (a CSV field, a chapter title and an
/// LSL string that every reader takes).
pub const MAX_MARK_CHARS: usize = 1000;

/// A command, from any trigger source.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Record the buffer, then live frames; with `seconds`, stop by itself after that long.
    Start {
        seconds: Option<f64>,
    },
    Stop,
    /// Write the last `seconds` from the buffer to a file; keep buffering.
    Clip {
        seconds: f64,
    },
    /// Put `text` on the event stream and in the current recording's events.
    Mark {
        text: String,
    },
    Status,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Start { seconds: None } => write!(f, "start"),
            Command::Start { seconds: Some(s) } => write!(f, "start {s}"),
            Command::Stop => write!(f, "stop"),
            Command::Clip { seconds } => write!(f, "clip {seconds}"),
            Command::Mark { text } => write!(f, "mark {text}"),
            Command::Status => write!(f, "status"),
        }
    }
}

/// Where a command came from, recorded in files and events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `api`, `ntfy`, `key`, `lsl`, `timer`, `signal`.
    pub source: String,
    /// The message as received (e.g. the ntfy text), for the record.
    pub text: String,
}

impl Origin {
    pub fn new(source: &str, text: impl Into<String>) -> Origin {
        Origin {
            source: source.to_string(),
            text: text.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Idle,
    Recording,
    Buffering,
}

impl State {
    /// The status code on LSL status streams (the old tool's values).
    pub fn lsl_code(self) -> u8 {
        match self {
            State::Idle => 0,
            State::Recording => 1,
            State::Buffering => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Recording => "recording",
            State::Buffering => "buffering",
        }
    }
}

/// Why a recording ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    Command(Origin),
    /// `start N` ran its N seconds.
    Timer,
    /// Every camera's writer failed (disk full, unwritable).
    Failed(String),
    Shutdown,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Command(o) => write!(f, "stop from {} ({})", o.source, o.text),
            StopReason::Timer => write!(f, "timer"),
            StopReason::Failed(e) => write!(f, "failed: {e}"),
            StopReason::Shutdown => write!(f, "shutdown"),
        }
    }
}

/// What the control thread must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Open files for recording `id`: buffered frames captured from `trigger - pre_trigger`
    /// on, then live frames; with `until`, live frames captured after it are not written.
    StartRecording {
        id: u64,
        trigger: LslTime,
        pre_trigger: Duration,
        until: Option<LslTime>,
        origin: Origin,
    },
    StopRecording {
        id: u64,
        at: LslTime,
        reason: StopReason,
    },
    /// Write buffered frames captured in `[from, to]` to a file of their own.
    Clip {
        id: u64,
        from: LslTime,
        to: LslTime,
        origin: Origin,
    },
    Mark {
        text: String,
        at: LslTime,
        recording: Option<u64>,
        origin: Origin,
    },
}

/// How a command went, for the reply and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// Nothing to do in this state (logged and reported, not an error).
    NoOp(String),
    /// The command itself was bad (e.g. a negative duration), or cannot be carried out now
    /// (the disk guard).
    Rejected(String),
    /// It was carried out and failed: no file could be made (a full disk, no camera
    /// delivering). Nothing was recorded.
    Failed(String),
}

impl Outcome {
    pub fn message(&self) -> &str {
        match self {
            Outcome::Done(m) | Outcome::NoOp(m) | Outcome::Rejected(m) | Outcome::Failed(m) => m,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::NoOp(_) => "no-op",
            Outcome::Rejected(_) => "rejected",
            Outcome::Failed(_) => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub outcome: Outcome,
}

impl Decision {
    fn only(outcome: Outcome) -> Decision {
        Decision {
            actions: Vec::new(),
            outcome,
        }
    }
}

/// The recording in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveRecording {
    pub id: u64,
    pub trigger: LslTime,
    pub pre_trigger: Duration,
    pub until: Option<LslTime>,
    pub origin: Origin,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Recorder {
    pre_trigger: Duration,
    /// Cameras are delivering and the buffer is enabled.
    buffering: bool,
    recording: Option<ActiveRecording>,
    next_id: u64,
}

impl Recorder {
    /// `pre_trigger` is the buffer length (zero when the buffer is disabled).
    pub fn new(pre_trigger: Duration) -> Recorder {
        Self::numbered_from(pre_trigger, 1)
    }

    /// A recorder whose first recording is number `first` (numbers continue across
    /// restarts: `crate::numbers`).
    pub fn numbered_from(pre_trigger: Duration, first: u64) -> Recorder {
        Recorder {
            pre_trigger,
            buffering: false,
            recording: None,
            next_id: first,
        }
    }

    /// The number the next recording or clip gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn state(&self) -> State {
        if self.recording.is_some() {
            State::Recording
        } else if self.buffering && !self.pre_trigger.is_zero() {
            State::Buffering
        } else {
            State::Idle
        }
    }

    pub fn recording(&self) -> Option<&ActiveRecording> {
        self.recording.as_ref()
    }

    /// The cameras started (or all stopped) delivering frames.
    pub fn set_buffering(&mut self, on: bool) {
        self.buffering = on;
    }

    /// When [`Recorder::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<LslTime> {
        self.recording.as_ref().and_then(|r| r.until)
    }

    pub fn handle(&mut self, cmd: &Command, origin: &Origin, now: LslTime) -> Decision {
        self.handle_until(cmd, origin, now, None)
    }

    /// As [`Recorder::handle`], for a command whose stop is already known (`known_end`):
    /// commands replayed together, a start followed by its stop. The recording takes no
    /// frame captured after it; the stop itself still comes as a command.
    pub fn handle_until(
        &mut self,
        cmd: &Command,
        origin: &Origin,
        now: LslTime,
        known_end: Option<LslTime>,
    ) -> Decision {
        match cmd {
            Command::Start { seconds } => self.start(*seconds, origin, now, known_end),
            Command::Stop => match self.recording.take() {
                Some(r) => Decision {
                    actions: vec![Action::StopRecording {
                        id: r.id,
                        at: now,
                        reason: StopReason::Command(origin.clone()),
                    }],
                    outcome: Outcome::Done(format!(
                        "stopped recording {} after {:.1} s",
                        r.id,
                        now.saturating_since(r.trigger).as_secs_f64()
                    )),
                },
                None => Decision::only(Outcome::NoOp("not recording: nothing to stop".into())),
            },
            Command::Clip { seconds } => self.clip(*seconds, origin, now),
            Command::Mark { text } => {
                let text = text.trim();
                if text.is_empty() {
                    return Decision::only(Outcome::Rejected("mark needs a text".into()));
                }
                let chars = text.chars().count();
                if chars > MAX_MARK_CHARS {
                    return Decision::only(Outcome::Rejected(format!(
                        "a mark is at most {MAX_MARK_CHARS} characters; this one has {chars}"
                    )));
                }
                let recording = self.recording.as_ref().map(|r| r.id);
                Decision {
                    actions: vec![Action::Mark {
                        text: text.to_string(),
                        at: now,
                        recording,
                        origin: origin.clone(),
                    }],
                    outcome: Outcome::Done(match recording {
                        Some(id) => format!("marked \"{text}\" in recording {id}"),
                        None => format!("marked \"{text}\" (not recording)"),
                    }),
                }
            }
            Command::Status => Decision::only(Outcome::Done(self.describe(now))),
        }
    }

    fn start(
        &mut self,
        seconds: Option<f64>,
        origin: &Origin,
        now: LslTime,
        known_end: Option<LslTime>,
    ) -> Decision {
        if let Some(r) = &self.recording {
            return Decision::only(Outcome::NoOp(format!(
                "already recording (recording {}, for {:.1} s)",
                r.id,
                now.saturating_since(r.trigger).as_secs_f64()
            )));
        }
        let timer = match seconds {
            None => None,
            Some(s) => match checked_seconds(s) {
                Ok(d) => Some(now + d),
                Err(e) => return Decision::only(Outcome::Rejected(format!("start {s}: {e}"))),
            },
        };
        let until = match (timer, known_end) {
            (Some(t), Some(e)) => Some(t.min(e)),
            (t, e) => t.or(e),
        };
        let id = self.take_id();
        let rec = ActiveRecording {
            id,
            trigger: now,
            pre_trigger: self.pre_trigger,
            until,
            origin: origin.clone(),
        };
        let action = Action::StartRecording {
            id,
            trigger: now,
            pre_trigger: self.pre_trigger,
            until,
            origin: origin.clone(),
        };
        let msg = match seconds {
            Some(s) => format!(
                "recording {id} started ({:.1} s before trigger), stops after {s} s",
                self.pre_trigger.as_secs_f64()
            ),
            None => format!(
                "recording {id} started ({:.1} s before trigger)",
                self.pre_trigger.as_secs_f64()
            ),
        };
        self.recording = Some(rec);
        Decision {
            actions: vec![action],
            outcome: Outcome::Done(msg),
        }
    }

    fn clip(&mut self, seconds: f64, origin: &Origin, now: LslTime) -> Decision {
        let d = match checked_seconds(seconds) {
            Ok(d) => d,
            Err(e) => return Decision::only(Outcome::Rejected(format!("clip {seconds}: {e}"))),
        };
        if let Some(r) = &self.recording {
            return Decision::only(Outcome::NoOp(format!(
                "recording {} is running and already holds these frames",
                r.id
            )));
        }
        if self.pre_trigger.is_zero() {
            return Decision::only(Outcome::NoOp(
                "the pre-trigger buffer is disabled: nothing to clip".into(),
            ));
        }
        let id = self.take_id();
        let kept = d.min(self.pre_trigger);
        let mut msg = format!("clip {id}: last {:.1} s", kept.as_secs_f64());
        if d > self.pre_trigger {
            msg.push_str(&format!(
                " (asked for {seconds} s; the buffer holds {:.1} s)",
                self.pre_trigger.as_secs_f64()
            ));
        }
        Decision {
            actions: vec![Action::Clip {
                id,
                from: now - kept,
                to: now,
                origin: origin.clone(),
            }],
            outcome: Outcome::Done(msg),
        }
    }

    /// Fires a `start N` timer that is due.
    pub fn tick(&mut self, now: LslTime) -> Option<Decision> {
        let due = self.recording.as_ref()?.until.is_some_and(|u| now >= u);
        if !due {
            return None;
        }
        let r = self.recording.take().expect("checked");
        let at = r.until.expect("checked");
        Some(Decision {
            actions: vec![Action::StopRecording {
                id: r.id,
                at,
                reason: StopReason::Timer,
            }],
            outcome: Outcome::Done(format!(
                "recording {} stopped by its timer after {:.1} s",
                r.id,
                at.saturating_since(r.trigger).as_secs_f64()
            )),
        })
    }

    /// A recording ended without a command (its writers failed).
    pub fn recording_failed(&mut self, id: u64, why: &str, now: LslTime) -> Option<Decision> {
        if self.recording.as_ref().map(|r| r.id) != Some(id) {
            return None;
        }
        self.recording = None;
        Some(Decision {
            actions: vec![Action::StopRecording {
                id,
                at: now,
                reason: StopReason::Failed(why.to_string()),
            }],
            outcome: Outcome::Done(format!("recording {id} stopped: {why}")),
        })
    }

    /// Stops a recording in progress because the process is shutting down.
    pub fn shutdown(&mut self, now: LslTime) -> Option<Action> {
        self.recording.take().map(|r| Action::StopRecording {
            id: r.id,
            at: now,
            reason: StopReason::Shutdown,
        })
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn describe(&self, now: LslTime) -> String {
        match &self.recording {
            Some(r) => format!(
                "recording (recording {}, {:.1} s so far{})",
                r.id,
                now.saturating_since(r.trigger).as_secs_f64(),
                match r.until {
                    Some(u) => format!(", {:.1} s left", u.saturating_since(now).as_secs_f64()),
                    None => String::new(),
                }
            ),
            None => self.state().as_str().to_string(),
        }
    }
}

fn checked_seconds(s: f64) -> Result<Duration, String> {
    if s.is_finite() && s > 0.0 && s <= MAX_COMMAND_SECONDS {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!(
            "seconds must be more than 0 and at most {MAX_COMMAND_SECONDS}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: f64) -> LslTime {
        LslTime::from_secs_f64(s)
    }

    fn api() -> Origin {
        Origin::new("api", "test")
    }

    fn buffering() -> Recorder {
        let mut r = Recorder::new(Duration::from_secs(20));
        r.set_buffering(true);
        r
    }

    #[test]
    fn states_follow_buffering_and_recording() {
        let mut r = Recorder::new(Duration::from_secs(20));
        assert_eq!(r.state(), State::Idle);
        r.set_buffering(true);
        assert_eq!(r.state(), State::Buffering);
        r.handle(&Command::Start { seconds: None }, &api(), t(100.0));
        assert_eq!(r.state(), State::Recording);
        r.handle(&Command::Stop, &api(), t(101.0));
        assert_eq!(r.state(), State::Buffering);
        assert_eq!(
            [State::Idle, State::Recording, State::Buffering].map(State::lsl_code),
            [0, 1, 2]
        );
    }

    #[test]
    fn start_records_the_buffer_then_stop_ends_it() {
        let mut r = buffering();
        let d = r.handle(&Command::Start { seconds: None }, &api(), t(100.0));
        assert_eq!(
            d.actions,
            vec![Action::StartRecording {
                id: 1,
                trigger: t(100.0),
                pre_trigger: Duration::from_secs(20),
                until: None,
                origin: api(),
            }]
        );
        assert!(matches!(d.outcome, Outcome::Done(_)));
        let d = r.handle(&Command::Stop, &api(), t(102.5));
        assert_eq!(
            d.actions,
            vec![Action::StopRecording {
                id: 1,
                at: t(102.5),
                reason: StopReason::Command(api()),
            }]
        );
    }

    /// A start replayed together with its stop takes no frame after the stop; the stop
    /// ends it at its own time.
    #[test]
    fn a_start_whose_stop_is_known_records_exactly_that_span() {
        let mut r = buffering();
        let d = r.handle_until(
            &Command::Start { seconds: None },
            &api(),
            t(10.0),
            Some(t(11.2)),
        );
        assert!(matches!(
            &d.actions[..],
            [Action::StartRecording { trigger, until: Some(u), .. }] if *trigger == t(10.0) && *u == t(11.2)
        ));
        let d = r.handle(&Command::Stop, &api(), t(11.2));
        assert!(matches!(
            &d.actions[..],
            [Action::StopRecording { at, .. }] if *at == t(11.2)
        ));
        // `start N` with a known stop before its N seconds: the earlier of the two.
        let d = r.handle_until(
            &Command::Start {
                seconds: Some(60.0),
            },
            &api(),
            t(20.0),
            Some(t(21.0)),
        );
        assert!(matches!(
            &d.actions[..],
            [Action::StartRecording { until: Some(u), .. }] if *u == t(21.0)
        ));
    }

    #[test]
    fn start_while_recording_and_stop_while_not_are_no_ops() {
        let mut r = buffering();
        let d = r.handle(&Command::Stop, &api(), t(1.0));
        assert!(d.actions.is_empty());
        assert!(matches!(d.outcome, Outcome::NoOp(_)));
        r.handle(&Command::Start { seconds: None }, &api(), t(2.0));
        let d = r.handle(&Command::Start { seconds: Some(5.0) }, &api(), t(3.0));
        assert!(d.actions.is_empty());
        assert!(matches!(d.outcome, Outcome::NoOp(_)));
        assert_eq!(
            r.recording().unwrap().id,
            1,
            "the running recording is untouched"
        );
        assert_eq!(r.recording().unwrap().until, None);
    }

    #[test]
    fn start_n_stops_by_itself_at_exactly_n_seconds() {
        let mut r = buffering();
        r.handle(&Command::Start { seconds: Some(2.0) }, &api(), t(10.0));
        assert_eq!(r.next_deadline(), Some(t(12.0)));
        assert!(r.tick(t(11.999)).is_none());
        let d = r.tick(t(12.3)).expect("due");
        assert_eq!(
            d.actions,
            vec![Action::StopRecording {
                id: 1,
                at: t(12.0),
                reason: StopReason::Timer
            }]
        );
        assert_eq!(r.state(), State::Buffering);
        assert!(r.tick(t(13.0)).is_none());
    }

    #[test]
    fn stop_before_the_timer_cancels_it() {
        let mut r = buffering();
        r.handle(
            &Command::Start {
                seconds: Some(60.0),
            },
            &api(),
            t(0.0),
        );
        r.handle(&Command::Stop, &api(), t(1.0));
        assert_eq!(r.next_deadline(), None);
        assert!(r.tick(t(61.0)).is_none());
    }

    #[test]
    fn clip_takes_the_last_n_seconds_and_keeps_buffering() {
        let mut r = buffering();
        let d = r.handle(&Command::Clip { seconds: 5.0 }, &api(), t(100.0));
        assert_eq!(
            d.actions,
            vec![Action::Clip {
                id: 1,
                from: t(95.0),
                to: t(100.0),
                origin: api()
            }]
        );
        assert_eq!(r.state(), State::Buffering);
        // Longer than the buffer: clipped to what it holds, and said so.
        let d = r.handle(&Command::Clip { seconds: 60.0 }, &api(), t(200.0));
        assert!(matches!(&d.actions[0], Action::Clip { from, .. } if *from == t(180.0)));
        assert!(
            d.outcome.message().contains("holds 20.0 s"),
            "{:?}",
            d.outcome
        );
    }

    #[test]
    fn clip_while_recording_or_without_buffer_is_a_no_op() {
        let mut r = buffering();
        r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
        let d = r.handle(&Command::Clip { seconds: 1.0 }, &api(), t(2.0));
        assert!(d.actions.is_empty() && matches!(d.outcome, Outcome::NoOp(_)));
        let mut r = Recorder::new(Duration::ZERO);
        r.set_buffering(true);
        assert_eq!(r.state(), State::Idle);
        let d = r.handle(&Command::Clip { seconds: 1.0 }, &api(), t(2.0));
        assert!(d.actions.is_empty() && matches!(d.outcome, Outcome::NoOp(_)));
    }

    #[test]
    fn start_without_buffer_records_from_the_trigger() {
        let mut r = Recorder::new(Duration::ZERO);
        let d = r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
        assert!(matches!(
            &d.actions[0],
            Action::StartRecording { pre_trigger, .. } if pre_trigger.is_zero()
        ));
        assert_eq!(r.state(), State::Recording);
        r.handle(&Command::Stop, &api(), t(2.0));
        assert_eq!(r.state(), State::Idle);
    }

    #[test]
    fn bad_durations_are_rejected_without_changing_state() {
        let mut r = buffering();
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            let d = r.handle(&Command::Start { seconds: Some(s) }, &api(), t(1.0));
            assert!(matches!(d.outcome, Outcome::Rejected(_)), "start {s}");
            let d = r.handle(&Command::Clip { seconds: s }, &api(), t(1.0));
            assert!(matches!(d.outcome, Outcome::Rejected(_)), "clip {s}");
        }
        assert_eq!(r.state(), State::Buffering);
    }

    #[test]
    fn marks_go_to_the_running_recording() {
        let mut r = buffering();
        let d = r.handle(
            &Command::Mark {
                text: "  trial 1 ".into(),
            },
            &api(),
            t(1.0),
        );
        assert!(
            matches!(&d.actions[0], Action::Mark { recording: None, text, .. } if text == "trial 1")
        );
        r.handle(&Command::Start { seconds: None }, &api(), t(2.0));
        let d = r.handle(
            &Command::Mark {
                text: "reward".into(),
            },
            &api(),
            t(3.0),
        );
        assert!(
            matches!(&d.actions[0], Action::Mark { recording: Some(1), at, .. } if *at == t(3.0))
        );
        let d = r.handle(&Command::Mark { text: "   ".into() }, &api(), t(3.0));
        assert!(matches!(d.outcome, Outcome::Rejected(_)));
    }

    #[test]
    fn ids_are_unique_across_recordings_and_clips() {
        let mut r = buffering();
        let mut ids = Vec::new();
        for i in 0..5 {
            let now = t(i as f64 * 10.0);
            for a in r
                .handle(&Command::Start { seconds: None }, &api(), now)
                .actions
            {
                if let Action::StartRecording { id, .. } = a {
                    ids.push(id)
                }
            }
            r.handle(&Command::Stop, &api(), now + Duration::from_secs(1));
            for a in r
                .handle(
                    &Command::Clip { seconds: 1.0 },
                    &api(),
                    now + Duration::from_secs(2),
                )
                .actions
            {
                if let Action::Clip { id, .. } = a {
                    ids.push(id)
                }
            }
        }
        let mut sorted = ids.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
    }

    #[test]
    fn a_failed_recording_returns_to_buffering_once() {
        let mut r = buffering();
        r.handle(&Command::Start { seconds: None }, &api(), t(1.0));
        assert!(
            r.recording_failed(99, "x", t(2.0)).is_none(),
            "other ids ignored"
        );
        let d = r.recording_failed(1, "disk full", t(2.0)).unwrap();
        assert!(matches!(
            &d.actions[0],
            Action::StopRecording {
                reason: StopReason::Failed(_),
                ..
            }
        ));
        assert_eq!(r.state(), State::Buffering);
        assert!(r.recording_failed(1, "disk full", t(2.0)).is_none());
    }

    #[test]
    fn status_describes_the_state() {
        let mut r = buffering();
        assert_eq!(
            r.handle(&Command::Status, &api(), t(0.0)).outcome.message(),
            "buffering"
        );
        r.handle(
            &Command::Start {
                seconds: Some(10.0),
            },
            &api(),
            t(0.0),
        );
        let m = r
            .handle(&Command::Status, &api(), t(4.0))
            .outcome
            .message()
            .to_string();
        assert!(
            m.contains("4.0 s so far") && m.contains("6.0 s left"),
            "{m}"
        );
    }
}
