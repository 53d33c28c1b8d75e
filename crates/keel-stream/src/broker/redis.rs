//! The Redis backend: pub/sub for live delivery, a Redis Stream per channel for replay.
//!
//! **Client choice.** redis-rs (the `redis` crate, maintained under the redis-rs
//! organisation) since 0.27 has what a long-lived subscriber needs: a
//! [`ConnectionManager`] over a RESP3 connection forwards pub/sub pushes to a channel
//! (`ConnectionManagerConfig::set_push_sender`), reconnects with backoff when the socket
//! drops, and with `set_automatic_resubscription` re-sends `SUBSCRIBE` for every channel it
//! had on the new connection. A plain `aio::PubSub` (and `Client::get_async_pubsub`) does
//! none of that — it ends on the first disconnect — which is the pitfall DESIGN.md
//! records. `fred` also resubscribes by itself, but brings a larger API and dependency
//! tree for no gain here; redis-rs is the client most of the ecosystem already compiles.
//!
//! **Connections.** One `ConnectionManager` for pub/sub, shared by every channel and every
//! client of the process (the [`crate::Hub`] keeps one subscription per channel on top of
//! it), and one for commands (`PUBLISH`/script, `XRANGE`). A supervisor task pings both
//! every `health_interval`: that is what [`Broker::health`] reports, and a failed ping is
//! also what makes the manager start a new reconnect cycle after its retries ran out, so
//! delivery resumes within about `health_interval + reconnect_max_delay` of Redis coming
//! back without anyone re-subscribing.
//!
//! **Publishing.** One Lua script does `XADD` (bounded by `retention_events` and
//! optionally `retention_age`) and then `PUBLISH`es an [envelope](super::envelope) with the
//! new id on the channel itself. Being one script, it is atomic: subscribers see keel
//! events in id order even with many publishing processes. When it trims, the script
//! records the newest dropped id with `XSETID … MAXDELETEDID` (Redis ≥ 7.0), so
//! [`Replay::Lost`] is exact rather than guessed from the oldest entry.
//!
//! **Gaps.** Pub/sub drops what is published while a subscriber is disconnected. After
//! every (re)subscription the dispatcher reads the channel's stream from the last keel id
//! it delivered and delivers what it missed, then drops live duplicates by id. Raw
//! `PUBLISH`es made while disconnected are lost, as with any Redis subscriber.
//!
//! Not supported: Redis Cluster (the script publishes to a channel that is not one of its
//! keys), Redis < 7.0 (`XSETID … MAXDELETEDID`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamRangeReply};
use redis::{
    Client, FromRedisValue, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError,
    Script, Value,
};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{
    envelope, validate_channel, Broker, BrokerError, Event, Health, Registry, Replay, Subscription,
};
use crate::id::EventId;

