//! `ANY /i/{instanceId}/{*rest}`: a reverse proxy to the instance's sandbox.
//!
//! Only the owner's token passes; only a running sandbox is reached (a stopped one is never
//! woken by a request). The `/i/{instanceId}` prefix is stripped, the query kept, the caller's
//! credentials (`Authorization`, cookies) removed and the sandbox's gateway token added; the
//! `X-Forwarded-*` and `Forwarded` headers are Burrow's, never the client's. Bodies stream both
//! ways without a size limit; connecting and waiting for the response header are bounded
//! ([`HttpLimits`](crate::HttpLimits)). WebSocket upgrades are relayed message by message, close
//! codes included, with a size limit per message, an idle timeout, and a close when the token
//! that opened them expires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use burrow_identity::InstanceId;
use burrow_state::Status;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::serve::ConnectionSlot;

use crate::error::ApiError;
use crate::extract::bearer;
use crate::resolve::{Scope, instance};
use crate::state::AppState;
use crate::tokens::verify;

/// The header carrying the gateway token to the sandbox.
const PROXY_TOKEN: &str = "x-burrow-proxy-token";

/// Headers that belong to one hop, never forwarded (RFC 9110 §7.6.1), the caller's
/// credentials, and the forwarding headers Burrow sets itself (a client's would let it claim
/// any address or scheme to the sandbox).
const DROPPED: [&str; 16] = [
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
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "forwarded",
];

/// Splits `/i/{id}/{rest}` into the id text and the rest (with its leading `/`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let tail = path.strip_prefix("/i/")?;
    Some(match tail.find('/') {
        Some(at) => (&tail[..at], &tail[at..]),
        None => (tail, "/"),
    })
}

/// The proxy's routes: documented for the standard methods, and taking any method (the
/// sandbox's application decides what it answers).
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<Arc<AppState>> {
    use utoipa_axum::routes;
    type Documented = utoipa_axum::router::UtoipaMethodRouter<Arc<AppState>>;
    let (schemas, paths, _): Documented = routes!(root);
    let (rest_schemas, rest_paths, _): Documented = routes!(rest);
    utoipa_axum::router::OpenApiRouter::new()
        .routes((schemas, paths, axum::routing::any(proxy)))
        .routes((rest_schemas, rest_paths, axum::routing::any(proxy)))
}

#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/i/{instance_id}",
    tag = "proxy",
    security(("bearer" = [])),
    params(("instance_id" = String, Path, description = "The instance id (a UUID)")),
    responses(
        crate::openapi::Relayed,
        crate::openapi::Errors,
        crate::openapi::InstanceErrors,
    )
)]
// Only documents the route: `routes!` takes its path, the router another handler.
async fn root() {}

