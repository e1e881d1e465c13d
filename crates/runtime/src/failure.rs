//! Why the end of a turn failed, and how a storage error or a panic becomes the caller's
//! [`CallError`].

use std::any::Any;

use crate::error::{Abort, CallError, ErrorKind, storage_error_kind};

/// Why the end of a turn failed.
pub(crate) struct Failure {
    pub(crate) error: CallError,
    /// Set when the storage error means the actor's file is damaged.
    pub(crate) corrupt: Option<String>,
    /// Whether the actor instance must go (it stays when only the commit hook failed).
    pub(crate) discard: bool,
}

impl Failure {
    pub(crate) fn storage(what: &str, e: &rusqlite::Error) -> Failure {
        Failure {
            error: storage_failure(what, e),
            corrupt: corruption(Some(e)),
            discard: true,
        }
    }

    pub(crate) fn transient(message: String) -> Failure {
        Failure {
            error: CallError::new(ErrorKind::TransientIo, message),
            corrupt: None,
            discard: true,
        }
    }

    /// A handler (or activation hook) that aborted (`Ok`) or panicked (`Err`).
    pub(crate) fn of_handler(outcome: std::thread::Result<Abort>) -> Failure {
        match outcome {
            Ok(abort) => Failure {
                corrupt: corruption(abort.storage_error()),
                error: abort.into_call_error(),
                discard: true,
            },
            Err(panic) => Failure {
                error: CallError::new(
                    ErrorKind::ActorFailed,
                    format!("the actor panicked: {}", panic_message(&*panic)),
                ),
                corrupt: None,
                discard: true,
            },
        }
    }
}

pub(crate) fn storage_failure(what: &str, e: &rusqlite::Error) -> CallError {
    CallError::new(storage_error_kind(e), format!("{what}: {e}"))
}

/// The description of a storage error that means the file is damaged.
fn corruption(e: Option<&rusqlite::Error>) -> Option<String> {
    e.filter(|e| storage_error_kind(e) == ErrorKind::ActorReset)
        .map(|e| e.to_string())
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-string panic payload)".to_owned())
}
