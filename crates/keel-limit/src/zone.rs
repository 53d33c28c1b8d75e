//! One `limit_req_zone`: a bounded set of per-key states `{excess, last}` in LRU order.
//!
//! Maps to the per-zone half of `ngx_http_limit_req_module.c`: the rbtree + queue of
//! `ngx_http_limit_req_shctx_t` (here a `HashMap` into a slab of nodes threaded on an
//! index-linked LRU list), `ngx_http_limit_req_lookup()` ([`Zone`]'s `lookup`), the
//! per-node part of `ngx_http_limit_req_account()` (`account`), the `count--` of
//! `ngx_http_limit_req_unlock()` (`unpin`) and `ngx_http_limit_req_expire()` (`expire`).
//! Deciding across several zones is [`crate::Limiter`]'s job.
//!
//! # How it follows nginx
//! - A known key moves to the LRU head on every lookup, *before* the burst check, so a
//!   rejected client is as "recent" as an accepted one.
//! - `ms = now - last`; a clock that went back up to 60 s counts as 0 ms, further back as
//!   1 ms (which also resets `last`); `excess = old - rate * ms / 1000 + 1000`, floored at 0.
//!   Over `burst` → rejected and nothing is written. Otherwise the last zone of a request
//!   stores `excess` at once (and `last = now` only when `ms != 0`); earlier zones only pin
//!   the node (`count++`) and are charged after every zone has agreed.
//! - A new key runs `expire(1)` first (drop up to two LRU states idle ≥ 60 s whose excess
//!   has fully leaked), then, if the zone is full, `expire(0)` (drop the LRU state by force,
//!   then up to two idle ones). Expiry stops at the first pinned state. If the zone is still
//!   full the request is refused, nginx's "could not allocate node".
//!
//! # Where it differs, and why
//! - **Capacity is a count of states**, not bytes of slab memory: `size / 128` (see
//!   [`crate::ZoneSize`]). nginx allocation fails when the slab is exhausted; here when
//!   `len == capacity`. Memory is bounded either way.
//! - **Sharding**: a zone may be split into shards by key hash, each with its own mutex,
//!   LRU list and `capacity / shards` states. With one shard (the default, see
//!   [`DEFAULT_SHARDS`]) eviction order is exactly nginx's single queue; with more, "least
//!   recently used" is per shard, so under memory pressure a different state may be evicted
//!   than nginx would choose. Rate decisions for a key are identical either way.
//! - **A state created but not charged** (an earlier zone of a request that a later zone
//!   rejected) has no `last`. nginx stores `last = 0` there, which on its monotonic clock
//!   (milliseconds since boot) means "long ago": the next request sees the whole excess
//!   leaked. `None` says exactly that, without depending on how far the clock is from 0.
//! - Keys are hashed with std's randomly seeded SipHash: client addresses are chosen by
//!   clients, and a fixed hash (nginx uses crc32 into an rbtree) would let them aim collisions.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::rate::{Rate, ZoneSize, ONE_REQUEST};
use crate::Error;

/// Shards a zone gets from [`Zone::new`]: one, like nginx's one mutex per zone.
///
/// Measured with `benches/limit_req.rs` (`contention/*`) on a shared 2-core machine:
/// on one thread, 16 shards cost 20–45 ns more per decision (the key is hashed twice:
/// ~77 → ~123 ns on random keys); with two threads doing nothing but decide on one zone,
/// one shard took ~430–560 ns per decision per thread and 16 shards ~280–330 ns. Both are
/// under the 1 µs target even in that worst case, and a lock is held ~0.1 µs per request,
/// so 100,000 requests/s keep one mutex busy ~1 % of the time: contention needs synthetic
/// hammering. One shard keeps nginx's exact eviction order and lets a `10m` zone really
/// hold 81,920 states before evicting (16 shards fill unevenly: 81,920 distinct keys left
/// ~81,300–81,500). Pass a shard count to [`Zone::with_capacity`] for a zone that measures hot.
pub const DEFAULT_SHARDS: usize = 1;

/// States idle for at least this long whose excess has leaked may be expired (nginx: 60000).
const IDLE_MS: u64 = 60_000;

/// A clock that went back by more than this is treated as 1 ms elapsed, resetting `last`.
const SKEW_RESET_MS: u64 = 60_000;

/// No neighbour in the LRU list.
const NIL: u32 = u32::MAX;

/// A snapshot of one key's state, for inspection and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState {
    /// Requests over the rate, in thousandths, as of `last_ms`.
    pub excess: u64,
    /// When `excess` was last charged; `None` for a state created but never charged.
    pub last_ms: Option<u64>,
}

