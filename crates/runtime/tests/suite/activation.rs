//! The activation hook and the typed key–value API: `on_activate` runs once per activation,
//! inside the first turn's transaction, before handlers and alarm handlers alike; and stored
//! values come back as the type asked for, or as an error — never as a silent default.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use burrow_runtime::alarm::Alarm;
use burrow_runtime::{
    Abort, Actor, Context, ErrorKind, Handler, Message, Namespace, Options, Runtime,
};

const GRACE: Duration = Duration::from_secs(10);

/// What the tests observe from outside.
#[derive(Default)]
struct Seen {
    /// `on_activate` calls.
    activations: AtomicUsize,
    /// Make `on_activate` abort (after writing).
    refuse: AtomicBool,
    /// Alarm deliveries, and whether the hook had run before each.
    alarms: std::sync::Mutex<Vec<bool>>,
}

struct Hooked {
    seen: Arc<Seen>,
    /// Set by `on_activate`: the activation number it loaded.
    loaded: Option<i64>,
}

impl Actor for Hooked {
    async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        let n = self.seen.activations.fetch_add(1, Ordering::SeqCst) as i64 + 1;
        let sql = ctx.storage().sql();
        sql.execute_batch("CREATE TABLE IF NOT EXISTS hook_runs (n INTEGER NOT NULL)")?;
        sql.execute("INSERT INTO hook_runs (n) VALUES (?1)", [n])?;
        if self.seen.refuse.load(Ordering::SeqCst) {
            return Err(Abort::invalid_input("refusing to activate"));
        }
        self.loaded = Some(n);
        Ok(())
    }

    async fn alarm(&mut self, _: &mut Context<Self>, _: Alarm) -> Result<(), Abort> {
        self.seen.alarms.lock().unwrap().push(self.loaded.is_some());
        Ok(())
    }
}

/// Replies with the activation number `on_activate` loaded, and the hook runs on record.
struct Probe;
impl Message for Probe {
    type Reply = (Option<i64>, Vec<i64>);
}

impl Handler<Probe> for Hooked {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        _: Probe,
    ) -> Result<(Option<i64>, Vec<i64>), Abort> {
        let sql = ctx.storage().sql();
        let mut stmt = sql.prepare("SELECT n FROM hook_runs ORDER BY n")?;
        let runs = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok((self.loaded, runs))
    }
}

/// Aborts the turn after the hook ran.
struct Fail;
impl Message for Fail {
    type Reply = ();
}

impl Handler<Fail> for Hooked {
    async fn handle(&mut self, _: &mut Context<Self>, _: Fail) -> Result<(), Abort> {
        Err(Abort::new("deliberate abort"))
    }
}

/// Sets an alarm due in half a second.
struct Ring;
impl Message for Ring {
    type Reply = ();
}

impl Handler<Ring> for Hooked {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: Ring) -> Result<(), Abort> {
        ctx.set_alarm("ring", SystemTime::now() + Duration::from_millis(500))
    }
}

fn open(options: Options) -> (Runtime, Namespace<Hooked>, Arc<Seen>) {
    let runtime = Runtime::open(options).unwrap();
    let seen = Arc::new(Seen::default());
    let ns = runtime
        .namespace("hooked", {
            let seen = seen.clone();
            move |_| Hooked {
                seen: seen.clone(),
                loaded: None,
            }
        })
        .unwrap();
    (runtime, ns, seen)
}

