//! A TCP proxy between one node and PostgreSQL that the nemesis can slow down or cut: in
//! `Delay` every chunk waits before it is passed on (both ways); in `Blackhole` nothing passes
//! and new connections are accepted but left unanswered — the bytes wait, as a partition's do,
//! until the link heals or the node gives up on them.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Pass,
    Delay(Duration),
    Blackhole,
}

pub struct FaultProxy {
    pub port: u16,
    link: watch::Sender<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, watching) = watch::channel(Link::Pass);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let watching = watching.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    passable(&mut watching.clone()).await;
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        () = pump(cr, sw, watching.clone()) => {}
                        () = pump(sr, cw, watching) => {}
                    }
                });
            }
        });
        FaultProxy { port, link, task }
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits while the link is cut.
async fn passable(link: &mut watch::Receiver<Link>) {
    let _ = link.wait_for(|l| *l != Link::Blackhole).await;
}

/// Copies one direction until either side closes (which ends the connection both ways).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: watch::Receiver<Link>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        passable(&mut link).await;
        let current = *link.borrow();
        if let Link::Delay(d) = current {
            tokio::time::sleep(d).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
