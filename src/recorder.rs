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
//!
//! What belongs here: the state machine and the vocabulary every layer shares about a
//! recording (`Command`, `Origin`, `TriggerSource`, `StopReason`, `State`, `FileKind`,
//! `Outcome`). What does not: time, I/O, threads; carrying decisions out (`control`).

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
            Command::Start { seconds: Some(s) } => write!(f, "start {}", Seconds(*s)),
            Command::Stop => write!(f, "stop"),
            Command::Clip { seconds } => write!(f, "clip {}", Seconds(*seconds)),
            Command::Mark { text } => write!(f, "mark {}", one_line(text)),
            Command::Status => write!(f, "status"),
        }
    }
}

/// A mark's text on one line, for log lines and answers: its line breaks and tabs as `\n`,
/// `\r`, `\t` (the files and LSL keep them as given).
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\n', '\r', '\t']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.into()
}

/// The first character of a mark that no file or reader would keep as written: a control
/// character other than a line break or tab (a NUL ends a Matroska chapter's title, and
/// CSV readers refuse it), with its place in the text (from 1).
fn unwritable(text: &str) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .map(|(i, c)| (i + 1, c))
}

/// A command's seconds as given, short: `60`, `0.5`, and `1e308` rather than its 309
/// digits (an answer, a log line, an LSL marker that repeats a bad input).
struct Seconds(f64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.abs() >= 1e15 {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Who or what gave a command, or ended a recording without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerSource {
    /// The local HTTP API (`hindsight ctl`, scripts, the web page).
    Api,
    /// An ntfy message.
    Ntfy,
    /// A key in the terminal dashboard.
    Key,
    /// An LSL marker.
    Lsl,
    /// A `start N` timer.
    Timer,
    /// SIGTERM or SIGINT.
    Signal,
    /// Free space below `storage.min_free`.
    DiskGuard,
    /// A camera (lost, back).
    Camera,
    /// A camera's writer (a file finished, a write error).
    Writer,
    /// The audio capture (where a recording's WAV starts).
    Audio,
    /// The rig's power and heat sensors (`src/power.rs`).
    Power,
    /// The process shutting down.
    Shutdown,
    /// `hindsight bench`.
    Bench,
    /// Unit tests.
    Test,
}

impl TriggerSource {
    /// As written in files, events and the status.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Api => "api",
            TriggerSource::Ntfy => "ntfy",
            TriggerSource::Key => "key",
            TriggerSource::Lsl => "lsl",
            TriggerSource::Timer => "timer",
            TriggerSource::Signal => "signal",
            TriggerSource::DiskGuard => "disk-guard",
            TriggerSource::Camera => "camera",
            TriggerSource::Writer => "writer",
            TriggerSource::Shutdown => "shutdown",
            TriggerSource::Bench => "bench",
            TriggerSource::Audio => "audio",
            TriggerSource::Power => "power",
            TriggerSource::Test => "test",
        }
    }
}

impl fmt::Display for TriggerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a command came from, recorded in files and events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub source: TriggerSource,
    /// The message as received (e.g. the ntfy text), for the record.
    pub text: String,
}

