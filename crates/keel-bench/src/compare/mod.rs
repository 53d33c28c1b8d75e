//! `keel compare`: the classic sync-vs-async results table, reproducible by anyone. For
//! every cell of a matrix (`150x30,300x50,1000x100`: `-n 150 -c 30`, …) and every target
//! (`NAME=URL`), it runs a warm-up and then a measured [`crate::run`], and reports
//!
//! ```text
//! Test    Mode          RPS    Avg latency  P95 latency  Limit  Efficiency
//! 150/30  django-sync   287.1  103.9 ms     109.8 ms     300    95.7%
//! ```
//!
//! with the physical limit `min(c, cap) / L` and the efficiency RPS / limit when the
//! upstream latency `L` is known, ratio lines (`--baseline`, `--ratio A/B`), and in
//! `--out DIR` a `report.md`, a `results.json` and SVG + PNG charts ([`files`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use keel_bench::compare::{run_compare, CompareOptions};
//!
//! # async fn demo() -> Result<(), keel_bench::CompareError> {
//! let opts = CompareOptions {
//!     targets: vec![
//!         "django-sync=http://127.0.0.1:8001/sync/test@40".parse()?,
//!         "keel-async=http://127.0.0.1:8080/async/test".parse()?,
//!     ],
//!     upstream_latency: Some(Duration::from_millis(100)),
//!     baseline: Some("django-sync".into()),
//!     out_dir: Some("bench/runs/2026-11-25".into()),
//!     ..CompareOptions::default()
//! };
//! let report = run_compare(opts, None).await?;
//! print!("{}", report.to_text());
//! # Ok(()) }
//! ```
//!
//! How it differs from running hey by hand, as the classic write-up did:
//!
//! - **One target at a time**, cell by cell (every target at 150/30, then every target
//!   at 300/50, …), with a pause ([`CompareOptions::settle`]) between runs: targets never
//!   share the machine's cores during a measurement, and a slow drift of the machine
//!   affects every target of a cell alike.
//! - **A warm-up** of `c` requests at `c` before each measured run opens the
//!   connections and wakes lazy workers, so the first cell does not measure start-up.
//! - **The limit**: with the upstream latency known, each row says how close it came to
//!   what physics allows, which is what "async is faster" really means (see
//!   [`options`] for the `@CAP` of a thread-pool server).
//! - **Failures are visible**: hey's RPS counts failed requests; a target that fails
//!   fast looks fast. The table adds a `Failed` column and names the statuses and errors
//!   whenever there are any.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub mod chart;
pub mod files;
pub mod options;
pub mod report;
pub mod table;

pub use files::{write_files, WrittenFiles};
pub use options::{parse_matrix, Cell, CompareOptions, CompareTarget, Ratio, DEFAULT_MATRIX};
pub use report::{CompareReport, Machine, RatioRow, Row, WarmupSummary};

use crate::error::CompareError;
use crate::progress::{Progress, ProgressSink};

/// What [`run_compare`] tells a [`CompareSink`].
#[derive(Debug, Clone, Copy)]
pub enum CompareEvent<'a> {
    /// A run starts: `step` of `steps` (1-based; one step per target × cell), the
    /// warm-up (`warmup: true`) or the measured run.
    Started {
        /// 1-based.
        step: usize,
        /// Targets × cells.
        steps: usize,
        /// Which target.
        target: &'a CompareTarget,
        /// Which cell.
        cell: Cell,
        /// Warm-up or measured run.
        warmup: bool,
    },
    /// A snapshot of the run in progress (at the sink's interval).
    Progress(&'a Progress),
    /// A measured run finished with this row.
    Finished {
        /// 1-based.
        step: usize,
        /// Targets × cells.
        steps: usize,
        /// The row.
        row: &'a Row,
    },
    /// The files were written to `out_dir`.
    Written(&'a WrittenFiles),
}

type EventFn = dyn Fn(&CompareEvent<'_>) + Send + Sync;

/// A callback for [`CompareEvent`]s; `Progress` events come at most every `interval`.
#[derive(Clone)]
pub struct CompareSink {
    callback: Arc<EventFn>,
    interval: Duration,
}

impl CompareSink {
    /// Calls `callback` for every step and, during runs, at most every `interval`.
    pub fn new(
        interval: Duration,
        callback: impl Fn(&CompareEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            callback: Arc::new(callback),
            interval,
        }
    }

    fn emit(&self, event: &CompareEvent<'_>) {
        (self.callback)(event);
    }

    fn progress_sink(&self) -> ProgressSink {
        let callback = self.callback.clone();
        ProgressSink::new(self.interval, move |p| callback(&CompareEvent::Progress(p)))
    }
}

impl std::fmt::Debug for CompareSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompareSink")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// Runs the comparison and, when `opts.out_dir` is set, writes its files there.
///
/// Validates everything first ([`CompareOptions::validate`]). A target that is down or
/// answers errors does not stop the comparison: its rows count the failures.
pub async fn run_compare(
    opts: CompareOptions,
    progress: Option<CompareSink>,
) -> Result<CompareReport, CompareError> {
    opts.validate()?;
    let started = SystemTime::now();
    let steps = opts.targets.len() * opts.matrix.len();
    let mut rows = Vec::with_capacity(steps);
    let mut step = 0;
    for cell in &opts.matrix {
        for target in &opts.targets {
            if step > 0 && !opts.settle.is_zero() {
                tokio::time::sleep(opts.settle).await;
            }
            step += 1;
            let bench_err = |source| CompareError::Bench {
                target: target.name.clone(),
                test: cell.to_string(),
                source,
            };
            let warmup = if opts.warmup {
                if let Some(sink) = &progress {
                    sink.emit(&CompareEvent::Started {
                        step,
                        steps,
                        target,
                        cell: *cell,
                        warmup: true,
                    });
                }
                let o = opts.bench_options(target, cell.concurrency, cell.concurrency);
                let r = crate::run(o, None).await.map_err(bench_err)?;
                Some(WarmupSummary::from_report(&r))
            } else {
                None
            };
            if let Some(sink) = &progress {
                sink.emit(&CompareEvent::Started {
                    step,
                    steps,
                    target,
                    cell: *cell,
                    warmup: false,
                });
            }
            let o = opts.bench_options(target, cell.requests, cell.concurrency);
            let report = crate::run(o, progress.as_ref().map(CompareSink::progress_sink))
                .await
                .map_err(bench_err)?;
            let row = Row::from_report(target, *cell, &report, opts.upstream_latency, warmup);
            if let Some(sink) = &progress {
                sink.emit(&CompareEvent::Finished {
                    step,
                    steps,
                    row: &row,
                });
            }
            rows.push(row);
        }
    }
    let ratios = report::ratio_rows(&rows, &opts.matrix, &opts.all_ratios());
    let report = CompareReport {
        schema_version: 1,
        started_at: report::rfc3339_utc(started),
        finished_at: report::rfc3339_utc(SystemTime::now()),
        command_line: opts.command_line.clone(),
        upstream_latency_secs: opts.upstream_latency.map(|l| l.as_secs_f64()),
        warmup: opts.warmup,
        machine: Machine::detect(),
        targets: opts.targets.clone(),
        matrix: opts.matrix.clone(),
        rows,
        ratios,
        notes: opts.notes.clone(),
    };
    if let Some(dir) = opts.out_dir.clone() {
        let for_files = report.clone();
        let written = tokio::task::spawn_blocking(move || write_files(&for_files, &dir)).await??;
        if let Some(sink) = &progress {
            sink.emit(&CompareEvent::Written(&written));
        }
    }
    Ok(report)
}
