//! The control thread: the executor of the recorder's decisions.
//!
//! Every trigger source (API, ntfy, keys, LSL markers) sends the same [`Command`]s on the
//! [`CommandBus`](crate::bus::CommandBus), stamped with the instant it received them. The
//! control thread runs the [`Recorder`] state machine on each and carries out its actions:
//! it names files, tells each camera's writer to open them, and hands the writer the
//! buffered frames (references, not copies) before live frames follow. It also keeps the
//! status that the API serves.
//!
//! What belongs here: carrying out the recorder's decisions (naming and opening files,
//! handing frames to writers, pending stops and replies), and telling the status, LSL,
//! ntfy and the events files what happened. What does not: deciding what a command means
//! (`recorder`), the messages themselves (`bus`), the status types (`status`, `hub`), the
//! events' schema (`event`), the files' tags (`writer::tags`). Its tests (`control/tests.rs`)
//! run it on a simulated clock. Threads, messages and the shutdown order:
//! `design/architecture.md`.

mod losses;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::Mutex;

use crate::audio::AudioCmd;
use crate::bus::{CameraEvent, ControlInbox, ControlMsg, Envelope, LslMsg, Reply};
use crate::capture::{overloaded, Camera};
use crate::clock::{ClockPair, Clocks, LslTime};
use crate::config::MaxFileSize;
use crate::event::Event;
use crate::flaps::Flaps;
use crate::hub::StatusHub;
use crate::recorder::{one_line, Action, Command, Decision, Origin, Outcome, Recorder, StopReason};
use crate::status::CommandStatus;
use crate::writer::files::{RecordingPaths, StemAllocator};
use crate::writer::tags::CameraTags;
use crate::writer::{FileKind, NoteKind, OpenSpec, WriterEvent, WriterMsg, WriterQueue};
use losses::LossLog;

/// Whether a command's decision made a mark (its own event says so).
fn made_mark(d: &Decision) -> bool {
    d.actions.iter().any(|a| matches!(a, Action::Mark { .. }))
}

/// What the control thread needs to name and tag files.
#[derive(Clone, Debug)]
pub struct ControlSettings {
    pub root: PathBuf,
    pub prefix: String,
    pub fsync_interval: Option<Duration>,
    pub rig: String,
    pub host: String,
    pub pre_trigger: Duration,
    /// The first camera's MKV also gets the audio, as this track.
    pub audio_track: Option<crate::writer::AudioTrackSpec>,
    /// `storage.max_file_size`: a recording goes on in a next file before its file grows
    /// past this.
    pub max_file_size: MaxFileSize,
    /// `storage.min_free`: below it no recording or clip starts.
    pub min_free: Option<u64>,
    /// The disk the root was on at start-up: no recording or clip starts while the root
    /// does not lead to it (`None`: not checked).
    pub root_fs: Option<crate::storage::RootFs>,
}

/// How long a stop waits for the frames exposed before it to come in from a camera that
/// has gone quiet (lost, or a very low frame rate).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How long the loop sleeps when nothing is due and no message comes. While every camera
/// delivers and the status says so: a second, for what is only looked at, not told (the
/// drop warnings; the numbers file's reservation, which keeps 30 s ahead). Otherwise
/// (start-up, a lost camera, a first frame since the last look): 100 ms, so that the
/// status says "buffering" soon after the last camera's first frame, which sends no
/// message. Everything else that is due has its own deadline in [`Control::wait`], and
/// every message wakes the loop at once.
const IDLE_WAIT: Duration = Duration::from_secs(1);
const IDLE_WAIT_UNTIL_DELIVERING: Duration = Duration::from_millis(100);

/// How often the cameras' drop counters are looked at (and their capture threads' CPU
/// read): at the first step this long after the last look, less `DROPS_EARLY` (the idle
/// loop wakes once a second); and at once when a recording starts or ends, so that each
/// loss is said with its recording.
const DROPS_EVERY: Duration = Duration::from_secs(1);
const DROPS_EARLY: Duration = Duration::from_millis(100);

/// A stop waiting for the frames captured before it: a camera delivers a frame some time
/// after its exposure, and a recording must end with the last frame exposed before the stop.
struct PendingStop {
    id: u64,
    at: LslTime,
    reason: StopReason,
    cameras: Vec<usize>,
    /// When the stop was decided, on the control clock.
    since: LslTime,
}

/// The `file_closed` event of a finished file (a recording's last, or one of its parts).
fn file_closed(id: u64, summary: &crate::status::FileSummary) -> Event {
    Event::FileClosed {
        recording: id,
        kind: summary.kind,
        path: summary.path.clone(),
        frames: summary.frames,
        first_frame: summary.first_frame_number,
        last_frame: summary.last_frame_number,
        missing_frames: summary.missing_frames,
        camera_losses: summary.camera_losses,
        camera_lost_s: summary.camera_lost_s,
        duration_s: summary.duration_s,
        error: summary.error.clone(),
    }
}

/// Whether a camera's file of a recording exists (its path) or will not (why).
enum FileKnown {
    Exists(String),
    NotMade(String),
}

/// Why the files of a recording or clip could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("cannot create the recording's files: {0}{hint}",
        hint = crate::writer::files::write_error_hint(.0, 0))]
    Files(std::io::Error),
    #[error("the writer of camera {0} is gone")]
    WriterGone(String),
}

/// Files of one recording or clip that are still open, per camera.
struct OpenFiles {
    paths: BTreeMap<usize, String>,
    failed: usize,
    /// Where its span ends, once known (a clip's at once, a recording's at its stop):
    /// what happens after it is not noted in its events files.
    end: Option<LslTime>,
}

/// How long the answer to a start or clip waits for its files to exist: the writers
/// announce each file once its header and first frame are written.
const REPLY_WAIT: Duration = Duration::from_millis(1500);

/// The answer to a start or clip, held until its files exist (or cannot), so that it never
/// names a file that was not made.
struct PendingReply {
    id: u64,
    tx: tokio::sync::oneshot::Sender<Reply>,
    outcome: Outcome,
    /// Cameras whose file is not known to exist yet.
    waiting: std::collections::BTreeSet<usize>,
    files: Vec<String>,
    /// Cameras that made no file, and why.
    problems: Vec<String>,
    deadline: LslTime,
    /// When the command was received (wall clock): the status's `last_command` while it
    /// is the last, which says "failed" too if no file was made.
    received_unix: f64,
}

