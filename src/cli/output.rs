//! What the commands print: human tables and descriptions, or JSON with `--output json`.
//! A closed pipe (`reseal job list | head`) is not an error.

use std::io::Write;

use serde::Serialize;

use super::{CliError, CliResult};
use crate::job::{IngestCounts, Job, JobSpec, JobStatus, TaskCounts, Worker};
use crate::manifest::ManifestSummary;
use crate::time::format_time;

/// A job as `describe` and `list --output json` show it.
#[derive(Debug, Serialize)]
pub struct JobView<'a> {
    pub id: &'a str,
    pub status: JobStatus,
    pub priority: i64,
    pub description: &'a str,
    pub spec: &'a JobSpec,
    pub manifest_location: &'a str,
    pub manifest: Option<&'a ManifestSummary>,
    pub ingest: IngestCounts,
    pub tasks: TaskCounts,
    pub failure_reasons: &'a [String],
    pub target: Option<&'a crate::job::TargetSpec>,
    pub created: String,
    pub updated: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// The runs that worked on it (`describe` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerView>,
    /// What running it costs, estimated at its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<&'a serde_json::Value>,
    /// While it runs: the time left at the rate its workers measure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<String>,
}

/// A worker as `describe` shows it.
#[derive(Debug, Serialize)]
pub struct WorkerView {
    pub owner: String,
    pub host: String,
    pub tasks_done: u64,
    pub bytes: u64,
    /// Tasks per second over its life.
    pub rate: f64,
    pub started: String,
    pub last_seen: String,
}

impl WorkerView {
    pub fn new(w: &Worker) -> WorkerView {
        WorkerView {
            owner: w.owner.clone(),
            host: w.host().to_owned(),
            tasks_done: w.tasks_done,
            bytes: w.bytes,
            rate: (w.rate() * 10.0).round() / 10.0,
            started: format_time(w.started_at),
            last_seen: format_time(w.last_seen),
        }
    }
}

impl<'a> JobView<'a> {
    pub fn new(job: &'a Job, tasks: TaskCounts) -> Self {
        JobView {
            id: &job.id,
            status: job.status,
            priority: job.priority,
            description: &job.description,
            spec: &job.spec,
            manifest_location: &job.manifest_location,
            manifest: job.manifest.as_ref(),
            ingest: job.ingest,
            tasks,
            failure_reasons: &job.failure_reasons,
            target: job.target.as_ref(),
            created: format_time(job.created_at),
            updated: format_time(job.updated_at),
            started: job.started_at.map(format_time),
            finished: job.finished_at.map(format_time),
            workers: Vec::new(),
            estimate: job.estimate.as_ref(),
            remaining: None,
        }
    }
}

pub fn emit(text: &str) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

pub fn print_json<T: Serialize>(value: &T) -> CliResult {
    let mut text = serde_json::to_string_pretty(value).expect("views serialise");
    text.push('\n');
    emit(&text)
}

pub fn print_job_table(jobs: &[Job]) -> CliResult {
    let header = [
        "ID",
        "STATUS",
        "PRIORITY",
        "TASKS",
        "CREATED",
        "DESCRIPTION",
    ];
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.clone(),
                j.status.to_string(),
                j.priority.to_string(),
                j.ingest.tasks.to_string(),
                format_time(j.created_at),
                j.description.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.push_str(l.trim_end());
        text.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    emit(&text)
}

pub fn print_describe(v: &JobView<'_>) -> CliResult {
    let mut lines: Vec<(&str, String)> = vec![
        ("Job", v.id.to_owned()),
        ("Status", v.status.to_string()),
        ("Priority", v.priority.to_string()),
    ];
    if !v.description.is_empty() {
        lines.push(("Description", v.description.to_owned()));
    }
    let mut operation = format!("re-encrypt with {}", v.spec.sse);
    if v.spec.bucket_key {
        operation.push_str(", S3 Bucket Key on");
    }
    lines.push(("Operation", operation));
    if let Some(source) = &v.spec.source_sse_c {
        lines.push((
            "Source key",
            format!("SSE-C key from {}, MD5 {}", source.source, source.md5),
        ));
    }
    lines.push(("Filters", v.spec.filter.describe()));
    lines.push((
        "Target",
        v.target.map_or_else(
            || "not set yet (given at the first run)".to_owned(),
            |t| t.to_string(),
        ),
    ));
    let manifest = match v.manifest {
        Some(m) => {
            let mut s = format!("{} {}", m.format, m.location);
            if let Some(bucket) = &m.source_bucket {
                s.push_str(&format!("\n  source bucket {bucket}"));
            }
            if let Some(created) = m.created {
                s.push_str(&format!(", created {}", format_time(created)));
            }
            if !m.data_files.is_empty() {
                s.push_str(&format!("\n  {} data files", m.data_files.len()));
            }
            let columns: Vec<&str> = m.columns.iter().map(|c| c.name()).collect();
            s.push_str(&format!("\n  columns {}", columns.join(", ")));
            s.push_str(&format!("\n  MD5 {}", m.md5));
            s
        }
        None => format!("{} (not read)", v.manifest_location),
    };
    lines.push(("Manifest", manifest));
    let i = v.ingest;
    lines.push((
        "Rows",
        format!(
            "{} read, {} filtered out, {} delete markers, {} noncurrent versions",
            i.rows_read, i.rows_filtered, i.delete_markers, i.noncurrent_versions
        ),
    ));
    let t = v.tasks;
    lines.push((
        "Tasks",
        format!(
            "{} total ({}): {} pending, {} leased, {} succeeded, {} failed, {} skipped",
            t.total,
            human_bytes(i.bytes),
            t.pending,
            t.leased,
            t.succeeded,
            t.failed,
            t.skipped
        ),
    ));
    if let Some(report) = &v.spec.report {
        lines.push((
            "Report",
            format!(
                "{} (scope {})",
                report.destination,
                match report.scope {
                    crate::job::ReportScope::All => "all",
                    crate::job::ReportScope::Failed => "failed",
                }
            ),
        ));
    }
    lines.push(("Created", v.created.clone()));
    lines.push(("Updated", v.updated.clone()));
    if let Some(t) = &v.started {
        lines.push(("Started", t.clone()));
    }
    if let Some(t) = &v.finished {
        lines.push(("Finished", t.clone()));
    }
    for reason in v.failure_reasons {
        lines.push(("Failure", reason.clone()));
    }
    if v.status == JobStatus::Suspended
        && let Some(estimate) = v.estimate
    {
        lines.extend(estimate_lines(estimate));
    }
    if let Some(eta) = &v.remaining {
        lines.push(("Remaining", eta.clone()));
    }
    for w in &v.workers {
        lines.push((
            "Worker",
            format!(
                "{} ({}): {} tasks, {}, {:.1} tasks/s, last seen {}",
                w.host,
                w.owner,
                w.tasks_done,
                human_bytes(w.bytes),
                w.rate,
                w.last_seen
            ),
        ));
    }
    emit(&aligned(&lines))
}

