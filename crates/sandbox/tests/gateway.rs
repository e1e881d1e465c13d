//! The gateway as a real child process, over real HTTP and WebSocket.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const TOKEN: &str = "0123456789abcdef";

struct Gateway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let child = Command::new(env!("CARGO_BIN_EXE_burrow-sandbox"))
        .arg("--port-file")
        .arg(&port_file)
        .arg("--data-dir")
        .arg(dir.path().join("volume"))
        .env("BURROW_GATEWAY_TOKEN", TOKEN)
        .env("BURROW_SANDBOX_ID", "ki_0123456789abcdef0123456789abcdef")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never wrote its port"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(dir.path().join("volume").is_dir());
    Gateway {
        child,
        port,
        _dir: dir,
    }
}

#[tokio::test]
async fn health_needs_no_token_and_names_the_sandbox() {
    let gw = start();
    let body: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/_burrow/health", gw.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["sandboxId"], "ki_0123456789abcdef0123456789abcdef");
}

#[tokio::test]
async fn requests_without_the_right_token_are_refused() {
    let gw = start();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/anything", gw.port);
    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = client
        .get(&url)
        .header("x-burrow-proxy-token", "0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let short = client
        .get(&url)
        .header("x-burrow-proxy-token", "0123")
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 401);
}

#[tokio::test]
async fn echoes_what_it_received_with_the_body_counted() {
    let gw = start();
    let body = vec![7u8; 3 * 1024 * 1024 + 5];
    let echoed: serde_json::Value = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{}/a/b%20c?x=1&y=two", gw.port))
        .header("x-burrow-proxy-token", TOKEN)
        .header("x-custom", "hello")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echoed["method"], "PUT");
    assert_eq!(echoed["path"], "/a/b%20c");
    assert_eq!(echoed["query"], "x=1&y=two");
    assert_eq!(echoed["headers"]["x-custom"], "hello");
    assert_eq!(echoed["bodyBytes"], 3 * 1024 * 1024 + 5);
}

#[tokio::test]
async fn websocket_messages_and_close_codes_come_back() {
    let gw = start();
    let mut request = format!("ws://127.0.0.1:{}/socket", gw.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-burrow-proxy-token", TOKEN.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for i in 0..100 {
        socket.send(Message::text(format!("m{i}"))).await.unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::text(format!("m{i}"))
        );
    }
    socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4001),
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    match socket.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Library(4001));
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected the close to be echoed, got {other:?}"),
    }
}
