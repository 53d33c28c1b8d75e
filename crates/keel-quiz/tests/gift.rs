//! GIFT import and export: one fixture per syntax feature, one per error (message and line
//! asserted), and round trips.

// 3.14 is a quiz answer here, not an approximation of π.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::approx_constant,
    missing_docs
)]

use keel_quiz::gift::{export, parse};
use keel_quiz::{Choice, Kind, MatchPair, NumericAnswer, NumericValue, Question, ShortAnswer};

fn all(src: &str) -> Vec<Question> {
    match parse(src) {
        Ok(qs) => qs,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn one(src: &str) -> Question {
    let qs = all(src);
    assert_eq!(qs.len(), 1, "{qs:#?}");
    qs.into_iter().next().unwrap()
}

/// The errors as (line, message).
fn errors(src: &str) -> Vec<(usize, String)> {
    match parse(src) {
        Ok(qs) => panic!("expected errors, parsed {qs:#?}"),
        Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
    }
}

fn choice(text: &str, weight: f64, feedback: Option<&str>) -> Choice {
    Choice {
        text: text.into(),
        weight,
        feedback: feedback.map(Into::into),
    }
}

fn round_trip(qs: &[Question]) {
    let text = export(qs);
    match parse(&text) {
        Ok(back) => assert_eq!(back, qs, "exported as:\n{text}"),
        Err(e) => panic!("export did not parse back: {e:#?}\n{text}"),
    }
}

// ---- features ----

#[test]
fn single_choice_with_feedback_and_general_feedback() {
    let q = one("::Status::Which status? {=503#Right ~429#No ####503 is the default.}");
    assert_eq!(q.name.as_deref(), Some("Status"));
    assert_eq!(q.stem, "Which status?");
    assert_eq!(q.general_feedback.as_deref(), Some("503 is the default."));
    assert_eq!(
        q.kind,
        Kind::Single {
            choices: vec![
                choice("503", 100.0, Some("Right")),
                choice("429", 0.0, Some("No"))
            ]
        }
    );
}

#[test]
fn single_choice_keeps_partial_and_negative_weights() {
    let q = one("Q? {=a ~%50%b ~%-25%c ~d}");
    assert_eq!(
        q.kind,
        Kind::Single {
            choices: vec![
                choice("a", 100.0, None),
                choice("b", 50.0, None),
                choice("c", -25.0, None),
                choice("d", 0.0, None),
            ]
        }
    );
}

#[test]
fn weighted_tildes_without_equals_are_multiple() {
    let q = one("Q? {~%50%a ~%50%b ~%-100%c}");
    assert_eq!(
        q.kind,
        Kind::Multiple {
            choices: vec![
                choice("a", 50.0, None),
                choice("b", 50.0, None),
                choice("c", -100.0, None),
            ]
        }
    );
}

#[test]
fn several_equals_share_the_mark() {
    let q = one("Q? {=a =b ~c}");
    assert_eq!(
        q.kind,
        Kind::Multiple {
            choices: vec![
                choice("a", 50.0, None),
                choice("b", 50.0, None),
                choice("c", 0.0, None)
            ]
        }
    );
}

#[test]
fn one_full_equals_with_weighted_equals_is_single() {
    let q = one("Q? {=a =%50%b ~c}");
    assert_eq!(
        q.kind,
        Kind::Single {
            choices: vec![
                choice("a", 100.0, None),
                choice("b", 50.0, None),
                choice("c", 0.0, None)
            ]
        }
    );
}

#[test]
fn one_weighted_equals_is_multiple() {
    let q = one("Q? {=%50%a ~%50%b ~c}");
    assert!(matches!(q.kind, Kind::Multiple { .. }), "{q:?}");
}

#[test]
fn decimal_weights() {
    let q = one("Q? {~%33.333%a ~%33.333%b ~%33.334%c ~%-100%d}");
    let Kind::Multiple { choices } = q.kind else {
        panic!()
    };
    assert_eq!(choices[0].weight, 33.333);
    assert_eq!(choices[2].weight, 33.334);
}

#[test]
fn percent_text_that_is_not_a_weight_stays_text() {
    let q = one("Which printf conversion prints a string? {=%s ~%d format ~%x}");
    let Kind::Single { choices } = q.kind else {
        panic!("{q:?}")
    };
    assert_eq!(choices[0].text, "%s");
    assert_eq!(choices[1].text, "%d format");
}

#[test]
fn true_false_forms_and_feedback_order() {
    for (src, answer) in [
        ("{T}", true),
        ("{TRUE}", true),
        ("{F}", false),
        ("{FALSE}", false),
    ] {
        let q = one(&format!("Statement. {src}"));
        assert_eq!(
            q.kind,
            Kind::TrueFalse {
                answer,
                feedback_wrong: None,
                feedback_right: None
            }
        );
    }
    // Moodle: the first feedback is for a wrong answer, the second for a right one.
    let q = one("Statement. {TRUE#You said false: wrong.#You said true: right.####Why.}");
    assert_eq!(
        q.kind,
        Kind::TrueFalse {
            answer: true,
            feedback_wrong: Some("You said false: wrong.".into()),
            feedback_right: Some("You said true: right.".into()),
        }
    );
    assert_eq!(q.general_feedback.as_deref(), Some("Why."));
    let q = one("Statement. {F##Only right feedback}");
    assert_eq!(
        q.kind,
        Kind::TrueFalse {
            answer: false,
            feedback_wrong: None,
            feedback_right: Some("Only right feedback".into()),
        }
    );
}

#[test]
fn lower_case_true_is_a_short_answer_as_in_moodle() {
    let q = one("Statement. {true}");
    assert!(matches!(q.kind, Kind::Short { .. }), "{q:?}");
}

#[test]
fn short_answers_with_partial_credit() {
    let q = one("Algorithm? {=leaky bucket#Yes =%50%token bucket#Close}");
    assert_eq!(
        q.kind,
        Kind::Short {
            answers: vec![
                ShortAnswer {
                    text: "leaky bucket".into(),
                    weight: 100.0,
                    feedback: Some("Yes".into())
                },
                ShortAnswer {
                    text: "token bucket".into(),
                    weight: 50.0,
                    feedback: Some("Close".into())
                },
            ],
            case_sensitive: false,
            typo_tolerance: 0,
        }
    );
}

#[test]
fn short_answer_without_equals_as_in_moodle() {
    let q = one("Animal? {cat}");
    let Kind::Short { answers, .. } = q.kind else {
        panic!()
    };
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].text, "cat");
    assert_eq!(answers[0].weight, 100.0);
}

