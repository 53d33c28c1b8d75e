//! An OpenAI-compatible chat client: `POST {api_base}/chat/completions`, which OpenAI,
//! Ollama (`http://127.0.0.1:11434/v1`), llama.cpp's server, vLLM and LM Studio all serve.
//! [`OpenAiClient::complete`] returns the whole reply; [`OpenAiClient::stream`] yields its
//! pieces as they are generated, parsed from server-sent events.
//!
//! What it guarantees, because a model server is an untrusted upstream that may be slow,
//! overloaded or gone:
//! - **Bounded time**: an overall `timeout` for the whole call, and for streams an
//!   `idle_timeout` between chunks, both ending in [`ModelError::Timeout`].
//! - **Honest endings**: a stream that ends (or breaks) before `data: [DONE]` ends with
//!   [`ModelError::Truncated`], so a half-written verdict is never taken for a whole one.
//! - **Errors that say what happened**: an HTTP error status (401, 429, 5xx...) is
//!   [`ModelError::Http`] with the status and a short excerpt of the body.
//! - **Bounded memory**: SSE lines and whole responses have size limits.
//! - **Cancellation**: dropping the stream drops the response body, which closes the
//!   connection to the model server at once, so it stops generating for nobody.
//! - **The key stays secret**: [`ModelConfig`]'s `Debug` masks it; errors never carry it.
//!
//! The SSE parser follows the WHATWG `text/event-stream` rules that matter here: lines end
//! in LF, CRLF or CR (also when split across chunks), `:` lines are comments (keep-alives),
//! `data:` lines of one event are joined by `\n`, an event ends at a blank line, and events
//! or UTF-8 sequences may be split anywhere across network chunks.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;

use crate::model::ChatMessage;

/// Where the model is and how long to wait for it.
#[derive(Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// The API root, e.g. `http://127.0.0.1:11434/v1` (Ollama) or
    /// `https://api.openai.com/v1`; `/chat/completions` is appended.
    pub api_base: String,
    /// The model name, e.g. `llama3.1:8b`.
    pub model: String,
    /// Sent as `Authorization: Bearer`; never logged (`Debug` masks it).
    pub api_key: Option<String>,
    /// The whole call, from sending the request to the last byte.
    pub timeout: Duration,
    /// For streams: the longest silence between two chunks.
    pub idle_timeout: Duration,
    /// `max_tokens` of the request.
    pub max_tokens: u32,
}

impl ModelConfig {
    /// A configuration with keel's defaults: no key, a 60 s overall timeout, 20 s idle
    /// (a local model can take seconds to read a long prompt before its first token),
    /// 512 tokens.
    pub fn new(api_base: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            api_base: api_base.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(20),
            max_tokens: 512,
        }
    }
}

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelConfig")
            .field("api_base", &self.api_base)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The server answered with an error status (401 bad key, 429 rate limited, 5xx...).
    #[error("the model server answered HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, on one line.
        body: String,
    },
    /// The overall timeout, or the idle timeout between stream chunks, passed.
    #[error("the model did not answer in time")]
    Timeout,
    /// The stream ended or broke before `data: [DONE]`.
    #[error("the model's stream ended before it was complete")]
    Truncated,
    /// The response was not what an OpenAI-compatible server sends.
    #[error("malformed model response: {0}")]
    Malformed(String),
    /// The server could not be reached (refused, DNS, TLS...).
    #[error("cannot reach the model server: {0}")]
    Connect(String),
    /// The server sent an error object inside an otherwise successful stream.
    #[error("the model server reported an error: {0}")]
    Upstream(String),
    /// The configuration cannot work (a bad `api_base`, an empty model name...).
    #[error("invalid model configuration: {0}")]
    Config(String),
}

/// The longest SSE line (a JSON chunk is a few hundred bytes).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The largest non-streamed response read.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// How much of an error body is kept in [`ModelError::Http`].
pub const ERROR_EXCERPT_CHARS: usize = 200;

/// A client for one model on one server. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    cfg: ModelConfig,
}

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

