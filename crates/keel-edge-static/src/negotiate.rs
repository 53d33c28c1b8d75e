//! `Accept-Encoding` → which precompressed variant to send.
//!
//! Only precompressed files are sent encoded (nginx's `gzip_static on` plus the
//! third-party `brotli_static on`); nothing is compressed per request, because every
//! compressible file already has its `.br`/`.gz` from collectstatic and compressing a
//! 9 KB file per request would cost more than serving it.
//!
//! Rules (RFC 9110 §12.5.3):
//! * no `Accept-Encoding` header → identity (as nginx; the RFC would allow anything);
//! * a coding is acceptable when its weight, or else the weight of `*`, is above 0;
//!   `q=0` refuses it; a malformed weight refuses that element;
//! * among acceptable variants that exist on disk the highest weight wins, ties go to
//!   **br** (smaller) before gzip; `x-gzip` counts as gzip;
//! * identity competes only when the client lists it (or `*`) explicitly: a client that
//!   writes `gzip;q=0.5` alone still wants gzip over identity, and browsers never weigh
//!   identity.

use http::header::{HeaderMap, ACCEPT_ENCODING};
use keel_static::Encoding;

/// Weights in thousandths, as the RFC's three decimal places allow.
type Weight = u16;

#[derive(Default)]
struct Weights {
    br: Option<Weight>,
    gzip: Option<Weight>,
    identity: Option<Weight>,
    star: Option<Weight>,
}

/// Choose the encoding to send, given which variants exist (`has_br`, `has_gzip`).
/// `None` means identity.
pub(crate) fn choose(headers: &HeaderMap, has_br: bool, has_gzip: bool) -> Option<Encoding> {
    choose_from(
        headers
            .get_all(ACCEPT_ENCODING)
            .iter()
            .map(|v| v.as_bytes()),
        has_br,
        has_gzip,
    )
}

/// [`choose`] over the raw `Accept-Encoding` field values of a request.
pub(crate) fn choose_from<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    has_br: bool,
    has_gzip: bool,
) -> Option<Encoding> {
    if !has_br && !has_gzip {
        return None;
    }
    let mut weights = Weights::default();
    let mut seen = false;
    for value in values {
        seen = true;
        parse_into(value, &mut weights);
    }
    if !seen {
        return None;
    }
    let weight = |explicit: Option<Weight>| explicit.or(weights.star).unwrap_or(0);
    let br = if has_br { weight(weights.br) } else { 0 };
    let gzip = if has_gzip { weight(weights.gzip) } else { 0 };
    let (best, encoding) = if br >= gzip {
        (br, Encoding::Brotli)
    } else {
        (gzip, Encoding::Gzip)
    };
    if best == 0 {
        return None;
    }
    // Identity only takes part when named (directly or via `*`).
    let identity = weights.identity.or(weights.star).unwrap_or(0);
    if weights.identity.is_some() && identity > best {
        return None;
    }
    Some(encoding)
}

/// Parse one header value (`gzip, deflate;q=0.5, br;q=1.0`) into `weights`. When a
/// coding is listed twice the last one wins.
fn parse_into(value: &[u8], weights: &mut Weights) {
    for element in value.split(|&b| b == b',') {
        let mut parts = element.split(|&b| b == b';');
        let coding = parts.next().unwrap_or_default().trim_ascii();
        if coding.is_empty() {
            continue;
        }
        let mut weight = Some(1000);
        for param in parts {
            let param = param.trim_ascii();
            if let Some(q) = param
                .strip_prefix(b"q=")
                .or_else(|| param.strip_prefix(b"Q="))
            {
                weight = parse_weight(q.trim_ascii());
            }
        }
        // A malformed weight makes the element unacceptable rather than acceptable.
        let weight = weight.unwrap_or(0);
        let slot = if coding.eq_ignore_ascii_case(b"br") {
            &mut weights.br
        } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            &mut weights.gzip
        } else if coding.eq_ignore_ascii_case(b"identity") {
            &mut weights.identity
        } else if coding == b"*" {
            &mut weights.star
        } else {
            continue;
        };
        *slot = Some(weight);
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
fn parse_weight(q: &[u8]) -> Option<Weight> {
    let (int, frac) = match q.iter().position(|&b| b == b'.') {
        Some(dot) => (q.get(..dot)?, q.get(dot + 1..)?),
        None => (q, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |d| Weight::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn pick(values: &[&str]) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        choose(&headers, true, true)
    }

    #[test]
    fn browsers_get_br() {
        assert_eq!(pick(&["gzip, deflate, br, zstd"]), Some(Encoding::Brotli));
        assert_eq!(pick(&["gzip, deflate"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["x-gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["gzip", "br"]), Some(Encoding::Brotli));
        assert_eq!(pick(&["*"]), Some(Encoding::Brotli));
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[""]), None);
        assert_eq!(pick(&["deflate"]), None);
    }

    #[test]
    fn weights_are_respected() {
        assert_eq!(pick(&["br;q=0, gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=0, gzip;q=0"]), None);
        assert_eq!(pick(&["br;q=0.5, gzip;q=0.8"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=0.8, gzip;q=0.8"]), Some(Encoding::Brotli));
        assert_eq!(pick(&["*;q=0, gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["*, br;q=0"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["gzip;q=0.5"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["gzip;q=0.5, identity"]), None);
        assert_eq!(pick(&["gzip, identity;q=0.5"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br ; q=1.000"]), Some(Encoding::Brotli));
        assert_eq!(pick(&["br;q=2, gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=0.0001, gzip"]), Some(Encoding::Gzip));
        assert_eq!(pick(&["br;q=, gzip"]), Some(Encoding::Gzip));
    }

    #[test]
    fn only_existing_variants() {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br, gzip"));
        assert_eq!(choose(&headers, false, true), Some(Encoding::Gzip));
        assert_eq!(choose(&headers, true, false), Some(Encoding::Brotli));
        assert_eq!(choose(&headers, false, false), None);
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(choose(&headers, false, true), None);
    }

    #[test]
    fn weight_grammar() {
        assert_eq!(parse_weight(b"1"), Some(1000));
        assert_eq!(parse_weight(b"1.000"), Some(1000));
        assert_eq!(parse_weight(b"0.5"), Some(500));
        assert_eq!(parse_weight(b"0.05"), Some(50));
        assert_eq!(parse_weight(b"0"), Some(0));
        assert_eq!(parse_weight(b"0."), Some(0));
        assert_eq!(parse_weight(b"1.5"), None);
        assert_eq!(parse_weight(b"0.1234"), None);
        assert_eq!(parse_weight(b"abc"), None);
        assert_eq!(parse_weight(b""), None);
    }
}
