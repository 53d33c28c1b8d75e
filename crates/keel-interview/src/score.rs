//! The rubric engine: [`assess`] turns one answer to one [`BankQuestion`] into a
//! [`Verdict`] — which key points it covered and with which words, which misconceptions it
//! showed, whether it is keyword stuffing or off topic, and a score out of 100. It is
//! deterministic (same bank, same answer, same verdict, forever), needs no model, and takes
//! microseconds.
//!
//! # The rules
//! - **Coverage**: a key point is covered when any of its [`Matcher`]s matches the answer,
//!   normalised as `text.rs` describes (lowercase, stems, typo tolerance).
//! - **Misconceptions**: likewise, except that a match in a negated phrase (`it is *not* a
//!   token bucket`) does not count.
//! - **Score** = covered weight / total weight × 100 − the penalties of the misconceptions
//!   shown, clamped to 0..=100 ([`score_of`]).
//! - **Keyword stuffing** (a list of the right words with no sentence around them) is capped
//!   at [`STUFFING_CAP`]: an interviewer wants the mechanism explained, and a list of terms
//!   is exactly what a rubric of words would otherwise over-reward. It is recognised by its
//!   shape, not its words: many short comma/line-separated fragments, or almost no function
//!   words (`the`, `is`, `because`, ...) for its length.
//! - **Off topic** (about cooking, or about another track's subject): an answer that covers
//!   less than a third of the weight and has at least six distinctive words (neither
//!   function words nor the generic words every track uses, like `server` or `thread`), of
//!   which fewer than a fifth belong to the question's vocabulary (its prompt, model answer,
//!   points and misconceptions). Capped at [`OFF_TOPIC_CAP`]. A short wrong answer is just
//!   wrong, not off topic.
//! - **Negation**: misconception matchers ignore a match with a negator (`not`, `doesn't`,
//!   `never`, `instead`...) up to three words before it in the same clause, or between its
//!   words; `but` and `however` end the negation.
//! - **No answer** (empty, "I don't know", "no idea", "pass"): score 0, nothing covered,
//!   not off topic: not knowing is an honest answer, and the ladder of hints takes over.
//!
//! # How it differs from an LLM grader
//! It cannot tell a right explanation from a wrong one that uses the right words in the
//! wrong order, and shuffled prose that keeps its function words is not detected as
//! stuffing. That is why a model may propose a verdict ([`crate::check`]), and why the
//! rubric then checks the model rather than the other way round.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::bank::{build_regex, BankQuestion, Matcher};
use crate::text::{self, Token};

/// The most a keyword-stuffed answer scores.
pub const STUFFING_CAP: f64 = 50.0;

/// The most an off-topic answer scores.
pub const OFF_TOPIC_CAP: f64 = 10.0;

/// Only this many characters of an answer are graded: the rest is ignored, so that the
/// cost of grading is bounded whatever a reader pastes.
pub const MAX_ANSWER_CHARS: usize = 10_000;

/// The rubric's assessment of one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Key point ids the answer covered, in bank order.
    pub covered: Vec<String>,
    /// Key point ids it did not, in bank order.
    pub missed: Vec<String>,
    /// Misconception ids it showed, in bank order.
    pub misconceptions: Vec<String>,
    /// 0..=100.
    pub score: f64,
    /// About something else (see the module doc); the score is capped at [`OFF_TOPIC_CAP`].
    pub off_topic: bool,
    /// Which words of the answer credited which point or misconception.
    pub evidence: Vec<Evidence>,
    /// A list of keywords rather than sentences; the score is capped at [`STUFFING_CAP`].
    pub stuffing: bool,
    /// Empty, or "I don't know" and its variants.
    #[serde(default)]
    pub no_answer: bool,
}

/// The words of an answer that credited a key point or showed a misconception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The key point or misconception id.
    pub id: String,
    /// The index of the matcher that matched, in the bank's order.
    pub matcher: usize,
    /// The words, as the reader wrote them.
    pub words: Vec<String>,
    /// Their byte spans in the answer, for highlighting.
    pub spans: Vec<(usize, usize)>,
    /// Credited on a model's proposal with only weak evidence (one of the point's words),
    /// not by a matcher of the rubric.
    #[serde(default)]
    pub by_model: bool,
}

