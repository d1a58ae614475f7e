//! Who may call the endpoint: SigV4 access keys from `RESEAL_ACCESS_KEY` and
//! `RESEAL_SECRET_KEY`, or from a credentials file in the AWS shared-credentials format
//! (every profile's `aws_access_key_id` and `aws_secret_access_key`), which must be
//! readable by its owner only. There is no anonymous access.
//!
//! s3s verifies signatures; [`check_presigned_url`] adds what S3 checks of a presigned URL
//! and s3s 0.14 does not. Must not touch the store, nor log a secret key.

use std::path::Path;
use std::time::{Duration, SystemTime};

use s3s::auth::{SecretKey, SimpleAuth};
use s3s::{S3Error, S3ErrorCode};

use crate::encoding;

pub const ACCESS_KEY_ENV: &str = "RESEAL_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "RESEAL_SECRET_KEY";

/// The access keys the endpoint accepts.
pub struct Credentials {
    pairs: Vec<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.pairs.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Credentials")
            .field("access_keys", &ids)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From a credentials file when given, else from the environment. Errors say what to
    /// give.
    pub fn load(file: Option<&Path>) -> Result<Credentials, String> {
        if let Some(path) = file {
            return Self::from_file(path);
        }
        let id = std::env::var(ACCESS_KEY_ENV).unwrap_or_default();
        let secret = std::env::var(SECRET_KEY_ENV).unwrap_or_default();
        if id.is_empty() || secret.is_empty() {
            return Err(format!(
                "reseal serve needs access keys: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or \
                 give --credentials FILE (anonymous access is not offered)"
            ));
        }
        Ok(Credentials {
            pairs: vec![(id, secret)],
        })
    }

    fn from_file(path: &Path) -> Result<Credentials, String> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let mode = file
            .metadata()
            .map_err(|e| format!("{shown}: {e}"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown}: the credentials file is readable by others (mode {:o}); chmod 600 it",
                mode & 0o7777
            ));
        }
        let text = std::io::read_to_string(file).map_err(|e| format!("{shown}: {e}"))?;
        let pairs = parse(&text).map_err(|e| format!("{shown}: {e}"))?;
        if pairs.is_empty() {
            return Err(format!(
                "{shown}: no profile with aws_access_key_id and aws_secret_access_key"
            ));
        }
        Ok(Credentials { pairs })
    }

    pub fn access_keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(id, _)| id.as_str())
    }

    pub fn into_auth(self) -> SimpleAuth {
        let mut auth = SimpleAuth::new();
        for (id, secret) in self.pairs {
            auth.register(id, SecretKey::from(secret));
        }
        auth
    }
}

/// The longest a presigned URL may stay valid: SigV4's signing key is valid for seven days.
const MAX_PRESIGNED_EXPIRES: u64 = 604_800;

/// How far ahead of the server's clock a request may be dated: S3's 15 minutes, which s3s
/// also allows header-signed requests (either way).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Refuses a presigned (SigV4 query) URL as S3 does, before its signature is checked: one
/// valid for more than a week (s3s would honour an `X-Amz-Expires` of ten years), or one
/// dated ahead of the server's clock (s3s answers RequestTimeTooSkewed, S3 AccessDenied).
/// An expired URL is left to s3s, which answers as S3 does.
pub fn check_presigned_url(query: Option<&str>, now: SystemTime) -> Result<(), S3Error> {
    let Some(query) = query else {
        return Ok(());
    };
    let (mut presigned, mut expires, mut dated) = (false, None, None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(name) = encoding::decode_key(name) else {
            continue;
        };
        let value = encoding::decode_key(value).unwrap_or_default();
        match name.as_str() {
            "X-Amz-Signature" => presigned = true,
            "X-Amz-Expires" => expires = value.parse::<u64>().ok(),
            "X-Amz-Date" => dated = amz_date(&value),
            _ => {}
        }
    }
    if !presigned {
        return Ok(());
    }
    if expires.is_some_and(|seconds| seconds > MAX_PRESIGNED_EXPIRES) {
        return Err(S3Error::with_message(
            S3ErrorCode::AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds); that is, the given \
             X-Amz-Expires must be less than 604800 seconds",
        ));
    }
    if dated.is_some_and(|date| date > now + MAX_SKEW) {
        return Err(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "Request is not yet valid",
        ));
    }
    Ok(())
}

/// An `X-Amz-Date` (`20260102T030405Z`) as a time.
fn amz_date(text: &str) -> Option<SystemTime> {
    let at = chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").ok()?;
    let seconds = u64::try_from(at.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Every `[profile]` with both keys, in file order.
fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut current: (Option<String>, Option<String>) = (None, None);
    let mut flush = |current: &mut (Option<String>, Option<String>)| {
        if let (Some(id), Some(secret)) = current.clone() {
            pairs.push((id, secret));
        }
        *current = (None, None);
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            flush(&mut current);
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected NAME = VALUE", i + 1));
        };
        match name.trim() {
            "aws_access_key_id" => current.0 = Some(value.trim().to_owned()),
            "aws_secret_access_key" => current.1 = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    flush(&mut current);
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use s3s::S3ErrorCode;

    #[test]
    fn presigned_urls_are_refused_past_a_week_or_ahead_of_the_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
        let check = |query: &str| {
            super::check_presigned_url(Some(query), now)
                .err()
                .map(|e| e.code().clone())
        };
        let signed = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00";
        assert_eq!(
            check(&format!(
                "{signed}&X-Amz-Date=20260101T000000Z&X-Amz-Expires=604800"
            )),
            None
        );
        assert_eq!(
            check(&format!(
                "{signed}&X-Amz-Date=20260101T000000Z&X-Amz-Expires=604801"
            )),
            Some(S3ErrorCode::AuthorizationQueryParametersError)
        );
        assert_eq!(
            check(&format!("{signed}&X%2DAmz%2DExpires=315360000")),
            Some(S3ErrorCode::AuthorizationQueryParametersError),
            "an encoded name is still the parameter s3s reads"
        );
        assert_eq!(
            check(&format!("{signed}&X-Amz-Date=20260101T001400Z")),
            None
        );
        assert_eq!(
            check(&format!("{signed}&X-Amz-Date=20260101T001601Z")),
            Some(S3ErrorCode::AccessDenied)
        );
        assert_eq!(
            check("X-Amz-Date=20270101T000000Z&X-Amz-Expires=999999999"),
            None,
            "not presigned"
        );
        assert!(super::check_presigned_url(None, now).is_ok());
    }

    #[test]
    fn every_profile_with_both_keys_counts() {
        let text = "[default]\naws_access_key_id = A1\naws_secret_access_key=S1\n\n\
                    # comment\n[other]\naws_access_key_id=A2\n[third]\naws_access_key_id=A3\n\
                    aws_secret_access_key = S3 \nregion=x\n";
        assert_eq!(
            super::parse(text).unwrap(),
            vec![("A1".into(), "S1".into()), ("A3".into(), "S3".into())]
        );
        assert!(super::parse("[p]\nnonsense\n").is_err());
    }
}
