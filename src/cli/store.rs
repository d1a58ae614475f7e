//! `reseal store …`: the local store from the command line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;

use super::args::{Output, StoreArgs};
use super::output::{emit, human_bytes, print_json};
use super::{CliError, CliResult};
use crate::crypto::{CustomerKey, MasterKey};
use crate::sse::{CustomerKeySource, SseSpec};
use crate::store::{
    DefaultEncryption, Deleted, Encryption, ObjectMeta, PutOptions, Reencrypt, ReencryptMethod,
    SseState, Store, StoreError, VersionEntry, Versioning,
};
use crate::time::format_time;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create a store in DIR, with its root key and default KMS key (alias/aws/s3).
    Init {
        /// The folder to make the store in (or --store).
        dir: Option<PathBuf>,
    },
    /// Make a bucket.
    Mb {
        bucket: String,
        /// The bucket's default encryption: sse-s3 (the default), sse-kms[:KEY] or dsse-kms:KEY.
        #[arg(long, value_name = "SPEC")]
        default_sse: Option<String>,
        /// Use a bucket key with the SSE-KMS default.
        #[arg(long)]
        bucket_key: bool,
    },
    /// Write an object from FILE (or standard input).
    Put {
        bucket: String,
        key: String,
        /// The file to store; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// sse-s3 | sse-kms[:KEY] | dsse-kms:KEY | sse-c:@FILE | sse-c:env:VAR | none
        /// (plaintext). Without it, the bucket's default encryption.
        #[arg(long, value_name = "SPEC")]
        sse: Option<String>,
        #[arg(long)]
        bucket_key: bool,
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
        /// User metadata, repeatable.
        #[arg(long, value_name = "K=V")]
        metadata: Vec<String>,
        /// A tag, repeatable.
        #[arg(long, value_name = "K=V")]
        tag: Vec<String>,
    },
    /// Read an object (or a byte range of it).
    Get {
        bucket: String,
        key: String,
        /// Bytes A-B (inclusive, as HTTP Range), A- (to the end) or -N (the last N).
        #[arg(long, value_name = "A-B")]
        range: Option<String>,
        /// The object's SSE-C key: @FILE or env:VAR.
        #[arg(long, value_name = "KEY")]
        sse_c: Option<String>,
        /// Write here (atomically, once the object has been read whole) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Read this version (an id from `ls --versions`, or null) instead of the current one.
        #[arg(long, value_name = "ID")]
        version_id: Option<String>,
    },
    /// Show an object's size, ETag, encryption, metadata, tags and times.
    Head {
        bucket: String,
        key: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// Show this version instead of the current one.
        #[arg(long, value_name = "ID")]
        version_id: Option<String>,
    },
    /// List buckets, or the objects of a bucket.
    Ls {
        bucket: Option<String>,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// Every version of each key, delete markers included, the latest first.
        #[arg(long)]
        versions: bool,
    },
    /// Delete an object: in a versioned bucket, a delete marker hides it and its versions
    /// stay; with --version-id, that version is removed for good.
    Rm {
        bucket: String,
        key: String,
        #[arg(long, value_name = "ID")]
        version_id: Option<String>,
    },
    /// Show a bucket's versioning, or turn it on or suspend it (it cannot be turned off
    /// once on, as on S3).
    Versioning {
        bucket: String,
        #[arg(value_enum)]
        status: Option<VersioningStatus>,
    },
    /// Re-encrypt one object in place with a new encryption.
    Reencrypt {
        bucket: String,
        key: String,
        #[arg(long, value_name = "SPEC")]
        sse: String,
        #[arg(long)]
        bucket_key: bool,
        /// The object's current SSE-C key: @FILE or env:VAR.
        #[arg(long, value_name = "KEY")]
        source_sse_c: Option<String>,
        /// Only if the object's ETag is still this.
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
        /// When only the sealing key changes, re-seal the data key instead of rewriting data.
        #[arg(long)]
        fast: bool,
    },
}

/// What `store versioning` can set.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VersioningStatus {
    Enabled,
    Suspended,
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        if e.is_user_error() {
            CliError::input(e)
        } else {
            CliError::failed(e)
        }
    }
}

fn master_key(file: Option<&Path>) -> Result<MasterKey, CliError> {
    MasterKey::load(file).map_err(CliError::input)
}

pub fn open(args: &StoreArgs) -> Result<Store, CliError> {
    Ok(Store::open(
        args.dir()?,
        master_key(args.master_key_file.as_deref())?,
    )?)
}

