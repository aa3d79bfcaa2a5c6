//! Who is calling: an API key (as a Bearer token or in the dashboard's session cookie),
//! or the operator token of a CLI command on the service's own data directory.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};

use crate::keys::Role;
use crate::runtime::valid_instance_name;
use crate::service::Service;
use crate::service::error::ApiError;
use crate::service::handoff::INSTANCE_HEADER;

/// Name of the dashboard's session cookie (it holds the API key; HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "connector_session";

/// What the caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An API key's role.
    Key(Role),
    /// The operator, through the CLI on the service's data directory: everything,
    /// including keys and exports.
    Operator,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Id of the key (`operator` for the operator token).
    pub key_id: String,
    /// The label of the key.
    pub label: Option<String>,
    /// The instance the caller acts on.
    pub instance: String,
    /// What it may do.
    pub access: Access,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Key(role) => role.fmt(f),
            Access::Operator => f.write_str("operator"),
        }
    }
}

impl Caller {
    /// Whether the caller may change connections, memories and schedules.
    pub fn manages(&self) -> bool {
        match self.access {
            Access::Key(role) => role.manages(),
            Access::Operator => true,
        }
    }

    /// Refuses callers that may not manage the instance.
    pub fn require_manager(&self) -> Result<(), ApiError> {
        if self.manages() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs an admin or domain-owner key; a member key may only ask and read status",
            ))
        }
    }

    /// Refuses everyone but the operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self.access {
            Access::Operator => Ok(()),
            Access::Key(_) => {
                Err(ApiError::forbidden("only the operator (the CLI on the service's data directory) may do this"))
            }
        }
    }
}

/// The key a request presents, if any, and whether it came in the session cookie.
fn presented_key(parts: &Parts) -> Option<(String, bool)> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| (token.trim().to_string(), false));
    }
    let jar = axum_extra::extract::cookie::CookieJar::from_headers(&parts.headers);
    jar.get(SESSION_COOKIE).map(|cookie| (cookie.value().to_string(), true))
}

/// A browser's write that a cookie authenticates must come from the dashboard's own
/// origin (SameSite=Strict already keeps the cookie off other sites' requests; this is
/// the second lock).
fn check_same_origin(parts: &Parts) -> Result<(), ApiError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if parts.headers.get("sec-fetch-site").is_some_and(|v| v != "same-origin" && v != "none") {
        return Err(ApiError::forbidden("cross-site requests are refused"));
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
        if host.is_empty() || origin_host != host {
            return Err(ApiError::forbidden("cross-origin requests are refused"));
        }
    }
    Ok(())
}

impl FromRequestParts<Arc<Service>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Caller, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = authenticate(parts, service)?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// Authenticates a request's key (also used by the MCP endpoint's middleware).
pub fn authenticate(parts: &Parts, service: &Service) -> Result<Caller, ApiError> {
    let (key, from_cookie) = presented_key(parts).ok_or_else(ApiError::unauthenticated)?;
    if !from_cookie && crate::keys::same_secret(&key, &service.operator_token) {
        let instance = parts
            .headers
            .get(INSTANCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|name| valid_instance_name(name))
            .ok_or_else(|| ApiError::invalid(format!("operator requests name their instance in {INSTANCE_HEADER}")))?;
        return Ok(Caller {
            key_id: "operator".into(),
            label: None,
            instance: instance.to_string(),
            access: Access::Operator,
        });
    }
    if from_cookie {
        check_same_origin(parts)?;
    }
    let key = service.host.verify_key(&key).map_err(ApiError::internal)?.ok_or_else(ApiError::unauthenticated)?;
    Ok(Caller { key_id: key.id, label: key.label, instance: key.instance, access: Access::Key(key.role) })
}
