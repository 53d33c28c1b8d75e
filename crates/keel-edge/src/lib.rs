//! keel's edge: nginx's role in the classic stack.
//!
//! Every request passes the same phases, in one ordered function (`handler.rs`): accept →
//! client address → static files (exempt from the limits) → limit_req → limit_conn →
//! rewrite request headers → backend → rewrite response headers → log. The backend is
//! either a list of upstream `host:port`s reached over pooled HTTP/1.1 (`keel edge`), or
//! the application's router called in-process with no socket hop (`keel up`); both get
//! exactly the same layers.
//!
//! # How it differs from nginx
//! - Responses are never buffered: a Server-Sent Events stream passes event by event and
//!   is never cut by a read timeout (nginx needs `proxy_buffering off` and a
//!   `proxy_read_timeout` above the heartbeat for that). The timeout that applies is the
//!   wait for the upstream's response *headers*.
//! - Upstreams are spoken to in HTTP/1.1 with keep-alive by default (nginx defaults to
//!   HTTP/1.0 and a new connection per request unless told otherwise).
//! - limit_req decisions are nginx's exactly (see `keel-limit`), but a forwarded client
//!   address is believed only from configured trusted proxies, and rejections carry
//!   `Retry-After`. The edge is given a declarative spec (`limit_req.rs`) and builds the
//!   zones itself; a reload keeps a zone whose name, size and rate are unchanged.
//! - limit_conn (`conn_limit.rs`, off by default) counts requests in flight per client
//!   address as nginx's does; its zones keep their counts across a reload by name.

mod access_log;
mod client_ip;
mod conn_limit;
mod fast;
mod h1;
mod handler;
mod headers;
mod limit_req;
mod proxy;
mod server;
mod tls;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use axum::http::StatusCode;
use tokio::net::TcpListener;

pub use access_log::{AccessLog, AccessLogFormat, AccessLogTarget};
pub use client_ip::TrustedProxies;
pub use conn_limit::{
    ConnLimitConfig, ConnLimitError, ConnRouteLimit, ConnZone, CONN_ENTRY_BYTES, MAX_CONNS,
};
pub use keel_edge_static::{StaticFiles, StaticHandle, StaticOptions, StaticService};
/// The value types of a [`LimitSpec`] and their parsers (`"10r/s".parse::<Rate>()`,
/// `"10m".parse::<ZoneSize>()`), re-exported so that a caller needs no `keel-limit`;
/// [`LimitValueError`] is what their parsers refuse, in nginx's words.
pub use keel_limit::{DelayPolicy, Error as LimitValueError, Rate, ZoneSize};
pub use limit_req::{LimitRef, LimitSpec, LimitSpecError, RouteSpec, ZoneSpec};
pub use proxy::UpstreamAddr;
pub use tls::{CertStore, TlsError};

/// Where requests that are not static files go.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Upstream servers, balanced round-robin, over pooled HTTP/1.1.
    Upstreams(Vec<UpstreamAddr>),
    /// The application's router, called in the same process.
    InProcess(axum::Router),
}

/// How upstream peers are balanced, ejected and retried.
#[derive(Debug, Clone)]
pub struct BalanceConfig {
    /// How a peer is chosen.
    pub strategy: Strategy,
    /// Failures in a row that eject a peer (nginx's `max_fails`).
    pub max_fails: u32,
    /// How long an ejected peer is skipped (nginx's `fail_timeout`).
    pub fail_timeout: Duration,
    /// Active checks: every `interval`, `GET path` on each peer; a 2xx brings an ejected
    /// peer back at once, a failure counts like a failed request. `None`: passive only.
    pub health_check: Option<HealthCheck>,
}

/// How the edge picks an upstream peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Each peer in turn (nginx's default).
    RoundRobin,
    /// The peer with the fewest requests in flight, streams included (nginx's `least_conn`).
    LeastConnections,
}

/// An active health check.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Path requested on each peer, e.g. `/healthz`.
    pub path: String,
    /// Time between two rounds of checks.
    pub interval: Duration,
    /// Deadline of one check.
    pub timeout: Duration,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            strategy: Strategy::RoundRobin,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            // Opt-in: an upstream without the path would be ejected forever.
            health_check: None,
        }
    }
}

/// HTTPS listener settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Address of the TLS listener; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The certificate and key, reloadable.
    pub certs: Arc<CertStore>,
}

