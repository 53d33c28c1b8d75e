//! The files a comparison leaves in `--out DIR`, named so that a dated folder per run
//! can sit under `bench/runs/` as ripgrep's benchsuite keeps them:
//!
//! | file | what |
//! |---|---|
//! | `report.md` | the table, ratios, charts, the machine (`/proc/cpuinfo`, `/proc/meminfo`, `uname`), the date, the command line, the caller's notes and the definitions |
//! | `results.json` | every number ([`CompareReport`]), following `schema/compare.schema.json` |
//! | `rps.svg`, `rps.png` | requests per second per cell, a bar per target, limits dashed |
//! | `p95.svg`, `p95.png` | p95 latency per cell, a bar per target |
//!
//! Files are written whole and replaced, never appended to: a second run into the same
//! directory leaves only its own results.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::chart::{self, Fonts};
use super::report::CompareReport;
use super::table::format_latency;
use crate::error::CompareError;

/// What [`write_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    /// Every file, in the order of the module docs' table.
    pub paths: Vec<PathBuf>,
    /// The font family of the PNGs' text; `None`: no font was found, the PNGs have no text.
    pub png_font: Option<String>,
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<PathBuf, CompareError> {
    std::fs::write(&path, bytes).map_err(|source| CompareError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Writes every file into `dir` (created if missing), with the system's fonts for PNG
/// text. Blocking: call it from `spawn_blocking` in async code.
pub fn write_files(report: &CompareReport, dir: &Path) -> Result<WrittenFiles, CompareError> {
    write_files_with_fonts(report, dir, &Fonts::system())
}

/// [`write_files`] with the given fonts ([`Fonts::none`] for PNGs without text).
pub fn write_files_with_fonts(
    report: &CompareReport,
    dir: &Path,
    fonts: &Fonts,
) -> Result<WrittenFiles, CompareError> {
    std::fs::create_dir_all(dir).map_err(|source| CompareError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let rps = chart::rps_svg(report);
    let p95 = chart::p95_svg(report);
    let rps_png = chart::svg_to_png("rps", &rps, fonts)?;
    let p95_png = chart::svg_to_png("p95", &p95, fonts)?;
    let markdown = report_markdown(report, fonts.family());
    let json = serde_json::to_string_pretty(report)? + "\n";
    let paths = vec![
        write(dir.join("report.md"), markdown.as_bytes())?,
        write(dir.join("results.json"), json.as_bytes())?,
        write(dir.join("rps.svg"), rps.as_bytes())?,
        write(dir.join("rps.png"), &rps_png)?,
        write(dir.join("p95.svg"), p95.as_bytes())?,
        write(dir.join("p95.png"), &p95_png)?,
    ];
    Ok(WrittenFiles {
        paths,
        png_font: fonts.family().map(str::to_string),
    })
}

/// The text of `report.md`; `png_font` as in [`WrittenFiles::png_font`].
pub fn report_markdown(report: &CompareReport, png_font: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# keel compare, {}\n", report.started_at);
    s.push_str(&report.to_markdown());

    s.push_str("\n## Charts\n\n![Requests per second per cell](rps.svg)\n\n![P95 latency per cell](p95.svg)\n\n");
    let _ = writeln!(
        s,
        "PNG versions: [rps.png](rps.png), [p95.png](p95.png) ({}).",
        match png_font {
            Some(f) => format!("text drawn with {f}"),
            None => "no font was found, so they have bars but no text; install a font such as Debian's fonts-dejavu-core".to_string(),
        }
    );

    let m = &report.machine;
    let unknown = || "unknown".to_string();
    s.push_str("\n## Machine\n\n");
    let _ = writeln!(s, "- CPU: {}", m.cpu_model.clone().unwrap_or_else(unknown));
    let _ = writeln!(
        s,
        "- Logical CPUs: {} ({} available to the run)",
        m.logical_cpus.map_or_else(unknown, |n| n.to_string()),
        m.available_cpus.map_or_else(unknown, |n| n.to_string())
    );
    let _ = writeln!(
        s,
        "- Memory: {}",
        m.memory_total_bytes.map_or_else(unknown, |b| format!(
            "{:.1} GiB",
            b as f64 / (1u64 << 30) as f64
        ))
    );
    let _ = writeln!(
        s,
        "- OS (uname -srvm): {}",
        m.os.clone().unwrap_or_else(unknown)
    );

    s.push_str("\n## Run\n\n");
    let _ = writeln!(
        s,
        "- Started {}, finished {}.",
        report.started_at, report.finished_at
    );
    let _ = writeln!(
        s,
        "- Upstream latency: {}.",
        report
            .upstream_latency_secs
            .map_or("not given".to_string(), |l| format_latency(Some(l)))
    );
    let _ = writeln!(
        s,
        "- Matrix: {}.",
        report
            .matrix
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "- Warm-up: {}.",
        if report.warmup {
            "c requests at concurrency c before each measured run"
        } else {
            "none"
        }
    );
    s.push_str("- Targets, one after another, never at the same time:\n");
    for t in &report.targets {
        let cap = t
            .concurrency_cap
            .map_or(String::new(), |c| format!(" (serves at most {c} at once)"));
        let _ = writeln!(s, "  - `{}`: {}{cap}", t.name, t.url);
    }
    if let Some(cmd) = &report.command_line {
        let _ = writeln!(s, "\nCommand:\n\n```sh\n{cmd}\n```");
    }

    if !report.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &report.notes {
            let _ = writeln!(s, "- {n}");
        }
    }

    s.push_str(
        "\n## Definitions\n\n\
- **Test** `n/c`: `n` requests with `c` connections, each sending its next request when the previous answered (hey's `-n n -c c`).\n\
- **RPS**: finished requests (failed ones included, as hey counts) over the run's wall time.\n\
- **Avg latency**, **P95 latency**: over responses of any status, from the send to the end of the body.\n\
- **Limit**: `min(c, cap) / L`, the most requests per second a server can finish when each waits `L` on the upstream and it serves at most `cap` at once (no cap: `c`).\n\
- **Efficiency**: RPS / Limit.\n\
- **Failed** (shown only when there are any): failed requests plus non-2xx responses.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::Machine;

    fn empty_report() -> CompareReport {
        CompareReport {
            schema_version: 1,
            started_at: "2026-11-25T10:00:00Z".into(),
            finished_at: "2026-11-25T10:01:00Z".into(),
            command_line: Some("compare --target a=http://127.0.0.1:1/".into()),
            upstream_latency_secs: None,
            warmup: false,
            machine: Machine {
                cpu_model: None,
                logical_cpus: None,
                available_cpus: None,
                memory_total_bytes: None,
                os: None,
            },
            targets: Vec::new(),
            matrix: Vec::new(),
            rows: Vec::new(),
            ratios: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn report_md_says_when_pngs_have_no_text() {
        let r = empty_report();
        let without = report_markdown(&r, None);
        assert!(without.contains("no font was found"), "{without}");
        assert!(without.contains("fonts-dejavu-core"), "{without}");
        let with = report_markdown(&r, Some("DejaVu Sans"));
        assert!(with.contains("text drawn with DejaVu Sans"), "{with}");
        assert!(with.contains("- CPU: unknown"), "{with}");
        assert!(with.contains("- Warm-up: none."), "{with}");
        assert!(
            with.contains("```sh\ncompare --target a=http://127.0.0.1:1/\n```"),
            "{with}"
        );
    }
}
