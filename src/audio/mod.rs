//! Audio: a microphone (or a synthetic tone) with its own pre-trigger buffer, written as a
//! WAV file beside the video, on the same clock (SPEC section 7).
//!
//! ```text
//!  audio-in (ALSA) ──(rtrb: samples, chunk infos)──► audio thread ──► AudioRing (pre-trigger)
//!                                                      │  Timeline: sample index ↔ LSL time
//!                                                      ├─► WAV (RF64 past 4 GiB), header kept valid
//!                                                      └─► LSL chunk markers, status
//! ```
//! A recording's WAV starts at the capture time of the recording's first video frame and
//! ends at the stop: its sample 0 is that instant (`design/time.md`). Samples the device
//! did not deliver (overruns, a lost device) are written as silence, so that every later
//! sample keeps its place in time. If the device is lost, it is reopened with backoff;
//! video is never held up by audio.
//!
//! What belongs here: the audio thread (the ring, the timeline, the WAV outputs and
//! their commands). What does not: the input devices (`input.rs`), the WAV format
//! (`wav.rs`), the sample ↔ LSL time mapping's arithmetic (`timeline.rs`).

pub mod input;
pub mod markers;
pub mod ring;
pub mod timeline;
pub mod wav;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::bus::LslMsg;
use crate::clock::{Clocks, LslTime};
use crate::event::Event;
use crate::shutdown::{Shutdown, Stage};
use crate::writer::interleave::AudioBlock;
use crate::writer::{NoteKind, WriterMsg, WriterQueue};
use input::{Drain, Input, InputHealth};
use markers::MarkerHold;
use ring::AudioRing;
use timeline::Timeline;
use wav::{Durability, WavOutput};

/// An input that delivers nothing for this long is taken as lost and reopened. (Long
/// enough for devices and servers that deliver in bursts of up to a couple of seconds.)
const STALL: Duration = Duration::from_secs(5);
/// A file whose end has passed this long ago while the input delivers nothing is padded
/// with silence to its end: the samples are not coming.
const PAD_AFTER: Duration = Duration::from_secs(3);
/// A reopened stream's chunks are held until they span this much audio (or for
/// [`REOPEN_WAIT`]) before the gap before it is judged. A stream starts with bursts whose
/// chunks all say "now"; the least delayed chunk of a second of them says when it started.
const REOPEN_WINDOW: Duration = Duration::from_secs(1);
const REOPEN_WAIT: Duration = Duration::from_millis(2500);
/// The audio thread drains the input's ring (which holds 2 s) into the files and the LSL
/// outlet when the input says a batch has come (every 100 ms: see `input.rs`) or a command
/// comes, and looks on its own at least this often (for a lost input, held notes, status):
/// about 10 wakeups a second while the input delivers, 5 when it does not.
const LOOK_EVERY: Duration = Duration::from_millis(200);
/// How often the input's level and buffer are published (at the first turn after).
const STATUS_EVERY: Duration = Duration::from_millis(80);

/// The longest a command waits for the mapping to be confirmed (see [`Engine::command`]).
/// Less than a writer waits at a file's close for where its WAV starts (5 s).
const COMMAND_HOLD_MAX: Duration = Duration::from_secs(3);

pub use crate::config::SampleFormat;

#[derive(Clone, Debug)]
pub struct AudioSettings {
    /// `default`, a cpal device name, or `synthetic`.
    pub source: String,
    pub rate: u32,
    pub channels: u16,
    pub format: SampleFormat,
    pub pre_trigger: Duration,
    /// `storage.fsync_interval`: how often WAV files are made durable.
    pub fsync_interval: Option<Duration>,
    /// `storage.max_file_size` if set (`None`: what the filesystem allows): a WAV goes on
    /// in a next file (`<stem>.part002.wav`, ...) before it grows past it.
    pub max_file_size: Option<u64>,
    /// The ntfy reply topic's notices: the phone hears when the audio input is lost and
    /// when it is back.
    pub notices: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// What the audio thread is told.
#[derive(Debug)]
pub enum AudioCmd {
    /// Write a WAV from `from` (the recording's first video frame) on, until `until` or a Stop.
    Start {
        id: u64,
        path: PathBuf,
        from: LslTime,
        until: Option<LslTime>,
        /// Also send the samples to this writer, for the MKV's audio track.
        mkv: Option<WriterQueue>,
        /// The cameras' writers: each notes where the WAV starts in its events sidecar.
        notes: Vec<WriterQueue>,
    },
    Stop {
        id: u64,
        at: LslTime,
    },
    /// Write `[from, to]` from the buffer.
    Clip {
        id: u64,
        path: PathBuf,
        from: LslTime,
        to: LslTime,
        mkv: Option<WriterQueue>,
        /// The cameras' writers: each notes where the WAV starts in its events sidecar
        /// (their closes wait for it).
        notes: Vec<WriterQueue>,
    },
}

/// Where a WAV starts: its first sample's capture time, as an events sidecar notes it.
#[derive(Clone, Debug)]
pub struct AudioStartNote {
    pub at: LslTime,
    pub wall: crate::clock::WallTime,
    pub detail: String,
}

impl AudioStartNote {
    /// The events-sidecar row for recording `id`.
    pub fn to_writer(&self, id: u64) -> WriterMsg {
        WriterMsg::Note {
            id,
            at: self.at,
            wall: self.wall,
            event: crate::writer::NoteKind::AudioStart,
            detail: self.detail.clone(),
        }
    }
}

pub use crate::status::{AudioFileSummary, AudioStatus};

/// Tells each camera's writer where recording `id`'s WAV starts, or that it has none:
/// their files' closes wait for one or the other (at most 5 s). Never waits: a writer
/// held up by its disk gets it after what it has queued ([`WriterQueue::send`]).
fn tell_writers(id: u64, note: Option<AudioStartNote>, writers: &[WriterQueue]) {
    for w in writers {
        let msg = match &note {
            Some(n) => n.to_writer(id),
            None => WriterMsg::NoWav { id },
        };
        let _ = w.send(msg);
    }
}

/// The audio thread and its command queue.
pub struct AudioHandle {
    pub tx: Sender<AudioCmd>,
    pub join: JoinHandle<()>,
    /// Closed once the thread has tried to open its input for the first time.
    tried: Receiver<()>,
}

impl AudioHandle {
    /// Waits, at most `limit`, until the input has been opened (its samples are stamped
    /// from then on) or has failed to open (it is retried later); false if it is still
    /// opening after `limit` (a driver that hangs).
    pub fn wait_first_open(&self, limit: Duration) -> bool {
        matches!(
            self.tried.recv_timeout(limit),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) | Ok(())
        )
    }
}

