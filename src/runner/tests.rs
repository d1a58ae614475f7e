//! The runner's stop path against a target whose re-encryptions wait on a gate, so that a
//! test decides which tasks are in flight when a stop comes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::*;
use crate::job::{JobSpec, NewJob};
use crate::manifest::Filter;
use crate::sse::{SseMode, SseSpec};
use crate::targets::ObjectState;

/// Each object's mode, by key.
type Modes = Arc<Mutex<HashMap<String, SseMode>>>;

#[derive(Clone)]
struct GatedTarget {
    modes: Modes,
    /// Re-encryptions started so far.
    started: Arc<AtomicUsize>,
    /// Re-encryptions wait until this is true.
    gate: watch::Receiver<bool>,
}

impl GatedTarget {
    fn reencrypted(&self) -> u64 {
        let modes = self.modes.lock().unwrap();
        modes.values().filter(|m| **m == SseMode::SseS3).count() as u64
    }
}

#[async_trait::async_trait]
impl Target for GatedTarget {
    async fn inspect(&self, object: &ObjectRef) -> Result<ObjectState, TargetError> {
        let mode = self.modes.lock().unwrap()[&object.key];
        Ok(ObjectState {
            etag: "etag".into(),
            size: 1,
            mode,
            kms_key_id: None,
            key_version: None,
            bucket_key: false,
            sse_c_key_md5: None,
            version_id: None,
            extra: None,
        })
    }

    fn is_compliant(&self, state: &ObjectState) -> bool {
        state.mode == SseMode::SseS3
    }

    async fn reencrypt(
        &self,
        object: &ObjectRef,
        _seen: &ObjectState,
    ) -> Result<Written, TargetError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        self.modes
            .lock()
            .unwrap()
            .insert(object.key.clone(), SseMode::SseS3);
        Ok(Written {
            method: crate::targets::WriteMethod::Rewrite,
            etag: Some("etag".into()),
            new_version: None,
            after: None,
            notes: Vec::new(),
        })
    }
}

struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &Job, _: &TaskCounts) {}
    fn task_done(&self, _: &TaskResult, _: u64) {}
    fn message(&self, _: &str) {}
    fn finish(&self) {}
}

/// A job of `n` plaintext objects to make SSE-S3, and its job store.
async fn job_of(
    dir: &std::path::Path,
    n: usize,
) -> (
    Arc<dyn JobStore>,
    String,
    Arc<Mutex<HashMap<String, SseMode>>>,
) {
    let store = crate::job::open_store(&dir.join("jobs.db").display().to_string())
        .await
        .unwrap();
    let manifest = dir.join("list.csv");
    let rows: String = (0..n).map(|i| format!("bkt,k{i}\n")).collect();
    std::fs::write(&manifest, rows).unwrap();
    let new = NewJob {
        spec: JobSpec {
            sse: SseSpec::SseS3,
            source_sse_c: None,
            bucket_key: false,
            filter: Filter::default(),
            confirmation_required: false,
            trust_inventory: false,
            report: None,
        },
        target: None,
        priority: 10,
        description: String::new(),
        manifest_location: manifest.display().to_string(),
    };
    let (job, _) = crate::job::create_job(store.as_ref(), new, manifest)
        .await
        .unwrap();
    let modes = (0..n).map(|i| (format!("k{i}"), SseMode::NotSse)).collect();
    (store, job.id, Arc::new(Mutex::new(modes)))
}

