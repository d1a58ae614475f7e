//! Many workers on one job, through a PostgreSQL job store (tests/run.sh starts one and
//! sets RESEAL_TEST_POSTGRES; without it these tests fail, they do not skip): workers that
//! are killed, stopped or paused past their leases lose nothing and count nothing twice,
//! two workers racing for one batch never both record a task, and a worker serves its
//! metrics while it runs.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::local::{Want, World, read_report};
use common::{Env, SIGCONT, SIGKILL, SIGSTOP, SIGTERM, send_signal};
use reseal::job::{JobSpec, JobStore, NewJob, PostgresJobStore, TaskResult, TaskState};
use reseal::sse::SseSpec;

/// Scrapes a worker's metrics; None until it listens.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

/// A sample's value in Prometheus text format.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Three workers on one job of 1,500 objects: one is killed with SIGKILL mid-run, one is
/// stopped with SIGTERM, the third goes on and finishes once the killed worker's leases
/// expire. Every object ends re-encrypted with its bytes, every task is counted once, the
/// report has each object once, and job describe shows the three workers.
#[test]
fn workers_killed_and_stopped_lose_nothing_and_count_nothing_twice() {
    let w = World::in_env(Env::with_postgres());
    let objs = w.put_objects(
        "fleet",
        1500,
        |_, rng| 1024 + rng.below(3072) as usize,
        &[common::local::Sse::None],
    );
    let manifest = w.manifest_of("fleet.csv", &objs);
    let report = w.env.path("report");
    let id = w.create(&manifest, "sse-s3", &["--report", report.to_str().unwrap()]);
    let port = common::s3::free_port().to_string();
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "job",
            "run",
            id.as_str(),
            "--concurrency",
            "4",
            "--lease",
            "10s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let spawn = |a: Vec<String>| w.spawn(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let mut killed = spawn(args(&[]));
    let mut stopped = spawn(args(&[]));
    let mut survivor = {
        let mut a = args(&[]);
        a.extend(["--metrics-addr".into(), format!("127.0.0.1:{port}")]);
        spawn(a)
    };
    w.wait_for_progress(&id, 300, &mut survivor);
    send_signal(killed.child.id(), SIGKILL);
    send_signal(stopped.child.id(), SIGTERM);
    let metrics = scrape(port.parse().unwrap()).expect("the survivor serves its metrics");
    assert!(
        sample(&metrics, "reseal_tasks_total{outcome=\"succeeded\"}").is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "reseal_leases_held").is_some(),
        "{metrics}"
    );
    let k = killed.wait(Duration::from_secs(10));
    assert_eq!(k.code, -1, "killed: {}", k.stderr);
    let s = stopped.wait(Duration::from_secs(60));
    assert_eq!(s.code, 130, "SIGTERM drains and exits 130: {}", s.stderr);
    let r = survivor.wait(Duration::from_secs(180));
    assert_eq!(r.code, 0, "{}", r.stderr);

    assert_eq!(w.status(&id), "Complete");
    let c = w.counts(&id);
    assert_eq!(c.total, objs.len() as u64);
    assert_eq!(
        (c.succeeded + c.skipped, c.failed, c.pending, c.leased),
        (objs.len() as u64, 0, 0, 0),
        "{c:?}"
    );
    w.verify(&objs, &Want::sse_s3());
    let (rows, _) = read_report(&report, &id);
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for row in &rows {
        *seen.entry(row.key.as_str()).or_default() += 1;
    }
    assert_eq!(seen.len(), objs.len(), "every object in the report");
    assert!(seen.values().all(|n| *n == 1), "each object once");

    let workers = w.describe(&id)["workers"].as_array().unwrap().clone();
    assert_eq!(workers.len(), 3, "{workers:?}");
    // A killed worker's last heartbeat may lag behind what it recorded: never ahead.
    let done: u64 = workers
        .iter()
        .map(|w| w["tasks_done"].as_u64().unwrap())
        .sum();
    assert!(done > 0 && done <= c.total, "workers' counts: {done} {c:?}");
}

