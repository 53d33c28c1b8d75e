//! nginx's `limit_conn` (`ngx_http_limit_conn_module.c`): how many requests from one
//! client address may be in progress at once.
//!
//! This module owns the conn zones ([`ConnZone`], nginx's `limit_conn_zone
//! $binary_remote_addr zone=NAME:SIZE`), the per-path limits ([`ConnLimitConfig`],
//! [`ConnRouteLimit`]: `limit_conn NAME N` in a `location`, with `limit_conn_status` and
//! `limit_conn_dry_run`), the decision for one request ([`admit`]) and the guard that
//! keeps the request counted until its response is over ([`ConnGuard`], held inside the
//! response body by [`hold`] / [`Held`]). `handler.rs` calls it on every path.
//!
//! # As nginx does
//! - A request is counted once its whole head has been read, and stays counted until its
//!   response has been sent: for a stream (Server-Sent Events) until the body ends or the
//!   client goes away. The guard releases its counts when the body ends or is dropped,
//!   whichever comes first.
//! - Every limit of the route is checked in order; the first over its number (or a new
//!   address in a full zone) rejects the request with the configured status (503 by
//!   default) and releases the counts already taken for it. Under dry run the same
//!   request is logged and passed, counted nowhere (nginx runs the same cleanup, then
//!   declines).
//! - An address whose count drops to zero is removed from the zone, so a zone holds only
//!   the addresses with requests in flight.
//! - The size bounds the number of addresses: 64 bytes per address on 64-bit
//!   ([`CONN_ENTRY_BYTES`]), as nginx's docs state for this zone, so `10m` holds 163,840.
//!   A new address in a full zone is refused ("If the zone storage is exhausted, the
//!   server will return the error").
//! - Order of the phases: nginx registers both modules' handlers in the preaccess phase
//!   and runs that phase's handlers in reverse registration order, so `limit_req` runs
//!   before `limit_conn`. The edge does the same: a request delayed by limit_req is not
//!   counted while it waits, and one rejected by limit_req is never counted.
//!
//! # How it differs from nginx
//! - Every zone is keyed by the client address (canonical: `::ffff:a.b.c.d` is
//!   `a.b.c.d`); nginx lets each zone have its own key.
//! - Counts live on the heap behind one mutex per zone, not in shared memory: keel is one
//!   process with threads.
//! - **Reload** keeps a zone's counts when a zone of the same name is still configured,
//!   even if its size changed (the new size applies at once). nginx keeps a zone only when
//!   its name and size are unchanged. The counts are requests still in flight: dropping
//!   them would let every client open its whole limit again beside the streams it holds.
//!   A guard releases into the zone it was taken from (it holds that zone), so a request
//!   that outlives a reload which removed its zone is released there, harmlessly.
//! - A rejection is logged with `tracing` at `warn` (nginx: `limit_conn_log_level`,
//!   `error` by default); the access log has no `$limit_conn_status` field.
//! - Counts go to `u32::MAX`; nginx's `limit_conn` number stops at 65,535 ([`MAX_CONNS`],
//!   which [`ConnRouteLimit::new`] enforces).

use std::collections::hash_map::{Entry, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use bytes::Bytes;

use keel_client::canonical;

/// Bytes of zone size per client address: nginx's documented state size for
/// `limit_conn_zone` on 64-bit platforms (an rbtree node and the key, from the slab's
/// 64-byte class), so a `10m` zone holds 163,840 addresses.
pub const CONN_ENTRY_BYTES: u64 = 64;

/// The largest number a `limit_conn` line accepts in nginx (its counter is 16 bits).
pub const MAX_CONNS: u32 = 65_535;

/// Configuration nginx would refuse for `limit_conn_zone` / `limit_conn`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnLimitError {
    /// A zone that could hold no address: every request would be refused.
    #[error("limit_conn zone \"{0}\" must be able to hold at least one address")]
    ZeroCapacity(String),
    /// A `limit_conn` number outside 1..=65535.
    #[error("invalid number of connections {max} for limit_conn zone \"{zone}\": use 1 to 65535")]
    InvalidMax {
        /// The zone's name.
        zone: String,
        /// The number given.
        max: u32,
    },
    /// The same zone twice on one path (nginx: "is duplicate").
    #[error("limit_conn zone \"{0}\" is duplicate: list each zone once per path")]
    DuplicateZone(String),
}

