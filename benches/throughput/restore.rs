//! The restore scenario: `n` instances registered in PostgreSQL whose actor files were
//! deleted, each restored by its first call; and the baseline doing the same visible work by
//! hand (the registry lookup, then a new SQLite file with one row per state field).

use super::*;
use burrow::identity::{ActorName, InstanceId, UserId};
use burrow::instance::{Instances, LifecycleConfig, LocalProvider, LocalProviderConfig, Settings};
use burrow::restore::{AnyRegistry, NewInstance, PgRegistry, Registry as _};

pub struct Fixture {
    pub registry: AnyRegistry,
    pub ids: Vec<InstanceId>,
    _db: burrow_testkit::pg::TestDatabase,
}

pub async fn fixture(n: u64) -> Fixture {
    let db = burrow_testkit::pg::fresh_database().await;
    let registry = AnyRegistry::Postgres(
        PgRegistry::connect(db.url(), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    let user: UserId = "bench".parse().unwrap();
    let ids: Vec<InstanceId> = (0..n).map(|_| InstanceId::new_random()).collect();
    let chunks: Vec<Vec<InstanceId>> = ids
        .chunks(ids.len().div_ceil(16).max(1))
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (registry, user) = (registry.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                registry
                    .create_instance(&NewInstance::instance_keyed(id, user.clone(), None))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Fixture {
        registry,
        ids,
        _db: db,
    }
}

fn instances(runtime: &Runtime, registry: &AnyRegistry, dir: &Path) -> Instances<LocalProvider> {
    let provider = LocalProvider::new(LocalProviderConfig::new(
        dir.join("sandboxes"),
        vec!["true".into()],
    ))
    .unwrap();
    Instances::open(
        runtime,
        Settings {
            registry: registry.clone(),
            provider,
            lifecycle: LifecycleConfig::default(),
            server_key: burrow::instance::secrets::ServerKey::generate(),
            gateway_secret: b"bench".to_vec(),
        },
    )
    .unwrap()
}

/// Restores per second: materialise every instance once, close the runtime, delete the
/// actor files, reopen, and time the first call of each.
pub async fn burrow(f: &Fixture, dir: &Path, durability: Durability, concurrency: usize) -> f64 {
    let options = || {
        Options::new(dir.join("rt"))
            .durability(durability)
            .max_resident(1_000)
    };
    let runtime = Runtime::open(options()).unwrap();
    let inst = instances(&runtime, &f.registry, dir);
    calls(&inst, &f.ids, 64).await;
    runtime.shutdown(Duration::from_secs(60)).await;
    std::fs::remove_dir_all(dir.join("rt/actors")).unwrap();
    let runtime = Runtime::open(options()).unwrap();
    let inst = instances(&runtime, &f.registry, dir);
    let started = Instant::now();
    calls(&inst, &f.ids, concurrency).await;
    let rate = f.ids.len() as f64 / started.elapsed().as_secs_f64();
    runtime.shutdown(Duration::from_secs(60)).await;
    rate
}

async fn calls(inst: &Instances<LocalProvider>, ids: &[InstanceId], concurrency: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(ids.to_vec());
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (inst, ids, next) = (inst.clone(), ids.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= ids.len() {
                        break;
                    }
                    let status = inst
                        .get(&ActorName::Instance(ids[i]))
                        .status()
                        .await
                        .unwrap();
                    assert!(status.status.is_some());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

/// The same visible work by hand: look the row up, create the file, write the fields.
pub async fn baseline(f: &Fixture, dir: &Path, durability: Durability, concurrency: usize) -> f64 {
    let fields = burrow::state::FIELDS.len();
    let next = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(f.ids.clone());
    let dir = Arc::new(dir.join("baseline-restore"));
    std::fs::create_dir_all(&*dir).unwrap();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (registry, ids, next, dir) =
                (f.registry.clone(), ids.clone(), next.clone(), dir.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= ids.len() {
                        break;
                    }
                    let row = registry.get(ids[i]).await.unwrap().unwrap();
                    let path = dir.join(format!("{}.db", row.id));
                    tokio::task::spawn_blocking(move || {
                        let conn = baseline_connect(&path, true, durability);
                        conn.execute_batch(
                            "BEGIN; CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB)",
                        )
                        .unwrap();
                        for field in 0..fields {
                            conn.execute(
                                "INSERT OR REPLACE INTO t VALUES (?1, ?2)",
                                rusqlite::params![format!("f{field}"), &ROW[..16]],
                            )
                            .unwrap();
                        }
                        conn.execute_batch("COMMIT").unwrap();
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    f.ids.len() as f64 / started.elapsed().as_secs_f64()
}
