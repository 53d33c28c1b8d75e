//! The blog site in a real browser, as a person uses it: register, log out and in, filter
//! posts by tag, and watch a post published from the admin (in a second browser) appear
//! live on the home page. Headless Chromium through chromedriver (`common::webdriver`);
//! every step types and clicks through WebDriver, and every wait has a deadline.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test says so and skips, except under `CI=true`, where that is a failure. It leaves a
//! screenshot of the home page in `target/tmp/site-home.png`.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::webdriver::{browser_available, Browser, Driver, Element};
use common::{keel, Process, Redis};
use serde_json::{json, Value};

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "tidal-quartz-meadow-91";
const READER: &str = "reader1";
const READER_PASSWORD: &str = "copper-lantern-orbit-47";

/// The sample posts a new site starts with.
const SAMPLE_TITLES: [&str; 4] = [
    "Welcome to keel",
    "Running keel in production",
    "Rate limiting, decision for decision",
    "Live events without a thread per browser",
];

const NEW_TITLE: &str = "Fresh from the admin";
const NEW_URL: &str = "/posts/fresh-from-the-admin/";
const NEW_BODY: &str =
    "Written in **the admin** while a reader watched.\n\n- first point\n- second point";

/// Installed before any page script runs: keeps every EventSource the page opens in
/// `window.__keelSources`, so the test can wait for the page's live connection to be open
/// before publishing, and check that the page opens exactly one.
const TRACK_EVENT_SOURCES: &str = r"(function () {
  var Native = window.EventSource;
  if (typeof Native !== 'function') { return; }
  window.__keelSources = [];
  function Tracked(url, init) {
    var source = new Native(url, init);
    window.__keelSources.push(source);
    return source;
  }
  Tracked.prototype = Native.prototype;
  Tracked.CONNECTING = Native.CONNECTING;
  Tracked.OPEN = Native.OPEN;
  Tracked.CLOSED = Native.CLOSED;
  window.EventSource = Tracked;
})();";

/// The posts listed on the page: `[{title, tags: [..]}]`.
const LISTED_POSTS: &str = "return Array.prototype.map.call(
    document.querySelectorAll('article.post-summary'),
    function (article) {
      var link = article.querySelector('h2 a');
      return {
        title: link ? link.textContent.trim() : '',
        tags: Array.prototype.map.call(article.querySelectorAll('.post-tags a'),
          function (t) { return t.textContent.trim(); })
      };
    });";

/// `keel createsuperuser` on the database file, the password on stdin; at most 15 s.
fn create_superuser(database_url: &str) {
    let mut child = keel()
        .args([
            "createsuperuser",
            "--database-url",
            database_url,
            "--username",
            ADMIN,
            "--email",
            "admin@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{ADMIN_PASSWORD}\n").as_bytes())
        .unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keel createsuperuser did not finish within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "keel createsuperuser failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `keel up` on a free port of 127.0.0.1 with the site on `database_url` and `extra`
/// flags; returns the process and its base URL.
fn start_keel_up(statics: &Path, database_url: &str, extra: &[&str]) -> (Process, String) {
    let mut cmd = keel();
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--no-access-log",
        "--no-rate-limit",
    ])
    .args(extra)
    .env("KEEL_STATIC_ROOT", statics)
    .env("KEEL_DATABASE_URL", database_url);
    let mut up = Process::start(cmd);
    let base = up.url_after("keel up: serving on");
    (up, base)
}

/// Waits until the navigation bar says who is signed in.
async fn assert_signed_in(browser: &Browser, username: &str) {
    let script = "var e = document.querySelector('.whoami');
        return e && e.textContent.indexOf(arguments[0]) >= 0 ? e.textContent : null;";
    let whoami = browser
        .wait_until(
            &format!("the navigation bar to say \"Signed in as {username}\""),
            Duration::from_secs(10),
            script,
            json!([format!("Signed in as {username}")]),
        )
        .await;
    let logout = browser.find_by_text(".nav-account button", "Log out").await;
    assert!(
        browser.displayed(&logout).await,
        "signed in ({whoami}) but no visible Log out button\n{}",
        browser.excerpt().await
    );
}

