//! Property tests: the bank parser, the rubric, the proposal parser, the model check and
//! the session never panic on any input (answers, bank files and model output are
//! untrusted), scores stay within 0..=100, and export → parse gives generated tracks back.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use keel_interview::{
    assess, check, export_track, parse_proposal, parse_track, shipped, BankQuestion, KeyPoint,
    Level, Matcher, Misconception, Mode, Proposal, Session, Setup, Track, TRACKS,
};
use proptest::prelude::*;

fn all_questions() -> Vec<BankQuestion> {
    shipped().into_iter().flat_map(|t| t.questions).collect()
}

/// Text that looks like a bank file: its keys, headers, continuations and comments.
fn bank_line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "track: t",
            "title: T",
            "description: d",
            "[question q]",
            "[point p]",
            "[misconception m]",
            "[question]",
            "[]",
            "[point P Q]",
            "level: mid",
            "level: x",
            "prompt: Why?",
            "model_answer: A.",
            "link: /posts/x/",
            "link: x",
            "weight: 1",
            "weight: -1",
            "weight: 1e999",
            "penalty: 10",
            "penalty: NaN",
            "text: T.",
            "hint: H.",
            "correction: C.",
            "match: any leaky bucket",
            "match: all a b",
            "match: near 3 burst queue",
            "match: near 0 a",
            "match: regex (",
            "match: regex \\b5",
            "match: regex a{99999}",
            "match: any |",
            "  | continued",
            "|",
            "# comment",
            "",
            ":",
            "key:",
            "  ",
            "\t|\t",
            "[question q]]",
            "prompt:",
            "match:",
        ])
        .prop_map(str::to_owned),
        "[a-z_\\[\\]|:# ]{0,20}",
        any::<String>(),
    ]
}

fn bank_text() -> impl Strategy<Value = String> {
    prop::collection::vec(bank_line(), 0..40).prop_map(|lines| lines.join("\n"))
}

/// A shipped file with lines deleted, duplicated or damaged.
fn mutated_shipped() -> impl Strategy<Value = String> {
    (
        0..TRACKS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), 0..4u8, any::<char>()), 1..8),
    )
        .prop_map(|(t, edits)| {
            let mut lines: Vec<String> = TRACKS[t].1.lines().map(str::to_owned).collect();
            for (at, kind, c) in edits {
                if lines.is_empty() {
                    break;
                }
                let i = at.index(lines.len());
                match kind {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        lines.insert(i, l);
                    }
                    2 => {
                        let mut l: Vec<char> = lines[i].chars().collect();
                        let j = at.index(l.len() + 1);
                        l.insert(j, c);
                        lines[i] = l.into_iter().collect();
                    }
                    _ => {
                        let l: String = lines[i].chars().rev().collect();
                        lines[i] = l;
                    }
                }
            }
            lines.join("\n")
        })
}

/// Answer-like text: bank words, typos, punctuation, lists, negations, Unicode.
fn answer() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "leaky",
        "bucket",
        "token",
        "burst",
        "nodelay",
        "503",
        "429",
        "not",
        "isn't",
        "never",
        "X-Forwarded-For",
        "limit_req",
        "workers",
        "threads",
        "40",
        "GIL",
        "data:",
        "Last-Event-ID",
        "redis",
        "PUBLISH",
        "fire and forget",
        "await",
        "event loop",
        "timeout",
        "semaphore",
        "the",
        "a",
        "is",
        "because",
        ",",
        ".",
        "\n",
        "- ",
        "I don't know",
        "ééé",
        "😀",
        "'",
        "’",
        "buket",
        "connectoin",
        "",
        "  ",
        "|",
        "{",
        "}",
        "\"covered\"",
    ]);
    prop_oneof![
        3 => prop::collection::vec(words, 0..60).prop_map(|w| w.join(" ")),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect()),
    ]
}

