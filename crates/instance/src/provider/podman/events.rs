//! The engine's event stream, narrowed to what the instance manager acts on: a container of
//! Burrow's died.
//!
//! Podman 4.3 ignores a key-only `label` filter on `/events`, so the stream is filtered here.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use burrow_identity::MachineId;
use futures_util::{Stream, StreamExt as _};

use super::PodmanProvider;
use super::container::{SANDBOX_LABEL, check_machine_id};
use crate::provider::ProviderError;

/// A container of Burrow's that stopped running, as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The machine (the container's name).
    pub machine_id: MachineId,
    /// The engine's id of the container that died: a machine recreated since has another, and
    /// an exit of the old one must not be applied to it.
    pub container_id: String,
    /// The exit code, when the engine gave one (137: killed).
    pub code: Option<i64>,
    /// When it died, in milliseconds since the epoch.
    pub at_ms: i64,
}

impl PodmanProvider {
    /// The exits of Burrow's containers from `since_ms` on (the engine replays its event log;
    /// whole seconds, so an exit just before may come again), or from now. The stream ends, or
    /// yields an error, when the connection to the engine is lost: open it again from the last
    /// exit seen, and reconcile what the engine may no longer have.
    pub fn exits(
        &self,
        since_ms: Option<i64>,
    ) -> impl Stream<Item = Result<Exit, ProviderError>> + Send + 'static {
        // Only container events: Podman also sends events of its own (type `system`) that the
        // Docker model cannot read, and the client's stream ends at the first it cannot read.
        let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
        let mut options = EventsOptionsBuilder::default().filters(&filters);
        if let Some(ms) = since_ms {
            options = options.since(&ms.div_euclid(1000).to_string());
        }
        let options = Some(options.build());
        self.engine.events(options).filter_map(|event| async move {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    return Some(Err(ProviderError::failed("reading the engine's events", e)));
                }
            };
            if event.typ != Some(bollard::models::EventMessageTypeEnum::CONTAINER)
                || event.action.as_deref() != Some("die")
            {
                return None;
            }
            let actor = event.actor?;
            let attributes = actor.attributes?;
            // Labels arrive among the attributes; a container without Burrow's is not ours.
            attributes.get(SANDBOX_LABEL)?;
            let machine_id: MachineId = attributes.get("name")?.parse().ok()?;
            check_machine_id(&machine_id).ok()?;
            Some(Ok(Exit {
                machine_id,
                container_id: actor.id?,
                code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
                at_ms: event
                    .time_nano
                    .map(|ns| ns / 1_000_000)
                    .or(event.time.map(|s| s * 1000))
                    .unwrap_or(0),
            }))
        })
    }
}
