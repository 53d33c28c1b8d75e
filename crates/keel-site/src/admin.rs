//! `/admin/`, for staff only: posts and their tags (create, edit, delete, Markdown
//! preview) and the feedback list. Anonymous visitors are sent to the login page, signed-in
//! non-staff get 403. Publishing a post announces it on the `site` channel, and open pages
//! show it live.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use minijinja::{context, Value};
use serde::Deserialize;

use crate::accounts::User;
use crate::error::SiteError;
use crate::forms::{add, errors, has_errors};
use crate::pages::{dates, post_url};
use crate::posts::{self, PostInput};
use crate::web::{see_other, Visitor};
use crate::{feedback, markdown, Inner};

/// The channel that "new post" events go to.
pub const SITE_CHANNEL: &str = "site";

/// Why someone is not let into the admin.
#[derive(Debug)]
pub(crate) enum Denied {
    /// Not signed in: log in first, then come back to this path.
    Anonymous(String),
    /// Signed in without staff rights.
    NotStaff,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Anonymous(path) => {
                let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                see_other(&format!("/accounts/login/?next={next}"))
            }
            Denied::NotStaff => SiteError::Forbidden(
                "The admin is for staff accounts only. Ask an administrator if you need access."
                    .into(),
            )
            .into_response(),
        }
    }
}

/// The staff user, or why not.
pub(crate) fn staff(visitor: &Visitor, path: &str) -> Result<User, Denied> {
    match &visitor.user {
        Some(user) if user.is_staff => Ok(user.clone()),
        Some(_) => Err(Denied::NotStaff),
        None => Err(Denied::Anonymous(path.to_owned())),
    }
}

/// The staff user, or an early return with the login redirect or the 403 page.
macro_rules! require_staff {
    ($visitor:expr, $path:expr) => {
        match staff(&$visitor, $path) {
            Ok(user) => user,
            Err(denied) => return Ok(denied.into_response()),
        }
    };
}
pub(crate) use require_staff;

#[derive(Debug, Deserialize)]
pub(crate) struct SavedQuery {
    saved: Option<i64>,
}

/// `GET /admin/`.
pub(crate) async fn index(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<SavedQuery>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/");
    let all = posts::all(&inner.db).await?;
    let saved = query
        .saved
        .and_then(|id| all.iter().find(|p| p.id == id))
        .map(|p| format!("Post \u{201c}{}\u{201d} saved.", p.title));
    let rows: Vec<Value> = all
        .iter()
        .map(|p| {
            context! {
                id => p.id,
                title => p.title.clone(),
                slug => p.slug.clone(),
                url => post_url(&p.slug),
                published => p.published,
                date => dates(p.published_at.unwrap_or(p.created_at)).0,
                tags => p.tags.clone(),
            }
        })
        .collect();
    let ctx = context! {
        posts => rows,
        feedback_count => feedback::count(&inner.db).await?,
        saved => saved,
    };
    inner.page(&visitor, "admin/index.html", "admin", StatusCode::OK, ctx)
}

/// `GET /admin/feedback/`.
pub(crate) async fn feedback_list(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/feedback/");
    let ctx = context! { feedback => feedback::list(&inner.db).await? };
    inner.page(
        &visitor,
        "admin/feedback.html",
        "admin",
        StatusCode::OK,
        ctx,
    )
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PostForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    body: String,
    published: Option<String>,
    action: Option<String>,
}

const FIELDS: [&str; 5] = ["title", "slug", "tags", "body", "form"];

fn render_form(
    inner: &Inner,
    visitor: &Visitor,
    post: Option<(i64, &str)>,
    form: &PostForm,
    errors: &BTreeMap<String, Vec<String>>,
    preview: Option<String>,
    status: StatusCode,
) -> Result<Response, SiteError> {
    let ctx = context! {
        post => post.map(|(id, slug)| context! { id => id, slug => slug, url => post_url(slug) }),
        form => context! {
            title => form.title.clone(),
            slug => form.slug.clone(),
            tags => form.tags.clone(),
            body => form.body.clone(),
            published => form.published.is_some(),
        },
        errors => errors,
        preview_html => preview,
    };
    inner.page(visitor, "admin/post_form.html", "admin", status, ctx)
}

/// `GET /admin/posts/new/`.
pub(crate) async fn new_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/admin/posts/new/");
    let form = PostForm {
        published: Some("on".into()),
        ..PostForm::default()
    };
    render_form(
        &inner,
        &visitor,
        None,
        &form,
        &errors(&FIELDS),
        None,
        StatusCode::OK,
    )
}

/// `GET /admin/posts/<id>/edit/`.
pub(crate) async fn edit_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<i64>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, &format!("/admin/posts/{id}/edit/"));
    let post = posts::by_id(&inner.db, id)
        .await?
        .ok_or(SiteError::NotFound)?;
    let form = PostForm {
        title: post.title,
        slug: post.slug.clone(),
        tags: post.tags.join(", "),
        body: post.body,
        published: post.published.then(|| "on".into()),
        action: None,
    };
    render_form(
        &inner,
        &visitor,
        Some((id, &post.slug)),
        &form,
        &errors(&FIELDS),
        None,
        StatusCode::OK,
    )
}

/// `POST /admin/posts/new/`.
pub(crate) async fn create(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Form(form): Form<PostForm>,
) -> Result<Response, SiteError> {
    let user = require_staff!(visitor, "/admin/posts/new/");
    save(&inner, &visitor, &user, None, form).await
}

