//! Completion reports in the S3 Batch Operations layout:
//!
//! ```text
//! DEST/job-ID/manifest.json          Format Report_CSV_20180820, Results[], ReportSchema
//! DEST/job-ID/results/NAME.csv       Bucket,Key,VersionId,TaskStatus,HTTPStatusCode,ErrorCode,ResultMessage
//! ```
//!
//! Succeeded (and skipped) tasks and failed tasks go to separate result files, as S3
//! writes them. Keys are URL-encoded, so a failed-tasks report is itself a manifest that
//! `reseal job create --manifest` reads. No secret is ever written: results name objects
//! and errors, never keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::durable;
use crate::encoding::encode_key;
use crate::job::{Job, JobStore, JobStoreError, ReportScope, TaskState};

pub const REPORT_SCHEMA: &str =
    "Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] JobStoreError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes the report of `job` under `dest`; returns the report's manifest.json path.
pub async fn write_report(
    store: &dyn JobStore,
    job: &Job,
    dest: &Path,
    scope: ReportScope,
) -> Result<PathBuf, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    let dir = dest.join(format!("job-{}", job.id));
    let results_dir = dir.join("results");
    std::fs::create_dir_all(&results_dir).map_err(io(&results_dir))?;

    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    let mut after = -1;
    loop {
        let page = store.task_page(job, after, 8192).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, t) in page {
            let (status, out) = match t.state {
                TaskState::Succeeded | TaskState::Skipped => ("succeeded", &mut succeeded),
                TaskState::Failed => ("failed", &mut failed),
                TaskState::Pending | TaskState::Leased => continue,
            };
            if scope == ReportScope::Failed && status != "failed" {
                continue;
            }
            let message = t.message.unwrap_or_default();
            let message = if t.state == TaskState::Skipped {
                format!("Skipped: {message}")
            } else {
                message
            };
            writeln!(
                out,
                "{},{},{},{},{},{},{}",
                csv_field(&t.bucket),
                encode_key(&t.key),
                csv_field(t.version_id.as_deref().unwrap_or("")),
                status,
                t.http_status.map(|s| s.to_string()).unwrap_or_default(),
                csv_field(t.error_code.as_deref().unwrap_or("")),
                csv_field(&message),
            )
            .expect("writing to memory");
        }
    }

    let tmp = dir.clone();
    let mut results = Vec::new();
    for (status, rows) in [("succeeded", succeeded), ("failed", failed)] {
        if rows.is_empty() {
            continue;
        }
        let md5 = crate::encoding::hex(&Md5::digest(&rows));
        let name = format!("{status}-{md5}.csv");
        let path = results_dir.join(&name);
        durable::write_file(&tmp, &path, &rows).map_err(io(&path))?;
        results.push(serde_json::json!({
            "TaskExecutionStatus": status,
            "Bucket": dest.display().to_string(),
            "MD5Checksum": md5,
            "Key": format!("job-{}/results/{name}", job.id),
        }));
    }
    let manifest = serde_json::json!({
        "Format": "Report_CSV_20180820",
        "ReportCreationDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "Results": results,
        "ReportSchema": REPORT_SCHEMA,
    });
    let path = dir.join("manifest.json");
    let text = serde_json::to_vec_pretty(&manifest).expect("a report manifest serialises");
    durable::write_file(&tmp, &path, &text).map_err(io(&path))?;
    Ok(path)
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