/// Starts the audio thread. The input is opened on it (cpal streams stay on the thread
/// that made them); a failure to open is reported in the status and retried.
pub fn spawn(
    settings: AudioSettings,
    clocks: Arc<dyn Clocks>,
    status: Arc<Mutex<AudioStatus>>,
    lsl: Option<Sender<LslMsg>>,
    shutdown: Shutdown,
) -> std::io::Result<AudioHandle> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (tried_tx, tried) = crossbeam_channel::bounded(1);
    let join = std::thread::Builder::new()
        .name("audio".into())
        .spawn(move || {
            let _span = tracing::info_span!("audio").entered();
            let mut engine = Engine::new(settings, clocks, status, lsl);
            engine.open();
            drop(tried_tx);
            engine.run(rx, &shutdown)
        })?;
    Ok(AudioHandle { tx, join, tried })
}

/// A WAV file being written.
struct Output {
    id: u64,
    path: PathBuf,
    /// The recording's WAV, its first part (`<stem>.wav`): what its summary names.
    first_path: PathBuf,
    wav: WavOutput,
    /// The largest the file may grow; past it the samples go on in a next part.
    max_bytes: Option<u64>,
    /// Which part `path` is (1: the recording's `<stem>.wav`), and the frames written
    /// before it.
    part: u32,
    frames_before_part: u64,
    /// Frames of it that are silence put in for audio that did not come (a lost input,
    /// an overrun, a span the buffer no longer held), and how many of those came before
    /// this part.
    silence: u64,
    silence_before_part: u64,
    /// Parts finished and begun, for the LSL events (the thread sends them).
    part_events: Vec<Event>,
    /// The first write error, reported once.
    failed: Option<String>,
    /// Index of the next frame to write.
    next: u64,
    /// Write frames before this index, then close (None: until a Stop says where).
    end: Option<u64>,
    /// End time not yet mapped to an index (the timeline did not reach it yet).
    end_time: Option<LslTime>,
    first_index: u64,
    first_time: LslTime,
    frames: u64,
    /// The MKV writer that also gets these samples.
    mkv: Option<WriterQueue>,
    /// 16-bit PCM for the MKV, reused.
    pcm: Vec<u8>,
    /// The cameras' writers of its recording: their events sidecars note where the input
    /// was lost and back while this WAV was written.
    notes: Vec<WriterQueue>,
    /// Its sidecars have an `audio_lost` row not yet followed by `audio_back`.
    told_lost: bool,
}

impl Output {
    /// An `audio_lost` or `audio_back` row in each camera's events sidecar of its
    /// recording. Never waits on a writer: one held up by its disk gets the row later, in
    /// its order ([`WriterQueue::send`]).
    fn note(&mut self, kind: NoteKind, at: LslTime, wall: crate::clock::WallTime, detail: &str) {
        self.told_lost = kind == NoteKind::AudioLost;
        for w in &self.notes {
            let _ = w.send(WriterMsg::Note {
                id: self.id,
                at,
                wall,
                event: kind,
                detail: detail.to_string(),
            });
        }
    }
}

/// How a WAV's next part is made.
#[derive(Clone, Copy)]
struct WavSpec {
    rate: u32,
    channels: u16,
    format: SampleFormat,
    policy: Durability,
}

impl Output {
    /// How many of `frames` sample frames the file takes now: all of them without a
    /// size limit; at the limit, the file is finished and the next part begun.
    fn room(&mut self, frames: u64, spec: WavSpec) -> u64 {
        let Some(max) = self.max_bytes else {
            return frames;
        };
        let mut fit = self.wav.frames_that_fit(max);
        if fit == 0 && self.frames > self.frames_before_part && self.failed.is_none() {
            self.next_part(spec);
            fit = self.wav.frames_that_fit(max);
        }
        match fit {
            // No next part (it could not be made: said once, as a failed write), or a
            // limit smaller than a part's header: written on, and what the filesystem
            // refuses is lost, as after any failed write, never waited for.
            0 => frames,
            fit => frames.min(fit),
        }
    }

    /// This part is full: it is finished, and the samples go on in the next, from the
    /// next sample on (`<stem>.part002.wav`: its first sample follows this part's last).
    fn next_part(&mut self, spec: WavSpec) {
        let part = self.part + 1;
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = name
            .split_once(".part")
            .map_or(name.trim_end_matches(".wav"), |(s, _)| s);
        let next = self.path.with_file_name(format!(
            "{stem}{}.wav",
            crate::writer::files::part_suffix(part)
        ));
        let created = WavOutput::create(&next, spec.rate, spec.channels, spec.format, spec.policy);
        let wav = match created {
            Ok(w) => w,
            Err(e) => {
                let error = format!(
                    "{} is full (its size limit), and its next part {} cannot be created: {e}",
                    self.path.display(),
                    next.display()
                );
                tracing::error!("audio: {error}");
                self.failed.get_or_insert(error);
                return;
            }
        };
        let done = std::mem::replace(&mut self.wav, wav);
        let finished = done.finish();
        self.check(finished);
        let frames = self.frames - self.frames_before_part;
        let silence = self.silence - self.silence_before_part;
        let first_sample_index = self.first_index + self.frames;
        let first_time = self.first_time
            + Duration::from_nanos(
                (self.frames as u128 * 1_000_000_000 / spec.rate.max(1) as u128) as u64,
            );
        tracing::info!(
            "audio: closed {} at its size limit ({frames} frames, {:.3} s{}); recording {} goes on in {} from {first_time}",
            self.path.display(),
            frames as f64 / f64::from(spec.rate.max(1)),
            crate::status::silence_said(silence, spec.rate),
            self.id,
            next.display()
        );
        self.part_events.push(Event::AudioFileClosed {
            recording: self.id,
            path: self.path.display().to_string(),
            frames,
            silence_frames: silence,
            duration_s: frames as f64 / f64::from(spec.rate.max(1)),
        });
        self.part_events.push(Event::AudioFileOpened {
            recording: self.id,
            path: next.display().to_string(),
            first_sample_lsl_time: first_time.as_secs_f64(),
            first_sample_index,
        });
        self.path = next;
        self.part = part;
        self.frames_before_part = self.frames;
        self.silence_before_part = self.silence;
    }

    /// `frames` frames of silence, in the WAV and the MKV.
    fn silence(&mut self, frames: u64, channels: u64, rate: u32, spec: WavSpec) {
        let mut left = frames;
        while left > 0 {
            let n = self.room(left, spec);
            let written = self.wav.write_silence(n * channels);
            self.check(written);
            left -= n;
        }
        let first = self.next;
        self.frames += frames;
        self.silence += frames;
        self.next += frames;
        if self.mkv.is_some() {
            self.pcm.clear();
            self.pcm.resize((frames * channels * 2) as usize, 0);
            self.send_pcm(rate, first);
        }
    }

