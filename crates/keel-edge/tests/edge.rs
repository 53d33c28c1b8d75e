//! Black-box tests of the edge over real TCP on port 0: forwarded headers, limit_req,
//! streaming, upstream failures and load balancing.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use keel_edge::{
    Backend, DelayPolicy, EdgeConfig, LimitRef, LimitSpec, RouteSpec, TrustedProxies, UpstreamAddr,
    ZoneSpec,
};
use tokio::sync::oneshot;

mod support;

use support::{spawn_edge, Server, LOCAL};

/// A backend that echoes what it received as JSON, plus a slow route and an SSE route.
fn echo_router(name: &'static str) -> Router {
    Router::new()
        .route(
            "/echo",
            get(move |headers: HeaderMap| async move {
                let mut seen = serde_json::Map::new();
                for (k, v) in &headers {
                    seen.insert(
                        k.as_str().to_owned(),
                        serde_json::Value::String(v.to_str().unwrap_or("?").to_owned()),
                    );
                }
                seen.insert("served-by".into(), name.into());
                axum::Json(serde_json::Value::Object(seen))
            }),
        )
        .route(
            "/upload",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/events",
            get(|| async {
                // One event now, the next after 1.5 s: a buffering proxy would hold the
                // first until the second (or the end) arrives.
                let stream = futures_util::stream::unfold(0u32, |n| async move {
                    match n {
                        0 => Some((Ok::<_, Infallible>("data: first\n\n".to_owned()), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                            // Stamped with when it left the upstream, to time the edge.
                            let sent = epoch().elapsed().as_micros();
                            Some((Ok(format!("data: second {sent}\n\n")), 2))
                        }
                        _ => None,
                    }
                });
                (
                    [("content-type", "text/event-stream")],
                    Body::from_stream(stream),
                )
                    .into_response()
            }),
        )
}

/// One clock for the test process, so a stamp written upstream can be read downstream.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

async fn spawn_backend(name: &'static str) -> Server {
    spawn_backend_on(name, LOCAL.into()).await
}

fn upstreams(addrs: &[SocketAddr]) -> Backend {
    Backend::Upstreams(
        addrs
            .iter()
            .map(|a| a.to_string().parse::<UpstreamAddr>().unwrap())
            .collect(),
    )
}

/// `limit_req_zone … zone=name:size rate=rate`.
fn zone(name: &str, rate: &str, size: &str) -> ZoneSpec {
    ZoneSpec {
        name: name.to_owned(),
        rate: rate.parse().unwrap(),
        size: size.parse().unwrap(),
    }
}

/// `limit_req zone=zone burst=burst nodelay`.
fn nodelay(zone: &str, burst: u32) -> LimitRef {
    LimitRef {
        zone: zone.to_owned(),
        burst,
        delay: DelayPolicy::NoDelay,
    }
}

fn classic_limit() -> LimitSpec {
    LimitSpec::everywhere(
        zone("mylimit", "10r/s", "10m"),
        20,
        DelayPolicy::NoDelay,
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_set_and_hop_by_hop_removed() {
    let backend = spawn_backend("a").await;
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]))).await;
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/echo", edge.addr))
        .header("host", "blog.example")
        .header("x-forwarded-for", "198.51.100.1")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["host"], "blog.example", "{body}");
    assert_eq!(body["x-real-ip"], "127.0.0.1", "{body}");
    assert_eq!(body["x-forwarded-for"], "198.51.100.1, 127.0.0.1", "{body}");
    assert_eq!(body["x-forwarded-proto"], "http", "{body}");
    assert!(body.get("x-private").is_none(), "{body}");
    assert!(body.get("keep-alive").is_none(), "{body}");
    edge.stop().await;
    backend.stop().await;
}

