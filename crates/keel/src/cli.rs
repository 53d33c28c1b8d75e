//! The command line: one `enum Command` whose variants are keel's subcommands.
//!
//! Every flag is optional here on purpose: an absent flag lets the environment, then the
//! config file, then the default decide (see `config/`, the one place that layers them).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    AllowIps, BalanceSetting, ChannelName, Cidr, ConnSetting, DatabaseUrl, DelaySetting, Flags,
    HealthPath, HumanDuration, List, LogFormat, LogLevel, OptPath, PathValue, RateSetting,
    RedisUrl, RejectStatus, Secret, Upstream, UpstreamUrl,
};

/// keel: one binary for the web stack of nginx + gunicorn + Django + Redis.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file [env: KEEL_CONFIG] [default: ./keel.toml when present]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log format: text (human, coloured on a terminal) or json [env: KEEL_LOG_FORMAT]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `keel_app=debug,info` [env: KEEL_LOG_LEVEL]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<LogLevel>,
    #[command(subcommand)]
    pub command: Command,
}

/// keel's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process on 127.0.0.1:8080, with a built-in mock upstream.
    Up(UpArgs),
    /// Run the application server (gunicorn's role).
    Serve(ServeArgs),
    /// Run the edge (nginx's role): limit_req, forwarded headers, reverse proxy to --upstream.
    Edge(EdgeArgs),
    /// Serve a fixed todo JSON after a fixed latency, as the upstream of /sync/test and /async/test.
    MockUpstream(MockArgs),
    /// Load-test a URL with hey's flags and hey's report (plus --rate, -o json).
    Bench(crate::load::BenchArgs),
    /// Run a matrix of load tests against several targets; print the classic table, write report, JSON and charts.
    Compare(crate::load::CompareArgs),
    /// Publish a message to a live-event channel, through Redis or a keel server's /api/publish.
    Publish(PublishArgs),
    /// Gather the app's assets and every --source into the static root, hashed and precompressed.
    Collectstatic(CollectArgs),
    /// Apply the site's database migrations that have not run yet (they also run at start).
    Migrate(MigrateArgs),
    /// Create a staff superuser for /admin/: asks on a terminal, or takes --username, --email and --password-stdin.
    Createsuperuser(SuperuserArgs),
    /// Print the effective configuration (file, environment, defaults) with secrets masked.
    #[command(after_long_help = crate::config::keys_help())]
    Config,
}

/// The site's settings, shared by `serve` and `up`.
#[derive(Debug, Args)]
pub struct SiteArgs {
    /// The site's database: sqlite://PATH or postgres://USER@HOST/DB [env: KEEL_DATABASE_URL] [default: sqlite://keel-data/keel.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<DatabaseUrl>,
    /// A directory of templates that replace the built-in ones of the same name [env: KEEL_TEMPLATES]
    #[arg(long, value_name = "DIR")]
    pub templates: Option<OptPath>,
    /// Do not add the sample posts to a new, empty database [env: KEEL_SAMPLE_DATA=false]
    #[arg(long)]
    pub no_sample_data: bool,
}

/// `keel migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The site's database [env: KEEL_DATABASE_URL] [default: sqlite://keel-data/keel.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<DatabaseUrl>,
}

/// `keel createsuperuser`.
#[derive(Debug, Args)]
pub struct SuperuserArgs {
    /// The site's database [env: KEEL_DATABASE_URL] [default: sqlite://keel-data/keel.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<DatabaseUrl>,
    /// Username (asked for when absent and on a terminal)
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Email address (asked for when absent and on a terminal)
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// Read the password from the first line of standard input, for scripts (never pass it as an argument)
    #[arg(long)]
    pub password_stdin: bool,
    /// Never prompt: fail when a value is missing (Django's --noinput)
    #[arg(long, alias = "noinput")]
    pub no_input: bool,
}

