//! Quizzes on the site: the question bank and attempts in the database (`store`), the
//! reader's pages (`pages`) and the staff's admin (`staff`). The quiz domain itself —
//! question types, GIFT and Aiken, grading, seeded draws, item analysis — is the
//! `keel-quiz` crate, which has no HTTP and no database in it.

pub(crate) mod pages;
pub mod staff;
pub mod store;
