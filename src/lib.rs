//! reseal: re-encrypt existing objects in place with a new server-side encryption mode.
//!
//! The map of the crate, in the order work flows (an arrow: "uses"; nothing uses what is
//! to its left):
//!
//! ```text
//! cli ──► manifest ──► job ──► runner ──► targets ──► store ──► crypto
//!  │                    ▲        │          │           ▲
//!  │                    └────────┘ results  └─ s3 (aws-sdk-s3)
//!  ├──► serve ─────────────────────────────────────────┘
//!  ├──► metrics ◄── runner, targets, serve
//!  ├──► estimate ──► job, targets::s3::plan
//!  └──► sweep ──► job
//! shared by all: sse, time, encoding, errors, durable
//! ```
//!
//! - [`manifest`] reads where the objects are (S3 Inventory in CSV, Parquet or ORC, plain
//!   CSV lists) into a stream of rows, checking every checksum and row; knows nothing of
//!   jobs.
//! - [`job`] the model (jobs, tasks, statuses, the validated `JobSpec`, where a job's
//!   objects are) and the job store behind one trait (SQLite, PostgreSQL), with the
//!   ingestion of a manifest into tasks; knows nothing of targets.
//! - [`runner`] leases a job's tasks, runs them against a `dyn Target`, records results,
//!   follows operators' commands and writes completion reports; knows neither S3 nor
//!   the local store.
//! - [`targets`] where objects live: the `Target` trait, the local store and S3; a target
//!   is built from what it needs (the wanted encryption and keys), never from a job.
//! - [`store`] reseal's own object store on a file system; [`crypto`] its AES-256-GCM
//!   engine, keys and sealing; neither knows jobs or S3.
//! - [`serve`] an S3 endpoint (s3s) in front of the store.
//! - [`cli`] the commands: parses, validates, wires the rest together; the only module
//!   that prints.
//! - [`metrics`] this process's Prometheus metrics and their endpoint.
//! - [`estimate`] what a job will cost before it runs, each object planned with the S3
//!   target's own table; [`sweep`] which inventory a sweep takes, and the census of its
//!   job before and after (with its Prometheus textfile). Both compute; neither prints.
//! - Shared vocabulary and utilities: [`sse`] (encryption modes and specs, SSE-C keys),
//!   [`time`], [`encoding`] (object keys, hex), [`errors`] (errors on one line),
//!   [`durable`] (atomic, fsynced file writes).

pub mod cli;
pub mod crypto;
pub mod durable;
pub mod encoding;
pub mod errors;
pub mod estimate;
pub mod job;
pub mod manifest;
pub mod metrics;
pub mod runner;
pub mod serve;
pub mod sse;
pub mod store;
pub mod sweep;
pub mod targets;
pub mod time;
