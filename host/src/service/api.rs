//! The HTTP API (`/api/v1`), `/openapi.json`, `/healthz` and `/metrics`, and the router
//! that also mounts the dashboard and MCP.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::audit::AuditEntry;
use crate::keys::{ApiKey, CreatedKey, Role};
use crate::report::{
    AskView, ConnectionView, ConnectorView, FieldView, IngestView, MemoryState, MemoryView, PassageView, RejectedView,
    StatusView,
};
use crate::runtime::ConnectPolicy;
use crate::schedule::AutoResyncRefusal;
use crate::semantic::SemanticStatusView;
use crate::service::Service;
use crate::service::auth::{Caller, SESSION_COOKIE};
use crate::service::error::{ApiError, ErrorBody};

/// The whole HTTP surface of the service.
pub fn router(service: Arc<Service>) -> Router {
    let api = Router::new()
        .route("/session", post(sign_in).delete(sign_out))
        .route("/whoami", get(whoami))
        .route("/connector", get(connector))
        .route("/status", get(status))
        .route("/connections", post(connect))
        .route("/connections/{id}", delete(disconnect))
        .route("/memories", post(add_memories))
        .route("/memories/{id}", get(memory))
        .route("/memories/{id}/sync", post(sync))
        .route("/memories/{id}/auto-resync", put(auto_resync))
        .route("/semantic", get(semantic).put(set_semantic))
        .route("/ask", post(ask))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(revoke_key))
        .route("/export", get(export))
        .route("/audit", get(audit))
        .fallback(|| async { ApiError::not_found("no such API route (see /openapi.json)") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .merge(crate::service::dashboard::routes())
        .merge(crate::service::mcp::routes(service.clone()))
        .layer(DefaultBodyLimit::max(service.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(service.clone(), count_requests))
        .with_state(service)
}

async fn count_requests(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = next.run(request).await;
    service.metrics.request(&method, &route, response.status().as_u16());
    response
}

/// A JSON request body, with the API's error shape for every way it can be wrong.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            });
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "the request body is larger than this service accepts",
                )
            } else {
                ApiError::new(rejection.status(), "malformed", rejection.body_text())
            }
        })?;
        // An empty body stands for `{}` (e.g. a sync without options).
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"{}") } else { bytes };
        if !is_json && bytes.as_ref() != b"{}" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        parse_json(&mut deserializer).map(Body)
    }
}

fn parse_json<T: DeserializeOwned>(
    deserializer: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, ApiError> {
    let value = T::deserialize(&mut *deserializer).and_then(|value| deserializer.end().map(|()| value));
    value.map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::invalid(format!("invalid request: {error}")),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed", format!("the body is not valid JSON: {error}")),
    })
}

impl Service {
    /// The instance's status as the caller may see it.
    pub async fn status_view(&self, caller: &Caller) -> Result<StatusView, ApiError> {
        let mut instance = self.readers.get(&caller.instance).await?;
        let status = instance.status().await?;
        let mut view = StatusView::new(&status, &self.host.schedules(&caller.instance)?);
        self.host.add_semantic_views(&caller.instance, &mut view)?;
        if !caller.manages() {
            for connection in &mut view.connections {
                connection.email = None;
            }
        }
        // Work the service set aside (failing steps, a quota) shows as ERROR with its reason.
        let set_aside = self.tenants.get(&caller.instance).await?.set_aside();
        for memory in &mut view.memories {
            if let Some(reason) = set_aside.get(&memory.id)
                && memory.status == MemoryState::InProgress
            {
                memory.status = MemoryState::Error;
                memory.error = Some(reason.clone());
            }
        }
        Ok(view)
    }

    async fn memory_view(&self, caller: &Caller, id: &str) -> Result<MemoryView, ApiError> {
        self.status_view(caller)
            .await?
            .memories
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ApiError::not_found(format!("no memory '{id}' in this instance")))
    }
}

/// Body of `POST /api/v1/session`.
#[derive(Deserialize, ToSchema)]
pub struct SignIn {
    /// An API key.
    pub key: String,
}

/// Signs the dashboard in: the key goes into an HttpOnly, SameSite=Strict cookie.
#[utoipa::path(post, path = "/api/v1/session", request_body = SignIn,
    responses((status = 204, description = "signed in"), (status = 401, body = ErrorBody)))]
