//! Bucket policies as `reseal serve` takes them: the part of S3's policy language that keeps
//! a bucket's new writes encrypted. It parses and checks a policy (anything outside the
//! subset is refused, naming the element, so that no policy is half applied) and says
//! whether a policy denies one write that S3 authorises as `s3:PutObject`.
//!
//! The subset: `Version` "2012-10-17", an optional `Id`, and statements with an optional
//! `Sid`, `Effect` `Deny` (or `Allow`, accepted and without effect: every user of
//! `reseal serve` may already do everything, so an Allow grants nothing), `Principal` `*`
//! (or `{"AWS": "*"}`), `Action` `s3:PutObject`, `Resource`s naming objects of the
//! bucket (`arn:aws:s3:::BUCKET/*`, `arn:aws:s3:::BUCKET/prefix*`; `*` and `?` match as in
//! IAM), and conditions `Null`, `StringEquals`, `StringNotEquals` on
//! `s3:x-amz-server-side-encryption`, `s3:x-amz-server-side-encryption-aws-kms-key-id`,
//! `s3:x-amz-server-side-encryption-customer-algorithm`, and `Bool` (or `Null`) on
//! `aws:SecureTransport`.
//!
//! Must not call the store (which keeps a policy's text) nor read requests: a write is
//! described to it as a [`Write`].

use serde_json::{Map, Value};

/// The one policy language version S3 accepts conditions in.
pub const VERSION: &str = "2012-10-17";

/// S3's limit on a bucket policy's size.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// A checked policy: its Deny statements (Allow statements are checked and dropped).
#[derive(Debug, Clone)]
pub struct Policy {
    denials: Vec<Statement>,
}

/// Why a policy is refused, naming the element at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

#[derive(Debug, Clone)]
struct Statement {
    /// Patterns over object keys (what follows `arn:aws:s3:::BUCKET/`).
    resources: Vec<String>,
    /// All must hold for the statement to apply.
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Condition {
    operator: Operator,
    key: Key,
    /// Any may match (IAM's OR within one key).
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Null,
    StringEquals,
    StringNotEquals,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Sse,
    KmsKeyId,
    CustomerAlgorithm,
    SecureTransport,
}

impl Operator {
    fn parse(name: &str) -> Option<Operator> {
        Some(match name {
            "Null" => Operator::Null,
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "Bool" => Operator::Bool,
            _ => return None,
        })
    }
}

impl Key {
    /// Condition keys are case-insensitive in IAM.
    fn parse(name: &str) -> Option<Key> {
        Some(match name.to_ascii_lowercase().as_str() {
            "s3:x-amz-server-side-encryption" => Key::Sse,
            "s3:x-amz-server-side-encryption-aws-kms-key-id" => Key::KmsKeyId,
            "s3:x-amz-server-side-encryption-customer-algorithm" => Key::CustomerAlgorithm,
            "aws:securetransport" => Key::SecureTransport,
            _ => return None,
        })
    }

    fn is_encryption(self) -> bool {
        self != Key::SecureTransport
    }
}

/// A write that S3 authorises as `s3:PutObject`, as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub key: &'a str,
    /// The request's encryption headers: PutObject, CopyObject (its destination's) and
    /// CreateMultipartUpload have them; `None` for UploadPart, UploadPartCopy and
    /// CompleteMultipartUpload, which carry none (their upload's encryption was checked
    /// when it was created), so that statements on them do not apply there.
    pub encryption: Option<EncryptionHeaders<'a>>,
    /// Whether the request came over TLS.
    pub secure_transport: bool,
}

/// The encryption headers of a write, as sent (not the bucket default: S3 evaluates the
/// request).
#[derive(Debug, Clone, Copy, Default)]
pub struct EncryptionHeaders<'a> {
    /// `x-amz-server-side-encryption`.
    pub sse: Option<&'a str>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub kms_key_id: Option<&'a str>,
    /// `x-amz-server-side-encryption-customer-algorithm`.
    pub customer_algorithm: Option<&'a str>,
}

