//! A running job steered from another process: `job pause` stops the run and `job
//! resume` lets the next one finish it; `job cancel` stops it for good, with a report of
//! what ran and a store that no later run changes.

mod common;

use std::time::{Duration, Instant};

use common::local::{
    World, assert_stopped_cleanly, finish_and_verify, read_report, start_slow_job,
};

#[test]
fn pause_from_another_process_stops_the_run_and_resume_finishes_it() {
    let w = World::new();
    let (objs, id, mut run) = start_slow_job(&w, &[]);
    let out = w.run(&["job", "pause", &id]);
    out.exits(0).says("Active -> Pausing");
    let paused = Instant::now();
    let r = run.wait(Duration::from_secs(30));
    let took = paused.elapsed();
    r.exits(130);
    eprintln!("the pause took {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the pause took {took:?}"
    );
    r.says(&format!("job {id}: Paused"))
        .says(&format!("reseal job resume {id} && reseal job run {id}"));
    assert_eq!(w.status(&id), "Paused");
    assert_stopped_cleanly(&w, &id, &objs);

    let refused = w.run(&["job", "run", &id]);
    refused.exits(2).says("resume it first");
    let resumed = w.run(&["job", "resume", &id]);
    resumed.says("Paused -> Ready");
    finish_and_verify(&w, &id, &objs);
}

#[test]
fn cancel_from_another_process_stops_the_run_for_good() {
    let w = World::new();
    let reports = w.env.path("reports");
    let (objs, id, mut run) = start_slow_job(&w, &["--report", reports.to_str().unwrap()]);
    let out = w.run(&["job", "cancel", &id]);
    out.exits(0).says("Active -> Cancelling");
    let cancelled = Instant::now();
    let r = run.wait(Duration::from_secs(30));
    let took = cancelled.elapsed();
    r.exits(3);
    eprintln!("the cancel took {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the cancel took {took:?}"
    );
    r.says(&format!("job {id}: Cancelled"));
    assert_eq!(w.status(&id), "Cancelled");
    let c = assert_stopped_cleanly(&w, &id, &objs);
    // The report of a cancelled job lists the tasks that ran.
    let (rows, _) = read_report(&reports, &id);
    assert_eq!(rows.len() as u64, c.succeeded);
    assert!(rows.iter().all(|r| r.status == "succeeded"));

    // A cancelled job does not run again, and says so with its exit code.
    let snapshot = w.snapshot();
    let again = w.run(&["job", "run", &id]);
    again.exits(3).says("Cancelled");
    assert_eq!(w.counts(&id), c);
    assert!(
        w.snapshot() == snapshot,
        "a cancelled job changed the store"
    );
}
