//! Black-box behaviour of static serving over real TCP: content types, validators and
//! 304s, ranges, HEAD, precompressed variants, cache headers, streaming, methods,
//! reloads. Each test builds its own static root and server on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use keel_edge_static::{SkipReason, StaticFiles, StaticOptions};

const BROWSER_AE: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br, zstd");

#[tokio::test]
async fn content_types_and_standard_headers() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let css = fx.hashed("css/site.css");

    let resp = get(server.addr, &url(&css), &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.raw_head);
    assert_eq!(resp.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.header("accept-ranges"), Some("bytes"));
    assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
    assert_eq!(resp.header("content-encoding"), None);
    let etag = resp.header("etag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18,
        "{etag}"
    );
    let last_modified = resp.header("last-modified").unwrap();
    assert!(httpdate::parse_http_date(last_modified).is_ok());
    assert_eq!(resp.body, fx.read(&css));
    assert_eq!(
        resp.header("content-length").unwrap(),
        fx.read(&css).len().to_string()
    );

    let cases = [
        ("js/app.js", "text/javascript; charset=utf-8"),
        ("img/a b.png", "image/png"),
        ("txt/tiny.txt", "text/plain; charset=utf-8"),
        ("manifest.json", "application/json; charset=utf-8"),
    ];
    for (name, expected) in cases {
        let resp = get(server.addr, &url(name), &[]).await;
        assert_eq!(resp.status, 200, "{name}");
        let ct = resp.header("content-type").unwrap();
        // mime_guess has said both text/ and application/javascript over its versions.
        let ct = ct.replace("application/javascript", "text/javascript");
        assert_eq!(ct, expected, "{name}");
        assert_eq!(resp.body, fx.read(name), "{name}");
    }
    // A name with a space, spelled with %20; no variants → no Vary.
    let png = get(server.addr, "/static/img/a%20b.png", &[BROWSER_AE]).await;
    assert_eq!(png.status, 200);
    assert_eq!(png.body, fx.source("img/a b.png"));
    assert_eq!(png.header("vary"), None);
    assert_eq!(png.header("content-encoding"), None);

    let empty = get(
        server.addr,
        "/static/txt/empty.txt",
        &[("Range", "bytes=0-10")],
    )
    .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.header("content-length"), Some("0"));
    assert!(empty.body.is_empty());
}

#[tokio::test]
async fn cache_control_immutable_only_for_hashed_names() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let immutable = "public, max-age=31536000, immutable";
    for name in ["css/site.css", "js/app.js", "img/a b.png", BIG_NAME] {
        let hashed = fx.hashed(name);
        let resp = request(server.addr, "HEAD", &url(&hashed), &[BROWSER_AE]).await;
        assert_eq!(resp.status, 200, "{hashed}");
        assert_eq!(resp.header("cache-control"), Some(immutable), "{hashed}");
        let resp = request(server.addr, "HEAD", &url(name), &[BROWSER_AE]).await;
        assert_eq!(
            resp.header("cache-control"),
            Some("public, max-age=60"),
            "{name}"
        );
    }
    // The precompressed file under its own name is cached like its base.
    let br = format!("{}.br", fx.hashed("css/site.css"));
    let resp = get(server.addr, &url(&br), &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some(immutable));
    assert_eq!(resp.body, fx.read(&br));

    // A configurable short max-age.
    let opts = StaticOptions {
        max_age: std::time::Duration::from_secs(300),
        ..StaticOptions::default()
    };
    let server = serve_root(&fx.root, opts).await;
    let resp = get(server.addr, "/static/css/site.css", &[]).await;
    assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
}

