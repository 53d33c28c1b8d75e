//! Black-box tests of the app server over real TCP on port 0: the sync and async upstream
//! endpoints, their failure answers, pool isolation, `/healthz`, `/metrics` and drain.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use keel_app::{App, AppConfig, MockConfig, MockUpstream};
use tokio::sync::oneshot;

const LOCAL: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// A running server and the handle that stops it.
struct Running {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), keel_app::AppError>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

async fn spawn_mock(latency: Duration) -> (url::Url, Running) {
    let mock = MockUpstream::build(MockConfig {
        listen: LOCAL.into(),
        latency,
        token_interval: Duration::ZERO,
    })
    .await
    .unwrap();
    let url = mock.todo_url();
    let (stop, stopped) = oneshot::channel();
    let base = format!("http://{}", mock.local_addr());
    let task = tokio::spawn(mock.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (
        url,
        Running {
            base,
            stop: Some(stop),
            task,
        },
    )
}

async fn spawn_app(cfg: AppConfig) -> Running {
    let app = App::build(cfg).await.unwrap();
    let (stop, stopped) = oneshot::channel();
    let base = format!("http://{}", app.local_addr());
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Running {
        base,
        stop: Some(stop),
        task,
    }
}

fn config(upstream: url::Url) -> AppConfig {
    AppConfig::new(LOCAL.into(), upstream)
}

/// An upstream that always answers with `status` and `body`.
async fn spawn_fixed(status: StatusCode, body: &'static str) -> url::Url {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(LOCAL))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/todos/1", get(move || async move { (status, body) }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url::Url::parse(&format!("http://{addr}/todos/1")).unwrap()
}

/// An address where nothing listens: bind, note the port, close.
async fn refused_url() -> url::Url {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(LOCAL))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    url::Url::parse(&format!("http://{addr}/todos/1")).unwrap()
}

async fn get_json(url: &str) -> (StatusCode, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap();
    (status, body)
}

