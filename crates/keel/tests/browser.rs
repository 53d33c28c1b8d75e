//! The live event page in a real browser: headless Chromium, driven through chromedriver's
//! WebDriver HTTP API (`common::webdriver`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test says so and skips, except under `CI=true`, where that is a failure.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::webdriver::{browser_available, Browser};
use common::{keel, Process};

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
