//! Configuration: `keel.toml`, then `KEEL_*` environment variables, then flags.
//!
//! Precedence is flag > environment > file > default, decided here and nowhere else.
//! Every value remembers where it came from ([`Origin`]), so a bad value is refused with
//! the file and line (or the variable, or the flag) and the key named, and `keel config`
//! can show the origin of each effective setting. The library crates never read files or
//! the environment: they receive the validated types built at the end of this module.
//!
//! | key (file)                  | environment              | flag                   | default                       |
//! |-----------------------------|--------------------------|------------------------|-------------------------------|
//! | `serve.bind`                | `KEEL_BIND`              | `--bind`               | `127.0.0.1:8000`              |
//! | `serve.workers`             | `KEEL_WORKERS`           | `--workers`            | number of CPUs                |
//! | `serve.threads`             | `KEEL_THREADS`           | `--threads`            | `10`                          |
//! | `serve.timeout`             | `KEEL_TIMEOUT`           | `--timeout`            | `30s`                         |
//! | `serve.upstream_url`        | `KEEL_UPSTREAM_URL`      | `--upstream-url`       | `http://127.0.0.1:9000/todos/1` |
//! | `serve.upstream_timeout`    | `KEEL_UPSTREAM_TIMEOUT`  | `--upstream-timeout`   | `10s`                         |
//! | `serve.shutdown_timeout`    | `KEEL_SHUTDOWN_TIMEOUT`  | `--shutdown-timeout`   | `30s`                         |
//! | `serve.forwarded_allow_ips` | `KEEL_FORWARDED_ALLOW_IPS` | `--forwarded-allow-ips` | `127.0.0.1,::1`            |
//! | `serve.keep_alive`          | `KEEL_KEEP_ALIVE`        | `--keep-alive`         | `5s`                          |
//! | `serve.header_timeout`      | `KEEL_HEADER_TIMEOUT`    | `--header-timeout`     | `10s`                         |
//! | `up.listen`                 | `KEEL_LISTEN`            | `keel up --listen`     | `127.0.0.1:8080`              |
//! | `mock_upstream.listen`      | `KEEL_MOCK_LISTEN`       | `keel mock-upstream --listen` | `127.0.0.1:9000`       |
//! | `mock_upstream.latency`     | `KEEL_MOCK_LATENCY`      | `--latency`            | `100ms`                       |
//! | `log.format`                | `KEEL_LOG_FORMAT`        | `--log-format`         | `text`                        |
//! | `log.level`                 | `KEEL_LOG_LEVEL`         | `--log-level`          | `info`                        |
//! | `site.database_url`         | `KEEL_DATABASE_URL`      | `--database-url`       | `sqlite://keel-data/keel.db`  |
//! | `site.templates`            | `KEEL_TEMPLATES`         | `--templates`          | none (built-in templates)     |
//! | `site.sample_data`          | `KEEL_SAMPLE_DATA`       | `--no-sample-data`     | `true`                        |
//! | `site.page_cache`           | `KEEL_PAGE_CACHE`        | none                   | `1s` (`0s` turns it off)      |
//!
//! The file is `--config PATH`, else `$KEEL_CONFIG`, else `./keel.toml` when it exists.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, line: usize },
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// A configuration value and its origin.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

/// A configuration problem, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {key}: {message}")]
    Invalid {
        location: String,
        key: String,
        message: String,
    },
}

/// A duration written the human way: `30s`, `100ms`, `1m 30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                format!("invalid duration {s:?} ({e}); write it like \"30s\" or \"100ms\"")
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}; use \"text\" or \"json\""
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// An upstream URL; only http and https can be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(pub url::Url);

impl FromStr for UpstreamUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(UpstreamUrl(url)),
            "http" | "https" => Err(format!("URL {s:?} has no host")),
            other => Err(format!(
                "URL {s:?} has scheme {other:?}; only http and https are supported"
            )),
        }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Display is what `keel config` and logs use; a password never shows.
            let _ = shown.set_password(Some("****"));
        }
        write!(f, "{shown}")
    }
}

/// An `EnvFilter` directive such as `info` or `keel_app=debug,info`, checked at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(pub String);

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        tracing_subscriber::EnvFilter::try_new(s)
            .map(|_| LogLevel(s.to_owned()))
            .map_err(|e| format!("invalid log level {s:?}: {e}"))
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Values written as strings in the file are parsed by the same `FromStr` as flags and
/// environment variables, so all three layers accept and refuse exactly the same text.
macro_rules! deserialize_from_str {
    ($($ty:ty),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(
    HumanDuration,
    UpstreamUrl,
    LogLevel,
    RateSetting,
    ZoneSetting,
    Cidr,
    Upstream,
    OptPath,
    PathValue,
    ByteSize,
    HeaderBuffers,
    BalanceSetting,
    HealthPath,
    RedisUrl,
    Secret,
    ChannelName,
    DatabaseUrl,
);

/// The site's database: `sqlite://path` (the default, a file under `keel-data/`) or
/// `postgres://user[:password]@host[:port]/db`. The password never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with("sqlite:") {
            if s.trim_start_matches("sqlite:")
                .trim_start_matches("//")
                .is_empty()
            {
                return Err("a SQLite URL names a file: sqlite://keel-data/keel.db".to_owned());
            }
            return Ok(DatabaseUrl(s.to_owned()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let url = url::Url::parse(s).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
            if url.host().is_none() {
                return Err(
                    "a PostgreSQL URL names a host: postgres://user@host:5432/db".to_owned(),
                );
            }
            return Ok(DatabaseUrl(s.to_owned()));
        }
        Err("a database URL starts with sqlite:// or postgres://".to_owned())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("****"));
                write!(f, "{url}")
            }
            _ => f.write_str(&self.0),
        }
    }
}

/// A Redis URL (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS); empty
/// means none (the in-memory broker). The password never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl(pub Option<url::Url>);

impl FromStr for RedisUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(RedisUrl(None));
        }
        let url = url::Url::parse(s).map_err(|e| format!("invalid Redis URL: {e}"))?;
        match url.scheme() {
            "redis" | "rediss" if url.host().is_some() => Ok(RedisUrl(Some(url))),
            _ => {
                Err("a Redis URL looks like redis://host:6379/0 (or rediss:// for TLS)".to_owned())
            }
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(url) => {
                let mut shown = url.clone();
                if shown.password().is_some() {
                    let _ = shown.set_password(Some("****"));
                }
                write!(f, "{shown}")
            }
            None => Ok(()),
        }
    }
}

/// A secret value (a token); prints as `****`, never itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Option<String>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Secret(****)"
        } else {
            "Secret(None)"
        })
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.len() {
            0 => Ok(Secret(None)),
            1..=15 => Err("a token must be at least 16 characters long".to_owned()),
            _ => Ok(Secret(Some(s.to_owned()))),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "****" } else { "" })
    }
}

/// A live-event channel name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(pub String);

impl FromStr for ChannelName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
        if ok {
            Ok(ChannelName(s.to_owned()))
        } else {
            Err(format!(
                "invalid channel name {s:?}: use letters, digits, _ - . : (at most 128)"
            ))
        }
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the edge picks an upstream: `round-robin` or `least-conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceSetting(pub keel_edge::Strategy);

impl FromStr for BalanceSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "round-robin" => Ok(BalanceSetting(keel_edge::Strategy::RoundRobin)),
            "least-conn" => Ok(BalanceSetting(keel_edge::Strategy::LeastConnections)),
            other => Err(format!(
                "unknown balancing {other:?}; use \"round-robin\" or \"least-conn\""
            )),
        }
    }
}

impl fmt::Display for BalanceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            keel_edge::Strategy::RoundRobin => "round-robin",
            keel_edge::Strategy::LeastConnections => "least-conn",
        })
    }
}

/// The path of the active upstream health check, or `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPath(pub Option<String>);

impl FromStr for HealthPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(HealthPath(None)),
            path if path.starts_with('/') && !path.contains(char::is_whitespace) => {
                Ok(HealthPath(Some(path.to_owned())))
            }
            other => Err(format!(
                "invalid health check path {other:?}; use a path like \"/healthz\" or \"off\""
            )),
        }
    }
}

impl fmt::Display for HealthPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or("off"))
    }
}

/// A size in bytes as nginx writes it: `512`, `64k`, `1m`, `1g`; `0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid size {s:?}; write it like \"1m\", \"64k\" or \"0\"");
        let text = s.trim().to_ascii_lowercase();
        let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => text.split_at(i),
            None => (text.as_str(), ""),
        };
        let scale: u64 = match unit {
            "" => 1,
            "k" => 1024,
            "m" => 1024 * 1024,
            "g" => 1024 * 1024 * 1024,
            _ => return Err(bad()),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .map(ByteSize)
            .ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const M: u64 = 1024 * 1024;
        match self.0 {
            n if n != 0 && n % (1024 * M) == 0 => write!(f, "{}g", n / (1024 * M)),
            n if n != 0 && n % M == 0 => write!(f, "{}m", n / M),
            n if n != 0 && n % 1024 == 0 => write!(f, "{}k", n / 1024),
            n => write!(f, "{n}"),
        }
    }
}

/// nginx's `large_client_header_buffers NUMBER SIZE`: a request line or one header line
/// must fit one buffer (414 / 431 beyond it), the whole head all of them (431).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBuffers {
    /// How many buffers.
    pub count: u64,
    /// The size of each.
    pub size: ByteSize,
}

impl FromStr for HeaderBuffers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("invalid header buffers {s:?}; write them as nginx does, like \"4 8k\"");
        let mut words = s.split_whitespace();
        let (Some(count), Some(size), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let count: u64 = count.parse().map_err(|_| bad())?;
        let size: ByteSize = size.parse()?;
        // A buffer must hold at least a short request line; nginx refuses tiny ones too.
        if count == 0 || size.0 < 1024 || count.saturating_mul(size.0) > 16 * 1024 * 1024 {
            return Err(format!(
                "invalid header buffers {s:?}: at least one buffer of 1k, at most 16m in all"
            ));
        }
        Ok(HeaderBuffers { count, size })
    }
}

impl fmt::Display for HeaderBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.count, self.size)
    }
}

/// A path that must be given (static root, static source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathValue(pub PathBuf);

impl FromStr for PathValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" => Err("a directory path cannot be empty".to_owned()),
            path => Ok(PathValue(PathBuf::from(path))),
        }
    }
}

impl fmt::Display for PathValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// An optional path (the access log directory, TLS files); empty means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptPath(pub Option<PathBuf>);

impl FromStr for OptPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(OptPath((!s.is_empty()).then(|| PathBuf::from(s))))
    }
}

impl fmt::Display for OptPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(dir) => write!(f, "{}", dir.display()),
            None => Ok(()),
        }
    }
}

/// A limit_req rate (`10r/s`, `600r/m`), or `off`. The text is kept as written: nginx
/// truncates `7r/m` to 0.116 r/s, which would not print back as `7r/m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSetting(pub Option<keel_edge::Rate>, String);

impl FromStr for RateSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text == "off" {
            return Ok(RateSetting(None, text.to_owned()));
        }
        text.parse()
            .map(|rate| RateSetting(Some(rate), text.to_owned()))
            .map_err(|e: keel_edge::LimitValueError| {
                format!("{e}; write it like \"10r/s\", \"600r/m\" or \"off\"")
            })
    }
}

impl fmt::Display for RateSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.1)
    }
}

/// A limit_req zone size (`10m`, `64k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneSetting(pub keel_edge::ZoneSize);

impl FromStr for ZoneSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .map(ZoneSetting)
            .map_err(|e: keel_edge::LimitValueError| e.to_string())
    }
}

impl fmt::Display for ZoneSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A trusted network in CIDR notation (`10.0.0.0/8`); a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(Cidr)
            .map_err(|_| format!("invalid network {s:?}; write it like \"10.0.0.0/8\""))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// gunicorn's `forwarded_allow_ips`: the peers whose `X-Forwarded-For`, `X-Real-IP` and
