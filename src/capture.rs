//! The capture thread: one per camera, pinned to a core. It takes frames from the source,
//! puts them in the pre-trigger ring, and while a recording runs forwards each stored frame
//! (a reference to its ring payload) to the camera's writer thread.
//!
//! It never touches the disk and never waits on a lock held across I/O: the only lock it
//! takes is the camera's ring lock, which the control thread holds only to hand frame
//! references to the writer's queue (never blocking while holding it). Nothing is
//! allocated per frame: the JPEG scratch buffer, the ring's storage and slots, and the
//! writer's bounded queue are all allocated up front.
//!
//! What belongs here: the capture loop, the camera as the threads share it (`Camera`:
//! its setup, ring, counters), handing frame references to writers, loss and reopening,
//! and the buffer grower. What does not: reading cameras (`source`), the ring's storage
//! (`ring`), files (`writer`), what a loss means for a recording (`control`).

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::Mutex;

use crate::bus::{FrameRecord, LslMsg};
use crate::clock::{CpuMeter, LslTime, ThreadCpuClock};
use crate::frame::{Frame, FrameMeta};
use crate::ring::{DropCause, PreTriggerRing};
use crate::shutdown::{Shutdown, Stage};
use crate::source::{FrameSource, Reopen, SourceError, SourceInfo};
use crate::status::{CameraStatus, DropCounts};
use crate::writer::{WriterMsg, WriterQueue};

pub use crate::bus::CameraEvent;

/// One camera as the threads share it: its setup (as configured), its ring, the capture
/// thread's counters and what its writer publishes.
pub struct Camera {
    pub setup: CameraSetup,
    /// Whether a wish for more memory was sent to the grower and not yet served.
    grow_asked: AtomicBool,
    /// Configured pre-trigger length, for `buffer_fill`.
    pub buffer_duration: Duration,
    pub state: Mutex<CameraState>,
    pub stats: Arc<CameraStats>,
    /// What this camera's writer publishes (it is their only writer).
    pub written: Arc<crate::writer::WriterStats>,
    pub last_error: Mutex<Option<String>>,
    /// The CPU clocks of the capture thread and of its source's encoding threads (set as
    /// it starts and when the source is opened again); read by the control thread once a
    /// second ([`Camera::sample_cpu`]).
    cpu: Mutex<Option<CaptureCpu>>,
    /// What the source says it is, once it has opened ([`Camera::info`]).
    opened_info: Mutex<Option<SourceInfo>>,
    /// When it was last found lost (ns, LSL clock): the start of the gap when it had
    /// never delivered a frame.
    lost_at_ns: AtomicI64,
}

/// Every camera's capture loop runs, and each has delivered a frame or been found lost
/// (one that could not be opened at start-up is lost from its first moment, and the
/// others must not wait for it): the one definition of "the cameras deliver" (the
/// recorder buffers from then on; systemd hears READY).
pub fn all_delivering(cameras: &[Arc<Camera>]) -> bool {
    cameras.iter().all(|c| {
        c.stats.running.load(Relaxed)
            && (c.stats.next_seq.load(Relaxed) > 0 || c.stats.lost.load(Relaxed))
    })
}

/// A camera's figures in the LSL status stream (SPEC §5): [`Camera::figures`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CameraFigures {
    pub fps: f64,
    pub frames_dropped: u64,
    pub buffered_seconds: f64,
}

/// What the ring lock protects.
pub struct CameraState {
    pub ring: PreTriggerRing,
    pub live: Option<LiveRecording>,
}

/// A recording that live frames are forwarded to.
pub struct LiveRecording {
    pub id: u64,
    pub writer: WriterQueue,
    /// Frames captured after this are not forwarded (`start N`).
    pub until: Option<LslTime>,
}

/// The capture thread's counters, readable without the ring lock. The capture thread is
/// their only writer. The buffer's counts (`held_by_writer`, `too_large`,
/// `evicted_early`, `buffered_*`) are the ring's own, published here after each frame;
/// frames and bytes written are the writer's (`WriterStats`).
#[derive(Default)]
pub struct CameraStats {
    pub frames_captured: AtomicU64,
    pub source_gaps: AtomicU64,
    pub corrupt: AtomicU64,
    /// The ring's `dropped_writer_behind`.
    pub held_by_writer: AtomicU64,
    /// The ring's `dropped_too_large`.
    pub too_large: AtomicU64,
    pub writer_queue_full: AtomicU64,
    /// The ring's early evictions (bytes or slots full).
    pub evicted_early: AtomicU64,
    pub buffered_frames: AtomicU64,
    pub buffered_bytes: AtomicU64,
    pub buffered_ns: AtomicU64,
    pub buffer_capacity: AtomicU64,
    /// The most the buffer may grow to (`buffer.max_bytes`).
    pub buffer_ceiling: AtomicU64,
    /// Frames per second × 1000 over the last second.
    pub fps_milli: AtomicU64,
    /// Sequence number of the newest frame + 1 (0 = none yet).
    pub next_seq: AtomicU64,
    pub last_capture_ns: AtomicI64,
    /// A capture time (LSL ns; 0 = none) the control thread waits to see passed: the
    /// first frame captured after it sends [`CameraEvent::FrameAfter`] and clears it.
    /// Pending stops are closed on that event instead of by polling.
    pub watch_after_ns: AtomicI64,
    pub running: AtomicBool,
    /// The capture thread got real-time priority.
    pub realtime: AtomicBool,
    /// Frame records the LSL thread's queue had no room for (the LSL frame stream misses
    /// them; files do not).
    pub lsl_queue_full: AtomicU64,
    /// The source is lost and being reopened.
    pub lost: AtomicBool,
    /// Times the source was lost, and reopened.
    pub losses: AtomicU64,
    pub reopened: AtomicU64,
    /// When the capture loop last came round (LSL clock, ns; 0 = not started): the
    /// systemd watchdog is fed only while every loop keeps coming round.
    pub heartbeat_ns: AtomicI64,
}

