//! The broker abstraction: where events come from and where the ones keel promised to keep
//! are kept.
//!
//! A [`Broker`] does four things — publish (stored for replay, with an [`EventId`]), publish
//! raw (what `redis-cli publish` does: no id, not stored), subscribe, and replay "everything
//! after id X" — and reports its [`Health`]. Two backends implement it with the same
//! behaviour, checked by one test suite (`tests/broker_contract.rs`):
//!
//! - [`MemoryBroker`]: a bounded ring per channel, for `keel up` and tests.
//! - [`RedisBroker`]: pub/sub for live delivery plus a Redis Stream for replay, one pub/sub
//!   connection per process that reconnects and resubscribes by itself.
//!
//! Both fan events in through the same [`Subscription`] type (a bounded broadcast per
//! channel), so "a consumer that falls behind sees a [`Delivery::Gap`] instead of making
//! memory grow" is one piece of code, not two.
//!
//! **How this differs from the classic design.** The Django view opened one Redis
//! connection per browser and polled `get_message(timeout=1)` in a loop; a Redis restart
//! killed every stream, and what was published meanwhile was gone. Here a process holds one
//! subscription per channel whatever the number of browsers (the [`crate::Hub`] sees to
//! that), the connection heals itself, and events published through keel are in a store
//! that a reconnecting client can replay from.

pub(crate) mod envelope;
mod memory;
mod redis;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use crate::id::EventId;

pub use self::memory::{MemoryBroker, MemoryBrokerConfig};
pub use self::redis::{RedisBroker, RedisBrokerConfig};

/// One message on a channel, as a subscriber receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The channel it was published on.
    pub channel: Arc<str>,
    /// `Some` for events published through keel and kept for replay; `None` for raw
    /// messages (a plain `PUBLISH` from any Redis client), which are delivered once and
    /// never replayed.
    pub id: Option<EventId>,
    /// The payload, as text (SSE is UTF-8; invalid bytes from a raw publisher are replaced
    /// with U+FFFD).
    pub data: Arc<str>,
}

/// What a [`Subscription`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The next event, in publish order.
    Event(Event),
    /// The subscriber fell more than the channel buffer behind and `missed` events were
    /// dropped for it. Keel events among them can be fetched with [`Broker::replay`] from
    /// the last id the subscriber saw; raw ones are gone.
    Gap {
        /// How many events were skipped.
        missed: u64,
    },
}

/// A live feed of one channel from a broker. Dropping it ends the interest; the broker
/// keeps its own subscription (at most one per channel) for the life of the broker.
#[derive(Debug)]
pub struct Subscription {
    channel: Arc<str>,
    rx: broadcast::Receiver<Event>,
}

impl Subscription {
    /// The channel this feed is for.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next delivery; `None` once the broker has been dropped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        match self.rx.recv().await {
            Ok(event) => Some(Delivery::Event(event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Delivery::Gap { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The answer to [`Broker::replay`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The kept events after the given id, oldest first, at most `limit` of them. Fewer
    /// than `limit` means the caller has reached the newest kept event.
    Events(Vec<Event>),
    /// Some event after the given id is no longer kept (older than the retention length or
    /// age): the caller cannot be brought up to date without a hole.
    Lost,
}

/// Whether the broker can deliver and store right now (for `/healthz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Connected.
    Ok,
    /// Not connected; live streams stay open and resume when the broker is back.
    Degraded(String),
}

impl Health {
    /// `true` for [`Health::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Health::Ok)
    }
}

/// Errors of a broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backend cannot be reached now (Redis down, connection lost, command timed out).
    /// Worth retrying later; HTTP callers answer 503.
    #[error("event broker unavailable: {reason}")]
    Unavailable {
        /// What went wrong, for logs and the 503 body.
        reason: String,
    },
    /// The channel name cannot be used (empty, too long, or with characters outside
    /// `A-Z a-z 0-9 _ - . :`).
    #[error("invalid channel name {0:?}: use 1-128 characters from A-Z a-z 0-9 _ - . :")]
    InvalidChannel(String),
    /// The backend answered with something keel does not understand or an error that is
    /// not about connectivity (wrong key type, script error, …).
    #[error("event broker error: {0}")]
    Backend(String),
    /// The configuration given to the broker is unusable.
    #[error("invalid broker configuration: {0}")]
    Config(String),
}

impl BrokerError {
    /// `true` for [`BrokerError::Unavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, BrokerError::Unavailable { .. })
    }
}

