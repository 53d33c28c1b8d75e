//! Quizzes in `/admin/`, for staff only: the list, import of GIFT or Aiken text (a dry
//! run checks and stores nothing), a quiz's settings and its questions (each edited as
//! GIFT), publish and unpublish, delete, GIFT export, and item analysis with its CSV.
//!
//! Also the operations `keel quiz` runs on a database without a server
//! ([`import_text`], [`export_gift`], [`list`]), so the command line and the admin import
//! through one path.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use keel_quiz::{GradingMethod, ParseError, Question, ReviewPolicy};
use minijinja::{context, Value};
use serde::Deserialize;

use super::store::{self, Band, QuizInput};
use crate::admin::{require_staff, staff};
use crate::db::Db;
use crate::error::SiteError;
use crate::forms::{add, errors, has_errors};
use crate::markdown;
use crate::posts;
use crate::web::{see_other, Visitor};
use crate::Inner;

/// The text formats `keel quiz import` and the admin read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Moodle's GIFT.
    Gift,
    /// Aiken (single choice only).
    Aiken,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gift" => Ok(Format::Gift),
            "aiken" => Ok(Format::Aiken),
            other => Err(format!("unknown format {other:?}: use gift or aiken")),
        }
    }
}

/// Parses `text` in `format`: every question, or every error with its line.
pub fn parse(format: Format, text: &str) -> Result<Vec<Question>, Vec<ParseError>> {
    match format {
        Format::Gift => keel_quiz::gift::parse(text),
        Format::Aiken => keel_quiz::aiken::parse(text),
    }
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The text has errors; each names its line.
    #[error("{} error(s) in the file", .0.len())]
    Parse(Vec<ParseError>),
    /// The slug is not a valid URL name.
    #[error("{0:?} is not a valid quiz slug: use lowercase letters, digits and hyphens (not live, history or attempts)")]
    Slug(String),
    /// The file holds no question.
    #[error("the file holds no question")]
    Empty,
    /// The database failed.
    #[error(transparent)]
    Site(#[from] SiteError),
}

/// Imports `text` into the quiz `slug` (created, published unless `draft`, when new);
/// with `dry_run` checks everything and stores nothing. Returns the graded questions
/// imported (or that would be).
pub async fn import_into(
    db: &Db,
    format: Format,
    text: &str,
    slug: &str,
    title: Option<&str>,
    draft: bool,
    dry_run: bool,
) -> Result<usize, ImportError> {
    if !markdown::valid_slug(slug) || super::RESERVED_SLUGS.contains(&slug) {
        return Err(ImportError::Slug(slug.to_owned()));
    }
    let questions = parse(format, text).map_err(ImportError::Parse)?;
    if questions.is_empty() {
        return Err(ImportError::Empty);
    }
    let graded = questions.iter().filter(|q| q.is_graded()).count();
    if dry_run {
        return Ok(graded);
    }
    let title = title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map_or_else(|| title_from_slug(slug), str::to_owned);
    let mut input = QuizInput::new(slug, &title, draft);
    // A new quiz takes the first category of its file as its topic tag.
    if let Some(category) = questions.iter().find_map(|q| q.category.as_deref()) {
        let top = category.split('/').next().unwrap_or(category);
        input.tags = posts::normalize_tags(top).unwrap_or_default();
    }
    let imported = store::import(db, &input, &questions).await?;
    Ok(imported.questions)
}

/// `edge-and-limit-req` → "Edge and limit req".
fn title_from_slug(slug: &str) -> String {
    let words = slug.replace('-', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `keel quiz import`: opens the database (migrating it) and imports one file.
pub async fn import_text(
    database_url: &str,
    format: Format,
    text: &str,
    slug: &str,
    draft: bool,
    dry_run: bool,
) -> Result<usize, ImportError> {
    let db = Db::connect(database_url, 1, std::time::Duration::from_secs(10)).await?;
    db.migrate().await?;
    let result = import_into(&db, format, text, slug, None, draft, dry_run).await;
    db.close().await;
    result
}

/// `keel quiz export`: the quiz `slug` as GIFT; `None` when there is no such quiz.
pub async fn export_gift(database_url: &str, slug: &str) -> Result<Option<String>, SiteError> {
    let db = Db::connect(database_url, 1, std::time::Duration::from_secs(10)).await?;
    db.migrate().await?;
    let out = match store::quiz_by_slug(&db, slug, true).await? {
        Some(quiz) => {
            let questions: Vec<Question> = store::questions(&db, quiz.id)
                .await?
                .into_iter()
                .map(|q| q.question)
                .collect();
            Some(keel_quiz::gift::export(&questions))
        }
        None => None,
    };
    db.close().await;
    Ok(out)
}

/// `keel quiz list`: slug, title, graded questions, finished attempts.
pub async fn list(database_url: &str) -> Result<Vec<(String, String, i64, i64)>, SiteError> {
    let db = Db::connect(database_url, 1, std::time::Duration::from_secs(10)).await?;
    db.migrate().await?;
    let out = store::summary(&db).await;
    db.close().await;
    out
}

#[derive(Debug, Deserialize)]
pub(crate) struct SavedQuery {
    saved: Option<String>,
}

/// `GET /admin/quizzes/`.
pub(crate) async fn index(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<SavedQuery>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let summary: BTreeMap<String, i64> = store::summary(&inner.db)
        .await?
        .into_iter()
        .map(|(slug, _, _, attempts)| (slug, attempts))
        .collect();
    let rows: Vec<Value> = store::quizzes(&inner.db, true)
        .await?
        .iter()
        .map(|q| {
            context! {
                id => q.id,
                title => q.title.clone(),
                url => format!("/quizzes/{}/", q.slug),
                published => q.published,
                questions => q.questions,
                attempts => summary.get(&q.slug).copied().unwrap_or(0),
                tags => q.tags.clone(),
            }
        })
        .collect();
    let ctx = context! { quizzes => rows, saved => query.saved };
    inner.page(&visitor, "admin/quizzes.html", "admin", StatusCode::OK, ctx)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImportForm {
    #[serde(default)]
    format: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
    draft: Option<String>,
    action: Option<String>,
}

/// Parse errors as the templates list them: line and message.
fn problem_list(problems: &[ParseError]) -> Vec<Value> {
    problems
        .iter()
        .map(|p| context! { line => p.line, message => p.message.clone() })
        .collect()
}

fn import_page(
    inner: &Inner,
    visitor: &Visitor,
    form: &ImportForm,
    status: StatusCode,
    problems: &[ParseError],
    message: Option<String>,
    errors: &BTreeMap<String, Vec<String>>,
) -> Result<Response, SiteError> {
    let ctx = context! {
        form => context! {
            format => if form.format.is_empty() { "gift".to_owned() } else { form.format.clone() },
            slug => form.slug.clone(),
            title => form.title.clone(),
            text => form.text.clone(),
            draft => form.draft.is_some(),
        },
        problems => problem_list(problems),
        message => message,
        errors => errors,
    };
    inner.page(visitor, "admin/quiz_import.html", "admin", status, ctx)
}

/// `GET /admin/quizzes/import/`.
pub(crate) async fn import_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/import/");
    let form = ImportForm {
        draft: Some("on".into()),
        ..ImportForm::default()
    };
    let errs = errors(&["format", "slug", "text", "form"]);
    import_page(&inner, &visitor, &form, StatusCode::OK, &[], None, &errs)
}

/// `POST /admin/quizzes/import/`: `action=check` is the dry run, `action=import` stores.
pub(crate) async fn import(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Form(form): Form<ImportForm>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/import/");
    let mut errs = errors(&["format", "slug", "text", "form"]);
    let format: Option<Format> = match form.format.parse() {
        Ok(f) => Some(f),
        Err(e) => {
            add(&mut errs, "format", e);
            None
        }
    };
    let slug = form.slug.trim().to_owned();
    if slug.is_empty() {
        add(
            &mut errs,
            "slug",
            "Name the quiz to import into (a new slug creates it).",
        );
    }
    if form.text.trim().is_empty() {
        add(&mut errs, "text", "Paste the questions (or choose a file).");
    }
    let (Some(format), false) = (format, has_errors(&errs)) else {
        return import_page(
            &inner,
            &visitor,
            &form,
            StatusCode::BAD_REQUEST,
            &[],
            None,
            &errs,
        );
    };
    let dry_run = form.action.as_deref() != Some("import");
    let title = Some(form.title.as_str());
    match import_into(
        &inner.db,
        format,
        &form.text,
        &slug,
        title,
        form.draft.is_some(),
        dry_run,
    )
    .await
    {
        Ok(n) if dry_run => {
            let message = format!("The file is valid: importing it adds {n} question(s) to {slug}. Nothing was stored.");
            import_page(
                &inner,
                &visitor,
                &form,
                StatusCode::OK,
                &[],
                Some(message),
                &errs,
            )
        }
        Ok(n) => {
            inner.cache.invalidate();
            let saved = format!("Imported {n} question(s) into {slug}.");
            let to: String = url::form_urlencoded::byte_serialize(saved.as_bytes()).collect();
            Ok(see_other(&format!("/admin/quizzes/?saved={to}")))
        }
        Err(ImportError::Parse(problems)) => {
            add(
                &mut errs,
                "form",
                format!("{} error(s): nothing was stored.", problems.len()),
            );
            import_page(
                &inner,
                &visitor,
                &form,
                StatusCode::BAD_REQUEST,
                &problems,
                None,
                &errs,
            )
        }
        Err(ImportError::Site(e)) => Err(e),
        Err(e) => {
            add(&mut errs, "form", e.to_string());
            import_page(
                &inner,
                &visitor,
                &form,
                StatusCode::BAD_REQUEST,
                &[],
                None,
                &errs,
            )
        }
    }
}

async fn staff_quiz(inner: &Inner, id: &str) -> Result<store::Quiz, SiteError> {
    let id: i64 = id.parse().map_err(|_| SiteError::NotFound)?;
    store::quiz_by_id(&inner.db, id, true)
        .await?
        .ok_or(SiteError::NotFound)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct QuizForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    time_limit: String,
    #[serde(default)]
    pass_mark: String,
    #[serde(default)]
    attempt_limit: String,
    #[serde(default)]
    grading: String,
    #[serde(default)]
    review: String,
    #[serde(default)]
    draw_count: String,
    #[serde(default)]
    draw_category: String,
    shuffle: Option<String>,
    published: Option<String>,
    #[serde(default)]
    opens: String,
    #[serde(default)]
    closes: String,
    #[serde(default)]
    bands: String,
}

const QUIZ_FIELDS: [&str; 13] = [
    "title",
    "slug",
    "tags",
    "time_limit",
    "pass_mark",
    "attempt_limit",
    "grading",
    "review",
    "draw_count",
    "opens",
    "closes",
    "bands",
    "form",
];

fn date_text(unix: Option<i64>) -> String {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// "2026-12-31 18:00" (UTC) or "2026-12-31" → Unix seconds.
fn parse_date(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let full = if text.len() == 10 {
        format!("{text} 00:00")
    } else {
        text.replace('T', " ")
    };
    time::PrimitiveDateTime::parse(
        &full,
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]"),
    )
    .map(|t| Some(t.assume_utc().unix_timestamp()))
    .map_err(|_| {
        format!("{text:?} is not a date: write it like 2026-12-31 or 2026-12-31 18:00 (UTC).")
    })
}

/// "80: Well done\n50: Nearly" → bands, highest first.
fn parse_bands(text: &str) -> Result<Vec<Band>, String> {
    let mut bands = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((min, message)) = line.split_once(':') else {
            return Err(format!(
                "Line {}: write a band as \"80: what the reader reads\".",
                i + 1
            ));
        };
        let min: f64 = min
            .trim()
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|m: &f64| (0.0..=100.0).contains(m))
            .ok_or_else(|| format!("Line {}: the score must be a percent from 0 to 100.", i + 1))?;
        bands.push(Band {
            min,
            text: message.trim().to_owned(),
        });
    }
    bands.sort_by(|a, b| b.min.total_cmp(&a.min));
    Ok(bands)
}

fn bands_text(bands: &[Band]) -> String {
    bands
        .iter()
        .map(|b| format!("{}: {}\n", b.min, b.text))
        .collect()
}

fn number(field: &str, text: &str, max: i64, errs: &mut BTreeMap<String, Vec<String>>) -> i64 {
    match text.trim().parse::<i64>() {
        Ok(n) if (0..=max).contains(&n) => n,
        _ if text.trim().is_empty() => 0,
        _ => {
            add(
                errs,
                field,
                format!("Enter a whole number from 0 to {max}."),
            );
            0
        }
    }
}

async fn quiz_page(
    inner: &Inner,
    visitor: &Visitor,
    quiz: &store::Quiz,
    form: Value,
    errs: &BTreeMap<String, Vec<String>>,
    status: StatusCode,
    saved: bool,
) -> Result<Response, SiteError> {
    let questions: Vec<Value> = store::questions(&inner.db, quiz.id)
        .await?
        .iter()
        .map(|q| {
            context! {
                id => q.id,
                name => q.question.name.clone(),
                kind => kind_name(&q.question),
                stem => markdown::excerpt(&q.question.stem, 120),
                category => q.question.category.clone(),
                post_slug => q.post_slug.clone(),
            }
        })
        .collect();
    let ctx = context! {
        quiz => context! { id => quiz.id, title => quiz.title.clone(), url => format!("/quizzes/{}/", quiz.slug), published => quiz.published },
        form => form,
        errors => errs,
        questions => questions,
        saved => saved,
    };
    inner.page(visitor, "admin/quiz_form.html", "admin", status, ctx)
}

fn kind_name(q: &Question) -> &'static str {
    match q.kind {
        keel_quiz::Kind::Single { .. } => "single choice",
        keel_quiz::Kind::Multiple { .. } => "multiple choice",
        keel_quiz::Kind::TrueFalse { .. } => "true/false",
        keel_quiz::Kind::Short { .. } => "short answer",
        keel_quiz::Kind::Numeric { .. } => "numeric",
        keel_quiz::Kind::Matching { .. } => "matching",
        keel_quiz::Kind::Description => "description",
    }
}

