//! nginx's `limit_req`, decision for decision: a leaky bucket per client address, kept in
//! bounded zones with nginx's LRU eviction, in integer thousandths as nginx counts.
//!
//! keel's edge uses it in front of every non-static path (default `rate=10r/s burst=20
//! nodelay`, as the classic nginx config `limit_req_zone $binary_remote_addr
//! zone=mylimit:10m rate=10r/s; limit_req zone=mylimit burst=20 nodelay;`).
//!
//! ```
//! use std::{net::IpAddr, sync::Arc};
//! use keel_limit::{Decision, Limit, Limiter, Zone};
//!
//! let zone = Arc::new(Zone::new("mylimit", "10r/s".parse()?, "10m".parse()?));
//! let limiter = Limiter::new(vec![Limit::from_params(zone, "burst=20 nodelay".parse()?)])?;
//! let client: IpAddr = "192.0.2.7".parse()?;
//! // 100 requests in the same millisecond: the first is free, 20 more fit the burst.
//! let passed = (0..100).filter(|_| limiter.check(&client, 0) == Decision::Pass).count();
//! assert_eq!(passed, 21);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Files, and where they sit in `ngx_http_limit_req_module.c`
//! - `rate.rs`: [`Rate`], [`ZoneSize`], [`LimitParams`], [`DelayPolicy`] — parsing `rate=`,
//!   the zone size and `burst=`/`delay=`/`nodelay` (`ngx_http_limit_req_zone()`,
//!   `ngx_http_limit_req()`, `ngx_parse_size()`).
//! - `zone.rs`: [`Zone`] — the per-key states, their arithmetic and eviction
//!   (`ngx_http_limit_req_lookup()`, `ngx_http_limit_req_expire()`).
//! - `limiter.rs`: [`Limiter`], [`Limit`], [`Decision`] — one request against every limit
//!   of a route (`ngx_http_limit_req_handler()`, `ngx_http_limit_req_account()`,
//!   `ngx_http_limit_req_unlock()`).
//! - `clock.rs`: [`Clock`], [`MonotonicClock`], [`ManualClock`] — where `now_ms` comes from.
//! - `error.rs`: [`Error`] — configuration nginx would refuse.
//!
//! # How it differs from nginx
//! - A zone's size only bounds the number of states (`size / 128` on 64-bit); states live on
//!   the heap, not in shared memory, because keel is one process with threads.
//! - Every limit of a [`Limiter`] is keyed by the same key (the client address); nginx lets
//!   each zone have its own key expression, and skips a zone whose key is empty.
//! - nginx marks a request once limited (`r->main->limit_req_status`) so that internal
//!   redirects and subrequests are not limited again; the caller must call
//!   [`Limiter::check`] once per client request.
//! - The delay itself (nginx's timer on the write event) is the caller's: it gets
//!   [`Decision::Delay`] and sleeps. Logging is the caller's too; the decisions carry the
//!   excess and the limit index nginx logs.
//! - See [`Zone`] for sharding and for states created but never charged.
//!
//! # Measured (criterion, release, shared 2-core VM; `benches/limit_req.rs`)
//! | decision on a `10m` zone, `rate=10r/s burst=20 nodelay` | time |
//! |---|---|
//! | known address, passes | ~25 ns |
//! | known address, rejected | ~29 ns |
//! | new address in a full zone (forced LRU eviction), 1 shard / 16 shards | ~110 / ~129 ns |
//! | known address, two limits | ~64 ns |
//! | 1,000,000 distinct addresses through a fresh zone | ~117 ms (~8.6 M/s), 81,920 kept |
//!
//! Zones default to one shard: see [`DEFAULT_SHARDS`] for the contention measurement.

#![forbid(unsafe_code)]

mod clock;
mod error;
mod limiter;
mod rate;
mod zone;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use error::Error;
pub use limiter::{Decision, Delayed, Limit, Limiter, RejectCause, Rejected};
pub use rate::{
    DelayPolicy, LimitParams, Rate, ZoneSize, BYTES_PER_STATE, MIN_ZONE_BYTES, ONE_REQUEST,
};
pub use zone::{KeyState, Zone, DEFAULT_SHARDS};
