//! Clients that hold on to the server: trickled headers, too many connections, sandboxes that
//! never answer, WebSockets that go quiet or outlive their token, and a destroy whose caller
//! gives up. Each limit is set small through the environment, as an operator would.

use std::time::{Duration, Instant};

use crate::common::*;
use burrow::identity::InstanceId;
use futures_util::{SinkExt as _, StreamExt as _};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// Reads until the server closes the connection; how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let began = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((began + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(began.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn answered(url: &str) -> bool {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    client.get(format!("{url}/healthz")).send().await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_header_is_cut_off_and_open_connections_are_capped() {
    let s = serve_with(|o| {
        o.env("BURROW_HEADER_TIMEOUT_MS", 2_000)
            .env("BURROW_MAX_CONNECTIONS", 3)
    })
    .await;
    let address = s.process.address();

    // A header sent one byte at a time, never finished: closed after the header timeout,
    // although bytes keep arriving.
    let mut slow = TcpStream::connect(address).await.unwrap();
    let began = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
    {
        if slow.write_all(&[*byte]).await.is_err() || began.elapsed() > Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut_after = began.elapsed();
    assert!(
        cut_after < Duration::from_secs(5),
        "a trickled header held its connection for {cut_after:?}"
    );

    // Three idle connections take every place: a fourth client is not answered...
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!answered(&s.url()).await, "a fourth connection was served");
    // ...until the header timeout frees them (an idle connection is a header not sent).
    for stream in &mut idle {
        assert!(
            closed_within(stream, Duration::from_secs(5))
                .await
                .is_some(),
            "an idle connection was never closed"
        );
    }
    assert!(answered(&s.url()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_that_never_answers_gets_504_not_a_hung_request() {
    let s = serve_with(|o| {
        o.env("BURROW_UPSTREAM_RESPONSE_TIMEOUT_MS", 500)
            .env("BURROW_UPSTREAM_CONNECT_TIMEOUT_MS", 500)
    })
    .await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let token = s.token("alice", false);
    let pid = s.process.sandbox_pids()[0];
    // A stopped process: the kernel still accepts connections, nobody answers them.
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let began = Instant::now();
    let response = s
        .http
        .get(format!("{}/i/{id}/anything", s.url()))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(began.elapsed() < Duration::from_secs(10));
    // A WebSocket handshake likewise.
    let mut request = format!("{}/i/{id}/socket", s.url().replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 504),
        other => panic!("expected 504, got {other:?}"),
    }
    kill(Pid::from_raw(pid), Signal::SIGCONT).unwrap();
    let ok = s
        .http
        .get(format!("{}/i/{id}/anything", s.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// Opens a relayed WebSocket to alice's running instance with `token`.
async fn socket(
    s: &Served,
    id: InstanceId,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let mut request = format!("{}/i/{id}/socket", s.url().replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The close code the server ends the socket with (messages before it are skipped).
async fn close_code(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    within: Duration,
) -> Option<u16> {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), socket.next()).await {
            Err(_) => panic!("the socket stayed open for {within:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(None | Some(Err(_))) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_websockets_are_bounded_in_size_idleness_and_token_lifetime() {
    let s = serve_with(|o| {
        o.env("BURROW_WEBSOCKET_MAX_MESSAGE", 64 * 1024)
            .env("BURROW_WEBSOCKET_IDLE_TIMEOUT_MS", 1_500)
    })
    .await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let token = s.token("alice", false);

    // Within the limit, echoed; past it, the socket is closed and nothing more is echoed.
    let mut ws = socket(&s, id, &token).await;
    ws.send(Message::binary(vec![1u8; 60 * 1024]))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(Message::Binary(b))) => assert_eq!(b.len(), 60 * 1024),
        other => panic!("no echo: {other:?}"),
    }
    let _ = ws.send(Message::binary(vec![2u8; 200 * 1024])).await;
    let code = close_code(&mut ws, Duration::from_secs(10)).await;
    assert!(
        matches!(code, None | Some(1009)),
        "closed with {code:?} after an oversized message"
    );

    // Quiet for longer than the idle timeout: closed with 1001, however long it was used
    // before.
    let mut ws = socket(&s, id, &token).await;
    for i in 0..5 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
        assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let began = Instant::now();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(10)).await,
        Some(1001)
    );
    assert!(began.elapsed() >= Duration::from_millis(900));

    // Busy, but its token expires: closed with 1008 at expiry.
    let short = burrow::server::tokens::issue(
        &s.process.key("tokenSecret"),
        &alice,
        false,
        Duration::from_secs(3),
    );
    let mut ws = socket(&s, id, &short).await;
    let began = Instant::now();
    let code = loop {
        ws.send(Message::text("still here")).await.ok();
        match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(None | Some(Err(_))) => break None,
        }
        assert!(began.elapsed() < Duration::from_secs(15), "never closed");
    };
    assert_eq!(code, Some(1008));
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroy_runs_to_the_end_when_its_caller_gives_up() {
    let s = serve_with(|o| o.env("BURROW_REQUEST_TIMEOUT_MS", 500)).await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let pid = s.process.sandbox_pids()[0];

    // The registry is made slow: another connection holds its write lock for two seconds.
    let registry = rusqlite::Connection::open(s.process.data_dir().join("registry.db")).unwrap();
    registry.execute_batch("BEGIN IMMEDIATE").unwrap();
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!("{}/api/platform/destroy", s.url()))
        .header("x-internal-api-key", s.process.key("internalApiKey"))
        .json(&serde_json::json!({"userId": "alice", "instanceId": id}))
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the destroy answered while the registry was locked"
    );
    // A patient caller of another route meets the request timeout instead of waiting.
    let bob = user("bob");
    let timed_out = s
        .http
        .post(format!("{}/api/platform/provision", s.url()))
        .header("x-internal-api-key", s.process.key("internalApiKey"))
        .json(&serde_json::json!({"userId": bob, "instanceId": InstanceId::new_random()}))
        .send()
        .await
        .unwrap();
    assert_eq!(timed_out.status(), 503);
    let body: Value = timed_out.json().await.unwrap();
    assert_eq!(body["error"], "Request timed out");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    registry.execute_batch("COMMIT").unwrap();

    // The destroy finishes anyway: the sandbox is gone and the instance with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let gone = std::fs::metadata(format!("/proc/{pid}")).is_err();
        let status = s.client.status(&alice, Some(id)).await;
        if gone && status.as_ref().is_err_and(|e| e.status() == Some(404)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "half destroyed: sandbox gone {gone}, status {status:?}\n{}",
            s.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
