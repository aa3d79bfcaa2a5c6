//! Hostile and malformed input: each gets a clear error or is absorbed without loss;
//! nothing panics and nothing half-done is left behind.

use std::path::PathBuf;
use std::time::Duration;

use connector_host::bindings::types::ConnectorError;
use connector_host::runtime::{ConnectorHost, HostConfig};

use crate::support::*;

#[test]
fn hundreds_of_keys_and_personal_spaces() {
    let world = World::new();
    let personal = "~5fc9e78d2730d800760becc4";
    world.site.add_space(personal, "Ada's space");
    world.site.add_page(personal, None, "Scratchpad", &body("Notes", "the narwhal notebook"));
    let connection = world.connect();
    let mut keys: Vec<String> = (0..199).map(|n| format!("NOPE{n}")).collect();
    keys.push(personal.to_string());
    world.site.reset_requests();
    let output = world.run(&["ingest", "--connection", &connection, "--spaces", &keys.join(","), "--json"]);
    assert!(!output.status.success(), "199 unknown keys are ERROR memories");
    let document = parse(&String::from_utf8_lossy(&output.stdout));
    let memories = document["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 200);
    assert_eq!(memories.iter().filter(|m| m["status"] == "ERROR").count(), 199);
    let lookups = world.site.requests().into_iter().filter(|r| r.path.ends_with("/api/v2/spaces")).count();
    assert!(lookups <= 4, "keys are resolved in batches, not one by one: {lookups}");
    assert_eq!(world.ask("narwhal notebook")[0]["space_key"], personal);
}

#[test]
fn control_characters_in_credentials_are_refused() {
    let world = World::new();
    let origin = world.site.origin();
    for (email, token, expected) in [
        (EMAIL, "abc\u{7}def", "control characters"),
        (EMAIL, "abc def", "spaces or control characters"),
        (EMAIL, "   ", "API token is empty"),
        ("ada@acme.example\u{1b}[31m", TOKEN, "e-mail is not valid"),
        ("ada @acme.example", TOKEN, "e-mail is not valid"),
    ] {
        let output = world.run_with_token(
            token,
            &["connect", "--site", &origin, "--email", email, "--token-env", "CONFLUENCE_TOKEN", "--allow-loopback"],
        );
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{email:?}/{token:?}: {stderr}");
        assert!(!stderr.contains(token) || token.trim().is_empty(), "the token is not echoed: {stderr}");
    }
}

#[test]
fn hostile_content_is_indexed_without_loss() {
    let world = World::new();
    world.site.add_space("EVIL", "Evil Space");
    let deep = format!("{}deepword{}", "<div>".repeat(100_000), "</div>".repeat(100_000));
    let huge = format!("{}<p>finalword</p>", "<p>filler text for a very large page</p>".repeat((20 << 20) / 40));
    let pages = [
        ("Unclosed", "<p>alpha <b>bravoword <i>charlie</p><ul><li>dangling".to_string()),
        ("Entities", "<p>&bogus; &nbsp;entityword &mdash; &#128231; &#xZZ; &</p>".to_string()),
        ("Cdata", "<ac:structured-macro ac:name=\"code\"><ac:plain-text-body><![CDATA[cdataword ]]]]><![CDATA[> tail]]></ac:plain-text-body></ac:structured-macro>".to_string()),
        ("Mystery", "<ac:structured-macro ac:name=\"mystery-vendor-macro\"><ac:parameter ac:name=\"x\">hidden</ac:parameter><ac:rich-text-body><p>mysteryword</p></ac:rich-text-body></ac:structured-macro>".to_string()),
        ("Deep", deep),
        ("Huge", huge),
    ];
    for (title, storage) in &pages {
        world.site.add_page("EVIL", None, title, storage);
    }
    let connection = world.connect();
    let ingested = world.ingest(&connection, "EVIL");
    assert_eq!(ingested["memories"][0]["status"], "INGESTED", "{ingested}");
    assert_eq!(ingested["memories"][0]["pages"], 7);
    for (word, title) in [
        ("bravoword", "Unclosed"),
        ("entityword", "Entities"),
        ("cdataword", "Cdata"),
        ("mysteryword", "Mystery"),
        ("deepword", "Deep"),
        ("finalword", "Huge"),
    ] {
        let passages = world.ask(word);
        assert_eq!(passages.first().map(|p| p["title"].clone()), Some(title.into()), "{word}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_resolving_to_private_addresses_are_refused() {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string();
    let resolved: Vec<_> =
        tokio::net::lookup_host((hostname.as_str(), 443)).await.expect("the machine's name resolves").collect();
    assert!(
        resolved.iter().all(|a| connector_host::capabilities::http::is_forbidden_address(a.ip())),
        "this test needs the machine's own name to resolve to a local address (/etc/hosts): {resolved:?}"
    );
    let data = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(data.path());
    config.component = Some(PathBuf::from(env!("HOSTILE_COMPONENT_PATH")));
    config.cache_dir = Some(cache_dir());
    config.call_timeout = Duration::from_secs(20);
    let host = ConnectorHost::open(config).unwrap();
    let mut instance = host.instance("dns").await.unwrap();
    let origin = format!("https://{hostname}:9");
    let outcome = instance
        .connect(vec![("origin".into(), origin.clone()), ("url".into(), format!("{origin}/wiki"))], Default::default())
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Err(ConnectorError::Network(m)) if m.contains("DestinationIpProhibited")),
        "{outcome:?}"
    );
}
