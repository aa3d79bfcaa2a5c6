//! Seeded, reproducible fault injection: rate limits, overload, 5xx, broken connections, slow,
//! truncated or non-JSON bodies and looping pagination (reference §7.2–§7.4).
//!
//! A [`FaultPlan`] is installed with [`crate::FakeConfluence::set_faults`]. Every request whose path
//! matches the plan draws from a SplitMix64 generator seeded with [`FaultPlan::seed`]: with
//! probability [`FaultPlan::rate`] it gets a fault, chosen uniformly from [`FaultPlan::faults`].
//! The same seed and the same sequence of requests therefore fault the same requests the same way.

use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::routes::Reply;
use crate::state::format_ts;

/// One kind of injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 Too Many Requests with a JSON body (plus `Retry-After` when `Some`, and the
    /// `X-RateLimit-*` / `RateLimit-Reason` headers Cloud sends).
    RateLimited {
        /// Value of the `Retry-After` header in seconds; `None` = no header.
        retry_after_secs: Option<u64>,
    },
    /// 503 Service Unavailable with an HTML or an empty body (plus `Retry-After` when `Some`).
    Unavailable {
        /// Value of the `Retry-After` header in seconds; `None` = no header.
        retry_after_secs: Option<u64>,
    },
    /// A 5xx status (500, 502, 504, …) with an HTML or an empty body.
    ServerError(u16),
    /// The connection is closed without any response bytes (recorded with status 0).
    Reset,
    /// The correct response, but only after this delay (meant to exceed a client timeout).
    Slow(Duration),
    /// 200 whose `Content-Length` announces the full body, but only the first half is sent before
    /// the connection is closed.
    Truncated,
    /// 200 with `Content-Type: application/json` and a body that is not JSON (an HTML page).
    InvalidJson,
    /// A list response whose `_links.next` (and `Link` header) points back at the request itself.
    /// On endpoints that do not answer a 200 list, this falls back to `ServerError(500)`.
    LoopingNext,
}

impl Fault {
    /// Every fault kind except [`Fault::Slow`], with typical parameters (429 with and without
    /// `Retry-After`, 503, 500, 502, 504, reset, truncated, invalid JSON, looping `next`).
    pub fn all_fast() -> Vec<Fault> {
        vec![
            Fault::RateLimited { retry_after_secs: Some(1) },
            Fault::RateLimited { retry_after_secs: None },
            Fault::Unavailable { retry_after_secs: Some(1) },
            Fault::ServerError(500),
            Fault::ServerError(502),
            Fault::ServerError(504),
            Fault::Reset,
            Fault::Truncated,
            Fault::InvalidJson,
            Fault::LoopingNext,
        ]
    }
}

/// A fault-injection plan (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Probability in `0..=1` that a matching request gets a fault.
    pub rate: f64,
    /// Faults to choose from (uniformly) when one fires; empty = never fault.
    pub faults: Vec<Fault>,
    /// Substrings of the request path (including any gateway prefix) selecting the endpoints that
    /// may fault; `None` = every endpoint except `/_edge/tenant_info`.
    pub endpoints: Option<Vec<String>>,
}

impl FaultPlan {
    /// A plan over every endpoint (except tenant info) with [`Fault::all_fast`].
    pub fn new(seed: u64, rate: f64) -> FaultPlan {
        FaultPlan { seed, rate, faults: Fault::all_fast(), endpoints: None }
    }

    fn applies_to(&self, path: &str) -> bool {
        match &self.endpoints {
            None => !path.ends_with("/_edge/tenant_info"),
            Some(list) => list.iter().any(|s| path.contains(s.as_str())),
        }
    }
}

/// The installed plan, its generator and the count of faulted requests.
#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    rng: u64,
    pub injected: u64,
}

impl FaultState {
    /// Installs a plan with a fresh generator.
    pub fn new(plan: FaultPlan) -> FaultState {
        let rng = plan.seed;
        FaultState { plan, rng, injected: 0 }
    }

    fn next_u64(&mut self) -> u64 {
        crate::state::next_random(&mut self.rng)
    }

    /// Decides whether the request to `path` gets a fault; returns it with a few random bits
    /// (used to vary bodies, e.g. HTML vs empty).
    pub fn draw(&mut self, path: &str) -> Option<(Fault, u64)> {
        if !self.plan.applies_to(path) || self.plan.faults.is_empty() {
            return None;
        }
        let roll = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let pick = self.next_u64();
        if roll >= self.plan.rate {
            return None;
        }
        self.injected += 1;
        let n = self.plan.faults.len() as u64;
        Some((self.plan.faults[(pick % n) as usize].clone(), pick / n))
    }
}

/// What the HTTP layer must do for a request.
pub(crate) enum Outcome {
    /// Send this reply (possibly after `delay`).
    Reply(Reply, Duration),
    /// Abort the connection without a response.
    Reset,
    /// Send the reply's headers with its full `Content-Length`, then half of the body, then abort.
    Truncated(Reply),
}

