//! `reseal sweep`: keeps a bucket compliant from cron. Finds the newest complete inventory
//! of a configuration (a local folder or S3), takes the sweep's lock in the job store,
//! resumes the job it made for that inventory or makes one (cancelling an unfinished job
//! of an older inventory), runs it within the time box, and prints the census.
//!
//! Exit codes besides `run`'s: 4 the newest inventory is older than `--max-age`, 5 the
//! sweep is being run elsewhere, 75 the time box ended the run (it resumes next time).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::args::{Output, SweepArgs};
use super::job::{Source, parse_duration, validate_job};
use super::{CliError, CliResult, output};
use crate::job::{Job, JobStatus, JobStore, Operation};
use crate::manifest::Column;
use crate::runner::{self, Shutdown};
use crate::sse::SseMode;
use crate::sweep::{self, CensusView, InventoryFolder, RunFacts};
use crate::targets::s3::files::{self, S3Url};

pub const EXIT_TOO_OLD: u8 = 4;
pub const EXIT_BUSY: u8 = 5;

/// Where an inventory configuration writes its date folders.
enum Inventory {
    Local(PathBuf),
    S3(S3Url),
}

impl Inventory {
    fn parse(given: &str) -> Result<Inventory, CliError> {
        if given.starts_with("s3://") {
            let url =
                S3Url::parse(given).map_err(|e| CliError::input(format!("--inventory {e}")))?;
            return Ok(Inventory::S3(S3Url {
                key: url.key.trim_end_matches('/').to_owned(),
                ..url
            }));
        }
        std::path::absolute(given)
            .map(Inventory::Local)
            .map_err(|e| CliError::input(format!("--inventory {given}: {e}")))
    }

    fn shown(&self) -> String {
        match self {
            Inventory::Local(path) => path.display().to_string(),
            Inventory::S3(url) => format!("s3://{}/{}", url.bucket, url.key),
        }
    }

    /// Where a date folder's manifest.json is, as a job's source.
    fn manifest(&self, folder: &str) -> Source {
        match self {
            Inventory::Local(path) => Source::File(path.join(folder).join(sweep::MANIFEST)),
            Inventory::S3(url) => {
                Source::S3(self.child(url, &format!("{folder}/{}", sweep::MANIFEST)))
            }
        }
    }

    fn child(&self, url: &S3Url, name: &str) -> S3Url {
        S3Url {
            bucket: url.bucket.clone(),
            key: [url.key.as_str(), name]
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("/"),
        }
    }

    /// The newest complete date folder, and the newer ones passed over as incomplete.
    async fn newest(
        &self,
        client: Option<&aws_sdk_s3::Client>,
    ) -> Result<(Option<InventoryFolder>, Vec<InventoryFolder>), CliError> {
        let mut dated: Vec<(String, i64)> = match self {
            Inventory::Local(path) => std::fs::read_dir(path)
                .map_err(|e| CliError::input(format!("--inventory {}: {e}", path.display())))?
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter_map(|name| sweep::folder_time(&name).map(|at| (name, at)))
                .collect(),
            Inventory::S3(url) => {
                let client = client.expect("a client for S3");
                let (folders, _) = files::list_level(client, url)
                    .await
                    .map_err(|e| CliError::s3_files("--inventory", e))?;
                folders
                    .into_iter()
                    .filter_map(|name| sweep::folder_time(&name).map(|at| (name, at)))
                    .collect()
            }
        };
        dated.sort_by_key(|d| std::cmp::Reverse(d.1));
        // Newest first, until one is complete: on S3, one listing per folder looked at.
        let mut seen = Vec::new();
        for (name, at) in dated {
            let complete = match self {
                Inventory::Local(path) => {
                    let dir = path.join(&name);
                    dir.join(sweep::MANIFEST).is_file() && dir.join(sweep::CHECKSUM).is_file()
                }
                Inventory::S3(url) => {
                    let client = client.expect("a client for S3");
                    let (_, objects) = files::list_level(client, &self.child(url, &name))
                        .await
                        .map_err(|e| CliError::s3_files("--inventory", e))?;
                    [sweep::MANIFEST, sweep::CHECKSUM]
                        .iter()
                        .all(|f| objects.iter().any(|o| o == f))
                }
            };
            seen.push(InventoryFolder { name, at, complete });
            if complete {
                break;
            }
        }
        Ok(sweep::newest_complete(seen))
    }
}

