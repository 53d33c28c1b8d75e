//! Attempts: which questions a new attempt asks and in what order ([`draw`],
//! [`choice_order`]), the attempt's score ([`percent`]), the quiz grade over several
//! attempts ([`overall`], Moodle's grading methods), when answers may be reviewed
//! ([`may_show_answers`]) and the points of a live room ([`live_points`], Kahoot's rule).
//!
//! Everything random is a pure function of a `u64` seed that the site stores with the
//! attempt ([`new_seed`] makes one): reloading a page or reviewing an attempt a year later
//! shows the same questions and choices in the same order, with nothing else stored. The
//! generator is this crate's own (see `rng.rs`) so no dependency upgrade can change it.
//!
//! How it differs from Moodle: Moodle stores the drawn questions and the shuffled choice
//! order of every attempt in its question-usage tables; keel stores the seed and recomputes.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::{Kind, Question};
use keel_seed::{self as rng, SplitMix64};

/// One question available to a quiz, as the site knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool<'a> {
    /// The site's question id.
    pub id: i64,
    /// The question's category path (`a/b/c`).
    pub category: Option<&'a str>,
}

/// Sub-stream purposes (see `rng::stream`): fixed forever, like the algorithm.
const DOMAIN_PICK: u64 = 1;
const DOMAIN_ORDER: u64 = 2;
const DOMAIN_CHOICES: u64 = 3;

/// Picks the questions of a new attempt: all of them (`count` `None`) or `count` at random.
/// Questions whose id is in `seen` (asked in the reader's earlier attempts) are drawn only
/// after every unseen one, as Moodle's random questions do. `category` `Some(c)` keeps the
/// questions in `c` or a subcategory (`c/...`). Returns question ids in presentation order:
/// shuffled when `shuffle`, else in pool order. A `count` above what is available gives all
/// of it; an id listed twice in the pool is used once.
pub fn draw(
    pool: &[Pool],
    count: Option<usize>,
    category: Option<&str>,
    seen: &HashSet<i64>,
    shuffle: bool,
    seed: u64,
) -> Vec<i64> {
    let mut ids_seen = HashSet::new();
    // (pool position, id) of every eligible question.
    let eligible: Vec<(usize, i64)> = pool
        .iter()
        .enumerate()
        .filter(|(_, q)| category.is_none_or(|c| in_category(q.category, c)))
        .filter(|(_, q)| ids_seen.insert(q.id))
        .map(|(i, q)| (i, q.id))
        .collect();
    let (mut unseen, mut old): (Vec<_>, Vec<_>) =
        eligible.into_iter().partition(|(_, id)| !seen.contains(id));
    let wanted = count.unwrap_or(usize::MAX);
    let mut picked = if wanted >= unseen.len() + old.len() {
        unseen.extend(old);
        unseen
    } else {
        let mut rng = rng::stream(seed, DOMAIN_PICK, 0);
        rng.shuffle(&mut unseen);
        rng.shuffle(&mut old);
        unseen.extend(old);
        unseen.truncate(wanted);
        unseen
    };
    if shuffle {
        // Shuffle from pool order, so the order does not depend on how the pick went.
        picked.sort_unstable_by_key(|(pos, _)| *pos);
        rng::stream(seed, DOMAIN_ORDER, 0).shuffle(&mut picked);
    } else {
        picked.sort_unstable_by_key(|(pos, _)| *pos);
    }
    picked.into_iter().map(|(_, id)| id).collect()
}

/// Whether a question's category is `c` or below it (`c/...`). A trailing `/` on `c` is
/// ignored so `"web/"` and `"web"` mean the same.
fn in_category(question: Option<&str>, c: &str) -> bool {
    let c = c.trim_end_matches('/');
    match question {
        Some(q) => {
            q == c
                || q.strip_prefix(c)
                    .is_some_and(|rest| rest.starts_with('/') || c.is_empty())
        }
        None => c.is_empty(),
    }
}

/// The order in which a question's choices (or a matching question's right items) are
/// shown, as indexes into the stored list: `order[k]` is the stored index shown in position
/// `k`. Deterministic from `(seed, question_id)`; independent of the other questions of the
/// attempt. Empty for kinds without choices (nothing to order).
pub fn choice_order(q: &Question, seed: u64, question_id: i64) -> Vec<usize> {
    let n = match &q.kind {
        Kind::Single { choices } | Kind::Multiple { choices } => choices.len(),
        Kind::Matching { pairs } => pairs.len(),
        Kind::TrueFalse { .. } | Kind::Short { .. } | Kind::Numeric { .. } | Kind::Description => 0,
    };
    let mut order: Vec<usize> = (0..n).collect();
    // `as u64` reinterprets the id's bits: negative ids get their own streams too.
    rng::stream(seed, DOMAIN_CHOICES, question_id as u64).shuffle(&mut order);
    order
}

/// A fresh seed for a new attempt, from the operating system's randomness. Should the OS
/// refuse (a sandbox without `getrandom(2)`), falls back to the clock and a counter mixed
/// through SplitMix64: attempts still differ, they are just guessable, which only matters
/// for cheating at a quiz whose questions are public anyway.
pub fn new_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        SplitMix64::new(nanos ^ rng::mix(n)).next_u64()
    })
}