/// What a reload may change (SIGHUP, [`Reloader::reload`]): where requests go (the
/// backend and its balancing and timeouts), limit_req and limit_conn, and whose forwarding
/// headers are believed. Listeners, TLS, workers, connection and header limits, static
/// files and the access log are fixed at start ([`EdgeConfig`]).
#[derive(Debug, Clone)]
pub struct Routing {
    /// Where non-static requests go.
    pub backend: Backend,
    /// Request rate limiting (nginx's `limit_req`), as data: the edge builds the zones,
    /// and a reload keeps those unchanged (see [`LimitSpec`]); `None` turns it off.
    pub limit: Option<LimitSpec>,
    /// Requests in progress per client address (nginx's `limit_conn`); `None` turns it
    /// off, at no cost.
    pub conn_limit: Option<ConnLimitConfig>,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: TrustedProxies,
    /// Deadline for connecting to an upstream.
    pub connect_timeout: Duration,
    /// Deadline for an upstream's response headers (→ 504). Bodies have no deadline.
    pub response_timeout: Duration,
    /// Ends an upstream response body that sends nothing for this long (nginx's
    /// `proxy_read_timeout`, but off by default: a quiet SSE stream is not a dead one).
    pub body_idle_timeout: Option<Duration>,
    /// Upstream balancing and ejection.
    pub balance: BalanceConfig,
}

impl Routing {
    /// `backend` with nginx-like defaults, no limits and no trusted proxies.
    pub fn new(backend: Backend) -> Self {
        Routing {
            backend,
            limit: None,
            conn_limit: None,
            trusted_proxies: TrustedProxies::default(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            body_idle_timeout: None,
            balance: BalanceConfig::default(),
        }
    }
}

/// Everything the edge needs, already validated.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where requests go and how they are limited and trusted: the part a reload may
    /// change ([`Reloader::reload`]). Everything else here is fixed at start.
    pub routing: Routing,
    /// Deadline for a client to send its request headers (slowloris); it also closes a
    /// keep-alive connection left idle this long.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers) accepted; beyond it → 431
    /// (nginx: the four buffers of `large_client_header_buffers 4 8k`).
    pub max_header_bytes: usize,
    /// Longest request line accepted; beyond it → 414 (nginx: one buffer of
    /// `large_client_header_buffers`, 8 KiB).
    pub max_request_line_bytes: usize,
    /// Longest header line accepted; beyond it → 431 (nginx: one buffer, 8 KiB).
    pub max_header_line_bytes: usize,
    /// Largest request body accepted (nginx's `client_max_body_size`); beyond it → 413.
    /// `None` accepts any size.
    pub max_body_bytes: Option<u64>,
    /// Worker threads, each with its own runtime and listening socket (see [`Edge`]);
    /// 1 serves on the caller's runtime.
    pub workers: usize,
    /// Open client connections at most; at the cap the edge stops accepting until one
    /// closes (the kernel backlog holds the rest), as nginx's `worker_connections` does.
    pub max_connections: usize,
    /// How long a stop waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Where access log lines go; `None` logs nothing.
    pub access_log: Option<AccessLog>,
    /// HTTPS: where to listen and the certificate to present.
    pub tls: Option<TlsConfig>,
    /// With `tls`, answer the plain listener with a redirect to HTTPS instead of serving.
    pub redirect_http: bool,
    /// Collected static files served at `/static/` (before, and exempt from, the rate
    /// limit); `None` sends `/static/` to the backend like any path.
    pub static_files: Option<StaticHandle>,
}

impl EdgeConfig {
    /// A configuration with nginx-like defaults and no rate limit.
    pub fn new(listen: SocketAddr, backend: Backend) -> Self {
        EdgeConfig {
            listen,
            routing: Routing::new(backend),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_request_line_bytes: h1::request::DEFAULT_MAX_LINE,
            max_header_line_bytes: h1::request::DEFAULT_MAX_LINE,
            max_body_bytes: Some(1024 * 1024),
            max_connections: 10_000,
            workers: 1,
            shutdown_timeout: Duration::from_secs(30),
            access_log: None,
            static_files: None,
            tls: None,
            redirect_http: false,
        }
    }
}

