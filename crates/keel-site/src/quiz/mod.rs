//! Quizzes on the site: the question bank and attempts in the database (`store`), the
//! reader's pages (`pages`) and the staff's admin (`staff`). The quiz domain itself —
//! question types, GIFT and Aiken, grading, seeded draws, item analysis — is the
//! `keel-quiz` crate, which has no HTTP and no database in it. Live rooms (`live`,
//! `live_store`) play a quiz with many readers at once over the live-event hub.

/// Slugs a quiz cannot have: they are the section's own pages.
pub const RESERVED_SLUGS: &[&str] = &["live", "history", "attempts"];

pub(crate) mod live;
pub mod live_store;
pub(crate) mod pages;
pub mod staff;
pub mod store;
