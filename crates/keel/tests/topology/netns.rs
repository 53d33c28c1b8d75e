//! The wire: Linux network namespaces as hosts, one bridge in a "switch" namespace as the
//! L2 segment between them, veth pairs as the cables. Owns the skip rule (no `ip netns`,
//! no binary → skip, or fail under `CI=true`), the unique names that let tests of one
//! binary — and a dev run next to a CI run — build their topologies at once, and the
//! teardown that leaves no namespace and no process behind, even after a panic.
//!
//! Layout of one topology (every test has its own):
//! ```text
//!   keeltopo-<pid>-<n>-switch   br0 ── p1 … pN (one port per host)
//!   keeltopo-<pid>-<n>-<role>   eth0 10.200.0.x/24, lo up
//!   keeltopo-<pid>-<n>-clients  eth0 10.200.0.100/24 + 1,100 client addresses 10.200.1.1…
//! ```
//! The client addresses are /32s on the clients' eth0, and every server host routes
//! 10.200.0.0/16 via 10.200.0.100. Routed rather than on-link on purpose: the kernel's
//! ARP table is one table for all namespaces (`gc_thresh3`, 1,024 entries by default, is
//! not per namespace), so 1,000 on-link client addresses per test would overflow it when
//! two tests run at once and drop packets. Routed, each server knows one neighbour.

use std::ffi::OsStr;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Every namespace this harness makes starts with this, then the test process's pid.
const PREFIX: &str = "keeltopo";

/// The address the clients' namespace has on the segment: the servers' route back to
/// the client addresses.
pub const CLIENTS_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);

/// Whether this run is CI's, where a missing prerequisite is a failure, not a skip.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Finds `name` on PATH, or among Debian's PostgreSQL server binaries
/// (`/usr/lib/postgresql/<version>/bin`, newest first), which are not on PATH there.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        versions.reverse();
        dirs.extend(versions);
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Whether a topology can be built here with `binaries` available. When not, prints why
/// and returns false (the test then returns: a skip), except under `CI=true`, where it
/// panics: CI must run every scenario.
pub fn available(binaries: &[&str]) -> bool {
    let mut missing: Vec<String> = binaries
        .iter()
        .filter(|b| find_binary(b).is_none())
        .map(|b| format!("{b} is not installed"))
        .collect();
    if missing.is_empty() {
        // A probe namespace: being root is not enough inside some containers.
        let probe = format!("{PREFIX}-{}-probe{}", std::process::id(), next_id());
        match Command::new("ip").args(["netns", "add", &probe]).output() {
            Ok(out) if out.status.success() => {
                let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            }
            Ok(out) => missing.push(format!(
                "`ip netns add` is not permitted: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => missing.push(format!("`ip` cannot run: {e}")),
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = missing.join("; ");
    assert!(
        !ci(),
        "topology test cannot run and CI=true: {why} (needs root, iproute2, redis-server, postgresql)"
    );
    eprintln!("SKIPPED: {why}");
    false
}

fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `ip ARGS…`, panicking with its stderr when it fails: a topology that cannot be
/// built is a failed test.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs many `ip` commands in one process (`ip -n NS -batch -`): 1,100 addresses take
/// milliseconds this way and seconds as 1,100 processes.
fn ip_batch(ns: &str, lines: &str) {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ip -batch");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("feed ip -batch");
    let out = child.wait_with_output().expect("ip -batch");
    assert!(
        out.status.success(),
        "ip -n {ns} -batch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pids of the processes in namespace `ns` (`ip netns pids`).
fn pids_in(ns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs whatever still runs in `ns`, then deletes it. The daemons were stopped by
/// their own pids before this; this sweep is for what they left (postgres's children).
fn delete_namespace(ns: &str) {
    for pid in pids_in(ns) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}

/// Namespaces left by a run that was itself SIGKILLed (a CI timeout): this harness's
/// prefix and a pid that no longer runs. Only such ones are touched, so a dev run and a
/// CI run on one machine never delete each other's.
fn reap_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists() {
                eprintln!("topology: removing stale namespace {name} of dead run {pid}");
                delete_namespace(name);
            }
        }
    });
}

/// One host of the segment: its namespace's name and its address.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name (`ip netns exec NAME …`).
    pub ns: String,
    /// Its address on the segment.
    pub addr: Ipv4Addr,
}

impl Host {
    /// `ip netns exec NS program`: `ip` execs the program, so the child's pid is the
    /// program's pid.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }
}

/// The segment: a switch namespace with a bridge, and the host namespaces cabled to it.
/// Dropping it deletes every namespace (after killing what still runs in them).
#[derive(Debug)]
pub struct Lan {
    prefix: String,
    switch: String,
    /// Every namespace made, switch last, deleted in this order.
    namespaces: Vec<String>,
}

impl Lan {
    /// An empty segment: the switch namespace and its bridge.
    pub fn new() -> Lan {
        reap_stale();
        let prefix = format!("{PREFIX}-{}-{}", std::process::id(), next_id());
        let switch = format!("{prefix}-switch");
        let lan = Lan {
            prefix,
            switch: switch.clone(),
            namespaces: Vec::new(),
        };
        ip(&["netns", "add", &switch]);
        ip_batch(
            &switch,
            "link set lo up\nlink add br0 type bridge\nlink set br0 up\n",
        );
        lan
    }

    /// Makes namespace `<prefix>-<role>` with `lo` up and `eth0` cabled to the switch.
    fn cable(&mut self, role: &str) -> String {
        let ns = format!("{}-{role}", self.prefix);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        // Port names only need to be unique inside the switch namespace: p1, p2, …
        let port = format!("p{}", self.namespaces.len());
        ip(&[
            "-n",
            &self.switch,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &port,
            "master",
            "br0",
            "up",
        ]);
        ns
    }

    /// A server host at `addr` (10.200.0.x), with the route back to the client addresses.
    pub fn host(&mut self, role: &str, addr: Ipv4Addr) -> Host {
        let ns = self.cable(role);
        ip_batch(
            &ns,
            &format!(
                "link set lo up\naddr add {addr}/24 dev eth0\nlink set eth0 up\n\
                 route add 10.200.0.0/16 via {CLIENTS_GATEWAY}\n"
            ),
        );
        Host { ns, addr }
    }

    /// The clients' host: one namespace with `count` client addresses besides its own.
    pub fn clients(&mut self, count: usize) -> (Host, Vec<Ipv4Addr>) {
        let ns = self.cable("clients");
        let addrs: Vec<Ipv4Addr> = (0..count).map(client_address).collect();
        let mut batch = format!("link set lo up\naddr add {CLIENTS_GATEWAY}/24 dev eth0\n");
        for a in &addrs {
            batch.push_str(&format!("addr add {a}/32 dev eth0\n"));
        }
        batch.push_str("link set eth0 up\n");
        ip_batch(&ns, &batch);
        (
            Host {
                ns,
                addr: CLIENTS_GATEWAY,
            },
            addrs,
        )
    }
}

/// Client address `i`: 10.200.1.1, …, 10.200.1.250, 10.200.2.1, … (no .0 or .255).
fn client_address(i: usize) -> Ipv4Addr {
    let third = u8::try_from(1 + i / 250).expect("at most 63,750 client addresses");
    let fourth = u8::try_from(1 + i % 250).expect("below 251");
    Ipv4Addr::new(10, 200, third, fourth)
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().chain(std::iter::once(&self.switch)) {
            delete_namespace(ns);
        }
    }
}
