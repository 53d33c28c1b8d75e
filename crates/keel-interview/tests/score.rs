//! The rubric's rules on every shipped question (model answer ≥ 80, keyword stuffing ≤ 60
//! and flagged, off topic ≤ 10 and flagged, no answer = 0), hand-written answers per track
//! (paraphrased, partial, with a misconception), and the scoring arithmetic on a small
//! question of our own.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use keel_interview::{
    assess, parse_track, score_of, shipped, BankQuestion, Track, Verdict, OFF_TOPIC_CAP,
    STUFFING_CAP,
};

const COOKING: &str = "To make a good risotto, warm the stock in a separate pan and keep it \
    simmering. Toast the rice in butter with a chopped onion until the grains turn glassy, \
    then add a glass of white wine and stir until it is absorbed. Add the stock one ladle at \
    a time, stirring often, for about eighteen minutes. Finish with parmesan and a knob of \
    cold butter, and let it rest for two minutes before serving.";

const GARDENING: &str = "Tomatoes need at least six hours of sun a day and deep watering \
    twice a week rather than a little every evening. Pinch out the side shoots so the plant \
    puts its energy into fruit, tie the stem to a cane as it grows, and feed it with a \
    potash-rich fertiliser once the first flowers open.";

fn track(name: &str) -> Track {
    shipped().into_iter().find(|t| t.name == name).unwrap()
}

fn question<'t>(t: &'t Track, id: &str) -> &'t BankQuestion {
    t.question(id).unwrap()
}

/// A fixed-seed shuffle (xorshift64*), so the stuffing test is the same on every run.
fn shuffled(words: &[&str], mut seed: u64) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    for i in (1..v.len()).rev() {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        v.swap(i, (r % (i as u64 + 1)) as usize);
    }
    v
}

/// The model answer's words, punctuation stripped, shuffled.
fn stuffed(q: &BankQuestion, seed: u64) -> Vec<String> {
    let words: Vec<&str> = q
        .model_answer
        .split(|c: char| c.is_whitespace())
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    shuffled(&words, seed)
}

fn every_question() -> Vec<(String, BankQuestion)> {
    shipped()
        .into_iter()
        .flat_map(|t| {
            let name = t.name.clone();
            t.questions.into_iter().map(move |q| (name.clone(), q))
        })
        .collect()
}

#[test]
fn every_model_answer_scores_at_least_80() {
    for (t, q) in every_question() {
        let v = assess(&q, &q.model_answer);
        assert!(v.score >= 80.0, "{t}/{}: {v:?}", q.id);
        assert!(v.misconceptions.is_empty(), "{t}/{}: {v:?}", q.id);
        assert!(
            !v.stuffing && !v.off_topic && !v.no_answer,
            "{t}/{}: {v:?}",
            q.id
        );
    }
}

#[test]
fn keyword_stuffing_of_every_model_answer_is_capped_and_flagged() {
    for (t, q) in every_question() {
        let words = stuffed(&q, 0x5EED);
        for list in [
            words.join(", "),
            words.join("\n"),
            format!("- {}", words.join("\n- ")),
        ] {
            let v = assess(&q, &list);
            assert!(v.stuffing, "{t}/{}: not flagged: {list}", q.id);
            assert!(v.score <= 60.0, "{t}/{}: {}", q.id, v.score);
            assert!(v.score <= STUFFING_CAP);
        }
        // A bag of nouns: only the content words, space separated.
        let nouns: Vec<String> = words
            .iter()
            .filter(|w| {
                w.len() > 3
                    && ![
                        "that", "with", "from", "this", "then", "when", "which", "they", "their",
                        "there", "into", "only", "also", "than", "more", "does", "have", "been",
                        "were", "what", "each", "every", "until", "because", "while", "after",
                        "before", "whether", "other", "same", "some", "such", "very", "just",
                        "over", "your", "them", "those", "these", "will", "would", "could",
                        "should", "must", "might", "once", "both", "either", "though", "although",
                        "unless", "since", "through", "within", "without", "upon", "about",
                        "being", "doing", "done", "here", "most", "much", "less", "many",
                        "nothing", "itself",
                    ]
                    .contains(&w.to_lowercase().as_str())
            })
            .cloned()
            .collect();
        let v = assess(&q, &nouns.join(" "));
        assert!(v.stuffing, "{t}/{}: bag of nouns not flagged", q.id);
        assert!(v.score <= 60.0);
    }
}

