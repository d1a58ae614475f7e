//! Helpers for integration tests: run the real `reseal` binary in a temporary folder.
#![allow(dead_code)]

pub mod local;
pub mod proxy;
pub mod s3;
pub mod s3_fixture;
pub mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};

pub struct Env {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code; a mismatch shows what the command said.
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that the command said `text` on stderr.
    #[track_caller]
    pub fn says(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "{text:?} not in:\n{}",
            self.stderr
        );
        self
    }
}

/// The arguments of `job create --manifest MANIFEST --sse SSE`, then `extra`.
pub fn job_create<'a>(manifest: &'a Path, sse: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "job",
        "create",
        "--manifest",
        manifest.to_str().unwrap(),
        "--sse",
        sse,
    ];
    args.extend_from_slice(extra);
    args
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn db(&self) -> PathBuf {
        self.path("jobs.db")
    }

    pub fn reseal(&self, args: &[&str]) -> Run {
        self.reseal_with_env(args, &[])
    }

    pub fn reseal_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Command::new(env!("CARGO_BIN_EXE_reseal"))
            .arg("--db")
            .arg(self.db())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .output()
            .expect("the reseal binary runs")
            .into()
    }

    /// Runs reseal and expects exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.reseal(args);
        assert_eq!(
            run.code, 0,
            "reseal {args:?} failed:\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// `job create`, which must succeed; returns the job's id.
    pub fn create_job(&self, manifest: &Path, sse: &str, extra: &[&str]) -> String {
        self.ok(&job_create(manifest, sse, extra)).trim().to_owned()
    }

    /// `job create --sse sse-s3` of a manifest that must be refused as bad input: exit 2,
    /// no id on stdout, and an error that says each of `expected`.
    pub fn create_refused(&self, manifest: &Path, extra: &[&str], expected: &[&str]) -> Run {
        let run = self.reseal(&job_create(manifest, "sse-s3", extra));
        assert_eq!(run.code, 2, "{manifest:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{manifest:?}: no id on stdout");
        for e in expected {
            assert!(
                run.stderr.contains(e),
                "{manifest:?}: {e:?} not in {}",
                run.stderr
            );
        }
        run
    }

    pub fn describe(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["job", "describe", id, "--output", "json"])).unwrap()
    }

    pub fn jobs(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["job", "list", "--output", "json"])).unwrap()
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes an S3 Inventory report in S3's layout; returns manifest.json's path.
    pub fn inventory(&self, schema: &str, files: &[Vec<u8>]) -> PathBuf {
        let mut entries = Vec::new();
        for (i, data) in files.iter().enumerate() {
            let key = format!("inv/bkt/cfg/data/part{i}.csv.gz");
            self.write(&key, data);
            entries.push(serde_json::json!({
                "key": key, "size": data.len(), "MD5checksum": md5_hex(data)
            }));
        }
        let manifest = serde_json::json!({
            "sourceBucket": "bkt",
            "destinationBucket": "arn:aws:s3:::inv",
            "version": "2016-11-30",
            "creationTimestamp": "1700000000000",
            "fileFormat": "CSV",
            "fileSchema": schema,
            "files": entries,
        });
        let text = serde_json::to_vec_pretty(&manifest).unwrap();
        self.write(
            "inv/bkt/cfg/2026-01-01T00-00Z/manifest.checksum",
            md5_hex(&text).as_bytes(),
        );
        self.write("inv/bkt/cfg/2026-01-01T00-00Z/manifest.json", &text)
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// Sends `sig` to a process this test started.
pub fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped yet.
    let rc = unsafe { kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

pub fn gz(text: &str) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
