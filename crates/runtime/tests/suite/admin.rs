//! The catalog's administrative calls: look-up, delete and export.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Probe, Req, Resp, TestActor};
use burrow_runtime::{ErrorKind, Options, Runtime};

const GRACE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn export_copies_an_actor_and_delete_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).shards(2)).unwrap();
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    let stub = ns.get_by_name("doomed");
    stub.call(Req::Put("k".into(), "v".into())).await.unwrap();
    let catalog = runtime.catalog();
    let record = catalog
        .get("test", stub.id())
        .await
        .unwrap()
        .expect("listed");
    assert_eq!(record.name.as_deref(), Some("doomed"));
    assert_eq!(catalog.namespaces().await.unwrap(), ["test"]);

    // Export while resident: the copy is a complete database with the write in it.
    let export = dir.path().join("export.db");
    catalog.export("test", stub.id(), &export).await.unwrap();
    let copy = rusqlite::Connection::open(&export).unwrap();
    let value: Vec<u8> = copy
        .query_row(
            "SELECT value FROM _burrow_kv WHERE key = CAST('k' AS BLOB)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(value, b"v");
    let err = catalog
        .export("test", stub.id(), &export)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "never overwrites: {err}"
    );
    // The actor carries on after being closed for the export.
    assert_eq!(
        stub.call(Req::Get("k".into())).await.unwrap(),
        Resp::Value(Some("v".into()))
    );

    assert!(catalog.delete("test", stub.id()).await.unwrap());
    assert!(!ns.path_of(&stub.id()).exists());
    assert_eq!(catalog.get("test", stub.id()).await.unwrap(), None);
    assert!(
        !catalog.delete("test", stub.id()).await.unwrap(),
        "nothing left to delete"
    );
    // A deleted actor comes back empty, and is not reported as lost.
    match stub.call(Req::Info).await.unwrap() {
        Resp::Info { lost, .. } => assert_eq!(lost, None),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        stub.call(Req::Get("k".into())).await.unwrap(),
        Resp::Value(None)
    );

    let err = catalog.delete("Not/Valid", stub.id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    runtime.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_names_a_shard_that_does_not_answer_and_refuses_once_shutting_down() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::open(Options::new(dir.path()).shards(1)).unwrap();
    assert_eq!(runtime.ready(Duration::from_secs(5)).await, Ok(()));
    let ns = runtime
        .namespace("test", TestActor::factory(Arc::new(Probe::default())))
        .unwrap();
    let stub = ns.get_by_name("blocker");
    let (arrived_tx, arrived) = std::sync::mpsc::channel();
    let (release, peer) = std::sync::mpsc::channel();
    let call = tokio::spawn(async move { stub.call(Req::Rendezvous(arrived_tx, peer)).await });
    tokio::task::block_in_place(|| arrived.recv_timeout(Duration::from_secs(10))).unwrap();

    let late = runtime.ready(Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(late, "shard(s) 0 did not answer within 200 ms");

    release.send(()).unwrap();
    call.await.unwrap().unwrap();
    assert_eq!(runtime.ready(Duration::from_secs(5)).await, Ok(()));
    runtime.shutdown(GRACE).await;
    assert_eq!(
        runtime.ready(Duration::from_secs(5)).await,
        Err("shutting down".to_owned())
    );
}
