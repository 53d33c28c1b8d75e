//! Output formats for a [`Report`]: hey's text summary, hey's CSV, and JSON.
//!
//! The text is hey 0.1.4's template byte for byte — the same section titles, tabs, blank
//! lines, `%4.4f` seconds and `■` bars — so scripts that grep `Requests/sec:` or
//! `50% in` keep working. Deliberate differences: a `99.9% in` line after `99% in`; no
//! `NaN` when nothing succeeded (0.0000 instead); no `0% in 0.0000 secs` filler lines;
//! "req write" is always 0 (see [`crate::report::Details`]); error lines carry keel's
//! messages (`dial tcp 127.0.0.1:1: connect: connection refused`), not Go's.
//!
//! The CSV is hey's: header `response-time,DNS+dialup,DNS,Request-write,Response-delay,
//! Response-read,status-code,offset` and one row per successful response, seconds with
//! four decimals. Rows exist only when the run was made with `OutputFormat::Csv` (the
//! run keeps them only then); a trailing comment line says how many were dropped by the
//! `csv_max_records` cap, if any.

use crate::error::BenchError;
use crate::options::OutputFormat;
use crate::report::Report;

const BAR: &str = "■";
const BAR_WIDTH: u64 = 40;

impl Report {
    /// The report in `format`.
    pub fn render(&self, format: OutputFormat) -> Result<String, BenchError> {
        Ok(match format {
            OutputFormat::Text => self.to_text(),
            OutputFormat::Csv => self.to_csv(),
            OutputFormat::Json => self.to_json()?,
        })
    }

    /// hey's summary text.
    pub fn to_text(&self) -> String {
        let s = &self.summary;
        let mut out = String::with_capacity(2048);
        out.push_str("\nSummary:\n");
        out.push_str(&format!("  Total:\t{:.4} secs\n", s.total_secs));
        out.push_str(&format!("  Slowest:\t{:.4} secs\n", s.slowest_secs));
        out.push_str(&format!("  Fastest:\t{:.4} secs\n", s.fastest_secs));
        out.push_str(&format!("  Average:\t{:.4} secs\n", s.average_secs));
        out.push_str(&format!("  Requests/sec:\t{:.4}\n  ", s.requests_per_sec));
        if s.total_bytes > 0 {
            out.push_str(&format!("\n  Total data:\t{} bytes", s.total_bytes));
            out.push_str(&format!(
                "\n  Size/request:\t{} bytes",
                s.size_per_request_bytes
            ));
        }
        out.push_str("\n\nResponse time histogram:\n");
        let max = self.histogram.iter().map(|b| b.count).max().unwrap_or(0);
        for b in &self.histogram {
            // hey rounds to the nearest whole bar: (count·40 + max/2) / max.
            let bar = (b.count * BAR_WIDTH + max / 2)
                .checked_div(max)
                .unwrap_or(0);
            out.push_str(&format!(
                "  {:.3} [{}]\t|{}\n",
                b.mark_secs,
                b.count,
                BAR.repeat(usize::try_from(bar).unwrap_or(0))
            ));
        }
        out.push_str("\n\nLatency distribution:");
        for p in &self.latency_percentiles {
            out.push_str(&format!(
                "\n  {}% in {:.4} secs",
                p.percentile, p.latency_secs
            ));
        }
        out.push_str("\n\nDetails (average, fastest, slowest):");
        let d = &self.details;
        for (name, phase) in [
            ("DNS+dialup", d.dns_dialup),
            ("DNS-lookup", d.dns_lookup),
            ("req write", d.request_write),
            ("resp wait", d.response_wait),
            ("resp read", d.response_read),
        ] {
            out.push_str(&format!(
                "\n  {name}:\t{:.4} secs, {:.4} secs, {:.4} secs",
                phase.average_secs, phase.fastest_secs, phase.slowest_secs
            ));
        }
        out.push_str("\n\nStatus code distribution:");
        for (code, n) in &self.status_codes {
            out.push_str(&format!("\n  [{code}]\t{n} responses"));
        }
        out.push_str("\n\n");
        if !self.errors.is_empty() {
            out.push_str("Error distribution:");
            for e in &self.errors {
                out.push_str(&format!("\n  [{}]\t{}", e.count, e.message));
            }
        }
        out.push_str("\n\n");
        out
    }

