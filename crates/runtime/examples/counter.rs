//! A counter per name, persisted in each actor's own SQLite file.
//!
//! ```sh
//! cargo run -p burrow-runtime --example counter -- alice 5
//! cargo run -p burrow-runtime --example counter -- alice 2   # prints 7: it survived the exit
//! ```
//!
//! Data goes to `./counter-data` (or the directory in `BURROW_DATA_DIR`).

use std::time::Duration;

use burrow_runtime::{Abort, Actor, Context, Handler, Message, Options, Runtime};

/// The counter, with its total loaded once per activation.
#[derive(Default)]
struct Counter {
    total: i64,
}

/// Adds to the counter; replies with the new total.
struct Add(i64);

impl Message for Add {
    type Reply = i64;
}

/// Reads the total.
struct Get;

impl Message for Get {
    type Reply = i64;
}

impl Actor for Counter {
    async fn on_activate(&mut self, ctx: &mut Context<Self>) -> Result<(), Abort> {
        let sql = ctx.storage().sql();
        sql.execute_batch("CREATE TABLE IF NOT EXISTS counter (total INTEGER NOT NULL)")?;
        self.total = sql.query_row("SELECT coalesce(sum(total), 0) FROM counter", [], |r| {
            r.get(0)
        })?;
        Ok(())
    }
}

impl Handler<Add> for Counter {
    async fn handle(&mut self, ctx: &mut Context<Self>, Add(n): Add) -> Result<i64, Abort> {
        let total = self.total;
        let new = total
            .checked_add(n)
            .ok_or_else(|| Abort::invalid_input(format!("{total} + {n} overflows")))?;
        let sql = ctx.storage().sql();
        sql.execute("DELETE FROM counter", [])?;
        sql.execute("INSERT INTO counter (total) VALUES (?1)", [new])?;
        // An abort after this point discards this instance, so memory never runs ahead of
        // what is committed.
        self.total = new;
        Ok(new)
    }
}

impl Handler<Get> for Counter {
    async fn handle(&mut self, _: &mut Context<Self>, _: Get) -> Result<i64, Abort> {
        Ok(self.total)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "default".to_owned());
    let add = match args.next() {
        Some(n) => Some(
            n.parse::<i64>()
                .map_err(|e| format!("{n:?} is not a number: {e}"))?,
        ),
        None => None,
    };
    let dir = std::env::var("BURROW_DATA_DIR").unwrap_or_else(|_| "counter-data".to_owned());

    let runtime = Runtime::open(Options::new(dir))?;
    let counters = runtime.namespace("counter", |_info| Counter::default())?;
    let counter = counters.get_by_name(&name);
    let total = match add {
        Some(n) => counter.call(Add(n)).await?,
        None => counter.call(Get).await?,
    };
    println!("{name}: {total}");
    runtime.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
