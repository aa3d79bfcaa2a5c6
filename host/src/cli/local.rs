//! Commands run in this process on the data directory (no service is running on it).

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};

use connector_host::bindings::types::{ConnectorError, IngestOutcome, MemoryStatus};
use connector_host::driver::{describe_error, drive};
use connector_host::report::{
    AskView, ConnectionView, ConnectorView, IngestView, MemoryState, MemoryView, PassageView, RejectedView, StatusView,
    export_line,
};
use connector_host::runtime::{ConnectPolicy, ConnectorHost, Instance};

use super::output::{Bars, print_memories, print_passages, print_status};
use crate::{Cli, Command, SemanticAction};

fn fail(error: ConnectorError) -> anyhow::Error {
    anyhow!("{}", describe_error(&error))
}

/// Exit status of a run: failure if a key was rejected or a memory ended in ERROR.
pub fn exit_for(view: &IngestView) -> ExitCode {
    if !view.rejected.is_empty() || view.memories.iter().any(|m| m.status == MemoryState::Error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs a command on the data directory in this process.
pub async fn run(cli: &Cli) -> Result<ExitCode> {
    let host = cli.open_host()?;
    if let Command::Keys(command) = &cli.command {
        return super::keys::run_local(&host, &cli.instance, command);
    }
    let mut instance = host.instance(&cli.instance).await?;
    let namespace = instance.namespace().to_string();
    match &cli.command {
        Command::Demo { .. } | Command::Serve(_) | Command::Keys(_) | Command::OperatorKey(_) => {
            unreachable!("handled before")
        }
        Command::Audit { limit, json } => {
            super::output::print_audit(&host.audit_log(&namespace, *limit)?, *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Connect(args) => {
            let connector = ConnectorView::from(instance.describe().await?);
            let config = args.config(&connector)?;
            let subject = connector.audit_subject(&config);
            let policy = ConnectPolicy { allow_loopback: args.allow_loopback };
            let outcome = instance.connect(config, policy).await;
            host.audit_call(&namespace, "cli", "connect", &subject, &outcome);
            let connection = ConnectionView::from(&outcome?.map_err(fail)?);
            super::print_connection(&connection, args.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { json } => {
            super::connect::print_description(&ConnectorView::from(instance.describe().await?), *json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Disconnect { connection_id } => {
            let outcome = instance.disconnect(connection_id).await;
            host.audit_call(&namespace, "cli", "disconnect", connection_id, &outcome);
            let connection = ConnectionView::from(&outcome?.map_err(fail)?);
            super::print_disconnected(&connection);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { connection, spaces, no_wait, json } => {
            let outcome = instance.ingest(connection, std::slice::from_ref(spaces)).await;
            host.audit_call(&namespace, "cli", "add-memories", &format!("{connection}: {spaces}"), &outcome);
            let outcomes = outcome?.map_err(fail)?;
            ingest(&mut instance, outcomes, *no_wait, *json).await
        }
        Command::Sync { memory_id, allow_mass_delete, json } => {
            let outcome = instance.sync(memory_id, *allow_mass_delete).await;
            host.audit_call(&namespace, "cli", "sync", memory_id, &outcome);
            let memory = outcome?.map_err(fail)?;
            let mut view = wait(&mut instance, vec![memory.id], *json).await?;
            view.embedded = embed_pending(&host, &namespace, *json)?;
            print_memories(&view, *json);
            Ok(exit_for(&view))
        }
        Command::Resume { json } => {
            let pending = instance.pending().await?;
            let mut view = wait(&mut instance, pending, *json).await?;
            view.embedded = embed_pending(&host, &namespace, *json)?;
            print_memories(&view, *json);
            Ok(exit_for(&view))
        }
        Command::Semantic { action, no_wait, json } => {
            if *action != SemanticAction::Status {
                let on = *action == SemanticAction::On;
                let changed = host.set_semantic(&namespace, on);
                let target = if on { "on" } else { "off" };
                host.audit(
                    &namespace,
                    "cli",
                    "semantic",
                    target,
                    changed.as_ref().map(|_| ()).map_err(|e| e.to_string()),
                );
                changed?;
            }
            let memories: Vec<String> = instance.status().await?.memories.into_iter().map(|m| m.id).collect();
            super::output::print_semantic(&host.semantic_status(&namespace, &memories)?, *json);
            if *action == SemanticAction::On && !*no_wait {
                embed_pending(&host, &namespace, *json)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let status = status_view(&mut instance).await?;
            print_status(&status, *json, false);
            Ok(ExitCode::SUCCESS)
        }
        Command::AutoResync { memory_id, every, off } => {
            let status = instance.status().await?;
            let every = if *off { None } else { every.as_deref() };
            let changed = host.set_auto_resync(&namespace, &status, memory_id, every)?;
            let target = format!("{memory_id} {}", every.map_or("off".to_string(), |every| format!("every {every}")));
            host.audit(
                &namespace,
                "cli",
                "auto-resync",
                &target,
                changed.as_ref().map(|_| ()).map_err(|r| r.to_string()),
            );
            let schedule = changed.map_err(|r| anyhow!("{r}"))?;
            super::print_auto_resync(memory_id, schedule.map(|s| s.every_secs));
            Ok(ExitCode::SUCCESS)
        }
        Command::Export => {
            for hit in instance.export()? {
                println!("{}", export_line(&hit));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ask { question, limit, per_document, memories, labels, json } => {
            let passages =
                instance.retrieve_with(question, memories, *limit, *per_document, labels).await?.map_err(fail)?;
            print_passages(&AskView { passages: passages.iter().map(PassageView::from).collect() }, *json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn status_view(instance: &mut Instance) -> Result<StatusView> {
    let status = instance.status().await?;
    let mut view = StatusView::new(&status, &instance.host().schedules(instance.namespace())?);
    instance.host().add_semantic_views(instance.namespace(), &mut view)?;
    Ok(view)
}

/// Embeds the instance's pending pages while semantic retrieval is on, with a progress
/// bar, and returns how many it embedded (`None` while it is off). The memories already
/// answer lexically; interrupting this loses nothing (the next `resume`, `sync` or
/// `serve` continues).
fn embed_pending(host: &ConnectorHost, namespace: &str, json: bool) -> Result<Option<u64>> {
    let Some(semantic) = host.index(namespace)?.semantic() else { return Ok(None) };
    let total = semantic.remaining() as u64;
    if total == 0 {
        return Ok(Some(0));
    }
    let bar = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(total) };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "embedding pages for semantic retrieval {bar:30} {pos}/{len} {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    tokio::task::block_in_place(|| -> Result<()> {
        while let Some(round) = host.embed_round(namespace)? {
            bar.set_length(bar.position() + round.embedded as u64 + round.remaining as u64);
            bar.inc(round.embedded as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(Some(bar.position()))
}

async fn ingest(instance: &mut Instance, outcomes: Vec<IngestOutcome>, no_wait: bool, json: bool) -> Result<ExitCode> {
    let mut rejected = Vec::new();
    let mut started = Vec::new();
    let mut settled_now = Vec::new();
    for outcome in outcomes {
        match outcome.outcome {
            Ok(memory) if matches!(memory.status, MemoryStatus::InProgress) => started.push(memory.id),
            Ok(memory) => settled_now.push(MemoryView::new(&memory, None)),
            Err(error) => {
                if !json {
                    eprintln!("{}: {}", outcome.requested, describe_error(&error));
                }
                rejected.push(RejectedView::new(&outcome.requested, &error));
            }
        }
    }
    let mut view = IngestView { memories: settled_now, rejected, embedded: None };
    if no_wait {
        if !json {
            for id in &started {
                eprintln!("registered {id}; run `connector-host resume` to process it");
            }
        }
        let status = instance.status().await?;
        view.memories
            .extend(status.memories.iter().filter(|m| started.contains(&m.id)).map(|m| MemoryView::new(m, None)));
    } else {
        view.memories.extend(wait(instance, started, json).await?.memories);
        view.embedded = embed_pending(instance.host(), instance.namespace(), json)?;
    }
    print_memories(&view, json);
    Ok(exit_for(&view))
}

async fn wait(instance: &mut Instance, ids: Vec<String>, json: bool) -> Result<IngestView> {
    let bars = Bars::new(&ids, json);
    let memories = drive(instance, &ids, |memory| bars.update(&MemoryView::new(memory, None))).await?;
    bars.finish();
    Ok(IngestView {
        memories: memories.iter().map(|m| MemoryView::new(m, None)).collect(),
        rejected: Vec::new(),
        embedded: None,
    })
}

/// Starts the sample site, ingests its space and answers a question.
pub async fn demo(cli: &Cli, question: &str) -> Result<ExitCode> {
    let site = fake_confluence::demo_site().context("cannot start the sample Confluence site")?;
    println!("sample Confluence site running at {}", site.origin());
    let (data_dir, temporary) = match &cli.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("connector-host-demo-{}", std::process::id())), true),
    };
    let outcome = async {
        let host = connector_host::runtime::ConnectorHost::open(cli.host_config(data_dir.clone()))?;
        let mut instance = host.instance("demo").await?;
        let connection = instance
            .connect(
                vec![
                    (
                        "site".into(),
                        format!("{}/wiki/spaces/{}/overview", site.origin(), fake_confluence::DEMO_SPACE_KEY),
                    ),
                    ("email".into(), fake_confluence::DEMO_EMAIL.into()),
                    ("token".into(), fake_confluence::DEMO_TOKEN.into()),
                ],
                ConnectPolicy { allow_loopback: true },
            )
            .await?
            .map_err(fail)?;
        println!("connected {} as {} ({})", connection.site, connection.account, connection.id);
        let outcomes =
            instance.ingest(&connection.id, &[fake_confluence::DEMO_SPACE_KEY.to_string()]).await?.map_err(fail)?;
        let ids: Vec<String> = outcomes.into_iter().filter_map(|o| o.outcome.ok()).map(|m| m.id).collect();
        let view = wait(&mut instance, ids, false).await?;
        print_memories(&view, false);
        println!("\nQ: {question}\n");
        let passages = instance.retrieve(question, &[], 3).await?.map_err(fail)?;
        print_passages(&AskView { passages: passages.iter().map(PassageView::from).collect() }, false);
        if passages.is_empty() {
            bail!("the demo found no passage for its question");
        }
        Ok(ExitCode::SUCCESS)
    }
    .await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    outcome
}
