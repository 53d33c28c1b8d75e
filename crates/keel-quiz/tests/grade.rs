//! Grading every kind by Moodle's rules, its edges (tolerances, ranges, typo limits), and
//! parse_response's refusals.

// 3.14 is a quiz answer here, not an approximation of π.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::approx_constant,
    missing_docs
)]

use keel_quiz::{
    gift, grade, parse_response, Grade, Question, Response, ResponseError, DOES_NOT_FIT,
    MAX_TEXT_CHARS, NOT_ANSWERED,
};

fn q(src: &str) -> Question {
    let mut qs = gift::parse(src).unwrap();
    assert_eq!(qs.len(), 1);
    qs.remove(0)
}

/// Grades the form values as the site would.
fn g(question: &Question, values: &[&str]) -> Grade {
    let r = parse_response(question, values).unwrap();
    grade(question, r.as_ref())
}

fn fraction(question: &Question, values: &[&str]) -> f64 {
    g(question, values).fraction
}

fn text(value: &str) -> Response {
    Response::Text {
        value: value.into(),
    }
}

fn number(value: f64) -> Response {
    Response::Number { value }
}

// ---- single ----

#[test]
fn single_choice_weights_and_feedback() {
    let s = q("Q? {=right#Yes ~%50%half#Half ~%-50%bad#Bad ~wrong}");
    let right = g(&s, &["0"]);
    assert_eq!(right.fraction, 1.0);
    assert!(right.correct);
    assert_eq!(right.feedback, ["Yes"]);
    assert_eq!(right.right_answer, "right");
    let half = g(&s, &["1"]);
    assert_eq!(half.fraction, 0.5);
    assert!(!half.correct);
    assert_eq!(half.feedback, ["Half"]);
    // Negative credit is floored at 0.
    assert_eq!(fraction(&s, &["2"]), 0.0);
    let wrong = g(&s, &["3"]);
    assert_eq!(wrong.fraction, 0.0);
    assert!(wrong.feedback.is_empty());
}

#[test]
fn unanswered_scores_zero_with_feedback() {
    let s = q("Q? {=a ~b}");
    let none = g(&s, &[]);
    assert_eq!(none.fraction, 0.0);
    assert_eq!(none.feedback, [NOT_ANSWERED]);
    assert_eq!(g(&s, &["", "  "]).feedback, [NOT_ANSWERED]);
    assert_eq!(none.right_answer, "a");
}

#[test]
fn a_response_of_the_wrong_shape_scores_zero() {
    let s = q("Q? {=a ~b}");
    let r = grade(&s, Some(&text("a")));
    assert_eq!(r.fraction, 0.0);
    assert_eq!(r.feedback, [DOES_NOT_FIT]);
    // An id past the choices (a forged response that skipped parse_response).
    assert_eq!(grade(&s, Some(&Response::Choice { id: 99 })).fraction, 0.0);
}

// ---- multiple ----

#[test]
fn multiple_sums_weights_floors_at_zero_and_caps_at_one() {
    let m = q("Q? {~%50%a#A ~%50%b#B ~%-100%c#C ~d}");
    let both = g(&m, &["0", "1"]);
    assert_eq!(both.fraction, 1.0);
    assert!(both.correct);
    assert_eq!(both.feedback, ["A", "B"]);
    assert_eq!(both.right_answer, "a; b");
    assert_eq!(fraction(&m, &["0"]), 0.5);
    assert_eq!(fraction(&m, &["1", "3"]), 0.5);
    // 50 - 100 → floored at 0.
    assert_eq!(fraction(&m, &["0", "2"]), 0.0);
    // Ticking everything: 50 + 50 - 100 + 0.
    assert_eq!(fraction(&m, &["0", "1", "2", "3"]), 0.0);
    // Feedback of every picked choice, in stored order.
    assert_eq!(g(&m, &["2", "0"]).feedback, ["A", "C"]);
}

#[test]
fn multiple_thirds_count_as_correct() {
    let m = q("Q? {~%33.333%a ~%33.333%b ~%33.333%c ~%-100%d}");
    let all = g(&m, &["0", "1", "2"]);
    assert!((all.fraction - 0.99999).abs() < 1e-12);
    assert!(all.correct);
}

#[test]
fn multiple_graded_directly_ignores_duplicates_and_unknown_ids() {
    let m = q("Q? {~%50%a ~%50%b ~%-100%c}");
    let r = Response::Choices {
        ids: vec![0, 0, 0, 7],
    };
    assert_eq!(grade(&m, Some(&r)).fraction, 0.5);
}

