//! The recordings root's disk: free space, the disk guard, and retention.
//!
//! The `disk` thread reads the filesystem's free space every half second. Below
//! `storage.min_free` it stops the recording that is running (a typed `DiskFull` message to
//! the control thread, whose recorder stops with `StopReason::DiskFull`: the files are finished and playable, the status, the log, the LSL
//! events and the ntfy reply say why), and the control thread refuses new recordings and
//! clips (`storage::refusal`) until there is room again. Buffering goes on throughout: nothing in
//! RAM is lost, and the next recording after space is freed has its full pre-trigger.
//!
//! Retention (off unless `storage.retention` sets a limit) deletes the oldest recordings,
//! whole (every camera's MKV and sidecars, and the WAV), by age or to keep the total under
//! a size: at start-up, every 10 minutes, and with a total set also soon after a
//! recording ends and whenever a hundredth of the total has been written since the last
//! pass (at most every 5 s), so that the total is kept while the disk fills rather than
//! 10 minutes late. It deletes only files named in hindsight's
//! layout and never a recording with a file open or touched in the last minute. A
//! recording's age is its newest file's modification time, except for files written while
//! this process ran: those are aged on the monotonic clock (`WallSpans`), so that a wall
//! clock stepped forward (a Pi without a real-time clock, set by NTP after it booted)
//! does not make the recordings made before the step look old enough to delete.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::bus::CommandBus;
use crate::capture::Camera;
use crate::clock::{ClockPair, Clocks, LslTime};
use crate::config::RetentionConfig;
use crate::hub::StatusHub;
use crate::shutdown::Shutdown;
use crate::status::DiskStatus;

const POLL: Duration = Duration::from_millis(500);
/// Every this many polls (5 s) the mount table is read for a filesystem turned read-only
/// after errors ([`RootFs::check_reading`]); at every poll while the disk is not usable,
/// so that its return is said at once. A recording on such a disk meets it at its next
/// write, and a start reads the table itself.
const MOUNT_TABLE_EVERY: u32 = 10;
const RATE_WINDOW: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// Passes for a total (`retention.max_total`) come no closer than this.
const RETENTION_GAP: Duration = Duration::from_secs(5);
/// A recording with a file modified this recently is never deleted.
const RECENT: Duration = Duration::from_secs(60);

use crate::recordings::{recording_key, scan, StoredRecording};
use crate::storage::{below_guard, free_space, size, MountTable, RootFs, RootProblem};

/// How much hindsight writes per second, over a sliding window.
#[derive(Default)]
pub struct RateMeter {
    samples: VecDeque<(LslTime, u64)>,
}

