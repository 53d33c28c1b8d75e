//! [`Report`]: the result of a run, the same data for every output format. Its JSON form is
//! specified by `schema/report.schema.json` (a test checks the two agree).
//!
//! The numbers are hey's, with hey's definitions: latency is from the send to the end of
//! the body (with `--rate`, from the scheduled time, see `run.latency_from`); "slowest",
//! "fastest", "average", the percentiles and the histogram cover successful responses (any
//! status code) and not failed requests; `requests_per_sec` is *all* finished requests,
//! errors included, over the total time, as hey computes it. Differences from hey:
//!
//! - Percentiles add 99.9 % and come from an HDR histogram (within 0.1 %), not from a sorted
//!   list; hey also prints a `0% in 0.0000 secs` line when a percentile has no sample,
//!   keel leaves it out.
//! - The histogram has hey's 11 marks (fastest + 10 equal steps, the last mark the slowest);
//!   counts are exact up to the HDR resolution (0.1 %).
//! - `total_bytes` counts body bytes received; hey adds up `Content-Length` headers, so it
//!   shows 0 for chunked responses.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::ErrorKind;

/// The percentiles reported, in percent: hey's seven plus 99.9.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
/// Steps of the response-time histogram (hey's `bc`): it has `HISTOGRAM_STEPS + 1` marks.
pub const HISTOGRAM_STEPS: usize = 10;

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// hey's "Summary" block plus counts.
    pub summary: Summary,
    /// Latency at each of [`PERCENTILES`]; empty when there was no response.
    pub latency_percentiles: Vec<Percentile>,
    /// hey's "Response time histogram"; empty when there was no response.
    pub histogram: Vec<Bucket>,
    /// hey's "Details (average, fastest, slowest)".
    pub details: Details,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Failed requests by kind and message, sorted by kind then message.
    pub errors: Vec<ErrorCount>,
    /// What was run.
    pub run: RunInfo,
    /// With `-o csv`: one record per successful response in completion order, at most
    /// `csv_max_records`. Not part of the JSON.
    #[serde(skip)]
    pub records: Vec<RequestRecord>,
    /// With `-o csv`: responses not kept in `records` because of the cap.
    #[serde(skip)]
    pub records_dropped: u64,
}

/// hey's "Summary", in seconds and bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Wall time from the start to the end of the last request.
    pub total_secs: f64,
    /// Slowest response.
    pub slowest_secs: f64,
    /// Fastest response.
    pub fastest_secs: f64,
    /// Mean response latency.
    pub average_secs: f64,
    /// Finished requests (responses and errors) per second of `total_secs`, as hey.
    pub requests_per_sec: f64,
    /// Response body bytes received.
    pub total_bytes: u64,
    /// `total_bytes / responses`, rounded down.
    pub size_per_request_bytes: u64,
    /// Finished requests: `responses + errors`.
    pub requests: u64,
    /// Requests that got a complete response, whatever its status.
    pub responses: u64,
    /// Requests that failed (see `errors`).
    pub errors: u64,
    /// When the first request was sent, seconds after the start.
    pub first_request_at_secs: Option<f64>,
    /// When the last request finished, seconds after the start.
    pub last_response_at_secs: Option<f64>,
}

/// One latency percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentile {
    /// In percent, e.g. `99.9`.
    pub percentile: f64,
    /// Latency at or below which that share of responses finished.
    pub latency_secs: f64,
}

/// One mark of hey's response-time histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound of the bucket.
    pub mark_secs: f64,
    /// Responses with latency above the previous mark and at most this one.
    pub count: u64,
    /// `count / responses`.
    pub frequency: f64,
}

/// Average, fastest and slowest time of one phase, over successful responses.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PhaseSummary {
    /// Mean over all responses (0 for requests on a reused connection counts in).
    pub average_secs: f64,
    /// Smallest.
    pub fastest_secs: f64,
    /// Largest.
    pub slowest_secs: f64,
}

