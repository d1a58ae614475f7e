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
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (k, value) in lines {
        text.push_str(&format!("{k:<width$}  {value}\n"));
    }
    emit(&text)
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
