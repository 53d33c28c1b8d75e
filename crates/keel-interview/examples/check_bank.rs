//! Checks a bank file the way `tests/score.rs` checks the shipped ones, and prints why a
//! question fails: for staff editing a bank.
//!
//! ```sh
//! cargo run -p keel-interview --example check_bank -- crates/keel-interview/tracks/edge.txt
//! ```

use keel_interview::{assess, parse_track};

/// The off-topic paragraph the shipped banks are tested against.
const COOKING: &str = "To make a good risotto, warm the stock in a separate pan and keep it \
    simmering. Toast the rice in butter with a chopped onion until the grains turn glassy, \
    then add a glass of white wine and stir until it is absorbed. Add the stock one ladle at \
    a time, stirring often, for about eighteen minutes. Finish with parmesan and a knob of \
    cold butter, and let it rest for two minutes before serving.";

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
                continue;
            }
        };
        let track = match parse_track(&text) {
            Ok(t) => t,
            Err(errors) => {
                for e in errors {
                    eprintln!("{path}: {e}");
                }
                failed = true;
                continue;
            }
        };
        for q in &track.questions {
            let model = assess(q, &q.model_answer);
            let words: Vec<&str> = q.model_answer.split_whitespace().collect();
            let stuffed = assess(q, &words.join(", "));
            let cooking = assess(q, COOKING);
            let ok = model.score >= 80.0
                && model.misconceptions.is_empty()
                && stuffed.stuffing
                && stuffed.score <= 60.0
                && cooking.off_topic
                && cooking.score <= 10.0;
            failed |= !ok;
            println!(
                "{} {}/{}: model {:.0} (missed {:?}, misconceptions {:?}), list {:.0} stuffing={}, cooking {:.0} off_topic={} covered {:?}",
                if ok { "ok  " } else { "FAIL" },
                track.name,
                q.id,
                model.score,
                model.missed,
                model.misconceptions,
                stuffed.score,
                stuffed.stuffing,
                cooking.score,
                cooking.off_topic,
                cooking.covered,
            );
        }
    }
    if failed {
        std::process::exit(1);
    }
}
