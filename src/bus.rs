//! The wires between threads: what is sent, to whom, and nothing else.
//!
//! - [`CommandBus`]: where every trigger source (API, ntfy, keys, LSL markers, the disk
//!   guard, signals) sends [`Command`]s to the control thread, stamped with when they
//!   happened, and hears the outcome ([`Reply`]).
//! - [`LslMsg`]: what the LSL thread is told by the capture threads (a [`FrameRecord`] per
//!   frame), the control thread (recording windows, events) and the audio thread.
//! - [`DiskFull`](CommandBus::disk_full): the disk guard's stop, a typed message, not a
//!   command from a pretend source; [`power`](CommandBus::power): the rig's power and
//!   heat, seen by the disk thread, for control to say and write into the recordings.
//! - [`CameraEvent`]: what a capture thread tells the control thread about its camera.
//!
//! Types only, and the bus's handles: no thread runs here, and this module imports only
//! the leaves (`recorder`'s command types, `clock`), so that every layer can use them
//! without importing the threads at the other end.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::clock::{ClockPair, LslTime, WallTime};
use crate::event::Event;
use crate::recorder::{Command, Origin, Outcome, State};
use crate::shutdown::{Shutdown, Stage};

/// The answer to a command.
#[derive(Clone, Debug)]
pub struct Reply {
    pub outcome: Outcome,
    pub state: State,
    /// Files this command made (each with its header and first frame written).
    pub files: Vec<String>,
}

/// A command on its way to the control thread.
pub struct Envelope {
    pub command: Command,
    pub origin: Origin,
    /// When the trigger source received it: the command's time.
    pub received: ClockPair,
    /// How that time was found, when it is not the arrival (a replayed message whose send
    /// time has a coarse resolution): said in the reply and the LSL event.
    pub note: Option<String>,
    pub reply: Option<tokio::sync::oneshot::Sender<Reply>>,
}

/// One command of a batch: what it is, where from, when, and how that time was found.
pub struct Timed {
    pub command: Command,
    pub origin: Origin,
    pub at: ClockPair,
    pub note: Option<String>,
}

pub(crate) enum ControlMsg {
    Command(Envelope),
    /// Commands that arrived together (replayed after a reconnection), carried out in
    /// order as one step: a start learns of the stop that follows it, so that it records
    /// the span that was asked for.
    Batch(Vec<Envelope>),
    /// Free space is below `storage.min_free` (the disk guard): the recording in progress
    /// stops, for this reason.
    DiskFull(String),
    /// The rig's power or heat changed (`src/power.rs`), seen at this time.
    Power(crate::power::Change, LslTime),
    /// Wakes the control thread for the shutdown [`CommandBus::shutdown`] asked for.
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the recorder is shutting down")]
    Closed,
    #[error("no answer from the recorder within {0:?}")]
    Timeout(Duration),
}

/// The outcomes of a batch of commands already sent ([`CommandBus::post_batch`]).
pub struct Answers(Vec<tokio::sync::oneshot::Receiver<Reply>>);

impl Answers {
    /// Waits for each outcome, in order (at most 10 s each).
    pub async fn replies(self) -> Result<Vec<Reply>, BusError> {
        let limit = Duration::from_secs(10);
        let mut replies = Vec::with_capacity(self.0.len());
        for rx in self.0 {
            match tokio::time::timeout(limit, rx).await {
                Ok(Ok(r)) => replies.push(r),
                Ok(Err(_)) => return Err(BusError::Closed),
                Err(_) => return Err(BusError::Timeout(limit)),
            }
        }
        Ok(replies)
    }
}

/// Where every trigger source sends commands. Cheap to clone.
#[derive(Clone)]
pub struct CommandBus {
    tx: Sender<ControlMsg>,
    shutdown: Shutdown,
}

impl CommandBus {
    /// Sends one command that happened at `at`, with where its answer goes.
    fn post(
        &self,
        command: Command,
        origin: Origin,
        at: ClockPair,
        reply: Option<tokio::sync::oneshot::Sender<Reply>>,
    ) -> Result<(), BusError> {
        self.tx
            .send(ControlMsg::Command(Envelope {
                command,
                origin,
                received: at,
                note: None,
                reply,
            }))
            .map_err(|_| BusError::Closed)
    }

    /// Sends a command stamped now; the outcome is logged, not returned.
    pub fn send(&self, command: Command, origin: Origin) -> Result<(), BusError> {
        self.post(command, origin, ClockPair::now(), None)
    }

    /// Sends a command that happened at `at` (a marker's own timestamp, say); the outcome
    /// is logged, not returned.
    pub fn send_at(&self, command: Command, origin: Origin, at: ClockPair) -> Result<(), BusError> {
        self.post(command, origin, at, None)
    }

    /// Sends a command stamped now and waits for its outcome.
    pub async fn request(&self, command: Command, origin: Origin) -> Result<Reply, BusError> {
        self.request_at(command, origin, ClockPair::now()).await
    }

