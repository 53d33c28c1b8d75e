//! The site over real HTTP: the app server on port 0 with the site mounted, driven like a
//! browser would (cookies, forms, CSRF tokens, redirects not followed so each is checked).
//!
//! Every test runs twice, on SQLite (a file in a temp dir) and on PostgreSQL (the local
//! service, a fresh database per test, dropped afterwards). Without PostgreSQL the PG half
//! says so and skips — except under `CI=true`, where that is a failure.
//! `KEEL_TEST_POSTGRES_URL` points at another server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use sqlx::Row;
use support::*;

on_both!(
    home_lists_sample_posts_and_paginates,
    tag_filter_shows_only_that_tag,
    post_page_renders_markdown_and_404s_politely,
    registration_validates_and_stores_nothing_on_error,
    registration_logs_in_and_logout_ends_the_session,
    login_checks_passwords_and_keeps_next_local,
    failed_logins_are_limited_per_account_and_per_address,
    every_form_post_needs_the_csrf_token,
    feedback_validates_stores_and_staff_read_it,
    script_and_sql_input_is_stored_as_typed_and_shown_escaped,
    admin_is_for_staff_only,
    admin_creates_previews_edits_and_deletes_posts,
    admin_validation_returns_the_form_and_stores_nothing,
    publishing_a_post_emits_a_site_event,
    cookies_and_headers_are_safe,
    oversized_forms_are_refused,
    a_database_failure_is_a_friendly_500,
    pages_are_compressed_when_asked,
    nul_bytes_are_refused_before_any_query,
    events_page_is_in_the_site_layout_and_staff_publish_from_it,
    robots_sitemap_favicon_and_description_are_served,
);

/// Issue 19: robots.txt and a sitemap (absolute URLs of the posts and quizzes), a favicon
/// and a meta description on every page; the name and tagline come from the configuration.
async fn robots_sitemap_favicon_and_description_are_served(site: &Site) {
    let mut v = site.visitor();
    let robots = v.get("/robots.txt").await;
    robots
        .assert_status(StatusCode::OK)
        .assert_has("Disallow: /admin/")
        .assert_has("Sitemap: http://");
    let map = v.get("/sitemap.xml").await;
    map.assert_status(StatusCode::OK)
        .assert_has("<urlset")
        .assert_has("/posts/welcome-to-keel/</loc><lastmod>")
        .assert_has("/quizzes/edge-and-limit-req/</loc>");
    let home = v.get("/").await;
    home.assert_has("<meta name=\"description\" content=\"A tech-learning blog")
        .assert_has("rel=\"icon\"");
    let Some(named) = Site::start_configured(site.backend, |c| {
        c.site_name = "Field Notes".into();
        c.tagline = "Deploying apps, one post at a time".into();
    })
    .await
    else {
        return;
    };
    let page = named.visitor().get("/").await;
    page.assert_has("class=\"brand\" href=\"/\">Field Notes</a>")
        .assert_has("content=\"Deploying apps, one post at a time\"");
}

