//! Reporting incidents (a dead-lettered alarm, a quarantined file) to the log, so that
//! operators of a cluster list them from one place. Best effort and in the background: an
//! incident is also in the node's own log and metrics, and a turn never waits for its record.

use std::sync::Arc;
use std::time::Duration;

use crate::id::ActorId;
use crate::turn_log::{Incident, LogKey, TurnLog};

/// How long a record may take before it is given up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Records `incident` of the actor in `log`, if there is a log and a tokio runtime to do it on.
pub(crate) fn report(
    log: Option<&Arc<dyn TurnLog>>,
    namespace: Arc<str>,
    id: ActorId,
    incident: Incident,
) {
    let (Some(log), Ok(runtime)) = (log, tokio::runtime::Handle::try_current()) else {
        return;
    };
    let log = log.clone();
    runtime.spawn(async move {
        let key = LogKey { namespace, id };
        match tokio::time::timeout(TIMEOUT, log.record_incident(&key, &incident)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(namespace = %key.namespace, id = %key.id, ?incident, "recording an incident in the log: {e}"),
            Err(_) => tracing::warn!(namespace = %key.namespace, id = %key.id, ?incident, "recording an incident in the log timed out"),
        }
    });
}

/// [`report`]s a quarantine.
pub(crate) fn quarantined(
    log: Option<&Arc<dyn TurnLog>>,
    namespace: Arc<str>,
    id: ActorId,
    reason: &str,
    moved_to: &std::path::Path,
) {
    report(
        log,
        namespace,
        id,
        Incident::Quarantined {
            reason: reason.to_owned(),
            moved_to: moved_to.display().to_string(),
        },
    );
}
