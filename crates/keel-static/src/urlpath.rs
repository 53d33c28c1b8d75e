//! Small URL-path helpers: percent-encoding and -decoding of `/`-separated names,
//! and recognising URLs that point somewhere else (a scheme, `//host`).
//!
//! Only what the crate needs, written out to avoid a dependency: names here are file
//! names, not full URLs. The rules follow the Python functions Django's collectstatic
//! and `static()` use: decoding is lenient like `urllib.parse.unquote` (a `%` not
//! followed by two hex digits is kept literally), encoding keeps what Django's
//! `filepath_to_uri` keeps. Unlike `unquote`, a decoded name that is not UTF-8 is
//! reported as such instead of being patched with replacement characters, since it
//! cannot match any collected name.

/// Percent-encode a `/`-separated name for use in a URL path.
///
/// Keeps RFC 3986 unreserved characters and `/`; with `lenient`, also `!*()'`, the set
/// Django's `filepath_to_uri` leaves alone (so `Manifest::url` matches Django's
/// `static()`). CSS rewriting uses the strict form because `'` and `()` would end an
/// unquoted `url(...)`.
pub(crate) fn encode_path(name: &str, lenient: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')
            || (lenient && matches!(b, b'!' | b'*' | b'(' | b')' | b'\''));
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode `%XX` escapes; `None` when the result is not UTF-8 (no collected name can match).
pub(crate) fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// True for `data:…`, `http:…`, `mailto:…` and any other `scheme:` prefix (RFC 3986).
pub(crate) fn has_scheme(url: &str) -> bool {
    let mut chars = url.char_indices();
    match chars.next() {
        Some((_, c)) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    for (_, c) in chars {
        if c == ':' {
            return true;
        }
        if !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_safe_and_escapes_the_rest() {
        assert_eq!(encode_path("img/a b.png", false), "img/a%20b.png");
        assert_eq!(encode_path("x/(1)'.css", true), "x/(1)'.css");
        assert_eq!(encode_path("x/(1).css", false), "x/%281%29.css");
        assert_eq!(encode_path("é", false), "%C3%A9");
    }

    #[test]
    fn decode_is_lenient() {
        assert_eq!(decode("a%20b.png").as_deref(), Some("a b.png"));
        assert_eq!(decode("100%.png").as_deref(), Some("100%.png"));
        assert_eq!(decode("a%2").as_deref(), Some("a%2"));
        assert_eq!(decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn schemes() {
        assert!(has_scheme("data:image/png;base64,xx"));
        assert!(has_scheme("HTTP://x"));
        assert!(has_scheme("git+ssh://x"));
        assert!(!has_scheme("img/a:b.png"));
        assert!(!has_scheme("../a.png"));
        assert!(!has_scheme("1x:y"));
    }
}
