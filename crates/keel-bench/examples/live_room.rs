//! One live quiz room with many players, end to end over HTTP: issue 17's targets (no
//! answer lost; a question reaches every player within 100 ms at p99 with 1,000 players).
//!
//! ```text
//! cargo run --release -p keel-bench --example live_room -- --base http://127.0.0.1:PORT \
//!   --players 1000 --admin admin --password-file FILE --quiz-id N --questions 3 --json OUT \
//!   [--server-pid PID]
//! ```
//!
//! What it does, in order, as a host and a crowd of phones would:
//! 1. **Host.** Logs in as staff (`/accounts/login/`, CSRF cookie and field) and opens a room
//!    (`POST /admin/quizzes/N/live/`), reading the PIN from the redirect.
//! 2. **Join.** Each player has its own cookie jar: `GET /quizzes/live/` for a CSRF cookie,
//!    then `POST /quizzes/live/` with the PIN and a nickname (`p0000`…) for its `keel_live`
//!    cookie, `--concurrency` players at a time.
//! 3. **Listen.** One Server-Sent Events stream per player on
//!    `/quizzes/live/PIN/events/`, each its own connection; a stream counts as connected when
//!    its first bytes (the `retry:` hint, sent once the hub has subscribed it) arrive. A
//!    stream that ends is reopened after the server's `retry:` hint with `Last-Event-ID`, as
//!    `EventSource` does, and counted.
//! 4. **Each question.** The host posts `next`; every stream's arrival time of the question
//!    event, minus the event's `sent_ms` (the server's clock when it moved the room, the
//!    same machine clock), is its **fan-out delay**. Then every player loads its page (as
//!    the browser's reload does), parses the form (question id, a choice), and all answer
//!    with their starts spread evenly over `--answer-window-ms`, concurrently: answer
//!    latency and statuses. Every accepted answer publishes a tally event to every stream;
//!    the run waits until each stream has seen `answered` equal to the accepted answers (or
//!    `--wait-secs`), then for the tallies to stop, and checks each stream's *last* tally.
//!    The host posts `reveal`: the reveal event's fan-out delay; the host screen's "K of N
//!    right" is read once.
//! 5. **Podium.** The host posts `finish`; the podium event's delay.
//!
//! `--listeners K` opens streams for the first K players only, while every player still
//! joins, loads its page and answers: with `--listeners 1` the answers' tallies reach one
//! stream instead of every player's, a control run for what the tally fan-out costs.
//!
//! With `--server-pid`, the CPU time of the server and of this process is read per phase
//! from `/proc/PID/task/*/schedstat` (nanoseconds on CPU, every live thread).
//!
//! Everything is bounded: `--players`, `--questions`, and every wait by `--wait-secs`.
//! Delays are in milliseconds; `sent_ms` is whole milliseconds (truncated), so a delay
//! reads up to 1 ms high.

mod common;

use common::{ms, r2, Jar, Stats};

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use reqwest::header::{ACCEPT, COOKIE, LOCATION};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(about = "One live quiz room with N players: fan-out delays, answers, tallies")]
struct Args {
    /// The keel serve to load, e.g. http://127.0.0.1:8000
    #[arg(long)]
    base: String,
    /// Players in the room (one cookie jar and one event stream each)
    #[arg(long, default_value_t = 1000)]
    players: usize,
    /// The staff user who hosts
    #[arg(long, default_value = "admin")]
    admin: String,
    /// A file whose first line is the staff user's password
    #[arg(long)]
    password_file: PathBuf,
    /// The quiz to play (an id from /admin/quizzes/)
    #[arg(long)]
    quiz_id: i64,
    /// Questions to play (fewer when the room has fewer)
    #[arg(long, default_value_t = 3)]
    questions: usize,
    /// Seconds per question of the room
    #[arg(long, default_value_t = 30)]
    seconds: u32,
    /// Joins, page loads and stream connects in flight at once
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// The players' answers start evenly spread over this many milliseconds
    #[arg(long, default_value_t = 1000)]
    answer_window_ms: u64,
    /// Upper bound of each wait for events, in seconds
    #[arg(long, default_value_t = 10)]
    wait_secs: u64,
    /// Players that load their page before answering: all (as the browser's reload does)
    /// or one (everyone answers with player 0's form)
    #[arg(long, default_value = "all", value_parser = ["all", "one"])]
    page_loads: String,
    /// Event streams to open, one per player from the first [default: every player]; fewer
    /// makes a control run that keeps the answers but not the tally fan-out
    #[arg(long)]
    listeners: Option<usize>,
    /// The server's pid, for its CPU time per phase (Linux /proc)
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the results as JSON here
    #[arg(long)]
    json: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// Clocks, statistics, CPU

/// The machine's wall clock in (fractional) Unix milliseconds, the clock of `sent_ms`.
fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// CPU nanoseconds of every live thread of `pid`.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of the server and of this process over named phases.
#[derive(Debug)]
struct Cpu {
    server: Option<u32>,
    me: u32,
    phases: Mutex<Vec<(String, f64, f64, f64)>>,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    server: u64,
    me: u64,
    at: Instant,
}

impl Cpu {
    fn mark(&self) -> Mark {
        Mark {
            server: self.server.map_or(0, cpu_ns),
            me: cpu_ns(self.me),
            at: Instant::now(),
        }
    }

