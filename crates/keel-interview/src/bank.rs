//! Interview banks: the [`Track`] model, one plain-text file per track ([`parse_track`],
//! [`export_track`]), in a format staff can read, review and diff line by line.
//!
//! A bank is what the rubric grades against, so it carries more than a quiz question: each
//! question has weighted [`KeyPoint`]s (AutoTutor's *expectations*, each with the follow-up
//! ladder's wording: a prompt, a hint, and the point stated) and [`Misconception`]s (the
//! wrong beliefs the interviewer challenges), each found in an answer by [`Matcher`]s.
//!
//! # The format
//! ```text
//! # A comment. Blank lines are ignored.
//! track: edge                         (the track's slug)
//! title: The edge and rate limiting
//! description: What sits in front of the app server.
//!
//! [question limit-req-algorithm]      (id: a-z, 0-9, - and _, unique in the track)
//! level: junior                       (junior | mid | senior)
//! prompt: How does nginx's `limit_req` decide...?       (Markdown)
//! model_answer: nginx's limit_req is a leaky bucket...
//! link: /posts/rate-limiting-decision-for-decision/   (repeatable)
//!
//! [point leaky-bucket]                (belongs to the question above)
//! weight: 3
//! text: It is a leaky bucket: ...     (the point, stated)
//! prompt: What does the bucket hold, and how does it empty?
//! hint: Picture water draining at a fixed rate.
//! match: any leaky bucket | leaking bucket       (any of these phrases)
//! match: all bucket drain             (all of these words, anywhere)
//! match: near 6 excess drain          (all of these words within 6 words)
//! match: regex \b(10|ten) ?r ?s\b     (over the normalised answer: lowercase words, one space)
//!
//! [misconception token-bucket]
//! penalty: 20
//! text: limit_req is a token bucket that saves up unused capacity.
//! correction: It is a leaky bucket; idle time does not bank extra requests.
//! match: any token bucket
//! ```
//! A value that needs several lines (Markdown paragraphs, code) continues on lines that
//! start with `|` (indentation before it is ignored, one space after it is dropped):
//! ```text
//! prompt: Here is the config:
//!   |
//!   |     limit_req zone=ip burst=20 nodelay;
//! ```
//! Words in matchers are normalised like answers (lowercase, punctuation splits words,
//! light stemming, typo tolerance: see `text.rs`), so `match: all limit_req client` means
//! the words `limit`, `req` and `client`. Misconception matchers ignore negated mentions
//! (`it is *not* a token bucket`); key point matchers do not.
//!
//! Why a line format and not TOML or YAML: every field is one line in a diff, a review
//! comment points at a line number that [`ParseError`] also uses, and there is no quoting
//! to get wrong in prose full of colons, backticks and quotes.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::text;

/// The level a question is pitched at, and a reader chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Knows the words and the basic mechanism.
    Junior,
    /// Can configure it and explain the trade-offs.
    Mid,
    /// Can reason about failure modes, scale and design.
    Senior,
}

impl Level {
    /// Every level, easiest first.
    pub const ALL: [Level; 3] = [Level::Junior, Level::Mid, Level::Senior];

    /// `"junior"`, `"mid"` or `"senior"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Junior => "junior",
            Level::Mid => "mid",
            Level::Senior => "senior",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not `junior`, `mid` or `senior`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level `{0}` (expected junior, mid or senior)")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "junior" => Ok(Level::Junior),
            "mid" => Ok(Level::Mid),
            "senior" => Ok(Level::Senior),
            _ => Err(UnknownLevel(s.to_owned())),
        }
    }
}

/// One interview track: a subject of the blog with its questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// The slug, e.g. `edge`.
    pub name: String,
    /// The title shown to readers.
    pub title: String,
    /// One or two sentences on what the track covers.
    pub description: String,
    /// The questions, in file order.
    pub questions: Vec<BankQuestion>,
}

impl Track {
    /// The question with this id.
    pub fn question(&self, id: &str) -> Option<&BankQuestion> {
        self.questions.iter().find(|q| q.id == id)
    }
}

