//! keel bench: an HTTP/1.1 load generator whose flags and output mean what they mean to a
//! `hey` user, built the way oha is: `concurrency` worker tasks, each with one keep-alive
//! connection, send a sample per request (in small batches) over a bounded channel to a single
//! aggregator, which keeps running statistics (an HDR histogram, counters) whose memory
//! does not grow with the number of requests.
//!
//! ```no_run
//! use keel_bench::{run, BenchOptions, OutputFormat};
//!
//! # async fn demo() -> Result<(), keel_bench::BenchError> {
//! let mut opts = BenchOptions::new("http://127.0.0.1:8000/async/test");
//! opts.requests = 1000;
//! opts.concurrency = 100;
//! let report = run(opts, None).await?;
//! print!("{}", report.render(OutputFormat::Text)?); // hey's summary, byte for byte
//! # Ok(()) }
//! ```
//!
//! What it keeps from hey: the flags' meanings and defaults ([`BenchOptions`]), one
//! connection per worker, `-z` stopping new requests at the deadline while awaiting those
//! in flight, the text and CSV layouts, and the definitions of every number. What it
//! changes, and why, is listed in each module: exact `-n` ([`options`]), an open-loop
//! `--rate` with coordinated-omission correction ([`client`]), bounded memory
//! ([`aggregate`]), errors grouped by kind ([`error`]), JSON output with a committed
//! schema ([`report`]).
//!
//! [`sse`] measures what no request/response load tester can: `clients` Server-Sent
//! Events streams held open while messages are published through a URL or a command,
//! with time to first event, publish-to-receive latency, lost and duplicate messages and
//! reconnects ([`run_sse`]).
//!
//! [`compare`] builds on [`run`]: the classic sync-vs-async results table over several
//! targets and a matrix of `-n`/`-c` cells, with the physical limit `c / L`, the
//! efficiency, ratio lines, `report.md`, `results.json` and SVG/PNG charts.
//!
//! The crate has no CLI: `keel bench` (the binary crate) maps its clap arguments onto
//! [`BenchOptions`], calls [`run`] (or [`run_until`] to stop on Ctrl-C like hey), and
//! prints [`Report::render`]; `keel compare` fills [`CompareOptions`], calls
//! [`run_compare`] and prints [`CompareReport::to_text`].

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub mod aggregate;
pub mod client;
pub mod compare;
pub mod error;
pub mod options;
pub mod progress;
pub mod render;
pub mod report;
pub mod sse;

pub use compare::{run_compare, CompareOptions, CompareReport};
pub use error::{BenchError, CompareError, ErrorKind, OptionsError};
pub use options::{BenchOptions, OutputFormat, Plan};
pub use progress::{Progress, ProgressSink};
pub use report::{
    rate_limit_warning, Bucket, Details, ErrorCount, LatencyFrom, Percentile, PhaseSummary, Report,
    RequestRecord, RunInfo, Summary, RATE_LIMIT_STATUSES,
};
pub use sse::{
    run_sse, run_sse_until, LatencySummary, Publisher, SseEnd, SseError, SseErrorCount,
    SseErrorKind, SseEvent, SseItem, SseOptions, SseOptionsError, SseParseError, SseParser,
    SsePhase, SsePlan, SseProgress, SseProgressSink, SseReport, SseRunInfo,
};

/// `User-Agent` sent with every request (appended to one given with `-H`, as hey does).
pub const USER_AGENT: &str = concat!("keel-bench/", env!("CARGO_PKG_VERSION"));

/// Batches of samples in flight between workers and the aggregator (each at most 64
/// samples); bounds memory if the aggregator ever falls behind (workers then wait, which
/// slows the load rather than growing memory).
const CHANNEL_CAPACITY: usize = 1024;
/// Batches the aggregator takes from the channel at once.
const BATCH: usize = 64;

/// Runs the load described by `opts` to its end (`-n` requests, or `-z` elapsed and the
/// requests in flight finished) and returns the report.
///
/// Needs a tokio runtime with timers and I/O enabled; a multi-thread runtime lets workers
/// and the aggregator use every core.
pub async fn run(opts: BenchOptions, progress: Option<ProgressSink>) -> Result<Report, BenchError> {
    run_until(opts, progress, std::future::pending()).await
}

/// Like [`run`], but when `stop` completes no new request is started (hey's Ctrl-C): the
/// requests in flight finish and the report covers what was done. (With `--rate`, a worker
/// waiting for its next scheduled time notices the stop at that time.)
pub async fn run_until(
    opts: BenchOptions,
    progress: Option<ProgressSink>,
    stop: impl Future<Output = ()>,
) -> Result<Report, BenchError> {
    let mut plan = opts.validate()?;
    plan.load_body().await?;
    let concurrency = plan.concurrency;
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    let mut aggregate = aggregate::Aggregate::new(&plan)?;
    let shared = Arc::new(client::Shared::new(plan));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(client::worker(shared.clone(), tx.clone()));
    }
    drop(tx);

    let snapshot = |a: &aggregate::Aggregate, finished: bool| Progress {
        elapsed: shared.start.elapsed(),
        requests: a.requests(),
        errors: a.errors(),
        planned_requests: shared.plan.requests(),
        planned_duration: shared.plan.duration(),
        finished,
    };
    let mut stop = pin!(stop);
    let mut stopped = false;
    let mut batch = Vec::with_capacity(BATCH);
    let period = progress.as_ref().map_or(Duration::from_secs(3600), |p| {
        p.interval().max(Duration::from_millis(1))
    });
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
                for samples in batch.drain(..) {
                    for sample in samples {
                        aggregate.add(sample);
                    }
                }
            }
            // On a timer rather than per sample, so a progress bar moves during a `-z`
            // run against a server that has not answered yet.
            _ = ticker.tick(), if progress.is_some() => {
                if let Some(sink) = &progress {
                    sink.emit(&snapshot(&aggregate, false));
                }
            }
            () = &mut stop, if !stopped => {
                stopped = true;
                shared.stopped.store(true, Ordering::Relaxed);
            }
        }
    }
    // Every worker has dropped its sender: the run is over.
    let total = shared.start.elapsed();
    while let Some(joined) = workers.join_next().await {
        joined?;
    }
    if let Some(sink) = &progress {
        sink.emit(&snapshot(&aggregate, true));
    }
    Ok(aggregate.into_report(total, &shared.plan))
}
