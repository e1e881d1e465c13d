//! The local provider against real gateway processes: where sandboxes listen.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use burrow_instance::provider::{Labels, MachineSpec, MachineState, SandboxProvider};
use burrow_instance::{LocalProvider, LocalProviderConfig};

#[tokio::test]
async fn sandboxes_listen_on_the_configured_host_and_are_reached_there() {
    let dir = tempfile::tempdir().unwrap();
    let host = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut config = LocalProviderConfig::new(
        dir.path().join("sandboxes"),
        vec![env!("CARGO_BIN_EXE_burrow-instance-sandbox").into()],
    );
    config.host = host;
    let provider = LocalProvider::new(config).unwrap();
    let user: burrow_identity::UserId = "ann".parse().unwrap();
    let sandbox_id = burrow_identity::SandboxId::Legacy(user.clone());
    let machine = provider
        .create(MachineSpec {
            env: [
                (
                    burrow_instance::env::GATEWAY_TOKEN_ENV.to_owned(),
                    "gateway-token-of-this-test-0000000000".to_owned(),
                ),
                (
                    burrow_instance::env::SANDBOX_ID_ENV.to_owned(),
                    sandbox_id.to_string(),
                ),
            ]
            .into(),
            labels: Labels {
                sandbox_id,
                user_id: user,
                org_id: None,
            },
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !provider.healthy(&machine.id).await.unwrap() {
        assert!(Instant::now() < deadline, "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running = provider.get(&machine.id).await.unwrap().unwrap();
    assert_eq!(running.state, MachineState::Running);
    let address = running.address.expect("an address while running");
    assert_eq!(address.ip(), host, "recorded where it listens");
    assert!(
        tokio::net::TcpStream::connect(address).await.is_ok(),
        "reachable at {address}"
    );
    let loopback = std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port());
    assert!(
        tokio::net::TcpStream::connect(loopback).await.is_err(),
        "listening only on {host}, not on {loopback}"
    );
    provider.delete_machine(&machine.id).await.unwrap();
}