    /// Reports the first failed write to this file (disk full, device gone).
    fn check(&mut self, result: std::io::Result<()>) {
        if let (Err(e), None) = (result, &self.failed) {
            let at = std::fs::metadata(&self.path).map_or(0, |m| m.len());
            let hint = crate::writer::files::write_error_hint(&e, at);
            let error = format!("writing {} failed: {e}{hint}", self.path.display());
            tracing::error!("audio: {error}");
            self.failed = Some(error);
        }
    }

    /// Sends `self.pcm` (frames from `first_frame` on) to the MKV's audio track.
    fn send_pcm(&mut self, rate: u32, first_frame: u64) {
        let Some(mkv) = &self.mkv else {
            return;
        };
        let offset = first_frame - self.first_index;
        let at = self.first_time
            + Duration::from_nanos((offset as u128 * 1_000_000_000 / rate as u128) as u64);
        let pcm = std::mem::take(&mut self.pcm);
        // A writer far behind loses the block (the WAV has it), as it loses frames.
        let _ = mkv.offer(WriterMsg::Audio {
            id: self.id,
            block: AudioBlock { at, pcm },
        });
    }
}

struct Engine {
    settings: AudioSettings,
    /// The phone was told the input is lost (and is told when it is back).
    said_lost: bool,
    clocks: Arc<dyn Clocks>,
    status: Arc<Mutex<AudioStatus>>,
    lsl: Option<Sender<LslMsg>>,
    ring: AudioRing,
    timeline: Timeline,
    input: Option<(Input, Arc<InputHealth>, Drain)>,
    next_open: Instant,
    backoff: Duration,
    /// The input was (re)opened: its first chunk may come after a gap.
    fresh_input: bool,
    /// A reopened stream's first chunks, held until they span [`REOPEN_WINDOW`] of samples
    /// (or [`REOPEN_WAIT`] has passed), and since when: the gap before the stream is judged
    /// from all of them, not from the first burst alone.
    reopened: Vec<(input::ChunkInfo, Vec<f32>)>,
    reopened_since: Option<Instant>,
    /// When the input last delivered (or was opened): a silent stream is a lost one.
    last_chunk: Instant,
    outputs: Vec<Output>,
    /// LSL chunk markers waiting for later audio to confirm their times.
    markers: MarkerHold,
    /// Frames of all chunks delivered so far (not the silence put in for gaps).
    delivered: u64,
    /// The input was (re)opened and nothing of it is observed yet: its first delivery's
    /// times are not confirmed until later audio comes.
    unconfirmed_input: bool,
    /// While the mapping awaits confirmation: the `delivered` count that confirms it, by
    /// a delivery at or after the instant (see `markers.rs`).
    confirmed_at: Option<(u64, Instant)>,
    /// Commands held while the mapping awaits confirmation, in order, and since when.
    held: std::collections::VecDeque<AudioCmd>,
    held_since: Option<Instant>,
    /// The last chunk's samples, kept for their allocation.
    scratch: Vec<f32>,
    level_sum: f64,
    level_n: u64,
    overruns: u64,
    silence: u64,
    last_lost_chunks: u64,
    /// How losses are said in the log: at once, then counted while it stays away.
    flaps: crate::flaps::Flaps,
    /// The last loss was counted, not said: its reopen is not said either.
    quiet_open: bool,
    /// Since when the input has delivered nothing, and why (the first reason): from the
    /// time after its last sample. None while it delivers.
    lost_at: Option<(LslTime, String)>,
    /// Each input says here that a batch has come ([`input::Feed::tell`]).
    arrived: (Sender<()>, Receiver<()>),
}

impl Engine {
    fn new(
        settings: AudioSettings,
        clocks: Arc<dyn Clocks>,
        status: Arc<Mutex<AudioStatus>>,
        lsl: Option<Sender<LslMsg>>,
    ) -> Engine {
        // The buffer holds the pre-trigger plus slack for the time a start takes to arrive.
        let frames = (settings.pre_trigger + crate::config::AUDIO_BUFFER_SLACK).as_secs_f64()
            * settings.rate as f64;
        let ring = AudioRing::new(settings.channels, frames as u64);
        {
            let mut s = status.lock();
            s.sample_rate = settings.rate;
            s.channels = settings.channels;
            s.format = format!("{:?}", settings.format).to_lowercase();
            s.state = "starting".into();
            s.level_dbfs = -120.0;
        }
        Engine {
            said_lost: false,
            timeline: Timeline::new(settings.rate),
            ring,
            clocks,
            status,
            lsl,
            input: None,
            next_open: Instant::now(),
            backoff: Duration::from_secs(1),
            fresh_input: false,
            reopened: Vec::new(),
            reopened_since: None,
            last_chunk: Instant::now(),
            outputs: Vec::new(),
            markers: MarkerHold::new(settings.rate),
            delivered: 0,
            unconfirmed_input: false,
            confirmed_at: None,
            held: std::collections::VecDeque::new(),
            held_since: None,
            scratch: Vec::with_capacity(1 << 16),
            level_sum: 0.0,
            level_n: 0,
            overruns: 0,
            silence: 0,
            last_lost_chunks: 0,
            flaps: crate::flaps::Flaps::default(),
            quiet_open: false,
            lost_at: None,
            arrived: crossbeam_channel::bounded(1),
            settings,
        }
    }

    /// Runs until the shutdown reaches [`Stage::Draining`] (the video is finished) or every
    /// sender is gone; then every open file ends with what has arrived.
    fn run(mut self, rx: Receiver<AudioCmd>, shutdown: &Shutdown) {
        let mut last_status = Instant::now();
        // A command that woke the thread, carried out after the audio that came before it
        // is drained (as if it had been found by `try_recv` below).
        let mut woke_by: Option<AudioCmd> = None;
        loop {
            if self.input.is_none() && Instant::now() >= self.next_open {
                self.open();
            }
            self.check_health();
            self.drain_input(false);
            self.release_held(false);
            if let Some(cmd) = woke_by.take() {
                self.command(cmd);
            }
            // Commands already sent are carried out before the shutdown is.
            let draining = shutdown.reached(Stage::Draining);
            loop {
                match rx.try_recv() {
                    Ok(cmd) => self.command(cmd),
                    Err(crossbeam_channel::TryRecvError::Empty) if !draining => break,
                    // Shutting down, or nobody can send any more.
                    Err(_) => {
                        let lost = !self.delivering();
                        if let Some(line) = self.flaps.flush(LslTime::now(), "audio", lost) {
                            tracing::warn!("{line}");
                        }
                        self.release_held(true);
                        self.finish_all();
                        // The process is ending: a stream stuck in its driver must not keep
                        // it from ending (dropping a stream joins its reader thread).
                        if let Some((input, _, _)) = self.input.take() {
                            std::mem::forget(input);
                        }
                        return;
                    }
                }
            }
            self.write_outputs();
            if last_status.elapsed() >= STATUS_EVERY {
                self.publish_status();
                last_status = Instant::now();
            }
            // A batch of audio or a command wakes the thread at once.
            woke_by = crossbeam_channel::select! {
                recv(rx) -> cmd => cmd.ok(),
                recv(self.arrived.1) -> _ => None,
                default(LOOK_EVERY) => None,
            };
        }
    }

