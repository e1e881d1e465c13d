//! The JSON shapes of responses.

use burrow_identity::{ActorName, InstanceId};
use burrow_instance::{ConfigView, DebugStatus, Restarted};
use burrow_restore::InstanceRow;
use burrow_state::StatusView;
use serde_json::{Value, json};

/// The instance id a response reports: `null` for a legacy instance.
pub fn instance_id(name: &ActorName) -> Option<InstanceId> {
    match name {
        ActorName::Instance(id) => Some(*id),
        ActorName::Legacy(_) => None,
    }
}

/// A status.
pub fn status(name: &ActorName, v: &StatusView) -> Value {
    json!({
        "instanceId": instance_id(name),
        "userId": v.user_id,
        "sandboxId": v.sandbox_id,
        "orgId": v.org_id,
        "status": v.status,
        "provisionedAt": v.provisioned_at,
        "lastStartedAt": v.last_started_at,
        "lastStoppedAt": v.last_stopped_at,
        "envVarCount": v.env_var_count,
        "secretCount": v.secret_count,
    })
}

/// Everything an admin may see.
pub fn debug_status(name: &ActorName, d: &DebugStatus) -> Value {
    let mut v = serde_json::to_value(&d.view).unwrap_or_else(|_| json!({}));
    v["instanceId"] = json!(instance_id(name));
    v["nextAlarmAt"] = json!(d.next_alarm_ms);
    v["withheldConfigNames"] = json!(d.withheld);
    v
}

/// A configuration: env var values, secret names only.
pub fn config(c: &ConfigView) -> Value {
    json!({ "envVars": c.env_vars, "secretNames": c.secret_names })
}

/// The instance id of a registry row as users address it: `null` for a legacy row.
pub fn row_instance_id(row: &InstanceRow) -> Option<InstanceId> {
    (row.sandbox_id == row.id.sandbox_id()).then_some(row.id)
}

/// A registry row.
pub fn row(row: &InstanceRow) -> Value {
    json!({
        "instanceId": row_instance_id(row),
        "rowId": row.id,
        "userId": row.user_id,
        "sandboxId": row.sandbox_id,
        "orgId": row.org_id,
        "name": row.name,
        "createdAt": row.created_at_ms,
        "destroyedAt": row.destroyed_at_ms,
    })
}

/// A restart's outcome: `{"success": true}`, or `false` with the instance's reason.
pub fn restarted(outcome: Restarted) -> Value {
    match outcome {
        Restarted::Began => json!({ "success": true }),
        Restarted::Refused(e) => json!({ "success": false, "error": e }),
    }
}
