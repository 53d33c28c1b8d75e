//! Running the servers: one tokio runtime per process, sized from the configuration,
//! and the signals that stop it.
//!
//! `--workers` is the number of async worker threads; the blocking pool is sized at
//! `workers × threads` for synchronous handlers plus headroom for the runtime's own
//! blocking work (DNS lookups, file reads), so a saturated sync route never starves
//! the async client of its resolver.

use std::net::SocketAddr;

use std::time::Duration;

use anyhow::Context;
use keel_app::{App, MockConfig, MockUpstream};
use keel_edge::{Backend, Edge};
use tokio::sync::watch;

use crate::cli::Command;
use crate::config::{Origin, ProcessEnv, Settings};

/// Blocking threads kept beyond the synchronous handlers' slots.
const BLOCKING_HEADROOM: usize = 64;

pub fn command(command: Command, settings: &Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => app_runtime(settings)?.block_on(serve(settings)),
        Command::Up => app_runtime(settings)?.block_on(up(settings)),
        // The edge's workers run their own runtimes; this one only waits for signals.
        Command::Edge => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("keel-edge")
            .build()
            .context("could not start the async runtime")?
            .block_on(edge(settings)),
        Command::MockUpstream => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("could not start the async runtime")?
            .block_on(mock_upstream(settings)),
        Command::Collectstatic => {
            let report = collect_static(settings)?;
            println!("{report}");
            Ok(())
        }
        Command::Publish(args) => small_runtime()?.block_on(publish(settings, args)),
        Command::Migrate => small_runtime()?.block_on(migrate(settings)),
        Command::Createsuperuser(args) => {
            let answers = crate::superuser::ask(&args, settings.superuser_password.0.clone())?;
            small_runtime()?.block_on(create_superuser(settings, answers))
        }
        Command::Quiz(quiz) => small_runtime()?.block_on(quiz_command(settings, quiz)),
        Command::Bench(_) | Command::Compare(_) | Command::Interview(_) | Command::Config => Ok(()),
    }
}

/// `keel quiz import|export|list` on the site's database.
async fn quiz_command(settings: &Settings, command: crate::cli::QuizCommand) -> anyhow::Result<()> {
    use crate::cli::QuizCommand;
    use keel_site::quiz::staff::{self, Format, ImportError};
    let url = &settings.site.database_url.value.0;
    match command {
        QuizCommand::Import(args) => {
            let shown = args.file.display().to_string();
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {shown}"))?;
            let slug = match &args.quiz {
                Some(slug) => slug.clone(),
                None => keel_site::slugify(
                    &args
                        .file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
            };
            let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
            match staff::import_text(url, format, &text, &slug, args.draft, args.dry_run).await {
                Ok(n) if args.dry_run => {
                    println!("{shown}: {n} questions are valid; nothing was stored (--dry-run)");
                    Ok(())
                }
                Ok(n) => {
                    println!("imported {n} questions into quiz {slug}");
                    Ok(())
                }
                Err(ImportError::Parse(errors)) => {
                    for e in &errors {
                        eprintln!("{shown}:{}: {}", e.line, e.message);
                    }
                    anyhow::bail!("{shown}: {} error(s); nothing was stored", errors.len())
                }
                Err(e) => Err(anyhow::Error::new(e).context(format!("keel quiz import {shown}"))),
            }
        }
        QuizCommand::Export(args) => match staff::export_gift(url, &args.slug).await? {
            Some(gift) => {
                print!("{gift}");
                Ok(())
            }
            None => anyhow::bail!("there is no quiz {:?} (see keel quiz list)", args.slug),
        },
        QuizCommand::List => {
            let rows = staff::list(url).await?;
            println!(
                "{:<32} {:<40} {:>9} {:>8}",
                "SLUG", "TITLE", "QUESTIONS", "ATTEMPTS"
            );
            for (slug, title, questions, attempts) in rows {
                println!("{slug:<32} {title:<40} {questions:>9} {attempts:>8}");
            }
            Ok(())
        }
    }
}

/// One thread for the one-shot commands (publish, migrate, createsuperuser).
fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

/// `keel migrate`.
async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = &settings.site.database_url.value;
    let applied = keel_site::migrate(&url.0)
        .await
        .with_context(|| format!("keel migrate on {url} failed"))?;
    match applied {
        0 => println!("keel migrate: {url} is up to date"),
        n => println!("keel migrate: applied {n} migration(s) to {url}"),
    }
    Ok(())
}

