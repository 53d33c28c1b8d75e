//! `/feedback/`: a name, an address and a message, validated, stored, and read by staff
//! in the admin.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use minijinja::{context, Value};
use serde::Deserialize;
use sqlx::Row;

use crate::accounts;
use crate::db::{now, Db};
use crate::error::SiteError;
use crate::forms::{add, errors, has_errors};
use crate::pages::dates;
use crate::web::{see_other, Visitor};
use crate::Inner;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FeedbackForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SentQuery {
    sent: Option<String>,
}

/// `GET /feedback/`.
pub(crate) async fn form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<SentQuery>,
) -> Result<Response, SiteError> {
    let mut form = FeedbackForm::default();
    if let Some(user) = &visitor.user {
        form.name.clone_from(&user.username);
        form.email.clone_from(&user.email);
    }
    let sent = query.sent.is_some();
    render(
        &inner,
        &visitor,
        &form,
        &errors(&FIELDS),
        sent,
        StatusCode::OK,
    )
}

const FIELDS: [&str; 4] = ["name", "email", "message", "form"];

fn render(
    inner: &Inner,
    visitor: &Visitor,
    form: &FeedbackForm,
    errors: &std::collections::BTreeMap<String, Vec<String>>,
    sent: bool,
    status: StatusCode,
) -> Result<Response, SiteError> {
    let ctx = context! {
        form => context! { name => form.name.clone(), email => form.email.clone(), message => form.message.clone() },
        errors => errors,
        sent => sent,
    };
    inner.page(visitor, "feedback.html", "feedback", status, ctx)
}

/// `POST /feedback/`.
pub(crate) async fn submit(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Form(mut form): Form<FeedbackForm>,
) -> Result<Response, SiteError> {
    form.name = form.name.trim().to_owned();
    form.email = form.email.trim().to_owned();
    let mut errs = errors(&FIELDS);
    let name_len = form.name.chars().count();
    if name_len == 0 {
        add(&mut errs, "name", "Tell us your name.");
    } else if name_len > 100 {
        add(&mut errs, "name", "Names are at most 100 characters.");
    }
    if let Err(m) = accounts::check_email(&form.email) {
        add(&mut errs, "email", m);
    }
    let message_len = form.message.trim().chars().count();
    if message_len == 0 {
        add(&mut errs, "message", "Write a message.");
    } else if message_len > 5000 {
        add(
            &mut errs,
            "message",
            format!("Messages are at most 5000 characters (this one has {message_len})."),
        );
    }
    if has_errors(&errs) {
        return render(
            &inner,
            &visitor,
            &form,
            &errs,
            false,
            StatusCode::BAD_REQUEST,
        );
    }
    sqlx::query(
        "INSERT INTO feedback (name, email, message, user_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&form.name)
    .bind(&form.email)
    .bind(&form.message)
    .bind(visitor.user.as_ref().map(|u| u.id))
    .bind(now())
    .execute(inner.db.pool())
    .await?;
    Ok(see_other("/feedback/?sent=1"))
}

/// Every message, newest first, for the admin.
pub(crate) async fn list(db: &Db) -> Result<Vec<Value>, SiteError> {
    let rows = sqlx::query(
        "SELECT f.name, f.email, f.message, f.created_at, u.username FROM feedback f
         LEFT JOIN users u ON u.id = f.user_id ORDER BY f.created_at DESC, f.id DESC",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let created: i64 = row.try_get("created_at")?;
            Ok(context! {
                name => row.try_get::<String, _>("name")?,
                email => row.try_get::<String, _>("email")?,
                message => row.try_get::<String, _>("message")?,
                date => dates(created).0,
                user => row.try_get::<Option<String>, _>("username")?,
            })
        })
        .collect()
}

/// How many messages there are.
pub(crate) async fn count(db: &Db) -> Result<i64, SiteError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM feedback")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("n")?)
}
