//! `/accounts/register/`, `/accounts/login/` and `/accounts/logout/` (POST only, as in
//! Django 5). A login or registration starts a database session and replaces the CSRF
//! token, so a token seen before login is useless after it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use minijinja::context;
use serde::Deserialize;

use crate::accounts::{self, CreateUserError, Login, User, SESSION_SECONDS};
use crate::error::SiteError;
use crate::forms::{add, errors, has_errors};
use crate::web::{
    local_next, see_other, Visitor, CSRF_COOKIE, CSRF_COOKIE_SECONDS, SESSION_COOKIE,
};
use crate::Inner;

#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

/// Signs `user` in: a new session and a new CSRF token, then a redirect to `next`.
async fn sign_in(
    inner: &Inner,
    visitor: &Visitor,
    user: &User,
    next: &str,
) -> Result<Response, SiteError> {
    if let Some(old) = &visitor.session_token {
        accounts::end_session(&inner.db, old).await?;
    }
    let token = accounts::start_session(&inner.db, user).await?;
    let mut response = see_other(next);
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        visitor.cookie(SESSION_COOKIE, token, SESSION_SECONDS),
    );
    headers.append(
        header::SET_COOKIE,
        visitor.cookie(CSRF_COOKIE, accounts::random_token()?, CSRF_COOKIE_SECONDS),
    );
    Ok(response)
}

/// `GET /accounts/login/`.
pub(crate) async fn login_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Query(query): Query<NextQuery>,
) -> Result<Response, SiteError> {
    let next = local_next(query.next.as_deref());
    if visitor.user.is_some() {
        return Ok(see_other(&next));
    }
    render_login(&inner, &visitor, "", &next, &[], StatusCode::OK)
}

fn render_login(
    inner: &Inner,
    visitor: &Visitor,
    username: &str,
    next: &str,
    errors: &[String],
    status: StatusCode,
) -> Result<Response, SiteError> {
    let ctx = context! {
        form => context! { username => username },
        errors => errors,
        next => next,
    };
    inner.page(visitor, "login.html", "login", status, ctx)
}

/// `POST /accounts/login/`.
pub(crate) async fn login(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Form(form): Form<LoginForm>,
) -> Result<Response, SiteError> {
    let next = local_next(form.next.as_deref());
    let username = form.username.trim();
    if username.is_empty() || form.password.is_empty() {
        let errors = ["Enter both your username and your password.".to_owned()];
        return render_login(
            &inner,
            &visitor,
            username,
            &next,
            &errors,
            StatusCode::BAD_REQUEST,
        );
    }
    match accounts::authenticate(&inner.db, username, &form.password, &visitor.address).await {
        Ok(Login::Ok(user)) => {
            tracing::info!(user = %user.username, "login");
            sign_in(&inner, &visitor, &user, &next).await
        }
        Ok(Login::Invalid) => {
            let errors = ["Please enter a correct username and password. Note that both fields may be case-sensitive.".to_owned()];
            render_login(
                &inner,
                &visitor,
                username,
                &next,
                &errors,
                StatusCode::BAD_REQUEST,
            )
        }
        Err(SiteError::TooMany {
            retry_after,
            message,
        }) => {
            tracing::warn!(user = %username, address = %visitor.address, "login refused: too many failures");
            let mut response = render_login(
                &inner,
                &visitor,
                username,
                &next,
                std::slice::from_ref(&message),
                StatusCode::TOO_MANY_REQUESTS,
            )?;
            if let Ok(v) = header::HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// `GET /accounts/logout/`: a page with the logout button (logging out is a POST, so a
/// link or a prefetch cannot sign anyone out), instead of a bare 405.
pub(crate) async fn logout_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
) -> Result<Response, SiteError> {
    let ctx = minijinja::context! {};
    inner.page(&visitor, "logout.html", "", axum::http::StatusCode::OK, ctx)
}

/// `POST /accounts/logout/`.
pub(crate) async fn logout(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
) -> Result<Response, SiteError> {
    if let Some(token) = &visitor.session_token {
        accounts::end_session(&inner.db, token).await?;
    }
    let mut response = see_other("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        visitor.cookie(SESSION_COOKIE, String::new(), 0),
    );
    Ok(response)
}

/// `GET /accounts/register/`.
pub(crate) async fn register_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
) -> Result<Response, SiteError> {
    if visitor.user.is_some() {
        return Ok(see_other("/"));
    }
    render_register(
        &inner,
        &visitor,
        &RegisterForm::default(),
        &register_errors(),
        StatusCode::OK,
    )
}

fn register_errors() -> BTreeMap<String, Vec<String>> {
    errors(&["username", "email", "password", "password2", "form"])
}

fn render_register(
    inner: &Inner,
    visitor: &Visitor,
    form: &RegisterForm,
    errors: &BTreeMap<String, Vec<String>>,
    status: StatusCode,
) -> Result<Response, SiteError> {
    let ctx = context! {
        form => context! { username => form.username.clone(), email => form.email.clone() },
        errors => errors,
    };
    inner.page(visitor, "register.html", "register", status, ctx)
}

/// `POST /accounts/register/`.
pub(crate) async fn register(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Form(mut form): Form<RegisterForm>,
) -> Result<Response, SiteError> {
    form.username = form.username.trim().to_owned();
    form.email = form.email.trim().to_owned();
    let mut errors = register_errors();
    if let Err(m) = accounts::check_username(&form.username) {
        add(&mut errors, "username", m);
    } else if accounts::username_exists(&inner.db, &form.username).await? {
        add(
            &mut errors,
            "username",
            "A user with that username already exists.",
        );
    }
    if let Err(m) = accounts::check_email(&form.email) {
        add(&mut errors, "email", m);
    }
    for m in accounts::check_password(&form.password, &form.username, &form.email) {
        add(&mut errors, "password", m);
    }
    if form.password != form.password2 {
        add(
            &mut errors,
            "password2",
            "The two password fields didn't match.",
        );
    }
    if has_errors(&errors) {
        return render_register(&inner, &visitor, &form, &errors, StatusCode::BAD_REQUEST);
    }
    match accounts::create_user(
        &inner.db,
        &form.username,
        &form.email,
        &form.password,
        false,
    )
    .await
    {
        Ok(user) => {
            tracing::info!(user = %user.username, "registered");
            sign_in(&inner, &visitor, &user, "/").await
        }
        Err(CreateUserError::UsernameTaken) => {
            // Lost a race with another registration of the same name.
            add(
                &mut errors,
                "username",
                "A user with that username already exists.",
            );
            render_register(&inner, &visitor, &form, &errors, StatusCode::BAD_REQUEST)
        }
        Err(CreateUserError::Site(e)) => Err(e),
    }
}
