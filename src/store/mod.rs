//! The local store: reseal's own object store on a filesystem, where reseal is the server
//! and does the server-side encryption itself with the [`crate::crypto`] engine.

pub mod atomic;
pub mod keys;