// ---- true/false ----

#[test]
fn true_false_and_per_answer_feedback() {
    let t = q("Statement. {TRUE#wrong fb#right fb}");
    let right = g(&t, &["true"]);
    assert_eq!(
        (right.fraction, right.feedback.clone()),
        (1.0, vec!["right fb".to_owned()])
    );
    assert_eq!(right.right_answer, "True");
    let wrong = g(&t, &["false"]);
    assert_eq!(
        (wrong.fraction, wrong.feedback),
        (0.0, vec!["wrong fb".to_owned()])
    );
    let f = q("Statement. {F}");
    assert_eq!(fraction(&f, &["0"]), 1.0);
    assert_eq!(fraction(&f, &["TRUE"]), 0.0);
    assert_eq!(g(&f, &["1"]).right_answer, "False");
}

// ---- short ----

#[test]
fn short_normalises_case_and_whitespace() {
    let s = q("Algorithm? {=Leaky bucket#Yes =%50%token bucket#Close}");
    assert_eq!(fraction(&s, &["  leaky    BUCKET "]), 1.0);
    let close = g(&s, &["Token\tBucket"]);
    assert_eq!(close.fraction, 0.5);
    assert_eq!(close.feedback, ["Close"]);
    assert_eq!(fraction(&s, &["bucket"]), 0.0);
    assert_eq!(g(&s, &["x"]).right_answer, "Leaky bucket");
}

#[test]
fn short_case_sensitive() {
    let s = q("// keel: case_sensitive=true\nHeader? {=X-Real-IP}");
    assert_eq!(fraction(&s, &["X-Real-IP"]), 1.0);
    assert_eq!(fraction(&s, &["x-real-ip"]), 0.0);
}

#[test]
fn unicode_case_folding() {
    let s = q("Word? {=ÉTÉ}");
    assert_eq!(fraction(&s, &["été"]), 1.0);
}

#[test]
fn typo_tolerance_limits() {
    let s = q("// keel: typo_tolerance=1\nWorker class? {=gthread}");
    assert_eq!(fraction(&s, &["gthread"]), 1.0);
    assert_eq!(
        fraction(&s, &["gthraed"]),
        1.0,
        "one transposition = 1 edit"
    );
    assert_eq!(fraction(&s, &["gthred"]), 1.0, "one deletion");
    assert_eq!(fraction(&s, &["gtrhaed"]), 0.0, "two edits > tolerance 1");
    let s2 = q("// keel: typo_tolerance=2\nWorker class? {=gthread}");
    assert_eq!(fraction(&s2, &["gtrhaed"]), 1.0, "two edits = tolerance 2");
    assert_eq!(fraction(&s2, &["gxrhaxd"]), 0.0, "three edits");
    // Without a tolerance, only exact answers.
    let exact = q("Worker class? {=gthread}");
    assert_eq!(fraction(&exact, &["gthraed"]), 0.0);
}

#[test]
fn typo_tolerance_needs_answers_of_four_chars() {
    let short = q("// keel: typo_tolerance=1\nMethod? {=GET}");
    assert_eq!(fraction(&short, &["GET"]), 1.0);
    assert_eq!(fraction(&short, &["GTE"]), 0.0, "3 chars: exact only");
    let four = q("// keel: typo_tolerance=1\nMethod? {=POST}");
    assert_eq!(
        fraction(&four, &["PSOT"]),
        1.0,
        "4 chars: tolerance applies"
    );
}

#[test]
fn exact_match_wins_over_typo_match_and_best_typo_weight_wins() {
    let s = q("// keel: typo_tolerance=1\nWord? {=colour#100 =%50%color#50}");
    // "color" is exact for the 50% answer although one edit from the 100% one.
    assert_eq!(g(&s, &["color"]).feedback, ["50"]);
    // "colo" is one edit from "color" (50%) and two from "colour": 50%.
    assert_eq!(fraction(&s, &["colo"]), 0.5);
    let s = q("// keel: typo_tolerance=1\nWord? {=%50%abcd#50 =abce#100}");
    // "abcf" is one edit from both: the best weight wins.
    assert_eq!(g(&s, &["abcf"]).feedback, ["100"]);
}

#[test]
fn a_hostile_long_answer_is_cheap_and_wrong() {
    let s = q("// keel: typo_tolerance=3\nWord? {=gthread}");
    let long = "g".repeat(MAX_TEXT_CHARS);
    assert_eq!(fraction(&s, &[&long]), 0.0);
    let too_long = "g".repeat(MAX_TEXT_CHARS + 1);
    assert_eq!(
        parse_response(&s, &[&too_long]),
        Err(ResponseError::TooLong {
            max: MAX_TEXT_CHARS
        })
    );
}

