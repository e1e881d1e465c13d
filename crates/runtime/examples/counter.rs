//! A counter per name, persisted in each actor's own SQLite file.
//!
//! ```sh
//! cargo run -p burrow-runtime --example counter -- alice 5
//! cargo run -p burrow-runtime --example counter -- alice 2   # prints 7: it survived the exit
//! ```
//!
//! Data goes to `./counter-data` (or the directory in `BURROW_DATA_DIR`).

use std::time::Duration;

use burrow_runtime::{Abort, Actor, Context, Options, Runtime};

enum Request {
    Add(i64),
    Get,
}

struct Counter;

impl Actor for Counter {
    type Request = Request;
    type Response = i64;

    async fn handle(&mut self, ctx: &mut Context<Self>, request: Request) -> Result<i64, Abort> {
        let sql = ctx.storage().sql();
        sql.execute_batch("CREATE TABLE IF NOT EXISTS counter (total INTEGER NOT NULL)")?;
        let total: i64 = sql.query_row("SELECT coalesce(sum(total), 0) FROM counter", [], |r| {
            r.get(0)
        })?;
        match request {
            Request::Get => Ok(total),
            Request::Add(n) => {
                let new = total
                    .checked_add(n)
                    .ok_or_else(|| Abort::invalid_input(format!("{total} + {n} overflows")))?;
                sql.execute("DELETE FROM counter", [])?;
                sql.execute("INSERT INTO counter (total) VALUES (?1)", [new])?;
                Ok(new)
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "default".to_owned());
    let request = match args.next() {
        Some(n) => Request::Add(
            n.parse()
                .map_err(|e| format!("{n:?} is not a number: {e}"))?,
        ),
        None => Request::Get,
    };
    let dir = std::env::var("BURROW_DATA_DIR").unwrap_or_else(|_| "counter-data".to_owned());

    let runtime = Runtime::open(Options::new(dir))?;
    let counters = runtime.namespace("counter", |_info| Counter)?;
    let total = counters.get_by_name(&name).call(request).await?;
    println!("{name}: {total}");
    runtime.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
