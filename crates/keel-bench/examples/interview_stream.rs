//! Many AI interviews at once, end to end over HTTP (issue 18): the interviewer's tokens
//! from a model, through `keel up`, to 500 readers at the same time. Targets: keel adds
//! at most 5 ms at p99 to a token's trip from the model to the reader, and no token is
//! lost.
//!
//! ```text
//! cargo run --release -p keel-bench --example interview_stream -- --base http://127.0.0.1:PORT \
//!   --model-port MPORT --readers 500 --tokens 40 --token-interval-ms 20 --server-pid PID --json OUT
//! ```
//!
//! `keel up` is started first with `--interviewer-api-base http://127.0.0.1:MPORT/v1`
//! (it calls the model only when a reader answers), then this example binds MPORT:
//!
//! - **The model.** An OpenAI-compatible `POST /v1/chat/completions` (axum, on a runtime
//!   of its own: one thread named `model`). `stream: false` (keel's verdict proposal, one
//!   per answer) gets an empty proposal `{"covered":[],"misconceptions":[]}` at once.
//!   `stream: true` (keel's phrasing of the interviewer's line) gets `--tokens` SSE chunks,
//!   one every `--token-interval-ms` from the request (first at one interval), then
//!   `data: [DONE]`. Each token's `delta.content` is `[cCALL:SEQ@MICROS] `: the call's
//!   number, the token's index, and the wall clock in µs when it was handed to the HTTP
//!   server. How late each token left against its schedule is kept too. Its sockets
//!   have TCP_NODELAY, as keel's edge's have.
//! - **Bare path.** `--bare-streams` streams read straight from the model, all opened at
//!   once by the same client code: the model-to-client path without keel on this machine.
//! - **Setup.** Each of `--readers` readers has its own cookies: `GET /interviewer/` (CSRF
//!   cookie and hidden field), `POST /interviewer/` (track `edge`, junior, 5 questions,
//!   practice) for its session and `keel_guest` cookie, and `POST` one answer, whose 303
//!   names the interviewer's new line N (`?say=N`). `--concurrency` readers at a time.
//! - **Streams.** Then every reader opens `GET /interviewer/sessions/ID/say/N/` at once
//!   and reads every frame to `{"t":"done"}`. Each `{"t":"token"}` frame's delay is its
//!   arrival (the wall clock when the body chunk was read) minus the µs in its text. A
//!   stream is complete when it got tokens 0..tokens-1 of one model call, in order, then
//!   `done`. While the streams run, keel's VmRSS and the count of open streams are read
//!   every 10 ms.
//! - **Warm-up.** First `--warmup` interviews go through keel (setup and stream), not
//!   reported; keel's idle memory is read after them and the bare runs.
//! - **Light load.** With `--light K`, the same on both paths with K streams (K new
//!   readers on keel): the delays when the cores are not saturated.
//!
//! With `--server-pid`, CPU per phase: keel's threads (`/proc/PID/task/*/schedstat`), this
//! process's threads split into the model server and the readers, and the whole machine's
//! busy share (`/proc/stat`). A probe task on the readers' runtime asks to wake every 5 ms
//! and records how late it woke: the load generator's own scheduling delay.
//!
//! Everything is bounded: the counts, and every wait by `--wait-secs`.

mod common;

