//! The arguments, as clap parses them. Values are turned into a `JobSpec` in `job.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Re-encrypt existing objects in place with a new server-side encryption mode.
#[derive(Debug, Parser)]
#[command(name = "reseal", version, about, max_term_width = 100)]
pub struct Cli {
    /// The job store: a SQLite file (created with mode 0600 when missing) or a sqlite: URL.
    #[arg(long, env = "RESEAL_DB", default_value = "reseal.db", global = true)]
    pub db: String,

    /// How log lines on stderr are written (their level is set by RESEAL_LOG, default warn).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Which tasks a completion report lists.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportScopeArg {
    /// Every task.
    All,
    /// Only the tasks that failed.
    Failed,
}

impl From<ReportScopeArg> for crate::job::ReportScope {
    fn from(scope: ReportScopeArg) -> Self {
        match scope {
            ReportScopeArg::All => crate::job::ReportScope::All,
            ReportScopeArg::Failed => crate::job::ReportScope::Failed,
        }
    }
}

/// How objects on S3 are re-encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// UpdateObjectEncryption where it applies and the server has it; a copy otherwise.
    Auto,
    /// Always copy.
    Copy,
    /// Only UpdateObjectEncryption; objects it cannot change fail.
    Update,
}

impl From<MethodArg> for crate::targets::s3::Method {
    fn from(method: MethodArg) -> Self {
        match method {
            MethodArg::Auto => crate::targets::s3::Method::Auto,
            MethodArg::Copy => crate::targets::s3::Method::Copy,
            MethodArg::Update => crate::targets::s3::Method::Update,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect and steer jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// reseal's own local object store.
    Store(StoreCmdArgs),
    /// The local store's keys: SSE-S3 root key versions and the local KMS.
    Keys(KeysArgs),
    /// Create a job and run it to the end, then print a summary.
    Run(Box<RunAllArgs>),
    /// Re-check every object of a job and list those that are not encrypted as it wants.
    Verify {
        /// The job id, or an unambiguous prefix of it.
        id: String,
        #[command(flatten)]
        target: TargetArgs,
        /// Objects inspected at once.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
        concurrency: u32,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Keep a bucket compliant from cron: a job from the newest complete inventory, only for
    /// the objects that are not yet as wanted, within a time box; prints the bucket's
    /// census by encryption mode before and after.
    Sweep(Box<SweepArgs>),
    /// Serve the local store as an S3 endpoint (SigV4, SSE-S3/KMS/DSSE-KMS/SSE-C).
    Serve(Box<super::serve::ServeArgs>),
    /// Everything end to end on a local store made from nothing, in ./reseal-demo.
    Demo {
        /// Where the demo's store, manifest, job store and report go.
        #[arg(long, default_value = "reseal-demo")]
        dir: PathBuf,
        /// How many objects the demo writes.
        #[arg(long, default_value_t = 2000)]
        objects: usize,
    },
}

#[derive(Debug, Args)]
pub struct RunAllArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    #[command(flatten)]
    pub run: RunOptionArgs,
}

/// Where a job's objects are: the local store with --store, S3 otherwise.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// The local store the job works on (recorded with the job). Without it, S3.
    #[arg(long, env = "RESEAL_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// A file with the local store's master key; otherwise RESEAL_MASTER_KEY.
    #[arg(long, env = "RESEAL_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub s3: S3Args,
}

/// How to reach S3. Credentials come from the AWS chain (environment, profile, SSO,
/// instance metadata, assume-role).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "S3")]
pub struct S3Args {
    /// An S3-compatible store's URL (path-style addressing; recorded with the job).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The AWS region (otherwise AWS_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// A profile of ~/.aws/config (otherwise AWS_PROFILE or default).
    #[arg(long)]
    pub profile: Option<String>,
}

/// How a run goes.
#[derive(Debug, Clone, Args)]
pub struct RunOptionArgs {
    /// Objects worked on at once [default: 64 on S3, where each request waits on the
    /// network and adaptive pacing starts there, lowers it on throttling and raises it up
    /// to --max-concurrency while requests come back unqueued; 16 on the local store,
    /// whose work is CPU and disk].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: Option<u32>,
    /// Inspect every object and report what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-encrypt objects that are already in the wanted mode.
    #[arg(long)]
    pub force: bool,
    /// Skip the HEAD after each write that confirms the new encryption; for servers that do
    /// not report encryption, such as s3s-fs.
    #[arg(long)]
    pub no_verify: bool,
    /// S3: tries per request for transient errors (throttling, server errors, lost
    /// connections), with jittered backoff. The only retry: a task whose request still
    /// fails is recorded as failed.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Times an object rewritten by someone else since reseal inspected it is inspected
    /// again; past that its task fails as "changing under us".
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_changes: u32,
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts (tasks by
    /// outcome, bytes, S3 requests by operation and status, throttling, concurrency,
    /// leases held).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How long a task stays leased to this run without a renewal (renewed every third of
    /// it): a run that dies or is cut off gives its tasks back after this.
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub lease: String,
    /// The job fails when more than this percentage of the tasks run so far failed…
    #[arg(long, default_value_t = 50.0)]
    pub failure_threshold_percent: f64,
    /// …once at least this many tasks have run.
    #[arg(long, default_value_t = 1000)]
    pub failure_threshold_min_tasks: u64,

    /// S3: UpdateObjectEncryption where it applies (auto), always copy, or only update.
    #[arg(long, value_enum, default_value_t = MethodArg::Auto, help_heading = "S3")]
    pub method: MethodArg,
    /// S3: objects larger than this are copied in parts (at most 5GiB).
    #[arg(long, value_name = "SIZE", default_value = "5GiB", help_heading = "S3")]
    pub multipart_threshold: String,
    /// S3: the part size of multipart copies (5MiB to 5GiB).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "64MiB",
        help_heading = "S3"
    )]
    pub part_size: String,
    /// S3: re-apply each object's ACL after the copy (S3 does not copy ACLs).
    #[arg(long, help_heading = "S3")]
    pub preserve_acl: bool,
    /// S3: delete a key's noncurrent versions once its current version is re-encrypted.
    #[arg(long, help_heading = "S3")]
    pub delete_noncurrent: bool,
    /// S3: the most objects worked on at once that adaptive pacing grows to from
    /// --concurrency while requests come back unqueued (far from the server, the wait is
    /// the network's).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536), help_heading = "S3")]
    pub max_concurrency: u32,
    /// S3: at most this many requests per second (a hard cap under adaptive pacing).
    #[arg(long, value_name = "N", help_heading = "S3")]
    pub max_rps: Option<f64>,
}

