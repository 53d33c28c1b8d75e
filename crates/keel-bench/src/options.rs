//! `BenchOptions`: what a `keel bench` run should do, in hey's terms, and `validate()`, the
//! only way from those options to a runnable [`Plan`].
//!
//! Field by field the meaning is hey's (`hey -h`), so a hey user's flags map one to one;
//! the binary crate owns the clap definitions and fills this struct. Where keel differs:
//!
//! | hey | keel |
//! |---|---|
//! | `-n 201 -c 50` sends 200 (each worker sends `n / c`, the remainder is dropped) | sends exactly 201: workers take requests from one shared counter |
//! | `-z 0` means "not set" | `duration: Some(Duration::ZERO)` is refused; use `None` |
//! | `-d` and `-D` together: `-D` wins silently | refused |
//! | `-q` with a fractional period rounds to whole microseconds | same period, in nanoseconds |
//! | no open-loop mode | `rate_per_sec` (`--rate`): wrk2-style fixed schedule, latency from the scheduled time |
//! | `https://`, `-h2`, `-x` proxy, `-a` basic auth, redirects followed | plain `http://` only, HTTP/1.1, no proxy, redirects not followed (3xx is counted as a status); basic auth via `-H "Authorization: Basic …"` |
//! | Go's transport adds `Accept-Encoding: gzip` and decompresses | nothing added; add the header with `-H` if the server should compress |
//!
//! Like hey, every request carries `Content-Type` (`-T`, default `text/html`), a
//! `User-Agent` of `keel-bench/<version>` (appended to one given with `-H`), and with
//! `disable_keepalive` a `Connection: close`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, Method, Uri};

use crate::error::{BenchError, OptionsError};

/// What [`crate::Report::render`] produces; the run also needs it, because `Csv` keeps one
/// record per request (bounded by [`BenchOptions::csv_max_records`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// hey's summary text (`hey URL`).
    #[default]
    Text,
    /// The [`crate::Report`] as JSON, following `schema/report.schema.json`.
    Json,
    /// hey's `-o csv`: one row per successful response.
    Csv,
}

impl std::str::FromStr for OutputFormat {
    type Err = OptionsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            other => Err(OptionsError::Output(other.to_string())),
        }
    }
}

/// The options of one `keel bench` run, with hey's meaning and defaults
/// (see the module docs for the differences).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Target URL, `http://host[:port]/path?query`.
    pub url: String,
    /// `-n`: number of requests (default 200). Ignored when `duration` is set.
    pub requests: u64,
    /// `-c`: number of workers, each with its own connection (default 50).
    pub concurrency: usize,
    /// `-z`: send for this long instead of `requests` requests.
    pub duration: Option<Duration>,
    /// `-q`: hey's rate limit, in requests per second *per worker* (closed loop: a worker
    /// waits for its tick, then sends and waits for the response).
    pub qps_per_worker: Option<f64>,
    /// `--rate`: total requests per second, open loop. Request `k` is scheduled at
    /// `start + k / rate`; any free worker sends it at (or, if all were busy, after) that
    /// time, and its latency is measured from the scheduled time, as wrk2 does, so a
    /// stalled server shows up in the percentiles instead of silently lowering the load.
    pub rate_per_sec: Option<f64>,
    /// `-m`: HTTP method (default `GET`; case-insensitive like hey).
    pub method: String,
    /// `-H`: extra headers, each `"Name: value"`; repeatable; later ones replace earlier.
    pub headers: Vec<String>,
    /// `-d`: request body.
    pub body: Option<String>,
    /// `-D`: request body read from this file at the start of the run.
    pub body_file: Option<PathBuf>,
    /// `-T`: `Content-Type` of every request (default `text/html`, as hey).
    pub content_type: String,
    /// `-A`: `Accept` header.
    pub accept: Option<String>,
    /// `-t`: per-request timeout covering connect, send and reading the whole body
    /// (default 20 s). `None` or `Some(Duration::ZERO)` means none (hey's `-t 0`).
    pub timeout: Option<Duration>,
    /// `-disable-keepalive`: a new connection for every request, sent with `Connection: close`.
    pub disable_keepalive: bool,
    /// `-host`: `Host` header instead of the URL's authority.
    pub host: Option<String>,
    /// `-o`: output format; `Csv` makes the run keep one record per request.
    pub output: OutputFormat,
    /// With `Csv`, keep at most this many per-request records (hey keeps 1,000,000);
    /// the rest are counted in `Report::records_dropped`, and all still go into the summary.
    pub csv_max_records: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            url: String::new(),
            requests: 200,
            concurrency: 50,
            duration: None,
            qps_per_worker: None,
            rate_per_sec: None,
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            body_file: None,
            content_type: "text/html".into(),
            accept: None,
            timeout: Some(Duration::from_secs(20)),
            disable_keepalive: false,
            host: None,
            output: OutputFormat::Text,
            csv_max_records: 1_000_000,
        }
    }
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stop {
    /// After this many requests (`-n`).
    Count(u64),
    /// No request is started at or after this offset from the start (`-z`).
    Deadline(Duration),
}

