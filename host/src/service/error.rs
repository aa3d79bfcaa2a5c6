//! Errors of the HTTP API: `{"error":{"kind","message"}}` with the status that fits.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::bindings::types::ConnectorError;
use crate::driver::{describe_error, error_kind};

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`kind`) and people (`message`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable kind, e.g. `unauthenticated`, `forbidden`, `not-found`,
    /// `duplicate`, `invalid-input`, `malformed`, `too-large`, `busy`.
    pub kind: String,
    /// One sentence a person can act on.
    pub message: String,
}

/// An error response of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: String,
    message: String,
}

impl ApiError {
    /// An error with a status, a kind and a message.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind: kind.to_string(), message: message.into() }
    }

    /// 401: no key, or one that does not open.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send a valid API key as `Authorization: Bearer KEY` (create one with `connector-host keys create`)",
        )
    }

    /// 403: the key's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 422: well-formed but unacceptable input.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", message)
    }

    /// 503: a limit of the service is reached; try again.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }

    /// 500: the host failed; the message says where, never a secret.
    pub fn internal(error: anyhow::Error) -> ApiError {
        tracing::error!("request failed: {error:#}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "host", format!("{error:#}"))
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ConnectorError> for ApiError {
    fn from(error: ConnectorError) -> ApiError {
        let status = match &error {
            ConnectorError::InvalidInput(_) | ConnectorError::Unauthorized(_) | ConnectorError::MissingScopes(_) => {
                // The source's credentials or the input were refused, not the caller's key.
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ConnectorError::NotFound(_) => StatusCode::NOT_FOUND,
            ConnectorError::Duplicate(_) | ConnectorError::Unavailable(_) => StatusCode::CONFLICT,
            ConnectorError::Network(_) => StatusCode::BAD_GATEWAY,
            ConnectorError::Denied(_) => StatusCode::FORBIDDEN,
            ConnectorError::Host(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error_kind(&error), describe_error(&error))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        ApiError::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { kind: self.kind, message: self.message } };
        (self.status, axum::Json(body)).into_response()
    }
}
