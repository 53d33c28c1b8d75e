//! Aiken, Moodle's simplest import format: single-choice questions only.
//!
//! ```text
//! Which status does nginx's limit_req send by default?
//! A. 429
//! B) 503
//! C. 502
//! ANSWER: B
//! ```
//!
//! The question text (one or more lines), then choice lines `A. text` or `A) text` (capital
//! letter, `.` or `)`, a space), then `ANSWER: X`. Blank lines are ignored. Each question
//! becomes a [`Kind::Single`] with the answer worth 100% and the others 0%.
//!
//! Errors (all of them, with their lines): a choice before any question text, text after
//! the choices that is neither a choice nor `ANSWER:` (a missing `ANSWER:` line, reported
//! at the question), fewer than 2 choices, a repeated letter, an `ANSWER:` letter that is
//! not among the choices, an `ANSWER:` without a question. Moodle skips such questions
//! silently; keel refuses the file so nothing is lost unnoticed.

use crate::error::ParseError;
use crate::model::{Choice, Kind, Question};

/// Reads an Aiken file. Returns every question, or every error found (with its line).
pub fn parse(text: &str) -> Result<Vec<Question>, Vec<ParseError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut questions = Vec::new();
    let mut errors = Vec::new();
    let mut current: Option<Pending> = None;
    for (k, raw) in text.lines().enumerate() {
        let line = k + 1;
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(answer) = t.strip_prefix("ANSWER:") {
            match current.take() {
                Some(p) => match p.finish(answer.trim(), line) {
                    Ok(q) => questions.push(q),
                    Err(e) => errors.extend(e),
                },
                None => errors.push(ParseError::new(
                    line,
                    "ANSWER: without a question before it",
                )),
            }
            continue;
        }
        if let Some((letter, choice)) = choice_line(t) {
            match current.as_mut() {
                None => errors.push(ParseError::new(
                    line,
                    format!("choice {letter} without a question before it"),
                )),
                Some(p) => {
                    if p.choices.iter().any(|(l, _, _)| *l == letter) {
                        errors.push(ParseError::new(
                            line,
                            format!("choice {letter} appears twice"),
                        ));
                    } else if choice.is_empty() {
                        errors.push(ParseError::new(line, format!("choice {letter} is empty")));
                    } else {
                        p.choices.push((letter, choice.to_owned(), line));
                    }
                }
            }
            continue;
        }
        // Question text: starts a question, or continues one that has no choices yet.
        match current.as_mut() {
            Some(p) if p.choices.is_empty() => {
                p.stem.push('\n');
                p.stem.push_str(t);
            }
            Some(p) => {
                errors.push(ParseError::new(
                    p.line,
                    "the question has no ANSWER: line after its choices",
                ));
                current = Some(Pending::new(t, line));
            }
            None => current = Some(Pending::new(t, line)),
        }
    }
    if let Some(p) = current {
        errors.push(ParseError::new(
            p.line,
            "the question has no ANSWER: line after its choices",
        ));
    }
    if errors.is_empty() {
        Ok(questions)
    } else {
        Err(errors)
    }
}

/// A question being read.
struct Pending {
    stem: String,
    /// (letter, text, line).
    choices: Vec<(char, String, usize)>,
    /// The line of its first text line.
    line: usize,
}

impl Pending {
    fn new(text: &str, line: usize) -> Self {
        Self {
            stem: text.to_owned(),
            choices: Vec::new(),
            line,
        }
    }

    fn finish(self, answer: &str, answer_line: usize) -> Result<Question, Vec<ParseError>> {
        let mut errors = Vec::new();
        if self.choices.len() < 2 {
            errors.push(ParseError::new(
                self.line,
                format!(
                    "a question needs at least 2 choices (found {})",
                    self.choices.len()
                ),
            ));
        }
        let mut letters = answer.chars();
        let letter = match (letters.next(), letters.next()) {
            (Some(l), None) if l.is_ascii_uppercase() => Some(l),
            _ => {
                errors.push(ParseError::new(
                    answer_line,
                    format!("ANSWER: must be one capital letter, found '{answer}'"),
                ));
                None
            }
        };
        if let Some(l) = letter {
            if !self.choices.iter().any(|(c, _, _)| *c == l) {
                errors.push(ParseError::new(
                    answer_line,
                    format!("ANSWER: {l} is not one of the choices"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let choices = self
            .choices
            .into_iter()
            .map(|(c, text, _)| Choice {
                text,
                weight: if Some(c) == letter { 100.0 } else { 0.0 },
                feedback: None,
            })
            .collect();
        let q = Question {
            name: None,
            category: None,
            stem: self.stem,
            kind: Kind::Single { choices },
            general_feedback: None,
        };
        match q.validate() {
            Ok(()) => Ok(q),
            Err(problems) => Err(problems
                .into_iter()
                .map(|p| ParseError::new(self.line, p))
                .collect()),
        }
    }
}

/// `A. text` or `A) text`: the letter and the trimmed text.
fn choice_line(t: &str) -> Option<(char, &str)> {
    let mut chars = t.char_indices();
    let (_, letter) = chars.next()?;
    let (_, mark) = chars.next()?;
    if !letter.is_ascii_uppercase() || !matches!(mark, '.' | ')') {
        return None;
    }
    // Both are ASCII: the text starts at byte 2, after at least one space or tab.
    let rest = t.get(2..)?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((letter, rest.trim()))
}
