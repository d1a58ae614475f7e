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
    job_store: TestJobStore,
}

/// The job store a test runs on: a SQLite file in its folder, or, when
/// `RESEAL_TEST_STORE=postgres`, a database of its own on the PostgreSQL server at
/// `RESEAL_TEST_POSTGRES` (tests/run.sh runs the suites both ways).
enum TestJobStore {
    Sqlite(PathBuf),
    Postgres(PostgresDb),
}

/// A fresh database on the test PostgreSQL server, dropped with the value.
pub struct PostgresDb {
    pub url: String,
    admin: String,
    name: String,
}

/// The test PostgreSQL server's URL. A test that needs it and cannot have it fails: it
/// does not skip.
pub fn postgres_url() -> String {
    std::env::var("RESEAL_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "this test needs PostgreSQL: set RESEAL_TEST_POSTGRES to a server's URL \
             (tests/run.sh starts one with tests/postgres.sh start)"
        )
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

impl PostgresDb {
    pub fn new() -> PostgresDb {
        let admin = postgres_url();
        let name = format!("reseal_test_{}", uuid::Uuid::new_v4().simple());
        block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .unwrap();
        });
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        PostgresDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }

    /// Every row of every table, as text: what the job store holds.
    pub fn contents(&self) -> Vec<u8> {
        block_on(async {
            use sqlx::{Connection, Row};
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let mut out = Vec::new();
            for table in ["jobs", "tasks", "workers"] {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT row_to_json(t)::text FROM {table} t"
                )))
                .fetch_all(&mut c)
                .await
                .unwrap();
                for r in rows {
                    out.extend_from_slice(r.get::<String, _>(0).as_bytes());
                    out.push(b'\n');
                }
            }
            out
        })
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // A thread of its own: a test may drop this inside a runtime.
        let _ = std::thread::spawn(move || {
            block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            })
        })
        .join();
    }
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
        let dir = tempfile::tempdir().unwrap();
        let job_store = match std::env::var("RESEAL_TEST_STORE").as_deref() {
            Ok("postgres") => TestJobStore::Postgres(PostgresDb::new()),
            Ok("sqlite") | Err(_) => TestJobStore::Sqlite(dir.path().join("jobs.db")),
            Ok(other) => panic!("RESEAL_TEST_STORE={other}: sqlite or postgres"),
        };
        Env { dir, job_store }
    }

    /// An environment whose job store is a PostgreSQL database of its own, whatever
    /// `RESEAL_TEST_STORE` says (the fleet tests need one).
    pub fn with_postgres() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            job_store: TestJobStore::Postgres(PostgresDb::new()),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// What `--db` names: the SQLite file or the PostgreSQL URL.
    pub fn db(&self) -> String {
        match &self.job_store {
            TestJobStore::Sqlite(path) => path.display().to_string(),
            TestJobStore::Postgres(db) => db.url.clone(),
        }
    }

    /// The SQLite file, when the job store is one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match &self.job_store {
            TestJobStore::Sqlite(path) => Some(path),
            TestJobStore::Postgres(_) => None,
        }
    }

    /// Marks the job store as migrated by a newer reseal (a migration this one does not
    /// know).
    pub fn add_future_migration(&self) {
        block_on(async {
            use sqlx::{Connection, Executor};
            match &self.job_store {
                TestJobStore::Sqlite(path) => {
                    let url = format!("sqlite://{}", path.display());
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    c.execute(
                        "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                         execution_time) VALUES (9999, 'from a newer reseal', 1, X'00', 0)",
                    )
                    .await
                    .unwrap();
                }
                TestJobStore::Postgres(db) => {
                    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                    c.execute(
                        "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                         execution_time) VALUES (9999, 'from a newer reseal', true, '\\x00', 0)",
                    )
                    .await
                    .unwrap();
                }
            }
        })
    }

    /// Every byte the job store holds: the SQLite file and its WAL, or every row of a
    /// PostgreSQL database as text.
    pub fn db_contents(&self) -> Vec<u8> {
        match &self.job_store {
            TestJobStore::Sqlite(path) => {
                let mut bytes = std::fs::read(path).unwrap();
                let wal = path.with_extension("db-wal");
                bytes.extend(std::fs::read(wal).unwrap_or_default());
                bytes
            }
            TestJobStore::Postgres(db) => db.contents(),
        }
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
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;

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
