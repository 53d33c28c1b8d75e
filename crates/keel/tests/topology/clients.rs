//! The clients' side: sockets that live in the clients' namespace, each bound to the
//! client address it speaks for, and plain HTTP/1.1 over them (light enough for 1,000
//! open event streams): one-shot requests, the site's login form, a fleet of SSE streams
//! that each wait for a published event on their own connection, and a steady load that
//! records every answer.
//!
//! Namespaces belong to threads, not processes: [`Clients::spawn`] starts a std thread
//! that `setns(CLONE_NEWNET)`s into the clients' namespace and runs a current-thread
//! tokio runtime there, so every socket made in it is a client's. The test's own thread
//! stays in the machine's namespace and starts processes (`ip netns exec`) from there.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::netns::Host;

/// The clients' namespace and its addresses.
#[derive(Clone, Debug)]
pub struct Clients {
    host: Host,
    addrs: Arc<Vec<Ipv4Addr>>,
}

impl Clients {
    /// Wraps the clients' host made by [`crate::netns::Lan::clients`].
    pub fn new(host: Host, addrs: Vec<Ipv4Addr>) -> Clients {
        Clients {
            host,
            addrs: Arc::new(addrs),
        }
    }

    /// Client address `i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.addrs[i]
    }

    /// Client addresses `range`.
    pub fn addrs(&self, range: std::ops::Range<usize>) -> Vec<Ipv4Addr> {
        self.addrs[range].to_vec()
    }

    /// Runs `f()`'s future to completion in the clients' namespace; its panics are ours.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Starts `f()`'s future on a thread of its own in the clients' namespace.
    pub fn spawn<F, Fut, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.host.ns);
        std::thread::Builder::new()
            .name("clients-netns".into())
            .spawn(move || {
                let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // Only this thread moves; the test's thread stays where it is.
                setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the clients' namespace");
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(f())
            })
            .expect("spawn a clients thread")
    }

    /// Whether something accepts TCP connections at `target` (readiness).
    pub fn tcp_open(&self, target: SocketAddr) -> bool {
        self.run(move || async move {
            matches!(
                tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await,
                Ok(Ok(_))
            )
        })
    }

    /// The status of `GET path` at `target`, or `None` if there was no answer within 2 s.
    pub fn get_status(&self, target: SocketAddr, path: &str) -> Option<u16> {
        let req = Req::get(path);
        let src = self.host.addr;
        self.run(move || async move {
            exchange(src, target, &req, Duration::from_secs(2))
                .await
                .ok()
                .map(|r| r.status)
        })
    }
}

/// A TCP connection from client address `src` to `dst`: bound before connecting, so the
/// server sees that address. At most 5 s.
pub async fn connect(src: Ipv4Addr, dst: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src.into(), 0))?;
    match tokio::time::timeout(Duration::from_secs(5), socket.connect(dst)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// An HTTP/1.1 request, written by hand.
#[derive(Clone, Debug)]
pub struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    /// `GET path`.
    pub fn get(path: &str) -> Req {
        Req {
            method: "GET",
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `POST path` of an urlencoded form.
    pub fn post_form(path: &str, fields: &[(&str, &str)]) -> Req {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Req {
            method: "POST",
            path: path.to_owned(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: body.into_bytes(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The head (with `Host`, `Connection: close` and `Content-Length` when there is a
    /// body) and the body, in wire form.
    pub fn wire(&self, host: SocketAddr) -> (Vec<u8>, Vec<u8>) {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: keel-topology\r\n",
            self.method, self.path
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        (head.into_bytes(), self.body.clone())
    }
}

/// An answer: status, headers (names lower-cased), body (de-chunked).
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header lines in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` among the `Set-Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next())
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether this is the site's own error page (`error.html` in the site's layout).
    pub fn is_site_error_page(&self) -> bool {
        self.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
            && self.text().contains("class=\"error-page\"")
    }
}

/// Splits a head into status and headers.
fn parse_head(head: &[u8]) -> io::Result<(u16, Vec<(String, String)>)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Incremental `Transfer-Encoding: chunked` decoding: moves the whole chunks at the
/// front of `raw` into `out`; returns true once the last chunk was seen.
fn dechunk(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        let Some(eol) = find(raw, b"\r\n") else {
            return Ok(false);
        };
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            raw.clear();
            return Ok(true);
        }
        if raw.len() < eol + 2 + size + 2 {
            return Ok(false);
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw.drain(..eol + 2 + size + 2);
    }
}

/// One request from `src` to `dst` on a connection of its own, read to the close, all
/// within `limit`.
pub async fn exchange(
    src: Ipv4Addr,
    dst: SocketAddr,
    req: &Req,
    limit: Duration,
) -> io::Result<Reply> {
    let work = async {
        let mut conn = connect(src, dst).await?;
        let (head, body) = req.wire(dst);
        conn.write_all(&head).await?;
        conn.write_all(&body).await?;
        read_reply(&mut conn).await
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete answer within {limit:?}"),
        )),
    }
}

/// Reads an answer sent with `Connection: close`: to the end of its framing or the close.
pub async fn read_reply(conn: &mut TcpStream) -> io::Result<Reply> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed before a complete head ({} bytes)", raw.len()),
            ));
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let (status, headers) = parse_head(&raw[..head_end])?;
    let mut rest: Vec<u8> = raw[head_end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let length: Option<usize> = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok());
    let mut body = Vec::new();
    loop {
        if chunked {
            if dechunk(&mut rest, &mut body)? {
                break;
            }
        } else if length.is_some_and(|l| rest.len() >= l) {
            body = rest;
            break;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            if chunked || length.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed inside the body",
                ));
            }
            body = rest;
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The site's CSRF pair for a visitor: the `keel_csrf` cookie the form page set, and the
/// form's hidden `csrf_token` (equal, as Django's double-submit cookie is).
pub async fn csrf(
    src: Ipv4Addr,
    dst: SocketAddr,
    form_path: &str,
    extra: &[(&str, &str)],
) -> io::Result<String> {
    let mut req = Req::get(form_path);
    for (k, v) in extra {
        req = req.header(k, v);
    }
    let page = exchange(src, dst, &req, Duration::from_secs(10)).await?;
    let text = page.text();
    let marker = "name=\"csrf_token\" value=\"";
    let field = text
        .find(marker)
        .map(|i| &text[i + marker.len()..])
        .and_then(|t| t.split('"').next())
        .ok_or_else(|| {
            bad(format!(
                "GET {form_path}: {} with no csrf_token field",
                page.status
            ))
        })?;
    let cookie = page.cookie("keel_csrf").unwrap_or_else(|| field.to_owned());
    if cookie != field {
        return Err(bad(format!(
            "csrf cookie {cookie:?} differs from the field {field:?}"
        )));
    }
    Ok(cookie)
}

