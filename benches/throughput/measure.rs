//! What the bench reads besides rates: the in-memory ceiling, disk, RSS, descriptors, free
//! space.

use super::*;

/// The in-memory ceiling: a tokio task per key behind a channel, no storage.
pub(crate) async fn in_memory(keys: u64, calls: u64, concurrency: usize) -> f64 {
    type Req = tokio::sync::oneshot::Sender<usize>;
    let senders: Arc<Vec<tokio::sync::mpsc::UnboundedSender<Req>>> = Arc::new(
        (0..keys)
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Req>();
                tokio::spawn(async move {
                    while let Some(reply) = rx.recv().await {
                        let _ = reply.send(ROW.len());
                    }
                });
                tx
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (senders, next) = (senders.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        break;
                    }
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    senders[(i % keys) as usize].send(tx).unwrap();
                    assert_eq!(rx.await.unwrap(), ROW.len());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// Disk space allocated to the files under `dir` (blocks, not lengths: a sparse or preallocated
/// file counts for what it takes).
pub(crate) fn allocated_kib(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += if meta.is_dir() {
            allocated_kib(&entry.path())
        } else {
            meta.blocks() * 512 / 1024
        };
    }
    total
}

pub(crate) fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

pub(crate) fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Free bytes on the file system holding `dir`.
pub(crate) fn free_bytes(dir: &Path) -> u64 {
    let stat = nix::sys::statvfs::statvfs(dir).unwrap();
    stat.blocks_available() as u64 * stat.fragment_size() as u64
}
