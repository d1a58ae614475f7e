//! The local store and its keys through the real binary, on real files.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Env, repo_path};

const MASTER: [u8; 32] = [0x11; 32];

fn master_b64() -> String {
    B64.encode(MASTER)
}

struct Store {
    env: Env,
    dir: String,
}

impl Store {
    fn new() -> Store {
        let env = Env::new();
        let dir = env.path("store").display().to_string();
        let s = Store { env, dir };
        s.ok(&["store", "init", &s.dir.clone()]);
        s.ok(&["store", "mb", "--store", &s.dir.clone(), "bkt"]);
        s
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> common::Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reseal"))
            .args(args)
            .env("RESEAL_MASTER_KEY", master_b64())
            .env("RESEAL_DB", self.env.db())
            .env("RESEAL_LOG", "trace")
            .current_dir(self.env.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).unwrap();
        }
        drop(pipe);
        let out = child.wait_with_output().unwrap();
        common::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args, None);
        assert_eq!(r.code, 0, "reseal {args:?}: {}", r.stderr);
        r.stdout
    }

    fn store_cmd(&self, cmd: &str, rest: &[&str]) -> common::Run {
        let mut args = vec!["store", cmd, "--store", &self.dir];
        args.extend_from_slice(rest);
        self.run(&args, None)
    }

    fn get_bytes(&self, key: &str, extra: &[&str]) -> Vec<u8> {
        let out = self.env.path("out.bin");
        let mut args = vec!["bkt", key, "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let r = self.store_cmd("get", &args);
        assert_eq!(r.code, 0, "get {key}: {}", r.stderr);
        std::fs::read(out).unwrap()
    }

    fn head(&self, key: &str) -> serde_json::Value {
        let r = self.store_cmd("head", &["bkt", key, "--output", "json"]);
        r.exits(0);
        serde_json::from_str(&r.stdout).unwrap()
    }
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn put_get_head_ls_rm_in_every_mode() {
    let s = Store::new();
    let file = s.env.write("in.bin", &body(700_000));
    let key_file = s.env.write("c.key", &[7u8; 32]);
    let ssec = format!("sse-c:@{}", key_file.display());
    for (key, sse, mode) in [
        ("plain", "none", "NOT-SSE"),
        ("s3", "sse-s3", "SSE-S3"),
        ("kms", "sse-kms", "SSE-KMS"),
        ("dsse", "dsse-kms:alias/aws/s3", "DSSE-KMS"),
        ("c", ssec.as_str(), "SSE-C"),
    ] {
        let r = s.store_cmd(
            "put",
            &[
                "bkt",
                key,
                file.to_str().unwrap(),
                "--sse",
                sse,
                "--content-type",
                "application/x-test",
                "--metadata",
                "owner=ops",
                "--tag",
                "team=blue",
            ],
        );
        assert_eq!(r.code, 0, "{key}: {}", r.stderr);
        let extra: Vec<&str> = if mode == "SSE-C" {
            vec!["--sse-c", &ssec[6..]]
        } else {
            vec![]
        };
        assert_eq!(s.get_bytes(key, &extra), body(700_000), "{key}");
        let mut ranged = extra.clone();
        ranged.extend(["--range", "262140-262150"]);
        assert_eq!(
            s.get_bytes(key, &ranged),
            body(700_000)[262140..=262150].to_vec()
        );
        let head = s.head(key);
        assert_eq!(head["encryption"], mode);
        assert_eq!(head["size"], 700_000);
        assert_eq!(head["content_type"], "application/x-test");
        assert_eq!(head["metadata"]["owner"], "ops");
        assert_eq!(head["tags"]["team"], "blue");
        assert_eq!(head["etag"], common::md5_hex(&body(700_000)));
    }
    // Without --sse, the bucket default: SSE-S3. From stdin.
    let r = s.run(
        &["store", "put", "--store", &s.dir, "bkt", "stdin-object"],
        Some(b"from stdin"),
    );
    r.exits(0);
    assert_eq!(s.head("stdin-object")["encryption"], "SSE-S3");

    let ls: Vec<serde_json::Value> =
        serde_json::from_str(&s.store_cmd("ls", &["bkt", "--output", "json"]).stdout).unwrap();
    assert_eq!(ls.len(), 6);
    let r = s.store_cmd(
        "get",
        &["bkt", "c", "-o", s.env.path("x").to_str().unwrap()],
    );
    assert_eq!(r.code, 2);
    r.says("bkt/c is encrypted with SSE-C");
    assert!(
        !s.env.path("x").exists(),
        "a failed get leaves no output file"
    );
    let wrong = s.env.write("wrong.key", &[8u8; 32]);
    let r = s.store_cmd(
        "get",
        &["bkt", "c", "--sse-c", &format!("@{}", wrong.display())],
    );
    assert_eq!(r.code, 2);
    r.says("access denied");

    assert_eq!(s.store_cmd("rm", &["bkt", "plain"]).code, 0);
    let r = s.store_cmd("head", &["bkt", "plain"]);
    assert_eq!(r.code, 2);
    r.says("no object bkt/plain");
}

#[test]
fn reencrypt_in_place_from_the_command_line() {
    let s = Store::new();
    let file = s.env.write("in.bin", &body(300_000));
    s.store_cmd(
        "put",
        &["bkt", "o", file.to_str().unwrap(), "--sse", "none"],
    );
    let etag = s.head("o")["etag"].as_str().unwrap().to_owned();
    let r = s.store_cmd(
        "reencrypt",
        &["bkt", "o", "--sse", "sse-kms", "--if-match", "0000"],
    );
    assert_eq!(r.code, 2);
    r.says("precondition failed");
    let r = s.store_cmd(
        "reencrypt",
        &["bkt", "o", "--sse", "sse-kms", "--if-match", &etag],
    );
    r.exits(0);
    assert_eq!(s.head("o")["encryption"], "SSE-KMS");
    assert_eq!(s.get_bytes("o", &[]), body(300_000));
}

#[test]
fn a_master_key_is_required_and_a_readable_key_file_refused() {
    let env = Env::new();
    let dir = env.path("store");
    let r = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["store", "init", dir.to_str().unwrap()])
        .env_remove("RESEAL_MASTER_KEY")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let text = String::from_utf8_lossy(&r.stderr);
    assert!(
        text.contains("RESEAL_MASTER_KEY") && text.contains("--master-key-file"),
        "{text}"
    );

    let key = env.write("master.key", &MASTER);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args([
            "store",
            "init",
            dir.to_str().unwrap(),
            "--master-key-file",
            key.to_str().unwrap(),
        ])
        .env_remove("RESEAL_MASTER_KEY")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("chmod 600"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args([
            "store",
            "init",
            dir.to_str().unwrap(),
            "--master-key-file",
            key.to_str().unwrap(),
        ])
        .env_remove("RESEAL_MASTER_KEY")
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn a_writer_killed_mid_write_leaves_the_old_object() {
    let s = Store::new();
    let old = s.env.write("old.bin", &body(100_000));
    s.store_cmd(
        "put",
        &["bkt", "obj", old.to_str().unwrap(), "--sse", "sse-s3"],
    );
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reseal"))
            .args([
                "store", "put", "--store", &s.dir, "bkt", "obj", "-", "--sse", "sse-kms",
            ])
            .env("RESEAL_MASTER_KEY", master_b64())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        // Several MiB in, then the writer dies before the end of its input.
        for _ in 0..(4 + round) {
            pipe.write_all(&vec![0xEE; 1 << 20]).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100 * (round as u64 + 1)));
        child.kill().unwrap();
        child.wait().unwrap();
        drop(pipe);
        assert_eq!(s.get_bytes("obj", &[]), body(100_000), "round {round}");
        assert_eq!(s.head("obj")["encryption"], "SSE-S3");
        let ls: Vec<serde_json::Value> =
            serde_json::from_str(&s.store_cmd("ls", &["bkt", "--output", "json"]).stdout).unwrap();
        assert_eq!(ls.len(), 1);
    }
}