/// The posts listed on the current page, as (title, tags).
async fn listed_posts(browser: &Browser) -> Vec<(String, Vec<String>)> {
    let listed = browser.execute(LISTED_POSTS, json!([])).await;
    listed
        .as_array()
        .unwrap_or_else(|| panic!("not a list of posts: {listed}"))
        .iter()
        .map(|post| {
            let title = post["title"].as_str().unwrap_or_default().to_owned();
            let tags = post["tags"]
                .as_array()
                .map(|tags| {
                    tags.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            (title, tags)
        })
        .collect()
}

/// Waits until the page has exactly one EventSource and it is open; panics if it opens more.
async fn wait_live_connection(browser: &Browser) {
    let script = "var s = window.__keelSources;
        if (!s) { return 'EventSource was not tracked'; }
        if (s.length > 1) { return 'more than one EventSource: ' + s.length; }
        return s.length === 1 && s[0].readyState === 1 ? 'open' : null;";
    let state = browser
        .wait_until(
            "the page's EventSource on /stream/?channel=site to be open",
            Duration::from_secs(10),
            script,
            json!([]),
        )
        .await;
    assert_eq!(
        state,
        "open",
        "the page's live connection is wrong\n{}",
        browser.excerpt().await
    );
    let url = browser
        .execute("return window.__keelSources[0].url;", json!([]))
        .await;
    assert!(
        url.as_str()
            .unwrap_or_default()
            .ends_with("/stream/?channel=site"),
        "the page listens on {url}, not /stream/?channel=site"
    );
}

/// Open TCP connections to `base`'s port on this machine (from /proc/net/tcp), to explain
/// a page that does not load: Chromium opens at most 6 connections per host over HTTP/1.1.
fn open_connections(base: &str) -> usize {
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let remote = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // rem_address and st (01: established)
            fields.len() > 3 && fields[2].ends_with(&remote) && fields[3] == "01"
        })
        .count()
}

/// Why a page may not have loaded: how many connections are held open to keel.
fn stalled_hint(base: &str) -> String {
    format!(
        "  {} TCP connections to keel are open; Chromium allows 6 per host over HTTP/1.1, \
         so /stream/ EventSources that earlier pages left open (e.g. pages kept in the \
         back/forward cache) stall new page loads",
        open_connections(base)
    )
}

