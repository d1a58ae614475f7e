//! The S3 target when the network and the server misbehave: reseal talks to a server
//! through a fault-injecting proxy (tests/common/proxy.rs) that answers some requests with
//! 503 SlowDown, 500 InternalError, a dropped connection, a lost answer, or 200 with an
//! error body to a CopyObject; and an object is overwritten between reseal's HEAD and its
//! CopyObject. Every object must come out intact and encrypted, every task counted once.
//!
//! Each scenario is a function taking the server, so that it runs against several:
//! - moto stores what SSE it is given but ignores x-amz-copy-source-if-match;
//! - s3s-fs answers 412 to a stale x-amz-copy-source-if-match but ignores every SSE
//!   header, so reseal runs there with --no-verify and its encryption is not checked.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ServerSideEncryption;
use common::proxy::{Fault, Faults, Proxy};
use common::s3::S3Server;
use common::s3_fixture::{Fixture, overwrite, report_rows, row_of, run_listing};
use common::{Env, Run};
use reseal::encoding::decode_key;

/// `reseal run` over the whole bucket through the proxy, with a report: the run and the
/// report's folder.
fn run_through(
    f: &Fixture,
    proxy: &Proxy,
    env: &Env,
    bucket: &str,
    sse: &str,
    extra: &[&str],
) -> (Run, PathBuf) {
    let report = env.path("report");
    let listing = format!("s3://{bucket}");
    let extra = [&["--report", report.to_str().unwrap()][..], extra].concat();
    let args = f.run_args(&run_listing(&listing, sse, &extra));
    (f.reseal_at(env, &proxy.endpoint, &args), report)
}

/// 300 objects through a proxy that fails about one request in seven (503 SlowDown, 500
/// InternalError, a dropped connection, an answer lost after the server acted) and every
/// eleventh CopyObject with 200 and an error body, 150 faults at most: the run ends
/// well, every task is counted once, and every object keeps its bytes and is SSE-S3
/// (where the server reports SSE).
fn faults(f: &Fixture) {
    const N: usize = 300;
    let bucket = "faults";
    f.bucket(bucket);
    let mut objects = Vec::new();
    for i in 0..N {
        // Keys that need encoding in the copy source and the report.
        let key = format!("dir {}/obj+{i:03}.txt", i % 7);
        let body = format!("object {i} of the faults test\n")
            .repeat(1 + i % 40)
            .into_bytes();
        // Every tenth object is SSE-S3 already: skipped, not copied.
        let sse = (i % 10 == 0).then_some(ServerSideEncryption::Aes256);
        f.put_bytes(bucket, &key, &body, sse);
        objects.push((key, body));
    }
    let proxy = Proxy::start(
        &f.server.endpoint,
        Faults {
            every: 7,
            kinds: vec![
                Fault::SlowDown,
                Fault::InternalError,
                Fault::Dropped,
                Fault::LostResponse,
            ],
            copy_error_every: 11,
            max: 150,
        },
    );
    let env = Env::new();
    let started = Instant::now();
    let (run, report) = run_through(f, &proxy, &env, bucket, "sse-s3", &[]);
    let took = started.elapsed();
    let injected = proxy.faults();
    assert_eq!(
        run.code, 0,
        "{}: reseal failed (faults injected: {injected:?}):\nstdout: {}\nstderr: {}",
        f.server.name, run.stdout, run.stderr
    );

    // The job: every task succeeded or was skipped, none failed, each counted once.
    let jobs = env.jobs();
    assert_eq!(jobs.len(), 1);
    let tasks = &jobs[0]["tasks"];
    assert_eq!(jobs[0]["status"], "Complete", "{}", jobs[0]);
    assert_eq!(tasks["total"], N, "{tasks}");
    assert_eq!(tasks["failed"], 0, "{tasks}\n{}", run.stderr);
    assert_eq!(tasks["pending"], 0, "{tasks}");
    assert_eq!(tasks["leased"], 0, "{tasks}");
    // Objects that are SSE-S3 already are skipped where the server says so.
    let already = if f.server.caps.sse { N / 10 } else { 0 };
    assert_eq!(tasks["skipped"], already, "{tasks}");
    assert_eq!(
        tasks["succeeded"].as_u64().unwrap() + tasks["skipped"].as_u64().unwrap(),
        N as u64,
        "{tasks}"
    );

    // The report: one row per object, each key once, none failed.
    let rows = report_rows(&report);
    assert_eq!(rows.len(), N, "one report row per object");
    let keys: BTreeSet<String> = rows.iter().map(|r| decode_key(&r[1]).unwrap()).collect();
    assert_eq!(keys.len(), N, "{N} distinct keys in the report");
    let want: BTreeSet<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, want, "the report names exactly the bucket's objects");
    for row in &rows {
        assert_eq!(row[3], "succeeded", "{row:?}");
    }

    // The objects, straight from the server: same bytes, SSE-S3.
    for (key, body) in &objects {
        assert_eq!(&f.get(bucket, key), body, "{key}: bytes changed");
        if f.server.caps.sse {
            assert_eq!(
                f.sse(bucket, key),
                Some(ServerSideEncryption::Aes256),
                "{key}: not SSE-S3"
            );
        }
    }

    // The faults really happened, of every kind.
    for kind in [
        Fault::SlowDown,
        Fault::InternalError,
        Fault::Dropped,
        Fault::LostResponse,
        Fault::CopyError200,
    ] {
        assert!(
            injected.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind:?} fault injected: {injected:?}"
        );
    }
    let total: u64 = injected.values().sum();
    assert!(total >= 100, "only {total} faults injected: {injected:?}");
    let forwarded = proxy.forwarded();
    // Every object was inspected, and those to change were copied (the copy's own answer
    // confirms it where the server reports SSE; s3s-fs runs with --no-verify).
    let changed = (N - already) as u64;
    assert!(forwarded["HEAD"] >= N as u64, "{forwarded:?}");
    assert!(forwarded["PUT"] >= changed, "{forwarded:?}");
    assert!(
        run.stderr.contains("the server throttled or failed"),
        "the summary says requests were retried:\n{}",
        run.stderr
    );
    assert!(
        took < Duration::from_secs(60),
        "{}: the run took {took:?}",
        f.server.name
    );
}

