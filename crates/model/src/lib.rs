//! A model of the cluster protocol of `docs/CLUSTER.md`, checked with stateright: nodes that
//! join, renew, lose and regain their leases, stall, crash and restart with their files kept
//! or lost; actors whose claims and appends go to PostgreSQL, modelled as one atomic
//! compare-and-set store; appends and their answers as messages that may be lost or
//! reordered; reads and acknowledgements recorded as a history.
//!
//! Each action stands for one statement or step of the real code (named in its comment).
//! Leases are judged by the store's clock; a node's local deadline passes before the store's
//! expiry (the drift allowance of `membership::local_deadline`), so an expiry in the store also
//! ends the node's local lease. Clients are implicit: a client's call is a node's `Send` or
//! `Read`, and its acknowledgement is the node's local commit after the store's answer.
//!
//! [`Protocol::bounded`] is what `cargo test` checks (about a minute at most);
//! [`Protocol::deep`] (three nodes) and [`Protocol::two_actors`] run with `BURROW_MODEL_DEEP=1`.

mod model;
#[cfg(test)]
mod tests;

pub use model::{Action, Activation, Msg, Node, Protocol, State, StoredActor, StoredNode};

/// A node's index.
pub type NodeId = u8;

/// An actor's index.
pub type ActorId = u8;
