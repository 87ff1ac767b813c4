//! External services that the test suite runs against, started by `cargo xtask test`.
//!
//! Design: [`Services::start`] launches every service the tests need and
//! returns a guard that owns their child processes; [`Services::env`] gives
//! the environment variables (for example a server URL) that `cargo test`
//! receives so tests can find them; dropping the guard stops every child,
//! also when the tests failed or `xtask` bailed out early with an error.
//! `cargo xtask test --no-services` skips all of this ([`Services::none`]).
//!
//! # Redis
//!
//! The only service today is Redis (see [`redis`]). If `redis-server` or
//! `redis-cli` is not on `PATH` it is installed with
//! `apt-get update && apt-get install -y redis-server` (CI is a fresh Debian
//! machine, as root). Then four servers are started, each on a free loopback
//! port (never 6379: a system Redis, if any, is ignored) in its own temporary
//! directory: a standalone server and the three masters of a Redis Cluster.
//! `cargo test` receives:
//!
//! | variable | value |
//! | --- | --- |
//! | `RATELIMIT_REDIS_URL` | `redis://127.0.0.1:P` (the standalone server) |
//! | `RATELIMIT_REDIS_CLUSTER_URLS` | `redis://127.0.0.1:P1,redis://127.0.0.1:P2,redis://127.0.0.1:P3` |
//! | `RATELIMIT_REDIS_SERVER_BIN` | absolute path of `redis-server`, for tests that start, kill and restart private instances |
//! | `RATELIMIT_REDIS_CLI_BIN` | absolute path of `redis-cli` |
//!
//! The paths are absolute but not canonicalized: Debian's `redis-server` is a
//! symlink to `redis-check-rdb`, which picks its behaviour from its own name.
//!
//! # Python
//!
//! The gateway's tests drive it with the official `openai` Python SDK: `python3` with `venv`
//! and `pip` is installed with apt-get when missing (see [`python`]), and exported as
//! `RATELIMIT_PYTHON`; the tests make their own virtual environment and install `openai` in it.
//!
//! # Cleanup
//!
//! Every server runs as a direct child of `xtask` and is killed (and reaped)
//! when the guard drops: on success, on a failed step, on an error during
//! startup and on a panic. On Ctrl-C the terminal sends `SIGINT` to the whole
//! foreground process group, servers included, and Redis shuts down on it.
//! Only if `xtask` itself is killed (`SIGKILL`, or a signal sent to its pid
//! alone) can servers outlive it; the next [`Services::start`] then finds their
//! temporary directories (named after the dead `xtask`'s pid), kills the Redis
//! processes still running in them and removes the directories.

pub(crate) mod python;
pub(crate) mod redis;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::atomic::{AtomicU32, Ordering},
    time::Instant,
};

use anyhow::{Context, Result};

use crate::util::format_duration;

/// Prefix of every temporary directory made by [`TempDir::new`].
const TEMP_PREFIX: &str = "ratelimit-xtask-";

/// Owns the processes of running test services and stops them on drop.
#[derive(Debug, Default)]
pub(crate) struct Services {
    /// Running service processes, stopped in order on drop.
    processes: Vec<Process>,
    /// Environment variables describing the services, for `cargo test`.
    env: Vec<(String, String)>,
}

impl Services {
    /// Starts every service the tests need: Redis, standalone and cluster.
    pub(crate) fn start() -> Result<Self> {
        reap_stale();
        let bins = redis::ensure_installed()?;
        println!("\n==> starting Redis: a standalone server and a 3-master cluster");
        let started = Instant::now();
        // Pushed into as each server starts, so an error part-way stops the
        // ones already running when `services` drops.
        let mut services = Self::default();
        let redis = redis::start(&bins, &mut services.processes)?;
        services.env = redis.env(&bins);
        let python = python::ensure_installed()?;
        services.env.push((python::PYTHON_VAR.to_owned(), python));
        println!(
            "<== Redis ready in {}: standalone on port {}, cluster on ports {}",
            format_duration(started.elapsed()),
            redis.standalone,
            redis
                .cluster
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        Ok(services)
    }

    /// No services at all (`--no-services`): nothing runs, nothing is exported.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Environment variables to pass to `cargo test`.
    pub(crate) fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if self.processes.is_empty() {
            return;
        }
        // Signal every process first, so they all exit at once; each
        // `Process` then waits for its own child (and removes its directory)
        // when the vector drops.
        for process in &mut self.processes {
            process.kill();
        }
        let count = self.processes.len();
        self.processes.clear();
        println!("xtask: stopped {count} service process(es)");
    }
}