#[test]
fn off_topic_paragraphs_are_flagged_and_capped() {
    for (t, q) in every_question() {
        for text in [COOKING, GARDENING] {
            let v = assess(&q, text);
            assert!(v.off_topic, "{t}/{}: {v:?}", q.id);
            assert!(
                v.score <= 10.0 && v.score <= OFF_TOPIC_CAP,
                "{t}/{}: {v:?}",
                q.id
            );
            assert!(
                v.covered.is_empty(),
                "{t}/{}: a matcher fires on {text:?}: {v:?}",
                q.id
            );
        }
    }
}

/// Model answers of the other tracks, given to every question: the tracks overlap (threads
/// and timeouts come up in three of them), so some credit is fair, but loose matchers show
/// up here as a high mean. One pair is the same scenario seen from two sides.
#[test]
fn another_tracks_subject_is_off_topic() {
    let tracks = shipped();
    for t in &tracks {
        for q in &t.questions {
            let mut scores = Vec::new();
            for other in tracks.iter().filter(|o| o.name != t.name) {
                for oq in &other.questions {
                    let v = assess(q, &oq.model_answer);
                    let same_scenario = (t.name.as_str(), q.id.as_str(), oq.id.as_str())
                        == ("app-server", "slow-dependency", "pool-exhaustion");
                    assert!(
                        v.score < 80.0 || same_scenario,
                        "{}/{} answered with {}/{}: {v:?}",
                        t.name,
                        q.id,
                        other.name,
                        oq.id
                    );
                    scores.push(v.score);
                }
            }
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            assert!(mean <= 22.0, "{}/{}: mean {mean}", t.name, q.id);
        }
    }
    // A clearly different subject is flagged outright.
    let sse = question(&track("live-events"), "sse-basics")
        .model_answer
        .clone();
    let edge = track("edge");
    for id in [
        "limit-req-basics",
        "burst-nodelay",
        "zone-sizing",
        "status-503-429",
    ] {
        let v = assess(question(&edge, id), &sse);
        assert!(v.off_topic && v.score <= 10.0, "edge/{id}: {v:?}");
    }
    let limit = question(&edge, "limit-req-basics").model_answer.clone();
    let live = track("live-events");
    for id in ["pubsub-delivery", "heartbeats", "slow-subscriber"] {
        let v = assess(question(&live, id), &limit);
        assert!(v.off_topic && v.score <= 10.0, "live-events/{id}: {v:?}");
    }
}

#[test]
fn empty_and_i_dont_know_score_zero_and_are_not_off_topic() {
    for (t, q) in every_question() {
        for text in [
            "",
            "   \n ",
            "I don't know",
            "i dont know.",
            "I don’t know, sorry",
            "No idea",
            "Not sure",
            "idk",
            "pass",
            "I have no clue",
            "I can't remember",
            "?",
        ] {
            let v = assess(&q, text);
            assert_eq!(v.score, 0.0, "{t}/{}: {text:?}", q.id);
            assert!(v.covered.is_empty() && v.misconceptions.is_empty());
            assert!(!v.off_topic && !v.stuffing, "{t}/{}: {text:?}", q.id);
            assert!(v.no_answer, "{t}/{}: {text:?}", q.id);
            assert_eq!(v.missed.len(), q.key_points.len());
        }
    }
}

// ---- hand-written answers, per track ----

fn check(
    v: &Verdict,
    covered: &[&str],
    misconceptions: &[&str],
    score: std::ops::RangeInclusive<f64>,
) {
    assert_eq!(v.covered, covered, "{v:#?}");
    assert_eq!(v.misconceptions, misconceptions, "{v:#?}");
    assert!(
        score.contains(&v.score),
        "score {} not in {score:?}: {v:#?}",
        v.score
    );
    assert!(!v.off_topic && !v.no_answer, "{v:#?}");
}

