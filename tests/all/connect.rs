//! Connecting: URL forms, classic and scoped tokens, bad credentials, missing scopes, bad input.

use base64::Engine as _;

use crate::support::*;
use fake_confluence::TokenKind;

#[test]
fn every_pasted_url_form_reaches_the_same_connection() {
    let world = World::new();
    let origin = world.site.origin();
    let port = world.site.port();
    let forms = [
        origin.clone(),
        format!("{origin}/"),
        format!("{origin}/wiki"),
        format!("{origin}/wiki/"),
        format!("{origin}/wiki/spaces/ENG/pages/123456/Some+Title"),
        format!("{origin}/wiki/spaces/ENG/overview?focus=1#top"),
        format!("127.0.0.1:{port}/wiki"),
        format!("HTTP://127.0.0.1:{port}/WIKI/"),
    ];
    let mut ids = Vec::new();
    for form in &forms {
        let connection = world.json(&[
            "connect",
            "--site",
            form,
            "--email",
            EMAIL,
            "--token-env",
            "CONFLUENCE_TOKEN",
            "--allow-loopback",
        ]);
        assert_eq!(connection["site"], origin.as_str(), "{form}");
        assert_eq!(connection["access"], "classic token", "{form}");
        ids.push(connection["id"].as_str().unwrap().to_string());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "reconnecting the same account keeps one connection: {ids:?}");
    assert_eq!(world.status()["connections"].as_array().unwrap().len(), 1);
}

/// Connects with the scoped token, the gateway pointed at the fake; returns the connection.
fn connect_scoped(world: &World, site: &str) -> serde_json::Value {
    let gateway = world.site.gateway_origin();
    let args = ["connect", "--site", site, "--email", EMAIL, "--token-env", "CONFLUENCE_TOKEN", "--allow-loopback"];
    let output = world.run_with_token(SCOPED_TOKEN, &[&args[..], &["--gateway", &gateway, "--json"]].concat());
    assert!(output.status.success(), "{}", text(&output));
    parse(&String::from_utf8_lossy(&output.stdout))
}

#[test]
fn scoped_tokens_are_detected_and_use_the_gateway() {
    let world = World::new();
    let origin = world.site.origin();
    let connection = connect_scoped(&world, &origin);
    assert_eq!(connection["access"], "scoped token via API gateway");

    world.site.add_space("ENG", "Engineering");
    world.site.add_page("ENG", None, "Gateway page", &body("Routing", "requests travel through the gateway prefix"));
    world.site.reset_requests();
    let ingest = world.ingest(connection["id"].as_str().unwrap(), "ENG");
    assert_eq!(ingest["memories"][0]["status"], "INGESTED", "{ingest}");
    let prefix = format!("/ex/confluence/{}/", world.site.cloud_id());
    let requests = world.site.requests();
    assert!(!requests.is_empty() && requests.iter().all(|r| r.path.starts_with(&prefix)), "{requests:?}");
}

#[test]
fn a_scoped_token_with_an_unreachable_gateway_says_what_happened() {
    let world = World::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gateway = format!("http://127.0.0.1:{closed}");
    let site = world.site.origin();
    let args = ["connect", "--site", &site, "--email", EMAIL, "--token-env", "CONFLUENCE_TOKEN", "--allow-loopback"];
    let output = world.run_with_token(SCOPED_TOKEN, &[&args[..], &["--gateway", &gateway]].concat());
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused the e-mail and API token as a classic token"), "{stderr}");
    assert!(
        stderr.contains(&format!("the API gateway {gateway}")) && stderr.contains("could not be reached"),
        "{stderr}"
    );
    assert!(!stderr.contains("check the e-mail"), "the credentials are not blamed: {stderr}");
}

#[test]
fn the_gateway_form_is_accepted_as_given() {
    let world = World::new();
    let base = world.site.gateway_base();
    let connection = connect_scoped(&world, &base);
    assert_eq!(connection["access"], "scoped token via API gateway");
}

#[test]
fn wrong_credentials_are_refused_and_nothing_is_stored() {
    let world = World::new();
    let origin = world.site.origin();
    for (email, token) in [(EMAIL, "not-the-token"), ("someone@else.example", TOKEN)] {
        let output = world.run_with_token(
            token,
            &["connect", "--site", &origin, "--email", email, "--token-env", "CONFLUENCE_TOKEN", "--allow-loopback"],
        );
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("rejected the e-mail and API token") && stderr.contains(email), "{stderr}");
        assert!(stderr.contains("expired or been revoked"), "{stderr}");
    }
    assert!(world.status()["connections"].as_array().unwrap().is_empty());
}

