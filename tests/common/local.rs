//! A local store, a SQLite job store and the real binary in a temporary folder, for the
//! runner's end-to-end tests (`tests/runner_*.rs`): seeded objects written and checked
//! through the library's `Store` (a process per object would dominate the test time),
//! runs in the foreground and in the background, signals, and completion reports read
//! back and checked.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest, Md5};
use reseal::crypto::{CustomerKey, MasterKey};
use reseal::store::{Encryption, PutOptions, SseState, Store};
use serde_json::Value;

use super::{Env, Run, job_create, md5_hex};

pub const MASTER: [u8; 32] = [0x42; 32];
pub const BUCKET: &str = "bkt";
pub const KEY_A: [u8; 32] = [0xA1; 32];
pub const KEY_B: [u8; 32] = [0xB2; 32];
/// Threads that write or check objects through the library.
pub const PARALLEL: usize = 4;
pub const REPORT_SCHEMA: &str =
    "Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage";

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded generator; the seed is printed so that a failure can be repeated with
/// `RESEAL_TEST_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(test: &str) -> Rng {
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

    pub fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `len` bytes that differ for every `seed`.
pub fn body(seed: u64, len: usize) -> Vec<u8> {
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
pub fn encode_key(key: &str) -> String {
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

pub fn decode_key(text: &str) -> String {
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

pub fn key_md5_b64(key: &[u8; 32]) -> String {
    B64.encode(Md5::digest(key))
}

#[derive(Clone, Copy, Debug)]
pub enum Sse {
    None,
    S3,
    Kms(Option<&'static str>),
    Customer([u8; 32]),
}

impl Sse {
    pub fn mode(self) -> &'static str {
        match self {
            Sse::None => "NOT-SSE",
            Sse::S3 => "SSE-S3",
            Sse::Kms(_) => "SSE-KMS",
            Sse::Customer(_) => "SSE-C",
        }
    }

    pub fn encryption(self) -> Encryption {
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

pub struct Obj {
    pub key: String,
    pub body: Vec<u8>,
    pub sse: Sse,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl Obj {
    pub fn new(i: usize, key: String, body: Vec<u8>, sse: Sse) -> Obj {
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
pub fn objects(
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

/// What an object must be after a job.
pub struct Want {
    pub mode: &'static str,
    pub kms_key_id: Option<String>,
    pub customer: Option<[u8; 32]>,
}

impl Want {
    pub fn sse_s3() -> Want {
        Want {
            mode: "SSE-S3",
            kms_key_id: None,
            customer: None,
        }
    }

    /// SSE-KMS under the key `kms_key_id`.
    pub fn sse_kms(kms_key_id: String) -> Want {
        Want {
            mode: "SSE-KMS",
            kms_key_id: Some(kms_key_id),
            customer: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub total: u64,
    pub pending: u64,
    pub leased: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Counts {
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.skipped
    }

    pub fn is_consistent(&self) -> bool {
        self.done() + self.pending + self.leased == self.total
    }
}

pub struct World {
    pub env: Env,
    pub store: PathBuf,
    spawned: Cell<u32>,
    /// Seeded for the test (its thread's name), for the objects it writes.
    rng: RefCell<Rng>,
}

/// A run started in the background; its stderr goes to a file.
pub struct Spawned {
    pub child: Child,
    stderr: PathBuf,
}

impl Spawned {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the run to end; kills it and fails the test after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Run {
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
    pub fn new() -> World {
        World::in_env(Env::new())
    }

    /// A world whose job store is `env`'s.
    pub fn in_env(env: Env) -> World {
        let store = env.path("store");
        let test = std::thread::current().name().unwrap_or("test").to_owned();
        let w = World {
            env,
            store,
            spawned: Cell::new(0),
            rng: RefCell::new(Rng::seeded(&test)),
        };
        w.ok(&["store", "init", w.s()]);
        w.ok(&["store", "mb", "--store", w.s(), BUCKET]);
        w
    }

    pub fn s(&self) -> &str {
        self.store.to_str().unwrap()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
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

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().unwrap().into()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "reseal {args:?} exited {}:\nstdout: {}\nstderr: {}",
            r.code, r.stdout, r.stderr
        );
        r.stdout
    }

    pub fn spawn(&self, args: &[&str]) -> Spawned {
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

    pub fn describe(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["job", "describe", id, "--output", "json"])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.describe(id)["status"].as_str().unwrap().to_owned()
    }

    pub fn counts(&self, id: &str) -> Counts {
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
    pub fn manifest<'a>(&self, name: &str, keys: impl IntoIterator<Item = &'a str>) -> PathBuf {
        let text: String = keys
            .into_iter()
            .map(|k| format!("{BUCKET},{}\n", encode_key(k)))
            .collect();
        self.env.write(name, text.as_bytes())
    }

    /// A manifest of `objects`' keys.
    pub fn manifest_of(&self, name: &str, objects: &[Obj]) -> PathBuf {
        self.manifest(name, objects.iter().map(|o| o.key.as_str()))
    }

    /// `job create` against this store; returns the id.
    pub fn create(&self, manifest: &Path, sse: &str, extra: &[&str]) -> String {
        let id = self.ok(&job_create(
            manifest,
            sse,
            &[&["--store", self.s()], extra].concat(),
        ));
        let id = id.trim().to_owned();
        assert_eq!(id.len(), 36, "a job id: {id:?}");
        id
    }

    /// Polls the job until at least `n` tasks are recorded as done, while `run` works on
    /// it; fails if the run ends first (then it had too little work to be interrupted).
    pub fn wait_for_progress(&self, id: &str, n: u64, run: &mut Spawned) -> Counts {
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

    pub fn kms_id(&self, alias: &str) -> String {
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

    pub fn open_store(&self) -> Store {
        Store::open(
            &self.store,
            MasterKey::from_base64(&B64.encode(MASTER)).unwrap(),
        )
        .unwrap()
    }

    /// The test's generator.
    pub fn rng(&self) -> RefMut<'_, Rng> {
        self.rng.borrow_mut()
    }

    /// [`objects`] drawn from the test's generator, written through the library.
    pub fn put_objects(
        &self,
        prefix: &str,
        n: usize,
        sizes: impl Fn(usize, &mut Rng) -> usize,
        sources: &[Sse],
    ) -> Vec<Obj> {
        let objs = objects(&mut self.rng(), prefix, n, sizes, sources);
        self.put_all(&objs);
        objs
    }

    /// Runs `each` on every object through the library, on a few threads: every write
    /// waits for several fsyncs, which overlap.
    fn on_threads(&self, objects: &[Obj], each: impl Fn(&Store, &Obj) + Sync) {
        let store = self.open_store();
        let chunk = objects.len().div_ceil(PARALLEL).max(1);
        std::thread::scope(|s| {
            for part in objects.chunks(chunk) {
                let (store, each) = (&store, &each);
                s.spawn(move || part.iter().for_each(|o| each(store, o)));
            }
        });
    }

    /// Writes the objects through the library.
    pub fn put_all(&self, objects: &[Obj]) {
        self.on_threads(objects, |store, o| {
            let options = PutOptions {
                encryption: Some(o.sse.encryption()),
                content_type: Some(o.content_type.clone()),
                metadata: o.metadata.clone(),
                tags: o.tags.clone(),
                ..Default::default()
            };
            store
                .put(BUCKET, &o.key, o.body.as_slice(), options)
                .unwrap();
        });
    }

    /// `reseal store put` of one object.
    pub fn put_cli(&self, o: &Obj, sse: &str) {
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
    pub fn head(&self, key: &str) -> Value {
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
    pub fn get(&self, key: &str, sse_c: Option<&Path>) -> Result<Vec<u8>, Run> {
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
    pub fn ls(&self) -> BTreeMap<String, Value> {
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
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
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
    pub fn verify(&self, objects: &[Obj], want: &Want) {
        self.on_threads(objects, |store, o| check_object(store, o, want));
    }

    /// How many of `objects` are in `mode` now; the others must still be as they were
    /// written. Every object's bytes and attributes are checked too.
    pub fn count_in_mode(&self, objects: &[Obj], mode: &str) -> u64 {
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
            store
                .get(BUCKET, &o.key, None, None, None, &mut out)
                .unwrap();
            assert!(out == o.body, "{}: the bytes changed", o.key);
        }
        n
    }
}

pub fn check_object(store: &Store, o: &Obj, want: &Want) {
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
        .get(BUCKET, &o.key, None, None, customer.as_ref(), &mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", o.key));
    assert!(out == o.body, "{}: the bytes changed", o.key);
}

/// The job id from `reseal run`'s stderr ("job ID: Ready (…)").
pub fn job_id_from(stderr: &str) -> String {
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
pub fn objects_this_run(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("this run"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub status: String,
    pub http_status: String,
    pub error_code: String,
    pub message: String,
}

/// Reads and checks a report: its manifest.json (format, schema, each result file's MD5)
/// and every row of its result files. Returns the rows and the result files by status.
pub fn read_report(dest: &Path, id: &str) -> (Vec<ReportRow>, BTreeMap<String, PathBuf>) {
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

/// A job of 48 plaintext objects of 256–384 KiB to make SSE-S3, started in the background
/// with two workers; returns once a few tasks are done.
pub fn start_slow_job(w: &World, extra: &[&str]) -> (Vec<Obj>, String, Spawned) {
    let objs = w.put_objects(
        "slow",
        48,
        |_, rng| (256 << 10) + rng.below(128 << 10) as usize,
        &[Sse::None],
    );
    let manifest = w.manifest_of("slow.csv", &objs);
    let id = w.create(&manifest, "sse-s3", extra);
    let mut run = w.spawn(&["job", "run", &id, "--concurrency", "2"]);
    w.wait_for_progress(&id, 2, &mut run);
    (objs, id, run)
}

/// After a run stopped early: no task is leased, none failed, and exactly the objects of
/// the succeeded tasks were re-encrypted (a result lost on the way would show as an
/// object re-encrypted while its task is still pending).
pub fn assert_stopped_cleanly(w: &World, id: &str, objs: &[Obj]) -> Counts {
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

pub fn finish_and_verify(w: &World, id: &str, objs: &[Obj]) {
    w.run(&["job", "run", id]).exits(0);
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
    w.verify(objs, &Want::sse_s3());
}
