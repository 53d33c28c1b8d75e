//! Upstream peers: choosing one (round-robin), ejecting one that keeps failing, and
//! forwarding a request over a pooled HTTP/1.1 connection: the worker's own pool for a
//! request without a body ([`crate::upstream`]), hyper-util's client for the rest.
//!
//! Like nginx's `upstream` block with `max_fails`/`fail_timeout`: a peer that fails
//! `max_fails` times in a row is skipped for `fail_timeout`; if every peer is ejected the
//! edge tries them anyway rather than failing without trying (nginx does the same when all
//! peers are down). A failed *connect* is retried on the next peer for idempotent methods
//! without a body (nginx's `proxy_next_upstream error timeout` default, which since 1.9.13
//! also excludes non-idempotent methods) — the request never reached the first peer.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{Method, Request, Response, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::headers::{self, UpstreamHead};
use crate::upstream::{self, RawBody};
use crate::{BalanceConfig, HealthCheck, Strategy};

/// An upstream `host:port`, kept parsed so a request's URI is built without parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr(Authority);

impl FromStr for UpstreamAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().trim_start_matches("http://");
        let authority: Authority = s
            .parse()
            .map_err(|e| format!("invalid upstream {s:?} ({e}); write it as HOST:PORT"))?;
        if authority.port_u16().is_none() {
            return Err(format!("upstream {s:?} has no port; write it as HOST:PORT"));
        }
        if s.contains('@') {
            return Err(format!("upstream {s:?} must not carry credentials"));
        }
        Ok(UpstreamAddr(authority))
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[derive(Debug)]
struct Peer {
    addr: UpstreamAddr,
    fails: AtomicU32,
    /// Milliseconds since `Peers::epoch` until which the peer is skipped.
    ejected_until_ms: AtomicU64,
    /// Requests forwarded and not yet finished (their body still streaming included).
    active: Arc<AtomicUsize>,
}

/// Why forwarding failed, and whether the request could have reached the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("could not connect to upstream {peer}: {detail}")]
    Connect { peer: String, detail: String },
    #[error("upstream {peer} did not send response headers within {timeout:?}")]
    Timeout { peer: String, timeout: Duration },
    #[error("upstream {peer} failed: {detail}")]
    Upstream { peer: String, detail: String },
    /// The peer closed a new connection before any answer (it crashed or is stopping).
    #[error("upstream {peer} closed the connection before answering: {detail}")]
    Closed { peer: String, detail: String },
    /// The client's body went over the edge's cap while being streamed upstream.
    #[error("the request body is larger than the edge accepts")]
    BodyTooLarge,
}

/// The peers, the shared connection pool and the balancing state.
#[derive(Debug)]
pub(crate) struct Peers {
    peers: Vec<Peer>,
    next: AtomicUsize,
    /// Requests with a body, and the active health checks.
    client: Client<HttpConnector, Body>,
    /// Owned by these peers; bodiless requests go over each worker's own pool of
    /// connections ([`crate::upstream`]), keyed by it.
    pool_owner: Arc<()>,
    connect_timeout: Duration,
    epoch: Instant,
    balance: BalanceConfig,
    response_timeout: Duration,
    body_idle_timeout: Option<Duration>,
}