async fn sign_in(State(service): State<Arc<Service>>, headers: HeaderMap, Body(body): Body<SignIn>) -> Response {
    match service.host.verify_key(&body.key) {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::unauthenticated().into_response(),
        Err(error) => return ApiError::internal(error).into_response(),
    }
    let secure = headers.get("x-forwarded-proto").is_some_and(|v| v == "https");
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}",
        body.key.trim(),
        if secure { "; Secure" } else { "" }
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// Signs the dashboard out.
#[utoipa::path(delete, path = "/api/v1/session", responses((status = 204, description = "signed out")))]
async fn sign_out() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// Who the caller is.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// The key's id (`operator` for the operator).
    pub key_id: String,
    /// The instance the key acts on.
    pub instance: String,
    /// `admin`, `domain-owner`, `member` or `operator`.
    pub role: String,
    /// The key's label.
    pub label: Option<String>,
    /// Whether this service accepts loopback `http://` sites (tests and demos).
    pub allow_loopback: bool,
}

/// The caller's key, instance and role.
#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(State(service): State<Arc<Service>>, caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        key_id: caller.key_id,
        instance: caller.instance,
        role: caller.access.to_string(),
        label: caller.label,
        allow_loopback: service.config.allow_loopback,
    })
}

/// The connector's description (drives the dashboard's connect form).
#[utoipa::path(get, path = "/api/v1/connector", responses((status = 200, body = ConnectorView)))]
async fn connector(State(service): State<Arc<Service>>, caller: Caller) -> Result<Json<ConnectorView>, ApiError> {
    let mut instance = service.readers.get(&caller.instance).await?;
    Ok(Json(ConnectorView::from(instance.describe().await?)))
}

/// Connections and memories of the caller's instance (members do not see e-mails).
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = StatusView), (status = 401, body = ErrorBody)))]
async fn status(State(service): State<Arc<Service>>, caller: Caller) -> Result<Json<StatusView>, ApiError> {
    Ok(Json(service.status_view(&caller).await?))
}

/// Body of `POST /api/v1/connections`: the connect form's fields by name, as
/// `GET /api/v1/connector` lists them (`_` may stand for `-`); text, or `true`/`false` for
/// yes/no fields. For Confluence: `site`, `email`, `token` (stored encrypted, never
/// returned) and `gateway` (operator only: a field the connector marks `operator_only` is
/// refused to everyone else; `serve --connect-field` fixes such fields). Beside them, `allow_loopback: true` asks the
/// host to grant a loopback `http://` site (only where the service allows loopback sites).
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = std::collections::BTreeMap<String, String>)]
pub struct ConnectRequest(pub std::collections::BTreeMap<String, FieldValue>);

/// A connect field's value.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FieldValue {
    /// Text.
    Text(String),
    /// A yes/no field.
    Flag(bool),
}