    /// Records the phase `name` from `since` to now: (server ms, load generator ms, wall ms).
    fn phase(&self, name: &str, since: Mark) -> (f64, f64, f64) {
        let now = self.mark();
        let server = (now.server.saturating_sub(since.server)) as f64 / 1e6;
        let me = (now.me.saturating_sub(since.me)) as f64 / 1e6;
        let wall = ms(now.at - since.at);
        self.phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.to_owned(), server, me, wall));
        (server, me, wall)
    }
}

// ---------------------------------------------------------------------------------------
// HTTP with a cookie jar per player

/// One exchange's outcome.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    location: Option<String>,
    body: String,
    ms: f64,
}

async fn get(client: &Client, url: &str, jar: &mut Jar) -> Result<Reply, Error> {
    let start = Instant::now();
    let mut req = client.get(url);
    if !jar.is_empty() {
        req = req.header(COOKIE, jar.header());
    }
    let resp = req.send().await?;
    finish(resp, jar, start).await
}

async fn post(
    client: &Client,
    url: &str,
    jar: &mut Jar,
    fields: &[(&str, &str)],
    json_reply: bool,
) -> Result<Reply, Error> {
    let start = Instant::now();
    let mut req = client.post(url).form(fields);
    if !jar.is_empty() {
        req = req.header(COOKIE, jar.header());
    }
    if json_reply {
        req = req.header(ACCEPT, "application/json");
    }
    let resp = req.send().await?;
    finish(resp, jar, start).await
}

async fn finish(resp: reqwest::Response, jar: &mut Jar, start: Instant) -> Result<Reply, Error> {
    let status = resp.status();
    jar.absorb(resp.headers());
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.text().await?;
    Ok(Reply {
        status,
        location,
        body,
        ms: ms(start.elapsed()),
    })
}

// ---------------------------------------------------------------------------------------
// The player's page

/// What a player sends for the question on its page.
#[derive(Debug, Clone)]
struct AnswerForm {
    index: String,
    field: String,
    value: String,
}

/// The value of `attr="…"` at the start of `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

/// Parses the answer form of `/quizzes/live/PIN/`: the hidden `index`, the field `qID`
/// and its values (buttons or checkboxes; a text input gets "1"). Player `pick` takes the
/// value `pick % values`, so the crowd spreads over the choices.
fn parse_form(html: &str, pick: usize) -> Option<AnswerForm> {
    let form_at = html.find("class=\"live-answer\"")?;
    let form = &html[form_at..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let mut index = None;
    let mut field = None;
    let mut values = Vec::new();
    for piece in form.split('<').skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        let Some(name) = attr(tag, "name") else {
            continue;
        };
        if name == "index" {
            index = attr(tag, "value").map(str::to_owned);
        } else if name.starts_with('q') && name[1..].bytes().all(|b| b.is_ascii_digit()) {
            field.get_or_insert_with(|| name.to_owned());
            values.push(attr(tag, "value").unwrap_or("1").to_owned());
        }
    }
    let value = values.get(pick % values.len().max(1))?.clone();
    Some(AnswerForm {
        index: index?,
        field: field?,
        value,
    })
}

/// "K of N right." on the host screen in the reveal.
fn parse_right(html: &str) -> Option<(i64, i64)> {
    let end = html.find(" right.</p>")?;
    let start = html[..end].rfind('>')? + 1;
    let (k, n) = html[start..end].split_once(" of ")?;
    Some((k.trim().parse().ok()?, n.trim().parse().ok()?))
}

// ---------------------------------------------------------------------------------------
// The event streams

/// What one stream saw, per question index.
#[derive(Debug, Default)]
struct StreamLog {
    /// Fan-out delay of the question event of each index (the first one seen).
    question: BTreeMap<i64, f64>,
    /// Of the reveal event of each index.
    reveal: BTreeMap<i64, f64>,
    podium: Option<f64>,
    /// Every tally event's delay, per index.
    tally_delays: BTreeMap<i64, Vec<f32>>,
    /// The last and the largest `answered` of each index's tallies, and how many came.
    tally_last: BTreeMap<i64, i64>,
    tally_max: BTreeMap<i64, i64>,
    tally_count: BTreeMap<i64, u64>,
    players_events: u64,
    /// Tallies whose `answered` was below one this stream had already seen for the index:
    /// published out of order.
    tally_backwards: BTreeMap<i64, u64>,
    /// Body chunks (HTTP/1.1 chunked framing, after decoding) and the events they carried.
    reads: u64,
    events: u64,
    duplicate_questions: u64,
    /// Times the stream ended or broke and was reopened.
    reconnects: u64,
    /// Of those, ends announced as "fell too far behind".
    closed_slow: u64,
    errors: Vec<String>,
}

