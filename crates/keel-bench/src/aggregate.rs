//! The aggregator: folds every sample into running statistics whose size does not
//! depend on the number of requests, then turns them into a [`Report`].
//!
//! hey keeps every latency (and every phase time) in slices, capped at 1,000,000 results,
//! and sorts them at the end. keel records latencies in an HDR histogram (1 µs to 1 h,
//! 3 significant digits, so any percentile is within 0.1 %); fastest, slowest and average
//! are exact. Only `-o csv` keeps per-request rows, up to `csv_max_records`.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::client::{Phases, Sample};
use crate::error::{BenchError, ErrorKind};
use crate::options::Plan;
use crate::report::{
    self, Details, ErrorCount, LatencyFrom, PhaseSummary, Report, RequestRecord, RunInfo, Summary,
};

/// Distinct error messages kept per kind; more are folded into one line per kind, so a
/// server that answers with ever-changing garbage cannot grow the report.
const MAX_MESSAGES_PER_KIND: usize = 32;
/// The longest latency the histogram stores exactly (1 h, in µs); longer ones saturate.
const HIST_MAX_US: u64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct PhaseStat {
    sum: Duration,
    min: Option<Duration>,
    max: Duration,
}

impl PhaseStat {
    fn add(&mut self, d: Duration) {
        self.sum += d;
        self.min = Some(self.min.map_or(d, |m| m.min(d)));
        self.max = self.max.max(d);
    }

    fn summary(&self, n: u64) -> PhaseSummary {
        PhaseSummary {
            average_secs: if n == 0 {
                0.0
            } else {
                self.sum.as_secs_f64() / n as f64
            },
            fastest_secs: self.min.unwrap_or_default().as_secs_f64(),
            slowest_secs: self.max.as_secs_f64(),
        }
    }
}

/// Running statistics of a run.
#[derive(Debug)]
pub(crate) struct Aggregate {
    histogram: Histogram<u64>,
    responses: u64,
    errors: u64,
    latency_sum: Duration,
    fastest: Option<Duration>,
    slowest: Duration,
    dns: PhaseStat,
    dial: PhaseStat,
    wait: PhaseStat,
    read: PhaseStat,
    status_codes: BTreeMap<u16, u64>,
    error_counts: BTreeMap<(ErrorKind, String), u64>,
    messages_per_kind: BTreeMap<ErrorKind, usize>,
    body_bytes: u64,
    first_request: Option<Duration>,
    last_done: Option<Duration>,
    records: Vec<RequestRecord>,
    records_cap: usize,
    records_dropped: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn micros_u32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Aggregate {
    pub fn new(plan: &Plan) -> Result<Self, BenchError> {
        let histogram = Histogram::new_with_bounds(1, HIST_MAX_US, 3)
            .map_err(|e| BenchError::Internal(format!("latency histogram: {e:?}")))?;
        Ok(Self {
            histogram,
            responses: 0,
            errors: 0,
            latency_sum: Duration::ZERO,
            fastest: None,
            slowest: Duration::ZERO,
            dns: PhaseStat::default(),
            dial: PhaseStat::default(),
            wait: PhaseStat::default(),
            read: PhaseStat::default(),
            status_codes: BTreeMap::new(),
            error_counts: BTreeMap::new(),
            messages_per_kind: BTreeMap::new(),
            body_bytes: 0,
            first_request: None,
            last_done: None,
            records: Vec::new(),
            records_cap: plan.records,
            records_dropped: 0,
        })
    }

    /// Requests finished so far (responses and errors).
    pub fn requests(&self) -> u64 {
        self.responses + self.errors
    }

    /// Failed requests so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    pub fn add(&mut self, s: Sample) {
        self.first_request = Some(self.first_request.map_or(s.offset, |f| f.min(s.offset)));
        self.last_done = Some(self.last_done.map_or(s.done, |l| l.max(s.done)));
        match s.outcome {
            Ok(resp) => {
                self.responses += 1;
                self.latency_sum += s.latency;
                self.fastest = Some(self.fastest.map_or(s.latency, |f| f.min(s.latency)));
                self.slowest = self.slowest.max(s.latency);
                self.histogram
                    .saturating_record(micros(s.latency).clamp(1, HIST_MAX_US));
                let Phases {
                    dns,
                    dial,
                    wait,
                    read,
                    ..
                } = s.phases;
                self.dns.add(dns);
                self.dial.add(dial);
                self.wait.add(wait);
                self.read.add(read);
                *self.status_codes.entry(resp.status).or_default() += 1;
                self.body_bytes += resp.body_bytes;
                if self.records.len() < self.records_cap {
                    self.records.push(RequestRecord {
                        latency_us: micros_u32(s.latency),
                        dns_dialup_us: micros_u32(dial),
                        dns_us: micros_u32(dns),
                        request_write_us: 0,
                        response_delay_us: micros_u32(wait),
                        response_read_us: micros_u32(read),
                        status: resp.status,
                        offset_us: micros_u32(s.offset),
                    });
                } else if self.records_cap > 0 {
                    self.records_dropped += 1;
                }
            }
            Err(e) => {
                self.errors += 1;
                let key = (e.kind, e.message);
                if let Some(n) = self.error_counts.get_mut(&key) {
                    *n += 1;
                    return;
                }
                let distinct = self.messages_per_kind.entry(e.kind).or_default();
                let key = if *distinct < MAX_MESSAGES_PER_KIND {
                    *distinct += 1;
                    key
                } else {
                    (e.kind, "(other messages of this kind)".to_string())
                };
                *self.error_counts.entry(key).or_default() += 1;
            }
        }
    }