/// See the module documentation.
pub struct Control {
    recorder: Recorder,
    cameras: Vec<Arc<Camera>>,
    writers: Vec<WriterQueue>,
    settings: ControlSettings,
    stems: StemAllocator,
    open: BTreeMap<u64, OpenFiles>,
    stops: Vec<PendingStop>,
    replies: Vec<PendingReply>,
    lsl: Option<Sender<LslMsg>>,
    audio: Option<Sender<AudioCmd>>,
    notices: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// A start whose buffer held less than was asked for: seconds held and asked, for
    /// the reply to the command being handled.
    short_buffer: Option<(f64, f64)>,
    /// Why the files of the command being handled could not be opened.
    start_problems: Vec<String>,
    /// Each camera's drop counters when last looked at (source gaps, held by writer, too
    /// large, writer queue full).
    drops_seen: BTreeMap<usize, [u64; 4]>,
    /// How each camera's losses are said in the log (at once, then once a minute).
    loss_logs: BTreeMap<usize, LossLog>,
    /// How each camera's losses and returns are said to people (at once, then once a
    /// minute while it keeps being lost).
    flaps: BTreeMap<usize, Flaps>,
    /// When the drop counters were last looked at, and the recording then.
    drops_looked: Option<(LslTime, Option<u64>)>,
    numbers: Option<Arc<Mutex<crate::numbers::Numbers>>>,
    /// Writing the numbers failed (reported once).
    numbers_failed: bool,
    hub: Arc<StatusHub>,
    clocks: Arc<dyn Clocks>,
    /// Since when a shutdown is finishing the open files (control clock).
    shutting_down: Option<LslTime>,
    /// The rig's power and heat changes (`src/power.rs`) as far back as a new recording
    /// reaches: its events file notes what went on in its pre-trigger span and at its
    /// start, or it would not say it.
    power_history: crate::power::History,
}

/// Where the control thread tells others what happened.
#[derive(Default)]
pub struct ControlLinks {
    /// LSL events and recording windows.
    pub lsl: Option<Sender<LslMsg>>,
    /// Short texts for people (files finished, errors): the ntfy reply topic.
    pub notices: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The audio thread: WAV files follow the recordings.
    pub audio: Option<Sender<AudioCmd>>,
    /// The rig's reserved numbers (kept ahead of what is used) and the first recording
    /// number of this process.
    pub numbers: Option<(Arc<Mutex<crate::numbers::Numbers>>, u64)>,
}

/// The next frame number of each camera: one past its newest frame, or the number its
/// first frame will get.
pub fn next_frames(cameras: &[Arc<Camera>]) -> BTreeMap<String, u64> {
    cameras
        .iter()
        .map(|c| {
            let next = c.stats.next_seq.load(std::sync::atomic::Ordering::Relaxed);
            (c.setup.name.clone(), next.max(c.setup.first_frame))
        })
        .collect()
}

impl Control {
    pub fn new(
        settings: ControlSettings,
        cameras: Vec<Arc<Camera>>,
        writers: Vec<WriterQueue>,
        hub: Arc<StatusHub>,
        clocks: Arc<dyn Clocks>,
        links: ControlLinks,
    ) -> Control {
        let ControlLinks {
            lsl,
            audio,
            notices,
            numbers,
        } = links;
        let first = numbers.as_ref().map_or(1, |(_, first)| *first);
        Control {
            recorder: Recorder::numbered_from(settings.pre_trigger, first),
            power_history: crate::power::History::new(settings.pre_trigger),
            numbers: numbers.map(|(n, _)| n),
            numbers_failed: false,
            cameras,
            writers,
            settings,
            stems: StemAllocator::default(),
            open: BTreeMap::new(),
            stops: Vec::new(),
            replies: Vec::new(),
            lsl,
            audio,
            notices,
            short_buffer: None,
            start_problems: Vec::new(),
            drops_seen: BTreeMap::new(),
            loss_logs: BTreeMap::new(),
            drops_looked: None,
            flaps: BTreeMap::new(),
            hub,
            clocks,
            shutting_down: None,
        }
    }

    /// Runs until a shutdown is asked for (or every bus handle is gone) and every open
    /// file is finished.
    pub fn run(
        mut self,
        inbox: ControlInbox,
        writer_events: Receiver<WriterEvent>,
        mut camera_events: Receiver<CameraEvent>,
    ) {
        loop {
            let wait = self.wait();
            select! {
                recv(inbox.rx) -> msg => match msg {
                    Ok(msg) => self.message(msg),
                    // Nobody can send any more: finish as for a shutdown.
                    Err(_) => self.message(ControlMsg::Shutdown),
                },
                recv(writer_events) -> ev => {
                    if let Ok(ev) = ev {
                        self.writer_event(ev);
                    }
                }
                recv(camera_events) -> ev => match ev {
                    Ok(ev) => self.camera_event(ev),
                    // No camera can report any more (tests): stop listening.
                    Err(_) => camera_events = crossbeam_channel::never(),
                },
                default(wait) => {}
            }
            self.step();
            if self.shutting_down.is_some() {
                self.drain_until_closed(&writer_events);
                self.answer_due(true);
                self.watch_drops();
                self.flush_loss_logs();
                self.publish();
                return;
            }
        }
    }

    /// How long the loop may wait for a message before something is due.
    fn wait(&self) -> Duration {
        let now = self.clocks.now().lsl;
        // The long wait only once the status says so too: a camera whose first frame came
        // after the last look is taken in at the next 100 ms.
        let delivering = crate::capture::all_delivering(&self.cameras);
        let mut wait = if delivering && self.recorder.buffering() {
            IDLE_WAIT
        } else {
            IDLE_WAIT_UNTIL_DELIVERING
        };
        if let Some(d) = self.recorder.next_deadline() {
            wait = wait.min(d.saturating_since(now));
        }
        // Pending stops close on their cameras' `FrameAfter` events; without one, when
        // their grace runs out.
        for stop in &self.stops {
            wait = wait.min((stop.since + STOP_GRACE).saturating_since(now));
        }
        if let Some(d) = self.replies.iter().map(|r| r.deadline).min() {
            wait = wait.min(d.saturating_since(now));
        }
        wait
    }

