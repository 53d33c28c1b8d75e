//! What the benchmark examples (`live_room.rs`, `interview_stream.rs`) share: durations in
//! milliseconds, nearest-rank percentiles, and a cookie jar for one simulated browser.
//! Not an example itself (Cargo builds only `examples/*.rs` and `examples/*/main.rs`).

#![allow(dead_code)]

use std::time::Duration;

use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{json, Value};

/// A duration in (fractional) milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Rounded to two decimals, for reports.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Nearest-rank percentiles of a sample.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    pub fn of(mut v: Vec<f64>) -> Stats {
        if v.is_empty() {
            return Stats::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Stats {
            n: v.len(),
            min: v[0],
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }

    pub fn json(&self) -> Value {
        json!({ "n": self.n, "min_ms": r2(self.min), "p50_ms": r2(self.p50), "p90_ms": r2(self.p90),
                "p99_ms": r2(self.p99), "p999_ms": r2(self.p999), "max_ms": r2(self.max),
                "mean_ms": r2(self.mean) })
    }
}

/// One simulated browser's cookies, read from `Set-Cookie` by hand: name=value only, which
/// is all this site's cookies need on 127.0.0.1.
#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            match self.cookies.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => self.cookies.push((name, value)),
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// No cookie yet.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// The CSRF cookie's token, which every form post must repeat.
    pub fn csrf(&self) -> String {
        self.get("keel_csrf").unwrap_or("").to_owned()
    }
}
