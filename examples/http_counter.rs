//! A minimal host server embedding the runtime, for HTTP load tests anyone can compare with
//! other systems.
//!
//! - `POST /counter/{name}` activates the actor `name`, increments its counter in its SQLite
//!   file (one upsert) and answers `{"name": …, "value": …}`;
//! - `GET /counter/{name}` answers the value.
//!
//! Environment: `PORT` (default 8080, on 127.0.0.1), `DATA_DIR` (default a fresh temporary
//! directory), `DURABILITY=process|machine` (default process).
//!
//! ```sh
//! cargo run --release --example http_counter
//! curl -X POST http://127.0.0.1:8080/counter/alice   # {"name":"alice","value":1}
//! ```

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use burrow::runtime::{
    Abort, Actor, Context, Durability, Handler, Message, Namespace, Options, Runtime,
};
use serde_json::json;

struct Counter;

/// Adds one; replies with the new value.
struct Increment;

impl Message for Increment {
    type Reply = i64;
}

/// Reads the value.
struct Read;

impl Message for Read {
    type Reply = i64;
}

impl Actor for Counter {
    async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        ctx.storage().sql().execute_batch(
            "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
        )?;
        Ok(())
    }
}

impl Handler<Increment> for Counter {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: Increment) -> Result<i64, Abort> {
        // Cached: preparing the statement again was half the shard's time per request.
        let mut upsert = ctx.storage().sql().prepare_cached(
            "INSERT INTO counter (id, value) VALUES (1, 1)
             ON CONFLICT (id) DO UPDATE SET value = value + 1 RETURNING value",
        )?;
        Ok(upsert.query_row([], |r| r.get(0))?)
    }
}

impl Handler<Read> for Counter {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: Read) -> Result<i64, Abort> {
        let mut read = ctx
            .storage()
            .sql()
            .prepare_cached("SELECT coalesce(max(value), 0) FROM counter WHERE id = 1")?;
        Ok(read.query_row([], |r| r.get(0))?)
    }
}

async fn call(ns: &Namespace<Counter>, name: &str, increment: bool) -> Response {
    if name.is_empty() || name.len() > 256 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "names are 1 to 256 bytes"})),
        )
            .into_response();
    }
    let stub = ns.get_by_name(name);
    let outcome = if increment {
        stub.call(Increment).await
    } else {
        stub.call(Read).await
    };
    match outcome {
        Ok(value) => Json(json!({"name": name, "value": value})).into_response(),
        Err(e) => {
            let status = if e.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (status, Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let durability = match std::env::var("DURABILITY").as_deref() {
        Ok("machine") => Durability::Machine,
        Ok("process") | Err(_) => Durability::Process,
        Ok(other) => {
            return Err(format!("DURABILITY must be process or machine, not {other:?}").into());
        }
    };
    let _temp;
    let data_dir = match std::env::var_os("DATA_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            _temp = tempfile::tempdir()?;
            _temp.path().to_owned()
        }
    };
    let runtime = Runtime::open(Options::new(&data_dir).durability(durability))?;
    let counters = Arc::new(runtime.namespace("counter", |_| Counter)?);
    let app = Router::new()
        .route(
            "/counter/{name}",
            get(
                |State(ns): State<Arc<Namespace<Counter>>>, Path(name): Path<String>| async move {
                    call(&ns, &name, false).await
                },
            )
            .post(
                |State(ns): State<Arc<Namespace<Counter>>>, Path(name): Path<String>| async move {
                    call(&ns, &name, true).await
                },
            ),
        )
        .with_state(counters);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening on http://{} (data in {})",
        listener.local_addr()?,
        data_dir.display()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    runtime.shutdown(std::time::Duration::from_secs(10)).await;
    Ok(())
}
