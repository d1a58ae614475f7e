//! The job lifecycle and manifest ingestion, through the real binary and a real SQLite file.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Env, gz, repo_path};

fn inventory_rows(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "\"bkt\",\"dir/file+{i}.txt\",\"{}\",\"2024-0{}-01T00:00:00.000Z\",\"STANDARD\",\"{}\"\n",
                i * 10,
                1 + i % 9,
                if i % 2 == 0 { "NOT-SSE" } else { "SSE-S3" }
            )
        })
        .collect()
}

const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, StorageClass, EncryptionStatus";

#[test]
fn create_list_describe_pause_resume_cancel() {
    let env = Env::new();
    let manifest = env.inventory(SCHEMA, &[gz(&inventory_rows(30)), gz(&inventory_rows(12))]);
    let stdout = env.ok(&[
        "job",
        "create",
        "--manifest",
        manifest.to_str().unwrap(),
        "--sse",
        "sse-kms:alias/archive",
        "--bucket-key",
        "--match-encryption",
        "NOT-SSE",
        "--min-size",
        "20",
        "--priority",
        "42",
        "--description",
        "plaintext to KMS",
    ]);
    // The id, alone, on stdout.
    let id = stdout.trim();
    assert_eq!(stdout, format!("{id}\n"));
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let job = env.describe(id);
    assert_eq!(job["status"], "Ready");
    assert_eq!(job["priority"], 42);
    assert_eq!(job["spec"]["sse"]["mode"], "sse-kms");
    assert_eq!(job["spec"]["sse"]["key_id"], "alias/archive");
    assert_eq!(job["spec"]["bucket_key"], true);
    // 42 rows: 21 NOT-SSE, of which the first of each file (size 0) is under --min-size 20:
    // rows 0 and 2 hold 0 and 20 bytes in each file, only size 0 is dropped.
    assert_eq!(job["ingest"]["rows_read"], 42);
    assert_eq!(job["ingest"]["tasks"], 19);
    assert_eq!(job["ingest"]["rows_filtered"], 23);
    assert_eq!(job["tasks"]["total"], 19);
    assert_eq!(job["tasks"]["pending"], 19);
    assert_eq!(job["tasks"]["succeeded"], 0);

    let table = env.ok(&["job", "list"]);
    assert!(table.lines().next().unwrap().starts_with("ID"));
    assert!(table.contains(id) && table.contains("Ready") && table.contains("plaintext to KMS"));
    assert_eq!(env.jobs().len(), 1);

    env.ok(&["job", "pause", id]);
    assert_eq!(env.describe(id)["status"], "Paused");
    // Pausing twice is not a transition the lifecycle has.
    let again = env.reseal(&["job", "pause", id]);
    again.exits(2).says("cannot pause a job that is Paused");

    env.ok(&["job", "resume", id]);
    assert_eq!(env.describe(id)["status"], "Ready");
    // A prefix of the id is enough when it is unambiguous.
    env.ok(&["job", "priority", &id[..8], "7"]);
    assert_eq!(env.describe(id)["priority"], 7);
    env.ok(&["job", "cancel", id]);
    assert_eq!(env.describe(id)["status"], "Cancelled");
    let resume = env.reseal(&["job", "resume", id]);
    resume.exits(2).says("Cancelled");
    let list = env.ok(&["job", "list", "--status", "cancelled"]);
    assert!(list.contains(id));
    assert!(!env.ok(&["job", "list", "--status", "Ready"]).contains(id));
}

#[test]
fn confirmation_required_holds_the_job_suspended() {
    let env = Env::new();
    let csv = env.write("list.csv", b"bkt,a\nbkt,b%20c\n");
    let id = env.create_job(&csv, "sse-s3", &["--confirmation-required"]);
    assert_eq!(env.describe(&id)["status"], "Suspended");
    let pause = env.reseal(&["job", "pause", &id]);
    assert_eq!(pause.code, 2);
    env.ok(&["job", "confirm", &id]);
    assert_eq!(env.describe(&id)["status"], "Ready");
    let confirm = env.reseal(&["job", "confirm", &id]);
    confirm.exits(2).says("only a Suspended job");
}

#[test]
fn the_example_manifests_work_as_they_are() {
    let env = Env::new();
    for (manifest, tasks) in [
        ("manifests/objects.csv", 5),
        (
            "manifests/inventory/example-bucket/all-objects/2026-11-22T01-00Z/manifest.json",
            120,
        ),
        (
            "manifests/inventory/example-versioned/all-versions/2026-11-22T01-00Z/manifest.json",
            48,
        ),
    ] {
        let path = repo_path(manifest);
        let id = env.create_job(&path, "sse-s3", &[]);
        let job = env.describe(&id);
        assert_eq!(job["status"], "Ready", "{manifest}");
        assert_eq!(job["tasks"]["total"], tasks, "{manifest}");
    }
}

