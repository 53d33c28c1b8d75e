//! Finding and rewriting references in CSS: `url(...)` and `@import "..."`.
//!
//! What Django's `ManifestStaticFilesStorage` does with regular expressions, done here
//! with a small scanner over the bytes, so that:
//! * references inside comments (`/* url(old.png) */`) and inside unrelated strings
//!   (`content: "url(x)"`) are neither rewritten nor reported missing (Django rewrites
//!   them, and fails the run when a commented-out file is gone);
//! * only the URL text is replaced: quotes, spacing and everything else stay byte for byte.
//!
//! Left alone, as in Django: `data:`, `http(s):` or any other `scheme:`, protocol-relative
//! `//host/...`, fragment-only `#id`, empty URLs, and absolute paths that do not start
//! with [`crate::STATIC_URL`]. Relative URLs resolve against the CSS file's directory,
//! `/static/...` against the static root; `?query` and `#fragment` suffixes
//! (`font.woff2?#iefix`) are kept after the hashed name. `%XX` escapes are decoded to
//! find the file and kept in the rewritten URL; CSS backslash escapes are not decoded.
//! Not handled (nor by Django's default patterns): `image-set("x.png" 1x)` strings and
//! `sourceMappingURL` comments.

use crate::hash::split_ext;
use crate::manifest::STATIC_URL;
use crate::urlpath;

/// One reference found in a CSS file: the byte range of its URL text and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CssRef {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) url: String,
}

/// Where a reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Somewhere else (scheme, `//host`, `#frag`, non-static absolute path): leave it.
    External,
    /// A name relative to the static root; `path_len` is the length of the URL's path
    /// part (before `?`/`#`).
    Local { name: String, path_len: usize },
    /// Relative but cannot be one of ours (climbs above the root, names a directory,
    /// escapes to invalid UTF-8).
    Unresolvable,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'\\' || b >= 0x80
}

fn starts_with_ignore_case(haystack: &[u8], at: usize, needle: &[u8]) -> bool {
    haystack
        .get(at..at + needle.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(needle))
}