/// `GET /admin/quizzes/<id>/`.
pub(crate) async fn edit_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
    Query(query): Query<SavedQuery>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let form = context! {
        title => quiz.title.clone(),
        slug => quiz.slug.clone(),
        tags => quiz.tags.join(", "),
        description => quiz.description.clone(),
        time_limit => quiz.time_limit,
        pass_mark => quiz.pass_mark,
        attempt_limit => quiz.attempt_limit,
        grading => quiz.grading.to_string(),
        review => quiz.review.to_string(),
        draw_count => quiz.draw_count,
        draw_category => quiz.draw_category.clone().unwrap_or_default(),
        shuffle => quiz.shuffle,
        published => quiz.published,
        opens => date_text(quiz.opens_at),
        closes => date_text(quiz.closes_at),
        bands => bands_text(&quiz.bands),
    };
    let errs = errors(&QUIZ_FIELDS);
    quiz_page(
        &inner,
        &visitor,
        &quiz,
        form,
        &errs,
        StatusCode::OK,
        query.saved.is_some(),
    )
    .await
}

/// `POST /admin/quizzes/<id>/`: the settings; an invalid form is shown again, unsaved.
pub(crate) async fn update(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
    Form(form): Form<QuizForm>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let mut errs = errors(&QUIZ_FIELDS);
    let title = form.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 {
        add(
            &mut errs,
            "title",
            "Give the quiz a title of at most 200 characters.",
        );
    }
    let slug = form.slug.trim().to_owned();
    if !markdown::valid_slug(&slug) {
        add(
            &mut errs,
            "slug",
            "Use lowercase letters, digits and hyphens.",
        );
    } else if store::slug_taken(&inner.db, &slug, Some(quiz.id)).await? {
        add(&mut errs, "slug", "Another quiz has this slug.");
    }
    let tags = posts::normalize_tags(&form.tags).unwrap_or_else(|e| {
        add(&mut errs, "tags", e);
        Vec::new()
    });
    let mut input = QuizInput::of(&quiz);
    input.title = title;
    input.slug = slug;
    input.tags = tags;
    input.description = form.description.clone();
    input.time_limit = number("time_limit", &form.time_limit, 24 * 3600, &mut errs);
    input.pass_mark = number("pass_mark", &form.pass_mark, 100, &mut errs);
    input.attempt_limit = number("attempt_limit", &form.attempt_limit, 1000, &mut errs);
    input.draw_count = number("draw_count", &form.draw_count, 1000, &mut errs);
    input.draw_category = Some(form.draw_category.trim().to_owned()).filter(|c| !c.is_empty());
    input.shuffle = form.shuffle.is_some();
    input.published = form.published.is_some();
    match form.grading.parse::<GradingMethod>() {
        Ok(g) => input.grading = g,
        Err(_) => add(
            &mut errs,
            "grading",
            "Choose highest, last, first or average.",
        ),
    }
    match form.review.parse::<ReviewPolicy>() {
        Ok(r) => input.review = r,
        Err(_) => add(&mut errs, "review", "Choose when answers are shown."),
    }
    match parse_date(&form.opens) {
        Ok(t) => input.opens_at = t,
        Err(e) => add(&mut errs, "opens", e),
    }
    match parse_date(&form.closes) {
        Ok(t) => input.closes_at = t,
        Err(e) => add(&mut errs, "closes", e),
    }
    if let (Some(o), Some(c)) = (input.opens_at, input.closes_at) {
        if c <= o {
            add(&mut errs, "closes", "The quiz must close after it opens.");
        }
    }
    match parse_bands(&form.bands) {
        Ok(b) => input.bands = b,
        Err(e) => add(&mut errs, "bands", e),
    }
    if has_errors(&errs) {
        let shown = context! {
            title => form.title, slug => form.slug, tags => form.tags,
            description => form.description, time_limit => form.time_limit,
            pass_mark => form.pass_mark, attempt_limit => form.attempt_limit,
            grading => form.grading, review => form.review, draw_count => form.draw_count,
            draw_category => form.draw_category, shuffle => form.shuffle.is_some(),
            published => form.published.is_some(), opens => form.opens, closes => form.closes,
            bands => form.bands,
        };
        return quiz_page(
            &inner,
            &visitor,
            &quiz,
            shown,
            &errs,
            StatusCode::BAD_REQUEST,
            false,
        )
        .await;
    }
    store::save_quiz(&inner.db, Some(quiz.id), &input).await?;
    inner.cache.invalidate();
    Ok(see_other(&format!("/admin/quizzes/{}/?saved=1", quiz.id)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublishForm {
    published: Option<String>,
}

/// `POST /admin/quizzes/<id>/publish/` with `published=1` or without it.
pub(crate) async fn publish(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
    Form(form): Form<PublishForm>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let published = form.published.as_deref() == Some("1");
    store::set_published(&inner.db, quiz.id, published).await?;
    inner.cache.invalidate();
    let saved = if published {
        "Published."
    } else {
        "Unpublished."
    };
    Ok(see_other(&format!("/admin/quizzes/?saved={saved}")))
}

/// `GET /admin/quizzes/<id>/delete/`: the confirmation.
pub(crate) async fn delete_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let ctx = context! { quiz => context! { id => quiz.id, title => quiz.title.clone(), questions => quiz.questions } };
    inner.page(
        &visitor,
        "admin/quiz_delete.html",
        "admin",
        StatusCode::OK,
        ctx,
    )
}

/// `POST /admin/quizzes/<id>/delete/`.
pub(crate) async fn delete(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    store::delete_quiz(&inner.db, quiz.id).await?;
    inner.cache.invalidate();
    Ok(see_other("/admin/quizzes/?saved=Deleted."))
}

/// `GET /admin/quizzes/<id>/export.gift`.
pub(crate) async fn export(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let questions: Vec<Question> = store::questions(&inner.db, quiz.id)
        .await?
        .into_iter()
        .map(|q| q.question)
        .collect();
    let body = keel_quiz::gift::export(&questions);
    Ok(attachment(
        "text/plain; charset=utf-8",
        &format!("{}.gift", quiz.slug),
        body,
    ))
}

/// The records item analysis reads, and the questions by id.
async fn analysis_of(
    inner: &Inner,
    quiz: &store::Quiz,
) -> Result<(keel_quiz::Analysis, BTreeMap<i64, Question>), SiteError> {
    let bank: BTreeMap<i64, Question> = store::questions(&inner.db, quiz.id)
        .await?
        .into_iter()
        .map(|q| (q.id, q.question))
        .collect();
    let mut records = Vec::new();
    for (attempt, answers) in store::finished_attempts(&inner.db, quiz.id).await? {
        let items = attempt
            .question_ids
            .iter()
            .filter(|id| bank.get(id).is_some_and(Question::is_graded))
            .map(|id| {
                let answer = answers.get(id);
                let picked = match answer.map(|a| &a.response) {
                    Some(keel_quiz::Response::Choice { id }) => vec![*id],
                    Some(keel_quiz::Response::Choices { ids }) => ids.clone(),
                    Some(keel_quiz::Response::Bool { value }) => vec![usize::from(*value)],
                    _ => Vec::new(),
                };
                keel_quiz::ItemRecord {
                    question_id: *id,
                    fraction: answer.and_then(|a| a.credit).unwrap_or(0.0),
                    picked,
                }
            })
            .collect();
        records.push(keel_quiz::AttemptRecord {
            total: attempt.score.unwrap_or(0.0),
            items,
        });
    }
    Ok((keel_quiz::analyse(&records), bank))
}

fn label(bank: &BTreeMap<i64, Question>, id: i64) -> String {
    bank.get(&id)
        .map(|q| {
            q.name
                .clone()
                .unwrap_or_else(|| markdown::excerpt(&q.stem, 80))
        })
        .unwrap_or_else(|| format!("question {id}"))
}

fn choice_label(q: Option<&Question>, id: usize) -> String {
    match q.map(|q| &q.kind) {
        Some(keel_quiz::Kind::Single { choices } | keel_quiz::Kind::Multiple { choices }) => {
            choices
                .get(id)
                .map_or_else(|| format!("#{id}"), |c| c.text.clone())
        }
        Some(keel_quiz::Kind::TrueFalse { .. }) => {
            if id == 1 { "True" } else { "False" }.to_owned()
        }
        _ => format!("#{id}"),
    }
}

/// `GET /admin/quizzes/<id>/analysis/`.
pub(crate) async fn analysis(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let (analysis, bank) = analysis_of(&inner, &quiz).await?;
    let items: Vec<Value> = analysis
        .items
        .iter()
        .map(|item| {
            let q = bank.get(&item.question_id);
            context! {
                label => label(&bank, item.question_id),
                attempts => item.attempts,
                facility => format!("{:.0}", item.facility * 100.0),
                discrimination => item.discrimination.map(|d| format!("{d:.2}")),
                weak => item.discrimination.is_some_and(|d| d < 0.2),
                picks => item.picks.iter().map(|(c, n)| context! { label => choice_label(q, *c), count => n }).collect::<Vec<_>>(),
            }
        })
        .collect();
    let ctx = context! {
        quiz => context! { id => quiz.id, title => quiz.title.clone() },
        attempts => analysis.attempts,
        mean => format!("{:.1}", analysis.mean),
        median => format!("{:.1}", analysis.median),
        items => items,
    };
    inner.page(
        &visitor,
        "admin/quiz_analysis.html",
        "admin",
        StatusCode::OK,
        ctx,
    )
}

/// `GET /admin/quizzes/<id>/analysis.csv`.
pub(crate) async fn analysis_csv(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let (analysis, bank) = analysis_of(&inner, &quiz).await?;
    let csv = keel_quiz::to_csv(&analysis, |id| label(&bank, id));
    Ok(attachment(
        "text/csv; charset=utf-8",
        &format!("{}-analysis.csv", quiz.slug),
        csv,
    ))
}

/// A download: `body` as `content_type`, saved as `filename` (a slug, so no quoting
/// is needed beyond the quotes).
fn attachment(content_type: &'static str, filename: &str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct QuestionForm {
    #[serde(default)]
    gift: String,
    #[serde(default)]
    post_slug: String,
    action: Option<String>,
}

/// What a question form is shown again with: GIFT errors by line, field errors, status.
struct Report<'a> {
    problems: &'a [ParseError],
    errors: &'a BTreeMap<String, Vec<String>>,
    status: StatusCode,
}

async fn question_page(
    inner: &Inner,
    visitor: &Visitor,
    quiz: &store::Quiz,
    qid: i64,
    form: &QuestionForm,
    report: Report<'_>,
) -> Result<Response, SiteError> {
    let ctx = context! {
        quiz => context! { id => quiz.id, title => quiz.title.clone() },
        question_id => qid,
        form => context! { gift => form.gift.clone(), post_slug => form.post_slug.clone() },
        problems => problem_list(report.problems),
        errors => report.errors,
    };
    inner.page(
        visitor,
        "admin/question_form.html",
        "admin",
        report.status,
        ctx,
    )
}

/// `GET /admin/quizzes/<id>/questions/<qid>/`: one question, as GIFT.
pub(crate) async fn question_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path((id, qid)): Path<(String, String)>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let qid: i64 = qid.parse().map_err(|_| SiteError::NotFound)?;
    let q = store::question(&inner.db, quiz.id, qid)
        .await?
        .ok_or(SiteError::NotFound)?;
    let form = QuestionForm {
        gift: keel_quiz::gift::export(std::slice::from_ref(&q.question)),
        post_slug: q.post_slug.unwrap_or_default(),
        action: None,
    };
    let errs = errors(&["gift", "post_slug", "form"]);
    question_page(
        &inner,
        &visitor,
        &quiz,
        qid,
        &form,
        Report {
            problems: &[],
            errors: &errs,
            status: StatusCode::OK,
        },
    )
    .await
}

