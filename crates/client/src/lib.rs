//! A typed client for Burrow's platform API (`/api/platform/*`).
//!
//! Every instance-scoped method takes an optional instance id: `None` addresses the user's
//! legacy instance.
//!
//! ```no_run
//! # async fn demo() -> Result<(), burrow_client::ClientError> {
//! use burrow_client::{PlatformClient, ProvisionRequest};
//! let client = PlatformClient::new("http://127.0.0.1:8787", "the-internal-api-key");
//! let user = "alice".parse().unwrap();
//! let provisioned = client.provision(&ProvisionRequest::new(&user)).await?;
//! let status = client.status(&user, None).await?;
//! println!("{} is {:?}", provisioned.sandbox_id, status.status);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use burrow_identity::{InstanceId, OrgId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status}: {error}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        error: String,
        /// Details, if any.
        details: Option<Value>,
        /// The `Retry-After` header, in seconds, if any.
        retry_after: Option<u64>,
    },
    /// The request did not complete (connection refused, timeout, unreadable response).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(_) => None,
        }
    }
}

/// A provision request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionRequest {
    /// The owner.
    pub user_id: UserId,
    /// The instance (instance-keyed); `None` provisions the user's legacy instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The owning organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<OrgId>,
    /// Env vars.
    pub env_vars: BTreeMap<String, String>,
    /// Secrets.
    pub secrets: BTreeMap<String, String>,
}

/// Names the secrets without their values.
impl std::fmt::Debug for ProvisionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisionRequest")
            .field("user_id", &self.user_id)
            .field("instance_id", &self.instance_id)
            .field("org_id", &self.org_id)
            .field("env_vars", &self.env_vars)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ProvisionRequest {
    /// A request for `user`'s legacy instance, with no configuration.
    pub fn new(user: &UserId) -> ProvisionRequest {
        ProvisionRequest {
            user_id: user.clone(),
            instance_id: None,
            org_id: None,
            env_vars: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }
}

/// What a provision answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    /// The sandbox id.
    pub sandbox_id: String,
    /// The instance id (`None` for a legacy instance).
    pub instance_id: Option<InstanceId>,
    /// Whether the call created it (201) rather than updating it (200).
    #[serde(skip)]
    pub created: bool,
}

/// An instance's status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The instance id (`None` for a legacy instance).
    pub instance_id: Option<InstanceId>,
    /// The owner.
    pub user_id: String,
    /// The sandbox id.
    pub sandbox_id: String,
    /// The organisation.
    pub org_id: Option<OrgId>,
    /// `provisioned`, `starting`, `running`, `stopped`, `restarting`, `destroying` or
    /// `restoring`.
    pub status: Option<String>,
    /// When provisioned (ms since the epoch).
    pub provisioned_at: Option<i64>,
    /// When last started.
    pub last_started_at: Option<i64>,
    /// When last stopped.
    pub last_stopped_at: Option<i64>,
    /// How many env vars.
    pub env_var_count: usize,
    /// How many secrets.
    pub secret_count: usize,
}

/// What a destroy answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destroyed {
    /// Whether everything is gone.
    pub finalized: bool,
    /// The owner.
    pub destroyed_user_id: String,
    /// The sandbox id.
    pub destroyed_sandbox_id: String,
}