use common::{ms, r2, Jar, Stats};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::post as route_post;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use clap::Parser;
use reqwest::header::{HeaderMap, ACCEPT, COOKIE, LOCATION};
use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(
    about = "Interviews streaming a model's tokens through keel up: added delay, loss, memory"
)]
struct Args {
    /// The keel up to load, e.g. http://127.0.0.1:8000
    #[arg(long)]
    base: String,
    /// Port for the scripted model on 127.0.0.1 (keel up's --interviewer-api-base)
    #[arg(long)]
    model_port: u16,
    /// Readers, each with one interview and one streamed reply, all streaming at once
    #[arg(long, default_value_t = 500)]
    readers: usize,
    /// Streams read straight from the model, at once (0: none)
    #[arg(long, default_value_t = 500)]
    bare_streams: usize,
    /// A light-load run of both paths with this many streams (0: none)
    #[arg(long, default_value_t = 50)]
    light: usize,
    /// Tokens per streamed reply
    #[arg(long, default_value_t = 40)]
    tokens: usize,
    /// Milliseconds between two tokens of one reply (20: 50 tokens/s)
    #[arg(long, default_value_t = 20)]
    token_interval_ms: u64,
    /// Interviews run through keel first (setup and stream), not reported: keel's
    /// start-up memory is given back and its pools are warm before "idle" is read
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Setup requests (start + answer) in flight at once
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Upper bound of each wait, in seconds
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
    /// keel's pid, for its CPU time and VmRSS (Linux /proc)
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the results as JSON here
    #[arg(long)]
    json: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// Clocks, statistics, /proc

/// The wall clock in Unix microseconds: the clock the model stamps its tokens with.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// CPU nanoseconds of `pid`'s live threads, split by whether the thread's name starts
/// with `prefix`: (matching, the rest).
fn cpu_ns_split(pid: &str, prefix: &str) -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let (mut yes, mut no) = (0, 0);
    for task in dir.filter_map(Result::ok) {
        let Some(ns) = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !prefix.is_empty() && comm.starts_with(prefix) {
            yes += ns;
        } else {
            no += ns;
        }
    }
    (yes, no)
}

/// The whole machine's (busy, total) jiffies from the first line of /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    keel: u64,
    model: u64,
    readers: u64,
    busy: u64,
    total: u64,
    at: Instant,
}

/// CPU of keel, the model server and the readers over named phases.
#[derive(Debug)]
struct Cpu {
    server: Option<u32>,
}

impl Cpu {
    fn mark(&self) -> Mark {
        let keel = self
            .server
            .map_or(0, |pid| cpu_ns_split(&pid.to_string(), "").1);
        let (model, readers) = cpu_ns_split("self", "model");
        let (busy, total) = machine_jiffies();
        Mark {
            keel,
            model,
            readers,
            busy,
            total,
            at: Instant::now(),
        }
    }

    fn since(&self, m: Mark) -> Value {
        let now = self.mark();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / 1e6;
        let total = now.total.saturating_sub(m.total).max(1) as f64;
        json!({
            "wall_ms": r2(ms(now.at - m.at)),
            "keel_cpu_ms": r2(d(now.keel, m.keel)),
            "model_cpu_ms": r2(d(now.model, m.model)),
            "readers_cpu_ms": r2(d(now.readers, m.readers)),
            "machine_busy_pct": r2(100.0 * now.busy.saturating_sub(m.busy) as f64 / total),
        })
    }
}

/// The readers' runtime lateness: a task asking to wake every 5 ms records how late it
/// woke, with the wall clock in µs.
fn start_lag_probe(samples: Arc<Mutex<Vec<(u64, f64)>>>, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let period = Duration::from_millis(5);
        let mut next = Instant::now() + period;
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep_until(next.into()).await;
            let late = ms(Instant::now().saturating_duration_since(next));
            samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((now_us(), late));
            next = Instant::now() + period;
        }
    });
}

fn lag_between(samples: &Mutex<Vec<(u64, f64)>>, from: u64, to: u64) -> Value {
    let v = samples.lock().unwrap_or_else(PoisonError::into_inner);
    Stats::of(
        v.iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, late)| *late)
            .collect(),
    )
    .json()
}

// ---------------------------------------------------------------------------------------
// The scripted model

#[derive(Debug)]
struct Model {
    tokens: usize,
    interval: Duration,
    /// Streamed calls begun, and those that sent `[DONE]`.
    streamed: AtomicU64,
    finished: AtomicU64,
    /// Non-streamed calls (verdict proposals).
    completions: AtomicU64,
    tokens_sent: AtomicU64,
    /// How late each token left against its schedule, in µs.
    late_us: Mutex<Vec<u32>>,
}

/// A streamed reply's state: the token to send next.
#[derive(Debug)]
struct Reply {
    model: Arc<Model>,
    call: u64,
    start: tokio::time::Instant,
    next: usize,
}

