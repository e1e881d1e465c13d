//! `burrow`: run the server, mint a token, or run a sandbox's gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use burrow_instance::LifecycleConfig;
use burrow_instance::provider::SandboxUids;
use burrow_runtime::Durability;
use burrow_server::{HttpLimits, KeyOverrides, Keys, Server, ServerConfig};
use clap::{Args, Parser, Subcommand};

mod export;
mod logging;

/// The server's own allocations (HTTP, proxying, tokio) go through mimalloc: glibc's malloc was
/// ~11 % of the proxy's profile (PERFORMANCE.md). SQLite keeps libc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "burrow",
    version,
    about = "Durable actors on SQLite, and the instance manager built on them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded registry and local sandboxes unless configured otherwise).
    Serve(Box<Serve>),
    /// Print a bearer token for a user.
    Token(Token),
    /// Run a sandbox's gateway (started by the server's local provider).
    Sandbox(burrow_sandbox::Args),
    /// Work with one actor's replicated log.
    #[command(subcommand)]
    Actor(ActorCommand),
}

#[derive(Subcommand)]
enum ActorCommand {
    /// Write an actor's SQLite file as it was at an entry (`--seq`) or a time (`--at`),
    /// rebuilt from the replicated log.
    Export(export::Export),
}

#[derive(Args)]
struct Secrets {
    /// The data directory (generated secrets are kept here).
    #[arg(long, env = "BURROW_DATA_DIR", default_value = "./burrow-data")]
    data_dir: PathBuf,
    /// Secret that signs bearer tokens (default: generated once into the data directory).
    #[arg(long, env = "BURROW_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Key that wraps instances' secrets: 64 hex digits (default: generated once into the
    /// data directory; once stored, a different one is refused).
    #[arg(long, env = "BURROW_SECRETS_KEY", hide_env_values = true)]
    secrets_key: Option<String>,
}

