//! `reseal job …`: turns arguments into a validated `JobSpec` and calls the job store.

use std::path::{Path, PathBuf};

use crate::targets::s3::files::{self, S3Url, TempDir};

use super::args::{CreateArgs, EstimateArgs, JobArgs, JobCommand, Output, RunOptionArgs, S3Args};
use super::output;
use super::{CliError, CliResult};
use crate::estimate::{Estimator, Prices, Rates, Where};
use crate::job::{
    self, IngestError, JobSpec, JobStatus, JobStore, NewJob, Operation, ReportScope, ReportSpec,
};
use crate::manifest::Filter;
use crate::sse::{CustomerKeyRef, CustomerKeySource, SseMode, SseSpec};
use crate::targets::s3::S3Options;
use crate::targets::s3::plan::Wants;

pub async fn run(db: &str, command: JobCommand) -> CliResult {
    // Everything a user typed is checked before the job store is touched.
    let create = match &command {
        JobCommand::Create(args) => Some(validate_create(args)?),
        _ => None,
    };
    let store = crate::job::open_store(db).await?;
    let store = store.as_ref();
    match command {
        JobCommand::Create(args) if args.job.estimating.estimate => {
            let (new, source) = create.expect("validated above");
            print_estimate_only(new, source, &args.job.target.s3, &args.job.estimating, None).await
        }
        JobCommand::Create(args) => {
            let (new, source) = create.expect("validated above");
            let job = create_and_ingest(
                store,
                new,
                source,
                &args.job.target.s3,
                &args.job.estimating,
                None,
            )
            .await?;
            println!("{}", job.id);
            Ok(())
        }
        JobCommand::List { status, output } => {
            let status = status
                .map(|s| s.parse::<JobStatus>())
                .transpose()
                .map_err(CliError::input)?;
            let jobs = store.list_jobs(status).await?;
            match output {
                Output::Table => output::print_job_table(&jobs),
                Output::Json => {
                    let mut views = Vec::with_capacity(jobs.len());
                    for job in &jobs {
                        views.push(output::JobView::new(job, store.task_counts(job).await?));
                    }
                    output::print_json(&views)
                }
            }
        }
        JobCommand::Describe { id, output } => {
            let job = store.job(&id).await?;
            let mut view = output::JobView::new(&job, store.task_counts(&job).await?);
            let workers = store.workers(&job).await?;
            view.remaining = remaining(&job, &view.tasks, &workers);
            view.workers = workers.iter().map(output::WorkerView::new).collect();
            match output {
                Output::Table => output::print_describe(&view),
                Output::Json => output::print_json(&view),
            }
        }
        JobCommand::Confirm { id } => steer(store, &id, Operation::Confirm).await,
        JobCommand::Pause { id } => steer(store, &id, Operation::Pause).await,
        JobCommand::Resume { id } => steer(store, &id, Operation::Resume).await,
        JobCommand::Cancel { id } => steer(store, &id, Operation::Cancel).await,
        JobCommand::Run {
            id,
            target,
            options,
        } => super::run::run_jobs(store, id.as_deref(), &target, &options).await,
        JobCommand::Report { id, out, scope, s3 } => {
            let job = store.job(&id).await?;
            let out = if out.starts_with("s3://") {
                S3Url::parse(&out).map_err(|e| CliError::input(format!("--out {e}")))?;
                out
            } else {
                std::path::absolute(&out)
                    .map_err(|e| CliError::input(format!("--out {out}: {e}")))?
                    .display()
                    .to_string()
            };
            let at = super::run::write_report(store, &job, &out, scope.into(), &s3).await?;
            eprintln!("report of job {}: {at}", job.id);
            Ok(())
        }
        JobCommand::Priority { id, priority } => {
            let job = store.set_priority(&id, priority).await?;
            eprintln!("job {}: priority {}", job.id, job.priority);
            Ok(())
        }
    }
}

/// How long an Active job's remaining tasks take at the rate of the workers seen in the
/// last minute.
fn remaining(
    job: &crate::job::Job,
    tasks: &crate::job::TaskCounts,
    workers: &[crate::job::Worker],
) -> Option<String> {
    if job.status != JobStatus::Active {
        return None;
    }
    let now = crate::time::now_ms();
    let rate: f64 = workers
        .iter()
        .filter(|w| now - w.last_seen < 60_000)
        .map(crate::job::Worker::rate)
        .sum();
    let left = tasks.pending + tasks.leased;
    (rate > 0.0).then(|| {
        format!(
            "{left} tasks, about {:.0} s at {rate:.0} tasks/s (the workers' measured rate)",
            left as f64 / rate
        )
    })
}

