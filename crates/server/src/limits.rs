//! What one client may hold of the server: time, connections, message sizes, lookups.
//! Each default is documented in RELIABILITY.md ("Security").

use std::time::Duration;

/// Limits on clients. [`Default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A request header not complete after this long closes its connection (10 s).
    pub header_timeout: Duration,
    /// An API request (`/api/…`) not answered after this long gets 504 (30 s). Work it
    /// started that must finish (a destroy) finishes anyway.
    pub request_timeout: Duration,
    /// Most client connections open at once, WebSockets included (`None`: sized from the
    /// open-file limit, leaving the runtime's actors their descriptors).
    pub max_connections: Option<usize>,
    /// The proxy gives up connecting to a sandbox after this long (502; 5 s).
    pub upstream_connect_timeout: Duration,
    /// The proxy gives up waiting for a sandbox's response header after this long (504;
    /// 60 s). A response that has begun streams for as long as it takes.
    pub upstream_response_timeout: Duration,
    /// The largest WebSocket message and frame relayed, either way (1 MiB).
    pub websocket_max_message: usize,
    /// A relayed WebSocket with no message either way for this long is closed (5 min).
    pub websocket_idle_timeout: Duration,
    /// Registry lookups of instance ids not yet known to this server, per caller: a bucket
    /// of this many that refills at this many per second (20). Beyond it: 429.
    pub lookups_per_second: u32,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: None,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(60),
            websocket_max_message: 1024 * 1024,
            websocket_idle_timeout: Duration::from_secs(300),
            lookups_per_second: 20,
        }
    }
}
