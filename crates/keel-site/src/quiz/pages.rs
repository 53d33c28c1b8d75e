//! The reader's side of quizzes: the list at `/quizzes/`, a quiz's rules and Start button,
//! the attempt page (answers saved as the reader goes, a time limit enforced on the
//! server), the graded review, and the reader's history with "review my mistakes".
//!
//! Who owns an attempt: a signed-in reader's user id, or for a guest the hash of a random
//! `keel_guest` cookie (HttpOnly, SameSite=Lax), so a guest's attempts live with their
//! browser as a session would. Anyone else asking for an attempt gets the same 404 as for
//! one that does not exist. Grading happens only here: pages carry stems, choices and the
//! reader's own answers, never the key.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use keel_quiz::{Kind, Question, Response as Answer};
use minijinja::{context, Value};

use super::store::{self, Attempt, Owner, Quiz, StoredQuestion};
use crate::accounts::{random_token, token_hash};
use crate::db::now;
use crate::error::SiteError;
use crate::markdown;
use crate::pages::{dates, post_url};
use crate::web::{cookies, plausible_token, see_other, Visitor};
use crate::Inner;

/// The guest's cookie: a random token whose hash owns the guest's attempts.
const GUEST_COOKIE: &str = "keel_guest";
/// A guest keeps their attempts for 30 days after the last start.
const GUEST_COOKIE_SECONDS: i64 = 30 * 24 * 3600;

/// Who is asking, as an owner of attempts (and of interviews); `None` for a guest without
/// a cookie yet.
pub(crate) fn owner(visitor: &Visitor, headers: &HeaderMap) -> Option<Owner> {
    if let Some(user) = &visitor.user {
        return Some(Owner::User(user.id));
    }
    cookies(headers)
        .find(|c| c.name() == GUEST_COOKIE && plausible_token(c.value()))
        .map(|c| Owner::Guest(token_hash(c.value())))
}

/// The visitor as an owner, making a guest one (and the `Set-Cookie` that keeps it) when
/// there is none yet.
pub(crate) fn owner_or_new(
    visitor: &Visitor,
    headers: &HeaderMap,
) -> Result<(Owner, Option<HeaderValue>), SiteError> {
    match owner(visitor, headers) {
        Some(owner) => Ok((owner, None)),
        None => {
            let token = random_token()?;
            let owner = Owner::Guest(token_hash(&token));
            Ok((
                owner,
                Some(visitor.cookie(GUEST_COOKIE, token, GUEST_COOKIE_SECONDS)),
            ))
        }
    }
}

/// A Markdown snippet as inline HTML: one paragraph loses its `<p>`.
pub(crate) fn inline_html(text: &str) -> String {
    let html = markdown::render(text);
    let trimmed = html.trim();
    match trimmed
        .strip_prefix("<p>")
        .and_then(|rest| rest.strip_suffix("</p>"))
    {
        Some(inner) if !inner.contains("<p>") => inner.to_owned(),
        _ => html,
    }
}

fn minutes(seconds: i64) -> String {
    match seconds {
        0 => "none".to_owned(),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{} min {} s", s / 60, s % 60),
    }
}

fn grading_text(method: keel_quiz::GradingMethod) -> &'static str {
    match method {
        keel_quiz::GradingMethod::Highest => "your highest attempt",
        keel_quiz::GradingMethod::Last => "your last attempt",
        keel_quiz::GradingMethod::First => "your first attempt",
        keel_quiz::GradingMethod::Average => "the average of your attempts",
    }
}

fn review_text(policy: keel_quiz::ReviewPolicy) -> &'static str {
    match policy {
        keel_quiz::ReviewPolicy::Immediately => "right after each attempt",
        keel_quiz::ReviewPolicy::AfterClose => "once the quiz closes",
        keel_quiz::ReviewPolicy::Never => "never (you see your score only)",
    }
}