    /// hey's `-o csv`.
    pub fn to_csv(&self) -> String {
        let secs = |us: u32| f64::from(us) / 1e6;
        let mut out = String::with_capacity(64 + self.records.len() * 64);
        out.push_str(
            "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset",
        );
        for r in &self.records {
            out.push_str(&format!(
                "\n{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{},{:.4}",
                secs(r.latency_us),
                secs(r.dns_dialup_us),
                secs(r.dns_us),
                secs(r.request_write_us),
                secs(r.response_delay_us),
                secs(r.response_read_us),
                r.status,
                secs(r.offset_us),
            ));
        }
        out.push('\n');
        if self.records_dropped > 0 {
            out.push_str(&format!(
                "# {} more responses not listed (csv_max_records)\n",
                self.records_dropped
            ));
        }
        out
    }

    /// Pretty-printed JSON following `schema/report.schema.json`.
    pub fn to_json(&self) -> Result<String, BenchError> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::error::ErrorKind;
    use crate::report::*;

    fn sample() -> Report {
        Report {
            summary: Summary {
                total_secs: 0.51234,
                slowest_secs: 0.0525,
                fastest_secs: 0.0510,
                average_secs: 0.0518,
                requests_per_sec: 192.72791,
                total_bytes: 1300,
                size_per_request_bytes: 13,
                requests: 102,
                responses: 100,
                errors: 2,
                first_request_at_secs: Some(0.0001),
                last_response_at_secs: Some(0.512),
            },
            latency_percentiles: vec![
                Percentile {
                    percentile: 10.0,
                    latency_secs: 0.0512,
                },
                Percentile {
                    percentile: 99.9,
                    latency_secs: 0.0525,
                },
            ],
            histogram: vec![
                Bucket {
                    mark_secs: 0.051,
                    count: 1,
                    frequency: 0.01,
                },
                Bucket {
                    mark_secs: 0.0525,
                    count: 99,
                    frequency: 0.99,
                },
            ],
            details: Details::default(),
            status_codes: BTreeMap::from([(200, 75), (500, 25)]),
            errors: vec![ErrorCount {
                kind: ErrorKind::ConnectRefused,
                message: "dial tcp 127.0.0.1:1: connect: connection refused".into(),
                count: 2,
            }],
            run: RunInfo {
                url: "http://127.0.0.1:1/".into(),
                method: "GET".into(),
                concurrency: 1,
                requests: Some(102),
                duration_secs: None,
                qps_per_worker: None,
                rate_per_sec: None,
                timeout_secs: Some(20.0),
                keepalive: true,
                latency_from: LatencyFrom::Send,
            },
            records: vec![RequestRecord {
                latency_us: 52_100,
                dns_dialup_us: 100,
                dns_us: 0,
                request_write_us: 0,
                response_delay_us: 51_700,
                response_read_us: 100,
                status: 200,
                offset_us: 200,
            }],
            records_dropped: 0,
        }
    }

    #[test]
    fn text_is_heys_layout() {
        let text = sample().to_text();
        let expected = "\nSummary:\n  Total:\t0.5123 secs\n  Slowest:\t0.0525 secs\n  Fastest:\t0.0510 secs\n  Average:\t0.0518 secs\n  Requests/sec:\t192.7279\n  \n  Total data:\t1300 bytes\n  Size/request:\t13 bytes\n\nResponse time histogram:\n  0.051 [1]\t|\n  0.052 [99]\t|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■\n\n\nLatency distribution:\n  10% in 0.0512 secs\n  99.9% in 0.0525 secs\n\nDetails (average, fastest, slowest):\n  DNS+dialup:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n  DNS-lookup:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n  req write:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n  resp wait:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n  resp read:\t0.0000 secs, 0.0000 secs, 0.0000 secs\n\nStatus code distribution:\n  [200]\t75 responses\n  [500]\t25 responses\n\nError distribution:\n  [2]\tdial tcp 127.0.0.1:1: connect: connection refused\n\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn text_without_data_or_errors_matches_hey_too() {
        let mut r = sample();
        r.summary.total_bytes = 0;
        r.errors.clear();
        let text = r.to_text();
        assert!(text.contains("  Requests/sec:\t192.7279\n  \n\nResponse time histogram:\n"));
        assert!(text.ends_with("  [500]\t25 responses\n\n\n\n"), "{text:?}");
    }

    #[test]
    fn csv_is_heys_columns() {
        let csv = sample().to_csv();
        assert_eq!(
            csv,
            "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset\n0.0521,0.0001,0.0000,0.0000,0.0517,0.0001,200,0.0002\n"
        );
    }

    #[test]
    fn json_has_the_top_level_sections() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        for key in [
            "summary",
            "latency_percentiles",
            "histogram",
            "details",
            "status_codes",
            "errors",
            "run",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert!(v.get("records").is_none());
        assert_eq!(v["status_codes"]["500"], 25);
        assert_eq!(v["errors"][0]["kind"], "connect_refused");
    }
}
