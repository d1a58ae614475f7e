//! `reseal job run` and `reseal run`: opens the job's target, runs jobs with a progress
//! display, handles SIGINT and SIGTERM, writes reports, prints the summary, and turns the
//! outcome into the exit code (0 done, 1 some tasks failed, 3 job failed or cancelled,
//! 75 stopped at its time box and 130 interrupted or paused: both resumable).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use tokio::sync::watch;

use super::args::{RunAllArgs, RunOptionArgs, S3Args, TargetArgs};
use super::output::human_bytes;
use super::{CliError, CliResult};
use crate::crypto::{CustomerKey, MasterKey};
use crate::job::ReportScope;
use crate::job::TargetSpec;
use crate::job::{Job, JobStatus, JobStore, TaskCounts, TaskResult, TaskState};
use crate::runner::{self, Progress, RunOptions, RunOutcome, Shutdown};
use crate::sse::{CustomerKeyRef, SseSpec};
use crate::store::Store;
use crate::targets::Target;
use crate::targets::Want;
use crate::targets::local::LocalTarget;
use crate::targets::s3::files::{S3Url, TempDir};
use crate::targets::s3::{self, Connection, S3Options, S3Target};

pub const EXIT_TASKS_FAILED: u8 = 1;
pub const EXIT_JOB_FAILED: u8 = 3;
/// Stopped at `--max-duration` after recording what it did: partly done, resumes next run
/// (EX_TEMPFAIL).
pub const EXIT_TIME_UP: u8 = 75;
pub const EXIT_INTERRUPTED: u8 = 130;

pub fn local_target_spec(dir: &Path) -> Result<TargetSpec, CliError> {
    let abs = std::path::absolute(dir)
        .map_err(|e| CliError::input(format!("--store {}: {e}", dir.display())))?;
    Ok(TargetSpec::Local {
        store: abs.display().to_string(),
    })
}

/// `reseal run`: create, then run to the end.
pub async fn run_all(db: &str, args: RunAllArgs) -> CliResult {
    let (new, source) = super::job::validate_create(&args.create)?;
    args.run.lease()?;
    if args.create.job.estimating.estimate {
        return super::job::print_estimate_only(
            new,
            source,
            &args.create.job.target.s3,
            &args.create.job.estimating,
            Some(&args.run),
        )
        .await;
    }
    check_s3_settings(&args.create.job.target, &args.run).await?;
    let store = crate::job::open_store(db).await?;
    let store = store.as_ref();
    let job = super::job::create_and_ingest(
        store,
        new,
        source,
        &args.create.job.target.s3,
        &args.create.job.estimating,
        Some(&args.run),
    )
    .await?;
    if job.status == JobStatus::Suspended {
        return Ok(());
    }
    run_jobs(store, Some(&job.id), &args.create.job.target, &args.run).await
}

/// S3 settings that cannot work, found before a job is created.
pub(super) async fn check_s3_settings(target: &TargetArgs, options: &RunOptionArgs) -> CliResult {
    if target.store.is_none() {
        let endpoint_url = target.s3.endpoint_url.clone();
        connect_s3(endpoint_url.clone(), &target.s3).await?;
        s3_options(
            options,
            &TargetSpec::s3(endpoint_url.clone()),
            endpoint_url.as_deref(),
        )?;
    }
    Ok(())
}

