//! What a job will cost before it runs: objects and bytes by their current encryption and
//! by the method reseal will use, requests by S3 operation, KMS requests, their price,
//! the storage new versions add, and a lower bound on the duration.
//!
//! Every object is planned with the S3 target's own table ([`crate::targets::s3::plan`]),
//! so that an estimate and a run cannot disagree. What the manifest does not say is
//! taken at its most costly: an object with no EncryptionStatus, or already in the wanted
//! mode when that mode has a key to compare (SSE-KMS, DSSE-KMS, SSE-C: inventories have
//! no key column), is counted as needing work; an object with no size as one CopyObject.
//!
//! Knows nothing of the job store or the terminal: it sees rows (as a
//! [`RowObserver`]) and gives a serialisable [`Estimate`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::job::{Census, RowObserver, Tally};
use crate::manifest::Entry;
use crate::sse::SseMode;
use crate::targets::s3::S3Options;
use crate::targets::s3::plan::{self, Chosen, Wants};

/// List prices the cost is computed with (us-east-1, S3 Standard, USD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// When these prices were published (the built-in table's date, or the file's).
    pub as_of: String,
    /// PUT, COPY, POST, LIST (and UpdateObjectEncryption), per 1,000 requests.
    pub write_per_1000: f64,
    /// GET, HEAD and the other reads, per 1,000 requests.
    pub read_per_1000: f64,
    /// KMS API requests, per 10,000.
    pub kms_per_10000: f64,
    /// S3 Standard storage, per GB-month (what new versions add until old ones expire).
    pub storage_gb_month: f64,
}

impl Default for Prices {
    /// AWS's published us-east-1 list prices, as of the date they carry.
    fn default() -> Prices {
        Prices {
            as_of: "2025-01 (us-east-1 list prices)".into(),
            write_per_1000: 0.005,
            read_per_1000: 0.0004,
            kms_per_10000: 0.03,
            storage_gb_month: 0.023,
        }
    }
}

/// Request rates S3 documents per prefix, and the KMS quota assumed.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub prefix_writes: f64,
    pub prefix_reads: f64,
    pub kms_per_second: f64,
}

impl Default for Rates {
    fn default() -> Rates {
        Rates {
            prefix_writes: 3500.0,
            prefix_reads: 5500.0,
            kms_per_second: 10_000.0,
        }
    }
}

/// Where the job's objects are, as the estimate plans them.
#[derive(Debug, Clone)]
pub enum Where {
    S3 {
        wants: Wants,
        options: S3Options,
        /// `--trust-inventory`: no inspection before a write.
        trusted: bool,
    },
    /// reseal's local store: no requests; a re-seal where only the sealing key changes.
    Local { mode: SseMode },
}

/// Most distinct prefixes kept apart; past it, further ones count together (the bound
/// then errs low, which a lower bound may).
const MAX_PREFIXES: usize = 100_000;

/// Accumulates an estimate row by row.
pub struct Estimator {
    target: Where,
    prices: Prices,
    rates: Rates,
    by_mode: Census,
    by_method: BTreeMap<String, Tally>,
    requests: BTreeMap<&'static str, u64>,
    kms: u64,
    buckets: BTreeSet<String>,
    /// Reads and writes by prefix (bucket and first path segment).
    prefixes: HashMap<String, (u64, u64)>,
    new_version_bytes: u64,
}

impl Estimator {
    pub fn new(target: Where, prices: Prices, rates: Rates) -> Estimator {
        Estimator {
            target,
            prices,
            rates,
            by_mode: Census::default(),
            by_method: BTreeMap::new(),
            requests: BTreeMap::new(),
            kms: 0,
            buckets: BTreeSet::new(),
            prefixes: HashMap::new(),
            new_version_bytes: 0,
        }
    }

    fn count_method(&mut self, method: &str, bytes: u64) {
        let t = self.by_method.entry(method.to_owned()).or_default();
        t.objects += 1;
        t.bytes += bytes;
    }