    fn open(&mut self) {
        let s = &self.settings;
        // Enough room for a second of the audio thread being held up.
        let (feed, drain) = input::rings(s.rate, s.channels, 2.0);
        let feed = feed.telling(self.arrived.0.clone());
        let health = Arc::new(InputHealth::default());
        let opened = if s.source == "synthetic" {
            input::open_synthetic(s.rate, s.channels, feed, self.clocks.clone())
        } else {
            input::open_device(&s.source, s.rate, s.channels, feed, health.clone())
        };
        match opened {
            Ok((input, format)) => {
                if self.quiet_open {
                    tracing::debug!("audio: capturing from {} again", format.device);
                } else {
                    tracing::info!(
                        "audio: capturing from {} at {} Hz, {} channel(s)",
                        format.device,
                        format.rate,
                        format.channels
                    );
                }
                let mut st = self.status.lock();
                st.device = format.device;
                st.synthetic = format.synthetic;
                st.state = "capturing".into();
                st.capturing = true;
                drop(st);
                self.input = Some((input, health, drain));
                self.backoff = Duration::from_secs(1);
                self.fresh_input = true;
                self.unconfirmed_input = true;
                self.last_chunk = Instant::now();
            }
            Err(e) => self.lost(e.to_string()),
        }
    }

    /// A line for the ntfy reply topic.
    fn notice(&self, text: String) {
        if let Some(n) = &self.settings.notices {
            let _ = n.send(text);
        }
    }

    fn lost(&mut self, why: String) {
        // What the stream delivered before it went still goes in, in its place, and its
        // markers go out with the mapping as it stands: no more audio will confirm them.
        self.drain_input(true);
        self.release_markers(true);
        self.unconfirmed_input = false;
        self.confirmed_at = None;
        // The LSL event of a loss is stamped where the audio ended, as the sidecars' row;
        // one of a retry that failed, when it failed.
        let mut ended = None;
        if self.lost_at.is_none() {
            // From just after its last sample: the WAVs being written hold silence from
            // there, and their recordings' events sidecars say so.
            let now = self.clocks.now();
            let at = self.timeline.time_of(self.ring.end()).unwrap_or(now.lsl);
            for o in &mut self.outputs {
                if !o.told_lost && o.end_time.is_none_or(|e| at < e) {
                    let from = at.max(o.first_time);
                    let wall = now.wall_at(from);
                    o.note(NoteKind::AudioLost, from, wall, &why);
                }
            }
            self.lost_at = Some((at, why.clone()));
            ended = Some(at);
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(10));
        self.next_open = Instant::now() + wait;
        if let Some((input, _, _)) = self.input.take() {
            // A dead device can leave the stream's reader thread blocked, and dropping the
            // stream waits for that thread: let another thread wait, not this one.
            let _ = std::thread::Builder::new()
                .name("audio-drop".into())
                .spawn(move || drop(input));
        }
        // Said at once, or counted while it stays away and said once a minute (the LSL
        // event below is sent for every one).
        if self.flaps.lost(LslTime::now(), &why) {
            self.quiet_open = false;
            tracing::error!(
                "audio: {why}; retrying in {} s (video goes on)",
                wait.as_secs()
            );
            if !self.said_lost {
                self.said_lost = true;
                self.notice(format!(
                    "audio lost: {why}; recordings go on without it (silence in the WAV) \
                     until it is back"
                ));
            }
        } else {
            self.quiet_open = true;
            tracing::debug!("audio: {why}; retrying in {} s", wait.as_secs());
        }
        let mut st = self.status.lock();
        st.state = format!("lost: {why}; retrying in {} s", wait.as_secs());
        st.capturing = false;
        st.last_error = Some(why.clone());
        drop(st);
        // The recording whose WAV holds silence for it, if one is being written.
        let event = Event::AudioError {
            recording: self.outputs.last().map(|o| o.id),
            message: why.to_string(),
        };
        match ended {
            Some(at) => self.lsl_event_at(at, event),
            None => self.lsl_event(event),
        }
    }

    /// Audio is coming now: a chunk of the open input in the last second (not only its
    /// opening).
    fn delivering(&self) -> bool {
        self.input.is_some()
            && !self.fresh_input
            && self.last_chunk.elapsed() < Duration::from_secs(1)
    }

    fn check_health(&mut self) {
        if let Some(line) = self.flaps.due(LslTime::now(), "audio", !self.delivering()) {
            tracing::warn!("{line}");
        }
        // Some backends stall instead of reporting an error when the device goes away.
        if self.input.is_some() && self.last_chunk.elapsed() > STALL {
            self.lost(format!("no audio for {} s", STALL.as_secs()));
            return;
        }
        let failed = self
            .input
            .as_ref()
            .is_some_and(|(_, h, _)| h.failed.load(Relaxed));
        if failed {
            let why = self
                .input
                .as_ref()
                .and_then(|(_, h, _)| h.error.lock().clone())
                .unwrap_or_else(|| "the audio device failed".into());
            self.lost(format!("audio device lost: {why}"));
        }
    }

    /// Moves what the input delivered into the ring, chunk by chunk. `all`: nothing is held
    /// back (shutdown).
    fn drain_input(&mut self, all: bool) {
        let channels = self.settings.channels as usize;
        let mut infos = Vec::new();
        let Some((_, _, drain)) = self.input.as_mut() else {
            if all && !self.reopened.is_empty() {
                self.push_chunks(infos, true);
            }
            return;
        };
        while let Ok(info) = drain.chunks.pop() {
            let have = info.frames.saturating_sub(info.dropped_frames) as usize * channels;
            self.scratch.clear();
            if let Ok(chunk) = drain.samples.read_chunk(have.min(drain.samples.slots())) {
                let (a, b) = chunk.as_slices();
                self.scratch.extend_from_slice(a);
                self.scratch.extend_from_slice(b);
                chunk.commit_all();
            }
            infos.push((info, std::mem::take(&mut self.scratch)));
        }
        let lost_chunks = drain.lost_chunks.load(Relaxed);
        if lost_chunks > self.last_lost_chunks {
            tracing::warn!(
                "audio: {} chunk(s) lost: the audio thread fell behind",
                lost_chunks - self.last_lost_chunks
            );
            self.last_lost_chunks = lost_chunks;
        }
        if !infos.is_empty() {
            self.last_chunk = Instant::now();
        }
        self.push_chunks(infos, all);
    }

