//! reseal: re-encrypt existing objects in place with a new server-side encryption mode.
pub mod crypto;
