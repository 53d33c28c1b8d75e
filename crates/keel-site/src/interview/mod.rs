//! The AI Interviewer on the site: the reader's pages (`pages`), the staff's banks and
//! regrades (`staff`) and the SQL (`store`). The interviewer itself — banks, the rubric
//! engine, the session state machine, the OpenAI-compatible client — is the
//! `keel-interview` crate, which has no HTTP server and no database in it.

pub(crate) mod pages;
pub(crate) mod staff;
pub mod store;

/// The interviewer's model, when configured: the client and the daily budget of answers
/// per reader (or address) that may use it.
#[derive(Debug, Clone, Default)]
pub struct Interviewer {
    /// `None`: the rubric engine alone, and no data leaves the machine.
    pub client: Option<keel_interview::OpenAiClient>,
    /// Answers per reader per day that may use the model.
    pub daily_turns: u32,
}
