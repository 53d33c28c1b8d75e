//! [`ProgressSink`]: how a caller watches a run while it goes (hey shows nothing until the
//! end). The aggregator calls the sink at most once per interval and once more at the end,
//! so a progress bar (indicatif in the binary, a log line, a test counter) costs the load
//! nothing per request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A snapshot of a run in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// Requests finished so far (responses and errors).
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// `-n`, when the run is bounded by count.
    pub planned_requests: Option<u64>,
    /// `-z`, when the run is bounded by time.
    pub planned_duration: Option<Duration>,
    /// True for the last call, after every worker has stopped.
    pub finished: bool,
}

impl Progress {
    /// How far the run is, from 0 to 1, by count or by time.
    pub fn fraction(&self) -> f64 {
        let f = match (self.planned_requests, self.planned_duration) {
            (Some(n), _) if n > 0 => self.requests as f64 / n as f64,
            (_, Some(d)) if !d.is_zero() => self.elapsed.as_secs_f64() / d.as_secs_f64(),
            _ => 0.0,
        };
        if self.finished {
            1.0
        } else {
            f.clamp(0.0, 1.0)
        }
    }
}

/// A callback for [`Progress`] snapshots. It runs on the aggregator, so it should be quick.
#[derive(Clone)]
pub struct ProgressSink {
    callback: Arc<dyn Fn(&Progress) + Send + Sync>,
    interval: Duration,
}

impl ProgressSink {
    /// Calls `callback` at most every `interval` (and once at the end).
    pub fn new(interval: Duration, callback: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        Self {
            callback: Arc::new(callback),
            interval,
        }
    }

    /// The minimum time between two calls.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub(crate) fn emit(&self, p: &Progress) {
        (self.callback)(p);
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressSink")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_by_count_and_time() {
        let mut p = Progress {
            elapsed: Duration::from_secs(1),
            requests: 50,
            errors: 0,
            planned_requests: Some(200),
            planned_duration: None,
            finished: false,
        };
        assert_eq!(p.fraction(), 0.25);
        p.planned_requests = None;
        p.planned_duration = Some(Duration::from_secs(4));
        assert_eq!(p.fraction(), 0.25);
        p.finished = true;
        assert_eq!(p.fraction(), 1.0);
    }
}