/// `reseal job run [ID]`.
pub async fn run_jobs(
    store: &dyn JobStore,
    id: Option<&str>,
    target: &TargetArgs,
    options: &RunOptionArgs,
) -> CliResult {
    options.lease()?;
    if let Some(addr) = options.metrics_addr {
        serve_metrics(addr).await?;
    }
    let jobs = match id {
        Some(id) => vec![store.job(id).await?],
        None => {
            let mut jobs = store.list_jobs(Some(JobStatus::Active)).await?;
            jobs.extend(store.list_jobs(Some(JobStatus::Ready)).await?);
            jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.created_at));
            if jobs.is_empty() {
                eprintln!("no Ready or Active job to run");
            }
            jobs
        }
    };
    let (shutdown_tx, shutdown) = watch::channel(Shutdown::Run);
    let signals = tokio::spawn(watch_signals(shutdown_tx));
    let mut code = 0u8;
    for job in jobs {
        let outcome = run_one(store, &job, target, options, shutdown.clone(), None).await;
        let this = match outcome {
            Ok(c) => c,
            Err(e) => {
                signals.abort();
                return Err(e);
            }
        };
        code = code.max(this);
        if this == EXIT_INTERRUPTED {
            break;
        }
    }
    signals.abort();
    CliError::exit(code)
}

/// Starts the metrics endpoint and says where it is.
pub async fn serve_metrics(addr: std::net::SocketAddr) -> CliResult {
    let bound = crate::metrics::serve(addr)
        .await
        .map_err(|e| CliError::failed(format!("--metrics-addr {addr}: {e}")))?;
    eprintln!("metrics at http://{bound}/metrics");
    Ok(())
}

/// First SIGINT or SIGTERM: stop leasing and drain. A second SIGINT: stop now, giving the
/// tasks in flight back; the command still ends through `main`, so leases are released and
/// temporary files removed.
pub(super) async fn watch_signals(tx: watch::Sender<Shutdown>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    let _ = tx.send(Shutdown::Drain);
    int.recv().await;
    eprintln!("reseal: interrupted again: stopping now; the job resumes with `reseal job run`");
    let _ = tx.send(Shutdown::Now);
}

fn load_key(what: &str, key: &CustomerKeyRef) -> Result<CustomerKey, CliError> {
    let loaded = key
        .source
        .load()
        .map_err(|e| CliError::input(format!("{what}: {e}")))?;
    if loaded.md5_base64() != key.md5 {
        return Err(CliError::input(format!(
            "{what}: the key at {} is not the key the job was created with (MD5 {} expected, {} found)",
            key.source,
            key.md5,
            loaded.md5_base64()
        )));
    }
    Ok(loaded)
}

/// The target a job runs against: the one it recorded, or the one given (then recorded).
/// Without `--store`, S3 (at `--endpoint-url` when given).
pub async fn resolve_target_spec(
    store: &dyn JobStore,
    job: &Job,
    args: &TargetArgs,
) -> Result<TargetSpec, CliError> {
    let given = match (&args.store, &args.s3.endpoint_url) {
        (Some(_), Some(_)) => {
            return Err(CliError::input(
                "--store and --endpoint-url name two targets: give one",
            ));
        }
        (Some(dir), None) => Some(local_target_spec(dir)?),
        (None, Some(url)) => Some(TargetSpec::s3(Some(url.clone()))),
        (None, None) => None,
    };
    if let (Some(recorded), Some(given)) = (&job.target, &given)
        && !recorded.same_place(given)
    {
        return Err(CliError::input(format!(
            "job {} runs against the {recorded}; the options name the {given}",
            job.id
        )));
    }
    Ok(match (&job.target, given) {
        (Some(recorded), _) => recorded.clone(),
        (None, given) => {
            let spec = given.unwrap_or(TargetSpec::s3(None));
            store.set_target(job, &spec).await?;
            spec
        }
    })
}

