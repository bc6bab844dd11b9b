//! Lab Streaming Layer: per-frame metadata, 10 Hz status and event markers, so that every
//! video frame sits on the lab's common clock (SPEC section 5).
//!
//! liblsl outlets are not `Send`, so all of them live on one thread of their own (`lsl`;
//! liblsl's own threads, started from it, are named `liblsl`), fed by a channel: the
//! capture threads send a small [`FrameRecord`] per frame (never blocking: a full queue
//! is counted), the control thread sends recording windows and events. Per camera there
//! are three streams:
//!
//! * **frames** (`<name>`, the old tool's layout): 4 doubles `frame_number`, `unix_time`,
//!   `is_keyframe`, `recording_active`, one sample per captured frame, stamped with the
//!   frame's capture time (`design/time.md`), nominal rate = the camera's, and
//!   `desc/synchronization/can_drop_samples = true` so that importers do not smooth
//!   timestamps across dropped frames.
//! * **status** (`<name>_Status`): 10 Hz from a monotonic schedule: `status` (0 idle,
//!   1 recording, 2 buffering), `unix_time`, `fps`, `dropped_frames`, `buffered_seconds`.
//! * **events** (`<name>_Events`): one JSON string per command, mark, file opened or closed
//!   (with its first and last frame numbers) and error.
//!
//! `recording_active` is 1 exactly for frames captured inside a recording: from the
//! trigger instant to the stop instant. Those instants reach this thread from the control
//! thread a little after the frames around them, so frame samples are held for
//! [`RELEASE_DELAY`] before they are pushed; their timestamps are explicit, so the delay
//! changes nothing for a consumer but latency.
//!
//! The thread wakes at the status ticks only (10 Hz), whatever the frame rate: it takes
//! every message that came meanwhile and pushes the due frame samples of each camera as
//! one batch (only the last pushed through), so that liblsl sends them in one write. A
//! frame sample reaches an inlet 250 to 350 ms after its frame's capture.
//!
//! While no inlet is connected to any of its streams (a rig between sessions, nobody
//! running LabRecorder), liblsl drops what is pushed, and the thread looks only every
//! [`IDLE_LOOK`]: the frame samples held meanwhile are still pushed, with their own
//! timestamps, and the status ticks that passed unheard are not (an inlet that connects
//! then gets its first status sample within a second, then every tick).
//!
//! What belongs here: the outlets and the LSL thread. What does not: the events' schema
//! (`crate::event`), the marker trigger (`markers.rs`).

pub mod markers;

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use lsl::ExPushable;
use parking_lot::Mutex;

use crate::clock::{ClockPair, LslTime};
use crate::hub::{StatusFigures, StatusHub};
use crate::shutdown::{Shutdown, Stage};
use crate::source::SourceInfo;

/// How long frame samples wait for the recording state around them to be known.
pub const RELEASE_DELAY: Duration = Duration::from_millis(250);
/// Status stream period (10 Hz).
pub const STATUS_PERIOD: Duration = Duration::from_millis(100);
/// Messages the LSL thread's queue holds.
pub const QUEUE_CAPACITY: usize = 16_384;
/// How often the LSL thread looks while no inlet is connected to any of its streams: the
/// messages of that long wait in its queue (1 s of frames at any rate fits).
pub const IDLE_LOOK: Duration = Duration::from_secs(1);

pub use crate::bus::{FrameRecord, LslMsg};

/// What the LSL thread needs to know about a camera to describe its streams.
#[derive(Clone, Debug)]
pub struct CameraStreams {
    pub camera: String,
    pub info: SourceInfo,
    /// Frame stream name; `_Status` and `_Events` are appended for the others.
    pub name: String,
    /// Stable across restarts (rig + camera), so that recorders recover the stream.
    pub source_id: String,
}

/// The audio streams, when audio is recorded.
#[derive(Clone, Debug)]
pub struct AudioStreams {
    /// Chunk marker stream name; `<name>Status` follows it (`VideoStream_Audio`,
    /// `VideoStream_AudioStatus`).
    pub name: String,
    pub source_id: String,
    pub rate: u32,
    pub channels: u16,
    pub device: String,
}

/// Stream settings from the config.
#[derive(Clone, Debug)]
pub struct LslSettings {
    pub frames_type: String,
    pub status_type: String,
    pub events_type: String,
    pub chunk_size: i32,
    pub max_buffered: i32,
    pub rig: String,
    pub host: String,
    pub audio: Option<AudioStreams>,
}

