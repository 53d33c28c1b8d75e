//! Property tests: the importers never panic on any text (random, GIFT-flavoured, or a
//! valid file mutated), export → parse gives back generated questions, and grading never
//! panics and stays in 0..=1 whatever the response.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use keel_quiz::{
    aiken, choice_order, gift, grade, parse_response, Choice, Kind, MatchPair, NumericAnswer,
    NumericValue, Question, Response, ShortAnswer, BLANK,
};
use proptest::prelude::*;

const RICH: &str = include_str!("fixtures/gift/rich.gift");

/// Texts that exercise escaping: GIFT's special characters, markers, newlines, non-ASCII,
/// and a few strings that look like syntax.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ~=#{}:%\\\\/_>.\\[\\]\n\t$é-]{1,16}",
        1 => prop::sample::select(vec![
            "[html]x", "[markdown]", "//c", "%50%", "%d", "$CATEGORY: x", "::t::", "T", "TRUE",
            "#", "####", BLANK, "a\\nb", "\\", "{}", "=~",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_map(|s| s.trim().to_owned())
    .prop_filter("non-empty after trim", |s| !s.is_empty())
}

/// Texts GIFT cannot hold in a short answer or a matching left item.
fn arrowless() -> impl Strategy<Value = String> {
    text().prop_filter("no ->", |s| !s.contains("->"))
}

fn feedback() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1000.0..1000.0f64,
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        Just(0.0),
        Just(-0.0),
    ]
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![-100.0..100.0f64, Just(0.0), Just(50.0), Just(-100.0)]
}

fn kind() -> impl Strategy<Value = Kind> {
    let single = (
        text(),
        feedback(),
        prop::collection::vec((text(), weight(), feedback()), 1..5),
    )
        .prop_map(|(right, fb, others)| {
            let mut choices = vec![Choice {
                text: right,
                weight: 100.0,
                feedback: fb,
            }];
            choices.extend(others.into_iter().map(|(text, weight, feedback)| Choice {
                text,
                weight,
                feedback,
            }));
            Kind::Single { choices }
        });
    let multiple = (
        prop::collection::vec((text(), feedback()), 1..4),
        prop::collection::vec((text(), -100.0..=0.0f64, feedback()), 0..3),
    )
        .prop_filter("at least 2 choices", |(p, n)| p.len() + n.len() >= 2)
        .prop_map(|(positive, negative)| {
            let share = 100.0 / positive.len() as f64;
            let mut choices: Vec<Choice> = positive
                .into_iter()
                .map(|(text, feedback)| Choice {
                    text,
                    weight: share,
                    feedback,
                })
                .collect();
            choices.extend(negative.into_iter().map(|(text, weight, feedback)| Choice {
                text,
                weight,
                feedback,
            }));
            Kind::Multiple { choices }
        });
    let true_false =
        (any::<bool>(), feedback(), feedback()).prop_map(|(answer, w, r)| Kind::TrueFalse {
            answer,
            feedback_wrong: w,
            feedback_right: r,
        });
    let short = (
        arrowless(),
        prop::collection::vec((arrowless(), 0.0..=100.0f64, feedback()), 0..3),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(first, others, case_sensitive, typo_tolerance)| {
            let mut answers = vec![ShortAnswer {
                text: first,
                weight: 100.0,
                feedback: None,
            }];
            answers.extend(
                others
                    .into_iter()
                    .map(|(text, weight, feedback)| ShortAnswer {
                        text,
                        weight,
                        feedback,
                    }),
            );
            Kind::Short {
                answers,
                case_sensitive,
                typo_tolerance,
            }
        });
    let value = prop_oneof![
        (number(), number()).prop_map(|(value, t)| NumericValue::Tolerance {
            value,
            tolerance: t.abs()
        }),
        (number(), number()).prop_map(|(a, b)| NumericValue::Range {
            low: a.min(b),
            high: a.max(b)
        }),
    ];
    let numeric = prop::collection::vec((value, weight(), feedback()), 1..4).prop_map(|answers| {
        let answers = answers
            .into_iter()
            .enumerate()
            .map(|(i, (value, weight, feedback))| NumericAnswer {
                value,
                weight: if i == 0 { 100.0 } else { weight },
                feedback,
            })
            .collect();
        Kind::Numeric { answers }
    });
    let matching =
        prop::collection::vec((arrowless(), text()), 2..5).prop_map(|pairs| Kind::Matching {
            pairs: pairs
                .into_iter()
                .map(|(left, right)| MatchPair { left, right })
                .collect(),
        });
    prop_oneof![
        single,
        multiple,
        true_false,
        short,
        numeric,
        matching,
        Just(Kind::Description)
    ]
}

fn question() -> impl Strategy<Value = Question> {
    let stem = prop_oneof![
        3 => text(),
        1 => (text(), text()).prop_map(|(a, b)| format!("{a} {BLANK} {b}")),
        1 => text().prop_map(|a| format!("{BLANK}{a}")),
    ];
    (
        prop::option::of(text()),
        prop::option::of(text()),
        stem,
        kind(),
        feedback(),
    )
        .prop_map(|(name, category, stem, kind, general_feedback)| {
            let general_feedback = match kind {
                Kind::Description => None,
                _ => general_feedback,
            };
            Question {
                name,
                category,
                stem,
                kind,
                general_feedback,
            }
        })
}