impl CameraStats {
    /// Frames lost so far, by cause.
    pub fn drops(&self) -> DropCounts {
        DropCounts {
            source_gaps: self.source_gaps.load(Relaxed),
            corrupt: self.corrupt.load(Relaxed),
            buffer_held_by_writer: self.held_by_writer.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            writer_queue_full: self.writer_queue_full.load(Relaxed),
        }
    }
}

/// How a camera is set up, from its configuration.
pub struct CameraSetup {
    pub index: usize,
    pub name: String,
    pub info: SourceInfo,
    /// Stable across restarts: rig + camera name.
    pub source_id: String,
    pub cpu_core: Option<usize>,
    pub realtime: bool,
    pub lsl: Option<Sender<LslMsg>>,
    pub events: Option<Sender<CameraEvent>>,
    /// The buffer grower's queue ([`spawn_buffer_grower`]); without it the ring keeps the
    /// memory it started with.
    pub grow: Option<Sender<usize>>,
    /// The number of the first frame captured (frame numbers continue across restarts:
    /// `crate::numbers`).
    pub first_frame: u64,
}

impl CameraSetup {
    /// Camera `index` called `name`: not pinned, normal priority, no LSL.
    pub fn plain(index: usize, name: &str, info: SourceInfo) -> CameraSetup {
        CameraSetup {
            index,
            name: name.to_string(),
            info,
            source_id: name.to_string(),
            cpu_core: None,
            realtime: false,
            lsl: None,
            events: None,
            grow: None,
            first_frame: 0,
        }
    }
}

impl Camera {
    pub fn new(setup: CameraSetup, ring: PreTriggerRing) -> Camera {
        let stats = Arc::new(CameraStats::default());
        stats
            .buffer_capacity
            .store(ring.capacity_bytes() as u64, Relaxed);
        stats
            .buffer_ceiling
            .store(ring.ceiling_bytes() as u64, Relaxed);
        let buffer_duration = ring.limits().duration;
        Camera {
            setup,
            grow_asked: AtomicBool::new(false),
            buffer_duration,
            state: Mutex::new(CameraState { ring, live: None }),
            stats,
            written: Arc::default(),
            last_error: Mutex::new(None),
            cpu: Mutex::new(None),
            opened_info: Mutex::new(None),
            lost_at_ns: AtomicI64::new(0),
        }
    }

    /// What the camera is (kind, model, size, rate, codec): its source's own word once
    /// it has opened, else what it was set up with ([`CameraSetup::info`]). They differ
    /// for a camera that could not be opened at start-up
    /// ([`crate::source::NotOpened`], size unknown) until it opens.
    pub fn info(&self) -> SourceInfo {
        self.opened_info
            .lock()
            .clone()
            .unwrap_or_else(|| self.setup.info.clone())
    }

    /// `source` opened: the size its frames are recorded at (`size`) is its own if none
    /// was known yet, and what it says it is becomes the camera's [`Camera::info`] if it
    /// has that size.
    fn opened(&self, source: &dyn FrameSource, size: &mut (u32, u32)) {
        let info = source.info();
        if size.0 == 0 {
            *size = (info.width, info.height);
        }
        if info.width > 0 && (info.width, info.height) == *size {
            *self.opened_info.lock() = Some(info.clone());
        }
    }

    /// The camera delivers another size (`to`) than its frames were recorded at (`size`,
    /// which becomes `to`): a network camera set to another resolution, or one that came
    /// back at another. Its frames are recorded at the new size from now on; a recording
    /// in progress goes on in a new part at it (`writer`), as a file cannot change its
    /// video's size.
    fn resized(&self, size: &mut (u32, u32), to: (u32, u32)) {
        let said = format!(
            "the camera now delivers {}x{} frames (it was {}x{}): recorded at the new size; \
             a recording in progress goes on in a new part",
            to.0, to.1, size.0, size.1
        );
        tracing::warn!(camera = %self.setup.name, "{said}");
        *self.last_error.lock() = Some(said);
        *size = to;
        let mut info = self.opened_info.lock();
        let info = info.get_or_insert_with(|| self.setup.info.clone());
        info.width = to.0;
        info.height = to.1;
    }

    /// What the capture thread (and its source's encoding threads) took of the CPU over
    /// the last whole second, read from their CPU clocks at most once a second (`None`
    /// until the capture thread has run a second).
    pub fn sample_cpu(&self, now: LslTime) -> Option<CpuLoad> {
        self.cpu.lock().as_mut().and_then(|c| c.sample(now))
    }

    /// What [`Camera::sample_cpu`] last found.
    pub fn capture_cpu(&self) -> Option<CpuLoad> {
        self.cpu.lock().as_ref().and_then(|c| c.last)
    }

    /// Measures the calling (capture) thread and `source`'s helper threads from now on.
    fn watch_cpu(&self, source: &dyn FrameSource) {
        *self.cpu.lock() = ThreadCpuClock::of_this_thread().map(|own| CaptureCpu {
            own: CpuMeter::new(own),
            helpers: source
                .helper_cpu_clocks()
                .into_iter()
                .map(CpuMeter::new)
                .collect(),
            last: None,
        });
    }

    /// Sends the buffered frames captured from `from` on (to `until`, if known) to
    /// `writer` as one message, then makes live frames follow. Returns how many buffered
    /// frames went, how many did not fit the writer's queue (all of them, or none), and
    /// the capture time of the first.
    pub fn begin_recording(
        &self,
        id: u64,
        writer: &WriterQueue,
        from: LslTime,
        until: Option<LslTime>,
    ) -> (u64, u64, Option<LslTime>) {
        let mut dump = self.dump_vec();
        let mut st = self.state.lock();
        let (sent, lost, first) = send_dump(writer, &mut dump, st.ring.frames_since(from), until);
        self.stats.writer_queue_full.fetch_add(lost, Relaxed);
        st.live = Some(LiveRecording {
            id,
            writer: writer.clone(),
            until,
        });
        (sent, lost, first)
    }