/// How a quiz turns a reader's several attempts into one grade (Moodle's grading methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradingMethod {
    /// The best attempt.
    Highest,
    /// The latest attempt.
    Last,
    /// The first attempt.
    First,
    /// The mean of all attempts, rounded to 2 decimals.
    Average,
}

/// A name that is not one of an enum's variants (from [`FromStr`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}'; expected one of: {expected}")]
pub struct UnknownName {
    /// What was being parsed ("grading method", "review policy").
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The accepted names, comma-separated.
    pub expected: &'static str,
}

impl GradingMethod {
    /// Every method, in the order the site lists them.
    pub const ALL: [GradingMethod; 4] = [Self::Highest, Self::Average, Self::First, Self::Last];

    /// The name used in forms, JSON and config (`highest`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Highest => "highest",
            Self::Last => "last",
            Self::First => "first",
            Self::Average => "average",
        }
    }
}

impl fmt::Display for GradingMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GradingMethod {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "grading method",
                value: s.to_owned(),
                expected: "highest, average, first, last",
            })
    }
}

/// The quiz grade from a reader's finished attempt scores in chronological order (percent
/// 0..=100). `None` when there are none. NaN scores are ignored by `Highest` and `Average`.
pub fn overall(method: GradingMethod, scores: &[f64]) -> Option<f64> {
    let finite = || scores.iter().copied().filter(|s| s.is_finite());
    match method {
        GradingMethod::Highest => finite().reduce(f64::max),
        GradingMethod::Last => scores.last().copied(),
        GradingMethod::First => scores.first().copied(),
        GradingMethod::Average => {
            let n = finite().count();
            (n > 0).then(|| round2(finite().sum::<f64>() / n as f64))
        }
    }
}

/// When readers may see the right answers and feedback of their finished attempts
/// (Moodle's review options, reduced to the three that matter for a blog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewPolicy {
    /// As soon as the attempt is finished.
    Immediately,
    /// Once the quiz has closed (never, for a quiz without a close time).
    AfterClose,
    /// Never: only the score is shown.
    Never,
}

impl ReviewPolicy {
    /// Every policy.
    pub const ALL: [ReviewPolicy; 3] = [Self::Immediately, Self::AfterClose, Self::Never];

    /// The name used in forms, JSON and config (`immediately`, `after_close`, `never`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediately => "immediately",
            Self::AfterClose => "after_close",
            Self::Never => "never",
        }
    }
}

impl fmt::Display for ReviewPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReviewPolicy {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "review policy",
                value: s.to_owned(),
                expected: "immediately, after_close, never",
            })
    }
}

/// Whether a finished attempt's answers may be shown now. `AfterClose` shows them from the
/// close time on (inclusive); a quiz without a close time never closes, so never shows them
/// (as in Moodle, where "after the quiz is closed" needs a close date).
pub fn may_show_answers(policy: ReviewPolicy, now_unix: i64, close_unix: Option<i64>) -> bool {
    match policy {
        ReviewPolicy::Immediately => true,
        ReviewPolicy::AfterClose => close_unix.is_some_and(|close| now_unix >= close),
        ReviewPolicy::Never => false,
    }
}

/// The score of an attempt in percent, rounded to 2 decimals: the mean of the graded
/// questions' fractions × 100. Pass only graded questions (see [`Question::is_graded`]);
/// each fraction is clamped into 0..=1 (NaN counts as 0). No questions → 0.
pub fn percent(fractions: &[f64]) -> f64 {
    if fractions.is_empty() {
        return 0.0;
    }
    let sum: f64 = fractions
        .iter()
        .map(|f| if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) })
        .sum();
    round2(sum / fractions.len() as f64 * 100.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Points for one answer in a live room, Kahoot's rule: a right answer scores
/// `round(1000 × (1 − (elapsed / limit) / 2))` with `elapsed` clamped into `0..=limit`, so
/// 1000 for an instant answer and 500 at the buzzer; a wrong or missing answer scores 0.
/// A zero `limit_ms` means no time limit: 1000. `streak` `Some(n)` (the answer is the n-th
/// right one in a row, this one included) adds `min(n, 5) × 100` from the second on; `None`
/// turns streak bonuses off (the default).
pub fn live_points(correct: bool, elapsed_ms: u64, limit_ms: u64, streak: Option<u32>) -> u32 {
    if !correct {
        return 0;
    }
    let base = if limit_ms == 0 {
        1000
    } else {
        // round(1000 - 500 e / l) = floor((2000 l - 1000 e + l) / 2l), exact in integers.
        let l = u128::from(limit_ms);
        let e = u128::from(elapsed_ms.min(limit_ms));
        ((2000 * l - 1000 * e + l) / (2 * l)) as u32 // <= 1000
    };
    let bonus = match streak {
        Some(n) if n >= 2 => n.min(5) * 100,
        _ => 0,
    };
    base + bonus
}
