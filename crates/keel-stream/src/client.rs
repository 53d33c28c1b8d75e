//! One client's stream: retry hint, replay, then live events, heartbeats and the end.
//!
//! The order of a stream is fixed:
//!
//! 1. `retry: <ms>` — sent at once, so the response starts and the browser knows its
//!    reconnect delay.
//! 2. With `Last-Event-ID`: the kept events after it, page by page (one page per chunk, so
//!    a reconnecting client costs at most a page of memory). If the id is older than what
//!    is kept: `event: lost` first, then everything that is still kept.
//! 3. Live events from the channel's ring. The cursor into the ring was taken *before* the
//!    replay, so nothing falls between replay and live; events seen in both are dropped by
//!    id (per channel, ids only grow).
//! 4. `: keepalive` every `heartbeat_interval`, whatever else happens (the channel's ring
//!    carries the beat, so an idle client owns no timer).
//! 5. On [`crate::Hub::shutdown`], or when the client fell behind and cannot be caught up,
//!    or when replay is impossible because the broker is down: `retry:` plus a comment
//!    saying why, then the end of the body. The browser reconnects with its last id.
//!
//! In the classic view a browser got `data:` lines and nothing else: no id, no retry
//! hint, no heartbeat, and no way to learn that it had missed something.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::broker::Replay;
use crate::hub::{Admission, HubInner};
use crate::id::EventId;
use crate::sse;

/// What a channel's ring carries: an event encoded once for all clients, a marker that
/// the hub itself lost events (its broker subscription fell behind), the channel's
/// heartbeat, or the hub's shutdown notice.
#[derive(Clone, Debug)]
pub(crate) enum Frame {
    Event { id: Option<EventId>, bytes: Bytes },
    Gap,
    Heartbeat,
    Shutdown,
}

static KEEPALIVE: Bytes = Bytes::from_static(b": keepalive\n\n");

/// A `Last-Event-ID` further in the future than this is ignored: it cannot be one of ours,
/// and honouring it would hide every event until the clock caught up.
const FUTURE_ID_SLACK: Duration = Duration::from_secs(24 * 60 * 60);

/// One channel's ring, tagged with its index so the merged stream knows where a frame
/// came from.
struct Tagged {
    index: usize,
    inner: BroadcastStream<Frame>,
}

impl Stream for Tagged {
    type Item = (usize, Result<Frame, BroadcastStreamRecvError>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let index = self.index;
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|item| item.map(|r| (index, r)))
    }
}

struct Channel {
    name: Arc<str>,
    ready: watch::Receiver<bool>,
    /// Highest keel id this client has been sent on this channel.
    last_id: Option<EventId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnLost {
    /// At connect: tell the client with `event: lost`, then send all that is kept.
    Announce,
    /// While catching up or paging: close with a retry hint.
    Close,
}

struct ReplayJob {
    index: usize,
    after: Option<EventId>,
    on_lost: OnLost,
}

/// The rings a client reads: almost always one, without the merging machinery.
enum Live {
    One(Tagged),
    Many(SelectAll<Tagged>),
}

impl Live {
    async fn next(&mut self) -> Option<(usize, Result<Frame, BroadcastStreamRecvError>)> {
        match self {
            Live::One(one) => one.next().await,
            Live::Many(all) => all.next().await,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Running,
    Done,
}

struct State {
    hub: Arc<HubInner>,
    channels: Vec<Channel>,
    live: Live,
    replay: std::collections::VecDeque<ReplayJob>,
    phase: Phase,
    _admission: Admission,
}

/// The body of one SSE response: a stream of byte chunks that never fails. Dropping it
/// (the client went away) releases its slot in the caps.
pub struct ClientStream {
    inner: BoxStream<'static, Bytes>,
}

impl fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream").finish_non_exhaustive()
    }
}

impl Stream for ClientStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.inner.as_mut().poll_next(cx)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ClientStream {
    pub(crate) fn new(
        hub: Arc<HubInner>,
        feeds: Vec<(Arc<str>, broadcast::Receiver<Frame>, watch::Receiver<bool>)>,
        last_event_id: Option<EventId>,
        admission: Admission,
    ) -> Self {
        let slack = u64::try_from(FUTURE_ID_SLACK.as_millis()).unwrap_or(u64::MAX);
        let last_event_id = last_event_id.filter(|id| id.ms() <= now_ms().saturating_add(slack));
        let mut rings = Vec::with_capacity(feeds.len());
        let mut channels = Vec::with_capacity(feeds.len());
        let mut replay = std::collections::VecDeque::new();
        for (index, (name, rx, ready)) in feeds.into_iter().enumerate() {
            rings.push(Tagged {
                index,
                inner: BroadcastStream::new(rx),
            });
            channels.push(Channel {
                name,
                ready,
                last_id: last_event_id,
            });
            if let Some(after) = last_event_id {
                replay.push_back(ReplayJob {
                    index,
                    after: Some(after),
                    on_lost: OnLost::Announce,
                });
            }
        }
        let live = if rings.len() == 1 {
            match rings.pop() {
                Some(one) => Live::One(one),
                None => Live::Many(SelectAll::new()),
            }
        } else {
            Live::Many(rings.into_iter().collect())
        };
        let state = State {
            hub,
            channels,
            live,
            replay,
            phase: Phase::Start,
            _admission: admission,
        };
        let inner = futures_util::stream::unfold(state, |mut state| async move {
            let chunk = state.next_chunk().await?;
            Some((chunk, state))
        })
        .boxed();
        Self { inner }
    }
}

impl State {
    /// The final chunk: retry hint and a comment saying why.
    fn close(&mut self, why: &str) -> Bytes {
        self.phase = Phase::Done;
        let mut buf = BytesMut::from(&self.hub.retry_frame[..]);
        buf.extend_from_slice(&sse::encode_comment(why));
        buf.freeze()
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Start => {
                    self.phase = Phase::Running;
                    // Nothing is sent before the hub's subscription exists: once a client
                    // has its first bytes, everything published from then on reaches it,
                    // and a replay cannot miss events published between it and the
                    // subscription. Bounded, so a broker that is down does not hold the
                    // response (events then flow when it is back).
                    let wait = self.hub.config.subscribe_timeout;
                    for ch in &mut self.channels {
                        let _ = tokio::time::timeout(wait, ch.ready.wait_for(|ready| *ready)).await;
                    }
                    return Some(self.hub.retry_frame.clone());
                }
                Phase::Running => {}
            }
            if self.hub.shutting_down.load(Ordering::Acquire) {
                return Some(self.close("server shutting down; reconnect"));
            }
            if let Some(job) = self.replay.pop_front() {
                if let Some(chunk) = self.run_replay(job).await {
                    return Some(chunk);
                }
                continue;
            }
            match self.live.next().await {
                None => return Some(self.close("stream closed by server; reconnect")),
                Some((_, Ok(Frame::Shutdown))) => {
                    return Some(self.close("server shutting down; reconnect"));
                }
                // Every ring beats; one keepalive per period is enough.
                Some((0, Ok(Frame::Heartbeat))) => return Some(KEEPALIVE.clone()),
                Some((_, Ok(Frame::Heartbeat))) => {}
                Some((index, Ok(Frame::Event { id, bytes }))) => {
                    if let Some(id) = id {
                        let ch = &mut self.channels[index];
                        if ch.last_id.is_some_and(|last| id <= last) {
                            continue;
                        }
                        ch.last_id = Some(id);
                    }
                    return Some(bytes);
                }
                Some((index, Ok(Frame::Gap) | Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    if let Some(chunk) = self.fell_behind(index) {
                        return Some(chunk);
                    }
                }
            }
        }
    }

