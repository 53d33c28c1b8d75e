//! The site test harness shared by `site.rs` and `quizzes.rs`: the app server on port 0
//! with the site mounted on SQLite or on a fresh PostgreSQL database, and a [`Visitor`]
//! that keeps its cookies like one browser profile.
//!
//! Without PostgreSQL the PG half says so and skips, except under `CI=true`, where that
//! is a failure. `KEEL_TEST_POSTGRES_URL` points at another server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use keel_app::{App, AppConfig};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use sqlx::Row;

pub const ADMIN_PASSWORD: &str = "tidal-quartz-meadow-91";
pub const USER_PASSWORD: &str = "amber-violin-harbor-27";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running app with the site, its database, and what must be cleaned up.
pub struct Site {
    pub base: String,
    pub backend: Backend,
    pub db: keel_site::Db,
    pub hub: keel_stream::Hub,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
    pg: Option<PgDatabase>,
}

/// A fresh PostgreSQL database, dropped (connections and all) when the test ends.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await: a thread with its own small runtime does the query.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(db) =
                    keel_site::Db::connect(&admin_url, 1, std::time::Duration::from_secs(10)).await
                {
                    let _ = sqlx::query(&sql).execute(db.pool()).await;
                    db.close().await;
                }
            });
        })
        .join();
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("KEEL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub async fn fresh_pg_database() -> Option<PgDatabase> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let admin_url = pg_admin_url();
    let admin =
        match keel_site::Db::connect(&admin_url, 1, std::time::Duration::from_secs(10)).await {
            Ok(db) => db,
            Err(e) => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "PostgreSQL is not reachable at {admin_url} and CI=true: {e}"
                );
                eprintln!("SKIPPED: PostgreSQL not reachable at {admin_url}: {e}");
                return None;
            }
        };
    let name = format!(
        "keel_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin.pool())
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
    Some(PgDatabase { admin_url, name })
}

impl Site {
    pub async fn start(backend: Backend) -> Option<Site> {
        Site::start_with(backend, true).await
    }

    pub async fn start_with(backend: Backend, sample_data: bool) -> Option<Site> {
        Site::start_configured(backend, |cfg| cfg.sample_data = sample_data).await
    }

    /// A site whose configuration `configure` adjusts (the interviewer's model, say).
    pub async fn start_configured(
        backend: Backend,
        configure: impl FnOnce(&mut keel_site::SiteConfig),
    ) -> Option<Site> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("keel.db").display()),
                None,
            ),
            Backend::Postgres => {
                let pg = fresh_pg_database().await?;
                let base = pg_admin_url();
                let url = match base.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{}", pg.name),
                    None => unreachable!("admin URL has a path"),
                };
                (url, Some(pg))
            }
        };
        let broker = Arc::new(keel_stream::MemoryBroker::new(
            keel_stream::MemoryBrokerConfig::default(),
        ));
        let hub = keel_stream::Hub::new(
            broker,
            keel_stream::StreamConfig {
                allowed_channels: vec!["demo_stream".into(), "site".into()],
                ..keel_stream::StreamConfig::default()
            },
        )
        .unwrap();
        let mut site_cfg = keel_site::SiteConfig::new(database_url.clone());
        site_cfg.hub = Some(hub.clone());
        configure(&mut site_cfg);
        let site = keel_site::Site::open(site_cfg).await.unwrap();
        keel_site::create_superuser(&database_url, "admin", "admin@example.com", ADMIN_PASSWORD)
            .await
            .unwrap();

        let mut cfg = AppConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            "http://127.0.0.1:9/todos/1".parse().unwrap(),
        );
        cfg.stream = Some(hub.clone());
        cfg.site = Some(site.clone());
        let app = App::build(cfg).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Some(Site {
            base,
            backend,
            db: site.db().clone(),
            hub,
            stop: Some(stop),
            _dir: dir,
            pg,
        })
    }

    pub fn visitor(&self) -> Visitor {
        Visitor::new(&self.base)
    }

    pub async fn staff(&self) -> Visitor {
        let mut v = self.visitor();
        v.login("admin", ADMIN_PASSWORD).await;
        v
    }

    pub async fn count(&self, table: &str) -> i64 {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(self.db.pool())
            .await
            .unwrap();
        row.try_get("n").unwrap()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The PG database is dropped after the server was told to stop.
        let _ = self.pg.take();
    }
}

/// A client that keeps its cookies, like one browser profile.
pub struct Visitor {
    pub base: String,
    pub client: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// Sent as X-Real-IP: the app trusts it from loopback (the edge in front).
    pub address: String,
}

#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf_token in the page:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> &Page {
        assert_eq!(self.status, status, "page:\n{}", self.body);
        self
    }

    #[track_caller]
    pub fn assert_has(&self, text: &str) -> &Page {
        assert!(
            self.body.contains(text),
            "expected {text:?} in the page ({}):\n{}",
            self.status,
            self.body
        );
        self
    }

    #[track_caller]
    pub fn assert_lacks(&self, text: &str) -> &Page {
        assert!(
            !self.body.contains(text),
            "did not expect {text:?} in the page:\n{}",
            self.body
        );
        self
    }
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        static N: AtomicUsize = AtomicUsize::new(1);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Visitor {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            address: format!("198.51.100.{}", n % 250 + 1),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request.header("x-real-ip", &self.address);
        if !self.cookies.is_empty() {
            request = request.header(COOKIE, self.cookie_header());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts a form as-is (no token added).
    pub async fn post_raw(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Loads `form_page` for its CSRF token, then posts `form` with it to `path`.
    pub async fn submit(&mut self, form_page: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.get(form_page).await.csrf();
        let mut fields = vec![("csrf_token", token.as_str())];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields).await
    }

    pub async fn login(&mut self, username: &str, password: &str) -> Page {
        let page = self
            .submit(
                "/accounts/login/",
                "/accounts/login/",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "login failed:\n{}",
            page.body
        );
        page
    }

    pub async fn register(&mut self, username: &str) -> Page {
        self.submit(
            "/accounts/register/",
            "/accounts/register/",
            &[
                ("username", username),
                ("email", &format!("{username}@example.com")),
                ("password", USER_PASSWORD),
                ("password2", USER_PASSWORD),
            ],
        )
        .await
    }

    pub async fn new_post(&mut self, title: &str, tags: &str, body: &str, published: bool) -> Page {
        let mut form = vec![
            ("title", title),
            ("slug", ""),
            ("tags", tags),
            ("body", body),
            ("action", "save"),
        ];
        if published {
            form.push(("published", "on"));
        }
        self.submit("/admin/posts/new/", "/admin/posts/new/", &form)
            .await
    }
}

/// Runs a test body on both databases.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(site) = $crate::support::Site::start($crate::support::Backend::Sqlite).await {
                    super::$name(&site).await;
                }
            }
        )*}
        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(site) = $crate::support::Site::start($crate::support::Backend::Postgres).await {
                    super::$name(&site).await;
                }
            }
        )*}
    };
}
