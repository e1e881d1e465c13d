//! Request extractors that answer in the API's error format: the caller's credentials, JSON
//! bodies (at most 1 MiB) and query strings.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use burrow_identity::{InstanceId, UserId};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{Caller, verify};

/// The largest JSON body an API route reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// A platform caller: the request carried the internal API key.
#[derive(Debug)]
pub struct Platform;

impl FromRequestParts<Arc<AppState>> for Platform {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let ok = parts.headers.get("x-internal-api-key").is_some_and(|k| {
            bool::from(k.as_bytes().ct_eq(state.keys.internal_api_key.as_bytes()))
        });
        if ok {
            Ok(Platform)
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "Forbidden"))
        }
    }
}

/// The bearer of a valid token.
#[derive(Debug)]
pub struct User(pub Caller);

/// The token of a request, if it carries one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        bearer(parts)
            .and_then(|t| verify(&state.keys.token_secret, t))
            .map(User)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"))
    }
}

/// The bearer of a valid admin token.
#[derive(Debug)]
pub struct Admin(pub Caller);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let User(caller) = User::from_request_parts(parts, state).await?;
        if caller.admin {
            Ok(Admin(caller))
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "Forbidden"))
        }
    }
}

/// A JSON body of at most [`MAX_BODY`] bytes; an empty body reads as `{}`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
                    .details(format!("the limit is {MAX_BODY} bytes"))
            })?;
        // JSON is UTF-8 (RFC 8259); serde would skip over bad bytes in fields it ignores.
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::bad_request("Invalid request body").details(format!("not UTF-8: {e}"))
        })?;
        let text = if text.trim().is_empty() { "{}" } else { text };
        serde_json::from_str(text)
            .map(Json)
            .map_err(|e| ApiError::bad_request("Invalid request body").details(e.to_string()))
    }
}

/// A query string.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| Params(q))
            .map_err(|e| ApiError::bad_request("Invalid query").details(e.body_text()))
    }
}

/// Parses an optional instance id (400 "Invalid instance ID" when malformed).
pub fn instance_id(text: Option<&str>) -> Result<Option<InstanceId>, ApiError> {
    text.map(|t| t.parse().map_err(|_| ApiError::invalid_instance_id()))
        .transpose()
}

/// Parses a user id (400 naming the problem).
pub fn user_id(text: Option<&str>) -> Result<UserId, ApiError> {
    let text = text.ok_or_else(|| ApiError::bad_request("userId is required"))?;
    text.parse().map_err(|e: burrow_identity::IdError| {
        ApiError::bad_request("Invalid user ID").details(e.to_string())
    })
}
