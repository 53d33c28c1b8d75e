//! The phases every request passes, in order, in one function: static files (answered
//! whole by `handle_static`, which the fast path shares) → client address → limit_req →
//! limit_conn → backend (in-process router or upstream peers) with forwarded headers →
//! response headers → log. A bodiless request for upstream peers that the fast path read
//! takes the same phases on the wire form of its head (`prepare_proxy`, then `proxy`),
//! sharing the limit_req and limit_conn decisions, the realip walk and the forwarding
//! rewrite with `handle`. limit_conn comes after limit_req, as in nginx (see
//! `conn_limit.rs`); its guard rides in the response body, so a request stays counted
//! until its answer has been sent.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Version};
use keel_limit::{Clock, Decision, MonotonicClock};
use tower::ServiceExt;

use crate::access_log::{self, AccessLog, Entry, LoggedBody};
use crate::client_ip::TrustedProxies;
use crate::conn_limit::{self, ConnGuard, ConnLimitConfig, Held};
use keel_edge_static::StaticService;

/// Where collected static files are served, as in the classic `location /static/`.
const STATIC_PREFIX: &str = "/static/";
use crate::h1::request::{self, Refusal};
use crate::headers;
use crate::limit_req::LimitConfig;
use crate::proxy::{Forwarding, Peers, ProxyError, Streamed};
use crate::upstream::{Answer, RawBody};
use crate::{Backend, EdgeConfig};

#[derive(Debug)]
enum Target {
    Peers(Box<Peers>),
    InProcess(axum::Router),
}

/// What a configuration reload replaces: the backend, the limits, the trusted proxies.
/// Requests in flight keep the version they started with.
#[derive(Debug)]
struct Dynamic {
    target: Target,
    limit: Option<LimitConfig>,
    conn_limit: Option<ConnLimitConfig>,
    trusted: TrustedProxies,
}

impl Dynamic {
    /// `limit` is built from `cfg`'s spec, and `conn_limit` is `cfg`'s, or on a reload the
    /// ones that keep the running zones.
    fn new(
        cfg: &crate::Routing,
        limit: Option<LimitConfig>,
        conn_limit: Option<ConnLimitConfig>,
    ) -> Dynamic {
        let target = match &cfg.backend {
            Backend::Upstreams(addrs) => Target::Peers(Box::new(Peers::new(
                addrs,
                cfg.balance.clone(),
                cfg.connect_timeout,
                cfg.response_timeout,
                cfg.body_idle_timeout,
            ))),
            Backend::InProcess(router) => Target::InProcess(router.clone()),
        };
        Dynamic {
            target,
            limit,
            conn_limit,
            trusted: cfg.trusted_proxies.clone(),
        }
    }
}

/// Shared by every connection of one edge.
#[derive(Debug)]
pub(crate) struct State {
    dynamic: ArcSwap<Dynamic>,
    clock: MonotonicClock,
    access_log: Option<AccessLog>,
    statics: Option<StaticService>,
    max_body_bytes: Option<u64>,
}

impl State {
    /// `limit` is `cfg.limit` built ([`crate::LimitSpec::build`]), once for every worker.
    pub(crate) fn new(cfg: &EdgeConfig, limit: Option<LimitConfig>) -> State {
        State {
            dynamic: ArcSwap::from_pointee(Dynamic::new(
                &cfg.routing,
                limit,
                cfg.routing.conn_limit.clone(),
            )),
            clock: MonotonicClock::new(),
            access_log: cfg.access_log.clone(),
            max_body_bytes: cfg.max_body_bytes,
            statics: cfg
                .static_files
                .clone()
                .map(|handle| StaticService::new(handle).mount(STATIC_PREFIX)),
        }
    }

    /// Swaps in the backend, limits and trusted proxies of `cfg`, with `limit` built from
    /// its spec against the running zones (by `Reloader::reload`, once for all workers).
    /// Listeners, TLS, static files and the access log are not touched (they reload on
    /// their own). limit_conn zones still configured under the same name are kept, with
    /// the counts of the requests in flight ([`ConnLimitConfig::adopting`]). Every
    /// worker's state holds the same zones, so each worker adopts the same ones.
    pub(crate) fn reload(&self, cfg: &crate::Routing, limit: Option<LimitConfig>) {
        let current = self.dynamic.load();
        let conn_limit = cfg
            .conn_limit
            .as_ref()
            .map(|new| new.adopting(current.conn_limit.as_ref()));
        self.dynamic
            .store(std::sync::Arc::new(Dynamic::new(cfg, limit, conn_limit)));
    }

