//! Reading GIFT: paragraphs → questions (see the module doc of [`crate::gift`] for the
//! syntax and where it differs from Moodle).

use super::scan::{
    find, find_seq, optional_text, scan_line, split_at_markers, starts_with, strip_format, text,
    trim, Ch,
};
use super::SETTINGS_PREFIX;
use crate::error::ParseError;
use crate::model::{
    Choice, Kind, MatchPair, NumericAnswer, NumericValue, Question, ShortAnswer, BLANK,
};

/// Reads a GIFT file. Returns every question, or every error found (with its line).
pub fn parse(text: &str) -> Result<Vec<Question>, Vec<ParseError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut state = State::default();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        state.paragraph(&lines[start..i], start + 1);
    }
    if state.errors.is_empty() {
        Ok(state.questions)
    } else {
        Err(state.errors)
    }
}

#[derive(Default)]
struct State {
    category: Option<String>,
    questions: Vec<Question>,
    errors: Vec<ParseError>,
}

/// keel's short-answer settings (`// keel: ...`).
#[derive(Debug, Clone, Copy, Default)]
struct Settings {
    case_sensitive: bool,
    typo_tolerance: u8,
    /// The line of the comment, for errors.
    line: usize,
}

impl State {
    /// One paragraph (lines between blank lines), `first` being the 1-based number of its
    /// first line.
    fn paragraph(&mut self, lines: &[&str], first: usize) {
        let mut settings: Option<Settings> = None;
        let mut body: Vec<Ch> = Vec::new();
        for (k, raw) in lines.iter().enumerate() {
            let line = first + k;
            let trimmed = raw.trim();
            if let Some(comment) = trimmed.strip_prefix("//") {
                if let Some(rest) = comment.trim_start().strip_prefix(SETTINGS_PREFIX) {
                    if settings.is_some() {
                        self.error(
                            line,
                            "a second `// keel:` settings comment for one question",
                        );
                    }
                    match parse_settings(rest, line) {
                        Ok(s) => settings = Some(s),
                        Err(e) => self.errors.push(e),
                    }
                }
                continue;
            }
            if let Some(value) = trimmed.strip_prefix("$CATEGORY:") {
                if !body.is_empty() {
                    self.error(
                        line,
                        "a $CATEGORY: line inside a question; put a blank line before it",
                    );
                }
                let mut chs = Vec::new();
                scan_line(value, line, &mut chs);
                self.category = optional_text(&chs);
                continue;
            }
            if !body.is_empty() {
                body.push(Ch {
                    c: '\n',
                    esc: false,
                    line,
                });
            }
            scan_line(raw, line, &mut body);
        }
        if trim(&body).is_empty() {
            if let Some(s) = settings {
                self.error(
                    s.line,
                    "a `// keel:` settings comment must be followed by its question in the same paragraph",
                );
            }
            return;
        }
        let start = trim(&body).first().map_or(first, |c| c.line);
        let before = self.errors.len();
        let question = self.question(&body, start, settings);
        if let Some(q) = question {
            if let Err(problems) = q.validate() {
                self.errors
                    .extend(problems.into_iter().map(|p| ParseError::new(start, p)));
            } else if self.errors.len() == before {
                self.questions.push(q);
            }
        }
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(ParseError::new(line, message));
    }