impl Outcome {
    /// The status recorded in the request log.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Reply(r, _) | Outcome::Truncated(r) => r.status,
            Outcome::Reset => 0,
        }
    }
}

const HTML_5XX: &str = "<!DOCTYPE html>\n<html><head><title>Atlassian Cloud Notifications - Page Unavailable</title></head>\n<body><h1>Something went wrong</h1><p>We're having trouble loading this page. Try again in a few moments.</p></body></html>\n";

const HTML_LOGIN: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in with Atlassian account</title></head>\n<body><div id=\"root\">Log in to continue to Confluence.</div><script>window.__SSR__={}</script></body></html>\n";

fn html_or_empty(status: u16, bits: u64) -> Reply {
    if bits & 1 == 0 {
        Reply {
            status,
            content_type: "text/html;charset=UTF-8",
            body: HTML_5XX.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    } else {
        Reply { status, content_type: "text/plain", body: Vec::new(), headers: Vec::new() }
    }
}

/// The 429 reply (JSON body, Cloud headers).
pub(crate) fn rate_limited(retry_after: Option<u64>) -> Reply {
    let mut r = Reply::json(
        429,
        &json!({"statusCode": 429, "message": "Rate limit exceeded. Please retry after the period given in the Retry-After header."}),
    )
    .with_header("RateLimit-Reason", "confluence-quota-tenant-based".into())
    .with_header("X-RateLimit-Limit", "100".into())
    .with_header("X-RateLimit-Remaining", "0".into())
    .with_header("X-RateLimit-NearLimit", "true".into());
    // `yyyy-MM-ddTHH:mmZ`, an hour after the start of the logical clock.
    let reset = format_ts(1_767_607_200_000);
    r = r.with_header("X-RateLimit-Reset", format!("{}Z", &reset[..16]));
    if let Some(s) = retry_after {
        r = r.with_header("Retry-After", s.to_string());
    }
    r
}

/// Turns the normal `reply` into the faulted outcome. `next_self` is the request's own URL in the
/// form the endpoint uses for `_links.next`.
pub(crate) fn apply(fault: Fault, bits: u64, reply: Reply, next_self: &str) -> Outcome {
    match fault {
        Fault::RateLimited { retry_after_secs } => Outcome::Reply(rate_limited(retry_after_secs), Duration::ZERO),
        Fault::Unavailable { retry_after_secs } => {
            let mut r = html_or_empty(503, bits);
            if let Some(s) = retry_after_secs {
                r = r.with_header("Retry-After", s.to_string());
            }
            Outcome::Reply(r, Duration::ZERO)
        }
        Fault::ServerError(status) => Outcome::Reply(html_or_empty(status, bits), Duration::ZERO),
        Fault::Reset => Outcome::Reset,
        Fault::Slow(d) => Outcome::Reply(reply, d),
        Fault::Truncated => {
            let r = if (200..300).contains(&reply.status) && reply.body.len() >= 2 {
                reply
            } else {
                Reply::json(200, &json!({"results": [], "_links": {"base": "truncated", "padding": "x".repeat(64)}}))
            };
            Outcome::Truncated(r)
        }
        Fault::InvalidJson => Outcome::Reply(
            Reply {
                status: 200,
                content_type: "application/json;charset=UTF-8",
                body: HTML_LOGIN.as_bytes().to_vec(),
                headers: Vec::new(),
            },
            Duration::ZERO,
        ),
        Fault::LoopingNext => match looping(&reply, next_self) {
            Some(r) => Outcome::Reply(r, Duration::ZERO),
            None => Outcome::Reply(html_or_empty(500, bits), Duration::ZERO),
        },
    }
}

/// The reply with `_links.next` pointing at `next_self`, if it is a 200 list response.
fn looping(reply: &Reply, next_self: &str) -> Option<Reply> {
    if reply.status != 200 {
        return None;
    }
    let mut v: Value = serde_json::from_slice(&reply.body).ok()?;
    if !v.get("results").is_some_and(Value::is_array) {
        return None;
    }
    let links = v.get_mut("_links")?.as_object_mut()?;
    let base = links.get("base").and_then(Value::as_str).map(str::to_string);
    links.insert("next".into(), Value::String(next_self.to_string()));
    let mut r = Reply::json(200, &v);
    r.headers = reply.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("link")).cloned().collect();
    let link = match base {
        Some(b) => format!("<{next_self}>; rel=\"next\", <{b}>; rel=\"base\""),
        None => format!("<{next_self}>; rel=\"next\""),
    };
    Some(r.with_header("Link", link))
}

/// A body whose stream fails at once: hyper aborts the connection before writing the response.
pub(crate) fn reset_body() -> Body {
    Body::from_stream(futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fake-confluence: injected connection reset",
        ))
    }))
}

/// A body that yields the first half of `full`, waits so hyper flushes it, then fails.
pub(crate) fn truncated_body(full: Vec<u8>) -> Body {
    let bytes = Bytes::from(full);
    let half = bytes.slice(..bytes.len() / 2);
    let first = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(half) });
    let fail = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fake-confluence: injected truncated body",
        ))
    });
    Body::from_stream(first.chain(fail))
}
