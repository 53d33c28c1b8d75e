//! The effective configuration: the `*Settings` structs' hand-written parts (the edge's
//! zone and limit definitions), [`Settings::load`] and `validate` (rules that involve more
//! than one value's type), and the pure builders of the libraries' configurations
//! (`app_config`, `site_config`, `limit_config`, `edge_config`, `conn_limit_config`,
//! `stream_config`, `tls_files`, `access_log_target`), with `reload` and `reload_changes`
//! for SIGHUP. The `*Settings` structs themselves are generated from `keys.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

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
        let (source, file) = match source {
            Some(mut s) => {
                let file = std::mem::take(&mut s.file);
                (Some(s), file)
            }
            None => (None, FileConfig::default()),
        };
        let settings = Settings::layer(flags, env, path, source.as_ref(), file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Rules that involve more than a value's type.
    fn validate(&self) -> Result<(), ConfigError> {
        // Every duration, size and count with a declared range (keys.rs's `within`).
        self.check_ranges()?;
        let s = &self.serve;
        let st = &self.stream;
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
        let e = &self.edge;
        for (i, limit) in e.limits.iter().enumerate() {
            let zones = e.zones.iter().map(|zone| zone.name.as_str());
            let entry = LimitEntry {
                table: "edge.limits",
                zones_table: "edge.zones",
                kind: "zone",
            };
            entry.check(i, zones, &limit.zone, &limit.path, &limit.origin)?;
        }
        for (i, limit) in e.conn_limits.iter().enumerate() {
            let zones = e.conn_zones.iter().map(|zone| zone.name.as_str());
            let entry = LimitEntry {
                table: "edge.conn_limits",
                zones_table: "edge.conn_zones",
                kind: "conn zone",
            };
            entry.check(i, zones, &limit.zone, &limit.path, &limit.origin)?;
            if !(1..=keel_edge::MAX_CONNS).contains(&limit.conn) {
                return Err(invalid(
                    &format!("edge.conn_limits[{i}].conn"),
                    &limit.origin,
                    format!("must be from 1 to {}", keel_edge::MAX_CONNS),
                ));
            }
        }
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
            backlog: s.backlog.value,
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
        cfg.acquire_timeout = self.site.database_timeout.value.0;
        cfg.hub = hub;
        cfg.interviewer = self.interviewer();
        cfg.site_name = self.site.name.value.0.clone();
        cfg.tagline = self.site.tagline.value.0.clone();
        // Enough connections for every worker to hold one while blocking calls run.
        cfg.max_connections = u32::try_from(self.serve.workers.value.get() * 4).unwrap_or(16);
        cfg
    }

    /// The AI Interviewer's model: a client for `interviewer.api_base` when one is set
    /// (no network is touched until a reader answers), else none.
    pub fn interviewer(&self) -> keel_site::interview::Interviewer {
        let i = &self.interviewer;
        let client = i.api_base.value.0.as_ref().and_then(|base| {
            let mut model = keel_interview::ModelConfig::new(
                base.0.as_str().trim_end_matches('/'),
                i.model.value.0.clone(),
            );
            model.api_key = i.api_key.value.0.clone();
            model.timeout = i.timeout.value.0;
            model.idle_timeout = i.timeout.value.0.min(model.idle_timeout);
            model.max_tokens = i.max_tokens.value;
            match keel_interview::OpenAiClient::new(model) {
                Ok(client) => Some(client),
                Err(error) => {
                    tracing::error!(%error, "the interviewer's model is not usable; the rubric engine runs alone");
                    None
                }
            }
        });
        keel_site::interview::Interviewer {
            client,
            daily_turns: i.daily_turns.value,
        }
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
        cfg.routing.limit = if rate_limit {
            self.limit_config()?
        } else {
            None
        };
        cfg.routing.conn_limit = self.conn_limit_config()?;
        cfg.routing.trusted_proxies =
            keel_edge::TrustedProxies::new(e.trusted_proxies.value.0.iter().map(|c| c.0).collect());
        cfg.routing.response_timeout = e.response_timeout.value.0;
        // 0 (the default) leaves streamed bodies without a read timeout.
        cfg.routing.body_idle_timeout = Some(e.body_idle_timeout.value.0).filter(|d| !d.is_zero());
        cfg.header_read_timeout = e.header_timeout.value.0;
        cfg.max_connections = e.max_connections.value;
        cfg.max_body_bytes = Some(e.client_max_body_size.value.0).filter(|&n| n != 0);
        let buffers = e.large_client_header_buffers.value;
        let line = usize::try_from(buffers.size.0).unwrap_or(usize::MAX);
        cfg.max_request_line_bytes = line;
        cfg.max_header_line_bytes = line;
        cfg.max_header_bytes = line.saturating_mul(usize::try_from(buffers.count).unwrap_or(1));
        cfg.workers = e.workers.value.get();
        cfg.routing.balance = keel_edge::BalanceConfig {
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
    /// limits, the app server, the site, the stream, logging). Which is which is part of
    /// each key's declaration (`reloads` in `keys.rs`). Compared on `render`'s text, so
    /// every key is covered; secrets print masked, so a changed token is not seen here.
    pub fn reload_changes(&self, new: &Settings) -> ReloadChanges {
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
            // A declared key says whether a reload applies it; the edge's tables (zones and
            // per-path limits) are routing too.
            let reloaded = KEYS.iter().any(|k| k.reloads && k.name == key.as_str())
                || RELOADED_TABLES.iter().any(|table| key.starts_with(table));
            if reloaded {
                changes.applied.push(key.clone());
            } else {
                changes.need_restart.push(key.clone());
            }
        }
        changes
    }
}

fn axum_status(code: u16) -> Option<keel_edge::StatusCode> {
    keel_edge::StatusCode::from_u16(code).ok()
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

/// One array of per-path limits in `keel.toml` (`[[edge.limits]]`, `[[edge.conn_limits]]`)
/// and the table of zones its entries name.
struct LimitEntry {
    table: &'static str,
    zones_table: &'static str,
    /// How the message calls a zone of that table.
    kind: &'static str,
}

impl LimitEntry {
    /// Entry `i` names a defined zone and a path.
    fn check<'a>(
        &self,
        i: usize,
        mut zones: impl Iterator<Item = &'a str>,
        zone: &str,
        path: &str,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        let key = format!("{}[{i}]", self.table);
        if !zones.any(|name| name == zone) {
            return Err(invalid(
                &format!("{key}.zone"),
                origin,
                format!(
                    "no {} named {zone:?}; define it with [{}.{zone}]",
                    self.kind, self.zones_table
                ),
            ));
        }
        if !path.starts_with('/') {
            return Err(invalid(
                &format!("{key}.path"),
                origin,
                format!("{path:?} is not a path; it must start with /"),
            ));
        }
        Ok(())
    }
}
