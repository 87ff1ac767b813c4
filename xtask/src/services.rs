//! External services that the test suite runs against, started by `cargo xtask test`.
//!
//! Design: [`Services::start`] launches every service the tests need and
//! returns a guard that owns their child processes; [`Services::env`] gives
//! the environment variables (for example a server URL) that `cargo test`
//! receives so tests can find them; dropping the guard stops every child,
//! also when the tests failed or `xtask` bailed out early with an error.
//!
//! Today the project needs no external service, so the guard starts nothing
//! and exports no variables. Redis is added by the Redis issue: it will
//! install `redis-server` with apt when missing, start a standalone server and
//! a 3-node cluster on free loopback ports in temporary directories, push the
//! children into this guard and export their URLs from [`Services::env`].

use std::process::Child;

use anyhow::Result;

/// Owns the processes of running test services and stops them on drop.
#[derive(Debug, Default)]
pub(crate) struct Services {
    /// Running service processes, each with a human-readable name.
    children: Vec<(String, Child)>,
    /// Environment variables describing the services, for `cargo test`.
    env: Vec<(String, String)>,
}

impl Services {
    /// Starts every service the tests need (currently none).
    pub(crate) fn start() -> Result<Self> {
        Ok(Self::default())
    }

    /// Environment variables to pass to `cargo test` (currently empty).
    pub(crate) fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for (name, child) in &mut self.children {
            // The process may already have exited; both calls are best effort.
            if let Err(err) = child.kill() {
                eprintln!("xtask: could not stop {name}: {err}");
            }
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_services_means_no_env() {
        let services = Services::start().unwrap();
        assert_eq!(services.env().count(), 0);
    }

    #[test]
    fn drop_kills_children() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let services = Services {
            children: vec![("sleep".into(), child)],
            env: vec![],
        };
        drop(services);
        // After drop the child has been killed and reaped, so the pid no longer
        // refers to a live `sleep` of ours.
        let alive = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .map(|c| c.starts_with("sleep"))
            .unwrap_or(false);
        assert!(!alive, "child {pid} still running after drop");
    }
}