#[tokio::test]
async fn precompressed_variant_chosen_by_accept_encoding() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let css = fx.hashed("css/site.css");
    let original = fx.read(&css);
    assert!(fx.root.join(format!("{css}.br")).exists());
    assert!(fx.root.join(format!("{css}.gz")).exists());

    let br = get(server.addr, &url(&css), &[BROWSER_AE]).await;
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    assert_eq!(br.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(br.body, fx.read(&format!("{css}.br")));
    assert_eq!(unbrotli(&br.body), original);
    assert!(br.body.len() < original.len());

    let gz = get(
        server.addr,
        &url(&css),
        &[("Accept-Encoding", "gzip, deflate")],
    )
    .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&gz.body), original);

    let refused = get(
        server.addr,
        &url(&css),
        &[("Accept-Encoding", "br;q=0, gzip")],
    )
    .await;
    assert_eq!(refused.header("content-encoding"), Some("gzip"));

    let identity = get(
        server.addr,
        &url(&css),
        &[("Accept-Encoding", "br;q=0, gzip;q=0")],
    )
    .await;
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.header("vary"), Some("Accept-Encoding"));
    assert_eq!(identity.body, original);

    let none = get(server.addr, &url(&css), &[]).await;
    assert_eq!(none.header("content-encoding"), None);
    assert_eq!(none.header("vary"), Some("Accept-Encoding"));

    // Each representation has its own strong ETag.
    let tags = [&br, &gz, &identity].map(|r| r.header("etag").unwrap().to_owned());
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[0], tags[2]);
    assert_ne!(tags[1], tags[2]);
}