/// Tuning of the application server, shared by `serve` and `up`.
#[derive(Debug, Args)]
pub struct AppArgs {
    /// Async worker threads [env: KEEL_WORKERS] [default: number of CPUs]
    #[arg(long, value_name = "N")]
    pub workers: Option<NonZeroUsize>,
    /// Blocking threads per worker for synchronous handlers; workers × threads calls run at once [env: KEEL_THREADS] [default: 10]
    #[arg(long, value_name = "M")]
    pub threads: Option<NonZeroUsize>,
    /// Whole-request timeout; a request still running after it gets 503 [env: KEEL_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<HumanDuration>,
    /// URL that /sync/test and /async/test GET [env: KEEL_UPSTREAM_URL] [default: http://127.0.0.1:9000/todos/1]
    #[arg(long, value_name = "URL")]
    pub upstream_url: Option<UpstreamUrl>,
    /// Timeout of one upstream call; slower answers give 504 [env: KEEL_UPSTREAM_TIMEOUT] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub upstream_timeout: Option<HumanDuration>,
    /// How long SIGTERM waits for in-flight requests [env: KEEL_SHUTDOWN_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<HumanDuration>,
}

/// `keel serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [env: KEEL_BIND] [default: 127.0.0.1:8000]
    #[arg(long, short = 'b', value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Redis for live events, shared by every instance [env: KEEL_REDIS_URL] [default: none (in-memory broker)]
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<RedisUrl>,
    /// Peers whose X-Forwarded-For, X-Real-IP and X-Forwarded-Proto are believed: comma-separated networks, or `*` (dangerous: any client can then claim any address) [env: KEEL_FORWARDED_ALLOW_IPS] [default: 127.0.0.1,::1]
    #[arg(long, value_name = "LIST")]
    pub forwarded_allow_ips: Option<AllowIps>,
    /// How long an idle keep-alive connection waits for its next request [env: KEEL_KEEP_ALIVE] [default: 5s]
    #[arg(long, value_name = "DURATION")]
    pub keep_alive: Option<HumanDuration>,
    /// How long a client may take to send a whole request head [env: KEEL_HEADER_TIMEOUT] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub header_timeout: Option<HumanDuration>,
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub app: AppArgs,
}

/// `keel up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address to listen on [env: KEEL_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Latency of the built-in mock upstream [env: KEEL_MOCK_LATENCY] [default: 100ms]
    #[arg(long, value_name = "DURATION")]
    pub latency: Option<HumanDuration>,
    /// Redis for live events [env: KEEL_REDIS_URL] [default: none (in-memory broker)]
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<RedisUrl>,
    /// Turn off the edge's rate limit (for benchmarks) [env: KEEL_UP_RATE_LIMIT=false]
    #[arg(long)]
    pub no_rate_limit: bool,
    #[command(flatten)]
    pub limit: LimitArgs,
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub app: AppArgs,
}

/// limit_req settings, shared by `edge` and `up`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Requests per second (`10r/s`) or minute (`600r/m`) per client address, or `off` [env: KEEL_RATE] [default: 10r/s]
    #[arg(long, value_name = "RATE")]
    pub rate: Option<RateSetting>,
    /// Requests beyond the rate allowed in a burst (nginx's burst=) [env: KEEL_BURST] [default: 20]
    #[arg(long, value_name = "N")]
    pub burst: Option<u32>,
    /// Pass burst requests at once (nginx's nodelay; keel's default) [env: KEEL_DELAY=nodelay]
    #[arg(long, conflicts_with = "delay")]
    pub nodelay: bool,
    /// Pass the first N excess requests at once and delay the rest (nginx's delay=N; 0 delays all) [env: KEEL_DELAY]
    #[arg(long, value_name = "N")]
    pub delay: Option<u32>,
    /// Status of a rejected request [env: KEEL_LIMIT_STATUS] [default: 503]
    #[arg(long, value_name = "CODE")]
    pub limit_status: Option<RejectStatus>,
    /// Requests in progress at once per client address on every proxied path, streams included (nginx's limit_conn), or `off` [env: KEEL_LIMIT_CONN] [default: off]
    #[arg(long, value_name = "N")]
    pub limit_conn: Option<ConnSetting>,
    /// Network whose X-Forwarded-For / X-Real-IP are believed; repeatable [env: KEEL_TRUSTED_PROXIES]
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<Cidr>,
    /// Write the access log to DIR/access.log (reopened on SIGUSR1) instead of stdout [env: KEEL_LOG_DIR]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<OptPath>,
    /// Write no access log [env: KEEL_ACCESS_LOG=false]
    #[arg(long)]
    pub no_access_log: bool,
}