    /// One question's text (comments removed). `None` when it had errors (recorded).
    fn question(
        &mut self,
        body: &[Ch],
        start: usize,
        settings: Option<Settings>,
    ) -> Option<Question> {
        let mut rest = trim(body);
        let mut name = None;
        if starts_with(rest, "::") {
            match find_seq(&rest[2..], "::") {
                Some(end) => {
                    name = optional_text(&rest[2..2 + end]);
                    rest = &rest[2 + end + 2..];
                }
                None => {
                    self.error(
                        start,
                        "the title is not closed: '::' without a closing '::'",
                    );
                    return None;
                }
            }
        }
        let rest = strip_format(rest);
        let open = find(rest, '{');
        let close = find(rest, '}');
        let (stem, block) = match (open, close) {
            (None, None) => (text(rest), None),
            (Some(o), None) => {
                self.error(rest[o].line, "'{' without a closing '}'");
                return None;
            }
            (None, Some(c)) => {
                self.error(
                    rest[c].line,
                    "'}' without an opening '{' (write \\} for a brace)",
                );
                return None;
            }
            (Some(o), Some(c)) if c < o => {
                self.error(
                    rest[c].line,
                    "'}' without an opening '{' (write \\} for a brace)",
                );
                return None;
            }
            (Some(o), Some(c)) => {
                let block = &rest[o + 1..c];
                if let Some(n) = find(block, '{') {
                    self.error(
                        block[n].line,
                        "'{' inside an answer block (write \\{ for a brace)",
                    );
                    return None;
                }
                let after = &rest[c + 1..];
                if let Some(n) = after
                    .iter()
                    .position(|x| !x.esc && (x.c == '{' || x.c == '}'))
                {
                    self.error(
                        after[n].line,
                        "a second answer block in one question: separate questions with a blank line",
                    );
                    return None;
                }
                let before = &rest[..o];
                let stem = if trim(after).is_empty() {
                    text(before)
                } else {
                    let mut s: String = before.iter().map(|x| x.c).collect();
                    s.push_str(BLANK);
                    s.extend(after.iter().map(|x| x.c));
                    s.trim().to_owned()
                };
                (stem, Some((block, rest[o].line)))
            }
        };
        let (kind, general_feedback) = match block {
            None => (Kind::Description, None),
            Some((block, line)) => self.block(block, line, settings)?,
        };
        if let Some(s) = settings {
            if !matches!(kind, Kind::Short { .. }) {
                self.error(
                    s.line,
                    "`// keel:` settings apply only to short-answer questions",
                );
                return None;
            }
        }
        Some(Question {
            name,
            category: self.category.clone(),
            stem,
            kind,
            general_feedback,
        })
    }

    /// The answer block (between the braces), `line` being the line of its `{`.
    fn block(
        &mut self,
        block: &[Ch],
        line: usize,
        settings: Option<Settings>,
    ) -> Option<(Kind, Option<String>)> {
        let (answers, general_feedback) = match find_seq(block, "####") {
            Some(p) => (&block[..p], optional_text(strip_format(&block[p + 4..]))),
            None => (block, None),
        };
        let answers = trim(answers);
        let errors_before = self.errors.len();
        let kind = if answers.is_empty() {
            self.error(
                line,
                "essay questions are not supported (the answer block is empty)",
            );
            return None;
        } else if answers.first().is_some_and(|x| !x.esc && x.c == '#') {
            self.numeric(&answers[1..], line)
        } else if find(answers, '~').is_some() {
            self.choices(answers, line)
        } else if is_matching(answers) {
            self.matching(answers, line)
        } else if let Some(kind) = true_false(answers) {
            kind
        } else {
            self.short(answers, settings)
        };
        (self.errors.len() == errors_before).then_some((kind, general_feedback))
    }

    fn choices(&mut self, answers: &[Ch], line: usize) -> Kind {
        let (lead, parts) = split_at_markers(answers, &['=', '~']);
        if !trim(lead).is_empty() {
            self.error(
                lead[0].line,
                "text before the first answer: each answer starts with '=' (right) or '~' (wrong)",
            );
        }
        let mut choices = Vec::new();
        // (index, explicit weight?) of every '=' answer.
        let mut right: Vec<(usize, bool)> = Vec::new();
        for (marker, part) in parts {
            let Some(answer) = self.answer(part, marker.line) else {
                continue;
            };
            let default = if marker.c == '=' { 100.0 } else { 0.0 };
            if marker.c == '=' {
                right.push((choices.len(), answer.weight.is_some()));
            }
            choices.push(Choice {
                text: answer.text,
                weight: answer.weight.unwrap_or(default),
                feedback: answer.feedback,
            });
        }
        if choices.is_empty() {
            self.error(line, "no answers in the answer block");
        }
        // Single: exactly one '=' worth the full mark; other '=' may carry explicit partial
        // weights, as `~%n%` choices may.
        let full = right
            .iter()
            .filter(|(i, _)| choices.get(*i).is_some_and(|c| c.weight == 100.0))
            .count();
        if full == 1 {
            return Kind::Single { choices };
        }
        // Several unweighted '=' share the full mark.
        let shared = right.iter().filter(|(_, explicit)| !explicit).count();
        if shared > 1 {
            for (i, explicit) in &right {
                if let (false, Some(c)) = (explicit, choices.get_mut(*i)) {
                    c.weight = 100.0 / shared as f64;
                }
            }
        }
        Kind::Multiple { choices }
    }

