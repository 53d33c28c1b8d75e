//! The static hot path without a network: path check, index lookup, encoding
//! negotiation, preconditions and header building for a 9 KB CSS file, against the
//! naive structure (stat + read from disk per request, as a server without an index
//! does). Run: `cargo bench --bench lookup`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{ACCEPT_ENCODING, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method};
use keel_edge_static::{StaticFiles, StaticOptions};
use keel_static::{collect, CollectOptions, Manifest, Source};

fn css_9k() -> Vec<u8> {
    let mut css = String::new();
    let mut i = 0;
    while css.len() < 9 * 1024 {
        css.push_str(&format!(
            ".c{i} {{ color: #{:06x}; margin: {}px {}px; }}\n",
            i * 7919 % 0xffffff,
            i % 17,
            i % 5
        ));
        i += 1;
    }
    css.into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("static");
    collect(&CollectOptions {
        static_root: root.clone(),
        sources: vec![Source::Memory(vec![("css/site.css".to_owned(), css_9k())])],
    })
    .unwrap();
    let hashed = Manifest::load(&root)
        .unwrap()
        .get("css/site.css")
        .unwrap()
        .to_owned();
    let files = StaticFiles::load(&root, StaticOptions::default()).unwrap();

    let mut browser = HeaderMap::new();
    browser.insert(
        ACCEPT_ENCODING,
        HeaderValue::from_static("gzip, deflate, br, zstd"),
    );
    let etag = files
        .serve(&Method::GET, &hashed, &browser)
        .headers()
        .get("etag")
        .unwrap()
        .clone();
    let mut revalidate = browser.clone();
    revalidate.insert(IF_NONE_MATCH, etag);
    let none = HeaderMap::new();

    let mut group = c.benchmark_group("static_9k_css");
    group.bench_function("hit_br", |b| {
        b.iter(|| black_box(files.serve(&Method::GET, black_box(&hashed), &browser)))
    });
    group.bench_function("hit_identity", |b| {
        b.iter(|| black_box(files.serve(&Method::GET, black_box(&hashed), &none)))
    });
    group.bench_function("not_modified_304", |b| {
        b.iter(|| black_box(files.serve(&Method::GET, black_box(&hashed), &revalidate)))
    });
    group.bench_function("encoded_name_hit", |b| {
        b.iter(|| black_box(files.serve(&Method::GET, black_box("css/site%2Ecss"), &browser)))
    });
    group.bench_function("miss_404", |b| {
        b.iter(|| black_box(files.serve(&Method::GET, black_box("css/nope.css"), &browser)))
    });
    group.bench_function("traversal_400", |b| {
        b.iter(|| black_box(files.serve(&Method::GET, black_box("%2e%2e/etc/passwd"), &browser)))
    });
    // The naive structure: resolve, stat and read the file on every request.
    let path = root.join(&hashed);
    group.bench_function("naive_stat_and_read", |b| {
        b.iter(|| {
            let canonical = std::fs::canonicalize(black_box(&path)).unwrap();
            let meta = std::fs::metadata(&canonical).unwrap();
            let bytes = std::fs::read(&canonical).unwrap();
            black_box((meta.len(), meta.modified().unwrap(), bytes))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