#[tokio::test]
async fn not_modified_via_etag() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let css = url(&fx.hashed("css/site.css"));
    let first = get(server.addr, &css, &[BROWSER_AE]).await;
    let etag = first.header("etag").unwrap().to_owned();

    let again = get(server.addr, &css, &[BROWSER_AE, ("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304, "{}", again.raw_head);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("cache-control"), first.header("cache-control"));
    assert_eq!(again.header("vary"), Some("Accept-Encoding"));
    assert_eq!(again.header("last-modified"), first.header("last-modified"));

    // Weak comparison, lists and `*`.
    let weak = format!("W/{etag}");
    let list = format!("\"nope\", {etag}");
    for value in [weak.as_str(), list.as_str(), "*"] {
        let resp = get(server.addr, &css, &[BROWSER_AE, ("If-None-Match", value)]).await;
        assert_eq!(resp.status, 304, "{value}");
    }
    // Another ETag, or the br ETag while asking for identity: full response.
    let resp = get(
        server.addr,
        &css,
        &[BROWSER_AE, ("If-None-Match", "\"0000\"")],
    )
    .await;
    assert_eq!(resp.status, 200);
    let resp = get(server.addr, &css, &[("If-None-Match", &etag)]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-encoding"), None);

    // If-Match that fails → 412.
    let resp = get(server.addr, &css, &[("If-Match", "\"0000\"")]).await;
    assert_eq!(resp.status, 412);
}

#[tokio::test]
async fn not_modified_via_if_modified_since() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let target = "/static/js/app.js";
    let first = get(server.addr, target, &[]).await;
    let last_modified = first.header("last-modified").unwrap().to_owned();
    let modified = httpdate::parse_http_date(&last_modified).unwrap();

    let resp = get(
        server.addr,
        target,
        &[("If-Modified-Since", &last_modified)],
    )
    .await;
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());
    let later = httpdate::fmt_http_date(modified + std::time::Duration::from_secs(3600));
    let resp = get(server.addr, target, &[("If-Modified-Since", &later)]).await;
    assert_eq!(resp.status, 304);
    let earlier = httpdate::fmt_http_date(modified - std::time::Duration::from_secs(3600));
    let resp = get(server.addr, target, &[("If-Modified-Since", &earlier)]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, fx.read("js/app.js"));
    // If-None-Match takes precedence: a non-matching tag means 200 whatever the date.
    let resp = get(
        server.addr,
        target,
        &[
            ("If-Modified-Since", &last_modified),
            ("If-None-Match", "\"other\""),
        ],
    )
    .await;
    assert_eq!(resp.status, 200);
    // An unparsable date is ignored.
    let resp = get(
        server.addr,
        target,
        &[("If-Modified-Since", "last tuesday")],
    )
    .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn ranges_206_and_416() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let css = fx.hashed("css/site.css");
    let target = url(&css);
    let bytes = fx.read(&css);
    let len = bytes.len();

    let cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len - 1),
        ("bytes=-50", len - 50, len - 1),
        ("bytes=10-999999", 10, len - 1),
    ];
    for (range, start, end) in cases {
        // Range beats Accept-Encoding: identity bytes, but Vary is still there.
        let resp = get(server.addr, &target, &[BROWSER_AE, ("Range", range)]).await;
        assert_eq!(resp.status, 206, "{range}");
        assert_eq!(
            resp.header("content-range").unwrap(),
            format!("bytes {start}-{end}/{len}"),
            "{range}"
        );
        assert_eq!(resp.header("content-encoding"), None, "{range}");
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
        assert_eq!(resp.body, &bytes[start..=end], "{range}");
        assert_eq!(
            resp.header("content-length").unwrap(),
            (end - start + 1).to_string()
        );
    }

    for range in [
        format!("bytes={len}-"),
        "bytes=-0".to_owned(),
        format!("bytes={}-{}", len + 5, len + 10),
    ] {
        let resp = get(server.addr, &target, &[("Range", &range)]).await;
        assert_eq!(resp.status, 416, "{range}");
        assert_eq!(
            resp.header("content-range").unwrap(),
            format!("bytes */{len}")
        );
    }

    // Several ranges, or syntax we do not understand: the whole file with 200.
    for range in ["bytes=0-1,5-6", "bytes=5-1", "lines=1-2", "bytes=x-"] {
        let resp = get(server.addr, &target, &[("Range", range)]).await;
        assert_eq!(resp.status, 200, "{range}");
        assert_eq!(resp.body, bytes, "{range}");
    }

    // If-Range: the current identity ETag or Last-Modified allows the range; anything
    // else gets the whole (new) file.
    let full = get(server.addr, &target, &[]).await;
    let etag = full.header("etag").unwrap().to_owned();
    let last_modified = full.header("last-modified").unwrap().to_owned();
    let resp = get(
        server.addr,
        &target,
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    )
    .await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, &bytes[..10]);
    let resp = get(
        server.addr,
        &target,
        &[("Range", "bytes=0-9"), ("If-Range", &last_modified)],
    )
    .await;
    assert_eq!(resp.status, 206);
    let resp = get(
        server.addr,
        &target,
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, bytes);
    let weak = format!("W/{etag}");
    let resp = get(
        server.addr,
        &target,
        &[("Range", "bytes=0-9"), ("If-Range", &weak)],
    )
    .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let css = fx.hashed("css/site.css");
    for (ae, encoded_name) in [(None, css.clone()), (Some("br"), format!("{css}.br"))] {
        let headers: Vec<(&str, &str)> = ae.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let get_resp = get(server.addr, &url(&css), &headers).await;
        let head = request(server.addr, "HEAD", &url(&css), &headers).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length").unwrap(),
            fx.read(&encoded_name).len().to_string()
        );
        for name in [
            "content-type",
            "etag",
            "last-modified",
            "cache-control",
            "vary",
            "content-encoding",
            "accept-ranges",
        ] {
            assert_eq!(head.header(name), get_resp.header(name), "{name}");
        }
    }
    // HEAD of a streamed file and of a range.
    let big = request(server.addr, "HEAD", &url(BIG_NAME), &[]).await;
    assert_eq!(big.status, 200);
    assert_eq!(big.header("content-length").unwrap(), BIG_LEN.to_string());
    assert!(big.body.is_empty());
    let ranged = request(
        server.addr,
        "HEAD",
        &url(BIG_NAME),
        &[("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.header("content-length"), Some("10"));
    assert!(ranged.body.is_empty());
    let missing = request(server.addr, "HEAD", "/static/nope.css", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.is_empty());
}

#[tokio::test]
async fn large_file_is_streamed_byte_exact() {
    let fx = fixture();
    let files = StaticFiles::load(&fx.root, StaticOptions::default()).unwrap();
    // The 1 MB file (twice: original and hashed copy) is over the 256 KiB memory limit.
    assert!(files.streamed_files() >= 2, "{files:?}");
    assert!(files.memory_bytes() < 256 * 1024, "{files:?}");
    // A file and its (byte-identical) hashed copy share one buffer.
    let small_total: u64 = ["css/site.css", "js/app.js", "img/a b.png"]
        .iter()
        .map(|n| 2 * fx.source(n).len() as u64)
        .sum();
    assert!(files.memory_bytes() < small_total, "{files:?}");
    let server = spawn(keel_edge_static::StaticHandle::new(files)).await;
    let expected = fx.source(BIG_NAME);

    for name in [BIG_NAME.to_owned(), fx.hashed(BIG_NAME)] {
        let resp = get(server.addr, &url(&name), &[BROWSER_AE]).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length").unwrap(), BIG_LEN.to_string());
        assert_eq!(
            resp.header("content-type"),
            Some("application/octet-stream")
        );
        assert!(resp.body == expected, "{name}: streamed body differs");
    }
    // A range across the 64 KiB chunk boundaries of a streamed file.
    let (start, end) = (65_000usize, 300_123usize);
    let range = format!("bytes={start}-{end}");
    let resp = get(server.addr, &url(BIG_NAME), &[("Range", &range)]).await;
    assert_eq!(resp.status, 206);
    assert_eq!(
        resp.header("content-range").unwrap(),
        format!("bytes {start}-{end}/{BIG_LEN}")
    );
    assert!(resp.body == expected[start..=end]);
    let resp = get(server.addr, &url(BIG_NAME), &[("Range", "bytes=-1")]).await;
    assert_eq!(resp.body, &expected[BIG_LEN - 1..]);
}

#[tokio::test]
async fn variants_can_be_streamed_too() {
    let fx = fixture();
    let opts = StaticOptions {
        memory_limit_per_file_bytes: 1024,
        stream_chunk_bytes: 1000,
        ..StaticOptions::default()
    };
    let server = serve_root(&fx.root, opts).await;
    let css = fx.hashed("css/site.css");
    let br = get(server.addr, &url(&css), &[BROWSER_AE]).await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&br.body), fx.read(&css));
    let identity = get(server.addr, &url(&css), &[]).await;
    assert_eq!(identity.body, fx.read(&css));
    let resp = get(server.addr, &url(&css), &[("Range", "bytes=999-2001")]).await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, &fx.read(&css)[999..=2001]);
}

