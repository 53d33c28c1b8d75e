//! keel's AI Interviewer, the domain without HTTP or storage: mock technical interviews on
//! the blog's subjects that work offline, with no model. The reader is asked a question,
//! answers in their own words, gets follow-ups on what they missed, and finishes with an
//! honest report. The site crate stores sessions as JSON (every type here is serde) and
//! calls these functions; a language model, when configured, only proposes verdicts that
//! the rubric checks, and may rephrase what the interviewer says.
//!
//! ```
//! use keel_interview::{shipped, Level, Mode, Session, Setup};
//!
//! let edge = shipped().into_iter().find(|t| t.name == "edge").ok_or("no edge track")?;
//! let setup = Setup { track: "edge".into(), level: Level::Junior, length: 5, mode: Mode::Practice, seed: 7 };
//! let mut session = Session::new(&edge, setup).map_err(|e| e.to_string())?;
//! println!("{}", session.prompt(&edge));
//! let reply = session.answer(&edge, "I don't know", None);
//! assert_eq!(reply.verdict.map(|v| v.score), Some(0.0));
//! // The last sentence is always the interviewer's next question.
//! assert_eq!(reply.says.last(), Some(&session.prompt(&edge)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where the ideas come from
//! - Google's **Interview Warmup**: talking points rather than fake grades — the report
//!   lists which key points each answer covered, with the words that showed them.
//! - **LLM interview agents**: a role and level to choose, follow-up questions, a
//!   JSON-scored answer, a final report — but here the JSON verdict is only a proposal.
//! - **AutoTutor**'s expectation coverage: each question has expectations (key points) and
//!   misconceptions, and a ladder for each missing expectation: prompt → hint → state it.
//!
//! # Files
//! - `bank.rs`: [`Track`], [`BankQuestion`], [`KeyPoint`], [`Misconception`], [`Matcher`],
//!   [`Level`], [`parse_track`], [`export_track`] — the bank format (documented there).
//! - `text.rs` (private): normalisation — words, a light stemmer, function words,
//!   negation, typo distance.
//! - `score.rs`: [`assess`], [`Verdict`], [`Evidence`], [`score_of`] — the rubric engine.
//! - `session.rs`: [`Session`], [`Setup`], [`Mode`], [`Step`], [`Stage`], [`Reply`],
//!   [`Report`] — the interview as a serde state machine.
//! - `model.rs`: [`Proposal`], [`parse_proposal`], [`check`], [`prompt_messages`],
//!   [`rubric_says`] — who proposes (a model) and who decides (the rubric).
//! - `openai.rs`: [`OpenAiClient`], [`ModelConfig`], [`ModelError`] — an OpenAI-compatible
//!   client (OpenAI, Ollama, llama.cpp, vLLM, LM Studio), streamed or not.
//! - `tracks.rs`: [`TRACKS`], [`shipped`] — the four shipped banks (`tracks/*.txt`).
//! - the seeded draws use `keel-seed` (SplitMix64 and Fisher-Yates, pinned by test vectors),
//!   shared with the other domain crate.
//! - `error.rs`: [`ParseError`], [`SetupError`].
//!
//! # Design
//! - **Deterministic rubric first**: with no model configured, everything works — grading,
//!   follow-ups, the report. The same bank and answer give the same verdict forever, so a
//!   bank fix re-grades stored sessions exactly ([`Session::regrade`]).
//! - **Untrusted everything**: answers, bank files and model output never panic anything;
//!   answers are graded up to [`MAX_ANSWER_CHARS`], model replies are parsed defensively
//!   and checked against the answer's own words.
//! - **No fake precision**: keyword lists are capped ([`STUFFING_CAP`]), off-topic answers
//!   too ([`OFF_TOPIC_CAP`]), and "I don't know" is an answer that starts the hint ladder.
//!
//! # Measured (criterion, release, shared 2-core VM; `benches/assess.rs`)
//! | what | time |
//! |---|---|
//! | [`assess`]: a typical 90-word answer to a 4-point question | ~45–58 µs |
//! | [`assess`]: a 900-word answer | ~250–335 µs |
//! | [`check`]: the same 90 words against a proposal naming every id | ~95–120 µs |
//! | [`assess`] of every shipped model answer (36 questions) | ~2.3 ms |
//! | [`parse_track`] of `tracks/edge.txt` | ~370 µs |
//!
//! (Ranges: several runs on the same shared VM.) Off-topic answers cost more
//! than on-topic ones: only they need the question's vocabulary built.
//!
//! Staff editing a bank can run `cargo run -p keel-interview --example check_bank --
//! path/to/track.txt`: it applies the rules `tests/score.rs` holds the shipped banks to.

#![forbid(unsafe_code)]

mod bank;
mod error;
mod model;
mod openai;
mod score;
mod session;
mod text;
mod tracks;

pub use bank::{
    export_track, parse_track, BankQuestion, KeyPoint, Level, Matcher, Misconception, Track,
    UnknownLevel, MAX_NEAR_WINDOW,
};
pub use error::{ParseError, SetupError};
pub use model::{
    check, parse_proposal, phrase_messages, prompt_messages, rubric_says, ChatMessage, Proposal,
    ANSWER_BEGIN, ANSWER_END, MAX_PROPOSAL_BYTES,
};
pub use openai::{
    ModelConfig, ModelError, OpenAiClient, ERROR_EXCERPT_CHARS, MAX_LINE_BYTES, MAX_RESPONSE_BYTES,
};
pub use score::{
    assess, score_of, Evidence, Verdict, MAX_ANSWER_CHARS, OFF_TOPIC_CAP, STUFFING_CAP,
};
pub use session::{
    Mode, Reply, Report, ReportItem, Rung, Session, Setup, Stage, Step, Turn, UnknownMode, LENGTHS,
    MAX_FOLLOW_UPS,
};
pub use tracks::{shipped, TRACKS};