#[test]
fn moto_faults() {
    faults(&Fixture::new(S3Server::moto()));
}

#[test]
fn s3s_fs_faults() {
    faults(&Fixture::new(S3Server::s3s_fs()));
}

/// The requests outside the tasks are retried too: a listing, a report upload and a
/// manifest download whose first three tries fail (503, 500, a dropped connection) get
/// through. They once failed the whole command at the first fault, with exit 2.
fn listing_report_and_manifest_retried(f: &Fixture) {
    let bucket = "oneoff";
    f.bucket(bucket);
    let keys = ["a.txt", "b c.txt", "d+e.txt"];
    for k in keys {
        f.put_bytes(bucket, k, k.as_bytes(), None);
    }
    let kinds = [Fault::SlowDown, Fault::InternalError, Fault::Dropped];
    let proxy = Proxy::start(&f.server.endpoint, Faults::first(3, &kinds));
    let env = Env::new();
    let check = |what: &str, run: &Run, faulted: &str| {
        assert_eq!(
            run.code, 0,
            "{} {what}: reseal failed:\nstdout: {}\nstderr: {}",
            f.server.name, run.stdout, run.stderr
        );
        // The first three tries of the request were answered with faults, the fourth by
        // the server.
        let seen = proxy.seen();
        let tries: Vec<_> = seen
            .iter()
            .rev()
            .filter(|s| s.fault.is_some())
            .take(3)
            .collect();
        assert_eq!(tries.len(), 3, "{what}: {seen:?}");
        assert!(
            tries
                .iter()
                .all(|s| format!("{} {}", s.method, s.key).starts_with(faulted)),
            "{what}: {seen:?}"
        );
        let n = tries[0].n;
        let next = seen.iter().find(|s| s.n == n + 1).expect("a fourth try");
        assert_eq!(
            (next.fault, next.status),
            (None, Some(200)),
            "{what}: {seen:?}"
        );
        proxy.set_faults(Faults::first(3, &kinds));
    };

    // The listing (ListObjectsV2: GET on the bucket).
    let run = f.reseal_at(
        &env,
        &proxy.endpoint,
        &f.run_args(&run_listing("s3://oneoff", "sse-s3", &[])),
    );
    check("listing", &run, "GET ");
    let id = env.jobs()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(env.jobs()[0]["tasks"]["succeeded"], keys.len());

    // The report, uploaded to S3 (a PUT per file).
    let run = f.reseal_at(
        &env,
        &proxy.endpoint,
        &["job", "report", &id, "--out", "s3://oneoff/reports"],
    );
    check("report upload", &run, "PUT reports/");
    let results = f.report_results("oneoff", "reports/");

    // The report's results file as the manifest of a new job (a GET of it).
    let manifest = format!("s3://oneoff/{results}");
    let env2 = Env::new();
    let run = f.reseal_at(
        &env2,
        &proxy.endpoint,
        &["job", "create", "--manifest", &manifest, "--sse", "sse-s3"],
    );
    check("manifest download", &run, "GET reports/");
    assert_eq!(env2.jobs()[0]["tasks"]["total"], keys.len());
}