    /// Puts chunks into the ring (after the silence of a gap, for a reopened stream).
    fn push_chunks(&mut self, mut infos: Vec<(input::ChunkInfo, Vec<f32>)>, all: bool) {
        let channels = self.settings.channels as usize;
        let rate = self.settings.rate;
        // Within one stream the samples are contiguous (drops are counted per chunk). A
        // reopened stream starts after a gap: silence until its first sample's time, so
        // that its samples land where they belong. That time is the earliest any of its
        // first chunks implies (a stream may start with a burst of buffered audio whose
        // per-chunk times are all "now"), so they are held until they span a second.
        let expected = self.timeline.time_of(self.ring.end());
        if self.fresh_input && expected.is_none() {
            // The first stream: no gap to judge.
            self.fresh_input = false;
        }
        if self.fresh_input && (!infos.is_empty() || !self.reopened.is_empty()) {
            self.reopened.append(&mut infos);
            let since = *self.reopened_since.get_or_insert_with(Instant::now);
            let frames: u64 = self.reopened.iter().map(|(i, _)| u64::from(i.frames)).sum();
            let spans = frames as f64 >= REOPEN_WINDOW.as_secs_f64() * f64::from(rate);
            if !(all || spans || since.elapsed() >= REOPEN_WAIT) {
                return;
            }
            self.fresh_input = false;
            self.reopened_since = None;
            infos = std::mem::take(&mut self.reopened);
            if let Some(expected) = expected {
                let mut before = 0u64;
                let mut start = LslTime::from_nanos(i64::MAX);
                for (info, _) in &infos {
                    let ns = (before as i128 * 1_000_000_000 / rate as i128) as i64;
                    start = start.min(LslTime::from_nanos(info.first_capture.as_nanos() - ns));
                    before += u64::from(info.frames);
                }
                let late = start.nanos_since(expected);
                if late > 20_000_000 {
                    let gap = (late as i128 * rate as i128 / 1_000_000_000) as u64;
                    tracing::warn!(
                        "audio: {gap} frames of silence for a gap of {:.3} s",
                        late as f64 / 1e9
                    );
                    self.ring.push_silence(gap);
                    self.silence += gap;
                }
            }
        }
        let mut delivered = Vec::with_capacity(infos.len());
        for (info, samples) in infos {
            let first = self.ring.end();
            self.timeline
                .observe(first, info.first_capture, info.reported);
            delivered.push((first, (samples.len() / channels) as u64));
            self.ring
                .push(&samples[..samples.len() / channels * channels]);
            if info.dropped_frames > 0 {
                self.ring.push_silence(u64::from(info.dropped_frames));
                self.overruns += u64::from(info.dropped_frames);
                self.silence += u64::from(info.dropped_frames);
            }
            for s in &samples {
                self.level_sum += f64::from(*s) * f64::from(*s);
            }
            self.level_n += samples.len() as u64;
            self.scratch = samples;
        }
        if delivered.is_empty() {
            return;
        }
        let now = Instant::now();
        self.delivered += delivered.iter().map(|&(_, frames)| frames).sum::<u64>();
        if std::mem::take(&mut self.unconfirmed_input) {
            // Audio comes from the input opened again (an open alone may deliver nothing).
            if let Some((lost, _)) = self.lost_at.take() {
                let back = self.timeline.time_of(delivered[0].0);
                if let Some(back) = back {
                    let now = self.clocks.now();
                    let gap = back.nanos_since(lost).max(0) as f64 / 1e9;
                    let said = format!("after {gap:.1} s without audio (silence put in)");
                    for o in self.outputs.iter_mut().filter(|o| o.told_lost) {
                        let at = back.max(o.first_time);
                        let wall = now.wall_at(at);
                        o.note(NoteKind::AudioBack, at, wall, &said);
                    }
                    // At its first sample, as the events sidecars' row.
                    self.lsl_event_at(
                        back,
                        Event::AudioBack {
                            recording: self.outputs.last().map(|o| o.id),
                            message: said,
                        },
                    );
                }
            }
            if std::mem::take(&mut self.said_lost) {
                let device = self.status.lock().device.clone();
                self.notice(format!("audio back: capturing from {device} again"));
            }
            self.confirmed_at = Some((
                self.delivered + self.markers.confirm_frames(),
                now + markers::CONFIRM,
            ));
        }
        if self
            .confirmed_at
            .is_some_and(|(frames, after)| self.delivered >= frames && now >= after)
        {
            self.confirmed_at = None;
        }
        if self.lsl.is_some() {
            self.markers.delivered(delivered, now);
            self.release_markers(false);
        }
    }

    /// Sends the LSL chunk markers whose times later audio has confirmed (`all`: every
    /// one, when no more audio is coming for now).
    fn release_markers(&mut self, all: bool) {
        let Some(lsl) = &self.lsl else {
            return;
        };
        self.markers.release(
            &self.timeline,
            all,
            Instant::now(),
            |index, first_sample, at| {
                let _ = lsl.try_send(LslMsg::AudioChunk {
                    index,
                    first_sample,
                    at,
                });
            },
        );
    }

    /// A command, carried out now, or held while the mapping from sample index to time
    /// awaits confirmation: a just (re)opened input's first delivery may be a burst of
    /// buffered audio whose chunks all say "now" (see `markers.rs`), and where a WAV
    /// starts is decided from that mapping once, at its start. So from an input's opening
    /// until [`markers::CONFIRM`] of audio has come after its first delivery, in a delivery
    /// at least that long after it, commands wait (in order; at most [`COMMAND_HOLD_MAX`]);
    /// the samples they need stay in the ring.
    ///
    /// A stop for a file already being written is carried out at once: it only says
    /// where that file ends, and held, the file would take the samples after it meanwhile.
    fn command(&mut self, cmd: AudioCmd) {
        let ends_an_open_file = matches!(&cmd, AudioCmd::Stop { id, .. }
            if self.outputs.iter().any(|o| o.id == *id));
        if ends_an_open_file || (self.held.is_empty() && !self.awaiting_confirmation()) {
            return self.carry_out(cmd);
        }
        self.held_since.get_or_insert_with(Instant::now);
        self.held.push_back(cmd);
    }

