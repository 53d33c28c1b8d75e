//! Path safety over real HTTP: request lines written byte for byte to a TCP socket (no
//! client library to normalise them), each asserting that the secret placed *outside*
//! the static root, the dotfiles and temp files *inside* it, and `/etc/passwd` never
//! come back, that nothing is a 5xx, and that each payload gets the documented status
//! (400 for malformed/escaping paths, 404 for hidden or unindexed names; see
//! `src/path.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use keel_edge_static::StaticOptions;

#[tokio::test]
async fn traversal_payloads_never_leak_and_never_5xx() {
    let fx = fixture();
    let server = serve_root(&fx.root, StaticOptions::default()).await;
    let secret_abs = fx.dir.path().join("secret.txt");
    let secret_abs = secret_abs.to_str().unwrap();
    let secret_abs_encoded = secret_abs.replace('/', "%2F");
    let long = format!("/static/{}x", "a/".repeat(600));

    // (request target, expected status)
    let owned: Vec<(String, u16)> = vec![
        (format!("/static/{secret_abs}"), 400),
        (
            format!(
                "/static/%2F{}",
                secret_abs_encoded.trim_start_matches("%2F")
            ),
            400,
        ),
        (format!("/static/{secret_abs_encoded}"), 400),
        (long, 400),
    ];
    let fixed: &[(&str, u16)] = &[
        // Plain and encoded dot-dot.
        ("/static/../secret.txt", 400),
        ("/static/../../secret.txt", 400),
        ("/static/css/../../secret.txt", 400),
        ("/static/manifest.json/../../secret.txt", 400),
        ("/static/../secret.txt?x=1", 400),
        ("/static/%2e%2e/secret.txt", 400),
        ("/static/%2E%2E/secret.txt", 400),
        ("/static/.%2e/secret.txt", 400),
        ("/static/%2e./secret.txt", 400),
        ("/static/%2e%2e", 400),
        ("/static/css/%2e%2e/%2e%2e/secret.txt", 400),
        ("/static/./css/site.css", 400),
        ("/static/css/%2e/site.css", 400),
        // Encoded separators.
        ("/static/..%2fsecret.txt", 400),
        ("/static/..%2Fsecret.txt", 400),
        ("/static/%2e%2e%2fsecret.txt", 400),
        ("/static/..%2f..%2f..%2f..%2fetc%2fpasswd", 400),
        ("/static/css/site.css%2f..%2f..%2fsecret.txt", 400),
        ("/static/linkdir%2fsecret.txt", 400),
        ("/static/..%5csecret.txt", 400),
        ("/static/%2e%2e%5csecret.txt", 400),
        ("/static/%5c..%5csecret.txt", 400),
        ("/static/..\\secret.txt", 400),
        // Double encoding.
        ("/static/%252e%252e/secret.txt", 400),
        ("/static/%252e%252e%252fsecret.txt", 400),
        ("/static/..%252fsecret.txt", 400),
        // NUL and control characters.
        ("/static/..%00/secret.txt", 400),
        ("/static/secret.txt%00.css", 400),
        ("/static/%00", 400),
        ("/static/.%00./secret.txt", 400),
        ("/static/..%09/secret.txt", 400),
        // Absolute paths and empty segments.
        ("/static//etc/passwd", 400),
        ("/static/%2fetc%2fpasswd", 400),
        ("/static/%2Fetc/passwd", 400),
        ("/static/css//site.css", 400),
        // Invalid or overlong UTF-8, invalid escapes.
        ("/static/%c0%ae%c0%ae/secret.txt", 400),
        ("/static/%C0%AE%C0%AE%C0%AF", 400),
        ("/static/%c0%af", 400),
        ("/static/%e0%80%ae%e0%80%ae/secret.txt", 400),
        ("/static/..%c0%afsecret.txt", 400),
        ("/static/%ff", 400),
        ("/static/%zz", 400),
        ("/static/%2", 400),
        ("/static/%u002e%u002e/secret.txt", 400),
        // Absolute-form request target (proxy style).
        ("http://127.0.0.1/static/../secret.txt", 400),
        // Dotfiles, dot-directories and temp files inside the root: never served.
        ("/static/.env", 404),
        ("/static/%2eenv", 404),
        ("/static/%2e%65%6e%76", 404),
        ("/static/.git/config", 404),
        ("/static/css/.site.css.keel-tmp.4242", 404),
        ("/static/css/%2esite.css.keel-tmp.4242", 404),
        ("/static/...", 404),
        ("/static/.../secret.txt", 404),
        ("/static/..;/secret.txt", 404),
        // Symlinks out of the root (or to a dotfile) are not in the index.
        ("/static/link-out.txt", 404),
        ("/static/%6c%69%6e%6b%2d%6f%75%74%2e%74%78%74", 404),
        ("/static/linkdir/secret.txt", 404),
        ("/static/passwd", 404),
        ("/static/link-env.txt", 404),
        // Look-alikes that are just unknown names.
        ("/static/%ef%bc%8e%ef%bc%8e/secret.txt", 404),
        ("/static/secret.txt", 404),
        ("/static/C:/Windows/win.ini", 404),
    ];
    let mut payloads: Vec<(String, u16)> = owned;
    payloads.extend(fixed.iter().map(|(t, s)| ((*t).to_owned(), *s)));
    assert!(payloads.len() >= 30);

    let mut failures = Vec::new();
    for (target, expected) in &payloads {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        check(
            &fx,
            server.addr,
            target,
            request.as_bytes(),
            *expected,
            &mut failures,
        )
        .await;
    }

    // Request lines no URI parser should accept: raw non-ASCII, spaces, relative
    // targets. hyper answers these itself with 400.
    let raw_lines: &[&[u8]] = &[
        b"GET /static/\xc0\xae\xc0\xae/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /static/ ../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET ../../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET static/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /static/\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ];
    for request in raw_lines {
        let label =
            String::from_utf8_lossy(request.split(|&b| b == b'\r').next().unwrap()).into_owned();
        check(&fx, server.addr, &label, request, 400, &mut failures).await;
    }
    assert!(
        failures.is_empty(),
        "{} payloads misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The suite is only meaningful if the server does serve the root.
    let ok = get(server.addr, "/static/css/site.css", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, fx.source("css/site.css"));
    let ok = get(server.addr, "/static/css/site%2Ecss", &[]).await;
    assert_eq!(ok.status, 200, "an encoded dot inside a real name is fine");
}

async fn check(
    fx: &Fixture,
    addr: std::net::SocketAddr,
    label: &str,
    request: &[u8],
    expected: u16,
    failures: &mut Vec<String>,
) {
    let resp = raw(addr, request).await;
    let leaked = [SECRET, DOTFILE_SECRET, TEMPFILE_SECRET, b"root:x:0:0"]
        .iter()
        .any(|secret| contains(&resp.body, secret));
    if leaked {
        failures.push(format!("LEAK {label}: {}", resp.status));
    }
    if resp.status >= 500 {
        failures.push(format!("5xx {label}: {}", resp.status));
    }
    if resp.status != expected {
        failures.push(format!("{label}: expected {expected}, got {}", resp.status));
    }
    let _ = fx;
}
