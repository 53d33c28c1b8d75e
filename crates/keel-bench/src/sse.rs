//! `keel bench --sse`: how many Server-Sent Events streams a server holds, how fast a
//! published message reaches every one of them, and whether any is lost on the way.
//!
//! hey, wrk and oha measure request/response exchanges; a stream that stays open and
//! receives messages pushed by a *third party* is outside their model. [`run_sse`] does
//! what a crowd of browsers with `EventSource` open would do, and times it:
//!
//! 1. **Connect.** `clients` tasks each open one HTTP/1.1 connection (hyper's connection
//!    API, driven by the task itself, as in [`crate::client`]) and `GET` the stream URL with
//!    `Accept: text/event-stream`, all at once or ramped at `connect_rate_per_sec`. A stream
//!    counts as **connected** when its response head was a 2xx `text/event-stream` *and*
//!    its first frame arrived: the first `retry:` field, comment or event, whichever the
//!    server sends first. keel sends `retry:` once the hub has subscribed the stream to its
//!    channel, so from that moment nothing published can miss it. Two times are recorded
//!    per stream, both from the start of its TCP connect: to the response head
//!    (`time_to_head`) and to that first frame (`time_to_first_frame`, the "time to first
//!    event" of the report). A stream that is not connected within `connect_timeout` or
//!    answers anything else **failed**, counted by kind; it is not retried.
//! 2. **Publish.** Once every stream is connected or failed, `events` messages are
//!    published one after the other, message `k` due at `k × interval` after the first
//!    (a slow publish delays only those behind it, never the schedule). Message `k` is
//!    `keel-bench <k> <unix-nanos>`, the nanoseconds read just before the publish call, so
//!    a receiver computes **delivery latency = its clock at receipt − that stamp**, on the
//!    same machine clock: it includes the publisher's own cost (an HTTP round trip to
//!    `/api/publish`, or starting `redis-cli`), as the latency a user of that publisher sees.
//! 3. **Settle.** The run ends `settle` after the last publish, or as soon as every
//!    connected stream has every published message, or at `timeout` (whatever was
//!    measured until then is reported), or when the caller stops it ([`run_sse_until`]).
//!
//! Meanwhile each stream is parsed incrementally ([`SseParser`]: the HTML event-stream
//! grammar, lines split across reads and `\r\n`/`\r`/`\n` endings). Per stream it keeps a
//! bitmap of the message numbers seen (`events / 8` bytes) and a few counters; the rest
//! of a stream's cost is its task (under 2 KiB) and hyper's connection (a 2 KiB read
//! buffer and the 8 KiB write buffer hyper always allocates). Measured: 10,000 streams in
//! about 150 MB of the load generator's memory and a fraction of one core (it needs
//! 10,000 file descriptors: raise `ulimit -n`). Counted per stream: **duplicates** (a number
//! seen twice), **out of order**, **heartbeats** (comments), events that are not this run's
//! (**foreign**), and **reconnects**: when a stream ends or breaks, it waits the server's
//! `retry:` hint (1 s if none) and reconnects, with `Last-Event-ID` when the stream carried
//! ids, as a browser does; what the server replays then counts like any delivery. At the
//! end, **lost** = for every connected stream, each successfully published message it never
//! received (so `expected = published × connected = delivered + lost`).
//!
//! Latencies (delivery in µs, connect times in µs) go into HDR histograms (3 significant
//! digits, so percentiles are within 0.1 %); delivery latencies are recorded into a few
//! shards under short locks, so memory stays fixed whatever the number of deliveries.
//!
//! Limits, deliberately: plain `http://` and HTTP/1.1 only (one connection per stream, as
//! browsers do without HTTP/2); a server that sends neither a frame nor even its response
//! head until the first message (a WSGI streaming view) never becomes "connected" and
//! fails with `timeout`; `clients × events` is capped at [`MAX_TRACKED_DELIVERIES`].
//!
//! ```no_run
//! use std::time::Duration;
//! use keel_bench::sse::{run_sse, Publisher, SseOptions};
//!
//! # async fn demo() -> Result<(), keel_bench::sse::SseError> {
//! let publisher = Publisher::Url {
//!     url: "http://127.0.0.1:8080/api/publish".into(),
//!     token: Some("secret".into()),
//!     channel: "demo_stream".into(),
//! };
//! let mut opts = SseOptions::new("http://127.0.0.1:8080/stream/", publisher);
//! opts.clients = 1000;
//! opts.events = 100;
//! opts.interval = Duration::from_millis(50);
//! let report = run_sse(opts, None).await?;
//! print!("{}", report.to_text());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT,
};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

// Each stream drives its own connection in its task, as the load workers do.
use crate::client::drive;
use crate::error::{ErrorKind, OptionsError, RequestError};
use crate::options::{BenchOptions, Target};

/// The largest `clients × events` a run accepts: each stream keeps one bit per message,
/// so this bounds those bitmaps to 128 MiB in all.
pub const MAX_TRACKED_DELIVERIES: u64 = 1 << 30;
/// The prefix of every message this load generator publishes.
pub const PAYLOAD_PREFIX: &str = "keel-bench ";

/// Reconnect delay when the server sent no `retry:` hint (browsers use a few seconds).
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// Delivery-latency histograms; a stream records into shard `index % SHARDS`, so at most
/// `1 / SHARDS` of the streams contend for one lock.
const SHARDS: usize = 16;
/// The longest latency the histograms store exactly (1 h, in µs); longer ones saturate.
const HIST_MAX_US: u64 = 3_600_000_000;
/// Distinct error messages kept per kind (the rest are folded into one line per kind).
const MAX_MESSAGES_PER_KIND: usize = 32;
/// How often the coordinator looks at the shared counters while it waits.
const POLL: Duration = Duration::from_millis(5);
/// hyper's read buffer per stream. Its default starts at 8 KiB and adapts upwards; events
/// are small and mostly idle streams are the point, so a fixed 2 KiB (a burst is simply
/// read in several calls).
const READ_BUF_BYTES: usize = 2048;
/// Bytes of an error response (or a failed command's stderr) quoted in its message.
const QUOTE_BYTES: usize = 512;

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

/// How the messages are published.
#[derive(Clone, PartialEq, Eq)]
pub enum Publisher {
    /// `POST url` with the JSON body `{"channel": …, "message": …}` and, when `token` is
    /// given, `Authorization: Bearer <token>`: keel's `/api/publish`. Any 2xx is success.
    /// One keep-alive connection is used for every message.
    Url {
        /// e.g. `http://127.0.0.1:8080/api/publish`.
        url: String,
        /// The bearer token; `None` sends no `Authorization` header.
        token: Option<String>,
        /// The channel, e.g. `demo_stream`.
        channel: String,
    },
    /// Runs this command once per message with the message appended as its last argument,
    /// e.g. `["redis-cli", "-p", "6379", "publish", "demo_stream"]`. Exit status 0 is
    /// success; stdout is discarded, the start of stderr is quoted in the error otherwise.
    /// The program is run directly, not through a shell.
    Command(Vec<String>),
}

impl fmt::Debug for Publisher {
    /// Like the derived form, with the token masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url {
                url,
                token,
                channel,
            } => f
                .debug_struct("Url")
                .field("url", url)
                .field("token", &token.as_ref().map(|_| "***"))
                .field("channel", channel)
                .finish(),
            Self::Command(argv) => f.debug_tuple("Command").field(argv).finish(),
        }
    }
}

