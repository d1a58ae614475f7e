//! The job runner end to end: the real binary, a real local store on disk and a real
//! SQLite job store. Every encryption mode to every other; runs killed with SIGKILL;
//! SIGINT and SIGTERM; pause and cancel from another process; the failure threshold;
//! completion reports fed back as manifests; reruns; two runners on one job; dry runs;
//! the demo; and the refusals that protect a job from the wrong store or key.
//!
//! Objects are written and checked through the library's `Store` where there are
//! hundreds of them (a process per object would dominate the test time); the runner is
//! always the binary.

mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Env, Run, md5_hex};
use md5::{Digest, Md5};
use reseal::crypto::{CustomerKey, MasterKey};
use reseal::store::{Encryption, PutOptions, SseState, Store};
use serde_json::Value;

const MASTER: [u8; 32] = [0x42; 32];
const BUCKET: &str = "bkt";
const KEY_A: [u8; 32] = [0xA1; 32];
const KEY_B: [u8; 32] = [0xB2; 32];
/// Threads that write or check objects through the library.
const PARALLEL: usize = 4;
const REPORT_SCHEMA: &str =
    "Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage";

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

fn send_signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped yet.
    let rc = unsafe { kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", child.id());
}

// ---------------------------------------------------------------------------------------
// Randomness, bodies, keys

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded generator; the seed is printed so that a failure can be repeated with
/// `RESEAL_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("RESEAL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (RESEAL_TEST_SEED={seed} repeats it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `len` bytes that differ for every `seed`.
fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&splitmix(seed.wrapping_mul(0x0100_0000_01B3) ^ i).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// A key as a CSV manifest writes it: unreserved characters and `/` as they are,
/// everything else `%XX`.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn decode_key(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn key_md5_b64(key: &[u8; 32]) -> String {
    B64.encode(Md5::digest(key))
}

// ---------------------------------------------------------------------------------------
// Objects

#[derive(Clone, Copy, Debug)]
enum Sse {
    None,
    S3,
    Kms(Option<&'static str>),
    Customer([u8; 32]),
}

impl Sse {
    fn mode(self) -> &'static str {
        match self {
            Sse::None => "NOT-SSE",
            Sse::S3 => "SSE-S3",
            Sse::Kms(_) => "SSE-KMS",
            Sse::Customer(_) => "SSE-C",
        }
    }

    fn encryption(self) -> Encryption {
        match self {
            Sse::None => Encryption::None,
            Sse::S3 => Encryption::SseS3,
            Sse::Kms(key) => Encryption::SseKms {
                key_id: key.map(str::to_owned),
                bucket_key: false,
            },
            Sse::Customer(k) => Encryption::SseC(CustomerKey::from_slice(&k).unwrap()),
        }
    }
}

struct Obj {
    key: String,
    body: Vec<u8>,
    sse: Sse,
    content_type: String,
    metadata: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl Obj {
    fn new(i: usize, key: String, body: Vec<u8>, sse: Sse) -> Obj {
        Obj {
            key,
            body,
            sse,
            content_type: ["text/plain", "image/jpeg", "application/pdf"][i % 3].to_owned(),
            metadata: [("owner".into(), "ops".into()), ("n".into(), i.to_string())].into(),
            tags: [("team".into(), "blue".into()), ("i".into(), i.to_string())].into(),
        }
    }
}

/// `n` objects under `prefix`, sizes drawn from `sizes`, sources cycling through `sources`.
fn objects(
    rng: &mut Rng,
    prefix: &str,
    n: usize,
    sizes: impl Fn(usize, &mut Rng) -> usize,
    sources: &[Sse],
) -> Vec<Obj> {
    (0..n)
        .map(|i| {
            let size = sizes(i, rng);
            let seed = rng.next();
            Obj::new(
                i,
                format!("{prefix}/{i:04} file+{i}.bin"),
                body(seed, size),
                sources[i % sources.len()],
            )
        })
        .collect()
}

/// One wanted encryption of the modes test.
struct TargetCase {
    name: &'static str,
    spec: String,
    want: Want,
}

/// What an object must be after a job.
struct Want {
    mode: &'static str,
    kms_key_id: Option<String>,
    customer: Option<[u8; 32]>,
}

// ---------------------------------------------------------------------------------------
// A local store, a job store and the binary

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    total: u64,
    pending: u64,
    leased: u64,
    succeeded: u64,
    failed: u64,
    skipped: u64,
}

impl Counts {
    fn done(&self) -> u64 {
        self.succeeded + self.failed + self.skipped
    }

    fn is_consistent(&self) -> bool {
        self.done() + self.pending + self.leased == self.total
    }
}

struct World {
    env: Env,
    store: PathBuf,
    spawned: Cell<u32>,
}

/// A run started in the background; its stderr goes to a file.
struct Spawned {
    child: Child,
    stderr: PathBuf,
}

impl Spawned {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the run to end; kills it and fails the test after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Run {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Run {
                    code: status.code().unwrap_or(-1),
                    stdout: String::new(),
                    stderr: self.stderr(),
                };
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the run did not end within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let store = env.path("store");
        let w = World {
            env,
            store,
            spawned: Cell::new(0),
        };
        w.ok(&["store", "init", w.s()]);
        w.ok(&["store", "mb", "--store", w.s(), BUCKET]);
        w
    }

