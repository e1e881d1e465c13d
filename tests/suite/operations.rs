//! What operators and their tools see of a running server: JSON logs in which every line of a
//! request carries its id, one info line per request, panics answered with 500, readiness,
//! and a Prometheus exposition of histograms with a HELP line for every series.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use serde_json::{Value, json};

/// The JSON lines of the server's log whose request span has `id`.
fn lines_of(log: &[Value], id: &str) -> Vec<Value> {
    log.iter()
        .filter(|line| line["span"]["id"] == id)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_requests_id_on_every_line_and_log_it_once() {
    // Started at all: the test kit found the address in a JSON `listening on` line.
    let s = serve_with(|o| o.env("BURROW_LOG_FORMAT", "json")).await;
    let get = |id: Option<&str>| {
        let mut request = s.http.get(format!("{}/healthz", s.url()));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let echoed = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();

    // A client's id is kept and echoed; without one (or with one unfit for a log line) the
    // server makes one up.
    let given = get(Some("ops-given-1")).await.unwrap();
    assert_eq!(echoed(&given), "ops-given-1");
    let made = echoed(&get(None).await.unwrap());
    uuid::Uuid::parse_str(&made).unwrap_or_else(|_| panic!("not a UUID: {made}"));
    for unfit in ["has space", &"x".repeat(129), "quote\"d"] {
        let replaced = echoed(&get(Some(unfit)).await.unwrap());
        assert!(
            uuid::Uuid::parse_str(&replaced).is_ok(),
            "{unfit:?} became {replaced:?}"
        );
    }

    // A handler that panics: 500 in the API's format, and the server keeps serving.
    let panicked = s
        .http
        .post(format!("{}/_test/panic", s.url()))
        .bearer_auth(s.token("root", true))
        .header("x-request-id", "ops-panic-1")
        .send()
        .await
        .unwrap();
    assert_eq!(panicked.status(), 500);
    assert_eq!(echoed(&panicked), "ops-panic-1");
    let body: Value = panicked.json().await.unwrap();
    assert_eq!(body["error"], "Internal error", "{body}");
    assert_eq!(get(None).await.unwrap().status(), 200);

    // Every line of the log is JSON.
    let text = s.process.log();
    let log: Vec<Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?} in\n{text}"))
        })
        .collect();
    // One info line per request, with its status.
    let given = lines_of(&log, "ops-given-1");
    assert_eq!(given.len(), 1, "{given:#?}");
    assert_eq!(given[0]["level"], "INFO");
    assert_eq!(given[0]["fields"]["status"], 200);
    assert_eq!(given[0]["span"]["path"], "/healthz");
    // Every line written while answering carries the id: the handler's own line, the
    // panic (from the panic hook, then from the layer that answered 500), and the answer.
    let panic_lines = lines_of(&log, "ops-panic-1");
    let seen: Vec<(&str, &str)> = panic_lines
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap(),
                l["fields"]["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("INFO", "about to panic on purpose"),
            ("ERROR", "panicked"),
            ("ERROR", "a handler panicked"),
            ("INFO", "finished processing request"),
        ],
        "{panic_lines:#?}"
    );
    assert_eq!(panic_lines[1]["fields"]["panic"], "a panic on purpose");
    assert!(
        panic_lines[1]["fields"]["location"]
            .as_str()
            .unwrap()
            .contains("test_routes.rs")
    );
    assert_eq!(panic_lines[2]["fields"]["panic"], "a panic on purpose");
    assert_eq!(panic_lines[3]["fields"]["status"], 500);
}

/// `# TYPE` and `# HELP` of the exposition, by series name.
fn declared(text: &str, what: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("# {what} ")))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
        .collect()
}

/// The value of the first sample of `series` (a name, with labels if any).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series}:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_and_metrics_are_histograms_with_help_and_the_processs_own_numbers() {
    let s = serve().await;
    let ready = s
        .http
        .get(format!("{}/readyz", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "ready", "checks": {"registry": true, "runtime": true}})
    );
    s.running(&user("ops"), None).await;

    let text = s.metrics().await;
    let types = declared(&text, "TYPE");
    let helps = declared(&text, "HELP");
    let undescribed: Vec<_> = types.keys().filter(|n| !helps.contains_key(*n)).collect();
    assert!(
        undescribed.is_empty(),
        "no HELP for {undescribed:?}:\n{text}"
    );
    assert!(
        !types.values().any(|t| t == "summary"),
        "summaries cannot be aggregated across hosts:\n{text}"
    );
    for histogram in [
        "burrow_http_request_seconds",
        "burrow_turn_seconds",
        "burrow_turns_per_commit",
        "burrow_registry_operation_seconds",
    ] {
        assert_eq!(
            types.get(histogram).map(String::as_str),
            Some("histogram"),
            "{histogram}"
        );
    }
    // The explicit buckets: seconds from 0.5 ms, sizes from 1.
    assert!(
        text.contains(
            "burrow_http_request_seconds_bucket{method=\"GET\",route=\"/readyz\",le=\"0.0005\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("burrow_turns_per_commit_bucket{le=\"1\"}"),
        "{text}"
    );
    // The process's own numbers: open files bound residency.
    assert!(sample(&text, "process_open_fds") >= 3.0, "{text}");
    assert!(sample(&text, "process_max_fds") > sample(&text, "process_open_fds"));
    assert!(
        sample(&text, "process_resident_memory_bytes") > 1e6,
        "{text}"
    );
}

/// Every metric the crates record (`counter!("burrow_…")` and the like in their sources) has
/// a description: registered with the server's recorder, each renders with a HELP line.
#[test]
fn every_metric_recorded_in_the_sources_is_described() {
    let mut recorded = BTreeSet::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    for file in walk(&root) {
        let path = file.to_string_lossy();
        if !path.contains("/src/") || !path.ends_with(".rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        for kind in ["counter", "gauge", "histogram"] {
            let pattern = format!("{kind}!(\"");
            let mut at = 0;
            while let Some(found) = source[at..].find(&pattern) {
                let start = at + found + pattern.len();
                let name = &source[start..start + source[start..].find('"').unwrap()];
                if name.starts_with("burrow_") {
                    recorded.insert((kind, name.to_owned()));
                }
                at = start;
            }
        }
    }
    assert!(recorded.len() >= 35, "the scan found only {recorded:?}");

    let metrics = burrow::server::telemetry::Metrics::global();
    for (kind, name) in &recorded {
        match *kind {
            "counter" => metrics::counter!(name.clone()).increment(1),
            "gauge" => metrics::gauge!(name.clone()).set(1.0),
            _ => metrics::histogram!(name.clone()).record(1.0),
        }
    }
    let text = metrics.render();
    let helps = declared(&text, "HELP");
    let undescribed: Vec<_> = recorded
        .iter()
        .filter(|(_, name)| !helps.contains_key(name))
        .collect();
    assert!(undescribed.is_empty(), "no description for {undescribed:?}");
}

#[test]
fn with_json_logs_a_refused_start_is_a_json_line_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--sandbox-host", "0.0.0.0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // Written whatever RUST_LOG says: a supervisor needs to know why.
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "ERROR");
    let message = lines[0]["fields"]["message"].as_str().unwrap();
    assert!(message.contains("--sandbox-host 0.0.0.0"), "{message}");
}
