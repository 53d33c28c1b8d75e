//! The app server where it meets the network without the edge in front: who the client
//! is (gunicorn's `forwarded_allow_ips`), how long a silent or slow connection may stay,
//! and what a visitor and `/healthz` see while the database is unreachable.
//!
//! Real server on port 0, raw TCP where the bytes matter. The database outage runs on
//! PostgreSQL through a TCP relay the test cuts and restores (the machine's service is
//! never touched); without PostgreSQL that test skips, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_app::{App, AppConfig, MockConfig, MockUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn run(cfg: AppConfig) -> Running {
    let app = App::build(cfg).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
    }
}

fn hub(max_clients_per_ip: usize, heartbeat: Duration) -> keel_stream::Hub {
    let broker = Arc::new(keel_stream::MemoryBroker::new(
        keel_stream::MemoryBrokerConfig::default(),
    ));
    keel_stream::Hub::new(
        broker,
        keel_stream::StreamConfig {
            max_clients_per_ip,
            heartbeat_interval: heartbeat,
            ..keel_stream::StreamConfig::default()
        },
    )
    .unwrap()
}

fn config() -> AppConfig {
    AppConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        "http://127.0.0.1:9/todos/1".parse().unwrap(),
    )
}

/// Opens `/stream/` with `X-Real-IP: claimed` and returns the status line's code.
async fn stream_status(addr: SocketAddr, claimed: &str) -> (u16, TcpStream) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /stream/ HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nX-Real-IP: {claimed}\r\nX-Forwarded-For: {claimed}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let code = std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap();
    (code, socket)
}

/// From a peer in `forwarded_allow_ips` (loopback, the default) the claimed address is
/// the client; from any other peer the claim is ignored and the socket peer is the
/// client. The stream's per-address cap (set to 1 here) shows which address was used.
/// gunicorn's `--backlog`: the listening socket asks the kernel for that queue, as `ss`
/// shows in a listener's Send-Q.
#[tokio::test]
async fn the_listen_backlog_is_the_configured_one() {
    for backlog in [77, 2048] {
        let mut cfg = config();
        cfg.backlog = backlog;
        let app = App::build(cfg).await.unwrap();
        let port = app.local_addr().port();
        let out = match std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
        {
            Ok(out) => out,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipped: no ss ({e})");
                return;
            }
            Err(e) => panic!("ss (iproute2) is needed under CI: {e}"),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        // State, Recv-Q, Send-Q (the backlog), local address, peer.
        let send_q: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        assert_eq!(send_q, [backlog.to_string()], "ss: {text}");
    }
}

#[tokio::test]
async fn forwarding_headers_are_believed_only_from_allowed_peers() {
    // Default: loopback is the proxy, so two claimed clients are two addresses.
    let mut cfg = config();
    cfg.stream = Some(hub(1, Duration::from_secs(15)));
    let trusting = run(cfg).await;
    let (a, _a) = stream_status(trusting.addr, "198.51.100.1").await;
    let (b, _b) = stream_status(trusting.addr, "198.51.100.2").await;
    let (a2, _a2) = stream_status(trusting.addr, "198.51.100.1").await;
    assert_eq!((a, b, a2), (200, 200, 503));

    // A server that trusts nobody on this host (as behind an edge on another host):
    // the claims are ignored, both streams are 127.0.0.1's and the second is refused.
    let mut cfg = config();
    cfg.stream = Some(hub(1, Duration::from_secs(15)));
    cfg.forwarded_allow_ips = keel_client::Trusted::nets(vec!["10.200.0.2/32".parse().unwrap()]);
    let wary = run(cfg).await;
    let (a, _a) = stream_status(wary.addr, "198.51.100.1").await;
    let (b, _b) = stream_status(wary.addr, "198.51.100.2").await;
    assert_eq!((a, b), (200, 503));
}

