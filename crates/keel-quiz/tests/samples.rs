//! The site's sample quizzes (`crates/keel-site/quizzes/*.gift`) parse without error, are
//! valid, and survive an export round trip.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use keel_quiz::{gift, Kind};

#[test]
fn every_sample_quiz_parses_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keel-site/quizzes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "gift"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut kinds = std::collections::BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let qs = match gift::parse(&text) {
            Ok(qs) => qs,
            Err(errors) => panic!(
                "{}:\n{}",
                file.display(),
                errors
                    .iter()
                    .map(|e| format!("  {e}\n"))
                    .collect::<String>()
            ),
        };
        let graded = qs.iter().filter(|q| q.is_graded()).count();
        assert!(
            (6..=8).contains(&graded),
            "{}: {graded} graded questions",
            file.display()
        );
        for q in &qs {
            assert!(
                q.name.is_some(),
                "{}: untitled question {:?}",
                file.display(),
                q.stem
            );
            assert!(q.category.is_some(), "{}: no category", file.display());
            if q.is_graded() {
                assert!(
                    q.general_feedback.is_some(),
                    "{}: no general feedback on {:?}",
                    file.display(),
                    q.name
                );
            }
            kinds.insert(match &q.kind {
                Kind::Single { .. } => "single",
                Kind::Multiple { .. } => "multiple",
                Kind::TrueFalse { .. } => "true_false",
                Kind::Short { .. } => "short",
                Kind::Numeric { .. } => "numeric",
                Kind::Matching { .. } => "matching",
                Kind::Description => "description",
            });
        }
        let exported = gift::export(&qs);
        assert_eq!(
            gift::parse(&exported).as_ref(),
            Ok(&qs),
            "{} does not round-trip; exported as:\n{exported}",
            file.display()
        );
    }
    assert_eq!(
        kinds.len(),
        7,
        "every kind appears in the samples: {kinds:?}"
    );
}
