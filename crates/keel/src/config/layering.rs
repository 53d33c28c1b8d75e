//! Layering: flag > environment > file > default, decided here and nowhere else.
//!
//! [`Origin`] and [`Setting`] (a value and where it came from), [`Flags`] (what the CLI
//! was given), [`Env`] and [`ProcessEnv`] (the environment, behind a seam for tests) and
//! [`Layer::pick`], which every declared key goes through.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;

use super::*;

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
pub(crate) struct Layer<'a> {
    pub(crate) env: &'a dyn Env,
}

impl Layer<'_> {
    pub(crate) fn pick<T: FromStr<Err = E> + Clone, E: fmt::Display>(
        &self,
        key: &str,
        flag: Option<(&Option<T>, &'static str)>,
        env_name: &'static str,
        file: Option<Setting<T>>,
        default: T,
    ) -> Result<Setting<T>, ConfigError> {
        if let Some((Some(value), name)) = flag {
            return Ok(Setting {
                value: value.clone(),
                origin: Origin::Flag(name),
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