/// `X-Forwarded-Proto` `keel serve` believes. Comma-separated networks (a bare address is
/// a /32 or /128), an empty string for nobody, or `*` for every peer — dangerous unless
/// nothing but the proxy can reach the server, since any client can then claim any
/// address and dodge (or spend) another's login limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowIps {
    /// These networks.
    Nets(Vec<Cidr>),
    /// `*`.
    Any,
}

impl AllowIps {
    /// The trust rule the app server applies.
    pub fn trusted(&self) -> keel_client::Trusted {
        match self {
            AllowIps::Any => keel_client::Trusted::Any,
            AllowIps::Nets(nets) => keel_client::Trusted::nets(nets.iter().map(|c| c.0).collect()),
        }
    }
}

impl FromStr for AllowIps {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "*" {
            return Ok(AllowIps::Any);
        }
        s.parse::<List<Cidr>>().map(|list| AllowIps::Nets(list.0))
    }
}

impl fmt::Display for AllowIps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowIps::Any => f.write_str("*"),
            AllowIps::Nets(nets) => {
                let items: Vec<String> = nets.iter().map(ToString::to_string).collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

/// In the file: a string (`"10.0.0.0/8,127.0.0.1"` or `"*"`) or an array of networks.
impl<'de> Deserialize<'de> for AllowIps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Nets(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Raw::Nets(items) => items
                .iter()
                .map(|item| item.parse::<Cidr>())
                .collect::<Result<Vec<_>, _>>()
                .map(AllowIps::Nets)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// nginx's `limit_conn N`: requests in progress per client address, 1–65535, or `off`
/// (also `0`), the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSetting(pub Option<u32>);

impl FromStr for ConnSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") || s == "0" {
            return Ok(ConnSetting(None));
        }
        match s.parse::<u32>() {
            Ok(n) if (1..=keel_edge::MAX_CONNS).contains(&n) => Ok(ConnSetting(Some(n))),
            _ => Err(format!(
                "invalid connection limit {s:?}; write a number from 1 to {} or off",
                keel_edge::MAX_CONNS
            )),
        }
    }
}

impl fmt::Display for ConnSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for ConnSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string().parse().map_err(serde::de::Error::custom),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The status of a rejected request, 400–599 (nginx's `limit_req_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectStatus(pub u16);

impl FromStr for RejectStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<u16>() {
            Ok(code) if (400..=599).contains(&code) => Ok(RejectStatus(code)),
            _ => Err(format!(
                "invalid status {s:?}; use a code from 400 to 599, like 503 or 429"
            )),
        }
    }
}

impl fmt::Display for RejectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for RejectStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d)?
            .to_string()
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An upstream `HOST:PORT` for the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream(pub keel_edge::UpstreamAddr);

impl FromStr for Upstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Upstream)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// limit_req's delay policy: `nodelay` (keel's default) or `N` (nginx's `delay=N`; `0`
/// is nginx's own default of delaying every excess request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelaySetting(pub Option<u32>);

impl FromStr for DelaySetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "nodelay" => Ok(DelaySetting(None)),
            n => n.parse().map(|n| DelaySetting(Some(n))).map_err(|_| {
                format!("invalid delay {s:?}; use \"nodelay\" or a number of requests")
            }),
        }
    }
}

impl fmt::Display for DelaySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("nodelay"),
        }
    }
}

impl<'de> Deserialize<'de> for DelaySetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(DelaySetting(Some(n))),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A comma-separated list in a flag or variable; an array in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T: FromStr<Err = String>> FromStr for List<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<T>, String>>()
            .map(List)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(List)
    }
}

impl<T: fmt::Display> fmt::Display for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|item| item.to_string()).collect();
        f.write_str(&items.join(", "))
    }
}

// ---- the file ------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    serve: ServeFile,
    #[serde(default)]
    up: UpFile,
    #[serde(default)]
    edge: EdgeFile,
    #[serde(default, rename = "static")]
    statics: StaticFile,
    #[serde(default)]
    stream: StreamFile,
    #[serde(default)]
    site: SiteFile,
    #[serde(default)]
    mock_upstream: MockFile,
    #[serde(default)]
    log: LogFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    bind: Option<Spanned<SocketAddr>>,
    workers: Option<Spanned<NonZeroUsize>>,
    threads: Option<Spanned<NonZeroUsize>>,
    timeout: Option<Spanned<HumanDuration>>,
    upstream_url: Option<Spanned<UpstreamUrl>>,
    upstream_timeout: Option<Spanned<HumanDuration>>,
    shutdown_timeout: Option<Spanned<HumanDuration>>,
    forwarded_allow_ips: Option<Spanned<AllowIps>>,
    keep_alive: Option<Spanned<HumanDuration>>,
    header_timeout: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpFile {
    listen: Option<Spanned<SocketAddr>>,
    rate_limit: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamFile {
    redis_url: Option<Spanned<RedisUrl>>,
    channels: Option<Spanned<List<ChannelName>>>,
    default_channel: Option<Spanned<ChannelName>>,
    heartbeat: Option<Spanned<HumanDuration>>,
    retention: Option<Spanned<usize>>,
    publish_token: Option<Spanned<Secret>>,
    max_clients: Option<Spanned<usize>>,
    max_clients_per_ip: Option<Spanned<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    database_url: Option<Spanned<DatabaseUrl>>,
    templates: Option<Spanned<OptPath>>,
    sample_data: Option<Spanned<bool>>,
    page_cache: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticFile {
    root: Option<Spanned<PathValue>>,
    sources: Option<Spanned<List<PathValue>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeFile {
    listen: Option<Spanned<SocketAddr>>,
    upstream: Option<Spanned<List<Upstream>>>,
    rate: Option<Spanned<RateSetting>>,
    burst: Option<Spanned<u32>>,
    delay: Option<Spanned<DelaySetting>>,
    limit_status: Option<Spanned<RejectStatus>>,
    zone_size: Option<Spanned<ZoneSetting>>,
    limit_conn: Option<Spanned<ConnSetting>>,
    limit_conn_status: Option<Spanned<RejectStatus>>,
    limit_conn_dry_run: Option<Spanned<bool>>,
    #[serde(default)]
    conn_zones: std::collections::BTreeMap<String, ConnZoneFile>,
    #[serde(default)]
    conn_limits: Vec<Spanned<ConnLimitFile>>,
    dry_run: Option<Spanned<bool>>,
    trusted_proxies: Option<Spanned<List<Cidr>>>,
    response_timeout: Option<Spanned<HumanDuration>>,
    body_idle_timeout: Option<Spanned<HumanDuration>>,
    access_log: Option<Spanned<bool>>,
    log_dir: Option<Spanned<OptPath>>,
    client_max_body_size: Option<Spanned<ByteSize>>,
    large_client_header_buffers: Option<Spanned<HeaderBuffers>>,
    max_connections: Option<Spanned<usize>>,
    header_timeout: Option<Spanned<HumanDuration>>,
    tls_listen: Option<Spanned<SocketAddr>>,
    tls_cert: Option<Spanned<OptPath>>,
    tls_key: Option<Spanned<OptPath>>,
    redirect_http: Option<Spanned<bool>>,
    workers: Option<Spanned<NonZeroUsize>>,
    balance: Option<Spanned<BalanceSetting>>,
    max_fails: Option<Spanned<u32>>,
    fail_timeout: Option<Spanned<HumanDuration>>,
    health_check: Option<Spanned<HealthPath>>,
    health_interval: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    zones: std::collections::BTreeMap<String, ZoneFile>,
    #[serde(default)]
    limits: Vec<Spanned<LimitFile>>,
}

/// `[edge.conn_zones.NAME]`: nginx's `limit_conn_zone $binary_remote_addr zone=NAME:SIZE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnZoneFile {
    size: Option<Spanned<ZoneSetting>>,
}

/// `[[edge.conn_limits]]`: nginx's `limit_conn NAME N` inside a `location PATH`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnLimitFile {
    path: String,
    zone: String,
    conn: u32,
}

/// `[edge.zones.NAME]`: nginx's `limit_req_zone ... zone=NAME:SIZE rate=RATE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneFile {
    rate: Spanned<RateSetting>,
    size: Option<ZoneSetting>,
}

/// `[[edge.limits]]`: nginx's `limit_req zone=NAME burst=N [nodelay|delay=N]` inside a
/// `location PATH`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitFile {
    path: String,
    zone: String,
    #[serde(default)]
    burst: u32,
    delay: Option<DelaySetting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MockFile {
    listen: Option<Spanned<SocketAddr>>,
    latency: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFile {
    format: Option<Spanned<LogFormat>>,
    level: Option<Spanned<LogLevel>>,
}

/// A parsed file plus what is needed to turn byte spans into line numbers.
struct Source {
    path: PathBuf,
    text: String,
    file: FileConfig,
}

impl Source {
    fn line_of(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |before| before.matches('\n').count() + 1)
    }
}

fn from_file<T>(source: Option<&Source>, value: Option<Spanned<T>>) -> Option<Setting<T>> {
    let source = source?;
    value.map(|spanned| {
        let line = source.line_of(spanned.span().start);
        Setting {
            value: spanned.into_inner(),
            origin: Origin::File {
                path: source.path.clone(),
                line,
            },
        }
    })
}

fn parse_file(path: &Path, text: String) -> Result<Source, ConfigError> {
    let deserializer = toml::Deserializer::new(&text);
    match serde_path_to_error::deserialize::<_, FileConfig>(deserializer) {
        Ok(file) => Ok(Source {
            path: path.to_owned(),
            text,
            file,
        }),
        Err(error) => {
            // Spanned<T> adds an internal segment to the path; users never wrote it.
            let key = error
                .path()
                .to_string()
                .split('.')
                .filter(|segment| !segment.starts_with("$__"))
                .collect::<Vec<_>>()
                .join(".");
            let inner = error.into_inner();
            let line = inner.span().map_or(1, |span| {
                text.get(..span.start)
                    .map_or(1, |before| before.matches('\n').count() + 1)
            });
            Err(ConfigError::Invalid {
                location: format!("{}:{line}", path.display()),
                key: if key == "." {
                    "(top level)".to_owned()
                } else {
                    key
                },
                message: inner.message().trim().to_owned(),
            })
        }
    }
}

// ---- flags and environment -------------------------------------------------------------

/// Values given as flags to the running subcommand; `None` where the flag was absent.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub bind: Option<SocketAddr>,
    pub workers: Option<NonZeroUsize>,
    pub threads: Option<NonZeroUsize>,
    pub timeout: Option<HumanDuration>,
    pub upstream_url: Option<UpstreamUrl>,
    pub upstream_timeout: Option<HumanDuration>,
    pub shutdown_timeout: Option<HumanDuration>,
    pub forwarded_allow_ips: Option<AllowIps>,
    pub keep_alive: Option<HumanDuration>,
    pub header_timeout: Option<HumanDuration>,
    pub up_listen: Option<SocketAddr>,
    pub up_rate_limit: Option<bool>,
    pub edge_listen: Option<SocketAddr>,
    pub upstream: Option<List<Upstream>>,
    pub rate: Option<RateSetting>,
    pub burst: Option<u32>,
    pub delay: Option<DelaySetting>,
    pub limit_status: Option<RejectStatus>,
    pub limit_conn: Option<ConnSetting>,
    pub publish_token: Option<Secret>,
    pub trusted_proxies: Option<List<Cidr>>,
    pub access_log: Option<bool>,
    pub log_dir: Option<OptPath>,
    pub static_root: Option<PathValue>,
    pub redis_url: Option<RedisUrl>,
    pub database_url: Option<DatabaseUrl>,
    pub templates: Option<OptPath>,
    pub sample_data: Option<bool>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<OptPath>,
    pub tls_key: Option<OptPath>,
    pub redirect_http: Option<bool>,
    pub balance: Option<BalanceSetting>,
    pub edge_workers: Option<NonZeroUsize>,
    pub health_check: Option<HealthPath>,
    pub static_sources: Option<List<PathValue>>,
    pub mock_listen: Option<SocketAddr>,
    pub mock_latency: Option<HumanDuration>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<LogLevel>,
}