/// The DESIGN's worked example: rate=10r/s burst=20 nodelay, 100 requests at once from
/// one address → exactly 21 pass (the first is free, 20 fit the burst).
///
/// The 100 connections are opened first and the requests written afterwards, so all 100
/// arrive within a few milliseconds even on a loaded machine (the bucket leaks one request
/// per 100 ms; a slow trickle would let a 22nd through, correctly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_requests_at_once_let_exactly_21_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.routing.limit = Some(classic_limit());
    let edge = spawn_edge(cfg).await;
    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(tokio::net::TcpStream::connect(edge.addr).await.unwrap());
    }
    let answers = futures_util::future::join_all(streams.into_iter().enumerate().map(
        |(i, mut stream)| async move {
            // A client cannot dodge the limit with its own forwarding header.
            let request = format!(
                "GET /echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.0.{i}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        },
    ))
    .await;
    let passed = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 200"))
        .count();
    let rejected: Vec<_> = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .collect();
    assert_eq!(passed, 21);
    assert_eq!(rejected.len(), 79);
    assert!(rejected
        .iter()
        .all(|a| a.to_ascii_lowercase().contains("\r\nretry-after: ")));
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_forwarded_address_is_the_limit_key() {
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.routing.limit = Some(LimitSpec::everywhere(
        zone("z", "1r/s", "1m"),
        1,
        DelayPolicy::NoDelay,
        StatusCode::TOO_MANY_REQUESTS,
    ));
    cfg.routing.trusted_proxies = TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]);
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/echo", edge.addr);
    let status_for = |ip: &'static str| {
        let request = client.get(&url).header("x-forwarded-for", ip).send();
        async move { request.await.unwrap().status() }
    };
    // Two per address pass (free first + burst 1), the third is refused with 429.
    for ip in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(status_for(ip).await, StatusCode::OK);
        assert_eq!(status_for(ip).await, StatusCode::OK);
        assert_eq!(status_for(ip).await, StatusCode::TOO_MANY_REQUESTS);
    }
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_pass_at_once_not_buffered() {
    let backend = spawn_backend("a").await;
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]))).await;
    let started = Instant::now();
    let response = reqwest::get(format!("http://{}/events", edge.addr))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("data: first"));
    // The second event comes 1.5 s later; the first must not have waited for it.
    assert!(first_at < Duration::from_millis(500), "{first_at:?}");
    // The second event, once published upstream, is through the edge within 100 ms.
    let second = stream.next().await.unwrap().unwrap();
    let received = epoch().elapsed().as_micros();
    let text = String::from_utf8_lossy(&second).into_owned();
    let sent: u128 = text
        .trim()
        .strip_prefix("data: second ")
        .and_then(|stamp| stamp.parse().ok())
        .unwrap_or_else(|| panic!("unexpected chunk {text:?}"));
    let through_ms = (received - sent) as f64 / 1000.0;
    assert!(through_ms < 100.0, "took {through_ms} ms through the edge");
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_502_and_slow_upstream_is_504() {
    let dead = {
        let l = std::net::TcpListener::bind(SocketAddr::from(LOCAL)).unwrap();
        l.local_addr().unwrap()
    };
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[dead]))).await;
    let response = reqwest::get(format!("http://{}/echo", edge.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    edge.stop().await;

    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.routing.response_timeout = Duration::from_millis(300);
    let edge = spawn_edge(cfg).await;
    let started = Instant::now();
    let response = reqwest::get(format!("http://{}/slow", edge.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(2));
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_and_no_idempotent_request_lost_when_one_upstream_dies() {
    let a = spawn_backend("a").await;
    let b = spawn_backend("b").await;
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[a.addr, b.addr]))).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/echo", edge.addr);
    let mut served = std::collections::HashMap::new();
    for _ in 0..10 {
        let body: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        *served
            .entry(body["served-by"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(served.get("a"), Some(&5), "{served:?}");
    assert_eq!(served.get("b"), Some(&5), "{served:?}");

    // Kill b mid-run: every GET still succeeds (connect failures retried on a).
    let mut ok = 0;
    let mut b = Some(b);
    for i in 0..40 {
        if i == 10 {
            if let Some(b) = b.take() {
                b.stop().await;
            }
            // Wait until b's port really refuses, so the test exercises the retry.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
        ok += 1;
    }
    assert_eq!(ok, 40);
    edge.stop().await;
    a.stop().await;
}

/// A peer killed with requests in flight: its connections close before any answer. Each
/// GET on it goes to the other peer, as nginx's default `proxy_next_upstream error` does
/// (found by the multi-host topology test: 4 of 8 GETs in flight got 502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_whose_peer_closes_before_answering_goes_to_the_other_peer() {
    let a = spawn_backend("a").await;
    // Accepts, reads the request, then closes without a byte: a process dying mid-request.
    let dying = tokio::net::TcpListener::bind(SocketAddr::from(LOCAL))
        .await
        .unwrap();
    let dying_addr = dying.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let killer = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = dying.accept().await else {
                continue;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            drop(socket);
        }
    });
    let edge = spawn_edge(EdgeConfig::new(
        LOCAL.into(),
        upstreams(&[dying_addr, a.addr]),
    ))
    .await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/echo", edge.addr);
    for i in 0..6 {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["served-by"], "a");
    }
    assert!(
        accepted.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the dying peer was never tried"
    );
    killer.abort();
    edge.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_backend_gets_the_same_layers() {
    let mut cfg = EdgeConfig::new(LOCAL.into(), Backend::InProcess(echo_router("app")));
    cfg.routing.limit = Some(classic_limit());
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .get(format!("http://{}/echo", edge.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["served-by"], "app");
    assert_eq!(body["x-real-ip"], "127.0.0.1");
    let statuses = futures_util::future::join_all(
        (0..30).map(|_| client.get(format!("http://{}/echo", edge.addr)).send()),
    )
    .await;
    let passed = statuses
        .iter()
        .filter(|r| r.as_ref().unwrap().status() == StatusCode::OK)
        .count();
    // 1 already used + 30 more at once: 20 of the burst remain, so 20 pass.
    assert_eq!(passed, 20);
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_are_combined_format_and_reopen_after_rotation() {
    let (dir, path, log) = file_log();
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.access_log = Some(log.clone());
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    let body = client
        .get(format!("http://{}/echo?x=1", edge.addr))
        .header("user-agent", "test-agent")
        .header("referer", "http://ref.example/")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let line = wait_for_line(&path).await;
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    let expected = format!(
        "\"GET /echo?x=1 HTTP/1.1\" 200 {} \"http://ref.example/\" \"test-agent\" rt=",
        body.len()
    );
    assert!(line.contains(&expected), "{line}");
    assert!(line.contains(&format!("ua=\"{}\"", backend.addr)), "{line}");

    // logrotate: move the file away, signal, and the next line lands in a new file.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen();
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .get(format!("http://{}/nope", edge.addr))
        .send()
        .await
        .unwrap();
    let line = wait_for_line(&path).await;
    assert!(line.contains("\"GET /nope HTTP/1.1\" 404 "), "{line}");
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        1
    );
    edge.stop().await;
    backend.stop().await;
}

/// Requests for peers are logged alike whether the fast path answers them in wire form
/// (sent whole) or hyper parses them (split inside the head): the same line but for its
/// times, for GET with a query, referer and user agent, HEAD, HTTP/1.0, and a limit_req
/// rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_are_alike_in_wire_form_and_as_requests() {
    let (_dir, path, log) = file_log();
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.access_log = Some(log.clone());
    // One request and a burst of five pass: the first three kinds, whole and split; the
    // fourth kind's are rejected.
    cfg.routing.limit = Some(LimitSpec::everywhere(
        zone("logged", "1r/m", "1m"),
        5,
        DelayPolicy::NoDelay,
        StatusCode::TOO_MANY_REQUESTS,
    ));
    let edge = spawn_edge(cfg).await;
    let requests: [&[u8]; 4] = [
        b"GET /echo?x=1&y=%C3%A9 HTTP/1.1\r\nHost: a\r\nUser-Agent: agent \"q\"\r\n\
          Referer: http://ref.example/\r\nConnection: close\r\n\r\n",
        b"HEAD /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET /echo HTTP/1.0\r\nHost: a\r\nuser-agent: old\r\nUser-Agent: second\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ];
    let lines = logged_whole_and_split(edge.addr, &path, &requests, |_| {}).await;
    let ua = format!("ua=\"{}\"", backend.addr);
    assert!(
        lines[0].contains("\"GET /echo?x=1&y=%C3%A9 HTTP/1.1\" 200 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("\"http://ref.example/\" \"agent \\x22q\\x22\""),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with(&ua), "{}", lines[0]);
    assert!(
        lines[2].contains("\"HEAD /echo HTTP/1.1\" 200 0 "),
        "{}",
        lines[2]
    );
    assert!(
        lines[4].contains("\"GET /echo HTTP/1.0\" 200 "),
        "{}",
        lines[4]
    );
    assert!(lines[4].contains("\"-\" \"old\""), "{}", lines[4]);
    assert!(
        lines[6].contains("\"GET /echo HTTP/1.1\" 429 "),
        "{}",
        lines[6]
    );
    assert!(lines[6].ends_with("uht=- ua=\"-\""), "{}", lines[6]);
    edge.stop().await;
    backend.stop().await;
}

/// Under load the log writer takes lines only every few milliseconds: an edge that has
/// stopped has still written the line of every request it served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_requests_are_in_the_access_log_once_the_edge_has_stopped() {
    let (_dir, path, log) = file_log();
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.access_log = Some(log);
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/echo", edge.addr);
    let sent = futures_util::future::join_all((0..10).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            for _ in 0..30 {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.bytes().await.unwrap();
            }
        }
    }));
    sent.await;
    edge.stop().await;
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    assert_eq!(lines, 300);
    backend.stop().await;
}