impl OpenAiClient {
    /// Checks the configuration and builds the connection pool.
    pub fn new(cfg: ModelConfig) -> Result<Self, ModelError> {
        let base = cfg.api_base.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ModelError::Config(format!(
                "api_base must start with http:// or https://, not `{base}`"
            )));
        }
        if cfg.model.trim().is_empty() {
            return Err(ModelError::Config("the model name is empty".into()));
        }
        if cfg.timeout.is_zero() || cfg.idle_timeout.is_zero() {
            return Err(ModelError::Config("timeouts must be above zero".into()));
        }
        let url = format!("{base}/chat/completions");
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ModelError::Config(chain(&e)))?;
        Ok(Self { http, url, cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn request(&self, messages: &[ChatMessage], stream: bool) -> reqwest::RequestBuilder {
        let body = serde_json::json!({
            "model": self.cfg.model,
            "messages": messages,
            "stream": stream,
            "max_tokens": self.cfg.max_tokens,
        });
        let mut req = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if stream {
            req = req.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        if let Some(key) = &self.cfg.api_key {
            req = req.bearer_auth(key);
        }
        req
    }

    /// The whole reply (`stream: false`): `choices[0].message.content`.
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        let req = self.request(messages, false);
        let call = async move {
            let resp = send(req).await?;
            let mut body: BodyStream = Box::pin(resp.bytes_stream());
            let mut buf = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|_| ModelError::Truncated)?;
                if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(ModelError::Malformed(format!(
                        "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
            completion_content(&buf)
        };
        tokio::time::timeout(self.cfg.timeout, call)
            .await
            .map_err(|_| ModelError::Timeout)?
    }

    /// The reply as it is generated (`stream: true`): each `choices[0].delta.content`
    /// piece, in order, ending at `data: [DONE]`. Errors end the stream (see the module
    /// doc). Dropping the stream closes the connection.
    pub fn stream(
        &self,
        messages: Vec<ChatMessage>,
    ) -> impl Stream<Item = Result<String, ModelError>> + Send + 'static {
        let start = State::Start {
            request: Box::new(self.request(&messages, true)),
            timeout: self.cfg.timeout,
            idle: self.cfg.idle_timeout,
        };
        futures_util::stream::unfold(start, |state| async move {
            match state {
                State::Finished => None,
                State::Start {
                    request,
                    timeout,
                    idle,
                } => {
                    let deadline = Instant::now() + timeout;
                    match tokio::time::timeout_at(deadline, send(*request)).await {
                        Err(_) => Some((Err(ModelError::Timeout), State::Finished)),
                        Ok(Err(e)) => Some((Err(e), State::Finished)),
                        Ok(Ok(resp)) => {
                            let reading = Reading {
                                body: Box::pin(resp.bytes_stream()),
                                parser: SseParser::default(),
                                pending: VecDeque::new(),
                                done: false,
                                deadline,
                                idle,
                            };
                            reading.next().await
                        }
                    }
                }
                State::Reading(reading) => reading.next().await,
            }
        })
    }
}

enum State {
    Start {
        request: Box<reqwest::RequestBuilder>,
        timeout: Duration,
        idle: Duration,
    },
    Reading(Box<Reading>),
    Finished,
}

struct Reading {
    body: BodyStream,
    parser: SseParser,
    /// Pieces (and at most one final error) parsed but not yet yielded.
    pending: VecDeque<Result<String, ModelError>>,
    /// `[DONE]` seen: yield what is pending, then end.
    done: bool,
    deadline: Instant,
    idle: Duration,
}

impl Reading {
    async fn next(mut self) -> Option<(Result<String, ModelError>, State)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return match item {
                    Ok(piece) => Some((Ok(piece), State::Reading(Box::new(self)))),
                    Err(e) => Some((Err(e), State::Finished)),
                };
            }
            if self.done {
                // Dropping `self` drops the body: the connection is not reused mid-body.
                return None;
            }
            let wake = self.deadline.min(Instant::now() + self.idle);
            match tokio::time::timeout_at(wake, self.body.next()).await {
                Err(_) => return Some((Err(ModelError::Timeout), State::Finished)),
                Ok(Some(Ok(chunk))) => match self.parser.feed(&chunk) {
                    Ok(events) => self.take(events),
                    Err(e) => self.pending.push_back(Err(e)),
                },
                Ok(Some(Err(_))) => self.pending.push_back(Err(ModelError::Truncated)),
                Ok(None) => {
                    let events = self.parser.finish();
                    self.take(events);
                    if !self.done && !self.pending.iter().any(Result::is_err) {
                        self.pending.push_back(Err(ModelError::Truncated));
                    }
                    // Whatever happens next, the body is over.
                    self.done = true;
                }
            }
        }
    }

    /// Turns event data into pending pieces, stopping at `[DONE]` or the first error.
    fn take(&mut self, events: Vec<String>) {
        for data in events {
            if self.done || self.pending.iter().any(Result::is_err) {
                return;
            }
            if data.trim() == "[DONE]" {
                self.done = true;
                return;
            }
            match delta_content(&data) {
                Ok(Some(piece)) if !piece.is_empty() => self.pending.push_back(Ok(piece)),
                Ok(_) => {}
                Err(e) => self.pending.push_back(Err(e)),
            }
        }
    }
}

/// Sends a request and turns transport failures and error statuses into [`ModelError`].
async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, ModelError> {
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            ModelError::Timeout
        } else {
            ModelError::Connect(chain(&e))
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // Read a little of the body for the excerpt, never the whole of it.
    let mut body: BodyStream = Box::pin(resp.bytes_stream());
    let mut buf = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= 4 * ERROR_EXCERPT_CHARS {
            break;
        }
    }
    Err(ModelError::Http {
        status: status.as_u16(),
        body: excerpt(&String::from_utf8_lossy(&buf)),
    })
}