impl Publisher {
    /// One line for people, without the token: `POST URL (channel C, bearer token)` or
    /// `command: redis-cli -p 6379 publish demo_stream`.
    pub fn describe(&self) -> String {
        match self {
            Self::Url {
                url,
                token,
                channel,
            } => format!(
                "POST {url} (channel {channel}{})",
                if token.is_some() {
                    ", bearer token"
                } else {
                    ""
                }
            ),
            Self::Command(argv) => format!("command: {}", argv.join(" ")),
        }
    }
}

/// What an SSE run should do. Make one with [`SseOptions::new`] and change the fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SseOptions {
    /// The stream URL, `http://host[:port]/stream/[?channel=…]`.
    pub url: String,
    /// Concurrent streams, one connection each (default 100).
    pub clients: usize,
    /// Messages to publish (default 10). 0 only connects and holds the streams for
    /// `settle` (e.g. to measure the server's memory per idle client meanwhile).
    pub events: usize,
    /// How the messages are published.
    pub publish: Publisher,
    /// Time between two published messages (default 100 ms; 0 publishes back to back).
    pub interval: Duration,
    /// Open connections at this many per second instead of all at once (default: all at
    /// once).
    pub connect_rate_per_sec: Option<f64>,
    /// Bound on the whole run: connect, publish and settle (default 120 s). When it is
    /// reached the run stops and reports what it measured (`ended_by: timeout`).
    pub timeout: Duration,
    /// Bound on one stream's connect, from the TCP connect to its first frame (default 10 s).
    pub connect_timeout: Duration,
    /// How long to wait for deliveries after the last publish (default 2 s); the run ends
    /// earlier when every connected stream has every message.
    pub settle: Duration,
}

impl SseOptions {
    /// Options for the stream at `url` and `publish`, with the defaults above.
    pub fn new(url: impl Into<String>, publish: Publisher) -> Self {
        Self {
            url: url.into(),
            clients: 100,
            events: 10,
            publish,
            interval: Duration::from_millis(100),
            connect_rate_per_sec: None,
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            settle: Duration::from_secs(2),
        }
    }

    /// Checks every option and turns them into an [`SsePlan`]; [`run_sse`] calls it too.
    pub fn validate(&self) -> Result<SsePlan, SseOptionsError> {
        if self.clients == 0 {
            return Err(SseOptionsError::ZeroClients);
        }
        let deliveries = (self.clients as u64).saturating_mul(self.events as u64);
        if deliveries > MAX_TRACKED_DELIVERIES {
            return Err(SseOptionsError::TooManyDeliveries {
                clients: self.clients,
                events: self.events,
            });
        }
        if let Some(rate) = self.connect_rate_per_sec {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(SseOptionsError::ConnectRate(rate));
            }
        }
        if self.timeout.is_zero() {
            return Err(SseOptionsError::ZeroTimeout("--timeout"));
        }
        if self.connect_timeout.is_zero() {
            return Err(SseOptionsError::ZeroTimeout("--connect-timeout"));
        }
        let stream = Endpoint::parse(&self.url, "--sse")?;
        let publish = match &self.publish {
            Publisher::Url {
                url,
                token,
                channel,
            } => {
                let endpoint = Endpoint::parse(url, "--publish-url")?;
                if channel.is_empty() {
                    return Err(SseOptionsError::EmptyChannel);
                }
                let auth = match token {
                    None => None,
                    Some(t) if t.is_empty() => return Err(SseOptionsError::Token),
                    Some(t) => {
                        let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                            .map_err(|_| SseOptionsError::Token)?;
                        v.set_sensitive(true);
                        Some(v)
                    }
                };
                PublishPlan::Url {
                    endpoint: Box::new(endpoint),
                    auth,
                    channel: channel.clone(),
                }
            }
            Publisher::Command(argv) => match argv.first() {
                Some(program) if !program.is_empty() => PublishPlan::Command(argv.clone()),
                _ => return Err(SseOptionsError::EmptyCommand),
            },
        };
        Ok(SsePlan {
            stream,
            publish,
            describe_publisher: self.publish.describe(),
            clients: self.clients,
            events: self.events,
            interval: self.interval,
            connect_rate_per_sec: self.connect_rate_per_sec,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            settle: self.settle,
        })
    }
}

/// A URL split into what the connector and the request need.
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    target: Target,
    path: Uri,
    host: HeaderValue,
}

impl Endpoint {
    /// Parses with exactly the rules of `keel bench URL` (plain `http://`, no user info).
    fn parse(url: &str, flag: &'static str) -> Result<Self, SseOptionsError> {
        let bad = |source| SseOptionsError::Url { flag, source };
        let plan = BenchOptions::new(url).validate().map_err(bad)?;
        let host = plan.headers.get(HOST).cloned().ok_or_else(|| {
            bad(OptionsError::Url {
                url: url.to_string(),
                reason: "missing host".into(),
            })
        })?;
        Ok(Self {
            url: url.to_string(),
            target: plan.target,
            path: plan.path,
            host,
        })
    }
}

#[derive(Debug, Clone)]
enum PublishPlan {
    Url {
        endpoint: Box<Endpoint>,
        auth: Option<HeaderValue>,
        channel: String,
    },
    Command(Vec<String>),
}

/// Validated, ready-to-run options; made only by [`SseOptions::validate`].
#[derive(Debug, Clone)]
pub struct SsePlan {
    stream: Endpoint,
    publish: PublishPlan,
    describe_publisher: String,
    clients: usize,
    events: usize,
    interval: Duration,
    connect_rate_per_sec: Option<f64>,
    timeout: Duration,
    connect_timeout: Duration,
    settle: Duration,
}

impl SsePlan {
    /// Number of streams.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// Number of messages to publish.
    pub fn events(&self) -> usize {
        self.events
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why [`SseOptions::validate`] refused the options. Messages name the `keel bench --sse`
/// flags.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SseOptionsError {
    /// `clients == 0`.
    #[error("--clients must be at least 1")]
    ZeroClients,
    /// `clients × events` above [`MAX_TRACKED_DELIVERIES`].
    #[error("--clients {clients} × --events {events} is more than {MAX_TRACKED_DELIVERIES} deliveries to track; use fewer events or clients")]
    TooManyDeliveries {
        /// `clients`.
        clients: usize,
        /// `events`.
        events: usize,
    },
    /// A connect rate that is zero, negative or not a number.
    #[error("--connect-rate must be a positive number of connections per second, got {0}")]
    ConnectRate(f64),
    /// A zero `timeout` or `connect_timeout`.
    #[error("{0} must be longer than 0")]
    ZeroTimeout(&'static str),
    /// The stream URL or the publish URL is not a plain `http://` URL.
    #[error("{flag}: {source}")]
    Url {
        /// `--sse` (the stream URL) or `--publish-url`.
        flag: &'static str,
        /// What is wrong, as `keel bench URL` would say it.
        #[source]
        source: OptionsError,
    },
    /// [`Publisher::Url`] with an empty channel.
    #[error("--channel must not be empty (keel's default channel is demo_stream)")]
    EmptyChannel,
    /// A token that is empty or cannot be sent in an HTTP header.
    #[error("--token must be non-empty and contain no control characters")]
    Token,
    /// [`Publisher::Command`] without a program.
    #[error("--publish-cmd needs a program, e.g. redis-cli -p 6379 publish demo_stream")]
    EmptyCommand,
}

/// Why [`run_sse`] returned no report. Streams that fail or lose messages do *not* make a
/// run fail: they are what the report counts.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The options were invalid.
    #[error(transparent)]
    Options(#[from] SseOptionsError),
    /// The stream's or the publisher's host name did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// A stream task panicked or was cancelled (a bug, not a server problem).
    #[error("a stream task failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// An internal invariant failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
    /// JSON rendering failed.
    #[error("rendering the SSE report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How a failed connect, an ended stream or a failed publish is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SseErrorKind {
    /// The TCP connect was refused.
    ConnectRefused,
    /// Not connected within `connect_timeout` (or the run's `timeout`); a publish that did
    /// not finish before the run's `timeout`.
    Timeout,
    /// The connection was reset or closed in the middle of a response.
    ConnectionClosed,
    /// The server ended a stream cleanly (end of the chunked body).
    Ended,
    /// A non-2xx status (the message quotes the start of the body).
    Status,
    /// A 2xx response whose `Content-Type` is not `text/event-stream`.
    NotEventStream,
    /// The stream broke the event-stream grammar's limits (see [`SseParseError`]).
    Protocol,
    /// A publish command exited with a non-zero status or a signal.
    CommandFailed,
    /// Anything else; see the message.
    Other,
}

impl SseErrorKind {
    /// The snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect_refused",
            Self::Timeout => "timeout",
            Self::ConnectionClosed => "connection_closed",
            Self::Ended => "ended",
            Self::Status => "status",
            Self::NotEventStream => "not_event_stream",
            Self::Protocol => "protocol",
            Self::CommandFailed => "command_failed",
            Self::Other => "other",
        }
    }
}