/// Plain static hits are logged alike whether the fast path writes them from the index
/// (sent whole) or hyper's path serves them (split inside the head).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_hits_are_logged_alike_in_wire_form_and_as_requests() {
    let (_dir, path, log) = file_log();
    let (edge, backend, _root) = static_edge(Some(log), None).await;
    let requests: [&[u8]; 3] = [
        b"GET /static/css/site.css HTTP/1.1\r\nHost: a\r\nUser-Agent: ua\r\n\
          Referer: http://ref.example/\r\nX-Forwarded-For: 203.0.113.9\r\n\
          Connection: close\r\n\r\n",
        b"HEAD /static/css/site.css HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET /static/css/site.css HTTP/1.0\r\nHost: a\r\n\r\n",
    ];
    let lines = logged_whole_and_split(edge.addr, &path, &requests, |answer| {
        // (hyper answers an HTTP/1.0 request as 1.0, the fast path as 1.1, as nginx.)
        assert!(
            answer.starts_with("HTTP/1.") && answer.contains(" 200 OK\r\n"),
            "{answer}"
        );
    })
    .await;
    // The header from an untrusted peer is not believed.
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0].contains(
            "\"GET /static/css/site.css HTTP/1.1\" 200 25 \"http://ref.example/\" \"ua\""
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("uht=- ua=\"-\""), "{}", lines[0]);
    assert!(
        lines[2].contains("\"HEAD /static/css/site.css HTTP/1.1\" 200 0 "),
        "{}",
        lines[2]
    );
    assert!(
        lines[4].contains("\"GET /static/css/site.css HTTP/1.0\" 200 25 "),
        "{}",
        lines[4]
    );
    edge.stop().await;
    backend.stop().await;
}

/// An access log writing to a file in a new temporary directory.
fn file_log() -> (tempfile::TempDir, std::path::PathBuf, keel_edge::AccessLog) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = keel_edge::AccessLog::start(
        keel_edge::AccessLogTarget::File(path.clone()),
        keel_edge::AccessLogFormat::Combined,
    )
    .unwrap();
    (dir, path, log)
}

/// Sends each request whole (the fast path) and then split inside its head (hyper's
/// path), checks each answer, and returns the log line of each, in that order, after
/// checking that the two lines of a request are the same but for their times.
async fn logged_whole_and_split(
    addr: SocketAddr,
    path: &std::path::Path,
    requests: &[&[u8]],
    check: impl Fn(&str),
) -> Vec<String> {
    let mut lines = Vec::new();
    for request in requests {
        for split in [false, true] {
            check(&raw_split(addr, request, split).await);
            lines.push(wait_for_lines(path, lines.len() + 1).await.pop().unwrap());
        }
    }
    for pair in lines.chunks(2) {
        assert_eq!(untimed(&pair[0]), untimed(&pair[1]));
    }
    lines
}