/// Reads the process environment; a seam so tests can hand in their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Picks flag > env > file > default for one key.
struct Layer<'a> {
    env: &'a dyn Env,
}

impl Layer<'_> {
    fn pick<T: FromStr<Err = E>, E: fmt::Display>(
        &self,
        key: &str,
        flag: (Option<T>, &'static str),
        env_name: &'static str,
        file: Option<Setting<T>>,
        default: T,
    ) -> Result<Setting<T>, ConfigError> {
        if let Some(value) = flag.0 {
            return Ok(Setting {
                value,
                origin: Origin::Flag(flag.1),
            });
        }
        if let Some(text) = self.env.var(env_name) {
            return text
                .parse()
                .map(|value| Setting {
                    value,
                    origin: Origin::Env(env_name),
                })
                .map_err(|e: E| ConfigError::Invalid {
                    location: format!("environment variable {env_name}"),
                    key: key.to_owned(),
                    message: e.to_string(),
                });
        }
        Ok(file.unwrap_or(Setting {
            value: default,
            origin: Origin::Default,
        }))
    }
}

// ---- the effective configuration ----------------------------------------------------------

/// Settings of the application server (`keel serve`, and the app inside `keel up`).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub bind: Setting<SocketAddr>,
    pub workers: Setting<NonZeroUsize>,
    pub threads: Setting<NonZeroUsize>,
    pub timeout: Setting<HumanDuration>,
    pub upstream_url: Setting<UpstreamUrl>,
    pub upstream_timeout: Setting<HumanDuration>,
    pub shutdown_timeout: Setting<HumanDuration>,
    pub forwarded_allow_ips: Setting<AllowIps>,
    pub keep_alive: Setting<HumanDuration>,
    pub header_timeout: Setting<HumanDuration>,
}

/// Settings of `keel up`.
#[derive(Debug, Clone)]
pub struct UpSettings {
    pub listen: Setting<SocketAddr>,
    pub rate_limit: Setting<bool>,
}

/// Settings of `keel edge` (and of the edge layers inside `keel up`).
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub listen: Setting<SocketAddr>,
    pub upstream: Setting<List<Upstream>>,
    pub rate: Setting<RateSetting>,
    pub burst: Setting<u32>,
    pub delay: Setting<DelaySetting>,
    pub limit_status: Setting<RejectStatus>,
    pub zone_size: Setting<ZoneSetting>,
    pub dry_run: Setting<bool>,
    pub limit_conn: Setting<ConnSetting>,
    pub limit_conn_status: Setting<RejectStatus>,
    pub limit_conn_dry_run: Setting<bool>,
    /// Named conn zones from `[edge.conn_zones.NAME]` (file only).
    pub conn_zones: Vec<ConnZoneDef>,
    /// Per-path limit_conn from `[[edge.conn_limits]]` (file only).
    pub conn_limits: Vec<ConnLimitDef>,
    pub trusted_proxies: Setting<List<Cidr>>,
    pub response_timeout: Setting<HumanDuration>,
    pub body_idle_timeout: Setting<HumanDuration>,
    pub access_log: Setting<bool>,
    pub log_dir: Setting<OptPath>,
    pub client_max_body_size: Setting<ByteSize>,
    pub large_client_header_buffers: Setting<HeaderBuffers>,
    pub max_connections: Setting<usize>,
    pub header_timeout: Setting<HumanDuration>,
    pub tls_listen: Setting<SocketAddr>,
    pub tls_cert: Setting<OptPath>,
    pub tls_key: Setting<OptPath>,
    pub redirect_http: Setting<bool>,
    pub workers: Setting<NonZeroUsize>,
    pub balance: Setting<BalanceSetting>,
    pub max_fails: Setting<u32>,
    pub fail_timeout: Setting<HumanDuration>,
    pub health_check: Setting<HealthPath>,
    pub health_interval: Setting<HumanDuration>,
    /// Named zones from `[edge.zones.NAME]` (file only).
    pub zones: Vec<ZoneDef>,
    /// Per-path limits from `[[edge.limits]]` (file only).
    pub limits: Vec<LimitDef>,
}

/// A named limit_req zone.
#[derive(Debug, Clone)]
pub struct ZoneDef {
    pub name: String,
    pub rate: keel_edge::Rate,
    pub rate_text: String,
    pub size: keel_edge::ZoneSize,
    pub origin: Origin,
}

/// A named limit_conn zone.
#[derive(Debug, Clone)]
pub struct ConnZoneDef {
    pub name: String,
    pub size: keel_edge::ZoneSize,
    pub origin: Origin,
}

/// One `limit_conn` on a path prefix.
#[derive(Debug, Clone)]
pub struct ConnLimitDef {
    pub path: String,
    pub zone: String,
    pub conn: u32,
    pub origin: Origin,
}

/// One `limit_req` on a path prefix.
#[derive(Debug, Clone)]
pub struct LimitDef {
    pub path: String,
    pub zone: String,
    pub burst: u32,
    pub delay: DelaySetting,
    pub origin: Origin,
}

/// Live events: the broker and the `/stream/` service.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub redis_url: Setting<RedisUrl>,
    pub channels: Setting<List<ChannelName>>,
    pub default_channel: Setting<ChannelName>,
    pub heartbeat: Setting<HumanDuration>,
    pub retention: Setting<usize>,
    pub publish_token: Setting<Secret>,
    pub max_clients: Setting<usize>,
    pub max_clients_per_ip: Setting<usize>,
}

/// The site: its database, templates and sample posts.
#[derive(Debug, Clone)]
pub struct SiteSettings {
    pub database_url: Setting<DatabaseUrl>,
    pub templates: Setting<OptPath>,
    pub sample_data: Setting<bool>,
    pub page_cache: Setting<HumanDuration>,
}

/// Settings of the static pipeline (`keel collectstatic`, the edge's `/static/`).
#[derive(Debug, Clone)]
pub struct StaticSettings {
    pub root: Setting<PathValue>,
    pub sources: Setting<List<PathValue>>,
}

/// Settings of `keel mock-upstream` (and of the mock inside `keel up`).
#[derive(Debug, Clone)]
pub struct MockSettings {
    pub listen: Setting<SocketAddr>,
    pub latency: Setting<HumanDuration>,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: Setting<LogFormat>,
    pub level: Setting<LogLevel>,
}

/// The whole effective configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    pub serve: ServeSettings,
    pub up: UpSettings,
    pub edge: EdgeSettings,
    pub statics: StaticSettings,
    pub stream: StreamSettings,
    pub site: SiteSettings,
    pub mock: MockSettings,
    pub log: LogSettings,
    /// The flags it was loaded with, so that [`Settings::reload`] layers the same flags
    /// over the file and environment as they are now.
    flags: Flags,
    /// `KEEL_SUPERUSER_PASSWORD` (Django's `DJANGO_SUPERUSER_PASSWORD`) for `keel
    /// createsuperuser` in scripts. Environment only: a password has no place in a file
    /// or on a command line.
    pub superuser_password: Secret,
}

const DEFAULT_FILE: &str = "keel.toml";

