//! [`CompareReport`]: every number of a comparison, one [`Row`] per target × cell, the
//! ratio lines, the machine and the time. Its JSON form is `results.json`, specified by
//! `schema/compare.schema.json` (a test checks the two agree).
//!
//! Definitions, all per row:
//!
//! - `requests_per_sec`, `average_secs` and the percentiles are the load generator's, with
//!   hey's meanings (RPS counts every finished request, failed ones included, over the
//!   run's wall time; latencies cover responses of any status).
//! - `limit_rps` is the physical limit `min(c, cap) / L` ([`physical_limit_rps`]), present
//!   when the upstream latency `L` is known and above zero.
//! - `efficiency` is `requests_per_sec / limit_rps`. Since RPS counts failures, a row with
//!   `errors` or `non_2xx` above zero can look efficient by failing fast; the table marks
//!   such rows (see [`crate::compare::table`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::options::{Cell, CompareTarget, Ratio};
use crate::report::{ErrorCount, Percentile, Report};

/// The result of [`crate::compare::run_compare`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    /// Version of the `results.json` layout (this is 1).
    pub schema_version: u32,
    /// When the first run started, RFC 3339 in UTC.
    pub started_at: String,
    /// When the last run finished, RFC 3339 in UTC.
    pub finished_at: String,
    /// The command line, as the caller gave it.
    pub command_line: Option<String>,
    /// The upstream latency `L` the targets were told to use, when known.
    pub upstream_latency_secs: Option<f64>,
    /// Whether each measured run followed a warm-up.
    pub warmup: bool,
    /// Where it ran.
    pub machine: Machine,
    /// The targets, in order.
    pub targets: Vec<CompareTarget>,
    /// The cells, in order.
    pub matrix: Vec<Cell>,
    /// One row per cell × target, cell-major in the order given.
    pub rows: Vec<Row>,
    /// Ratio lines, per ratio then cell.
    pub ratios: Vec<RatioRow>,
    /// The caller's notes, for `report.md`.
    pub notes: Vec<String>,
}

/// One measured run: a target at a cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The cell as the classic table writes it, `150/30`.
    pub test: String,
    /// `-n`.
    pub requests: u64,
    /// `-c`.
    pub concurrency: u64,
    /// The target's name (the table's `Mode`).
    pub target: String,
    /// The target's URL.
    pub url: String,
    /// Finished requests (responses and errors) per second, as hey.
    pub requests_per_sec: f64,
    /// Mean latency of the responses.
    pub average_secs: f64,
    /// Median latency; `None` when there was no response.
    pub p50_secs: Option<f64>,
    /// 95th percentile latency; `None` when there was no response.
    pub p95_secs: Option<f64>,
    /// 99th percentile latency; `None` when there was no response.
    pub p99_secs: Option<f64>,
    /// Fastest response.
    pub fastest_secs: f64,
    /// Slowest response.
    pub slowest_secs: f64,
    /// Wall time of the measured run.
    pub total_secs: f64,
    /// Requests that got a response, whatever its status.
    pub responses: u64,
    /// Requests that failed without a response.
    pub errors: u64,
    /// Responses whose status was not 2xx.
    pub non_2xx: u64,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Failed requests by kind and message.
    pub error_counts: Vec<ErrorCount>,
    /// Every percentile the load generator reports (10 … 99.9).
    pub latency_percentiles: Vec<Percentile>,
    /// `min(c, cap) / L`, when `L` is known and above zero.
    pub limit_rps: Option<f64>,
    /// `requests_per_sec / limit_rps`.
    pub efficiency: Option<f64>,
    /// The warm-up before this run, if there was one.
    pub warmup: Option<WarmupSummary>,
}

/// What the warm-up of a row did (its latencies are not kept: they measure cold starts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WarmupSummary {
    /// Requests sent (= concurrency).
    pub requests: u64,
    /// Of which failed without a response.
    pub errors: u64,
    /// Responses whose status was not 2xx.
    pub non_2xx: u64,
    /// Wall time.
    pub total_secs: f64,
}

impl WarmupSummary {
    /// The summary of a warm-up run.
    pub fn from_report(report: &Report) -> Self {
        Self {
            requests: report.summary.requests,
            errors: report.summary.errors,
            non_2xx: non_2xx(&report.status_codes),
            total_secs: report.summary.total_secs,
        }
    }
}