    /// Room for a copy of the ring's frame references, made before the ring lock is taken.
    fn dump_vec(&self) -> Vec<Frame> {
        Vec::with_capacity(self.stats.buffered_frames.load(Relaxed) as usize + 64)
    }

    /// Recording `id` takes no frame captured after `at`. Frames captured up to `at` may
    /// still be on their way from the camera; [`Camera::has_frame_after`] says when they
    /// are all in. Returns whether the recording is live here.
    pub fn stop_at(&self, id: u64, at: LslTime) -> bool {
        let mut st = self.state.lock();
        match st.live.as_mut() {
            Some(l) if l.id == id => {
                l.until = Some(l.until.map_or(at, |u| u.min(at)));
                true
            }
            _ => false,
        }
    }

    /// Whether a frame captured after `t` has come in: then every frame up to `t` has.
    pub fn has_frame_after(&self, t: LslTime) -> bool {
        self.stats.next_seq.load(Relaxed) > 0
            && self.stats.last_capture_ns.load(SeqCst) > t.as_nanos()
    }

    /// Asks for a [`CameraEvent::FrameAfter`] when a frame captured after `t` comes in
    /// (the earliest time asked for wins), and says whether one has come in already.
    /// The watch is set before the last frame is looked at, and the capture thread
    /// stores a frame's time before it looks at the watch (both sequentially
    /// consistent), so one of the two always sees the other: no frame slips between.
    pub fn watch_frame_after(&self, t: LslTime) -> bool {
        let t = t.as_nanos().max(1);
        let w = &self.stats.watch_after_ns;
        let _ = w.fetch_update(SeqCst, SeqCst, |w| (w == 0 || t < w).then_some(t));
        let passed = self.has_frame_after(LslTime::from_nanos(t));
        if passed {
            // Answered now: no event needed (one may still come; it is harmless).
            let _ = w.compare_exchange(t, 0, SeqCst, Relaxed);
        }
        passed
    }

    /// Stops forwarding live frames to recording `id`. Returns whether it was live here.
    pub fn end_recording(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        if st.live.as_ref().is_some_and(|l| l.id == id) {
            st.live = None;
            true
        } else {
            false
        }
    }

    /// Sends buffered frames captured in `[from, to]` to `writer`, as one message, and
    /// nothing after (the benchmark's dump of a full buffer; a clip also waits for the
    /// frames of its span still on their way, through [`Camera::begin_recording`]).
    pub fn send_buffered(
        &self,
        writer: &WriterQueue,
        from: LslTime,
        to: LslTime,
    ) -> (u64, u64, Option<LslTime>) {
        let mut dump = self.dump_vec();
        let st = self.state.lock();
        let (sent, lost, first) =
            send_dump(writer, &mut dump, st.ring.frames_since(from), Some(to));
        self.stats.writer_queue_full.fetch_add(lost, Relaxed);
        (sent, lost, first)
    }

    /// Since when it has delivered nothing, for a camera lost now: its last frame's
    /// capture time, or when it was found lost if it never delivered one.
    pub fn lost_since(&self) -> LslTime {
        LslTime::from_nanos(self.lost_at_ns.load(Relaxed))
    }

    /// The source is gone: say so. A recording in progress keeps this camera: its frames
    /// go on into the same file when the camera is back (the control thread tells the
    /// files and the people).
    pub fn lost(&self, why: &str) {
        self.stats.lost.store(true, Relaxed);
        self.stats.losses.fetch_add(1, Relaxed);
        // Said by the control thread (at once, or counted while it keeps being lost).
        tracing::debug!(camera = %self.setup.name, "camera lost: {why}");
        *self.last_error.lock() = Some(format!("camera lost: {why}"));
        let at = match self.stats.last_capture_ns.load(Relaxed) {
            0 => LslTime::now(),
            ns => LslTime::from_nanos(ns),
        };
        self.lost_at_ns.store(at.as_nanos(), Relaxed);
        self.send_event(CameraEvent::Lost {
            camera: self.setup.index,
            why: why.to_string(),
            at,
        });
    }

    /// Usable frames again after a loss; the first was captured at `at`.
    fn back(&self, at: LslTime, why: &str) {
        self.stats.lost.store(false, Relaxed);
        // From its last frame; or, for a camera that never delivered one (not opened at
        // start-up), from when it was found lost.
        let (last, first) = match self.stats.last_capture_ns.load(Relaxed) {
            0 => (self.lost_at_ns.load(Relaxed), Some(self.info().to_string())),
            ns => (ns, None),
        };
        let gap = Duration::from_nanos(at.as_nanos().saturating_sub(last).max(0) as u64);
        tracing::debug!(
            camera = %self.setup.name,
            "camera back: usable frames again after {:.1} s",
            gap.as_secs_f64()
        );
        *self.last_error.lock() = Some(format!(
            "camera was lost for {:.1} s ({why}); back",
            gap.as_secs_f64()
        ));
        self.send_event(CameraEvent::Back {
            camera: self.setup.index,
            at,
            gap,
            first,
        });
    }

    fn send_event(&self, ev: CameraEvent) {
        if let Some(tx) = &self.setup.events {
            let _ = tx.send(ev);
        }
    }

    /// Who this camera's writer writes for, and where it publishes its counters.
    pub fn writer_camera(&self) -> crate::writer::WriterCamera {
        crate::writer::WriterCamera {
            index: self.setup.index,
            name: self.setup.name.clone(),
            stats: self.written.clone(),
            drops: {
                let stats = self.stats.clone();
                Arc::new(move || stats.drops())
            },
        }
    }

    pub fn is_live(&self, id: u64) -> bool {
        self.state.lock().live.as_ref().is_some_and(|l| l.id == id)
    }

    /// The camera's status at `now`.
    /// The rate of usable frames: nothing for a while (a lost camera, or one sending only
    /// corrupt frames) is 0, not the last second that had frames.
    pub fn fps(&self, now: LslTime) -> f64 {
        let s = &self.stats;
        let last = s.last_capture_ns.load(Relaxed);
        let quiet = now.nanos_since(LslTime::from_nanos(last));
        if s.next_seq.load(Relaxed) == 0
            || quiet > fps_window(self.setup.info.fps).as_nanos() as i64
        {
            0.0
        } else {
            s.fps_milli.load(Relaxed) as f64 / 1000.0
        }
    }

