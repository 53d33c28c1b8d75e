//! The router: which path goes to which handler, and the layers every request passes.
//!
//! Layer order, outermost first: panic → 500, metrics, request timeout, handler. Metrics
//! sit outside the timeout so a timed-out request is counted with the 503 it got.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;

use crate::metrics::{self, Metrics};
use crate::upstream::{self, AsyncUpstream, SyncUpstream};
use crate::{AppConfig, AppError};

#[derive(Debug)]
struct Upstreams {
    sync: SyncUpstream,
    asynchronous: AsyncUpstream,
}

pub(crate) fn router(cfg: &AppConfig, metrics: Arc<Metrics>) -> Result<Router, AppError> {
    let upstreams = Upstreams {
        sync: SyncUpstream::new(
            cfg.upstream_url.clone(),
            cfg.upstream_timeout,
            cfg.blocking_slots,
            metrics.clone(),
        ),
        asynchronous: AsyncUpstream::new(
            cfg.upstream_url.clone(),
            cfg.upstream_timeout,
            metrics.clone(),
        )?,
    };
    let upstream_routes = Router::new()
        .route("/sync/test", get(sync_test))
        .route("/async/test", get(async_test))
        // One Arc per router, not a clone of both clients and URLs per request.
        .with_state(Arc::new(upstreams));
    let mut ops_routes = Router::new().route("/metrics", get(metrics::handler));
    if cfg.site.is_none() {
        ops_routes = ops_routes.route("/", get(index));
    }
    let ops_routes = ops_routes.with_state(metrics.clone());
    let health_routes = Router::new()
        .route("/healthz", get(healthz))
        .with_state(Arc::new(Health {
            hub: cfg.stream.clone(),
            site: cfg.site.clone(),
        }));
    let mut app = Router::new()
        .merge(upstream_routes)
        .merge(ops_routes)
        .merge(health_routes);
    if let Some(hub) = &cfg.stream {
        app = app.merge(crate::events::routes(
            hub.clone(),
            cfg.publish_token.clone(),
            cfg.site.is_none(),
        ));
    }

    // The site brings its own fallback: a 404 page in its layout instead of JSON.
    let app = match &cfg.site {
        Some(site) => app.merge(site.router()),
        None => app.fallback(not_found),
    };
    let app = app
        .layer(middleware::from_fn_with_state(
            cfg.request_timeout,
            request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            metrics.clone(),
            metrics::track,
        ))
        .layer(CatchPanicLayer::custom(panic_response));

    // /stream/ and a live quiz room's events are merged after the timeout layer on
    // purpose: a live stream must never be cut by the request timeout (and gets no
    // compression either).
    let app = match (&cfg.site, &cfg.stream) {
        (Some(site), Some(_)) => app.merge(
            site.live_router()
                .layer(middleware::from_fn_with_state(
                    metrics.clone(),
                    metrics::track,
                ))
                .layer(CatchPanicLayer::custom(panic_response)),
        ),
        _ => app,
    };
    Ok(match &cfg.stream {
        Some(hub) => app.merge(
            keel_stream::http::router(hub.clone())
                .layer(middleware::from_fn_with_state(metrics, metrics::track))
                .layer(CatchPanicLayer::custom(panic_response)),
        ),
        None => app,
    })
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal server error",
    )
}

/// A JSON error body: `{"error": kind, "detail": message}`.
pub(crate) fn error(status: StatusCode, kind: &str, detail: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": kind, "detail": detail })),
    )
        .into_response()
}

/// Without the site, `/` tells a newcomer what this server answers.
async fn index() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("index.html"))
}

/// What `/healthz` looks at.
#[derive(Debug)]
struct Health {
    hub: Option<keel_stream::Hub>,
    site: Option<keel_site::Site>,
}

/// Readiness, for the edge's health check and a load balancer's: 200 `ok` while the
/// process can serve. A database that does not answer makes it 503 `degraded` with the
/// reason — the site cannot serve, so the instance should be taken out until it is back.
/// A broker that is down is `degraded` but still 200: pages and open streams still
/// answer, only publishing does not.
async fn healthz(State(health): State<Arc<Health>>) -> Response {
    let mut body = serde_json::Map::new();
    let mut status = StatusCode::OK;
    let mut degraded = false;
    if let Some(site) = &health.site {
        match site.health().await {
            Ok(()) => {
                body.insert("database".into(), "ok".into());
            }
            Err(reason) => {
                status = StatusCode::SERVICE_UNAVAILABLE;
                degraded = true;
                body.insert("database".into(), reason.into());
            }
        }
    }
    match health.hub.as_ref().map(keel_stream::Hub::health) {
        Some(keel_stream::Health::Degraded(reason)) => {
            degraded = true;
            body.insert("broker".into(), reason.into());
        }
        Some(keel_stream::Health::Ok) => {
            body.insert("broker".into(), "ok".into());
        }
        None => {}
    }
    let verdict = if degraded { "degraded" } else { "ok" };
    body.insert("status".into(), verdict.into());
    (status, Json(serde_json::Value::Object(body))).into_response()
}

async fn sync_test(State(upstreams): State<Arc<Upstreams>>) -> Response {
    match upstreams.sync.get().await {
        Ok(body) => json_body(body),
        Err(e) => {
            tracing::warn!(error = %e, route = "/sync/test", "upstream call failed");
            upstream::error_response(&e, upstreams.sync.url())
        }
    }
}

async fn async_test(State(upstreams): State<Arc<Upstreams>>) -> Response {
    match upstreams.asynchronous.get().await {
        Ok(body) => json_body(body),
        Err(e) => {
            tracing::warn!(error = %e, route = "/async/test", "upstream call failed");
            upstream::error_response(&e, upstreams.asynchronous.url())
        }
    }
}

fn json_body(body: bytes::Bytes) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {}", request.uri().path()),
    )
}

/// gunicorn's `--timeout`, without killing a worker: the request is dropped (its future
/// cancelled) and the client gets a 503 it can retry.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            &format!(
                "the request took longer than the server's {} timeout",
                humanize(limit)
            ),
        ),
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