pub fn run(args: &StoreArgs, command: StoreCommand) -> CliResult {
    match command {
        StoreCommand::Init { dir } => {
            let dir = match dir {
                Some(dir) => dir,
                None => args.dir()?.to_path_buf(),
            };
            let master = master_key(args.master_key_file.as_deref())?;
            let store = Store::init(&dir, master)?;
            drop(store);
            eprintln!("initialised a reseal store in {}", dir.display());
            Ok(())
        }
        StoreCommand::Mb {
            bucket,
            default_sse,
            bucket_key,
        } => {
            let default = default_sse
                .map(|s| match parse_encryption(&s, bucket_key)? {
                    Encryption::SseS3 => Ok(DefaultEncryption::SseS3),
                    Encryption::SseKms { key_id, bucket_key } => {
                        Ok(DefaultEncryption::SseKms { key_id, bucket_key })
                    }
                    Encryption::DsseKms { key_id } => Ok(DefaultEncryption::DsseKms { key_id }),
                    _ => Err(CliError::input(format!(
                        "--default-sse {s}: a bucket default is sse-s3, sse-kms[:KEY] or dsse-kms:KEY"
                    ))),
                })
                .transpose()?;
            open(args)?.create_bucket(&bucket, default)?;
            eprintln!("made bucket {bucket}");
            Ok(())
        }
        StoreCommand::Put {
            bucket,
            key,
            file,
            sse,
            bucket_key,
            content_type,
            metadata,
            tag,
        } => {
            let store = open(args)?;
            let options = PutOptions {
                encryption: sse.map(|s| parse_encryption(&s, bucket_key)).transpose()?,
                content_type,
                metadata: parse_pairs("--metadata", &metadata)?,
                tags: parse_pairs("--tag", &tag)?,
                ..Default::default()
            };
            let meta = match file.as_deref() {
                None => store.put(&bucket, &key, std::io::stdin().lock(), options)?,
                Some(p) if p == Path::new("-") => {
                    store.put(&bucket, &key, std::io::stdin().lock(), options)?
                }
                Some(p) => {
                    let f = std::fs::File::open(p)
                        .map_err(|e| CliError::input(format!("{}: {e}", p.display())))?;
                    store.put(&bucket, &key, std::io::BufReader::new(f), options)?
                }
            };
            eprintln!(
                "put {bucket}/{key}: {} bytes, ETag {}, {}",
                meta.size,
                meta.etag,
                meta.sse.mode()
            );
            Ok(())
        }
        StoreCommand::Get {
            bucket,
            key,
            range,
            sse_c,
            output,
            version_id,
        } => {
            let store = open(args)?;
            let version = version_id.as_deref();
            let customer = sse_c
                .map(|s| load_customer_key("--sse-c", &s))
                .transpose()?;
            let range = match range {
                None => None,
                Some(r) => {
                    let size = store.find(&bucket, &key, version)?.size;
                    Some(parse_range(&r, size)?)
                }
            };
            match output {
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    store.get(&bucket, &key, version, range, customer.as_ref(), &mut out)?;
                    match out.flush() {
                        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                            return Err(CliError::failed(format!("stdout: {e}")));
                        }
                        _ => {}
                    }
                }
                // A device or a pipe (`-o /dev/null`, `-o /dev/stdout`) is written to as it
                // is; renaming a file over it would replace the device.
                Some(path) if path.exists() && !path.is_file() => {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
                    let mut out = std::io::BufWriter::new(file);
                    store.get(&bucket, &key, version, range, customer.as_ref(), &mut out)?;
                    out.flush()
                        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
                }
                Some(path) => {
                    let dir = path
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    let mut tmp = tempfile_in(dir)?;
                    {
                        let mut out = std::io::BufWriter::new(tmp.file());
                        store.get(&bucket, &key, version, range, customer.as_ref(), &mut out)?;
                        out.flush()
                            .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
                    }
                    tmp.commit(&path)
                        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
                }
            }
            Ok(())
        }
        StoreCommand::Head {
            bucket,
            key,
            output,
            version_id,
        } => {
            let meta = open(args)?.find(&bucket, &key, version_id.as_deref())?;
            let view = ObjectView::from(&meta);
            match output {
                Output::Json => print_json(&view),
                Output::Table => {
                    let mut text = format!("Key           {}\n", view.key);
                    if let Some(v) = &view.version_id {
                        text.push_str(&format!("Version       {v}\n"));
                    }
                    text.push_str(&format!(
                        "Size          {} ({})\nETag          \"{}\"\nEncryption    {}\n",
                        view.size,
                        human_bytes(view.size),
                        view.etag,
                        view.encryption
                    ));
                    if let Some(k) = &view.kms_key_id {
                        text.push_str(&format!("KMS key       {k}\n"));
                    }
                    if let Some(v) = view.key_version {
                        text.push_str(&format!("Key version   {v}\n"));
                    }
                    if let Some(m) = &view.sse_customer_key_md5 {
                        text.push_str(&format!("SSE-C key MD5 {m}\n"));
                    }
                    if let Some(t) = &view.content_type {
                        text.push_str(&format!("Content-Type  {t}\n"));
                    }
                    for (k, v) in view.metadata {
                        text.push_str(&format!("Metadata      {k}={v}\n"));
                    }
                    for (k, v) in view.tags {
                        text.push_str(&format!("Tag           {k}={v}\n"));
                    }
                    text.push_str(&format!(
                        "Created       {}\nModified      {}\n",
                        view.created, view.modified
                    ));
                    emit(&text)
                }
            }
        }
        StoreCommand::Ls {
            bucket,
            prefix,
            output,
            versions,
        } => {
            let store = open(args)?;
            match bucket {
                None => {
                    let buckets = store.list_buckets()?;
                    match output {
                        Output::Json => print_json(&buckets),
                        Output::Table => emit(
                            &buckets
                                .iter()
                                .map(|b| format!("{}  {}\n", format_time(b.created), b.name))
                                .collect::<String>(),
                        ),
                    }
                }
                Some(bucket) if versions => {
                    let entries = store.list_versions(&bucket, &prefix)?;
                    let views: Vec<VersionView> = entries.iter().map(VersionView::from).collect();
                    match output {
                        Output::Json => print_json(&views),
                        Output::Table => emit(
                            &views
                                .iter()
                                .map(|v| {
                                    format!(
                                        "{}  {:>12}  {:<8}  {:<32}  {:<6}  {}\n",
                                        v.object.modified,
                                        v.object.size,
                                        if v.delete_marker {
                                            "MARKER"
                                        } else {
                                            v.object.encryption.as_str()
                                        },
                                        v.object.version_id.as_deref().unwrap_or("null"),
                                        if v.is_latest { "latest" } else { "" },
                                        v.object.key
                                    )
                                })
                                .collect::<String>(),
                        ),
                    }
                }
                Some(bucket) => {
                    let objects = store.list(&bucket, &prefix)?;
                    let views: Vec<ObjectView> = objects.iter().map(ObjectView::from).collect();
                    match output {
                        Output::Json => print_json(&views),
                        Output::Table => emit(
                            &views
                                .iter()
                                .map(|o| {
                                    format!(
                                        "{}  {:>12}  {:<8}  {}\n",
                                        o.modified, o.size, o.encryption, o.key
                                    )
                                })
                                .collect::<String>(),
                        ),
                    }
                }
            }
        }
        StoreCommand::Rm {
            bucket,
            key,
            version_id,
        } => {
            let store = open(args)?;
            match version_id {
                Some(v) => {
                    let done = store.delete_version(&bucket, &key, &v)?;
                    let what = if done.delete_marker {
                        "delete marker"
                    } else {
                        "version"
                    };
                    eprintln!("deleted {what} {v} of {bucket}/{key}");
                }
                None => match store.delete(&bucket, &key)? {
                    Deleted {
                        delete_marker: true,
                        version_id,
                    } => eprintln!(
                        "deleted {bucket}/{key}: delete marker {} (its versions are kept)",
                        version_id.as_deref().unwrap_or("null")
                    ),
                    _ => eprintln!("deleted {bucket}/{key}"),
                },
            }
            Ok(())
        }
        StoreCommand::Versioning { bucket, status } => {
            let store = open(args)?;
            let info = match status {
                None => store.bucket(&bucket)?,
                Some(VersioningStatus::Enabled) => {
                    store.set_versioning(&bucket, Versioning::Enabled)?
                }
                Some(VersioningStatus::Suspended) => {
                    store.set_versioning(&bucket, Versioning::Suspended)?
                }
            };
            emit(&format!("{bucket}: versioning {:?}\n", info.versioning))
        }
        StoreCommand::Reencrypt {
            bucket,
            key,
            sse,
            bucket_key,
            source_sse_c,
            if_match,
            fast,
        } => {
            let store = open(args)?;
            let to = parse_encryption(&sse, bucket_key)?;
            if matches!(to, Encryption::None) {
                return Err(CliError::input(
                    "--sse none: re-encryption makes objects encrypted, not plaintext",
                ));
            }
            let source_key = source_sse_c
                .map(|s| load_customer_key("--source-sse-c", &s))
                .transpose()?;
            let (meta, method) = store.reencrypt(
                &bucket,
                &key,
                &Reencrypt {
                    to,
                    if_match: if_match.as_deref(),
                    source_key: source_key.as_ref(),
                    fast_path: fast,
                },
            )?;
            eprintln!(
                "re-encrypted {bucket}/{key} to {} ({})",
                meta.sse.mode(),
                match method {
                    ReencryptMethod::Rewrite => "new data key, data rewritten",
                    ReencryptMethod::Reseal => "data key re-sealed, data unchanged",
                }
            );
            Ok(())
        }
    }
}