#[test]
fn keys_create_disable_enable_rotate_and_audit() {
    let s = Store::new();
    let keys = |args: &[&str]| {
        let mut all = vec!["keys", "--store", &s.dir];
        all.extend_from_slice(args);
        s.run(&all, None)
    };
    let r = keys(&[
        "create",
        "--alias",
        "billing",
        "--description",
        "billing data",
    ]);
    r.exits(0);
    let list = keys(&["list", "--output", "json"]);
    list.exits(0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list.len(), 2, "the default key and the new one");
    let file = s.env.write("in.bin", b"hello");
    let put = |key: &str| {
        s.store_cmd(
            "put",
            &[
                "bkt",
                key,
                file.to_str().unwrap(),
                "--sse",
                "sse-kms:alias/billing",
            ],
        )
    };
    assert_eq!(put("a").code, 0);

    assert_eq!(keys(&["disable", "alias/billing"]).code, 0);
    let r = put("b");
    assert_eq!(r.code, 2);
    r.says("disabled");
    let r = s.store_cmd("get", &["bkt", "a"]);
    assert_eq!(r.code, 2);
    r.says("disabled");

    assert_eq!(keys(&["enable", "billing"]).code, 0);
    assert_eq!(keys(&["rotate", "billing"]).code, 0);
    assert_eq!(put("b").code, 0);
    assert_eq!(s.head("a")["key_version"], 1);
    assert_eq!(s.head("b")["key_version"], 2);
    assert_eq!(s.get_bytes("a", &[]), b"hello");

    assert_eq!(keys(&["rotate-root"]).code, 0);
    s.store_cmd(
        "put",
        &["bkt", "s3", file.to_str().unwrap(), "--sse", "sse-s3"],
    );
    assert_eq!(s.head("s3")["key_version"], 2);

    let audit = keys(&["audit", "--key", "billing", "--output", "json"]);
    audit.exits(0);
    let records: Vec<serde_json::Value> = serde_json::from_str(&audit.stdout).unwrap();
    let ops: Vec<&str> = records
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert!(
        ops.contains(&"GenerateDataKey") && ops.contains(&"Decrypt"),
        "{ops:?}"
    );
    assert!(
        records.iter().any(|r| r["outcome"] == "error"),
        "the refused uses are audited"
    );
}

