//! Black-box tests of limit_conn over real TCP on port 0: an edge in front of an upstream
//! whose `/stream/` never ends (an SSE stream with a heartbeat), so a stream holds its
//! count until the client leaves. Covered: the fast path (plain HTTP/1, upstream peers),
//! hyper's HTTP/1 (a `POST`, which the fast path hands over), the in-process backend
//! (`keel up`) and
//! HTTP/2 over TLS; the configured status; dry run; a reload keeping the zone; static files
//! not counted.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use futures_util::StreamExt;
use keel_edge::{Backend, ConnLimitConfig, ConnZone, EdgeConfig, UpstreamAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

use support::{Server, LOCAL};

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// `/stream/`: one event, then a comment every 50 ms, forever. `/short`: "ok". Any method.
fn upstream_router() -> Router {
    Router::new()
        .route(
            "/stream/",
            any(|| async {
                let first = futures_util::stream::once(async {
                    Ok::<_, Infallible>("data: hello\n\n".to_owned())
                });
                let beats = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Ok(": ping\n\n".to_owned()), ()))
                });
                (
                    [("content-type", "text/event-stream")],
                    Body::from_stream(first.chain(beats)),
                )
                    .into_response()
            }),
        )
        .route("/short", any(|| async { "ok" }))
}

async fn spawn_upstream() -> Server {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(LOCAL))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, upstream_router()).await;
    });
    Server {
        addr,
        tls_addr: None,
        reloader: None,
        stop: None,
        task,
    }
}

async fn spawn_edge(mut cfg: EdgeConfig) -> Server {
    // Streams still open when a test ends must not hold up its stop for long.
    cfg.shutdown_timeout = Duration::from_millis(300);
    support::spawn_edge(cfg).await
}

fn upstreams(addr: SocketAddr) -> Backend {
    Backend::Upstreams(vec![addr.to_string().parse::<UpstreamAddr>().unwrap()])
}

fn zone(name: &str) -> Arc<ConnZone> {
    Arc::new(ConnZone::new(name, "1m".parse().unwrap()))
}

/// An edge for `upstream` with at most `max` requests in progress per address on every
/// path, counted in `zone`.
fn limited(upstream: SocketAddr, zone: &Arc<ConnZone>, max: u32) -> EdgeConfig {
    let mut cfg = EdgeConfig::new(LOCAL.into(), upstreams(upstream));
    cfg.routing.conn_limit = Some(ConnLimitConfig::everywhere(
        zone.clone(),
        max,
        StatusCode::SERVICE_UNAVAILABLE,
    ));
    cfg
}

/// A request on a connection of its own, read until the stream's first event or, for any
/// other answer, to its end: a `GET`, which the fast path serves, or with `via_hyper` an
/// empty `POST`, which the fast path hands to hyper.
async fn open(addr: SocketAddr, path: &str, via_hyper: bool) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = if via_hyper {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    };
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if text.contains("data: hello") {
            return (stream, text);
        }
        let head_done = text.contains("\r\n\r\n");
        if head_done && !text.starts_with("HTTP/1.1 200") {
            // Not a stream: the rest of the answer, to the close.
            let _ = tokio::time::timeout_at(deadline, stream.read_to_end(&mut got)).await;
            return (stream, String::from_utf8_lossy(&got).into_owned());
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("no answer in time")
            .unwrap();
        if read == 0 {
            return (stream, text);
        }
        got.extend_from_slice(&buf[..read]);
    }
}

/// Opens a stream that must be admitted.
async fn admitted(addr: SocketAddr, via_hyper: bool) -> TcpStream {
    let (stream, answer) = open(addr, "/stream/", via_hyper).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stream
}

/// A request that must be refused by limit_conn with `status`.
async fn refused(addr: SocketAddr, path: &str, via_hyper: bool, status: u16) {
    let (_, answer) = open(addr, path, via_hyper).await;
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{path}: {answer}"
    );
    assert!(answer.contains("connection limit"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );
}

