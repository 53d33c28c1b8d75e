//! Grading one response: [`grade`] gives the fraction of the mark, the feedback to show and
//! the right answer for the review, by Moodle's rules for each question type.
//!
//! Grading never panics and always returns a fraction in `0.0..=1.0`, whatever the question
//! or response (a stale or forged response that does not fit the question scores 0).
//!
//! Where it differs from Moodle:
//! - Short answers may forgive typos (the `typo_tolerance` of [`Kind::Short`], Damerau-Levenshtein
//!   edits, only for answers of 4 or more characters) instead of Moodle's `*` wildcard,
//!   which is not supported.
//! - A numeric tolerance is compared with a relative margin of 1e-9 so that `3.15` is
//!   inside `3.14 ± 0.01` although `3.15 - 3.14` is `0.010000000000000231` in binary
//!   floating point. Ranges are compared exactly.
//! - Matching: a pick is right when its right item has the same text as the expected one,
//!   so two pairs sharing a right item are interchangeable (Moodle merges such items too).

use serde::{Deserialize, Serialize};

use crate::model::{is_full, Choice, Kind, NumericValue, Question};
use crate::response::Response;

/// The outcome of grading one response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    /// The fraction of the question's mark, 0.0..=1.0.
    pub fraction: f64,
    /// Feedback to show, in order: the picked choices' (or matched answer's) feedback, or
    /// "Not answered". The general feedback is the site's to add.
    pub feedback: Vec<String>,
    /// Whether the response is fully right (`fraction >= 0.9999`).
    pub correct: bool,
    /// The right answer for the review, built from the question's own texts (Markdown)
    /// joined with separators that are not Markdown syntax.
    pub right_answer: String,
}

/// Feedback for a graded question left unanswered.
pub const NOT_ANSWERED: &str = "Not answered";

/// Feedback for a response of the wrong shape (e.g. text for a choice question).
pub const DOES_NOT_FIT: &str = "This answer does not fit the question";

/// A fraction at or above this is "correct": weights such as 33.333 × 3 add up to 99.999.
const CORRECT_AT: f64 = 0.9999;

/// Relative margin on numeric tolerances (see the module doc).
const NUMERIC_EPSILON: f64 = 1e-9;

/// Grades a response (`None` = unanswered) to a question.
pub fn grade(q: &Question, r: Option<&Response>) -> Grade {
    let right_answer = right_answer(q);
    if matches!(q.kind, Kind::Description) {
        return Grade {
            fraction: 0.0,
            feedback: Vec::new(),
            correct: false,
            right_answer,
        };
    }
    let Some(r) = r else {
        return Grade {
            fraction: 0.0,
            feedback: vec![NOT_ANSWERED.to_owned()],
            correct: false,
            right_answer,
        };
    };
    let (fraction, feedback) = match (&q.kind, r) {
        (Kind::Single { choices }, Response::Choice { id }) => match choices.get(*id) {
            Some(c) => (c.weight / 100.0, c.feedback.iter().cloned().collect()),
            None => does_not_fit(),
        },
        (Kind::Multiple { choices }, Response::Choices { ids }) => grade_multiple(choices, ids),
        (Kind::Multiple { choices }, Response::Choice { id }) => grade_multiple(choices, &[*id]),
        (
            Kind::TrueFalse {
                answer,
                feedback_wrong,
                feedback_right,
            },
            Response::Bool { value },
        ) => {
            if value == answer {
                (1.0, feedback_right.iter().cloned().collect())
            } else {
                (0.0, feedback_wrong.iter().cloned().collect())
            }
        }
        (
            Kind::Short {
                answers,
                case_sensitive,
                typo_tolerance,
            },
            Response::Text { value },
        ) => {
            let typed = normalise(value, *case_sensitive);
            let texts: Vec<String> = answers
                .iter()
                .map(|a| normalise(&a.text, *case_sensitive))
                .collect();
            let exact = best(
                answers
                    .iter()
                    .zip(&texts)
                    .map(|(a, t)| (a.weight, *t == typed)),
            );
            let found = exact.or_else(|| {
                let tol = usize::from(*typo_tolerance);
                if tol == 0 {
                    return None;
                }
                let typed: Vec<char> = typed.chars().collect();
                best(answers.iter().zip(&texts).map(|(a, t)| {
                    let t: Vec<char> = t.chars().collect();
                    (a.weight, t.len() >= 4 && within_edits(&typed, &t, tol))
                }))
            });
            match found.and_then(|i| answers.get(i)) {
                Some(a) => (a.weight / 100.0, a.feedback.iter().cloned().collect()),
                None => (0.0, Vec::new()),
            }
        }
        (Kind::Numeric { answers }, Response::Number { value }) => {
            let x = *value;
            let hit = best(
                answers
                    .iter()
                    .map(|a| (a.weight, x.is_finite() && numeric_matches(&a.value, x))),
            );
            match hit.and_then(|i| answers.get(i)) {
                Some(a) => (a.weight / 100.0, a.feedback.iter().cloned().collect()),
                None => (0.0, Vec::new()),
            }
        }
        (Kind::Matching { pairs }, Response::Matches { picks }) => {
            let right = pairs
                .iter()
                .enumerate()
                .filter(|(i, pair)| {
                    picks
                        .get(*i)
                        .copied()
                        .flatten()
                        .and_then(|p| pairs.get(p))
                        .is_some_and(|picked| picked.right == pair.right)
                })
                .count();
            if pairs.is_empty() {
                (0.0, Vec::new())
            } else {
                (right as f64 / pairs.len() as f64, Vec::new())
            }
        }
        _ => does_not_fit(),
    };
    let fraction = clamp_fraction(fraction);
    Grade {
        fraction,
        feedback,
        correct: fraction >= CORRECT_AT,
        right_answer,
    }
}

