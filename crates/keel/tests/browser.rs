//! The live event page in a real browser: headless Chromium, driven through chromedriver's
//! WebDriver HTTP API (plain JSON over HTTP, so no WebDriver crate is needed).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test says so and skips, except under `CI=true`, where that is a failure.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, keel, Process};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver runs in a process group of its own; when the test ends, however it ends,
/// the whole group goes, so a failed test cannot leave Chromium processes behind.
struct GroupGuard(Child);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "chromium and chromium-driver are not installed and CI=true"
        );
        eprintln!("SKIPPED: install Debian's chromium and chromium-driver to run browser tests");
    }
    present
}

/// `keel up` on a free port, publishing enabled; returns the process and its base URL.
fn start_keel_up(statics: &Path, token: &str) -> (Process, String) {
    let mut cmd = keel();
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-access-log"])
        .env("KEEL_STATIC_ROOT", statics)
        .env("KEEL_PUBLISH_TOKEN", token);
    let mut up = Process::start(cmd);
    let base = up.url_after("keel up: serving on");
    (up, base)
}

/// A WebDriver session on a chromedriver of our own.
struct Browser {
    client: reqwest::Client,
    session: String,
    driver: String,
    _chromedriver: GroupGuard,
}

impl Browser {
    async fn start(profile: &Path) -> Browser {
        let port = free_port();
        let chromedriver = GroupGuard(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let driver = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get(format!("{driver}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The flags this machine's closed network needs (see the env notes): no
        // background fetches, no component updates, no sync.
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1100,800",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let created: Value = client
            .post(format!("{driver}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            client,
            session,
            driver,
            _chromedriver: chromedriver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.driver, self.session);
        let request = self.client.request(method.clone(), url);
        let request = if method == reqwest::Method::GET {
            request
        } else {
            request.json(&body)
        };
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn text_of(&self, id: &str) -> String {
        let script = format!("return document.getElementById('{id}').textContent;");
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the element's text satisfies `done`; returns the last text seen.
    async fn wait_text(&self, id: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text_of(id).await;
            if done(&text) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, path: &Path) {
        use base64_decode::decode;
        let value = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = decode(value.as_str().unwrap_or_default());
        std::fs::write(path, png).unwrap();
    }

    async fn quit(self) {
        let url = format!("{}/session/{}", self.driver, self.session);
        let _ = self.client.delete(url).send().await;
    }
}

/// WebDriver hands screenshots over as base64; a few lines beat a dependency.
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        };
        let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
        let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
        for chunk in sextets.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &s)| acc | (u32::from(s) << (18 - 6 * i)));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_shows_a_published_message_live() {
    if !browser_available() {
        return;
    }
    let statics = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let token = "browser-test-token-0123";
    let (_keel, base) = start_keel_up(statics.path(), token);
    let browser = Browser::start(profile.path()).await;

    browser.goto(&format!("{base}/events/")).await;
    let status = browser.wait_text("status", |t| t == "live").await;
    assert_eq!(status, "live", "the page never connected to /stream/");

    let published = keel()
        .args(["publish", "--api", &base, "--token", token, "demo_stream"])
        .arg("Hello from the browser test <b>not bold</b>")
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let log = browser
        .wait_text("log", |t| t.contains("Hello from the browser test"))
        .await;
    // Shown as text, not markup: the tags are part of the visible text.
    assert!(
        log.contains("Hello from the browser test <b>not bold</b>"),
        "the message did not appear on the page: {log:?}"
    );

    let artifact = Path::new(env!("CARGO_TARGET_TMPDIR")).join("events-page.png");
    browser.screenshot(&artifact).await;
    let png = std::fs::read(&artifact).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG screenshot");
    eprintln!("screenshot: {}", artifact.display());
    browser.quit().await;
}