impl Policy {
    /// Parses and checks a policy for `bucket`.
    pub fn parse(bucket: &str, text: &str) -> Result<Policy, Refused> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(refused(format!(
                "the policy is {} bytes; a bucket policy is at most {MAX_POLICY_BYTES}",
                text.len()
            )));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| refused(format!("the policy is not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(refused("a policy is a JSON object"));
        };
        let mut version = None;
        let mut statements = None;
        for (name, value) in &top {
            match name.as_str() {
                "Version" => version = Some(value),
                "Id" => {
                    string(value, "Id")?;
                }
                "Statement" => statements = Some(value),
                other => return Err(unsupported("policy element", other)),
            }
        }
        match version {
            Some(Value::String(v)) if v == VERSION => {}
            Some(v) => {
                return Err(refused(format!(
                    "unsupported Version {v}: reseal serve takes \"{VERSION}\""
                )));
            }
            None => {
                return Err(refused(format!(
                    "the policy has no Version; reseal serve takes \"{VERSION}\""
                )));
            }
        }
        let statements = match statements {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => {
                return Err(refused(
                    "Statement is a statement or a non-empty list of statements",
                ));
            }
            None => return Err(refused("the policy has no Statement")),
        };
        let mut denials = Vec::new();
        for (i, statement) in statements.into_iter().enumerate() {
            let Value::Object(fields) = statement else {
                return Err(refused(format!("Statement {} is not a JSON object", i + 1)));
            };
            if let Some(denial) = parse_statement(bucket, fields)
                .map_err(|Refused(m)| refused(format!("{}: {m}", statement_name(i, fields))))?
            {
                denials.push(denial);
            }
        }
        Ok(Policy { denials })
    }

    /// Whether a Deny statement applies to `write`.
    pub fn denies(&self, write: &Write<'_>) -> bool {
        self.denials.iter().any(|s| s.applies(write))
    }
}

impl Statement {
    fn applies(&self, write: &Write<'_>) -> bool {
        if !self.resources.iter().any(|p| matches_pattern(p, write.key)) {
            return false;
        }
        if write.encryption.is_none() && self.conditions.iter().any(|c| c.key.is_encryption()) {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(write))
    }
}

impl Condition {
    fn holds(&self, write: &Write<'_>) -> bool {
        let headers = write.encryption.unwrap_or_default();
        let transport = if write.secure_transport {
            "true"
        } else {
            "false"
        };
        let value = match self.key {
            Key::Sse => headers.sse,
            Key::KmsKeyId => headers.kms_key_id,
            Key::CustomerAlgorithm => headers.customer_algorithm,
            Key::SecureTransport => Some(transport),
        };
        match self.operator {
            Operator::Null => self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == value.is_none()),
            Operator::StringEquals => value.is_some_and(|x| self.values.iter().any(|v| v == x)),
            // Negated operators hold for a key the request does not have, as in IAM.
            Operator::StringNotEquals => !value.is_some_and(|x| self.values.iter().any(|v| v == x)),
            Operator::Bool => {
                value.is_some_and(|x| self.values.iter().any(|v| v.eq_ignore_ascii_case(x)))
            }
        }
    }
}