/// Opens a job's target with the keys it needs.
pub async fn open_target(
    job: &Job,
    spec: &TargetSpec,
    args: &TargetArgs,
    options: Option<&RunOptionArgs>,
) -> Result<Arc<dyn Target>, CliError> {
    let want = Want {
        sse: job.spec.sse.clone(),
        bucket_key: job.spec.bucket_key,
        customer_key: match &job.spec.sse {
            SseSpec::SseC { key } => Some(load_key("--sse", key)?),
            _ => None,
        },
        source_customer_key: job
            .spec
            .source_sse_c
            .as_ref()
            .map(|k| load_key("--source-sse-c", k))
            .transpose()?,
    };
    match spec {
        TargetSpec::Local { store: dir } => {
            let master =
                MasterKey::load(args.master_key_file.as_deref()).map_err(CliError::input)?;
            let local = Store::open(Path::new(dir), master)?;
            Ok(Arc::new(LocalTarget::new(local, want)?))
        }
        TargetSpec::S3 {
            endpoint_url,
            kms_key_arn,
        } => {
            let client = connect_s3(endpoint_url.clone(), &args.s3).await?;
            let mut s3_options = match options {
                Some(o) => s3_options(o, spec, endpoint_url.as_deref())?,
                None => S3Options::default(),
            };
            s3_options.amazon = endpoint_url.is_none();
            let target = S3Target::new(client, want, s3_options);
            if let Some(arn) = kms_key_arn {
                target.learn_kms_arn(Some(arn));
            }
            Ok(Arc::new(target))
        }
    }
}

pub async fn connect_s3(
    endpoint_url: Option<String>,
    args: &S3Args,
) -> Result<aws_sdk_s3::Client, CliError> {
    crate::targets::s3::connect(&Connection {
        endpoint_url,
        region: args.region.clone(),
        profile: args.profile.clone(),
    })
    .await
    .map_err(CliError::input)
}

pub(super) fn s3_options(
    o: &RunOptionArgs,
    spec: &TargetSpec,
    endpoint_url: Option<&str>,
) -> Result<S3Options, CliError> {
    if o.method == super::args::MethodArg::Update && endpoint_url.is_some() {
        return Err(CliError::input(
            "--method update needs Amazon S3: a server that does not know UpdateObjectEncryption may take it for a PutObject and replace the object with the request's XML (moto does); use --method copy or auto with --endpoint-url",
        ));
    }
    let size = |flag: &str, text: &str| {
        super::job::parse_size(text).map_err(|e| CliError::input(format!("{flag} {e}")))
    };
    let multipart_threshold = size("--multipart-threshold", &o.multipart_threshold)?;
    if multipart_threshold > s3::MAX_COPY_SIZE {
        return Err(CliError::input(format!(
            "--multipart-threshold {}: at most 5GiB (the largest object one CopyObject copies)",
            o.multipart_threshold
        )));
    }
    let part_size = size("--part-size", &o.part_size)?;
    if !(s3::MIN_PART_SIZE..=s3::MAX_COPY_SIZE).contains(&part_size) {
        return Err(CliError::input(format!(
            "--part-size {}: S3 takes parts of 5MiB to 5GiB",
            o.part_size
        )));
    }
    if let Some(rps) = o.max_rps
        && !(rps.is_finite() && rps > 0.0)
    {
        return Err(CliError::input(format!(
            "--max-rps {rps}: give a positive number"
        )));
    }
    Ok(S3Options {
        method: o.method.into(),
        multipart_threshold,
        part_size,
        preserve_acl: o.preserve_acl,
        delete_noncurrent: o.delete_noncurrent,
        max_in_flight: o.concurrency_for(spec),
        max_concurrency: (o.max_concurrency as usize).max(o.concurrency_for(spec)),
        max_attempts: o.max_attempts,
        max_rps: o.max_rps,
        ..S3Options::default()
    })
}

