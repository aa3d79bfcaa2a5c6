//! The small transport seam between the Confluence logic and the outside world.
//!
//! In the component it is `wasi:http/outgoing-handler`; in native tests it can be any
//! HTTP client. Requests are handed over in batches so an implementation can keep
//! them in flight concurrently.

use std::time::Duration;

/// An HTTP GET to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Absolute URL.
    pub url: String,
    /// Extra headers (name, value).
    pub headers: Vec<(String, String)>,
}

/// A response, fully read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The host's allow-list refused the destination.
    #[error("the host refused the request to {0} (not on the connection's allow-list)")]
    Denied(String),
    /// The host name does not resolve.
    #[error("{0} could not be resolved (check the site name)")]
    Unresolvable(String),
    /// No answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// Connection failed, was reset, or the body broke off.
    #[error("connection to {url} failed: {detail}")]
    Connection {
        /// The URL requested.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The response body exceeded the size limit.
    #[error("the response from {0} is larger than the connector accepts")]
    TooLarge(String),
}

/// Sends HTTP requests and sleeps; implemented over wasi:http in the component.
pub trait Transport {
    /// Sends every request (concurrently where possible) and returns the outcomes in order.
    fn send_all(&self, requests: Vec<Request>) -> Vec<Result<Response, TransportError>>;
    /// Sends one request.
    fn send(&self, request: Request) -> Result<Response, TransportError> {
        self.send_all(vec![request]).pop().expect("one outcome per request")
    }
    /// Starts `request` ahead of need: a later [`send`](Transport::send) of an equal request
    /// takes its response instead of sending it again. Lets the next page of a listing travel
    /// while the current one is processed. Transports that cannot do this ignore it.
    fn prefetch(&self, request: Request) {
        let _ = request;
    }
    /// Blocks for `duration` (backoff between retries).
    fn sleep(&self, duration: Duration);
    /// A number that differs between calls, for retry jitter.
    fn jitter_seed(&self) -> u64;
    /// Seconds since the Unix epoch (wall clock).
    fn unix_time(&self) -> u64;
}