    /// What a camera's LSL status sample carries, read from its counters (no allocation).
    pub fn figures(&self, now: LslTime) -> CameraFigures {
        CameraFigures {
            fps: self.fps(now),
            frames_dropped: self.stats.drops().total(),
            buffered_seconds: self.stats.buffered_ns.load(Relaxed) as f64 / 1e9,
        }
    }

    pub fn status(&self, current_file: Option<String>, now: LslTime) -> CameraStatus {
        let s = &self.stats;
        let drops = s.drops();
        let buffered_seconds = s.buffered_ns.load(Relaxed) as f64 / 1e9;
        let next_seq = s.next_seq.load(Relaxed);
        let fps = self.fps(now);
        let info = self.info();
        CameraStatus {
            name: self.setup.name.clone(),
            source: info.kind.as_str().to_string(),
            model: info.model,
            codec: info.codec.as_str().to_string(),
            width: info.width,
            height: info.height,
            target_fps: info.fps,
            fps,
            frames_captured: s.frames_captured.load(Relaxed),
            frames_written: self.written.frames_written.load(Relaxed),
            frames_dropped: drops.total(),
            drops,
            buffer_evicted_early: s.evicted_early.load(Relaxed),
            buffered_seconds,
            buffered_frames: s.buffered_frames.load(Relaxed),
            buffered_bytes: s.buffered_bytes.load(Relaxed),
            buffer_capacity_bytes: s.buffer_capacity.load(Relaxed),
            buffer_max_bytes: s.buffer_ceiling.load(Relaxed),
            buffer_fill: if self.buffer_duration.is_zero() {
                0.0
            } else {
                (buffered_seconds / self.buffer_duration.as_secs_f64()).min(1.0)
            },
            last_frame_number: next_seq.checked_sub(1),
            current_file_bytes: current_file
                .as_ref()
                .map(|_| self.written.file_bytes.load(Relaxed)),
            current_file,
            bytes_written: self.written.bytes_written.load(Relaxed),
            cpu_core: self.setup.cpu_core,
            realtime: s.realtime.load(Relaxed),
            lsl_samples_dropped: s.lsl_queue_full.load(Relaxed),
            lost: s.lost.load(Relaxed),
            losses: s.losses.load(Relaxed),
            reopened: s.reopened.load(Relaxed),
            last_error: self.last_error.lock().clone(),
            capture_cpu: self.capture_cpu().map(|c| c.total),
            exposure: self.newest_exposure(),
        }
    }

    /// What the newest frame in the ring says it was exposed with (a libcamera camera's:
    /// read from the frame's bytes under the ring lock, a few hundred nanoseconds).
    fn newest_exposure(&self) -> Option<crate::frame::exif::Exposure> {
        if !crate::source::reports_exposure(self.setup.info.kind) {
            return None;
        }
        let state = self.state.lock();
        crate::frame::exif::read(&state.ring.newest()?.data)
    }
}

/// What a camera's threads took of the CPU over a second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuLoad {
    /// Shares of one core, all its threads together (above 1.0 with encoding threads).
    pub total: f64,
    /// What limits the rate it can take: the capture thread's share, or its encoding
    /// threads' mean share where it has them.
    pub busy: f64,
    /// As `busy`, with the time they were ready to run but waited for a CPU that other
    /// work held: near 1.0 they never waited for the camera.
    pub wanted: f64,
    /// Its encoding threads (0: it encodes, if at all, on the capture thread).
    pub encoders: usize,
}

impl CpuLoad {
    /// "its capture thread was busy 97% of the last second", or its encoding threads';
    /// when other work held the CPU, how much it wanted and got.
    pub fn said(&self) -> String {
        let pct = |x: f64| (x * 100.0).round();
        let (who, was) = match self.encoders {
            0 => ("its capture thread".to_string(), "was"),
            n => (format!("its {n} encoding threads"), "were"),
        };
        if self.busy >= BUSY {
            format!("{who} {was} busy {}% of the last second", pct(self.busy))
        } else {
            format!(
                "{who} needed a CPU {}% of the last second and had one {}% (this machine is \
                 busy with other work)",
                pct(self.wanted),
                pct(self.busy)
            )
        }
    }

    /// It hardly ever waited for the camera: what lost frames is this machine's CPU.
    pub fn overloaded(&self) -> bool {
        self.wanted >= BUSY
    }
}

/// The CPU meters of a capture thread and its source's helper threads.
struct CaptureCpu {
    own: CpuMeter,
    helpers: Vec<CpuMeter>,
    last: Option<CpuLoad>,
}

impl CaptureCpu {
    fn sample(&mut self, now: LslTime) -> Option<CpuLoad> {
        // Every meter is read at every look, so that their windows line up.
        let helpers: Vec<(f64, f64)> = self
            .helpers
            .iter_mut()
            .filter_map(|m| Some((m.sample(now)?, m.wanted()?)))
            .collect();
        let own = self.own.sample(now)?;
        let own_wanted = self.own.wanted().unwrap_or(own);
        let sum: f64 = helpers.iter().map(|h| h.0).sum();
        let (busy, wanted) = if helpers.is_empty() {
            (own, own_wanted)
        } else {
            let n = helpers.len() as f64;
            let wanted: f64 = helpers.iter().map(|h| h.1).sum();
            (own.max(sum / n), own_wanted.max(wanted / n))
        };
        self.last = Some(CpuLoad {
            total: own + sum,
            busy,
            wanted,
            encoders: self.helpers.len(),
        });
        self.last
    }
}

/// A capture thread busy this share of a second or more is what lost its camera's frames
/// that second: it hardly ever waited for the next one.
pub const BUSY: f64 = 0.8;