#[test]
fn no_key_bytes_reach_any_output_even_at_trace_level() {
    let s = Store::new();
    let customer = [0x5Cu8; 32];
    let key_file = s.env.write("c.key", &customer);
    let file = s.env.write("in.bin", &body(5000));
    let ssec = format!("@{}", key_file.display());
    let mut outputs = String::new();
    for args in [
        vec![
            "store",
            "put",
            "--store",
            &s.dir,
            "bkt",
            "o",
            file.to_str().unwrap(),
            "--sse",
            "sse-kms",
        ],
        vec![
            "store",
            "reencrypt",
            "--store",
            &s.dir,
            "bkt",
            "o",
            "--sse",
            "sse-s3",
        ],
        vec!["store", "get", "--store", &s.dir, "bkt", "o"],
        vec![
            "store", "head", "--store", &s.dir, "bkt", "o", "--output", "json",
        ],
    ] {
        let mut args = args.clone();
        args.splice(0..0, ["--log-format", "json"]);
        let r = s.run(&args, None);
        r.exits(0);
        outputs.push_str(&r.stderr);
    }
    let sse_c = format!("sse-c:{ssec}");
    let discard = s.env.path("discard.bin").display().to_string();
    let second = [0x6Du8; 32];
    let ssec2 = format!("@{}", s.env.write("c2.key", &second).display());
    let sse_c2 = format!("sse-c:{ssec2}");
    let manifest = s.env.write("list.csv", b"bkt,c\n").display().to_string();
    let reports = s.env.path("reports").display().to_string();
    for args in [
        vec![
            "store",
            "put",
            "--store",
            &s.dir,
            "bkt",
            "c",
            file.to_str().unwrap(),
            "--sse",
            &sse_c,
        ],
        vec![
            "store", "get", "--store", &s.dir, "bkt", "c", "--sse-c", &ssec, "-o", &discard,
        ],
        vec![
            "store", "head", "--store", &s.dir, "bkt", "c", "--output", "json",
        ],
        vec!["keys", "--store", &s.dir, "audit", "--output", "json"],
        // A whole job, from SSE-C to SSE-C under another key and back, with its report.
        vec![
            "run",
            "--manifest",
            &manifest,
            "--sse",
            &sse_c2,
            "--source-sse-c",
            &ssec,
            "--store",
            &s.dir,
            "--report",
            &reports,
        ],
        vec![
            "run",
            "--manifest",
            &manifest,
            "--sse",
            &sse_c,
            "--source-sse-c",
            &ssec2,
            "--store",
            &s.dir,
            "--report",
            &reports,
        ],
    ] {
        let r = s.run(&args, None);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        outputs.push_str(&r.stdout);
        outputs.push_str(&r.stderr);
    }
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(&s.dir)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(std::fs::read(p).unwrap())
            }
        }
    }
    let mut stack = vec![s.env.path("reports")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(std::fs::read(p).unwrap())
            }
        }
    }
    files.push(s.env.db_contents());
    for secret in [MASTER, customer, second] {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        for form in [B64.encode(secret), hex.clone(), hex.to_uppercase()] {
            assert!(!outputs.contains(&form), "a key appears in the output");
            for f in &files {
                assert!(
                    !f.windows(form.len()).any(|w| w == form.as_bytes()),
                    "a key is stored"
                );
            }
        }
        for f in &files {
            assert!(
                !f.windows(32).any(|w| w == secret),
                "raw key bytes are stored"
            );
        }
    }
}