#[tokio::test]
async fn other_methods_are_405() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for target in [
            "/static/css/site.css",
            "/static/missing.css",
            "/static/../secret.txt",
        ] {
            let resp = request(server.addr, method, target, &[("Content-Length", "0")]).await;
            assert_eq!(resp.status, 405, "{method} {target}");
            assert_eq!(resp.header("allow"), Some("GET, HEAD"), "{method} {target}");
        }
    }
}

#[tokio::test]
async fn missing_directories_and_outside_the_mount_are_404() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    for target in [
        "/static/nope.css",
        "/static/css/",
        "/static/css",
        "/static/",
        "/static",
        "/css/site.css",
        "/",
        "/staticcss/site.css",
    ] {
        let resp = get(server.addr, target, &[]).await;
        assert_eq!(resp.status, 404, "{target}");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    }
    // The query string is not part of the name (cache busters work).
    let resp = get(server.addr, "/static/css/site.css?v=3", &[]).await;
    assert_eq!(resp.status, 200);
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_inside_are_served_outside_are_not_indexed() {
    let fx = fixture();
    let files = StaticFiles::load(&fx.root, StaticOptions::default()).unwrap();
    let skipped: Vec<_> = files
        .skipped()
        .iter()
        .map(|s| {
            (
                s.path.file_name().unwrap().to_str().unwrap().to_owned(),
                s.reason.clone(),
            )
        })
        .collect();
    for name in ["link-out.txt", "passwd", "link-env.txt", "secret.txt"] {
        assert!(
            skipped
                .iter()
                .any(|(n, r)| n == name && matches!(r, SkipReason::SymlinkOutsideRoot { .. })),
            "{name} not reported in {skipped:?}"
        );
    }
    assert!(!files.contains("link-out.txt"));
    assert!(!files.contains("linkdir/secret.txt"));
    assert!(!files.contains(".env"));
    assert!(files.contains("link-in.css"));
    let server = spawn(keel_edge_static::StaticHandle::new(files)).await;
    let resp = get(server.addr, "/static/link-in.css", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, fx.source("css/site.css"));
}