    /// Sends a command that happened at `at` and waits for its outcome.
    pub async fn request_at(
        &self,
        command: Command,
        origin: Origin,
        at: ClockPair,
    ) -> Result<Reply, BusError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.post(command, origin, at, Some(tx))?;
        let limit = Duration::from_secs(10);
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(BusError::Closed),
            Err(_) => Err(BusError::Timeout(limit)),
        }
    }

    /// Sends commands that arrived together, to be carried out in order as one step, at
    /// once; their outcomes come later ([`Answers::replies`]). A source that reads commands
    /// one after another posts each as it comes and waits for the answers elsewhere: a
    /// start's answer waits for its files, and the commands after it must not.
    pub fn post_batch(&self, batch: Vec<Timed>) -> Result<Answers, BusError> {
        let mut answers = Vec::with_capacity(batch.len());
        let mut envelopes = Vec::with_capacity(batch.len());
        for t in batch {
            let (tx, rx) = tokio::sync::oneshot::channel();
            answers.push(rx);
            envelopes.push(Envelope {
                command: t.command,
                origin: t.origin,
                received: t.at,
                note: t.note,
                reply: Some(tx),
            });
        }
        self.tx
            .send(ControlMsg::Batch(envelopes))
            .map_err(|_| BusError::Closed)?;
        Ok(Answers(answers))
    }

    /// Sends a command stamped now; its outcome comes on the receiver returned (for the
    /// in-process dashboard's keys, which do not wait for it: a key pressed meanwhile is
    /// stamped when it is pressed, and the screen keeps being drawn).
    pub fn post_now(
        &self,
        command: Command,
        origin: Origin,
    ) -> Result<tokio::sync::oneshot::Receiver<Reply>, BusError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.post(command, origin, ClockPair::now(), Some(tx))?;
        Ok(rx)
    }

    /// The disk thread's look at the rig's power and heat found `change` at `at`.
    pub fn power(&self, change: crate::power::Change, at: LslTime) -> Result<(), BusError> {
        self.tx
            .send(ControlMsg::Power(change, at))
            .map_err(|_| BusError::Closed)
    }

    /// The disk guard found free space below `storage.min_free` (`why` says how much):
    /// the recording in progress stops.
    pub fn disk_full(&self, why: String) -> Result<(), BusError> {
        self.tx
            .send(ControlMsg::DiskFull(why))
            .map_err(|_| BusError::Closed)
    }

    /// Asks for a graceful shutdown: moves the process's [`Shutdown`] to
    /// [`Stage::Finishing`] and wakes the control thread, which finishes the recordings;
    /// then the threads stop in their order.
    pub fn shutdown(&self) {
        self.shutdown.advance(Stage::Finishing);
        let _ = self.tx.send(ControlMsg::Shutdown);
    }
}

/// Creates the bus and its receiving end, with a shutdown handle of its own.
pub fn command_bus() -> (CommandBus, ControlInbox) {
    command_bus_for(Shutdown::new())
}

/// Creates the bus and its receiving end for the process's `shutdown` handle.
pub fn command_bus_for(shutdown: Shutdown) -> (CommandBus, ControlInbox) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (CommandBus { tx, shutdown }, ControlInbox { rx })
}

/// The control thread's end of the bus.
pub struct ControlInbox {
    pub(crate) rx: Receiver<ControlMsg>,
}

#[cfg(test)]
impl ControlInbox {
    /// The next message on the bus, of any kind (for tests of what sends them).
    pub(crate) fn next_message(&self, timeout: Duration) -> Option<ControlMsg> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next command sent on the bus (for tests of trigger sources).
    pub(crate) fn next_command(&self, timeout: Duration) -> Option<Envelope> {
        match self.rx.recv_timeout(timeout) {
            Ok(ControlMsg::Command(env)) => Some(env),
            _ => None,
        }
    }
}

/// One captured frame, as the frame stream needs it. Small and `Copy`: the capture
/// thread sends it by value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameRecord {
    pub camera: u16,
    pub seq: u64,
    pub capture: LslTime,
    pub wall: WallTime,
    pub keyframe: bool,
}

/// What the LSL thread is told.
#[derive(Debug)]
pub enum LslMsg {
    Frame(FrameRecord),
    /// Recording `id` is active from `start` (the trigger), until `end` if known.
    RecordingStarted {
        id: u64,
        start: LslTime,
        end: Option<LslTime>,
    },
    RecordingStopped {
        id: u64,
        end: LslTime,
    },
    /// An event on the events stream of `camera` (every camera when `None`), at `at`.
    Event {
        camera: Option<usize>,
        at: LslTime,
        event: Event,
    },
    /// An audio chunk: its index, its first sample's index, and that sample's capture time.
    AudioChunk {
        index: u64,
        first_sample: u64,
        at: LslTime,
    },
}

/// What a capture thread tells the control thread about its camera.
#[derive(Clone, Debug, PartialEq)]
pub enum CameraEvent {
    /// The camera stopped delivering usable frames (unplugged, stream closed, program
    /// exited, only corrupt or wrong-size frames). A recording in progress goes on: its
    /// file for this camera continues when the camera is back.
    Lost {
        camera: usize,
        why: String,
        /// When its last usable frame was captured (or when it was found lost, if none).
        at: LslTime,
    },
    /// A frame captured after the time the control thread asked about
    /// ([`crate::capture::Camera::watch_frame_after`]) came in.
    FrameAfter { camera: usize },
    /// Usable frames again, the first captured at `at`.
    Back {
        camera: usize,
        at: LslTime,
        /// From the last usable frame before the loss to this one.
        gap: Duration,
        /// What the camera is (kind, model, size, rate, codec), when these are its first
        /// frames in this process (a camera not opened at start-up): the events stream,
        /// the recording's events and the log then carry the size its stream's LSL
        /// description could not.
        first: Option<String>,
    },
}