/// One interview question with its rubric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankQuestion {
    /// Unique in the track.
    pub id: String,
    /// The level it is pitched at.
    pub level: Level,
    /// The question, in Markdown.
    pub prompt: String,
    /// What the rubric looks for, heaviest first by convention (the engine sorts by weight
    /// itself where order matters).
    pub key_points: Vec<KeyPoint>,
    /// Wrong beliefs the interviewer challenges.
    pub misconceptions: Vec<Misconception>,
    /// A good answer as a natural paragraph; it must score at least 80 (tested).
    pub model_answer: String,
    /// Where to read more: `/posts/slug/` or `/quizzes/slug/`.
    pub links: Vec<String>,
}

impl BankQuestion {
    /// The key point with this id.
    pub fn point(&self, id: &str) -> Option<&KeyPoint> {
        self.key_points.iter().find(|p| p.id == id)
    }

    /// The misconception with this id.
    pub fn misconception(&self, id: &str) -> Option<&Misconception> {
        self.misconceptions.iter().find(|m| m.id == id)
    }
}

/// Something a good answer says (an AutoTutor expectation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyPoint {
    /// Unique in the question (among points and misconceptions).
    pub id: String,
    /// Its share of the question's score, relative to the other points' weights.
    pub weight: f64,
    /// The point, stated: what the interviewer says at the top of the ladder.
    pub text: String,
    /// The follow-up question aimed at it (the ladder's first rung).
    pub prompt: String,
    /// The hint (the ladder's second rung).
    pub hint: String,
    /// Any one matching credits the point.
    pub matchers: Vec<Matcher>,
}

/// A wrong belief the interviewer listens for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Misconception {
    /// Unique in the question (among points and misconceptions).
    pub id: String,
    /// The wrong belief, stated.
    pub text: String,
    /// What is true instead, said after the challenge.
    pub correction: String,
    /// Score points (out of 100) taken off when the answer shows it.
    pub penalty: f64,
    /// Any one matching (not negated) detects it.
    pub matchers: Vec<Matcher>,
}

/// How an answer shows a point. Words are normalised like answers (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Matcher {
    /// Every word present somewhere in the answer, in any order (`match: all limit client`).
    All {
        /// The words, as written in the bank.
        words: Vec<String>,
    },
    /// Every word present within `window` consecutive words (`match: near 6 burst queue`).
    Near {
        /// The largest distance, in words, between the first and last of them.
        window: usize,
        /// The words, as written in the bank.
        words: Vec<String>,
    },
    /// Any one of these phrases, word for word (`match: any leaky bucket | leaking bucket`).
    Any {
        /// The phrases, as written in the bank.
        phrases: Vec<String>,
    },
    /// A regular expression over the normalised answer: lowercase words joined by single
    /// spaces, without punctuation (`match: regex \b(10|ten) ?r ?s\b`).
    Regex {
        /// The pattern, as written in the bank.
        pattern: String,
    },
}

/// The widest [`Matcher::Near`] window.
pub const MAX_NEAR_WINDOW: usize = 50;

/// The largest compiled regular expression a bank may hold, in bytes (the `regex` crate's
/// `size_limit`): bank files are reviewed, but a mistake must not cost the server memory.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) fn build_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

// ---------------------------------------------------------------------------------------
// Parsing

/// A logical line of the file: a section header or a `key: value` with its continuations.
enum Entry {
    Section {
        line: usize,
        kind: String,
        id: String,
    },
    Field {
        line: usize,
        key: String,
        value: String,
        /// The first `|` line, if the value continued.
        continued: Option<usize>,
    },
}

/// Keys whose value may continue on `|` lines.
fn multi_line(key: &str) -> bool {
    matches!(
        key,
        "title" | "description" | "prompt" | "model_answer" | "text" | "hint" | "correction"
    )
}

