//! The classic results table, as aligned text for a terminal and as a Markdown table for
//! `report.md`:
//!
//! ```text
//! Test      Mode          RPS     Avg latency  P95 latency  Limit  Efficiency
//! 150/30    django-sync   287.1   103.9 ms     109.8 ms     300    95.7%
//! ```
//!
//! `Test` is `n/c`, `Mode` the target's name, latencies in milliseconds. `Limit` and
//! `Efficiency` appear when the upstream latency is known (see
//! [`crate::compare::report`]). A `Failed` column (errors + non-2xx responses) appears
//! when any row has failures, followed by one line per such row saying which; without
//! it a target that fails fast would look fast. Ratio lines follow the table.

use super::report::{CompareReport, Row};

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

/// A latency in seconds as the table shows it: `103.9 ms`, `0.84 ms`, or `n/a`.
pub fn format_latency(secs: Option<f64>) -> String {
    match secs {
        Some(s) => {
            let ms = s * 1000.0;
            if ms < 10.0 {
                format!("{ms:.2} ms")
            } else {
                format!("{ms:.1} ms")
            }
        }
        None => "n/a".to_string(),
    }
}

/// Requests per second: one decimal.
pub fn format_rps(rps: f64) -> String {
    format!("{rps:.1}")
}

/// The rows a rate limiter answered, each with the warning naming the cause and the fix.
fn rate_limited_lines(report: &CompareReport) -> Vec<String> {
    report
        .rows
        .iter()
        .filter_map(|r| {
            crate::report::rate_limit_warning(&r.status_codes)
                .map(|w| format!("{} at {}: {w}", r.target, r.test))
        })
        .collect()
}

/// An efficiency (a fraction) as a percentage: `95.7%`.
pub fn format_efficiency(e: f64) -> String {
    format!("{:.1}%", e * 100.0)
}

fn format_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}×"))
}

struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain(std::iter::once(self.headers[i].chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                match self.align[i] {
                    Align::Left => {
                        out.push_str(cell);
                        out.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        out.push_str(&" ".repeat(pad));
                        out.push_str(cell);
                    }
                }
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
            out
        };
        let mut out = line(self.headers.clone());
        out.push_str(&line(
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        ));
        for r in &self.rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|", self.headers.join(" | "));
        for a in &self.align {
            out.push_str(match a {
                Align::Left => "---|",
                Align::Right => "---:|",
            });
        }
        out.push('\n');
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }
}

fn results_table(report: &CompareReport) -> Table {
    let has_limit = report.rows.iter().any(|r| r.limit_rps.is_some());
    let has_failures = report.rows.iter().any(|r| r.failures() > 0);
    let mut headers = vec!["Test", "Mode", "RPS", "Avg latency", "P95 latency"];
    let mut align = vec![
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    if has_limit {
        headers.extend(["Limit", "Efficiency"]);
        align.extend([Align::Right, Align::Right]);
    }
    if has_failures {
        headers.push("Failed");
        align.push(Align::Right);
    }
    let rows = report
        .rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.test.clone(),
                r.target.clone(),
                format_rps(r.requests_per_sec),
                format_latency((r.responses > 0).then_some(r.average_secs)),
                format_latency(r.p95_secs),
            ];
            if has_limit {
                cells.push(r.limit_rps.map_or("n/a".into(), |l| format!("{l:.0}")));
                cells.push(r.efficiency.map_or("n/a".into(), format_efficiency));
            }
            if has_failures {
                cells.push(r.failures().to_string());
            }
            cells
        })
        .collect();
    Table {
        headers,
        align,
        rows,
    }
}

/// `503 ×120, timeout ×3` for a row with failures.
fn failure_detail(r: &Row) -> String {
    let mut parts: Vec<String> = r
        .status_codes
        .iter()
        .filter(|(code, _)| !(200..300).contains(*code))
        .map(|(code, n)| format!("status {code} ×{n}"))
        .collect();
    for e in &r.error_counts {
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        parts.push(format!("{kind} ×{} ({})", e.count, e.message));
    }
    parts.join(", ")
}

fn failure_lines(report: &CompareReport) -> Vec<String> {
    report
        .rows
        .iter()
        .filter(|r| r.failures() > 0)
        .map(|r| format!("{} {}: {}", r.test, r.target, failure_detail(r)))
        .collect()
}

