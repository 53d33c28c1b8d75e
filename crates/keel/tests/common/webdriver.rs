//! Headless Chromium driven through chromedriver's WebDriver HTTP API (plain JSON over
//! HTTP, so no WebDriver crate is needed), for the test files that look at pages in a
//! real browser.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! [`browser_available`] says so and the test skips, except under `CI=true`, where that is
//! a failure.
//!
//! Every wait here has a deadline: chromedriver's HTTP answers, page loads and
//! [`Browser::wait_until`] all give up after at most [`WAIT`].

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::free_port;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The longest any one wait of a browser test lasts.
pub const WAIT: Duration = Duration::from_secs(15);

/// How WebDriver names an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver runs in a process group of its own; when the test ends, however it ends,
/// the whole group goes, so a failed test cannot leave Chromium processes behind.
pub struct GroupGuard(pub Child);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Whether Chromium and chromedriver are installed; without them, fails under `CI=true`
/// and otherwise prints SKIPPED.
pub fn browser_available() -> bool {
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

/// A chromedriver of our own on a free port. Any number of [`Browser`] sessions can run
/// on it; it stops (with its Chromiums) when the last of them is gone.
pub struct Driver {
    url: String,
    client: reqwest::Client,
    _group: GroupGuard,
}

impl Driver {
    pub async fn start() -> Arc<Driver> {
        let port = free_port();
        let group = GroupGuard(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get(format!("{url}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Arc::new(Driver {
            url,
            client,
            _group: group,
        })
    }
}

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Element {
    fn from_value(value: &Value) -> Option<Element> {
        value[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
    }

    /// The reference as JSON, to pass the element to [`Browser::execute`].
    pub fn json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

/// One WebDriver session: a headless Chromium with a profile of its own.
pub struct Browser {
    driver: Arc<Driver>,
    session: String,
}

impl Browser {
    /// A session on a chromedriver of its own, in a 1100×800 window.
    pub async fn start(profile: &Path) -> Browser {
        Browser::open(&Driver::start().await, profile, (1100, 800)).await
    }

    /// A session on `driver` in a `width`×`height` window, with its profile in `profile`.
    pub async fn open(
        driver: &Arc<Driver>,
        profile: &Path,
        (width, height): (u32, u32),
    ) -> Browser {
        // The flags this machine's closed network needs (see the env notes): no
        // background fetches, no component updates, no sync.
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": { "pageLoad": 10_000, "script": 10_000, "implicit": 0 },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let created: Value = driver
            .client
            .post(format!("{}/session", driver.url))
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
            driver: driver.clone(),
            session,
        }
    }

    /// One WebDriver command; `Err` carries WebDriver's error and message.
    pub async fn command(&self, method: Method, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/session/{}{path}", self.driver.url, self.session);
        let request = self.driver.client.request(method.clone(), url);
        let request = if method == Method::GET {
            request
        } else {
            request.json(&body)
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("{method} {path}: {status}, not JSON: {e}"))?;
        let value = answer["value"].clone();
        match value["error"].as_str() {
            Some(error) if !status.is_success() => Err(format!(
                "{method} {path}: {error}: {}",
                value["message"].as_str().unwrap_or_default()
            )),
            _ => Ok(value),
        }
    }

    /// One WebDriver command that must succeed.
    pub async fn call(&self, method: Method, path: &str, body: Value) -> Value {
        match self.command(method, path, body).await {
            Ok(value) => value,
            Err(e) => panic!("WebDriver: {e}\n{}", self.excerpt().await),
        }
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", json!({ "url": url })).await;
    }

    /// The address of the current page.
    pub async fn current_url(&self) -> String {
        self.command(Method::GET, "/url", Value::Null)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Runs `script` (a function body that may `return`) in the page with `args`.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Where the browser is and the start of what it shows, to explain a failure.
    pub async fn excerpt(&self) -> String {
        let url = self.current_url().await;
        let text = self
            .command(
                Method::POST,
                "/execute/sync",
                json!({ "script": "return document.body ? document.body.innerText : '';", "args": [] }),
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let text: String = text.chars().take(1500).collect();
        format!("  at {url}\n  page text:\n{text}")
    }

    /// The `textContent` of the element with this id, or "" when there is none.
    pub async fn text_of(&self, id: &str) -> String {
        let script =
            "var e = document.getElementById(arguments[0]); return e ? e.textContent : '';";
        self.execute(script, json!([id]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the element's text satisfies `done`; returns the last text seen.
    pub async fn wait_text(&self, id: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text_of(id).await;
            if done(&text) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `limit` (at most [`WAIT`]) until `script` returns something truthy and
    /// returns it; otherwise panics, saying what was awaited, what `script` last returned
    /// and where the browser is.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        args: Value,
    ) -> Value {
        let deadline = Instant::now() + limit.min(WAIT);
        loop {
            let value = self
                .command(
                    Method::POST,
                    "/execute/sync",
                    json!({ "script": script, "args": args }),
                )
                .await;
            let truthy = match &value {
                Ok(Value::Null | Value::Bool(false)) | Err(_) => false,
                Ok(Value::String(s)) => !s.is_empty(),
                Ok(Value::Number(n)) => n.as_f64() != Some(0.0),
                Ok(_) => true,
            };
            if truthy {
                return value.unwrap();
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {limit:?} for {what}; last answer {value:?}\n{}",
                    self.excerpt().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the current address satisfies `done`; returns it.
    pub async fn wait_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.current_url().await;
            if done(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited for the browser to reach {what}\n{}",
                    self.excerpt().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching the CSS selector, waiting up to 10 s for one.
    pub async fn find(&self, css: &str) -> Element {
        let script = "return document.querySelector(arguments[0]);";
        let found = self
            .wait_until(
                &format!("an element matching {css:?}"),
                Duration::from_secs(10),
                script,
                json!([css]),
            )
            .await;
        Element::from_value(&found).unwrap_or_else(|| panic!("not an element: {found}"))
    }

    /// The first element matching the CSS selector whose own text (its text nodes, not its
    /// children's) or whole text, trimmed, is `text`; waits up to 10 s for one.
    pub async fn find_by_text(&self, css: &str, text: &str) -> Element {
        let script = "var css = arguments[0], want = arguments[1];
            var all = document.querySelectorAll(css);
            for (var i = 0; i < all.length; i++) {
                var own = '';
                all[i].childNodes.forEach(function (n) { if (n.nodeType === 3) own += n.textContent; });
                if (own.trim() === want || all[i].textContent.trim() === want) return all[i];
            }
            return null;";
        let found = self
            .wait_until(
                &format!("an element matching {css:?} with text {text:?}"),
                Duration::from_secs(10),
                script,
                json!([css, text]),
            )
            .await;
        Element::from_value(&found).unwrap_or_else(|| panic!("not an element: {found}"))
    }

    /// Types `text` into the element, as keystrokes.
    pub async fn send_keys(&self, element: &Element, text: &str) {
        self.call(
            Method::POST,
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// Finds the field by CSS selector and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        self.send_keys(&field, text).await;
    }

    /// Clicks the element (and waits for a navigation it starts, as chromedriver does).
    pub async fn click(&self, element: &Element) {
        if let Err(e) = self.try_click(element).await {
            panic!("WebDriver: {e}\n{}", self.excerpt().await);
        }
    }

    /// Clicks the element; `Err` says why that failed (e.g. the page it led to did not load).
    pub async fn try_click(&self, element: &Element) -> Result<(), String> {
        self.command(
            Method::POST,
            &format!("/element/{}/click", element.0),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// The element's rendered text, as a person sees it (hidden parts are left out).
    pub async fn text(&self, element: &Element) -> String {
        self.call(
            Method::GET,
            &format!("/element/{}/text", element.0),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The element's DOM property `name` (e.g. `value`, `checked`).
    pub async fn property(&self, element: &Element, name: &str) -> Value {
        self.call(
            Method::GET,
            &format!("/element/{}/property/{name}", element.0),
            Value::Null,
        )
        .await
    }

    /// Whether the element is shown on the page.
    pub async fn displayed(&self, element: &Element) -> bool {
        self.call(
            Method::GET,
            &format!("/element/{}/displayed", element.0),
            Value::Null,
        )
        .await
        .as_bool()
        .unwrap_or(false)
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(
            Method::POST,
            "/goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
        )
        .await
    }

    /// Saves what the window shows as a PNG.
    pub async fn screenshot(&self, path: &Path) {
        let value = self.call(Method::GET, "/screenshot", Value::Null).await;
        let png = base64_decode::decode(value.as_str().unwrap_or_default());
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session and closes its Chromium.
    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.driver.url, self.session);
        let _ = self.driver.client.delete(url).send().await;
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