/// A log line without its times (the date and time, `rt=`, `uht=`), which differ from
/// one request to the next.
fn untimed(line: &str) -> String {
    line.split(' ')
        .filter(|w| {
            !(w.starts_with('[')
                || w.starts_with("+0000]")
                || w.starts_with("rt=")
                || w.starts_with("uht="))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The access log's lines once it has at least `n`.
async fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= n {
                return lines;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} access log lines in {}", path.display());
}

async fn wait_for_line(path: &std::path::Path) -> String {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(line) = text.lines().last() {
                return line.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no access log line in {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_served_by_the_edge_and_never_rate_limited() {
    let (edge, backend, _root) = static_edge(None, Some(classic_limit())).await;
    let client = reqwest::Client::new();

    // Use up the whole burst on the backend first.
    for _ in 0..30 {
        client
            .get(format!("http://{}/echo", edge.addr))
            .send()
            .await
            .unwrap();
    }
    let limited = client
        .get(format!("http://{}/echo", edge.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::SERVICE_UNAVAILABLE);

    for _ in 0..50 {
        let response = client
            .get(format!("http://{}/static/css/site.css", edge.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css"));
        assert!(response.headers().contains_key("etag"));
        assert_eq!(response.text().await.unwrap(), "body { color: #123456; }\n");
    }
    // Static misses are the edge's 404, not the backend's.
    let missing = client
        .get(format!("http://{}/static/nope.css", edge.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Sent raw: an HTTP client library would normalise the dots away before sending.
    for target in [
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/../../etc/passwd",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 4"), "{target}: {answer}");
        assert!(!answer.contains("root:"), "{target}: {answer}");
    }
    edge.stop().await;
    backend.stop().await;
}

async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    raw_split(addr, request, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_and_bodies_413() {
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.max_header_bytes = 16 * 1024;
    cfg.max_body_bytes = Some(1000);
    let edge = spawn_edge(cfg).await;

    let big = "x".repeat(40 * 1024);
    let answer = raw(
        edge.addr,
        format!("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let client = reqwest::Client::new();
    let url = format!("http://{}/upload", edge.addr);
    // Declared too large: refused before anything reaches the backend.
    let response = client
        .post(&url)
        .body(vec![b'a'; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked (no length) and too large: cut off at the cap while streaming.
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 500])));
    let response = client
        .post(&url)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Within the cap: passes, streamed or not.
    let response = client
        .post(&url)
        .body(vec![b'a'; 900])
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "900");
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.header_read_timeout = Duration::from_millis(500);
    let edge = spawn_edge(cfg).await;
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    // A slowloris client: half a request line, then nothing.
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_holds_new_clients_until_one_leaves() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.max_connections = 2;
    let edge = spawn_edge(cfg).await;
    let first = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The third connection waits in the backlog: no answer while two are open.
    let mut third = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    third
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(400), third.read_to_end(&mut answer)).await;
    assert!(
        early.is_err(),
        "served beyond the cap: {}",
        String::from_utf8_lossy(&answer)
    );

    drop(first);
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.header_read_timeout = Duration::from_millis(500);
    let edge = spawn_edge(cfg).await;
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive after the response; closed once idle for the timeout.
    let started = Instant::now();
    let eof = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(matches!(eof, Ok(Ok(0))), "{eof:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    edge.stop().await;
    backend.stop().await;
}

/// A fresh self-signed certificate for `localhost`, written as PEM files.
fn write_cert(dir: &std::path::Path) -> reqwest::Certificate {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = generated.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()
}

fn https_client(root: reqwest::Certificate, http1_only: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .add_root_certificate(root)
        .tls_built_in_root_certs(false)
        .resolve("localhost", SocketAddr::from(LOCAL));
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_offers_http2_and_http1_and_redirects_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let root = write_cert(dir.path());
    let certs =
        keel_edge::CertStore::load(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .unwrap();
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.tls = Some(keel_edge::TlsConfig {
        listen: LOCAL.into(),
        certs,
    });
    cfg.redirect_http = true;
    let edge = spawn_edge(cfg).await;
    let plain = edge.addr;
    let tls = edge.tls_addr.unwrap();

    let url = format!("https://localhost:{}/echo", tls.port());
    let response = https_client(root.clone(), false)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["x-forwarded-proto"], "https", "{body}");
    // HTTP/2 names the host in `:authority`, not in a Host field: the app still gets the
    // name the client asked for (nginx's `$host`), not the upstream's address.
    assert_eq!(
        body["host"],
        format!("localhost:{}", tls.port()).as_str(),
        "{body}"
    );
    let response = https_client(root, true).get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);

    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_follow
        .get(format!("http://{plain}/echo?a=1"))
        .header("host", format!("localhost:{}", plain.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        response.headers()["location"],
        format!("https://localhost:{}/echo?a=1", tls.port()).as_str()
    );
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_applies_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old_root = write_cert(dir.path());
    let certs =
        keel_edge::CertStore::load(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .unwrap();
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.tls = Some(keel_edge::TlsConfig {
        listen: LOCAL.into(),
        certs: certs.clone(),
    });
    let edge = spawn_edge(cfg).await;
    let url = format!("https://localhost:{}/echo", edge.tls_addr.unwrap().port());
    let old_client = https_client(old_root.clone(), true);
    assert_eq!(
        old_client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    // A broken file on reload keeps the old certificate in service.
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    assert!(certs.reload().is_err());
    let fresh_old = https_client(old_root.clone(), true);
    assert_eq!(
        fresh_old.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    let new_root = write_cert(dir.path());
    certs.reload().unwrap();
    // The established keep-alive connection goes on; new handshakes get the new cert.
    assert_eq!(
        old_client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(https_client(old_root, true).get(&url).send().await.is_err());
    let new_client = https_client(new_root, true);
    assert_eq!(
        new_client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    edge.stop().await;
    backend.stop().await;
}

async fn spawn_backend_on(name: &'static str, addr: SocketAddr) -> Server {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, echo_router(name))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Server {
        addr,
        tls_addr: None,
        reloader: None,
        stop: Some(stop),
        task,
    }
}

async fn served_by(client: &reqwest::Client, url: &str) -> String {
    let body: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
    body["served-by"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_peer_holding_a_stream() {
    let a = spawn_backend("a").await;
    let b = spawn_backend("b").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[a.addr, b.addr]));
    cfg.routing.balance.strategy = keel_edge::Strategy::LeastConnections;
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    // A live stream pins one peer for 1.5 s.
    let stream = client
        .get(format!("http://{}/events", edge.addr))
        .send()
        .await
        .unwrap();
    let mut chunks = stream.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    let url = format!("http://{}/echo", edge.addr);
    // One at a time: the other peer always has fewer in flight (0 against 1).
    let mut picks = Vec::new();
    for _ in 0..4 {
        picks.push(served_by(&client, &url).await);
    }
    let first = &picks[0];
    assert!(picks.iter().all(|p| p == first), "{picks:?}");
    // Once the stream ends, both peers are equal again and take turns.
    while chunks.next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(served_by(&client, &url).await);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    edge.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_check_brings_an_ejected_peer_back_early() {
    let a = spawn_backend("a").await;
    let b = spawn_backend("b").await;
    let b_addr = b.addr;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[a.addr, b_addr]));
    cfg.routing.balance.fail_timeout = Duration::from_secs(60);
    cfg.routing.balance.health_check = Some(keel_edge::HealthCheck {
        path: "/echo".to_owned(),
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
    });
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/echo", edge.addr);

    b.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // b is ejected (by the check or a failed connect): everything goes to a.
    for _ in 0..6 {
        assert_eq!(served_by(&client, &url).await, "a");
    }
    // b comes back on the same port; the check reinstates it well before 60 s.
    let b = spawn_backend_on("b", b_addr).await;
    let started = Instant::now();
    let mut back = false;
    while started.elapsed() < Duration::from_secs(5) {
        if served_by(&client, &url).await == "b" {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "b was not brought back by the health check");
    edge.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_path_prefix_picks_the_limits_and_two_zones_apply_together() {
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    // /upload is checked against both zones at once, as two limit_req lines in nginx.
    cfg.routing.limit = Some(LimitSpec {
        zones: vec![zone("general", "10r/s", "1m"), zone("strict", "1r/m", "1m")],
        routes: vec![
            RouteSpec {
                path_prefix: "/".to_owned(),
                limits: vec![nodelay("general", 20)],
            },
            RouteSpec {
                path_prefix: "/upload".to_owned(),
                limits: vec![nodelay("general", 20), nodelay("strict", 1)],
            },
        ],
        status: StatusCode::TOO_MANY_REQUESTS,
        dry_run: false,
    });
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    let post = || {
        client
            .post(format!("http://{}/upload", edge.addr))
            .body("x")
            .send()
    };
    // strict: the first is free, one more fits the burst, the third is refused.
    assert_eq!(post().await.unwrap().status(), StatusCode::OK);
    assert_eq!(post().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        post().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other paths only see the general zone (charged twice by the uploads that passed;
    // the refused one charged nothing).
    let mut passed = 0;
    for _ in 0..30 {
        let status = client
            .get(format!("http://{}/echo", edge.addr))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            passed += 1;
        }
    }
    // 21 fit the general zone's first-free + burst 20; two were used by the uploads.
    assert!((19..=20).contains(&passed), "{passed}");
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_upstreams_and_limits_without_dropping_connections() {
    let a = spawn_backend("a").await;
    let b = spawn_backend("b").await;
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[a.addr]))).await;
    let addr = edge.addr;
    let reloader = edge.reloader.clone().unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/echo");
    assert_eq!(served_by(&client, &url).await, "a");

    // A stream that started before the reload finishes on the old backend.
    let stream = client
        .get(format!("http://{addr}/events"))
        .send()
        .await
        .unwrap();
    let mut new_cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[b.addr]));
    new_cfg.routing.limit = Some(classic_limit());
    reloader.reload(&new_cfg.routing).unwrap();
    // The same keep-alive client, new requests: the new backend and the new limit.
    assert_eq!(served_by(&client, &url).await, "b");
    let mut passed = 1;
    for _ in 0..30 {
        if client.get(&url).send().await.unwrap().status() == StatusCode::OK {
            passed += 1;
        }
    }
    assert_eq!(passed, 21);
    let body = stream.text().await.unwrap();
    assert!(body.contains("data: second"), "{body}");
    assert!(reloader
        .reload(&EdgeConfig::new(LOCAL.into(), upstreams(&[])).routing)
        .is_err());
    edge.stop().await;
    a.stop().await;
    b.stop().await;
}

/// nginx keeps a limit_req zone across a reload when its name and size are unchanged; so
/// does keel (when its rate is unchanged too), in every worker. A zone whose size changed
/// starts afresh, and a spec the edge refuses changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_limit_req_counts_unless_the_zone_changed() {
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    // Two workers and a new connection per request: the kernel spreads the connections,
    // so a worker left with zones of its own would let a request through.
    cfg.workers = 2;
    let once_a_minute = |size: &str| {
        LimitSpec::everywhere(
            zone("once", "1r/m", size),
            0,
            DelayPolicy::NoDelay,
            StatusCode::SERVICE_UNAVAILABLE,
        )
    };
    cfg.routing.limit = Some(once_a_minute("1m"));
    let edge = spawn_edge(cfg.clone()).await;
    let reloader = edge.reloader.clone().unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("http://{}/echo", edge.addr);
    let status = || async { client.get(&url).send().await.unwrap().status() };
    assert_eq!(status().await, StatusCode::OK);

    reloader.reload(&cfg.routing).unwrap();
    for i in 0..8 {
        assert_eq!(
            status().await,
            StatusCode::SERVICE_UNAVAILABLE,
            "request {i} after a reload that kept the zone"
        );
    }

    let mut broken = cfg.clone();
    let mut unknown_zone = once_a_minute("1m");
    unknown_zone.routes[0].limits[0].zone = "nope".to_owned();
    broken.routing.limit = Some(unknown_zone);
    let err = reloader.reload(&broken.routing).unwrap_err();
    assert!(
        matches!(err, keel_edge::EdgeError::Limit(_)),
        "{err}: an unknown zone is refused"
    );
    assert_eq!(status().await, StatusCode::SERVICE_UNAVAILABLE);

    // A new size: a new zone, so the count starts afresh, in every worker alike.
    cfg.routing.limit = Some(once_a_minute("2m"));
    reloader.reload(&cfg.routing).unwrap();
    assert_eq!(status().await, StatusCode::OK);
    for i in 0..8 {
        assert_eq!(
            status().await,
            StatusCode::SERVICE_UNAVAILABLE,
            "request {i} after the new zone's first"
        );
    }
    edge.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_idle_timeout_cuts_a_silent_stream_only_when_set() {
    let backend = spawn_backend("a").await;
    // Off (the default): the 1.5 s pause in /events is waited out.
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]))).await;
    let body = reqwest::get(format!("http://{}/events", edge.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("data: second"), "{body}");
    edge.stop().await;

    // 500 ms: the stream is cut after the first event instead of waiting 1.5 s.
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.routing.body_idle_timeout = Some(Duration::from_millis(500));
    let edge = spawn_edge(cfg).await;
    let started = Instant::now();
    let response = reqwest::get(format!("http://{}/events", edge.addr))
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let mut ended_early = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => {
                ended_early = true;
                break;
            }
        }
    }
    assert!(seen.contains("data: first"), "{seen}");
    assert!(!seen.contains("data: second"), "{seen}");
    assert!(ended_early, "the cut stream must not look complete");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    edge.stop().await;
    backend.stop().await;
}

/// An edge with one collected CSS file in front of the echo backend.
async fn static_edge(
    access_log: Option<keel_edge::AccessLog>,
    limit: Option<LimitSpec>,
) -> (Server, Server, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let css: &'static [(&'static str, &'static [u8])] =
        &[("css/site.css", b"body { color: #123456; }\n")];
    keel_static::collect(&keel_static::CollectOptions {
        static_root: root.path().to_owned(),
        sources: vec![keel_static::Source::Embedded(css)],
    })
    .unwrap();
    let files =
        keel_edge::StaticFiles::load(root.path(), keel_edge::StaticOptions::default()).unwrap();
    let backend = spawn_backend("a").await;
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    cfg.static_files = Some(keel_edge::StaticHandle::new(files));
    cfg.header_read_timeout = Duration::from_millis(800);
    cfg.access_log = access_log;
    cfg.routing.limit = limit;
    (spawn_edge(cfg).await, backend, root)
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) from `stream`.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let body_len = if head.starts_with("HTTP/1.1 304") || head.contains("HEAD-REQUEST") {
                0
            } else {
                length
            };
            while pending.len() < end + 4 + body_len {
                let mut buf = [0u8; 16 * 1024];
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed mid-body after {head}");
                pending.extend_from_slice(&buf[..n]);
            }
            let body = pending[end + 4..end + 4 + body_len].to_vec();
            pending.drain(..end + 4 + body_len);
            return (head, body);
        }
        let mut buf = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("no response in 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before a response; had {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

/// The static fast path answers pipelined keep-alive requests, conditional and range
/// requests like hyper would, and hands a connection to hyper as soon as a request is not
/// a simple static one — with the bytes it had read — so proxying, 431 and the rest work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_fast_path_keeps_http_semantics_and_hands_other_requests_to_hyper() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let log = keel_edge::AccessLog::start(
        keel_edge::AccessLogTarget::File(dir.path().join("access.log")),
        keel_edge::AccessLogFormat::Combined,
    )
    .unwrap();
    let (edge, backend, _root) = static_edge(Some(log), None).await;
    let css = "body { color: #123456; }\n";

    // Three pipelined requests in one write: GET, conditional GET, then a proxied one.
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nUser-Agent: fast-test\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let (head, body) = read_response(&mut stream, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/css"), "{head}");
    assert!(
        lower.contains(&format!("content-length: {}", css.len())),
        "{head}"
    );
    assert!(lower.contains("\r\ndate: "), "{head}");
    assert!(!lower.contains("connection: close"), "{head}");
    assert_eq!(body, css.as_bytes());
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_owned();

    let pipelined = format!(
        "GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n\
         GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\n\r\n\
         GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut stream, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert!(body.is_empty());
    let (head, body) = read_response(&mut stream, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(body, b"body");
    // Handed to hyper mid-connection: the proxied request is answered by the backend.
    let (head, body) = read_response(&mut stream, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("\"served-by\":\"a\""),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // Still on hyper, static requests keep working on the same connection.
    stream
        .write_all(b"HEAD /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD sent a body: {head:?}");
    drop(stream);

    // HEAD on the fast path: the length of the GET, no body; HTTP/1.0 closes after it.
    let answer = raw(edge.addr, b"HEAD /static/css/site.css HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("content-length: {}", css.len())),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "HEAD sent a body: {answer:?}");
    let answer = raw(
        edge.addr,
        b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with(css), "{answer}");

    // A head split across writes goes to hyper, which still answers it.
    let mut split = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    split.write_all(b"GET /static/css/si").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    split
        .write_all(b"te.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    split.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(css), "{answer}");

    // Oversized and malformed heads are still hyper's answers.
    let big = format!(
        "GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = raw(edge.addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let answer = raw(
        edge.addr,
        b"GET /static/css/site.css HTTP/1.1\r\nBad Header: x\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // An idle fast-path connection is closed after the header timeout, like hyper's.
    let mut idle = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let started = Instant::now();
    let eof = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(matches!(eof, Ok(Ok(0))), "{eof:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );

    // Fast-path requests are in the access log like any other.
    wait_for_line(&dir.path().join("access.log")).await;
    let logged = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("fast-test"))
        .unwrap_or_else(|| panic!("no fast-path request in the access log:\n{logged}"));
    assert!(
        line.contains("\"GET /static/css/site.css HTTP/1.1\" 200"),
        "{line}"
    );

    edge.stop().await;
    backend.stop().await;
}

/// Without an access log a plain static GET is answered from the head written at load;
/// that answer is the one the general static phase gives (on the fast path and on
/// hyper's), byte for byte apart from `Date`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precomputed_static_answers_match_the_general_ones() {
    use tokio::io::AsyncWriteExt;
    let (edge, _backend, _root) = static_edge(None, None).await;
    let without_date = |head: &str| {
        head.lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let mut pending = Vec::new();
    let mut ask = async |request: &str| {
        stream.write_all(request.as_bytes()).await.unwrap();
        read_response(&mut stream, &mut pending).await
    };
    // Plain: precomputed. A conditional that does not match: the general static phase.
    let plain = ask("GET /static/css/site.css?v=1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let general =
        ask("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n")
            .await;
    // Handed to hyper by a proxied request; then the same file through hyper.
    let _proxied = ask("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let hyper = ask("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(plain.0.starts_with("HTTP/1.1 200 OK\r\n"), "{}", plain.0);
    assert!(plain.0.contains("\r\ndate: "), "{}", plain.0);
    assert_eq!(without_date(&plain.0), without_date(&general.0));
    assert_eq!(without_date(&plain.0), without_date(&hyper.0));
    assert_eq!(plain.1, b"body { color: #123456; }\n");
    assert_eq!(plain.1, general.1);
    assert_eq!(plain.1, hyper.1);

    // HEAD: the same head, no body. HTTP/1.0: closed after the answer.
    let head = raw(
        edge.addr,
        b"HEAD /static/css/site.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.ends_with("\r\n\r\n"), "HEAD sent a body: {head:?}");
    assert!(head.contains("content-length: 25\r\n"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    let old = raw(edge.addr, b"GET /static/css/site.css HTTP/1.0\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.1 200 OK\r\n"), "{old}");
    assert!(old.ends_with("body { color: #123456; }\n"), "{old}");
}

/// A stop closes idle fast-path connections and lets the edge return promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_idle_fast_path_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (edge, backend, _root) = static_edge(None, None).await;
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let (head, _) = read_response(&mut stream, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), edge.stop())
        .await
        .expect("the edge did not stop with an idle fast-path connection open");
    let mut buf = [0u8; 16];
    let eof = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
    assert!(matches!(eof, Ok(Ok(0)) | Ok(Err(_))), "{eof:?}");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    backend.stop().await;
}

/// A stop lets an in-flight proxied request finish (nginx's graceful quit), then returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_waits_for_an_in_flight_request() {
    let backend = spawn_backend("a").await;
    let cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
    let edge = spawn_edge(cfg).await;
    let url = format!("http://{}/slow", edge.addr);
    let in_flight = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    edge.stop().await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the edge stopped without waiting: {:?}",
        started.elapsed()
    );
    assert_eq!(in_flight.await.unwrap().unwrap(), "late");
    backend.stop().await;
}

/// A file too large for memory is streamed from disk through the fast path in several
/// writes, byte for byte, and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_static_files_stream_through_the_fast_path_intact() {
    use tokio::io::AsyncWriteExt;
    let source = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(source.path().join("big.bin"), &big).unwrap();
    let root = tempfile::tempdir().unwrap();
    keel_static::collect(&keel_static::CollectOptions {
        static_root: root.path().to_owned(),
        sources: vec![keel_static::Source::Dir(source.path().to_owned())],
    })
    .unwrap();
    // Streamed from disk, then held in memory: a plain hit far larger than the socket
    // takes at once, to a client that waits before reading, is written in part at once
    // and the rest when the socket has room.
    for memory_limit_per_file_bytes in [64 * 1024, 16 * 1024 * 1024] {
        let options = keel_edge::StaticOptions {
            memory_limit_per_file_bytes,
            ..keel_edge::StaticOptions::default()
        };
        let files = keel_edge::StaticFiles::load(root.path(), options).unwrap();
        let backend = spawn_backend("a").await;
        let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]));
        cfg.static_files = Some(keel_edge::StaticHandle::new(files));
        let edge = spawn_edge(cfg).await;

        // A small receive window, so the edge's socket cannot take the file at once.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let mut stream = socket.connect(edge.addr).await.unwrap();
        let mut pending = Vec::new();
        for _ in 0..2 {
            stream
                .write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (head, body) = read_response(&mut stream, &mut pending).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(body.len(), big.len());
            assert!(body == big, "the body differs");
        }
        edge.stop().await;
        backend.stop().await;
    }
}

/// A scripted upstream: each accepted connection answers its requests with the next
/// answers of `script` (one per request), then closes without saying so.
async fn scripted_upstream(script: Vec<(&'static str, usize)>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = std::sync::Arc::new(std::sync::Mutex::new(script.into_iter()));
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request head at a time (the edge sends no bodies here).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let next = script.lock().unwrap().next();
                    let Some((answer, keep)) = next else { return };
                    stream.write_all(answer.as_bytes()).await.unwrap();
                    // `keep` answers on this connection, then close (silently, for the
                    // keep-alive ones: the edge finds out when it reuses the connection).
                    if keep == 0 {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Bodiless requests go over the edge's own upstream connections: chunked, length and
/// close-delimited answers arrive whole, HEAD and 304 carry no body, a pooled connection
/// the upstream closed meanwhile is replaced without an error, and an interim 1xx answer
/// to a request that asked for none is a 502, as nginx 1.22 makes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_requests_get_every_kind_of_upstream_answer_right() {
    let upstream = scripted_upstream(vec![
        // Chunked with an extension and a trailer; the connection stays open for more.
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-T: 1\r\n\r\n",
            1,
        ),
        // Length, then the upstream closes this kept-alive connection without a word.
        ("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlength", 0),
        // Early hints first, then an answer: which head answers the request is a guess
        // nginx 1.22 does not make, and neither does the edge.
        (
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            1,
        ),
        // HEAD: the length of the GET, no body.
        ("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 1),
        ("HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n", 1),
        // No length and a close: the body runs to the end of the connection.
        ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the close", 0),
        // Chunked again, for an HTTP/1.0 client: it gets the body up to the close.
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nold\r\n0\r\n\r\n",
            1,
        ),
    ])
    .await;
    // Health checks are off by default: every request the upstream sees is the test's.
    let cfg = EdgeConfig::new(LOCAL.into(), upstreams(&[upstream]));
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/x", edge.addr);

    let chunked = client.get(&url).send().await.unwrap();
    assert_eq!(chunked.status(), 200);
    assert!(chunked.headers().get("x-t").is_none());
    assert_eq!(chunked.text().await.unwrap(), "hello, world");
    let length = client.get(&url).send().await.unwrap();
    assert_eq!(length.headers()["content-length"], "6");
    assert_eq!(length.text().await.unwrap(), "length");
    // The connection that answered "length" was closed by the upstream after it: the
    // edge must notice on reuse and open a new one, not answer 502.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hinted = client.get(&url).send().await.unwrap();
    assert_eq!(hinted.status(), 502);
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "1000");
    assert_eq!(head.bytes().await.unwrap().len(), 0);
    let not_modified = client.get(&url).send().await.unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], "\"a\"");
    let until_close = client.get(&url).send().await.unwrap();
    assert_eq!(until_close.status(), 200);
    assert_eq!(until_close.text().await.unwrap(), "until the close");
    let old = raw(edge.addr, b"GET /x HTTP/1.0\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.1 200 OK\r\n"), "{old}");
    assert!(
        !old.to_ascii_lowercase().contains("transfer-encoding"),
        "{old}"
    );
    assert!(old.ends_with("\r\n\r\nold"), "{old}");
}

/// A client that leaves a live stream between events frees both of the edge's sockets at
/// once (the upstream sees its connection close), not at the next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_a_quiet_stream_closes_the_upstream_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = oneshot::channel::<Duration>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = stream.read(&mut buf).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\r\n")
            .await
            .unwrap();
        // Then nothing, like a stream between events: until the edge lets go.
        let quiet = std::time::Instant::now();
        let _ = stream.read(&mut buf).await;
        let _ = closed_tx.send(quiet.elapsed());
    });
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[upstream]))).await;
    let mut client = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    client
        .write_all(b"GET /stream/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("data: 1") {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the first event");
        got.extend_from_slice(&buf[..n]);
    }
    drop(client);
    let quiet_for = tokio::time::timeout(Duration::from_secs(3), closed_rx)
        .await
        .expect("the upstream connection stayed open after the client left")
        .unwrap();
    assert!(quiet_for < Duration::from_secs(3), "{quiet_for:?}");
}