/// A `limit_conn_zone`: requests in progress per client address, for at most
/// [`capacity`](Self::capacity) addresses at once. Shared by requests, workers and routes
/// (wrap it in an `Arc`).
pub struct ConnZone {
    name: String,
    /// Changed only by a reload that keeps the zone with a new size.
    capacity: AtomicUsize,
    /// Only addresses with at least one request in flight; std's randomly seeded hasher,
    /// because clients choose their addresses (a fixed hash would let them aim collisions).
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl fmt::Debug for ConnZone {
    // Not derived: that would print every address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnZone")
            .field("name", &self.name)
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Why a zone would not count one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The address has its limit in progress already.
    Limit,
    /// A new address and no room for it.
    Full,
}

impl ConnZone {
    /// A zone as `limit_conn_zone $binary_remote_addr zone=name:size` declares it: room for
    /// `size / 64` addresses ([`CONN_ENTRY_BYTES`]). `ZoneSize` parses `10m`, `64k` and
    /// enforces nginx's 32 KiB minimum, so the zone holds at least 512 addresses.
    pub fn new(name: impl Into<String>, size: keel_limit::ZoneSize) -> Self {
        let entries = usize::try_from(size.bytes() / CONN_ENTRY_BYTES).unwrap_or(usize::MAX);
        ConnZone::build(name.into(), entries.max(1))
    }

    /// A zone for at most `entries` addresses (tests, or a size given as a count).
    pub fn with_capacity(name: impl Into<String>, entries: usize) -> Result<Self, ConnLimitError> {
        let name = name.into();
        if entries == 0 {
            return Err(ConnLimitError::ZeroCapacity(name));
        }
        Ok(ConnZone::build(name, entries))
    }

