//! The README's walk-through, run as written (with the server on a free port and `cargo run`
//! replaced by the binary under test).

use std::process::Command;

use burrow_testkit::server::{BurrowProcess, ServeOptions};

/// The shell lines of the first ```sh block after `after` (and before `before`, if given).
fn block(readme: &str, after: &str) -> String {
    let start = readme
        .find(after)
        .unwrap_or_else(|| panic!("README lost {after:?}"));
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("a closed block");
    rest[open..open + close].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let setup = block(&readme, "## A walk-through with curl");
    let steps = block(&readme, "<!-- walkthrough:begin -->");
    assert!(readme.contains("<!-- walkthrough:end -->"));

    let dir = tempfile::tempdir().unwrap();
    let process = BurrowProcess::start(
        env!("CARGO_BIN_EXE_burrow").as_ref(),
        ServeOptions::new(dir.path().join("burrow-data")),
    )
    .await
    .unwrap();
    let binary = env!("CARGO_BIN_EXE_burrow");
    let setup = setup
        .replace("http://127.0.0.1:8787", &process.url())
        .replace("cargo run --release -q --", binary);
    assert!(
        setup.contains(&process.url()) && setup.contains(binary),
        "the setup block changed shape:\n{setup}"
    );
    let script = format!("set -e\n{setup}\n{steps}");
    let output = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the walk-through failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "\"sandboxId\":\"ki_",
        "\"status\":\"running\"",
        "\"path\":\"/hello\"",
        "\"query\":\"name=world\"",
        "\"finalized\":true",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
    assert!(
        process.sandbox_pids().is_empty(),
        "the destroyed sandbox still runs"
    );
}