/// Clicks `element`, which leads to another page, and waits until the browser's address
/// satisfies `arrived`; a page that does not load fails with an explanation.
async fn click_to(
    browser: &Browser,
    base: &str,
    element: &Element,
    what: &str,
    arrived: impl Fn(&str) -> bool,
) {
    if let Err(e) = browser.try_click(element).await {
        panic!(
            "clicking through to {what} failed: {e}\n{}\n{}",
            stalled_hint(base),
            browser.excerpt().await
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !arrived(&browser.current_url().await) {
        if Instant::now() > deadline {
            panic!(
                "clicked, but the browser did not reach {what} within 10 s\n{}\n{}",
                stalled_hint(base),
                browser.excerpt().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens `url` by address; a page that does not load fails with an explanation.
async fn visit(browser: &Browser, base: &str, url: &str) {
    if let Err(e) = browser
        .command(reqwest::Method::POST, "/url", json!({ "url": url }))
        .await
    {
        panic!(
            "opening {url} failed: {e}\n{}\n{}",
            stalled_hint(base),
            browser.excerpt().await
        );
    }
}

/// Where the home-page screenshot goes: `target/tmp/site-home.png` in the workspace.
fn screenshot_path() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap().join("site-home.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_register_login_tags_and_live_post_in_a_browser() {
    if !browser_available() {
        return;
    }
    let started = Instant::now();

    // 1. A superuser in a database file, then the whole stack on it.
    let dir = tempfile::tempdir().unwrap();
    let statics = dir.path().join("static");
    std::fs::create_dir(&statics).unwrap();
    let database_url = format!("sqlite://{}/keel.db", dir.path().display());
    create_superuser(&database_url);
    let (_keel, base) = start_keel_up(&statics, &database_url, &[]);
    let home = format!("{base}/");

    // Profiles outlive the chromedriver (and its Chromiums), which goes with `driver`.
    let profile_a = tempfile::tempdir().unwrap();
    let profile_b = tempfile::tempdir().unwrap();
    let driver = Driver::start().await;
    let a = Browser::open(&driver, profile_a.path(), (1280, 900)).await;
    a.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": TRACK_EVENT_SOURCES }),
    )
    .await;

    // 2. Register through the form; the new account is signed in on the home page.
    visit(&a, &base, &format!("{base}/accounts/register/")).await;
    a.fill("#id_username", READER).await;
    a.fill("#id_email", "reader1@example.com").await;
    a.fill("#id_password", READER_PASSWORD).await;
    a.fill("#id_password2", READER_PASSWORD).await;
    let register = a
        .find_by_text("form.form button[type=submit]", "Register")
        .await;
    click_to(&a, &base, &register, "/ after registering", |u| u == home).await;
    assert_signed_in(&a, READER).await;

    // 3. Log out, then log in again through the login page.
    let logout = a.find_by_text(".nav-account button", "Log out").await;
    click_to(&a, &base, &logout, "/ after logging out", |u| u == home).await;
    a.wait_until(
        "the navigation bar to offer \"Log in\" after logging out",
        Duration::from_secs(10),
        "return document.querySelector('.whoami') ? null : \
         document.querySelector('.nav-account a[href=\"/accounts/login/\"]');",
        json!([]),
    )
    .await;
    let login_link = a.find_by_text(".nav-account a", "Log in").await;
    click_to(&a, &base, &login_link, "the login page", |u| {
        u.starts_with(&format!("{base}/accounts/login/"))
    })
    .await;
    a.fill("#id_username", READER).await;
    a.fill("#id_password", READER_PASSWORD).await;
    let submit = a
        .find_by_text("form.form button[type=submit]", "Log in")
        .await;
    click_to(&a, &base, &submit, "/ after logging in", |u| u == home).await;
    assert_signed_in(&a, READER).await;

    // 4. Filter by a tag by clicking it, then clear the filter.
    let edge = a.find_by_text(".tag-list a.tag", "edge").await;
    click_to(&a, &base, &edge, "/?tag=edge", |u| {
        u.ends_with("/?tag=edge")
    })
    .await;
    let filter = a
        .wait_until(
            "the filter bar",
            Duration::from_secs(10),
            "var e = document.querySelector('.filter-bar');
             return e ? e.textContent.replace(/\\s+/g, ' ').trim() : null;",
            json!([]),
        )
        .await;
    let filter = filter.as_str().unwrap_or_default();
    assert!(
        filter.contains("Filtering by tag: edge"),
        "the filter bar says {filter:?}\n{}",
        a.excerpt().await
    );
    let shown = listed_posts(&a).await;
    assert!(
        !shown.is_empty(),
        "no posts tagged edge are listed\n{}",
        a.excerpt().await
    );
    for (title, tags) in &shown {
        assert!(
            tags.iter().any(|t| t == "edge"),
            "{title:?} is listed under tag edge but has tags {tags:?}"
        );
    }
    let titles: Vec<&str> = shown.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        titles.contains(&"Rate limiting, decision for decision"),
        "the edge post is missing from the filtered list: {titles:?}"
    );
    assert!(
        !titles.contains(&"Welcome to keel"),
        "\"Welcome to keel\" (not tagged edge) is listed under tag edge: {titles:?}"
    );
    let clear = a.find_by_text(".filter-bar a", "Clear").await;
    click_to(&a, &base, &clear, "/ after clearing the filter", |u| {
        u == home
    })
    .await;
    let bar = a
        .execute(
            "return document.querySelector('.filter-bar') !== null;",
            json!([]),
        )
        .await;
    assert_eq!(bar, json!(false), "the filter bar is still shown on /");
    let titles: Vec<String> = listed_posts(&a).await.into_iter().map(|(t, _)| t).collect();
    for sample in SAMPLE_TITLES {
        assert!(
            titles.iter().any(|t| t == sample),
            "{sample:?} is not listed on / after clearing the filter: {titles:?}"
        );
    }

    // 5. Browser A waits on the home page; the superuser publishes a post in browser B.
    wait_live_connection(&a).await;
    let b = Browser::open(&driver, profile_b.path(), (1280, 900)).await;
    visit(&b, &base, &format!("{base}/admin/posts/new/")).await;
    b.wait_url("the login page (the admin needs a login)", |u| {
        u.starts_with(&format!("{base}/accounts/login/"))
    })
    .await;
    b.fill("#id_username", ADMIN).await;
    b.fill("#id_password", ADMIN_PASSWORD).await;
    let submit = b
        .find_by_text("form.form button[type=submit]", "Log in")
        .await;
    click_to(
        &b,
        &base,
        &submit,
        "/admin/posts/new/ after logging in",
        |u| u == format!("{base}/admin/posts/new/"),
    )
    .await;
    assert_signed_in(&b, ADMIN).await;
    b.fill("#id_title", NEW_TITLE).await;
    b.fill("#id_tags", "news").await;
    let body = b.find("textarea#body").await;
    b.send_keys(&body, NEW_BODY).await;
    let typed = b.property(&body, "value").await;
    assert_eq!(
        typed.as_str().unwrap_or_default(),
        NEW_BODY,
        "the body field holds something else than was typed"
    );
    let published = b.find("input[name=published]").await;
    assert_eq!(
        b.property(&published, "checked").await,
        json!(true),
        "\"Published\" is not checked on a new post"
    );
    let save = b.find("button[name=action][value=save]").await;
    click_to(&b, &base, &save, "/admin/?saved=… after saving", |u| {
        u.starts_with(&format!("{base}/admin/?saved="))
    })
    .await;

    let notice = a
        .wait_until(
            "browser A's #live-notice to show the new post",
            Duration::from_secs(10),
            "var box = document.getElementById('live-notice');
             if (!box || box.hidden) { return null; }
             var link = box.querySelector('a');
             return { text: box.textContent, href: link ? link.getAttribute('href') : null };",
            json!([]),
        )
        .await;
    let text = notice["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("New post: {NEW_TITLE}")),
        "the live notice says {text:?}\n{}",
        a.excerpt().await
    );
    assert_eq!(
        notice["href"].as_str(),
        Some(NEW_URL),
        "the live notice links elsewhere: {notice}"
    );
    let notice_box = a.find("#live-notice").await;
    assert!(
        a.displayed(&notice_box).await,
        "#live-notice is not hidden but not displayed either\n{}",
        a.excerpt().await
    );
    let sources = a
        .execute("return window.__keelSources.length;", json!([]))
        .await;
    assert_eq!(
        sources,
        json!(1),
        "the home page opened {sources} EventSources"
    );

    // This is browser A's eighth page: it loads only if the earlier pages' /stream/
    // connections were closed when the browser left them.
    let link = a.find("#live-notice a").await;
    click_to(&a, &base, &link, NEW_URL, |u| {
        u == format!("{base}{NEW_URL}")
    })
    .await;
    let heading = a.find("article.post h1").await;
    assert_eq!(
        a.text(&heading).await,
        NEW_TITLE,
        "the post page's title\n{}",
        a.excerpt().await
    );
    let rendered = a
        .execute(
            "var body = document.querySelector('.post-body');
             return body ? {
               strong: Array.prototype.map.call(body.querySelectorAll('strong'),
                 function (e) { return e.textContent; }),
               items: Array.prototype.map.call(body.querySelectorAll('ul > li'),
                 function (e) { return e.textContent.trim(); }),
               text: body.textContent
             } : null;",
            json!([]),
        )
        .await;
    assert_eq!(
        rendered["strong"],
        json!(["the admin"]),
        "the Markdown body is not rendered: {rendered}"
    );
    assert_eq!(
        rendered["items"],
        json!(["first point", "second point"]),
        "the Markdown list is not rendered: {rendered}"
    );
    assert!(
        !rendered["text"].as_str().unwrap_or_default().contains("**"),
        "raw Markdown on the post page: {rendered}"
    );

    // 6. A screenshot of the home page, with the new post on it.
    visit(&a, &base, &home).await;
    a.wait_until(
        "the home page to load with the new post listed",
        Duration::from_secs(10),
        "var want = arguments[0];
         return document.readyState === 'complete' &&
           Array.prototype.some.call(document.querySelectorAll('article.post-summary h2 a'),
             function (e) { return e.textContent.trim() === want; });",
        json!([NEW_TITLE]),
    )
    .await;
    let artifact = screenshot_path();
    a.screenshot(&artifact).await;
    let png = std::fs::read(&artifact).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG screenshot");
    eprintln!("screenshot: {}", artifact.display());

    // 7. Done: close both browsers; keel up stops when `_keel` is dropped.
    b.quit().await;
    a.quit().await;
    eprintln!("site browser test took {:?}", started.elapsed());
}

/// A guest on a phone-sized window takes a sample quiz from the navigation to the
/// review: every question answered by clicking and typing, the answers autosaved, the
/// attempt submitted and reviewed. Leaves `target/tmp/quiz-result.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiz_start_to_finish_in_a_browser() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let statics = dir.path().join("static");
    std::fs::create_dir(&statics).unwrap();
    let database_url = format!("sqlite://{}/keel.db", dir.path().display());
    let (_keel, base) = start_keel_up(&statics, &database_url, &[]);
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start().await;
    let b = Browser::open(&driver, profile.path(), (390, 844)).await;

    visit(&b, &base, &format!("{base}/")).await;
    let nav = b.find_by_text(".nav-links a", "Quizzes").await;
    click_to(&b, &base, &nav, "/quizzes/", |u| {
        u == format!("{base}/quizzes/")
    })
    .await;
    let quiz = b
        .find_by_text(".quiz-card h2 a", "The edge and limit_req")
        .await;
    click_to(&b, &base, &quiz, "the quiz's page", |u| {
        u == format!("{base}/quizzes/edge-and-limit-req/")
    })
    .await;
    let start = b.find_by_text("form button[type=submit]", "Start").await;
    click_to(&b, &base, &start, "a new attempt", |u| {
        u.starts_with(&format!("{base}/quizzes/attempts/"))
    })
    .await;

    // Every question, as a reader answers it: the first choice, a number or a word, and
    // the second option of each matching list.
    let questions = b
        .execute(
            "return Array.prototype.map.call(document.querySelectorAll('fieldset.quiz-question'),
               function (f) {
                 var input = f.querySelector('input[type=radio], input[type=checkbox], input[type=text], select');
                 return { id: f.id, kind: input ? (input.type || input.tagName) : 'none' };
               });",
            json!([]),
        )
        .await;
    let questions = questions.as_array().unwrap().clone();
    assert!(questions.len() >= 5, "the sample quiz has {questions:?}");
    for q in &questions {
        let id = q["id"].as_str().unwrap();
        match q["kind"].as_str().unwrap() {
            "radio" | "checkbox" => {
                let choice = b.find(&format!("#{id} .quiz-choice input")).await;
                b.click(&choice).await;
            }
            "text" => b.fill(&format!("#{id} input[type=text]"), "100").await,
            _ => {
                // A <select>'s options are drawn by the browser, out of WebDriver's
                // reach in headless mode: pick the second option as a script would, with
                // the change event a person's pick fires.
                b.execute(
                    "document.querySelectorAll('#' + arguments[0] + ' select').forEach(function (s) {
                       s.selectedIndex = 1;
                       s.dispatchEvent(new Event('change', { bubbles: true }));
                     });",
                    json!([id]),
                )
                .await;
            }
        }
    }
    // The page saved the answers in the background.
    b.wait_until(
        "the attempt page to say its answers are saved",
        Duration::from_secs(10),
        "var s = document.querySelector('.quiz-save-state');
         return s && s.textContent.indexOf('Saved.') >= 0 ? s.textContent : null;",
        json!([]),
    )
    .await;
    // Nothing wider than the phone's screen (the elements that are, if any).
    let overflow = b
        .execute(
            "var out = [];
             document.querySelectorAll('body *').forEach(function (e) {
               var r = e.getBoundingClientRect();
               if (r.right > window.innerWidth + 1 && out.length < 5) {
                 out.push(e.tagName + '.' + e.className + ' ' + Math.round(r.right));
               }
             });
             return out;",
            json!([]),
        )
        .await;
    assert_eq!(
        overflow,
        json!([]),
        "the attempt page is wider than a phone"
    );
    let submit = b.find("button[name=action][value=submit]").await;
    click_to(&b, &base, &submit, "the review", |u| {
        u.ends_with("/result/")
    })
    .await;
    let review = b
        .execute(
            "return {
               items: document.querySelectorAll('.quiz-review-item').length,
               score: (document.querySelector('.quiz-score strong') || {}).textContent,
               explanations: document.querySelectorAll('.quiz-explanation').length,
               links: document.querySelectorAll('.quiz-review-item a[href^=\"/posts/\"]').length
             };",
            json!([]),
        )
        .await;
    assert_eq!(review["items"], json!(questions.len()), "{review}");
    assert!(
        review["score"].as_str().unwrap_or_default().ends_with('%'),
        "{review}"
    );
    assert_eq!(
        review["explanations"],
        json!(questions.len()),
        "every sample question explains itself: {review}"
    );
    assert_eq!(review["links"], json!(questions.len()), "{review}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let artifact = dir.canonicalize().unwrap().join("quiz-result.png");
    b.screenshot(&artifact).await;
    eprintln!("screenshot: {}", artifact.display());
    b.quit().await;
}

