//! The gateway a local sandbox runs: the stand-in for the program a cloud machine would serve.
//!
//! It listens on loopback and answers:
//! - `GET /_burrow/health` → `{"status":"ok","sandboxId":…}` — the provider's probe, the only
//!   route that needs no token (like a cloud machine's health check, it bypasses the proxy).
//!   With `SANDBOX_BOOT_DELAY_MS` in its environment it answers 503 `{"status":"booting"}`
//!   for that long after starting, like a program that is slow to boot;
//! - anything else, only with header `x-burrow-proxy-token` equal to the gateway token
//!   (otherwise 401): a WebSocket upgrade is accepted and every message echoed (close codes
//!   included); any other request is answered with JSON `{"method","path","query","headers",
//!   "bodyBytes","proxyTokenValid"}` describing what arrived, its body streamed and counted, of
//!   any size. The token itself is never echoed (`headers` leaves it out): a response is seen
//!   by whoever made the request, and the token is the sandbox's credential, not theirs.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = burrow_sandbox::router("the-gateway-token".to_owned());
//! axum::serve(listener, app).await
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures_util::StreamExt as _;
use serde_json::json;
use subtle::ConstantTimeEq as _;

/// The header a request must carry, holding the gateway token.
pub const TOKEN_HEADER: &str = "x-burrow-proxy-token";
/// The health check's path.
pub const HEALTH_PATH: &str = "/_burrow/health";
/// The environment variable holding the sandbox's id (reported by the health check).
pub const SANDBOX_ID_ENV: &str = "BURROW_SANDBOX_ID";
/// The environment variable that makes the health check fail for this many milliseconds after
/// start (a slow boot).
pub const BOOT_DELAY_ENV: &str = "SANDBOX_BOOT_DELAY_MS";

/// Command-line arguments of `burrow sandbox`. Its `Debug` leaves the token out.
#[derive(Clone, clap::Parser)]
#[command(about = "Run a local sandbox's gateway")]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Once listening, write the bound port here (atomically: a reader sees all or nothing).
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// The sandbox's data folder (its volume); created if missing.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The token every request but the health check must carry in `x-burrow-proxy-token`.
    #[arg(long, env = "BURROW_GATEWAY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Started as root: enter the data folder, then run as this uid (and gid, with no
    /// supplementary groups) before doing anything else. The folders above the data folder
    /// may be closed to that uid: it keeps the data folder as its working directory and the
    /// port file's folder as an open descriptor.
    #[arg(long)]
    pub run_as: Option<u32>,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("port_file", &self.port_file)
            .field("data_dir", &self.data_dir)
            .field("run_as", &self.run_as)
            .finish_non_exhaustive()
    }
}

/// Runs the gateway until SIGTERM or SIGINT; the exit code says whether it started.
pub fn main(mut args: Args) -> ExitCode {
    // Before any thread exists: set*id change only the calling thread's credentials.
    let _port_dir = match args.run_as.map(|uid| drop_privileges(&mut args, uid)) {
        Some(Err(e)) => {
            eprintln!("burrow sandbox: cannot run as uid {:?}: {e}", args.run_as);
            return ExitCode::FAILURE;
        }
        Some(Ok(dir)) => Some(dir),
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("burrow sandbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("burrow sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Enters the data folder and opens the port file's folder while still root, then becomes
/// `uid` for good. Afterwards `args` name both through what the process holds: the data folder
/// as `.`, the port file under `/proc/self/fd/N`, which reaches the open folder without
/// looking at the folders above it. Returns the open folder, which must stay open.
fn drop_privileges(args: &mut Args, uid: u32) -> std::io::Result<Option<std::fs::File>> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir)?;
        std::env::set_current_dir(dir)?;
        args.data_dir = Some(PathBuf::from("."));
    }
    let port_dir = match &args.port_file {
        Some(file) => {
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = std::fs::File::open(parent.unwrap_or(Path::new(".")))?;
            let name = file.file_name().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the port file has no name",
                )
            })?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
            args.port_file = Some(PathBuf::from(format!("/proc/self/fd/{fd}")).join(name));
            Some(dir)
        }
        None => None,
    };
    setgroups(&[]).map_err(std::io::Error::from)?;
    setgid(Gid::from_raw(uid)).map_err(std::io::Error::from)?;
    setuid(Uid::from_raw(uid)).map_err(std::io::Error::from)?;
    // There is no way back: a process that could regain root is not isolated.
    if setuid(Uid::from_raw(0)).is_ok() || Uid::effective().as_raw() != uid {
        return Err(std::io::Error::other("root could be regained"));
    }
    Ok(port_dir)
}

/// Binds, reports the port, and serves until SIGTERM or SIGINT.
pub async fn run(args: Args) -> std::io::Result<()> {
    if args.token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the gateway token is empty (set --token or BURROW_GATEWAY_TOKEN)",
        ));
    }
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir)?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let port = listener.local_addr()?.port();
    if let Some(file) = &args.port_file {
        write_atomically(file, port.to_string().as_bytes())?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    axum::serve(listener, router(args.token))
        .with_graceful_shutdown(stop)
        .await
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The gateway's routes, checking `token`.
pub fn router(token: String) -> Router {
    let boot_delay = std::env::var(BOOT_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or_default();
    let booted_at = std::time::Instant::now() + boot_delay;
    Router::new()
        .route(HEALTH_PATH, get(move || health(booted_at)))
        .fallback(echo)
        .with_state(Arc::new(token))
}

async fn health(booted_at: std::time::Instant) -> Response {
    let sandbox_id = std::env::var(SANDBOX_ID_ENV).ok();
    if std::time::Instant::now() < booted_at {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "booting", "sandboxId": sandbox_id})),
        )
            .into_response();
    }
    Json(json!({"status": "ok", "sandboxId": sandbox_id})).into_response()
}

async fn echo(State(token): State<Arc<String>>, request: Request) -> Response {
    let authorised = request
        .headers()
        .get(TOKEN_HEADER)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())));
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": format!("missing or wrong {TOKEN_HEADER}")})),
        )
            .into_response();
    }
    let (mut parts, body) = request.into_parts();
    let wants_websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_websocket {
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade.on_upgrade(echo_socket),
            Err(rejection) => rejection.into_response(),
        };
    }
    let body_bytes = match count_body(body).await {
        Ok(n) => n,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("reading the request body: {e}")})),
            )
                .into_response();
        }
    };
    Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": header_map(&parts.headers),
        "bodyBytes": body_bytes,
        "proxyTokenValid": true,
    }))
    .into_response()
}

/// Reads the body to its end without keeping it.
async fn count_body(body: Body) -> Result<u64, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        total += chunk?.len() as u64;
    }
    Ok(total)
}

/// Headers by lower-case name; repeated headers joined with ", ".
fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        if name == TOKEN_HEADER {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// Sends every message back as it came; a close is answered with the same code and reason.
async fn echo_socket(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            // Answered by the protocol layer.
            Message::Ping(_) | Message::Pong(_) => {}
            // The protocol layer queues the matching close reply; reading on flushes it and
            // ends when the peer hangs up.
            Message::Close(_) => {}
            other => {
                if socket.send(other).await.is_err() {
                    break;
                }
            }
        }
    }
}