fn skip_ws(css: &[u8], mut i: usize) -> usize {
    while i < css.len() && css[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index of the closing `quote` of a string whose content starts at `i`, honouring
/// backslash escapes; `None` if the string is unterminated (ends at a newline or EOF).
fn string_end(css: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    while i < css.len() {
        match css[i] {
            b'\\' => i += 2,
            b'\n' | b'\r' | b'\x0c' => return None,
            b if b == quote => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Record the text `css[start..end]`, trimmed of whitespace, as a reference.
fn push_ref(css: &[u8], mut start: usize, mut end: usize, out: &mut Vec<CssRef>) {
    while start < end && css[start].is_ascii_whitespace() {
        start += 1;
    }
    while end > start && css[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    if let Ok(url) = std::str::from_utf8(&css[start..end]) {
        out.push(CssRef {
            start,
            end,
            url: url.to_owned(),
        });
    }
}

/// Parse `url(` at `i` (already matched); returns the index after the `)`.
fn scan_url(css: &[u8], i: usize, out: &mut Vec<CssRef>) -> usize {
    let open = i + 4;
    let j = skip_ws(css, open);
    match css.get(j) {
        Some(&q @ (b'"' | b'\'')) => {
            let Some(close) = string_end(css, j + 1, q) else {
                return open;
            };
            let after = skip_ws(css, close + 1);
            if css.get(after) == Some(&b')') {
                push_ref(css, j + 1, close, out);
                after + 1
            } else {
                close + 1
            }
        }
        _ => {
            let mut k = j;
            while k < css.len() && css[k] != b')' {
                let b = css[k];
                if b == b'"' || b == b'\'' || b == b'(' || b == b'\\' {
                    // Not a valid unquoted url(); leave it to the main loop.
                    return open;
                }
                k += 1;
            }
            if k < css.len() {
                push_ref(css, j, k, out);
                k + 1
            } else {
                open
            }
        }
    }
}

/// Every `url(...)` and `@import "..."` reference outside comments and strings.
pub(crate) fn find_refs(css: &[u8]) -> Vec<CssRef> {
    let mut refs = Vec::new();
    let mut i = 0;
    while i < css.len() {
        let b = css[i];
        if b == b'/' && css.get(i + 1) == Some(&b'*') {
            i = match css[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(pos) => i + 2 + pos + 2,
                None => css.len(),
            };
        } else if b == b'"' || b == b'\'' {
            i = string_end(css, i + 1, b).map_or(i + 1, |end| end + 1);
        } else if b == b'\\' {
            i += 2;
        } else if (b == b'u' || b == b'U')
            && starts_with_ignore_case(css, i, b"url(")
            && (i == 0 || !is_ident_byte(css[i - 1]))
        {
            i = scan_url(css, i, &mut refs);
        } else if b == b'@' && starts_with_ignore_case(css, i, b"@import") {
            let j = skip_ws(css, i + 7);
            match css.get(j) {
                Some(&q @ (b'"' | b'\'')) => match string_end(css, j + 1, q) {
                    Some(close) => {
                        push_ref(css, j + 1, close, &mut refs);
                        i = close + 1;
                    }
                    None => i = j + 1,
                },
                _ if starts_with_ignore_case(css, j, b"url(") => i = scan_url(css, j, &mut refs),
                // Garbage: the main loop takes it from here.
                _ => i = j.max(i + 1),
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// Where `url`, found in the CSS file `css_name`, points.
pub(crate) fn resolve(css_name: &str, url: &str) -> Target {
    if url.is_empty() || url.starts_with('#') || url.starts_with("//") || urlpath::has_scheme(url) {
        return Target::External;
    }
    let path_len = url.find(['?', '#']).unwrap_or(url.len());
    let path = &url[..path_len];
    if path.is_empty() {
        return Target::External;
    }
    let Some(decoded) = urlpath::decode(path) else {
        return Target::Unresolvable;
    };
    let joined = if let Some(rest) = decoded.strip_prefix(STATIC_URL) {
        rest.to_owned()
    } else if decoded.starts_with('/') {
        return Target::External;
    } else {
        match css_name.rfind('/') {
            Some(pos) => format!("{}/{decoded}", &css_name[..pos]),
            None => decoded,
        }
    };
    if joined.ends_with('/') {
        return Target::Unresolvable;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Target::Unresolvable;
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Target::Unresolvable;
    }
    Target::Local {
        name: parts.join("/"),
        path_len,
    }
}

/// The URL to write instead of `url`, which resolved to `name` (found in `css_name`),
/// now that `name`'s hashed name is `hashed`.
///
/// Normally only the last path segment changes (`../img/a%20b.png?x` →
/// `../img/a%20b.<hash>.png?x`), keeping the author's spelling. If the last segment is
/// not the file's base name (e.g. `a.png/.`), a fresh relative URL is built instead.
pub(crate) fn rewrite_url(
    css_name: &str,
    url: &str,
    path_len: usize,
    name: &str,
    hashed: &str,
) -> String {
    let (path, suffix) = url.split_at(path_len);
    let seg_start = path.rfind('/').map_or(0, |p| p + 1);
    let segment = &path[seg_start..];
    let base = name.rsplit('/').next().unwrap_or(name);
    let hashed_base = hashed.rsplit('/').next().unwrap_or(hashed);
    let (stem, ext) = split_ext(base);
    // hashed_base = stem + ".<hash>" + ext
    let hash_part = hashed_base
        .get(stem.len()..hashed_base.len().saturating_sub(ext.len()))
        .unwrap_or_default();

    if urlpath::decode(segment).as_deref() == Some(base) && segment.ends_with(ext) {
        let seg_stem = &segment[..segment.len() - ext.len()];
        return format!("{}{seg_stem}{hash_part}{ext}{suffix}", &path[..seg_start]);
    }
    format!("{}{suffix}", relative_url(css_name, hashed))
}

/// A relative, percent-encoded URL from the directory of `from` to `to`.
fn relative_url(from: &str, to: &str) -> String {
    let from_dir: Vec<&str> = from.split('/').collect();
    let from_dir = &from_dir[..from_dir.len().saturating_sub(1)];
    let to_parts: Vec<&str> = to.split('/').collect();
    let common = from_dir
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count()
        .min(to_parts.len().saturating_sub(1));
    let mut out = "../".repeat(from_dir.len() - common);
    out.push_str(&urlpath::encode_path(&to_parts[common..].join("/"), false));
    out
}

/// `css` with each `(start, end, text)` range replaced; ranges must be sorted and disjoint.
pub(crate) fn splice(css: &[u8], replacements: &[(usize, usize, String)]) -> Vec<u8> {
    let extra: usize = replacements.iter().map(|r| r.2.len()).sum();
    let mut out = Vec::with_capacity(css.len() + extra);
    let mut at = 0;
    for (start, end, text) in replacements {
        out.extend_from_slice(&css[at..*start]);
        out.extend_from_slice(text.as_bytes());
        at = *end;
    }
    out.extend_from_slice(&css[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(css: &str) -> Vec<String> {
        find_refs(css.as_bytes())
            .into_iter()
            .map(|r| r.url)
            .collect()
    }

    #[test]
    fn finds_url_forms() {
        assert_eq!(
            urls(r#"a{b:url(x.png)} c{d:URL( "y z.png" )} e{f:url( 'w.png' )}"#),
            ["x.png", "y z.png", "w.png"]
        );
        assert_eq!(
            urls("@import 'a.css'; @import \"b.css\" screen; @import url(c.css);@import\"d.css\";@import url(e.css);"),
            ["a.css", "b.css", "c.css", "d.css", "e.css"]
        );
    }

    #[test]
    fn ignores_comments_strings_and_lookalikes() {
        assert_eq!(
            urls(
                r#"/* url(old.png) */ a{content:"url(s.png)"} b{x:myurl(n.png)} c{y:url(ok.png)}"#
            ),
            ["ok.png"]
        );
        assert_eq!(urls("a{b:url(unterminated"), Vec::<String>::new());
        assert_eq!(urls("/* never closed url(x.png)"), Vec::<String>::new());
        assert_eq!(urls(r#"a{b:url("it\"s.png")}"#), [r#"it\"s.png"#]);
    }

    #[test]
    fn ranges_point_at_the_url_text() {
        let css = b"a{b:url( 'x.png' )}";
        let r = &find_refs(css)[0];
        assert_eq!(&css[r.start..r.end], b"x.png");
    }

    #[test]
    fn resolution() {
        let local = |name: &str, path_len| Target::Local {
            name: name.to_owned(),
            path_len,
        };
        assert_eq!(
            resolve("css/site.css", "../img/a.png"),
            local("img/a.png", 12)
        );
        assert_eq!(
            resolve("css/site.css", "a%20b.png"),
            local("css/a b.png", 9)
        );
        assert_eq!(
            resolve("css/site.css", "f.woff2?#iefix"),
            local("css/f.woff2", 7)
        );
        assert_eq!(resolve("site.css", "./x/../y.png"), local("y.png", 12));
        assert_eq!(
            resolve("css/site.css", "/static/img/a.png"),
            local("img/a.png", 17)
        );
        for external in [
            "data:image/png;base64,AAAA",
            "http://x/a.png",
            "HTTPS://x/a.png",
            "//cdn/a.png",
            "#frag",
            "/other/a.png",
            "",
            "?v=1",
        ] {
            assert_eq!(
                resolve("css/site.css", external),
                Target::External,
                "{external}"
            );
        }
        assert_eq!(resolve("css/site.css", "../../x.png"), Target::Unresolvable);
        assert_eq!(resolve("css/site.css", "dir/"), Target::Unresolvable);
    }

    #[test]
    fn rewriting_keeps_spelling() {
        assert_eq!(
            rewrite_url(
                "css/s.css",
                "../img/a%20b.png?x#y",
                16,
                "img/a b.png",
                "img/a b.0123456789ab.png"
            ),
            "../img/a%20b.0123456789ab.png?x#y"
        );
        assert_eq!(
            rewrite_url(
                "css/s.css",
                "LICENSE",
                7,
                "css/LICENSE",
                "css/LICENSE.0123456789ab"
            ),
            "LICENSE.0123456789ab"
        );
        // Last segment is not the base name: a fresh relative URL.
        assert_eq!(
            rewrite_url(
                "css/s.css",
                "../img/a.png/.",
                14,
                "img/a.png",
                "img/a.0123456789ab.png"
            ),
            "../img/a.0123456789ab.png"
        );
        assert_eq!(relative_url("a/b/c.css", "a/x y.png"), "../x%20y.png");
        assert_eq!(relative_url("c.css", "a/b.png"), "a/b.png");
        assert_eq!(relative_url("a/c.css", "a/b.png"), "b.png");
    }

    #[test]
    fn splicing() {
        assert_eq!(
            splice(b"0123456789", &[(1, 3, "ab".into()), (5, 6, "XYZ".into())]),
            b"0ab34XYZ6789"
        );
    }
}
