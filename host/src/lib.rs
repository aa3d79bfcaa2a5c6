//! The reference host for knowledge-connector components.
//!
//! It loads a connector component (by default the Confluence connector built from
//! `plugin/`), grants it exactly three capabilities — outbound HTTP to the origins of
//! its connections, key-value storage and search, each scoped to one connector
//! instance — plus encrypted secrets, and drives its long-running work step by step.
//! [`service`] runs it as a multi-tenant service (HTTP API, dashboard, MCP).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use connector_host::runtime::{ConnectorHost, HostConfig};
//! let host = ConnectorHost::open(HostConfig::new("/tmp/connector-data"))?;
//! let mut instance = host.instance("default").await?;
//! println!("{}", instance.describe().await?.name);
//! # Ok(()) }
//! ```

pub mod allocator;
pub mod audit;
pub mod bindings;
mod blocking;
pub mod capabilities;
pub mod driver;
pub mod keys;
pub mod operator_key;
pub mod priority;
pub mod profile;
pub mod report;
pub mod runtime;
pub mod schedule;
pub mod semantic;
pub mod service;
pub mod state;
