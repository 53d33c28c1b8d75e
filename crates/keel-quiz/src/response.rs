//! What a reader answered: [`Response`], and [`parse_response`], which turns the raw form
//! values the site received for one question into one, or into a [`ResponseError`] the site
//! answers with a 400.
//!
//! Ids are indexes into the question's stored `choices` (or `pairs`), never into the
//! shuffled order the reader saw: the site maps the shuffle back (see
//! [`crate::choice_order`]) so that a stored response still means the same after a reshuffle.
//! Unlike Moodle, which silently drops values it does not understand, a value that does not
//! fit the question is refused: it can only come from a stale page or a forged form.

use serde::{Deserialize, Serialize};

use crate::model::{Kind, Question};

/// The longest typed answer accepted, in characters. A short answer is a word or a phrase;
/// the limit keeps grading (an edit distance) cheap on hostile input.
pub const MAX_TEXT_CHARS: usize = 1000;

/// A reader's answer to one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The picked choice of a single-choice question.
    Choice {
        /// Index into the stored choices.
        id: usize,
    },
    /// The picked choices of a multiple-answer question (no duplicates).
    Choices {
        /// Indexes into the stored choices.
        ids: Vec<usize>,
    },
    /// The answer to a true/false question.
    Bool {
        /// What the reader said the statement is.
        value: bool,
    },
    /// The typed answer to a short-answer question, as typed.
    Text {
        /// The answer as typed (grading normalises it).
        value: String,
    },
    /// The answer to a numeric question.
    Number {
        /// A finite number.
        value: f64,
    },
    /// The picks of a matching question.
    Matches {
        /// `picks[i]` is the index (into the stored pairs) of the right item chosen for left
        /// item `i`, or `None` where the reader chose nothing.
        picks: Vec<Option<usize>>,
    },
}

/// Why submitted form values are not an answer to the question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Several values where the question takes one.
    #[error("this question takes one answer, but {got} were sent")]
    TooManyValues {
        /// How many non-empty values were sent.
        got: usize,
    },
    /// A choice id that is not a non-negative integer.
    #[error("'{value}' is not a choice number")]
    NotAnIndex {
        /// The value sent (cut to 40 characters).
        value: String,
    },
    /// A choice id past the question's choices.
    #[error("choice {id} does not exist: this question has {count} choices")]
    UnknownChoice {
        /// The id sent.
        id: usize,
        /// How many choices (or pairs) the question has.
        count: usize,
    },
    /// The same choice twice.
    #[error("choice {id} was sent twice")]
    Duplicate {
        /// The repeated id.
        id: usize,
    },
    /// A true/false answer that is neither.
    #[error("'{value}' is not true or false")]
    NotABool {
        /// The value sent (cut to 40 characters).
        value: String,
    },
    /// A numeric answer that is not a number.
    #[error("'{value}' is not a number")]
    NotANumber {
        /// The value sent (cut to 40 characters).
        value: String,
    },
    /// A number too large to be a number (overflows to infinity) or NaN/inf written out.
    #[error("'{value}' is not a finite number")]
    NotFinite {
        /// The value sent (cut to 40 characters).
        value: String,
    },
    /// A matching answer with the wrong number of values.
    #[error("this question has {expected} items to match, but {got} answers were sent")]
    WrongValueCount {
        /// One per left item.
        expected: usize,
        /// As sent.
        got: usize,
    },
    /// A typed answer over [`MAX_TEXT_CHARS`].
    #[error("the answer is longer than {max} characters")]
    TooLong {
        /// [`MAX_TEXT_CHARS`].
        max: usize,
    },
}

