//! Redis for the test suite: finds (or installs) `redis-server` and
//! `redis-cli`, starts a standalone server and a 3-master Redis Cluster on
//! free loopback ports, and describes them as environment variables.
//!
//! All four servers are spawned at once and polled together, so startup takes
//! about as long as the slowest server plus cluster formation (about a second
//! or two). Each server runs in the foreground (`--daemonize no`) as a child of
//! `xtask`, with no persistence, in its own [`TempDir`], logging to
//! `redis.log` there; if a server fails to start, the tail of its log is part
//! of the error (the directory itself is removed).

mod client;

use std::{
    ffi::{OsStr, OsString},
    fs::{self, File},
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

use super::{Process, TempDir};
use crate::util::{display, step};

/// `redis://127.0.0.1:P` of the standalone server.
pub(crate) const URL_VAR: &str = "RATELIMIT_REDIS_URL";
/// The three cluster masters' URLs, comma-separated.
pub(crate) const CLUSTER_URLS_VAR: &str = "RATELIMIT_REDIS_CLUSTER_URLS";
/// Absolute path of `redis-server`, for tests that run private instances.
pub(crate) const SERVER_BIN_VAR: &str = "RATELIMIT_REDIS_SERVER_BIN";
/// Absolute path of `redis-cli`.
pub(crate) const CLI_BIN_VAR: &str = "RATELIMIT_REDIS_CLI_BIN";

/// Number of masters in the test cluster.
const CLUSTER_NODES: usize = 3;
/// A cluster node also listens on its port plus this (the cluster bus).
const CLUSTER_BUS_OFFSET: u16 = 10_000;
/// The default Redis port, which a system Redis may hold: never used.
const DEFAULT_PORT: u16 = 6379;
/// Each server's log file, inside its directory.
const LOG_FILE: &str = "redis.log";
/// How often a server is respawned on a new port when its port was taken
/// between finding it free and the server binding it.
const MAX_PORT_ATTEMPTS: u32 = 5;
/// How long all servers together may take to answer `PING`.
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `redis-cli --cluster create` may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_OK_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Connect/read timeout of one poll.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the Redis executables are: absolute paths, not canonicalized (Debian's
/// `redis-server` is a symlink whose name decides what the binary does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bins {
    pub(crate) server: PathBuf,
    pub(crate) cli: PathBuf,
}

/// Returns the Redis executables, installing Debian's `redis-server` package
/// (which brings `redis-cli`) with `apt-get` if either is missing from `PATH`.
pub(crate) fn ensure_installed() -> Result<Bins> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    if let Some(bins) = locate(std::env::var_os("PATH").as_deref(), &cwd) {
        return Ok(bins);
    }
    println!(
        "\nxtask: redis-server or redis-cli is not on PATH; installing Debian's \
         redis-server package with apt-get"
    );
    let hint = "installing Redis with apt-get failed (it needs root and Debian's \
                package lists); install redis-server and redis-cli (Redis 6 or newer) \
                yourself, or run `cargo xtask test --no-services`";
    step(Command::new("apt-get").arg("update")).context(hint)?;
    step(
        Command::new("apt-get")
            .args(["install", "-y", "redis-server"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context(hint)?;
    locate(std::env::var_os("PATH").as_deref(), &cwd).ok_or_else(|| {
        anyhow!(
            "apt-get installed redis-server, but redis-server or redis-cli is still not on PATH"
        )
    })
}

/// Both Redis executables on the search path `path_var` (the value of
/// `PATH`), or `None` if either is missing: then they must be installed.
/// Relative `PATH` entries are taken relative to `cwd`.
pub(crate) fn locate(path_var: Option<&OsStr>, cwd: &Path) -> Option<Bins> {
    Some(Bins {
        server: find_executable("redis-server", path_var?, cwd)?,
        cli: find_executable("redis-cli", path_var?, cwd)?,
    })
}

/// The first executable file called `name` in the directories of `path_var`.
fn find_executable(name: &str, path_var: &OsStr, cwd: &Path) -> Option<PathBuf> {
    std::env::split_paths(path_var).find_map(|dir| {
        let candidate = cwd.join(dir).join(name);
        is_executable(&candidate).then_some(candidate)
    })
}

fn is_executable(path: &Path) -> bool {
    // `metadata` follows symlinks, like the shell does.
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Ports of the running servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Started {
    pub(crate) standalone: u16,
    pub(crate) cluster: [u16; CLUSTER_NODES],
}

impl Started {
    /// The environment variables that tell the tests where Redis is.
    pub(crate) fn env(&self, bins: &Bins) -> Vec<(String, String)> {
        let url = |port: u16| format!("redis://127.0.0.1:{port}");
        let cluster: Vec<String> = self.cluster.iter().map(|&p| url(p)).collect();
        vec![
            (URL_VAR.to_owned(), url(self.standalone)),
            (CLUSTER_URLS_VAR.to_owned(), cluster.join(",")),
            (
                SERVER_BIN_VAR.to_owned(),
                bins.server.to_string_lossy().into_owned(),
            ),
            (
                CLI_BIN_VAR.to_owned(),
                bins.cli.to_string_lossy().into_owned(),
            ),
        ]
    }
}

/// What a server is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Standalone,
    /// Cluster master number `n` (1-based).
    ClusterNode(usize),
}

impl Role {
    fn is_cluster(self) -> bool {
        matches!(self, Self::ClusterNode(_))
    }

    /// Used in the temporary directory's name and in messages.
    fn label(self) -> String {
        match self {
            Self::Standalone => "redis-standalone".to_owned(),
            Self::ClusterNode(n) => format!("redis-cluster-node{n}"),
        }
    }
}

/// A server being started: its role, current port and where its [`Process`]
/// sits in the caller's list.
#[derive(Debug)]
struct Pending {
    role: Role,
    port: u16,
    slot: usize,
    attempts: u32,
    up: bool,
}

/// Starts the standalone server and the cluster. Every process is pushed into
/// `processes` as soon as it runs, so that on an error the caller's guard
/// stops those already started.
pub(crate) fn start(bins: &Bins, processes: &mut Vec<Process>) -> Result<Started> {
    let roles: Vec<Role> = std::iter::once(Role::Standalone)
        .chain((1..=CLUSTER_NODES).map(Role::ClusterNode))
        .collect();
    let needs_bus: Vec<bool> = roles.iter().map(|r| r.is_cluster()).collect();
    let ports = free_ports(&needs_bus)?;
    let mut pending = Vec::new();
    for (role, port) in roles.into_iter().zip(ports) {
        let process = spawn(bins, role, port)?;
        pending.push(Pending {
            role,
            port,
            slot: processes.len(),
            attempts: 1,
            up: false,
        });
        processes.push(process);
    }
    wait_until_up(bins, &mut pending, processes)?;

    let standalone = pending[0].port;
    let nodes = &pending[1..];
    let cluster: [u16; CLUSTER_NODES] = std::array::from_fn(|i| nodes[i].port);
    let first_node_dir = processes[nodes[0].slot]
        .dir
        .as_ref()
        .map(|d| d.path().to_path_buf())
        .context("cluster node without a directory")?;
    create_cluster(bins, &cluster, &first_node_dir)?;
    wait_for_cluster_ok(&cluster, nodes, processes)?;
    Ok(Started {
        standalone,
        cluster,
    })
}

/// Finds distinct free loopback ports, one per entry of `needs_bus`; where the
/// entry is true the port plus [`CLUSTER_BUS_OFFSET`] (the cluster bus) is
/// free too. Every port found is held until all are found, so they differ;
/// then all are released for the servers to bind. Never returns 6379.
fn free_ports(needs_bus: &[bool]) -> Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for &bus in needs_bus {
        let mut tries = 0;
        let port = loop {
            tries += 1;
            if tries > 1000 {
                bail!("found no free port on 127.0.0.1 (with its cluster bus port free: {bus})");
            }
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .context("binding 127.0.0.1:0 to find a free port")?;
            let port = listener.local_addr()?.port();
            if port == DEFAULT_PORT {
                continue;
            }
            if bus {
                let Some(bus_port) = port.checked_add(CLUSTER_BUS_OFFSET) else {
                    continue;
                };
                let Ok(bus_listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, bus_port)) else {
                    continue;
                };
                held.push(bus_listener);
            }
            held.push(listener);
            break port;
        };
        ports.push(port);
    }
    Ok(ports)
}

/// Command-line arguments of `redis-server` for one test server.
fn server_args(port: u16, dir: &Path, cluster: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("--dir".into());
    args.push(dir.into());
    if cluster {
        for arg in [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ] {
            args.push(arg.into());
        }
    }
    args
}

/// Spawns one server in a fresh directory, its output going to [`LOG_FILE`].
fn spawn(bins: &Bins, role: Role, port: u16) -> Result<Process> {
    let dir = TempDir::new(&role.label())?;
    let log_path = dir.path().join(LOG_FILE);
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(&bins.server);
    cmd.args(server_args(port, dir.path(), role.is_cluster()))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    println!("    {}", display(&cmd));
    let child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", display(&cmd)))?;
    Ok(Process {
        name: format!("{} (port {port})", role.label()),
        child,
        dir: Some(dir),
    })
}

/// The last lines of a server's log, for error messages.
fn log_tail(process: &Process) -> String {
    let Some(dir) = &process.dir else {
        return String::new();
    };
    tail(&dir.path().join(LOG_FILE))
}

fn tail(path: &Path) -> String {
    const LINES: usize = 20;
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LINES);
            format!(
                "--- last lines of {} ---\n{}",
                path.display(),
                lines[start..].join("\n")
            )
        }
        Err(err) => format!("(could not read {}: {err})", path.display()),
    }
}

