//! Grading one answer: the work the site does when a reader submits, with no model. Target:
//! well under 1 ms, so that grading needs no worker thread of its own and the interviewer's
//! reply can start at once.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use keel_interview::{assess, check, parse_track, shipped, Proposal, TRACKS};
use std::hint::black_box;

/// A typical answer: about ninety words, in the reader's own words, with a typo.
const ANSWER: &str = "With burst=20 the first request goes through and twenty more are allowed \
    to wait in the bucket instead of being rejected, so 21 get accepted and the other nine get \
    a 503. Without nodelay nginx queues them and lets one out every 100 ms, so the last one \
    waits about two seconds. With nodelay they are forwarded immediately, but the bucket still \
    empties at the rate, so afterwards the client only gets one request every 100 ms. I think \
    nodelay just removes the wiating, it does not remove the limit.";

fn bench(c: &mut Criterion) {
    let tracks = shipped();
    let edge = tracks.iter().find(|t| t.name == "edge").unwrap();
    let q = edge.question("burst-nodelay").unwrap();
    let v = assess(q, ANSWER);
    assert!(v.score >= 80.0, "{v:?}");

    c.bench_function("assess: typical 90-word answer, 4-point question", |b| {
        b.iter(|| assess(black_box(q), black_box(ANSWER)))
    });

    let long = ANSWER.repeat(10);
    c.bench_function("assess: 900-word answer", |b| {
        b.iter(|| assess(black_box(q), black_box(&long)))
    });

    let proposal = Proposal {
        covered: q.key_points.iter().map(|p| p.id.clone()).collect(),
        misconceptions: q.misconceptions.iter().map(|m| m.id.clone()).collect(),
    };
    c.bench_function("check: the same answer against a full proposal", |b| {
        b.iter(|| check(black_box(q), black_box(ANSWER), black_box(&proposal)))
    });

    let all: Vec<_> = tracks.iter().flat_map(|t| &t.questions).collect();
    c.bench_function("assess: every shipped model answer (36 questions)", |b| {
        b.iter(|| {
            for q in &all {
                black_box(assess(q, &q.model_answer));
            }
        })
    });

    c.bench_function("parse_track: edge.txt", |b| {
        b.iter(|| parse_track(black_box(TRACKS[0].1)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
