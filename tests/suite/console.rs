//! The web console in a real browser: headless Chromium driven over WebDriver (`chromedriver`)
//! against the real binary with replicated durability on a real PostgreSQL. Sign in, find an
//! instance, open it, stop it and see its status change, see a quarantined actor listed, and
//! never see a secret value. Screenshots go to `target/console-*.png`.
//!
//! Without `chromedriver` the test is skipped, except under `CI=true`, where it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use burrow::identity::{ActorName, InstanceId};
use burrow_client::{PlatformClient, ProvisionRequest};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const SECRET_VALUE: &str = "sk-live-do-not-show-7f3a9c";
const ENV_VALUE: &str = "env-value-also-private-51d2";

/// A `chromedriver` process on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts `chromedriver` (or `$BURROW_CHROMEDRIVER`), or says why it cannot.
    fn start() -> Result<Driver, String> {
        let program =
            std::env::var("BURROW_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{program} never listened on {port}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(driver)
    }

    /// A headless Chromium session (as root Chromium needs `--no-sandbox`; `/dev/shm` is
    /// small in containers).
    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,1000",
            ]}),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `css` to be on the page and its text to contain `text`.
async fn wait_text(browser: &Client, css: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(seen) = element.text().await
            && seen.contains(text)
        {
            return seen;
        }
        if Instant::now() > deadline {
            let source = browser.source().await.unwrap_or_default();
            panic!("{css} never showed {text:?}; page:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css` selects.
async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Types `token` into the sign-in page and submits it.
async fn enter_token(browser: &Client, token: &str) {
    let field = browser
        .wait()
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(token).await.unwrap();
    click(browser, "#sign-in").await;
}

/// Opens the console at `url` and signs in with `token`, waiting for the first page.
async fn sign_in(browser: &Client, url: &str, token: &str) {
    browser.goto(&format!("{url}/console")).await.unwrap();
    enter_token(browser, token).await;
    browser
        .wait()
        .for_element(Locator::Id("search"))
        .await
        .unwrap();
}

/// The page as the user sees it, and its markup: neither may hold a configured value.
async fn assert_no_secret(browser: &Client, page: &str) {
    let source = browser.source().await.unwrap();
    let text = browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for value in [SECRET_VALUE, ENV_VALUE] {
        assert!(
            !source.contains(value) && !text.contains(value),
            "{page} shows {value}"
        );
    }
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("console-{name}.png")), png).unwrap();
}

/// Damages the actor file of `instance` while the server is down, so that its next
/// activation quarantines it (and rebuilds it from the log).
fn damage(data_dir: &std::path::Path, instance: InstanceId) -> String {
    let id = burrow::runtime::ActorId::for_name(
        burrow::instance::NAMESPACE,
        &ActorName::Instance(instance).to_string(),
    )
    .to_string();
    let file = data_dir
        .join("runtime/actors/instance")
        .join(&id[..2])
        .join(format!("{id}.db"));
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    std::fs::write(&file, vec![0x5a; len.max(4096)]).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let db = burrow_testkit::pg::fresh_database().await;
    let mut s = serve_with(|o| {
        let mut o = o.env("BURROW_DURABILITY", "replicated");
        for (name, value) in GIVEN_SECRETS {
            o = o.env(name, value);
        }
        o.database_url = Some(db.url().to_owned());
        o
    })
    .await;

    let alice = user("alice");
    let instance = InstanceId::new_random();
    let mut request = ProvisionRequest::new(&alice);
    request.instance_id = Some(instance);
    request.env_vars.insert("REGION".into(), ENV_VALUE.into());
    request
        .secrets
        .insert("API_KEY".into(), SECRET_VALUE.into());
    s.client.provision(&request).await.unwrap();
    s.wait_status(&alice, Some(instance), "running").await;
    let bob = user("bob");
    let damaged = InstanceId::new_random();
    let mut request = ProvisionRequest::new(&bob);
    request.instance_id = Some(damaged);
    s.client.provision(&request).await.unwrap();
    s.wait_status(&bob, Some(damaged), "running").await;

    // Bob's actor file is damaged while the server is down; his next call quarantines it.
    assert!(
        s.process
            .terminate(Duration::from_secs(30))
            .unwrap()
            .success()
    );
    let damaged_actor = damage(s.process.data_dir(), damaged);
    s.process.restart().await.unwrap();
    let client = PlatformClient::new(s.process.url(), s.process.key("internalApiKey"));
    // (a retryable answer is allowed while the file is rebuilt; nothing else)
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = client.status(&bob, Some(damaged)).await {
        assert!(e.status() == Some(503) && Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = s.token("root", true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        let listed = s
            .get_json("/api/admin/incidents?kind=quarantined", Some(&admin))
            .await;
        let incident = listed["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["actorId"] == damaged_actor.as_str());
        if let Some(incident) = incident {
            break incident["reason"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "never recorded: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The page is public, with a strict policy.
    let page = s
        .http
        .get(format!("{}/console", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"),
        "{policy}"
    );

    let browser = driver.session().await;
    // A wrong token is refused on the sign-in page; the right one gets in.
    browser.goto(&format!("{}/console", s.url())).await.unwrap();
    enter_token(&browser, "not-a-token").await;
    wait_text(&browser, "[role=alert]", "token was refused").await;
    sign_in(&browser, &s.url(), &admin).await;
    let stored: Value = browser
        .execute("return sessionStorage.getItem('burrow.adminToken')", vec![])
        .await
        .unwrap();
    assert_eq!(
        stored,
        json!(admin),
        "the token lives in the tab's session storage"
    );
    // Find alice's instance by her user id; open it.
    let search = browser.find(Locator::Id("search")).await.unwrap();
    search.send_keys("alice").await.unwrap();
    click(&browser, "#search-go").await;
    let row = format!("#instances a[href='#/instances/{instance}']");
    wait_text(&browser, "#instances [data-status=running]", "running").await;
    screenshot(&browser, "instances").await;
    click(&browser, &row).await;
    wait_text(&browser, "#details [data-status=running]", "running").await;
    let names = wait_text(&browser, "#configuration", "API_KEY").await;
    assert!(
        names.contains("REGION") && names.contains("Secrets (1)"),
        "{names}"
    );
    assert_no_secret(&browser, "the instance page").await;
    screenshot(&browser, "instance").await;

    // Stop it, confirming first, and see the status change.
    click(&browser, "#action-stop").await;
    wait_text(&browser, "#confirm-bar", "Stop instance").await;
    click(&browser, "#confirm").await;
    // (the badge's own attribute: "Last stopped" is on the page all along)
    wait_text(&browser, "#details [data-status=stopped]", "stopped").await;
    let status = client.status(&alice, Some(instance)).await.unwrap();
    assert_eq!(status.status.as_deref(), Some("stopped"));

    // The quarantined actor is listed with its reason.
    browser
        .goto(&format!("{}/console#/actors", s.url()))
        .await
        .unwrap();
    let listed = wait_text(&browser, "#quarantined-table", &damaged_actor).await;
    assert!(listed.contains(&reason), "{reason} not in {listed}");
    wait_text(&browser, "#namespace-table", "instance").await;
    assert_no_secret(&browser, "the actors page").await;
    screenshot(&browser, "actors").await;

    // Health: charts from /metrics once a few samples are in.
    browser
        .goto(&format!("{}/console#/health", s.url()))
        .await
        .unwrap();
    wait_text(&browser, "#process", "open file descriptors").await;
    // Some traffic while samples come in (every 2 s), for the charts to draw.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = browser
            .find(Locator::Id("process"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if shown.contains("· 6 samples") {
            break;
        }
        assert!(Instant::now() < deadline, "samples never came in: {shown}");
        for _ in 0..10 {
            client.status(&bob, Some(damaged)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_text(&browser, "#chart-requests-now", "now").await;
    screenshot(&browser, "health").await;

    // Alone, the cluster page says so.
    browser
        .goto(&format!("{}/console#/cluster", s.url()))
        .await
        .unwrap();
    wait_text(&browser, "#nodes", "runs alone").await;
    browser.close().await.unwrap();
}

/// Starts `chromedriver`, or says why the test cannot run (skipped unless `CI=true`).
fn driver_or_skip() -> Option<Driver> {
    match Driver::start() {
        Ok(driver) => Some(driver),
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: no browser to drive ({why}); install chromium and chromium-driver");
            None
        }
        Err(why) => panic!("CI=true needs a browser to test the console: {why}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_page_lists_every_node_with_its_lease() {
    let Some(driver) = driver_or_skip() else {
        return;
    };
    let cluster = crate::common::cluster::Cluster::start().await;
    let browser = driver.session().await;
    sign_in(
        &browser,
        &cluster.url(0),
        &crate::common::cluster::admin_token(),
    )
    .await;
    browser
        .goto(&format!("{}/console#/cluster", cluster.url(0)))
        .await
        .unwrap();
    let listed = wait_text(&browser, "#node-table", "node2").await;
    for node in ["node0", "node1", "node2"] {
        assert!(listed.contains(node), "{node} missing: {listed}");
    }
    let rows = browser
        .find_all(Locator::Css("#node-table [data-status=alive]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "three live nodes: {listed}");
    screenshot(&browser, "cluster").await;
    browser.close().await.unwrap();
}
