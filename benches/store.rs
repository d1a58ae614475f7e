//! Re-encryption in place on the local store, on real disk, every write fsynced as the
//! store does it:
//!
//! 1. large objects: 256 objects of 4 MiB written as plaintext, re-encrypted to SSE-KMS
//!    (full rewrite), beside `cp -r` of the same bytes as plain files followed by `sync`;
//! 2. small objects: 10,000 objects of 4 KiB written as SSE-S3, re-sealed after a root
//!    key rotation (fast path, SSE-S3 → SSE-S3), re-encrypted to SSE-KMS (rewrite), then
//!    re-sealed under another KMS key (fast path, SSE-KMS → SSE-KMS).
//!
//! A sample of objects is read back and checked after every phase. The store lives in a
//! temporary folder under `bench-data/` (the repository's disk, not a tmpfs), removed at
//! the end.
//!
//!   cargo bench --bench store                 # the sizes above
//!   cargo bench --bench store -- --quick      # 8 × 4 MiB and 200 × 4 KiB, for tests
//!
//! Options: `--large N` and `--small N` (object counts), `--threads N` (default: every
//! core), `--parallel objects|segments` (how the re-encryption of large objects uses the
//! threads: several objects at once, each sealed on one thread, or one object at a time
//! with its segments sealed in parallel by the engine; default `objects`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use reseal::crypto::MasterKey;
use reseal::sse::SseMode;
use reseal::store::{
    DefaultEncryption, Encryption, PutOptions, Reencrypt, ReencryptMethod, SseState, Store,
};

const LARGE_SIZE: usize = 4 << 20;
const SMALL_SIZE: usize = 4 << 10;
const LARGE_BUCKET: &str = "large";
const SMALL_BUCKET: &str = "small";
/// Objects read back and checked after each phase (at most).
const SAMPLE: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Parallel {
    Objects,
    Segments,
}

struct Args {
    large: usize,
    small: usize,
    threads: usize,
    parallel: Parallel,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: store [--quick] [--large N] [--small N] [--threads N] [--parallel objects|segments]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        large: 256,
        small: 10_000,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        parallel: Parallel::Objects,
    };
    let mut it = std::env::args().skip(1);
    let count = |flag: &str, v: Option<String>| -> usize {
        v.and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| usage(&format!("{flag} takes a positive number")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                args.large = 8;
                args.small = 200;
            }
            "--large" => args.large = count("--large", it.next()),
            "--small" => args.small = count("--small", it.next()),
            "--threads" => args.threads = count("--threads", it.next()),
            "--parallel" => {
                args.parallel = match it.next().as_deref() {
                    Some("objects") => Parallel::Objects,
                    Some("segments") => Parallel::Segments,
                    _ => usage("--parallel takes objects or segments"),
                }
            }
            // `cargo bench` passes `--bench`; a filter argument means nothing here.
            "--bench" => {}
            other if !other.starts_with('-') => {}
            other => usage(&format!("unknown option {other}")),
        }
    }
    args
}

