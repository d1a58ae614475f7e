//! `reseal serve` stopped by SIGTERM: a request in flight finishes, one cut off mid-body
//! leaves no object and no temporary file, and the server exits without waiting out
//! its grace period.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::s3::{S3Server, rt};
use common::serve::{body, curl_signed};
use common::{SIGTERM, send_signal};

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_leaves_nothing_partial() {
    let mut server = S3Server::reseal_serve();
    let c = server.client();
    rt().block_on(c.create_bucket().bucket("sig").send())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slow.bin");
    let data = body(600_000, 4);
    std::fs::write(&file, &data).unwrap();
    // An upload at 200 KB/s takes 3 s; the signal comes after 1 s.
    let upload = curl_signed(&["--limit-rate", "200k", "-T", file.to_str().unwrap()])
        .arg(format!("{}/sig/slow.bin", server.endpoint))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    send_signal(server.pid(), SIGTERM);
    let out = upload.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "the upload in flight completes"
    );
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits once the request is done");
    assert!(status.success(), "{status}");
    let store = server.reseal.as_ref().unwrap();
    let meta = store.head("sig", "slow.bin");
    assert_eq!(meta.size, 600_000);
    assert_eq!(meta.etag, common::md5_hex(&data));
    assert_eq!(std::fs::read_dir(store.dir.join("tmp")).unwrap().count(), 0);

    // A request cut off mid-body after the signal: no object, no temporary file, and the
    // server exits without waiting for the full grace period.
    let mut server = S3Server::reseal_serve();
    rt().block_on(server.client().create_bucket().bucket("sig").send())
        .unwrap();
    let mut upload = curl_signed(&["--limit-rate", "100k", "-T", file.to_str().unwrap()])
        .arg(format!("{}/sig/cut.bin", server.endpoint))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    send_signal(server.pid(), SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    upload.kill().unwrap();
    upload.wait().unwrap();
    server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits once the cut request has failed");
    let store = server.reseal.as_ref().unwrap();
    let left = store.open().list("sig", "").unwrap();
    assert!(left.is_empty(), "no object from a cut request: {left:?}");
    assert_eq!(std::fs::read_dir(store.dir.join("tmp")).unwrap().count(), 0);
}
