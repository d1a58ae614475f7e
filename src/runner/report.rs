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
///
/// Rows stream from the job store into the results files as they are read (memory stays
/// flat at any job size); each file is written beside its place and renamed into it once
/// whole, results first and manifest.json last, so that a reader who finds manifest.json
/// finds every file it names whole. A report cut short (the process killed) leaves no
/// manifest.json and is written again, to the same names, by the next run.
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
    // What a write that was cut short left behind: never read, not left to confuse.
    for entry in std::fs::read_dir(&results_dir).map_err(io(&results_dir))? {
        let path = entry.map_err(io(&results_dir))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            let _ = std::fs::remove_file(&path);
        }
    }

    let mut succeeded = ResultsFile::create(&results_dir).map_err(io(&results_dir))?;
    let mut failed = ResultsFile::create(&results_dir).map_err(io(&results_dir))?;
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
            let line = format!(
                "{},{},{},{},{},{},{}\n",
                csv_field(&t.bucket),
                encode_key(&t.key),
                csv_field(t.version_id.as_deref().unwrap_or("")),
                status,
                t.http_status.map(|s| s.to_string()).unwrap_or_default(),
                csv_field(t.error_code.as_deref().unwrap_or("")),
                csv_field(&message),
            );
            out.write(line.as_bytes()).map_err(io(&results_dir))?;
        }
    }

    let mut results = Vec::new();
    for (status, file) in [("succeeded", succeeded), ("failed", failed)] {
        let Some((name, md5)) = file
            .commit(&results_dir, status)
            .map_err(io(&results_dir))?
        else {
            continue;
        };
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
    durable::write_file(&dir, &path, &text).map_err(io(&path))?;
    Ok(path)
}

/// One results file being written: its rows go to a file beside its place, its MD5 (which
/// names it, as S3 names them) is computed as they go.
struct ResultsFile {
    out: std::io::BufWriter<durable::AtomicFile>,
    md5: Md5,
    rows: u64,
}

impl ResultsFile {
    fn create(dir: &Path) -> std::io::Result<ResultsFile> {
        Ok(ResultsFile {
            out: std::io::BufWriter::new(durable::AtomicFile::create(dir)?),
            md5: Md5::new(),
            rows: 0,
        })
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.md5.update(line);
        self.rows += 1;
        self.out.write_all(line)
    }

    /// Puts the file in place as `STATUS-MD5.csv`; returns its name and MD5, or nothing
    /// when it has no row (then it is dropped).
    fn commit(self, dir: &Path, status: &str) -> std::io::Result<Option<(String, String)>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        let md5 = crate::encoding::hex(&self.md5.finalize());
        let name = format!("{status}-{md5}.csv");
        file.commit(&dir.join(&name))?;
        Ok(Some((name, md5)))
    }
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