    /// One message from the bus.
    fn message(&mut self, msg: ControlMsg) {
        let running = self.shutting_down.is_none();
        match msg {
            ControlMsg::Command(env) if running => self.command(env, None),
            ControlMsg::Batch(envs) if running => self.batch(envs),
            ControlMsg::Command(env) => self.refuse_shutting_down(env),
            ControlMsg::Batch(envs) => {
                for env in envs {
                    self.refuse_shutting_down(env);
                }
            }
            ControlMsg::DiskFull(why) => self.disk_full(&why),
            ControlMsg::Power(change, at) => self.power(change, at),
            ControlMsg::Shutdown => {
                if running {
                    tracing::info!("shutting down: finishing open files");
                    let now = self.clocks.now();
                    self.shutting_down = Some(now.lsl);
                    if let Some(a) = self.recorder.shutdown(now.lsl) {
                        self.execute(vec![a], now);
                    }
                }
            }
        }
    }

    /// What is due after any message or wait: answers, a `start N` timer, stops whose
    /// frames are in, drop warnings, numbers, the published view.
    fn step(&mut self) {
        self.update_buffering();
        self.answer_due(false);
        let now = self.clocks.now();
        if let Some(d) = self.recorder.tick(now.lsl) {
            tracing::info!("{}", d.outcome.message());
            self.execute(d.actions, now);
        }
        self.close_stops(false);
        let recording = self.recorder.recording().map(|r| r.id);
        let due = self.drops_looked.is_none_or(|(at, r)| {
            r != recording || now.lsl.saturating_since(at) >= DROPS_EVERY - DROPS_EARLY
        });
        if due {
            self.watch_drops();
            self.watch_flaps();
        }
        self.keep_numbers_ahead();
        self.publish();
    }