/// `request` written whole (the fast path, which keeps a request for upstream peers in
/// wire form) or split inside its head (handed to hyper, which builds a `Request`).
async fn raw_split(addr: SocketAddr, request: &[u8], split: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    if split {
        stream.write_all(&request[..10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream.write_all(&request[10..]).await.unwrap();
    } else {
        stream.write_all(request).await.unwrap();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The fields of an answer's head, lower-cased, without `Date`, sorted.
fn answer_fields(answer: &str) -> Vec<String> {
    let head = answer.split("\r\n\r\n").next().unwrap();
    let mut fields: Vec<String> = head
        .lines()
        .skip(1)
        .map(str::to_ascii_lowercase)
        .filter(|line| !line.starts_with("date:"))
        .collect();
    fields.sort();
    fields
}

/// A request kept in wire form and one made into a `Request` reach the upstream with the
/// same fields, and the upstream's answer reaches the client with the same fields: the
/// forwarding ones set, hop-by-hop ones (and those `Connection` names) gone both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_answers_are_rewritten_alike_in_wire_form_and_as_requests() {
    let backend = spawn_backend("a").await;
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[backend.addr]))).await;
    let request = b"GET /echo?x=1 HTTP/1.1\r\nHost: blog.example\r\n\
        X-Forwarded-For: 198.51.100.1\r\nx-forwarded-for: 198.51.100.2\r\n\
        X-Real-IP: forged\r\nConnection: close, X-Private\r\nX-Private: secret\r\n\
        Keep-Alive: timeout=5\r\nTE: trailers\r\nAccept: */*\r\n\r\n";
    let mut echoed = Vec::new();
    for split in [false, true] {
        let answer = raw_split(edge.addr, request, split).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let seen: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(seen["host"], "blog.example", "{seen}");
        assert_eq!(seen["x-real-ip"], "127.0.0.1", "{seen}");
        assert_eq!(
            seen["x-forwarded-for"], "198.51.100.1, 198.51.100.2, 127.0.0.1",
            "{seen}"
        );
        assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
        for gone in ["x-private", "keep-alive", "te", "connection"] {
            assert!(seen.get(gone).is_none(), "{gone} passed: {seen}");
        }
        echoed.push(seen);
    }
    assert_eq!(echoed[0], echoed[1]);
    edge.stop().await;
    backend.stop().await;

    let answer = "HTTP/1.1 201 Created\r\nConnection: keep-alive, X-Secret\r\n\
        Keep-Alive: timeout=5\r\nX-Secret: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
        Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
    let upstream = scripted_upstream(vec![(answer, 1), (answer, 1)]).await;
    let edge = spawn_edge(EdgeConfig::new(LOCAL.into(), upstreams(&[upstream]))).await;
    let request = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    for split in [false, true] {
        let answer = raw_split(edge.addr, request, split).await;
        assert!(answer.starts_with("HTTP/1.1 201 Created\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        assert_eq!(
            answer_fields(&answer),
            [
                "connection: close",
                "content-length: 2",
                "content-type: text/plain",
                "set-cookie: a=1",
                "set-cookie: b=2",
            ],
            "split: {split}"
        );
    }
    edge.stop().await;
}

/// The keep-alive wait is timed from the end of the answer before it, even when that
/// answer was a long stream that followed a static hit in the same read (the hit's own
/// clock reading must not stand for the wait's start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_wait_after_a_long_answer_is_timed_from_its_end() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Keep-alive timeout 800 ms; the stream lasts about 1.5 s.
    let (edge, backend, _root) = static_edge(None, None).await;
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(
            b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /events HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !(got.ends_with(b"0\r\n\r\n") && String::from_utf8_lossy(&got).contains("second")) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the stream did not end")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream
        .write_all(b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the connection was closed at the end of the stream"
    );
    edge.stop().await;
    backend.stop().await;
}
