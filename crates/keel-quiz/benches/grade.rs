//! Grading one 20-question attempt of every kind: the work the site does when a reader
//! submits (parse each question's form values, grade it, compute the percent). Target:
//! well under 1 ms, so grading never needs a worker thread of its own.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use keel_quiz::{gift, grade, parse_response, percent, Question};
use std::hint::black_box;

const QUIZ: &str = r#"
Which status does limit_req send by default? {=503#Right ~429#Close: that is limit_req_status 429 ~502 ####The default is 503.}

Which are leaky-bucket parameters? {~%50%rate ~%50%burst ~%-100%ttl ~%-100%weight ####rate and burst.}

X-Forwarded-For can be spoofed by clients. {T#It can: clients send it.#Right.}

The algorithm behind limit_req is the {=leaky bucket =%50%token bucket#Close} algorithm.

// keel: typo_tolerance=1
Which header carries the client address set by nginx's realip? {=X-Real-IP =%50%X-Forwarded-For}

How many concurrent sync requests do 4 workers × 8 threads serve? {#32}

What is pi to 2 decimals? {#=3.14:0.005 =%50%3.1:0.05#Close}

Give a number of seconds between 25 and 35. {#25..35}

Match the header to its role. {=X-Real-IP -> one address =X-Forwarded-For -> a chain =Host -> the virtual host}

Which status means Too Many Requests? {=429 ~503 ~500 ~502}

Which are SSE fields? {~%33.333%data ~%33.333%id ~%33.334%retry ~%-50%status}

Redis PUBLISH persists messages. {F#It does not.#Right: fire and forget.}

The MIME type of SSE is {=text/event-stream}.

// keel: typo_tolerance=2 case_sensitive=true
Name the gunicorn worker class for threads. {=gthread}

Default gunicorn timeout in seconds? {#30:0}

A burst of 20 at 10r/s drains in how many seconds? {#=2:0.1 =%25%1..3}

Match the command to its effect. {=PUBLISH -> send =SUBSCRIBE -> listen =UNSUBSCRIBE -> stop}

Which returns a subscriber count? {=PUBLISH ~SUBSCRIBE ~GET}

Keep-alive connections hold a sync worker. {T}

Pick the async-safe waits. {~%50%asyncio.sleep ~%50%await client.get ~%-100%time.sleep ~%-100%requests.get}
"#;

fn answers() -> Vec<Vec<&'static str>> {
    vec![
        vec!["0"],
        vec!["0", "1"],
        vec!["true"],
        vec!["leaky bucket"],
        vec!["x-real-ip"],
        vec!["32"],
        vec!["3,14"],
        vec!["30"],
        vec!["0", "1", "2"],
        vec!["1"],
        vec!["0", "1", "2"],
        vec!["false"],
        vec!["text/event-stream"],
        vec!["gthraed"],
        vec!["30"],
        vec!["2.05"],
        vec!["0", "2", "1"],
        vec!["0"],
        vec!["true"],
        vec!["0", "1"],
    ]
}

fn grade_attempt(questions: &[Question], answers: &[Vec<&str>]) -> f64 {
    let fractions: Vec<f64> = questions
        .iter()
        .zip(answers)
        .map(|(q, a)| {
            let r = parse_response(q, a).unwrap();
            grade(q, r.as_ref()).fraction
        })
        .collect();
    percent(&fractions)
}

fn bench(c: &mut Criterion) {
    let questions = gift::parse(QUIZ).unwrap();
    assert_eq!(questions.len(), 20);
    let answers = answers();
    let score = grade_attempt(&questions, &answers);
    assert!(score > 50.0, "the fixture should mostly score: {score}");
    c.bench_function("grade 20-question mixed attempt", |b| {
        b.iter(|| grade_attempt(black_box(&questions), black_box(&answers)))
    });
    c.bench_function("gift::parse 20 questions", |b| {
        b.iter(|| gift::parse(black_box(QUIZ)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