#[test]
fn short_answer_feedback_may_contain_an_arrow() {
    let q = one("Where? {=settings#See Settings -> Network}");
    let Kind::Short { answers, .. } = q.kind else {
        panic!("{q:?}")
    };
    assert_eq!(
        answers[0].feedback.as_deref(),
        Some("See Settings -> Network")
    );
}

#[test]
fn keel_settings_comment() {
    let q = one("// keel: typo_tolerance=2 case_sensitive=true\nName? {=gthread}");
    assert!(matches!(
        q.kind,
        Kind::Short {
            case_sensitive: true,
            typo_tolerance: 2,
            ..
        }
    ));
    // Other comments and the default.
    let q = one("// just a comment\nName? {=gthread}");
    assert!(matches!(
        q.kind,
        Kind::Short {
            case_sensitive: false,
            typo_tolerance: 0,
            ..
        }
    ));
}

#[test]
fn numeric_forms() {
    let n = |value, weight, feedback: Option<&str>| NumericAnswer {
        value,
        weight,
        feedback: feedback.map(Into::into),
    };
    let tol = |value, tolerance| NumericValue::Tolerance { value, tolerance };
    assert_eq!(
        one("Pi? {#3.14:0.01#Close enough}").kind,
        Kind::Numeric {
            answers: vec![n(tol(3.14, 0.01), 100.0, Some("Close enough"))]
        }
    );
    assert_eq!(
        one("Pick {#1..5}").kind,
        Kind::Numeric {
            answers: vec![n(
                NumericValue::Range {
                    low: 1.0,
                    high: 5.0
                },
                100.0,
                None
            )]
        }
    );
    assert_eq!(
        one("Exact {#-42}").kind,
        Kind::Numeric {
            answers: vec![n(tol(-42.0, 0.0), 100.0, None)]
        }
    );
    assert_eq!(
        one("Pi? {#=3.14:0 =%50%3.1:0.1#Roughly ####Pi.}").kind,
        Kind::Numeric {
            answers: vec![
                n(tol(3.14, 0.0), 100.0, None),
                n(tol(3.1, 0.1), 50.0, Some("Roughly")),
            ]
        }
    );
    assert_eq!(
        one("Range {#-5..-1}").kind,
        Kind::Numeric {
            answers: vec![n(
                NumericValue::Range {
                    low: -5.0,
                    high: -1.0
                },
                100.0,
                None
            )]
        }
    );
}

