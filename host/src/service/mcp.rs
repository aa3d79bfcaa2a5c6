//! The Model Context Protocol at `/mcp` (streamable HTTP, Bearer API key): a chat
//! assistant's `search` over the caller's memories and `fetch` of one page's text.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::service::Service;
use crate::service::auth::{Caller, authenticate};
use crate::service::error::ApiError;

/// Arguments of `search`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// The question or keywords.
    pub query: String,
    /// How many passages (1 to 100; default 10).
    pub limit: Option<u32>,
    /// Only these memory ids (default: every memory the key can read).
    pub memories: Option<Vec<String>>,
}

/// A cited passage.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SearchHit {
    /// Page id: pass it to `fetch` for the whole page.
    pub id: String,
    /// Page title.
    pub title: String,
    /// Link that opens the page.
    pub url: String,
    /// Space › ancestors › page › heading.
    pub breadcrumb: String,
    /// The passage.
    pub text: String,
    /// The memory it comes from.
    pub memory: String,
}

/// What `search` returns.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SearchResults {
    /// Best first.
    pub results: Vec<SearchHit>,
}

/// Arguments of `fetch`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FetchArgs {
    /// A page id from `search`.
    pub id: String,
}

/// What `fetch` returns: the page's indexed text.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Document {
    /// Page id.
    pub id: String,
    /// Page title.
    pub title: String,
    /// Link that opens the page.
    pub url: String,
    /// The page's text as indexed, section by section.
    pub text: String,
    /// The memory it comes from.
    pub memory: String,
}

/// The MCP server of one request (stateless: the caller comes with each request).
#[derive(Clone)]
pub struct KnowledgeTools {
    service: Arc<Service>,
    tool_router: ToolRouter<KnowledgeTools>,
}

fn caller(parts: &axum::http::request::Parts) -> Result<Caller, String> {
    parts.extensions.get::<Caller>().cloned().ok_or_else(|| "the request carries no API key".to_string())
}

#[tool_router]
impl KnowledgeTools {
    fn new(service: Arc<Service>) -> Self {
        KnowledgeTools { service, tool_router: Self::tool_router() }
    }

    /// Searches the instance's memories; returns cited passages.
    #[tool(
        name = "search",
        description = "Search the connected knowledge (the sources ingested as memories, e.g. Confluence spaces). Returns the best passages with page title, URL, breadcrumb and text; pass a result's id to fetch for the whole page."
    )]
    async fn search(
        &self,
        Parameters(args): Parameters<SearchArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> Result<Json<SearchResults>, String> {
        let caller = caller(&parts)?;
        let memories = args.memories.unwrap_or_default();
        let passages =
            self.service.ask(&caller, &args.query, args.limit, None, &memories, &[]).await.map_err(describe)?;
        Ok(Json(SearchResults {
            results: passages
                .into_iter()
                .map(|p| SearchHit {
                    id: p.page_id,
                    title: p.title,
                    url: p.url,
                    breadcrumb: p.breadcrumb,
                    text: p.text,
                    memory: p.memory,
                })
                .collect(),
        }))
    }

    /// Returns one page's indexed text with its URL.
    #[tool(
        name = "fetch",
        description = "Fetch the whole indexed text of one page by the id a search result gave, with its title and URL."
    )]
    async fn fetch(
        &self,
        Parameters(args): Parameters<FetchArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> Result<Json<Document>, String> {
        let caller = caller(&parts)?;
        self.service
            .document(&caller, &args.id)
            .await
            .map_err(describe)?
            .map(Json)
            .ok_or_else(|| format!("no page with id '{}' in the memories this key can read", args.id))
    }
}

fn describe(error: ApiError) -> String {
    error.message().to_string()
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for KnowledgeTools {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("connector-host", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Answers from the organisation's connected knowledge: call search with the user's question, cite the \
             returned URLs, and fetch a page when a passage is not enough."
                .into(),
        );
        info
    }
}

impl Service {
    /// The indexed text of one page of the caller's memories, with its title and URL.
    pub async fn document(&self, caller: &Caller, page_id: &str) -> Result<Option<Document>, ApiError> {
        let status = self.status_view(caller).await?;
        let mut instance = self.readers.get(&caller.instance).await?;
        for memory in &status.memories {
            let chunks = instance.document(&memory.id, page_id)?;
            let Some(first) = chunks.first() else { continue };
            let title = first.title.clone();
            let mut text = String::new();
            let mut heading = String::new();
            for chunk in &chunks {
                if chunk.heading != heading && !chunk.heading.is_empty() {
                    text.push_str(&format!("\n## {}\n", chunk.heading));
                    heading = chunk.heading.clone();
                }
                text.push_str(chunk.text.trim());
                text.push('\n');
            }
            // The connector builds citation URLs at answer time: ask it for this page's.
            let passages = instance.retrieve(&title, std::slice::from_ref(&memory.id), 100).await??;
            let url = passages.iter().find(|p| p.document_id == page_id).map(|p| p.url.clone()).unwrap_or_default();
            let text = text.trim().to_string();
            return Ok(Some(Document { id: page_id.to_string(), title, url, text, memory: memory.id.clone() }));
        }
        Ok(None)
    }
}

async fn require_key(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match authenticate(&parts, &service) {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

/// `/mcp`, behind the API-key check.
pub fn routes(service: Arc<Service>) -> Router<Arc<Service>> {
    // Stateless: every request carries its key, so no session has to remember a caller.
    // Host checks guard unauthenticated local servers against DNS rebinding; this endpoint
    // needs a key, and a rebinding page never has one.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(service.config.max_body_bytes)
        .with_cancellation_token(service.shutdown.child_token())
        .disable_allowed_hosts();
    let factory_service = service.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(KnowledgeTools::new(factory_service.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new().nest_service("/mcp", mcp).layer(middleware::from_fn_with_state(service, require_key))
}
