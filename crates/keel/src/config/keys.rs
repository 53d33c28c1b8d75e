//! Every key of `keel.toml`, declared once.
//!
//! One entry per key: its section and name, Rust type, default, environment variable, flag
//! (only when the CLI has one), the default as the docs print it, a sample value the tests
//! set it to, and one line of help. [`declare_keys!`] turns the list into the file schema
//! (`FileConfig` and one `*File` struct per section), the `*Settings` structs and
//! [`Settings`], the layering of each key ([`Layer::pick`]), `keel config`'s lines
//! (`Settings::render_keys`) and [`KEYS`], the table the docs and the tests read.
//!
//! A key's flags are part of its entry ([`Flag`]): `cli.rs` adds them to the subcommands
//! they name, with help made from the entry (`[env: …] [default: …]`), and reads them back
//! into [`Flags`]. Adding a key, with or without a flag, is one entry here plus the code
//! that uses the value. The tables of the edge (`[edge.zones.NAME]`,
//! `[[edge.limits]]`, …) are file-only structures, written by hand in `file.rs` and
//! `settings.rs`, and named here under `tables`.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::*;

/// The subcommands a flag belongs to; [`GLOBAL`] puts it on every one.
pub type Commands = &'static [&'static str];

/// A flag that every subcommand accepts (`--log-level`).
pub const GLOBAL: Commands = &[""];
const SERVE: Commands = &["serve"];
const APP: Commands = &["serve", "up"];
const SITE: Commands = &[
    "serve",
    "up",
    "migrate",
    "createsuperuser",
    "quiz import",
    "quiz export",
    "quiz list",
];
const LIMITS: Commands = &["edge", "up"];
const EDGE: Commands = &["edge"];

/// How a flag sets its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--bind ADDR`: one value, read as the variable's text is.
    Value { value_name: &'static str },
    /// `--upstream HOST:PORT`, repeatable: each occurrence is one item of the list.
    Repeat { value_name: &'static str },
    /// `--no-sample-data`: no value; sets the key as the variable's text `sets` would.
    Switch {
        sets: &'static str,
        help: &'static str,
    },
}

/// One flag of a key: its name, how it takes its value and which subcommands have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// With its dashes, as the origin prints it: `--bind`.
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: FlagKind,
    pub commands: Commands,
}

impl Flag {
    /// A flag that takes one value.
    pub const fn value(long: &'static str, value_name: &'static str, commands: Commands) -> Flag {
        Flag {
            long,
            short: None,
            kind: FlagKind::Value { value_name },
            commands,
        }
    }

    /// A repeatable flag of a list key.
    pub const fn repeat(long: &'static str, value_name: &'static str, commands: Commands) -> Flag {
        Flag {
            long,
            short: None,
            kind: FlagKind::Repeat { value_name },
            commands,
        }
    }

    /// A flag with no value that sets its key to `sets`; `help` says what it does.
    pub const fn switch(
        long: &'static str,
        sets: &'static str,
        help: &'static str,
        commands: Commands,
    ) -> Flag {
        Flag {
            long,
            short: None,
            kind: FlagKind::Switch { sets, help },
            commands,
        }
    }

    /// The same flag with a one-letter form (`-b`).
    pub const fn short(self, short: char) -> Flag {
        Flag {
            short: Some(short),
            ..self
        }
    }

    /// The name clap knows it by: `bind`.
    pub fn id(&self) -> &'static str {
        self.long.trim_start_matches('-')
    }
}

/// One declared key, as the docs, the command line and the tests see it.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// Dotted name in `keel.toml`, e.g. `serve.bind`.
    pub name: &'static str,
    /// The environment variable, e.g. `KEEL_BIND`.
    pub env: &'static str,
    /// Its flags, e.g. `--bind`; most keys have none.
    pub flags: &'static [Flag],
    /// The default, as the docs print it.
    pub default: &'static str,
    /// A valid value, written as in the environment; the tests set every key to it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub sample: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// The smallest and largest values it takes, in its own syntax, when bounded.
    pub range: Option<(&'static str, &'static str)>,
    /// Whether a SIGHUP reload applies a change of it (the edge's routing); any other
    /// key keeps its value until a restart.
    pub reloads: bool,
    /// Checks one flag value (one item, for a repeatable flag) as the layering will read
    /// it, so that clap refuses a bad value naming the flag before anything starts.
    pub check: fn(&str) -> Result<(), String>,
}