/// An object as `head` and `ls` show it: no sealed keys, no salts.
#[derive(Debug, Serialize)]
pub struct ObjectView {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub encryption: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_key: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_customer_key_md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created: String,
    pub modified: String,
    /// `None`: the null version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// One entry of `ls --versions`.
#[derive(Debug, Serialize)]
pub struct VersionView {
    #[serde(flatten)]
    pub object: ObjectView,
    pub is_latest: bool,
    pub delete_marker: bool,
}

impl From<&VersionEntry> for VersionView {
    fn from(v: &VersionEntry) -> Self {
        VersionView {
            object: ObjectView::from(&v.meta),
            is_latest: v.is_latest,
            delete_marker: v.meta.delete_marker,
        }
    }
}

impl From<&ObjectMeta> for ObjectView {
    fn from(m: &ObjectMeta) -> Self {
        ObjectView {
            bucket: m.bucket.clone(),
            key: m.key.clone(),
            version_id: m.version_id.clone(),
            size: m.size,
            etag: m.etag.clone(),
            encryption: m.sse.mode().to_string(),
            kms_key_id: m.sse.kms_key_id().map(str::to_owned),
            key_version: m.sse.key_version(),
            bucket_key: match &m.sse {
                SseState::SseKms { bucket_key, .. } => Some(*bucket_key),
                _ => None,
            },
            sse_customer_key_md5: match &m.sse {
                SseState::SseC { key_md5, .. } => Some(key_md5.clone()),
                _ => None,
            },
            content_type: m.content_type.clone(),
            metadata: m.metadata.clone(),
            tags: m.tags.clone(),
            created: format_time(m.created),
            modified: format_time(m.modified),
        }
    }
}

/// Parses `--sse` for the store: an [`SseSpec`] or `none`, with the SSE-C key loaded.
pub fn parse_encryption(text: &str, bucket_key: bool) -> Result<Encryption, CliError> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Encryption::None);
    }
    let spec = SseSpec::parse(text).map_err(|e| CliError::input(format!("--sse {e}")))?;
    if bucket_key && !matches!(spec, SseSpec::SseKms { .. }) {
        return Err(CliError::input("--bucket-key applies to SSE-KMS only"));
    }
    Ok(match spec {
        SseSpec::SseS3 => Encryption::SseS3,
        SseSpec::SseKms { key_id } => Encryption::SseKms { key_id, bucket_key },
        SseSpec::DsseKms { key_id } => Encryption::DsseKms { key_id },
        SseSpec::SseC { key } => Encryption::SseC(
            key.source
                .load()
                .map_err(|e| CliError::input(format!("--sse {e}")))?,
        ),
    })
}

