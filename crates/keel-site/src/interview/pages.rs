//! The AI Interviewer's pages: choose a track, level, length and mode; answer one question
//! at a time while the interviewer's words arrive over Server-Sent Events (token by token
//! from a model, sentence by sentence from the rubric engine); read the report and export
//! it as Markdown.
//!
//! The rubric engine decides every verdict, here, before the reply is streamed: a model,
//! when configured and within the reader's daily budget, only proposes a verdict (checked
//! by the rubric against the answer's own words) and rephrases what the interviewer says.
//! The reader's answer reaches the model as quoted data, never as instructions. Without
//! a model, nothing leaves the machine.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use futures_util::StreamExt;
use keel_interview::{Level, Mode, Session, Setup, Track};
use minijinja::{context, Value};
use serde::Deserialize;

use super::store::{self, Entry, Stored};
use crate::error::SiteError;
use crate::markdown;
use crate::pages::dates;
use crate::quiz::pages::{owner, owner_or_new};
use crate::quiz::store::Owner;
use crate::web::{see_other, Visitor};
use crate::Inner;

/// The longest answer taken; a longer one is refused with the text kept in the form.
pub const MAX_ANSWER_CHARS: usize = 4000;
/// The pause between two rubric sentences on the wire: enough to read as speech.
const SENTENCE_PAUSE: Duration = Duration::from_millis(120);

fn track_of<'a>(tracks: &'a [Track], name: &str) -> Result<&'a Track, SiteError> {
    tracks
        .iter()
        .find(|t| t.name == name)
        .ok_or(SiteError::NotFound)
}

