//! The health probe every provider uses: the gateway's health check, answered as the right
//! sandbox.

use std::net::SocketAddr;

use burrow_identity::SandboxId;

/// Whether the gateway at `address` answers its health check as the sandbox `sandbox_id` (not
/// whatever took its port over).
pub(crate) async fn answers_as(
    http: &reqwest::Client,
    address: SocketAddr,
    sandbox_id: &SandboxId,
) -> bool {
    let url = format!("http://{address}{}", burrow_sandbox::HEALTH_PATH);
    let Ok(response) = http.get(url).send().await else {
        return false;
    };
    if !response.status().is_success() {
        return false;
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["sandboxId"].as_str() == Some(sandbox_id.to_string().as_str())
}