/// `keel publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Publish through this Redis [env: KEEL_REDIS_URL] [default: stream.redis_url]
    #[arg(long, value_name = "URL", conflicts_with = "api")]
    pub redis_url: Option<RedisUrl>,
    /// Publish through this keel server's POST /api/publish instead, e.g. http://127.0.0.1:8080
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// The server's publish token, for --api [env: KEEL_PUBLISH_TOKEN] [default: stream.publish_token]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<Secret>,
    /// Channel, e.g. demo_stream
    pub channel: ChannelName,
    /// The message; several lines become several `data:` lines
    pub message: String,
}

/// `keel collectstatic`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Directory that receives the collected files [env: KEEL_STATIC_ROOT] [default: keel-data/static]
    #[arg(long, value_name = "DIR")]
    pub static_root: Option<PathValue>,
    /// A directory of static files; repeatable; earlier sources win over later ones and over the app's own assets [env: KEEL_STATIC_SOURCES]
    #[arg(long = "source", value_name = "DIR")]
    pub sources: Vec<PathValue>,
}

/// `keel edge`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// Address to listen on [env: KEEL_EDGE_LISTEN] [default: 0.0.0.0:80]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// An app server to proxy to, HOST:PORT; repeat for round-robin [env: KEEL_EDGE_UPSTREAM, comma-separated]
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Vec<Upstream>,
    /// Also listen for HTTPS here, with --tls-cert and --tls-key [env: KEEL_TLS_LISTEN] [default: 0.0.0.0:443]
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS (reloaded on SIGHUP) [env: KEEL_TLS_CERT]
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<OptPath>,
    /// PEM private key for HTTPS (reloaded on SIGHUP) [env: KEEL_TLS_KEY]
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<OptPath>,
    /// With TLS, answer plain HTTP with a redirect to HTTPS [env: KEEL_REDIRECT_HTTP]
    #[arg(long)]
    pub redirect_http: bool,
    /// Worker threads, each with its own event loop and listening socket, like nginx's worker_processes [env: KEEL_EDGE_WORKERS] [default: number of CPUs]
    #[arg(long, value_name = "N")]
    pub workers: Option<NonZeroUsize>,
    /// How to pick an upstream: round-robin or least-conn [env: KEEL_BALANCE] [default: round-robin]
    #[arg(long, value_name = "HOW")]
    pub balance: Option<BalanceSetting>,
    /// Path checked on each upstream every 2 s to bring an ejected one back, or `off` [env: KEEL_HEALTH_CHECK] [default: /healthz]
    #[arg(long, value_name = "PATH")]
    pub health_check: Option<HealthPath>,
    /// Serve the collected static root at /static/ (reloaded on SIGHUP) [env: KEEL_STATIC_ROOT] [default: keel-data/static when it exists]
    #[arg(long, value_name = "DIR")]
    pub static_root: Option<PathValue>,
    #[command(flatten)]
    pub limit: LimitArgs,
}

/// `keel mock-upstream`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on [env: KEEL_MOCK_LISTEN] [default: 127.0.0.1:9000]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Delay before each answer, e.g. 100ms or 0 [env: KEEL_MOCK_LATENCY] [default: 100ms]
    #[arg(long, value_name = "DURATION")]
    pub latency: Option<HumanDuration>,
}

impl LimitArgs {
    fn apply(&self, flags: &mut Flags) {
        flags.rate = self.rate.clone();
        flags.burst = self.burst;
        flags.delay = match (self.nodelay, self.delay) {
            (true, _) => Some(DelaySetting(None)),
            (false, Some(n)) => Some(DelaySetting(Some(n))),
            (false, None) => None,
        };
        flags.limit_status = self.limit_status;
        flags.limit_conn = self.limit_conn;
        flags.trusted_proxies =
            (!self.trusted_proxies.is_empty()).then(|| List(self.trusted_proxies.clone()));
        flags.log_dir = self.log_dir.clone();
        flags.access_log = self.no_access_log.then_some(false);
    }
}

