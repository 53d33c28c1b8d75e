//! GIFT text as characters that know whether they were escaped and on which line they
//! stand, so the parser can look for syntax (`{`, `=`, `->`, `####`) without being fooled
//! by `\=` and can point errors at a line. Moodle does the same with placeholder strings
//! (`escapedchar_pre`); a flag per character cannot collide with text.

use super::FORMAT_MARKERS;

/// One character of a question's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ch {
    pub(super) c: char,
    /// Written with a backslash: never syntax.
    pub(super) esc: bool,
    /// 1-based line in the file.
    pub(super) line: usize,
}

/// Appends one line's characters, resolving escapes. A backslash before anything but
/// `\ ~ = # { } : n` is a plain backslash, as in Moodle.
pub(super) fn scan_line(text: &str, line: usize, out: &mut Vec<Ch>) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                let escaped = match next {
                    '\\' | '~' | '=' | '#' | '{' | '}' | ':' => Some(next),
                    'n' => Some('\n'),
                    _ => None,
                };
                if let Some(e) = escaped {
                    chars.next();
                    out.push(Ch {
                        c: e,
                        esc: true,
                        line,
                    });
                    continue;
                }
            }
        }
        out.push(Ch {
            c,
            esc: false,
            line,
        });
    }
}

/// The position of the first unescaped `c`.
pub(super) fn find(chs: &[Ch], c: char) -> Option<usize> {
    chs.iter().position(|x| !x.esc && x.c == c)
}

/// The position of the first unescaped occurrence of `pat` (non-empty).
pub(super) fn find_seq(chs: &[Ch], pat: &str) -> Option<usize> {
    let pat: Vec<char> = pat.chars().collect();
    if pat.is_empty() {
        return None;
    }
    chs.windows(pat.len())
        .position(|w| w.iter().zip(&pat).all(|(x, p)| !x.esc && x.c == *p))
}

/// Whether `chs` starts with the unescaped `pat`.
pub(super) fn starts_with(chs: &[Ch], pat: &str) -> bool {
    let n = pat.chars().count();
    chs.len() >= n && find_seq(&chs[..n], pat) == Some(0)
}

/// Without leading and trailing whitespace (escaped `\n` included, as Moodle trims after
/// unescaping).
pub(super) fn trim(chs: &[Ch]) -> &[Ch] {
    let start = chs.iter().position(|x| !x.c.is_whitespace());
    let end = chs.iter().rposition(|x| !x.c.is_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => &chs[s..=e],
        _ => &[],
    }
}

/// Drops one leading format marker (`[markdown]`, ...), which Moodle accepts before any
/// text.
pub(super) fn strip_format(chs: &[Ch]) -> &[Ch] {
    let chs = trim(chs);
    for marker in FORMAT_MARKERS {
        if starts_with(chs, marker) {
            return &chs[marker.chars().count()..];
        }
    }
    chs
}

/// The text, trimmed.
pub(super) fn text(chs: &[Ch]) -> String {
    trim(chs).iter().map(|x| x.c).collect()
}

/// The text, trimmed, `None` when blank.
pub(super) fn optional_text(chs: &[Ch]) -> Option<String> {
    let t = text(chs);
    (!t.is_empty()).then_some(t)
}

/// Splits at every unescaped character in `markers`: the part before the first marker, then
/// each marker with its line and the part up to the next one.
pub(super) fn split_at_markers<'a>(
    chs: &'a [Ch],
    markers: &[char],
) -> (&'a [Ch], Vec<(Ch, &'a [Ch])>) {
    let is_marker = |x: &Ch| !x.esc && markers.contains(&x.c);
    let first = chs.iter().position(is_marker).unwrap_or(chs.len());
    let mut parts = Vec::new();
    let mut i = first;
    while let Some(&m) = chs.get(i) {
        let end = chs[i + 1..]
            .iter()
            .position(is_marker)
            .map_or(chs.len(), |p| i + 1 + p);
        parts.push((m, &chs[i + 1..end]));
        i = end;
    }
    (&chs[..first], parts)
}