async fn steer(store: &dyn JobStore, id: &str, op: Operation) -> CliResult {
    let job = store.job(id).await?;
    let (from, to) = store.apply(&job.id, op).await?;
    eprintln!("job {}: {from} -> {to}", job.id);
    Ok(())
}

/// Where a job's objects are listed.
#[derive(Debug)]
pub enum Source {
    File(PathBuf),
    /// A manifest on S3.
    S3(S3Url),
    /// No manifest: a listing of a bucket (prefix).
    Listing {
        url: S3Url,
        all_versions: bool,
    },
}

/// A manifest read where it is: a local file as it is, one on S3 or a listing fetched
/// into a temporary folder (removed when this is dropped). Errors about the temporary
/// copy name the S3 location instead.
pub struct Fetched {
    pub path: PathBuf,
    /// Delete markers and noncurrent versions a listing found and left out.
    pub left_out: crate::job::IngestCounts,
    temp: Option<(TempDir, String)>,
}

impl Fetched {
    /// `text` with the temporary folder's path replaced by the S3 location.
    pub fn shown(&self, text: &str) -> String {
        match &self.temp {
            Some((dir, shown)) => text.replace(&format!("{}/", dir.path().display()), shown),
            None => text.to_owned(),
        }
    }
}

/// Fetches what `source` names, as [`Fetched`].
pub async fn fetch_source(new: &NewJob, source: Source, s3: &S3Args) -> Result<Fetched, CliError> {
    let mut left_out = crate::job::IngestCounts::default();
    let (path, temp) = match source {
        Source::File(path) => (path, None),
        Source::S3(url) => {
            let client = super::run::connect_s3(endpoint_for(new), s3).await?;
            let dir = TempDir::new("manifest").map_err(CliError::failed)?;
            let path = files::fetch_manifest(&client, &url, dir.path())
                .await
                .map_err(|e| CliError::s3_files("--manifest", e))?;
            (path, Some((dir, format!("s3://{}/", url.bucket))))
        }
        Source::Listing { url, all_versions } => {
            let client = super::run::connect_s3(endpoint_for(new), s3).await?;
            let dir = TempDir::new("listing").map_err(CliError::failed)?;
            let path = dir.path().join("listing.csv");
            let counts = files::list_to_csv(&client, &url, all_versions, &path)
                .await
                .map_err(|e| CliError::s3_files("--from-listing", e))?;
            if all_versions {
                eprintln!(
                    "listed {url}: {} current versions; {} noncurrent versions and {} delete markers are not tasks",
                    counts.objects, counts.noncurrent_versions, counts.delete_markers
                );
            }
            left_out.noncurrent_versions = counts.noncurrent_versions;
            left_out.delete_markers = counts.delete_markers;
            (path, Some((dir, format!("{url} (listing) "))))
        }
    };
    Ok(Fetched {
        path,
        left_out,
        temp,
    })
}