/// Logs in as a browser does: GET the form (for the CSRF pair), POST it back. `extra`
/// headers go on both requests (forged `X-Forwarded-For` and friends). Returns the POST's
/// answer: 303 and a `keel_session` cookie on success, 400 on a wrong password, 429 when
/// the address or the account is locked.
pub async fn login(
    src: Ipv4Addr,
    dst: SocketAddr,
    username: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> io::Result<Reply> {
    let token = csrf(src, dst, "/accounts/login/", extra).await?;
    let mut req = Req::post_form(
        "/accounts/login/",
        &[
            ("csrf_token", &token),
            ("username", username),
            ("password", password),
            ("next", "/"),
        ],
    )
    .header("Cookie", &format!("keel_csrf={token}"));
    for (k, v) in extra {
        req = req.header(k, v);
    }
    exchange(src, dst, &req, Duration::from_secs(10)).await
}

/// An open `GET /stream/` from one client address, read as an `EventSource` would.
#[derive(Debug)]
pub struct EventStream {
    conn: TcpStream,
    /// The answer's status.
    pub status: u16,
    chunked: bool,
    /// Bytes read and not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked SSE text not yet parsed into events.
    text: Vec<u8>,
}

impl EventStream {
    /// Connects from `src`, sends the request, reads the head (within 10 s).
    pub async fn open(src: Ipv4Addr, dst: SocketAddr, path: &str) -> io::Result<EventStream> {
        let work = async {
            let mut conn = connect(src, dst).await?;
            let head = format!(
                "GET {path} HTTP/1.1\r\nHost: {dst}\r\nAccept: text/event-stream\r\n\
                 Cache-Control: no-cache\r\nUser-Agent: keel-topology\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await?;
            let mut raw = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = find(&raw, b"\r\n\r\n") {
                    break i;
                }
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed before the head",
                    ));
                }
                raw.extend_from_slice(&chunk[..n]);
            };
            let (status, headers) = parse_head(&raw[..head_end])?;
            let chunked = headers
                .iter()
                .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
            Ok(EventStream {
                conn,
                status,
                chunked,
                raw: raw[head_end + 4..].to_vec(),
                text: Vec::new(),
            })
        };
        match tokio::time::timeout(Duration::from_secs(10), work).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no head within 10 s",
            )),
        }
    }

    /// Reads until an event whose data is `marker` arrives on this connection; skips
    /// other events, comments and `retry:` lines. Fails on the close or at `deadline`.
    pub async fn wait_for(&mut self, marker: &str, deadline: Instant) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        loop {
            // Parse what we have: whole events end with a blank line.
            if self.chunked {
                let mut raw = std::mem::take(&mut self.raw);
                let done = dechunk(&mut raw, &mut self.text).map_err(|e| e.to_string())?;
                self.raw = raw;
                if done {
                    return Err("the stream ended (last chunk)".into());
                }
            } else {
                self.text.append(&mut self.raw);
            }
            while let Some(end) = find(&self.text, b"\n\n") {
                let event: Vec<u8> = self.text.drain(..end + 2).collect();
                let event = String::from_utf8_lossy(&event);
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if !data.is_empty() && data.join("\n") == marker {
                    return Ok(());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("no event {marker:?} in time"));
            }
            match tokio::time::timeout(deadline - now, self.conn.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err("the server closed the stream".into()),
                Ok(Ok(n)) => self.raw.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(format!("read: {e}")),
                Err(_) => return Err(format!("no event {marker:?} in time")),
            }
        }
    }
}