/// A source of live events and a store of the ones keel publishes.
///
/// Object safe (`Arc<dyn Broker>`); the methods return boxed futures.
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// Publishes `payload` on `channel` and keeps it for replay. Returns its id, or `None`
    /// when the broker is configured to keep nothing (retention 0), in which case this is
    /// a raw publish. Errors with [`BrokerError::Unavailable`] while the backend is down.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<Option<EventId>, BrokerError>>;

    /// Publishes without an id and without keeping it: exactly what
    /// `redis-cli publish CHANNEL PAYLOAD` does.
    fn publish_raw<'a>(
        &'a self,
        channel: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// A live feed of `channel`. Several calls for one channel share the broker's single
    /// subscription to it.
    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>>;

    /// The kept events of `channel` after `after` (`None`: from the oldest kept), at most
    /// `limit`, or [`Replay::Lost`] if some event after `after` has been dropped.
    fn replay<'a>(
        &'a self,
        channel: &'a str,
        after: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>>;

    /// Connected or not, now.
    fn health(&self) -> Health;
}

/// Longest accepted channel name.
pub const MAX_CHANNEL_LEN: usize = 128;

/// Checks a channel name: 1–128 characters from `A-Z a-z 0-9 _ - . :`. Keeping names this
/// plain means they can be put in a Redis key, a log line or an error message unescaped.
pub fn validate_channel(channel: &str) -> Result<(), BrokerError> {
    let ok = !channel.is_empty()
        && channel.len() <= MAX_CHANNEL_LEN
        && channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidChannel(
            channel.chars().take(MAX_CHANNEL_LEN + 1).collect(),
        ))
    }
}

/// The fan-in point shared by both backends: one bounded broadcast per channel.
#[derive(Debug)]
pub(crate) struct Registry {
    capacity: usize,
    senders: Mutex<HashMap<Arc<str>, broadcast::Sender<Event>>>,
}

impl Registry {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            senders: Mutex::new(HashMap::new()),
        }
    }

    /// A new feed of `channel`, and whether this is the first interest ever shown in it
    /// (the backend then has to start listening).
    pub(crate) fn subscribe(&self, channel: &str) -> (Subscription, bool) {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((name, tx)) = senders.get_key_value(channel) {
            return (
                Subscription {
                    channel: name.clone(),
                    rx: tx.subscribe(),
                },
                false,
            );
        }
        let name: Arc<str> = Arc::from(channel);
        let (tx, rx) = broadcast::channel(self.capacity);
        senders.insert(name.clone(), tx);
        (Subscription { channel: name, rx }, true)
    }

    /// The interned name of a known channel (so events share one allocation of it).
    pub(crate) fn channel_name(&self, channel: &str) -> Option<Arc<str>> {
        let senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        senders.get_key_value(channel).map(|(k, _)| k.clone())
    }

    /// Delivers to every feed of the event's channel; nobody listening is not an error.
    pub(crate) fn send(&self, event: Event) {
        let senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = senders.get(&*event.channel) {
            // Err only means no receiver right now, which is fine for pub/sub.
            let _ = tx.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        for ok in ["demo_stream", "a", "news.sport:live-1", &"x".repeat(128)] {
            assert!(validate_channel(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\nb", "é", "a*", &"x".repeat(129)] {
            assert!(validate_channel(bad).is_err(), "{bad}");
        }
    }
}
