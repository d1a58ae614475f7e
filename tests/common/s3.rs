//! S3 servers on loopback for the S3 target's tests, and an SDK client to set objects up
//! and check them afterwards.
//!
//! Every test takes its server as a parameter ([`S3Server`]), so that the same test runs
//! against moto, s3s-fs or `reseal serve`; what a server cannot do is in [`Caps`]. A
//! server that cannot be started fails the test: `tests/run.sh` installs them all.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;

/// Static test credentials; every server here accepts them.
pub const ACCESS_KEY: &str = "reseal-test-access";
pub const SECRET_KEY: &str = "reseal-test-secret";
pub const REGION: &str = "us-east-1";

/// What a test server does of S3's behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Keeps SSE-C objects' key MD5 and refuses a wrong key (moto stores nothing for SSE-C).
    pub sse_c: bool,
    /// Answers 412 to a copy whose x-amz-copy-source-if-match no longer holds.
    pub copy_if_match: bool,
    /// Reports the SSE headers it was given (s3s-fs ignores every one).
    pub sse: bool,
    /// Has a KMS API at the same endpoint.
    pub kms: bool,
    /// Keeps tags.
    pub tagging: bool,
    /// Reports the KMS key of a DSSE-KMS object (moto drops it).
    pub dsse_key_id: bool,
    /// Encrypts an object written without SSE headers with the bucket's default (SSE-S3),
    /// as S3 does since 2023; moto and s3s-fs store it in plaintext.
    pub default_sse: bool,
}

pub struct S3Server {
    pub name: &'static str,
    pub endpoint: String,
    pub caps: Caps,
    child: Child,
    _dir: Option<tempfile::TempDir>,
    /// `reseal serve`'s store, for what a test does beside the endpoint (KMS keys).
    pub reseal: Option<ResealStore>,
}

/// The local store behind a `reseal serve`, and its master key.
pub struct ResealStore {
    pub dir: PathBuf,
    pub master_key: String,
}

impl ResealStore {
    /// Runs `reseal` on this store (with its master key); expects success, returns stdout.
    pub fn reseal(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
            .args(args)
            .env("RESEAL_MASTER_KEY", &self.master_key)
            .env("RESEAL_STORE", &self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("the reseal binary runs");
        assert!(
            out.status.success(),
            "reseal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl ResealStore {
    /// The store, opened through the library (beside the server that has it open).
    pub fn open(&self) -> reseal::store::Store {
        let master = reseal::crypto::MasterKey::from_base64(&self.master_key).unwrap();
        reseal::store::Store::open(&self.dir, master).unwrap()
    }

    /// An object's state as the store keeps it: size, ETag, encryption, data file.
    pub fn head(&self, bucket: &str, key: &str) -> reseal::store::ObjectMeta {
        self.open()
            .head(bucket, key)
            .unwrap_or_else(|e| panic!("{bucket}/{key}: {e}"))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is not installed at {}: run tests/run.sh, which installs it",
        path.display()
    );
}

impl S3Server {
    /// moto's server (from `.venv`, installed by tests/run.sh): S3 and KMS on one port.
    pub fn moto() -> S3Server {
        let bin = std::env::var_os("RESEAL_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv/bin/moto_server"));
        require(&bin, "moto_server");
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()));
        wait_for_port(port, &mut child, "moto_server");
        S3Server {
            name: "moto",
            endpoint: format!("http://127.0.0.1:{port}"),
            caps: Caps {
                sse_c: false,
                copy_if_match: false,
                sse: true,
                kms: true,
                tagging: true,
                dsse_key_id: false,
                default_sse: false,
            },
            child,
            _dir: None,
            reseal: None,
        }
    }