/// The score of a set of covered points and misconceptions: covered weight / total weight ×
/// 100 − penalties, clamped to 0..=100. Unknown ids count for nothing.
pub fn score_of(q: &BankQuestion, covered: &[String], misconceptions: &[String]) -> f64 {
    let weight = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
    let total: f64 = q.key_points.iter().map(|p| weight(p.weight)).sum();
    let got: f64 = q
        .key_points
        .iter()
        .filter(|p| covered.contains(&p.id))
        .map(|p| weight(p.weight))
        .sum();
    let penalty: f64 = q
        .misconceptions
        .iter()
        .filter(|m| misconceptions.contains(&m.id))
        .map(|m| weight(m.penalty))
        .sum();
    let coverage = if total > 0.0 {
        got / total * 100.0
    } else {
        0.0
    };
    clamp_score(coverage - penalty)
}

/// Clamps to 0..=100, and NaN to 0.
pub(crate) fn clamp_score(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 100.0)
    }
}

/// Assesses one answer. Never panics; the score is always within 0..=100.
pub fn assess(q: &BankQuestion, answer: &str) -> Verdict {
    let mut a = Answer::new(answer);
    if a.no_answer() {
        return Verdict {
            covered: Vec::new(),
            missed: q.key_points.iter().map(|p| p.id.clone()).collect(),
            misconceptions: Vec::new(),
            score: 0.0,
            off_topic: false,
            evidence: Vec::new(),
            stuffing: false,
            no_answer: true,
        };
    }
    let mut covered = Vec::new();
    let mut evidence = Vec::new();
    for p in &q.key_points {
        if let Some((i, at)) = a.first_match(&p.matchers, false) {
            covered.push(p.id.clone());
            evidence.push(a.evidence(&p.id, i, &at, false));
        }
    }
    let mut misconceptions = Vec::new();
    for m in &q.misconceptions {
        if let Some((i, at)) = a.first_match(&m.matchers, true) {
            misconceptions.push(m.id.clone());
            evidence.push(a.evidence(&m.id, i, &at, false));
        }
    }
    a.verdict(q, covered, misconceptions, evidence)
}

/// An answer prepared for matching: its words, where each stem occurs, and the normalised
/// text regular expressions run over. Shared with `model::check`.
pub(crate) struct Answer<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    /// Exact stem → positions.
    exact: HashMap<String, Vec<usize>>,
    /// Distinct stems that tolerate typos, for the fuzzy scan.
    fuzzy_candidates: Vec<String>,
    /// Pattern stem → positions (exact or within tolerance), memoised per answer.
    memo: HashMap<String, Vec<usize>>,
    /// Words joined by single spaces, and where each word starts in it.
    norm: String,
    norm_starts: Vec<usize>,
}