/// Counters the coordinator waits on.
#[derive(Debug)]
struct Progress {
    connected: AtomicUsize,
    question: Vec<AtomicUsize>,
    reveal: Vec<AtomicUsize>,
    podium: AtomicUsize,
    /// Streams that have seen a tally with `answered >= tally_target[index]`.
    tally_full: Vec<AtomicUsize>,
    tally_target: Vec<AtomicU64>,
    /// Tally events received by every stream together, and when the last came.
    tally_events: AtomicU64,
    /// The room's question count, from the first question event.
    total: AtomicU64,
    stop: AtomicBool,
}

impl Progress {
    fn new(questions: usize) -> Progress {
        let many = |n: usize| (0..n).map(|_| AtomicUsize::new(0)).collect();
        Progress {
            connected: AtomicUsize::new(0),
            question: many(questions),
            reveal: many(questions),
            podium: AtomicUsize::new(0),
            tally_full: many(questions),
            tally_target: (0..questions).map(|_| AtomicU64::new(u64::MAX)).collect(),
            tally_events: AtomicU64::new(0),
            total: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

/// One event's JSON, as far as this tool reads it.
#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    index: Option<i64>,
    answered: Option<i64>,
    total: Option<u64>,
    sent_ms: Option<i64>,
}

fn slot(v: &[AtomicUsize], index: i64) -> Option<&AtomicUsize> {
    usize::try_from(index).ok().and_then(|i| v.get(i))
}

/// Handles one dispatched event's `data`.
fn on_event(data: &str, arrived: f64, log: &Mutex<StreamLog>, progress: &Progress) {
    let Ok(ev) = serde_json::from_str::<Event<'_>>(data) else {
        return;
    };
    let delay = ev.sent_ms.map_or(f64::NAN, |s| arrived - s as f64);
    let index = ev.index.unwrap_or(-1);
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    log.events += 1;
    match ev.kind {
        "question" => {
            if let Some(t) = ev.total {
                progress.total.store(t, Ordering::Relaxed);
            }
            if let Entry::Vacant(slot_of) = log.question.entry(index) {
                slot_of.insert(delay);
                if let Some(c) = slot(&progress.question, index) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                log.duplicate_questions += 1;
            }
        }
        "reveal" => {
            if let Entry::Vacant(slot_of) = log.reveal.entry(index) {
                slot_of.insert(delay);
                if let Some(c) = slot(&progress.reveal, index) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        "podium" if log.podium.is_none() => {
            log.podium = Some(delay);
            progress.podium.fetch_add(1, Ordering::Relaxed);
        }
        "tally" => {
            let answered = ev.answered.unwrap_or(0);
            log.tally_delays
                .entry(index)
                .or_default()
                .push(delay as f32);
            *log.tally_count.entry(index).or_default() += 1;
            log.tally_last.insert(index, answered);
            let before = log.tally_max.get(&index).copied().unwrap_or(-1);
            if answered > before {
                log.tally_max.insert(index, answered);
            } else if answered < before {
                *log.tally_backwards.entry(index).or_default() += 1;
            }
            progress.tally_events.fetch_add(1, Ordering::Relaxed);
            if let Ok(i) = usize::try_from(index) {
                if let (Some(target), Some(full)) =
                    (progress.tally_target.get(i), progress.tally_full.get(i))
                {
                    let target = target.load(Ordering::Relaxed);
                    let a = u64::try_from(answered).unwrap_or(0);
                    if a >= target && u64::try_from(before).map_or(true, |b| b < target) {
                        full.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        "players" => log.players_events += 1,
        _ => {}
    }
}

/// An incremental event-stream parser: `data:` and `id:` fields, dispatch on a blank
/// line, comments and `retry:` noted.
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    /// Feeds one chunk; calls `dispatch(data)` for each complete event and `comment(text)`
    /// for each comment.
    fn feed(
        &mut self,
        chunk: &[u8],
        mut dispatch: impl FnMut(&str),
        mut comment: impl FnMut(&str),
    ) {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.pending[start..start + nl];
            start += nl + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line);
            if line.is_empty() {
                if self.has_data {
                    dispatch(&self.data);
                }
                self.data.clear();
                self.has_data = false;
            } else if let Some(text) = line.strip_prefix(':') {
                comment(text.trim());
            } else {
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (&*line, ""),
                };
                match field {
                    "data" => {
                        if self.has_data {
                            self.data.push('\n');
                        }
                        self.data.push_str(value);
                        self.has_data = true;
                    }
                    "id" => self.last_id = Some(value.to_owned()),
                    "retry" => self.retry_ms = value.trim().parse().ok(),
                    _ => {}
                }
            }
        }
        self.pending.drain(..start);
    }
}

/// One player's stream, reopened (after the `retry:` hint, with `Last-Event-ID`) whenever
/// it ends, until the run stops.
async fn stream_task(
    client: Client,
    url: String,
    log: Arc<Mutex<StreamLog>>,
    progress: Arc<Progress>,
    connected: Arc<Semaphore>,
) {
    let mut parser = SseParser::default();
    let mut first = true;
    let mut permit = Some(connected);
    while !progress.stop.load(Ordering::Relaxed) {
        if !first {
            let wait = parser.retry_ms.unwrap_or(3000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reconnects += 1;
        }
        first = false;
        let mut req = client.get(&url).header(ACCEPT, "text/event-stream");
        if let Some(id) = &parser.last_id {
            req = req.header("Last-Event-ID", id.as_str());
        }
        let mut resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let e = format!("status {}", r.status());
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .errors
                    .push(e);
                continue;
            }
            Err(e) => {
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .errors
                    .push(e.to_string());
                continue;
            }
        };
        parser.pending.clear();
        parser.data.clear();
        parser.has_data = false;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let arrived = wall_ms();
                    log.lock().unwrap_or_else(PoisonError::into_inner).reads += 1;
                    if let Some(gate) = permit.take() {
                        progress.connected.fetch_add(1, Ordering::Relaxed);
                        gate.add_permits(1);
                    }
                    let mut slow = false;
                    parser.feed(
                        &chunk,
                        |data| on_event(data, arrived, &log, &progress),
                        |text| slow |= text.contains("behind"),
                    );
                    if slow {
                        log.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .closed_slow += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .errors
                        .push(e.to_string());
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The run

/// Polls `done` every 2 ms until it holds or `within` has passed; the time it took.
async fn wait_for(within: Duration, done: impl Fn() -> bool) -> (bool, f64) {
    let start = Instant::now();
    loop {
        if done() {
            return (true, ms(start.elapsed()));
        }
        if start.elapsed() >= within {
            return (false, ms(start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Scheduling lag of this process's runtime: a task that asks to wake every 5 ms records
/// how late it woke. Shows when the load generator, not the server, is behind.
fn start_lag_probe(samples: Arc<Mutex<Vec<(f64, f64)>>>, stop: Arc<Progress>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_millis(5);
        let mut next = Instant::now() + period;
        while !stop.stop.load(Ordering::Relaxed) {
            tokio::time::sleep_until(next.into()).await;
            let late = ms(Instant::now().saturating_duration_since(next));
            samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((wall_ms(), late));
            next = Instant::now() + period;
        }
    })
}

fn lag_between(samples: &Mutex<Vec<(f64, f64)>>, from: f64, to: f64) -> Stats {
    let v = samples.lock().unwrap_or_else(PoisonError::into_inner);
    Stats::of(
        v.iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, late)| *late)
            .collect(),
    )
}

fn count_statuses(statuses: &[Result<u16, String>]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in statuses {
        let key = match s {
            Ok(code) => code.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *out.entry(key).or_default() += 1;
    }
    out
}

struct Player {
    jar: Jar,
}

async fn host_move(
    client: &Client,
    base: &str,
    pin: &str,
    host: &mut Jar,
    action: &str,
    index: i64,
) -> Result<f64, Error> {
    let csrf = host.csrf();
    let index = index.to_string();
    let r = post(
        client,
        &format!("{base}/quizzes/live/{pin}/host/"),
        host,
        &[("csrf_token", &csrf), ("action", action), ("index", &index)],
        false,
    )
    .await?;
    if r.status != StatusCode::SEE_OTHER {
        return Err(format!("host {action} at {index}: status {}: {}", r.status, r.body).into());
    }
    Ok(r.ms)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("live_room: {e}");
        std::process::exit(1);
    }
}

#[allow(clippy::too_many_lines)]
async fn run(args: Args) -> Result<(), Error> {
    let base = args.base.trim_end_matches('/').to_owned();
    let n = args.players;
    let wait = Duration::from_secs(args.wait_secs);
    let password = std::fs::read_to_string(&args.password_file)?
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let cpu = Cpu {
        server: args.server_pid,
        me: std::process::id(),
        phases: Mutex::new(Vec::new()),
    };
    let run_start = cpu.mark();
    // Requests: no redirects followed (the 303s are the answers), idle connections dropped
    // before keel's 5 s keep-alive closes them.
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    // Streams: no overall timeout; one connection each.
    let sse_client = Client::builder()
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .build()?;

    // 1. The host logs in and opens a room.
    let mut host = Jar::default();
    let login = format!("{base}/accounts/login/");
    get(&client, &login, &mut host).await?;
    let csrf = host.csrf();
    let r = post(
        &client,
        &login,
        &mut host,
        &[
            ("csrf_token", &csrf),
            ("username", &args.admin),
            ("password", &password),
        ],
        false,
    )
    .await?;
    if r.status != StatusCode::SEE_OTHER || host.get("keel_session").is_none() {
        return Err(format!("login as {} failed: status {}", args.admin, r.status).into());
    }
    // Logging in rotates the CSRF cookie, as Django's login does.
    let csrf = host.csrf();
    let seconds = args.seconds.to_string();
    let r = post(
        &client,
        &format!("{base}/admin/quizzes/{}/live/", args.quiz_id),
        &mut host,
        &[("csrf_token", &csrf), ("seconds", &seconds)],
        false,
    )
    .await?;
    let pin = r
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/quizzes/live/"))
        .and_then(|l| l.strip_suffix("/host/"))
        .map(str::to_owned)
        .ok_or_else(|| format!("opening a room: status {}: {}", r.status, r.body))?;
    eprintln!("live_room: room {pin} opened; {n} players join");

    // 2. The players join.
    let mark = cpu.mark();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut joins = Vec::with_capacity(n);
    for i in 0..n {
        let (client, base, pin, gate) = (client.clone(), base.clone(), pin.clone(), gate.clone());
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut jar = Jar::default();
            let url = format!("{base}/quizzes/live/");
            let start = Instant::now();
            let nickname = format!("p{i:04}");
            let result: Result<u16, Error> = async {
                let r = get(&client, &url, &mut jar).await?;
                if !r.status.is_success() {
                    return Ok(r.status.as_u16());
                }
                let csrf = jar.csrf();
                let r = post(
                    &client,
                    &url,
                    &mut jar,
                    &[
                        ("csrf_token", &csrf),
                        ("pin", &pin),
                        ("nickname", &nickname),
                    ],
                    false,
                )
                .await?;
                Ok(r.status.as_u16())
            }
            .await;
            let joined = matches!(result, Ok(303)) && jar.get("keel_live").is_some();
            (
                result.map_err(|e| e.to_string()),
                ms(start.elapsed()),
                joined.then_some(Player { jar }),
            )
        }));
    }
    let mut join_status = Vec::new();
    let mut join_ms = Vec::new();
    let mut players = Vec::new();
    for j in joins {
        let (status, took, player) = j.await?;
        join_status.push(status);
        join_ms.push(took);
        players.extend(player);
    }
    let (join_server, join_me, join_wall) = cpu.phase("join", mark);
    let join_stats = Stats::of(join_ms);
    eprintln!(
        "live_room: {} of {n} joined in {:.1} s (GET + POST p50 {:.1} ms, p99 {:.1} ms)",
        players.len(),
        join_wall / 1000.0,
        join_stats.p50,
        join_stats.p99
    );
    if players.is_empty() {
        return Err(format!("no player joined: {:?}", count_statuses(&join_status)).into());
    }
    let players = Arc::new(players);
    let joined = players.len();
    let listeners = args.listeners.map_or(joined, |l| l.clamp(1, joined));

    // 3. One event stream per player.
    let questions = args.questions.max(1);
    let progress = Arc::new(Progress::new(questions));
    let lag = Arc::new(Mutex::new(Vec::new()));
    let lag_probe = start_lag_probe(lag.clone(), progress.clone());
    let mark = cpu.mark();
    let events_url = format!("{base}/quizzes/live/{pin}/events/");
    let connecting = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut logs = Vec::with_capacity(listeners);
    let mut streams = Vec::with_capacity(listeners);
    for _ in 0..listeners {
        let log = Arc::new(Mutex::new(StreamLog::default()));
        logs.push(log.clone());
        // A permit per connect in flight, handed back by the stream once its first bytes
        // arrive (forgotten here, added back there).
        if let Ok(Ok(p)) = tokio::time::timeout(wait, connecting.clone().acquire_owned()).await {
            p.forget();
        }
        streams.push(tokio::spawn(stream_task(
            sse_client.clone(),
            events_url.clone(),
            log,
            progress.clone(),
            connecting.clone(),
        )));
    }
    let (all_connected, connect_wait) = wait_for(wait, || {
        progress.connected.load(Ordering::Relaxed) >= listeners
    })
    .await;
    let (connect_server, connect_me, connect_wall) = cpu.phase("connect streams", mark);
    let connected = progress.connected.load(Ordering::Relaxed);
    eprintln!(
        "live_room: {connected} of {listeners} streams connected in {:.1} s{}",
        connect_wall / 1000.0,
        if all_connected { "" } else { " (timed out)" }
    );
    let _ = connect_wait;

    // 4. The questions.
    let mut per_question = Vec::new();
    let mut total = questions;
    let mut current: i64 = -1;
    for q in 0..questions {
        if q >= total {
            break;
        }
        let qi = i64::try_from(q).unwrap_or(i64::MAX);
        // 4a. next → the question event on every stream.
        let mark = cpu.mark();
        let from = wall_ms();
        let host_next_ms = host_move(&client, &base, &pin, &mut host, "next", current).await?;
        current = qi;
        let (all_q, _) = wait_for(wait, || {
            progress.question[q].load(Ordering::Relaxed) >= listeners
        })
        .await;
        let fan_cpu = cpu.phase(&format!("q{q}: question fan-out"), mark);
        let fan_lag = lag_between(&lag, from, wall_ms());
        let fanout = Stats::of(
            logs.iter()
                .filter_map(|l| {
                    l.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .question
                        .get(&qi)
                        .copied()
                })
                .collect(),
        );
        // The room's question count, from the event.
        if let Ok(t) = usize::try_from(progress.total.load(Ordering::Relaxed)) {
            if t > 0 {
                total = t.min(questions);
            }
        }

        // 4b. Each player loads its page and reads the form.
        let mark = cpu.mark();
        let loaders = if args.page_loads == "all" { joined } else { 1 };
        let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
        let mut loads = Vec::with_capacity(loaders);
        for i in 0..loaders {
            let (client, players, gate) = (client.clone(), players.clone(), gate.clone());
            let url = format!("{base}/quizzes/live/{pin}/");
            loads.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                let mut jar = players[i].jar.clone();
                match get(&client, &url, &mut jar).await {
                    Ok(r) => (Ok(r.status.as_u16()), r.ms, parse_form(&r.body, i)),
                    Err(e) => (Err(e.to_string()), f64::NAN, None),
                }
            }));
        }
        let mut page_status = Vec::new();
        let mut page_ms = Vec::new();
        let mut forms = Vec::new();
        for l in loads {
            let (status, took, form) = l.await?;
            page_status.push(status);
            if took.is_finite() {
                page_ms.push(took);
            }
            forms.push(form);
        }
        let page_cpu = cpu.phase(&format!("q{q}: page loads"), mark);
        let forms: Vec<AnswerForm> = if args.page_loads == "all" {
            forms.into_iter().flatten().collect()
        } else {
            forms.into_iter().flatten().cycle().take(joined).collect()
        };
        if forms.len() < joined {
            eprintln!(
                "live_room: q{q}: {} of {joined} pages had an answer form",
                forms.len()
            );
        }
        let pages = Stats::of(page_ms);

        // 4c. Everyone answers, starts spread over the window.
        let target = u64::try_from(forms.len()).unwrap_or(0);
        progress.tally_target[q].store(target, Ordering::Relaxed);
        let mark = cpu.mark();
        let answers_from = wall_ms();
        let t0 = Instant::now() + Duration::from_millis(5);
        let window = Duration::from_millis(args.answer_window_ms);
        let count = forms.len().max(1);
        let mut sends = Vec::with_capacity(forms.len());
        for (i, form) in forms.iter().cloned().enumerate() {
            let (client, players) = (client.clone(), players.clone());
            let url = format!("{base}/quizzes/live/{pin}/answer/");
            let at = t0 + window.mul_f64(i as f64 / count as f64);
            sends.push(tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                let late = ms(Instant::now().saturating_duration_since(at));
                let mut jar = players[i].jar.clone();
                let csrf = jar.csrf();
                let fields = [
                    ("csrf_token", csrf.as_str()),
                    ("index", form.index.as_str()),
                    (form.field.as_str(), form.value.as_str()),
                ];
                match post(&client, &url, &mut jar, &fields, true).await {
                    Ok(r) => (Ok(r.status.as_u16()), r.ms, late, r.body),
                    Err(e) => (Err(e.to_string()), f64::NAN, late, String::new()),
                }
            }));
        }
        let mut answer_status = Vec::new();
        let mut answer_ms = Vec::new();
        let mut start_late = Vec::new();
        let mut accepted = 0u64;
        let mut sample_refusal = None;
        for s in sends {
            let (status, took, late, body) = s.await?;
            if status == Ok(200) && body.contains("\"accepted\":true") {
                accepted += 1;
            } else if sample_refusal.is_none() {
                sample_refusal = Some(format!(
                    "{status:?}: {}",
                    body.chars().take(200).collect::<String>()
                ));
            }
            answer_status.push(status);
            if took.is_finite() {
                answer_ms.push(took);
            }
            start_late.push(late);
        }
        let answers_span = ms(t0.elapsed());
        if accepted != target {
            progress.tally_target[q].store(accepted, Ordering::Relaxed);
            // Streams that already passed the lower target are counted again below.
        }
        // 4d. Every stream's tallies reach the accepted count; then wait for them to stop.
        let (all_tallied, tally_wait) = wait_for(wait, || {
            progress.tally_full[q].load(Ordering::Relaxed) >= listeners
                || logs.iter().all(|l| {
                    l.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .tally_max
                        .get(&qi)
                        .is_some_and(|m| u64::try_from(*m).unwrap_or(0) >= accepted)
                })
        })
        .await;
        let mut quiet_since = (
            progress.tally_events.load(Ordering::Relaxed),
            Instant::now(),
        );
        let quiet_deadline = Instant::now() + wait;
        while quiet_since.1.elapsed() < Duration::from_millis(300)
            && Instant::now() < quiet_deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = progress.tally_events.load(Ordering::Relaxed);
            if now != quiet_since.0 {
                quiet_since = (now, Instant::now());
            }
        }
        let answer_cpu = cpu.phase(&format!("q{q}: answers and tallies"), mark);
        let answer_lag = lag_between(&lag, answers_from, wall_ms());
        let accepted_i = i64::try_from(accepted).unwrap_or(i64::MAX);
        let mut tally_delays = Vec::new();
        let (mut last_eq, mut max_eq, mut received) = (0usize, 0usize, 0u64);
        let mut last_values: BTreeMap<i64, usize> = BTreeMap::new();
        let mut out_of_order = 0u64;
        for l in &logs {
            let l = l.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(d) = l.tally_delays.get(&qi) {
                tally_delays.extend(d.iter().map(|x| f64::from(*x)));
            }
            received += l.tally_count.get(&qi).copied().unwrap_or(0);
            last_eq += usize::from(l.tally_last.get(&qi) == Some(&accepted_i));
            if let Some(v) = l.tally_last.get(&qi) {
                *last_values.entry(*v).or_default() += 1;
            }
            out_of_order += l.tally_backwards.get(&qi).copied().unwrap_or(0);
            max_eq += usize::from(l.tally_max.get(&qi) == Some(&accepted_i));
        }
        let tally = Stats::of(tally_delays);
        let answers = Stats::of(answer_ms);

        // 4e. Reveal.
        let mark = cpu.mark();
        let from = wall_ms();
        let host_reveal_ms = host_move(&client, &base, &pin, &mut host, "reveal", qi).await?;
        let (all_r, _) = wait_for(wait, || {
            progress.reveal[q].load(Ordering::Relaxed) >= listeners
        })
        .await;
        let reveal_cpu = cpu.phase(&format!("q{q}: reveal fan-out"), mark);
        let reveal_lag = lag_between(&lag, from, wall_ms());
        let reveal = Stats::of(
            logs.iter()
                .filter_map(|l| {
                    l.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .reveal
                        .get(&qi)
                        .copied()
                })
                .collect(),
        );
        let host_page = get(
            &client,
            &format!("{base}/quizzes/live/{pin}/host/"),
            &mut host,
        )
        .await?;
        let right = parse_right(&host_page.body);

        eprintln!(
            "live_room: q{q}: question p99 {:.1} ms ({}/{listeners}), answers {accepted}/{} accepted (p99 {:.1} ms), \
             tally p99 {:.1} ms, last tally = {accepted} on {last_eq}/{listeners} streams, reveal p99 {:.1} ms",
            fanout.p99,
            fanout.n,
            forms.len(),
            answers.p99,
            tally.p99,
            reveal.p99
        );
        let cpu_json = |(server, me, wall): (f64, f64, f64)| json!({ "server_cpu_ms": r2(server), "load_generator_cpu_ms": r2(me), "wall_ms": r2(wall) });
        per_question.push(json!({
            "index": q,
            "host_next_ms": r2(host_next_ms),
            "question": {
                "received": fanout.n, "expected": listeners, "all_received": all_q,
                "delay": fanout.json(), "cpu": cpu_json(fan_cpu),
                "load_generator_lag": fan_lag.json(),
            },
            "pages": {
                "loaded": pages.n, "statuses": count_statuses(&page_status), "forms": forms.len(),
                "latency": pages.json(), "cpu": cpu_json(page_cpu),
            },
            "answers": {
                "sent": answer_status.len(), "accepted": accepted, "statuses": count_statuses(&answer_status),
                "first_refusal": sample_refusal, "latency": answers.json(),
                "start_lateness": Stats::of(start_late).json(),
                "window_ms": args.answer_window_ms, "span_ms": r2(answers_span),
            },
            "tally": {
                "events_received": received, "events_expected": accepted * listeners as u64,
                "streams_last_tally_eq_accepted": last_eq, "streams_max_tally_eq_accepted": max_eq,
                "last_tally_values": last_values.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
                "events_below_one_already_seen": out_of_order,
                "all_reached_accepted": all_tallied, "wait_ms": r2(tally_wait),
                "delay": tally.json(), "cpu": cpu_json(answer_cpu),
                "load_generator_lag": answer_lag.json(),
            },
            "reveal": {
                "host_reveal_ms": r2(host_reveal_ms), "received": reveal.n, "all_received": all_r,
                "delay": reveal.json(), "cpu": cpu_json(reveal_cpu),
                "load_generator_lag": reveal_lag.json(),
                "right": right.map(|(k, _)| k), "of": right.map(|(_, n)| n),
            },
        }));
    }

    // 5. The podium.
    let mark = cpu.mark();
    let host_finish_ms = host_move(&client, &base, &pin, &mut host, "finish", current).await?;
    let (all_p, _) = wait_for(wait, || {
        progress.podium.load(Ordering::Relaxed) >= listeners
    })
    .await;
    let podium_cpu = cpu.phase("podium fan-out", mark);
    let podium = Stats::of(
        logs.iter()
            .filter_map(|l| l.lock().unwrap_or_else(PoisonError::into_inner).podium)
            .collect(),
    );
    progress.stop.store(true, Ordering::Relaxed);
    for s in &streams {
        s.abort();
    }
    lag_probe.abort();
    let total_cpu = cpu.phase("whole run", run_start);

    let (mut reconnects, mut closed_slow, mut dup, mut players_events) = (0u64, 0u64, 0u64, 0u64);
    let (mut backwards, mut reads, mut events) = (0u64, 0u64, 0u64);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for l in &logs {
        let l = l.lock().unwrap_or_else(PoisonError::into_inner);
        reconnects += l.reconnects;
        closed_slow += l.closed_slow;
        dup += l.duplicate_questions;
        players_events += l.players_events;
        backwards += l.tally_backwards.values().sum::<u64>();
        reads += l.reads;
        events += l.events;
        for e in &l.errors {
            *errors.entry(e.clone()).or_default() += 1;
        }
    }

    let cpu_json = |(server, me, wall): (f64, f64, f64)| json!({ "server_cpu_ms": r2(server), "load_generator_cpu_ms": r2(me), "wall_ms": r2(wall) });
    let phases: Vec<Value> = cpu
        .phases
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(name, s, m, w)| json!({ "phase": name, "server_cpu_ms": r2(*s), "load_generator_cpu_ms": r2(*m), "wall_ms": r2(*w) }))
        .collect();
    let report = json!({
        "base": base, "pin": pin, "quiz_id": args.quiz_id, "players": n, "joined": joined, "listeners": listeners,
        "questions_played": per_question.len(), "seconds_per_question": args.seconds,
        "answer_window_ms": args.answer_window_ms, "page_loads": args.page_loads,
        "join": { "statuses": count_statuses(&join_status), "latency_get_plus_post": join_stats.json(),
                  "cpu": cpu_json((join_server, join_me, join_wall)) },
        "streams": { "connected": connected, "all_connected": all_connected,
                     "cpu": cpu_json((connect_server, connect_me, connect_wall)),
                     "reconnects": reconnects, "closed_as_too_slow": closed_slow,
                     "duplicate_question_events": dup, "players_events": players_events,
                     "tallies_out_of_order": backwards, "http_chunks": reads, "events": events,
                     "errors": errors },
        "questions": per_question,
        "podium": { "host_finish_ms": r2(host_finish_ms), "received": podium.n, "all_received": all_p,
                    "delay": podium.json(), "cpu": cpu_json(podium_cpu) },
        "cpu_phases": phases,
        "whole_run": cpu_json(total_cpu),
    });

    print_table(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("live_room: written to {}", path.display());
    }
    Ok(())
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
        other => other.to_string(),
    }
}