    /// Carries out the held commands once the mapping is confirmed, or they have waited
    /// [`COMMAND_HOLD_MAX`], or `now` (a shutdown).
    fn release_held(&mut self, now: bool) {
        let Some(since) = self.held_since else {
            return;
        };
        let waited = since.elapsed() >= COMMAND_HOLD_MAX;
        if !(now || waited || !self.awaiting_confirmation()) {
            return;
        }
        if waited && self.awaiting_confirmation() {
            tracing::warn!(
                "audio: the input's times are not confirmed after {COMMAND_HOLD_MAX:?}; \
                 carrying out {} held command(s) with the mapping as it stands",
                self.held.len()
            );
        }
        self.held_since = None;
        while let Some(cmd) = self.held.pop_front() {
            self.carry_out(cmd);
        }
    }

    /// The input was (re)opened and its times are not confirmed yet: nothing of it has
    /// come, or less than [`markers::CONFIRM`] after its first delivery.
    fn awaiting_confirmation(&self) -> bool {
        self.unconfirmed_input || self.confirmed_at.is_some()
    }

    fn carry_out(&mut self, cmd: AudioCmd) {
        match cmd {
            AudioCmd::Start {
                id,
                path,
                from,
                until,
                mkv,
                notes,
            } => {
                let note = self.open_output(id, path, from, until, mkv, notes.clone());
                if note.is_some() {
                    self.note_if_lost();
                }
                tell_writers(id, note, &notes);
            }
            AudioCmd::Clip {
                id,
                path,
                from,
                to,
                mkv,
                notes,
            } => {
                let note = self.open_output(id, path, from, Some(to), mkv, notes.clone());
                if note.is_some() {
                    self.note_if_lost();
                }
                tell_writers(id, note, &notes);
            }
            AudioCmd::Stop { id, at } => {
                for o in self.outputs.iter_mut().filter(|o| o.id == id) {
                    o.end_time = Some(o.end_time.map_or(at, |e| e.min(at)));
                    o.end = None;
                }
            }
        }
    }

    fn open_output(
        &mut self,
        id: u64,
        path: PathBuf,
        from: LslTime,
        until: Option<LslTime>,
        mkv: Option<WriterQueue>,
        notes: Vec<WriterQueue>,
    ) -> Option<AudioStartNote> {
        let policy = Durability::for_fsync_interval(self.settings.fsync_interval);
        let s = &self.settings;
        let created = WavOutput::create(&path, s.rate, s.channels, s.format, policy);
        let wav = match created {
            Ok(w) => w,
            Err(e) => {
                let error = format!("cannot create {}: {e}", path.display());
                tracing::error!("audio: {error}");
                self.status.lock().last_error = Some(error.clone());
                self.lsl_event(Event::AudioError {
                    recording: Some(id),
                    message: error.clone(),
                });
                if let Some(mkv) = mkv {
                    let _ = mkv.send(WriterMsg::AudioEnd { id });
                }
                return None;
            }
        };
        // Sample 0 of the file is the sample captured at `from`; if the timeline is not
        // known yet (no audio so far), the file starts with the first sample that comes.
        let first_index = self.timeline.index_at(from).unwrap_or(self.ring.end());
        let first_time = self.timeline.time_of(first_index).unwrap_or(from);
        tracing::info!("audio: writing {} from {first_time}", path.display());
        // Each camera's events sidecar says where the WAV starts, so that files alone tell
        // how audio and video line up (the quality report reads it).
        let wall = self.clocks.now().wall_at(first_time);
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let note = AudioStartNote {
            at: first_time,
            wall,
            detail: format!("{name}: its first sample ({} Hz)", self.settings.rate),
        };
        self.status.lock().current_file = Some(path.display().to_string());
        self.lsl_event(Event::AudioFileOpened {
            recording: id,
            path: path.display().to_string(),
            first_sample_lsl_time: first_time.as_secs_f64(),
            first_sample_index: first_index,
        });
        let max_bytes = path
            .parent()
            .and_then(|dir| crate::storage::max_file_bytes(self.settings.max_file_size, dir));
        self.outputs.push(Output {
            id,
            first_path: path.clone(),
            path,
            wav,
            max_bytes,
            part: 1,
            frames_before_part: 0,
            silence: 0,
            silence_before_part: 0,
            part_events: Vec::new(),
            failed: None,
            next: first_index,
            end: None,
            end_time: until,
            first_index,
            first_time,
            frames: 0,
            mkv,
            pcm: Vec::new(),
            notes,
            told_lost: false,
        });
        Some(note)
    }

    /// The output just opened, if the input is lost now: its sidecars say so from when
    /// (its start, if it was lost before), and why. A clip that ends before the loss has
    /// none of it. Sent before the `audio_start` note, which lets a clip's file close: the
    /// writer holds the row until that one and writes it after.
    fn note_if_lost(&mut self) {
        let (Some((lost, why)), Some(o)) = (self.lost_at.as_ref(), self.outputs.last_mut()) else {
            return;
        };
        let at = (*lost).max(o.first_time);
        if o.end_time.is_some_and(|end| at >= end) {
            return;
        }
        let why = match *lost <= o.first_time {
            true => format!("lost when this recording began: {why}"),
            false => why.clone(),
        };
        let wall = self.clocks.now().wall_at(at);
        o.note(NoteKind::AudioLost, at, wall, &why);
    }

    /// Writes what each output can take now, and finishes those that reached their end.
    fn write_outputs(&mut self) {
        let rate = self.settings.rate;
        let channels = u64::from(self.settings.channels);
        let now = self.clocks.now().lsl;
        // Nothing has come from the input for a while (or there is none): samples that are
        // due by now are not coming.
        let silent = self.input.is_none() || self.last_chunk.elapsed() >= Duration::from_secs(1);
        let spec = WavSpec {
            rate,
            channels: self.settings.channels,
            format: self.settings.format,
            policy: Durability::for_fsync_interval(self.settings.fsync_interval),
        };
        let mut done = Vec::new();
        let mut events = Vec::new();
        for (i, o) in self.outputs.iter_mut().enumerate() {
            if o.end.is_none() {
                if let Some(t) = o.end_time {
                    o.end = self.timeline.index_at(t);
                }
            }
            let limit = o.end.map_or(self.ring.end(), |e| e.min(self.ring.end()));
            // Frames the ring no longer (or never) held: silence, to keep the timing.
            if o.next < self.ring.start() && o.next < limit {
                let gap = self.ring.start().min(limit) - o.next;
                o.silence(gap, channels, rate, spec);
            }
            if o.next < limit {
                let first = o.next;
                o.pcm.clear();
                // In pieces that fit the file, where it has a size limit.
                while o.next < limit {
                    let (from, to) = (o.next, o.next + o.room(limit - o.next, spec));
                    let (wav, pcm, mux) = (&mut o.wav, &mut o.pcm, o.mkv.is_some());
                    let mut written = Ok(());
                    self.ring.read(from, to, |s| {
                        if written.is_ok() {
                            written = wav.write(s);
                        }
                        if mux {
                            pcm.extend(s.iter().flat_map(|&v| to_i16(v).to_le_bytes()));
                        }
                    });
                    o.check(written);
                    o.frames += to - from;
                    o.silence += self.ring.silence_within(from, to);
                    o.next = to;
                }
                o.send_pcm(rate, first);
            }
            events.append(&mut o.part_events);
            // The end is long past and the input is silent (a device gone): pad to the end.
            let overdue = o.end_time.is_some_and(|t| now > t + PAD_AFTER) && silent;
            if let (Some(end), true) = (o.end, overdue) {
                if o.next < end {
                    o.silence(end - o.next, channels, rate, spec);
                }
                events.append(&mut o.part_events);
            }
            if o.end.is_some_and(|e| o.next >= e) {
                done.push(i);
            } else {
                let settled = o.wav.settle();
                o.check(settled);
            }
        }
        for event in events {
            if let Event::AudioFileOpened { path, .. } = &event {
                self.status.lock().current_file = Some(path.clone());
            }
            self.lsl_event(event);
        }
        // Finished in the order they were opened: where several end at one turn (a clip
        // and the recording started right after it), the status's last file is the newest.
        let mut finished = Vec::with_capacity(done.len());
        for i in done.into_iter().rev() {
            finished.push(self.outputs.remove(i));
        }
        for o in finished.into_iter().rev() {
            self.finish(o);
        }
    }

