//! Alarms survive a shutdown and a kill -9: 1,000 actors each set an alarm, the runtime goes
//! away, comes back 2 s later, and every alarm fires — none before its due time. Duplicates
//! are allowed (delivery is at least once) but counted and reported. `harness = false`: the
//! kill test re-runs this binary as its child.

mod harness;

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burrow_runtime::alarm::Alarm;
use burrow_runtime::{Abort, Actor, Context, Handler, Message, Namespace, Options, Runtime};
use common::{at_ms, ms_of, now_ms};
use harness::executor;

const ACTORS: u64 = 1_000;

/// (actor name, due, when the handler ran, how late it was told it ran)
type Fired = Arc<Mutex<Vec<(String, i64, i64, Duration)>>>;

struct Sleeper {
    fired: Fired,
    /// Also print each delivery (the child process reports its deliveries this way).
    echo: bool,
}

/// Set the alarm this many ms from now (`None`: just be created).
struct Wake(Option<i64>);

impl Message for Wake {
    type Reply = i64;
}

impl Handler<Wake> for Sleeper {
    async fn handle(&mut self, ctx: &mut Context<Self>, Wake(in_ms): Wake) -> Result<i64, Abort> {
        let Some(in_ms) = in_ms else { return Ok(0) };
        let due = now_ms() + in_ms;
        ctx.set_alarm("wake", at_ms(due))?;
        Ok(due)
    }
}

impl Actor for Sleeper {
    async fn alarm(&mut self, ctx: &mut Context<Self>, alarm: Alarm) -> Result<(), Abort> {
        let name = ctx.name().unwrap_or("?").to_owned();
        let ran_at = now_ms();
        if self.echo {
            let mut out = std::io::stdout().lock();
            writeln!(out, "fired {name} {} {ran_at}", ms_of(alarm.due)).unwrap();
            out.flush().unwrap();
        }
        self.fired
            .lock()
            .unwrap()
            .push((name, ms_of(alarm.due), ran_at, alarm.late_by));
        Ok(())
    }
}

fn open(dir: &Path, fired: &Fired, echo: bool) -> (Runtime, Namespace<Sleeper>) {
    let runtime = Runtime::open(Options::new(dir)).unwrap();
    let ns = runtime
        .namespace("sleeper", {
            let fired = fired.clone();
            move |_| Sleeper {
                fired: fired.clone(),
                echo,
            }
        })
        .unwrap();
    (runtime, ns)
}

/// Sets one alarm per actor, due between 1.5 and 5.5 s from now: some may fire before the runtime
/// goes away, some come due while it is down, some after it is back. Calls `acked` with each.
async fn set_alarms(ns: &Namespace<Sleeper>, mut acked: impl FnMut(u64, i64)) {
    let ids: Vec<u64> = (0..ACTORS).collect();
    // The actors exist first, so that the alarms are set by turns of existing actors (a new
    // actor's first reply also waits for its creation to be catalogued, which would hide a
    // reply overtaking its alarm's index entry).
    for set in [false, true] {
        for batch in ids.chunks(100) {
            let calls: Vec<_> = batch
                .iter()
                .map(|i| {
                    let due_in = set.then_some(1500 + 4 * (*i as i64 % 1000));
                    ns.get_by_name(&format!("s{i}")).call(Wake(due_in))
                })
                .collect();
            for (due, &i) in futures_util::future::join_all(calls)
                .await
                .into_iter()
                .zip(batch)
            {
                let due = due.unwrap();
                if set {
                    acked(i, due);
                }
            }
        }
    }
}

