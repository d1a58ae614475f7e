//! Sweeps: a named, repeatable job over the newest complete S3 Inventory of a bucket.
//!
//! Owns the rules a sweep follows that do not depend on where things are: which of an
//! inventory configuration's date folders it takes (the newest whose `manifest.checksum`
//! is there: S3 writes it last), its default name, and its census: the objects its job
//! answers for by encryption mode before and after the job, how many are compliant, and
//! the same figures in the Prometheus textfile format.
//!
//! Lists nothing and prints nothing: the command line lists a local folder or S3, runs
//! the job, and shows what this module computes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::job::{Census, Settled, Tally, TaskCounts};
use crate::sse::SseMode;

/// The files S3 writes into each inventory's date folder; the checksum comes last.
pub const MANIFEST: &str = "manifest.json";
pub const CHECKSUM: &str = "manifest.checksum";

/// One date folder of an inventory configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryFolder {
    /// The folder's name, `2026-12-01T01-00Z`.
    pub name: String,
    /// Its time, milliseconds since the epoch.
    pub at: i64,
    /// Whether both `manifest.json` and `manifest.checksum` are in it.
    pub complete: bool,
}

/// The time a date folder's name says (`YYYY-MM-DDTHH-MMZ`, as S3 names them), or `None`
/// for any other folder (`data/`, `hive/`).
pub fn folder_time(name: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(name.trim_end_matches('/'), "%Y-%m-%dT%H-%MZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// The newest complete folder, and the incomplete ones newer than it (still being written,
/// passed over).
pub fn newest_complete(
    mut folders: Vec<InventoryFolder>,
) -> (Option<InventoryFolder>, Vec<InventoryFolder>) {
    folders.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.name.cmp(&a.name)));
    let mut passed_over = Vec::new();
    for folder in folders {
        if folder.complete {
            return (Some(folder), passed_over);
        }
        passed_over.push(folder);
    }
    (None, passed_over)
}

/// A sweep's name when none is given: the inventory's location and the spec as typed, so
/// that two sweeps of one inventory to different modes do not share a lock.
pub fn default_name(inventory: &str, sse: &str) -> String {
    format!("{} {}", inventory.trim_end_matches('/'), sse.trim())
}

/// The objects a sweep's job answers for, by encryption mode, before and after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CensusView {
    /// The wanted encryption, as the job's spec shows it.
    pub wanted: String,
    /// The objects the job answers for (the current versions its filters keep).
    pub scope: Tally,
    /// By mode as the inventory listed them.
    pub before: BTreeMap<String, Tally>,
    /// The same, with what the job re-encrypted or found as wanted in the wanted mode.
    pub after: BTreeMap<String, Tally>,
    /// Known to be as wanted: listed so where the inventory can tell (SSE-S3), or
    /// re-encrypted, or found so by the job.
    pub compliant: Tally,
    pub compliant_objects_percent: f64,
    pub compliant_bytes_percent: f64,
    /// Tasks that failed, and tasks not run yet (a time box, an interruption).
    pub failed: u64,
    pub not_run: u64,
}

