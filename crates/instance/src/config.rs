//! Every interval, threshold, timeout and cooldown of the instance lifecycle, in one place so
//! that a deployment can tune them and tests can run them in milliseconds.

use std::time::Duration;

use burrow_state::Status;

/// Lifecycle timing. [`LifecycleConfig::default`] holds the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// Reconcile interval while running (default 5 min).
    pub reconcile_running: Duration,
    /// Reconcile interval while starting, restarting or destroying (default 1 min).
    pub reconcile_transient: Duration,
    /// Reconcile interval while provisioned or stopped (default 30 min).
    pub reconcile_idle: Duration,
    /// Up to this much random delay is added to every reconcile (default 60 s), so that
    /// instances provisioned together do not reconcile together.
    pub reconcile_jitter: Duration,
    /// A running instance whose sandbox is gone or fails this many checks in a row becomes
    /// stopped (default 5).
    pub unhealthy_checks: u32,
    /// A start or restart still in progress after this long becomes stopped (default 5 min).
    pub transient_timeout: Duration,
    /// A provisioned instance never started for this long destroys itself (default 8 h).
    pub never_started_ttl: Duration,
    /// How long a start waits for the sandbox's health check (default 2 min).
    pub health_wait: Duration,
    /// Pause between health probes while waiting (default 250 ms).
    pub health_poll: Duration,
    /// How long one health probe or provider call made inside a turn may take (default 10 s).
    pub provider_timeout: Duration,
    /// Metadata recovery runs at most once per this period unless a start skips the cooldown
    /// (default 30 min).
    pub recovery_cooldown: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> LifecycleConfig {
        LifecycleConfig {
            reconcile_running: Duration::from_secs(5 * 60),
            reconcile_transient: Duration::from_secs(60),
            reconcile_idle: Duration::from_secs(30 * 60),
            reconcile_jitter: Duration::from_secs(60),
            unhealthy_checks: 5,
            transient_timeout: Duration::from_secs(5 * 60),
            never_started_ttl: Duration::from_secs(8 * 60 * 60),
            health_wait: Duration::from_secs(2 * 60),
            health_poll: Duration::from_millis(250),
            provider_timeout: Duration::from_secs(10),
            recovery_cooldown: Duration::from_secs(30 * 60),
        }
    }
}

impl LifecycleConfig {
    /// Every duration scaled to `1/divisor` (at least 1 ms) — for tests that want the real
    /// schedule, fast. Thresholds that are counts stay as they are.
    pub fn scaled_down(divisor: u32) -> LifecycleConfig {
        let d = LifecycleConfig::default();
        let s = |x: Duration| (x / divisor.max(1)).max(Duration::from_millis(1));
        LifecycleConfig {
            reconcile_running: s(d.reconcile_running),
            reconcile_transient: s(d.reconcile_transient),
            reconcile_idle: s(d.reconcile_idle),
            reconcile_jitter: s(d.reconcile_jitter),
            unhealthy_checks: d.unhealthy_checks,
            transient_timeout: s(d.transient_timeout),
            never_started_ttl: s(d.never_started_ttl),
            health_wait: d.health_wait,
            health_poll: Duration::from_millis(20),
            provider_timeout: d.provider_timeout,
            recovery_cooldown: s(d.recovery_cooldown),
        }
    }

    /// The reconcile interval for an instance in `status` (before jitter).
    pub fn reconcile_interval(&self, status: Status) -> Duration {
        match status {
            Status::Running => self.reconcile_running,
            Status::Starting | Status::Restarting | Status::Destroying | Status::Restoring => {
                self.reconcile_transient
            }
            Status::Provisioned | Status::Stopped => self.reconcile_idle,
        }
    }
}