    /// The limit_req zones and limiters in use now, which a reload compares with.
    pub(crate) fn limit(&self) -> Option<LimitConfig> {
        self.dynamic.load().limit.clone()
    }

    /// Runs the active health checks of whatever upstream peers are current, forever.
    pub(crate) async fn health_checks(&self) {
        loop {
            let dynamic = self.dynamic.load_full();
            let pause = match &dynamic.target {
                Target::Peers(peers) => match peers.health_check() {
                    Some(check) => {
                        peers.check_once(check).await;
                        check.interval
                    }
                    None => std::time::Duration::from_secs(1),
                },
                Target::InProcess(_) => return,
            };
            drop(dynamic);
            tokio::time::sleep(pause).await;
        }
    }
}

/// The static phase: client address, access log entry and the static service. [`handle`]
/// starts with it, and the fast path (`fast.rs`) calls it without hyper. `None` when this
/// edge serves no static files or the path is not under `/static/`. Static files are
/// never rate limited (nginx's classic config puts limit_req on the proxied location only).
pub(crate) fn handle_static<B>(
    state: &State,
    peer: SocketAddr,
    request: &Request<B>,
) -> Option<Response<Body>> {
    let statics = state.statics.as_ref()?;
    if !request.uri().path().starts_with(STATIC_PREFIX) {
        return None;
    }
    let entry = state.access_log.as_ref().map(|_| {
        let started = Instant::now();
        let dynamic = state.dynamic.load();
        let client = dynamic.trusted.client_ip(peer.ip(), request.headers());
        log_entry(client, request, started)
    });
    let response = statics.handle_request(request).map(Body::new);
    Some(finish(state, entry, response))
}

fn log_entry<B>(client: IpAddr, request: &Request<B>, started: Instant) -> Entry {
    Entry::new(
        client,
        request.method(),
        request.uri(),
        request.version(),
        request.headers(),
        started,
    )
}

/// The static phase's plain `200` as wire bytes, lent to `f`
/// ([`keel_edge_static::StaticFiles::with_plain_hit`]), when nothing else in that phase
/// would happen: `None` when the answer is anything but that `200`. Its access log
/// entry is [`static_hit_entry`]'s.
pub(crate) fn with_plain_static_hit<'a, R>(
    state: &State,
    target: &str,
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    f: impl FnOnce(keel_edge_static::PlainHitRef<'_>) -> R,
) -> Option<R> {
    state.statics.as_ref()?.with_plain_hit(target, headers, f)
}

/// The access log entry of a plain static hit answered from the head as read (`None`
/// without a log), as [`handle_static`] makes it from the parsed request.
pub(crate) fn static_hit_entry<'a>(
    state: &State,
    peer: SocketAddr,
    head_only: bool,
    version: Version,
    target: &str,
    fields: impl Iterator<Item = crate::headers::Field<'a>> + Clone,
) -> Option<Entry> {
    state.access_log.as_ref()?;
    let started = Instant::now();
    let client = state
        .dynamic
        .load()
        .trusted
        .client_ip_of_fields(peer.ip(), fields.clone());
    let method = if head_only { "HEAD" } else { "GET" };
    let mut entry = Entry::from_head(client, method, target, version, fields, started);
    entry.status(StatusCode::OK.as_u16());
    Some(entry)
}

/// Writes the access log line of an answer the fast path wrote itself, with the length of
/// its body.
pub(crate) fn log(state: &State, entry: Entry, bytes: u64) {
    if let Some(log) = &state.access_log {
        log.log(entry, bytes);
    }
}

/// Whether `path` is one the static phase answers.
pub(crate) fn is_static_path(path: &[u8]) -> bool {
    path.starts_with(STATIC_PREFIX.as_bytes())
}

/// One request, every phase.
pub(crate) async fn handle(
    state: &State,
    peer: SocketAddr,
    proto: &'static str,
    request: Request<Body>,
) -> Response<Body> {
    // Phase: the codec's rules, on the view hyper's parts give.
    let mut request = request;
    match apply_rules(&mut request) {
        Ok(path) => handle_checked(state, peer, proto, request, &path).await,
        Err(refusal) => refusal_response(refusal),
    }
}

