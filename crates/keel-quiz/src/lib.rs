//! keel's quizzes, the domain without HTTP or storage (Moodle's quiz module and question
//! bank, reduced to what a tech-learning blog needs): questions, their import from GIFT
//! and Aiken and export to GIFT, what a reader answered, grading, seeded draws and
//! shuffles, attempt scores, live-room points and item analysis. The site crate stores
//! questions as JSON (every type here is serde) and calls these functions.
//!
//! ```
//! use keel_quiz::{gift, grade, parse_response};
//!
//! let qs = gift::parse("Which status does limit_req send by default? {=503 ~429 ~502}")
//!     .map_err(|e| format!("{e:?}"))?;
//! let response = parse_response(&qs[0], &["0"]).map_err(|e| e.to_string())?;
//! let g = grade(&qs[0], response.as_ref());
//! assert!(g.correct);
//! assert_eq!(g.right_answer, "503");
//! # Ok::<(), String>(())
//! ```
//!
//! # Files, and where they sit in Moodle
//! - `model.rs`: [`Question`], [`Kind`] and the answer types, [`Question::validate`] —
//!   the question types (`question/type/*`), one enum instead of a plugin per type.
//! - `gift/`: [`gift::parse`], [`gift::export`] — `question/format/gift/format.php`.
//! - `aiken.rs`: [`aiken::parse`] — `question/format/aiken/format.php`.
//! - `response.rs`: [`Response`], [`parse_response`] — each type's
//!   `get_expected_data()`/`is_complete_response()`, strict instead of forgiving.
//! - `grade.rs`: [`grade`], [`Grade`] — each type's `grade_response()`.
//! - `attempt.rs`: [`draw`], [`choice_order`], [`new_seed`], [`percent`], [`overall`],
//!   [`may_show_answers`], [`live_points`] — `mod/quiz` attempts, grading methods and
//!   review options; live points follow Kahoot, which Moodle does not have.
//! - the seeded draws use `keel-seed` (SplitMix64 and Fisher-Yates, pinned by test vectors),
//!   shared with the other domain crate.
//! - `analysis.rs`: [`analyse`], [`to_csv`] — `mod/quiz/report/statistics`.
//! - `error.rs`: [`ParseError`], shared by the importers.
//!
//! # Design
//! - Pure functions over plain data: no clock, no database, no global state. Time comes
//!   in as `now_unix`, randomness as a stored `u64` seed, so an attempt replays exactly.
//! - Untrusted text never panics anything: importers return every error with its line,
//!   [`parse_response`] refuses what cannot be an answer, [`grade`] scores anything else 0.
//! - Weights are Moodle's percent (`-100..=100`) so GIFT imports keep their meaning.
//!
//! # Measured (criterion, release, shared 2-core VM; `benches/grade.rs`)
//! | what | time |
//! |---|---|
//! | one 20-question attempt of every kind: `parse_response` + `grade` each, then `percent` | ~3.6 µs |
//! | `gift::parse` of those 20 questions | ~36 µs |

#![forbid(unsafe_code)]

pub mod aiken;
mod analysis;
mod attempt;
mod error;
pub mod gift;
mod grade;
mod model;
mod response;

pub use analysis::{
    analyse, to_csv, Analysis, AttemptRecord, ItemRecord, ItemStats,
    MIN_ATTEMPTS_FOR_DISCRIMINATION,
};
pub use attempt::{
    choice_order, draw, live_points, may_show_answers, new_seed, overall, percent, GradingMethod,
    Pool, ReviewPolicy, UnknownName,
};
pub use error::ParseError;
pub use grade::{grade, Grade, DOES_NOT_FIT, NOT_ANSWERED};
pub use model::{
    Choice, Kind, MatchPair, NumericAnswer, NumericValue, Question, ShortAnswer, BLANK,
};
pub use response::{parse_response, Response, ResponseError, MAX_TEXT_CHARS};
