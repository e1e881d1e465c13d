//! Calls between the nodes of a cluster: an instance's actor runs on one node at a time, and a
//! call that reaches another node (the edge, which has already authenticated the caller) is
//! forwarded to it as a [`Forwarded`] request and answered with a [`ForwardReply`].
//!
//! Only the operations in [`Op`] cross the network: what an actor reports to itself from its
//! background work has no variant, so no node can be made to send it. A forwarded call is
//! served where it lands or answered [`Outcome::NotHere`] with a hint — never forwarded again —
//! and the edge retries once at the hint: at most two hops per attempt. Both directions carry
//! [`PROTOCOL_VERSION`]; a node refuses a version it does not speak, so a rolling upgrade that
//! changes the protocol fails loudly instead of misreading requests.

use std::future::Future;
use std::pin::Pin;

use burrow_runtime::{CallError, ErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::protocol::{
    Answer, ConfigPatch, Destroy, GetConfig, GetDebugStatus, GetRoute, GetStatus, Provision,
    Restart, Start, Stop,
};

/// The version of the forwarding protocol this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A call forwarded to the node that holds (or should hold) an instance's actor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forwarded {
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// What to do.
    pub op: Op,
}

/// The operations a node may forward: every method of [`InstanceRef`](crate::InstanceRef).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "args", rename_all = "camelCase")]
pub enum Op {
    /// [`Provision`].
    Provision(Provision),
    /// [`Start`].
    Start(Start),
    /// [`Stop`].
    Stop,
    /// [`Restart`].
    Restart(Restart),
    /// [`Destroy`].
    Destroy(Destroy),
    /// [`GetStatus`].
    GetStatus,
    /// [`GetDebugStatus`].
    GetDebugStatus,
    /// [`GetConfig`].
    GetConfig,
    /// A [`ConfigPatch`].
    PatchConfig(ConfigPatch),
    /// [`GetRoute`].
    GetRoute,
    /// A list append (the fault run's lists; feature `faults`).
    #[cfg(feature = "faults")]
    ListAppend(crate::protocol::ListAppend),
    /// A list read (feature `faults`).
    #[cfg(feature = "faults")]
    ListRead(crate::protocol::ListRead),
}

/// The answer to a [`Forwarded`] call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardReply {
    /// The answering node's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// What happened.
    pub outcome: Outcome,
}

/// What became of a forwarded call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// The actor answered (its `Answer<T>`, as JSON).
    #[serde(rename_all = "camelCase")]
    Answered {
        /// The answer.
        answer: serde_json::Value,
    },
    /// The runtime could not run the call here (the kind as [`kind_name`] spells it).
    #[serde(rename_all = "camelCase")]
    Failed {
        /// The [`ErrorKind`].
        kind: String,
        /// What went wrong.
        message: String,
    },
    /// Another node holds the actor: the edge may retry there, once.
    #[serde(rename_all = "camelCase")]
    NotHere {
        /// The holder's id.
        node_id: String,
        /// Where the holder takes forwarded calls.
        advertise_url: String,
    },
}

/// A future a [`Cluster`] returns.
pub type ClusterFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the instance manager needs of the cluster it runs in: where actors are, whether this
/// node may serve, and a way to send a call to another node. The server implements it (HTTP,
/// the cluster secret, a placement cache); placement is a hint here, never trusted: the claim
/// in the log decides.
pub trait Cluster: Send + Sync + 'static {
    /// Where other nodes reach this one.
    fn advertise_url(&self) -> &str;
    /// Where to send a call for the actor named `actor` first: `None` for this node.
    fn place(&self, actor: &str) -> Option<String>;
    /// Records where a call for `actor` was served (`None`: here), or forgets a place that
    /// failed (`forget`).
    fn served(&self, actor: &str, at: Option<&str>);
    /// Drops what is known of `actor`'s place.
    fn forget(&self, actor: &str);
    /// Whether this node holds its lease (a node that does not must serve nothing).
    fn serving(&self) -> bool;
    /// Sends `call` for the actor named `actor` of `namespace` to the node at `url`. `Err`
    /// when it did not answer with a [`ForwardReply`] (unreachable, refused the request or its
    /// version).
    fn send<'a>(
        &'a self,
        url: &'a str,
        namespace: &'a str,
        actor: &'a str,
        call: Forwarded,
    ) -> ClusterFuture<'a, Result<ForwardReply, CallError>>;
}

/// A message that can be forwarded: it converts into its [`Op`].
pub trait Remote: burrow_runtime::Message<Reply = Answer<Self::Out>> {
    /// What the actor answers with.
    type Out: Serialize + DeserializeOwned + Send + 'static;
    /// The operation to send.
    fn into_op(self) -> Op;
    /// Called by the node that served the call, with the answer, before the answer leaves it.
    fn acknowledged(_answer: &Answer<Self::Out>) {}
}

macro_rules! remote {
    ($($message:ty => $out:ty, $op:expr;)*) => {$(
        impl Remote for $message {
            type Out = $out;
            #[allow(clippy::redundant_closure_call)]
            fn into_op(self) -> Op {
                ($op)(self)
            }
        }
    )*};
}

