//! End to end through the real binary: `reseal run` re-encrypting objects of a local store
//! to SSE-KMS, and `reseal job run --dry-run` over the same job. Objects are written with
//! the library (fast), then the release binary is timed.
//!
//!   cargo build --release && cargo bench --bench runner            # 10,000 × 4 KiB and 1 GiB of 4 MiB
//!   cargo bench --bench runner -- --quick                          # small sizes, to try it
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use reseal::crypto::MasterKey;
use reseal::store::{Encryption, PutOptions, Store};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/reseal");
    assert!(
        bin.exists(),
        "build the release binary first: cargo build --release"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-data/runner");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>12}",
        "case", "objects", "seconds", "objects/s", "MB/s"
    );
    let cases: [(&str, usize, usize); 2] = if quick {
        [
            ("4 KiB objects", 500, 4 << 10),
            ("4 MiB objects", 8, 4 << 20),
        ]
    } else {
        [
            ("4 KiB objects", 10_000, 4 << 10),
            ("4 MiB objects (1 GiB)", 256, 4 << 20),
        ]
    };
    for (name, count, size) in cases {
        let dir = root.join(format!("{count}x{size}"));
        let store_dir = dir.join("store");
        std::fs::create_dir_all(&dir).unwrap();
        let master = [0x42u8; 32];
        let store = Store::init(&store_dir, MasterKey::from_slice(&master).unwrap()).unwrap();
        store.create_bucket("bench", None).unwrap();
        let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut manifest = String::new();
        for i in 0..count {
            let key = format!("data/{i:06}.bin");
            store
                .put(
                    "bench",
                    &key,
                    body.as_slice(),
                    PutOptions {
                        encryption: Some(Encryption::SseS3),
                        ..PutOptions::default()
                    },
                )
                .unwrap();
            manifest.push_str(&format!("bench,{key}\n"));
        }
        drop(store);
        std::fs::write(dir.join("list.csv"), manifest).unwrap();
        let b64 = base64_encode(&master);
        let run = |args: &[&str]| {
            let started = Instant::now();
            let out = Command::new(&bin)
                .arg("--db")
                .arg(dir.join("jobs.db"))
                .args(args)
                .env("RESEAL_MASTER_KEY", &b64)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            )
        };
        let csv = dir.join("list.csv").display().to_string();
        let sd = store_dir.display().to_string();
        let (_, id) = run(&[
            "job",
            "create",
            "--manifest",
            &csv,
            "--sse",
            "sse-kms",
            "--store",
            &sd,
        ]);
        let (dry, _) = run(&["job", "run", &id, "--dry-run"]);
        let (secs, _) = run(&["job", "run", &id, "--concurrency", "16"]);
        let mb = (count * size) as f64 / 1e6;
        println!(
            "{:<28} {:>8} {:>10.2} {:>10.0} {:>12.1}",
            format!("{name}: run"),
            count,
            secs,
            count as f64 / secs,
            mb / secs
        );
        println!(
            "{:<28} {:>8} {:>10.2} {:>10.0} {:>12}",
            format!("{name}: --dry-run"),
            count,
            dry,
            count as f64 / dry,
            "-"
        );
        // Every object is SSE-KMS now and reads back intact.
        let store = Store::open(&store_dir, MasterKey::from_slice(&master).unwrap()).unwrap();
        for i in (0..count).step_by((count / 16).max(1)) {
            let key = format!("data/{i:06}.bin");
            let mut out = Vec::new();
            let meta = store
                .get("bench", &key, None, None, None, &mut out)
                .unwrap();
            assert_eq!(meta.sse.mode(), reseal::sse::SseMode::SseKms);
            assert_eq!(out, body);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