    fn short(&mut self, answers: &[Ch], settings: Option<Settings>) -> Kind {
        let (lead, parts) = split_at_markers(answers, &['=']);
        let mut list = Vec::new();
        // Moodle reads `{cat}` as a short answer "cat" worth 100%.
        let lead = trim(lead);
        let all = (!lead.is_empty())
            .then(|| (lead[0].line, lead))
            .into_iter()
            .chain(parts.into_iter().map(|(m, p)| (m.line, p)));
        for (line, part) in all {
            if let Some(a) = self.answer(part, line) {
                list.push(ShortAnswer {
                    text: a.text,
                    weight: a.weight.unwrap_or(100.0),
                    feedback: a.feedback,
                });
            }
        }
        let s = settings.unwrap_or_default();
        Kind::Short {
            answers: list,
            case_sensitive: s.case_sensitive,
            typo_tolerance: s.typo_tolerance,
        }
    }

    fn numeric(&mut self, answers: &[Ch], line: usize) -> Kind {
        let answers = trim(answers);
        let mut list = Vec::new();
        let parts: Vec<(usize, &[Ch])> = if find(answers, '=').is_some() {
            let (lead, parts) = split_at_markers(answers, &['=']);
            if !trim(lead).is_empty() {
                self.error(
                    lead[0].line,
                    "text before the first answer of a numeric block with several answers (each starts with '=')",
                );
            }
            parts.into_iter().map(|(m, p)| (m.line, p)).collect()
        } else {
            vec![(line, answers)]
        };
        for (line, part) in parts {
            let (weight, rest) = match self.weight(part, line) {
                Ok(w) => w,
                Err(()) => continue,
            };
            let (value, feedback) = match find(rest, '#') {
                Some(p) => (&rest[..p], optional_text(strip_format(&rest[p + 1..]))),
                None => (rest, None),
            };
            let value_line = trim(value).first().map_or(line, |c| c.line);
            let Some(value) = self.numeric_value(value, value_line) else {
                continue;
            };
            list.push(NumericAnswer {
                value,
                weight: weight.unwrap_or(100.0),
                feedback,
            });
        }
        Kind::Numeric { answers: list }
    }

    fn numeric_value(&mut self, value: &[Ch], line: usize) -> Option<NumericValue> {
        let value = trim(value);
        if value.is_empty() {
            self.error(line, "a numeric answer without a number");
            return None;
        }
        if let Some(p) = find_seq(value, "..") {
            let low = self.number(&value[..p], line)?;
            let high = self.number(&value[p + 2..], line)?;
            if low > high {
                self.error(
                    line,
                    format!("the range {low}..{high} is empty (low above high)"),
                );
                return None;
            }
            return Some(NumericValue::Range { low, high });
        }
        match find(value, ':') {
            Some(p) => {
                let v = self.number(&value[..p], line);
                let tolerance = self.number(&value[p + 1..], line)?;
                if tolerance < 0.0 {
                    self.error(line, format!("the tolerance {tolerance} is negative"));
                    return None;
                }
                Some(NumericValue::Tolerance {
                    value: v?,
                    tolerance,
                })
            }
            None => Some(NumericValue::Tolerance {
                value: self.number(value, line)?,
                tolerance: 0.0,
            }),
        }
    }

    fn number(&mut self, chs: &[Ch], line: usize) -> Option<f64> {
        let t = text(chs);
        match parse_number(&t) {
            Some(n) => Some(n),
            None => {
                self.error(line, format!("'{t}' is not a number"));
                None
            }
        }
    }

    fn matching(&mut self, answers: &[Ch], line: usize) -> Kind {
        let (lead, parts) = split_at_markers(answers, &['=']);
        if !trim(lead).is_empty() {
            self.error(
                lead[0].line,
                "text before the first pair: each pair starts with '='",
            );
        }
        let mut pairs = Vec::new();
        for (marker, part) in parts {
            match find_seq(part, "->") {
                Some(p) => pairs.push(MatchPair {
                    left: text(strip_format(&part[..p])),
                    right: text(&part[p + 2..]),
                }),
                None => self.error(marker.line, "a matching pair needs 'left -> right'"),
            }
        }
        if pairs.is_empty() {
            self.error(line, "no pairs in the matching block");
        }
        Kind::Matching { pairs }
    }

