//! Confluence REST client: authentication, URL joining, retries and error mapping.
//!
//! Retries follow Atlassian's guidance: 429 and 5xx (and broken connections or bodies)
//! are retried with exponential backoff and jitter, `Retry-After` is honoured
//! (clamped), and the total time spent waiting is capped. 401/403/404/410 are never
//! retried: they are answers, not accidents.

use std::cell::Cell;
use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;

use connector_sdk::http::{Request, Response, Transport, TransportError};

/// Counters of one client's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Requests sent, retries included.
    pub requests: u32,
    /// Requests that were retries.
    pub retries: u32,
}

/// How hard to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// First backoff delay; doubles per attempt.
    pub base_delay: Duration,
    /// Longest single wait (also the clamp for `Retry-After`).
    pub max_delay: Duration,
    /// Longest total wait for one request.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(120),
        }
    }
}

/// What went wrong talking to Confluence, with the URL it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 401 from the site: wrong e-mail or token, or the token expired or was revoked.
    #[error("Confluence rejected the credentials at {url}")]
    Unauthorized {
        /// The URL requested.
        url: String,
    },
    /// 401 "scope does not match" from the API gateway.
    #[error("the token lacks a scope needed for {url}")]
    ScopeMismatch {
        /// The URL requested.
        url: String,
    },
    /// 403: authenticated, but not allowed.
    #[error("Confluence refused access to {url}: {message}")]
    Forbidden {
        /// The URL requested.
        url: String,
        /// Confluence's message.
        message: String,
    },
    /// 404: missing, or not visible to this account.
    #[error("not found or not visible to this account: {url}")]
    NotFound {
        /// The URL requested.
        url: String,
    },
    /// 410: a removed endpoint.
    #[error("Confluence says this endpoint was removed (410 Gone): {url}")]
    Gone {
        /// The URL requested.
        url: String,
    },
    /// Any other 4xx.
    #[error("Confluence answered {status} for {url}: {message}")]
    Rejected {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// Confluence's message.
        message: String,
    },
    /// Retries exhausted on 429/5xx/broken responses.
    #[error("Confluence kept failing for {url} after {attempts} attempts (last: {last})")]
    Exhausted {
        /// The URL requested.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The host refused the destination.
    #[error("{0}")]
    Denied(String),
    /// The host name does not resolve.
    #[error("{0}")]
    Unresolvable(String),
    /// A `next` link that keeps pointing back into the same listing.
    #[error(
        "Confluence returned a pagination link that repeats ({0}); stopped so an incomplete listing is not taken as complete"
    )]
    Looping(String),
    /// A `next` link pointing away from the API base.
    #[error("Confluence returned a link to another host ({0}); refusing to follow it")]
    ForeignLink(String),
}

/// A client bound to one API base and one account.
pub struct Client<'t> {
    transport: &'t dyn Transport,
    api_base: String,
    authorization: String,
    policy: RetryPolicy,
    traffic: Cell<Traffic>,
}

impl<'t> Client<'t> {
    /// A client for `api_base` (e.g. `https://acme.atlassian.net`) with basic auth.
    pub fn new(transport: &'t dyn Transport, api_base: &str, email: &str, token: &str) -> Client<'t> {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"));
        Client {
            transport,
            api_base: api_base.trim_end_matches('/').to_string(),
            authorization: format!("Basic {credentials}"),
            policy: RetryPolicy::default(),
            traffic: Cell::new(Traffic::default()),
        }
    }

    /// Traffic so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic.get()
    }

    /// Absolute URL for a path (`/wiki/...`) or a link Confluence returned. Absolute
    /// links must stay under the API base: a hostile or broken response cannot send the
    /// credentials elsewhere.
    pub fn url(&self, path_or_link: &str) -> Result<String, ApiError> {
        if path_or_link.starts_with('/') {
            return Ok(format!("{}{}", self.api_base, path_or_link));
        }
        if path_or_link.starts_with(&format!("{}/", self.api_base)) {
            return Ok(path_or_link.to_string());
        }
        Err(ApiError::ForeignLink(path_or_link.chars().take(200).collect()))
    }