impl SiteArgs {
    fn apply(&self, flags: &mut Flags) {
        flags.database_url = self.database_url.clone();
        flags.templates = self.templates.clone();
        flags.sample_data = self.no_sample_data.then_some(false);
    }
}

impl Cli {
    /// The flags given, in the shape the config layering wants.
    pub fn flags(&self) -> Flags {
        let mut flags = Flags {
            config: self.config.clone(),
            log_format: self.log_format,
            log_level: self.log_level.clone(),
            ..Flags::default()
        };
        let app = match &self.command {
            Command::Serve(args) => {
                flags.bind = args.bind;
                flags.redis_url = args.redis_url.clone();
                flags.forwarded_allow_ips = args.forwarded_allow_ips.clone();
                flags.keep_alive = args.keep_alive;
                flags.header_timeout = args.header_timeout;
                args.site.apply(&mut flags);
                Some(&args.app)
            }
            Command::Up(args) => {
                flags.up_listen = args.listen;
                flags.redis_url = args.redis_url.clone();
                flags.mock_latency = args.latency;
                flags.up_rate_limit = args.no_rate_limit.then_some(false);
                args.limit.apply(&mut flags);
                args.site.apply(&mut flags);
                Some(&args.app)
            }
            Command::Edge(args) => {
                flags.edge_listen = args.listen;
                flags.upstream = (!args.upstream.is_empty()).then(|| List(args.upstream.clone()));
                flags.static_root = args.static_root.clone();
                flags.tls_listen = args.tls_listen;
                flags.tls_cert = args.tls_cert.clone();
                flags.tls_key = args.tls_key.clone();
                flags.redirect_http = args.redirect_http.then_some(true);
                flags.balance = args.balance;
                flags.edge_workers = args.workers;
                flags.health_check = args.health_check.clone();
                args.limit.apply(&mut flags);
                None
            }
            Command::MockUpstream(args) => {
                flags.mock_listen = args.listen;
                flags.mock_latency = args.latency;
                None
            }
            Command::Collectstatic(args) => {
                flags.static_root = args.static_root.clone();
                flags.static_sources =
                    (!args.sources.is_empty()).then(|| List(args.sources.clone()));
                None
            }
            Command::Publish(args) => {
                flags.redis_url = args.redis_url.clone();
                flags.publish_token = args.token.clone();
                None
            }
            Command::Migrate(args) => {
                flags.database_url = args.database_url.clone();
                None
            }
            Command::Createsuperuser(args) => {
                flags.database_url = args.database_url.clone();
                None
            }
            Command::Bench(_) | Command::Compare(_) | Command::Config => None,
        };
        if let Some(app) = app {
            flags.workers = app.workers;
            flags.threads = app.threads;
            flags.timeout = app.timeout;
            flags.upstream_url = app.upstream_url.clone();
            flags.upstream_timeout = app.upstream_timeout;
            flags.shutdown_timeout = app.shutdown_timeout;
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn gunicorn_style_flags_parse() {
        let cli = Cli::try_parse_from([
            "keel",
            "serve",
            "--workers",
            "4",
            "--threads",
            "10",
            "--bind",
            "127.0.0.1:0",
            "--timeout",
            "30s",
            "--upstream-url",
            "http://127.0.0.1:9/todos/1",
            "--upstream-timeout",
            "250ms",
        ])
        .unwrap();
        let flags = cli.flags();
        assert_eq!(flags.workers.map(NonZeroUsize::get), Some(4));
        assert_eq!(flags.threads.map(NonZeroUsize::get), Some(10));
        assert_eq!(
            flags.upstream_timeout.map(|d| d.0),
            Some(std::time::Duration::from_millis(250))
        );
    }

    #[test]
    fn bad_flag_values_are_refused_by_name() {
        let err = Cli::try_parse_from(["keel", "serve", "--bind", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--bind"), "{err}");
        let err = Cli::try_parse_from(["keel", "serve", "--workers", "0"]).unwrap_err();
        assert!(err.to_string().contains("--workers"), "{err}");
    }
}