impl Settings {
    /// Layers file, environment and flags, then validates. The only way to a `Settings`.
    pub fn load(flags: Flags, env: &dyn Env) -> Result<Settings, ConfigError> {
        let explicit = flags
            .config
            .clone()
            .or_else(|| env.var("KEEL_CONFIG").map(PathBuf::from));
        let path = match explicit {
            Some(path) => Some(path),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
        };
        let source = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some(parse_file(path, text)?)
            }
            None => None,
        };
        let (source, mut file) = match source {
            Some(mut s) => {
                let file = std::mem::take(&mut s.file);
                (Some(s), file)
            }
            None => (None, FileConfig::default()),
        };
        let src = source.as_ref();
        let l = Layer { env };

        let cpus = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        let settings =
            Settings {
                file: path,
                flags: flags.clone(),
                superuser_password: Secret(
                    env.var("KEEL_SUPERUSER_PASSWORD").filter(|p| !p.is_empty()),
                ),
                serve: ServeSettings {
                    bind: l.pick(
                        "serve.bind",
                        (flags.bind, "--bind"),
                        "KEEL_BIND",
                        from_file(src, file.serve.bind),
                        SocketAddr::from(([127, 0, 0, 1], 8000)),
                    )?,
                    workers: l.pick(
                        "serve.workers",
                        (flags.workers, "--workers"),
                        "KEEL_WORKERS",
                        from_file(src, file.serve.workers),
                        cpus,
                    )?,
                    threads: l.pick(
                        "serve.threads",
                        (flags.threads, "--threads"),
                        "KEEL_THREADS",
                        from_file(src, file.serve.threads),
                        NonZeroUsize::new(10).unwrap_or(NonZeroUsize::MIN),
                    )?,
                    timeout: l.pick(
                        "serve.timeout",
                        (flags.timeout, "--timeout"),
                        "KEEL_TIMEOUT",
                        from_file(src, file.serve.timeout),
                        HumanDuration(Duration::from_secs(30)),
                    )?,
                    upstream_url: l.pick(
                        "serve.upstream_url",
                        (flags.upstream_url, "--upstream-url"),
                        "KEEL_UPSTREAM_URL",
                        from_file(src, file.serve.upstream_url),
                        default_upstream(),
                    )?,
                    upstream_timeout: l.pick(
                        "serve.upstream_timeout",
                        (flags.upstream_timeout, "--upstream-timeout"),
                        "KEEL_UPSTREAM_TIMEOUT",
                        from_file(src, file.serve.upstream_timeout),
                        HumanDuration(Duration::from_secs(10)),
                    )?,
                    shutdown_timeout: l.pick(
                        "serve.shutdown_timeout",
                        (flags.shutdown_timeout, "--shutdown-timeout"),
                        "KEEL_SHUTDOWN_TIMEOUT",
                        from_file(src, file.serve.shutdown_timeout),
                        HumanDuration(Duration::from_secs(30)),
                    )?,
                    forwarded_allow_ips: l.pick(
                        "serve.forwarded_allow_ips",
                        (flags.forwarded_allow_ips, "--forwarded-allow-ips"),
                        "KEEL_FORWARDED_ALLOW_IPS",
                        from_file(src, file.serve.forwarded_allow_ips),
                        AllowIps::Nets(vec![
                            Cidr(ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1]))),
                            Cidr(ipnet::IpNet::from(std::net::IpAddr::from(
                                std::net::Ipv6Addr::LOCALHOST,
                            ))),
                        ]),
                    )?,
                    keep_alive: l.pick(
                        "serve.keep_alive",
                        (flags.keep_alive, "--keep-alive"),
                        "KEEL_KEEP_ALIVE",
                        from_file(src, file.serve.keep_alive),
                        HumanDuration(Duration::from_secs(5)),
                    )?,
                    header_timeout: l.pick(
                        "serve.header_timeout",
                        (flags.header_timeout, "--header-timeout"),
                        "KEEL_HEADER_TIMEOUT",
                        from_file(src, file.serve.header_timeout),
                        HumanDuration(Duration::from_secs(10)),
                    )?,
                },
                up: UpSettings {
                    listen: l.pick(
                        "up.listen",
                        (flags.up_listen, "--listen"),
                        "KEEL_LISTEN",
                        from_file(src, file.up.listen),
                        SocketAddr::from(([127, 0, 0, 1], 8080)),
                    )?,
                    rate_limit: l.pick(
                        "up.rate_limit",
                        (flags.up_rate_limit, "--no-rate-limit"),
                        "KEEL_UP_RATE_LIMIT",
                        from_file(src, file.up.rate_limit),
                        true,
                    )?,
                },
                edge: EdgeSettings {
                    listen: l.pick(
                        "edge.listen",
                        (flags.edge_listen, "--listen"),
                        "KEEL_EDGE_LISTEN",
                        from_file(src, file.edge.listen),
                        SocketAddr::from(([0, 0, 0, 0], 80)),
                    )?,
                    upstream: l.pick(
                        "edge.upstream",
                        (flags.upstream, "--upstream"),
                        "KEEL_EDGE_UPSTREAM",
                        from_file(src, file.edge.upstream),
                        List(Vec::new()),
                    )?,
                    rate: l.pick(
                        "edge.rate",
                        (flags.rate, "--rate"),
                        "KEEL_RATE",
                        from_file(src, file.edge.rate),
                        RateSetting(keel_edge::Rate::per_second(10).ok(), "10r/s".to_owned()),
                    )?,
                    burst: l.pick(
                        "edge.burst",
                        (flags.burst, "--burst"),
                        "KEEL_BURST",
                        from_file(src, file.edge.burst),
                        20,
                    )?,
                    delay: l.pick(
                        "edge.delay",
                        (flags.delay, "--delay"),
                        "KEEL_DELAY",
                        from_file(src, file.edge.delay),
                        DelaySetting(None),
                    )?,
                    limit_status: l.pick(
                        "edge.limit_status",
                        (flags.limit_status, "--limit-status"),
                        "KEEL_LIMIT_STATUS",
                        from_file(src, file.edge.limit_status),
                        RejectStatus(503),
                    )?,
                    zone_size: l.pick(
                        "edge.zone_size",
                        (None, "--zone-size"),
                        "KEEL_ZONE_SIZE",
                        from_file(src, file.edge.zone_size),
                        ZoneSetting(keel_edge::ZoneSize::from_bytes(10 * 1024 * 1024).map_err(
                            |e| invalid("edge.zone_size", &Origin::Default, e.to_string()),
                        )?),
                    )?,
                    dry_run: l.pick(
                        "edge.dry_run",
                        (None, "--dry-run"),
                        "KEEL_DRY_RUN",
                        from_file(src, file.edge.dry_run),
                        false,
                    )?,
                    limit_conn: l.pick(
                        "edge.limit_conn",
                        (flags.limit_conn, "--limit-conn"),
                        "KEEL_LIMIT_CONN",
                        from_file(src, file.edge.limit_conn),
                        ConnSetting(None),
                    )?,
                    limit_conn_status: l.pick(
                        "edge.limit_conn_status",
                        (None, "--limit-conn-status"),
                        "KEEL_LIMIT_CONN_STATUS",
                        from_file(src, file.edge.limit_conn_status),
                        RejectStatus(503),
                    )?,
                    limit_conn_dry_run: l.pick(
                        "edge.limit_conn_dry_run",
                        (None, "--limit-conn-dry-run"),
                        "KEEL_LIMIT_CONN_DRY_RUN",
                        from_file(src, file.edge.limit_conn_dry_run),
                        false,
                    )?,
                    conn_zones: conn_zone_defs(src, std::mem::take(&mut file.edge.conn_zones))?,
                    conn_limits: conn_limit_defs(src, std::mem::take(&mut file.edge.conn_limits)),
                    trusted_proxies: l.pick(
                        "edge.trusted_proxies",
                        (flags.trusted_proxies, "--trusted-proxy"),
                        "KEEL_TRUSTED_PROXIES",
                        from_file(src, file.edge.trusted_proxies),
                        List(Vec::new()),
                    )?,
                    response_timeout: l.pick(
                        "edge.response_timeout",
                        (None, "--response-timeout"),
                        "KEEL_RESPONSE_TIMEOUT",
                        from_file(src, file.edge.response_timeout),
                        HumanDuration(Duration::from_secs(60)),
                    )?,
                    body_idle_timeout: l.pick(
                        "edge.body_idle_timeout",
                        (None, "--body-idle-timeout"),
                        "KEEL_BODY_IDLE_TIMEOUT",
                        from_file(src, file.edge.body_idle_timeout),
                        HumanDuration(Duration::ZERO),
                    )?,
                    access_log: l.pick(
                        "edge.access_log",
                        (flags.access_log, "--no-access-log"),
                        "KEEL_ACCESS_LOG",
                        from_file(src, file.edge.access_log),
                        true,
                    )?,
                    log_dir: l.pick(
                        "edge.log_dir",
                        (flags.log_dir, "--log-dir"),
                        "KEEL_LOG_DIR",
                        from_file(src, file.edge.log_dir),
                        OptPath(None),
                    )?,
                    client_max_body_size: l.pick(
                        "edge.client_max_body_size",
                        (None, "--client-max-body-size"),
                        "KEEL_CLIENT_MAX_BODY_SIZE",
                        from_file(src, file.edge.client_max_body_size),
                        ByteSize(1024 * 1024),
                    )?,
                    large_client_header_buffers: l.pick(
                        "edge.large_client_header_buffers",
                        (None, "--large-client-header-buffers"),
                        "KEEL_LARGE_CLIENT_HEADER_BUFFERS",
                        from_file(src, file.edge.large_client_header_buffers),
                        HeaderBuffers {
                            count: 4,
                            size: ByteSize(8 * 1024),
                        },
                    )?,
                    max_connections: l.pick(
                        "edge.max_connections",
                        (None, "--max-connections"),
                        "KEEL_MAX_CONNECTIONS",
                        from_file(src, file.edge.max_connections),
                        10_000,
                    )?,
                    header_timeout: l.pick(
                        "edge.header_timeout",
                        (None, "--header-timeout"),
                        "KEEL_HEADER_TIMEOUT",
                        from_file(src, file.edge.header_timeout),
                        HumanDuration(Duration::from_secs(10)),
                    )?,
                    tls_listen: l.pick(
                        "edge.tls_listen",
                        (flags.tls_listen, "--tls-listen"),
                        "KEEL_TLS_LISTEN",
                        from_file(src, file.edge.tls_listen),
                        SocketAddr::from(([0, 0, 0, 0], 443)),
                    )?,
                    tls_cert: l.pick(
                        "edge.tls_cert",
                        (flags.tls_cert, "--tls-cert"),
                        "KEEL_TLS_CERT",
                        from_file(src, file.edge.tls_cert),
                        OptPath(None),
                    )?,
                    tls_key: l.pick(
                        "edge.tls_key",
                        (flags.tls_key, "--tls-key"),
                        "KEEL_TLS_KEY",
                        from_file(src, file.edge.tls_key),
                        OptPath(None),
                    )?,
                    redirect_http: l.pick(
                        "edge.redirect_http",
                        (flags.redirect_http, "--redirect-http"),
                        "KEEL_REDIRECT_HTTP",
                        from_file(src, file.edge.redirect_http),
                        false,
                    )?,
                    workers: l.pick(
                        "edge.workers",
                        (flags.edge_workers, "--workers"),
                        "KEEL_EDGE_WORKERS",
                        from_file(src, file.edge.workers),
                        cpus,
                    )?,
                    balance: l.pick(
                        "edge.balance",
                        (flags.balance, "--balance"),
                        "KEEL_BALANCE",
                        from_file(src, file.edge.balance),
                        BalanceSetting(keel_edge::Strategy::RoundRobin),
                    )?,
                    max_fails: l.pick(
                        "edge.max_fails",
                        (None, "--max-fails"),
                        "KEEL_MAX_FAILS",
                        from_file(src, file.edge.max_fails),
                        1,
                    )?,
                    fail_timeout: l.pick(
                        "edge.fail_timeout",
                        (None, "--fail-timeout"),
                        "KEEL_FAIL_TIMEOUT",
                        from_file(src, file.edge.fail_timeout),
                        HumanDuration(Duration::from_secs(10)),
                    )?,
                    health_check: l.pick(
                        "edge.health_check",
                        (flags.health_check, "--health-check"),
                        "KEEL_HEALTH_CHECK",
                        from_file(src, file.edge.health_check),
                        HealthPath(Some("/healthz".to_owned())),
                    )?,
                    health_interval: l.pick(
                        "edge.health_interval",
                        (None, "--health-interval"),
                        "KEEL_HEALTH_INTERVAL",
                        from_file(src, file.edge.health_interval),
                        HumanDuration(Duration::from_secs(2)),
                    )?,
                    zones: zone_defs(src, std::mem::take(&mut file.edge.zones))?,
                    limits: limit_defs(src, std::mem::take(&mut file.edge.limits)),
                },
                statics: StaticSettings {
                    root: l.pick(
                        "static.root",
                        (flags.static_root, "--static-root"),
                        "KEEL_STATIC_ROOT",
                        from_file(src, file.statics.root),
                        PathValue(PathBuf::from("keel-data/static")),
                    )?,
                    sources: l.pick(
                        "static.sources",
                        (flags.static_sources, "--source"),
                        "KEEL_STATIC_SOURCES",
                        from_file(src, file.statics.sources),
                        List(Vec::new()),
                    )?,
                },
                stream: StreamSettings {
                    redis_url: l.pick(
                        "stream.redis_url",
                        (flags.redis_url, "--redis-url"),
                        "KEEL_REDIS_URL",
                        from_file(src, file.stream.redis_url),
                        RedisUrl(None),
                    )?,
                    channels: l.pick(
                        "stream.channels",
                        (None, "--channels"),
                        "KEEL_STREAM_CHANNELS",
                        from_file(src, file.stream.channels),
                        List(vec![
                            ChannelName("demo_stream".to_owned()),
                            ChannelName("site".to_owned()),
                        ]),
                    )?,
                    default_channel: l.pick(
                        "stream.default_channel",
                        (None, "--default-channel"),
                        "KEEL_STREAM_DEFAULT_CHANNEL",
                        from_file(src, file.stream.default_channel),
                        ChannelName("demo_stream".to_owned()),
                    )?,
                    heartbeat: l.pick(
                        "stream.heartbeat",
                        (None, "--heartbeat"),
                        "KEEL_STREAM_HEARTBEAT",
                        from_file(src, file.stream.heartbeat),
                        HumanDuration(Duration::from_secs(15)),
                    )?,
                    retention: l.pick(
                        "stream.retention",
                        (None, "--retention"),
                        "KEEL_STREAM_RETENTION",
                        from_file(src, file.stream.retention),
                        1000,
                    )?,
                    publish_token: l.pick(
                        "stream.publish_token",
                        (flags.publish_token.clone(), "--token"),
                        "KEEL_PUBLISH_TOKEN",
                        from_file(src, file.stream.publish_token),
                        Secret(None),
                    )?,
                    max_clients: l.pick(
                        "stream.max_clients",
                        (None, "--max-clients"),
                        "KEEL_STREAM_MAX_CLIENTS",
                        from_file(src, file.stream.max_clients),
                        20_000,
                    )?,
                    max_clients_per_ip: l.pick(
                        "stream.max_clients_per_ip",
                        (None, "--max-clients-per-ip"),
                        "KEEL_STREAM_MAX_CLIENTS_PER_IP",
                        from_file(src, file.stream.max_clients_per_ip),
                        // Off: per-address caps belong at the edge (limit_conn), where
                        // the real client is known; here a NAT or a proxy is one address.
                        0,
                    )?,
                },
                site: SiteSettings {
                    database_url: l.pick(
                        "site.database_url",
                        (flags.database_url, "--database-url"),
                        "KEEL_DATABASE_URL",
                        from_file(src, file.site.database_url),
                        DatabaseUrl(keel_site::DEFAULT_DATABASE_URL.to_owned()),
                    )?,
                    templates: l.pick(
                        "site.templates",
                        (flags.templates, "--templates"),
                        "KEEL_TEMPLATES",
                        from_file(src, file.site.templates),
                        OptPath(None),
                    )?,
                    sample_data: l.pick(
                        "site.sample_data",
                        (flags.sample_data, "--no-sample-data"),
                        "KEEL_SAMPLE_DATA",
                        from_file(src, file.site.sample_data),
                        true,
                    )?,
                    page_cache: l.pick(
                        "site.page_cache",
                        (None, "--page-cache"),
                        "KEEL_PAGE_CACHE",
                        from_file(src, file.site.page_cache),
                        HumanDuration(Duration::from_secs(1)),
                    )?,
                },
                mock: MockSettings {
                    listen: l.pick(
                        "mock_upstream.listen",
                        (flags.mock_listen, "--listen"),
                        "KEEL_MOCK_LISTEN",
                        from_file(src, file.mock_upstream.listen),
                        SocketAddr::from(([127, 0, 0, 1], 9000)),
                    )?,
                    latency: l.pick(
                        "mock_upstream.latency",
                        (flags.mock_latency, "--latency"),
                        "KEEL_MOCK_LATENCY",
                        from_file(src, file.mock_upstream.latency),
                        HumanDuration(Duration::from_millis(100)),
                    )?,
                },
                log: LogSettings {
                    format: l.pick(
                        "log.format",
                        (flags.log_format, "--log-format"),
                        "KEEL_LOG_FORMAT",
                        from_file(src, file.log.format),
                        LogFormat::Text,
                    )?,
                    level: l.pick(
                        "log.level",
                        (flags.log_level, "--log-level"),
                        "KEEL_LOG_LEVEL",
                        from_file(src, file.log.level),
                        LogLevel("info".to_owned()),
                    )?,
                },
            };
        settings.validate()?;
        Ok(settings)
    }

    /// Rules that involve more than a value's type.
    fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.serve;
        positive("serve.timeout", &s.timeout)?;
        positive("serve.upstream_timeout", &s.upstream_timeout)?;
        // keep_alive may be 0 (no keep-alive, as gunicorn's --keep-alive 0); a head
        // timeout of 0 would close every connection before its first byte.
        positive("serve.header_timeout", &s.header_timeout)?;
        positive("edge.response_timeout", &self.edge.response_timeout)?;
        positive("edge.header_timeout", &self.edge.header_timeout)?;
        positive("edge.health_interval", &self.edge.health_interval)?;
        positive("stream.heartbeat", &self.stream.heartbeat)?;
        let st = &self.stream;
        // Below a second the hub would spend itself on heartbeats; above a few minutes
        // every proxy in between (nginx: 60 s) would cut an idle stream first.
        let beat = st.heartbeat.value.0;
        if beat < Duration::from_secs(1) || beat > Duration::from_secs(300) {
            return Err(invalid(
                "stream.heartbeat",
                &st.heartbeat.origin,
                format!(
                    "{} is outside 1s..300s; keep it below every proxy's read timeout",
                    st.heartbeat.value
                ),
            ));
        }
        if st.max_clients.value == 0 {
            return Err(invalid(
                "stream.max_clients",
                &st.max_clients.origin,
                "must be at least 1".to_owned(),
            ));
        }
        if let Some(dir) = &self.site.templates.value.0 {
            if !dir.is_dir() {
                return Err(invalid(
                    "site.templates",
                    &self.site.templates.origin,
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        if !st.channels.value.0.contains(&st.default_channel.value) {
            return Err(invalid(
                "stream.default_channel",
                &st.default_channel.origin,
                format!(
                    "{} is not in stream.channels ({})",
                    st.default_channel.value, st.channels.value
                ),
            ));
        }
        for (i, limit) in self.edge.limits.iter().enumerate() {
            let key = format!("edge.limits[{i}]");
            if !self.edge.zones.iter().any(|zone| zone.name == limit.zone) {
                return Err(invalid(
                    &format!("{key}.zone"),
                    &limit.origin,
                    format!(
                        "no zone named {:?}; define it with [edge.zones.{}]",
                        limit.zone, limit.zone
                    ),
                ));
            }
            if !limit.path.starts_with('/') {
                return Err(invalid(
                    &format!("{key}.path"),
                    &limit.origin,
                    format!("{:?} is not a path; it must start with /", limit.path),
                ));
            }
        }
        for (i, limit) in self.edge.conn_limits.iter().enumerate() {
            let key = format!("edge.conn_limits[{i}]");
            if !self
                .edge
                .conn_zones
                .iter()
                .any(|zone| zone.name == limit.zone)
            {
                return Err(invalid(
                    &format!("{key}.zone"),
                    &limit.origin,
                    format!(
                        "no conn zone named {:?}; define it with [edge.conn_zones.{}]",
                        limit.zone, limit.zone
                    ),
                ));
            }
            if !limit.path.starts_with('/') {
                return Err(invalid(
                    &format!("{key}.path"),
                    &limit.origin,
                    format!("{:?} is not a path; it must start with /", limit.path),
                ));
            }
            if !(1..=keel_edge::MAX_CONNS).contains(&limit.conn) {
                return Err(invalid(
                    &format!("{key}.conn"),
                    &limit.origin,
                    format!("must be from 1 to {}", keel_edge::MAX_CONNS),
                ));
            }
        }
        if self.edge.max_fails.value == 0 {
            return Err(invalid(
                "edge.max_fails",
                &self.edge.max_fails.origin,
                "must be at least 1".to_owned(),
            ));
        }
        let e = &self.edge;
        match (&e.tls_cert.value.0, &e.tls_key.value.0) {
            (Some(_), None) => {
                return Err(invalid(
                    "edge.tls_key",
                    &e.tls_cert.origin,
                    "a TLS certificate needs its key: give --tls-key too".to_owned(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "edge.tls_cert",
                    &e.tls_key.origin,
                    "a TLS key needs its certificate: give --tls-cert too".to_owned(),
                ))
            }
            (Some(cert), Some(key)) => {
                for (name, path, origin) in [
                    ("edge.tls_cert", cert, &e.tls_cert.origin),
                    ("edge.tls_key", key, &e.tls_key.origin),
                ] {
                    if let Err(err) = std::fs::File::open(path) {
                        return Err(invalid(
                            name,
                            origin,
                            format!("cannot read {}: {err}", path.display()),
                        ));
                    }
                }
            }
            _ => {}
        }
        if self.edge.max_connections.value == 0 {
            return Err(invalid(
                "edge.max_connections",
                &self.edge.max_connections.origin,
                "must be at least 1".to_owned(),
            ));
        }
        let slots = s.workers.value.get().checked_mul(s.threads.value.get());
        if slots.is_none_or(|n| n > 10_000) {
            return Err(invalid(
                "serve.threads",
                &s.threads.origin,
                format!(
                    "workers × threads = {} × {} is more blocking threads than keel allows (10000)",
                    s.workers.value, s.threads.value
                ),
            ));
        }
        if s.workers.value.get() > 1024 {
            return Err(invalid(
                "serve.workers",
                &s.workers.origin,
                format!(
                    "{} workers is more than keel allows (1024)",
                    s.workers.value
                ),
            ));
        }
        // The limit specs as the edge will build them: a clash the per-key checks above
        // cannot see (a file zone named like edge.rate's own) is refused here too.
        self.limit_config()?;
        self.conn_limit_config()?;
        Ok(())
    }

    /// The application server's configuration, for `bind`, serving live events from `hub`.
    pub fn app_config(
        &self,
        bind: SocketAddr,
        hub: Option<keel_stream::Hub>,
    ) -> keel_app::AppConfig {
        let s = &self.serve;
        keel_app::AppConfig {
            bind,
            blocking_slots: s.workers.value.get() * s.threads.value.get(),
            request_timeout: s.timeout.value.0,
            upstream_url: s.upstream_url.value.0.clone(),
            upstream_timeout: s.upstream_timeout.value.0,
            shutdown_timeout: s.shutdown_timeout.value.0,
            forwarded_allow_ips: s.forwarded_allow_ips.value.trusted(),
            keep_alive: s.keep_alive.value.0,
            header_timeout: s.header_timeout.value.0,
            stream: hub,
            publish_token: self.stream.publish_token.value.0.clone(),
            site: None,
        }
    }

    /// The site's configuration, announcing new posts on `hub`.
    pub fn site_config(&self, hub: Option<keel_stream::Hub>) -> keel_site::SiteConfig {
        let mut cfg = keel_site::SiteConfig::new(self.site.database_url.value.0.clone());
        cfg.templates_dir = self.site.templates.value.0.clone();
        cfg.static_root = Some(self.statics.root.value.0.clone());
        cfg.sample_data = self.site.sample_data.value;
        cfg.page_cache_ttl = self.site.page_cache.value.0;
        cfg.hub = hub;
        // Enough connections for every worker to hold one while blocking calls run.
        cfg.max_connections = u32::try_from(self.serve.workers.value.get() * 4).unwrap_or(16);
        cfg
    }

    /// The limit_req spec, or `None` when nothing is limited: `edge.rate` as the zone
    /// `keel` on every path, then the file's `[edge.zones.NAME]` and `[[edge.limits]]`.
    /// Pure data: the edge builds the zones, and keeps the unchanged ones across a reload.
    pub fn limit_config(&self) -> Result<Option<keel_edge::LimitSpec>, ConfigError> {
        /// The zone of `edge.rate` (a name in the edge's logs, as nginx's `mylimit`).
        const RATE_ZONE: &str = "keel";
        let e = &self.edge;
        let policy = |delay: DelaySetting| match delay.0 {
            None => keel_edge::DelayPolicy::NoDelay,
            Some(n) => keel_edge::DelayPolicy::Delay(n),
        };
        let mut zones = Vec::new();
        // Routes in file order; several limits on one path are checked together.
        let mut routes: Vec<keel_edge::RouteSpec> = Vec::new();
        let mut add = |path: &str, limit: keel_edge::LimitRef| match routes
            .iter_mut()
            .find(|route| route.path_prefix == path)
        {
            Some(route) => route.limits.push(limit),
            None => routes.push(keel_edge::RouteSpec {
                path_prefix: path.to_owned(),
                limits: vec![limit],
            }),
        };
        if let Some(rate) = e.rate.value.0 {
            // Zones are found by name in the spec, so this one's name must be its own.
            if let Some(zone) = e.zones.iter().find(|zone| zone.name == RATE_ZONE) {
                return Err(invalid(
                    &format!("edge.zones.{RATE_ZONE}"),
                    &zone.origin,
                    format!("{RATE_ZONE:?} is the zone of edge.rate; give this zone another name"),
                ));
            }
            zones.push(keel_edge::ZoneSpec {
                name: RATE_ZONE.to_owned(),
                rate,
                size: e.zone_size.value.0,
            });
            add(
                "/",
                keel_edge::LimitRef {
                    zone: RATE_ZONE.to_owned(),
                    burst: e.burst.value,
                    delay: policy(e.delay.value),
                },
            );
        }
        zones.extend(e.zones.iter().map(|zone| keel_edge::ZoneSpec {
            name: zone.name.clone(),
            rate: zone.rate,
            size: zone.size,
        }));
        for limit in &e.limits {
            add(
                &limit.path,
                keel_edge::LimitRef {
                    zone: limit.zone.clone(),
                    burst: limit.burst,
                    delay: policy(limit.delay),
                },
            );
        }
        if routes.is_empty() {
            return Ok(None);
        }
        let status = axum_status(e.limit_status.value.0).ok_or_else(|| {
            invalid(
                "edge.limit_status",
                &e.limit_status.origin,
                "not an HTTP status".into(),
            )
        })?;
        let spec = keel_edge::LimitSpec {
            zones,
            routes,
            status,
            dry_run: e.dry_run.value,
        };
        // What the edge would refuse, refused here: validate() checked that every zone
        // exists; one zone listed twice on a path is left ("path /x: … is duplicate").
        spec.validate()
            .map_err(|err| invalid("edge.limits", &Origin::Default, err.to_string()))?;
        Ok(Some(spec))
    }

    /// The edge's configuration for `listen` in front of `backend`, without side effects:
    /// SIGHUP builds it again to swap limits and upstreams. TLS and the access log, which
    /// open files and start a writer, are opened once at start by the binary from
    /// [`Settings::tls_files`] and [`Settings::access_log_target`].
    pub fn edge_config(
        &self,
        listen: SocketAddr,
        backend: keel_edge::Backend,
        rate_limit: bool,
    ) -> Result<keel_edge::EdgeConfig, ConfigError> {
        let e = &self.edge;
        let mut cfg = keel_edge::EdgeConfig::new(listen, backend);
        cfg.limit = if rate_limit {
            self.limit_config()?
        } else {
            None
        };
        cfg.conn_limit = self.conn_limit_config()?;
        cfg.trusted_proxies =
            keel_edge::TrustedProxies::new(e.trusted_proxies.value.0.iter().map(|c| c.0).collect());
        cfg.response_timeout = e.response_timeout.value.0;
        // 0 (the default) leaves streamed bodies without a read timeout.
        cfg.body_idle_timeout = Some(e.body_idle_timeout.value.0).filter(|d| !d.is_zero());
        cfg.header_read_timeout = e.header_timeout.value.0;
        cfg.max_connections = e.max_connections.value;
        cfg.max_body_bytes = Some(e.client_max_body_size.value.0).filter(|&n| n != 0);
        let buffers = e.large_client_header_buffers.value;
        let line = usize::try_from(buffers.size.0).unwrap_or(usize::MAX);
        cfg.max_request_line_bytes = line;
        cfg.max_header_line_bytes = line;
        cfg.max_header_bytes = line.saturating_mul(usize::try_from(buffers.count).unwrap_or(1));
        cfg.workers = e.workers.value.get();
        cfg.balance = keel_edge::BalanceConfig {
            strategy: e.balance.value.0,
            max_fails: e.max_fails.value,
            fail_timeout: e.fail_timeout.value.0,
            health_check: e
                .health_check
                .value
                .0
                .clone()
                .map(|path| keel_edge::HealthCheck {
                    path,
                    interval: e.health_interval.value.0,
                    timeout: e.health_interval.value.0.min(Duration::from_secs(2)),
                }),
        };
        cfg.shutdown_timeout = self.serve.shutdown_timeout.value.0;
        Ok(cfg)
    }

    /// limit_conn: `edge.limit_conn` as one zone on every path, then the file's
    /// `[[edge.conn_limits]]`; `None` when neither is set.
    pub fn conn_limit_config(&self) -> Result<Option<keel_edge::ConnLimitConfig>, ConfigError> {
        use std::sync::Arc;
        let e = &self.edge;
        type ZoneLimits = Vec<(Arc<keel_edge::ConnZone>, u32)>;
        let mut routes: Vec<(String, ZoneLimits)> = Vec::new();
        let mut add = |path: &str, zone: Arc<keel_edge::ConnZone>, conn: u32| match routes
            .iter_mut()
            .find(|(p, _)| p == path)
        {
            Some((_, limits)) => limits.push((zone, conn)),
            None => routes.push((path.to_owned(), vec![(zone, conn)])),
        };
        if let Some(conn) = e.limit_conn.value.0 {
            let zone = keel_edge::ConnZone::new("keel_conn", e.zone_size.value.0);
            add("/", Arc::new(zone), conn);
        }
        let zones: Vec<Arc<keel_edge::ConnZone>> = e
            .conn_zones
            .iter()
            .map(|z| Arc::new(keel_edge::ConnZone::new(z.name.clone(), z.size)))
            .collect();
        for limit in &e.conn_limits {
            // validate() checked that the zone exists.
            if let Some(zone) = zones.iter().find(|zone| zone.name() == limit.zone) {
                add(&limit.path, zone.clone(), limit.conn);
            }
        }
        if routes.is_empty() {
            return Ok(None);
        }
        let status = axum_status(e.limit_conn_status.value.0).ok_or_else(|| {
            invalid(
                "edge.limit_conn_status",
                &e.limit_conn_status.origin,
                "not an HTTP status".into(),
            )
        })?;
        let routes = routes
            .into_iter()
            .map(|(path, limits)| {
                keel_edge::ConnRouteLimit::new(path.clone(), limits).map_err(|err| {
                    invalid(
                        "edge.conn_limits",
                        &Origin::Default,
                        format!("path {path}: {err}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(keel_edge::ConnLimitConfig {
            routes,
            status,
            dry_run: e.limit_conn_dry_run.value,
        }))
    }

    /// Where HTTPS listens and the certificate and key files, when TLS is configured.
    /// Pure data: the binary loads the files when it starts the edge.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        let e = &self.edge;
        match (&e.tls_cert.value.0, &e.tls_key.value.0) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                listen: e.tls_listen.value,
                cert: cert.clone(),
                key: key.clone(),
                redirect_http: e.redirect_http.value,
            }),
            _ => None,
        }
    }

    /// Where the access log goes and in which format; `None` when it is turned off.
    /// Pure data: the binary opens it when it starts the edge.
    pub fn access_log_target(
        &self,
    ) -> Option<(keel_edge::AccessLogTarget, keel_edge::AccessLogFormat)> {
        let e = &self.edge;
        if !e.access_log.value {
            return None;
        }
        let target = match &e.log_dir.value.0 {
            Some(dir) => keel_edge::AccessLogTarget::File(dir.join("access.log")),
            None => keel_edge::AccessLogTarget::Stdout,
        };
        let format = match self.log.format.value {
            LogFormat::Text => keel_edge::AccessLogFormat::Combined,
            LogFormat::Json => keel_edge::AccessLogFormat::Json,
        };
        Some((target, format))
    }

    /// The live-event service's settings, for `keel_stream::Hub::new`.
    pub fn stream_config(&self) -> keel_stream::StreamConfig {
        let st = &self.stream;
        keel_stream::StreamConfig {
            default_channel: st.default_channel.value.0.clone(),
            allowed_channels: st.channels.value.0.iter().map(|c| c.0.clone()).collect(),
            heartbeat_interval: st.heartbeat.value.0,
            max_clients: st.max_clients.value,
            max_clients_per_ip: st.max_clients_per_ip.value,
            ..keel_stream::StreamConfig::default()
        }
    }

    /// The settings again, from the same flags over the file and environment as they
    /// are now (SIGHUP).
    pub fn reload(&self, env: &dyn Env) -> Result<Settings, ConfigError> {
        Settings::load(self.flags.clone(), env)
    }

    /// What a SIGHUP reload from `self` to `new` does, key by key: the settings that
    /// changed and take effect (the edge's routing: upstreams and balancing, limit_req
    /// and limit_conn, trusted proxies, upstream timeouts), and the ones that changed but
    /// only a restart applies (listeners, TLS addresses, workers, connection and header
    /// limits, the app server, the site, the stream, logging). Compared on `render`'s
    /// text, so every key is covered without a list to keep; secrets print masked, so a
    /// changed token is not seen here.
    pub fn reload_changes(&self, new: &Settings) -> ReloadChanges {
        const RELOADED: &[&str] = &[
            "edge.upstream",
            "edge.rate",
            "edge.burst",
            "edge.delay",
            "edge.limit_status",
            "edge.zone_size",
            "edge.dry_run",
            "edge.limit_conn",
            "edge.limit_conn_status",
            "edge.limit_conn_dry_run",
            "edge.trusted_proxies",
            "edge.response_timeout",
            "edge.body_idle_timeout",
            "edge.balance",
            "edge.max_fails",
            "edge.fail_timeout",
            "edge.health_check",
            "edge.health_interval",
        ];
        const RELOADED_TABLES: &[&str] = &[
            "edge.zones.",
            "edge.limits[",
            "edge.conn_zones.",
            "edge.conn_limits[",
        ];
        let before = rendered_values(&self.render());
        let after = rendered_values(&new.render());
        let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut changes = ReloadChanges::default();
        for key in keys {
            if before.get(key) == after.get(key) {
                continue;
            }
            let reloaded = RELOADED.contains(&key.as_str())
                || RELOADED_TABLES.iter().any(|table| key.starts_with(table));
            if reloaded {
                changes.applied.push(key.clone());
            } else {
                changes.need_restart.push(key.clone());
            }
        }
        changes
    }

    /// The effective configuration as TOML, each line commented with its origin.
    /// Secrets are masked by the value types' `Display`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.file {
            Some(path) => out.push_str(&format!("# config file: {}\n", path.display())),
            None => out.push_str("# config file: none (./keel.toml not found)\n"),
        }
        let s = &self.serve;
        section(&mut out, "serve");
        line(&mut out, "bind", quoted(&s.bind.value), &s.bind.origin);
        line(
            &mut out,
            "workers",
            s.workers.value.to_string(),
            &s.workers.origin,
        );
        line(
            &mut out,
            "threads",
            s.threads.value.to_string(),
            &s.threads.origin,
        );
        line(
            &mut out,
            "timeout",
            quoted(&s.timeout.value),
            &s.timeout.origin,
        );
        line(
            &mut out,
            "upstream_url",
            quoted(&s.upstream_url.value),
            &s.upstream_url.origin,
        );
        line(
            &mut out,
            "upstream_timeout",
            quoted(&s.upstream_timeout.value),
            &s.upstream_timeout.origin,
        );
        line(
            &mut out,
            "shutdown_timeout",
            quoted(&s.shutdown_timeout.value),
            &s.shutdown_timeout.origin,
        );
        line(
            &mut out,
            "forwarded_allow_ips",
            quoted(&s.forwarded_allow_ips.value),
            &s.forwarded_allow_ips.origin,
        );
        line(
            &mut out,
            "keep_alive",
            quoted(&s.keep_alive.value),
            &s.keep_alive.origin,
        );
        line(
            &mut out,
            "header_timeout",
            quoted(&s.header_timeout.value),
            &s.header_timeout.origin,
        );
        section(&mut out, "up");
        line(
            &mut out,
            "listen",
            quoted(&self.up.listen.value),
            &self.up.listen.origin,
        );
        line(
            &mut out,
            "rate_limit",
            self.up.rate_limit.value.to_string(),
            &self.up.rate_limit.origin,
        );
        let e = &self.edge;
        section(&mut out, "edge");
        line(
            &mut out,
            "listen",
            quoted(&e.listen.value),
            &e.listen.origin,
        );
        line(
            &mut out,
            "upstream",
            array(&e.upstream.value.0),
            &e.upstream.origin,
        );
        line(&mut out, "rate", quoted(&e.rate.value), &e.rate.origin);
        line(
            &mut out,
            "burst",
            e.burst.value.to_string(),
            &e.burst.origin,
        );
        line(&mut out, "delay", quoted(&e.delay.value), &e.delay.origin);
        line(
            &mut out,
            "limit_status",
            e.limit_status.value.to_string(),
            &e.limit_status.origin,
        );
        line(
            &mut out,
            "zone_size",
            quoted(&e.zone_size.value),
            &e.zone_size.origin,
        );
        line(
            &mut out,
            "dry_run",
            e.dry_run.value.to_string(),
            &e.dry_run.origin,
        );
        line(
            &mut out,
            "limit_conn",
            quoted(&e.limit_conn.value),
            &e.limit_conn.origin,
        );
        line(
            &mut out,
            "limit_conn_status",
            e.limit_conn_status.value.to_string(),
            &e.limit_conn_status.origin,
        );
        line(
            &mut out,
            "limit_conn_dry_run",
            e.limit_conn_dry_run.value.to_string(),
            &e.limit_conn_dry_run.origin,
        );
        line(
            &mut out,
            "trusted_proxies",
            array(&e.trusted_proxies.value.0),
            &e.trusted_proxies.origin,
        );
        line(
            &mut out,
            "response_timeout",
            quoted(&e.response_timeout.value),
            &e.response_timeout.origin,
        );
        line(
            &mut out,
            "body_idle_timeout",
            quoted(&e.body_idle_timeout.value),
            &e.body_idle_timeout.origin,
        );
        line(
            &mut out,
            "access_log",
            e.access_log.value.to_string(),
            &e.access_log.origin,
        );
        line(
            &mut out,
            "client_max_body_size",
            quoted(&e.client_max_body_size.value),
            &e.client_max_body_size.origin,
        );
        line(
            &mut out,
            "large_client_header_buffers",
            quoted(&e.large_client_header_buffers.value),
            &e.large_client_header_buffers.origin,
        );
        line(
            &mut out,
            "max_connections",
            e.max_connections.value.to_string(),
            &e.max_connections.origin,
        );
        line(
            &mut out,
            "header_timeout",
            quoted(&e.header_timeout.value),
            &e.header_timeout.origin,
        );
        line(
            &mut out,
            "tls_listen",
            quoted(&e.tls_listen.value),
            &e.tls_listen.origin,
        );
        line(
            &mut out,
            "tls_cert",
            quoted(&e.tls_cert.value),
            &e.tls_cert.origin,
        );
        line(
            &mut out,
            "tls_key",
            quoted(&e.tls_key.value),
            &e.tls_key.origin,
        );
        line(
            &mut out,
            "redirect_http",
            e.redirect_http.value.to_string(),
            &e.redirect_http.origin,
        );
        line(
            &mut out,
            "workers",
            e.workers.value.to_string(),
            &e.workers.origin,
        );
        line(
            &mut out,
            "balance",
            quoted(&e.balance.value),
            &e.balance.origin,
        );
        line(
            &mut out,
            "max_fails",
            e.max_fails.value.to_string(),
            &e.max_fails.origin,
        );
        line(
            &mut out,
            "fail_timeout",
            quoted(&e.fail_timeout.value),
            &e.fail_timeout.origin,
        );
        line(
            &mut out,
            "health_check",
            quoted(&e.health_check.value),
            &e.health_check.origin,
        );
        line(
            &mut out,
            "health_interval",
            quoted(&e.health_interval.value),
            &e.health_interval.origin,
        );
        line(
            &mut out,
            "log_dir",
            quoted(&e.log_dir.value),
            &e.log_dir.origin,
        );
        for zone in &e.zones {
            section(&mut out, &format!("edge.zones.{}", zone.name));
            line(&mut out, "rate", quoted(&zone.rate_text), &zone.origin);
            line(&mut out, "size", quoted(&zone.size), &zone.origin);
        }
        for zone in &e.conn_zones {
            section(&mut out, &format!("edge.conn_zones.{}", zone.name));
            line(&mut out, "size", quoted(&zone.size), &zone.origin);
        }
        for limit in &e.conn_limits {
            section(&mut out, "[edge.conn_limits]");
            line(&mut out, "path", quoted(&limit.path), &limit.origin);
            line(&mut out, "zone", quoted(&limit.zone), &limit.origin);
            line(&mut out, "conn", limit.conn.to_string(), &limit.origin);
        }
        for limit in &e.limits {
            section(&mut out, "[edge.limits]");
            line(&mut out, "path", quoted(&limit.path), &limit.origin);
            line(&mut out, "zone", quoted(&limit.zone), &limit.origin);
            line(&mut out, "burst", limit.burst.to_string(), &limit.origin);
            line(&mut out, "delay", quoted(&limit.delay), &limit.origin);
        }
        section(&mut out, "static");
        line(
            &mut out,
            "root",
            quoted(&self.statics.root.value),
            &self.statics.root.origin,
        );
        line(
            &mut out,
            "sources",
            array(&self.statics.sources.value.0),
            &self.statics.sources.origin,
        );
        let st = &self.stream;
        section(&mut out, "stream");
        line(
            &mut out,
            "redis_url",
            quoted(&st.redis_url.value),
            &st.redis_url.origin,
        );
        line(
            &mut out,
            "channels",
            array(&st.channels.value.0),
            &st.channels.origin,
        );
        line(
            &mut out,
            "default_channel",
            quoted(&st.default_channel.value),
            &st.default_channel.origin,
        );
        line(
            &mut out,
            "heartbeat",
            quoted(&st.heartbeat.value),
            &st.heartbeat.origin,
        );
        line(
            &mut out,
            "retention",
            st.retention.value.to_string(),
            &st.retention.origin,
        );
        line(
            &mut out,
            "publish_token",
            quoted(&st.publish_token.value),
            &st.publish_token.origin,
        );
        line(
            &mut out,
            "max_clients",
            st.max_clients.value.to_string(),
            &st.max_clients.origin,
        );
        line(
            &mut out,
            "max_clients_per_ip",
            st.max_clients_per_ip.value.to_string(),
            &st.max_clients_per_ip.origin,
        );
        let site = &self.site;
        section(&mut out, "site");
        line(
            &mut out,
            "database_url",
            quoted(&site.database_url.value),
            &site.database_url.origin,
        );
        line(
            &mut out,
            "templates",
            quoted(&site.templates.value),
            &site.templates.origin,
        );
        line(
            &mut out,
            "sample_data",
            site.sample_data.value.to_string(),
            &site.sample_data.origin,
        );
        line(
            &mut out,
            "page_cache",
            quoted(&site.page_cache.value),
            &site.page_cache.origin,
        );
        section(&mut out, "mock_upstream");
        line(
            &mut out,
            "listen",
            quoted(&self.mock.listen.value),
            &self.mock.listen.origin,
        );
        line(
            &mut out,
            "latency",
            quoted(&self.mock.latency.value),
            &self.mock.latency.origin,
        );
        section(&mut out, "log");
        line(
            &mut out,
            "format",
            quoted(&self.log.format.value),
            &self.log.format.origin,
        );
        line(
            &mut out,
            "level",
            quoted(&self.log.level.value),
            &self.log.level.origin,
        );
        out
    }
}

