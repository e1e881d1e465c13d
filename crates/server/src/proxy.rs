//! `ANY /i/{instanceId}/{*rest}`: a reverse proxy to the instance's sandbox.
//!
//! Only the owner's token passes; only a running sandbox is reached (a stopped one is never
//! woken by a request). The `/i/{instanceId}` prefix is stripped, the query kept, the caller's
//! credentials (`Authorization`, cookies) removed and the sandbox's gateway token added.
//! Bodies stream both ways without a size limit; WebSocket upgrades are relayed message by
//! message, close codes included.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use burrow_identity::InstanceId;
use burrow_state::Status;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::bearer;
use crate::resolve::{Scope, instance};
use crate::tokens::verify;

/// The header carrying the gateway token to the sandbox.
const PROXY_TOKEN: &str = "x-burrow-proxy-token";

/// Headers that belong to one hop, never forwarded (RFC 9110 §7.6.1), plus the caller's
/// credentials.
const DROPPED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "authorization",
    "cookie",
];

/// Splits `/i/{id}/{rest}` into the id text and the rest (with its leading `/`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let tail = path.strip_prefix("/i/")?;
    Some(match tail.find('/') {
        Some(at) => (&tail[..at], &tail[at..]),
        None => (tail, "/"),
    })
}

/// The proxy handler.
pub async fn proxy(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match forward(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn forward(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let caller = bearer(&parts)
        .and_then(|t| verify(&state.keys.token_secret, t))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"))?;
    let (id_text, rest) = split_path(parts.uri.path()).ok_or_else(ApiError::invalid_instance_id)?;
    let id: InstanceId = id_text
        .parse()
        .map_err(|_| ApiError::invalid_instance_id())?;
    let rest = rest.to_owned();
    let (_, handle) = instance(state, Scope::User, &caller.user_id, Some(id)).await?;
    let route = handle
        .route()
        .await
        .map_err(|e| Scope::User.error("proxy", e))?;
    let address = match route.status {
        Status::Destroying | Status::Restoring => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Instance is {}", status_word(route.status)),
            ));
        }
        Status::Running => route.address,
        _ => None,
    }
    .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Instance is not running"))?;
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let token = state.instances.gateway_token(&route.sandbox_id);
    let prefix = format!("/i/{id}");

    let wants_websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_websocket {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|r| {
                ApiError::bad_request("Invalid WebSocket upgrade").details(r.body_text())
            })?;
        return relay_websocket(upgrade, &parts.headers, address, &path_and_query, &token).await;
    }

    let uri: Uri = format!("http://{address}{path_and_query}")
        .parse()
        .map_err(|e| ApiError::bad_request("Invalid request path").details(format!("{e}")))?;
    let mut upstream = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)
        .map_err(|e| ApiError::internal("proxy", e))?;
    let headers = upstream.headers_mut();
    copy_headers(&parts.headers, headers);
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&address.to_string()).expect("an address is a valid header"),
    );
    headers.insert(
        PROXY_TOKEN,
        HeaderValue::from_str(&token).expect("hex is a valid header"),
    );
    headers.insert(
        "x-forwarded-prefix",
        HeaderValue::from_str(&prefix).expect("a path is a valid header"),
    );
    let response = state.http.request(upstream).await.map_err(|e| {
        tracing::warn!(instance = %id, error = %e, "sandbox unreachable");
        ApiError::new(StatusCode::BAD_GATEWAY, "Sandbox unreachable")
    })?;
    let (mut parts, body) = response.into_parts();
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    parts.headers = headers;
    Ok(Response::from_parts(parts, Body::new(body)))
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Destroying => "being destroyed",
        Status::Restoring => "being restored",
        _ => "busy",
    }
}

