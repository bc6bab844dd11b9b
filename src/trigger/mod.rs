//! Trigger sources that are not the local API: ntfy (and the text grammar all text
//! triggers share). The LSL marker trigger lives with the other LSL code in `crate::lsl`.

pub mod grammar;
pub mod ntfy;
