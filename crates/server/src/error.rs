//! Errors as clients see them: a status and `{"error": "...", "details"?: ...}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use burrow_instance::InstanceError;
use burrow_restore::RegistryError;
use burrow_runtime::{CallError, ErrorKind};
use serde_json::json;

/// Seconds clients are told to wait on 429 and 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The message.
    pub error: String,
    /// Optional details.
    pub details: Option<serde_json::Value>,
    /// Whether to send `Retry-After`.
    pub retry_after: bool,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            details: None,
            retry_after: matches!(
                status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ),
        }
    }

    /// Adds details.
    pub fn details(mut self, details: impl Into<serde_json::Value>) -> ApiError {
        self.details = Some(details.into());
        self
    }

    /// 400.
    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    /// 400 for a malformed instance id.
    pub fn invalid_instance_id() -> ApiError {
        ApiError::bad_request("Invalid instance ID")
    }

    /// 404 that does not say whether the instance exists.
    pub fn instance_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Instance not found")
    }

    /// 404 for an instance that is not provisioned (platform routes).
    pub fn not_provisioned() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Instance not provisioned")
    }

    /// 500 without internals; the cause is logged.
    pub fn internal(operation: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(operation, error = %cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{operation} failed"),
        )
    }

    /// An instance error for `operation`, as a platform caller sees it.
    pub fn from_instance(operation: &str, e: InstanceError) -> ApiError {
        match e {
            InstanceError::NotProvisioned => ApiError::not_provisioned(),
            InstanceError::WrongUser => ApiError::instance_not_found(),
            InstanceError::Invalid(m) => ApiError::bad_request(m),
            InstanceError::UnknownOrganization(org) => {
                ApiError::bad_request(format!("Unknown organization {org}"))
            }
            InstanceError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            InstanceError::RegistryUnavailable(m) => {
                tracing::warn!(operation, error = %m, "registry unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Registry unavailable")
            }
            InstanceError::Call(e) => ApiError::from_call(operation, e),
            other @ (InstanceError::Registry(_) | InstanceError::Provider(_)) => {
                ApiError::internal(operation, other)
            }
        }
    }

    /// A runtime error.
    pub fn from_call(operation: &str, e: CallError) -> ApiError {
        match e.kind() {
            ErrorKind::Overloaded => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Overloaded"),
            ErrorKind::StorageFull => {
                tracing::error!(operation, error = %e, "storage full");
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "Insufficient storage")
                    .details("the server's disk is full; nothing was written")
            }
            ErrorKind::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Shutting down")
            }
            ErrorKind::ActiveElsewhere => {
                tracing::warn!(operation, error = %e, "actor held by another node");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable")
                    .details("the actor is active on another node of the cluster")
            }
            ErrorKind::ActorReset | ErrorKind::TransientIo => {
                tracing::warn!(operation, error = %e, "transient failure");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable")
            }
            _ => ApiError::internal(operation, e),
        }
    }

    /// A registry error.
    pub fn from_registry(operation: &str, e: RegistryError) -> ApiError {
        match e {
            e if e.is_retryable() => {
                tracing::warn!(operation, error = %e, "registry unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Registry unavailable")
            }
            RegistryError::InvalidInput(m) => ApiError::bad_request(m),
            RegistryError::UnknownOrganization(org) => {
                ApiError::bad_request(format!("Unknown organization {org}"))
            }
            RegistryError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            other => ApiError::internal(operation, other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error });
        if let Some(details) = self.details {
            body["details"] = details;
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