/// Issue 19: `/events/` in the site's layout, with the command that works here; staff
/// publish from a form (CSRF as every form), readers may not.
async fn events_page_is_in_the_site_layout_and_staff_publish_from_it(site: &Site) {
    let mut reader = site.visitor();
    let page = reader.get("/events/").await;
    page.assert_status(StatusCode::OK)
        .assert_has("aria-current=\"page\">Events</a>")
        .assert_has("data-event-log=\"/stream/\"")
        .assert_has("keel publish")
        .assert_lacks("action=\"/events/publish\"");
    let refused = reader
        .submit(
            "/feedback/",
            "/events/publish",
            &[("message", "from a reader")],
        )
        .await;
    refused.assert_status(StatusCode::FORBIDDEN);

    let response = reqwest::Client::new()
        .get(format!("{}/stream/?channel=demo_stream", site.base))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while site.hub.stats().clients == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut staff = site.staff().await;
    staff
        .get("/events/")
        .await
        .assert_has("action=\"/events/publish\"");
    let done = staff
        .submit(
            "/events/",
            "/events/publish",
            &[
                ("channel", "demo_stream"),
                ("message", "Hello <b>readers</b>"),
            ],
        )
        .await;
    done.assert_status(StatusCode::SEE_OTHER);
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("Hello <b>readers</b>") {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the staff's message never arrived: {seen}");
    let bad = staff
        .submit(
            "/events/",
            "/events/publish",
            &[("channel", "no spaces"), ("message", "x")],
        )
        .await;
    bad.assert_status(StatusCode::BAD_REQUEST);
}

/// Issue 15: on PostgreSQL a NUL in `?tag=`, a slug or a form field answered 500 (no text
/// parameter may hold one). Now 404 for a path and 400 for a query or a form, on both
/// databases, and nothing is stored.
async fn nul_bytes_are_refused_before_any_query(site: &Site) {
    let mut v = site.visitor();
    v.get("/?tag=a%00b")
        .await
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_has("Null characters are not allowed");
    v.get("/posts/a%00b/")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let token = v.get("/feedback/").await.csrf();
    v.post_raw(
        "/feedback/",
        &[
            ("csrf_token", &token),
            ("name", "n\0"),
            ("email", "n@example.com"),
            ("message", "hello"),
        ],
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST)
    .assert_has("Null characters are not allowed");
    assert_eq!(site.count("feedback").await, 0);
}

async fn pages_are_compressed_when_asked(site: &Site) {
    let client = reqwest::Client::new();
    let plain = client.get(format!("{}/", site.base)).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_len = plain.bytes().await.unwrap().len();
    let gzip = client
        .get(format!("{}/", site.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert_eq!(gzip.headers()["vary"], "accept-encoding");
    let gzip_len = gzip.bytes().await.unwrap().len();
    assert!(
        gzip_len * 2 < plain_len,
        "gzip {gzip_len} bytes vs {plain_len} plain"
    );
}

async fn a_database_failure_is_a_friendly_500(site: &Site) {
    let mut v = site.visitor();
    // Nothing read yet (the page cache would answer a page it has already seen).
    sqlx::query("DROP TABLE post_tags")
        .execute(site.db.pool())
        .await
        .unwrap();
    let page = v.get("/").await;
    page.assert_status(StatusCode::INTERNAL_SERVER_ERROR)
        .assert_has("Something went wrong")
        .assert_has("<nav")
        .assert_lacks("post_tags");
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

async fn oversized_forms_are_refused(site: &Site) {
    let mut v = site.visitor();
    let token = v.get("/feedback/").await.csrf();
    let message = "x".repeat(2 * 1024 * 1024);
    v.post_raw(
        "/feedback/",
        &[
            ("csrf_token", &token),
            ("name", "n"),
            ("email", "n@example.com"),
            ("message", &message),
        ],
    )
    .await
    .assert_status(StatusCode::PAYLOAD_TOO_LARGE)
    .assert_has("larger than this site accepts");
    assert_eq!(site.count("feedback").await, 0);
}

async fn home_lists_sample_posts_and_paginates(site: &Site) {
    let mut v = site.visitor();
    let home = v.get("/").await;
    home.assert_status(StatusCode::OK)
        .assert_has("Welcome to keel")
        .assert_has("Read more")
        .assert_has("href=\"/posts/welcome-to-keel/\"")
        .assert_has("by keel")
        .assert_has("href=\"/?tag=getting+started\"")
        .assert_has("Log in")
        .assert_has("Register")
        .assert_lacks("Page 1 of");
    // Newest first: the welcome post was saved last.
    let welcome = home.body.find("Welcome to keel").unwrap();
    let events = home.body.find("Live events without a thread").unwrap();
    assert!(welcome < events, "welcome post is not first");

    // Three more posts make 7: two pages of 5.
    let mut staff = site.staff().await;
    for n in 1..=3 {
        staff
            .new_post(&format!("Extra post {n}"), "extra", "Body.", true)
            .await
            .assert_status(StatusCode::SEE_OTHER);
    }
    let page1 = v.get("/").await;
    page1
        .assert_has("Page 1 of 2")
        .assert_has("href=\"/?page=2\"");
    assert!(
        page1.body.find("Extra post 3").unwrap() < page1.body.find("Extra post 1").unwrap(),
        "newest first"
    );
    v.get("/?page=2")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Page 2 of 2")
        .assert_has("Live events without a thread per browser");
    for bad in ["/?page=3", "/?page=0", "/?page=abc", "/?page=-1"] {
        v.get(bad)
            .await
            .assert_status(StatusCode::NOT_FOUND)
            .assert_has("Page not found");
    }
}

async fn tag_filter_shows_only_that_tag(site: &Site) {
    let mut v = site.visitor();
    let page = v.get("/?tag=edge").await;
    page.assert_status(StatusCode::OK)
        .assert_has("Filtering by tag:")
        .assert_has("<strong>edge</strong>")
        .assert_has("Rate limiting, decision for decision")
        .assert_lacks("Welcome to keel")
        .assert_lacks("Running keel in production");
    assert!(
        page.body.contains("href=\"/\">Clear</a>"),
        "no Clear link back to /:\n{}",
        page.body
    );
    // Case and spacing do not matter; tags with spaces work through the URL encoding.
    v.get("/?tag=Getting%20Started")
        .await
        .assert_has("Welcome to keel")
        .assert_has("Running keel in production")
        .assert_lacks("Rate limiting, decision");
    v.get("/?tag=nothing-has-this")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Filtering by tag:")
        .assert_lacks("post-summary\"");
    v.get("/").await.assert_lacks("Filtering by tag:");
}

async fn post_page_renders_markdown_and_404s_politely(site: &Site) {
    let mut v = site.visitor();
    v.get("/posts/welcome-to-keel/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("<h1")
        .assert_has("Welcome to keel")
        .assert_has("<strong>nginx, gunicorn, Django and Redis</strong>")
        .assert_has("<h2>What to try</h2>")
        .assert_has("href=\"/?tag=getting%20started\"");
    let missing = v.get("/posts/no-such-post/").await;
    missing
        .assert_status(StatusCode::NOT_FOUND)
        .assert_has("Page not found")
        .assert_has("<nav");
    assert!(missing.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    v.get("/no/such/page")
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_has("Page not found");
    let redirect = v.get("/posts/welcome-to-keel").await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.location(), "/posts/welcome-to-keel/");
    assert_eq!(v.get("/feedback").await.location(), "/feedback/");
}

async fn registration_validates_and_stores_nothing_on_error(site: &Site) {
    let mut v = site.visitor();
    let users = site.count("users").await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("username", "al"),
                ("email", "al@example.com"),
                ("password", USER_PASSWORD),
                ("password2", USER_PASSWORD),
            ],
            "3 to 30 characters",
        ),
        (
            &[
                ("username", "bob"),
                ("email", "not-an-email"),
                ("password", USER_PASSWORD),
                ("password2", USER_PASSWORD),
            ],
            "Enter a valid email address.",
        ),
        (
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", "short"),
                ("password2", "short"),
            ],
            "too short",
        ),
        (
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", "password123"),
                ("password2", "password123"),
            ],
            "too common",
        ),
        (
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", "48151623429"),
                ("password2", "48151623429"),
            ],
            "entirely numeric",
        ),
        (
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", USER_PASSWORD),
                ("password2", "something-else-99"),
            ],
            "didn&#x27;t match",
        ),
        (
            &[
                ("username", "ADMIN"),
                ("email", "x@example.com"),
                ("password", USER_PASSWORD),
                ("password2", USER_PASSWORD),
            ],
            "already exists",
        ),
    ];
    for (form, message) in cases {
        let page = v
            .submit("/accounts/register/", "/accounts/register/", form)
            .await;
        page.assert_status(StatusCode::BAD_REQUEST)
            .assert_has(message);
        // The form comes back with what was typed (never the password).
        let username = form[0].1;
        page.assert_has(&format!("value=\"{username}\""));
        page.assert_lacks(&format!("value=\"{USER_PASSWORD}\""));
        assert!(
            !v.cookies.contains_key("keel_session"),
            "logged in after a refused registration"
        );
    }
    assert_eq!(
        site.count("users").await,
        users,
        "a refused registration stored a user"
    );
}