/// How opening a fleet went.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// Answers by status.
    pub statuses: BTreeMap<u16, usize>,
    /// Status per stream, in the order of the addresses given (0 = no answer).
    pub each: Vec<u16>,
    /// Connections that got no answer, with why.
    pub errors: Vec<String>,
    /// Time to open them all.
    pub elapsed: Duration,
}

impl OpenReport {
    /// Streams answered 200.
    pub fn admitted(&self) -> usize {
        self.statuses.get(&200).copied().unwrap_or(0)
    }
}

/// How one published event reached the fleet.
#[derive(Clone, Debug, Default)]
pub struct PhaseReport {
    /// Open streams waited on.
    pub waited_on: usize,
    /// Streams that got the event on their connection.
    pub received: usize,
    /// Why the others did not (first few).
    pub failures: Vec<String>,
    /// Until the last stream got it.
    pub elapsed: Duration,
}

type Expect = (String, Duration, mpsc::Sender<PhaseReport>);

/// Many event streams, one per given address, held open on a clients' thread; the test
/// publishes and then asks, per event, how many streams got it on their connection. No
/// stream ever reconnects: a closed stream is a failure.
#[derive(Debug)]
pub struct StreamFleet {
    /// How opening went.
    pub opened: OpenReport,
    expect: Option<tokio::sync::mpsc::UnboundedSender<Expect>>,
    thread: Option<JoinHandle<()>>,
}

impl StreamFleet {
    /// Opens `GET path` at `dst` once from each of `addrs`, `parallel` at a time (1 opens
    /// them strictly one after the other), and returns once every one has its answer's
    /// head (or failed).
    pub fn open(
        clients: &Clients,
        addrs: Vec<Ipv4Addr>,
        dst: SocketAddr,
        path: &str,
        parallel: usize,
    ) -> StreamFleet {
        let (opened_tx, opened_rx) = mpsc::channel();
        let (expect_tx, expect_rx) = tokio::sync::mpsc::unbounded_channel::<Expect>();
        let path = path.to_owned();
        let thread = clients.spawn(move || fleet(addrs, dst, path, parallel, opened_tx, expect_rx));
        let mut fleet = StreamFleet {
            opened: OpenReport::default(),
            expect: Some(expect_tx),
            thread: Some(thread),
        };
        match opened_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(report) => fleet.opened = report,
            Err(_) => {
                // The thread died (its panic is the story) or hangs past every bound.
                fleet.expect = None;
                if let Some(thread) = fleet.thread.take() {
                    if thread.is_finished() {
                        if let Err(panic) = thread.join() {
                            std::panic::resume_unwind(panic);
                        }
                    }
                }
                panic!("the stream fleet did not open within 120 s");
            }
        }
        fleet
    }

    /// Waits (at most `limit`) until every open stream got an event whose data is
    /// `marker`, on its own connection.
    pub fn expect(&self, marker: &str, limit: Duration) -> PhaseReport {
        let (tx, rx) = mpsc::channel();
        self.expect
            .as_ref()
            .expect("fleet open")
            .send((marker.to_owned(), limit, tx))
            .expect("fleet thread alive");
        rx.recv_timeout(limit + Duration::from_secs(10))
            .expect("fleet answered within its bound")
    }
}

