//! Calling the outside JSON API: a blocking client on a bounded pool, and a pooled async
//! client. Both map every failure to the same answer: 502 for an upstream that is down,
//! answers 4xx/5xx or sends something that is not JSON, and 504 for one that is too slow.
//!
//! The blocking side is the classic Django view (`requests.get` inside a gunicorn
//! thread): `ureq` runs on tokio's blocking threads, at most `blocking_slots` at a time;
//! requests beyond that wait for a slot without holding any async worker. The async side
//! is what Django's `httpx.AsyncClient` view should have been: one shared client whose
//! connections are reused, instead of a new client (and TCP handshake) per request.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::metrics::{Client, Metrics, Outcome};
use crate::AppError;

/// Largest upstream body accepted; a todo is ~80 bytes, so this only stops a runaway.
const MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// Idle pooled connections are dropped after this long: below the shortest keep-alive a
/// common upstream uses (gunicorn's 2 s; uvicorn 5 s, nginx 75 s), so the pool rarely
/// hands out a connection the upstream has already closed. When it does anyway, the
/// async client retries once (see [`AsyncUpstream::get`]).
const POOL_IDLE: Duration = Duration::from_millis(1500);

/// Why an upstream call did not produce a JSON body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("could not reach the upstream: {0}")]
    Unreachable(String),
    #[error("the upstream answered with status {0}")]
    BadStatus(u16),
    #[error("the upstream's body was unreadable or not JSON: {0}")]
    BadBody(String),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
}

impl UpstreamError {
    fn outcome(&self) -> Outcome {
        match self {
            UpstreamError::Unreachable(_) => Outcome::Unreachable,
            UpstreamError::BadStatus(_) => Outcome::BadStatus,
            UpstreamError::BadBody(_) => Outcome::BadBody,
            UpstreamError::Timeout(_) => Outcome::Timeout,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The JSON error body every upstream failure gets.
pub(crate) fn error_response(error: &UpstreamError, upstream: &url::Url) -> Response {
    let status = error.status();
    let kind = match error {
        UpstreamError::Timeout(_) => "upstream_timeout",
        UpstreamError::Unreachable(_) => "upstream_unreachable",
        UpstreamError::BadStatus(_) => "upstream_bad_status",
        UpstreamError::BadBody(_) => "upstream_bad_body",
    };
    let body = serde_json::json!({
        "error": kind,
        "detail": error.to_string(),
        "upstream": redact(upstream),
    });
    (status, axum::Json(body)).into_response()
}

/// The URL without credentials, safe to show a client or a log.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("****"));
    }
    shown.to_string()
}

/// Checks that the body is JSON without building a value tree for it.
fn validate_json(body: &[u8]) -> Result<(), UpstreamError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| UpstreamError::BadBody(e.to_string()))
}

/// The blocking client and the slots that bound how many run at once.
#[derive(Debug, Clone)]
pub(crate) struct SyncUpstream {
    agent: ureq::Agent,
    slots: Arc<Semaphore>,
    url: url::Url,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl SyncUpstream {
    pub(crate) fn new(
        url: url::Url,
        timeout: Duration,
        slots: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // ureq keeps 3 idle connections per host by default; every slot may want one.
            .max_idle_connections(slots.max(1))
            .max_idle_connections_per_host(slots.max(1))
            .max_idle_age(POOL_IDLE)
            .build();
        SyncUpstream {
            agent: ureq::Agent::new_with_config(config),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            url,
            timeout,
            metrics,
        }
    }

    pub(crate) fn url(&self) -> &url::Url {
        &self.url
    }

    /// Waits for a blocking slot, then performs the GET on a blocking thread.
    pub(crate) async fn get(&self) -> Result<Bytes, UpstreamError> {
        // The semaphore is never closed, so acquiring only fails if that changes.
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("blocking pool closed: {e}")))?;
        let this = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            this.metrics.blocking_busy().inc();
            let result = this.get_blocking();
            this.metrics.blocking_busy().dec();
            drop(permit);
            result
        })
        .await;
        let result = joined
            .map_err(|e| UpstreamError::Unreachable(format!("blocking task failed: {e}")))
            .and_then(|r| r);
        self.metrics.upstream_call(
            Client::Sync,
            result
                .as_ref()
                .map_or_else(UpstreamError::outcome, |_| Outcome::Ok),
        );
        result
    }

    fn get_blocking(&self) -> Result<Bytes, UpstreamError> {
        let mut response = self
            .agent
            .get(self.url.as_str())
            .call()
            .map_err(|e| self.map_error(e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(UpstreamError::BadStatus(status));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| match self.map_error(e) {
                UpstreamError::Unreachable(msg) => UpstreamError::BadBody(msg),
                other => other,
            })?;
        validate_json(&body)?;
        Ok(Bytes::from(body))
    }

    fn map_error(&self, error: ureq::Error) -> UpstreamError {
        match error {
            ureq::Error::Timeout(_) => UpstreamError::Timeout(self.timeout),
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                UpstreamError::Timeout(self.timeout)
            }
            ureq::Error::StatusCode(code) => UpstreamError::BadStatus(code),
            other => UpstreamError::Unreachable(other.to_string()),
        }
    }
}

