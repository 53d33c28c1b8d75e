//! The bank format: every shipped track parses and holds the content rules, export → parse
//! gives the same track back, and each kind of mistake in a file is reported with its line
//! (all of them at once).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;

use keel_interview::{
    export_track, parse_track, shipped, Level, Matcher, ParseError, Track, TRACKS,
};

const LINKS: &[&str] = &[
    "/posts/rate-limiting-decision-for-decision/",
    "/posts/running-keel-in-production/",
    "/posts/live-events-without-a-thread-per-browser/",
    "/posts/welcome-to-keel/",
    "/quizzes/edge-and-limit-req/",
    "/quizzes/app-server-workers-threads/",
    "/quizzes/live-events-redis/",
    "/quizzes/sync-vs-async/",
];

#[test]
fn every_shipped_track_parses() {
    assert_eq!(TRACKS.len(), 4);
    for (name, text) in TRACKS {
        let track = parse_track(text).unwrap_or_else(|errors| {
            panic!(
                "{name}: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert_eq!(&track.name, name);
    }
    let names: Vec<String> = shipped().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["edge", "app-server", "live-events", "sync-async"]);
}

#[test]
fn shipped_tracks_follow_the_content_rules() {
    for track in shipped() {
        assert!(!track.title.is_empty() && !track.description.is_empty());
        assert!(track.questions.len() >= 6, "{}", track.name);
        for level in Level::ALL {
            assert!(
                track.questions.iter().filter(|q| q.level == level).count() >= 2,
                "{} needs questions at level {level}",
                track.name
            );
        }
        let mut ids = HashSet::new();
        for q in &track.questions {
            let at = format!("{}/{}", track.name, q.id);
            assert!(ids.insert(q.id.clone()), "{at}: duplicate id");
            assert!(
                (3..=5).contains(&q.key_points.len()),
                "{at}: 3 to 5 key points"
            );
            assert!(!q.misconceptions.is_empty(), "{at}: a misconception");
            assert!(!q.links.is_empty(), "{at}: links");
            for l in &q.links {
                assert!(LINKS.contains(&l.as_str()), "{at}: unknown link {l}");
            }
            // A natural paragraph: several sentences, not a list.
            assert!(
                q.model_answer.matches(". ").count() >= 2,
                "{at}: model answer"
            );
            assert!(!q.model_answer.contains('\n'), "{at}: one paragraph");
            for p in &q.key_points {
                assert!(p.weight > 0.0);
                assert!(!p.matchers.is_empty());
                assert!(
                    p.prompt.ends_with('?'),
                    "{at}/{}: a follow-up is a question",
                    p.id
                );
                assert!(
                    p.text.ends_with('.'),
                    "{at}/{}: the point is a sentence",
                    p.id
                );
            }
            for m in &q.misconceptions {
                assert!(m.penalty > 0.0 && m.penalty <= 25.0, "{at}/{}", m.id);
            }
        }
    }
}

#[test]
fn export_then_parse_gives_the_track_back() {
    for track in shipped() {
        let text = export_track(&track);
        let again = parse_track(&text).unwrap();
        assert_eq!(again, track, "{}", track.name);
        // And export is a fixed point after one round.
        assert_eq!(export_track(&again), text);
    }
}

#[test]
fn json_round_trip_for_the_site() {
    for track in shipped() {
        let json = serde_json::to_string(&track).unwrap();
        let back: Track = serde_json::from_str(&json).unwrap();
        assert_eq!(back, track);
    }
}

#[test]
fn level_names() {
    for level in Level::ALL {
        assert_eq!(level.to_string().parse::<Level>().unwrap(), level);
    }
    assert_eq!("Senior".parse::<Level>().unwrap(), Level::Senior);
    assert!("expert".parse::<Level>().is_err());
    assert_eq!(serde_json::to_string(&Level::Mid).unwrap(), "\"mid\"");
}

const MINIMAL: &str = "\
track: t
title: T

[question q1]
level: mid
prompt: Why?
model_answer: Because.

[point p1]
weight: 1
text: A point.
prompt: Ask?
hint: A hint.
match: any leaky bucket
";

#[test]
fn minimal_track_and_its_defaults() {
    let t = parse_track(MINIMAL).unwrap();
    assert_eq!(t.description, "");
    assert_eq!(t.questions[0].links, Vec::<String>::new());
    assert!(t.questions[0].misconceptions.is_empty());
    assert_eq!(
        t.questions[0].key_points[0].matchers,
        [Matcher::Any {
            phrases: vec!["leaky bucket".into()]
        }]
    );
}

#[test]
fn continuation_lines_keep_markdown() {
    let text = "\
track: t
title: T
description:
  | First paragraph.
  |
  |     indented code
  | # not a comment
# a real comment between continuation lines is skipped
  |last

[question q1]
level: junior
prompt: Look:
  | `limit_req zone=ip burst=20;`
model_answer: Yes.
[point p]
weight: 2.5
text: T.
prompt: P?
hint: H.
match: all limit client
match: near 5 burst queue
match: regex \\b(10|ten) ?r ?s\\b
";
    let t = parse_track(text).unwrap();
    assert_eq!(
        t.description,
        "First paragraph.\n\n    indented code\n# not a comment\nlast"
    );
    assert_eq!(
        t.questions[0].prompt,
        "Look:\n`limit_req zone=ip burst=20;`"
    );
    let p = &t.questions[0].key_points[0];
    assert_eq!(p.weight, 2.5);
    assert_eq!(
        p.matchers,
        [
            Matcher::All {
                words: vec!["limit".into(), "client".into()]
            },
            Matcher::Near {
                window: 5,
                words: vec!["burst".into(), "queue".into()]
            },
            Matcher::Regex {
                pattern: "\\b(10|ten) ?r ?s\\b".into()
            },
        ]
    );
    assert_eq!(parse_track(&export_track(&t)).unwrap(), t);
}

#[test]
fn crlf_files_parse() {
    let t = parse_track(&MINIMAL.replace('\n', "\r\n")).unwrap();
    assert_eq!(t, parse_track(MINIMAL).unwrap());
}

// ---- errors: one fixture per mistake, with the line it is reported at ----

fn errors(text: &str) -> Vec<ParseError> {
    match parse_track(text) {
        Ok(t) => panic!("expected errors, got {t:?}"),
        Err(e) => e,
    }
}

/// The file has exactly one error, at `line`, whose message contains `needle`.
fn one_error(text: &str, line: usize, needle: &str) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, line, "{e:?}");
    assert!(
        e[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        e[0].message
    );
    assert_eq!(e[0].to_string(), format!("line {line}: {}", e[0].message));
}

fn with(line_no: usize, line: &str) -> String {
    // Inserts `line` so that it becomes line `line_no` of MINIMAL.
    let mut lines: Vec<&str> = MINIMAL.lines().collect();
    lines.insert(line_no - 1, line);
    lines.join("\n") + "\n"
}

fn replacing(old: &str, new: &str) -> String {
    assert!(MINIMAL.contains(old));
    MINIMAL.replacen(old, new, 1)
}

#[test]
fn error_unknown_key() {
    one_error(&with(8, "colour: red"), 8, "unknown key `colour:`");
    one_error(
        &with(3, "level: mid"),
        3,
        "before the first `[question ID]`",
    );
}

#[test]
fn error_bad_level() {
    one_error(
        &replacing("level: mid", "level: expert"),
        5,
        "unknown level `expert`",
    );
}

#[test]
fn error_duplicate_field() {
    one_error(
        &with(7, "prompt: Again?"),
        7,
        "given twice (first at line 6)",
    );
}

#[test]
fn error_duplicate_question_id() {
    let text = format!(
        "{MINIMAL}\n{}",
        &MINIMAL[MINIMAL.find("[question").unwrap()..]
    );
    one_error(&text, 16, "question id `q1` used twice (first at line 4)");
}

#[test]
fn error_duplicate_point_id() {
    let point = &MINIMAL[MINIMAL.find("[point").unwrap()..];
    let text = format!("{MINIMAL}{point}");
    one_error(&text, 15, "id `p1` used twice");
}

#[test]
fn error_missing_fields() {
    let e = errors(&replacing("level: mid\nprompt: Why?\n", ""));
    assert_eq!(
        e,
        [
            ParseError {
                line: 4,
                message: "missing `level:`".into()
            },
            ParseError {
                line: 4,
                message: "missing `prompt:`".into()
            },
        ]
    );
    one_error(&replacing("hint: A hint.\n", ""), 9, "missing `hint:`");
    one_error(&replacing("title: T\n", ""), 1, "missing `title:`");
    one_error(
        &replacing("prompt: Why?", "prompt:"),
        6,
        "`prompt:` is empty",
    );
}

#[test]
fn error_point_before_question() {
    let text = "track: t\ntitle: T\n[point p]\nweight: 1\n";
    let e = errors(text);
    assert!(
        e.iter()
            .any(|e| e.line == 3 && e.message.contains("belongs to a question")),
        "{e:?}"
    );
    // The fields of a broken section are skipped, not reported one by one.
    assert!(e.iter().all(|e| e.line != 4), "{e:?}");
}

#[test]
fn error_continuation_without_key() {
    one_error(&with(5, "  | floating"), 5, "a `|` line continues");
}

#[test]
fn error_continuation_of_a_one_line_key() {
    one_error(&with(15, "  | more words"), 15, "`match:` is one line");
}

#[test]
fn error_bad_matchers() {
    one_error(
        &replacing("any leaky bucket", "some leaky"),
        14,
        "unknown matcher `some`",
    );
    one_error(
        &replacing("any leaky bucket", "near x burst queue"),
        14,
        "needs a window",
    );
    one_error(
        &replacing("any leaky bucket", "near 99 burst queue"),
        14,
        "needs a window",
    );
    one_error(
        &replacing("any leaky bucket", "near 5 burst"),
        14,
        "at least two words",
    );
    one_error(
        &replacing("any leaky bucket", "regex (unclosed"),
        14,
        "bad regular expression",
    );
    one_error(
        &replacing("any leaky bucket", "any the | of it"),
        14,
        "only function words",
    );
    one_error(
        &replacing("any leaky bucket", "any leaky || bucket"),
        14,
        "none empty",
    );
    one_error(
        &replacing("any leaky bucket", "all"),
        14,
        "at least one word",
    );
    one_error(
        &replacing("any leaky bucket", "all ---"),
        14,
        "no letters or digits",
    );
}

#[test]
fn error_bad_numbers() {
    one_error(
        &replacing("weight: 1", "weight: heavy"),
        10,
        "must be a number",
    );
    one_error(&replacing("weight: 1", "weight: 0"), 10, "must be above 0");
    one_error(
        &replacing("weight: 1", "weight: NaN"),
        10,
        "must be above 0",
    );
    let text = format!(
        "{MINIMAL}[misconception m]\npenalty: 150\ntext: Wrong.\ncorrection: Right.\nmatch: any token bucket\n"
    );
    one_error(&text, 16, "between 0 and 100");
}

#[test]
fn error_bad_ids_and_sections() {
    one_error(
        &replacing("[question q1]", "[question Q 1]"),
        4,
        "`Q 1` is not an id",
    );
    one_error(
        &replacing("[question q1]", "[question Q1]"),
        4,
        "`Q1` is not an id",
    );
    one_error(
        &replacing("[question q1]", "[question]"),
        4,
        "section header is",
    );
    let e = errors(&replacing("[point p1]", "[pointe p1]"));
    assert!(
        e.iter()
            .any(|e| e.line == 9 && e.message.contains("unknown section `[pointe]`")),
        "{e:?}"
    );
    // The question lost its only point with it.
    assert!(e
        .iter()
        .any(|e| e.line == 4 && e.message.contains("no `[point ID]`")));
    one_error(
        &replacing("track: t", "track: Edge Track"),
        1,
        "not a track slug",
    );
}

#[test]
fn error_bad_link() {
    one_error(&with(8, "link: posts/x"), 8, "not a link");
}

#[test]
fn error_garbage_line() {
    one_error(&with(3, "this is not a field"), 3, "expected `key: value`");
}

#[test]
fn error_question_without_points_and_point_without_matchers() {
    let cut = &MINIMAL[..MINIMAL.find("[point").unwrap()];
    one_error(cut, 4, "has no `[point ID]`");
    one_error(
        &replacing("match: any leaky bucket\n", ""),
        9,
        "missing `match:`",
    );
}

#[test]
fn error_no_questions() {
    one_error("track: t\ntitle: T\n", 1, "no `[question ID]`");
    let e = errors("");
    assert!(e.iter().any(|e| e.message.contains("missing `track:`")));
}

#[test]
fn all_errors_are_collected_in_line_order() {
    let text = "\
track: t
title: T
colour: red

[question q1]
level: expert
prompt: Why?
model_answer: Because.

[point p1]
weight: -2
text: A point.
prompt: Ask?
hint: A hint.
match: regex (
";
    let e = errors(text);
    let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 6, 11, 15], "{e:?}");
}
