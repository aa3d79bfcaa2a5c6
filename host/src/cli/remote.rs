//! Commands sent to the service that runs on the same data directory (see
//! `connector_host::service::handoff`): the store is the service's while it runs.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use connector_host::report::{IngestView, MemoryState, MemoryView, StatusView};
use connector_host::service::error::ErrorBody;
use connector_host::service::handoff::{Handoff, INSTANCE_HEADER};

use super::output::Bars;

/// A client of the running service, acting as the operator on one instance.
pub struct Remote {
    client: reqwest::Client,
    handoff: Handoff,
    instance: String,
}

impl Remote {
    /// A client of the live service on `data_dir`, if its hand-off file names one that answers.
    pub async fn find(data_dir: &std::path::Path, instance: &str) -> Option<Remote> {
        Remote::connect(connector_host::service::handoff::find(data_dir)?, instance).await
    }

    /// The running service's process id and address.
    pub fn describe(&self) -> String {
        format!("pid {} at {}", self.handoff.pid, self.handoff.url)
    }

    async fn connect(handoff: Handoff, instance: &str) -> Option<Remote> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().ok()?;
        let healthy = client
            .get(format!("{}/healthz", handoff.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        healthy.then(|| Remote { client, handoff, instance: instance.to_string() })
    }

    async fn send(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<reqwest::Response> {
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.handoff.url))
            .bearer_auth(&self.handoff.token)
            .header(INSTANCE_HEADER, &self.instance);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response =
            request.send().await.with_context(|| format!("the service at {} did not answer", self.handoff.url))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(error) => bail!("{}", error.error.message),
            Err(_) => bail!("the service answered {status}: {text}"),
        }
    }

    /// Sends a request and parses the JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<impl Serialize>,
    ) -> Result<T> {
        let body = body.map(|b| serde_json::to_value(b)).transpose()?;
        let response = self.send(method, path, body).await?;
        response.json().await.context("the service's answer is not the expected JSON")
    }

    /// Sends a request and returns the answer's text.
    pub async fn text(&self, path: &str) -> Result<String> {
        Ok(self.send(Method::GET, path, None).await?.text().await?)
    }

    /// The instance's status.
    pub async fn status(&self) -> Result<StatusView> {
        self.call(Method::GET, "/status", None::<()>).await
    }

    /// Waits until the memories are no longer in progress (the service does the work).
    pub async fn wait(&self, ids: &[String], json: bool) -> Result<IngestView> {
        let bars = Bars::new(ids, json);
        let mut settled: Vec<MemoryView> = Vec::new();
        loop {
            let status = self.status().await?;
            settled.clear();
            for id in ids {
                let memory = status
                    .memories
                    .iter()
                    .find(|m| &m.id == id)
                    .ok_or_else(|| anyhow!("memory {id} disappeared while it was being worked on"))?;
                bars.update(memory);
                settled.push(memory.clone());
            }
            if settled.iter().all(|m| m.status != MemoryState::InProgress) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bars.finish();
        Ok(IngestView { memories: settled, rejected: Vec::new(), embedded: None })
    }
}
