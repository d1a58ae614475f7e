//! The runner: leases a job's tasks, carries them out with bounded concurrency against a
//! [`Target`], records results in batches from one writer, follows operators' pause and
//! cancel, applies the failure threshold, and stops cleanly on a shutdown signal. It
//! depends on the `Target` trait, not on S3 or the local store, and prints nothing:
//! progress goes to a [`Progress`] the caller gives.

pub mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::job::{
    Job, JobStatus, JobStore, JobStoreError, Task, TaskCounts, TaskResult, TaskState,
};
use crate::targets::{ErrorKind, Listed, ObjectRef, ObjectState, Target, TargetError, Written};

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub concurrency: usize,
    /// Re-encrypt objects that are already compliant.
    pub force: bool,
    /// Inspect each object again after its write and fail the attempt unless it is
    /// compliant. Off for servers that do not report encryption (s3s-fs).
    pub verify: bool,
    /// Times an object that changed since it was inspected is inspected again before its
    /// task ends as "changing under us".
    pub max_changes: u32,
    /// Act on what the inventory row says instead of inspecting first, where the target
    /// can (the job's `--trust-inventory`).
    pub trust_inventory: bool,
    /// The job fails when more than this share of the tasks run so far failed…
    pub failure_threshold_percent: f64,
    /// …once at least this many tasks have run.
    pub failure_threshold_min_tasks: u64,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How long in-flight tasks may take to finish after a stop.
    pub drain_timeout: Duration,
    /// When to stop leasing and drain, as after a first signal (a sweep's time box).
    pub deadline: Option<Instant>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 16,
            force: false,
            verify: true,
            max_changes: 10,
            trust_inventory: false,
            failure_threshold_percent: 50.0,
            failure_threshold_min_tasks: 1000,
            lease: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(30),
            deadline: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every task ran (some may have failed).
    Complete,
    Paused,
    Cancelled,
    /// The failure threshold was crossed.
    Failed(String),
    /// Stopped by a signal; the job stays Active and resumes with the next run.
    Interrupted,
    /// Stopped at its deadline after the tasks in flight finished; the job stays Active
    /// and resumes with the next run.
    TimeUp,
}

/// What the runner is told to do by whoever watches signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shutdown {
    #[default]
    Run,
    /// Stop leasing and let the tasks in flight finish (up to the drain timeout).
    Drain,
    /// Stop now: tasks in flight are abandoned and given back, to run again later.
    Now,
}

/// What the runner reports while it works. Implemented by the command line.
pub trait Progress: Send + Sync {
    fn start(&self, job: &Job, counts: &TaskCounts);
    fn task_done(&self, result: &TaskResult, bytes: u64);
    fn message(&self, text: &str);
    fn finish(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] JobStoreError),
    #[error("job {id} is {status}: {why}")]
    NotRunnable {
        id: String,
        status: JobStatus,
        why: &'static str,
    },
}

