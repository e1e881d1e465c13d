//! Placement changes as they happen: a claim that takes an actor from another node and a
//! release each `NOTIFY burrow_placement` with the actor's name (its id if it has none). A
//! node LISTENs on a dedicated connection to forget what it remembered of those actors'
//! places. Notifications are lost while that connection is down, so every (re)connection is
//! reported too: the listener must then forget everything. A cache fed by this is a hint;
//! the claim decides.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::PgTurnLog;

/// The channel claims and releases notify on.
pub const CHANNEL: &str = "burrow_placement";
const LISTEN: &str = "LISTEN burrow_placement";

/// What [`watch`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementEvent {
    /// The actor (by name, or id) was taken over or released.
    Moved(String),
    /// The listening connection was (re)established: anything may have moved meanwhile.
    Connected,
}

/// Listens for placement changes until `on_event` returns `false`, reconnecting (after
/// `retry`) whenever the connection fails.
pub async fn watch(
    log: &PgTurnLog,
    retry: Duration,
    mut on_event: impl FnMut(PlacementEvent) -> bool,
) {
    loop {
        match log.config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                // The connection makes progress only while its messages are polled.
                let listen = client.batch_execute(LISTEN);
                let listening = tokio::select! {
                    r = listen => r.map_err(|e| e.to_string()),
                    m = messages.next() => Err(format!("connection ended before LISTEN: {m:?}")),
                };
                match listening {
                    Ok(()) => {
                        if !on_event(PlacementEvent::Connected) {
                            return;
                        }
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    if !on_event(PlacementEvent::Moved(n.payload().to_owned())) {
                                        return;
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(
                                        "the placement listener's connection failed: {e}"
                                    );
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!("listening for placement changes: {e}"),
                }
                drop(client);
            }
            Err(e) => tracing::warn!("connecting the placement listener: {e}"),
        }
        // Whatever was missed while down is covered by the next `Connected`.
        tokio::time::sleep(retry).await;
    }
}
