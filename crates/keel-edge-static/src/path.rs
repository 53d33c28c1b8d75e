//! Request path → index key: percent-decoding once and refusing everything that is not a
//! clean relative name.
//!
//! The index is a map from names to files built at load, so a request can only ever
//! reach a file that was *in* the static root then; no request path is joined onto a
//! filesystem path, and nothing here touches the disk. This module is the second wall:
//! it refuses explicitly what an attacker sends, so that escape attempts are visible (a
//! 400 in the access log) and so that the rules survive any future change to the lookup.
//!
//! # Decisions
//! **400 Bad Request** for a path that is malformed or can only be an attack:
//! * `..` or `.` segments, raw or encoded (`%2e%2e`, `.%2e`), anywhere;
//! * an encoded slash or backslash (`%2f`, `%5c`), a raw backslash;
//! * an empty segment: `//` inside the path, or a path that starts with `/` after the
//!   mount prefix (`/static//etc/passwd`: an absolute path);
//! * an invalid percent-escape (`%zz`, `%2`, `%u002e`), decoded bytes that are not UTF-8
//!   (overlong `%c0%ae`, lone `%ff`), NUL or any other control character;
//! * double encoding: a decoded name that still contains `%XX` (`%252e` → `%2e`). A file
//!   literally named with `%` + two hex digits is therefore unreachable; that is the
//!   price of never having a name that a second decoder would read differently;
//! * more than [`MAX_PATH_BYTES`] bytes.
//!
//! **404 Not Found** for a well-formed name that is never served, so its existence is
//! not confirmed: any segment starting with `.` (dotfiles, `.git/`, collectstatic's
//! `.name.keel-tmp.*`), the mount point itself and names ending in `/` (there are no
//! directory listings or index files).
//!
//! # How this differs from nginx
//! nginx decodes the path, merges `//` (`merge_slashes on`), resolves `.`/`..` itself and
//! answers 400 only when `..` climbs above `/`; `/static/css/../js/app.js` is served as
//! `js/app.js`, and `%2f` decodes to a real separator. Browsers and HTTP clients
//! normalise dot segments before sending, so a request that still carries them did not
//! come from a link; refusing it costs nothing and removes a class of bugs.

use std::borrow::Cow;

/// Longest accepted path after the mount prefix, in raw (still encoded) bytes. Longer
/// paths are refused with 400 before decoding. collectstatic names are far shorter;
/// nginx's default `large_client_header_buffers` would refuse an 8 KiB request line.
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a request path is not looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRejection {
    /// Malformed or an escape attempt: answer 400. The text is for logs.
    BadRequest(&'static str),
    /// Well formed but never served: answer 404. The text is for logs.
    NotFound(&'static str),
}

/// The index key for `raw`, the request path after the mount prefix (`"css/site.css"`
/// for `/static/css/site.css`), still percent-encoded and without the query.
///
/// Borrows `raw` when it has no escapes (the common case: no allocation).
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathRejection> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathRejection::BadRequest("path too long"));
    }
    if raw.starts_with('/') {
        return Err(PathRejection::BadRequest("absolute path or empty segment"));
    }
    let name = if raw.as_bytes().contains(&b'%') {
        Cow::Owned(decode(raw)?)
    } else {
        Cow::Borrowed(raw)
    };
    check_segments(&name)?;
    Ok(name)
}

/// Percent-decode once, refusing escapes that would change the path's structure.
fn decode(raw: &str) -> Result<String, PathRejection> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathRejection::BadRequest("invalid percent-escape"));
            };
            let decoded = hi << 4 | lo;
            // An encoded separator would turn one segment into several after decoding:
            // exactly what traversal payloads rely on.
            match decoded {
                b'/' => return Err(PathRejection::BadRequest("encoded slash")),
                b'\\' => return Err(PathRejection::BadRequest("encoded backslash")),
                _ => out.push(decoded),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let decoded =
        String::from_utf8(out).map_err(|_| PathRejection::BadRequest("escapes are not UTF-8"))?;
    if has_escape(decoded.as_bytes()) {
        return Err(PathRejection::BadRequest("double percent-encoding"));
    }
    Ok(decoded)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// True when `bytes` contains `%` followed by two hex digits.
fn has_escape(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| {
        w.first() == Some(&b'%')
            && w.get(1).copied().and_then(hex_value).is_some()
            && w.get(2).copied().and_then(hex_value).is_some()
    })
}