async fn registration_logs_in_and_logout_ends_the_session(site: &Site) {
    let mut v = site.visitor();
    let page = v.register("reader").await;
    page.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/");
    let session = v
        .cookies
        .get("keel_session")
        .cloned()
        .expect("session cookie");
    let home = v.get("/").await;
    home.assert_has("Signed in as reader")
        .assert_lacks(">Register<");
    // The CSRF token was replaced at login.
    let token = home.csrf();
    // GET shows the logout button in the site's layout and signs nobody out: a link or a
    // prefetch must not end a session (issue 19).
    v.get("/accounts/logout/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Log out?")
        .assert_has("action=\"/accounts/logout/\"");
    v.get("/").await.assert_has("Signed in as reader");

    let out = v
        .post_raw("/accounts/logout/", &[("csrf_token", &token)])
        .await;
    out.assert_status(StatusCode::SEE_OTHER);
    assert!(!v.cookies.contains_key("keel_session"));
    v.get("/")
        .await
        .assert_has("Log in")
        .assert_lacks("Signed in as");
    // The old session token is dead on the server too, not only forgotten by the client.
    v.cookies.insert("keel_session".into(), session);
    v.get("/").await.assert_lacks("Signed in as");
    // Signed out, the page says so.
    v.get("/accounts/logout/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("You are not signed in");
}

async fn login_checks_passwords_and_keeps_next_local(site: &Site) {
    let mut v = site.visitor();
    v.register("walker")
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let mut w = site.visitor();
    w.submit(
        "/accounts/login/",
        "/accounts/login/",
        &[("username", "walker"), ("password", "wrong-password-123")],
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST)
    .assert_has("Please enter a correct username and password")
    .assert_has("value=\"walker\"");
    w.submit(
        "/accounts/login/",
        "/accounts/login/",
        &[("username", ""), ("password", "")],
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    let ok = w
        .submit(
            "/accounts/login/?next=/feedback/",
            "/accounts/login/",
            &[
                ("username", "WALKER"),
                ("password", USER_PASSWORD),
                ("next", "/feedback/"),
            ],
        )
        .await;
    ok.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/feedback/");

    let mut x = site.visitor();
    let evil = x
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[
                ("username", "walker"),
                ("password", USER_PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(evil.location(), "/");
}

async fn failed_logins_are_limited_per_account_and_per_address(site: &Site) {
    let mut v = site.visitor();
    v.register("target")
        .await
        .assert_status(StatusCode::SEE_OTHER);
    // Five failures on one account, from five addresses.
    for n in 0..5 {
        let mut attacker = site.visitor();
        attacker.address = format!("203.0.113.{}", n + 1);
        attacker
            .submit(
                "/accounts/login/",
                "/accounts/login/",
                &[("username", "target"), ("password", "guess-number-xyz")],
            )
            .await
            .assert_status(StatusCode::BAD_REQUEST);
    }
    // Now even the right password waits.
    let mut owner = site.visitor();
    let page = owner
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "target"), ("password", USER_PASSWORD)],
        )
        .await;
    page.assert_status(StatusCode::TOO_MANY_REQUESTS)
        .assert_has("Too many failed login attempts for this account");
    let retry: u64 = page.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");

    // Twenty failures from one address across many accounts lock that address.
    let mut sprayer = site.visitor();
    sprayer.address = "203.0.113.200".into();
    for n in 0..20 {
        sprayer
            .submit(
                "/accounts/login/",
                "/accounts/login/",
                &[
                    ("username", &format!("nobody{n}")),
                    ("password", "guess-number-xyz"),
                ],
            )
            .await
            .assert_status(StatusCode::BAD_REQUEST);
    }
    sprayer
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        )
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS)
        .assert_has("for your address");
    // Another address is not affected.
    site.staff().await;
}