// ---- numeric ----

#[test]
fn numeric_tolerance_edges_are_inclusive() {
    let n = q("Pi? {#3.14:0.01#In}");
    assert_eq!(fraction(&n, &["3.14"]), 1.0);
    // 3.15 - 3.14 = 0.010000000000000231 in binary: the margin keeps the edge inside.
    assert_eq!(fraction(&n, &["3.15"]), 1.0);
    assert_eq!(fraction(&n, &["3.13"]), 1.0);
    assert_eq!(fraction(&n, &["3.1500001"]), 0.0);
    assert_eq!(fraction(&n, &["3.1299999"]), 0.0);
    assert_eq!(g(&n, &["3,145"]).feedback, ["In"]);
    assert_eq!(g(&n, &["1"]).right_answer, "3.14 ± 0.01");
}

#[test]
fn numeric_exact_value() {
    let n = q("Workers × threads? {#32}");
    assert_eq!(fraction(&n, &["32"]), 1.0);
    assert_eq!(fraction(&n, &[" 32.0 "]), 1.0);
    assert_eq!(fraction(&n, &["32.000001"]), 0.0);
    assert_eq!(fraction(&n, &["31"]), 0.0);
    assert_eq!(g(&n, &["1"]).right_answer, "32");
    let zero = q("Zero? {#0}");
    assert_eq!(fraction(&zero, &["0"]), 1.0);
    assert_eq!(fraction(&zero, &["-0"]), 1.0);
    assert_eq!(fraction(&zero, &["1e-300"]), 0.0);
}

#[test]
fn numeric_range_edges() {
    let n = q("Pick {#1..5}");
    assert_eq!(fraction(&n, &["1"]), 1.0);
    assert_eq!(fraction(&n, &["5"]), 1.0);
    assert_eq!(fraction(&n, &["3"]), 1.0);
    assert_eq!(fraction(&n, &["0.999999"]), 0.0);
    assert_eq!(fraction(&n, &["5.000001"]), 0.0);
    assert_eq!(g(&n, &["1"]).right_answer, "from 1 to 5");
}

#[test]
fn numeric_best_weight_among_matches() {
    let n = q("Pi? {#=3.14:0.005#exact =%50%3.1:0.1#close}");
    assert_eq!(g(&n, &["3.141"]).feedback, ["exact"]); // both match: 100% wins
    let close = g(&n, &["3.05"]);
    assert_eq!(
        (close.fraction, close.feedback),
        (0.5, vec!["close".to_owned()])
    );
    assert_eq!(fraction(&n, &["2"]), 0.0);
}

#[test]
fn numeric_graded_directly_refuses_non_finite() {
    let n = q("Pick {#1..5}");
    assert_eq!(grade(&n, Some(&number(f64::NAN))).fraction, 0.0);
    assert_eq!(grade(&n, Some(&number(f64::INFINITY))).fraction, 0.0);
    let wide = q("Any {#-1e308..1e308}");
    assert_eq!(grade(&wide, Some(&number(f64::INFINITY))).fraction, 0.0);
}

// ---- matching ----

#[test]
fn matching_counts_right_pairs() {
    let m = q("Match. {=a -> 1 =b -> 2 =c -> 3 =d -> 4}");
    assert_eq!(fraction(&m, &["0", "1", "2", "3"]), 1.0);
    assert_eq!(fraction(&m, &["1", "0", "2", "3"]), 0.5);
    assert_eq!(fraction(&m, &["0", "", "", ""]), 0.25);
    assert_eq!(fraction(&m, &["3", "3", "3", "3"]), 0.25);
    assert!(g(&m, &["", "", "", ""]).feedback == [NOT_ANSWERED]);
    assert_eq!(g(&m, &[]).right_answer, "a → 1; b → 2; c → 3; d → 4");
}

#[test]
fn matching_with_a_shared_right_item() {
    let m = q("Match. {=GET -> safe =HEAD -> safe =POST -> unsafe}");
    // Picking the other "safe" item is as right as picking its own.
    assert_eq!(fraction(&m, &["1", "0", "2"]), 1.0);
}

#[test]
fn matching_graded_directly_tolerates_short_and_bad_picks() {
    let m = q("Match. {=a -> 1 =b -> 2}");
    let r = Response::Matches {
        picks: vec![Some(0), Some(usize::MAX), Some(1)],
    };
    assert_eq!(grade(&m, Some(&r)).fraction, 0.5);
    let r = Response::Matches { picks: vec![] };
    assert_eq!(grade(&m, Some(&r)).fraction, 0.0);
}