/// A client of the platform API.
#[derive(Debug, Clone)]
pub struct PlatformClient {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl PlatformClient {
    /// A client of the server at `base` (for example `http://127.0.0.1:8787`).
    pub fn new(base: impl Into<String>, internal_api_key: impl Into<String>) -> PlatformClient {
        PlatformClient {
            base: base.into().trim_end_matches('/').to_owned(),
            key: internal_api_key.into(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        instance: Option<InstanceId>,
        user: Option<&UserId>,
    ) -> reqwest::RequestBuilder {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(id) = instance {
            query.push(("instanceId", id.to_string()));
        }
        if let Some(user) = user {
            query.push(("userId", user.to_string()));
        }
        self.http
            .request(method, format!("{}/api/platform/{path}", self.base))
            .query(&query)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), ClientError> {
        let response = request
            .header("x-internal-api-key", &self.key)
            .send()
            .await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            return Err(ClientError::Api {
                status,
                error: body["error"].as_str().unwrap_or("").to_owned(),
                details: body.get("details").cloned(),
                retry_after,
            });
        }
        Ok((status, body))
    }

    async fn post(
        &self,
        path: &str,
        instance: Option<InstanceId>,
        body: Value,
    ) -> Result<(u16, Value), ClientError> {
        self.send(
            self.request(reqwest::Method::POST, path, instance, None)
                .json(&body),
        )
        .await
    }

    async fn get(
        &self,
        path: &str,
        user: &UserId,
        instance: Option<InstanceId>,
    ) -> Result<Value, ClientError> {
        Ok(self
            .send(self.request(reqwest::Method::GET, path, instance, Some(user)))
            .await?
            .1)
    }

    /// Creates an organisation; returns its id.
    pub async fn create_organization(
        &self,
        name: &str,
        id: Option<OrgId>,
    ) -> Result<OrgId, ClientError> {
        let (_, body) = self
            .post("organizations", None, json!({ "name": name, "id": id }))
            .await?;
        body["orgId"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unexpected("orgId", &body))
    }

    /// Provisions an instance (or updates an existing one's configuration).
    pub async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ClientError> {
        let (status, body) = self
            .post(
                "provision",
                None,
                serde_json::to_value(request).expect("serialisable"),
            )
            .await?;
        let mut provisioned: Provisioned = serde_json::from_value(body.clone())
            .map_err(|_| unexpected("provision result", &body))?;
        provisioned.created = status == 201;
        Ok(provisioned)
    }

    /// Starts the sandbox; `true` when this call began a start.
    pub async fn start(
        &self,
        user: &UserId,
        instance: Option<InstanceId>,
        skip_cooldown: bool,
    ) -> Result<bool, ClientError> {
        let (_, body) = self
            .post(
                "start",
                instance,
                json!({ "userId": user, "skipCooldown": skip_cooldown }),
            )
            .await?;
        Ok(body["started"].as_bool().unwrap_or(false))
    }

    /// Stops the sandbox.
    pub async fn stop(
        &self,
        user: &UserId,
        instance: Option<InstanceId>,
    ) -> Result<(), ClientError> {
        self.post("stop", instance, json!({ "userId": user }))
            .await
            .map(drop)
    }

    /// Restarts the sandbox; `Err(message)` inside when the server refused.
    pub async fn restart(
        &self,
        user: &UserId,
        instance: Option<InstanceId>,
        image_tag: Option<&str>,
    ) -> Result<Result<(), String>, ClientError> {
        let (_, body) = self
            .post(
                "restart",
                instance,
                json!({ "userId": user, "imageTag": image_tag }),
            )
            .await?;
        Ok(if body["success"].as_bool() == Some(true) {
            Ok(())
        } else {
            Err(body["error"].as_str().unwrap_or("").to_owned())
        })
    }

    /// Destroys the instance.
    pub async fn destroy(
        &self,
        user: &UserId,
        instance: Option<InstanceId>,
    ) -> Result<Destroyed, ClientError> {
        let (_, body) = self
            .post("destroy", instance, json!({ "userId": user }))
            .await?;
        serde_json::from_value(body.clone()).map_err(|_| unexpected("destroy result", &body))
    }

    /// The status.
    pub async fn status(
        &self,
        user: &UserId,
        instance: Option<InstanceId>,
    ) -> Result<Status, ClientError> {
        let body = self.get("status", user, instance).await?;
        serde_json::from_value(body.clone()).map_err(|_| unexpected("status", &body))
    }

    /// Everything an admin may see, as JSON.
    pub async fn debug_status(
        &self,
        user: &UserId,
        instance: Option<InstanceId>,
    ) -> Result<Value, ClientError> {
        self.get("debug-status", user, instance).await
    }

    /// The sandbox's gateway token.
    pub async fn gateway_token(
        &self,
        user: &UserId,
        instance: Option<InstanceId>,
    ) -> Result<String, ClientError> {
        let body = self.get("gateway-token", user, instance).await?;
        Ok(body["gatewayToken"].as_str().unwrap_or("").to_owned())
    }
}

fn unexpected(what: &str, body: &Value) -> ClientError {
    ClientError::Api {
        status: 200,
        error: format!("the response has no valid {what}"),
        details: Some(body.clone()),
        retry_after: None,
    }
}
