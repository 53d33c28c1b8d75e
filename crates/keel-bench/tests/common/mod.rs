//! Test servers on 127.0.0.1:0 with known behaviour, started inside the test's runtime.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the hyper test server answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Delay before every response.
    pub latency: Duration,
    /// `(n, code)`: every n-th request (counted across connections) gets `code`.
    pub status_every: Option<(u64, u16)>,
    /// `false`: answer with `Connection: close` and close after each response.
    pub keep_alive: bool,
    /// Echo the request body instead of the fixed `Hello, world!`.
    pub echo: bool,
    /// Serve at most this many requests at once; the others wait for a slot, like
    /// requests queued for gunicorn's fixed pool of threads.
    pub max_in_flight: Option<usize>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            status_every: None,
            keep_alive: true,
            echo: false,
            max_in_flight: None,
        }
    }
}

/// What the last request looked like.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A running test server; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    pub connections: Arc<AtomicU64>,
    pub last: Arc<Mutex<Option<Seen>>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

pub const BODY: &[u8] = b"Hello, world!";

pub async fn spawn(behaviour: Behaviour) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = TestServer {
        addr: listener.local_addr().unwrap(),
        requests: Arc::default(),
        connections: Arc::default(),
        last: Arc::default(),
    };
    let s = server.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(
        behaviour
            .max_in_flight
            .unwrap_or(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let behaviour = Arc::new(behaviour);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            let b = behaviour.clone();
            let slots = slots.clone();
            let keep_alive = behaviour.keep_alive;
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let s = s.clone();
                    let b = b.clone();
                    let slots = slots.clone();
                    async move {
                        let _slot = slots.acquire_owned().await.unwrap();
                        let n = s.requests.fetch_add(1, Ordering::SeqCst) + 1;
                        let method = req.method().to_string();
                        let headers = req.headers().clone();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        *s.last.lock().unwrap() = Some(Seen {
                            method,
                            headers,
                            body: body.clone(),
                        });
                        if !b.latency.is_zero() {
                            tokio::time::sleep(b.latency).await;
                        }
                        let out = if b.echo {
                            body
                        } else {
                            Bytes::from_static(BODY)
                        };
                        let mut resp = Response::new(Full::new(out));
                        if let Some((every, code)) = b.status_every {
                            if n.is_multiple_of(every) {
                                *resp.status_mut() = StatusCode::from_u16(code).unwrap();
                            }
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    server
}

/// A raw server: answers each request with a complete `200` (keep-alive implied by
/// HTTP/1.1) and then closes the socket without saying so. A client that reuses the
/// connection finds it closed: the stale keep-alive case.
pub async fn spawn_close_after_response() -> TestServer {
    spawn_raw(true).await
}

/// A raw server that reads the request and closes without any response.
pub async fn spawn_close_without_response() -> TestServer {
    spawn_raw(false).await
}

async fn spawn_raw(respond: bool) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = TestServer {
        addr: listener.local_addr().unwrap(),
        requests: Arc::default(),
        connections: Arc::default(),
        last: Arc::default(),
    };
    let s = server.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                s.requests.fetch_add(1, Ordering::SeqCst);
                if respond {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    // Give the client time to take the connection back for reuse.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Dropping the stream closes it.
            });
        }
    });
    server
}

/// An address on which nothing listens.
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