impl KeyDoc {
    /// The flag's `--help` line, made from the declaration.
    pub fn flag_help(&self, flag: &Flag) -> String {
        match flag.kind {
            FlagKind::Value { .. } => format!(
                "{} [env: {}] [default: {}]",
                self.help, self.env, self.default
            ),
            FlagKind::Repeat { .. } => format!(
                "{}; repeatable [env: {}, comma-separated] [default: {}]",
                self.help, self.env, self.default
            ),
            FlagKind::Switch { sets, help } => format!("{help} [env: {}={sets}]", self.env),
        }
    }
}

/// `keel config --help`'s list of every key: what keel reads, from where.
pub fn keys_help() -> String {
    let mut out = String::from(
        "Keys (keel.toml, environment, flag, default):\n  \
         (file)  KEEL_CONFIG  --config  [default: ./keel.toml when present]\n",
    );
    for key in KEYS {
        out.push_str(&format!(
            "  {}  {}  {}  [default: {}]{}\n      {}\n",
            key.name,
            key.env,
            flag_names(key),
            key.default,
            key.range
                .map(|(low, high)| format!(" [range: {low} to {high}]"))
                .unwrap_or_default(),
            key.help
        ));
    }
    out.push_str(
        "  (environment only)  KEEL_SUPERUSER_PASSWORD  for keel createsuperuser in scripts\n",
    );
    out
}

/// A key's flags as the help and the docs list them: `--delay, --nodelay`.
pub fn flag_names(key: &KeyDoc) -> String {
    if key.flags.is_empty() {
        return "(no flag)".to_owned();
    }
    let names: Vec<&str> = key.flags.iter().map(|f| f.long).collect();
    names.join(", ")
}