/// [`handle`]'s phases after the codec's rules, for a request that passed them already
/// (the fast path checks the wire form of its heads): `path` is its normalised path.
pub(crate) async fn handle_checked(
    state: &State,
    peer: SocketAddr,
    proto: &'static str,
    request: Request<Body>,
    path: &str,
) -> Response<Body> {
    // Phase: static files, answered from memory.
    if let Some(response) = handle_static(state, peer, &request) {
        return response;
    }
    let started = Instant::now();

    // Phase: who is the client.
    // One configuration for the whole request, even if a reload lands meanwhile.
    let dynamic = state.dynamic.load_full();
    let client = dynamic.trusted.client_ip(peer.ip(), request.headers());
    let entry = state
        .access_log
        .as_ref()
        .map(|_| log_entry(client, &request, started));

    // Phase: limit_req, on the normalised path. Rejections cost the zone nothing
    // (nginx), and end here.
    if let Some((decision, status)) = limit(state, &dynamic, path, client) {
        let wants_html = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| accepts_html(v.as_bytes()));
        let page = match decision {
            Decision::Reject(_) => limit_page(state, status, wants_html),
            _ => None,
        };
        if let Some(response) = apply_limit(decision, status, client, page).await {
            return finish(state, entry, response);
        }
    }

    // Phase: limit_conn, after limit_req's delay as in nginx. From here to the end of the
    // response body the request is counted.
    let guard = match admit_conn(&dynamic, conn_route(&dynamic, path), client) {
        Ok(guard) => guard,
        Err(status) => return finish(state, entry, conn_refusal(status)),
    };
    let response = to_backend(state, &dynamic, peer, proto, client, entry, request).await;
    conn_limit::hold(response, guard)
}

/// [`handle_checked`]'s phases past the limits: body size, forwarded headers, the
/// backend, the response headers, the log.
async fn to_backend(
    state: &State,
    dynamic: &Dynamic,
    peer: SocketAddr,
    proto: &'static str,
    client: IpAddr,
    mut entry: Option<Entry>,
    mut request: Request<Body>,
) -> Response<Body> {
    // Phase: body size (client_max_body_size): a declared length over the cap is refused
    // before anything is sent on; an undeclared (chunked) one is cut off at the cap.
    if let Some(max) = state.max_body_bytes {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return finish(state, entry, too_large(max));
        }
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
        // For upstream peers, the whole body is read before anything is sent on (nginx's
        // `proxy_request_buffering on`): a body whose chunked framing breaks halfway is
        // refused with 400 and the peer never sees a piece of it, and the peer gets a
        // `Content-Length` instead of the client's framing. Without a cap
        // (`client_max_body_size 0`) bodies stream, as nginx's unbuffered mode.
        if matches!(dynamic.target, Target::Peers(_))
            && axum::body::HttpBody::size_hint(request.body()).exact() != Some(0)
        {
            request = match buffer_body(request).await {
                Ok(request) => request,
                Err(response) => return finish(state, entry, response),
            };
        }
    }

    // Phase: the backend, with the forwarding headers set in whichever form the request
    // travels in.
    let forwarding = Forwarding {
        client,
        peer: keel_client::canonical(peer.ip()),
        proto,
    };
    let upstream_started = Instant::now();
    let (mut response, upstream) = match &dynamic.target {
        Target::InProcess(router) => {
            forwarding.rewrite(request.headers_mut());
            // The app has no socket of its own here: hand it the client the edge knows,
            // which it uses as `keel serve` uses the one it works out.
            request.extensions_mut().insert(keel_client::Client {
                ip: forwarding.client,
                https: forwarding.proto == "https",
            });
            match router.clone().oneshot(request).await {
                Ok(response) => (response, None),
                Err(never) => match never {},
            }
        }
        Target::Peers(peers) => match peers.forward(request, forwarding).await {
            Ok((response, peer)) => (response, Some(peer)),
            Err(ProxyError::BodyTooLarge) => {
                let max = state.max_body_bytes.unwrap_or(0);
                return finish(state, entry, too_large(max));
            }
            Err(error) => {
                tracing::warn!(%error, %client, "proxy error");
                return finish(state, entry, error_page(&error));
            }
        },
    };
    if let Some(entry) = entry.as_mut() {
        let name = upstream.map_or_else(|| "app".to_owned(), ToString::to_string);
        entry.upstream(name, upstream_started.elapsed());
    }

    // Phase: rewrite the response.
    headers::remove_hop_by_hop(response.headers_mut());

    // Phase: log (when the body has been sent).
    finish(state, entry, response)
}