/// A store written by the first version of the format, checked in: every later version
/// must read it. `tests/data/make-known-store.sh` made it.
#[test]
fn the_known_answer_store_stays_readable() {
    let env = Env::new();
    let src = repo_path("tests/data/known-store");
    let dir = env.path("known-store");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let key = repo_path("tests/data/known-store.customer-key");
    let master = std::fs::read_to_string(repo_path("tests/data/known-store.master-key")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/data/known-store.json")).unwrap(),
    )
    .unwrap();
    for object in expected.as_array().unwrap() {
        let name = object["key"].as_str().unwrap();
        let mut args = vec![
            "store",
            "get",
            "--store",
            dir.to_str().unwrap(),
            "bkt",
            name,
        ];
        let key_arg = format!("@{}", key.display());
        if object["encryption"] == "SSE-C" {
            args.extend(["--sse-c", &key_arg]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
            .args(&args)
            .env("RESEAL_MASTER_KEY", master.trim())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            common::md5_hex(&out.stdout),
            object["etag"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            out.stdout.len() as u64,
            object["size"].as_u64().unwrap(),
            "{name}"
        );
    }
}

/// `store get -o /dev/null` once renamed a regular file over the device; an output that
/// is not a regular file must be written to, never replaced.
#[test]
fn get_into_a_pipe_writes_to_it_instead_of_replacing_it() {
    let s = Store::new();
    let file = s.env.write("in.bin", &body(70_000));
    s.store_cmd("put", &["bkt", "o", file.to_str().unwrap()]);
    let fifo = s.env.path("pipe");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let r = s.store_cmd("get", &["bkt", "o", "-o", fifo.to_str().unwrap()]);
    r.exits(0);
    assert_eq!(reader.join().unwrap(), body(70_000));
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the pipe is still a pipe"
    );
}

/// `--store` is taken before or after the subcommand, for `store` and `keys` alike, and
/// its absence is a clear error.
#[test]
fn the_store_option_goes_before_or_after_the_subcommand() {
    let s = Store::new();
    let dir = s.dir.clone();
    s.ok(&["store", "--store", &dir, "mb", "before"]);
    s.ok(&["store", "mb", "--store", &dir, "after"]);
    let buckets = s.ok(&["store", "ls", "--store", &dir]);
    assert!(
        buckets.contains("before") && buckets.contains("after"),
        "{buckets}"
    );
    let before = s.ok(&["keys", "--store", &dir, "create", "--alias", "one"]);
    let after = s.ok(&["keys", "create", "--store", &dir, "--alias", "two"]);
    let keys = s.ok(&["keys", "list", "--store", &dir]);
    for id in [before.trim(), after.trim()] {
        assert!(keys.contains(id), "{id} in {keys}");
    }
    let none = s.run(&["keys", "list"], None);
    none.exits(2).says("give --store DIR or set RESEAL_STORE");
}