/// The frame stream's name for camera `camera` of `count`: `name` alone for a single
/// camera (the old tool's `VideoStream`), `name_camera` for several.
pub fn stream_name(base: &str, camera: &str, count: usize) -> String {
    if count == 1 {
        base.to_string()
    } else {
        format!("{base}_{camera}")
    }
}

pub use crate::status::LslStatus;

/// What went wrong with LSL, naming the stream it concerns.
#[derive(Debug, thiserror::Error)]
pub enum LslError {
    #[error("cannot describe LSL stream {stream}: {cause}")]
    Describe { stream: String, cause: String },
    #[error("cannot create the LSL {what} outlet {stream}: {cause}")]
    Outlet {
        stream: String,
        what: &'static str,
        cause: String,
    },
    #[error("cannot start the LSL thread: {0}")]
    Thread(std::io::Error),
    #[error("the LSL thread ended before creating its outlets")]
    ThreadEnded,
    /// `hindsight check`'s self-test failed at `step`.
    #[error("{step}: {cause}")]
    SelfTest { step: &'static str, cause: String },
}

/// Starts the LSL thread on the receiving end of a queue made with
/// `crossbeam_channel::bounded(QUEUE_CAPACITY)`. Its outlets exist once this returns Ok:
/// a failure to create them is reported here, before anything else starts.
pub fn spawn(
    settings: LslSettings,
    cameras: Vec<CameraStreams>,
    hub: Arc<StatusHub>,
    status: Arc<Mutex<LslStatus>>,
    rx: Receiver<LslMsg>,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>, LslError> {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let join = std::thread::Builder::new()
        .name("lsl".into())
        .spawn(move || {
            let _span = tracing::info_span!("lsl").entered();
            // liblsl's threads (two per outlet, one per connected inlet later) start
            // from this one and inherit its kernel name: they show as `liblsl` in
            // `top -H` and in `bench --process`, this thread as `lsl`.
            name_this_thread(c"liblsl");
            let publisher = Publisher::new(&settings, &cameras, hub, status);
            name_this_thread(c"lsl");
            match publisher {
                Ok(p) => {
                    let _ = ready_tx.send(Ok(()));
                    p.run(rx, &shutdown);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(LslError::Thread)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(join),
        Ok(Err(e)) => {
            let _ = join.join();
            Err(e)
        }
        Err(_) => Err(LslError::ThreadEnded),
    }
}

/// Sets the kernel's name of the calling thread (`/proc/self/task/*/comm`, what `top -H`
/// shows; threads it starts inherit it). Rust's own name for the thread is unchanged.
fn name_this_thread(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads one NUL-terminated string (the kernel keeps 15 bytes).
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

struct Outlets {
    frames: lsl::StreamOutlet,
    status: lsl::StreamOutlet,
    events: lsl::StreamOutlet,
}

struct Window {
    id: u64,
    start: LslTime,
    end: Option<LslTime>,
}

struct AudioOutlets {
    chunks: lsl::StreamOutlet,
    status: lsl::StreamOutlet,
}

struct Publisher {
    outlets: Vec<Outlets>,
    audio: Option<AudioOutlets>,
    hub: Arc<StatusHub>,
    status: Arc<Mutex<LslStatus>>,
    held: VecDeque<FrameRecord>,
    windows: Vec<Window>,
    next_status: LslTime,
    frame_sample: Vec<f64>,
    status_sample: Vec<f64>,
    /// What the status samples carry, filled at each tick.
    figures: StatusFigures,
    /// Whether any inlet was connected to any of the streams at the last look.
    heard: bool,
}

impl Publisher {
    fn new(
        settings: &LslSettings,
        cameras: &[CameraStreams],
        hub: Arc<StatusHub>,
        status: Arc<Mutex<LslStatus>>,
    ) -> Result<Publisher, LslError> {
        let mut outlets = Vec::new();
        let mut names = Vec::new();
        for cam in cameras {
            let frames = frame_info(settings, cam)?;
            let status_info = status_info(settings, cam)?;
            let events = events_info(settings, cam)?;
            let make = |info: &lsl::StreamInfo, what: &'static str| {
                lsl::StreamOutlet::new(info, settings.chunk_size, settings.max_buffered).map_err(
                    |e| LslError::Outlet {
                        stream: info.stream_name(),
                        what,
                        cause: e.to_string(),
                    },
                )
            };
            outlets.push(Outlets {
                frames: make(&frames, "frame")?,
                status: make(&status_info, "status")?,
                events: make(&events, "events")?,
            });
            names.extend([
                cam.name.clone(),
                format!("{}_Status", cam.name),
                format!("{}_Events", cam.name),
            ]);
        }
        let audio = match &settings.audio {
            Some(a) => {
                let make = |info: &lsl::StreamInfo, what: &'static str| {
                    lsl::StreamOutlet::new(info, settings.chunk_size, settings.max_buffered)
                        .map_err(|e| LslError::Outlet {
                            stream: info.stream_name(),
                            what,
                            cause: e.to_string(),
                        })
                };
                let outlets = AudioOutlets {
                    chunks: make(&audio_chunk_info(settings, a)?, "chunk")?,
                    status: make(&audio_status_info(settings, a)?, "status")?,
                };
                names.extend([a.name.clone(), format!("{}Status", a.name)]);
                Some(outlets)
            }
            None => None,
        };
        tracing::info!("LSL streams: {}", names.join(", "));
        status.lock().streams = names;
        let now = LslTime::now();
        Ok(Publisher {
            outlets,
            audio,
            hub,
            status,
            held: VecDeque::with_capacity(QUEUE_CAPACITY),
            windows: Vec::new(),
            next_status: now + STATUS_PERIOD,
            frame_sample: vec![0.0; 4],
            status_sample: vec![0.0; 5],
            figures: StatusFigures::default(),
            heard: true,
        })
    }

    /// Runs until the shutdown reaches [`Stage::Closing`] (everything that sends here has
    /// ended) or every sender is gone; then pushes everything it holds.
    fn run(mut self, rx: Receiver<LslMsg>, shutdown: &Shutdown) {
        'run: loop {
            if shutdown.reached(Stage::Closing) {
                while let Ok(msg) = rx.try_recv() {
                    self.handle(msg);
                }
                break 'run;
            }
            // One wake per status tick (10 Hz), whatever the frame rate: the messages
            // that came meanwhile are taken together and their samples pushed as one
            // batch per stream (one network write), not one wake and write per frame.
            // One per IDLE_LOOK while nobody listens.
            let next = if self.heard {
                self.next_status
            } else {
                self.next_status + IDLE_LOOK - STATUS_PERIOD
            };
            shutdown.wait_for(Stage::Closing, next.saturating_since(LslTime::now()));
            loop {
                match rx.try_recv() {
                    Ok(msg) => self.handle(msg),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break 'run,
                }
            }
            let now = LslTime::now();
            self.release(now - RELEASE_DELAY);
            self.push_status(now);
            self.heard = self.anyone_listening();
        }
        // Shutting down: everything still held is pushed, with what is known.
        self.release(LslTime::from_nanos(i64::MAX));
        tracing::info!("LSL outlets closed");
    }

    fn handle(&mut self, msg: LslMsg) {
        match msg {
            LslMsg::Frame(f) => self.held.push_back(f),
            LslMsg::RecordingStarted { id, start, end } => {
                self.windows.push(Window { id, start, end })
            }
            LslMsg::RecordingStopped { id, end } => {
                for w in self.windows.iter_mut().filter(|w| w.id == id) {
                    w.end = Some(w.end.map_or(end, |e| e.min(end)));
                }
            }
            LslMsg::AudioChunk {
                index,
                first_sample,
                at,
            } => {
                if let Some(a) = &self.audio {
                    let sample = vec![index as f64, first_sample as f64];
                    if let Err(e) = a.chunks.push_sample_ex(&sample, at.as_secs_f64(), true) {
                        tracing::warn!("LSL audio chunk marker not pushed: {e}");
                    }
                }
            }
            LslMsg::Event { camera, at, event } => {
                let sample = vec![event.to_json()];
                for (i, o) in self.outlets.iter().enumerate() {
                    if camera.is_none_or(|c| c == i) {
                        if let Err(e) = o.events.push_sample_ex(&sample, at.as_secs_f64(), true) {
                            tracing::warn!("LSL event not pushed: {e}");
                        }
                    }
                }
            }
        }
    }

    /// Pushes held frames captured up to `until`; each camera's last one is pushed
    /// through, sending the batch.
    fn release(&mut self, until: LslTime) {
        let mut last = vec![usize::MAX; self.outlets.len()];
        for (i, f) in self.held.iter().enumerate() {
            if f.capture > until {
                break;
            }
            if let Some(l) = last.get_mut(f.camera as usize) {
                *l = i;
            }
        }
        let mut index = 0;
        while let Some(f) = self.held.front().copied() {
            if f.capture > until {
                break;
            }
            self.held.pop_front();
            let through = last.get(f.camera as usize) == Some(&index);
            index += 1;
            let active = self
                .windows
                .iter()
                .any(|w| f.capture >= w.start && w.end.is_none_or(|e| f.capture <= e));
            self.frame_sample[0] = f.seq as f64;
            self.frame_sample[1] = f.wall.as_secs_f64();
            self.frame_sample[2] = f64::from(u8::from(f.keyframe));
            self.frame_sample[3] = f64::from(u8::from(active));
            if let Some(o) = self.outlets.get(f.camera as usize) {
                if let Err(e) =
                    o.frames
                        .push_sample_ex(&self.frame_sample, f.capture.as_secs_f64(), through)
                {
                    tracing::warn!("LSL frame sample not pushed: {e}");
                }
            }
        }
        // Windows that ended before anything still held cannot matter any more.
        let oldest = self.held.front().map_or(until, |f| f.capture);
        self.windows.retain(|w| w.end.is_none_or(|e| e >= oldest));
    }

    /// One status sample per camera for every tick of the schedule that has come.
    fn push_status(&mut self, now: LslTime) {
        if self.next_status > now {
            return;
        }
        // A thread held up for long does not send a burst of stale ticks, and ticks
        // that passed while nobody listened are not sent at all: only the newest.
        let behind = now.nanos_since(self.next_status) / STATUS_PERIOD.as_nanos() as i64;
        if !self.heard {
            self.next_status = self.next_status + STATUS_PERIOD * behind as u32;
        } else if behind > 10 {
            tracing::warn!("LSL status fell {behind} periods behind; skipping ahead");
            self.next_status = self.next_status + STATUS_PERIOD * behind as u32;
        }
        self.hub.figures(&mut self.figures);
        let figures = &self.figures;
        let pair = ClockPair::now();
        while self.next_status <= now {
            let tick = self.next_status;
            for (i, o) in self.outlets.iter().enumerate() {
                let cam = figures.cameras.get(i).copied().unwrap_or_default();
                self.status_sample[0] = f64::from(figures.state_code);
                self.status_sample[1] = pair.wall_at(tick).as_secs_f64();
                self.status_sample[2] = cam.fps;
                self.status_sample[3] = cam.frames_dropped as f64;
                self.status_sample[4] = cam.buffered_seconds;
                if let Err(e) =
                    o.status
                        .push_sample_ex(&self.status_sample, tick.as_secs_f64(), true)
                {
                    tracing::warn!("LSL status sample not pushed: {e}");
                }
            }
            if let (Some(a), Some(audio)) = (&self.audio, &figures.audio) {
                let state = if audio.capturing {
                    figures.state_code
                } else {
                    0
                };
                self.status_sample[0] = f64::from(state);
                self.status_sample[1] = pair.wall_at(tick).as_secs_f64();
                self.status_sample[2] = audio.level_dbfs;
                self.status_sample[3] = audio.overrun_frames as f64;
                self.status_sample[4] = audio.buffered_seconds;
                if let Err(e) =
                    a.status
                        .push_sample_ex(&self.status_sample, tick.as_secs_f64(), true)
                {
                    tracing::warn!("LSL audio status sample not pushed: {e}");
                }
            }
            self.next_status = tick + STATUS_PERIOD;
        }
    }

    /// Which frame streams have an inlet (for the status), and whether any of the
    /// streams has one: asked once per look.
    fn anyone_listening(&self) -> bool {
        let frames: Vec<bool> = self
            .outlets
            .iter()
            .map(|o| o.frames.have_consumers())
            .collect();
        let heard = frames.iter().any(|&f| f)
            || self
                .outlets
                .iter()
                .flat_map(|o| [&o.status, &o.events])
                .chain(self.audio.iter().flat_map(|a| [&a.chunks, &a.status]))
                .any(|o| o.have_consumers());
        self.status.lock().consumers = frames;
        heard
    }
}

fn new_info(
    name: &str,
    kind: &str,
    channels: u32,
    rate: f64,
    format: lsl::ChannelFormat,
    source_id: &str,
) -> Result<lsl::StreamInfo, LslError> {
    lsl::StreamInfo::new(name, kind, channels, rate, format, source_id).map_err(|e| {
        LslError::Describe {
            stream: name.to_string(),
            cause: e.to_string(),
        }
    })
}

fn channels(desc: &mut lsl::XMLElement, list: &[(&str, &str, &str)]) {
    let mut chans = desc.append_child("channels");
    for (label, unit, kind) in list {
        let mut c = chans.append_child("channel");
        c.append_child_value("label", label);
        c.append_child_value("unit", unit);
        c.append_child_value("type", kind);
    }
}

fn common_desc(desc: &mut lsl::XMLElement, settings: &LslSettings, cam: &CameraStreams) {
    let mut acq = desc.append_child("acquisition");
    acq.append_child_value(
        "software",
        &format!("hindsight {}", env!("CARGO_PKG_VERSION")),
    );
    acq.append_child_value("liblsl", &liblsl_version());
    acq.append_child_value("rig", &settings.rig);
    acq.append_child_value("host", &settings.host);
    acq.append_child_value("camera", &cam.camera);
}

/// The liblsl this process runs with, as `1.18` (liblsl says `118`): the one the `lsl`
/// crate bundles (1.13) or a current one linked instead (`scripts/get-liblsl.sh`).
pub fn liblsl_version() -> String {
    let v = lsl::library_version();
    format!("{}.{}", v / 100, v % 100)
}

/// What hindsight gives liblsl when the machine has no LSL configuration: its defaults,
/// with its log lowered from INFO to warnings and errors.
pub const QUIET_CONFIG: &str = "[log]\nlevel = -1\n";

/// Where liblsl looks for its configuration, in its order (liblsl's `api_config.cpp`):
/// `$LSLAPICFG`, `lsl_api.cfg` in the working directory, `~/lsl_api/lsl_api.cfg`,
/// `/etc/lsl_api/lsl_api.cfg`. `None` when `LSLAPICFG` is set: whatever it names, the
/// user asked for a configuration of their own.
fn config_candidates(
    lslapicfg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<Vec<std::path::PathBuf>> {
    if lslapicfg.is_some() {
        return None;
    }
    let mut paths = vec![std::path::PathBuf::from("lsl_api.cfg")];
    if let Some(home) = home {
        paths.push(std::path::Path::new(&home).join("lsl_api/lsl_api.cfg"));
    }
    paths.push("/etc/lsl_api/lsl_api.cfg".into());
    Some(paths)
}

/// liblsl writes INFO lines of its own format to stderr when it starts ("Loaded default
/// config", its git hash), in the middle of hindsight's log. When this machine has no LSL
/// configuration of its own ([`config_candidates`]), this gives liblsl its defaults with
/// the log at warnings ([`QUIET_CONFIG`]); a lab's `lsl_api.cfg` (SessionID, KnownPeers,
/// its own `[log]`) is never replaced. Call before any other liblsl call: liblsl reads its
/// configuration once. Returns whether it did. A liblsl without `lsl_set_config_content`
/// (the 1.13 the `lsl` crate bundles) is left as it is.
pub fn quiet_unless_configured() -> bool {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
    let Some(paths) = config_candidates(std::env::var_os("LSLAPICFG"), home) else {
        return false;
    };
    // liblsl takes a file it can open for reading; one that exists but cannot be read is
    // passed over by liblsl too, and leaving liblsl alone then is the safe side.
    if paths.iter().any(|p| p.exists()) {
        return false;
    }
    // SAFETY: dlsym with RTLD_DEFAULT looks a name up in the loaded objects; a null result
    // is handled. The symbol, when present, is liblsl's
    // `void lsl_set_config_content(const char *)`, which copies the string.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"lsl_set_config_content".as_ptr());
        if f.is_null() {
            return false;
        }
        let set: extern "C" fn(*const std::ffi::c_char) = std::mem::transmute(f);
        let content = std::ffi::CString::new(QUIET_CONFIG).expect("no NUL in the config");
        set(content.as_ptr());
    }
    true
}

fn frame_info(settings: &LslSettings, cam: &CameraStreams) -> Result<lsl::StreamInfo, LslError> {
    let mut info = new_info(
        &cam.name,
        &settings.frames_type,
        4,
        cam.info.fps,
        lsl::ChannelFormat::Double64,
        &format!("{}_frames", cam.source_id),
    )?;
    let mut desc = info.desc();
    channels(
        &mut desc,
        &[
            ("frame_number", "count", "FrameNumber"),
            ("unix_time", "seconds", "Timestamp"),
            ("is_keyframe", "boolean", "Flag"),
            ("recording_active", "boolean", "Flag"),
        ],
    );
    let mut camera = desc.append_child("camera");
    camera.append_child_value("name", &cam.camera);
    camera.append_child_value("source", cam.info.kind.as_str());
    camera.append_child_value("model", &cam.info.model);
    camera.append_child_value("width", &cam.info.width.to_string());
    camera.append_child_value("height", &cam.info.height.to_string());
    camera.append_child_value("fps", &cam.info.fps.to_string());
    camera.append_child_value("codec", cam.info.codec.as_str());
    if !cam.info.controls.is_empty() {
        camera.append_child_value("controls", &cam.info.controls);
    }
    let mut sync = desc.append_child("synchronization");
    // Frames can be dropped (by the camera, or by this stream's queue): importers must
    // not smooth timestamps across gaps as for a gap-free regular stream.
    sync.append_child_value("can_drop_samples", "true");
    sync.append_child_value(
        "timestamp",
        "start of the frame's exposure on the LSL clock, as close as the camera tells it",
    );
    common_desc(&mut desc, settings, cam);
    Ok(info)
}

fn status_info(settings: &LslSettings, cam: &CameraStreams) -> Result<lsl::StreamInfo, LslError> {
    let mut info = new_info(
        &format!("{}_Status", cam.name),
        &settings.status_type,
        5,
        1.0 / STATUS_PERIOD.as_secs_f64(),
        lsl::ChannelFormat::Double64,
        &format!("{}_status", cam.source_id),
    )?;
    let mut desc = info.desc();
    channels(
        &mut desc,
        &[
            ("status", "0 idle, 1 recording, 2 buffering", "State"),
            ("unix_time", "seconds", "Timestamp"),
            ("fps", "frames/second", "Rate"),
            ("dropped_frames", "count", "Counter"),
            ("buffered_seconds", "seconds", "Duration"),
        ],
    );
    common_desc(&mut desc, settings, cam);
    Ok(info)
}

fn events_info(settings: &LslSettings, cam: &CameraStreams) -> Result<lsl::StreamInfo, LslError> {
    let mut info = new_info(
        &format!("{}_Events", cam.name),
        &settings.events_type,
        1,
        0.0,
        lsl::ChannelFormat::String,
        &format!("{}_events", cam.source_id),
    )?;
    let mut desc = info.desc();
    channels(&mut desc, &[("event", "JSON", "Marker")]);
    common_desc(&mut desc, settings, cam);
    Ok(info)
}

fn audio_chunk_info(settings: &LslSettings, a: &AudioStreams) -> Result<lsl::StreamInfo, LslError> {
    let mut info = new_info(
        &a.name,
        &settings.events_type,
        2,
        0.0,
        lsl::ChannelFormat::Double64,
        &format!("{}_chunks", a.source_id),
    )?;
    let mut desc = info.desc();
    channels(
        &mut desc,
        &[
            ("chunk_index", "count", "Counter"),
            ("first_sample_index", "samples", "SampleIndex"),
        ],
    );
    let mut audio = desc.append_child("audio");
    audio.append_child_value("device", &a.device);
    audio.append_child_value("sample_rate", &a.rate.to_string());
    audio.append_child_value("channels", &a.channels.to_string());
    audio.append_child_value(
        "timestamp",
        "capture time of the chunk's first sample on the LSL clock; sample k of the WAV is at the file's first sample time + k / sample_rate",
    );
    Ok(info)
}

fn audio_status_info(
    settings: &LslSettings,
    a: &AudioStreams,
) -> Result<lsl::StreamInfo, LslError> {
    let mut info = new_info(
        &format!("{}Status", a.name),
        &settings.status_type,
        5,
        1.0 / STATUS_PERIOD.as_secs_f64(),
        lsl::ChannelFormat::Double64,
        &format!("{}_status", a.source_id),
    )?;
    let mut desc = info.desc();
    channels(
        &mut desc,
        &[
            ("status", "0 idle, 1 recording, 2 buffering", "State"),
            ("unix_time", "seconds", "Timestamp"),
            ("level", "dBFS", "Level"),
            ("overrun_frames", "count", "Counter"),
            ("buffered_seconds", "seconds", "Duration"),
        ],
    );
    Ok(info)
}

/// `hindsight check`'s LSL self-test: an outlet this process creates is found, an inlet
/// connects to it, and a sample pushed with an explicit timestamp comes back unchanged.
pub fn self_test() -> Result<String, LslError> {
    let fail = |step: &'static str| {
        move |e: lsl::Error| LslError::SelfTest {
            step,
            cause: e.to_string(),
        }
    };
    use lsl::Pullable;
    let start = std::time::Instant::now();
    let id = format!(
        "hindsight-selftest-{}-{}",
        std::process::id(),
        LslTime::now().as_nanos()
    );
    let info = lsl::StreamInfo::new(&id, "SelfTest", 1, 0.0, lsl::ChannelFormat::Double64, &id)
        .map_err(fail("cannot describe a stream"))?;
    let outlet = lsl::StreamOutlet::new(&info, 0, 10).map_err(fail("cannot create an outlet"))?;
    let found = lsl::resolve_byprop("source_id", &id, 1, 5.0).map_err(fail("resolving failed"))?;
    let Some(stream) = found.first() else {
        return Err(LslError::SelfTest {
            step: "resolving",
            cause: "this machine's own stream was not found within 5 s (multicast on loopback blocked? see lsl_api.cfg)".into(),
        });
    };
    let inlet =
        lsl::StreamInlet::new(stream, 10, 0, false).map_err(fail("cannot create an inlet"))?;
    inlet
        .open_stream(5.0)
        .map_err(fail("cannot connect to the stream"))?;
    outlet.wait_for_consumers(5.0);
    let stamp = lsl::local_clock() - 0.5;
    outlet
        .push_sample_ex(&vec![42.0_f64], stamp, true)
        .map_err(fail("cannot push"))?;
    let (sample, ts): (Vec<f64>, f64) = inlet.pull_sample(5.0).map_err(fail("cannot pull"))?;
    if sample != [42.0] || ts != stamp {
        return Err(LslError::SelfTest {
            step: "reading back",
            cause: format!("sample came back as {sample:?} at {ts}, not [42.0] at {stamp}"),
        });
    }
    let clock_gap = (lsl::local_clock() - LslTime::now().as_secs_f64()).abs();
    if clock_gap > 0.01 {
        return Err(LslError::SelfTest {
            step: "clock",
            cause: format!(
                "liblsl's clock differs from CLOCK_MONOTONIC by {clock_gap:.3} s: frame times would be off"
            ),
        });
    }
    Ok(format!(
        "liblsl {} found its own stream and read a sample back in {:.2} s",
        liblsl_version(),
        start.elapsed().as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_named_by_lslapicfg_or_found_where_liblsl_looks_is_left_alone() {
        assert_eq!(config_candidates(Some("/x/lab.cfg".into()), None), None);
        assert_eq!(
            config_candidates(Some("".into()), Some("/home/u".into())),
            None
        );
        assert_eq!(
            config_candidates(None, Some("/home/u".into())).unwrap(),
            [
                std::path::PathBuf::from("lsl_api.cfg"),
                "/home/u/lsl_api/lsl_api.cfg".into(),
                "/etc/lsl_api/lsl_api.cfg".into(),
            ]
        );
        assert_eq!(
            config_candidates(None, None).unwrap(),
            [
                std::path::PathBuf::from("lsl_api.cfg"),
                "/etc/lsl_api/lsl_api.cfg".into(),
            ]
        );
    }

    /// Frame timestamps are CLOCK_MONOTONIC; liblsl must read the same clock.
    #[test]
    fn liblsl_reads_the_same_clock_as_lsl_time() {
        let a = LslTime::now().as_secs_f64();
        let l = lsl::local_clock();
        let b = LslTime::now().as_secs_f64();
        assert!(l >= a - 1e-6 && l <= b + 1e-6, "{a} <= {l} <= {b}");
    }

    #[test]
    fn one_camera_keeps_the_old_tools_stream_name() {
        assert_eq!(stream_name("VideoStream", "cam0", 1), "VideoStream");
        assert_eq!(stream_name("VideoStream", "top", 2), "VideoStream_top");
    }
}