impl From<ErrorKind> for SseErrorKind {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::ConnectRefused => Self::ConnectRefused,
            ErrorKind::Timeout => Self::Timeout,
            ErrorKind::ConnectionClosed => Self::ConnectionClosed,
            ErrorKind::Other => Self::Other,
        }
    }
}

/// One failure, before it is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    kind: SseErrorKind,
    message: String,
}

impl Failure {
    fn new(kind: SseErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn hyper(e: &hyper::Error) -> Self {
        RequestError::hyper(e).into()
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        Self::new(e.kind.into(), e.message)
    }
}

/// Failures grouped by kind and message, with a bounded number of messages per kind.
#[derive(Debug, Default)]
struct Tally {
    counts: BTreeMap<(SseErrorKind, String), u64>,
    messages_per_kind: BTreeMap<SseErrorKind, usize>,
}

impl Tally {
    fn add(&mut self, f: Failure) {
        let key = (f.kind, f.message);
        if let Some(n) = self.counts.get_mut(&key) {
            *n += 1;
            return;
        }
        let distinct = self.messages_per_kind.entry(key.0).or_insert(0);
        let key = if *distinct < MAX_MESSAGES_PER_KIND {
            *distinct += 1;
            key
        } else {
            (key.0, "(other messages of this kind)".to_string())
        };
        *self.counts.entry(key).or_insert(0) += 1;
    }