#[test]
fn edge_answers() {
    let t = track("edge");
    let q = question(&t, "limit-req-basics");
    let paraphrase = "It caps how fast one IP address may hit the server. Every address gets \
        its own entry in a shared zone, and the algorithm is a leaky bucket that empties at a \
        steady pace: ten requests a second means one every 100 ms. Whatever would overflow is \
        refused, with a 503 unless you configure something else.";
    check(
        &assess(q, paraphrase),
        &["per-client", "leaky-bucket", "rate", "rejects"],
        &[],
        100.0..=100.0,
    );
    check(
        &assess(q, "It limits requests using a leaky bucket."),
        &["leaky-bucket"],
        &[],
        33.0..=34.0,
    );
    let token = "limit_req is a token bucket: each client address saves up tokens while it is \
        idle and spends them later, and requests without a token are rejected with 503.";
    let v = assess(q, token);
    // (2 + 2) / 9 of the weight, minus the 15 points of the misconception.
    check(
        &v,
        &["per-client", "rejects"],
        &["token-bucket"],
        29.0..=30.0,
    );
    // Refuting the misconception is not holding it.
    let refuted = "It is not a token bucket, it is a leaky bucket.";
    check(&assess(q, refuted), &["leaky-bucket"], &[], 33.0..=34.0);
    // Typos are tolerated on long words.
    check(
        &assess(q, "It is a leaky buckett."),
        &["leaky-bucket"],
        &[],
        33.0..=34.0,
    );

    let q = question(&t, "xff-trusted-proxies");
    let paraphrase = "Since the balancer opens every connection, each request appears to come \
        from the balancer's address, so a limit on remote_addr puts all users in the same \
        bucket. X-Forwarded-For is a chain that each hop appends an address to, but whatever is \
        at the start came from the client and can be faked to dodge the limit. So I would trust \
        only the entries my own proxies added, reading from the right, with set_real_ip_from \
        and real_ip_recursive.";
    check(
        &assess(q, paraphrase),
        &["shared-bucket", "xff-list", "spoofable", "trust-rightmost"],
        &[],
        100.0..=100.0,
    );
    let wrong = "I would limit on X-Forwarded-For because the first address is the real client.";
    let v = assess(q, wrong);
    assert_eq!(v.misconceptions, ["leftmost-is-client"], "{v:#?}");
    assert!(v.score <= 10.0, "{v:#?}");

    let q = question(&t, "burst-nodelay");
    let partial = "With burst=20 the extra requests are queued and released at the rate, one \
        every 100 ms.";
    let v = assess(q, partial);
    assert!(v.covered.contains(&"burst-queue".to_owned()), "{v:#?}");
    assert!(!v.covered.contains(&"nodelay".to_owned()), "{v:#?}");
    assert!((20.0..=50.0).contains(&v.score), "{v:#?}");
    let wrong = "nodelay turns the limit off for bursts, so all thirty requests go through.";
    assert_eq!(assess(q, wrong).misconceptions, ["nodelay-no-limit"]);
}

#[test]
fn app_server_answers() {
    let t = track("app-server");
    let q = question(&t, "workers-threads");
    let paraphrase = "gunicorn forks four processes, and inside each worker ten threads share \
        the memory of that process. So 40 requests can be in progress together and the 41st \
        waits. Because of the GIL the threads mostly help while requests are waiting on the \
        database.";
    check(
        &assess(q, paraphrase),
        &["processes", "threads-share", "forty", "gil"],
        &[],
        100.0..=100.0,
    );
    check(
        &assess(q, "It can serve 40 requests at once."),
        &["forty"],
        &[],
        37.0..=38.0,
    );
    let wrong = "The workers are processes and their threads run in parallel on all the cores, \
        so 40 requests are served at once.";
    check(
        &assess(q, wrong),
        &["processes", "forty"],
        &["threads-parallel-cpu"],
        47.0..=48.0,
    );

    let q = question(&t, "sync-worker-timeout");
    let wrong = "The timeout cancels just that request and the worker continues with the next one.";
    let v = assess(q, wrong);
    assert_eq!(v.misconceptions, ["timeout-cancels-request"], "{v:#?}");
    let right = "When a sync worker, which serves one request at a time, is silent for more \
        than 30 seconds, the master process kills it and forks a new worker; the client gets a \
        502 from the proxy because the connection is closed.";
    check(
        &assess(q, right),
        &[
            "one-at-a-time",
            "default-30",
            "master-kills",
            "request-lost",
        ],
        &[],
        100.0..=100.0,
    );
}

