//! The public pages: the post listing at `/` (tag filter, pages) and one post at
//! `/posts/<slug>/`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use minijinja::{context, Value};
use serde::Deserialize;

use crate::cache;
use crate::error::SiteError;
use crate::posts::{self, Post, PAGE_SIZE};
use crate::web::Visitor;
use crate::Inner;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    tag: Option<String>,
    page: Option<String>,
}

/// "25 Nov 2026" and "2026-11-25" for a Unix time.
pub(crate) fn dates(unix: i64) -> (String, String) {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else {
        return (String::new(), String::new());
    };
    let human = t
        .format(time::macros::format_description!(
            "[day padding:none] [month repr:short] [year]"
        ))
        .unwrap_or_default();
    let iso = t
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default();
    (human, iso)
}

pub(crate) fn post_url(slug: &str) -> String {
    format!("/posts/{slug}/")
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn summary(post: &Post) -> Value {
    let (date, date_iso) = dates(post.published_at.unwrap_or(post.created_at));
    context! {
        title => post.title.clone(),
        slug => post.slug.clone(),
        url => post_url(&post.slug),
        author => post.author.clone().unwrap_or_else(|| "unknown".into()),
        date => date,
        date_iso => date_iso,
        tags => post.tags.clone(),
        excerpt => post.excerpt.clone(),
    }
}

/// `GET /`.
pub(crate) async fn home(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<ListQuery>,
) -> Result<Response, SiteError> {
    let tag = query
        .tag
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase);
    // Django's paginator answers 404 for a page that is not a positive number or past
    // the end; page 1 of nothing is an empty page, not an error.
    let page: i64 = match query.page.as_deref() {
        None | Some("") => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or(SiteError::NotFound)?,
    };
    let home = match inner.cache.home(tag.as_deref(), page) {
        Some(home) => home,
        None => {
            let ticket = inner.cache.ticket();
            let listing = posts::published(&inner.db, tag.as_deref(), page).await?;
            let tags = posts::tag_counts(&inner.db).await?;
            inner
                .cache
                .keep_home(ticket, tag.as_deref(), page, cache::Home { listing, tags })
        }
    };
    let listing = &home.listing;
    let total_pages = ((listing.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    if page > total_pages {
        return Err(SiteError::NotFound);
    }
    let page_url = |n: i64| match &tag {
        Some(t) => format!("/?tag={}&page={n}", encode(t)),
        None => format!("/?page={n}"),
    };
    let tags: Vec<Value> = home
        .tags
        .iter()
        .map(|(name, count)| {
            context! {
                url => format!("/?tag={}", encode(name)),
                active => tag.as_deref() == Some(name.as_str()),
                name => name,
                count => count,
            }
        })
        .collect();
    let ctx = context! {
        posts => listing.posts.iter().map(summary).collect::<Vec<_>>(),
        tag => tag.clone(),
        tags => tags,
        page => context! {
            number => page,
            total => total_pages,
            has_prev => page > 1,
            has_next => page < total_pages,
            prev_url => page_url(page - 1),
            next_url => page_url(page + 1),
        },
    };
    inner.page(&visitor, "home.html", "posts", StatusCode::OK, ctx)
}

/// `GET /posts/<slug>/`.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(slug): Path<String>,
) -> Result<Response, SiteError> {
    let post = match inner.cache.post(&slug) {
        Some(post) => post,
        None => {
            let ticket = inner.cache.ticket();
            let post = posts::published_by_slug(&inner.db, &slug)
                .await?
                .ok_or(SiteError::NotFound)?;
            inner.cache.keep_post(ticket, post)
        }
    };
    let (date, date_iso) = dates(post.published_at.unwrap_or(post.created_at));
    let updated = (post.updated_at > post.published_at.unwrap_or(post.created_at) + 60)
        .then(|| dates(post.updated_at).0);
    let ctx = context! {
        post => context! {
            title => post.title.clone(),
            slug => post.slug.clone(),
            author => post.author.clone().unwrap_or_else(|| "unknown".into()),
            date => date,
            date_iso => date_iso,
            updated => updated,
            tags => post.tags.clone(),
            body_html => post.body_html.clone(),
        },
        quizzes => crate::quiz::pages::for_post(&inner, &post.tags).await?,
    };
    inner.page(&visitor, "post.html", "posts", StatusCode::OK, ctx)
}

/// `GET /events/`: the live events on `demo_stream`, in the site's layout; what to run to
/// publish one; and, for staff, a form that publishes.
pub(crate) async fn events(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<PublishedQuery>,
) -> Result<Response, SiteError> {
    let ctx = context! {
        hint => inner.publish_hint.clone(),
        live => inner.hub.is_some(),
        staff => visitor.user.as_ref().is_some_and(|u| u.is_staff),
        published => query.published,
    };
    inner.page(&visitor, "events.html", "events", StatusCode::OK, ctx)
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublishedQuery {
    published: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublishForm {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    message: String,
}

/// `POST /events/publish`: staff publish a message from the page (CSRF-checked as every
/// form).
pub(crate) async fn publish(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    axum::Form(form): axum::Form<PublishForm>,
) -> Result<Response, SiteError> {
    if !visitor.user.as_ref().is_some_and(|u| u.is_staff) {
        return Err(SiteError::Forbidden(
            "Only staff publish from this page; others use keel publish.".into(),
        ));
    }
    let Some(hub) = &inner.hub else {
        return Err(SiteError::Conflict(
            "This server runs without live events.".into(),
        ));
    };
    let channel = form.channel.trim();
    let channel = if channel.is_empty() {
        "demo_stream"
    } else {
        channel
    };
    // The brokers' own rule, checked before anything is published.
    keel_stream::broker::validate_channel(channel)
        .map_err(|e| SiteError::BadRequest(format!("Not a channel name: {e}")))?;
    let message = form.message.trim();
    if message.is_empty() || message.chars().count() > 10_000 {
        return Err(SiteError::BadRequest(
            "Write a message of 1 to 10,000 characters.".into(),
        ));
    }
    hub.publish(channel, message)
        .await
        .map_err(|e| SiteError::Conflict(format!("The broker did not take it: {e}")))?;
    Ok(crate::web::see_other("/events/?published=1"))
}

/// The site's address as the request names it (for the absolute URLs robots.txt and the
/// sitemap must carry).
fn origin(headers: &axum::http::HeaderMap, secure: bool) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .unwrap_or("localhost");
    format!("{}://{host}", if secure { "https" } else { "http" })
}

/// `GET /robots.txt`: everything public may be crawled; the admin and the readers' own
/// attempts and interviews may not.
pub(crate) async fn robots(
    Extension(visitor): Extension<Visitor>,
    headers: axum::http::HeaderMap,
) -> Response {
    let body = format!(
        "User-agent: *\nAllow: /\nDisallow: /admin/\nDisallow: /accounts/\nDisallow: /quizzes/attempts/\nDisallow: /quizzes/live/\nDisallow: /interviewer/sessions/\n\nSitemap: {}/sitemap.xml\n",
        origin(&headers, visitor.secure)
    );
    axum::response::IntoResponse::into_response((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body,
    ))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /sitemap.xml`: the public pages, every published post (with its last change) and
/// quiz, in the sitemaps.org format.
pub(crate) async fn sitemap(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: axum::http::HeaderMap,
) -> Result<Response, SiteError> {
    let base = origin(&headers, visitor.secure);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    let mut url = |path: &str, modified: Option<i64>| {
        out.push_str(&format!(
            "  <url><loc>{}</loc>",
            xml_escape(&format!("{base}{path}"))
        ));
        if let Some(t) = modified {
            out.push_str(&format!("<lastmod>{}</lastmod>", dates(t).1));
        }
        out.push_str("</url>\n");
    };
    for path in ["/", "/quizzes/", "/interviewer/", "/events/", "/feedback/"] {
        url(path, None);
    }
    for post in posts::all(&inner.db).await?.iter().filter(|p| p.published) {
        url(&post_url(&post.slug), Some(post.updated_at));
    }
    for quiz in crate::quiz::store::quizzes(&inner.db, false).await? {
        url(&format!("/quizzes/{}/", quiz.slug), None);
    }
    out.push_str("</urlset>\n");
    Ok(axum::response::IntoResponse::into_response((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/xml; charset=utf-8",
        )],
        out,
    )))
}