/// A worker stopped with SIGSTOP past its lease comes back (SIGCONT) after another worker
/// took its tasks over: its results are not recorded, it says so, and the job's counts are
/// exact.
#[test]
fn a_worker_paused_past_its_lease_cannot_record_its_stale_results() {
    let w = World::in_env(Env::with_postgres());
    // Large objects, so that tasks are in flight when the worker is stopped.
    let objs = w.put_objects("slow", 24, |_, _| 6 << 20, &[common::local::Sse::None]);
    let manifest = w.manifest_of("slow.csv", &objs);
    let id = w.create(&manifest, "sse-s3", &[]);
    let mut paused = w.spawn(&["job", "run", &id, "--concurrency", "2", "--lease", "10s"]);
    w.wait_for_progress(&id, 2, &mut paused);
    send_signal(paused.child.id(), SIGSTOP);
    let stopped_at = Instant::now();
    std::thread::sleep(Duration::from_secs(12));
    // The other worker takes the expired leases over and finishes the job.
    let r = w.run(&["job", "run", &id, "--concurrency", "2", "--lease", "10s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(stopped_at.elapsed() > Duration::from_secs(10));
    send_signal(paused.child.id(), SIGCONT);
    let p = paused.wait(Duration::from_secs(60));
    assert!(p.code == 0 || p.code == 130, "{}", p.stderr);
    assert!(
        p.stderr.contains("were not recorded"),
        "the paused worker says its stale results were not recorded:\n{}",
        p.stderr
    );
    let c = w.counts(&id);
    assert_eq!(
        (
            c.total,
            c.succeeded + c.skipped,
            c.failed,
            c.pending,
            c.leased
        ),
        (24, 24, 0, 0, 0),
        "{c:?}"
    );
    w.verify(&objs, &Want::sse_s3());
}

fn new_job() -> NewJob {
    NewJob {
        spec: JobSpec {
            sse: SseSpec::SseS3,
            source_sse_c: None,
            bucket_key: false,
            filter: Default::default(),
            confirmation_required: false,
            trust_inventory: false,
            report: None,
        },
        target: None,
        priority: 10,
        description: String::new(),
        manifest_location: String::new(),
    }
}

/// Two workers lease batches of one job at the same time, in small batches, until it is
/// empty: no task is leased to both. Then each records results for every task, its own
/// and the other's: only the owner's count. A lease that expired and was taken over
/// cannot be recorded by its first owner.
#[test]
fn two_workers_racing_for_the_same_batch_never_both_record_a_task() {
    let env = Env::with_postgres();
    let manifest = env.write(
        "race.csv",
        (0..2000)
            .map(|i| format!("bkt,k{i}\n"))
            .collect::<String>()
            .as_bytes(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = PostgresJobStore::open(&env.db()).await.unwrap();
        let b = PostgresJobStore::open(&env.db()).await.unwrap();
        let (job, _) = reseal::job::create_job(&a, new_job(), manifest)
            .await
            .unwrap();
        let lease = Duration::from_secs(60);
        let take = |store: PostgresJobStore, owner: &'static str, job: reseal::job::Job| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.lease_tasks(&job, owner, 7, lease).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch);
                }
            })
        };
        let (ta, tb) = (
            take(a.clone(), "a", job.clone()),
            take(b.clone(), "b", job.clone()),
        );
        let (mine_a, mine_b) = (ta.await.unwrap(), tb.await.unwrap());
        assert_eq!(mine_a.len() + mine_b.len(), 2000);
        assert!(!mine_a.is_empty() && !mine_b.is_empty(), "both leased some");
        let seqs_a: std::collections::BTreeSet<i64> = mine_a.iter().map(|t| t.seq).collect();
        assert!(
            mine_b.iter().all(|t| !seqs_a.contains(&t.seq)),
            "no task leased twice"
        );

        let done = |t: &reseal::job::Task| TaskResult {
            seq: t.seq,
            lease_token: t.lease_token,
            state: TaskState::Succeeded,
            attempts: 1,
            http_status: 200,
            error_code: None,
            message: String::new(),
        };
        let all: Vec<TaskResult> = mine_a.iter().chain(&mine_b).map(done).collect();
        let (ra, rb) = tokio::join!(
            a.record_results(&job, "a", &all),
            b.record_results(&job, "b", &all)
        );
        assert_eq!(ra.unwrap(), mine_a.len() as u64);
        assert_eq!(rb.unwrap(), mine_b.len() as u64);
        let c = a.task_counts(&job).await.unwrap();
        assert_eq!((c.succeeded, c.leased, c.pending), (2000, 0, 0), "{c:?}");
    });

    // Fencing: a lease taken over after it expired, even by the same owner again, cannot
    // be recorded under the first lease.
    let manifest = env.write("fence.csv", b"bkt,x\n");
    rt.block_on(async {
        let s = PostgresJobStore::open(&env.db()).await.unwrap();
        let (job, _) = reseal::job::create_job(&s, new_job(), manifest)
            .await
            .unwrap();
        let first = s.lease_tasks(&job, "a", 1, Duration::ZERO).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = s
            .lease_tasks(&job, "a", 1, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!((first.len(), second.len()), (1, 1));
        let stale = TaskResult {
            seq: first[0].seq,
            lease_token: first[0].lease_token,
            state: TaskState::Failed,
            attempts: 1,
            http_status: 500,
            error_code: Some("Stale".into()),
            message: String::new(),
        };
        assert_eq!(s.record_results(&job, "a", &[stale]).await.unwrap(), 0);
        let fresh = TaskResult {
            lease_token: second[0].lease_token,
            state: TaskState::Succeeded,
            ..TaskResult {
                seq: second[0].seq,
                lease_token: 0,
                state: TaskState::Succeeded,
                attempts: 1,
                http_status: 200,
                error_code: None,
                message: String::new(),
            }
        };
        assert_eq!(s.record_results(&job, "a", &[fresh]).await.unwrap(), 1);
    });
}