#[test]
fn live_events_answers() {
    let t = track("live-events");
    let q = question(&t, "pubsub-delivery");
    let paraphrase = "Only the clients subscribed to that channel right now get it. Redis does \
        not keep the message anywhere, it's fire and forget, so a subscriber that was offline \
        has lost it. PUBLISH returns how many subscribers received it.";
    check(
        &assess(q, paraphrase),
        &["current-subscribers", "not-stored", "returns-count"],
        &[],
        100.0..=100.0,
    );
    let wrong = "Redis stores the messages until every subscriber has read them.";
    let v = assess(q, wrong);
    assert_eq!(v.misconceptions, ["redis-queues"], "{v:#?}");
    assert_eq!(v.score, 0.0);
    let negated = "Redis does not keep messages until they are read; it is fire and forget.";
    check(&assess(q, negated), &["not-stored"], &[], 37.0..=38.0);

    let q = question(&t, "proxy-buffering");
    let v = assess(
        q,
        "I would increase the buffer size in nginx so the events fit in it.",
    );
    assert_eq!(v.misconceptions, ["bigger-buffer"], "{v:#?}");
    let right = "nginx buffers the upstream response, so I would set proxy_buffering off for \
        the stream location, or send X-Accel-Buffering: no from the app.";
    check(
        &assess(q, right),
        &["buffering-default", "turn-off"],
        &[],
        66.0..=67.0,
    );
}

#[test]
fn sync_async_answers() {
    let t = track("sync-async");
    let q = question(&t, "event-loop");
    let paraphrase = "A single thread juggles lots of coroutines. When the view awaits the HTTP \
        call it yields back to the loop, which runs other tasks until epoll says the socket is \
        ready. Waiting is cheap, a little memory per request instead of a thread, but a blocking \
        call like time.sleep freezes everything.";
    check(
        &assess(q, paraphrase),
        &[
            "one-thread-many",
            "await-yields",
            "os-readiness",
            "cheap-waits",
            "blocking-stops-loop",
        ],
        &[],
        100.0..=100.0,
    );
    let wrong =
        "Async is faster: it makes the API call itself faster because it runs on an event loop.";
    let v = assess(q, wrong);
    assert_eq!(v.misconceptions, ["async-faster-call"], "{v:#?}");

    let q = question(&t, "timeouts");
    check(
        &assess(
            q,
            "Without a timeout a hung API can hold the thread forever.",
        ),
        &["hang-forever"],
        &[],
        33.0..=34.0,
    );
}

/// Wrong answers on the subject are wrong, not off topic: the interviewer follows up on
/// them instead of saying "that's not about this question".
#[test]
fn wrong_answers_on_the_subject_are_not_off_topic() {
    let cases = [
        (
            "edge",
            "burst-nodelay",
            "With burst=20 the requests above the rate are simply dropped, and nodelay removes \
             the limit for bursts, so after that the client can send as many as it likes.",
        ),
        (
            "live-events",
            "sse-basics",
            "SSE is a WebSocket-like protocol: the browser opens a socket, upgrades it, and both \
             sides then exchange JSON frames in both directions.",
        ),
        (
            "sync-async",
            "blocking-in-async",
            "It is fine, because the view is declared async def, which makes the calls inside it \
             non-blocking, so requests.get runs concurrently with everything else.",
        ),
        (
            "app-server",
            "backlog",
            "The backlog is how many requests gunicorn processes concurrently, so a bigger backlog \
             means more throughput for the same workers.",
        ),
    ];
    for (t, id, answer) in cases {
        let v = assess(question(&track(t), id), answer);
        assert!(!v.off_topic, "{t}/{id}: {v:#?}");
        assert!(!v.misconceptions.is_empty(), "{t}/{id}: {v:#?}");
    }
}

