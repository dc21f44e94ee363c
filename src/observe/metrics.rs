//! The plugin's metrics in the host's cmetrics context (Fluent Bit >= 2.0), shown by the
//! host's HTTP server at `/api/v2/metrics` and `/api/v2/metrics/prometheus`.
//!
//! Namespace `fluentbit`, subsystem `datadog_logs`; every metric has the label `name` (the
//! instance's name, `datadog_logs.0`):
//!
//! | Metric | Type | Other labels |
//! |---|---|---|
//! | `fluentbit_datadog_logs_sent_logs_total` | counter | |
//! | `fluentbit_datadog_logs_dropped_logs_total` | counter | `reason` ([`DROP_REASONS`]) |
//! | `fluentbit_datadog_logs_truncated_logs_total` | counter | |
//! | `fluentbit_datadog_logs_partial_records_total` | counter | |
//! | `fluentbit_datadog_logs_retried_logs_total` | counter | |
//! | `fluentbit_datadog_logs_requests_total` | counter | `status` (code, or `error`) |
//! | `fluentbit_datadog_logs_uncompressed_bytes_total` | counter | |
//! | `fluentbit_datadog_logs_compressed_bytes_total` | counter | |
//! | `fluentbit_datadog_logs_request_duration_seconds` | histogram | |
//! | `fluentbit_datadog_logs_site_info` | gauge | `site` |
//!
//! Every series with a fixed label set is created at Init with 0, on the thread that runs
//! Init, so the host never sees a series appear while it reads the context. All calls into
//! cmetrics go through one mutex per instance: values are updated atomically by cmetrics, but
//! creating a label set (a new `status`) is not locked in the cmetrics of Fluent Bit 4.x.
//! After [`Metrics::close`] (at ExitCtx, before the host destroys the context) every method
//! does nothing. Where the host has no metrics, [`Metrics::disabled`] does nothing either.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One metric created in the host's metrics context (implemented by `crate::host`).
pub(crate) trait Metric: Send + Sync {
    /// Adds `value` (counter), sets it (gauge) or observes it (histogram) for the label
    /// values `labels`, at `timestamp` (nanoseconds since the epoch). False when refused.
    fn update(&self, timestamp: u64, value: f64, labels: &[&str]) -> bool;
}

/// The host's metrics context, which creates [`Metric`]s (implemented by `crate::host`).
pub(crate) trait MetricHost {
    /// A counter `fqname` (namespace, subsystem, name) with label keys `keys`.
    fn counter(&self, fqname: [&str; 3], help: &str, keys: &[&str]) -> Option<Box<dyn Metric>>;
    /// A gauge `fqname` with label keys `keys`.
    fn gauge(&self, fqname: [&str; 3], help: &str, keys: &[&str]) -> Option<Box<dyn Metric>>;
    /// A histogram `fqname` with bucket upper bounds `buckets` (ascending, +Inf implied).
    fn histogram(
        &self,
        fqname: [&str; 3],
        help: &str,
        keys: &[&str],
        buckets: &[f64],
    ) -> Option<Box<dyn Metric>>;
}

/// One counter of an instance (or of a flush).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counter {
    /// Log records decoded from chunks (group markers excluded; a retried chunk counts again).
    RecordsIn,
    /// Objects the intake accepted.
    ObjectsSent,
    /// HTTP requests made to the intake (by status: [`Snapshot::requests_by_status`]).
    Requests,
    /// Flushes answered with RETRY.
    Retries,
    /// Objects dropped because the intake answered 400 (or 422) for them alone.
    Dropped400,
    /// Objects dropped because the intake answered 413 for them alone.
    Dropped413,
    /// Records dropped because they could not fit Datadog's 1 MB log limit.
    DroppedTooLarge,
    /// Malformed stretches of chunks skipped.
    DroppedMalformed,
    /// Objects dropped with their chunk after a refusal (401, 403, a redirect, a payload
    /// refused as a whole, ...).
    DroppedRejected,
    /// Messages truncated to fit 1 MB.
    Truncated,
    /// Bytes of JSON sent, before compression.
    BytesJson,
    /// Bytes put on the wire, after compression.
    BytesWire,
    /// Logs sent again by a retry: the pending objects of a chunk resumed from memory.
    RetriedLogs,
    /// Sum of the requests' round-trip durations, in microseconds.
    RequestMicros,
    /// Records shipped that are one part of a line split by the container runtime
    /// (`partial_message`), each as its own log.
    PartialRecords,
}

impl Counter {
    /// Every counter, in the order of the exit summary.
    pub(crate) const ALL: [Counter; 15] = [
        Counter::RecordsIn,
        Counter::ObjectsSent,
        Counter::Requests,
        Counter::Retries,
        Counter::Dropped400,
        Counter::Dropped413,
        Counter::DroppedTooLarge,
        Counter::DroppedMalformed,
        Counter::DroppedRejected,
        Counter::Truncated,
        Counter::BytesJson,
        Counter::BytesWire,
        Counter::RetriedLogs,
        Counter::RequestMicros,
        Counter::PartialRecords,
    ];

