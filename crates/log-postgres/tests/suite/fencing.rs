//! The log against a real PostgreSQL (the testkit's shared throwaway server): claims, fenced
//! appends, reads, images, deletion, and what a stale writer gets.

use std::sync::Arc;
use std::time::Duration;

use burrow_log_postgres::{HISTORY_TABLE, PgTurnLog};
use burrow_runtime::ActorId;
use burrow_runtime::turn_log::{AlarmUpdate, Entry, LogError, LogKey, Payload, Position, TurnLog};
use burrow_testkit::pg::fresh_database;

fn key(name: &str) -> LogKey {
    LogKey {
        namespace: "lists".into(),
        id: ActorId::for_name("lists", name),
    }
}

fn patch(bytes: &[u8]) -> Payload {
    Payload::Patchset(bytes.to_vec())
}

async fn log() -> (burrow_testkit::pg::TestDatabase, PgTurnLog) {
    let db = fresh_database().await;
    let log = PgTurnLog::connect(db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    (db, log)
}

#[tokio::test]
async fn claims_raise_the_epoch_and_report_the_head() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let first = log.claim(&alice, None).await.unwrap();
    assert_eq!(
        (first.epoch, first.head, first.snapshot),
        (1, Position::GENESIS, None)
    );

    let image = Entry::after(first.head, first.epoch, Payload::Image(b"image".to_vec()));
    let turn = Entry::after(image.position(), first.epoch, patch(b"turn"));
    let head = log
        .append(
            &alice,
            first.epoch,
            first.head,
            &[image.clone(), turn.clone()],
            &AlarmUpdate::Unchanged,
        )
        .await
        .unwrap();
    assert_eq!(head, turn.position());

    let second = log.claim(&alice, None).await.unwrap();
    assert_eq!(second.epoch, 2);
    assert_eq!(second.head, turn.position());
    assert_eq!(second.snapshot, Some(1));
    assert_eq!(log.head(&alice).await.unwrap(), Some((2, turn.position())));
    assert_eq!(log.head(&key("nobody")).await.unwrap(), None);
    // Another actor's log is its own.
    assert_eq!(log.claim(&key("bob"), None).await.unwrap().epoch, 1);
}

#[tokio::test]
async fn an_append_under_a_superseded_epoch_is_refused_and_changes_nothing() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let old = log.claim(&alice, None).await.unwrap();
    let new = log.claim(&alice, None).await.unwrap();
    assert!(new.epoch > old.epoch);

    let stale = Entry::after(old.head, old.epoch, patch(b"stale"));
    match log
        .append(
            &alice,
            old.epoch,
            old.head,
            &[stale],
            &AlarmUpdate::Unchanged,
        )
        .await
    {
        Err(LogError::Fenced {
            epoch,
            current,
            head,
            ..
        }) => {
            assert_eq!(
                (epoch, current, head),
                (old.epoch, new.epoch, Position::GENESIS)
            );
        }
        other => panic!("a stale append got {other:?}"),
    }
    assert_eq!(log.read(&alice, 1, 10).await.unwrap(), vec![]);

    let fresh = Entry::after(new.head, new.epoch, patch(b"fresh"));
    log.append(
        &alice,
        new.epoch,
        new.head,
        std::slice::from_ref(&fresh),
        &AlarmUpdate::Unchanged,
    )
    .await
    .unwrap();
    assert_eq!(log.read(&alice, 1, 10).await.unwrap(), vec![fresh]);
}

#[tokio::test]
async fn an_append_after_a_moved_head_is_refused_even_in_the_same_epoch() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let claim = log.claim(&alice, None).await.unwrap();
    let one = Entry::after(claim.head, claim.epoch, patch(b"one"));
    log.append(
        &alice,
        claim.epoch,
        claim.head,
        std::slice::from_ref(&one),
        &AlarmUpdate::Unchanged,
    )
    .await
    .unwrap();
    // A second writer that still believes the log is empty (same epoch: a bug, or a replay of
    // an append whose answer was lost) must not fork the chain.
    let fork = Entry::after(claim.head, claim.epoch, patch(b"fork"));
    let err = log
        .append(
            &alice,
            claim.epoch,
            claim.head,
            &[fork],
            &AlarmUpdate::Unchanged,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::Fenced { head, .. } if head == one.position()),
        "{err:?}"
    );
    assert_eq!(log.read(&alice, 1, 10).await.unwrap(), vec![one]);
}

