//! `reseal keys …`: the local KMS and the store's root key. Loads the master key, opens
//! the store's [`KeyManager`] and prints; the keys themselves are `store::keys`' business.

use clap::Subcommand;

use super::args::{Output, StoreArgs};
use super::{CliError, CliResult, output};
use crate::crypto::MasterKey;
use crate::store::keys::{AuditRecord, KeyError, KeyManager, KmsKeyInfo};

/// A key is named by its id, alias/NAME, NAME, or an ARN ending in key/ID or alias/NAME.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a KMS key; prints its id alone on stdout.
    Create {
        /// An alias for the key: NAME or alias/NAME (letters, digits, '/', '_', '-').
        #[arg(long, value_name = "NAME")]
        alias: Option<String>,
        /// What the key is for.
        #[arg(long, default_value = "", value_name = "TEXT")]
        description: String,
    },
    /// List the KMS keys, oldest first.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show a KMS key: aliases, state, versions.
    Describe {
        /// Key id, alias/NAME, NAME or ARN.
        key: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Enable a KMS key, so that it seals and opens data keys again.
    Enable {
        /// Key id, alias/NAME, NAME or ARN.
        key: String,
    },
    /// Disable a KMS key: objects it protects cannot be read until it is enabled again.
    Disable {
        /// Key id, alias/NAME, NAME or ARN.
        key: String,
    },
    /// Give a KMS key a new current version; objects sealed under older ones still open.
    Rotate {
        /// Key id, alias/NAME, NAME or ARN.
        key: String,
    },
    /// Give the store's root key (SSE-S3) a new current version; older ones stay.
    RotateRoot,
    /// Show the KMS audit log, oldest first.
    Audit {
        /// Only the records about this key.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub async fn run(store: &StoreArgs, command: KeysCommand) -> CliResult {
    let master = MasterKey::load(store.master_key_file.as_deref()).map_err(CliError::input)?;
    // Small files: the blocking calls are cheaper than handing them to another thread.
    let mut keys = KeyManager::open(
        &store.dir()?.join("keys"),
        &store.dir()?.join("tmp"),
        master,
    )
    .map_err(key_error)?;
    match command {
        KeysCommand::Create { alias, description } => {
            let key = keys
                .create_key(alias.as_deref(), &description)
                .map_err(key_error)?;
            output::emit(&format!("{}\n", key.id))?;
            match key.aliases.first() {
                Some(alias) => eprintln!("KMS key {} created ({alias})", key.id),
                None => eprintln!("KMS key {} created", key.id),
            }
            Ok(())
        }
        KeysCommand::List { output } => {
            let list = keys.list_keys().map_err(key_error)?;
            match output {
                Output::Table => output::emit(&key_table(&list)),
                Output::Json => output::print_json(&list),
            }
        }
        KeysCommand::Describe { key, output } => {
            let key = keys.describe_key(&key).map_err(key_error)?;
            match output {
                Output::Table => output::emit(&describe(&key)),
                Output::Json => output::print_json(&key),
            }
        }
        KeysCommand::Enable { key } => {
            let key = keys.set_enabled(&key, true).map_err(key_error)?;
            eprintln!("KMS key {} enabled", key.id);
            Ok(())
        }
        KeysCommand::Disable { key } => {
            let key = keys.set_enabled(&key, false).map_err(key_error)?;
            eprintln!("KMS key {} disabled", key.id);
            Ok(())
        }
        KeysCommand::Rotate { key } => {
            let key = keys.rotate_key(&key).map_err(key_error)?;
            eprintln!(
                "KMS key {}: version {} is current",
                key.id, key.current_version
            );
            Ok(())
        }
        KeysCommand::RotateRoot => {
            let version = keys.rotate_root().map_err(key_error)?;
            eprintln!("root key: version {version} is current");
            Ok(())
        }
        KeysCommand::Audit { key, output } => {
            let records = keys.audit(key.as_deref()).map_err(key_error)?;
            match output {
                Output::Table => output::emit(&records.iter().map(audit_line).collect::<String>()),
                Output::Json => output::print_json(&records),
            }
        }
    }
}

fn key_error(e: KeyError) -> CliError {
    if e.is_user_error() {
        CliError::input(e)
    } else {
        CliError::failed(e)
    }
}

/// `text` with control characters escaped, so that an object key or a description cannot
/// break a table or forge a line.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn state(enabled: bool) -> &'static str {
    if enabled { "Enabled" } else { "Disabled" }
}

fn key_table(keys: &[KmsKeyInfo]) -> String {
    let header = [
        "ID",
        "STATE",
        "VERSION",
        "CREATED",
        "ALIASES",
        "DESCRIPTION",
    ];
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|k| {
            [
                k.id.clone(),
                state(k.enabled).to_owned(),
                k.current_version.to_string(),
                k.created.clone(),
                k.aliases.join(","),
                printable(&k.description),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for cells in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let mut line = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn describe(key: &KmsKeyInfo) -> String {
    let versions: Vec<String> = key.versions.iter().map(u32::to_string).collect();
    let mut lines = vec![
        ("Key", key.id.clone()),
        ("Aliases", key.aliases.join(", ")),
        ("State", state(key.enabled).to_owned()),
        ("Created", key.created.clone()),
        ("Current version", key.current_version.to_string()),
        ("Versions", versions.join(", ")),
    ];
    if !key.description.is_empty() {
        lines.insert(1, ("Description", printable(&key.description)));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    lines
        .into_iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// One record per line: time, operation, key id, version, bucket/key, outcome (and the
/// source key of a ReEncrypt).
fn audit_line(r: &AuditRecord) -> String {
    let version = r
        .key_version
        .map_or_else(|| "-".to_owned(), |v| format!("v{v}"));
    let object = r.context.as_ref().map_or_else(
        || "-".to_owned(),
        |c| printable(&format!("{}/{}", c.bucket, c.key)),
    );
    let mut line = format!(
        "{}  {:<15}  {}  {version}  {object}  {}",
        r.time,
        r.operation.as_str(),
        printable(&r.key_id),
        r.outcome.as_str()
    );
    if let Some(error) = &r.error {
        line.push_str(&format!(": {}", printable(error)));
    }
    if let Some(source) = &r.source_key_id {
        line.push_str(&format!(" (from {}", printable(source)));
        if let Some(v) = r.source_key_version {
            line.push_str(&format!(" v{v}"));
        }
        line.push(')');
    }
    line.push('\n');
    line
}