/// Where requests go: the parts of the URL the connector needs.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub host: String,
    pub ip: Option<IpAddr>,
    pub port: u16,
}

/// Validated, ready-to-run options; made only by [`BenchOptions::validate`].
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) target: Target,
    pub(crate) url: String,
    pub(crate) method: Method,
    /// Origin-form request target (`/path?query`).
    pub(crate) path: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) body_file: Option<PathBuf>,
    pub(crate) concurrency: usize,
    pub(crate) stop: Stop,
    pub(crate) qps_period: Option<Duration>,
    pub(crate) rate_per_sec: Option<f64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) disable_keepalive: bool,
    pub(crate) records: usize,
}

impl Plan {
    /// Number of workers (connections).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The number of requests the run will send, when it is bounded by `-n`.
    pub fn requests(&self) -> Option<u64> {
        match self.stop {
            Stop::Count(n) => Some(n),
            Stop::Deadline(_) => None,
        }
    }

    /// The `-z` duration, when the run is bounded by time.
    pub fn duration(&self) -> Option<Duration> {
        match self.stop {
            Stop::Count(_) => None,
            Stop::Deadline(d) => Some(d),
        }
    }

    /// Reads `-D` into the body. Done by [`crate::run`], not by `validate`, so that
    /// validation stays free of I/O.
    pub(crate) async fn load_body(&mut self) -> Result<(), BenchError> {
        if let Some(path) = &self.body_file {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|source| BenchError::BodyFile {
                    path: path.clone(),
                    source,
                })?;
            self.body = Bytes::from(bytes);
        }
        Ok(())
    }
}

fn positive_rate(flag: &'static str, value: Option<f64>) -> Result<Option<f64>, OptionsError> {
    match value {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(OptionsError::Rate { flag, value: v }),
        other => Ok(other),
    }
}

fn header_value(flag: &'static str, value: &str) -> Result<HeaderValue, OptionsError> {
    HeaderValue::from_str(value).map_err(|_| OptionsError::Header {
        flag,
        input: value.to_string(),
    })
}

impl BenchOptions {
    /// Options for `url` with hey's defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks every option and turns them into a [`Plan`]. The checks are hey's
    /// (`-n and -c cannot be smaller than 1`, `-n cannot be less than -c` unless `-z`
    /// is given, headers must look like `Name: value`) plus keel's own (see
    /// [`OptionsError`]).
    pub fn validate(&self) -> Result<Plan, OptionsError> {
        if self.concurrency == 0 {
            return Err(OptionsError::ZeroConcurrency);
        }
        let stop = match self.duration {
            Some(d) if d.is_zero() => return Err(OptionsError::ZeroDuration),
            Some(d) => Stop::Deadline(d),
            None => {
                if self.requests == 0 {
                    return Err(OptionsError::ZeroRequests);
                }
                if self.requests < self.concurrency as u64 {
                    return Err(OptionsError::RequestsBelowConcurrency {
                        requests: self.requests,
                        concurrency: self.concurrency,
                    });
                }
                Stop::Count(self.requests)
            }
        };
        let qps = positive_rate("-q", self.qps_per_worker)?;
        let rate_per_sec = positive_rate("--rate", self.rate_per_sec)?;
        if qps.is_some() && rate_per_sec.is_some() {
            return Err(OptionsError::RateAndQps);
        }
        let qps_period = qps.map(|q| Duration::from_secs_f64(1.0 / q));

        let (target, path, authority) = parse_url(&self.url)?;
        let method = Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| OptionsError::Method(self.method.clone()))?;

