//! Item analysis of a quiz (Moodle's quiz statistics report, reduced): per question how
//! easy it was (facility), whether it separates strong readers from weak ones
//! (discrimination) and which choices were picked; per quiz the mean and median score.
//! [`to_csv`] writes it for a spreadsheet.
//!
//! How it differs from Moodle: Moodle's discrimination index is the correlation between the
//! question's score and the rest of the test; keel uses the classic upper-lower index
//! (Kelley's 27%): mean fraction among the top 27% of attempts by total minus mean among
//! the bottom 27%. It is easier to explain to an author, needs no variance, and reads the
//! same way (near 1 separates well, near 0 does not, negative means strong readers get it
//! wrong more often — usually a wrong key).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One finished attempt, as the site stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The attempt's score in percent.
    pub total: f64,
    /// One record per question asked.
    pub items: Vec<ItemRecord>,
}

/// One question of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The site's question id.
    pub question_id: i64,
    /// The fraction scored, 0..=1.
    pub fraction: f64,
    /// The choice ids picked (stored order), empty when none or not a choice question.
    pub picked: Vec<usize>,
}

/// The statistics of one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemStats {
    /// The site's question id.
    pub question_id: i64,
    /// How many attempts asked it.
    pub attempts: usize,
    /// Mean fraction, 0..=1: the share of the mark readers got (high = easy).
    pub facility: f64,
    /// Mean fraction among the top 27% of attempts by total minus the mean among the bottom
    /// 27%, -1..=1; `None` with fewer than [`MIN_ATTEMPTS_FOR_DISCRIMINATION`] attempts.
    pub discrimination: Option<f64>,
    /// Choice id → how many times it was picked.
    pub picks: BTreeMap<usize, usize>,
}

/// The statistics of a quiz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// How many attempts were analysed.
    pub attempts: usize,
    /// Mean total, percent (0 without attempts).
    pub mean: f64,
    /// Median total, percent (the mean of the middle two for an even count; 0 without
    /// attempts).
    pub median: f64,
    /// One entry per question, in the order first seen in the records.
    pub items: Vec<ItemStats>,
}

/// Below this many attempts the top and bottom groups would be one attempt each or less,
/// and the index would say more about two readers than about the question.
pub const MIN_ATTEMPTS_FOR_DISCRIMINATION: usize = 4;

/// The share of attempts in each of the top and bottom groups (Kelley's 27%).
const GROUP_SHARE: f64 = 0.27;

/// Analyses finished attempts. Non-finite totals and fractions count as 0; fractions are
/// clamped into 0..=1.
pub fn analyse(records: &[AttemptRecord]) -> Analysis {
    let totals: Vec<f64> = records.iter().map(|r| finite_or_zero(r.total)).collect();
    let attempts = records.len();
    let mean = if attempts == 0 {
        0.0
    } else {
        totals.iter().sum::<f64>() / attempts as f64
    };
    let median = {
        let mut sorted = totals.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => 0.0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    };

    // Per question: (total of the attempt, fraction) for each time it was asked.
    let mut order: Vec<i64> = Vec::new();
    let mut scores: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
    let mut picks: BTreeMap<i64, BTreeMap<usize, usize>> = BTreeMap::new();
    for (record, &total) in records.iter().zip(&totals) {
        for item in &record.items {
            let fraction = finite_or_zero(item.fraction).clamp(0.0, 1.0);
            let entry = scores.entry(item.question_id).or_insert_with(|| {
                order.push(item.question_id);
                Vec::new()
            });
            entry.push((total, fraction));
            let counts = picks.entry(item.question_id).or_default();
            for &id in &item.picked {
                *counts.entry(id).or_insert(0) += 1;
            }
        }
    }

    let items = order
        .into_iter()
        .map(|question_id| {
            let mut asked = scores.remove(&question_id).unwrap_or_default();
            let n = asked.len();
            let facility = if n == 0 {
                0.0
            } else {
                asked.iter().map(|(_, f)| f).sum::<f64>() / n as f64
            };
            let discrimination = (n >= MIN_ATTEMPTS_FOR_DISCRIMINATION).then(|| {
                // Stable sort: attempts with equal totals keep record order, so the groups
                // (and the index) are the same every time the report is made.
                asked.sort_by(|a, b| a.0.total_cmp(&b.0));
                let group = ((n as f64 * GROUP_SHARE).round() as usize).max(1);
                let mean_of = |xs: &[(f64, f64)]| {
                    xs.iter().map(|(_, f)| f).sum::<f64>() / xs.len().max(1) as f64
                };
                let bottom = asked.get(..group).unwrap_or(&[]);
                let top = asked.get(n - group..).unwrap_or(&[]);
                mean_of(top) - mean_of(bottom)
            });
            ItemStats {
                question_id,
                attempts: n,
                facility,
                discrimination,
                picks: picks.remove(&question_id).unwrap_or_default(),
            }
        })
        .collect();

    Analysis {
        attempts,
        mean,
        median,
        items,
    }
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Writes the item statistics as CSV (RFC 4180: CRLF line ends, fields with a comma, quote
/// or line break quoted, quotes doubled), one row per question, `label` giving the text of
/// the `question` column (e.g. the title or the stem's first line).
///
/// Columns: `question_id,question,attempts,facility,discrimination,choice_picks`, facility
/// and discrimination with 4 decimals (discrimination empty when `None`), choice picks as
/// `id:count` pairs joined with `;`.
///
/// The `question` column is authored text, and a spreadsheet runs a cell starting with `=`,
/// `+`, `-`, `@`, tab or carriage return as a formula; such a cell gets a leading `'` (OWASP's
/// CSV injection advice). The numeric columns are written by this function and never get
/// one, so a negative discrimination stays a number.
pub fn to_csv(analysis: &Analysis, label: impl Fn(i64) -> String) -> String {
    let mut out =
        String::from("question_id,question,attempts,facility,discrimination,choice_picks\r\n");
    for item in &analysis.items {
        let picks = item
            .picks
            .iter()
            .map(|(id, n)| format!("{id}:{n}"))
            .collect::<Vec<_>>()
            .join(";");
        let discrimination = item
            .discrimination
            .map(|d| format!("{d:.4}"))
            .unwrap_or_default();
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{},{},{},{:.4},{},{}\r\n",
            item.question_id,
            csv_field(&defuse_formula(&label(item.question_id))),
            item.attempts,
            item.facility,
            discrimination,
            csv_field(&picks),
        );
    }
    out
}

/// Prefixes `'` to text a spreadsheet would evaluate as a formula.
fn defuse_formula(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Quotes a field when it holds a comma, a quote or a line break, doubling its quotes.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
