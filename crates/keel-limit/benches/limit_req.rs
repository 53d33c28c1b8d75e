//! Criterion benchmarks of the limit_req decision (target: ≤ 1 µs per decision) and of the
//! zone's memory bound with 1,000,000 distinct addresses.
//!
//! - `decision/*`: one `Limiter::check` on a `10m` zone (81,920 states), `rate=10r/s
//!   burst=20 nodelay`, for a known address (passing and rejected), for a new address in a
//!   full zone (forced LRU eviction every time) and for a route with two limits.
//! - `zone_1m_distinct`: 1,000,000 distinct addresses through a fresh `10m` zone; prints
//!   the states kept.
//! - `contention/*`: one and two threads deciding on one zone, with 1 and 16 shards: the
//!   measurement behind `DEFAULT_SHARDS`.
//!
//! Run: `cargo bench --bench limit_req -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use keel_limit::{Decision, Limit, Limiter, Zone};

/// Distinct addresses spread over the whole IPv4 space (odd multiplier: a bijection).
fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n.wrapping_mul(0x9E37_79B1)))
}

fn ten_meg_zone(shards: usize) -> Arc<Zone> {
    let size: keel_limit::ZoneSize = "10m".parse().unwrap_or_else(|e| panic!("{e}"));
    let rate = "10r/s".parse().unwrap_or_else(|e| panic!("{e}"));
    let zone = Zone::with_capacity("mylimit", rate, size.states(), shards);
    Arc::new(zone.unwrap_or_else(|e| panic!("{e}")))
}

fn limiter(zones: &[&Arc<Zone>]) -> Limiter {
    let limits = zones
        .iter()
        .map(|z| {
            let params = "burst=20 nodelay".parse().unwrap_or_else(|e| panic!("{e}"));
            Limit::from_params(Arc::clone(z), params)
        })
        .collect();
    Limiter::new(limits).unwrap_or_else(|e| panic!("{e}"))
}

/// Fills the zone to capacity at t=0, so nothing is idle and new keys force evictions.
/// Returns the next unused key number. A sharded zone needs more distinct keys than its
/// capacity before every shard is full: keys do not spread perfectly evenly.
fn fill(limiter: &Limiter, zone: &Zone) -> u32 {
    let capacity = u32::try_from(zone.capacity()).unwrap_or(u32::MAX);
    for i in 0..capacity {
        limiter.check(&ip(i), 0);
    }
    let kept_after_capacity_keys = zone.len();
    let mut next = capacity;
    while zone.len() < zone.capacity() {
        for _ in 0..1024 {
            limiter.check(&ip(next), 0);
            next += 1;
        }
    }
    println!(
        "fill, {} shard(s): {capacity} distinct keys kept {kept_after_capacity_keys}; \
         full after {next}",
        zone.shard_count()
    );
    next
}

fn decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");

    let zone = ten_meg_zone(1);
    let l = limiter(&[&zone]);
    fill(&l, &zone);
    let key = ip(7);
    // One request per 100 ms at 10r/s: excess stays 0, every decision is a pass.
    let mut now = 0u64;
    g.bench_function("known_key_pass", |b| {
        b.iter(|| {
            now += 100;
            let d = l.check(black_box(&key), now);
            debug_assert_eq!(d, Decision::Pass);
            d
        })
    });
    // Same millisecond over and over: after the burst, every decision is a rejection.
    g.bench_function("known_key_reject", |b| {
        b.iter(|| l.check(black_box(&key), now))
    });

    for shards in [1, 16] {
        let zone = ten_meg_zone(shards);
        let l = limiter(&[&zone]);
        let mut next = fill(&l, &zone);
        g.bench_function(format!("new_key_full_zone/{shards}_shards"), |b| {
            b.iter(|| {
                next = next.wrapping_add(1);
                l.check(&ip(next), 1)
            })
        });
        assert_eq!(zone.len(), zone.capacity());
    }

    let (a, b2) = (ten_meg_zone(1), ten_meg_zone(1));
    let l = limiter(&[&a, &b2]);
    let mut now = 0u64;
    g.bench_function("known_key_two_limits", |b| {
        b.iter(|| {
            now += 100;
            l.check(black_box(&key), now)
        })
    });
    g.finish();
}

fn million_distinct(c: &mut Criterion) {
    const N: u32 = 1_000_000;
    let mut g = c.benchmark_group("zone_1m_distinct");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(N)));
    let mut kept = 0;
    g.bench_function("10m_zone", |b| {
        b.iter_batched(
            || {
                let zone = ten_meg_zone(1);
                (limiter(&[&zone]), zone)
            },
            |(l, zone)| {
                for i in 0..N {
                    l.check(&ip(i), u64::from(i / 100));
                }
                kept = zone.len();
                assert!(kept <= zone.capacity());
                (l, zone)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    if kept > 0 {
        println!("zone_1m_distinct: {N} distinct addresses → {kept} states kept (capacity 81920)");
    }
}

/// One or two threads, each deciding on its own stream of addresses drawn from 60,000, on
/// one shared zone. Reports wall time per decision *per thread*: with two threads and no
/// contention it would equal the one-thread figure.
fn contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("contention");
    for (threads, shards) in [(1, 1), (1, 16), (2, 1), (2, 16)] {
        let zone = ten_meg_zone(shards);
        let l = limiter(&[&zone]);
        g.bench_function(format!("{threads}_threads/{shards}_shards"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let l = &l;
                        s.spawn(move || {
                            let mut x = 0x2545_F491_u32.wrapping_add(t as u32);
                            for i in 0..iters {
                                // xorshift: cheap, reproducible key stream.
                                x ^= x << 13;
                                x ^= x >> 17;
                                x ^= x << 5;
                                black_box(l.check(&ip(x % 60_000), i));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = decision, million_distinct, contention
}
criterion_main!(benches);