impl<'a> Answer<'a> {
    pub(crate) fn new(answer: &'a str) -> Self {
        let text = truncate_chars(answer, MAX_ANSWER_CHARS);
        let tokens = text::tokenize(text);
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            exact.entry(t.stem.clone()).or_default().push(i);
        }
        let fuzzy_candidates = exact
            .keys()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase()))
            .cloned()
            .collect();
        let mut norm = String::with_capacity(text.len());
        let mut norm_starts = Vec::with_capacity(tokens.len());
        for t in &tokens {
            if !norm.is_empty() {
                norm.push(' ');
            }
            norm_starts.push(norm.len());
            norm.push_str(&t.word);
        }
        Answer {
            text,
            tokens,
            exact,
            fuzzy_candidates,
            memo: HashMap::new(),
            norm,
            norm_starts,
        }
    }

    /// Empty, or only the words of "I don't know" and its variants.
    pub(crate) fn no_answer(&self) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        const FILLER: &[&str] = &[
            "am",
            "answer",
            "any",
            "clue",
            "cant",
            "dont",
            "do",
            "dunno",
            "have",
            "honestly",
            "i",
            "idea",
            "idk",
            "im",
            "know",
            "next",
            "no",
            "nope",
            "not",
            "one",
            "pass",
            "really",
            "recall",
            "remember",
            "skip",
            "sorry",
            "sure",
            "that",
            "the",
            "this",
            "to",
            "uh",
            "um",
            "unsure",
            "what",
            "hmm",
            "absolutely",
            "at",
            "all",
            "really",
            "quite",
            "anything",
            "nothing",
            "here",
            "on",
            "question",
            "it",
            "of",
            "myself",
        ];
        const MARKERS: &[&str] = &[
            "know", "idea", "clue", "sure", "idk", "dunno", "pass", "skip", "unsure", "remember",
            "recall", "nope", "nothing", "next",
        ];
        self.tokens.len() <= 12
            && self
                .tokens
                .iter()
                .all(|t| FILLER.contains(&t.word.as_str()))
            && self
                .tokens
                .iter()
                .any(|t| MARKERS.contains(&t.word.as_str()))
    }

    /// Positions of words matching the bank stem `stem`.
    fn positions(&mut self, stem: &str) -> Vec<usize> {
        if let Some(p) = self.memo.get(stem) {
            return p.clone();
        }
        let mut out = self.exact.get(stem).cloned().unwrap_or_default();
        if text::tolerance(stem) > 0 {
            for cand in &self.fuzzy_candidates {
                if cand != stem && text::stem_matches(stem, cand) {
                    if let Some(p) = self.exact.get(cand) {
                        out.extend_from_slice(p);
                    }
                }
            }
            out.sort_unstable();
        }
        self.memo.insert(stem.to_owned(), out.clone());
        out
    }

    /// Whether the words at `at` are free of negation (for misconceptions): no negator
    /// just before any of them, and, when they are in one clause, none between them
    /// (`async def does *not* make the calls non-blocking`).
    fn affirmed(&self, at: &[usize]) -> bool {
        if at.iter().any(|&i| text::negated(&self.tokens, i, at)) {
            return false;
        }
        let (Some(&lo), Some(&hi)) = (at.iter().min(), at.iter().max()) else {
            return true;
        };
        let clause = |i: usize| self.tokens.get(i).map(|t| t.clause);
        if clause(lo) != clause(hi) {
            return true;
        }
        !(lo + 1..hi).any(|i| {
            !at.contains(&i)
                && self
                    .tokens
                    .get(i)
                    .is_some_and(|t| text::is_negator(&t.word))
        })
    }

    /// The first of `matchers` that matches, with the positions of the words it matched.
    /// `affirmative` (misconceptions) ignores negated matches.
    pub(crate) fn first_match(
        &mut self,
        matchers: &[Matcher],
        affirmative: bool,
    ) -> Option<(usize, Vec<usize>)> {
        matchers
            .iter()
            .enumerate()
            .find_map(|(i, m)| self.find(m, affirmative).map(|at| (i, at)))
    }

    fn find(&mut self, m: &Matcher, affirmative: bool) -> Option<Vec<usize>> {
        match m {
            Matcher::All { words } => {
                let stems: Vec<String> = words.iter().flat_map(|w| text::stems(w)).collect();
                let mut at = Vec::with_capacity(stems.len());
                for s in &stems {
                    let pos = self.positions(s);
                    let chosen = pos
                        .into_iter()
                        .find(|&p| !affirmative || self.affirmed(&[p]))?;
                    at.push(chosen);
                }
                (!at.is_empty()).then_some(at)
            }
            Matcher::Near { window, words } => {
                let stems: Vec<String> = words.iter().flat_map(|w| text::stems(w)).collect();
                let lists: Vec<Vec<usize>> = stems.iter().map(|s| self.positions(s)).collect();
                let (first, rest) = lists.split_first()?;
                'anchor: for &a in first {
                    let mut at = vec![a];
                    for list in rest {
                        let best = list.iter().copied().min_by_key(|&p| p.abs_diff(a))?;
                        if best.abs_diff(a) > *window {
                            continue 'anchor;
                        }
                        at.push(best);
                    }
                    let lo = at.iter().min().copied().unwrap_or(a);
                    let hi = at.iter().max().copied().unwrap_or(a);
                    if hi - lo <= *window && (!affirmative || self.affirmed(&at)) {
                        return Some(at);
                    }
                }
                None
            }
            Matcher::Any { phrases } => {
                for phrase in phrases {
                    let stems = text::stems(phrase);
                    let lists: Vec<Vec<usize>> = stems.iter().map(|s| self.positions(s)).collect();
                    let Some((first, rest)) = lists.split_first() else {
                        continue;
                    };
                    for &start in first {
                        let fits = rest
                            .iter()
                            .enumerate()
                            .all(|(j, list)| list.binary_search(&(start + j + 1)).is_ok());
                        if fits {
                            let at: Vec<usize> = (start..start + lists.len()).collect();
                            if !affirmative || self.affirmed(&at) {
                                return Some(at);
                            }
                        }
                    }
                }
                None
            }
            Matcher::Regex { pattern } => {
                let re = cached_regex(pattern)?;
                for found in re.find_iter(&self.norm) {
                    let at: Vec<usize> = self
                        .norm_starts
                        .iter()
                        .enumerate()
                        .filter(|&(i, &s)| {
                            let end = s + self.tokens.get(i).map_or(0, |t| t.word.len());
                            s < found.end() && end > found.start()
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if at.is_empty() {
                        continue;
                    }
                    if !affirmative || self.affirmed(&at) {
                        return Some(at);
                    }
                }
                None
            }
        }
    }

    /// Weak evidence for `matchers`: any matcher matching, or any one of their distinctive
    /// words (not a function word, not a generic one) in the answer, typo-tolerant. What a
    /// model's proposal needs to be believed.
    pub(crate) fn weak(
        &mut self,
        matchers: &[Matcher],
        affirmative: bool,
    ) -> Option<(usize, Vec<usize>)> {
        if let Some(found) = self.first_match(matchers, affirmative) {
            return Some(found);
        }
        for (i, m) in matchers.iter().enumerate() {
            let words: Vec<&String> = match m {
                Matcher::All { words } | Matcher::Near { words, .. } => words.iter().collect(),
                Matcher::Any { phrases } => phrases.iter().collect(),
                Matcher::Regex { .. } => Vec::new(),
            };
            for w in words {
                for t in text::tokenize(w) {
                    // "request" or "server" alone is evidence of nothing.
                    if text::is_function_word(&t.word) || text::is_generic(&t.stem) {
                        continue;
                    }
                    let found = self
                        .positions(&t.stem)
                        .into_iter()
                        .find(|&p| !affirmative || self.affirmed(&[p]));
                    if let Some(p) = found {
                        return Some((i, vec![p]));
                    }
                }
            }
        }
        None
    }

    pub(crate) fn evidence(
        &self,
        id: &str,
        matcher: usize,
        at: &[usize],
        by_model: bool,
    ) -> Evidence {
        let mut at = at.to_vec();
        at.sort_unstable();
        at.dedup();
        let tokens: Vec<&Token> = at.iter().filter_map(|&i| self.tokens.get(i)).collect();
        Evidence {
            id: id.to_owned(),
            matcher,
            words: tokens
                .iter()
                .map(|t| self.text.get(t.start..t.end).unwrap_or_default().to_owned())
                .collect(),
            spans: tokens.iter().map(|t| (t.start, t.end)).collect(),
            by_model,
        }
    }

    /// A list of words rather than sentences (see the module doc).
    fn stuffing(&self) -> bool {
        let n = self.tokens.len();
        if n < 6 {
            return false;
        }
        // Fragments between separators: a list's items are a word or two each.
        let mut fragments = 0usize;
        let mut in_fragment = false;
        let bytes = self.text.as_bytes();
        let mut next_token = 0usize;
        let mut i = 0usize;
        while i < bytes.len() {
            if let Some(t) = self.tokens.get(next_token) {
                if i == t.start {
                    if !in_fragment {
                        fragments += 1;
                        in_fragment = true;
                    }
                    i = t.end;
                    next_token += 1;
                    continue;
                }
            }
            let c = bytes[i];
            let followed_by_space = bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace());
            let separates = matches!(c, b',' | b';' | b'\n' | b'|' | b'\t' | b'*' | b'/')
                || (matches!(c, b'.' | b'!' | b'?' | b'-') && followed_by_space);
            if separates {
                in_fragment = false;
            }
            i += 1;
        }
        let per_fragment = n as f64 / fragments.max(1) as f64;
        let list_shaped = fragments >= 4 && per_fragment < 3.0;
        let function = self
            .tokens
            .iter()
            .filter(|t| text::is_function_word(&t.word))
            .count();
        let bag_of_words = n >= 8 && (function as f64) < 0.12 * n as f64;
        list_shaped || bag_of_words
    }

    /// The share of the answer's content words that belong to the question's vocabulary,
    /// and how many content words it has.
    fn on_topic_share(&self, q: &BankQuestion) -> (f64, usize) {
        let vocab = vocabulary(q);
        let content: Vec<&Token> = self
            .tokens
            .iter()
            .filter(|t| !text::is_function_word(&t.word) && !text::is_generic(&t.stem))
            .collect();
        if content.is_empty() {
            return (1.0, 0);
        }
        let on = content
            .iter()
            .filter(|t| vocab.contains(t.stem.as_str()))
            .count();
        (on as f64 / content.len() as f64, content.len())
    }

    /// The verdict for these findings: stuffing, off topic and the score.
    pub(crate) fn verdict(
        &self,
        q: &BankQuestion,
        covered: Vec<String>,
        misconceptions: Vec<String>,
        evidence: Vec<Evidence>,
    ) -> Verdict {
        let missed = q
            .key_points
            .iter()
            .filter(|p| !covered.contains(&p.id))
            .map(|p| p.id.clone())
            .collect();
        let raw = score_of(q, &covered, &misconceptions);
        let coverage = score_of(q, &covered, &[]);
        // The vocabulary is the costly part of grading: build it only when it can matter.
        let off_topic = coverage < OFF_TOPIC_MAX_COVERAGE && {
            let (share, content) = self.on_topic_share(q);
            content >= OFF_TOPIC_MIN_WORDS && share < OFF_TOPIC_SHARE
        };
        let stuffing = self.stuffing();
        let mut score = raw;
        if stuffing {
            score = score.min(STUFFING_CAP);
        }
        if off_topic {
            score = score.min(OFF_TOPIC_CAP);
        }
        Verdict {
            covered,
            missed,
            misconceptions,
            score: clamp_score(score),
            off_topic,
            evidence,
            stuffing,
            no_answer: false,
        }
    }
}