#[test]
fn missing_scopes_are_named() {
    let world = World::new();
    world.site.add_user(
        "limited@acme.example",
        "scoped-without-pages",
        TokenKind::Scoped { scopes: vec!["read:content-details:confluence".into(), "read:space:confluence".into()] },
    );
    let origin = world.site.origin();
    let gateway = world.site.gateway_origin();
    let output = world.run_with_token(
        "scoped-without-pages",
        &[
            "connect",
            "--site",
            &origin,
            "--email",
            "limited@acme.example",
            "--token-env",
            "CONFLUENCE_TOKEN",
            "--allow-loopback",
            "--gateway",
            &gateway,
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing scopes") && stderr.contains("read:page:confluence"), "{stderr}");
    assert!(!stderr.contains("read:space:confluence"), "only the missing scope is named: {stderr}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let world = World::new();
    let origin = world.site.origin();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--site".into(), "".into(), "--email".into(), EMAIL.into()], "site URL is empty"),
        (
            vec!["--site".into(), "ftp://acme.atlassian.net".into(), "--email".into(), EMAIL.into()],
            "unsupported URL scheme",
        ),
        (
            vec!["--site".into(), "https://me:pw@acme.atlassian.net".into(), "--email".into(), EMAIL.into()],
            "user name and password",
        ),
        (vec!["--site".into(), "https://169.254.169.254/latest".into(), "--email".into(), EMAIL.into()], "IP address"),
        // A loopback site is the host's to refuse, without --allow-loopback.
        (vec!["--site".into(), origin.clone(), "--email".into(), EMAIL.into()], "need --allow-loopback"),
        (
            vec!["--site".into(), origin.clone(), "--email".into(), "".into(), "--allow-loopback".into()],
            "e-mail is empty",
        ),
        (
            vec!["--site".into(), origin.clone(), "--email".into(), "not an email".into(), "--allow-loopback".into()],
            "e-mail is not valid",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["connect".to_string()];
        full.extend(args.clone());
        full.extend(["--token-env".to_string(), "CONFLUENCE_TOKEN".to_string()]);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let output = world.run(&full);
        assert!(!output.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: expected '{expected}' in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let output = world.run(&[
        "connect",
        "--site",
        &origin,
        "--email",
        EMAIL,
        "--token-env",
        "NO_SUCH_VARIABLE_SET",
        "--allow-loopback",
    ]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("NO_SUCH_VARIABLE_SET is not set"));
    assert!(world.status()["connections"].as_array().unwrap().is_empty(), "nothing half-connected");
}

#[test]
fn the_token_never_appears_in_output_logs_or_storage() {
    let world = World::new();
    world.site.add_space("ENG", "Engineering");
    world.site.add_page("ENG", None, "Secrets", &body("Storage", "tokens are encrypted at rest"));
    let mut outputs = Vec::new();
    let origin = world.site.origin();
    for args in [
        vec![
            "connect",
            "--site",
            origin.as_str(),
            "--email",
            EMAIL,
            "--token-env",
            "CONFLUENCE_TOKEN",
            "--allow-loopback",
            "--json",
        ],
        vec!["ingest", "--connection", "conn-1", "--spaces", "ENG", "--json"],
        vec!["status", "--json"],
        vec!["status"],
        vec!["ask", "where are tokens stored", "--json"],
        vec!["disconnect", "conn-1"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_connector-host"))
            .arg("--data-dir")
            .arg(world.data_dir())
            .args(&args)
            .env("CONFLUENCE_TOKEN", TOKEN)
            // Everything of ours and of the HTTP stack at the most verbose level.
            .env("CONNECTOR_HOST_LOG", "connector_host=trace,wasmtime_wasi_http=trace,hyper=trace,info")
            .env("CONNECTOR_HOST_CACHE_DIR", cache_dir())
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        outputs.push(text(&output));
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"));
    for output in &outputs {
        assert!(!output.contains(TOKEN) && !output.contains(&basic), "token leaked:\n{output}");
    }
    let mut files = vec![world.data_dir().to_path_buf()];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let haystack = String::from_utf8_lossy(&bytes);
            assert!(
                !haystack.contains(TOKEN) && !haystack.contains(&basic),
                "token stored in plaintext in {}",
                path.display()
            );
            scanned += 1;
        }
    }
    assert!(scanned > 3, "the data directory holds the store, the key and the index");
}

#[test]
fn connect_takes_the_fields_the_connector_describes() {
    let world = World::new();
    let described = world.json(&["describe"]);
    let names: Vec<&str> =
        described["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["site", "token", "email", "attachment-max-mb", "attachment-max-chars", "gateway"]);
    assert_eq!(described["fields"][1]["secret"], true);
    let human = world.ok(&["describe"]);
    assert!(human.contains("--secret-env token=VARIABLE") && human.contains("--field site=…"), "{human}");

    // The generic form, for whatever connector the host runs.
    let origin = world.site.origin();
    let site = format!("site={origin}");
    let email = format!("email={EMAIL}");
    let generic = ["connect", "--field", &site, "--field", &email, "--secret-env", "token=CONFLUENCE_TOKEN"];
    let connection = world.json(&[&generic[..], &["--allow-loopback"]].concat());
    assert_eq!(connection["site"], origin.as_str());
    // A classic token's connection uses the site alone: the API gateway, asked for in case
    // the token was scoped, is no longer granted.
    assert_eq!(connection["origins"], serde_json::json!([origin]), "{connection}");

    // What it refuses, before the connector sees anything.
    let secret_on_the_command_line = world.run(&[&generic[..], &["--field", "token=hunter2"]].concat());
    assert!(!secret_on_the_command_line.status.success());
    let said = text(&secret_on_the_command_line);
    assert!(said.contains("token is secret") && !said.contains("hunter2"), "{said}");
    let unknown = world.run(&[&generic[..], &["--field", "colour=red"]].concat());
    assert!(
        text(&unknown).contains("no field 'colour' (its fields: site, token, email, attachment-max-mb"),
        "{}",
        text(&unknown)
    );
    let missing = world.run(&["connect", "--field", &site, "--secret-env", "token=CONFLUENCE_TOKEN"]);
    assert!(text(&missing).contains("also needs --field email=… (Atlassian-account e-mail"), "{}", text(&missing));
    let unset = world.run(&["connect", "--field", &site, "--field", &email, "--secret-env", "token=NOT_SET_ANYWHERE"]);
    assert!(text(&unset).contains("NOT_SET_ANYWHERE is not set: it should hold the API token"), "{}", text(&unset));
}
