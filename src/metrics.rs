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

use crate::events::{Counter, DROP_REASONS};
use crate::ffi::{Cmt, CmtMetric};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Namespace of every metric.
pub const NAMESPACE: &str = "fluentbit";
/// Subsystem of every metric.
pub const SUBSYSTEM: &str = "datadog_logs";
/// Upper bounds (seconds) of the request duration histogram's buckets; +Inf is implied.
pub const DURATION_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The handles of one instance's metrics.
struct Handles {
    sent: CmtMetric,
    dropped: CmtMetric,
    truncated: CmtMetric,
    retried: CmtMetric,
    requests: CmtMetric,
    uncompressed: CmtMetric,
    compressed: CmtMetric,
    duration: CmtMetric,
    site_info: CmtMetric,
    /// The site `site_info` shows as 1, if any yet.
    site: Option<String>,
    closed: bool,
}

/// One instance's metrics: update methods that do nothing where the host has no metrics.
pub struct Metrics {
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
    pub fn disabled() -> Metrics {
        Metrics {
            name: String::new(),
            handles: None,
        }
    }

    /// Creates every metric of instance `name` in `cmt` and its fixed series at 0. Disabled
    /// if cmetrics refuses any of them.
    pub fn new(cmt: &Cmt, name: &str) -> Metrics {
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
            for m in [&h.sent, &h.truncated, &h.retried] {
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

    /// Adds `n` to the metric that shows counter `c` of [`crate::events`], if one does:
    /// the events module calls this with every amount it adds to its own counters, so the
    /// metrics and the exit summary cannot disagree. Requests, their status and duration
    /// come through [`Metrics::request`] instead.
    pub fn count(&self, c: Counter, n: u64) {
        if n == 0 {
            return;
        }
        self.with(|h, name, ts| {
            let metric = match c {
                Counter::ObjectsSent => &h.sent,
                Counter::Truncated => &h.truncated,
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
    pub fn request(&self, status: Option<u16>, duration: Duration) {
        self.with(|h, name, ts| {
            let mut buf = itoa::Buffer::new();
            let status = status.map_or("error", |s| buf.format(s));
            h.requests.update(ts, 1.0, &[name, status]);
            h.duration.update(ts, duration.as_secs_f64(), &[name]);
        });
    }

    /// The site in use (configured or detected): its `site_info` series is 1, a previous
    /// one 0. Cheap when unchanged, so it may be called on every flush.
    pub fn site(&self, site: &str) {
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
    pub fn close(&self) {
        if let Some(h) = &self.handles {
            h.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        }
    }
}