#[derive(Debug, Args)]
pub struct StoreCmdArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: super::store::StoreCommand,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: super::keys::KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job from a manifest; prints the job id alone on stdout.
    Create(Box<CreateArgs>),
    /// List jobs, highest priority first.
    List {
        /// Only jobs with this status (New, Preparing, Suspended, Ready, Active, Pausing,
        /// Paused, Cancelling, Cancelled, Failing, Failed, Complete).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show a job: status, spec, manifest, counters, failure reasons.
    Describe {
        /// The job id, or an unambiguous prefix of it.
        id: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Confirm a Suspended job (created with --confirmation-required) so that it can run.
    Confirm { id: String },
    /// Pause a Ready or Active job.
    Pause { id: String },
    /// Resume a Paused job.
    Resume { id: String },
    /// Cancel a job that has not finished.
    Cancel { id: String },
    /// Run a job, or every Ready and Active job by priority.
    Run {
        /// The job id (or a prefix); without it, every Ready and Active job.
        id: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        options: RunOptionArgs,
    },
    /// Write a job's completion report.
    Report {
        id: String,
        /// The folder the report goes to (job-ID/ is made in it), or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR|S3URL")]
        out: String,
        #[command(flatten)]
        s3: S3Args,
        #[arg(long, value_enum, default_value_t = ReportScopeArg::All)]
        scope: ReportScopeArg,
    },
    /// Set a job's priority (a higher number runs first).
    Priority {
        id: String,
        #[arg(value_parser = clap::value_parser!(i64).range(0..=i64::from(i32::MAX)))]
        priority: i64,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["manifest", "from_listing"])))]