/// `POST /admin/posts/<id>/edit/`.
pub(crate) async fn update(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<i64>,
    Form(form): Form<PostForm>,
) -> Result<Response, SiteError> {
    let user = require_staff!(visitor, &format!("/admin/posts/{id}/edit/"));
    let existing = posts::by_id(&inner.db, id)
        .await?
        .ok_or(SiteError::NotFound)?;
    save(&inner, &visitor, &user, Some((id, existing.slug)), form).await
}

async fn save(
    inner: &Inner,
    visitor: &Visitor,
    user: &User,
    existing: Option<(i64, String)>,
    mut form: PostForm,
) -> Result<Response, SiteError> {
    let post_ref = existing.as_ref().map(|(id, slug)| (*id, slug.as_str()));
    let id = existing.as_ref().map(|(id, _)| *id);
    if form.action.as_deref() == Some("preview") {
        let preview = markdown::render(&form.body);
        return render_form(
            inner,
            visitor,
            post_ref,
            &form,
            &errors(&FIELDS),
            Some(preview),
            StatusCode::OK,
        );
    }

    form.title = form.title.trim().to_owned();
    form.slug = form.slug.trim().to_owned();
    let mut errs = errors(&FIELDS);
    let title_len = form.title.chars().count();
    if title_len == 0 {
        add(&mut errs, "title", "A post needs a title.");
    } else if title_len > 200 {
        add(&mut errs, "title", "Titles are at most 200 characters.");
    }
    let body_len = form.body.trim().chars().count();
    if body_len == 0 {
        add(&mut errs, "body", "A post needs a body.");
    } else if body_len > 100_000 {
        add(&mut errs, "body", "Posts are at most 100,000 characters.");
    }
    let tags = match posts::normalize_tags(&form.tags) {
        Ok(tags) => tags,
        Err(m) => {
            add(&mut errs, "tags", m);
            Vec::new()
        }
    };
    let slug = if form.slug.is_empty() {
        posts::free_slug(&inner.db, &markdown::slugify(&form.title), id).await?
    } else if !markdown::valid_slug(&form.slug) {
        add(
            &mut errs,
            "slug",
            "Use lowercase letters, digits and single dashes in a slug (e.g. running-keel).",
        );
        String::new()
    } else if posts::slug_taken(&inner.db, &form.slug, id).await? {
        add(&mut errs, "slug", "Another post already has this slug.");
        String::new()
    } else {
        form.slug.clone()
    };
    if has_errors(&errs) {
        return render_form(
            inner,
            visitor,
            post_ref,
            &form,
            &errs,
            None,
            StatusCode::BAD_REQUEST,
        );
    }

    let input = PostInput {
        title: form.title.clone(),
        slug,
        body: form.body.clone(),
        tags,
        published: form.published.is_some(),
    };
    let saved = posts::save(&inner.db, id, user.id, &input).await?;
    inner.cache.invalidate();
    tracing::info!(post = %input.slug, by = %user.username, published = input.published, "post saved");
    if saved.newly_published {
        announce(inner, &input.title, &input.slug).await;
    }
    Ok(see_other(&format!("/admin/?saved={}", saved.id)))
}

/// Tells open pages about a new post. A broker that is down costs the notice, not the save.
async fn announce(inner: &Inner, title: &str, slug: &str) {
    let Some(hub) = &inner.hub else { return };
    let event = serde_json::json!({
        "type": "post_published",
        "title": title,
        "slug": slug,
        "url": post_url(slug),
    });
    if let Err(error) = hub.publish(SITE_CHANNEL, &event.to_string()).await {
        tracing::warn!(%error, post = %slug, "could not announce the new post");
    }
}

/// `GET /admin/posts/<id>/delete/`: the confirmation page.
pub(crate) async fn delete_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<i64>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, &format!("/admin/posts/{id}/delete/"));
    let post = posts::by_id(&inner.db, id)
        .await?
        .ok_or(SiteError::NotFound)?;
    let ctx = context! { post => context! { id => post.id, title => post.title } };
    inner.page(
        &visitor,
        "admin/post_delete.html",
        "admin",
        StatusCode::OK,
        ctx,
    )
}

/// `POST /admin/posts/<id>/delete/`.
pub(crate) async fn delete(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<i64>,
) -> Result<Response, SiteError> {
    let user = require_staff!(visitor, &format!("/admin/posts/{id}/delete/"));
    let deleted = posts::delete(&inner.db, id).await?;
    inner.cache.invalidate();
    if !deleted {
        return Err(SiteError::NotFound);
    }
    tracing::info!(post = id, by = %user.username, "post deleted");
    Ok(see_other("/admin/"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PreviewForm {
    #[serde(default)]
    body: String,
}

/// `POST /admin/preview`: the sanitized HTML of a Markdown body, for the live preview.
pub(crate) async fn preview(
    Extension(visitor): Extension<Visitor>,
    Form(form): Form<PreviewForm>,
) -> Result<Response, SiteError> {
    match staff(&visitor, "/admin/") {
        Ok(_) => {}
        // A script, not a person: a status, not a login page.
        Err(Denied::Anonymous(_)) => return Ok(StatusCode::UNAUTHORIZED.into_response()),
        Err(denied) => return Ok(denied.into_response()),
    }
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markdown::render(&form.body),
    )
        .into_response())
}
