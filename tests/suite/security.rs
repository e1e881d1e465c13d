//! What a client cannot make the server remember, look up or create, and what the server
//! refuses to start with: bounded metric labels, rate-limited lookups, legacy probes that
//! create nothing, paged listings, secrets rules, private files.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::time::Duration;

use crate::common::*;
use burrow::identity::InstanceId;
use burrow_client::ProvisionRequest;
use serde_json::Value;

async fn get(s: &Served, path: &str, token: &str) -> (u16, Value, Option<String>) {
    let response = s
        .http
        .get(format!("{}{path}", s.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_grow_the_metrics() {
    let s = serve().await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let _ = s
            .http
            .request(method, format!("{}/healthz", s.url()))
            .send()
            .await
            .unwrap();
    }
    let metrics = s.metrics().await;
    assert!(!metrics.contains("BREW"), "{metrics}");
    let other = metrics
        .lines()
        .filter(|l| l.starts_with("burrow_http_requests_total") && l.contains("method=\"other\""))
        .count();
    assert!(other >= 1, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_rate_limited_per_user_and_known_ones_are_not() {
    let s = serve_with(|o| o.env("BURROW_LOOKUPS_PER_SECOND", 5)).await;
    let alice = user("alice");
    let mine = InstanceId::new_random();
    s.running(&alice, Some(mine)).await;
    let alice_token = s.token("alice", false);
    let mut refused = None;
    for i in 0..30 {
        let probe = InstanceId::new_random();
        let (status, body, retry) = get(
            &s,
            &format!("/api/user/status?instanceId={probe}"),
            &alice_token,
        )
        .await;
        if status == 429 {
            assert_eq!(retry.as_deref(), Some("1"), "{body}");
            assert!(
                body["details"].as_str().unwrap().contains("per second"),
                "{body}"
            );
            refused = Some(i);
            break;
        }
        assert_eq!(status, 404, "{body}");
    }
    let refused = refused.expect("thirty lookups of unknown ids were never limited");
    assert!(refused >= 5, "limited after only {refused} lookups");
    // The limit is alice's alone, and her own instance (its owner known) still answers.
    let (status, _, _) = get(
        &s,
        &format!("/api/user/status?instanceId={mine}"),
        &alice_token,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body, _) = get(
        &s,
        &format!("/api/user/status?instanceId={}", InstanceId::new_random()),
        &s.token("bob", false),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // A second later the budget has refilled.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = get(
        &s,
        &format!("/api/user/status?instanceId={}", InstanceId::new_random()),
        &alice_token,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_user_ids_creates_no_actor_and_a_provisioned_id_is_found_at_once() {
    let s = serve().await;
    let instance_files = s.process.data_dir().join("runtime/actors/instance");
    for i in 0..10 {
        let token = s.token(&format!("stranger-{i}"), false);
        let (status, body, _) = get(&s, "/api/user/status", &token).await;
        assert_eq!(status, 404, "{body}");
        let (status, _, _) = get(&s, "/api/user/config", &token).await;
        assert_eq!(status, 404);
    }
    assert_eq!(walk(&instance_files), Vec::<std::path::PathBuf>::new());
    let actors = s
        .http
        .get(format!("{}/api/admin/actors?namespace=instance", s.url()))
        .bearer_auth(s.token("root", true))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        actors["actors"].as_array().map(Vec::len),
        Some(0),
        "{actors}"
    );

    // "Not found" is remembered for a moment, but a provision here forgets it at once.
    let carol = user("carol");
    let id = InstanceId::new_random();
    let token = s.token("carol", false);
    let (status, _, _) = get(&s, &format!("/api/user/status?instanceId={id}"), &token).await;
    assert_eq!(status, 404);
    let mut request = ProvisionRequest::new(&carol);
    request.instance_id = Some(id);
    s.client.provision(&request).await.unwrap();
    let (status, body, _) = get(&s, &format!("/api/user/status?instanceId={id}"), &token).await;
    assert_eq!(status, 200, "{body}");
    // A legacy instance likewise.
    let (status, _, _) = get(&s, "/api/user/status", &token).await;
    assert_eq!(status, 404);
    s.client
        .provision(&ProvisionRequest::new(&carol))
        .await
        .unwrap();
    let (status, body, _) = get(&s, "/api/user/status", &token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_listing_is_paged_with_a_cursor() {
    let s = serve().await;
    let dana = user("dana");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = InstanceId::new_random();
        let mut request = ProvisionRequest::new(&dana);
        request.instance_id = Some(id);
        s.client.provision(&request).await.unwrap();
        ids.push(id.to_string());
    }
    ids.sort();
    let token = s.token("dana", false);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..4 {
        let path = match &cursor {
            Some(c) => format!("/api/user/instances?limit=2&cursor={c}"),
            None => "/api/user/instances?limit=2".to_owned(),
        };
        let (status, body, _) = get(&s, &path, &token).await;
        assert_eq!(status, 200, "{body}");
        let page = body["instances"].as_array().unwrap();
        assert!(page.len() <= 2);
        for i in page {
            assert!(i["status"].is_string(), "{i}");
            seen.push(i["instanceId"].as_str().unwrap().to_owned());
        }
        cursor = body["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ids);
    for bad in ["limit=0", "limit=501", "cursor=nope"] {
        let (status, body, _) = get(&s, &format!("/api/user/instances?{bad}"), &token).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// Runs `burrow` with `args` and `env`; its exit success and stderr. A server that starts
/// instead of refusing is killed after 20 s and counts as a success.
fn burrow(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(args)
        .env_remove("BURROW_TOKEN_SECRET")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let success = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (success, stderr)
}

#[test]
fn weak_or_mismatched_secrets_and_long_tokens_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data_arg];
    for (name, value) in [
        ("BURROW_TOKEN_SECRET", "short-secret"),
        ("BURROW_INTERNAL_API_KEY", "0123456789abcdef0123456789abcde"),
        ("BURROW_GATEWAY_SECRET", "x"),
    ] {
        let (ok, stderr) = burrow(&serve, &[(name, value)]);
        assert!(!ok);
        assert!(
            stderr.contains(name) && stderr.contains("32 bytes"),
            "{stderr}"
        );
    }
    let (ok, stderr) = burrow(&serve, &[("BURROW_SECRETS_KEY", "not-hex")]);
    assert!(!ok && stderr.contains("64 hex digits"), "{stderr}");

    // A token: the keys file is created; its secrets key then may not change.
    let key = "ab".repeat(32);
    let token = ["token", "--user", "alice", "--data-dir", data_arg];
    let (ok, stderr) = burrow(&token, &[("BURROW_SECRETS_KEY", key.as_str())]);
    assert!(ok, "{stderr}");
    let other = "cd".repeat(32);
    let (ok, stderr) = burrow(&serve, &[("BURROW_SECRETS_KEY", other.as_str())]);
    assert!(!ok && stderr.contains("differs"), "{stderr}");

    // Tokens have a longest validity: 30 days for a user, 24 hours for an admin.
    for (user, ttl, refused_naming) in [
        ("alice", "2592001", Some("2592000")),
        ("alice", "2592000", None),
        ("root --admin", "86401", Some("86400")),
        ("root --admin", "86400", None),
    ] {
        let mut args = vec!["token", "--ttl", ttl, "--data-dir", data_arg, "--user"];
        args.extend(user.split(' '));
        let (ok, stderr) = burrow(&args, &[]);
        match refused_naming {
            Some(limit) => assert!(!ok && stderr.contains(limit), "{args:?}: {stderr}"),
            None => assert!(ok, "{args:?}: {stderr}"),
        }
    }

    // A keys file others can read is refused, saying how to fix it.
    let keys = data.join("server-keys.json");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, stderr) = burrow(&token, &[]);
    assert!(!ok && stderr.contains("chmod 600"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_durability_is_configurable() {
    let s = serve_with(|o| o.env("BURROW_DURABILITY", "machine")).await;
    let health: Value = s
        .http
        .get(format!("{}/healthz", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["durability"], "machine");
    s.running(&user("erin"), Some(InstanceId::new_random()))
        .await;
    let data = s.process.data_dir();
    let mut checked = 0;
    let mut stack = vec![data.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:04o}", path.display());
        checked += 1;
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(checked > 10, "only {checked} paths checked");

    let (ok, stderr) = burrow(&["serve", "--durability", "sometimes"], &[]);
    assert!(!ok && stderr.contains("sometimes"), "{stderr}");
}

/// Real, effective, saved and file-system uid of a process, the same for gids, and its
/// supplementary groups.
fn credentials(pid: i32) -> (Vec<u32>, Vec<u32>, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let ids = |name: &str| {
        line(name)
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect::<Vec<u32>>()
    };
    (ids("Uid:"), ids("Gid:"), line("Groups:"))
}

/// Runs `command` as `uid` (and its gid, no other groups) with `cwd` as its working
/// directory, entered before the switch as the gateway enters its volume: what a sandbox
/// could do. Whether it succeeded.
fn as_sandbox(uid: u32, cwd: &std::path::Path, command: &[&str]) -> bool {
    let uid = uid.to_string();
    std::process::Command::new("setpriv")
        .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
        .args(command)
        .current_dir(cwd)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sandbox_runs_as_a_uid_of_its_own_that_reaches_nothing_else() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root, and this test needs it"
        );
        eprintln!("skipped: sandboxes get uids of their own only when the server runs as root");
        return;
    }
    let s = serve().await;
    s.running(&user("alice"), Some(InstanceId::new_random()))
        .await;
    s.running(&user("bob"), Some(InstanceId::new_random()))
        .await;
    let data = s.process.data_dir().to_owned();
    let sandboxes = burrow_testkit::server::sandboxes(&data);
    assert_eq!(sandboxes.len(), 2);
    let mut seen = Vec::new();
    for sandbox in &sandboxes {
        let (uids, gids, groups) = credentials(sandbox.pid);
        let uid = uids[0];
        assert!(uids.iter().all(|u| *u == uid), "uids {uids:?}");
        assert!(gids.iter().all(|g| *g == uid), "gids {gids:?}");
        assert_eq!(groups, "", "supplementary groups kept");
        assert!((1_000_000..1_065_536).contains(&uid), "uid {uid}");
        let record: Value = serde_json::from_slice(
            &std::fs::read(
                data.join("sandboxes/machines")
                    .join(&sandbox.machine_id)
                    .join("machine.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let volume = data
            .join("sandboxes/volumes")
            .join(record["volumeId"].as_str().unwrap());
        assert_eq!(std::fs::metadata(&volume).unwrap().uid(), uid);
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/cwd", sandbox.pid)).unwrap(),
            volume
        );
        seen.push((uid, volume));
    }
    assert_ne!(seen[0].0, seen[1].0, "two sandboxes share a uid");
    assert_ne!(seen[0].0, nix::unistd::Uid::effective().as_raw());

    let (uid, volume) = &seen[0];
    let (_, other_volume) = &seen[1];
    let keys = data.join("server-keys.json");
    // Its own volume is its own...
    assert!(as_sandbox(
        *uid,
        volume,
        &["touch", "written-by-the-sandbox"]
    ));
    assert_eq!(
        std::fs::metadata(volume.join("written-by-the-sandbox"))
            .unwrap()
            .uid(),
        *uid
    );
    // ...and nothing else is: not the keys, the actors, the registry, or another volume,
    // by absolute path or by climbing out of its folder.
    for denied in [
        vec!["cat", keys.to_str().unwrap()],
        vec!["cat", "../../../server-keys.json"],
        vec!["ls", "../../../runtime"],
        vec!["cat", "../../../registry.db"],
        vec!["ls", other_volume.to_str().unwrap()],
        vec!["ls", ".."],
    ] {
        assert!(
            !as_sandbox(*uid, volume, &denied),
            "the sandbox could run {denied:?}"
        );
    }
    // As root the same paths open: the refusals above are the uid's, not wrong paths.
    assert!(std::fs::read(&keys).is_ok());
    assert!(std::fs::read_dir(other_volume).is_ok());
    assert!(std::fs::read_dir(volume.join("../../../runtime")).is_ok());
}
