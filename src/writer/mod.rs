//! The writer: one thread per camera that turns frame references into files.
//!
//! It receives [`WriterMsg`]s on a bounded queue (frames are references into the ring's
//! storage: nothing is copied on the way), muxes them with the sans-IO Matroska muxer
//! (the `mkv` crate, `crates/mkv`), and writes the MKV and its sidecar. All file I/O of a recording happens on
//! this thread. Pending messages are drained into one batch per `write`, so a writer that
//! keeps up writes each frame as it arrives and a writer that fell behind catches up with
//! large writes. Write order and durability: `design/files.md`.
//!
//! What belongs here: the writer thread and a file's life (open, write, sync, finish,
//! fail). What does not: the Matroska bytes (the `mkv` crate), tags (`tags.rs`), sidecar
//! rows (`sidecar.rs`), names (`files.rs`), finishing crash-cut files (`repair.rs`).

pub mod files;
pub mod interleave;
pub mod queue;
pub mod repair;
pub mod sidecar;
pub mod tags;

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Sender;

use crate::clock::{Clocks, LslTime, WallTime};
use crate::frame::{exif, Frame};
use crate::recorder::{Origin, StopReason, TriggerSource};
use crate::status::{DropCounts, FileSummary};
use files::RecordingPaths;
use interleave::{AudioBlock, Interleaver, Item};
use mkv::mux::{MkvMuxer, MuxerConfig, Patch, TrackKind, TrackSpec};
use mkv::read as mkv_read;
use queue::Inbox;
pub use queue::WriterQueue;
use tags::{CameraTags, FileTags};

/// Matroska TimestampScale: 100 µs (see `design/time.md`).
pub use crate::frame::TIMESTAMP_UNIT_NS;
/// Longest cluster: what a crash can cost at most, before fsync policy.
pub const MAX_CLUSTER_NS: u64 = 1_000_000_000;
/// Room left under a file size limit beyond a frame and the file's finish, for audio
/// blocks muxed between frames (an eighth of the limit for small limits).
const PART_MARGIN: u64 = 4 << 20;
/// Bytes gathered before a write even if more messages are waiting.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Pieces (muxed bytes or frame payloads) gathered before a write.
const MAX_BATCH_PIECES: usize = 2048;
/// While recording, the writer wakes at most this often and writes what came meanwhile
/// in one `writev`, instead of waking for each frame (100 or 536 times a second): what a
/// crash can lose grows by this much, against a cluster (1 s) and the page cache.
pub const WRITE_EVERY: Duration = Duration::from_millis(50);

pub use crate::recorder::FileKind;

/// Everything needed to open one camera's files for a recording or clip.
#[derive(Clone, Debug)]
pub struct OpenSpec {
    pub id: u64,
    pub kind: FileKind,
    pub paths: RecordingPaths,
    pub trigger: LslTime,
    pub trigger_wall: WallTime,
    /// Configured pre-trigger length (what was asked for).
    pub pre_trigger: Duration,
    pub origin: Origin,
    /// What the file's tags say about the camera.
    pub camera: CameraTags,
    pub fsync_interval: Option<Duration>,
    /// An audio track in this file (16-bit PCM), fed by `WriterMsg::Audio`.
    pub audio: Option<AudioTrackSpec>,
    /// The audio thread will say where this recording's WAV starts (a
    /// [`NoteKind::AudioStart`] note) or that it has none ([`WriterMsg::NoWav`]): the
    /// file's close waits for that, at most [`AUDIO_END_WAIT`], so that its events
    /// sidecar has the `audio_start` row however late the audio thread answers.
    pub audio_start: bool,
    /// The largest the MKV may grow: before a frame would take it past this (less room
    /// for its finish), it is finished and the recording goes on in its next part
    /// (`storage.max_file_size`). `None`: no limit.
    pub max_bytes: Option<u64>,
    /// Which part of the recording's video these files are: 1 for the first, whose
    /// names (`paths`) the others' are made from.
    pub part: u32,
    /// The camera's frames carry their exposure (an Exif block, `frame::exif`: a
    /// libcamera camera's): its frames sidecar has the exposure columns.
    pub exposure: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioTrackSpec {
    pub rate: u32,
    pub channels: u16,
}

/// How long video waits for its audio, and how long a close waits for the audio's end
/// and for where the WAV starts.
const AUDIO_HOLD: Duration = Duration::from_secs(3);
const AUDIO_END_WAIT: Duration = Duration::from_secs(5);
/// How much longer a close waits for its `audio_start` note once the next recording's
/// files are to open: the next recording's messages wait behind it that long at most (its
/// audio track's end may take longer: `OpenFile::next_waits_until`).
const NEXT_WAITS: Duration = Duration::from_millis(500);

/// How long a stopped file waits for its last frames among the next recording's
/// ([`WriterMsg::Close`]'s `late`): as long as the control thread waits for them at a stop.
const LATE_FRAMES_WAIT: Duration = Duration::from_secs(1);

/// Messages to a writer, in the order they must be applied.
#[derive(Debug)]
pub enum WriterMsg {
    Open(Box<OpenSpec>),
    Frame(Frame),
    /// The buffered frames a recording or clip starts with, oldest first: one message
    /// however many, so that a burst of commands never fills the queue.
    Buffered(Vec<Frame>),
    Mark {
        id: u64,
        text: String,
        at: LslTime,
        wall: WallTime,
        origin: Origin,
    },
    /// A row for recording `id`'s events file (a camera lost or back, ...).
    Note {
        id: u64,
        at: LslTime,
        wall: WallTime,
        event: NoteKind,
        detail: String,
    },
    /// Finish recording `id`; frames captured after `end` are not written. `late`: the
    /// next recording opens at once, and frames exposed up to `end` may still come among
    /// its frames (a camera delivers a frame some time after its exposure): the file
    /// takes them from there, and closes at the first frame after `end` (or after
    /// [`LATE_FRAMES_WAIT`]).
    Close {
        id: u64,
        end: Option<LslTime>,
        reason: StopReason,
        late: bool,
    },
    /// Audio for recording `id`'s audio track.
    Audio {
        id: u64,
        block: AudioBlock,
    },
    /// No more audio will come for recording `id`.
    AudioEnd {
        id: u64,
    },
    /// Recording `id` has no WAV (the audio thread could not create it, or is gone): no
    /// `audio_start` note will come.
    NoWav {
        id: u64,
    },
}

impl WriterMsg {
    /// The recording the message is about, where it says (frames go to whatever is open).
    fn recording(&self) -> Option<u64> {
        match self {
            WriterMsg::Open(spec) => Some(spec.id),
            WriterMsg::Frame(_) | WriterMsg::Buffered(_) => None,
            WriterMsg::Mark { id, .. }
            | WriterMsg::Note { id, .. }
            | WriterMsg::Close { id, .. }
            | WriterMsg::Audio { id, .. }
            | WriterMsg::AudioEnd { id }
            | WriterMsg::NoWav { id } => Some(*id),
        }
    }
}

/// What a [`WriterMsg::Note`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    CameraLost,
    /// Carries how long the camera was gone.
    CameraBack {
        gap: Duration,
    },
    /// The recording's WAV starts with the sample captured at this row's time.
    AudioStart,
    /// The audio input stopped delivering after the sample before this row's time: the
    /// WAV holds silence put in from here (until an `audio_back` row, or its end).
    AudioLost,
    /// Audio comes again from this row's time.
    AudioBack,
    /// The rig's power or heat: an under-voltage or a hot CPU began or ended
    /// (`src/power.rs`).
    Power(crate::power::Condition),
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::CameraLost => "camera_lost",
            NoteKind::CameraBack { .. } => "camera_back",
            NoteKind::AudioStart => "audio_start",
            NoteKind::AudioLost => "audio_lost",
            NoteKind::AudioBack => "audio_back",
            NoteKind::Power(c) => c.as_str(),
        }
    }
}

/// What the writer tells the control thread.
#[derive(Clone, Debug)]
pub enum WriterEvent {
    /// The file's header and first frame reached the file.
    Opened {
        camera: usize,
        id: u64,
        path: String,
        first_frame: u64,
        first_lsl: LslTime,
        /// Its video's frame size (a camera's may change: each part has its own).
        size: (u16, u16),
    },
    Closed {
        camera: usize,
        id: u64,
        summary: FileSummary,
    },
    /// The file reached its size limit and is finished (`summary`); the recording goes on
    /// in `next`, whose `Opened` follows with its first frame.
    Continued {
        camera: usize,
        id: u64,
        summary: FileSummary,
        next: String,
    },
    /// Writing failed; the file was finished as far as possible, frames of `id` are dropped.
    Failed {
        camera: usize,
        id: u64,
        path: String,
        error: String,
    },
}

