//! MCP at `/mcp`: a real MCP client (the official Rust SDK over streamable HTTP) lists the
//! tools, searches with citations and fetches a page; a request without a key is refused.

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::service_support::*;
use crate::support::*;

fn arguments(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_searches_and_fetches_cited_pages() {
    let world = World::new();
    world.site.add_space("HR", "People");
    let page = world.site.add_page(
        "HR",
        None,
        "Parental leave",
        "<h2>How long</h2><p>Parents take sixteen weeks of paid leave.</p><h2>How to apply</h2><p>Tell your manager a month ahead.</p>",
    );
    let served = Served::start(world.data_dir(), &[]);
    let admin = Api::new(&served.url, Some(&create_key(&world, "acme", "admin")));
    let member_key = create_key(&world, "acme", "member");
    let connection = admin.connect(&world).await;
    let (_, added) = admin.post("/api/v1/memories", json!({"connection": connection, "spaces": "HR"})).await;
    admin.settled(added["memories"][0]["id"].as_str().unwrap()).await;

    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", served.url)).auth_header(member_key);
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("MCP initialize");
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"search") && names.contains(&"fetch"), "{names:?}");

    let result = client
        .call_tool(
            CallToolRequestParams::new("search")
                .with_arguments(arguments(json!({"query": "how long is parental leave", "limit": 3}))),
        )
        .await
        .expect("tools/call search");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let structured = result.structured_content.clone().expect("structured content");
    let first = &structured["results"][0];
    assert_eq!(first["id"], page.as_str(), "{structured}");
    assert!(first["text"].as_str().unwrap().contains("sixteen weeks"), "{structured}");
    assert!(first["url"].as_str().unwrap().contains(&format!("/wiki/spaces/HR/pages/{page}")), "{structured}");
    assert!(first["breadcrumb"].as_str().unwrap().contains("Parental leave"), "{structured}");
    let text = result.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect::<String>();
    assert!(text.contains("sixteen weeks"), "the text content carries the passages too: {text}");

    let fetched = client
        .call_tool(CallToolRequestParams::new("fetch").with_arguments(arguments(json!({"id": page}))))
        .await
        .expect("tools/call fetch");
    let document = fetched.structured_content.expect("structured content");
    assert_eq!(document["title"], "Parental leave");
    let body = document["text"].as_str().unwrap();
    assert!(body.contains("sixteen weeks") && body.contains("a month ahead"), "the whole page: {document}");
    assert!(document["url"].as_str().unwrap().contains(&format!("/pages/{page}")), "{document}");

    let missing = client
        .call_tool(CallToolRequestParams::new("fetch").with_arguments(arguments(json!({"id": "999999"}))))
        .await
        .expect("tools/call fetch");
    assert_eq!(missing.is_error, Some(true), "{missing:?}");
    client.cancel().await.ok();

    // Without a key, the endpoint answers 401 before any MCP message is read.
    let refused = reqwest::Client::new()
        .post(format!("{}/mcp", served.url))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}
