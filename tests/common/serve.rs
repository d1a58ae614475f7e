//! What the tests of `reseal serve` (`tests/serve_*.rs`) share beside the server itself
//! ([`S3Server::reseal_serve`](super::s3::S3Server::reseal_serve)): refusals read from the
//! SDK's errors, bodies, and the AWS CLI and curl as clients.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::repo_path;
use super::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY, aws_env};

// The macros are unused in the test binaries that are not about `reseal serve`, as
// the functions of `common` are (which mod.rs allows as dead code).

/// The code and HTTP status of a failed SDK call.
#[allow(unused_macros)]
macro_rules! refused {
    ($call:expr) => {{
        use aws_sdk_s3::error::ProvideErrorMetadata as _;
        let e = $call.expect_err("the request is refused");
        let status = e.raw_response().map_or(0, |r| r.status().as_u16());
        (e.code().unwrap_or_default().to_owned(), status)
    }};
}
#[allow(unused_imports)]
pub(crate) use refused;

/// Asserts that an SDK call is refused with an S3 error code and an HTTP status, or with
/// an HTTP status alone (an answer to HEAD, or a 304, has no body to carry a code).
#[allow(unused_macros)]
macro_rules! assert_refused {
    ($call:expr, $status:expr) => {{
        let (_, status) = $crate::common::serve::refused!($call);
        assert_eq!(status, $status);
    }};
    ($call:expr, $code:expr, $status:expr) => {{
        let (code, status) = $crate::common::serve::refused!($call);
        assert_eq!((code.as_str(), status), ($code, $status));
    }};
}
#[allow(unused_imports)]
pub(crate) use assert_refused;

/// `len` bytes that differ for every `seed`.
pub fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// The AWS CLI from `.venv`, with the test credentials, against `endpoint`.
pub fn aws(endpoint: &str, args: &[&str]) -> Output {
    aws_with(endpoint, &[], args)
}

/// [`aws`] with more environment variables.
pub fn aws_with(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let bin = repo_path(".venv/bin/aws");
    assert!(
        bin.exists(),
        "the AWS CLI is not installed at {}: run tests/run.sh, which installs it",
        bin.display()
    );
    Command::new(bin)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .args(args)
        .envs(aws_env())
        .env("AWS_CONFIG_FILE", "/nonexistent/reseal-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/reseal-test/credentials",
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("aws runs")
}

/// [`aws`], which must succeed; returns its stdout.
pub fn aws_ok(endpoint: &str, args: &[&str]) -> String {
    let out = aws(endpoint, args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// curl signing its request with SigV4 and the test credentials (curl signs it itself).
pub fn curl_sigv4() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
        .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .stdin(Stdio::null());
    cmd
}

/// [`curl_sigv4`] with an unsigned payload, writing the HTTP status alone on stdout.
pub fn curl_signed(args: &[&str]) -> Command {
    let mut cmd = curl_sigv4();
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(args);
    cmd
}

/// `reseal serve` over TLS on `ip` with a self-signed certificate (for `ip` and
/// 127.0.0.1) made in `dir` by openssl; the certificate's path comes back for clients to
/// trust.
pub fn tls_server(dir: &Path, ip: &str) -> (S3Server, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg(format!("subjectAltName=IP:{ip},IP:127.0.0.1"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let server = S3Server::reseal_serve_with(&[
        "--addr",
        &format!("{ip}:0"),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    (server, cert)
}