async fn every_form_post_needs_the_csrf_token(site: &Site) {
    let mut staff = site.staff().await;
    let token = staff.get("/").await.csrf();
    let posts = site.count("posts").await;
    let routes: &[(&str, &[(&str, &str)])] = &[
        (
            "/accounts/login/",
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        ),
        (
            "/accounts/register/",
            &[
                ("username", "csrfuser"),
                ("email", "c@example.com"),
                ("password", USER_PASSWORD),
                ("password2", USER_PASSWORD),
            ],
        ),
        ("/accounts/logout/", &[]),
        (
            "/feedback/",
            &[("name", "n"), ("email", "n@example.com"), ("message", "m")],
        ),
        (
            "/admin/posts/new/",
            &[
                ("title", "Forged"),
                ("body", "x"),
                ("published", "on"),
                ("action", "save"),
            ],
        ),
        ("/admin/preview", &[("body", "x")]),
        ("/admin/posts/1/delete/", &[]),
    ];
    for (path, form) in routes {
        // No token at all.
        staff
            .post_raw(path, form)
            .await
            .assert_status(StatusCode::FORBIDDEN)
            .assert_has("CSRF verification failed");
        // A wrong token.
        let mut with_wrong = vec![("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")];
        with_wrong.extend_from_slice(form);
        staff
            .post_raw(path, &with_wrong)
            .await
            .assert_status(StatusCode::FORBIDDEN);
        // The right token sent from another site.
        let mut with_token = vec![("csrf_token", token.as_str())];
        with_token.extend_from_slice(form);
        let cookie = staff.cookie_header();
        let page = staff
            .send(
                staff
                    .client
                    .post(format!("{}{path}", site.base))
                    .header("origin", "https://evil.example")
                    .header(COOKIE, cookie)
                    .form(&with_token),
            )
            .await;
        page.assert_status(StatusCode::FORBIDDEN)
            .assert_has("another site");
    }
    // A token without its cookie (another browser's token) fails too.
    let mut stranger = site.visitor();
    stranger
        .post_raw(
            "/feedback/",
            &[
                ("csrf_token", &token),
                ("name", "n"),
                ("email", "n@example.com"),
                ("message", "m"),
            ],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN)
        .assert_has("cookie is not set");
    assert_eq!(site.count("posts").await, posts);
    assert_eq!(site.count("feedback").await, 0);
    staff.get("/").await.assert_has("Signed in as admin");
}

