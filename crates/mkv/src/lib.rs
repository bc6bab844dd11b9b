//! Live, crash-safe Matroska for a recorder: MJPEG video with each frame's real capture
//! time and optional 16-bit PCM audio, written so that a file cut at any byte plays,
//! and read back so that a cut file can be finished exactly as a clean finish would.
//!
//! - [`ebml`]: the EBML primitives both sides share (element IDs, sizes, a bounded
//!   reader for untrusted input).
//! - [`mux`]: the sans-IO muxer. It appends bytes to the caller's buffer and returns
//!   patches for bytes already written; all I/O policy stays with the caller.
//! - [`read`]: is a file finished, and if not, the plan that finishes it (and the one
//!   function that writes it).
//! - [`fixture`]: recordings made in memory with the muxer, as the tests of this crate
//!   and of its users build them.
//!
//! What does not belong here: files, threads, clocks, frame metadata, the recorder's
//! tags. The crate knows Matroska and nothing of the program that uses it; it imports
//! nothing from it.

pub mod ebml;
pub mod fixture;
pub mod mux;
pub mod read;
