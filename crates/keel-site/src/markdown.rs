//! Markdown for posts: rendered with pulldown-cmark, then sanitized with ammonia, so a
//! post can never carry a script, an event handler or a `javascript:` link into a page,
//! whoever wrote it. Also the plain-text excerpt and the slug made from a title.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_TASKLISTS
}

/// Markdown → sanitized HTML.
pub fn render(markdown: &str) -> String {
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(markdown, options()));
    ammonia::Builder::default()
        // Links in posts open in place but tell the target nothing about the reader.
        .link_rel(Some("noopener noreferrer"))
        .add_tag_attributes("code", &["class"])
        .add_tag_attributes("input", &["type", "checked", "disabled"])
        .add_tags(&["input"])
        .clean(&html)
        .to_string()
}

/// The first `max_chars` characters of the post's text (no markup), cut at a word.
pub fn excerpt(markdown: &str, max_chars: usize) -> String {
    let mut text = String::new();
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            Event::End(TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item) => text.push(' '),
            Event::Start(Tag::CodeBlock(_)) => text.push(' '),
            _ => {}
        }
        if text.chars().count() > max_chars * 2 {
            break;
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::new();
    for word in words {
        if out.chars().count() + word.chars().count() + 1 > max_chars {
            out.push('…');
            return out;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A URL slug from a title: lowercase ASCII letters and digits joined by single dashes;
/// `post` when nothing is left (a title in another script, say).
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 80 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "post".to_owned()
    } else {
        slug
    }
}

/// Whether a slug typed in the admin is usable as it is.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 100
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_handlers_are_removed() {
        let html = render(
            "Hello <script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
    }

    #[test]
    fn markdown_renders() {
        let html = render("# Title\n\nSome *emphasis* and `code`.\n\n```rust\nfn main() {}\n```\n");
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>emphasis</em>"), "{html}");
        assert!(html.contains("<code class=\"language-rust\">"), "{html}");
    }

    #[test]
    fn excerpts_are_plain_and_cut_at_words() {
        let e = excerpt("# Head\n\nOne **two** three four five six", 20);
        assert_eq!(e, "Head One two three…");
        assert_eq!(excerpt("short", 20), "short");
    }

    #[test]
    fn slugs() {
        assert_eq!(
            slugify("Running keel behind nginx!"),
            "running-keel-behind-nginx"
        );
        assert_eq!(slugify("  --Ünïcode--  "), "n-code");
        assert_eq!(slugify("日本語"), "post");
        assert!(valid_slug("a-b-1"));
        for bad in ["", "-a", "a-", "a--b", "A", "a b", "a/b", "../x"] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
