//! The load workers: each owns one HTTP/1.1 keep-alive connection, takes the next request
//! from a shared schedule, times it, and sends one sample per request to the aggregator.
//!
//! Like a hey worker, a worker sends one request at a time on its own connection, opens a
//! new connection when the old one is gone (counted in "DNS+dialup"), and a run with `-z`
//! stops *starting* requests at the deadline; requests in flight then are awaited (up to
//! `-t`) and counted, and "Total" includes that tail. Differences from hey:
//!
//! - **Request numbering is shared.** hey gives every worker `n / c` requests up front;
//!   here workers take request numbers from one atomic counter, so exactly `n` are sent
//!   and a worker stuck on a slow response does not hold back its share.
//! - **Open-loop `--rate`.** Request `k` is due at `start + k / rate`. The free worker that
//!   takes it sleeps until then (or sends at once if it is late) and its latency is measured
//!   from the due time: the wrk2 / oha correction for coordinated omission. hey has no
//!   such mode; with `-q` (closed loop) latency is measured from the actual send.
//! - **Retry on a stale keep-alive connection.** When a reused connection turns out to be
//!   closed by the server (the request was never written, or an idempotent request got no
//!   response at all), the request is sent once more on a fresh connection, as Go's
//!   transport (and so hey) does; it counts as one request.
//! - **Timing phases.** hyper does not report when the request was fully written, so
//!   "req write" is always 0 and its time is part of "resp wait".
//! - **Connections use hyper's connection-level client** (`client::conn::http1`) rather
//!   than a pool: one connection per worker by construction, no pool lookup per request,
//!   and the worker task drives its connection itself instead of spawning a task for it.
//!   So a connection is only read while its worker waits on it; a server's close between
//!   two requests is seen when the next one is sent, and the retry above covers it.
//! - **Samples travel in batches** (up to 64, or every 50 ms) to keep the channel off the
//!   per-request path; the aggregator still sees every sample.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONNECTION;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::error::{ErrorKind, RequestError};
use crate::options::{Plan, Stop};

/// Samples a worker collects before handing them to the aggregator.
const BATCH: usize = 64;
/// ... or after this long, so progress and the aggregator never lag much.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Time spent in each phase of one request (hey's "Details").
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Phases {
    /// DNS lookup, when a new connection was opened.
    pub dns: Duration,
    /// DNS lookup + TCP connect + handshake, when a new connection was opened.
    pub dial: Duration,
    /// From the connection being ready to the response head (includes writing the request).
    pub wait: Duration,
    /// From the response head to the end of the body.
    pub read: Duration,
    /// When the response head arrived; `read` is computed from it by the worker.
    pub head_at: Option<Instant>,
}

/// A successful exchange: any status code counts as a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub body_bytes: u64,
}

/// One request's result, as the aggregator receives it.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub outcome: Result<Response, RequestError>,
    /// From the send (or, with `--rate`, the scheduled time) to the end of the body.
    pub latency: Duration,
    pub phases: Phases,
    /// When the request was started, from the start of the run.
    pub offset: Duration,
    /// When it finished, from the start of the run.
    pub done: Duration,
}

/// What all workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Plan,
    pub start: Instant,
    /// The next request number to take.
    pub next: AtomicU64,
    /// Set on an outside stop (hey's Ctrl-C): no new requests.
    pub stopped: AtomicBool,
}

impl Shared {
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            start: Instant::now(),
            next: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    fn past_deadline(&self, at: Instant) -> bool {
        match self.plan.stop {
            Stop::Deadline(d) => at >= self.start + d,
            Stop::Count(_) => false,
        }
    }
}

type Driver = Pin<Box<Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// One connection, driven by the worker's own task (no task per connection: a request
/// costs no cross-task wake-ups) and closed when dropped.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection has finished (closed by either side or failed).
    driver: Option<Driver>,
}

/// Awaits `fut` while driving the connection, which is what moves the request and the
/// response over the socket. When the connection finishes, its driver is dropped at once:
/// that fails any request still queued on it (hyper hands it back unsent), so `fut`
/// cannot wait forever on a dead connection.
pub(crate) async fn drive<C: Future, F: Future>(
    driver: &mut Option<Pin<Box<C>>>,
    fut: F,
) -> F::Output {
    let mut fut = pin!(fut);
    loop {
        let Some(conn) = driver.as_mut() else {
            return fut.await;
        };
        tokio::select! {
            biased;
            out = &mut fut => return out,
            // Its error, if any, also surfaces on the request in flight.
            _ = conn.as_mut() => *driver = None,
        }
    }
}