#[tokio::test]
async fn reload_swaps_the_index() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    std::fs::write(fx.root.join("txt/new.txt"), b"new file").unwrap();
    std::fs::write(fx.root.join("txt/tiny.txt"), b"changed").unwrap();
    let before = get(server.addr, "/static/txt/tiny.txt", &[]).await;
    // The index is a snapshot: new files are unknown and old bytes are still served.
    assert_eq!(
        get(server.addr, "/static/txt/new.txt", &[]).await.status,
        404
    );
    assert_eq!(before.body, b"hello\n");

    let handle = server.handle.clone();
    tokio::task::spawn_blocking(move || handle.reload())
        .await
        .unwrap()
        .unwrap();
    let resp = get(server.addr, "/static/txt/new.txt", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"new file");
    let after = get(server.addr, "/static/txt/tiny.txt", &[]).await;
    assert_eq!(after.body, b"changed");
    assert_ne!(
        after.header("etag"),
        before.header("etag"),
        "ETag follows content"
    );

    // A failed reload keeps the old index.
    let broken_root = fx.dir.path().join("gone");
    let err = StaticFiles::load(&broken_root, StaticOptions::default()).unwrap_err();
    assert!(err.to_string().contains("open static root"), "{err}");
    std::fs::write(fx.root.join("manifest.json"), b"{not json").unwrap();
    assert!(server.handle.reload().is_err());
    assert_eq!(
        get(server.addr, "/static/txt/new.txt", &[]).await.status,
        200
    );
}

/// `plain_hit` is `serve`'s plain 200 as wire bytes: the same header lines in the same
/// order and the same body, for every form; and it declines whatever is not that.
#[tokio::test]
async fn plain_hit_is_the_same_answer_as_serve() {
    use http::{HeaderMap, HeaderValue, Method};
    let fx = fixture();
    let files = StaticFiles::load(&fx.root, StaticOptions::default()).unwrap();
    let css = fx.hashed("css/site.css");
    let wire = |headers: &HeaderMap| {
        let mut out = Vec::new();
        for (name, value) in headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    };
    for name in [css.as_str(), "css/site.css", "js/app.js"] {
        for ae in [
            None,
            Some("br, gzip"),
            Some("gzip"),
            Some("br;q=0, gzip;q=0"),
        ] {
            let raw: Vec<(&str, &[u8])> = ae
                .iter()
                .map(|v| ("Accept-Encoding", v.as_bytes()))
                .collect();
            let hit = files
                .plain_hit(name, raw.iter().copied())
                .unwrap_or_else(|| panic!("{name} {ae:?}: no hit"));
            let mut map = HeaderMap::new();
            if let Some(v) = ae {
                map.insert("accept-encoding", HeaderValue::from_static(v));
            }
            let response = files.serve(&Method::GET, name, &map);
            assert_eq!(response.status(), 200);
            assert_eq!(
                String::from_utf8_lossy(&hit.head),
                String::from_utf8_lossy(&wire(response.headers())),
                "{name} {ae:?}"
            );
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(hit.body, body, "{name} {ae:?}");
        }
    }
    let with = |name: &'static str, value: &'static [u8]| {
        files.plain_hit(&css, [(name, value)].into_iter()).is_none()
    };
    assert!(with("Range", b"bytes=0-1"));
    assert!(with("If-None-Match", b"\"x\""));
    assert!(with("if-modified-since", b"Wed, 21 Oct 2015 07:28:00 GMT"));
    assert!(with("If-Range", b"\"x\""));
    assert!(with("If-Match", b"*"));
    assert!(with(
        "If-Unmodified-Since",
        b"Wed, 21 Oct 2015 07:28:00 GMT"
    ));
    assert!(files.plain_hit("nope.css", std::iter::empty()).is_none());
    assert!(files
        .plain_hit("../etc/passwd", std::iter::empty())
        .is_none());
    // Held on disk, not in memory: streamed by `serve`, never a hit.
    assert!(files.plain_hit(BIG_NAME, std::iter::empty()).is_none());
}