/// Where in the file a byte offset is.
fn file_origin(src: Option<&Source>, offset: usize) -> Origin {
    src.map_or(Origin::Default, |source| Origin::File {
        path: source.path.clone(),
        line: source.line_of(offset),
    })
}

fn zone_defs(
    src: Option<&Source>,
    zones: std::collections::BTreeMap<String, ZoneFile>,
) -> Result<Vec<ZoneDef>, ConfigError> {
    let default_size = keel_edge::ZoneSize::from_bytes(10 * 1024 * 1024)
        .map_err(|e| invalid("edge.zones", &Origin::Default, e.to_string()))?;
    zones
        .into_iter()
        .map(|(name, zone)| {
            let origin = file_origin(src, zone.rate.span().start);
            let setting = zone.rate.into_inner();
            match setting.0 {
                Some(rate) => Ok(ZoneDef {
                    name,
                    rate,
                    rate_text: setting.to_string(),
                    size: zone.size.map_or(default_size, |s| s.0),
                    origin,
                }),
                None => Err(invalid(
                    &format!("edge.zones.{name}.rate"),
                    &origin,
                    "a zone needs a rate; remove the zone instead of setting it off".to_owned(),
                )),
            }
        })
        .collect()
}

fn conn_zone_defs(
    src: Option<&Source>,
    zones: std::collections::BTreeMap<String, ConnZoneFile>,
) -> Result<Vec<ConnZoneDef>, ConfigError> {
    let default_size = keel_edge::ZoneSize::from_bytes(10 * 1024 * 1024)
        .map_err(|e| invalid("edge.conn_zones", &Origin::Default, e.to_string()))?;
    Ok(zones
        .into_iter()
        .map(|(name, zone)| match zone.size {
            Some(size) => ConnZoneDef {
                name,
                origin: file_origin(src, size.span().start),
                size: size.into_inner().0,
            },
            None => ConnZoneDef {
                name,
                size: default_size,
                origin: Origin::Default,
            },
        })
        .collect())
}