#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/i/{instance_id}/{*rest}",
    tag = "proxy",
    security(("bearer" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance id (a UUID)"),
        ("rest" = String, Path, description = "The path at the sandbox"),
    ),
    responses(
        crate::openapi::Relayed,
        crate::openapi::Errors,
        crate::openapi::InstanceErrors,
    )
)]
// Only documents the route: `routes!` takes its path, the router another handler.
async fn rest() {}

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
    let (name, handle) = instance(state, Scope::User, &caller.user_id, Some(id)).await?;
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
    let forwarded = forwarded_headers(&parts, &format!("/i/{id}"));

    let wants_websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_websocket {
        let limits = &state.limits;
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|r| ApiError::bad_request("Invalid WebSocket upgrade").details(r.body_text()))?
            .max_message_size(limits.websocket_max_message)
            .max_frame_size(limits.websocket_max_message);
        let relay = Relay {
            address,
            path_and_query,
            token,
            forwarded,
            max_message: limits.websocket_max_message,
            connect_timeout: limits.upstream_connect_timeout,
            idle_timeout: limits.websocket_idle_timeout,
            token_expires: caller.expires_at,
            slot: parts.extensions.get::<ConnectionSlot>().cloned(),
        };
        return relay.accept(upgrade, &parts.headers).await;
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
    for (name, value) in forwarded {
        headers.insert(name, value);
    }
    let waited = state.limits.upstream_response_timeout;
    let response = tokio::time::timeout(waited, state.http.request(upstream))
        .await
        .map_err(|_| {
            tracing::warn!(instance = %id, ?waited, "sandbox sent no response header in time");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Sandbox did not answer in time",
            )
        })?
        .map_err(|e| {
            tracing::warn!(instance = %id, error = %e, "sandbox unreachable");
            // The route may be stale (the sandbox died): the next request asks the actor.
            state.instances.forget_route(&name);
            ApiError::new(StatusCode::BAD_GATEWAY, "Sandbox unreachable")
        })?;
    let (mut parts, body) = response.into_parts();
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    parts.headers = headers;
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The forwarding headers Burrow sets: the peer's address, the host the client asked for,
/// the scheme (plain HTTP: Burrow terminates no TLS), and the stripped prefix.
fn forwarded_headers(
    parts: &axum::http::request::Parts,
    prefix: &str,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(5);
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.contains([';', ',', '"']));
    let mut forwarded = Vec::new();
    if let Some(ip) = peer {
        out.push((
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(&ip.to_string()).expect("an address is a valid header"),
        ));
        // RFC 7239 §6: an IPv6 node is bracketed and quoted.
        forwarded.push(match ip {
            std::net::IpAddr::V4(v4) => format!("for={v4}"),
            std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        });
    }
    if let Some(host) = host {
        out.push((
            HeaderName::from_static("x-forwarded-host"),
            HeaderValue::from_str(host).expect("it was a header value"),
        ));
        forwarded.push(format!("host=\"{host}\""));
    }
    out.push((
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    ));
    forwarded.push("proto=http".to_owned());
    out.push((
        HeaderName::from_static("forwarded"),
        HeaderValue::from_str(&forwarded.join(";")).expect("checked characters"),
    ));
    out.push((
        HeaderName::from_static("x-forwarded-prefix"),
        HeaderValue::from_str(prefix).expect("a path is a valid header"),
    ));
    out
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

/// A WebSocket relay to a sandbox, with its limits.
struct Relay {
    address: SocketAddr,
    path_and_query: String,
    token: String,
    forwarded: Vec<(HeaderName, HeaderValue)>,
    max_message: usize,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// The opening token's expiry: the relay closes then (the socket must not outlive the
    /// credential that opened it).
    token_expires: SystemTime,
    /// Keeps the client's connection counted while the socket lives.
    slot: Option<ConnectionSlot>,
}

/// Why the relay closed both sides itself.
#[derive(Debug, Clone, Copy)]
enum Cutoff {
    Idle,
    TokenExpired,
}

impl Cutoff {
    fn frame(self) -> (u16, &'static str) {
        match self {
            // 1001 "going away"; 1008 "policy violation" (RFC 6455 §7.4.1).
            Cutoff::Idle => (1001, "idle timeout"),
            Cutoff::TokenExpired => (1008, "token expired"),
        }
    }
}