fn load_customer_key(flag: &str, text: &str) -> Result<CustomerKey, CliError> {
    CustomerKeySource::parse(text)
        .and_then(|s| s.load())
        .map_err(|e| CliError::input(format!("{flag} {e}")))
}

fn parse_pairs(flag: &str, pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::input(format!("{flag} {p:?}: expected KEY=VALUE")))
        })
        .collect()
}

/// Parses an HTTP-style byte range against an object of `size` bytes; gives start..end
/// (end exclusive).
pub fn parse_range(text: &str, size: u64) -> Result<std::ops::Range<u64>, CliError> {
    let bad = || {
        CliError::input(format!(
            "--range {text:?}: expected A-B (inclusive), A- or -N within the object's {size} bytes"
        ))
    };
    let t = text.trim().trim_start_matches("bytes=");
    let (a, b) = t.split_once('-').ok_or_else(bad)?;
    let range = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| bad())?;
            size.saturating_sub(n)..size
        }
        (a, "") => a.parse().map_err(|_| bad())?..size,
        (a, b) => {
            let a: u64 = a.parse().map_err(|_| bad())?;
            let b: u64 = b.parse().map_err(|_| bad())?;
            if b < a {
                return Err(bad());
            }
            a..(b + 1).min(size)
        }
    };
    if range.start > range.end || (range.start >= size && size > 0) {
        return Err(bad());
    }
    Ok(range)
}

fn tempfile_in(dir: &Path) -> Result<crate::durable::AtomicFile, CliError> {
    crate::durable::AtomicFile::create(dir)
        .map_err(|e| CliError::failed(format!("{}: {e}", dir.display())))
}
