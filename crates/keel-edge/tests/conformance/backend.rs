//! The recording backend: a raw keep-alive HTTP/1.1 server that records every byte and
//! every request head a front sends it, answers `ok <method> <target>`, and misbehaves on
//! purpose on `/poison/...` paths the way broken applications do.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::wire::{self, Framing, RequestHead};

/// A whole response, sent where no response is due: whoever reads it got an answer meant
/// for nobody (and a cookie meant for nobody).
pub const POISON: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nSet-Cookie: stolen=1\r\n\r\nPOISONED!!!!";

/// A connection silent this long is dropped.
const IDLE: Duration = Duration::from_secs(10);

/// One request as the backend read it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The head, or why it could not be read.
    pub head: Result<RequestHead, String>,
    /// The body once read whole (`None`: never completed, or refused).
    pub body: Option<Vec<u8>>,
    /// Why the body could not be read.
    pub body_error: Option<String>,
}

/// What a backend received since the last [`Recorder::take`].
#[derive(Debug, Default)]
pub struct Seen {
    /// Every byte received, on all connections, in order of arrival.
    pub raw: Vec<u8>,
    /// Every request head, parsed or not.
    pub requests: Vec<SeenRequest>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: Seen,
    /// Bumped by every take, so a body read late is not filed under the next case.
    epoch: u64,
}

/// A backend's record, shared with its connections.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    /// Bumped to make every open connection close.
    hang_up: Arc<watch::Sender<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            inner: Arc::default(),
            hang_up: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes every connection the backend has open (as soon as it is waiting for a
    /// request), so whatever one scenario left on them cannot reach the next.
    pub fn hang_up(&self) {
        self.hang_up.send_modify(|n| *n += 1);
    }

    /// Everything recorded so far; the record starts afresh.
    pub fn take(&self) -> Seen {
        let mut inner = self.lock();
        inner.epoch += 1;
        std::mem::take(&mut inner.seen)
    }

    fn bytes(&self, bytes: &[u8]) {
        self.lock().seen.raw.extend_from_slice(bytes);
    }

    fn request(&self, head: Result<RequestHead, String>) -> (u64, usize) {
        let mut inner = self.lock();
        inner.seen.requests.push(SeenRequest {
            head,
            body: None,
            body_error: None,
        });
        (inner.epoch, inner.seen.requests.len() - 1)
    }

    fn body(&self, (epoch, index): (u64, usize), body: Result<Vec<u8>, String>) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if let Some(request) = inner.seen.requests.get_mut(index) {
            match body {
                Ok(body) => request.body = Some(body),
                Err(e) => request.body_error = Some(e),
            }
        }
    }
}

/// Starts a backend on a free port of 127.0.0.1.
pub async fn spawn(recorder: Recorder) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let connection = Connection {
                stream,
                buf: Vec::new(),
                hang_up: recorder.hang_up.subscribe(),
                recorder: recorder.clone(),
            };
            tokio::spawn(connection.serve());
        }
    });
    addr
}

struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    recorder: Recorder,
    hang_up: watch::Receiver<u64>,
}

impl Connection {
    /// Reads more bytes; false once the peer closed, failed or stayed silent too long,
    /// or the backend hung up.
    async fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::select! {
            read = tokio::time::timeout(IDLE, self.stream.read(&mut chunk)) => read,
            _ = self.hang_up.changed() => return false,
        };
        match read {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.recorder.bytes(&chunk[..n]);
                true
            }
            _ => false,
        }
    }

    async fn serve(mut self) {
        loop {
            let head = loop {
                match wire::parse_request(&self.buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) if self.buf.len() < 1 << 20 => {
                        if !self.read_more().await {
                            return;
                        }
                    }
                    Ok(None) => {
                        self.recorder.request(Err("head over 1 MiB".to_owned()));
                        return self.refuse("head over 1 MiB").await;
                    }
                    Err(e) => {
                        self.recorder.request(Err(e.clone()));
                        return self.refuse(&e).await;
                    }
                }
            };
            let at = self.recorder.request(Ok(head.clone()));
            let framing = match wire::request_framing(&head) {
                Ok(framing) => framing,
                Err(e) => {
                    self.recorder.body(at, Err(e.clone()));
                    return self.refuse(&e).await;
                }
            };
            // As gunicorn does: 100 Continue before reading an expected body.
            let expects = head
                .values("expect")
                .any(|v| v.eq_ignore_ascii_case("100-continue"));
            if expects
                && framing != Framing::None
                && self
                    .stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
            {
                return;
            }
            let (body, used) = loop {
                match wire::body(framing, &self.buf[head.len..], false) {
                    Ok(Some(read)) => break read,
                    Ok(None) => {
                        if !self.read_more().await {
                            return;
                        }
                    }
                    Err(e) => {
                        self.recorder.body(at, Err(e.clone()));
                        return self.refuse(&e).await;
                    }
                }
            };
            self.recorder.body(at, Ok(body));
            self.buf.drain(..head.len + used);
            if !self.answer(&head).await {
                return;
            }
        }
    }

    /// Answers `head`; false when the connection is to end.
    async fn answer(&mut self, head: &RequestHead) -> bool {
        let close = head
            .values("connection")
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            || (head.version == 0
                && !head
                    .values("connection")
                    .any(|v| v.eq_ignore_ascii_case("keep-alive")));
        let body = format!("ok {} {}", head.method, head.target);
        let normal = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n{}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
            if head.method == "HEAD" { "" } else { &body },
        )
        .into_bytes();
        let path = head.target.split('?').next().unwrap_or_default();
        let answer = match path {
            "/poison/204" => [b"HTTP/1.1 204 No Content\r\n\r\n".as_slice(), POISON].concat(),
            "/poison/304" => [b"HTTP/1.1 304 Not Modified\r\n\r\n".as_slice(), POISON].concat(),
            // Django behind gunicorn's threaded worker: a body for HEAD too.
            "/poison/head" if head.method == "HEAD" => [
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    POISON.len()
                )
                .as_bytes(),
                POISON,
            ]
            .concat(),
            "/poison/late" => {
                if self
                    .stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                POISON.to_vec()
            }
            "/poison/cl-plus" => [
                b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello".as_slice(),
                POISON,
            ]
            .concat(),
            "/poison/100" => [b"HTTP/1.1 100 Continue\r\n\r\n".as_slice(), &normal].concat(),
            _ => normal,
        };
        self.stream.write_all(&answer).await.is_ok() && !close
    }

    async fn refuse(mut self, why: &str) {
        let body = format!("backend refused: {why}");
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = self.stream.write_all(answer.as_bytes()).await;
        let _ = self.stream.shutdown().await;
    }
}
