//! Conditional requests (RFC 9110 §13): `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match`, `If-Modified-Since` and `If-Range`, evaluated in the RFC's order
//! (§13.2.2) against the *selected* representation (its own ETag: the br, gzip and
//! identity forms of a file have different ETags).
//!
//! How this differs from nginx (`ngx_http_not_modified_filter_module`):
//! * `If-Modified-Since` → 304 when the file is not newer than the date (the RFC rule);
//!   nginx's default `if_modified_since exact` wants the exact date.
//! * ETags are content hashes, so a 304 survives a redeploy of unchanged files and agrees
//!   between several edges; nginx's `mtime-size` ETags change with every copy.
//! * `If-None-Match` uses weak comparison (a `W/"…"` tag from a cache matches), `If-Match`
//!   and `If-Range` strong comparison, as the RFC says; nginx does the same.

use http::header::{
    HeaderMap, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
};
use http::HeaderValue;

/// What the preconditions decide for a GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Go on and send the representation (or a range of it).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluate the preconditions for a GET/HEAD of a representation whose ETag header
/// value is `etag` (with quotes) and whose modification time is `modified_secs`
/// (seconds since the epoch), if known.
pub(crate) fn evaluate(
    headers: &HeaderMap,
    etag: &[u8],
    modified_secs: Option<u64>,
) -> Precondition {
    // Step 1/2: If-Match, else If-Unmodified-Since.
    if let Some(if_match) = headers.get(IF_MATCH) {
        if !list_matches(if_match, etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) = (
        headers.get(IF_UNMODIFIED_SINCE).and_then(parse_date),
        modified_secs,
    ) {
        if modified > since {
            return Precondition::Failed;
        }
    }
    // Step 3/4: If-None-Match, else If-Modified-Since.
    let mut none_match = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if none_match.peek().is_some() {
        if none_match.any(|value| list_matches(value, etag, Comparison::Weak)) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) = (
        headers.get(IF_MODIFIED_SINCE).and_then(parse_date),
        modified_secs,
    ) {
        if modified <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// True when a `Range` may be honoured: there is no `If-Range`, or it names the current
/// representation (strong ETag comparison, or exactly the `Last-Modified` date).
pub(crate) fn if_range_allows(
    headers: &HeaderMap,
    etag: &[u8],
    modified_secs: Option<u64>,
) -> bool {
    let Some(value) = headers.get(IF_RANGE) else {
        return true;
    };
    let bytes = value.as_bytes().trim_ascii();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        // A weak tag never matches strongly, and a list is not allowed here.
        return bytes == etag;
    }
    match (parse_date(value), modified_secs) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// Does the `#entity-tag / "*"` list in `value` match `etag` (our strong ETag, quoted)?
/// A malformed list matches nothing from the point where it breaks.
fn list_matches(value: &HeaderValue, etag: &[u8], comparison: Comparison) -> bool {
    let mut rest = value.as_bytes();
    loop {
        rest = trim_start_list(rest);
        if rest.is_empty() {
            return false;
        }
        if rest.starts_with(b"*") {
            // `*` matches any current representation; we only get here when one exists.
            return true;
        }
        let (weak, tagged) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let Some(after_quote) = tagged.strip_prefix(b"\"") else {
            return false;
        };
        let Some(close) = after_quote.iter().position(|&b| b == b'"') else {
            return false;
        };
        let opaque_with_quotes = tagged.get(..close + 2).unwrap_or_default();
        let matched = opaque_with_quotes == etag && !(weak && comparison == Comparison::Strong);
        if matched {
            return true;
        }
        rest = after_quote.get(close + 1..).unwrap_or_default();
    }
}

fn trim_start_list(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !(b == b',' || b.is_ascii_whitespace()))
        .unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// An HTTP date as seconds since the epoch; invalid dates are ignored by the caller, as
/// the RFC requires.
fn parse_date(value: &HeaderValue) -> Option<u64> {
    let text = value.to_str().ok()?;
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &[u8] = b"\"abc\"";
    // Sun, 06 Nov 1994 08:49:37 GMT
    const MODIFIED: u64 = 784_111_777;

    fn eval(pairs: &[(http::HeaderName, &str)]) -> Precondition {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        evaluate(&headers, ETAG, Some(MODIFIED))
    }

    #[test]
    fn if_none_match() {
        use Precondition::*;
        assert_eq!(eval(&[]), Proceed);
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"abc\"")]), NotModified);
        assert_eq!(eval(&[(IF_NONE_MATCH, "W/\"abc\"")]), NotModified);
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"x\", \"abc\"")]), NotModified);
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"x\",\"y\"")]), Proceed);
        assert_eq!(
            eval(&[(IF_NONE_MATCH, "\"x\""), (IF_NONE_MATCH, "\"abc\"")]),
            NotModified
        );
        assert_eq!(eval(&[(IF_NONE_MATCH, "*")]), NotModified);
        assert_eq!(eval(&[(IF_NONE_MATCH, "abc")]), Proceed);
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"a,bc\"")]), Proceed);
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"abc")]), Proceed);
        // If-None-Match present: If-Modified-Since is ignored.
        assert_eq!(
            eval(&[
                (IF_NONE_MATCH, "\"x\""),
                (IF_MODIFIED_SINCE, "Sun, 06 Nov 1994 08:49:37 GMT")
            ]),
            Proceed
        );
    }

    #[test]
    fn if_modified_since() {
        use Precondition::*;
        assert_eq!(
            eval(&[(IF_MODIFIED_SINCE, "Sun, 06 Nov 1994 08:49:37 GMT")]),
            NotModified
        );
        assert_eq!(
            eval(&[(IF_MODIFIED_SINCE, "Mon, 07 Nov 1994 08:49:37 GMT")]),
            NotModified
        );
        assert_eq!(
            eval(&[(IF_MODIFIED_SINCE, "Sat, 05 Nov 1994 08:49:37 GMT")]),
            Proceed
        );
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, "yesterday")]), Proceed);
    }

    #[test]
    fn if_match_and_unmodified_since() {
        use Precondition::*;
        assert_eq!(eval(&[(IF_MATCH, "\"abc\"")]), Proceed);
        assert_eq!(eval(&[(IF_MATCH, "*")]), Proceed);
        assert_eq!(eval(&[(IF_MATCH, "W/\"abc\"")]), Failed);
        assert_eq!(eval(&[(IF_MATCH, "\"x\"")]), Failed);
        assert_eq!(
            eval(&[(IF_UNMODIFIED_SINCE, "Sat, 05 Nov 1994 08:49:37 GMT")]),
            Failed
        );
        assert_eq!(
            eval(&[(IF_UNMODIFIED_SINCE, "Sun, 06 Nov 1994 08:49:37 GMT")]),
            Proceed
        );
    }

    #[test]
    fn if_range() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_RANGE, HeaderValue::from_str(value).unwrap());
            if_range_allows(&headers, ETAG, Some(MODIFIED))
        };
        assert!(if_range_allows(&HeaderMap::new(), ETAG, None));
        assert!(check("\"abc\""));
        assert!(!check("W/\"abc\""));
        assert!(!check("\"other\""));
        assert!(check("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(!check("Mon, 07 Nov 1994 08:49:37 GMT"));
        assert!(!check("garbage"));
    }
}
