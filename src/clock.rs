//! Clocks. One type per clock, conversions in one place (see `design/time.md`).
//!
//! * [`LslTime`]: the master clock. CLOCK_MONOTONIC in integer nanoseconds, which is what
//!   liblsl's `local_clock()` reads on Linux (`std::chrono::steady_clock`). Every frame's
//!   capture time, every command's arrival time and every timestamp pushed to LSL is an
//!   `LslTime`. Integer nanoseconds so that sums and differences are exact; converted to
//!   `f64` seconds only at the LSL and file boundaries.
//! * [`WallTime`]: CLOCK_REALTIME in nanoseconds since the Unix epoch. For humans and file
//!   names only; it can jump (NTP), so nothing is ordered or measured with it.
//!
//! Sources with their own device clock convert to `LslTime` in their own module, through
//! [`ClockPair`], which samples both clocks back to back.

use std::fmt;
use std::time::Duration;

/// A point on the LSL clock (CLOCK_MONOTONIC), in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LslTime(i64);

impl LslTime {
    pub const fn from_nanos(nanos: i64) -> Self {
        LslTime(nanos)
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        LslTime((secs * 1e9).round() as i64)
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Seconds, as liblsl wants them (`lsl::local_clock()` scale).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Reads CLOCK_MONOTONIC now.
    pub fn now() -> Self {
        LslTime(read_clock(libc::CLOCK_MONOTONIC))
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: LslTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// Signed difference in nanoseconds.
    pub const fn nanos_since(self, other: LslTime) -> i64 {
        self.0 - other.0
    }
}

/// Saturating: an LSL time plus a duration never wraps.
impl std::ops::Add<Duration> for LslTime {
    type Output = LslTime;
    fn add(self, d: Duration) -> LslTime {
        LslTime(
            self.0
                .saturating_add(d.as_nanos().min(i64::MAX as u128) as i64),
        )
    }
}

impl std::ops::Sub<Duration> for LslTime {
    type Output = LslTime;
    fn sub(self, d: Duration) -> LslTime {
        LslTime(
            self.0
                .saturating_sub(d.as_nanos().min(i64::MAX as u128) as i64),
        )
    }
}

impl fmt::Debug for LslTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LslTime({})", fmt_secs(self.0))
    }
}

impl fmt::Display for LslTime {
    /// Seconds with nanosecond precision, the form written to sidecars and Tags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_secs(self.0))
    }
}

/// A point on the wall clock (CLOCK_REALTIME), nanoseconds since 1970-01-01 UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime(i64);

impl WallTime {
    pub const fn from_nanos(nanos: i64) -> Self {
        WallTime(nanos)
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Seconds since 1970. Whole seconds and the fraction are converted apart: the
    /// nanosecond count itself is too large for an f64 to hold exactly.
    pub fn as_secs_f64(self) -> f64 {
        self.0.div_euclid(1_000_000_000) as f64 + self.0.rem_euclid(1_000_000_000) as f64 / 1e9
    }

    pub fn now() -> Self {
        WallTime(read_clock(libc::CLOCK_REALTIME))
    }

    /// Local calendar time, for file and folder names.
    pub fn to_local(self) -> chrono::DateTime<chrono::Local> {
        let utc = chrono::DateTime::<chrono::Utc>::from_timestamp(
            self.0.div_euclid(1_000_000_000),
            self.0.rem_euclid(1_000_000_000) as u32,
        )
        .unwrap_or_default();
        utc.with_timezone(&chrono::Local)
    }
}

impl fmt::Debug for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WallTime({})", fmt_secs(self.0))
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_secs(self.0))
    }
}

/// Both clocks read back to back; the pair maps one onto the other.
///
/// The LSL clock is read twice around the wall-clock read and the midpoint kept, so the
/// pairing error is at most half the (sub-microsecond) gap between the reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockPair {
    pub lsl: LslTime,
    pub wall: WallTime,
}

impl ClockPair {
    pub fn now() -> Self {
        let a = LslTime::now();
        let wall = WallTime::now();
        let b = LslTime::now();
        ClockPair {
            lsl: LslTime((a.0 + b.0) / 2),
            wall,
        }
    }

    /// The wall-clock time at which the LSL clock read `t`, by this pairing.
    pub fn wall_at(&self, t: LslTime) -> WallTime {
        WallTime(self.wall.0 + (t.0 - self.lsl.0))
    }
}

