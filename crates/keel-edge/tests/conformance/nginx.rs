//! Debian's nginx as a child process, configured the classic way in front of one
//! upstream, everything (config, logs, temp files, pid) in its own temporary directory.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// Where Debian installs it.
pub const BINARY: &str = "/usr/sbin/nginx";

/// A running nginx; dropping it kills the process.
#[derive(Debug)]
pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn config(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        r#"worker_processes 1;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream backend {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#
    )
}

impl Nginx {
    /// Starts nginx on a free port in front of `upstream` and waits until it accepts
    /// connections; a port taken meanwhile is retried with another.
    pub async fn start(upstream: SocketAddr) -> Nginx {
        let mut why = String::new();
        for _ in 0..5 {
            match Self::try_start(upstream).await {
                Ok(nginx) => return nginx,
                Err(e) => why = e,
            }
        }
        panic!("nginx did not start: {why}");
    }

    async fn try_start(upstream: SocketAddr) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), addr, upstream)).unwrap();
        let child = Command::new(BINARY)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{BINARY}: {e}"))?;
        let mut nginx = Nginx { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("exited ({status}): {}", nginx.error_log()));
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                // Still running: it is nginx that answered, not whoever took the port.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Ok(None) = nginx.child.try_wait() {
                    return Ok(nginx);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 5 s: {}", nginx.error_log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its error log so far (at level info: it names why each request was refused).
    pub fn error_log(&self) -> String {
        let log = std::fs::read(self.dir.path().join("error.log")).unwrap_or_default();
        String::from_utf8_lossy(&log).into_owned()
    }
}
