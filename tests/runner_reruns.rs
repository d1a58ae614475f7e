//! Work that must change nothing or be done once: a finished job run again, a new job
//! over objects already compliant, two runs of one job at once sharing its tasks, and a
//! dry run.

mod common;

use std::time::Duration;

use common::local::{Counts, Sse, Want, World, job_id_from, objects_this_run};

/// Running a Complete job again was refused as bad input (exit 2); it now changes nothing
/// and exits 0, as a nightly `reseal job run ID` expects.
#[test]
fn a_finished_job_run_again_was_refused_as_bad_input() {
    let w = World::new();
    let objs = w.put_objects(
        "rerun",
        12,
        |i, _| 2000 + i * 30_000,
        &[Sse::None, Sse::None, Sse::S3],
    );
    let manifest = w.manifest_of("rerun.csv", &objs);
    let reports = w.env.path("reports");
    let id = w.create(
        &manifest,
        "sse-s3",
        &["--report", reports.to_str().unwrap()],
    );
    w.run(&["job", "run", &id]).exits(0);
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
    again.exits(0).says("already Complete");
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
    none.exits(0).says("no Ready or Active job");

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
    r.exits(0);
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

#[test]
fn two_runs_of_one_job_at_once_share_the_tasks() {
    let w = World::new();
    let objs = w.put_objects(
        "two",
        128,
        |_, rng| (16 << 10) + rng.below(128 << 10) as usize,
        &[Sse::None, Sse::S3],
    );
    let manifest = w.manifest_of("two.csv", &objs);
    let id = w.create(&manifest, "sse-kms:alias/aws/s3", &[]);
    let mut first = w.spawn(&["job", "run", &id, "--concurrency", "4"]);
    let mut second = w.spawn(&["job", "run", &id, "--concurrency", "4"]);
    let a = first.wait(Duration::from_secs(120));
    let b = second.wait(Duration::from_secs(120));
    a.exits(0);
    b.exits(0);
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
    w.verify(&objs, &Want::sse_kms(w.kms_id("alias/aws/s3")));
}

#[test]
fn a_dry_run_changes_nothing_and_says_what_would_change() {
    let w = World::new();
    let objs = w.put_objects(
        "dry",
        9,
        |_, _| 40_000,
        &[Sse::None, Sse::S3, Sse::Kms(None)],
    );
    let manifest = w.manifest(
        "dry.csv",
        objs.iter().map(|o| o.key.as_str()).chain(["not/there"]),
    );
    let id = w.create(&manifest, "sse-kms", &[]);
    let snapshot = w.snapshot();
    let listed = w.ls();
    let r = w.run(&["job", "run", &id, "--dry-run"]);
    r.exits(0).says(&format!(
        "dry run of job {id}: 6 objects would be re-encrypted, 3 are already compliant, 1 could not be inspected"
    ));
    r.says("nothing was changed");
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
