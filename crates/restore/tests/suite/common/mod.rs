//! The registry suite every backend must pass, and restore's cases on top of it.

use burrow_identity::{ActorName, InstanceId, OrgId, UserId};
use burrow_restore::{MarkOutcome, NewInstance, Registry, RegistryError, restore};
use burrow_state::{RestoreSource, Status};

fn user(name: &str) -> UserId {
    // Distinct per run, so a shared database never mixes runs.
    format!("{name}-{}", &InstanceId::new_random().to_string()[..8])
        .parse()
        .unwrap()
}

fn legacy(user: &UserId, org: Option<OrgId>) -> NewInstance {
    NewInstance {
        id: InstanceId::new_random(),
        user_id: user.clone(),
        sandbox_id: user.legacy_sandbox_id(),
        org_id: org,
        name: None,
    }
}

pub async fn registry_suite<R: Registry>(registry: &R) {
    registry.ping().await.expect("a fresh registry answers");
    // Organisations.
    let org = OrgId::new_random();
    let created = registry.create_organization(org, "Acme").await.unwrap();
    assert_eq!((created.id, created.name.as_str()), (org, "Acme"));
    assert_eq!(
        registry.create_organization(org, "Acme").await.unwrap(),
        created,
        "idempotent"
    );
    assert!(matches!(
        registry.create_organization(org, "Other").await,
        Err(RegistryError::Conflict(_))
    ));
    assert!(matches!(
        registry
            .create_organization(OrgId::new_random(), "  ")
            .await,
        Err(RegistryError::InvalidInput(_))
    ));

    // Instance-keyed rows: created once, idempotent, validated.
    let alice = user("alice");
    let new = NewInstance::instance_keyed(InstanceId::new_random(), alice.clone(), Some(org));
    let row = registry.create_instance(&new).await.unwrap();
    assert_eq!(
        (row.id, &row.user_id, row.org_id, row.is_active()),
        (new.id, &alice, Some(org), true)
    );
    assert_eq!(
        registry.create_instance(&new).await.unwrap(),
        row,
        "idempotent for the same contents"
    );
    let mut changed = new.clone();
    changed.name = Some("renamed".into());
    assert!(matches!(
        registry.create_instance(&changed).await,
        Err(RegistryError::Conflict(_))
    ));
    let mut wrong_sandbox =
        NewInstance::instance_keyed(InstanceId::new_random(), alice.clone(), None);
    wrong_sandbox.sandbox_id = InstanceId::new_random().sandbox_id();
    assert!(matches!(
        registry.create_instance(&wrong_sandbox).await,
        Err(RegistryError::InvalidInput(_))
    ));
    let mut wrong_user = legacy(&alice, None);
    wrong_user.user_id = user("mallory");
    assert!(matches!(
        registry.create_instance(&wrong_user).await,
        Err(RegistryError::InvalidInput(_))
    ));
    let unknown = OrgId::new_random();
    let orphan =
        NewInstance::instance_keyed(InstanceId::new_random(), alice.clone(), Some(unknown));
    assert_eq!(
        registry.create_instance(&orphan).await,
        Err(RegistryError::UnknownOrganization(unknown))
    );

    // Lookups.
    assert_eq!(registry.get(row.id).await.unwrap(), Some(row.clone()));
    assert_eq!(registry.get(InstanceId::new_random()).await.unwrap(), None);
    assert_eq!(
        registry.get_by_sandbox(&row.sandbox_id).await.unwrap(),
        Some(row.clone())
    );
    let personal_old = registry
        .create_instance(&legacy(&alice, None))
        .await
        .unwrap();
    // "Oldest" needs two creation times: rows created in the same millisecond tie (and are
    // then ordered by id, which says nothing about which came first).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let personal_new = registry
        .create_instance(&NewInstance::instance_keyed(
            InstanceId::new_random(),
            alice.clone(),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        registry.personal_instance(&alice).await.unwrap(),
        Some(personal_old.clone()),
        "oldest personal row"
    );

    // Listing with paging, by user and by organisation.
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = registry.list_by_user(&alice, after, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().id);
        listed.extend(page);
    }
    let mut expected = vec![row.id, personal_old.id, personal_new.id];
    expected.sort();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    assert_eq!(
        registry.list_by_org(org, None, 10).await.unwrap(),
        std::slice::from_ref(&row)
    );

    // Soft delete: reported, idempotent, undoable, never deleting the row.
    assert_eq!(
        registry.mark_destroyed(personal_new.id).await.unwrap(),
        MarkOutcome::Marked
    );
    assert_eq!(
        registry.mark_destroyed(personal_new.id).await.unwrap(),
        MarkOutcome::AlreadyDestroyed
    );
    assert_eq!(
        registry
            .mark_destroyed(InstanceId::new_random())
            .await
            .unwrap(),
        MarkOutcome::NotFound
    );
    let destroyed = registry
        .get(personal_new.id)
        .await
        .unwrap()
        .expect("destroyed rows stay");
    assert!(!destroyed.is_active());
    assert!(
        !registry
            .list_by_user(&alice, None, 10)
            .await
            .unwrap()
            .iter()
            .any(|r| r.id == personal_new.id)
    );
    assert!(registry.undo_destroy(personal_new.id).await.unwrap());
    assert!(
        !registry.undo_destroy(personal_new.id).await.unwrap(),
        "nothing to undo"
    );
    assert!(
        registry
            .get(personal_new.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
}

/// Concurrent creates for one user: distinct instance-keyed rows all land; of several legacy
/// rows with the one legacy sandbox id, exactly one does.
pub async fn concurrent_creates<R: Registry>(registry: &R) {
    let bob = user("bob");
    let keyed: Vec<_> = (0..16)
        .map(|_| NewInstance::instance_keyed(InstanceId::new_random(), bob.clone(), None))
        .collect();
    let outcomes =
        futures_util::future::join_all(keyed.iter().map(|n| registry.create_instance(n))).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let legacies: Vec<_> = (0..16).map(|_| legacy(&bob, None)).collect();
    let outcomes =
        futures_util::future::join_all(legacies.iter().map(|n| registry.create_instance(n))).await;
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .filter_map(|o| o.as_ref().err())
            .all(|e| matches!(e, RegistryError::Conflict(_)))
    );
}

pub async fn restore_cases<R: Registry>(registry: &R) {
    let now = 1_800_000_000_000;
    // A user with a legacy personal row *and* an instance-keyed row: the instance-keyed actor
    // restores its own row, never the legacy one.
    let carol = user("carol");
    let legacy_row = registry
        .create_instance(&legacy(&carol, None))
        .await
        .unwrap();
    let keyed = registry
        .create_instance(&NewInstance::instance_keyed(
            InstanceId::new_random(),
            carol.clone(),
            None,
        ))
        .await
        .unwrap();
    let restored = restore(registry, &ActorName::Instance(keyed.id), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restored.row, keyed);
    assert_eq!(restored.source, RestoreSource::InstanceId);
    assert_eq!(restored.state.sandbox_id, Some(keyed.id.sandbox_id()));
    assert_eq!(restored.state.status, Some(Status::Provisioned));
    assert!(
        restored.state.configuration_lost,
        "the registry holds no configuration, and says so"
    );
    assert_eq!(restored.state.restored_at, Some(now));

    // The legacy row has an id too, but an instance-keyed actor of that id is not its actor.
    assert_eq!(
        restore(registry, &ActorName::Instance(legacy_row.id), now)
            .await
            .unwrap(),
        None
    );

    // A legacy actor restores by its sandbox id.
    let restored = restore(registry, &ActorName::Legacy(carol.clone()), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (restored.row.id, restored.source),
        (legacy_row.id, RestoreSource::SandboxId)
    );

    // An organisation's instance restores with its organisation.
    let org = OrgId::new_random();
    registry.create_organization(org, "Org").await.unwrap();
    let org_row = registry
        .create_instance(&NewInstance::instance_keyed(
            InstanceId::new_random(),
            carol.clone(),
            Some(org),
        ))
        .await
        .unwrap();
    let restored = restore(registry, &ActorName::Instance(org_row.id), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restored.state.org_id, Some(org));

    // A legacy actor without a legacy row falls back to the user's personal instance.
    let dave = user("dave");
    let personal = registry
        .create_instance(&NewInstance::instance_keyed(
            InstanceId::new_random(),
            dave.clone(),
            None,
        ))
        .await
        .unwrap();
    let restored = restore(registry, &ActorName::Legacy(dave.clone()), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (restored.row.id, restored.source),
        (personal.id, RestoreSource::PersonalInstance)
    );

    // Destroyed rows restore nothing; unknown actors restore nothing.
    registry.mark_destroyed(keyed.id).await.unwrap();
    assert_eq!(
        restore(registry, &ActorName::Instance(keyed.id), now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        restore(
            registry,
            &ActorName::Instance(InstanceId::new_random()),
            now
        )
        .await
        .unwrap(),
        None
    );
}
