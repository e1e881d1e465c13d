//! Work on its way to an actor, typed for the actor's handlers and erased for the shards that
//! route it.
//!
//! A message travels as a [`Call`]: the message with the channel its reply goes back on. The
//! call knows which [`Handler`] to run, so a shard needs to know neither the message type nor
//! the reply type; it routes an [`ErasedEnvelope`], and only the actor's own task turns it back
//! into an [`Envelope`] of its type.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

use super::{Actor, Context, Handler, Message};
use crate::delivery::Delivery;
use crate::error::{Abort, CallError, ErrorKind};

/// An [`Envelope`] of some actor type, as the shards route it.
pub(crate) type ErasedEnvelope = Box<dyn Any + Send>;

/// What a turn is for.
pub(crate) enum Envelope<A: Actor> {
    /// A message, from a caller or from the actor's own background work.
    Call(Box<dyn Call<A>>),
    /// An alarm that came due.
    Alarm(Delivery),
}

/// Releases a handled message's reply once the turn has committed (`Ok`), or an error in its
/// place when the commit failed (`Err`).
pub(crate) type Respond = Box<dyn FnOnce(Result<(), CallError>)>;

/// Answers a message whose handler failed.
pub(crate) type Refuse = Box<dyn FnOnce(CallError)>;

/// How a handler ended: the reply waiting for the commit, or why there is none.
pub(crate) enum Handled {
    /// The handler returned a reply; `Respond` releases it.
    Replied(Respond),
    /// The handler aborted (`Ok(abort)`) or panicked (`Err(payload)`).
    Failed(std::thread::Result<Abort>, Refuse),
}

/// A message with where its reply goes, ready to run on an actor of type `A`.
pub(crate) trait Call<A: Actor>: Send {
    /// Runs the actor's handler for this message (catching a panic).
    fn handle<'a>(
        self: Box<Self>,
        actor: &'a mut A,
        ctx: &'a mut Context<A>,
    ) -> LocalBoxFuture<'a, Handled>;

    /// Answers without running the handler.
    fn fail(self: Box<Self>, error: CallError);
}

/// A message and the caller waiting for its reply (none for background results).
pub(crate) struct Request<M: Message> {
    message: M,
    reply: ReplyTo<M::Reply>,
}

impl<M: Message> Request<M> {
    /// A request whose reply the caller awaits on the returned receiver.
    pub(crate) fn new(message: M) -> (Self, oneshot::Receiver<Result<M::Reply, CallError>>) {
        let (reply, response) = oneshot::channel();
        let request = Request {
            message,
            reply: Some(reply),
        };
        (request, response)
    }

    /// A request nobody waits for (its reply is dropped).
    pub(crate) fn unanswered(message: M) -> Self {
        Request {
            message,
            reply: None,
        }
    }
}

type ReplyTo<T> = Option<oneshot::Sender<Result<T, CallError>>>;

fn respond<T: Send + 'static>(reply: ReplyTo<T>, value: T) -> Respond {
    Box::new(move |committed: Result<(), CallError>| {
        if let Some(reply) = reply {
            let _ = reply.send(committed.map(|()| value));
        }
    })
}

fn refuse<T: Send + 'static>(reply: ReplyTo<T>) -> Refuse {
    Box::new(move |error: CallError| {
        if let Some(reply) = reply {
            let _ = reply.send(Err(error));
        }
    })
}

impl<A: Handler<M>, M: Message> Call<A> for Request<M> {
    fn handle<'a>(
        self: Box<Self>,
        actor: &'a mut A,
        ctx: &'a mut Context<A>,
    ) -> LocalBoxFuture<'a, Handled> {
        let Request { message, reply } = *self;
        Box::pin(async move {
            match AssertUnwindSafe(actor.handle(ctx, message))
                .catch_unwind()
                .await
            {
                Ok(Ok(value)) => Handled::Replied(respond(reply, value)),
                Ok(Err(abort)) => Handled::Failed(Ok(abort), refuse(reply)),
                Err(panic) => Handled::Failed(Err(panic), refuse(reply)),
            }
        })
    }

    fn fail(self: Box<Self>, error: CallError) {
        if let Some(reply) = self.reply {
            let _ = reply.send(Err(error));
        }
    }
}

impl<A: Actor> Envelope<A> {
    /// Erases a message's envelope for routing.
    pub(crate) fn call<M: Message>(request: Request<M>) -> ErasedEnvelope
    where
        A: Handler<M>,
    {
        Box::new(Envelope::<A>::Call(Box::new(request)))
    }

    /// Erases an alarm's envelope for routing.
    pub(crate) fn alarm(delivery: Delivery) -> ErasedEnvelope {
        Box::new(Envelope::<A>::Alarm(delivery))
    }

    /// Recovers an envelope routed to an actor of type `A`.
    pub(crate) fn unerase(envelope: ErasedEnvelope) -> Envelope<A> {
        *envelope
            .downcast::<Envelope<A>>()
            .expect("a namespace routes only its own actors' envelopes")
    }

    /// Answers an envelope that will not reach its actor with `error` (an alarm is retried,
    /// unless another node of the cluster holds its actor and fires it there).
    pub(crate) fn fail(self, error: CallError) {
        match self {
            Envelope::Call(call) => call.fail(error),
            Envelope::Alarm(delivery) if error.kind() == ErrorKind::ActiveElsewhere => {
                delivery.outcomes.elsewhere(&delivery)
            }
            Envelope::Alarm(delivery) => {
                delivery.outcomes.not_delivered(&delivery, error.message())
            }
        }
    }
}