fn scan(text: &str, errors: &mut Vec<ParseError>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = raw.trim_start().strip_prefix('|') {
            let content = rest.strip_prefix(' ').unwrap_or(rest);
            match entries.last_mut() {
                Some(Entry::Field {
                    value, continued, ..
                }) => {
                    if continued.is_none() && value.is_empty() {
                        value.push_str(content);
                    } else {
                        value.push('\n');
                        value.push_str(content);
                    }
                    continued.get_or_insert(line);
                }
                _ => errors.push(ParseError::new(
                    line,
                    "a `|` line continues a `key:` line, but there is none above it",
                )),
            }
            continue;
        }
        if let Some(inner) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            // `[kind id]`; a bad id is reported later but the section still opens, so
            // the fields under it do not each produce an error of their own.
            let (kind, id) = inner
                .trim()
                .split_once(char::is_whitespace)
                .map(|(k, i)| (k, i.trim()))
                .unwrap_or((inner.trim(), ""));
            entries.push(Entry::Section {
                line,
                kind: kind.to_owned(),
                id: id.to_owned(),
            });
            continue;
        }
        match trimmed.split_once(':') {
            Some((key, value))
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                entries.push(Entry::Field {
                    line,
                    key: key.to_owned(),
                    value: value.trim().to_owned(),
                    continued: None,
                });
            }
            _ => errors.push(ParseError::new(
                line,
                "expected `key: value`, a `[section ID]` header, a `|` continuation or a `#` comment",
            )),
        }
    }
    entries
}

/// A value seen once, with its line.
type Once = Option<(usize, String)>;

#[derive(Default)]
struct PointDraft {
    line: usize,
    id: String,
    weight: Once,
    text: Once,
    prompt: Once,
    hint: Once,
    matchers: Vec<Matcher>,
    /// A `match:` line was there, even if it was bad (no "missing" error on top).
    match_lines: bool,
}

#[derive(Default)]
struct MiscDraft {
    line: usize,
    id: String,
    penalty: Once,
    text: Once,
    correction: Once,
    matchers: Vec<Matcher>,
    match_lines: bool,
}

#[derive(Default)]
struct QuestionDraft {
    line: usize,
    id: String,
    /// The line, and the level if it was valid.
    level: Option<(usize, Option<Level>)>,
    prompt: Once,
    model_answer: Once,
    links: Vec<String>,
    points: Vec<PointDraft>,
    miscs: Vec<MiscDraft>,
}

enum Section {
    Header,
    Question,
    Point,
    Misconception,
    /// After a bad header: fields are skipped until the next good one, so one typo does
    /// not produce a cascade of "unknown key" errors.
    Broken,
}

fn set_once(slot: &mut Once, line: usize, key: &str, value: String, errors: &mut Vec<ParseError>) {
    match slot {
        Some((first, _)) => errors.push(ParseError::new(
            line,
            format!("`{key}:` given twice (first at line {first})"),
        )),
        None => *slot = Some((line, value)),
    }
}

/// Whether `id` is a valid id: 1–64 of `a-z`, `0-9`, `-`, `_`, starting with a letter or
/// digit.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn check_words(words: &[&str]) -> Result<(), String> {
    let mut content = false;
    for w in words {
        let tokens = text::tokenize(w);
        if tokens.is_empty() {
            return Err(format!("`{w}` has no letters or digits to match"));
        }
        content |= tokens.iter().any(|t| !text::is_function_word(&t.word));
    }
    if content {
        Ok(())
    } else {
        Err(format!(
            "`{}` is only function words, which every answer has",
            words.join(" ")
        ))
    }
}

