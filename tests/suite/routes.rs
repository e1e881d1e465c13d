//! Every route that takes an instance id, against the real binary, for every kind of caller:
//! the status codes follow the documented order (authentication, input, existence and
//! ownership, state).

use crate::common::*;
use burrow::identity::InstanceId;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Owner,
    Other,
    AdminToken,
    NoToken,
    MalformedId,
    UnknownId,
    NoTokenMalformedId,
}

const WHO: [Who; 7] = [
    Who::Owner,
    Who::Other,
    Who::AdminToken,
    Who::NoToken,
    Who::MalformedId,
    Who::UnknownId,
    Who::NoTokenMalformedId,
];

struct Route {
    method: Method,
    /// `{id}` is replaced by the instance id under test.
    path: &'static str,
    body: Option<Value>,
}

fn route(method: Method, path: &'static str, body: Option<Value>) -> Route {
    Route { method, path, body }
}

/// Every (method, path, status) `call` saw, for the check against `/openapi.json`.
static OBSERVED: std::sync::Mutex<Vec<(Method, String, u16)>> = std::sync::Mutex::new(Vec::new());

async fn call(
    s: &Served,
    r: &Route,
    id: &str,
    bearer: Option<&str>,
    key: Option<&str>,
) -> (u16, Value, bool) {
    let url = format!("{}{}", s.url(), r.path.replace("{id}", id));
    let mut request = s.http.request(r.method.clone(), url);
    if let Some(t) = bearer {
        request = request.bearer_auth(t);
    }
    if let Some(k) = key {
        request = request.header("x-internal-api-key", k);
    }
    if let Some(body) = &r.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    OBSERVED.lock().unwrap().push((
        r.method.clone(),
        r.path.split('?').next().unwrap().replace("{id}", id),
        status,
    ));
    let retry_after = response.headers().contains_key("retry-after");
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_route_answers_each_caller_in_the_documented_order() {
    let s = serve().await;
    let alice = user("alice");
    let id = InstanceId::new_random();
    s.running(&alice, Some(id)).await;
    let owner = s.token("alice", false);
    let other = s.token("bob", false);
    let admin = s.token("root", true);
    let unknown = InstanceId::new_random().to_string();
    let id_text = id.to_string();
    let target = |who: Who| match who {
        Who::MalformedId | Who::NoTokenMalformedId => "not-a-uuid".to_owned(),
        Who::UnknownId => unknown.clone(),
        _ => id_text.clone(),
    };
    let mut checked = 0;

    // User routes and the proxy: an admin token is an ordinary user here.
    let user_routes = [
        route(Method::GET, "/api/user/status?instanceId={id}", None),
        route(Method::GET, "/api/user/config?instanceId={id}", None),
        route(
            Method::PATCH,
            "/api/user/config?instanceId={id}",
            Some(json!({"envVars": {"FROM_TABLE": "1"}})),
        ),
        route(Method::GET, "/i/{id}/table/check?x=1", None),
        route(Method::POST, "/i/{id}", Some(json!({"hello": "sandbox"}))),
    ];
    for r in &user_routes {
        let mut not_found_bodies = Vec::new();
        for who in WHO {
            let bearer = match who {
                Who::Owner | Who::MalformedId | Who::UnknownId => Some(owner.as_str()),
                Who::Other => Some(other.as_str()),
                Who::AdminToken => Some(admin.as_str()),
                Who::NoToken | Who::NoTokenMalformedId => None,
            };
            let expected = match who {
                Who::Owner => 200,
                Who::Other | Who::AdminToken | Who::UnknownId => 404,
                Who::NoToken | Who::NoTokenMalformedId => 401,
                Who::MalformedId => 400,
            };
            let (status, body, _) = call(&s, r, &target(who), bearer, None).await;
            assert_eq!(
                status, expected,
                "{} {} as {who:?}: {body}",
                r.method, r.path
            );
            assert!(
                body["error"].is_string() || status == 200,
                "{} {} as {who:?}: {body}",
                r.method,
                r.path
            );
            if status == 404 {
                not_found_bodies.push(body);
            }
            checked += 1;
        }
        // Someone else's instance and a missing one look the same.
        assert!(
            not_found_bodies.windows(2).all(|w| w[0] == w[1]),
            "{not_found_bodies:?}"
        );
        assert_eq!(not_found_bodies[0], json!({"error": "Instance not found"}));
    }

    // Admin routes: no token 401, a non-admin token 403.
    let admin_routes = [
        route(Method::GET, "/api/admin/instances/{id}", None),
        route(
            Method::POST,
            "/api/admin/instances/{id}/start",
            Some(json!({})),
        ),
        route(
            Method::POST,
            "/api/admin/instances/{id}/restart",
            Some(json!({})),
        ),
        route(Method::POST, "/api/admin/instances/{id}/stop", None),
    ];
    for r in &admin_routes {
        for who in WHO {
            let bearer = match who {
                Who::Owner => Some(owner.as_str()),
                Who::Other => Some(other.as_str()),
                Who::AdminToken | Who::MalformedId | Who::UnknownId => Some(admin.as_str()),
                Who::NoToken | Who::NoTokenMalformedId => None,
            };
            let expected = match who {
                Who::AdminToken => 200,
                Who::Owner | Who::Other => 403,
                Who::NoToken | Who::NoTokenMalformedId => 401,
                Who::MalformedId => 400,
                Who::UnknownId => 404,
            };
            let (status, body, _) = call(&s, r, &target(who), bearer, None).await;
            assert_eq!(
                status, expected,
                "{} {} as {who:?}: {body}",
                r.method, r.path
            );
            checked += 1;
        }
    }

    // Platform routes: the key, then the id, then the user.
    let key = s.process.key("internalApiKey");
    let platform_routes = [
        route(
            Method::GET,
            "/api/platform/status?instanceId={id}&userId=alice",
            None,
        ),
        route(
            Method::GET,
            "/api/platform/debug-status?instanceId={id}&userId=alice",
            None,
        ),
        route(
            Method::GET,
            "/api/platform/gateway-token?instanceId={id}&userId=alice",
            None,
        ),
        route(
            Method::POST,
            "/api/platform/start?instanceId={id}",
            Some(json!({"userId": "alice"})),
        ),
        route(
            Method::POST,
            "/api/platform/restart?instanceId={id}",
            Some(json!({"userId": "alice"})),
        ),
        route(
            Method::POST,
            "/api/platform/stop?instanceId={id}",
            Some(json!({"userId": "alice"})),
        ),
        route(
            Method::POST,
            "/api/platform/destroy?instanceId={id}",
            Some(json!({"userId": "alice"})),
        ),
    ];
    for r in &platform_routes {
        let cases: [(&str, Option<&str>, String, u16); 7] = [
            ("no key", None, id_text.clone(), 403),
            (
                "wrong key",
                Some("wrong-key-wrong-key"),
                id_text.clone(),
                403,
            ),
            ("no key, malformed id", None, "not-a-uuid".into(), 403),
            ("malformed id", Some(&key), "not-a-uuid".into(), 400),
            ("unknown id", Some(&key), unknown.clone(), 404),
            ("wrong user", Some(&key), id_text.clone(), 404),
            ("owner", Some(&key), id_text.clone(), 200),
        ];
        for (case, k, target_id, expected) in cases {
            let r2;
            let r = if case == "wrong user" {
                r2 = Route {
                    method: r.method.clone(),
                    path: Box::leak(
                        r.path
                            .replace("userId=alice", "userId=mallory")
                            .into_boxed_str(),
                    ),
                    body: r.body.as_ref().map(|_| json!({"userId": "mallory"})),
                };
                &r2
            } else {
                r
            };
            let (status, body, _) = call(&s, r, &target_id, None, k).await;
            assert_eq!(status, expected, "{} {} ({case}): {body}", r.method, r.path);
            if expected == 403 {
                assert_eq!(body, json!({"error": "Forbidden"}));
            }
            if case == "malformed id" {
                assert_eq!(body, json!({"error": "Invalid instance ID"}));
            }
            checked += 1;
        }
    }
    // The owner's destroy went through: the instance is gone for everyone.
    let (status, _, _) = call(&s, &user_routes[0], &id_text, Some(&owner), None).await;
    assert_eq!(status, 404);
    eprintln!("{checked} route × caller combinations checked");
    assert_documented(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_lifecycle_through_the_typed_client() {
    let s = serve().await;
    let carol = user("carol");
    let org = s.client.create_organization("Acme", None).await.unwrap();
    let id = InstanceId::new_random();
    let mut request = burrow_client::ProvisionRequest::new(&carol);
    request.instance_id = Some(id);
    request.org_id = Some(org);
    request.secrets.insert("TOKEN".into(), "t0p".into());
    let p = s.client.provision(&request).await.unwrap();
    assert!(p.created);
    assert_eq!(p.instance_id, Some(id));
    assert!(
        !s.client.provision(&request).await.unwrap().created,
        "a second provision is not new"
    );
    s.wait_status(&carol, Some(id), "running").await;
    let status = s.client.status(&carol, Some(id)).await.unwrap();
    assert_eq!(status.org_id, Some(org));
    assert_eq!(status.secret_count, 1);
    let debug = s.client.debug_status(&carol, Some(id)).await.unwrap();
    assert!(
        !debug.to_string().contains("t0p"),
        "a secret in debug status: {debug}"
    );
    assert!(debug["nextAlarmAt"].is_i64());

    // Unknown organisation: 400; bad env names: 400 naming the name.
    let mut bad = burrow_client::ProvisionRequest::new(&carol);
    bad.instance_id = Some(InstanceId::new_random());
    bad.org_id = Some("00000000-0000-0000-0000-000000000001".parse().unwrap());
    let e = s.client.provision(&bad).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    let mut bad = burrow_client::ProvisionRequest::new(&carol);
    bad.env_vars.insert("BURROW_X".into(), "1".into());
    let e = s.client.provision(&bad).await.unwrap_err();
    assert!(e.to_string().contains("BURROW_X"), "{e}");

    // The legacy instance beside it.
    let p = s
        .client
        .provision(&burrow_client::ProvisionRequest::new(&carol))
        .await
        .unwrap();
    assert_eq!(p.instance_id, None);
    s.wait_status(&carol, None, "running").await;
    s.client.stop(&carol, None).await.unwrap();
    assert_eq!(
        s.client
            .status(&carol, None)
            .await
            .unwrap()
            .status
            .as_deref(),
        Some("stopped")
    );
    assert!(s.client.start(&carol, None, true).await.unwrap());
    s.wait_status(&carol, None, "running").await;
    assert_eq!(
        s.client.restart(&carol, None, Some("v7")).await.unwrap(),
        Ok(())
    );
    s.wait_status(&carol, None, "running").await;
    let token = s.client.gateway_token(&carol, None).await.unwrap();
    assert_eq!(token.len(), 64);
    for instance in [None, Some(id)] {
        let d = s.client.destroy(&carol, instance).await.unwrap();
        assert!(d.finalized);
        let e = s.client.status(&carol, instance).await.unwrap_err();
        assert_eq!(e.status(), Some(404));
    }
    // Nothing active is left: the user list and the admin listing (active rows) are empty.
    let list: Value = s
        .http
        .get(format!("{}/api/user/instances", s.url()))
        .bearer_auth(s.token("carol", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!({"instances": [], "nextCursor": null}));
    let listed: Value = s
        .http
        .get(format!(
            "{}/api/admin/instances?userId=carol&limit=1",
            s.url()
        ))
        .bearer_auth(s.token("root", true))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["instances"].as_array().unwrap().len(), 0, "{listed}");
    assert!(s.process.sandbox_pids().is_empty());

    // Operations endpoints: health, and metrics from the runtime, the registry and HTTP.
    let health: Value = s
        .http
        .get(format!("{}/healthz", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok", "durability": "process"}));
    let metrics = s.metrics().await;
    for series in [
        "burrow_activations_total",
        "burrow_registry_operations_total{op=\"create_instance\",outcome=\"ok\"}",
        "burrow_http_requests_total{method=\"POST\",route=\"/api/platform/provision\",status=\"201\"}",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from /metrics:\n{metrics}"
        );
    }
}

/// Whether `path` is an instance of the document's `template` (`{name}` one segment; a
/// trailing `{rest}` one or more).
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    let wildcard = template.ends_with("{rest}");
    if wildcard && p.len() < t.len() || !wildcard && p.len() != t.len() {
        return false;
    }
    t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// Every status the table observed is among its route's documented responses.
async fn assert_documented(s: &Served) {
    let document = s.get_json("/openapi.json", None).await;
    let paths = document["paths"].as_object().unwrap();
    let observed = OBSERVED.lock().unwrap().clone();
    assert!(observed.len() > 50, "{observed:?}");
    for (method, path, status) in observed {
        let found: Vec<_> = paths.iter().filter(|(t, _)| matches(t, &path)).collect();
        // The most specific template: a literal segment beats a parameter.
        let (template, item) = found
            .iter()
            .max_by_key(|(t, _)| t.split('/').filter(|s| !s.starts_with('{')).count())
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let operation = &item[method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path}: {template} does not document {method}"
        );
        assert!(
            operation["responses"].get(status.to_string()).is_some(),
            "{method} {path} answered {status}, which {template} does not document: {}",
            operation["responses"]
        );
    }
}
