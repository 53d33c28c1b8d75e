//! The site's HTTP plumbing: who the visitor is (session cookie), CSRF protection for every
//! unsafe request, friendly error pages, security headers, and the page renderer.
//!
//! CSRF works as Django's does: a random token in an HttpOnly cookie, the same token in a
//! hidden field of every form; a POST without both, or with two that differ, is refused
//! with 403 before any handler runs, so no handler can forget the check. A cross-site
//! `Origin` is refused too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use minijinja::{context, Value};
use subtle::ConstantTimeEq;

use crate::accounts::{self, random_token, User};
use crate::error::{ErrorPage, SiteError};
use crate::Inner;

/// The session cookie (a random token; the database keeps its hash).
pub(crate) const SESSION_COOKIE: &str = "keel_session";
/// The CSRF cookie, matched against each form's `csrf_token` field.
pub(crate) const CSRF_COOKIE: &str = "keel_csrf";
/// The form field (or `X-CSRF-Token` header) that must equal the cookie.
pub(crate) const CSRF_FIELD: &str = "csrf_token";
/// Form bodies larger than this are refused (Django's DATA_UPLOAD_MAX_MEMORY_SIZE is 2.5 MB;
/// a blog post is far smaller).
const MAX_FORM_BYTES: usize = 1024 * 1024;
/// A year, Django's CSRF_COOKIE_AGE.
pub(crate) const CSRF_COOKIE_SECONDS: i64 = 31_449_600;

/// Who is asking: known for every request the site handles.
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    pub(crate) user: Option<User>,
    pub(crate) session_token: Option<String>,
    pub(crate) csrf: String,
    /// The request came over TLS (directly or as the edge says): cookies get `Secure`.
    pub(crate) secure: bool,
    /// Client address, for the per-address login limit.
    pub(crate) address: String,
}

impl Visitor {
    /// Context every template gets.
    fn base_context(&self, site_name: &str, tagline: &str, nav: &str) -> Value {
        let user = self.user.as_ref().map(|u| {
            context! { username => u.username.clone(), is_staff => u.is_staff }
        });
        context! {
            user => user,
            csrf_token => self.csrf.clone(),
            nav => nav,
            site_name => site_name,
            tagline => tagline,
        }
    }

    /// A `Set-Cookie` value with the site's attributes: HttpOnly, SameSite=Lax, Path=/,
    /// and Secure under TLS.
    pub(crate) fn cookie(&self, name: &str, value: String, max_age_seconds: i64) -> HeaderValue {
        let mut c = Cookie::new(name.to_owned(), value);
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_path("/");
        c.set_secure(self.secure);
        c.set_max_age(cookie::time::Duration::seconds(max_age_seconds));
        HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl Inner {
    /// Renders a page of the site's layout.
    pub(crate) fn page(
        &self,
        visitor: &Visitor,
        template: &str,
        nav: &str,
        status: StatusCode,
        ctx: Value,
    ) -> Result<Response, SiteError> {
        let ctx = context! { ..visitor.base_context(&self.site_name, &self.tagline, nav), ..ctx };
        let html = self.templates.render(template, ctx)?;
        Ok((status, Html(html)).into_response())
    }
}

/// `303 See Other` to `to`: the answer to a successful form post.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A `next` target that stays on this site: a path, not `//host` or `/\host`.
pub(crate) fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub(crate) fn cookies(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'static>> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()).filter_map(Result::ok))
}

pub(crate) fn plausible_token(t: &str) -> bool {
    t.len() == 43
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The client's address: what the server worked out once for this request
/// ([`keel_client::Client`], trusted proxies applied), else the socket peer. The site never
/// reads a forwarding header itself: a client could forge one.
fn client_address(request: &Request) -> String {
    let extensions = request.extensions();
    let ip = extensions
        .get::<keel_client::Client>()
        .map(|c| c.ip)
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| keel_client::canonical(c.0.ip()))
        })
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    ip.to_string()
}

/// Whether the client's own connection was HTTPS (the server's [`keel_client::Client`],
/// which believes `X-Forwarded-Proto` only from a trusted proxy).
fn is_secure(request: &Request) -> bool {
    request.uri().scheme_str() == Some("https")
        || request
            .extensions()
            .get::<keel_client::Client>()
            .is_some_and(|c| c.https)
}

/// Whether an `Origin` header, if any, names the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// The middleware in front of every site route.
pub(crate) async fn visit(
    State(inner): State<Arc<Inner>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(e) = no_nul_in_target(request.uri()) {
        return inner.error_page(None, e);
    }
    let mut session_token = None;
    let mut csrf_cookie = None;
    for c in cookies(request.headers()) {
        match c.name() {
            SESSION_COOKIE if plausible_token(c.value()) => {
                session_token = Some(c.value().to_owned())
            }
            CSRF_COOKIE if plausible_token(c.value()) => csrf_cookie = Some(c.value().to_owned()),
            _ => {}
        }
    }
    let user = match &session_token {
        Some(token) => match accounts::session_user(&inner.db, token).await {
            Ok(user) => user,
            Err(e) => return inner.error_page(None, e),
        },
        None => None,
    };
    let new_csrf = csrf_cookie.is_none();
    let csrf = match csrf_cookie.clone() {
        Some(token) => token,
        None => match random_token() {
            Ok(token) => token,
            Err(e) => return inner.error_page(None, e),
        },
    };
    let visitor = Visitor {
        user,
        session_token,
        csrf,
        secure: is_secure(&request),
        address: client_address(&request),
    };

    let mut request = request;
    if !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        match check_csrf(request, csrf_cookie.as_deref()).await {
            Ok(checked) => request = checked,
            Err(e) => return inner.error_page(Some(&visitor), e),
        }
    }

    request.extensions_mut().insert(visitor.clone());
    let mut response = next.run(request).await;

    response = inner.with_error_page(&visitor, response);
    let headers = response.headers_mut();
    if new_csrf {
        headers.append(
            header::SET_COOKIE,
            visitor.cookie(CSRF_COOKIE, visitor.csrf.clone(), CSRF_COOKIE_SECONDS),
        );
    }
    security_headers(headers);
    response
}