const PUBLISH_SCRIPT: &str = r"
local key = KEYS[1]
local id = redis.call('XADD', key, '*', 'd', ARGV[2])
local dropped = false
local maxlen = tonumber(ARGV[3])
local len = redis.call('XLEN', key)
if len > maxlen then
  local old = redis.call('XRANGE', key, '-', '+', 'COUNT', len - maxlen)
  dropped = old[#old][1]
  redis.call('XTRIM', key, 'MAXLEN', maxlen)
end
local age = tonumber(ARGV[4])
if age > 0 then
  local t = redis.call('TIME')
  local min_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - age
  if min_ms > 0 then
    local minid = string.format('%.0f', min_ms)
    local old = redis.call('XREVRANGE', key, '(' .. minid, '-', 'COUNT', 1)
    if #old > 0 then
      dropped = old[1][1]
      redis.call('XTRIM', key, 'MINID', minid)
    end
  end
end
if dropped then
  redis.call('XSETID', key, id, 'MAXDELETEDID', dropped)
end
redis.call('PUBLISH', ARGV[1], ARGV[5] .. id .. '\31' .. ARGV[2])
return id
";

const REPLAY_SCRIPT: &str = r"
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  return {'0-0', {}}
end
local info = redis.call('XINFO', 'STREAM', key)
local maxdel = '0-0'
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then
    maxdel = info[i + 1]
  end
end
return {maxdel, redis.call('XRANGE', key, ARGV[1], '+', 'COUNT', ARGV[2])}
";

/// The stream field that holds an event's payload.
const PAYLOAD_FIELD: &str = "d";
/// Entries read per `XRANGE` when catching up after a reconnect.
const CATCH_UP_PAGE: usize = 500;

/// Settings of a [`RedisBroker`].
#[derive(Clone, Debug)]
pub struct RedisBrokerConfig {
    /// `redis://[user:password@]host[:port][/db]`. RESP3 is switched on by keel; Redis ≥ 7.0.
    pub url: String,
    /// Prefix of the stream keys: channel `demo_stream` is kept in `<prefix>demo_stream`.
    pub key_prefix: String,
    /// Events kept per channel for replay (`XADD` + exact trim); 0 keeps nothing and
    /// [`Broker::publish`] then publishes raw.
    pub retention_events: usize,
    /// Events older than this are trimmed on each publish (so, as in the memory backend,
    /// age is enforced when the channel is written); `None`: no limit.
    pub retention_age: Option<Duration>,
    /// Events buffered per channel for subscribers that are behind.
    pub channel_buffer: usize,
    /// Longest wait for one Redis command (and for a connection) before it counts as
    /// unavailable.
    pub command_timeout: Duration,
    /// How often the connections are pinged (health, and the nudge that restarts a
    /// reconnect cycle that gave up).
    pub health_interval: Duration,
    /// Longest pause between two reconnect attempts.
    pub reconnect_max_delay: Duration,
}

impl RedisBrokerConfig {
    /// Defaults for `url`: prefix `keel:events:`, 1000 events, 1 s command timeout, ping
    /// every 500 ms, reconnect attempts at most 500 ms apart.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "keel:events:".to_owned(),
            retention_events: 1000,
            retention_age: None,
            channel_buffer: 1024,
            command_timeout: Duration::from_secs(1),
            health_interval: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_millis(500),
        }
    }

    /// The Redis key of `channel`'s stream.
    pub fn stream_key(&self, channel: &str) -> String {
        format!("{}{}", self.key_prefix, channel)
    }

    fn validate(&self) -> Result<(), BrokerError> {
        let bad = |what: &str| Err(BrokerError::Config(what.to_owned()));
        if self.command_timeout.is_zero() {
            return bad("command_timeout must be > 0");
        }
        if self.health_interval.is_zero() {
            return bad("health_interval must be > 0");
        }
        if self.channel_buffer == 0 {
            return bad("channel_buffer must be > 0");
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct ChannelState {
    /// Highest keel id delivered on this channel (the catch-up position).
    last_id: Option<EventId>,
    /// A (re)subscription is pending: read the stream from `last_id` when it is confirmed.
    needs_catch_up: bool,
    /// `SUBSCRIBE` has been confirmed once; the manager resubscribes from then on.
    subscribed: bool,
}

struct Inner {
    config: RedisBrokerConfig,
    commands: ConnectionManager,
    pubsub: ConnectionManager,
    registry: Registry,
    channels: Mutex<HashMap<Arc<str>, ChannelState>>,
    health: Mutex<Health>,
    subscribe_lock: tokio::sync::Mutex<()>,
    publish_script: Script,
    replay_script: Script,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("config", &self.config)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// Aborts the background tasks when the last handle to the broker goes.
#[derive(Debug)]
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A broker on Redis. Cheap to clone; clones share the connections. Create one per
/// process.
#[derive(Clone, Debug)]
pub struct RedisBroker {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

fn unavailable(reason: impl fmt::Display) -> BrokerError {
    BrokerError::Unavailable {
        reason: reason.to_string(),
    }
}

fn map_err(e: RedisError) -> BrokerError {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        unavailable(format!("redis: {e}"))
    } else {
        BrokerError::Backend(format!("redis: {e}"))
    }
}

async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(map_err),
        Err(_) => Err(unavailable(format!(
            "redis did not answer {what} within {limit:?}"
        ))),
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Bytes from Redis as text: SSE is UTF-8, so invalid sequences become U+FFFD.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn parse_id(s: &str) -> Result<EventId, BrokerError> {
    s.parse()
        .map_err(|_| BrokerError::Backend(format!("redis returned a malformed stream id {s:?}")))
}

fn entry_to_event(channel: &Arc<str>, entry: &StreamId) -> Result<Event, BrokerError> {
    let id = parse_id(&entry.id)?;
    let data = entry
        .map
        .get(PAYLOAD_FIELD)
        .and_then(value_text)
        .unwrap_or_default();
    Ok(Event {
        channel: channel.clone(),
        id: Some(id),
        data: Arc::from(data),
    })
}

fn range_reply(v: Value) -> Result<StreamRangeReply, BrokerError> {
    StreamRangeReply::from_redis_value(v)
        .map_err(|e| BrokerError::Backend(format!("unexpected XRANGE reply: {e}")))
}

impl RedisBroker {
    /// Sets up the connections and background tasks. Does not fail when Redis is down —
    /// the broker starts [`Health::Degraded`] and connects when Redis appears — only when
    /// the configuration or URL is unusable. Must be called within a Tokio runtime.
    pub async fn connect(config: RedisBrokerConfig) -> Result<Self, BrokerError> {
        config.validate()?;
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| BrokerError::Config(format!("redis url: {e}")))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))
            .map_err(|e| BrokerError::Config(format!("redis url: {e}")))?;

        let base = ConnectionManagerConfig::new()
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(config.reconnect_max_delay)
            .set_exponent_base(2.0)
            .set_number_of_retries(4)
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let (push_tx, push_rx) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
        let pubsub = ConnectionManager::new_lazy_with_config(
            client.clone(),
            base.clone()
                .set_push_sender(push_tx)
                .set_automatic_resubscription(),
        )
        .map_err(|e| BrokerError::Config(format!("redis: {e}")))?;
        let commands = ConnectionManager::new_lazy_with_config(client, base)
            .map_err(|e| BrokerError::Config(format!("redis: {e}")))?;

        let inner = Arc::new(Inner {
            registry: Registry::new(config.channel_buffer),
            config,
            commands,
            pubsub,
            channels: Mutex::new(HashMap::new()),
            health: Mutex::new(Health::Degraded("not connected yet".to_owned())),
            subscribe_lock: tokio::sync::Mutex::new(()),
            publish_script: Script::new(PUBLISH_SCRIPT),
            replay_script: Script::new(REPLAY_SCRIPT),
        });
        // A first check, so that a broker made while Redis is up starts healthy.
        inner.check_health().await;
        let dispatcher = tokio::spawn(dispatch(inner.clone(), push_rx));
        let supervisor = tokio::spawn(supervise(inner.clone()));
        Ok(Self {
            inner,
            _tasks: Arc::new(Tasks(vec![
                dispatcher.abort_handle(),
                supervisor.abort_handle(),
            ])),
        })
    }

    /// The configuration this broker runs with.
    pub fn config(&self) -> &RedisBrokerConfig {
        &self.inner.config
    }
}

