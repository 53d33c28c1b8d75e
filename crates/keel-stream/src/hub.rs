//! The fan-out hub: one broker subscription per channel per process, shared by every
//! client of that channel, with admission control in front.
//!
//! For each channel a client asks for, the hub starts (once) a *pump* task that holds the
//! process's only [`Subscription`](crate::Subscription) to it, encodes each event as SSE
//! once, and puts the shared bytes into a bounded `tokio::sync::broadcast` ring of
//! `client_buffer` frames. Every client reads that ring at its own pace; the ring is the
//! only per-channel buffer, so memory is `channels × client_buffer × frame size` no matter
//! how many clients there are or how slow they read. A client that falls out of the ring
//! is caught up from the broker's replay store, or, when that cannot close the gap, its
//! stream ends with a `retry:` hint and the browser reconnects with `Last-Event-ID`.
//!
//! The ring also carries the hub's own frames: a heartbeat every `heartbeat_interval` from
//! one timer per channel (not one per client), and the shutdown notice. So an idle client
//! is a cursor and nothing else, and an event wakes a client for exactly one source.
//!
//! Admission: the channel must be on the allowlist (403), the process must be under
//! `max_clients` and, when set, the client's address under `max_clients_per_ip` (503). IPv6
//! addresses are counted per /64, the block one subscriber usually gets. The per-address cap
//! is off by default: behind a NAT or a proxy that does not say who the client is, a whole
//! office (or the whole site) is one address, and concurrent connections per address are
//! the edge's job (`limit_conn`), where the real client address is known.
//!
//! **How this differs from the classic design.** Django + gunicorn spent one worker thread,
//! one Redis connection and a 10 ms polling loop on every open browser tab, so 40 tabs filled
//! a `--workers 4 --threads 10` server and nothing bounded what a stuck client buffered.
//! Here a tab costs a broadcast cursor and a small state machine; there is no polling.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::broker::{validate_channel, Broker, BrokerError, Delivery, Health};
use crate::client::{ClientStream, Frame};
use crate::error::{ConfigError, StreamError};
use crate::id::EventId;
use crate::sse;

/// Settings of the live-event service (`[stream]` in `keel.toml`).
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// The channel of a request without `?channel=`.
    pub default_channel: String,
    /// Channels clients may subscribe to; anything else is answered 403.
    pub allowed_channels: Vec<String>,
    /// Most channels one request may ask for (`?channel=a,b,…`).
    pub max_channels_per_client: usize,
    /// A `: keepalive` comment is sent this often. Keep it below every proxy's read
    /// timeout (nginx: 60 s).
    pub heartbeat_interval: Duration,
    /// The `retry:` hint sent at connect and when a stream is ended by the server.
    pub retry_hint: Duration,
    /// Frames a client may fall behind its channel before it must be caught up from the
    /// replay store (the size of each channel's shared ring).
    pub client_buffer: usize,
    /// Most concurrent streams in this process.
    pub max_clients: usize,
    /// Most concurrent streams per client address (IPv6: per /64); 0 = no cap.
    pub max_clients_per_ip: usize,
    /// Events fetched per replay request (bounds the memory a reconnecting client costs).
    pub replay_page: usize,
    /// Catch a client that fell behind up from the replay store (`true`), or end its stream
    /// with a `retry:` hint right away (`false`).
    pub catch_up_slow_clients: bool,
    /// How long a client waits for the hub's first subscription to a channel before its
    /// stream starts anyway (events then flow once the broker is reachable).
    pub subscribe_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            default_channel: "demo_stream".to_owned(),
            allowed_channels: vec!["demo_stream".to_owned()],
            max_channels_per_client: 8,
            heartbeat_interval: Duration::from_secs(15),
            retry_hint: Duration::from_secs(3),
            client_buffer: 256,
            max_clients: 20_000,
            max_clients_per_ip: 0,
            replay_page: 200,
            catch_up_slow_clients: true,
            subscribe_timeout: Duration::from_secs(2),
        }
    }
}