/// What keeps a capture thread from taking every frame, when it can take about `max_fps`
/// of the camera's: said in the warning of frames lost and by `hindsight check`.
pub fn overloaded(info: &SourceInfo, max_fps: f64) -> String {
    let keeps_up = format!(
        "this machine keeps up with about {:.0} fps of the {} asked for",
        max_fps.floor(),
        info.fps
    );
    if info.kind == crate::config::SourceKind::Libcamera {
        format!(
            "encoding {}x{} frames to JPEG, {keeps_up}: lower fps, resolution or quality, \
             or encode on more threads (`encoders`; this machine has {} cores)",
            info.width,
            info.height,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )
    } else if info.encodes {
        format!(
            "encoding {}x{} frames to JPEG, {keeps_up}: lower fps, resolution or quality",
            info.width, info.height
        )
    } else {
        keeps_up
    }
}

/// Queues the references of `frames` (up to `to`) as one [`WriterMsg::Buffered`], without
/// blocking: a burst of commands costs the writer's queue one message each, however much
/// the ring holds, and a writer far behind gets it after what it has queued
/// ([`WriterQueue::send`]). Returns (sent, lost, first capture time); `lost` is all of
/// them if the writer is gone, and is counted as such.
fn send_dump<'a>(
    writer: &WriterQueue,
    dump: &mut Vec<Frame>,
    frames: impl Iterator<Item = &'a Frame>,
    to: Option<LslTime>,
) -> (u64, u64, Option<LslTime>) {
    dump.extend(
        frames
            .take_while(|f| to.is_none_or(|t| f.meta.capture <= t))
            .cloned(),
    );
    let first = dump.first().map(|f| f.meta.capture);
    let n = dump.len() as u64;
    if n == 0 {
        return (0, 0, first);
    }
    match writer.send(WriterMsg::Buffered(std::mem::take(dump))) {
        Ok(()) => (n, 0, first),
        Err(_) => (0, n, first),
    }
}

/// Frames per second over windows of at least one second of capture time. Until the
/// first window is full (at start-up, and when frames come again after a second or more
/// without), the rate over the frames so far, once they span a quarter of a second: a
/// camera that has just begun to deliver is not shown at 0 fps, nor at the rate of a
/// window that spans its absence.
#[derive(Default)]
struct FpsMeter {
    window_start: Option<LslTime>,
    frames: u64,
    last: Option<LslTime>,
    /// The first full window is measured.
    measured: bool,
}

impl FpsMeter {
    fn frame(&mut self, t: LslTime) -> Option<f64> {
        const WINDOW: i64 = 1_000_000_000;
        if self.last.is_some_and(|l| t.nanos_since(l) >= WINDOW) {
            self.window_start = None;
            self.measured = false;
        }
        self.last = Some(t);
        let start = *self.window_start.get_or_insert_with(|| {
            self.frames = 0;
            t
        });
        self.frames += 1;
        let elapsed = t.nanos_since(start);
        // `frames - 1` intervals span `elapsed`.
        let fps = || (self.frames - 1) as f64 * 1e9 / elapsed as f64;
        if elapsed >= WINDOW {
            let f = fps();
            self.window_start = Some(t);
            self.frames = 1;
            self.measured = true;
            Some(f)
        } else if !self.measured && self.frames >= 3 && elapsed >= WINDOW / 4 {
            Some(fps())
        } else {
            None
        }
    }
}

/// How long the newest usable frame may be old before the measured rate is reported as 0:
/// the meter's window plus three frame periods.
fn fps_window(fps: f64) -> Duration {
    Duration::from_secs(1)
        + Duration::from_secs_f64(3.0 / fps.max(0.01)).min(Duration::from_secs(60))
}

/// A camera that delivers no usable frame for this long is lost: 5 s, or three frame
/// periods of a slower camera.
pub fn loss_timeout(fps: f64) -> Duration {
    Duration::from_secs(5)
        .max(Duration::from_secs_f64(3.0 / fps.max(0.01)).min(Duration::from_secs(600)))
}

/// How often corrupt frames are said again in the log, with their count since.
const BAD_SAID_EVERY: Duration = Duration::from_secs(60);

/// Frames that could not be used: counted, `run` of them since the last usable one (for
/// the loss message), and logged without flooding the log: the first at once, then at
/// most once a minute with the count since. (A camera that sent a corrupt frame now and
/// then, between good ones, had every one logged: several lines a second.)
#[derive(Default)]
struct BadFrames {
    run: u64,
    unlogged: u64,
    last_why: String,
    last_log: Option<Instant>,
}

impl BadFrames {
    fn frame(&mut self, cam: &Camera, why: String) {
        cam.stats.corrupt.fetch_add(1, Relaxed);
        self.run += 1;
        self.unlogged += 1;
        self.last_why = why;
        self.say(false);
    }

    /// The frames not said yet, if a line is due (or `now`: the capture ends).
    fn say(&mut self, now: bool) {
        if self.unlogged == 0
            || !(now || self.last_log.is_none_or(|t| t.elapsed() >= BAD_SAID_EVERY))
        {
            return;
        }
        if self.unlogged == 1 {
            tracing::warn!("dropped a corrupt frame: {}", self.last_why);
        } else {
            tracing::warn!(
                "dropped {} corrupt frames since the last line (the last: {})",
                self.unlogged,
                self.last_why
            );
        }
        self.unlogged = 0;
        self.last_log = Some(Instant::now());
    }

    /// Why no frame was usable, for the loss message.
    fn describe(&self) -> String {
        match self.run {
            0 => String::new(),
            n => format!(
                ": {n} corrupt or wrong-size frames (the last: {})",
                self.last_why
            ),
        }
    }

    /// A usable frame (or a reopened source): the run of unusable ones is over.
    fn usable(&mut self) {
        self.run = 0;
        self.say(false);
    }
}