/// `keel createsuperuser`, once the answers are in.
async fn create_superuser(
    settings: &Settings,
    answers: crate::superuser::Answers,
) -> anyhow::Result<()> {
    let url = &settings.site.database_url.value;
    let user =
        keel_site::create_superuser(&url.0, &answers.username, &answers.email, &answers.password)
            .await
            .with_context(|| format!("keel createsuperuser on {url} failed"))?;
    println!(
        "keel createsuperuser: superuser {:?} created in {url}; log in at /accounts/login/ and open /admin/",
        user.username
    );
    Ok(())
}

/// Opens the site on the configured database (migrations and sample posts included).
async fn open_site(
    settings: &Settings,
    hub: Option<keel_stream::Hub>,
    local_publish: bool,
) -> anyhow::Result<keel_site::Site> {
    let url = &settings.site.database_url.value;
    let mut cfg = settings.site_config(hub);
    cfg.publish_hint = publish_hint(settings, local_publish);
    keel_site::Site::open(cfg)
        .await
        .with_context(|| format!("could not open the site's database {url}"))
}

fn app_runtime(settings: &Settings) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = settings.serve.workers.value.get();
    let slots = workers * settings.serve.threads.value.get();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(slots + BLOCKING_HEADROOM)
        .thread_name("keel-worker")
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let hub = stream_hub(settings).await?;
    let mut app_config = settings.app_config(settings.serve.bind.value, Some(hub.clone()));
    app_config.site = Some(open_site(settings, Some(hub), false).await?);
    let app = App::build(app_config)
        .await
        .context("could not start keel serve")?;
    let addr = app.local_addr();
    // Before the address is announced: whoever reads it may signal at once.
    ignore_sighup("keel serve");
    println!(
        "keel serve: listening on http://{addr} (workers {}, threads {}, upstream {})",
        settings.serve.workers.value,
        settings.serve.threads.value,
        settings.serve.upstream_url.value,
    );
    // The app server, like gunicorn, serves no static files: pages opened on it directly
    // have no stylesheet. Said once, where a newcomer looks.
    println!(
        "keel serve: /static/ is not served here (the edge's job, as nginx's in front of gunicorn): open the site through `keel edge --upstream {addr} --static-root {}`, or run `keel up`",
        settings.statics.root.value
    );
    tracing::info!(%addr, "keel serve started");
    app.run_until_stopped(stop_signal())
        .await
        .context("keel serve failed")?;
    tracing::info!("keel serve stopped");
    Ok(())
}

async fn mock_upstream(settings: &Settings) -> anyhow::Result<()> {
    let mock = MockUpstream::build(MockConfig {
        listen: settings.mock.listen.value,
        latency: settings.mock.latency.value.0,
        token_interval: settings.mock.token_interval.value.0,
    })
    .await
    .context("could not start keel mock-upstream")?;
    println!(
        "keel mock-upstream: listening on http://{} (latency {}), serving {}",
        mock.local_addr(),
        settings.mock.latency.value,
        mock.todo_url(),
    );
    mock.run_until_stopped(stop_signal())
        .await
        .context("keel mock-upstream failed")
}

/// The live-event hub: Redis when `stream.redis_url` is set (every instance sees what any
/// publishes), the in-memory broker otherwise (one process, `keel up`'s default).
async fn stream_hub(settings: &Settings) -> anyhow::Result<keel_stream::Hub> {
    let broker = broker(settings).await?;
    keel_stream::Hub::new(broker, settings.stream_config())
        .map_err(|e| anyhow::anyhow!("invalid [stream] settings: {e}"))
}