/// The clocks that time-dependent code reads, so that it can be driven by a simulated
/// clock in tests instead of by sleeping.
pub trait Clocks: Send + Sync + 'static {
    fn now(&self) -> ClockPair;
    /// Sleeps until the LSL clock reaches `t` (returns at once if it already has).
    fn sleep_until(&self, t: LslTime);
}

/// The machine's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealClocks;

impl Clocks for RealClocks {
    fn now(&self) -> ClockPair {
        ClockPair::now()
    }

    fn sleep_until(&self, t: LslTime) {
        // clock_nanosleep with an absolute deadline: no drift from wake-up latency
        // accumulating over a schedule.
        let ts = libc::timespec {
            tv_sec: t.0.div_euclid(1_000_000_000) as libc::time_t,
            tv_nsec: t.0.rem_euclid(1_000_000_000) as libc::c_long,
        };
        loop {
            // SAFETY: `ts` is a valid timespec; the remainder pointer may be null with
            // TIMER_ABSTIME.
            let rc = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                )
            };
            if rc != libc::EINTR {
                return;
            }
        }
    }
}

/// A clock that only moves when told to: for tests of time-dependent logic.
#[derive(Debug)]
pub struct SimulatedClocks {
    now: parking_lot::Mutex<ClockPair>,
}

impl SimulatedClocks {
    pub fn new(start: ClockPair) -> Self {
        SimulatedClocks {
            now: parking_lot::Mutex::new(start),
        }
    }

    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock();
        now.lsl = now.lsl + d;
        now.wall = WallTime(now.wall.0 + d.as_nanos() as i64);
    }
}

impl Clocks for SimulatedClocks {
    fn now(&self) -> ClockPair {
        *self.now.lock()
    }

    /// Simulated time jumps straight to the deadline.
    fn sleep_until(&self, t: LslTime) {
        let mut now = self.now.lock();
        if t > now.lsl {
            let d = t.0 - now.lsl.0;
            now.lsl = t;
            now.wall = WallTime(now.wall.0 + d);
        }
    }
}

/// A thread's CPU-time clock (`pthread_getcpuclockid`): how long that thread has run on a
/// CPU, readable from any thread of the process with one `clock_gettime`. The control
/// thread reads each capture thread's once a second ([`CpuMeter`]), so that frames lost
/// to a capture thread that cannot keep up (a JPEG encoder too slow for the rate) are
/// said to be that, and `hindsight check` reads its own.
///
/// With it goes the thread's id, for the time it spent ready to run but waiting for a CPU
/// that other work held (`/proc/self/task/<tid>/schedstat`, where the kernel keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadCpuClock {
    id: libc::clockid_t,
    tid: libc::pid_t,
}

impl ThreadCpuClock {
    /// The calling thread's clock.
    pub fn of_this_thread() -> Option<ThreadCpuClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self() names the calling thread, which is alive; `id` is a
        // valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        (rc == 0).then_some(ThreadCpuClock { id, tid })
    }

    /// How long the thread has been ready to run but waiting for a CPU (the scheduler's
    /// run-queue time), where the kernel keeps it; `None` elsewhere or once it has ended.
    pub fn waited(self) -> Option<Duration> {
        waited_in(&self.schedstat()?)
    }

    /// The thread's `schedstat` file, opened: read again from its start, it says the
    /// time now (opening it each time walks `/proc`, which costs more than the read).
    fn schedstat(self) -> Option<std::fs::File> {
        std::fs::File::open(format!("/proc/self/task/{}/schedstat", self.tid)).ok()
    }

    /// The thread's time on a CPU so far; `None` once it has ended (and the kernel has
    /// released it, a moment after it is joined).
    pub fn read(self) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; a clock id of a thread that has ended
        // gives EINVAL, not undefined behaviour.
        let rc = unsafe { libc::clock_gettime(self.id, &mut ts) };
        #[allow(clippy::useless_conversion)]
        let (secs, nanos) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
        (rc == 0).then(|| Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32))
    }
}

/// A thread's share of one core over windows of at least [`CpuMeter::WINDOW`] of the LSL
/// clock: 1.0 is a thread that never waited. And the share it wanted: that plus the time
/// it was ready but waited for a CPU other work held (1.0: it never waited for anything
/// else, such as the next frame).
#[derive(Debug)]
pub struct CpuMeter {
    clock: ThreadCpuClock,
    /// Its `schedstat`, kept open (`None` where the kernel keeps none).
    schedstat: Option<std::fs::File>,
    /// When, its CPU time, its run-queue time.
    last: Option<(LslTime, Duration, Option<Duration>)>,
    share: Option<f64>,
    wanted: Option<f64>,
}