/// Runs one job (until `deadline`, when given) and prints its summary; returns the exit
/// code its outcome means.
pub(super) async fn run_one(
    store: &dyn JobStore,
    job: &Job,
    args: &TargetArgs,
    options: &RunOptionArgs,
    shutdown: watch::Receiver<Shutdown>,
    deadline: Option<Instant>,
) -> Result<u8, CliError> {
    // A finished job does not run again: nothing changes, and the exit code is its outcome's.
    if job.status.is_final() && !options.dry_run {
        let c = store.task_counts(job).await?;
        eprintln!(
            "job {}: already {}; a finished job does not run again",
            job.id, job.status
        );
        print_task_counts(&c);
        // A report that a run killed while writing it left unwritten is finished here.
        if let Some(at) = finish_report(store, &job.id, &args.s3).await? {
            eprintln!("  report    {at}");
        }
        return Ok(match job.status {
            JobStatus::Complete if c.failed > 0 => EXIT_TASKS_FAILED,
            JobStatus::Complete => 0,
            _ => EXIT_JOB_FAILED,
        });
    }
    let spec = resolve_target_spec(store, job, args).await?;
    let target = open_target(job, &spec, args, Some(options)).await?;

    if options.dry_run {
        let started = Instant::now();
        let counts = runner::dry_run(store, job, &target, options.concurrency_for(&spec))
            .await
            .map_err(CliError::failed)?;
        let total = counts.would_change + counts.compliant + counts.unreachable;
        eprintln!(
            "dry run of job {}: {} objects would be re-encrypted, {} are already compliant, {} could not be inspected ({:.0} tasks/s); nothing was changed",
            job.id,
            counts.would_change,
            counts.compliant,
            counts.unreachable,
            total as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
        return Ok(0);
    }

    let lease = options.lease()?;
    let run_options = RunOptions {
        concurrency: options.concurrency_for(&spec),
        lease,
        force: options.force,
        verify: !options.no_verify,
        max_changes: options.max_changes,
        trust_inventory: job.spec.trust_inventory,
        failure_threshold_percent: options.failure_threshold_percent,
        failure_threshold_min_tasks: options.failure_threshold_min_tasks,
        deadline,
        ..RunOptions::default()
    };
    let progress = Display::new();
    let started = Instant::now();
    let outcome = runner::run_job(
        store,
        job,
        target.clone(),
        &run_options,
        shutdown,
        &progress,
    )
    .await;
    // An alias's key ARN, once a write has shown it, is kept for later runs and verify.
    if let TargetSpec::S3 {
        endpoint_url,
        kms_key_arn: None,
    } = &spec
        && let Some(arn) = target.learned_kms_arn()
    {
        store
            .update_target(
                job,
                &TargetSpec::S3 {
                    endpoint_url: endpoint_url.clone(),
                    kms_key_arn: Some(arn),
                },
            )
            .await?;
    }
    let outcome = outcome.map_err(|e| match e {
        runner::RunError::NotRunnable { .. } => CliError::input(e),
        runner::RunError::Store(e) => e.into(),
    })?;
    let elapsed = started.elapsed();
    let counts = store.task_counts(job).await?;

    let report = match (&outcome, &job.spec.report) {
        // Time is up: a report of what was done so far, written again when the job ends.
        (RunOutcome::TimeUp, Some(report)) => Some(
            write_report(store, job, &report.destination, report.scope, &args.s3)
                .await
                .map(|at| format!("{at} (so far)"))?,
        ),
        _ => finish_report(store, &job.id, &args.s3).await?,
    };
    if target.throttled() > 0 {
        progress.message(&format!(
            "the server throttled or failed {} requests; they were retried with backoff and less concurrency",
            target.throttled()
        ));
    }
    summary(
        job,
        &outcome,
        &counts,
        &progress,
        elapsed,
        report.as_deref(),
    );
    Ok(match outcome {
        RunOutcome::Complete if counts.failed > 0 => EXIT_TASKS_FAILED,
        RunOutcome::Complete => 0,
        RunOutcome::Failed(_) | RunOutcome::Cancelled => EXIT_JOB_FAILED,
        RunOutcome::Paused | RunOutcome::Interrupted => EXIT_INTERRUPTED,
        RunOutcome::TimeUp => EXIT_TIME_UP,
    })
}

fn summary(
    job: &Job,
    outcome: &RunOutcome,
    c: &TaskCounts,
    progress: &Display,
    elapsed: Duration,
    report: Option<&str>,
) {
    let done = progress.done.load(Ordering::Relaxed);
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let status = match outcome {
        RunOutcome::Complete => "Complete".to_owned(),
        RunOutcome::Paused => "Paused".to_owned(),
        RunOutcome::Cancelled => "Cancelled".to_owned(),
        RunOutcome::Failed(reason) => format!("Failed: {reason}"),
        RunOutcome::Interrupted => "interrupted (still Active)".to_owned(),
        RunOutcome::TimeUp => "time is up: partly done (still Active)".to_owned(),
    };
    eprintln!("job {}: {status}", job.id);
    print_task_counts(c);
    eprintln!(
        "  this run  {done} objects, {} in {:.1} s: {:.0} objects/s, {}/s",
        human_bytes(bytes),
        secs,
        done as f64 / secs,
        human_bytes((bytes as f64 / secs) as u64)
    );
    if let Some(report) = report {
        eprintln!("  report    {report}");
    }
    if matches!(outcome, RunOutcome::TimeUp) {
        eprintln!("  resume    the next run goes on where this one stopped");
    } else if matches!(outcome, RunOutcome::Interrupted | RunOutcome::Paused) {
        let how = if matches!(outcome, RunOutcome::Paused) {
            format!("reseal job resume {0} && reseal job run {0}", job.id)
        } else {
            format!("reseal job run {}", job.id)
        };
        eprintln!("  resume    {how}");
    }
}

fn print_task_counts(c: &TaskCounts) {
    eprintln!(
        "  tasks     {} total: {} succeeded, {} skipped, {} failed, {} not run",
        c.total,
        c.succeeded,
        c.skipped,
        c.failed,
        c.pending + c.leased
    );
}

/// Progress on stderr: a bar on a terminal, a plain line every few seconds otherwise.
struct Display {
    bar: Option<ProgressBar>,
    done: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    total: AtomicU64,
    last_line: std::sync::Mutex<Instant>,
    started: Instant,
}

impl Display {
    fn new() -> Display {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} objects  {msg}  {per_sec}  ETA {eta}",
                )
                .expect("a valid template"),
            );
            bar
        });
        Display {
            bar,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last_line: std::sync::Mutex::new(Instant::now()),
            started: Instant::now(),
        }
    }
}