#[test]
fn the_job_store_is_private_to_its_owner() {
    let env = Env::new();
    env.ok(&["job", "list"]);
    // A PostgreSQL database's access is the server's roles' business.
    if let Some(file) = env.sqlite_file() {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn large_manifest_is_ingested_in_batches_with_every_row() {
    let env = Env::new();
    let rows = 25_000;
    let manifest = env.inventory(SCHEMA, &[gz(&inventory_rows(rows))]);
    let id = env.create_job(&manifest, "sse-s3", &[]);
    let job = env.describe(&id);
    assert_eq!(job["tasks"]["total"], rows);
    assert_eq!(
        job["ingest"]["bytes"],
        (0..rows as u64).map(|i| i * 10).sum::<u64>()
    );
}

#[test]
fn sse_c_keys_are_never_stored_or_shown() {
    use base64::Engine;
    let env = Env::new();
    let key = [0x5Au8; 32];
    let key_file = env.write("customer.key", &key);
    let csv = env.write("list.csv", b"bkt,a\n");
    let b64 = base64::engine::general_purpose::STANDARD.encode([0x3Cu8; 32]);
    let run = env.reseal_with_env(
        &[
            "job",
            "create",
            "--manifest",
            csv.to_str().unwrap(),
            "--sse",
            &format!("sse-c:@{}", key_file.display()),
            "--source-sse-c",
            "env:OLD_KEY",
        ],
        &[("OLD_KEY", &b64), ("RESEAL_LOG", "trace")],
    );
    run.exits(0);
    let id = run.stdout.trim().to_owned();
    let describe = env.ok(&["job", "describe", &id]);
    let json = env.ok(&["job", "describe", &id, "--output", "json"]);
    assert!(describe.contains("customer.key") && describe.contains("env:OLD_KEY"));

    let stored = env.db_contents();
    let engine = base64::engine::general_purpose::STANDARD;
    for secret in [[0x5Au8; 32], [0x3Cu8; 32]] {
        let forms = [
            engine.encode(secret),
            secret
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        ];
        for form in &forms {
            for (name, text) in [
                ("describe", &describe),
                ("json", &json),
                ("stdout", &run.stdout),
                ("stderr", &run.stderr),
            ] {
                assert!(!text.contains(form.as_str()), "{name} shows a key");
            }
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_bytes()),
                "the job store holds a key"
            );
        }
        assert!(
            !stored.windows(32).any(|w| w == secret),
            "the job store holds raw key bytes"
        );
    }
}