async fn broker(settings: &Settings) -> anyhow::Result<std::sync::Arc<dyn keel_stream::Broker>> {
    let st = &settings.stream;
    Ok(match &st.redis_url.value.0 {
        Some(url) => {
            let mut cfg = keel_stream::RedisBrokerConfig::new(url.as_str());
            cfg.retention_events = st.retention.value;
            // Connecting does not wait for Redis: a server starts (degraded) and catches up.
            let broker = keel_stream::RedisBroker::connect(cfg)
                .await
                .with_context(|| format!("Redis at {}", st.redis_url.value))?;
            tracing::info!(redis = %st.redis_url.value, "live events through Redis");
            std::sync::Arc::new(broker)
        }
        None => std::sync::Arc::new(keel_stream::MemoryBroker::new(
            keel_stream::MemoryBrokerConfig {
                retention_events: st.retention.value,
                ..keel_stream::MemoryBrokerConfig::default()
            },
        )),
    })
}

/// The publish command `/events/` shows: one that works against this server's broker. A
/// Redis URL is never shown (it may hold a password): `redis-cli` is named against "the
/// site's Redis".
fn publish_hint(settings: &Settings, local_publish: bool) -> String {
    match (&settings.stream.redis_url.value.0, local_publish) {
        (Some(_), true) => "keel publish demo_stream \"Test Event\"    # from the directory keel up runs in\nredis-cli publish demo_stream \"Test Event\"   # against the site's Redis".to_owned(),
        (Some(_), false) => "redis-cli publish demo_stream \"Test Event\"   # against the site's Redis\nkeel publish --redis-url URL demo_stream \"Test Event\"".to_owned(),
        (None, true) => "keel publish demo_stream \"Test Event\"    # from the directory keel up runs in".to_owned(),
        (None, false) => "keel publish --api URL --token TOKEN demo_stream \"Test Event\"   # this server's address and its stream.publish_token".to_owned(),
    }
}

/// What `keel up` leaves for `keel publish`: where it listens and its publish token.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PublishFile {
    url: String,
    token: String,
    pid: u32,
}

/// Writes the publish file, readable by this user only (it holds a bearer token).
fn write_publish_file(path: &std::path::Path, url: &str, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let body = serde_json::to_string(&PublishFile {
        url: url.to_owned(),
        token: token.to_owned(),
        pid: std::process::id(),
    })
    .map_err(std::io::Error::other)?;
    // A fresh file each run: an old one (another user's, or wider permissions) goes first.
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(body.as_bytes())
}

fn read_publish_file(path: &std::path::Path) -> Option<PublishFile> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Removes the publish file if it is still this run's (another `keel up` may have
/// replaced it since).
fn remove_publish_file(path: &std::path::Path, token: &str) {
    if read_publish_file(path).is_some_and(|f| f.token == token) {
        let _ = std::fs::remove_file(path);
    }
}