#[test]
fn moto_listing_report_and_manifest_retried() {
    listing_report_and_manifest_retried(&Fixture::new(S3Server::moto()));
}

#[test]
fn s3s_fs_listing_report_and_manifest_retried() {
    listing_report_and_manifest_retried(&Fixture::new(S3Server::s3s_fs()));
}

/// An object overwritten between reseal's HEAD and its CopyObject: the newer bytes
/// survive. The proxy runs the overwrite right before it forwards the key's first
/// CopyObject, which carries x-amz-copy-source-if-match with the ETag the HEAD saw.
fn overwrite_race(f: &Fixture) {
    let bucket = "race";
    f.bucket(bucket);
    let key = "raced object.txt";
    let old = b"the bytes reseal inspected\n".repeat(20);
    let new = b"newer bytes, written during the run\n".repeat(30);
    f.put_bytes(bucket, key, &old, None);
    for i in 0..5 {
        f.put_bytes(bucket, &format!("bystander-{i}"), b"left alone", None);
    }

    let proxy = Proxy::start(&f.server.endpoint, Faults::default());
    {
        let endpoint = f.server.endpoint.clone();
        let new = new.clone();
        proxy.before_first_copy(bucket, key, move || overwrite(&endpoint, bucket, key, &new));
    }
    let env = Env::new();
    let (run, report) = run_through(f, &proxy, &env, bucket, "sse-s3", &[]);
    assert_eq!(
        run.code, 0,
        "{}: reseal failed:\nstdout: {}\nstderr: {}",
        f.server.name, run.stdout, run.stderr
    );
    let jobs = env.jobs();
    assert_eq!(jobs[0]["status"], "Complete", "{}", jobs[0]);
    assert_eq!(jobs[0]["tasks"]["succeeded"], 6, "{}", jobs[0]);
    assert_eq!(jobs[0]["tasks"]["failed"], 0, "{}", jobs[0]);

    assert_eq!(
        f.get(bucket, key),
        new,
        "{}: the newer bytes were overwritten with the ones inspected before",
        f.server.name
    );
    if f.server.caps.sse {
        assert_eq!(f.sse(bucket, key), Some(ServerSideEncryption::Aes256));
    }

    let copies = proxy.copies_of(bucket, key);
    let statuses: Vec<Option<u16>> = copies.iter().map(|c| c.status).collect();
    if f.server.caps.copy_if_match {
        // The first copy names the old ETag: refused. The task inspects again and copies
        // the newer object: one task, two attempts.
        assert_eq!(
            statuses,
            [Some(412), Some(200)],
            "{}: the copy guarded by the stale ETag is refused, the next one copies the newer object",
            f.server.name
        );
    } else {
        // moto ignores x-amz-copy-source-if-match, but a copy onto itself copies the
        // key's current bytes, the newer ones: the stale ETag costs nothing here.
        assert_eq!(statuses, [Some(200)], "{}", f.server.name);
    }
    let rows = report_rows(&report);
    let row = row_of(&rows, key);
    assert_eq!(row[3], "succeeded", "{row:?}");
    assert!(row[6].starts_with("re-encrypted by CopyObject"), "{row:?}");
}

