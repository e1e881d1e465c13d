//! The accept loop: HTTP/1 connections with a header timeout and a cap on how many are open.
//!
//! `axum::serve` sets neither: a client that trickles its request header one byte at a time
//! holds a connection (and a descriptor) for as long as it likes, and enough of them exhaust
//! the process's descriptors, which the actors need too.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

/// A client connection's place under the cap, in every request's extensions. An upgraded
/// connection (a WebSocket) leaves hyper's hands, so its relay keeps a clone for as long as
/// the socket lives; the place is free when the last clone is dropped.
#[derive(Clone)]
pub struct ConnectionSlot {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// Connection limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request header not complete after this long closes its connection.
    pub header_timeout: Duration,
    /// Most client connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` resolves, then lets open connections finish
/// their requests. Each request carries the peer's address as [`ConnectInfo`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) {
    // Dropping `draining` tells every connection to finish its request and close; each holds
    // a `done` receiver, so `finished.closed()` resolves when the last has closed.
    let (draining, drain) = tokio::sync::watch::channel(());
    let (finished, done) = tokio::sync::watch::channel(());
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(stop);
    loop {
        // Take a slot before accepting: at the cap, new clients queue in the kernel's backlog
        // instead of costing a descriptor each.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept:
                    // neither is fatal. Back off briefly so a descriptor shortage does not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnectionSlot {
            _permit: Arc::new(slot),
        };
        let held = slot.clone();
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.extensions_mut().insert(held.clone());
                    request.map(Body::new)
                });
        let service = TowerToHyperService::new(service);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (mut drain, done) = (drain.clone(), done.clone());
        tokio::spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = drain.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop((slot, done));
        });
    }
    drop(listener);
    drop((draining, drain, done));
    finished.closed().await;
}

/// The default connection cap: what the open-file limit leaves after the runtime's actors
/// (`actor_descriptors`) and a reserve for logs, the registry and sandboxes' pipes, halved
/// because a proxied request holds two descriptors (the client's and the sandbox's). At
/// least 64.
pub fn default_max_connections(actor_descriptors: u64) -> usize {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let reserve = 128;
    let left = limit
        .saturating_sub(actor_descriptors)
        .saturating_sub(reserve);
    ((left / 2) as usize).max(64)
}
