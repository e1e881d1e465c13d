//! The `/i/{instanceId}` proxy against real sandboxes: HTTP with prefix stripping, a streamed
//! 10 MB body, a WebSocket echo, and refusals.

use crate::common::*;
use burrow::identity::InstanceId;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_round_trip_strips_the_prefix_and_keeps_the_callers_credentials_back() {
    let s = serve().await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let token = s.token("alice", false);
    let echoed: Value = s
        .http
        .get(format!("{}/i/{id}/some/path?a=1&b=two%20words", s.url()))
        .bearer_auth(&token)
        .header("cookie", "session=secret")
        .header("x-custom", "kept")
        .header("x-burrow-proxy-token", "forged")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=6.6.6.6;proto=https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["path"], "/some/path");
    assert_eq!(echoed["query"], "a=1&b=two%20words");
    let headers = echoed["headers"].as_object().unwrap();
    assert!(!headers.contains_key("authorization"), "{headers:?}");
    assert!(!headers.contains_key("cookie"), "{headers:?}");
    assert_eq!(headers["x-custom"], "kept");
    // The gateway accepted the token Burrow sent (a forged one would have been refused) and
    // does not echo it: whoever made the request sees the response.
    assert_eq!(echoed["proxyTokenValid"], true);
    assert!(!headers.contains_key("x-burrow-proxy-token"), "{headers:?}");
    let gateway = s.client.gateway_token(&alice, Some(id)).await.unwrap();
    assert!(
        !echoed.to_string().contains(gateway.as_str()),
        "the gateway token was echoed: {echoed}"
    );
    // The forwarding headers are Burrow's, not the client's.
    let host = s.url().trim_start_matches("http://").to_owned();
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], host.as_str());
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["forwarded"],
        format!("for=127.0.0.1;host=\"{host}\";proto=http").as_str()
    );
    assert_eq!(headers["x-forwarded-prefix"], format!("/i/{id}").as_str());

    // The bare prefix is the root path.
    let root: Value = s
        .http
        .delete(format!("{}/i/{id}", s.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (root["method"].as_str(), root["path"].as_str()),
        (Some("DELETE"), Some("/"))
    );

    // A 10 MB body streamed in chunks, past the API's 1 MiB limit.
    let chunks = (0..160).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024]));
    let big: Value = s
        .http
        .post(format!("{}/i/{id}/upload", s.url()))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(big["bodyBytes"], 160 * 64 * 1024);
    assert!(
        big["headers"].get("content-length").is_none(),
        "the body was not streamed"
    );

    // The API routes, by contrast, refuse a body over 1 MiB.
    let too_big = s
        .http
        .patch(format!("{}/api/user/config?instanceId={id}", s.url()))
        .bearer_auth(&token)
        .body(vec![b' '; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_and_close_codes_pass_both_ways() {
    let s = serve().await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let mut request = format!(
        "{}/i/{id}/socket?room=1",
        s.url().replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", s.token("alice", false))
            .parse()
            .unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for i in 0..1000 {
        let message = if i % 10 == 0 {
            Message::binary(vec![i as u8; 100])
        } else {
            Message::text(format!("message {i}"))
        };
        socket.send(message.clone()).await.unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            message,
            "message {i}"
        );
    }
    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4321),
            reason: "done".into(),
        })))
        .await
        .unwrap();
    match socket.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Library(4321)),
        other => panic!("expected a close, got {other:?}"),
    }

    // Without a token, no upgrade.
    let request = format!("{}/i/{id}/socket", s.url().replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_answers_503_and_stays_stopped_and_others_get_404() {
    let s = serve().await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    s.client.stop(&alice, Some(id)).await.unwrap();
    let token = s.token("alice", false);
    for _ in 0..3 {
        let response = s
            .http
            .get(format!("{}/i/{id}/x", s.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    let status = s.client.status(&alice, Some(id)).await.unwrap();
    assert_eq!(
        status.status.as_deref(),
        Some("stopped"),
        "the proxy woke the sandbox"
    );
    assert!(s.process.sandbox_pids().is_empty());

    s.client.start(&alice, Some(id), false).await.unwrap();
    s.wait_status(&alice, Some(id), "running").await;
    let response = s
        .http
        .get(format!("{}/i/{id}/x", s.url()))
        .bearer_auth(s.token("bob", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "Instance not found"})
    );
}

/// The number of turns the server's actors have run, from its `/metrics`.
async fn turns(s: &Served) -> f64 {
    let text = s.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("burrow_turn_seconds_count "))
        .map_or(0.0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_requests_skip_the_actor_yet_follow_stop_start_restart_and_a_dead_sandbox() {
    let s = serve().await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let token = s.token("alice", false);
    let get = || async {
        s.http
            .get(format!("{}/i/{id}/x", s.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get().await, 200);
    let before = turns(&s).await;
    for _ in 0..20 {
        assert_eq!(get().await, 200);
    }
    let used = turns(&s).await - before;
    assert!(
        used < 10.0,
        "20 proxied requests ran {used} actor turns: the route is not cached"
    );

    s.client.stop(&alice, Some(id)).await.unwrap();
    assert_eq!(
        get().await,
        503,
        "a stopped instance's route was still cached"
    );
    s.client.start(&alice, Some(id), false).await.unwrap();
    s.wait_status(&alice, Some(id), "running").await;
    assert_eq!(get().await, 200, "the new sandbox is reached");
    s.client
        .restart(&alice, Some(id), None)
        .await
        .unwrap()
        .expect("the restart was accepted");
    s.wait_status(&alice, Some(id), "running").await;
    assert_eq!(get().await, 200, "the restarted sandbox is reached");

    // A sandbox that dies under a cached route: one 502, and the route is asked for again.
    for pid in s.process.sandbox_pids() {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.process.sandbox_pids().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox did not die"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = turns(&s).await;
    assert_eq!(get().await, 502);
    let _ = get().await;
    assert!(
        turns(&s).await > before,
        "after a 502 the route must be asked of the actor again"
    );
}
