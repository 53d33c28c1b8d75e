//! keel's live events: Redis pub/sub (or an in-process broker) to Server-Sent Events at
//! `/stream/`, for thousands of clients per process.
//!
//! The classic deployment this replaces ran a Django view per browser: it opened its own
//! Redis connection, polled `get_message(timeout=1)` every 10 ms inside a
//! `StreamingHttpResponse`, and so held one gunicorn thread per open tab — 40 tabs filled
//! a `--workers 4 --threads 10` server. It sent no ids, no heartbeats and no retry hint;
//! a Redis restart ended every stream, and whatever was published meanwhile was gone.
//!
//! This crate keeps the part users rely on — `redis-cli publish demo_stream "Test Event"`
//! reaches every browser as `data: Test Event` — and changes the rest:
//!
//! | piece | owns |
//! |---|---|
//! | [`broker`] | the [`Broker`] trait; [`MemoryBroker`] and [`RedisBroker`] with the same behaviour; replay with exact loss detection |
//! | [`hub`] | one subscription per channel per process, fanned out through a bounded ring; caps and allowlist |
//! | `client` | one client's stream: retry hint, replay, live, heartbeats, end with a retry hint |
//! | [`sse`] | the wire format, encoded once per event for all clients; a parser for tests and tools |
//! | [`http`] | the axum handler, router and headers |
//! | [`error`] | [`StreamError`] → 403/400/503 with a message the user can act on |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use keel_stream::{Hub, MemoryBroker, StreamConfig};
//!
//! let hub = Hub::new(Arc::new(MemoryBroker::default()), StreamConfig::default())?;
//! let app: axum::Router = axum::Router::new().merge(keel_stream::http::router(hub.clone()));
//! hub.publish("demo_stream", "hello").await?;
//! # let _ = app; Ok(()) }
//! ```

pub mod broker;
mod client;
pub mod error;
pub mod http;
pub mod hub;
mod id;
pub mod sse;

pub use broker::{
    Broker, BrokerError, Delivery, Event, Health, MemoryBroker, MemoryBrokerConfig, RedisBroker,
    RedisBrokerConfig, Replay, Subscription,
};
pub use client::ClientStream;
pub use error::{ConfigError, StreamError};
pub use hub::{ChannelStats, ClientRequest, Hub, HubStats, StreamConfig};
pub use id::{EventId, ParseEventIdError};

/// The envelope keel puts around its own pub/sub messages (see the module for the rule).
pub mod envelope {
    pub use crate::broker::envelope::{decode, encode, MARKER};
}