#[test]
fn matching_pairs() {
    let q = one("Match. {=a -> 1 =b -> 2 =c -> x -> y ####gf}");
    assert_eq!(
        q.kind,
        Kind::Matching {
            pairs: vec![
                MatchPair {
                    left: "a".into(),
                    right: "1".into()
                },
                MatchPair {
                    left: "b".into(),
                    right: "2".into()
                },
                // Split at the first arrow: the right side may hold one.
                MatchPair {
                    left: "c".into(),
                    right: "x -> y".into()
                },
            ]
        }
    );
    assert_eq!(q.general_feedback.as_deref(), Some("gf"));
}

#[test]
fn missing_word_puts_a_blank_in_the_stem() {
    let q = one("Nginx answers {=503 ~429} by default.");
    assert_eq!(q.stem, "Nginx answers _____ by default.");
    let q = one("{=Redis ~Memcached} has PUBLISH.");
    assert_eq!(q.stem, "_____ has PUBLISH.");
    // Only whitespace after the block: not a missing word.
    let q = one("Nginx answers? {=503 ~429}   ");
    assert_eq!(q.stem, "Nginx answers?");
}

#[test]
fn categories_apply_to_following_questions() {
    let qs = all("$CATEGORY: web/edge\n\nA? {T}\n\nB? {F}\n\n$CATEGORY: web/app\n\nC? {T}\n\n$CATEGORY:\n\nD? {T}");
    let cats: Vec<Option<&str>> = qs.iter().map(|q| q.category.as_deref()).collect();
    assert_eq!(
        cats,
        [Some("web/edge"), Some("web/edge"), Some("web/app"), None]
    );
    // Without a blank line after it, too.
    let q = one("$CATEGORY: x\nA? {T}");
    assert_eq!(q.category.as_deref(), Some("x"));
}

#[test]
fn format_markers_are_dropped() {
    let q = one("::T::[html]<b>Bold</b>? {=[plain]yes#[markdown]**fb** ~no ####[moodle]gf}");
    assert_eq!(q.stem, "<b>Bold</b>?");
    let Kind::Single { choices } = &q.kind else {
        panic!()
    };
    assert_eq!(choices[0].text, "yes");
    assert_eq!(choices[0].feedback.as_deref(), Some("**fb**"));
    assert_eq!(q.general_feedback.as_deref(), Some("gf"));
    // Markdown links are not markers.
    let q = one("[link](https://example.com) {T}");
    assert_eq!(q.stem, "[link](https://example.com)");
}