pub struct CreateArgs {
    /// The manifest: an S3 Inventory manifest.json, or a plain CSV of bucket,key[,versionId];
    /// a local file or s3://BUCKET/KEY.
    #[arg(long, value_name = "PATH|S3URL")]
    pub manifest: Option<String>,

    /// No manifest: list s3://BUCKET/PREFIX (ListObjectsV2) and make every object a task.
    #[arg(long, value_name = "S3URL")]
    pub from_listing: Option<String>,

    /// With --from-listing: list versions (ListObjectVersions); current versions become
    /// tasks, noncurrent ones are counted.
    #[arg(long, requires = "from_listing")]
    pub all_versions: bool,

    #[command(flatten)]
    pub job: JobArgs,
}

/// What a job does, whatever lists its objects: `job create`, `run` and `sweep` share it.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The wanted encryption: sse-s3 | sse-kms[:KEY] | dsse-kms:KEY | sse-c:@FILE | sse-c:env:VAR.
    #[arg(long, value_name = "SPEC")]
    pub sse: String,

    /// The SSE-C key of objects that are SSE-C now: @FILE or env:VAR.
    #[arg(long, value_name = "KEY")]
    pub source_sse_c: Option<String>,

    /// Use an S3 Bucket Key for SSE-KMS (fewer KMS requests).
    #[arg(long)]
    pub bucket_key: bool,

    /// Only keys that start with this.
    #[arg(long, help_heading = "Filters")]
    pub prefix: Option<String>,
    /// Only keys that end with this.
    #[arg(long, help_heading = "Filters")]
    pub suffix: Option<String>,
    /// Only objects of at least this size (bytes, or with a unit: 10KiB, 5MB, 1GiB). Needs Size.
    #[arg(long, value_name = "SIZE", help_heading = "Filters")]
    pub min_size: Option<String>,
    /// Only objects of at most this size. Needs Size.
    #[arg(long, value_name = "SIZE", help_heading = "Filters")]
    pub max_size: Option<String>,
    /// Only objects modified at or after this time (2024-05-01 or RFC 3339). Needs LastModifiedDate.
    #[arg(long, value_name = "TIME", help_heading = "Filters")]
    pub modified_after: Option<String>,
    /// Only objects modified before this time. Needs LastModifiedDate.
    #[arg(long, value_name = "TIME", help_heading = "Filters")]
    pub modified_before: Option<String>,
    /// Only these storage classes (comma-separated or repeated). Needs StorageClass.
    #[arg(
        long,
        value_name = "CLASS",
        value_delimiter = ',',
        help_heading = "Filters"
    )]
    pub storage_class: Vec<String>,
    /// Only objects whose EncryptionStatus is one of these: NOT-SSE, SSE-S3, SSE-KMS,
    /// DSSE-KMS, SSE-C (comma-separated or repeated). Needs EncryptionStatus.
    #[arg(
        long,
        value_name = "STATUS",
        value_delimiter = ',',
        help_heading = "Filters"
    )]
    pub match_encryption: Vec<String>,

    /// Jobs with a higher priority run first.
    #[arg(long, default_value_t = 10,
          value_parser = clap::value_parser!(i64).range(0..=i64::from(i32::MAX)))]
    pub priority: i64,

    /// S3: take each object's ETag, encryption and storage class from the inventory row
    /// instead of a HEAD: one request (the guarded copy) for an object that needs work; an
    /// object changed since the inventory is inspected as usual. Needs the ETag,
    /// EncryptionStatus and StorageClass columns. Not copied then: a website redirect
    /// location, object lock settings, the checksum algorithm.
    #[arg(long)]
    pub trust_inventory: bool,

    /// Hold the job Suspended until `reseal job confirm ID`.
    #[arg(long)]
    pub confirmation_required: bool,

    /// A description, up to 256 characters.
    #[arg(long, default_value = "")]
    pub description: String,

    /// Where the completion report goes: a folder or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "DIR|S3URL")]
    pub report: Option<String>,

    /// Which tasks the report lists.
    #[arg(long, value_enum, requires = "report")]
    pub report_scope: Option<ReportScopeArg>,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub estimating: EstimateArgs,
}

