//! Request metrics and the `/metrics` endpoint, in Prometheus text format 0.0.4.
//!
//! Routes are labelled by their *pattern* (axum's matched path), never by the raw URL,
//! so a scanner requesting a million random paths adds one series (`route="unmatched"`),
//! not a million. gunicorn has no metrics of its own (it needs statsd); here they are
//! always on and cost a few atomic increments per request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// Which client made an upstream call.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Client {
    Sync,
    Async,
}

/// How an upstream call ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Ok,
    Unreachable,
    BadStatus,
    BadBody,
    Timeout,
}

// Label values are the snake_case names Prometheus users expect, not Rust's variant names.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    client: &'static str,
    outcome: &'static str,
}

/// The registry plus handles to each metric; shared by every request.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    upstream: Family<UpstreamLabels, Counter>,
    blocking_busy: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s in doublings: covers a cached page and a slow upstream alike.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with keel's request metrics registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keel");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request received to response headers ready, by route pattern",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled right now",
            in_flight.clone(),
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Calls to the configured upstream, by client and outcome",
            upstream.clone(),
        );
        let blocking_busy = Gauge::default();
        registry.register(
            "blocking_pool_busy",
            "Blocking-pool slots in use by synchronous handlers",
            blocking_busy.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            upstream,
            blocking_busy,
        }
    }

    pub(crate) fn upstream_call(&self, client: Client, outcome: Outcome) {
        let client = match client {
            Client::Sync => "sync",
            Client::Async => "async",
        };
        let outcome = match outcome {
            Outcome::Ok => "ok",
            Outcome::Unreachable => "unreachable",
            Outcome::BadStatus => "bad_status",
            Outcome::BadBody => "bad_body",
            Outcome::Timeout => "timeout",
        };
        self.upstream
            .get_or_create(&UpstreamLabels { client, outcome })
            .inc();
    }

    pub(crate) fn blocking_busy(&self) -> &Gauge {
        &self.blocking_busy
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Middleware: counts, times and tracks in-flight requests.
pub(crate) async fn track(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    metrics.in_flight.inc();
    // Decrement even if the client goes away and this future is dropped mid-request.
    let _guard = InFlight(&metrics.in_flight);
    let response = next.run(request).await;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`.
pub(crate) async fn handler(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "could not encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
