//! Shared test support: a realistic static root built with `keel_static::collect` in a
//! tempdir (plus the awkward things collectstatic never writes: a secret outside the
//! root, dotfiles, temp files and symlinks), a hyper server on 127.0.0.1:0 mounting the
//! service at `/static/`, and a raw HTTP/1.1 client that sends request lines exactly
//! as written (no client library normalising `..` or escapes away).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use keel_edge_static::{StaticFiles, StaticHandle, StaticOptions, StaticService};
use keel_static::{collect, CollectOptions, Manifest, Source};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Content of the file outside the static root that no request may ever return.
pub const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-STATIC-ROOT";
/// Content of the dotfile inside the root.
pub const DOTFILE_SECRET: &[u8] = b"DOTFILE-SECRET-INSIDE-THE-ROOT";
/// Content of a collectstatic-style temp file inside the root.
pub const TEMPFILE_SECRET: &[u8] = b"TEMPFILE-SECRET-INSIDE-THE-ROOT";

pub const BIG_NAME: &str = "media/clip big.bin";
pub const BIG_LEN: usize = 1024 * 1024;

/// A collected static root in a tempdir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// `<dir>/static`: so `<root>/../secret.txt` is the secret.
    pub root: PathBuf,
    pub manifest: Manifest,
    /// Source bytes by original name.
    pub sources: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    /// The hashed name of `name` from the manifest.
    pub fn hashed(&self, name: &str) -> String {
        self.manifest.get(name).unwrap().to_owned()
    }

    pub fn source(&self, name: &str) -> &[u8] {
        &self.sources[name]
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.root.join(name)).unwrap()
    }
}

/// About 9 KB of realistic CSS.
pub fn css_9k() -> Vec<u8> {
    let mut css = String::from("@charset \"utf-8\";\n/* site styles — ünïcode */\n");
    let mut i = 0u32;
    while css.len() < 9 * 1024 {
        css.push_str(&format!(
            ".block-{i} {{ color: #{:06x}; margin: {}px {}px; }}\n",
            i.wrapping_mul(7919) % 0x00ff_ffff,
            i % 17,
            i % 5
        ));
        i += 1;
    }
    css.into_bytes()
}

/// Deterministic bytes that do not compress (xorshift), so byte-exactness means something.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("static");
    let mut js = String::new();
    for i in 0..80 {
        js.push_str(&format!(
            "export function f{i}(x) {{ return x * {i} + 1; }}\n"
        ));
    }
    let sources: BTreeMap<String, Vec<u8>> = [
        ("css/site.css", css_9k()),
        ("js/app.js", js.into_bytes()),
        ("img/a b.png", noise(3000, 7)),
        (BIG_NAME, noise(BIG_LEN, 42)),
        ("txt/empty.txt", Vec::new()),
        ("txt/tiny.txt", b"hello\n".to_vec()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    collect(&CollectOptions {
        static_root: root.clone(),
        sources: vec![Source::Memory(
            sources
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )],
    })
    .unwrap();
    let manifest = Manifest::load(&root).unwrap();

    // Things collectstatic would never write but an attacker or an accident might.
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("outside/secret.txt"), SECRET).unwrap();
    std::fs::write(root.join(".env"), DOTFILE_SECRET).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), DOTFILE_SECRET).unwrap();
    std::fs::write(root.join("css/.site.css.keel-tmp.4242"), TEMPFILE_SECRET).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(dir.path().join("secret.txt"), root.join("link-out.txt")).unwrap();
        symlink(dir.path().join("outside"), root.join("linkdir")).unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        symlink(".env", root.join("link-env.txt")).unwrap();
        symlink("css/site.css", root.join("link-in.css")).unwrap();
    }
    Fixture {
        dir,
        root,
        manifest,
        sources,
    }
}

/// A running server: `/static/` → the static service, everything else 404.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: StaticHandle,
}

pub async fn serve_root(root: &Path, opts: StaticOptions) -> TestServer {
    let files = StaticFiles::load(root, opts).unwrap();
    spawn(StaticHandle::new(files)).await
}

pub async fn spawn(handle: StaticHandle) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = StaticService::new(handle.clone()).mount("/static/");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let response = service.handle_request(&req);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestServer { addr, handle }
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub raw_head: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Send `request` as is and read the response until the server closes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let work = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut bytes = Vec::new();
        // The server may reset after answering a malformed request: keep what arrived.
        let _ = stream.read_to_end(&mut bytes).await;
        bytes
    };
    let bytes = tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .expect("response within 20 s");
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Resp {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (k, v) = line.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect::<Vec<_>>();
    let body = bytes[split + 4..].to_vec();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "static responses are always Content-Length framed"
    );
    Resp {
        status,
        headers,
        body,
        raw_head: head,
    }
}

/// `METHOD target HTTP/1.1` with `headers`, closing after the response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes()).await
}

pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", target, headers).await
}

/// `/static/` + the percent-encoded name (spaces and the like).
pub fn url(name: &str) -> String {
    let mut out = String::from("/static/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// True when `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