impl Peers {
    pub(crate) fn new(
        addrs: &[UpstreamAddr],
        balance: BalanceConfig,
        connect_timeout: Duration,
        response_timeout: Duration,
        body_idle_timeout: Option<Duration>,
    ) -> Peers {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Below the keep-alive of common app servers (gunicorn's is 2 s) so a pooled
            // connection is rarely one the upstream already closed.
            .pool_idle_timeout(Duration::from_millis(1500))
            // The client's `Host` is forwarded as it is, and none is made up when it sent
            // none (as nginx): the peer's address is no name of the site.
            .set_host(false)
            .build(connector);
        Peers {
            peers: addrs
                .iter()
                .map(|addr| Peer {
                    addr: addr.clone(),
                    fails: AtomicU32::new(0),
                    ejected_until_ms: AtomicU64::new(0),
                    active: Arc::new(AtomicUsize::new(0)),
                })
                .collect(),
            next: AtomicUsize::new(0),
            client,
            pool_owner: upstream::owner_token(),
            connect_timeout,
            epoch: Instant::now(),
            balance,
            response_timeout,
            body_idle_timeout,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A peer that is not ejected — in turn, or the least busy (ties in turn) — or, when
    /// every peer is ejected, any peer rather than none.
    fn choose(&self, skip: Option<usize>) -> usize {
        let n = self.peers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let in_turn = || (0..n).map(|k| (start + k) % n).filter(|&i| Some(i) != skip);
        let mut live =
            in_turn().filter(|&i| self.peers[i].ejected_until_ms.load(Ordering::Relaxed) <= now);
        let pick = match self.balance.strategy {
            Strategy::RoundRobin => live.next(),
            // min_by_key keeps the first of equals: ties go in turn.
            Strategy::LeastConnections => {
                live.min_by_key(|&i| self.peers[i].active.load(Ordering::Relaxed))
            }
        };
        pick.or_else(|| in_turn().next()).unwrap_or(start % n)
    }

    fn succeeded(&self, i: usize) {
        self.peers[i].fails.store(0, Ordering::Relaxed);
    }

    fn failed(&self, i: usize) {
        fail(&self.peers[i], &self.balance, self.now_ms());
    }

    /// The active check, when configured.
    pub(crate) fn health_check(&self) -> Option<&HealthCheck> {
        self.balance.health_check.as_ref()
    }

    /// One round of active checks over every peer.
    pub(crate) async fn check_once(&self, check: &HealthCheck) {
        for peer in self.peers.iter() {
            let healthy = probe(&self.client, &peer.addr, check).await;
            let now = self.now_ms();
            if healthy {
                peer.fails.store(0, Ordering::Relaxed);
                if peer.ejected_until_ms.swap(0, Ordering::Relaxed) > now {
                    tracing::info!(upstream = %peer.addr, "upstream healthy again; back in rotation");
                }
            } else {
                fail(peer, &self.balance, now);
            }
        }
    }

    /// Forwards `request` to a peer; returns the response (body streaming) and the peer.
    /// The forwarding headers are set here, in whichever form the request travels in.
    pub(crate) async fn forward(
        &self,
        mut request: Request<Body>,
        forwarding: Forwarding,
    ) -> Result<(Response<Body>, &UpstreamAddr), ProxyError> {
        let no_body = axum::body::HttpBody::size_hint(request.body()).exact() == Some(0);
        if no_body && matches!(*request.method(), Method::GET | Method::HEAD) {
            let fields: Vec<headers::Field<'_>> = request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
                .collect();
            let head = forwarding.head(
                request.method().as_str(),
                request
                    .uri()
                    .path_and_query()
                    .map_or("/", PathAndQuery::as_str),
                fields.into_iter(),
            );
            let (answer, peer) = self
                .forward_head(&head, request.method() == Method::HEAD)
                .await?;
            return Ok((answer.into_response(), peer));
        }
        forwarding.rewrite(request.headers_mut());
        let first = self.choose(None);
        // A copy for a second attempt only when one can happen: cloning every request's
        // headers "just in case" showed up in profiles.
        let retry =
            (self.peers.len() > 1 && is_idempotent(request.method()) && no_body).then(|| {
                let mut copy = Request::new(Body::empty());
                *copy.method_mut() = request.method().clone();
                *copy.uri_mut() = request.uri().clone();
                *copy.version_mut() = request.version();
                *copy.headers_mut() = request.headers().clone();
                copy
            });
        match (self.try_peer(first, request).await, retry) {
            (Err(ProxyError::Connect { .. }), Some(copy)) => {
                let second = self.choose(Some(first));
                self.try_peer(second, copy).await
            }
            (result, _) => result,
        }
    }

    /// Sends a bodiless `GET`/`HEAD`, already in wire form, over this worker's own
    /// connections ([`crate::upstream`]). As nginx's default `proxy_next_upstream error`
    /// for these idempotent requests, a failed connect, or a peer that closes the
    /// connection before any answer (killed mid-request), sends it to another peer once.
    /// A malformed answer (nginx's `invalid_header`) and a timeout are not retried.
    pub(crate) async fn forward_head(
        &self,
        head: &UpstreamHead,
        head_only: bool,
    ) -> Result<(upstream::Answer<Streamed<RawBody>>, &UpstreamAddr), ProxyError> {
        let first = self.choose(None);
        match self.exchange(first, head, head_only).await {
            Err(ProxyError::Connect { .. } | ProxyError::Closed { .. }) if self.peers.len() > 1 => {
                let second = self.choose(Some(first));
                self.exchange(second, head, head_only).await
            }
            result => result,
        }
    }

    async fn exchange(
        &self,
        i: usize,
        head: &UpstreamHead,
        head_only: bool,
    ) -> Result<(upstream::Answer<Streamed<RawBody>>, &UpstreamAddr), ProxyError> {
        let peer = &self.peers[i];
        let active = self.in_flight(i);
        let key = upstream::PoolKey {
            owner: Arc::downgrade(&self.pool_owner),
            peer: i,
        };
        let authority = peer.addr.0.as_str();
        let exchange = upstream::exchange(
            authority,
            &key,
            head.bytes(),
            head_only,
            self.connect_timeout,
        );
        match tokio::time::timeout(self.response_timeout, exchange).await {
            Ok(Ok(answer)) => {
                let answer = answer.map_body(|body| self.delivered(i, body, active));
                Ok((answer, &peer.addr))
            }
            Ok(Err(error)) => {
                self.failed(i);
                let peer = peer.addr.to_string();
                Err(match error {
                    upstream::ExchangeError::Connect(detail) => {
                        ProxyError::Connect { peer, detail }
                    }
                    upstream::ExchangeError::Upstream(detail) => {
                        ProxyError::Upstream { peer, detail }
                    }
                    upstream::ExchangeError::Closed(detail) => ProxyError::Closed { peer, detail },
                })
            }
            Err(_) => Err(self.timed_out(i)),
        }
    }

    /// A request with a body, over hyper-util's client.
    async fn try_peer(
        &self,
        i: usize,
        mut request: Request<Body>,
    ) -> Result<(Response<Body>, &UpstreamAddr), ProxyError> {
        let peer = &self.peers[i];
        let active = self.in_flight(i);
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(peer.addr.0.clone());
        parts.path_and_query = Some(
            request
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        *request.uri_mut() = match Uri::from_parts(parts) {
            Ok(uri) => uri,
            Err(e) => {
                return Err(ProxyError::Upstream {
                    peer: peer.addr.to_string(),
                    detail: format!("bad upstream URI: {e}"),
                })
            }
        };
        // HTTP/1.0 and HTTP/2 clients alike reach the upstream over pooled HTTP/1.1.
        *request.version_mut() = Version::HTTP_11;

        let sent = tokio::time::timeout(self.response_timeout, self.client.request(request)).await;
        match sent {
            Ok(Ok(response)) => {
                let response = response.map(|body| Body::new(self.delivered(i, body, active)));
                Ok((response, &peer.addr))
            }
            Ok(Err(error)) if body_over_limit(&error) => Err(ProxyError::BodyTooLarge),
            Ok(Err(error)) => {
                self.failed(i);
                let detail = error_chain(&error);
                let peer = peer.addr.to_string();
                if error.is_connect() {
                    Err(ProxyError::Connect { peer, detail })
                } else {
                    Err(ProxyError::Upstream { peer, detail })
                }
            }
            Err(_) => Err(self.timed_out(i)),
        }
    }

    /// Counts a request to peer `i` as in flight until the guard (held by its body) drops;
    /// only least-connections needs the count.
    fn in_flight(&self, i: usize) -> Option<ActiveGuard> {
        (self.balance.strategy == Strategy::LeastConnections)
            .then(|| ActiveGuard::new(&self.peers[i].active))
    }

    /// Peer `i` sent no answer's head within the response timeout: a failure of its.
    fn timed_out(&self, i: usize) -> ProxyError {
        self.failed(i);
        ProxyError::Timeout {
            peer: self.peers[i].addr.to_string(),
            timeout: self.response_timeout,
        }
    }

    /// A peer answered: its failures are forgiven, and the body gets what the
    /// configuration asks for (the in-flight count, the idle timeout).
    fn delivered<B>(&self, i: usize, body: B, active: Option<ActiveGuard>) -> Streamed<B> {
        self.succeeded(i);
        Streamed {
            inner: body,
            _active: active,
            idle: self
                .body_idle_timeout
                .map(|limit| (limit, Box::pin(tokio::time::sleep(limit)))),
        }
    }
}

/// The values of the forwarding headers of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarding {
    /// `X-Real-IP`: the client (the socket peer unless that is a trusted proxy).
    pub(crate) client: IpAddr,
    /// Appended to `X-Forwarded-For`: the socket peer.
    pub(crate) peer: IpAddr,
    /// `X-Forwarded-Proto`.
    pub(crate) proto: &'static str,
}

impl Forwarding {
    /// The rewrite on a request's map: hop-by-hop fields out, forwarding fields in.
    pub(crate) fn rewrite(&self, map: &mut axum::http::HeaderMap) {
        headers::remove_hop_by_hop(map);
        headers::set_forwarded(map, self.client, self.peer, self.proto);
    }

    /// The same rewrite for a bodiless request to a peer, written as its head from the
    /// client's fields.
    pub(crate) fn head<'a>(
        &self,
        method: &str,
        target: &str,
        fields: impl Iterator<Item = headers::Field<'a>> + Clone,
    ) -> UpstreamHead {
        headers::upstream_head(method, target, fields, self.client, self.peer, self.proto)
    }
}

fn fail(peer: &Peer, balance: &BalanceConfig, now_ms: u64) {
    let fails = peer.fails.fetch_add(1, Ordering::Relaxed) + 1;
    if fails >= balance.max_fails {
        let until = now_ms + u64::try_from(balance.fail_timeout.as_millis()).unwrap_or(u64::MAX);
        peer.ejected_until_ms.store(until, Ordering::Relaxed);
        peer.fails.store(0, Ordering::Relaxed);
        tracing::warn!(upstream = %peer.addr, fail_timeout = ?balance.fail_timeout,
            "upstream ejected after {fails} failure(s) in a row");
    }
}

/// One active check: a 2xx within the timeout.
async fn probe(
    client: &Client<HttpConnector, Body>,
    addr: &UpstreamAddr,
    check: &HealthCheck,
) -> bool {
    let Ok(uri) = format!("http://{addr}{}", check.path).parse::<Uri>() else {
        return false;
    };
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = uri;
    if let Ok(host) = axum::http::HeaderValue::from_str(&addr.to_string()) {
        request.headers_mut().insert(axum::http::header::HOST, host);
    }
    request.headers_mut().insert(
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static("keel-edge-health-check"),
    );
    matches!(
        tokio::time::timeout(check.timeout, client.request(request)).await,
        Ok(Ok(response)) if response.status().is_success()
    )
}

/// An upstream response body on its way to the client: keeps the peer's in-flight count
/// up until the body ends or is dropped (least-conn), and ends a body that has sent
/// nothing for the idle timeout, if one is set (a live SSE stream sends heartbeats, so a
/// timeout above their interval never cuts a healthy one).
pub(crate) struct Streamed<B> {
    inner: B,
    _active: Option<ActiveGuard>,
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    fn new(active: &Arc<AtomicUsize>) -> ActiveGuard {
        active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(active.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The upstream sent nothing for longer than the body idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}; the response was cut")]
struct BodyIdle(Duration);

impl<B> http_body::Body for Streamed<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(axum::Error::new);
        if let Some((limit, sleep)) = &mut this.idle {
            match &polled {
                Poll::Ready(Some(Ok(_))) => {
                    sleep.as_mut().reset(tokio::time::Instant::now() + *limit);
                }
                Poll::Pending if sleep.as_mut().poll(cx).is_ready() => {
                    tracing::debug!(timeout = ?limit, "upstream body idle; closing");
                    return Poll::Ready(Some(Err(axum::Error::new(BodyIdle(*limit)))));
                }
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The client's body hit `Limited`'s cap: the client's fault, not the peer's.
pub(crate) fn body_over_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addresses_parse_like_nginx_server_lines() {
        assert_eq!(
            "127.0.0.1:8000"
                .parse::<UpstreamAddr>()
                .unwrap()
                .to_string(),
            "127.0.0.1:8000"
        );
        assert_eq!(
            "http://web:8000"
                .parse::<UpstreamAddr>()
                .unwrap()
                .to_string(),
            "web:8000"
        );
        assert!("web"
            .parse::<UpstreamAddr>()
            .unwrap_err()
            .contains("no port"));
        assert!("a b:80".parse::<UpstreamAddr>().is_err());
        assert!("u:p@web:80".parse::<UpstreamAddr>().is_err());
    }

    #[tokio::test]
    async fn ejected_peers_are_skipped_until_fail_timeout() {
        let addrs: Vec<UpstreamAddr> = ["127.0.0.1:1", "127.0.0.1:2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let peers = Peers::new(
            &addrs,
            BalanceConfig {
                strategy: Strategy::RoundRobin,
                max_fails: 2,
                fail_timeout: Duration::from_secs(60),
                health_check: None,
            },
            Duration::from_secs(1),
            Duration::from_secs(1),
            None,
        );
        peers.failed(0);
        // One failure of two allowed: still chosen in turn.
        let picks: Vec<usize> = (0..4).map(|_| peers.choose(None)).collect();
        assert!(picks.contains(&0));
        peers.failed(0);
        let picks: Vec<usize> = (0..4).map(|_| peers.choose(None)).collect();
        assert_eq!(picks, vec![1, 1, 1, 1]);
        // Both ejected: still answer with someone rather than nobody.
        peers.failed(1);
        peers.failed(1);
        let pick = peers.choose(None);
        assert!(pick < 2);
    }
}