    /// An answer after its marker: optional `%weight%`, text, optional `#feedback`.
    fn answer(&mut self, part: &[Ch], line: usize) -> Option<Answer> {
        let (weight, rest) = self.weight(part, line).ok()?;
        let (text_part, feedback) = match find(rest, '#') {
            Some(p) => (&rest[..p], optional_text(strip_format(&rest[p + 1..]))),
            None => (rest, None),
        };
        let text = text(strip_format(text_part));
        if text.is_empty() {
            self.error(line, "an empty answer");
            return None;
        }
        Some(Answer {
            weight,
            text,
            feedback,
        })
    }

    /// A leading `%n%` weight, if any, and what follows. `%` followed by something that is
    /// not a number and a `%` is text (`~%d format`), as in Moodle.
    fn weight<'a>(&mut self, part: &'a [Ch], line: usize) -> Result<(Option<f64>, &'a [Ch]), ()> {
        let part = trim(part);
        if !starts_with(part, "%") {
            return Ok((None, part));
        }
        let Some(end) = find(&part[1..], '%') else {
            return Ok((None, part));
        };
        let inner: String = part[1..1 + end].iter().map(|x| x.c).collect();
        let looks_numeric = inner.chars().any(|c| c.is_ascii_digit())
            && inner
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | ' '));
        if !looks_numeric {
            return Ok((None, part));
        }
        let rest = &part[end + 2..];
        match parse_number(inner.trim()) {
            Some(w) if (-100.0..=100.0).contains(&w) => Ok((Some(w), rest)),
            Some(w) => {
                self.error(line, format!("the weight {w}% is outside -100%..100%"));
                Err(())
            }
            None => {
                self.error(line, format!("'%{inner}%' is not a weight"));
                Err(())
            }
        }
    }
}

struct Answer {
    weight: Option<f64>,
    text: String,
    feedback: Option<String>,
}

/// A matching block: `=` answers of which some answer part (before any `#`) holds `->`.
/// Moodle only asks for `=` and `->` anywhere; looking at the answer parts lets a short
/// answer's feedback say "Settings -> Network".
fn is_matching(answers: &[Ch]) -> bool {
    let (lead, parts) = split_at_markers(answers, &['=']);
    !parts.is_empty()
        && std::iter::once(lead)
            .chain(parts.into_iter().map(|(_, p)| p))
            .any(|p| {
                let answer = find(p, '#').map_or(p, |h| &p[..h]);
                find_seq(answer, "->").is_some()
            })
}

/// `{T}`, `{TRUE}`, `{F}`, `{FALSE}` with `#wrong#right` feedback (Moodle: the first
/// feedback is shown for a wrong answer, the second for a right one).
fn true_false(answers: &[Ch]) -> Option<Kind> {
    let (head, feedback) = match find(answers, '#') {
        Some(p) => (&answers[..p], Some(&answers[p + 1..])),
        None => (answers, None),
    };
    let answer = match text(head).as_str() {
        "T" | "TRUE" => true,
        "F" | "FALSE" => false,
        _ => return None,
    };
    let (wrong, right) = match feedback {
        None => (None, None),
        Some(f) => match find(f, '#') {
            Some(p) => (
                optional_text(strip_format(&f[..p])),
                optional_text(strip_format(&f[p + 1..])),
            ),
            None => (optional_text(strip_format(f)), None),
        },
    };
    Some(Kind::TrueFalse {
        answer,
        feedback_wrong: wrong,
        feedback_right: right,
    })
}

/// A number as GIFT writes it: digits, sign, point, exponent; finite.
fn parse_number(t: &str) -> Option<f64> {
    let plausible = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    t.parse::<f64>().ok().filter(|n| plausible && n.is_finite())
}

fn parse_settings(text: &str, line: usize) -> Result<Settings, ParseError> {
    let mut s = Settings {
        line,
        ..Settings::default()
    };
    for pair in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            ParseError::new(
                line,
                format!("`// keel:` expects key=value, found '{pair}'"),
            )
        })?;
        match key {
            "typo_tolerance" => {
                s.typo_tolerance = value.parse().map_err(|_| {
                    ParseError::new(
                        line,
                        format!("typo_tolerance must be a whole number 0..255, found '{value}'"),
                    )
                })?;
            }
            "case_sensitive" => {
                s.case_sensitive = value.parse().map_err(|_| {
                    ParseError::new(
                        line,
                        format!("case_sensitive must be true or false, found '{value}'"),
                    )
                })?;
            }
            _ => {
                return Err(ParseError::new(
                    line,
                    format!(
                        "unknown `// keel:` setting '{key}' (known: typo_tolerance, case_sensitive)"
                    ),
                ))
            }
        }
    }
    Ok(s)
}
