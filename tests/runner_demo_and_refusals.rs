//! `reseal demo` from nothing, twice; and the refusals that protect a job: another store
//! than the job's, SSE-C key files that changed since the job was created, and an S3 run
//! without a region.

mod common;

use std::process::Command;

use common::Env;
use common::local::{KEY_A, KEY_B, Sse, Want, World, key_md5_b64};

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

#[test]
fn a_run_against_another_store_or_with_a_changed_key_is_refused() {
    let w = World::new();
    let objs = w.put_objects("r", 4, |_, _| 10_000, &[Sse::None]);
    let manifest = w.manifest_of("r.csv", &objs);
    let other = w.env.path("other-store");
    w.ok(&["store", "init", other.to_str().unwrap()]);

    let id = w.create(&manifest, "sse-s3", &[]);
    let r = w.run(&["job", "run", &id, "--store", other.to_str().unwrap()]);
    r.exits(2).says(&format!(
        "job {id} runs against the local store {}; the options name the local store {}",
        w.s(),
        other.display()
    ));
    assert_eq!(w.status(&id), "Ready");
    // The same store named by a relative path is the same store.
    w.run(&["job", "run", &id, "--store", "store"]).exits(0);

    // SSE-C: the key file given at creation now holds another key.
    let key_file = w.env.write("c.key", &KEY_A);
    let spec = format!("sse-c:@{}", key_file.display());
    let id = w.create(&manifest, &spec, &[]);
    let snapshot = w.snapshot();
    w.env.write("c.key", &KEY_B);
    let r = w.run(&["job", "run", &id]);
    r.exits(2).says(&format!(
        "--sse: the key at @{} is not the key the job was created with (MD5 {} expected, {} found)",
        key_file.display(),
        key_md5_b64(&KEY_A),
        key_md5_b64(&KEY_B)
    ));
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
    r.exits(2)
        .says("--source-sse-c: the key at")
        .says(&format!("MD5 {} expected", key_md5_b64(&KEY_A)));
    w.env.write("c.key", &KEY_A);
    w.ok(&["job", "run", &id]);
    w.verify(&objs, &Want::sse_s3());

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
    r.exits(2).says("no AWS region: give --region");
    assert_eq!(w.env.jobs().len(), jobs_before, "no job is left behind");
}