impl Inner {
    fn set_health(&self, health: Health) {
        let mut current = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if *current != health {
            match &health {
                Health::Ok => tracing::info!("redis connection healthy"),
                Health::Degraded(reason) => tracing::warn!(%reason, "redis connection degraded"),
            }
            *current = health;
        }
    }

    async fn ping(&self, mut conn: ConnectionManager) -> Result<(), BrokerError> {
        with_timeout(
            self.config.command_timeout.min(self.config.health_interval),
            "PING",
            redis::cmd("PING").query_async::<Value>(&mut conn),
        )
        .await
        .map(|_| ())
    }

    async fn check_health(&self) {
        let (commands, pubsub) = tokio::join!(
            self.ping(self.commands.clone()),
            self.ping(self.pubsub.clone())
        );
        match commands.and(pubsub) {
            Ok(()) => self.set_health(Health::Ok),
            Err(e) => self.set_health(Health::Degraded(e.to_string())),
        }
    }

    /// Hands one pub/sub message to the channel's subscribers, dropping keel events that
    /// were already delivered (by a catch-up read).
    fn deliver(&self, channel: &str, message: &str) {
        let (id, payload) = envelope::decode(message);
        let Some(name) = self.registry.channel_name(channel) else {
            return;
        };
        if let Some(id) = id {
            let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            let state = channels.entry(name.clone()).or_default();
            if state.last_id.is_some_and(|last| id <= last) {
                return;
            }
            state.last_id = Some(id);
        }
        self.registry.send(Event {
            channel: name,
            id,
            data: Arc::from(payload),
        });
    }