    fn prefix_of(e: &Entry) -> String {
        match e.key.split_once('/') {
            Some((first, _)) => format!("{}/{first}/", e.bucket),
            None => format!("{}/", e.bucket),
        }
    }

    /// The estimate.
    pub fn estimate(self) -> Estimate {
        let (prices, rates) = (&self.prices, self.rates);
        let total = self.by_mode.total();
        let (mut writes, mut reads) = (0u64, 0u64);
        for (op, n) in &self.requests {
            if plan::is_write(op) {
                writes += n;
            } else {
                reads += n;
            }
        }
        let busiest = self
            .prefixes
            .iter()
            .map(|(p, (r, w))| {
                let secs = (*w as f64 / rates.prefix_writes).max(*r as f64 / rates.prefix_reads);
                (p.clone(), secs)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let kms_seconds = self.kms as f64 / rates.kms_per_second;
        let kms_with_bucket_key = if self.kms > 0 {
            self.buckets.len() as u64
        } else {
            0
        };
        let request_cost = writes as f64 / 1000.0 * prices.write_per_1000
            + reads as f64 / 1000.0 * prices.read_per_1000;
        let kms_cost = |n: u64| n as f64 / 10_000.0 * prices.kms_per_10000;
        let prefix_seconds = busiest.as_ref().map_or(0.0, |(_, s)| *s);
        Estimate {
            objects: total.objects,
            bytes: total.bytes,
            by_mode: self.by_mode.by_mode,
            by_method: self.by_method,
            requests: self
                .requests
                .iter()
                .map(|(op, n)| ((*op).to_owned(), *n))
                .collect(),
            kms_requests: KmsRequests {
                without_bucket_key: self.kms,
                with_bucket_key: kms_with_bucket_key,
            },
            cost: Cost {
                requests_usd: request_cost,
                kms_usd_without_bucket_key: kms_cost(self.kms),
                kms_usd_with_bucket_key: kms_cost(kms_with_bucket_key),
                new_versions_bytes: self.new_version_bytes,
                new_versions_usd_per_month: self.new_version_bytes as f64 / 1e9
                    * prices.storage_gb_month,
                prices: prices.clone(),
            },
            min_duration: MinDuration {
                seconds: prefix_seconds.max(kms_seconds),
                busiest_prefix: busiest.map(|(p, _)| p),
                busiest_prefix_seconds: prefix_seconds,
                kms_seconds,
                kms_requests_per_second: rates.kms_per_second,
            },
        }
    }
}

impl RowObserver for Estimator {
    fn finish(self: Box<Self>) -> Option<serde_json::Value> {
        Some(serde_json::to_value(self.estimate()).expect("an estimate serialises"))
    }

    fn task(&mut self, e: &Entry) {
        let size = e.size.unwrap_or(0);
        let from = e.encryption_status;
        self.by_mode.add(from, size);
        match &self.target {
            Where::Local { mode } => {
                let method = match from {
                    Some(m) if m == *mode && m == SseMode::SseS3 => "skip (compliant)",
                    Some(m) if m == *mode => "local re-seal",
                    _ => "local re-encryption",
                };
                self.count_method(method, size);
            }
            Where::S3 {
                wants,
                options,
                trusted,
            } => {
                let (wants, options, trusted) = (*wants, options.clone(), *trusted);
                // Compliant as the manifest says, with no key to compare: only inspected.
                let compliant = from == Some(wants.mode) && wants.mode == SseMode::SseS3;
                let from_mode = from.unwrap_or(SseMode::NotSse);
                let chosen =
                    (!compliant).then(|| plan::choose(wants, from_mode, size, &options, false));
                let skip_inspection = trusted
                    && from.is_some()
                    && plan::trusted_without_inspection(wants, from_mode, size, &options);
                self.count_method(chosen.map_or("skip (compliant)", Chosen::name), size);
                let prefix = if self.prefixes.len() < MAX_PREFIXES {
                    Estimator::prefix_of(e)
                } else {
                    "(other prefixes)".into()
                };
                for (op, n) in
                    plan::requests(from_mode, wants, chosen, size, skip_inspection, &options)
                {
                    *self.requests.entry(op).or_default() += n;
                    let slot = self.prefixes.entry(prefix.clone()).or_default();
                    if plan::is_write(op) {
                        slot.1 += n;
                    } else {
                        slot.0 += n;
                    }
                }
                if let Some(chosen) = chosen {
                    self.kms += plan::kms_requests(from_mode, wants, chosen);
                    if e.version_id.is_some() && chosen != Chosen::Update {
                        self.new_version_bytes += size;
                    }
                }
                if matches!(wants.mode, SseMode::SseKms | SseMode::DsseKms)
                    && !self.buckets.contains(&e.bucket)
                {
                    self.buckets.insert(e.bucket.clone());
                }
            }
        }
    }
}

/// What a job will cost, as `job create --estimate`, `job describe` and `sweep
/// --estimate` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub objects: u64,
    pub bytes: u64,
    /// Objects and bytes by their encryption as the manifest shows it.
    pub by_mode: BTreeMap<String, Tally>,
    /// Objects and bytes by what reseal will do with them.
    pub by_method: BTreeMap<String, Tally>,
    /// Requests by S3 operation, when nothing fails.
    pub requests: BTreeMap<String, u64>,
    pub kms_requests: KmsRequests,
    pub cost: Cost,
    pub min_duration: MinDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsRequests {
    pub without_bucket_key: u64,
    /// About one per bucket with a Bucket Key (per key lifetime).
    pub with_bucket_key: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub requests_usd: f64,
    pub kms_usd_without_bucket_key: f64,
    pub kms_usd_with_bucket_key: f64,
    /// In a versioned bucket each copy is a new version; the old ones stay until a
    /// lifecycle rule or `--delete-noncurrent` removes them.
    pub new_versions_bytes: u64,
    pub new_versions_usd_per_month: f64,
    pub prices: Prices,
}

/// A lower bound: no run is faster than its busiest prefix's requests at S3's per-prefix
/// rates, nor than its KMS requests at the quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinDuration {
    pub seconds: f64,
    pub busiest_prefix: Option<String>,
    pub busiest_prefix_seconds: f64,
    pub kms_seconds: f64,
    pub kms_requests_per_second: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, size: u64, mode: Option<SseMode>) -> Entry {
        Entry {
            bucket: "b".into(),
            key: key.into(),
            version_id: None,
            size: Some(size),
            etag: None,
            last_modified: None,
            storage_class: None,
            encryption_status: mode,
        }
    }