async fn chat(State(model): State<Arc<Model>>, Json(req): Json<Value>) -> Response {
    if req["stream"].as_bool() != Some(true) {
        model.completions.fetch_add(1, Ordering::Relaxed);
        let content = r#"{"covered":[],"misconceptions":[]}"#;
        return Json(json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "model": "bench",
            "choices": [{ "index": 0, "finish_reason": "stop",
                          "message": { "role": "assistant", "content": content } }],
        }))
        .into_response();
    }
    let call = model.streamed.fetch_add(1, Ordering::Relaxed);
    let reply = Reply {
        model,
        call,
        start: tokio::time::Instant::now(),
        next: 0,
    };
    let body = futures_util::stream::unfold(reply, |mut r| async move {
        let tokens = r.model.tokens;
        if r.next > tokens {
            return None;
        }
        if r.next == tokens {
            r.model.finished.fetch_add(1, Ordering::Relaxed);
            r.next += 1;
            return Some((
                Ok::<_, Infallible>(Bytes::from_static(b"data: [DONE]\n\n")),
                r,
            ));
        }
        let factor = u32::try_from(r.next + 1).unwrap_or(u32::MAX);
        let due = r.start + r.model.interval * factor;
        tokio::time::sleep_until(due).await;
        let late = tokio::time::Instant::now().saturating_duration_since(due);
        let text = format!("[c{}:{}@{}] ", r.call, r.next, now_us());
        let chunk = json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "bench",
            "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }],
        });
        r.model.tokens_sent.fetch_add(1, Ordering::Relaxed);
        r.model
            .late_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(u32::try_from(late.as_micros()).unwrap_or(u32::MAX));
        r.next += 1;
        Some((Ok(Bytes::from(format!("data: {chunk}\n\n"))), r))
    });
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Readers: cookies, setup

/// The value of the hidden `csrf_token` field in a page.
fn csrf_field(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = tag[v..].find('"')? + v;
    Some(tag[v..end].to_owned())
}

/// A reader ready to stream: its cookies and the line to hear.
#[derive(Debug)]
struct Reader {
    cookie: String,
    say_url: String,
    start_ms: f64,
    answer_ms: f64,
}

const ANSWER: &str = "With burst=20 the first request goes through and twenty more wait in the \
    bucket instead of being rejected, so 21 are accepted and the rest get a 503. With nodelay \
    they are forwarded at once, but the bucket still empties at the rate.";

async fn setup_reader(client: &Client, base: &str) -> Result<Reader, String> {
    let mut jar = Jar::default();
    let t0 = Instant::now();
    let resp = client
        .get(format!("{base}/interviewer/"))
        .send()
        .await
        .map_err(|e| format!("GET /interviewer/: {e}"))?;
    let status = resp.status();
    jar.absorb(resp.headers());
    let html = resp.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("GET /interviewer/: {status}"));
    }
    let csrf = csrf_field(&html)
        .or_else(|| jar.get("keel_csrf").map(str::to_owned))
        .ok_or("no csrf_token")?;
    let resp = client
        .post(format!("{base}/interviewer/"))
        .header(COOKIE, jar.header())
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("track", "edge"),
            ("level", "junior"),
            ("length", "5"),
            ("mode", "practice"),
        ])
        .send()
        .await
        .map_err(|e| format!("POST /interviewer/: {e}"))?;
    jar.absorb(resp.headers());
    let status = resp.status();
    let location = location_of(resp.headers());
    let _ = resp.bytes().await;
    let session = location
        .as_deref()
        .filter(|_| status.as_u16() == 303)
        .and_then(|l| l.split('?').next())
        .map(str::to_owned)
        .ok_or_else(|| format!("POST /interviewer/: {status} {location:?}"))?;
    let start_ms = ms(t0.elapsed());
    let t1 = Instant::now();
    let resp = client
        .post(format!("{base}{session}"))
        .header(COOKIE, jar.header())
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("answer", ANSWER),
            ("action", "answer"),
        ])
        .send()
        .await
        .map_err(|e| format!("POST answer: {e}"))?;
    jar.absorb(resp.headers());
    let status = resp.status();
    let location = location_of(resp.headers());
    let _ = resp.bytes().await;
    let answer_ms = ms(t1.elapsed());
    let n = location
        .as_deref()
        .filter(|_| status.as_u16() == 303)
        .and_then(|l| l.split_once("?say="))
        .and_then(|(_, n)| n.parse::<usize>().ok())
        .ok_or_else(|| format!("POST answer: {status} {location:?}"))?;
    Ok(Reader {
        cookie: jar.header(),
        say_url: format!("{base}{session}say/{n}/"),
        start_ms,
        answer_ms,
    })
}