fn response() -> impl Strategy<Value = Response> {
    let id = prop_oneof![0..8usize, any::<usize>()];
    prop_oneof![
        id.clone().prop_map(|id| Response::Choice { id }),
        prop::collection::vec(id.clone(), 0..10).prop_map(|ids| Response::Choices { ids }),
        any::<bool>().prop_map(|value| Response::Bool { value }),
        ".{0,40}".prop_map(|value| Response::Text { value }),
        any::<f64>().prop_map(|value| Response::Number { value }),
        prop::collection::vec(prop::option::of(id), 0..8)
            .prop_map(|picks| Response::Matches { picks }),
    ]
}

/// Rounds every number to 6 decimals within ±1e9, as an author would write it.
fn authored_numbers(mut q: Question) -> Question {
    let r = |x: &mut f64| {
        *x = if x.abs() < 1e9 {
            (*x * 1e6).round() / 1e6
        } else {
            x.signum() * 1e9
        }
    };
    match &mut q.kind {
        Kind::Single { choices } | Kind::Multiple { choices } => {
            choices.iter_mut().for_each(|c| r(&mut c.weight))
        }
        Kind::Short { answers, .. } => answers.iter_mut().for_each(|a| r(&mut a.weight)),
        Kind::Numeric { answers } => {
            for a in answers {
                r(&mut a.weight);
                match &mut a.value {
                    NumericValue::Tolerance { value, tolerance } => {
                        r(value);
                        r(tolerance);
                    }
                    NumericValue::Range { low, high } => {
                        r(low);
                        r(high);
                    }
                }
            }
        }
        Kind::TrueFalse { .. } | Kind::Matching { .. } | Kind::Description => {}
    }
    q
}

/// Applies random edits (insert a syntax character, delete, duplicate a range) to a text.
fn mutate(base: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for &(at, op, c) in edits {
        let at = if chars.is_empty() {
            0
        } else {
            at % (chars.len() + 1)
        };
        match op % 3 {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ => {
                let end = (at + 8).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
        }
    }
    chars.into_iter().collect()
}

fn syntax_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '{', '}', '=', '~', '#', ':', '%', '\\', '\n', '-', '>', '.', 'T', 'F', '$', '/', ' ', '[',
        ']', 'é',
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gift_parse_never_panics_on_any_string(s in any::<String>()) {
        let _ = gift::parse(&s);
    }

    #[test]
    fn gift_parse_never_panics_on_gift_like_text(s in "[{}=~#:%\\\\\n ->.0-9TRUEFALSabc$CATEGORY/\\[\\]]{0,200}") {
        let _ = gift::parse(&s);
    }

    #[test]
    fn gift_parse_never_panics_on_mutated_gift(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), syntax_char()), 1..12)
    ) {
        let text = mutate(RICH, &edits);
        if let Ok(qs) = gift::parse(&text) {
            // Whatever parses is valid and survives its own round trip.
            for q in &qs {
                prop_assert_eq!(q.validate(), Ok(()));
            }
            prop_assert_eq!(gift::parse(&gift::export(&qs)), Ok(qs));
        }
    }

    #[test]
    fn aiken_parse_never_panics(s in any::<String>(), t in "[A-D.)\n \tANSWER:xyzé]{0,120}") {
        let _ = aiken::parse(&s);
        let _ = aiken::parse(&t);
    }

    #[test]
    fn export_then_parse_gives_the_questions_back(qs in prop::collection::vec(question(), 1..6)) {
        for q in &qs {
            prop_assert_eq!(q.validate(), Ok(()), "generator made an invalid question: {:?}", q);
        }
        let text = gift::export(&qs);
        match gift::parse(&text) {
            Ok(back) => prop_assert_eq!(back, qs, "exported as:\n{}", text),
            Err(e) => prop_assert!(false, "{:?}\nexported as:\n{}", e, text),
        }
    }

    #[test]
    fn grade_stays_in_range(q in question(), r in prop::option::of(response())) {
        let g = grade(&q, r.as_ref());
        prop_assert!((0.0..=1.0).contains(&g.fraction), "{}", g.fraction);
        prop_assert_eq!(g.correct, g.fraction >= 0.9999);
        let _ = choice_order(&q, 1, 1);
    }

    #[test]
    fn parse_response_never_panics_and_what_it_accepts_grades(
        q in question(),
        values in prop::collection::vec(prop_oneof![".{0,12}", "[0-9]{1,3}", Just(String::new())], 0..6)
    ) {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        if let Ok(r) = parse_response(&q, &values) {
            let g = grade(&q, r.as_ref());
            prop_assert!((0.0..=1.0).contains(&g.fraction));
            // An accepted response always fits its question.
            prop_assert!(!g.feedback.iter().any(|f| f == keel_quiz::DOES_NOT_FIT));
        }
    }

    #[test]
    fn questions_survive_json(q in question()) {
        // serde_json (without its `float_roundtrip` feature) may read a 17-digit float back
        // 1 ulp off; numbers as authors write them (few digits) are exact.
        let q = authored_numbers(q);
        let json = serde_json::to_string(&q).unwrap();
        prop_assert_eq!(serde_json::from_str::<Question>(&json).unwrap(), q);
    }
}
