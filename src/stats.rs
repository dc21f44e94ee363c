//! Per-instance counters: what came in, what went out, what was dropped and why.
//!
//! Updated with relaxed atomics from concurrent flushes; read for the debug line of each flush
//! and the summary line at exit.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one plugin instance.
#[derive(Debug, Default)]
pub struct Stats {
    /// Log records decoded from chunks (group markers excluded; a retried chunk counts again).
    pub records_in: AtomicU64,
    /// Objects the intake accepted.
    pub objects_sent: AtomicU64,
    /// HTTP requests made to the intake.
    pub requests: AtomicU64,
    /// Flushes answered with RETRY.
    pub retries: AtomicU64,
    /// Objects dropped because the intake answered 400 for them alone.
    pub dropped_400: AtomicU64,
    /// Objects dropped because the intake answered 413 for them alone.
    pub dropped_413: AtomicU64,
    /// Records dropped because they could not fit Datadog's 1 MB log limit.
    pub dropped_too_large: AtomicU64,
    /// Malformed stretches of chunks skipped.
    pub dropped_malformed: AtomicU64,
    /// Objects dropped with their chunk after another 4xx (401, 403, ...).
    pub dropped_rejected: AtomicU64,
    /// Messages truncated to fit 1 MB.
    pub truncated: AtomicU64,
    /// Bytes of JSON sent, before compression.
    pub bytes_json: AtomicU64,
    /// Bytes put on the wire, after compression.
    pub bytes_wire: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Stats::records_in`].
    pub records_in: u64,
    /// See [`Stats::objects_sent`].
    pub objects_sent: u64,
    /// See [`Stats::requests`].
    pub requests: u64,
    /// See [`Stats::retries`].
    pub retries: u64,
    /// See [`Stats::dropped_400`].
    pub dropped_400: u64,
    /// See [`Stats::dropped_413`].
    pub dropped_413: u64,
    /// See [`Stats::dropped_too_large`].
    pub dropped_too_large: u64,
    /// See [`Stats::dropped_malformed`].
    pub dropped_malformed: u64,
    /// See [`Stats::dropped_rejected`].
    pub dropped_rejected: u64,
    /// See [`Stats::truncated`].
    pub truncated: u64,
    /// See [`Stats::bytes_json`].
    pub bytes_json: u64,
    /// See [`Stats::bytes_wire`].
    pub bytes_wire: u64,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            records_in: g(&self.records_in),
            objects_sent: g(&self.objects_sent),
            requests: g(&self.requests),
            retries: g(&self.retries),
            dropped_400: g(&self.dropped_400),
            dropped_413: g(&self.dropped_413),
            dropped_too_large: g(&self.dropped_too_large),
            dropped_malformed: g(&self.dropped_malformed),
            dropped_rejected: g(&self.dropped_rejected),
            truncated: g(&self.truncated),
            bytes_json: g(&self.bytes_json),
            bytes_wire: g(&self.bytes_wire),
        }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "records_in={} objects_sent={} requests={} retries={} dropped_400={} dropped_413={} \
             dropped_too_large={} dropped_malformed={} dropped_rejected={} truncated={} \
             bytes_json={} bytes_wire={}",
            self.records_in,
            self.objects_sent,
            self.requests,
            self.retries,
            self.dropped_400,
            self.dropped_413,
            self.dropped_too_large,
            self.dropped_malformed,
            self.dropped_rejected,
            self.truncated,
            self.bytes_json,
            self.bytes_wire
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_what_was_added() {
        let s = Stats::default();
        add(&s.records_in, 5);
        add(&s.bytes_wire, 100);
        add(&s.bytes_wire, 0);
        let snap = s.snapshot();
        assert_eq!(snap.records_in, 5);
        assert_eq!(snap.bytes_wire, 100);
        let line = snap.to_string();
        assert!(line.contains("records_in=5") && line.contains("bytes_wire=100"));
    }
}
