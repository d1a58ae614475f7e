//! The job store's ceiling: leasing and recording every task of one job by W workers whose
//! target does nothing (inspect says "not compliant", the write succeeds at once), so that
//! what is measured is the job store and the runner's bookkeeping, not a server.
//!
//!   cargo bench --bench bookkeeping -- --db jobs.db --tasks 1000000 --workers 1
//!   cargo bench --bench bookkeeping -- --db postgres://reseal@127.0.0.1:PORT/bench --workers 4
//!
//! Each worker is a runner of its own with its own connection pool, as separate processes
//! would be; they share this process's two cores with nothing else but the database.
use std::sync::Arc;
use std::time::Instant;

use reseal::job::{JobSpec, NewJob};
use reseal::runner::{self, Progress, RunOptions, Shutdown};
use reseal::sse::{SseMode, SseSpec};
use reseal::targets::{ObjectRef, ObjectState, Target, TargetError, WriteMethod, Written};

struct Noop;

#[async_trait::async_trait]
impl Target for Noop {
    async fn inspect(&self, _: &ObjectRef) -> Result<ObjectState, TargetError> {
        Ok(ObjectState {
            etag: "\"e\"".into(),
            size: 1,
            mode: SseMode::NotSse,
            kms_key_id: None,
            key_version: None,
            bucket_key: false,
            sse_c_key_md5: None,
            version_id: None,
            extra: None,
        })
    }

    fn is_compliant(&self, _: &ObjectState) -> bool {
        false
    }

    async fn reencrypt(&self, _: &ObjectRef, _: &ObjectState) -> Result<Written, TargetError> {
        Ok(Written {
            method: WriteMethod::Copy,
            etag: None,
            new_version: None,
            after: None,
            notes: Vec::new(),
        })
    }
}

struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &reseal::job::Job, _: &reseal::job::TaskCounts) {}
    fn task_done(&self, _: &reseal::job::TaskResult, _: u64) {}
    fn message(&self, _: &str) {}
    fn finish(&self) {}
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let db = arg("--db").expect("--db PATH|URL");
    let tasks: usize = arg("--tasks").map_or(1_000_000, |v| v.parse().unwrap());
    let workers: usize = arg("--workers").map_or(1, |v| v.parse().unwrap());
    let concurrency: usize = arg("--concurrency").map_or(64, |v| v.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("list.csv");
        let rows: String = (0..tasks)
            .map(|i| format!("bench,objects/{:02}/{i:09}.bin\n", i % 97))
            .collect();
        std::fs::write(&manifest, rows).unwrap();
        let store = reseal::job::open_store(&db).await.unwrap();
        let new = NewJob {
            spec: JobSpec {
                sse: SseSpec::SseS3,
                source_sse_c: None,
                bucket_key: false,
                filter: Default::default(),
                confirmation_required: false,
                trust_inventory: false,
                report: None,
            },
            target: None,
            priority: 10,
            description: "bookkeeping bench".into(),
            manifest_location: manifest.display().to_string(),
        };
        let started = Instant::now();
        let (job, _) = reseal::job::create_job(store.as_ref(), new, manifest)
            .await
            .unwrap();
        let ingest = started.elapsed().as_secs_f64();

        let options = RunOptions {
            concurrency,
            verify: false,
            ..RunOptions::default()
        };
        let (_stop, shutdown) = tokio::sync::watch::channel(Shutdown::Run);
        let started = Instant::now();
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let db = db.clone();
            let job = job.clone();
            let options = options.clone();
            let shutdown = shutdown.clone();
            runs.spawn(async move {
                let store = reseal::job::open_store(&db).await.unwrap();
                runner::run_job(
                    store.as_ref(),
                    &job,
                    Arc::new(Noop),
                    &options,
                    shutdown,
                    &Quiet,
                )
                .await
                .unwrap()
            });
        }
        while let Some(outcome) = runs.join_next().await {
            assert_eq!(outcome.unwrap(), runner::RunOutcome::Complete);
        }
        let secs = started.elapsed().as_secs_f64();
        let counts = store.task_counts(&job).await.unwrap();
        assert_eq!(
            counts.succeeded, tasks as u64,
            "every task recorded exactly once: {counts:?}"
        );
        println!(
            "{} workers={workers} concurrency={concurrency} tasks={tasks}: ingest {:.0} rows/s, lease+record {:.0} tasks/s ({secs:.1} s)",
            if db.starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            },
            tasks as f64 / ingest,
            tasks as f64 / secs,
        );
    });
}
