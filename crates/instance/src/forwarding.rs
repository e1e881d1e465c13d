//! Both sides of a forwarded call: the edge sends a call to the node that holds the actor (at
//! most two hops: a first guess, then the holder's hint), and the holder serves it locally,
//! never forwarding again. The wire format is in [`remote`](crate::remote).

use std::sync::Arc;

use burrow_identity::ActorName;
use burrow_runtime::{CallError, ErrorKind, Handler, Stub};

use crate::actor::InstanceActor;
use crate::instances::{InstanceRef, Instances, NAMESPACE};
use crate::protocol::Answer;
use crate::provider::SandboxProvider;
use crate::remote::{
    Cluster, ForwardReply, Forwarded, Op, Outcome, PROTOCOL_VERSION, Received, Remote, kind_name,
    outcome_of, received,
};

/// A node whose lease is being renewed (or was lost) serves nothing: another node may already
/// hold its actors.
fn not_serving() -> CallError {
    CallError::new(
        ErrorKind::ActorReset,
        "this node is rejoining the cluster (its lease ran out); try again",
    )
}

impl<P: SandboxProvider> InstanceRef<P> {
    /// One attempt of a call: here, or on the node that holds the actor. Returns the answer
    /// and whether this node served it.
    pub(crate) async fn attempt<M>(
        &self,
        stub: &Stub<InstanceActor<P>>,
        message: &impl Fn() -> M,
    ) -> Result<(Answer<M::Out>, bool), CallError>
    where
        M: Remote,
        InstanceActor<P>: Handler<M>,
    {
        let actor = self.name.to_string();
        attempt(self.cluster.as_ref(), NAMESPACE, &actor, stub, message).await
    }
}

/// One attempt of a call to the actor named `actor` of `namespace`: here, or on the node that
/// holds it. Returns the answer and whether this node served it.
pub(crate) async fn attempt<A, M>(
    cluster: Option<&Arc<dyn Cluster>>,
    namespace: &str,
    actor: &str,
    stub: &Stub<A>,
    message: &impl Fn() -> M,
) -> Result<(Answer<M::Out>, bool), CallError>
where
    M: Remote,
    A: Handler<M>,
{
    let local = || async {
        let answer = stub.call(message()).await?;
        M::acknowledged(&answer);
        Ok::<_, CallError>(answer)
    };
    let Some(cluster) = cluster else {
        return local().await.map(|answer| (answer, true));
    };
    if !cluster.serving() {
        return Err(not_serving());
    }
    let me = cluster.advertise_url();
    let mut target = cluster.place(actor).filter(|url| url != me);
    // A node that did not answer: a hint back to it is not followed in this attempt.
    let mut silent: Option<String> = None;
    for hop in 0..2 {
        let Some(url) = target.take() else {
            match local().await {
                Ok(answer) => {
                    cluster.served(actor, None);
                    return Ok((answer, true));
                }
                Err(e) => match e.holder() {
                    Some((_, url)) if hop == 0 && url != me => {
                        target = Some(url.to_owned());
                        continue;
                    }
                    _ => return Err(e),
                },
            }
        };
        if silent.as_deref() == Some(url.as_str()) {
            return Err(CallError::new(
                ErrorKind::TransientIo,
                format!("the node at {url}, which holds the actor, does not answer"),
            ));
        }
        let call = Forwarded {
            version: PROTOCOL_VERSION,
            op: message().into_op(),
        };
        let reply = match cluster.send(&url, namespace, actor, call).await {
            Ok(reply) => reply,
            Err(e) => {
                cluster.forget(actor);
                tracing::warn!(%actor, %url, "forwarding failed: {e}");
                if hop == 1 {
                    return Err(e);
                }
                // Perhaps that node is gone: the claim here tells.
                silent = Some(url);
                continue;
            }
        };
        match received::<M::Out>(&url, reply)? {
            Received::Answer(answer) => {
                cluster.served(actor, Some(&url));
                return Ok((answer, false));
            }
            Received::Hint { node_id, url: hint } => {
                cluster.forget(actor);
                if hop == 1 {
                    return Err(CallError::active_elsewhere(&node_id, &hint));
                }
                target = (hint != me).then_some(hint);
            }
        }
    }
    Err(CallError::new(
        ErrorKind::ActorReset,
        "the actor moved between nodes during the call; try again",
    ))
}

/// The reply to a forwarded call: refused in another protocol version, or by a node without
/// its lease; else what `serve` makes of the operation here.
pub(crate) async fn reply_to(
    cluster: Option<&Arc<dyn Cluster>>,
    call: Forwarded,
    serve: impl AsyncFnOnce(Op) -> Outcome,
) -> ForwardReply {
    let outcome = if call.version != PROTOCOL_VERSION {
        refused(&format!(
            "protocol version {} is not spoken here (this node speaks {PROTOCOL_VERSION})",
            call.version
        ))
    } else if cluster.is_some_and(|c| !c.serving()) {
        let e = not_serving();
        Outcome::Failed {
            kind: kind_name(e.kind()).into(),
            message: e.message().into(),
        }
    } else {
        serve(call.op).await
    };
    ForwardReply {
        version: PROTOCOL_VERSION,
        outcome,
    }
}

/// Serves one call here, and tells the message it was answered before the answer leaves.
pub(crate) async fn serve_here<A, M>(stub: &Stub<A>, message: M) -> Outcome
where
    M: Remote,
    A: Handler<M>,
{
    let result = stub.call(message).await;
    if let Ok(answer) = &result {
        M::acknowledged(answer);
    }
    outcome_of(result)
}

/// A forwarded call refused as invalid.
pub(crate) fn refused(why: &str) -> Outcome {
    Outcome::Failed {
        kind: kind_name(ErrorKind::InvalidInput).into(),
        message: why.into(),
    }
}

impl<P: SandboxProvider> Instances<P> {
    /// Serves a call another node forwarded, on this node only: a node that does not hold the
    /// actor (and cannot claim it) answers [`Outcome::NotHere`] with the holder, and never
    /// forwards. The caller must have authenticated the sending node.
    pub async fn serve_forwarded(&self, name: &ActorName, call: Forwarded) -> ForwardReply {
        use crate::protocol::{GetConfig, GetDebugStatus, GetRoute, GetStatus, Stop};
        reply_to(self.cluster.as_ref(), call, async |op| {
            let stub = self.namespace.get_by_name(&name.to_string());
            match op {
                Op::Provision(m) => serve_here(&stub, m).await,
                Op::Start(m) => serve_here(&stub, m).await,
                Op::Stop => serve_here(&stub, Stop).await,
                Op::Restart(m) => serve_here(&stub, m).await,
                Op::Destroy(m) => serve_here(&stub, m).await,
                Op::GetStatus => serve_here(&stub, GetStatus).await,
                Op::GetDebugStatus => serve_here(&stub, GetDebugStatus).await,
                Op::GetConfig => serve_here(&stub, GetConfig).await,
                Op::PatchConfig(m) => serve_here(&stub, m).await,
                Op::GetRoute => serve_here(&stub, GetRoute).await,
                #[cfg(feature = "faults")]
                Op::ListAppend(_) | Op::ListRead(_) => {
                    refused("list operations are served in namespace list only")
                }
            }
        })
        .await
    }
}
