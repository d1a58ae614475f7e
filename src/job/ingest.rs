//! Ingestion: a manifest becomes a job's tasks. The manifest is read on a blocking thread
//! and its rows reach the job store in batches over a bounded channel, so memory stays flat
//! whatever the manifest's size. All or nothing: a manifest that fails any check leaves the
//! job Failed, with the reason and without tasks.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::model::{Census, IngestCounts, Job, JobSpec, JobStatus};
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

/// Sees each row that becomes a task while a manifest is read (an estimate of the job
/// accumulates this way), on the reader's thread.
pub trait RowObserver: Send {
    fn task(&mut self, entry: &Entry);

    /// What it made of the rows, kept with the job (an estimate).
    fn finish(self: Box<Self>) -> Option<serde_json::Value> {
        None
    }
}

/// An observer that looks at nothing.
pub struct NoObserver;

impl RowObserver for NoObserver {
    fn task(&mut self, _: &Entry) {}
}

/// What reading a manifest found: its summary, the counts, the census of the bucket, and
/// what the observer made of the rows.
pub struct Survey {
    pub summary: ManifestSummary,
    pub counts: IngestCounts,
    pub census: Census,
    pub observed: Option<serde_json::Value>,
}

/// [`create_job`], with the delete markers and noncurrent versions that a listing found
/// and left out of the manifest added to the job's counts, and `observer` shown each row
/// that becomes a task (given back).
pub async fn create_job_counting(
    store: &dyn JobStore,
    new: NewJob,
    manifest_path: PathBuf,
    left_out: IngestCounts,
) -> Result<(Job, IngestCounts), IngestError> {
    create_job_observing(store, new, manifest_path, left_out, Box::new(NoObserver))
        .await
        .map(|(job, survey)| (job, survey.counts))
}

/// [`create_job_counting`] with an observer of the rows that become tasks.
pub async fn create_job_observing(
    store: &dyn JobStore,
    new: NewJob,
    manifest_path: PathBuf,
    left_out: IngestCounts,
    observer: Box<dyn RowObserver>,
) -> Result<(Job, Survey), IngestError> {
    let job = store.insert_job(&new).await?;
    store
        .set_status(&job, JobStatus::New, JobStatus::Preparing)
        .await?;
    match ingest(Some((store, &job)), manifest_path, &new.spec, observer).await {
        Ok(mut survey) => {
            survey.counts.delete_markers += left_out.delete_markers;
            survey.counts.noncurrent_versions += left_out.noncurrent_versions;
            let to = if new.spec.confirmation_required {
                JobStatus::Suspended
            } else {
                JobStatus::Ready
            };
            if let Some(estimate) = &survey.observed {
                store.set_estimate(&job, estimate).await?;
            }
            store
                .finish_preparing(&job, &survey.summary, &survey.counts, &survey.census, to)
                .await?;
            Ok((store.job(&job.id).await?, survey))
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

/// Reads a manifest as `spec` would take it, without creating a job: for an estimate.
pub async fn survey_manifest(
    manifest_path: PathBuf,
    spec: &JobSpec,
    observer: Box<dyn RowObserver>,
) -> Result<Survey, ManifestError> {
    match ingest(None, manifest_path, spec, observer).await {
        Ok(survey) => Ok(survey),
        Err(Failure::Manifest(e)) => Err(e),
        Err(Failure::Store(e)) => unreachable!("no job store is written without a job: {e}"),
    }
}

enum Failure {
    Manifest(ManifestError),
    Store(JobStoreError),
}

/// Reads the manifest on a blocking thread; its tasks go to `job`'s store in batches, or
/// nowhere for a survey.
async fn ingest(
    job: Option<(&dyn JobStore, &Job)>,
    path: PathBuf,
    spec: &JobSpec,
    observer: Box<dyn RowObserver>,
) -> Result<Survey, Failure> {
    let (tx, mut rx) = mpsc::channel::<Vec<Entry>>(4);
    let (filter, required) = (spec.filter.clone(), spec.required_columns());
    let reader =
        tokio::task::spawn_blocking(move || read_manifest(&path, &filter, &required, observer, tx));

    let mut written = 0u64;
    let mut store_error = None;
    while let Some(batch) = rx.recv().await {
        if let Some((store, job)) = job
            && let Err(e) = store.insert_tasks(job, written, &batch).await
        {
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
    let survey = outcome.map_err(Failure::Manifest)?;
    debug_assert_eq!(survey.counts.tasks, written);
    Ok(survey)
}

/// Runs on a blocking thread: opens and checks the manifest, then reads every row, keeps
/// those that are tasks and pass the filter, and sends them in batches. The census counts
/// the current versions the filters keep: the objects the job answers for.
fn read_manifest(
    path: &std::path::Path,
    filter: &Filter,
    required: &[(&'static str, Column)],
    mut observer: Box<dyn RowObserver>,
    tx: mpsc::Sender<Vec<Entry>>,
) -> Result<Survey, ManifestError> {
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
    let mut census = Census::default();
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
            RowKind::Current if filter.is_listed_compliant(&row.entry) => {
                census.add(row.entry.encryption_status, row.entry.size.unwrap_or(0));
                counts.rows_compliant += 1
            }
            RowKind::Current => {
                census.add(row.entry.encryption_status, row.entry.size.unwrap_or(0));
                counts.tasks += 1;
                counts.bytes += row.entry.size.unwrap_or(0);
                observer.task(&row.entry);
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
    Ok(Survey {
        summary: manifest.summary().clone(),
        counts,
        census,
        observed: observer.finish(),
    })
}