/// `POST {base}/api/publish` with the bearer `token`.
async fn publish_over_api(
    base: &str,
    token: &str,
    channel: &str,
    message: &str,
) -> anyhow::Result<()> {
    let url = format!("{}/api/publish", base.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .json(&serde_json::json!({ "channel": channel, "message": message }))
        .send()
        .await
        .with_context(|| format!("could not reach {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "{url} answered {status}: {}",
            body["detail"].as_str().unwrap_or("no detail")
        );
    }
    println!(
        "published to {channel} (id {})",
        body["id"].as_str().unwrap_or("-")
    );
    Ok(())
}

/// `keel publish`: through a server's `/api/publish` with `--api`, else through Redis, else
/// through the `keel up` running from this directory (its publish file).
async fn publish(settings: &Settings, args: crate::cli::PublishArgs) -> anyhow::Result<()> {
    let channel = args.channel.0;
    if let Some(api) = args.api {
        // --token, KEEL_PUBLISH_TOKEN or stream.publish_token, layered like every setting.
        let Some(token) = settings.stream.publish_token.value.0.clone() else {
            anyhow::bail!(
                "keel publish --api needs the server's publish token: --token, KEEL_PUBLISH_TOKEN or stream.publish_token"
            );
        };
        return publish_over_api(&api, &token, &channel, &args.message).await;
    }
    if settings.stream.redis_url.value.0.is_none() {
        // No broker named: the `keel up` running from this directory, if there is one.
        let file = &settings.up.publish_file.value.0;
        let Some(local) = read_publish_file(file) else {
            anyhow::bail!(
                "keel publish found no keel up running here ({} is missing): start `keel up` in this directory, or give --redis-url URL (or stream.redis_url), or --api URL --token TOKEN",
                file.display()
            );
        };
        return publish_over_api(&local.url, &local.token, &channel, &args.message).await;
    }
    // The broker connects in the background: give Redis a moment, but a bounded one, so a
    // script learns within seconds that the broker is down instead of hanging on retries.
    const PATIENCE: Duration = Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let broker = broker(settings).await?;
    let attempts = async {
        loop {
            match broker.publish(&channel, &args.message).await {
                Ok(id) => return Ok(id),
                Err(keel_stream::BrokerError::Unavailable { reason })
                    if tokio::time::Instant::now() + Duration::from_millis(100) < deadline =>
                {
                    tracing::debug!(%reason, "Redis not ready yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(anyhow::Error::new(error)),
            }
        }
    };
    let id = match tokio::time::timeout_at(deadline, attempts).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!(
            "Redis did not answer within {} s",
            PATIENCE.as_secs()
        )),
    }
    .with_context(|| {
        format!(
            "could not publish to {} through {}",
            channel, settings.stream.redis_url.value
        )
    })?;
    println!(
        "published to {channel} (id {})",
        id.map_or_else(|| "-".to_owned(), |id| id.to_string())
    );
    Ok(())
}

/// `keel collectstatic`: `--source` directories first, then the app's embedded assets,
/// so a project can override keel's own files (Django's finder order).
fn collect_static(settings: &Settings) -> anyhow::Result<keel_static::Report> {
    let mut sources: Vec<keel_static::Source> = settings
        .statics
        .sources
        .value
        .0
        .iter()
        .map(|dir| keel_static::Source::Dir(dir.0.clone()))
        .collect();
    sources.push(keel_static::Source::Embedded(keel_app::ASSETS));
    sources.push(keel_static::Source::Embedded(keel_site::ASSETS));
    let root = &settings.statics.root.value.0;
    keel_static::collect(&keel_static::CollectOptions {
        static_root: root.clone(),
        sources,
    })
    .with_context(|| format!("collectstatic into {} failed", root.display()))
}

/// Loads the static root for the edge, when there is one to serve. A root that was asked
/// for explicitly must exist; the default one is optional.
fn load_static(settings: &Settings) -> anyhow::Result<Option<keel_edge::StaticHandle>> {
    let root = &settings.statics.root;
    if !root.value.0.is_dir() {
        if root.origin == Origin::Default {
            tracing::info!(root = %root.value, "no static root; /static/ goes to the upstream");
            return Ok(None);
        }
        anyhow::bail!(
            "static root {} ({}) does not exist; run `keel collectstatic --static-root {}` first",
            root.value,
            root.origin,
            root.value
        );
    }
    let files = keel_edge::StaticFiles::load(&root.value.0, keel_edge::StaticOptions::default())
        .with_context(|| format!("could not load the static root {}", root.value))?;
    tracing::info!(root = %root.value, files = files.len(), "static files loaded");
    Ok(Some(keel_edge::StaticHandle::new(files)))
}

/// What SIGHUP reloads, like `nginx -s reload`: the configuration (limits, upstreams,
/// trusted proxies), the static index and the TLS certificate. Connections are not
/// touched, and whatever fails to reload keeps its previous version.
struct Reload {
    statics: Option<keel_edge::StaticHandle>,
    certs: Option<std::sync::Arc<keel_edge::CertStore>>,
    config: Option<ConfigReload>,
}

/// Enough to rebuild the edge's configuration: the settings in effect (which know what
/// they were loaded from) and the edge to hand the result to.
struct ConfigReload {
    /// The settings in effect, to tell what a reload changes.
    current: std::sync::Mutex<Settings>,
    reloader: keel_edge::Reloader,
    /// `keel up`'s in-process app, which a reload keeps; `None` for upstreams from config.
    in_process: Option<Backend>,
    rate_limit: bool,
}

impl ConfigReload {
    fn new(
        settings: &Settings,
        reloader: keel_edge::Reloader,
        in_process: Option<Backend>,
        rate_limit: bool,
    ) -> Self {
        ConfigReload {
            current: std::sync::Mutex::new(settings.clone()),
            reloader,
            in_process,
            rate_limit,
        }
    }

    /// Loads the settings again and swaps in the edge's routing; returns what changed.
    fn apply(&self) -> anyhow::Result<crate::config::ReloadChanges> {
        let settings = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .reload(&ProcessEnv)?;
        let backend = match &self.in_process {
            Some(backend) => backend.clone(),
            None => Backend::Upstreams(
                settings
                    .edge
                    .upstream
                    .value
                    .0
                    .iter()
                    .map(|u| u.0.clone())
                    .collect(),
            ),
        };
        let listen = settings.edge.listen.value;
        let cfg = settings.edge_config(listen, backend, self.rate_limit)?;
        self.reloader.reload(&cfg.routing)?;
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changes = current.reload_changes(&settings);
        // Each reload reports what changed since the one before (a restart-only change is
        // warned about once, when it appears).
        *current = settings;
        Ok(changes)
    }
}

fn reload_on_sighup(reload: Reload) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let reload = std::sync::Arc::new(reload);
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        let reload = reload.clone();
                        // File reads and hashing: off the async workers.
                        let done = tokio::task::spawn_blocking(move || reload_all(&reload)).await;
                        if let Err(error) = done {
                            tracing::error!(%error, "SIGHUP: reload task failed");
                        }
                    }
                });
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; nothing will be reloaded")
            }
        }
    }
    #[cfg(not(unix))]
    let _ = reload;
}