/// Connects an account (admin, domain-owner).
#[utoipa::path(post, path = "/api/v1/connections", request_body = ConnectRequest,
    responses((status = 201, body = ConnectionView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn connect(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Body(ConnectRequest(fields)): Body<ConnectRequest>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    caller.require_manager()?;
    let connector = ConnectorView::from(service.readers.get(&caller.instance).await?.describe().await?);
    let mut config = Vec::with_capacity(fields.len());
    let mut policy = ConnectPolicy::default();
    for (name, value) in fields {
        if name == "allow_loopback" || name == "allow-loopback" {
            // The host's loopback policy, asked for per connect; not a connector field.
            policy.allow_loopback = matches!(value, FieldValue::Flag(true))
                || matches!(&value, FieldValue::Text(text) if text.trim() == "true");
            continue;
        }
        let field = connector.known_field(&name).map_err(ApiError::invalid)?;
        let value = match value {
            FieldValue::Text(text) => text,
            FieldValue::Flag(true) => "true".into(),
            // An unticked box is an absent field.
            FieldValue::Flag(false) => continue,
        };
        config.push((field.name.clone(), value));
    }
    if policy.allow_loopback && !service.config.allow_loopback {
        return Err(ApiError::forbidden("this service does not accept loopback sites (serve --allow-loopback)"));
    }
    for (name, value) in &config {
        let restricted = connector.field(name).is_some_and(|f| f.operator_only);
        if restricted && !value.trim().is_empty() {
            caller.require_operator().map_err(|_| {
                ApiError::forbidden(format!(
                    "only the operator may set {name}; `serve --connect-field {name}=…` fixes it for every connection"
                ))
            })?;
        }
    }
    for (name, value) in &service.config.connect_fields {
        if connector.field(name).is_some() && !config.iter().any(|(given, _)| given == name) {
            config.push((name.clone(), value.clone()));
        }
    }
    let subject = connector.audit_subject(&config);
    let tenant = service.tenants.get(&caller.instance).await?;
    let outcome = tenant.instance().await.connect(config, policy).await;
    service.host.audit_call(&caller.instance, &caller.key_id, "connect", &subject, &outcome);
    let connection = outcome??;
    tracing::info!(tenant = %caller.instance, key = %caller.key_id, connection = %connection.id, "connected");
    Ok((StatusCode::CREATED, Json(ConnectionView::from(&connection))))
}

/// Disconnects an account; its memories stay searchable (admin, domain-owner).
#[utoipa::path(delete, path = "/api/v1/connections/{id}", params(("id" = String, Path, description = "connection id")),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
async fn disconnect(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    caller.require_manager()?;
    let tenant = service.tenants.get(&caller.instance).await?;
    let outcome = tenant.instance().await.disconnect(&id).await;
    service.host.audit_call(&caller.instance, &caller.key_id, "disconnect", &id, &outcome);
    let connection = outcome??;
    tracing::info!(tenant = %caller.instance, key = %caller.key_id, connection = %id, "disconnected");
    Ok(Json(ConnectionView::from(&connection)))
}

/// Body of `POST /api/v1/memories`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemories {
    /// Connection id.
    pub connection: String,
    /// Space keys, comma-separated, e.g. `SD, TD`.
    pub spaces: String,
}

/// Adds one memory per space key; the work runs in the service (admin, domain-owner).
/// When no key is accepted, the answer is the error of the first rejection (e.g. 409 for
/// a space already ingested: use sync on its memory instead).
#[utoipa::path(post, path = "/api/v1/memories", request_body = AddMemories,
    responses((status = 202, body = IngestView), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_memories(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Body(body): Body<AddMemories>,
) -> Result<(StatusCode, Json<IngestView>), ApiError> {
    caller.require_manager()?;
    let limits = service.config.quotas.of(&caller.instance);
    if limits.memories.is_some() {
        let held = service.readers.get(&caller.instance).await?.status().await?.memories.len();
        let adding = body.spaces.split(',').filter(|key| !key.trim().is_empty()).count();
        if let Some(refusal) = crate::service::quotas::memories_refusal(&limits, &caller.instance, held, adding) {
            service.host.audit(&caller.instance, &caller.key_id, "add-memories", &body.spaces, Err(refusal.clone()));
            return Err(ApiError::new(StatusCode::FORBIDDEN, "quota-exceeded", refusal));
        }
    }
    let tenant = service.tenants.get(&caller.instance).await?;
    let outcome = tenant.instance().await.ingest(&body.connection, std::slice::from_ref(&body.spaces)).await;
    let target = format!("{}: {}", body.connection, body.spaces);
    service.host.audit_call(&caller.instance, &caller.key_id, "add-memories", &target, &outcome);
    let outcomes = outcome??;
    tenant.wake();
    let mut view = IngestView { memories: Vec::new(), rejected: Vec::new(), embedded: None };
    let mut first_error = None;
    for outcome in outcomes {
        match outcome.outcome {
            Ok(memory) => view.memories.push(MemoryView::new(&memory, None)),
            Err(error) => {
                view.rejected.push(RejectedView::new(&outcome.requested, &error));
                first_error.get_or_insert(error);
            }
        }
    }
    tracing::info!(tenant = %caller.instance, key = %caller.key_id, added = view.memories.len(), rejected = view.rejected.len(), "memories added");
    if view.memories.is_empty()
        && let Some(error) = first_error
    {
        let message =
            view.rejected.iter().map(|r| format!("{}: {}", r.space_key, r.error)).collect::<Vec<_>>().join("; ");
        let status = ApiError::from(error).status();
        return Err(ApiError::new(status, &view.rejected[0].kind, message));
    }
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// One memory.
#[utoipa::path(get, path = "/api/v1/memories/{id}", params(("id" = String, Path, description = "memory id")),
    responses((status = 200, body = MemoryView), (status = 404, body = ErrorBody)))]
async fn memory(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MemoryView>, ApiError> {
    Ok(Json(service.memory_view(&caller, &id).await?))
}

/// Body of `POST /api/v1/memories/{id}/sync` (may be empty).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Apply deletions even when they would remove more than half of the memory.
    #[serde(default)]
    pub allow_mass_delete: bool,
}

/// Brings a memory up to date; the work runs in the service (admin, domain-owner).
#[utoipa::path(post, path = "/api/v1/memories/{id}/sync", request_body = SyncRequest,
    params(("id" = String, Path, description = "memory id")),
    responses((status = 202, body = MemoryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn sync(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<SyncRequest>,
) -> Result<(StatusCode, Json<MemoryView>), ApiError> {
    caller.require_manager()?;
    let tenant = service.tenants.get(&caller.instance).await?;
    tenant.unpark(&id);
    let outcome = tenant.instance().await.sync(&id, body.allow_mass_delete).await;
    service.host.audit_call(&caller.instance, &caller.key_id, "sync", &id, &outcome);
    let memory = outcome??;
    tenant.wake();
    tracing::info!(tenant = %caller.instance, key = %caller.key_id, memory = %id, "sync started");
    let schedule = service.host.schedule(&caller.instance, &id)?;
    Ok((StatusCode::ACCEPTED, Json(MemoryView::new(&memory, schedule.as_ref()))))
}

/// Body of `PUT /api/v1/memories/{id}/auto-resync`: `{"every":"1h"}` or `{"off":true}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoResyncRequest {
    /// Interval, e.g. `15m`, `1h`, `1d`.
    pub every: Option<String>,
    /// Turn Auto Resync off.
    #[serde(default)]
    pub off: bool,
}

/// Turns Auto Resync of a memory on or off (admin, domain-owner).
#[utoipa::path(put, path = "/api/v1/memories/{id}/auto-resync", request_body = AutoResyncRequest,
    params(("id" = String, Path, description = "memory id")),
    responses((status = 200, body = MemoryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn auto_resync(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<AutoResyncRequest>,
) -> Result<Json<MemoryView>, ApiError> {
    caller.require_manager()?;
    let every = match (body.every, body.off) {
        (Some(_), true) | (None, false) => {
            return Err(ApiError::invalid("send either {\"every\":\"1h\"} or {\"off\":true}"));
        }
        (every, _) => every,
    };
    let status = {
        let mut instance = service.readers.get(&caller.instance).await?;
        instance.status().await?
    };
    let changed = service.host.set_auto_resync(&caller.instance, &status, &id, every.as_deref())?;
    let target = format!("{id} {}", every.as_deref().map_or("off".to_string(), |every| format!("every {every}")));
    let outcome = changed.as_ref().map(|_| ()).map_err(|refusal| refusal.to_string());
    service.host.audit(&caller.instance, &caller.key_id, "auto-resync", &target, outcome);
    match changed {
        Ok(_) => {}
        Err(refusal @ AutoResyncRefusal::NoMemory(_)) => return Err(ApiError::not_found(refusal.to_string())),
        Err(refusal @ AutoResyncRefusal::Disconnected(_)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "unavailable", refusal.to_string()));
        }
        Err(refusal @ AutoResyncRefusal::BadInterval(_)) => return Err(ApiError::invalid(refusal.to_string())),
    }
    tracing::info!(tenant = %caller.instance, key = %caller.key_id, memory = %id, every = ?every, "auto-resync set");
    Ok(Json(service.memory_view(&caller, &id).await?))
}

/// Body of `PUT /api/v1/semantic`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SemanticRequest {
    /// Semantic retrieval on (every page is embedded in the background) or off (the page
    /// vectors are deleted).
    pub enabled: bool,
}

impl Service {
    async fn semantic_view(&self, caller: &Caller) -> Result<SemanticStatusView, ApiError> {
        let status = self.readers.get(&caller.instance).await?.status().await?;
        let memories: Vec<String> = status.memories.into_iter().map(|m| m.id).collect();
        Ok(self.host.semantic_status(&caller.instance, &memories)?)
    }
}

/// Whether semantic retrieval is on for the caller's instance, and each memory's coverage.
#[utoipa::path(get, path = "/api/v1/semantic", responses((status = 200, body = SemanticStatusView)))]
async fn semantic(State(service): State<Arc<Service>>, caller: Caller) -> Result<Json<SemanticStatusView>, ApiError> {
    Ok(Json(service.semantic_view(&caller).await?))
}

/// Turns semantic retrieval of the caller's instance on or off (admin, domain-owner). On
/// needs the host's embedding model (409 without one); memories answer lexically until
/// their pages are embedded.
#[utoipa::path(put, path = "/api/v1/semantic", request_body = SemanticRequest,
    responses((status = 200, body = SemanticStatusView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_semantic(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Body(body): Body<SemanticRequest>,
) -> Result<Json<SemanticStatusView>, ApiError> {
    caller.require_manager()?;
    let host = service.host.clone();
    let instance = caller.instance.clone();
    // Turning it on reads the whole index to queue its pages: not on the async threads.
    let changed = tokio::task::spawn_blocking(move || host.set_semantic(&instance, body.enabled))
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let target = if body.enabled { "on" } else { "off" };
    let outcome = changed.as_ref().map(|_| ()).map_err(|e| e.to_string());
    service.host.audit(&caller.instance, &caller.key_id, "semantic", target, outcome);
    if let Err(error) = changed {
        return Err(ApiError::new(StatusCode::CONFLICT, "unavailable", format!("{error:#}")));
    }
    tracing::info!(tenant = %caller.instance, key = %caller.key_id, enabled = body.enabled, "semantic retrieval set");
    Ok(Json(service.semantic_view(&caller).await?))
}

/// Body of `POST /api/v1/ask`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question.
    pub question: String,
    /// How many passages (1 to 100; default 10).
    pub limit: Option<u32>,
    /// Only these memories (default: all of the instance).
    #[serde(default)]
    pub memories: Vec<String>,
    /// Passages per page, at most (default 1: distinct sources; 0: raw passages, ranked one
    /// by one).
    pub per_document: Option<u32>,
    /// Only pages (blog posts, files) with one of these labels (default: any).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Passages that answer a question, with citations (every role).
#[utoipa::path(post, path = "/api/v1/ask", request_body = AskRequest,
    responses((status = 200, body = AskView), (status = 422, body = ErrorBody)))]
async fn ask(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Body(body): Body<AskRequest>,
) -> Result<Json<AskView>, ApiError> {
    let passages =
        service.ask(&caller, &body.question, body.limit, body.per_document, &body.memories, &body.labels).await?;
    Ok(Json(AskView { passages }))
}

impl Service {
    /// Answers a question for a caller (the API's `ask` and MCP's `search`).
    pub async fn ask(
        &self,
        caller: &Caller,
        question: &str,
        limit: Option<u32>,
        per_document: Option<u32>,
        memories: &[String],
        labels: &[String],
    ) -> Result<Vec<PassageView>, ApiError> {
        let started = Instant::now();
        if question.trim().is_empty() {
            return Err(ApiError::invalid("the question is empty"));
        }
        let limit = limit.unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 100"));
        }
        let per_document = per_document.unwrap_or(1);
        if per_document > 100 {
            return Err(ApiError::invalid("per_document must be between 0 and 100"));
        }
        let mut instance = self.readers.get(&caller.instance).await?;
        let passages = instance.retrieve_with(question, memories, limit, per_document, labels).await??;
        self.metrics.ask(started.elapsed().as_secs_f64());
        Ok(passages.iter().map(PassageView::from).collect())
    }
}