    /// Waits (on the real clock: writers finish files in real time) up to 30 s of the
    /// control clock for the writers to report every open file closed.
    fn drain_until_closed(&mut self, events: &Receiver<WriterEvent>) {
        let limit = Duration::from_secs(30);
        let since = self.shutting_down.unwrap_or(self.clocks.now().lsl);
        while !self.open.is_empty() {
            self.close_stops(false);
            let left = limit.saturating_sub(self.clocks.now().lsl.saturating_since(since));
            if left.is_zero() {
                tracing::error!(
                    "files still open after {limit:?}: {:?}",
                    self.open
                        .values()
                        .flat_map(|o| o.paths.values())
                        .collect::<Vec<_>>()
                );
                return;
            }
            match events.recv_timeout(left.min(Duration::from_millis(5))) {
                Ok(ev) => self.writer_event(ev),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    tracing::error!("every writer is gone with files still open");
                    return;
                }
            }
        }
    }

    fn update_buffering(&mut self) {
        self.recorder
            .set_buffering(crate::capture::all_delivering(&self.cameras));
    }

    /// The disk guard: the recording in progress stops, and everyone hears why.
    fn disk_full(&mut self, why: &str) {
        let now = self.clocks.now();
        if let Some(d) = self.recorder.disk_full(why, now.lsl) {
            self.warn(format!("{why}; {}", d.outcome.message()));
            self.notice(format!("recording stopped: {why}"));
            self.execute(d.actions, now);
        }
    }

    fn refuse_shutting_down(&self, env: Envelope) {
        if let Some(tx) = env.reply {
            let _ = tx.send(Reply {
                outcome: Outcome::Rejected("shutting down".into()),
                state: self.recorder.state(),
                files: Vec::new(),
            });
        }
    }

    /// Commands that arrived together, in order, as one step: a start followed in the
    /// batch by a stop knows its end before any frame is handed to a writer.
    fn batch(&mut self, envs: Vec<Envelope>) {
        let ends: Vec<Option<LslTime>> = (0..envs.len())
            .map(|i| match envs[i].command {
                Command::Start { .. } => envs[i + 1..]
                    .iter()
                    .find(|e| e.command == Command::Stop)
                    .map(|e| e.received.lsl),
                _ => None,
            })
            .collect();
        for (env, end) in envs.into_iter().zip(ends) {
            self.command(env, end);
        }
    }

    /// Carries out one command. `known_end`: the stop that follows a start in its batch.
    fn command(&mut self, env: Envelope, known_end: Option<LslTime>) {
        let Envelope {
            command,
            origin,
            received,
            note: timing,
            reply,
        } = env;
        let refused = match command {
            Command::Start { .. } | Command::Clip { .. } => {
                match self.settings.root_fs.as_ref().map(|fs| fs.check()) {
                    Some(Err(why)) => Some(why.to_string()),
                    _ => crate::storage::refusal(&self.settings.root, self.settings.min_free),
                }
            }
            _ => None,
        };
        let mut decision: Decision = match refused {
            Some(why) => Decision {
                actions: Vec::new(),
                outcome: Outcome::Rejected(why),
            },
            None => self
                .recorder
                .handle_until(&command, &origin, received.lsl, known_end),
        };
        let made: Vec<u64> = decision
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::StartRecording { id, .. } | Action::Clip { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let marked = made_mark(&decision);
        self.execute(decision.actions, received);
        // Files that could not be made (a full or read-only disk): the command failed, and
        // its log line, event and status say so, not only its answer.
        if let Some(&id) = made.first() {
            if !self.open.contains_key(&id) && matches!(decision.outcome, Outcome::Done(_)) {
                let problems: Vec<String> = self.start_problems.drain(..).collect();
                decision.outcome =
                    Outcome::Failed(format!("no file was made: {}", problems.join("; ")));
                self.short_buffer = None;
            }
        }
        if !made.is_empty() {
            self.keep_numbers_ahead();
        }
        if let (Outcome::Done(m), Some((held, asked))) =
            (&mut decision.outcome, self.short_buffer.take())
        {
            // What the recorder said it would take, told as what it took.
            let said = format!("({asked:.1} s before trigger)");
            *m = if m.contains(&said) {
                m.replacen(
                    &said,
                    &format!(
                        "({held:.1} s before trigger: the buffer held only that much of the \
                         {asked:.1} s asked for)"
                    ),
                    1,
                )
            } else {
                format!("{m}; the buffer held only {held:.1} s of the {asked:.1} s asked for")
            };
        }
        // `status` from a phone: the state, and whether every camera, the microphone and
        // the disk are ready for the next take.
        if let (Command::Status, Outcome::Done(m)) = (&command, &mut decision.outcome) {
            m.push_str("; ");
            m.push_str(&self.hub.snapshot().health());
        }
        if let Some(t) = &timing {
            match &mut decision.outcome {
                Outcome::Done(m) | Outcome::NoOp(m) | Outcome::Rejected(m) | Outcome::Failed(m) => {
                    m.push_str(" (");
                    m.push_str(t);
                    m.push(')');
                }
            }
        }
        // One event per fact: a mark that was made is a `mark` event (sent by execute).
        if !marked {
            self.lsl_event(
                None,
                received.lsl,
                Event::Command {
                    command: command.to_string(),
                    source: origin.source,
                    text: origin.text.clone(),
                    outcome: decision.outcome.kind(),
                    message: decision.outcome.message().to_string(),
                    time_note: timing,
                },
            );
        }
        match &decision.outcome {
            Outcome::Done(m) => tracing::info!(source = %origin.source, "{command}: {m}"),
            Outcome::NoOp(m) => tracing::info!(source = %origin.source, "{command}: no-op: {m}"),
            Outcome::Rejected(m) => {
                tracing::warn!(source = %origin.source, "{command}: rejected: {m}")
            }
            Outcome::Failed(m) => {
                tracing::error!(source = %origin.source, "{command}: failed: {m}")
            }
        }
        {
            let mut view = self.hub.view.lock();
            view.last_command = Some(CommandStatus {
                command: command.to_string(),
                source: origin.source,
                text: origin.text.clone(),
                unix_time: received.wall.as_secs_f64(),
                outcome: decision.outcome.kind(),
                message: decision.outcome.message().into(),
            });
        }
        let Some(tx) = reply else { return };
        match made.first() {
            // The answer waits until the files exist.
            Some(&id) if matches!(decision.outcome, Outcome::Done(_)) => {
                let waiting = self
                    .open
                    .get(&id)
                    .map(|o| o.paths.keys().copied().collect())
                    .unwrap_or_default();
                self.replies.push(PendingReply {
                    id,
                    tx,
                    outcome: decision.outcome,
                    waiting,
                    files: Vec::new(),
                    problems: self.start_problems.drain(..).collect(),
                    deadline: self.clocks.now().lsl + REPLY_WAIT,
                    received_unix: received.wall.as_secs_f64(),
                });
                self.answer_due(false);
            }
            _ => {
                let _ = tx.send(Reply {
                    outcome: decision.outcome,
                    state: self.recorder.state(),
                    files: Vec::new(),
                });
            }
        }
    }

    /// Sends the answers whose files all exist (or failed), or whose wait is over (all of
    /// them, when `all`).
    fn answer_due(&mut self, all: bool) {
        let now = self.clocks.now().lsl;
        let (due, wait): (Vec<PendingReply>, Vec<PendingReply>) = self
            .replies
            .drain(..)
            .partition(|r| all || r.waiting.is_empty() || now >= r.deadline);
        self.replies = wait;
        for mut r in due {
            for &cam in &r.waiting {
                let c = &self.cameras[cam];
                let why = if c.stats.lost.load(std::sync::atomic::Ordering::Relaxed) {
                    let e = c.last_error.lock().clone().unwrap_or_default();
                    format!(
                        "camera {} is lost ({e}): its file starts when it is back",
                        c.setup.name
                    )
                } else {
                    format!(
                        "camera {}: no frame written yet; its file starts with its first frame",
                        c.setup.name
                    )
                };
                r.problems.push(why);
            }
            let outcome = match r.outcome {
                Outcome::Done(m) if r.files.is_empty() && !r.problems.is_empty() => {
                    if self.open.contains_key(&r.id) {
                        Outcome::Done(format!("{m}; but no file yet: {}", r.problems.join("; ")))
                    } else {
                        Outcome::Failed(format!("no file was made: {}", r.problems.join("; ")))
                    }
                }
                Outcome::Done(m) if !r.problems.is_empty() => {
                    Outcome::Done(format!("{m}; {}", r.problems.join("; ")))
                }
                other => other,
            };
            if let Outcome::Failed(m) = &outcome {
                tracing::error!("recording {}: {m}", r.id);
                let mut view = self.hub.view.lock();
                if let Some(c) = view
                    .last_command
                    .as_mut()
                    .filter(|c| c.unix_time == r.received_unix)
                {
                    c.outcome = outcome.kind();
                    c.message = m.clone();
                }
            }
            let _ = r.tx.send(Reply {
                outcome,
                state: self.recorder.state(),
                files: r.files,
            });
        }
    }

    /// A file of recording `id` on `camera` exists, or will not.
    fn file_known(&mut self, id: u64, camera: usize, known: FileKnown) {
        if let Some(r) = self.replies.iter_mut().find(|r| r.id == id) {
            if r.waiting.remove(&camera) {
                match known {
                    FileKnown::Exists(path) => r.files.push(path),
                    FileKnown::NotMade(why) => r
                        .problems
                        .push(format!("camera {}: {why}", self.cameras[camera].setup.name)),
                }
            }
        }
        self.answer_due(false);
    }

    /// Carries out actions. (Which files exist, the writers say later: `file_known`.)
    fn execute(&mut self, actions: Vec<Action>, at: ClockPair) {
        for action in actions {
            match action {
                Action::StartRecording {
                    id,
                    trigger,
                    pre_trigger,
                    until,
                    origin,
                } => {
                    self.lsl_send(LslMsg::RecordingStarted {
                        id,
                        start: trigger,
                        end: until,
                    });
                    let mut held = pre_trigger;
                    let paths =
                        self.open_files(id, FileKind::Recording, trigger, at, pre_trigger, &origin);
                    match paths {
                        Ok(wav) => {
                            let mut first_video: Option<LslTime> = None;
                            for cam in &self.cameras {
                                let (sent, lost, first) = cam.begin_recording(
                                    id,
                                    &self.writers[cam.setup.index],
                                    trigger - pre_trigger,
                                    until,
                                );
                                // A lost camera without frames has its own line in the
                                // reply ("camera net is lost ..."); the buffer is the others'.
                                if first.is_some()
                                    || !cam.stats.lost.load(std::sync::atomic::Ordering::Relaxed)
                                {
                                    held =
                                        held.min(first.map_or(Duration::ZERO, |f| {
                                            trigger.saturating_since(f)
                                        }));
                                }
                                // A camera lost when the recording begins: its events file
                                // says so (and why) from the start, not only when it is back:
                                // at its last frame in the file's span, or the span's start
                                // (where the file's summary counts its absence from).
                                if cam.stats.lost.load(std::sync::atomic::Ordering::Relaxed) {
                                    let why = cam.last_error.lock().clone().unwrap_or_default();
                                    let since =
                                        cam.lost_since().max(trigger - pre_trigger).min(trigger);
                                    let _ = self.writers[cam.setup.index].send(WriterMsg::Note {
                                        id,
                                        at: since,
                                        wall: at.wall_at(since),
                                        event: NoteKind::CameraLost,
                                        detail: format!("lost when this recording began: {why}"),
                                    });
                                }
                                first_video = match (first_video, first) {
                                    (Some(a), Some(b)) => Some(a.min(b)),
                                    (a, b) => a.or(b),
                                };
                                let now = self.clocks.now().lsl;
                                if lost > 0 {
                                    self.warn(format!(
                                        "camera {}: recording {id} lost its {lost} buffered frames: its writer is gone",
                                        cam.setup.name
                                    ));
                                } else if sent == 0 && until.is_some_and(|u| u <= now) {
                                    // A replayed start and stop whose whole span has left the buffer.
                                    let ended = now.saturating_since(until.expect("checked"));
                                    self.start_problems.push(format!(
                                        "camera {}: the span asked for ended {:.1} s ago and is no longer in the buffer, which holds the last {:.1} s",
                                        cam.setup.name,
                                        ended.as_secs_f64(),
                                        pre_trigger.as_secs_f64()
                                    ));
                                } else {
                                    tracing::info!(
                                        camera = %cam.setup.name,
                                        "recording {id}: {sent} buffered frames queued"
                                    );
                                }
                            }
                            // The WAV's first sample is the first video frame's instant.
                            self.audio_send(
                                id,
                                AudioCmd::Start {
                                    id,
                                    path: wav,
                                    from: first_video.unwrap_or(trigger),
                                    until,
                                    mkv: self.audio_mkv(),
                                    notes: self.audio_notes(),
                                },
                            );
                            // A buffer not yet full (just started, or a camera just back)
                            // holds less than was asked for: say so in the reply.
                            if held + Duration::from_millis(100) < pre_trigger {
                                self.short_buffer =
                                    Some((held.as_secs_f64(), pre_trigger.as_secs_f64()));
                            }
                        }
                        Err(e) => {
                            let e = e.to_string();
                            self.warn(format!("recording {id} could not start: {e}"));
                            self.start_problems.push(e.clone());
                            if let Some(d) = self.recorder.recording_failed(id, &e, at.lsl) {
                                self.execute(d.actions, at);
                            }
                        }
                    }
                }
                Action::StopRecording {
                    id,
                    at: end,
                    reason,
                } => {
                    self.lsl_send(LslMsg::RecordingStopped { id, end });
                    if let Some(files) = self.open.get_mut(&id) {
                        files.end = Some(end);
                    }
                    self.audio_send(id, AudioCmd::Stop { id, at: end });
                    for cam in &self.cameras {
                        cam.stop_at(id, end);
                    }
                    if !matches!(reason, StopReason::Command(_)) {
                        // A stop command has its `command` event; these have this one.
                        self.lsl_event(
                            None,
                            end,
                            Event::RecordingStopped {
                                recording: id,
                                reason: reason.kind(),
                                message: reason.to_string(),
                            },
                        );
                    }
                    self.stop_when_in(id, end, reason);
                }
                Action::Clip {
                    id,
                    from,
                    to,
                    origin,
                } => {
                    let pre = to.saturating_since(from);
                    match self.open_files(id, FileKind::Clip, to, at, pre, &origin) {
                        Ok(wav) => {
                            // The buffered frames, then those exposed before `to` that are
                            // still on their way from the camera (a sensor's frame comes in
                            // a frame or more after its exposure): the clip closes as a
                            // stop does, once each camera has delivered a frame after `to`.
                            let mut first_video: Option<LslTime> = None;
                            for cam in &self.cameras {
                                let w = &self.writers[cam.setup.index];
                                let (_, _, first) = cam.begin_recording(id, w, from, Some(to));
                                first_video = match (first_video, first) {
                                    (Some(a), Some(b)) => Some(a.min(b)),
                                    (a, b) => a.or(b),
                                };
                            }
                            // The audio thread opens the WAV and tells each writer where
                            // it starts; their closes wait for that.
                            self.audio_send(
                                id,
                                AudioCmd::Clip {
                                    id,
                                    path: wav,
                                    from: first_video.unwrap_or(from),
                                    to,
                                    mkv: self.audio_mkv(),
                                    notes: self.audio_notes(),
                                },
                            );
                            self.stop_when_in(id, to, StopReason::ClipComplete);
                        }
                        Err(e) => {
                            self.warn(format!("clip {id} could not be written: {e}"));
                            self.start_problems.push(e.to_string());
                        }
                    }
                }
                Action::Mark {
                    text,
                    at: when,
                    recording,
                    origin,
                } => {
                    tracing::info!(source = %origin.source, "mark: {}", one_line(&text));
                    self.lsl_event(
                        None,
                        when,
                        Event::Mark {
                            text: text.clone(),
                            source: origin.source,
                            recording,
                        },
                    );
                    if let Some(id) = recording {
                        for w in &self.writers {
                            let _ = w.send(WriterMsg::Mark {
                                id,
                                text: text.clone(),
                                at: when,
                                wall: at.wall_at(when),
                                origin: origin.clone(),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Names the files of recording `id` and tells every camera's writer to open them;
    /// returns where its WAV goes.
    fn open_files(
        &mut self,
        id: u64,
        kind: FileKind,
        trigger: LslTime,
        at: ClockPair,
        pre_trigger: Duration,
        origin: &Origin,
    ) -> Result<std::path::PathBuf, OpenError> {
        // A recording still waiting for its last frames is closed first: its writer must
        // see its Close before the next Open.
        self.close_stops(true);
        let trigger_wall = at.wall_at(trigger);
        let names: Vec<&str> = self.cameras.iter().map(|c| c.setup.name.as_str()).collect();
        let (dir, stem) = self
            .stems
            .allocate(
                &self.settings.root,
                &self.settings.prefix,
                trigger_wall,
                &names,
                self.audio.is_some(),
            )
            .map_err(OpenError::Files)?;
        // A clip's span ends at its trigger: what began after it is not in the clip.
        let end = matches!(kind, FileKind::Clip).then_some(trigger);
        let mut files = OpenFiles {
            paths: BTreeMap::new(),
            failed: 0,
            end,
        };
        let max_bytes = crate::storage::max_file_bytes(self.settings.max_file_size.bytes(), &dir);
        for cam in &self.cameras {
            let paths = RecordingPaths::new(&dir, &stem, &cam.setup.name);
            let mkv = paths.mkv.display().to_string();
            let spec = OpenSpec {
                id,
                kind,
                paths,
                trigger,
                trigger_wall,
                pre_trigger,
                origin: origin.clone(),
                camera: {
                    let info = cam.info();
                    CameraTags {
                        camera: cam.setup.name.clone(),
                        source: info.to_string(),
                        source_id: cam.setup.source_id.clone(),
                        host: self.settings.host.clone(),
                        rig: self.settings.rig.clone(),
                        controls: info.controls,
                    }
                },
                fsync_interval: self.settings.fsync_interval,
                audio: self.settings.audio_track.filter(|_| cam.setup.index == 0),
                audio_start: self.audio.is_some(),
                max_bytes,
                part: 1,
                exposure: crate::source::reports_exposure(cam.setup.info.kind),
            };
            if self.writers[cam.setup.index]
                .send(WriterMsg::Open(Box::new(spec)))
                .is_err()
            {
                return Err(OpenError::WriterGone(cam.setup.name.clone()));
            }
            files.paths.insert(cam.setup.index, mkv);
        }
        self.open.insert(id, files);
        self.note_power_in_span(id, trigger - pre_trigger, end);
        Ok(crate::writer::files::audio_path(&dir, &stem))
    }

    /// A new recording's events file says what went on with the rig's power and heat in
    /// its span so far: the problems going on at its start (`begin`: its pre-trigger
    /// span's), and each change since, up to `end` (a clip's), at its own time.
    fn note_power_in_span(&self, id: u64, begin: LslTime, end: Option<LslTime>) {
        let Some(files) = self.open.get(&id) else {
            return;
        };
        let now = self.clocks.now();
        for row in self.power_history.rows_for(begin, end) {
            let wall = now.wall_at(row.at);
            for &camera in files.paths.keys() {
                let _ = self.writers[camera].send(WriterMsg::Note {
                    id,
                    at: row.at,
                    wall,
                    event: NoteKind::Power(row.condition),
                    detail: row.detail.clone(),
                });
            }
        }
    }

    /// Recording or clip `id` ends at `at`: its files close on each camera once the
    /// frames exposed before `at` are in ([`Control::close_stops`]), now if they are.
    fn stop_when_in(&mut self, id: u64, at: LslTime, reason: StopReason) {
        self.stops.push(PendingStop {
            id,
            at,
            reason,
            cameras: self.cameras.iter().map(|c| c.setup.index).collect(),
            since: self.clocks.now().lsl,
        });
        self.close_stops(false);
    }

    /// Closes each pending stop's files on the cameras that have delivered every frame
    /// exposed before the stop (or have been quiet for [`STOP_GRACE`]), or on every camera
    /// when `now` (a new file is about to open and must follow the old one's close).
    fn close_stops(&mut self, now: bool) {
        let clock = self.clocks.now().lsl;
        for stop in &mut self.stops {
            let overdue = clock.saturating_since(stop.since) >= STOP_GRACE;
            stop.cameras.retain(|&i| {
                let cam = &self.cameras[i];
                let all_in = overdue || cam.watch_frame_after(stop.at);
                if !all_in && !now {
                    return true;
                }
                // Closed before its last frames are in (the next recording opens now):
                // a camera whose frames come after their time (a sensor's) may still
                // deliver some; its writer takes them from the next recording's frames.
                cam.end_recording(stop.id);
                let late =
                    !all_in && crate::source::frames_come_after_their_time(cam.setup.info.kind);
                let _ = self.writers[i].send(WriterMsg::Close {
                    id: stop.id,
                    end: Some(stop.at),
                    reason: stop.reason.clone(),
                    late,
                });
                false
            });
        }
        self.stops.retain(|s| !s.cameras.is_empty());
    }

    fn writer_event(&mut self, ev: WriterEvent) {
        match ev {
            WriterEvent::Opened {
                camera,
                id,
                path,
                first_frame,
                first_lsl,
                size: (width, height),
            } => {
                tracing::info!(
                    camera = %self.cameras[camera].setup.name,
                    "recording {id}: writing {path} from frame {first_frame} (LSL {first_lsl}), {width}x{height}"
                );
                self.file_known(id, camera, FileKnown::Exists(path.clone()));
                self.lsl_event(
                    Some(camera),
                    self.clocks.now().lsl,
                    Event::FileOpened {
                        recording: id,
                        path,
                        first_frame,
                        first_frame_lsl_time: first_lsl.as_secs_f64(),
                        width,
                        height,
                    },
                );
            }
            WriterEvent::Closed {
                camera,
                id,
                summary,
            } => {
                if let Some(e) = &summary.error {
                    self.warn(format!("{}: {e}", summary.path));
                }
                self.lsl_event(
                    Some(camera),
                    self.clocks.now().lsl,
                    file_closed(id, &summary),
                );
                self.notice(match &summary.error {
                    Some(e) => format!("{}: {e}", summary.path),
                    None => format!(
                        "{} finished: {}, {}",
                        summary.kind,
                        summary.path,
                        summary.figures()
                    ),
                });
                let known = match &summary.error {
                    Some(e) => FileKnown::NotMade(e.clone()),
                    None => FileKnown::Exists(summary.path.clone()),
                };
                self.hub.view.lock().last_files.insert(camera, summary);
                self.file_done(id, camera, false);
                self.file_known(id, camera, known);
            }
            WriterEvent::Continued {
                camera,
                id,
                summary,
                next,
            } => {
                self.lsl_event(
                    Some(camera),
                    self.clocks.now().lsl,
                    file_closed(id, &summary),
                );
                // Logged by the writer; not sent to the phone, which hears of the recording's
                // start and end (a part every few minutes would bury them).
                self.hub.view.lock().last_files.insert(camera, summary);
                if let Some(path) = self
                    .open
                    .get_mut(&id)
                    .and_then(|o| o.paths.get_mut(&camera))
                {
                    *path = next;
                }
            }
            WriterEvent::Failed {
                camera, id, error, ..
            } => {
                self.warn(error.clone());
                self.notice(format!("error: {error}"));
                self.lsl_event(
                    Some(camera),
                    self.clocks.now().lsl,
                    Event::Error {
                        recording: id,
                        message: error.clone(),
                    },
                );
                *self.cameras[camera].last_error.lock() = Some(error.clone());
                self.cameras[camera].end_recording(id);
                self.file_done(id, camera, true);
                let all_failed = self
                    .open
                    .get(&id)
                    .is_none_or(|o| o.paths.is_empty() || o.failed == self.cameras.len());
                if all_failed {
                    let now = self.clocks.now();
                    if let Some(d) = self.recorder.recording_failed(id, &error, now.lsl) {
                        tracing::error!("{}", d.outcome.message());
                        self.execute(d.actions, now);
                    }
                }
                // Answered after: a start that made no file says it is buffering again.
                self.file_known(id, camera, FileKnown::NotMade(error.clone()));
            }
        }
    }

    /// A camera was lost or is back: the people, the LSL events, and the events file of
    /// every recording it is part of hear of it. Its recording goes on.
    fn camera_event(&mut self, ev: CameraEvent) {
        let (camera, at, kind, text) = match &ev {
            // A pending stop's frame came in: the step after this message closes it.
            CameraEvent::FrameAfter { .. } => return,
            CameraEvent::Lost { camera, why, at } => {
                self.recorder.camera_lost(*camera);
                (*camera, *at, NoteKind::CameraLost, why.clone())
            }
            CameraEvent::Back {
                camera,
                at,
                gap,
                first,
            } => {
                self.recorder.camera_back(*camera);
                let mut text = format!("after {:.1} s without frames", gap.as_secs_f64());
                if let Some(what) = first {
                    text.push_str(&format!(": its first frames since start-up, {what}"));
                }
                (*camera, *at, NoteKind::CameraBack { gap: *gap }, text)
            }
        };
        let name = self.cameras[camera].setup.name.clone();
        let ids: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| o.paths.contains_key(&camera))
            .map(|(&id, _)| id)
            .collect();
        let during = match ids.last() {
            Some(id) => format!(" during recording {id}"),
            None => String::new(),
        };
        let message = match kind {
            NoteKind::CameraLost => format!(
                "camera {name} lost{during}: {text}{}",
                if ids.is_empty() {
                    ""
                } else {
                    "; the recording goes on, and this camera's file continues when it is back"
                }
            ),
            NoteKind::CameraBack { .. } => {
                format!("camera {name} back{during}, {text}")
            }
            // Not a camera's event (the audio thread notes it itself; power: above).
            NoteKind::AudioStart
            | NoteKind::AudioLost
            | NoteKind::AudioBack
            | NoteKind::Power(_) => return,
        };
        // Said at once, or counted and said once a minute ([`Flaps`]); every one is in
        // the LSL events and the events file below.
        let now = self.clocks.now().lsl;
        let flaps = self.flaps.entry(camera).or_default();
        let say = match &ev {
            CameraEvent::Lost { why, .. } => flaps.lost(now, why),
            CameraEvent::Back { gap, first, .. } => flaps.back(*gap) || first.is_some(),
            CameraEvent::FrameAfter { .. } => false,
        };
        if say {
            match kind {
                NoteKind::CameraLost => tracing::error!("{message}"),
                _ => tracing::info!("{message}"),
            }
            self.camera_warning(&name, message.clone());
            self.notice(message);
        }
        let event = match kind {
            NoteKind::CameraLost => Event::CameraLost {
                camera: name,
                recording: ids.last().copied(),
                message: text.clone(),
            },
            NoteKind::CameraBack { .. }
            | NoteKind::AudioStart
            | NoteKind::AudioLost
            | NoteKind::AudioBack
            | NoteKind::Power(_) => Event::CameraBack {
                camera: name,
                recording: ids.last().copied(),
                message: text.clone(),
            },
        };
        self.lsl_event(Some(camera), at, event);
        let wall = self.clocks.now().wall_at(at);
        for id in ids {
            // Never waits on a writer, and a writer held up by its disk gets it later.
            let _ = self.writers[camera].send(WriterMsg::Note {
                id,
                at,
                wall,
                event: kind,
                detail: text.clone(),
            });
        }
    }

    /// The rig's power or heat changed: the people (log, status, ntfy), the LSL events
    /// of every camera and the events file of every recording being written hear of it.
    fn power(&mut self, change: crate::power::Change, at: LslTime) {
        let crate::power::Change {
            condition,
            message,
            detail,
        } = change;
        if condition.is_problem() {
            tracing::warn!("{message}");
        } else {
            tracing::info!("{message}");
        }
        self.hub.replace_warning(condition.about(), message.clone());
        self.power_history.push(crate::power::Noted {
            condition,
            at,
            detail: detail.clone(),
        });
        self.notice(message.clone());
        // The files whose span it is in: not a clip's or a stopped recording's still
        // being finished.
        let in_span = |files: &&OpenFiles| files.end.is_none_or(|end| at <= end);
        let recording = self
            .open
            .iter()
            .filter(|(_, f)| in_span(f))
            .map(|(&id, _)| id)
            .next_back();
        self.lsl_event(
            None,
            at,
            Event::Power {
                state: condition.as_str(),
                recording,
                message: detail.clone(),
            },
        );
        let wall = self.clocks.now().wall_at(at);
        for (&id, files) in self.open.iter().filter(|(_, f)| in_span(f)) {
            for &camera in files.paths.keys() {
                // Never waits on a writer, and a writer held up by its disk gets it later.
                let _ = self.writers[camera].send(WriterMsg::Note {
                    id,
                    at,
                    wall,
                    event: NoteKind::Power(condition),
                    detail: detail.clone(),
                });
            }
        }
    }

    fn file_done(&mut self, id: u64, camera: usize, failed: bool) {
        if let Some(o) = self.open.get_mut(&id) {
            o.paths.remove(&camera);
            o.failed += failed as usize;
            if o.paths.is_empty() {
                self.open.remove(&id);
            }
        }
    }

    /// Extends the reserved frame and recording numbers before they run out.
    fn keep_numbers_ahead(&mut self) {
        let Some(numbers) = &self.numbers else { return };
        let next = next_frames(&self.cameras);
        // Not while the root is gone with its disk: the file is on that disk, and the
        // numbers used meanwhile go into no file. (Looked at only when a write is due.)
        let root_fs = self.settings.root_fs.as_ref();
        let writable = || root_fs.is_none_or(|fs| fs.check().is_ok());
        if let Err(e) = numbers
            .lock()
            .keep_ahead(self.recorder.next_id(), &next, &writable)
        {
            if !self.numbers_failed {
                self.numbers_failed = true;
                let msg = format!("{e}: frame and recording numbers may repeat after a crash");
                self.warn(msg);
            }
        }
    }

    /// Frames lost since the last look, by cause, each camera: a warning in the status
    /// whenever any were, so that no loss goes unseen, and in the log at once, then once
    /// a minute while losses go on ([`LossLog`]). Corrupt frames are reported where they
    /// are found (capture). Gaps in the camera's numbers while its capture thread was busy
    /// nearly all the time are said to be that: the machine cannot take (encode) the
    /// camera's frames at its rate.
    fn watch_drops(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let at = crate::clock::LslTime::now();
        let recording = self.recorder.recording().map(|r| r.id);
        self.drops_looked = Some((self.clocks.now().lsl, recording));
        for cam in &self.cameras {
            let cpu = cam.sample_cpu(at);
            let s = &cam.stats;
            let now = [
                s.source_gaps.load(Relaxed),
                s.held_by_writer.load(Relaxed),
                s.too_large.load(Relaxed),
                s.writer_queue_full.load(Relaxed),
            ];
            // From zero: frames lost before the first look are said too.
            let seen = self.drops_seen.entry(cam.setup.index).or_insert([0; 4]);
            let mut new = [0; 4];
            for ((n, now), seen) in new.iter_mut().zip(now).zip(seen.iter()) {
                *n = now.saturating_sub(*seen);
            }
            *seen = now;
            let about = losses::about(&cam.setup.name);
            let (mut msg, mut why) = (String::new(), String::new());
            if new.iter().any(|n| *n > 0) {
                let during = match recording {
                    Some(id) => format!(" during recording {id}"),
                    None => String::new(),
                };
                // Busy nearly all the time, it took `fps` frames a second: about the most
                // it can.
                let fps = cam.fps(at);
                if let Some(load) = cpu.filter(|l| new[0] > 0 && l.overloaded() && fps > 0.0) {
                    why = format!(
                        "; {}: {}",
                        load.said(),
                        overloaded(&cam.info(), fps / load.wanted)
                    );
                }
                msg = format!("{about}{during}: {}{why}", losses::listed(&new));
                self.hub.replace_warning(&about, msg.clone());
            }
            let log = self.loss_logs.entry(cam.setup.index).or_default();
            for line in log.look(&about, at, recording, new, &msg, &why) {
                tracing::warn!("{line}");
            }
        }
    }

    /// A camera lost again and again: the losses counted in the last minute, said.
    fn watch_flaps(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.clocks.now().lsl;
        for cam in &self.cameras {
            let Some(flaps) = self.flaps.get_mut(&cam.setup.index) else {
                continue;
            };
            let lost = cam.stats.lost.load(Relaxed);
            if let Some(line) = flaps.due(now, &format!("camera {}", cam.setup.name), lost) {
                tracing::warn!("{line}");
                self.camera_warning(&cam.setup.name, line.clone());
                self.notice(line);
            }
        }
    }

    /// A camera's loss or return in the status: it takes the place of the camera's
    /// earlier one, so that a camera lost again and again keeps one line of the ten.
    fn camera_warning(&self, name: &str, msg: String) {
        self.hub.replace_warnings(
            &[format!("camera {name} lost"), format!("camera {name} back")],
            msg,
        );
    }

    /// The losses counted and not yet said in the log, said (the process stops).
    fn flush_loss_logs(&mut self) {
        let at = crate::clock::LslTime::now();
        let now = self.clocks.now().lsl;
        for cam in &self.cameras {
            let lost = cam.stats.lost.load(std::sync::atomic::Ordering::Relaxed);
            if let Some(flaps) = self.flaps.get_mut(&cam.setup.index) {
                if let Some(line) = flaps.flush(now, &format!("camera {}", cam.setup.name), lost) {
                    tracing::warn!("{line}");
                }
            }
            let about = losses::about(&cam.setup.name);
            if let Some(log) = self.loss_logs.get_mut(&cam.setup.index) {
                if let Some(line) = log.flush(&about, at) {
                    tracing::warn!("{line}");
                }
            }
        }
    }

    /// Where the audio thread sends the audio track's blocks (the first camera's writer).
    /// The writers that note where a recording's WAV starts.
    fn audio_notes(&self) -> Vec<WriterQueue> {
        if self.audio.is_none() {
            return Vec::new();
        }
        self.writers.clone()
    }

    fn audio_mkv(&self) -> Option<WriterQueue> {
        self.settings.audio_track.and(self.writers.first().cloned())
    }

    /// A command for the audio thread about recording `id`. If that thread is gone, the
    /// writers hear that no WAV will come (their closes wait for word of it).
    fn audio_send(&self, id: u64, cmd: AudioCmd) {
        if let Some(a) = &self.audio {
            if a.send(cmd).is_err() {
                for w in &self.writers {
                    let _ = w.send(WriterMsg::NoWav { id });
                }
            }
        }
    }

    fn notice(&self, text: String) {
        if let Some(n) = &self.notices {
            let _ = n.send(text);
        }
    }

    /// Never blocks the control thread: a full LSL queue loses the message (logged).
    fn lsl_send(&self, msg: LslMsg) {
        if let Some(tx) = &self.lsl {
            if let Err(e) = tx.try_send(msg) {
                tracing::warn!("LSL queue full; not published: {:?}", e.into_inner());
            }
        }
    }

    fn lsl_event(&self, camera: Option<usize>, at: LslTime, event: Event) {
        if self.lsl.is_some() {
            self.lsl_send(LslMsg::Event { camera, at, event });
        }
    }

    fn warn(&self, msg: String) {
        tracing::warn!("{msg}");
        self.add_warning(msg);
    }

    /// A warning for the status, already logged where it happened.
    fn add_warning(&self, msg: String) {
        self.hub.add_warning(msg);
    }

    fn publish(&self) {
        let mut view = self.hub.view.lock();
        view.next_recording = Some(self.recorder.next_id());
        view.state = Some(self.recorder.state());
        view.recording = self.recorder.recording().cloned();
        view.lost_cameras = self.recorder.lost_cameras();
        view.current_files = self
            .open
            .values()
            .flat_map(|o| o.paths.values().cloned())
            .collect();
        view.current_by_camera = self
            .open
            .values()
            .flat_map(|o| o.paths.iter().map(|(&cam, p)| (cam, p.clone())))
            .collect();
    }
}

#[cfg(test)]
mod tests;
