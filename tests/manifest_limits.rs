//! What a manifest may not hold, through the real binary: keys S3 cannot have, records too
//! long to buffer, a quoted field the file never closes. Each is refused at `job create`,
//! naming the file and the line, and leaves a Failed job with no task.

mod common;

use std::path::Path;

use common::{Env, gz};

const LIMIT: usize = 1 << 20;

/// Runs `job create` on a manifest that must be refused; checks the exit code, that no id
/// was printed, and that the error and the job's failure reason say `expected`. Gives the
/// error.
fn refused(env: &Env, manifest: &Path, expected: &[&str]) -> String {
    let before = env.jobs().len();
    let run = env.create_refused(manifest, &[], expected);
    let jobs = env.jobs();
    assert_eq!(jobs.len(), before + 1);
    let job = jobs
        .iter()
        .find(|j| j["failure_reasons"].to_string().contains(expected[0]))
        .unwrap_or_else(|| panic!("no job failed with {:?}: {jobs:?}", expected[0]));
    assert_eq!(job["status"], "Failed", "{job}");
    assert_eq!(job["tasks"]["total"], 0, "{job}");
    let reason = job["failure_reasons"][0].as_str().unwrap();
    for e in expected {
        assert!(reason.contains(e), "{e:?} not in the job's reason {reason}");
    }
    run.stderr
}

fn created(env: &Env, manifest: &Path) -> serde_json::Value {
    env.describe(&env.create_job(manifest, "sse-s3", &[]))
}

#[test]
fn keys_over_1024_bytes_are_refused_at_job_create() {
    let env = Env::new();
    let at_limit = "k".repeat(1024);
    let encoded_at_limit = "%E2%82%AC".repeat(341) + "%41";
    let ok = env.write(
        "ok.csv",
        format!("bkt,{at_limit}\nbkt,{encoded_at_limit}\n").as_bytes(),
    );
    let job = created(&env, &ok);
    assert_eq!(job["status"], "Ready");
    assert_eq!(job["tasks"]["total"], 2);

    let plain = env.write(
        "plain.csv",
        format!("bkt,a\nbkt,b\nbkt,{at_limit}k\n").as_bytes(),
    );
    refused(
        &env,
        &plain,
        &[
            "plain.csv line 3: ",
            "1025 bytes long",
            "at most 1,024 bytes",
        ],
    );

    let encoded = env.write(
        "encoded.csv",
        format!("bkt,a\nbkt,{encoded_at_limit}+\n").as_bytes(),
    );
    refused(
        &env,
        &encoded,
        &[
            "encoded.csv line 2: ",
            "1025 bytes long",
            "at most 1,024 bytes",
        ],
    );

    let rows = format!("\"bkt\",\"a\"\n\"bkt\",\"{}\"\n", "x".repeat(5000));
    let inventory = env.inventory("Bucket, Key", &[gz("\"bkt\",\"z\"\n"), gz(&rows)]);
    refused(
        &env,
        &inventory,
        &[
            "part1.csv.gz line 2: ",
            "5000 bytes long",
            "at most 1,024 bytes",
        ],
    );
}

#[test]
fn a_record_over_1_mib_is_refused_while_it_is_read() {
    let env = Env::new();
    let long_line = env.write(
        "long.csv",
        format!("bkt,a\nbkt,{}\nbkt,b\n", "k".repeat(2 * LIMIT)).as_bytes(),
    );
    refused(
        &env,
        &long_line,
        &["long.csv line 2: ", "longer than 1 MiB"],
    );

    // Newlines inside quotes do not end a record: it is named by the line it starts on.
    let many_lines = env.write(
        "lines.csv",
        format!("bkt,a\n\nbkt,\"{}\"\n", "x\n".repeat(LIMIT)).as_bytes(),
    );
    refused(
        &env,
        &many_lines,
        &["lines.csv line 3: ", "longer than 1 MiB"],
    );

    // In a gzip data file the error is the record's, not a damaged file's.
    let rows = format!("\"bkt\",\"a\"\n\"bkt\",\"{}\"\n", "k".repeat(2 * LIMIT));
    let inventory = env.inventory("Bucket, Key", &[gz(&rows)]);
    let error = refused(
        &env,
        &inventory,
        &["part0.csv.gz line 2: ", "longer than 1 MiB"],
    );
    assert!(!error.contains("gzip"), "{error}");
}

#[test]
fn an_unclosed_quote_at_the_end_of_the_file_is_refused() {
    let env = Env::new();
    for (name, text) in [
        ("bare.csv", "bkt,a\nbkt,\"abc"),
        ("newline.csv", "bkt,a\nbkt,\"abc\n"),
    ] {
        let manifest = env.write(name, text.as_bytes());
        refused(
            &env,
            &manifest,
            &[&format!("{name} line 2: "), "never closed"],
        );
    }

    let inventory = env.inventory("Bucket, Key", &[gz("\"bkt\",\"a\"\n\"bkt\",\"abc\n")]);
    refused(&env, &inventory, &["part0.csv.gz line 2: ", "never closed"]);
}