#[test]
fn s3s_fs_overwrite_race() {
    overwrite_race(&Fixture::new(S3Server::s3s_fs()));
}

#[test]
fn moto_overwrite_race() {
    overwrite_race(&Fixture::new(S3Server::moto()));
}

/// A writer that keeps rewriting objects while reseal works on them. Each rewrite lands
/// right before reseal's CopyObject, whose x-amz-copy-source-if-match then no longer
/// holds (412). Changes under us have their own budget (`--max-changes`), apart from the
/// tries for errors (`--max-attempts`): an object rewritten five times is re-encrypted
/// with `--max-attempts 2`, and one that never stops changing ends "changing under us",
/// with the last ETag seen, not as a server error. An object rewritten right after
/// reseal's copy succeeded counts as done.
fn sustained_writes(f: &Fixture) {
    let bucket = "busy";
    f.bucket(bucket);
    for key in ["settles", "never settles", "after the copy"] {
        f.put_bytes(bucket, key, b"first bytes", None);
    }
    let proxy = Proxy::start(&f.server.endpoint, Faults::default());
    let rewriter = |key: &'static str| {
        let endpoint = f.server.endpoint.clone();
        let n = std::sync::atomic::AtomicU64::new(0);
        move || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            overwrite(&endpoint, bucket, key, format!("rewrite {i}").as_bytes());
        }
    };
    proxy.before_copies(bucket, "settles", 5, rewriter("settles"));
    proxy.before_copies(bucket, "never settles", u64::MAX, rewriter("never settles"));
    {
        let after = rewriter("after the copy");
        proxy.after_copy(bucket, "after the copy", after);
    }
    // reseal serve encrypts new objects with SSE-S3 by default: ask for more than that.
    let sse = if f.server.caps.default_sse {
        "sse-kms"
    } else {
        "sse-s3"
    };
    let env = Env::new();
    let extra = ["--max-attempts", "2", "--max-changes", "6"];
    let (run, report) = run_through(f, &proxy, &env, bucket, sse, &extra);
    assert_eq!(
        run.code, 1,
        "{}: one task fails, the job completes:\n{}",
        f.server.name, run.stderr
    );
    let rows = report_rows(&report);
    let row = |key: &str| row_of(&rows, key).to_vec();
    let settles = row("settles");
    assert_eq!(settles[3], "succeeded", "{settles:?}");
    assert_eq!(
        f.get(bucket, "settles"),
        b"rewrite 4",
        "the newest bytes stay"
    );
    let copies: Vec<Option<u16>> = proxy
        .copies_of(bucket, "settles")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(
        copies,
        [vec![Some(412); 5], vec![Some(200)]].concat(),
        "{}",
        f.server.name
    );

    let never = row("never settles");
    assert_eq!(never[3], "failed", "{never:?}");
    assert_eq!(
        (never[4].as_str(), never[5].as_str()),
        ("412", "ObjectChanging")
    );
    let newest = f.head(bucket, "never settles").e_tag().unwrap().to_owned();
    assert!(
        never[6].starts_with("changing under us") && never[6].contains("7 times"),
        "{never:?}"
    );
    assert_eq!(proxy.copies_of(bucket, "never settles").len(), 7);
    // The last ETag reseal saw is the one before the last rewrite.
    assert!(
        never[6].contains("last ETag seen: \"") && !never[6].contains(&newest),
        "{never:?} (newest {newest})"
    );

    let after = row("after the copy");
    assert_eq!(after[3], "succeeded", "{after:?}");
    assert_eq!(f.get(bucket, "after the copy"), b"rewrite 0");
    // reseal's write succeeded: the task did. The copy's answer confirms the new
    // encryption, so no inspection sees the rewrite (where one does, the report says the
    // object has changed since: runner::tests::a_rewrite_after_a_successful_write_…).
    assert!(
        after[6].starts_with("re-encrypted by CopyObject"),
        "{after:?}"
    );
}

#[test]
fn s3s_fs_sustained_writes() {
    sustained_writes(&Fixture::new(S3Server::s3s_fs()));
}

#[test]
fn serve_sustained_writes() {
    sustained_writes(&Fixture::new(S3Server::reseal_serve()));
}
