//! Bearer tokens: HS256 JWTs with `sub` (the user id), `exp`, and `admin` when set.

use std::time::Duration;

use burrow_identity::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, in seconds since the epoch.
    pub exp: u64,
    /// Whether the bearer may use the admin routes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user_id: UserId,
    /// An admin token.
    pub admin: bool,
    /// When the token stops being valid (what a WebSocket it opened lives until).
    pub expires_at: std::time::SystemTime,
}

/// The longest validity `burrow token` gives a user token.
pub const MAX_USER_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest validity `burrow token` gives an admin token.
pub const MAX_ADMIN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest validity of a token, by kind.
pub fn max_ttl(admin: bool) -> Duration {
    if admin { MAX_ADMIN_TTL } else { MAX_USER_TTL }
}

/// A token for `user`, valid for `ttl`.
pub fn issue(secret: &str, user: &UserId, admin: bool, ttl: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let claims = Claims {
        sub: user.to_string(),
        exp: (now + ttl).as_secs(),
        admin,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing of plain claims cannot fail")
}

/// Checks a token: signature, algorithm (HS256 only), expiry (no leeway), and a valid user id.
pub fn verify(secret: &str, token: &str) -> Option<Caller> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .ok()?;
    Some(Caller {
        user_id: data.claims.sub.parse().ok()?,
        admin: data.claims.admin,
        expires_at: std::time::UNIX_EPOCH + Duration::from_secs(data.claims.exp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let alice: UserId = "alice".parse().unwrap();
        let t = issue(
            "secret-secret-secret",
            &alice,
            true,
            Duration::from_secs(60),
        );
        let caller = verify("secret-secret-secret", &t).unwrap();
        assert_eq!((&caller.user_id, caller.admin), (&alice, true));
        let left = caller
            .expires_at
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60));
        assert_eq!(verify("another-secret-secret", &t), None);
        let mut tampered = t.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert_eq!(verify("secret-secret-secret", &tampered), None);
        let expired = issue("secret-secret-secret", &alice, false, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(verify("secret-secret-secret", &expired), None);
        assert_eq!(verify("secret-secret-secret", "not.a.token"), None);
        // "none" and other algorithms are refused.
        let none = format!(
            "{}.{}.",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
            "eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwiYWRtaW4iOnRydWV9"
        );
        assert_eq!(verify("secret-secret-secret", &none), None);
    }
}