/// Deterministic, incompressible bytes of object `index` (splitmix64).
fn content(index: usize, len: usize) -> Vec<u8> {
    let mut state = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn key_of(index: usize) -> String {
    format!("obj/{index:06}")
}

fn shell(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| panic!("running `{script}`: {e}"));
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Flushes what earlier phases left dirty, so that it is not written during a timing.
fn sync() {
    shell("sync");
}

fn put_all(
    store: &Store,
    pool: &ThreadPool,
    bucket: &str,
    count: usize,
    size: usize,
    e: &Encryption,
) {
    pool.install(|| {
        (0..count).into_par_iter().for_each(|i| {
            let options = PutOptions {
                encryption: Some(e.clone()),
                ..PutOptions::default()
            };
            store
                .put(bucket, &key_of(i), content(i, size).as_slice(), options)
                .unwrap_or_else(|e| panic!("put {bucket}/{}: {e}", key_of(i)));
        })
    });
}

/// Re-encrypts objects `0..count` of `bucket`; every one must have been done by `method`.
fn reencrypt_all(
    store: &Store,
    pool: &ThreadPool,
    bucket: &str,
    count: usize,
    request: &Reencrypt<'_>,
    method: ReencryptMethod,
    parallel: Parallel,
) {
    let one = |i: usize| {
        let (_, done) = store
            .reencrypt(bucket, &key_of(i), request)
            .unwrap_or_else(|e| panic!("reencrypt {bucket}/{}: {e}", key_of(i)));
        assert!(
            done == method,
            "{bucket}/{}: {done:?}, not {method:?}",
            key_of(i)
        );
    };
    pool.install(|| match parallel {
        Parallel::Objects => (0..count).into_par_iter().for_each(one),
        Parallel::Segments => (0..count).for_each(one),
    });
}

/// Reads back a sample of objects (first, last and evenly spaced between) and checks
/// their bytes, ETag and mode; `check` looks at the rest of their encryption state.
fn verify(
    store: &Store,
    bucket: &str,
    count: usize,
    size: usize,
    mode: SseMode,
    check: impl Fn(&SseState) -> bool,
) -> usize {
    let step = count.div_ceil(SAMPLE).max(1);
    let mut sample: Vec<usize> = (0..count).step_by(step).collect();
    if sample.last() != Some(&(count - 1)) {
        sample.push(count - 1);
    }
    for &i in &sample {
        let key = key_of(i);
        let mut body = Vec::with_capacity(size);
        let meta = store
            .get(bucket, &key, None, None, None, &mut body)
            .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e}"));
        assert!(
            body == content(i, size),
            "{bucket}/{key} does not read back as written"
        );
        assert_eq!(meta.size, size as u64, "{bucket}/{key}: size");
        let md5: String = Md5::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(meta.etag, md5, "{bucket}/{key}: ETag");
        assert_eq!(meta.sse.mode(), mode, "{bucket}/{key}: mode");
        assert!(
            check(&meta.sse),
            "{bucket}/{key}: encryption state {:?}",
            meta.sse
        );
    }
    sample.len()
}

/// CPU seconds (user + system) used so far by this process and by the children it
/// waited for, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..]
        .split(' ')
        .collect();
    // utime, stime, cutime, cstime are fields 14 to 17; `fields` starts at field 3.
    let ticks: f64 = fields[11..15]
        .iter()
        .map(|f| f.parse::<f64>().expect("stat field"))
        .sum();
    static HZ: OnceLock<f64> = OnceLock::new();
    let hz = HZ.get_or_init(|| shell("getconf CLK_TCK").parse().unwrap_or(100.0));
    ticks / hz
}

/// Runs `f` (work on `objects` objects of `bytes` bytes in all) and times it.
fn measure(what: &str, objects: usize, bytes: u64, f: impl FnOnce()) -> Row {
    let cpu = cpu_seconds();
    let start = Instant::now();
    f();
    let time = start.elapsed();
    Row {
        what: what.to_owned(),
        objects,
        bytes,
        time,
        cpu: cpu_seconds() - cpu,
    }
}

struct Row {
    what: String,
    objects: usize,
    bytes: u64,
    time: Duration,
    /// CPU seconds of the process (and its children, for `cp`) meanwhile.
    cpu: f64,
}

impl Row {
    fn gbps(&self) -> f64 {
        self.bytes as f64 / self.time.as_secs_f64() / 1e9
    }

    fn per_second(&self) -> f64 {
        self.objects as f64 / self.time.as_secs_f64()
    }
}