/// Parses the value of a `match:` line.
pub(crate) fn parse_matcher(value: &str) -> Result<Matcher, String> {
    let (kind, rest) = value
        .split_once(char::is_whitespace)
        .map(|(k, r)| (k, r.trim()))
        .unwrap_or((value, ""));
    match kind {
        "all" => {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words.is_empty() {
                return Err("`match: all` needs at least one word".into());
            }
            check_words(&words)?;
            Ok(Matcher::All {
                words: words.into_iter().map(str::to_owned).collect(),
            })
        }
        "near" => {
            let mut parts = rest.split_whitespace();
            let window = parts
                .next()
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| (1..=MAX_NEAR_WINDOW).contains(w))
                .ok_or_else(|| {
                    format!("`match: near` needs a window of 1 to {MAX_NEAR_WINDOW} words first")
                })?;
            let words: Vec<&str> = parts.collect();
            if words.len() < 2 {
                return Err("`match: near N` needs at least two words".into());
            }
            check_words(&words)?;
            Ok(Matcher::Near {
                window,
                words: words.into_iter().map(str::to_owned).collect(),
            })
        }
        "any" => {
            let phrases: Vec<String> = rest.split('|').map(|p| p.trim().to_owned()).collect();
            if phrases.iter().any(String::is_empty) {
                return Err("`match: any` needs phrases separated by `|`, none empty".into());
            }
            for p in &phrases {
                let words: Vec<&str> = p.split_whitespace().collect();
                check_words(&words)?;
            }
            Ok(Matcher::Any { phrases })
        }
        "regex" => {
            if rest.is_empty() {
                return Err("`match: regex` needs a pattern".into());
            }
            build_regex(rest).map_err(|e| {
                let msg = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("bad regular expression: {msg}")
            })?;
            Ok(Matcher::Regex {
                pattern: rest.to_owned(),
            })
        }
        other => Err(format!(
            "unknown matcher `{other}` (expected all, near, any or regex)"
        )),
    }
}

fn parse_number(
    value: &str,
    what: &str,
    min_exclusive: Option<f64>,
    min: f64,
    max: f64,
) -> Result<f64, String> {
    let n: f64 = value
        .parse()
        .map_err(|_| format!("`{what}:` must be a number, not `{value}`"))?;
    let ok = n.is_finite() && n >= min && n <= max && min_exclusive.is_none_or(|m| n > m);
    if ok {
        Ok(n)
    } else if min_exclusive.is_some() {
        Err(format!("`{what}:` must be above {min} and at most {max}"))
    } else {
        Err(format!("`{what}:` must be between {min} and {max}"))
    }
}

