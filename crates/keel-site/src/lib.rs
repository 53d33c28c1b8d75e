//! The site: Django's role in the classic stack. A blog with posts, tags and a tag filter,
//! accounts, feedback and a staff admin, server-rendered from templates, on SQLite by
//! default and PostgreSQL at scale.
//!
//! This crate owns the site's routes, its database schema and queries, accounts and
//! sessions, CSRF protection and templates. It knows the live-event stream only through
//! `keel_stream::Hub::publish` (the "new post" notice) and the static pipeline only through
//! its manifest (hashed URLs). The app server merges [`Site::router`] into its own.
//!
//! ```text
//! Site::open(SiteConfig) → connects, migrates, adds sample posts → site.router()
//! ```

mod accounts;
mod admin;
mod auth;
mod cache;
pub mod db;
mod error;
mod feedback;
mod forms;
pub mod interview;
mod markdown;
mod pages;
mod posts;
pub mod quiz;
mod render;
mod sample;
mod web;

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use accounts::{check_email, check_password, check_username, random_token, User};
pub use admin::SITE_CHANNEL;
pub use db::{Backend, Db};
pub use error::SiteError;
pub use markdown::slugify;

/// The site's own static files, compiled into the binary: `(name under /static/, bytes)`.
/// `keel collectstatic` and `keel up` collect them with the app's.
pub const ASSETS: &[(&str, &[u8])] = &[
    ("css/site.css", include_bytes!("../assets/css/site.css")),
    ("js/site.js", include_bytes!("../assets/js/site.js")),
    (
        "img/favicon.svg",
        include_bytes!("../assets/img/favicon.svg"),
    ),
    // The edge's answer to a rate-limited page request (nginx's `error_page`), served
    // from the collected root under the status it goes with (the edge renders no
    // templates): one page for both statuses limit_req uses.
    (
        "errors/429.html",
        include_bytes!("../assets/errors/rate-limited.html"),
    ),
    (
        "errors/503.html",
        include_bytes!("../assets/errors/rate-limited.html"),
    ),
];

/// The default database: a SQLite file under `./keel-data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://keel-data/keel.db";

/// What the site needs, already validated by the caller.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a request waits for a database connection before it gets 503.
    pub acquire_timeout: std::time::Duration,
    /// A directory whose templates replace the built-in ones of the same name.
    pub templates_dir: Option<PathBuf>,
    /// The collected static root, for the manifest's hashed URLs; without one, plain
    /// `/static/` URLs are used.
    pub static_root: Option<PathBuf>,
    /// Add the sample posts to an empty database.
    pub sample_data: bool,
    /// Live events, for the "new post" notice; `None` turns the notice off.
    pub hub: Option<keel_stream::Hub>,
    /// Shown in the navigation bar and titles.
    pub site_name: String,
    /// One line under the name: the footer and the meta description.
    pub tagline: String,
    /// What `/events/` tells a reader to run to publish a message (the command that works
    /// with this server's broker).
    pub publish_hint: String,
    /// The AI Interviewer's model, if any, and its daily budget.
    pub interviewer: interview::Interviewer,
    /// How long the public pages' database reads are reused (`cache.rs`); writes through
    /// this process clear them at once. Zero reads the database for every request.
    pub page_cache_ttl: std::time::Duration,
}

impl SiteConfig {
    /// keel's defaults for `database_url`.
    pub fn new(database_url: impl Into<String>) -> SiteConfig {
        SiteConfig {
            database_url: database_url.into(),
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(2),
            templates_dir: None,
            static_root: None,
            sample_data: true,
            hub: None,
            site_name: "keel".into(),
            tagline: "A tech-learning blog served by one Rust binary".into(),
            page_cache_ttl: std::time::Duration::from_secs(1),
            interviewer: interview::Interviewer::default(),
            publish_hint: "keel publish --api URL --token TOKEN demo_stream \"Test Event\"".into(),
        }
    }
}

