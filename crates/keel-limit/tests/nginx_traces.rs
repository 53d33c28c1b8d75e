//! Request traces replayed on a fake millisecond clock, each compared with the result worked
//! out by hand from nginx's `ngx_http_limit_req_module.c`. The arithmetic is in the comments:
//!
//! - lookup (`ngx_http_limit_req_lookup`): `ms = now - last` (clock back ≤ 60 s → 0,
//!   further → 1); `excess = old - rate * ms / 1000 + 1000`, floored at 0; `excess > burst`
//!   → rejected, nothing written; else stored, `last = now` if `ms != 0`. A new key: excess 0.
//! - account (`ngx_http_limit_req_account`): wait `(excess - delay) * 1000 / rate` ms when
//!   `excess > delay`; `nodelay` never waits; several limits → the longest wait.
//! - expire (`ngx_http_limit_req_expire`): on a new key, drop up to two LRU states idle
//!   ≥ 60 s with `excess - rate * ms / 1000 <= 0`; when full, first drop the LRU by force.
//!
//! Units: rate in thousandths of r/s (10r/s = 10000), one request = 1000, burst=20 → 20000.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use keel_limit::{
    Clock, Decision, Delayed, Error, KeyState, Limit, Limiter, ManualClock, RejectCause, Rejected,
    Zone,
};

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

const A: u32 = 0xC000_0201; // 192.0.2.1
const B: u32 = 0xC000_0202;
const C: u32 = 0xC000_0203;
const D: u32 = 0xC000_0204;
const E: u32 = 0xC000_0205;

/// A single-shard zone, so eviction order is exactly nginx's single LRU queue.
fn zone(name: &str, rate: &str, states: usize) -> Arc<Zone> {
    Arc::new(Zone::with_capacity(name, rate.parse().unwrap(), states, 1).unwrap())
}

fn limit(zone: &Arc<Zone>, params: &str) -> Limit {
    Limit::from_params(Arc::clone(zone), params.parse().unwrap())
}

fn limiter(limits: Vec<Limit>) -> Limiter {
    Limiter::new(limits).unwrap()
}

fn state(zone: &Zone, key: u32) -> Option<(u64, Option<u64>)> {
    zone.state(&ip(key))
        .map(|KeyState { excess, last_ms }| (excess, last_ms))
}

fn over_burst(limit: usize, excess: u64, retry_after_ms: u64) -> Decision {
    Decision::Reject(Rejected {
        limit,
        cause: RejectCause::OverBurst {
            excess,
            retry_after_ms,
        },
    })
}

fn delay(limit: usize, excess: u64, delay_ms: u64) -> Decision {
    Decision::Delay(Delayed {
        delay_ms,
        excess,
        limit,
    })
}

#[test]
fn design_example_one_hundred_at_once_twenty_one_pass() {
    // rate=10r/s burst=20 nodelay, 100 requests from a fresh address at t=1000.
    // #1: new state, excess 0, last=1000 → pass (the first request is free).
    // #k (k ≥ 2): ms = 0, excess = (k-2)*1000 - 0 + 1000 = (k-1)*1000 → pass while ≤ 20000,
    //   i.e. k ≤ 21. #22..#100: excess 20000 + 1000 = 21000 > 20000 → reject, not stored.
    let z = zone("mylimit", "10r/s", 1_000);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    let decisions: Vec<Decision> = (0..100).map(|_| l.check(&ip(A), 1_000)).collect();
    assert!(decisions[..21].iter().all(|d| *d == Decision::Pass));
    // Retry-After: 21000 - 20000 = 1000 thousandths must leak; 10000 * ms / 1000 ≥ 1000
    // → ms ≥ 100, counted from last = 1000, so 100 ms from now (1 s in the header).
    for d in &decisions[21..] {
        assert_eq!(*d, over_burst(0, 21_000, 100));
    }
    let Decision::Reject(r) = decisions[21] else {
        unreachable!()
    };
    assert_eq!(r.retry_after_secs(), Some(1));
    assert_eq!(state(&z, A), Some((20_000, Some(1_000))));
}

