//! hindsight: an event-triggered scientific recorder.
//!
//! One box per thread; the file tree follows the data:
//!
//! ```text
//!  source/ ──► capture (pinned thread) ──► ring (pre-trigger, RAM) ──┐
//!  camera      seq numbers, capture time                            │ on start: buffered
//!              on the LSL clock (clock)                             │ frames, then live
//!                                                                   ▼
//!  api/, trigger/ (ntfy), ──► control ──► writer/ thread per camera
//!  dashboard/ (keys),          (recorder        ├─ mkv   (sans-IO muxer)
//!  lsl/markers                 state machine)   ├─ sidecar (frames.csv)
//!       CommandBus: same commands      │        └─ files  (names, fsync)
//!       from every trigger source      │
//!  disk (guard, retention) ──► stop    │
//!  status snapshot ◄───────────────────┘
//!  (API JSON, dashboard, LSL status outlets, systemd STATUS=; service: notify, watchdog)
//! ```
//!
//! Frames are immutable after capture and their JPEG bytes live in the ring's
//! preallocated storage; the writer receives references, never copies. See
//! `design/time.md` for what a timestamp means and `design/files.md` for the files.

pub mod api;
pub mod audio;
pub mod bench;
pub mod bus;
pub mod capture;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod dashboard;
pub mod devices;
pub mod disk;
pub mod event;
pub mod flaps;
pub mod frame;
pub mod hub;
pub mod logging;
pub mod lsl;
pub mod numbers;
pub mod power;
pub mod recorder;
pub mod recordings;
pub mod repair;
pub mod report;
pub mod ring;
pub mod run;
pub mod service;
pub mod shutdown;
pub mod source;
pub mod status;
pub mod storage;
pub mod trigger;
pub mod writer;
