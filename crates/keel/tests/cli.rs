//! Black-box tests of the `keel` binary: the processes a user starts, on port 0, talked
//! to over HTTP and stopped with real signals.

// Test helpers outside #[test] fns panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{keel, refused, Process, Redis};
use nix::sys::signal::Signal;

fn start_mock(latency: &str) -> (Process, String) {
    let mut cmd = keel();
    cmd.args([
        "mock-upstream",
        "--listen",
        "127.0.0.1:0",
        "--latency",
        latency,
    ]);
    let mut mock = Process::start(cmd);
    let base = mock.url_after("keel mock-upstream: listening on");
    (mock, format!("{base}/todos/1"))
}

fn start_serve(upstream: &str, extra: &[&str]) -> (Process, String) {
    let mut cmd = keel();
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--upstream-url", upstream]);
    cmd.args(extra);
    let mut serve = Process::start(cmd);
    let base = serve.url_after("keel serve: listening on");
    (serve, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request_then_exits_0() {
    let (_mock, upstream) = start_mock("800ms");
    let (mut serve, base) = start_serve(&upstream, &["--workers", "2", "--threads", "2"]);

    let in_flight = tokio::spawn(reqwest::get(format!("{base}/sync/test")));
    tokio::time::sleep(Duration::from_millis(250)).await;
    serve.signal(Signal::SIGTERM);

    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["title"], "delectus aut autem");
    assert_eq!(serve.wait(Duration::from_secs(5)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_nothing_in_flight_exits_at_once() {
    let (_mock, upstream) = start_mock("0ms");
    let (mut serve, base) = start_serve(&upstream, &[]);
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let started = Instant::now();
    serve.signal(Signal::SIGINT);
    assert_eq!(serve.wait(Duration::from_secs(5)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_up_answers_on_all_its_routes_offline() {
    let statics = tempfile::tempdir().unwrap();
    let mut cmd = keel();
    cmd.args(["up", "--listen", "127.0.0.1:0", "--latency", "10ms"])
        .env("KEEL_STATIC_ROOT", statics.path());
    let mut up = Process::start(cmd);
    let base = up.url_after("keel up: serving on");

    // The site, with its sample posts and its stylesheet under a collected, hashed name.
    let home = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(home.status(), 200);
    let home = home.text().await.unwrap();
    assert!(home.contains("Welcome to keel"), "{home}");
    let marker = "href=\"/static/css/site.";
    let start = home.find(marker).expect("hashed stylesheet link") + "href=\"".len();
    let href = &home[start..start + home[start..].find('"').unwrap()];
    let site_css = reqwest::get(format!("{base}{href}")).await.unwrap();
    assert_eq!(site_css.status(), 200, "{href}");
    assert!(site_css.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    for path in ["/sync/test", "/async/test"] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["userId"], 1, "{path}");
    }
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("keel_http_requests_total"));

    let css = reqwest::get(format!("{base}/static/css/keel.css"))
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(statics.path().join("manifest.json").is_file());

    up.signal(Signal::SIGTERM);
    assert_eq!(up.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn bad_config_is_refused_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.toml");
    std::fs::write(&path, "[serve]\nworkers = 4\nbind = \"127.0.0.1:99999\"\n").unwrap();
    let stderr = refused(keel().args(["serve", "--config"]).arg(&path));
    let expected = format!("{}:3: serve.bind:", path.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("invalid socket address"), "{stderr}");
}

#[test]
fn unknown_key_and_bad_env_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.toml");
    std::fs::write(&path, "[serve]\nworkres = 4\n").unwrap();
    let stderr = refused(keel().args(["config", "--config"]).arg(&path));
    assert!(
        stderr.contains(":2: serve.workres: unknown field"),
        "{stderr}"
    );

    let stderr = refused(keel().args(["serve"]).env("KEEL_UPSTREAM_TIMEOUT", "soon"));
    assert!(
        stderr.contains("environment variable KEEL_UPSTREAM_TIMEOUT: serve.upstream_timeout"),
        "{stderr}"
    );
}

#[test]
fn config_prints_effective_values_with_origins_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.toml");
    std::fs::write(
        &path,
        "[serve]\nupstream_url = \"https://me:s3cret@api.example.org/todos/1\"\n",
    )
    .unwrap();
    let output = keel()
        .args(["config", "--config"])
        .arg(&path)
        .env("KEEL_WORKERS", "3")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(stdout.contains("me:****@api.example.org"), "{stdout}");
    assert!(stdout.contains("workers = 3"), "{stdout}");
    assert!(
        stdout.contains("# environment variable KEEL_WORKERS"),
        "{stdout}"
    );
}

#[test]
fn taken_port_is_a_clear_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let stderr = refused(keel().args(["serve", "--bind", &addr]));
    assert!(
        stderr.contains(&format!("could not listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_edge_proxies_to_keel_serve_and_limits_per_address() {
    let (_mock, upstream) = start_mock("0ms");
    let (_serve, app) = start_serve(&upstream, &[]);
    let app_addr = app.trim_start_matches("http://").to_owned();
    let mut cmd = keel();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &app_addr,
        "--rate",
        "1r/s",
        "--burst",
        "2",
        "--limit-status",
        "429",
    ]);
    let mut edge = Process::start(cmd);
    let base = edge.url_after("keel edge: listening on");
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = client
            .get(format!("{base}/async/test"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["id"], 1);
        } else {
            assert!(response.headers().contains_key("retry-after"));
        }
    }
    // The first is free and two fit the burst; the rest are over it.
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    edge.signal(Signal::SIGTERM);
    assert_eq!(edge.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn edge_without_upstream_is_refused() {
    let stderr = refused(keel().args(["edge", "--listen", "127.0.0.1:0"]));
    assert!(stderr.contains("--upstream"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_access_log_goes_to_log_dir_and_reopens_on_sigusr1() {
    let (_mock, upstream) = start_mock("0ms");
    let (_serve, app) = start_serve(&upstream, &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = keel();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "off",
        "--upstream",
    ])
    .arg(app.trim_start_matches("http://"))
    .arg("--log-dir")
    .arg(dir.path());
    let mut edge = Process::start(cmd);
    let base = edge.url_after("keel edge: listening on");
    let log = dir.path().join("access.log");

    reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first = wait_for(&log, "GET /healthz").await;
    assert!(first.contains("\"GET /healthz HTTP/1.1\" 200 "), "{first}");

    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    edge.signal(Signal::SIGUSR1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let second = wait_for(&log, "GET /metrics").await;
    assert!(
        second.contains("\"GET /metrics HTTP/1.1\" 200 "),
        "{second}"
    );
    edge.signal(Signal::SIGTERM);
    assert_eq!(edge.wait(Duration::from_secs(5)), Some(0));
}

async fn wait_for(path: &std::path::Path, needle: &str) -> String {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no line with {needle:?} in {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectstatic_then_edge_serves_hashed_immutable_files() {
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(source.path().join("css")).unwrap();
    // 9 KB of CSS, like the benchmark's, so it is worth precompressing.
    let css = "body { margin: 0; padding: 0; color: #222; }\n".repeat(200);
    std::fs::write(source.path().join("css/site.css"), &css).unwrap();
    let root = tempfile::tempdir().unwrap();
    let collect = || {
        keel()
            .args(["collectstatic", "--static-root"])
            .arg(root.path())
            .arg("--source")
            .arg(source.path())
            .output()
            .unwrap()
    };
    let first = collect();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.path().join("manifest.json")).unwrap())
            .unwrap();
    let hashed = manifest["paths"]["css/site.css"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(root.path().join(&hashed).is_file());
    assert!(root.path().join(format!("{hashed}.br")).is_file());
    assert!(root.path().join(format!("{hashed}.gz")).is_file());
    assert!(
        manifest["paths"]["css/keel.css"].is_string(),
        "the app's own assets are collected"
    );
    // Idempotent: the second run copies nothing.
    let second = collect();
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(said.contains("0 static files copied"), "{said}");

    let mut cmd = keel();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
    ])
    .arg("--static-root")
    .arg(root.path());
    let mut edge = Process::start(cmd);
    let base = edge.url_after("keel edge: listening on");
    let response = reqwest::Client::new()
        .get(format!("{base}/static/{hashed}"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "br");
    assert_eq!(response.headers()["vary"], "Accept-Encoding");
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    edge.signal(Signal::SIGTERM);
    assert_eq!(edge.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn edge_with_missing_explicit_static_root_is_refused() {
    let stderr = refused(
        keel()
            .args([
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
            ])
            .args(["--static-root", "/nonexistent/static"]),
    );
    assert!(stderr.contains("/nonexistent/static"), "{stderr}");
    assert!(stderr.contains("keel collectstatic"), "{stderr}");
}

fn write_cert(dir: &std::path::Path) -> reqwest::Certificate {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap()
}

fn trusting(root: reqwest::Certificate) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(root)
        .tls_built_in_root_certs(false)
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_terminates_tls_and_reloads_the_certificate_on_sighup() {
    let (_mock, upstream) = start_mock("0ms");
    let (_serve, app) = start_serve(&upstream, &[]);
    let dir = tempfile::tempdir().unwrap();
    let first_root = write_cert(dir.path());
    let mut cmd = keel();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
    ])
    .arg("--upstream")
    .arg(app.trim_start_matches("http://"))
    .arg("--tls-cert")
    .arg(dir.path().join("cert.pem"))
    .arg("--tls-key")
    .arg(dir.path().join("key.pem"));
    let mut edge = Process::start(cmd);
    let _plain = edge.url_after("keel edge: listening on http://");
    let tls = edge.url_after("keel edge: listening on https://");
    let url = format!(
        "https://localhost:{}/async/test",
        tls.rsplit(':').next().unwrap()
    );

    let response = trusting(first_root.clone()).get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);

    let second_root = write_cert(dir.path());
    edge.signal(Signal::SIGHUP);
    let mut reloaded = false;
    for _ in 0..50 {
        if trusting(second_root.clone()).get(&url).send().await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new certificate was not served after SIGHUP");
    assert!(trusting(first_root).get(&url).send().await.is_err());
    edge.signal(Signal::SIGTERM);
    assert_eq!(edge.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn tls_cert_without_key_is_refused() {
    let stderr = refused(
        keel()
            .args([
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
            ])
            .args(["--tls-cert", "/tmp/cert.pem"]),
    );
    assert!(stderr.contains("edge.tls_key"), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_edge_configuration_and_keeps_it_when_broken() {
    let (_mock, upstream) = start_mock("0ms");
    let (_serve, app) = start_serve(&upstream, &[]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keel.toml");
    let write = |upstream: &str| {
        let text = format!(
            "[edge]\nupstream = [\"{upstream}\"]\nrate = \"off\"\nhealth_check = \"off\"\n"
        );
        std::fs::write(&config, text).unwrap();
    };
    write(&dead.to_string());
    let mut cmd = keel();
    cmd.args(["edge", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let mut edge = Process::start(cmd);
    let base = edge.url_after("keel edge: listening on");
    let client = reqwest::Client::new();
    let status = |client: &reqwest::Client| {
        let request = client.get(format!("{base}/healthz")).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(status(&client).await, 502);

    write(app.trim_start_matches("http://"));
    edge.signal(Signal::SIGHUP);
    let mut now = 0;
    for _ in 0..50 {
        now = status(&client).await;
        if now == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now, 200, "the new upstream was not picked up");

    // The log says what a reload applied and what only a restart applies (issue 16).
    let text = format!(
        "[edge]\nupstream = [\"{}\"]\nrate = \"5r/s\"\nhealth_check = \"off\"\nheader_timeout = \"20s\"\nworkers = 3\n",
        app.trim_start_matches("http://")
    );
    std::fs::write(&config, text).unwrap();
    edge.signal(Signal::SIGHUP);
    let mut said = String::new();
    for _ in 0..50 {
        said = edge.stderr_text();
        if said.contains("only a restart applies") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let applied = said
        .lines()
        .rfind(|l| l.contains("SIGHUP: configuration reloaded"))
        .unwrap_or_else(|| panic!("no reload line:\n{said}"));
    assert!(applied.contains("edge.rate"), "{applied}");
    let restart = said
        .lines()
        .find(|l| l.contains("only a restart applies"))
        .unwrap_or_else(|| panic!("no restart line:\n{said}"));
    assert!(
        restart.contains("edge.header_timeout") && restart.contains("edge.workers"),
        "{restart}"
    );
    assert!(!restart.contains("edge.rate"), "{restart}");
    assert_eq!(status(&client).await, 200);

    std::fs::write(&config, "[edge]\nupstream = [\"no port here\"]\n").unwrap();
    edge.signal(Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status(&client).await,
        200,
        "a broken file replaced a working config"
    );
    edge.signal(Signal::SIGTERM);
    assert_eq!(edge.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn keel_bench_reports_like_hey_and_compare_writes_its_files() {
    let (_mock, upstream) = start_mock("10ms");
    let output = keel()
        .args(["bench", "-n", "60", "-c", "6"])
        .arg(&upstream)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    for part in [
        "Summary:",
        "Requests/sec:",
        "Latency distribution:",
        "99% in",
    ] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
    assert!(text.contains("[200]\t60 responses"), "{text}");

    let out = tempfile::tempdir().unwrap();
    let output = keel()
        .args([
            "compare",
            "--matrix",
            "20x5",
            "--upstream-latency",
            "10ms",
            "--settle",
            "0s",
        ])
        .arg("--target")
        .arg(format!("mock={upstream}"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("20/5") && table.contains("mock"), "{table}");
    for file in [
        "report.md",
        "results.json",
        "rps.svg",
        "p95.svg",
        "rps.png",
        "p95.png",
    ] {
        assert!(out.path().join(file).is_file(), "{file} not written");
    }
}

#[test]
fn keel_bench_refuses_bad_flags_clearly() {
    let stderr = refused(keel().args(["bench", "-n", "5", "-c", "50", "http://127.0.0.1:9/"]));
    assert!(stderr.contains("-n") && stderr.contains("-c"), "{stderr}");
}

/// Reads an SSE body until `needle` shows up (or 5 s pass); returns what was read.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    needle: &str,
) -> String {
    use futures_util::StreamExt;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains(needle) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_up_streams_what_keel_publish_sends_through_the_api() {
    let statics = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef-token";
    let mut cmd = keel();
    cmd.args(["up", "--listen", "127.0.0.1:0", "--no-access-log"])
        .env("KEEL_STATIC_ROOT", statics.path())
        .env("KEEL_PUBLISH_TOKEN", token);
    let mut up = Process::start(cmd);
    let base = up.url_after("keel up: serving on");

    let response = reqwest::get(format!("{base}/stream/")).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut body = response.bytes_stream();

    let published = keel()
        .args([
            "publish",
            "--api",
            &base,
            "--token",
            token,
            "demo_stream",
            "Test Event",
        ])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let seen = read_until(&mut body, "data: Test Event").await;
    assert!(seen.contains("data: Test Event"), "{seen}");
    assert!(
        seen.contains("\nid: "),
        "keel-published events carry an id: {seen}"
    );

    let refused = keel()
        .args([
            "publish",
            "--api",
            &base,
            "--token",
            "wrong-token-wrong-token",
            "demo_stream",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));

    // The token from keel.toml's stream.publish_token, as every other setting (issue 16:
    // `--api` used to read only the flag and the variable).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, format!("[stream]\npublish_token = \"{token}\"\n")).unwrap();
    let from_file = keel()
        .args(["--config", file.to_str().unwrap()])
        .args(["publish", "--api", &base, "demo_stream", "From the file"])
        .env_remove("KEEL_PUBLISH_TOKEN")
        .output()
        .unwrap();
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    let seen = read_until(&mut body, "data: From the file").await;
    assert!(seen.contains("data: From the file"), "{seen}");
    let without = keel()
        .args(["publish", "--api", &base, "demo_stream", "x"])
        .env_remove("KEEL_PUBLISH_TOKEN")
        .current_dir(dir.path().join(".."))
        .output()
        .unwrap();
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("stream.publish_token"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    let page = reqwest::get(format!("{base}/events/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The site's /events/: its layout, the stream it follows, the command that works here.
    assert!(page.contains("data-event-log=\"/stream/\""), "{page}");
    assert!(page.contains("aria-current=\"page\">Events</a>"), "{page}");
    assert!(page.contains("keel publish demo_stream"), "{page}");

    up.signal(Signal::SIGTERM);
    assert_eq!(up.wait(Duration::from_secs(5)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serves_on_one_redis_see_raw_and_keel_publishes() {
    let Some(redis) = Redis::start() else { return };
    let (_mock, upstream) = start_mock("0ms");
    let redis_url = redis.url();
    let (_a, _base_a) = start_serve(&upstream, &["--redis-url", &redis_url]);
    let (_b, base_b) = start_serve(&upstream, &["--redis-url", &redis_url]);

    let health: serde_json::Value = reqwest::get(format!("{base_b}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["broker"], "ok", "{health}");
    let mut body = reqwest::get(format!("{base_b}/stream/"))
        .await
        .unwrap()
        .bytes_stream();
    // Let instance B subscribe before publishing (pub/sub keeps nothing for late joiners).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // As `redis-cli publish demo_stream "Test Event"` would.
    let reply = redis
        .command(&["PUBLISH", "demo_stream", "Test Event"])
        .unwrap();
    assert!(reply.starts_with(':'), "{reply}");
    let seen = read_until(&mut body, "data: Test Event").await;
    assert!(seen.contains("data: Test Event"), "{seen}");

    let published = keel()
        .args([
            "publish",
            "--redis-url",
            &redis_url,
            "demo_stream",
            "line one\nline two",
        ])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let seen = read_until(&mut body, "data: line two").await;
    assert!(seen.contains("data: line one\ndata: line two"), "{seen}");
}

#[test]
fn keel_bench_sse_measures_delivery_through_keel_up() {
    let statics = tempfile::tempdir().unwrap();
    let token = "bench-sse-test-token-0123";
    let mut cmd = keel();
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--no-access-log",
        "--no-rate-limit",
    ])
    .env("KEEL_STATIC_ROOT", statics.path())
    .env("KEEL_PUBLISH_TOKEN", token);
    let mut up = Process::start(cmd);
    let base = up.url_after("keel up: serving on");
    let output = keel()
        .args(["bench", "--sse", &format!("{base}/stream/")])
        .args([
            "--clients",
            "20",
            "--events",
            "5",
            "--interval",
            "20ms",
            "--settle",
            "1s",
        ])
        .args([
            "--publish-url",
            &format!("{base}/api/publish"),
            "--token",
            token,
        ])
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["clients_connected"], 20, "{report}");
    assert_eq!(report["events_published"], 5, "{report}");
    assert_eq!(report["delivered"], 100, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    up.signal(Signal::SIGTERM);
    assert_eq!(up.wait(Duration::from_secs(5)), Some(0));
}

/// The production shape on loopback: `keel edge` in front of two `keel serve` sharing one
/// redis-server (issue 7's split topology).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_topology_edge_two_serves_one_redis() {
    let Some(redis) = Redis::start() else { return };
    let (_mock, upstream) = start_mock("0ms");
    let redis_url = redis.url();
    let token = "split-topology-token-0123";
    let start = |redis_url: &str| {
        let mut cmd = keel();
        cmd.args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--upstream-url",
            &upstream,
        ])
        .args(["--redis-url", redis_url])
        .env("KEEL_PUBLISH_TOKEN", token);
        let mut serve = Process::start(cmd);
        let base = serve.url_after("keel serve: listening on");
        (serve, base)
    };
    let (serve_a, base_a) = start(&redis_url);
    let (_serve_b, base_b) = start(&redis_url);

    let statics = tempfile::tempdir().unwrap();
    let collected = keel()
        .args(["collectstatic", "--static-root"])
        .arg(statics.path())
        .output()
        .unwrap();
    assert!(collected.status.success());
    let mut cmd = keel();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--health-check",
        "off",
        "--no-access-log",
    ])
    .args(["--upstream", base_a.trim_start_matches("http://")])
    .args(["--upstream", base_b.trim_start_matches("http://")])
    .args(["--rate", "20r/s", "--burst", "40"])
    .arg("--static-root")
    .arg(statics.path());
    let mut edge = Process::start(cmd);
    let edge_url = edge.url_after("keel edge: listening on");
    let client = reqwest::Client::new();

    // Static files come from the edge itself.
    let css = client
        .get(format!("{edge_url}/static/css/keel.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers().contains_key("etag"));

    // A client on instance B sees what is published on instance A.
    let mut stream = client
        .get(format!("{base_b}/stream/"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published = keel()
        .args([
            "publish",
            "--api",
            &base_a,
            "--token",
            token,
            "demo_stream",
            "from A",
        ])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let seen = read_until(&mut stream, "data: from A").await;
    assert!(seen.contains("data: from A"), "{seen}");

    // Instance A dies mid-run: no GET through the edge fails.
    let mut failures = 0;
    let mut serve_a = Some(serve_a);
    for i in 0..30 {
        if i == 10 {
            if let Some(mut a) = serve_a.take() {
                a.signal(Signal::SIGKILL);
                a.wait(Duration::from_secs(5));
            }
        }
        let status = client
            .get(format!("{edge_url}/async/test"))
            .send()
            .await
            .unwrap()
            .status();
        if status != 200 {
            failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failures, 0, "requests failed while an instance died");

    // The rate limit is enforced at the edge: a burst well past 1 + 40 gets 503s.
    let statuses = futures_util::future::join_all(
        (0..80).map(|_| client.get(format!("{edge_url}/healthz")).send()),
    )
    .await;
    let limited = statuses
        .iter()
        .filter(|r| r.as_ref().map(|r| r.status() == 503).unwrap_or(false))
        .count();
    assert!(limited > 0, "no request was limited");
    edge.signal(Signal::SIGTERM);
    assert_eq!(edge.wait(Duration::from_secs(5)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_does_not_kill_keel_serve() {
    let (_mock, upstream) = start_mock("0ms");
    let (mut serve, base) = start_serve(&upstream, &[]);
    serve.signal(Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    serve.signal(Signal::SIGTERM);
    assert_eq!(serve.wait(Duration::from_secs(5)), Some(0));
}

/// `keel migrate` applies the embedded migrations once; `keel createsuperuser` makes a
/// staff account from flags and stdin, with the registration rules and clear refusals.
#[test]
fn migrate_and_createsuperuser_work_from_scripts() {
    use std::io::Write;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/keel.db").display());
    let run = |args: &[&str], stdin: &str| {
        let mut child = keel()
            .args(args)
            .env("KEEL_DATABASE_URL", &url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, out, err) = run(&["migrate"], "");
    assert!(ok, "{err}");
    // Every migration the site has (their number grows with the site).
    assert!(
        out.contains("keel migrate: applied ") && out.contains(" migration(s) to "),
        "{out}"
    );
    let (ok, out, _) = run(&["migrate"], "");
    assert!(ok && out.contains("up to date"), "{out}");

    let create = [
        "createsuperuser",
        "--username",
        "boss",
        "--email",
        "boss@example.com",
        "--password-stdin",
    ];
    let (ok, out, err) = run(&create, "tidal-quartz-meadow-91\n");
    assert!(ok, "{err}");
    assert!(out.contains("superuser \"boss\" created"), "{out}");
    let (ok, _, err) = run(&create, "tidal-quartz-meadow-91\n");
    assert!(!ok && err.contains("already exists"), "{err}");

    let weak = [
        "createsuperuser",
        "--username",
        "boss2",
        "--email",
        "b@example.com",
        "--password-stdin",
    ];
    let (ok, _, err) = run(&weak, "password\n");
    assert!(!ok && err.contains("too common"), "{err}");
    // Without a terminal, a missing value is an error that names the flag.
    let (ok, _, err) = run(&["createsuperuser", "--email", "b@example.com"], "");
    assert!(!ok && err.contains("--username is required"), "{err}");
    let (ok, _, err) = run(
        &[
            "createsuperuser",
            "--username",
            "boss3",
            "--email",
            "b@example.com",
        ],
        "",
    );
    assert!(!ok && err.contains("--password-stdin"), "{err}");

    // A bad URL from the environment is refused by name, without echoing its password.
    let stderr = refused(
        keel()
            .arg("migrate")
            .env("KEEL_DATABASE_URL", "mysql://root:pw@db/keel"),
    );
    assert!(stderr.contains("KEEL_DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("sqlite:// or postgres://"), "{stderr}");
    assert!(!stderr.contains("root:pw"), "password shown: {stderr}");
}

/// Issue 15: with Redis down, `keel publish` took 13.6 s to fail. It now gives up within
/// a couple of seconds, says why, and exits non-zero.
#[test]
fn keel_publish_fails_fast_when_redis_is_down() {
    // A port nothing listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let output = keel()
        .args([
            "publish",
            "--redis-url",
            &format!("redis://127.0.0.1:{port}/"),
            "demo_stream",
            "Test Event",
        ])
        .env("KEEL_LOG_LEVEL", "error")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not publish to demo_stream"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(4), "took {took:?}: {stderr}");
}

/// `keel quiz`: a bad file is refused with every error's FILE:LINE and stores nothing;
/// a good one is imported and counted; its export imports back to the same questions.
#[test]
fn keel_quiz_imports_refuses_bad_files_and_round_trips_through_gift() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/keel.db", dir.path().display());
    let run = |args: &[&str]| {
        let out = keel()
            .args(["quiz"])
            .args(args)
            .env("KEEL_DATABASE_URL", &db)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let bad = dir.path().join("bad.gift");
    std::fs::write(
        &bad,
        "::a::Broken {=x ~y\n\n::b::Fine {=ok ~no}\n\n::c::Also {#abc}\n",
    )
    .unwrap();
    let (ok, _, err) = run(&["import", "--quiz", "limits", bad.to_str().unwrap()]);
    assert!(!ok, "{err}");
    let shown = bad.display();
    assert!(err.contains(&format!("{shown}:1: ")), "{err}");
    assert!(err.contains(&format!("{shown}:5: ")), "{err}");
    assert!(err.contains("nothing was stored"), "{err}");
    let (_, list, _) = run(&["list"]);
    assert!(!list.contains("limits"), "{list}");

    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../keel-site/quizzes/edge-and-limit-req.gift");
    let (ok, out, err) = run(&[
        "import",
        "--dry-run",
        "--quiz",
        "limits",
        sample.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("nothing was stored"), "{out}{err}");
    let (ok, out, err) = run(&[
        "import",
        "--draft",
        "--quiz",
        "limits",
        sample.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let n: usize = out
        .trim()
        .strip_prefix("imported ")
        .and_then(|rest| rest.strip_suffix(" questions into quiz limits"))
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    let original = std::fs::read_to_string(&sample).unwrap();
    let parsed = keel_quiz::gift::parse(&original).unwrap();
    assert_eq!(n, parsed.iter().filter(|q| q.is_graded()).count());
    let (ok, gift, err) = run(&["export", "--format", "gift", "limits"]);
    assert!(ok, "{err}");
    assert_eq!(
        keel_quiz::gift::parse(&gift).unwrap(),
        parsed,
        "export → import"
    );
    let (_, list, _) = run(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("limits ") && l.contains(&n.to_string())),
        "{list}"
    );
    let (ok, _, err) = run(&["export", "--format", "gift", "nope"]);
    assert!(!ok && err.contains("no quiz \"nope\""), "{err}");
}

/// `keel interview` driven through standard input: one answer per line, an empty line is
/// "I don't know", the end of input leaves every remaining turn unanswered; the text report
/// ends with `score: N/100`, the JSON one has the questions' covered and missed points, and
/// the same seed asks the same questions.
#[test]
fn keel_interview_reads_answers_from_stdin_and_reports() {
    let tracks = keel()
        .args(["interview", "--list-tracks"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&tracks.stdout).into_owned();
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        ["edge", "app-server", "live-events", "sync-async"],
        "{listed}"
    );

    let run = |format: &str, input: &str| {
        let mut child = keel()
            .args([
                "interview",
                "--track",
                "edge",
                "--seed",
                "42",
                "--format",
                format,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Nothing answered: every turn unanswered, score 0.
    let text = run("text", "");
    assert!(text.trim_end().ends_with("score: 0/100"), "{text}");

    // The first question's model answer, then input ends.
    let json: serde_json::Value = serde_json::from_str(run("json", "").trim()).unwrap();
    let first = json["questions"][0]["model_answer"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered: serde_json::Value =
        serde_json::from_str(run("json", &format!("{first}\n\n")).trim()).unwrap();
    assert_eq!(
        answered["questions"][0]["question"], json["questions"][0]["question"],
        "the same seed asks the same questions"
    );
    let covered = answered["questions"][0]["covered"].as_array().unwrap();
    assert!(!covered.is_empty(), "{answered}");
    assert!(answered["score"].as_f64().unwrap() > 0.0, "{answered}");
    assert_eq!(answered["questions"][1]["covered"], serde_json::json!([]));
    let text = run("text", &format!("{first}\n"));
    let last = text.trim_end().lines().last().unwrap();
    let score: f64 = last
        .strip_prefix("score: ")
        .and_then(|s| s.strip_suffix("/100"))
        .unwrap_or_else(|| panic!("{last}"))
        .parse()
        .unwrap();
    assert!(score > 0.0, "{text}");
    let refused = refused(keel().args(["interview", "--track", "nope"]));
    assert!(refused.contains("edge, app-server"), "{refused}");
}

/// Issue 19: `keel bench` against `keel up` (rate limited by default) says that it
/// measured the rate limiter, and how to measure the server instead; the report on
/// standard output stays hey's.
#[test]
fn keel_bench_warns_when_it_measured_the_rate_limiter() {
    let statics = tempfile::tempdir().unwrap();
    let mut cmd = keel();
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--no-access-log",
        "--latency",
        "0s",
    ])
    .env("KEEL_STATIC_ROOT", statics.path());
    let mut up = Process::start(cmd);
    let base = up.url_after("keel up: serving on");
    let out = keel()
        .args(["bench", "-n", "200", "-c", "50"])
        .arg(format!("{base}/async/test"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("Status code distribution:") && stdout.contains("[503]"),
        "{stdout}"
    );
    assert!(
        stderr.contains("keel bench: warning:") && stderr.contains("keel up --no-rate-limit"),
        "{stderr}"
    );
    // A run the limiter let through (once its bucket has drained: 20 at 10 r/s) says nothing.
    std::thread::sleep(Duration::from_millis(2500));
    let out = keel()
        .args(["bench", "-n", "5", "-c", "1"])
        .arg(format!("{base}/healthz"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
}

/// Issue 19: `keel publish CHANNEL MESSAGE` with no flags reaches the `keel up` running from
/// the same directory, through the publish file it writes (owner-only, its address and a
/// token made for the run); the banner prints that command. Without a running `keel up` the
/// refusal says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_publish_with_no_flags_reaches_the_local_keel_up() {
    let here = tempfile::tempdir().unwrap();
    let statics = tempfile::tempdir().unwrap();
    let refused = keel()
        .current_dir(here.path())
        .args(["publish", "demo_stream", "nobody home"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("found no keel up running here"), "{stderr}");

    let mut cmd = keel();
    cmd.current_dir(here.path())
        .args(["up", "--listen", "127.0.0.1:0", "--no-access-log"])
        .env("KEEL_STATIC_ROOT", statics.path());
    let mut up = Process::start(cmd);
    let base = up.url_after("keel up: serving on");
    let file = here.path().join("keel-data/publish.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the publish file is the owner's only");
    }
    let response = reqwest::get(format!("{base}/stream/")).await.unwrap();
    let mut body = response.bytes_stream();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published = keel()
        .current_dir(here.path())
        .args(["publish", "demo_stream", "Test Event"])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let seen = read_until(&mut body, "data: Test Event").await;
    assert!(seen.contains("data: Test Event"), "{seen}");
    up.signal(Signal::SIGTERM);
    assert_eq!(up.wait(Duration::from_secs(10)), Some(0));
    let banner = up.stderr_text();
    let _ = banner;
    assert!(
        !file.exists(),
        "keel up removes its publish file when it stops"
    );
}

/// Issue 19: a rate-limited page request gets the site's styled page (the collected
/// `errors/<status>.html`, nginx's `error_page`) when it accepts HTML, through `keel edge`'s
/// fast path and `keel up`'s in-process edge alike; a script still gets the one-line text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_page_request_gets_the_styled_error_page() {
    let statics = tempfile::tempdir().unwrap();
    let collected = keel()
        .arg("collectstatic")
        .arg("--static-root")
        .arg(statics.path())
        .output()
        .unwrap();
    assert!(collected.status.success());
    let (_mock, upstream) = start_mock("0ms");
    let (_serve, app) = start_serve(&upstream, &[]);
    let mut cmd = keel();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "1r/s",
        "--burst",
        "0",
    ])
    .args(["--limit-status", "429", "--no-access-log"])
    .arg("--upstream")
    .arg(app.trim_start_matches("http://"))
    .arg("--static-root")
    .arg(statics.path());
    let mut edge = Process::start(cmd);
    let edge_base = edge.url_after("keel edge: listening on");
    let mut cmd = keel();
    cmd.args([
        "up",
        "--listen",
        "127.0.0.1:0",
        "--no-access-log",
        "--rate",
        "1r/s",
    ])
    .args(["--burst", "0", "--latency", "0s"])
    .env("KEEL_STATIC_ROOT", statics.path());
    let mut up = Process::start(cmd);
    let up_base = up.url_after("keel up: serving on");
    let client = reqwest::Client::new();
    for (base, status) in [(&edge_base, 429), (&up_base, 503)] {
        let get = |accept: &'static str| {
            client
                .get(format!("{base}/async/test"))
                .header("accept", accept)
                .send()
        };
        assert_eq!(get("text/html").await.unwrap().status(), 200, "{base}");
        let page = get("text/html,application/xhtml+xml,*/*;q=0.8")
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), status, "{base}");
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(page.headers().contains_key("retry-after"));
        let body = page.text().await.unwrap();
        assert!(
            body.contains("Slow down a moment") && body.contains("/static/css/site.css"),
            "{body}"
        );
        let text = get("application/json").await.unwrap();
        assert_eq!(text.status().as_u16(), status);
        assert!(
            text.text().await.unwrap().contains("Too many requests"),
            "{base}"
        );
    }
    edge.signal(Signal::SIGTERM);
    up.signal(Signal::SIGTERM);
}