impl CpuMeter {
    /// About a second: the control thread looks once a second, a little early or late.
    pub const WINDOW: Duration = Duration::from_millis(900);

    pub fn new(clock: ThreadCpuClock) -> CpuMeter {
        CpuMeter {
            clock,
            schedstat: clock.schedstat(),
            last: None,
            share: None,
            wanted: None,
        }
    }

    /// Reads the clock if a window has passed since the last reading (or none was taken)
    /// and returns the share over the last whole window (`None` before the first one, or
    /// once the thread has ended).
    pub fn sample(&mut self, now: LslTime) -> Option<f64> {
        let due = self
            .last
            .is_none_or(|(at, _, _)| now.saturating_since(at) >= Self::WINDOW);
        if due {
            let Some(cpu) = self.clock.read() else {
                self.last = None;
                self.share = None;
                self.wanted = None;
                return None;
            };
            let waited = self.schedstat.as_ref().and_then(waited_in);
            if let Some((at, before, waited_before)) = self.last {
                let wall = now.saturating_since(at).as_secs_f64();
                let share = cpu.saturating_sub(before).as_secs_f64() / wall;
                let wait = match (waited, waited_before) {
                    (Some(w), Some(b)) => w.saturating_sub(b).as_secs_f64() / wall,
                    _ => 0.0,
                };
                self.share = Some(share);
                self.wanted = Some(share + wait);
            }
            self.last = Some((now, cpu, waited));
        }
        self.share
    }

    /// The share it wanted over the last whole window: its share, and the time it was
    /// ready to run but waited for a CPU (the share alone where the kernel keeps no such
    /// time).
    pub fn wanted(&self) -> Option<f64> {
        self.wanted
    }

    /// The share over the last whole window, as [`CpuMeter::sample`] last found it.
    pub fn share(&self) -> Option<f64> {
        self.share
    }
}

/// The run-queue time in a thread's `schedstat` (its second figure, in ns), read from
/// the file's start.
fn waited_in(file: &std::fs::File) -> Option<Duration> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let ns: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn read_clock(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clock ids exist on every Linux.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    // `time_t` and `c_long` are 32 bits on 32-bit Raspberry Pi OS.
    #[allow(clippy::useless_conversion)]
    let (secs, nanos) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    secs * 1_000_000_000 + nanos
}

