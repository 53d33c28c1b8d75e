//! Errors: [`OptionsError`] (the options cannot run), [`BenchError`] (the run could not
//! start or finish), [`CompareError`] (a `keel compare` run could not be set up, run or
//! written), and [`ErrorKind`], how one failed *request* is counted in the report.
//!
//! hey reports failed requests by Go's error text (`Get "http://…": dial tcp …: connect:
//! connection refused`), one line per distinct text. keel groups them by kind first, so a
//! script can read `connect_refused` / `timeout` / `connection_closed` / `other` from the
//! JSON without parsing messages, and keeps a short message per group for the text output.

use std::path::PathBuf;

/// Why [`crate::BenchOptions::validate`] refused the options. Messages name hey's flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    /// `-c 0`.
    #[error("-c cannot be smaller than 1")]
    ZeroConcurrency,
    /// `-n 0` without `-z`.
    #[error("-n cannot be smaller than 1")]
    ZeroRequests,
    /// `-n` below `-c` without `-z` (hey refuses this too).
    #[error("-n cannot be less than -c (-n {requests}, -c {concurrency})")]
    RequestsBelowConcurrency {
        /// `-n`.
        requests: u64,
        /// `-c`.
        concurrency: usize,
    },
    /// `-z 0`.
    #[error("-z must be longer than 0 (leave it out to send -n requests)")]
    ZeroDuration,
    /// A rate that is zero, negative or not a number.
    #[error("{flag} must be a positive number of requests per second, got {value}")]
    Rate {
        /// `-q` or `--rate`.
        flag: &'static str,
        /// The value given.
        value: f64,
    },
    /// `-q` and `--rate` together.
    #[error("-q (per-worker limit, closed loop) and --rate (total, open loop) cannot be combined")]
    RateAndQps,
    /// The URL does not parse or lacks parts.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Anything but `http://`.
    #[error("URL scheme {0:?} is not supported: keel bench speaks plain HTTP/1.1 (http://)")]
    Scheme(String),
    /// `-m` is not an HTTP method token.
    #[error("-m {0:?} is not a valid HTTP method")]
    Method(String),
    /// A header that is not `Name: value` (hey's rule) or has bytes HTTP forbids.
    #[error(
        "{flag}: could not parse the provided input; input = {input:?} (expected \"Name: value\")"
    )]
    Header {
        /// `-H`, `-T`, `-A` or `-host`.
        flag: &'static str,
        /// The text given.
        input: String,
    },
    /// `-d` and `-D` together.
    #[error("-d and -D cannot be used together")]
    BodyAndBodyFile,
    /// `-o` other than text, json, csv.
    #[error("-o {0:?} is not supported: use text, json or csv")]
    Output(String),
}