fn location_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Sets up `n` readers, `concurrency` at a time.
async fn setup_many(
    client: &Client,
    base: &str,
    n: usize,
    concurrency: usize,
) -> (Vec<Reader>, BTreeMap<String, usize>) {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, base, gate) = (client.clone(), base.to_owned(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            setup_reader(&client, &base).await
        }));
    }
    let mut readers = Vec::with_capacity(n);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => readers.push(r),
            Ok(Err(e)) => *errors.entry(e).or_default() += 1,
            Err(e) => *errors.entry(e.to_string()).or_default() += 1,
        }
    }
    (readers, errors)
}

// ---------------------------------------------------------------------------------------
// Streams

/// One frame as this tool reads it, from either path.
#[derive(Debug)]
enum Frame {
    Token(String),
    Done,
    Other(String),
}

/// keel's frames: `{"t":"token","text":…}`, `{"t":"done"}`, and `sentence`/`fallback`.
fn keel_frame(data: &str) -> Frame {
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    match v["t"].as_str() {
        Some("token") => Frame::Token(v["text"].as_str().unwrap_or("").to_owned()),
        Some("done") => Frame::Done,
        other => Frame::Other(other.unwrap_or("unparsed").to_owned()),
    }
}

/// The model's frames: `choices[0].delta.content`, `[DONE]`.
fn model_frame(data: &str) -> Frame {
    if data.trim() == "[DONE]" {
        return Frame::Done;
    }
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    match v["choices"][0]["delta"]["content"].as_str() {
        Some(text) => Frame::Token(text.to_owned()),
        None => Frame::Other("no content".into()),
    }
}

/// `[cCALL:SEQ@MICROS] ` → (call, seq, µs).
fn parse_token(text: &str) -> Option<(u64, usize, u64)> {
    let inner = text.trim().strip_prefix("[c")?.strip_suffix(']')?;
    let (call, rest) = inner.split_once(':')?;
    let (seq, at) = rest.split_once('@')?;
    Some((call.parse().ok()?, seq.parse().ok()?, at.parse().ok()?))
}

/// What one stream saw.
#[derive(Debug, Default)]
struct StreamSeen {
    /// Each token's delay, ms.
    delays: Vec<f64>,
    /// Each token's arrival, wall µs.
    arrivals: Vec<u64>,
    tokens: usize,
    /// Tokens whose index was not the next expected one, or of another call.
    out_of_order: usize,
    other_frames: BTreeMap<String, usize>,
    done: bool,
    /// Request sent → response headers; → first token; last token → `done`.
    open_ms: f64,
    first_token_ms: Option<f64>,
    last_to_done_ms: Option<f64>,
    /// Body chunks read.
    reads: u64,
    error: Option<String>,
}