/// hey's "Details": where the time went.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Details {
    /// DNS lookup + TCP connect (0 on a reused connection).
    pub dns_dialup: PhaseSummary,
    /// DNS lookup (0 on a reused connection or an IP literal).
    pub dns_lookup: PhaseSummary,
    /// Always 0: hyper does not report when the request was written; see `response_wait`.
    pub request_write: PhaseSummary,
    /// Writing the request and waiting for the response head.
    pub response_wait: PhaseSummary,
    /// Reading the response body.
    pub response_read: PhaseSummary,
}

/// Failed requests of one kind and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The kind.
    pub kind: ErrorKind,
    /// What happened, for people (e.g. `dial tcp 127.0.0.1:1: connect: connection refused`).
    pub message: String,
    /// How many requests failed so.
    pub count: u64,
}

/// Where latency is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyFrom {
    /// From the moment the request was sent (hey, `-n`/`-z`/`-q`).
    Send,
    /// From the moment the request was scheduled (`--rate`: coordinated-omission corrected).
    Schedule,
}

/// The options the run used, for the JSON consumer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// Target URL.
    pub url: String,
    /// HTTP method.
    pub method: String,
    /// Workers (`-c`).
    pub concurrency: u64,
    /// `-n`, when the run was bounded by count.
    pub requests: Option<u64>,
    /// `-z`, when the run was bounded by time.
    pub duration_secs: Option<f64>,
    /// `-q`.
    pub qps_per_worker: Option<f64>,
    /// `--rate`.
    pub rate_per_sec: Option<f64>,
    /// `-t`; `None`: no timeout.
    pub timeout_secs: Option<f64>,
    /// Whether connections were reused.
    pub keepalive: bool,
    /// Where latency is measured from.
    pub latency_from: LatencyFrom,
}

/// One row of hey's CSV, times in microseconds (saturating at about 71 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    /// `response-time`.
    pub latency_us: u32,
    /// `DNS+dialup`.
    pub dns_dialup_us: u32,
    /// `DNS`.
    pub dns_us: u32,
    /// `Request-write` (always 0, see [`Details::request_write`]).
    pub request_write_us: u32,
    /// `Response-delay`.
    pub response_delay_us: u32,
    /// `Response-read`.
    pub response_read_us: u32,
    /// `status-code`.
    pub status: u16,
    /// `offset`: when the request was sent, after the start.
    pub offset_us: u32,
}

fn us_to_secs(us: f64) -> f64 {
    us / 1e6
}

/// Latency at each of [`PERCENTILES`], clamped to the exact fastest/slowest.
pub(crate) fn percentiles(
    hist: &Histogram<u64>,
    fastest: Duration,
    slowest: Duration,
) -> Vec<Percentile> {
    let (lo, hi) = (fastest.as_secs_f64(), slowest.as_secs_f64());
    PERCENTILES
        .iter()
        .map(|&p| Percentile {
            percentile: p,
            latency_secs: us_to_secs(hist.value_at_quantile(p / 100.0) as f64).clamp(lo, hi),
        })
        .collect()
}