/// `reseal sweep`: a job from the newest complete inventory, run within a time box.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// An S3 Inventory configuration's destination, where S3 writes DATE/manifest.json
    /// (s3://BUCKET/PREFIX/SOURCE-BUCKET/CONFIG-ID/), or a local folder in that layout.
    #[arg(long, value_name = "S3URL|DIR")]
    pub inventory: String,
    /// The sweep's name, under which the job store remembers its jobs and its lock
    /// [default: made from --inventory and --sse].
    #[arg(long)]
    pub name: Option<String>,
    /// Refuse an inventory older than this (exit code 4): a daily inventory that stopped
    /// coming is a broken configuration.
    #[arg(long, value_name = "DURATION", default_value = "48h")]
    pub max_age: String,
    /// Stop leasing after this long, let the tasks in flight finish, report what was done
    /// and exit with code 75; the next run resumes.
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// Also write the census in the Prometheus textfile format to FILE, atomically (for
    /// node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics_textfile: Option<PathBuf>,
    #[command(flatten)]
    pub job: JobArgs,
    #[command(flatten)]
    pub run: RunOptionArgs,
}

/// What an estimate of a job is computed with.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Estimate")]
pub struct EstimateArgs {
    /// Print what the job would cost (requests, KMS requests, their price, the storage
    /// new versions add, a lower bound on the duration) and create no job.
    #[arg(long)]
    pub estimate: bool,
    /// Prices to use instead of the built-in us-east-1 list prices: a JSON file with
    /// as_of, write_per_1000, read_per_1000, kms_per_10000, storage_gb_month.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// The KMS request quota the duration bound assumes.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub kms_rps: u32,
    /// How --estimate prints (and a sweep its census, on stdout).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

impl Default for EstimateArgs {
    fn default() -> EstimateArgs {
        EstimateArgs {
            estimate: false,
            prices: None,
            kms_rps: 10_000,
            output: Output::Table,
        }
    }
}

/// Where the local store is and how to unlock it. Global within the commands that take it,
/// so `--store` goes before or after a subcommand (`reseal keys --store D create` and
/// `reseal keys create --store D` are the same).
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// The local store's folder.
    #[arg(long, env = "RESEAL_STORE", value_name = "DIR", global = true)]
    pub store: Option<PathBuf>,

    /// A file with the master key (32 raw bytes or their base64, mode 0600). Without it,
    /// the master key is read from RESEAL_MASTER_KEY (base64).
    #[arg(
        long,
        env = "RESEAL_MASTER_KEY_FILE",
        value_name = "FILE",
        global = true
    )]
    pub master_key_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The store's folder, or what to give.
    pub fn dir(&self) -> Result<&std::path::Path, super::CliError> {
        self.store.as_deref().ok_or_else(|| {
            super::CliError::input("no local store: give --store DIR or set RESEAL_STORE")
        })
    }
}

impl RunOptionArgs {
    /// `--lease`, checked.
    pub fn lease(&self) -> Result<std::time::Duration, super::CliError> {
        let lease = super::job::parse_duration(&self.lease)
            .map_err(|e| super::CliError::input(format!("--lease {e}")))?;
        if lease < std::time::Duration::from_secs(10) {
            return Err(super::CliError::input(format!(
                "--lease {}: at least 10s (a run renews its leases every third of it)",
                self.lease
            )));
        }
        Ok(lease)
    }

    /// `--concurrency`, or the default for the target.
    pub fn concurrency_for(&self, target: &crate::job::TargetSpec) -> usize {
        let default = match target {
            crate::job::TargetSpec::S3 { .. } => 64,
            crate::job::TargetSpec::Local { .. } => 16,
        };
        self.concurrency.map_or(default, |c| c as usize)
    }
}
