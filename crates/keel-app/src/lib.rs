//! The keel application server: gunicorn's role in the classic stack.
//!
//! This crate owns the HTTP routes that answer behind the edge — `/healthz`, `/metrics`,
//! `/sync/test` and `/async/test`, and the live-event surface (`/stream/` from
//! `keel-stream`, `/events/`, `/api/publish`) — and the mock upstream that `/sync/test`
//! and `/async/test` call in benchmarks. It knows nothing about files, environment variables or logging setup: the
//! binary hands it an [`AppConfig`] and a shutdown future.
//!
//! # How it differs from gunicorn
//! gunicorn runs `--workers` processes with `--threads` threads each, and a slow view holds
//! one of those threads for its whole duration. keel runs `workers` async worker threads
//! (the tokio runtime, built by the binary) and a separate pool of `workers × threads`
//! slots for *blocking* handlers only. A flood of slow blocking calls fills that pool and
//! queues, but async handlers, `/healthz` and `/metrics` never wait behind it.
//!
//! # Start-up API
//! Every server in keel starts the same way, in `main` and in tests alike:
//! [`App::build`] binds the socket (port 0 is fine), [`App::local_addr`] tells where, and
//! [`App::run_until_stopped`] serves until the given future resolves, then drains.

mod error;
mod events;
mod metrics;
pub mod mock;
mod routes;
mod server;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

pub use error::AppError;
pub use metrics::Metrics;
pub use mock::{MockConfig, MockUpstream};

/// The app's own static assets, compiled into the binary: `(name under /static/, bytes)`.
/// `keel collectstatic` and `keel up` collect them with any `--source` directories.
pub const ASSETS: &[(&str, &[u8])] = &[("css/keel.css", include_bytes!("../assets/css/keel.css"))];

/// Everything the application server needs, already validated by the caller.
///
/// Field names carry their units; durations are [`Duration`]s.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Concurrent blocking calls allowed (gunicorn's `workers × threads`).
    pub blocking_slots: usize,
    /// Whole-request deadline; a request still running after it gets a 503.
    pub request_timeout: Duration,
    /// URL that `/sync/test` and `/async/test` GET.
    pub upstream_url: url::Url,
    /// Deadline for one upstream call, connect to last body byte.
    pub upstream_timeout: Duration,
    /// How long a stop waits for in-flight requests before giving up on them.
    pub shutdown_timeout: Duration,
    /// Connections the kernel queues before `accept` (gunicorn's `--backlog`, 2048).
    pub backlog: u32,
    /// The peers whose forwarding headers are believed (gunicorn's `forwarded_allow_ips`).
    pub forwarded_allow_ips: keel_client::Trusted,
    /// How long an idle keep-alive connection waits for its next request (gunicorn's
    /// `--keep-alive`).
    pub keep_alive: Duration,
    /// How long a client may take to send a whole request head, counted from when the
    /// server starts waiting for it (a slowloris, or a connection that sends nothing).
    pub header_timeout: Duration,
    /// Live events (`/stream/`, `/events/`, `/api/publish`); `None` leaves them out.
    pub stream: Option<keel_stream::Hub>,
    /// Bearer token that `POST /api/publish` requires; `None` turns that route off.
    pub publish_token: Option<String>,
    /// The site (blog, accounts, admin); `None` leaves `/` to a page listing the routes.
    pub site: Option<keel_site::Site>,
}

impl AppConfig {
    /// A configuration for `bind` with keel's defaults, mostly for tests and embedding.
    pub fn new(bind: SocketAddr, upstream_url: url::Url) -> Self {
        AppConfig {
            bind,
            blocking_slots: 40,
            request_timeout: Duration::from_secs(30),
            upstream_url,
            upstream_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            backlog: 2048,
            forwarded_allow_ips: keel_client::Trusted::loopback(),
            keep_alive: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            stream: None,
            publish_token: None,
            site: None,
        }
    }
}

/// A bound, ready-to-run application server.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    trusted: keel_client::Trusted,
    timeouts: server::Timeouts,
    stream: Option<keel_stream::Hub>,
}

/// A listening socket with `backlog` (tokio's `TcpListener::bind` always asks for 1024).
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's own bind: a restarted server can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

impl App {
    /// Binds the listener and builds the router and its shared clients.
    pub async fn build(cfg: AppConfig) -> Result<App, AppError> {
        let listener = listen(cfg.bind, cfg.backlog).map_err(|source| AppError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let router = routes::router(&cfg, Arc::new(Metrics::new()))?;
        Ok(App {
            listener,
            router,
            trusted: cfg.forwarded_allow_ips.clone(),
            timeouts: server::Timeouts {
                shutdown: cfg.shutdown_timeout,
                keep_alive: cfg.keep_alive,
                header: cfg.header_timeout,
            },
            stream: cfg.stream.clone(),
        })
    }

    /// The application as a router with no listener of its own, for serving in-process
    /// behind the edge (`keel up`); `cfg.bind` is ignored. The edge hands each request
    /// over with the [`keel_client::Client`] it worked out as an extension.
    pub fn in_process(cfg: &AppConfig) -> Result<Router, AppError> {
        routes::router(cfg, Arc::new(Metrics::new()))
    }

    /// The address actually bound (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has a local address; the fallback only satisfies types.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits up to the
    /// configured shutdown timeout for in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let stream = self.stream;
        let shutdown = async move {
            shutdown.await;
            // Open streams end with a retry hint instead of holding the drain up.
            if let Some(hub) = stream {
                hub.shutdown();
            }
        };
        server::serve(
            self.listener,
            self.router,
            self.trusted,
            shutdown,
            self.timeouts,
        )
        .await
    }
}
