//! reseal: re-encrypt existing objects in place with a new server-side encryption mode.
//!
//! The flow: [`manifest`] reads where the objects are, [`job`] records one task per object
//! in the job store, and [`cli`] is the only part that talks to the terminal.

pub mod cli;
pub mod job;
pub mod manifest;
pub mod sse;