impl Origin {
    pub fn new(source: TriggerSource, text: impl Into<String>) -> Origin {
        Origin {
            source,
            text: text.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
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

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a file holds: a recording (start … stop) or a clip (the last N seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    Recording,
    Clip,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Recording => "recording",
            FileKind::Clip => "clip",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a recording (or one camera's file of it) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A stop command.
    Command(Origin),
    /// `start N` ran its N seconds.
    Timer,
    /// Free space fell below `storage.min_free`.
    DiskFull(String),
    /// Every camera's writer failed (a full disk without the guard, an unwritable root).
    WriteError(String),
    /// The process is shutting down (a signal, the service stopping).
    Shutdown,
    /// A clip's frames are all written.
    ClipComplete,
    /// A file still open when the next recording's opened (a defect: logged as an error).
    Superseded { by: u64 },
}

impl StopReason {
    /// The name analysis scripts see (the `recording_stopped` event's `reason`).
    pub fn kind(&self) -> &'static str {
        match self {
            StopReason::Command(_) => "command",
            StopReason::Timer => "timer",
            StopReason::DiskFull(_) => "disk_full",
            StopReason::WriteError(_) => "write_error",
            StopReason::Shutdown => "shutdown",
            StopReason::ClipComplete => "clip_complete",
            StopReason::Superseded { .. } => "superseded",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Command(o) => write!(f, "stop from {} ({})", o.source, o.text),
            StopReason::Timer => write!(f, "timer"),
            StopReason::DiskFull(why) => {
                write!(f, "stop from {} ({why})", TriggerSource::DiskGuard)
            }
            StopReason::WriteError(e) => write!(f, "failed: {e}"),
            StopReason::Shutdown => write!(f, "shutdown"),
            StopReason::ClipComplete => write!(f, "clip complete"),
            StopReason::Superseded { by } => write!(f, "superseded by recording {by}"),
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

    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Done(_) => OutcomeKind::Done,
            Outcome::NoOp(_) => OutcomeKind::NoOp,
            Outcome::Rejected(_) => OutcomeKind::Rejected,
            Outcome::Failed(_) => OutcomeKind::Failed,
        }
    }
}

/// An [`Outcome`] without its message: how the status, the API and the events name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    #[default]
    Done,
    NoOp,
    Rejected,
    Failed,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Done => "done",
            OutcomeKind::NoOp => "no-op",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::Failed => "failed",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// Cameras that deliver no usable frame now (lost, being reopened). A recording goes
    /// on without them; their files continue when they are back.
    lost: std::collections::BTreeSet<usize>,
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
            lost: Default::default(),
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

    /// What [`Recorder::set_buffering`] was told last.
    pub fn buffering(&self) -> bool {
        self.buffering
    }

    /// Camera `camera` delivers no usable frame: the recording in progress goes on with
    /// the others (and this one's file continues when it is back).
    pub fn camera_lost(&mut self, camera: usize) {
        self.lost.insert(camera);
    }

    /// Camera `camera` delivers again.
    pub fn camera_back(&mut self, camera: usize) {
        self.lost.remove(&camera);
    }

    /// The cameras lost now, in order.
    pub fn lost_cameras(&self) -> Vec<usize> {
        self.lost.iter().copied().collect()
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
                if let Some((at, c)) = unwritable(text) {
                    return Decision::only(Outcome::Rejected(format!(
                        "a mark cannot hold control characters: U+{:04X} at character {at} \
                         (line breaks and tabs are fine)",
                        c as u32
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
                        Some(id) => format!("marked \"{}\" in recording {id}", one_line(text)),
                        None => format!("marked \"{}\" (not recording)", one_line(text)),
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
        // A bad N is refused as such, during a recording too (which goes on untouched).
        let timer = match seconds {
            None => None,
            Some(s) => match checked_seconds(s) {
                Ok(d) => Some(now + d),
                Err(e) => {
                    return Decision::only(Outcome::Rejected(format!("start {}: {e}", Seconds(s))))
                }
            },
        };
        if let Some(r) = &self.recording {
            // A `start` given during a `start N` does not make it open-ended: say when it
            // stops, so that nobody walks away from a recording about to end.
            return Decision::only(Outcome::NoOp(format!(
                "already recording (recording {}, for {:.1} s{})",
                r.id,
                now.saturating_since(r.trigger).as_secs_f64(),
                match (r.until, seconds) {
                    (Some(u), _) => format!(
                        "; it stops by itself in {:.1} s",
                        u.saturating_since(now).as_secs_f64()
                    ),
                    // Nor does a `start N` end an open-ended one: said, lest the person
                    // who asked for N seconds take it to stop.
                    (None, Some(s)) => format!(
                        "; it goes on until a stop, not for the {} s asked",
                        Seconds(s)
                    ),
                    (None, None) => String::new(),
                }
            )));
        }
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
            Err(e) => {
                return Decision::only(Outcome::Rejected(format!("clip {}: {e}", Seconds(seconds))))
            }
        };
        if let Some(r) = &self.recording {
            return Decision::only(Outcome::NoOp(format!(
                "recording {} is running and already holds these frames",
                r.id
            )));
        }
        // Not a state that passes but this rig's configuration: refused (a script's
        // `hindsight ctl clip 30` exits 1), not a no-op that reads as done.
        if self.pre_trigger.is_zero() {
            return Decision::only(Outcome::Rejected(
                "a clip needs the pre-trigger buffer, which this rig's configuration turns off \
                 (buffer.enabled: false or buffer.duration: 0)"
                    .into(),
            ));
        }
        let id = self.take_id();
        let kept = d.min(self.pre_trigger);
        // Tenths, and a clip shorter than a tenth as asked (not "0.0 s").
        let secs = kept.as_secs_f64();
        let shown = if secs >= 0.1 {
            format!("{secs:.1}")
        } else {
            format!("{secs:.3}").trim_end_matches('0').to_string()
        };
        let mut msg = format!("recording {id}: a clip of the last {shown} s");
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
        self.end(StopReason::WriteError(why.to_string()), now)
    }

    /// Free space is below the guard: the recording in progress stops, and says why.
    pub fn disk_full(&mut self, why: &str, now: LslTime) -> Option<Decision> {
        self.end(StopReason::DiskFull(why.to_string()), now)
    }

    /// Ends the recording in progress for `reason` (not a command: nobody waits for a
    /// reply).
    fn end(&mut self, reason: StopReason, now: LslTime) -> Option<Decision> {
        let r = self.recording.take()?;
        let outcome = Outcome::Done(format!(
            "stopped recording {} after {:.1} s: {}",
            r.id,
            now.saturating_since(r.trigger).as_secs_f64(),
            match &reason {
                StopReason::DiskFull(why) | StopReason::WriteError(why) => why.clone(),
                other => other.to_string(),
            }
        ));
        Some(Decision {
            actions: vec![Action::StopRecording {
                id: r.id,
                at: now,
                reason,
            }],
            outcome,
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
                "recording (recording {}, {:.1} s so far{}{})",
                r.id,
                now.saturating_since(r.trigger).as_secs_f64(),
                match r.until {
                    Some(u) => format!(", {:.1} s left", u.saturating_since(now).as_secs_f64()),
                    None => String::new(),
                },
                match self.lost.len() {
                    0 => String::new(),
                    1 => ", 1 camera lost".to_string(),
                    n => format!(", {n} cameras lost"),
                }
            ),
            None => self.state().as_str().to_string(),
        }
    }
}

/// A `start N` or `clip N` whose N is out of range.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("seconds must be more than 0 and at most {MAX_COMMAND_SECONDS}")]
pub struct BadSeconds;

fn checked_seconds(s: f64) -> Result<Duration, BadSeconds> {
    if s.is_finite() && s > 0.0 && s <= MAX_COMMAND_SECONDS {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(BadSeconds)
    }
}

#[cfg(test)]
mod tests;