/// Runs the job with `concurrency` workers, stops it once every worker is inside a
/// re-encryption, then lets them finish. Returns the outcome and how long the stop took.
async fn stop_with_every_worker_busy(
    store: &Arc<dyn JobStore>,
    id: &str,
    modes: &Modes,
    concurrency: usize,
) -> (RunOutcome, Duration, GatedTarget) {
    let (open, gate) = watch::channel(false);
    let target = GatedTarget {
        modes: Arc::clone(modes),
        started: Arc::new(AtomicUsize::new(0)),
        gate,
    };
    let options = RunOptions {
        concurrency,
        drain_timeout: Duration::from_secs(20),
        ..RunOptions::default()
    };
    let (stop, shutdown) = watch::channel(Shutdown::Run);
    let run = {
        let (store, job, target) = (
            Arc::clone(store),
            store.job(id).await.unwrap(),
            target.clone(),
        );
        tokio::spawn(async move {
            run_job(
                store.as_ref(),
                &job,
                Arc::new(target),
                &options,
                shutdown,
                &Quiet,
            )
            .await
        })
    };
    let waiting = Instant::now();
    while target.started.load(Ordering::SeqCst) < concurrency {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "the workers never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(Shutdown::Drain).unwrap();
    let stopped = Instant::now();
    // Time for the runner to see the stop (it looks at least every 100 ms), so that no
    // further task starts, before the busy workers may finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    open.send(true).unwrap();
    let outcome = run.await.unwrap().unwrap();
    (outcome, stopped.elapsed(), target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waited_for_the_drain_timeout_while_leased_tasks_were_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id, modes) = job_of(dir.path(), 100).await;
    // Two workers busy, about thirty leased tasks queued behind them.
    let (outcome, took, target) = stop_with_every_worker_busy(&store, &id, &modes, 2).await;
    assert_eq!(outcome, RunOutcome::Interrupted);
    assert!(
        took < Duration::from_secs(5),
        "the stop took {took:?}: it waited for the drain timeout"
    );
    let job = store.job(&id).await.unwrap();
    let counts = store.task_counts(&job).await.unwrap();
    assert_eq!((counts.succeeded, counts.leased), (2, 0), "{counts:?}");
    assert_eq!(
        counts.pending, 98,
        "queued tasks are given back: {counts:?}"
    );
    assert_eq!(target.reencrypted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_the_last_workers_were_dropped_at_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (store, id, modes) = job_of(dir.path(), 200).await;
    // Eight workers end together after the stop: whether their results were taken from
    // the channel before the last of them was joined was down to the select's draw, so
    // the check is repeated.
    for round in 0..16 {
        let (outcome, _, target) = stop_with_every_worker_busy(&store, &id, &modes, 8).await;
        assert_eq!(outcome, RunOutcome::Interrupted);
        let job = store.job(&id).await.unwrap();
        let counts = store.task_counts(&job).await.unwrap();
        assert_eq!(counts.leased, 0);
        assert_eq!(
            counts.succeeded,
            target.reencrypted(),
            "round {round}: an object was re-encrypted but its task was not recorded: {counts:?}"
        );
        assert_eq!(counts.succeeded, 8 * (round + 1));
    }
}

/// One object that another writer rewrites: before reseal's first `rewrites_before`
/// writes (each of which then finds a new ETag: 412), and, with `rewrite_after`, right
/// after reseal's write succeeds.
struct ContestedTarget {
    object: Mutex<(u32, SseMode)>,
    rewrites_before: AtomicUsize,
    rewrite_after: bool,
}

impl ContestedTarget {
    fn new(rewrites_before: usize, rewrite_after: bool) -> ContestedTarget {
        ContestedTarget {
            object: Mutex::new((1, SseMode::NotSse)),
            rewrites_before: AtomicUsize::new(rewrites_before),
            rewrite_after,
        }
    }
}

#[async_trait::async_trait]
impl Target for ContestedTarget {
    async fn inspect(&self, _: &ObjectRef) -> Result<ObjectState, TargetError> {
        let (etag, mode) = *self.object.lock().unwrap();
        Ok(ObjectState {
            etag: format!("\"v{etag}\""),
            size: 1,
            mode,
            kms_key_id: None,
            key_version: None,
            bucket_key: false,
            sse_c_key_md5: None,
            version_id: None,
            extra: None,
        })
    }

    fn is_compliant(&self, state: &ObjectState) -> bool {
        state.mode == SseMode::SseS3
    }

    async fn reencrypt(&self, _: &ObjectRef, seen: &ObjectState) -> Result<Written, TargetError> {
        let mut object = self.object.lock().unwrap();
        let pending = self.rewrites_before.load(Ordering::SeqCst);
        if pending > 0 {
            self.rewrites_before.store(pending - 1, Ordering::SeqCst);
            object.0 += 1;
        }
        if seen.etag != format!("\"v{}\"", object.0) {
            return Err(TargetError::new(
                ErrorKind::Changed,
                412,
                "PreconditionFailed",
                "the object changed".into(),
            ));
        }
        object.1 = SseMode::SseS3;
        let written = Written {
            method: crate::targets::WriteMethod::Copy,
            etag: Some(format!("\"v{}\"", object.0)),
            new_version: None,
            after: None,
            notes: Vec::new(),
        };
        if self.rewrite_after {
            *object = (object.0 + 1, SseMode::NotSse);
        }
        Ok(written)
    }
}

fn task() -> Task {
    Task {
        seq: 0,
        bucket: "bkt".into(),
        key: "k".into(),
        version_id: None,
        size: None,
        attempts: 0,
        lease_token: 0,
        write_started: false,
        etag: None,
        storage_class: None,
        encryption_status: None,
    }
}

#[tokio::test]
async fn changes_under_us_are_inspected_again() {
    let options = RunOptions {
        max_changes: 10,
        ..RunOptions::default()
    };
    // Five rewrites, each answered 412: the task goes on.
    let (result, _) = run_task(&ContestedTarget::new(5, false), &task(), &options, None).await;
    assert_eq!(result.state, TaskState::Succeeded, "{result:?}");
    assert_eq!(result.attempts, 6);
    assert_eq!(result.message, "re-encrypted by CopyObject");
}

#[tokio::test]
async fn an_object_that_keeps_changing_ends_its_task_saying_so() {
    let options = RunOptions {
        max_changes: 4,
        ..RunOptions::default()
    };
    let (result, _) = run_task(&ContestedTarget::new(100, false), &task(), &options, None).await;
    assert_eq!(result.state, TaskState::Failed);
    assert_eq!(result.http_status, 412, "not a server error: {result:?}");
    assert_eq!(result.error_code.as_deref(), Some("ObjectChanging"));
    assert!(
        result.message.starts_with("changing under us")
            && result.message.contains("last ETag seen: \"v5\""),
        "{}",
        result.message
    );
    assert_eq!(result.attempts, 5);
}

#[tokio::test]
async fn a_rewrite_after_a_successful_write_is_that_write_s_success() {
    let (result, _) = run_task(
        &ContestedTarget::new(0, true),
        &task(),
        &RunOptions::default(),
        None,
    )
    .await;
    assert_eq!(result.state, TaskState::Succeeded, "{result:?}");
    assert_eq!(result.http_status, 200);
    assert_eq!(
        result.message,
        "re-encrypted by CopyObject; the object has changed since (now ETag \"v2\", NOT-SSE)"
    );
    assert_eq!(result.attempts, 1, "no retry of a write that succeeded");
}