#[derive(Args)]
struct Serve {
    #[command(flatten)]
    secrets: Secrets,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "BURROW_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// PostgreSQL registry URL (default: the embedded SQLite registry in the data directory).
    #[arg(long, env = "BURROW_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Key platform callers send in `x-internal-api-key` (default: generated once).
    #[arg(long, env = "BURROW_INTERNAL_API_KEY", hide_env_values = true)]
    internal_api_key: Option<String>,
    /// Secret that derives sandboxes' gateway tokens (default: generated once).
    #[arg(long, env = "BURROW_GATEWAY_SECRET", hide_env_values = true)]
    gateway_secret: Option<String>,
    /// How long one registry operation may take, in milliseconds.
    #[arg(long, env = "BURROW_REGISTRY_TIMEOUT_MS", default_value_t = 5000)]
    registry_timeout_ms: u64,
    /// Shard threads (default: one per core).
    #[arg(long, env = "BURROW_SHARDS")]
    shards: Option<usize>,
    /// Most actors open at once.
    #[arg(long, env = "BURROW_MAX_RESIDENT")]
    max_resident: Option<usize>,
    /// Close an idle actor after this many milliseconds.
    #[arg(long, env = "BURROW_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
    /// What an acknowledged write survives: `process` (a crash of Burrow), `machine` (a
    /// power loss: every commit is fsynced) or `replicated` (the loss of the disk or the host:
    /// every commit is appended to a log in PostgreSQL first; needs --database-url and the
    /// four secrets given, since a keys file on the lost disk would be lost with it).
    /// (default `process`; `replicated` with --cluster).
    #[arg(long, env = "BURROW_DURABILITY", value_enum)]
    durability: Option<DurabilityArg>,
    /// With `--durability replicated`: how many seconds of every actor's history the log
    /// keeps; older entries are compacted away.
    #[arg(long, env = "BURROW_LOG_RETENTION_SECS", default_value_t = 24 * 3600)]
    log_retention_secs: u64,
    /// The first uid sandboxes run under (one per volume), or `off` to run them as the
    /// server's user. Only as root; default 1000000 then.
    #[arg(long, env = "BURROW_SANDBOX_UID_BASE")]
    sandbox_uid_base: Option<String>,
    /// How many uids from the base sandboxes may use.
    #[arg(long, env = "BURROW_SANDBOX_UID_COUNT", default_value_t = SandboxUids::DEFAULT.count)]
    sandbox_uid_count: u32,
    /// The address sandboxes listen on and are reached at. In a cluster, one that the other
    /// nodes reach (on a private network: sandboxes check a gateway token, nothing more).
    #[arg(long, env = "BURROW_SANDBOX_HOST", default_value = "127.0.0.1")]
    sandbox_host: std::net::IpAddr,
    /// How log lines are written: `text` or `json` (one object per line, start-up lines
    /// included).
    #[arg(long, env = "BURROW_LOG_FORMAT", value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(flatten)]
    lifecycle: Lifecycle,
    #[command(flatten)]
    limits: Limits,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Running as one node of a cluster on one PostgreSQL (see docs/CLUSTER.md).
#[derive(Args)]
struct ClusterArgs {
    /// Run as a node of a cluster: implies --durability replicated; needs --database-url,
    /// --advertise-url, the four secrets and BURROW_CLUSTER_SECRET, the same on every node.
    #[arg(long, env = "BURROW_CLUSTER", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    cluster: bool,
    /// Where the other nodes reach this one, e.g. `http://10.0.0.7:8787`.
    #[arg(long, env = "BURROW_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// The node's stable id (default: the advertised URL's host and port).
    #[arg(long, env = "BURROW_NODE_ID")]
    node_id: Option<String>,
    /// How long, in milliseconds, a renewal of the node's lease keeps it a member.
    #[arg(long, env = "BURROW_LEASE_MS", default_value_t = 10_000)]
    lease_ms: u64,
    /// What nodes authenticate to each other with, at least 32 bytes.
    #[arg(long, env = "BURROW_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
}

impl ClusterArgs {
    /// The cluster configuration asked for (`None` without --cluster), or what is wrong.
    fn config(&self) -> Result<Option<burrow_server::cluster::ClusterConfig>, String> {
        if !self.cluster {
            return Ok(None);
        }
        let advertise_url = self
            .advertise_url
            .clone()
            .ok_or("--cluster needs --advertise-url (BURROW_ADVERTISE_URL): where the other nodes reach this one")?;
        let node_id = match &self.node_id {
            Some(id) if id.trim().is_empty() => return Err("--node-id must not be empty".into()),
            Some(id) => id.clone(),
            None => burrow_server::cluster::node_id_from_url(&advertise_url)?,
        };
        if self.lease_ms < 100 {
            return Err(format!(
                "--lease-ms {} is too short: at least 100 ms",
                self.lease_ms
            ));
        }
        // Checked here as well as by the server, to be a usage error (exit 2) like the others.
        let secret = self.cluster_secret.clone().unwrap_or_default();
        if secret.len() < burrow_server::cluster::MIN_SECRET_BYTES {
            return Err(burrow_server::StartError::ClusterSecret.to_string());
        }
        Ok(Some(burrow_server::cluster::ClusterConfig {
            node_id,
            advertise_url,
            lease: Duration::from_millis(self.lease_ms),
            secret,
        }))
    }
}

impl Serve {
    /// The sandbox uid range asked for: the default as root, `off` for none.
    fn sandbox_uids(&self) -> Result<Option<SandboxUids>, String> {
        let root = nix::unistd::Uid::effective().is_root();
        match self.sandbox_uid_base.as_deref() {
            Some("off") => Ok(None),
            None if !root => Ok(None),
            None => SandboxUids::new(SandboxUids::DEFAULT.base, self.sandbox_uid_count).map(Some),
            Some(text) => {
                let base = text.parse().map_err(|_| {
                    format!("--sandbox-uid-base must be a uid or `off`, got {text:?}")
                })?;
                if !root {
                    return Err(
                        "--sandbox-uid-base needs the server to run as root (only root can run a process as another uid); use `off`".to_owned(),
                    );
                }
                SandboxUids::new(base, self.sandbox_uid_count).map(Some)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DurabilityArg {
    Process,
    Machine,
    Replicated,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Durability {
        match arg {
            DurabilityArg::Process => Durability::Process,
            DurabilityArg::Machine => Durability::Machine,
            DurabilityArg::Replicated => Durability::Replicated,
        }
    }
}

/// What one client may hold of the server (see RELIABILITY.md, "Security").
#[derive(Debug, Args)]
struct Limits {
    /// A request header not complete after this many milliseconds closes the connection.
    #[arg(long, env = "BURROW_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// An API request not answered after this many milliseconds gets 503.
    #[arg(long, env = "BURROW_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Most client connections open at once (default: from the open-file limit, leaving the
    /// actors theirs).
    #[arg(long, env = "BURROW_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// The proxy gives up connecting to a sandbox after this many milliseconds.
    #[arg(
        long,
        env = "BURROW_UPSTREAM_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    upstream_connect_timeout_ms: u64,
    /// The proxy gives up waiting for a sandbox's response header after this many milliseconds.
    #[arg(
        long,
        env = "BURROW_UPSTREAM_RESPONSE_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    upstream_response_timeout_ms: u64,
    /// The largest WebSocket message (and frame) relayed, in bytes.
    #[arg(long, env = "BURROW_WEBSOCKET_MAX_MESSAGE", default_value_t = 1024 * 1024)]
    websocket_max_message: usize,
    /// A relayed WebSocket with no message either way for this many milliseconds is closed.
    #[arg(
        long,
        env = "BURROW_WEBSOCKET_IDLE_TIMEOUT_MS",
        default_value_t = 300_000
    )]
    websocket_idle_timeout_ms: u64,
    /// Registry lookups of unknown instances per second per user (also the burst).
    #[arg(long, env = "BURROW_LOOKUPS_PER_SECOND", default_value_t = 20)]
    lookups_per_second: u32,
}

impl Limits {
    fn config(&self) -> HttpLimits {
        let ms = Duration::from_millis;
        HttpLimits {
            header_timeout: ms(self.header_timeout_ms),
            request_timeout: ms(self.request_timeout_ms),
            max_connections: self.max_connections,
            upstream_connect_timeout: ms(self.upstream_connect_timeout_ms),
            upstream_response_timeout: ms(self.upstream_response_timeout_ms),
            websocket_max_message: self.websocket_max_message,
            websocket_idle_timeout: ms(self.websocket_idle_timeout_ms),
            lookups_per_second: self.lookups_per_second,
        }
    }
}

/// Reconcile and lifecycle limits, in milliseconds unless said otherwise.
#[derive(Debug, Args)]
struct Lifecycle {
    /// Reconcile interval of running instances.
    #[arg(long, env = "BURROW_RECONCILE_RUNNING_MS", default_value_t = 300_000)]
    reconcile_running_ms: u64,
    /// Reconcile interval of starting, restarting and destroying instances.
    #[arg(long, env = "BURROW_RECONCILE_TRANSIENT_MS", default_value_t = 60_000)]
    reconcile_transient_ms: u64,
    /// Reconcile interval of provisioned and stopped instances.
    #[arg(long, env = "BURROW_RECONCILE_IDLE_MS", default_value_t = 1_800_000)]
    reconcile_idle_ms: u64,
    /// Random delay added to each reconcile, at most.
    #[arg(long, env = "BURROW_RECONCILE_JITTER_MS", default_value_t = 60_000)]
    reconcile_jitter_ms: u64,
    /// Failed health checks in a row before a running instance counts as stopped.
    #[arg(long, env = "BURROW_UNHEALTHY_CHECKS", default_value_t = 5)]
    unhealthy_checks: u32,
    /// A start or restart still in progress after this long becomes stopped.
    #[arg(long, env = "BURROW_TRANSIENT_TIMEOUT_MS", default_value_t = 300_000)]
    transient_timeout_ms: u64,
    /// A provisioned instance never started for this long destroys itself.
    #[arg(
        long,
        env = "BURROW_NEVER_STARTED_TTL_MS",
        default_value_t = 28_800_000
    )]
    never_started_ttl_ms: u64,
    /// How long a start waits for the sandbox's health check.
    #[arg(long, env = "BURROW_HEALTH_WAIT_MS", default_value_t = 120_000)]
    health_wait_ms: u64,
    /// Metadata recovery runs at most once per this period unless a start skips the cooldown.
    #[arg(long, env = "BURROW_RECOVERY_COOLDOWN_MS", default_value_t = 1_800_000)]
    recovery_cooldown_ms: u64,
}

impl Lifecycle {
    fn config(&self) -> LifecycleConfig {
        let ms = Duration::from_millis;
        LifecycleConfig {
            reconcile_running: ms(self.reconcile_running_ms),
            reconcile_transient: ms(self.reconcile_transient_ms),
            reconcile_idle: ms(self.reconcile_idle_ms),
            reconcile_jitter: ms(self.reconcile_jitter_ms),
            unhealthy_checks: self.unhealthy_checks,
            transient_timeout: ms(self.transient_timeout_ms),
            never_started_ttl: ms(self.never_started_ttl_ms),
            health_wait: ms(self.health_wait_ms),
            recovery_cooldown: ms(self.recovery_cooldown_ms),
            ..LifecycleConfig::default()
        }
    }
}

#[derive(Args)]
struct Token {
    #[command(flatten)]
    secrets: Secrets,
    /// The user the token speaks for.
    #[arg(long)]
    user: String,
    /// Allow the admin routes.
    #[arg(long)]
    admin: bool,
    /// Validity in seconds (at most 30 days for a user token, 24 hours for an admin token).
    #[arg(long, default_value_t = 86_400)]
    ttl: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Everything Burrow creates (actor files, catalog, registry, keys, logs; a sandbox's own
    // files) is private to its owner.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    match cli.command {
        Command::Sandbox(args) => burrow_sandbox::main(args),
        Command::Token(token) => print_token(&token),
        Command::Actor(ActorCommand::Export(export)) => export::run(export),
        Command::Serve(serve) => {
            logging::init(serve.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    logging::refuse(&format!("burrow: cannot start the async runtime: {e}"));
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve_until_signalled(*serve))
        }
    }
}

fn print_token(token: &Token) -> ExitCode {
    let user = match token.user.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("burrow token: {e}");
            return ExitCode::from(2);
        }
    };
    let ttl = Duration::from_secs(token.ttl);
    let limit = burrow_server::tokens::max_ttl(token.admin);
    if ttl > limit {
        eprintln!(
            "burrow token: --ttl {} is longer than the {} token limit of {} seconds",
            token.ttl,
            if token.admin { "admin" } else { "user" },
            limit.as_secs()
        );
        return ExitCode::from(2);
    }
    // A given secret is all a token needs: the data directory (which may be another host's,
    // or not exist here) is not touched.
    if let Some(secret) = &token.secrets.token_secret {
        if secret.len() < burrow_server::MIN_SECRET_BYTES {
            eprintln!(
                "burrow token: {}",
                burrow_server::KeyError::TooShort {
                    name: "BURROW_TOKEN_SECRET",
                    len: secret.len()
                }
            );
            return ExitCode::from(2);
        }
        println!(
            "{}",
            burrow_server::tokens::issue(secret, &user, token.admin, ttl)
        );
        return ExitCode::SUCCESS;
    }
    let overrides = KeyOverrides {
        secrets_key: token.secrets.secrets_key.clone(),
        ..KeyOverrides::default()
    };
    match Keys::resolve(&token.secrets.data_dir, &overrides) {
        Ok(keys) => {
            let t = burrow_server::tokens::issue(&keys.token_secret, &user, token.admin, ttl);
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("burrow token: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_until_signalled(serve: Serve) -> ExitCode {
    let mut config = ServerConfig::new(&serve.secrets.data_dir);
    config.listen = serve.listen;
    config.database_url = serve.database_url.clone();
    config.registry_timeout = Duration::from_millis(serve.registry_timeout_ms);
    config.keys = KeyOverrides {
        internal_api_key: serve.internal_api_key.clone(),
        token_secret: serve.secrets.token_secret.clone(),
        gateway_secret: serve.gateway_secret.clone(),
        secrets_key: serve.secrets.secrets_key.clone(),
    };
    config.shards = serve.shards;
    config.max_resident = serve.max_resident;
    config.idle_timeout = Duration::from_millis(serve.idle_timeout_ms);
    config.lifecycle = serve.lifecycle.config();
    config.limits = serve.limits.config();
    config.sandbox_uids = match serve.sandbox_uids() {
        Ok(uids) => uids,
        Err(e) => {
            logging::refuse(&format!("burrow serve: {e}"));
            return ExitCode::from(2);
        }
    };
    if serve.sandbox_host.is_unspecified() {
        logging::refuse(&format!(
            "burrow serve: --sandbox-host {} is not an address sandboxes can be reached at: give this host's address (127.0.0.1 by default, or one other nodes reach)",
            serve.sandbox_host
        ));
        return ExitCode::from(2);
    }
    config.sandbox_host = serve.sandbox_host;
    config.log_retention = Duration::from_secs(serve.log_retention_secs);
    config.cluster = match serve.cluster.config() {
        Ok(cluster) => cluster,
        Err(e) => {
            logging::refuse(&format!("burrow serve: {e}"));
            return ExitCode::from(2);
        }
    };
    config.durability = match (
        serve.durability.map(Durability::from),
        config.cluster.is_some(),
    ) {
        (None, true) => Durability::Replicated,
        (Some(other), true) if other != Durability::Replicated => {
            logging::refuse(&format!(
                "burrow serve: --cluster needs --durability replicated, not {}: another node can only take over what the log holds",
                other.name()
            ));
            return ExitCode::from(2);
        }
        (asked, _) => asked.unwrap_or_default(),
    };
    let (config_cluster, config_durability) = (config.cluster.clone(), config.durability);
    // Listened for before the server answers anything: a SIGTERM sent as soon as it is up
    // (a supervisor, a test) must drain it, not kill it with the default action.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let server = match Server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            logging::refuse(&format!("burrow serve: {e}"));
            return ExitCode::FAILURE;
        }
    };
    logging::announce(&format!("listening on http://{}", server.address()));
    logging::announce(&format!(
        "get a token: burrow token --user <user id> --data-dir {}",
        serve.secrets.data_dir.display()
    ));
    if let Some(cluster) = &config_cluster {
        logging::announce(&format!(
            "node {} of a cluster, advertised at {}",
            cluster.node_id, cluster.advertise_url
        ));
    }
    if config_durability == Durability::Replicated {
        logging::announce("the internal API key is the one given (BURROW_INTERNAL_API_KEY)");
    } else {
        logging::announce(&format!(
            "the internal API key is in {}",
            serve
                .secrets
                .data_dir
                .join(burrow_server::KEYS_FILE)
                .display()
        ));
    }
    let signal = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match &mut term { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    signal.await;
    tracing::info!("signal received; draining");
    server.shutdown().await;
    ExitCode::SUCCESS
}