/// Model-reply-like text: JSON-ish fragments with ids, fences and prose.
fn model_reply() -> impl Strategy<Value = String> {
    let parts = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "\"covered\"",
        "\"misconceptions\"",
        ":",
        ",",
        "\"rate\"",
        "\"leaky-bucket\"",
        "\"token-bucket\"",
        "\"nope\"",
        "null",
        "1",
        "```json",
        "```",
        "Sure!",
        "\n",
        " ",
        "\"",
        "\\",
        "{\"covered\":[\"rate\"]}",
    ]);
    prop_oneof![
        3 => prop::collection::vec(parts, 0..40).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parse_track_never_panics(text in bank_text()) {
        if let Ok(track) = parse_track(&text) {
            // Whatever parses round-trips.
            prop_assert_eq!(parse_track(&export_track(&track)).unwrap(), track);
        }
    }

    #[test]
    fn parse_track_never_panics_on_damaged_shipped_files(text in mutated_shipped()) {
        match parse_track(&text) {
            Ok(track) => prop_assert_eq!(parse_track(&export_track(&track)).unwrap(), track),
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                let lines = text.lines().count().max(1);
                for e in &errors {
                    prop_assert!(e.line >= 1 && e.line <= lines, "{} of {}", e.line, lines);
                }
                prop_assert!(errors.windows(2).all(|w| w[0].line <= w[1].line));
            }
        }
    }

    #[test]
    fn assess_never_panics_and_stays_in_range(
        q in prop::sample::select(all_questions()),
        a in answer(),
    ) {
        let v = assess(&q, &a);
        prop_assert!((0.0..=100.0).contains(&v.score), "{}", v.score);
        prop_assert_eq!(v.covered.len() + v.missed.len(), q.key_points.len());
        if v.off_topic {
            prop_assert!(v.score <= 10.0);
        }
        if v.stuffing {
            prop_assert!(v.score <= 50.0);
        }
        for e in &v.evidence {
            for (w, (s, end)) in e.words.iter().zip(&e.spans) {
                prop_assert_eq!(a.get(*s..*end), Some(w.as_str()));
            }
        }
    }

    #[test]
    fn parse_proposal_never_panics_and_names_only_real_ids(
        q in prop::sample::select(all_questions()),
        reply in model_reply(),
    ) {
        if let Some(p) = parse_proposal(&q, &reply) {
            for id in &p.covered {
                prop_assert!(q.point(id).is_some());
            }
            for id in &p.misconceptions {
                prop_assert!(q.misconception(id).is_some());
            }
            let mut c = p.covered.clone();
            c.sort();
            c.dedup();
            prop_assert_eq!(c.len(), p.covered.len());
        }
    }

    #[test]
    fn check_never_panics_and_never_goes_below_the_rubric(
        q in prop::sample::select(all_questions()),
        a in answer(),
        covered in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        miscs in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let proposal = Proposal {
            covered: covered.iter().map(|i| q.key_points[i.index(q.key_points.len())].id.clone()).collect(),
            misconceptions: miscs.iter().map(|i| q.misconceptions[i.index(q.misconceptions.len())].id.clone()).collect(),
        };
        let v = check(&q, &a, &proposal);
        let rubric = assess(&q, &a);
        prop_assert!((0.0..=100.0).contains(&v.score));
        for id in &rubric.covered {
            prop_assert!(v.covered.contains(id));
        }
        for id in &v.covered {
            prop_assert!(rubric.covered.contains(id) || proposal.covered.contains(id));
        }
    }

    #[test]
    fn sessions_never_panic(
        t in 0..TRACKS.len(),
        seed in any::<u64>(),
        level in prop::sample::select(Level::ALL.to_vec()),
        mode in prop::sample::select(vec![Mode::Practice, Mode::Interview]),
        ops in prop::collection::vec((0..6u8, answer()), 0..40),
    ) {
        let track = parse_track(TRACKS[t].1).unwrap();
        let setup = Setup { track: track.name.clone(), level, length: 5, mode, seed };
        let mut s = Session::new(&track, setup).unwrap();
        for (op, text) in ops {
            let reply = match op {
                0..=2 => s.answer(&track, &text, None),
                3 => s.skip(&track),
                4 => {
                    let q = s.step().question_id().and_then(|id| track.question(id)).cloned();
                    let p = q.and_then(|q| parse_proposal(&q, &text));
                    s.answer(&track, &text, p.as_ref())
                }
                _ => {
                    s.regrade(&track);
                    let json = serde_json::to_string(&s).unwrap();
                    s = serde_json::from_str(&json).unwrap();
                    continue;
                }
            };
            prop_assert!(!reply.says.is_empty());
            if !reply.done {
                prop_assert_eq!(reply.says.last().unwrap(), &s.prompt(&track));
            }
        }
        let report = s.report(&track);
        prop_assert!((0.0..=100.0).contains(&report.score));
    }

    #[test]
    fn generated_tracks_round_trip(track in generated_track()) {
        let text = export_track(&track);
        let parsed = parse_track(&text);
        prop_assert_eq!(parsed, Ok(track), "{}", text);
    }
}