/// One statement, or `None` for an Allow statement (checked, and without effect).
fn parse_statement(
    bucket: &str,
    fields: &Map<String, Value>,
) -> Result<Option<Statement>, Refused> {
    let mut deny = None;
    let mut principal = false;
    let mut action = false;
    let mut resources = None;
    let mut conditions = Vec::new();
    for (name, value) in fields {
        match name.as_str() {
            "Sid" => {
                string(value, "Sid")?;
            }
            "Effect" => {
                deny = Some(match string(value, "Effect")? {
                    "Deny" => true,
                    "Allow" => false,
                    other => return Err(unsupported("Effect", other)),
                })
            }
            "Principal" => {
                check_principal(value)?;
                principal = true;
            }
            "Action" => {
                for a in strings(value, "Action")? {
                    if !a.eq_ignore_ascii_case("s3:PutObject") {
                        return Err(refused(format!(
                            "unsupported Action {a:?}: reseal serve enforces policies on s3:PutObject only"
                        )));
                    }
                }
                action = true;
            }
            "Resource" => {
                resources = Some(
                    strings(value, "Resource")?
                        .into_iter()
                        .map(|r| object_pattern(bucket, r))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            "Condition" => conditions = parse_conditions(value)?,
            other => return Err(unsupported("statement element", other)),
        }
    }
    let deny = deny.ok_or_else(|| refused("no Effect"))?;
    if !principal {
        return Err(refused("no Principal (a bucket policy names one)"));
    }
    if !action {
        return Err(refused("no Action"));
    }
    let resources = resources.ok_or_else(|| refused("no Resource"))?;
    Ok(deny.then_some(Statement {
        resources,
        conditions,
    }))
}

fn statement_name(i: usize, fields: &Map<String, Value>) -> String {
    match fields.get("Sid").and_then(Value::as_str) {
        Some(sid) => format!("statement {sid:?}"),
        None => format!("statement {}", i + 1),
    }
}

fn check_principal(value: &Value) -> Result<(), Refused> {
    let everyone = match value {
        Value::String(s) => s == "*",
        Value::Object(m) if m.len() == 1 => match m.get("AWS") {
            Some(Value::String(s)) => s == "*",
            Some(Value::Array(list)) => list.len() == 1 && list[0] == "*",
            _ => false,
        },
        _ => false,
    };
    if everyone {
        Ok(())
    } else {
        Err(refused(format!(
            "unsupported Principal {value}: reseal serve takes only \"*\" (or {{\"AWS\": \"*\"}}): its users all have the same rights"
        )))
    }
}

/// `arn:aws:s3:::BUCKET/PATTERN` → `PATTERN`, for this bucket only.
fn object_pattern(bucket: &str, resource: &str) -> Result<String, Refused> {
    resource
        .strip_prefix("arn:aws:s3:::")
        .and_then(|rest| rest.strip_prefix(bucket))
        .and_then(|rest| rest.strip_prefix('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            refused(format!(
                "unsupported Resource {resource:?}: a Resource names objects of this bucket (arn:aws:s3:::{bucket}/* or arn:aws:s3:::{bucket}/prefix*)"
            ))
        })
}

fn parse_conditions(value: &Value) -> Result<Vec<Condition>, Refused> {
    let Value::Object(operators) = value else {
        return Err(refused("Condition is a JSON object"));
    };
    let mut conditions = Vec::new();
    for (op_name, block) in operators {
        let operator =
            Operator::parse(op_name).ok_or_else(|| unsupported("condition operator", op_name))?;
        let Value::Object(keys) = block else {
            return Err(refused(format!("Condition {op_name} is a JSON object")));
        };
        for (key_name, values) in keys {
            let key = Key::parse(key_name).ok_or_else(|| unsupported("condition key", key_name))?;
            let values = condition_values(values)
                .ok_or_else(|| refused(format!("{op_name} {key_name}: the values are strings")))?;
            match (operator, key) {
                (Operator::Null | Operator::Bool, _) => {
                    if let Some(v) = values.iter().find(|v| {
                        !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false")
                    }) {
                        return Err(refused(format!(
                            "{op_name} {key_name}: {v:?} is neither \"true\" nor \"false\""
                        )));
                    }
                }
                (Operator::StringEquals | Operator::StringNotEquals, _) => {}
            }
            match (operator, key) {
                (Operator::Bool, k) if k.is_encryption() => {
                    return Err(refused(format!(
                        "unsupported Bool on {key_name}: Bool applies to aws:SecureTransport"
                    )));
                }
                (Operator::StringEquals | Operator::StringNotEquals, Key::SecureTransport) => {
                    return Err(refused(format!(
                        "unsupported {op_name} on {key_name}: aws:SecureTransport is tested with Bool"
                    )));
                }
                _ => {}
            }
            conditions.push(Condition {
                operator,
                key,
                values,
            });
        }
    }
    Ok(conditions)
}