fn conn_limit_defs(src: Option<&Source>, limits: Vec<Spanned<ConnLimitFile>>) -> Vec<ConnLimitDef> {
    limits
        .into_iter()
        .map(|spanned| {
            let origin = file_origin(src, spanned.span().start);
            let limit = spanned.into_inner();
            ConnLimitDef {
                path: limit.path,
                zone: limit.zone,
                conn: limit.conn,
                origin,
            }
        })
        .collect()
}

fn limit_defs(src: Option<&Source>, limits: Vec<Spanned<LimitFile>>) -> Vec<LimitDef> {
    limits
        .into_iter()
        .map(|spanned| {
            let origin = file_origin(src, spanned.span().start);
            let limit = spanned.into_inner();
            LimitDef {
                path: limit.path,
                zone: limit.zone,
                burst: limit.burst,
                delay: limit.delay.unwrap_or(DelaySetting(None)),
                origin,
            }
        })
        .collect()
}

fn axum_status(code: u16) -> Option<keel_edge::StatusCode> {
    keel_edge::StatusCode::from_u16(code).ok()
}

fn default_upstream() -> UpstreamUrl {
    // The address `keel mock-upstream` listens on by default.
    UpstreamUrl(
        url::Url::parse("http://127.0.0.1:9000/todos/1")
            .unwrap_or_else(|_| unreachable!("a literal valid URL")),
    )
}

