//! What a `keel compare` run measures: [`CompareOptions`] with its targets
//! ([`CompareTarget`], `NAME=URL[@CAP]`), its matrix of cells ([`Cell`], `NxC`) and the
//! RPS ratios to print ([`Ratio`], `A/B`), plus [`CompareOptions::validate`], which checks
//! everything before the first request is sent (a typo in the third target should not
//! surface after ten minutes of load on the first two).
//!
//! ## The concurrency cap (`@CAP`)
//!
//! The physical limit of a target that waits `L` on an upstream for every request is
//! `c / L` requests per second at concurrency `c`: no server can do better, however fast.
//! A server that can only work on `CAP` requests at once (gunicorn `--workers 4
//! --threads 10` blocks one thread per request: `CAP = 40`) has the lower limit
//! `min(c, CAP) / L`. Give the cap after the URL, `django-sync=http://127.0.0.1:8000/sync/test@40`,
//! or in [`CompareTarget::concurrency_cap`]; the efficiency column then compares the
//! target with what its own architecture allows rather than with what an async server
//! could do. A trailing `@DIGITS` is always read as the cap (URLs with `user@` are not
//! supported by the load generator anyway).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::error::CompareError;
use crate::options::{BenchOptions, OutputFormat};

/// The classic write-up's matrix: `150x30,300x50,1000x100`.
pub const DEFAULT_MATRIX: &str = "150x30,300x50,1000x100";

/// One side of the comparison: a named URL, optionally with a known concurrency cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompareTarget {
    /// Shown in the `Mode` column and the charts' legends. Letters, digits, `.`, `_`,
    /// `+` and `-` only, so that it is safe in a table, a file and a `--ratio A/B`.
    pub name: String,
    /// `http://host:port/path`.
    pub url: String,
    /// The most requests the target can serve at once (gunicorn: workers × threads);
    /// its limit is then `min(c, cap) / L` (see the module docs).
    pub concurrency_cap: Option<u64>,
}

impl CompareTarget {
    /// A target without a cap.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            concurrency_cap: None,
        }
    }

    /// The same target with a concurrency cap.
    pub fn with_cap(mut self, cap: u64) -> Self {
        self.concurrency_cap = Some(cap);
        self
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

impl FromStr for CompareTarget {
    type Err = CompareError;

    /// `NAME=URL` or `NAME=URL@CAP`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| CompareError::Target {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (name, rest) = s.split_once('=').ok_or_else(|| bad("missing '='"))?;
        if !valid_name(name) {
            return Err(bad(
                "the name must be letters, digits, '.', '_', '+' or '-' and not empty",
            ));
        }
        let (url, cap) = match rest.rsplit_once('@') {
            Some((url, digits))
                if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) =>
            {
                let cap: u64 = digits.parse().map_err(|_| bad("the cap is too large"))?;
                if cap == 0 {
                    return Err(bad("the cap must be at least 1"));
                }
                (url, Some(cap))
            }
            _ => (rest, None),
        };
        if url.is_empty() {
            return Err(bad("the URL is empty"));
        }
        Ok(Self {
            name: name.to_string(),
            url: url.to_string(),
            concurrency_cap: cap,
        })
    }
}

impl fmt::Display for CompareTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.url)?;
        if let Some(cap) = self.concurrency_cap {
            write!(f, "@{cap}")?;
        }
        Ok(())
    }
}

/// One cell of the matrix: `requests` requests (`-n`) at `concurrency` (`-c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// `-n`.
    pub requests: u64,
    /// `-c`.
    pub concurrency: u64,
}

impl Cell {
    /// `requests` at `concurrency`.
    pub fn new(requests: u64, concurrency: u64) -> Self {
        Self {
            requests,
            concurrency,
        }
    }
}

impl fmt::Display for Cell {
    /// The classic table's `Test` column: `150/30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.requests, self.concurrency)
    }
}

impl FromStr for Cell {
    type Err = CompareError;

    /// `150x30` (also `150/30`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| CompareError::Matrix {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (n, c) = s
            .trim()
            .split_once(['x', 'X', '/'])
            .ok_or_else(|| bad("missing 'x' between requests and concurrency"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| bad("the request count is not a whole number"))?;
        let c: u64 = c
            .trim()
            .parse()
            .map_err(|_| bad("the concurrency is not a whole number"))?;
        if c == 0 {
            return Err(bad("the concurrency must be at least 1"));
        }
        if n < c {
            return Err(bad(
                "the request count must be at least the concurrency (as hey requires)",
            ));
        }
        Ok(Self::new(n, c))
    }
}

/// Parses a matrix: cells separated by commas, `150x30,300x50,1000x100`.
pub fn parse_matrix(s: &str) -> Result<Vec<Cell>, CompareError> {
    let cells = s
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Cell>, _>>()?;
    if cells.is_empty() {
        return Err(CompareError::Matrix {
            input: s.to_string(),
            reason: "no cells".into(),
        });
    }
    Ok(cells)
}

