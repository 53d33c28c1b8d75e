//! The hosts and what runs on them: a daemon started in its namespace and stopped by its
//! pid (SIGTERM, then SIGKILL after a bound), redis-server, a PostgreSQL of the test's own
//! (initdb into a temporary directory, run as the `postgres` user), `keel serve`,
//! `keel edge` and `keel mock-upstream`, and [`Topology`], which builds the shipped
//! topology from them and takes it all down again in `Drop`, panicking test or not.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::clients::{self, Clients, Req};
use crate::netns::{self, Host, Lan};

/// Where each role lives. Fixed per topology: every test has its own namespaces.
pub const EDGE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// The edge's port.
pub const EDGE_PORT: u16 = 8080;
/// `keel serve` number `i` is at 10.200.0.(11 + i).
pub const WEB_BASE: u8 = 11;
/// Every `keel serve`'s port.
pub const WEB_PORT: u16 = 8000;
/// redis-server's host.
pub const REDIS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 20);
/// PostgreSQL's host.
pub const PG_ADDR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 30);
/// The outside API that `/sync/test` calls (`keel mock-upstream`).
pub const API_ADDR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 40);
/// Client addresses made on the clients' host: 1,000 for the stream scenarios and a
/// hundred more for the roles of the other scenarios.
pub const CLIENT_ADDRESSES: usize = 1_100;

/// Output kept per daemon, to explain a failed start or a failed assertion.
const OUTPUT_KEPT: usize = 64 * 1024;

/// A process started in a namespace with `ip netns exec`, whose pid is the program's own
/// (ip execs it). Its stdout and stderr are drained all along into one buffer, so a chatty
/// daemon never blocks on a full pipe. Dropping it stops it.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    /// The signal that asks it to stop cleanly (SIGTERM; SIGINT for postgres: fast shutdown).
    stop_signal: Signal,
}

impl Daemon {
    /// Starts `cmd`; `name` is for messages.
    pub fn spawn(name: &str, mut cmd: Command, stop_signal: Signal) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut pipe in pipes {
            let kept = output.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                    if kept.len() < OUTPUT_KEPT {
                        kept.extend_from_slice(&chunk[..n]);
                    }
                }
            });
        }
        Daemon {
            name: name.to_owned(),
            child,
            output,
            stop_signal,
        }
    }

    /// What it printed so far (both streams, at most 64 KiB).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Its pid.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    /// Sends `signal` to it (by pid); a process that already exited is not an error.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(self.pid(), signal);
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with its output when it has exited: called while waiting for readiness.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            std::thread::sleep(Duration::from_millis(100)); // let the pipes drain
            panic!(
                "{} exited ({status}) before it was ready; its output:\n{}",
                self.name,
                self.output()
            );
        }
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asks it to stop, waits up to `grace`, then SIGKILLs it. Returns how it exited.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        self.signal(self.stop_signal);
        if let Some(status) = self.wait(grace) {
            return Some(status);
        }
        eprintln!(
            "topology: {} ignored {:?} for {grace:?}; SIGKILL",
            self.name, self.stop_signal
        );
        self.signal(Signal::SIGKILL);
        self.wait(Duration::from_secs(5))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Polls `ready` every 50 ms until it holds, `daemon` dies (panic with its output) or