pub async fn run(db: &str, args: SweepArgs) -> CliResult {
    let started = Instant::now();
    if args.job.confirmation_required {
        return Err(CliError::input(
            "--confirmation-required: a sweep runs unattended; see what it would do with --estimate",
        ));
    }
    let max_age =
        parse_duration(&args.max_age).map_err(|e| CliError::input(format!("--max-age {e}")))?;
    let max_duration = args
        .max_duration
        .as_deref()
        .map(|d| parse_duration(d).map_err(|e| CliError::input(format!("--max-duration {e}"))))
        .transpose()?;
    if max_duration == Some(Duration::ZERO) {
        return Err(CliError::input(
            "--max-duration 0: give a positive duration",
        ));
    }
    let lease = args.run.lease()?;
    let inventory = Inventory::parse(&args.inventory)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| sweep::default_name(&inventory.shown(), &args.job.sse));
    let mut new = validate_job(&args.job, String::new())?;
    // Rows the inventory shows as wanted need nothing: only SSE-S3 can be told from a row
    // (the other modes have a key the inventory does not show).
    let wanted = new.spec.sse.mode();
    if wanted == SseMode::SseS3 && !args.run.force {
        new.spec.filter.listed_compliant = Some(SseMode::SseS3);
    }
    let s3 = &args.job.target.s3;
    let client = match &inventory {
        Inventory::S3(_) => Some(super::run::connect_s3(s3.endpoint_url.clone(), s3).await?),
        Inventory::Local(_) => None,
    };

    let (chosen, passed_over) = inventory.newest(client.as_ref()).await?;
    for folder in &passed_over {
        eprintln!(
            "inventory {} has no {} yet (still being written): passed over",
            folder.name,
            sweep::CHECKSUM
        );
    }
    let Some(folder) = chosen else {
        return Err(CliError::input(format!(
            "--inventory {}: no complete inventory (a DATE/ folder with {} and {})",
            inventory.shown(),
            sweep::MANIFEST,
            sweep::CHECKSUM
        )));
    };
    let age = crate::time::now_ms() - folder.at;
    if age > max_age.as_millis() as i64 {
        return Err(CliError {
            code: EXIT_TOO_OLD,
            message: format!(
                "the newest complete inventory under {} is {} ({} old), older than --max-age {}: is the inventory configuration still delivering? (a larger --max-age sweeps it anyway)",
                inventory.shown(),
                folder.name,
                output::human_duration(age),
                args.max_age
            ),
        });
    }
    let source = inventory.manifest(&folder.name);
    new.manifest_location = match &source {
        Source::File(path) => path.display().to_string(),
        Source::S3(url) => url.to_string(),
        Source::Listing { .. } => unreachable!("a sweep reads inventories"),
    };
    if args.job.estimating.estimate {
        eprintln!("sweep {name}: the next job, from inventory {}", folder.name);
        return super::job::print_estimate_only(
            new,
            source,
            s3,
            &args.job.estimating,
            Some(&args.run),
        )
        .await;
    }
    super::run::check_s3_settings(&args.job.target, &args.run).await?;

    let store = crate::job::open_store(db).await?;
    let store = store.as_ref();
    let owner = runner::lease_owner();
    // The lock holds as a lease does: `--lease` without renewal, renewed every third.
    let lock = lease;
    take_lock(store, &name, &owner, lock).await?;
    let (shutdown_tx, shutdown) = watch::channel(Shutdown::Run);
    let signals = tokio::spawn(super::run::watch_signals(shutdown_tx.clone()));
    let swept = async {
        let job = job_for(store, &name, &folder, new, source, &args).await?;
        let deadline = max_duration.map(|d| started + d);
        let code = match &job {
            Some(job) => {
                super::run::run_one(store, job, &args.job.target, &args.run, shutdown, deadline)
                    .await?
            }
            None => 0,
        };
        Ok::<_, CliError>((job, code))
    };
    let outcome = tokio::select! {
        outcome = swept => outcome,
        never = keep_lock(store, &name, &owner, lock, &shutdown_tx) => match never {},
    };
    signals.abort();
    store.unlock_sweep(&name, &owner).await?;
    let (job, code) = outcome?;
    let job = match job {
        Some(job) => store.job(&job.id).await?,
        None => {
            let id = store
                .sweep_job(&name, &folder.name)
                .await?
                .expect("an already swept inventory has its job");
            store.job(&id).await?
        }
    };
    let view = census(store, &job).await?;
    eprintln!(
        "sweep {name}: inventory {}, job {} {}",
        folder.name, job.id, job.status
    );
    output::print_census(&view);
    if let Output::Json = args.job.estimating.output {
        output::print_json(&serde_json::json!({
            "sweep": name,
            "inventory": folder.name,
            "manifest": job.manifest_location,
            "job": job.id,
            "status": job.status,
            "exit_code": code,
            "census": view,
        }))?;
    }
    if let Some(path) = &args.metrics_textfile {
        let text = sweep::textfile(
            &view,
            &RunFacts {
                sweep: &name,
                inventory_at: folder.at,
                finished_at: crate::time::now_ms(),
                exit_code: code,
            },
        );
        write_textfile(path, &text)?;
    }
    CliError::exit(code)
}

