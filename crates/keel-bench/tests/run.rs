//! End-to-end runs against servers on 127.0.0.1:0 with known behaviour. Every run is
//! bounded by a request count or a duration of at most 2 s.

// Test code: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Behaviour, BODY};
use keel_bench::{
    run, run_until, BenchError, BenchOptions, ErrorKind, LatencyFrom, OutputFormat, Progress,
    ProgressSink,
};

fn opts(url: String, n: u64, c: usize) -> BenchOptions {
    let mut o = BenchOptions::new(url);
    o.requests = n;
    o.concurrency = c;
    o.timeout = Some(Duration::from_secs(5));
    o
}

fn p(report: &keel_bench::Report, pct: f64) -> f64 {
    report
        .latency_percentiles
        .iter()
        .find(|x| x.percentile == pct)
        .map(|x| x.latency_secs)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_exactly_n_on_one_connection_per_worker() {
    let server = common::spawn(Behaviour::default()).await;
    let report = run(opts(server.url(), 200, 10), None).await.unwrap();
    assert_eq!(report.summary.responses, 200);
    assert_eq!(report.summary.errors, 0);
    assert_eq!(report.summary.requests, 200);
    assert_eq!(server.requests(), 200);
    assert_eq!(
        server.connections(),
        10,
        "keep-alive: one connection per worker"
    );
    assert_eq!(report.status_codes.get(&200), Some(&200));
    assert_eq!(report.summary.total_bytes, 200 * BODY.len() as u64);
    assert_eq!(report.summary.size_per_request_bytes, BODY.len() as u64);
    assert_eq!(report.histogram.len(), 11);
    assert_eq!(report.histogram.iter().map(|b| b.count).sum::<u64>(), 200);
    assert!(report.errors.is_empty());
}

/// hey sends `n / c * c` (here 100); keel sends exactly `n`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_not_a_multiple_of_c_is_still_exact() {
    let server = common::spawn(Behaviour::default()).await;
    let report = run(opts(server.url(), 103, 10), None).await.unwrap();
    assert_eq!(report.summary.responses, 103);
    assert_eq!(server.requests(), 103);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_distribution_is_exact() {
    let server = common::spawn(Behaviour {
        status_every: Some((4, 500)),
        ..Behaviour::default()
    })
    .await;
    let report = run(opts(server.url(), 100, 8), None).await.unwrap();
    assert_eq!(report.status_codes.len(), 2);
    assert_eq!(report.status_codes[&200], 75);
    assert_eq!(report.status_codes[&500], 25);
    assert_eq!(
        report.summary.errors, 0,
        "a 500 is a response, not an error"
    );
    let text = report.to_text();
    assert!(
        text.contains("Status code distribution:\n  [200]\t75 responses\n  [500]\t25 responses\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_of_a_50ms_server() {
    let server = common::spawn(Behaviour {
        latency: Duration::from_millis(50),
        ..Behaviour::default()
    })
    .await;
    let report = run(opts(server.url(), 60, 10), None).await.unwrap();
    assert_eq!(report.summary.responses, 60);
    let p50 = p(&report, 50.0);
    assert!((0.050..0.080).contains(&p50), "p50 {p50}");
    assert!(report.summary.fastest_secs >= 0.050);
    assert!(report.summary.slowest_secs < 0.200);
    assert!(p(&report, 99.9) <= report.summary.slowest_secs);
    let s = &report.summary;
    assert!(s.fastest_secs <= s.average_secs && s.average_secs <= s.slowest_secs);
    // 6 rounds of 50 ms.
    assert!(
        (0.29..0.6).contains(&s.total_secs),
        "total {}",
        s.total_secs
    );
    assert_eq!(report.run.latency_from, LatencyFrom::Send);
    let pcts: Vec<f64> = report
        .latency_percentiles
        .iter()
        .map(|x| x.latency_secs)
        .collect();
    assert!(pcts.windows(2).all(|w| w[0] <= w[1]), "{pcts:?}");
}

/// hey's `-z`: no request starts after the deadline; those in flight are awaited and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_stops_on_time() {
    let server = common::spawn(Behaviour {
        latency: Duration::from_millis(50),
        ..Behaviour::default()
    })
    .await;
    let mut o = opts(server.url(), 1, 4); // -n ignored with -z, even below -c
    o.duration = Some(Duration::from_secs(1));
    let report = run(o, None).await.unwrap();
    let total = report.summary.total_secs;
    assert!((1.0..1.5).contains(&total), "total {total}");
    // 4 workers × ~20 requests/s.
    let n = report.summary.responses;
    assert!((60..=84).contains(&n), "responses {n}");
    assert_eq!(report.summary.errors, 0);
    assert_eq!(server.requests(), n);
    assert_eq!(report.run.requests, None);
    assert_eq!(report.run.duration_secs, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_rate_sends_the_scheduled_count() {
    let server = common::spawn(Behaviour::default()).await;
    let mut o = opts(server.url(), 1, 10);
    o.duration = Some(Duration::from_secs(2));
    o.rate_per_sec = Some(200.0);
    let report = run(o, None).await.unwrap();
    let n = report.summary.requests;
    assert!((380..=420).contains(&n), "requests {n}");
    assert!((2.0..2.5).contains(&report.summary.total_secs));
    assert_eq!(report.run.latency_from, LatencyFrom::Schedule);
    assert!(p(&report, 50.0) < 0.05, "an idle fast server answers fast");
}

/// wrk2's point: a server that cannot keep up with the schedule shows it in the latencies.
/// One worker, 50 ms per response, 50 requests/s scheduled (one per 20 ms): request k is
/// sent at about k·50 ms but due at k·20 ms, so its latency is about 50 + 30·k ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_mode_corrects_coordinated_omission() {
    let server = common::spawn(Behaviour {
        latency: Duration::from_millis(50),
        ..Behaviour::default()
    })
    .await;
    let mut o = opts(server.url(), 20, 1);
    o.rate_per_sec = Some(50.0);
    let corrected = run(o, None).await.unwrap();
    assert_eq!(corrected.summary.responses, 20);
    assert!(
        corrected.summary.slowest_secs > 0.5,
        "{:?}",
        corrected.summary
    );
    assert!(p(&corrected, 50.0) > 0.25, "p50 {}", p(&corrected, 50.0));

    let closed = run(opts(server.url(), 20, 1), None).await.unwrap();
    assert!(p(&closed, 99.0) < 0.1, "closed loop hides the queueing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_counts_connect_refused() {
    let addr = common::refused_addr();
    let report = run(opts(format!("http://{addr}/"), 20, 2), None)
        .await
        .unwrap();
    assert_eq!(report.summary.responses, 0);
    assert_eq!(report.summary.errors, 20);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].kind, ErrorKind::ConnectRefused);
    assert_eq!(report.errors[0].count, 20);
    assert_eq!(
        report.errors[0].message,
        format!("dial tcp {addr}: connect: connection refused")
    );
    assert!(report.status_codes.is_empty());
    assert!(report.latency_percentiles.is_empty());
    let text = report.to_text();
    assert!(
        text.contains("Error distribution:\n  [20]\tdial tcp"),
        "{text}"
    );
    assert!(!text.contains("NaN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_closes_each_connection() {
    let server = common::spawn(Behaviour {
        keep_alive: false,
        ..Behaviour::default()
    })
    .await;
    let report = run(opts(server.url(), 50, 5), None).await.unwrap();
    assert_eq!(report.summary.responses, 50);
    assert_eq!(report.summary.errors, 0, "{:?}", report.errors);
    assert_eq!(server.connections(), 50);
}

/// Pins the Go-transport behaviour hey relies on: a keep-alive connection the server closed
/// after a complete response is not an error; the request goes out on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_keepalive_connection_is_retried_not_counted() {
    let server = common::spawn_close_after_response().await;
    // No request timeout: a request queued on a dead connection must fail over by itself,
    // not hang (the outer timeout turns a hang into a failure).
    let mut o = opts(server.url(), 40, 4);
    o.timeout = None;
    let report = tokio::time::timeout(Duration::from_secs(10), run(o, None))
        .await
        .expect("hung on a closed keep-alive connection")
        .unwrap();
    assert_eq!(report.summary.responses, 40, "{:?}", report.errors);
    assert_eq!(report.summary.errors, 0);
    assert_eq!(server.requests(), 40);
    assert!(server.connections() > 4, "the server did close connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_closes_without_answering() {
    let server = common::spawn_close_without_response().await;
    let report = run(opts(server.url(), 10, 2), None).await.unwrap();
    assert_eq!(report.summary.responses, 0);
    assert_eq!(report.summary.errors, 10);
    assert!(
        report
            .errors
            .iter()
            .all(|e| e.kind == ErrorKind::ConnectionClosed),
        "{:?}",
        report.errors
    );
    assert_eq!(server.requests(), 10, "fresh connections are not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_counts_as_timeout() {
    let server = common::spawn(Behaviour {
        latency: Duration::from_secs(2),
        ..Behaviour::default()
    })
    .await;
    let mut o = opts(server.url(), 4, 2);
    o.timeout = Some(Duration::from_millis(100));
    let report = run(o, None).await.unwrap();
    assert_eq!(report.summary.errors, 4);
    assert_eq!(report.errors[0].kind, ErrorKind::Timeout);
    assert!(
        report.summary.total_secs < 0.5,
        "{}",
        report.summary.total_secs
    );
    assert_eq!(
        server.connections(),
        4,
        "a timed-out connection is not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_keepalive_opens_a_connection_per_request() {
    let server = common::spawn(Behaviour::default()).await;
    let mut o = opts(server.url(), 20, 2);
    o.disable_keepalive = true;
    let report = run(o, None).await.unwrap();
    assert_eq!(report.summary.responses, 20);
    assert_eq!(server.connections(), 20);
    let last = server.last.lock().unwrap().clone().unwrap();
    assert_eq!(last.headers["connection"], "close");
    assert!(!report.run.keepalive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_headers_and_body_reach_the_server() {
    let server = common::spawn(Behaviour {
        echo: true,
        ..Behaviour::default()
    })
    .await;
    let mut o = opts(server.url(), 10, 2);
    o.method = "post".into();
    o.body = Some("hello".into());
    o.content_type = "application/json".into();
    o.headers = vec!["X-Test: 1".into()];
    o.accept = Some("application/json".into());
    o.host = Some("bench.test".into());
    let report = run(o, None).await.unwrap();
    assert_eq!(report.summary.total_bytes, 50);
    let last = server.last.lock().unwrap().clone().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.body, "hello");
    assert_eq!(last.headers["content-type"], "application/json");
    assert_eq!(last.headers["x-test"], "1");
    assert_eq!(last.headers["accept"], "application/json");
    assert_eq!(last.headers["host"], "bench.test");
    assert_eq!(last.headers["user-agent"], keel_bench::USER_AGENT);
    assert_eq!(last.headers["content-length"], "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_file() {
    let server = common::spawn(Behaviour {
        echo: true,
        ..Behaviour::default()
    })
    .await;
    let path = std::env::temp_dir().join(format!("keel-bench-body-{}", std::process::id()));
    std::fs::write(&path, b"from a file").unwrap();
    let mut o = opts(server.url(), 2, 1);
    o.method = "PUT".into();
    o.body_file = Some(path.clone());
    let report = run(o.clone(), None).await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(report.unwrap().summary.total_bytes, 22);
    let err = run(o, None).await.unwrap_err();
    assert!(matches!(err, BenchError::BodyFile { .. }), "{err}");
}

/// hey's `-q`: each worker sends at most q requests per second, the first one period in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qps_per_worker_throttles() {
    let server = common::spawn(Behaviour::default()).await;
    let mut o = opts(server.url(), 10, 2);
    o.qps_per_worker = Some(20.0);
    let report = run(o, None).await.unwrap();
    assert_eq!(report.summary.responses, 10);
    // 2 workers × 20/s → 10 requests in about 0.25 s.
    let total = report.summary.total_secs;
    assert!((0.2..0.6).contains(&total), "total {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_sink_sees_the_end() {
    let server = common::spawn(Behaviour {
        latency: Duration::from_millis(10),
        ..Behaviour::default()
    })
    .await;
    let calls = Arc::new(AtomicU64::new(0));
    let last: Arc<Mutex<Option<Progress>>> = Arc::default();
    let (c, l) = (calls.clone(), last.clone());
    let sink = ProgressSink::new(Duration::from_millis(20), move |p| {
        c.fetch_add(1, Ordering::SeqCst);
        *l.lock().unwrap() = Some(*p);
    });
    run(opts(server.url(), 40, 2), Some(sink)).await.unwrap();
    let last = last.lock().unwrap().unwrap();
    assert!(last.finished);
    assert_eq!(last.requests, 40);
    assert_eq!(last.planned_requests, Some(40));
    assert_eq!(last.fraction(), 1.0);
    assert!(calls.load(Ordering::SeqCst) >= 2);
}

/// hey's Ctrl-C: stop starting requests, report what was done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_stops_early() {
    let server = common::spawn(Behaviour {
        latency: Duration::from_millis(50),
        ..Behaviour::default()
    })
    .await;
    let o = opts(server.url(), 1_000_000, 2);
    let report = run_until(o, None, tokio::time::sleep(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(report.summary.total_secs < 1.0);
    let n = report.summary.responses;
    assert!((4..=12).contains(&n), "responses {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_keeps_bounded_records() {
    let server = common::spawn(Behaviour::default()).await;
    let mut o = opts(server.url(), 20, 2);
    o.output = OutputFormat::Csv;
    let report = run(o.clone(), None).await.unwrap();
    assert_eq!(report.records.len(), 20);
    let csv = report.render(OutputFormat::Csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 21);
    assert!(lines[0].starts_with("response-time,DNS+dialup,DNS,"));
    assert!(lines[1..]
        .iter()
        .all(|l| l.split(',').count() == 8 && l.contains(",200,")));

    o.csv_max_records = 5;
    let report = run(o, None).await.unwrap();
    assert_eq!(report.records.len(), 5);
    assert_eq!(report.records_dropped, 15);
    assert_eq!(report.summary.responses, 20);

    // Without -o csv nothing is kept per request.
    let report = run(opts(server.url(), 20, 2), None).await.unwrap();
    assert!(report.records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_options_fail_before_any_request() {
    let server = common::spawn(Behaviour::default()).await;
    let err = run(opts(server.url(), 10, 50), None).await.unwrap_err();
    assert!(matches!(err, BenchError::Options(_)));
    assert_eq!(err.to_string(), "-n cannot be less than -c (-n 10, -c 50)");
    assert_eq!(server.requests(), 0);
}