#[test]
fn design_example_steady_twenty_per_second_for_five_seconds_passes_seventy() {
    // rate=10r/s burst=20 nodelay; request i at t = 50*i ms, i = 0..99 (20 r/s for 5 s).
    // 50 ms leaks 10000*50/1000 = 500, a request adds 1000: +500 per accepted request.
    // i=0: new, 0. i=1..40: excess 500*i, i=40 → 20000 pass (41 at once).
    // i=41 (t=2050): 20000 - 500 + 1000 = 20500 > 20000 → reject, last stays 2000.
    // i=42 (t=2100): ms = 100 → 20000 - 1000 + 1000 = 20000 → pass, last = 2100.
    // From there every odd i is rejected and every even i passes: one per 100 ms.
    // Passed: 41 + |{42, 44, …, 98}| = 41 + 29 = 70.
    let z = zone("mylimit", "10r/s", 1_000);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    let passed: Vec<u64> = (0..100u64)
        .filter(|i| l.check(&ip(A), 50 * i) == Decision::Pass)
        .collect();
    let expected: Vec<u64> = (0..=40).chain((42..100).step_by(2)).collect();
    assert_eq!(passed, expected);
    assert_eq!(passed.len(), 70);
    assert_eq!(state(&z, A), Some((20_000, Some(4_900))));
}

#[test]
fn requests_at_exactly_the_rate_never_build_excess() {
    // 10r/s, one request per 100 ms: excess = 0 - 10000*100/1000 + 1000 = 0 every time, so
    // even burst=0 (burst left out) passes them all, with no delay in the default mode.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "")]);
    for i in 0..50 {
        assert_eq!(l.check(&ip(A), 100 * i), Decision::Pass, "request {i}");
    }
    assert_eq!(state(&z, A), Some((0, Some(4_900))));
}

#[test]
fn burst_zero_allows_one_request_per_interval() {
    // 10r/s with burst left out (nginx refuses burst=0; 0 is the default), default delay.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "")]);
    // t=0: new → pass.
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    // t=50: 0 - 500 + 1000 = 500 > 0 → reject. To fit, 1000 must leak: 10000 * ms / 1000
    // ≥ 1000 → ms ≥ 100 after last = 0, so retry after 100 - 50 = 50 ms.
    assert_eq!(l.check(&ip(A), 50), over_burst(0, 500, 50));
    // t=100: 0 - 1000 + 1000 = 0 → pass, last = 100.
    assert_eq!(l.check(&ip(A), 100), Decision::Pass);
    // t=199: 0 - 990 + 1000 = 10 > 0 → reject, 1 ms to go.
    assert_eq!(l.check(&ip(A), 199), over_burst(0, 10, 1));
    // t=200: 0 - 1000 + 1000 = 0 → pass.
    assert_eq!(l.check(&ip(A), 200), Decision::Pass);
}

