//! Writing GIFT that [`super::parse`] reads back to equal questions (and Moodle imports).

use std::fmt::Write as _;

use super::{FORMAT_MARKERS, SETTINGS_PREFIX};
use crate::model::{Choice, Kind, NumericAnswer, NumericValue, Question, BLANK};

/// Writes questions as GIFT: a `$CATEGORY:` line whenever the category changes, one
/// paragraph per question, choice blocks one answer per line.
pub fn export(questions: &[Question]) -> String {
    let mut out = String::new();
    let mut category: Option<&str> = None;
    for q in questions {
        let this = q
            .category
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if this != category {
            // An empty value resets to "no category" (keel's reading; Moodle's default).
            match this {
                Some(c) => {
                    out.push_str("$CATEGORY: ");
                    out.push_str(&escape(c));
                }
                None => out.push_str("$CATEGORY:"),
            }
            out.push_str("\n\n");
            category = this;
        }
        question(&mut out, q);
        out.push('\n');
    }
    out
}

fn question(out: &mut String, q: &Question) {
    if let Kind::Short {
        case_sensitive,
        typo_tolerance,
        ..
    } = q.kind
    {
        let mut settings = Vec::new();
        if typo_tolerance > 0 {
            settings.push(format!("typo_tolerance={typo_tolerance}"));
        }
        if case_sensitive {
            settings.push("case_sensitive=true".to_owned());
        }
        if !settings.is_empty() {
            let _ = writeln!(out, "// {SETTINGS_PREFIX} {}", settings.join(" "));
        }
    }
    if let Some(name) = q.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        let _ = write!(out, "::{}::", escape(name));
    }
    let stem = q.stem.trim();
    if matches!(q.kind, Kind::Description) {
        out.push_str(&text(stem));
        out.push('\n');
        return;
    }
    // A missing-word question: the block goes where the blank is, on one line. A blank
    // with nothing after it stays in the text (the block at the end would not recreate it).
    let gap = stem
        .find(BLANK)
        .filter(|&at| !stem[at + BLANK.len()..].trim().is_empty());
    match gap {
        Some(at) => {
            // Not trimmed: the spaces around the blank are part of the stem.
            out.push_str(&protect(&stem[..at], escape(&stem[..at])));
            out.push('{');
            let mut inline = String::new();
            block(&mut inline, q, " ");
            out.push_str(inline.trim_start());
            out.push('}');
            out.push_str(&escape(&stem[at + BLANK.len()..]));
        }
        None => {
            out.push_str(&text(stem));
            out.push_str(" {");
            let multiline = matches!(
                q.kind,
                Kind::Single { .. }
                    | Kind::Multiple { .. }
                    | Kind::Short { .. }
                    | Kind::Matching { .. }
            ) || matches!(&q.kind, Kind::Numeric { answers } if answers.len() > 1);
            if multiline {
                block(out, q, "\n\t");
                out.push_str("\n}");
            } else {
                block(out, q, " ");
                out.push('}');
            }
        }
    }
    out.push('\n');
}

/// The inside of the answer block, each answer preceded by `sep`.
fn block(out: &mut String, q: &Question, sep: &str) {
    match &q.kind {
        Kind::Single { choices } => {
            let mut right_written = false;
            for c in choices {
                let right = !right_written && c.weight == 100.0;
                right_written |= right;
                choice(out, sep, c, right);
            }
        }
        Kind::Multiple { choices } => {
            for c in choices {
                choice(out, sep, c, false);
            }
        }
        Kind::TrueFalse {
            answer,
            feedback_wrong,
            feedback_right,
        } => {
            out.push_str(if *answer { "TRUE" } else { "FALSE" });
            let wrong = non_blank(feedback_wrong);
            let right = non_blank(feedback_right);
            if wrong.is_some() || right.is_some() {
                out.push('#');
                out.push_str(&wrong.map(text).unwrap_or_default());
            }
            if let Some(r) = right {
                out.push('#');
                out.push_str(&text(r));
            }
        }
        Kind::Short { answers, .. } => {
            for a in answers {
                out.push_str(sep);
                out.push('=');
                weighted_text(out, &a.text, a.weight, 100.0);
                feedback(out, &a.feedback);
            }
        }
        Kind::Numeric { answers } => match answers.as_slice() {
            [only] if only.weight == 100.0 => {
                out.push('#');
                numeric(out, only);
            }
            _ => {
                out.push('#');
                for a in answers {
                    out.push_str(sep);
                    out.push('=');
                    if a.weight != 100.0 {
                        let _ = write!(out, "%{}%", a.weight);
                    }
                    numeric(out, a);
                }
            }
        },
        Kind::Matching { pairs } => {
            for p in pairs {
                let _ = write!(
                    out,
                    "{sep}={} -> {}",
                    text(p.left.trim()),
                    escape(p.right.trim())
                );
            }
        }
        Kind::Description => {}
    }
    if let Some(g) = non_blank(&q.general_feedback) {
        out.push_str(sep);
        out.push_str("####");
        out.push_str(&text(g));
    }
}

fn choice(out: &mut String, sep: &str, c: &Choice, right: bool) {
    out.push_str(sep);
    if right {
        out.push('=');
        weighted_text(out, &c.text, c.weight, 100.0);
    } else {
        out.push('~');
        weighted_text(out, &c.text, c.weight, 0.0);
    }
    feedback(out, &c.feedback);
}

/// `%weight%` when it is not what the marker implies, or when the text itself starts with
/// `%` (so the reader does not take the text for a weight), then the text.
fn weighted_text(out: &mut String, t: &str, weight: f64, implied: f64) {
    let t = t.trim();
    if weight != implied || t.starts_with('%') {
        let _ = write!(out, "%{weight}%");
    }
    out.push_str(&text(t));
}

fn numeric(out: &mut String, a: &NumericAnswer) {
    // `{}` on f64 prints the shortest decimal that parses back to the same value.
    match a.value {
        NumericValue::Tolerance { value, tolerance } => {
            let _ = write!(out, "{value}:{tolerance}");
        }
        NumericValue::Range { low, high } => {
            let _ = write!(out, "{low}..{high}");
        }
    }
    feedback(out, &a.feedback);
}

fn feedback(out: &mut String, f: &Option<String>) {
    if let Some(f) = non_blank(f) {
        out.push('#');
        out.push_str(&text(f));
    }
}

fn non_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A text that may start a line or follow a marker: escaped, and protected by a
/// `[markdown]` marker when it would otherwise read as a comment (`//` at the start of a
/// line) or lose a leading format marker of its own.
fn text(t: &str) -> String {
    let t = t.trim();
    protect(t, escape(t))
}

/// `escaped` (the escaped `t`) behind a `[markdown]` marker if `t` needs one (see [`text`]).
fn protect(t: &str, escaped: String) -> String {
    let t = t.trim_start();
    if t.starts_with("//") || FORMAT_MARKERS.iter().any(|m| t.starts_with(m)) {
        format!("[markdown]{escaped}")
    } else {
        escaped
    }
}

/// Escapes GIFT's special characters and writes line breaks as `\n`, so every text stays on
/// one line and can never end a paragraph.
fn escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '\\' | '~' | '=' | '#' | '{' | '}' | ':' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}