impl CensusView {
    /// The census of a job: `before` as its manifest showed it, `listed_compliant` the mode
    /// whose rows were compliant as listed (and left out of the job), `settled` what its
    /// tasks did.
    pub fn new(
        wanted: String,
        wanted_mode: SseMode,
        before: &Census,
        listed_compliant: Option<SseMode>,
        settled: &Settled,
        counts: &TaskCounts,
    ) -> CensusView {
        let scope = before.total();
        let mut after = before.by_mode.clone();
        let into = Census::mode_name(Some(wanted_mode));
        let mut compliant = listed_compliant
            .and_then(|m| before.by_mode.get(&Census::mode_name(Some(m))))
            .copied()
            .unwrap_or_default();
        for census in [&settled.succeeded, &settled.found_compliant] {
            for (mode, t) in &census.by_mode {
                let from = after.entry(mode.clone()).or_default();
                from.objects = from.objects.saturating_sub(t.objects);
                from.bytes = from.bytes.saturating_sub(t.bytes);
                let to = after.entry(into.clone()).or_default();
                to.objects += t.objects;
                to.bytes += t.bytes;
                compliant.objects += t.objects;
                compliant.bytes += t.bytes;
            }
        }
        after.retain(|_, t| t.objects > 0);
        let percent = |part: u64, whole: u64| {
            if whole == 0 {
                100.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        CensusView {
            wanted,
            scope,
            before: before.by_mode.clone(),
            after,
            compliant_objects_percent: percent(compliant.objects, scope.objects),
            compliant_bytes_percent: percent(compliant.bytes, scope.bytes),
            compliant,
            failed: counts.failed,
            not_run: counts.pending + counts.leased,
        }
    }
}

/// What the textfile says about a sweep's run besides its census.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    pub sweep: &'a str,
    /// The inventory's date folder time, ms since the epoch.
    pub inventory_at: i64,
    /// When this run ended, ms since the epoch.
    pub finished_at: i64,
    /// The run's exit code (0 done, 75 time box, …).
    pub exit_code: u8,
}

/// The census in the Prometheus text exposition format (for node_exporter's textfile
/// collector): objects and bytes by mode before and after, the compliant share, tasks
/// failed and not run, the inventory's time, the run's time and exit code.
pub fn textfile(view: &CensusView, facts: &RunFacts) -> String {
    use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, labels: &[&str]| {
        let g = GaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
        registry
            .register(Box::new(g.clone()))
            .expect("registered once");
        g
    };
    let objects = gauge(
        "reseal_sweep_objects",
        "Objects the sweep answers for, by encryption mode, as the inventory listed them (before) and after its job.",
        &["sweep", "census", "mode"],
    );
    let bytes = gauge(
        "reseal_sweep_bytes",
        "Bytes the sweep answers for, by encryption mode, before and after its job.",
        &["sweep", "census", "mode"],
    );
    for (census, by_mode) in [("before", &view.before), ("after", &view.after)] {
        for (mode, t) in by_mode {
            let labels = [facts.sweep, census, mode.as_str()];
            objects.with_label_values(&labels).set(t.objects as f64);
            bytes.with_label_values(&labels).set(t.bytes as f64);
        }
    }
    let sweep = [facts.sweep];
    let one = |name: &str, help: &str, value: f64| {
        gauge(name, help, &["sweep"])
            .with_label_values(&sweep)
            .set(value)
    };
    one(
        "reseal_sweep_compliant_objects_ratio",
        "Share of the objects known to be encrypted as the sweep wants (0 to 1).",
        view.compliant_objects_percent / 100.0,
    );
    one(
        "reseal_sweep_compliant_bytes_ratio",
        "Share of the bytes known to be encrypted as the sweep wants (0 to 1).",
        view.compliant_bytes_percent / 100.0,
    );
    one(
        "reseal_sweep_failed_tasks",
        "Tasks of the sweep's job that failed.",
        view.failed as f64,
    );
    one(
        "reseal_sweep_not_run_tasks",
        "Tasks of the sweep's job not run yet (the next run goes on with them).",
        view.not_run as f64,
    );
    one(
        "reseal_sweep_inventory_timestamp_seconds",
        "When the inventory the sweep used was taken.",
        facts.inventory_at as f64 / 1000.0,
    );
    one(
        "reseal_sweep_last_run_timestamp_seconds",
        "When the sweep last ran.",
        facts.finished_at as f64 / 1000.0,
    );
    one(
        "reseal_sweep_exit_code",
        "The last run's exit code: 0 done, 1 tasks failed, 3 job failed, 75 time box reached.",
        f64::from(facts.exit_code),
    );
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding does not fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, complete: bool) -> InventoryFolder {
        InventoryFolder {
            name: name.into(),
            at: folder_time(name).unwrap(),
            complete,
        }
    }