async fn feedback_validates_stores_and_staff_read_it(site: &Site) {
    let mut v = site.visitor();
    v.get("/feedback/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("name=\"message\"");
    let bad = v
        .submit(
            "/feedback/",
            "/feedback/",
            &[("name", ""), ("email", "nope"), ("message", "  ")],
        )
        .await;
    bad.assert_status(StatusCode::BAD_REQUEST)
        .assert_has("Tell us your name.")
        .assert_has("Enter a valid email address.")
        .assert_has("Write a message.")
        .assert_has("value=\"nope\"");
    let long = "x".repeat(5001);
    v.submit(
        "/feedback/",
        "/feedback/",
        &[
            ("name", "Ann"),
            ("email", "ann@example.com"),
            ("message", &long),
        ],
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST)
    .assert_has("at most 5000 characters");
    assert_eq!(site.count("feedback").await, 0);

    let ok = v
        .submit(
            "/feedback/",
            "/feedback/",
            &[
                ("name", "Ann"),
                ("email", "ann@example.com"),
                ("message", "Lovely site.\nThanks!"),
            ],
        )
        .await;
    ok.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/feedback/?sent=1");
    v.get("/feedback/?sent=1")
        .await
        .assert_has("your feedback was received");
    assert_eq!(site.count("feedback").await, 1);

    let mut staff = site.staff().await;
    staff
        .get("/admin/feedback/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Ann")
        .assert_has("ann@example.com")
        .assert_has("Lovely site.\nThanks!");
    staff.get("/admin/").await.assert_has("Feedback (1)");
}

