//! reseal: re-encrypt existing objects in place with a new server-side encryption mode.
//!
//! The flow: [`manifest`] reads where the objects are, [`job`] records one task per object
//! in the job store, and [`cli`] is the only part that talks to the terminal. [`crypto`]
//! is the encryption engine of the local store.

pub mod cli;
pub mod crypto;
pub mod durable;
pub mod encoding;
pub mod errors;
pub mod job;
pub mod manifest;
pub mod metrics;
pub mod runner;
pub mod serve;
pub mod sse;
pub mod store;
pub mod targets;
pub mod time;
