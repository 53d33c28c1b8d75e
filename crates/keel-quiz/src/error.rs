//! [`ParseError`], the error of both importers ([`crate::gift`], [`crate::aiken`]): a line
//! and a sentence. Importers collect every error of a file instead of stopping at the first,
//! so an author fixes a file in one pass.

/// A problem in an imported file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The 1-based line of the bad token, or of the question's first line when the problem
    /// is the question as a whole.
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