/// How often a run tells the job store it is alive (`job describe` shows it).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// An identity for this run's leases: host, process id and a random part. The process id
/// lets a later run on the same host see at once that the owner is dead.
pub fn lease_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether a lease owner is a process of this host that no longer runs.
pub fn is_dead_local_owner(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let this_host = lease_owner().split(':').next().map(str::to_owned);
    if this_host.as_deref() != Some(host) {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid != std::process::id() => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

/// Runs `job` until every task has run, or it is paused, cancelled, failed or interrupted.
pub async fn run_job(
    store: &dyn JobStore,
    job: &Job,
    target: Arc<dyn Target>,
    options: &RunOptions,
    mut shutdown: watch::Receiver<Shutdown>,
    progress: &dyn Progress,
) -> Result<RunOutcome, RunError> {
    let runnable = [JobStatus::Ready, JobStatus::Active];
    if !runnable.contains(&job.status) {
        let why = match job.status {
            JobStatus::Suspended => "confirm it first (`reseal job confirm`)",
            JobStatus::Paused | JobStatus::Pausing => "resume it first (`reseal job resume`)",
            _ => "only Ready and Active jobs run",
        };
        return Err(RunError::NotRunnable {
            id: job.id.clone(),
            status: job.status,
            why,
        });
    }
    if !store.transition(job, &runnable, JobStatus::Active).await? {
        // Paused or cancelled between loading the job and starting it.
        let now = store.job(&job.id).await?;
        return Err(RunError::NotRunnable {
            id: job.id.clone(),
            status: now.status,
            why: "it changed before the run started",
        });
    }
    let owner = lease_owner();
    for dead in store.lease_owners(job).await? {
        if is_dead_local_owner(&dead) {
            let n = store.release_leases(job, &dead).await?;
            progress.message(&format!(
                "took back {n} tasks of a run that is gone ({dead})"
            ));
        }
    }
    store.heartbeat(job, &owner, 0, 0).await?;
    progress.start(job, &store.task_counts(job).await?);

    let (results_tx, mut results_rx) = mpsc::channel::<(TaskResult, u64)>(options.concurrency * 4);
    let (intents_tx, mut intents_rx) = mpsc::channel(options.concurrency * 2);
    let mut workers: JoinSet<()> = JoinSet::new();
    let mut queue: std::collections::VecDeque<Task> = Default::default();
    let mut pending = Pending::default();
    let mut last_flush = Instant::now();
    let mut last_heartbeat = Instant::now();
    let mut last_control = Instant::now();
    let mut last_renew = Instant::now();
    let mut stop: Option<RunOutcome> = None;
    let mut exhausted = false;
    let mut stopped_at: Option<Instant> = None;
    let mut abandon = false;

    loop {
        // As many tasks at once as the target's pacing allows now (S3 grows and cuts it),
        // else as the run was told.
        let concurrency = target.concurrency().unwrap_or(options.concurrency).max(1);
        // Leasing: keep about two batches of work ahead of the workers.
        if stop.is_none() && !exhausted && queue.len() < concurrency {
            let batch = store
                .lease_tasks(job, &owner, (concurrency * 2).max(32) as u32, options.lease)
                .await?;
            if batch.is_empty() {
                exhausted = true;
            }
            queue.extend(batch);
        }
        while stop.is_none() && workers.len() < concurrency {
            let Some(task) = queue.pop_front() else { break };
            let target = Arc::clone(&target);
            let tx = results_tx.clone();
            let intents = intents_tx.clone();
            let options = options.clone();
            workers.spawn(async move {
                let (result, bytes) =
                    run_task(target.as_ref(), &task, &options, Some(&intents)).await;
                let _ = tx.send((result, bytes)).await;
            });
        }

        // Everything leased has run: done, unless another runner still holds tasks. After a
        // stop, tasks still queued are not started: they are released below.
        if workers.is_empty() && (stop.is_some() || (queue.is_empty() && exhausted)) {
            // Every worker has ended, so every result is in the channel: the select may
            // have joined a worker before taking its result.
            while let Ok((result, bytes)) = results_rx.try_recv() {
                pending.push(result, bytes, progress);
            }
            pending.flush(store, job, &owner, progress).await?;
            if stop.is_some() {
                break;
            }
            let counts = store.task_counts(job).await?;
            if counts.pending == 0 && counts.leased == 0 {
                break;
            }
            // Another runner's tasks: wait for them, or for their leases to expire.
            tokio::time::sleep(Duration::from_millis(500)).await;
            exhausted = false;
        }

        tokio::select! {
            Some((result, bytes)) = results_rx.recv() => pending.push(result, bytes, progress),
            Some(first) = intents_rx.recv() => {
                // Every mark waiting now, in one write; each write goes ahead once its
                // mark is durable.
                let mut marks = vec![first];
                while let Ok(more) = intents_rx.try_recv() {
                    marks.push(more);
                }
                let seqs: Vec<i64> = marks.iter().map(|(seq, _)| *seq).collect();
                store.mark_write_started(job, &owner, &seqs).await?;
                for (_, done) in marks {
                    let _ = done.send(());
                }
            }
            Some(_) = workers.join_next(), if !workers.is_empty() => {}
            changed = shutdown.changed(), if !abandon => {
                let asked = if changed.is_ok() { *shutdown.borrow() } else { Shutdown::Run };
                if asked != Shutdown::Run && stop.is_none() {
                    stop = Some(RunOutcome::Interrupted);
                    stopped_at = Some(Instant::now());
                    progress.message("stopping: finishing the tasks in flight");
                }
                abandon = asked == Shutdown::Now;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }

        let metrics = crate::metrics::metrics();
        metrics.leases.set((queue.len() + workers.len()) as i64);
        metrics.in_flight.set(workers.len() as i64);
        if pending.results.len() >= 256 || last_flush.elapsed() >= Duration::from_millis(250) {
            pending.flush(store, job, &owner, progress).await?;
            last_flush = Instant::now();
        }
        if last_renew.elapsed() >= options.lease / 3 {
            store.renew_leases(job, &owner, options.lease).await?;
            last_renew = Instant::now();
        }
        if last_heartbeat.elapsed() >= HEARTBEAT {
            store
                .heartbeat(job, &owner, pending.recorded, pending.bytes)
                .await?;
            last_heartbeat = Instant::now();
        }
        if stop.is_none() && options.deadline.is_some_and(|d| Instant::now() >= d) {
            stop = Some(RunOutcome::TimeUp);
            stopped_at = Some(Instant::now());
            progress.message("time is up: finishing the tasks in flight");
        }
        if stop.is_none() && last_control.elapsed() >= Duration::from_millis(500) {
            last_control = Instant::now();
            let now = store.job(&job.id).await?;
            stop = match now.status {
                JobStatus::Pausing | JobStatus::Paused => Some(RunOutcome::Paused),
                JobStatus::Cancelling | JobStatus::Cancelled => Some(RunOutcome::Cancelled),
                _ => threshold_crossed(&store.task_counts(job).await?, options)
                    .map(RunOutcome::Failed),
            };
            if stop.is_some() {
                stopped_at = Some(Instant::now());
            }
        }
        // A drain that takes too long, or a second signal, cuts it short: those tasks are
        // released below and run again later (each task is idempotent).
        if abandon || stopped_at.is_some_and(|t| t.elapsed() > options.drain_timeout) {
            workers.abort_all();
            while workers.join_next().await.is_some() {}
            while let Ok((result, bytes)) = results_rx.try_recv() {
                pending.push(result, bytes, progress);
            }
            pending.flush(store, job, &owner, progress).await?;
            break;
        }
    }
    store.release_leases(job, &owner).await?;
    crate::metrics::metrics().leases.set(0);
    crate::metrics::metrics().in_flight.set(0);
    store
        .heartbeat(job, &owner, pending.recorded, pending.bytes)
        .await?;
    progress.finish();

    let outcome = match stop {
        None => {
            let counts = store.task_counts(job).await?;
            match threshold_crossed(&counts, options) {
                Some(reason) => RunOutcome::Failed(reason),
                None => RunOutcome::Complete,
            }
        }
        Some(outcome) => outcome,
    };
    match &outcome {
        RunOutcome::Complete => {
            store
                .transition(job, &[JobStatus::Active], JobStatus::Complete)
                .await?;
        }
        RunOutcome::Paused => {
            store
                .transition(job, &[JobStatus::Pausing], JobStatus::Paused)
                .await?;
        }
        RunOutcome::Cancelled => {
            store
                .transition(job, &[JobStatus::Cancelling], JobStatus::Cancelled)
                .await?;
        }
        RunOutcome::Failed(reason) => {
            store
                .transition(job, &[JobStatus::Active], JobStatus::Failing)
                .await?;
            store.add_failure_reason(job, reason).await?;
            store
                .transition(job, &[JobStatus::Failing], JobStatus::Failed)
                .await?;
        }
        RunOutcome::Interrupted | RunOutcome::TimeUp => {}
    }
    Ok(outcome)
}

/// Results waiting to be recorded, and what this run has recorded so far.
#[derive(Default)]
struct Pending {
    results: Vec<TaskResult>,
    bytes_waiting: u64,
    /// Tasks recorded by this run, and the bytes of the tasks it ran (for its heartbeat).
    recorded: u64,
    bytes: u64,
}

impl Pending {
    fn push(&mut self, result: TaskResult, bytes: u64, progress: &dyn Progress) {
        progress.task_done(&result, bytes);
        let metrics = crate::metrics::metrics();
        metrics
            .tasks
            .with_label_values(&[result.state.as_str()])
            .inc();
        metrics.task_bytes.inc_by(bytes);
        self.bytes_waiting += bytes;
        self.results.push(result);
    }

    /// Records what is waiting, in one batch. Results whose lease another worker took
    /// meanwhile (this run was too slow to renew) are not recorded: that worker's count.
    async fn flush(
        &mut self,
        store: &dyn JobStore,
        job: &Job,
        owner: &str,
        progress: &dyn Progress,
    ) -> Result<(), JobStoreError> {
        if self.results.is_empty() {
            return Ok(());
        }
        let recorded = store.record_results(job, owner, &self.results).await?;
        let lost = self.results.len() as u64 - recorded;
        if lost > 0 {
            progress.message(&format!(
                "{lost} results were not recorded: their leases expired and another run holds those tasks now"
            ));
        }
        self.recorded += recorded;
        self.bytes += std::mem::take(&mut self.bytes_waiting);
        self.results.clear();
        Ok(())
    }
}

/// The rule S3 Batch Operations uses, with settable numbers.
fn threshold_crossed(counts: &TaskCounts, options: &RunOptions) -> Option<String> {
    let ran = counts.succeeded + counts.failed + counts.skipped;
    if ran >= options.failure_threshold_min_tasks
        && ran > 0
        && counts.failed as f64 * 100.0 > options.failure_threshold_percent * ran as f64
    {
        Some(format!(
            "{} of the {ran} tasks run so far failed, more than {}% (the failure threshold, applied from {} tasks)",
            counts.failed, options.failure_threshold_percent, options.failure_threshold_min_tasks
        ))
    } else {
        None
    }
}

/// One task: inspect; skip when compliant; re-encrypt guarded by the ETag seen; confirm
/// (unless `verify` is off).
///
/// A transient error (throttling, a server error, a lost connection) comes from a target
/// that has already retried it as often as it may (one layer retries: the target's
/// request layer), so it fails the task. An object that changed since it was inspected (a
/// 412 on the guarded write) is not an error: it is inspected again at once, up to
/// `max_changes` times, and when it keeps changing the task ends saying so, with the last
/// ETag seen.
///
/// Returns the result and the object's size as inspected (the manifest may not give it).
async fn run_task(
    target: &dyn Target,
    task: &Task,
    options: &RunOptions,
    intents: Option<&Intents>,
) -> (TaskResult, u64) {
    let mut run = TaskRun {
        object: ObjectRef {
            bucket: task.bucket.clone(),
            key: task.key.clone(),
            version_id: task.version_id.clone(),
        },
        seq: task.seq,
        maybe_written: false,
        written_earlier: task.write_started,
        last_etag: None,
        intents,
        listed: options.trust_inventory.then(|| listed(task)).flatten(),
    };
    let mut attempts = task.attempts;
    let mut changes = 0;
    let failed = |attempts, http_status, code: &str, message| TaskResult {
        seq: task.seq,
        lease_token: task.lease_token,
        state: TaskState::Failed,
        attempts,
        http_status,
        error_code: Some(code.to_owned()),
        message,
    };
    loop {
        attempts += 1;
        match run.attempt(target, options).await {
            Ok((state, message, size)) => {
                let result = TaskResult {
                    seq: task.seq,
                    lease_token: task.lease_token,
                    state,
                    attempts,
                    http_status: 200,
                    // A skip for a newer write says so in its code: the object was not
                    // found compliant, it is another version now (a sweep's census).
                    error_code: (state == TaskState::Skipped && message.starts_with(SUPERSEDED))
                        .then(|| "Superseded".to_owned()),
                    message,
                };
                return (result, size);
            }
            Err(e) if e.kind == ErrorKind::Changed => {
                run.maybe_written |= e.maybe_written;
                changes += 1;
                if changes > options.max_changes {
                    let message = format!(
                        "changing under us: the object was rewritten {changes} times while this task worked on it (last ETag seen: {}); run it again when writes to it settle",
                        run.last_etag.as_deref().unwrap_or("none")
                    );
                    return (
                        failed(attempts, 412, "ObjectChanging", message),
                        task.size.unwrap_or(0),
                    );
                }
            }
            Err(e) => {
                return (
                    failed(attempts, e.http_status, &e.code, e.message),
                    task.size.unwrap_or(0),
                );
            }
        }
    }
}

/// What a task's manifest row said of its object, when it says all a trusted write needs.
fn listed(task: &Task) -> Option<Listed> {
    Some(Listed {
        etag: task.etag.clone()?,
        mode: task.encryption_status?,
        storage_class: task.storage_class.clone()?,
        size: task.size,
    })
}

/// Marks a task as about to be written, in the job store, before its write is sent: the
/// run loop records marks in batches and answers each once it is durable.
type Intents = mpsc::Sender<(i64, tokio::sync::oneshot::Sender<()>)>;

/// How the message of a task skipped for a newer version of its object begins.
const SUPERSEDED: &str = "superseded:";

/// One task as it runs: what its tries learned.
struct TaskRun<'a> {
    object: ObjectRef,
    seq: i64,
    /// A write may have taken effect without an answer saying so: an inspection that finds
    /// the object compliant then counts it as this task's success.
    maybe_written: bool,
    /// An earlier run of this job marked the task before writing and died before it
    /// recorded a result: an object found compliant was made so by this job.
    written_earlier: bool,
    last_etag: Option<String>,
    /// Where to mark the task before its first write (none in tests of single tasks).
    intents: Option<&'a Intents>,
    /// What the inventory said of the object, with `--trust-inventory`, until it is used.
    listed: Option<Listed>,
}

impl TaskRun<'_> {
    /// Marks the task in the job store before its first write; the write waits for it.
    async fn mark_before_write(&mut self) -> Result<(), TargetError> {
        let Some(intents) = self.intents.take() else {
            return Ok(());
        };
        let (done, marked) = tokio::sync::oneshot::channel();
        if intents.send((self.seq, done)).await.is_err() || marked.await.is_err() {
            return Err(TargetError::new(
                ErrorKind::Transient,
                0,
                "Stopped",
                "the run stopped before the object's write was sent".into(),
            ));
        }
        Ok(())
    }

    /// One try of a task; see [`run_task`].
    async fn attempt(
        &mut self,
        target: &dyn Target,
        options: &RunOptions,
    ) -> Result<(TaskState, String, u64), TargetError> {
        if let Some(done) = self.trusted(target, options).await? {
            return Ok(done);
        }
        let object = &self.object.clone();
        let seen = target.inspect(object).await?;
        self.last_etag = Some(seen.etag.clone());
        if self.written_earlier && target.is_compliant(&seen) {
            return Ok((
                TaskState::Succeeded,
                "re-encrypted by an earlier run of this job, which stopped before it recorded the result"
                    .to_owned(),
                seen.size,
            ));
        }
        if self.maybe_written && target.is_compliant(&seen) {
            return Ok((
                TaskState::Succeeded,
                "re-encrypted (confirmed after a retry)".to_owned(),
                seen.size,
            ));
        }
        // A copy always becomes the current version: a manifest version that is no longer
        // current is not touched (copying it would roll the object back).
        if let (Some(listed), Some(current)) = (&object.version_id, &seen.version_id)
            && listed != current
            && listed != "null"
        {
            return Ok((
                TaskState::Skipped,
                format!("{SUPERSEDED} version {listed} is no longer current (current: {current})"),
                seen.size,
            ));
        }
        if !options.force && target.is_compliant(&seen) {
            return Ok((
                TaskState::Skipped,
                format!("already {}", seen.mode),
                seen.size,
            ));
        }
        self.mark_before_write().await?;
        let written = target.reencrypt(object, &seen).await?;
        self.confirm(target, options, &seen, written).await
    }

    /// With `--trust-inventory`: acts on what the inventory row says, without inspecting
    /// the object. `None`: inspect as usual (the target cannot trust the row, or the object
    /// changed since the inventory, which the ETag guard found).
    async fn trusted(
        &mut self,
        target: &dyn Target,
        options: &RunOptions,
    ) -> Result<Option<(TaskState, String, u64)>, TargetError> {
        let Some(listed) = self.listed.take() else {
            return Ok(None);
        };
        let Some(seen) = target.trusted_state(&self.object, &listed) else {
            return Ok(None);
        };
        if !options.force && target.is_compliant(&seen) {
            return Ok(Some((
                TaskState::Skipped,
                format!("already {} (as the inventory says)", seen.mode),
                seen.size,
            )));
        }
        self.mark_before_write().await?;
        let object = self.object.clone();
        match target.reencrypt(&object, &seen).await {
            Ok(written) => self
                .confirm(target, options, &seen, written)
                .await
                .map(Some),
            Err(e) if e.kind == ErrorKind::Changed && !e.maybe_written => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Confirms a write: from its own answer where that names the new encryption, else by
    /// inspecting the object again.
    async fn confirm(
        &mut self,
        target: &dyn Target,
        options: &RunOptions,
        seen: &ObjectState,
        written: Written,
    ) -> Result<(TaskState, String, u64), TargetError> {
        let object = &self.object;
        let note = written.describe(seen.version_id.as_deref());
        if !options.verify {
            return Ok((
                TaskState::Succeeded,
                format!("{note} (not verified)"),
                seen.size,
            ));
        }
        // The write's own answer, when it names the new encryption, confirms the write
        // without another request.
        if let Some(after) = &written.after
            && target.is_compliant(after)
        {
            return Ok((TaskState::Succeeded, note, after.size));
        }
        let after = match target.inspect(object).await {
            Ok(after) => after,
            // Gone since reseal's write: the write itself succeeded.
            Err(e) if e.http_status == 404 => {
                return Ok((
                    TaskState::Succeeded,
                    format!("{note}; the object was deleted since"),
                    seen.size,
                ));
            }
            Err(e) => return Err(e),
        };
        if target.is_compliant(&after) {
            return Ok((TaskState::Succeeded, note, after.size));
        }
        if rewritten_since(&written, &after) {
            // Someone wrote the key after reseal did: reseal's write stands as done, and the
            // newer object is theirs to answer for.
            return Ok((
                TaskState::Succeeded,
                format!(
                    "{note}; the object has changed since (now ETag {}, {})",
                    after.etag, after.mode
                ),
                seen.size,
            ));
        }
        // The server took the write but did not apply the encryption asked for: writing again
        // would not change that.
        Err(TargetError::permanent(
            500,
            "VerificationFailed",
            format!(
                "after re-encryption the object is {}: the server did not apply the encryption asked for (--no-verify for servers that do not report it)",
                after.mode
            ),
        ))
    }
}

/// Whether an inspection after a write sees another object than the one the write left.
fn rewritten_since(written: &Written, after: &ObjectState) -> bool {
    let unquoted = |e: &str| e.trim_matches('"').to_owned();
    let etag_moved = written
        .etag
        .as_deref()
        .is_some_and(|e| unquoted(e) != unquoted(&after.etag));
    let version_moved = written
        .new_version
        .as_deref()
        .is_some_and(|v| after.version_id.as_deref() != Some(v));
    etag_moved || version_moved
}

/// Inspects every task's object without changing anything, `concurrency` at once, and
/// hands each object with what was found to `each`, in no particular order.
pub async fn inspect_all(
    store: &dyn JobStore,
    job: &Job,
    target: &Arc<dyn Target>,
    concurrency: usize,
    mut each: impl FnMut(ObjectRef, Result<ObjectState, TargetError>),
) -> Result<(), RunError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut after = -1;
    loop {
        let page = store.task_page(job, after, 4096).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        let mut set = JoinSet::new();
        for (_, record) in page {
            let object = ObjectRef {
                bucket: record.bucket,
                key: record.key,
                version_id: record.version_id,
            };
            let permit = semaphore
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            let target = Arc::clone(target);
            set.spawn(async move {
                let state = target.inspect(&object).await;
                drop(permit);
                (object, state)
            });
        }
        while let Some(done) = set.join_next().await {
            let (object, state) = done.expect("an inspection does not panic");
            each(object, state);
        }
    }
    Ok(())
}

/// Inspects every task's object without changing anything; counts what a run would do.
pub async fn dry_run(
    store: &dyn JobStore,
    job: &Job,
    target: &Arc<dyn Target>,
    concurrency: usize,
) -> Result<DryRunCounts, RunError> {
    let mut counts = DryRunCounts::default();
    inspect_all(store, job, target, concurrency, |_, state| match state {
        Ok(s) if target.is_compliant(&s) => counts.compliant += 1,
        Ok(_) => counts.would_change += 1,
        Err(_) => counts.unreachable += 1,
    })
    .await?;
    Ok(counts)
}

/// An object that `reseal verify` found not encrypted as its job wants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotCompliant {
    pub bucket: String,
    pub key: String,
    /// What it is now, or why it could not be inspected.
    pub found: String,
}

/// Re-checks every object of a job; returns how many were checked and those that are not
/// compliant, sorted by bucket and key.
pub async fn verify(
    store: &dyn JobStore,
    job: &Job,
    target: &Arc<dyn Target>,
    concurrency: usize,
) -> Result<(u64, Vec<NotCompliant>), RunError> {
    let mut checked = 0;
    let mut bad = Vec::new();
    inspect_all(store, job, target, concurrency, |object, state| {
        checked += 1;
        let found = match state {
            Ok(s) if target.is_compliant(&s) => return,
            Ok(s) => match (&s.kms_key_id, &s.sse_c_key_md5) {
                (Some(k), _) => format!("{} (key {k})", s.mode),
                (_, Some(md5)) => format!("{} (key MD5 {md5})", s.mode),
                _ => s.mode.to_string(),
            },
            Err(e) => format!("not inspected: {e}"),
        };
        bad.push(NotCompliant {
            bucket: object.bucket,
            key: object.key,
            found,
        });
    })
    .await?;
    bad.sort_by(|a, b| (&a.bucket, &a.key).cmp(&(&b.bucket, &b.key)));
    Ok((checked, bad))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DryRunCounts {
    pub would_change: u64,
    pub compliant: u64,
    pub unreachable: u64,
}

#[cfg(test)]
mod tests;
