//! The guard on actor SQL: SQLite's authorizer, which refuses statements that name the
//! runtime's `_burrow_*` tables, control the turn's transaction, attach other databases or
//! change the pragmas that durability rests on — unless the runtime itself is running them.

use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use super::RESERVED_PREFIX;

/// Runs `f` with the runtime's own SQL allowed through the authorizer.
pub(super) fn internally<T>(internal: &AtomicBool, f: impl FnOnce() -> T) -> T {
    internal.store(true, Ordering::Relaxed);
    let out = f();
    internal.store(false, Ordering::Relaxed);
    out
}

const PROTECTED_PRAGMAS: &[&str] = &[
    "journal_mode",
    "locking_mode",
    "synchronous",
    "writable_schema",
    "schema_version",
    "temp_store_directory",
    "data_store_directory",
];

fn reserved(name: &str) -> bool {
    name.len() >= RESERVED_PREFIX.len()
        && name[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX)
}

/// The authorizer for actor SQL. SQLite calls it while preparing each statement.
pub(super) fn authorize(internal: &AtomicBool, ctx: AuthContext<'_>) -> Authorization {
    if internal.load(Ordering::Relaxed) {
        return Authorization::Allow;
    }
    let allowed = match ctx.action {
        AuthAction::Transaction { .. } | AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
            false
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            pragma_value.is_none()
                || !PROTECTED_PRAGMAS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(pragma_name))
        }
        AuthAction::Savepoint { savepoint_name, .. } => !reserved(savepoint_name),
        AuthAction::CreateIndex {
            index_name: a,
            table_name: b,
        }
        | AuthAction::DropIndex {
            index_name: a,
            table_name: b,
        }
        | AuthAction::CreateTrigger {
            trigger_name: a,
            table_name: b,
        }
        | AuthAction::DropTrigger {
            trigger_name: a,
            table_name: b,
        }
        | AuthAction::CreateTempIndex {
            index_name: a,
            table_name: b,
        }
        | AuthAction::CreateTempTrigger {
            trigger_name: a,
            table_name: b,
        } => !reserved(a) && !reserved(b),
        AuthAction::CreateTable { table_name: t }
        | AuthAction::CreateTempTable { table_name: t }
        | AuthAction::DropTable { table_name: t }
        | AuthAction::Insert { table_name: t }
        | AuthAction::Delete { table_name: t }
        | AuthAction::Read { table_name: t, .. }
        | AuthAction::Update { table_name: t, .. }
        | AuthAction::AlterTable { table_name: t, .. }
        | AuthAction::Analyze { table_name: t }
        | AuthAction::Reindex { index_name: t }
        | AuthAction::CreateView { view_name: t }
        | AuthAction::DropView { view_name: t } => !reserved(t),
        _ => true,
    };
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}