/// The capture loop. Returns when `stop` is set or the source stops. A camera that
/// stops delivering usable frames (an error, the stream's end, or nothing but corrupt or
/// wrong-size frames for [`loss_timeout`]) is reported lost and opened again (`reopen`)
/// with backoff; a recording in progress keeps it and gets its frames again once it is back.
pub fn run_capture(
    mut source: Box<dyn FrameSource>,
    mut reopen: Option<Reopen>,
    cam: Arc<Camera>,
    stop: Shutdown,
) {
    let _span = tracing::info_span!("capture", camera = %cam.setup.name).entered();
    if let Some(core) = cam.setup.cpu_core {
        if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            tracing::info!(core, "capture thread pinned");
        } else {
            tracing::warn!(core, "could not pin the capture thread to its core");
        }
    }
    if cam.setup.realtime {
        match set_realtime(REALTIME_PRIORITY) {
            Ok(()) => {
                cam.stats.realtime.store(true, Relaxed);
                tracing::info!(
                    "capture thread at real-time priority (SCHED_FIFO {REALTIME_PRIORITY})"
                );
            }
            Err(e) => tracing::info!(
                camera = %cam.setup.name,
                "real-time priority not permitted ({e}); capturing at normal priority \
                 (allow it with CAP_SYS_NICE or LimitRTPRIO= under systemd)"
            ),
        }
    }
    let max_frame = cam.state.lock().ring.max_frame_bytes();
    let mut jpeg: Vec<u8> = Vec::with_capacity(max_frame.min(8 << 20));
    let mut fps = FpsMeter::default();
    let mut seq = SeqRebase::starting_at(cam.setup.first_frame);
    let loss_after = loss_timeout(cam.setup.info.fps);
    // The size its frames are recorded at: the source's, from its first open (0x0 until a
    // camera that could not be opened at start-up opens).
    let mut size = (0, 0);
    cam.opened(source.as_ref(), &mut size);
    let mut usable_at = Instant::now();
    let mut bad = BadFrames::default();
    // Set while the camera is lost: why. Cleared by its next usable frame.
    let mut lost: Option<String> = None;
    cam.watch_cpu(source.as_ref());
    cam.stats.running.store(true, Relaxed);
    if size.0 == 0 {
        // Not opened at start-up: said by the control thread, with why.
        tracing::info!("capturing once the camera opens");
    } else {
        tracing::info!(source = %source.info(), "capturing");
    }
    while !stop.stopping() {
        cam.stats
            .heartbeat_ns
            .store(LslTime::now().as_nanos(), Relaxed);
        let mut gone = match source.next_frame_ref(&mut jpeg) {
            Ok((mut meta, jpeg)) => {
                let got = (u32::from(meta.width), u32::from(meta.height));
                if size.0 > 0 && got != size {
                    // A source hands over another size only once it is sure of it (a
                    // stream: several frames in a row).
                    cam.resized(&mut size, got);
                }
                usable_at = Instant::now();
                bad.usable();
                meta.seq = seq.map(meta.seq);
                if let Some(why) = lost.take() {
                    cam.back(meta.capture, &why);
                }
                on_frame(&cam, meta, jpeg, &mut fps);
                None
            }
            Err(SourceError::Idle) => None,
            Err(SourceError::Corrupt(why)) => {
                bad.frame(&cam, why);
                None
            }
            Err(SourceError::Lost(why)) => Some(why),
            Err(SourceError::Stopped) => break,
        };
        if gone.is_none() && usable_at.elapsed() >= loss_after {
            gone = Some(format!(
                "no usable frame for {:.0} s{}",
                loss_after.as_secs_f64(),
                bad.describe()
            ));
        }
        let Some(why) = gone else { continue };
        if lost.is_none() {
            cam.lost(&why);
        } else {
            tracing::warn!("camera still lost: {why}");
            *cam.last_error.lock() = Some(format!("camera lost: {why}"));
        }
        lost = Some(why);
        let Some(open) = reopen.as_mut() else {
            break;
        };
        // Closed before it is opened again: a device (a V4L2 node, a libcamera camera)
        // cannot be opened twice.
        let info = source.info().clone();
        drop(std::mem::replace(
            &mut source,
            Box::new(crate::source::NotOpened::closed(info)),
        ));
        match recover(&cam, open, &stop) {
            Some(s) => {
                let got = (s.info().width, s.info().height);
                if size.0 > 0 && got.0 > 0 && got != size {
                    cam.resized(&mut size, got);
                }
                source = s;
                if size.0 == 0 {
                    tracing::info!(source = %source.info(), "capturing: the camera opened");
                }
                cam.opened(source.as_ref(), &mut size);
                cam.watch_cpu(source.as_ref());
                seq.reopened();
                usable_at = Instant::now();
                bad.usable();
            }
            None => break,
        }
    }
    bad.say(true);
    cam.stats.running.store(false, Relaxed);
    tracing::info!("capture stopped");
}

/// How often a capture thread waiting to open its lost camera again says it is alive
/// (the systemd watchdog's smallest interval is 1 s).
const HEARTBEAT_WHILE_LOST: Duration = Duration::from_millis(250);

/// The longest wait between two tries to open a lost source.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often a camera that stays lost, with the same error, is said again in the log.
const STILL_LOST_SAID_EVERY: Duration = Duration::from_secs(60);

/// How a camera that stays lost is said in the log: every failed try while the backoff
/// grows (its first 3 s), and any whose error is not the one said last; then once a
/// minute, with the tries since. (A camera unplugged overnight wrote a line every 5 s.)
#[derive(Default)]
struct StillLost {
    /// When the last line was said, and its error.
    said: Option<(Instant, String)>,
    /// Failed tries since.
    tries: u32,
}

impl StillLost {
    /// A try failed with `err` at `now`; the next comes after `backoff`. The line to log,
    /// if one is due.
    fn failed(&mut self, now: Instant, err: &str, backoff: Duration) -> Option<String> {
        let due = self.said.as_ref().is_none_or(|(at, said)| {
            said != err
                || backoff < MAX_BACKOFF
                || now.saturating_duration_since(*at) >= STILL_LOST_SAID_EVERY
        });
        if !due {
            self.tries += 1;
            return None;
        }
        let since = match self.tries {
            0 => String::new(),
            n => format!(" ({n} more tries since the last line)"),
        };
        self.tries = 0;
        self.said = Some((now, err.to_string()));
        Some(format!(
            "camera still lost: {err}; retrying in {backoff:?}{since}"
        ))
    }
}