/// hey's histogram: marks at `fastest + i·(slowest − fastest)/10` for i < 10 and
/// `slowest` last; each response goes to the first mark it does not exceed. A histogram
/// bin is placed by its lowest value, so the fastest response's bin lands in the first
/// bucket as in hey.
pub(crate) fn buckets(hist: &Histogram<u64>, fastest: Duration, slowest: Duration) -> Vec<Bucket> {
    // Marks in nanoseconds: whole numbers that f64 holds exactly, so a response that sits
    // exactly on a mark is not pushed into the next bucket by rounding.
    let (lo, hi) = (fastest.as_nanos() as f64, slowest.as_nanos() as f64);
    let step = (hi - lo) / HISTOGRAM_STEPS as f64;
    let mut marks: Vec<f64> = (0..HISTOGRAM_STEPS).map(|i| lo + step * i as f64).collect();
    marks.push(hi);
    let mut counts = vec![0u64; marks.len()];
    let mut total = 0u64;
    for v in hist.iter_recorded() {
        let value = hist.lowest_equivalent(v.value_iterated_to()) as f64 * 1000.0;
        let i = marks
            .iter()
            .position(|&m| value <= m)
            .unwrap_or(marks.len() - 1);
        counts[i] += v.count_at_value();
        total += v.count_at_value();
    }
    marks
        .into_iter()
        .zip(counts)
        .map(|(mark_ns, count)| Bucket {
            mark_secs: mark_ns / 1e9,
            count,
            frequency: if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values_us: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for &v in values_us {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn buckets_follow_heys_marks() {
        // 10 ms .. 20 ms, one sample per ms.
        let values: Vec<u64> = (10..=20).map(|ms| ms * 1000).collect();
        let h = hist(&values);
        let b = buckets(&h, Duration::from_millis(10), Duration::from_millis(20));
        assert_eq!(b.len(), 11);
        assert!((b[0].mark_secs - 0.010).abs() < 1e-12);
        assert!((b[10].mark_secs - 0.020).abs() < 1e-12);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 11);
        // hey puts exactly the fastest into the first bucket and one per step after it.
        assert!(b.iter().all(|b| b.count == 1), "{b:?}");
        assert!((b.iter().map(|b| b.frequency).sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn equal_latencies_fill_the_first_bucket() {
        let h = hist(&[5000; 7]);
        let b = buckets(&h, Duration::from_millis(5), Duration::from_millis(5));
        assert_eq!(b[0].count, 7);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 7);
    }

    #[test]
    fn percentiles_are_within_hdr_precision_and_clamped() {
        let values: Vec<u64> = (1..=1000).map(|i| i * 100).collect(); // 0.1 .. 100 ms
        let h = hist(&values);
        let p = percentiles(
            &h,
            Duration::from_micros(100),
            Duration::from_micros(100_000),
        );
        assert_eq!(p.len(), PERCENTILES.len());
        let p50 = p[2].latency_secs;
        assert!((p50 - 0.050).abs() / 0.050 < 0.002, "{p50}");
        let p999 = p[7].latency_secs;
        assert!(p999 <= 0.100 && p999 > 0.0995, "{p999}");
    }
}

/// The statuses a rate limiter answers with: nginx's `limit_req` default (503) and the
/// one it is usually set to (429).
pub const RATE_LIMIT_STATUSES: [u16; 2] = [429, 503];

/// A warning when most responses were a rate limiter's refusals (429 or 503): the run then
/// measured how fast the limiter says no, not the server. `None` otherwise.
pub fn rate_limit_warning(status_codes: &BTreeMap<u16, u64>) -> Option<String> {
    let total: u64 = status_codes.values().sum();
    let refused: u64 = RATE_LIMIT_STATUSES
        .iter()
        .filter_map(|code| status_codes.get(code))
        .sum();
    (total > 0 && refused * 2 > total).then(|| {
        format!(
            "{refused} of {total} responses were 429/503: this measured a rate limiter refusing \
             requests, not the server. Run `keel up --no-rate-limit`, or target `keel serve` \
             directly (it has no rate limit), or raise the edge's rate for the test."
        )
    })
}

impl Report {
    /// [`rate_limit_warning`] for this run.
    pub fn rate_limit_warning(&self) -> Option<String> {
        rate_limit_warning(&self.status_codes)
    }
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    #[test]
    fn mostly_refused_runs_are_flagged() {
        let run = |pairs: &[(u16, u64)]| rate_limit_warning(&pairs.iter().copied().collect());
        let warning = run(&[(503, 179), (200, 21)]).unwrap();
        assert!(
            warning.starts_with("179 of 200 responses were 429/503"),
            "{warning}"
        );
        assert!(warning.contains("keel up --no-rate-limit"), "{warning}");
        assert!(run(&[(429, 60), (200, 40)]).is_some());
        assert!(run(&[(503, 50), (200, 50)]).is_none(), "half is not most");
        assert!(run(&[(200, 100)]).is_none());
        assert!(run(&[]).is_none());
    }
}