    fn finish(&mut self, o: Output) {
        let rate = self.settings.rate;
        let path = o.path.display().to_string();
        if let Some(mkv) = &o.mkv {
            let _ = mkv.send(WriterMsg::AudioEnd { id: o.id });
        }
        let finished = o.wav.finish().map_err(|e| {
            // As a failed write says it: a disk turned read-only is found here when the
            // file's last samples were already written.
            let at = std::fs::metadata(&o.path).map_or(0, |m| m.len());
            let hint = crate::writer::files::write_error_hint(&e, at);
            format!("finishing {path} failed: {e}{hint}")
        });
        if let (Err(e), None) = (&finished, &o.failed) {
            tracing::error!("audio: {e}");
        }
        if o.failed.is_some() || finished.is_err() {
            // A WAV that could not take one sample (a full disk) would only mislead.
            let empty = std::fs::File::open(&o.path)
                .map_err(wav::WavError::from)
                .and_then(|mut f| wav::layout(&mut f))
                .map_or_else(
                    |e| matches!(e, wav::WavError::HeaderCut(_)),
                    |l| l.data_on_disk() == 0,
                );
            if empty && std::fs::remove_file(&o.path).is_ok() {
                tracing::error!(
                    "audio: {path}: not one sample could be written; the empty file is removed"
                );
            }
        }
        let summary = AudioFileSummary {
            path: o.first_path.display().to_string(),
            parts: o.part,
            recording_id: o.id,
            frames: o.frames,
            duration_s: o.frames as f64 / rate as f64,
            first_sample_lsl_time: o.first_time.as_secs_f64(),
            silence_frames: o.silence,
            error: o.failed.or(finished.err()),
        };
        if let Some(e) = &summary.error {
            self.status.lock().last_error = Some(e.clone());
        }
        // The summary is the recording's audio; the event, as each part's, this file's.
        let frames = o.frames - o.frames_before_part;
        let silence = o.silence - o.silence_before_part;
        let duration_s = frames as f64 / rate as f64;
        let silent = crate::status::silence_said(silence, rate);
        match o.part {
            1 => tracing::info!("audio: closed {path} ({frames} frames, {duration_s:.3} s{silent})"),
            n => tracing::info!(
                "audio: closed {path} ({frames} frames, {duration_s:.3} s{silent}), part {n} of recording {}'s WAV ({} frames, {:.3} s in all)",
                o.id,
                summary.frames,
                summary.duration_s
            ),
        }
        self.lsl_event(Event::AudioFileClosed {
            recording: o.id,
            path: path.clone(),
            frames,
            silence_frames: silence,
            duration_s,
        });
        let mut st = self.status.lock();
        if st.current_file.as_deref() == Some(&path) {
            st.current_file = None;
        }
        st.last_file = Some(summary);
    }

    /// Shutdown: every open file ends with what has arrived.
    fn finish_all(&mut self) {
        self.drain_input(true);
        self.release_markers(true);
        for o in &mut self.outputs {
            o.end = Some(
                o.end
                    .unwrap_or(self.ring.end())
                    .min(self.ring.end())
                    .max(o.next),
            );
        }
        self.write_outputs();
        let rest: Vec<Output> = self.outputs.drain(..).collect();
        for o in rest {
            self.finish(o);
        }
        wav::wait_for_syncs();
    }

    fn publish_status(&mut self) {
        // The level of what came since the last time; when nothing came, the level stays
        // what it was while the input is open (a sound server may deliver a second or two
        // at a time: the meter does not drop to silence between its bursts).
        let level = if self.level_n > 0 {
            Some(10.0 * (self.level_sum / self.level_n as f64).max(1e-12).log10())
        } else if self.input.is_none() {
            Some(-120.0)
        } else {
            None
        };
        self.level_sum = 0.0;
        self.level_n = 0;
        let buffered = (self.ring.end() - self.ring.start()) as f64 / self.settings.rate as f64;
        let mut st = self.status.lock();
        if let Some(level) = level {
            st.level_dbfs = (level * 10.0).round() / 10.0;
        }
        st.overrun_frames = self.overruns;
        st.silence_frames = self.silence;
        st.buffered_seconds = buffered.min(self.settings.pre_trigger.as_secs_f64());
    }

    fn lsl_event(&self, event: Event) {
        self.lsl_event_at(self.clocks.now().lsl, event);
    }

    /// An event stamped with the moment it tells of (not when it is sent).
    fn lsl_event_at(&self, at: LslTime, event: Event) {
        if let Some(lsl) = &self.lsl {
            let _ = lsl.try_send(LslMsg::Event {
                camera: None,
                at,
                event,
            });
        }
    }
}