/// Builds a response from the raw form values submitted for one question (all values of
/// the fields named for that question, in order). Blank or absent → `Ok(None)`
/// (unanswered); values that cannot be an answer to this question → `Err`.
///
/// - Single choice, true/false, short answer, numeric: one value.
/// - Multiple answer: one value per picked choice, each an id.
/// - Matching: one value per left item in the stored order, each a right-item index or ""
///   for none.
/// - True/false: `true`/`false` (also `1`/`0`, any case).
/// - Numeric: `3.14`, `3,14` (a decimal comma), spaces around; never NaN or infinity.
/// - Description: always `Ok(None)`.
pub fn parse_response(q: &Question, values: &[&str]) -> Result<Option<Response>, ResponseError> {
    if let Kind::Matching { pairs } = &q.kind {
        return parse_matches(values, pairs.len());
    }
    let given: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    if given.is_empty() {
        return Ok(None);
    }
    let one = || match given.as_slice() {
        [v] => Ok(*v),
        _ => Err(ResponseError::TooManyValues { got: given.len() }),
    };
    let response = match &q.kind {
        Kind::Single { choices } => Response::Choice {
            id: parse_id(one()?, choices.len())?,
        },
        Kind::Multiple { choices } => {
            let mut ids: Vec<usize> = Vec::with_capacity(given.len());
            for v in &given {
                let id = parse_id(v, choices.len())?;
                if ids.contains(&id) {
                    return Err(ResponseError::Duplicate { id });
                }
                ids.push(id);
            }
            Response::Choices { ids }
        }
        Kind::TrueFalse { .. } => {
            let v = one()?;
            let value = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(ResponseError::NotABool { value: cut(v) }),
            };
            Response::Bool { value }
        }
        Kind::Short { .. } => {
            let v = one()?;
            if v.chars().count() > MAX_TEXT_CHARS {
                return Err(ResponseError::TooLong {
                    max: MAX_TEXT_CHARS,
                });
            }
            Response::Text {
                value: v.to_owned(),
            }
        }
        Kind::Numeric { .. } => Response::Number {
            value: parse_number(one()?)?,
        },
        Kind::Description => return Ok(None),
        Kind::Matching { .. } => return Ok(None), // handled above
    };
    Ok(Some(response))
}

fn parse_matches(values: &[&str], count: usize) -> Result<Option<Response>, ResponseError> {
    if values.iter().all(|v| v.trim().is_empty()) {
        return Ok(None);
    }
    if values.len() != count {
        return Err(ResponseError::WrongValueCount {
            expected: count,
            got: values.len(),
        });
    }
    let picks = values
        .iter()
        .map(|v| {
            let v = v.trim();
            if v.is_empty() {
                Ok(None)
            } else {
                parse_id(v, count).map(Some)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Response::Matches { picks }))
}

fn parse_id(value: &str, count: usize) -> Result<usize, ResponseError> {
    // `usize::from_str` takes a leading '+'; a form never sends one, so refuse it.
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResponseError::NotAnIndex { value: cut(value) });
    }
    let id: usize = value
        .parse()
        .map_err(|_| ResponseError::NotAnIndex { value: cut(value) })?;
    if id >= count {
        return Err(ResponseError::UnknownChoice { id, count });
    }
    Ok(id)
}

/// Parses a typed number: `3.14`, `-2`, `1e3`, and `3,14` with a decimal comma (one comma,
/// no point). `inf`, `NaN` and overflowing numbers are refused.
pub(crate) fn parse_number(value: &str) -> Result<f64, ResponseError> {
    let v = value.trim();
    let normalised;
    let text = if v.matches(',').count() == 1 && !v.contains('.') {
        normalised = v.replace(',', ".");
        normalised.as_str()
    } else {
        v
    };
    // Rust's float parser also reads "inf", "NaN" and "infinity": only digits, signs, one
    // exponent and points are a number here.
    let plausible = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !plausible {
        return Err(ResponseError::NotANumber { value: cut(value) });
    }
    let n: f64 = text
        .parse()
        .map_err(|_| ResponseError::NotANumber { value: cut(value) })?;
    if !n.is_finite() {
        return Err(ResponseError::NotFinite { value: cut(value) });
    }
    Ok(n)
}

/// Error messages repeat the value sent; cut it so a hostile megabyte is not echoed back.
fn cut(value: &str) -> String {
    const MAX: usize = 40;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let mut s: String = value.chars().take(MAX).collect();
        s.push('…');
        s
    }
}
