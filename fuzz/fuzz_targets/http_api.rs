//! The service's HTTP surface parses untrusted requests: routing, API keys and session
//! cookies, content types, JSON bodies, query strings and path segments. Whatever arrives,
//! the real router (the real host and component behind it, in-process) answers with a
//! status below 500 and the API's error shape, and never panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::body::Body;
use connector_host::keys::Role;
use connector_host::runtime::{ConnectorHost, HostConfig};
use connector_host::service::{Service, ServeSettings};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// What one request is made of; paths and headers come from the routes the API has so
/// that the fuzzer reaches the handlers, with fuzzed parts in between.
#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    route: Route,
    segment: String,
    query: Option<String>,
    credential: Credential,
    content_type: ContentType,
    origin: Option<String>,
    body: Vec<u8>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Options,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Route {
    Session,
    WhoAmI,
    Connector,
    Status,
    Connections,
    Connection,
    Memories,
    Memory,
    Sync,
    AutoResync,
    Ask,
    Keys,
    Key,
    Export,
    Audit,
    Mcp,
    Healthz,
    OpenApi,
    Dashboard,
    Raw,
}

#[derive(Arbitrary, Debug)]
enum Credential {
    None,
    Admin,
    Member,
    Operator,
    Bearer(String),
    Cookie(String),
    AdminCookie,
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    None,
    Json,
    Other(String),
}

/// A service on a scratch data directory with an admin and a member key of tenant `acme`.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: Arc<Service>,
    admin: String,
    member: String,
    _data: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = tempfile::tempdir().expect("scratch directory");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut host_config = HostConfig::new(data.path());
        // No site is reachable: a fuzzed connect must be refused by the host, never dial out.
        host_config.allowed_sites = vec!["no-site-is-allowed.invalid".into()];
        let host = ConnectorHost::open(host_config).expect("open the host");
        let admin = host.create_key("acme", Role::Admin, None).expect("admin key").key;
        let member = host.create_key("acme", Role::Member, None).expect("member key").key;
        let settings = ServeSettings {
            allowed_sites: Some(vec!["no-site-is-allowed.invalid".into()]),
            max_body_bytes: Some(64 << 10),
            ..ServeSettings::default()
        };
        let config = settings.resolve(ServeSettings::default()).expect("config");
        let service = runtime.block_on(async {
            let service = Service::new(host, config).expect("service");
            service.load_tenants().await.expect("tenants");
            service
        });
        Fixture { runtime, service, admin, member, _data: data }
    })
}

fn path(route: Route, segment: &str) -> String {
    match route {
        Route::Session => "/api/v1/session".into(),
        Route::WhoAmI => "/api/v1/whoami".into(),
        Route::Connector => "/api/v1/connector".into(),
        Route::Status => "/api/v1/status".into(),
        Route::Connections => "/api/v1/connections".into(),
        Route::Connection => format!("/api/v1/connections/{segment}"),
        Route::Memories => "/api/v1/memories".into(),
        Route::Memory => format!("/api/v1/memories/{segment}"),
        Route::Sync => format!("/api/v1/memories/{segment}/sync"),
        Route::AutoResync => format!("/api/v1/memories/{segment}/auto-resync"),
        Route::Ask => "/api/v1/ask".into(),
        Route::Keys => "/api/v1/keys".into(),
        Route::Key => format!("/api/v1/keys/{segment}"),
        Route::Export => "/api/v1/export".into(),
        Route::Audit => "/api/v1/audit".into(),
        Route::Mcp => "/mcp".into(),
        Route::Healthz => "/healthz".into(),
        Route::OpenApi => "/openapi.json".into(),
        Route::Dashboard => format!("/{segment}"),
        Route::Raw => segment.to_string(),
    }
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let fixture = fixture();
    let mut uri = path(input.route, &input.segment);
    if let Some(query) = &input.query {
        uri.push('?');
        uri.push_str(query);
    }
    let method = match input.method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Patch => http::Method::PATCH,
        Method::Options => http::Method::OPTIONS,
    };
    let mut request = Request::builder().method(method).uri(uri.as_str()).header("host", "127.0.0.1:7878");
    request = match &input.credential {
        Credential::None => request,
        Credential::Admin => request.header("authorization", format!("Bearer {}", fixture.admin)),
        Credential::Member => request.header("authorization", format!("Bearer {}", fixture.member)),
        Credential::Operator => request
            .header("authorization", format!("Bearer {}", fixture.service.operator_token))
            .header("x-connector-instance", "acme"),
        Credential::Bearer(text) => request.header("authorization", format!("Bearer {text}")),
        Credential::Cookie(text) => request.header("cookie", text.as_str()),
        Credential::AdminCookie => request.header("cookie", format!("connector_session={}", fixture.admin)),
    };
    request = match &input.content_type {
        ContentType::None => request,
        ContentType::Json => request.header("content-type", "application/json"),
        ContentType::Other(text) => request.header("content-type", text.as_str()),
    };
    if let Some(origin) = &input.origin {
        request = request.header("origin", origin.as_str());
    }
    // Requests the HTTP layer would never let through (bad URIs or header values) are not ours to parse.
    let Ok(request) = request.body(Body::from(input.body)) else { return };
    let router = connector_host::service::api::router(fixture.service.clone());
    let (status, body) = fixture.runtime.block_on(async {
        let response = router.oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        (status, body)
    });
    assert!(
        status.as_u16() < 500 || status.as_u16() == 503,
        "{:?} {uri}: {status} {}",
        input.method,
        String::from_utf8_lossy(&body)
    );
});