/// Body of `POST /api/v1/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `admin`, `domain-owner` or `member`.
    pub role: Role,
    /// The instance (default: the one the request names).
    pub instance: Option<String>,
    /// Who or what holds the key.
    pub label: Option<String>,
}

/// Creates an API key; the answer is the only time the key is shown (operator).
#[utoipa::path(post, path = "/api/v1/keys", request_body = CreateKey, responses((status = 201, body = CreatedKey)))]
async fn create_key(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Body(body): Body<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    caller.require_operator()?;
    let instance = body.instance.unwrap_or(caller.instance);
    if !crate::runtime::valid_instance_name(&instance) {
        return Err(ApiError::invalid(format!("instance name '{instance}' must be 1 to 64 letters, digits, - or _")));
    }
    let created = service.host.create_key(&instance, body.role, body.label)?;
    let target = format!("{} ({})", created.id, created.role);
    service.host.audit(&instance, &caller.key_id, "key-create", &target, Ok(()));
    service.tenants.get(&instance).await?;
    tracing::info!(key = %created.id, tenant = %instance, role = %created.role, "key created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// Query of `GET /api/v1/keys`.
#[derive(Deserialize)]
struct KeyFilter {
    instance: Option<String>,
}

/// Every key, never the key text itself (operator).
#[utoipa::path(get, path = "/api/v1/keys", params(("instance" = Option<String>, Query, description = "only this instance")),
    responses((status = 200, body = [ApiKey])))]