/// The default matrix, [`DEFAULT_MATRIX`].
pub fn default_matrix() -> Vec<Cell> {
    vec![Cell::new(150, 30), Cell::new(300, 50), Cell::new(1000, 100)]
}

/// A line of the ratios section: `numerator`'s RPS divided by `denominator`'s, per cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ratio {
    /// Target name above the line (e.g. `keel-async`).
    pub numerator: String,
    /// Target name below the line (e.g. `django-async`).
    pub denominator: String,
}

impl FromStr for Ratio {
    type Err = CompareError;

    /// `keel-async/django-async`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((a, b)) if valid_name(a) && valid_name(b) => Ok(Self {
                numerator: a.to_string(),
                denominator: b.to_string(),
            }),
            _ => Err(CompareError::Ratio(s.to_string())),
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

/// Everything a `keel compare` run needs. Build with [`CompareOptions::default`] and set
/// the fields; [`crate::compare::run_compare`] calls [`CompareOptions::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// `--target NAME=URL[@CAP]`, in the order given: rows and bars follow it.
    pub targets: Vec<CompareTarget>,
    /// `--matrix`; default [`default_matrix`].
    pub matrix: Vec<Cell>,
    /// `--upstream-latency`: the fixed latency of the upstream every target calls. When
    /// known and above zero, rows get `Limit` (`min(c, cap) / L`) and `Efficiency`.
    pub upstream_latency: Option<Duration>,
    /// Before each measured run, send `c` requests at concurrency `c` (default true):
    /// connections are open, worker processes forked, lazy imports done.
    pub warmup: bool,
    /// `--out`: write `report.md`, `results.json` and the charts here (created if needed).
    pub out_dir: Option<PathBuf>,
    /// `--baseline NAME`: add a ratio line `T/NAME` for every other target `T`.
    pub baseline: Option<String>,
    /// `--ratio A/B`: ratio lines to add (after the baseline's).
    pub ratios: Vec<Ratio>,
    /// Pause between two measured runs (default 1 s), so that one target's closing
    /// connections and busy workers do not spill into the next run.
    pub settle: Duration,
    /// Template for every run: the cell sets `url`, `requests` and `concurrency` and
    /// clears `duration`; everything else (timeout, headers, method, keep-alive, `-q`,
    /// `--rate`) is used as given. `output` is ignored (no per-request records are kept).
    pub bench: BenchOptions,
    /// The command line to print in `report.md` (the caller knows it; the library does not
    /// read its process's arguments).
    pub command_line: Option<String>,
    /// Free-form lines for `report.md`'s notes (server versions, how the peers ran, …).
    pub notes: Vec<String>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            matrix: default_matrix(),
            upstream_latency: None,
            warmup: true,
            out_dir: None,
            baseline: None,
            ratios: Vec::new(),
            settle: Duration::from_secs(1),
            bench: BenchOptions::default(),
            command_line: None,
            notes: Vec::new(),
        }
    }
}

impl CompareOptions {
    /// The load options of one run of `target` at `cell`.
    pub fn bench_options(
        &self,
        target: &CompareTarget,
        requests: u64,
        concurrency: u64,
    ) -> BenchOptions {
        let mut o = self.bench.clone();
        o.url = target.url.clone();
        o.requests = requests;
        o.concurrency = usize::try_from(concurrency).unwrap_or(usize::MAX);
        o.duration = None;
        o.output = OutputFormat::Json;
        o
    }