fn quiz_card(quiz: &Quiz, grade: Option<f64>) -> Value {
    context! {
        slug => quiz.slug.clone(),
        url => format!("/quizzes/{}/", quiz.slug),
        title => quiz.title.clone(),
        tags => quiz.tags.clone(),
        questions => quiz.asked(),
        time_limit => (quiz.time_limit > 0).then(|| minutes(quiz.time_limit)),
        pass_mark => quiz.pass_mark,
        grade => grade.map(|g| format!("{g:.0}")),
        passed => grade.map(|g| g + 1e-9 >= quiz.pass_mark as f64),
        published => quiz.published,
    }
}

/// The "Check yourself" box of a post: quizzes sharing its tags.
pub(crate) async fn for_post(inner: &Inner, tags: &[String]) -> Result<Vec<Value>, SiteError> {
    Ok(store::quizzes_for_tags(&inner.db, tags)
        .await?
        .iter()
        .map(|q| quiz_card(q, None))
        .collect())
}

/// `GET /quizzes/`.
pub(crate) async fn list(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> Result<Response, SiteError> {
    let quizzes = store::quizzes(&inner.db, false).await?;
    let grades = match owner(&visitor, &headers) {
        Some(owner) => store::grades(&inner.db, &owner).await?,
        None => HashMap::new(),
    };
    let cards: Vec<Value> = quizzes
        .iter()
        .filter(|q| q.questions > 0)
        .map(|q| quiz_card(q, grades.get(&q.id).copied()))
        .collect();
    let ctx = context! { quizzes => cards };
    inner.page(&visitor, "quiz/list.html", "quizzes", StatusCode::OK, ctx)
}

/// The quiz `slug` as a reader may see it: published, or a draft for staff (preview).
async fn visible_quiz(inner: &Inner, visitor: &Visitor, slug: &str) -> Result<Quiz, SiteError> {
    let staff = visitor.user.as_ref().is_some_and(|u| u.is_staff);
    store::quiz_by_slug(&inner.db, slug, staff)
        .await?
        .ok_or(SiteError::NotFound)
}

fn attempt_row(quiz: &Quiz, attempt: &Attempt) -> Value {
    let (date, date_iso) = dates(attempt.started_at);
    context! {
        id => attempt.id,
        url => format!("/quizzes/attempts/{}/", attempt.id),
        quiz => quiz.title.clone(),
        quiz_url => format!("/quizzes/{}/", quiz.slug),
        date => date,
        date_iso => date_iso,
        finished => attempt.finished_at.is_some(),
        score => attempt.score.map(|s| format!("{s:.0}")),
        passed => attempt.score.map(|s| s + 1e-9 >= quiz.pass_mark as f64),
    }
}

/// `GET /quizzes/<slug>/`: the rules, the reader's attempts and the Start button.
pub(crate) async fn detail(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, SiteError> {
    let quiz = visible_quiz(&inner, &visitor, &slug).await?;
    let attempts = match owner(&visitor, &headers) {
        Some(owner) => store::attempts_of(&inner.db, &owner, Some(quiz.id)).await?,
        None => Vec::new(),
    };
    let at = now();
    let open = attempts
        .iter()
        .find(|a| a.finished_at.is_none() && a.deadline.is_none_or(|d| at <= d));
    let used = attempts.len() as i64;
    let left = (quiz.attempt_limit > 0).then(|| (quiz.attempt_limit - used).max(0));
    let can_start = match quiz.open_at(at) {
        Err(why) => Err(why),
        Ok(()) if open.is_none() && left == Some(0) => {
            Err("You have used every attempt this quiz allows.".to_owned())
        }
        Ok(()) => Ok(()),
    };
    let scores: Vec<f64> = attempts.iter().filter_map(|a| a.score).collect();
    let grade = keel_quiz::overall(quiz.grading, &scores);
    let ctx = context! {
        quiz => context! {
            description_html => quiz.description_html.clone(),
            attempt_limit => quiz.attempt_limit,
            attempts_left => left,
            grading => grading_text(quiz.grading),
            review => review_text(quiz.review),
            opens => quiz.opens_at.map(|t| dates(t).0),
            closes => quiz.closes_at.map(|t| dates(t).0),
            ..quiz_card(&quiz, grade)
        },
        attempts => attempts.iter().rev().map(|a| attempt_row(&quiz, a)).collect::<Vec<_>>(),
        resume_url => open.map(|a| format!("/quizzes/attempts/{}/", a.id)),
        can_start => can_start.is_ok(),
        cannot_start => can_start.err(),
        signed_in => visitor.user.is_some(),
    };
    inner.page(&visitor, "quiz/detail.html", "quizzes", StatusCode::OK, ctx)
}

/// `POST /quizzes/<slug>/start/`: resumes the reader's open attempt, or starts one.
pub(crate) async fn start(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, SiteError> {
    let quiz = visible_quiz(&inner, &visitor, &slug).await?;
    let (owner, new_cookie) = owner_or_new(&visitor, &headers)?;
    let at = now();
    let attempts = store::attempts_of(&inner.db, &owner, Some(quiz.id)).await?;
    // An expired attempt is graded before anything else, with what it saved.
    for attempt in attempts.iter().filter(|a| a.finished_at.is_none()) {
        if attempt.deadline.is_some_and(|d| at > d) {
            grade_and_finish(&inner, attempt, attempt.deadline.unwrap_or(at)).await?;
        } else {
            return Ok(see_other(&format!("/quizzes/attempts/{}/", attempt.id)));
        }
    }
    let staff = visitor.user.as_ref().is_some_and(|u| u.is_staff);
    if let Err(why) = quiz.open_at(at) {
        // Staff may try a draft (the admin's preview); nobody starts a closed quiz.
        if !(staff && !quiz.published && quiz.questions > 0) {
            return Err(SiteError::Conflict(why));
        }
    }
    if quiz.attempt_limit > 0 && attempts.len() as i64 >= quiz.attempt_limit {
        return Err(SiteError::Conflict(
            "You have used every attempt this quiz allows.".into(),
        ));
    }
    let bank = store::questions(&inner.db, quiz.id).await?;
    let pool: Vec<keel_quiz::Pool> = bank
        .iter()
        .filter(|q| q.question.is_graded())
        .map(|q| keel_quiz::Pool {
            id: q.id,
            category: q.question.category.as_deref(),
        })
        .collect();
    let seed = keel_quiz::new_seed();
    let count = usize::try_from(quiz.draw_count).ok().filter(|n| *n > 0);
    let drawn = if count.is_none() && quiz.draw_category.is_none() && !quiz.shuffle {
        // The whole bank in order: description blocks stay where the author put them.
        bank.iter().map(|q| q.id).collect()
    } else {
        let seen = store::seen(&inner.db, &owner, quiz.id).await?;
        keel_quiz::draw(
            &pool,
            count,
            quiz.draw_category.as_deref(),
            &seen,
            quiz.shuffle,
            seed,
        )
    };
    if drawn.is_empty() {
        return Err(SiteError::Conflict(
            "This quiz has no questions to ask yet.".into(),
        ));
    }
    let deadline = (quiz.time_limit > 0).then(|| at + quiz.time_limit);
    let attempt = store::create_attempt(&inner.db, quiz.id, &owner, seed, &drawn, deadline).await?;
    let mut response = see_other(&format!("/quizzes/attempts/{}/", attempt.id));
    if let Some(cookie) = new_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The attempt `id` if it is the visitor's; anything else is "not found".
async fn own_attempt(
    inner: &Inner,
    visitor: &Visitor,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Attempt, Quiz), SiteError> {
    let id: i64 = id.parse().map_err(|_| SiteError::NotFound)?;
    let attempt = store::attempt(&inner.db, id)
        .await?
        .ok_or(SiteError::NotFound)?;
    if !attempt.belongs_to(owner(visitor, headers).as_ref()) {
        return Err(SiteError::NotFound);
    }
    let quiz = store::quiz_by_id(&inner.db, attempt.quiz_id, true)
        .await?
        .ok_or(SiteError::NotFound)?;
    Ok((attempt, quiz))
}

/// The attempt's questions, in its order (a question deleted since is skipped).
async fn attempt_questions(
    inner: &Inner,
    attempt: &Attempt,
) -> Result<Vec<StoredQuestion>, SiteError> {
    let mut bank: HashMap<i64, StoredQuestion> = store::questions(&inner.db, attempt.quiz_id)
        .await?
        .into_iter()
        .map(|q| (q.id, q))
        .collect();
    Ok(attempt
        .question_ids
        .iter()
        .filter_map(|id| bank.remove(id))
        .collect())
}

/// Grades `attempt` from its saved answers and records it (once); returns the score.
async fn grade_and_finish(inner: &Inner, attempt: &Attempt, at: i64) -> Result<f64, SiteError> {
    let questions = attempt_questions(inner, attempt).await?;
    let answers = store::answers(&inner.db, attempt.id).await?;
    let mut credits = Vec::new();
    let mut fractions = Vec::new();
    for q in questions.iter().filter(|q| q.question.is_graded()) {
        let response = answers.get(&q.id).map(|a| &a.response);
        let grade = keel_quiz::grade(&q.question, response);
        fractions.push(grade.fraction);
        if response.is_some() {
            credits.push((q.id, grade.fraction));
        }
    }
    let score = keel_quiz::percent(&fractions);
    store::finish(&inner.db, attempt.id, &credits, score, at).await?;
    Ok(score)
}

/// The reader's view of one question: its stem, choices in the attempt's order and what
/// they answered so far. Nothing of the key.
pub(crate) fn question_view(
    number: usize,
    q: &StoredQuestion,
    seed: u64,
    saved: Option<&Answer>,
) -> Value {
    let order = keel_quiz::choice_order(&q.question, seed, q.id);
    let picked: Vec<usize> = match saved {
        Some(Answer::Choice { id }) => vec![*id],
        Some(Answer::Choices { ids }) => ids.clone(),
        _ => Vec::new(),
    };
    let (kind, choices, lefts, rights): (&str, Vec<Value>, Vec<Value>, Vec<Value>) = match &q
        .question
        .kind
    {
        Kind::Single { choices } | Kind::Multiple { choices } => {
            let kind = if matches!(q.question.kind, Kind::Single { .. }) {
                "single"
            } else {
                "multiple"
            };
            let views = order
                    .iter()
                    .filter_map(|i| choices.get(*i).map(|c| (i, c)))
                    .map(|(i, c)| {
                        context! { id => i, html => inline_html(&c.text), checked => picked.contains(i) }
                    })
                    .collect();
            (kind, views, Vec::new(), Vec::new())
        }
        Kind::TrueFalse { .. } => ("truefalse", Vec::new(), Vec::new(), Vec::new()),
        Kind::Short { .. } => ("short", Vec::new(), Vec::new(), Vec::new()),
        Kind::Numeric { .. } => ("numeric", Vec::new(), Vec::new(), Vec::new()),
        Kind::Matching { pairs } => {
            let picks: Vec<Option<usize>> = match saved {
                Some(Answer::Matches { picks }) => picks.clone(),
                _ => Vec::new(),
            };
            let lefts = pairs
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    context! {
                        index => i,
                        html => inline_html(&p.left),
                        picked => picks.get(i).copied().flatten(),
                    }
                })
                .collect();
            // The right-hand items in the attempt's shuffled order: their position
            // in the bank says nothing about which left item they belong to.
            let rights = order
                .iter()
                .filter_map(|i| {
                    pairs
                        .get(*i)
                        .map(|p| context! { id => i, text => p.right.clone() })
                })
                .collect();
            ("matching", Vec::new(), lefts, rights)
        }
        Kind::Description => ("description", Vec::new(), Vec::new(), Vec::new()),
    };
    let value = match saved {
        Some(Answer::Text { value }) => Some(value.clone()),
        Some(Answer::Number { value }) => Some(value.to_string()),
        Some(Answer::Bool { value }) => Some(value.to_string()),
        _ => None,
    };
    context! {
        id => q.id,
        number => number,
        name => q.question.name.clone(),
        stem_html => markdown::render(&q.question.stem),
        kind => kind,
        choices => choices,
        lefts => lefts,
        rights => rights,
        value => value,
        answered => saved.is_some(),
    }
}

/// Numbers of the graded questions (descriptions have none).
fn numbered(questions: &[StoredQuestion]) -> Vec<usize> {
    let mut n = 0;
    questions
        .iter()
        .map(|q| {
            if q.question.is_graded() {
                n += 1;
                n
            } else {
                0
            }
        })
        .collect()
}

/// `GET /quizzes/attempts/<id>/`: the open attempt, or its review once finished.
pub(crate) async fn attempt(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    let (attempt, quiz) = own_attempt(&inner, &visitor, &headers, &id).await?;
    let result_url = format!("/quizzes/attempts/{}/result/", attempt.id);
    if attempt.finished_at.is_some() {
        return Ok(see_other(&result_url));
    }
    let at = now();
    if let Some(deadline) = attempt.deadline.filter(|d| at > *d) {
        grade_and_finish(&inner, &attempt, deadline).await?;
        return Ok(see_other(&result_url));
    }
    let questions = attempt_questions(&inner, &attempt).await?;
    let answers = store::answers(&inner.db, attempt.id).await?;
    let numbers = numbered(&questions);
    let views: Vec<Value> = questions
        .iter()
        .zip(numbers)
        .map(|(q, n)| question_view(n, q, attempt.seed, answers.get(&q.id).map(|a| &a.response)))
        .collect();
    let ctx = context! {
        quiz => quiz_card(&quiz, None),
        attempt => context! {
            id => attempt.id,
            url => format!("/quizzes/attempts/{}/", attempt.id),
            seconds_left => attempt.deadline.map(|d| (d - at).max(0)),
            deadline_iso => attempt.deadline.map(|d| {
                time::OffsetDateTime::from_unix_timestamp(d)
                    .ok()
                    .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            }),
        },
        questions => views,
        saved => answers.len(),
    };
    inner.page(
        &visitor,
        "quiz/attempt.html",
        "quizzes",
        StatusCode::OK,
        ctx,
    )
}

/// The answers in a submitted form, by question of the attempt. A value that cannot be
/// an answer to its question (a choice that is not there, a word for a number) is a 400
/// naming the question; nothing is saved then.
fn answers_from_form(
    questions: &[StoredQuestion],
    fields: &[(String, String)],
) -> Result<Vec<(i64, Option<Answer>)>, SiteError> {
    let mut out = Vec::new();
    for (number, q) in questions.iter().enumerate() {
        if !q.question.is_graded() {
            continue;
        }
        let name = format!("q{}", q.id);
        let values: Vec<&str> = match &q.question.kind {
            Kind::Matching { pairs } => (0..pairs.len())
                .map(|i| {
                    let field = format!("{name}_{i}");
                    fields
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == field)
                        .map_or("", |(_, v)| v.as_str())
                })
                .collect(),
            // A checkbox list sends one field per ticked box; the hidden `seen` marker
            // says the question was on the page even when nothing is ticked.
            _ => fields
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
                .collect(),
        };
        let on_page = fields
            .iter()
            .any(|(k, v)| k == "seen" && *v == q.id.to_string());
        if !on_page && values.iter().all(|v| v.is_empty()) {
            continue;
        }
        let response = keel_quiz::parse_response(&q.question, &values)
            .map_err(|e| SiteError::BadRequest(format!("Question {}: {e}", number + 1)))?;
        out.push((q.id, response));
    }
    Ok(out)
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// `POST /quizzes/attempts/<id>/`: saves the answers (`action=save`, also the page's
/// autosave) or saves and submits them (`action=submit`).
pub(crate) async fn answer(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, SiteError> {
    let (attempt, _quiz) = own_attempt(&inner, &visitor, &headers, &id).await?;
    let result_url = format!("/quizzes/attempts/{}/result/", attempt.id);
    if attempt.finished_at.is_some() {
        return Err(SiteError::Conflict(
            "This attempt is already finished; nothing was changed. Its review is on the results page."
                .into(),
        ));
    }
    let at = now();
    if let Some(deadline) = attempt.deadline.filter(|d| at > *d) {
        // Past the time limit: graded with what was saved before it; this late form is
        // not taken.
        grade_and_finish(&inner, &attempt, deadline).await?;
        return Err(SiteError::Conflict(
            "Time is up: the attempt was graded with the answers saved before the limit. This last form was not saved."
                .into(),
        ));
    }
    let questions = attempt_questions(&inner, &attempt).await?;
    let answers = answers_from_form(&questions, &fields)?;
    match store::save_answers(&inner.db, attempt.id, &answers).await {
        Ok(()) => {}
        Err(store::SaveError::Finished) => {
            return Err(SiteError::Conflict(
                "This attempt is already finished; nothing was changed.".into(),
            ))
        }
        Err(store::SaveError::Site(e)) => return Err(e),
    }
    let submit = fields.iter().any(|(k, v)| k == "action" && v == "submit");
    if submit {
        grade_and_finish(&inner, &attempt, at).await?;
        return Ok(see_other(&result_url));
    }
    if wants_json(&headers) {
        let body = serde_json::json!({ "saved": answers.len(), "at": at }).to_string();
        return Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    Ok(see_other(&format!(
        "/quizzes/attempts/{}/?saved=1",
        attempt.id
    )))
}

/// The reader's answer in words, for the review.
fn describe(q: &Question, response: &Answer) -> String {
    match (&q.kind, response) {
        (Kind::Single { choices } | Kind::Multiple { choices }, Answer::Choice { id }) => {
            choices.get(*id).map(|c| c.text.clone()).unwrap_or_default()
        }
        (Kind::Single { choices } | Kind::Multiple { choices }, Answer::Choices { ids }) => ids
            .iter()
            .filter_map(|i| choices.get(*i).map(|c| c.text.clone()))
            .collect::<Vec<_>>()
            .join("; "),
        (_, Answer::Bool { value }) => if *value { "True" } else { "False" }.to_owned(),
        (_, Answer::Text { value }) => value.clone(),
        (_, Answer::Number { value }) => value.to_string(),
        (Kind::Matching { pairs }, Answer::Matches { picks }) => pairs
            .iter()
            .zip(picks)
            .map(|(p, pick)| {
                let right = pick
                    .and_then(|i| pairs.get(i))
                    .map_or("—", |r| r.right.as_str());
                format!("{} → {right}", p.left)
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    }
}

/// `GET /quizzes/attempts/<id>/result/`.
pub(crate) async fn result(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    let (mut attempt, quiz) = own_attempt(&inner, &visitor, &headers, &id).await?;
    let at = now();
    if attempt.finished_at.is_none() {
        match attempt.deadline.filter(|d| at > *d) {
            Some(deadline) => {
                let score = grade_and_finish(&inner, &attempt, deadline).await?;
                attempt.finished_at = Some(deadline);
                attempt.score = Some(score);
            }
            None => return Ok(see_other(&format!("/quizzes/attempts/{}/", attempt.id))),
        }
    }
    let score = attempt.score.unwrap_or(0.0);
    let show = keel_quiz::may_show_answers(quiz.review, at, quiz.closes_at);
    let questions = attempt_questions(&inner, &attempt).await?;
    let answers = store::answers(&inner.db, attempt.id).await?;
    let numbers = numbered(&questions);
    let mut items = Vec::new();
    for (q, number) in questions.iter().zip(numbers) {
        if !q.question.is_graded() {
            continue;
        }
        let response = answers.get(&q.id).map(|a| &a.response);
        let grade = keel_quiz::grade(&q.question, response);
        items.push(context! {
            number => number,
            stem_html => markdown::render(&q.question.stem),
            answer => response.map(|r| describe(&q.question, r)),
            credit => format!("{:.0}", grade.fraction * 100.0),
            correct => grade.correct,
            partial => grade.fraction > 0.0 && !grade.correct,
            right_answer => show.then(|| grade.right_answer.clone()),
            feedback => if show { grade.feedback.iter().map(|f| inline_html(f)).collect::<Vec<_>>() } else { Vec::new() },
            general_html => q.question.general_feedback.as_deref().filter(|_| show).map(markdown::render),
            post_url => q.post_slug.as_deref().map(post_url),
        });
    }
    let band = quiz.band_for(score).map(|b| markdown::render(&b.text));
    let ctx = context! {
        quiz => quiz_card(&quiz, None),
        attempt => context! {
            id => attempt.id,
            score => format!("{score:.0}"),
            passed => score + 1e-9 >= quiz.pass_mark as f64,
            date => dates(attempt.finished_at.unwrap_or(at)).0,
        },
        band_html => band,
        show_answers => show,
        review => review_text(quiz.review),
        items => items,
        again_url => format!("/quizzes/{}/", quiz.slug),
    };
    inner.page(&visitor, "quiz/result.html", "quizzes", StatusCode::OK, ctx)
}

/// `GET /quizzes/history/`: the reader's attempts, and the questions they missed.
pub(crate) async fn history(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> Result<Response, SiteError> {
    let Some(owner) = owner(&visitor, &headers) else {
        let ctx = context! { attempts => Vec::<Value>::new(), mistakes => Vec::<Value>::new() };
        return inner.page(
            &visitor,
            "quiz/history.html",
            "quizzes",
            StatusCode::OK,
            ctx,
        );
    };
    let attempts = store::attempts_of(&inner.db, &owner, None).await?;
    let quizzes: HashMap<i64, Quiz> = store::quizzes(&inner.db, true)
        .await?
        .into_iter()
        .map(|q| (q.id, q))
        .collect();
    let at = now();
    let rows: Vec<Value> = attempts
        .iter()
        .rev()
        .filter_map(|a| quizzes.get(&a.quiz_id).map(|q| attempt_row(q, a)))
        .collect();
    // Review my mistakes: the latest answer to each question that did not get full
    // credit, where the quiz's review policy lets the key be shown now.
    let mut mistakes = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for attempt in attempts.iter().rev().filter(|a| a.finished_at.is_some()) {
        let Some(quiz) = quizzes.get(&attempt.quiz_id) else {
            continue;
        };
        if !keel_quiz::may_show_answers(quiz.review, at, quiz.closes_at) {
            continue;
        }
        let answers = store::answers(&inner.db, attempt.id).await?;
        for q in attempt_questions(&inner, attempt).await? {
            if !q.question.is_graded() || !listed.insert(q.id) {
                continue;
            }
            let response = answers.get(&q.id).map(|a| &a.response);
            let grade = keel_quiz::grade(&q.question, response);
            if grade.correct {
                continue;
            }
            mistakes.push(context! {
                quiz => quiz.title.clone(),
                quiz_url => format!("/quizzes/{}/", quiz.slug),
                stem_html => markdown::render(&q.question.stem),
                answer => response.map(|r| describe(&q.question, r)),
                right_answer => grade.right_answer.clone(),
                general_html => q.question.general_feedback.as_deref().map(markdown::render),
                post_url => q.post_slug.as_deref().map(post_url),
            });
        }
    }
    let ctx = context! { attempts => rows, mistakes => mistakes };
    inner.page(
        &visitor,
        "quiz/history.html",
        "quizzes",
        StatusCode::OK,
        ctx,
    )
}