impl Relay {
    /// Connects to the sandbox, then accepts the client's upgrade.
    async fn accept(
        self,
        upgrade: WebSocketUpgrade,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let mut request = format!("ws://{}{}", self.address, self.path_and_query)
            .into_client_request()
            .map_err(|e| ApiError::bad_request("Invalid request path").details(e.to_string()))?;
        let upstream = request.headers_mut();
        upstream.insert(
            PROXY_TOKEN,
            HeaderValue::from_str(&self.token).expect("hex is a valid header"),
        );
        for (name, value) in &self.forwarded {
            upstream.insert(name.clone(), value.clone());
        }
        if let Some(protocols) = headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
            upstream.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.clone());
        }
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message));
        // Connect to the sandbox first: if it refuses, the caller gets an HTTP error, not a
        // socket that closes at once.
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
        let (backend, response) = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Sandbox did not answer in time",
                )
            })?
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
        Ok(upgrade.on_upgrade(move |client| self.run(client, backend)))
    }

    /// Passes messages both ways (a [`pump`] each); when one side ends, the other is given a
    /// few seconds to finish. When the relay is idle too long or the token expires, it closes
    /// both sides.
    async fn run(self, client: WebSocket, backend: Backend) {
        let _slot = self.slot;
        let started = tokio::time::Instant::now();
        // Milliseconds after `started` of the last message either way.
        let last = Arc::new(AtomicU64::new(0));
        let touch = {
            let last = last.clone();
            move || last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed)
        };
        let (cut_tx, cut_rx) = tokio::sync::watch::channel(None::<Cutoff>);
        let (client_tx, client_rx) = client.split();
        let (backend_tx, backend_rx) = backend.split();
        let upstream = pump(
            client_rx,
            backend_tx,
            to_backend,
            |code, reason| {
                tungstenite::Message::Close(Some(tungstenite::protocol::CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                }))
            },
            touch.clone(),
            cut_rx.clone(),
        );
        let downstream = pump(
            backend_rx,
            client_tx,
            to_client,
            |code, reason| {
                ws::Message::Close(Some(ws::CloseFrame {
                    code,
                    reason: reason.into(),
                }))
            },
            touch,
            cut_rx,
        );
        let (mut up, mut down) = (tokio::spawn(upstream), tokio::spawn(downstream));
        let expires_in = self
            .token_expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let watchdog = async {
            let expires = started + expires_in;
            loop {
                let seen = last.load(Ordering::Relaxed);
                let idle_at = started + Duration::from_millis(seen) + self.idle_timeout;
                tokio::time::sleep_until(idle_at.min(expires)).await;
                if tokio::time::Instant::now() >= expires {
                    return Cutoff::TokenExpired;
                }
                if last.load(Ordering::Relaxed) == seen {
                    return Cutoff::Idle;
                }
            }
        };
        let linger = Duration::from_secs(10);
        tokio::select! {
            _ = &mut up => { let _ = tokio::time::timeout(linger, &mut down).await; }
            _ = &mut down => { let _ = tokio::time::timeout(linger, &mut up).await; }
            cutoff = watchdog => {
                tracing::debug!(?cutoff, "closing a relayed WebSocket");
                let _ = cut_tx.send(Some(cutoff));
                let _ = tokio::time::timeout(linger, async { let _ = (&mut up).await; let _ = (&mut down).await; }).await;
            }
        }
        up.abort();
        down.abort();
    }
}

type Backend =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One direction of a relay: passes what `from` sends to `to` (converted; pings stay with
/// their hop), marking activity, until `from` ends, then closes `to`. A close from `from` is
/// passed on and reading goes on, to finish the closing handshake (reading is what flushes a
/// socket's close reply). When the relay cuts the socket off, `to` gets the close frame
/// `close` makes.
async fn pump<In, Out, ReadError, SendError>(
    mut from: impl futures_util::Stream<Item = Result<In, ReadError>> + Unpin,
    mut to: impl futures_util::Sink<Out, Error = SendError> + Unpin,
    convert: fn(In) -> Option<Out>,
    close: fn(u16, &'static str) -> Out,
    touch: impl Fn(),
    mut cut: tokio::sync::watch::Receiver<Option<Cutoff>>,
) {
    loop {
        tokio::select! {
            message = from.next() => {
                let Some(Ok(message)) = message else { break };
                touch();
                if let Some(m) = convert(message) {
                    // After a close, sends fail; keep reading to finish the handshake.
                    let _ = to.send(m).await;
                }
            }
            Ok(()) = cut.changed() => {
                let cutoff = *cut.borrow();
                if let Some((code, reason)) = cutoff.map(Cutoff::frame) {
                    let _ = to.send(close(code, reason)).await;
                }
            }
        }
    }
    let _ = to.close().await;
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