/// A writer thread and its queue.
pub struct WriterHandle {
    pub tx: WriterQueue,
    pub join: JoinHandle<()>,
}

impl WriterHandle {
    /// The queue, as the other threads hold it.
    pub fn queue(&self) -> WriterQueue {
        self.tx.clone()
    }
}

/// What a writer publishes about its files. It is their only writer; the status reads
/// them.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub frames_written: AtomicU64,
    /// MKV bytes written, in all and to the current file.
    pub bytes_written: AtomicU64,
    pub file_bytes: AtomicU64,
}

/// The camera a writer writes for.
#[derive(Clone)]
pub struct WriterCamera {
    pub index: usize,
    pub name: String,
    pub stats: Arc<WriterStats>,
    /// The camera's frames lost so far, by cause (its capture thread's counters): read
    /// when a file opens and when it closes, the difference goes into the stop row.
    pub drops: Arc<dyn Fn() -> DropCounts + Send + Sync>,
}

impl std::fmt::Debug for WriterCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterCamera")
            .field("index", &self.index)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Starts camera `cam`'s writer thread with a queue of `frames` places for live frames
/// and audio blocks (and [`queue::CONTROL_ROOM`] more for everything else). Its timing
/// (the fsync interval, how long a close waits for the audio's end) reads `clocks`.
pub fn spawn_writer(
    cam: WriterCamera,
    events: Sender<WriterEvent>,
    frames: usize,
    clocks: Arc<dyn Clocks>,
) -> WriterHandle {
    let (tx, inbox) = queue::queue(frames, None);
    let name = format!("writer-{}", cam.name);
    let join = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _span = tracing::info_span!("writer", camera = %cam.name).entered();
            Writer::new(cam, events, clocks).run(inbox)
        })
        .expect("spawn writer thread");
    WriterHandle {
        tx: tx.waking(join.thread().clone()),
        join,
    }
}

struct Writer {
    cam: WriterCamera,
    events: Sender<WriterEvent>,
    clocks: Arc<dyn Clocks>,
    file: Option<OpenFile>,
    /// Batch buffers, allocated and touched once per thread and lent to each file, so that
    /// opening a file costs no allocation and no page faults.
    spare: Option<Buffers>,
    /// Recording whose messages are discarded after a failure.
    failed: Option<u64>,
    /// Messages of the next recording, in order, held while the open file's close waits
    /// for its audio (at most [`NEXT_WAITS`] more): a burst of commands never costs a file
    /// its `audio_start` row or its audio track's end.
    deferred: std::collections::VecDeque<WriterMsg>,
    /// The last recordings whose files this writer closed, oldest first: an audio row
    /// that comes after its file closed is still added to its events sidecar.
    closed: std::collections::VecDeque<ClosedFile>,
}

/// A recording whose file a writer closed. The audio thread may still have rows for it:
/// where its WAV starts (when the file's close waited for that longer than it may: the
/// audio thread busy opening its device),
/// or where the input was lost, found up to 5 s after the audio ended, so after a stop
/// that came in between.
#[derive(Debug)]
struct ClosedFile {
    id: u64,
    events: std::path::PathBuf,
    /// Closed before its `audio_start` row: the audio rows that came since, held to
    /// follow that row. None once the row is in.
    held: Option<String>,
}

/// Adds rows that came after their file closed to the end of its events sidecar, and
/// syncs them; `what` names them in the log.
fn append_to_sidecar(id: u64, path: &std::path::Path, rows: &str, what: &str) {
    match try_append(path, rows.as_bytes()) {
        Ok(()) => tracing::info!(
            "recording {id}: {what} came after the file closed; now in {}",
            path.display()
        ),
        Err(e) => tracing::warn!(
            "recording {id}: cannot add {what}, which came after the file closed, to {}: {e}",
            path.display()
        ),
    }
}

/// How many closed recordings may still get late audio rows.
const CLOSED_KEPT: usize = 8;

struct Buffers {
    out: Vec<u8>,
    pieces: Vec<Piece>,
    csv: String,
}

impl Buffers {
    fn new() -> Buffers {
        // Filled with a non-zero byte so that every page is really written now (zeroed
        // memory from the allocator may be mapped lazily).
        let mut out = vec![0xFF_u8; 1 << 20];
        out.clear();
        Buffers {
            out,
            pieces: Vec::with_capacity(MAX_BATCH_PIECES + 16),
            csv: String::with_capacity(256 << 10),
        }
    }
}

/// A batch is written with one `writev`: the bytes the muxer made (`out`, in ranges) and,
/// between them, the frames' JPEG bytes straight from the ring's storage, uncopied.
enum Piece {
    /// `out[previous Muxed end .. this end]`.
    Muxed(usize),
    Payload(Bytes),
}

/// Tells the camera's counters how many bytes reached the current file (for the write
/// rate, the disk guard's time left and the dashboard's file size).
fn publish_bytes(cam: &WriterCamera, f: &mut OpenFile) {
    let new = f.written - f.published;
    if new > 0 {
        f.published = f.written;
        cam.stats.bytes_written.fetch_add(new, Relaxed);
        cam.stats.file_bytes.store(f.written, Relaxed);
    }
}

struct OpenFile {
    spec: OpenSpec,
    /// The recording's first part's names, which the next parts' are made from.
    first_paths: RecordingPaths,
    mkv: File,
    frames_csv: File,
    events_csv: File,
    /// Made with the first frame, whose LSL time is the file's time origin.
    muxer: Option<MkvMuxer>,
    /// The video's frame size, from the first frame (the track's; frames of another size
    /// go into the next part).
    video_size: Option<(u16, u16)>,
    origin: Option<LslTime>,
    last_capture: LslTime,
    end: Option<LslTime>,
    out: Vec<u8>,
    pieces: Vec<Piece>,
    /// End of the part of `out` already listed in `pieces`.
    muxed_end: usize,
    /// Payload bytes listed in `pieces`.
    payload_bytes: usize,
    patches: Vec<Patch>,
    csv: String,
    events: String,
    /// How much of `events` is in its file already: a write that failed part way is not
    /// written again from its start (the rest, appended, completes its row).
    events_done: usize,
    frames: u64,
    pre_trigger_frames: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    missing: u64,
    /// The camera's drop counters when the file opened.
    drops_at_open: DropCounts,
    /// When the file was last synced, on the writer's clock.
    last_sync: LslTime,
    clocks: Arc<dyn Clocks>,
    dirty_since_sync: bool,
    /// Something reached the file already. Until then each batch is written at once, so
    /// that a trigger's first bytes are on their way within a frame.
    flushed: bool,
    /// The control thread was told that the file exists (its first frame is written).
    announced: bool,
    /// Camera losses during this file's span (one already lost when it began counts),
    /// and the time the camera was gone within the span.
    camera_losses: u64,
    camera_lost: Duration,
    /// The camera is lost (a loss noted, its return not yet): at the close, the time from
    /// its last frame in this file (or the file's start) to the end counts as away.
    lost_now: bool,
    /// With an audio track: video and audio in time order.
    mux: Option<Interleaver>,
    /// The `audio_start` note (or word that there is no WAV) has not come yet.
    audio_start_pending: bool,
    /// Audio rows (`audio_lost`: a file begun while the microphone is away) that came
    /// before the `audio_start` row, written right after it. The audio thread sends them
    /// first, so that a clip, closed as soon as its `audio_start` row is in, has them too.
    held_rows: String,
    /// A close that waits for the audio's end or its `audio_start` note, or for the
    /// frames exposed before its end: its reason, and until when at most (the writer's
    /// clock).
    waiting_close: Option<(StopReason, LslTime)>,
    /// While the close waits for frames exposed up to `end` still on their way among the
    /// next recording's frames: until when at most.
    late_until: Option<LslTime>,
    /// The capture time of the last frame the file took.
    last_taken: Option<LslTime>,
    audio_blocks: u64,
    /// Audio blocks too far behind the video already written for a cluster to take them.
    audio_blocks_dropped: u64,
    /// Audio blocks captured wholly before the file's first frame.
    audio_before_video: u64,
    /// MKV bytes written so far, and how many of them the camera's counters know of.
    written: u64,
    published: u64,
    /// With a size limit: the last audio block, written only with the next frame (or at
    /// the close), so that at a part's end it is cut at that frame: the part's audio ends
    /// where its video does and the next part's begins there, as one sample stream (a
    /// block may last seconds: the pre-trigger buffer's audio comes as one). In a next
    /// part, the rest of the block cut, written after its first frame.
    held_audio: Option<(AudioBlock, usize)>,
}

