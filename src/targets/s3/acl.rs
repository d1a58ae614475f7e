//! ACLs, which S3 does not copy: read before the write and re-applied after it, as grant
//! headers (every server takes those; moto ignores an XML body). A bucket that does not
//! use ACLs (Object Ownership: bucket owner enforced) is said so in the report.

use std::collections::BTreeMap;

use aws_sdk_s3::types::AccessControlPolicy;

use super::S3Target;
use crate::targets::{ErrorKind, ObjectRef, TargetError};

impl S3Target {
    /// Re-applies an ACL read before the write. Returns what the report should say.
    pub(super) async fn reapply_acl(
        &self,
        object: &ObjectRef,
        acl: Option<AccessControlPolicy>,
    ) -> Result<&'static str, TargetError> {
        let Some(acl) = acl else {
            return Ok(
                "the bucket does not use ACLs (Object Ownership: bucket owner enforced); none re-applied",
            );
        };
        // As grant headers rather than an XML body: every server takes those (moto ignores
        // the body).
        let mut by_permission: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for grant in acl.grants() {
            let (Some(grantee), Some(permission)) = (grant.grantee(), grant.permission()) else {
                continue;
            };
            let who = if let Some(id) = grantee.id() {
                format!("id=\"{id}\"")
            } else if let Some(uri) = grantee.uri() {
                format!("uri=\"{uri}\"")
            } else if let Some(email) = grantee.email_address() {
                format!("emailAddress=\"{email}\"")
            } else {
                continue;
            };
            by_permission
                .entry(permission.as_str())
                .or_default()
                .push(who);
        }
        let header = |p: &str| by_permission.get(p).map(|v| v.join(", "));
        let put = self
            .call("PutObjectAcl", object, || {
                self.client
                    .put_object_acl()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .set_grant_full_control(header("FULL_CONTROL"))
                    .set_grant_read(header("READ"))
                    .set_grant_read_acp(header("READ_ACP"))
                    .set_grant_write_acp(header("WRITE_ACP"))
                    .send()
            })
            .await;
        match put {
            Ok(_) => Ok("ACL re-applied"),
            Err(e) if e.code == "AccessControlListNotSupported" => Ok(
                "the bucket does not use ACLs (Object Ownership: bucket owner enforced); none re-applied",
            ),
            Err(e) => Err(TargetError {
                message: format!(
                    "re-encrypted, but its ACL could not be re-applied: {}",
                    e.message
                ),
                kind: ErrorKind::Permanent,
                ..e
            }),
        }
    }

    pub(super) async fn read_acl(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<AccessControlPolicy>, TargetError> {
        let got = self
            .call("GetObjectAcl", object, || {
                self.client
                    .get_object_acl()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .send()
            })
            .await;
        match got {
            Ok(out) => Ok(Some(
                AccessControlPolicy::builder()
                    .set_grants(Some(out.grants().to_vec()))
                    .set_owner(out.owner().cloned())
                    .build(),
            )),
            Err(e) if e.code == "AccessControlListNotSupported" => Ok(None),
            Err(e) => Err(e),
        }
    }
}
