//! Helpers shared by the binary's test files: the `keel` command with a clean
//! environment, a started process that is always stopped, a free port, a redis-server of
//! the test's own.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub mod webdriver;

/// The `keel` binary under test, run from the temp dir with no `KEEL_*` variables, so a
/// developer's keel.toml or environment cannot change what a test sees. The site's
/// database is a private in-memory one unless the test sets `KEEL_DATABASE_URL`: tests
/// running at once never share a SQLite file.
pub fn keel() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.current_dir(std::env::temp_dir());
    for (name, _) in std::env::vars() {
        if name.starts_with("KEEL_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("KEEL_DATABASE_URL", "sqlite::memory:");
    cmd
}

/// Runs `cmd`, asserts that keel refused to run, and returns what it said on stderr.
pub fn refused(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap();
    assert!(
        !output.status.success(),
        "keel was expected to refuse: {cmd:?}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A keel process that is killed if the test ends before stopping it. Its stdout and
/// stderr are read all along, so a chatty process can never block on a full pipe.
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Enough of stderr to explain a failed start.
const STDERR_KEPT: usize = 64 * 1024;

impl Process {
    pub fn start(mut cmd: Command) -> Process {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keel");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The receiver may be gone; the pipe is still drained.
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                let mut kept = kept.lock().unwrap();
                if kept.len() < STDERR_KEPT {
                    kept.extend_from_slice(&chunk[..n]);
                }
            }
        });
        Process {
            child,
            lines,
            stderr,
        }
    }

    /// What the process has written to stderr so far (its first 64 KiB).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Reads stdout lines until one starts with `prefix`; returns the first word after it.
    pub fn url_after(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix(prefix) {
                        return rest.split_whitespace().next().expect("a URL").to_owned();
                    }
                }
                Err(_) => {
                    let said = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
                    panic!("keel did not print {prefix:?}; its stderr:\n{said}");
                }
            }
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("send signal");
    }

    /// Waits up to `limit` for the process to exit; returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("keel did not exit within {limit:?}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A redis-server of this test only, on a free port; killed by pid on drop. `None` when
/// redis-server is not installed — a failure instead under `CI=true`.
pub struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "redis-server is not installed and CI=true (apt-get install redis-server)"
            );
            eprintln!("SKIPPED: redis-server is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let redis = Redis { child, port };
        for _ in 0..200 {
            if redis
                .command(&["PING"])
                .is_ok_and(|r| r.starts_with("+PONG"))
            {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer PING");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// One command in RESP, as redis-cli sends it.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut reply = [0u8; 256];
        let n = stream.read(&mut reply)?;
        Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
