//! Runs stopped from outside: killed with SIGKILL at random points (no task lost, no
//! object damaged, every lease taken back by the next run), and stopped by SIGINT or
//! SIGTERM (exit 130, resumable, nothing half done).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::local::{
    BUCKET, KEY_A, Sse, Want, World, assert_stopped_cleanly, finish_and_verify, read_report,
    start_slow_job,
};
use common::{SIGINT, SIGTERM, send_signal};

#[test]
fn runs_killed_at_random_points_lose_no_task_and_damage_no_object() {
    let w = World::new();
    // Most objects small, one in 25 above 1 MiB, so that a run takes seconds.
    let objs = w.put_objects(
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
    let a = w.env.write("a.key", &KEY_A);
    let manifest = w.manifest_of("crash.csv", &objs);
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
        let delay = 50 + w.rng().below(551);
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
    r.exits(0);
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
    // No object was SSE-KMS before the job: none is reported as found compliant, not even
    // those a killed run re-encrypted but did not record.
    assert_eq!((c.succeeded, c.skipped), (total, 0), "{c:?}");
    assert!(
        rows.iter().all(|r| r.message.starts_with("re-encrypted")),
        "{:?}",
        rows.iter().find(|r| !r.message.starts_with("re-encrypted"))
    );

    w.verify(&objs, &Want::sse_kms(w.kms_id("alias/aws/s3")));
}

fn interrupted_by(sig: i32) {
    let w = World::new();
    let (objs, id, mut run) = start_slow_job(&w, &[]);
    send_signal(run.child.id(), sig);
    let sent = Instant::now();
    let r = run.wait(Duration::from_secs(30));
    r.exits(130);
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "stopping took {:?}",
        sent.elapsed()
    );
    r.says(&format!("job {id}: interrupted (still Active)"));
    r.says(&format!("resume    reseal job run {id}"));
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
    send_signal(run.child.id(), SIGINT);
    std::thread::sleep(Duration::from_millis(20));
    send_signal(run.child.id(), SIGINT);
    let r = run.wait(Duration::from_secs(30));
    r.exits(130).says("interrupted again");
    assert!(
        r.stderr.contains(&format!("resume    reseal job run {id}")),
        "the summary is printed: {}",
        r.stderr
    );
    assert_eq!(w.status(&id), "Active");
    let c = w.counts(&id);
    assert_eq!(c.leased, 0, "leases given back: {c:?}");
    w.run(&["job", "run", &id]).exits(0);
    // The tasks abandoned in flight were re-encrypted and not recorded: the next run
    // reports them as this job's work, not as found compliant.
    let c = w.counts(&id);
    assert_eq!(
        (c.succeeded, c.skipped, c.failed, c.pending + c.leased),
        (objs.len() as u64, 0, 0, 0),
        "{c:?}"
    );
    w.verify(&objs, &Want::sse_s3());
}

/// A run killed while it writes the completion report leaves no manifest.json (a reader
/// never sees half a report), and the next run of the finished job writes it whole, each
/// object once.
#[test]
fn a_run_killed_while_writing_the_report_leaves_it_to_the_next_run() {
    let w = World::new();
    let objs = w.put_objects(
        "report",
        3000,
        |_, rng| 1 + rng.below(64) as usize,
        &[Sse::None],
    );
    let manifest = w.manifest_of("report.csv", &objs);
    let mut landed = false;
    for attempt in 0..8 {
        let reports = w.env.path(&format!("reports-{attempt}"));
        let id = w.create(
            &manifest,
            "sse-s3",
            &["--report", reports.to_str().unwrap()],
        );
        let results = reports.join(format!("job-{id}")).join("results");
        let mut run = w.spawn(&["job", "run", &id]);
        // The results folder appears when the report's writing starts.
        let started = Instant::now();
        while !results.exists() && run.child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(120), "no report");
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = run.child.kill();
        let _ = run.child.wait();
        let manifest_json = reports.join(format!("job-{id}")).join("manifest.json");
        if manifest_json.exists() {
            // Too late: the report was whole before the kill; try again.
            continue;
        }
        landed = true;
        assert_eq!(w.status(&id), "Complete");
        let r = w.run(&["job", "run", &id]);
        r.exits(0).says("already Complete").says("report");
        assert!(manifest_json.exists(), "the next run wrote the report");
        let (rows, _) = read_report(&reports, &id);
        let keys: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!((rows.len(), keys.len()), (objs.len(), objs.len()));
        // Written once: a further run leaves it as it is.
        let before = std::fs::read(&manifest_json).unwrap();
        w.run(&["job", "run", &id]).exits(0);
        assert_eq!(std::fs::read(&manifest_json).unwrap(), before);
        break;
    }
    assert!(landed, "no kill landed while the report was written");
}