impl Writer {
    fn new(cam: WriterCamera, events: Sender<WriterEvent>, clocks: Arc<dyn Clocks>) -> Writer {
        Writer {
            cam,
            events,
            clocks,
            file: None,
            spare: Some(Buffers::new()),
            failed: None,
            deferred: std::collections::VecDeque::new(),
            closed: std::collections::VecDeque::new(),
        }
    }

    fn run(mut self, rx: Inbox) {
        // While a file is being written and the queue keeps up, the thread takes what
        // came in the last [`WRITE_EVERY`] together instead of waking for every frame.
        let mut paced_until: Option<Instant> = None;
        loop {
            if let Some(t) = paced_until.take() {
                let left = t.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    // Woken early by a command from control (`WriterQueue`).
                    std::thread::park_timeout(left);
                }
            }
            let msg = match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(msg) => msg,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    self.close_if_audio_is_late();
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            let woke = Instant::now();
            self.handle(msg);
            // Batch whatever else is already waiting into the same write.
            let mut drained = false;
            while self.file.as_ref().is_none_or(|f| !f.write_now()) {
                match rx.try_recv() {
                    Some(msg) => self.handle(msg),
                    None => {
                        drained = true;
                        break;
                    }
                }
            }
            self.flush();
            if self
                .file
                .as_ref()
                .is_some_and(|f| f.waiting_close.is_some())
            {
                // A stream of messages for other recordings keeps the timeout above from
                // coming round.
                self.close_if_audio_is_late();
            }
            // Paced only in the steady state: a file whose first bytes are written, a
            // queue emptied. A new file's first batch, a backlog (the pre-trigger
            // buffer), everything while no file is open, and a next recording held
            // behind a file whose close waits (for its last frames: each message may
            // end the wait) go at once.
            if drained && self.deferred.is_empty() && self.file.as_ref().is_some_and(|f| f.flushed)
            {
                paced_until = Some(woke + WRITE_EVERY);
            }
        }
        // Queue closed: the process is exiting. Finish whatever is open, and whatever
        // waited behind it, without waiting for audio any more.
        loop {
            if let Some(f) = self.file.as_mut() {
                let reason = f.waiting_close.take().map_or(StopReason::Shutdown, |w| w.0);
                self.close(reason);
            }
            let Some(msg) = self.deferred.pop_front() else {
                break;
            };
            self.apply(msg);
            while self
                .file
                .as_ref()
                .is_some_and(|f| f.waiting_close.is_none())
            {
                match self.deferred.pop_front() {
                    Some(msg) => self.apply(msg),
                    None => break,
                }
            }
        }
    }

    /// One message: applied, or held behind a file whose close waits for its audio.
    fn handle(&mut self, msg: WriterMsg) {
        let hold = match self.waiting() {
            // What is held goes first.
            None => !self.deferred.is_empty(),
            // The next recording, and everything after it that is not for the file that
            // waits.
            Some(_) if self.deferred.is_empty() => matches!(msg, WriterMsg::Open(_)),
            Some(id) => msg.recording() != Some(id),
        };
        if hold {
            self.take_late_frames(&msg);
            self.deferred.push_back(msg);
        } else {
            self.apply(msg);
        }
        self.replay();
    }

    /// The recording whose file's close waits for its audio.
    fn waiting(&self) -> Option<u64> {
        self.file
            .as_ref()
            .filter(|f| f.waiting_close.is_some())
            .map(|f| f.spec.id)
    }

    /// The messages held behind a file that waited, in order, once it is closed; while a
    /// file waits, only what is for that file, and the wait is cut
    /// ([`OpenFile::next_waits_until`]).
    fn replay(&mut self) {
        while !self.deferred.is_empty() {
            let Some(id) = self.waiting() else {
                let msg = self.deferred.pop_front().expect("not empty");
                self.apply(msg);
                continue;
            };
            let found = self
                .deferred
                .iter()
                .position(|m| m.recording() == Some(id) && !matches!(m, WriterMsg::Open(_)));
            let Some(at) = found else {
                let now = self.clocks.now().lsl;
                if let Some(f) = self.file.as_mut() {
                    let soon = f.next_waits_until(now);
                    if let Some((_, until)) = f.waiting_close.as_mut() {
                        *until = (*until).min(soon);
                    }
                }
                return;
            };
            let msg = self.deferred.remove(at).expect("found");
            self.apply(msg);
        }
    }

    fn apply(&mut self, msg: WriterMsg) {
        match msg {
            WriterMsg::Open(spec) => {
                if let Some(f) = self.file.as_mut() {
                    let id = f.spec.id;
                    if let Some((reason, _)) = f.waiting_close.take() {
                        // Stopped, waiting for its audio (`handle` holds an Open behind
                        // such a file; this is for a caller that did not).
                        tracing::warn!("recording {} starts while recording {id} waits for its audio; closing it now", spec.id);
                        self.close(reason);
                    } else {
                        tracing::error!(
                            "recording {id} was still open when recording {} started; closing it",
                            spec.id
                        );
                        self.close(StopReason::Superseded { by: spec.id });
                    }
                }
                self.failed = None;
                self.open(*spec);
            }
            WriterMsg::Frame(frame) => {
                if self.file.is_some() {
                    self.frame(&frame);
                }
            }
            WriterMsg::Buffered(frames) => {
                for frame in &frames {
                    if self.file.is_none() {
                        break;
                    }
                    self.frame(frame);
                    // Written in batches of the usual size, not all at once; a new file's
                    // first frame alone, so that the file exists (its name synced, control
                    // told) before the rest waits on the disk: its first sync once took
                    // the whole first batch, 20 s of a 200 kB/s disk with the file unnamed.
                    if self.file.as_ref().is_some_and(|f| f.write_now()) {
                        self.flush();
                    }
                }
            }
            WriterMsg::Mark {
                id,
                text,
                at,
                wall,
                origin,
            } => {
                if let Some(f) = self.file.as_mut().filter(|f| f.spec.id == id) {
                    sidecar::event_row(&mut f.events, at, wall, "mark", &origin, &text);
                    if let (Some(o), Some(m)) = (f.origin, f.muxer.as_mut()) {
                        m.add_chapter(at.nanos_since(o).max(0), &text);
                    }
                }
            }
            WriterMsg::Note {
                id,
                at,
                wall,
                event,
                detail,
            } => {
                let origin = match event {
                    NoteKind::AudioStart => Origin::new(TriggerSource::Audio, "wav"),
                    NoteKind::AudioLost | NoteKind::AudioBack => {
                        Origin::new(TriggerSource::Audio, "input")
                    }
                    NoteKind::Power(c) => Origin::new(TriggerSource::Power, c.sensor()),
                    _ => Origin::new(TriggerSource::Camera, self.cam.name.clone()),
                };
                let audio_row = matches!(event, NoteKind::AudioLost | NoteKind::AudioBack);
                if let Some(f) = self.file.as_mut().filter(|f| f.spec.id == id) {
                    // Before the `audio_start` row: held, to follow it.
                    let rows = match audio_row && f.audio_start_pending {
                        true => &mut f.held_rows,
                        false => &mut f.events,
                    };
                    sidecar::event_row(rows, at, wall, event.as_str(), &origin, &detail);
                    match event {
                        NoteKind::CameraLost => {
                            f.camera_losses += 1;
                            f.lost_now = true;
                        }
                        // Only the part of the gap within the file's span (a camera
                        // lost before the recording began).
                        NoteKind::CameraBack { gap } => {
                            let within =
                                Duration::from_nanos(at.nanos_since(f.begin()).max(0) as u64);
                            f.camera_lost += gap.min(within);
                            f.lost_now = false;
                        }
                        NoteKind::AudioStart => {
                            f.audio_start_pending = false;
                            f.events.push_str(&std::mem::take(&mut f.held_rows));
                            self.close_if_ready();
                        }
                        NoteKind::AudioLost | NoteKind::AudioBack | NoteKind::Power(_) => {}
                    }
                } else if matches!(event, NoteKind::AudioStart) {
                    self.late_audio_start(id, at, wall, &detail);
                } else if audio_row {
                    let mut row = String::new();
                    sidecar::event_row(&mut row, at, wall, event.as_str(), &origin, &detail);
                    self.late_audio_row(id, row);
                }
            }
            WriterMsg::Audio { id, block } => self.audio(id, block),
            WriterMsg::AudioEnd { id } => self.audio_end(id),
            WriterMsg::NoWav { id } => {
                if let Some(f) = self.file.as_mut().filter(|f| f.spec.id == id) {
                    f.audio_start_pending = false;
                    f.events.push_str(&std::mem::take(&mut f.held_rows));
                    self.close_if_ready();
                } else if let Some(c) = self.closed.iter_mut().find(|c| c.id == id) {
                    if let Some(held) = c.held.take().filter(|h| !h.is_empty()) {
                        append_to_sidecar(id, &c.events, &held, "the audio rows held");
                    }
                }
            }
            WriterMsg::Close {
                id,
                end,
                reason,
                late,
            } => {
                if self.failed == Some(id) {
                    self.failed = None;
                    return;
                }
                let now = self.clocks.now().lsl;
                match &mut self.file {
                    Some(f) if f.spec.id == id => {
                        f.end = end;
                        if late && end.is_some() {
                            f.late_until = Some(now + LATE_FRAMES_WAIT);
                        }
                        if f.waits_for_audio() {
                            // The audio of the last moments, or where the WAV starts, is
                            // still on its way.
                            f.waiting_close = Some((reason, now + AUDIO_END_WAIT));
                        } else if f.late_until.is_some() {
                            f.waiting_close = Some((reason, now + LATE_FRAMES_WAIT));
                        } else {
                            self.close(reason);
                        }
                        // Frames already held behind it (a burst of commands) may hold
                        // its last ones, and the first after its end.
                        self.take_late_frames_held();
                    }
                    _ => {
                        tracing::warn!("close for recording {id}, which is not open")
                    }
                }
            }
        }
    }

    fn audio(&mut self, id: u64, block: AudioBlock) {
        if let Some(m) = self
            .file
            .as_mut()
            .filter(|f| f.spec.id == id)
            .and_then(|f| f.mux.as_mut())
        {
            m.push_audio(block);
            self.drain_mux(false);
        }
    }

    fn audio_end(&mut self, id: u64) {
        let Some(f) = self.file.as_mut().filter(|f| f.spec.id == id) else {
            return;
        };
        if let Some(m) = f.mux.as_mut() {
            m.audio_done = true;
        }
        if f.waiting_close.is_some() {
            self.close_if_ready();
        } else {
            self.drain_mux(false);
        }
    }

    /// Closes a file whose close waited for its audio or its last frames, once nothing
    /// is missing (or the frames' wait is over). Returns whether it did.
    fn close_if_ready(&mut self) -> bool {
        let now = self.clocks.now().lsl;
        let ready = self.file.as_ref().is_some_and(|f| {
            f.waiting_close.is_some() && !f.waits_for_audio() && !f.waits_for_frames(now)
        });
        if ready {
            let f = self.file.as_mut().expect("checked");
            if f.late_until.take().is_some() {
                tracing::info!(
                    camera = %self.cam.name,
                    "recording {}: no frame exposed after its end came within {} s; closed \
                     with what came",
                    f.spec.id,
                    LATE_FRAMES_WAIT.as_secs()
                );
            }
            let (reason, _) = f.waiting_close.take().expect("checked");
            self.close(reason);
        }
        ready
    }

    /// A stopped file whose close waits for frames exposed before its end takes them from
    /// the next recording's frames (`msg`, held behind it for that recording, which has
    /// them too): those it has not taken yet, up to the first frame after its end, which
    /// closes it.
    fn take_late_frames(&mut self, msg: &WriterMsg) {
        if self.take_late(msg) {
            self.close_if_ready();
        }
    }

    /// [`Writer::take_late_frames`] from the messages already held behind the file.
    fn take_late_frames_held(&mut self) {
        if self.file.as_ref().is_none_or(|f| f.late_until.is_none()) {
            return;
        }
        let held = std::mem::take(&mut self.deferred);
        let done = held.iter().any(|msg| self.take_late(msg));
        self.deferred = held;
        if done {
            self.close_if_ready();
        }
    }

    /// Takes the frames of `msg` the waiting file lacks, up to its end; returns whether
    /// the wait is over (a frame after its end was among them).
    fn take_late(&mut self, msg: &WriterMsg) -> bool {
        let Some(end) = self
            .file
            .as_ref()
            .filter(|f| f.late_until.is_some())
            .and_then(|f| f.end)
        else {
            return false;
        };
        let frames: &[Frame] = match msg {
            WriterMsg::Frame(frame) => std::slice::from_ref(frame),
            WriterMsg::Buffered(frames) => frames,
            _ => return false,
        };
        for frame in frames {
            let Some(f) = self.file.as_mut() else {
                return false;
            };
            if frame.meta.capture > end {
                f.late_until = None;
                return true;
            }
            if f.last_taken.is_none_or(|t| frame.meta.capture > t) {
                self.frame(frame);
            }
        }
        false
    }

    /// A close has waited long enough for the audio: the file ends without what did not
    /// come (the audio track's end, or the `audio_start` row).
    fn close_if_audio_is_late(&mut self) {
        // Its last frames' wait may be over before the audio's.
        if self
            .file
            .as_ref()
            .is_some_and(|f| f.waiting_close.is_some())
            && self.close_if_ready()
        {
            self.replay();
            return;
        }
        let late = self
            .file
            .as_ref()
            .and_then(|f| f.waiting_close.as_ref())
            .is_some_and(|(_, until)| self.clocks.now().lsl >= *until);
        if late {
            let f = self.file.as_mut().expect("checked");
            let (reason, _) = f.waiting_close.take().expect("checked");
            let id = f.spec.id;
            if f.mux.as_ref().is_some_and(|m| !m.audio_done) {
                tracing::warn!(
                    "recording {id}: the audio track's end did not come in time; closing without it"
                );
            }
            if f.audio_start_pending {
                tracing::warn!(
                    "recording {id}: the audio thread did not say in time where the WAV starts; \
                     its events sidecar has no audio_start row until it does"
                );
            }
            self.close(reason);
            self.replay();
        }
    }

    /// Writes what the interleaver lets go.
    fn drain_mux(&mut self, closing: bool) {
        let now = self.clocks.now().lsl;
        loop {
            let Some(item) = self
                .file
                .as_mut()
                .and_then(|f| f.mux.as_mut())
                .and_then(|m| m.next(closing, now))
            else {
                return;
            };
            match item {
                Item::Video(frame) => self.write_video(&frame),
                Item::Audio(block) => {
                    if let Some(f) = self.file.as_mut() {
                        if f.spec.max_bytes.is_some() {
                            // Held, and written up to each frame as the frames come, so
                            // that a part that ends at a frame ends its audio there too.
                            // The one held before ends before this one begins.
                            f.write_held_audio(None);
                            f.held_audio = Some((block, 0));
                        } else {
                            f.write_audio(&block);
                        }
                    }
                }
            }
            if self.file.is_none() {
                return;
            }
        }
    }

    fn open(&mut self, spec: OpenSpec) {
        let id = spec.id;
        let path = spec.paths.mkv.display().to_string();
        let buffers = self.spare.take().unwrap_or_else(Buffers::new);
        match OpenFile::create(spec, buffers, self.clocks.clone()) {
            Ok(mut f) => {
                f.drops_at_open = (self.cam.drops)();
                self.file = Some(f);
            }
            Err((e, buffers)) => {
                self.spare = Some(buffers);
                let error = format!("cannot create {path}: {e}");
                tracing::error!("{error}");
                self.report_failure(id, path, error);
            }
        }
    }

    fn frame(&mut self, frame: &Frame) {
        let f = self.file.as_mut().expect("checked by caller");
        if f.end.is_some_and(|e| frame.meta.capture > e) {
            return;
        }
        f.last_taken = Some(frame.meta.capture);
        if let Some(m) = f.mux.as_mut() {
            m.push_video(frame.clone());
            self.drain_mux(false);
        } else {
            self.write_video(frame);
        }
    }

    fn write_video(&mut self, frame: &Frame) {
        let split = self.file.as_ref().and_then(|f| f.part_before(frame));
        if let Some(f) = self.file.as_mut() {
            // The audio held goes in first, up to this frame (and at a part's end no
            // further: the rest goes on in the next part).
            f.write_held_audio(Some(frame.meta.capture));
            if let Some(cause) = split {
                let rest = f.held_audio.take();
                self.next_part(frame, rest, cause);
            }
        }
        let Some(f) = self.file.as_mut() else {
            return;
        };
        match f.write_frame(frame) {
            Ok(()) => {
                self.cam.stats.frames_written.fetch_add(1, Relaxed);
                publish_bytes(&self.cam, f);
            }
            Err(e) => self.fail(e),
        }
    }

    fn flush(&mut self) {
        let Some(f) = self.file.as_mut() else {
            return;
        };
        match f.flush() {
            Ok(()) => {
                publish_bytes(&self.cam, f);
                // The header and the first frame are in the file: now it exists.
                if f.flushed {
                    self.announce();
                }
            }
            Err(e) => self.fail(e),
        }
    }

    /// Tells the control thread that the open file exists, once.
    fn announce(&mut self) {
        let Some(f) = self.file.as_mut().filter(|f| !f.announced) else {
            return;
        };
        if let (Some(first_frame), Some(first_lsl)) = (f.first_seq, f.origin) {
            f.announced = true;
            let _ = self.events.send(WriterEvent::Opened {
                camera: self.cam.index,
                id: f.spec.id,
                path: f.spec.paths.mkv.display().to_string(),
                first_frame,
                first_lsl,
                size: f.video_size.unwrap_or_default(),
            });
        }
    }

    fn close(&mut self, reason: StopReason) {
        // Whatever video and audio still wait go in, in order.
        self.drain_mux(true);
        let Some(mut f) = self.file.take() else {
            return;
        };
        f.write_held_audio(None);
        self.cam.stats.file_bytes.store(0, Relaxed);
        if f.audio_blocks_dropped > 0 {
            tracing::warn!(
                camera = %self.cam.name,
                "{} of {} audio blocks came too late for the MKV's audio track (the WAV has them)",
                f.audio_blocks_dropped,
                f.audio_blocks + f.audio_blocks_dropped
            );
        }
        if f.audio_before_video > 0 {
            tracing::info!(
                camera = %self.cam.name,
                "{} audio blocks were captured before the file's first frame (a camera lost \
                 at the start): the MKV's audio track begins at that frame, the WAV before it",
                f.audio_before_video
            );
        }
        let camera = self.cam.index;
        let id = f.spec.id;
        if self.closed.len() == CLOSED_KEPT {
            self.closed.pop_front();
        }
        self.closed.push_back(ClosedFile {
            id,
            events: f.spec.paths.events_csv.clone(),
            held: f
                .audio_start_pending
                .then(|| std::mem::take(&mut f.held_rows)),
        });
        if let Some(summary) = self.finish(f, Ending::Stop(&reason)) {
            tracing::info!(
                camera = %self.cam.name,
                "closed {} ({})",
                summary.path,
                summary.figures()
            );
            let _ = self.events.send(WriterEvent::Closed {
                camera,
                id,
                summary,
            });
        }
    }

    /// Finishes `f` (its buffers go back to the spare), and returns what it holds; on a
    /// failure, the recording fails.
    fn finish(&mut self, mut f: OpenFile, ending: Ending) -> Option<FileSummary> {
        let (id, path) = (f.spec.id, f.spec.paths.mkv.display().to_string());
        let lost = (self.cam.drops)().since(&f.drops_at_open);
        let result = f.finish(ending, &lost);
        self.spare = Some(f.into_buffers());
        match result {
            Ok(mut summary) => {
                summary.camera = self.cam.name.clone();
                Some(summary)
            }
            Err(e) => {
                let error = format!("cannot finish {path}: {e}");
                tracing::error!("{error}");
                self.report_failure(id, path, error);
                None
            }
        }
    }

    /// `frame` would take the open file past its size limit, or is of another size than
    /// its video (`cause`): the file is finished as at a stop, and the recording goes on in
    /// its next part, which `frame` begins. Nothing is lost between the two: the next part
    /// takes every frame from this one on, and the muxed audio's interleaving goes on where
    /// it was.
    fn next_part(
        &mut self,
        frame: &Frame,
        audio_rest: Option<(AudioBlock, usize)>,
        cause: PartCause,
    ) {
        // A part filled by the pre-trigger buffer alone is finished before its first
        // write was due: it is announced all the same, before its end.
        self.announce();
        let Some(mut f) = self.file.take() else {
            return;
        };
        self.cam.stats.file_bytes.store(0, Relaxed);
        let id = f.spec.id;
        let mut spec = f.spec.clone();
        spec.part += 1;
        spec.paths = f.first_paths.part(spec.part);
        let next = spec.paths.mkv.display().to_string();
        let next_name = file_name(&spec.paths.mkv);
        let carried = f.carry();
        let previous = (file_name(&f.spec.paths.mkv), f.last_seq);
        let ending = Ending::Part {
            next: &next_name,
            cause,
        };
        let Some(summary) = self.finish(f, ending) else {
            return;
        };
        tracing::info!(
            camera = %self.cam.name,
            "closed {} {} ({}); recording {id} goes on in {next}",
            summary.path,
            cause.closed(),
            summary.figures()
        );
        let _ = self.events.send(WriterEvent::Continued {
            camera: self.cam.index,
            id,
            summary,
            next: next.clone(),
        });
        let buffers = self.spare.take().unwrap_or_else(Buffers::new);
        match OpenFile::create(spec, buffers, self.clocks.clone()) {
            Ok(mut g) => {
                g.drops_at_open = (self.cam.drops)();
                g.take_over(carried, frame, &previous, cause);
                // The rest of the last audio block: from the first frame on, written with
                // the next frame, as every block.
                g.held_audio = audio_rest;
                self.file = Some(g);
            }
            Err((e, buffers)) => {
                self.spare = Some(buffers);
                let error = format!("cannot create {next}: {e}");
                tracing::error!("{error}");
                self.report_failure(id, next, error);
            }
        }
    }

    /// Where a closed recording's WAV starts, told after its file closed: the row is added
    /// to the end of its events sidecar (after its `stop` row; its times say when).
    fn late_audio_start(&mut self, id: u64, at: LslTime, wall: WallTime, detail: &str) {
        let Some(c) = self.closed.iter_mut().find(|c| c.id == id) else {
            return;
        };
        let Some(held) = c.held.take() else {
            return;
        };
        let mut row = String::new();
        let origin = Origin::new(TriggerSource::Audio, "wav");
        sidecar::event_row(
            &mut row,
            at,
            wall,
            NoteKind::AudioStart.as_str(),
            &origin,
            detail,
        );
        row.push_str(&held);
        append_to_sidecar(id, &c.events, &row, "where the WAV starts (audio_start)");
    }

    /// An `audio_lost` or `audio_back` row for a recording whose file is closed: held with
    /// the rows for after its `audio_start` row if that has not come, else added to the
    /// end of its events sidecar (after its `stop` row; its times say when).
    fn late_audio_row(&mut self, id: u64, row: String) {
        let Some(c) = self.closed.iter_mut().find(|c| c.id == id) else {
            tracing::warn!(
                camera = %self.cam.name,
                "recording {id}: an audio row for a file this writer no longer holds (it \
                 failed, or {CLOSED_KEPT} more closed since): only in the log: {}",
                row.trim_end()
            );
            return;
        };
        match &mut c.held {
            Some(held) => held.push_str(&row),
            None => append_to_sidecar(id, &c.events, &row, "an audio row"),
        }
    }

    /// A write failed (disk full, device gone): finish the file as far as possible so that
    /// what is on disk stays playable, report, and drop the rest of this recording.
    fn fail(&mut self, e: io::Error) {
        let Some(mut f) = self.file.take() else {
            return;
        };
        self.cam.stats.file_bytes.store(0, Relaxed);
        let id = f.spec.id;
        let path = f.spec.paths.mkv.display().to_string();
        let hint = files::write_error_hint(&e, f.written);
        let error = format!("writing {path} failed: {e}{hint}");
        tracing::error!("{error}; the file keeps what was written");
        // What reached the disk is not what the muxer thinks it wrote, so the file is
        // finished from what is actually in it, as `hindsight repair` does: its frames
        // sidecar keeps the rows of the frames the file kept (a batch's rows are written
        // before its frames). The events still to be written go in too (the start row, if
        // it fails in its first batch).
        let pending_events = f.events.as_bytes()[f.events_done..].to_vec();
        f.discard_pending();
        let paths = f.spec.paths.clone();
        // A file that fails in its first batches (the pre-trigger buffer's) was not
        // announced yet: if it keeps frames, it is a file of the recording all the same.
        let unannounced = f.first_seq.zip(f.origin).filter(|_| !f.announced);
        let size = f.video_size.unwrap_or_default();
        // Its files close here, and with them the hold that keeps repairs off them.
        self.spare = Some(f.into_buffers());
        if holds_no_frame(&paths.mkv) {
            // Nothing of the recording reached the disk (it was full from the start, say):
            // files without a frame would only mislead.
            for p in paths.all() {
                let _ = std::fs::remove_file(p);
            }
            tracing::error!(
                camera = %self.cam.name,
                "{path}: not one frame could be written; its empty files are removed"
            );
            let error = format!("{error}: not one frame could be written, no file was kept");
            self.report_failure(id, path, error);
            return;
        }
        append(&paths.events_csv, &pending_events);
        match repair::repair_file(&paths.mkv) {
            Ok(r) => tracing::warn!(
                camera = %self.cam.name,
                "{path} finished as written: {}, {:.1} s", r.contents(), r.duration_s
            ),
            Err(e2) => tracing::error!(
                camera = %self.cam.name,
                "could not finish {path} ({e2}); it plays as it is, and `hindsight repair {path}` finishes it once there is space"
            ),
        }
        if let Some((first_frame, first_lsl)) = unannounced {
            let _ = self.events.send(WriterEvent::Opened {
                camera: self.cam.index,
                id,
                path: path.clone(),
                first_frame,
                first_lsl,
                size,
            });
        }
        self.report_failure(id, path, error);
    }

    /// Recording `id` failed on this camera: its frames are dropped from now on, and the
    /// status and the control thread hear why.
    fn report_failure(&mut self, id: u64, path: String, error: String) {
        self.failed = Some(id);
        let _ = self.events.send(WriterEvent::Failed {
            camera: self.cam.index,
            id,
            path,
            error,
        });
    }
}

