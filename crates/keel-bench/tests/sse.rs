//! `keel_bench::sse` black-box: the parser on awkward byte streams, option checks, and
//! whole runs against a small SSE server on 127.0.0.1:0 written here, whose faults are
//! known (drops events for one stream, ends a stream mid-way, answers 503, never sends a
//! frame). Every run is bounded by its own `timeout` and by a test-level timeout; at most
//! 50 streams and 40 events per run.

// Test code: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keel_bench::sse::{parse_payload, payload};
use keel_bench::{
    run_sse, run_sse_until, Publisher, SseEnd, SseErrorKind, SseItem, SseOptions, SseOptionsError,
    SseParseError, SseParser, SsePhase, SseProgress, SseProgressSink, SseReport,
};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

// ---------------------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------------------

/// How the test server behaves.
#[derive(Debug, Clone, Default)]
struct Behaviour {
    /// `POST /publish` requires `Authorization: Bearer <token>`.
    token: Option<String>,
    /// Events carry `id: <n>` (n from 1) and a reconnect with `Last-Event-ID` is replayed.
    ids: bool,
    /// The first stream (by connection order) never gets events whose id is a multiple of n.
    drop_every: Option<u64>,
    /// The first stream gets events whose id is a multiple of n twice.
    repeat_every: Option<u64>,
    /// The first stream is ended by the server after this many events (once).
    close_first_after: Option<usize>,
    /// Every event is written in three pieces, with `\r\n` line ends, split inside a line
    /// and between `\r` and `\n`.
    split: bool,
    /// After `retry:`, a comment and an event that is not the load generator's.
    chatter: bool,
    /// The stream's head is sent, then nothing ever.
    silent: bool,
    /// `/stream/` answers this status with a short body instead.
    status: Option<u16>,
    /// Publish every line appended to this file (for the command publisher).
    watch_file: Option<PathBuf>,
}

#[derive(Debug)]
struct State {
    behaviour: Behaviour,
    tx: broadcast::Sender<(u64, String)>,
    /// Everything published, for replay (the lock also orders publishes).
    history: Mutex<Vec<(u64, String)>>,
    streams: AtomicU64,
    publishes: AtomicU64,
    unauthorized: AtomicU64,
    /// `Last-Event-ID` of every stream request that had one.
    last_event_ids: Mutex<Vec<String>>,
}

impl State {
    fn publish(&self, message: String) -> u64 {
        let mut history = self.history.lock().unwrap();
        let id = history.len() as u64 + 1;
        history.push((id, message.clone()));
        let _ = self.tx.send((id, message));
        self.publishes.fetch_add(1, Ordering::SeqCst);
        id
    }
}

#[derive(Debug, Clone)]
struct Server {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    fn stream_url(&self) -> String {
        format!("http://{}/stream/", self.addr)
    }

    fn publisher(&self, token: Option<&str>) -> Publisher {
        Publisher::Url {
            url: format!("http://{}/publish", self.addr),
            token: token.map(str::to_string),
            channel: "demo_stream".into(),
        }
    }

    fn publishes(&self) -> u64 {
        self.state.publishes.load(Ordering::SeqCst)
    }
}

/// A response body fed by a channel: the stream stays open while the sender lives.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

type Resp = Response<BoxBody<Bytes, Infallible>>;

fn text(status: u16, body: &'static str) -> Resp {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .unwrap()
}