fn reload_all(reload: &Reload) {
    if let Some(config) = &reload.config {
        match config.apply() {
            Ok(changes) => {
                if changes.applied.is_empty() {
                    tracing::info!("SIGHUP: configuration reloaded, no reloadable setting changed");
                } else {
                    tracing::info!(
                        applied = %changes.applied.join(", "),
                        "SIGHUP: configuration reloaded"
                    );
                }
                if !changes.need_restart.is_empty() {
                    tracing::warn!(
                        need_restart = %changes.need_restart.join(", "),
                        "SIGHUP: these settings changed but only a restart applies them; they keep their values until then"
                    );
                }
            }
            Err(error) => tracing::error!(
                "SIGHUP: configuration not reloaded, the previous one stays: {error:#}"
            ),
        }
    }
    if let Some(statics) = &reload.statics {
        match statics.reload() {
            Ok(()) => tracing::info!("SIGHUP: static files reloaded"),
            Err(error) => {
                tracing::error!(%error, "SIGHUP: static reload failed; still serving the previous files")
            }
        }
    }
    if let Some(certs) = &reload.certs {
        match certs.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(%error, "SIGHUP: certificate reload failed; still serving the previous one")
            }
        }
    }
}

/// How `keel edge` and `keel up` differ when they start an edge.
struct EdgeRole {
    /// Where requests go.
    backend: Backend,
    /// Where to listen.
    listen: SocketAddr,
    /// limit_req on (`keel up --no-rate-limit` turns it off).
    rate_limit: bool,
    /// Edge worker threads instead of the configured ones (`keel up`: one, on the app's
    /// own runtime).
    workers: Option<usize>,
    /// For error messages: `keel edge` or `keel up`.
    name: &'static str,
}