/// Takes the sweep's lock, or says who holds it (exit code 5). A holder on this host that
/// is gone (killed) gives it up at once; one elsewhere, once its lock expires.
async fn take_lock(store: &dyn JobStore, name: &str, owner: &str, lock: Duration) -> CliResult {
    let Some(holder) = store.lock_sweep(name, owner, None, lock).await? else {
        return Ok(());
    };
    if runner::is_dead_local_owner(&holder.owner) {
        eprintln!(
            "sweep {name}: took over the lock of a run that is gone ({})",
            holder.owner
        );
        if store
            .lock_sweep(name, owner, Some(&holder.owner), lock)
            .await?
            .is_none()
        {
            return Ok(());
        }
    }
    Err(CliError {
        code: EXIT_BUSY,
        message: format!(
            "sweep {name} is being run by {} since {}; this run changes nothing (the lock expires {} after its holder stops renewing it)",
            holder.owner,
            crate::time::format_time(holder.since),
            output::human_duration(lock.as_millis() as i64)
        ),
    })
}

/// Renews the sweep's lock every third of its span. Never returns: should another run take
/// the lock (this one stalled past its expiry), this run drains and stops.
async fn keep_lock(
    store: &dyn JobStore,
    name: &str,
    owner: &str,
    lock: Duration,
    shutdown: &watch::Sender<Shutdown>,
) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(lock / 3).await;
        match store.lock_sweep(name, owner, None, lock).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                eprintln!(
                    "sweep {name}: the lock was taken over by {}: stopping",
                    holder.owner
                );
                let _ = shutdown.send(Shutdown::Drain);
                return std::future::pending().await;
            }
            Err(e) => tracing::warn!(error = %e, "renewing the sweep's lock"),
        }
    }
}

