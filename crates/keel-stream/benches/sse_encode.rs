//! SSE encoding: the cost of one event, and keel's encode-once fan-out against the naive
//! per-client `format!("data: {}\n\n")` of the classic view.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keel_stream::sse::encode_event;
use keel_stream::EventId;

fn encode(c: &mut Criterion) {
    let id = Some(EventId::new(1_700_000_000_000, 3));
    let short = "Test Event";
    let multi = "line\n".repeat(20);
    let big = "x".repeat(4096);
    let mut g = c.benchmark_group("encode_event");
    for (name, payload) in [
        ("short", short),
        ("20_lines", multi.as_str()),
        ("4KiB", big.as_str()),
    ] {
        g.throughput(Throughput::Bytes(payload.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| encode_event(black_box(id), None, black_box(payload)))
        });
    }
    g.finish();
}

fn fan_out(c: &mut Criterion) {
    const CLIENTS: usize = 1000;
    let payload = "x".repeat(200);
    let mut g = c.benchmark_group("fan_out_1000_clients");
    g.throughput(Throughput::Elements(CLIENTS as u64));
    g.bench_function("encode_once_share_bytes", |b| {
        b.iter(|| {
            let frame = encode_event(None, None, black_box(&payload));
            let mut total = 0;
            for _ in 0..CLIENTS {
                let per_client: Bytes = frame.clone();
                total += black_box(per_client).len();
            }
            total
        })
    });
    g.bench_function("naive_format_per_client", |b| {
        b.iter(|| {
            let mut total = 0;
            for _ in 0..CLIENTS {
                let per_client = Bytes::from(format!("data: {}\n\n", black_box(&payload)));
                total += black_box(per_client).len();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, encode, fan_out);
criterion_main!(benches);
