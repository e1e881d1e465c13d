//! `burrow serve --durability replicated` refuses to start without what that mode needs, and
//! names it; with everything given it keeps no keys file on the disk it protects against, and
//! serves actors' point-in-time snapshots from the log.

use std::process::Command;
use std::time::Duration;

use burrow_testkit::server::{BurrowProcess, ServeOptions};

const SECRETS: [(&str, &str); 4] = crate::common::GIVEN_SECRETS;

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

/// `burrow serve --durability replicated` with every secret given, on `db`.
async fn start_replicated(
    db: &burrow_testkit::pg::TestDatabase,
    dir: &std::path::Path,
) -> BurrowProcess {
    let mut options = ServeOptions::new(dir.join("data")).env("BURROW_DURABILITY", "replicated");
    for (name, value) in SECRETS {
        options = options.env(name, value);
    }
    options.database_url = Some(db.url().to_owned());
    BurrowProcess::start(env!("CARGO_BIN_EXE_burrow").as_ref(), options)
        .await
        .unwrap()
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
    let mut process = start_replicated(&db, dir.path()).await;
    // The internal API key is the given one.
    let given = burrow_client::PlatformClient::new(process.url(), SECRETS[1].1.to_owned());
    given.create_organization("Given", None).await.unwrap();
    let other = burrow_client::PlatformClient::new(process.url(), "x".repeat(40));
    assert!(other.create_organization("Other", None).await.is_err());
    process.terminate(Duration::from_secs(10));
    assert!(!dir.path().join("data/server-keys.json").exists());
}

#[tokio::test]
async fn an_admin_downloads_an_actor_as_it_was_at_an_entry_or_a_time() {
    use burrow::identity::{InstanceId, UserId};
    use burrow_client::{PlatformClient, ProvisionRequest};
    let db = burrow_testkit::pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut process = start_replicated(&db, dir.path()).await;
    let platform = PlatformClient::new(process.url(), SECRETS[1].1.to_owned());
    let user: UserId = "ann".parse().unwrap();
    let instance = InstanceId::new_random();
    let mut request = ProvisionRequest::new(&user);
    request.instance_id = Some(instance);
    platform.provision(&request).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = burrow::server::tokens::issue(SECRETS[0].1, &user, false, Duration::from_secs(600));
    let admin = burrow::server::tokens::issue(
        SECRETS[0].1,
        &"root".parse().unwrap(),
        true,
        Duration::from_secs(600),
    );
    let set = |value: &'static str| {
        http.patch(format!(
            "{}/api/user/config?instanceId={instance}",
            process.url()
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "envVars": { "STAGE": value } }))
        .send()
    };
    assert!(set("one").await.unwrap().status().is_success());
    let between = time_now_rfc3339();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(set("two").await.unwrap().status().is_success());

    let id = burrow_runtime::ActorId::for_name("instance", &format!("i:{instance}"));
    let snapshot = |query: String| {
        http.get(format!(
            "{}/api/admin/actors/instance/{id}/snapshot?{query}",
            process.url()
        ))
        .bearer_auth(&admin)
        .send()
    };
    let stage_in = |bytes: &[u8]| -> String {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let conn = rusqlite::Connection::open(file.path()).unwrap();
        let values: Vec<Vec<u8>> = conn
            .prepare("SELECT value FROM _burrow_kv")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // The env var as the instance's state encodes it: its name, then its value.
        let all: Vec<u8> = values.concat();
        let Some(at) = all.windows(5).position(|w| w == b"STAGE") else {
            return "unset".into();
        };
        let after = String::from_utf8_lossy(&all[at + 5..(at + 16).min(all.len())]).into_owned();
        ["one", "two"]
            .into_iter()
            .find(|v| after.contains(v))
            .unwrap_or("unset")
            .to_owned()
    };
    let at_between = snapshot(format!("at={between}")).await.unwrap();
    assert_eq!(at_between.status(), 200);
    assert_eq!(
        at_between.headers()["content-type"],
        "application/vnd.sqlite3"
    );
    assert_eq!(stage_in(&at_between.bytes().await.unwrap()), "one");
    let now = snapshot(format!("at={}", time_now_rfc3339()))
        .await
        .unwrap();
    assert_eq!(stage_in(&now.bytes().await.unwrap()), "two");
    assert_eq!(snapshot("seq=100000".into()).await.unwrap().status(), 404);
    let unknown = burrow_runtime::ActorId::for_name("instance", "i:nobody");
    let response = http
        .get(format!(
            "{}/api/admin/actors/instance/{unknown}/snapshot?seq=1",
            process.url()
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        snapshot("at=1999-01-01T00:00:00Z".into())
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(snapshot("at=yesterday".into()).await.unwrap().status(), 400);
    // Not for users.
    let response = http
        .get(format!(
            "{}/api/admin/actors/instance/{id}/snapshot?seq=1",
            process.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    process.terminate(Duration::from_secs(10));

    // The same from the command line, with no server running.
    let export = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_burrow"))
            .args([
                "actor",
                "export",
                "--database-url",
                db.url(),
                "--namespace",
                "instance",
            ])
            .args(["--id", &id.to_string()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = dir.path().join("exported.db");
    let now = time_now_rfc3339();
    let done = export(&["--at", &now, "--out", out.to_str().unwrap()]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(stage_in(&std::fs::read(&out).unwrap()), "two");
    let again = export(&["--at", &now, "--out", out.to_str().unwrap()]);
    assert!(!again.status.success(), "it overwrote the export");
    let past = export(&[
        "--seq",
        "100000",
        "--out",
        dir.path().join("x.db").to_str().unwrap(),
    ]);
    assert!(!past.status.success());
    assert!(
        String::from_utf8_lossy(&past.stderr).contains("past"),
        "{}",
        String::from_utf8_lossy(&past.stderr)
    );
}

fn time_now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
