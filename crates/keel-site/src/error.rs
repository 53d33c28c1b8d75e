//! What can go wrong in the site, and what the visitor sees when it does.
//!
//! A handler returns `Err(SiteError)`; its response carries an [`ErrorPage`] extension
//! and no body, and the site's outer layer renders `error.html` for it — so every error,
//! 404 and 500 alike, is a friendly page in the site's own layout. Internal details are
//! logged, never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Errors of the site crate.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// No such page (or a post that is not published).
    #[error("not found")]
    NotFound,
    /// The visitor may not do this; the message says why.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many attempts; try again after the given number of seconds.
    #[error("too many attempts: {message}")]
    TooMany {
        /// Seconds until the next attempt may pass.
        retry_after: u64,
        /// What the visitor reads.
        message: String,
    },
    /// The request is malformed; the message says how.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request does not fit the current state (an answer to a finished attempt);
    /// nothing was changed, and the message says why.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request body is over the site's form size cap.
    #[error("request body too large")]
    TooLarge,
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The database could not be reached.
    #[error("could not connect to the database {url}: {source}")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed or an applied one was changed.
    #[error("migrations failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A template failed to load or render.
    #[error("template error: {0:#}")]
    Template(#[from] minijinja::Error),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Anything else that is our fault, not the visitor's.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The page to render for an error response; the site's error layer reads it.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPage {
    pub(crate) status: StatusCode,
    pub(crate) title: &'static str,
    pub(crate) message: String,
}

impl SiteError {
    /// Whether this is the database being unreachable (down, restarting, or every
    /// connection busy past the acquire timeout) rather than a fault in a query: the
    /// visitor gets 503 and the balancer in front may try another instance.
    pub fn database_unavailable(&self) -> bool {
        match self {
            SiteError::Connect { .. } => true,
            SiteError::Db(e) => unavailable(e),
            _ => false,
        }
    }

    fn page(&self) -> ErrorPage {
        let (status, title, message) = match self {
            SiteError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address. It may have moved, or the link may be mistyped."
                    .to_owned(),
            ),
            SiteError::Forbidden(why) => (StatusCode::FORBIDDEN, "Forbidden", why.clone()),
            SiteError::TooMany { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                message.clone(),
            ),
            SiteError::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", why.clone()),
            SiteError::Conflict(why) => (StatusCode::CONFLICT, "Not possible now", why.clone()),
            SiteError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form you sent is larger than this site accepts.".to_owned(),
            ),
            e if e.database_unavailable() => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The site cannot reach its database right now. Nothing you sent was saved; please try again in a moment."
                    .to_owned(),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not finish this request. It has been logged; please try again in a moment."
                    .to_owned(),
            ),
        };
        ErrorPage {
            status,
            title,
            message,
        }
    }
}

impl IntoResponse for SiteError {
    fn into_response(self) -> Response {
        let page = self.page();
        let unavailable = self.database_unavailable();
        if unavailable {
            // One line per request at warn: an outage is the database's story, not a bug here.
            tracing::warn!(error = %self, "site request refused: database unavailable");
        } else if page.status.is_server_error() {
            tracing::error!(error = %self, "site request failed");
        }
        let mut response = page.status.into_response();
        if unavailable {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let SiteError::TooMany { retry_after, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response.extensions_mut().insert(page);
        response
    }
}

/// sqlx errors that mean "no database right now": the pool could not hand out a working
/// connection in time, the socket failed, or PostgreSQL said it is shutting down or
/// starting (SQLSTATE classes 08, connection exception, and 57P, operator intervention).
pub(crate) fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}
