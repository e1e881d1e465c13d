//! What an embedder implements: an [`Actor`], the [`Message`]s it accepts and a [`Handler`]
//! for each; and what a handler sees during a turn ([`Context`], [`ActorInfo`]).

mod context;
pub(crate) mod envelope;
mod info;

use crate::alarm::Alarm;
use crate::error::Abort;

pub use context::Context;
pub(crate) use context::ContextParts;
pub use info::{ActorInfo, LostReason, LostState};

/// An actor: state and code behind one key, handling one message at a time.
///
/// The runtime creates the actor (with the namespace's factory) when the first message for its
/// id arrives, runs [`on_activate`](Actor::on_activate), then hands it each message in arrival
/// order, and never starts a turn before the previous one has finished — even while a handler
/// awaits. Everything a turn writes through [`Context::storage`] is committed before its reply
/// is delivered. The messages an actor accepts are the [`Message`] types it has a [`Handler`]
/// for, so a caller can only send what the actor handles and always gets the reply type that
/// goes with the message.
///
/// Handlers' futures need not be `Send`: they run on the actor's shard thread.
///
/// ```
/// use burrow_runtime::{Abort, Actor, Context, Handler, Message};
///
/// struct Inventory;
///
/// /// Adds items; replies with the new count.
/// struct Add(i64);
/// impl Message for Add {
///     type Reply = i64;
/// }
///
/// /// How many items there are.
/// struct Count;
/// impl Message for Count {
///     type Reply = i64;
/// }
///
/// impl Actor for Inventory {
///     async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
///         // Once per activation, inside the first turn's transaction: schema and migrations.
///         ctx.storage()
///             .sql()
///             .execute_batch("CREATE TABLE IF NOT EXISTS items (n INTEGER NOT NULL)")?;
///         Ok(())
///     }
/// }
///
/// impl Handler<Add> for Inventory {
///     async fn handle(&mut self, ctx: &mut Context<Self>, Add(n): Add) -> Result<i64, Abort> {
///         ctx.storage().sql().execute("INSERT INTO items (n) VALUES (?1)", [n])?;
///         self.handle(ctx, Count).await
///     }
/// }
///
/// impl Handler<Count> for Inventory {
///     async fn handle(&mut self, ctx: &mut Context<Self>, _: Count) -> Result<i64, Abort> {
///         let sql = ctx.storage().sql();
///         Ok(sql.query_row("SELECT coalesce(sum(n), 0) FROM items", [], |r| r.get(0))?)
///     }
/// }
/// ```
pub trait Actor: Sized + 'static {
    /// Runs once per activation, before the first message (or alarm) is handled, inside that
    /// turn's transaction: the place for schema setup, migrations and loading state into the
    /// actor's fields.
    ///
    /// An `Err` (or a panic) fails that first turn like a failing handler does: its writes and
    /// the hook's are rolled back, and the next message activates the actor afresh. The
    /// default does nothing.
    #[allow(async_fn_in_trait)]
    async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        let _ = ctx;
        Ok(())
    }

    /// Handles an alarm that came due, as a turn of its own (see [`Context::set_alarm`]).
    ///
    /// Delivery is at least once: an `Err` or a panic rolls the turn back and the alarm is
    /// retried with backoff ([`AlarmPolicy`](crate::alarm::AlarmPolicy)), `alarm.attempt`
    /// counting up; after the last attempt it goes to the catalog's dead-letter list. On
    /// success the alarm is removed — unless the handler set one of the same name again, which
    /// is how a recurring alarm is written. The default handler fails: an actor that sets
    /// alarms must handle them.
    #[allow(async_fn_in_trait)]
    async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        let _ = ctx;
        Err(Abort::new(format!(
            "alarm {:?} fired, but this actor type does not implement Actor::alarm",
            alarm.name
        )))
    }
}

/// A message an actor can be sent, and the type of its reply.
///
/// The reply is released to the caller only after the turn that produced it has committed.
/// Outcomes the caller should see as answers — not found, refused — belong in the reply type
/// (a `Result` of your own works); they commit like any other. To send a message across hosts
/// later, derive serde's `Serialize` and `Deserialize` for it and its reply.
///
/// ```
/// use burrow_runtime::Message;
/// struct Rename { to: String }
/// #[derive(Debug, PartialEq)]
/// enum Renamed { Done, Taken }
/// impl Message for Rename {
///     type Reply = Renamed;
/// }
/// ```
pub trait Message: Send + 'static {
    /// What the actor answers.
    type Reply: Send + 'static;
}

/// How an actor handles messages of type `M`: one turn per message.
///
/// Returning `Err` (or panicking) aborts the turn: its writes are rolled back, the actor
/// instance is discarded and re-created for the next message, and the caller gets a
/// [`CallError`](crate::CallError). One message type may be handled by several actor types.
///
/// ```
/// use burrow_runtime::{Abort, Actor, Context, Handler, Message};
/// struct Ping;
/// impl Message for Ping { type Reply = &'static str; }
/// struct Server;
/// impl Actor for Server {}
/// impl Handler<Ping> for Server {
///     async fn handle(&mut self, _: &mut Context<Self>, _: Ping) -> Result<&'static str, Abort> {
///         Ok("pong")
///     }
/// }
/// ```
pub trait Handler<M: Message>: Actor {
    /// Handles one message as one turn.
    #[allow(async_fn_in_trait)]
    async fn handle(&mut self, ctx: &mut Context<Self>, message: M) -> Result<M::Reply, Abort>;
}