    /// The client's cursor fell out of the ring: catch up from the store, or close.
    fn fell_behind(&mut self, index: usize) -> Option<Bytes> {
        self.hub.counters.lagged.fetch_add(1, Ordering::Relaxed);
        let last_id = self.channels[index].last_id;
        match last_id {
            Some(after) if self.hub.config.catch_up_slow_clients => {
                self.replay.push_back(ReplayJob {
                    index,
                    after: Some(after),
                    on_lost: OnLost::Close,
                });
                None
            }
            _ => {
                self.hub
                    .counters
                    .closed_slow
                    .fetch_add(1, Ordering::Relaxed);
                Some(self.close("client fell too far behind; reconnect to resume"))
            }
        }
    }

    async fn run_replay(&mut self, job: ReplayJob) -> Option<Bytes> {
        let page = self.hub.config.replay_page;
        let name = self.channels[job.index].name.clone();
        let result = self.hub.broker.replay(&name, job.after, page).await;
        match result {
            Ok(Replay::Events(events)) => {
                let full = events.len() >= page;
                let page_last = events.last().and_then(|e| e.id);
                let ch = &mut self.channels[job.index];
                let mut buf = BytesMut::new();
                for event in &events {
                    if let Some(id) = event.id {
                        if ch.last_id.is_some_and(|last| id <= last) {
                            continue;
                        }
                        ch.last_id = Some(id);
                    }
                    sse::encode_event_into(&mut buf, event.id, None, &event.data);
                }
                if full {
                    if let Some(after) = page_last {
                        self.replay.push_front(ReplayJob {
                            index: job.index,
                            after: Some(after),
                            on_lost: OnLost::Close,
                        });
                    }
                }
                (!buf.is_empty()).then(|| buf.freeze())
            }
            Ok(Replay::Lost) => match job.on_lost {
                OnLost::Announce => {
                    self.replay.push_front(ReplayJob {
                        index: job.index,
                        after: None,
                        on_lost: OnLost::Close,
                    });
                    let data = format!(
                        "{{\"channel\":\"{}\",\"last_event_id\":\"{}\",\"reason\":\"events after this id are no longer kept; the kept ones follow\"}}",
                        name,
                        job.after.map(|id| id.to_string()).unwrap_or_default()
                    );
                    Some(sse::encode_event(None, Some("lost"), &data))
                }
                OnLost::Close => {
                    self.hub
                        .counters
                        .closed_slow
                        .fetch_add(1, Ordering::Relaxed);
                    Some(self.close("client fell behind the replay store; reconnect to resume"))
                }
            },
            Err(e) => {
                tracing::warn!(channel = %name, error = %e, "replay failed; asking the client to reconnect");
                Some(self.close("replay unavailable (event broker down); reconnect"))
            }
        }
    }
}