/// Copies end-to-end headers: drops hop-by-hop ones, those the `Connection` header names, and
/// the caller's credentials.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named: Vec<HeaderName> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for (name, value) in from {
        if DROPPED.contains(&name.as_str()) || named.contains(name) || name == PROXY_TOKEN {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

async fn relay_websocket(
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
    address: std::net::SocketAddr,
    path_and_query: &str,
    token: &str,
) -> Result<Response, ApiError> {
    let mut request = format!("ws://{address}{path_and_query}")
        .into_client_request()
        .map_err(|e| ApiError::bad_request("Invalid request path").details(e.to_string()))?;
    request.headers_mut().insert(
        PROXY_TOKEN,
        HeaderValue::from_str(token).expect("hex is a valid header"),
    );
    if let Some(protocols) = headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        request
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.clone());
    }
    // Connect to the sandbox first: if it refuses, the caller gets an HTTP error, not a
    // socket that closes at once.
    let (backend, response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "sandbox WebSocket unreachable");
            ApiError::new(StatusCode::BAD_GATEWAY, "Sandbox unreachable")
        })?;
    let mut upgrade = upgrade;
    if let Some(chosen) = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
    {
        upgrade = upgrade.protocols([chosen.to_owned()]);
    }
    Ok(upgrade.on_upgrade(move |client| relay(client, backend)))
}

type Backend =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Passes messages both ways. A close from either side is passed on and the relay keeps
/// reading until both closing handshakes are done (reading is what flushes a socket's close
/// reply); when one side ends, the other is closed and given a few seconds to finish.
async fn relay(client: WebSocket, backend: Backend) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut backend_tx, mut backend_rx) = backend.split();
    let upstream = async move {
        while let Some(Ok(message)) = client_rx.next().await {
            if let Some(m) = to_backend(message) {
                // After a close, sends fail; keep reading to finish the handshake.
                let _ = backend_tx.send(m).await;
            }
        }
        let _ = backend_tx.close().await;
    };
    let downstream = async move {
        while let Some(Ok(message)) = backend_rx.next().await {
            if let Some(m) = to_client(message) {
                let _ = client_tx.send(m).await;
            }
        }
        let _ = client_tx.close().await;
    };
    let (mut up, mut down) = (tokio::spawn(upstream), tokio::spawn(downstream));
    let linger = std::time::Duration::from_secs(10);
    tokio::select! {
        _ = &mut up => { let _ = tokio::time::timeout(linger, &mut down).await; }
        _ = &mut down => { let _ = tokio::time::timeout(linger, &mut up).await; }
    }
    up.abort();
    down.abort();
}

fn to_backend(message: ws::Message) -> Option<tungstenite::Message> {
    Some(match message {
        ws::Message::Text(t) => tungstenite::Message::text(t.as_str()),
        ws::Message::Binary(b) => tungstenite::Message::binary(b),
        ws::Message::Close(frame) => {
            tungstenite::Message::Close(frame.map(|f| tungstenite::protocol::CloseFrame {
                code: f.code.into(),
                reason: f.reason.as_str().into(),
            }))
        }
        // Each hop answers its own pings.
        ws::Message::Ping(_) | ws::Message::Pong(_) => return None,
    })
}

fn to_client(message: tungstenite::Message) -> Option<ws::Message> {
    Some(match message {
        tungstenite::Message::Text(t) => ws::Message::text(t.as_str()),
        tungstenite::Message::Binary(b) => ws::Message::binary(b),
        tungstenite::Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        tungstenite::Message::Ping(_)
        | tungstenite::Message::Pong(_)
        | tungstenite::Message::Frame(_) => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_the_instance_id() {
        assert_eq!(split_path("/i/abc"), Some(("abc", "/")));
        assert_eq!(split_path("/i/abc/"), Some(("abc", "/")));
        assert_eq!(split_path("/i/abc/x/y"), Some(("abc", "/x/y")));
        assert_eq!(split_path("/x/abc"), None);
    }

    #[test]
    fn credentials_and_hop_headers_stay_behind() {
        let mut from = HeaderMap::new();
        from.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        from.insert(header::COOKIE, "a=b".parse().unwrap());
        from.insert(header::CONNECTION, "x-hop, keep-alive".parse().unwrap());
        from.insert("x-hop", "1".parse().unwrap());
        from.insert("x-burrow-proxy-token", "forged".parse().unwrap());
        from.insert("x-kept", "yes".parse().unwrap());
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to);
        assert_eq!(to.len(), 1, "{to:?}");
        assert_eq!(to["x-kept"], "yes");
    }
}
