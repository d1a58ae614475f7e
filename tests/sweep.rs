//! `reseal sweep` through the binary: on the local store with inventories in a local
//! folder (S3's layout), and on S3 (moto) with the inventory in a bucket. The newest
//! complete inventory is taken, compliant rows are not tasks, a sweep remembers its jobs,
//! one run at a time holds its lock, the time box exits 75 and the next run goes on, and
//! the census (and its Prometheus textfile) matches the objects.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::local::{BUCKET, Obj, Sse, Want, World};
use common::{Run, gz, md5_hex, send_signal};
use serde_json::Value;

/// A date folder's name `hours` ago, as S3 names them.
fn folder(hours: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours))
        .format("%Y-%m-%dT%H-%MZ")
        .to_string()
}

/// Writes an inventory of `rows` (key, size, EncryptionStatus) into `config/DATE/` with its
/// data file in `config/data/`; without `complete`, no manifest.checksum (S3 is still
/// writing it). Without `encryption`, the schema has no EncryptionStatus column.
fn write_inventory(
    config: &Path,
    date: &str,
    rows: &[(String, usize, &str)],
    complete: bool,
    encryption: bool,
) {
    let text: String = rows
        .iter()
        .map(|(key, size, mode)| {
            let key = reseal::encoding::encode_key(key);
            if encryption {
                format!("\"{BUCKET}\",\"{key}\",\"{size}\",\"{mode}\"\n")
            } else {
                format!("\"{BUCKET}\",\"{key}\",\"{size}\"\n")
            }
        })
        .collect();
    let data = gz(&text);
    let name = format!("{date}.csv.gz");
    std::fs::create_dir_all(config.join("data")).unwrap();
    std::fs::write(config.join("data").join(&name), &data).unwrap();
    let schema = if encryption {
        "Bucket, Key, Size, EncryptionStatus"
    } else {
        "Bucket, Key, Size"
    };
    let manifest = serde_json::json!({
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::inv",
        "version": "2016-11-30",
        "creationTimestamp": "1700000000000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": [{"key": format!("inv/bkt/cfg/data/{name}"), "size": data.len(), "MD5checksum": md5_hex(&data)}],
    });
    let text = serde_json::to_vec_pretty(&manifest).unwrap();
    let dir = config.join(date);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), &text).unwrap();
    if complete {
        std::fs::write(dir.join("manifest.checksum"), md5_hex(&text)).unwrap();
    }
}

/// Inventory rows of objects as they are now.
fn rows_of(objs: &[Obj]) -> Vec<(String, usize, &'static str)> {
    objs.iter()
        .map(|o| (o.key.clone(), o.body.len(), o.sse.mode()))
        .collect()
}

fn config(w: &World) -> PathBuf {
    w.env.path("inv/bkt/cfg")
}

/// `reseal sweep` over the world's inventory folder to SSE-S3 on its store.
fn sweep(w: &World, extra: &[&str]) -> Run {
    let config = config(w);
    let args = [
        &[
            "sweep",
            "--inventory",
            config.to_str().unwrap(),
            "--sse",
            "sse-s3",
            "--store",
            w.s(),
        ][..],
        extra,
    ]
    .concat();
    w.run(&args)
}

fn sweep_json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {:?}\nstderr: {}", run.stdout, run.stderr))
}

/// The figures of a Prometheus textfile as a real parser reads them: (name, labels) -> value.
fn parse_textfile(path: &Path) -> Vec<(String, Value, f64)> {
    let python = common::repo_path(".venv/bin/python");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys\n\
             from prometheus_client.parser import text_string_to_metric_families\n\
             out = []\n\
             for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n\
             \x20   for s in family.samples:\n\
             \x20       out.append([s.name, s.labels, s.value])\n\
             print(json.dumps(out))\n",
        )
        .arg(path)
        .output()
        .expect("python from .venv (tests/run.sh installs prometheus-client there)");
    assert!(
        out.status.success(),
        "the textfile does not parse as Prometheus text:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples
}

