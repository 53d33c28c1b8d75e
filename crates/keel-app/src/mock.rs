//! `keel mock-upstream`: a stand-in for the outside JSON API that `/sync/test` and
//! `/async/test` call, with a fixed, configurable latency — and for an OpenAI-compatible
//! model (`POST /v1/chat/completions`, streaming or not, at a configurable token pace), so
//! the AI Interviewer's model path can be shown and tested with no model and no network.
//!
//! Benchmarks need an upstream whose latency is known exactly and which is never the
//! bottleneck, so this answers from a static body with no allocation per request beyond
//! hyper's own, and the only wait is the configured sleep (a timer, not a thread).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
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
    /// Delay between two tokens of a streamed chat completion.
    pub token_interval: Duration,
}

/// A bound mock upstream.
#[derive(Debug)]
pub struct MockUpstream {
    listener: TcpListener,
    latency: Duration,
    token_interval: Duration,
}

/// What the handlers share.
#[derive(Debug, Clone, Copy)]
struct Pace {
    latency: Duration,
    token_interval: Duration,
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
            token_interval: cfg.token_interval,
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
            .route("/v1/chat/completions", post(chat))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "keel mock-upstream serves /todos/1, /mock/todos/1 and POST /v1/chat/completions\n",
                )
            })
            .with_state(Pace {
                latency: self.latency,
                token_interval: self.token_interval,
            });
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

async fn todo(State(pace): State<Pace>) -> Response {
    if !pace.latency.is_zero() {
        tokio::time::sleep(pace.latency).await;
    }
    ([(header::CONTENT_TYPE, "application/json")], TODO_JSON).into_response()
}

/// The part of an OpenAI chat completion request the mock reads.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: String,
}

/// What the mock "model" says: the text between `<draft>` and `</draft>` in the last
/// message (the interviewer sends its rubric's reply there to be phrased), or, when the
/// last message asks for a JSON verdict, an empty proposal — the rubric then decides alone.
fn mock_reply(request: &ChatRequest) -> String {
    let last = request
        .messages
        .last()
        .map(|m| m.content.as_str())
        .unwrap_or("");
    if let Some(start) = last.find("<draft>") {
        let rest = &last[start + "<draft>".len()..];
        let end = rest.find("</draft>").unwrap_or(rest.len());
        return rest[..end].trim().to_owned();
    }
    if last.contains("\"covered\"") {
        return r#"{"covered": [], "misconceptions": []}"#.to_owned();
    }
    "This is keel's mock model. Point the interviewer at a real OpenAI-compatible server for real phrasing.".to_owned()
}

/// The reply's tokens as a model streams them: each word with the space before it.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_whitespace() && !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `POST /v1/chat/completions`, OpenAI's shape: one JSON answer, or with `"stream": true`
/// Server-Sent Events of `chat.completion.chunk`s, one token every `token_interval`, then
/// `data: [DONE]`.
async fn chat(State(pace): State<Pace>, Json(request): Json<ChatRequest>) -> Response {
    if !pace.latency.is_zero() {
        tokio::time::sleep(pace.latency).await;
    }
    let reply = mock_reply(&request);
    if !request.stream {
        let body = serde_json::json!({
            "id": "chatcmpl-keel-mock",
            "object": "chat.completion",
            "model": "keel-mock",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": reply }, "finish_reason": "stop" }],
        });
        return Json(body).into_response();
    }
    let interval = pace.token_interval;
    let chunks = futures_util::stream::unfold(
        (tokens(&reply).into_iter(), false, true),
        move |(mut words, done, first)| async move {
            if done {
                return None;
            }
            match words.next() {
                Some(word) => {
                    if !first && !interval.is_zero() {
                        tokio::time::sleep(interval).await;
                    }
                    let chunk = serde_json::json!({
                        "id": "chatcmpl-keel-mock",
                        "object": "chat.completion.chunk",
                        "model": "keel-mock",
                        "choices": [{ "index": 0, "delta": { "content": word }, "finish_reason": null }],
                    });
                    let frame = format!("data: {chunk}\n\n");
                    Some((
                        Ok::<_, std::convert::Infallible>(frame),
                        (words, false, false),
                    ))
                }
                None => Some((Ok("data: [DONE]\n\n".to_owned()), (words, true, false))),
            }
        },
    );
    let mut response = Response::new(Body::from_stream(chunks));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