/// `limit` passes (panic naming `what`).
pub fn wait_ready(
    daemon: &mut Daemon,
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        daemon.assert_running();
        if ready() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} was not ready within {limit:?}; its output:\n{}",
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` to completion within `limit` (killing it after), feeding `stdin`; returns
/// (success, stdout, stderr).
pub fn run(mut cmd: Command, stdin: &str, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_owned();
    // Written from a thread: a child that does not read stdin must not block us.
    std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Some(status) => (status.success(), out, err),
        None => (false, out, format!("{err}\n(killed after {limit:?})")),
    }
}

/// redis-server on its own host.
#[derive(Debug)]
pub struct Redis {
    host: Host,
    /// The running server; `None` between a kill and a restart.
    pub daemon: Option<Daemon>,
}

impl Redis {
    /// Starts redis-server on `host`, port 6379, and waits for PONG.
    pub fn start(host: Host) -> Redis {
        let mut redis = Redis { host, daemon: None };
        redis.restart();
        redis
    }

    /// (Re)starts it on the same address: no persistence, so it comes back empty, as a
    /// cache-only Redis does.
    pub fn restart(&mut self) {
        let addr = self.host.addr.to_string();
        let mut cmd = self.host.command("redis-server");
        cmd.args(["--port", "6379", "--bind", &addr, "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"]);
        let mut daemon = Daemon::spawn("redis-server", cmd, Signal::SIGTERM);
        wait_ready(&mut daemon, "redis-server", Duration::from_secs(10), || {
            self.cli(&["ping"]).is_some_and(|r| r.trim() == "PONG")
        });
        self.daemon = Some(daemon);
    }

    /// The URL the app servers use.
    pub fn url(&self) -> String {
        format!("redis://{}:6379/", self.host.addr)
    }

    /// `redis-cli -h ADDR ARGS…` run on the Redis host; its stdout, or `None` on failure.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = self.host.command("redis-cli");
        cmd.args(["-h", &self.host.addr.to_string()]).args(args);
        let (ok, out, _) = run(cmd, "", Duration::from_secs(5));
        (ok && !out.starts_with("Could not connect")).then_some(out)
    }

    /// `PUBLISH demo_stream MESSAGE` with redis-cli from the Redis host, as an operator
    /// would; returns how many subscribers Redis says got it (one per app server).
    pub fn publish(&self, message: &str) -> usize {
        let out = self
            .cli(&["publish", "demo_stream", message])
            .expect("redis-cli publish");
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("redis-cli publish said {out:?}"))
    }

    /// Waits until `n` connections are subscribed to `demo_stream` (each app server holds
    /// one); returns how long that took.
    pub fn wait_subscribers(&self, n: usize, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let out = self
                .cli(&["pubsub", "numsub", "demo_stream"])
                .unwrap_or_default();
            let count = out
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if count >= n {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{count} of {n} app servers subscribed to demo_stream after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A PostgreSQL cluster of the test's own: Debian's `initdb` into a temporary directory,
/// the postmaster on its own host. Both run as the `postgres` system user (postgres
/// refuses root) through `setpriv`, which execs (unlike `runuser`, which forks), so the
/// pid we hold is the postmaster's.
#[derive(Debug)]
pub struct Postgres {
    host: Host,
    dir: tempfile::TempDir,
    /// The postmaster; `None` while stopped.
    pub daemon: Option<Daemon>,
}

/// `setpriv` arguments that run a program as the `postgres` user.
const AS_POSTGRES: [&str; 4] = [
    "--reuid=postgres",
    "--regid=postgres",
    "--init-groups",
    "--reset-env",
];

impl Postgres {
    /// initdb, allow the segment in pg_hba.conf, start, wait until it accepts.
    pub fn start(host: Host) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("keel-topology-pg")
            .tempdir()
            .expect("temp dir");
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(chown.success(), "chown of the PostgreSQL directory failed");
        let initdb = netns::find_binary("initdb").expect("initdb");
        let mut cmd = Command::new("setpriv");
        cmd.args(AS_POSTGRES)
            .arg(initdb)
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C.UTF-8"]);
        let (ok, out, err) = run(cmd, "", Duration::from_secs(60));
        assert!(ok, "initdb failed:\n{out}\n{err}");
        let mut hba = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("data/pg_hba.conf"))
            .expect("pg_hba.conf");
        // The whole test network, without passwords: only the app servers reach it.
        writeln!(hba, "host all all 10.200.0.0/16 trust").expect("write pg_hba.conf");
        let mut pg = Postgres {
            host,
            dir,
            daemon: None,
        };
        pg.restart();
        pg
    }

    /// Starts the postmaster on the existing data directory and waits until it accepts
    /// connections. Durability is off: this database lives for one test.
    pub fn restart(&mut self) {
        let postgres = netns::find_binary("postgres").expect("postgres");
        let mut cmd = self.host.command("setpriv");
        cmd.args(AS_POSTGRES)
            .arg(postgres)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-c")
            .arg(format!("listen_addresses={}", self.host.addr))
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
        let mut daemon = Daemon::spawn("postgres", cmd, Signal::SIGINT);
        let isready = netns::find_binary("pg_isready").expect("pg_isready");
        let addr = self.host.addr.to_string();
        let host = self.host.clone();
        wait_ready(&mut daemon, "postgres", Duration::from_secs(30), || {
            let mut cmd = host.command(&isready);
            cmd.args(["-h", &addr, "-p", "5432", "-U", "postgres", "-t", "1"]);
            run(cmd, "", Duration::from_secs(3)).0
        });
        self.daemon = Some(daemon);
    }

    /// Fast shutdown (SIGINT to the postmaster: sessions are cut, new connections are
    /// refused) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let status = daemon.stop(Duration::from_secs(10));
            assert!(status.is_some(), "postgres did not stop");
        }
    }

    /// The URL the app servers use.
    pub fn url(&self) -> String {
        format!("postgres://postgres@{}:5432/postgres", self.host.addr)
    }

    /// One SQL statement through psql on the database host; tuples only, unaligned.
    pub fn query(&self, sql: &str) -> String {
        let psql = netns::find_binary("psql").expect("psql");
        let mut cmd = self.host.command(psql);
        cmd.args([
            "-h",
            &self.host.addr.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let (ok, out, err) = run(cmd, "", Duration::from_secs(10));
        assert!(ok, "psql {sql:?} failed: {err}");
        out
    }
}

/// A fresh `keel` command: no `KEEL_*` variable of the developer's, logs at warn.
pub fn keel_in(host: &Host, cwd: &Path) -> Command {
    let mut cmd = host.command(env!("CARGO_BIN_EXE_keel"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KEEL_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(cwd).env("KEEL_LOG_LEVEL", "warn");
    cmd
}

/// Whether the binary under test has `flag` in `keel SUBCOMMAND --help`: the features
/// issue 15 adds land while these tests are written, and a topology built before them
/// still runs the scenarios that do not depend on them.
pub fn has_flag(subcommand: &str, flag: &str) -> bool {
    static HELP: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    let cache = HELP.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let help = match cache.iter().find(|(s, _)| s == subcommand) {
        Some((_, help)) => help.clone(),
        None => {
            let out = Command::new(env!("CARGO_BIN_EXE_keel"))
                .args([subcommand, "--help"])
                .output()
                .expect("keel --help");
            let help = String::from_utf8_lossy(&out.stdout).into_owned();
            cache.push((subcommand.to_owned(), help.clone()));
            help
        }
    };
    help.contains(flag)
}

/// How the app servers decide whom to believe about the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// `--forwarded-allow-ips <edge>` always (the scenario is about it).
    Edge,
    /// `--forwarded-allow-ips <edge>` when the binary has the flag (the shipped topology);
    /// otherwise keel's default.
    EdgeIfSupported,
}

/// What a scenario needs of the topology.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Number of `keel serve` instances (1 or 2).
    pub serves: usize,
    /// PostgreSQL shared by the serves; otherwise each has its own SQLite file.
    pub postgres: bool,
    /// A `keel mock-upstream` host answering after this latency, for `/sync/test`.
    pub api_latency: Option<&'static str>,
    /// Extra `keel edge` arguments (e.g. `--limit-conn 2`).
    pub edge_args: Vec<&'static str>,
    /// Extra `keel edge` environment (e.g. `KEEL_CLIENT_MAX_BODY_SIZE=0`).
    pub edge_env: Vec<(&'static str, &'static str)>,
    /// `--forwarded-allow-ips` on the serves.
    pub forwarded: Forwarded,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            serves: 2,
            postgres: false,
            api_latency: None,
            edge_args: Vec::new(),
            edge_env: Vec::new(),
            forwarded: Forwarded::EdgeIfSupported,
        }
    }
}

/// The shipped topology as separate hosts. Field order is drop order: the processes are
/// stopped (by pid) first, the namespaces deleted last.
#[derive(Debug)]
pub struct Topology {
    /// `keel edge` (10.200.0.2:8080).
    pub edge: Option<Daemon>,
    /// `keel serve` instances; `None` once a scenario killed one.
    pub serves: Vec<Option<Daemon>>,
    /// `keel mock-upstream` (10.200.0.40:9000), when the spec asks.
    pub api: Option<Daemon>,
    /// redis-server (10.200.0.20:6379).
    pub redis: Redis,
    /// PostgreSQL (10.200.0.30:5432), when the spec asks.
    pub postgres: Option<Postgres>,
    /// The clients' namespace and its addresses.
    pub clients: Clients,
    /// The hosts of the edge and the serves.
    pub edge_host: Host,
    /// One per serve.
    pub web_hosts: Vec<Host>,
    spec: Spec,
    /// Working directories (keel writes keel-data/ under its cwd).
    dirs: Vec<tempfile::TempDir>,
    /// Held for its `Drop`: the namespaces go last.
    _lan: Lan,
}

impl Topology {
    /// Builds it all and waits until every part answers, or returns `None` (skip) when
    /// this machine cannot (see [`netns::available`]).
    pub fn build(spec: Spec) -> Option<Topology> {
        let mut needs = vec!["ip", "setpriv", "redis-server", "redis-cli"];
        if spec.postgres {
            needs.extend(["initdb", "postgres", "pg_isready", "psql"]);
        }
        if !netns::available(&needs) {
            return None;
        }
        let started = Instant::now();
        let mut lan = Lan::new();
        let (clients_host, addrs) = lan.clients(CLIENT_ADDRESSES);
        let edge_host = lan.host("edge", EDGE_ADDR);
        let web_hosts: Vec<Host> = (0..spec.serves)
            .map(|i| {
                let last = WEB_BASE + u8::try_from(i).expect("few serves");
                lan.host(&format!("web{}", i + 1), Ipv4Addr::new(10, 200, 0, last))
            })
            .collect();
        let redis_host = lan.host("redis", REDIS_ADDR);
        let pg_host = spec.postgres.then(|| lan.host("postgres", PG_ADDR));
        let api_host = spec.api_latency.map(|_| lan.host("api", API_ADDR));
        let clients = Clients::new(clients_host, addrs);

        // From here on a panic drops what was started: fields are filled as we go.
        let redis = Redis::start(redis_host);
        let postgres = pg_host.map(Postgres::start);
        let mut topology = Topology {
            edge: None,
            serves: Vec::new(),
            api: None,
            redis,
            postgres,
            clients,
            edge_host,
            web_hosts,
            spec,
            dirs: Vec::new(),
            _lan: lan,
        };
        if let (Some(latency), Some(host)) = (topology.spec.api_latency, api_host) {
            let dir = topology.workdir();
            let mut cmd = keel_in(&host, &dir);
            cmd.args(["mock-upstream", "--listen", &format!("{API_ADDR}:9000")])
                .args(["--latency", latency]);
            let mut api = Daemon::spawn("keel mock-upstream", cmd, Signal::SIGTERM);
            let target = SocketAddr::V4(SocketAddrV4::new(API_ADDR, 9000));
            let clients = topology.clients.clone();
            wait_ready(
                &mut api,
                "keel mock-upstream",
                Duration::from_secs(20),
                || clients.tcp_open(target),
            );
            topology.api = Some(api);
        }
        for i in 0..topology.spec.serves {
            topology.serves.push(None);
            topology.start_serve(i);
        }
        topology.start_edge();
        eprintln!(
            "topology: built {} serve(s){} in {:.1?}",
            topology.spec.serves,
            if topology.spec.postgres {
                " + postgres"
            } else {
                ""
            },
            started.elapsed()
        );
        Some(topology)
    }

    fn workdir(&mut self) -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix("keel-topology")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().to_owned();
        self.dirs.push(dir);
        path
    }

    /// The edge's address, as clients reach it.
    pub fn edge_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(EDGE_ADDR, EDGE_PORT))
    }

    /// Serve `i`'s address.
    pub fn web_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.web_hosts[i].addr, WEB_PORT))
    }

    /// The site's database URL for serve `i`: the shared PostgreSQL, or its own SQLite.
    fn database_url(&self, dir: &Path) -> String {
        match &self.postgres {
            Some(pg) => pg.url(),
            None => format!("sqlite://{}", dir.join("keel.db").display()),
        }
    }

    /// Starts `keel serve` number `i` on its host and waits for `/healthz`.
    pub fn start_serve(&mut self, i: usize) {
        let dir = self.workdir();
        let host = self.web_hosts[i].clone();
        let mut cmd = keel_in(&host, &dir);
        cmd.arg("serve")
            .args(["--bind", &self.web_addr(i).to_string()])
            .args(["--redis-url", &self.redis.url()])
            .args(["--database-url", &self.database_url(&dir)])
            .args(["--workers", "2", "--threads", "4"]);
        if self.spec.forwarded == Forwarded::Edge || has_flag("serve", "--forwarded-allow-ips") {
            cmd.args(["--forwarded-allow-ips", &EDGE_ADDR.to_string()]);
        }
        if self.api.is_some() {
            cmd.args(["--upstream-url", &format!("http://{API_ADDR}:9000/todos/1")]);
        }
        let name = format!("keel serve web{}", i + 1);
        let mut serve = Daemon::spawn(&name, cmd, Signal::SIGTERM);
        let target = self.web_addr(i);
        let clients = self.clients.clone();
        wait_ready(&mut serve, &name, Duration::from_secs(60), || {
            clients.get_status(target, "/healthz") == Some(200)
        });
        self.serves[i] = Some(serve);
    }

    /// Starts `keel edge` in front of every serve and waits for `/healthz` through it.
    pub fn start_edge(&mut self) {
        let dir = self.workdir();
        let mut cmd = keel_in(&self.edge_host, &dir);
        cmd.arg("edge")
            .args(["--listen", &self.edge_addr().to_string()])
            .args([
                "--rate",
                "off",
                "--health-check",
                "/healthz",
                "--no-access-log",
            ]);
        for i in 0..self.spec.serves {
            cmd.args(["--upstream", &self.web_addr(i).to_string()]);
        }
        cmd.args(&self.spec.edge_args);
        for (k, v) in &self.spec.edge_env {
            cmd.env(k, v);
        }
        let mut edge = Daemon::spawn("keel edge", cmd, Signal::SIGTERM);
        let target = self.edge_addr();
        let clients = self.clients.clone();
        wait_ready(&mut edge, "keel edge", Duration::from_secs(30), || {
            clients.get_status(target, "/healthz") == Some(200)
        });
        self.edge = Some(edge);
    }

    /// Serve `i`, still running.
    pub fn serve(&mut self, i: usize) -> &mut Daemon {
        self.serves[i].as_mut().expect("that serve was stopped")
    }

    /// `keel createsuperuser` against the site's database, run on the first web host
    /// (the database is only reachable from the segment).
    pub fn create_user(&mut self, username: &str, password: &str) {
        let dir = self.workdir();
        let host = self.web_hosts[0].clone();
        let mut cmd = keel_in(&host, &dir);
        cmd.args([
            "createsuperuser",
            "--database-url",
            &self.database_url(&dir),
        ])
        .args([
            "--username",
            username,
            "--email",
            &format!("{username}@example.com"),
        ])
        .args(["--password-stdin", "--no-input"]);
        let (ok, out, err) = run(cmd, &format!("{password}\n"), Duration::from_secs(30));
        assert!(ok, "keel createsuperuser failed:\n{out}\n{err}");
    }

    /// A GET through the edge from client address `src`, as a sanity probe.
    pub fn get_via_edge(&self, src: Ipv4Addr, path: &str) -> clients::Reply {
        let dst = self.edge_addr();
        let req = Req::get(path);
        self.clients
            .run(move || async move { clients::exchange(src, dst, &req, Duration::from_secs(10)).await })
            .unwrap_or_else(|e| panic!("GET {path} via the edge: {e}"))
    }
}
