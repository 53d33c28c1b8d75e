//! Templates: Jinja syntax (minijinja), HTML autoescaping on, compiled into the binary and
//! overridable one file at a time from a templates directory — Django's `TEMPLATES['DIRS']`
//! in front of the app's own templates.
//!
//! `static("css/site.css")` in a template gives the collectstatic manifest's hashed URL,
//! like Django's `{% static %}` with `ManifestStaticFilesStorage`; a name that was not
//! collected falls back to its plain `/static/` URL.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, Value};

use crate::error::SiteError;

/// The templates compiled into the binary: `(name, source)`.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("_forms.html", include_str!("../templates/_forms.html")),
    ("_posts.html", include_str!("../templates/_posts.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("post.html", include_str!("../templates/post.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("register.html", include_str!("../templates/register.html")),
    ("feedback.html", include_str!("../templates/feedback.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("events.html", include_str!("../templates/events.html")),
    ("logout.html", include_str!("../templates/logout.html")),
    (
        "quiz/list.html",
        include_str!("../templates/quiz/list.html"),
    ),
    (
        "quiz/detail.html",
        include_str!("../templates/quiz/detail.html"),
    ),
    (
        "quiz/attempt.html",
        include_str!("../templates/quiz/attempt.html"),
    ),
    (
        "quiz/result.html",
        include_str!("../templates/quiz/result.html"),
    ),
    (
        "quiz/history.html",
        include_str!("../templates/quiz/history.html"),
    ),
    (
        "quiz/_live.html",
        include_str!("../templates/quiz/_live.html"),
    ),
    (
        "interview/index.html",
        include_str!("../templates/interview/index.html"),
    ),
    (
        "interview/session.html",
        include_str!("../templates/interview/session.html"),
    ),
    (
        "interview/report.html",
        include_str!("../templates/interview/report.html"),
    ),
    (
        "admin/interview_banks.html",
        include_str!("../templates/admin/interview_banks.html"),
    ),
    (
        "admin/interview_bank.html",
        include_str!("../templates/admin/interview_bank.html"),
    ),
    (
        "quiz/live_join.html",
        include_str!("../templates/quiz/live_join.html"),
    ),
    (
        "quiz/live_play.html",
        include_str!("../templates/quiz/live_play.html"),
    ),
    (
        "quiz/live_host.html",
        include_str!("../templates/quiz/live_host.html"),
    ),
    (
        "admin/quizzes.html",
        include_str!("../templates/admin/quizzes.html"),
    ),
    (
        "admin/quiz_import.html",
        include_str!("../templates/admin/quiz_import.html"),
    ),
    (
        "admin/quiz_form.html",
        include_str!("../templates/admin/quiz_form.html"),
    ),
    (
        "admin/quiz_delete.html",
        include_str!("../templates/admin/quiz_delete.html"),
    ),
    (
        "admin/quiz_analysis.html",
        include_str!("../templates/admin/quiz_analysis.html"),
    ),
    (
        "admin/question_form.html",
        include_str!("../templates/admin/question_form.html"),
    ),
    (
        "admin/index.html",
        include_str!("../templates/admin/index.html"),
    ),
    (
        "admin/post_form.html",
        include_str!("../templates/admin/post_form.html"),
    ),
    (
        "admin/post_delete.html",
        include_str!("../templates/admin/post_delete.html"),
    ),
    (
        "admin/feedback.html",
        include_str!("../templates/admin/feedback.html"),
    ),
];

/// The template environment, shared by all requests.
#[derive(Debug, Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl Templates {
    /// Templates from `override_dir` where it has a file of that name, else the built-in
    /// ones; static URLs from `manifest`.
    pub fn new(
        override_dir: Option<PathBuf>,
        manifest: Option<keel_static::Manifest>,
    ) -> Result<Templates, SiteError> {
        if let Some(dir) = &override_dir {
            if !dir.is_dir() {
                return Err(SiteError::Config(format!(
                    "templates directory {} does not exist",
                    dir.display()
                )));
            }
        }
        let mut env = Environment::new();
        env.set_loader(move |name| load(override_dir.as_deref(), name));
        let manifest = Arc::new(manifest.unwrap_or_default());
        env.add_function("static", move |name: &str| -> Value {
            // The manifest's URLs are percent-encoded already: nothing to escape.
            Value::from_safe_string(
                manifest
                    .url(name)
                    .unwrap_or_else(|| format!("/static/{}", name.trim_start_matches('/'))),
            )
        });
        env.set_formatter(html_formatter);
        let templates = Templates { env: Arc::new(env) };
        // Load and compile every template now: a syntax error in an override is a start-up
        // error with the file named, not a 500 on the first visit.
        for (name, _) in TEMPLATES {
            templates.env.get_template(name)?;
        }
        Ok(templates)
    }

    /// Renders `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, SiteError> {
        Ok(self.env.get_template(name)?.render(ctx)?)
    }
}

/// minijinja's HTML escaping also turns `/` into `&#x2f;`, which makes every URL in a page
/// unreadable; escaping `& < > " '` is what keeps text out of markup in element content and
/// in quoted attributes (Django escapes the same five).
fn html_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    match (state.auto_escape(), value.as_str()) {
        (minijinja::AutoEscape::Html, Some(text)) if !value.is_safe() => {
            let mut escaped = String::with_capacity(text.len() + 8);
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#x27;"),
                    c => escaped.push(c),
                }
            }
            out.write_str(&escaped).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "could not write")
                    .with_source(e)
            })
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn load(override_dir: Option<&Path>, name: &str) -> Result<Option<String>, minijinja::Error> {
    if let Some(dir) = override_dir {
        // Template names come from our own code and templates, but an override directory
        // is still never left: only plain relative names are looked up in it.
        let plain = Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if plain {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(source) => return Ok(Some(source)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("could not read template {}", path.display()),
                    )
                    .with_source(e))
                }
            }
        }
    }
    Ok(TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, source)| (*source).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn builtin_templates_compile_and_escape() {
        let t = Templates::new(None, None).unwrap();
        let html = t
            .render(
                "error.html",
                context! { status => 404, title => "<b>x</b>", message => "m", nav => "", csrf_token => "", site_name => "keel", tagline => "t" },
            )
            .unwrap();
        assert!(html.contains("<h1>&lt;b&gt;x&lt;/b&gt;</h1>"), "{html}");
        assert!(html.contains("href=\"/static/css/site.css\""), "{html}");
    }

    #[test]
    fn overrides_win_and_cannot_escape_their_directory() {
        let dir = std::env::temp_dir().join(format!("keel-site-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("error.html"), "custom {{ status }}").unwrap();
        let t = Templates::new(Some(dir.clone()), None).unwrap();
        assert_eq!(
            t.render("error.html", context! { status => 500 }).unwrap(),
            "custom 500"
        );
        assert_eq!(load(Some(&dir), "../etc/passwd").unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