fn todo() -> serde_json::Value {
    serde_json::from_str(keel_app::mock::TODO_JSON).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_async_return_the_upstream_json() {
    let (upstream, mock) = spawn_mock(Duration::ZERO).await;
    let app = spawn_app(config(upstream)).await;
    for path in ["/sync/test", "/async/test"] {
        let response = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, todo(), "{path}");
    }
    app.stop().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_502_json() {
    let app = spawn_app(config(refused_url().await)).await;
    for path in ["/sync/test", "/async/test"] {
        let (status, body) = get_json(&app.url(path)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}");
        assert_eq!(body["error"], "upstream_unreachable", "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("refused"),
            "{path}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_5xx_and_non_json_give_502() {
    let failing = spawn_fixed(StatusCode::SERVICE_UNAVAILABLE, "{}").await;
    let app = spawn_app(config(failing)).await;
    for path in ["/sync/test", "/async/test"] {
        let (status, body) = get_json(&app.url(path)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}");
        assert_eq!(body["error"], "upstream_bad_status", "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("503"), "{body}");
    }
    app.stop().await;

    let garbage = spawn_fixed(StatusCode::OK, "<html>not json</html>").await;
    let app = spawn_app(config(garbage)).await;
    for path in ["/sync/test", "/async/test"] {
        let (status, body) = get_json(&app.url(path)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}");
        assert_eq!(body["error"], "upstream_bad_body", "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_gives_504_after_the_upstream_timeout() {
    let (upstream, mock) = spawn_mock(Duration::from_secs(3)).await;
    let mut cfg = config(upstream);
    cfg.upstream_timeout = Duration::from_millis(300);
    let app = spawn_app(cfg).await;
    for path in ["/sync/test", "/async/test"] {
        let started = Instant::now();
        let (status, body) = get_json(&app.url(path)).await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{path}: {body}");
        assert_eq!(body["error"], "upstream_timeout", "{path}: {body}");
        // Well under the upstream's 3 s: the timeout, not the upstream, ended it.
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
        assert!(took >= Duration::from_millis(300), "{path} took {took:?}");
    }
    app.stop().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_gives_503() {
    let (upstream, mock) = spawn_mock(Duration::from_secs(3)).await;
    let mut cfg = config(upstream);
    cfg.request_timeout = Duration::from_millis(300);
    let app = spawn_app(cfg).await;
    let (status, body) = get_json(&app.url("/async/test")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "request_timeout", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("300ms"), "{body}");
    app.stop().await;
    mock.stop().await;
}

/// The classic failure: slow sync views fill every gunicorn thread and the whole site
/// stops answering. Here the blocking pool fills and queues, and nothing else notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_blocking_pool_does_not_delay_async_or_healthz() {
    let latency = Duration::from_millis(800);
    let (upstream, mock) = spawn_mock(latency).await;
    let mut cfg = config(upstream);
    cfg.blocking_slots = 2;
    let app = spawn_app(cfg).await;
    let client = reqwest::Client::new();

    // 8 sync calls on 2 slots: the last ones wait ~3 s for a slot.
    let mut sync_calls = Vec::new();
    for _ in 0..8 {
        let request = client.get(app.url("/sync/test")).send();
        sync_calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let status = request.await.unwrap().status();
            (status, started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let metrics = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("keel_blocking_pool_busy 2"),
        "pool should be full:\n{metrics}"
    );

    let started = Instant::now();
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    let health_took = started.elapsed();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health_took < Duration::from_millis(300), "{health_took:?}");

    let started = Instant::now();
    let response = client.get(app.url("/async/test")).send().await.unwrap();
    let async_took = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    // One upstream latency, not a place in the sync queue (which is ~3 s long).
    assert!(
        async_took < latency + Duration::from_millis(500),
        "{async_took:?}"
    );

    let mut slowest = Duration::ZERO;
    for call in sync_calls {
        let (status, took) = call.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        slowest = slowest.max(took);
    }
    // Proof the pool really was the bottleneck: 8 calls / 2 slots = 4 rounds.
    assert!(
        slowest >= latency * 4 - Duration::from_millis(100),
        "{slowest:?}"
    );
    app.stop().await;
    mock.stop().await;
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_counters_move() {
    let (upstream, mock) = spawn_mock(Duration::ZERO).await;
    let app = spawn_app(config(upstream)).await;
    let (status, body) = get_json(&app.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");

    let metrics_url = app.url("/metrics");
    let response = reqwest::get(&metrics_url).await.unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let before = response.text().await.unwrap();
    for _ in 0..3 {
        reqwest::get(app.url("/async/test")).await.unwrap();
    }
    reqwest::get(app.url("/no/such/page")).await.unwrap();
    let after = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let ok = r#"keel_http_requests_total{route="/async/test",method="GET",status="200"}"#;
    assert_eq!(counter(&after, ok) - counter(&before, ok), 3, "{after}");
    let missing = r#"keel_http_requests_total{route="unmatched",method="GET",status="404"}"#;
    assert_eq!(counter(&after, missing), 1, "{after}");
    let upstream_ok = r#"keel_upstream_requests_total{client="async",outcome="ok"}"#;
    assert_eq!(counter(&after, upstream_ok), 3, "{after}");
    let latency_count = r#"keel_http_request_duration_seconds_count{route="/async/test"}"#;
    assert_eq!(counter(&after, latency_count), 3, "{after}");
    // The scrape itself is in flight while it renders.
    assert_eq!(
        counter(&after, "keel_http_requests_in_flight"),
        1,
        "{after}"
    );
    app.stop().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_in_flight_requests_and_refuses_new_ones() {
    let (upstream, mock) = spawn_mock(Duration::from_millis(700)).await;
    let app = spawn_app(config(upstream)).await;
    let in_flight = tokio::spawn(reqwest::get(app.url("/async/test")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = app.base.clone();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Stopped accepting: a new connection is refused while the old request finishes.
    let fresh = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(fresh.is_err(), "new request was accepted during drain");

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), todo());
    stopping.await.unwrap();
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_is_bounded_by_the_shutdown_timeout() {
    let (upstream, mock) = spawn_mock(Duration::from_secs(20)).await;
    let mut cfg = config(upstream);
    cfg.shutdown_timeout = Duration::from_millis(300);
    let app = spawn_app(cfg).await;
    let stuck = tokio::spawn(reqwest::get(app.url("/async/test")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    stuck.abort();
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_upstream_serves_both_paths_after_its_latency() {
    let (_, mock) = spawn_mock(Duration::from_millis(150)).await;
    for path in ["/todos/1", "/mock/todos/1"] {
        let started = Instant::now();
        let response = reqwest::get(mock.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), keel_app::mock::TODO_JSON);
        assert!(started.elapsed() >= Duration::from_millis(150), "{path}");
    }
    let response = reqwest::get(mock.url("/todos/2")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    mock.stop().await;
}

/// The mock model: OpenAI's `POST /v1/chat/completions`, whole or streamed token by token
/// at the configured pace, ending with `data: [DONE]`; it phrases the `<draft>` it is given.
#[tokio::test]
async fn the_mock_model_answers_and_streams_like_openai() {
    let mock = MockUpstream::build(MockConfig {
        listen: LOCAL.into(),
        latency: Duration::ZERO,
        token_interval: Duration::from_millis(30),
    })
    .await
    .unwrap();
    let base = format!("http://{}", mock.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mock.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let ask = |stream: bool| {
        serde_json::json!({
            "model": "any",
            "stream": stream,
            "messages": [
                { "role": "system", "content": "You are an interviewer." },
                { "role": "user", "content": "Say this: <draft>Good: you named the rate and the burst.</draft>" }
            ]
        })
    };
    let whole: serde_json::Value = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&ask(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        whole["choices"][0]["message"]["content"],
        "Good: you named the rate and the burst."
    );
    let started = std::time::Instant::now();
    let streamed = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&ask(true))
        .send()
        .await
        .unwrap();
    assert!(streamed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = streamed.text().await.unwrap();
    let pieces: Vec<String> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| {
            let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(pieces.len(), 8, "{text}");
    assert_eq!(pieces.concat(), "Good: you named the rate and the burst.");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // Seven gaps of 30 ms between eight tokens.
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let _ = stop.send(());
}