    /// GETs JSON, retrying what is retryable.
    pub fn get_json<T: DeserializeOwned>(&self, path_or_link: &str) -> Result<T, ApiError> {
        let url = self.url(path_or_link)?;
        self.retrying(&url, true, false, |response| {
            decode::<T>(&response.body).map_err(|error| format!("unreadable response body ({error})"))
        })
    }

    /// GETs files (attachments' `download` links), all in flight at once. Confluence
    /// answers each with a redirect to its media service, whose URL carries a token of its
    /// own: the redirect is followed once, and the account's credentials go only to the site
    /// itself. A file whose first try fails is fetched again on its own, with the retries
    /// of [`Client::get_json`].
    pub fn get_files(&self, paths_or_links: &[String]) -> Vec<Result<Vec<u8>, ApiError>> {
        let urls: Vec<Result<String, ApiError>> = paths_or_links.iter().map(|p| self.url(p)).collect();
        let requests: Vec<Request> = urls.iter().flatten().map(|url| self.request(url)).collect();
        requests.iter().for_each(|_| self.count(false));
        let mut first = self.transport.send_all(requests).into_iter();
        // Each file's answer so far: the body, a redirect to follow, or a retry to make.
        let mut steps: Vec<Result<FileStep, ApiError>> = urls
            .into_iter()
            .map(|url| {
                let url = url?;
                Ok(match first.next() {
                    Some(Ok(response)) if (200..300).contains(&response.status) => FileStep::Body(response.body),
                    Some(Ok(response)) if (300..400).contains(&response.status) => {
                        FileStep::Follow(self.redirect_target(&url, &response)?)
                    }
                    _ => FileStep::Retry(url, true),
                })
            })
            .collect();
        let follows: Vec<Request> = steps
            .iter()
            .filter_map(|step| match step {
                Ok(FileStep::Follow(target)) => Some(self.file_request(target)),
                _ => None,
            })
            .collect();
        follows.iter().for_each(|_| self.count(false));
        let mut second = self.transport.send_all(follows).into_iter();
        for step in steps.iter_mut() {
            if let Ok(FileStep::Follow(target)) = step {
                *step = Ok(match second.next() {
                    Some(Ok(response)) if (200..300).contains(&response.status) => FileStep::Body(response.body),
                    _ => FileStep::Retry(target.clone(), false),
                });
            }
        }
        steps
            .into_iter()
            .map(|step| match step? {
                FileStep::Body(body) => Ok(body),
                FileStep::Retry(url, true) => self.get_file(&url),
                FileStep::Retry(url, false) => {
                    let authorized = self.same_site(&url);
                    Ok(self.retrying(&url, authorized, false, Ok)?.body)
                }
                FileStep::Follow(_) => unreachable!("every redirect was followed above"),
            })
            .collect()
    }

    /// GETs one file, following its redirect once (see [`Client::get_files`]).
    fn get_file(&self, url: &str) -> Result<Vec<u8>, ApiError> {
        let first = self.retrying(url, true, true, Ok)?;
        if !(300..400).contains(&first.status) {
            return Ok(first.body);
        }
        let target = self.redirect_target(url, &first)?;
        let authorized = self.same_site(&target);
        Ok(self.retrying(&target, authorized, false, Ok)?.body)
    }

    fn redirect_target(&self, url: &str, response: &Response) -> Result<String, ApiError> {
        let location = response.header("location").unwrap_or_default();
        url::Url::parse(url).and_then(|base| base.join(location)).map(String::from).map_err(|_| ApiError::Rejected {
            url: url.to_string(),
            status: response.status,
            message: "a redirect without a usable Location".into(),
        })
    }

    /// Whether `url` is on the site itself (where the account's credentials may go).
    fn same_site(&self, url: &str) -> bool {
        match (url::Url::parse(&self.api_base), url::Url::parse(url)) {
            (Ok(base), Ok(target)) => base.origin() == target.origin(),
            _ => false,
        }
    }

