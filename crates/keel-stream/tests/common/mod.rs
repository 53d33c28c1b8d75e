//! Test helpers: a private `redis-server` per test, backends behind one fixture so the
//! same tests run on both, an app served on 127.0.0.1:0, and an SSE client over reqwest.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use keel_stream::sse::{Item, ParsedEvent, Parser};
use keel_stream::{
    Broker, Hub, MemoryBroker, MemoryBrokerConfig, RedisBroker, RedisBrokerConfig, StreamConfig,
};

// ---------------------------------------------------------------- redis-server

/// A `redis-server` of this test only, on a free port; killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn redis_server_binary() -> Option<&'static str> {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some("redis-server")
}

/// `None` (with a message) when redis-server is not installed; under `CI=true` that is a
/// failure instead, so CI cannot pass by skipping.
pub fn redis_or_skip() -> Option<RedisServer> {
    if redis_server_binary().is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("redis-server is not installed, and CI=true: install it (apt-get install redis-server)");
        }
        eprintln!("SKIPPED: redis-server is not installed");
        return None;
    }
    Some(RedisServer::start())
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// A server that is not running yet, on a port reserved for it.
    pub fn not_started() -> Self {
        Self {
            port: free_port(),
            child: None,
        }
    }

    fn start_on(port: u16) -> Self {
        let mut server = Self { port, child: None };
        server.launch();
        server
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &std::env::temp_dir().to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (by its pid), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Starts a server made with [`RedisServer::not_started`].
    pub fn start_now(&mut self) {
        self.launch();
    }

    /// `redis-cli -p PORT ARGS…`, as a person would type it; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A plain (RESP2, non-keel) async connection.
    pub async fn plain_connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- backends

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Redis,
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub retention_events: usize,
    pub retention_age: Option<Duration>,
    pub channel_buffer: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            retention_events: 1000,
            retention_age: None,
            channel_buffer: 1024,
        }
    }
}

/// One backend, ready: the broker, and (for Redis) the server it talks to.
pub struct Fixture {
    pub kind: Kind,
    pub broker: Arc<dyn Broker>,
    pub redis: Option<RedisServer>,
    opts: Opts,
}

pub fn redis_config(url: String, opts: &Opts) -> RedisBrokerConfig {
    let mut cfg = RedisBrokerConfig::new(url);
    cfg.retention_events = opts.retention_events;
    cfg.retention_age = opts.retention_age;
    cfg.channel_buffer = opts.channel_buffer;
    cfg
}

impl Fixture {
    /// `None` when the backend cannot run here (redis-server missing outside CI).
    pub async fn new(kind: Kind, opts: Opts) -> Option<Self> {
        match kind {
            Kind::Memory => Some(Self {
                kind,
                broker: Arc::new(MemoryBroker::new(MemoryBrokerConfig {
                    retention_events: opts.retention_events,
                    retention_age: opts.retention_age,
                    channel_buffer: opts.channel_buffer,
                })),
                redis: None,
                opts,
            }),
            Kind::Redis => {
                let server = redis_or_skip()?;
                let broker = RedisBroker::connect(redis_config(server.url(), &opts))
                    .await
                    .unwrap();
                assert!(broker.health().is_ok(), "{:?}", broker.health());
                Some(Self {
                    kind,
                    broker: Arc::new(broker),
                    redis: Some(server),
                    opts,
                })
            }
        }
    }

    /// What a second keel process would have: for Redis its own broker (own connections)
    /// on the same server; in memory the same broker (one process is all it serves).
    pub async fn second_broker(&self) -> Arc<dyn Broker> {
        match &self.redis {
            Some(server) => Arc::new(
                RedisBroker::connect(redis_config(server.url(), &self.opts))
                    .await
                    .unwrap(),
            ),
            None => self.broker.clone(),
        }
    }

    /// A raw publish from outside keel: `redis-cli publish` for Redis.
    pub async fn raw_publish(&self, channel: &str, payload: &str) {
        match &self.redis {
            Some(server) => {
                let out = server.cli(&["publish", channel, payload]);
                assert!(out.trim().parse::<u64>().is_ok(), "redis-cli said {out:?}");
            }
            None => self.broker.publish_raw(channel, payload).await.unwrap(),
        }
    }

    pub fn redis(&self) -> &RedisServer {
        self.redis.as_ref().expect("redis fixture")
    }

    pub fn redis_mut(&mut self) -> &mut RedisServer {
        self.redis.as_mut().expect("redis fixture")
    }
}

/// Runs each listed `async fn name(kind: Kind)` once per backend, as `memory::name` and
/// `redis::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Kind::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Kind::Redis).await
                }
            )*
        }
    };
}

