//! Ingestion: a manifest becomes a job's tasks. The manifest is read on a blocking thread
//! and its rows reach the job store in batches over a bounded channel, so memory stays flat
//! whatever the manifest's size. All or nothing: a manifest that fails any check leaves the
//! job Failed, with the reason and without tasks.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::model::{IngestCounts, Job, JobStatus};
use super::store::{JobStore, JobStoreError, NewJob};
use crate::manifest::{Column, Entry, Filter, Manifest, ManifestError, ManifestSummary, RowKind};

/// Tasks per batch written to the job store (one transaction each).
const BATCH: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The manifest was refused; the job is Failed with this reason.
    #[error("job {job_id} failed: {reason}")]
    Manifest { job_id: String, reason: String },
    #[error(transparent)]
    Store(#[from] JobStoreError),
}

/// Creates a job and ingests its manifest. Returns the job as it stands afterwards (Ready,
/// or Suspended when confirmation is required).
pub async fn create_job(
    store: &dyn JobStore,
    new: NewJob,
    manifest_path: PathBuf,
) -> Result<(Job, IngestCounts), IngestError> {
    create_job_counting(store, new, manifest_path, IngestCounts::default()).await
}

/// [`create_job`], with the delete markers and noncurrent versions that a listing found
/// and left out of the manifest added to the job's counts.
pub async fn create_job_counting(
    store: &dyn JobStore,
    new: NewJob,
    manifest_path: PathBuf,
    left_out: IngestCounts,
) -> Result<(Job, IngestCounts), IngestError> {
    let job = store.insert_job(&new).await?;
    store
        .set_status(&job, JobStatus::New, JobStatus::Preparing)
        .await?;
    match ingest(
        store,
        &job,
        manifest_path,
        new.spec.filter.clone(),
        new.spec.required_columns(),
    )
    .await
    {
        Ok((summary, mut counts)) => {
            counts.delete_markers += left_out.delete_markers;
            counts.noncurrent_versions += left_out.noncurrent_versions;
            let to = if new.spec.confirmation_required {
                JobStatus::Suspended
            } else {
                JobStatus::Ready
            };
            store.finish_preparing(&job, &summary, &counts, to).await?;
            Ok((store.job(&job.id).await?, counts))
        }
        Err(Failure::Manifest(e)) => {
            let reason = e.to_string();
            store.fail(&job, &reason).await?;
            Err(IngestError::Manifest {
                job_id: job.id,
                reason,
            })
        }
        Err(Failure::Store(e)) => {
            // The store failed mid-way; try to leave the job unrunnable, and report the
            // original error whatever happens to this attempt.
            let _ = store.fail(&job, &format!("ingestion stopped: {e}")).await;
            Err(IngestError::Store(e))
        }
    }
}

enum Failure {
    Manifest(ManifestError),
    Store(JobStoreError),
}

async fn ingest(
    store: &dyn JobStore,
    job: &Job,
    path: PathBuf,
    filter: Filter,
    required: Vec<(&'static str, Column)>,
) -> Result<(ManifestSummary, IngestCounts), Failure> {
    let (tx, mut rx) = mpsc::channel::<Vec<Entry>>(4);
    let reader = tokio::task::spawn_blocking(move || read_manifest(&path, &filter, &required, tx));

    let mut written = 0u64;
    let mut store_error = None;
    while let Some(batch) = rx.recv().await {
        if let Err(e) = store.insert_tasks(job, written, &batch).await {
            store_error = Some(e);
            break;
        }
        written += batch.len() as u64;
    }
    // Dropping the receiver stops the reader if the store failed.
    drop(rx);
    let outcome = reader.await.expect("the manifest reader does not panic");
    if let Some(e) = store_error {
        return Err(Failure::Store(e));
    }
    let (summary, counts) = outcome.map_err(Failure::Manifest)?;
    debug_assert_eq!(counts.tasks, written);
    Ok((summary, counts))
}

/// Runs on a blocking thread: opens and checks the manifest, then reads every row, keeps
/// those that are tasks and pass the filter, and sends them in batches.
fn read_manifest(
    path: &std::path::Path,
    filter: &Filter,
    required: &[(&'static str, Column)],
    tx: mpsc::Sender<Vec<Entry>>,
) -> Result<(ManifestSummary, IngestCounts), ManifestError> {
    let manifest = Manifest::open(path)?;
    let missing: Vec<String> = required
        .iter()
        .filter(|(_, column)| !manifest.has_column(*column))
        .map(|(flag, column)| format!("{flag} needs the {column} column"))
        .collect();
    if !missing.is_empty() {
        let has: Vec<&str> = manifest
            .summary()
            .columns
            .iter()
            .map(|c| c.name())
            .collect();
        return Err(ManifestError::invalid(
            path,
            format!(
                "{}, which this manifest does not have (it has: {})",
                missing.join("; "),
                has.join(", ")
            ),
        ));
    }

    let mut counts = IngestCounts::default();
    let mut batch = Vec::with_capacity(BATCH);
    let send = |batch: Vec<Entry>| {
        tx.blocking_send(batch)
            .map_err(|_| ManifestError::Stopped("the job store stopped taking tasks".into()))
    };
    manifest.read_rows(&mut |row| {
        counts.rows_read += 1;
        match row.kind {
            RowKind::DeleteMarker => counts.delete_markers += 1,
            RowKind::Noncurrent => counts.noncurrent_versions += 1,
            RowKind::Current if !filter.matches(&row.entry) => counts.rows_filtered += 1,
            RowKind::Current => {
                counts.tasks += 1;
                counts.bytes += row.entry.size.unwrap_or(0);
                batch.push(row.entry);
                if batch.len() == BATCH {
                    send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))?;
                }
            }
        }
        Ok(())
    })?;
    if counts.rows_read == 0 {
        return Err(ManifestError::invalid(
            path,
            "the manifest has no rows: there is nothing to do",
        ));
    }
    if !batch.is_empty() {
        send(batch)?;
    }
    Ok((manifest.summary().clone(), counts))
}