    fn file_request(&self, url: &str) -> Request {
        let mut request = self.request(url);
        if !self.same_site(url) {
            request.headers.retain(|(name, _)| name != "authorization");
        }
        request
    }

    /// GETs `url` until `answer` takes a response, retrying 429/5xx, broken connections and
    /// answers it refuses, with backoff, within the policy's attempts and time budget. A
    /// redirect is handed to `answer` when `redirects` says so, and refused otherwise.
    fn retrying<T>(
        &self,
        url: &str,
        authorized: bool,
        redirects: bool,
        answer: impl Fn(Response) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        let mut waited = Duration::ZERO;
        let mut last = String::new();
        let mut attempts = 0;
        for attempt in 1..=self.policy.attempts {
            attempts = attempt;
            self.count(attempt > 1);
            let mut request = self.request(url);
            if !authorized {
                request.headers.retain(|(name, _)| name != "authorization");
            }
            let retry_after = match self.transport.send(request) {
                Ok(response) if redirects && (300..400).contains(&response.status) => match answer(response) {
                    Ok(value) => return Ok(value),
                    Err(reason) => {
                        last = reason;
                        None
                    }
                },
                Ok(response) => match classify(url, &response) {
                    Outcome::Done => match answer(response) {
                        Ok(value) => return Ok(value),
                        Err(reason) => {
                            last = reason;
                            None
                        }
                    },
                    Outcome::Fail(error) => return Err(error),
                    Outcome::Retry { reason, retry_after } => {
                        last = reason;
                        retry_after
                    }
                },
                Err(TransportError::Denied(detail)) => return Err(ApiError::Denied(detail)),
                Err(error @ TransportError::TooLarge(_)) => return Err(ApiError::Denied(error.to_string())),
                Err(error @ TransportError::Unresolvable(_)) => return Err(ApiError::Unresolvable(error.to_string())),
                Err(error) => {
                    last = error.to_string();
                    None
                }
            };
            if attempt == self.policy.attempts {
                break;
            }
            let delay = self.delay(attempt, retry_after);
            if waited + delay > self.policy.budget {
                break;
            }
            waited += delay;
            self.transport.sleep(delay);
        }
        Err(ApiError::Exhausted { url: url.to_string(), attempts, last })
    }

    /// Starts fetching `path_or_link` ahead of need, so that a later
    /// [`get_json`](Client::get_json) of it finds the response on its way. Links that
    /// [`url`](Client::url) refuses are not fetched.
    pub fn prefetch(&self, path_or_link: &str) {
        if let Ok(url) = self.url(path_or_link) {
            self.transport.prefetch(self.request(&url));
        }
    }

    fn request(&self, url: &str) -> Request {
        Request {
            url: url.to_string(),
            headers: vec![
                ("authorization".into(), self.authorization.clone()),
                ("accept".into(), "application/json".into()),
            ],
        }
    }

    fn count(&self, retry: bool) {
        let mut traffic = self.traffic.get();
        traffic.requests += 1;
        if retry {
            traffic.retries += 1;
        }
        self.traffic.set(traffic);
    }

    /// Exponential backoff with ±30% jitter; `Retry-After` is a floor, clamped.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self.policy.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let jitter = 0.7 + (self.transport.jitter_seed() % 600) as f64 / 1000.0;
        let backoff = exponential.mul_f64(jitter);
        let delay = match retry_after {
            Some(floor) => floor.max(backoff),
            None => backoff,
        };
        delay.min(self.policy.max_delay)
    }
}

/// Where one file of [`Client::get_files`] stands.
enum FileStep {
    Body(Vec<u8>),
    Follow(String),
    /// Fetch again with retries; `true` when the site's own link is to be fetched.
    Retry(String, bool),
}

enum Outcome {
    Done,
    Fail(ApiError),
    Retry { reason: String, retry_after: Option<Duration> },
}