/// Restarts on `dir` and waits (up to 60 s) until every acknowledged alarm has fired (before
/// the restart, as `fired` says, or after it); checks none fired early and reports duplicates.
fn restart_and_check(
    dir: &Path,
    acked: &BTreeMap<String, i64>,
    fired: Fired,
) -> Result<String, String> {
    let before = fired.lock().unwrap().len();
    executor().block_on(async {
        let (runtime, _ns) = open(dir, &fired, false);
        for _ in 0..6000 {
            let seen: std::collections::BTreeSet<String> =
                fired.lock().unwrap().iter().map(|f| f.0.clone()).collect();
            if acked.keys().all(|name| seen.contains(name)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        runtime.shutdown(Duration::from_secs(10)).await;
    });
    let fired = fired.lock().unwrap();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, due, ran_at, _) in fired.iter() {
        *count.entry(name).or_default() += 1;
        if ran_at < due {
            return Err(format!(
                "{name}: fired at {ran_at}, before its due time {due}"
            ));
        }
        if acked.get(name) != Some(due) {
            return Err(format!(
                "{name}: fired with due time {due}, but {:?} was set",
                acked.get(name)
            ));
        }
    }
    let missing: Vec<_> = acked
        .keys()
        .filter(|n| !count.contains_key(n.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} alarms never fired, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let duplicates: usize = count.values().map(|c| c - 1).sum();
    let late = fired[before..]
        .iter()
        .filter(|f| f.3 >= Duration::from_millis(100))
        .count();
    if late == 0 {
        return Err("no alarm came due while the runtime was down: the test proved nothing".into());
    }
    Ok(format!(
        "{} alarms fired, {} of them before the restart; {duplicates} duplicate deliveries; \
         {late} were due while down and told they were late",
        count.len(),
        before
    ))
}

fn alarms_fire_after_a_shutdown_and_restart() -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeMap::new();
    let fired: Fired = Arc::default();
    executor().block_on(async {
        let (runtime, ns) = open(dir.path(), &fired, false);
        set_alarms(&ns, |i, due| {
            acked.insert(format!("s{i}"), due);
        })
        .await;
        runtime.shutdown(Duration::from_secs(10)).await;
    });
    std::thread::sleep(Duration::from_secs(2));
    restart_and_check(dir.path(), &acked, fired)
}

/// The child: set the alarms, print each acknowledged one, then `done`, and wait to be killed.
fn child(args: &[String]) {
    let dir = Path::new(&args[0]);
    let fired: Fired = Arc::default();
    executor().block_on(async {
        let (_runtime, ns) = open(dir, &fired, true);
        // Locked line by line: alarm handlers print on other threads meanwhile.
        set_alarms(&ns, |i, due| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "s{i} {due}").unwrap();
            out.flush().unwrap();
        })
        .await;
        println!("done");
        std::future::pending::<()>().await
    });
}

fn alarms_fire_after_a_kill_9_and_restart() -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .arg(dir.path())
        // A slow catalog: acknowledged alarms would be lost if replies did not wait for it.
        .env("BURROW_FAULT_CATALOG_DELAY_MS", "20")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = BTreeMap::new();
    let fired: Fired = Arc::default();
    let record = |line: String, acked: &mut BTreeMap<String, i64>| {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[..] {
            ["fired", name, due, ran_at] => fired.lock().unwrap().push((
                name.to_owned(),
                due.parse().unwrap(),
                ran_at.parse().unwrap(),
                Duration::ZERO,
            )),
            [name, due] => {
                acked.insert(name.to_owned(), due.parse::<i64>().unwrap());
            }
            _ => panic!("unexpected line from the child: {line}"),
        }
    };
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "done" {
            break;
        }
        record(line, &mut acked);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        record(line, &mut acked);
    }
    if acked.len() as u64 != ACTORS {
        return Err(format!(
            "the child acknowledged only {} alarms",
            acked.len()
        ));
    }
    std::thread::sleep(Duration::from_secs(2));
    restart_and_check(dir.path(), &acked, fired)
}

fn main() {
    harness::main(
        &[
            (
                "alarms_fire_after_a_shutdown_and_restart",
                alarms_fire_after_a_shutdown_and_restart,
            ),
            (
                "alarms_fire_after_a_kill_9_and_restart",
                alarms_fire_after_a_kill_9_and_restart,
            ),
        ],
        child,
    );
}
