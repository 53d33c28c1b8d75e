//! Quizzes over real HTTP, on SQLite and on PostgreSQL: the list and the sample quizzes,
//! an attempt from start to review (the key never in a page the reader gets), saving as
//! the reader goes and resuming, the time limit enforced on the server, refusals that
//! change nothing (409, 400, 404), and the staff's import (dry run first), publishing,
//! item analysis and its CSV.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use keel_quiz::{Kind, Question};
use reqwest::StatusCode;
use sqlx::Row;
use support::*;

/// One question of every kind, with feedback and explanations the reader must not see
/// before grading.
const GIFT: &str = r#"$CATEGORY: edge

::rate::Which directive limits the request rate per client in nginx?{
=limit_req #SECRET-FEEDBACK-RIGHT
~limit_conn #SECRET-FEEDBACK-CONN
~proxy_pass
####SECRET-GENERAL-limit_req counts requests per key.}

::burst::Which of these does `burst=20 nodelay` do?{
~%50%Lets 20 excess requests through at once
~%50%Still refuses requests beyond the burst
~%-100%Queues requests for later
}

::tf::A rejected request is charged to the zone.{F#SECRET-TF-WRONG#SECRET-TF-RIGHT}

::short::Name the header nginx sets to the client's address (two words, no dashes).{=real ip =x real ip}

::num::How many milliseconds apart are requests at 10r/s?{#100:5}

::match::Match each status to its meaning.{
=503 -> service unavailable
=429 -> too many requests
=413 -> body too large
}
"#;

/// The form fields that answer `q` (database id `id`) fully right.
fn right_answer(id: i64, q: &Question) -> Vec<(String, String)> {
    let name = format!("q{id}");
    let mut out = vec![("seen".to_owned(), id.to_string())];
    match &q.kind {
        Kind::Single { choices } => {
            let i = choices.iter().position(|c| c.weight >= 99.0).unwrap();
            out.push((name, i.to_string()));
        }
        Kind::Multiple { choices } => {
            for (i, c) in choices.iter().enumerate() {
                if c.weight > 0.0 {
                    out.push((name.clone(), i.to_string()));
                }
            }
        }
        Kind::TrueFalse { answer, .. } => out.push((name, answer.to_string())),
        Kind::Short { answers, .. } => out.push((name, answers[0].text.to_uppercase())),
        Kind::Numeric { answers } => {
            let v = match answers[0].value {
                keel_quiz::NumericValue::Tolerance { value, .. } => value,
                keel_quiz::NumericValue::Range { low, .. } => low,
            };
            out.push((name, v.to_string()));
        }
        Kind::Matching { pairs } => {
            for i in 0..pairs.len() {
                out.push((format!("q{id}_{i}"), i.to_string()));
            }
        }
        Kind::Description => {}
    }
    out
}

/// The bank of quiz `slug`: (id, question) in order.
async fn bank(site: &Site, slug: &str) -> Vec<(i64, Question)> {
    let rows = sqlx::query(
        "SELECT qq.id, qq.data FROM quiz_questions qq JOIN quizzes q ON q.id = qq.quiz_id
         WHERE q.slug = $1 ORDER BY qq.position",
    )
    .bind(slug)
    .fetch_all(site.db.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let data: String = r.try_get("data").unwrap();
            (
                r.try_get("id").unwrap(),
                serde_json::from_str(&data).unwrap(),
            )
        })
        .collect()
}

/// The database id of quiz `slug`.
async fn quiz_id(site: &Site, slug: &str) -> i64 {
    sqlx::query("SELECT id FROM quizzes WHERE slug = $1")
        .bind(slug)
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("id")
        .unwrap()
}

/// Imports GIFT text through the admin as staff; returns the page.
async fn import(staff: &mut Visitor, slug: &str, text: &str, action: &str) -> Page {
    staff
        .submit(
            "/admin/quizzes/import/",
            "/admin/quizzes/import/",
            &[
                ("format", "gift"),
                ("slug", slug),
                ("title", "Limits"),
                ("text", text),
                ("draft", "on"),
                ("action", action),
            ],
        )
        .await
}

/// Starts quiz `slug`; returns the attempt's path.
async fn start(visitor: &mut Visitor, slug: &str) -> String {
    let page = visitor
        .submit(
            &format!("/quizzes/{slug}/"),
            &format!("/quizzes/{slug}/start/"),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let to = page.location().to_owned();
    assert!(to.starts_with("/quizzes/attempts/"), "{to}");
    to
}

async fn post_fields(
    visitor: &mut Visitor,
    page_path: &str,
    path: &str,
    fields: &[(String, String)],
) -> Page {
    let token = visitor.get(page_path).await.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
    form.extend(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    visitor.post_raw(path, &form).await
}

async fn quizzes_are_listed_and_offered_after_posts(site: &Site) {
    let mut v = site.visitor();
    let page = v.get("/quizzes/").await;
    page.assert_status(StatusCode::OK)
        .assert_has("aria-current=\"page\">Quizzes</a>")
        .assert_has("The edge and limit_req")
        .assert_has("Live events and Redis pub/sub");
    // The sample post on rate limiting offers the quiz that shares its tags.
    v.get("/posts/rate-limiting-decision-for-decision/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Check yourself")
        .assert_has("/quizzes/edge-and-limit-req/");
    v.get("/quizzes/edge-and-limit-req/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Start")
        .assert_has("Pass mark");
    v.get("/quizzes/no-such-quiz/")
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

async fn staff_import_checks_first_and_stores_nothing_on_error(site: &Site) {
    let mut staff = site.staff().await;
    let before = site.count("quiz_questions").await;
    let bad = "::a::Broken {=x ~y\n\n::b::Also {#abc}\n";
    let page = import(&mut staff, "broken", bad, "import").await;
    page.assert_status(StatusCode::BAD_REQUEST)
        .assert_has("line 1")
        .assert_has("nothing was stored");
    assert_eq!(site.count("quiz_questions").await, before);
    let page = import(&mut staff, "limits", GIFT, "check").await;
    page.assert_status(StatusCode::OK)
        .assert_has("adds 6 question(s)")
        .assert_has("Nothing was stored");
    assert_eq!(site.count("quiz_questions").await, before);
    let page = import(&mut staff, "limits", GIFT, "import").await;
    page.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(site.count("quiz_questions").await, before + 6);
    // Imported as a draft (the form's default): readers do not see it, staff preview it.
    site.visitor()
        .get("/quizzes/limits/")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    staff
        .get("/quizzes/limits/")
        .await
        .assert_status(StatusCode::OK)
        .assert_has("Draft");
    // Non-staff cannot import.
    let mut reader = site.visitor();
    reader.register("reader1").await;
    let page = reader.get("/admin/quizzes/import/").await;
    page.assert_status(StatusCode::FORBIDDEN);
}

/// Imports GIFT as the quiz `limits`, published; returns the staff visitor.
async fn published_limits(site: &Site) -> Visitor {
    let mut staff = site.staff().await;
    import(&mut staff, "limits", GIFT, "import")
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let id = quiz_id(site, "limits").await;
    let page = staff
        .submit(
            "/admin/quizzes/",
            &format!("/admin/quizzes/{id}/publish/"),
            &[("published", "1")],
        )
        .await;
    page.assert_status(StatusCode::SEE_OTHER);
    staff
}

async fn an_attempt_is_graded_on_the_server_and_reviewed(site: &Site) {
    published_limits(site).await;
    let bank = bank(site, "limits").await;
    let mut guest = site.visitor();
    let attempt = start(&mut guest, "limits").await;
    let page = guest.get(&attempt).await;
    page.assert_status(StatusCode::OK)
        .assert_has("Which directive limits")
        .assert_has("Submit for grading");
    // Nothing of the key: no feedback, no explanation, no right short answer.
    for secret in [
        "SECRET-FEEDBACK",
        "SECRET-GENERAL",
        "SECRET-TF",
        "real ip",
        "\"weight\"",
        ">100<",
    ] {
        page.assert_lacks(secret);
    }
    // A reload shows the same attempt: same questions, same choice order.
    let again = guest.get(&attempt).await;
    assert_eq!(
        page.body.replace(&page.csrf(), ""),
        again.body.replace(&again.csrf(), "")
    );

    let mut fields: Vec<(String, String)> = bank
        .iter()
        .flat_map(|(id, q)| right_answer(*id, q))
        .collect();
    fields.push(("action".into(), "submit".into()));
    let done = post_fields(&mut guest, &attempt, &attempt, &fields).await;
    done.assert_status(StatusCode::SEE_OTHER);
    let result = guest.get(done.location()).await;
    result
        .assert_status(StatusCode::OK)
        .assert_has("<strong>100%</strong>")
        .assert_has("passed")
        .assert_has("SECRET-GENERAL-limit_req counts requests per key.")
        .assert_has("SECRET-TF-RIGHT");
    // The attempt page of a finished attempt leads to its review; answering again is a
    // 409 that changes nothing.
    let page = guest.get(&attempt).await;
    assert_eq!(page.location(), format!("{attempt}result/"));
    let score_before: i64 = sqlx::query("SELECT score FROM quiz_attempts")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("score")
        .unwrap();
    let late = post_fields(
        &mut guest,
        "/quizzes/limits/",
        &attempt,
        &[("action".into(), "submit".into())],
    )
    .await;
    late.assert_status(StatusCode::CONFLICT)
        .assert_has("already finished");
    let score_after: i64 = sqlx::query("SELECT score FROM quiz_attempts")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("score")
        .unwrap();
    assert_eq!(score_before, score_after);
    assert_eq!(score_after, 10_000);

    // Wrong answers: partial and negative credit, the review says which.
    let attempt = start(&mut guest, "limits").await;
    let (burst_id, _) = bank
        .iter()
        .find(|(_, q)| q.name.as_deref() == Some("burst"))
        .unwrap();
    let (rate_id, _) = bank
        .iter()
        .find(|(_, q)| q.name.as_deref() == Some("rate"))
        .unwrap();
    let fields = vec![
        ("seen".to_owned(), burst_id.to_string()),
        (format!("q{burst_id}"), "0".to_owned()),
        (format!("q{burst_id}"), "2".to_owned()),
        ("seen".to_owned(), rate_id.to_string()),
        (format!("q{rate_id}"), "1".to_owned()),
        ("action".to_owned(), "submit".to_owned()),
    ];
    let done = post_fields(&mut guest, &attempt, &attempt, &fields).await;
    let result = guest.get(done.location()).await;
    result
        .assert_has("<strong>0%</strong>")
        .assert_has("SECRET-FEEDBACK-CONN")
        .assert_has("not passed");
    // History lists both, and the mistakes to review.
    guest
        .get("/quizzes/history/")
        .await
        .assert_has("100%")
        .assert_has("Review my mistakes")
        .assert_has("Which directive limits");
}

async fn answers_are_saved_as_the_reader_goes_and_resume(site: &Site) {
    published_limits(site).await;
    let bank = bank(site, "limits").await;
    let mut reader = site.visitor();
    reader.register("resumer").await;
    let attempt = start(&mut reader, "limits").await;
    let (tf_id, tf) = bank
        .iter()
        .find(|(_, q)| q.name.as_deref() == Some("tf"))
        .unwrap();
    let mut fields = right_answer(*tf_id, tf);
    fields.push(("action".into(), "save".into()));
    let saved = post_fields(&mut reader, &attempt, &attempt, &fields).await;
    saved.assert_status(StatusCode::SEE_OTHER);
    // A double submit stores one answer.
    post_fields(&mut reader, &attempt, &attempt, &fields).await;
    assert_eq!(site.count("quiz_answers").await, 1);
    // Leaving and coming back: the quiz page offers to continue the same attempt, which
    // still has the answer.
    let page = reader.get("/quizzes/limits/").await;
    page.assert_has("Continue your attempt")
        .assert_has(&attempt);
    assert_eq!(start(&mut reader, "limits").await, attempt);
    reader
        .get(&attempt)
        .await
        .assert_has("value=\"false\" checked");
    // Another reader (or a guest) cannot see or answer it: 404, nothing changes.
    let mut other = site.visitor();
    other.register("snoop").await;
    other
        .get(&attempt)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    other
        .get(&format!("{attempt}result/"))
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let page = post_fields(
        &mut other,
        "/quizzes/",
        &attempt,
        &[("action".into(), "submit".into())],
    )
    .await;
    page.assert_status(StatusCode::NOT_FOUND);
    site.visitor()
        .get("/quizzes/attempts/abc/")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let finished: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM quiz_attempts WHERE finished_at IS NOT NULL")
            .fetch_one(site.db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    assert_eq!(finished, 0);
}

async fn bad_answers_are_refused_and_change_nothing(site: &Site) {
    published_limits(site).await;
    let bank = bank(site, "limits").await;
    let mut guest = site.visitor();
    let attempt = start(&mut guest, "limits").await;
    let (rate_id, _) = bank
        .iter()
        .find(|(_, q)| q.name.as_deref() == Some("rate"))
        .unwrap();
    let (num_id, _) = bank
        .iter()
        .find(|(_, q)| q.name.as_deref() == Some("num"))
        .unwrap();
    for (field, value) in [
        (format!("q{rate_id}"), "7".to_owned()),
        (format!("q{rate_id}"), "-1".to_owned()),
        (format!("q{rate_id}"), "one".to_owned()),
        (format!("q{num_id}"), "a hundred".to_owned()),
        (format!("q{num_id}"), "NaN".to_owned()),
    ] {
        let fields = vec![
            (field.clone(), value.clone()),
            ("action".into(), "save".into()),
        ];
        let page = post_fields(&mut guest, &attempt, &attempt, &fields).await;
        page.assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(site.count("quiz_answers").await, 0, "{field}={value}");
    }
    // Without the CSRF token: 403 before anything runs.
    let page = guest
        .post_raw(
            &attempt,
            &[(format!("q{rate_id}").as_str(), "0"), ("action", "submit")],
        )
        .await;
    page.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(site.count("quiz_answers").await, 0);
}

async fn the_time_limit_is_enforced_on_the_server(site: &Site) {
    let mut staff = published_limits(site).await;
    let id = quiz_id(site, "limits").await;
    let edit = format!("/admin/quizzes/{id}/");
    let page = staff
        .submit(
            &edit,
            &edit,
            &[
                ("title", "Limits"),
                ("slug", "limits"),
                ("tags", "edge"),
                ("time_limit", "1"),
                ("pass_mark", "50"),
                ("attempt_limit", "0"),
                ("grading", "highest"),
                ("review", "immediately"),
                ("draw_count", "0"),
                ("published", "on"),
            ],
        )
        .await;
    page.assert_status(StatusCode::SEE_OTHER);
    let bank = bank(site, "limits").await;
    let mut guest = site.visitor();
    let attempt = start(&mut guest, "limits").await;
    guest.get(&attempt).await.assert_has("Time left");
    let (tf_id, tf) = bank
        .iter()
        .find(|(_, q)| q.name.as_deref() == Some("tf"))
        .unwrap();
    let mut fields = right_answer(*tf_id, tf);
    fields.push(("action".into(), "save".into()));
    post_fields(&mut guest, &attempt, &attempt, &fields)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let token = guest.get(&attempt).await.csrf();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // Past the deadline: graded with what was saved (one of six right), this late form
    // is not taken.
    let (rate_id, _) = bank
        .iter()
        .find(|(_, q)| q.name.as_deref() == Some("rate"))
        .unwrap();
    let late = guest
        .post_raw(
            &attempt,
            &[
                ("csrf_token", token.as_str()),
                (format!("q{rate_id}").as_str(), "0"),
                ("action", "submit"),
            ],
        )
        .await;
    late.assert_status(StatusCode::CONFLICT)
        .assert_has("Time is up");
    let score: i64 = sqlx::query("SELECT score FROM quiz_attempts")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("score")
        .unwrap();
    assert_eq!(score, 1667, "one of six questions right");
    assert_eq!(site.count("quiz_answers").await, 1);
}

async fn item_analysis_counts_attempts_and_exports_csv(site: &Site) {
    let mut staff = published_limits(site).await;
    let bank = bank(site, "limits").await;
    for right in [true, true, false, false] {
        let mut guest = site.visitor();
        let attempt = start(&mut guest, "limits").await;
        let mut fields: Vec<(String, String)> = if right {
            bank.iter()
                .flat_map(|(id, q)| right_answer(*id, q))
                .collect()
        } else {
            Vec::new()
        };
        fields.push(("action".into(), "submit".into()));
        post_fields(&mut guest, &attempt, &attempt, &fields)
            .await
            .assert_status(StatusCode::SEE_OTHER);
    }
    let id = quiz_id(site, "limits").await;
    let page = staff.get(&format!("/admin/quizzes/{id}/analysis/")).await;
    page.assert_status(StatusCode::OK)
        .assert_has("4 finished attempts")
        .assert_has("mean 50.0%")
        .assert_has("50%")
        .assert_has("1.00");
    let csv = staff
        .get(&format!("/admin/quizzes/{id}/analysis.csv"))
        .await;
    csv.assert_status(StatusCode::OK);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(csv.body.lines().count(), 7, "{}", csv.body);
    assert!(
        csv.body
            .starts_with("question_id,question,attempts,facility,discrimination"),
        "{}",
        csv.body
    );
    // Export gives GIFT that imports again to the same questions.
    let gift = staff.get(&format!("/admin/quizzes/{id}/export.gift")).await;
    let again = keel_quiz::gift::parse(&gift.body).unwrap();
    let original: Vec<Question> = bank.into_iter().map(|(_, q)| q).collect();
    assert_eq!(again, original);
    // The list shows the attempts; readers cannot reach any of it.
    staff.get("/admin/quizzes/").await.assert_has("Limits");
    let mut reader = site.visitor();
    let page = reader.get(&format!("/admin/quizzes/{id}/analysis/")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

async fn attempt_limits_and_grading_methods_hold(site: &Site) {
    let mut staff = published_limits(site).await;
    let id = quiz_id(site, "limits").await;
    let edit = format!("/admin/quizzes/{id}/");
    staff
        .submit(
            &edit,
            &edit,
            &[
                ("title", "Limits"),
                ("slug", "limits"),
                ("tags", "edge"),
                ("time_limit", "0"),
                ("pass_mark", "50"),
                ("attempt_limit", "2"),
                ("grading", "last"),
                ("review", "never"),
                ("draw_count", "3"),
                ("published", "on"),
                ("shuffle", "on"),
            ],
        )
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let bank: HashMap<i64, Question> = bank(site, "limits").await.into_iter().collect();
    let mut reader = site.visitor();
    reader.register("twice").await;
    let mut drawn_sets = Vec::new();
    for right in [true, false] {
        let attempt = start(&mut reader, "limits").await;
        let ids: String = sqlx::query("SELECT question_ids FROM quiz_attempts ORDER BY id DESC")
            .fetch_one(site.db.pool())
            .await
            .unwrap()
            .try_get("question_ids")
            .unwrap();
        let ids: Vec<i64> = serde_json::from_str(&ids).unwrap();
        assert_eq!(ids.len(), 3, "draw_count 3");
        drawn_sets.push(ids.clone());
        let mut fields: Vec<(String, String)> = if right {
            ids.iter()
                .flat_map(|id| right_answer(*id, &bank[id]))
                .collect()
        } else {
            Vec::new()
        };
        fields.push(("action".into(), "submit".into()));
        let done = post_fields(&mut reader, &attempt, &attempt, &fields).await;
        let result = reader.get(done.location()).await;
        // Review policy "never": the score, but no key and no explanation.
        result
            .assert_has("right answers are shown never")
            .assert_lacks("SECRET-GENERAL");
    }
    // Questions seen in the first attempt are drawn last: the second has the other three.
    let first: std::collections::HashSet<_> = drawn_sets[0].iter().collect();
    assert!(
        drawn_sets[1].iter().all(|id| !first.contains(id)),
        "{drawn_sets:?}"
    );
    // Grade = the last attempt (0%), and no third attempt.
    let page = reader.get("/quizzes/limits/").await;
    page.assert_has("Your grade: <strong>0%</strong>")
        .assert_has("used every attempt");
    let page = reader
        .submit("/quizzes/", "/quizzes/limits/start/", &[])
        .await;
    page.assert_status(StatusCode::CONFLICT);
}

/// Reads a live room's event stream until an event containing `needle` arrives (5 s).
async fn next_event(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
) {
    use futures_util::StreamExt;
    let found = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !seen.contains(needle) {
            match body.next().await {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => return,
            }
        }
    })
    .await;
    assert!(
        found.is_ok() && seen.contains(needle),
        "no {needle} event; the stream said:\n{seen}"
    );
}

/// The PIN in a host screen's address.
fn pin_of(location: &str) -> String {
    location
        .trim_start_matches("/quizzes/live/")
        .trim_end_matches("/host/")
        .to_owned()
}

async fn a_live_room_plays_with_a_host_and_two_players(site: &Site) {
    let mut host = published_limits(site).await;
    let id = quiz_id(site, "limits").await;
    let bank: HashMap<i64, Question> = bank(site, "limits").await.into_iter().collect();
    let opened = host
        .submit(
            &format!("/admin/quizzes/{id}/"),
            &format!("/admin/quizzes/{id}/live/"),
            &[("seconds", "30")],
        )
        .await;
    opened.assert_status(StatusCode::SEE_OTHER);
    let host_url = opened.location().to_owned();
    let pin = pin_of(&host_url);
    assert_eq!(pin.len(), 6, "{host_url}");
    host.get(&host_url)
        .await
        .assert_status(StatusCode::OK)
        .assert_has(&pin);
    // Readers cannot host.
    let mut ann = site.visitor();
    ann.get(&host_url)
        .await
        .assert_status(StatusCode::SEE_OTHER);

    // Every player's page listens to the room's events, served outside the request timeout.
    let events = reqwest::Client::new()
        .get(format!("{}/quizzes/live/{pin}/events/", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert!(events.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = Box::pin(events.bytes_stream());
    let mut seen = String::new();

    let join = |nickname: &'static str, pin: String| async move {
        let mut v = Visitor::new(&site.base);
        let page = v
            .submit(
                "/quizzes/live/",
                "/quizzes/live/",
                &[("pin", &pin), ("nickname", nickname)],
            )
            .await;
        (v, page)
    };
    let (mut ann, page) = join("ann", pin.clone()).await;
    page.assert_status(StatusCode::SEE_OTHER);
    next_event(&mut body, &mut seen, "\"type\":\"players\"").await;
    let (mut bob, page) = join("bob", pin.clone()).await;
    page.assert_status(StatusCode::SEE_OTHER);
    let (_, taken) = join("ANN", pin.clone()).await;
    taken
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_has("Another player has this nickname");
    let (_, wrong) = join("carl", "000000".into()).await;
    wrong
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_has("No open room");
    ann.get(&format!("/quizzes/live/{pin}/"))
        .await
        .assert_has("Waiting for the host");

    // The host starts: the question event reaches the stream, the pages show it.
    host.submit(&host_url, &host_url, &[("action", "next"), ("index", "-1")])
        .await
        .assert_status(StatusCode::SEE_OTHER);
    next_event(&mut body, &mut seen, "\"type\":\"question\"").await;
    let room = sqlx::query("SELECT question_ids FROM live_rooms")
        .fetch_one(site.db.pool())
        .await
        .unwrap();
    let ids: Vec<i64> =
        serde_json::from_str(&room.try_get::<String, _>("question_ids").unwrap()).unwrap();
    let first = ids[0];
    let play = ann.get(&format!("/quizzes/live/{pin}/")).await;
    play.assert_status(StatusCode::OK)
        .assert_has("Question 1 of");
    for secret in ["SECRET-FEEDBACK", "SECRET-GENERAL", "SECRET-TF"] {
        play.assert_lacks(secret);
    }
    let right: Vec<(String, String)> = right_answer(first, &bank[&first])
        .into_iter()
        .filter(|(k, _)| k != "seen")
        .collect();
    let mut fields = vec![("index".to_owned(), "0".to_owned())];
    fields.extend(right.clone());
    let play_url = format!("/quizzes/live/{pin}/");
    let answer_url = format!("/quizzes/live/{pin}/answer/");
    post_fields(&mut ann, "/quizzes/live/", &answer_url, &fields)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    next_event(&mut body, &mut seen, "\"answered\":1").await;
    // Once only: a second answer is a 409 and changes nothing.
    post_fields(&mut ann, "/quizzes/live/", &answer_url, &fields)
        .await
        .assert_status(StatusCode::CONFLICT);
    // Bob answers wrong (nothing a right answer would send), or not at all.
    let mut wrong = vec![("index".to_owned(), "0".to_owned())];
    wrong.push((
        format!("q{first}"),
        match &bank[&first].kind {
            Kind::TrueFalse { answer, .. } => (!answer).to_string(),
            Kind::Numeric { .. } => "-12345".to_owned(),
            Kind::Short { .. } => "nothing like it".to_owned(),
            Kind::Single { choices } | Kind::Multiple { choices } => choices
                .iter()
                .position(|c| c.weight <= 0.0)
                .unwrap()
                .to_string(),
            _ => unreachable!("live rooms ask no other kind"),
        },
    ));
    post_fields(&mut bob, "/quizzes/live/", &answer_url, &wrong)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    // An answer for another question than the one on screen: 409.
    let mut stale = wrong.clone();
    stale[0].1 = "1".into();
    post_fields(&mut bob, "/quizzes/live/", &answer_url, &stale)
        .await
        .assert_status(StatusCode::CONFLICT);

    // The reveal: the tally and the leaderboard, ann first with Kahoot's points.
    host.submit(
        &host_url,
        &host_url,
        &[("action", "reveal"), ("index", "0")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    next_event(&mut body, &mut seen, "\"type\":\"reveal\"").await;
    let points: i64 = sqlx::query("SELECT score FROM live_players WHERE nickname = 'ann'")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("score")
        .unwrap();
    assert!((500..=1000).contains(&points), "{points}");
    let bob_points: i64 = sqlx::query("SELECT score FROM live_players WHERE nickname = 'bob'")
        .fetch_one(site.db.pool())
        .await
        .unwrap()
        .try_get("score")
        .unwrap();
    assert_eq!(bob_points, 0);
    ann.get(&play_url)
        .await
        .assert_has("Right!")
        .assert_has("Leaderboard");
    bob.get(&play_url).await.assert_has("Not this time");
    // Answers after the reveal are refused.
    post_fields(&mut bob, "/quizzes/live/", &answer_url, &wrong)
        .await
        .assert_status(StatusCode::CONFLICT);

    // The next question, answered too late (the clock moved back a minute): 409.
    host.submit(&host_url, &host_url, &[("action", "next"), ("index", "0")])
        .await
        .assert_status(StatusCode::SEE_OTHER);
    next_event(&mut body, &mut seen, "\"index\":1").await;
    sqlx::query("UPDATE live_rooms SET question_started_ms = question_started_ms - 60000")
        .execute(site.db.pool())
        .await
        .unwrap();
    let second = ids[1];
    let mut late = vec![("index".to_owned(), "1".to_owned())];
    late.extend(
        right_answer(second, &bank[&second])
            .into_iter()
            .filter(|(k, _)| k != "seen"),
    );
    post_fields(&mut bob, "/quizzes/live/", &answer_url, &late)
        .await
        .assert_status(StatusCode::CONFLICT)
        .assert_has("Time is up");

    // The podium.
    host.submit(
        &host_url,
        &host_url,
        &[("action", "finish"), ("index", "1")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    next_event(&mut body, &mut seen, "\"type\":\"podium\"").await;
    let podium = bob.get(&play_url).await;
    podium
        .assert_has("Final results")
        .assert_has("You finished #2");
    assert!(podium.body.find("ann").unwrap() < podium.body.rfind("bob").unwrap());
    // No event carried the key.
    for secret in ["SECRET", "weight"] {
        assert!(!seen.contains(secret), "{seen}");
    }
}

on_both!(
    quizzes_are_listed_and_offered_after_posts,
    staff_import_checks_first_and_stores_nothing_on_error,
    an_attempt_is_graded_on_the_server_and_reviewed,
    answers_are_saved_as_the_reader_goes_and_resume,
    bad_answers_are_refused_and_change_nothing,
    the_time_limit_is_enforced_on_the_server,
    item_analysis_counts_attempts_and_exports_csv,
    attempt_limits_and_grading_methods_hold,
    a_live_room_plays_with_a_host_and_two_players,
);
