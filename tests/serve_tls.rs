//! SSE-C over plain HTTP off loopback is refused (a key would cross the network in the
//! clear), and works over TLS with a self-signed certificate, through the AWS CLI.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::s3::{S3Server, Ssec, WithSsec, client_for, rt};
use common::serve::{assert_refused, aws_with, tls_server};

/// An address of this machine that is not loopback (the one a default route would use).
fn outside_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("a route off loopback (the test needs one)");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no address off loopback");
    ip
}

#[test]
fn sse_c_needs_tls_off_loopback_and_works_over_tls() {
    // Plain HTTP on an outside address: SSE-C refused, other requests served.
    let ip = outside_address();
    let server = S3Server::reseal_serve_with(&["--addr", &format!("{ip}:0")]);
    let k = Ssec::new(&[3; 32]);
    let c = client_for(&server.endpoint);
    let rt = rt();
    rt.block_on(c.create_bucket().bucket("tls").send()).unwrap();
    let put = || {
        c.put_object()
            .bucket("tls")
            .key("x")
            .body(ByteStream::from_static(b"x"))
    };
    assert_refused!(rt.block_on(put().sse_c(&k).send()), "InvalidRequest", 400);
    rt.block_on(put().send()).unwrap();
    drop(server);

    // TLS with a self-signed certificate: SSE-C accepted (curl trusts the certificate).
    let dir = tempfile::tempdir().unwrap();
    let (server, cert) = tls_server(dir.path(), &ip.to_string());
    assert!(
        server.endpoint.starts_with("https://"),
        "{}",
        server.endpoint
    );
    // The AWS CLI, trusting the certificate (curl 7.88 signs SSE-C headers wrongly).
    let ca = [("AWS_CA_BUNDLE", cert.to_str().unwrap())];
    let cli = |args: &[&str]| aws_with(&server.endpoint, &ca, args);
    let file = dir.path().join("f");
    std::fs::write(&file, b"over tls").unwrap();
    let customer = dir.path().join("customer.key");
    std::fs::write(&customer, [3u8; 32]).unwrap();
    let sse_c_key = format!("fileb://{}", customer.display());
    let sse_c = [
        "--sse-customer-algorithm",
        "AES256",
        "--sse-customer-key",
        &sse_c_key,
    ];
    let object = ["--bucket", "tls", "--key", "f"];
    assert!(cli(&["s3", "mb", "s3://tls"]).status.success());
    let body = ["--body", file.to_str().unwrap()];
    let put = cli(&[&["s3api", "put-object"][..], &object, &body, &sse_c].concat());
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let back = dir.path().join("back");
    let to = [back.to_str().unwrap()];
    let get = cli(&[&["s3api", "get-object"][..], &object, &sse_c, &to].concat());
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(std::fs::read(&back).unwrap(), b"over tls");
    let without = cli(&[&["s3api", "get-object"][..], &object, &to].concat());
    assert!(!without.status.success());
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(said.contains("InvalidRequest"), "{said}");
}