/// Parses one track file. Returns every problem of the file, each with its line, or the
/// track. Never panics, whatever the text.
pub fn parse_track(text: &str) -> Result<Track, Vec<ParseError>> {
    let mut errors = Vec::new();
    let entries = scan(text, &mut errors);

    let mut name: Once = None;
    let mut title: Once = None;
    let mut description: Once = None;
    let mut questions: Vec<QuestionDraft> = Vec::new();
    let mut section = Section::Header;
    let mut question_ids: HashMap<String, usize> = HashMap::new();

    for entry in entries {
        match entry {
            Entry::Section { line, kind, id } => {
                let known = matches!(kind.as_str(), "question" | "point" | "misconception");
                if known && id.is_empty() {
                    errors.push(ParseError::new(
                        line,
                        "a section header is `[question ID]`, `[point ID]` or `[misconception ID]`",
                    ));
                } else if known && !valid_id(&id) {
                    errors.push(ParseError::new(
                        line,
                        format!("`{id}` is not an id: use 1 to 64 of a-z, 0-9, - and _"),
                    ));
                }
                match kind.as_str() {
                    "question" => {
                        if let Some(first) = question_ids.get(&id) {
                            errors.push(ParseError::new(
                                line,
                                format!("question id `{id}` used twice (first at line {first})"),
                            ));
                        }
                        question_ids.entry(id.clone()).or_insert(line);
                        questions.push(QuestionDraft {
                            line,
                            id,
                            ..QuestionDraft::default()
                        });
                        section = Section::Question;
                    }
                    "point" | "misconception" => {
                        let Some(q) = questions.last_mut() else {
                            errors.push(ParseError::new(
                                line,
                                format!("a `[{kind}]` belongs to a question; put a `[question ID]` above it"),
                            ));
                            section = Section::Broken;
                            continue;
                        };
                        let first = q
                            .points
                            .iter()
                            .map(|p| (&p.id, p.line))
                            .chain(q.miscs.iter().map(|m| (&m.id, m.line)))
                            .find(|(other, _)| **other == id)
                            .map(|(_, l)| l);
                        if let Some(first) = first {
                            errors.push(ParseError::new(
                                line,
                                format!(
                                    "id `{id}` used twice in question `{}` (first at line {first})",
                                    q.id
                                ),
                            ));
                        }
                        if kind == "point" {
                            q.points.push(PointDraft {
                                line,
                                id,
                                ..PointDraft::default()
                            });
                            section = Section::Point;
                        } else {
                            q.miscs.push(MiscDraft {
                                line,
                                id,
                                ..MiscDraft::default()
                            });
                            section = Section::Misconception;
                        }
                    }
                    other => {
                        errors.push(ParseError::new(
                            line,
                            format!("unknown section `[{other}]` (expected question, point or misconception)"),
                        ));
                        section = Section::Broken;
                    }
                }
            }
            Entry::Field {
                line,
                key,
                value,
                continued,
            } => {
                let mut value = value;
                if let Some(cont) = continued {
                    if !multi_line(&key) {
                        errors.push(ParseError::new(
                            cont,
                            format!("`{key}:` is one line; it cannot continue with `|`"),
                        ));
                        // Keep the first line, so the field itself is not reported too.
                        value = value.split('\n').next().unwrap_or_default().to_owned();
                    }
                }
                field(
                    &mut section,
                    line,
                    &key,
                    value,
                    (&mut name, &mut title, &mut description),
                    &mut questions,
                    &mut errors,
                );
            }
        }
    }

    let track = finish(name, title, description, questions, &mut errors);
    if errors.is_empty() {
        if let Some(track) = track {
            return Ok(track);
        }
    }
    errors.sort_by_key(|e| e.line);
    Err(errors)
}

fn field(
    section: &mut Section,
    line: usize,
    key: &str,
    value: String,
    header: (&mut Once, &mut Once, &mut Once),
    questions: &mut [QuestionDraft],
    errors: &mut Vec<ParseError>,
) {
    let unknown = |errors: &mut Vec<ParseError>, allowed: &str| {
        errors.push(ParseError::new(
            line,
            format!("unknown key `{key}:` here (expected {allowed})"),
        ));
    };
    match section {
        Section::Broken => {}
        Section::Header => {
            let (name, title, description) = header;
            match key {
                "track" => {
                    if !valid_id(&value) {
                        errors.push(ParseError::new(
                            line,
                            format!(
                                "`{value}` is not a track slug: use 1 to 64 of a-z, 0-9, - and _"
                            ),
                        ));
                    }
                    set_once(name, line, key, value, errors);
                }
                "title" => set_once(title, line, key, value, errors),
                "description" => set_once(description, line, key, value, errors),
                _ => unknown(
                    errors,
                    "track, title or description before the first `[question ID]`",
                ),
            }
        }
        Section::Question => {
            let Some(q) = questions.last_mut() else {
                return;
            };
            match key {
                "level" => {
                    if let Some((first, _)) = q.level {
                        errors.push(ParseError::new(
                            line,
                            format!("`level:` given twice (first at line {first})"),
                        ));
                        return;
                    }
                    let level = value
                        .parse::<Level>()
                        .map_err(|e| errors.push(ParseError::new(line, e.to_string())))
                        .ok();
                    q.level = Some((line, level));
                }
                "prompt" => set_once(&mut q.prompt, line, key, value, errors),
                "model_answer" => set_once(&mut q.model_answer, line, key, value, errors),
                "link" => {
                    let ok = !value.is_empty()
                        && !value.contains(char::is_whitespace)
                        && (value.starts_with('/')
                            || value.starts_with("https://")
                            || value.starts_with("http://"));
                    if ok {
                        q.links.push(value);
                    } else {
                        errors.push(ParseError::new(
                            line,
                            format!("`{value}` is not a link: use a site path like /posts/slug/ or an http(s) URL"),
                        ));
                    }
                }
                _ => unknown(errors, "level, prompt, model_answer or link"),
            }
        }
        Section::Point => {
            let Some(p) = questions.last_mut().and_then(|q| q.points.last_mut()) else {
                return;
            };
            match key {
                "weight" => set_once(&mut p.weight, line, key, value, errors),
                "text" => set_once(&mut p.text, line, key, value, errors),
                "prompt" => set_once(&mut p.prompt, line, key, value, errors),
                "hint" => set_once(&mut p.hint, line, key, value, errors),
                "match" => {
                    p.match_lines = true;
                    match parse_matcher(&value) {
                        Ok(m) => p.matchers.push(m),
                        Err(e) => errors.push(ParseError::new(line, e)),
                    }
                }
                _ => unknown(errors, "weight, text, prompt, hint or match"),
            }
        }
        Section::Misconception => {
            let Some(m) = questions.last_mut().and_then(|q| q.miscs.last_mut()) else {
                return;
            };
            match key {
                "penalty" => set_once(&mut m.penalty, line, key, value, errors),
                "text" => set_once(&mut m.text, line, key, value, errors),
                "correction" => set_once(&mut m.correction, line, key, value, errors),
                "match" => {
                    m.match_lines = true;
                    match parse_matcher(&value) {
                        Ok(x) => m.matchers.push(x),
                        Err(e) => errors.push(ParseError::new(line, e)),
                    }
                }
                _ => unknown(errors, "penalty, text, correction or match"),
            }
        }
    }
}