fn classify(url: &str, response: &Response) -> Outcome {
    let url = url.to_string();
    match response.status {
        200..=299 => Outcome::Done,
        401 if message_of(&response.body).contains("scope does not match") => {
            Outcome::Fail(ApiError::ScopeMismatch { url })
        }
        401 => Outcome::Fail(ApiError::Unauthorized { url }),
        403 => Outcome::Fail(ApiError::Forbidden { url, message: message_of(&response.body) }),
        404 => Outcome::Fail(ApiError::NotFound { url }),
        410 => Outcome::Fail(ApiError::Gone { url }),
        429 | 500 | 502 | 503 | 504 => Outcome::Retry {
            reason: format!("HTTP {}", response.status),
            retry_after: response
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        status => Outcome::Fail(ApiError::Rejected { url, status, message: message_of(&response.body) }),
    }
}

/// Parses JSON; a body with invalid UTF-8 (a page pasted from a broken source) is read
/// with replacement characters rather than losing the whole listing.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(body) {
        Err(error) if std::str::from_utf8(body).is_err() => {
            serde_json::from_str(&String::from_utf8_lossy(body)).map_err(|_| error)
        }
        outcome => outcome,
    }
}

/// The human message in a Confluence error body (v2 `errors[].title`, v1 `message`,
/// gateway `message`), or the text itself for `text/plain` bodies.
pub fn message_of(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(message) = value.get("message").and_then(|m| m.as_str()) {
            return message.to_string();
        }
        if let Some(title) = value.pointer("/errors/0/title").and_then(|m| m.as_str()) {
            return title.to_string();
        }
    }
    String::from_utf8_lossy(body).chars().take(300).collect::<String>().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// Answers from a script and records what was asked and how long it slept.
    struct Script {
        answers: RefCell<VecDeque<Result<Response, TransportError>>>,
        sent: RefCell<Vec<Request>>,
        slept: RefCell<Vec<Duration>>,
    }

    impl Script {
        fn new(answers: Vec<Result<Response, TransportError>>) -> Self {
            Script { answers: RefCell::new(answers.into()), sent: RefCell::default(), slept: RefCell::default() }
        }
    }

    impl Transport for Script {
        fn send_all(&self, requests: Vec<Request>) -> Vec<Result<Response, TransportError>> {
            requests
                .into_iter()
                .map(|r| {
                    self.sent.borrow_mut().push(r);
                    self.answers.borrow_mut().pop_front().expect("script ran out")
                })
                .collect()
        }
        fn sleep(&self, duration: Duration) {
            self.slept.borrow_mut().push(duration);
        }
        fn jitter_seed(&self) -> u64 {
            300
        }
        fn unix_time(&self) -> u64 {
            0
        }
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Response, TransportError> {
        Ok(Response {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn sends_basic_auth_and_joins_relative_links() {
        let script = Script::new(vec![answer(200, &[], r#"{"ok":1}"#)]);
        let client = Client::new(&script, "https://acme.atlassian.net/", "me@acme.com", "tok");
        let value: serde_json::Value = client.get_json("/wiki/api/v2/spaces?keys=A").unwrap();
        assert_eq!(value["ok"], 1);
        let sent = script.sent.borrow();
        assert_eq!(sent[0].url, "https://acme.atlassian.net/wiki/api/v2/spaces?keys=A");
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("me@acme.com:tok"));
        assert!(sent[0].headers.contains(&("authorization".into(), expected)));
    }

    #[test]
    fn retries_429_honouring_retry_after_then_succeeds() {
        let script = Script::new(vec![
            answer(429, &[("retry-after", "3")], ""),
            answer(503, &[], "<html>busy</html>"),
            answer(200, &[], "{broken"),
            answer(200, &[], "[1]"),
        ]);
        let client = Client::new(&script, "https://a.atlassian.net", "e", "t");
        let value: Vec<u32> = client.get_json("/x").unwrap();
        assert_eq!(value, vec![1]);
        assert_eq!(client.traffic(), Traffic { requests: 4, retries: 3 });
        let slept = script.slept.borrow();
        assert!(slept[0] >= Duration::from_secs(3), "Retry-After is a floor: {slept:?}");
        assert!(slept[1] < Duration::from_secs(3), "later waits back off from the base: {slept:?}");
    }

    #[test]
    fn does_not_retry_answers() {
        for (status, body) in [
            (401, "Basic authentication with passwords is deprecated."),
            (404, r#"{"errors":[{"status":404,"code":"NOT_FOUND","title":"Not Found","detail":null}]}"#),
            (410, r#"{"statusCode":410,"message":"GoneException"}"#),
            (403, r#"{"message":"Current user not permitted to use Confluence","statusCode":403}"#),
        ] {
            let script = Script::new(vec![answer(status, &[], body)]);
            let client = Client::new(&script, "https://a.atlassian.net", "e", "t");
            let error = client.get_json::<serde_json::Value>("/x").unwrap_err();
            assert_eq!(client.traffic().requests, 1, "{status} must not be retried");
            assert!(!matches!(error, ApiError::Exhausted { .. }));
        }
        let script =
            Script::new(vec![answer(401, &[], r#"{"code":401,"message":"Unauthorized; scope does not match"}"#)]);
        let client = Client::new(&script, "https://gw", "e", "t");
        assert!(matches!(client.get_json::<serde_json::Value>("/x"), Err(ApiError::ScopeMismatch { .. })));
    }

    #[test]
    fn exhausted_retries_become_an_error_not_a_gap() {
        let script = Script::new((0..6).map(|_| answer(500, &[], "")).collect());
        let client = Client::new(&script, "https://a.atlassian.net", "e", "t");
        let error = client.get_json::<serde_json::Value>("/wiki/api/v2/pages").unwrap_err();
        assert!(matches!(error, ApiError::Exhausted { attempts: 6, .. }), "{error:?}");
        assert!(error.to_string().contains("https://a.atlassian.net/wiki/api/v2/pages"));
    }

    #[test]
    fn redirects_are_answers_not_instructions() {
        let script = Script::new(vec![answer(302, &[("location", "https://evil.example/steal")], "")]);
        let client = Client::new(&script, "https://a.atlassian.net", "e", "t");
        let error = client.get_json::<serde_json::Value>("/wiki/api/v2/spaces").unwrap_err();
        assert!(matches!(error, ApiError::Rejected { status: 302, .. }), "{error:?}");
        assert_eq!(script.sent.borrow().len(), 1, "the redirect was not followed");
    }

    #[test]
    fn refuses_links_to_other_hosts() {
        let script = Script::new(vec![]);
        let client = Client::new(&script, "https://a.atlassian.net", "e", "t");
        assert!(matches!(client.url("https://evil.example/wiki"), Err(ApiError::ForeignLink(_))));
        assert!(matches!(client.url("https://a.atlassian.net.evil.example/x"), Err(ApiError::ForeignLink(_))));
        assert_eq!(client.url("https://a.atlassian.net/wiki/x").unwrap(), "https://a.atlassian.net/wiki/x");
    }

    #[test]
    fn invalid_utf8_in_a_body_is_replaced_not_fatal() {
        let mut body = br#"{"title":"caf"#.to_vec();
        body.extend_from_slice(&[0xE9, 0xFF]);
        body.extend_from_slice(br#" menu"}"#);
        let script = Script::new(vec![Ok(Response { status: 200, headers: vec![], body })]);
        let client = Client::new(&script, "https://a.atlassian.net", "e", "t");
        let value: serde_json::Value = client.get_json("/x").unwrap();
        assert_eq!(value["title"], "caf\u{fffd}\u{fffd} menu");
        assert_eq!(client.traffic().retries, 0);
    }

    #[test]
    fn messages_from_every_error_shape() {
        assert_eq!(message_of(br#"{"errors":[{"status":"409","title":"Conflict"}]}"#), "Conflict");
        assert_eq!(message_of(br#"{"statusCode":403,"message":"nope"}"#), "nope");
        assert_eq!(message_of(b"plain text\n"), "plain text");
    }
}