/// NUL can be stored in no PostgreSQL text parameter, and no route or tag has one: a
/// path with a (decoded) NUL is no page (404), a query with one is a bad request (400,
/// Django's "Null characters are not allowed."), refused before any query runs. Form
/// fields are checked in [`check_csrf`], where the body is read.
fn no_nul_in_target(uri: &axum::http::Uri) -> Result<(), SiteError> {
    // A URI holds no raw NUL: in a path it can only be the escape `%00`.
    if uri.path().contains("%00") {
        return Err(SiteError::NotFound);
    }
    let query = uri.query().unwrap_or("");
    if url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(SiteError::BadRequest(
            "Null characters are not allowed in the address.".into(),
        ));
    }
    Ok(())
}

/// Reads the form body (bounded), checks its token against the cookie, and hands the
/// request on with the same body.
async fn check_csrf(request: Request, cookie: Option<&str>) -> Result<Request, SiteError> {
    if !same_origin(request.headers()) {
        return Err(SiteError::Forbidden(
            "CSRF verification failed: the form was sent from another site.".into(),
        ));
    }
    let header_token = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| SiteError::TooLarge)?;
    let Some(cookie) = cookie else {
        return Err(SiteError::Forbidden(
            "CSRF verification failed: the CSRF cookie is not set. Enable cookies for this site, reload the form and send it again.".into(),
        ));
    };
    // One pass over the fields: the token, and a NUL anywhere refused (no text column
    // may hold one on PostgreSQL).
    let mut form_token = None;
    for (key, value) in url::form_urlencoded::parse(&bytes) {
        if key.contains('\0') || value.contains('\0') {
            return Err(SiteError::BadRequest(
                "Null characters are not allowed in a form field.".into(),
            ));
        }
        if key == CSRF_FIELD && form_token.is_none() {
            form_token = Some(value.into_owned());
        }
    }
    let given = form_token.or(header_token);
    match given {
        Some(token) if bool::from(token.as_bytes().ct_eq(cookie.as_bytes())) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        Some(_) => Err(SiteError::Forbidden(
            "CSRF verification failed: the form's token is wrong or stale. Reload the form and send it again.".into(),
        )),
        None => Err(SiteError::Forbidden(
            "CSRF verification failed: the form has no CSRF token.".into(),
        )),
    }
}

fn security_headers(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
    {
        // Pages load scripts and styles from /static/ only: an injected inline script
        // would not run even if one got past the escaping and the sanitizer.
        set(
            headers,
            "content-security-policy",
            "default-src 'self'; img-src 'self' data: https:; script-src 'self'; style-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        );
        set(headers, "cache-control", "private, no-cache");
    }
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
}

impl Inner {
    fn render_error(&self, visitor: &Visitor, page: &ErrorPage) -> Response {
        let ctx = context! {
            status => page.status.as_u16(),
            title => page.title,
            message => page.message.clone(),
        };
        match self.page(visitor, "error.html", "", page.status, ctx) {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "could not render the error page");
                (page.status, page.message.clone()).into_response()
            }
        }
    }

    /// An error before the visitor is fully known (database down while reading the
    /// session): rendered for an anonymous visitor.
    fn error_page(&self, visitor: Option<&Visitor>, error: SiteError) -> Response {
        let anonymous = Visitor {
            user: None,
            session_token: None,
            csrf: String::new(),
            secure: false,
            address: String::new(),
        };
        let mut response =
            self.with_error_page(visitor.unwrap_or(&anonymous), error.into_response());
        security_headers(response.headers_mut());
        response
    }

    /// A response that carries an [`ErrorPage`] becomes that page in the site layout,
    /// keeping the headers the error set (Retry-After, say); any other passes unchanged.
    fn with_error_page(&self, visitor: &Visitor, mut response: Response) -> Response {
        let Some(page) = response.extensions_mut().remove::<ErrorPage>() else {
            return response;
        };
        let mut rendered = self.render_error(visitor, &page);
        for (name, value) in response.headers() {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
        rendered
    }
}

/// Paths that exist with a trailing slash: without it, redirect (Django's APPEND_SLASH).
pub(crate) async fn fallback(request: Request) -> Response {
    let path = request.uri().path();
    let known = matches!(
        path,
        "/feedback"
            | "/accounts/login"
            | "/accounts/logout"
            | "/accounts/register"
            | "/admin"
            | "/admin/feedback"
    ) || path
        .strip_prefix("/posts/")
        .is_some_and(crate::markdown::valid_slug);
    if known && matches!(*request.method(), Method::GET | Method::HEAD) {
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return Redirect::permanent(&format!("{path}/{query}")).into_response();
    }
    SiteError::NotFound.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_local() {
        assert_eq!(local_next(Some("/admin/")), "/admin/");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "",
            "x",
        ] {
            assert_eq!(local_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_next(None), "/");
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