/// Below this share of distinctive words from the question's vocabulary, an answer that
/// covers little is off topic.
const OFF_TOPIC_SHARE: f64 = 0.2;

/// An answer that covers this much of the weight is on topic, whatever its words.
const OFF_TOPIC_MAX_COVERAGE: f64 = 34.0;

/// An answer needs this many distinctive words (not function words, not generic ones) to be
/// judged off topic: a short wrong answer is just wrong.
const OFF_TOPIC_MIN_WORDS: usize = 6;

/// The stems of the content words of everything the bank says about a question.
fn vocabulary(q: &BankQuestion) -> HashSet<String> {
    let mut v = HashSet::new();
    let mut add = |s: &str| {
        for t in text::tokenize(s) {
            if !text::is_function_word(&t.word) {
                v.insert(t.stem);
            }
        }
    };
    add(&q.prompt);
    add(&q.model_answer);
    for p in &q.key_points {
        add(&p.text);
        add(&p.prompt);
        add(&p.hint);
        for m in &p.matchers {
            add(&matcher_words(m));
        }
    }
    for m in &q.misconceptions {
        add(&m.text);
        add(&m.correction);
        for x in &m.matchers {
            add(&matcher_words(x));
        }
    }
    v
}

fn matcher_words(m: &Matcher) -> String {
    match m {
        Matcher::All { words } | Matcher::Near { words, .. } => words.join(" "),
        Matcher::Any { phrases } => phrases.join(" "),
        Matcher::Regex { .. } => String::new(),
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Compiled bank regexes, by pattern. A cache, not state: the result of matching does not
/// depend on it. Bounded, because banks can be edited while the server runs.
fn cached_regex(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    const MAX_CACHED: usize = 4096;
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(map) = cache.lock() {
        if let Some(found) = map.get(pattern) {
            return found.clone();
        }
    }
    // An invalid pattern (possible only in a bank that did not come through parse_track)
    // matches nothing.
    let compiled = build_regex(pattern).ok();
    if let Ok(mut map) = cache.lock() {
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(pattern.to_owned(), compiled.clone());
    }
    compiled
}
