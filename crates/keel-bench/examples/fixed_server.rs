//! A trivial HTTP/1.1 server with a fixed response delay, for `bench/accuracy.sh`.
//!
//! `cargo run --release --example fixed_server -- [--listen 127.0.0.1:0] [--latency-ms 0]
//! [--threads 1] [--body-bytes 13] [--status-every N:CODE]`
//!
//! Prints `listening on ADDR` on stdout once bound, then serves until killed. Every response
//! is `200` with a fixed body after `--latency-ms`; with `--status-every 4:500` every 4th
//! request (counted across connections) answers `500` instead.

use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

struct Config {
    listen: String,
    latency: Duration,
    threads: usize,
    body: Bytes,
    status_every: Option<(u64, u16)>,
}

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        latency: Duration::ZERO,
        threads: 1,
        body: Bytes::from_static(b"Hello, world!"),
        status_every: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--listen" => cfg.listen = value,
            "--latency-ms" => {
                cfg.latency = Duration::from_millis(value.parse().map_err(|e| bad(&e))?)
            }
            "--threads" => cfg.threads = value.parse().map_err(|e| bad(&e))?,
            "--body-bytes" => {
                let n: usize = value.parse().map_err(|e| bad(&e))?;
                cfg.body = Bytes::from(vec![b'x'; n]);
            }
            "--status-every" => {
                let (n, code) = value.split_once(':').ok_or(bad(&"expected N:CODE"))?;
                cfg.status_every = Some((
                    n.parse().map_err(|e| bad(&e))?,
                    code.parse().map_err(|e| bad(&e))?,
                ));
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(cfg)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = parse_args()?;
    let rt = if cfg.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let cfg = Arc::new(cfg);
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let cfg = cfg.clone();
        let counter = counter.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let cfg = cfg.clone();
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    if !cfg.latency.is_zero() {
                        tokio::time::sleep(cfg.latency).await;
                    }
                    let mut resp = Response::new(Full::new(cfg.body.clone()));
                    if let Some((every, code)) = cfg.status_every {
                        if every > 0 && n.is_multiple_of(every) {
                            *resp.status_mut() =
                                StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
                        }
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
