//! `reseal demo`: the main job end to end, from nothing. Makes a local store with a
//! demo-only master key, writes objects of mixed sizes in mixed modes (plaintext, SSE-S3,
//! SSE-C), writes an S3 Inventory report of them, and runs a job that makes every object
//! SSE-KMS, with progress, summary, report and an object's `head` before and after.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use rayon::prelude::*;

use super::args::{Output, RunOptionArgs, StoreArgs, TargetArgs};
use super::store::StoreCommand;
use super::{CliError, CliResult};
use crate::crypto::{CustomerKey, MasterKey};
use crate::encoding::encode_key;
use crate::job::{JobSpec, NewJob, ReportScope, ReportSpec};
use crate::manifest::Filter;
use crate::sse::{CustomerKeyRef, CustomerKeySource, SseSpec};
use crate::store::{Encryption, PutOptions, Store};

const MARKER: &str = ".reseal-demo";
const BUCKET: &str = "demo-bucket";

pub async fn run(dir: &Path, objects: usize) -> CliResult {
    let dir =
        std::path::absolute(dir).map_err(|e| CliError::input(format!("{}: {e}", dir.display())))?;
    prepare_dir(&dir)?;
    let failed = |e: std::io::Error| CliError::failed(format!("{}: {e}", dir.display()));

    let master_path = dir.join("master.key");
    let master = MasterKey::generate().map_err(CliError::failed)?;
    write_private(&master_path, master.expose_secret()).map_err(failed)?;
    eprintln!("demo: a new local store in {}", dir.display());
    eprintln!(
        "demo: generated a master key for this demo only, in {} (a real store takes its master key \
         from outside its folder: RESEAL_MASTER_KEY or --master-key-file)",
        master_path.display()
    );
    let customer_path = dir.join("customer.key");
    let customer = CustomerKey::generate().map_err(CliError::failed)?;
    write_private(&customer_path, customer.expose_secret()).map_err(failed)?;

    let store_dir = dir.join("store");
    let store = Store::init(&store_dir, master)?;
    store.create_bucket(BUCKET, None)?;
    eprintln!("demo: writing {objects} objects of mixed sizes: plaintext, SSE-S3 and SSE-C");
    let written: Vec<(String, u64, String, &'static str)> = (0..objects)
        .into_par_iter()
        .map(|i| {
            let (key, size) = object_name(i);
            let body = content(i, size);
            let (encryption, status) = match i % 3 {
                0 => (Encryption::None, "NOT-SSE"),
                1 => (Encryption::SseS3, "SSE-S3"),
                _ => (Encryption::SseC(customer.clone()), "SSE-C"),
            };
            let meta = store.put(
                BUCKET,
                &key,
                body.as_slice(),
                PutOptions {
                    encryption: Some(encryption),
                    content_type: Some(content_type(&key).into()),
                    metadata: [("source".to_owned(), "reseal-demo".to_owned())].into(),
                    tags: [("demo".to_owned(), "true".to_owned())].into(),
                    ..Default::default()
                },
            )?;
            Ok((key, size as u64, meta.etag, status))
        })
        .collect::<Result<_, crate::store::StoreError>>()?;
    drop(store);

    let manifest = write_inventory(&dir.join("inventory"), &written).map_err(failed)?;
    eprintln!("demo: wrote an S3 Inventory report: {}", manifest.display());

    let sample = written
        .iter()
        .find(|(_, size, _, status)| *status == "SSE-C" && *size > 300_000)
        .or(written.first())
        .map(|(k, ..)| k.clone())
        .ok_or_else(|| CliError::input("--objects must be at least 1"))?;
    let store_args = StoreArgs {
        store: Some(store_dir.clone()),
        master_key_file: Some(master_path.clone()),
    };
    eprintln!("\ndemo: before — reseal store head {BUCKET} {sample}");
    super::store::run(
        &store_args,
        StoreCommand::Head {
            bucket: BUCKET.into(),
            key: sample.clone(),
            output: Output::Table,
            version_id: None,
        },
    )?;

    let db = dir.join("jobs.db");
    let jobs = crate::job::open_store(&db.display().to_string()).await?;
    let jobs = jobs.as_ref();
    let (source_key, _) = CustomerKeyRef::resolve(CustomerKeySource::File(customer_path.clone()))
        .map_err(CliError::input)?;
    let new = NewJob {
        spec: JobSpec {
            sse: SseSpec::SseKms { key_id: None },
            source_sse_c: Some(source_key),
            bucket_key: false,
            filter: Filter::default(),
            confirmation_required: false,
            trust_inventory: false,
            report: Some(ReportSpec {
                destination: dir.join("reports").display().to_string(),
                scope: ReportScope::All,
            }),
        },
        target: Some(super::run::local_target_spec(&store_dir)?),
        priority: 10,
        description: "reseal demo: everything to SSE-KMS".into(),
        manifest_location: manifest.display().to_string(),
    };
    eprintln!(
        "\ndemo: reseal job create --manifest {} --sse sse-kms --source-sse-c @{} --store {}",
        manifest.display(),
        customer_path.display(),
        store_dir.display()
    );
    let job = super::job::create_and_ingest(
        jobs,
        new,
        super::job::Source::File(manifest),
        &Default::default(),
        &Default::default(),
        None,
    )
    .await?;
    let target = TargetArgs {
        store: None,
        master_key_file: Some(master_path),
        s3: Default::default(),
    };
    let options = RunOptionArgs {
        concurrency: Some(16),
        dry_run: false,
        force: false,
        no_verify: false,
        max_attempts: 8,
        max_changes: 10,
        lease: "2m".into(),
        metrics_addr: None,
        max_concurrency: 1024,
        failure_threshold_percent: 50.0,
        failure_threshold_min_tasks: 1000,
        method: super::args::MethodArg::Auto,
        multipart_threshold: "5GiB".into(),
        part_size: "64MiB".into(),
        preserve_acl: false,
        delete_noncurrent: false,
        max_rps: None,
    };
    let outcome = super::run::run_jobs(jobs, Some(&job.id), &target, &options).await;

    eprintln!("\ndemo: after — reseal store head {BUCKET} {sample}");
    super::store::run(
        &store_args,
        StoreCommand::Head {
            bucket: BUCKET.into(),
            key: sample,
            output: Output::Table,
            version_id: None,
        },
    )?;
    eprintln!(
        "\ndemo: look around with\n  export RESEAL_DB={} RESEAL_STORE={} RESEAL_MASTER_KEY_FILE={}\n  \
         reseal job describe {}\n  reseal store ls {BUCKET} | head\n  reseal keys audit | tail",
        db.display(),
        store_dir.display(),
        dir.join("master.key").display(),
        job.id
    );
    outcome
}

/// Makes `dir` empty: a previous demo there is removed; anything else is left alone.
fn prepare_dir(dir: &Path) -> CliResult {
    if dir.join(MARKER).exists() {
        eprintln!("demo: removing the previous demo in {}", dir.display());
        std::fs::remove_dir_all(dir)
            .map_err(|e| CliError::failed(format!("{}: {e}", dir.display())))?;
    } else if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(CliError::input(format!(
            "{} exists and is not a reseal demo: choose another --dir",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::failed(format!("{}: {e}", dir.display())))?;
    std::fs::write(
        dir.join(MARKER),
        "made by reseal demo; removed by the next one\n",
    )
    .map_err(|e| CliError::failed(format!("{}: {e}", dir.display())))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// A realistic key and a size: most objects small, some medium, a few of several MiB.
fn object_name(i: usize) -> (String, usize) {
    let r = splitmix(i as u64);
    let size = match r % 100 {
        0 => (2 << 20) + (r >> 8) as usize % (2 << 20),
        1..=9 => (256 << 10) + (r >> 8) as usize % (768 << 10),
        10..=39 => (16 << 10) + (r >> 8) as usize % (240 << 10),
        _ => 1 + (r >> 8) as usize % (16 << 10),
    };
    let key = match i % 4 {
        0 => format!("logs/2026/11/{:02}/app-{i}.log", 1 + i % 28),
        1 => format!("photos/user {}/IMG_{i:05}.jpg", i % 37),
        2 => format!("reports/2026/Q{}/résumé-{i}.pdf", 1 + i % 4),
        _ => format!("backups/db+{}/dump-{i}.sql.gz", i % 7),
    };
    (key, size)
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("log") => "text/plain",
        Some("jpg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn content(i: usize, size: usize) -> Vec<u8> {
    let mut state = splitmix(i as u64 ^ 0xdead_beef);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = splitmix(state);
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes an S3 Inventory report in S3's layout; returns manifest.json's path.
fn write_inventory(
    root: &Path,
    objects: &[(String, u64, String, &str)],
) -> std::io::Result<PathBuf> {
    let config = root.join(BUCKET).join("all-objects");
    let date_dir = config.join(chrono::Utc::now().format("%Y-%m-%dT%H-%MZ").to_string());
    std::fs::create_dir_all(config.join("data"))?;
    std::fs::create_dir_all(&date_dir)?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (key, size, etag, status) in objects {
        writeln!(
            gz,
            "\"{BUCKET}\",\"{}\",\"{size}\",\"{now}\",\"{etag}\",\"STANDARD\",\"{status}\"",
            encode_key(key)
        )?;
    }
    let data = gz.finish()?;
    let name = format!("{}.csv.gz", uuid::Uuid::new_v4());
    std::fs::write(config.join("data").join(&name), &data)?;
    let manifest = serde_json::json!({
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::reseal-demo-inventory",
        "version": "2016-11-30",
        "creationTimestamp": chrono::Utc::now().timestamp_millis().to_string(),
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, EncryptionStatus",
        "files": [{
            "key": format!("{BUCKET}/all-objects/data/{name}"),
            "size": data.len(),
            "MD5checksum": crate::encoding::hex(&Md5::digest(&data)),
        }],
    });
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let path = date_dir.join("manifest.json");
    std::fs::write(&path, &text)?;
    std::fs::write(
        date_dir.join("manifest.checksum"),
        crate::encoding::hex(&Md5::digest(&text)),
    )?;
    Ok(path)
}
