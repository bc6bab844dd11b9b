//! A writer's queue: bounded for the camera's frames, never blocking and never losing what
//! the other threads tell a writer.
//!
//! Live frames and audio blocks come at the camera's and the microphone's rate; a writer
//! held up by its disk (an SD card slower than the video) lets them pile up, and they
//! are refused, counted, once [`WriterQueue::offer`] finds the frames' share of the
//! queue full. Everything else (a file to open or close, the buffered frames a recording
//! starts with, marks, rows for the events sidecar, the audio's notes) is the record of
//! what happened and comes at the rate people and events make it: [`WriterQueue::send`]
//! puts it in the room kept free for it ([`CONTROL_ROOM`]) and, should even that be
//! full, holds it in the backlog, in order, for the writer to take after what is queued.
//! Neither waits: the control thread, which answers every command, once waited in a
//! blocking send for a writer that was writing to a 200 kB/s disk, and for 100 s no
//! command was answered.
//!
//! Order: while the backlog holds anything, every message goes behind it (frames and
//! audio blocks are refused), and the writer takes the backlog only once the channel is
//! empty, so the writer sees messages in the order they were sent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendError, Sender, TrySendError};
use parking_lot::Mutex;

use super::WriterMsg;

/// Places of a writer's queue that live frames and audio blocks never take: the room for
/// what must not be lost. Past it, [`WriterQueue::send`] holds messages in the backlog.
pub const CONTROL_ROOM: usize = 256;

#[derive(Debug, Default)]
struct Backlog {
    /// Set while `held` has anything: frames and audio blocks are refused meanwhile (read
    /// without the lock, once per frame).
    any: AtomicBool,
    held: Mutex<VecDeque<WriterMsg>>,
}

/// A writer's queue, as every thread that sends to it holds it. What is sent with
/// [`WriterQueue::send`] wakes a writer that is between its [`super::WRITE_EVERY`]
/// batches, so that a command never waits for the next batch; live frames and audio
/// blocks ([`WriterQueue::offer`]) do not wake it.
#[derive(Clone, Debug)]
pub struct WriterQueue {
    tx: Sender<WriterMsg>,
    thread: Option<std::thread::Thread>,
    backlog: Arc<Backlog>,
}

/// The writer's end of its queue.
#[derive(Debug)]
pub struct Inbox {
    rx: Receiver<WriterMsg>,
    backlog: Arc<Backlog>,
}

/// A queue of `frames` places for frames and audio blocks and [`CONTROL_ROOM`] more, and
/// the writer's end of it. `thread`: the writer's, woken by [`WriterQueue::send`] (or
/// given later: [`WriterQueue::waking`]).
pub fn queue(frames: usize, thread: Option<std::thread::Thread>) -> (WriterQueue, Inbox) {
    let (tx, rx) = crossbeam_channel::bounded(frames + CONTROL_ROOM);
    let backlog = Arc::new(Backlog::default());
    (
        WriterQueue {
            tx,
            thread,
            backlog: backlog.clone(),
        },
        Inbox { rx, backlog },
    )
}

impl From<Sender<WriterMsg>> for WriterQueue {
    /// A queue with no thread to wake, read straight from the channel (a test reads it).
    /// Frames may fill all but [`CONTROL_ROOM`] of its places (all of an unbounded one's).
    fn from(tx: Sender<WriterMsg>) -> WriterQueue {
        WriterQueue {
            tx,
            thread: None,
            backlog: Arc::default(),
        }
    }
}

impl WriterQueue {
    /// The same queue, waking `thread` (the writer's) for what is sent.
    pub fn waking(mut self, thread: std::thread::Thread) -> WriterQueue {
        self.thread = Some(thread);
        self
    }

    /// Gives the writer a message it must get (anything but live frames and audio
    /// blocks), behind everything sent before; never waits. Fails only when the writer is
    /// gone.
    pub fn send(&self, msg: WriterMsg) -> Result<(), SendError<WriterMsg>> {
        let mut began = false;
        let r = {
            let mut held = self.backlog.held.lock();
            if held.is_empty() {
                match self.tx.try_send(msg) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Disconnected(m)) => Err(SendError(m)),
                    Err(TrySendError::Full(m)) => {
                        held.push_back(m);
                        self.backlog.any.store(true, Ordering::Release);
                        began = true;
                        Ok(())
                    }
                }
            } else {
                held.push_back(msg);
                Ok(())
            }
        };
        if began {
            tracing::warn!(
                "a writer's queue is full (its disk is slower than the video?): what it is \
                 told waits for it, in order"
            );
        }
        self.wake();
        r
    }

    /// Offers a live frame or an audio block: refused (`Full`) when the frames' share of
    /// the queue is taken, or while anything waits in the backlog (it goes first).
    pub fn offer(&self, msg: WriterMsg) -> Result<(), TrySendError<WriterMsg>> {
        let full = self.backlog.any.load(Ordering::Acquire)
            || self
                .tx
                .capacity()
                .is_some_and(|c| self.tx.len() + CONTROL_ROOM >= c);
        if full {
            return Err(TrySendError::Full(msg));
        }
        self.tx.try_send(msg)
    }

    /// Messages waiting in the channel and the backlog (for tests and the log).
    pub fn len(&self) -> usize {
        self.tx.len() + self.backlog.held.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn wake(&self) {
        if let Some(t) = &self.thread {
            t.unpark();
        }
    }
}