fn ratio_table(report: &CompareReport) -> Table {
    Table {
        headers: vec!["Test", "Ratio", "RPS", "P95 latency"],
        align: vec![Align::Left, Align::Left, Align::Right, Align::Right],
        rows: report
            .ratios
            .iter()
            .map(|r| {
                vec![
                    r.test.clone(),
                    format!("{} / {}", r.numerator, r.denominator),
                    format_ratio(r.rps_ratio),
                    format_ratio(r.p95_ratio),
                ]
            })
            .collect(),
    }
}

/// Rows that beat their physical limit by more than measurement noise: the declared cap
/// or upstream latency does not match the target.
fn beyond_limit(report: &CompareReport) -> Vec<String> {
    report
        .rows
        .iter()
        .filter(|r| {
            r.efficiency
                .is_some_and(|e| e > 1.0 + BEYOND_LIMIT_TOLERANCE)
        })
        .map(|r| format!("{} {}", r.test, r.target))
        .collect()
}

/// RPS can never exceed `c / L` (each connection finishes at most one request per `L`);
/// 2 % allows for rounding of the latency and timer slack.
const BEYOND_LIMIT_TOLERANCE: f64 = 0.02;

fn beyond_limit_line(report: &CompareReport) -> Option<String> {
    let rows = beyond_limit(report);
    (!rows.is_empty()).then(|| {
        format!(
            "Efficiency above 100% ({}): a limit cannot be beaten, so the upstream latency or the @CAP given does not match that target.",
            rows.join(", ")
        )
    })
}

fn latency_line(report: &CompareReport) -> String {
    match report.upstream_latency_secs {
        Some(l) if l > 0.0 => format!(
            "Upstream latency L = {}; Limit = min(c, cap) / L requests/s, Efficiency = RPS / Limit.",
            format_latency(Some(l))
        ),
        Some(_) => "Upstream latency L = 0: no physical limit to compare with.".to_string(),
        None => "Upstream latency not given: no physical limit to compare with.".to_string(),
    }
}

