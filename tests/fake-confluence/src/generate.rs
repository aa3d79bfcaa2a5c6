//! Deterministic bulk content for benchmarks and manual runs: spaces with thousands of pages of
//! realistic storage-format bodies (headings, paragraphs, lists, tables, a code macro, an info
//! panel), a three-level page tree and a few blog posts, plus bulk edits for sync benchmarks.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::FakeConfluence;
use crate::state::{Kind, Status, mix};

/// Smallest generated body, in bytes.
pub const MIN_BODY_BYTES: usize = 2 * 1024;
/// Largest generated body, in bytes.
pub const MAX_BODY_BYTES: usize = 20 * 1024;

/// A tiny SplitMix64 generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        crate::state::next_random(&mut self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const AREAS: &[&str] = &[
    "Payments",
    "Search",
    "Identity",
    "Billing",
    "Notifications",
    "Data Platform",
    "Mobile",
    "Checkout",
    "Observability",
    "Storage",
    "Networking",
    "Onboarding",
    "Reporting",
    "Security",
    "Release Engineering",
    "Customer Support",
];

const DOC_TYPES: &[&str] = &[
    "Runbook",
    "Design Notes",
    "How-to",
    "Architecture Decision",
    "Meeting Notes",
    "Troubleshooting Guide",
    "Onboarding Checklist",
    "Postmortem",
    "Requirements",
    "FAQ",
    "Release Notes",
    "Service Overview",
];

const SUBJECTS: &[&str] = &[
    "The deployment pipeline",
    "Each service owner",
    "The on-call engineer",
    "Our ingestion worker",
    "The API gateway",
    "The nightly batch job",
    "The feature flag service",
    "The primary database cluster",
    "The search indexer",
    "The billing reconciler",
    "Every pull request",
    "The incident commander",
    "The cache layer",
    "The message broker",
];

const VERBS: &[&str] = &[
    "validates",
    "retries",
    "publishes",
    "monitors",
    "rotates",
    "archives",
    "throttles",
    "replicates",
    "documents",
    "reviews",
    "migrates",
    "aggregates",
    "schedules",
    "encrypts",
];

const OBJECTS: &[&str] = &[
    "the schema migration",
    "failed webhook deliveries",
    "the weekly capacity report",
    "customer-facing error budgets",
    "the credentials stored in the vault",
    "stale feature branches",
    "the audit log entries",
    "cross-region snapshots",
    "the dependency manifest",
    "latency percentiles per endpoint",
    "the runbook checklist",
    "pending refund requests",
    "tenant configuration changes",
    "the release candidate build",
];

const TAILS: &[&str] = &[
    "before each release",
    "every fifteen minutes",
    "when the error rate exceeds two percent",
    "during the maintenance window",
    "after the change advisory board signs off",
    "unless the kill switch is enabled",
    "for every tenant in the region",
    "as part of the quarterly review",
    "whenever a new version is tagged",
    "within one business day",
];

const CODE_LANGS: &[(&str, &str)] = &[
    (
        "bash",
        "#!/usr/bin/env bash\nset -euo pipefail\nkubectl -n {svc} rollout status deploy/{svc} --timeout=120s\nkubectl -n {svc} get pods -l app={svc} -o wide\ncurl -fsS https://{svc}.internal/healthz | jq .\n",
    ),
    (
        "python",
        "import requests\n\ndef check_{svc}(base_url: str) -> bool:\n    resp = requests.get(f\"{base_url}/healthz\", timeout=5)\n    resp.raise_for_status()\n    return resp.json().get(\"status\") == \"ok\"\n",
    ),
    (
        "sql",
        "SELECT tenant_id, count(*) AS failures\nFROM {svc}_events\nWHERE status = 'failed'\n  AND created_at > now() - interval '1 day'\nGROUP BY tenant_id\nORDER BY failures DESC\nLIMIT 20;\n",
    ),
    (
        "yaml",
        "service: {svc}\nreplicas: 3\nresources:\n  requests:\n    cpu: 250m\n    memory: 512Mi\nalerts:\n  - name: {svc}-error-rate\n    threshold: 0.02\n",
    ),
    (
        "rust",
        "pub fn backoff(attempt: u32) -> std::time::Duration {\n    let base = 250u64.saturating_mul(1 << attempt.min(6));\n    std::time::Duration::from_millis(base.min(30_000))\n}\n",
    ),
];

