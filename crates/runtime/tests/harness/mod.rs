//! A minimal test harness for test binaries that must re-run themselves as child processes
//! (`harness = false`): runs the named tests, honours a name filter and `--list`, and ends with
//! the `N passed, M failed` line that test runners read.

/// One test: its name and body (an `Err` is a failure).
pub type Test = (&'static str, fn() -> Result<String, String>);

/// Runs `tests` unless the first argument is `child`, in which case `child` gets the rest.
pub fn main(tests: &[Test], child: fn(&[String])) {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2..]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let selected = tests.iter().filter(|(name, _)| {
        filters.is_empty()
            || filters.iter().any(|f| {
                if exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            })
    });
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in selected {
        match std::panic::catch_unwind(test) {
            Ok(Ok(summary)) => {
                println!("test {name} ... ok ({summary})");
                passed += 1;
            }
            Ok(Err(failure)) => {
                println!("test {name} ... FAILED\n{failure}");
                failed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED (panicked)");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// A two-worker tokio runtime for the tests and their children.
pub fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