/// Why the edge could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The listen address could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// `Backend::Upstreams` with an empty list.
    #[error("no upstream given: the edge needs at least one --upstream HOST:PORT")]
    NoUpstream,
    /// A limit_req spec nginx would refuse (an unknown zone, one zone twice on a path…).
    #[error(transparent)]
    Limit(#[from] LimitSpecError),
}

/// Applies a new configuration to a running edge (SIGHUP): its backend (upstream list,
/// balancing, timeouts), limits and trusted proxies replace the old ones for new requests;
/// connections and requests in flight are not touched. Listen addresses, TLS, static
/// files and the access log are not part of it: they keep their own reload paths.
///
/// A limit_req zone whose name, size and rate are unchanged is kept with every address's
/// state, so a reload does not reset anyone's count (nginx keeps a zone whose name and
/// size are unchanged); any other zone starts afresh (see `limit_req.rs`). limit_conn
/// zones are kept by name, with their counts of requests in flight (see `conn_limit.rs`):
/// a stream opened before the reload still counts, and is released into the zone it was
/// counted in.
#[derive(Debug, Clone)]
pub struct Reloader {
    states: Vec<Arc<handler::State>>,
}

impl Reloader {
    /// Swaps in `routing` (backend, limits, trusted proxies, upstream timeouts); on an
    /// error nothing changes. What is fixed at start cannot be passed here.
    pub fn reload(&self, routing: &Routing) -> Result<(), EdgeError> {
        let cfg = routing;
        if matches!(&cfg.backend, Backend::Upstreams(list) if list.is_empty()) {
            return Err(EdgeError::NoUpstream);
        }
        // Built once, against the zones running now (every worker holds the same ones,
        // so the first worker's are all of them), then given to every worker: they go on
        // sharing one set of zones.
        let running = self.states.first().and_then(|state| state.limit());
        let limit = cfg
            .limit
            .as_ref()
            .map(|spec| spec.build(running.as_ref()))
            .transpose()?;
        for state in &self.states {
            state.reload(cfg, limit.clone());
        }
        Ok(())
    }
}

/// A bound, ready-to-run edge.
///
/// With `workers > 1` the edge runs like nginx's worker processes: one thread per worker,
/// each with its own single-threaded runtime, its own listening sockets on the same
/// address (`SO_REUSEPORT`, the kernel spreads connections) and its own upstream
/// connection pool. A request then never crosses threads, which measured about 20 % less
/// CPU per proxied request than one work-stealing runtime. Limits, static files, the
/// access log and the connection cap are shared by all workers.
#[derive(Debug)]
pub struct Edge {
    shards: Vec<Shard>,
    local_addr: SocketAddr,
    tls_local_addr: Option<SocketAddr>,
    tls: Option<Arc<rustls::ServerConfig>>,
    redirect_http: bool,
    limits: server::ConnLimits,
    slots: Arc<tokio::sync::Semaphore>,
    shutdown_timeout: Duration,
    access_log: Option<AccessLog>,
}

/// One worker's sockets and state.
#[derive(Debug)]
struct Shard {
    plain: std::net::TcpListener,
    tls: Option<std::net::TcpListener>,
    state: Arc<handler::State>,
}

/// Binds `count` listening sockets on one address; with more than one, `SO_REUSEPORT` lets
/// them share it. The first fixes the port when `addr` asks for port 0.
fn bind_shared(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, EdgeError> {
    let bind = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        if count > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        Ok(socket.into())
    };
    let error = |source| EdgeError::Bind { addr, source };
    let first = bind(addr).map_err(error)?;
    let bound = first.local_addr().map_err(error)?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind(bound).map_err(error)?);
    }
    Ok(all)
}