fn sentence(r: &mut Rng, out: &mut String) {
    let _ = write!(out, "{} {} {} {}.", r.pick(SUBJECTS), r.pick(VERBS), r.pick(OBJECTS), r.pick(TAILS));
}

fn paragraph(r: &mut Rng, out: &mut String) {
    out.push_str("<p>");
    let n = 2 + r.below(4);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        match r.below(6) {
            0 => {
                let _ = write!(
                    out,
                    "See <ac:link><ri:page ri:content-title=\"{} {}\" /></ac:link> for details.",
                    r.pick(AREAS),
                    r.pick(DOC_TYPES)
                );
            }
            1 => {
                out.push_str("<strong>Important:</strong> ");
                sentence(r, out);
            }
            2 => {
                let _ = write!(
                    out,
                    "Set <code>{}_TIMEOUT_MS</code> to a value below 30000.",
                    r.pick(AREAS).to_uppercase().replace(' ', "_")
                );
            }
            _ => sentence(r, out),
        }
    }
    out.push_str("</p>");
}

fn list(r: &mut Rng, out: &mut String) {
    let ordered = r.below(2) == 0;
    out.push_str(if ordered { "<ol>" } else { "<ul>" });
    for _ in 0..3 + r.below(4) {
        out.push_str("<li><p>");
        sentence(r, out);
        out.push_str("</p></li>");
    }
    out.push_str(if ordered { "</ol>" } else { "</ul>" });
}

fn table(r: &mut Rng, out: &mut String) {
    out.push_str("<table data-table-width=\"760\" data-layout=\"default\"><colgroup><col style=\"width: 190.0px;\" /><col style=\"width: 190.0px;\" /><col style=\"width: 380.0px;\" /></colgroup><tbody>");
    out.push_str("<tr><th><p><strong>Component</strong></p></th><th><p><strong>Owner</strong></p></th><th><p><strong>Notes</strong></p></th></tr>");
    for _ in 0..2 + r.below(4) {
        let _ = write!(out, "<tr><td><p>{}</p></td><td><p>{} team</p></td><td><p>", r.pick(AREAS), r.pick(AREAS));
        sentence(r, out);
        out.push_str("</p></td></tr>");
    }
    out.push_str("</tbody></table>");
}

fn code(r: &mut Rng, out: &mut String) {
    let (lang, tpl) = CODE_LANGS[r.below(CODE_LANGS.len())];
    let svc = r.pick(AREAS).to_lowercase().replace(' ', "-");
    let _ = write!(
        out,
        "<ac:structured-macro ac:name=\"code\" ac:schema-version=\"1\" ac:macro-id=\"{:08x}-code\"><ac:parameter ac:name=\"language\">{lang}</ac:parameter><ac:parameter ac:name=\"linenumbers\">true</ac:parameter><ac:plain-text-body><![CDATA[{}]]></ac:plain-text-body></ac:structured-macro>",
        r.next() as u32,
        tpl.replace("{svc}", &svc)
    );
}

fn info_panel(r: &mut Rng, out: &mut String) {
    let _ = write!(
        out,
        "<ac:structured-macro ac:name=\"info\" ac:schema-version=\"1\" ac:macro-id=\"{:08x}-info\"><ac:parameter ac:name=\"title\">Before you start</ac:parameter><ac:rich-text-body>",
        r.next() as u32
    );
    paragraph(r, out);
    out.push_str("</ac:rich-text-body></ac:structured-macro>");
}

fn heading(r: &mut Rng, level: u8, out: &mut String) {
    let _ = write!(
        out,
        "<h{level}>{} {}</h{level}>",
        r.pick(&[
            "Overview",
            "Background",
            "Procedure",
            "Rollback",
            "Monitoring",
            "Ownership",
            "Open questions",
            "Verification"
        ]),
        r.pick(AREAS)
    );
}

