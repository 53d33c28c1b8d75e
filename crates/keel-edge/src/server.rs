//! The accept loops: hyper's HTTP/1.1 + HTTP/2 server on each connection (plain, or TLS
//! with ALPN), a header read deadline against slowloris that also closes idle keep-alive
//! connections, a cap on open connections, and a graceful stop bounded in time.
//!
//! Plain connections start on the fast path (`fast.rs`), which answers simple `GET` and
//! `HEAD` requests itself and hands anything else, with the bytes it read, to hyper.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::fast::{self, Outcome, Tracker};
use crate::handler::{self, State};

/// Per-connection protections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    /// The request line, header line and head limits of the codec's rules.
    pub(crate) request: crate::h1::request::Limits,
}

/// What a listener does with its connections.
#[derive(Clone)]
pub(crate) enum Mode {
    /// Plain HTTP, served.
    Plain,
    /// Plain HTTP answered with a redirect to HTTPS on this port.
    Redirect { https_port: u16 },
    /// TLS, then served.
    Tls(TlsAcceptor),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Plain => "Plain",
            Mode::Redirect { .. } => "Redirect",
            Mode::Tls(_) => "Tls",
        })
    }
}

/// Everything the accept loops share.
struct Shared {
    state: Arc<State>,
    /// HTTP/1.1: TLS connections that did not choose h2 by ALPN, and the redirect.
    http1: Builder<TokioExecutor>,
    /// HTTP/1.1 for one request handed over by the fast path (a body, another method),
    /// then the connection closes: every head on a plain connection is read by the
    /// codec's rules first, never by hyper alone.
    http1_once: Builder<TokioExecutor>,
    /// HTTP/2: TLS connections that chose h2. Pinning the version per connection skips
    /// hyper's sniffing of the first bytes.
    http2: Builder<TokioExecutor>,
    slots: Arc<Semaphore>,
    limits: ConnLimits,
    /// Connections on the fast path (hyper's are watched by the graceful shutdown).
    fast: Tracker,
    /// Set when the server stops: idle fast-path connections close.
    stop: watch::Receiver<bool>,
}

pub(crate) async fn serve(
    listeners: Vec<(TcpListener, Mode)>,
    state: Arc<State>,
    limits: ConnLimits,
    slots: Arc<Semaphore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder.http2().timer(TokioTimer::new());
    let mut once = builder.clone().http1_only();
    once.http1().keep_alive(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        state,
        http1_once: once,
        http1: builder.clone().http1_only(),
        http2: builder.http2_only(),
        slots,
        limits,
        fast: Tracker::default(),
        stop: stop_rx.clone(),
    });
    // Held by the accept loops only (connections get a watcher each), so that once the
    // loops have returned it can be taken back to shut down.
    let graceful = Arc::new(GracefulShutdown::new());

    let loops: Vec<_> = listeners
        .into_iter()
        .map(|(listener, mode)| {
            tokio::spawn(accept_loop(
                listener,
                mode,
                shared.clone(),
                graceful.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    shutdown.await;
    let _ = stop_tx.send(true);
    for accept in loops {
        // Each loop drops its listener when it returns: no new connections from here on.
        let _ = accept.await;
    }

    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        tracing::error!("accept loops still hold the graceful shutdown; not draining");
        return;
    };
    let drained = async {
        graceful.shutdown().await;
        shared.fast.drained().await;
    };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep(shutdown_timeout) => {
            tracing::warn!(timeout = ?shutdown_timeout, "edge shutdown timeout expired with connections still open");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    mode: Mode,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // At the cap, stop accepting until a connection closes.
        let permit = tokio::select! {
            permit = shared.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stopped(&mut stop) => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => return,
        };
        let _ = stream.set_nodelay(true);
        let shared_for_conn = shared.clone();
        let mode = mode.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, mode, &shared_for_conn, watcher).await;
        });
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    mode: Mode,
    shared: &Shared,
    watcher: Watcher,
) {
    match mode {
        Mode::Plain => {
            let tracked = shared.fast.enter();
            let mut stop = shared.stop.clone();
            let outcome = fast::serve(
                stream,
                peer,
                &shared.state,
                shared.limits.header_read_timeout,
                shared.limits.request,
                &mut stop,
            )
            .await;
            drop(tracked);
            if let Outcome::HandOver(io) = outcome {
                serve_io(
                    TokioIo::new(io),
                    peer,
                    "http",
                    &shared.http1_once,
                    shared,
                    watcher,
                )
                .await;
            }
        }
        Mode::Redirect { https_port } => {
            let service = service_fn(move |request: Request<Incoming>| async move {
                Ok::<_, std::convert::Infallible>(redirect(&request, https_port))
            });
            let connection = shared
                .http1
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "redirect connection ended with an error");
            }
        }
        Mode::Tls(acceptor) => {
            let handshake =
                tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(stream))
                    .await;
            match handshake {
                Ok(Ok(tls)) => {
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    let builder = if h2 { &shared.http2 } else { &shared.http1 };
                    serve_io(TokioIo::new(tls), peer, "https", builder, shared, watcher).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    proto: &'static str,
    builder: &Builder<TokioExecutor>,
    shared: &Shared,
    watcher: Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let state = shared.state.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let state = state.clone();
        async move {
            let request = request.map(Body::new);
            Ok::<_, std::convert::Infallible>(handler::handle(&state, peer, proto, request).await)
        }
    });
    let connection = builder.serve_connection(io, service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// `return 301 https://$host$request_uri;`, keeping a non-default HTTPS port.
fn redirect(request: &Request<Incoming>, https_port: u16) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("localhost");
    // Strip a port, minding IPv6 literals like [::1]:8080.
    let host = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("https://{host}{port}{target}");
    let mut response = Response::new(Body::from(format!("Moved to {location}\n")));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