impl CompareReport {
    /// The table, failure lines and ratio lines as aligned text (what `keel compare`
    /// prints).
    pub fn to_text(&self) -> String {
        let mut out = results_table(self).text();
        let limited = rate_limited_lines(self);
        if !limited.is_empty() {
            out.push_str("\nWarning: rate limited (these rows' efficiency is n/a):\n");
            for line in limited {
                out.push_str(&format!("  {line}\n"));
            }
        }
        let failures = failure_lines(self);
        if !failures.is_empty() {
            out.push_str("\nFailed requests (RPS counts them; efficiency is suspect):\n");
            for line in failures {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if !self.ratios.is_empty() {
            out.push_str(
                "\nRatios at the same cell (RPS: higher is better for the first; P95: lower is):\n",
            );
            out.push_str(&ratio_table(self).text());
        }
        out.push('\n');
        out.push_str(&latency_line(self));
        out.push('\n');
        if let Some(line) = beyond_limit_line(self) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// The same as Markdown: the results table, failures as a list, the ratio table.
    pub fn to_markdown(&self) -> String {
        let mut out = results_table(self).markdown();
        out.push('\n');
        out.push_str(&latency_line(self));
        out.push('\n');
        if let Some(line) = beyond_limit_line(self) {
            out.push('\n');
            out.push_str(&line);
            out.push('\n');
        }
        let limited = rate_limited_lines(self);
        if !limited.is_empty() {
            out.push_str("\n**Warning: rate limited** (these rows' efficiency is n/a):\n\n");
            for line in limited {
                out.push_str(&format!("- {line}\n"));
            }
        }
        let failures = failure_lines(self);
        if !failures.is_empty() {
            out.push_str("\nFailed requests (RPS counts them, so these rows' RPS and efficiency are suspect):\n\n");
            for line in failures {
                out.push_str(&format!("- {line}\n"));
            }
        }
        if !self.ratios.is_empty() {
            out.push_str("\nRatios at the same cell (RPS: higher is better for the first target; P95 latency: lower is):\n\n");
            out.push_str(&ratio_table(self).markdown());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::compare::report::{Machine, RatioRow};
    use crate::error::ErrorKind;
    use crate::report::ErrorCount;

    fn row(test: &str, target: &str, rps: f64, p95: f64, limit: Option<f64>) -> Row {
        Row {
            test: test.into(),
            requests: 150,
            concurrency: 30,
            target: target.into(),
            url: "http://127.0.0.1:1/".into(),
            requests_per_sec: rps,
            average_secs: p95 * 0.9,
            p50_secs: Some(p95 * 0.9),
            p95_secs: Some(p95),
            p99_secs: Some(p95),
            fastest_secs: 0.1,
            slowest_secs: p95,
            total_secs: 0.5,
            responses: 150,
            errors: 0,
            non_2xx: 0,
            status_codes: BTreeMap::from([(200, 150)]),
            error_counts: Vec::new(),
            latency_percentiles: Vec::new(),
            limit_rps: limit,
            efficiency: limit.map(|l| rps / l),
            warmup: None,
        }
    }

    fn report(rows: Vec<Row>) -> CompareReport {
        CompareReport {
            schema_version: 1,
            started_at: "2026-11-25T10:00:00Z".into(),
            finished_at: "2026-11-25T10:01:00Z".into(),
            command_line: None,
            upstream_latency_secs: Some(0.1),
            warmup: true,
            machine: Machine {
                cpu_model: None,
                logical_cpus: None,
                available_cpus: None,
                memory_total_bytes: None,
                os: None,
            },
            targets: Vec::new(),
            matrix: Vec::new(),
            rows,
            ratios: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn text_table_is_the_classic_one() {
        let r = report(vec![
            row("150/30", "django-sync", 287.08, 0.10981, Some(300.0)),
            row("150/30", "keel-async", 296.5, 0.1012, Some(300.0)),
        ]);
        let expected = "\
Test    Mode           RPS  Avg latency  P95 latency  Limit  Efficiency
------  -----------  -----  -----------  -----------  -----  ----------
150/30  django-sync  287.1      98.8 ms     109.8 ms    300       95.7%
150/30  keel-async   296.5      91.1 ms     101.2 ms    300       98.8%

Upstream latency L = 100.0 ms; Limit = min(c, cap) / L requests/s, Efficiency = RPS / Limit.
";
        assert_eq!(r.to_text(), expected);
    }

    #[test]
    fn failures_and_ratios_are_shown() {
        let mut bad = row("150/30", "nginx", 2000.0, 0.001, None);
        bad.non_2xx = 120;
        bad.errors = 3;
        bad.status_codes = BTreeMap::from([(200, 30), (503, 120)]);
        bad.error_counts = vec![ErrorCount {
            kind: ErrorKind::Timeout,
            message: "timeout".into(),
            count: 3,
        }];
        let mut r = report(vec![row("150/30", "django", 100.0, 0.2, None), bad]);
        r.upstream_latency_secs = None;
        r.ratios = vec![RatioRow {
            test: "150/30".into(),
            numerator: "nginx".into(),
            denominator: "django".into(),
            rps_ratio: Some(20.0),
            p95_ratio: None,
        }];
        let text = r.to_text();
        assert!(!text.contains("Efficiency"), "{text}");
        assert!(text.lines().next().unwrap().ends_with("Failed"), "{text}");
        assert!(
            text.contains("150/30 nginx: status 503 ×120, timeout ×3 (timeout)"),
            "{text}"
        );
        let ratio_line = text.lines().find(|l| l.contains("nginx / django")).unwrap();
        assert_eq!(
            ratio_line.split_whitespace().collect::<Vec<_>>(),
            ["150/30", "nginx", "/", "django", "20.00×", "n/a"]
        );
        let md = r.to_markdown();
        assert!(md.starts_with("| Test | Mode | RPS | Avg latency | P95 latency | Failed |\n|---|---|---:|---:|---:|---:|\n"), "{md}");
        assert!(
            md.contains("| 150/30 | nginx | 2000.0 | 0.90 ms | 1.00 ms | 123 |"),
            "{md}"
        );
        assert!(
            md.contains("| 150/30 | nginx / django | 20.00× | n/a |"),
            "{md}"
        );
    }

    #[test]
    fn beating_the_limit_is_called_out() {
        let r = report(vec![
            row("150/30", "honest", 294.0, 0.1, Some(300.0)),
            row("150/30", "wrong-cap", 300.0, 0.1, Some(160.0)),
        ]);
        let text = r.to_text();
        assert!(
            text.contains("Efficiency above 100% (150/30 wrong-cap):"),
            "{text}"
        );
        assert!(!text.contains("honest:"), "{text}");
        assert!(r
            .to_markdown()
            .contains("Efficiency above 100% (150/30 wrong-cap)"));
    }

    #[test]
    fn latency_format_keeps_small_values_readable() {
        assert_eq!(format_latency(Some(0.10981)), "109.8 ms");
        assert_eq!(format_latency(Some(0.000843)), "0.84 ms");
        assert_eq!(format_latency(None), "n/a");
        assert_eq!(format_efficiency(0.95731), "95.7%");
    }
}
