//! The in-memory broker: the default of `keel up`, and the reference the Redis backend is
//! tested against.
//!
//! Each channel keeps a ring of the last `retention_events` keel-published events (and,
//! optionally, none older than `retention_age`), plus the highest id it ever dropped, which
//! is what makes [`Replay::Lost`] exact: a replay after id X is lossless iff X is at least
//! that id. Ids are Redis-shaped (`<ms>-<seq>`) and made the way `XADD *` makes them.
//!
//! Unlike the classic stack there is no Redis to run for a single-process deployment; unlike
//! a plain `tokio::sync::broadcast`, events published through keel can be replayed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{BoxFuture, FutureExt};

use super::{validate_channel, Broker, BrokerError, Event, Health, Registry, Replay, Subscription};
use crate::id::EventId;

/// Settings of a [`MemoryBroker`].
#[derive(Clone, Debug)]
pub struct MemoryBrokerConfig {
    /// Events kept per channel for replay; 0 keeps nothing (publish then behaves as raw).
    pub retention_events: usize,
    /// Events older than this are dropped from the ring when the channel is next published
    /// to (the same rule as the Redis backend's trim-on-publish); `None`: no age limit.
    pub retention_age: Option<Duration>,
    /// Events buffered per channel for subscribers that are behind; past that they get
    /// a [`super::Delivery::Gap`].
    pub channel_buffer: usize,
}

impl Default for MemoryBrokerConfig {
    fn default() -> Self {
        Self {
            retention_events: 1000,
            retention_age: None,
            channel_buffer: 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Event>,
    /// Highest id dropped from this ring, if any.
    max_dropped: Option<EventId>,
}

impl Ring {
    fn drop_front(&mut self) {
        if let Some(ev) = self.events.pop_front() {
            self.max_dropped = ev.id.max(self.max_dropped);
        }
    }

    fn trim(&mut self, max_len: usize, max_age: Option<Duration>, now_ms: u64) {
        while self.events.len() > max_len {
            self.drop_front();
        }
        if let Some(age) = max_age {
            let min_ms = now_ms.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
            while self
                .events
                .front()
                .and_then(|e| e.id)
                .is_some_and(|id| id.ms() < min_ms)
            {
                self.drop_front();
            }
        }
    }
}

#[derive(Debug)]
struct State {
    last_id: EventId,
    rings: HashMap<Arc<str>, Ring>,
}

/// An in-process broker with a bounded replay ring per channel. Cheap to clone; clones
/// share the same channels.
#[derive(Clone, Debug)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: MemoryBrokerConfig,
    registry: Registry,
    state: Mutex<State>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl MemoryBroker {
    /// A broker with `config`.
    pub fn new(config: MemoryBrokerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: Registry::new(config.channel_buffer),
                config,
                state: Mutex::new(State {
                    last_id: EventId::ZERO,
                    rings: HashMap::new(),
                }),
            }),
        }
    }

    fn do_publish(
        &self,
        channel: &str,
        payload: &str,
        keep: bool,
    ) -> Result<Option<EventId>, BrokerError> {
        validate_channel(channel)?;
        let name = self
            .inner
            .registry
            .channel_name(channel)
            .unwrap_or_else(|| Arc::from(channel));
        let cfg = &self.inner.config;
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let keep = keep && cfg.retention_events > 0;
        let id = if keep {
            let now = now_ms();
            let id = state.last_id.next_after(now);
            state.last_id = id;
            let ring = state.rings.entry(name.clone()).or_default();
            ring.events.push_back(Event {
                channel: name.clone(),
                id: Some(id),
                data: Arc::from(payload),
            });
            ring.trim(cfg.retention_events, cfg.retention_age, now);
            Some(id)
        } else {
            None
        };
        // Sent while holding the lock so that subscribers see events in id order even with
        // concurrent publishers (the same guarantee the Redis script gives).
        self.inner.registry.send(Event {
            channel: name,
            id,
            data: Arc::from(payload),
        });
        Ok(id)
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new(MemoryBrokerConfig::default())
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<Option<EventId>, BrokerError>> {
        let result = self.do_publish(channel, payload, true);
        async move { result }.boxed()
    }

    fn publish_raw<'a>(
        &'a self,
        channel: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        let result = self.do_publish(channel, payload, false).map(|_| ());
        async move { result }.boxed()
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>> {
        let result = validate_channel(channel).map(|()| self.inner.registry.subscribe(channel).0);
        async move { result }.boxed()
    }

    fn replay<'a>(
        &'a self,
        channel: &'a str,
        after: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>> {
        let result = validate_channel(channel).map(|()| {
            let state = self
                .inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(ring) = state.rings.get(channel) else {
                return Replay::Events(Vec::new());
            };
            if let (Some(after), Some(dropped)) = (after, ring.max_dropped) {
                if after < dropped {
                    return Replay::Lost;
                }
            }
            let start = match after {
                Some(after) => ring
                    .events
                    .partition_point(|e| e.id.is_some_and(|id| id <= after)),
                None => 0,
            };
            Replay::Events(
                ring.events
                    .iter()
                    .skip(start)
                    .take(limit)
                    .cloned()
                    .collect(),
            )
        });
        async move { result }.boxed()
    }

    fn health(&self) -> Health {
        Health::Ok
    }
}