impl Progress for Display {
    fn start(&self, job: &Job, counts: &TaskCounts) {
        let remaining = counts.pending + counts.leased;
        self.total.store(remaining, Ordering::Relaxed);
        eprintln!(
            "running job {}: {remaining} of {} tasks to go, {}",
            job.id, counts.total, job.spec.sse
        );
        if let Some(bar) = &self.bar {
            bar.set_length(remaining);
        }
    }

    fn task_done(&self, result: &TaskResult, bytes: u64) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let failed =
            self.failed.load(Ordering::Relaxed) + u64::from(result.state == TaskState::Failed);
        if result.state == TaskState::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                code = result.error_code.as_deref().unwrap_or(""),
                error = %result.message,
                "task failed"
            );
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{}  {failed} failed", human_bytes(bytes)));
            }
            None => {
                let mut last = self.last_line.lock().expect("not poisoned");
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    let secs = self.started.elapsed().as_secs_f64().max(1e-9);
                    tracing::info!(
                        done,
                        total = self.total.load(Ordering::Relaxed),
                        failed,
                        bytes,
                        "progress"
                    );
                    if super::logging::json_logs() {
                        return;
                    }
                    eprintln!(
                        "progress: {done}/{} objects, {}, {failed} failed, {:.0} objects/s",
                        self.total.load(Ordering::Relaxed),
                        human_bytes(bytes),
                        done as f64 / secs
                    );
                }
            }
        }
    }

    fn message(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Writes the completion report a finished job's spec asks for, once: the run that claims
/// it in the job store writes it and marks it written; a run killed while writing it
/// leaves the claim to expire and the next run (or this one, later) writes it again.
/// Returns where it is, when this call wrote it.
pub(super) async fn finish_report(
    store: &dyn JobStore,
    id: &str,
    s3: &S3Args,
) -> Result<Option<String>, CliError> {
    let job = store.job(id).await?;
    let Some(report) = &job.spec.report else {
        return Ok(None);
    };
    if !job.status.is_final() || job.report_written_at.is_some() {
        return Ok(None);
    }
    // A claim of a run of this host that is gone (killed while writing) is taken over at
    // once; another host's, once it expires.
    let gone = job
        .report_claim
        .as_deref()
        .filter(|owner| runner::is_dead_local_owner(owner));
    if !store
        .claim_report(&job, &runner::lease_owner(), gone, REPORT_CLAIM)
        .await?
    {
        return Ok(None);
    }
    let at = write_report(store, &job, &report.destination, report.scope, s3).await?;
    store.report_written(&job).await?;
    Ok(Some(at))
}

/// How long a claim to write a report holds before another run may take it over.
const REPORT_CLAIM: Duration = Duration::from_secs(600);

/// Writes a job's report into a folder or to s3://BUCKET/PREFIX; returns where it is.
pub async fn write_report(
    store: &dyn JobStore,
    job: &Job,
    destination: &str,
    scope: ReportScope,
    s3: &S3Args,
) -> Result<String, CliError> {
    if !destination.starts_with("s3://") {
        let path = runner::report::write_report(store, job, Path::new(destination), scope)
            .await
            .map_err(CliError::failed)?;
        return Ok(path.display().to_string());
    }
    let url = S3Url::parse(destination).map_err(CliError::input)?;
    let client = connect_s3(endpoint_of(job), s3).await?;
    let temp = TempDir::new("report").map_err(CliError::failed)?;
    let local = runner::report::write_report(store, job, temp.path(), scope)
        .await
        .map_err(CliError::failed)?;
    crate::targets::s3::files::upload_dir(&client, temp.path(), &url)
        .await
        .map_err(|e| CliError::s3_files("report to", e))?;
    let relative = local
        .strip_prefix(temp.path())
        .expect("written under the folder")
        .to_string_lossy()
        .into_owned();
    Ok(format!(
        "s3://{}/{}",
        url.bucket,
        [url.key.trim_end_matches('/'), &relative]
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("/")
    ))
}

/// The endpoint a job's S3 target recorded, if any.
pub fn endpoint_of(job: &Job) -> Option<String> {
    match &job.target {
        Some(TargetSpec::S3 { endpoint_url, .. }) => endpoint_url.clone(),
        _ => None,
    }
}

/// `reseal verify ID`: re-checks every object of a finished job.
pub async fn verify(
    db: &str,
    id: &str,
    args: &TargetArgs,
    concurrency: u32,
    output: super::args::Output,
) -> CliResult {
    let store = crate::job::open_store(db).await?;
    let store = store.as_ref();
    let job = store.job(id).await?;
    if !job.status.is_final() {
        return Err(CliError::input(format!(
            "job {} is {}: verify checks a finished job (Complete, Failed or Cancelled)",
            job.id, job.status
        )));
    }
    let spec = resolve_target_spec(store, &job, args).await?;
    let target = open_target(&job, &spec, args, None).await?;
    let (checked, bad) = runner::verify(store, &job, &target, concurrency as usize)
        .await
        .map_err(CliError::failed)?;
    match output {
        super::args::Output::Json => super::output::print_json(&serde_json::json!({
            "job": job.id,
            "checked": checked,
            "not_compliant": bad,
        }))?,
        super::args::Output::Table => {
            for b in &bad {
                println!("{}/{}\t{}", b.bucket, b.key, b.found);
            }
        }
    }
    eprintln!(
        "job {}: {checked} objects checked, {} compliant, {} not ({})",
        job.id,
        checked - bad.len() as u64,
        bad.len(),
        job.spec.sse
    );
    CliError::exit(if bad.is_empty() { 0 } else { EXIT_TASKS_FAILED })
}