/// One ratio line at one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioRow {
    /// The cell, `150/30`.
    pub test: String,
    /// The target above the line.
    pub numerator: String,
    /// The target below the line.
    pub denominator: String,
    /// `numerator RPS / denominator RPS`; `None` when the denominator's RPS is 0.
    pub rps_ratio: Option<f64>,
    /// `numerator p95 / denominator p95`; `None` when either has no p95 or it is 0.
    pub p95_ratio: Option<f64>,
}

/// The machine the comparison ran on, as `/proc` and `uname` describe it. Fields are
/// `None` where the system does not say (not Linux, no `/proc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// `processor` entries in `/proc/cpuinfo`.
    pub logical_cpus: Option<u64>,
    /// CPUs this process may use (affinity and cgroup quota), from the standard library.
    pub available_cpus: Option<u64>,
    /// `MemTotal` from `/proc/meminfo`, in bytes.
    pub memory_total_bytes: Option<u64>,
    /// `uname -srvm`: kernel name, release, version and machine.
    pub os: Option<String>,
}

impl Machine {
    /// Reads the machine description (no subprocess; `/proc` on Linux).
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
        let kernel = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let os = match (kernel("ostype"), kernel("osrelease"), kernel("version")) {
            (Some(t), Some(r), Some(v)) => Some(format!("{t} {r} {v} {}", std::env::consts::ARCH)),
            _ => None,
        };
        let (cpu_model, logical_cpus) = match &cpuinfo {
            Some(text) => parse_cpuinfo(text),
            None => (None, None),
        };
        Self {
            cpu_model,
            logical_cpus,
            available_cpus: std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u64),
            memory_total_bytes: meminfo.as_deref().and_then(parse_meminfo_total),
            os,
        }
    }

    /// One line: `Intel Xeon …, 2 logical CPUs (2 available), 23.5 GiB RAM, Linux 6.1 … x86_64`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.push(
            self.cpu_model
                .clone()
                .unwrap_or_else(|| "unknown CPU".to_string()),
        );
        match (self.logical_cpus, self.available_cpus) {
            (Some(l), Some(a)) if l != a => {
                parts.push(format!("{l} logical CPUs ({a} available to the run)"))
            }
            (Some(l), _) => parts.push(format!("{l} logical CPUs")),
            (None, Some(a)) => parts.push(format!("{a} CPUs available")),
            (None, None) => {}
        }
        if let Some(bytes) = self.memory_total_bytes {
            parts.push(format!("{:.1} GiB RAM", bytes as f64 / (1u64 << 30) as f64));
        }
        if let Some(os) = &self.os {
            parts.push(os.clone());
        }
        parts.join(", ")
    }
}

impl Machine {
    /// Short form for chart subtitles: `2 CPUs, AMD EPYC 7B13`.
    pub fn describe_short(&self) -> String {
        let cpus = self.available_cpus.or(self.logical_cpus);
        match (cpus, &self.cpu_model) {
            (Some(n), Some(m)) => format!("{n} CPUs, {m}"),
            (Some(n), None) => format!("{n} CPUs"),
            (None, Some(m)) => m.clone(),
            (None, None) => "unknown machine".to_string(),
        }
    }
}

fn parse_cpuinfo(text: &str) -> (Option<String>, Option<u64>) {
    let mut model = None;
    let mut count = 0u64;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => count += 1,
            "model name" if model.is_none() => {
                model = Some(value.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            _ => {}
        }
    }
    (model, (count > 0).then_some(count))
}

fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The physical limit of a target at concurrency `c` when every request waits `L` on
/// the upstream: `min(c, cap) / L` requests per second. `None` when `L` is zero.
pub fn physical_limit_rps(concurrency: u64, cap: Option<u64>, latency: Duration) -> Option<f64> {
    if latency.is_zero() {
        return None;
    }
    let slots = cap.map_or(concurrency, |cap| cap.min(concurrency));
    Some(slots as f64 / latency.as_secs_f64())
}

/// Responses whose status is not 2xx.
pub fn non_2xx(status_codes: &BTreeMap<u16, u64>) -> u64 {
    status_codes
        .iter()
        .filter(|(code, _)| !(200..300).contains(*code))
        .map(|(_, n)| n)
        .sum()
}

fn percentile(report: &Report, p: f64) -> Option<f64> {
    report
        .latency_percentiles
        .iter()
        .find(|x| (x.percentile - p).abs() < 1e-9)
        .map(|x| x.latency_secs)
}