        if self.body.is_some() && self.body_file.is_some() {
            return Err(OptionsError::BodyAndBodyFile);
        }

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, header_value("-T", &self.content_type)?);
        for raw in &self.headers {
            let (name, value) = parse_header(raw)?;
            headers.insert(name, value);
        }
        if let Some(accept) = &self.accept {
            headers.insert(ACCEPT, header_value("-A", accept)?);
        }
        let ua = match headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
            Some(given) => format!("{given} {}", crate::USER_AGENT),
            None => crate::USER_AGENT.to_string(),
        };
        headers.insert(USER_AGENT, header_value("-H", &ua)?);
        let host = self.host.as_deref().unwrap_or(&authority);
        headers.insert(HOST, header_value("-host", host)?);
        if self.disable_keepalive {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }

        let records = match self.output {
            OutputFormat::Csv => self.csv_max_records,
            OutputFormat::Text | OutputFormat::Json => 0,
        };

        Ok(Plan {
            target,
            url: self.url.clone(),
            method,
            path,
            headers,
            body: self.body.clone().map(Bytes::from).unwrap_or_default(),
            body_file: self.body_file.clone(),
            concurrency: self.concurrency,
            stop,
            qps_period,
            rate_per_sec,
            timeout: self.timeout.filter(|t| !t.is_zero()),
            disable_keepalive: self.disable_keepalive,
            records,
        })
    }
}

/// Splits `http://host:port/p?q` into the connect target, the origin-form path and the
/// authority for the `Host` header.
fn parse_url(url: &str) -> Result<(Target, Uri, String), OptionsError> {
    let bad = |reason: &str| OptionsError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(OptionsError::Scheme(other.to_string())),
        None => return Err(bad("missing scheme; expected http://host[:port]/path")),
    }
    let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "user:password@ in the URL is not supported; use -H \"Authorization: …\"",
        ));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = authority.port_u16().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = bare.parse::<IpAddr>().ok();
    let path: Uri = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("/")
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    // Go omits the default port from Host; so do we.
    let host_header = match authority.port_u16() {
        Some(80) | None => host.to_string(),
        Some(p) => format!("{host}:{p}"),
    };
    Ok((
        Target {
            host: bare.to_string(),
            ip,
            port,
        },
        path,
        host_header,
    ))
}

