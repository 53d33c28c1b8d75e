//! `keel mock-upstream`: a stand-in for the outside JSON API that `/sync/test` and
//! `/async/test` call, with a fixed, configurable latency.
//!
//! Benchmarks need an upstream whose latency is known exactly and which is never the
//! bottleneck, so this answers from a static body with no allocation per request beyond
//! hyper's own, and the only wait is the configured sleep (a timer, not a thread).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::AppError;

/// The todo JSONPlaceholder serves at `/todos/1`, byte for byte what keel answers.
pub const TODO_JSON: &str =
    r#"{"userId": 1, "id": 1, "title": "delectus aut autem", "completed": false}"#;

/// Where the mock listens and how long it waits before answering.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Delay before each answer.
    pub latency: Duration,
}

/// A bound mock upstream.
#[derive(Debug)]
pub struct MockUpstream {
    listener: TcpListener,
    latency: Duration,
}

impl MockUpstream {
    /// Binds the listener.
    pub async fn build(cfg: MockConfig) -> Result<MockUpstream, AppError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: cfg.listen,
                source,
            })?;
        Ok(MockUpstream {
            listener,
            latency: cfg.latency,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The URL of the todo this mock serves, for use as an app's upstream.
    pub fn todo_url(&self) -> url::Url {
        let text = format!("http://{}/todos/1", self.local_addr());
        // An `http://ip:port/path` string is always a valid URL.
        url::Url::parse(&text).unwrap_or_else(|_| unreachable!("{text} is a valid URL"))
    }

    /// Serves until `shutdown` resolves. In-flight requests get one latency period plus a
    /// second to finish: the mock holds nothing worth waiting longer for.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let grace = self.latency + Duration::from_secs(1);
        let router = Router::new()
            .route("/todos/1", get(todo))
            .route("/mock/todos/1", get(todo))
            .route("/healthz", get(|| async { "ok" }))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "keel mock-upstream serves /todos/1 and /mock/todos/1\n",
                )
            })
            .with_state(self.latency);
        // Its clients (the app's pooled upstream clients) keep idle connections up to 90 s:
        // the mock keeps them longer, so a pooled request never meets a closing socket.
        let timeouts = crate::server::Timeouts {
            shutdown: grace,
            keep_alive: Duration::from_secs(120),
            header: Duration::from_secs(10),
        };
        let trusted = keel_client::Trusted::None;
        crate::server::serve(self.listener, router, trusted, shutdown, timeouts).await
    }
}

async fn todo(State(latency): State<Duration>) -> Response {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    ([(header::CONTENT_TYPE, "application/json")], TODO_JSON).into_response()
}