    #[test]
    fn date_folders() {
        assert_eq!(folder_time("1970-01-01T00-01Z"), Some(60_000));
        assert_eq!(
            folder_time("2026-12-01T01-00Z/"),
            folder_time("2026-12-01T01-00Z")
        );
        for other in ["data", "hive", "2026-12-01", "2026-12-01T01:00Z"] {
            assert_eq!(folder_time(other), None, "{other}");
        }
    }

    #[test]
    fn the_newest_complete_folder_wins() {
        let (chosen, passed) = newest_complete(vec![
            folder("2026-11-29T01-00Z", true),
            folder("2026-12-01T01-00Z", false),
            folder("2026-11-30T01-00Z", true),
        ]);
        assert_eq!(chosen.unwrap().name, "2026-11-30T01-00Z");
        assert_eq!(passed.len(), 1);
        assert_eq!(passed[0].name, "2026-12-01T01-00Z");
        let (none, passed) = newest_complete(vec![folder("2026-12-01T01-00Z", false)]);
        assert!(none.is_none());
        assert_eq!(passed.len(), 1);
    }

    fn census(rows: &[(&str, u64, u64)]) -> Census {
        Census {
            by_mode: rows
                .iter()
                .map(|(m, o, b)| {
                    (
                        m.to_string(),
                        Tally {
                            objects: *o,
                            bytes: *b,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_census_after_moves_what_the_job_settled() {
        let before = census(&[("NOT-SSE", 6, 600), ("SSE-S3", 3, 300), ("SSE-KMS", 1, 100)]);
        let settled = Settled {
            succeeded: census(&[("NOT-SSE", 4, 400), ("SSE-KMS", 1, 100)]),
            found_compliant: Census::default(),
        };
        let counts = TaskCounts {
            total: 7,
            succeeded: 5,
            failed: 1,
            pending: 1,
            ..TaskCounts::default()
        };
        let view = CensusView::new(
            "SSE-S3".into(),
            SseMode::SseS3,
            &before,
            Some(SseMode::SseS3),
            &settled,
            &counts,
        );
        assert_eq!(view.scope.objects, 10);
        assert_eq!(
            view.after,
            census(&[("NOT-SSE", 2, 200), ("SSE-S3", 8, 800)]).by_mode
        );
        assert_eq!(view.compliant.objects, 8);
        assert_eq!(view.compliant_objects_percent, 80.0);
        assert_eq!((view.failed, view.not_run), (1, 1));
    }

    #[test]
    fn found_compliant_counts_without_moving_within_the_mode() {
        let before = census(&[("SSE-KMS", 4, 400)]);
        let settled = Settled {
            succeeded: census(&[("SSE-KMS", 1, 100)]),
            found_compliant: census(&[("SSE-KMS", 3, 300)]),
        };
        let view = CensusView::new(
            "SSE-KMS (key alias/a)".into(),
            SseMode::SseKms,
            &before,
            None,
            &settled,
            &TaskCounts::default(),
        );
        assert_eq!(view.after, before.by_mode);
        assert_eq!(view.compliant.bytes, 400);
        assert_eq!(view.compliant_bytes_percent, 100.0);
    }

    #[test]
    fn textfile_names_every_figure() {
        let before = census(&[("NOT-SSE", 2, 20)]);
        let view = CensusView::new(
            "SSE-S3".into(),
            SseMode::SseS3,
            &before,
            Some(SseMode::SseS3),
            &Settled {
                succeeded: census(&[("NOT-SSE", 2, 20)]),
                found_compliant: Census::default(),
            },
            &TaskCounts::default(),
        );
        let text = textfile(
            &view,
            &RunFacts {
                sweep: "s3://inv/b/daily sse-s3",
                inventory_at: 1_000,
                finished_at: 2_000,
                exit_code: 0,
            },
        );
        assert!(text.contains(
            "reseal_sweep_objects{census=\"before\",mode=\"NOT-SSE\",sweep=\"s3://inv/b/daily sse-s3\"} 2"
        ), "{text}");
        assert!(
            text.contains(
                "reseal_sweep_compliant_objects_ratio{sweep=\"s3://inv/b/daily sse-s3\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE reseal_sweep_exit_code gauge"),
            "{text}"
        );
    }
}
