//! The OpenAI-compatible client against a scripted server on 127.0.0.1:0: streams with
//! `[DONE]`, CRLF, keep-alive comments, events split mid-line and mid-JSON, truncated and
//! broken streams, HTTP errors, stalls and timeouts, the non-streaming call, and a dropped
//! stream closing the upstream connection.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use keel_interview::{ChatMessage, ModelConfig, ModelError, OpenAiClient};
use tokio::sync::{mpsc, oneshot};

/// What the scripted server does with its response body.
#[derive(Clone, Debug)]
enum Act {
    Send(&'static str),
    SendOwned(String),
    Sleep(Duration),
    /// Fail the body stream: hyper cuts the connection mid-body.
    Abort,
    /// Never send anything again.
    Hang,
    /// Send a keep-alive comment every 50 ms, forever.
    KeepAliveForever,
}

struct Script {
    status: StatusCode,
    content_type: &'static str,
    /// Before the response head: a slow server.
    delay_head: Duration,
    acts: Vec<Act>,
}

impl Script {
    fn sse(acts: Vec<Act>) -> Self {
        Script {
            status: StatusCode::OK,
            content_type: "text/event-stream",
            delay_head: Duration::ZERO,
            acts,
        }
    }

    fn status(status: u16, body: &'static str) -> Self {
        Script {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: "application/json",
            delay_head: Duration::ZERO,
            acts: vec![Act::Send(body)],
        }
    }
}

/// Notifies when the server drops the response body: hyper drops it when the connection
/// closes.
struct DropGuard(Option<oneshot::Sender<()>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

struct Server {
    base: String,
    /// Each request's headers and JSON body.
    requests: mpsc::UnboundedReceiver<(HeaderMap, serde_json::Value)>,
    /// Fires when a response body is dropped.
    body_dropped: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

async fn serve(script: Script) -> Server {
    let script = Arc::new(script);
    let (req_tx, requests) = mpsc::unbounded_channel();
    let (drop_tx, drop_rx) = oneshot::channel();
    let drop_tx = Arc::new(Mutex::new(Some(drop_tx)));
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, body: String| {
            let script = script.clone();
            let req_tx = req_tx.clone();
            let drop_tx = drop_tx.clone();
            async move {
                let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                let _ = req_tx.send((headers, json));
                tokio::time::sleep(script.delay_head).await;
                let guard = DropGuard(drop_tx.lock().unwrap().take());
                let acts = script.acts.clone();
                let stream = futures_util::stream::unfold(
                    (acts.into_iter(), guard, false),
                    |(mut acts, guard, forever)| async move {
                        if forever {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            return Some((
                                Ok(Bytes::from_static(b": keep-alive\n\n")),
                                (acts, guard, true),
                            ));
                        }
                        loop {
                            match acts.next()? {
                                Act::Send(s) => {
                                    return Some((
                                        Ok(Bytes::from_static(s.as_bytes())),
                                        (acts, guard, false),
                                    ))
                                }
                                Act::SendOwned(s) => {
                                    return Some((Ok(Bytes::from(s)), (acts, guard, false)))
                                }
                                Act::Sleep(d) => tokio::time::sleep(d).await,
                                Act::Abort => {
                                    return Some((
                                        Err(std::io::Error::other("scripted abort")),
                                        (acts, guard, false),
                                    ))
                                }
                                Act::Hang => {
                                    std::future::pending::<()>().await;
                                }
                                Act::KeepAliveForever => {
                                    return Some((
                                        Ok(Bytes::from_static(b": keep-alive\n\n")),
                                        (acts, guard, true),
                                    ))
                                }
                            }
                        }
                    },
                );
                Response::builder()
                    .status(script.status)
                    .header("content-type", script.content_type)
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}/v1"),
        requests,
        body_dropped: Arc::new(Mutex::new(Some(drop_rx))),
    }
}

fn client(base: &str, timeout: Duration, idle: Duration) -> OpenAiClient {
    OpenAiClient::new(ModelConfig {
        api_base: base.to_owned(),
        model: "test-model".into(),
        api_key: Some("sk-test".into()),
        timeout,
        idle_timeout: idle,
        max_tokens: 64,
    })
    .unwrap()
}

fn quick(base: &str) -> OpenAiClient {
    client(base, Duration::from_secs(5), Duration::from_secs(5))
}

fn messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "You grade."),
        ChatMessage::new("user", "Hello"),
    ]
}

