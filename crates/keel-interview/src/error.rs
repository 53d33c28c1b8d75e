//! The crate's errors: [`ParseError`] for bank files (a line and a sentence; the parser
//! collects every one of a file so an author fixes it in one pass) and [`SetupError`] for
//! a session that cannot start. The model client's [`crate::ModelError`] lives with the
//! client in `openai.rs`.

/// A problem in a bank file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The 1-based line of the problem, or of the section header when the problem is the
    /// section as a whole (a missing field).
    pub line: usize,
    /// What is wrong, as a sentence an author can act on.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// Why [`crate::Session::new`] refused a setup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The setup names a different track than the one passed in.
    #[error("the setup asks for track `{wanted}` but the bank passed is `{got}`")]
    WrongTrack {
        /// `Setup::track`.
        wanted: String,
        /// `Track::name` of the bank passed.
        got: String,
    },
    /// The length is not one the site offers ([`crate::LENGTHS`]).
    #[error("an interview has 5, 8 or 12 questions, not {0}")]
    Length(usize),
    /// The track has no questions at all.
    #[error("track `{0}` has no questions")]
    EmptyTrack(String),
}