/// Whether the server on `port` answers `PING` and is the process `pid` (and
/// not some other program that took the port first).
fn is_up(port: u16, pid: u32) -> bool {
    let pong = client::request(port, "PING", REQUEST_TIMEOUT).is_ok_and(|r| r == "PONG");
    pong && client::request(port, "INFO server", REQUEST_TIMEOUT)
        .is_ok_and(|info| client::info_field(&info, "process_id") == Some(pid.to_string().as_str()))
}

/// Polls every pending server until all answer `PING`. A server that exits
/// because its port was taken meanwhile is respawned on a new port.
fn wait_until_up(bins: &Bins, pending: &mut [Pending], processes: &mut [Process]) -> Result<()> {
    let deadline = Instant::now() + PING_TIMEOUT;
    loop {
        for server in pending.iter_mut().filter(|s| !s.up) {
            let process = &mut processes[server.slot];
            let Some(status) = process.child.try_wait()? else {
                server.up = is_up(server.port, process.child.id());
                continue;
            };
            let log = log_tail(process);
            if log.contains("Address already in use") && server.attempts < MAX_PORT_ATTEMPTS {
                let port = free_ports(&[server.role.is_cluster()])?[0];
                println!(
                    "xtask: port {} was taken, starting {} on port {port} instead",
                    server.port,
                    server.role.label()
                );
                server.port = port;
                server.attempts += 1;
                // Replacing the old process drops it, which removes its directory.
                processes[server.slot] = spawn(bins, server.role, port)?;
            } else {
                bail!(
                    "{} exited during startup ({status})\n{log}",
                    processes[server.slot].name
                );
            }
        }
        if pending.iter().all(|s| s.up) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = pending
                .iter()
                .filter(|s| !s.up)
                .map(|s| {
                    format!(
                        "{}\n{}",
                        processes[s.slot].name,
                        log_tail(&processes[s.slot])
                    )
                })
                .collect();
            bail!(
                "Redis did not answer PING within {}s:\n{}",
                PING_TIMEOUT.as_secs(),
                logs.join("\n")
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Runs `redis-cli --cluster create` (no replicas), logging to `log_dir`.
fn create_cluster(bins: &Bins, ports: &[u16], log_dir: &Path) -> Result<()> {
    let log_path = log_dir.join("cluster-create.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(&bins.cli);
    cmd.args(["--cluster", "create"])
        .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let shown = display(&cmd);
    println!("    {shown}");
    // A `Process`, so that it is killed if we give up on it.
    let mut create = Process {
        name: "redis-cli --cluster create".to_owned(),
        child: cmd
            .spawn()
            .with_context(|| format!("could not start `{shown}`"))?,
        dir: None,
    };
    let deadline = Instant::now() + CREATE_TIMEOUT;
    loop {
        if let Some(status) = create.child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("`{shown}` failed ({status})\n{}", tail(&log_path));
        }
        if Instant::now() > deadline {
            bail!(
                "`{shown}` did not finish within {}s\n{}",
                CREATE_TIMEOUT.as_secs(),
                tail(&log_path)
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `CLUSTER INFO` on every node until all report `cluster_state:ok`.
fn wait_for_cluster_ok(ports: &[u16], nodes: &[Pending], processes: &[Process]) -> Result<()> {
    let deadline = Instant::now() + CLUSTER_OK_TIMEOUT;
    loop {
        let infos: Vec<(u16, String)> = ports
            .iter()
            .map(|&port| {
                let info = client::request(port, "CLUSTER INFO", REQUEST_TIMEOUT)
                    .unwrap_or_else(|err| format!("(no answer: {err})"));
                (port, info)
            })
            .collect();
        if infos.iter().all(|(_, info)| client::cluster_state_ok(info)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let states: Vec<String> = infos
                .iter()
                .map(|(port, info)| format!("port {port}:\n{}", info.trim_end()))
                .collect();
            let logs: Vec<String> = nodes.iter().map(|n| log_tail(&processes[n.slot])).collect();
            bail!(
                "the Redis cluster did not reach cluster_state:ok within {}s\n{}\n{}",
                CLUSTER_OK_TIMEOUT.as_secs(),
                states.join("\n"),
                logs.join("\n")
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(&[false, true, true, true]).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        assert!(!ports.contains(&DEFAULT_PORT));
        // Released: each can be bound again, the cluster ones with their bus port.
        let _held: Vec<TcpListener> = ports
            .iter()
            .map(|&p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("port is free"))
            .collect();
        for &port in &ports[1..] {
            let bus = port.checked_add(CLUSTER_BUS_OFFSET).expect("bus port fits");
            TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).expect("bus port is free");
        }
    }

    #[test]
    fn env_vars() {
        let bins = Bins {
            server: "/usr/bin/redis-server".into(),
            cli: "/usr/bin/redis-cli".into(),
        };
        let started = Started {
            standalone: 40001,
            cluster: [40002, 40003, 40004],
        };
        assert_eq!(
            started.env(&bins),
            [
                ("RATELIMIT_REDIS_URL", "redis://127.0.0.1:40001"),
                (
                    "RATELIMIT_REDIS_CLUSTER_URLS",
                    "redis://127.0.0.1:40002,redis://127.0.0.1:40003,redis://127.0.0.1:40004"
                ),
                ("RATELIMIT_REDIS_SERVER_BIN", "/usr/bin/redis-server"),
                ("RATELIMIT_REDIS_CLI_BIN", "/usr/bin/redis-cli"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn server_arguments() {
        let args = |cluster| -> Vec<String> {
            server_args(40001, Path::new("/tmp/d"), cluster)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        let standalone = args(false).join(" ");
        assert_eq!(
            standalone,
            "--port 40001 --bind 127.0.0.1 --save  --appendonly no --daemonize no --dir /tmp/d"
        );
        let cluster = args(true).join(" ");
        assert!(cluster.starts_with(&standalone));
        assert!(cluster.ends_with(
            "--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000"
        ));
    }

    /// Creates an executable (or not) file `name` in `dir`.
    fn touch(dir: &Path, name: &str, executable: bool) {
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o755 } else { 0o644 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    #[test]
    fn install_is_needed_unless_both_binaries_are_on_path() {
        let root = TempDir::new("test-path").unwrap();
        let (a, b, c) = (
            root.path().join("a"),
            root.path().join("b"),
            root.path().join("c"),
        );
        for dir in [&a, &b, &c] {
            fs::create_dir(dir).unwrap();
        }
        touch(&a, "redis-server", true);
        touch(&b, "redis-cli", true);
        touch(&c, "redis-server", false);
        touch(&c, "redis-cli", false);
        let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap();
        let cwd = Path::new("/nowhere");

        // Missing PATH, empty PATH, or only one of the two: install.
        assert_eq!(locate(None, cwd), None);
        assert_eq!(locate(Some(OsStr::new("")), cwd), None);
        assert_eq!(locate(Some(&path(&[&a])), cwd), None);
        assert_eq!(locate(Some(&path(&[&b])), cwd), None);
        // Not executable: install.
        assert_eq!(locate(Some(&path(&[&c])), cwd), None);
        // Both, from different directories, skipping non-executables.
        let expected = Some(Bins {
            server: a.join("redis-server"),
            cli: b.join("redis-cli"),
        });
        assert_eq!(locate(Some(&path(&[&c, &b, &a])), cwd), expected);
        // Relative entries resolve against `cwd`, so the paths stay absolute.
        assert_eq!(
            locate(Some(OsStr::new("a:b")), root.path()),
            expected,
            "relative PATH entries"
        );
    }

    /// A server whose port turns out to be taken is restarted on another one.
    /// Skipped when Redis is not installed.
    #[test]
    fn taken_port_is_replaced() {
        let cwd = std::env::current_dir().unwrap();
        let Some(bins) = locate(std::env::var_os("PATH").as_deref(), &cwd) else {
            eprintln!("redis-server not on PATH; skipping");
            return;
        };
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = squatter.local_addr().unwrap().port();
        let mut processes = vec![spawn(&bins, Role::Standalone, taken).unwrap()];
        let mut pending = [Pending {
            role: Role::Standalone,
            port: taken,
            slot: 0,
            attempts: 1,
            up: false,
        }];
        wait_until_up(&bins, &mut pending, &mut processes).unwrap();
        assert_ne!(pending[0].port, taken);
        assert_eq!(pending[0].attempts, 2);
        assert_eq!(
            client::request(pending[0].port, "PING", REQUEST_TIMEOUT).unwrap(),
            "PONG"
        );
    }

    /// Starts one real standalone server and checks that dropping its
    /// `Process` stops it. Skipped when Redis is not installed.
    #[test]
    fn standalone_server_starts_and_stops() {
        let cwd = std::env::current_dir().unwrap();
        let Some(bins) = locate(std::env::var_os("PATH").as_deref(), &cwd) else {
            eprintln!("redis-server not on PATH; skipping");
            return;
        };
        let port = free_ports(&[false]).unwrap()[0];
        let mut processes = vec![spawn(&bins, Role::Standalone, port).unwrap()];
        let mut pending = [Pending {
            role: Role::Standalone,
            port,
            slot: 0,
            attempts: 1,
            up: false,
        }];
        wait_until_up(&bins, &mut pending, &mut processes).unwrap();
        let port = pending[0].port;
        let dir = processes[0].dir.as_ref().unwrap().path().to_path_buf();
        assert!(dir.join(LOG_FILE).is_file());
        drop(processes);
        assert!(client::request(port, "PING", REQUEST_TIMEOUT).is_err());
        assert!(!dir.exists());
    }
}