    /// Reads the channel's stream after the last delivered keel id and delivers what
    /// pub/sub missed while the connection was down.
    async fn catch_up(&self, channel: &str) -> Result<usize, BrokerError> {
        let Some(name) = self.registry.channel_name(channel) else {
            return Ok(0);
        };
        let key = self.config.stream_key(channel);
        let mut delivered = 0;
        loop {
            let after = {
                let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
                channels
                    .get(&name)
                    .and_then(|s| s.last_id)
                    .unwrap_or(EventId::ZERO)
            };
            // Read on the pub/sub connection: it has just been confirmed up.
            let mut conn = self.pubsub.clone();
            let reply = with_timeout(
                self.config.command_timeout,
                "XRANGE",
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(CATCH_UP_PAGE)
                    .query_async::<Value>(&mut conn),
            )
            .await?;
            let entries = range_reply(reply)?.ids;
            let n = entries.len();
            for entry in &entries {
                let event = entry_to_event(&name, entry)?;
                let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
                let state = channels.entry(name.clone()).or_default();
                if state.last_id.is_some_and(|last| event.id <= Some(last)) {
                    continue;
                }
                state.last_id = event.id;
                drop(channels);
                self.registry.send(event);
                delivered += 1;
            }
            if n < CATCH_UP_PAGE {
                return Ok(delivered);
            }
        }
    }
}

/// Routes pushes from the pub/sub connection: messages to subscribers, (re)subscription
/// confirmations to a catch-up read, disconnections to the health state.
async fn dispatch(inner: Arc<Inner>, mut pushes: UnboundedReceiver<PushInfo>) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message => {
                let (Some(channel), Some(message)) = (
                    push.data.first().and_then(value_text),
                    push.data.get(1).and_then(value_text),
                ) else {
                    continue;
                };
                inner.deliver(&channel, &message);
            }
            PushKind::Subscribe => {
                let Some(channel) = push.data.first().and_then(value_text) else {
                    continue;
                };
                let pending = {
                    let mut channels = inner
                        .channels
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    channels
                        .get_mut(channel.as_str())
                        .is_some_and(|s| std::mem::take(&mut s.needs_catch_up))
                };
                if pending {
                    match inner.catch_up(&channel).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(%channel, events = n, "delivered events missed while disconnected")
                        }
                        Err(e) => {
                            tracing::warn!(%channel, error = %e, "catch-up after resubscribe failed; events published meanwhile are only available by replay")
                        }
                    }
                }
            }
            PushKind::Disconnection => {
                inner.set_health(Health::Degraded("connection to redis lost".to_owned()));
                let mut channels = inner
                    .channels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for state in channels.values_mut() {
                    state.needs_catch_up = true;
                }
            }
            _ => {}
        }
    }
}

/// Pings both connections every `health_interval`.
async fn supervise(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        inner.check_health().await;
    }
}