fn print_table(r: &Value) {
    println!(
        "room {} · {} of {} players joined · {} streams connected · {} question(s)",
        f(r, &["pin"]),
        f(r, &["joined"]),
        f(r, &["players"]),
        f(r, &["streams", "connected"]),
        f(r, &["questions_played"])
    );
    println!();
    println!("| question | event received | p50 | p90 | p99 | max | answers accepted / sent | answer p50 | answer p99 | tallies received / expected | last tally = accepted | tally p99 | reveal received | reveal p99 | right |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    if let Some(qs) = r["questions"].as_array() {
        for q in qs {
            println!(
                "| {} | {} / {} | {} | {} | {} | {} | {} / {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
                f(q, &["index"]),
                f(q, &["question", "received"]),
                f(q, &["question", "expected"]),
                f(q, &["question", "delay", "p50_ms"]),
                f(q, &["question", "delay", "p90_ms"]),
                f(q, &["question", "delay", "p99_ms"]),
                f(q, &["question", "delay", "max_ms"]),
                f(q, &["answers", "accepted"]),
                f(q, &["answers", "sent"]),
                f(q, &["answers", "latency", "p50_ms"]),
                f(q, &["answers", "latency", "p99_ms"]),
                f(q, &["tally", "events_received"]),
                f(q, &["tally", "events_expected"]),
                f(q, &["tally", "streams_last_tally_eq_accepted"]),
                f(q, &["tally", "delay", "p99_ms"]),
                f(q, &["reveal", "received"]),
                f(q, &["reveal", "delay", "p99_ms"]),
                f(q, &["reveal", "right"]),
            );
        }
    }
    println!();
    println!(
        "podium: {} received, p99 {} ms; reconnects {}, closed as too slow {}",
        f(r, &["podium", "received"]),
        f(r, &["podium", "delay", "p99_ms"]),
        f(r, &["streams", "reconnects"]),
        f(r, &["streams", "closed_as_too_slow"])
    );
    println!();
    println!("| phase | server CPU ms | load generator CPU ms | wall ms |");
    println!("|---|---:|---:|---:|");
    if let Some(ps) = r["cpu_phases"].as_array() {
        for p in ps {
            println!(
                "| {} | {} | {} | {} |",
                f(p, &["phase"]),
                f(p, &["server_cpu_ms"]),
                f(p, &["load_generator_cpu_ms"]),
                f(p, &["wall_ms"])
            );
        }
    }
}