/// A bodiless `GET`/`HEAD` for upstream peers as the fast path read it, past the phases
/// that need only its head ([`prepare_proxy`]).
pub(crate) struct ProxyRequest {
    dynamic: std::sync::Arc<Dynamic>,
    client: IpAddr,
    limit: Option<(Decision, StatusCode)>,
    /// The limit_conn route of its path, taken after limit_req's delay.
    conn_route: Option<usize>,
    head: crate::headers::UpstreamHead,
    head_only: bool,
    /// The client asked for a page (`Accept: text/html`): a refusal is the error page.
    wants_html: bool,
    /// Its access log entry, when there is a log.
    entry: Option<Entry>,
}

/// A reply to write: an upstream's answer in wire form ([`proxy`]), or a `Response` (the
/// edge's own from [`proxy`]: a rejection by limit_req, a 502 or 504 page; or any from
/// [`handle`]).
pub(crate) enum Reply {
    Upstream(Answer<Held<LoggedBody<Streamed<RawBody>>>>),
    Response(Response<Body>),
}

/// [`handle`]'s phases for a bodiless `GET`/`HEAD` (an origin-form `target`, its
/// normalised `path` from the codec's rules, the head's `fields`) on the wire form of its
/// head, when they need nothing else: upstream peers
/// and not a static path. `None` when the request must take [`handle`].
pub(crate) fn prepare_proxy<'a, I>(
    state: &State,
    peer: SocketAddr,
    head_only: bool,
    version: Version,
    target: &str,
    path: &str,
    fields: I,
) -> Option<ProxyRequest>
where
    I: Iterator<Item = crate::headers::Field<'a>> + Clone,
{
    if state.statics.is_some() && is_static_path(target.as_bytes()) {
        return None;
    }
    let dynamic = state.dynamic.load_full();
    if !matches!(dynamic.target, Target::Peers(_)) {
        return None;
    }
    let client = dynamic
        .trusted
        .client_ip_of_fields(peer.ip(), fields.clone());
    // Only plain-HTTP connections take this path (TLS ones are hyper's).
    let forwarding = Forwarding {
        client,
        peer: keel_client::canonical(peer.ip()),
        proto: "http",
    };
    let method = if head_only { "HEAD" } else { "GET" };
    let entry = state.access_log.as_ref().map(|_| {
        Entry::from_head(
            client,
            method,
            target,
            version,
            fields.clone(),
            Instant::now(),
        )
    });
    let limit = limit(state, &dynamic, path, client);
    // Only a refusal looks at Accept: the hot path reads no extra header.
    let wants_html = matches!(limit, Some((Decision::Reject(_), _)))
        && fields
            .clone()
            .any(|(name, value)| name.eq_ignore_ascii_case(b"accept") && accepts_html(value));
    Some(ProxyRequest {
        wants_html,
        head: forwarding.head(method, target, fields),
        limit,
        conn_route: conn_route(&dynamic, path),
        client,
        dynamic,
        head_only,
        entry,
    })
}

/// The rest of [`handle`]'s phases for a [`ProxyRequest`]: limit_req, limit_conn, the
/// peers and the access log entry (written when the answer's body ends, as [`handle`]'s).
pub(crate) async fn proxy(state: &State, request: ProxyRequest) -> Reply {
    let ProxyRequest {
        dynamic,
        client,
        limit,
        conn_route,
        head,
        head_only,
        wants_html,
        mut entry,
    } = request;
    if let Some((decision, status)) = limit {
        let page = match decision {
            Decision::Reject(_) => limit_page(state, status, wants_html),
            _ => None,
        };
        if let Some(response) = apply_limit(decision, status, client, page).await {
            return Reply::Response(finish(state, entry, response));
        }
    }
    let guard = match admit_conn(&dynamic, conn_route, client) {
        Ok(guard) => guard,
        Err(status) => return Reply::Response(finish(state, entry, conn_refusal(status))),
    };
    let Target::Peers(peers) = &dynamic.target else {
        // prepare_proxy took only requests for peers, and the configuration is pinned.
        let error = ProxyError::Upstream {
            peer: "app".to_owned(),
            detail: "no upstream peers".to_owned(),
        };
        let response = finish(state, entry, error_page(&error));
        return Reply::Response(conn_limit::hold(response, guard));
    };
    let upstream_started = Instant::now();
    match peers.forward_head(&head, head_only).await {
        Ok((answer, peer)) => {
            let pending = entry
                .take()
                .zip(state.access_log.clone())
                .map(|(mut entry, log)| {
                    entry.upstream(peer.to_string(), upstream_started.elapsed());
                    entry.status(answer.status.as_u16());
                    (entry, log)
                });
            Reply::Upstream(
                answer.map_body(|body| conn_limit::held(access_log::logged(body, pending), guard)),
            )
        }
        Err(error) => {
            tracing::warn!(%error, %client, "proxy error");
            let response = finish(state, entry, error_page(&error));
            Reply::Response(conn_limit::hold(response, guard))
        }
    }
}