/// An estimate (as `job create --estimate` made it) as lines of text.
pub fn estimate_lines(value: &serde_json::Value) -> Vec<(&'static str, String)> {
    let Ok(e) = serde_json::from_value::<crate::estimate::Estimate>(value.clone()) else {
        return vec![("Estimate", "not readable by this reseal".into())];
    };
    let tallies = |m: &std::collections::BTreeMap<String, crate::job::Tally>| {
        m.iter()
            .map(|(k, t)| format!("{k} {} ({})", t.objects, human_bytes(t.bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let requests: Vec<String> = e.requests.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let c = &e.cost;
    let d = &e.min_duration;
    let mut lines = vec![
        (
            "Objects",
            format!("{} ({})", e.objects, human_bytes(e.bytes)),
        ),
        ("By mode", tallies(&e.by_mode)),
        ("By method", tallies(&e.by_method)),
        (
            "Requests",
            if requests.is_empty() {
                "none (the local store)".into()
            } else {
                format!("{}: ${:.4}", requests.join(", "), c.requests_usd)
            },
        ),
        (
            "KMS",
            format!(
                "{} requests (${:.4}); with a Bucket Key about {} (${:.4})",
                e.kms_requests.without_bucket_key,
                c.kms_usd_without_bucket_key,
                e.kms_requests.with_bucket_key,
                c.kms_usd_with_bucket_key
            ),
        ),
    ];
    if c.new_versions_bytes > 0 {
        lines.push((
            "New versions",
            format!(
                "{} (${:.2} a month until the old versions expire)",
                human_bytes(c.new_versions_bytes),
                c.new_versions_usd_per_month
            ),
        ));
    }
    lines.push((
        "Duration",
        format!(
            "at least {:.1} s (busiest prefix {}: {:.1} s at S3's per-prefix rates; KMS at {}/s: {:.1} s)",
            d.seconds,
            d.busiest_prefix.as_deref().unwrap_or("none"),
            d.busiest_prefix_seconds,
            d.kms_requests_per_second,
            d.kms_seconds
        ),
    ));
    lines.push(("Prices", c.prices.as_of.clone()));
    lines
}

/// Prints an estimate as `job create --estimate` shows it.
pub fn print_estimate(value: &serde_json::Value) -> CliResult {
    emit(&aligned(&estimate_lines(value)))
}

/// Lines of `label  value`, the labels padded to one width.
fn aligned(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (k, value) in lines {
        text.push_str(&format!("{k:<width$}  {value}\n"));
    }
    text
}

/// A span of time as `2d 3h`, `5h 10m`, `4m 2s` or `42s`.
pub fn human_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A sweep's census as lines: the objects in scope, by mode before and after, and the
/// compliant share.
pub fn census_lines(v: &crate::sweep::CensusView) -> Vec<(&'static str, String)> {
    let tallies = |m: &std::collections::BTreeMap<String, crate::job::Tally>| {
        if m.is_empty() {
            return "no objects".to_owned();
        }
        m.iter()
            .map(|(k, t)| format!("{k} {} ({})", t.objects, human_bytes(t.bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut compliant = format!(
        "{:.1}% of objects, {:.2}% of bytes ({})",
        v.compliant_objects_percent, v.compliant_bytes_percent, v.wanted
    );
    if v.failed + v.not_run > 0 {
        compliant.push_str(&format!("; {} failed, {} not run yet", v.failed, v.not_run));
    }
    vec![
        (
            "objects",
            format!("{} ({})", v.scope.objects, human_bytes(v.scope.bytes)),
        ),
        ("before", tallies(&v.before)),
        ("after", tallies(&v.after)),
        ("compliant", compliant),
    ]
}

/// Prints a sweep's census, indented under its summary, on stderr.
pub fn print_census(v: &crate::sweep::CensusView) {
    for line in aligned(&census_lines(v)).lines() {
        eprintln!("  {line}");
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