    /// Every ratio line: the baseline's first (in target order), then `ratios`.
    pub fn all_ratios(&self) -> Vec<Ratio> {
        let mut out = Vec::new();
        if let Some(base) = &self.baseline {
            for t in self.targets.iter().filter(|t| &t.name != base) {
                out.push(Ratio {
                    numerator: t.name.clone(),
                    denominator: base.clone(),
                });
            }
        }
        for r in &self.ratios {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }

    /// Checks the options without sending anything: at least one target, unique names,
    /// a non-empty matrix of valid cells, ratio and baseline names that exist, and load
    /// options that the load generator accepts for every target and cell.
    pub fn validate(&self) -> Result<(), CompareError> {
        if self.targets.is_empty() {
            return Err(CompareError::NoTargets);
        }
        for (i, t) in self.targets.iter().enumerate() {
            if !valid_name(&t.name) {
                return Err(CompareError::Target {
                    input: t.to_string(),
                    reason: "the name must be letters, digits, '.', '_', '+' or '-' and not empty"
                        .into(),
                });
            }
            if t.concurrency_cap == Some(0) {
                return Err(CompareError::Target {
                    input: t.to_string(),
                    reason: "the cap must be at least 1".into(),
                });
            }
            if self.targets[..i].iter().any(|u| u.name == t.name) {
                return Err(CompareError::DuplicateTarget(t.name.clone()));
            }
        }
        if self.matrix.is_empty() {
            return Err(CompareError::Matrix {
                input: String::new(),
                reason: "no cells".into(),
            });
        }
        for cell in &self.matrix {
            // Re-parse the display form: one set of rules for parsed and built cells.
            format!("{}x{}", cell.requests, cell.concurrency).parse::<Cell>()?;
        }
        let known = || {
            self.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let exists = |name: &str| self.targets.iter().any(|t| t.name == name);
        if let Some(base) = &self.baseline {
            if !exists(base) {
                return Err(CompareError::UnknownTarget {
                    flag: "--baseline",
                    name: base.clone(),
                    known: known(),
                });
            }
        }
        for r in &self.ratios {
            for name in [&r.numerator, &r.denominator] {
                if !exists(name) {
                    return Err(CompareError::UnknownTarget {
                        flag: "--ratio",
                        name: name.clone(),
                        known: known(),
                    });
                }
            }
        }
        for t in &self.targets {
            for cell in &self.matrix {
                self.bench_options(t, cell.requests, cell.concurrency)
                    .validate()
                    .map_err(|e| CompareError::Bench {
                        target: t.name.clone(),
                        test: cell.to_string(),
                        source: e.into(),
                    })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_with_and_without_cap() {
        let t: CompareTarget = "django-sync=http://127.0.0.1:8000/sync/test@40"
            .parse()
            .unwrap();
        assert_eq!(t.name, "django-sync");
        assert_eq!(t.url, "http://127.0.0.1:8000/sync/test");
        assert_eq!(t.concurrency_cap, Some(40));
        assert_eq!(
            t.to_string(),
            "django-sync=http://127.0.0.1:8000/sync/test@40"
        );

        let t: CompareTarget = "keel-async=http://127.0.0.1:8080/async/test?x=a=b"
            .parse()
            .unwrap();
        assert_eq!(t.url, "http://127.0.0.1:8080/async/test?x=a=b");
        assert_eq!(t.concurrency_cap, None);

        // An '@' not followed by digits only stays in the URL.
        let t: CompareTarget = "a=http://h/p@x".parse().unwrap();
        assert_eq!((t.url.as_str(), t.concurrency_cap), ("http://h/p@x", None));
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        for (input, reason) in [
            ("http://h/", "missing '='"),
            ("=http://h/", "the name"),
            ("a b=http://h/", "the name"),
            ("a/b=http://h/", "the name"),
            ("a=", "the URL is empty"),
            ("a=http://h/@0", "at least 1"),
        ] {
            let e = input.parse::<CompareTarget>().unwrap_err().to_string();
            assert!(e.contains(reason), "{input}: {e}");
        }
    }

    #[test]
    fn matrix_parses_the_classic_cells() {
        assert_eq!(parse_matrix(DEFAULT_MATRIX).unwrap(), default_matrix());
        assert_eq!(
            parse_matrix(" 20x5 , 40/10,").unwrap(),
            vec![Cell::new(20, 5), Cell::new(40, 10)]
        );
        assert_eq!(Cell::new(150, 30).to_string(), "150/30");
        for bad in ["", "150", "150x0", "10x30", "ax3", "3xb"] {
            assert!(parse_matrix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn baseline_expands_to_ratios_without_duplicates() {
        let o = CompareOptions {
            targets: vec![
                CompareTarget::new("django-async", "http://127.0.0.1:1/"),
                CompareTarget::new("keel-async", "http://127.0.0.1:2/"),
                CompareTarget::new("keel-sync", "http://127.0.0.1:3/"),
            ],
            baseline: Some("django-async".into()),
            ratios: vec!["keel-async/django-async".parse().unwrap()],
            ..CompareOptions::default()
        };
        o.validate().unwrap();
        let r: Vec<String> = o.all_ratios().iter().map(Ratio::to_string).collect();
        assert_eq!(r, ["keel-async/django-async", "keel-sync/django-async"]);
    }

    #[test]
    fn validate_names_what_is_wrong() {
        let t = |n: &str| CompareTarget::new(n, "http://127.0.0.1:1/");
        let mut o = CompareOptions::default();
        assert!(matches!(o.validate(), Err(CompareError::NoTargets)));
        o.targets = vec![t("a"), t("a")];
        assert!(matches!(o.validate(), Err(CompareError::DuplicateTarget(n)) if n == "a"));
        o.targets = vec![t("a"), t("b")];
        o.baseline = Some("c".into());
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("--baseline") && e.contains("a, b"), "{e}");
        o.baseline = None;
        o.ratios = vec!["a/z".parse().unwrap()];
        assert!(o.validate().unwrap_err().to_string().contains("--ratio"));
        o.ratios.clear();
        o.targets
            .push(CompareTarget::new("c", "https://127.0.0.1/"));
        let e = o.validate().unwrap_err().to_string();
        assert!(e.starts_with("target c at 150/30:"), "{e}");
        o.targets.pop();
        o.matrix = vec![Cell::new(5, 10)];
        assert!(matches!(o.validate(), Err(CompareError::Matrix { .. })));
    }
}