async fn list_keys(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Query(filter): Query<KeyFilter>,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    caller.require_operator()?;
    Ok(Json(service.host.list_keys(filter.instance.as_deref())?))
}

/// Revokes a key at once (operator).
#[utoipa::path(delete, path = "/api/v1/keys/{id}", params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    caller.require_operator()?;
    let key = service.host.revoke_key(&id)?.ok_or_else(|| ApiError::not_found(format!("no key '{id}'")))?;
    service.host.audit(&key.instance, &caller.key_id, "key-revoke", &format!("{} ({})", key.id, key.role), Ok(()));
    tracing::info!(key = %id, "key revoked");
    Ok(Json(key))
}

/// Every indexed passage of the instance as JSON lines (operator; for audits).
#[utoipa::path(get, path = "/api/v1/export", responses((status = 200, description = "JSON lines", content_type = "application/x-ndjson")))]
async fn export(State(service): State<Arc<Service>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_operator()?;
    let instance = service.readers.get(&caller.instance).await?;
    let mut lines = String::new();
    for hit in instance.export()? {
        lines.push_str(&crate::report::export_line(&hit).to_string());
        lines.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
}

/// Query of `GET /api/v1/audit`.
#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

/// The newest entries of the instance's audit log, oldest first (admin, domain-owner).
#[utoipa::path(get, path = "/api/v1/audit", params(("limit" = Option<usize>, Query, description = "entries (default 100)")),
    responses((status = 200, body = [AuditEntry]), (status = 403, body = ErrorBody)))]
