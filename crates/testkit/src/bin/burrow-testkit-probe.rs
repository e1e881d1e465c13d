//! A helper process for the testkit's own tests, which need a process they can kill or whose
//! environment they choose.
//!
//! - `hold-cluster`: starts a dedicated cluster, prints `<dir> <port>`, waits to be killed.
//! - `fresh-database`: takes a database from the shared server (as `BURROW_TEST_DATABASE_URL`
//!   says), prints its URL, drops it and exits.

fn main() {
    let result = match std::env::args().nth(1).as_deref() {
        Some("hold-cluster") => hold_cluster(),
        Some("fresh-database") => fresh_database(),
        _ => Err("usage: burrow-testkit-probe hold-cluster|fresh-database".into()),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

fn hold_cluster() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = burrow_testkit::pg::Cluster::start()?;
    println!("{} {}", cluster.dir().display(), cluster.port());
    loop {
        std::thread::park();
    }
}

fn fresh_database() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = burrow_testkit::pg::shared().create_database().await?;
        db.connect().await?.batch_execute("SELECT 1").await?;
        println!("{}", db.url());
        Ok(())
    })
}
