//! Failed tasks: the failure threshold that fails a job (and the few failures that do
//! not), and the completion report, checked field by field and fed back as the manifest
//! of a job that retries the failed tasks.

mod common;

use std::collections::BTreeSet;

use common::local::{BUCKET, Counts, Obj, Sse, Want, World, body, read_report};

#[test]
fn many_failures_fail_the_job_and_a_few_do_not() {
    let w = World::new();
    let real = w.put_objects("real", 5, |_, _| 1000, &[Sse::None]);
    let missing: Vec<String> = (0..30).map(|i| format!("missing/{i}")).collect();
    let keys: Vec<&str> = missing
        .iter()
        .map(String::as_str)
        .chain(real.iter().map(|o| o.key.as_str()))
        .collect();
    let manifest = w.manifest("mostly-missing.csv", keys);
    let id = w.create(&manifest, "sse-kms", &[]);
    let r = w.run(&["job", "run", &id, "--failure-threshold-min-tasks", "10"]);
    r.exits(3).says(&format!("job {id}: Failed: "));
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
    w.run(&["job", "run", &id, "--failure-threshold-min-tasks", "10"])
        .exits(3);
    assert_eq!(w.counts(&id), c);

    // 3 failures in 23 tasks: under 50%, the job completes with exit code 1.
    let few = w.put_objects("few", 20, |_, _| 1000, &[Sse::None]);
    let keys: Vec<&str> = ["gone/1", "gone/2", "gone/3"]
        .into_iter()
        .chain(few.iter().map(|o| o.key.as_str()))
        .collect();
    let manifest = w.manifest("some-missing.csv", keys);
    let id = w.create(&manifest, "sse-kms", &[]);
    let r = w.run(&["job", "run", &id, "--failure-threshold-min-tasks", "10"]);
    r.exits(1).says(&format!("job {id}: Complete"));
    r.says("23 total: 20 succeeded, 0 skipped, 3 failed, 0 not run");
    assert_eq!(w.status(&id), "Complete");
    assert!(
        w.describe(&id)["failure_reasons"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_report_checks_out_and_its_failed_tasks_run_again_as_a_manifest() {
    let w = World::new();
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
            Obj::new(i, k.to_string(), body(w.rng().next(), 5000 + i), sse)
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
    r.exits(1);
    let report_line = format!(
        "report    {}",
        reports.join(format!("job-{id}/manifest.json")).display()
    );
    r.says(&report_line);

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
    w.run(&[
        "job",
        "report",
        &id,
        "--out",
        only_failed.to_str().unwrap(),
        "--scope",
        "failed",
    ])
    .exits(0);
    let (failed_rows, failed_files) = read_report(&only_failed, &id);
    assert_eq!(failed_files.keys().collect::<Vec<_>>(), ["failed"]);
    let keys: BTreeSet<&str> = failed_rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, missing.iter().copied().collect());

    // …is a manifest: once the objects exist, a job made from it re-encrypts them.
    let now_there: Vec<Obj> = missing
        .iter()
        .enumerate()
        .map(|(i, k)| Obj::new(i, k.to_string(), body(w.rng().next(), 3000 + i), Sse::None))
        .collect();
    for o in &now_there {
        w.put_cli(o, "none");
    }
    let retry = w.create(&failed_files["failed"], "sse-kms", &[]);
    let job = w.describe(&retry);
    assert_eq!(job["ingest"]["rows_read"], missing.len());
    w.run(&["job", "run", &retry]).exits(0);
    let n = missing.len() as u64;
    assert_eq!(
        w.counts(&retry),
        Counts {
            total: n,
            succeeded: n,
            ..Counts::default()
        }
    );
    w.verify(&now_there, &Want::sse_kms(w.kms_id("alias/aws/s3")));
}