    #[test]
    fn plans_count_requests_kms_cost_and_the_busiest_prefix() {
        let options = S3Options {
            amazon: false,
            ..S3Options::default()
        };
        let mut e = Estimator::new(
            Where::S3 {
                wants: Wants {
                    mode: SseMode::SseKms,
                    named_kms_key: true,
                },
                options,
                trusted: false,
            },
            Prices::default(),
            Rates::default(),
        );
        for i in 0..10 {
            e.task(&entry(&format!("logs/{i}"), 100, Some(SseMode::NotSse)));
        }
        e.task(&entry("big/x", 6 << 30, Some(SseMode::SseS3)));
        let est = e.estimate();
        assert_eq!(est.objects, 11);
        assert_eq!(est.requests["HeadObject"], 11);
        assert_eq!(est.requests["CopyObject"], 10);
        assert_eq!(
            est.requests["UploadPartCopy"],
            (6u64 << 30).div_ceil(64 << 20)
        );
        assert_eq!(est.by_method["CopyObject"].objects, 10);
        assert_eq!(est.by_method["multipart copy"].objects, 1);
        assert_eq!(est.kms_requests.without_bucket_key, 11);
        assert_eq!(est.kms_requests.with_bucket_key, 1);
        assert_eq!(est.min_duration.busiest_prefix.as_deref(), Some("b/big/"));
        assert!(est.cost.requests_usd > 0.0);
    }
}