/// Floors at 0 (negative credit never takes marks from other questions), caps at 1, and
/// maps NaN (from a question with a NaN weight) to 0.
fn clamp_fraction(f: f64) -> f64 {
    if f.is_nan() {
        0.0
    } else {
        f.clamp(0.0, 1.0)
    }
}

fn does_not_fit() -> (f64, Vec<String>) {
    (0.0, vec![DOES_NOT_FIT.to_owned()])
}

/// Sum of the picked choices' weights; ids are deduplicated and unknown ids ignored (parse
/// refuses both; grading must not trust that the response came through it).
fn grade_multiple(choices: &[Choice], ids: &[usize]) -> (f64, Vec<String>) {
    let mut picked = vec![false; choices.len()];
    for &id in ids {
        if let Some(p) = picked.get_mut(id) {
            *p = true;
        }
    }
    let mut sum = 0.0;
    let mut feedback = Vec::new();
    for (c, _) in choices.iter().zip(&picked).filter(|(_, p)| **p) {
        sum += c.weight;
        feedback.extend(c.feedback.iter().cloned());
    }
    (sum / 100.0, feedback)
}

/// The index of the matching answer with the highest weight (the first on a tie), from
/// `(weight, matches)` per answer.
fn best(answers: impl Iterator<Item = (f64, bool)>) -> Option<usize> {
    let mut found: Option<(usize, f64)> = None;
    for (i, (weight, matches)) in answers.enumerate() {
        if matches && found.is_none_or(|(_, w)| weight > w) {
            found = Some((i, weight));
        }
    }
    found.map(|(i, _)| i)
}

fn numeric_matches(value: &NumericValue, x: f64) -> bool {
    match *value {
        NumericValue::Tolerance { value, tolerance } => {
            let margin = NUMERIC_EPSILON * value.abs().max(tolerance.abs());
            (x - value).abs() <= tolerance + margin
        }
        NumericValue::Range { low, high } => low <= x && x <= high,
    }
}

/// Trims, collapses runs of whitespace to one space and, unless case-sensitive, lower-cases
/// (Unicode `to_lowercase`, a simple case folding).
pub(crate) fn normalise(text: &str, case_sensitive: bool) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if case_sensitive {
        collapsed
    } else {
        collapsed.to_lowercase()
    }
}

/// Whether the optimal-string-alignment distance (Damerau-Levenshtein with adjacent
/// transpositions, each substring edited once) between `a` and `b` is at most `max`.
/// Strings whose lengths differ by more than `max` are rejected without the O(n·m) table,
/// which keeps a hostile long answer cheap.
pub(crate) fn within_edits(a: &[char], b: &[char], max: usize) -> bool {
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    osa_distance(a, b) <= max
}

/// Optimal string alignment distance, three rolling rows.
pub(crate) fn osa_distance(a: &[char], b: &[char]) -> usize {
    let m = b.len();
    let mut before: Vec<usize> = vec![0; m + 1]; // row i-2
    let mut prev: Vec<usize> = (0..=m).collect(); // row i-1
    let mut cur: Vec<usize> = vec![0; m + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let mut d = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
            if i > 0 && j > 0 && a.get(i - 1) == Some(&cb) && b.get(j - 1) == Some(&ca) {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// The right answer as review text. Separators (`; `, ` → `) are plain text so the result
/// renders as the author's Markdown and nothing more.
pub(crate) fn right_answer(q: &Question) -> String {
    match &q.kind {
        Kind::Single { choices } => choices
            .iter()
            .find(|c| is_full(c.weight))
            .map(|c| c.text.clone())
            .unwrap_or_default(),
        Kind::Multiple { choices } => choices
            .iter()
            .filter(|c| c.weight > 0.0)
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        Kind::TrueFalse { answer, .. } => if *answer { "True" } else { "False" }.to_owned(),
        Kind::Short { answers, .. } => answers
            .iter()
            .find(|a| is_full(a.weight))
            .map(|a| a.text.clone())
            .unwrap_or_default(),
        Kind::Numeric { answers } => answers
            .iter()
            .find(|a| is_full(a.weight))
            .map(|a| match a.value {
                NumericValue::Tolerance {
                    value,
                    tolerance: 0.0,
                } => {
                    format!("{value}")
                }
                NumericValue::Tolerance { value, tolerance } => format!("{value} ± {tolerance}"),
                NumericValue::Range { low, high } => format!("from {low} to {high}"),
            })
            .unwrap_or_default(),
        Kind::Matching { pairs } => pairs
            .iter()
            .map(|p| format!("{} → {}", p.left, p.right))
            .collect::<Vec<_>>()
            .join("; "),
        Kind::Description => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        osa_distance(&a, &b)
    }

    #[test]
    fn osa_distance_counts_edits() {
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        // One transposition is one edit (plain Levenshtein would say 2).
        assert_eq!(d("nginx", "ngnix"), 1);
        assert_eq!(d("ca", "abc"), 3); // OSA, not unrestricted Damerau (which says 2)
        assert_eq!(d("héllo", "hello"), 1);
    }

    #[test]
    fn normalise_collapses_and_folds() {
        assert_eq!(normalise("  Leaky \t\n BUCKET ", false), "leaky bucket");
        assert_eq!(normalise("  Leaky  Bucket", true), "Leaky Bucket");
        assert_eq!(normalise("ÉTÉ", false), "été");
    }
}
