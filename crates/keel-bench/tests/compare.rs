//! `keel compare` against local servers with known latency: one row per target × cell in
//! the order given, limit and efficiency as defined (`min(c, cap) / L`, `RPS / limit`),
//! ratio lines, warm-ups, the files in `--out` (`results.json` valid against
//! `schema/compare.schema.json`, charts that parse as SVG and are real PNGs of the
//! stated size), and a target that is down counted rather than fatal.

// Test code: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Behaviour;
use keel_bench::compare::{chart, run_compare, CompareEvent, CompareOptions, CompareSink};
use keel_bench::compare::{parse_matrix, CompareTarget};

const L: Duration = Duration::from_millis(40);

fn latency_server() -> Behaviour {
    Behaviour {
        latency: L,
        ..Behaviour::default()
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "keel-compare-{name}-{}-{nanos}",
        std::process::id()
    ))
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/compare.schema.json"
    ))
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_limits_efficiency_and_ratios() {
    // "async": any concurrency, 40 ms each. "sync": the same, but at most 4 at once,
    // declared with @4 like gunicorn's workers × threads.
    let fast = common::spawn(latency_server()).await;
    let capped = common::spawn(Behaviour {
        max_in_flight: Some(4),
        ..latency_server()
    })
    .await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let sink = CompareSink::new(Duration::from_millis(50), move |e| {
        let line = match e {
            CompareEvent::Started {
                step,
                target,
                warmup,
                ..
            } => format!("start {step} {} {warmup}", target.name),
            CompareEvent::Finished { step, row, .. } => format!("done {step} {}", row.target),
            CompareEvent::Progress(_) | CompareEvent::Written(_) => return,
        };
        seen.lock().unwrap().push(line);
    });
    let opts = CompareOptions {
        targets: vec![
            CompareTarget::new("async", fast.url()),
            format!("sync={}@4", capped.url()).parse().unwrap(),
        ],
        matrix: parse_matrix("16x4,32x8").unwrap(),
        upstream_latency: Some(L),
        settle: Duration::ZERO,
        baseline: Some("sync".into()),
        ..CompareOptions::default()
    };
    let report = run_compare(opts, Some(sink)).await.unwrap();

    // One row per cell × target, cell-major, in the order given.
    let order: Vec<(&str, &str)> = report
        .rows
        .iter()
        .map(|r| (r.test.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("16/4", "async"),
            ("16/4", "sync"),
            ("32/8", "async"),
            ("32/8", "sync")
        ]
    );
    // Warm-up (c requests) then the measured run, target after target.
    assert_eq!(fast.requests(), 4 + 16 + 8 + 32);
    assert_eq!(capped.requests(), 4 + 16 + 8 + 32);
    assert_eq!(
        *events.lock().unwrap(),
        [
            "start 1 async true",
            "start 1 async false",
            "done 1 async",
            "start 2 sync true",
            "start 2 sync false",
            "done 2 sync",
            "start 3 async true",
            "start 3 async false",
            "done 3 async",
            "start 4 sync true",
            "start 4 sync false",
            "done 4 sync",
        ]
    );

    for r in &report.rows {
        let warm = r.warmup.unwrap();
        assert_eq!((warm.requests, warm.errors), (r.concurrency, 0), "{r:?}");
        assert_eq!((r.responses, r.failures()), (r.requests, 0), "{r:?}");
        let slots = if r.target == "sync" {
            r.concurrency.min(4)
        } else {
            r.concurrency
        };
        let limit = r.limit_rps.unwrap();
        assert!(
            (limit - slots as f64 / L.as_secs_f64()).abs() < 1e-9,
            "{r:?}"
        );
        let efficiency = r.efficiency.unwrap();
        assert!(
            (efficiency - r.requests_per_sec / limit).abs() < 1e-12,
            "{r:?}"
        );
        // A server that takes L per request can approach but never beat c / L.
        assert!(efficiency > 0.5 && efficiency <= 1.02, "{r:?}");
        let p95 = r.p95_secs.unwrap();
        assert!(p95 >= L.as_secs_f64(), "{r:?}");
    }
    // The capped server queues at 32/8: each request waits about twice L.
    let queued = &report.rows[3];
    assert!(
        queued.p50_secs.unwrap() > 1.5 * L.as_secs_f64(),
        "{queued:?}"
    );

    // --baseline sync: async / sync per cell; twice the slots at 32/8, the same at 16/4.
    assert_eq!(report.ratios.len(), 2);
    let at = |test: &str| {
        report
            .ratios
            .iter()
            .find(|r| r.test == test)
            .unwrap()
            .rps_ratio
            .unwrap()
    };
    assert!((0.8..1.25).contains(&at("16/4")), "{:?}", report.ratios);
    assert!((1.6..2.5).contains(&at("32/8")), "{:?}", report.ratios);

    // The text table: header, rule, one line per row.
    let text = report.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "Test",
            "Mode",
            "RPS",
            "Avg",
            "latency",
            "P95",
            "latency",
            "Limit",
            "Efficiency"
        ]
    );
    for (line, (test, target)) in lines[2..6].iter().zip(&order) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((words[0], words[1]), (*test, *target), "{text}");
    }
    assert!(lines[6].is_empty(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_written_and_valid_with_a_target_down() {
    let up = common::spawn(latency_server()).await;
    let down = common::refused_addr();
    let dir = temp_dir("files");
    let opts = CompareOptions {
        targets: vec![
            CompareTarget::new("up", up.url()),
            CompareTarget::new("down", format!("http://{down}/")),
        ],
        matrix: parse_matrix("8x2,12x4").unwrap(),
        upstream_latency: Some(L),
        settle: Duration::ZERO,
        warmup: false,
        out_dir: Some(dir.clone()),
        ratios: vec!["up/down".parse().unwrap()],
        command_line: Some("compare --target up=… --target down=…".into()),
        notes: vec!["a note for report.md".into()],
        ..CompareOptions::default()
    };
    let report = run_compare(opts, None).await.unwrap();
    assert_eq!(up.requests(), 8 + 12, "no warm-up requests");
    let failed = &report.rows[1];
    assert_eq!((failed.target.as_str(), failed.errors), ("down", 8));
    assert_eq!(failed.p95_secs, None);

    // results.json: what the report says, valid against the committed schema.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let errors: Vec<String> = validator()
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{json:#}");
    assert_eq!(json["rows"].as_array().unwrap().len(), 4);
    assert_eq!(
        json["rows"][1]["error_counts"][0]["kind"],
        "connect_refused"
    );
    assert!(json["rows"][1]["p95_secs"].is_null());
    assert_eq!(json["ratios"][0]["numerator"], "up");
    assert_eq!(json, serde_json::to_value(&report).unwrap());

    // report.md: the table, failures, machine, command, notes.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "| Test | Mode | RPS | Avg latency | P95 latency | Limit | Efficiency | Failed |",
        "| 8/2 | up |",
        "| 12/4 | down |",
        "connect_refused ×8",
        "## Machine",
        "compare --target up=… --target down=…",
        "- a note for report.md",
        "![Requests per second per cell](rps.svg)",
    ] {
        assert!(md.contains(needle), "{needle:?} missing from\n{md}");
    }

    // Charts: SVG that parses as XML with a bar per row that has a value; PNG of the
    // stated size.
    for name in ["rps", "p95"] {
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.attribute("width"), Some("960"));
        assert_eq!(root.attribute("height"), Some("540"));
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        for label in ["8/2", "12/4", "up", "down"] {
            assert!(
                texts.contains(&label),
                "{name}.svg lacks {label}: {texts:?}"
            );
        }
        let filled_bars = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("height") != Some("540"))
            .filter(|n| n.attribute("width").is_some_and(|w| w != "13"))
            .count();
        // rps: every row has an RPS (the down target's is its error rate);
        // p95: the down target has no latency, so no bar.
        let expected = if name == "rps" { 4 } else { 2 };
        assert_eq!(filled_bars, expected, "{name}.svg");

        let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png signature");
        assert_eq!(&png[12..16], b"IHDR");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (chart::WIDTH, chart::HEIGHT), "{name}.png");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn invalid_options_fail_before_any_request() {
    let server = common::spawn(Behaviour::default()).await;
    let opts = CompareOptions {
        targets: vec![
            CompareTarget::new("ok", server.url()),
            CompareTarget::new("bad", "ftp://127.0.0.1/"),
        ],
        matrix: parse_matrix("2x1").unwrap(),
        ..CompareOptions::default()
    };
    let e = run_compare(opts, None).await.unwrap_err().to_string();
    assert!(e.starts_with("target bad at 2/1:"), "{e}");
    assert_eq!(server.requests(), 0);
}

/// The schema itself rejects what it should: a guard against a schema that accepts anything.
#[test]
fn schema_rejects_a_wrong_results_file() {
    let v = validator();
    assert!(!v.is_valid(&serde_json::json!({})));
    let mut ok = serde_json::json!({
        "schema_version": 1, "started_at": "2026-11-25T10:00:00Z",
        "finished_at": "2026-11-25T10:01:00Z", "command_line": null,
        "upstream_latency_secs": 0.1, "warmup": true,
        "machine": {"cpu_model": null, "logical_cpus": null, "available_cpus": null,
                    "memory_total_bytes": null, "os": null},
        "targets": [{"name": "a", "url": "http://127.0.0.1:1/", "concurrency_cap": null}],
        "matrix": [{"requests": 2, "concurrency": 1}],
        "rows": [], "ratios": [], "notes": []
    });
    assert!(v.is_valid(&ok));
    ok["targets"][0]["name"] = "a b".into();
    assert!(!v.is_valid(&ok));
    ok["targets"][0]["name"] = "a".into();
    ok["started_at"] = "yesterday".into();
    assert!(!v.is_valid(&ok));
}
