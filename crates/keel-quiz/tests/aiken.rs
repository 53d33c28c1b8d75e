//! Aiken import: the format's forms and every error with its line.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use keel_quiz::aiken::parse;
use keel_quiz::{Choice, Kind};

fn errors(src: &str) -> Vec<(usize, String)> {
    match parse(src) {
        Ok(qs) => panic!("expected errors, parsed {qs:#?}"),
        Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
    }
}

#[test]
fn reads_the_sample() {
    let qs = parse(include_str!("fixtures/aiken/sample.txt")).unwrap();
    assert_eq!(qs.len(), 3);
    assert_eq!(
        qs[0].stem,
        "Which status does nginx's limit_req send by default?"
    );
    assert_eq!(
        qs[0].kind,
        Kind::Single {
            choices: vec![
                Choice {
                    text: "429 Too Many Requests".into(),
                    weight: 0.0,
                    feedback: None
                },
                Choice {
                    text: "503 Service Unavailable".into(),
                    weight: 100.0,
                    feedback: None
                },
                Choice {
                    text: "502 Bad Gateway".into(),
                    weight: 0.0,
                    feedback: None
                },
            ]
        }
    );
    let Kind::Single { choices } = &qs[1].kind else {
        panic!()
    };
    assert_eq!(choices.len(), 4);
    assert_eq!(choices[2].weight, 100.0);
    // A stem over two lines keeps both.
    assert_eq!(
        qs[2].stem,
        "Which Redis command returns the number of subscribers that received a message?\nIt is the one a publisher calls."
    );
    for q in &qs {
        assert_eq!(q.validate(), Ok(()));
        assert_eq!(q.name, None);
        assert_eq!(q.category, None);
    }
}

#[test]
fn questions_without_blank_lines_between_them() {
    let qs = parse("Q1?\nA. x\nB. y\nANSWER: A\nQ2?\nA. x\nB. y\nANSWER: B\n").unwrap();
    assert_eq!(qs.len(), 2);
    assert_eq!(qs[1].stem, "Q2?");
}

#[test]
fn crlf_bom_and_spacing() {
    let qs = parse("\u{feff}Q?\r\n  A.\tx\r\nB.   y  \r\nANSWER:B\r\n").unwrap();
    let Kind::Single { choices } = &qs[0].kind else {
        panic!()
    };
    assert_eq!(choices[0].text, "x");
    assert_eq!(choices[1].text, "y");
    assert_eq!(choices[1].weight, 100.0);
}

#[test]
fn a_line_like_a_choice_without_a_space_is_text() {
    let qs = parse("A.B. testing is a method?\nA. yes\nB. no\nANSWER: A").unwrap();
    assert_eq!(qs[0].stem, "A.B. testing is a method?");
}

#[test]
fn missing_answer_line() {
    assert_eq!(
        errors("Q1?\nA. x\nB. y\n\nQ2?\nA. x\nB. y\nANSWER: A"),
        [(
            1,
            "the question has no ANSWER: line after its choices".to_owned()
        )]
    );
    assert_eq!(
        errors("Q?\nA. x\nB. y\n"),
        [(
            1,
            "the question has no ANSWER: line after its choices".to_owned()
        )]
    );
}

#[test]
fn answer_not_among_choices() {
    assert_eq!(
        errors("Q?\nA. x\nB. y\nANSWER: C"),
        [(4, "ANSWER: C is not one of the choices".to_owned())]
    );
}

#[test]
fn malformed_answer() {
    assert_eq!(
        errors("Q?\nA. x\nB. y\nANSWER: AB"),
        [(
            4,
            "ANSWER: must be one capital letter, found 'AB'".to_owned()
        )]
    );
    assert_eq!(
        errors("Q?\nA. x\nB. y\nANSWER:"),
        [(4, "ANSWER: must be one capital letter, found ''".to_owned())]
    );
}

#[test]
fn too_few_choices() {
    assert_eq!(
        errors("\nQ?\nA. x\nANSWER: A"),
        [(
            2,
            "a question needs at least 2 choices (found 1)".to_owned()
        )]
    );
    assert_eq!(
        errors("Q?\nANSWER: A"),
        [
            (
                1,
                "a question needs at least 2 choices (found 0)".to_owned()
            ),
            (2, "ANSWER: A is not one of the choices".to_owned()),
        ]
    );
}

#[test]
fn duplicate_letter() {
    assert_eq!(
        errors("Q?\nA. x\nA. y\nB. z\nANSWER: A"),
        [(3, "choice A appears twice".to_owned())]
    );
}

#[test]
fn choice_or_answer_without_question() {
    assert_eq!(
        errors("A. x\nB. y\nANSWER: A"),
        [
            (1, "choice A without a question before it".to_owned()),
            (2, "choice B without a question before it".to_owned()),
            (3, "ANSWER: without a question before it".to_owned()),
        ]
    );
}

#[test]
fn every_error_is_reported() {
    let src = "Q1?\nA. x\nB. y\nANSWER: Z\n\nQ2?\nA. x\nANSWER: A\n\nQ3?\nA. x\nB. y\nANSWER: B";
    let lines: Vec<usize> = errors(src).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, [4, 6]);
}