async fn spawn(behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, _) = broadcast::channel(1024);
    let state = Arc::new(State {
        behaviour,
        tx,
        history: Mutex::default(),
        streams: AtomicU64::new(0),
        publishes: AtomicU64::new(0),
        unauthorized: AtomicU64::new(0),
        last_event_ids: Mutex::default(),
    });
    if let Some(path) = state.behaviour.watch_file.clone() {
        tokio::spawn(watch_file(path, state.clone()));
    }
    let server = Server {
        addr: listener.local_addr().unwrap(),
        state: state.clone(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    server
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    match (req.method().as_str(), req.uri().path()) {
        ("POST", "/publish") => Ok(publish(&state, req).await),
        ("GET", "/stream/") => Ok(stream(state, &req)),
        ("GET", "/plain") => Ok(text(200, "not a stream")),
        _ => Ok(text(404, "not found")),
    }
}

async fn publish(state: &State, req: Request<Incoming>) -> Resp {
    if let Some(token) = &state.behaviour.token {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(format!("Bearer {token}").as_str()) {
            state.unauthorized.fetch_add(1, Ordering::SeqCst);
            return text(
                401,
                "send the publish token as Authorization: Bearer <token>",
            );
        }
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return text(400, "expected JSON"),
    };
    if json["channel"] != "demo_stream" {
        return text(403, "channel not allowed");
    }
    let Some(message) = json["message"].as_str() else {
        return text(400, "no message");
    };
    state.publish(message.to_string());
    text(200, "{\"ok\":true}")
}

fn stream(state: Arc<State>, req: &Request<Incoming>) -> Resp {
    let b = &state.behaviour;
    if let Some(code) = b.status {
        return text(code, "too many clients on this test server");
    }
    let number = state.streams.fetch_add(1, Ordering::SeqCst);
    let last_id: Option<u64> = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            state.last_event_ids.lock().unwrap().push(s.to_string());
            s.parse().unwrap()
        });
    // Subscribed before the first frame: from then on nothing published is missed.
    let mut live = state.tx.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let state = state.clone();
    tokio::spawn(async move {
        let b = &state.behaviour;
        if b.silent {
            tx.closed().await;
            return;
        }
        if tx.send(Bytes::from_static(b"retry: 50\n\n")).await.is_err() {
            return;
        }
        if b.chatter {
            let _ = tx.send(Bytes::from_static(b": keepalive\n\n")).await;
            let _ = tx
                .send(Bytes::from_static(b"event: note\ndata: hello\n\n"))
                .await;
        }
        let mut sent_up_to = 0;
        if let Some(after) = last_id.filter(|_| b.ids) {
            let missed: Vec<(u64, String)> = state
                .history
                .lock()
                .unwrap()
                .iter()
                .filter(|(id, _)| *id > after)
                .cloned()
                .collect();
            for (id, m) in missed {
                if send_event(&tx, b, id, &m).await.is_err() {
                    return;
                }
                sent_up_to = id;
            }
        }
        let mut sent = 0;
        loop {
            let (id, m) = match live.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if id <= sent_up_to {
                continue;
            }
            if number == 0 && b.drop_every.is_some_and(|n| id % n == 0) {
                continue;
            }
            if send_event(&tx, b, id, &m).await.is_err() {
                return;
            }
            if number == 0
                && b.repeat_every.is_some_and(|n| id % n == 0)
                && send_event(&tx, b, id, &m).await.is_err()
            {
                return;
            }
            sent += 1;
            if number == 0 && b.close_first_after == Some(sent) {
                return; // the body ends: a clean end of the stream
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(ChannelBody(rx).boxed())
        .unwrap()
}

async fn send_event(
    tx: &mpsc::Sender<Bytes>,
    b: &Behaviour,
    id: u64,
    message: &str,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    let nl = if b.split { "\r\n" } else { "\n" };
    let mut wire = String::new();
    if b.ids {
        wire.push_str(&format!("id: {id}{nl}"));
    }
    wire.push_str(&format!("data: {message}{nl}{nl}"));
    if !b.split {
        return tx.send(Bytes::from(wire)).await;
    }
    // Pieces: inside the `data:` line, and between the last `\r` and `\n`.
    let cut1 = wire.find("data: ").unwrap() + 9;
    let cut2 = wire.len() - 1;
    for piece in [&wire[..cut1], &wire[cut1..cut2], &wire[cut2..]] {
        tx.send(Bytes::copy_from_slice(piece.as_bytes())).await?;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Publishes every complete line appended to `path`.
async fn watch_file(path: PathBuf, state: Arc<State>) {
    let mut offset = 0;
    loop {
        if let Ok(all) = std::fs::read(&path) {
            if let Some(end) = all.iter().rposition(|&b| b == b'\n') {
                if end + 1 > offset {
                    for line in all[offset..end].split(|&b| b == b'\n') {
                        state.publish(String::from_utf8_lossy(line).into_owned());
                    }
                    offset = end + 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn opts(server: &Server, clients: usize, events: usize) -> SseOptions {
    let mut o = SseOptions::new(
        server.stream_url(),
        server.publisher(server.state.behaviour.token.as_deref()),
    );
    o.clients = clients;
    o.events = events;
    o.interval = Duration::from_millis(10);
    o.timeout = Duration::from_secs(15);
    o.connect_timeout = Duration::from_secs(5);
    o.settle = Duration::from_secs(2);
    o
}

/// Every test's outer bound.
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("test exceeded 30 s")
}

fn kinds(errors: &[keel_bench::SseErrorCount]) -> Vec<(SseErrorKind, u64)> {
    errors.iter().map(|e| (e.kind, e.count)).collect()
}

fn assert_sane(r: &SseReport) {
    assert_eq!(r.expected_deliveries, r.delivered + r.lost, "{r:#?}");
    assert_eq!(r.clients_requested, r.clients_connected + r.clients_failed);
    let d = &r.delivery_latency;
    assert!(
        d.min_ms <= d.p50_ms && d.p50_ms <= d.p90_ms && d.p90_ms <= d.p99_ms,
        "{d:?}"
    );
    assert!(d.p99_ms <= d.p99_9_ms && d.p99_9_ms <= d.max_ms, "{d:?}");
}

// ---------------------------------------------------------------------------------------
// Whole runs
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_every_client_exactly_once() {
    bounded(async {
        let server = spawn(Behaviour {
            token: Some("s3cret".into()),
            ids: true,
            ..Behaviour::default()
        })
        .await;
        let started = Instant::now();
        let r = run_sse(opts(&server, 50, 20), None).await.unwrap();
        assert_sane(&r);
        assert_eq!(r.ended_by, SseEnd::AllDelivered, "{}", r.to_text());
        assert_eq!(r.clients_connected, 50);
        assert_eq!(r.clients_failed, 0);
        assert_eq!(r.events_published, 20);
        assert_eq!(r.publish_failures, 0);
        assert_eq!(server.publishes(), 20);
        assert_eq!(server.state.unauthorized.load(Ordering::SeqCst), 0);
        assert_eq!(r.expected_deliveries, 1000);
        assert_eq!(r.delivered, 1000);
        assert_eq!((r.lost, r.duplicates, r.out_of_order), (0, 0, 0));
        assert_eq!(
            (r.reconnects, r.reconnect_failures, r.foreign_events),
            (0, 0, 0)
        );
        assert_eq!(r.clients_with_loss, 0);
        assert!(r.stream_errors.is_empty(), "{:?}", r.stream_errors);
        // One connection per stream, and no more.
        assert_eq!(server.state.streams.load(Ordering::SeqCst), 50);

        let d = r.delivery_latency;
        assert_eq!(d.count, 1000);
        assert!(
            d.min_ms > 0.0 && d.p99_ms < 1000.0 && d.max_ms < 1000.0,
            "{d:?}"
        );
        let c = r.time_to_first_frame;
        assert_eq!(c.count, 50);
        assert!(
            c.max_ms < 5000.0 && r.time_to_head.max_ms <= c.max_ms,
            "{c:?}"
        );
        // 20 events 10 ms apart, then the run ends as soon as all are in, not after settle.
        assert!(r.publish_phase_secs >= 0.18, "{}", r.publish_phase_secs);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(r.total_secs < 1.0 + r.connect_phase_secs + r.publish_phase_secs);

        let text = r.to_text();
        for line in [
            "Clients:\t50 requested, 50 connected, 0 failed",
            "Deliveries:\t1000 expected, 1000 delivered, 0 lost (0 clients with loss)",
            "Delivery latency (publish to receive, 1000 deliveries):",
            "  99.9% in ",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(json["ended_by"], "all_delivered");
        assert_eq!(json["delivered"], 1000);
        assert!(json["delivery_latency"]["p99_9_ms"].is_number());
        assert!(!json["run"]["publisher"]
            .as_str()
            .unwrap()
            .contains("s3cret"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_dropped_for_one_client_are_counted_lost() {
    bounded(async {
        let server = spawn(Behaviour {
            ids: true,
            drop_every: Some(3),
            ..Behaviour::default()
        })
        .await;
        let mut o = opts(&server, 5, 20);
        o.settle = Duration::from_millis(300);
        let r = run_sse(o, None).await.unwrap();
        assert_sane(&r);
        // Ids 1..=20; the first stream misses 3, 6, …, 18.
        assert_eq!(r.lost, 6, "{}", r.to_text());
        assert_eq!(r.clients_with_loss, 1);
        assert_eq!(r.delivered, 100 - 6);
        assert_eq!(r.duplicates, 0);
        assert_eq!(r.ended_by, SseEnd::Settled);
        assert!(r.to_text().contains("6 lost (1 clients with loss)"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_twice_are_counted_as_duplicates_not_deliveries() {
    bounded(async {
        let server = spawn(Behaviour {
            ids: true,
            repeat_every: Some(4),
            ..Behaviour::default()
        })
        .await;
        // 21 events: the repeat of 20 reaches the first stream before 21 does, so the run
        // cannot end (all delivered) between the two.
        let r = run_sse(opts(&server, 5, 21), None).await.unwrap();
        assert_sane(&r);
        // Ids 4, 8, …, 20 twice on the first stream.
        assert_eq!(r.duplicates, 5, "{}", r.to_text());
        assert_eq!((r.delivered, r.lost, r.out_of_order), (105, 0, 0));
        assert_eq!(r.delivery_latency.count, 105);
        assert!(r.to_text().contains("Duplicates:\t5 (0 out of order)"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ended_mid_way_reconnects_with_last_event_id_and_loses_nothing() {
    bounded(async {
        let server = spawn(Behaviour {
            ids: true,
            close_first_after: Some(5),
            ..Behaviour::default()
        })
        .await;
        let mut o = opts(&server, 3, 20);
        o.interval = Duration::from_millis(20);
        let r = run_sse(o, None).await.unwrap();
        assert_sane(&r);
        assert_eq!(r.reconnects, 1, "{}", r.to_text());
        assert_eq!(r.reconnect_failures, 0);
        assert_eq!(kinds(&r.stream_errors), vec![(SseErrorKind::Ended, 1)]);
        // The client sent the id of the last event it had, and the server's replay filled
        // the gap (the 50 ms retry spans two or three publishes) without duplicates.
        assert_eq!(*server.state.last_event_ids.lock().unwrap(), vec!["5"]);
        assert_eq!((r.lost, r.duplicates, r.out_of_order), (0, 0, 0));
        assert_eq!(r.delivered, 60);
        assert_eq!(r.clients_connected, 3);
        assert_eq!(server.state.streams.load(Ordering::SeqCst), 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ids_a_reconnect_sends_no_last_event_id_and_the_gap_is_lost() {
    bounded(async {
        let server = spawn(Behaviour {
            ids: false,
            close_first_after: Some(5),
            ..Behaviour::default()
        })
        .await;
        let mut o = opts(&server, 2, 30);
        o.interval = Duration::from_millis(10);
        o.settle = Duration::from_millis(300);
        let r = run_sse(o, None).await.unwrap();
        assert_sane(&r);
        assert_eq!(r.reconnects, 1, "{}", r.to_text());
        assert!(server.state.last_event_ids.lock().unwrap().is_empty());
        // 50 ms of retry at one publish per 10 ms: a few are gone for that stream.
        assert!(r.lost >= 1, "{}", r.to_text());
        assert_eq!(r.clients_with_loss, 1);
        assert_eq!(r.ended_by, SseEnd::Settled);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_split_across_chunks_with_crlf_are_parsed() {
    bounded(async {
        let server = spawn(Behaviour {
            ids: true,
            split: true,
            chatter: true,
            ..Behaviour::default()
        })
        .await;
        let r = run_sse(opts(&server, 4, 10), None).await.unwrap();
        assert_sane(&r);
        assert_eq!(r.delivered, 40, "{}", r.to_text());
        assert_eq!((r.lost, r.duplicates), (0, 0));
        // The chatter: one comment and one foreign event per stream.
        assert_eq!(r.heartbeats, 4);
        assert_eq!(r.foreign_events, 4);
        assert!(r.to_text().contains("Other events:\t4"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_publisher_runs_once_per_event_with_the_message_last() {
    bounded(async {
        let file = std::env::temp_dir().join(format!(
            "keel-bench-sse-{}-{:?}.log",
            std::process::id(),
            Instant::now()
        ));
        let server = spawn(Behaviour {
            ids: true,
            watch_file: Some(file.clone()),
            ..Behaviour::default()
        })
        .await;
        let mut o = opts(&server, 5, 8);
        o.publish = Publisher::Command(vec![
            "sh".into(),
            "-c".into(),
            r#"printf '%s\n' "$1" >> "$0""#.into(),
            file.display().to_string(),
        ]);
        let r = run_sse(o, None).await.unwrap();
        let _ = std::fs::remove_file(&file);
        assert_sane(&r);
        assert_eq!(r.events_published, 8, "{}", r.to_text());
        assert_eq!(server.publishes(), 8);
        assert_eq!((r.delivered, r.lost), (40, 0));
        assert!(r.run.publisher.starts_with("command: sh -c"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_publishes_nothing_shows_everything_lost() {
    bounded(async {
        let server = spawn(Behaviour::default()).await;
        let mut o = opts(&server, 3, 5);
        o.settle = Duration::from_millis(200);
        o.publish = Publisher::Command(vec!["sh".into(), "-c".into(), "exit 0".into()]);
        let r = run_sse(o, None).await.unwrap();
        assert_sane(&r);
        assert_eq!(r.events_published, 5);
        assert_eq!((r.expected_deliveries, r.delivered, r.lost), (15, 0, 15));
        assert_eq!(r.clients_with_loss, 3);
        assert_eq!(r.delivery_latency.count, 0);
        assert_eq!(r.ended_by, SseEnd::Settled);
        assert!(r
            .to_text()
            .contains("publish to receive, 0 deliveries):\n  none"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_publishes_are_counted_with_their_stderr() {
    bounded(async {
        let server = spawn(Behaviour::default()).await;
        let mut o = opts(&server, 2, 3);
        o.settle = Duration::from_millis(100);
        o.publish = Publisher::Command(vec![
            "sh".into(),
            "-c".into(),
            "echo 'Could not connect to Redis' >&2; exit 3".into(),
        ]);
        let r = run_sse(o, None).await.unwrap();
        assert_eq!((r.events_published, r.publish_failures), (0, 3));
        assert_eq!((r.expected_deliveries, r.lost), (0, 0));
        assert_eq!(
            kinds(&r.publish_errors),
            vec![(SseErrorKind::CommandFailed, 3)]
        );
        let message = &r.publish_errors[0].message;
        assert!(
            message.contains("exit status: 3") && message.contains("Could not connect to Redis"),
            "{message}"
        );

        // The URL publisher with a wrong token: the server's 401 is quoted.
        let server = spawn(Behaviour {
            token: Some("right".into()),
            ..Behaviour::default()
        })
        .await;
        let mut o = opts(&server, 2, 3);
        o.settle = Duration::from_millis(100);
        o.publish = server.publisher(Some("wrong"));
        let r = run_sse(o, None).await.unwrap();
        assert_eq!((r.events_published, r.publish_failures), (0, 3));
        assert_eq!(kinds(&r.publish_errors), vec![(SseErrorKind::Status, 3)]);
        assert!(
            r.publish_errors[0].message.contains("HTTP 401")
                && r.publish_errors[0].message.contains("Bearer"),
            "{:?}",
            r.publish_errors
        );
        assert!(r
            .to_text()
            .contains("Publish errors:\n  [3]\tstatus: POST http://"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_cannot_connect_are_failed_by_kind_and_nothing_is_published() {
    bounded(async {
        // A non-2xx answer: quoted.
        let server = spawn(Behaviour {
            status: Some(503),
            ..Behaviour::default()
        })
        .await;
        let r = run_sse(opts(&server, 4, 5), None).await.unwrap();
        assert_eq!((r.clients_connected, r.clients_failed), (0, 4));
        assert_eq!(kinds(&r.connect_errors), vec![(SseErrorKind::Status, 4)]);
        assert!(
            r.connect_errors[0].message
                == "HTTP 503 Service Unavailable: too many clients on this test server",
            "{:?}",
            r.connect_errors
        );
        assert_eq!(r.ended_by, SseEnd::NoClients);
        assert_eq!((r.events_published, server.publishes()), (0, 0));

        // Not an event stream.
        let mut o = opts(&server, 2, 1);
        o.url = format!("http://{}/plain", server.addr);
        let r = run_sse(o, None).await.unwrap();
        assert_eq!(
            kinds(&r.connect_errors),
            vec![(SseErrorKind::NotEventStream, 2)]
        );
        assert_eq!(
            r.connect_errors[0].message,
            "HTTP 200 OK with Content-Type \"\", not text/event-stream"
        );
        let mut o = opts(&server, 2, 1);
        o.url = format!("http://{}/elsewhere", server.addr);
        let r = run_sse(o, None).await.unwrap();
        assert!(r.connect_errors[0].message.starts_with("HTTP 404"));

        // Nothing listens.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut o = opts(&server, 3, 1);
        o.url = format!("http://127.0.0.1:{port}/stream/");
        let r = run_sse(o, None).await.unwrap();
        assert_eq!(
            kinds(&r.connect_errors),
            vec![(SseErrorKind::ConnectRefused, 3)]
        );
        assert!(r
            .to_text()
            .contains("Connect errors:\n  [3]\tconnect_refused: dial tcp"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_first_frame_times_out_in_the_connect_phase() {
    bounded(async {
        let server = spawn(Behaviour {
            silent: true,
            ..Behaviour::default()
        })
        .await;
        let mut o = opts(&server, 3, 2);
        o.connect_timeout = Duration::from_millis(300);
        let started = Instant::now();
        let r = run_sse(o, None).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(kinds(&r.connect_errors), vec![(SseErrorKind::Timeout, 3)]);
        assert_eq!(r.ended_by, SseEnd::NoClients);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_timeout_and_an_interrupt_end_the_run_with_a_report() {
    bounded(async {
        let server = spawn(Behaviour::default()).await;
        let mut o = opts(&server, 3, 40);
        o.interval = Duration::from_millis(50);
        o.timeout = Duration::from_millis(700);
        let started = Instant::now();
        let r = run_sse(o, None).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(r.ended_by, SseEnd::Timeout);
        assert!(r.events_published > 3 && r.events_published < 40, "{r:#?}");
        assert_eq!(r.clients_connected, 3);

        let mut o = opts(&server, 3, 40);
        o.interval = Duration::from_millis(50);
        let started = Instant::now();
        let r = run_sse_until(o, None, tokio::time::sleep(Duration::from_millis(400)))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(r.ended_by, SseEnd::Interrupted);
        assert!(r.events_published < 40);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ramp_at_the_connect_rate_and_progress_is_reported() {
    bounded(async {
        let server = spawn(Behaviour::default()).await;
        let seen: Arc<Mutex<Vec<SseProgress>>> = Arc::default();
        let sink = {
            let seen = seen.clone();
            SseProgressSink::new(Duration::from_millis(20), move |p| {
                seen.lock().unwrap().push(*p)
            })
        };
        let mut o = opts(&server, 20, 3);
        o.connect_rate_per_sec = Some(100.0);
        let r = run_sse(o, Some(sink)).await.unwrap();
        // 20 streams at 100/s: the last starts 190 ms in.
        assert!(r.connect_phase_secs >= 0.19, "{}", r.connect_phase_secs);
        assert_eq!(r.delivered, 60);
        let seen = seen.lock().unwrap();
        assert!(seen.len() >= 3, "{}", seen.len());
        assert!(seen
            .iter()
            .any(|p| p.phase == SsePhase::Connecting && p.connected < 20));
        let last = seen.last().unwrap();
        assert!(last.finished && last.phase == SsePhase::Done);
        assert_eq!(
            (last.connected, last.published, last.delivered),
            (20, 3, 60)
        );
        assert_eq!(seen.iter().filter(|p| p.finished).count(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

#[test]
fn options_are_checked_with_messages_naming_the_flags() {
    let url_pub = || Publisher::Url {
        url: "http://127.0.0.1:8080/api/publish".into(),
        token: Some("t".into()),
        channel: "demo_stream".into(),
    };
    let base = SseOptions::new("http://127.0.0.1:8080/stream/", url_pub());
    assert!(base.validate().is_ok());
    let check = |change: &dyn Fn(&mut SseOptions)| {
        let mut o = base.clone();
        change(&mut o);
        o.validate().unwrap_err()
    };
    assert_eq!(check(&|o| o.clients = 0), SseOptionsError::ZeroClients);
    assert!(matches!(
        check(&|o| {
            o.clients = 100_000;
            o.events = 100_000;
        }),
        SseOptionsError::TooManyDeliveries { .. }
    ));
    assert_eq!(
        check(&|o| o.connect_rate_per_sec = Some(0.0)),
        SseOptionsError::ConnectRate(0.0)
    );
    assert_eq!(
        check(&|o| o.timeout = Duration::ZERO),
        SseOptionsError::ZeroTimeout("--timeout")
    );
    let e = check(&|o| o.url = "https://example.com/stream/".into());
    assert!(matches!(e, SseOptionsError::Url { flag: "--sse", .. }));
    assert!(
        e.to_string().starts_with("--sse: URL scheme \"https\""),
        "{e}"
    );
    let e = check(&|o| {
        o.publish = Publisher::Url {
            url: "localhost/api/publish".into(),
            token: None,
            channel: "demo_stream".into(),
        }
    });
    assert!(matches!(
        e,
        SseOptionsError::Url {
            flag: "--publish-url",
            ..
        }
    ));
    let e = check(&|o| {
        o.publish = Publisher::Url {
            url: "http://127.0.0.1/api/publish".into(),
            token: None,
            channel: String::new(),
        }
    });
    assert_eq!(e, SseOptionsError::EmptyChannel);
    let e = check(&|o| {
        o.publish = Publisher::Url {
            url: "http://127.0.0.1/api/publish".into(),
            token: Some("a\nb".into()),
            channel: "c".into(),
        }
    });
    assert_eq!(e, SseOptionsError::Token);
    assert_eq!(
        check(&|o| o.publish = Publisher::Command(vec![])),
        SseOptionsError::EmptyCommand
    );
    // Zero events is allowed: connect and hold the streams for `settle`.
    let mut o = base.clone();
    o.events = 0;
    assert_eq!(o.validate().unwrap().events(), 0);
    // The token never shows in Debug or in the description.
    let shown = format!("{:?} {}", base, base.publish.describe());
    assert!(!shown.contains("\"t\""), "{shown}");
}

// ---------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------

/// Owned copies of the items, for comparing.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Event(String, String, String),
    Comment(String),
    Retry(u64),
}

fn collect(parser: &mut SseParser, chunks: &[&[u8]]) -> Result<Vec<Owned>, SseParseError> {
    let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |item| {
            out.push(match item {
                SseItem::Event(e) => Owned::Event(s(e.event), s(e.data), s(e.last_event_id)),
                SseItem::Comment(c) => Owned::Comment(s(c)),
                SseItem::Retry(ms) => Owned::Retry(ms),
            })
        })?;
    }
    Ok(out)
}

fn ev(event: &str, data: &str, id: &str) -> Owned {
    Owned::Event(event.into(), data.into(), id.into())
}

#[test]
fn parser_gives_the_same_items_whatever_the_chunking() {
    let wire: &[u8] = b"\xEF\xBB\xBFretry: 3000\r\n\r\n: keepalive\n\nid: 7\r\nevent: note\rdata: a\r\ndata:b\n\ndata: no id change\n\n";
    let expected = vec![
        Owned::Retry(3000),
        Owned::Comment("keepalive".into()),
        ev("note", "a\nb", "7"),
        ev("message", "no id change", "7"),
    ];
    let mut whole = SseParser::new();
    assert_eq!(collect(&mut whole, &[wire]).unwrap(), expected);
    // Byte by byte: every line split, every \r\n split between \r and \n.
    let mut bytes = SseParser::new();
    let pieces: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(collect(&mut bytes, &pieces).unwrap(), expected);
    // Every two-piece split.
    for cut in 0..wire.len() {
        let mut p = SseParser::new();
        assert_eq!(
            collect(&mut p, &[&wire[..cut], &wire[cut..]]).unwrap(),
            expected,
            "cut at {cut}"
        );
        assert_eq!(p.last_event_id(), b"7");
    }
}

#[test]
fn parser_follows_the_specs_field_rules() {
    let mut p = SseParser::new();
    let items = collect(
        &mut p,
        &[b"data\n\nid: 1\n\nretry: 12a\nretry:\nretry: 5\nunknown: x\nevent: e\n\ndata:  two spaces\nid: bad\0id\n\n"],
    )
    .unwrap();
    assert_eq!(
        items,
        vec![
            // `data` without a colon: one empty data line, so an event with empty data.
            ev("message", "", ""),
            // `retry:` only when all digits; an event without data is not dispatched,
            // though its id still counts, and the event type is reset.
            Owned::Retry(5),
            ev("message", " two spaces", "1"),
        ]
    );
    // A reconnect keeps the last id and drops the partial event.
    collect(&mut p, &[b"id: 9\ndata: half"]).unwrap();
    p.reset();
    assert_eq!(
        collect(&mut p, &[b"data: fresh\n\n"]).unwrap(),
        vec![ev("message", "fresh", "1")]
    );
}

#[test]
fn parser_bounds_lines_and_events() {
    let mut p = SseParser::with_limit(16);
    assert_eq!(
        collect(&mut p, &[b"data: 0123456789", b"abcdef"]),
        Err(SseParseError::LineTooLong(16))
    );
    let mut p = SseParser::with_limit(16);
    assert_eq!(
        collect(&mut p, &[b"data: 01234567\ndata: 01234567\n"]),
        Err(SseParseError::EventTooLong(16))
    );
}

#[test]
fn payloads_round_trip_and_others_are_not_ours() {
    let p = payload(42, 1_700_000_000_123_456_789);
    assert_eq!(p, "keel-bench 42 1700000000123456789");
    assert_eq!(
        parse_payload(p.as_bytes()),
        Some((42, 1_700_000_000_123_456_789))
    );
    for other in [
        &b"Test Event"[..],
        b"keel-bench",
        b"keel-bench 1",
        b"keel-bench x 2",
        b"keel-bench 1 2 3",
        b"keel-bench 99999999999999999999 1",
    ] {
        assert_eq!(parse_payload(other), None, "{other:?}");
    }
}