/// After a loss: open the source again with backoff (100 ms doubling to 5 s) until it
/// opens or `stop` is set.
fn recover(cam: &Arc<Camera>, open: &mut Reopen, stop: &Shutdown) -> Option<Box<dyn FrameSource>> {
    let mut backoff = Duration::from_millis(100);
    let mut log = StillLost::default();
    loop {
        // The wait ends at once on shutdown; the heartbeat (the watchdog's sign that
        // this loop comes round) is kept every 250 ms, not at every 20 ms as it was: a
        // camera lost all night woke this thread 50 times a second.
        let until = Instant::now() + backoff;
        loop {
            cam.stats
                .heartbeat_ns
                .store(LslTime::now().as_nanos(), Relaxed);
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if stop.wait_for(Stage::Stopping, left.min(HEARTBEAT_WHILE_LOST)) {
                return None;
            }
        }
        let alive = {
            let (cam, stop) = (cam.clone(), stop.clone());
            Box::new(move || {
                cam.stats
                    .heartbeat_ns
                    .store(LslTime::now().as_nanos(), Relaxed);
                !stop.stopping()
            })
        };
        let opened = crate::source::opening(alive, &mut *open);
        if stop.stopping() {
            return None;
        }
        match opened {
            Ok(s) => {
                cam.stats.reopened.fetch_add(1, Relaxed);
                tracing::debug!(source = %s.info(), "camera opened again");
                return Some(s);
            }
            Err(e) => {
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if let Some(line) = log.failed(Instant::now(), &e.to_string(), backoff) {
                    tracing::warn!("{line}");
                }
                // Why it was lost, then why it does not open again (not said twice for
                // a camera not there at start-up, still not there).
                let why = cam.last_error.lock().clone().unwrap_or_default();
                let first = why.split("; reopening:").next().unwrap_or(&why).to_string();
                let now = match &e {
                    crate::source::OpenError::Failed { cause, .. } => cause.clone(),
                    other => other.to_string(),
                };
                *cam.last_error.lock() = Some(if first.ends_with(&now) {
                    format!("{first}; reopening: the same error")
                } else {
                    format!("{first}; reopening: {now}")
                });
            }
        }
    }
}

/// Keeps frame numbers increasing across a reopened source, whose own counter restarts:
/// the first frame after a reopen follows the last one before it. (How many frames the
/// outage cost is unknown; it is visible in the capture times, not counted as drops.)
#[derive(Default)]
struct SeqRebase {
    offset: i64,
    last: Option<u64>,
    rebase: bool,
}

impl SeqRebase {
    /// The first frame gets number `first`, whatever the source counts from.
    fn starting_at(first: u64) -> SeqRebase {
        SeqRebase {
            offset: 0,
            last: first.checked_sub(1),
            rebase: true,
        }
    }

    fn reopened(&mut self) {
        self.rebase = true;
    }

    fn map(&mut self, source_seq: u64) -> u64 {
        if self.rebase {
            self.rebase = false;
            let next = self.last.map_or(0, |l| l + 1);
            self.offset = next as i64 - source_seq as i64;
        }
        let out = (source_seq as i64 + self.offset).max(0) as u64;
        self.last = Some(out);
        out
    }
}

/// SCHED_FIFO priority of capture threads: above every normal thread, far below the
/// kernel's own real-time threads (50 and up), and the thread sleeps between frames.
const REALTIME_PRIORITY: i32 = 10;

/// Puts the calling thread at the capture threads' real-time priority, if permitted
/// (`hindsight check` asks on a thread of its own).
pub fn try_realtime() -> std::io::Result<()> {
    set_realtime(REALTIME_PRIORITY)
}

fn set_realtime(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Everything the capture thread does with one frame. Split out so the benchmark measures
/// exactly this.
fn on_frame(cam: &Camera, meta: FrameMeta, jpeg: &[u8], fps: &mut FpsMeter) {
    let s = &cam.stats;
    s.frames_captured.fetch_add(1, Relaxed);
    if let Some(lsl) = &cam.setup.lsl {
        let record = FrameRecord {
            camera: cam.setup.index as u16,
            seq: meta.seq,
            capture: meta.capture,
            wall: meta.wall,
            keyframe: meta.keyframe,
        };
        if lsl.try_send(LslMsg::Frame(record)).is_err() {
            s.lsl_queue_full.fetch_add(1, Relaxed);
        }
    }
    let expected = s.next_seq.swap(meta.seq + 1, Relaxed);
    if expected != 0 && meta.seq > expected {
        s.source_gaps.fetch_add(meta.seq - expected, Relaxed);
    }
    s.last_capture_ns.store(meta.capture.as_nanos(), SeqCst);
    let watch = s.watch_after_ns.load(SeqCst);
    if watch != 0
        && meta.capture.as_nanos() > watch
        && s.watch_after_ns
            .compare_exchange(watch, 0, SeqCst, Relaxed)
            .is_ok()
    {
        cam.send_event(CameraEvent::FrameAfter {
            camera: cam.setup.index,
        });
    }
    if let Some(f) = fps.frame(meta.capture) {
        s.fps_milli.store((f * 1000.0).round() as u64, Relaxed);
    }

    let mut guard = cam.state.lock();
    let st = &mut *guard;
    match st.ring.push(meta, jpeg) {
        Ok(frame) => {
            if let Some(live) = &st.live {
                if live.until.is_none_or(|u| frame.meta.capture <= u) {
                    match live.writer.offer(WriterMsg::Frame(frame.clone())) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            s.writer_queue_full.fetch_add(1, Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            st.live = None;
                        }
                    }
                }
            }
        }
        // Counted by the ring (the only count), published below.
        Err(DropCause::WriterBehind | DropCause::TooLarge) => {}
    }
    if st.ring.wants_chunks() > 0 || st.ring.wants_slots() > 0 {
        if let Some(grow) = &cam.setup.grow {
            if !cam.grow_asked.swap(true, Relaxed) && grow.try_send(cam.setup.index).is_err() {
                cam.grow_asked.store(false, Relaxed);
            }
        }
    }
    // The ring counts what it could not keep; these atomics only publish its counts.
    let c = st.ring.counters();
    s.evicted_early
        .store(c.evicted_early_bytes + c.evicted_early_slots, Relaxed);
    s.held_by_writer.store(c.dropped_writer_behind, Relaxed);
    s.too_large.store(c.dropped_too_large, Relaxed);
    s.buffered_frames.store(st.ring.len() as u64, Relaxed);
    s.buffered_bytes.store(st.ring.bytes() as u64, Relaxed);
    s.buffered_ns
        .store(st.ring.span().as_nanos() as u64, Relaxed);
}