#[test]
fn escapes() {
    let q = one(r"Chars\: \{ \} \~ \= \# \\ and\nnewline {=a\=b ~c\#d}");
    assert_eq!(q.stem, "Chars: { } ~ = # \\ and\nnewline");
    let Kind::Single { choices } = q.kind else {
        panic!()
    };
    assert_eq!(choices[0].text, "a=b");
    assert_eq!(choices[1].text, "c#d");
    // A backslash before anything else is a backslash.
    let q = one(r"C:\path is \x {T}");
    assert_eq!(q.stem, r"C:\path is \x");
}

#[test]
fn questions_span_lines_and_comments_are_dropped() {
    let q = one("// before\n::T::First line\nsecond line\n// inside\n{\n=a\n~b\n}");
    assert_eq!(q.stem, "First line\nsecond line");
    assert_eq!(q.name.as_deref(), Some("T"));
}

#[test]
fn description_has_no_block() {
    let q = one("::Intro::This section is about rate limits.");
    assert_eq!(q.kind, Kind::Description);
    assert_eq!(q.stem, "This section is about rate limits.");
    assert!(!q.is_graded());
}

#[test]
fn urls_are_not_comments_or_titles() {
    let q = one("See https://nginx.org/en/docs/ first. {T}");
    assert_eq!(q.stem, "See https://nginx.org/en/docs/ first.");
}

#[test]
fn blank_lines_separate_questions_and_crlf_and_bom_are_accepted() {
    let qs = all("\u{feff}A? {T}\r\n\r\nB? {F}\r\n   \r\nC? {=x ~y}\r\n");
    assert_eq!(qs.len(), 3);
    assert_eq!(qs[1].stem, "B?");
}

#[test]
fn empty_title_is_none() {
    let q = one("::::Q? {T}");
    assert_eq!(q.name, None);
}

// ---- errors ----

#[test]
fn essay_is_refused() {
    assert_eq!(
        errors("Write an essay. {}"),
        [(
            1,
            "essay questions are not supported (the answer block is empty)".to_owned()
        )]
    );
}

#[test]
fn unclosed_brace() {
    assert_eq!(
        errors("A? {T}\n\nB?\nmore {=a ~b\n"),
        [(4, "'{' without a closing '}'".to_owned())]
    );
}

#[test]
fn stray_closing_brace() {
    assert_eq!(
        errors("A? } {T}"),
        [(
            1,
            "'}' without an opening '{' (write \\} for a brace)".to_owned()
        )]
    );
    assert_eq!(
        errors("A?\n}"),
        [(
            2,
            "'}' without an opening '{' (write \\} for a brace)".to_owned()
        )]
    );
}

#[test]
fn nested_brace() {
    assert_eq!(
        errors("A? {=a\n~{b}"),
        [(
            2,
            "'{' inside an answer block (write \\{ for a brace)".to_owned()
        )]
    );
}

#[test]
fn two_questions_without_a_blank_line() {
    assert_eq!(
        errors("A? {T}\nB? {F}"),
        [(
            2,
            "a second answer block in one question: separate questions with a blank line"
                .to_owned()
        )]
    );
}

#[test]
fn unclosed_title() {
    assert_eq!(
        errors("\n\n::Title without end Q? {T}"),
        [(
            3,
            "the title is not closed: '::' without a closing '::'".to_owned()
        )]
    );
}

#[test]
fn text_before_first_answer() {
    assert_eq!(
        errors("Q? {oops =a ~b}"),
        [(
            1,
            "text before the first answer: each answer starts with '=' (right) or '~' (wrong)"
                .to_owned()
        )]
    );
}

#[test]
fn empty_answer() {
    assert_eq!(errors("Q? {=a ~#fb}"), [(1, "an empty answer".to_owned())]);
}

#[test]
fn weight_out_of_range() {
    assert_eq!(
        errors("Q? {=a\n~%150%b}"),
        [(2, "the weight 150% is outside -100%..100%".to_owned())]
    );
    assert_eq!(
        errors("Q? {=a ~%1.2.3%b}"),
        [(1, "'%1.2.3%' is not a weight".to_owned())]
    );
}