/// f32 in [-1, 1] to i16, rounded and clipped.
pub fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_output(path: PathBuf, max_bytes: u64) -> Output {
        let policy = Durability::for_fsync_interval(None);
        let wav = WavOutput::create(&path, 48_000, 1, SampleFormat::S16, policy).unwrap();
        Output {
            id: 1,
            first_path: path.clone(),
            path,
            wav,
            max_bytes: Some(max_bytes),
            part: 1,
            frames_before_part: 0,
            silence: 0,
            silence_before_part: 0,
            part_events: Vec::new(),
            failed: None,
            next: 0,
            end: None,
            end_time: None,
            first_index: 0,
            first_time: LslTime::from_nanos(1_000_000_000),
            frames: 0,
            mkv: None,
            pcm: Vec::new(),
            notes: Vec::new(),
            told_lost: false,
        }
    }

    /// A WAV at its size limit goes on in its next part, which begins with the next
    /// sample; if that part cannot be made, the samples are written on (refused where the
    /// limit is the filesystem's), never waited for: the audio thread must not spin.
    #[test]
    fn a_full_wav_goes_on_in_a_next_part_or_on_but_never_stops_the_thread() {
        let spec = WavSpec {
            rate: 48_000,
            channels: 1,
            format: SampleFormat::S16,
            policy: Durability::for_fsync_interval(None),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut o = wav_output(dir.path().join("rec_2026-12-01_10-00-00.wav"), 1000);
        let fit = o.room(10_000, spec);
        assert!(
            fit > 400 && fit < 500,
            "{fit} frames of 2 bytes after the header"
        );
        o.wav.write(&vec![0.0; fit as usize]).unwrap();
        o.frames += fit;
        assert_eq!(o.room(100, spec), 100, "the next part takes them");
        assert_eq!(o.part, 2);
        assert!(o.path.ends_with("rec_2026-12-01_10-00-00.part002.wav"));
        let kinds: Vec<String> = o.part_events.iter().map(Event::to_json).collect();
        assert!(
            kinds[0].contains(r#""event":"audio_file_closed""#),
            "{kinds:?}"
        );
        assert!(
            kinds[1].contains(r#""event":"audio_file_opened""#),
            "{kinds:?}"
        );
        match &o.part_events[1] {
            Event::AudioFileOpened {
                first_sample_index,
                first_sample_lsl_time,
                ..
            } => {
                assert_eq!(*first_sample_index, fit);
                assert!((first_sample_lsl_time - (1.0 + fit as f64 / 48_000.0)).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        let first = std::fs::File::open(dir.path().join("rec_2026-12-01_10-00-00.wav"))
            .map_err(wav::WavError::from)
            .and_then(|mut f| wav::layout(&mut f))
            .unwrap();
        assert_eq!(
            first.data_size,
            2 * fit,
            "the first part is finished with its samples"
        );

        // The next part's name is taken by a file with data in it: it cannot be made.
        let mut o = wav_output(dir.path().join("rec_2026-12-01_11-00-00.wav"), 1000);
        std::fs::write(
            dir.path().join("rec_2026-12-01_11-00-00.part002.wav"),
            b"data",
        )
        .unwrap();
        let fit = o.room(10_000, spec);
        o.wav.write(&vec![0.0; fit as usize]).unwrap();
        o.frames += fit;
        assert_eq!(o.room(100, spec), 100, "written on, not waited for");
        assert_eq!(o.part, 1);
        let said = o.failed.clone().unwrap();
        assert!(said.contains("part002.wav"), "{said}");
        assert_eq!(o.room(100, spec), 100);
    }

    /// A clip and the recording started right after it may end at one turn (their audio
    /// came in one burst): they are closed in the order they were opened, so that the
    /// status's last file is the newest recording, as a user reading it expects.
    #[test]
    fn files_ending_at_one_turn_close_oldest_first() {
        let settings = AudioSettings {
            source: "synthetic".into(),
            rate: 48_000,
            channels: 1,
            format: SampleFormat::S16,
            pre_trigger: Duration::from_secs(1),
            fsync_interval: None,
            max_file_size: None,
            notices: None,
        };
        let status = Arc::new(Mutex::new(AudioStatus::default()));
        let mut engine = Engine::new(
            settings,
            Arc::new(crate::clock::RealClocks),
            status.clone(),
            None,
        );
        let dir = tempfile::tempdir().unwrap();
        for id in [1, 2] {
            let mut o = wav_output(dir.path().join(format!("rec_{id}.wav")), 1 << 20);
            o.id = id;
            o.end = Some(0);
            engine.outputs.push(o);
        }
        engine.write_outputs();
        assert!(engine.outputs.is_empty(), "both files are closed");
        let last = status.lock().last_file.clone().unwrap();
        assert_eq!(last.recording_id, 2, "{last:?}");
    }

    fn what_note_tells(m: WriterMsg) -> String {
        match m {
            WriterMsg::NoWav { id } => format!("{id}: no WAV"),
            WriterMsg::Note { id, event, .. } => format!("{id}: {}", event.as_str()),
            other => panic!("{other:?}"),
        }
    }

    /// A loss found while one writer's queue is full (its disk held it up): the audio
    /// thread does not wait for it; that writer gets its rows after what it has queued,
    /// in the order they were made, and where the next recording's WAV starts after
    /// them; the other writer gets each at once. (The audio thread once waited up to
    /// 500 ms for such a writer, then offered the rows again at each turn for 60 s,
    /// and dropped them after.)
    #[test]
    fn rows_for_a_full_writer_wait_in_order_and_hold_nothing_up() {
        let (full, full_rx) = crate::writer::queue::queue(0, None);
        let (free, free_rx) = crate::writer::queue::queue(16, None);
        let room = crate::writer::queue::CONTROL_ROOM as u64;
        for i in 0..room {
            full.send(WriterMsg::NoWav { id: 1000 + i }).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut o = wav_output(dir.path().join("a.wav"), 1 << 20);
        o.id = 5;
        o.notes = vec![full.clone(), free];
        let at = LslTime::from_nanos(1_000_000_000);
        let wall = crate::clock::WallTime::from_nanos(0);
        let t = Instant::now();
        o.note(NoteKind::AudioLost, at, wall, "no audio for 5 s");
        o.note(NoteKind::AudioBack, at, wall, "after 1.0 s");
        let start = AudioStartNote {
            at,
            wall,
            detail: String::new(),
        };
        tell_writers(6, Some(start), std::slice::from_ref(&full));
        assert!(
            // Microseconds of work; the old wait alone was 500 ms.
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        let free_got: Vec<String> = std::iter::from_fn(|| free_rx.try_recv())
            .map(what_note_tells)
            .collect();
        assert_eq!(free_got, ["5: audio_lost", "5: audio_back"]);
        let got: Vec<String> = std::iter::from_fn(|| full_rx.try_recv())
            .map(what_note_tells)
            .collect();
        assert_eq!(got.len() as u64, room + 3);
        assert_eq!(got[0], "1000: no WAV");
        assert_eq!(
            got[room as usize..],
            ["5: audio_lost", "5: audio_back", "6: audio_start"]
        );
    }

    #[test]
    fn samples_convert_to_16_bits_with_clipping() {
        assert_eq!(to_i16(0.0), 0);
        assert_eq!(to_i16(0.5), 16384);
        assert_eq!(to_i16(-1.0), -32768);
        assert_eq!(to_i16(1.0), 32767);
        assert_eq!(to_i16(2.0), 32767);
    }
}