/// What one zone says about one request (nginx's `rc` from `ngx_http_limit_req_lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// NGX_BUSY: over the burst; nothing was written.
    Busy { excess: u64, retry_after_ms: u64 },
    /// NGX_ERROR: a new key and no room for its state.
    NoRoom,
    /// NGX_OK: accepted and charged (only for the last zone of a request).
    Charged { excess: u64 },
    /// NGX_AGAIN: accepted, pinned, to be charged or unpinned by the caller.
    Pinned,
}

/// A `limit_req_zone`: a rate and a bounded, thread-safe set of per-key states.
///
/// Shared between requests and threads (wrap it in an `Arc`); several [`crate::Limit`]s,
/// with different bursts, may use the same zone, as several `limit_req` lines may.
pub struct Zone<K = IpAddr> {
    name: String,
    rate: Rate,
    capacity: usize,
    hasher: RandomState,
    shards: Box<[Mutex<Shard<K>>]>,
}

impl<K> fmt::Debug for Zone<K> {
    // Not derived: that would print every state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zone")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> Zone<K> {
    /// A zone as `limit_req_zone … zone=name:size rate=rate` declares it: room for
    /// `size / 128` states, [`DEFAULT_SHARDS`] shard(s).
    pub fn new(name: impl Into<String>, rate: Rate, size: ZoneSize) -> Self {
        let name = name.into();
        // ZoneSize is at least 32 KiB, i.e. 256 states, so capacity is never 0.
        let capacity = size.states().max(1);
        Self::build(name, rate, capacity, DEFAULT_SHARDS)
    }

    /// A zone holding at most `states` states, split into `shards` independently locked
    /// shards (clamped to `1..=states`). Fails only when `states` is 0.
    pub fn with_capacity(
        name: impl Into<String>,
        rate: Rate,
        states: usize,
        shards: usize,
    ) -> Result<Self, Error> {
        let name = name.into();
        if states == 0 {
            return Err(Error::ZeroCapacity(name));
        }
        Ok(Self::build(name, rate, states, shards))
    }

    fn build(name: String, rate: Rate, capacity: usize, shards: usize) -> Self {
        // Node indices are u32 with u32::MAX as "none": 4 billion states is beyond any zone.
        let capacity = capacity.min((NIL - 1) as usize);
        let shard_count = shards.clamp(1, capacity);
        let (base, extra) = (capacity / shard_count, capacity % shard_count);
        let shards = (0..shard_count)
            .map(|i| Mutex::new(Shard::new(base + usize::from(i < extra))))
            .collect();
        Self {
            name,
            rate,
            capacity,
            hasher: RandomState::new(),
            shards,
        }
    }

    /// The zone's name, as in `zone=name:size`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The most states the zone keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many shards the zone is split into.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// How many states the zone keeps now (locks each shard in turn).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).index.len()).sum()
    }

    /// Whether the zone keeps no state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state kept for `key`, without touching its LRU position.
    pub fn state(&self, key: &K) -> Option<KeyState> {
        let shard = self.shard(key);
        let i = *shard.index.get(key)?;
        let node = shard.node(i);
        Some(KeyState {
            excess: node.excess,
            last_ms: node.last,
        })
    }

    /// nginx's `ngx_http_limit_req_lookup()`: `account` is true for the last zone of a
    /// request, which charges at once; other zones pin the node for [`Self::account`].
    pub(crate) fn lookup(&self, key: &K, burst: u64, now: u64, account: bool) -> Lookup {
        let rate = self.rate.millis_per_sec();
        self.shard(key).lookup(key, rate, burst, now, account)
    }

    /// The per-node part of `ngx_http_limit_req_account()`: charge a pinned node and unpin
    /// it. Returns the charged excess, or `None` if the node is gone (it cannot be: pinned
    /// nodes are never expired).
    pub(crate) fn account(&self, key: &K, now: u64) -> Option<u64> {
        let rate = self.rate.millis_per_sec();
        self.shard(key).account(key, rate, now)
    }

    /// `ngx_http_limit_req_unlock()` for one zone: unpin without charging.
    pub(crate) fn unpin(&self, key: &K) {
        self.shard(key).unpin(key);
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<K>> {
        let n = self.shards.len();
        // One shard: skip hashing the key twice.
        let i = if n == 1 {
            0
        } else {
            (self.hasher.hash_one(key) % n as u64) as usize
        };
        lock(&self.shards[i])
    }
}