#[test]
fn single_needs_two_choices_and_multiple_needs_sum_100() {
    assert_eq!(
        errors("Q? {~%50%a ~%20%b}"),
        [(
            1,
            "the positive weights of a multiple-answer question must add up to 100% (they add up to 70%)"
                .to_owned()
        )]
    );
    assert_eq!(
        errors("Q? {~a ~b}"),
        [(
            1,
            "the positive weights of a multiple-answer question must add up to 100% (they add up to 0%)"
                .to_owned()
        )]
    );
    assert_eq!(
        errors("Q? {=a ~%100%b}"),
        [(
            1,
            "a single-choice question needs exactly one choice worth 100% (found 2)".to_owned()
        )]
    );
}

#[test]
fn numeric_errors() {
    assert_eq!(
        errors("N? {#abc}"),
        [(1, "'abc' is not a number".to_owned())]
    );
    assert_eq!(
        errors("N? {#inf}"),
        [(1, "'inf' is not a number".to_owned())]
    );
    assert_eq!(
        errors("N? {#5..1}"),
        [(1, "the range 5..1 is empty (low above high)".to_owned())]
    );
    assert_eq!(
        errors("N? {#3:-1}"),
        [(1, "the tolerance -1 is negative".to_owned())]
    );
    assert_eq!(
        errors("N? {#}"),
        [(1, "a numeric answer without a number".to_owned())]
    );
    assert_eq!(
        errors("N? {#\n=%50%3}"),
        [(1, "one of the answers must be worth 100%".to_owned())]
    );
    assert_eq!(
        errors("N? {#x =3}"),
        [(
            1,
            "text before the first answer of a numeric block with several answers (each starts with '=')"
                .to_owned()
        )]
    );
}

#[test]
fn matching_errors() {
    assert_eq!(
        errors("M. {=a -> 1\n=b 2}"),
        [(2, "a matching pair needs 'left -> right'".to_owned())]
    );
    assert_eq!(
        errors("M. {=a -> 1}"),
        [(
            1,
            "a matching question needs at least 2 pairs (found 1)".to_owned()
        )]
    );
    assert_eq!(
        errors("M. {=a -> 1 = -> 2}"),
        [(1, "pair 2 has an empty side".to_owned())]
    );
}

#[test]
fn keel_settings_errors() {
    assert_eq!(
        errors("// keel: typo=1\nQ? {=abc}"),
        [(
            1,
            "unknown `// keel:` setting 'typo' (known: typo_tolerance, case_sensitive)".to_owned()
        )]
    );
    assert_eq!(
        errors("// keel: typo_tolerance=many\nQ? {=abc}"),
        [(
            1,
            "typo_tolerance must be a whole number 0..255, found 'many'".to_owned()
        )]
    );
    assert_eq!(
        errors("A? {T}\n\n// keel: typo_tolerance=1\nQ? {T}"),
        [(
            3,
            "`// keel:` settings apply only to short-answer questions".to_owned()
        )]
    );
    assert_eq!(
        errors("// keel: typo_tolerance=1\n\nQ? {=abc}"),
        [(
            1,
            "a `// keel:` settings comment must be followed by its question in the same paragraph"
                .to_owned()
        )]
    );
}

#[test]
fn empty_question_text() {
    assert_eq!(
        errors("::T:: {T}"),
        [(1, "the question text is empty".to_owned())]
    );
}

#[test]
fn category_inside_a_question() {
    assert_eq!(
        errors("A? {T}\n$CATEGORY: x"),
        [(
            2,
            "a $CATEGORY: line inside a question; put a blank line before it".to_owned()
        )]
    );
}

