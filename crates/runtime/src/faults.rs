//! Fault injection for the runtime's own tests (cargo feature `faults`). Each fault is read
//! from an environment variable once; without the feature every function here is a no-op.

/// The delay in milliseconds named by `var`, read once into `cell`.
#[cfg(feature = "faults")]
fn delay(
    cell: &'static std::sync::OnceLock<Option<std::time::Duration>>,
    var: &str,
) -> Option<std::time::Duration> {
    *cell.get_or_init(|| {
        std::env::var(var)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(std::time::Duration::from_millis)
    })
}

/// `BURROW_FAULT_CATALOG_DELAY_MS`: how long the catalog writer sleeps before each batch, to
/// widen the window in which a reply could overtake the catalog (the kill tests check that it
/// never does).
#[cfg(feature = "faults")]
pub(crate) fn catalog_delay() {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    if let Some(delay) = delay(&DELAY, "BURROW_FAULT_CATALOG_DELAY_MS") {
        std::thread::sleep(delay);
    }
}

#[cfg(not(feature = "faults"))]
pub(crate) fn catalog_delay() {}

/// `BURROW_FAULT_CHECKPOINT_DELAY_MS`: how long an evicted actor's checkpoint sleeps before it
/// starts, to widen the window in which requests and admin work must wait for it.
#[cfg(feature = "faults")]
pub(crate) fn checkpoint_delay() {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    if let Some(delay) = delay(&DELAY, "BURROW_FAULT_CHECKPOINT_DELAY_MS") {
        std::thread::sleep(delay);
    }
}

#[cfg(not(feature = "faults"))]
pub(crate) fn checkpoint_delay() {}

/// `BURROW_FAULT_ACK_BEFORE_COMMIT_MS`: breaks the output gate on purpose — a request turn's
/// reply is sent *before* its commit, which then waits this long. The crash suites run with it
/// to prove that they notice lost acknowledged writes.
#[cfg(feature = "faults")]
pub(crate) fn ack_before_commit() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    delay(&DELAY, "BURROW_FAULT_ACK_BEFORE_COMMIT_MS")
}

#[cfg(not(feature = "faults"))]
pub(crate) fn ack_before_commit() -> Option<std::time::Duration> {
    None
}

/// A pause a running process can switch ([`set_pause_after_append`],
/// [`set_pause_before_append`]); until switched, the environment variable decides.
#[cfg(feature = "faults")]
struct Switch {
    ms: std::sync::atomic::AtomicU64,
    var: &'static str,
    from_env: std::sync::OnceLock<Option<std::time::Duration>>,
}

#[cfg(feature = "faults")]
const UNSET: u64 = u64::MAX;

#[cfg(feature = "faults")]
impl Switch {
    const fn new(var: &'static str) -> Switch {
        Switch {
            ms: std::sync::atomic::AtomicU64::new(UNSET),
            var,
            from_env: std::sync::OnceLock::new(),
        }
    }

    fn get(&'static self) -> Option<std::time::Duration> {
        match self.ms.load(std::sync::atomic::Ordering::Relaxed) {
            UNSET => delay(&self.from_env, self.var),
            0 => None,
            ms => Some(std::time::Duration::from_millis(ms)),
        }
    }

    fn set(&self, pause: Option<std::time::Duration>) {
        let ms = pause.map_or(0, |p| u64::try_from(p.as_millis()).unwrap_or(UNSET - 1));
        self.ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(feature = "faults")]
static PAUSE_AFTER_APPEND: Switch = Switch::new("BURROW_FAULT_PAUSE_AFTER_APPEND_MS");

#[cfg(feature = "faults")]
static PAUSE_BEFORE_APPEND: Switch = Switch::new("BURROW_FAULT_PAUSE_BEFORE_APPEND_MS");

/// `BURROW_FAULT_PAUSE_AFTER_APPEND_MS`: how long a replicated commit sleeps after the log took
/// its entry and before the local commit, so that a test can kill the process in between and
/// check that the next activation applies the entry the file missed.
#[cfg(feature = "faults")]
pub(crate) fn pause_after_append() -> Option<std::time::Duration> {
    PAUSE_AFTER_APPEND.get()
}

/// `BURROW_FAULT_PAUSE_BEFORE_APPEND_MS`: how long a replicated commit sleeps after its turn
/// passed every check and before it appends — a stalled process (a long GC pause, a VM
/// frozen), whose append must then be refused if the actor was claimed meanwhile.
#[cfg(feature = "faults")]
pub(crate) fn pause_before_append() -> Option<std::time::Duration> {
    PAUSE_BEFORE_APPEND.get()
}

/// Sets (or with `None` clears) the pause between a replicated commit's append and its local
/// commit, in a running process (a fault run switches it while nodes serve). Overrides
/// `BURROW_FAULT_PAUSE_AFTER_APPEND_MS`. Only in builds with the `faults` feature.
#[cfg(feature = "faults")]
pub fn set_pause_after_append(pause: Option<std::time::Duration>) {
    PAUSE_AFTER_APPEND.set(pause);
}

/// Sets (or with `None` clears) the pause before a replicated commit's append, in a running
/// process. Overrides `BURROW_FAULT_PAUSE_BEFORE_APPEND_MS`. Only with the `faults` feature.
#[cfg(feature = "faults")]
pub fn set_pause_before_append(pause: Option<std::time::Duration>) {
    PAUSE_BEFORE_APPEND.set(pause);
}

#[cfg(not(feature = "faults"))]
#[allow(dead_code)] // used only by replicated builds
pub(crate) fn pause_before_append() -> Option<std::time::Duration> {
    None
}

#[cfg(not(feature = "faults"))]
#[allow(dead_code)] // used only by replicated builds
pub(crate) fn pause_after_append() -> Option<std::time::Duration> {
    None
}