#[test]
fn per_minute_rates_truncate_like_nginx() {
    // 7r/m → 7 * 1000 / 60 = 116 (not 116.67). With the exact rate 1000 thousandths would
    // leak after 8571.4 ms; with 116 it takes 116 * ms / 1000 ≥ 1000 → ms ≥ 8620.69 → 8621.
    let z = zone("z", "7r/m", 10);
    let l = limiter(vec![limit(&z, "nodelay")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    // t=8600: 116*8600/1000 = 997 → 0 - 997 + 1000 = 3 > 0 → reject (exact rate would pass).
    assert_eq!(l.check(&ip(A), 8_600), over_burst(0, 3, 21));
    // t=8620: 116*8620/1000 = 999 (999.92 truncated) → 1 > 0 → reject.
    assert_eq!(l.check(&ip(A), 8_620), over_burst(0, 1, 1));
    // t=8621: 116*8621/1000 = 1000 → 0 → pass.
    assert_eq!(l.check(&ip(A), 8_621), Decision::Pass);

    // 30r/m → 500: one request per 2000 ms.
    let z = zone("z", "30r/m", 10);
    let l = limiter(vec![limit(&z, "nodelay")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    // t=1999: 500*1999/1000 = 999 → 1 > 0 → reject.
    assert_eq!(l.check(&ip(A), 1_999), over_burst(0, 1, 1));
    assert_eq!(l.check(&ip(A), 2_000), Decision::Pass);
}

#[test]
fn default_mode_delays_every_request_of_excess() {
    // rate=10r/s burst=5, neither nodelay nor delay=: nginx's limit->delay = 0.
    // 7 requests at t=0: #1 new (0) → pass; #2..#6 excess 1000..5000 → wait
    // (excess - 0) * 1000 / 10000 = 100..500 ms; #7 excess 6000 > 5000 → reject.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=5")]);
    let got: Vec<Decision> = (0..7).map(|_| l.check(&ip(A), 0)).collect();
    assert_eq!(
        got,
        vec![
            Decision::Pass,
            delay(0, 1_000, 100),
            delay(0, 2_000, 200),
            delay(0, 3_000, 300),
            delay(0, 4_000, 400),
            delay(0, 5_000, 500),
            over_burst(0, 6_000, 100),
        ]
    );
    assert_eq!(got[5].wait(), Some(std::time::Duration::from_millis(500)));
    assert_eq!(got[5].status(), "DELAYED");
    // t=100: 5000 - 1000 + 1000 = 5000 → accepted, waits 500 ms: the queue keeps its length.
    assert_eq!(l.check(&ip(A), 100), delay(0, 5_000, 500));
}

#[test]
fn delay_n_lets_the_first_n_requests_of_excess_through_at_once() {
    // rate=10r/s burst=12 delay=8 (nginx docs' example): 14 requests at t=0.
    // #1 new → 0; #2..#9 excess 1000..8000 ≤ 8000 → no wait; #10..#13 excess 9000..12000
    // → wait (excess - 8000) * 1000 / 10000 = 100..400 ms; #14 excess 13000 > 12000 → reject.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=12 delay=8")]);
    let got: Vec<Decision> = (0..14).map(|_| l.check(&ip(A), 0)).collect();
    assert!(got[..9].iter().all(|d| *d == Decision::Pass));
    assert_eq!(
        got[9..],
        [
            delay(0, 9_000, 100),
            delay(0, 10_000, 200),
            delay(0, 11_000, 300),
            delay(0, 12_000, 400),
            over_burst(0, 13_000, 100),
        ]
    );
}

#[test]
fn delay_shorter_than_a_millisecond_is_a_pass() {
    // (excess - delay) * 1000 / rate truncates: 10r/s, burst=1, at t=0 and t=99:
    // 0 - 990 + 1000 = 10 → wait 10 * 1000 / 10000 = 1 ms. At 30000r/s (30000000):
    // t=0 → 0; t=0 → 1000 → wait 1000*1000/30000000 = 0 → nginx's `if (!delay)` → PASSED.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=1")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    assert_eq!(l.check(&ip(A), 99), delay(0, 10, 1));
    let z = zone("z", "30000r/s", 10);
    let l = limiter(vec![limit(&z, "burst=1")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    assert_eq!(state(&z, A), Some((1_000, Some(0))));
}

#[test]
fn rejected_requests_are_not_charged() {
    // rate=10r/s burst=20 nodelay: 21 pass at t=0 (excess 20000). Then 1000 requests at
    // t=0 and 1000 at t=50 are rejected (21000 and 20000 - 500 + 1000 = 20500 > 20000);
    // none is stored. At t=100: 20000 - 1000 + 1000 = 20000 → pass. Had the rejections
    // been charged, the client would be locked out for minutes.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    for _ in 0..21 {
        assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    }
    for t in [0, 50] {
        for _ in 0..1_000 {
            assert!(l.check(&ip(A), t).is_rejected());
        }
    }
    assert_eq!(state(&z, A), Some((20_000, Some(0))));
    assert_eq!(l.check(&ip(A), 100), Decision::Pass);
    assert_eq!(state(&z, A), Some((20_000, Some(100))));
}

#[test]
fn clock_going_back_up_to_a_minute_counts_as_no_time_and_keeps_last() {
    // rate=10r/s burst=5 nodelay. lookup: -60000 ≤ ms < 0 → ms = 0, and `if (ms) last = now`
    // keeps `last` from moving back.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=5 nodelay")]);
    assert_eq!(l.check(&ip(A), 10_000), Decision::Pass); // new: (0, 10000)
    assert_eq!(l.check(&ip(A), 10_000), Decision::Pass); // ms 0: (1000, 10000)
    assert_eq!(l.check(&ip(A), 9_000), Decision::Pass); // ms -1000 → 0: (2000, 10000)
    assert_eq!(state(&z, A), Some((2_000, Some(10_000))));
    // t=10100: ms = 100 from the kept last → 2000 - 1000 + 1000 = 2000, last = 10100.
    assert_eq!(l.check(&ip(A), 10_100), Decision::Pass);
    assert_eq!(state(&z, A), Some((2_000, Some(10_100))));
}

#[test]
fn clock_going_back_more_than_a_minute_counts_one_ms_and_resets_last() {
    // lookup: ms < -60000 → ms = 1; since ms != 0, last = now (resynchronised backwards).
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=5 nodelay")]);
    for _ in 0..4 {
        assert_eq!(l.check(&ip(A), 100_000), Decision::Pass); // excess 0, 1000, 2000, 3000
    }
    // t=30000: ms = -70000 → 1: 3000 - 10000*1/1000 + 1000 = 3990, last = 30000.
    assert_eq!(l.check(&ip(A), 30_000), Decision::Pass);
    assert_eq!(state(&z, A), Some((3_990, Some(30_000))));
    // t=30100: ms = 100 → 3990 - 1000 + 1000 = 3990.
    assert_eq!(l.check(&ip(A), 30_100), Decision::Pass);
    assert_eq!(state(&z, A), Some((3_990, Some(30_100))));
}

#[test]
fn a_clock_behind_last_pushes_retry_after_out() {
    // Stored (5000, last=10000) at burst 5; at t=9500 (ms → 0) 6000 > 5000 → reject.
    // 1000 must leak after last: 100 ms after 10000, i.e. 600 ms after 9500.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=5 nodelay")]);
    for _ in 0..6 {
        assert_eq!(l.check(&ip(A), 10_000), Decision::Pass);
    }
    assert_eq!(l.check(&ip(A), 9_500), over_burst(0, 6_000, 600));
}

#[test]
fn when_a_later_limit_rejects_the_earlier_ones_are_not_charged() {
    // limit_req zone=a burst=100 nodelay; limit_req zone=b nodelay;  a: 10r/s, b: 1r/s.
    let a = zone("a", "10r/s", 10);
    let b = zone("b", "1r/s", 10);
    let l = limiter(vec![limit(&a, "burst=100 nodelay"), limit(&b, "nodelay")]);
    // t=0 #1: a new → pinned, b new → charged 0; account a: never charged → excess 0, last 0.
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    assert_eq!(state(&a, A), Some((0, Some(0))));
    // t=0 #2..#11: a: 0 + 1000 ≤ 100000 → pinned only; b: 0 + 1000 > 0 → reject by limit 1.
    // ngx_http_limit_req_unlock() releases a's pin: a stays at 0.
    // b's retry: 1000 must leak at 1000/s → 1000 ms.
    for _ in 0..10 {
        assert_eq!(l.check(&ip(A), 0), over_burst(1, 1_000, 1_000));
    }
    assert_eq!(state(&a, A), Some((0, Some(0))));
    assert_eq!(state(&b, A), Some((0, Some(0))));
    // t=1000: a: 0 - 10000 + 1000 → 0, b: 0 - 1000 + 1000 = 0 → both charged 0.
    assert_eq!(l.check(&ip(A), 1_000), Decision::Pass);
    assert_eq!(state(&a, A), Some((0, Some(1_000))));
    assert_eq!(state(&b, A), Some((0, Some(1_000))));
}

#[test]
fn when_an_earlier_limit_rejects_the_later_ones_are_not_even_looked_up() {
    // Zone a is shared by two routes; the first route has filled key A's burst in it.
    let a = zone("a", "10r/s", 10);
    let b = zone("b", "10r/s", 10);
    let route1 = limiter(vec![limit(&a, "nodelay")]);
    let route2 = limiter(vec![limit(&a, "nodelay"), limit(&b, "nodelay")]);
    assert_eq!(route1.check(&ip(A), 0), Decision::Pass);
    // route2: a: 0 + 1000 > 0 → reject by limit 0; the loop stops before b.
    assert_eq!(route2.check(&ip(A), 0), over_burst(0, 1_000, 100));
    assert!(b.is_empty());
}

#[test]
fn a_state_created_by_a_rejected_request_stays_uncharged() {
    // Key A is at its limit in zone b (through a route of its own); zone a is fresh.
    let a = zone("a", "10r/s", 10);
    let b = zone("b", "10r/s", 10);
    assert_eq!(
        limiter(vec![limit(&b, "")]).check(&ip(A), 5_000),
        Decision::Pass
    );
    let both = limiter(vec![limit(&a, ""), limit(&b, "")]);
    // a: new key, not the last limit → created with excess 0, pinned, no `last` (nginx: 0);
    // b: 0 + 1000 > 0 → reject; a is unpinned, not charged, and its state is kept.
    assert!(both.check(&ip(A), 5_000).is_rejected());
    assert_eq!(state(&a, A), Some((0, None)));
    // Next request in a alone: "long ago" → 0 - everything + 1000 → 0 → pass, last = now.
    assert_eq!(
        limiter(vec![limit(&a, "")]).check(&ip(A), 5_000),
        Decision::Pass
    );
    assert_eq!(state(&a, A), Some((0, Some(5_000))));
}

#[test]
fn all_limits_are_charged_and_the_longest_wait_wins() {
    // a: 1r/s burst=10, b: 10r/s burst=10, both in the default (delay=0) mode.
    let a = zone("a", "1r/s", 10);
    let b = zone("b", "10r/s", 10);
    let l = limiter(vec![limit(&a, "burst=10"), limit(&b, "burst=10")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    // #2 at t=0: b (last, looked up first to be charged) 1000 → 1000*1000/10000 = 100 ms;
    // a (accounted after) 1000 → 1000*1000/1000 = 1000 ms → the longer, from limit 0.
    assert_eq!(l.check(&ip(A), 0), delay(0, 1_000, 1_000));
    assert_eq!(state(&a, A), Some((1_000, Some(0))));
    assert_eq!(state(&b, A), Some((1_000, Some(0))));

    // A nodelay limit charges but never sets the wait: only b's 100 ms remains.
    let a = zone("a", "1r/s", 10);
    let b = zone("b", "10r/s", 10);
    let l = limiter(vec![limit(&a, "burst=10 nodelay"), limit(&b, "burst=10")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    assert_eq!(l.check(&ip(A), 0), delay(1, 1_000, 100));
    assert_eq!(state(&a, A), Some((1_000, Some(0))));

    // Equal waits: nginx replaces only on `delay > max_delay`, so the last limit is named.
    let a = zone("a", "10r/s", 10);
    let b = zone("b", "10r/s", 10);
    let l = limiter(vec![limit(&a, "burst=10"), limit(&b, "burst=10")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    assert_eq!(l.check(&ip(A), 0), delay(1, 1_000, 100));
}

#[test]
fn idle_fully_leaked_states_expire_after_sixty_seconds() {
    // 10r/s burst=20 nodelay. t=0: A ×6 (excess 5000), then B ×1 (0). LRU tail→head: A, B.
    let z = zone("z", "10r/s", 100);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    for _ in 0..6 {
        assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    }
    assert_eq!(l.check(&ip(B), 0), Decision::Pass);
    // t=59999, new C: expire(1) looks at tail A: |ms| = 59999 < 60000 → stops. 3 states.
    assert_eq!(l.check(&ip(C), 59_999), Decision::Pass);
    assert_eq!(z.len(), 3);
    // t=60000, new D: tail A: ms 60000, 5000 - 10000*60000/1000 ≤ 0 → dropped; tail B:
    // ms 60000, 0 - 600000 ≤ 0 → dropped; two is the most expire(1) drops. C, D remain.
    assert_eq!(l.check(&ip(D), 60_000), Decision::Pass);
    assert_eq!((state(&z, A), state(&z, B)), (None, None));
    assert_eq!(z.len(), 2);
}

#[test]
fn at_most_two_idle_states_expire_per_new_key() {
    let z = zone("z", "10r/s", 100);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    for k in [A, B, C] {
        assert_eq!(l.check(&ip(k), 0), Decision::Pass);
    }
    // t=60000, new D: A and B dropped (n = 1, 2), C kept although idle too.
    assert_eq!(l.check(&ip(D), 60_000), Decision::Pass);
    assert_eq!(z.len(), 2);
    assert!(state(&z, C).is_some());
    // New E: tail C dropped; then tail D (ms 0 < 60000) stops the loop.
    assert_eq!(l.check(&ip(E), 60_000), Decision::Pass);
    assert_eq!(z.len(), 2);
    assert_eq!(state(&z, C), None);
}

#[test]
fn a_state_whose_excess_has_not_leaked_is_kept_and_stops_expiry() {
    // 1r/m → 16 thousandths/s. A ×21 at t=0 → excess 20000; B ×1 → 0. Tail→head: A, B.
    // t=60000, new C: tail A: 20000 - 16*60000/1000 = 20000 - 960 > 0 → expire stops,
    // without looking at B (idle and leaked). The zone is not full: 3 states.
    let z = zone("z", "1r/m", 100);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    for _ in 0..21 {
        assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    }
    assert_eq!(l.check(&ip(B), 0), Decision::Pass);
    assert_eq!(l.check(&ip(C), 60_000), Decision::Pass);
    assert_eq!(z.len(), 3);
    assert_eq!(state(&z, B), Some((0, Some(0))));
}

#[test]
fn a_full_zone_drops_its_least_recently_used_state_by_force() {
    // Room for 3 states. t=0: A ×21 (at the burst, 20000), B, C. Tail→head: A, B, C.
    let z = zone("z", "10r/s", 3);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    for _ in 0..21 {
        assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    }
    assert!(l.check(&ip(A), 0).is_rejected());
    assert_eq!(l.check(&ip(B), 0), Decision::Pass);
    assert_eq!(l.check(&ip(C), 0), Decision::Pass);
    // t=1, new D: expire(1): tail A idle 1 ms → nothing. Full → expire(0): A dropped by
    // force, then tail B (idle 1 ms) stops it. D is stored: B, C, D.
    assert_eq!(l.check(&ip(D), 1), Decision::Pass);
    assert_eq!(z.len(), 3);
    assert_eq!(state(&z, A), None);
    // A comes back as a new key, with a fresh burst (as in nginx), forcing B out.
    assert_eq!(l.check(&ip(A), 2), Decision::Pass);
    assert_eq!(state(&z, A), Some((0, Some(2))));
    assert_eq!(state(&z, B), None);
    assert_eq!(z.len(), 3);
}

#[test]
fn forced_eviction_also_takes_up_to_two_idle_states() {
    // 1r/m (16), room for 3. t=0: A ×21 (20000), B ×1, C ×1. Tail→head: A, B, C.
    // t=60000, new D: expire(1): tail A not leaked (20000 > 960) → stops; full →
    // expire(0): A by force; then B and C, idle 60 s with 0 - 960 ≤ 0 → dropped. Only D left.
    let z = zone("z", "1r/m", 3);
    let l = limiter(vec![limit(&z, "burst=20 nodelay")]);
    for _ in 0..21 {
        assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    }
    assert_eq!(l.check(&ip(B), 0), Decision::Pass);
    assert_eq!(l.check(&ip(C), 0), Decision::Pass);
    assert_eq!(l.check(&ip(D), 60_000), Decision::Pass);
    assert_eq!(z.len(), 1);
    assert!(state(&z, D).is_some());
}

#[test]
fn a_rejected_client_counts_as_recently_used() {
    // Room for 2. A then B at t=0; A rejected at t=10 moves A to the LRU head (lookup moves
    // the node before the burst check), so new C at t=20 forces out B, not A.
    let z = zone("z", "10r/s", 2);
    let l = limiter(vec![limit(&z, "nodelay")]);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    assert_eq!(l.check(&ip(B), 0), Decision::Pass);
    // t=10: 0 - 100 + 1000 = 900 > 0 → reject.
    assert_eq!(l.check(&ip(A), 10), over_burst(0, 900, 90));
    assert_eq!(l.check(&ip(C), 20), Decision::Pass);
    assert_eq!(state(&z, B), None);
    assert_eq!(state(&z, A), Some((0, Some(0))));
}

#[test]
fn one_million_distinct_addresses_keep_the_zone_bounded() {
    // A 10m zone holds 10 * 1048576 / 128 = 81920 states. 1,000,000 distinct IPv4
    // addresses, one request each, within 10 s (nothing idle for 60 s): every new key forces
    // the LRU state out, every request passes (first request free), and no more than 81920
    // states are ever kept.
    let z = Arc::new(Zone::new(
        "mylimit",
        "10r/s".parse().unwrap(),
        "10m".parse().unwrap(),
    ));
    assert_eq!(z.capacity(), 81_920);
    let l = limiter(vec![Limit::from_params(
        Arc::clone(&z),
        "burst=20 nodelay".parse().unwrap(),
    )]);
    for i in 0..1_000_000u32 {
        assert_eq!(l.check(&ip(i), u64::from(i / 100)), Decision::Pass);
        if i % 100_000 == 0 {
            assert!(z.len() <= z.capacity());
        }
    }
    assert_eq!(z.len(), 81_920);
    // The newest survive, the oldest were dropped.
    assert!(z.state(&ip(999_999)).is_some());
    assert!(z.state(&ip(0)).is_none());
}

#[test]
fn a_sharded_zone_stays_bounded_too() {
    let z = Arc::new(Zone::with_capacity("z", "10r/s".parse().unwrap(), 1_000, 16).unwrap());
    let l = limiter(vec![Limit::from_params(
        Arc::clone(&z),
        "burst=20 nodelay".parse().unwrap(),
    )]);
    for i in 0..100_000u32 {
        let key = IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64));
        assert_eq!(l.check(&key, 0), Decision::Pass);
    }
    assert_eq!(z.len(), 1_000);
}

#[test]
fn dry_run_charges_what_a_real_run_charges_and_lets_everything_through() {
    // Same trace through a real and a dry-run limiter (separate zones): 10r/s burst=2
    // nodelay, 5 requests at t=0 then 1 at t=100.
    let real_zone = zone("real", "10r/s", 10);
    let dry_zone = zone("dry", "10r/s", 10);
    let real = limiter(vec![limit(&real_zone, "burst=2 nodelay")]);
    let dry = limiter(vec![limit(&dry_zone, "burst=2 nodelay")]).with_dry_run(true);
    for t in [0, 0, 0, 0, 0, 100] {
        let (r, d) = (real.check(&ip(A), t), dry.check(&ip(A), t));
        match r {
            Decision::Pass => assert_eq!(d, Decision::Pass),
            Decision::Reject(x) => assert_eq!(d, Decision::DryRunReject(x)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!d.is_rejected());
        assert_eq!(d.wait(), None);
        assert_eq!(real_zone.state(&ip(A)), dry_zone.state(&ip(A)));
    }
    // #1..#3 pass (0, 1000, 2000); #4, #5 would be rejected at 3000 and are NOT charged
    // (the handler unlocks before it checks dry_run); t=100: 2000 - 1000 + 1000 = 2000.
    assert_eq!(state(&dry_zone, A), Some((2_000, Some(100))));
    let d = dry.check(&ip(A), 100);
    assert_eq!(d.status(), "REJECTED_DRY_RUN");
}

#[test]
fn dry_run_delays_are_charged_but_not_waited() {
    // 10r/s burst=5, default delay: #2 and #3 at t=0 would wait 100 and 200 ms.
    let z = zone("z", "10r/s", 10);
    let l = limiter(vec![limit(&z, "burst=5")]).with_dry_run(true);
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
    let d2 = l.check(&ip(A), 0);
    let d3 = l.check(&ip(A), 0);
    let want = |excess, delay_ms| {
        Decision::DryRunDelay(Delayed {
            delay_ms,
            excess,
            limit: 0,
        })
    };
    assert_eq!((d2, d3), (want(1_000, 100), want(2_000, 200)));
    assert_eq!(d3.status(), "DELAYED_DRY_RUN");
    assert_eq!(d3.wait(), None);
    assert_eq!(state(&z, A), Some((2_000, Some(0))));
}

#[test]
fn concurrent_requests_from_one_address_pass_exactly_burst_plus_one() {
    // One zone: lookup and charge happen under one lock, so 4 threads × 50 requests at the
    // same millisecond pass exactly 21 in total, as 200 sequential requests would.
    let z = Arc::new(Zone::with_capacity("z", "10r/s".parse().unwrap(), 100, 8).unwrap());
    let l = limiter(vec![Limit::from_params(
        Arc::clone(&z),
        "burst=20 nodelay".parse().unwrap(),
    )]);
    let passed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    if l.check(&ip(A), 7) == Decision::Pass {
                        passed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(passed.into_inner(), 21);
    assert_eq!(state(&z, A), Some((20_000, Some(7))));
}

#[test]
fn a_zone_is_listed_once_per_limiter() {
    let z = zone("one", "10r/s", 10);
    let err = Limiter::new(vec![limit(&z, ""), limit(&z, "burst=5")]).unwrap_err();
    assert_eq!(err, Error::DuplicateZone("one".into()));
    assert!(err.to_string().contains("\"one\""));
}

#[test]
fn no_limits_means_pass() {
    let l: Limiter = Limiter::new(Vec::new()).unwrap();
    assert_eq!(l.check(&ip(A), 0), Decision::Pass);
}

#[test]
fn works_with_the_manual_clock_and_any_hashable_key() {
    let clock = ManualClock::new(1_000);
    let z: Arc<Zone<&str>> =
        Arc::new(Zone::with_capacity("users", "1r/s".parse().unwrap(), 10, 1).unwrap());
    let l = Limiter::new(vec![Limit::new(z, 1, keel_limit::DelayPolicy::NoDelay)]).unwrap();
    assert_eq!(l.check(&"alice", clock.now_ms()), Decision::Pass);
    assert_eq!(l.check(&"alice", clock.now_ms()), Decision::Pass);
    assert!(l.check(&"alice", clock.now_ms()).is_rejected());
    clock.advance(1_000);
    assert_eq!(l.check(&"alice", clock.now_ms()), Decision::Pass);
}

#[test]
fn types_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Zone>();
    assert_send_sync::<Limiter>();
    assert_send_sync::<Decision>();
}