/// Check the decoded name segment by segment. Every segment is checked for 400-class
/// problems before any 404-class verdict, so `.x/../y` is a 400 like `a/../y`.
fn check_segments(name: &str) -> Result<(), PathRejection> {
    if name.is_empty() {
        return Err(PathRejection::NotFound(
            "mount point (no directory listing)",
        ));
    }
    let mut hidden = false;
    let mut directory = false;
    let mut segments = name.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            if segments.peek().is_none() {
                directory = true;
                continue;
            }
            return Err(PathRejection::BadRequest("empty segment (//)"));
        }
        if segment == "." || segment == ".." {
            return Err(PathRejection::BadRequest("dot segment"));
        }
        for b in segment.bytes() {
            if b < 0x20 || b == 0x7f {
                return Err(PathRejection::BadRequest("control character"));
            }
            if b == b'\\' {
                return Err(PathRejection::BadRequest("backslash"));
            }
        }
        if segment.starts_with('.') {
            hidden = true;
        }
    }
    if hidden {
        return Err(PathRejection::NotFound("dotfile or dot-directory"));
    }
    if directory {
        return Err(PathRejection::NotFound("directory (no listing)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(raw: &str) -> bool {
        matches!(normalize(raw), Err(PathRejection::BadRequest(_)))
    }

    fn not_found(raw: &str) -> bool {
        matches!(normalize(raw), Err(PathRejection::NotFound(_)))
    }

    #[test]
    fn clean_names_pass_and_borrow() {
        assert!(matches!(
            normalize("css/site.css"),
            Ok(Cow::Borrowed("css/site.css"))
        ));
        assert_eq!(normalize("img/a%20b.png").unwrap(), "img/a b.png");
        assert_eq!(normalize("caf%C3%A9.txt").unwrap(), "café.txt");
        assert_eq!(normalize("a%25zz.txt").unwrap(), "a%zz.txt");
        assert_eq!(normalize("site..css").unwrap(), "site..css");
        assert_eq!(normalize("a+b.css").unwrap(), "a+b.css");
    }

    #[test]
    fn structure_attacks_are_400() {
        for raw in [
            "..",
            "../secret",
            "css/../../secret",
            "%2e%2e/secret",
            "%2E%2E/secret",
            ".%2e/secret",
            "css/%2e",
            "./css/site.css",
            "..%2fsecret",
            "..%2Fsecret",
            "..%5csecret",
            "..\\secret",
            "/etc/passwd",
            "%2fetc/passwd",
            "css//site.css",
            "%252e%252e/secret",
            "%252fsecret",
            "%00",
            "a%00.css",
            "a%0a.css",
            "%zz",
            "%2",
            "%",
            "%u002e%u002e",
            "%c0%ae%c0%ae/secret",
            "%ff",
            "%e0%80%ae",
            ".hidden/../x",
        ] {
            assert!(bad(raw), "{raw:?} should be 400, got {:?}", normalize(raw));
        }
        assert!(bad(&"a/".repeat(MAX_PATH_BYTES)));
    }

    #[test]
    fn hidden_and_directories_are_404() {
        for raw in [
            "",
            ".hidden",
            "%2ehidden",
            "css/.site.css.keel-tmp.1",
            ".git/config",
            "...",
            "..;/secret",
            "css/",
        ] {
            assert!(
                not_found(raw),
                "{raw:?} should be 404, got {:?}",
                normalize(raw)
            );
        }
    }
}