/// The limit_req decision for a request, when a zone covers its path, and the status of
/// a rejection.
fn limit(
    state: &State,
    dynamic: &Dynamic,
    path: &str,
    client: IpAddr,
) -> Option<(Decision, StatusCode)> {
    let limit = dynamic.limit.as_ref()?;
    let limiter = limit.for_path(path)?;
    Some((limiter.check(&client, state.clock.now_ms()), limit.status))
}

/// The limit_conn route for `path`, when limit_conn is on and a route covers it.
fn conn_route(dynamic: &Dynamic, path: &str) -> Option<usize> {
    dynamic.conn_limit.as_ref()?.route_index(path)
}

/// limit_conn for a request on `route`: the guard counting it (`None` when nothing
/// does), or the status to reject it with ([`conn_refusal`]). Off, or no route: nothing
/// at all.
fn admit_conn(
    dynamic: &Dynamic,
    route: Option<usize>,
    client: IpAddr,
) -> Result<Option<ConnGuard>, StatusCode> {
    let (Some(config), Some(route)) = (dynamic.conn_limit.as_ref(), route) else {
        return Ok(None);
    };
    conn_limit::admit(config, route, client)
}

/// The answer to a request over the connection limit. No `Retry-After`: nobody knows when
/// a request in flight will end (nginx sends none either).
fn conn_refusal(status: StatusCode) -> Response<Body> {
    text_page(
        status,
        "Too many requests in progress from your address (connection limit); \
         retry once one has finished.\n",
    )
}

fn finish(state: &State, entry: Option<Entry>, response: Response<Body>) -> Response<Body> {
    match (entry, &state.access_log) {
        (Some(mut entry), Some(log)) => {
            entry.status(response.status().as_u16());
            response.map(|body| access_log::wrap(body, entry, log.clone()))
        }
        _ => response,
    }
}

/// Whether an `Accept` value asks for a page.
fn accepts_html(value: &[u8]) -> bool {
    value
        .windows(9)
        .any(|w| w.eq_ignore_ascii_case(b"text/html"))
}

/// The collected `errors/<status>.html` for a refusal, when the client asked for a page
/// (`Accept: text/html`) and the static root has one: nginx's `error_page`. `None` keeps
/// the one-line text answer (scripts, API clients, no static root).
fn limit_page(state: &State, status: StatusCode, wants_html: bool) -> Option<bytes::Bytes> {
    if !wants_html {
        return None;
    }
    // Names under the static root, as the mount leaves them: `errors/503.html`.
    let path = format!("errors/{}.html", status.as_u16());
    state
        .statics
        .as_ref()?
        .handle()
        .with_plain_hit(&path, std::iter::empty(), |hit| hit.body.clone())
}

/// Returns the rejection response, or sleeps the delay and returns `None` to go on.
async fn apply_limit(
    decision: Decision,
    status: StatusCode,
    client: IpAddr,
    page: Option<bytes::Bytes>,
) -> Option<Response<Body>> {
    match decision {
        Decision::Pass | Decision::DryRunDelay(_) => None,
        Decision::DryRunReject(rejected) => {
            tracing::info!(%client, limit = rejected.limit, "limit_req dry run: would reject");
            None
        }
        Decision::Delay(delayed) => {
            tracing::debug!(%client, delay = ?delayed.delay(), "limit_req: delaying request");
            tokio::time::sleep(delayed.delay()).await;
            None
        }
        Decision::Reject(rejected) => {
            tracing::debug!(%client, limit = rejected.limit, "limit_req: rejecting request");
            let mut response = match page {
                Some(html) => {
                    let mut r = Response::new(Body::from(html));
                    *r.status_mut() = status;
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    );
                    r
                }
                None => text_page(
                    status,
                    "Too many requests from your address; slow down and retry.\n",
                ),
            };
            let secs = rejected.retry_after_secs().unwrap_or(1).max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Some(response)
        }
    }
}