/// Takes a required value, or records that it is missing.
fn required(
    slot: Once,
    line: usize,
    what: &str,
    errors: &mut Vec<ParseError>,
) -> Option<(usize, String)> {
    match slot {
        None => {
            errors.push(ParseError::new(line, format!("missing `{what}:`")));
            None
        }
        Some((l, v)) if v.trim().is_empty() => {
            errors.push(ParseError::new(l, format!("`{what}:` is empty")));
            None
        }
        some => some,
    }
}

fn finish(
    name: Once,
    title: Once,
    description: Once,
    drafts: Vec<QuestionDraft>,
    errors: &mut Vec<ParseError>,
) -> Option<Track> {
    let first_line = name.as_ref().map_or(1, |(l, _)| *l);
    let name = required(name, 1, "track", errors);
    let title = required(title, first_line, "title", errors);
    if drafts.is_empty() {
        errors.push(ParseError::new(
            first_line,
            "the track has no `[question ID]`",
        ));
    }
    let mut questions = Vec::new();
    for d in drafts {
        let level = d.level.and_then(|(_, l)| l);
        if d.level.is_none() {
            errors.push(ParseError::new(d.line, "missing `level:`"));
        }
        let prompt = required(d.prompt, d.line, "prompt", errors);
        let model_answer = required(d.model_answer, d.line, "model_answer", errors);
        if d.points.is_empty() {
            errors.push(ParseError::new(
                d.line,
                format!("question `{}` has no `[point ID]`", d.id),
            ));
        }
        let mut key_points = Vec::new();
        for p in d.points {
            let weight = required(p.weight, p.line, "weight", errors).and_then(|(l, v)| {
                parse_number(&v, "weight", Some(0.0), 0.0, 1000.0)
                    .map_err(|e| errors.push(ParseError::new(l, e)))
                    .ok()
            });
            let text = required(p.text, p.line, "text", errors);
            let prompt = required(p.prompt, p.line, "prompt", errors);
            let hint = required(p.hint, p.line, "hint", errors);
            if !p.match_lines {
                errors.push(ParseError::new(p.line, "missing `match:` (at least one)"));
            }
            if let (Some(weight), Some((_, text)), Some((_, prompt)), Some((_, hint))) =
                (weight, text, prompt, hint)
            {
                key_points.push(KeyPoint {
                    id: p.id,
                    weight,
                    text,
                    prompt,
                    hint,
                    matchers: p.matchers,
                });
            }
        }
        let mut misconceptions = Vec::new();
        for m in d.miscs {
            let penalty = required(m.penalty, m.line, "penalty", errors).and_then(|(l, v)| {
                parse_number(&v, "penalty", None, 0.0, 100.0)
                    .map_err(|e| errors.push(ParseError::new(l, e)))
                    .ok()
            });
            let text = required(m.text, m.line, "text", errors);
            let correction = required(m.correction, m.line, "correction", errors);
            if !m.match_lines {
                errors.push(ParseError::new(m.line, "missing `match:` (at least one)"));
            }
            if let (Some(penalty), Some((_, text)), Some((_, correction))) =
                (penalty, text, correction)
            {
                misconceptions.push(Misconception {
                    id: m.id,
                    text,
                    correction,
                    penalty,
                    matchers: m.matchers,
                });
            }
        }
        if let (Some(level), Some((_, prompt)), Some((_, model_answer))) =
            (level, prompt, model_answer)
        {
            questions.push(BankQuestion {
                id: d.id,
                level,
                prompt,
                key_points,
                misconceptions,
                model_answer,
                links: d.links,
            });
        }
    }
    Some(Track {
        name: name?.1,
        title: title?.1,
        description: description.map(|(_, d)| d).unwrap_or_default(),
        questions,
    })
}

