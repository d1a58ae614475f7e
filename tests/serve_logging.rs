//! What `reseal serve` logs: refused requests are not errors (and are logged at debug,
//! at a bounded rate, with a count of those dropped, without colour in a file), while a
//! server failure is an error.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::s3::{ResealStore, S3Server, client_with_secret, rt};
use common::serve::{assert_refused, curl_signed, refused};

/// Sends `n` unsigned requests, each on its own connection; expects each refused.
fn send_unsigned(endpoint: &str, n: usize) {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    for _ in 0..n {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /some-bucket/some-key HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
}

/// Flips a byte of the metadata of the bucket's one object: the store authenticates
/// every byte of it, so that reading the object fails as a server failure.
fn damage_the_only_object(store: &ResealStore, bucket: &str) {
    let mut files = Vec::new();
    let mut folders = vec![store.dir.join("buckets").join(bucket).join("objects")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert_eq!(files.len(), 1, "one object's metadata: {files:?}");
    let mut meta = std::fs::read(&files[0]).unwrap();
    meta[10] ^= 1;
    std::fs::write(&files[0], meta).unwrap();
}

#[test]
fn refused_requests_are_not_errors_in_the_log_and_server_failures_are() {
    let server = S3Server::reseal_serve_env(&[], &[("RESEAL_LOG", "warn")]);
    send_unsigned(&server.endpoint, 200);
    let wrongly_signed = client_with_secret(&server.endpoint, "not-the-secret");
    let c = server.client();
    let rt = rt();
    rt.block_on(async {
        let (code, _) = refused!(wrongly_signed.list_buckets().send().await);
        assert_eq!(code, "SignatureDoesNotMatch");
        c.create_bucket().bucket("logs").send().await.unwrap();
        assert_refused!(c.head_object().bucket("logs").key("none").send().await, 404);
        c.put_object()
            .bucket("logs")
            .key("k")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    });
    let log = server.log();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(log.len() < 400, "only the startup line: {log}");

    // A damaged object is a server failure, and is logged as one.
    damage_the_only_object(server.reseal.as_ref().unwrap(), "logs");
    let status = curl_signed(&[])
        .arg(format!("{}/logs/k", server.endpoint))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "500");
    let log = server.log();
    assert!(log.contains("ERROR"), "{log}");
}

#[test]
fn refusals_are_logged_at_debug_at_a_bounded_rate_and_without_colour() {
    let server = S3Server::reseal_serve_env(&[], &[("RESEAL_LOG", "reseal=debug")]);
    let refusals = |log: &str| {
        log.lines()
            .filter(|l| l.contains(" refused"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let start = std::time::Instant::now();
    send_unsigned(&server.endpoint, 200);
    let elapsed = start.elapsed().as_secs_f64();
    let written = refusals(&server.log()).len();
    assert!(
        written >= 1 && written as f64 <= 11.0 + 10.0 * elapsed,
        "{written} lines in {elapsed:.2}s: {}",
        server.log()
    );
    // After a pause, the next line counts the refusals not logged before it.
    std::thread::sleep(Duration::from_millis(300));
    send_unsigned(&server.endpoint, 1);
    let log = server.log();
    assert!(!log.contains('\u{1b}'), "no colour in a log file: {log:?}");
    let lines = refusals(&log);
    let dropped: u64 = lines
        .iter()
        .filter_map(|l| l.split("dropped=").nth(1))
        .map(|n| n.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(dropped > 0, "{log}");
    assert_eq!(
        lines.len() as u64 + dropped,
        201,
        "every refusal is logged or counted: {log}"
    );
}