/// Every item of the stream: the pieces, then the error that ended it, if any.
async fn collect(c: &OpenAiClient) -> (Vec<String>, Option<ModelError>) {
    let mut pieces = Vec::new();
    let stream = c.stream(messages());
    futures_util::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(p) => pieces.push(p),
            Err(e) => {
                // An error ends the stream.
                assert!(stream.next().await.is_none());
                return (pieces, Some(e));
            }
        }
    }
    (pieces, None)
}

const NORMAL: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"lo, \"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"world\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

#[tokio::test]
async fn a_normal_stream_ends_at_done() {
    let mut server = serve(Script::sse(vec![Act::Send(NORMAL)])).await;
    let (pieces, err) = collect(&quick(&server.base)).await;
    assert_eq!(pieces, ["Hel", "lo, ", "world"]);
    assert!(err.is_none(), "{err:?}");
    // The request: streamed, with the model, the messages and the key.
    let (headers, body) = server.requests.recv().await.unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["messages"][1]["content"], "Hello");
    assert_eq!(headers["authorization"], "Bearer sk-test");
}

#[tokio::test]
async fn crlf_line_endings() {
    let crlf = NORMAL.replace('\n', "\r\n");
    let server = serve(Script::sse(vec![Act::SendOwned(crlf)])).await;
    let (pieces, err) = collect(&quick(&server.base)).await;
    assert_eq!(pieces, ["Hel", "lo, ", "world"]);
    assert!(err.is_none());
}