/// Starts an edge, the one way both `keel edge` and `keel up` do: the configuration
/// (pure data), then what opens files or starts threads — the TLS certificate, the
/// access log and its SIGUSR1 reopen, the static index — then the listeners, then SIGHUP.
async fn start_edge(settings: &Settings, role: EdgeRole) -> anyhow::Result<Edge> {
    let in_process = matches!(role.backend, Backend::InProcess(_)).then(|| role.backend.clone());
    let mut cfg = settings.edge_config(role.listen, role.backend, role.rate_limit)?;
    if let Some(workers) = role.workers {
        cfg.workers = workers;
    }
    if let Some(tls) = settings.tls_files() {
        let certs = keel_edge::CertStore::load(&tls.cert, &tls.key).with_context(|| {
            format!("could not load the TLS certificate {}", tls.cert.display())
        })?;
        cfg.tls = Some(keel_edge::TlsConfig {
            listen: tls.listen,
            certs,
        });
        cfg.redirect_http = tls.redirect_http;
    }
    if let Some((target, format)) = settings.access_log_target() {
        let log = keel_edge::AccessLog::start(target.clone(), format)
            .with_context(|| format!("cannot open the access log {target:?}"))?;
        cfg.access_log = Some(log);
    }
    reopen_on_sigusr1(cfg.access_log.clone());
    cfg.static_files = load_static(settings)?;
    let (statics, certs) = (
        cfg.static_files.clone(),
        cfg.tls.as_ref().map(|tls| tls.certs.clone()),
    );
    let edge = Edge::build(cfg)
        .await
        .with_context(|| format!("could not start {}", role.name))?;
    reload_on_sighup(Reload {
        statics,
        certs,
        config: Some(ConfigReload::new(
            settings,
            edge.reloader(),
            in_process,
            role.rate_limit,
        )),
    });
    Ok(edge)
}

async fn edge(settings: &Settings) -> anyhow::Result<()> {
    let upstreams: Vec<_> = settings
        .edge
        .upstream
        .value
        .0
        .iter()
        .map(|u| u.0.clone())
        .collect();
    let role = EdgeRole {
        backend: Backend::Upstreams(upstreams),
        listen: settings.edge.listen.value,
        rate_limit: true,
        workers: None,
        name: "keel edge",
    };
    let edge = start_edge(settings, role).await?;
    println!(
        "keel edge: listening on http://{} (upstreams {}, rate {} burst {} {})",
        edge.local_addr(),
        settings.edge.upstream.value,
        settings.edge.rate.value,
        settings.edge.burst.value,
        settings.edge.delay.value,
    );
    if let Some(tls) = edge.tls_local_addr() {
        println!("keel edge: listening on https://{tls} (HTTP/2 and HTTP/1.1)");
    }
    tracing::info!(addr = %edge.local_addr(), "keel edge started");
    edge.run_until_stopped(stop_signal()).await;
    tracing::info!("keel edge stopped");
    Ok(())
}

