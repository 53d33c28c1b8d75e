//! The access log: one line per request in nginx's `combined` format (or JSON), written
//! when the response body has been sent — so the byte count and the request time are
//! the real ones, as nginx logs them — to stdout or a file that is reopened on demand
//! (SIGUSR1, for logrotate).
//!
//! Lines go through a bounded channel to one writer thread that flushes whenever the
//! channel runs dry: requests never wait on the disk, and a burst costs one `write`
//! per batch instead of one per request. Under load the writer wakes on its own every
//! 10 ms rather than being woken by each line. If the disk cannot keep up and the channel
//! fills, lines are dropped and counted (nginx would block its worker instead).
//!
//! Format, `combined` plus nginx's timing variables:
//! ```text
//! $remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time uht=$upstream_header_time ua="$upstream_addr"
//! ```

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri, Version};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Lines waiting for the writer; beyond this they are dropped and counted.
const QUEUE: usize = 16 * 1024;
/// While lines keep coming, the writer takes them this often (a line waits at most about
/// this long). The queue holds 16 K lines, over 1.6 M requests/s at this pause.
const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to and reopened on [`AccessLog::reopen`].
    File(PathBuf),
}

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// nginx's `combined` plus request and upstream times.
    Combined,
    /// One JSON object per line with the same fields.
    Json,
}

enum Message {
    Line(String),
    Reopen,
    /// Every line sent before it is written; then the sender is told.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A handle to the access log; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Message>,
    format: AccessLogFormat,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Line(_) => "Line",
            Message::Reopen => "Reopen",
            Message::Flush(_) => "Flush",
        })
    }
}