    fn s(&self) -> &str {
        self.store.to_str().unwrap()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_reseal"));
        c.arg("--db")
            .arg(self.env.db())
            .args(args)
            .env("RESEAL_MASTER_KEY", B64.encode(MASTER))
            .env_remove("RESEAL_DB")
            .env_remove("RESEAL_STORE")
            .env_remove("RESEAL_MASTER_KEY_FILE")
            .env_remove("RESEAL_LOG")
            .current_dir(self.env.dir.path())
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "reseal {args:?} exited {}:\nstdout: {}\nstderr: {}",
            r.code, r.stdout, r.stderr
        );
        r.stdout
    }

    fn spawn(&self, args: &[&str]) -> Spawned {
        let n = self.spawned.get();
        self.spawned.set(n + 1);
        let stderr = self.env.path(&format!("run-{n}.stderr"));
        let child = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Spawned { child, stderr }
    }

    // --- the job store

    fn describe(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["job", "describe", id, "--output", "json"])).unwrap()
    }

    fn status(&self, id: &str) -> String {
        self.describe(id)["status"].as_str().unwrap().to_owned()
    }

    fn counts(&self, id: &str) -> Counts {
        let t = &self.describe(id)["tasks"];
        let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("tasks.{k} in {t}"));
        let c = Counts {
            total: n("total"),
            pending: n("pending"),
            leased: n("leased"),
            succeeded: n("succeeded"),
            failed: n("failed"),
            skipped: n("skipped"),
        };
        assert!(c.is_consistent(), "{c:?}");
        c
    }

    /// Writes a plain CSV manifest of `keys` in the bucket.
    fn manifest<'a>(&self, name: &str, keys: impl IntoIterator<Item = &'a str>) -> PathBuf {
        let text: String = keys
            .into_iter()
            .map(|k| format!("{BUCKET},{}\n", encode_key(k)))
            .collect();
        self.env.write(name, text.as_bytes())
    }

    /// `job create` against this store; returns the id.
    fn create(&self, manifest: &Path, sse: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "job",
            "create",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            sse,
            "--store",
            self.s(),
        ];
        args.extend_from_slice(extra);
        let id = self.ok(&args).trim().to_owned();
        assert_eq!(id.len(), 36, "a job id: {id:?}");
        id
    }

    /// Polls the job until at least `n` tasks are recorded as done, while `run` works on
    /// it; fails if the run ends first (then it had too little work to be interrupted).
    fn wait_for_progress(&self, id: &str, n: u64, run: &mut Spawned) -> Counts {
        let started = Instant::now();
        loop {
            let c = self.counts(id);
            if c.done() >= n {
                return c;
            }
            if let Some(status) = run.child.try_wait().unwrap() {
                panic!(
                    "the run ended ({status}) before {n} tasks were done: {c:?}\n{}",
                    run.stderr()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no progress: {c:?}\n{}",
                run.stderr()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    // --- the local store

    fn kms_id(&self, alias: &str) -> String {
        let keys: Vec<Value> = serde_json::from_str(&self.ok(&[
            "keys",
            "--store",
            self.s(),
            "list",
            "--output",
            "json",
        ]))
        .unwrap();
        keys.iter()
            .find(|k| k["aliases"].as_array().unwrap().iter().any(|a| a == alias))
            .unwrap_or_else(|| panic!("no key {alias} in {keys:?}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn open_store(&self) -> Store {
        Store::open(
            &self.store,
            MasterKey::from_base64(&B64.encode(MASTER)).unwrap(),
        )
        .unwrap()
    }

    /// Writes the objects through the library, on a few threads: every write waits for
    /// several fsyncs, which overlap.
    fn put_all(&self, objects: &[Obj]) {
        let store = self.open_store();
        let chunk = objects.len().div_ceil(PARALLEL).max(1);
        std::thread::scope(|s| {
            for part in objects.chunks(chunk) {
                let store = &store;
                s.spawn(move || {
                    for o in part {
                        store
                            .put(
                                BUCKET,
                                &o.key,
                                o.body.as_slice(),
                                PutOptions {
                                    encryption: Some(o.sse.encryption()),
                                    content_type: Some(o.content_type.clone()),
                                    metadata: o.metadata.clone(),
                                    tags: o.tags.clone(),
                                    ..Default::default()
                                },
                            )
                            .unwrap();
                    }
                });
            }
        });
    }

    /// `reseal store put` of one object.
    fn put_cli(&self, o: &Obj, sse: &str) {
        let file = self.env.write("put.bin", &o.body);
        let mut args = vec![
            "store".to_owned(),
            "put".into(),
            "--store".into(),
            self.s().into(),
            BUCKET.into(),
            o.key.clone(),
            file.display().to_string(),
            "--sse".into(),
            sse.into(),
            "--content-type".into(),
            o.content_type.clone(),
        ];
        for (k, v) in &o.metadata {
            args.extend(["--metadata".into(), format!("{k}={v}")]);
        }
        for (k, v) in &o.tags {
            args.extend(["--tag".into(), format!("{k}={v}")]);
        }
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// `reseal store head --output json`.
    fn head(&self, key: &str) -> Value {
        serde_json::from_str(&self.ok(&[
            "store",
            "head",
            "--store",
            self.s(),
            BUCKET,
            key,
            "--output",
            "json",
        ]))
        .unwrap()
    }

    /// `reseal store get` to a file; the bytes, or the failed run.
    fn get(&self, key: &str, sse_c: Option<&Path>) -> Result<Vec<u8>, Run> {
        let out = self.env.path("got.bin");
        let _ = std::fs::remove_file(&out);
        let key_arg = sse_c.map(|p| format!("@{}", p.display()));
        let mut args = vec![
            "store",
            "get",
            "--store",
            self.s(),
            BUCKET,
            key,
            "-o",
            out.to_str().unwrap(),
        ];
        if let Some(k) = &key_arg {
            args.extend(["--sse-c", k]);
        }
        let r = self.run(&args);
        if r.code == 0 {
            Ok(std::fs::read(&out).unwrap())
        } else {
            Err(r)
        }
    }

    /// Every object of the bucket as `reseal store ls --output json` shows it, by key.
    fn ls(&self) -> BTreeMap<String, Value> {
        let list: Vec<Value> = serde_json::from_str(&self.ok(&[
            "store",
            "ls",
            "--store",
            self.s(),
            BUCKET,
            "--output",
            "json",
        ]))
        .unwrap();
        list.into_iter()
            .map(|o| (o["key"].as_str().unwrap().to_owned(), o))
            .collect()
    }

    /// Every file of the store, with its bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![self.store.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        files
    }

    /// Checks every object through the library: mode, key, ETag, size, content type,
    /// metadata, tags and bytes.
    fn verify(&self, objects: &[Obj], want: &Want) {
        let store = self.open_store();
        let chunk = objects.len().div_ceil(PARALLEL).max(1);
        std::thread::scope(|s| {
            for part in objects.chunks(chunk) {
                let store = &store;
                s.spawn(move || {
                    for o in part {
                        check_object(store, o, want);
                    }
                });
            }
        });
    }

    /// How many of `objects` are in `mode` now; the others must still be as they were
    /// written. Every object's bytes and attributes are checked too.
    fn count_in_mode(&self, objects: &[Obj], mode: &str) -> u64 {
        let store = self.open_store();
        let mut n = 0;
        for o in objects {
            let meta = store.head(BUCKET, &o.key).unwrap();
            let now = meta.sse.mode().to_string();
            assert!(now == mode || now == o.sse.mode(), "{}: {now}", o.key);
            n += u64::from(now == mode);
            assert_eq!(
                (&meta.content_type, &meta.metadata, &meta.tags),
                (&Some(o.content_type.clone()), &o.metadata, &o.tags)
            );
            let mut out = Vec::new();
            store.get(BUCKET, &o.key, None, None, &mut out).unwrap();
            assert!(out == o.body, "{}: the bytes changed", o.key);
        }
        n
    }
}

fn check_object(store: &Store, o: &Obj, want: &Want) {
    let meta = store
        .head(BUCKET, &o.key)
        .unwrap_or_else(|e| panic!("{}: {e}", o.key));
    assert_eq!(meta.sse.mode().to_string(), want.mode, "{}", o.key);
    assert_eq!(
        meta.sse.kms_key_id(),
        want.kms_key_id.as_deref(),
        "{}",
        o.key
    );
    if let Some(k) = &want.customer {
        match &meta.sse {
            SseState::SseC { key_md5, .. } => assert_eq!(key_md5, &key_md5_b64(k)),
            other => panic!("{}: {other:?}", o.key),
        }
    }
    assert_eq!(meta.size, o.body.len() as u64, "{}", o.key);
    assert_eq!(meta.etag, md5_hex(&o.body), "{}", o.key);
    assert_eq!(meta.content_type.as_deref(), Some(&*o.content_type));
    assert_eq!(meta.metadata, o.metadata, "{}", o.key);
    assert_eq!(meta.tags, o.tags, "{}", o.key);
    let customer = want.customer.map(|k| CustomerKey::from_slice(&k).unwrap());
    let mut out = Vec::with_capacity(o.body.len());
    store
        .get(BUCKET, &o.key, None, customer.as_ref(), &mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", o.key));
    assert!(out == o.body, "{}: the bytes changed", o.key);
}

/// The job id from `reseal run`'s stderr ("job ID: Ready (…)").
fn job_id_from(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("job ")
                .and_then(|rest| rest.split_once(':'))
                .map(|(id, _)| id.to_owned())
        })
        .unwrap_or_else(|| panic!("no job id in:\n{stderr}"))
}

/// "this run  N objects" from a run's summary.
fn objects_this_run(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("this run"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// Reports

#[derive(Debug, Clone, PartialEq, Eq)]
struct ReportRow {
    bucket: String,
    key: String,
    version_id: String,
    status: String,
    http_status: String,
    error_code: String,
    message: String,
}

/// Reads and checks a report: its manifest.json (format, schema, each result file's MD5)
/// and every row of its result files. Returns the rows and the result files by status.
fn read_report(dest: &Path, id: &str) -> (Vec<ReportRow>, BTreeMap<String, PathBuf>) {
    let root = dest.join(format!("job-{id}"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["Format"], "Report_CSV_20180820");
    assert_eq!(manifest["ReportSchema"], REPORT_SCHEMA);
    let created = manifest["ReportCreationDate"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == 24,
        "ReportCreationDate {created}"
    );
    let mut rows = Vec::new();
    let mut files = BTreeMap::new();
    for result in manifest["Results"].as_array().unwrap() {
        let status = result["TaskExecutionStatus"].as_str().unwrap().to_owned();
        assert!(status == "succeeded" || status == "failed", "{result}");
        let path =
            Path::new(result["Bucket"].as_str().unwrap()).join(result["Key"].as_str().unwrap());
        assert!(
            path.starts_with(&root),
            "{} is outside {}",
            path.display(),
            root.display()
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            result["MD5Checksum"].as_str().unwrap(),
            md5_hex(&bytes),
            "{}",
            path.display()
        );
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice());
        for record in reader.records() {
            let r = record.unwrap();
            assert_eq!(r.len(), 7, "{r:?}");
            let row = ReportRow {
                bucket: r[0].to_owned(),
                key: decode_key(&r[1]),
                version_id: r[2].to_owned(),
                status: r[3].to_owned(),
                http_status: r[4].to_owned(),
                error_code: r[5].to_owned(),
                message: r[6].to_owned(),
            };
            assert_eq!(row.status, status, "{row:?} in {}", path.display());
            rows.push(row);
        }
        assert!(files.insert(status, path).is_none(), "one file per status");
    }
    (rows, files)
}

// ---------------------------------------------------------------------------------------
// 1. Modes

#[test]
fn every_source_mode_to_every_target_mode() {
    let w = World::new();
    let other_id = w
        .ok(&["keys", "--store", w.s(), "create", "--alias", "other"])
        .trim()
        .to_owned();
    let default_id = w.kms_id("alias/aws/s3");
    assert_eq!(w.kms_id("alias/other"), other_id);
    // Key A as 32 raw bytes, key B as base64 text: both forms of a key file.
    let a = w.env.write("a.key", &KEY_A);
    let b = w.env.write("b.key", B64.encode(KEY_B).as_bytes());
    let a_spec = format!("sse-c:@{}", a.display());
    let b_spec = format!("sse-c:@{}", b.display());

    let sources: Vec<(&str, String)> = vec![
        ("none", "none".into()),
        ("sse-s3", "sse-s3".into()),
        ("sse-kms", "sse-kms".into()),
        ("dsse-kms", "dsse-kms:alias/aws/s3".into()),
        ("sse-c-a", a_spec.clone()),
    ];
    let case = |name, spec: &str, mode, kms_key_id: Option<&String>, customer| TargetCase {
        name,
        spec: spec.to_owned(),
        want: Want {
            mode,
            kms_key_id: kms_key_id.cloned(),
            customer,
        },
    };
    let targets = [
        case("sse-s3", "sse-s3", "SSE-S3", None, None),
        case("sse-kms", "sse-kms", "SSE-KMS", Some(&default_id), None),
        case(
            "kms-other",
            "sse-kms:alias/other",
            "SSE-KMS",
            Some(&other_id),
            None,
        ),
        case(
            "dsse-kms",
            "dsse-kms:alias/aws/s3",
            "DSSE-KMS",
            Some(&default_id),
            None,
        ),
        case("sse-c-b", &b_spec, "SSE-C", None, Some(KEY_B)),
    ];
    // Empty, one byte, part of a segment, exactly one segment (256 KiB), three segments.
    const SIZES: [usize; 5] = [0, 1, 70_001, 262_144, 600_001];

    for (ti, t) in targets.iter().enumerate() {
        let (target, spec) = (t.name, &t.spec);
        let (mode, kms, customer) = (t.want.mode, &t.want.kms_key_id, &t.want.customer);
        // The one object already as the job wants it: among the sources, or added.
        let compliant_spec = spec;
        let mut objs = Vec::new();
        let mut all_sources = sources.clone();
        if !sources.iter().any(|(_, s)| s == compliant_spec) {
            all_sources.push(("already", compliant_spec.clone()));
        }
        for (si, (source, source_spec)) in all_sources.iter().enumerate() {
            let o = Obj::new(
                si,
                format!("to {target}/from {source}/objet é+{si}.bin"),
                body((ti * 10 + si) as u64, SIZES[(si + ti) % SIZES.len()]),
                Sse::None,
            );
            w.put_cli(&o, source_spec);
            objs.push((o, source_spec == compliant_spec));
        }
        let compliant: Vec<&Obj> = objs.iter().filter(|(_, c)| *c).map(|(o, _)| o).collect();
        assert_eq!(compliant.len(), 1, "{target}");
        let before = w.head(&compliant[0].key);

        let manifest = w.manifest(
            &format!("{target}.csv"),
            objs.iter().map(|(o, _)| o.key.as_str()),
        );
        let r = w.run(&[
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            spec,
            "--store",
            w.s(),
            "--source-sse-c",
            &format!("@{}", a.display()),
            "--description",
            &format!("to {target}"),
        ]);
        assert_eq!(r.code, 0, "to {target}:\n{}", r.stderr);
        let id = job_id_from(&r.stderr);
        assert!(
            r.stderr.contains(&format!("job {id}: Complete")),
            "{}",
            r.stderr
        );
        let n = objs.len() as u64;
        assert_eq!(
            w.counts(&id),
            Counts {
                total: n,
                succeeded: n - 1,
                skipped: 1,
                ..Counts::default()
            },
            "to {target}"
        );
        assert_eq!(w.status(&id), "Complete");

        let key_file = customer.map(|_| b.as_path());
        for (o, is_compliant) in &objs {
            let head = w.head(&o.key);
            let what = format!("{} to {target}", o.key);
            assert_eq!(head["encryption"], mode, "{what}");
            assert_eq!(head["kms_key_id"].as_str(), kms.as_deref(), "{what}");
            assert_eq!(
                head["sse_customer_key_md5"].as_str(),
                customer.as_ref().map(key_md5_b64).as_deref(),
                "{what}"
            );
            assert_eq!(head["etag"], md5_hex(&o.body), "{what}");
            assert_eq!(head["size"], o.body.len(), "{what}");
            assert_eq!(head["content_type"], o.content_type, "{what}");
            assert_eq!(head["metadata"], serde_json::json!(o.metadata), "{what}");
            assert_eq!(head["tags"], serde_json::json!(o.tags), "{what}");
            if *is_compliant {
                assert_eq!(
                    head, before,
                    "{what}: an object already compliant is left alone"
                );
            }
            let got = w
                .get(&o.key, key_file)
                .unwrap_or_else(|r| panic!("{what}: {}", r.stderr));
            assert!(got == o.body, "{what}: the bytes changed");
        }
        if customer.is_some() {
            // The object from key A now opens with key B only.
            let o = &objs[4].0;
            let r = w.get(&o.key, Some(&a)).unwrap_err();
            assert_eq!(r.code, 2);
            assert!(r.stderr.contains("access denied"), "{}", r.stderr);
            let r = w.get(&o.key, None).unwrap_err();
            assert_eq!(r.code, 2);
            assert!(r.stderr.contains("SSE-C"), "{}", r.stderr);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Crashes

#[test]
fn runs_killed_at_random_points_lose_no_task_and_damage_no_object() {
    let w = World::new();
    let mut rng = Rng::seeded("crash");
    // Most objects small, one in 25 above 1 MiB, so that a run takes seconds.
    let objs = objects(
        &mut rng,
        "crash",
        300,
        |i, rng| {
            if i % 25 == 7 {
                (1 << 20) + rng.below(256 << 10) as usize
            } else {
                1 + rng.below(16 << 10) as usize
            }
        },
        &[Sse::None, Sse::S3, Sse::Customer(KEY_A)],
    );
    w.put_all(&objs);
    let a = w.env.write("a.key", &KEY_A);
    let manifest = w.manifest("crash.csv", objs.iter().map(|o| o.key.as_str()));
    let reports = w.env.path("reports");
    let id = w.create(
        &manifest,
        "sse-kms",
        &[
            "--source-sse-c",
            &format!("@{}", a.display()),
            "--report",
            reports.to_str().unwrap(),
        ],
    );
    let total = objs.len() as u64;

    let mut kills = 0;
    let mut mid_run_kills = 0;
    // Tasks leased by killed runs that the next run must take back.
    let mut orphaned = 0;
    while kills < 5 || (mid_run_kills == 0 && kills < 15) {
        let mut run = w.spawn(&["job", "run", &id, "--concurrency", "4"]);
        let delay = 50 + rng.below(551);
        std::thread::sleep(Duration::from_millis(delay));
        run.child.kill().unwrap();
        run.child.wait().unwrap();
        kills += 1;
        let stderr = run.stderr();
        if stderr.contains("running job") {
            let took_back: u64 = stderr
                .match_indices("took back ")
                .map(|(at, m)| {
                    stderr[at + m.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                })
                .sum();
            assert_eq!(
                took_back, orphaned,
                "the run after a kill takes back every task the dead runs held:\n{stderr}"
            );
        }
        let c = w.counts(&id);
        eprintln!("kill {kills} after {delay} ms: {c:?}");
        assert_eq!(c.total, total);
        assert_eq!(c.failed, 0, "{c:?}");
        let status = w.status(&id);
        assert!(status == "Ready" || status == "Active", "{status}");
        orphaned = c.leased;
        if c.done() > 0 && c.done() < total {
            mid_run_kills += 1;
        }
    }
    assert!(
        mid_run_kills > 0,
        "no kill landed in the middle of the work"
    );

    let r = w.run(&["job", "run", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(w.status(&id), "Complete");
    let c = w.counts(&id);
    assert_eq!(c.total, total);
    assert_eq!(c.succeeded + c.skipped, total, "{c:?}");
    assert_eq!((c.failed, c.pending, c.leased), (0, 0, 0), "{c:?}");

    // The report lists every task exactly once.
    let (rows, _) = read_report(&reports, &id);
    assert_eq!(rows.len() as u64, total);
    let keys: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let expected: BTreeSet<&str> = objs.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, expected);
    assert!(
        rows.iter()
            .all(|r| r.status == "succeeded" && r.bucket == BUCKET)
    );
    let skipped = rows
        .iter()
        .filter(|r| r.message == "Skipped: already SSE-KMS")
        .count() as u64;
    assert_eq!(skipped, c.skipped);

    w.verify(
        &objs,
        &Want {
            mode: "SSE-KMS",
            kms_key_id: Some(w.kms_id("alias/aws/s3")),
            customer: None,
        },
    );
}

// ---------------------------------------------------------------------------------------
// 3. and 4. Signals, pause, cancel

/// A job of 48 plaintext objects of 256–384 KiB to make SSE-S3, started in the background
/// with two workers; returns once a few tasks are done.
fn start_slow_job(w: &World, extra: &[&str]) -> (Vec<Obj>, String, Spawned) {
    let mut rng = Rng::seeded("slow job");
    let objs = objects(
        &mut rng,
        "slow",
        48,
        |_, rng| (256 << 10) + rng.below(128 << 10) as usize,
        &[Sse::None],
    );
    w.put_all(&objs);
    let manifest = w.manifest("slow.csv", objs.iter().map(|o| o.key.as_str()));
    let id = w.create(&manifest, "sse-s3", extra);
    let mut run = w.spawn(&["job", "run", &id, "--concurrency", "2"]);
    w.wait_for_progress(&id, 2, &mut run);
    (objs, id, run)
}

/// After a run stopped early: no task is leased, none failed, and exactly the objects of
/// the succeeded tasks were re-encrypted (a result lost on the way would show as an
/// object re-encrypted while its task is still pending).
fn assert_stopped_cleanly(w: &World, id: &str, objs: &[Obj]) -> Counts {
    let c = w.counts(id);
    assert_eq!(c.total, objs.len() as u64);
    assert_eq!((c.leased, c.failed, c.skipped), (0, 0, 0), "{c:?}");
    assert!(c.pending > 0, "the run stopped early: {c:?}");
    assert_eq!(
        w.count_in_mode(objs, "SSE-S3"),
        c.succeeded,
        "every re-encrypted object's task is recorded as succeeded: {c:?}"
    );
    c
}

fn finish_and_verify(w: &World, id: &str, objs: &[Obj]) {
    let r = w.run(&["job", "run", id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(w.status(id), "Complete");
    let total = objs.len() as u64;
    assert_eq!(
        w.counts(id),
        Counts {
            total,
            succeeded: total,
            ..Counts::default()
        }
    );
    w.verify(
        objs,
        &Want {
            mode: "SSE-S3",
            kms_key_id: None,
            customer: None,
        },
    );
}

fn interrupted_by(sig: i32) {
    let w = World::new();
    let (objs, id, mut run) = start_slow_job(&w, &[]);
    send_signal(&run.child, sig);
    let sent = Instant::now();
    let r = run.wait(Duration::from_secs(30));
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "stopping took {:?}",
        sent.elapsed()
    );
    assert!(
        r.stderr
            .contains(&format!("job {id}: interrupted (still Active)")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("resume    reseal job run {id}")),
        "{}",
        r.stderr
    );
    assert_eq!(w.status(&id), "Active");
    assert_stopped_cleanly(&w, &id, &objs);
    finish_and_verify(&w, &id, &objs);
}

#[test]
fn sigint_stops_a_run_resumably() {
    interrupted_by(SIGINT);
}

#[test]
fn sigterm_stops_a_run_resumably() {
    interrupted_by(SIGTERM);
}

/// A second SIGINT stops at once, but through the command's normal end: the leases of the
/// tasks in flight are given back (none stays leased until it expires), and the job
/// resumes and finishes.
#[test]
fn a_second_sigint_stops_at_once_and_gives_the_leases_back() {
    let w = World::new();
    let (objs, id, mut run) = start_slow_job(&w, &[]);
    send_signal(&run.child, SIGINT);
    std::thread::sleep(Duration::from_millis(20));
    send_signal(&run.child, SIGINT);
    let r = run.wait(Duration::from_secs(30));
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(r.stderr.contains("interrupted again"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("resume    reseal job run {id}")),
        "the summary is printed: {}",
        r.stderr
    );
    assert_eq!(w.status(&id), "Active");
    let c = w.counts(&id);
    assert_eq!(c.leased, 0, "leases given back: {c:?}");
    let r = w.run(&["job", "run", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = w.counts(&id);
    assert_eq!(
        (c.succeeded + c.skipped, c.failed, c.pending + c.leased),
        (objs.len() as u64, 0, 0),
        "{c:?}"
    );
    w.verify(
        &objs,
        &Want {
            mode: "SSE-S3",
            kms_key_id: None,
            customer: None,
        },
    );
}

#[test]
fn pause_from_another_process_stops_the_run_and_resume_finishes_it() {
    let w = World::new();
    let (objs, id, mut run) = start_slow_job(&w, &[]);
    let out = w.run(&["job", "pause", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("Active -> Pausing"), "{}", out.stderr);
    let paused = Instant::now();
    let r = run.wait(Duration::from_secs(30));
    let took = paused.elapsed();
    assert_eq!(r.code, 130, "{}", r.stderr);
    eprintln!("the pause took {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the pause took {took:?}"
    );
    assert!(
        r.stderr.contains(&format!("job {id}: Paused")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("reseal job resume {id} && reseal job run {id}")),
        "{}",
        r.stderr
    );
    assert_eq!(w.status(&id), "Paused");
    assert_stopped_cleanly(&w, &id, &objs);

    let refused = w.run(&["job", "run", &id]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("resume it first"),
        "{}",
        refused.stderr
    );
    let resumed = w.run(&["job", "resume", &id]);
    assert!(
        resumed.stderr.contains("Paused -> Ready"),
        "{}",
        resumed.stderr
    );
    finish_and_verify(&w, &id, &objs);
}

#[test]
fn cancel_from_another_process_stops_the_run_for_good() {
    let w = World::new();
    let reports = w.env.path("reports");
    let (objs, id, mut run) = start_slow_job(&w, &["--report", reports.to_str().unwrap()]);
    let out = w.run(&["job", "cancel", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("Active -> Cancelling"),
        "{}",
        out.stderr
    );
    let cancelled = Instant::now();
    let r = run.wait(Duration::from_secs(30));
    let took = cancelled.elapsed();
    assert_eq!(r.code, 3, "{}", r.stderr);
    eprintln!("the cancel took {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the cancel took {took:?}"
    );
    assert!(
        r.stderr.contains(&format!("job {id}: Cancelled")),
        "{}",
        r.stderr
    );
    assert_eq!(w.status(&id), "Cancelled");
    let c = assert_stopped_cleanly(&w, &id, &objs);
    // The report of a cancelled job lists the tasks that ran.
    let (rows, _) = read_report(&reports, &id);
    assert_eq!(rows.len() as u64, c.succeeded);
    assert!(rows.iter().all(|r| r.status == "succeeded"));

    // A cancelled job does not run again, and says so with its exit code.
    let snapshot = w.snapshot();
    let again = w.run(&["job", "run", &id]);
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert!(again.stderr.contains("Cancelled"), "{}", again.stderr);
    assert_eq!(w.counts(&id), c);
    assert!(
        w.snapshot() == snapshot,
        "a cancelled job changed the store"
    );
}

// ---------------------------------------------------------------------------------------
// 5. The failure threshold

#[test]
fn many_failures_fail_the_job_and_a_few_do_not() {
    let w = World::new();
    let mut rng = Rng::seeded("threshold");
    let real = objects(&mut rng, "real", 5, |_, _| 1000, &[Sse::None]);
    w.put_all(&real);
    let missing: Vec<String> = (0..30).map(|i| format!("missing/{i}")).collect();
    let keys: Vec<&str> = missing
        .iter()
        .map(String::as_str)
        .chain(real.iter().map(|o| o.key.as_str()))
        .collect();
    let manifest = w.manifest("mostly-missing.csv", keys);
    let id = w.create(&manifest, "sse-kms", &[]);
    let r = w.run(&["job", "run", &id, "--failure-threshold-min-tasks", "10"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("job {id}: Failed: ")),
        "{}",
        r.stderr
    );
    let job = w.describe(&id);
    assert_eq!(job["status"], "Failed");
    let reasons = job["failure_reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let reason = reasons[0].as_str().unwrap();
    assert!(
        reason.contains("tasks run so far failed, more than 50%")
            && reason.contains("applied from 10 tasks"),
        "{reason}"
    );
    let c = w.counts(&id);
    assert!(c.failed >= 10 && c.failed * 2 > c.done(), "{c:?}");
    assert_eq!(c.leased, 0);
    // Running a Failed job again changes nothing and answers with the same exit code.
    let again = w.run(&["job", "run", &id, "--failure-threshold-min-tasks", "10"]);
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert_eq!(w.counts(&id), c);

    // 3 failures in 23 tasks: under 50%, the job completes with exit code 1.
    let few = objects(&mut rng, "few", 20, |_, _| 1000, &[Sse::None]);
    w.put_all(&few);
    let keys: Vec<&str> = ["gone/1", "gone/2", "gone/3"]
        .into_iter()
        .chain(few.iter().map(|o| o.key.as_str()))
        .collect();
    let manifest = w.manifest("some-missing.csv", keys);
    let id = w.create(&manifest, "sse-kms", &[]);
    let r = w.run(&["job", "run", &id, "--failure-threshold-min-tasks", "10"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("job {id}: Complete")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("23 total: 20 succeeded, 0 skipped, 3 failed, 0 not run"),
        "{}",
        r.stderr
    );
    assert_eq!(w.status(&id), "Complete");
    assert!(
        w.describe(&id)["failure_reasons"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// 6. Reports

#[test]
fn the_report_checks_out_and_its_failed_tasks_run_again_as_a_manifest() {
    let w = World::new();
    let mut rng = Rng::seeded("report");
    let names = [
        "docs/a b.txt",
        "docs/ü+ñ.txt",
        "docs/comma,key.txt",
        "docs/100%.txt",
        "docs/q\"uote.txt",
        "plain",
        "already/kms 1",
        "already/kms 2",
    ];
    let real: Vec<Obj> = names
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let sse = if k.starts_with("already/") {
                Sse::Kms(None)
            } else {
                Sse::None
            };
            Obj::new(i, k.to_string(), body(rng.next(), 5000 + i), sse)
        })
        .collect();
    w.put_all(&real);
    let missing = [
        "gone/a b+c.txt",
        "gone/ünï cödé,1.bin",
        "gone/%41literal",
        "gone/q\"x",
    ];
    let manifest = w.manifest(
        "report.csv",
        names.iter().copied().chain(missing.iter().copied()),
    );
    let reports = w.env.path("reports");
    let id = w.create(
        &manifest,
        "sse-kms",
        &["--report", reports.to_str().unwrap()],
    );
    let r = w.run(&["job", "run", &id]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report_line = format!(
        "report    {}",
        reports.join(format!("job-{id}/manifest.json")).display()
    );
    assert!(r.stderr.contains(&report_line), "{}", r.stderr);

    let (rows, files) = read_report(&reports, &id);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(rows.len(), names.len() + missing.len());
    for row in &rows {
        assert_eq!(row.bucket, BUCKET);
        assert_eq!(row.version_id, "");
        if row.status == "failed" {
            assert!(missing.contains(&row.key.as_str()), "{row:?}");
            assert_eq!(
                (row.http_status.as_str(), row.error_code.as_str()),
                ("404", "NoSuchKey"),
                "{row:?}"
            );
            assert!(row.message.contains(&row.key), "{row:?}");
        } else {
            assert!(names.contains(&row.key.as_str()), "{row:?}");
            assert_eq!(
                (row.http_status.as_str(), row.error_code.as_str()),
                ("200", "")
            );
            let expected = if row.key.starts_with("already/") {
                "Skipped: already SSE-KMS"
            } else {
                "re-encrypted"
            };
            assert_eq!(row.message, expected, "{row:?}");
        }
    }
    let failed: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.status == "failed")
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(failed, missing.iter().copied().collect());

    // The failed tasks alone, as a report of their own…
    let only_failed = w.env.path("failed-only");
    let out = w.run(&[
        "job",
        "report",
        &id,
        "--out",
        only_failed.to_str().unwrap(),
        "--scope",
        "failed",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (failed_rows, failed_files) = read_report(&only_failed, &id);
    assert_eq!(failed_files.keys().collect::<Vec<_>>(), ["failed"]);
    let keys: BTreeSet<&str> = failed_rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, missing.iter().copied().collect());

    // …is a manifest: once the objects exist, a job made from it re-encrypts them.
    let now_there: Vec<Obj> = missing
        .iter()
        .enumerate()
        .map(|(i, k)| Obj::new(i, k.to_string(), body(rng.next(), 3000 + i), Sse::None))
        .collect();
    for o in &now_there {
        w.put_cli(o, "none");
    }
    let retry = w.create(&failed_files["failed"], "sse-kms", &[]);
    let job = w.describe(&retry);
    assert_eq!(job["ingest"]["rows_read"], missing.len());
    let r = w.run(&["job", "run", &retry]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let n = missing.len() as u64;
    assert_eq!(
        w.counts(&retry),
        Counts {
            total: n,
            succeeded: n,
            ..Counts::default()
        }
    );
    w.verify(
        &now_there,
        &Want {
            mode: "SSE-KMS",
            kms_key_id: Some(w.kms_id("alias/aws/s3")),
            customer: None,
        },
    );
}

// ---------------------------------------------------------------------------------------
// 7. Reruns

/// Running a Complete job again was refused as bad input (exit 2); it now changes nothing
/// and exits 0, as a nightly `reseal job run ID` expects.
#[test]
fn a_finished_job_run_again_was_refused_as_bad_input() {
    let w = World::new();
    let mut rng = Rng::seeded("rerun");
    let objs = objects(
        &mut rng,
        "rerun",
        12,
        |i, _| 2000 + i * 30_000,
        &[Sse::None, Sse::None, Sse::S3],
    );
    w.put_all(&objs);
    let manifest = w.manifest("rerun.csv", objs.iter().map(|o| o.key.as_str()));
    let reports = w.env.path("reports");
    let id = w.create(
        &manifest,
        "sse-s3",
        &["--report", reports.to_str().unwrap()],
    );
    let r = w.run(&["job", "run", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let counts = w.counts(&id);
    assert_eq!(
        counts,
        Counts {
            total: 12,
            succeeded: 8,
            skipped: 4,
            ..Counts::default()
        }
    );
    let snapshot = w.snapshot();
    let listed = w.ls();
    let report = std::fs::read(reports.join(format!("job-{id}/manifest.json"))).unwrap();
    // `ls` shows times to the second; the snapshot of the store's files (metadata with
    // millisecond times and data file ids) shows any rewrite.

    let again = w.run(&["job", "run", &id]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("already Complete"),
        "{}",
        again.stderr
    );
    assert_eq!(w.status(&id), "Complete");
    assert_eq!(w.counts(&id), counts);
    assert_eq!(
        w.ls(),
        listed,
        "objects' modes and modified times are unchanged"
    );
    assert!(
        w.snapshot() == snapshot,
        "a rerun changed the store's files"
    );
    assert_eq!(
        std::fs::read(reports.join(format!("job-{id}/manifest.json"))).unwrap(),
        report
    );
    // Without an id, there is nothing to run.
    let none = w.run(&["job", "run"]);
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert!(
        none.stderr.contains("no Ready or Active job"),
        "{}",
        none.stderr
    );

    // A new job over the same objects finds them all compliant and touches none.
    let r = w.run(&[
        "run",
        "--manifest",
        manifest.to_str().unwrap(),
        "--sse",
        "sse-s3",
        "--store",
        w.s(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let second = job_id_from(&r.stderr);
    assert_eq!(
        w.counts(&second),
        Counts {
            total: 12,
            skipped: 12,
            ..Counts::default()
        }
    );
    assert_eq!(w.ls(), listed);
    assert!(
        w.snapshot() == snapshot,
        "skipping objects changed the store"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Two runners

#[test]
fn two_runs_of_one_job_at_once_share_the_tasks() {
    let w = World::new();
    let mut rng = Rng::seeded("two runners");
    let objs = objects(
        &mut rng,
        "two",
        128,
        |_, rng| (16 << 10) + rng.below(128 << 10) as usize,
        &[Sse::None, Sse::S3],
    );
    w.put_all(&objs);
    let manifest = w.manifest("two.csv", objs.iter().map(|o| o.key.as_str()));
    let id = w.create(&manifest, "sse-kms:alias/aws/s3", &[]);
    let mut first = w.spawn(&["job", "run", &id, "--concurrency", "4"]);
    let mut second = w.spawn(&["job", "run", &id, "--concurrency", "4"]);
    let a = first.wait(Duration::from_secs(120));
    let b = second.wait(Duration::from_secs(120));
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(b.code, 0, "{}", b.stderr);
    let (na, nb) = (objects_this_run(&a.stderr), objects_this_run(&b.stderr));
    assert!(na > 0 && nb > 0, "both runs worked: {na} and {nb}");
    let total = objs.len() as u64;
    assert_eq!(na + nb, total, "every task ran once");
    assert_eq!(w.status(&id), "Complete");
    assert_eq!(
        w.counts(&id),
        Counts {
            total,
            succeeded: total,
            ..Counts::default()
        }
    );
    w.verify(
        &objs,
        &Want {
            mode: "SSE-KMS",
            kms_key_id: Some(w.kms_id("alias/aws/s3")),
            customer: None,
        },
    );
}

// ---------------------------------------------------------------------------------------
// 9. Dry runs

#[test]
fn a_dry_run_changes_nothing_and_says_what_would_change() {
    let w = World::new();
    let mut rng = Rng::seeded("dry run");
    let objs = objects(
        &mut rng,
        "dry",
        9,
        |_, _| 40_000,
        &[Sse::None, Sse::S3, Sse::Kms(None)],
    );
    w.put_all(&objs);
    let manifest = w.manifest(
        "dry.csv",
        objs.iter().map(|o| o.key.as_str()).chain(["not/there"]),
    );
    let id = w.create(&manifest, "sse-kms", &[]);
    let snapshot = w.snapshot();
    let listed = w.ls();
    let r = w.run(&["job", "run", &id, "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "dry run of job {id}: 6 objects would be re-encrypted, 3 are already compliant, 1 could not be inspected"
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(w.ls(), listed, "modes and modified times are unchanged");
    assert!(w.snapshot() == snapshot, "a dry run changed the store");
    assert_eq!(w.status(&id), "Ready");
    assert_eq!(
        w.counts(&id),
        Counts {
            total: 10,
            pending: 10,
            ..Counts::default()
        }
    );
}

// ---------------------------------------------------------------------------------------
// 10. The demo

#[test]
fn the_demo_runs_and_runs_again() {
    let env = Env::new();
    let dir = env.path("d");
    for round in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
            .args(["demo", "--dir", dir.to_str().unwrap(), "--objects", "60"])
            .env_remove("RESEAL_MASTER_KEY")
            .env_remove("RESEAL_DB")
            .env_remove("RESEAL_STORE")
            .current_dir(env.dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "round {round}: {stderr}");
        assert!(
            stderr.contains("60 total: 60 succeeded, 0 skipped, 0 failed, 0 not run"),
            "round {round}: {stderr}"
        );
        assert!(stderr.contains(": Complete"), "{stderr}");
        if round == 1 {
            assert!(stderr.contains("removing the previous demo"), "{stderr}");
        }
        let reports: Vec<_> = std::fs::read_dir(dir.join("reports"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(reports.len(), 1, "one job's report per demo");
    }
    // A folder that is not a demo's is left alone.
    let other = env.path("mine");
    env.write("mine/precious.txt", b"keep me");
    let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["demo", "--dir", other.to_str().unwrap(), "--objects", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a reseal demo"));
    assert_eq!(
        std::fs::read(other.join("precious.txt")).unwrap(),
        b"keep me"
    );
}

// ---------------------------------------------------------------------------------------
// 11. Refusals

#[test]
fn a_run_against_another_store_or_with_a_changed_key_is_refused() {
    let w = World::new();
    let mut rng = Rng::seeded("refusals");
    let objs = objects(&mut rng, "r", 4, |_, _| 10_000, &[Sse::None]);
    w.put_all(&objs);
    let manifest = w.manifest("r.csv", objs.iter().map(|o| o.key.as_str()));
    let other = w.env.path("other-store");
    w.ok(&["store", "init", other.to_str().unwrap()]);

    let id = w.create(&manifest, "sse-s3", &[]);
    let r = w.run(&["job", "run", &id, "--store", other.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "job {id} runs against the local store {}; the options name the local store {}",
            w.s(),
            other.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(w.status(&id), "Ready");
    // The same store named by a relative path is the same store.
    let r = w.run(&["job", "run", &id, "--store", "store"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // SSE-C: the key file given at creation now holds another key.
    let key_file = w.env.write("c.key", &KEY_A);
    let spec = format!("sse-c:@{}", key_file.display());
    let id = w.create(&manifest, &spec, &[]);
    let snapshot = w.snapshot();
    w.env.write("c.key", &KEY_B);
    let r = w.run(&["job", "run", &id]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "--sse: the key at @{} is not the key the job was created with (MD5 {} expected, {} found)",
            key_file.display(),
            key_md5_b64(&KEY_A),
            key_md5_b64(&KEY_B)
        )),
        "{}",
        r.stderr
    );
    assert!(w.snapshot() == snapshot, "a refused run changed the store");
    assert_eq!(w.counts(&id).pending, 4);

    // The same for the source key of SSE-C objects.
    w.env.write("c.key", &KEY_A);
    w.ok(&["job", "run", &id]);
    let id = w.create(
        &manifest,
        "sse-s3",
        &["--source-sse-c", &format!("@{}", key_file.display())],
    );
    w.env.write("c.key", &KEY_B);
    let r = w.run(&["job", "run", &id]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--source-sse-c: the key at")
            && r.stderr
                .contains(&format!("MD5 {} expected", key_md5_b64(&KEY_A))),
        "{}",
        r.stderr
    );
    w.env.write("c.key", &KEY_A);
    w.ok(&["job", "run", &id]);
    w.verify(
        &objs,
        &Want {
            mode: "SSE-S3",
            kms_key_id: None,
            customer: None,
        },
    );

    // Without --store, `reseal run` works on S3, which needs a region: refused before a
    // job is created.
    let jobs_before = w.env.jobs().len();
    let r = w.env.reseal_with_env(
        &[
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            "sse-s3",
        ],
        &[
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no AWS region: give --region"),
        "{}",
        r.stderr
    );
    assert_eq!(w.env.jobs().len(), jobs_before, "no job is left behind");
}