#[test]
fn every_error_is_collected_not_just_the_first() {
    let src = "Good? {T}\n\nBad essay {}\n\nFine {=a ~b}\n\nBad number {#x}\n\n\nBad brace {=a";
    let lines: Vec<usize> = errors(src).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, [3, 7, 10]);
}

// ---- round trips ----

#[test]
fn round_trip_of_the_rich_fixture() {
    let qs = all(include_str!("fixtures/gift/rich.gift"));
    assert_eq!(qs.len(), 14);
    // Spot checks that the fixture means what it says.
    assert_eq!(qs[0].category.as_deref(), Some("web/edge"));
    assert_eq!(qs[6].category.as_deref(), Some("web/app"));
    assert!(matches!(
        qs[6].kind,
        Kind::Short {
            typo_tolerance: 1,
            ..
        }
    ));
    assert_eq!(qs[12].category, None);
    assert_eq!(qs[13].kind, Kind::Description);
    assert_eq!(qs[5].stem.matches("_____").count(), 1);
    round_trip(&qs);
    // Exporting twice gives the same text.
    let text = export(&qs);
    assert_eq!(export(&all(&text)), text);
}

#[test]
fn round_trip_of_awkward_texts() {
    let base = |stem: &str, kind: Kind| Question {
        name: Some("t: {x}".into()),
        category: Some("a/b c".into()),
        stem: stem.into(),
        kind,
        general_feedback: Some("#### not a separator".into()),
    };
    let single = |a: &str, b: &str| Kind::Single {
        choices: vec![
            choice(a, 100.0, Some("[html] fb")),
            choice(b, 0.0, Some("%5%")),
        ],
    };
    let qs = vec![
        base("// not a comment", single("%50% off", "%d")),
        base("[markdown] literal marker", single("[plain]x", "=y")),
        base("$CATEGORY: not a category", single("a\nb", "c\\n")),
        base("::not a title::", single("~", "#")),
        base("Blank at the end _____", single("{", "}")),
        base("Two _____ blanks _____ here", single("x", "y")),
        base(
            "tf",
            Kind::TrueFalse {
                answer: false,
                feedback_wrong: None,
                feedback_right: Some("#right".into()),
            },
        ),
        base(
            "matching",
            Kind::Matching {
                pairs: vec![
                    MatchPair {
                        left: "a-".into(),
                        right: ">b".into(),
                    },
                    MatchPair {
                        left: "[html]c".into(),
                        right: "d -> e".into(),
                    },
                ],
            },
        ),
        base(
            "numeric",
            Kind::Numeric {
                answers: vec![
                    NumericAnswer {
                        value: NumericValue::Tolerance {
                            value: 0.1 + 0.2,
                            tolerance: 1e-7,
                        },
                        weight: 100.0,
                        feedback: None,
                    },
                    NumericAnswer {
                        value: NumericValue::Range {
                            low: -1e300,
                            high: 5e-324,
                        },
                        weight: 33.333333333333336,
                        feedback: Some("tiny".into()),
                    },
                ],
            },
        ),
        base(
            "short",
            Kind::Short {
                answers: vec![ShortAnswer {
                    text: "%x".into(),
                    weight: 100.0,
                    feedback: None,
                }],
                case_sensitive: true,
                typo_tolerance: 0,
            },
        ),
        Question {
            name: None,
            category: None,
            stem: "A description back in no category".into(),
            kind: Kind::Description,
            general_feedback: None,
        },
    ];
    for q in &qs {
        assert_eq!(q.validate(), Ok(()), "{q:?}");
    }
    round_trip(&qs);
}

#[test]
fn export_looks_like_gift() {
    let qs = all("$CATEGORY: web\n\n::S::Status? {=503#Right ~429 ####gf}\n\nPi {#3.14:0.01}");
    let text = export(&qs);
    assert_eq!(
        text,
        "$CATEGORY: web\n\n::S::Status? {\n\t=503#Right\n\t~429\n\t####gf\n}\n\nPi {#3.14:0.01}\n\n"
    );
}
