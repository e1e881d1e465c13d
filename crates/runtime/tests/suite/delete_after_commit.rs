//! `Context::delete_after_commit`: an actor deletes itself with a committed turn — its file,
//! catalog record and alarms go, and the next call meets a new, empty actor that lost nothing
//! (nothing was lost: it was deleted). A turn that fails deletes nothing. Real files.

use std::time::{Duration, SystemTime};

use burrow_runtime::alarm::Alarm;
use burrow_runtime::{Abort, Actor, Context, Handler, Message, Namespace, Options, Runtime};

struct Note;

impl Actor for Note {
    async fn alarm(&mut self, _: &mut Context<Self>, _: Alarm) -> Result<(), Abort> {
        Ok(())
    }
}

enum Op {
    Write,
    Forget,
    ForgetThenFail,
}

impl Message for Op {
    /// The value before the turn, and whether the actor was told it lost state.
    type Reply = (Option<i64>, bool);
}

impl Handler<Op> for Note {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        op: Op,
    ) -> Result<(Option<i64>, bool), Abort> {
        let before = ctx.storage().get::<i64>("n")?;
        let lost = ctx.info().lost_state().is_some();
        match op {
            Op::Write => {
                ctx.storage().put("n", &before.map_or(1, |n| n + 1))?;
                ctx.set_alarm("later", SystemTime::now() + Duration::from_secs(3600))?;
            }
            Op::Forget => ctx.delete_after_commit(),
            Op::ForgetThenFail => {
                ctx.delete_after_commit();
                return Err(Abort::new("changed my mind"));
            }
        }
        Ok((before, lost))
    }
}

fn open(dir: &std::path::Path) -> (Runtime, Namespace<Note>) {
    let runtime = Runtime::open(Options::new(dir).shards(1)).unwrap();
    let ns = runtime.namespace("note", |_| Note).unwrap();
    (runtime, ns)
}

#[tokio::test]
async fn a_committed_turn_deletes_the_actor_file_record_and_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path());
    let note = ns.get_by_name("a");
    note.call(Op::Write).await.unwrap();
    let id = ns.id_from_name("a");
    assert_eq!(runtime.catalog().count("note").await.unwrap(), 1);
    assert_eq!(runtime.catalog().alarms("note", id).await.unwrap().len(), 1);

    // The deleting turn still replies, with what it saw.
    assert_eq!(note.call(Op::Forget).await.unwrap(), (Some(1), false));
    // The next call is a new actor, which lost nothing.
    assert_eq!(note.call(Op::Write).await.unwrap(), (None, false));
    runtime.shutdown(Duration::from_secs(5)).await;

    // Between the two, everything of the old one went: shown by deleting again, alone.
    let (runtime, ns) = open(dir.path());
    let note = ns.get_by_name("a");
    assert_eq!(note.call(Op::Forget).await.unwrap(), (Some(1), false));
    runtime.shutdown(Duration::from_secs(5)).await;
    assert!(!ns.path_of(&id).exists(), "the file is gone");
    let (runtime, _ns) = open(dir.path());
    assert_eq!(runtime.catalog().count("note").await.unwrap(), 0);
    assert!(
        runtime
            .catalog()
            .alarms("note", id)
            .await
            .unwrap()
            .is_empty()
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_turn_that_fails_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns) = open(dir.path());
    let note = ns.get_by_name("a");
    note.call(Op::Write).await.unwrap();
    assert!(note.call(Op::ForgetThenFail).await.is_err());
    assert_eq!(note.call(Op::Write).await.unwrap(), (Some(1), false));
    runtime.shutdown(Duration::from_secs(5)).await;
}
