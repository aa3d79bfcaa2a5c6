//! `connector-host keys`: API keys of the service, stored hashed in the host's metadata.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use connector_host::keys::{ApiKey, CreatedKey, Role};
use connector_host::runtime::ConnectorHost;

use super::output::print_json;
use super::remote::Remote;

/// What to do with keys.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key for the instance (`--instance`); prints it once.
    Create {
        /// admin, domain-owner or member.
        #[arg(long)]
        role: Role,
        /// Who or what holds the key.
        #[arg(long)]
        label: Option<String>,
        /// Print one JSON document: {"id","key","role","instance"}.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the key itself).
    List {
        /// Only keys of the instance given with `--instance`.
        #[arg(long)]
        only_instance: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke {
        /// Key id (see `keys list`).
        id: String,
    },
}

fn print_created(created: &CreatedKey, json: bool) {
    if json {
        print_json(created);
    } else {
        println!("{}", created.key);
        eprintln!(
            "key {} ({} of instance {}) — shown only now: store it safely",
            created.id, created.role, created.instance
        );
    }
}

fn print_keys(keys: &[ApiKey], json: bool) {
    if json {
        print_json(&keys);
        return;
    }
    if keys.is_empty() {
        println!("no keys: create one with `connector-host keys create --instance NAME --role admin`");
    }
    for key in keys {
        println!("{}  {:<12}  {:<16}  {}", key.id, key.role, key.instance, key.label.as_deref().unwrap_or(""));
    }
}

/// Runs a keys command on the store in this process.
pub fn run_local(host: &ConnectorHost, instance: &str, command: &KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Create { role, label, json } => {
            let created = host.create_key(instance, *role, label.clone())?;
            host.audit(instance, "cli", "key-create", &format!("{} ({})", created.id, created.role), Ok(()));
            print_created(&created, *json);
        }
        KeysCommand::List { only_instance, json } => {
            print_keys(&host.list_keys(only_instance.then_some(instance))?, *json);
        }
        KeysCommand::Revoke { id } => match host.revoke_key(id)? {
            Some(key) => {
                host.audit(&key.instance, "cli", "key-revoke", &format!("{} ({})", key.id, key.role), Ok(()));
                println!("revoked {} ({} of instance {})", key.id, key.role, key.instance);
            }
            None => bail!("no key '{id}' (see `keys list`)"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a keys command through the running service.
pub async fn run_remote(remote: &Remote, instance: &str, command: &KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Create { role, label, json } => {
            let body = json!({"role": role, "instance": instance, "label": label});
            print_created(&remote.call(Method::POST, "/keys", Some(body)).await?, *json);
        }
        KeysCommand::List { only_instance, json } => {
            let path = if *only_instance { format!("/keys?instance={instance}") } else { "/keys".to_string() };
            let keys: Vec<ApiKey> = remote.call(Method::GET, &path, None::<()>).await?;
            print_keys(&keys, *json);
        }
        KeysCommand::Revoke { id } => {
            let key: ApiKey = remote.call(Method::DELETE, &format!("/keys/{id}"), None::<()>).await?;
            println!("revoked {} ({} of instance {})", key.id, key.role, key.instance);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `operator-key rotate`: re-encrypts the secrets of the data directory (or of the
/// PostgreSQL database) under a new key.
pub async fn rotate_operator_key(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    new_key_env: Option<&str>,
) -> Result<ExitCode> {
    if let Some(running) = Remote::find(data_dir, "default").await {
        bail!("a service ({}) is serving {}: stop it, rotate, start it again", running.describe(), data_dir.display());
    }
    if database_url.is_some() {
        let key_var = connector_host::runtime::OPERATOR_KEY_VAR;
        if std::env::var(key_var).map_or(true, |v| v.trim().is_empty()) || new_key_env.is_none() {
            bail!(
                "a PostgreSQL database's key comes from {key_var}: set it to the current key and give the new one with --new-key-env VAR"
            );
        }
    }
    let (store, _claim) =
        connector_host::runtime::open_store(data_dir, database_url, connector_store::ClaimMode::Exclusive)?;
    let rotation = connector_host::operator_key::rotate(data_dir, &store, new_key_env)?;
    println!(
        "re-encrypted {} secrets under the new operator key ({}); the old key no longer opens them",
        rotation.secrets, rotation.new_key_at
    );
    Ok(ExitCode::SUCCESS)
}
