//! `connect` and `describe`: the connection form of whatever connector the host runs, from
//! the command line. The fields come from the connector's own description; secrets are read
//! from the environment or standard input, never from the command line.

use std::io::Read as _;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;

use connector_host::report::ConnectorView;

/// What `connect` takes. `--field`, `--secret-env` and `--secret-stdin` work for any
/// connector; the named options are the Confluence connector's fields, kept as shorthands.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// A field of the connection form, NAME=VALUE (repeatable; `describe` lists them).
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// A secret field read from an environment variable, NAME=VARIABLE (repeatable).
    #[arg(long = "secret-env", value_name = "NAME=VARIABLE")]
    pub secret_env: Vec<String>,
    /// A secret field read from standard input.
    #[arg(long = "secret-stdin", value_name = "NAME", conflicts_with = "token_stdin")]
    pub secret_stdin: Option<String>,
    /// Site URL, e.g. https://your-company.atlassian.net (`--field site=URL`).
    #[arg(long)]
    pub site: Option<String>,
    /// Atlassian account e-mail (`--field email=ADDRESS`).
    #[arg(long)]
    pub email: Option<String>,
    /// Name of the environment variable holding the API token (`--secret-env token=VARIABLE`).
    #[arg(long, conflicts_with = "token_stdin")]
    pub token_env: Option<String>,
    /// Read the API token from standard input (`--secret-stdin token`).
    #[arg(long)]
    pub token_stdin: bool,
    /// Let the connector reach an http:// site on a loopback address, for tests and the
    /// demo (the host's loopback policy, whatever the connector).
    #[arg(long)]
    pub allow_loopback: bool,
    /// Origin of the Atlassian API gateway (`--field gateway=ORIGIN`).
    #[arg(long)]
    pub gateway: Option<String>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Where a field's value comes from.
enum Source {
    Given(String),
    Env(String),
    Stdin,
}

impl ConnectArgs {
    /// The configuration to connect with: every field given, checked against `connector`'s
    /// description (known names, secrets not on the command line, required fields there).
    pub fn config(&self, connector: &ConnectorView) -> Result<Vec<(String, String)>> {
        let mut sources: Vec<(String, Source)> = Vec::new();
        let named = [("site", self.site.as_ref()), ("email", self.email.as_ref()), ("gateway", self.gateway.as_ref())];
        for (name, value) in named {
            if let Some(value) = value {
                sources.push((name.into(), Source::Given(value.clone())));
            }
        }
        if let Some(variable) = &self.token_env {
            sources.push(("token".into(), Source::Env(variable.clone())));
        }
        if self.token_stdin {
            sources.push(("token".into(), Source::Stdin));
        }
        for field in &self.fields {
            let (name, value) = split(field, "--field", "NAME=VALUE")?;
            sources.push((name, Source::Given(value)));
        }
        for secret in &self.secret_env {
            let (name, variable) = split(secret, "--secret-env", "NAME=VARIABLE")?;
            sources.push((name, Source::Env(variable)));
        }
        if let Some(name) = &self.secret_stdin {
            sources.push((name.clone(), Source::Stdin));
        }

        let mut config: Vec<(String, String)> = Vec::with_capacity(sources.len());
        for (name, source) in sources {
            let field = connector.known_field(&name).map_err(|error| anyhow!("{error}; see `describe`"))?;
            if config.iter().any(|(given, _)| given == &field.name) {
                bail!("the field {} is given twice", field.name);
            }
            let value = match source {
                Source::Given(_) if field.secret => bail!(
                    "{} is secret: pass it with --secret-env {0}=VARIABLE or --secret-stdin {0}, never on the command line",
                    field.name
                ),
                Source::Given(value) => value,
                Source::Env(variable) => std::env::var(&variable).map_err(|_| {
                    anyhow!("the environment variable {variable} is not set: it should hold the {}", field.label)
                })?,
                Source::Stdin => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .with_context(|| format!("cannot read the {} from standard input", field.label))?;
                    text
                }
            };
            let value = value.trim().to_string();
            if field.secret && value.is_empty() {
                bail!("the {} is empty", field.label);
            }
            config.push((field.name.clone(), value));
        }
        let missing: Vec<String> = connector
            .fields
            .iter()
            // A field given empty is the connector's to explain; one not given at all is ours.
            .filter(|f| f.required && !config.iter().any(|(name, _)| name == &f.name))
            .map(|f| {
                let how = if f.secret {
                    format!("--secret-env {0}=VARIABLE", f.name)
                } else {
                    format!("--field {}=…", f.name)
                };
                format!("{how} ({}: {})", f.label, f.help)
            })
            .collect();
        if !missing.is_empty() {
            bail!("connecting {} also needs {}", connector.name, missing.join("; "));
        }
        Ok(config)
    }
}

fn split(argument: &str, option: &str, shape: &str) -> Result<(String, String)> {
    match argument.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => bail!("{option} takes {shape}, not '{argument}'"),
    }
}

/// Prints what the connector is and the fields `connect` takes.
pub fn print_description(connector: &ConnectorView, json: bool) {
    if json {
        super::output::print_json(connector);
        return;
    }
    println!("{} {} ({}; a source is a {})", connector.name, connector.version, connector.kind, connector.source_label);
    println!("connect fields:");
    for field in &connector.fields {
        let how = if field.secret {
            format!("--secret-env {0}=VARIABLE | --secret-stdin {0}", field.name)
        } else {
            format!("--field {}=…", field.name)
        };
        let required = match (field.required, field.operator_only) {
            (true, _) => "required",
            (false, true) => "optional, operator only",
            (false, false) => "optional",
        };
        println!("  {how}  [{required}] {}: {}", field.label, field.help);
    }
}
