//! Who may call the endpoint: SigV4 access keys from `RESEAL_ACCESS_KEY` and
//! `RESEAL_SECRET_KEY`, or from a credentials file in the AWS shared-credentials format
//! (every profile's `aws_access_key_id` and `aws_secret_access_key`), which must be
//! readable by its owner only. There is no anonymous access.

use std::path::Path;

use s3s::auth::{SecretKey, SimpleAuth};

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