    /// s3s-fs (installed by tests/run.sh under .cache/s3s-fs): a folder served as S3.
    pub fn s3s_fs() -> S3Server {
        let bin = std::env::var_os("RESEAL_S3S_FS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".cache/s3s-fs/bin/s3s-fs"));
        require(&bin, "s3s-fs");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()));
        wait_for_port(port, &mut child, "s3s-fs");
        S3Server {
            name: "s3s-fs",
            endpoint: format!("http://127.0.0.1:{port}"),
            caps: Caps {
                sse_c: false,
                copy_if_match: true,
                sse: false,
                kms: false,
                tagging: false,
                dsse_key_id: false,
                default_sse: false,
            },
            child,
            _dir: Some(dir),
            reseal: None,
        }
    }

    /// `reseal serve` (the binary under test) on a fresh local store with fresh keys, on a
    /// free port it picks itself and prints.
    pub fn reseal_serve() -> S3Server {
        S3Server::reseal_serve_with(&[])
    }

    /// [`S3Server::reseal_serve`] with more arguments (TLS) and its log in the store's
    /// folder (`serve.log`).
    pub fn reseal_serve_with(extra: &[&str]) -> S3Server {
        S3Server::reseal_serve_env(extra, &[])
    }

    /// [`S3Server::reseal_serve_with`] with more environment variables (`RESEAL_LOG`).
    pub fn reseal_serve_env(extra: &[&str], vars: &[(&str, &str)]) -> S3Server {
        use base64::Engine as _;
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).unwrap();
        let store = ResealStore {
            dir: dir.path().join("store"),
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
        };
        store.reseal(&["store", "init", store.dir.to_str().unwrap()]);
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_reseal"));
        command.arg("serve");
        if !extra.contains(&"--addr") {
            command.args(["--addr", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(extra)
            .env("RESEAL_MASTER_KEY", &store.master_key)
            .env("RESEAL_STORE", &store.dir)
            .env("RESEAL_ACCESS_KEY", ACCESS_KEY)
            .env("RESEAL_SECRET_KEY", SECRET_KEY)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("reseal serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line.trim().to_owned();
        assert!(
            endpoint.starts_with("http"),
            "reseal serve did not say where it listens: {:?}\n{}",
            endpoint,
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
        S3Server {
            name: "reseal serve",
            endpoint,
            caps: Caps {
                sse_c: true,
                copy_if_match: true,
                sse: true,
                kms: true,
                tagging: true,
                dsse_key_id: true,
                default_sse: true,
            },
            child,
            _dir: Some(dir),
            reseal: Some(store),
        }
    }

    /// Creates a KMS key where this server has its KMS; returns its id.
    pub fn kms_key(&self) -> String {
        match &self.reseal {
            Some(store) => store.reseal(&["keys", "create"]).trim().to_owned(),
            None => moto_kms_key(&self.endpoint),
        }
    }

    /// What `reseal serve` has logged so far (empty for other servers).
    pub fn log(&self) -> String {
        match (&self.reseal, &self._dir) {
            (Some(_), Some(dir)) => {
                std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
            }
            _ => String::new(),
        }
    }

    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the server to exit (after a signal), at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The environment the reseal binary needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        aws_env()
    }

    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
    }
}

/// An SSE-C key as its three headers want it: base64 of the key and of its MD5 (the Rust
/// SDK computes neither).
pub struct Ssec {
    pub key: String,
    pub md5: String,
}

impl Ssec {
    pub fn new(key: &[u8; 32]) -> Ssec {
        use base64::Engine as _;
        use md5::{Digest, Md5};
        let b64 = base64::engine::general_purpose::STANDARD;
        Ssec {
            key: b64.encode(key),
            md5: b64.encode(Md5::digest(key)),
        }
    }
}

/// The SSE-C headers of an SDK request, for the object it writes or reads.
pub trait WithSsec {
    fn sse_c(self, k: &Ssec) -> Self;
}

/// The SSE-C headers of an SDK request that copies, for the object it copies from.
pub trait WithSourceSsec {
    fn source_sse_c(self, k: &Ssec) -> Self;
}

macro_rules! with_ssec {
    ($($builder:ty),+) => {$(
        impl WithSsec for $builder {
            fn sse_c(self, k: &Ssec) -> Self {
                self.sse_customer_algorithm("AES256")
                    .sse_customer_key(&k.key)
                    .sse_customer_key_md5(&k.md5)
            }
        }
    )+};
}

macro_rules! with_source_ssec {
    ($($builder:ty),+) => {$(
        impl WithSourceSsec for $builder {
            fn source_sse_c(self, k: &Ssec) -> Self {
                self.copy_source_sse_customer_algorithm("AES256")
                    .copy_source_sse_customer_key(&k.key)
                    .copy_source_sse_customer_key_md5(&k.md5)
            }
        }
    )+};
}

with_ssec!(
    aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
    aws_sdk_s3::operation::head_object::builders::HeadObjectFluentBuilder,
    aws_sdk_s3::operation::get_object_attributes::builders::GetObjectAttributesFluentBuilder,
    aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder,
    aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder,
    aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder
);
with_source_ssec!(
    aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder,
    aws_sdk_s3::operation::upload_part_copy::builders::UploadPartCopyFluentBuilder
);

/// Static credentials and a region; the SDK never probes instance metadata.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_DEFAULT_REGION", REGION.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// An SDK client for test setup and checks (path-style, static credentials).
pub fn client_for(endpoint: &str) -> Client {
    client_with_secret(endpoint, SECRET_KEY)
}

/// [`client_for`] with the SDK's own defaults for checksums, as a current SDK is used: a
/// CRC32 (or the algorithm asked for) with every upload, in a header or a trailer after
/// an aws-chunked body, and checksum mode on every GET, whose answer the SDK checks.
pub fn client_with_sdk_checksums(endpoint: &str) -> Client {
    let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    Client::from_conf(config)
}

/// [`client_for`] signing with `secret` (another secret than the server's: every request
/// is refused).
pub fn client_with_secret(endpoint: &str, secret: &str) -> Client {
    let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, secret, None, None, "test");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// A current-thread runtime for the SDK calls of a synchronous test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Creates a KMS key on moto's KMS API (same endpoint) and returns its id. Plain HTTP with
/// SigV4 would need the KMS SDK; moto does not check signatures, so a JSON POST does.
pub fn moto_kms_key(endpoint: &str) -> String {
    let body = "{}";
    let url = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(url).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {url}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: TrentService.CreateKey\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/kms/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let json = if response
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk: "<hex>\r\n<body>\r\n0\r\n\r\n".
        json.split_once("\r\n").map(|(_, b)| b).unwrap_or(json)
    } else {
        json
    };
    let start = json.find('{').expect("a JSON answer from CreateKey");
    let end = json.rfind('}').unwrap();
    let v: serde_json::Value = serde_json::from_str(&json[start..=end]).unwrap();
    v["KeyMetadata"]["KeyId"]
        .as_str()
        .expect("CreateKey answers a KeyId")
        .to_owned()
}