/// `GET /interviewer/`: the setup form and the reader's earlier interviews.
pub(crate) async fn index(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> Result<Response, SiteError> {
    let tracks = store::tracks(&inner.db).await?;
    let history = match owner(&visitor, &headers) {
        Some(owner) => store::of(&inner.db, &owner).await?,
        None => Vec::new(),
    };
    let ctx = context! {
        tracks => tracks.iter().map(|t| context! {
            name => t.name.clone(), title => t.title.clone(), description => t.description.clone(),
            questions => t.questions.len(),
        }).collect::<Vec<_>>(),
        history => history.iter().map(|s| history_row(&tracks, s)).collect::<Vec<_>>(),
        model => inner.interviewer.client.is_some(),
        error => None::<String>,
    };
    inner.page(
        &visitor,
        "interview/index.html",
        "interviewer",
        StatusCode::OK,
        ctx,
    )
}

fn history_row(tracks: &[Track], s: &Stored) -> Value {
    let (date, date_iso) = dates(s.created_at);
    context! {
        url => format!("/interviewer/sessions/{}/", s.id),
        track => tracks.iter().find(|t| t.name == s.track).map_or_else(|| s.track.clone(), |t| t.title.clone()),
        date => date,
        date_iso => date_iso,
        finished => s.finished_at.is_some(),
        score => s.score.map(|v| format!("{v:.0}")),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SetupForm {
    #[serde(default)]
    track: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    length: String,
    #[serde(default)]
    mode: String,
}

/// `POST /interviewer/`: starts an interview.
pub(crate) async fn start(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Result<Response, SiteError> {
    let tracks = store::tracks(&inner.db).await?;
    let track = tracks
        .iter()
        .find(|t| t.name == form.track)
        .ok_or_else(|| SiteError::BadRequest("Choose one of the tracks.".into()))?;
    let level: Level = form
        .level
        .parse()
        .map_err(|_| SiteError::BadRequest("Choose junior, mid or senior.".into()))?;
    let length: usize = form
        .length
        .parse()
        .ok()
        .filter(|n| [5, 8, 12].contains(n))
        .ok_or_else(|| SiteError::BadRequest("Choose 5, 8 or 12 questions.".into()))?;
    let mode: Mode = form
        .mode
        .parse()
        .map_err(|_| SiteError::BadRequest("Choose practice or interview.".into()))?;
    let setup = Setup {
        track: track.name.clone(),
        level,
        length,
        mode,
        seed: keel_quiz::new_seed(),
    };
    let session = Session::new(track, setup).map_err(|e| SiteError::BadRequest(e.to_string()))?;
    let (owner, cookie) = owner_or_new(&visitor, &headers)?;
    let first = vec![Entry::interviewer(vec![session.prompt(track)], false)];
    let id = store::create(&inner.db, &owner, &session, &first).await?;
    let mut response = see_other(&format!("/interviewer/sessions/{id}/?say=0"));
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The interview `id` if it is the visitor's; anything else is "not found".
async fn own(inner: &Inner, who: Option<&Owner>, id: &str) -> Result<Stored, SiteError> {
    let id: i64 = id.parse().map_err(|_| SiteError::NotFound)?;
    let stored = store::get(&inner.db, id)
        .await?
        .ok_or(SiteError::NotFound)?;
    if who != Some(&stored.owner) {
        return Err(SiteError::NotFound);
    }
    Ok(stored)
}

fn transcript_view(transcript: &[Entry]) -> Vec<Value> {
    transcript
        .iter()
        .enumerate()
        .map(|(i, e)| {
            context! {
                index => i,
                interviewer => e.who == "interviewer",
                html => if e.who == "interviewer" { markdown::render(&e.text) } else { String::new() },
                text => e.text.clone(),
                model => e.model,
            }
        })
        .collect()
}

async fn session_page(
    inner: &Inner,
    visitor: &Visitor,
    stored: &Stored,
    say: Option<usize>,
    draft: &str,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, SiteError> {
    let tracks = store::tracks(&inner.db).await?;
    let track = track_of(&tracks, &stored.track)?;
    let setup = stored.session.setup();
    let ctx = context! {
        id => stored.id,
        url => format!("/interviewer/sessions/{}/", stored.id),
        track => track.title.clone(),
        level => setup.level.as_str(),
        mode => setup.mode.as_str(),
        asked => stored.session.turns().iter().map(|t| t.question_id.clone()).collect::<std::collections::BTreeSet<_>>().len(),
        total => stored.session.questions().len(),
        transcript => transcript_view(&stored.transcript),
        say => say.filter(|n| stored.transcript.get(*n).is_some_and(|e| e.who == "interviewer")),
        done => stored.session.is_done(),
        draft => draft,
        error => error,
        max_chars => MAX_ANSWER_CHARS,
        model => inner.interviewer.client.is_some(),
    };
    inner.page(
        visitor,
        "interview/session.html",
        "interviewer",
        status,
        ctx,
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct SayQuery {
    say: Option<usize>,
}

/// `GET /interviewer/sessions/<id>/`.
pub(crate) async fn session(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<SayQuery>,
) -> Result<Response, SiteError> {
    let stored = own(&inner, owner(&visitor, &headers).as_ref(), &id).await?;
    session_page(
        &inner,
        &visitor,
        &stored,
        query.say,
        "",
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct AnswerForm {
    #[serde(default)]
    answer: String,
    #[serde(default)]
    action: String,
}

/// `POST /interviewer/sessions/<id>/`: an answer (`action=answer`), "I don't know"
/// (`dontknow`) or "Skip" (`skip`).
pub(crate) async fn answer(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Result<Response, SiteError> {
    let mut stored = own(&inner, owner(&visitor, &headers).as_ref(), &id).await?;
    if stored.session.is_done() {
        return Err(SiteError::Conflict(
            "This interview is over; its report is ready.".into(),
        ));
    }
    let text = form.answer.trim().to_owned();
    if form.action == "answer" && text.chars().count() > MAX_ANSWER_CHARS {
        let error = format!(
            "Your answer has {} characters; the interviewer reads at most {MAX_ANSWER_CHARS}. Shorten it and send it again.",
            text.chars().count()
        );
        return session_page(
            &inner,
            &visitor,
            &stored,
            None,
            &form.answer,
            Some(error),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    if form.action == "answer" && text.is_empty() {
        let error =
            "Write an answer, or choose \u{201c}I don't know\u{201d} or \u{201c}Skip\u{201d}."
                .to_owned();
        return session_page(
            &inner,
            &visitor,
            &stored,
            None,
            "",
            Some(error),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let tracks = store::tracks(&inner.db).await?;
    let track = track_of(&tracks, &stored.track)?.clone();
    let reply = match form.action.as_str() {
        "skip" => {
            stored.transcript.push(Entry::reader("(skipped)"));
            stored.session.skip(&track)
        }
        "answer" | "dontknow" => {
            let text = if form.action == "dontknow" {
                "I don't know".to_owned()
            } else {
                text
            };
            let proposal = propose(&inner, &visitor, &stored, &track, &text).await;
            stored.transcript.push(Entry::reader(&text));
            stored.session.answer(&track, &text, proposal.as_ref())
        }
        _ => {
            return Err(SiteError::BadRequest(
                "Answer, say you don't know, or skip.".into(),
            ))
        }
    };
    let mut says = reply.says.clone();
    if reply.done {
        says.push("That's the end of the interview. Your report is ready.".into());
    }
    let line = stored.transcript.len();
    stored
        .transcript
        .push(Entry::interviewer(says, reply.model_used));
    let score = stored
        .session
        .is_done()
        .then(|| stored.session.report(&track).score);
    store::save(
        &inner.db,
        stored.id,
        &stored.session,
        &stored.transcript,
        score,
    )
    .await?;
    Ok(see_other(&format!(
        "/interviewer/sessions/{}/?say={line}",
        stored.id
    )))
}

/// A model's proposed verdict for this answer, when a model is configured and the
/// reader's daily budget allows; `None` otherwise or when the model fails (the rubric
/// then decides alone, and the page says the model was not used).
async fn propose(
    inner: &Inner,
    visitor: &Visitor,
    stored: &Stored,
    track: &Track,
    answer: &str,
) -> Option<keel_interview::Proposal> {
    let client = inner.interviewer.client.as_ref()?;
    let question = track.question(stored.session.step().question_id()?)?;
    match store::take_turn(
        &inner.db,
        &budget_subject(visitor),
        inner.interviewer.daily_turns,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return None,
        Err(error) => {
            tracing::warn!(%error, "interviewer budget not read; the rubric answers alone");
            return None;
        }
    }
    let messages = keel_interview::prompt_messages(track, question, answer);
    match client.complete(&messages).await {
        Ok(text) => keel_interview::parse_proposal(question, &text),
        Err(error) => {
            tracing::warn!(%error, "the interviewer's model failed; the rubric answers alone");
            None
        }
    }
}

/// Whose daily model budget an answer or a reply spends: a signed-in reader's, else the
/// client address's.
fn budget_subject(visitor: &Visitor) -> String {
    match &visitor.user {
        Some(user) => format!("user:{}", user.id),
        None => format!("addr:{}", visitor.address),
    }
}

fn frame(value: serde_json::Value) -> String {
    format!("data: {value}\n\n")
}

/// `GET /interviewer/sessions/<id>/say/<n>/`: transcript line `n`, the interviewer's
/// words, as Server-Sent Events — a model's tokens as it writes them (then saved as the
/// line), or the rubric's sentences one by one. Served outside the request timeout. A
/// reader who leaves (or presses Stop) closes the stream, and with it the model call.
pub(crate) async fn say(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path((id, n)): Path<(String, usize)>,
) -> Result<Response, SiteError> {
    let stored = own(&inner, owner(&visitor, &headers).as_ref(), &id).await?;
    let entry = stored
        .transcript
        .get(n)
        .filter(|e| e.who == "interviewer")
        .cloned()
        .ok_or(SiteError::NotFound)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    // A phrasing call counts against the same daily budget as a verdict proposal.
    let mut phrase = inner
        .interviewer
        .client
        .clone()
        .filter(|_| !entry.model_phrased());
    if phrase.is_some() {
        match store::take_turn(
            &inner.db,
            &budget_subject(&visitor),
            inner.interviewer.daily_turns,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => phrase = None,
            Err(error) => {
                tracing::warn!(%error, "interviewer budget not read; the rubric's words are sent");
                phrase = None;
            }
        }
    }
    let task_inner = inner.clone();
    tokio::spawn(async move {
        let Some(phrased) = speak(&tx, &entry, phrase).await else {
            return;
        };
        // The reader hears `done` first; the line is saved after.
        let _ = tx.send(frame(serde_json::json!({ "t": "done" }))).await;
        drop(tx);
        if let Some(line) = phrased {
            if let Err(error) = store::set_line(&task_inner.db, stored.id, n, &line).await {
                tracing::warn!(%error, "the model's phrasing was not saved");
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|text| (Ok::<_, std::convert::Infallible>(text), rx))
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// Sends the line's words: `None` once the reader has gone, else the line to save when a
/// model phrased it.
async fn speak(
    tx: &tokio::sync::mpsc::Sender<String>,
    entry: &Entry,
    phrase: Option<keel_interview::OpenAiClient>,
) -> Option<Option<Entry>> {
    if let Some(client) = phrase {
        let mut tokens = Box::pin(client.stream(keel_interview::phrase_messages(&entry.says)));
        let mut text = String::new();
        let mut failed = None;
        loop {
            // The reader leaving ends the model call at once, not at its next token.
            let next = tokio::select! {
                _ = tx.closed() => return None,
                next = tokens.next() => next,
            };
            match next {
                Some(Ok(token)) => {
                    text.push_str(&token);
                    if tx
                        .send(frame(serde_json::json!({ "t": "token", "text": token })))
                        .await
                        .is_err()
                    {
                        return None;
                    }
                }
                Some(Err(error)) => {
                    failed = Some(error.to_string());
                    break;
                }
                None => break,
            }
        }
        drop(tokens);
        match failed {
            None if !text.trim().is_empty() => {
                return Some(Some(Entry {
                    who: entry.who.clone(),
                    text: text.trim().to_owned(),
                    says: entry.says.clone(),
                    model: true,
                }));
            }
            failed => {
                tracing::warn!(
                    error = failed.as_deref().unwrap_or("empty reply"),
                    "the interviewer's model failed mid-reply; the rubric's words follow"
                );
                let note = serde_json::json!({ "t": "fallback", "text": "The model did not answer; here is the interviewer's own reply." });
                if tx.send(frame(note)).await.is_err() {
                    return None;
                }
            }
        }
    }
    for (i, sentence) in entry.says.iter().enumerate() {
        if i > 0 {
            tokio::select! {
                _ = tx.closed() => return None,
                _ = tokio::time::sleep(SENTENCE_PAUSE) => {}
            }
        }
        let text = if i + 1 < entry.says.len() {
            format!("{sentence} ")
        } else {
            sentence.clone()
        };
        if tx
            .send(frame(serde_json::json!({ "t": "sentence", "text": text })))
            .await
            .is_err()
        {
            return None;
        }
    }
    Some(None)
}

impl Entry {
    /// A model already phrased this line (its text is no longer the rubric's sentences).
    fn model_phrased(&self) -> bool {
        self.model && self.text != self.says.join(" ")
    }
}

/// `GET /interviewer/sessions/<id>/report/`.
pub(crate) async fn report(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    let stored = own(&inner, owner(&visitor, &headers).as_ref(), &id).await?;
    let tracks = store::tracks(&inner.db).await?;
    let track = track_of(&tracks, &stored.track)?;
    let report = stored.session.report(track);
    let point_text = |qid: &str, pid: &str| {
        track
            .question(qid)
            .and_then(|q| q.point(pid))
            .map_or_else(|| pid.to_owned(), |p| p.text.clone())
    };
    let misconception_text = |qid: &str, mid: &str| {
        track
            .question(qid)
            .and_then(|q| q.misconception(mid))
            .map_or_else(
                || mid.to_owned(),
                |m| format!("{} — {}", m.text, m.correction),
            )
    };
    let items: Vec<Value> = report
        .questions
        .iter()
        .map(|item| {
            context! {
                question_html => markdown::render(&item.question),
                answer => item.answer.clone(),
                covered => item.covered.iter().map(|p| point_text(&item.question_id, p)).collect::<Vec<_>>(),
                missed => item.missed.iter().map(|p| point_text(&item.question_id, p)).collect::<Vec<_>>(),
                misconceptions => item.misconceptions.iter().map(|m| misconception_text(&item.question_id, m)).collect::<Vec<_>>(),
                score => format!("{:.0}", item.score),
                model_answer_html => markdown::render(&item.model_answer),
                links => item.links.clone(),
                weak => item.score < WEAK,
            }
        })
        .collect();
    let ctx = context! {
        id => stored.id,
        track => track.title.clone(),
        track_name => track.name.clone(),
        level => stored.session.setup().level.as_str(),
        score => format!("{:.0}", report.score),
        finished => report.finished,
        answered => report.questions.len(),
        total => report.total,
        items => items,
        model_used => stored.transcript.iter().any(|e| e.model),
        weak => report.questions.iter().filter(|q| q.score < WEAK).count(),
    };
    inner.page(
        &visitor,
        "interview/report.html",
        "interviewer",
        StatusCode::OK,
        ctx,
    )
}

/// The report's weak questions: scored under this, they are practised again.
const WEAK: f64 = 60.0;

/// `POST /interviewer/sessions/<id>/again/`: a practice session on the questions this
/// report scored under 60 (all of its questions when none was).
pub(crate) async fn again(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    let stored = own(&inner, owner(&visitor, &headers).as_ref(), &id).await?;
    let tracks = store::tracks(&inner.db).await?;
    let track = track_of(&tracks, &stored.track)?;
    let report = stored.session.report(track);
    let mut ids: Vec<String> = report
        .questions
        .iter()
        .filter(|q| q.score < WEAK)
        .map(|q| q.question_id.clone())
        .collect();
    if ids.is_empty() {
        ids = report
            .questions
            .iter()
            .map(|q| q.question_id.clone())
            .collect();
    }
    let setup = Setup {
        mode: Mode::Practice,
        seed: keel_quiz::new_seed(),
        ..stored.session.setup().clone()
    };
    let session = Session::with_questions(track, setup, &ids)
        .map_err(|e| SiteError::Conflict(e.to_string()))?;
    let first = vec![Entry::interviewer(vec![session.prompt(track)], false)];
    let new_id = store::create(&inner.db, &stored.owner, &session, &first).await?;
    Ok(see_other(&format!("/interviewer/sessions/{new_id}/?say=0")))
}

/// `GET /interviewer/sessions/<id>/report.md`: the report as Markdown.
pub(crate) async fn report_markdown(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    let stored = own(&inner, owner(&visitor, &headers).as_ref(), &id).await?;
    let tracks = store::tracks(&inner.db).await?;
    let track = track_of(&tracks, &stored.track)?;
    let report = stored.session.report(track);
    let disposition = format!("attachment; filename=\"interview-{}.md\"", stored.id);
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/markdown; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        report.markdown,
    )
        .into_response())
}