    fn build(name: String, entries: usize) -> Self {
        ConnZone {
            name,
            capacity: AtomicUsize::new(entries),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The zone's name, as in `zone=name:size`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most addresses the zone counts at once.
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// How many addresses have requests in flight now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no request is counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests from `client` counted now.
    pub fn count(&self, client: IpAddr) -> u32 {
        self.lock().get(&canonical(client)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more request for `client` unless it has `max` in progress, or it is new
    /// and the zone is full. `client` must be canonical.
    fn acquire(&self, client: IpAddr, max: u32) -> Result<(), Refused> {
        let mut counts = self.lock();
        let len = counts.len();
        match counts.entry(client) {
            Entry::Occupied(mut count) => {
                if *count.get() >= max {
                    return Err(Refused::Limit);
                }
                // `count < max <= u32::MAX`: no overflow.
                *count.get_mut() += 1;
            }
            Entry::Vacant(slot) => {
                // nginx allocates the node first and never compares a new one with the
                // limit (its numbers start at 1); a 0 here still counts nothing.
                if len >= self.capacity() {
                    return Err(Refused::Full);
                }
                if max == 0 {
                    return Err(Refused::Limit);
                }
                slot.insert(1);
            }
        }
        Ok(())
    }

    /// One request from `client` (canonical) is over; at zero the address is forgotten.
    fn release(&self, client: IpAddr) {
        let mut counts = self.lock();
        if let Entry::Occupied(mut count) = counts.entry(client) {
            if *count.get() <= 1 {
                count.remove();
            } else {
                *count.get_mut() -= 1;
            }
        }
    }
}

/// The connection limits of one path prefix (the `limit_conn` lines of one `location`).
#[derive(Debug, Clone)]
pub struct ConnRouteLimit {
    /// Requests whose normalised path starts with this are limited here (`/` for all).
    pub path_prefix: String,
    /// Each zone with the number of requests one address may have in progress in it,
    /// checked in order. Empty: requests under this prefix are not counted (the longest
    /// prefix still wins; nothing is inherited from shorter ones, unlike an nginx
    /// `location` without `limit_conn`, which inherits the server's).
    pub limits: Vec<(Arc<ConnZone>, u32)>,
}

impl ConnRouteLimit {
    /// The limits of `path_prefix`, checked as nginx checks `limit_conn` lines: each
    /// number in 1..=[`MAX_CONNS`], each zone once.
    pub fn new(
        path_prefix: impl Into<String>,
        limits: Vec<(Arc<ConnZone>, u32)>,
    ) -> Result<Self, ConnLimitError> {
        for (i, (zone, max)) in limits.iter().enumerate() {
            if *max == 0 || *max > MAX_CONNS {
                return Err(ConnLimitError::InvalidMax {
                    zone: zone.name().to_owned(),
                    max: *max,
                });
            }
            if limits[..i]
                .iter()
                .any(|(other, _)| other.name() == zone.name())
            {
                return Err(ConnLimitError::DuplicateZone(zone.name().to_owned()));
            }
        }
        Ok(ConnRouteLimit {
            path_prefix: path_prefix.into(),
            limits,
        })
    }
}

/// limit_conn on backend routes: like nginx `location` blocks, the route with the longest
/// matching path prefix decides which zones a request is counted in. Static files are
/// never counted.
#[derive(Debug, Clone)]
pub struct ConnLimitConfig {
    /// Limits per path prefix; a request matching none is not counted.
    pub routes: Vec<ConnRouteLimit>,
    /// Status of a rejected request (nginx's `limit_conn_status`, 503 by default; nginx
    /// accepts 400–599).
    pub status: StatusCode,
    /// nginx's `limit_conn_dry_run`: the excess is logged but passed.
    pub dry_run: bool,
}

impl ConnLimitConfig {
    /// One limit on every path: at most `max` requests in progress per address in `zone`.
    pub fn everywhere(zone: Arc<ConnZone>, max: u32, status: StatusCode) -> Self {
        ConnLimitConfig {
            routes: vec![ConnRouteLimit {
                path_prefix: "/".to_owned(),
                limits: vec![(zone, max)],
            }],
            status,
            dry_run: false,
        }
    }

    /// The limits for `path`: the longest matching prefix.
    pub fn for_path(&self, path: &str) -> Option<&ConnRouteLimit> {
        self.route_index(path).and_then(|i| self.routes.get(i))
    }

    /// Where [`for_path`](Self::for_path)'s route is in `routes`: the fast path keeps the
    /// index instead of the path, whose bytes are the connection's buffer.
    pub(crate) fn route_index(&self, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, route)| path.starts_with(&route.path_prefix))
            .max_by_key(|(_, route)| route.path_prefix.len())
            .map(|(i, _)| i)
    }

    /// This configuration for a running edge whose current one is `old`: each zone whose
    /// name `old` has too is replaced by `old`'s (given the new capacity), so requests in
    /// flight stay counted and are released where they were counted.
    pub(crate) fn adopting(&self, old: Option<&ConnLimitConfig>) -> ConnLimitConfig {
        let Some(old) = old else {
            return self.clone();
        };
        let existing = |name: &str| {
            old.routes
                .iter()
                .flat_map(|route| &route.limits)
                .map(|(zone, _)| zone)
                .find(|zone| zone.name() == name)
                .cloned()
        };
        let routes = self
            .routes
            .iter()
            .map(|route| ConnRouteLimit {
                path_prefix: route.path_prefix.clone(),
                limits: route
                    .limits
                    .iter()
                    .map(|(zone, max)| {
                        let kept = match existing(zone.name()) {
                            Some(kept) if !Arc::ptr_eq(&kept, zone) => {
                                kept.capacity.store(zone.capacity(), Ordering::Relaxed);
                                kept
                            }
                            _ => zone.clone(),
                        };
                        (kept, *max)
                    })
                    .collect(),
            })
            .collect();
        ConnLimitConfig {
            routes,
            status: self.status,
            dry_run: self.dry_run,
        }
    }
}

/// Counts of one request in the zones of its route, released when dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    client: IpAddr,
    /// The first zone inline and the rest in a list: the usual one limit per route costs
    /// no allocation.
    first: Arc<ConnZone>,
    rest: Vec<Arc<ConnZone>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.first.release(self.client);
        for zone in &self.rest {
            zone.release(self.client);
        }
    }
}

/// limit_conn for a request from `client` on `config`'s route number `route`: the guard
/// that keeps it counted (`None` when nothing counts it: a route without limits, or dry
/// run over a limit), or the status to reject it with. Logs what it rejects.
pub(crate) fn admit(
    config: &ConnLimitConfig,
    route: usize,
    client: IpAddr,
) -> Result<Option<ConnGuard>, StatusCode> {
    let Some(route) = config.routes.get(route) else {
        return Ok(None);
    };
    let client = canonical(client);
    let mut guard: Option<ConnGuard> = None;
    for (zone, max) in &route.limits {
        match zone.acquire(client, *max) {
            Ok(()) => match guard.as_mut() {
                None => {
                    guard = Some(ConnGuard {
                        client,
                        first: zone.clone(),
                        rest: Vec::new(),
                    })
                }
                Some(guard) => guard.rest.push(zone.clone()),
            },
            Err(refused) => {
                // Counts already taken for this request go back before anything else.
                drop(guard);
                let dry_run = if config.dry_run { ", dry run," } else { "" };
                match refused {
                    Refused::Limit => tracing::warn!(
                        %client,
                        limit = *max,
                        "limiting connections{dry_run} by zone \"{}\"",
                        zone.name()
                    ),
                    Refused::Full => tracing::warn!(
                        %client,
                        capacity = zone.capacity(),
                        "limit_conn zone \"{}\" is full{dry_run}: a new address is refused",
                        zone.name()
                    ),
                }
                return if config.dry_run {
                    Ok(None)
                } else {
                    Err(config.status)
                };
            }
        }
    }
    Ok(guard)
}

/// `response` with `guard` held in its body: released when the body ends or is dropped.
/// Without a guard the response is returned as it is (no allocation).
pub(crate) fn hold(response: Response<Body>, guard: Option<ConnGuard>) -> Response<Body> {
    match guard {
        None => response,
        Some(guard) => response.map(|body| Body::new(held(body, Some(guard)))),
    }
}

/// `body` holding `guard` ([`Held`]).
pub(crate) fn held<B>(body: B, guard: Option<ConnGuard>) -> Held<B> {
    Held { inner: body, guard }
}

/// A response body that keeps its request counted until it ends or is dropped ([`held`]).
pub(crate) struct Held<B> {
    inner: B,
    guard: Option<ConnGuard>,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Held<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Over: release now, not whenever the server gets round to dropping the body.
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn zone(name: &str, entries: usize) -> Arc<ConnZone> {
        Arc::new(ConnZone::with_capacity(name, entries).unwrap())
    }

