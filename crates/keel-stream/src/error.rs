//! Errors of the stream layer, and how they become HTTP answers.
//!
//! Every refusal names its cause and what the user can do, with the status a proxy or a
//! load balancer understands: 403 for a channel that is not on the allowlist, 400 for a
//! malformed request, 503 + `Retry-After` for capacity and for a broker that is down.
//! (Note for browser code: `EventSource` does not reconnect after a non-200 answer, so
//! keel only refuses *before* the stream starts; once it has started, trouble ends the
//! stream with a `retry:` hint instead, which the browser does follow.)

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::broker::BrokerError;

/// Why a client could not be given a stream (or an event could not be published).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The channel is valid but not on this server's allowlist → 403.
    #[error("channel {channel:?} is not available on this server; allowed channels: {allowed}")]
    ChannelNotAllowed {
        /// The requested channel.
        channel: String,
        /// The allowlist, comma separated.
        allowed: String,
    },
    /// The channel list cannot be used (bad name, too many) → 400.
    #[error("{0}")]
    BadRequest(String),
    /// The process serves its maximum number of streams → 503.
    #[error("this server is at its limit of {max} live-event clients (setting stream.max_clients); retry later")]
    TooManyClients {
        /// The configured process-wide cap.
        max: usize,
    },
    /// This client address already has its maximum number of streams → 503.
    #[error("too many live-event connections from your address (limit {max}, setting stream.max_clients_per_ip; raise it or set 0 when many clients share an address behind a NAT or proxy); close other tabs or retry later")]
    TooManyClientsForAddress {
        /// The configured per-address cap.
        max: usize,
    },
    /// The server is shutting down → 503.
    #[error("the server is shutting down; retry shortly")]
    ShuttingDown,
    /// The broker failed (mostly: Redis is down) → 503 when unavailable, 500 otherwise.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl StreamError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            StreamError::ChannelNotAllowed { .. } => StatusCode::FORBIDDEN,
            StreamError::BadRequest(_) => StatusCode::BAD_REQUEST,
            StreamError::Broker(BrokerError::InvalidChannel(_)) => StatusCode::BAD_REQUEST,
            StreamError::Broker(BrokerError::Backend(_) | BrokerError::Config(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            StreamError::TooManyClients { .. }
            | StreamError::TooManyClientsForAddress { .. }
            | StreamError::ShuttingDown
            | StreamError::Broker(BrokerError::Unavailable { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl IntoResponse for StreamError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The cause goes to the log, not to the client.
            tracing::error!(error = %self, "live events: internal error");
            "internal error in the live-event service\n".to_owned()
        } else {
            tracing::debug!(error = %self, %status, "live events: request refused");
            format!("{self}\n")
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// A [`crate::StreamConfig`] value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream config: `{key}` {problem}")]
pub struct ConfigError {
    /// The offending key, as named in `keel.toml`'s `[stream]` table.
    pub key: &'static str,
    /// What is wrong with it.
    pub problem: String,
}