async fn script_and_sql_input_is_stored_as_typed_and_shown_escaped(site: &Site) {
    let script = "<script>alert('x')</script>";
    let sql = "Robert'); DROP TABLE posts; --";
    let mut v = site.visitor();
    v.submit(
        "/feedback/",
        "/feedback/",
        &[
            ("name", script),
            ("email", "x@example.com"),
            ("message", sql),
        ],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    let row = sqlx::query("SELECT name, message FROM feedback")
        .fetch_one(site.db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("name").unwrap(), script);
    assert_eq!(row.try_get::<String, _>("message").unwrap(), sql);

    let mut staff = site.staff().await;
    staff
        .get("/admin/feedback/")
        .await
        .assert_has("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;")
        .assert_has("Robert&#x27;); DROP TABLE posts; --")
        .assert_lacks(script);

    // A post titled with markup, and a body with a script, through the admin.
    let title = format!("{script} & {sql}");
    staff
        .new_post(
            &title,
            "<b>tag</b>",
            "Hi <script>alert(1)</script> <img src=x onerror=alert(2)>",
            true,
        )
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let stored: String = sqlx::query("SELECT title FROM posts WHERE title LIKE '<script>%'")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("title")
        .unwrap();
    assert_eq!(stored, title);
    let home = v.get("/").await;
    home.assert_has("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Robert&#x27;);")
        .assert_has("&lt;b&gt;tag&lt;/b&gt;")
        .assert_lacks(script)
        .assert_lacks("<b>tag</b>");
    let slug = "script-alert-x-script-robert-drop-table-posts";
    let post = v.get(&format!("/posts/{slug}/")).await;
    post.assert_status(StatusCode::OK)
        .assert_lacks("<script>alert(1)")
        .assert_lacks("onerror");
    assert_eq!(
        site.count("posts").await,
        5,
        "the posts table is still there"
    );
}

async fn admin_is_for_staff_only(site: &Site) {
    let mut anonymous = site.visitor();
    let page = anonymous.get("/admin/").await;
    page.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/accounts/login/?next=%2Fadmin%2F");
    assert_eq!(
        anonymous.get("/admin/posts/new/").await.location(),
        "/accounts/login/?next=%2Fadmin%2Fposts%2Fnew%2F"
    );

    let mut member = site.visitor();
    member.register("member").await;
    let posts = site.count("posts").await;
    for path in [
        "/admin/",
        "/admin/feedback/",
        "/admin/posts/new/",
        "/admin/posts/1/edit/",
        "/admin/posts/1/delete/",
    ] {
        member
            .get(path)
            .await
            .assert_status(StatusCode::FORBIDDEN)
            .assert_has("staff accounts only");
    }
    member
        .new_post("Sneaky", "x", "body", true)
        .await
        .assert_status(StatusCode::FORBIDDEN);
    let token = member.get("/").await.csrf();
    member
        .post_raw("/admin/posts/1/delete/", &[("csrf_token", &token)])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert_eq!(site.count("posts").await, posts);
    member.get("/").await.assert_lacks("href=\"/admin/\"");

    let mut staff = site.staff().await;
    staff
        .get("/admin/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Welcome to keel")
        .assert_has("New post");
    staff.get("/").await.assert_has("href=\"/admin/\"");
    // Preview from a script: 401 without a session, HTML for staff.
    let token = anonymous.get("/accounts/login/").await.csrf();
    anonymous
        .post_raw("/admin/preview", &[("csrf_token", &token), ("body", "x")])
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn admin_creates_previews_edits_and_deletes_posts(site: &Site) {
    let mut staff = site.staff().await;
    let posts = site.count("posts").await;
    // Preview renders and stores nothing (without JavaScript, the form comes back).
    let preview = staff
        .submit(
            "/admin/posts/new/",
            "/admin/posts/new/",
            &[
                ("title", "Draft"),
                ("body", "Some **bold** text"),
                ("tags", "a"),
                ("action", "preview"),
            ],
        )
        .await;
    preview
        .assert_status(StatusCode::OK)
        .assert_has("<strong>bold</strong>")
        .assert_has("value=\"Draft\"");
    let token = staff.get("/admin/").await.csrf();
    staff
        .post_raw(
            "/admin/preview",
            &[
                ("csrf_token", &token),
                ("body", "# Head\n<script>x</script>"),
            ],
        )
        .await
        .assert_status(StatusCode::OK)
        .assert_has("<h1>Head</h1>")
        .assert_lacks("<script>");
    assert_eq!(site.count("posts").await, posts);

    // Create.
    let created = staff
        .new_post(
            "Deploying with systemd",
            "Deploy, Systemd",
            "Use the **units** in `deploy/`.",
            true,
        )
        .await;
    created.assert_status(StatusCode::SEE_OTHER);
    let id: i64 = created
        .location()
        .strip_prefix("/admin/?saved=")
        .unwrap()
        .parse()
        .unwrap();
    staff
        .get(created.location())
        .await
        .assert_has("Deploying with systemd")
        .assert_has("saved.");
    let mut reader = site.visitor();
    reader
        .get("/posts/deploying-with-systemd/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("<strong>units</strong>")
        .assert_has("href=\"/?tag=systemd\"");
    reader
        .get("/?tag=systemd")
        .await
        .assert_has("Deploying with systemd");
    // The same title again gets a free slug.
    staff
        .new_post("Deploying with systemd", "", "Again.", true)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    reader
        .get("/posts/deploying-with-systemd-2/")
        .await
        .assert_status(StatusCode::OK);

    // Edit: new title, tags changed, unpublished.
    let edit = format!("/admin/posts/{id}/edit/");
    staff
        .get(&edit)
        .await
        .assert_has("value=\"deploy, systemd\"")
        .assert_has("Use the **units**");
    staff
        .submit(
            &edit,
            &edit,
            &[
                ("title", "Deploying with systemd, revised"),
                ("slug", "systemd-deploys"),
                ("tags", "ops"),
                ("body", "Revised."),
                ("action", "save"),
            ],
        )
        .await
        .assert_status(StatusCode::SEE_OTHER);
    reader
        .get("/posts/deploying-with-systemd/")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    reader
        .get("/posts/systemd-deploys/")
        .await
        .assert_status(StatusCode::NOT_FOUND); // a draft now
    let home = reader.get("/").await;
    home.assert_lacks("revised")
        .assert_lacks("?tag=systemd")
        .assert_lacks("?tag=ops");
    staff
        .get("/admin/")
        .await
        .assert_has("Deploying with systemd, revised")
        .assert_has("Draft");

    // Delete: confirmation page, then POST.
    let delete = format!("/admin/posts/{id}/delete/");
    staff
        .get(&delete)
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Deploying with systemd, revised");
    let gone = staff.submit(&delete, &delete, &[]).await;
    gone.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(gone.location(), "/admin/");
    staff.get(&edit).await.assert_status(StatusCode::NOT_FOUND);
    let token = staff.get("/admin/").await.csrf();
    staff
        .post_raw(&delete, &[("csrf_token", &token)])
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // The "ops" tag went with its only post.
    let tags: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tags WHERE name = 'ops'")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(tags, 0);
    assert_eq!(site.count("posts").await, posts + 1);
}

async fn admin_validation_returns_the_form_and_stores_nothing(site: &Site) {
    let mut staff = site.staff().await;
    let posts = site.count("posts").await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("title", ""), ("body", "b")], "A post needs a title."),
        (&[("title", "T"), ("body", "  ")], "A post needs a body."),
        (
            &[("title", "T"), ("body", "b"), ("slug", "Bad Slug!")],
            "lowercase letters, digits and single dashes",
        ),
        (
            &[("title", "T"), ("body", "b"), ("slug", "welcome-to-keel")],
            "Another post already has this slug.",
        ),
        (
            &[
                ("title", "T"),
                ("body", "b"),
                ("tags", "a,b,c,d,e,f,g,h,i,j,k"),
            ],
            "at most 10 tags",
        ),
    ];
    for (form, message) in cases {
        let mut fields = form.to_vec();
        fields.push(("action", "save"));
        staff
            .submit("/admin/posts/new/", "/admin/posts/new/", &fields)
            .await
            .assert_status(StatusCode::BAD_REQUEST)
            .assert_has(message);
    }
    assert_eq!(site.count("posts").await, posts);
    staff
        .get("/admin/posts/999999/edit/")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    staff
        .get("/admin/posts/abc/edit/")
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}