/// The job to run for `folder`: the one made for it before (none when it is finished:
/// the bucket was swept for that inventory), or a new one, after unfinished jobs of older
/// inventories are cancelled.
async fn job_for(
    store: &dyn JobStore,
    name: &str,
    folder: &InventoryFolder,
    new: crate::job::NewJob,
    source: Source,
    args: &SweepArgs,
) -> Result<Option<Job>, CliError> {
    if let Some(id) = store.sweep_job(name, &folder.name).await? {
        let job = store.job(&id).await?;
        if job.status.is_final() {
            eprintln!(
                "sweep {name}: already swept for inventory {}: job {} is {}",
                folder.name, job.id, job.status
            );
            return Ok(None);
        }
        eprintln!(
            "sweep {name}: resuming job {} of inventory {}",
            job.id, folder.name
        );
        return Ok(Some(job));
    }
    for (inventory, id) in store.sweep_jobs(name).await? {
        if inventory.as_str() < folder.name.as_str() {
            supersede(store, name, &inventory, &id, &folder.name, args).await?;
        }
    }
    let job = super::job::create_and_ingest(
        store,
        new,
        source,
        &args.job.target.s3,
        &args.job.estimating,
        Some(&args.run),
    )
    .await?;
    store.add_sweep_job(name, &folder.name, &job.id).await?;
    let columns = job
        .manifest
        .as_ref()
        .map(|m| m.columns.as_slice())
        .unwrap_or(&[]);
    if !columns.contains(&Column::EncryptionStatus) {
        eprintln!(
            "the inventory has no EncryptionStatus column: every object is a task, inspected before it is changed (add EncryptionStatus to the inventory configuration)"
        );
    } else if job.spec.filter.listed_compliant.is_none() && !args.run.force {
        eprintln!(
            "{}: an inventory does not show keys, so objects listed as {} are tasks that an inspection checks",
            job.spec.sse,
            job.spec.sse.mode()
        );
    }
    Ok(Some(job))
}

/// Cancels an older inventory's unfinished job: what it did stays in its report.
async fn supersede(
    store: &dyn JobStore,
    name: &str,
    inventory: &str,
    id: &str,
    newer: &str,
    args: &SweepArgs,
) -> CliResult {
    let job = store.job(id).await?;
    if job.status.is_final() {
        return Ok(());
    }
    store.apply(&job.id, Operation::Cancel).await?;
    // No run works on it (this sweep holds the lock): Cancelling ends here.
    let job = store.job(id).await?;
    if job.status == JobStatus::Cancelling && store.task_counts(&job).await?.leased == 0 {
        store
            .transition(&job, &[JobStatus::Cancelling], JobStatus::Cancelled)
            .await?;
    }
    let counts = store.task_counts(&job).await?;
    eprintln!(
        "sweep {name}: job {id} of inventory {inventory} is superseded by inventory {newer}: cancelled with {} of {} tasks done",
        counts.succeeded + counts.skipped + counts.failed,
        counts.total
    );
    if let Some(at) = super::run::finish_report(store, id, &args.job.target.s3).await? {
        eprintln!("  its report  {at}");
    }
    Ok(())
}

/// The census of a sweep's job as it stands.
async fn census(store: &dyn JobStore, job: &Job) -> Result<CensusView, CliError> {
    let settled = store.settled_by_listed_mode(job).await?;
    let counts = store.task_counts(job).await?;
    Ok(CensusView::new(
        job.spec.sse.to_string(),
        job.spec.sse.mode(),
        &job.census.clone().unwrap_or_default(),
        job.spec.filter.listed_compliant,
        &settled,
        &counts,
    ))
}

/// Writes the textfile atomically, readable by a collector running as another user.
fn write_textfile(path: &Path, text: &str) -> CliResult {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let fail =
        |e: std::io::Error| CliError::failed(format!("--metrics-textfile {}: {e}", path.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut file = crate::durable::AtomicFile::create(dir).map_err(fail)?;
    file.file().write_all(text.as_bytes()).map_err(fail)?;
    file.file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(fail)?;
    file.commit(path).map_err(fail)
}
