//! Differential HTTP/1.1 conformance: keel's edge against Debian's nginx.
//!
//! This test owns the question "does keel's edge let through, or mix up, anything the
//! nginx it replaces would not?". Each case's raw bytes go over TCP to keel's edge and to
//! an nginx configured the classic way (`proxy_pass` to an upstream with keep-alive),
//! each in front of its own *recording backend*. The test records what every client got
//! (status lines, or how the connection ended) and what each backend saw (raw bytes and
//! request heads), prints a table, and writes it with details to
//! `$CARGO_TARGET_TMPDIR/conformance.md`.
//!
//! It fails when
//! - (a) keel forwards to its backend a request that nginx refused itself (answered
//!   ≥ 400, or closed, without forwarding it), unless the case is in [`MAY_FORWARD`];
//! - (b) a client receives bytes of an answer meant for another request: after a
//!   misbehaving backend answer (a 204 or 304 with a body, a body for HEAD, bytes after
//!   the end of an answer, a malformed length, a stray 100 Continue), later clients of the
//!   same front must get their own answers (one scenario, a response arriving late,
//!   tolerates one crossed answer per trial: see [`SCENARIOS`] for why).
//!
//! Different statuses alone (keel 400 where nginx says 414) are reported, not failed.
//! nginx must be installed (`apt-get install nginx-light`); without it the test is
//! skipped, except under `CI=true` where it fails.

// Test code: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "conformance/backend.rs"]
mod backend;
#[path = "conformance/client.rs"]
mod client;
#[path = "conformance/nginx.rs"]
mod nginx;
#[path = "conformance/wire.rs"]
mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use backend::{Recorder, Seen};
use client::{Answer, End};
use wire::{show, Response};

/// Cases where keel may forward what nginx refuses, each with the reason. Ideally none.
const MAY_FORWARD: &[(&str, &str)] = &[];

/// Trials of each poisoning scenario, per front.
const TRIALS: usize = 10;
/// Requests of the second client after each poisoning request.
const VICTIMS: usize = 5;
/// The most one poisoning scenario may take on one front (bounds the test when a front
/// makes every victim wait).
const SCENARIO_BUDGET: Duration = Duration::from_secs(5);

/// One request case: raw bytes written at once on a new connection.
struct Case {
    name: String,
    request: Vec<u8>,
}

fn case(name: &str, request: impl Into<Vec<u8>>) -> Case {
    Case {
        name: name.to_owned(),
        request: request.into(),
    }
}

const HOST: &str = "Host: localhost\r\n";

fn get(target: &str, fields: &str) -> String {
    format!("GET {target} HTTP/1.1\r\n{HOST}{fields}\r\n")
}

fn post(fields: &str, body: &str) -> String {
    format!("POST /post HTTP/1.1\r\n{HOST}{fields}\r\n{body}")
}

fn chunked(body: &str) -> String {
    post("Transfer-Encoding: chunked\r\n", body)
}