fn positive(key: &str, setting: &Setting<HumanDuration>) -> Result<(), ConfigError> {
    if setting.value.0.is_zero() {
        return Err(invalid(
            key,
            &setting.origin,
            "must be greater than 0".to_owned(),
        ));
    }
    Ok(())
}

fn invalid(key: &str, origin: &Origin, message: String) -> ConfigError {
    ConfigError::Invalid {
        location: origin.to_string(),
        key: key.to_owned(),
        message,
    }
}

/// The edge's TLS files, as configured (not yet loaded).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub redirect_http: bool,
}

/// The keys a reload changed, by what happens to them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadChanges {
    /// Changed and in effect after the reload.
    pub applied: Vec<String>,
    /// Changed in the file or environment, but kept as they were until a restart.
    pub need_restart: Vec<String>,
}

/// `render`'s text as `section.key` → value, origins left out; the entries of an array
/// of tables are numbered (`edge.limits[0].path`).
fn rendered_values(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut values = std::collections::BTreeMap::new();
    let mut section = String::new();
    let mut tables: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            let n = tables.entry(name.to_owned()).or_insert(0);
            section = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, rest)) = line.split_once(" = ") {
            let value = rest.rsplit_once(" # ").map_or(rest, |(v, _)| v).trim();
            values.insert(format!("{section}.{key}"), value.to_owned());
        }
    }
    values
}

fn section(out: &mut String, name: &str) {
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(&format!("[{name}]\n"));
}

fn line(out: &mut String, key: &str, value: String, origin: &Origin) {
    let assignment = format!("{key} = {value}");
    out.push_str(&format!("{assignment:<48} # {origin}\n"));
}

fn array<T: fmt::Display>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(quoted).collect();
    format!("[{}]", quoted.join(", "))
}