impl Row {
    /// The row of `target` at `cell` from the measured run's report.
    pub fn from_report(
        target: &CompareTarget,
        cell: Cell,
        report: &Report,
        upstream_latency: Option<Duration>,
        warmup: Option<WarmupSummary>,
    ) -> Self {
        let s = &report.summary;
        let limit_rps = upstream_latency
            .and_then(|l| physical_limit_rps(cell.concurrency, target.concurrency_cap, l));
        Self {
            test: cell.to_string(),
            requests: cell.requests,
            concurrency: cell.concurrency,
            target: target.name.clone(),
            url: target.url.clone(),
            requests_per_sec: s.requests_per_sec,
            average_secs: s.average_secs,
            p50_secs: percentile(report, 50.0),
            p95_secs: percentile(report, 95.0),
            p99_secs: percentile(report, 99.0),
            fastest_secs: s.fastest_secs,
            slowest_secs: s.slowest_secs,
            total_secs: s.total_secs,
            responses: s.responses,
            errors: s.errors,
            non_2xx: non_2xx(&report.status_codes),
            status_codes: report.status_codes.clone(),
            error_counts: report.errors.clone(),
            latency_percentiles: report.latency_percentiles.clone(),
            limit_rps,
            // Only answered requests count, and not at all when a rate limiter answered
            // most of them: fast refusals would otherwise read as more than 100 %.
            efficiency: match crate::report::rate_limit_warning(&report.status_codes) {
                Some(_) => None,
                None => limit_rps.map(|limit| {
                    let ok: u64 = report
                        .status_codes
                        .iter()
                        .filter(|(code, _)| (200..300).contains(*code))
                        .map(|(_, n)| n)
                        .sum();
                    let ok_rps = if s.total_secs > 0.0 {
                        ok as f64 / s.total_secs
                    } else {
                        0.0
                    };
                    ok_rps / limit
                }),
            },
            warmup,
        }
    }

    /// Failed requests plus non-2xx responses: what makes RPS and efficiency suspect.
    pub fn failures(&self) -> u64 {
        self.errors + self.non_2xx
    }
}

/// The ratio rows for `ratios` over `rows`, per ratio then per cell (cells where either
/// side has no row are skipped).
pub fn ratio_rows(rows: &[Row], matrix: &[Cell], ratios: &[Ratio]) -> Vec<RatioRow> {
    let mut out = Vec::new();
    for r in ratios {
        for cell in matrix {
            let test = cell.to_string();
            let find = |name: &str| rows.iter().find(|x| x.test == test && x.target == name);
            let (Some(a), Some(b)) = (find(&r.numerator), find(&r.denominator)) else {
                continue;
            };
            let div = |x: f64, y: f64| (y > 0.0).then(|| x / y);
            out.push(RatioRow {
                test,
                numerator: r.numerator.clone(),
                denominator: r.denominator.clone(),
                rps_ratio: div(a.requests_per_sec, b.requests_per_sec),
                p95_ratio: match (a.p95_secs, b.p95_secs) {
                    (Some(x), Some(y)) => div(x, y),
                    _ => None,
                },
            });
        }
    }
    out
}

/// `time` as RFC 3339 in UTC with seconds: `2026-11-25T10:56:03Z`.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_c_over_l_capped() {
        let l = Duration::from_millis(100);
        assert_eq!(physical_limit_rps(30, None, l), Some(300.0));
        assert_eq!(physical_limit_rps(100, None, l), Some(1000.0));
        // gunicorn 4 × 10 threads: 40 at once at most.
        assert_eq!(physical_limit_rps(30, Some(40), l), Some(300.0));
        assert_eq!(physical_limit_rps(100, Some(40), l), Some(400.0));
        assert_eq!(physical_limit_rps(100, Some(40), Duration::ZERO), None);
    }

    #[test]
    fn dates_are_utc_rfc3339() {
        let t = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(t(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(t(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn proc_files_parse() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD  EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(
            parse_cpuinfo(cpuinfo),
            (Some("AMD EPYC 7B13".to_string()), Some(2))
        );
        assert_eq!(
            parse_meminfo_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        let m = Machine {
            cpu_model: Some("X".into()),
            logical_cpus: Some(4),
            available_cpus: Some(2),
            memory_total_bytes: Some(3 << 30),
            os: Some("Linux 6.1 #1 x86_64".into()),
        };
        assert_eq!(
            m.describe(),
            "X, 4 logical CPUs (2 available to the run), 3.0 GiB RAM, Linux 6.1 #1 x86_64"
        );
    }

    #[test]
    fn non_2xx_counts_everything_outside_200_299() {
        let codes = BTreeMap::from([(200, 5), (204, 1), (301, 2), (503, 3)]);
        assert_eq!(non_2xx(&codes), 5);
    }
}