impl StreamConfig {
    /// Checks every value; the only way a config gets into a [`Hub`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, problem: &str| {
            Err(ConfigError {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.allowed_channels.is_empty() {
            return err("allowed_channels", "must name at least one channel");
        }
        for ch in &self.allowed_channels {
            if let Err(e) = validate_channel(ch) {
                return Err(ConfigError {
                    key: "allowed_channels",
                    problem: e.to_string(),
                });
            }
        }
        if !self.allowed_channels.contains(&self.default_channel) {
            return err("default_channel", "must be one of allowed_channels");
        }
        if self.max_channels_per_client == 0 {
            return err("max_channels_per_client", "must be at least 1");
        }
        if self.heartbeat_interval.is_zero() {
            return err("heartbeat_interval", "must be longer than 0");
        }
        if self.client_buffer == 0 {
            return err("client_buffer", "must be at least 1");
        }
        if self.max_clients == 0 {
            return err("max_clients", "must be at least 1");
        }
        if self.replay_page == 0 {
            return err("replay_page", "must be at least 1");
        }
        Ok(())
    }
}

/// What one client asks for.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    /// Channels; empty means the default channel.
    pub channels: Vec<String>,
    /// The id of the last event the client saw (`Last-Event-ID`).
    pub last_event_id: Option<EventId>,
    /// The client's address, for the per-address cap.
    pub ip: IpAddr,
}

/// A snapshot of the hub for `/metrics` and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubStats {
    /// Open streams.
    pub clients: usize,
    /// Per channel with a subscription.
    pub channels: Vec<ChannelStats>,
    /// Times a client fell out of its channel's ring.
    pub lagged_total: u64,
    /// Streams ended because the client could not be caught up.
    pub closed_slow_total: u64,
}

/// One channel in [`HubStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelStats {
    /// Channel name.
    pub channel: String,
    /// Clients reading it.
    pub clients: usize,
    /// Frames held in its ring right now (never more than `capacity`).
    pub buffered: usize,
    /// The ring's size (`client_buffer`).
    pub capacity: usize,
}

#[derive(Debug)]
pub(crate) struct ChannelFeed {
    pub(crate) tx: broadcast::Sender<Frame>,
    pub(crate) ready: watch::Receiver<bool>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) lagged: AtomicU64,
    pub(crate) closed_slow: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct HubInner {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) config: StreamConfig,
    pub(crate) retry_frame: Bytes,
    pub(crate) counters: Counters,
    feeds: Mutex<HashMap<Arc<str>, ChannelFeed>>,
    counts: Mutex<Counts>,
    /// Set once by [`Hub::shutdown`]; clients check it between frames, and the
    /// [`Frame::Shutdown`] in every ring wakes the idle ones.
    pub(crate) shutting_down: AtomicBool,
    pumps: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        let pumps = self.pumps.get_mut().unwrap_or_else(PoisonError::into_inner);
        for pump in pumps.iter() {
            pump.abort();
        }
    }
}

/// The per-process fan-out point. Cheap to clone; clones share everything. Make one per
/// process and hand clones to handlers (it is the axum state of [`crate::http::router`]).
#[derive(Clone, Debug)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

