//! Filters applied while a manifest is ingested, on what the manifest's columns say.

use serde::{Deserialize, Serialize};

use super::{Column, Entry};
use crate::sse::SseMode;

/// Which manifest rows become tasks. Every condition that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Keep objects modified at or after this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_after: Option<i64>,
    /// Keep objects modified before this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_before: Option<i64>,
    /// Upper-case storage class names; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<String>,
    /// Encryption statuses to keep; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encryption: Vec<SseMode>,
    /// Rows whose EncryptionStatus is this are already as the job wants: counted, not
    /// tasks (a sweep for SSE-S3; other modes have a key the inventory does not show).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_compliant: Option<SseMode>,
}

impl Filter {
    /// The columns this filter reads, each with the option that needs it.
    pub fn required_columns(&self) -> Vec<(&'static str, Column)> {
        let mut needed = Vec::new();
        if self.min_size.is_some() {
            needed.push(("--min-size", Column::Size));
        }
        if self.max_size.is_some() {
            needed.push(("--max-size", Column::Size));
        }
        if self.modified_after.is_some() {
            needed.push(("--modified-after", Column::LastModifiedDate));
        }
        if self.modified_before.is_some() {
            needed.push(("--modified-before", Column::LastModifiedDate));
        }
        if !self.storage_classes.is_empty() {
            needed.push(("--storage-class", Column::StorageClass));
        }
        if !self.encryption.is_empty() {
            needed.push(("--match-encryption", Column::EncryptionStatus));
        }
        needed
    }

    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether the manifest shows the entry already as the job wants.
    pub fn is_listed_compliant(&self, e: &Entry) -> bool {
        self.listed_compliant.is_some() && e.encryption_status == self.listed_compliant
    }

    /// Whether the entry passes. A row with no value where a filter needs one does not.
    pub fn matches(&self, e: &Entry) -> bool {
        let within = |value: Option<i64>, min: Option<i64>, max_exclusive: Option<i64>| {
            (min.is_none() && max_exclusive.is_none())
                || value.is_some_and(|v| {
                    min.is_none_or(|m| v >= m) && max_exclusive.is_none_or(|m| v < m)
                })
        };
        self.prefix.as_deref().is_none_or(|p| e.key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| e.key.ends_with(s))
            && (self.min_size.is_none() && self.max_size.is_none()
                || e.size.is_some_and(|s| {
                    self.min_size.is_none_or(|m| s >= m) && self.max_size.is_none_or(|m| s <= m)
                }))
            && within(e.last_modified, self.modified_after, self.modified_before)
            && (self.storage_classes.is_empty()
                || e.storage_class.as_deref().is_some_and(|c| {
                    self.storage_classes
                        .iter()
                        .any(|w| w.eq_ignore_ascii_case(c))
                }))
            && (self.encryption.is_empty()
                || e.encryption_status
                    .is_some_and(|m| self.encryption.contains(&m)))
    }

    /// A one-line description for `job describe`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.prefix {
            parts.push(format!("prefix {p:?}"));
        }
        if let Some(s) = &self.suffix {
            parts.push(format!("suffix {s:?}"));
        }
        if let Some(n) = self.min_size {
            parts.push(format!("size >= {n}"));
        }
        if let Some(n) = self.max_size {
            parts.push(format!("size <= {n}"));
        }
        if let Some(t) = self.modified_after {
            parts.push(format!(
                "modified at or after {}",
                crate::time::format_time(t)
            ));
        }
        if let Some(t) = self.modified_before {
            parts.push(format!("modified before {}", crate::time::format_time(t)));
        }
        if !self.storage_classes.is_empty() {
            parts.push(format!("storage class {}", self.storage_classes.join("|")));
        }
        if !self.encryption.is_empty() {
            let modes: Vec<&str> = self.encryption.iter().map(|m| m.as_str()).collect();
            parts.push(format!("encryption {}", modes.join("|")));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}