/// Reads one stream to its end, `done` or the deadline.
async fn read_stream(
    req: RequestBuilder,
    parse: fn(&str) -> Frame,
    open: Arc<AtomicUsize>,
    wait: Duration,
) -> StreamSeen {
    let mut seen = StreamSeen::default();
    let t0 = Instant::now();
    let run = async {
        let mut resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                seen.error = Some(format!("status {}", r.status()));
                return;
            }
            Err(e) => {
                seen.error = Some(format!("send: {e}"));
                return;
            }
        };
        seen.open_ms = ms(t0.elapsed());
        let _open = Open::new(open);
        let mut buf: Vec<u8> = Vec::new();
        let mut call = None;
        let mut last_token_at = None;
        'read: loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    seen.error = Some(format!("read: {e}"));
                    break;
                }
            };
            let arrived = now_us();
            let at = Instant::now();
            seen.reads += 1;
            buf.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(p) = buf[start..].windows(2).position(|w| w == b"\n\n") {
                let event = String::from_utf8_lossy(&buf[start..start + p]).into_owned();
                start += p + 2;
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                match parse(&data.join("\n")) {
                    Frame::Token(text) => {
                        let Some((c, seq, sent)) = parse_token(&text) else {
                            *seen
                                .other_frames
                                .entry("unparsed token".into())
                                .or_default() += 1;
                            continue;
                        };
                        if *call.get_or_insert(c) != c || seq != seen.tokens {
                            seen.out_of_order += 1;
                        }
                        seen.tokens += 1;
                        seen.delays.push((arrived as f64 - sent as f64) / 1000.0);
                        seen.arrivals.push(arrived);
                        if seen.first_token_ms.is_none() {
                            seen.first_token_ms = Some(ms(at - t0));
                        }
                        last_token_at = Some(at);
                    }
                    Frame::Done => {
                        seen.done = true;
                        seen.last_to_done_ms = last_token_at.map(|l| ms(at - l));
                        break 'read;
                    }
                    Frame::Other(kind) => *seen.other_frames.entry(kind).or_default() += 1,
                }
            }
            buf.drain(..start);
        }
    };
    if tokio::time::timeout(wait, run).await.is_err() {
        seen.error = Some("timed out".into());
    }
    seen
}

/// Counts a stream as open from its response headers until it ends (or is dropped).
#[derive(Debug)]
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: Arc<AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::Relaxed);
        Open(count)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Opens one stream per request at once and reads them all, sampling keel's VmRSS and
/// the open streams every 10 ms meanwhile.
async fn run_streams(
    label: &str,
    reqs: Vec<RequestBuilder>,
    parse: fn(&str) -> Frame,
    tokens: usize,
    wait: Duration,
    cpu: &Cpu,
    lag: &Mutex<Vec<(u64, f64)>>,
) -> Value {
    let n = reqs.len();
    let open = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (open, stop, pid) = (open.clone(), stop.clone(), cpu.server);
        tokio::spawn(async move {
            let mut samples: Vec<(usize, u64)> = Vec::new();
            let mut cpu: Vec<(u64, u64)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let rss = pid.and_then(rss_kib).unwrap_or(0);
                samples.push((open.load(Ordering::Relaxed), rss));
                let ns = pid.map_or(0, |p| cpu_ns_split(&p.to_string(), "").1);
                cpu.push((now_us(), ns));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (samples, cpu)
        })
    };
    let mark = cpu.mark();
    let from = now_us();
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|req| tokio::spawn(read_stream(req, parse, open.clone(), wait)))
        .collect();
    let mut seen = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(s) = t.await {
            seen.push(s);
        }
    }
    let cpu_json = cpu.since(mark);
    stop.store(true, Ordering::Relaxed);
    let (samples, keel_cpu) = sampler.await.unwrap_or_default();
    let to = now_us();
    let timeline = timeline(&seen, &keel_cpu, from);

    let mut delays = Vec::with_capacity(n * tokens);
    let (mut received, mut out_of_order, mut complete, mut done, mut reads) = (0, 0, 0, 0, 0);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut other: BTreeMap<String, usize> = BTreeMap::new();
    let (mut open_ms, mut first_ms, mut done_gap) = (Vec::new(), Vec::new(), Vec::new());
    for s in &seen {
        delays.extend_from_slice(&s.delays);
        received += s.tokens;
        out_of_order += s.out_of_order;
        done += usize::from(s.done);
        complete += usize::from(s.done && s.tokens == tokens && s.out_of_order == 0);
        reads += s.reads;
        if let Some(e) = &s.error {
            *errors.entry(e.clone()).or_default() += 1;
        }
        for (k, v) in &s.other_frames {
            *other.entry(k.clone()).or_default() += v;
        }
        if s.error.is_none() || s.open_ms > 0.0 {
            open_ms.push(s.open_ms);
        }
        first_ms.extend(s.first_token_ms);
        done_gap.extend(s.last_to_done_ms);
    }
    let max_open = samples.iter().map(|(o, _)| *o).max().unwrap_or(0);
    let rss_at_max_open = samples
        .iter()
        .filter(|(o, _)| *o == max_open)
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(0);
    let rss_peak = samples.iter().map(|(_, r)| *r).max().unwrap_or(0);
    let delay = Stats::of(delays);
    eprintln!(
        "interview_stream: {label}: {complete}/{n} streams complete, tokens {received}/{}, delay p50 {:.2} p99 {:.2} max {:.2} ms, max open {max_open}",
        n * tokens,
        delay.p50,
        delay.p99,
        delay.max
    );
    json!({
        "label": label, "streams": n, "tokens_per_stream": tokens,
        "tokens_expected": n * tokens, "tokens_received": received,
        "tokens_lost": (n * tokens).saturating_sub(received),
        "tokens_out_of_order": out_of_order, "streams_complete": complete, "streams_done": done,
        "errors": errors, "other_frames": other, "body_reads": reads,
        "delay": delay.json(),
        "open": Stats::of(open_ms).json(),
        "first_token": Stats::of(first_ms).json(),
        "last_token_to_done": Stats::of(done_gap).json(),
        "max_open_streams": max_open, "keel_rss_kib_at_max_open": rss_at_max_open,
        "keel_rss_kib_peak": rss_peak, "rss_samples": samples.len(),
        "cpu": cpu_json,
        "readers_runtime_lag": lag_between(lag, from, to),
        "timeline_100ms": timeline,
    })
}