/// `POST /admin/quizzes/<id>/questions/<qid>/`: saves the GIFT text (exactly one
/// question) and the post link, or deletes the question (`action=delete`).
pub(crate) async fn question_update(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path((id, qid)): Path<(String, String)>,
    Form(form): Form<QuestionForm>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/quizzes/");
    let quiz = staff_quiz(&inner, &id).await?;
    let qid: i64 = qid.parse().map_err(|_| SiteError::NotFound)?;
    if form.action.as_deref() == Some("delete") {
        if !store::delete_question(&inner.db, quiz.id, qid).await? {
            return Err(SiteError::NotFound);
        }
        return Ok(see_other(&format!("/admin/quizzes/{}/?saved=1", quiz.id)));
    }
    let mut errs = errors(&["gift", "post_slug", "form"]);
    let post_slug = form.post_slug.trim();
    if !post_slug.is_empty() && !markdown::valid_slug(post_slug) {
        add(
            &mut errs,
            "post_slug",
            "A post's slug: lowercase letters, digits and hyphens.",
        );
    }
    let parsed = keel_quiz::gift::parse(&form.gift);
    let (question, problems) = match parsed {
        Ok(mut questions) if questions.len() == 1 && !has_errors(&errs) => {
            (questions.pop(), Vec::new())
        }
        Ok(questions) => {
            if questions.len() != 1 {
                add(
                    &mut errs,
                    "gift",
                    format!(
                        "Write exactly one question here (found {}).",
                        questions.len()
                    ),
                );
            }
            (None, Vec::new())
        }
        Err(problems) => (None, problems),
    };
    let Some(question) = question else {
        return question_page(
            &inner,
            &visitor,
            &quiz,
            qid,
            &form,
            Report {
                problems: &problems,
                errors: &errs,
                status: StatusCode::BAD_REQUEST,
            },
        )
        .await;
    };
    let slug = Some(post_slug).filter(|s| !s.is_empty());
    if !store::update_question(&inner.db, quiz.id, qid, &question, slug).await? {
        return Err(SiteError::NotFound);
    }
    Ok(see_other(&format!("/admin/quizzes/{}/?saved=1", quiz.id)))
}