impl RateMeter {
    /// Adds the running total `bytes` at `now`; returns bytes per second over the window.
    pub fn add(&mut self, now: LslTime, bytes: u64) -> f64 {
        self.samples.push_back((now, bytes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.saturating_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (t0, b0) = self.samples[0];
        let dt = now.saturating_since(t0).as_secs_f64();
        if dt <= 0.0 {
            0.0
        } else {
            bytes.saturating_sub(b0) as f64 / dt
        }
    }
}

/// The guard's memory from one poll to the next: was free space low, and which recording
/// it has stopped (each once).
#[derive(Debug, Default)]
struct Guard {
    was_low: bool,
    stopped: Option<u64>,
}

/// What one poll of the guard found, and what to do.
#[derive(Debug, PartialEq, Eq)]
enum GuardStep {
    /// Free space is below `storage.min_free`: `newly` the first poll that found it;
    /// `stop` the recording to stop now (each recording once).
    Low {
        newly: bool,
        stop: Option<u64>,
    },
    /// Above it again after being low.
    Recovered,
    Fine,
}

impl Guard {
    /// `low`: free space is below the guard; `recording`: the recording in progress.
    fn poll(&mut self, low: bool, recording: Option<u64>) -> GuardStep {
        let was_low = std::mem::replace(&mut self.was_low, low);
        if low {
            let stop = recording.filter(|&id| self.stopped != Some(id));
            if stop.is_some() {
                self.stopped = stop;
            }
            GuardStep::Low {
                newly: !was_low,
                stop,
            }
        } else if was_low {
            GuardStep::Recovered
        } else {
            GuardStep::Fine
        }
    }
}

/// Seconds of writing at `rate` before free space reaches `min_free`.
pub fn seconds_left(free: u64, min_free: u64, rate: f64) -> Option<f64> {
    (rate > 1.0).then(|| free.saturating_sub(min_free) as f64 / rate)
}

// ---------------------------------------------------------------------------------------
// Retention

/// The wall clock against the monotonic one while this process runs: spans over which the
/// two ran together (within [`WALL_STEP`]), each with its offset. A file modified within a
/// span was written, on the monotonic clock, at its modification time less that span's
/// offset, whatever the wall clock did since; a wall clock stepped forward after boot (a
/// Pi without a real-time clock, set by NTP) would otherwise make every file written
/// before the step look older by the step.
#[derive(Debug, Default)]
pub struct WallSpans {
    spans: Vec<WallSpan>,
}

#[derive(Debug)]
struct WallSpan {
    /// Wall minus monotonic (ns), as last seen in the span.
    offset: i128,
    /// The span's first and last wall-clock readings (ns since 1970).
    from_wall: i128,
    to_wall: i128,
}

/// An offset change larger than this between two looks is a step of the wall clock
/// (NTP slews a clock by at most 0.5 ms a second).
const WALL_STEP: Duration = Duration::from_secs(30);

impl WallSpans {
    /// Records both clocks, read together (every poll of the disk thread). Returns the
    /// step (ns, forward positive) when the wall clock was set since the last look.
    pub fn observe(&mut self, now: ClockPair) -> Option<i128> {
        let wall = i128::from(now.wall.as_nanos());
        let offset = wall - i128::from(now.lsl.as_nanos());
        let step = self.spans.last().map(|s| offset - s.offset);
        match self.spans.last_mut() {
            Some(s) if (offset - s.offset).unsigned_abs() <= WALL_STEP.as_nanos() => {
                s.offset = offset;
                s.to_wall = s.to_wall.max(wall);
                None
            }
            _ => {
                // A clock stepped over and over (a broken time source) keeps the newest.
                if self.spans.len() >= 64 {
                    self.spans.remove(0);
                }
                self.spans.push(WallSpan {
                    offset,
                    from_wall: wall,
                    to_wall: wall,
                });
                step
            }
        }
    }

    /// How long ago, by the monotonic clock, a file modified at `modified` (on the wall
    /// clock of its time) was written, if within a span seen (the newest that holds it);
    /// `None` for a file from before this process, or after its last look.
    pub fn age(&self, modified: SystemTime, now: ClockPair) -> Option<Duration> {
        let m = match modified.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        let margin = POLL.as_nanos() as i128;
        let span = self
            .spans
            .iter()
            .rev()
            .find(|s| m >= s.from_wall - margin && m <= s.to_wall + margin)?;
        let written = m - span.offset;
        let ago = i128::from(now.lsl.as_nanos()) - written;
        Some(Duration::from_nanos(ago.clamp(0, u64::MAX as i128) as u64))
    }
}

/// What a step of the wall clock by `step` ns means for the recordings.
pub fn clock_step(step: i128) -> String {
    format!(
        "the wall clock was set {} by {} (NTP, by hand, or the machine slept): recordings \
         made before are named and dated by the clock as it was; LSL times, durations and \
         retention's ages are not affected",
        if step > 0 { "forward" } else { "back" },
        crate::storage::duration(step.unsigned_abs() as f64 / 1e9)
    )
}

/// When retention looks: every [`RETENTION_EVERY`] (ages), and for a total also once a
/// recording has ended or a hundredth of the total has been written since the last pass,
/// at most every [`RETENTION_GAP`].
#[derive(Debug)]
pub struct RetentionTimer {
    next: LslTime,
    last: Option<LslTime>,
    written_at_last: u64,
    /// More was written since the last pass: a pass is due after the gap.
    grown: bool,
}

impl RetentionTimer {
    /// The first pass at `first` (the recorder is still starting before).
    pub fn new(first: LslTime) -> RetentionTimer {
        RetentionTimer {
            next: first,
            last: None,
            written_at_last: 0,
            grown: false,
        }
    }

    /// Whether to pass now: `written` is every byte written so far, `writing` whether a
    /// recording's files are open, `max_total` the total retention keeps to.
    pub fn due(
        &mut self,
        now: LslTime,
        written: u64,
        writing: bool,
        max_total: Option<u64>,
    ) -> bool {
        if let Some(total) = max_total {
            let new = written.saturating_sub(self.written_at_last);
            // Files closed with something new in them (a clip may open and close between
            // two polls), or a hundredth of the total written.
            if (new > 0 && !writing) || new >= (total / 100).max(1 << 20) {
                self.grown = true;
            }
        }
        let gap_over = self
            .last
            .is_none_or(|l| now.saturating_since(l) >= RETENTION_GAP);
        if now >= self.next || (self.grown && gap_over) {
            self.next = now + RETENTION_EVERY;
            self.last = Some(now);
            self.written_at_last = written;
            self.grown = false;
            return true;
        }
        false
    }
}

/// Why retention's total cannot be kept on this disk: the recordings there now and the
/// free space above `min_free` together hold less than `max_total`, so the disk guard
/// stops recordings before retention deletes any. `None` when it fits.
pub fn total_does_not_fit(
    max_total: u64,
    recordings: u64,
    free: u64,
    min_free: u64,
) -> Option<String> {
    let room = recordings.saturating_add(free.saturating_sub(min_free));
    (room < max_total).then(|| {
        format!(
            "storage.retention.max_total {} is more than this disk can hold for recordings \
             ({} recorded + {} free above storage.min_free {}): the disk guard will stop \
             recordings before retention deletes old ones; set max_total below {}",
            size(max_total),
            size(recordings),
            size(free.saturating_sub(min_free)),
            size(min_free),
            size(room)
        )
    })
}

/// Which recordings (indices into `recordings`, oldest first) retention deletes, each of
/// the `age` given. `protected` ones (a file open, or touched within a minute) are never
/// chosen, and do count towards the total.
pub fn plan(
    recordings: &[StoredRecording],
    policy: &RetentionConfig,
    age: &dyn Fn(&StoredRecording) -> Duration,
    protected: &dyn Fn(&StoredRecording) -> bool,
) -> Vec<usize> {
    let max_age = policy
        .max_age_days
        .map(|d| Duration::from_secs_f64(d.0 * 86_400.0));
    let mut total: u64 = recordings.iter().map(|r| r.bytes).sum();
    let mut out = Vec::new();
    for (i, r) in recordings.iter().enumerate() {
        if protected(r) {
            continue;
        }
        let too_old = max_age.is_some_and(|m| age(r) > m);
        let too_much = policy.max_total.is_some_and(|m| total > m.0);
        if too_old || too_much {
            out.push(i);
            total -= r.bytes;
        }
    }
    out
}

/// Deletes what [`plan`] chooses at `now` (both clocks, read together); returns a summary
/// for the log and status, if anything was deleted.
pub fn apply_retention(
    root: &Path,
    policy: &RetentionConfig,
    open_files: &[String],
    now: ClockPair,
    spans: &WallSpans,
) -> Option<String> {
    if policy.max_age_days.is_none() && policy.max_total.is_none() {
        return None;
    }
    let recordings = scan(root);
    let wall_now = SystemTime::UNIX_EPOCH + Duration::from_nanos(now.wall.as_nanos().max(0) as u64);
    let age = |r: &StoredRecording| {
        spans.age(r.modified, now).unwrap_or_else(|| {
            wall_now
                .duration_since(r.modified)
                .unwrap_or(Duration::ZERO)
        })
    };
    // An open file protects its whole recording (its other cameras, sidecars and WAV).
    let open: Vec<String> = open_files
        .iter()
        .filter_map(|f| recording_key(Path::new(f)))
        .collect();
    let protected = |r: &StoredRecording| age(r) < RECENT || open.contains(&r.key);
    let chosen = plan(&recordings, policy, &age, &protected);
    if chosen.is_empty() {
        return None;
    }
    let (mut n, mut bytes, mut failed) = (0, 0u64, Vec::new());
    for i in chosen {
        let r = &recordings[i];
        // Being written by another hindsight sharing the root (another rig, its camera
        // silent for a minute): kept.
        if r.files
            .iter()
            .any(|f| crate::writer::files::being_written(f))
        {
            tracing::info!(
                "retention: keeps {}: another hindsight is writing it",
                r.key
            );
            continue;
        }
        let mut ok = true;
        for f in &r.files {
            if let Err(e) = std::fs::remove_file(f) {
                ok = false;
                failed.push(format!("{}: {e}", f.display()));
            }
        }
        if ok {
            n += 1;
            bytes += r.bytes;
            tracing::warn!(
                "retention: deleted recording {} ({} files, {})",
                r.key,
                r.files.len(),
                size(r.bytes)
            );
        }
        for f in &r.files {
            // Empty folders go too (video/, audio/, then the day).
            if let Some(dir) = f.parent() {
                let _ = std::fs::remove_dir(dir);
                if let Some(day) = dir.parent() {
                    let _ = std::fs::remove_dir(day);
                }
            }
        }
    }
    for f in &failed {
        tracing::error!("retention: cannot delete {f}");
    }
    let mut summary = format!(
        "deleted {n} recording{} ({}) by storage.retention",
        if n == 1 { "" } else { "s" },
        size(bytes)
    );
    if !failed.is_empty() {
        summary.push_str(&format!("; {} files could not be deleted", failed.len()));
    }
    Some(summary)
}

// ---------------------------------------------------------------------------------------
// The thread

pub struct DiskSettings {
    pub root: PathBuf,
    pub min_free: Option<u64>,
    pub retention: RetentionConfig,
    /// The disk the root was on at start-up.
    pub root_fs: RootFs,
    /// The ntfy reply topic's notices: the phone hears when the disk goes, turns
    /// read-only, or is back.
    pub notices: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The rig's power and heat sensors (`src/power.rs`), looked at every
    /// [`crate::power::LOOK_EVERY`].
    pub power: crate::power::Sensors,
}

/// Starts the `disk` thread; it ends when `stop` is set.
pub fn spawn(
    settings: DiskSettings,
    cameras: Vec<Arc<Camera>>,
    hub: Arc<StatusHub>,
    bus: CommandBus,
    status: Arc<Mutex<DiskStatus>>,
    clocks: Arc<dyn Clocks>,
    stop: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    {
        let mut s = status.lock();
        s.root = settings.root.display().to_string();
        s.min_free_bytes = settings.min_free;
    }
    std::thread::Builder::new()
        .name("disk".into())
        .spawn(move || {
            let _span = tracing::info_span!("disk").entered();
            run(&settings, &cameras, &hub, &bus, &status, &*clocks, &stop)
        })
}

fn run(
    settings: &DiskSettings,
    cameras: &[Arc<Camera>],
    hub: &StatusHub,
    bus: &CommandBus,
    status: &Mutex<DiskStatus>,
    clocks: &dyn Clocks,
    stop: &Shutdown,
) {
    let mut rate = RateMeter::default();
    let mut guard_state = Guard::default();
    // The first retention pass waits a little: the recorder is still starting.
    let mut retention = RetentionTimer::new(clocks.now().lsl + Duration::from_secs(2));
    let max_total = settings.retention.max_total.map(|b| b.0);
    let mut fit_checked = false;
    // Why the root does not lead to its disk, while it does not.
    let mut gone: Option<RootProblem> = None;
    let mut spans = WallSpans::default();
    let mut polls: u32 = 0;
    let mut power = crate::power::Watch::default();
    let power_every = (crate::power::LOOK_EVERY.as_millis() / POLL.as_millis()).max(1) as u32;
    while !stop.stopping() {
        polls = polls.wrapping_add(1);
        let pair = clocks.now();
        if let Some(step) = spans.observe(pair) {
            let why = clock_step(step);
            tracing::warn!("{why}");
            hub.add_warning(why);
        }
        let now = pair.lsl;
        if !settings.power.is_empty() && polls % power_every == 1 {
            let reading = settings.power.read();
            for change in power.update(now.as_secs_f64(), &reading) {
                // The control thread says it, and writes it into the recordings.
                let _ = bus.power(change, now);
            }
        }
        let written: u64 = cameras
            .iter()
            .map(|c| c.written.bytes_written.load(Relaxed))
            .sum();
        let bps = rate.add(now, written);
        let (recording, current_files) = hub.recording_and_files();
        let writing = !current_files.is_empty();
        let notice = |text: String| {
            if let Some(n) = &settings.notices {
                let _ = n.send(text);
            }
        };
        let table = if gone.is_some() || polls % MOUNT_TABLE_EVERY == 1 {
            MountTable::Read
        } else {
            MountTable::Skip
        };
        match settings.root_fs.check_reading(table) {
            Err(why) => {
                if gone.as_ref() != Some(&why) {
                    tracing::error!("{why}");
                    hub.add_warning(why.to_string());
                    notice(why.to_string());
                }
                gone = Some(why);
            }
            Ok(()) => {
                let back = match gone.take() {
                    Some(RootProblem::Gone(_)) => format!(
                        "recordings root {} is back on its disk ({}): recordings can start",
                        settings.root.display(),
                        settings.root_fs.top().display()
                    ),
                    Some(RootProblem::ReadOnly(_)) => format!(
                        "the recordings disk at {} is writable again: recordings can start",
                        settings.root_fs.top().display()
                    ),
                    None => String::new(),
                };
                if !back.is_empty() {
                    tracing::info!("{back}");
                    notice(back);
                }
            }
        }
        if let Some(why) = &gone {
            // Nothing else is measured there: free space below would be another disk's.
            let mut s = status.lock();
            s.free_bytes = 0;
            s.total_bytes = 0;
            s.write_rate_bytes_per_s = 0.0;
            s.seconds_left = None;
            s.guard = None;
            s.error = Some(why.to_string());
            s.read_only = matches!(why, RootProblem::ReadOnly(_));
            drop(s);
            clocks.sleep_until(now + POLL);
            continue;
        }
        if table == MountTable::Read {
            // Files a crash left that were finished or deleted since leave the status.
            hub.recheck_unfinished();
        }
        match free_space(&settings.root) {
            Ok((free, total)) => {
                let guard = settings
                    .min_free
                    .and_then(|m| below_guard(&settings.root, free, m));
                match (guard_state.poll(guard.is_some(), recording), &guard) {
                    (GuardStep::Low { newly, stop }, Some(why)) => {
                        if newly {
                            tracing::error!("{why}: stopping any recording, refusing new ones");
                            let refused = format!(
                                "{why}: recordings and clips are refused until there is room"
                            );
                            hub.add_warning(refused.clone());
                            // A recording stopped says so itself ("recording stopped: ...").
                            if stop.is_none() {
                                notice(refused);
                            }
                        }
                        if stop.is_some() {
                            let _ = bus.disk_full(why.clone());
                        }
                    }
                    (GuardStep::Recovered, _) => {
                        let room = format!(
                            "disk: {} free under {} again; recordings can start",
                            size(free),
                            settings.root.display()
                        );
                        tracing::info!("{room}");
                        notice(room);
                    }
                    _ => {}
                }
                let mut s = status.lock();
                s.free_bytes = free;
                s.total_bytes = total;
                s.write_rate_bytes_per_s = if writing { bps } else { 0.0 };
                s.seconds_left = if writing {
                    seconds_left(free, settings.min_free.unwrap_or(0), bps)
                } else {
                    None
                };
                s.guard = guard;
                s.error = None;
                s.read_only = false;
            }
            Err(e) => {
                let mut s = status.lock();
                if s.error.is_none() {
                    tracing::warn!(
                        "cannot read free space under {}: {e}",
                        settings.root.display()
                    );
                }
                s.error = Some(format!("cannot read free space: {e}"));
                s.read_only = false;
            }
        }
        if !fit_checked {
            fit_checked = true;
            if let (Some(total), Ok((free, _))) = (max_total, free_space(&settings.root)) {
                let recorded = scan(&settings.root).iter().map(|r| r.bytes).sum();
                let min_free = settings.min_free.unwrap_or(0);
                if let Some(why) = total_does_not_fit(total, recorded, free, min_free) {
                    tracing::warn!("{why}");
                    hub.add_warning(why);
                }
            }
        }
        if retention.due(now, written, writing, max_total) {
            if let Some(summary) = apply_retention(
                &settings.root,
                &settings.retention,
                &current_files,
                clocks.now(),
                &spans,
            ) {
                // Each recording deleted is said at warning level as it goes (and each
                // file that could not be, as an error): the pass's sum, for the status.
                tracing::info!("retention: {summary}");
                let unix = crate::clock::WallTime::now().as_secs_f64();
                status.lock().retention_last = Some(format!("{summary} (unix time {unix:.0})"));
            }
        }
        clocks.sleep_until(now + POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ByteSize, Days};

    fn rec(key: &str, mb: u64, days_old: f64, now: SystemTime) -> StoredRecording {
        StoredRecording {
            key: key.into(),
            files: vec![PathBuf::from(format!("/r/{key}.mkv"))],
            bytes: mb << 20,
            modified: now - Duration::from_secs_f64(days_old * 86_400.0),
        }
    }

    #[test]
    fn retention_with_a_total_looks_after_a_recording_and_as_the_disk_fills() {
        let t = |s: f64| LslTime::from_secs_f64(s);
        let total = Some(1000u64 << 20); // a hundredth: 10 MiB
        let mut r = RetentionTimer::new(t(2.0));
        assert!(!r.due(t(1.0), 0, false, total), "not while starting");
        assert!(r.due(t(2.0), 0, false, total), "the first pass");
        // A recording: 5 MiB written, not yet a hundredth; then it ends.
        assert!(!r.due(t(3.0), 1 << 20, true, total));
        assert!(!r.due(t(6.0), 5 << 20, true, total));
        assert!(
            !r.due(t(6.5), 5 << 20, false, total),
            "ended, but within 5 s"
        );
        assert!(
            r.due(t(7.0), 5 << 20, false, total),
            "ended: due once the gap is over"
        );
        assert!(!r.due(t(30.0), 5 << 20, false, total), "nothing new");
        // A clip written and closed between two polls.
        assert!(r.due(t(31.0), 6 << 20, false, total));
        // A long recording: every 10 MiB written.
        assert!(!r.due(t(40.0), 15 << 20, true, total));
        assert!(r.due(t(41.0), 16 << 20, true, total));
        assert!(!r.due(t(42.0), 17 << 20, true, total));
        // Fast writing: at most every 5 s.
        assert!(!r.due(t(45.0), 100 << 20, true, total));
        assert!(r.due(t(46.0), 101 << 20, true, total));
        // Without a total only the 10-minute passes (ages).
        let mut r = RetentionTimer::new(t(2.0));
        assert!(r.due(t(2.0), 0, false, None));
        assert!(!r.due(t(3.0), 1 << 30, true, None));
        assert!(
            !r.due(t(10.0), 2 << 30, false, None),
            "ended: ages need no pass"
        );
        assert!(!r.due(t(601.0), 2 << 30, false, None));
        assert!(r.due(t(602.0), 2 << 30, false, None));
    }

    #[test]
    fn a_total_larger_than_the_disk_can_hold_is_said() {
        let mib = |n: u64| n << 20;
        // 100 MiB recorded, 500 MiB free, 100 MiB kept free: 500 MiB for recordings.
        assert_eq!(
            total_does_not_fit(mib(500), mib(100), mib(500), mib(100)),
            None
        );
        let why = total_does_not_fit(mib(501), mib(100), mib(500), mib(100)).unwrap();
        assert!(why.contains("set max_total below 500 MiB"), "{why}");
        assert!(why.contains("disk guard will stop"), "{why}");
        // A disk fuller than min_free: only what is recorded counts.
        assert!(total_does_not_fit(mib(200), mib(100), mib(50), mib(100)).is_some());
    }

    #[test]
    fn retention_deletes_the_oldest_by_age_and_by_total() {
        let now = SystemTime::now();
        let recs = vec![
            rec("a", 100, 40.0, now),
            rec("b", 100, 35.0, now),
            rec("c", 100, 10.0, now),
            rec("d", 100, 1.0, now),
        ];
        let none = |_: &StoredRecording| false;
        let age = |r: &StoredRecording| now.duration_since(r.modified).unwrap();
        let by_age = RetentionConfig {
            max_age_days: Some(Days(30.0)),
            max_total: None,
        };
        assert_eq!(plan(&recs, &by_age, &age, &none), [0, 1]);
        let by_size = RetentionConfig {
            max_age_days: None,
            max_total: Some(ByteSize(250 << 20)),
        };
        assert_eq!(plan(&recs, &by_size, &age, &none), [0, 1]);
        let tight = RetentionConfig {
            max_age_days: None,
            max_total: Some(ByteSize(100 << 20)),
        };
        assert_eq!(plan(&recs, &tight, &age, &none), [0, 1, 2]);
        // A protected recording is skipped and still counts: the next oldest goes instead.
        let b_open = |r: &StoredRecording| r.key == "a";
        assert_eq!(plan(&recs, &by_size, &age, &b_open), [1, 2]);
        assert!(plan(&recs, &RetentionConfig::default(), &age, &none).is_empty());
    }

    /// A Pi without a real-time clock: hindsight starts and records with the clock 40
    /// days behind, then NTP steps it forward. The recording made before the step has
    /// files whose times look 40 days old; retention by age (30 days) must not delete it.
    /// A recording really that old, from before this process, goes. Real files on disk,
    /// their modification times set as the wrong clock would have.
    #[test]
    fn a_wall_clock_stepped_forward_does_not_age_recordings_made_before_the_step() {
        use crate::clock::WallTime;
        let day = Duration::from_secs(86_400);
        let tmp = tempfile::tempdir().unwrap();
        let real_now = SystemTime::now();
        let ns =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as i64;
        let lsl0 = LslTime::from_nanos(5_000_000_000_000);
        // The wall clock at start-up: 40 days behind.
        let behind = real_now - 40 * day;
        let at = |lsl_s: u64, wall: SystemTime| ClockPair {
            lsl: lsl0 + Duration::from_secs(lsl_s),
            wall: WallTime::from_nanos(ns(wall)),
        };
        let mut spans = WallSpans::default();
        // The disk thread's looks: 10 minutes on the wrong clock.
        for s in 0..=600 {
            assert_eq!(spans.observe(at(s, behind + Duration::from_secs(s))), None);
        }
        // A recording then (written at 5 minutes), and one from before this process,
        // really 45 days old (by the right clock: 5 days before the wrong one).
        let write = |stem: &str, modified: SystemTime| -> PathBuf {
            let dir = tmp.path().join("2026_10_01").join("video");
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join(format!("{stem}_cam0.mkv"));
            std::fs::write(&f, b"x").unwrap();
            let file = std::fs::File::options().write(true).open(&f).unwrap();
            file.set_modified(modified).unwrap();
            f
        };
        let fresh = write("rec_2026-10-01_10-05-00", behind + Duration::from_secs(300));
        let old = write("rec_2026-09-26_10-00-00", behind - 5 * day);
        // NTP steps the clock 40 days forward; an hour later, retention runs.
        let step = spans.observe(at(601, real_now + Duration::from_secs(1)));
        assert_eq!(
            clock_step(step.unwrap()),
            "the wall clock was set forward by 40 days (NTP, by hand, or the machine slept): \
             recordings made before are named and dated by the clock as it was; LSL times, \
             durations and retention's ages are not affected"
        );
        for s in 602..=4200 {
            assert_eq!(
                spans.observe(at(s, real_now + Duration::from_secs(s - 600))),
                None
            );
        }
        let now = at(4200, real_now + Duration::from_secs(3600));
        assert_eq!(spans.spans.len(), 2, "{spans:?}");
        let written = spans.age(behind + Duration::from_secs(300), now).unwrap();
        assert_eq!(written, Duration::from_secs(3900));
        assert_eq!(spans.age(behind - 5 * day, now), None);
        let policy = RetentionConfig {
            max_age_days: Some(Days(30.0)),
            max_total: None,
        };
        let said = apply_retention(tmp.path(), &policy, &[], now, &spans).unwrap();
        assert!(said.starts_with("deleted 1 recording "), "{said}");
        assert!(!old.exists(), "really 45 days old: deleted");
        assert!(fresh.exists(), "made 65 minutes ago: kept");
        // Without the spans (ages by file times alone), both would have gone.
        let again = write("rec_2026-09-26_10-00-00", behind - 5 * day);
        let said = apply_retention(tmp.path(), &policy, &[], now, &WallSpans::default());
        assert_eq!(
            said.as_deref().map(|s| s.starts_with("deleted 2 ")),
            Some(true)
        );
        assert!(!again.exists() && !fresh.exists());
    }

    /// Another hindsight sharing the root (another rig) writes a recording whose camera has
    /// been silent for days' worth of file time: retention keeps it; an old one goes.
    #[test]
    fn retention_keeps_a_recording_another_hindsight_is_writing() {
        use crate::clock::WallTime;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("2026_10_01").join("video");
        std::fs::create_dir_all(&dir).unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(90 * 86_400);
        let make = |stem: &str| -> (PathBuf, std::fs::File) {
            let f = dir.join(format!("{stem}_cam0.mkv"));
            let file = crate::writer::files::create_new(&f).unwrap();
            file.set_modified(long_ago).unwrap();
            (f, file)
        };
        let (writing, held) = make("rec_2026-10-01_10-00-00");
        let (done, closed) = make("rec_2026-10-01_09-00-00");
        drop(closed);
        let policy = RetentionConfig {
            max_age_days: Some(Days(30.0)),
            max_total: None,
        };
        let now = ClockPair {
            lsl: LslTime::from_nanos(1_000_000_000_000),
            wall: WallTime::now(),
        };
        let said = apply_retention(tmp.path(), &policy, &[], now, &WallSpans::default());
        assert!(said.unwrap().starts_with("deleted 1 recording "));
        assert!(!done.exists());
        assert!(
            writing.exists(),
            "deleted while another hindsight writes it"
        );
        drop(held);
        apply_retention(tmp.path(), &policy, &[], now, &WallSpans::default()).unwrap();
        assert!(!writing.exists(), "closed, it is as old as any");
    }

    #[test]
    fn the_guard_warns_once_stops_each_recording_once_and_sees_recovery() {
        let mut g = Guard::default();
        assert_eq!(g.poll(false, None), GuardStep::Fine);
        assert_eq!(
            g.poll(true, Some(1)),
            GuardStep::Low {
                newly: true,
                stop: Some(1)
            }
        );
        // Still low, the stop already asked for: not again (the recorder is stopping it).
        assert_eq!(
            g.poll(true, Some(1)),
            GuardStep::Low {
                newly: false,
                stop: None
            }
        );
        // A recording started while low (it is refused; should one slip in, it is stopped).
        assert_eq!(
            g.poll(true, Some(2)),
            GuardStep::Low {
                newly: false,
                stop: Some(2)
            }
        );
        assert_eq!(g.poll(false, None), GuardStep::Recovered);
        assert_eq!(g.poll(false, Some(3)), GuardStep::Fine);
    }

    /// The thread itself on a simulated clock: a full disk stops the recording in
    /// progress through the bus, once, and the write rate comes from simulated time.
    #[test]
    fn the_disk_thread_stops_the_recording_on_simulated_time() {
        use crate::clock::{ClockPair, SimulatedClocks, WallTime};
        let tmp = tempfile::tempdir().unwrap();
        let clocks = Arc::new(SimulatedClocks::new(ClockPair {
            lsl: LslTime::from_nanos(1_000_000_000_000),
            wall: WallTime::from_nanos(1_700_000_000_000_000_000),
        }));
        let hub = Arc::new(StatusHub::new("r".into(), Vec::new(), Vec::new()));
        hub.view.lock().recording = Some(crate::recorder::ActiveRecording {
            id: 7,
            trigger: clocks.now().lsl,
            pre_trigger: Duration::ZERO,
            until: None,
            origin: crate::recorder::Origin::new(crate::recorder::TriggerSource::Test, "t"),
        });
        let (bus, inbox) = crate::bus::command_bus();
        let settings = DiskSettings {
            root: tmp.path().to_path_buf(),
            // More than any disk has: the guard trips at once.
            min_free: Some(u64::MAX / 2),
            retention: RetentionConfig::default(),
            root_fs: RootFs::of(tmp.path()).unwrap(),
            notices: None,
            power: crate::power::Sensors::default(),
        };
        let status = Arc::new(Mutex::new(DiskStatus::default()));
        let stop = Shutdown::new();
        let join = spawn(
            settings,
            Vec::new(),
            hub.clone(),
            bus,
            status.clone(),
            clocks.clone(),
            stop.clone(),
        )
        .unwrap();
        let first = inbox.next_message(Duration::from_secs(10));
        assert!(
            matches!(&first, Some(crate::bus::ControlMsg::DiskFull(why)) if why.contains("storage.min_free")),
            "the recording is stopped"
        );
        // The simulated clock runs the polls without sleeping; no second stop for it.
        assert!(inbox.next_message(Duration::from_millis(200)).is_none());
        assert!(status.lock().guard.is_some());
        stop.advance(crate::shutdown::Stage::Stopping);
        join.join().unwrap();
    }

    #[test]
    fn the_write_rate_is_measured_over_the_window() {
        let t0 = LslTime::from_nanos(1_000_000_000_000);
        let mut m = RateMeter::default();
        assert_eq!(m.add(t0, 0), 0.0);
        let r = m.add(t0 + Duration::from_secs(2), 4_000_000);
        assert!((r - 2_000_000.0).abs() < 1.0, "{r}");
        // Older samples leave the window: the rate follows what is written now.
        let r = m.add(t0 + Duration::from_secs(8), 4_000_000);
        assert_eq!(r, 0.0);
        assert_eq!(
            seconds_left(600 << 20, 100 << 20, (1 << 20) as f64),
            Some(500.0)
        );
        assert_eq!(
            seconds_left(50 << 20, 100 << 20, (1 << 20) as f64),
            Some(0.0)
        );
        assert_eq!(seconds_left(600 << 20, 100 << 20, 0.0), None);
    }
}