remote! {
    Provision => crate::protocol::Provisioned, Op::Provision;
    Start => bool, Op::Start;
    Stop => (), |_| Op::Stop;
    Restart => crate::protocol::Restarted, Op::Restart;
    Destroy => crate::protocol::Destroyed, Op::Destroy;
    GetStatus => burrow_state::StatusView, |_| Op::GetStatus;
    GetDebugStatus => crate::protocol::DebugStatus, |_| Op::GetDebugStatus;
    GetConfig => crate::protocol::ConfigView, |_| Op::GetConfig;
    ConfigPatch => crate::protocol::ConfigView, Op::PatchConfig;
    GetRoute => crate::protocol::Route, |_| Op::GetRoute;
}

/// An [`ErrorKind`]'s name on the wire.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ActorReset => "actorReset",
        ErrorKind::ShuttingDown => "shuttingDown",
        ErrorKind::TransientIo => "transientIo",
        ErrorKind::StorageFull => "storageFull",
        ErrorKind::Overloaded => "overloaded",
        ErrorKind::InvalidInput => "invalidInput",
        ErrorKind::ActiveElsewhere => "activeElsewhere",
        _ => "actorFailed",
    }
}

/// The [`ErrorKind`] named `name` (an unknown name is the actor's failure: not retried).
fn kind_named(name: &str) -> ErrorKind {
    match name {
        "actorReset" => ErrorKind::ActorReset,
        "shuttingDown" => ErrorKind::ShuttingDown,
        "transientIo" => ErrorKind::TransientIo,
        "storageFull" => ErrorKind::StorageFull,
        "overloaded" => ErrorKind::Overloaded,
        "invalidInput" => ErrorKind::InvalidInput,
        "activeElsewhere" => ErrorKind::ActiveElsewhere,
        _ => ErrorKind::ActorFailed,
    }
}

/// The owner's side: what a local call's result becomes on the wire.
pub(crate) fn outcome_of<T: Serialize>(result: Result<Answer<T>, CallError>) -> Outcome {
    match result {
        Ok(answer) => match serde_json::to_value(&answer) {
            Ok(answer) => Outcome::Answered { answer },
            Err(e) => Outcome::Failed {
                kind: kind_name(ErrorKind::ActorFailed).into(),
                message: format!("the answer could not be serialized: {e}"),
            },
        },
        Err(e) => match e.holder() {
            Some((node_id, advertise_url)) => Outcome::NotHere {
                node_id: node_id.into(),
                advertise_url: advertise_url.into(),
            },
            None => Outcome::Failed {
                kind: kind_name(e.kind()).into(),
                message: e.message().into(),
            },
        },
    }
}

/// What the edge makes of a reply: the actor's answer, a refusal, or a hint to retry elsewhere.
pub(crate) enum Received<T> {
    Answer(Answer<T>),
    Hint { node_id: String, url: String },
}

pub(crate) fn received<T: DeserializeOwned>(
    from: &str,
    reply: ForwardReply,
) -> Result<Received<T>, CallError> {
    if reply.version != PROTOCOL_VERSION {
        return Err(CallError::new(
            ErrorKind::ActorFailed,
            format!(
                "the node at {from} answered in protocol version {}; this node speaks {PROTOCOL_VERSION}",
                reply.version
            ),
        ));
    }
    match reply.outcome {
        Outcome::Answered { answer } => serde_json::from_value(answer)
            .map(Received::Answer)
            .map_err(|e| {
                CallError::new(
                    ErrorKind::ActorFailed,
                    format!("the answer from {from} could not be read: {e}"),
                )
            }),
        Outcome::Failed { kind, message } => Err(CallError::new(kind_named(&kind), message)),
        Outcome::NotHere {
            node_id,
            advertise_url,
        } => Ok(Received::Hint {
            node_id,
            url: advertise_url,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_crosses_the_wire_as_itself() {
        for kind in [
            ErrorKind::ActorReset,
            ErrorKind::ShuttingDown,
            ErrorKind::TransientIo,
            ErrorKind::StorageFull,
            ErrorKind::Overloaded,
            ErrorKind::InvalidInput,
            ErrorKind::ActorFailed,
            ErrorKind::ActiveElsewhere,
        ] {
            assert_eq!(kind_named(kind_name(kind)), kind);
        }
    }

    #[test]
    fn a_reply_in_another_version_is_refused_loudly() {
        let reply = ForwardReply {
            version: PROTOCOL_VERSION + 1,
            outcome: Outcome::Answered {
                answer: serde_json::json!({"Ok": true}),
            },
        };
        let e = received::<bool>("http://n2", reply).err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::ActorFailed);
        assert!(e.message().contains("protocol version 2"), "{e}");
    }

    #[test]
    fn requests_name_their_operation_and_refuse_unknown_fields() {
        let call = Forwarded {
            version: PROTOCOL_VERSION,
            op: Start {
                skip_cooldown: true,
            }
            .into_op(),
        };
        let text = serde_json::to_string(&call).unwrap();
        assert!(text.contains(r#""kind":"start""#), "{text}");
        let back: Forwarded = serde_json::from_str(&text).unwrap();
        assert!(matches!(
            back.op,
            Op::Start(Start {
                skip_cooldown: true
            })
        ));
        // An operation no node forwards (an actor's report to itself) does not parse.
        let report = r#"{"version":1,"op":{"kind":"report","args":{}}}"#;
        assert!(serde_json::from_str::<Forwarded>(report).is_err());
        assert!(
            serde_json::from_str::<Forwarded>(r#"{"version":1,"op":{"kind":"stop"},"x":1}"#)
                .is_err()
        );
    }
}