/// Why [`crate::run`] returned no report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options were invalid.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// `-D FILE` could not be read.
    #[error("-D {path}: {source}")]
    BodyFile {
        /// The file given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A worker task panicked or was cancelled (a bug, not a server problem).
    #[error("a load worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// An internal invariant failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
    /// JSON rendering failed.
    #[error("rendering the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Why [`crate::compare::run_compare`] (or one of the parsers of its options) failed.
///
/// A target that answers with errors does *not* make a comparison fail: its failed
/// requests are counted in its rows. These are the cases where no table can be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A `--target` that is not `NAME=URL` or `NAME=URL@CAP`.
    #[error("--target {input:?}: {reason} (expected NAME=URL or NAME=URL@CAP, e.g. django-sync=http://127.0.0.1:8000/sync/test@40)")]
    Target {
        /// The text given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--matrix` cell that is not `NxC` with `N >= C >= 1`.
    #[error("--matrix {input:?}: {reason} (expected REQUESTSxCONCURRENCY,…, e.g. 150x30,300x50)")]
    Matrix {
        /// The text given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--ratio` that is not `NAME/NAME`.
    #[error("--ratio {0:?}: expected NUMERATOR/DENOMINATOR, two target names")]
    Ratio(String),
    /// No `--target` given.
    #[error("no --target given: a comparison needs at least one NAME=URL")]
    NoTargets,
    /// Two targets with the same name.
    #[error("--target name {0:?} is given twice; names label the table rows and must differ")]
    DuplicateTarget(String),
    /// `--baseline` or `--ratio` names a target that was not given.
    #[error("{flag} names {name:?}, which is not a --target (targets: {known})")]
    UnknownTarget {
        /// `--baseline` or `--ratio`.
        flag: &'static str,
        /// The name given.
        name: String,
        /// The target names that exist, comma-separated.
        known: String,
    },
    /// The load options for one target and cell are invalid (bad URL, …).
    #[error("target {target} at {test}: {source}")]
    Bench {
        /// The target's name.
        target: String,
        /// The cell, `n/c`.
        test: String,
        /// What the load generator said.
        #[source]
        source: BenchError,
    },
    /// Writing a result file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Rendering `results.json` failed.
    #[error("rendering results.json: {0}")]
    Json(#[from] serde_json::Error),
    /// Turning a chart into PNG failed.
    #[error("rendering chart {chart}: {reason}")]
    Chart {
        /// The chart's file stem (`rps`, `p95`).
        chart: &'static str,
        /// What failed.
        reason: String,
    },
    /// The file-writing task panicked (a bug).
    #[error("internal error while writing the results: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How a failed request is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The TCP connect was refused (nothing listens on the port).
    ConnectRefused,
    /// No complete response within the per-request timeout (`-t`).
    Timeout,
    /// The server reset or closed the connection before a complete response.
    ConnectionClosed,
    /// Anything else (DNS failure, malformed response, …); see the message.
    Other,
}

/// One failed request: its kind and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RequestError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Classifies a connect error.
    pub fn connect(addr: &str, e: &std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                ErrorKind::ConnectionClosed
            }
            _ => ErrorKind::Other,
        };
        let text = match kind {
            ErrorKind::ConnectRefused => "connection refused".to_string(),
            _ => strip_os_error(&e.to_string()),
        };
        Self::new(kind, format!("dial tcp {addr}: connect: {text}"))
    }

    /// Classifies an error from hyper (send, response head or body).
    pub fn hyper(e: &hyper::Error) -> Self {
        let message = chain(e);
        if e.is_timeout() {
            return Self::new(ErrorKind::Timeout, message);
        }
        if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
            return Self::new(ErrorKind::ConnectionClosed, message);
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as Io;
                let kind = match io.kind() {
                    Io::ConnectionReset
                    | Io::ConnectionAborted
                    | Io::BrokenPipe
                    | Io::UnexpectedEof => ErrorKind::ConnectionClosed,
                    Io::TimedOut => ErrorKind::Timeout,
                    Io::ConnectionRefused => ErrorKind::ConnectRefused,
                    _ => ErrorKind::Other,
                };
                return Self::new(kind, message);
            }
            source = err.source();
        }
        Self::new(ErrorKind::Other, message)
    }
}

/// `a: b: c` for an error and its sources, without the `(os error N)` suffixes that make
/// otherwise equal messages differ between platforms.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = strip_os_error(&e.to_string());
    let mut source = e.source();
    while let Some(err) = source {
        let text = strip_os_error(&err.to_string());
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = err.source();
    }
    out
}

fn strip_os_error(s: &str) -> String {
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_refused_is_its_own_kind() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let r = RequestError::connect("127.0.0.1:1", &e);
        assert_eq!(r.kind, ErrorKind::ConnectRefused);
        assert_eq!(
            r.message,
            "dial tcp 127.0.0.1:1: connect: connection refused"
        );
    }

    #[test]
    fn os_error_suffix_is_dropped() {
        assert_eq!(
            strip_os_error("Connection reset by peer (os error 104)"),
            "connection reset by peer"
        );
    }

    #[test]
    fn messages_name_heys_flags() {
        assert_eq!(
            OptionsError::ZeroConcurrency.to_string(),
            "-c cannot be smaller than 1"
        );
        assert_eq!(
            ErrorKindName(ErrorKind::ConnectionClosed).to_string(),
            "\"connection_closed\""
        );
    }

    struct ErrorKindName(ErrorKind);
    impl std::fmt::Display for ErrorKindName {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let s = serde_json::to_string(&self.0).map_err(|_| std::fmt::Error)?;
            f.write_str(&s)
        }
    }
}