#[tokio::test]
async fn the_hook_runs_once_per_activation_before_the_first_handler() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::new(dir.path())
        .shards(1)
        .idle_timeout(Duration::from_millis(50));
    let (runtime, ns, seen) = open(options);
    let stub = ns.get_by_name("a");
    for _ in 0..3 {
        assert_eq!(stub.call(Probe).await.unwrap(), (Some(1), vec![1]));
    }
    assert_eq!(seen.activations.load(Ordering::SeqCst), 1);
    // Evicted when idle; the next call activates a new instance, which runs the hook again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (loaded, runs) = stub.call(Probe).await.unwrap();
        if loaded == Some(2) {
            assert_eq!(runs, [1, 2]);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never evicted");
    }
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn the_hook_commits_or_rolls_back_with_the_first_turn() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(Options::new(dir.path()).shards(1));
    let stub = ns.get_by_name("b");
    // The first turn aborts: the hook's writes go with it, and the instance is discarded.
    let err = stub.call(Fail).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActorFailed, "{err}");
    // The next instance runs the hook again; only its own run is on record.
    assert_eq!(stub.call(Probe).await.unwrap(), (Some(2), vec![2]));
    assert_eq!(seen.activations.load(Ordering::SeqCst), 2);
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_failing_hook_fails_the_turn_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ns, seen) = open(Options::new(dir.path()).shards(1));
    let stub = ns.get_by_name("c");
    seen.refuse.store(true, Ordering::SeqCst);
    let err = stub.call(Probe).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("refusing to activate"), "{err}");
    seen.refuse.store(false, Ordering::SeqCst);
    // Run 1 wrote its row and aborted: rolled back. Run 2 is the one on record.
    assert_eq!(stub.call(Probe).await.unwrap(), (Some(2), vec![2]));
    runtime.shutdown(GRACE).await;
}

#[tokio::test]
async fn the_hook_runs_before_an_alarm_handler_of_a_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::new(dir.path())
        .shards(1)
        .max_resident(1)
        .idle_timeout(Duration::from_millis(20));
    let (runtime, ns, seen) = open(options);
    ns.get_by_name("d").call(Ring).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.alarms.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the alarm never fired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.alarms.lock().unwrap().iter().all(|hooked| *hooked));
    // The instance that set the alarm was evicted (idle) before it came due: the alarm woke a
    // new one, whose hook ran first.
    assert_eq!(seen.activations.load(Ordering::SeqCst), 2);
    runtime.shutdown(GRACE).await;
}

/// Stores an integer, then reads it back as text.
struct WrongType;
impl Message for WrongType {
    type Reply = ();
}

/// Reads the integer back as an integer.
struct RightType;
impl Message for RightType {
    type Reply = Option<i64>;
}

struct Typed;
impl Actor for Typed {}

impl Handler<WrongType> for Typed {
    async fn handle(&mut self, ctx: &mut Context<Self>, _: WrongType) -> Result<(), Abort> {
        let storage = ctx.storage();
        if storage.get::<i64>("n")?.is_none() {
            storage.put("n", &7_i64)?;
            return Ok(());
        }
        storage.put("n", &8_i64)?;
        let _: Option<String> = storage.get("n")?;
        Ok(())
    }
}

impl Handler<RightType> for Typed {
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        _: RightType,
    ) -> Result<Option<i64>, Abort> {
        Ok(ctx.storage().get("n")?)
    }
}

#[tokio::test]
async fn a_value_read_as_the_wrong_type_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).shards(1)).unwrap();
    let ns = runtime.namespace("typed", |_| Typed).unwrap();
    let stub = ns.get_by_name("t");
    stub.call(WrongType).await.unwrap();
    assert_eq!(stub.call(RightType).await.unwrap(), Some(7));
    let err = stub.call(WrongType).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActorFailed, "{err}");
    assert!(err.message().contains("Integer"), "{err}");
    // The turn's write of 8 was rolled back with it.
    assert_eq!(stub.call(RightType).await.unwrap(), Some(7));
    runtime.shutdown(GRACE).await;
}

#[test]
fn an_abort_is_an_error_with_its_storage_cause() {
    use std::error::Error as _;
    let from_storage = Abort::from(burrow_runtime::rusqlite::Error::QueryReturnedNoRows);
    assert_eq!(
        from_storage.source().map(|e| e.to_string()),
        Some("Query returned no rows".to_owned())
    );
    assert!(Abort::new("plain").source().is_none());
    let boxed: Box<dyn std::error::Error> = Box::new(Abort::new("plain"));
    assert_eq!(boxed.to_string(), "plain");
}