impl AccessLog {
    /// Opens the target and starts the writer task (call inside a tokio runtime).
    pub fn start(target: AccessLogTarget, format: AccessLogFormat) -> std::io::Result<AccessLog> {
        let mut sink = Sink::open(&target)?;
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        // A plain thread: file writes block, and this keeps them off the async workers.
        std::thread::Builder::new()
            .name("keel-access-log".into())
            .spawn(move || {
                // It waits for a line only when its last pass found none. While lines keep
                // coming it sleeps between passes instead, so the workers' sends find no
                // waiter to wake: waking it every few requests (a futex call and a context
                // switch per wake on the cores the requests need) cost more than the lines.
                while let Some(message) = rx.blocking_recv() {
                    sink.handle(message, &target);
                    loop {
                        let mut taken = 0usize;
                        while let Ok(message) = rx.try_recv() {
                            sink.handle(message, &target);
                            taken += 1;
                        }
                        sink.flush();
                        if taken == 0 {
                            break;
                        }
                        std::thread::sleep(BATCH_PAUSE);
                    }
                }
                sink.flush();
            })?;
        Ok(AccessLog {
            tx,
            format,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Closes and reopens the file (after logrotate moved it away).
    pub fn reopen(&self) {
        // A full queue delays the reopen by at most one batch; never block the caller.
        let _ = self.tx.try_send(Message::Reopen);
    }

    /// Waits (up to `timeout`) until every line sent so far is written: a stopping edge
    /// calls it so the last requests' lines are not lost with the process (under load
    /// the writer takes lines only every few milliseconds).
    pub async fn flush(&self, timeout: Duration) {
        let (done, written) = tokio::sync::oneshot::channel();
        let flushed = async {
            if self.tx.send(Message::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        };
        if tokio::time::timeout(timeout, flushed).await.is_err() {
            tracing::warn!(?timeout, "the access log was not flushed in time");
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes `entry`'s line, with `bytes` of body sent.
    pub(crate) fn log(&self, entry: Entry, bytes: u64) {
        self.write(entry.render(self.format, bytes));
    }

    fn write(&self, line: String) {
        if self.tx.try_send(Message::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Sink {
    out: Box<dyn Write + Send>,
}

impl Sink {
    fn open(target: &AccessLogTarget) -> std::io::Result<Sink> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Stdout => Box::new(std::io::BufWriter::new(std::io::stdout())),
            AccessLogTarget::File(path) => Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        };
        Ok(Sink { out })
    }

    fn handle(&mut self, message: Message, target: &AccessLogTarget) {
        match message {
            Message::Line(line) => {
                if let Err(error) = self.out.write_all(line.as_bytes()) {
                    tracing::error!(%error, "could not write the access log");
                }
            }
            Message::Flush(done) => {
                self.flush();
                let _ = done.send(());
            }
            Message::Reopen => {
                self.flush();
                match Sink::open(target) {
                    Ok(sink) => {
                        *self = sink;
                        tracing::info!(?target, "access log reopened");
                    }
                    Err(error) => {
                        tracing::error!(%error, ?target, "could not reopen the access log")
                    }
                }
            }
        }
    }

    fn flush(&mut self) {
        if let Err(error) = self.out.flush() {
            tracing::error!(%error, "could not flush the access log");
        }
    }
}

/// What is known about a request when its response starts.
#[derive(Debug)]
pub(crate) struct Entry {
    client: IpAddr,
    request_line: String,
    referer: Option<String>,
    user_agent: Option<String>,
    started: Instant,
    at: SystemTime,
    status: u16,
    upstream: Option<(String, Duration)>,
}

impl Entry {
    pub(crate) fn new(
        client: IpAddr,
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        started: Instant,
    ) -> Entry {
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let fields = headers
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
        Entry::from_head(client, method.as_str(), target, version, fields, started)
    }

    /// [`Entry::new`] for a request head as read from the wire (the fast path, which
    /// builds no map): `referer` and `user-agent` are the first field of each name, as
    /// `HeaderMap::get` gives them.
    pub(crate) fn from_head<'a>(
        client: IpAddr,
        method: &str,
        target: &str,
        version: Version,
        fields: impl Iterator<Item = crate::headers::Field<'a>>,
        started: Instant,
    ) -> Entry {
        let mut referer = None;
        let mut user_agent = None;
        for (name, value) in fields {
            let slot = if name.eq_ignore_ascii_case(b"referer") {
                &mut referer
            } else if name.eq_ignore_ascii_case(b"user-agent") {
                &mut user_agent
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
        Entry {
            client,
            request_line: format!("{method} {target} {version:?}"),
            referer,
            user_agent,
            started,
            at: SystemTime::now(),
            status: 0,
            upstream: None,
        }
    }

    pub(crate) fn status(&mut self, status: u16) {
        self.status = status;
    }

    pub(crate) fn upstream(&mut self, name: String, header_time: Duration) {
        self.upstream = Some((name, header_time));
    }

    fn render(&self, format: AccessLogFormat, bytes: u64) -> String {
        let elapsed = self.started.elapsed();
        match format {
            AccessLogFormat::Combined => {
                // Written piece by piece into one string: this runs on the worker for
                // every request, and a `format!` of escaped pieces allocated for each.
                let mut line = String::with_capacity(
                    160 + self.request_line.len()
                        + self.referer.as_ref().map_or(0, String::len)
                        + self.user_agent.as_ref().map_or(0, String::len),
                );
                // Infallible: writing to a String.
                let _ = write!(line, "{} - - [", self.client);
                with_time_local(self.at, |time| line.push_str(time));
                line.push_str("] \"");
                escape_into(&mut line, &self.request_line);
                let _ = write!(line, "\" {} {} \"", self.status, bytes);
                escape_into(&mut line, self.referer.as_deref().unwrap_or("-"));
                line.push_str("\" \"");
                escape_into(&mut line, self.user_agent.as_deref().unwrap_or("-"));
                line.push_str("\" rt=");
                push_seconds(&mut line, elapsed);
                line.push_str(" uht=");
                match &self.upstream {
                    Some((_, header_time)) => push_seconds(&mut line, *header_time),
                    None => line.push('-'),
                }
                line.push_str(" ua=\"");
                escape_into(
                    &mut line,
                    self.upstream.as_ref().map_or("-", |u| u.0.as_str()),
                );
                line.push_str("\"\n");
                line
            }
            AccessLogFormat::Json => {
                let mut line = serde_json::json!({
                    "time": httpdate::fmt_http_date(self.at),
                    "remote_addr": self.client.to_string(),
                    "request": self.request_line,
                    "status": self.status,
                    "body_bytes_sent": bytes,
                    "http_referer": self.referer,
                    "http_user_agent": self.user_agent,
                    "request_time": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
                    "upstream_addr": self.upstream.as_ref().map(|u| u.0.clone()),
                    "upstream_header_time": self.upstream.as_ref().map(|u| u.1.as_secs_f64()),
                })
                .to_string();
                line.push('\n');
                line
            }
        }
    }
}

/// nginx's `$time_local` (`25/Nov/2026:10:45:06 +0000`), in UTC, rearranged from the
/// IMF-fixdate that `httpdate` writes (`Wed, 25 Nov 2026 10:45:06 GMT`).
fn time_local(at: SystemTime) -> String {
    let text = httpdate::fmt_http_date(at);
    let parts: Vec<&str> = text.split(' ').collect();
    match parts.as_slice() {
        [_, day, month, year, time, _] => format!("{day}/{month}/{year}:{time} +0000"),
        _ => text,
    }
}

/// nginx's `$request_time` and `$upstream_header_time`: seconds with milliseconds,
/// the milliseconds truncated as nginx does.
fn push_seconds(out: &mut String, elapsed: Duration) {
    let ms = elapsed.as_millis();
    // Infallible: writing to a String.
    let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
}

thread_local! {
    /// The last second's `$time_local` on this thread, and that second.
    static TIME_LOCAL: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// [`time_local`] of `at`, made once per second per thread.
fn with_time_local(at: SystemTime, f: impl FnOnce(&str)) {
    let second = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    TIME_LOCAL.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, time_local(at));
        }
        f(&cached.1);
    });
}

/// nginx escapes `"`, `\` and bytes outside printable ASCII as `\xHH` in log variables.
fn escape_into(out: &mut String, text: &str) {
    let escaped = |byte: u8| matches!(byte, b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff);
    if !text.bytes().any(escaped) {
        out.push_str(text);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if escaped(byte) {
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            out.push(char::from(byte));
        }
    }
}

/// Wraps a response body so the entry is logged with the bytes actually sent, when the
/// body ends or is dropped (a client that hangs up mid-stream is logged too).
pub(crate) fn wrap(body: Body, entry: Entry, log: AccessLog) -> Body {
    Body::new(logged(body, Some((entry, log))))
}

/// [`wrap`] for any body, and for none to log (`pending` empty: the body passes as is).
pub(crate) fn logged<B>(body: B, pending: Option<(Entry, AccessLog)>) -> LoggedBody<B> {
    LoggedBody {
        inner: body,
        bytes: 0,
        pending: pending.map(Box::new),
    }
}

/// A body that logs its entry when it ends or is dropped ([`wrap`], [`logged`]).
pub(crate) struct LoggedBody<B> {
    inner: B,
    bytes: u64,
    /// Boxed: a body without an entry stays small.
    pending: Option<Box<(Entry, AccessLog)>>,
}

impl<B> LoggedBody<B> {
    fn emit(&mut self) {
        if let Some(pending) = self.pending.take() {
            let (entry, log) = *pending;
            log.log(entry, self.bytes);
        }
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        self.emit();
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for LoggedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.emit(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_written_in_order_whether_the_writer_waited_or_slept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(
            AccessLogTarget::File(path.clone()),
            AccessLogFormat::Combined,
        )
        .unwrap();
        // Bursts that last several of the writer's pauses, apart by more than one: it is
        // woken for the first line of each, sleeps between passes within it (lines
        // arriving meanwhile), and waits again after it.
        let mut expected = String::new();
        for burst in 0..5 {
            for group in 0..20 {
                for i in 0..100 {
                    let line = format!("burst {burst} group {group} line {i}\n");
                    expected.push_str(&line);
                    log.write(line);
                }
                std::thread::sleep(BATCH_PAUSE / 4);
            }
            std::thread::sleep(BATCH_PAUSE * 3);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut written = String::new();
        while Instant::now() < deadline {
            written = std::fs::read_to_string(&path).unwrap();
            if written.len() >= expected.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(log.dropped(), 0);
        assert!(
            written == expected,
            "{} of {} bytes written, or out of order",
            written.len(),
            expected.len()
        );
    }

    #[test]
    fn escapes_and_times_are_nginx_shaped() {
        let mut out = String::new();
        escape_into(&mut out, "a\"b\\c\u{e9}\n~");
        assert_eq!(out, "a\\x22b\\x5Cc\\xC3\\xA9\\x0A~");
        let mut out = String::new();
        push_seconds(&mut out, Duration::from_micros(1_999_999));
        out.push(' ');
        push_seconds(&mut out, Duration::from_micros(12_500));
        assert_eq!(out, "1.999 0.012");
        // The per-second cache follows the clock.
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        for (at, expected) in [
            (at, "18/Nov/2026:11:06:40 +0000"),
            (
                at + Duration::from_millis(999),
                "18/Nov/2026:11:06:40 +0000",
            ),
            (at + Duration::from_secs(1), "18/Nov/2026:11:06:41 +0000"),
        ] {
            let mut got = String::new();
            with_time_local(at, |time| got.push_str(time));
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn time_local_is_nginx_shaped() {
        // `date -u -d @1795000000` prints Wed Nov 18 11:06:40 UTC 2026.
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(time_local(at), "18/Nov/2026:11:06:40 +0000");
    }

    #[test]
    fn combined_line_escapes_quotes_and_control_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "curl/8 \"quoted\"".parse().unwrap());
        let mut entry = Entry::new(
            "192.0.2.1".parse().unwrap(),
            &Method::GET,
            &"/a?b=1".parse().unwrap(),
            Version::HTTP_11,
            &headers,
            Instant::now(),
        );
        entry.status(200);
        entry.upstream("127.0.0.1:8000".into(), Duration::from_millis(12));
        let line = entry.render(AccessLogFormat::Combined, 1234);
        assert!(line.starts_with("192.0.2.1 - - ["), "{line}");
        assert!(
            line.contains(
                "] \"GET /a?b=1 HTTP/1.1\" 200 1234 \"-\" \"curl/8 \\x22quoted\\x22\" rt="
            ),
            "{line}"
        );
        assert!(
            line.contains(" uht=0.012 ua=\"127.0.0.1:8000\"\n"),
            "{line}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&entry.render(AccessLogFormat::Json, 5)).unwrap();
        assert_eq!(json["status"], 200);
        assert_eq!(json["body_bytes_sent"], 5);
    }
}