/// Appends `text` to the file at `path` and syncs it (after a failed write: best effort,
/// logged).
fn append(path: &std::path::Path, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    if let Err(e) = try_append(path, text) {
        tracing::error!("cannot add the last rows to {}: {e}", path.display());
    }
}

/// Appends `text` to the file at `path` and syncs it. A write the disk cut part way is
/// taken back: the file ends in whole rows, and the next rows appended are whole too.
fn try_append(path: &std::path::Path, text: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    let before = f.metadata()?.len();
    write_whole(&mut f, text, |f| {
        let _ = f.set_len(before);
    })?;
    f.sync_data()
}

/// Writes all of `bytes` to `out`, or, when a write fails part way (the disk filled in
/// it), takes back what reached `out` with `cut`: CSV readers refuse a file that ends in
/// part of a row, and a row appended later would be joined to that part.
fn write_whole<W: Write>(out: &mut W, bytes: &[u8], cut: impl FnOnce(&mut W)) -> io::Result<()> {
    let mut done = 0;
    write_on(out, bytes, &mut done).inspect_err(|_| {
        if done > 0 {
            cut(out)
        }
    })
}

/// Writes `bytes[*done..]` to `out`, counting in `done` what it took: after a write that
/// failed part way (a disk filling), the rest can be written on without repeating what is
/// already in the file.
fn write_on(out: &mut impl Write, bytes: &[u8], done: &mut usize) -> io::Result<()> {
    while *done < bytes.len() {
        match out.write(&bytes[*done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A path's file name, for rows and messages that name a sibling file.
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How a file ends: its recording stopped, or it goes on in a next part.
enum Ending<'a> {
    Stop(&'a StopReason),
    Part { next: &'a str, cause: PartCause },
}

/// Why a recording goes on in a next part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PartCause {
    /// The file reached its size limit (`max_file_size`, or the process's).
    SizeLimit,
    /// The camera's frames changed size: a file's video has one.
    FrameSize { from: (u16, u16), to: (u16, u16) },
}

impl PartCause {
    /// The events file's origin of the part's end and the next part's start.
    fn origin(self) -> &'static str {
        match self {
            PartCause::SizeLimit => "file size limit",
            PartCause::FrameSize { .. } => "frame size changed",
        }
    }

    /// How the log says the file was closed.
    fn closed(self) -> String {
        match self {
            PartCause::SizeLimit => "at its size limit".into(),
            PartCause::FrameSize { from, to } => format!(
                "as the camera's frames changed size from {}x{} to {}x{}",
                from.0, from.1, to.0, to.1
            ),
        }
    }
}

/// What a recording's next part takes over from the part before it.
struct Carried {
    first_paths: RecordingPaths,
    mux: Option<Interleaver>,
    audio_start_pending: bool,
    held_rows: String,
    waiting_close: Option<(StopReason, LslTime)>,
    end: Option<LslTime>,
    last_capture: LslTime,
    lost_now: bool,
}

/// Whether the MKV at `path` holds no complete frame (empty, cut inside its header, or no
/// block): read-only, and false when in doubt (a file that cannot be read is kept).
fn holds_no_frame(path: &std::path::Path) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if f.metadata().is_ok_and(|m| m.len() == 0) {
        return true;
    }
    match mkv_read::plan_repair(&mut f) {
        Ok(plan) => plan.blocks == 0,
        Err(mkv_read::ReadError::HeaderCut { .. }) => true,
        Err(_) => false,
    }
}

impl OpenFile {
    /// Creates the files (never overwriting). On failure the buffers come back.
    fn create(
        spec: OpenSpec,
        mut buffers: Buffers,
        clocks: Arc<dyn Clocks>,
    ) -> Result<OpenFile, (io::Error, Buffers)> {
        buffers.out.clear();
        buffers.pieces.clear();
        buffers.csv.clear();
        let opened = clocks.now().lsl;
        let created = (|| -> io::Result<(File, File, File)> {
            files::make_dir(&spec.paths.dir)?;
            let mkv = files::open_claimed(&spec.paths.mkv)?;
            let frames_csv = files::open_claimed(&spec.paths.frames_csv)?;
            let events_csv = files::open_claimed(&spec.paths.events_csv)?;
            Ok((mkv, frames_csv, events_csv))
        })();
        let (mkv, frames_csv, events_csv) = match created {
            Ok(files) => files,
            Err(e) => return Err((e, buffers)),
        };
        buffers.csv.push_str(sidecar::frames_header(spec.exposure));
        let mut events = String::from(sidecar::EVENTS_HEADER);
        sidecar::event_row(
            &mut events,
            spec.trigger,
            spec.trigger_wall,
            "start",
            &spec.origin,
            &format!("{} {}", spec.kind.as_str(), spec.id),
        );
        Ok(OpenFile {
            first_paths: spec.paths.clone(),
            mkv,
            frames_csv,
            events_csv,
            muxer: None,
            origin: None,
            last_capture: LslTime::from_nanos(i64::MIN),
            end: None,
            out: buffers.out,
            pieces: buffers.pieces,
            muxed_end: 0,
            payload_bytes: 0,
            patches: Vec::new(),
            csv: buffers.csv,
            events,
            events_done: 0,
            frames: 0,
            pre_trigger_frames: 0,
            first_seq: None,
            last_seq: None,
            missing: 0,
            drops_at_open: DropCounts::default(),
            last_sync: clocks.now().lsl,
            clocks,
            dirty_since_sync: false,
            flushed: false,
            announced: false,
            camera_losses: 0,
            camera_lost: Duration::ZERO,
            lost_now: false,
            video_size: None,
            mux: spec
                .audio
                .map(|track| Interleaver::new(AUDIO_HOLD, opened, track)),
            audio_start_pending: spec.audio_start,
            held_rows: String::new(),
            waiting_close: None,
            late_until: None,
            last_taken: None,
            audio_blocks: 0,
            audio_blocks_dropped: 0,
            audio_before_video: 0,
            written: 0,
            published: 0,
            held_audio: None,
            spec,
        })
    }

    /// Whether writing `frame` could take the file past its size limit, with room kept
    /// for the file's finish and for audio blocks muxed meanwhile. A file always takes
    /// its first frame.
    /// Why `frame` cannot go into this file and begins the next part, if it cannot.
    fn part_before(&self, frame: &Frame) -> Option<PartCause> {
        let size = (frame.meta.width, frame.meta.height);
        match self.video_size {
            Some(from) if self.frames > 0 && from != size => {
                Some(PartCause::FrameSize { from, to: size })
            }
            _ => self.full_before(frame).then_some(PartCause::SizeLimit),
        }
    }

    fn full_before(&self, frame: &Frame) -> bool {
        let (Some(limit), Some(muxer)) = (self.spec.max_bytes, self.muxer.as_ref()) else {
            return false;
        };
        // A block's header: ID, size, track, timestamp and flags, at most.
        const BLOCK_HEADER: u64 = 16;
        let margin = PART_MARGIN.min(limit / 8);
        let held = self
            .held_audio
            .as_ref()
            .map_or(0, |(b, done)| BLOCK_HEADER + (b.pcm.len() - done) as u64);
        let need = muxer.position()
            + held
            + BLOCK_HEADER
            + frame.data.len() as u64
            + muxer.finish_bound()
            + margin;
        self.frames > 0 && need > limit
    }

    /// What the next part takes over (`Writer::next_part`).
    fn carry(&mut self) -> Carried {
        Carried {
            first_paths: self.first_paths.clone(),
            mux: self.mux.take(),
            audio_start_pending: std::mem::take(&mut self.audio_start_pending),
            held_rows: std::mem::take(&mut self.held_rows),
            waiting_close: self.waiting_close.take(),
            end: self.end,
            last_capture: self.last_capture,
            lost_now: self.lost_now,
        }
    }

    /// Begins this file as the next part of a recording whose part `previous` (its name
    /// and last frame number) ended before `first`.
    fn take_over(
        &mut self,
        c: Carried,
        first: &Frame,
        previous: &(String, Option<u64>),
        cause: PartCause,
    ) {
        self.first_paths = c.first_paths;
        self.mux = c.mux;
        self.audio_start_pending = c.audio_start_pending;
        self.held_rows = c.held_rows;
        self.waiting_close = c.waiting_close;
        self.end = c.end;
        self.last_capture = c.last_capture;
        self.lost_now = c.lost_now;
        // Frames missing between the parts count in this one.
        self.last_seq = previous.1;
        let (name, last) = previous;
        let after = last.map_or(String::new(), |n| format!(" after its frame {n}"));
        sidecar::event_row(
            &mut self.events,
            first.meta.capture,
            first.meta.wall,
            "part_start",
            &Origin::new(TriggerSource::Writer, cause.origin()),
            &format!(
                "part {} of {} {}: continues {name}{after}{}",
                self.spec.part,
                self.spec.kind.as_str(),
                self.spec.id,
                match cause {
                    PartCause::FrameSize { to, .. } => format!(", at {}x{}", to.0, to.1),
                    PartCause::SizeLimit => String::new(),
                }
            ),
        );
    }

    /// The header goes out with the first frame: its Tags carry that frame's LSL time.
    fn write_header(&mut self, first: &Frame) {
        self.video_size = Some((first.meta.width, first.meta.height));
        let s = &self.spec;
        let tags = FileTags {
            camera: &s.camera,
            first_frame: first.meta.capture,
            first_frame_number: first.meta.seq,
            first_frame_wall: first.meta.wall,
            trigger: s.trigger,
            origin: &s.origin,
            pre_trigger: s.pre_trigger,
            kind: s.kind,
            recording_id: s.id,
            part: s.part,
        }
        .pairs();
        let mut muxer = MkvMuxer::new(MuxerConfig {
            timestamp_unit_ns: TIMESTAMP_UNIT_NS,
            max_cluster_ns: MAX_CLUSTER_NS,
            tracks: std::iter::once(TrackSpec {
                number: 1,
                uid: 1,
                name: "video".into(),
                kind: TrackKind::VideoMjpeg {
                    width: first.meta.width as u32,
                    height: first.meta.height as u32,
                },
            })
            .chain(s.audio.map(|a| TrackSpec {
                number: 2,
                uid: 2,
                name: "audio".into(),
                kind: TrackKind::AudioPcmLe {
                    sample_rate: f64::from(a.rate),
                    channels: a.channels,
                    bit_depth: 16,
                },
            }))
            .collect(),
            tags,
            writing_app: tags::writing_app(),
            date_utc_unix_ns: Some(first.meta.wall.as_nanos()),
            title: Some(match s.part {
                1 => format!("{} {}", s.kind.as_str(), s.id),
                n => format!("{} {}, part {n}", s.kind.as_str(), s.id),
            }),
        });
        muxer.header(&mut self.out);
        self.muxer = Some(muxer);
        self.origin = Some(first.meta.capture);
    }

    fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        if self.origin.is_none() {
            self.write_header(frame);
        }
        let origin = self.origin.expect("set above");
        let mut capture = frame.meta.capture;
        if capture < self.last_capture {
            tracing::warn!(
                "frame {} is stamped before the previous frame; written at the previous time",
                frame.meta.seq
            );
            capture = self.last_capture;
        }
        self.last_capture = capture;
        let pts = self
            .muxer
            .as_mut()
            .expect("header written")
            .write_block_header(
                1,
                capture.nanos_since(origin),
                frame.meta.keyframe,
                frame.data.len(),
                &mut self.out,
                &mut self.patches,
            )
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.close_muxed_piece();
        self.pieces.push(Piece::Payload(frame.data.clone()));
        self.payload_bytes += frame.data.len();
        let pre = frame.meta.capture < self.spec.trigger;
        let exposure = self
            .spec
            .exposure
            .then(|| exif::read(&frame.data).unwrap_or_default());
        sidecar::frame_row(
            &mut self.csv,
            &frame.meta,
            pts * TIMESTAMP_UNIT_NS as i64,
            frame.data.len(),
            pre,
            exposure.as_ref(),
        );
        if let Some(last) = self.last_seq {
            self.missing += frame.meta.seq.saturating_sub(last + 1);
        }
        self.first_seq.get_or_insert(frame.meta.seq);
        self.last_seq = Some(frame.meta.seq);
        self.frames += 1;
        self.pre_trigger_frames += pre as u64;
        Ok(())
    }

    /// One block of the audio track. The track begins at the file's first frame: audio
    /// captured before it (the WAV has it: it starts where the recording does, and a
    /// camera lost at the start gives its file a later first frame) is left out, a block
    /// that straddles the first frame from the sample nearest to it. Audio that cannot go
    /// in (before the first frame, or too far behind the video already written) is
    /// counted; the WAV file has it.
    fn write_audio(&mut self, block: &AudioBlock) {
        self.write_pcm(block.at, &block.pcm);
    }

    /// [`OpenFile::write_audio`] of samples `pcm` captured from `at` on.
    fn write_pcm(&mut self, at: LslTime, pcm: &[u8]) {
        let block = (at, pcm);
        let (Some(origin), Some(muxer)) = (self.origin, self.muxer.as_mut()) else {
            self.audio_before_video += 1;
            return;
        };
        let (t, pcm) = match self.spec.audio {
            Some(track) if block.0 < origin => {
                // Whole samples before the first frame, to the nearest one (a block that
                // begins within half a sample of it goes in whole, at 0).
                let early = i128::from(origin.nanos_since(block.0));
                let rate = i128::from(track.rate.max(1));
                let skip = ((early * rate + 500_000_000) / 1_000_000_000) as usize;
                let skip_bytes = skip.saturating_mul(2 * usize::from(track.channels.max(1)));
                if skip_bytes >= block.1.len() {
                    self.audio_before_video += 1;
                    return;
                }
                let t = skip as i128 * 1_000_000_000 / rate - early;
                (i64::try_from(t).unwrap_or(0).max(0), &block.1[skip_bytes..])
            }
            _ => (block.0.nanos_since(origin).max(0), block.1),
        };
        match muxer.write_block(2, t, true, pcm, &mut self.out, &mut self.patches) {
            Ok(_) => self.audio_blocks += 1,
            Err(_) => self.audio_blocks_dropped += 1,
        }
    }

    /// Writes the samples of the audio block held ([`OpenFile::held_audio`]) that were
    /// captured before `until` (all of them for `None`), and keeps the rest held. Where
    /// the file ends at `until` (a part's end), the rest goes to the next part.
    fn write_held_audio(&mut self, until: Option<LslTime>) {
        let Some((block, done)) = self.held_audio.take() else {
            return;
        };
        let Some(track) = self.spec.audio else {
            return;
        };
        let frame_bytes = 2 * usize::from(track.channels.max(1));
        let rate = i128::from(track.rate.max(1));
        // Sample `n` of the block was captured at `at + n / rate`.
        let time_of = |byte: usize| {
            let n = (byte / frame_bytes) as i128;
            block.at + Duration::from_nanos((n * 1_000_000_000 / rate) as u64)
        };
        let end = match until {
            None => block.pcm.len(),
            Some(until) => {
                let before = i128::from(until.nanos_since(block.at).max(0));
                let samples = ((before * rate + 500_000_000) / 1_000_000_000) as usize;
                samples
                    .saturating_mul(frame_bytes)
                    .clamp(done, block.pcm.len())
            }
        };
        // Before the file's first frame (its header not written yet), the samples up to
        // it are left out as `write_audio` leaves them out: the track begins there.
        let before_first_frame = self.origin.is_none() && end < block.pcm.len();
        if end > done && !before_first_frame {
            self.write_pcm(time_of(done), &block.pcm[done..end]);
        }
        if end < block.pcm.len() {
            self.held_audio = Some((block, end));
        }
    }

    fn close_muxed_piece(&mut self) {
        if self.out.len() > self.muxed_end {
            self.muxed_end = self.out.len();
            self.pieces.push(Piece::Muxed(self.muxed_end));
        }
    }

    /// Until when this file's close may still wait once the next recording is to open
    /// (`now`: the writer's clock). For the `audio_start` note only, [`NEXT_WAITS`]: the
    /// audio thread answers at once when it answers at all. For the audio track's end,
    /// also until [`AUDIO_HOLD`] past the stop: audio may come that late (a sound server
    /// delivers in bursts of up to 2 s), the video of every muxed file already waits that
    /// long for its audio, and the next recording's file will wait for its own audio as
    /// long; cut at [`NEXT_WAITS`], a stop followed at once by a start (one trial after
    /// another) lost its file's last second of audio.
    fn next_waits_until(&self, now: LslTime) -> LslTime {
        let soon = now + NEXT_WAITS;
        match self.end {
            Some(end) if self.mux.as_ref().is_some_and(|m| !m.audio_done) => {
                soon.max(end + AUDIO_HOLD)
            }
            _ => soon,
        }
    }

    /// A close must wait: the audio track's end or the `audio_start` note has not come.
    fn waits_for_audio(&self) -> bool {
        self.audio_start_pending || self.mux.as_ref().is_some_and(|m| !m.audio_done)
    }

    /// Whether its close still waits for frames exposed before its end (`now`: the
    /// writer's clock).
    fn waits_for_frames(&self, now: LslTime) -> bool {
        self.late_until.is_some_and(|until| now < until)
    }

    /// Whether what is muxed goes to the file before more is taken: a full batch, or a new
    /// file's header and first frame (written and synced alone, so that the file exists
    /// before the rest waits on the disk).
    fn write_now(&self) -> bool {
        self.batch_full() || (!self.flushed && !self.out.is_empty())
    }

    fn batch_full(&self) -> bool {
        self.out.len() + self.payload_bytes >= MAX_BATCH_BYTES
            || self.pieces.len() >= MAX_BATCH_PIECES
    }

    /// Drops what was muxed but not written (after a failed write).
    fn discard_pending(&mut self) {
        self.out.clear();
        self.pieces.clear();
        self.muxed_end = 0;
        self.payload_bytes = 0;
        self.csv.clear();
    }

    /// Writes the batch: one `writev` (more if the kernel takes it in parts).
    fn write_pieces(&mut self) -> io::Result<()> {
        self.close_muxed_piece();
        let mut slices = Vec::with_capacity(self.pieces.len());
        let mut start = 0;
        for p in &self.pieces {
            match p {
                Piece::Muxed(end) => {
                    slices.push(IoSlice::new(&self.out[start..*end]));
                    start = *end;
                }
                Piece::Payload(b) => slices.push(IoSlice::new(b)),
            }
        }
        let mut bufs = &mut slices[..];
        while !bufs.is_empty() {
            match self.mkv.write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n as u64;
                    IoSlice::advance_slices(&mut bufs, n)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        drop(slices);
        self.pieces.clear();
        self.out.clear();
        self.muxed_end = 0;
        self.payload_bytes = 0;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // What describes a batch goes before its frames: its sidecar rows, then the
        // events (a take's start, marks). A crash between leaves rows of frames the file
        // lacks (repair removes them) and events of moments it has no frame of, never
        // frames without their times or a take without its start (design/files.md).
        if !self.csv.is_empty() {
            self.frames_csv.write_all(self.csv.as_bytes())?;
            self.csv.clear();
        }
        if !self.events.is_empty() {
            write_on(
                &mut self.events_csv,
                self.events.as_bytes(),
                &mut self.events_done,
            )?;
            self.events.clear();
            self.events_done = 0;
        }
        if !self.out.is_empty() || !self.pieces.is_empty() {
            self.write_pieces()?;
            self.dirty_since_sync = true;
            if !self.flushed {
                // The first bytes are out: make the new file's name durable (design/files.md).
                self.flushed = true;
                if self.spec.fsync_interval.is_some() {
                    self.frames_csv.sync_data()?;
                    self.events_csv.sync_data()?;
                    self.mkv.sync_data()?;
                }
                files::sync_dir(&self.spec.paths.dir)?;
            }
        }
        for p in self.patches.drain(..) {
            self.mkv.write_all_at(&p.bytes, p.offset)?;
        }
        if let Some(interval) = self.spec.fsync_interval {
            let since = self.clocks.now().lsl.saturating_since(self.last_sync);
            if self.dirty_since_sync && since >= interval {
                self.sync()?;
            }
        }
        Ok(())
    }

    fn into_buffers(mut self) -> Buffers {
        self.discard_pending();
        Buffers {
            out: self.out,
            pieces: self.pieces,
            csv: self.csv,
        }
    }

    /// The sidecars first, as they are written: what a power cut keeps of the file's
    /// frames has its rows and its take's start.
    fn sync(&mut self) -> io::Result<()> {
        self.frames_csv.sync_data()?;
        self.events_csv.sync_data()?;
        self.mkv.sync_data()?;
        self.last_sync = self.clocks.now().lsl;
        self.dirty_since_sync = false;
        Ok(())
    }

    /// Where the file's span begins: the pre-trigger time before its trigger.
    fn begin(&self) -> LslTime {
        self.spec.trigger - self.spec.pre_trigger
    }

    fn finish(&mut self, ending: Ending, lost: &DropCounts) -> io::Result<FileSummary> {
        let stop_at = self.end.unwrap_or(self.last_capture);
        // (At a part's end the camera's absence goes on into the next part.)
        if matches!(ending, Ending::Stop(_)) && std::mem::take(&mut self.lost_now) {
            // Still lost at the end (the stop, or now when it has none: a shutdown): away
            // since its last frame here, or the file's start.
            let until = self.end.unwrap_or_else(|| self.clocks.now().lsl);
            let since = self.last_capture.max(self.begin());
            self.camera_lost += Duration::from_nanos(until.nanos_since(since).max(0) as u64);
        }
        // The stop's own instant on both clocks (the trigger's clock pairing), not the
        // moment the file is finished: a replayed stop happened earlier than that.
        let stop_wall = WallTime::from_nanos(
            self.spec.trigger_wall.as_nanos() + stop_at.nanos_since(self.spec.trigger),
        );
        let mut summary = FileSummary {
            camera: String::new(),
            path: self.spec.paths.mkv.display().to_string(),
            recording_id: self.spec.id,
            kind: self.spec.kind,
            frames: self.frames,
            pre_trigger_frames: self.pre_trigger_frames,
            first_frame_number: self.first_seq,
            last_frame_number: self.last_seq,
            missing_frames: self.missing,
            camera_losses: self.camera_losses,
            camera_lost_s: self.camera_lost.as_secs_f64(),
            duration_s: 0.0,
            bytes: 0,
            error: None,
        };
        // The end's row is written last, once the finished file is on the disk: a take
        // whose events have it was finished whole, one without it was cut (a crash, a
        // power cut; repair finishes it and the list says "repaired").
        let mut end_row = String::new();
        match ending {
            Ending::Stop(reason) => sidecar::event_row(
                &mut end_row,
                stop_at,
                stop_wall,
                "stop",
                &Origin::new(TriggerSource::Writer, reason.to_string()),
                &format!(
                    "{} frames; lost while recording: {}",
                    self.frames,
                    lost.listed()
                ),
            ),
            // At its last frame: the next part begins with the next one.
            Ending::Part { next, cause } => sidecar::event_row(
                &mut end_row,
                self.last_capture,
                WallTime::from_nanos(
                    self.spec.trigger_wall.as_nanos()
                        + self.last_capture.nanos_since(self.spec.trigger),
                ),
                "part_end",
                &Origin::new(TriggerSource::Writer, cause.origin()),
                &format!(
                    "{} frames; continued in {next}; lost while recording: {}",
                    self.frames,
                    lost.listed()
                ),
            ),
        }
        if let Some(muxer) = self.muxer.as_mut() {
            let fin = muxer
                .finish(&mut self.out, &mut self.patches)
                .map_err(|e| io::Error::other(e.to_string()))?;
            summary.duration_s = fin.duration_ns as f64 / 1e9;
        }
        // Written even when the batch is not due, and synced whatever the policy:
        // a finished file is durable.
        let interval = self.spec.fsync_interval.take();
        let flushed = self.flush();
        self.spec.fsync_interval = interval;
        flushed?;
        self.sync()?;
        let (mut done, before) = (0, self.events_csv.metadata()?.len());
        write_on(&mut self.events_csv, end_row.as_bytes(), &mut done)
            .and_then(|()| self.events_csv.sync_data())
            .map_err(|e| {
                // No part of a row (CSV readers refuse a file that ends in one).
                if done > 0 {
                    let _ = self.events_csv.set_len(before);
                }
                io::Error::new(
                    e.kind(),
                    format!(
                        "its video is whole, but the last row of its events sidecar (where \
                         and why it ended) could not be written: {e}"
                    ),
                )
            })?;
        summary.bytes = self.mkv.metadata().map(|m| m.len()).unwrap_or(0);
        if self.origin.is_none() {
            // Not one frame arrived (an empty buffer, or a stop right after start): an
            // empty Matroska file would only confuse; the events file says what happened.
            let _ = std::fs::remove_file(&self.spec.paths.mkv);
            let _ = std::fs::remove_file(&self.spec.paths.frames_csv);
            summary.error = Some(match summary.camera_losses {
                0 => "no frames: no video was written, only its events file".to_string(),
                _ => format!(
                    "no frames: the camera was lost for all {:.1} s of it; no video was \
                     written, only its events file, which says why",
                    summary.camera_lost_s
                ),
            });
        }
        files::sync_dir(&self.spec.paths.dir)?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests;