fn sample(samples: &[(String, Value, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .unwrap_or_else(|| panic!("{name} {labels:?} not in {samples:?}"))
        .2
}

#[test]
fn a_sweep_takes_the_newest_complete_inventory_and_fixes_only_what_is_not_compliant() {
    let w = World::new();
    let objs = w.put_objects(
        "nightly",
        30,
        |_, rng| 1000 + rng.below(3000) as usize,
        &[Sse::None, Sse::S3, Sse::None],
    );
    let plain: Vec<&Obj> = objs.iter().filter(|o| o.sse.mode() == "NOT-SSE").collect();
    let bytes = |o: &[&Obj]| o.iter().map(|o| o.body.len() as u64).sum::<u64>();
    let all: Vec<&Obj> = objs.iter().collect();
    let (chosen, older, newer) = (folder(20), folder(72), folder(1));
    // Three inventories: the newest still being written, one complete, one older.
    write_inventory(&config(&w), &older, &rows_of(&objs[..5]), true, true);
    write_inventory(&config(&w), &chosen, &rows_of(&objs), true, true);
    write_inventory(&config(&w), &newer, &rows_of(&objs[..3]), false, true);
    let textfile = w.env.path("metrics/reseal.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();

    let run = sweep(
        &w,
        &[
            "--metrics-textfile",
            textfile.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    run.exits(0)
        .says(&format!("inventory {newer} has no manifest.checksum yet"));
    let out = sweep_json(&run);
    assert_eq!(out["inventory"], chosen.as_str(), "{}", run.stderr);
    let id = out["job"].as_str().unwrap().to_owned();
    // Only the plaintext objects became tasks; the SSE-S3 rows cost nothing.
    let job = w.describe(&id);
    assert_eq!(job["ingest"]["tasks"], plain.len() as u64, "{job}");
    assert_eq!(job["ingest"]["rows_compliant"], 10, "{job}");
    assert_eq!(w.counts(&id).succeeded, plain.len() as u64);
    w.verify(&objs, &Want::sse_s3());

    // The census: the inventory's figures before, the store's after.
    let census = &out["census"];
    assert_eq!(census["scope"]["objects"], 30);
    assert_eq!(census["scope"]["bytes"], bytes(&all));
    assert_eq!(census["before"]["NOT-SSE"]["objects"], 20);
    assert_eq!(census["before"]["NOT-SSE"]["bytes"], bytes(&plain));
    assert_eq!(census["before"]["SSE-S3"]["objects"], 10);
    assert_eq!(census["after"]["SSE-S3"]["objects"], 30);
    assert_eq!(census["after"]["SSE-S3"]["bytes"], bytes(&all));
    assert!(census["after"].get("NOT-SSE").is_none(), "{census}");
    assert_eq!(census["compliant_objects_percent"], 100.0);
    run.says("compliant  100.0% of objects, 100.00% of bytes (SSE-S3)");

    let samples = parse_textfile(&textfile);
    let name = out["sweep"].as_str().unwrap();
    let labels = |census: &'static str, mode: &'static str| {
        [("sweep", name), ("census", census), ("mode", mode)]
    };
    assert_eq!(
        sample(
            &samples,
            "reseal_sweep_objects",
            &labels("before", "NOT-SSE")
        ),
        20.0
    );
    assert_eq!(
        sample(&samples, "reseal_sweep_objects", &labels("after", "SSE-S3")),
        30.0
    );
    assert_eq!(
        sample(&samples, "reseal_sweep_bytes", &labels("after", "SSE-S3")),
        bytes(&all) as f64
    );
    assert_eq!(
        sample(
            &samples,
            "reseal_sweep_compliant_objects_ratio",
            &[("sweep", name)]
        ),
        1.0
    );
    assert_eq!(
        sample(&samples, "reseal_sweep_exit_code", &[("sweep", name)]),
        0.0
    );
    let mode = std::fs::metadata(&textfile).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        mode.permissions().mode() & 0o777,
        0o644,
        "readable by a collector"
    );
    let leftovers: Vec<_> = std::fs::read_dir(textfile.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "only the textfile: {leftovers:?}");

    // The same inventory again: nothing to do, and it says so.
    let again = sweep(&w, &[]);
    again.exits(0).says(&format!(
        "already swept for inventory {chosen}: job {id} is Complete"
    ));
    assert_eq!(w.env.jobs().len(), 1, "no second job");
}

#[test]
fn an_inventory_too_old_is_refused_and_one_without_encryption_status_makes_every_row_a_task() {
    let w = World::new();
    let objs = w.put_objects("old", 6, |_, _| 100, &[Sse::None, Sse::S3]);
    let date = folder(72);
    write_inventory(&config(&w), &date, &rows_of(&objs), true, false);
    let refused = sweep(&w, &[]);
    refused
        .exits(4)
        .says(&date)
        .says("older than --max-age 48h");
    assert!(w.env.jobs().is_empty(), "nothing was created");

    let run = sweep(&w, &["--max-age", "4d"]);
    run.exits(0)
        .says("no EncryptionStatus column: every object is a task");
    let id = w.env.jobs()[0]["id"].as_str().unwrap().to_owned();
    let c = w.counts(&id);
    assert_eq!((c.total, c.succeeded, c.skipped), (6, 3, 3), "{c:?}");
    w.verify(&objs, &Want::sse_s3());

    // No inventory at all: refused, naming the folder.
    let empty = w.env.path("nothing");
    std::fs::create_dir_all(&empty).unwrap();
    w.run(&[
        "sweep",
        "--inventory",
        empty.to_str().unwrap(),
        "--sse",
        "sse-s3",
        "--store",
        w.s(),
    ])
    .exits(2)
    .says("no complete inventory");
}

/// Objects that take a while to re-encrypt one at a time.
fn slow_objects(w: &World, prefix: &str, n: usize) -> Vec<Obj> {
    w.put_objects(
        prefix,
        n,
        |_, rng| (256 << 10) + rng.below(128 << 10) as usize,
        &[Sse::None],
    )
}

#[test]
fn the_time_box_exits_75_the_next_run_finishes_and_a_newer_inventory_supersedes() {
    let w = World::new();
    let first = slow_objects(&w, "first", 60);
    let date_a = folder(30);
    write_inventory(&config(&w), &date_a, &rows_of(&first), true, true);
    let reports = w.env.path("reports");
    let textfile = w.env.path("sweep.prom");
    let boxed = sweep(
        &w,
        &[
            "--max-duration",
            "1s",
            "--concurrency",
            "1",
            "--report",
            reports.to_str().unwrap(),
            "--metrics-textfile",
            textfile.to_str().unwrap(),
        ],
    );
    boxed.exits(75).says("time is up");
    let id_a = w.env.jobs()[0]["id"].as_str().unwrap().to_owned();
    let c = w.counts(&id_a);
    assert_eq!((c.leased, c.failed), (0, 0), "{c:?}");
    assert!(c.pending > 0, "the box stopped it early: {c:?}");
    assert_eq!(w.status(&id_a), "Active");
    assert_eq!(w.count_in_mode(&first, "SSE-S3"), c.succeeded);
    // The report of what was done so far, and the textfile says "partly done".
    let (rows, _) = common::local::read_report(&reports, &id_a);
    assert_eq!(rows.len() as u64, c.succeeded, "one row per task done");
    let samples = parse_textfile(&textfile);
    assert_eq!(sample(&samples, "reseal_sweep_exit_code", &[]), 75.0);
    assert_eq!(
        sample(&samples, "reseal_sweep_not_run_tasks", &[]),
        c.pending as f64
    );

    // The next run goes on with the same job and finishes it.
    let next = sweep(&w, &["--report", reports.to_str().unwrap()]);
    next.exits(0)
        .says(&format!("resuming job {id_a} of inventory {date_a}"));
    assert_eq!(w.status(&id_a), "Complete");
    w.verify(&first, &Want::sse_s3());
    let (rows, _) = common::local::read_report(&reports, &id_a);
    assert_eq!(rows.len(), first.len(), "the final report lists every task");

    // A new inventory's job is cut short; a newer inventory replaces it.
    let second = slow_objects(&w, "second", 60);
    let date_b = folder(20);
    let mut listed = rows_of(&first);
    for row in &mut listed {
        row.2 = "SSE-S3";
    }
    listed.extend(rows_of(&second));
    write_inventory(&config(&w), &date_b, &listed, true, true);
    sweep(&w, &["--max-duration", "1s", "--concurrency", "1"]).exits(75);
    let id_b = w
        .env
        .jobs()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .find(|id| *id != id_a)
        .unwrap();
    let done_b = w.counts(&id_b).succeeded;
    let date_c = folder(2);
    write_inventory(&config(&w), &date_c, &listed, true, true);
    let superseding = sweep(&w, &["--output", "json"]);
    superseding.exits(0).says(&format!(
        "job {id_b} of inventory {date_b} is superseded by inventory {date_c}: cancelled with {done_b} of 60 tasks done"
    ));
    assert_eq!(w.status(&id_b), "Cancelled");
    let out = sweep_json(&superseding);
    let id_c = out["job"].as_str().unwrap();
    // The objects the cancelled job fixed are found compliant by inspection.
    let c = w.counts(id_c);
    assert_eq!(
        (c.total, c.skipped, c.succeeded),
        (60, done_b, 60 - done_b),
        "{c:?}"
    );
    assert_eq!(out["census"]["compliant_objects_percent"], 100.0);
    w.verify(&second, &Want::sse_s3());
}

/// Waits until the sweep's job has done some tasks.
fn wait_for_sweep_progress(w: &World, run: &mut common::local::Spawned) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Some(job) = w.env.jobs().first() {
            let id = job["id"].as_str().unwrap().to_owned();
            if w.counts(&id).done() >= 2 {
                return id;
            }
        }
        assert!(run.child.try_wait().unwrap().is_none(), "{}", run.stderr());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn one_sweep_at_a_time_and_a_stopped_or_killed_holder_does_not_block_the_next() {
    let w = World::new();
    let objs = slow_objects(&w, "locked", 80);
    write_inventory(&config(&w), &folder(10), &rows_of(&objs), true, true);
    let config = config(&w);
    let args = |lease: &'static str| {
        vec![
            "sweep".to_owned(),
            "--inventory".into(),
            config.display().to_string(),
            "--sse".into(),
            "sse-s3".into(),
            "--store".into(),
            w.s().into(),
            "--concurrency".into(),
            "1".into(),
            "--lease".into(),
            lease.into(),
        ]
    };
    let strs = |v: &[String]| v.iter().map(String::clone).collect::<Vec<_>>();
    let holder_args = strs(&args("10s"));
    let holder_args: Vec<&str> = holder_args.iter().map(String::as_str).collect();
    let mut holder = w.spawn(&holder_args);
    let id = wait_for_sweep_progress(&w, &mut holder);

    // A second run while the first works: refused at once, naming the holder.
    let busy = sweep(&w, &[]);
    busy.exits(5)
        .says(&format!(":{}:", holder.child.id()))
        .says("is being run by")
        .says(" since ");
    assert_eq!(w.env.jobs().len(), 1);

    // The holder stops answering (alive, not renewing): after its lock expires, the next
    // run takes the sweep over and finishes the job.
    send_signal(holder.child.id(), common::SIGSTOP);
    std::thread::sleep(Duration::from_secs(11));
    let took_over = sweep(&w, &["--lease", "10s"]);
    took_over.exits(0).says(&format!("resuming job {id}"));
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    assert_eq!(w.status(&id), "Complete");
    w.verify(&objs, &Want::sse_s3());

    // A holder killed outright: its lock is taken at once (its process is gone).
    let more = slow_objects(&w, "killed", 60);
    let mut listed = rows_of(&objs);
    for row in &mut listed {
        row.2 = "SSE-S3";
    }
    listed.extend(rows_of(&more));
    write_inventory(&config, &folder(1), &listed, true, true);
    let long_args = strs(&args("10m"));
    let long_args: Vec<&str> = long_args.iter().map(String::as_str).collect();
    let mut killed = w.spawn(&long_args);
    let started = std::time::Instant::now();
    loop {
        let jobs = w.env.jobs();
        let new = jobs
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .find(|j| *j != id);
        if new.is_some_and(|j| w.counts(j).done() >= 2) {
            break;
        }
        assert!(
            killed.child.try_wait().unwrap().is_none(),
            "{}",
            killed.stderr()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            killed.stderr()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    send_signal(killed.child.id(), common::SIGKILL);
    killed.child.wait().unwrap();
    sweep(&w, &[])
        .exits(0)
        .says("took over the lock of a run that is gone");
    w.verify(&more, &Want::sse_s3());
}

/// On S3: the inventory is in a bucket (moto), the newest folder still being written is
/// passed over, `--estimate` counts the requests the sweep then sends on the swept bucket
/// (compliant rows cost none), the objects end SSE-S3 with their bytes, and the same
/// inventory again is already swept.
#[test]
fn a_sweep_reads_its_inventory_from_s3_and_sends_what_it_estimated() {
    use common::proxy::{Faults, Proxy};
    use common::s3::S3Server;
    use common::s3_fixture::{Fixture, Mode};

    let f = Fixture::new(S3Server::moto());
    let (swept, inv) = ("swept", "inventories");
    f.bucket(swept);
    f.bucket(inv);
    let mut rows = String::new();
    let mut keys = Vec::new();
    for i in 0..9 {
        let key = format!("p{}/object {i}", i % 3);
        let (mode, status) = if i % 3 == 0 {
            (Mode::SseS3, "SSE-S3")
        } else {
            (Mode::NotSse, "NOT-SSE")
        };
        f.put(swept, &key, key.as_bytes(), mode, "");
        rows.push_str(&format!(
            "\"{swept}\",\"{}\",\"{}\",\"{status}\"\n",
            reseal::encoding::encode_key(&key),
            key.len()
        ));
        keys.push(key);
    }
    let data = gz(&rows);
    let put = |key: &str, body: &[u8]| f.put_bytes(inv, key, body, None);
    put("swept/nightly/data/one.csv.gz", &data);
    let manifest = serde_json::json!({
        "sourceBucket": swept,
        "destinationBucket": format!("arn:aws:s3:::{inv}"),
        "version": "2016-11-30",
        "creationTimestamp": "1700000000000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, EncryptionStatus",
        "files": [{"key": "swept/nightly/data/one.csv.gz", "size": data.len(), "MD5checksum": md5_hex(&data)}],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let (complete, writing) = (folder(10), folder(1));
    put(
        &format!("swept/nightly/{complete}/manifest.json"),
        &manifest,
    );
    put(
        &format!("swept/nightly/{complete}/manifest.checksum"),
        md5_hex(&manifest).as_bytes(),
    );
    put(&format!("swept/nightly/{writing}/manifest.json"), &manifest);

    let env = common::Env::new();
    let proxy = Proxy::start(&f.server.endpoint, Faults::default());
    let args = [
        "sweep",
        "--inventory",
        "s3://inventories/swept/nightly/",
        "--sse",
        "sse-s3",
        "--output",
        "json",
    ];
    let estimating = f.reseal_at(
        &env,
        &proxy.endpoint,
        &[&args[..], &["--estimate"]].concat(),
    );
    estimating
        .exits(0)
        .says(&format!("inventory {writing} has no manifest.checksum yet"));
    let estimate: Value = serde_json::from_str(&estimating.stdout).unwrap();
    assert_eq!(estimate["objects"], 6, "{estimate}");
    assert!(env.jobs().is_empty(), "--estimate creates no job");

    let run = f.reseal_at(&env, &proxy.endpoint, &args);
    run.exits(0);
    let out = sweep_json(&run);
    assert_eq!(out["inventory"], complete.as_str());
    let sent = proxy.per_operation(swept);
    let estimated: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(estimate["requests"].clone()).unwrap();
    assert_eq!(estimated, sent, "estimated, then sent");
    assert_eq!(sent["CopyObject"], 6);
    for key in &keys {
        assert_eq!(f.get(swept, key), key.as_bytes(), "{key}");
        assert_eq!(
            f.sse(swept, key),
            Some(aws_sdk_s3::types::ServerSideEncryption::Aes256),
            "{key}"
        );
    }
    assert_eq!(out["census"]["before"]["NOT-SSE"]["objects"], 6);
    assert_eq!(out["census"]["after"]["SSE-S3"]["objects"], 9);

    let id = out["job"].as_str().unwrap().to_owned();
    f.reseal_at(&env, &proxy.endpoint, &args[..5])
        .exits(0)
        .says(&format!(
            "already swept for inventory {complete}: job {id} is Complete"
        ));
}
