//! Serving a router on a listener: who the client is, how long a connection may sit
//! silent, and gunicorn's stop semantics.
//!
//! Every request gets its [`keel_client::Client`] here, worked out once from the socket
//! peer and, only when the peer is in `forwarded_allow_ips`, the forwarding headers; the
//! site, the stream and the metrics read that extension and never a header.
//!
//! Two timeouts protect a server that is reachable without the edge in front:
//! - the **head timeout** (hyper's `header_read_timeout`): a whole request head must
//!   arrive within it, counted from when the server starts waiting for one, so a
//!   connection that sends nothing, or trickles a head a byte at a time, is closed;
//! - the **keep-alive timeout** (gunicorn's `--keep-alive`): a connection that has been
//!   answered and sends no byte of a next request within it is closed. It is tracked by
//!   [`KeepAlive`]: a response counts as in flight until its body is done (so a long
//!   Server-Sent Events stream is never idle), and the socket wrapper returns end-of-file
//!   to hyper when the idle wait runs out, which hyper takes as the client leaving.
//!
//! On the shutdown signal the listener closes at once (new connections are refused),
//! idle keep-alive connections are closed, and in-flight requests get up to
//! `shutdown_timeout` to finish — gunicorn's `graceful_timeout`. Past that bound the
//! server returns anyway so the process can exit instead of hanging on a stuck client.
//!
//! Connections are served by hyper's HTTP/1.1 server directly rather than by
//! `axum::serve`. gunicorn speaks HTTP/1.1 only and so does the edge to its upstreams,
//! and `axum::serve`'s HTTP/1 + HTTP/2 connection state costs about 8 KiB more per open
//! connection: with 10,000 idle `/stream/` clients, a minimal axum app measured 19.4 KiB
//! per client under `axum::serve` and 12.3 KiB under hyper's HTTP/1.1 builder, and
//! `keel serve` went from 17.5 to 12.9 KiB.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::AppError;

/// The server's time bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// How long a stop waits for in-flight requests.
    pub(crate) shutdown: Duration,
    /// How long an answered connection may wait for a next request.
    pub(crate) keep_alive: Duration,
    /// How long a whole request head may take.
    pub(crate) header: Duration,
}

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    trusted: keel_client::Trusted,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeouts: Timeouts,
) -> Result<(), AppError> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(!timeouts.keep_alive.is_zero())
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let trusted = Arc::new(trusted);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Events and small answers go out when written, not after a delayed ACK.
        let _ = stream.set_nodelay(true);
        let keep_alive = Arc::new(KeepAlive::default());
        let service = PerRequest {
            router: router.clone(),
            peer,
            trusted: trusted.clone(),
            keep_alive: keep_alive.clone(),
        };
        let io = TokioIo::new(IdleClose::new(stream, keep_alive, timeouts.keep_alive));
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);

    tokio::select! {
        () = graceful.shutdown() => Ok(()),
        () = tokio::time::sleep(timeouts.shutdown) => {
            tracing::warn!(
                timeout = ?timeouts.shutdown,
                "shutdown timeout expired with requests still in flight; stopping anyway"
            );
            Ok(())
        }
    }
}

/// One connection's service: stamps each request with its client and counts it in
/// flight until its response body is done.
#[derive(Clone)]
struct PerRequest {
    router: Router,
    peer: SocketAddr,
    trusted: Arc<keel_client::Trusted>,
    keep_alive: Arc<KeepAlive>,
}

impl hyper::service::Service<Request<Incoming>> for PerRequest {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        let headers = request.headers();
        let values = |name: &'static str| headers.get_all(name).into_iter().map(|v| v.as_bytes());
        let client = self.trusted.client(self.peer.ip(), false, values);
        let extensions = request.extensions_mut();
        extensions.insert(client);
        extensions.insert(ConnectInfo(self.peer));
        let busy = Busy::new(self.keep_alive.clone());
        let response = self.router.clone().oneshot(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Body::new(Tracked { body, _busy: busy })))
        })
    }
}

/// Per connection: requests in flight, and since when the connection has been idle.
#[derive(Debug, Default)]
struct KeepAlive {
    state: Mutex<IdleState>,
}

#[derive(Debug, Default)]
struct IdleState {
    in_flight: usize,
    /// Set when the last response finished; cleared by the first byte of the next request.
    idle_since: Option<Instant>,
    /// The read side waiting for bytes, woken when the connection turns idle so its timer
    /// starts even if hyper does not read again on its own.
    reader: Option<Waker>,
}

impl KeepAlive {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request in flight; dropped with its response body.
struct Busy(Arc<KeepAlive>);

impl Busy {
    fn new(keep_alive: Arc<KeepAlive>) -> Self {
        {
            let mut state = keep_alive.lock();
            state.in_flight += 1;
            state.idle_since = None;
        }
        Busy(keep_alive)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let reader = {
            let mut state = self.0.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                state.idle_since = Some(Instant::now());
                state.reader.take()
            } else {
                None
            }
        };
        if let Some(waker) = reader {
            waker.wake();
        }
    }
}

/// A response body that keeps its request counted in flight until it is done.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, which reads as closed once an answered connection has sent nothing for
/// `keep_alive`.
struct IdleClose {
    stream: TcpStream,
    keep_alive: Arc<KeepAlive>,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl IdleClose {
    fn new(stream: TcpStream, keep_alive: Arc<KeepAlive>, limit: Duration) -> Self {
        IdleClose {
            stream,
            keep_alive,
            limit,
            timer: None,
        }
    }
}

impl AsyncRead for IdleClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.keep_alive.lock().idle_since = None;
                }
                return Poll::Ready(result);
            }
            Poll::Pending => {}
        }
        let idle_since = {
            let mut state = this.keep_alive.lock();
            if state.idle_since.is_none() {
                state.reader = Some(cx.waker().clone());
            }
            state.idle_since
        };
        let Some(since) = idle_since else {
            return Poll::Pending;
        };
        let deadline = since + this.limit;
        let timer = match &mut this.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => this
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        match timer.as_mut().poll(cx) {
            // End of file: hyper closes a connection that ends between requests quietly.
            Poll::Ready(()) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for IdleClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Errors about one incoming connection (it went away before it was accepted), which say
/// nothing about the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