/// `keel serve` on `database_url` with live events through `redis_url`, behind a `keel
/// edge` that serves the collected `statics` (the pages' script and stylesheet); returns
/// both processes and the edge's URL.
fn start_serve_and_edge(
    database_url: &str,
    redis_url: &str,
    statics: &Path,
) -> (Process, Process, String) {
    let mut cmd = keel();
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--redis-url", redis_url])
        .env("KEEL_DATABASE_URL", database_url)
        .env("KEEL_STATIC_ROOT", statics);
    let mut serve = Process::start(cmd);
    let app = serve.url_after("keel serve: listening on");
    let mut cmd = keel();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "off",
        "--no-access-log",
    ])
    .arg("--upstream")
    .arg(app.trim_start_matches("http://"))
    .arg("--static-root")
    .arg(statics);
    let mut edge = Process::start(cmd);
    let base = edge.url_after("keel edge: listening on");
    (serve, edge, base)
}

/// Answers the question on a player's page: the first choice button, or the first box and
/// the Answer button, or a number typed in the box.
async fn answer_live(player: &Browser) {
    let kind = player
        .execute(
            "if (document.querySelector('.live-answer .live-choice')) return 'button';
             if (document.querySelector('.live-answer input[type=checkbox]')) return 'boxes';
             return document.querySelector('.live-answer input[type=text]') ? 'text' : null;",
            json!([]),
        )
        .await;
    match kind.as_str() {
        Some("button") => {
            let choice = player.find(".live-answer .live-choice").await;
            player.click(&choice).await;
        }
        Some("boxes") => {
            let box_ = player.find(".live-answer input[type=checkbox]").await;
            player.click(&box_).await;
            let send = player.find(".live-answer button[type=submit]").await;
            player.click(&send).await;
        }
        Some("text") => {
            player.fill(".live-answer input[type=text]", "100").await;
            let send = player.find(".live-answer button[type=submit]").await;
            player.click(&send).await;
        }
        _ => panic!("no question to answer\n{}", player.excerpt().await),
    }
}