/// How long a client may take to send a request body the edge buffers (nginx's
/// `client_body_timeout` is 60 s between two reads; this bounds the whole body).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads `request`'s whole body (already capped by `Limited`) and gives it back with a
/// `Content-Length`, or the answer for a client whose body broke: 413 over the cap, 408
/// too slow, 400 for broken framing.
async fn buffer_body(request: Request<Body>) -> Result<Request<Body>, Response<Body>> {
    use http_body_util::BodyExt;
    let (mut parts, body) = request.into_parts();
    let collected = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) => {
            if crate::proxy::body_over_limit(&error) {
                return Err(refusal_response(Refusal {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    reason: "the request body is larger than this server accepts",
                }));
            }
            tracing::debug!(%error, "request body could not be read");
            return Err(refusal_response(Refusal {
                status: StatusCode::BAD_REQUEST,
                reason: "the request body is not framed as its head says",
            }));
        }
        Err(_) => {
            return Err(refusal_response(Refusal {
                status: StatusCode::REQUEST_TIMEOUT,
                reason: "the request body did not arrive in time",
            }))
        }
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(collected.len()));
    Ok(Request::from_parts(parts, Body::from(collected)))
}

/// Runs the codec's rules ([`request::check`]) on a request as hyper holds it, and makes
/// it what they decided: an absolute-form target (or HTTP/2's `:authority`) gives the
/// `Host`, and the target becomes origin-form. Returns the normalised path, which
/// limit_req matches.
fn apply_rules<B>(request: &mut Request<B>) -> Result<String, Refusal> {
    let uri = request.uri();
    let version = request.version();
    let h2 = version >= Version::HTTP_2;
    let absolute;
    let target = match (uri.scheme(), uri.authority()) {
        // HTTP/1 absolute-form: as sent.
        (Some(_), Some(_)) if !h2 => {
            absolute = uri.to_string();
            absolute.as_str()
        }
        // Authority-form (CONNECT host:port): refused by the rules as a target.
        (None, Some(authority)) => authority.as_str(),
        _ => uri.path_and_query().map_or("/", |pq| pq.as_str()),
    };
    let checked = request::check(request::View {
        method: request.method().as_str(),
        target,
        version,
        authority: h2.then(|| uri.authority().map(|a| a.as_str())).flatten(),
        fields: request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
    })?;
    let path = checked.path.into_owned();
    let host = checked
        .host_override
        .map(HeaderValue::from_str)
        .transpose()
        .map_err(|_| request::Refusal {
            status: StatusCode::BAD_REQUEST,
            reason: "invalid host",
        })?;
    let origin = (checked.origin != target && !h2)
        .then(|| checked.origin.parse::<axum::http::Uri>())
        .transpose()
        .map_err(|_| request::Refusal {
            status: StatusCode::BAD_REQUEST,
            reason: "invalid target",
        })?;
    if let Some(host) = host {
        request.headers_mut().insert(header::HOST, host);
    }
    if let Some(origin) = origin {
        *request.uri_mut() = origin;
    }
    Ok(path)
}

/// The answer to a request the codec's rules refuse, with `Connection: close`: what
/// follows a broken request on the same connection cannot be trusted.
pub(crate) fn refusal_response(refusal: Refusal) -> Response<Body> {
    tracing::debug!(status = %refusal.status, reason = refusal.reason, "request refused");
    closing_page(
        refusal.status,
        format!(
            "{} {}: {}.\n",
            refusal.status.as_str(),
            refusal.status.canonical_reason().unwrap_or(""),
            refusal.reason
        ),
    )
}

fn too_large(max: u64) -> Response<Body> {
    // The rest of the body is not read: the connection cannot be reused.
    closing_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("413 Content Too Large: request bodies are limited to {max} bytes.\n"),
    )
}

/// A short text answer after which the connection closes.
fn closing_page(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn error_page(error: &ProxyError) -> Response<Body> {
    match error {
        ProxyError::BodyTooLarge => too_large(0),
        ProxyError::Timeout { .. } => text_page(
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the application did not answer in time.\n",
        ),
        ProxyError::Connect { .. } | ProxyError::Upstream { .. } | ProxyError::Closed { .. } => {
            text_page(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the application could not be reached.\n",
            )
        }
    }
}

fn text_page(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
