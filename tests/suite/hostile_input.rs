//! Hostile input against the binary: malformed, oversized, truncated and wrongly-typed
//! requests to every route each get a 4xx JSON error, random JSON bodies (proptest) never get
//! a 5xx, and the server keeps serving throughout.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use crate::common::*;
use burrow::identity::InstanceId;
use proptest::prelude::*;
use reqwest::Method;
use serde_json::Value;

enum Auth {
    Platform,
    User,
    Admin,
}

fn authorise(s: &Served, request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match auth {
        Auth::Platform => request.header("x-internal-api-key", s.process.key("internalApiKey")),
        Auth::User => request.bearer_auth(s.token("alice", false)),
        Auth::Admin => request.bearer_auth(s.token("root", true)),
    }
}

/// Sends a request and checks the answer is a 4xx with a JSON error.
async fn expect_4xx(
    s: &Served,
    method: Method,
    path: &str,
    auth: &Auth,
    body: Option<Vec<u8>>,
    what: &str,
) {
    let mut request = authorise(
        s,
        s.http.request(method.clone(), format!("{}{path}", s.url())),
        auth,
    );
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} ({what}): no answer: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    assert!(
        (400..500).contains(&status),
        "{method} {path} ({what}): {status} {text}"
    );
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{method} {path} ({what}): not JSON: {text}"));
    assert!(
        json["error"].is_string(),
        "{method} {path} ({what}): {json}"
    );
}

fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    vec![
        ("truncated JSON", br#"{"userId":"al"#.to_vec()),
        ("an array", b"[1,2,3]".to_vec()),
        ("a string", br#""just a string""#.to_vec()),
        ("invalid UTF-8", b"{\"userId\":\"\xff\xfe\"}".to_vec()),
        ("deep nesting", deep.into_bytes()),
        (
            "wrong types",
            br#"{"userId":5,"name":5,"envVars":"x","secrets":7,"skipCooldown":"yes","imageTag":[1]}"#.to_vec(),
        ),
        ("over 1 MiB", {
            let mut b = b"{\"name\":\"".to_vec();
            b.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 10));
            b.extend(b"\"}");
            b
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_to_every_route_get_4xx_json_and_the_server_keeps_serving() {
    let s = serve().await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;

    let body_routes = [
        (
            Method::POST,
            "/api/platform/organizations".to_owned(),
            Auth::Platform,
        ),
        (
            Method::POST,
            "/api/platform/provision".to_owned(),
            Auth::Platform,
        ),
        (
            Method::POST,
            format!("/api/platform/start?instanceId={id}"),
            Auth::Platform,
        ),
        (
            Method::POST,
            format!("/api/platform/stop?instanceId={id}"),
            Auth::Platform,
        ),
        (
            Method::POST,
            format!("/api/platform/restart?instanceId={id}"),
            Auth::Platform,
        ),
        (
            Method::POST,
            format!("/api/platform/destroy?instanceId={id}"),
            Auth::Platform,
        ),
        (
            Method::PATCH,
            format!("/api/user/config?instanceId={id}"),
            Auth::User,
        ),
        (
            Method::POST,
            format!("/api/admin/instances/{id}/start"),
            Auth::Admin,
        ),
    ];
    let mut sent = 0;
    for (method, path, auth) in &body_routes {
        for (what, body) in hostile_bodies() {
            expect_4xx(&s, method.clone(), path, auth, Some(body), what).await;
            sent += 1;
        }
    }

    let long_user = "u".repeat(300);
    let query_routes = [
        (
            "/api/platform/status?instanceId=%ZZ&userId=alice",
            Auth::Platform,
        ),
        ("/api/platform/status?userId=", Auth::Platform),
        ("/api/platform/debug-status?userId=al%00ice", Auth::Platform),
        ("/api/platform/gateway-token", Auth::Platform),
        ("/api/user/status?instanceId='%20OR%201=1", Auth::User),
        (
            "/api/user/config?instanceId=00000000-0000-0000-0000",
            Auth::User,
        ),
        ("/api/admin/instances?limit=abc&userId=alice", Auth::Admin),
        ("/api/admin/instances?limit=0&userId=alice", Auth::Admin),
        (
            "/api/admin/instances?limit=99999999999999999999999&userId=alice",
            Auth::Admin,
        ),
        ("/api/admin/instances?cursor=nope&userId=alice", Auth::Admin),
        ("/api/admin/instances", Auth::Admin),
        ("/api/admin/instances/..%2F..%2Fetc%2Fpasswd", Auth::Admin),
        ("/api/admin/actors?cursor=not-hex", Auth::Admin),
        ("/i/not-a-uuid/x", Auth::User),
        ("/i/..%2F..%2Fapi/x", Auth::User),
        ("/api/no/such/route", Auth::User),
    ];
    for (path, auth) in &query_routes {
        expect_4xx(&s, Method::GET, path, auth, None, "hostile query").await;
        sent += 1;
    }
    let user_route = format!("/api/platform/status?userId={long_user}");
    expect_4xx(
        &s,
        Method::GET,
        &user_route,
        &Auth::Platform,
        None,
        "a 300-byte user id",
    )
    .await;
    // Wrong method.
    expect_4xx(
        &s,
        Method::DELETE,
        "/api/platform/provision",
        &Auth::Platform,
        None,
        "wrong method",
    )
    .await;

    // Credentials in every wrong shape.
    for header in [
        "Bearer",
        "Bearer ",
        "Bearer a.b.c",
        "Basic YWxpY2U6cHc=",
        &format!("Bearer {}", "x".repeat(8000)),
    ] {
        let response = s
            .http
            .get(format!("{}/api/user/status", s.url()))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header:.40}");
        sent += 1;
    }

    // A request cut off in its body, and one cut off in its headers.
    for raw in [
        format!(
            "PATCH /api/user/config HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-length: 100\r\n\r\n{{\"envVa",
            s.token("alice", false)
        ),
        "POST /api/platform/provision HTTP/1.1\r\nhost: x\r\ncontent-le".to_owned(),
    ] {
        let mut stream = std::net::TcpStream::connect(s.process.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
        sent += 1;
    }

    // Still serving, and nothing of the above changed the instance.
    let status = s.client.status(&alice, Some(id)).await.unwrap();
    assert_eq!(status.status.as_deref(), Some("running"));
    assert_eq!(status.env_var_count, 0);
    eprintln!("{sent} hostile requests answered");
}

/// Any JSON value.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("alice"),
            Just("BURROW_X"),
            Just("A"),
            Just("envVars"),
            Just("userId")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("userId".to_owned()),
                    Just("instanceId".to_owned()),
                    Just("orgId".to_owned()),
                    Just("envVars".to_owned()),
                    Just("secrets".to_owned()),
                    Just("name".to_owned()),
                    ".{0,12}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_json_bodies_never_get_a_server_error() {
    let s = serve().await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let cases: u32 = std::env::var("BURROW_HOSTILE_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let handle = tokio::runtime::Handle::current();
    let routes = [
        (
            Method::POST,
            "/api/platform/provision".to_owned(),
            Auth::Platform,
        ),
        (
            Method::POST,
            "/api/platform/organizations".to_owned(),
            Auth::Platform,
        ),
        (
            Method::PATCH,
            format!("/api/user/config?instanceId={id}"),
            Auth::User,
        ),
        (
            Method::POST,
            format!("/api/platform/restart?instanceId={id}"),
            Auth::Platform,
        ),
    ];
    let result = runner.run(&(0..routes.len(), json_value()), |(r, body)| {
        let (method, path, auth) = &routes[r];
        let (status, text) = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let request = authorise(
                    &s,
                    s.http.request(method.clone(), format!("{}{path}", s.url())),
                    auth,
                );
                let response = request.json(&body).send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            })
        });
        prop_assert!(status < 500, "{method} {path} with {body}: {status} {text}");
        if status >= 400 {
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            prop_assert!(
                json["error"].is_string(),
                "{method} {path} with {body}: {text}"
            );
        }
        Ok(())
    });
    result.unwrap();
    // Whatever got through was a valid configuration; the instance still answers.
    let status = s.client.status(&alice, Some(id)).await.unwrap();
    assert!(status.status.is_some());
    assert!(
        s.http
            .get(format!("{}/healthz", s.url()))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
}