// ---------------------------------------------------------------- app + client

pub struct TestApp {
    pub addr: SocketAddr,
    pub hub: Hub,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.hub.shutdown();
        self.server.abort();
    }
}

pub fn quick_config() -> StreamConfig {
    StreamConfig {
        heartbeat_interval: Duration::from_secs(5),
        retry_hint: Duration::from_millis(1500),
        ..StreamConfig::default()
    }
}

/// Serves `/stream/` on 127.0.0.1:0 over a real socket.
pub async fn spawn_app(broker: Arc<dyn Broker>, config: StreamConfig) -> TestApp {
    let hub = Hub::new(broker, config).unwrap();
    let app: axum::Router = keel_stream::http::router(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    TestApp { addr, hub, server }
}

impl TestApp {
    pub fn url(&self, query: &str) -> String {
        format!("http://{}/stream/{}", self.addr, query)
    }
}

pub enum Read {
    Item(Item),
    End,
    Timeout,
}

/// Reads an SSE response the way a test wants to: item by item, with timeouts.
pub struct SseClient {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: Parser,
    pending: VecDeque<Item>,
    /// Everything read so far, as text (for checks on the exact wire format).
    pub raw: String,
    pub bytes_read: usize,
    ended: bool,
}

pub async fn get(url: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    req.send().await.unwrap()
}

impl SseClient {
    /// Connects; panics unless the answer is a 200 event stream.
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> Self {
        let response = get(url, last_event_id).await;
        let status = response.status();
        assert_eq!(status, 200, "GET {url}");
        let headers = response.headers().clone();
        let mut client = Self {
            status,
            headers,
            body: response.bytes_stream().boxed(),
            parser: Parser::new(),
            pending: VecDeque::new(),
            raw: String::new(),
            bytes_read: 0,
            ended: false,
        };
        // The server sends its `retry:` hint once the hub is subscribed; wait for it (and
        // keep it for the test to see), so that a publish right after `connect` reaches
        // this client as it would a browser that has opened.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !client.pending.iter().any(|i| matches!(i, Item::Retry(_))) {
            match tokio::time::timeout_at(deadline, client.body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    client.bytes_read += chunk.len();
                    client.raw.push_str(&String::from_utf8_lossy(&chunk));
                    client.pending.extend(client.parser.feed(&chunk));
                }
                other => panic!(
                    "no retry hint from {url}: {:?}",
                    other.map(|o| o.map(|r| r.map(|b| b.len())))
                ),
            }
        }
        client
    }

    pub async fn read(&mut self, wait: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Read::Item(item);
            }
            if self.ended {
                return Read::End;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Read::Timeout,
                Ok(None) | Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(chunk))) => {
                    self.bytes_read += chunk.len();
                    self.raw.push_str(&String::from_utf8_lossy(&chunk));
                    self.pending.extend(self.parser.feed(&chunk));
                }
            }
        }
    }

    /// The next event (comments and retry hints skipped); panics on end or timeout.
    pub async fn event(&mut self, wait: Duration) -> ParsedEvent {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left).await {
                Read::Item(Item::Event(e)) => return e,
                Read::Item(_) => {}
                Read::End => panic!(
                    "stream ended while waiting for an event; raw so far:\n{}",
                    self.tail()
                ),
                Read::Timeout => panic!("no event within {wait:?}; raw so far:\n{}", self.tail()),
            }
        }
    }

    pub async fn events(&mut self, n: usize, wait: Duration) -> Vec<ParsedEvent> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.event(wait).await);
        }
        out
    }

    /// Reads until the stream ends; returns the items seen. Panics after `wait`.
    pub async fn until_end(&mut self, wait: Duration) -> Vec<Item> {
        let deadline = Instant::now() + wait;
        let mut items = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left).await {
                Read::Item(i) => items.push(i),
                Read::End => return items,
                Read::Timeout => panic!("stream did not end within {wait:?}"),
            }
        }
    }

    /// No event arrives within `wait` (comments are fine).
    pub async fn expect_quiet(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left).await {
                Read::Item(Item::Event(e)) => panic!("unexpected event {e:?}"),
                Read::Item(_) => {}
                Read::End => panic!("stream ended"),
                Read::Timeout => return,
            }
        }
    }

    pub fn tail(&self) -> String {
        let start = self.raw.len().saturating_sub(600);
        let mut start = start;
        while !self.raw.is_char_boundary(start) {
            start += 1;
        }
        self.raw[start..].to_owned()
    }
}

pub const WAIT: Duration = Duration::from_secs(5);

/// Polls `f` until it is true or `wait` passes.
pub async fn eventually(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