/// State shared by the site's handlers.
#[derive(Debug)]
struct Inner {
    db: Db,
    templates: render::Templates,
    hub: Option<keel_stream::Hub>,
    site_name: String,
    tagline: String,
    cache: cache::PageCache,
    /// Live rooms with a tally or a player count waiting to be published (see
    /// `quiz::live::coalesce`).
    live_pending: std::sync::Mutex<std::collections::HashSet<(i64, &'static str)>>,
    interviewer: interview::Interviewer,
    publish_hint: String,
}

/// An open site: connected, migrated, ready to route.
#[derive(Debug, Clone)]
pub struct Site {
    inner: Arc<Inner>,
}

impl Site {
    /// Connects, applies pending migrations, adds the sample posts when asked and the
    /// database is new, and compiles the templates.
    pub async fn open(cfg: SiteConfig) -> Result<Site, SiteError> {
        let manifest = match &cfg.static_root {
            Some(root) if root.join("manifest.json").is_file() => Some(
                keel_static::Manifest::load(root)
                    .map_err(|e| SiteError::Config(format!("static manifest: {e}")))?,
            ),
            Some(root) if root.is_dir() => {
                tracing::warn!(root = %root.display(), "no manifest.json in the static root; pages link plain /static/ names");
                None
            }
            _ => None,
        };
        let templates = render::Templates::new(cfg.templates_dir.clone(), manifest)?;
        let db = Db::connect(&cfg.database_url, cfg.max_connections, cfg.acquire_timeout).await?;
        let applied = db.migrate().await?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        if cfg.sample_data && sample::seed(&db).await? {
            tracing::info!("sample posts added (--no-sample-data skips them)");
        }
        if cfg.sample_data && sample::seed_quizzes(&db).await? {
            tracing::info!("sample quizzes added (--no-sample-data skips them)");
        }
        Ok(Site {
            inner: Arc::new(Inner {
                db,
                templates,
                hub: cfg.hub,
                site_name: cfg.site_name,
                tagline: cfg.tagline,
                cache: cache::PageCache::new(cfg.page_cache_ttl),
                live_pending: Default::default(),
                interviewer: cfg.interviewer,
                publish_hint: cfg.publish_hint,
            }),
        })
    }

    /// Whether the site can serve: its database answers within two seconds. The error
    /// says why not, for `/healthz`.
    pub async fn health(&self) -> Result<(), String> {
        self.inner.db.ping(std::time::Duration::from_secs(2)).await
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The site's routes, with their own fallback (a friendly 404 page). Merge it last
    /// into an app router that has no fallback of its own.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/", get(pages::home))
            .route("/posts/{slug}/", get(pages::post))
            .route(
                "/accounts/register/",
                get(auth::register_form).post(auth::register),
            )
            .route("/accounts/login/", get(auth::login_form).post(auth::login))
            .route(
                "/accounts/logout/",
                get(auth::logout_form).post(auth::logout),
            )
            .route("/quizzes/", get(quiz::pages::list))
            .route(
                "/quizzes/live/",
                get(quiz::live::join_form).post(quiz::live::join),
            )
            .route("/quizzes/live/{pin}/", get(quiz::live::play))
            .route("/quizzes/live/{pin}/answer/", post(quiz::live::answer))
            .route(
                "/quizzes/live/{pin}/host/",
                get(quiz::live::host).post(quiz::live::host_action),
            )
            .route("/admin/quizzes/{id}/live/", post(quiz::live::open))
            .route("/quizzes/history/", get(quiz::pages::history))
            .route("/quizzes/{slug}/", get(quiz::pages::detail))
            .route("/quizzes/{slug}/start/", post(quiz::pages::start))
            .route(
                "/quizzes/attempts/{id}/",
                get(quiz::pages::attempt).post(quiz::pages::answer),
            )
            .route("/quizzes/attempts/{id}/result/", get(quiz::pages::result))
            .route(
                "/interviewer/",
                get(interview::pages::index).post(interview::pages::start),
            )
            .route(
                "/interviewer/sessions/{id}/",
                get(interview::pages::session).post(interview::pages::answer),
            )
            .route(
                "/interviewer/sessions/{id}/report/",
                get(interview::pages::report),
            )
            .route(
                "/interviewer/sessions/{id}/again/",
                post(interview::pages::again),
            )
            .route(
                "/interviewer/sessions/{id}/report.md",
                get(interview::pages::report_markdown),
            )
            .route("/admin/interviewer/", get(interview::staff::index))
            .route(
                "/admin/interviewer/{track}/",
                get(interview::staff::edit).post(interview::staff::save),
            )
            .route(
                "/admin/interviewer/{track}/regrade/",
                post(interview::staff::regrade),
            )
            .route("/events/", get(pages::events))
            .route("/robots.txt", get(pages::robots))
            .route("/sitemap.xml", get(pages::sitemap))
            .route("/events/publish", post(pages::publish))
            .route("/feedback/", get(feedback::form).post(feedback::submit))
            .route("/admin/", get(admin::index))
            .route("/admin/feedback/", get(admin::feedback_list))
            .route("/admin/quizzes/", get(quiz::staff::index))
            .route(
                "/admin/quizzes/import/",
                get(quiz::staff::import_form).post(quiz::staff::import),
            )
            .route(
                "/admin/quizzes/{id}/",
                get(quiz::staff::edit_form).post(quiz::staff::update),
            )
            .route("/admin/quizzes/{id}/publish/", post(quiz::staff::publish))
            .route(
                "/admin/quizzes/{id}/delete/",
                get(quiz::staff::delete_form).post(quiz::staff::delete),
            )
            .route("/admin/quizzes/{id}/export.gift", get(quiz::staff::export))
            .route("/admin/quizzes/{id}/analysis/", get(quiz::staff::analysis))
            .route(
                "/admin/quizzes/{id}/analysis.csv",
                get(quiz::staff::analysis_csv),
            )
            .route(
                "/admin/quizzes/{id}/questions/{qid}/",
                get(quiz::staff::question_form).post(quiz::staff::question_update),
            )
            .route("/admin/preview", post(admin::preview))
            .route(
                "/admin/posts/new/",
                get(admin::new_form).post(admin::create),
            )
            .route(
                "/admin/posts/{id}/edit/",
                get(admin::edit_form).post(admin::update),
            )
            .route(
                "/admin/posts/{id}/delete/",
                get(admin::delete_form).post(admin::delete),
            )
            .fallback(web::fallback)
            // Inside the visitor layer, so a panic's 500 is rendered as the site's page.
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                |_: Box<dyn std::any::Any + Send + 'static>| {
                    axum::response::IntoResponse::into_response(SiteError::Internal(
                        "a handler panicked".into(),
                    ))
                },
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.inner.clone(),
                web::visit,
            ))
            // Outermost, so error pages are compressed too. The site has no streams:
            // `/stream/` is the app's and never passes here.
            .layer(tower_http::compression::CompressionLayer::new())
            .with_state(self.inner.clone())
    }
}

