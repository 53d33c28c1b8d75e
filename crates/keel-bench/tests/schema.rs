//! The JSON output agrees with the committed `schema/report.schema.json`, for a run with
//! responses of two status codes and for one where every request failed (the `null`s and
//! empty arrays).

// Test code: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Behaviour;
use keel_bench::{run, BenchOptions, OutputFormat};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/report.schema.json"
    ))
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn check(json: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let errors: Vec<String> = validator()
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{json}");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_of_a_mixed_run_matches_the_schema() {
    let server = common::spawn(Behaviour {
        status_every: Some((4, 500)),
        ..Behaviour::default()
    })
    .await;
    let mut o = BenchOptions::new(server.url());
    o.requests = 40;
    o.concurrency = 4;
    o.output = OutputFormat::Json;
    let report = run(o, None).await.unwrap();
    let v = check(&report.render(OutputFormat::Json).unwrap());
    assert_eq!(v["status_codes"]["200"], 30);
    assert_eq!(v["status_codes"]["500"], 10);
    assert_eq!(v["latency_percentiles"].as_array().unwrap().len(), 8);
    assert_eq!(v["histogram"].as_array().unwrap().len(), 11);
    assert_eq!(v["run"]["latency_from"], "send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_of_a_failed_run_matches_the_schema() {
    let addr = common::refused_addr();
    let mut o = BenchOptions::new(format!("http://{addr}/"));
    o.duration = Some(Duration::from_millis(100));
    o.rate_per_sec = Some(50.0);
    o.concurrency = 2;
    o.timeout = None;
    let report = run(o, None).await.unwrap();
    let v = check(&report.to_json().unwrap());
    assert!(v["summary"]["errors"].as_u64().unwrap() >= 4);
    assert_eq!(v["errors"][0]["kind"], "connect_refused");
    assert!(v["run"]["timeout_secs"].is_null());
    assert_eq!(v["run"]["latency_from"], "schedule");
}

/// The schema itself rejects what it should: a guard against a schema that accepts anything.
#[test]
fn schema_rejects_a_wrong_report() {
    let v = validator();
    assert!(!v.is_valid(&serde_json::json!({})));
    assert!(!v.is_valid(&serde_json::json!({
        "summary": {}, "latency_percentiles": [], "histogram": [], "details": {},
        "status_codes": {"OK": 1}, "errors": [], "run": {}
    })));
}