    fn into_counts(self) -> Vec<SseErrorCount> {
        self.counts
            .into_iter()
            .map(|((kind, message), count)| SseErrorCount {
                kind,
                message,
                count,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The event-stream parser
// ---------------------------------------------------------------------------------------

/// One item of an event stream, borrowed from the parser until the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseItem<'a> {
    /// A dispatched event, as `EventSource` would surface it.
    Event(SseEvent<'a>),
    /// A comment line (a heartbeat), without the `:` and one optional space.
    Comment(&'a [u8]),
    /// A valid `retry:` field, in milliseconds.
    Retry(u64),
}

/// A dispatched event: the `MessageEvent` fields, as bytes (the stream is UTF-8 by the
/// specification; decoding is left to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, `message` when there was none.
    pub event: &'a [u8],
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
    /// The last event ID of the stream at this event (empty when no `id:` was seen).
    pub last_event_id: &'a [u8],
}

/// Why [`SseParser::feed`] gave up on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseParseError {
    /// A line longer than the parser's limit without a line break.
    #[error("an event-stream line is longer than {0} bytes")]
    LineTooLong(usize),
    /// The data of one event grew beyond the parser's limit before its blank line.
    #[error("an event's data is longer than {0} bytes")]
    EventTooLong(usize),
}

/// An incremental `text/event-stream` parser: feed it the body's chunks as they arrive.
///
/// It follows the HTML specification's interpretation rules: lines end at `\r\n`, `\r` or
/// `\n` (also when a chunk ends between `\r` and `\n`), a leading BOM is skipped, one space
/// after the colon is dropped, `data:` lines are joined with `\n`, an event is dispatched on
/// a blank line and only when it has data, `id:` sets the last event ID (which persists,
/// and is kept across [`SseParser::reset`]) unless it contains NUL, `retry:` counts only
/// when it is all digits, and unknown fields are ignored. Unlike a browser it also reports
/// comments and `retry:`.
///
/// Memory: five small buffers that are reused (the current partial line, data, event
/// type, id buffer, last event ID); a complete line inside a chunk is parsed in place without copying. Both the line
/// and the data are bounded, so a server cannot grow a client without limit.
#[derive(Debug, Clone)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    event: Vec<u8>,
    /// The spec's "last event ID buffer": set by `id:` fields.
    id_buffer: Vec<u8>,
    /// The event source's last event ID: the buffer as of the last blank line.
    last_id: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` at the start of the next one belongs to it.
    pending_cr: bool,
    /// No line of this stream was processed yet (a BOM may lead it).
    first_line: bool,
    limit: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// The default bound on a line and on an event's data: 1 MiB.
    pub const DEFAULT_LIMIT: usize = 1 << 20;

    /// A parser at the start of a stream, with [`Self::DEFAULT_LIMIT`].
    pub fn new() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }

    /// A parser that refuses lines and event data longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            id_buffer: Vec::new(),
            last_id: Vec::new(),
            pending_cr: false,
            first_line: true,
            limit,
        }
    }

    /// The stream's last event ID as of its last blank line, which is what `EventSource`
    /// sends as `Last-Event-ID` when it reconnects (an `id:` of an unfinished event does
    /// not count).
    pub fn last_event_id(&self) -> &[u8] {
        &self.last_id
    }

    /// Starts a new stream (a reconnect): drops any partial line and event, keeps the last
    /// event ID, as `EventSource` does.
    pub fn reset(&mut self) {
        self.line.clear();
        self.data.clear();
        self.event.clear();
        self.id_buffer.clear();
        self.id_buffer.extend_from_slice(&self.last_id);
        self.pending_cr = false;
        self.first_line = true;
    }

    /// Parses `chunk`, calling `on_item` for every item it completes, in order. After an
    /// error the stream should be abandoned (the parser may be [`reset`](Self::reset)).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_item: impl FnMut(SseItem<'_>),
    ) -> Result<(), SseParseError> {
        let mut rest = chunk;
        if rest.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.pending_cr) && rest[0] == b'\n' {
            rest = &rest[1..];
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let next = if rest[end] == b'\n' {
                end + 1
            } else if end + 1 == rest.len() {
                self.pending_cr = true;
                end + 1
            } else if rest[end + 1] == b'\n' {
                end + 2
            } else {
                end + 1
            };
            if self.line.is_empty() {
                self.process_line(&rest[..end], &mut on_item)?;
            } else {
                self.line.extend_from_slice(&rest[..end]);
                if self.line.len() > self.limit {
                    return Err(SseParseError::LineTooLong(self.limit));
                }
                let line = std::mem::take(&mut self.line);
                let done = self.process_line(&line, &mut on_item);
                self.line = line;
                self.line.clear();
                done?;
            }
            rest = &rest[next..];
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > self.limit {
            return Err(SseParseError::LineTooLong(self.limit));
        }
        Ok(())
    }

    fn process_line(
        &mut self,
        line: &[u8],
        on_item: &mut impl FnMut(SseItem<'_>),
    ) -> Result<(), SseParseError> {
        let line = if std::mem::take(&mut self.first_line) {
            line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            self.dispatch(on_item);
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix(b":") {
            on_item(SseItem::Comment(
                comment.strip_prefix(b" ").unwrap_or(comment),
            ));
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                if self.data.len() > self.limit {
                    self.data.clear();
                    return Err(SseParseError::EventTooLong(self.limit));
                }
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.extend_from_slice(value);
            }
            b"retry" => {
                // Only all digits count (`parse_u64` refuses anything else).
                let Some(ms) = parse_u64(value) else {
                    return Ok(());
                };
                on_item(SseItem::Retry(ms));
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, on_item: &mut impl FnMut(SseItem<'_>)) {
        if self.last_id != self.id_buffer {
            self.last_id.clear();
            self.last_id.extend_from_slice(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        self.data.pop(); // the `\n` after the last data line
        on_item(SseItem::Event(SseEvent {
            event: if self.event.is_empty() {
                b"message"
            } else {
                &self.event
            },
            data: &self.data,
            last_event_id: &self.last_id,
        }));
        self.data.clear();
        self.event.clear();
    }
}

/// ASCII digits to a number; `None` when empty, not digits, or too large.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The message published as number `seq`, stamped `unix_nanos` (nanoseconds since the
/// Unix epoch): `keel-bench <seq> <unix_nanos>`.
pub fn payload(seq: u64, unix_nanos: u64) -> String {
    format!("{PAYLOAD_PREFIX}{seq} {unix_nanos}")
}

/// The message number and send stamp of a [`payload`]; `None` for anything else.
pub fn parse_payload(data: &[u8]) -> Option<(u64, u64)> {
    let rest = data.strip_prefix(PAYLOAD_PREFIX.as_bytes())?;
    let space = rest.iter().position(|&b| b == b' ')?;
    Some((parse_u64(&rest[..space])?, parse_u64(&rest[space + 1..])?))
}

/// The machine clock, in nanoseconds since the Unix epoch (0 before it, saturating in 2554).
fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

/// The result of one SSE run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SseReport {
    /// What was run.
    pub run: SseRunInfo,
    /// Why the run ended.
    pub ended_by: SseEnd,
    /// Wall time from the start to the end of the run.
    pub total_secs: f64,
    /// From the start until every stream was connected or failed (or the run ended).
    pub connect_phase_secs: f64,
    /// From the first publish to the end of the last one (0 without publishing).
    pub publish_phase_secs: f64,
    /// Streams asked for.
    pub clients_requested: u64,
    /// Streams that connected (head and first frame) in the connect phase.
    pub clients_connected: u64,
    /// Streams that did not; see `connect_errors`.
    pub clients_failed: u64,
    /// Why streams failed to connect, by kind and message.
    pub connect_errors: Vec<SseErrorCount>,
    /// From a stream's TCP connect to its response head, over connected streams.
    pub time_to_head: LatencySummary,
    /// From a stream's TCP connect to its first frame (`retry:`, comment or event): the
    /// time to first event, over connected streams.
    pub time_to_first_frame: LatencySummary,
    /// From the stamp in a message to its first receipt, over every first delivery.
    pub delivery_latency: LatencySummary,
    /// Messages published successfully.
    pub events_published: u64,
    /// Publish calls that failed; see `publish_errors`. Their messages are not expected.
    pub publish_failures: u64,
    /// Why publishing failed, by kind and message.
    pub publish_errors: Vec<SseErrorCount>,
    /// `events_published × clients_connected`.
    pub expected_deliveries: u64,
    /// Distinct (stream, published message) pairs received: `expected − lost`.
    pub delivered: u64,
    /// Published messages a connected stream never received.
    pub lost: u64,
    /// Connected streams that lost at least one message.
    pub clients_with_loss: u64,
    /// Messages a stream received again (after the first time).
    pub duplicates: u64,
    /// First deliveries with a lower number than one the stream had already received.
    pub out_of_order: u64,
    /// Comments received (keel's `: keepalive` heartbeats), over all streams.
    pub heartbeats: u64,
    /// Events that are not this run's messages (other publishers on the channel, replays
    /// of older runs, `event: lost` notices).
    pub foreign_events: u64,
    /// Streams re-opened after they ended or broke.
    pub reconnects: u64,
    /// Reconnect attempts that failed (each is retried after the retry delay).
    pub reconnect_failures: u64,
    /// Why open streams ended or broke, and why reconnects failed, by kind and message.
    pub stream_errors: Vec<SseErrorCount>,
}

/// The options a run used, for the JSON consumer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SseRunInfo {
    /// The stream URL.
    pub url: String,
    /// [`Publisher::describe`] (no token).
    pub publisher: String,
    /// `clients`.
    pub clients: u64,
    /// `events`.
    pub events: u64,
    /// `interval`.
    pub interval_secs: f64,
    /// `connect_rate_per_sec`.
    pub connect_rate_per_sec: Option<f64>,
    /// `timeout`.
    pub timeout_secs: f64,
    /// `connect_timeout`.
    pub connect_timeout_secs: f64,
    /// `settle`.
    pub settle_secs: f64,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SseEnd {
    /// Every connected stream had every published message.
    AllDelivered,
    /// `settle` passed after the last publish.
    Settled,
    /// No stream connected, so nothing was published.
    NoClients,
    /// The run's `timeout` was reached.
    Timeout,
    /// The caller stopped it ([`run_sse_until`]).
    Interrupted,
}

impl SseEnd {
    fn describe(self) -> &'static str {
        match self {
            Self::AllDelivered => "all delivered",
            Self::Settled => "settle time over",
            Self::NoClients => "no stream connected",
            Self::Timeout => "timeout",
            Self::Interrupted => "interrupted",
        }
    }
}

/// A latency distribution in milliseconds (from an HDR histogram of microseconds, so
/// each value is within 0.1 %). All zero when `count` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p99_9_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencySummary {
    fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p99_9_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Failures of one kind and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SseErrorCount {
    /// The kind.
    pub kind: SseErrorKind,
    /// What happened, for people.
    pub message: String,
    /// How many times.
    pub count: u64,
}

impl SseReport {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, SseError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The report for people, in the layout of `keel bench`'s text (sections, tabs).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("\nSSE summary:\n");
        out.push_str(&format!(
            "  Total:\t{:.4} secs (ended: {})\n",
            self.total_secs,
            self.ended_by.describe()
        ));
        out.push_str(&format!(
            "  Clients:\t{} requested, {} connected, {} failed\n",
            self.clients_requested, self.clients_connected, self.clients_failed
        ));
        out.push_str(&format!(
            "  Events:\t{} published, {} failed to publish, every {:.4} secs\n",
            self.events_published, self.publish_failures, self.run.interval_secs
        ));
        out.push_str(&format!(
            "  Deliveries:\t{} expected, {} delivered, {} lost ({} clients with loss)\n",
            self.expected_deliveries, self.delivered, self.lost, self.clients_with_loss
        ));
        out.push_str(&format!(
            "  Duplicates:\t{} ({} out of order)\n",
            self.duplicates, self.out_of_order
        ));
        out.push_str(&format!(
            "  Reconnects:\t{} ({} failed attempts)\n",
            self.reconnects, self.reconnect_failures
        ));
        out.push_str(&format!("  Heartbeats:\t{}\n", self.heartbeats));
        if self.foreign_events > 0 {
            out.push_str(&format!("  Other events:\t{}\n", self.foreign_events));
        }
        let dist = |out: &mut String, title: &str, what: &str, s: &LatencySummary| {
            out.push_str(&format!("\n{title}, {} {what}):", s.count));
            if s.count == 0 {
                out.push_str("\n  none\n");
                return;
            }
            for (label, v) in [
                ("50%", s.p50_ms),
                ("90%", s.p90_ms),
                ("99%", s.p99_ms),
                ("99.9%", s.p99_9_ms),
            ] {
                out.push_str(&format!("\n  {label} in {v:.3} ms"));
            }
            out.push_str(&format!(
                "\n  min {:.3} ms, mean {:.3} ms, max {:.3} ms\n",
                s.min_ms, s.mean_ms, s.max_ms
            ));
        };
        dist(
            &mut out,
            "Time to first event (connect to first frame",
            "streams",
            &self.time_to_first_frame,
        );
        dist(
            &mut out,
            "Delivery latency (publish to receive",
            "deliveries",
            &self.delivery_latency,
        );
        for (title, errors) in [
            ("Connect errors", &self.connect_errors),
            ("Stream errors", &self.stream_errors),
            ("Publish errors", &self.publish_errors),
        ] {
            if errors.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{title}:\n"));
            for e in errors {
                out.push_str(&format!(
                    "  [{}]\t{}: {}\n",
                    e.count,
                    e.kind.as_str(),
                    e.message
                ));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SsePhase {
    /// Streams are connecting.
    Connecting,
    /// Messages are being published.
    Publishing,
    /// Waiting for the last deliveries.
    Settling,
    /// Over.
    Done,
}

impl SsePhase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Connecting,
            1 => Self::Publishing,
            2 => Self::Settling,
            _ => Self::Done,
        }
    }
}

/// A snapshot of an SSE run in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SseProgress {
    /// Time since the start.
    pub elapsed: Duration,
    /// The current phase.
    pub phase: SsePhase,
    /// Streams asked for.
    pub clients: u64,
    /// Streams connected so far.
    pub connected: u64,
    /// Streams that failed to connect so far.
    pub failed: u64,
    /// Messages to publish.
    pub events: u64,
    /// Publish calls finished (successful or not).
    pub published: u64,
    /// First deliveries so far (over all streams).
    pub delivered: u64,
    /// Reconnects so far.
    pub reconnects: u64,
    /// True for the last call, after every stream has stopped.
    pub finished: bool,
}

/// A callback for [`SseProgress`] snapshots, called at most every `interval` from a
/// task of its own (and once at the end), so it costs the streams nothing.
#[derive(Clone)]
pub struct SseProgressSink {
    callback: Arc<dyn Fn(&SseProgress) + Send + Sync>,
    interval: Duration,
}

impl SseProgressSink {
    /// Calls `callback` at most every `interval` (and once at the end).
    pub fn new(
        interval: Duration,
        callback: impl Fn(&SseProgress) + Send + Sync + 'static,
    ) -> Self {
        Self {
            callback: Arc::new(callback),
            interval,
        }
    }
}

impl fmt::Debug for SseProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseProgressSink")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

/// Connect times of one stream.
#[derive(Debug)]
struct ConnectTimes {
    head: Histogram<u64>,
    first_frame: Histogram<u64>,
}

/// What the coordinator, the publisher and every stream task share.
#[derive(Debug)]
struct Shared {
    stream: Endpoint,
    addrs: Vec<SocketAddr>,
    events: usize,
    connect_timeout: Duration,
    connect_rate_per_sec: Option<f64>,
    start: Instant,
    phase: AtomicU8,
    connected: AtomicU64,
    failed: AtomicU64,
    /// First deliveries of any message number of this run (for progress and early end).
    delivered: AtomicU64,
    reconnects: AtomicU64,
    reconnect_failures: AtomicU64,
    /// Publish calls finished.
    publish_calls: AtomicU64,
    /// Message `k` was published successfully.
    published_ok: Vec<AtomicBool>,
    latency: Vec<Mutex<Histogram<u64>>>,
    connect_times: Mutex<ConnectTimes>,
    connect_errors: Mutex<Tally>,
    stream_errors: Mutex<Tally>,
    publish_errors: Mutex<Tally>,
}

/// Locks `m`; a panic elsewhere while it was held leaves plain counters, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn histogram() -> Result<Histogram<u64>, SseError> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3)
        .map_err(|e| SseError::Internal(format!("latency histogram: {e:?}")))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Shared {
    fn phase(&self) -> SsePhase {
        SsePhase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    fn set_phase(&self, p: SsePhase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    fn resolved(&self) -> u64 {
        self.connected.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire)
    }

    fn snapshot(&self, events: usize, clients: usize, finished: bool) -> SseProgress {
        SseProgress {
            elapsed: self.start.elapsed(),
            phase: if finished {
                SsePhase::Done
            } else {
                self.phase()
            },
            clients: clients as u64,
            connected: self.connected.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            events: events as u64,
            published: self.publish_calls.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            finished,
        }
    }
}

/// Runs the SSE measurement described by `opts` to its end and returns the report.
///
/// Needs a tokio runtime with timers and I/O enabled; a multi-thread runtime lets the
/// streams use every core. For many streams, raise the process's file limit first
/// (`ulimit -n`): each stream is one socket.
pub async fn run_sse(
    opts: SseOptions,
    progress: Option<SseProgressSink>,
) -> Result<SseReport, SseError> {
    run_sse_until(opts, progress, std::future::pending()).await
}

/// Like [`run_sse`], but when `stop` completes (Ctrl-C) publishing stops, every stream is
/// closed, and the report covers what was measured (`ended_by: interrupted`).
pub async fn run_sse_until(
    opts: SseOptions,
    progress: Option<SseProgressSink>,
    stop: impl Future<Output = ()>,
) -> Result<SseReport, SseError> {
    let plan = opts.validate()?;
    let addrs = resolve(&plan.stream.target).await?;
    let mut publisher = match &plan.publish {
        PublishPlan::Url {
            endpoint,
            auth,
            channel,
        } => Publish::Url(Box::new(UrlPublisher {
            addrs: resolve(&endpoint.target).await?,
            endpoint: (**endpoint).clone(),
            auth: auth.clone(),
            channel: channel.clone(),
            sender: None,
        })),
        PublishPlan::Command(argv) => Publish::Command(argv.clone()),
    };

    let mut latency = Vec::with_capacity(SHARDS);
    for _ in 0..SHARDS {
        latency.push(Mutex::new(histogram()?));
    }
    let shared = Arc::new(Shared {
        stream: plan.stream.clone(),
        addrs,
        events: plan.events,
        connect_timeout: plan.connect_timeout,
        connect_rate_per_sec: plan.connect_rate_per_sec,
        start: Instant::now(),
        phase: AtomicU8::new(SsePhase::Connecting as u8),
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        reconnect_failures: AtomicU64::new(0),
        publish_calls: AtomicU64::new(0),
        published_ok: (0..plan.events).map(|_| AtomicBool::new(false)).collect(),
        latency,
        connect_times: Mutex::new(ConnectTimes {
            head: histogram()?,
            first_frame: histogram()?,
        }),
        connect_errors: Mutex::default(),
        stream_errors: Mutex::default(),
        publish_errors: Mutex::default(),
    });
    let deadline = shared.start + plan.timeout;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut streams = JoinSet::new();
    for index in 0..plan.clients {
        streams.spawn(stream_task(shared.clone(), index, stop_rx.clone()));
    }
    let ticker = progress.clone().map(|sink| {
        let shared = shared.clone();
        let mut stopped = stop_rx.clone();
        let (events, clients) = (plan.events, plan.clients);
        tokio::spawn(async move {
            let period = sink.interval.max(Duration::from_millis(1));
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => (sink.callback)(&shared.snapshot(events, clients, false)),
                    () = until_stopped(&mut stopped) => return,
                }
            }
        })
    });

    let mut times = PhaseTimes::default();
    let ended_by = {
        let phases = pin!(phases(&shared, &plan, &mut publisher, deadline, &mut times));
        let stop = pin!(stop);
        tokio::select! {
            end = phases => end,
            () = stop => SseEnd::Interrupted,
        }
    };
    drop(publisher);

    // Every stream stops at once; what they saw is in their bitmaps.
    shared.set_phase(SsePhase::Done);
    stop_tx.send_replace(true);
    let published_ok: Vec<bool> = shared
        .published_ok
        .iter()
        .map(|b| b.load(Ordering::Acquire))
        .collect();
    let events_published = published_ok.iter().filter(|&&ok| ok).count() as u64;
    let mut counts = StreamCounts::default();
    let (mut delivered, mut lost, mut clients_with_loss) = (0u64, 0u64, 0u64);
    while let Some(joined) = streams.join_next().await {
        let Some(outcome) = joined? else { continue };
        let seen_ok = outcome.seen.count_where(&published_ok);
        delivered += seen_ok;
        let missed = events_published - seen_ok;
        lost += missed;
        clients_with_loss += u64::from(missed > 0);
        counts.add(&outcome.counts);
    }
    let total = shared.start.elapsed();
    if let Some(task) = ticker {
        let _ = task.await;
    }
    if let Some(sink) = &progress {
        (sink.callback)(&shared.snapshot(plan.events, plan.clients, true));
    }

    let mut merged = histogram()?;
    for shard in &shared.latency {
        merged
            .add(&*lock(shard))
            .map_err(|e| SseError::Internal(format!("merging latency histograms: {e:?}")))?;
    }
    let connect_times = lock(&shared.connect_times);
    let connected = shared.connected.load(Ordering::Acquire);
    let publish_calls = shared.publish_calls.load(Ordering::Acquire);
    let take = |m: &Mutex<Tally>| std::mem::take(&mut *lock(m)).into_counts();
    Ok(SseReport {
        run: SseRunInfo {
            url: plan.stream.url.clone(),
            publisher: plan.describe_publisher.clone(),
            clients: plan.clients as u64,
            events: plan.events as u64,
            interval_secs: plan.interval.as_secs_f64(),
            connect_rate_per_sec: plan.connect_rate_per_sec,
            timeout_secs: plan.timeout.as_secs_f64(),
            connect_timeout_secs: plan.connect_timeout.as_secs_f64(),
            settle_secs: plan.settle.as_secs_f64(),
        },
        ended_by,
        total_secs: total.as_secs_f64(),
        connect_phase_secs: times.connect.unwrap_or(total).as_secs_f64(),
        publish_phase_secs: times.publish.as_secs_f64(),
        clients_requested: plan.clients as u64,
        clients_connected: connected,
        clients_failed: plan.clients as u64 - connected,
        connect_errors: take(&shared.connect_errors),
        time_to_head: LatencySummary::from_histogram(&connect_times.head),
        time_to_first_frame: LatencySummary::from_histogram(&connect_times.first_frame),
        delivery_latency: LatencySummary::from_histogram(&merged),
        events_published,
        publish_failures: publish_calls.saturating_sub(events_published),
        publish_errors: take(&shared.publish_errors),
        expected_deliveries: events_published * connected,
        delivered,
        lost,
        clients_with_loss,
        duplicates: counts.duplicates,
        out_of_order: counts.out_of_order,
        heartbeats: counts.heartbeats,
        foreign_events: counts.foreign,
        reconnects: shared.reconnects.load(Ordering::Acquire),
        reconnect_failures: shared.reconnect_failures.load(Ordering::Acquire),
        stream_errors: take(&shared.stream_errors),
    })
}

#[derive(Debug, Default)]
struct PhaseTimes {
    connect: Option<Duration>,
    publish: Duration,
}

/// Connect, publish, settle; returns why it ended. Dropped when the caller stops the run.
async fn phases(
    shared: &Shared,
    plan: &SsePlan,
    publisher: &mut Publish,
    deadline: Instant,
    times: &mut PhaseTimes,
) -> SseEnd {
    let clients = plan.clients as u64;
    while shared.resolved() < clients {
        if Instant::now() >= deadline {
            return SseEnd::Timeout;
        }
        tokio::time::sleep(POLL).await;
    }
    times.connect = Some(shared.start.elapsed());
    let connected = shared.connected.load(Ordering::Acquire);
    if connected == 0 {
        return SseEnd::NoClients;
    }

    shared.set_phase(SsePhase::Publishing);
    let first = Instant::now();
    for seq in 0..plan.events {
        let due = first + plan.interval * u32::try_from(seq).unwrap_or(u32::MAX);
        if due >= deadline {
            tokio::time::sleep_until(deadline.into()).await;
            times.publish = first.elapsed();
            return SseEnd::Timeout;
        }
        tokio::time::sleep_until(due.into()).await;
        let message = payload(seq as u64, unix_nanos());
        let result =
            match tokio::time::timeout_at(deadline.into(), publisher.publish(&message)).await {
                Ok(r) => r,
                Err(_) => Err(Failure::new(
                    SseErrorKind::Timeout,
                    "the publish did not finish before the run's timeout",
                )),
            };
        match result {
            Ok(()) => {
                if let Some(flag) = shared.published_ok.get(seq) {
                    flag.store(true, Ordering::Release);
                }
            }
            Err(f) => lock(&shared.publish_errors).add(f),
        }
        shared.publish_calls.fetch_add(1, Ordering::Release);
        if Instant::now() >= deadline {
            times.publish = first.elapsed();
            return SseEnd::Timeout;
        }
    }
    times.publish = first.elapsed();

    // Every message number of this run, on every connected stream: only then can the
    // run end before `settle` (a failed publish that was never delivered keeps it waiting).
    shared.set_phase(SsePhase::Settling);
    let all = connected * plan.events as u64;
    let settled = Instant::now() + plan.settle;
    loop {
        if shared.delivered.load(Ordering::Acquire) >= all {
            return SseEnd::AllDelivered;
        }
        let now = Instant::now();
        if now >= deadline {
            return SseEnd::Timeout;
        }
        if now >= settled {
            return SseEnd::Settled;
        }
        tokio::time::sleep(POLL.min(settled - now)).await;
    }
}

async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, SseError> {
    if let Some(ip) = target.ip {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let err = |source| SseError::Resolve {
        host: target.host.clone(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(err)?
        .collect();
    if addrs.is_empty() {
        return Err(err(std::io::Error::other("no addresses")));
    }
    Ok(addrs)
}

/// Completes once the run is over (or the coordinator is gone).
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn dial(addrs: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = Failure::new(SseErrorKind::Other, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = RequestError::connect(&addr.to_string(), &e).into(),
        }
    }
    Err(last)
}

// ---------------------------------------------------------------------------------------
// One stream
// ---------------------------------------------------------------------------------------

type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>>>;

/// An open stream: the response body and the connection under it.
struct OpenStream {
    driver: Option<Driver>,
    body: hyper::body::Incoming,
    /// Kept so that hyper does not close the connection when the request side goes.
    _sender: http1::SendRequest<Empty<Bytes>>,
}

/// One message number per bit.
#[derive(Debug)]
struct Seen {
    words: Vec<u64>,
}

impl Seen {
    fn new(events: usize) -> Self {
        Self {
            words: vec![0; events.div_ceil(64)],
        }
    }

    /// Marks `seq`; true when it was not marked yet.
    fn insert(&mut self, seq: usize) -> bool {
        let Some(word) = self.words.get_mut(seq / 64) else {
            return false;
        };
        let bit = 1u64 << (seq % 64);
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    /// How many of the marked numbers have `wanted[k]` set.
    fn count_where(&self, wanted: &[bool]) -> u64 {
        wanted
            .iter()
            .enumerate()
            .filter(|&(k, &w)| w && self.contains(k))
            .count() as u64
    }

    fn contains(&self, seq: usize) -> bool {
        self.words
            .get(seq / 64)
            .is_some_and(|&word| word & (1u64 << (seq % 64)) != 0)
    }
}

/// Counters of one stream, summed over all of them in the report.
#[derive(Debug, Default, Clone, Copy)]
struct StreamCounts {
    duplicates: u64,
    out_of_order: u64,
    heartbeats: u64,
    foreign: u64,
}

impl StreamCounts {
    fn add(&mut self, o: &Self) {
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.heartbeats += o.heartbeats;
        self.foreign += o.foreign;
    }
}

/// What a connected stream hands back at the end.
#[derive(Debug)]
struct StreamOutcome {
    seen: Seen,
    counts: StreamCounts,
}

/// The state of one stream: small, and the same across reconnects.
#[derive(Debug)]
struct StreamState {
    parser: SseParser,
    seen: Seen,
    /// The highest message number received so far, plus one (0: none).
    high: usize,
    retry: Duration,
    counts: StreamCounts,
}

impl StreamState {
    /// Parses one chunk of the body, counting everything in it; returns whether it held
    /// at least one item (a frame).
    fn on_chunk(&mut self, shared: &Shared, index: usize, chunk: &[u8]) -> Result<bool, Failure> {
        let Self {
            parser,
            seen,
            high,
            retry,
            counts,
        } = self;
        let mut any = false;
        // Everything in one chunk arrived together: one clock read per chunk.
        let mut received_at: Option<u64> = None;
        parser
            .feed(chunk, |item| {
                any = true;
                match item {
                    SseItem::Comment(_) => counts.heartbeats += 1,
                    SseItem::Retry(ms) => *retry = Duration::from_millis(ms),
                    SseItem::Event(ev) => {
                        let ours = parse_payload(ev.data)
                            .and_then(|(seq, sent)| Some((usize::try_from(seq).ok()?, sent)))
                            .filter(|&(seq, _)| seq < shared.events);
                        let Some((seq, sent)) = ours else {
                            counts.foreign += 1;
                            return;
                        };
                        if !seen.insert(seq) {
                            counts.duplicates += 1;
                            return;
                        }
                        if seq + 1 < *high {
                            counts.out_of_order += 1;
                        }
                        *high = (*high).max(seq + 1);
                        let now = *received_at.get_or_insert_with(unix_nanos);
                        let us = now.saturating_sub(sent) / 1000;
                        lock(&shared.latency[index % SHARDS]).saturating_record(us);
                        shared.delivered.fetch_add(1, Ordering::Release);
                    }
                }
            })
            .map_err(|e| Failure::new(SseErrorKind::Protocol, e.to_string()))?;
        Ok(any)
    }
}

/// How one stream runs: wait for its turn, connect (once), then read until the run
/// stops, reconnecting whenever the stream ends. `None` when it never connected.
async fn stream_task(
    shared: Arc<Shared>,
    index: usize,
    mut stop: watch::Receiver<bool>,
) -> Option<StreamOutcome> {
    if let Some(rate) = shared.connect_rate_per_sec {
        let begin = shared.start + Duration::from_secs_f64(index as f64 / rate);
        tokio::select! {
            () = tokio::time::sleep_until(begin.into()) => {}
            () = until_stopped(&mut stop) => {
                connect_failed(&shared, Failure::new(
                    SseErrorKind::Timeout,
                    "the run ended before this stream's turn to connect",
                ));
                return None;
            }
        }
    }
    let mut state = StreamState {
        parser: SseParser::new(),
        seen: Seen::new(shared.events),
        high: 0,
        retry: DEFAULT_RETRY,
        counts: StreamCounts::default(),
    };
    let first = tokio::select! {
        r = open(&shared, index, &mut state, false) => r,
        () = until_stopped(&mut stop) => Err(Failure::new(
            SseErrorKind::Timeout,
            "the run ended before this stream was connected",
        )),
    };
    let mut stream = match first {
        Ok((stream, head, first_frame)) => {
            {
                let mut t = lock(&shared.connect_times);
                t.head.saturating_record(micros(head));
                t.first_frame.saturating_record(micros(first_frame));
            }
            shared.connected.fetch_add(1, Ordering::Release);
            stream
        }
        Err(f) => {
            connect_failed(&shared, f);
            return None;
        }
    };

    'run: loop {
        let ended = tokio::select! {
            f = read(&shared, index, &mut stream, &mut state) => f,
            () = until_stopped(&mut stop) => break 'run,
        };
        drop(stream);
        lock(&shared.stream_errors).add(ended);
        loop {
            tokio::select! {
                () = tokio::time::sleep(state.retry) => {}
                () = until_stopped(&mut stop) => break 'run,
            }
            let again = tokio::select! {
                r = open(&shared, index, &mut state, true) => r,
                () = until_stopped(&mut stop) => break 'run,
            };
            match again {
                Ok((s, _, _)) => {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    stream = s;
                    continue 'run;
                }
                Err(f) => {
                    shared.reconnect_failures.fetch_add(1, Ordering::Relaxed);
                    lock(&shared.stream_errors)
                        .add(Failure::new(f.kind, format!("reconnect: {}", f.message)));
                }
            }
        }
    }
    Some(StreamOutcome {
        seen: state.seen,
        counts: state.counts,
    })
}

fn connect_failed(shared: &Shared, f: Failure) {
    lock(&shared.connect_errors).add(f);
    shared.failed.fetch_add(1, Ordering::Release);
}

/// Opens the stream and reads until its first frame, within `connect_timeout`; returns
/// the times to the response head and to that frame.
async fn open(
    shared: &Shared,
    index: usize,
    state: &mut StreamState,
    reconnect: bool,
) -> Result<(OpenStream, Duration, Duration), Failure> {
    let started = Instant::now();
    let limit = shared.connect_timeout;
    let attempt = async {
        let last_id = state.parser.last_event_id();
        let last_id = (reconnect && !last_id.is_empty()).then_some(last_id);
        let mut stream = open_stream(shared, last_id).await?;
        let head = started.elapsed();
        state.parser.reset();
        loop {
            match drive(&mut stream.driver, stream.body.frame()).await {
                None => {
                    return Err(Failure::new(
                        SseErrorKind::Ended,
                        "the server ended the stream before its first frame",
                    ))
                }
                Some(Err(e)) => return Err(Failure::hyper(&e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if state.on_chunk(shared, index, &data)? {
                            return Ok((stream, head, started.elapsed()));
                        }
                    }
                }
            }
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Failure::new(
            SseErrorKind::Timeout,
            format!("no first frame within the connect timeout ({limit:?})"),
        )),
    }
}

/// Connects and sends the `GET`; returns once a 2xx `text/event-stream` head arrived.
async fn open_stream(shared: &Shared, last_id: Option<&[u8]>) -> Result<OpenStream, Failure> {
    let tcp = dial(&shared.addrs).await?;
    let (mut sender, conn) = http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUF_BYTES))
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| Failure::hyper(&e))?;
    let mut driver: Option<Driver> = Some(Box::pin(conn));
    drive(&mut driver, sender.ready())
        .await
        .map_err(|e| Failure::hyper(&e))?;

    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = shared.stream.path.clone();
    let headers = req.headers_mut();
    headers.insert(HOST, shared.stream.host.clone());
    headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
    // An id that cannot be a header value (control bytes) is left out, as it cannot be sent.
    if let Some(v) = last_id.and_then(|id| HeaderValue::from_bytes(id).ok()) {
        headers.insert("last-event-id", v);
    }
    let resp = drive(&mut driver, sender.send_request(req))
        .await
        .map_err(|e| Failure::hyper(&e))?;
    let status = resp.status();
    let content_type = resp.headers().get(CONTENT_TYPE).cloned();
    let mut body = resp.into_body();
    if !status.is_success() {
        let mut quoted = Vec::new();
        while quoted.len() < QUOTE_BYTES {
            match drive(&mut driver, body.frame()).await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        quoted.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
        return Err(Failure::new(
            SseErrorKind::Status,
            format!("HTTP {status}{}", quote(&quoted)),
        ));
    }
    let is_sse = content_type.as_ref().is_some_and(|v| {
        v.as_bytes()
            .get(..17)
            .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"))
    });
    if !is_sse {
        return Err(Failure::new(
            SseErrorKind::NotEventStream,
            format!(
                "HTTP {status} with Content-Type {:?}, not text/event-stream",
                content_type
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(OpenStream {
        driver,
        body,
        _sender: sender,
    })
}

/// `: <first line of the text>` (at most [`QUOTE_BYTES`]), or nothing for an empty body.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTE_BYTES)]);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(": {one_line}")
}

/// Reads an open stream until it ends or breaks; returns why.
async fn read(
    shared: &Shared,
    index: usize,
    stream: &mut OpenStream,
    state: &mut StreamState,
) -> Failure {
    loop {
        match drive(&mut stream.driver, stream.body.frame()).await {
            None => return Failure::new(SseErrorKind::Ended, "the server ended the stream"),
            Some(Err(e)) => return Failure::hyper(&e),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if let Err(f) = state.on_chunk(shared, index, &data) {
                        return f;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------

/// The publisher of a run.
#[derive(Debug)]
enum Publish {
    Url(Box<UrlPublisher>),
    Command(Vec<String>),
}

impl Publish {
    async fn publish(&mut self, message: &str) -> Result<(), Failure> {
        match self {
            Self::Url(p) => p.publish(message).await,
            Self::Command(argv) => publish_command(argv, message).await,
        }
    }
}

/// `POST` to keel's `/api/publish` (or anything that takes the same JSON) over one
/// keep-alive connection, opened again when the server closed it.
#[derive(Debug)]
struct UrlPublisher {
    endpoint: Endpoint,
    addrs: Vec<SocketAddr>,
    auth: Option<HeaderValue>,
    channel: String,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl UrlPublisher {
    async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>, Failure> {
        let tcp = dial(&self.addrs).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| Failure::hyper(&e))?;
        // One connection for the whole run: a task of its own is simplest. It ends when
        // the sender is dropped or the server closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.endpoint.path.clone();
        let headers = req.headers_mut();
        headers.insert(HOST, self.endpoint.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        req
    }

    async fn publish(&mut self, message: &str) -> Result<(), Failure> {
        let body = serde_json::to_vec(&serde_json::json!({
            "channel": self.channel,
            "message": message,
        }))
        .map_err(|e| Failure::new(SseErrorKind::Other, e.to_string()))?;
        let body = Bytes::from(body);
        let mut retried = false;
        loop {
            let (mut sender, reused) = match self.sender.take() {
                Some(s) if !s.is_closed() => (s, true),
                _ => (self.connect().await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused && !retried {
                    retried = true;
                    continue;
                }
                return Err(Failure::hyper(&e));
            }
            match sender.try_send_request(self.request(body.clone())).await {
                Ok(resp) => {
                    let status = resp.status();
                    let close = resp
                        .headers()
                        .get_all(CONNECTION)
                        .iter()
                        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                    let mut body = resp.into_body();
                    let mut quoted = Vec::new();
                    while let Some(frame) = body.frame().await {
                        let frame = frame.map_err(|e| Failure::hyper(&e))?;
                        if let Ok(data) = frame.into_data() {
                            if quoted.len() < QUOTE_BYTES {
                                quoted.extend_from_slice(&data);
                            }
                        }
                    }
                    if !close {
                        self.sender = Some(sender);
                    }
                    if status.is_success() {
                        return Ok(());
                    }
                    return Err(Failure::new(
                        SseErrorKind::Status,
                        format!(
                            "POST {}: HTTP {status}{}",
                            self.endpoint.url,
                            quote(&quoted)
                        ),
                    ));
                }
                Err(mut e) => {
                    // Sent again only when hyper hands the request back unsent: a POST
                    // that may have reached the server is never repeated.
                    let unsent = e.take_message().is_some();
                    if reused && !retried && unsent {
                        retried = true;
                        continue;
                    }
                    return Err(Failure::hyper(e.error()));
                }
            }
        }
    }
}

/// Kills the child when the publish is abandoned (run timeout, Ctrl-C).
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.try_wait();
        }
    }
}

/// Runs `argv` with `message` appended and waits for it without blocking the runtime
/// (tokio's `process` feature is not needed: the exit is polled, from 1 ms up to every
/// 16 ms, which delays only the next publish, never the measured latency).
async fn publish_command(argv: &[String], message: &str) -> Result<(), Failure> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Failure::new(SseErrorKind::Other, "empty publish command"));
    };
    let mut child = Command::new(program)
        .args(args)
        .arg(message)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(SseErrorKind::Other, format!("starting {program}: {e}")))?;
    let stderr = child.stderr.take();
    let mut guard = KillOnDrop(Some(child));
    // Read (the start of) stderr on a blocking thread so a chatty command cannot fill the
    // pipe and hang; the rest is discarded by closing the pipe.
    let reader = stderr.map(|pipe| {
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            let _ = pipe.take(QUOTE_BYTES as u64).read_to_end(&mut buf);
            buf
        })
    });
    let mut pause = Duration::from_millis(1);
    let status = loop {
        let Some(child) = guard.0.as_mut() else {
            return Err(Failure::new(SseErrorKind::Other, "publish command lost"));
        };
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                return Err(Failure::new(
                    SseErrorKind::Other,
                    format!("waiting for {program}: {e}"),
                ))
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(16));
    };
    guard.0 = None;
    if status.success() {
        return Ok(());
    }
    let stderr = match reader {
        Some(task) => tokio::time::timeout(Duration::from_millis(100), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Err(Failure::new(
        SseErrorKind::CommandFailed,
        format!("{program} exited with {status}{}", quote(&stderr)),
    ))
}