#[tokio::test]
async fn entries_that_do_not_chain_are_refused_before_they_are_sent() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let claim = log.claim(&alice, None).await.unwrap();
    let mut forged = Entry::after(claim.head, claim.epoch, patch(b"one"));
    forged.payload = patch(b"another");
    let err = log
        .append(
            &alice,
            claim.epoch,
            claim.head,
            &[forged],
            &AlarmUpdate::Unchanged,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Corrupt(_)), "{err:?}");
    assert_eq!(
        log.head(&alice).await.unwrap(),
        Some((1, Position::GENESIS))
    );
}

#[tokio::test]
async fn concurrent_claims_each_get_their_own_epoch_and_only_the_newest_can_append() {
    let (_db, log) = log().await;
    let log = Arc::new(log);
    let alice = key("alice");
    let claims = futures_util::future::join_all((0..32).map(|_| {
        let (log, alice) = (log.clone(), alice.clone());
        tokio::spawn(async move { log.claim(&alice, None).await.unwrap() })
    }))
    .await;
    let mut epochs: Vec<u64> = claims.iter().map(|c| c.as_ref().unwrap().epoch).collect();
    epochs.sort_unstable();
    assert_eq!(epochs, (1..=32).collect::<Vec<_>>());

    // Every claimant tries to append its own first entry at once: exactly one — the newest —
    // lands, and every other is fenced.
    let attempts = futures_util::future::join_all(claims.into_iter().map(|c| {
        let (log, alice) = (log.clone(), alice.clone());
        let claim = c.unwrap();
        tokio::spawn(async move {
            let entry = Entry::after(claim.head, claim.epoch, patch(&claim.epoch.to_be_bytes()));
            (
                claim.epoch,
                log.append(
                    &alice,
                    claim.epoch,
                    claim.head,
                    &[entry],
                    &AlarmUpdate::Unchanged,
                )
                .await,
            )
        })
    }))
    .await;
    let landed: Vec<u64> = attempts
        .iter()
        .filter_map(|a| match a.as_ref().unwrap() {
            (epoch, Ok(_)) => Some(*epoch),
            (_, Err(LogError::Fenced { .. })) => None,
            (_, Err(e)) => panic!("{e}"),
        })
        .collect();
    assert_eq!(landed, vec![32]);
    let entries = log.read(&alice, 1, 100).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].epoch, 32);
}

#[tokio::test]
async fn reads_and_images_follow_the_chain() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let claim = log.claim(&alice, None).await.unwrap();
    let mut head = claim.head;
    let mut all = Vec::new();
    for i in 0..10u8 {
        let payload = if i % 4 == 0 {
            Payload::Image(vec![i; 100])
        } else {
            patch(&[i])
        };
        let entry = Entry::after(head, claim.epoch, payload);
        head = log
            .append(
                &alice,
                claim.epoch,
                head,
                std::slice::from_ref(&entry),
                &AlarmUpdate::Unchanged,
            )
            .await
            .unwrap();
        all.push(entry);
    }
    assert_eq!(log.read(&alice, 1, 10).await.unwrap(), all);
    assert_eq!(log.read(&alice, 4, 6).await.unwrap(), all[3..6].to_vec());
    let mut previous = Position::GENESIS;
    for entry in log.read(&alice, 1, 10).await.unwrap() {
        assert!(entry.follows(previous));
        previous = entry.position();
    }
    assert_eq!(
        log.image_at(&alice, 10).await.unwrap(),
        Some(all[8].clone())
    );
    assert_eq!(log.image_at(&alice, 8).await.unwrap(), Some(all[4].clone()));
    assert_eq!(log.image_at(&alice, 4).await.unwrap(), Some(all[0].clone()));
    assert_eq!(log.claim(&alice, None).await.unwrap().snapshot, Some(9));
}