/// One shared, pooled async client.
#[derive(Debug, Clone)]
pub(crate) struct AsyncUpstream {
    client: reqwest::Client,
    url: url::Url,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl AsyncUpstream {
    pub(crate) fn new(
        url: url::Url,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AppError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| AppError::Client {
                which: "async",
                source: Box::new(e),
            })?;
        Ok(AsyncUpstream {
            client,
            url,
            timeout,
            metrics,
        })
    }

    pub(crate) fn url(&self) -> &url::Url {
        &self.url
    }

    pub(crate) async fn get(&self) -> Result<Bytes, UpstreamError> {
        let mut result = self.try_get().await;
        // A pooled connection the upstream closed while idle fails before any byte of
        // the response arrives; a GET is idempotent, so one retry on a new connection is
        // safe (hyper's "connection closed before message completed").
        if let Err(Retry::Stale(_)) = &result {
            result = self.try_get().await;
        }
        let result = result.map_err(|e| match e {
            Retry::Stale(e) | Retry::Final(e) => e,
        });
        self.metrics.upstream_call(
            Client::Async,
            result
                .as_ref()
                .map_or_else(UpstreamError::outcome, |_| Outcome::Ok),
        );
        result
    }

    async fn try_get(&self) -> Result<Bytes, Retry> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| self.map_error(e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Retry::Final(UpstreamError::BadStatus(status)));
        }
        if response.content_length().unwrap_or(0) > MAX_BODY_BYTES {
            return Err(Retry::Final(UpstreamError::BadBody(format!(
                "body larger than {MAX_BODY_BYTES} bytes"
            ))));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| match self.map_error(e) {
                Retry::Final(UpstreamError::Unreachable(msg))
                | Retry::Stale(UpstreamError::Unreachable(msg)) => {
                    Retry::Final(UpstreamError::BadBody(msg))
                }
                other => Retry::Final(other.into_inner()),
            })?;
        validate_json(&body).map_err(Retry::Final)?;
        Ok(body)
    }

    fn map_error(&self, error: reqwest::Error) -> Retry {
        if error.is_timeout() {
            return Retry::Final(UpstreamError::Timeout(self.timeout));
        }
        let stale = !error.is_connect() && is_incomplete_message(&error);
        let detail = error_chain(&error);
        let error = UpstreamError::Unreachable(detail);
        if stale {
            Retry::Stale(error)
        } else {
            Retry::Final(error)
        }
    }
}

enum Retry {
    /// The pooled connection was dead; a fresh one may work.
    Stale(UpstreamError),
    Final(UpstreamError),
}

impl Retry {
    fn into_inner(self) -> UpstreamError {
        match self {
            Retry::Stale(e) | Retry::Final(e) => e,
        }
    }
}

fn is_incomplete_message(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
            return hyper_error.is_incomplete_message();
        }
        source = cause.source();
    }
    false
}

/// reqwest's top-level message is "error sending request"; the cause is what helps.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