// ---- description ----

#[test]
fn description_is_not_graded() {
    let d = q("Just text.");
    let r = g(&d, &["anything"]);
    assert_eq!(r.fraction, 0.0);
    assert!(!r.correct);
    assert!(r.feedback.is_empty());
    assert_eq!(parse_response(&d, &["0"]), Ok(None));
}

// ---- parse_response refusals ----

#[test]
fn refuses_unknown_choice_ids() {
    let s = q("Q? {=a ~b}");
    assert_eq!(
        parse_response(&s, &["2"]),
        Err(ResponseError::UnknownChoice { id: 2, count: 2 })
    );
    assert_eq!(
        parse_response(&s, &["2"]).unwrap_err().to_string(),
        "choice 2 does not exist: this question has 2 choices"
    );
    let m = q("Q? {~%50%a ~%50%b}");
    assert_eq!(
        parse_response(&m, &["0", "5"]),
        Err(ResponseError::UnknownChoice { id: 5, count: 2 })
    );
}

#[test]
fn refuses_garbage_ids() {
    let s = q("Q? {=a ~b}");
    for bad in ["-1", "+1", "1.0", "one", "0x1", "99999999999999999999999"] {
        assert!(
            matches!(
                parse_response(&s, &[bad]),
                Err(ResponseError::NotAnIndex { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        parse_response(&s, &["one"]).unwrap_err().to_string(),
        "'one' is not a choice number"
    );
}

#[test]
fn refuses_duplicates_and_extra_values() {
    let m = q("Q? {~%50%a ~%50%b}");
    assert_eq!(
        parse_response(&m, &["1", "1"]),
        Err(ResponseError::Duplicate { id: 1 })
    );
    let s = q("Q? {=a ~b}");
    assert_eq!(
        parse_response(&s, &["0", "1"]),
        Err(ResponseError::TooManyValues { got: 2 })
    );
    let n = q("N {#1}");
    assert_eq!(
        parse_response(&n, &["1", "2"]),
        Err(ResponseError::TooManyValues { got: 2 })
    );
}

#[test]
fn refuses_non_bools() {
    let t = q("S {T}");
    assert_eq!(
        parse_response(&t, &["yes"]),
        Err(ResponseError::NotABool {
            value: "yes".into()
        })
    );
}

#[test]
fn parses_and_refuses_numbers() {
    let n = q("N {#3.14:0.01}");
    for (input, value) in [
        ("3.14", 3.14),
        ("3,14", 3.14),
        ("  -2.5 ", -2.5),
        ("1e3", 1000.0),
        (".5", 0.5),
    ] {
        assert_eq!(
            parse_response(&n, &[input]),
            Ok(Some(Response::Number { value })),
            "{input}"
        );
    }
    for bad in [
        "NaN",
        "inf",
        "-infinity",
        "1,000.5",
        "1,2,3",
        "abc",
        "3.14abc",
        "0x10",
    ] {
        assert!(
            matches!(
                parse_response(&n, &[bad]),
                Err(ResponseError::NotANumber { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        parse_response(&n, &["1e999"]),
        Err(ResponseError::NotFinite {
            value: "1e999".into()
        })
    );
    // A long value is cut in the message.
    let long = "x".repeat(500);
    let msg = parse_response(&n, &[&long]).unwrap_err().to_string();
    assert!(msg.chars().count() < 70, "{msg}");
}

#[test]
fn matching_values() {
    let m = q("Match. {=a -> 1 =b -> 2 =c -> 3}");
    assert_eq!(
        parse_response(&m, &["2", "", "0"]),
        Ok(Some(Response::Matches {
            picks: vec![Some(2), None, Some(0)]
        }))
    );
    assert_eq!(parse_response(&m, &["", "", ""]), Ok(None));
    assert_eq!(parse_response(&m, &[]), Ok(None));
    assert_eq!(
        parse_response(&m, &["0", "1"]),
        Err(ResponseError::WrongValueCount {
            expected: 3,
            got: 2
        })
    );
    assert_eq!(
        parse_response(&m, &["0", "1", "3"]),
        Err(ResponseError::UnknownChoice { id: 3, count: 3 })
    );
}

#[test]
fn responses_serialise_with_a_type_tag() {
    let r = Response::Choices { ids: vec![0, 2] };
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, r#"{"type":"choices","ids":[0,2]}"#);
    assert_eq!(serde_json::from_str::<Response>(&json).unwrap(), r);
}