#[tokio::test]
async fn deleting_fences_the_running_activation_and_starts_an_empty_log_at_a_higher_epoch() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let claim = log.claim(&alice, None).await.unwrap();
    let one = Entry::after(claim.head, claim.epoch, Payload::Image(b"old".to_vec()));
    log.append(
        &alice,
        claim.epoch,
        claim.head,
        std::slice::from_ref(&one),
        &AlarmUpdate::Unchanged,
    )
    .await
    .unwrap();
    log.delete(&alice).await.unwrap();

    let two = Entry::after(one.position(), claim.epoch, patch(b"late"));
    let err = log
        .append(
            &alice,
            claim.epoch,
            one.position(),
            &[two],
            &AlarmUpdate::Unchanged,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Fenced { .. }), "{err:?}");
    assert_eq!(log.read(&alice, 1, 10).await.unwrap(), vec![]);
    assert_eq!(log.image_at(&alice, 10).await.unwrap(), None);
    let again = log.claim(&alice, None).await.unwrap();
    assert_eq!((again.head, again.snapshot), (Position::GENESIS, None));
    assert!(again.epoch > claim.epoch + 1);
}

#[tokio::test]
async fn the_log_keeps_its_own_migration_history_beside_the_registry() {
    let (db, _log) = log().await;
    let client = db.connect().await.unwrap();
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {HISTORY_TABLE} ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6]);
    // Connecting again (a restart) finds the migrations applied.
    PgTurnLog::connect(db.url(), Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_log_is_unavailable_within_the_timeout() {
    let started = std::time::Instant::now();
    let err = PgTurnLog::connect(
        "postgres://postgres@127.0.0.1:1/nothing",
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn alarms_travel_with_appends_names_with_claims_and_the_inventory_lists_both() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let claim = log.claim(&alice, Some("alice")).await.unwrap();
    let one = Entry::after(claim.head, claim.epoch, Payload::Image(b"image".to_vec()));
    let set = AlarmUpdate::Replace(vec![("a".into(), 10), ("b".into(), 20)]);
    log.append(
        &alice,
        claim.epoch,
        claim.head,
        std::slice::from_ref(&one),
        &set,
    )
    .await
    .unwrap();
    let two = Entry::after(one.position(), claim.epoch, patch(b"turn"));
    let change = AlarmUpdate::Changes(vec![
        ("a".into(), None),
        ("c".into(), Some(5)),
        ("b".into(), Some(1)),
        ("b".into(), Some(25)),
    ]);
    log.append(
        &alice,
        claim.epoch,
        one.position(),
        std::slice::from_ref(&two),
        &change,
    )
    .await
    .unwrap();
    // A refused append changes no alarm either.
    let stale = Entry::after(two.position(), claim.epoch - 1, patch(b"stale"));
    let refused = AlarmUpdate::Changes(vec![("z".into(), Some(1))]);
    assert!(
        log.append(&alice, claim.epoch - 1, two.position(), &[stale], &refused)
            .await
            .is_err()
    );
    log.claim(&key("empty"), None).await.unwrap(); // no entries: not listed

    let inventory = log.inventory().await.unwrap();
    assert_eq!(inventory.len(), 1, "{inventory:?}");
    assert_eq!(inventory[0].key, alice);
    assert_eq!(inventory[0].name.as_deref(), Some("alice"));
    assert_eq!(
        inventory[0].alarms,
        vec![("b".to_owned(), 25), ("c".to_owned(), 5)]
    );
    assert!(inventory[0].created_at_ms > 0);

    log.delete(&alice).await.unwrap();
    assert!(log.inventory().await.unwrap().is_empty());
}

#[tokio::test]
async fn compaction_keeps_the_latest_image_before_the_window_and_everything_after() {
    let (_db, log) = log().await;
    let alice = key("alice");
    let claim = log.claim(&alice, None).await.unwrap();
    let mut head = claim.head;
    let mut all = Vec::new();
    for (i, image) in [true, false, false, true, false].into_iter().enumerate() {
        let payload = if image {
            Payload::Image(vec![i as u8; 64])
        } else {
            patch(&[i as u8])
        };
        let entry = Entry::after(head, claim.epoch, payload);
        head = log
            .append(
                &alice,
                claim.epoch,
                head,
                std::slice::from_ref(&entry),
                &AlarmUpdate::Unchanged,
            )
            .await
            .unwrap();
        all.push(entry);
    }
    // Everything is inside an hour's window: nothing goes.
    assert_eq!(log.compact(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(log.read(&alice, 1, 5).await.unwrap(), all);
    // With no window, what precedes the latest image goes; the image and what follows stay.
    assert_eq!(log.compact(Duration::ZERO).await.unwrap(), 3);
    assert_eq!(log.read(&alice, 4, 5).await.unwrap(), all[3..].to_vec());
    assert_eq!(log.image_at(&alice, 5).await.unwrap(), Some(all[3].clone()));
    assert!(matches!(
        log.read(&alice, 1, 5).await,
        Err(LogError::Corrupt(_))
    ));
    assert_eq!(log.compact(Duration::ZERO).await.unwrap(), 0);
}

#[tokio::test]
async fn usage_counts_entries_bytes_and_images_per_namespace() {
    let (_db, log) = log().await;
    let empty = log.usage().await.unwrap();
    assert!(empty.namespaces.is_empty());
    let alice = key("alice");
    let claim = log.claim(&alice, None).await.unwrap();
    let one = Entry::after(claim.head, claim.epoch, Payload::Image(vec![1; 100]));
    let two = Entry::after(one.position(), claim.epoch, patch(&[2; 10]));
    log.append(
        &alice,
        claim.epoch,
        claim.head,
        &[one, two],
        &AlarmUpdate::Unchanged,
    )
    .await
    .unwrap();
    let usage = log.usage().await.unwrap();
    assert_eq!(
        usage.namespaces,
        vec![burrow_log_postgres::NamespaceUsage {
            namespace: "lists".into(),
            entries: 2,
            bytes: 110,
            images: 1,
        }]
    );
    assert!(usage.oldest_entry < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_of_many_actors_share_statements_each_with_its_own_fence() {
    let (_db, log) = log().await;
    let log = Arc::new(log);
    let stale = key("stale");
    let old = log.claim(&stale, None).await.unwrap();
    log.claim(&stale, None).await.unwrap(); // supersedes `old`
    let mut claims = Vec::new();
    for i in 0..100 {
        let k = key(&format!("actor {i}"));
        let c = log.claim(&k, None).await.unwrap();
        claims.push((k, c));
    }
    let (before, _) = log.grouping();
    let gate = Arc::new(tokio::sync::Barrier::new(claims.len() + 1));
    let mut tasks = Vec::new();
    for (k, c) in claims.clone() {
        let (log, gate) = (log.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let e = Entry::after(c.head, c.epoch, patch(k.id.to_string().as_bytes()));
            log.append(&k, c.epoch, c.head, &[e], &AlarmUpdate::Unchanged)
                .await
        }));
    }
    let stale_task = {
        let (log, gate, stale) = (log.clone(), gate.clone(), stale.clone());
        tokio::spawn(async move {
            gate.wait().await;
            let e = Entry::after(old.head, old.epoch, patch(b"stale"));
            log.append(&stale, old.epoch, old.head, &[e], &AlarmUpdate::Unchanged)
                .await
        })
    };
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(matches!(
        stale_task.await.unwrap(),
        Err(LogError::Fenced { .. })
    ));
    let (after, _) = log.grouping();
    assert!(
        after - before < 101,
        "101 concurrent appends took {} statements: none were grouped",
        after - before
    );
    for (k, _) in &claims {
        assert_eq!(log.read(k, 1, 1).await.unwrap().len(), 1);
    }
    assert!(log.read(&stale, 1, 1).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_error_of_one_actor_does_not_fail_the_others_in_its_group() {
    let (_db, log) = log().await;
    let log = Arc::new(log);
    // Several rounds, so that the broken append shares a statement with good ones in some.
    for round in 0..5 {
        // PostgreSQL text cannot hold NUL: this actor's rows fail the statement they are in.
        let broken = LogKey {
            namespace: "bro\0ken".into(),
            id: ActorId::for_name("x", &format!("broken {round}")),
        };
        let mut claims = Vec::new();
        for i in 0..80 {
            let k = key(&format!("round {round} actor {i}"));
            let c = log.claim(&k, None).await.unwrap();
            claims.push((k, c));
        }
        let gate = Arc::new(tokio::sync::Barrier::new(claims.len() + 1));
        let mut tasks = Vec::new();
        for (k, c) in claims {
            let (log, gate) = (log.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                gate.wait().await;
                let e = Entry::after(c.head, c.epoch, patch(b"fine"));
                log.append(&k, c.epoch, c.head, &[e], &AlarmUpdate::Unchanged)
                    .await
            }));
        }
        let broken_task = {
            let (log, gate) = (log.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                let e = Entry::after(Position::GENESIS, 1, patch(b"broken"));
                log.append(&broken, 1, Position::GENESIS, &[e], &AlarmUpdate::Unchanged)
                    .await
            })
        };
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let err = broken_task.await.unwrap().unwrap_err();
        assert!(!matches!(err, LogError::Fenced { .. }), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_many_actors_share_statements_and_repeat_claims_get_the_next_epoch() {
    let (db, log) = log().await;
    let log = Arc::new(log);
    let (before, _) = log.claim_grouping();
    let gate = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    // 90 actors once, and one actor ten times: its claims cannot share an upsert, so they go
    // in rounds, each raising the epoch once.
    for i in 0..100 {
        let (log, gate) = (log.clone(), gate.clone());
        let k = if i < 90 {
            key(&format!("actor {i}"))
        } else {
            key("popular")
        };
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            log.claim(&k, Some("a name")).await
        }));
    }
    let mut popular = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let claim = t.await.unwrap().unwrap();
        assert_eq!(claim.head, Position::GENESIS);
        if i < 90 {
            assert_eq!(claim.epoch, 1, "actor {i} was claimed once");
        } else {
            popular.push(claim.epoch);
        }
    }
    popular.sort_unstable();
    assert_eq!(popular, (1..=10).collect::<Vec<_>>());
    let (after, claimed) = log.claim_grouping();
    assert_eq!(claimed, 100);
    assert!(
        after - before < 100,
        "100 concurrent claims took {} statements: none were grouped",
        after - before
    );
    let named: i64 = db
        .connect()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM burrow_log_actor WHERE name = 'a name'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(named, 91, "every claimed actor has its row and name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_locked_elsewhere_holds_up_its_own_claim_not_the_others_in_its_group() {
    let db = fresh_database().await;
    let log = Arc::new(
        PgTurnLog::connect(db.url(), Duration::from_secs(4))
            .await
            .unwrap(),
    );
    let locked = key("locked");
    log.claim(&locked, None).await.unwrap();
    // Another session (a host paused mid-transaction) holds the actor's row.
    let other = db.connect().await.unwrap();
    other
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM burrow_log_actor WHERE actor_id = '{}' FOR UPDATE",
            locked.id
        ))
        .await
        .unwrap();
    let gate = Arc::new(tokio::sync::Barrier::new(21));
    let mut free = Vec::new();
    for i in 0..20 {
        let (log, gate) = (log.clone(), gate.clone());
        free.push(tokio::spawn(async move {
            gate.wait().await;
            log.claim(&key(&format!("free {i}")), None).await
        }));
    }
    let held = {
        let (log, gate, locked) = (log.clone(), gate.clone(), locked.clone());
        tokio::spawn(async move {
            gate.wait().await;
            log.claim(&locked, None).await
        })
    };
    // The lock is released only once every other claim has answered: had they waited for it,
    // they would have run out of time instead.
    for t in free {
        assert_eq!(t.await.unwrap().unwrap().epoch, 1);
    }
    assert!(!held.is_finished(), "the locked actor's claim did not wait");
    other.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(held.await.unwrap().unwrap().epoch, 2);
}