fn fmt_secs(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsl_time_prints_exact_nanoseconds() {
        assert_eq!(
            LslTime::from_nanos(12_000_000_345).to_string(),
            "12.000000345"
        );
        assert_eq!(
            LslTime::from_nanos(-1_500_000_000).to_string(),
            "-1.500000000"
        );
    }

    #[test]
    fn monotonic_clock_advances_and_pairs_with_wall_clock() {
        // A pair, and how long taking it took: a thread kept from the CPU while it reads
        // (an emulated ARM build on a busy machine) pairs less closely, by at most that.
        let pair = || {
            let before = LslTime::now();
            let p = ClockPair::now();
            (p, LslTime::now().nanos_since(before))
        };
        let (a, took_a) = pair();
        std::thread::sleep(Duration::from_millis(5));
        let (b, took_b) = pair();
        let dl = b.lsl.nanos_since(a.lsl);
        let dw = b.wall.as_nanos() - a.wall.as_nanos();
        assert!(dl >= 5_000_000, "monotonic advanced {dl} ns");
        // Both clocks tick at the same rate over 5 ms (no NTP step expected here).
        let bound = took_a + took_b + 1_000_000;
        assert!(
            (dl - dw).abs() <= bound,
            "lsl {dl} ns vs wall {dw} ns (pairs taken in {took_a} and {took_b} ns)"
        );
        assert_eq!(a.wall_at(b.lsl).as_nanos() - a.wall.as_nanos(), dl);
    }

    #[test]
    fn absolute_sleep_reaches_its_deadline() {
        let clocks = RealClocks;
        let deadline = LslTime::now() + Duration::from_millis(20);
        clocks.sleep_until(deadline);
        assert!(LslTime::now() >= deadline);
    }

    #[test]
    fn simulated_clock_moves_only_when_told() {
        let start = ClockPair {
            lsl: LslTime::from_nanos(1_000),
            wall: WallTime::from_nanos(5_000),
        };
        let c = SimulatedClocks::new(start);
        assert_eq!(c.now(), start);
        c.sleep_until(LslTime::from_nanos(3_000));
        assert_eq!(c.now().lsl, LslTime::from_nanos(3_000));
        assert_eq!(c.now().wall, WallTime::from_nanos(7_000));
        c.advance(Duration::from_nanos(10));
        assert_eq!(c.now().lsl, LslTime::from_nanos(3_010));
    }

    /// Spins until the calling thread's own CPU clock says it has run `cpu`.
    fn spin_for(cpu: Duration) {
        let own = ThreadCpuClock::of_this_thread().unwrap();
        let start = own.read().unwrap();
        let mut x = 0u64;
        while own.read().unwrap() - start < cpu {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    use std::time::Instant;

    #[test]
    fn another_threads_cpu_time_counts_its_running_and_not_its_sleeping() {
        let (tx, rx) = std::sync::mpsc::channel();
        // The worker spins for each duration it is sent, sleeping between; it ends when
        // the channel closes.
        let (spin, todo) = std::sync::mpsc::channel::<Duration>();
        let worker = std::thread::spawn(move || {
            tx.send(ThreadCpuClock::of_this_thread().unwrap()).unwrap();
            for cpu in todo {
                spin_for(cpu);
                tx.send(ThreadCpuClock::of_this_thread().unwrap()).unwrap();
            }
        });
        let clock = rx.recv().unwrap();
        spin.send(Duration::from_millis(60)).unwrap();
        assert_eq!(rx.recv().unwrap(), clock, "one thread, one clock");
        let ran = clock.read().unwrap();
        assert!(
            ran >= Duration::from_millis(60),
            "read {ran:?} after 60 ms of spinning"
        );
        std::thread::sleep(Duration::from_millis(150));
        let slept = clock.read().unwrap() - ran;
        assert!(
            slept < Duration::from_millis(20),
            "{slept:?} of CPU while asleep"
        );
        // The meter: no share before a whole window, then what the thread ran over it
        // (the windows' ends are given, so the share is the CPU time it ran over 1 s).
        let mut meter = CpuMeter::new(clock);
        let t0 = LslTime::now();
        assert_eq!(meter.sample(t0), None);
        assert_eq!(
            meter.sample(t0 + Duration::from_millis(500)),
            None,
            "not a window yet"
        );
        let asleep = meter.sample(t0 + CpuMeter::WINDOW).unwrap();
        assert!(asleep < 0.02, "a sleeping thread's share: {asleep}");
        spin.send(Duration::from_millis(300)).unwrap();
        rx.recv().unwrap();
        assert_eq!(
            meter.sample(t0 + CpuMeter::WINDOW + Duration::from_millis(10)),
            Some(asleep)
        );
        let busy = meter.sample(t0 + CpuMeter::WINDOW * 2).unwrap();
        assert!(
            (0.3..0.4).contains(&busy),
            "300 ms of CPU in a window of 1 s: {busy}"
        );
        assert_eq!(meter.share(), Some(busy));
        drop(spin);
        worker.join().unwrap();
        // Its clock goes once the kernel has released the thread, a moment after join.
        let joined = Instant::now();
        while clock.read().is_some() {
            assert!(
                joined.elapsed() < Duration::from_secs(5),
                "a thread that ended has no time"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(meter.sample(t0 + CpuMeter::WINDOW * 3), None);
    }

    /// Two threads that never wait, on one core: each runs about half the time and waits
    /// for the CPU the other holds the rest. The meter says it wanted the CPU all along.
    #[test]
    fn a_thread_kept_from_the_cpu_by_other_work_is_seen_to_want_it() {
        let core = core_affinity::CoreId { id: 0 };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spin = move |stop: std::sync::Arc<std::sync::atomic::AtomicBool>| {
            move || {
                core_affinity::set_for_current(core);
                let clock = ThreadCpuClock::of_this_thread().unwrap();
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                clock
            }
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let a = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                core_affinity::set_for_current(core);
                tx.send(ThreadCpuClock::of_this_thread().unwrap()).unwrap();
                spin(stop)()
            })
        };
        let b = std::thread::spawn(spin(stop.clone()));
        let clock = rx.recv().unwrap();
        if clock.waited().is_none() {
            eprintln!("this kernel keeps no run-queue time: nothing to check");
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let mut meter = CpuMeter::new(clock);
        std::thread::sleep(Duration::from_millis(100));
        let t0 = LslTime::now();
        meter.sample(t0);
        std::thread::sleep(Duration::from_millis(1500));
        let share = meter.sample(LslTime::now()).unwrap();
        let wanted = meter.wanted().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        a.join().unwrap();
        b.join().unwrap();
        assert!(share < 0.75, "it ran {share} of the time on a shared core");
        assert!(wanted > 0.9, "it wanted the CPU {wanted} of the time");
    }
}
