//! Interview banks in `/admin/interviewer/`, for staff: the tracks, each bank edited as
//! its text (validation names every wrong line and nothing is saved), previewed as the
//! questions with their key points, and a regrade of every stored interview of the track
//! after an edit (the rubric engine is deterministic, so a regrade is exact).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use minijinja::{context, Value};
use serde::Deserialize;

use super::store;
use crate::admin::{require_staff, staff};
use crate::error::SiteError;
use crate::markdown;
use crate::web::{see_other, Visitor};
use crate::Inner;

#[derive(Debug, Deserialize)]
pub(crate) struct SavedQuery {
    saved: Option<String>,
}

/// `GET /admin/interviewer/`: the tracks.
pub(crate) async fn index(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<SavedQuery>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/interviewer/");
    let tracks = store::tracks(&inner.db).await?;
    let mut rows = Vec::new();
    for t in &tracks {
        let sessions = store::of_track(&inner.db, &t.name).await?.len();
        rows.push(context! {
            name => t.name.clone(), title => t.title.clone(), questions => t.questions.len(),
            sessions => sessions,
        });
    }
    let ctx = context! { tracks => rows, saved => query.saved };
    inner.page(
        &visitor,
        "admin/interview_banks.html",
        "admin",
        StatusCode::OK,
        ctx,
    )
}

fn preview(track: &keel_interview::Track) -> Vec<Value> {
    track
        .questions
        .iter()
        .map(|q| {
            context! {
                id => q.id.clone(),
                level => q.level.as_str(),
                prompt_html => markdown::render(&q.prompt),
                points => q.key_points.iter().map(|p| context! { id => p.id.clone(), weight => p.weight, text => p.text.clone() }).collect::<Vec<_>>(),
                misconceptions => q.misconceptions.iter().map(|m| m.text.clone()).collect::<Vec<_>>(),
                model_answer_html => markdown::render(&q.model_answer),
            }
        })
        .collect()
}

async fn bank_page(
    inner: &Inner,
    visitor: &Visitor,
    name: &str,
    source: &str,
    problems: &[keel_interview::ParseError],
    status: StatusCode,
) -> Result<Response, SiteError> {
    let parsed = keel_interview::parse_track(source).ok();
    let ctx = context! {
        name => name,
        source => source,
        problems => problems.iter().map(|p| context! { line => p.line, message => p.message.clone() }).collect::<Vec<_>>(),
        questions => parsed.as_ref().map(preview).unwrap_or_default(),
    };
    inner.page(visitor, "admin/interview_bank.html", "admin", status, ctx)
}

/// `GET /admin/interviewer/<track>/`: the bank's text and its preview.
pub(crate) async fn edit(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(name): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/interviewer/");
    let source = store::bank_source(&inner.db, &name)
        .await?
        .ok_or(SiteError::NotFound)?;
    bank_page(&inner, &visitor, &name, &source, &[], StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct BankForm {
    #[serde(default)]
    source: String,
}

/// `POST /admin/interviewer/<track>/`: saves the bank when every line is right.
pub(crate) async fn save(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(name): Path<String>,
    Form(form): Form<BankForm>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/interviewer/");
    store::bank_source(&inner.db, &name)
        .await?
        .ok_or(SiteError::NotFound)?;
    let problems = match keel_interview::parse_track(&form.source) {
        Ok(track) if track.name == name => Vec::new(),
        Ok(track) => vec![keel_interview::ParseError {
            line: 1,
            message: format!(
                "the bank is for track {:?}; this page edits {name:?}",
                track.name
            ),
        }],
        Err(problems) => problems,
    };
    if !problems.is_empty() {
        return bank_page(
            &inner,
            &visitor,
            &name,
            &form.source,
            &problems,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    store::save_bank(&inner.db, &name, &form.source).await?;
    Ok(see_other(&format!(
        "/admin/interviewer/?saved=Saved+the+{name}+bank."
    )))
}

/// `POST /admin/interviewer/<track>/regrade/`: re-assesses every stored interview of the
/// track with the bank as it is now.
pub(crate) async fn regrade(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(name): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/interviewer/");
    let tracks = store::tracks(&inner.db).await?;
    let track = tracks
        .iter()
        .find(|t| t.name == name)
        .ok_or(SiteError::NotFound)?;
    let sessions = store::of_track(&inner.db, &name).await?;
    let count = sessions.len();
    for mut stored in sessions {
        stored.session.regrade(track);
        let score = stored
            .session
            .is_done()
            .then(|| stored.session.report(track).score);
        store::save(
            &inner.db,
            stored.id,
            &stored.session,
            &stored.transcript,
            score,
        )
        .await?;
    }
    Ok(see_other(&format!(
        "/admin/interviewer/?saved=Regraded+{count}+interview(s)+of+{name}."
    )))
}