/// A realistic storage-format body for `title`, deterministic in `seed`, between
/// [`MIN_BODY_BYTES`] and [`MAX_BODY_BYTES`] bytes long (sizes spread evenly over that range).
/// It always contains headings, paragraphs, a list, a table, a code macro and an info panel.
pub fn storage_body(seed: u64, title: &str) -> String {
    let mut r = Rng(mix(seed));
    let target = MIN_BODY_BYTES + 150 + r.below(MAX_BODY_BYTES - MIN_BODY_BYTES - 1200);
    let mut out = String::with_capacity(target + 1024);
    let _ = write!(out, "<h1>{title}</h1>");
    paragraph(&mut r, &mut out);
    info_panel(&mut r, &mut out);
    heading(&mut r, 2, &mut out);
    list(&mut r, &mut out);
    table(&mut r, &mut out);
    heading(&mut r, 2, &mut out);
    code(&mut r, &mut out);
    let mut piece = String::with_capacity(1024);
    let mut turn = 0usize;
    while out.len() < target {
        piece.clear();
        match turn % 5 {
            0 => {
                let level = 2 + r.below(2) as u8;
                heading(&mut r, level, &mut piece);
            }
            3 => list(&mut r, &mut piece),
            4 if turn % 15 == 4 => table(&mut r, &mut piece),
            _ => paragraph(&mut r, &mut piece),
        }
        turn += 1;
        // Keep some headroom so that `edit_fraction` can append a revision note.
        if out.len() + piece.len() > MAX_BODY_BYTES - 100 {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// Creates space `key` (named "`key` Knowledge Base") holding exactly `pages` pages including its
/// homepage — so a `limit=250` listing of a 10,000-page space takes 40 requests — arranged as a
/// tree about three levels deep under the homepage, plus `pages / 50` blog posts; every body comes
/// from [`storage_body`]. If the space already exists, `pages` pages are added to it instead.
/// Deterministic in `seed`. Returns the space id.
pub fn generate_space(site: &FakeConfluence, key: &str, pages: usize, seed: u64) -> String {
    let base = mix(seed ^ crate::state::fnv1a(key));
    let name = format!("{key} Knowledge Base");
    let exists = site.state().space_by_key(key).is_some();
    let mut to_add = pages;
    if !exists {
        site.add_space_with_homepage(key, &name, &storage_body(base, &name));
        to_add = pages.saturating_sub(1);
    }
    let mut st = site.state();
    let space = st.space_by_key(key).expect("space just created");
    let (space_id, home) = (space.id, space.homepage_id);
    // Next sibling position per parent (one scan, instead of one per insert).
    let mut children: HashMap<u64, i64> = HashMap::new();
    for c in st.contents.values() {
        if let (Kind::Page, Some(p)) = (c.kind, c.parent_id) {
            *children.entry(p).or_default() += 1;
        }
    }
    let l1 = to_add.div_ceil(100).max(1).min(to_add);
    let l2 = to_add.saturating_sub(l1).min(to_add.div_ceil(10));
    let mut l1_ids = Vec::with_capacity(l1);
    let mut l2_ids = Vec::with_capacity(l2);
    let mut r = Rng(base);
    for i in 0..to_add {
        let parent = if i < l1 {
            home
        } else if i < l1 + l2 {
            l1_ids[(i - l1) % l1_ids.len()]
        } else if !l2_ids.is_empty() {
            l2_ids[(i - l1 - l2) % l2_ids.len()]
        } else {
            l1_ids[(i - l1) % l1_ids.len()]
        };
        let title = format!("{} {} {}", r.pick(AREAS), r.pick(DOC_TYPES), i + 1);
        let body = storage_body(mix(base ^ (i as u64 + 1)), &title);
        let n = children.entry(parent).or_default();
        let position = *n * 256 + 1;
        *n += 1;
        let id = st.insert_at(Kind::Page, space_id, Some(parent), &title, &body, position);
        if i < l1 {
            l1_ids.push(id);
        } else if i < l1 + l2 {
            l2_ids.push(id);
        }
    }
    for j in 0..pages / 50 {
        let title = format!("{} weekly update #{}", r.pick(AREAS), j + 1);
        let body = storage_body(mix(base ^ 0xb10c ^ ((j as u64 + 1) << 32)), &title);
        st.insert_at(Kind::BlogPost, space_id, None, &title, &body, 0);
    }
    space_id.to_string()
}

/// The ids of the current pages of space `key`, in id order (`None`: no such space).
fn current_pages(st: &crate::state::State, key: &str) -> Option<Vec<u64>> {
    let space_id = st.space_by_key(key)?.id;
    let pages = st.contents.values().filter(|c| c.kind == Kind::Page && c.space_id == space_id);
    Some(pages.filter(|c| c.status == Status::Current).map(|c| c.id).collect())
}

/// Adds comments to the pages of space `key`: a footer comment on every `every`-th page and a
/// reply to every fourth of those, each a paragraph of generated text. Deterministic in
/// `seed`. Returns how many comments were added (0 for an unknown space).
pub fn generate_comments(site: &FakeConfluence, key: &str, every: usize, seed: u64) -> usize {
    let mut st = site.state();
    let Some(pages) = current_pages(&st, key) else { return 0 };
    let mut r = Rng(mix(seed ^ 0xc0ff));
    let mut added = 0;
    for (n, page) in pages.into_iter().enumerate().filter(|(n, _)| n % every.max(1) == 0) {
        let mut body = String::new();
        paragraph(&mut r, &mut body);
        let comment = st.add_comment(page, None, &body);
        added += 1;
        if n % (every.max(1) * 4) == 0 {
            body.clear();
            paragraph(&mut r, &mut body);
            st.add_comment(comment, None, &body);
            added += 1;
        }
    }
    added
}

/// Labels every `every`-th page of space `key` with one of a few topic labels (and every
/// third of those with a second). Returns how many pages were labelled.
pub fn generate_labels(site: &FakeConfluence, key: &str, every: usize) -> usize {
    const LABELS: [&str; 6] = ["runbook", "howto", "architecture", "decision", "onboarding", "postmortem"];
    let mut st = site.state();
    let Some(pages) = current_pages(&st, key) else { return 0 };
    let mut labelled = 0;
    for (n, page) in pages.into_iter().enumerate().filter(|(n, _)| n % every.max(1) == 0) {
        let content = st.content_mut(page);
        content.labels.push(LABELS[n / every.max(1) % LABELS.len()].to_string());
        if n % (every.max(1) * 3) == 0 {
            content.labels.push("reviewed".to_string());
        }
        labelled += 1;
    }
    labelled
}

/// Attaches a small generated file to every `every`-th page of space `key`, alternating a
/// Markdown note and a CSV table. Deterministic in `seed`. Returns how many were attached.
pub fn generate_attachments(site: &FakeConfluence, key: &str, every: usize, seed: u64) -> usize {
    let mut st = site.state();
    let Some(pages) = current_pages(&st, key) else { return 0 };
    let mut r = Rng(mix(seed ^ 0xa77a));
    let mut added = 0;
    for (n, page) in pages.into_iter().enumerate().filter(|(n, _)| n % every.max(1) == 0) {
        let mut text = String::new();
        paragraph(&mut r, &mut text);
        let text = text.replace("<p>", "").replace("</p>", "");
        if added % 2 == 0 {
            st.add_attachment(
                page,
                &format!("notes-{n}.md"),
                "text/markdown",
                format!("# Notes {n}\n\n{text}\n").into_bytes(),
            );
        } else {
            let rows: String = text.split(". ").map(|s| format!("{n},\"{}\"\n", s.replace('"', "'"))).collect();
            st.add_attachment(
                page,
                &format!("table-{n}.csv"),
                "text/csv",
                format!("page,sentence\n{rows}").into_bytes(),
            );
        }
        added += 1;
    }
    added
}

/// Publishes a new version with a changed body for `fraction` (0..=1, rounded) of the current
/// pages of space `key`, chosen deterministically from `seed`. Returns how many pages were edited
/// (0 for an unknown space).
pub fn edit_fraction(site: &FakeConfluence, key: &str, fraction: f64, seed: u64) -> usize {
    let mut st = site.state();
    let Some(space_id) = st.space_by_key(key).map(|s| s.id) else {
        return 0;
    };
    let mut ids: Vec<(u64, u64, String)> = st
        .contents
        .values()
        .filter(|c| c.kind == Kind::Page && c.space_id == space_id && c.status == Status::Current)
        .map(|c| (mix(c.id ^ seed), c.id, c.title.clone()))
        .collect();
    ids.sort_unstable();
    let n = ((fraction.clamp(0.0, 1.0) * ids.len() as f64).round() as usize).min(ids.len());
    for (h, id, title) in ids.into_iter().take(n) {
        let version = st.contents[&id].version;
        let mut body = storage_body(mix(h ^ (version << 40) ^ 0xed17), &title);
        let _ = write!(body, "<p>Revised in version {}.</p>", version + 1);
        st.edit(id, None, Some(&body));
    }
    n
}
