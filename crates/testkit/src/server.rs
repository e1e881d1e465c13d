//! The `burrow` binary as a child process: `burrow serve` on a free port with its own data
//! directory, signals, restarts on the same directory, and cleanup of every sandbox process
//! the run created (found through the records in the data directory).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// How to run `burrow serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// A PostgreSQL registry URL (the embedded registry when `None`).
    pub database_url: Option<String>,
    /// Extra environment variables (for example test-sized `BURROW_RECONCILE_*_MS`).
    pub env: Vec<(String, String)>,
    /// Where to listen (default `127.0.0.1:0`, a free port; a node of a cluster needs a fixed
    /// one to advertise).
    pub listen: String,
}

impl ServeOptions {
    /// The embedded registry in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            data_dir: data_dir.into(),
            database_url: None,
            env: Vec::new(),
            listen: "127.0.0.1:0".into(),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: &str, value: impl ToString) -> ServeOptions {
        self.env.push((name.to_owned(), value.to_string()));
        self
    }
}

/// A running `burrow serve`. Dropping it kills the server and every sandbox process recorded
/// in its data directory.
#[derive(Debug)]
pub struct BurrowProcess {
    binary: PathBuf,
    options: ServeOptions,
    child: Option<Child>,
    address: SocketAddr,
}

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The process could not be run.
    #[error("running {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
    /// It exited or stayed silent instead of printing its address.
    #[error("burrow serve did not start: {0}")]
    NotStarted(String),
}

impl BurrowProcess {
    /// Runs `binary serve` and waits until it answers `/healthz`.
    pub async fn start(binary: &Path, options: ServeOptions) -> Result<BurrowProcess, ServeError> {
        let (child, address) = spawn(binary, &options)?;
        let process = BurrowProcess {
            binary: binary.to_owned(),
            options,
            child: Some(child),
            address,
        };
        process.wait_healthy().await?;
        Ok(process)
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A key of the server (`internalApiKey`, `tokenSecret`, `gatewaySecret`, `secretsKey`):
    /// the one given in its environment if it was (as replicated durability requires), else
    /// the one in its generated keys file.
    pub fn key(&self, name: &str) -> String {
        let var = match name {
            "internalApiKey" => "BURROW_INTERNAL_API_KEY",
            "tokenSecret" => "BURROW_TOKEN_SECRET",
            "gatewaySecret" => "BURROW_GATEWAY_SECRET",
            "secretsKey" => "BURROW_SECRETS_KEY",
            _ => "",
        };
        if let Some((_, value)) = self.options.env.iter().find(|(k, _)| k == var) {
            return value.clone();
        }
        let bytes = std::fs::read(self.options.data_dir.join("server-keys.json"))
            .expect("the keys file exists");
        let keys: serde_json::Value = serde_json::from_slice(&bytes).expect("the keys file parses");
        keys[name].as_str().expect("the key exists").to_owned()
    }

    /// The server's log (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.options.data_dir.join("serve.log")).unwrap_or_default()
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits up to `timeout` for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory (after [`kill`](Self::kill) or
    /// [`terminate`](Self::terminate); a running one is killed first). The port may change.
    pub async fn restart(&mut self) -> Result<(), ServeError> {
        self.kill();
        let (child, address) = spawn(&self.binary, &self.options)?;
        self.child = Some(child);
        self.address = address;
        self.wait_healthy().await
    }

    async fn wait_healthy(&self) -> Result<(), ServeError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a plain client builds");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.url())).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ServeError::NotStarted(format!(
                    "/healthz never answered; log:\n{}",
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pids of the sandbox processes recorded in the data directory that still run.
    pub fn sandbox_pids(&self) -> Vec<i32> {
        sandbox_pids(&self.options.data_dir)
    }
}

impl Drop for BurrowProcess {
    fn drop(&mut self) {
        self.kill();
        for pid in sandbox_pids(&self.options.data_dir) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn spawn(binary: &Path, options: &ServeOptions) -> Result<(Child, SocketAddr), ServeError> {
    // Private, as `burrow serve` itself would create it (the log below goes in first).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&options.data_dir)
        .map_err(|e| ServeError::Spawn(options.data_dir.clone(), e))?;
    let log = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new().create(true).append(true),
        0o600,
    )
    .open(options.data_dir.join("serve.log"))
    .map_err(|e| ServeError::Spawn(options.data_dir.clone(), e))?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg("--listen")
        .arg(&options.listen)
        .arg("--data-dir")
        .arg(&options.data_dir)
        .env_remove("BURROW_DATABASE_URL")
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    if let Some(url) = &options.database_url {
        command.arg("--database-url").arg(url);
    }
    let mut child = command
        .spawn()
        .map_err(|e| ServeError::Spawn(binary.to_owned(), e))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    // Reads the address, then keeps draining stdout so the server never blocks on it.
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent
                && let Some(address) = announced(&line)
                    .as_deref()
                    .and_then(|text| text.strip_prefix("listening on http://"))
            {
                let _ = tx.send(address.trim().to_owned());
                sent = true;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(text) => match text.parse() {
            Ok(address) => Ok((child, address)),
            Err(_) => Err(ServeError::NotStarted(format!(
                "unparsable address {text:?}"
            ))),
        },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let log =
                std::fs::read_to_string(options.data_dir.join("serve.log")).unwrap_or_default();
            Err(ServeError::NotStarted(format!(
                "no `listening on` line; log:\n{log}"
            )))
        }
    }
}

/// The text of a start-up line `burrow serve` wrote to stdout: the line itself
/// (`--log-format text`) or its JSON object's `fields.message` (`--log-format json`).
pub fn announced(line: &str) -> Option<String> {
    if !line.starts_with('{') {
        return Some(line.to_owned());
    }
    let object: serde_json::Value = serde_json::from_str(line).ok()?;
    object["fields"]["message"].as_str().map(str::to_owned)
}

/// A sandbox process recorded in a data directory that still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxProcess {
    /// Its pid (also its process group).
    pub pid: i32,
    /// The machine id.
    pub machine_id: String,
    /// The sandbox id it is labelled with.
    pub sandbox_id: String,
}

/// The sandbox processes recorded in `<data dir>/sandboxes/machines/*/machine.json` whose
/// process still runs with the recorded start time.
pub fn sandboxes(data_dir: &Path) -> Vec<SandboxProcess> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("sandboxes").join("machines")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(bytes) = std::fs::read(entry.path().join("machine.json")) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let (Some(pid), Some(started)) = (record["pid"].as_i64(), record["pidStarted"].as_u64())
        else {
            continue;
        };
        if start_time(pid as i32) == Some(started) {
            found.push(SandboxProcess {
                pid: pid as i32,
                machine_id: record["id"].as_str().unwrap_or_default().to_owned(),
                sandbox_id: record["labels"]["sandboxId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    found
}

/// The pids of [`sandboxes`].
pub fn sandbox_pids(data_dir: &Path) -> Vec<i32> {
    sandboxes(data_dir).into_iter().map(|s| s.pid).collect()
}

/// A process's start time from /proc (`None` if it is gone or a zombie).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}