/// Waits until `zone` counts `count` requests from the loopback address.
async fn counted(zone: &ConnZone, count: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while zone.count(loopback()) != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "zone {} counts {}, not {count}",
            zone.name(),
            zone.count(loopback())
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_stream_is_refused_until_one_of_two_closes() {
    let upstream = spawn_upstream().await;
    let zone = zone("addr");
    let edge = spawn_edge(limited(upstream.addr, &zone, 2)).await;

    // Two streams, one on the fast path and one read by hyper: both counted.
    let first = admitted(edge.addr, false).await;
    let second = admitted(edge.addr, true).await;
    counted(&zone, 2).await;

    // A third request of any kind, on either path, is refused and counts nothing.
    refused(edge.addr, "/stream/", false, 503).await;
    refused(edge.addr, "/short", true, 503).await;
    assert_eq!(zone.count(loopback()), 2);

    // The client closes one stream: its count goes, and a new one is admitted.
    drop(first);
    counted(&zone, 1).await;
    let third = admitted(edge.addr, false).await;
    counted(&zone, 2).await;
    refused(edge.addr, "/stream/", false, 503).await;

    // Once every stream has ended, short requests pass as before and nothing stays.
    drop((second, third));
    counted(&zone, 0).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client
            .get(format!("http://{}/short", edge.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    counted(&zone, 0).await;
    assert!(zone.is_empty());
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_status_is_sent() {
    let upstream = spawn_upstream().await;
    let zone = zone("addr");
    let mut cfg = limited(upstream.addr, &zone, 2);
    if let Some(conn) = cfg.routing.conn_limit.as_mut() {
        conn.status = StatusCode::TOO_MANY_REQUESTS;
    }
    let edge = spawn_edge(cfg).await;
    let _a = admitted(edge.addr, false).await;
    let _b = admitted(edge.addr, false).await;
    refused(edge.addr, "/stream/", false, 429).await;
    refused(edge.addr, "/stream/", true, 429).await;
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_passes_the_excess_without_counting_it() {
    let upstream = spawn_upstream().await;
    let zone = zone("addr");
    let mut cfg = limited(upstream.addr, &zone, 2);
    if let Some(conn) = cfg.routing.conn_limit.as_mut() {
        conn.dry_run = true;
    }
    let edge = spawn_edge(cfg).await;
    let _a = admitted(edge.addr, false).await;
    let _b = admitted(edge.addr, false).await;
    counted(&zone, 2).await;
    let _c = admitted(edge.addr, false).await;
    let _d = admitted(edge.addr, true).await;
    // nginx releases and passes the excess: it is not counted.
    assert_eq!(zone.count(loopback()), 2);
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_keeps_the_zone_keeps_counting_the_open_streams() {
    let upstream = spawn_upstream().await;
    let zone_before = zone("addr");
    let edge = spawn_edge(limited(upstream.addr, &zone_before, 2)).await;
    let reloader = edge.reloader.clone().unwrap();
    let first = admitted(edge.addr, false).await;
    let second = admitted(edge.addr, false).await;
    counted(&zone_before, 2).await;

    // The reloaded configuration builds its zone afresh, under the same name and a new
    // size: the running zone is kept, with its two streams.
    let reloaded = Arc::new(ConnZone::new("addr", "2m".parse().unwrap()));
    reloader
        .reload(&limited(upstream.addr, &reloaded, 2).routing)
        .unwrap();
    refused(edge.addr, "/stream/", false, 503).await;
    assert_eq!(zone_before.capacity(), reloaded.capacity());
    assert!(reloaded.is_empty());

    // A stream from before the reload is released into the zone that still counts.
    drop(first);
    counted(&zone_before, 1).await;
    let third = admitted(edge.addr, false).await;
    counted(&zone_before, 2).await;
    refused(edge.addr, "/stream/", true, 503).await;

    // A zone of another name starts from nothing; the old streams are released into the
    // old zone when they end.
    let renamed = zone("other");
    reloader
        .reload(&limited(upstream.addr, &renamed, 2).routing)
        .unwrap();
    let fourth = admitted(edge.addr, false).await;
    counted(&renamed, 1).await;
    drop((second, third));
    counted(&zone_before, 0).await;
    assert_eq!(renamed.count(loopback()), 1);
    drop(fourth);
    counted(&renamed, 0).await;
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_not_counted() {
    let root = tempfile::tempdir().unwrap();
    let css: &'static [(&'static str, &'static [u8])] = &[("css/site.css", b"body {}\n")];
    keel_static::collect(&keel_static::CollectOptions {
        static_root: root.path().to_owned(),
        sources: vec![keel_static::Source::Embedded(css)],
    })
    .unwrap();
    let files =
        keel_edge::StaticFiles::load(root.path(), keel_edge::StaticOptions::default()).unwrap();
    let upstream = spawn_upstream().await;
    let zone = zone("addr");
    let mut cfg = limited(upstream.addr, &zone, 1);
    cfg.static_files = Some(keel_edge::StaticHandle::new(files));
    let edge = spawn_edge(cfg).await;

    let _stream = admitted(edge.addr, false).await;
    counted(&zone, 1).await;
    refused(edge.addr, "/short", false, 503).await;
    // The address has its one request in progress; static files are answered all the
    // same, on the fast path (a plain hit, or the general static phase for a miss) and
    // through hyper (the static phase's own 405 for a `POST`).
    for (path, via_hyper, status) in [
        ("/static/css/site.css", false, 200),
        ("/static/missing.css", false, 404),
        ("/static/css/site.css", true, 405),
    ] {
        let (_, answer) = open(edge.addr, path, via_hyper).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{path}: {answer}"
        );
    }
    assert_eq!(zone.count(loopback()), 1);
    edge.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_backend_is_counted_too() {
    // `keel up`: the app's router in-process, reached through the general path.
    let zone = zone("addr");
    let mut cfg = EdgeConfig::new(LOCAL.into(), Backend::InProcess(upstream_router()));
    cfg.routing.conn_limit = Some(ConnLimitConfig::everywhere(
        zone.clone(),
        2,
        StatusCode::SERVICE_UNAVAILABLE,
    ));
    let edge = spawn_edge(cfg).await;
    let first = admitted(edge.addr, false).await;
    let _second = admitted(edge.addr, true).await;
    counted(&zone, 2).await;
    refused(edge.addr, "/stream/", false, 503).await;
    refused(edge.addr, "/short", true, 503).await;
    drop(first);
    counted(&zone, 1).await;
    let _third = admitted(edge.addr, false).await;
    counted(&zone, 2).await;
    edge.stop().await;
}

/// A fresh self-signed certificate for `localhost`, written as PEM files.
fn write_cert(dir: &std::path::Path) -> reqwest::Certificate {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = generated.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()
}

/// A request over HTTP/2, read up to the stream's first event when it is admitted.
async fn open_h2(client: &reqwest::Client, url: &str) -> reqwest::Response {
    let mut response = client.get(url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    if response.status() == StatusCode::OK {
        let first = response.chunk().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("data: hello"));
    }
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_over_tls_are_counted_and_released_when_reset() {
    let dir = tempfile::tempdir().unwrap();
    let root = write_cert(dir.path());
    let certs =
        keel_edge::CertStore::load(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .unwrap();
    let upstream = spawn_upstream().await;
    let zone = zone("addr");
    let mut cfg = limited(upstream.addr, &zone, 2);
    cfg.tls = Some(keel_edge::TlsConfig {
        listen: LOCAL.into(),
        certs,
    });
    let edge = spawn_edge(cfg).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .tls_built_in_root_certs(false)
        .resolve("localhost", SocketAddr::from(LOCAL))
        .build()
        .unwrap();
    let url = format!(
        "https://localhost:{}/stream/",
        edge.tls_addr.unwrap().port()
    );
    // Two streams multiplexed on one connection.
    let first = open_h2(&client, &url).await;
    let _second = open_h2(&client, &url).await;
    assert_eq!(first.status(), StatusCode::OK);
    counted(&zone, 2).await;
    let third = open_h2(&client, &url).await;
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(third.headers().get("retry-after").is_none());
    assert!(third.text().await.unwrap().contains("connection limit"));
    // Dropping a response resets its stream: hyper drops the body, the count goes.
    drop(first);
    counted(&zone, 1).await;
    assert_eq!(open_h2(&client, &url).await.status(), StatusCode::OK);
    counted(&zone, 2).await;
    edge.stop().await;
    upstream.stop().await;
}