impl Inbox {
    /// The next message without waiting: the channel's, then, once it is empty, the
    /// backlog's. `None`: nothing waits.
    pub fn try_recv(&self) -> Option<WriterMsg> {
        self.rx.try_recv().ok().or_else(|| self.take_held())
    }

    /// The next message, waiting up to `timeout` for one. `Disconnected`: every sender
    /// is gone and nothing is left.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<WriterMsg, RecvTimeoutError> {
        if let Some(m) = self.try_recv() {
            return Ok(m);
        }
        // Nothing in the backlog: a sender puts something there only when the channel
        // is full, and then this wakes for the channel's messages.
        match self.rx.recv_timeout(timeout) {
            Err(RecvTimeoutError::Disconnected) => {
                self.take_held().ok_or(RecvTimeoutError::Disconnected)
            }
            r => r,
        }
    }

    fn take_held(&self) -> Option<WriterMsg> {
        if !self.backlog.any.load(Ordering::Acquire) {
            return None;
        }
        let mut held = self.backlog.held.lock();
        let m = held.pop_front();
        if held.is_empty() {
            self.backlog.any.store(false, Ordering::Release);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_wav(id: u64) -> WriterMsg {
        WriterMsg::NoWav { id }
    }

    fn id_of(m: WriterMsg) -> u64 {
        match m {
            WriterMsg::NoWav { id } | WriterMsg::AudioEnd { id } => id,
            other => panic!("{other:?}"),
        }
    }

    /// Frames (here audio ends standing in for them: anything offered) fill the frames'
    /// share and are refused past it; what must arrive still goes in, past the room kept
    /// for it too, without waiting, and reaches the writer in the order it was sent,
    /// after what was queued before it; nothing offered overtakes it meanwhile.
    #[test]
    fn what_must_arrive_never_waits_and_keeps_its_order() {
        let (q, inbox) = queue(4, None);
        for i in 0..4 {
            q.offer(WriterMsg::AudioEnd { id: i }).unwrap();
        }
        assert!(matches!(
            q.offer(WriterMsg::AudioEnd { id: 99 }),
            Err(TrySendError::Full(_))
        ));
        // The room kept, and past it the backlog: 300 messages, none waits.
        let t = std::time::Instant::now();
        for i in 0..300 {
            q.send(no_wav(100 + i)).unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(q.len(), 304);
        assert!(q.backlog.any.load(Ordering::Acquire));
        // The writer takes a few: there is room in the channel, but an offer still waits
        // behind the backlog, and a send goes behind it.
        for i in 0..4 {
            assert_eq!(id_of(inbox.try_recv().unwrap()), i);
        }
        assert!(matches!(
            q.offer(WriterMsg::AudioEnd { id: 98 }),
            Err(TrySendError::Full(_))
        ));
        q.send(no_wav(400)).unwrap();
        let mut got = Vec::new();
        while let Some(m) = inbox.try_recv() {
            got.push(id_of(m));
        }
        let expected: Vec<u64> = (100..400).chain([400]).collect();
        assert_eq!(got, expected);
        // Emptied: frames go again.
        assert!(!q.backlog.any.load(Ordering::Acquire));
        q.offer(WriterMsg::AudioEnd { id: 5 }).unwrap();
        assert_eq!(id_of(inbox.try_recv().unwrap()), 5);
    }

    /// The senders gone, the writer still gets what waits in the backlog, then hears that
    /// they are gone; a send to a writer that is gone fails.
    #[test]
    fn the_backlog_outlives_its_senders_and_a_gone_writer_is_said() {
        let (q, inbox) = queue(0, None);
        for i in 0..CONTROL_ROOM as u64 + 3 {
            q.send(no_wav(i)).unwrap();
        }
        drop(q);
        let mut n = 0;
        loop {
            match inbox.recv_timeout(Duration::from_millis(10)) {
                Ok(m) => {
                    assert_eq!(id_of(m), n);
                    n += 1;
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("timed out with senders gone"),
            }
        }
        assert_eq!(n, CONTROL_ROOM as u64 + 3);

        let (q, inbox) = queue(1, None);
        drop(inbox);
        assert!(q.send(no_wav(1)).is_err());
        assert!(matches!(
            q.offer(no_wav(2)),
            Err(TrySendError::Disconnected(_))
        ));
    }

    /// A writer asleep on an empty queue wakes for a message sent from another thread.
    #[test]
    fn a_waiting_writer_gets_what_is_sent() {
        let (q, inbox) = queue(2, None);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            q.send(no_wav(7)).unwrap();
        });
        let m = inbox.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(id_of(m), 7);
        sender.join().unwrap();
    }
}
