//! What reseal sends per object on S3, counted by a proxy in front of the server (moto and
//! `reseal serve`): an object that needs work costs two requests (HEAD, CopyObject: the
//! copy's own answer confirms the new encryption), one already compliant costs one (HEAD).

mod common;

use std::collections::BTreeMap;

use common::Env;
use common::proxy::{Faults, Proxy};
use common::s3::S3Server;
use common::s3_fixture::{Fixture, Mode};

/// The requests the proxy saw per key, as `METHOD` or `COPY` for a CopyObject.
fn per_key(proxy: &Proxy, bucket: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in proxy.seen() {
        if s.bucket == bucket && !s.key.is_empty() {
            let what = if s.copy {
                "COPY".to_owned()
            } else {
                s.method.clone()
            };
            out.entry(s.key.clone()).or_default().push(what);
        }
    }
    out
}

fn requests_per_object(f: &Fixture) {
    let bucket = "counted";
    f.bucket(bucket);
    let plain: Vec<String> = (0..6).map(|i| format!("needs work/{i}")).collect();
    let done: Vec<String> = (0..4).map(|i| format!("compliant/{i}")).collect();
    for k in &plain {
        f.put(bucket, k, b"bytes", Mode::NotSse, "");
    }
    for k in &done {
        f.put(bucket, k, b"bytes", Mode::SseS3, "");
    }
    let env = Env::new();
    let rows: String = plain
        .iter()
        .chain(&done)
        .map(|k| format!("{bucket},{}\n", reseal::encoding::encode_key(k)))
        .collect();
    let manifest = env.write("list.csv", rows.as_bytes());
    let proxy = Proxy::start(&f.server.endpoint, Faults::default());
    // reseal serve encrypts an object written without SSE headers with SSE-S3, as S3 does.
    let (want, compliant) = if f.server.caps.default_sse {
        ("sse-kms", &plain[..0])
    } else {
        ("sse-s3", &done[..])
    };
    let run = f.reseal_at(
        &env,
        &proxy.endpoint,
        &[
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            want,
        ],
    );
    assert_eq!(run.code, 0, "{}: {}", f.server.name, run.stderr);
    let seen = per_key(&proxy, bucket);
    let needing: Vec<&String> = plain
        .iter()
        .chain(&done)
        .filter(|k| !compliant.contains(k))
        .collect();
    for key in &needing {
        assert_eq!(
            seen[*key],
            ["HEAD", "COPY"],
            "{}: {key} needs work: HEAD and the copy, whose answer confirms it",
            f.server.name
        );
    }
    for key in compliant {
        assert_eq!(seen[key], ["HEAD"], "{}: {key} is compliant", f.server.name);
    }
    assert_eq!(seen.len(), plain.len() + done.len());
}

#[test]
fn moto_requests_per_object() {
    requests_per_object(&Fixture::new(S3Server::moto()));
}

#[test]
fn serve_requests_per_object() {
    requests_per_object(&Fixture::new(S3Server::reseal_serve()));
}
