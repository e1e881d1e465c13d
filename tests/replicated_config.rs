//! `burrow serve --durability replicated` refuses to start without what that mode needs, and
//! names it; with everything given it keeps no keys file on the disk it protects against.

use std::process::Command;
use std::time::Duration;

use burrow_testkit::server::{BurrowProcess, ServeOptions};

const SECRETS: [(&str, &str); 4] = [
    (
        "BURROW_TOKEN_SECRET",
        "tttttttttttttttttttttttttttttttttttttttt",
    ),
    (
        "BURROW_INTERNAL_API_KEY",
        "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
    ),
    (
        "BURROW_GATEWAY_SECRET",
        "gggggggggggggggggggggggggggggggggggggggg",
    ),
    (
        "BURROW_SECRETS_KEY",
        "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
    ),
];

/// Runs `burrow serve --durability replicated` with `env`; it must exit at once, and its
/// stderr is returned.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--durability",
            "replicated",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(args)
        .env_remove("BURROW_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started");
    assert!(
        !dir.path().join("server-keys.json").exists(),
        "a refused start wrote a keys file"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn without_postgresql_the_start_is_refused_naming_the_flag() {
    let stderr = refused(&[], &SECRETS);
    assert!(stderr.contains("--database-url"), "{stderr}");
}

#[tokio::test]
async fn each_missing_secret_is_named() {
    let db = burrow_testkit::pg::fresh_database().await;
    for (name, _) in SECRETS {
        let given: Vec<(&str, &str)> = SECRETS.into_iter().filter(|(n, _)| *n != name).collect();
        let stderr = refused(&["--database-url", db.url()], &given);
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[tokio::test]
async fn with_everything_given_no_keys_file_is_written() {
    let db = burrow_testkit::pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options =
        ServeOptions::new(dir.path().join("data")).env("BURROW_DURABILITY", "replicated");
    for (name, value) in SECRETS {
        options = options.env(name, value);
    }
    options.database_url = Some(db.url().to_owned());
    let mut process = BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
        .await
        .unwrap();
    // The internal API key is the given one.
    let given = burrow_client::PlatformClient::new(process.url(), SECRETS[1].1.to_owned());
    given.create_organization("Given", None).await.unwrap();
    let other = burrow_client::PlatformClient::new(process.url(), "x".repeat(40));
    assert!(other.create_organization("Other", None).await.is_err());
    process.terminate(Duration::from_secs(10));
    assert!(!dir.path().join("data/server-keys.json").exists());
}
