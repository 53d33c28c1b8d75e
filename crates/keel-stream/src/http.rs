//! The axum side: `/stream/` as a handler, a router, or a function from a parsed request
//! to a response.
//!
//! Wiring is one line — `app.merge(keel_stream::http::router(hub.clone()))` — or, with the
//! app's own state, `.route("/stream/", get(keel_stream::http::handler))` where
//! `Hub: FromRef<AppState>`. The request is read like this:
//!
//! - `?channel=a,b` — channels (default: `StreamConfig::default_channel`);
//! - `Last-Event-ID` header, or `?lastEventId=` for clients that cannot set headers (the
//!   header wins); an unparsable id is ignored, as if absent;
//! - client address: the [`keel_client::Client`] request extension that the server worked
//!   out once for the request (trusted proxies, see `keel-client`), else the socket peer
//!   from axum's `ConnectInfo<SocketAddr>` (serve with
//!   `into_make_service_with_connect_info`), else `0.0.0.0` (all such clients then share
//!   one per-address budget). This module never reads a forwarding header itself.
//!
//! The response carries `Content-Type: text/event-stream`, `Cache-Control: no-cache` and
//! `X-Accel-Buffering: no` (so an nginx in front does not buffer it). **Do not** put a
//! compression or request-timeout layer on this route: either would hold events back or
//! cut a healthy stream. Call [`Hub::shutdown`] when graceful shutdown starts, so open
//! streams end (with a `retry:` hint) instead of holding the server up.
//!
//! Compared with Django's `StreamingHttpResponse` around a polling generator, nothing here
//! occupies a thread while the client is idle, and the response is never buffered.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::error::StreamError;
use crate::hub::{ClientRequest, Hub};
use crate::id::EventId;

#[derive(Debug, Default, Deserialize)]
struct StreamQuery {
    channel: Option<String>,
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// The `Last-Event-ID` request header.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Reads channels and `Last-Event-ID` from a request's URI and headers.
pub fn client_request(
    uri: &Uri,
    headers: &HeaderMap,
    ip: IpAddr,
) -> Result<ClientRequest, StreamError> {
    let query = match uri.query() {
        Some(_) => {
            Query::<StreamQuery>::try_from_uri(uri)
                .map_err(|e| StreamError::BadRequest(format!("bad query string: {e}")))?
                .0
        }
        None => StreamQuery::default(),
    };
    let channels = query
        .channel
        .as_deref()
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let header_id = headers
        .get(&LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let last_event_id = header_id
        .or(query.last_event_id.as_deref())
        .and_then(|raw| match raw.parse::<EventId>() {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!(error = %e, "ignoring Last-Event-ID");
                None
            }
        });
    Ok(ClientRequest {
        channels,
        last_event_id,
        ip,
    })
}

/// Admits the client and returns the streaming SSE response, or the refusal.
pub fn sse_response(hub: &Hub, request: ClientRequest) -> Result<Response, StreamError> {
    Ok(stream_response(hub.connect(request)?))
}

/// As [`sse_response`] on channels the application chose ([`Hub::connect_unlisted`]).
pub fn sse_response_unlisted(hub: &Hub, request: ClientRequest) -> Result<Response, StreamError> {
    Ok(stream_response(hub.connect_unlisted(request)?))
}

fn stream_response(stream: crate::ClientStream) -> Response {
    let body = Body::from_stream(stream.map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

/// The client address of a request: [`keel_client::Client`], else the socket peer, else
/// `0.0.0.0`.
pub fn client_ip(request: &Request) -> IpAddr {
    let ext = request.extensions();
    ext.get::<keel_client::Client>()
        .map(|c| c.ip)
        .or_else(|| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// `GET /stream/`.
pub async fn handler(State(hub): State<Hub>, request: Request) -> Result<Response, StreamError> {
    let ip = client_ip(&request);
    let parsed = client_request(request.uri(), request.headers(), ip)?;
    sse_response(&hub, parsed)
}

/// A router with `GET /stream/` on `hub`, to `merge` into the app.
pub fn router<S>(hub: Hub) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/stream/", get(handler))
        .with_state(hub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_channels_and_ids() {
        let uri: Uri = "/stream/?channel=a,b&lastEventId=5-1".parse().unwrap();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let r = client_request(&uri, &HeaderMap::new(), ip).unwrap();
        assert_eq!(r.channels, vec!["a", "b"]);
        assert_eq!(r.last_event_id, Some(EventId::new(5, 1)));

        let mut headers = HeaderMap::new();
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("7-0"));
        let r = client_request(&uri, &headers, ip).unwrap();
        assert_eq!(r.last_event_id, Some(EventId::new(7, 0)), "header wins");

        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("garbage"));
        let uri: Uri = "/stream/".parse().unwrap();
        let r = client_request(&uri, &headers, ip).unwrap();
        assert_eq!(r.last_event_id, None);
        assert!(r.channels.is_empty());
    }
}