/// A running child process with a name for messages and, optionally, the
/// temporary directory it works in. Dropping it kills and reaps the child,
/// then removes the directory.
#[derive(Debug)]
pub(crate) struct Process {
    /// Human-readable name, e.g. `redis standalone (port 40123)`.
    pub(crate) name: String,
    pub(crate) child: Child,
    /// Dropped after the child is reaped (fields drop after `Drop::drop`).
    pub(crate) dir: Option<TempDir>,
}

impl Process {
    /// Sends `SIGKILL`; best effort, the process may already have exited.
    fn kill(&mut self) {
        if let Err(err) = self.child.kill() {
            eprintln!("xtask: could not stop {}: {err}", self.name);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under [`std::env::temp_dir`], removed with its contents
/// on drop. Its name holds this process's pid, so that [`reap_stale`] can tell
/// directories of a dead `xtask` from live ones.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/ratelimit-xtask-<pid>-<n>-<label>` with a counter `n`
    /// unique in this process.
    pub(crate) fn new(label: &str) -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("{TEMP_PREFIX}{pid}-{n}-{label}"));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                // Left over from an earlier process with the same pid.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("creating directory {}", path.display()));
                }
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.path) {
            eprintln!("xtask: could not remove {}: {err}", self.path.display());
        }
    }
}

/// The pid of the `xtask` that made a temporary directory named `name`, if the
/// name is one of ours (`ratelimit-xtask-<pid>-...`).
fn temp_dir_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

/// Cleans up after an `xtask` that was killed before it could stop its
/// services (Linux only, a no-op elsewhere): for each of our temporary
/// directories whose owner pid is gone, kills the `redis-server` processes
/// working in it and removes it.
fn reap_stale() {
    let proc_fs = Path::new("/proc");
    if !proc_fs.join("self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(temp_dir_owner)
                .is_some_and(|pid| !proc_fs.join(pid.to_string()).exists())
        })
        // Canonical, to compare with `/proc/<pid>/cwd` if the temp dir is a symlink.
        .map(|entry| fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path()))
        .collect();
    if stale.is_empty() {
        return;
    }
    // Redis servers started by `xtask` run with their directory as cwd.
    for pid in fs::read_dir(proc_fs).into_iter().flatten().flatten() {
        let Some(pid) = pid.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = proc_fs.join(&pid);
        let is_redis = fs::read_to_string(dir.join("comm"))
            .is_ok_and(|comm| comm.trim_end().starts_with("redis-server"));
        let in_stale_dir = fs::read_link(dir.join("cwd")).is_ok_and(|cwd| stale.contains(&cwd));
        if is_redis && in_stale_dir {
            println!("xtask: killing redis-server {pid} left by an earlier, killed xtask");
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
    for dir in stale {
        println!("xtask: removing {} left by an earlier xtask", dir.display());
        let _ = fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_services_means_no_env() {
        let services = Services::none();
        assert_eq!(services.env().count(), 0);
    }

    fn alive(pid: u32, name: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .map(|c| c.starts_with(name))
            .unwrap_or(false)
    }

    #[test]
    fn drop_kills_children_and_removes_dirs() {
        let dir = TempDir::new("test-drop").unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let services = Services {
            processes: vec![Process {
                name: "sleep".into(),
                child,
                dir: Some(dir),
            }],
            env: vec![],
        };
        drop(services);
        // After drop the child has been killed and reaped, so the pid no longer
        // refers to a live `sleep` of ours.
        assert!(!alive(pid, "sleep"), "child {pid} still running after drop");
        assert!(!path.exists(), "{} not removed", path.display());
    }

    #[test]
    fn temp_dirs_are_unique_and_owned_by_us() {
        let a = TempDir::new("x").unwrap();
        let b = TempDir::new("x").unwrap();
        assert_ne!(a.path(), b.path());
        let name = a.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_dir_owner(name), Some(std::process::id()));
        assert_eq!(temp_dir_owner("ratelimit-xtask-12-3-redis"), Some(12));
        assert_eq!(temp_dir_owner("ratelimit-xtask-x-3-redis"), None);
        assert_eq!(temp_dir_owner("something-else-12"), None);
    }
}