    fn config(limits: Vec<(Arc<ConnZone>, u32)>, dry_run: bool) -> ConnLimitConfig {
        ConnLimitConfig {
            routes: vec![ConnRouteLimit::new("/", limits).unwrap()],
            status: StatusCode::SERVICE_UNAVAILABLE,
            dry_run,
        }
    }

    #[test]
    fn requests_are_counted_up_to_the_limit_and_released_on_drop() {
        let zone = zone("addr", 16);
        let cfg = config(vec![(zone.clone(), 2)], false);
        let client = ip("192.0.2.1");
        let first = admit(&cfg, 0, client).unwrap();
        let second = admit(&cfg, 0, client).unwrap();
        assert!(first.is_some() && second.is_some());
        assert_eq!(zone.count(client), 2);
        assert_eq!(
            admit(&cfg, 0, client).unwrap_err(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // A rejection counts nothing.
        assert_eq!(zone.count(client), 2);
        // Another address has its own count.
        let other = admit(&cfg, 0, ip("192.0.2.2")).unwrap();
        assert_eq!(zone.len(), 2);
        drop(first);
        assert_eq!(zone.count(client), 1);
        let third = admit(&cfg, 0, client).unwrap();
        assert_eq!(zone.count(client), 2);
        drop((second, third, other));
        // At zero the addresses are gone: the zone holds only requests in flight.
        assert_eq!(zone.count(client), 0);
        assert!(zone.is_empty());
    }

    #[test]
    fn a_full_zone_refuses_new_addresses_but_not_known_ones() {
        let zone = zone("small", 2);
        let cfg = config(vec![(zone.clone(), 3)], false);
        let a = admit(&cfg, 0, ip("192.0.2.1")).unwrap();
        let _b = admit(&cfg, 0, ip("192.0.2.2")).unwrap();
        assert_eq!(
            admit(&cfg, 0, ip("192.0.2.3")).unwrap_err(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(zone.len(), 2);
        // A known address still gets up to its limit.
        let a2 = admit(&cfg, 0, ip("192.0.2.1")).unwrap();
        assert_eq!(zone.count(ip("192.0.2.1")), 2);
        // Room again once an address has nothing in flight.
        drop((a, a2));
        assert!(admit(&cfg, 0, ip("192.0.2.3")).unwrap().is_some());
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_ipv4_client() {
        let zone = zone("addr", 16);
        let cfg = config(vec![(zone.clone(), 1)], false);
        let _held = admit(&cfg, 0, ip("::ffff:192.0.2.7")).unwrap();
        assert_eq!(zone.count(ip("192.0.2.7")), 1);
        assert_eq!(zone.count(ip("::ffff:192.0.2.7")), 1);
        assert!(admit(&cfg, 0, ip("192.0.2.7")).is_err());
        // A real IPv6 address is its own key.
        assert!(admit(&cfg, 0, ip("2001:db8::7")).unwrap().is_some());
    }

    #[test]
    fn a_rejection_by_a_later_zone_releases_the_earlier_ones() {
        let wide = zone("wide", 16);
        let narrow = zone("narrow", 16);
        let cfg = config(vec![(wide.clone(), 10), (narrow.clone(), 1)], false);
        let client = ip("198.51.100.1");
        let held = admit(&cfg, 0, client).unwrap();
        assert_eq!((wide.count(client), narrow.count(client)), (1, 1));
        assert!(admit(&cfg, 0, client).is_err());
        assert_eq!((wide.count(client), narrow.count(client)), (1, 1));
        drop(held);
        assert!(wide.is_empty() && narrow.is_empty());
    }

    #[test]
    fn dry_run_passes_the_excess_uncounted() {
        let zone = zone("addr", 1);
        let cfg = config(vec![(zone.clone(), 1)], true);
        let client = ip("192.0.2.1");
        let held = admit(&cfg, 0, client).unwrap();
        assert!(held.is_some());
        // Over the limit, and a new address in the full zone: passed, counted nowhere.
        assert!(admit(&cfg, 0, client).unwrap().is_none());
        assert!(admit(&cfg, 0, ip("192.0.2.2")).unwrap().is_none());
        assert_eq!(zone.count(client), 1);
        assert_eq!(zone.len(), 1);
    }

    #[test]
    fn sizes_numbers_and_duplicates_are_checked_as_nginx_does() {
        let zone = ConnZone::new("addr", "10m".parse().unwrap());
        assert_eq!(zone.capacity(), 163_840);
        assert_eq!(
            ConnZone::new("addr", "32k".parse().unwrap()).capacity(),
            512
        );
        assert!(matches!(
            ConnZone::with_capacity("none", 0),
            Err(ConnLimitError::ZeroCapacity(_))
        ));
        let zone = Arc::new(zone);
        for max in [0, MAX_CONNS + 1] {
            assert!(matches!(
                ConnRouteLimit::new("/", vec![(zone.clone(), max)]),
                Err(ConnLimitError::InvalidMax { .. })
            ));
        }
        assert!(ConnRouteLimit::new("/", vec![(zone.clone(), MAX_CONNS)]).is_ok());
        assert!(matches!(
            ConnRouteLimit::new("/", vec![(zone.clone(), 1), (zone, 2)]),
            Err(ConnLimitError::DuplicateZone(_))
        ));
    }

    #[test]
    fn the_longest_prefix_picks_the_limits() {
        let all = zone("all", 16);
        let streams = zone("streams", 16);
        let cfg = ConnLimitConfig {
            routes: vec![
                ConnRouteLimit::new("/", vec![(all.clone(), 10)]).unwrap(),
                ConnRouteLimit::new("/stream/", vec![(streams.clone(), 1)]).unwrap(),
            ],
            status: StatusCode::TOO_MANY_REQUESTS,
            dry_run: false,
        };
        assert_eq!(cfg.for_path("/stream/x").unwrap().path_prefix, "/stream/");
        assert_eq!(cfg.for_path("/posts/").unwrap().path_prefix, "/");
        let route = cfg.route_index("/stream/x").unwrap();
        let client = ip("192.0.2.1");
        let _held = admit(&cfg, route, client).unwrap();
        assert_eq!(
            admit(&cfg, route, client).unwrap_err(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert!(all.is_empty());
        assert!(ConnLimitConfig {
            routes: Vec::new(),
            ..cfg
        }
        .for_path("/")
        .is_none());
    }

    #[test]
    fn a_reload_keeps_a_zone_of_the_same_name_with_its_counts() {
        let old_zone = zone("addr", 16);
        let old = config(vec![(old_zone.clone(), 1)], false);
        let client = ip("192.0.2.1");
        let held = admit(&old, 0, client).unwrap();

        // The reloaded configuration builds its zones afresh, one of them bigger.
        let new = ConnLimitConfig {
            routes: vec![ConnRouteLimit::new(
                "/",
                vec![(zone("addr", 32), 1), (zone("other", 16), 5)],
            )
            .unwrap()],
            status: StatusCode::SERVICE_UNAVAILABLE,
            dry_run: false,
        };
        let adopted = new.adopting(Some(&old));
        let kept = &adopted.routes[0].limits[0].0;
        assert!(Arc::ptr_eq(kept, &old_zone));
        assert_eq!(kept.capacity(), 32);
        assert!(Arc::ptr_eq(
            &adopted.routes[0].limits[1].0,
            &new.routes[0].limits[1].0
        ));
        // The request from before the reload still counts, and is released where it was.
        assert!(admit(&adopted, 0, client).is_err());
        drop(held);
        assert!(admit(&adopted, 0, client).unwrap().is_some());
    }

    #[tokio::test]
    async fn the_body_keeps_the_request_counted_until_it_ends_or_is_dropped() {
        let zone = zone("addr", 16);
        let cfg = config(vec![(zone.clone(), 5)], false);
        let client = ip("192.0.2.1");

        let response = hold(
            Response::new(Body::from("done")),
            admit(&cfg, 0, client).unwrap(),
        );
        assert_eq!(zone.count(client), 1);
        let mut body = response.into_body();
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            seen.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(seen, b"done");
        // Ended: released though the body is still alive.
        assert_eq!(zone.count(client), 0);
        drop(body);

        let response = hold(
            Response::new(Body::from("never read")),
            admit(&cfg, 0, client).unwrap(),
        );
        assert_eq!(zone.count(client), 1);
        drop(response);
        assert!(zone.is_empty());

        // No guard: the same body, untouched.
        let response = hold(Response::new(Body::from("x")), None);
        assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(1));
    }
}