fn quoted(value: &impl fmt::Display) -> String {
    // TOML basic strings share JSON's escaping for everything a config value holds.
    serde_json::Value::String(value.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn load(
        text: &str,
        env: &[(&'static str, &'static str)],
        flags: Flags,
    ) -> Result<Settings, ConfigError> {
        let (_dir, path) = write(text);
        let flags = Flags {
            config: Some(path),
            ..flags
        };
        Settings::load(flags, &FakeEnv(env.iter().copied().collect()))
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let text = "[serve]\nworkers = 3\nthreads = 7\ntimeout = \"5s\"\n";
        let flags = Flags {
            workers: NonZeroUsize::new(9),
            ..Flags::default()
        };
        let s = load(text, &[("KEEL_WORKERS", "5"), ("KEEL_THREADS", "8")], flags).unwrap();
        assert_eq!(s.serve.workers.value.get(), 9);
        assert_eq!(s.serve.workers.origin, Origin::Flag("--workers"));
        assert_eq!(s.serve.threads.value.get(), 8);
        assert_eq!(s.serve.threads.origin, Origin::Env("KEEL_THREADS"));
        assert_eq!(s.serve.timeout.value.0, Duration::from_secs(5));
        assert!(matches!(
            s.serve.timeout.origin,
            Origin::File { line: 4, .. }
        ));
        assert_eq!(s.serve.upstream_timeout.value.0, Duration::from_secs(10));
        assert_eq!(s.serve.upstream_timeout.origin, Origin::Default);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = load(
            "[serve]\nworkers = 2\nbnid = \"x\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("keel.toml:3"), "{text}");
        assert!(text.contains("serve"), "{text}");
        assert!(text.contains("bnid"), "{text}");
    }

    #[test]
    fn bad_address_names_file_line_and_key() {
        let err = load(
            "\n[serve]\nbind = \"localhost:eighty\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("keel.toml:3: serve.bind:"), "{text}");
        assert!(text.contains("invalid socket address"), "{text}");
    }

    #[test]
    fn bad_duration_and_zero_values_are_refused() {
        let err = load("[serve]\ntimeout = \"soon\"\n", &[], Flags::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("keel.toml:2: serve.timeout: invalid duration"),
            "{err}"
        );
        let err = load("[serve]\ntimeout = \"0s\"\n", &[], Flags::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("keel.toml:2: serve.timeout: must be greater than 0"),
            "{err}"
        );
        let err = load("[serve]\nworkers = 0\n", &[], Flags::default()).unwrap_err();
        assert!(
            err.to_string().contains("keel.toml:2: serve.workers:"),
            "{err}"
        );
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err = load("", &[("KEEL_WORKERS", "many")], Flags::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("environment variable KEEL_WORKERS: serve.workers:"),
            "{text}"
        );
    }

    #[test]
    fn upstream_url_scheme_is_checked_and_password_masked() {
        let err = load(
            "[serve]\nupstream_url = \"ftp://x/y\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("only http and https"), "{err}");
        let s = load(
            "[serve]\nupstream_url = \"https://user:hunter2@api.example/todos/1\"\n",
            &[],
            Flags::default(),
        )
        .unwrap();
        let shown = s.render();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user:****@api.example"), "{shown}");
    }

    #[test]
    fn rendered_config_parses_back_to_the_same_values() {
        let s = load(
            "[serve]\nworkers = 3\n[mock_upstream]\nlatency = \"250ms\"\n",
            &[],
            Flags::default(),
        )
        .unwrap();
        let rendered = s.render();
        let again = load(&rendered, &[], Flags::default()).unwrap();
        assert_eq!(again.serve.workers.value.get(), 3);
        assert_eq!(again.mock.latency.value.0, Duration::from_millis(250));
        assert_eq!(again.serve.bind.value, s.serve.bind.value);
    }

    #[test]
    fn byte_sizes_parse_like_nginx() {
        assert_eq!("1m".parse::<ByteSize>().unwrap().0, 1024 * 1024);
        assert_eq!("64K".parse::<ByteSize>().unwrap().0, 64 * 1024);
        assert_eq!("0".parse::<ByteSize>().unwrap().0, 0);
        assert_eq!(ByteSize(2 * 1024 * 1024).to_string(), "2m");
        assert!("1t".parse::<ByteSize>().is_err());
        assert!("m".parse::<ByteSize>().is_err());
        let buffers = "4 8k".parse::<HeaderBuffers>().unwrap();
        assert_eq!((buffers.count, buffers.size.0), (4, 8192));
        assert_eq!(buffers.to_string(), "4 8k");
        for bad in ["8k", "0 8k", "4 100", "4 8k 1", "x 8k", "4096 8m"] {
            assert!(bad.parse::<HeaderBuffers>().is_err(), "{bad}");
        }
        let err = load(
            "[edge]\nclient_max_body_size = \"lots\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("keel.toml:2: edge.client_max_body_size: invalid size"),
            "{err}"
        );
    }

    #[test]
    fn zones_and_per_path_limits_are_read_and_checked() {
        let text = "[edge]\nrate = \"off\"\n[edge.zones.login]\nrate = \"6r/m\"\nsize = \"1m\"\n\n[[edge.limits]]\npath = \"/accounts/login/\"\nzone = \"login\"\nburst = 3\n";
        let s = load(text, &[], Flags::default()).unwrap();
        assert_eq!(s.edge.zones.len(), 1);
        assert_eq!(s.edge.limits[0].burst, 3);
        assert!(
            matches!(s.edge.limits[0].origin, Origin::File { line: 7, .. }),
            "{:?}",
            s.edge.limits[0].origin
        );
        let limits = s.limit_config().unwrap().unwrap();
        assert!(limits.route_for("/accounts/login/").is_some());
        assert!(
            limits.route_for("/").is_none(),
            "rate = off leaves other paths alone"
        );
        let again = load(&s.render(), &[], Flags::default()).unwrap();
        assert_eq!(again.edge.limits[0].zone, "login");

        let err = load(
            "[[edge.limits]]\npath = \"/x\"\nzone = \"nope\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains(":1: edge.limits[0].zone: no zone named \"nope\""),
            "{err}"
        );
    }

    #[test]
    fn the_rate_and_the_zones_make_one_limit_spec() {
        let text = "[edge]\nrate = \"5r/s\"\nburst = 7\ndry_run = true\n[edge.zones.login]\nrate = \"6r/m\"\n\n[[edge.limits]]\npath = \"/login\"\nzone = \"login\"\n";
        let s = load(text, &[], Flags::default()).unwrap();
        let spec = s.limit_config().unwrap().unwrap();
        let names: Vec<&str> = spec.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["keel", "login"]);
        assert_eq!(spec.route_for("/about").unwrap().limits[0].burst, 7);
        assert_eq!(spec.route_for("/login/x").unwrap().limits[0].zone, "login");
        assert!(spec.dry_run);

        // The zone of edge.rate is found by its name: a file zone may not take it, and
        // the configuration refuses it at load (keel config too), not only the edge.
        let clash = "[edge.zones.keel]\nrate = \"1r/s\"\n";
        let err = load(clash, &[], Flags::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains(":2: edge.zones.keel: \"keel\" is the zone of edge.rate"),
            "{err}"
        );
    }

    #[test]
    fn limit_conn_is_off_by_default_and_read_from_every_layer() {
        let s = load("", &[], Flags::default()).unwrap();
        assert!(s.conn_limit_config().unwrap().is_none());

        let s = load("", &[("KEEL_LIMIT_CONN", "2")], Flags::default()).unwrap();
        let limits = s.conn_limit_config().unwrap().unwrap();
        assert_eq!(limits.status.as_u16(), 503);
        assert_eq!(limits.for_path("/stream/").unwrap().limits[0].1, 2);

        let text = "[edge]\nlimit_conn_status = 429\nlimit_conn_dry_run = true\n[edge.conn_zones.streams]\nsize = \"1m\"\n\n[[edge.conn_limits]]\npath = \"/stream/\"\nzone = \"streams\"\nconn = 4\n";
        let s = load(text, &[], Flags::default()).unwrap();
        let limits = s.conn_limit_config().unwrap().unwrap();
        assert_eq!(limits.status.as_u16(), 429);
        assert!(limits.dry_run);
        assert!(limits.for_path("/").is_none());
        let route = limits.for_path("/stream/").unwrap();
        assert_eq!(route.limits[0].0.name(), "streams");
        assert_eq!(route.limits[0].1, 4);
        let again = load(&s.render(), &[], Flags::default()).unwrap();
        assert_eq!(again.edge.conn_limits[0].conn, 4);
        assert_eq!(again.edge.conn_zones[0].name, "streams");

        let flags = Flags {
            limit_conn: Some("off".parse().unwrap()),
            ..Flags::default()
        };
        let s = load("[edge]\nlimit_conn = 3\n", &[], flags).unwrap();
        assert!(s.conn_limit_config().unwrap().is_none(), "the flag wins");

        let err = load(
            "[[edge.conn_limits]]\npath = \"/x\"\nzone = \"nope\"\nconn = 1\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains(":1: edge.conn_limits[0].zone: no conn zone named \"nope\""),
            "{err}"
        );
        let err = load("", &[("KEEL_LIMIT_CONN", "70000")], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("KEEL_LIMIT_CONN"), "{err}");
    }

    #[test]
    fn forwarded_allow_ips_default_to_loopback_and_take_cidrs_or_a_star() {
        let s = load("", &[], Flags::default()).unwrap();
        assert_eq!(
            s.serve.forwarded_allow_ips.value.to_string(),
            "127.0.0.1/32,::1/128"
        );
        let s = load(
            "[serve]\nforwarded_allow_ips = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
            &[],
            Flags::default(),
        )
        .unwrap();
        let trusted = s.serve.forwarded_allow_ips.value.trusted();
        assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
        assert!(trusted.trusts("192.0.2.1".parse().unwrap()));
        assert!(!trusted.trusts("127.0.0.1".parse().unwrap()));
        let s = load("", &[("KEEL_FORWARDED_ALLOW_IPS", "*")], Flags::default()).unwrap();
        assert_eq!(s.serve.forwarded_allow_ips.value, AllowIps::Any);
        let again = load(&s.render(), &[], Flags::default()).unwrap();
        assert_eq!(again.serve.forwarded_allow_ips.value, AllowIps::Any);
        let err = load(
            "[serve]\nforwarded_allow_ips = \"10.0.0.0/33\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("forwarded_allow_ips"), "{err}");
    }

    #[test]
    fn serve_timeouts_have_defaults_and_a_zero_head_timeout_is_refused() {
        let s = load("", &[], Flags::default()).unwrap();
        assert_eq!(s.serve.keep_alive.value.0, Duration::from_secs(5));
        assert_eq!(s.serve.header_timeout.value.0, Duration::from_secs(10));
        let cfg = s.app_config(s.serve.bind.value, None);
        assert_eq!(cfg.keep_alive, Duration::from_secs(5));
        let s = load("[serve]\nkeep_alive = \"0s\"\n", &[], Flags::default()).unwrap();
        assert!(
            s.serve.keep_alive.value.0.is_zero(),
            "0 turns keep-alive off"
        );
        let err = load("", &[("KEEL_HEADER_TIMEOUT", "0s")], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("serve.header_timeout"), "{err}");
    }

    /// Whatever `keel config` accepts, the server starts with: values the server would
    /// refuse are refused here, naming where they came from.
    #[test]
    fn values_the_server_would_refuse_are_refused_by_the_configuration() {
        let err = load("[stream]\nheartbeat = \"1ns\"\n", &[], Flags::default()).unwrap_err();
        assert!(err.to_string().contains(":2: stream.heartbeat"), "{err}");
        let err = load("", &[("KEEL_STREAM_MAX_CLIENTS", "0")], Flags::default()).unwrap_err();
        assert!(err.to_string().contains("stream.max_clients"), "{err}");
        let s = load("[stream]\nmax_clients_per_ip = 0\n", &[], Flags::default()).unwrap();
        assert_eq!(
            s.stream_config().max_clients_per_ip,
            0,
            "0 is off, not refused"
        );
        keel_stream::Hub::new(
            std::sync::Arc::new(keel_stream::MemoryBroker::new(Default::default())),
            s.stream_config(),
        )
        .map(|_| ())
        .unwrap_or_else(|e| panic!("the hub refused what the configuration accepted: {e}"));
        let err = load(
            "[site]\ntemplates = \"/nonexistent/templates\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("site.templates")
                && err.to_string().contains("not a directory"),
            "{err}"
        );
        let err = load(
            "[edge]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
            &[],
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("edge.tls_cert") && err.to_string().contains("cannot read"),
            "{err}"
        );
    }

    #[test]
    fn a_reload_tells_what_it_applies_and_what_needs_a_restart() {
        let old = load(
            "[edge]\nrate = \"10r/s\"\nupstream = [\"127.0.0.1:8000\"]\n",
            &[],
            Flags::default(),
        )
        .unwrap();
        let new = load(
            "[edge]\nrate = \"5r/s\"\nupstream = [\"127.0.0.1:8001\"]\nheader_timeout = \"20s\"\nworkers = 3\n[[edge.limits]]\npath = \"/x/\"\nzone = \"z\"\n[edge.zones.z]\nrate = \"1r/s\"\n",
            &[],
            Flags::default(),
        )
        .unwrap();
        let changes = old.reload_changes(&new);
        assert_eq!(
            changes.applied,
            [
                "edge.limits[0].burst",
                "edge.limits[0].delay",
                "edge.limits[0].path",
                "edge.limits[0].zone",
                "edge.rate",
                "edge.upstream",
                "edge.zones.z.rate",
                "edge.zones.z.size",
            ]
        );
        assert_eq!(
            changes.need_restart,
            ["edge.header_timeout", "edge.workers"]
        );
        assert_eq!(old.reload_changes(&old), ReloadChanges::default());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let flags = Flags {
            config: Some(PathBuf::from("/nonexistent/keel.toml")),
            ..Flags::default()
        };
        let err = Settings::load(flags, &FakeEnv(HashMap::new())).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/keel.toml"), "{err}");
    }
}