// A panic while a shard is locked leaves at worst one state half-updated (the list is
// only ever changed by the small functions below, which do not panic on valid indices);
// refusing every later request for that zone would be worse than that.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One key's state: nginx's `ngx_http_limit_req_node_t` plus LRU links.
#[derive(Debug)]
struct Node<K> {
    key: K,
    excess: u64,
    last: Option<u64>,
    /// Requests between lookup and account that hold this node (nginx's `count`).
    count: u32,
    prev: u32,
    next: u32,
}

/// A shard: its own states, LRU list (head = most recent) and capacity.
#[derive(Debug)]
struct Shard<K> {
    index: HashMap<K, u32>,
    nodes: Vec<Node<K>>,
    /// Slots of `nodes` freed by expiry, reused before `nodes` grows.
    free: Vec<u32>,
    head: u32,
    tail: u32,
    capacity: usize,
}

/// `ms` as `ngx_http_limit_req_lookup()` and `_account()` clamp it.
fn elapsed_clamped(now: u64, last: Option<u64>) -> u64 {
    match last {
        // Never charged: as nginx's `last = 0` on a clock far from 0, all excess has leaked.
        None => u64::MAX,
        Some(last) if now >= last => now - last,
        // Back by more than a minute: count 1 ms, and since ms != 0, `last` is reset.
        Some(last) if last - now > SKEW_RESET_MS => 1,
        // Back by less: count nothing, and keep `last` where it was.
        Some(_) => 0,
    }
}

/// `rate * ms / 1000`: thousandths leaked in `ms`. Saturates instead of wrapping.
fn leaked(rate: u64, ms: u64) -> u64 {
    rate.saturating_mul(ms) / 1000
}

/// `old - rate * ms / 1000 + 1000` floored at 0, in that order: leaking can take the old
/// excess *and* this request's 1000 down to 0, which is why a request every 1/rate s stays at 0.
fn charged(old: u64, rate: u64, ms: u64) -> u64 {
    (old + ONE_REQUEST).saturating_sub(leaked(rate, ms))
}

/// Milliseconds from `now` until a request would fit in `burst` again, for a state with
/// `old` excess charged at `last` (assumes nothing else is charged meanwhile).
fn retry_after_ms(old: u64, last: Option<u64>, rate: u64, burst: u64, now: u64) -> u64 {
    // Need leaked(rate, ms) >= need, i.e. rate * ms >= need * 1000.
    let need = (old + ONE_REQUEST).saturating_sub(burst);
    let ms_needed = need.saturating_mul(1000).div_ceil(rate);
    let wait = match last {
        None => 0,
        Some(last) if now >= last => ms_needed.saturating_sub(now - last),
        // The clock is behind `last`: nothing leaks until it catches up.
        Some(last) => (last - now).saturating_add(ms_needed),
    };
    wait.max(1)
}