async fn publishing_a_post_emits_a_site_event(site: &Site) {
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/stream/?channel=site", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    // Wait until the hub holds the subscription, so the publish is not missed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while site.hub.stats().clients == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut staff = site.staff().await;
    // A draft says nothing; publishing it does, once.
    staff
        .new_post("Quiet draft", "", "Not yet.", false)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    staff
        .new_post("Hello, live readers", "news", "Now.", true)
        .await
        .assert_status(StatusCode::SEE_OTHER);

    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("Hello, live readers") {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no post_published event; stream said:\n{seen}"
    );
    assert!(seen.contains("\"type\":\"post_published\""), "{seen}");
    assert!(
        seen.contains("\"url\":\"/posts/hello-live-readers/\""),
        "{seen}"
    );
    assert!(
        !seen.contains("Quiet draft"),
        "a draft was announced: {seen}"
    );
}

async fn cookies_and_headers_are_safe(site: &Site) {
    let mut v = site.visitor();
    let home = v.get("/").await;
    let cookies = home.set_cookies();
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("keel_csrf="))
        .expect("a CSRF cookie on the first visit");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(csrf.contains(attribute), "{csrf}");
    }
    assert!(!csrf.contains("Secure"), "Secure over plain HTTP: {csrf}");
    assert!(home.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(home.headers["x-frame-options"], "DENY");
    assert_eq!(home.headers["x-content-type-options"], "nosniff");
    // The second visit keeps the token: no new cookie.
    assert!(v.get("/").await.set_cookies().is_empty());

    // Behind TLS (the edge says so), the session cookie is Secure.
    let mut tls = site.visitor();
    let token = tls.get("/accounts/login/").await.csrf();
    let cookie = tls.cookie_header();
    let page = tls
        .send(
            tls.client
                .post(format!("{}/accounts/login/", site.base))
                .header("x-forwarded-proto", "https")
                .header(COOKIE, cookie)
                .form(&[
                    ("csrf_token", token.as_str()),
                    ("username", "admin"),
                    ("password", ADMIN_PASSWORD),
                ]),
        )
        .await;
    page.assert_status(StatusCode::SEE_OTHER);
    let session = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("keel_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Max-Age=1209600"] {
        assert!(session.contains(attribute), "{session}");
    }
}

#[tokio::test]
async fn sample_posts_are_added_once_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keel.db").display());
    let rows = |db: keel_site::Db, table: &'static str| async move {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        n
    };
    let count = |db: keel_site::Db| rows(db, "posts");
    let mut cfg = keel_site::SiteConfig::new(url.clone());
    cfg.sample_data = false;
    let site = keel_site::Site::open(cfg).await.unwrap();
    assert_eq!(count(site.db().clone()).await, 0);
    assert_eq!(
        rows(site.db().clone(), "quizzes").await,
        0,
        "--no-sample-data skips the quizzes"
    );
    site.db().close().await;

    let site = keel_site::Site::open(keel_site::SiteConfig::new(url.clone()))
        .await
        .unwrap();
    assert_eq!(count(site.db().clone()).await, 4);
    assert_eq!(
        rows(site.db().clone(), "quizzes").await,
        4,
        "the sample quizzes"
    );
    sqlx::query("DELETE FROM posts")
        .execute(site.db().pool())
        .await
        .unwrap();
    site.db().close().await;
    // Emptied by hand: the samples do not come back.
    let site = keel_site::Site::open(keel_site::SiteConfig::new(url))
        .await
        .unwrap();
    assert_eq!(count(site.db().clone()).await, 0);
}