/// The text of the first element matching `css`, once there is one (10 s).
async fn text_when(browser: &Browser, what: &str, css: &str) -> String {
    browser
        .wait_until(
            what,
            Duration::from_secs(10),
            "var e = document.querySelector(arguments[0]);
             return e ? e.textContent.trim() : null;",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A live room across two `keel serve` processes (each behind its `keel edge`) on one
/// redis-server and one database: the host's browser on one, two players' browsers
/// (phone-sized) on the other. Every move
/// of the host reaches the players' pages through Redis; all three see the same question
/// and the same podium. Leaves `target/tmp/live-podium.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_room_across_two_serves_in_three_browsers() {
    if !browser_available() {
        return;
    }
    let Some(redis) = Redis::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/keel.db", dir.path().display());
    create_superuser(&database_url);
    let statics = dir.path().join("static");
    let collected = keel()
        .arg("collectstatic")
        .arg("--static-root")
        .arg(&statics)
        .output()
        .unwrap();
    assert!(
        collected.status.success(),
        "{}",
        String::from_utf8_lossy(&collected.stderr)
    );
    let (_serve_a, _edge_a, base_a) = start_serve_and_edge(&database_url, &redis.url(), &statics);
    let (_serve_b, _edge_b, base_b) = start_serve_and_edge(&database_url, &redis.url(), &statics);
    let driver = Driver::start().await;
    let profiles: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let host = Browser::open(&driver, profiles[0].path(), (1280, 900)).await;

    // The host signs in on A and opens a room for a sample quiz.
    visit(
        &host,
        &base_a,
        &format!("{base_a}/accounts/login/?next=/admin/quizzes/"),
    )
    .await;
    host.fill("#id_username", ADMIN).await;
    host.fill("#id_password", ADMIN_PASSWORD).await;
    let submit = host
        .find_by_text("form.form button[type=submit]", "Log in")
        .await;
    click_to(&host, &base_a, &submit, "/admin/quizzes/", |u| {
        u == format!("{base_a}/admin/quizzes/")
    })
    .await;
    let quiz = host
        .find_by_text(".col-title a", "The edge and limit_req")
        .await;
    click_to(&host, &base_a, &quiz, "the quiz's admin page", |u| {
        u.starts_with(&format!("{base_a}/admin/quizzes/"))
    })
    .await;
    let open = host.find_by_text("button", "Open a live room").await;
    click_to(&host, &base_a, &open, "the host screen", |u| {
        u.ends_with("/host/")
    })
    .await;
    let pin = text_when(&host, "the room's PIN", ".live-pin-number").await;
    assert_eq!(pin.len(), 6, "{pin}");

    // Two players join on B.
    let mut players = Vec::new();
    for (i, nickname) in ["ann", "bob"].iter().enumerate() {
        let p = Browser::open(&driver, profiles[i + 1].path(), (390, 844)).await;
        visit(&p, &base_b, &format!("{base_b}/quizzes/live/")).await;
        p.fill("#id_pin", &pin).await;
        p.fill("#id_nickname", nickname).await;
        let join = p.find_by_text("form button[type=submit]", "Join").await;
        click_to(&p, &base_b, &join, "the player's page", |u| {
            u == format!("{base_b}/quizzes/live/{pin}/")
        })
        .await;
        text_when(&p, "the lobby", ".live-room h1").await;
        players.push(p);
    }
    // The joins on B reach the host's screen on A live, through Redis.
    host.wait_until(
        "the host screen to count two players",
        Duration::from_secs(10),
        "var e = document.querySelector('[data-players-count]');
         return e && e.textContent.trim() === '2' ? 'two' : null;",
        json!([]),
    )
    .await;

    // Start: every page shows the same question.
    let start = host.find_by_text(".live-controls button", "Start").await;
    host.click(&start).await;
    let stem = text_when(&host, "the host's question", ".live-stem").await;
    for p in &players {
        let shown = text_when(p, "the player's question", ".live-stem").await;
        assert_eq!(shown, stem, "a player sees another question than the host");
        answer_live(p).await;
        text_when(p, "the answer's receipt", ".live-room .notice").await;
    }
    host.wait_until(
        "the host's tally to say 2 of 2",
        Duration::from_secs(10),
        "var e = document.querySelector('[data-tally]');
         return e && e.textContent.trim() === '2 of 2' ? 'done' : null;",
        json!([]),
    )
    .await;

    // The podium, on all three.
    let end = host
        .find_by_text(".live-controls button", "End the game")
        .await;
    host.click(&end).await;
    let podium_script = "return Array.prototype.map.call(
        document.querySelectorAll('.live-podium .live-nick'), function (e) { return e.textContent; });";
    host.wait_until(
        "the host's podium",
        Duration::from_secs(10),
        "return document.querySelectorAll('.live-podium .live-nick').length === 2 ? 'ok' : null;",
        json!([]),
    )
    .await;
    let on_host = host.execute(podium_script, json!([])).await;
    for p in &players {
        p.wait_until(
            "the player's podium",
            Duration::from_secs(10),
            "return document.querySelectorAll('.live-podium .live-nick').length === 2 ? 'ok' : null;",
            json!([]),
        )
        .await;
        assert_eq!(p.execute(podium_script, json!([])).await, on_host);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let artifact = dir.canonicalize().unwrap().join("live-podium.png");
    players[0].screenshot(&artifact).await;
    eprintln!("screenshot: {}", artifact.display());
    for p in players {
        p.quit().await;
    }
    host.quit().await;
}

/// An interview in the browser, from setup to report, with keel's mock model behind
/// `--interviewer-api-base`: the interviewer's words are seen arriving in pieces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interview_streams_in_a_browser_from_setup_to_report() {
    if !browser_available() {
        return;
    }
    let mut cmd = keel();
    cmd.args([
        "mock-upstream",
        "--listen",
        "127.0.0.1:0",
        "--latency",
        "0s",
        "--token-interval",
        "40ms",
    ]);
    let mut mock = Process::start(cmd);
    let model = mock.url_after("keel mock-upstream: listening on");
    let dir = tempfile::tempdir().unwrap();
    let statics = dir.path().join("static");
    std::fs::create_dir(&statics).unwrap();
    let database_url = format!("sqlite://{}/keel.db", dir.path().display());
    let api = format!("{model}/v1");
    let (up, base) = start_keel_up(&statics, &database_url, &["--interviewer-api-base", &api]);
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start().await;
    let b = Browser::open(&driver, profile.path(), (1100, 900)).await;

    visit(&b, &base, &format!("{base}/")).await;
    let nav = b.find_by_text(".nav-links a", "AI Interviewer").await;
    click_to(&b, &base, &nav, "/interviewer/", |u| {
        u == format!("{base}/interviewer/")
    })
    .await;
    let start = b
        .find_by_text("form button[type=submit]", "Start the interview")
        .await;
    click_to(&b, &base, &start, "the interview", |u| {
        u.contains("/interviewer/sessions/")
    })
    .await;

    // The first question arrives token by token: the line's text is seen growing.
    let mut lengths = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = b
            .execute(
                "var line = document.querySelector('[data-say]');
                 if (!line) { return null; }
                 return { speaking: line.classList.contains('speaking'),
                          length: line.querySelector('.interview-text').textContent.length };",
                json!([]),
            )
            .await;
        let length = state["length"].as_u64().unwrap_or(0);
        if length > 0 {
            lengths.insert(length);
        }
        if state["speaking"] == json!(false) && length > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first question never finished: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lengths.len() >= 3,
        "the text did not arrive in pieces: lengths seen {lengths:?}"
    );

    // Skip to the end, then the report.
    for _ in 0..5 {
        let skip = b.find_by_text("button[name=action]", "Skip").await;
        b.click(&skip).await;
        b.wait_until(
            "the interviewer's reply to finish",
            Duration::from_secs(15),
            "var l = document.querySelector('[data-say]');
             return l && !l.classList.contains('speaking') ? 'done' : null;",
            json!([]),
        )
        .await;
        let over = b
            .execute(
                "return !!document.querySelector('a[href$=\"report/\"].button');",
                json!([]),
            )
            .await;
        if over == json!(true) {
            break;
        }
    }
    let report = b.find_by_text("a.button", "See your report").await;
    click_to(&b, &base, &report, "the report", |u| {
        u.ends_with("/report/")
    })
    .await;
    let score = text_when(&b, "the report's score", ".quiz-score strong").await;
    assert!(score.ends_with("/100"), "{score}");
    b.quit().await;
    drop(up);
    drop(mock);
}