impl Drop for StreamFleet {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; its streams close with it.
        self.expect = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The fleet's thread: open, report, then one round per expected event.
async fn fleet(
    addrs: Vec<Ipv4Addr>,
    dst: SocketAddr,
    path: String,
    parallel: usize,
    opened: mpsc::Sender<OpenReport>,
    mut expect: tokio::sync::mpsc::UnboundedReceiver<Expect>,
) {
    let started = Instant::now();
    let count = addrs.len();
    let mut results = Vec::with_capacity(count);
    if parallel <= 1 {
        for (i, src) in addrs.into_iter().enumerate() {
            results.push((i, src, EventStream::open(src, dst, &path).await));
        }
    } else {
        let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut opening = tokio::task::JoinSet::new();
        for (i, src) in addrs.into_iter().enumerate() {
            let gate = gate.clone();
            let path = path.clone();
            opening.spawn(async move {
                let _permit = gate.acquire_owned().await;
                (i, src, EventStream::open(src, dst, &path).await)
            });
        }
        while let Some(joined) = opening.join_next().await {
            results.extend(joined.ok());
        }
    }
    let mut report = OpenReport {
        each: vec![0; count],
        ..OpenReport::default()
    };
    let mut slots: Vec<Option<EventStream>> = (0..count).map(|_| None).collect();
    for (i, src, result) in results {
        match result {
            Ok(stream) => {
                report.each[i] = stream.status;
                *report.statuses.entry(stream.status).or_default() += 1;
                if stream.status == 200 {
                    slots[i] = Some(stream);
                }
            }
            Err(e) => report.errors.push(format!("stream {i} from {src}: {e}")),
        }
    }
    report.elapsed = started.elapsed();
    if opened.send(report).is_err() {
        return;
    }
    while let Some((marker, limit, reply)) = expect.recv().await {
        let started = Instant::now();
        let deadline = started + limit;
        let mut waiting = tokio::task::JoinSet::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(mut stream) = slot.take() {
                let marker = marker.clone();
                waiting.spawn(async move {
                    let result = stream.wait_for(&marker, deadline).await;
                    (i, stream, result)
                });
            }
        }
        let mut phase = PhaseReport {
            waited_on: waiting.len(),
            ..PhaseReport::default()
        };
        while let Some(joined) = waiting.join_next().await {
            let Ok((i, stream, result)) = joined else {
                continue;
            };
            match result {
                Ok(()) => {
                    phase.received += 1;
                    slots[i] = Some(stream);
                }
                // A stream that missed an event is closed and not waited on again.
                Err(e) if phase.failures.len() < 10 => {
                    phase.failures.push(format!("stream {i}: {e}"))
                }
                Err(_) => {}
            }
        }
        phase.elapsed = started.elapsed();
        let _ = reply.send(phase);
    }
}

/// One request of a [`Load`].
#[derive(Clone, Debug)]
pub struct Sample {
    /// Which request of the load (0, 1, …).
    pub n: usize,
    /// When it was sent, since the load started.
    pub sent_at: Duration,
    /// Until its answer was read (or it failed).
    pub latency: Duration,
    /// The answer's status; `None` when there was no answer.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    /// Whether the answer was the site's HTML error page.
    pub site_error_page: bool,
}

/// A steady load: `per_second` requests a second, each on a new connection from the next
/// of the given addresses, each bounded by a timeout, every answer recorded. Requests are
/// sent on time whatever the answers do (an open loop), so a slow server gets more
/// requests in flight, not fewer.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
    started: Instant,
}

impl Load {
    /// Starts it; `reqs` are sent in turn.
    pub fn start(
        clients: &Clients,
        srcs: Vec<Ipv4Addr>,
        dst: SocketAddr,
        reqs: Vec<Req>,
        per_second: u32,
        timeout: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let flag = stop.clone();
        let thread = clients.spawn(move || async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut running = tokio::task::JoinSet::new();
            let mut n = 0;
            while !flag.load(Ordering::Relaxed) {
                tick.tick().await;
                let src = srcs[n % srcs.len()];
                let req = reqs[n % reqs.len()].clone();
                running.spawn(async move {
                    let sent = Instant::now();
                    let result = exchange(src, dst, &req, timeout).await;
                    let (status, error, site_error_page) = match result {
                        Ok(reply) => (Some(reply.status), None, reply.is_site_error_page()),
                        Err(e) => (None, Some(e.to_string()), false),
                    };
                    Sample {
                        n,
                        sent_at: sent - started,
                        latency: sent.elapsed(),
                        status,
                        error,
                        site_error_page,
                    }
                });
                n += 1;
            }
            let mut samples = Vec::new();
            while let Some(joined) = running.join_next().await {
                samples.extend(joined.ok());
            }
            samples.sort_by_key(|s| s.n);
            samples
        });
        Load {
            stop,
            thread: Some(thread),
            started,
        }
    }

    /// Time since the load started (the origin of every `sent_at`).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sending, waits for the requests in flight (each is bounded), returns every
    /// sample in order.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("running");
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers by status (`"error: why"` for none), for the summary lines.
pub fn tally(samples: &[Sample]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for s in samples {
        let key = match (&s.status, &s.error) {
            (Some(code), _) => code.to_string(),
            (None, Some(e)) => format!("error: {}", e.chars().take(60).collect::<String>()),
            (None, None) => "error".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}
