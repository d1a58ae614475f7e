//! `--delete-noncurrent`: once a key's current version is re-encrypted and confirmed, its
//! noncurrent versions are deleted. Only versions of that exact key, never a neighbour's.

use super::S3Target;
use crate::targets::{ObjectRef, Target, TargetError};

impl S3Target {
    /// Deletes the key's noncurrent versions once its current version is confirmed.
    pub(super) async fn delete_noncurrent(&self, object: &ObjectRef) -> Result<usize, TargetError> {
        let now = self.inspect(object).await?;
        if !self.is_compliant(&now) {
            return Err(TargetError::permanent(
                500,
                "VerificationFailed",
                format!(
                    "after re-encryption the object is {}; its noncurrent versions were kept",
                    now.mode
                ),
            ));
        }
        let mut noncurrent = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .call("ListObjectVersions", object, || {
                    self.client
                        .list_object_versions()
                        .bucket(&object.bucket)
                        .prefix(&object.key)
                        .set_key_marker(key_marker.clone())
                        .set_version_id_marker(version_marker.clone())
                        .send()
                })
                .await?;
            for v in page.versions() {
                if v.key() == Some(object.key.as_str())
                    && v.is_latest() != Some(true)
                    && v.version_id() != now.version_id.as_deref()
                    && let Some(id) = v.version_id()
                {
                    noncurrent.push(id.to_owned());
                }
            }
            // Keys sort after their prefix: past our key, nothing more is ours.
            let past = page
                .versions()
                .last()
                .and_then(|v| v.key())
                .is_some_and(|k| k > object.key.as_str());
            if page.is_truncated() != Some(true) || past {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        for id in &noncurrent {
            self.call("DeleteObject", object, || {
                self.client
                    .delete_object()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .version_id(id)
                    .send()
            })
            .await?;
        }
        Ok(noncurrent.len())
    }
}