fn cases() -> Vec<Case> {
    let long_uri = format!("/{}", "a".repeat(9000));
    let long_value = format!("X-Big: {}\r\n", "b".repeat(9 * 1024));
    let smuggled = format!("0\r\n\r\n{}", get("/smuggled", ""));
    let many_fields: String = (0..200).map(|i| format!("X-F{i}: {i}\r\n")).collect();
    vec![
        // Controls.
        case("GET (control)", get("/plain", "")),
        case("HEAD (control)", format!("HEAD /plain HTTP/1.1\r\n{HOST}\r\n")),
        case("POST Content-Length (control)", post("Content-Length: 5\r\n", "hello")),
        case("POST chunked (control)", chunked("5\r\nhello\r\n0\r\n\r\n")),
        // Body framing.
        case(
            "CL + TE",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        case(
            "TE + CL, body smuggles a GET",
            post(
                &format!("Transfer-Encoding: chunked\r\nContent-Length: {}\r\n", smuggled.len()),
                &smuggled,
            ),
        ),
        case(
            "TE: gzip, chunked",
            post(
                "Transfer-Encoding: gzip, chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        case(
            "TE: chunked, chunked",
            post(
                "Transfer-Encoding: chunked, chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        case(
            "TE: chunked + trailing space",
            post("Transfer-Encoding: chunked \r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "TE: Chunked (capital)",
            post("Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "TE: identity",
            post("Transfer-Encoding: identity\r\nContent-Length: 5\r\n", "hello"),
        ),
        case(
            "TE: xchunked",
            post("Transfer-Encoding: xchunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "TE: \\x0bchunked (VT)",
            post("Transfer-Encoding:\x0bchunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        ),
        case(
            "two TE: chunked lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        case(
            "TE: chunked on HTTP/1.0",
            "POST /post HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        case(
            "two different CL",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        ),
        case(
            "two equal CL",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
        ),
        case("CL: 5, 5", post("Content-Length: 5, 5\r\n", "hello")),
        case("CL: 1, 1", post("Content-Length: 1, 1\r\n", "a")),
        case("CL: +5", post("Content-Length: +5\r\n", "hello")),
        case("CL: -1", post("Content-Length: -1\r\n", "")),
        case("CL: 0x5", post("Content-Length: 0x5\r\n", "hello")),
        case("CL: 005", post("Content-Length: 005\r\n", "hello")),
        case("CL: 5 + trailing space", post("Content-Length: 5 \r\n", "hello")),
        case("CL: empty", post("Content-Length: \r\n", "")),
        case(
            "CL: 2^64+5 (overflow)",
            post("Content-Length: 18446744073709551621\r\n", "hello"),
        ),
        case("GET with CL: 3 and body", get("/get-body", "Content-Length: 3\r\n") + "abc"),
        // Chunked bodies.
        case("chunk size zz", chunked("zz\r\nhello\r\n0\r\n\r\n")),
        case("chunk size 0x5", chunked("0x5\r\nhello\r\n0\r\n\r\n")),
        case("chunk size -5", chunked("-5\r\nhello\r\n0\r\n\r\n")),
        case(
            "chunk size 2^64+5 (overflow)",
            chunked("10000000000000005\r\nhello\r\n0\r\n\r\n"),
        ),
        case("chunk size + trailing space", chunked("5 \r\nhello\r\n0\r\n\r\n")),
        case("chunk data without CRLF", chunked("5\r\nhelloXX0\r\n\r\n")),
        case("chunk extension", chunked("5;ext=1\r\nhello\r\n0\r\n\r\n")),
        case("chunk size 0005", chunked("0005\r\nhello\r\n0\r\n\r\n")),
        case(
            "chunk extension with bare LF",
            chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"),
        ),
        case("chunked trailer field", chunked("5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")),
        case(
            "chunked last chunk with bare LF",
            chunked("5\r\nhello\r\n0\n\r\n"),
        ),
        // Request line.
        case(
            "CONNECT",
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        ),
        case("OPTIONS *", format!("OPTIONS * HTTP/1.1\r\n{HOST}\r\n")),
        case("GET *", get("*", "")),
        case("tabs in the request line", format!("GET\t/x\tHTTP/1.1\r\n{HOST}\r\n")),
        case("empty line before the request", format!("\r\n{}", get("/x", ""))),
        case(
            "absolute-form, other Host",
            "GET http://example.com/x HTTP/1.1\r\nHost: other.example\r\n\r\n",
        ),
        case(
            "absolute-form https",
            "GET https://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
        ),
        case("absolute-form http:///x", get("http:///x", "")),
        case("absolute-form userinfo", get("http://user@example.com/x", "")),
        case("target without /", get("x", "")),
        case("target with #fragment", get("/x#frag", "")),
        case("lower-case method", format!("get /x HTTP/1.1\r\n{HOST}\r\n")),
        case("unknown method FOO", format!("FOO /x HTTP/1.1\r\n{HOST}\r\n")),
        case("method G(ET", format!("G(ET /x HTTP/1.1\r\n{HOST}\r\n")),
        case("two spaces after method", format!("GET  /x HTTP/1.1\r\n{HOST}\r\n")),
        case("space in target", format!("GET /a b HTTP/1.1\r\n{HOST}\r\n")),
        case("CTL in target", format!("GET /a\x01b HTTP/1.1\r\n{HOST}\r\n")),
        case("HTTP/2.0", format!("GET /x HTTP/2.0\r\n{HOST}\r\n")),
        case("HTTP/1.2", format!("GET /x HTTP/1.2\r\n{HOST}\r\n")),
        case("HTTP/0.9 (no version)", "GET /x\r\n\r\n"),
        case("http/1.1 (lower case)", format!("GET /x http/1.1\r\n{HOST}\r\n")),
        // Paths.
        case("/a/../../b", get("/a/../../b", "")),
        case("/a/%2e%2e/%2e%2e/b", get("/a/%2e%2e/%2e%2e/b", "")),
        case("/a/../b", get("/a/../b", "")),
        case("//accounts///login/", get("//accounts///login/", "")),
        case("/%00 in path", get("/a%00b", "")),
        case("9,000-byte URI", get(&long_uri, "")),
        // Host.
        case("missing Host (1.1)", "GET /x HTTP/1.1\r\n\r\n"),
        case("empty Host", "GET /x HTTP/1.1\r\nHost: \r\n\r\n"),
        case(
            "two Host lines",
            "GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        ),
        case("Host: a b", "GET /x HTTP/1.1\r\nHost: a b\r\n\r\n"),
        case("Host: bad/host", "GET /x HTTP/1.1\r\nHost: bad/host\r\n\r\n"),
        case(
            "Host: user@localhost",
            "GET /x HTTP/1.1\r\nHost: user@localhost\r\n\r\n",
        ),
        case("HTTP/1.0 without Host", "GET /x HTTP/1.0\r\n\r\n"),
        // Header fields.
        case("9 KB header value", get("/x", &long_value)),
        case("200 header fields", get("/x", &many_fields)),
        case("obs-fold", get("/x", "X-A: a\r\n b\r\n")),
        case("bare LF line endings", "GET /x HTTP/1.1\nHost: localhost\n\n"),
        case("bare CR in a value", get("/x", "X-A: a\rb\r\n")),
        case("NUL in a value", get("/x", "X-A: a\0b\r\n")),
        case("space before colon", "GET /x HTTP/1.1\r\nHost : localhost\r\n\r\n"),
        case("field without colon", get("/x", "X-A\r\n")),
        case("field name X[]", get("/x", "X[]: y\r\n")),
        case(
            "whitespace before the first field",
            "GET /x HTTP/1.1\r\n X-A: a\r\nHost: localhost\r\n\r\n",
        ),
        case("Connection: host", get("/x", "Connection: host\r\n")),
        case(
            "Connection: x-secret hides a field",
            get("/x", "Connection: x-secret\r\nX-Secret: 1\r\n"),
        ),
        case(
            "Upgrade: h2c",
            get(
                "/x",
                "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
            ),
        ),
        case(
            "Expect: 100-continue POST",
            post("Content-Length: 5\r\nExpect: 100-continue\r\n", "hello"),
        ),
        // Several requests on one connection.
        case(
            "HTTP/1.0 keep-alive, two requests",
            "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
        ),
        case("pipelined two GETs", get("/a", "") + &get("/b", "")),
        case(
            "pipelined GET + malformed",
            get("/a", "") + "GET /b HTTP/1.1\r\nHost: localhost\r\nBad Field: x\r\n\r\n",
        ),
    ]
}

/// Where a front sends its requests, and what it sent there.
struct Front {
    addr: SocketAddr,
    seen: Recorder,
}

/// One case on both fronts.
struct Outcome {
    name: String,
    request: Vec<u8>,
    nginx: Answer,
    keel: Answer,
    nginx_seen: Seen,
    keel_seen: Seen,
}

impl Outcome {
    /// nginx answered a request itself with a refusal (or closed without an answer).
    fn nginx_refused(&self) -> bool {
        let refusal = |r: &Response| r.status >= 400 && !r.body.starts_with(b"backend refused");
        self.nginx.responses.iter().any(refusal)
            || (self.nginx.responses.is_empty()
                && matches!(self.nginx.end, End::Closed | End::Reset))
    }

    /// keel's backend saw more than nginx's: a request more, or anything where nginx's
    /// saw nothing.
    fn keel_forwarded_more(&self) -> bool {
        self.keel_seen.requests.len() > self.nginx_seen.requests.len()
            || (self.nginx_seen.raw.is_empty() && !self.keel_seen.raw.is_empty())
    }

    fn keel_forwarded_less(&self) -> bool {
        self.keel_seen.requests.len() < self.nginx_seen.requests.len()
            || (self.keel_seen.raw.is_empty() && !self.nginx_seen.raw.is_empty())
    }

    /// Failure (a).
    fn forwards_a_refusal(&self) -> bool {
        self.nginx_refused()
            && self.keel_forwarded_more()
            && !MAY_FORWARD.iter().any(|(name, _)| *name == self.name)
    }

    fn note(&self) -> String {
        let mut notes = Vec::new();
        if self.forwards_a_refusal() {
            notes.push("**FAIL: keel forwarded what nginx refused**");
        } else if self.nginx_refused() && self.keel_forwarded_more() {
            notes.push("keel forwarded what nginx refused (allowed in MAY_FORWARD)");
        }
        if contains(&self.keel.raw, b"POISONED") {
            notes.push("**FAIL: poisoned answer**");
        }
        if contains(&self.nginx.raw, b"POISONED") {
            notes.push("nginx's answer poisoned");
        }
        if self.keel_forwarded_less() {
            notes.push("keel stricter");
        }
        if self.nginx.summary() != self.keel.summary() {
            notes.push("status differs");
        }
        if !self.nginx_seen.raw.is_empty()
            && !self.keel_seen.raw.is_empty()
            && seen_summary(&self.nginx_seen) != seen_summary(&self.keel_seen)
        {
            notes.push("forwarded differently");
        }
        notes.join("; ")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a backend saw, in one short cell.
fn seen_summary(seen: &Seen) -> String {
    if seen.raw.is_empty() {
        return "-".to_owned();
    }
    if seen.requests.is_empty() {
        return format!("{} bytes, no whole head", seen.raw.len());
    }
    let requests: Vec<String> = seen
        .requests
        .iter()
        .map(|request| match &request.head {
            Err(e) => format!("unparseable ({e})"),
            Ok(head) => {
                let mut out = format!("{} {}", head.method, show(head.target.as_bytes(), 48));
                if head.version == 0 {
                    out.push_str(" 1.0");
                }
                let hosts: Vec<&str> = head.values("host").collect();
                match hosts.as_slice() {
                    [] => out.push_str(" no-host"),
                    [host] => out.push_str(&format!(" host={}", show(host.as_bytes(), 32))),
                    _ => out.push_str(&format!(" hosts={}", show(hosts.join(",").as_bytes(), 48))),
                }
                match (&request.body, &request.body_error) {
                    (Some(body), _) if !body.is_empty() => {
                        out.push_str(&format!(" body={:?}", String::from_utf8_lossy(body)));
                    }
                    (Some(_), _) => {}
                    (None, Some(e)) => out.push_str(&format!(" body-error ({e})")),
                    (None, None) => out.push_str(" body-incomplete"),
                }
                out
            }
        })
        .collect();
    if requests.len() == 1 {
        requests.join("")
    } else {
        format!("{}: {}", requests.len(), requests.join("; "))
    }
}

/// Runs `case` on both fronts at once; each backend's record covers just this case.
async fn run_case(case: &Case, nginx: &Front, keel: &Front) -> Outcome {
    tokio::join!(hang_up(nginx), hang_up(keel));
    nginx.seen.take();
    keel.seen.take();
    let head = case.request.starts_with(b"HEAD ");
    let (nginx_answer, keel_answer) = tokio::join!(
        client::exchange(nginx.addr, &case.request, head),
        client::exchange(keel.addr, &case.request, head),
    );
    // Bytes a front sent just before answering are in by now.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Outcome {
        name: case.name.clone(),
        request: case.request.clone(),
        nginx: nginx_answer,
        keel: keel_answer,
        nginx_seen: nginx.seen.take(),
        keel_seen: keel.seen.take(),
    }
}

/// A misbehaving backend answer, asked for by its path.
struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// A race no keep-alive proxy can see (see [`SCENARIOS`]): keel may not cross more
    /// answers than nginx does on the same backend. Otherwise keel must cross none.
    race: bool,
}

/// The poisoning scenarios. One is a race: a response that arrives 50 ms after a complete
/// one, while the proxy has already sent the next request on that pooled connection, is
/// read as that request's answer — no proxy that reuses upstream connections can tell it
/// apart (nginx 1.22 crosses every victim's answer here). There keel must do no worse
/// than nginx; everywhere else it must cross no answer at all.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "204 followed by a response",
        method: "GET",
        path: "/poison/204",
        race: false,
    },
    Scenario {
        name: "304 followed by a response",
        method: "GET",
        path: "/poison/304",
        race: false,
    },
    Scenario {
        name: "HEAD answered with a body",
        method: "HEAD",
        path: "/poison/head",
        race: false,
    },
    Scenario {
        name: "response 50 ms after the answer",
        method: "GET",
        path: "/poison/late",
        race: true,
    },
    Scenario {
        name: "Content-Length: +5",
        method: "GET",
        path: "/poison/cl-plus",
        race: false,
    },
    Scenario {
        name: "100 Continue to a GET",
        method: "GET",
        path: "/poison/100",
        race: false,
    },
];

/// What the clients of one front got in one scenario.
#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    /// The poisoning request's own answers, by status.
    attacker: BTreeMap<String, usize>,
    /// Victim requests answered with their own answer.
    ok: usize,
    /// Answers meant for another request, described.
    poisoned: Vec<String>,
    /// The most crossed answers in one trial.
    worst_trial: usize,
    /// Other outcomes (errors, no answer), by kind.
    other: BTreeMap<String, usize>,
}

impl Tally {
    fn victims(&self) -> String {
        let mut parts = vec![format!("{}/{} ok", self.ok, self.trials * VICTIMS)];
        if !self.poisoned.is_empty() {
            parts.push(format!(
                "**{} POISONED** (≤ {} per trial)",
                self.poisoned.len(),
                self.worst_trial
            ));
        }
        parts.extend(self.other.iter().map(|(k, n)| format!("{n}× {k}")));
        parts.join(", ")
    }

    fn attacker(&self) -> String {
        self.attacker
            .iter()
            .map(|(k, n)| format!("{n}× {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Judges one answer a victim got for `target`.
fn judge(target: &str, response: &Response, tally: &mut Tally) {
    let expected = format!("ok GET {target}");
    if response.status == 200 && response.body == expected.as_bytes() {
        tally.ok += 1;
    } else if contains(&response.body, b"POISONED")
        || response.head.contains("stolen")
        || response.body.starts_with(b"ok ")
    {
        tally.poisoned.push(format!(
            "{target} got {}",
            show(&[response.head.as_bytes(), &response.body].concat(), 200)
        ));
    } else {
        *tally
            .other
            .entry(format!("victim {}", response.status))
            .or_default() += 1;
    }
}

/// Bytes no request asked for, arriving on a client's connection.
fn stray(who: &str, bytes: &[u8], tally: &mut Tally) {
    if bytes.is_empty() {
        return;
    }
    if contains(bytes, b"POISONED") || contains(bytes, b"ok ") {
        tally
            .poisoned
            .push(format!("{who} got stray {}", show(bytes, 200)));
    } else {
        *tally.other.entry(format!("{who} junk")).or_default() += 1;
    }
}

/// The second client: `VICTIMS` requests in a row right after a poisoning request, on
/// one keep-alive connection (a new one if the front closes it).
async fn victims(addr: SocketAddr, trial: usize, tally: &mut Tally) {
    let mut connection = None;
    let mut pending = Vec::new();
    for i in 0..VICTIMS {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let target = format!("/victim/{trial}-{i}");
        if connection.is_none() {
            connection = client::connect(addr).await;
            pending.clear();
        }
        let Some(stream) = connection.as_mut() else {
            *tally
                .other
                .entry("victim: no connection".into())
                .or_default() += 1;
            continue;
        };
        let request = format!("GET {target} HTTP/1.1\r\n{HOST}\r\n");
        if stream.write_all(request.as_bytes()).await.is_err() {
            *tally
                .other
                .entry("victim: write failed".into())
                .or_default() += 1;
            connection = None;
            continue;
        }
        match client::read_one(stream, &mut pending, false, Duration::from_secs(1)).await {
            Some(response) => {
                judge(&target, &response, tally);
                if response
                    .head
                    .to_ascii_lowercase()
                    .contains("connection: close")
                {
                    stray("victim", &pending, tally);
                    connection = None;
                }
            }
            None => {
                stray("victim", &pending, tally);
                *tally.other.entry("victim: no answer".into()).or_default() += 1;
                connection = None;
            }
        }
    }
    if let Some(mut stream) = connection {
        pending.extend(client::drain(&mut stream, Duration::from_millis(60)).await);
        stray("victim", &pending, tally);
    }
}

/// Closes the backend's connections, and gives the front a moment to notice.
async fn hang_up(front: &Front) {
    front.seen.hang_up();
    tokio::time::sleep(Duration::from_millis(30)).await;
}

/// Runs `scenario` `TRIALS` times on one front, each trial on fresh upstream
/// connections.
async fn poison_trials(front: &Front, scenario: &Scenario) -> Tally {
    let addr = front.addr;
    let mut tally = Tally::default();
    let started = Instant::now();
    let head = scenario.method == "HEAD";
    for trial in 0..TRIALS {
        if started.elapsed() > SCENARIO_BUDGET {
            break;
        }
        hang_up(front).await;
        let crossed = tally.poisoned.len();
        tally.trials += 1;
        let Some(mut attacker) = client::connect(addr).await else {
            *tally.attacker.entry("no connection".into()).or_default() += 1;
            continue;
        };
        let request = format!(
            "{} {} HTTP/1.1\r\n{HOST}\r\n",
            scenario.method, scenario.path
        );
        let _ = attacker.write_all(request.as_bytes()).await;
        let mut pending = Vec::new();
        let answer = client::read_one(&mut attacker, &mut pending, head, Duration::from_secs(2))
            .await
            .map_or("none".to_owned(), |r| r.status.to_string());
        *tally.attacker.entry(answer).or_default() += 1;
        victims(addr, trial, &mut tally).await;
        // What else reached the first client: its next request would read it.
        pending.extend(client::drain(&mut attacker, Duration::from_millis(30)).await);
        stray("first client", &pending, &mut tally);
        tally.worst_trial = tally.worst_trial.max(tally.poisoned.len() - crossed);
    }
    tally
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_refuses_what_nginx_refuses_and_never_mixes_up_answers() {
    if !std::path::Path::new(nginx::BINARY).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} missing: CI must install nginx-light (see .ci/run)",
            nginx::BINARY
        );
        println!("skipping: nginx not installed (apt-get install nginx-light)");
        return;
    }
    let started = Instant::now();
    let nginx_seen = Recorder::default();
    let keel_seen = Recorder::default();
    let nginx_upstream = backend::spawn(nginx_seen.clone()).await;
    let keel_upstream = backend::spawn(keel_seen.clone()).await;
    let nginx = nginx::Nginx::start(nginx_upstream).await;

    let mut cfg = keel_edge::EdgeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        keel_edge::Backend::Upstreams(vec![keel_upstream.to_string().parse().unwrap()]),
    );
    cfg.routing.balance.health_check = None;
    let edge = keel_edge::Edge::build(cfg).await.unwrap();
    let keel_addr = edge.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let edge_task = tokio::spawn(edge.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let nginx_front = Front {
        addr: nginx.addr,
        seen: nginx_seen,
    };
    let keel_front = Front {
        addr: keel_addr,
        seen: keel_seen,
    };

    let mut outcomes = Vec::new();
    for case in cases() {
        outcomes.push(run_case(&case, &nginx_front, &keel_front).await);
    }
    let mut tallies = Vec::new();
    for scenario in SCENARIOS {
        let (on_nginx, on_keel) = tokio::join!(
            poison_trials(&nginx_front, scenario),
            poison_trials(&keel_front, scenario),
        );
        tallies.push((scenario, on_nginx, on_keel));
    }

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), edge_task).await;

    // The report.
    let mut table = String::new();
    table.push_str("## Requests\n\n");
    table.push_str(
        "| case | nginx | keel | backend saw via nginx | backend saw via keel | notes |\n",
    );
    table.push_str("|---|---|---|---|---|---|\n");
    for o in &outcomes {
        writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&o.name),
            cell(&o.nginx.summary()),
            cell(&o.keel.summary()),
            cell(&seen_summary(&o.nginx_seen)),
            cell(&seen_summary(&o.keel_seen)),
            cell(&o.note()),
        )
        .unwrap();
    }
    writeln!(
        table,
        "\n## Poisoning ({TRIALS} trials each, {VICTIMS} victim requests per trial)\n"
    )
    .unwrap();
    table.push_str("| scenario | nginx: first client | keel: first client | nginx: victims | keel: victims |\n");
    table.push_str("|---|---|---|---|---|\n");
    for (scenario, on_nginx, on_keel) in &tallies {
        writeln!(
            table,
            "| {} (`{} {}`){} | {} | {} | {} | {} |",
            scenario.name,
            scenario.method,
            scenario.path,
            if scenario.race {
                ", a race: keel no worse than nginx".to_owned()
            } else {
                String::new()
            },
            cell(&on_nginx.attacker()),
            cell(&on_keel.attacker()),
            cell(&on_nginx.victims()),
            cell(&on_keel.victims()),
        )
        .unwrap();
    }

    let mut failures = Vec::new();
    for o in &outcomes {
        if o.forwards_a_refusal() {
            failures.push(format!(
                "{}: nginx refused ({}) but keel forwarded it ({} → backend saw {})",
                o.name,
                o.nginx.summary(),
                o.keel.summary(),
                seen_summary(&o.keel_seen)
            ));
        }
        if contains(&o.keel.raw, b"POISONED") {
            failures.push(format!("{}: keel's client got a poisoned answer", o.name));
        }
    }
    for (scenario, on_nginx, on_keel) in &tallies {
        let allowed = if scenario.race {
            on_nginx.poisoned.len()
        } else {
            0
        };
        // A victim that got an error or nothing was hurt too (Django's body on HEAD made
        // the next user's request a 502 through the old pool): outside the race, every
        // victim gets its own answer.
        if !scenario.race && on_keel.ok != on_keel.trials * VICTIMS {
            failures.push(format!(
                "after `{} {}`: only {} of {} victim requests on keel got their own answer ({})",
                scenario.method,
                scenario.path,
                on_keel.ok,
                on_keel.trials * VICTIMS,
                on_keel.victims(),
            ));
        }
        if on_keel.poisoned.len() > allowed {
            failures.push(format!(
                "poisoning after `{} {}`: {} answers crossed on keel ({} allowed), up to {} \
                 in one trial, e.g. {}",
                scenario.method,
                scenario.path,
                on_keel.poisoned.len(),
                allowed,
                on_keel.worst_trial,
                on_keel.poisoned.first().map_or("", String::as_str),
            ));
        }
    }

    // Details, for the file only.
    let mut details = String::from("\n## Details\n");
    for o in &outcomes {
        writeln!(details, "\n### {}\n\n```text", o.name).unwrap();
        writeln!(details, "request:        {}", show(&o.request, 600)).unwrap();
        for (front, answer, seen) in [
            ("nginx", &o.nginx, &o.nginx_seen),
            ("keel", &o.keel, &o.keel_seen),
        ] {
            writeln!(
                details,
                "{front:5} answer:   {:?} {}",
                answer.end,
                show(&answer.raw, 600)
            )
            .unwrap();
            writeln!(details, "{front:5} backend:  {}", show(&seen.raw, 1200)).unwrap();
        }
        details.push_str("```\n");
    }
    for (scenario, on_nginx, on_keel) in &tallies {
        for (front, tally) in [("nginx", on_nginx), ("keel", on_keel)] {
            for poisoned in tally.poisoned.iter().take(3) {
                writeln!(details, "\n{front} `{}`: {poisoned}", scenario.path).unwrap();
            }
        }
    }
    let log = nginx.error_log();
    let tail_start = (log.len().saturating_sub(30_000)..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    let log_tail = &log[tail_start..];
    writeln!(
        details,
        "\n## nginx error log (tail)\n\n```text\n{log_tail}\n```"
    )
    .unwrap();
    drop(nginx);

    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance.md");
    let header = format!(
        "# keel edge vs nginx (Debian 1.22): HTTP/1.1 conformance\n\nTook {:.1} s.\n\n",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&path, format!("{header}{table}{details}")).unwrap();
    println!("{table}");
    println!("report: {}", path.display());
    assert!(
        failures.is_empty(),
        "{} failure(s):\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}