/// A condition's values: a string, a boolean, or a non-empty list of them.
fn condition_values(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Array(list) if !list.is_empty() => list.iter().map(one).collect(),
        Value::Array(_) => None,
        other => one(other).map(|v| vec![v]),
    }
}

fn string<'a>(value: &'a Value, element: &str) -> Result<&'a str, Refused> {
    value
        .as_str()
        .ok_or_else(|| refused(format!("{element} is a string")))
}

/// A string or a non-empty list of strings.
fn strings<'a>(value: &'a Value, element: &str) -> Result<Vec<&'a str>, Refused> {
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .map(|v| string(v, element))
            .collect::<Result<_, _>>(),
        _ => Err(refused(format!(
            "{element} is a string or a non-empty list of strings"
        ))),
    }
}

/// IAM's wildcards: `*` any run of characters, `?` any one.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn refused(message: impl Into<String>) -> Refused {
    Refused(message.into())
}

fn unsupported(what: &str, name: &str) -> Refused {
    refused(format!(
        "unsupported {what} {name:?}: reseal serve takes only the policy subset in its README (Deny on s3:PutObject with conditions on encryption headers and aws:SecureTransport)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: &str = "bkt";

    fn policy(statement: &str) -> Result<Policy, Refused> {
        Policy::parse(
            BUCKET,
            &format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#),
        )
    }

    fn deny(condition: &str) -> Policy {
        policy(&format!(
            r#"{{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::bkt/*", "Condition": {condition}}}"#
        ))
        .unwrap()
    }

    fn put<'a>(sse: Option<&'a str>, kms: Option<&'a str>, alg: Option<&'a str>) -> Write<'a> {
        Write {
            key: "k",
            encryption: Some(EncryptionHeaders {
                sse,
                kms_key_id: kms,
                customer_algorithm: alg,
            }),
            secure_transport: false,
        }
    }

    fn refusal(statement: &str) -> String {
        policy(statement).unwrap_err().0
    }

    #[test]
    fn null_denies_a_write_without_the_header_and_nothing_else() {
        let p = deny(r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#);
        assert!(p.denies(&put(None, None, None)));
        assert!(p.denies(&put(None, None, Some("AES256"))));
        assert!(!p.denies(&put(Some("AES256"), None, None)));
        // A part or a completion carries no encryption headers: not denied for that.
        assert!(!p.denies(&Write {
            encryption: None,
            ..put(None, None, None)
        }));
    }

    #[test]
    fn string_not_equals_holds_for_a_missing_key_and_string_equals_does_not() {
        let arn = "arn:aws:kms:us-east-1:000000000000:key/k1";
        let p = deny(&format!(
            r#"{{"StringNotEquals": {{"s3:x-amz-server-side-encryption-aws-kms-key-id": "{arn}"}}}}"#
        ));
        assert!(p.denies(&put(Some("aws:kms"), None, None)));
        assert!(p.denies(&put(Some("aws:kms"), Some("other"), None)));
        assert!(!p.denies(&put(Some("aws:kms"), Some(arn), None)));
        let p = deny(
            r#"{"StringEquals": {"s3:x-amz-server-side-encryption": ["AES256", "aws:kms:dsse"]}}"#,
        );
        assert!(p.denies(&put(Some("aws:kms:dsse"), None, None)));
        assert!(!p.denies(&put(None, None, None)));
        assert!(!p.denies(&put(Some("aws:kms"), None, None)));
    }

    #[test]
    fn every_condition_of_a_statement_must_hold() {
        let p = deny(
            r#"{"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"}}"#,
        );
        assert!(p.denies(&put(Some("AES256"), None, None)));
        assert!(!p.denies(&put(None, None, None)));
        assert!(!p.denies(&put(Some("aws:kms"), None, None)));
    }

    #[test]
    fn secure_transport_is_tested_on_every_write_parts_too() {
        let p = deny(r#"{"Bool": {"aws:SecureTransport": false}}"#);
        let part = Write {
            encryption: None,
            ..put(None, None, None)
        };
        assert!(p.denies(&part));
        assert!(!p.denies(&Write {
            secure_transport: true,
            ..part
        }));
    }

    #[test]
    fn resources_match_keys_with_iam_wildcards() {
        let p = policy(
            r#"{"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ["s3:PutObject"],
                "Resource": ["arn:aws:s3:::bkt/secure/*", "arn:aws:s3:::bkt/log-?.txt"]}"#,
        )
        .unwrap();
        let at = |key| Write {
            key,
            ..put(None, None, None)
        };
        assert!(p.denies(&at("secure/a/b")));
        assert!(p.denies(&at("log-1.txt")));
        assert!(!p.denies(&at("log-12.txt")));
        assert!(!p.denies(&at("public/a")));
        assert!(matches_pattern("a*b*c", "aXXbYYc"));
        assert!(!matches_pattern("a*b*c", "aXXbYY"));
    }

    #[test]
    fn allow_statements_are_checked_and_have_no_effect() {
        let p = policy(
            r#"{"Sid": "ok", "Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::bkt/*"}"#,
        )
        .unwrap();
        assert!(!p.denies(&put(None, None, None)));
        assert!(refusal(r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bkt/*"}"#).contains("s3:GetObject"));
    }

    #[test]
    fn anything_outside_the_subset_is_refused_by_name() {
        let base = r#""Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::bkt/*""#;
        let cases = [
            (format!(r#"{{{base}, "NotPrincipal": "*"}}"#), "NotPrincipal"),
            (
                r#"{"Effect": "Deny", "Principal": "*", "NotAction": "s3:GetObject", "Resource": "arn:aws:s3:::bkt/*"}"#.to_owned(),
                "NotAction",
            ),
            (
                r#"{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::bkt/*"}"#.to_owned(),
                "s3:*",
            ),
            (
                r#"{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::other/*"}"#.to_owned(),
                "arn:aws:s3:::other/*",
            ),
            (
                r#"{"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::bkt/*"}"#.to_owned(),
                "arn:aws:iam::1:root",
            ),
            (
                format!(r#"{{{base}, "Condition": {{"StringLike": {{"s3:x-amz-server-side-encryption": "aws:*"}}}}}}"#),
                "StringLike",
            ),
            (
                format!(r#"{{{base}, "Condition": {{"StringNotEqualsIfExists": {{"s3:x-amz-server-side-encryption": "AES256"}}}}}}"#),
                "StringNotEqualsIfExists",
            ),
            (
                format!(r#"{{{base}, "Condition": {{"IpAddress": {{"aws:SourceIp": "10.0.0.0/8"}}}}}}"#),
                "IpAddress",
            ),
            (
                format!(r#"{{{base}, "Condition": {{"StringEquals": {{"s3:x-amz-acl": "private"}}}}}}"#),
                "s3:x-amz-acl",
            ),
            (
                format!(r#"{{{base}, "Condition": {{"Bool": {{"s3:x-amz-server-side-encryption": "true"}}}}}}"#),
                "Bool",
            ),
            (
                format!(r#"{{{base}, "Condition": {{"Null": {{"s3:x-amz-server-side-encryption": "maybe"}}}}}}"#),
                "maybe",
            ),
        ];
        for (statement, named) in cases {
            let message = refusal(&statement);
            assert!(message.contains(named), "{named}: {message}");
        }
        for (text, named) in [
            (
                r#"{"Version": "2008-10-17", "Statement": []}"#,
                "2008-10-17",
            ),
            (r#"{"Statement": []}"#, "Version"),
            (
                r#"{"Version": "2012-10-17", "Statement": [], "Extra": 1}"#,
                "Extra",
            ),
            (r#"{"Version": "2012-10-17", "Statement": []}"#, "Statement"),
            ("not json", "JSON"),
        ] {
            let message = Policy::parse(BUCKET, text).unwrap_err().0;
            assert!(message.contains(named), "{named}: {message}");
        }
    }
}