/// Creates a job from its manifest and says so on stderr; its estimate is kept with it.
pub async fn create_and_ingest(
    store: &dyn JobStore,
    new: NewJob,
    source: Source,
    s3: &S3Args,
    estimating: &EstimateArgs,
    run: Option<&RunOptionArgs>,
) -> Result<crate::job::Job, CliError> {
    let fetched = fetch_source(&new, source, s3).await?;
    let estimator = estimating.estimator(&new, run)?;
    let outcome = job::create_job_observing(
        store,
        new,
        fetched.path.clone(),
        fetched.left_out,
        Box::new(estimator),
    )
    .await;
    match outcome {
        Ok((job, survey)) => {
            let counts = survey.counts;
            eprintln!(
                "job {}: {} ({} tasks from {} rows; {} filtered out, {} already compliant, {} delete markers, {} noncurrent versions)",
                job.id,
                job.status,
                counts.tasks,
                counts.rows_read,
                counts.rows_filtered,
                counts.rows_compliant,
                counts.delete_markers,
                counts.noncurrent_versions
            );
            if job.status == JobStatus::Suspended {
                eprintln!("confirm it with: reseal job confirm {}", job.id);
            }
            Ok(job)
        }
        Err(IngestError::Manifest { job_id, reason }) => Err(CliError::input(format!(
            "{}\njob {job_id} is Failed and holds no tasks",
            fetched.shown(&reason)
        ))),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}

/// `--estimate`: reads the manifest as the job would, prints what running it would cost,
/// and creates no job.
pub async fn print_estimate_only(
    new: NewJob,
    source: Source,
    s3: &S3Args,
    estimating: &EstimateArgs,
    run: Option<&RunOptionArgs>,
) -> CliResult {
    let fetched = fetch_source(&new, source, s3).await?;
    let estimator = estimating.estimator(&new, run)?;
    let survey = job::survey_manifest(fetched.path.clone(), &new.spec, Box::new(estimator))
        .await
        .map_err(|e| CliError::input(fetched.shown(&e.to_string())))?;
    let estimate = survey.observed.unwrap_or_default();
    match estimating.output {
        Output::Json => output::print_json(&estimate),
        Output::Table => output::print_estimate(&estimate),
    }
}

impl EstimateArgs {
    /// An estimator for `new`'s target and spec, planned with the run options given (the
    /// defaults for `job create`, which has none).
    pub fn estimator(
        &self,
        new: &NewJob,
        run: Option<&RunOptionArgs>,
    ) -> Result<Estimator, CliError> {
        let options = match (run, new.target.as_ref()) {
            (Some(run), Some(spec)) => {
                super::run::s3_options(run, spec, endpoint_for(new).as_deref())?
            }
            _ => S3Options::default(),
        };
        let prices = match &self.prices {
            None => Prices::default(),
            Some(path) => {
                let text = std::fs::read(path)
                    .map_err(|e| CliError::input(format!("--prices {}: {e}", path.display())))?;
                serde_json::from_slice(&text).map_err(|e| {
                    CliError::input(format!(
                        "--prices {}: not a price table: {e}",
                        path.display()
                    ))
                })?
            }
        };
        let target = match &new.target {
            Some(crate::job::TargetSpec::Local { .. }) => Where::Local {
                mode: new.spec.sse.mode(),
            },
            other => Where::S3 {
                wants: Wants {
                    mode: new.spec.sse.mode(),
                    named_kms_key: match &new.spec.sse {
                        SseSpec::SseKms { key_id } => key_id.is_some(),
                        SseSpec::DsseKms { .. } => true,
                        _ => false,
                    },
                },
                options: S3Options {
                    amazon: !matches!(
                        other,
                        Some(crate::job::TargetSpec::S3 {
                            endpoint_url: Some(_),
                            ..
                        })
                    ),
                    ..options
                },
                trusted: new.spec.trust_inventory,
            },
        };
        Ok(Estimator::new(
            target,
            prices,
            Rates {
                kms_per_second: f64::from(self.kms_rps.max(1)),
                ..Rates::default()
            },
        ))
    }
}

/// The endpoint a new job's S3 target names, for reading its manifest.
fn endpoint_for(new: &NewJob) -> Option<String> {
    match &new.target {
        Some(crate::job::TargetSpec::S3 { endpoint_url, .. }) => endpoint_url.clone(),
        _ => None,
    }
}

pub fn validate_create(args: &CreateArgs) -> Result<(NewJob, Source), CliError> {
    let (source, location) = match (&args.manifest, &args.from_listing) {
        (Some(m), None) if m.starts_with("s3://") => {
            let url = S3Url::parse(m).map_err(|e| CliError::input(format!("--manifest {e}")))?;
            let shown = url.to_string();
            (Source::S3(url), shown)
        }
        (Some(m), None) => {
            let path = std::path::absolute(Path::new(m))
                .map_err(|e| CliError::input(format!("--manifest {m}: {e}")))?;
            let shown = path.display().to_string();
            (Source::File(path), shown)
        }
        (None, Some(l)) => {
            let url =
                S3Url::parse(l).map_err(|e| CliError::input(format!("--from-listing {e}")))?;
            let shown = format!("listing of {url}");
            (
                Source::Listing {
                    url,
                    all_versions: args.all_versions,
                },
                shown,
            )
        }
        _ => {
            return Err(CliError::input(
                "give one of --manifest PATH|S3URL and --from-listing S3URL",
            ));
        }
    };
    Ok((validate_job(&args.job, location)?, source))
}

/// Checks what a job does and makes its [`NewJob`], its manifest at `location`.
pub fn validate_job(args: &JobArgs, location: String) -> Result<NewJob, CliError> {
    let sse = SseSpec::parse(&args.sse).map_err(|e| CliError::input(format!("--sse {e}")))?;
    let source_sse_c = args
        .source_sse_c
        .as_deref()
        .map(|s| {
            CustomerKeySource::parse(s)
                .and_then(CustomerKeyRef::resolve)
                .map(|(key_ref, _key)| key_ref)
        })
        .transpose()
        .map_err(|e| CliError::input(format!("--source-sse-c {e}")))?;
    if args.bucket_key && !matches!(sse, SseSpec::SseKms { .. }) {
        return Err(CliError::input(format!(
            "--bucket-key applies to SSE-KMS only; --sse is {}",
            sse.mode()
        )));
    }

    let filter = Filter {
        prefix: args.prefix.clone().filter(|p| !p.is_empty()),
        suffix: args.suffix.clone().filter(|s| !s.is_empty()),
        min_size: args
            .min_size
            .as_deref()
            .map(|s| parse_size(s).map_err(|e| CliError::input(format!("--min-size {e}"))))
            .transpose()?,
        max_size: args
            .max_size
            .as_deref()
            .map(|s| parse_size(s).map_err(|e| CliError::input(format!("--max-size {e}"))))
            .transpose()?,
        modified_after: args
            .modified_after
            .as_deref()
            .map(|s| parse_time(s).map_err(|e| CliError::input(format!("--modified-after {e}"))))
            .transpose()?,
        modified_before: args
            .modified_before
            .as_deref()
            .map(|s| parse_time(s).map_err(|e| CliError::input(format!("--modified-before {e}"))))
            .transpose()?,
        storage_classes: args
            .storage_class
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect(),
        encryption: args
            .match_encryption
            .iter()
            .map(|m| m.parse::<SseMode>())
            .collect::<Result<_, _>>()
            .map_err(|e| CliError::input(format!("--match-encryption: {e}")))?,
        listed_compliant: None,
    };
    if let (Some(min), Some(max)) = (filter.min_size, filter.max_size)
        && min > max
    {
        return Err(CliError::input(format!(
            "--min-size ({min}) is larger than --max-size ({max}): no object can match"
        )));
    }
    if let (Some(after), Some(before)) = (filter.modified_after, filter.modified_before)
        && after >= before
    {
        return Err(CliError::input(
            "--modified-after is not before --modified-before: no object can match",
        ));
    }

    if args.description.chars().count() > 256 {
        return Err(CliError::input(
            "--description is longer than 256 characters",
        ));
    }
    let report = match &args.report {
        None => None,
        Some(dest) if dest.starts_with("s3://") => Some(ReportSpec {
            destination: S3Url::parse(dest)
                .map_err(|e| CliError::input(format!("--report {e}")))?
                .to_string(),
            scope: args.report_scope.map_or(ReportScope::All, Into::into),
        }),
        Some(dest) => Some(ReportSpec {
            destination: std::path::absolute(dest)
                .map_err(|e| CliError::input(format!("--report {dest}: {e}")))?
                .display()
                .to_string(),
            scope: args.report_scope.map_or(ReportScope::All, Into::into),
        }),
    };

    if args.trust_inventory && args.target.store.is_some() {
        return Err(CliError::input(
            "--trust-inventory saves requests to S3; the local store is inspected directly",
        ));
    }
    if args.target.store.is_some() && args.target.s3.endpoint_url.is_some() {
        return Err(CliError::input(
            "--store and --endpoint-url name two targets: give one",
        ));
    }
    let spec = JobSpec {
        sse,
        source_sse_c,
        bucket_key: args.bucket_key,
        filter,
        confirmation_required: args.confirmation_required,
        trust_inventory: args.trust_inventory,
        report,
    };
    Ok(NewJob {
        spec,
        target: match (&args.target.store, &args.target.s3.endpoint_url) {
            (Some(dir), _) => Some(super::run::local_target_spec(dir)?),
            (None, Some(url)) => Some(crate::job::TargetSpec::s3(Some(url.clone()))),
            (None, None) => None,
        },
        priority: args.priority,
        description: args.description.clone(),
        manifest_location: location,
    })
}

/// Parses a size: bytes, or a number with a unit (K/KiB/M/MiB/G/GiB/T/TiB are powers of
/// 1024; KB/MB/GB/TB powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (say 1048576, 10KiB, 5MB or 1GiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "{s:?} has an unknown unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a duration: whole numbers with units, `90s`, `2m`, `1h30m`, `2d`, or plain
/// seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a duration (say 90s, 2m, 1h30m or 2d)");
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || t.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// Parses a time: RFC 3339 (`2024-05-01T12:00:00Z`) or a date (`2024-05-01`, midnight UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(time.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .map(|d| {
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis()
        })
        .map_err(|_| format!("{s:?} is not a time (say 2024-05-01 or 2024-05-01T12:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("10KiB"), Ok(10 << 10));
        assert_eq!(parse_size("10k"), Ok(10 << 10));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "m", "5x", "1h30", "-3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Ok(0));
        assert!(parse_time("yesterday").is_err());
    }
}