impl Edge {
    /// Binds the listeners and prepares the backend.
    pub async fn build(cfg: EdgeConfig) -> Result<Edge, EdgeError> {
        if matches!(&cfg.routing.backend, Backend::Upstreams(list) if list.is_empty()) {
            return Err(EdgeError::NoUpstream);
        }
        // Built once and shared by every worker, as nginx's zones are by its workers.
        let limit = cfg
            .routing
            .limit
            .as_ref()
            .map(|spec| spec.build(None))
            .transpose()?;
        let workers = cfg.workers.max(1);
        let plain = bind_shared(cfg.listen, workers)?;
        let local_addr = plain[0].local_addr().map_err(|source| EdgeError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let (tls_listeners, tls, tls_local_addr) = match &cfg.tls {
            Some(tls) => {
                let listeners = bind_shared(tls.listen, workers)?;
                let addr = listeners[0].local_addr().ok();
                (Some(listeners), Some(tls.certs.server_config()), addr)
            }
            None => (None, None, None),
        };
        let mut tls_listeners = tls_listeners.map(Vec::into_iter);
        let shards = plain
            .into_iter()
            .map(|plain| Shard {
                plain,
                tls: tls_listeners.as_mut().and_then(Iterator::next),
                state: Arc::new(handler::State::new(&cfg, limit.clone())),
            })
            .collect();
        Ok(Edge {
            shards,
            local_addr,
            tls_local_addr,
            redirect_http: cfg.redirect_http && tls.is_some(),
            tls,
            limits: server::ConnLimits {
                header_read_timeout: cfg.header_read_timeout,
                // hyper refuses a buffer below 8 KiB.
                max_header_bytes: cfg.max_header_bytes.max(8192),
                request: h1::request::Limits {
                    max_line: cfg.max_request_line_bytes,
                    max_field: cfg.max_header_line_bytes,
                    max_head: cfg.max_header_bytes,
                },
            },
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1))),
            shutdown_timeout: cfg.shutdown_timeout,
            access_log: cfg.access_log.clone(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that applies a new configuration to the running edge.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            states: self
                .shards
                .iter()
                .map(|shard| shard.state.clone())
                .collect(),
        }
    }

    /// The HTTPS address actually bound, when TLS is on.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_local_addr
    }

    /// Serves until `shutdown` resolves, then drains for up to the shutdown timeout, and
    /// returns once the access log has every line of the requests served.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let access_log = self.access_log.clone();
        self.serve_until_stopped(shutdown).await;
        if let Some(log) = access_log {
            log.flush(Duration::from_secs(5)).await;
        }
    }

    async fn serve_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let plain_mode = match (self.redirect_http, self.tls_local_addr) {
            (true, Some(tls)) => server::Mode::Redirect {
                https_port: tls.port(),
            },
            _ => server::Mode::Plain,
        };
        let worker = Worker {
            plain_mode,
            acceptor: self.tls.map(tokio_rustls::TlsAcceptor::from),
            limits: self.limits,
            slots: self.slots,
            shutdown_timeout: self.shutdown_timeout,
        };
        let mut shards = self.shards;
        if shards.len() == 1 {
            // One worker: serve on the caller's runtime (keel up, tests).
            if let Some(shard) = shards.pop() {
                worker.run(shard, shutdown).await;
            }
            return;
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        for (i, shard) in shards.into_iter().enumerate() {
            let worker = worker.clone();
            let mut stop = stop_rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("keel-edge-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            tracing::error!(%error, "edge worker {i} could not start its runtime");
                            return;
                        }
                    };
                    runtime.block_on(worker.run(shard, async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    }));
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => tracing::error!(%error, "edge worker {i} could not start"),
            }
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        if let Err(error) = joined {
            tracing::error!(%error, "edge workers did not stop cleanly");
        }
    }
}

/// What every worker needs beside its own shard.
#[derive(Clone)]
struct Worker {
    plain_mode: server::Mode,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: server::ConnLimits,
    slots: Arc<tokio::sync::Semaphore>,
    shutdown_timeout: Duration,
}

impl Worker {
    /// Serves one shard on the current runtime until `shutdown`.
    async fn run(self, shard: Shard, shutdown: impl Future<Output = ()> + Send + 'static) {
        let mut listeners = Vec::new();
        match TcpListener::from_std(shard.plain) {
            Ok(listener) => listeners.push((listener, self.plain_mode.clone())),
            Err(error) => tracing::error!(%error, "could not use the listening socket"),
        }
        if let (Some(tls), Some(acceptor)) = (shard.tls, self.acceptor.clone()) {
            match TcpListener::from_std(tls) {
                Ok(listener) => listeners.push((listener, server::Mode::Tls(acceptor))),
                Err(error) => tracing::error!(%error, "could not use the TLS listening socket"),
            }
        }
        let state = shard.state.clone();
        let checks = tokio::spawn(async move { state.health_checks().await });
        server::serve(
            listeners,
            shard.state,
            self.limits,
            self.slots,
            shutdown,
            self.shutdown_timeout,
        )
        .await;
        checks.abort();
    }
}