/// Per 100 ms since the streams were opened: tokens arrived, their delays, keel's CPU.
fn timeline(seen: &[StreamSeen], keel_cpu: &[(u64, u64)], from: u64) -> Vec<Value> {
    let bucket = |at: u64| usize::try_from(at.saturating_sub(from) / 100_000).unwrap_or(0);
    let mut delays: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for s in seen {
        for (at, d) in s.arrivals.iter().zip(&s.delays) {
            delays.entry(bucket(*at)).or_default().push(*d);
        }
    }
    // keel's CPU in each bucket: the last sample of the bucket minus the last before it.
    let mut cpu_at: BTreeMap<usize, u64> = BTreeMap::new();
    for (at, ns) in keel_cpu {
        cpu_at.insert(bucket(*at), *ns);
    }
    let first = keel_cpu.first().map_or(0, |(_, ns)| *ns);
    let mut last = first;
    let mut out = Vec::new();
    for (b, v) in delays {
        let ns = cpu_at.range(..=b).next_back().map_or(last, |(_, ns)| *ns);
        let st = Stats::of(v);
        out.push(json!({
            "from_ms": b * 100, "tokens": st.n, "p50_ms": r2(st.p50), "p99_ms": r2(st.p99),
            "max_ms": r2(st.max), "keel_cpu_ms": r2(ns.saturating_sub(last) as f64 / 1e6),
        }));
        last = ns;
    }
    out
}

fn keel_requests(client: &Client, readers: &[Reader]) -> Vec<RequestBuilder> {
    readers
        .iter()
        .map(|r| {
            client
                .get(&r.say_url)
                .header(COOKIE, &r.cookie)
                .header(ACCEPT, "text/event-stream")
        })
        .collect()
}

fn bare_requests(client: &Client, model_url: &str, n: usize) -> Vec<RequestBuilder> {
    let body = json!({ "model": "bench", "stream": true, "max_tokens": 300,
                       "messages": [{ "role": "user", "content": "Say it." }] })
    .to_string();
    (0..n)
        .map(|_| {
            client
                .post(model_url)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "text/event-stream")
                .body(body.clone())
        })
        .collect()
}

fn setup_json(readers: &[Reader], errors: &BTreeMap<String, usize>, cpu: Value) -> Value {
    json!({
        "ready": readers.len(), "errors": errors,
        "start_get_plus_post": Stats::of(readers.iter().map(|r| r.start_ms).collect()).json(),
        "answer_post": Stats::of(readers.iter().map(|r| r.answer_ms).collect()).json(),
        "cpu": cpu,
    })
}