/// hey's `-H` rule: `^([\w-]+):\s*(.+)`.
fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), OptionsError> {
    let bad = || OptionsError::Header {
        flag: "-H",
        input: raw.to_string(),
    };
    let (name, value) = raw.split_once(':').ok_or_else(bad)?;
    let value = value.trim_start();
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok || value.is_empty() {
        return Err(bad());
    }
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value).map_err(|_| bad())?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> BenchOptions {
        BenchOptions::new(url)
    }

    #[test]
    fn defaults_are_heys() {
        let o = BenchOptions::default();
        assert_eq!(o.requests, 200);
        assert_eq!(o.concurrency, 50);
        assert_eq!(o.timeout, Some(Duration::from_secs(20)));
        assert_eq!(o.method, "GET");
        assert_eq!(o.content_type, "text/html");
    }

    #[test]
    fn n_below_c_is_refused_like_hey() {
        let mut o = opts("http://127.0.0.1:8080/");
        o.requests = 10;
        let err = o.validate().unwrap_err();
        assert_eq!(
            err,
            OptionsError::RequestsBelowConcurrency {
                requests: 10,
                concurrency: 50
            }
        );
        assert!(err.to_string().contains("-n cannot be less than -c"));
        // -z ignores -n, as in hey.
        o.duration = Some(Duration::from_secs(1));
        assert!(o.validate().is_ok());
    }

    #[test]
    fn zero_counts_are_refused() {
        let mut o = opts("http://127.0.0.1/");
        o.concurrency = 0;
        assert_eq!(o.validate().unwrap_err(), OptionsError::ZeroConcurrency);
        let mut o = opts("http://127.0.0.1/");
        o.requests = 0;
        assert_eq!(o.validate().unwrap_err(), OptionsError::ZeroRequests);
        let mut o = opts("http://127.0.0.1/");
        o.duration = Some(Duration::ZERO);
        assert_eq!(o.validate().unwrap_err(), OptionsError::ZeroDuration);
    }

    #[test]
    fn rates_must_be_positive_and_exclusive() {
        let mut o = opts("http://127.0.0.1/");
        o.rate_per_sec = Some(0.0);
        assert!(matches!(
            o.validate().unwrap_err(),
            OptionsError::Rate { flag: "--rate", .. }
        ));
        o.rate_per_sec = Some(100.0);
        o.qps_per_worker = Some(f64::NAN);
        assert!(matches!(
            o.validate().unwrap_err(),
            OptionsError::Rate { flag: "-q", .. }
        ));
        o.qps_per_worker = Some(5.0);
        assert_eq!(o.validate().unwrap_err(), OptionsError::RateAndQps);
    }

    #[test]
    fn urls() {
        assert!(matches!(
            opts("https://example.com/").validate().unwrap_err(),
            OptionsError::Scheme(s) if s == "https"
        ));
        assert!(matches!(
            opts("127.0.0.1:8080/").validate().unwrap_err(),
            OptionsError::Url { .. }
        ));
        let plan = opts("http://127.0.0.1:8080").validate().unwrap();
        assert_eq!(plan.path, "/");
        assert_eq!(plan.target.port, 8080);
        assert_eq!(plan.headers[HOST], "127.0.0.1:8080");
        let plan = opts("http://localhost/a/b?x=1&y=2").validate().unwrap();
        assert_eq!(plan.path, "/a/b?x=1&y=2");
        assert_eq!(plan.target.port, 80);
        assert_eq!(plan.target.ip, None);
        assert_eq!(plan.headers[HOST], "localhost");
        let plan = opts("http://[::1]:9/").validate().unwrap();
        assert_eq!(plan.target.ip, Some("::1".parse().unwrap()));
    }

    #[test]
    fn headers_follow_heys_rules() {
        let mut o = opts("http://127.0.0.1/");
        o.headers = vec![
            "X-Trace:  abc".into(),
            "Content-Type: application/json".into(),
            "User-Agent: mine".into(),
        ];
        o.accept = Some("text/plain".into());
        o.host = Some("example.test".into());
        o.disable_keepalive = true;
        let plan = o.validate().unwrap();
        assert_eq!(plan.headers["x-trace"], "abc");
        assert_eq!(plan.headers[CONTENT_TYPE], "application/json");
        assert_eq!(
            plan.headers[USER_AGENT],
            format!("mine {}", crate::USER_AGENT)
        );
        assert_eq!(plan.headers[ACCEPT], "text/plain");
        assert_eq!(plan.headers[HOST], "example.test");
        assert_eq!(plan.headers[CONNECTION], "close");

        for bad in ["NoColon", "Bad Name: x", ": x", "X-Empty:   "] {
            let mut o = opts("http://127.0.0.1/");
            o.headers = vec![bad.into()];
            assert!(
                matches!(o.validate().unwrap_err(), OptionsError::Header { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn method_and_body() {
        let mut o = opts("http://127.0.0.1/");
        o.method = "post".into();
        o.body = Some("hello".into());
        let plan = o.validate().unwrap();
        assert_eq!(plan.method, Method::POST);
        assert_eq!(plan.body, Bytes::from_static(b"hello"));
        o.body_file = Some("/nonexistent".into());
        assert_eq!(o.validate().unwrap_err(), OptionsError::BodyAndBodyFile);
        o.method = "G E T".into();
        assert!(matches!(o.validate().unwrap_err(), OptionsError::Method(_)));
    }

    #[test]
    fn zero_timeout_means_none() {
        let mut o = opts("http://127.0.0.1/");
        o.timeout = Some(Duration::ZERO);
        assert_eq!(o.validate().unwrap().timeout, None);
    }

    #[test]
    fn output_formats() {
        assert_eq!("csv".parse::<OutputFormat>().unwrap(), OutputFormat::Csv);
        assert_eq!("".parse::<OutputFormat>().unwrap(), OutputFormat::Text);
        assert!("xml".parse::<OutputFormat>().is_err());
        let mut o = opts("http://127.0.0.1/");
        assert_eq!(o.validate().unwrap().records, 0);
        o.output = OutputFormat::Csv;
        assert_eq!(o.validate().unwrap().records, 1_000_000);
    }
}
