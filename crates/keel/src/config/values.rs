//! The value types of the configuration: what a key may hold, how it is parsed from a
//! flag, a variable or the file (`FromStr`, `Deserialize`), how it prints (`Display`, with
//! secrets masked) and how `keel config` writes it ([`RenderValue`]: quoted, bare or an
//! array).

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::render::quoted;

/// How a value is written in `keel config`'s TOML: quoted by default.
pub trait RenderValue: fmt::Display + Sized {
    /// The value in `keel config`'s output (secrets masked).
    fn render(&self) -> String {
        quoted(self)
    }
    /// The value as `keel.toml` takes it: `render`, but a secret in clear.
    #[cfg(test)]
    fn to_toml(&self) -> String {
        self.render()
    }
}

/// How a flag's values become the key's value: the last one, read as the variable's text
/// is, for most keys; every occurrence as one item, for a list.
pub trait FromFlag: Sized {
    fn from_flag(values: &[String]) -> Result<Self, String>;
}

/// The last value, through the type's `FromStr` (the variable's parser).
fn last_value<T: FromStr<Err = E>, E: fmt::Display>(values: &[String]) -> Result<T, String> {
    let text = values.last().ok_or("the flag has no value")?;
    text.parse().map_err(|e: E| e.to_string())
}

macro_rules! bare {
    ($($ty:ty),*) => { $(
        impl RenderValue for $ty { fn render(&self) -> String { self.to_string() } }
        impl FromFlag for $ty {
            fn from_flag(values: &[String]) -> Result<Self, String> { last_value(values) }
        }
    )* };
}
macro_rules! quoted_values {
    ($($ty:ty),*) => { $(
        impl RenderValue for $ty {}
        impl FromFlag for $ty {
            fn from_flag(values: &[String]) -> Result<Self, String> { last_value(values) }
        }
    )* };
}
bare!(bool, u32, usize, NonZeroUsize, RejectStatus);
quoted_values!(
    SocketAddr,
    HumanDuration,
    UpstreamUrl,
    AllowIps,
    RateSetting,
    DelaySetting,
    ZoneSetting,
    ConnSetting,
    OptPath,
    ByteSize,
    HeaderBuffers,
    BalanceSetting,
    HealthPath,
    PathValue,
    RedisUrl,
    OptUrl,
    ModelName,
    OneLine,
    ChannelName,
    DatabaseUrl,
    LogFormat,
    LogLevel
);

impl FromFlag for Secret {
    fn from_flag(values: &[String]) -> Result<Self, String> {
        last_value(values)
    }
}

/// Each occurrence of a repeatable flag is one item, taken whole: a path given to
/// `--source` may hold a comma, where the variable's text would split it.
impl<T: FromStr<Err = String>> FromFlag for List<T> {
    fn from_flag(values: &[String]) -> Result<Self, String> {
        values
            .iter()
            .map(|item| item.trim().parse())
            .collect::<Result<Vec<T>, String>>()
            .map(List)
    }
}

/// A value a key's declared range (`within "1s", "300s"`) can bound: ordered, and written
/// as the key's own text.
pub trait Bounded: FromStr + PartialOrd + fmt::Display {
    /// What a value below the range is told.
    fn below(&self, low: &Self) -> String {
        format!("{self} is less than {low}, the smallest this key takes")
    }
}

impl Bounded for u32 {}
impl Bounded for usize {}
impl Bounded for NonZeroUsize {}
impl Bounded for ByteSize {}
impl Bounded for HumanDuration {
    fn below(&self, low: &Self) -> String {
        if self.0.is_zero() {
            // A zero timeout would end every request before it starts.
            "must be greater than 0".to_owned()
        } else {
            format!("{self} is less than {low}, the shortest this key takes")
        }
    }
}