#[tokio::test]
async fn keep_alive_comments_and_other_fields_are_skipped() {
    let server = serve(Script::sse(vec![
        Act::Send(": keep-alive\n\n"),
        Act::Send("event: message\nid: 7\nretry: 1000\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
        Act::Sleep(Duration::from_millis(30)),
        Act::Send(":\n\n: ping\n\n"),
        Act::Send("data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]\n\n"),
    ]))
    .await;
    let (pieces, err) = collect(&quick(&server.base)).await;
    assert_eq!(pieces, ["a", "b"]);
    assert!(err.is_none());
}

#[tokio::test]
async fn events_split_mid_line_and_mid_json() {
    for size in [1usize, 2, 3, 7, 13, 64] {
        for text in [NORMAL.to_owned(), NORMAL.replace('\n', "\r\n")] {
            let acts: Vec<Act> = text
                .as_bytes()
                .chunks(size)
                .flat_map(|c| {
                    [
                        Act::SendOwned(String::from_utf8(c.to_vec()).unwrap()),
                        Act::Sleep(Duration::from_millis(1)),
                    ]
                })
                .collect();
            let server = serve(Script::sse(acts)).await;
            let (pieces, err) = collect(&quick(&server.base)).await;
            assert_eq!(pieces.concat(), "Hello, world", "chunks of {size}");
            assert!(err.is_none(), "chunks of {size}: {err:?}");
        }
    }
}

#[tokio::test]
async fn a_stream_without_done_is_truncated() {
    let without = NORMAL.replace("data: [DONE]\n\n", "");
    let server = serve(Script::sse(vec![Act::SendOwned(without)])).await;
    let (pieces, err) = collect(&quick(&server.base)).await;
    assert_eq!(pieces, ["Hel", "lo, ", "world"]);
    assert_eq!(err, Some(ModelError::Truncated));
    // Cut mid-event, mid-JSON.
    let server = serve(Script::sse(vec![Act::Send(
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"del",
    )]))
    .await;
    let (pieces, err) = collect(&quick(&server.base)).await;
    assert_eq!(pieces, ["a"]);
    assert_eq!(err, Some(ModelError::Truncated));
}

#[tokio::test]
async fn the_server_breaking_mid_stream_is_truncated() {
    let server = serve(Script::sse(vec![
        Act::Send("data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n"),
        Act::Send("data: {\"choices\":[{\"delta\":{\"content\":\"two\"}}]}\n\n"),
        Act::Sleep(Duration::from_millis(20)),
        Act::Abort,
    ]))
    .await;
    let (pieces, err) = collect(&quick(&server.base)).await;
    assert_eq!(pieces, ["one", "two"]);
    assert_eq!(err, Some(ModelError::Truncated));
}

#[tokio::test]
async fn an_error_event_mid_stream() {
    let server = serve(Script::sse(vec![
        Act::Send("data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n"),
        Act::Send("data: {\"error\":{\"message\":\"model overloaded\"}}\n\n"),
        Act::Send("data: {\"choices\":[{\"delta\":{\"content\":\"never\"}}]}\n\ndata: [DONE]\n\n"),
    ]))
    .await;
    let (pieces, err) = collect(&quick(&server.base)).await;
    assert_eq!(pieces, ["one"]);
    assert_eq!(err, Some(ModelError::Upstream("model overloaded".into())));
    let server = serve(Script::sse(vec![Act::Send("data: {not json}\n\n")])).await;
    let (_, err) = collect(&quick(&server.base)).await;
    assert!(matches!(err, Some(ModelError::Malformed(_))), "{err:?}");
}

#[tokio::test]
async fn http_errors_carry_status_and_an_excerpt() {
    for (status, body) in [
        (401, r#"{"error":{"message":"Invalid API key provided"}}"#),
        (
            429,
            r#"{"error":{"message":"Rate limit reached, slow down"}}"#,
        ),
        (500, "internal error"),
        (503, "upstream overloaded"),
    ] {
        let server = serve(Script::status(status, body)).await;
        let c = quick(&server.base);
        let (pieces, err) = collect(&c).await;
        assert!(pieces.is_empty());
        match err {
            Some(ModelError::Http { status: s, body: b }) => {
                assert_eq!(s, status);
                let needle = if status == 401 {
                    "Invalid API key"
                } else {
                    &body[..8]
                };
                assert!(b.contains(needle), "{b}");
            }
            other => panic!("{status}: {other:?}"),
        }
        let err = c.complete(&messages()).await.unwrap_err();
        assert!(
            matches!(err, ModelError::Http { status: s, .. } if s == status),
            "{err:?}"
        );
        assert!(err.to_string().contains(&status.to_string()));
    }
}

#[tokio::test]
async fn an_error_body_excerpt_is_short() {
    let long: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
    let server = serve(Script::status(500, long)).await;
    let err = quick(&server.base).complete(&messages()).await.unwrap_err();
    match err {
        ModelError::Http { body, .. } => assert!(body.chars().count() <= 201, "{}", body.len()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stalled_stream_times_out() {
    // Idle: the head arrives, then nothing.
    let server = serve(Script::sse(vec![
        Act::Send("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
        Act::Hang,
    ]))
    .await;
    let c = client(
        &server.base,
        Duration::from_secs(10),
        Duration::from_millis(300),
    );
    let start = Instant::now();
    let (pieces, err) = collect(&c).await;
    let took = start.elapsed();
    assert_eq!(pieces, ["a"]);
    assert_eq!(err, Some(ModelError::Timeout));
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );

    // Overall: keep-alives arrive, so it is never idle, but it never ends either.
    let server = serve(Script::sse(vec![Act::KeepAliveForever])).await;
    let c = client(
        &server.base,
        Duration::from_millis(600),
        Duration::from_millis(300),
    );
    let start = Instant::now();
    let (_, err) = collect(&c).await;
    let took = start.elapsed();
    assert_eq!(err, Some(ModelError::Timeout));
    assert!(
        took >= Duration::from_millis(590) && took < Duration::from_millis(1800),
        "{took:?}"
    );

    // Before the response head.
    let mut script = Script::sse(vec![Act::Send(NORMAL)]);
    script.delay_head = Duration::from_secs(30);
    let server = serve(script).await;
    let c = client(
        &server.base,
        Duration::from_millis(400),
        Duration::from_millis(300),
    );
    let start = Instant::now();
    let (_, err) = collect(&c).await;
    assert_eq!(err, Some(ModelError::Timeout));
    assert!(start.elapsed() < Duration::from_millis(1500));
    let start = Instant::now();
    assert_eq!(
        c.complete(&messages()).await.unwrap_err(),
        ModelError::Timeout
    );
    assert!(start.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn complete_returns_the_message_content() {
    let mut server = serve(Script {
        status: StatusCode::OK,
        content_type: "application/json",
        delay_head: Duration::ZERO,
        acts: vec![
            Act::Send("{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"),
            Act::Sleep(Duration::from_millis(10)),
            Act::Send("\"{\\\"covered\\\":[\\\"rate\\\"]}\"}}]}"),
        ],
    })
    .await;
    let c = quick(&server.base);
    assert_eq!(
        c.complete(&messages()).await.unwrap(),
        "{\"covered\":[\"rate\"]}"
    );
    let (_, body) = server.requests.recv().await.unwrap();
    assert_eq!(body["stream"], false);

    let server = serve(Script::status(200, "{\"choices\":[]}")).await;
    let err = quick(&server.base).complete(&messages()).await.unwrap_err();
    assert!(matches!(err, ModelError::Malformed(_)), "{err:?}");
    let server = serve(Script::status(200, "<html>not json</html>")).await;
    let err = quick(&server.base).complete(&messages()).await.unwrap_err();
    assert!(matches!(err, ModelError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let server = serve(Script::sse(vec![
        Act::Send("data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n"),
        Act::KeepAliveForever,
    ]))
    .await;
    let dropped = server.body_dropped.lock().unwrap().take().unwrap();
    let c = quick(&server.base);
    {
        let stream = c.stream(messages());
        futures_util::pin_mut!(stream);
        assert_eq!(stream.next().await.unwrap().unwrap(), "first");
        // The stream is dropped here, after its first token.
    }
    tokio::time::timeout(Duration::from_secs(1), dropped)
        .await
        .expect("the server saw its connection closed within a second")
        .unwrap();
}

#[tokio::test]
async fn connection_refused_and_bad_config() {
    // A port that was free a moment ago.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = quick(&format!("http://{addr}/v1"));
    let (_, err) = collect(&c).await;
    assert!(matches!(err, Some(ModelError::Connect(_))), "{err:?}");
    assert!(matches!(
        c.complete(&messages()).await,
        Err(ModelError::Connect(_))
    ));

    for (base, model) in [
        ("ftp://x", "m"),
        ("localhost:11434", "m"),
        ("http://x/v1", " "),
    ] {
        let cfg = ModelConfig::new(base, model);
        assert!(matches!(OpenAiClient::new(cfg), Err(ModelError::Config(_))));
    }
    let mut cfg = ModelConfig::new("http://127.0.0.1:11434/v1/", "llama3.1:8b");
    cfg.timeout = Duration::ZERO;
    assert!(matches!(OpenAiClient::new(cfg), Err(ModelError::Config(_))));
}

#[tokio::test]
async fn the_stream_is_send_and_static() {
    // The site moves the stream into a spawned task that outlives the client handle.
    let server = serve(Script::sse(vec![Act::Send(NORMAL)])).await;
    let stream = quick(&server.base).stream(messages());
    let joined = tokio::spawn(async move {
        futures_util::pin_mut!(stream);
        let mut out = String::new();
        while let Some(Ok(p)) = stream.next().await {
            out.push_str(&p);
        }
        out
    })
    .await
    .unwrap();
    assert_eq!(joined, "Hello, world");
}