async fn audit(
    State(service): State<Arc<Service>>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require_manager()?;
    Ok(Json(service.host.audit_log(&caller.instance, query.limit.unwrap_or(100))?))
}

/// Prometheus metrics (no key needed: keep the port private or filter the path).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let mut counts = [0i64; 3];
    for namespace in service.tenants.names() {
        let status = match service.readers.get(&namespace).await {
            Ok(mut instance) => instance.status().await,
            Err(error) => Err(anyhow::anyhow!("{}", error.message())),
        };
        match status {
            Ok(status) => {
                for memory in &status.memories {
                    counts[match MemoryState::from(&memory.status) {
                        MemoryState::InProgress => 0,
                        MemoryState::Ingested => 1,
                        MemoryState::Error => 2,
                    }] += 1;
                }
            }
            Err(error) => tracing::warn!(tenant = %namespace, "no memory counts for /metrics: {error:#}"),
        }
    }
    service.metrics.set_memories(&[("IN_PROGRESS", counts[0]), ("INGESTED", counts[1]), ("ERROR", counts[2])]);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], service.metrics.render())
        .into_response()
}

/// The OpenAPI document of the service, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "connector-host", description = "Knowledge connector service: connections, memories, ask."),
    paths(sign_in, sign_out, whoami, connector, status, connect, disconnect, add_memories, memory, sync,
        auto_resync, semantic, set_semantic, ask, create_key, list_keys, revoke_key, export, audit, metrics),
    components(schemas(ErrorBody, StatusView, ConnectionView, MemoryView, IngestView, RejectedView, AskView,
        PassageView, WhoAmI, ConnectorView, FieldView, ApiKey, CreatedKey, Role, AuditEntry, SemanticRequest,
        SemanticStatusView, crate::semantic::MemoryCoverage, crate::semantic::SemanticView)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new("api_key", Vec::<String>::new())]);
    }
}