/// The error and its sources on one line (reqwest's own message is only the outer layer).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn excerpt(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(ERROR_EXCERPT_CHARS).collect();
    if one_line.chars().count() > ERROR_EXCERPT_CHARS {
        out.push('…');
    }
    out
}

fn upstream_error(v: &Value) -> Option<String> {
    let err = v.get("error")?;
    Some(
        err.get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| excerpt(&err.to_string())),
    )
}

/// `choices[0].message.content` of a non-streamed reply.
fn completion_content(body: &[u8]) -> Result<String, ModelError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ModelError::Malformed(format!(
            "not JSON ({e}): {}",
            excerpt(&String::from_utf8_lossy(body))
        ))
    })?;
    if let Some(msg) = upstream_error(&v) {
        return Err(ModelError::Upstream(msg));
    }
    v.pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ModelError::Malformed("no choices[0].message.content".into()))
}

/// `choices[0].delta.content` of one streamed chunk; `None` for chunks without content
/// (the role announcement, a usage report, a finish reason).
fn delta_content(data: &str) -> Result<Option<String>, ModelError> {
    let v: Value = serde_json::from_str(data).map_err(|e| {
        ModelError::Malformed(format!("an event is not JSON ({e}): {}", excerpt(data)))
    })?;
    if let Some(msg) = upstream_error(&v) {
        return Err(ModelError::Upstream(msg));
    }
    Ok(v.pointer("/choices/0/delta/content")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// An incremental `text/event-stream` parser that returns each event's data.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes not yet split into lines.
    buf: Vec<u8>,
    /// The data lines of the event being read.
    data: Option<String>,
}

impl SseParser {
    /// Feeds one network chunk; returns the data of every event it completed.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, ModelError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0usize;
        while let Some(rel) = self.buf[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + rel;
            let terminator = self.buf[end];
            let next = if terminator == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    // A CR at the end of the chunk may be the first half of a CRLF.
                    None => break,
                }
            } else {
                end + 1
            };
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            self.line(&line, &mut events);
            start = next;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(ModelError::Malformed(format!(
                "an event-stream line is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        Ok(events)
    }

    /// The end of the body: a last line without its line break still counts, but an
    /// event without its blank line is dispatched only if it is `[DONE]` (anything else
    /// may be cut mid-JSON).
    pub(crate) fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest);
            let line = line.trim_end_matches('\r').to_owned();
            self.line(&line, &mut events);
        }
        if let Some(data) = self.data.take() {
            if data.trim() == "[DONE]" {
                events.push(data);
            }
        }
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(data);
            }
            return;
        }
        if line.starts_with(':') {
            return; // A comment: keep-alive.
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        // `event`, `id`, `retry` and unknown fields carry nothing a chat stream needs.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c).unwrap());
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn lines_end_in_lf_crlf_or_cr_even_across_chunks() {
        assert_eq!(
            feed_all(&[b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: [DONE]\n\n"]),
            ["a", "b", "c", "[DONE]"]
        );
        assert_eq!(feed_all(&[b"data: a\r", b"\n\r", b"\n"]), ["a"]);
        assert_eq!(
            feed_all(&[b"da", b"ta: {\"x\"", b":1}\n", b"\n"]),
            ["{\"x\":1}"]
        );
    }

    #[test]
    fn comments_other_fields_and_multi_line_data() {
        assert_eq!(
            feed_all(&[b": keep-alive\n\nevent: x\nid: 1\ndata: one\ndata:two\n\n"]),
            ["one\ntwo"]
        );
    }

    #[test]
    fn an_unfinished_event_at_the_end_is_dropped_unless_done() {
        assert_eq!(feed_all(&[b"data: {\"cut"]), Vec::<String>::new());
        assert_eq!(feed_all(&[b"data: [DONE]"]), ["[DONE]"]);
    }

    #[test]
    fn utf8_split_across_chunks_survives() {
        let s = "data: é\n\n".as_bytes();
        assert_eq!(feed_all(&[&s[..7], &s[7..]]), ["é"]);
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut p = SseParser::default();
        let big = vec![b'x'; MAX_LINE_BYTES + 1];
        assert!(p.feed(&big).is_err());
    }

    #[test]
    fn the_key_is_masked() {
        let mut cfg = ModelConfig::new("http://127.0.0.1:1/v1", "m");
        cfg.api_key = Some("sk-secret".into());
        let s = format!("{cfg:?}");
        assert!(!s.contains("sk-secret"), "{s}");
        assert!(s.contains("***"));
    }
}