/// Runs one worker until the plan's stop condition; returns when it has sent its last sample.
pub(crate) async fn worker(shared: Arc<Shared>, tx: mpsc::Sender<Vec<Sample>>) {
    let plan = &shared.plan;
    let mut conn: Option<Conn> = None;
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushed_at = Instant::now();
    // hey: `time.Tick(1e6/QPS µs)` per worker; the first tick comes one period in.
    let mut throttle = plan.qps_period.map(|period| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    loop {
        if shared.stopped.load(Ordering::Relaxed) {
            break;
        }
        let k = shared.next.fetch_add(1, Ordering::Relaxed);
        if let Stop::Count(n) = plan.stop {
            if k >= n {
                break;
            }
        }
        if let Some(t) = throttle.as_mut() {
            t.tick().await;
        }
        let due = plan
            .rate_per_sec
            .map(|rate| shared.start + Duration::from_secs_f64(k as f64 / rate));
        if let Some(due) = due {
            if shared.past_deadline(due) {
                // The schedule is over, but the run lasts `-z` as with hey, so that
                // requests/sec is the rate that was offered over the whole duration.
                if let Stop::Deadline(d) = plan.stop {
                    tokio::time::sleep_until((shared.start + d).into()).await;
                }
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        if shared.past_deadline(sent) || shared.stopped.load(Ordering::Relaxed) {
            break;
        }

        let mut phases = Phases::default();
        let outcome = match plan.timeout {
            Some(limit) => {
                match tokio::time::timeout(limit, exchange(&mut conn, plan, sent, &mut phases))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        conn = None;
                        Err(RequestError::new(
                            ErrorKind::Timeout,
                            format!(
                                "no complete response within {:?} (Client.Timeout exceeded)",
                                limit
                            ),
                        ))
                    }
                }
            }
            None => exchange(&mut conn, plan, sent, &mut phases).await,
        };
        let end = Instant::now();
        if let Some(head_at) = phases.head_at {
            phases.read = end.saturating_duration_since(head_at);
        }
        let sample = Sample {
            outcome,
            latency: end.saturating_duration_since(due.unwrap_or(sent)),
            phases,
            offset: sent.saturating_duration_since(shared.start),
            done: end.saturating_duration_since(shared.start),
        };
        batch.push(sample);
        if batch.len() >= BATCH || end.duration_since(flushed_at) >= FLUSH_EVERY {
            flushed_at = end;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(full).await.is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
}

fn build_request(plan: &Plan) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(plan.body.clone()));
    *req.method_mut() = plan.method.clone();
    *req.uri_mut() = plan.path.clone();
    *req.headers_mut() = plan.headers.clone();
    req
}

/// One request on the worker's connection (opening one if needed), body read to the end.
/// On any failure the connection is dropped; the next request opens a new one.
async fn exchange(
    slot: &mut Option<Conn>,
    plan: &Plan,
    sent: Instant,
    phases: &mut Phases,
) -> Result<Response, RequestError> {
    let mut retried = false;
    loop {
        let (mut conn, reused) = match slot.take() {
            Some(c) if c.driver.is_some() && !c.sender.is_closed() => (c, true),
            _ => (connect(plan, phases).await?, false),
        };
        // Clock reads are a visible share of the per-request cost against a fast server:
        // a reused connection is ready at `sent`, and the body's end is the worker's `end`.
        let ready_at = if reused && !retried {
            sent
        } else {
            Instant::now()
        };
        let Conn { sender, driver } = &mut conn;
        if let Err(e) = drive(driver, sender.ready()).await {
            if reused && !retried {
                retried = true;
                continue;
            }
            return Err(RequestError::hyper(&e));
        }
        match drive(driver, sender.try_send_request(build_request(plan))).await {
            Ok(resp) => {
                let head_at = Instant::now();
                phases.wait = head_at - ready_at;
                let status = resp.status().as_u16();
                let close = plan.disable_keepalive
                    || resp
                        .headers()
                        .get_all(CONNECTION)
                        .iter()
                        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                let mut body = resp.into_body();
                let mut body_bytes = 0u64;
                while let Some(frame) = drive(driver, body.frame()).await {
                    match frame {
                        Ok(frame) => {
                            if let Some(data) = frame.data_ref() {
                                body_bytes += data.len() as u64;
                            }
                        }
                        Err(e) => return Err(RequestError::hyper(&e)),
                    }
                }
                phases.head_at = Some(head_at);
                if !close {
                    *slot = Some(conn);
                }
                return Ok(Response { status, body_bytes });
            }
            Err(mut e) => {
                let unsent = e.take_message().is_some();
                let err = RequestError::hyper(e.error());
                let replayable = unsent
                    || (plan.method.is_idempotent() && err.kind == ErrorKind::ConnectionClosed);
                if reused && !retried && replayable {
                    retried = true;
                    continue;
                }
                return Err(err);
            }
        }
    }
}

async fn connect(plan: &Plan, phases: &mut Phases) -> Result<Conn, RequestError> {
    let started = Instant::now();
    let target = &plan.target;
    let addrs: Vec<SocketAddr> = match target.ip {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| {
                RequestError::new(
                    ErrorKind::Other,
                    format!("dial tcp: lookup {}: {e}", target.host),
                )
            })?
            .collect(),
    };
    phases.dns = started.elapsed();
    let mut last_err = RequestError::new(
        ErrorKind::Other,
        format!("dial tcp: lookup {}: no addresses", target.host),
    );
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = RequestError::connect(&addr.to_string(), &e),
        }
    }
    let stream = stream.ok_or(last_err)?;
    // Go's dialer sets TCP_NODELAY too; without it small requests wait for delayed ACKs.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| RequestError::hyper(&e))?;
    phases.dial = started.elapsed();
    Ok(Conn {
        sender,
        driver: Some(Box::pin(connection)),
    })
}