// ---------------------------------------------------------------------------------------
// The run

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let model = Arc::new(Model {
        tokens: args.tokens,
        interval: Duration::from_millis(args.token_interval_ms),
        streamed: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        completions: AtomicU64::new(0),
        tokens_sent: AtomicU64::new(0),
        late_us: Mutex::new(Vec::new()),
    });
    // The model on a runtime of its own, so that its ticks are not queued behind the
    // readers' work; its threads are named `model` for the CPU split.
    let model_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("model")
        .enable_all()
        .build()?;
    let listener = model_rt.block_on(tokio::net::TcpListener::bind((
        "127.0.0.1",
        args.model_port,
    )))?;
    let model_addr = listener.local_addr()?;
    let app = Router::new()
        .route("/v1/chat/completions", route_post(chat))
        .with_state(model.clone());
    // TCP_NODELAY as keel's edge has: without it a token can wait for the previous one's
    // ACK (Nagle), a whole token interval.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    model_rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("interview_stream: the model server stopped: {e}");
        }
    });
    eprintln!("interview_stream: model on http://{model_addr}/v1");

    let readers_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("reader")
        .enable_all()
        .build()?;
    let report = readers_rt.block_on(run(&args, &model, &format!("http://{model_addr}/v1")))?;
    drop(model_rt);

    print_table(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("interview_stream: written to {}", path.display());
    }
    Ok(())
}

async fn run(args: &Args, model: &Model, model_base: &str) -> Result<Value, Error> {
    let base = args.base.trim_end_matches('/').to_owned();
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()?;
    let cpu = Cpu {
        server: args.server_pid,
    };
    let wait = Duration::from_secs(args.wait_secs);
    let lag = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    start_lag_probe(lag.clone(), stop.clone());
    let rss = || args.server_pid.and_then(rss_kib).unwrap_or(0);
    let whole = cpu.mark();
    let model_url = format!("{model_base}/chat/completions");

    // Right after keel's start (its start-up work may not be given back yet).
    let rss_at_start = rss();
    if args.warmup > 0 {
        let (warm, _) = setup_many(&client, &base, args.warmup, args.concurrency).await;
        let reqs = keel_requests(&client, &warm);
        run_streams("warm-up", reqs, keel_frame, args.tokens, wait, &cpu, &lag).await;
    }

    let mut runs = Vec::new();
    if args.bare_streams > 0 {
        let reqs = bare_requests(&client, &model_url, args.bare_streams);
        runs.push(run_streams("bare", reqs, model_frame, args.tokens, wait, &cpu, &lag).await);
    }
    if args.light > 0 {
        let reqs = bare_requests(&client, &model_url, args.light);
        runs.push(
            run_streams(
                "bare-light",
                reqs,
                model_frame,
                args.tokens,
                wait,
                &cpu,
                &lag,
            )
            .await,
        );
    }
    // keel idle: after the warm-up's few interviews; the bare runs did not touch it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss();

    // Setup: every reader starts an interview and answers once.
    let mark = cpu.mark();
    let (readers, setup_errors) = setup_many(&client, &base, args.readers, args.concurrency).await;
    let setup = setup_json(&readers, &setup_errors, cpu.since(mark));
    eprintln!(
        "interview_stream: setup: {} of {} readers ready, errors {setup_errors:?}",
        readers.len(),
        args.readers
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after_setup = rss();

    // All the readers' streams at once.
    let reqs = keel_requests(&client, &readers);
    let main = run_streams("keel", reqs, keel_frame, args.tokens, wait, &cpu, &lag).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after_streams = rss();
    runs.push(main.clone());

    let mut light_setup = Value::Null;
    if args.light > 0 {
        let mark = cpu.mark();
        let (light_readers, errors) =
            setup_many(&client, &base, args.light, args.concurrency).await;
        light_setup = setup_json(&light_readers, &errors, cpu.since(mark));
        let reqs = keel_requests(&client, &light_readers);
        runs.push(
            run_streams(
                "keel-light",
                reqs,
                keel_frame,
                args.tokens,
                wait,
                &cpu,
                &lag,
            )
            .await,
        );
    }
    let whole_cpu = cpu.since(whole);
    stop.store(true, Ordering::Relaxed);

    let late: Vec<f64> = model
        .late_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|u| f64::from(*u) / 1000.0)
        .collect();
    let open = main["max_open_streams"].as_u64().unwrap_or(0);
    let at_open = main["keel_rss_kib_at_max_open"].as_u64().unwrap_or(0);
    let per = |from: u64| {
        if open == 0 {
            Value::Null
        } else {
            json!(r2(at_open.saturating_sub(from) as f64 / open as f64))
        }
    };
    Ok(json!({
        "base": base, "model": model_base, "readers": args.readers, "bare_streams": args.bare_streams,
        "light": args.light, "warmup": args.warmup, "tokens": args.tokens, "token_interval_ms": args.token_interval_ms,
        "concurrency": args.concurrency,
        "model_server": {
            "streamed_calls": model.streamed.load(Ordering::Relaxed),
            "streamed_calls_finished": model.finished.load(Ordering::Relaxed),
            "completion_calls": model.completions.load(Ordering::Relaxed),
            "tokens_sent": model.tokens_sent.load(Ordering::Relaxed),
            "token_lateness_vs_schedule": Stats::of(late).json(),
        },
        "setup": setup,
        "light_setup": light_setup,
        "runs": runs,
        "memory": {
            "keel_rss_kib_idle": rss_idle,
            "keel_rss_kib_at_start": rss_at_start,
            "keel_rss_kib_after_setup": rss_after_setup,
            "keel_rss_kib_at_max_open": at_open,
            "keel_rss_kib_peak": main["keel_rss_kib_peak"],
            "keel_rss_kib_after_streams": rss_after_streams,
            "max_open_streams": open,
            "kib_per_session_vs_idle": per(rss_idle),
            "kib_per_stream_vs_after_setup": per(rss_after_setup),
        },
        "whole_run": whole_cpu,
    }))
}

