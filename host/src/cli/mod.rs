//! The command line: one module per way of running a command.
//!
//! * [`local`]: in this process, on the data directory.
//! * [`remote`]: through the service already running on the data directory.
//! * [`serve`]: the service itself; [`keys`]: its API keys.
//! * [`connect`]: the connection form's fields, from the connector's description.
//! * [`output`]: what every command prints.

pub mod connect;
pub mod keys;
pub mod local;
pub mod output;
pub mod remote;
pub mod serve;

use std::process::ExitCode;

use anyhow::Result;
use reqwest::Method;
use serde_json::json;

use connector_host::report::{AskView, ConnectionView, ConnectorView, IngestView, MemoryState, MemoryView};

use crate::{Cli, Command};
use output::{print_memories, print_passages, print_status};
use remote::Remote;

/// Prints a new connection.
pub fn print_connection(connection: &ConnectionView, json: bool) {
    if json {
        output::print_json(connection);
    } else {
        println!("{}", connection.id);
        eprintln!(
            "connected {} on {} ({})",
            connection.email.as_deref().unwrap_or("-"),
            connection.site,
            connection.access
        );
    }
}

/// Prints a disconnected connection.
pub fn print_disconnected(connection: &ConnectionView) {
    println!(
        "disconnected {} ({} on {}); its memories stay searchable",
        connection.id,
        connection.email.as_deref().unwrap_or("-"),
        connection.site
    );
}

/// Prints the Auto Resync now in force.
pub fn print_auto_resync(memory: &str, every_secs: Option<u64>) {
    match every_secs {
        Some(every) => println!("Auto Resync of {memory} every {every}s; `connector-host serve` runs it"),
        None => println!("Auto Resync of {memory} is off"),
    }
}

/// Runs a command through the service that holds the data directory.
pub async fn through_service(cli: &Cli, remote: &Remote) -> Result<ExitCode> {
    let none = None::<()>;
    match &cli.command {
        Command::Demo { .. } | Command::Serve(_) | Command::OperatorKey(_) => unreachable!("handled before"),
        Command::Keys(command) => keys::run_remote(remote, &cli.instance, command).await,
        Command::Connect(args) => {
            let connector: ConnectorView = remote.call(Method::GET, "/connector", none).await?;
            let config = args.config(&connector)?;
            let body: serde_json::Map<String, serde_json::Value> =
                config.into_iter().map(|(name, value)| (name, serde_json::Value::String(value))).collect();
            let connection: ConnectionView = remote.call(Method::POST, "/connections", Some(body)).await?;
            print_connection(&connection, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { json } => {
            let connector: ConnectorView = remote.call(Method::GET, "/connector", none).await?;
            connect::print_description(&connector, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Disconnect { connection_id } => {
            let path = format!("/connections/{connection_id}");
            let connection: ConnectionView = remote.call(Method::DELETE, &path, none).await?;
            print_disconnected(&connection);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { connection, spaces, no_wait, json } => {
            let body = json!({"connection": connection, "spaces": spaces});
            let added: IngestView = remote.call(Method::POST, "/memories", Some(body)).await?;
            if !*json {
                for rejected in &added.rejected {
                    eprintln!("{}: {}", rejected.space_key, rejected.error);
                }
            }
            let view = if *no_wait { added } else { settle(remote, added, *json).await? };
            print_memories(&view, *json);
            Ok(local::exit_for(&view))
        }
        Command::Sync { memory_id, allow_mass_delete, json } => {
            let body = json!({"allow_mass_delete": allow_mass_delete});
            let memory: MemoryView =
                remote.call(Method::POST, &format!("/memories/{memory_id}/sync"), Some(body)).await?;
            let view = remote.wait(&[memory.id], *json).await?;
            print_memories(&view, *json);
            Ok(local::exit_for(&view))
        }
        Command::Resume { json } => {
            // The service resumes unfinished work by itself: wait for it.
            let status = remote.status().await?;
            let pending: Vec<String> =
                status.memories.iter().filter(|m| m.status == MemoryState::InProgress).map(|m| m.id.clone()).collect();
            let view = remote.wait(&pending, *json).await?;
            print_memories(&view, *json);
            Ok(local::exit_for(&view))
        }
        Command::Status { json } => {
            print_status(&remote.status().await?, *json, true);
            Ok(ExitCode::SUCCESS)
        }
        Command::AutoResync { memory_id, every, off } => {
            let body = if *off { json!({"off": true}) } else { json!({"every": every}) };
            let path = format!("/memories/{memory_id}/auto-resync");
            let memory: MemoryView = remote.call(Method::PUT, &path, Some(body)).await?;
            print_auto_resync(memory_id, memory.auto_resync.map(|s| s.every_secs));
            Ok(ExitCode::SUCCESS)
        }
        Command::Semantic { action, json, .. } => {
            let view: connector_host::semantic::SemanticStatusView = match action {
                crate::SemanticAction::Status => remote.call(Method::GET, "/semantic", none).await?,
                on_or_off => {
                    let body = json!({"enabled": *on_or_off == crate::SemanticAction::On});
                    remote.call(Method::PUT, "/semantic", Some(body)).await?
                }
            };
            output::print_semantic(&view, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export => {
            print!("{}", remote.text("/export").await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { limit, json } => {
            let entries: Vec<connector_host::audit::AuditEntry> =
                remote.call(Method::GET, &format!("/audit?limit={limit}"), None::<()>).await?;
            output::print_audit(&entries, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ask { question, limit, per_document, memories, labels, json } => {
            let body = json!({
                "question": question, "limit": limit, "per_document": per_document, "memories": memories, "labels": labels
            });
            let answer: AskView = remote.call(Method::POST, "/ask", Some(body)).await?;
            print_passages(&answer, *json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Waits for the memories an ingest started, keeping its rejections.
async fn settle(remote: &Remote, added: IngestView, json: bool) -> Result<IngestView> {
    let started: Vec<String> =
        added.memories.iter().filter(|m| m.status == MemoryState::InProgress).map(|m| m.id.clone()).collect();
    let mut settled = remote.wait(&started, json).await?;
    let mut memories: Vec<MemoryView> =
        added.memories.into_iter().filter(|m| m.status != MemoryState::InProgress).collect();
    memories.append(&mut settled.memories);
    Ok(IngestView { memories, rejected: added.rejected, embedded: None })
}
