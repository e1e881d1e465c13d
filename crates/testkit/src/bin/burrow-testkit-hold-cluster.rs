//! Starts a dedicated cluster, prints `<dir> <port>` and waits to be killed.
//!
//! The testkit's own tests kill this process to check that a cluster whose owner dies is
//! cleaned up — by its watchdog, or by the next run's sweep when the watchdog died too.

fn main() {
    let cluster = match burrow_testkit::pg::Cluster::start() {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("{} {}", cluster.dir().display(), cluster.port());
    loop {
        std::thread::park();
    }
}