/// Waits for the server to close `socket`; returns how long that took, or `None` when it
/// was still open after `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// gunicorn's `--keep-alive` and a head timeout: a connection that sends nothing, a head
/// trickled a byte at a time, and an answered connection left idle are all closed; a
/// request that takes longer than the keep-alive wait, and a live stream quieter than
/// it, are not.
#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let mock = MockUpstream::build(MockConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        latency: Duration::from_millis(900),
        token_interval: Duration::ZERO,
    })
    .await
    .unwrap();
    let upstream = mock.todo_url();
    let (_stop_mock, mock_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mock.run_until_stopped(async move {
        let _ = mock_stopped.await;
    }));
    let mut cfg = config();
    cfg.upstream_url = upstream;
    cfg.header_timeout = Duration::from_millis(800);
    cfg.keep_alive = Duration::from_millis(300);
    cfg.stream = Some(hub(0, Duration::from_millis(500)));
    let server = run(cfg).await;

    // Nothing sent: closed at the head timeout.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection was never closed");
    assert!(took >= Duration::from_millis(700), "closed after {took:?}");

    // A head trickled at 10 bytes/s: closed at the head timeout, unfinished.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    let mut closed = false;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
        .iter()
        .cycle()
        .take(60)
    {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(100), slow.read(&mut [0u8; 64])).await
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a trickled head was still open after {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // Answered, then idle: closed at the keep-alive wait, well before the head timeout.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let took = closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection was never closed");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(750),
        "idle connection closed after {took:?}"
    );

    // A request slower than the keep-alive wait (the upstream takes 900 ms) is answered.
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(b"GET /async/test HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), busy.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    // A live stream whose heartbeat (500 ms) is slower than the keep-alive wait stays
    // open: it is a response in flight, not an idle connection.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /stream/ HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut received = Vec::new();
    while start.elapsed() < Duration::from_millis(1800) {
        match tokio::time::timeout(Duration::from_millis(700), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!(
                "the stream was closed after {:?}: {}",
                start.elapsed(),
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.matches(": keepalive").count() >= 2, "{text}");
}

// ---- the database going away ----------------------------------------------------------

/// A TCP relay to PostgreSQL that the test can cut (listener closed, every connection
/// reset) and restore on the same port.
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut relay = Relay {
            addr,
            target,
            tasks: tokio::task::JoinSet::new(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        let conns = Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let held = conns.clone();
        self.tasks.spawn(async move {
            // Connections live and die with the accept task.
            let _held = held;
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                conns.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }

    fn cut(&mut self) {
        self.tasks.abort_all();
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// While the database is unreachable, pages answer 503 with the site's error page within
/// the acquire bound (no 500, no hang) and `/healthz` is 503 `degraded` naming the
/// database; once it is back, both recover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_fast_503_and_healthz_says_so() {
    let admin_url = std::env::var("KEEL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = match keel_site::Db::connect(&admin_url, 1, Duration::from_secs(5)).await {
        Ok(db) => db,
        Err(e) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "PostgreSQL is not reachable at {admin_url} and CI=true: {e}"
            );
            eprintln!("SKIPPED: PostgreSQL not reachable at {admin_url}: {e}");
            return;
        }
    };
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "keel_outage_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    sqlx_exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    sqlx_exec(&admin, &format!("CREATE DATABASE {name}")).await;

    let url: url::Url = admin_url.parse().unwrap();
    let target: SocketAddr = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let mut relay = Relay::start(target).await;
    let mut through = url.clone();
    through.set_port(Some(relay.addr.port())).unwrap();
    through.set_path(&name);

    let mut site_cfg = keel_site::SiteConfig::new(through.to_string());
    site_cfg.page_cache_ttl = Duration::ZERO;
    let site = keel_site::Site::open(site_cfg).await.unwrap();
    let mut cfg = config();
    cfg.site = Some(site);
    let server = run(cfg).await;
    let client = reqwest::Client::new();

    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(
        client.get(server.url("/")).send().await.unwrap().status(),
        200
    );

    relay.cut();
    for path in ["/", "/?tag=ops", "/posts/welcome-to-keel/"] {
        let start = Instant::now();
        let page = client.get(server.url(path)).send().await.unwrap();
        let took = start.elapsed();
        assert_eq!(page.status(), 503, "{path}");
        assert_eq!(page.headers()["retry-after"], "5");
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let text = page.text().await.unwrap();
        assert!(
            text.contains("Temporarily unavailable") && text.contains("<nav"),
            "{text}"
        );
        assert!(took < Duration::from_secs(4), "{path} took {took:?}");
        eprintln!("outage: {path} answered 503 in {took:?}");
    }
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_ne!(body["database"], "ok");

    relay.restore().await;
    let back = Instant::now();
    loop {
        let page = client.get(server.url("/")).send().await.unwrap();
        if page.status() == 200 {
            break;
        }
        assert_eq!(page.status(), 503);
        assert!(back.elapsed() < Duration::from_secs(10), "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    eprintln!(
        "outage: recovered {:?} after the database came back",
        back.elapsed()
    );

    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    sqlx_exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    admin.close().await;
}

async fn sqlx_exec(db: &keel_site::Db, sql: &str) {
    sqlx::query(sql).execute(db.pool()).await.unwrap();
}
