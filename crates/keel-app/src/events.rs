//! Live events in the app: `/stream/` (from `keel-stream`), the `/events/` page that shows
//! it, and `POST /api/publish` for hosts that cannot reach Redis.
//!
//! The classic Django view held a Redis connection and a polling loop per browser; here
//! the stream crate keeps one subscription per channel for the whole process, and this
//! module only adds the HTTP surface around it.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keel_stream::{BrokerError, Hub, StreamError};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Routes that belong inside the app's usual layers (timeout included). With a site, the
/// site serves `/events/` in its own layout (`with_page` false).
pub(crate) fn routes(hub: Hub, publish_token: Option<String>, with_page: bool) -> Router {
    let router = Router::new().route("/api/publish", post(publish));
    let router = if with_page {
        router.route("/events/", get(events_page))
    } else {
        router
    };
    router.with_state(Publishing { hub, publish_token })
}

#[derive(Clone)]
struct Publishing {
    hub: Hub,
    publish_token: Option<String>,
}

async fn events_page() -> Html<&'static str> {
    Html(include_str!("events.html"))
}

#[derive(Debug, Deserialize)]
struct PublishRequest {
    channel: String,
    message: String,
}

async fn publish(
    State(publishing): State<Publishing>,
    headers: HeaderMap,
    body: Result<Json<PublishRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(expected) = publishing.publish_token.as_deref() else {
        return crate::routes::error(
            StatusCode::NOT_FOUND,
            "publishing_disabled",
            "publishing over HTTP is off: set stream.publish_token (KEEL_PUBLISH_TOKEN) to enable it",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time: the time taken says nothing about where a guess differs.
    if !given.is_some_and(|token| bool::from(token.as_bytes().ct_eq(expected.as_bytes()))) {
        let mut response = crate::routes::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the publish token as `Authorization: Bearer <token>`",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            return crate::routes::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!(
                    "expected a JSON body {{\"channel\": \"…\", \"message\": \"…\"}}: {}",
                    rejection.body_text()
                ),
            )
        }
    };
    let allowed = &publishing.hub.config().allowed_channels;
    if !allowed.contains(&request.channel) {
        return crate::routes::error(
            StatusCode::FORBIDDEN,
            "channel_not_allowed",
            &format!(
                "channel {:?} is not in stream.channels ({})",
                request.channel,
                allowed.join(", ")
            ),
        );
    }
    match publishing
        .hub
        .publish(&request.channel, &request.message)
        .await
    {
        Ok(id) => Json(serde_json::json!({
            "channel": request.channel,
            "id": id.map(|id| id.to_string()),
        }))
        .into_response(),
        Err(StreamError::Broker(BrokerError::Unavailable { reason })) => crate::routes::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            &format!("the message was not published: the broker is unavailable ({reason})"),
        ),
        Err(error) => {
            tracing::warn!(%error, "publish failed");
            crate::routes::error(
                StatusCode::BAD_REQUEST,
                "publish_failed",
                &error.to_string(),
            )
        }
    }
}