    /// The report, with `total` the wall time of the run.
    pub fn into_report(self, total: Duration, plan: &Plan) -> Report {
        let n = self.responses;
        let total_secs = total.as_secs_f64();
        let fastest = self.fastest.unwrap_or_default();
        let summary = Summary {
            total_secs,
            slowest_secs: self.slowest.as_secs_f64(),
            fastest_secs: fastest.as_secs_f64(),
            average_secs: if n == 0 {
                0.0
            } else {
                self.latency_sum.as_secs_f64() / n as f64
            },
            // hey divides every result, errors included, by the total time.
            requests_per_sec: if total_secs > 0.0 {
                (n + self.errors) as f64 / total_secs
            } else {
                0.0
            },
            total_bytes: self.body_bytes,
            size_per_request_bytes: self.body_bytes.checked_div(n).unwrap_or(0),
            requests: n + self.errors,
            responses: n,
            errors: self.errors,
            first_request_at_secs: self.first_request.map(|d| d.as_secs_f64()),
            last_response_at_secs: self.last_done.map(|d| d.as_secs_f64()),
        };
        let (latency_percentiles, histogram) = if n == 0 {
            (Vec::new(), Vec::new())
        } else {
            (
                report::percentiles(&self.histogram, fastest, self.slowest),
                report::buckets(&self.histogram, fastest, self.slowest),
            )
        };
        let details = Details {
            dns_dialup: self.dial.summary(n),
            dns_lookup: self.dns.summary(n),
            request_write: PhaseSummary::default(),
            response_wait: self.wait.summary(n),
            response_read: self.read.summary(n),
        };
        let errors = self
            .error_counts
            .into_iter()
            .map(|((kind, message), count)| ErrorCount {
                kind,
                message,
                count,
            })
            .collect();
        Report {
            summary,
            latency_percentiles,
            histogram,
            details,
            status_codes: self.status_codes,
            errors,
            run: RunInfo {
                url: plan.url.clone(),
                method: plan.method.to_string(),
                concurrency: plan.concurrency as u64,
                requests: plan.requests(),
                duration_secs: plan.duration().map(|d| d.as_secs_f64()),
                qps_per_worker: plan.qps_period.map(|p| 1.0 / p.as_secs_f64()),
                rate_per_sec: plan.rate_per_sec,
                timeout_secs: plan.timeout.map(|t| t.as_secs_f64()),
                keepalive: !plan.disable_keepalive,
                latency_from: if plan.rate_per_sec.is_some() {
                    LatencyFrom::Schedule
                } else {
                    LatencyFrom::Send
                },
            },
            records: self.records,
            records_dropped: self.records_dropped,
        }
    }
}