/// Memory the system can still give without swapping (`MemAvailable`), if known.
pub fn memory_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_field(&text, "MemAvailable:")
}

/// The machine's memory (`MemTotal`), if known.
pub fn memory_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_field(&text, "MemTotal:")
}

fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Memory left for everything else when a buffer grows: below this, it stops growing.
const MEMORY_RESERVE: u64 = 128 << 20;

/// Starts the thread that gives the cameras' pre-trigger rings the memory they ask for
/// (allocated and touched here, handed over under the ring lock), so that a capture
/// thread never allocates or waits on a page fault. Returns the queue the cameras ask
/// on: pass it in their [`CameraSetup::grow`] before starting this with them.
pub fn spawn_buffer_grower(
    cameras: Vec<Arc<Camera>>,
    asks: crossbeam_channel::Receiver<usize>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("buffers".into())
        .spawn(move || {
            let _span = tracing::info_span!("buffers").entered();
            let mut refused = vec![false; cameras.len()];
            while let Ok(i) = asks.recv() {
                let Some(cam) = cameras.get(i) else { continue };
                let mut short = false;
                loop {
                    let (wanted, size) = {
                        let st = cam.state.lock();
                        (st.ring.wants_chunks(), st.ring.chunk_size())
                    };
                    if wanted == 0 {
                        break;
                    }
                    let room = memory_available().is_none_or(|a| a >= size as u64 + MEMORY_RESERVE);
                    let chunk = if room { crate::ring::new_chunk(size) } else { None };
                    let Some(chunk) = chunk else {
                        short = true;
                        if !refused[i] {
                            refused[i] = true;
                            let st = cam.state.lock();
                            tracing::warn!(
                                camera = %cam.setup.name,
                                "the pre-trigger buffer cannot grow past {} MiB: the machine has {} MiB of memory left; it holds {:.1} s of the {:.1} s asked for",
                                st.ring.capacity_bytes() >> 20,
                                memory_available().unwrap_or(0) >> 20,
                                st.ring.span().as_secs_f64(),
                                cam.buffer_duration.as_secs_f64()
                            );
                        }
                        break;
                    };
                    let mut st = cam.state.lock();
                    if !st.ring.add_chunk(chunk) {
                        break;
                    }
                    refused[i] = false;
                    cam.stats
                        .buffer_capacity
                        .store(st.ring.capacity_bytes() as u64, Relaxed);
                }
                let slots = cam.state.lock().ring.wants_slots();
                if slots > 0 {
                    let bytes = (slots * std::mem::size_of::<crate::frame::Frame>()) as u64;
                    let room = memory_available().is_none_or(|a| a >= bytes + MEMORY_RESERVE);
                    match room.then(|| crate::ring::new_slots(slots)).flatten() {
                        Some(bigger) => {
                            let (old, had) = {
                                let mut st = cam.state.lock();
                                let had = st.ring.slots();
                                (st.ring.take_slots(bigger), had)
                            };
                            drop(old);
                            tracing::info!(
                                camera = %cam.setup.name,
                                "pre-trigger buffer: {slots} frame slots instead of {had}: \
                                 the camera delivers more frames a second than its fps"
                            );
                        }
                        None => short = true,
                    }
                }
                if short {
                    // No memory now: ask again in a while, not at every frame.
                    std::thread::sleep(Duration::from_secs(10));
                }
                cam.grow_asked.store(false, Relaxed);
                tracing::debug!(
                    camera = %cam.setup.name,
                    "pre-trigger buffer: {} MiB",
                    cam.stats.buffer_capacity.load(Relaxed) >> 20
                );
            }
        })
}

/// A 16x16 synthetic camera `cam0` with a ring of `limits`, for unit tests.
#[cfg(test)]
pub(crate) fn test_camera(limits: crate::ring::RingLimits) -> Camera {
    test_camera_n(0, limits)
}

/// A 16x16 synthetic camera `cam<index>` with a ring of `limits`, for unit tests.
#[cfg(test)]
pub(crate) fn test_camera_n(index: usize, limits: crate::ring::RingLimits) -> Camera {
    test_camera_of(index, limits, crate::config::SourceKind::Synthetic)
}

/// [`test_camera_n`] standing for a source of `kind`.
#[cfg(test)]
pub(crate) fn test_camera_of(
    index: usize,
    limits: crate::ring::RingLimits,
    kind: crate::config::SourceKind,
) -> Camera {
    let info = SourceInfo {
        kind,
        model: "test".into(),
        width: 16,
        height: 16,
        fps: 100.0,
        codec: crate::config::Codec::Mjpg,
        encodes: false,
        controls: String::new(),
        controls_off: None,
    };
    Camera::new(
        CameraSetup::plain(index, &format!("cam{index}"), info),
        PreTriggerRing::new(limits),
    )
}

/// For the benchmark: the capture thread's per-frame work on a given camera.
#[doc(hidden)]
#[derive(Default)]
pub struct CaptureStep {
    fps: FpsMeter,
}

impl CaptureStep {
    pub fn frame(&mut self, cam: &Camera, meta: FrameMeta, jpeg: &[u8]) {
        on_frame(cam, meta, jpeg, &mut self.fps);
    }
}

#[cfg(test)]
mod tests;
