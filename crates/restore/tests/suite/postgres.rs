//! The shared registry suite and restore's cases on a real, throwaway PostgreSQL; outages of
//! a dedicated cluster (stopped, and paused with SIGSTOP); migrations.

use std::time::{Duration, Instant};

use burrow_identity::{ActorName, InstanceId, UserId};
use burrow_restore::{
    NewInstance, PgRegistry, Registry, RegistryError, postgres_migrations, restore,
};
use burrow_testkit::pg::{Cluster, fresh_database};

async fn registry() -> (burrow_testkit::pg::TestDatabase, PgRegistry) {
    let db = fresh_database().await;
    let registry = PgRegistry::connect(db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    (db, registry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_suite() {
    let (_db, registry) = registry().await;
    crate::common::registry_suite(&registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_for_one_user() {
    let (_db, registry) = registry().await;
    crate::common::concurrent_creates(&registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_by_the_actors_own_key() {
    let (_db, registry) = registry().await;
    crate::common::restore_cases(&registry).await;
}

async fn applied(db: &burrow_testkit::pg::TestDatabase) -> Vec<i32> {
    let client = db.connect().await.unwrap();
    client
        .query(
            "SELECT version FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_bring_older_databases_forward() {
    let db = fresh_database().await;
    let mut client = db.connect().await.unwrap();
    postgres_migrations()
        .set_target(refinery::Target::Version(1))
        .run_async(&mut client)
        .await
        .unwrap();
    assert_eq!(applied(&db).await, [1]);
    PgRegistry::connect(db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(applied(&db).await, [1, 2], "brought forward");
    PgRegistry::connect(db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(applied(&db).await, [1, 2], "a second run changes nothing");
}

/// Resumes a paused cluster even if the test fails while it is paused.
struct Resume<'a>(&'a Cluster);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_hung_registry_is_a_retryable_error_and_then_recovers() {
    const TIMEOUT: Duration = Duration::from_millis(700);
    let mut cluster = tokio::task::block_in_place(Cluster::start).unwrap();
    let registry = PgRegistry::connect(&cluster.url("postgres"), TIMEOUT)
        .await
        .unwrap();
    let user: UserId = "outage-user".parse().unwrap();
    let row = registry
        .create_instance(&NewInstance::instance_keyed(
            InstanceId::new_random(),
            user,
            None,
        ))
        .await
        .unwrap();
    let actor = ActorName::Instance(row.id);

    // Stopped: refused connections.
    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    let started = Instant::now();
    let err = restore(&registry, &actor, 0).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let refused = registry.ping().await.unwrap_err();
    assert!(refused.is_retryable(), "{refused:?}");
    assert!(
        started.elapsed() < TIMEOUT * 10,
        "took {:?}",
        started.elapsed()
    );
    tokio::task::block_in_place(|| cluster.restart()).unwrap();
    let restored = restore(&registry, &actor, 0)
        .await
        .unwrap()
        .expect("restored after the outage");
    assert_eq!(restored.row.id, row.id);

    // Paused: connections open, nothing answers; only the timeout can end the wait.
    cluster.pause().unwrap();
    let guard = Resume(&cluster);
    let started = Instant::now();
    let err = restore(&registry, &actor, 0).await.unwrap_err();
    assert_eq!(err, RegistryError::Timeout(TIMEOUT));
    assert!(err.is_retryable());
    assert_eq!(registry.ping().await, Err(RegistryError::Timeout(TIMEOUT)));
    assert!(
        started.elapsed() >= TIMEOUT,
        "answered before the timeout: {err:?}"
    );
    drop(guard);
    let restored = restore(&registry, &actor, 0)
        .await
        .unwrap()
        .expect("restored after the pause");
    assert_eq!(restored.row.id, row.id);
    registry.ping().await.expect("answers again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_url_selects_postgres() {
    let db = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let registry =
        burrow_restore::AnyRegistry::open(Some(db.url()), dir.path(), Duration::from_secs(5))
            .await
            .unwrap();
    assert!(matches!(registry, burrow_restore::AnyRegistry::Postgres(_)));
    assert!(
        !dir.path()
            .join(burrow_restore::SQLITE_REGISTRY_FILE)
            .exists()
    );
    crate::common::registry_suite(&registry).await;
}