// ---------------------------------------------------------------------------------------
// Export

fn write_value(out: &mut String, key: &str, value: &str) {
    if value.is_empty() {
        out.push_str(key);
        out.push_str(":\n");
    } else if !value.contains('\n') && value.trim() == value {
        out.push_str(key);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    } else {
        // `|` lines keep everything: blank lines, indentation, leading and trailing spaces.
        out.push_str(key);
        out.push_str(":\n");
        for l in value.split('\n') {
            if l.is_empty() {
                out.push_str("  |\n");
            } else {
                out.push_str("  | ");
                out.push_str(l);
                out.push('\n');
            }
        }
    }
}

/// The `match:` value of a matcher.
pub(crate) fn matcher_source(m: &Matcher) -> String {
    match m {
        Matcher::All { words } => format!("all {}", words.join(" ")),
        Matcher::Near { window, words } => format!("near {window} {}", words.join(" ")),
        Matcher::Any { phrases } => format!("any {}", phrases.join(" | ")),
        Matcher::Regex { pattern } => format!("regex {pattern}"),
    }
}

/// Writes a track in the bank format. For every track [`parse_track`] returns,
/// `parse_track(&export_track(&t)) == Ok(t)` (tested, including by property tests).
pub fn export_track(track: &Track) -> String {
    let mut out = String::new();
    write_value(&mut out, "track", &track.name);
    write_value(&mut out, "title", &track.title);
    if !track.description.is_empty() {
        write_value(&mut out, "description", &track.description);
    }
    for q in &track.questions {
        out.push_str(&format!("\n[question {}]\n", q.id));
        write_value(&mut out, "level", q.level.as_str());
        write_value(&mut out, "prompt", &q.prompt);
        write_value(&mut out, "model_answer", &q.model_answer);
        for l in &q.links {
            write_value(&mut out, "link", l);
        }
        for p in &q.key_points {
            out.push_str(&format!("\n[point {}]\n", p.id));
            write_value(&mut out, "weight", &p.weight.to_string());
            write_value(&mut out, "text", &p.text);
            write_value(&mut out, "prompt", &p.prompt);
            write_value(&mut out, "hint", &p.hint);
            for m in &p.matchers {
                write_value(&mut out, "match", &matcher_source(m));
            }
        }
        for m in &q.misconceptions {
            out.push_str(&format!("\n[misconception {}]\n", m.id));
            write_value(&mut out, "penalty", &m.penalty.to_string());
            write_value(&mut out, "text", &m.text);
            write_value(&mut out, "correction", &m.correction);
            for x in &m.matchers {
                write_value(&mut out, "match", &matcher_source(x));
            }
        }
    }
    out
}