// ---- the arithmetic, on a question of our own ----

const SMALL: &str = "\
track: t
title: T
[question q]
level: mid
prompt: How does limit_req work?
model_answer: It is a leaky bucket that rejects with 503.
[point bucket]
weight: 3
text: A leaky bucket.
prompt: Which algorithm?
hint: Water.
match: any leaky bucket
[point status]
weight: 1
text: 503.
prompt: Which status?
hint: 5xx.
match: regex \\b503\\b
[misconception token]
penalty: 20
text: A token bucket.
correction: A leaky bucket.
match: any token bucket
[misconception big]
penalty: 90
text: Magic.
correction: No.
match: all magic unicorn
";

fn small() -> BankQuestion {
    parse_track(SMALL).unwrap().questions.remove(0)
}

#[test]
fn score_is_weighted_coverage_minus_penalties_clamped() {
    let q = small();
    assert_eq!(assess(&q, "It is a leaky bucket, I think.").score, 75.0);
    assert_eq!(
        assess(&q, "It answers 503 when the client is too fast.").score,
        25.0
    );
    assert_eq!(
        assess(&q, "A leaky bucket, and it answers with a 503.").score,
        100.0
    );
    assert_eq!(
        assess(&q, "It is a leaky bucket, also a token bucket.").score,
        55.0
    );
    // Penalties past the coverage clamp at 0.
    assert_eq!(
        assess(
            &q,
            "It is a token bucket run by a magic unicorn, answering 503."
        )
        .score,
        0.0
    );
    assert_eq!(
        score_of(&q, &["bucket".into(), "status".into()], &["token".into()]),
        80.0
    );
    assert_eq!(score_of(&q, &["nope".into()], &[]), 0.0);
}

#[test]
fn numbers_are_exact_and_short_words_take_no_typos() {
    let q = small();
    assert_eq!(
        assess(&q, "It answers with 502 when the client is too fast.").score,
        0.0
    );
    assert_eq!(
        assess(&q, "It answers with 5033 when the client is too fast.").score,
        0.0
    );
    // "leaky bucket" with typos in both words: leaky (5 letters) one edit, bucket one edit.
    assert_eq!(
        assess(&q, "It is a leeky buckt that fills up.").covered,
        ["bucket"]
    );
}

#[test]
fn evidence_points_at_the_readers_words() {
    let q = small();
    let answer = "Well, it is a Leaky-Bucket and it answers 503.";
    let v = assess(&q, answer);
    assert_eq!(v.covered, ["bucket", "status"]);
    let bucket = v.evidence.iter().find(|e| e.id == "bucket").unwrap();
    assert_eq!(bucket.words, ["Leaky", "Bucket"]);
    assert_eq!(bucket.matcher, 0);
    for (word, (start, end)) in bucket.words.iter().zip(&bucket.spans) {
        assert_eq!(&answer[*start..*end], word);
    }
    let status = v.evidence.iter().find(|e| e.id == "status").unwrap();
    assert_eq!(status.words, ["503"]);
    assert!(!status.by_model);
}

#[test]
fn negation_protects_against_false_misconceptions_but_not_across_clauses() {
    let q = small();
    assert!(assess(&q, "It isn't a token bucket; it is a leaky bucket.")
        .misconceptions
        .is_empty());
    assert!(assess(&q, "Not at all. It is a token bucket.").misconceptions == ["token"]);
    assert!(assess(&q, "It is not a leaky bucket but a token bucket.").misconceptions == ["token"]);
}

#[test]
fn assess_is_deterministic() {
    let q = small();
    let a = "It is a leaky bucket, also a token bucket, and 503.";
    assert_eq!(assess(&q, a), assess(&q, a));
}

#[test]
fn long_answers_are_graded_on_their_start_only() {
    let q = small();
    let long = format!("{} It is a leaky bucket.", "word ".repeat(5000));
    let v = assess(&q, &long);
    assert!(
        v.covered.is_empty(),
        "text past MAX_ANSWER_CHARS is ignored"
    );
}
