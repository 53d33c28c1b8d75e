//! The question model: what a question is, as the site stores it (JSON through serde) and
//! as the importers produce it, and [`Question::validate`], the one check every question
//! passes before it is stored or graded.
//!
//! The shapes follow Moodle's question types (multichoice single/multiple, truefalse,
//! shortanswer, numerical, match, description) with Moodle's weights in percent, so that
//! GIFT files written for Moodle import without loss. Two differences:
//! - Moodle's multichoice has a `single` flag; here single and multiple answer are two
//!   kinds, because they are graded and shown differently and the site should not have to
//!   look at a flag to know which.
//! - A numerical answer keeps a range `low..high` as a range instead of turning it into a
//!   midpoint and a tolerance, so the review shows what the author wrote.

use serde::{Deserialize, Serialize};

/// One question, in any of the supported kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// The title (GIFT `::title::`); `None` when the author gave none.
    pub name: Option<String>,
    /// The category path, `a/b/c` (GIFT `$CATEGORY:`), used by [`crate::draw`] to draw from
    /// a category and its subcategories.
    pub category: Option<String>,
    /// The question text in Markdown. For a missing-word question the blank is written as
    /// [`BLANK`].
    pub stem: String,
    /// The kind of question, with its answers.
    pub kind: Kind,
    /// Shown to every reader after answering, right or wrong (GIFT `####`).
    pub general_feedback: Option<String>,
}

/// How the gap of a missing-word question is written in [`Question::stem`] (as Moodle does).
pub const BLANK: &str = "_____";

/// The kind of a question and its answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    /// One choice to pick. Exactly one choice is worth 100%; others are worth 0% or a
    /// partial (possibly negative) weight.
    Single {
        /// The choices, in the author's order (response ids index this list).
        choices: Vec<Choice>,
    },
    /// Any number of choices to pick. Weights are percent and may be negative; the positive
    /// weights add up to 100 (± 0.5, for thirds written as 33.333).
    Multiple {
        /// The choices, in the author's order (response ids index this list).
        choices: Vec<Choice>,
    },
    /// A statement that is true or false.
    TrueFalse {
        /// Whether the statement is true.
        answer: bool,
        /// Shown to a reader who answered wrongly (GIFT's first `#feedback`).
        feedback_wrong: Option<String>,
        /// Shown to a reader who answered rightly (GIFT's second `#feedback`).
        feedback_right: Option<String>,
    },
    /// A typed answer compared with the accepted answers.
    Short {
        /// The accepted answers with their weights; at least one is worth 100%.
        answers: Vec<ShortAnswer>,
        /// Compare case as typed (Moodle's `usecase`); GIFT imports are case-insensitive.
        #[serde(default)]
        case_sensitive: bool,
        /// How many typos (Damerau-Levenshtein edits) an answer of 4 or more characters
        /// forgives; 0 means an exact match. Not part of GIFT: keel writes it as a Moodle
        /// comment line `// keel: typo_tolerance=1` before the question (see [`crate::gift`]).
        #[serde(default)]
        typo_tolerance: u8,
    },
    /// A number, right within a tolerance or a range.
    Numeric {
        /// The accepted answers with their weights; at least one is worth 100%.
        answers: Vec<NumericAnswer>,
    },
    /// Left items to pair with right items.
    Matching {
        /// The pairs, in the author's order; at least two.
        pairs: Vec<MatchPair>,
    },
    /// Text with no answer (Moodle's description): not graded, not counted.
    Description,
}

/// One choice of a single- or multiple-answer question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The choice as shown (Markdown).
    pub text: String,
    /// Percent of the question's mark, -100..=100.
    pub weight: f64,
    /// Shown to a reader who picked this choice.
    pub feedback: Option<String>,
}

/// One accepted answer of a short-answer question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortAnswer {
    /// The answer, compared after trimming, collapsing whitespace and (unless
    /// case-sensitive) lower-casing.
    pub text: String,
    /// Percent of the question's mark, -100..=100.
    pub weight: f64,
    /// Shown to a reader whose answer matched this one.
    pub feedback: Option<String>,
}

/// One accepted answer of a numeric question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericAnswer {
    /// The accepted value or range.
    pub value: NumericValue,
    /// Percent of the question's mark, -100..=100.
    pub weight: f64,
    /// Shown to a reader whose answer matched this one.
    pub feedback: Option<String>,
}

/// Which numbers a [`NumericAnswer`] accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NumericValue {
    /// `value ± tolerance`, both ends included (GIFT `#3.14:0.01`).
    Tolerance {
        /// The right value.
        value: f64,
        /// How far off an answer may be, >= 0.
        tolerance: f64,
    },
    /// `low..=high` (GIFT `#1..5`).
    Range {
        /// The lowest accepted value.
        low: f64,
        /// The highest accepted value.
        high: f64,
    },
}

/// One pair of a matching question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchPair {
    /// The item the reader matches (Markdown).
    pub left: String,
    /// Its match, offered in a list with the other pairs' right items (plain text).
    pub right: String,
}

/// Tolerance on the sum of a multiple-answer question's positive weights: thirds are
/// written as 33.333 and sevenths as 14.28571, as in Moodle's weight list.
const WEIGHT_SUM_SLACK: f64 = 0.5;