impl Broker for RedisBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<Option<EventId>, BrokerError>> {
        async move {
            validate_channel(channel)?;
            let cfg = &self.inner.config;
            if cfg.retention_events == 0 {
                self.publish_raw(channel, payload).await?;
                return Ok(None);
            }
            let mut conn = self.inner.commands.clone();
            let age_ms = cfg.retention_age.map(duration_ms).unwrap_or(0);
            let mut invocation = self.inner.publish_script.key(cfg.stream_key(channel));
            invocation
                .arg(channel)
                .arg(payload)
                .arg(cfg.retention_events)
                .arg(age_ms)
                .arg(envelope::MARKER);
            let id: String = with_timeout(
                cfg.command_timeout,
                "the publish script",
                invocation.invoke_async(&mut conn),
            )
            .await?;
            parse_id(&id).map(Some)
        }
        .boxed()
    }

    fn publish_raw<'a>(
        &'a self,
        channel: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        async move {
            validate_channel(channel)?;
            let mut conn = self.inner.commands.clone();
            with_timeout(
                self.inner.config.command_timeout,
                "PUBLISH",
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<Value>(&mut conn),
            )
            .await
            .map(|_| ())
        }
        .boxed()
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>> {
        async move {
            validate_channel(channel)?;
            let inner = &self.inner;
            let _serialised = inner.subscribe_lock.lock().await;
            let (subscription, _) = inner.registry.subscribe(channel);
            let name = inner
                .registry
                .channel_name(channel)
                .unwrap_or_else(|| Arc::from(channel));
            let already = {
                let channels = inner
                    .channels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                channels.get(&name).is_some_and(|s| s.subscribed)
            };
            if already {
                return Ok(subscription);
            }
            // Start from the newest kept id, then subscribe with a catch-up pending: the
            // confirmation makes the dispatcher read whatever was added in between, so the
            // first subscription has no gap either.
            let mut conn = inner.commands.clone();
            let newest = with_timeout(
                inner.config.command_timeout,
                "XREVRANGE",
                redis::cmd("XREVRANGE")
                    .arg(inner.config.stream_key(channel))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async::<Value>(&mut conn),
            )
            .await?;
            let newest = match range_reply(newest)?.ids.first() {
                Some(entry) => parse_id(&entry.id)?,
                None => EventId::ZERO,
            };
            {
                let mut channels = inner
                    .channels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let state = channels.entry(name.clone()).or_default();
                state.last_id = Some(state.last_id.map_or(newest, |l| l.max(newest)));
                state.needs_catch_up = true;
            }
            let mut pubsub = inner.pubsub.clone();
            with_timeout(
                inner.config.command_timeout,
                "SUBSCRIBE",
                pubsub.subscribe(channel),
            )
            .await?;
            let mut channels = inner
                .channels
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            channels.entry(name).or_default().subscribed = true;
            Ok(subscription)
        }
        .boxed()
    }

    fn replay<'a>(
        &'a self,
        channel: &'a str,
        after: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, BrokerError>> {
        async move {
            validate_channel(channel)?;
            let cfg = &self.inner.config;
            let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
            let mut conn = self.inner.commands.clone();
            let mut invocation = self.inner.replay_script.key(cfg.stream_key(channel));
            invocation.arg(start).arg(limit.max(1));
            let reply: Value = with_timeout(
                cfg.command_timeout,
                "the replay script",
                invocation.invoke_async(&mut conn),
            )
            .await?;
            let Value::Array(mut parts) = reply else {
                return Err(BrokerError::Backend(format!(
                    "unexpected replay reply: {reply:?}"
                )));
            };
            if parts.len() != 2 {
                return Err(BrokerError::Backend(
                    "unexpected replay reply length".to_owned(),
                ));
            }
            let entries = range_reply(parts.pop().unwrap_or(Value::Nil))?;
            let max_deleted = parts
                .pop()
                .as_ref()
                .and_then(value_text)
                .map(|s| parse_id(&s))
                .transpose()?
                .unwrap_or(EventId::ZERO);
            let name: Arc<str> = self
                .inner
                .registry
                .channel_name(channel)
                .unwrap_or_else(|| Arc::from(channel));
            let mut events = entries
                .ids
                .iter()
                .map(|e| entry_to_event(&name, e))
                .collect::<Result<Vec<_>, _>>()?;
            let dropped = max_deleted;
            if let Some(after) = after {
                if dropped != EventId::ZERO && after < dropped {
                    return Ok(Replay::Lost);
                }
            }
            events.truncate(limit);
            Ok(Replay::Events(events))
        }
        .boxed()
    }

    fn health(&self) -> Health {
        self.inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