fn f(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    match at {
        Value::Number(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_table(r: &Value) {
    println!(
        "{} readers · {} tokens per reply every {} ms · bare streams {} · light {}",
        f(r, &["readers"]),
        f(r, &["tokens"]),
        f(r, &["token_interval_ms"]),
        f(r, &["bare_streams"]),
        f(r, &["light"])
    );
    println!();
    println!("| run | streams complete | tokens received / expected | out of order | token delay p50 | p90 | p99 | p99.9 | max | max open | keel CPU ms | model CPU ms | readers CPU ms | machine busy | readers' runtime lag p99 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    if let Some(runs) = r["runs"].as_array() {
        for x in runs {
            println!(
                "| {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} % | {} |",
                f(x, &["label"]),
                f(x, &["streams_complete"]),
                f(x, &["streams"]),
                f(x, &["tokens_received"]),
                f(x, &["tokens_expected"]),
                f(x, &["tokens_out_of_order"]),
                f(x, &["delay", "p50_ms"]),
                f(x, &["delay", "p90_ms"]),
                f(x, &["delay", "p99_ms"]),
                f(x, &["delay", "p999_ms"]),
                f(x, &["delay", "max_ms"]),
                f(x, &["max_open_streams"]),
                f(x, &["cpu", "keel_cpu_ms"]),
                f(x, &["cpu", "model_cpu_ms"]),
                f(x, &["cpu", "readers_cpu_ms"]),
                f(x, &["cpu", "machine_busy_pct"]),
                f(x, &["readers_runtime_lag", "p99_ms"]),
            );
        }
    }
    println!();
    println!(
        "setup: {} ready; start p50 {} / p99 {} ms; answer p50 {} / p99 {} ms. keel RSS KiB: idle {}, after setup {}, at max open {} ({} streams), peak {}, after {}.",
        f(r, &["setup", "ready"]),
        f(r, &["setup", "start_get_plus_post", "p50_ms"]),
        f(r, &["setup", "start_get_plus_post", "p99_ms"]),
        f(r, &["setup", "answer_post", "p50_ms"]),
        f(r, &["setup", "answer_post", "p99_ms"]),
        f(r, &["memory", "keel_rss_kib_idle"]),
        f(r, &["memory", "keel_rss_kib_after_setup"]),
        f(r, &["memory", "keel_rss_kib_at_max_open"]),
        f(r, &["memory", "max_open_streams"]),
        f(r, &["memory", "keel_rss_kib_peak"]),
        f(r, &["memory", "keel_rss_kib_after_streams"]),
    );
}
