//! GIFT, Moodle's text format for questions: [`parse`] reads a file into [`Question`]s,
//! [`export`] writes questions back so that `parse(export(qs)) == qs`.
//!
//! ```
//! let qs = keel_quiz::gift::parse(
//!     "::Burst:: With `burst=5 nodelay`, how many requests over the rate pass at once? {#5}",
//! )
//! .map_err(|e| format!("{e:?}"))?;
//! assert_eq!(qs[0].name.as_deref(), Some("Burst"));
//! assert_eq!(keel_quiz::gift::parse(&keel_quiz::gift::export(&qs)).ok(), Some(qs));
//! # Ok::<(), String>(())
//! ```
//!
//! # What is read (as Moodle's `qformat_gift` reads it)
//! - Questions are separated by blank lines; a question may span several lines (joined
//!   with newlines). Lines starting with `//` are comments.
//! - `$CATEGORY: a/b/c` sets the category of the questions that follow (an empty value
//!   resets it to none).
//! - `::title::` names a question; `[markdown]`, `[html]`, `[plain]`, `[moodle]` before a
//!   text are accepted and dropped (texts are Markdown).
//! - The answer block `{...}`; text after it makes a missing-word question, whose stem gets
//!   [`BLANK`](crate::BLANK) where the block was. No block: a description.
//! - In a block: `=` right, `~` wrong, `%n%` weights after either, `#feedback` after an
//!   answer, `####general feedback` last.
//!   - Any `~`: a choice question. Exactly one `=` worth 100% → [`Kind::Single`] (the
//!     other choices, `~` or `=%n%`, may carry partial or negative weights); otherwise
//!     [`Kind::Multiple`] (`~%n%` weights, or several unweighted `=` sharing 100% equally).
//!   - `{T}`, `{TRUE}`, `{F}`, `{FALSE}`, optionally `#feedback if wrong#feedback if right`.
//!   - Only `=` answers: a short answer (`=%50%` for partial credit; a first answer
//!     without `=` counts too, as in Moodle). Case-insensitive, no typo tolerance.
//!   - `#` first: numeric, `{#3.14:0.01}`, `{#1..5}` or `{#=3.14:0 =%50%3.1:0.1}`.
//!   - `=left -> right` pairs: matching.
//!   - `{}`: an essay, refused.
//! - Escapes `\~ \= \# \{ \} \: \\`, and `\n` for a line break inside a text.
//!
//! Every error of the file is reported with its line, not just the first, and every question
//! must pass [`Question::validate`].
//!
//! # keel's extension: short-answer settings
//! GIFT cannot say that a short answer is case-sensitive or forgives typos. keel writes
//! those settings as a comment line in the question's paragraph, before it:
//!
//! ```text
//! // keel: typo_tolerance=1 case_sensitive=true
//! Which algorithm does limit_req use? {=leaky bucket}
//! ```
//!
//! Moodle ignores the line (it is a comment); keel reads it. It is an error on any other
//! kind of question, and an unknown key is an error.
//!
//! # Where it differs from Moodle
//! - Stricter: a stray `}`, a second answer block in one paragraph, text before the first
//!   `=`/`~` of a block, or a weight outside -100..100 are errors (Moodle guesses or drops).
//! - Several `=` in a choice block make a multiple-answer question sharing 100% (Moodle
//!   makes a single-choice question where any of them is fully right).
//! - A matching question needs 2 pairs (Moodle: 3) and no distractors (empty left side).
//! - Short answers: no `*` wildcard.
//!
//! # Export and round trip
//! [`export`] writes `$CATEGORY:` lines when the category changes, titles, weights as
//! shortest round-trip decimals, and escapes every special character, so `parse` reads back
//! an equal list for questions that pass [`Question::validate`]. Export normalises what GIFT
//! cannot hold: texts are trimmed and blank optional texts are left out.

mod export;
mod parse;
mod scan;

pub use export::export;
pub use parse::parse;

#[cfg(doc)]
use crate::model::{Kind, Question};

/// The format markers Moodle accepts before a text (`[markdown]` and so on).
const FORMAT_MARKERS: [&str; 4] = ["[markdown]", "[html]", "[plain]", "[moodle]"];

/// The prefix of keel's settings comment (after `//` and optional spaces).
const SETTINGS_PREFIX: &str = "keel:";