macro_rules! declare_keys {
    (@flags) => { &[] };
    (@flags $flags:expr) => { $flags };
    (@range) => { None };
    (@range $lo:literal $hi:literal) => { Some(($lo, $hi)) };
    (@within $setting:expr, $name:expr) => {};
    (@within $setting:expr, $name:expr, $lo:literal $hi:literal) => {
        within($name, &$setting, $lo, $hi)?;
    };
    (@reloads) => { false };
    (@reloads reloads) => { true };
    (
        $(
            $(#[doc = $sdoc:literal])*
            [$sname:literal] $section:ident: $SFile:ident => $SSettings:ident {
                $(
                    $key:ident: $ty:ty = $default:expr,
                    env $env:literal,
                    $( flags $flags:expr, )?
                    $( within $lo:literal, $hi:literal, )?
                    default $dtext:literal,
                    sample $sample:literal,
                    help $help:literal
                    $( , $reloads:ident )?;
                )*
                $( @tables {
                    $(
                        $(#[doc = $tdoc:literal])*
                        $tfield:ident: $tfty:ty => $tsty:ty = $tbuild:path;
                    )*
                } )?
            }
        )*
    ) => {
        /// `keel.toml`: one table per section.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct FileConfig {
            $(
                #[serde(default, rename = $sname)]
                pub(crate) $section: $SFile,
            )*
        }

        $(
            #[doc = concat!("`[", $sname, "]` in `keel.toml`.")]
            #[derive(Debug, Default, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub(crate) struct $SFile {
                $( pub(crate) $key: Option<Spanned<$ty>>, )*
                $($(
                    #[serde(default)]
                    pub(crate) $tfield: $tfty,
                )*)?
            }

            $(#[doc = $sdoc])*
            #[derive(Debug, Clone)]
            pub struct $SSettings {
                $(
                    #[doc = $help]
                    pub $key: Setting<$ty>,
                )*
                $($(
                    $(#[doc = $tdoc])*
                    pub $tfield: $tsty,
                )*)?
            }
        )*

        /// The whole effective configuration.
        #[derive(Debug, Clone)]
        pub struct Settings {
            /// The file that was read, if any.
            pub file: Option<PathBuf>,
            $( pub $section: $SSettings, )*
            /// The flags it was loaded with, so that [`Settings::reload`] layers the same
            /// flags over the file and environment as they are now.
            pub(crate) flags: Flags,
            /// `KEEL_SUPERUSER_PASSWORD` (Django's `DJANGO_SUPERUSER_PASSWORD`) for `keel
            /// createsuperuser` in scripts. Environment only: a password has no place in a
            /// file or on a command line.
            pub superuser_password: Secret,
        }

        impl Settings {
            /// Every key layered flag > environment > file > default (not yet validated).
            pub(crate) fn layer(
                flags: Flags,
                env: &dyn Env,
                path: Option<PathBuf>,
                src: Option<&Source>,
                mut file: FileConfig,
            ) -> Result<Settings, ConfigError> {
                let l = Layer { env };
                Ok(Settings {
                    file: path,
                    superuser_password: Secret(
                        env.var("KEEL_SUPERUSER_PASSWORD").filter(|p| !p.is_empty()),
                    ),
                    $(
                        $section: $SSettings {
                            $(
                                $key: l.pick(
                                    concat!($sname, ".", stringify!($key)),
                                    flags.given(concat!($sname, ".", stringify!($key))),
                                    $env,
                                    from_file(src, file.$section.$key.take()),
                                    $default,
                                )?,
                            )*
                            $($(
                                $tfield: $tbuild(src, std::mem::take(&mut file.$section.$tfield))?,
                            )*)?
                        },
                    )*
                    flags,
                })
            }

            /// Every key with a declared range (`within`) inside it.
            pub(crate) fn check_ranges(&self) -> Result<(), ConfigError> {
                $($(
                    declare_keys!(
                        @within
                        self.$section.$key,
                        concat!($sname, ".", stringify!($key))
                        $(, $lo $hi)?
                    );
                )*)*
                Ok(())
            }

            /// `keel config`'s sections and lines, in declaration order; `tables` writes
            /// what follows a section's keys (the edge's zones and limits).
            pub(crate) fn render_keys(
                &self,
                out: &mut String,
                tables: impl Fn(&Settings, &str, &mut String),
            ) {
                $(
                    section(out, $sname);
                    $(
                        line(
                            out,
                            stringify!($key),
                            self.$section.$key.value.render(),
                            &self.$section.$key.origin,
                        );
                    )*
                    tables(self, $sname, out);
                )*
            }
        }

        /// Every declared key, in `keel config`'s order.
        pub const KEYS: &[KeyDoc] = &[
            $($(
                KeyDoc {
                    name: concat!($sname, ".", stringify!($key)),
                    env: $env,
                    flags: declare_keys!(@flags $($flags)?),
                    default: $dtext,
                    sample: $sample,
                    help: $help,
                    range: declare_keys!(@range $($lo $hi)?),
                    reloads: declare_keys!(@reloads $($reloads)?),
                    check: |text| <$ty as FromFlag>::from_flag(&[text.to_owned()]).map(drop),
                },
            )*)*
        ];

        /// A key's sample value parsed as the key's type, then written as `keel.toml`
        /// takes it and as `keel config` shows it (a secret masked).
        #[cfg(test)]
        pub(crate) fn sample_as_toml(name: &str) -> Result<(String, String), String> {
            $($(
                if name == concat!($sname, ".", stringify!($key)) {
                    return $sample
                        .parse::<$ty>()
                        .map(|value| (value.to_toml(), value.render()))
                        .map_err(|e| e.to_string());
                }
            )*)*
            Err(format!("no key {name}"))
        }
    };
}

declare_keys! {
    /// Settings of the application server (`keel serve`, and the app inside `keel up`).
    ["serve"] serve: ServeFile => ServeSettings {
        bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8000)),
            env "KEEL_BIND", flags &[Flag::value("--bind", "ADDR", SERVE).short('b')],
            default "127.0.0.1:8000", sample "127.0.0.1:8001",
            help "Address to listen on";
        workers: NonZeroUsize = cpus(),
            env "KEEL_WORKERS", flags &[Flag::value("--workers", "N", APP)],
            within "1", "1024",
            default "number of CPUs", sample "3",
            help "Async worker threads";
        threads: NonZeroUsize = NonZeroUsize::new(10).unwrap_or(NonZeroUsize::MIN),
            env "KEEL_THREADS", flags &[Flag::value("--threads", "M", APP)],
            within "1", "10000",
            default "10", sample "7",
            help "Blocking threads per worker for synchronous handlers; workers × threads calls run at once";
        timeout: HumanDuration = HumanDuration(Duration::from_secs(30)),
            env "KEEL_TIMEOUT", flags &[Flag::value("--timeout", "DURATION", APP)],
            within "1ms", "24h",
            default "30s", sample "5s",
            help "Whole-request timeout; a request still running after it gets 503";
        upstream_url: UpstreamUrl = default_upstream(),
            env "KEEL_UPSTREAM_URL", flags &[Flag::value("--upstream-url", "URL", APP)],
            default "http://127.0.0.1:9000/todos/1", sample "http://127.0.0.1:9001/todos/2",
            help "URL that /sync/test and /async/test GET";
        upstream_timeout: HumanDuration = HumanDuration(Duration::from_secs(10)),
            env "KEEL_UPSTREAM_TIMEOUT", flags &[Flag::value("--upstream-timeout", "DURATION", APP)],
            within "1ms", "1h",
            default "10s", sample "250ms",
            help "Timeout of one upstream call; slower answers give 504";
        backlog: u32 = 2048,
            env "KEEL_BACKLOG", flags &[Flag::value("--backlog", "N", APP)],
            within "1", "65535",
            default "2048", sample "64",
            help "Connections the kernel queues for accept before refusing more (gunicorn's --backlog)";
        shutdown_timeout: HumanDuration = HumanDuration(Duration::from_secs(30)),
            env "KEEL_SHUTDOWN_TIMEOUT", flags &[Flag::value("--shutdown-timeout", "DURATION", APP)],
            within "0s", "1h",
            default "30s", sample "3s",
            help "How long SIGTERM waits for in-flight requests";
        forwarded_allow_ips: AllowIps = AllowIps::loopback(),
            env "KEEL_FORWARDED_ALLOW_IPS", flags &[Flag::value("--forwarded-allow-ips", "LIST", SERVE)],
            default "127.0.0.1,::1", sample "10.0.0.0/8,::1",
            help "Peers whose X-Forwarded-For, X-Real-IP and X-Forwarded-Proto are believed: networks, or `*` (then any client can claim any address)";
        keep_alive: HumanDuration = HumanDuration(Duration::from_secs(5)),
            env "KEEL_KEEP_ALIVE", flags &[Flag::value("--keep-alive", "DURATION", SERVE)],
            within "0s", "1h",
            default "5s", sample "0s",
            help "How long an idle keep-alive connection waits for its next request";
        header_timeout: HumanDuration = HumanDuration(Duration::from_secs(10)),
            env "KEEL_HEADER_TIMEOUT", flags &[Flag::value("--header-timeout", "DURATION", SERVE)],
            within "1ms", "1h",
            default "10s", sample "4s",
            help "How long a client may take to send a whole request head";
    }

    /// Settings of `keel up`.
    ["up"] up: UpFile => UpSettings {
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
            env "KEEL_LISTEN", flags &[Flag::value("--listen", "ADDR", &["up"])],
            default "127.0.0.1:8080", sample "127.0.0.1:8081",
            help "Address `keel up` listens on";
        rate_limit: bool = true,
            env "KEEL_UP_RATE_LIMIT", flags &[Flag::switch("--no-rate-limit", "false", "Turn off the edge's rate limit (for benchmarks)", &["up"])],
            default "true", sample "false",
            help "Whether `keel up`'s edge applies its rate limit";
        publish_file: PathValue = PathValue(PathBuf::from("keel-data/publish.json")),
            env "KEEL_UP_PUBLISH_FILE",
            default "keel-data/publish.json", sample "run/publish.json",
            help "Where `keel up` writes its address and a publish token (owner-only) so that `keel publish` needs no flags";
    }

    /// Settings of `keel edge` (and of the edge layers inside `keel up`).
    ["edge"] edge: EdgeFile => EdgeSettings {
        listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 80)),
            env "KEEL_EDGE_LISTEN", flags &[Flag::value("--listen", "ADDR", EDGE)],
            default "0.0.0.0:80", sample "127.0.0.1:8082",
            help "Address the edge listens on";
        upstream: List<Upstream> = List(Vec::new()),
            env "KEEL_EDGE_UPSTREAM", flags &[Flag::repeat("--upstream", "HOST:PORT", EDGE)],
            default "none", sample "127.0.0.1:8000,127.0.0.1:8001",
            help "App servers to proxy to, HOST:PORT, balanced by edge.balance", reloads;
        rate: RateSetting = RateSetting::default_rate(),
            env "KEEL_RATE", flags &[Flag::value("--rate", "RATE", LIMITS)],
            default "10r/s", sample "5r/s",
            help "Requests per second or minute per client address, or `off`", reloads;
        burst: u32 = 20,
            env "KEEL_BURST", flags &[Flag::value("--burst", "N", LIMITS)],
            within "0", "1000000",
            default "20", sample "7",
            help "Requests beyond the rate allowed in a burst", reloads;
        delay: DelaySetting = DelaySetting(None),
            env "KEEL_DELAY", flags &[
                Flag::value("--delay", "N", LIMITS),
                Flag::switch("--nodelay", "nodelay", "Pass burst requests at once (nginx's nodelay; the default)", LIMITS),
            ],
            default "nodelay", sample "3",
            help "Excess requests passed at once before the rest are delayed, or `nodelay`", reloads;
        limit_status: RejectStatus = RejectStatus(503),
            env "KEEL_LIMIT_STATUS", flags &[Flag::value("--limit-status", "CODE", LIMITS)],
            default "503", sample "429",
            help "Status of a request refused by limit_req", reloads;
        zone_size: ZoneSetting = default_zone_size()?,
            env "KEEL_ZONE_SIZE",
            default "10m", sample "1m",
            help "Size of edge.rate's zone", reloads;
        dry_run: bool = false,
            env "KEEL_DRY_RUN",
            default "false", sample "true",
            help "Log what limit_req would refuse, refuse nothing", reloads;
        limit_conn: ConnSetting = ConnSetting(None),
            env "KEEL_LIMIT_CONN", flags &[Flag::value("--limit-conn", "N", LIMITS)],
            default "off", sample "5",
            help "Requests in progress at once per client address, or `off`", reloads;
        limit_conn_status: RejectStatus = RejectStatus(503),
            env "KEEL_LIMIT_CONN_STATUS",
            default "503", sample "429",
            help "Status of a request refused by limit_conn", reloads;
        limit_conn_dry_run: bool = false,
            env "KEEL_LIMIT_CONN_DRY_RUN",
            default "false", sample "true",
            help "Log what limit_conn would refuse, refuse nothing", reloads;
        trusted_proxies: List<Cidr> = List(Vec::new()),
            env "KEEL_TRUSTED_PROXIES", flags &[Flag::repeat("--trusted-proxy", "CIDR", LIMITS)],
            default "none", sample "10.0.0.0/8,192.168.0.0/16",
            help "Networks whose X-Forwarded-For / X-Real-IP are believed", reloads;
        response_timeout: HumanDuration = HumanDuration(Duration::from_secs(60)),
            env "KEEL_RESPONSE_TIMEOUT",
            within "1ms", "24h",
            default "60s", sample "20s",
            help "How long the edge waits for an upstream's response head", reloads;
        body_idle_timeout: HumanDuration = HumanDuration(Duration::ZERO),
            env "KEEL_BODY_IDLE_TIMEOUT",
            within "0s", "24h",
            default "0s (none)", sample "30s",
            help "How long a response body may stay idle", reloads;
        access_log: bool = true,
            env "KEEL_ACCESS_LOG", flags &[Flag::switch("--no-access-log", "false", "Write no access log", LIMITS)],
            default "true", sample "false",
            help "Whether the edge writes an access log";
        client_max_body_size: ByteSize = ByteSize(1024 * 1024),
            env "KEEL_CLIENT_MAX_BODY_SIZE",
            within "0", "1g",
            default "1m", sample "2m",
            help "Largest request body the edge accepts";
        large_client_header_buffers: HeaderBuffers = HeaderBuffers::default_buffers(),
            env "KEEL_LARGE_CLIENT_HEADER_BUFFERS",
            default "4 8k", sample "4 16k",
            help "Number and size of the buffers for a request head";
        max_connections: usize = 10_000,
            env "KEEL_MAX_CONNECTIONS",
            within "1", "1000000",
            default "10000", sample "500",
            help "Connections the edge holds at once";
        header_timeout: HumanDuration = HumanDuration(Duration::from_secs(10)),
            env "KEEL_HEADER_TIMEOUT",
            within "1ms", "1h",
            default "10s", sample "4s",
            help "How long a client may take to send a whole request head";
        tls_listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 443)),
            env "KEEL_TLS_LISTEN", flags &[Flag::value("--tls-listen", "ADDR", EDGE)],
            default "0.0.0.0:443", sample "127.0.0.1:8443",
            help "Address for HTTPS";
        tls_cert: OptPath = OptPath(None),
            env "KEEL_TLS_CERT", flags &[Flag::value("--tls-cert", "PEM", EDGE)],
            default "none", sample "",
            help "PEM certificate chain for HTTPS (the file is read again on SIGHUP)";
        tls_key: OptPath = OptPath(None),
            env "KEEL_TLS_KEY", flags &[Flag::value("--tls-key", "PEM", EDGE)],
            default "none", sample "",
            help "PEM private key for HTTPS (the file is read again on SIGHUP)";
        redirect_http: bool = false,
            env "KEEL_REDIRECT_HTTP", flags &[Flag::switch("--redirect-http", "true", "With TLS, answer plain HTTP with a redirect to HTTPS", EDGE)],
            default "false", sample "true",
            help "With TLS, answer plain HTTP with a redirect to HTTPS";
        workers: NonZeroUsize = cpus(),
            env "KEEL_EDGE_WORKERS", flags &[Flag::value("--workers", "N", EDGE)],
            within "1", "1024",
            default "number of CPUs", sample "3",
            help "Edge worker threads, each with its own event loop";
        balance: BalanceSetting = BalanceSetting(keel_edge::Strategy::RoundRobin),
            env "KEEL_BALANCE", flags &[Flag::value("--balance", "HOW", EDGE)],
            default "round-robin", sample "least-conn",
            help "How to pick an upstream: round-robin or least-conn", reloads;
        max_fails: u32 = 1,
            env "KEEL_MAX_FAILS",
            within "1", "1000",
            default "1", sample "3",
            help "Failures within fail_timeout that eject an upstream", reloads;
        fail_timeout: HumanDuration = HumanDuration(Duration::from_secs(10)),
            env "KEEL_FAIL_TIMEOUT",
            within "100ms", "24h",
            default "10s", sample "30s",
            help "Window of max_fails, and how long an ejected upstream stays out", reloads;
        health_check: HealthPath = HealthPath(Some("/healthz".to_owned())),
            env "KEEL_HEALTH_CHECK", flags &[Flag::value("--health-check", "PATH", EDGE)],
            default "/healthz", sample "/ping",
            help "Path checked on an ejected upstream to bring it back, or `off`", reloads;
        health_interval: HumanDuration = HumanDuration(Duration::from_secs(2)),
            env "KEEL_HEALTH_INTERVAL",
            within "100ms", "1h",
            default "2s", sample "5s",
            help "How often the health check runs", reloads;
        log_dir: OptPath = OptPath(None),
            env "KEEL_LOG_DIR", flags &[Flag::value("--log-dir", "DIR", LIMITS)],
            default "none (stdout)", sample "keel-logs",
            help "Directory of access.log, instead of stdout";
        @tables {
            /// Named conn zones from `[edge.conn_zones.NAME]` (file only).
            conn_zones: BTreeMap<String, ConnZoneFile> => Vec<ConnZoneDef> = conn_zone_defs;
            /// Per-path limit_conn from `[[edge.conn_limits]]` (file only).
            conn_limits: Vec<Spanned<ConnLimitFile>> => Vec<ConnLimitDef> = conn_limit_defs;
            /// Named zones from `[edge.zones.NAME]` (file only).
            zones: BTreeMap<String, ZoneFile> => Vec<ZoneDef> = zone_defs;
            /// Per-path limits from `[[edge.limits]]` (file only).
            limits: Vec<Spanned<LimitFile>> => Vec<LimitDef> = limit_defs;
        }
    }

    /// Settings of the static pipeline (`keel collectstatic`, the edge's `/static/`).
    ["static"] statics: StaticFile => StaticSettings {
        root: PathValue = PathValue(PathBuf::from("keel-data/static")),
            env "KEEL_STATIC_ROOT", flags &[Flag::value("--static-root", "DIR", &["collectstatic", "edge"])],
            default "keel-data/static", sample "public/static",
            help "Directory of the collected static files, served by the edge at /static/ (its index is read again on SIGHUP)";
        sources: List<PathValue> = List(Vec::new()),
            env "KEEL_STATIC_SOURCES", flags &[Flag::repeat("--source", "DIR", &["collectstatic"])],
            default "none", sample "assets,more-assets",
            help "Directories of static files to collect";
    }

    /// Live events: the broker and the `/stream/` service.
    ["stream"] stream: StreamFile => StreamSettings {
        redis_url: RedisUrl = RedisUrl(None),
            env "KEEL_REDIS_URL", flags &[Flag::value("--redis-url", "URL", &["serve", "up", "publish"])],
            default "none (in-memory broker)", sample "redis://127.0.0.1:6379",
            help "Redis for live events, shared by every instance";
        channels: List<ChannelName> = List(vec![
            ChannelName("demo_stream".to_owned()),
            ChannelName("site".to_owned()),
        ]),
            env "KEEL_STREAM_CHANNELS",
            default "demo_stream, site", sample "demo_stream,site,news",
            help "The channels clients may follow";
        default_channel: ChannelName = ChannelName("demo_stream".to_owned()),
            env "KEEL_STREAM_DEFAULT_CHANNEL",
            default "demo_stream", sample "site",
            help "The channel of /stream/ without a name";
        heartbeat: HumanDuration = HumanDuration(Duration::from_secs(15)),
            env "KEEL_STREAM_HEARTBEAT",
            within "1s", "300s",
            default "15s", sample "20s",
            help "Interval of the comment line that keeps an idle stream open";
        retention: usize = 1000,
            env "KEEL_STREAM_RETENTION",
            within "0", "100000",
            default "1000", sample "50",
            help "Messages kept per channel for Last-Event-ID";
        publish_token: Secret = Secret(None),
            env "KEEL_PUBLISH_TOKEN", flags &[Flag::value("--token", "TOKEN", &["publish"])],
            default "none", sample "0123456789abcdef0123456789abcdef",
            help "Bearer token of POST /api/publish, which `keel publish --api` sends (masked in keel config)";
        max_clients: usize = 20_000,
            env "KEEL_STREAM_MAX_CLIENTS",
            within "1", "1000000",
            default "20000", sample "100",
            help "Streams open at once";
        // Off: per-address caps belong at the edge (limit_conn), where the real client is
        // known; here a NAT or a proxy is one address.
        max_clients_per_ip: usize = 0,
            env "KEEL_STREAM_MAX_CLIENTS_PER_IP",
            within "0", "1000000",
            default "0 (off)", sample "10",
            help "Streams open at once per client address, 0 for no cap";
    }

    /// The site: its database, templates and sample posts.
    ["site"] site: SiteFile => SiteSettings {
        database_url: DatabaseUrl = DatabaseUrl(keel_site::DEFAULT_DATABASE_URL.to_owned()),
            env "KEEL_DATABASE_URL", flags &[Flag::value("--database-url", "URL", SITE)],
            default "sqlite://keel-data/keel.db", sample "sqlite://other/keel.db",
            help "The site's database: sqlite://PATH or postgres://USER@HOST/DB";
        templates: OptPath = OptPath(None),
            env "KEEL_TEMPLATES", flags &[Flag::value("--templates", "DIR", &["serve", "up"])],
            default "none (built-in templates)", sample ".",
            help "A directory of templates that replace the built-in ones";
        sample_data: bool = true,
            env "KEEL_SAMPLE_DATA", flags &[Flag::switch("--no-sample-data", "false", "Do not add the sample posts to a new, empty database", &["serve", "up"])],
            default "true", sample "false",
            help "Add the sample posts to a new, empty database";
        page_cache: HumanDuration = HumanDuration(Duration::from_secs(1)),
            env "KEEL_PAGE_CACHE",
            within "0s", "1h",
            default "1s (0s turns it off)", sample "0s",
            help "How long a rendered page is served from the cache";
        name: OneLine = OneLine("keel".to_owned()),
            env "KEEL_SITE_NAME",
            default "keel", sample "Field Notes",
            help "The site's name, in the navigation bar and every title";
        tagline: OneLine = OneLine("A tech-learning blog served by one Rust binary".to_owned()),
            env "KEEL_SITE_TAGLINE",
            default "A tech-learning blog served by one Rust binary", sample "Deploying apps, one post at a time",
            help "One line under the name: the footer and the pages' meta description";
        database_timeout: HumanDuration = HumanDuration(Duration::from_secs(2)),
            env "KEEL_DATABASE_TIMEOUT",
            within "1ms", "5m",
            default "2s", sample "500ms",
            help "How long a request waits for a database connection before it gets 503";
    }

    /// Settings of `keel mock-upstream` (and of the mock inside `keel up`).
    ["mock_upstream"] mock: MockFile => MockSettings {
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9000)),
            env "KEEL_MOCK_LISTEN", flags &[Flag::value("--listen", "ADDR", &["mock-upstream"])],
            default "127.0.0.1:9000", sample "127.0.0.1:9001",
            help "Address of the mock upstream";
        latency: HumanDuration = HumanDuration(Duration::from_millis(100)),
            env "KEEL_MOCK_LATENCY", flags &[Flag::value("--latency", "DURATION", &["up", "mock-upstream"])],
            within "0s", "1h",
            default "100ms", sample "0s",
            help "Delay before each of the mock's answers";
        token_interval: HumanDuration = HumanDuration(Duration::from_millis(20)),
            env "KEEL_MOCK_TOKEN_INTERVAL",
            flags &[Flag::value("--token-interval", "DURATION", &["up", "mock-upstream"])],
            within "0s", "10s",
            default "20ms (50 tokens/s)", sample "5ms",
            help "Delay between two tokens the mock model streams (POST /v1/chat/completions)";
    }

    /// The AI Interviewer's model. Without `api_base` the rubric engine alone runs the
    /// interviews and no data leaves the machine.
    ["interviewer"] interviewer: InterviewerFile => InterviewerSettings {
        api_base: OptUrl = OptUrl(None),
            env "KEEL_INTERVIEWER_API_BASE",
            flags &[Flag::value("--interviewer-api-base", "URL", APP)],
            default "none (rubric engine only)", sample "http://127.0.0.1:11434/v1",
            help "An OpenAI-compatible API (OpenAI, Ollama, llama.cpp, vLLM, LM Studio), ending in /v1";
        model: ModelName = ModelName("llama3.2".to_owned()),
            env "KEEL_INTERVIEWER_MODEL",
            default "llama3.2", sample "gpt-4o-mini",
            help "The model name sent to the API";
        api_key: Secret = Secret(None),
            env "KEEL_INTERVIEWER_API_KEY",
            default "none", sample "sk-0123456789abcdef0123",
            help "Bearer key of the API (masked in keel config, never logged)";
        timeout: HumanDuration = HumanDuration(Duration::from_secs(20)),
            env "KEEL_INTERVIEWER_TIMEOUT",
            within "1s", "300s",
            default "20s", sample "5s",
            help "Longest a model call may take; past it the rubric engine answers alone";
        max_tokens: u32 = 300,
            env "KEEL_INTERVIEWER_MAX_TOKENS",
            within "16", "8192",
            default "300", sample "200",
            help "Most tokens one model reply may have";
        daily_turns: u32 = 200,
            env "KEEL_INTERVIEWER_DAILY_TURNS",
            within "0", "100000",
            default "200", sample "50",
            help "Answers per reader (or address) per day that may use the model; beyond, the rubric alone";
    }

    /// Logging settings.
    ["log"] log: LogFile => LogSettings {
        format: LogFormat = LogFormat::Text,
            env "KEEL_LOG_FORMAT", flags &[Flag::value("--log-format", "FORMAT", GLOBAL)],
            default "text", sample "json",
            help "Log format: text (human, coloured on a terminal) or json";
        level: LogLevel = LogLevel("info".to_owned()),
            env "KEEL_LOG_LEVEL", flags &[Flag::value("--log-level", "FILTER", GLOBAL)],
            default "info", sample "debug",
            help "Log filter, e.g. `info` or `keel_app=debug,info`";
    }
}

use std::collections::BTreeMap;