/// Checks `setting` against its declared range, naming where the value came from.
pub(crate) fn within<T: Bounded>(
    key: &str,
    setting: &super::Setting<T>,
    low: &str,
    high: &str,
) -> Result<(), super::ConfigError> {
    let bound = |text: &str| {
        text.parse::<T>().map_err(|_| {
            super::invalid(
                key,
                &setting.origin,
                format!("the declared bound {text:?} does not parse"),
            )
        })
    };
    let (low, high) = (bound(low)?, bound(high)?);
    let value = &setting.value;
    if *value < low {
        return Err(super::invalid(key, &setting.origin, value.below(&low)));
    }
    if *value > high {
        return Err(super::invalid(
            key,
            &setting.origin,
            format!("{value} is more than {high}, the largest this key takes"),
        ));
    }
    Ok(())
}

/// Masked by its `Display`; in clear only in a test's `keel.toml`.
impl RenderValue for Secret {
    #[cfg(test)]
    fn to_toml(&self) -> String {
        quoted(&self.0.clone().unwrap_or_default())
    }
}

/// A list renders as a TOML array of quoted items.
impl<T: fmt::Display> RenderValue for List<T> {
    fn render(&self) -> String {
        super::render::array(&self.0)
    }
}

/// The number of CPUs: the default of both `workers`.
pub(crate) fn cpus() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

pub(crate) fn default_upstream() -> UpstreamUrl {
    // The address `keel mock-upstream` listens on by default.
    UpstreamUrl(
        url::Url::parse("http://127.0.0.1:9000/todos/1")
            .unwrap_or_else(|_| unreachable!("a literal valid URL")),
    )
}

/// nginx's usual zone size, 10m.
pub(crate) fn default_zone_size() -> Result<ZoneSetting, super::ConfigError> {
    keel_edge::ZoneSize::from_bytes(10 * 1024 * 1024)
        .map(ZoneSetting)
        .map_err(|e| super::invalid("edge.zone_size", &super::Origin::Default, e.to_string()))
}

impl AllowIps {
    /// gunicorn's default: the loopback addresses.
    pub fn loopback() -> AllowIps {
        AllowIps::Nets(vec![
            Cidr(ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1]))),
            Cidr(ipnet::IpNet::from(std::net::IpAddr::from(
                std::net::Ipv6Addr::LOCALHOST,
            ))),
        ])
    }
}

impl RateSetting {
    /// `10r/s`, keel's default rate.
    pub fn default_rate() -> RateSetting {
        RateSetting(keel_edge::Rate::per_second(10).ok(), "10r/s".to_owned())
    }
}

impl HeaderBuffers {
    /// nginx's `large_client_header_buffers 4 8k`.
    pub fn default_buffers() -> HeaderBuffers {
        HeaderBuffers {
            count: 4,
            size: ByteSize(8 * 1024),
        }
    }
}

/// A duration written the human way: `30s`, `100ms`, `1m 30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// An optional http(s) URL: empty or `none` is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptUrl(pub Option<UpstreamUrl>);

impl FromStr for OptUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "none" | "off" => Ok(OptUrl(None)),
            text => text.parse().map(|u| OptUrl(Some(u))),
        }
    }
}

impl fmt::Display for OptUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(url) => url.fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// A model's name as its API knows it: printable, no spaces, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName(pub String);

impl FromStr for ModelName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        if name.is_empty()
            || name.len() > 200
            || name.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(format!(
                "{s:?} is not a model name (printable, no spaces, at most 200 characters)"
            ));
        }
        Ok(ModelName(name.to_owned()))
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One line of text shown on every page: printable, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneLine(pub String);

impl FromStr for OneLine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let line = s.trim();
        if line.is_empty() && s.is_empty() {
            return Ok(OneLine(String::new()));
        }
        if line.chars().count() > 200 || line.chars().any(char::is_control) {
            return Err(format!("{s:?} is not one line of at most 200 characters"));
        }
        Ok(OneLine(line.to_owned()))
    }
}

impl fmt::Display for OneLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
    OptUrl,
    ModelName,
    OneLine,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