/// Each bad input exits 2, names the file (and line), and leaves no runnable job.
#[test]
fn bad_manifests_are_refused_and_leave_no_runnable_job() {
    let env = Env::new();
    let mut cases: Vec<(std::path::PathBuf, Vec<&str>, Vec<&str>)> = Vec::new();

    let csv = |name: &str, text: &str| env.write(name, text.as_bytes());
    cases.push((
        csv("header.csv", "Bucket,Key\nbkt,a\n"),
        vec![],
        vec!["header.csv line 1", "header"],
    ));
    cases.push((
        csv("mixed.csv", "bkt,a,v1\nbkt,b\n"),
        vec![],
        vec!["mixed.csv line 2", "version id"],
    ));
    cases.push((csv("empty.csv", ""), vec![], vec!["empty.csv", "no rows"]));
    cases.push((
        csv("badkey.csv", "bkt,a\nbkt,b\nbkt,%C3%28\n"),
        vec![],
        vec!["badkey.csv line 3", "UTF-8"],
    ));
    cases.push((
        csv("nosize.csv", "bkt,a\n"),
        vec!["--min-size", "1"],
        vec!["nosize.csv", "--min-size needs the Size column"],
    ));
    cases.push((
        env.path("missing.csv"),
        vec![],
        vec!["missing.csv", "No such file"],
    ));

    for (manifest, extra, expected) in cases {
        env.create_refused(&manifest, &extra, &expected);
    }

    // Inventory failures: a data file that does not match its MD5, a truncated gzip, a
    // missing column, a bad row deep in the second file.
    let good = gz(&inventory_rows(100));
    let mut truncated = gz(&inventory_rows(5000));
    truncated.truncate(truncated.len() / 2);
    type MakeManifest<'a> = Box<dyn Fn(&Env) -> std::path::PathBuf + 'a>;
    let inventory_cases: Vec<(MakeManifest, Vec<&str>)> = vec![
        (
            Box::new(|env: &Env| {
                let path = env.inventory(SCHEMA, &[good.clone(), good.clone()]);
                env.write(
                    "inv/bkt/cfg/data/part1.csv.gz",
                    &gz("\"bkt\",\"x\",\"1\",\"\",\"\",\"\"\n"),
                );
                path
            }),
            vec!["part1.csv.gz", "MD5 mismatch"],
        ),
        (
            Box::new(|env: &Env| env.inventory(SCHEMA, &[good.clone(), truncated.clone()])),
            vec!["part1.csv.gz", "gzip"],
        ),
        (
            Box::new(|env: &Env| env.inventory("Bucket, Size", std::slice::from_ref(&good))),
            vec!["manifest.json", "no Key column"],
        ),
        (
            Box::new(|env: &Env| {
                let mut rows = inventory_rows(50);
                rows.push_str("\"bkt\",\"k\",\"NaN\",\"\",\"\",\"\"\n");
                env.inventory(SCHEMA, &[good.clone(), gz(&rows)])
            }),
            vec!["part1.csv.gz line 51", "Size"],
        ),
    ];
    for (make, expected) in inventory_cases {
        let manifest = make(&env);
        env.create_refused(&manifest, &[], &expected);
    }

    // Every job those made is Failed, with its reason, and holds no task.
    let jobs = env.jobs();
    assert_eq!(jobs.len(), 10);
    for job in jobs {
        assert_eq!(job["status"], "Failed", "{job}");
        assert_eq!(job["tasks"]["total"], 0, "{job}");
        assert_eq!(job["failure_reasons"].as_array().unwrap().len(), 1, "{job}");
    }
}

#[test]
fn bad_options_are_refused_before_any_job_exists() {
    let env = Env::new();
    let csv = env.write("list.csv", b"bkt,a\n");
    let m = csv.to_str().unwrap();
    for (args, expected) in [
        (vec!["--sse", "aes256"], "--sse \"aes256\""),
        (vec!["--sse", "dsse-kms"], "needs a KMS key"),
        (vec!["--sse", "sse-c:@nope.key"], "cannot read the key file"),
        (vec!["--sse", "sse-c:env:RESEAL_UNSET_KEY"], "not set"),
        (
            vec!["--sse", "sse-s3", "--bucket-key"],
            "--bucket-key applies to SSE-KMS only",
        ),
        (
            vec!["--sse", "sse-s3", "--min-size", "9", "--max-size", "3"],
            "larger than --max-size",
        ),
        (
            vec!["--sse", "sse-s3", "--modified-after", "tomorrow"],
            "--modified-after",
        ),
        (
            vec!["--sse", "sse-s3", "--match-encryption", "AES"],
            "unknown encryption status",
        ),
        (
            vec!["--sse", "sse-s3", "--report-scope", "failed"],
            "--report",
        ),
    ] {
        let mut all = vec!["job", "create", "--manifest", m];
        all.extend(args.iter().copied());
        let run = env.reseal(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{args:?}: {expected:?} not in {}",
            run.stderr
        );
    }
    assert!(env.jobs().is_empty());
    let unknown = env.reseal(&["job", "describe", "0000"]);
    assert_eq!(unknown.code, 2);
    unknown.says("no job \"0000\"");
}

/// A job store whose schema is newer than this binary (a migration it does not know) is
/// refused, clearly, and left as it is.
#[test]
fn a_job_store_newer_than_the_binary_is_refused_and_left_alone() {
    let env = Env::new();
    env.ok(&["job", "list"]);
    env.add_future_migration();
    for _ in 0..2 {
        env.reseal(&["job", "list"])
            .exits(1)
            .says("migration 9999, which this reseal does not know")
            .says("left as it is");
    }
}

/// Several processes opening a new job store at the same moment (a sweep from cron and a
/// `job list` by hand) all succeed: the schema is set up once, not raced.
#[test]
fn a_new_job_store_opened_by_many_at_once_is_set_up_once() {
    for _ in 0..3 {
        let env = Env::new();
        let db = env.db();
        let children: Vec<_> = (0..8)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
                    .args(["--db", &db, "job", "list"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("the reseal binary runs")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("reseal ends");
            assert!(
                out.status.success(),
                "a concurrent first open failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
