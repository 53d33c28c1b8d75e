//! Item analysis on a small hand-computed dataset, and the CSV writer's quoting and
//! formula-injection guard.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use keel_quiz::{analyse, to_csv, AttemptRecord, ItemRecord};

fn item(question_id: i64, fraction: f64, picked: &[usize]) -> ItemRecord {
    ItemRecord {
        question_id,
        fraction,
        picked: picked.to_vec(),
    }
}

/// Ten attempts, totals 100, 90, ..., 20, 5 (best first).
///
/// | attempt total | q1 | q2 | q3  | q4 |
/// |---|---|---|---|---|
/// | 100 | 1 | 0 | 1   |   |
/// |  90 | 1 | 0 | 0.5 | 1 |
/// |  80 | 1 | 1 | 0.5 | 1 |
/// |  70 | 1 | 1 | 1   | 0 |
/// |  60 | 0 | 1 | 0   |   |
/// |  50 | 1 | 1 | 0   |   |
/// |  40 | 0 | 1 | 0.5 |   |
/// |  30 | 0 | 1 | 0   |   |
/// |  20 | 0 | 1 | 0   |   |
/// |   5 | 0 | 1 | 0.5 |   |
fn dataset() -> Vec<AttemptRecord> {
    let totals = [100.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 5.0];
    let q1 = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    let q2 = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let q3 = [1.0, 0.5, 0.5, 1.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.5];
    (0..10)
        .map(|i| {
            let q1_pick: &[usize] = match (q1[i] == 1.0, i) {
                (true, _) => &[0],
                (false, 9) => &[2],
                (false, _) => &[1],
            };
            let mut items = vec![
                item(1, q1[i], q1_pick),
                item(2, q2[i], &[]),
                item(3, q3[i], &[]),
            ];
            match i {
                1 | 2 => items.insert(0, item(4, 1.0, &[3])),
                3 => items.insert(0, item(4, 0.0, &[])),
                _ => {}
            }
            AttemptRecord {
                total: totals[i],
                items,
            }
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn hand_computed_statistics() {
    let a = analyse(&dataset());
    assert_eq!(a.attempts, 10);
    assert!(close(a.mean, 54.5));
    assert!(close(a.median, 55.0)); // (60 + 50) / 2
    let ids: Vec<i64> = a.items.iter().map(|i| i.question_id).collect();
    assert_eq!(ids, [1, 2, 3, 4], "first-seen order");

    // Groups are round(10 × 0.27) = 3 attempts: totals {100, 90, 80} and {30, 20, 5}.
    let q1 = &a.items[0];
    assert_eq!(q1.attempts, 10);
    assert!(close(q1.facility, 0.5));
    assert!(close(q1.discrimination.unwrap(), 1.0)); // 3/3 − 0/3
    assert_eq!(
        q1.picks.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        [(0, 5), (1, 4), (2, 1)]
    );

    let q2 = &a.items[1];
    assert!(close(q2.facility, 0.8));
    assert!(close(q2.discrimination.unwrap(), 1.0 / 3.0 - 1.0)); // 1/3 − 3/3
    assert!(q2.picks.is_empty());

    let q3 = &a.items[2];
    assert!(close(q3.facility, 0.4));
    assert!(close(q3.discrimination.unwrap(), 2.0 / 3.0 - 0.5 / 3.0)); // (1+.5+.5)/3 − (0+0+.5)/3

    // Asked in 3 attempts: too few for a discrimination index.
    let q4 = &a.items[3];
    assert_eq!(q4.attempts, 3);
    assert!(close(q4.facility, 2.0 / 3.0));
    assert_eq!(q4.discrimination, None);
    assert_eq!(q4.picks.get(&3), Some(&2));
}

#[test]
fn four_attempts_is_the_minimum_for_discrimination() {
    let records: Vec<AttemptRecord> = [(10.0, 0.0), (20.0, 0.0), (30.0, 1.0), (40.0, 1.0)]
        .into_iter()
        .map(|(total, f)| AttemptRecord {
            total,
            items: vec![item(7, f, &[])],
        })
        .collect();
    let a = analyse(&records);
    // round(4 × 0.27) = 1 attempt per group: 1 − 0.
    assert_eq!(a.items[0].discrimination, Some(1.0));
    assert!(close(a.median, 25.0));
    assert_eq!(analyse(&records[..3]).items[0].discrimination, None);
}

#[test]
fn empty_and_hostile_input() {
    let a = analyse(&[]);
    assert_eq!((a.attempts, a.mean, a.median), (0, 0.0, 0.0));
    assert!(a.items.is_empty());
    let a = analyse(&[AttemptRecord {
        total: f64::NAN,
        items: vec![item(1, f64::INFINITY, &[usize::MAX]), item(1, 7.0, &[])],
    }]);
    assert_eq!(a.mean, 0.0);
    assert_eq!(a.items[0].attempts, 2);
    assert!(close(a.items[0].facility, 0.5)); // inf → 0, 7 → clamped to 1
}

#[test]
fn csv_quotes_and_defuses_formulas() {
    let a = analyse(&dataset());
    let csv = to_csv(&a, |id| match id {
        1 => "=HYPERLINK(\"http://evil\")".to_owned(),
        2 => "Which, \"quoted\"\nline".to_owned(),
        3 => "plain".to_owned(),
        _ => "-1+1".to_owned(),
    });
    let expected = concat!(
        "question_id,question,attempts,facility,discrimination,choice_picks\r\n",
        "1,\"'=HYPERLINK(\"\"http://evil\"\")\",10,0.5000,1.0000,0:5;1:4;2:1\r\n",
        "2,\"Which, \"\"quoted\"\"\nline\",10,0.8000,-0.6667,\r\n",
        "3,plain,10,0.4000,0.5000,\r\n",
        "4,'-1+1,3,0.6667,,3:2\r\n",
    );
    assert_eq!(csv, expected);
}

#[test]
fn csv_guards_every_formula_prefix() {
    let a = analyse(&[AttemptRecord {
        total: 1.0,
        items: vec![item(1, 1.0, &[])],
    }]);
    for prefix in ['=', '+', '-', '@', '\t', '\r'] {
        let csv = to_csv(&a, |_| format!("{prefix}cmd"));
        let row = csv.lines().nth(1).unwrap();
        assert!(
            row.starts_with(&format!("1,'{prefix}")) || row.starts_with(&format!("1,\"'{prefix}")),
            "{prefix:?}: {row:?}"
        );
    }
    let csv = to_csv(&a, |_| "safe text".to_owned());
    assert!(csv.contains("\r\n1,safe text,1,1.0000,,\r\n"), "{csv:?}");
}
