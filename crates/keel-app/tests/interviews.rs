//! The AI Interviewer over real HTTP, on SQLite and on PostgreSQL: setup, the turn loop
//! with the interviewer's words streamed as Server-Sent Events (the rubric's sentences, or
//! a model's tokens through keel's mock model), an answer that is too long (kept, nothing
//! stored), someone else's interview (404), the report and its Markdown, and the staff's
//! bank editor (line-numbered refusals) and regrade.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use keel_interview::{Session, Step};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use sqlx::Row;
use support::*;

/// Starts an interview of `track` as `v`; returns the session's path.
async fn start(v: &mut Visitor, track: &str, mode: &str) -> String {
    let page = v
        .submit(
            "/interviewer/",
            "/interviewer/",
            &[
                ("track", track),
                ("level", "junior"),
                ("length", "5"),
                ("mode", mode),
            ],
        )
        .await;
    page.assert_status(StatusCode::SEE_OTHER);
    let to = page.location().to_owned();
    assert!(to.ends_with("/?say=0"), "{to}");
    to.trim_end_matches("?say=0").to_owned()
}

/// The stored state machine of the only interview, and its transcript length.
async fn stored(site: &Site) -> (Session, usize) {
    let row = sqlx::query("SELECT state, transcript FROM interview_sessions ORDER BY id DESC")
        .fetch_one(site.db.pool())
        .await
        .unwrap();
    let state: String = row.try_get("state").unwrap();
    let transcript: String = row.try_get("transcript").unwrap();
    let lines: Vec<serde_json::Value> = serde_json::from_str(&transcript).unwrap();
    (serde_json::from_str(&state).unwrap(), lines.len())
}

/// The model answer of the question the interview is on.
async fn model_answer(site: &Site, track: &str) -> String {
    let (session, _) = stored(site).await;
    let tracks = keel_interview::shipped();
    let track = tracks.iter().find(|t| t.name == track).unwrap();
    let id = session.step().question_id().unwrap().to_owned();
    track.question(&id).unwrap().model_answer.clone()
}

