//! One shutdown handle for the whole process, in stages, so that every thread stops at
//! its turn and the order is written down once (`design/architecture.md`):
//!
//! 1. [`Stage::Running`].
//! 2. [`Stage::Finishing`]: asked for (a signal, the dashboard's Q). The control thread
//!    stops the recording in progress and waits for its files; cameras keep capturing
//!    (frames exposed before the stop are still on their way).
//! 3. [`Stage::Stopping`]: the files are finished. Capture, triggers, the disk guard and
//!    the service watchdog end.
//! 4. [`Stage::Draining`]: the writers are done. Audio ends its WAV files with what has
//!    arrived.
//! 5. [`Stage::Closing`]: everything else has ended. LSL pushes what it holds (the last
//!    frames, the last events) and closes its outlets.
//!
//! Threads poll [`Shutdown::reached`] in their loops (each loop comes round at least
//! every 250 ms) or block in [`Shutdown::wait_for`]. Stages only move forward.
//!
//! What does not belong here: what each thread does when its stage comes (its own loop).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Where the process is in its shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    Running = 0,
    Finishing = 1,
    Stopping = 2,
    Draining = 3,
    Closing = 4,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            0 => Stage::Running,
            1 => Stage::Finishing,
            2 => Stage::Stopping,
            3 => Stage::Draining,
            _ => Stage::Closing,
        }
    }
}

#[derive(Default)]
struct Inner {
    stage: AtomicU8,
    lock: Mutex<()>,
    moved: Condvar,
}

/// See the module documentation. Cheap to clone; every clone is the same handle.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// The stage now.
    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.inner.stage.load(Ordering::Acquire))
    }

    /// Whether the shutdown has reached `stage` (or gone past it).
    pub fn reached(&self, stage: Stage) -> bool {
        self.stage() >= stage
    }

    /// Whether the threads that feed the pipeline (capture, triggers, the disk guard, the
    /// watchdog) should end: [`Stage::Stopping`] reached.
    pub fn stopping(&self) -> bool {
        self.reached(Stage::Stopping)
    }

    /// Moves to `stage`, if that is forward, and wakes every waiter.
    pub fn advance(&self, stage: Stage) {
        let _guard = self.inner.lock.lock();
        self.inner.stage.fetch_max(stage as u8, Ordering::AcqRel);
        self.inner.moved.notify_all();
    }

    /// Waits until `stage` is reached, at most `timeout`; whether it was.
    pub fn wait_for(&self, stage: Stage, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.inner.lock.lock();
        while !self.reached(stage) {
            if self
                .inner
                .moved
                .wait_until(&mut guard, deadline)
                .timed_out()
            {
                return self.reached(stage);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_only_move_forward_and_wake_waiters() {
        let s = Shutdown::new();
        assert_eq!(s.stage(), Stage::Running);
        assert!(!s.wait_for(Stage::Finishing, Duration::from_millis(1)));
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait_for(Stage::Stopping, Duration::from_secs(10)))
        };
        s.advance(Stage::Stopping);
        assert!(waiter.join().unwrap());
        s.advance(Stage::Finishing);
        assert_eq!(s.stage(), Stage::Stopping, "never backwards");
        assert!(s.reached(Stage::Finishing));
        assert!(!s.reached(Stage::Draining));
        s.advance(Stage::Closing);
        assert!(s.reached(Stage::Draining));
    }
}