    /// The counters the exit summary line shows, the first ones of [`Counter::ALL`] (its
    /// text is relied on; keep it stable).
    pub(crate) const SUMMARY: &[Counter] = Counter::ALL.split_at(12).0;

    /// The counter's name in the exit summary.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Counter::RecordsIn => "records_in",
            Counter::ObjectsSent => "objects_sent",
            Counter::Requests => "requests",
            Counter::Retries => "retries",
            Counter::Dropped400 => "dropped_400",
            Counter::Dropped413 => "dropped_413",
            Counter::DroppedTooLarge => "dropped_too_large",
            Counter::DroppedMalformed => "dropped_malformed",
            Counter::DroppedRejected => "dropped_rejected",
            Counter::Truncated => "truncated",
            Counter::BytesJson => "bytes_json",
            Counter::BytesWire => "bytes_wire",
            Counter::RetriedLogs => "retried_logs",
            Counter::RequestMicros => "request_micros",
            Counter::PartialRecords => "partial_records",
        }
    }
}

/// The reasons a log is dropped, with the counter of each (the `reason` label of
/// `dropped_logs_total`).
pub(crate) const DROP_REASONS: [(&str, Counter); 5] = [
    ("http_400", Counter::Dropped400),
    ("http_413", Counter::Dropped413),
    ("too_large", Counter::DroppedTooLarge),
    ("malformed", Counter::DroppedMalformed),
    ("rejected", Counter::DroppedRejected),
];

/// Counters of an instance or of one flush, updated with relaxed atomics from concurrent
/// threads. Only [`Events`] writes them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    values: [AtomicU64; Counter::ALL.len()],
    /// Requests by HTTP status; 0 stands for "no answer" (transport error).
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl Counters {
    pub(crate) fn add(&self, c: Counter, n: u64) {
        if n > 0 {
            self.values[c as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_status(&self, status: Option<u16>) {
        let mut map = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(status.unwrap_or(0)).or_default() += 1;
    }

    /// Reads one counter.
    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.values[c as usize].load(Ordering::Relaxed)
    }

    /// Reads every counter.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            values: Counter::ALL.map(|c| self.get(c)),
            by_status: self
                .by_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(s, n)| (*s, *n))
                .collect(),
        }
    }
}

/// A copy of the counters at one moment; displays as the exit summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    values: [u64; Counter::ALL.len()],
    by_status: Vec<(u16, u64)>,
}

impl Snapshot {
    /// The value of one counter.
    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    #[cfg(test)]
    /// Requests by HTTP status, ascending; status 0 counts requests that got no answer.
    pub(crate) fn requests_by_status(&self) -> &[(u16, u64)] {
        &self.by_status
    }

    #[cfg(test)]
    /// Logs dropped, by reason (see [`DROP_REASONS`]).
    pub(crate) fn dropped_by_reason(&self) -> [(&'static str, u64); 5] {
        DROP_REASONS.map(|(reason, c)| (reason, self.get(c)))
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in Counter::SUMMARY.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{}={}", c.name(), self.get(*c))?;
        }
        Ok(())
    }
}

/// Namespace of every metric.
pub(crate) const NAMESPACE: &str = "fluentbit";
/// Subsystem of every metric.
pub(crate) const SUBSYSTEM: &str = "datadog_logs";
/// Upper bounds (seconds) of the request duration histogram's buckets; +Inf is implied.
pub(crate) const DURATION_BUCKETS: [f64; 10] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The handles of one instance's metrics.
struct Handles {
    sent: Box<dyn Metric>,
    dropped: Box<dyn Metric>,
    truncated: Box<dyn Metric>,
    partial: Box<dyn Metric>,
    retried: Box<dyn Metric>,
    requests: Box<dyn Metric>,
    uncompressed: Box<dyn Metric>,
    compressed: Box<dyn Metric>,
    duration: Box<dyn Metric>,
    site_info: Box<dyn Metric>,
    /// The site `site_info` shows as 1, if any yet.
    site: Option<String>,
    closed: bool,
}

/// One instance's metrics: update methods that do nothing where the host has no metrics.
pub(crate) struct Metrics {
    name: String,
    handles: Option<Mutex<Handles>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("name", &self.name)
            .field("enabled", &self.handles.is_some())
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::disabled()
    }
}