/// `keel up`: the app on the public address, with a mock upstream in the same process
/// unless an upstream URL was configured.
async fn up(settings: &Settings) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let hub = stream_hub(settings).await?;
    let mut app_config = settings.app_config(settings.up.listen.value, Some(hub.clone()));
    // Without a configured token, `keel up` makes one for this run, so that `keel publish`
    // on this machine works with no flags (it reads the publish file written below).
    if app_config.publish_token.is_none() {
        app_config.publish_token =
            Some(keel_site::random_token().context("could not make a publish token")?);
    }
    let mut mock_task = None;
    let upstream_note;
    if settings.serve.upstream_url.origin == Origin::Default {
        let mock = MockUpstream::build(MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: settings.mock.latency.value.0,
            token_interval: settings.mock.token_interval.value.0,
        })
        .await
        .context("could not start the built-in mock upstream")?;
        app_config.upstream_url = mock.todo_url();
        upstream_note = format!(
            "{} (built-in mock, latency {})",
            mock.todo_url(),
            settings.mock.latency.value
        );
        mock_task = Some(tokio::spawn(mock.run_until_stopped(stopped())));
    } else {
        upstream_note = settings.serve.upstream_url.value.to_string();
    }

    // Collected before the site opens, so its pages link the hashed names of this
    // binary's assets. Idempotent and quick when nothing changed.
    let report = collect_static(settings)?;
    tracing::info!(root = %settings.statics.root.value, "{report}");
    app_config.site = Some(open_site(settings, Some(hub.clone()), true).await?);

    // The app sits behind the edge's layers in-process: no socket hop, same rate limit,
    // forwarded headers and access log as behind `keel edge`.
    let router = App::in_process(&app_config).context("could not build the app")?;
    let rate_limit = settings.up.rate_limit.value;
    let role = EdgeRole {
        backend: Backend::InProcess(router),
        listen: app_config.bind,
        rate_limit,
        // In-process, the app's own runtime (--workers) does the work: one edge worker.
        workers: Some(1),
        name: "keel up",
    };
    let edge = start_edge(settings, role).await?;
    let base = format!("http://{}", edge.local_addr());
    let publish_file = &settings.up.publish_file.value.0;
    let token = app_config.publish_token.clone().unwrap_or_default();
    let local = match write_publish_file(publish_file, &base, &token) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(file = %publish_file.display(), %error, "no publish file: keel publish will need --api and --token");
            false
        }
    };
    println!("keel up: serving on {base}");
    for (what, path) in [
        ("site", "/"),
        ("admin", "/admin/"),
        ("sync test", "/sync/test"),
        ("async test", "/async/test"),
        ("health", "/healthz"),
        ("metrics", "/metrics"),
        ("static", "/static/css/keel.css"),
        ("events", "/events/"),
        ("stream", "/stream/"),
    ] {
        println!("  {what:<11} {base}{path}");
    }
    println!("  {:<11} {upstream_note}", "upstream");
    match &settings.stream.redis_url.value.0 {
        Some(url) => println!(
            "  {:<11} Redis at {}: redis-cli -u {} publish demo_stream \"Test Event\" (or keel publish demo_stream \"Test Event\")",
            "live events",
            settings.stream.redis_url.value,
            url.as_str()
        ),
        None if local => println!(
            "  {:<11} in-memory broker (this process): keel publish demo_stream \"Test Event\" (from this directory)",
            "live events"
        ),
        None => println!(
            "  {:<11} in-memory broker (this process): keel publish --api {base} --token … demo_stream \"Test Event\"",
            "live events"
        ),
    }
    println!(
        "  {:<11} {} (a staff account for /admin/: keel createsuperuser)",
        "database", settings.site.database_url.value
    );
    if rate_limit {
        println!(
            "  {:<11} {} burst {} {} per client address (--no-rate-limit turns it off)",
            "rate limit",
            settings.edge.rate.value,
            settings.edge.burst.value,
            settings.edge.delay.value
        );
    } else {
        println!("  {:<11} off", "rate limit");
    }
    tracing::info!(addr = %edge.local_addr(), "keel up started");

    let edge_task = tokio::spawn(edge.run_until_stopped(stopped()));
    stop_signal().await;
    if local {
        remove_publish_file(publish_file, &token);
    }
    // Open streams end with a retry hint instead of holding the drain up.
    hub.shutdown();
    let _ = stop_tx.send(true);
    edge_task.await.context("the edge task failed")?;
    if let Some(task) = mock_task {
        task.await
            .context("the mock upstream task failed")?
            .context("the built-in mock upstream failed")?;
    }
    tracing::info!("keel up stopped");
    Ok(())
}

/// SIGHUP's default action would kill the process; an app server has nothing to reload
/// (its settings come from flags and the environment at start), so it is logged and
/// ignored, and `systemctl reload` cannot take an instance down by mistake.
fn ignore_sighup(what: &'static str) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: {what} has nothing to reload; restart instances one at a time to apply new settings");
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "cannot listen for SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    let _ = what;
}

/// logrotate's `postrotate` sends SIGUSR1: reopen the access log file.
fn reopen_on_sigusr1(log: Option<keel_edge::AccessLog>) {
    #[cfg(unix)]
    if let Some(log) = log {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::user_defined1()) {
            Ok(mut usr1) => {
                tokio::spawn(async move {
                    while usr1.recv().await.is_some() {
                        log.reopen();
                    }
                });
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGUSR1; the access log will not be reopened")
            }
        }
    }
    #[cfg(not(unix))]
    let _ = log;
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, draining"),
        () = term => tracing::info!("SIGTERM received, draining"),
    }
}