/// Prose for text fields: anything but `\r` (a line break of its own), not blank.
fn prose() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\r]{1,40}",
        prop::sample::select(vec![
            "  leading",
            "trailing  ",
            "a\n\nb",
            "| pipe",
            "# hash",
            "key: value",
            "[question x]",
            "\n starts with a newline",
            "ends with a newline\n",
            "    indented\ncode",
            "é ✓ 😀",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_filter("not blank", |s| !s.trim().is_empty())
}

fn id(prefix: &'static str, i: usize) -> String {
    format!("{prefix}-{i}")
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let word = prop::sample::select(vec![
        "leaky",
        "bucket",
        "limit_req",
        "X-Forwarded-For",
        "429",
        "redis",
    ]);
    prop_oneof![
        prop::collection::vec(word.clone(), 1..4).prop_map(|w| Matcher::All {
            words: w.into_iter().map(str::to_owned).collect()
        }),
        (1..=50usize, prop::collection::vec(word.clone(), 2..4)).prop_map(|(window, w)| {
            Matcher::Near {
                window,
                words: w.into_iter().map(str::to_owned).collect(),
            }
        }),
        prop::collection::vec(prop::collection::vec(word, 1..3), 1..4).prop_map(|ps| {
            Matcher::Any {
                phrases: ps.into_iter().map(|p| p.join(" ")).collect(),
            }
        }),
        prop::sample::select(vec!["\\b503\\b", "(10|ten) ?r ?s", "a|b", "x{2,3}"]).prop_map(|p| {
            Matcher::Regex {
                pattern: p.to_owned(),
            }
        }),
    ]
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), Just(0.5), Just(1000.0), 0.001..1000.0f64]
}

fn generated_track() -> impl Strategy<Value = Track> {
    let point = (
        weight(),
        prose(),
        prose(),
        prose(),
        prop::collection::vec(matcher(), 1..4),
    );
    let misc = (
        0.0..=100.0f64,
        prose(),
        prose(),
        prop::collection::vec(matcher(), 1..3),
    );
    let question = (
        prop::sample::select(Level::ALL.to_vec()),
        prose(),
        prose(),
        prop::collection::vec("/[a-z/-]{0,20}", 0..3),
        prop::collection::vec(point, 1..4),
        prop::collection::vec(misc, 0..3),
    );
    (
        "[a-z0-9][a-z0-9_-]{0,10}",
        prose(),
        prop_oneof![Just(String::new()), prose()],
        prop::collection::vec(question, 1..4),
    )
        .prop_map(|(name, title, description, questions)| Track {
            name,
            title,
            description,
            questions: questions
                .into_iter()
                .enumerate()
                .map(
                    |(qi, (level, prompt, model_answer, links, points, miscs))| BankQuestion {
                        id: id("q", qi),
                        level,
                        prompt,
                        model_answer,
                        links,
                        key_points: points
                            .into_iter()
                            .enumerate()
                            .map(|(i, (weight, text, prompt, hint, matchers))| KeyPoint {
                                id: id("p", i),
                                weight,
                                text,
                                prompt,
                                hint,
                                matchers,
                            })
                            .collect(),
                        misconceptions: miscs
                            .into_iter()
                            .enumerate()
                            .map(|(i, (penalty, text, correction, matchers))| Misconception {
                                id: id("m", i),
                                text,
                                correction,
                                penalty,
                                matchers,
                            })
                            .collect(),
                    },
                )
                .collect(),
        })
}