/// Reads a reply stream to its end (`done`, 10 s at most); returns the frames' JSON.
async fn read_say(v: &Visitor, url: &str) -> Vec<serde_json::Value> {
    let response = v
        .client
        .get(format!("{}{url}", v.base))
        .header(COOKIE, v.cookie_header())
        // The same client address as the visitor's page requests (its model budget).
        .header("x-real-ip", &v.address)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the reply stream ends")
        .unwrap();
    body.split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn answer(v: &mut Visitor, session: &str, action: &str, text: &str) -> Page {
    v.submit(session, session, &[("answer", text), ("action", action)])
        .await
}

async fn an_interview_runs_from_setup_to_report(site: &Site) {
    let mut v = site.visitor();
    let page = v.get("/interviewer/").await;
    page.assert_status(StatusCode::OK)
        .assert_has("aria-current=\"page\">AI Interviewer</a>")
        .assert_has("The edge and rate limiting")
        .assert_has("nothing you write leaves the machine");
    let session = start(&mut v, "edge", "practice").await;
    let page = v.get(&format!("{session}?say=0")).await;
    page.assert_status(StatusCode::OK)
        .assert_has(&format!("data-say=\"{session}say/0/\""));
    // The first question, streamed sentence by sentence.
    let frames = read_say(&v, &format!("{session}say/0/")).await;
    assert!(frames.iter().any(|f| f["t"] == "sentence"), "{frames:?}");
    assert_eq!(frames.last().unwrap()["t"], "done", "{frames:?}");

    // The model answer covers the question: the reply says so, nothing is marked missed.
    let good = model_answer(site, "edge").await;
    let reply = answer(&mut v, &session, "answer", &good).await;
    reply.assert_status(StatusCode::SEE_OTHER);
    let (after, lines) = stored(site).await;
    assert_eq!(lines, 3, "question, answer, reply");
    let verdict = after.turns()[0].verdict.clone().unwrap();
    assert!(verdict.score >= 80.0, "{verdict:?}");
    let frames = read_say(&v, &format!("{session}say/2/")).await;
    let said: String = frames.iter().filter_map(|f| f["text"].as_str()).collect();
    assert!(!said.is_empty(), "{frames:?}");

    // Too long: refused with the text kept, nothing stored.
    let long = "rate limiting ".repeat(400);
    let page = answer(&mut v, &session, "answer", &long).await;
    page.assert_status(StatusCode::BAD_REQUEST)
        .assert_has("the interviewer reads at most 4000")
        .assert_has(long.trim());
    assert_eq!(stored(site).await.1, 3);

    // Someone else: 404 everywhere, including the reply stream.
    let mut other = site.visitor();
    other
        .get(&session)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    other
        .get(&format!("{session}report/"))
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let stolen = other
        .client
        .get(format!("{}{session}say/0/", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND);
    // Without the CSRF token: 403, nothing stored.
    let page = v
        .post_raw(&session, &[("answer", "anything"), ("action", "answer")])
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(stored(site).await.1, 3);

    // "I don't know" and "Skip" to the end: the interview finishes.
    for i in 0..40 {
        let (now, _) = stored(site).await;
        if matches!(now.step(), Step::Done) {
            break;
        }
        let action = if i % 2 == 0 { "dontknow" } else { "skip" };
        answer(&mut v, &session, action, "")
            .await
            .assert_status(StatusCode::SEE_OTHER);
    }
    let (done, _) = stored(site).await;
    assert!(done.is_done());
    let score: Option<i64> = sqlx::query("SELECT score FROM interview_sessions")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("score")
        .unwrap();
    assert!(
        score.is_some_and(|s| (1..=10_000).contains(&s)),
        "{score:?}"
    );
    // The finished page has no form: the token comes from the setup page.
    let late = v
        .submit(
            "/interviewer/",
            &session,
            &[("answer", "more"), ("action", "answer")],
        )
        .await;
    late.assert_status(StatusCode::CONFLICT);
    let report = v.get(&format!("{session}report/")).await;
    report
        .assert_status(StatusCode::OK)
        .assert_has("/100")
        .assert_has("Covered:")
        .assert_has("Missed:")
        .assert_has("Model answer");
    let md = v.get(&format!("{session}report.md")).await;
    md.assert_status(StatusCode::OK);
    assert!(md.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    assert!(md.body.contains("Score"), "{}", md.body);
    // Practise the weak ones again: a new practice session on exactly those questions.
    let (finished, _) = stored(site).await;
    let tracks = keel_interview::shipped();
    let edge = tracks.iter().find(|t| t.name == "edge").unwrap();
    let weak: Vec<String> = finished
        .report(edge)
        .questions
        .iter()
        .filter(|q| q.score < 60.0)
        .map(|q| q.question_id.clone())
        .collect();
    assert!(!weak.is_empty());
    report.assert_has("weak one");
    let again = v
        .submit(
            &format!("{session}report/"),
            &format!("{session}again/"),
            &[],
        )
        .await;
    again.assert_status(StatusCode::SEE_OTHER);
    assert_ne!(again.location().trim_end_matches("?say=0"), session);
    let (practice, _) = stored(site).await;
    assert_eq!(practice.questions(), weak.as_slice());
    // The reader's history lists it.
    v.get("/interviewer/")
        .await
        .assert_has("Your interviews")
        .assert_has(&session);
}

async fn with_a_model_the_reply_streams_token_by_token(site: &Site) {
    // keel's mock model on a port of its own, 5 ms between tokens.
    let mock = keel_app::MockUpstream::build(keel_app::MockConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        latency: Duration::ZERO,
        token_interval: Duration::from_millis(5),
    })
    .await
    .unwrap();
    let api = format!("http://{}/v1", mock.local_addr());
    tokio::spawn(mock.run_until_stopped(std::future::pending()));
    let mut cfg = keel_interview::ModelConfig::new(api, "keel-mock");
    cfg.timeout = Duration::from_secs(5);
    let client = keel_interview::OpenAiClient::new(cfg).unwrap();
    let backend = site.backend;
    // Two model calls a day: the first answer's verdict proposal and its phrasing.
    let Some(site) = Site::start_configured(backend, move |c| {
        c.interviewer = keel_site::interview::Interviewer {
            client: Some(client),
            daily_turns: 2,
        };
    })
    .await
    else {
        return;
    };
    let mut v = site.visitor();
    v.get("/interviewer/")
        .await
        .assert_has("A language model phrases the questions");
    let session = start(&mut v, "live-events", "interview").await;
    let good = model_answer(&site, "live-events").await;
    answer(&mut v, &session, "answer", &good)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let (after, _) = stored(&site).await;
    assert!(after.turns()[0].verdict.as_ref().unwrap().score >= 80.0);
    let frames = read_say(&v, &format!("{session}say/2/")).await;
    let tokens: Vec<&str> = frames
        .iter()
        .filter(|f| f["t"] == "token")
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert!(tokens.len() > 3, "the reply arrives in pieces: {frames:?}");
    assert_eq!(frames.last().unwrap()["t"], "done");
    // The phrased reply is what the transcript keeps, marked as the model's (saved just
    // after `done` is sent).
    let mut lines: Vec<serde_json::Value> = Vec::new();
    for _ in 0..100 {
        let row = sqlx::query("SELECT transcript FROM interview_sessions")
            .fetch_one(site.db.pool())
            .await
            .unwrap();
        lines = serde_json::from_str(&row.try_get::<String, _>("transcript").unwrap()).unwrap();
        if lines[2]["model"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines[2]["model"], true, "{lines:?}");
    assert_eq!(lines[2]["text"].as_str().unwrap(), tokens.concat().trim());
    // The daily budget (2) is spent: the next answer is the rubric's alone.
    answer(&mut v, &session, "dontknow", "")
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let used: i64 = sqlx::query("SELECT CAST(SUM(turns) AS BIGINT) AS turns FROM interview_usage")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("turns")
        .unwrap();
    assert_eq!(used, 2);
}

async fn staff_edit_banks_with_line_errors_and_regrade(site: &Site) {
    let mut reader = site.visitor();
    let session = start(&mut reader, "edge", "practice").await;
    let good = model_answer(site, "edge").await;
    answer(&mut reader, &session, "answer", &good)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let mut staff = site.staff().await;
    staff
        .get("/admin/interviewer/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("The edge and rate limiting");
    let page = staff.get("/admin/interviewer/edge/").await;
    page.assert_status(StatusCode::OK).assert_has("Preview");
    let source = keel_interview::TRACKS
        .iter()
        .find(|(n, _)| *n == "edge")
        .unwrap()
        .1;
    let broken = format!("{source}\nthis line means nothing to the parser\n");
    let page = staff
        .submit(
            "/admin/interviewer/edge/",
            "/admin/interviewer/edge/",
            &[("source", &broken)],
        )
        .await;
    page.assert_status(StatusCode::BAD_REQUEST)
        .assert_has("Nothing was saved")
        .assert_has("line ");
    let saved: i64 = sqlx::query("SELECT COUNT(*) AS n FROM interview_banks")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(saved, 0);
    staff
        .submit(
            "/admin/interviewer/edge/",
            "/admin/interviewer/edge/",
            &[("source", source)],
        )
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let page = staff
        .submit(
            "/admin/interviewer/",
            "/admin/interviewer/edge/regrade/",
            &[],
        )
        .await;
    page.assert_status(StatusCode::SEE_OTHER);
    assert!(
        page.location().contains("Regraded+1+interview"),
        "{}",
        page.location()
    );
    // Readers cannot reach any of it.
    let page = reader.get("/admin/interviewer/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

/// A scripted model: answers a verdict call at once, and a streamed call with one token
/// and then silence; it reports when the streamed call's connection is dropped.
async fn stalling_model() -> (String, tokio::sync::oneshot::Receiver<()>) {
    use axum::response::IntoResponse;
    type Signal = std::sync::Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>>;
    struct Guard(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
    async fn chat(
        axum::extract::State(signal): axum::extract::State<Signal>,
        axum::Json(request): axum::Json<serde_json::Value>,
    ) -> axum::response::Response {
        if request["stream"] != true {
            let reply = serde_json::json!({ "choices": [{ "message": { "role": "assistant",
                "content": "{\"covered\": [], \"misconceptions\": []}" } }] });
            return axum::Json(reply).into_response();
        }
        let guard = Guard(signal.lock().unwrap().take());
        let chunk = serde_json::json!({ "choices": [{ "delta": { "content": "Well, " } }] });
        let body = futures_util::stream::unfold((0, guard), move |(n, guard)| {
            let chunk = chunk.clone();
            async move {
                if n == 0 {
                    Some((
                        Ok::<_, std::convert::Infallible>(format!("data: {chunk}\n\n")),
                        (1, guard),
                    ))
                } else {
                    // Silence, holding the connection (and the guard) until the client goes.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    None
                }
            }
        });
        let mut response = axum::body::Body::from_stream(body).into_response();
        response.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("text/event-stream"),
        );
        response
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let signal: Signal = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .with_state(signal);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, rx)
}

/// A reader who leaves while the model is still writing ends the model call at once: the
/// model's connection is closed, not left to its timeout.
async fn leaving_closes_the_model_call(site: &Site) {
    let (api, closed) = stalling_model().await;
    let mut cfg = keel_interview::ModelConfig::new(api, "stalling");
    cfg.timeout = Duration::from_secs(30);
    let client = keel_interview::OpenAiClient::new(cfg).unwrap();
    let backend = site.backend;
    let Some(site) = Site::start_configured(backend, move |c| {
        c.interviewer = keel_site::interview::Interviewer {
            client: Some(client),
            daily_turns: 10,
        };
    })
    .await
    else {
        return;
    };
    let mut v = site.visitor();
    let session = start(&mut v, "edge", "practice").await;
    answer(&mut v, &session, "dontknow", "")
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let response = v
        .client
        .get(format!("{}{session}say/2/", v.base))
        .header(COOKIE, v.cookie_header())
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    use futures_util::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("the first token arrives")
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("Well, "),
        "{first:?}"
    );
    drop(body);
    tokio::time::timeout(Duration::from_secs(2), closed)
        .await
        .expect("the model's connection is closed within 2 s of the reader leaving")
        .unwrap();
}

/// The model budget is one statement: 20 answers at once against a budget of 15 get
/// exactly 15 model calls, and none fails (the benchmark saw SQLite refuse a
/// read-then-write transaction with "database is locked").
async fn the_daily_budget_holds_under_concurrent_answers(site: &Site) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let db = site.db.clone();
        tasks.push(tokio::spawn(async move {
            keel_site::interview::store::take_turn(&db, "addr:203.0.113.9", 15).await
        }));
    }
    let mut granted = 0;
    for task in tasks {
        if task
            .await
            .unwrap()
            .expect("no database error under concurrency")
        {
            granted += 1;
        }
    }
    assert_eq!(granted, 15);
    assert!(
        !keel_site::interview::store::take_turn(&site.db, "addr:203.0.113.9", 15)
            .await
            .unwrap()
    );
    assert!(
        keel_site::interview::store::take_turn(&site.db, "addr:203.0.113.10", 15)
            .await
            .unwrap()
    );
}

on_both!(
    an_interview_runs_from_setup_to_report,
    with_a_model_the_reply_streams_token_by_token,
    staff_edit_banks_with_line_errors_and_regrade,
    leaving_closes_the_model_call,
    the_daily_budget_holds_under_concurrent_answers,
);
