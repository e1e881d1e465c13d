//! The shared registry suite and restore's cases on the embedded SQLite registry, and its
//! migrations.

use burrow_restore::{SqliteRegistry, sqlite_migrations};

fn open() -> (tempfile::TempDir, SqliteRegistry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = SqliteRegistry::open(&dir.path().join("registry.db")).unwrap();
    (dir, registry)
}

#[tokio::test]
async fn the_registry_suite() {
    let (_dir, registry) = open();
    crate::common::registry_suite(&registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_for_one_user() {
    let (_dir, registry) = open();
    crate::common::concurrent_creates(&registry).await;
}

#[tokio::test]
async fn restore_by_the_actors_own_key() {
    let (_dir, registry) = open();
    crate::common::restore_cases(&registry).await;
}

fn applied(path: &std::path::Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT version FROM refinery_schema_history ORDER BY version")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|v| v.unwrap())
        .collect()
}

#[test]
fn migrations_apply_once_and_bring_older_databases_forward() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    // A database left at version 1.
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    sqlite_migrations()
        .set_target(refinery::Target::Version(1))
        .run(&mut conn)
        .unwrap();
    drop(conn);
    assert_eq!(applied(&path), [1]);
    SqliteRegistry::open(&path).unwrap();
    assert_eq!(applied(&path), [1, 2], "brought forward");
    SqliteRegistry::open(&path).unwrap();
    assert_eq!(applied(&path), [1, 2], "a second run changes nothing");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'instances_active_by_user'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 1);
}

#[tokio::test]
async fn without_a_database_url_the_embedded_registry_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    for url in [None, Some(""), Some("  ")] {
        let registry =
            burrow_restore::AnyRegistry::open(url, dir.path(), std::time::Duration::from_secs(5))
                .await
                .unwrap();
        assert!(matches!(registry, burrow_restore::AnyRegistry::Sqlite(_)));
    }
    assert!(
        dir.path()
            .join(burrow_restore::SQLITE_REGISTRY_FILE)
            .exists()
    );
    let registry =
        burrow_restore::AnyRegistry::open(None, dir.path(), std::time::Duration::from_secs(5))
            .await
            .unwrap();
    crate::common::restore_cases(&registry).await;
}