impl Question {
    /// Whether the question is graded and counted in an attempt's score
    /// (everything but [`Kind::Description`]).
    pub fn is_graded(&self) -> bool {
        !matches!(self.kind, Kind::Description)
    }

    /// Checks what the site's editor and the importers must not let through; returns every
    /// problem found, each a sentence an author can act on.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.stem.trim().is_empty() {
            errors.push("the question text is empty".to_owned());
        }
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            errors.push("the title is empty; leave it out instead".to_owned());
        }
        if self
            .category
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            errors.push("the category is empty; leave it out instead".to_owned());
        }
        match &self.kind {
            Kind::Single { choices } => {
                check_choices(choices, &mut errors);
                let full = choices.iter().filter(|c| is_full(c.weight)).count();
                if full != 1 {
                    errors.push(format!(
                        "a single-choice question needs exactly one choice worth 100% (found {full})"
                    ));
                }
            }
            Kind::Multiple { choices } => {
                check_choices(choices, &mut errors);
                // A fold from +0.0: `Sum` starts at -0.0 and would print "-0%".
                let positive = choices
                    .iter()
                    .map(|c| c.weight)
                    .filter(|w| *w > 0.0)
                    .fold(0.0, |a, w| a + w);
                if !((100.0 - WEIGHT_SUM_SLACK)..=(100.0 + WEIGHT_SUM_SLACK)).contains(&positive) {
                    errors.push(format!(
                        "the positive weights of a multiple-answer question must add up to 100% (they add up to {positive}%)"
                    ));
                }
            }
            Kind::TrueFalse { .. } => {}
            Kind::Short { answers, .. } => {
                if answers.is_empty() {
                    errors.push("a short-answer question needs at least one answer".to_owned());
                }
                for (i, a) in answers.iter().enumerate() {
                    check_weight(a.weight, &format!("answer {}", i + 1), &mut errors);
                    if a.text.trim().is_empty() {
                        errors.push(format!("answer {} is empty", i + 1));
                    }
                    // GIFT reads `{=a->b}` as a matching question: such an answer could
                    // not be exported.
                    if a.text.contains("->") {
                        errors.push(format!(
                            "answer {} contains '->', which GIFT reads as a matching pair",
                            i + 1
                        ));
                    }
                }
                if !answers.is_empty() && !answers.iter().any(|a| is_full(a.weight)) {
                    errors.push("one of the answers must be worth 100%".to_owned());
                }
            }
            Kind::Numeric { answers } => {
                if answers.is_empty() {
                    errors.push("a numeric question needs at least one answer".to_owned());
                }
                for (i, a) in answers.iter().enumerate() {
                    let what = format!("answer {}", i + 1);
                    check_weight(a.weight, &what, &mut errors);
                    match a.value {
                        NumericValue::Tolerance { value, tolerance } => {
                            if !value.is_finite() || !tolerance.is_finite() {
                                errors.push(format!("{what} is not a finite number"));
                            } else if tolerance < 0.0 {
                                errors.push(format!("{what} has a negative tolerance"));
                            }
                        }
                        NumericValue::Range { low, high } => {
                            if !low.is_finite() || !high.is_finite() {
                                errors.push(format!("{what} is not a finite range"));
                            } else if low > high {
                                errors.push(format!("{what}: the range {low}..{high} is empty"));
                            }
                        }
                    }
                }
                if !answers.is_empty() && !answers.iter().any(|a| is_full(a.weight)) {
                    errors.push("one of the answers must be worth 100%".to_owned());
                }
            }
            Kind::Matching { pairs } => {
                if pairs.len() < 2 {
                    errors.push(format!(
                        "a matching question needs at least 2 pairs (found {})",
                        pairs.len()
                    ));
                }
                for (i, p) in pairs.iter().enumerate() {
                    if p.left.trim().is_empty() || p.right.trim().is_empty() {
                        errors.push(format!("pair {} has an empty side", i + 1));
                    }
                    if p.left.contains("->") {
                        errors.push(format!(
                            "the left item of pair {} contains '->', which GIFT uses to separate the pair",
                            i + 1
                        ));
                    }
                }
            }
            Kind::Description => {
                // General feedback is shown after answering, and a description is never
                // answered; GIFT has no way to write it either.
                if self.general_feedback.is_some() {
                    errors.push("a description has no answer, so no general feedback".to_owned());
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Whether a weight is the full 100%. Exact on purpose: GIFT writes the full mark as `=`
/// and any other weight as `%n%`, so "nearly 100" must not count as full or an exported
/// single-choice question would read back as a multiple-answer one.
pub(crate) fn is_full(weight: f64) -> bool {
    weight == 100.0
}

fn check_weight(weight: f64, what: &str, errors: &mut Vec<String>) {
    if !weight.is_finite() || !(-100.0..=100.0).contains(&weight) {
        errors.push(format!("{what} has weight {weight}%, outside -100%..100%"));
    }
}

fn check_choices(choices: &[Choice], errors: &mut Vec<String>) {
    if choices.len() < 2 {
        errors.push(format!(
            "a choice question needs at least 2 choices (found {})",
            choices.len()
        ));
    }
    for (i, c) in choices.iter().enumerate() {
        let what = format!("choice {}", i + 1);
        check_weight(c.weight, &what, errors);
        if c.text.trim().is_empty() {
            errors.push(format!("{what} is empty"));
        }
    }
}
