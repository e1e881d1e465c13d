//! Lists for the cluster's fault run (cargo feature `faults`; absent from release builds).
//!
//! Each list is one actor of namespace [`LIST_NAMESPACE`], routed and forwarded like an
//! instance. An append adds a unique element; a read returns the whole list. Both turns write
//! (a read bumps a counter), so that every answer waits for a fenced append to the log: a read
//! served by a node that was paused past its lease is refused instead of answering from a
//! stale copy. The node that serves a turn writes one JSON line per acknowledgement — actor,
//! epoch, sequence, the client's operation id — to the file named by `BURROW_FAULT_ACK_LOG`,
//! for a checker to hold against the log's entries.

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use burrow_runtime::retry::{RetryPolicy, with_retry};
use burrow_runtime::{Abort, Actor, Context, Handler, Namespace, Runtime, RuntimeError};

use crate::forwarding::{attempt, refused, reply_to, serve_here};
use crate::protocol::{Answer, InstanceError};
pub use crate::protocol::{ListAck, ListAppend, ListRead};
use crate::remote::{Cluster, ForwardReply, Forwarded, Op, Remote};

/// The lists' actor namespace.
pub const LIST_NAMESPACE: &str = "list";

/// The longest list id and element, in bytes.
const MAX_LEN: usize = 128;

/// One list.
pub struct ListActor;

impl Actor for ListActor {}

fn ack(ctx: &Context<ListActor>, op: String, elements: Option<Vec<String>>) -> ListAck {
    let slot = ctx.log_slot();
    ListAck {
        list: ctx.name().unwrap_or_default().to_owned(),
        op,
        epoch: slot.map_or(0, |s| s.epoch),
        seq: slot.map_or(0, |s| s.seq),
        elements,
    }
}

/// Every turn writes, so that its answer waits for a fenced append (see the module).
fn confirm(ctx: &Context<ListActor>) -> Result<(), Abort> {
    let turns: i64 = ctx.storage().get("turns")?.unwrap_or(0);
    ctx.storage().put("turns", &(turns + 1))?;
    Ok(())
}

impl Handler<ListAppend> for ListActor {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        m: ListAppend,
    ) -> Result<Answer<ListAck>, Abort> {
        if let Err(e) = check("element", &m.element) {
            return Ok(Err(e));
        }
        let by = format!("by/{}", m.element);
        if ctx.storage().get::<i64>(&by)?.is_none() {
            let n: i64 = ctx.storage().get("n")?.unwrap_or(0) + 1;
            ctx.storage()
                .put(&format!("e/{n:010}"), m.element.as_str())?;
            ctx.storage().put(&by, &n)?;
            ctx.storage().put("n", &n)?;
        }
        confirm(ctx)?;
        Ok(Ok(ack(ctx, m.element, None)))
    }
}

impl Handler<ListRead> for ListActor {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        m: ListRead,
    ) -> Result<Answer<ListAck>, Abort> {
        let elements = ctx
            .storage()
            .list::<String>("e/")?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        confirm(ctx)?;
        Ok(Ok(ack(ctx, m.op, Some(elements))))
    }
}

fn check(what: &str, value: &str) -> Result<(), InstanceError> {
    let fine = !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fine {
        Ok(())
    } else {
        Err(InstanceError::Invalid(format!(
            "{what} {value:?}: 1 to {MAX_LEN} letters, digits, '-' or '_'"
        )))
    }
}

/// The file of `BURROW_FAULT_ACK_LOG`, opened once (appending).
fn ack_log() -> Option<&'static Mutex<std::fs::File>> {
    static LOG: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let path = std::env::var_os("BURROW_FAULT_ACK_LOG")?;
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => Some(Mutex::new(file)),
            Err(e) => {
                tracing::error!(?path, "opening the acknowledgement log: {e}");
                None
            }
        }
    })
    .as_ref()
}

/// Logs what this node is about to acknowledge, before the answer leaves it. One `write` per
/// line on a file opened for appending: a kill -9 loses no line that was written.
pub(crate) fn acknowledged(answer: &Answer<ListAck>) {
    let (Ok(ack), Some(log)) = (answer, ack_log()) else {
        return;
    };
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let line = serde_json::json!({
        "list": ack.list,
        "op": ack.op,
        "epoch": ack.epoch,
        "seq": ack.seq,
        "read": ack.elements.is_some(),
        "atMs": at_ms,
    });
    let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
        tracing::error!("writing the acknowledgement log: {e}");
    }
}

/// The lists of this node.
#[derive(Clone)]
pub struct Lists {
    namespace: Namespace<ListActor>,
    cluster: Option<Arc<dyn Cluster>>,
}

impl Lists {
    /// Registers the list actor with `runtime`.
    pub fn open(runtime: &Runtime) -> Result<Lists, RuntimeError> {
        Ok(Lists {
            namespace: runtime.namespace(LIST_NAMESPACE, |_| ListActor)?,
            cluster: None,
        })
    }

    /// Runs the lists as part of a cluster (see [`Instances::with_cluster`](crate::Instances::with_cluster)).
    pub fn with_cluster(mut self, cluster: Arc<dyn Cluster>) -> Lists {
        self.cluster = Some(cluster);
        self
    }

    /// Appends `element` to list `id`, on whichever node holds it.
    pub async fn append(&self, id: &str, element: String) -> Result<ListAck, InstanceError> {
        check("list id", id)?;
        self.call(id, || ListAppend {
            element: element.clone(),
        })
        .await
    }

    /// Reads list `id`, on whichever node holds it.
    pub async fn read(&self, id: &str, op: String) -> Result<ListAck, InstanceError> {
        check("list id", id)?;
        check("op", &op)?;
        self.call(id, || ListRead { op: op.clone() }).await
    }

    async fn call<M>(&self, id: &str, message: impl Fn() -> M) -> Result<ListAck, InstanceError>
    where
        M: Remote<Out = ListAck>,
        ListActor: Handler<M>,
    {
        let message = &message;
        let (answer, _) = with_retry(
            || self.namespace.get_by_name(id),
            |stub| async move {
                attempt(self.cluster.as_ref(), LIST_NAMESPACE, id, &stub, message).await
            },
            &RetryPolicy::default(),
        )
        .await?;
        answer
    }

    /// Serves a list call another node forwarded (see
    /// [`Instances::serve_forwarded`](crate::Instances::serve_forwarded)).
    pub async fn serve_forwarded(&self, id: &str, call: Forwarded) -> ForwardReply {
        reply_to(self.cluster.as_ref(), call, async |op| {
            let stub = self.namespace.get_by_name(id);
            match op {
                Op::ListAppend(m) => serve_here(&stub, m).await,
                Op::ListRead(m) => serve_here(&stub, m).await,
                _ => refused("only list operations are served in namespace list"),
            }
        })
        .await
    }
}

impl Remote for ListAppend {
    type Out = ListAck;
    fn into_op(self) -> Op {
        Op::ListAppend(self)
    }
    fn acknowledged(answer: &Answer<ListAck>) {
        acknowledged(answer);
    }
}

impl Remote for ListRead {
    type Out = ListAck;
    fn into_op(self) -> Op {
        Op::ListRead(self)
    }
    fn acknowledged(answer: &Answer<ListAck>) {
        acknowledged(answer);
    }
}
