//! The demo site: a small engineering handbook space (`DOCS`) with realistic storage-format bodies,
//! plus the MIT-licensed storage samples from real Confluence instances.

use crate::{ALL_SCOPES, FakeConfluence, TokenKind};

/// E-mail of the demo user.
pub const DEMO_EMAIL: &str = "demo.user@acme.example";
/// Classic API token of the demo user (use it on the site URL).
pub const DEMO_TOKEN: &str = "ATATT3xFfGF0demo-classic-token-0000000000";
/// Scoped API token of the demo user holding every scope the fake checks (use it on the gateway).
pub const DEMO_SCOPED_TOKEN: &str = "ATATT3xFfGF0demo-scoped-token-0000000000";
/// Key of the demo space.
pub const DEMO_SPACE_KEY: &str = "DOCS";
/// Name of the demo space (also the homepage title).
pub const DEMO_SPACE_NAME: &str = "Acme Engineering Handbook";

const HOMEPAGE: &str = include_str!("../fixtures/demo/homepage.xml");

/// The demo pages: (title, parent title or None for the homepage, body file contents).
const PAGES: &[(&str, Option<&str>, &str)] = &[
    ("Getting Started", None, include_str!("../fixtures/demo/getting-started.xml")),
    ("Local Development Setup", Some("Getting Started"), include_str!("../fixtures/demo/local-development.xml")),
    ("Architecture Overview", Some("Getting Started"), include_str!("../fixtures/demo/architecture-overview.xml")),
    ("Operations", None, include_str!("../fixtures/demo/operations.xml")),
    ("On-call Escalation Policy", Some("Operations"), include_str!("../fixtures/demo/on-call-escalation.xml")),
    ("Incident Response Runbook", Some("Operations"), include_str!("../fixtures/demo/incident-response.xml")),
    (
        "Postmortem Template",
        Some("Incident Response Runbook"),
        include_str!("../fixtures/demo/postmortem-template.xml"),
    ),
    ("How to Rotate the API Key", Some("Operations"), include_str!("../fixtures/demo/rotate-api-key.xml")),
    ("Database Backups and Restore", Some("Operations"), include_str!("../fixtures/demo/database-backups.xml")),
    ("Security", None, include_str!("../fixtures/demo/security.xml")),
    ("Access Control Policy", Some("Security"), include_str!("../fixtures/demo/access-control.xml")),
    ("Secrets Management", Some("Security"), include_str!("../fixtures/demo/secrets-management.xml")),
    ("Release Process", None, include_str!("../fixtures/demo/release-process.xml")),
    ("Versioning and Changelog", Some("Release Process"), include_str!("../fixtures/demo/versioning.xml")),
    ("Glossary", None, include_str!("../fixtures/demo/glossary.xml")),
];

const BLOGPOSTS: &[(&str, &str)] = &[
    ("Q1 Reliability Review", include_str!("../fixtures/demo/blog-q1-reliability.xml")),
    ("Introducing the New Deploy Pipeline", include_str!("../fixtures/demo/blog-deploy-pipeline.xml")),
];

/// Fills a running server with the demo user (classic [`DEMO_TOKEN`] and scoped
/// [`DEMO_SCOPED_TOKEN`]) and the `DOCS` space: homepage, 15 pages in a 3-level tree, 2 blog posts.
/// A few pages get a second version so `version.number` varies.
pub fn populate_demo(site: &FakeConfluence) {
    site.add_user(DEMO_EMAIL, DEMO_TOKEN, TokenKind::Classic);
    site.add_user(
        DEMO_EMAIL,
        DEMO_SCOPED_TOKEN,
        TokenKind::Scoped { scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect() },
    );
    site.add_space_with_homepage(DEMO_SPACE_KEY, DEMO_SPACE_NAME, HOMEPAGE);
    let mut ids: Vec<(&str, String)> = Vec::new();
    for (title, parent, body) in PAGES {
        let parent_id = parent.and_then(|p| ids.iter().find(|(t, _)| *t == p).map(|(_, id)| id.clone()));
        let id = site.add_page(DEMO_SPACE_KEY, parent_id.as_deref(), title, body);
        ids.push((title, id));
    }
    for (title, body) in BLOGPOSTS {
        site.add_blogpost(DEMO_SPACE_KEY, title, body);
    }
    // A couple of later edits, so versions and modification times differ from creation.
    for (title, id) in &ids {
        if matches!(*title, "On-call Escalation Policy" | "How to Rotate the API Key") {
            site.edit_page(id, None, None);
        }
    }
}

/// Starts a server pre-filled with the demo space and the demo user.
pub fn demo_site() -> anyhow::Result<FakeConfluence> {
    let site = FakeConfluence::start()?;
    populate_demo(&site);
    Ok(site)
}

/// Real storage-format bodies (MIT; see `fixtures/samples/SOURCES.md`) as (name, body).
pub fn sample_bodies() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "airbyte-cloud-personal-overview-98487",
            include_str!("../fixtures/samples/airbyte-cloud-personal-overview-98487.xml"),
        ),
        ("md2conf-images", include_str!("../fixtures/samples/md2conf-images.xml")),
        ("md2conf-panel", include_str!("../fixtures/samples/md2conf-panel.xml")),
        ("md2conf-tasklist", include_str!("../fixtures/samples/md2conf-tasklist.xml")),
    ]
}