/// Nanoseconds since the epoch, the timestamp cmetrics expects (`cfl_time_now`).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Metrics {
    /// Metrics that record nothing (hosts without cmetrics).
    pub(crate) fn disabled() -> Metrics {
        Metrics {
            name: String::new(),
            handles: None,
        }
    }

    /// Creates every metric of instance `name` in `cmt` and its fixed series at 0. Disabled
    /// if cmetrics refuses any of them.
    pub(crate) fn new(cmt: &dyn MetricHost, name: &str) -> Metrics {
        let n = |s: &'static str| [NAMESPACE, SUBSYSTEM, s];
        let counter = |s, help, keys: &[&str]| cmt.counter(n(s), help, keys);
        let handles = (|| {
            Some(Handles {
                sent: counter("sent_logs_total", "Logs the intake accepted.", &["name"])?,
                dropped: counter(
                    "dropped_logs_total",
                    "Logs dropped, by reason.",
                    &["name", "reason"],
                )?,
                truncated: counter(
                    "truncated_logs_total",
                    "Logs whose message was truncated to fit 1 MB.",
                    &["name"],
                )?,
                partial: counter(
                    "partial_records_total",
                    "Records that are one part of a line split by the container runtime (partial_message), shipped unjoined.",
                    &["name"],
                )?,
                retried: counter(
                    "retried_logs_total",
                    "Logs sent again by a retry.",
                    &["name"],
                )?,
                requests: counter(
                    "requests_total",
                    "HTTP requests to the intake, by status code (error: no response).",
                    &["name", "status"],
                )?,
                uncompressed: counter(
                    "uncompressed_bytes_total",
                    "Bytes of JSON sent, before compression.",
                    &["name"],
                )?,
                compressed: counter(
                    "compressed_bytes_total",
                    "Bytes of request bodies sent, after compression.",
                    &["name"],
                )?,
                duration: cmt.histogram(
                    n("request_duration_seconds"),
                    "Round trip of requests to the intake.",
                    &["name"],
                    &DURATION_BUCKETS,
                )?,
                site_info: cmt.gauge(
                    n("site_info"),
                    "1 for the Datadog site in use.",
                    &["name", "site"],
                )?,
                site: None,
                closed: false,
            })
        })();
        let metrics = Metrics {
            name: name.to_string(),
            handles: handles.map(Mutex::new),
        };
        metrics.with(|h, name, ts| {
            for m in [&h.sent, &h.truncated, &h.partial, &h.retried] {
                m.update(ts, 0.0, &[name]);
            }
            for (reason, _) in DROP_REASONS {
                h.dropped.update(ts, 0.0, &[name, reason]);
            }
            for m in [&h.uncompressed, &h.compressed] {
                m.update(ts, 0.0, &[name]);
            }
        });
        metrics
    }

    fn with(&self, f: impl FnOnce(&mut Handles, &str, u64)) {
        if let Some(h) = &self.handles {
            let mut h = h.lock().unwrap_or_else(|e| e.into_inner());
            if !h.closed {
                f(&mut h, &self.name, now_ns());
            }
        }
    }

    /// Adds `n` to the metric that shows counter `c` of [`crate::observe::events`], if one does:
    /// the events module calls this with every amount it adds to its own counters, so the
    /// metrics and the exit summary cannot disagree. Requests, their status and duration
    /// come through [`Metrics::request`] instead.
    pub(crate) fn count(&self, c: Counter, n: u64) {
        if n == 0 {
            return;
        }
        self.with(|h, name, ts| {
            let metric = match c {
                Counter::ObjectsSent => &h.sent,
                Counter::Truncated => &h.truncated,
                Counter::PartialRecords => &h.partial,
                Counter::RetriedLogs => &h.retried,
                Counter::BytesJson => &h.uncompressed,
                Counter::BytesWire => &h.compressed,
                _ => {
                    if let Some((reason, _)) = DROP_REASONS.iter().find(|(_, d)| *d == c) {
                        h.dropped.update(ts, n as f64, &[name, reason]);
                    }
                    return;
                }
            };
            metric.update(ts, n as f64, &[name]);
        });
    }

    /// One request: its HTTP status (`None` for a transport error, the label `error`) and
    /// its round trip.
    pub(crate) fn request(&self, status: Option<u16>, duration: Duration) {
        self.with(|h, name, ts| {
            let mut buf = itoa::Buffer::new();
            let status = status.map_or("error", |s| buf.format(s));
            h.requests.update(ts, 1.0, &[name, status]);
            h.duration.update(ts, duration.as_secs_f64(), &[name]);
        });
    }

    /// The site in use (configured or detected): its `site_info` series is 1, a previous
    /// one 0. Cheap when unchanged, so it may be called on every flush.
    pub(crate) fn site(&self, site: &str) {
        self.with(|h, name, ts| {
            if h.site.as_deref() == Some(site) {
                return;
            }
            if let Some(old) = h.site.take() {
                h.site_info.update(ts, 0.0, &[name, &old]);
            }
            h.site_info.update(ts, 1.0, &[name, site]);
            h.site = Some(site.to_string());
        });
    }

    /// Stops every update: the host destroys the context after the instance's ExitCtx.
    pub(crate) fn close(&self) {
        if let Some(h) = &self.handles {
            h.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        }
    }
}