impl Site {
    /// The site's long-lived routes: a live room's event stream, the interviewer's words.
    /// Merge it outside any request timeout and compression, as `/stream/` is. The visitor
    /// layer knows who is asking; both routes only read (no CSRF applies to a GET).
    pub fn live_router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/quizzes/live/{pin}/events/", get(quiz::live::events))
            .route(
                "/interviewer/sessions/{id}/say/{n}/",
                get(interview::pages::say),
            )
            // Who is asking, as on every site route (the reply stream is the reader's own).
            .layer(axum::middleware::from_fn_with_state(
                self.inner.clone(),
                web::visit,
            ))
            .with_state(self.inner.clone())
    }
}

/// Applies pending migrations to `database_url` (`keel migrate`); returns how many ran.
pub async fn migrate(database_url: &str) -> Result<usize, SiteError> {
    let db = Db::connect(database_url, 1, std::time::Duration::from_secs(10)).await?;
    let applied = db.migrate().await;
    db.close().await;
    applied
}

/// Why `keel createsuperuser` refused.
#[derive(Debug, thiserror::Error)]
pub enum SuperuserError {
    /// A rule of the registration form failed; each message says which.
    #[error("{}", .0.join(" "))]
    Invalid(Vec<String>),
    /// The name is taken.
    #[error("a user named {0:?} already exists")]
    Taken(String),
    /// The database failed.
    #[error(transparent)]
    Site(#[from] SiteError),
}

/// Creates a staff superuser after the same checks as registration (`keel createsuperuser`).
pub async fn create_superuser(
    database_url: &str,
    username: &str,
    email: &str,
    password: &str,
) -> Result<User, SuperuserError> {
    let mut problems = Vec::new();
    if let Err(m) = check_username(username) {
        problems.push(m);
    }
    if let Err(m) = check_email(email) {
        problems.push(m);
    }
    problems.extend(check_password(password, username, email));
    if !problems.is_empty() {
        return Err(SuperuserError::Invalid(problems));
    }
    let db = Db::connect(database_url, 1, std::time::Duration::from_secs(10)).await?;
    db.migrate().await?;
    let created = accounts::create_user(&db, username, email, password, true).await;
    db.close().await;
    match created {
        Ok(user) => Ok(user),
        Err(accounts::CreateUserError::UsernameTaken) => {
            Err(SuperuserError::Taken(username.to_owned()))
        }
        Err(accounts::CreateUserError::Site(e)) => Err(e.into()),
    }
}