impl<K: Hash + Eq + Clone> Shard<K> {
    fn new(capacity: usize) -> Self {
        Self {
            // Grown on demand: most zones never fill, and memory is bounded by `capacity`.
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    fn node(&self, i: u32) -> &Node<K> {
        &self.nodes[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<K> {
        &mut self.nodes[i as usize]
    }

    fn lookup(&mut self, key: &K, rate: u64, burst: u64, now: u64, account: bool) -> Lookup {
        if let Some(&i) = self.index.get(key) {
            self.move_to_head(i);
            let node = self.node_mut(i);
            let ms = elapsed_clamped(now, node.last);
            let excess = charged(node.excess, rate, ms);
            if excess > burst {
                let retry_after_ms = retry_after_ms(node.excess, node.last, rate, burst, now);
                return Lookup::Busy {
                    excess,
                    retry_after_ms,
                };
            }
            if account {
                node.excess = excess;
                if ms != 0 {
                    node.last = Some(now);
                }
                return Lookup::Charged { excess };
            }
            node.count = node.count.saturating_add(1);
            return Lookup::Pinned;
        }

        self.expire(rate, now, 1);
        if self.index.len() >= self.capacity {
            self.expire(rate, now, 0);
            if self.index.len() >= self.capacity {
                return Lookup::NoRoom;
            }
        }
        // The first request of a key is free: excess 0 either way.
        if account {
            self.insert(key.clone(), Some(now), 0);
            Lookup::Charged { excess: 0 }
        } else {
            self.insert(key.clone(), None, 1);
            Lookup::Pinned
        }
    }

    fn account(&mut self, key: &K, rate: u64, now: u64) -> Option<u64> {
        let i = *self.index.get(key)?;
        let node = self.node_mut(i);
        // Recomputed rather than remembered from lookup, as nginx does: another request
        // may have charged this key in between. The burst is not checked again.
        let ms = elapsed_clamped(now, node.last);
        let excess = charged(node.excess, rate, ms);
        if ms != 0 {
            node.last = Some(now);
        }
        node.excess = excess;
        node.count = node.count.saturating_sub(1);
        Some(excess)
    }

    fn unpin(&mut self, key: &K) {
        if let Some(&i) = self.index.get(key) {
            let node = self.node_mut(i);
            node.count = node.count.saturating_sub(1);
        }
    }

    /// `ngx_http_limit_req_expire(ctx, n)`: n == 1 drops up to two idle, fully leaked LRU
    /// states; n == 0 first drops the LRU state by force, then up to two idle ones.
    fn expire(&mut self, rate: u64, now: u64, mut n: u8) {
        while n < 3 {
            let tail = self.tail;
            if tail == NIL {
                return;
            }
            let node = self.node(tail);
            // Lookups move nodes to the head, so a pinned tail means every state is recent.
            if node.count != 0 {
                return;
            }
            let forced = n == 0;
            n += 1;
            if !forced {
                // Here nginx takes |now - last|, not the lookup's clamp.
                let ms = node.last.map_or(u64::MAX, |last| now.abs_diff(last));
                if ms < IDLE_MS || node.excess > leaked(rate, ms) {
                    return;
                }
            }
            self.remove(tail);
        }
    }

    fn insert(&mut self, key: K, last: Option<u64>, count: u32) {
        let node = Node {
            key: key.clone(),
            excess: 0,
            last,
            count,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                *self.node_mut(i) = node;
                i
            }
            None => {
                // capacity < NIL, so the slot number fits and is never NIL.
                let i = self.nodes.len() as u32;
                self.nodes.push(node);
                i
            }
        };
        self.index.insert(key, i);
        self.push_head(i);
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let key = self.node(i).key.clone();
        self.index.remove(&key);
        self.free.push(i);
    }

    fn move_to_head(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_head(i);
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = self.node(i);
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.node_mut(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.node_mut(next).prev = prev;
        }
    }

    fn push_head(&mut self, i: u32) {
        let old_head = self.head;
        {
            let n = self.node_mut(i);
            n.prev = NIL;
            n.next = old_head;
        }
        if old_head == NIL {
            self.tail = i;
        } else {
            self.node_mut(old_head).prev = i;
        }
        self.head = i;
    }

    #[cfg(test)]
    fn lru_keys(&self) -> Vec<K> {
        let mut keys = Vec::new();
        let mut i = self.head;
        while i != NIL {
            keys.push(self.node(i).key.clone());
            i = self.node(i).next;
        }
        keys
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const R10: u64 = 10_000; // 10r/s in thousandths

    fn shard(capacity: usize) -> Shard<u32> {
        Shard::new(capacity)
    }

    #[test]
    fn arithmetic_helpers_match_nginx_expressions() {
        // excess = old - rate * ms / 1000 + 1000, floored at 0.
        assert_eq!(charged(0, R10, 0), 1_000);
        assert_eq!(charged(0, R10, 100), 0); // 1000 - 1000
        assert_eq!(charged(0, R10, 5_000), 0); // 1000 - 50000 < 0 → 0, not 1000
        assert_eq!(charged(20_000, R10, 50), 20_500);
        assert_eq!(charged(5, u64::MAX, u64::MAX), 0); // saturates, never wraps
                                                       // ms clamp of lookup/account.
        assert_eq!(elapsed_clamped(1_000, Some(400)), 600);
        assert_eq!(elapsed_clamped(1_000, Some(1_500)), 0);
        assert_eq!(elapsed_clamped(1_000, Some(61_000)), 0); // back exactly 60 s → 0
        assert_eq!(elapsed_clamped(1_000, Some(61_001)), 1); // further → 1
        assert_eq!(elapsed_clamped(1_000, None), u64::MAX);
    }

    #[test]
    fn retry_after_is_when_the_request_would_fit() {
        // Stored 20000 at t=0, burst 20000, 10r/s. A request needs 1000 leaked: 100 ms
        // after `last`. At t=30 that is 70 ms away.
        assert_eq!(retry_after_ms(20_000, Some(0), R10, 20_000, 30), 70);
        // 30r/m = 500/s: 1000 thousandths leak in 2000 ms.
        assert_eq!(retry_after_ms(0, Some(0), 500, 0, 0), 2_000);
        // 7r/m = 116: ceil(1000 * 1000 / 116) = 8621 ms (116 * 8620 / 1000 = 999).
        assert_eq!(retry_after_ms(0, Some(0), 116, 0, 0), 8_621);
        // Clock 500 ms behind `last`: wait for it to catch up, then 100 ms.
        assert_eq!(retry_after_ms(20_000, Some(1_000), R10, 20_000, 500), 600);
    }

    #[test]
    fn rejection_still_moves_the_key_to_the_lru_head() {
        // ngx_http_limit_req_lookup(): ngx_queue_remove + ngx_queue_insert_head come before
        // the `excess > limit->burst` check.
        let mut s = shard(10);
        assert_eq!(s.lookup(&1, R10, 0, 0, true), Lookup::Charged { excess: 0 });
        assert_eq!(s.lookup(&2, R10, 0, 0, true), Lookup::Charged { excess: 0 });
        assert_eq!(s.lru_keys(), vec![2, 1]);
        // Key 1 again at t=0 with burst 0: excess 1000 > 0 → busy, but now most recent.
        assert!(matches!(
            s.lookup(&1, R10, 0, 0, true),
            Lookup::Busy { excess: 1_000, .. }
        ));
        assert_eq!(s.lru_keys(), vec![1, 2]);
        // And its state was not written.
        assert_eq!(s.node(s.index[&1]).excess, 0);
    }

    #[test]
    fn pinned_lru_state_blocks_eviction_and_a_full_zone_refuses_new_keys() {
        // ngx_http_limit_req_expire(): `if (lr->count) return;` before forcing anything,
        // then lookup's second ngx_slab_alloc_locked() fails → NGX_ERROR.
        let mut s = shard(2);
        assert_eq!(s.lookup(&1, R10, 0, 0, false), Lookup::Pinned); // new, count 1
        assert_eq!(s.lookup(&2, R10, 0, 0, true), Lookup::Charged { excess: 0 });
        // Move 2 to the tail by bumping 1 (pinned again: count 2).
        assert_eq!(s.lookup(&1, R10, 5_000, 0, false), Lookup::Pinned);
        assert_eq!(s.lru_keys(), vec![1, 2]);
        // Tail 2 is unpinned: a new key forces it out.
        assert_eq!(s.lookup(&3, R10, 0, 1, true), Lookup::Charged { excess: 0 });
        assert_eq!(s.lru_keys(), vec![3, 1]);
        // Now the pinned key 1 is the tail: nothing can be expired, not even by force.
        assert_eq!(s.lookup(&4, R10, 0, 2, true), Lookup::NoRoom);
        assert_eq!(s.index.len(), 2);
        s.unpin(&1);
        assert_eq!(s.lookup(&4, R10, 0, 2, true), Lookup::NoRoom); // still held once
        s.unpin(&1);
        // Free at last; never charged (no `last`), so expire(1) already drops it as idle.
        assert_eq!(s.lookup(&4, R10, 0, 2, true), Lookup::Charged { excess: 0 });
        assert_eq!(s.lru_keys(), vec![4, 3]);
    }

    #[test]
    fn account_recomputes_from_the_stored_state_without_a_burst_check() {
        // ngx_http_limit_req_account(): excess recomputed under the lock at account time.
        let mut s = shard(4);
        assert_eq!(s.lookup(&1, R10, 0, 0, true), Lookup::Charged { excess: 0 });
        assert_eq!(s.lookup(&1, R10, 1_000, 0, false), Lookup::Pinned);
        // Another request charges key 1 in between (to 1000)...
        assert_eq!(
            s.lookup(&1, R10, 1_000, 0, true),
            Lookup::Charged { excess: 1_000 }
        );
        // ...so this account stores 2000, over the burst of 1000 it was checked against.
        assert_eq!(s.account(&1, R10, 0), Some(2_000));
        assert_eq!(s.node(s.index[&1]).count, 0);
    }

    #[test]
    fn freed_slots_are_reused() {
        let mut s = shard(3);
        for k in 0..100u32 {
            assert_eq!(s.lookup(&k, R10, 0, 0, true), Lookup::Charged { excess: 0 });
        }
        assert_eq!(s.index.len(), 3);
        assert_eq!(s.nodes.len(), 3);
        assert_eq!(s.lru_keys(), vec![99, 98, 97]);
    }

    #[test]
    fn shards_split_capacity_exactly() {
        let z: Zone<u32> = Zone::with_capacity("z", Rate::per_second(1).unwrap(), 10, 4).unwrap();
        let caps: Vec<usize> = z.shards.iter().map(|s| lock(s).capacity).collect();
        assert_eq!(caps, vec![3, 3, 2, 2]);
        let z: Zone<u32> = Zone::with_capacity("z", Rate::per_second(1).unwrap(), 2, 16).unwrap();
        assert_eq!(z.shard_count(), 2);
        assert!(Zone::<u32>::with_capacity("z", Rate::per_second(1).unwrap(), 0, 1).is_err());
    }
}