/// A slot counted against the caps; released when the stream is dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    hub: Arc<HubInner>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self
            .hub
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Hub {
    /// A hub over `broker`. Fails only on an invalid config.
    pub fn new(broker: Arc<dyn Broker>, config: StreamConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(HubInner {
                broker,
                retry_frame: sse::encode_retry(config.retry_hint),
                config,
                counters: Counters::default(),
                feeds: Mutex::new(HashMap::new()),
                counts: Mutex::new(Counts::default()),
                shutting_down: AtomicBool::new(false),
                pumps: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &StreamConfig {
        &self.inner.config
    }

    /// The broker under this hub (for `/api/publish`, `keel publish`, tests).
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// Publishes through keel: the event gets an id and is kept for replay. Publishing is
    /// not limited to the allowlist (that governs who may *read*).
    pub async fn publish(
        &self,
        channel: &str,
        payload: &str,
    ) -> Result<Option<EventId>, StreamError> {
        Ok(self.inner.broker.publish(channel, payload).await?)
    }

    /// The broker's health, for `/healthz`.
    pub fn health(&self) -> Health {
        self.inner.broker.health()
    }

    /// Opens a stream for one client: checks the allowlist and the caps, joins the
    /// channels' rings (starting their subscriptions if this is the first client), and
    /// returns the stream of SSE bytes. Replay of `last_event_id` happens inside the stream,
    /// after the response has started. Needs a Tokio runtime.
    pub fn connect(&self, request: ClientRequest) -> Result<ClientStream, StreamError> {
        self.open(request, true)
    }

    /// As [`Hub::connect`], for channels the application chose and guards itself (a live
    /// quiz room's, named by its PIN) rather than a reader's `?channel=`: the allowlist,
    /// which governs what any client may ask for, is not consulted. Every cap still is.
    pub fn connect_unlisted(&self, request: ClientRequest) -> Result<ClientStream, StreamError> {
        self.open(request, false)
    }

    fn open(&self, request: ClientRequest, allowlist: bool) -> Result<ClientStream, StreamError> {
        let cfg = &self.inner.config;
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(StreamError::ShuttingDown);
        }
        let mut channels: Vec<String> = Vec::new();
        for ch in request.channels {
            let ch = ch.trim().to_owned();
            if !ch.is_empty() && !channels.contains(&ch) {
                channels.push(ch);
            }
        }
        if channels.is_empty() {
            channels.push(cfg.default_channel.clone());
        }
        if channels.len() > cfg.max_channels_per_client {
            return Err(StreamError::BadRequest(format!(
                "too many channels in one request ({}); at most {}",
                channels.len(),
                cfg.max_channels_per_client
            )));
        }
        for ch in &channels {
            validate_channel(ch)?;
            if allowlist && !cfg.allowed_channels.contains(ch) {
                return Err(StreamError::ChannelNotAllowed {
                    channel: ch.clone(),
                    allowed: cfg.allowed_channels.join(", "),
                });
            }
        }
        let admission = self.admit(request.ip)?;
        let feeds = channels.iter().map(|ch| self.join(ch)).collect::<Vec<_>>();
        Ok(ClientStream::new(
            self.inner.clone(),
            feeds,
            request.last_event_id,
            admission,
        ))
    }

    fn admit(&self, ip: IpAddr) -> Result<Admission, StreamError> {
        let cfg = &self.inner.config;
        let ip = ip_key(ip);
        let mut counts = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if counts.total >= cfg.max_clients {
            return Err(StreamError::TooManyClients {
                max: cfg.max_clients,
            });
        }
        let per_ip = counts.per_ip.entry(ip).or_insert(0);
        if cfg.max_clients_per_ip != 0 && *per_ip >= cfg.max_clients_per_ip {
            return Err(StreamError::TooManyClientsForAddress {
                max: cfg.max_clients_per_ip,
            });
        }
        *per_ip += 1;
        counts.total += 1;
        Ok(Admission {
            hub: self.inner.clone(),
            ip,
        })
    }

    /// The channel's name, a cursor into its ring, and its readiness; starts the pump on
    /// first use.
    fn join(&self, channel: &str) -> (Arc<str>, broadcast::Receiver<Frame>, watch::Receiver<bool>) {
        let mut feeds = self
            .inner
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((name, feed)) = feeds.get_key_value(channel) {
            return (name.clone(), feed.tx.subscribe(), feed.ready.clone());
        }
        let name: Arc<str> = Arc::from(channel);
        let (tx, rx) = broadcast::channel(self.inner.config.client_buffer);
        let (ready_tx, ready) = watch::channel(false);
        let pump = tokio::spawn(pump(
            self.inner.broker.clone(),
            name.clone(),
            tx.clone(),
            ready_tx,
        ));
        // Its own task, so heartbeats go on while the pump waits for a broker that is down.
        let beat = tokio::spawn(heartbeat(tx.clone(), self.inner.config.heartbeat_interval));
        self.inner
            .pumps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([pump.abort_handle(), beat.abort_handle()]);
        feeds.insert(
            name.clone(),
            ChannelFeed {
                tx,
                ready: ready.clone(),
            },
        );
        (name, rx, ready)
    }

    /// Ends every open stream with a `retry:` hint and refuses new ones: call it when the
    /// server starts its graceful shutdown, so open streams do not hold the shutdown up.
    pub fn shutdown(&self) {
        // The flag first: a client that joins a ring after the notice below was sent
        // still sees the flag before it waits for a frame.
        self.inner.shutting_down.store(true, Ordering::Release);
        let feeds = self
            .inner
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for feed in feeds.values() {
            let _ = feed.tx.send(Frame::Shutdown);
        }
    }

    /// Counts and buffer levels now.
    pub fn stats(&self) -> HubStats {
        let clients = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total;
        let feeds = self
            .inner
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut channels: Vec<ChannelStats> = feeds
            .iter()
            .map(|(name, feed)| ChannelStats {
                channel: name.to_string(),
                clients: feed.tx.receiver_count(),
                buffered: feed.tx.len(),
                capacity: self.inner.config.client_buffer,
            })
            .collect();
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        HubStats {
            clients,
            channels,
            lagged_total: self.inner.counters.lagged.load(Ordering::Relaxed),
            closed_slow_total: self.inner.counters.closed_slow.load(Ordering::Relaxed),
        }
    }
}

/// One timer per channel: a heartbeat frame into its ring every `period`, which each
/// client turns into a `: keepalive` comment.
async fn heartbeat(tx: broadcast::Sender<Frame>, period: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Err only means there is no client right now.
        let _ = tx.send(Frame::Heartbeat);
    }
}

/// The one task per channel that reads the broker and feeds the ring.
async fn pump(
    broker: Arc<dyn Broker>,
    channel: Arc<str>,
    tx: broadcast::Sender<Frame>,
    ready: watch::Sender<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut subscription = loop {
        match broker.subscribe(&channel).await {
            Ok(s) => break s,
            Err(e) => {
                // Only connectivity is worth waiting for; a bad name would not get better.
                if matches!(e, BrokerError::InvalidChannel(_)) {
                    tracing::error!(%channel, error = %e, "cannot subscribe");
                    return;
                }
                tracing::warn!(%channel, error = %e, retry_in = ?backoff, "subscribe failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    ready.send_replace(true);
    tracing::debug!(%channel, "subscribed");
    while let Some(delivery) = subscription.recv().await {
        let frame = match delivery {
            Delivery::Event(event) => Frame::Event {
                id: event.id,
                bytes: sse::encode_event(event.id, None, &event.data),
            },
            Delivery::Gap { missed } => {
                tracing::warn!(%channel, missed, "hub fell behind its broker subscription");
                Frame::Gap
            }
        };
        // Err only means there is no client right now.
        let _ = tx.send(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        StreamConfig::default().validate().unwrap();
    }

    #[test]
    fn config_errors_name_the_key() {
        let cfg = StreamConfig {
            default_channel: "other".into(),
            ..StreamConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "default_channel");
        let cfg = StreamConfig {
            allowed_channels: vec!["bad name".into()],
            ..StreamConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "allowed_channels");
    }

    /// Behind a NAT or a proxy that does not say who the client is, a whole site can be
    /// one address: by default nothing caps streams per address here (the edge's
    /// limit_conn does, with the real address).
    #[tokio::test]
    async fn no_per_address_cap_by_default() {
        let broker = Arc::new(crate::MemoryBroker::new(Default::default()));
        let hub = Hub::new(broker, StreamConfig::default()).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let admitted: Vec<_> = (0..200).map(|_| hub.admit(ip).unwrap()).collect();
        assert_eq!(admitted.len(), 200);
        drop(admitted);
        assert!(hub.inner.counts.lock().unwrap().per_ip.is_empty());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