fn main() {
    let args = parse_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data");
    fs::create_dir_all(&root).expect("bench-data folder");
    let work = tempfile::Builder::new()
        .prefix("store-")
        .tempdir_in(&root)
        .expect("temporary folder in bench-data");
    let fs_type = shell(&format!(
        "findmnt -n -o SOURCE,FSTYPE -T '{}'",
        work.path().display()
    ));
    let pool = ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("rayon pool");
    let parallel = match args.parallel {
        Parallel::Objects => "rayon over objects",
        Parallel::Segments => "one object at a time, its segments in parallel",
    };
    println!("data folder: {} ({fs_type})", work.path().display());
    println!(
        "threads: {} ({parallel}); large: {} x {} MiB; small: {} x {} KiB",
        args.threads,
        args.large,
        LARGE_SIZE >> 20,
        args.small,
        SMALL_SIZE >> 10
    );

    let dir = work.path().join("store");
    let mut store =
        Store::init(&dir, MasterKey::from_slice(&[0x5a; 32]).expect("key")).expect("init");
    for bucket in [LARGE_BUCKET, SMALL_BUCKET] {
        store
            .create_bucket(bucket, Some(DefaultEncryption::SseS3))
            .expect("bucket");
    }
    let large_bytes = (args.large * LARGE_SIZE) as u64;
    let small_bytes = (args.small * SMALL_SIZE) as u64;
    let to_kms = Reencrypt {
        to: Encryption::SseKms {
            key_id: None,
            bucket_key: false,
        },
        if_match: None,
        source_key: None,
        fast_path: false,
    };
    let mut rows = Vec::new();

    // ---- set-up, not timed: plaintext objects, and the same bytes as plain files ----
    let plain = work.path().join("plain");
    fs::create_dir(&plain).expect("plain folder");
    let none = Encryption::None;
    put_all(&store, &pool, LARGE_BUCKET, args.large, LARGE_SIZE, &none);
    pool.install(|| {
        (0..args.large).into_par_iter().for_each(|i| {
            fs::write(plain.join(format!("{i:06}")), content(i, LARGE_SIZE)).expect("plain file")
        })
    });
    let n = verify(
        &store,
        LARGE_BUCKET,
        args.large,
        LARGE_SIZE,
        SseMode::NotSse,
        |_| true,
    );
    println!("checked {n} plaintext objects");
    sync();
    println!("load average before measuring: {}", shell("uptime"));

    // ---- 1. large objects ----
    let copy = work.path().join("copy");
    let cp = measure("cp -r + sync, plain files", args.large, large_bytes, || {
        shell(&format!(
            "cp -r '{}' '{}' && sync",
            plain.display(),
            copy.display()
        ));
    });
    let copied: u64 = fs::read_dir(&copy)
        .expect("copy folder")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert_eq!(copied, large_bytes, "cp copied {copied} bytes");
    sync();

    let what = "re-encrypt NOT-SSE -> SSE-KMS (rewrite)";
    let large = measure(what, args.large, large_bytes, || {
        let method = ReencryptMethod::Rewrite;
        reencrypt_all(
            &store,
            &pool,
            LARGE_BUCKET,
            args.large,
            &to_kms,
            method,
            args.parallel,
        )
    });
    let n = verify(
        &store,
        LARGE_BUCKET,
        args.large,
        LARGE_SIZE,
        SseMode::SseKms,
        |_| true,
    );
    println!("checked {n} large SSE-KMS objects");
    let ratio = large.gbps() / cp.gbps();
    rows.push(large);
    rows.push(cp);
    fs::remove_dir_all(&plain).expect("remove plain files");
    fs::remove_dir_all(&copy).expect("remove copy");

    // ---- 2. small objects ----
    let put = measure("put SSE-S3 (set-up)", args.small, small_bytes, || {
        put_all(
            &store,
            &pool,
            SMALL_BUCKET,
            args.small,
            SMALL_SIZE,
            &Encryption::SseS3,
        )
    });
    rows.push(put);
    let n = verify(
        &store,
        SMALL_BUCKET,
        args.small,
        SMALL_SIZE,
        SseMode::SseS3,
        |_| true,
    );
    println!("checked {n} small SSE-S3 objects");
    sync();

    let old_root = store.keys().root_versions().expect("root versions").0;
    let new_root = store.keys_mut().rotate_root().expect("rotate root");
    assert!(
        new_root > old_root,
        "root version {new_root} after {old_root}"
    );
    let reseal = Reencrypt {
        to: Encryption::SseS3,
        if_match: None,
        source_key: None,
        fast_path: true,
    };
    // One pass over the small objects, measured.
    let small_phase = |what: &str, request: &Reencrypt<'_>, method: ReencryptMethod| {
        measure(what, args.small, small_bytes, || {
            reencrypt_all(
                &store,
                &pool,
                SMALL_BUCKET,
                args.small,
                request,
                method,
                Parallel::Objects,
            )
        })
    };
    let what = "fast path SSE-S3 -> SSE-S3 (new root)";
    let fast = small_phase(what, &reseal, ReencryptMethod::Reseal);
    rows.push(fast);
    let n = verify(
        &store,
        SMALL_BUCKET,
        args.small,
        SMALL_SIZE,
        SseMode::SseS3,
        |sse| matches!(sse, SseState::SseS3 { root_version, .. } if *root_version == new_root),
    );
    println!("checked {n} small objects re-sealed under root version {new_root}");
    sync();

    let what = "re-encrypt SSE-S3 -> SSE-KMS (rewrite)";
    let small = small_phase(what, &to_kms, ReencryptMethod::Rewrite);
    let n = verify(
        &store,
        SMALL_BUCKET,
        args.small,
        SMALL_SIZE,
        SseMode::SseKms,
        |_| true,
    );
    println!("checked {n} small SSE-KMS objects");
    let small_rate = small.per_second();
    rows.push(small);
    sync();

    // The fast path of a KMS key change (what a CopyObject onto itself that names another
    // KMS key does through `reseal serve`): each object's data key re-sealed, one audit
    // record appended and fsynced, the metadata rewritten.
    let other = store
        .keys()
        .create_key(None, "benchmark")
        .expect("create KMS key")
        .id;
    let to_other = Reencrypt {
        to: Encryption::SseKms {
            key_id: Some(other.clone()),
            bucket_key: false,
        },
        if_match: None,
        source_key: None,
        fast_path: true,
    };
    let what = "fast path SSE-KMS -> SSE-KMS (other key)";
    let kms_fast = small_phase(what, &to_other, ReencryptMethod::Reseal);
    rows.push(kms_fast);
    let n = verify(
        &store,
        SMALL_BUCKET,
        args.small,
        SMALL_SIZE,
        SseMode::SseKms,
        |sse| matches!(sse, SseState::SseKms { dek, .. } if dek.key_id == other),
    );
    println!("checked {n} small objects re-sealed under KMS key {other}");
    println!("load average after measuring: {}", shell("uptime"));

    println!();
    println!(
        "| {:<40} | {:>7} | {:>9} | {:>8} | {:>7} | {:>6} | {:>9} |",
        "phase", "objects", "MiB", "seconds", "CPU s", "GB/s", "objects/s"
    );
    println!(
        "|{:-<42}|{:->9}|{:->11}|{:->10}|{:->9}|{:->8}|{:->11}|",
        "", "", "", "", "", "", ""
    );
    for row in &rows {
        println!(
            "| {:<40} | {:>7} | {:>9.1} | {:>8.3} | {:>7.2} | {:>6.3} | {:>9.0} |",
            row.what,
            row.objects,
            row.bytes as f64 / (1 << 20) as f64,
            row.time.as_secs_f64(),
            row.cpu,
            row.gbps(),
            row.per_second()
        );
    }
    println!();
    println!("GB/s: 10^9 bytes of plaintext per second; CPU s: user + system, all threads");
    println!(
        "large objects: reseal / (cp + sync) = {ratio:.2}x (aim >= 0.6x: {})",
        if ratio >= 0.6 { "met" } else { "NOT met" }
    );
    println!(
        "small objects: {small_rate:.0} rewrites/s (aim >= 1,000/s: {})",
        if small_rate >= 1000.0 {
            "met"
        } else {
            "NOT met"
        }
    );

    drop(store);
    let path: PathBuf = work.path().to_owned();
    work.close()
        .unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
    // bench-data/ itself too, unless something else keeps files there.
    let _ = fs::remove_dir(&root);
}
