//! Everything that happens to a chunk or an instance, as events: each writes its own log line
//! and counts itself, here and nowhere else ([`HostEvent`] for what the host boundary meets
//! outside an instance's work).
//!
//! An [`Event`] goes to [`Events::emit`] (instance-wide) or [`FlushEvents::emit`] (during a
//! flush, which also counts it in the flush's own [`Counters`] for the flush's debug line).
//! [`Events`] is the only writer of the counters: the exit summary reads them, and the
//! plugin's own `fluentbit_datadog_logs_*` metrics ([`Metrics`], Fluent Bit >= 2.0) are fed
//! in `Events::record`, the one spot every event passes through, with the very amounts added
//! to the instance's counters (once per event, however many counters it is counted in).
//!
//! Adding a counter is one [`Counter`] variant (and its name) and the event that bumps it.

use crate::config::options::DEFAULT_GZIP_LEVEL;
use crate::config::sites::Site;
use crate::deliver::split::Step;
use crate::deliver::verdict::{Detail, Failure, Refusal, RetryReason, Verdict};
use crate::observe::log::{self, Key, Level, RateLimiter};
use crate::observe::metrics::{Counter, Counters, Metrics};
use std::time::Duration;

/// What auto-detection says about a key the configured site refused with 403.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyElsewhere {
    /// Not asked (an explicit `endpoint` with no probe list).
    NotAsked,
    /// The key is valid on this site.
    ValidOn(String),
    /// The key is valid on no other commercial site (or the probe had no answer).
    Nowhere,
}

/// Something that happened. Each variant writes its line (rate-limited where a flood is
/// possible) and bumps its counters in `Events::record`.
#[derive(Clone, Debug)]
pub(crate) enum Event<'a> {
    /// Log records decoded from a chunk.
    RecordsDecoded {
        /// How many.
        n: u64,
    },
    /// Malformed stretches of a chunk skipped (the rest of the chunk is delivered).
    MalformedSkipped {
        /// How many.
        n: u64,
        /// The chunk's tag.
        tag: &'a str,
        /// Byte offset of the first one.
        offset: usize,
        /// What is wrong with the first one.
        reason: &'static str,
    },
    /// Messages cut to fit Datadog's 1 MB log limit.
    RecordsTruncated {
        /// How many.
        n: u64,
    },
    /// Records shipped that are one part of a line split by the container runtime
    /// (`partial_message`), each as its own log.
    PartialRecords {
        /// How many.
        n: u64,
        /// The chunk's tag.
        tag: &'a str,
    },
    /// Records dropped because they stay over 1 MB even with an empty message.
    RecordsTooLarge {
        /// How many.
        n: u64,
    },
    /// What happened while sending: a request, objects accepted or dropped, zstd refused.
    Sent(Step<'a>),
    /// A chunk partly delivered before is sent again: its pending objects are retried logs.
    ChunkResumed {
        /// Objects sent again.
        pending: u64,
    },
    /// The site a flush sends to (configured, or found by auto-detection); no line, no
    /// counter: `site_info` shows it.
    SiteInUse {
        /// The site (or the host of an explicit `endpoint`).
        site: &'a str,
    },
    /// The intake refused a chunk's requests (401, 403, ...).
    ChunkRejected {
        /// The refusal.
        refusal: &'a Refusal,
        /// The intake's host.
        host: &'a str,
        /// The configured site, named in a 403's explanation.
        site: &'a str,
        /// Objects not delivered.
        pending: u64,
        /// True when they are dropped (ERROR), false when the chunk is retried anyway.
        dropped: bool,
        /// Where else the key is valid (403 only).
        elsewhere: &'a KeyElsewhere,
    },
    /// Objects of a chunk still pending after a transient failure: the chunk is retried.
    ChunkRetried {
        /// Objects still pending.
        pending: u64,
        /// Objects of the chunk.
        objects: u64,
        /// The intake's host.
        host: &'a str,
        /// The last transient failure.
        failure: Option<&'a Failure>,
    },
    /// A flush's work ended (the debug line of each flush that had objects).
    FlushDone {
        /// The chunk's tag.
        tag: &'a str,
        /// Objects of the chunk.
        objects: u64,
        /// Requests' worth of objects (batches).
        batches: usize,
        /// True when the chunk was resumed from memory.
        resumed: bool,
        /// Time the flush took.
        elapsed: Duration,
        /// Its verdict.
        verdict: &'a Verdict,
    },
    /// A flush answered Fluent Bit.
    Answered {
        /// The verdict.
        verdict: &'a Verdict,
    },
    /// The flush thread panicked.
    FlushPanicked,
    /// The flush thread could not be started.
    FlushThreadFailed {
        /// The error.
        error: &'a str,
    },
    /// Auto-detection found the key's site.
    SiteFound {
        /// The site.
        site: &'a str,
        /// Its intake URL, where flushes now go.
        url: &'a str,
    },
    /// Auto-detection found no site that accepts the key (asked again with backoff).
    NoSiteAccepts {
        /// The sites asked.
        asked: &'a [&'a str],
        /// The longest pause between two rounds.
        backoff_max: Duration,
    },
    /// Auto-detection has no answer yet: no site accepted the key and some could not be asked.
    SiteUnknown {
        /// Why some sites could not be asked.
        why: &'a str,
        /// The longest pause between two rounds.
        backoff_max: Duration,
    },
    /// The site probe's thread could not be started.
    ProbeThreadFailed {
        /// The error.
        error: &'a str,
    },
    /// A flush waited its bound for auto-detection, and the site is still unknown.
    SiteStillUnknown {
        /// How long it waited.
        waited: Duration,
    },
    /// A flush found that no site accepts the key.
    KeyOnNoSite,
    /// The instance started.
    Started {
        /// The plugin's version.
        version: &'a str,
        /// Where it sends.
        destination: &'a str,
        /// The `compress` setting, as written in the line.
        compress: &'a str,
        /// The TLS roots trusted.
        roots: &'a str,
    },
    /// A setting worth a warning at start (its line as the configuration wrote it).
    ConfigWarning {
        /// The line.
        line: &'a str,
    },
    /// The first flush that ran on Fluent Bit's engine thread (no `Workers`).
    OnEngineThread,
    /// The resume file (`resume_file`) was opened at Init.
    ResumeFileOpened {
        /// Its path.
        path: &'a std::path::Path,
        /// The chunks handed back before the restart that it remembers.
        chunks: usize,
        /// Why what it held was set aside, if it was.
        ignored: Option<&'a str>,
    },
    /// The resume file (`resume_file`) is open in another instance of this process.
    ResumeFileInUse {
        /// Its path.
        path: &'a std::path::Path,
    },
    /// The resume file could not be written (the memory still holds the entries).
    ResumeFileFailed {
        /// The error, with the file's path.
        error: &'a str,
    },
    /// The instance stopped.
    Exited {
        /// Flushes still running at exit.
        abandoned: usize,
    },
}

/// The instance's events: its counters, its rate limiter and its name in log lines.
#[derive(Debug)]
pub(crate) struct Events {
    name: std::sync::Arc<str>,
    limiter: RateLimiter,
    counters: Counters,
    /// The host's metrics, fed beside `counters` (`disabled` until [`Events::set_metrics`]).
    metrics: std::sync::OnceLock<Metrics>,
    disabled: Metrics,
}

/// How often the same failure may be logged.
pub(crate) const ERROR_INTERVAL: Duration = Duration::from_secs(60);

impl Events {
    /// The events of instance `name`; repeated failure lines are written once per `interval`.
    pub(crate) fn new(name: std::sync::Arc<str>, interval: Duration) -> Events {
        Events {
            name,
            limiter: RateLimiter::new(interval),
            counters: Counters::default(),
            metrics: std::sync::OnceLock::new(),
            disabled: Metrics::disabled(),
        }
    }

    /// Feeds `metrics` from now on (the host's, given at Init).
    /// Only the first call counts (Init gives them once).
    pub(crate) fn set_metrics(&self, metrics: Metrics) {
        let _ = self.metrics.set(metrics);
    }

    /// The host's metrics this instance feeds.
    pub(crate) fn metrics(&self) -> &Metrics {
        self.metrics.get().unwrap_or(&self.disabled)
    }

    #[cfg(test)]
    /// The instance's counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Events of one flush, counted in its own counters too.
    pub(crate) fn flush(&self) -> FlushEvents<'_> {
        FlushEvents {
            events: self,
            counters: Counters::default(),
        }
    }

    /// Records an instance-wide event.
    pub(crate) fn emit(&self, event: Event) {
        self.record(None, event);
    }

    /// The one place every event passes through: counts it (in the instance's counters and
    /// `flush`'s) and writes its line. The metrics get the instance's amounts, once.
    fn record(&self, flush: Option<&Counters>, event: Event) {
        let add = |c: Counter, n: u64| {
            self.counters.add(c, n);
            self.metrics().count(c, n);
            if let Some(f) = flush {
                f.add(c, n);
            }
        };
        let name = &*self.name;
        let limited = |level, key: Key, line: &dyn Fn() -> String| {
            self.limiter.write_with(level, name, key, line)
        };
        match event {
            Event::RecordsDecoded { n } => add(Counter::RecordsIn, n),
            Event::MalformedSkipped {
                n,
                tag,
                offset,
                reason,
            } => {
                add(Counter::DroppedMalformed, n);
                limited(Level::Warn, "malformed".into(), &|| {
                    format!(
                        "skipped {n} malformed record(s) in a chunk of tag '{tag}' (first at byte {offset}: {reason}); the chunk's other records are delivered"
                    )
                });
            }
            Event::RecordsTruncated { n: 0 } => {}
            Event::RecordsTruncated { n } => {
                add(Counter::Truncated, n);
                limited(Level::Warn, "truncated".into(), &|| {
                    format!(
                        "truncated {n} message(s) over Datadog's 1 MB log limit (they end in {})",
                        crate::encode::map::TRUNCATION_MARKER
                    )
                });
            }
            Event::PartialRecords { n: 0, .. } => {}
            Event::PartialRecords { n, tag } => {
                add(Counter::PartialRecords, n);
                limited(Level::Warn, "partial".into(), &|| {
                    format!(
                        "shipped {n} partial record(s) of tag '{tag}' unjoined, each as its own log: they are pieces of lines over 16 KB split by the container runtime (partial_message); join them before this output with [FILTER] Name multiline, Match *, Mode partial_message, multiline.key_content log"
                    )
                });
            }
            Event::RecordsTooLarge { n: 0 } => {}
            Event::RecordsTooLarge { n } => {
                add(Counter::DroppedTooLarge, n);
                limited(Level::Error, "too_large".into(), &|| {
                    format!(
                        "dropped {n} record(s) that stay over Datadog's 1 MB log limit even with an empty message"
                    )
                });
            }
            Event::ChunkResumed { pending } => add(Counter::RetriedLogs, pending),
            Event::Sent(Step::Request {
                status,
                json_bytes,
                wire_bytes,
                duration,
            }) => {
                add(Counter::Requests, 1);
                add(Counter::BytesJson, json_bytes);
                add(Counter::BytesWire, wire_bytes);
                add(
                    Counter::RequestMicros,
                    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
                );
                self.counters.add_status(status);
                self.metrics().request(status, duration);
                if let Some(f) = flush {
                    f.add_status(status);
                }
            }
            Event::SiteInUse { site } => self.metrics().site(site),
            Event::Sent(Step::Accepted { n }) => add(Counter::ObjectsSent, n),
            Event::Sent(Step::ZstdRefused { status, body }) => {
                let answer = if body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status} {body}")
                };
                log::write(
                    Level::Warn,
                    name,
                    &format!(
                        "zstd was refused ({answer}): switching to gzip (level {DEFAULT_GZIP_LEVEL}) for this instance"
                    ),
                );
            }
            Event::Sent(Step::Dropped { status, bytes }) => {
                let (counter, why) = match status {
                    413 => (Counter::Dropped413, "too large for the intake (413)"),
                    422 => (Counter::Dropped400, "refused as unprocessable (422)"),
                    _ => (Counter::Dropped400, "refused as invalid (400)"),
                };
                add(counter, 1);
                limited(Level::Error, Key::with_status("drop", status), &|| {
                    format!(
                        "dropped one log of {bytes} bytes: {why} even when sent alone; the rest of its request was delivered"
                    )
                });
            }
            Event::ChunkRejected {
                refusal,
                host,
                site,
                pending,
                dropped,
                elsewhere,
            } => {
                if dropped {
                    add(Counter::DroppedRejected, pending);
                }
                let status = refusal.status;
                limited(Level::Error, Key::with_status("reject", status), &|| {
                    rejection_line(refusal, host, site, pending, elsewhere)
                });
            }
            Event::ChunkRetried {
                pending,
                objects,
                host,
                failure,
            } => {
                let key = Key::with_status("retry", failure.and_then(|f| f.status).unwrap_or(0));
                limited(Level::Warn, key, &|| {
                    format!(
                        "{pending} of {objects} log(s) not delivered to {host} ({}); the chunk will be retried and only those will be sent",
                        failure.map_or("transient failure", |f| f.reason.as_str())
                    )
                });
            }
            Event::FlushDone {
                tag,
                objects,
                batches,
                resumed,
                elapsed,
                verdict,
            } => {
                if log::enabled(Level::Debug) {
                    let c = flush.unwrap_or(&self.counters);
                    log::write(
                        Level::Debug,
                        name,
                        &format!(
                            "flush tag='{tag}': {} records, {objects} objects in {batches} batch(es){}, {} accepted, {} requests, {} B json, {} B sent, {} ms -> {}",
                            c.get(Counter::RecordsIn),
                            if resumed { " (resumed retry)" } else { "" },
                            c.get(Counter::ObjectsSent),
                            c.get(Counter::Requests),
                            c.get(Counter::BytesJson),
                            c.get(Counter::BytesWire),
                            elapsed.as_millis(),
                            verdict.label()
                        ),
                    );
                }
            }
            Event::Answered { verdict } => {
                // A flush refused at shutdown comes after the summary line: not counted.
                if matches!(verdict, Verdict::Retry(r) if *r != RetryReason::Closing) {
                    add(Counter::Retries, 1);
                }
            }
            Event::SiteFound { site, url } => log::write(
                Level::Info,
                name,
                &format!(
                    "site auto-detection: the API key belongs to {site}; sending to {url} (set `site` to skip this probe)"
                ),
            ),
            Event::NoSiteAccepts { asked, backoff_max } => log::write(
                Level::Error,
                name,
                &format!(
                    "site auto-detection: no Datadog site accepts the API key (asked {}); chunks are retried meanwhile and the sites are asked again with backoff (up to every {}s). Check the key, or set `site` to your account's site (e.g. `site ap1`) and `apikey` to a key from it",
                    asked.join(", "),
                    backoff_max.as_secs()
                ),
            ),
            Event::SiteUnknown { why, backoff_max } => log::write(
                Level::Warn,
                name,
                &format!(
                    "site auto-detection: no site accepted the API key yet and some could not be asked ({why}); asking again with backoff (up to every {}s), flushes wait for the answer. Set `site` to skip the probe",
                    backoff_max.as_secs()
                ),
            ),
            Event::ProbeThreadFailed { error } => log::write(
                Level::Error,
                name,
                &format!("cannot start the site probe thread: {error}"),
            ),
            Event::SiteStillUnknown { waited } => limited(Level::Warn, "pending".into(), &|| {
                format!(
                    "the key's site is still unknown after waiting {}s for site auto-detection; the chunk will be retried (set `site` to skip the probe)",
                    waited.as_secs_f32()
                )
            }),
            Event::KeyOnNoSite => limited(Level::Error, "failed".into(), &|| {
                "no Datadog site accepts the API key: the chunk will be retried while the sites are asked again. Check `apikey` and set `site` to your account's site".to_string()
            }),
            Event::Started {
                version,
                destination,
                compress,
                roots,
            } => log::write(
                Level::Info,
                name,
                &format!(
                    "datadog_logs {version} sending to {destination}, compress={compress}, TLS roots: {roots}"
                ),
            ),
            Event::ConfigWarning { line } => log::write(Level::Warn, name, line),
            Event::OnEngineThread => log::write(
                Level::Warn,
                name,
                "flushes run on Fluent Bit's engine thread, so each request blocks every input and output; set `Workers 1` (or more) on this [OUTPUT], unless the host hot-reloads: Fluent Bit 2.2 to 5.1.1 crash on a reload of a proxy output with `Workers` (README, Reload)",
            ),
            Event::ResumeFileOpened {
                path,
                chunks,
                ignored,
            } => match ignored {
                None if chunks == 0 => log::write(
                    Level::Info,
                    name,
                    &format!(
                        "resume_file {}: no chunk waiting for a retry from before this start",
                        path.display()
                    ),
                ),
                None => log::write(
                    Level::Info,
                    name,
                    &format!(
                        "resume_file {}: {chunks} chunk(s) handed back for a retry before this start (a restart or a reload) are remembered; their accepted logs are not sent again",
                        path.display()
                    ),
                ),
                Some(why) => log::write(
                    Level::Warn,
                    name,
                    &format!(
                        "resume_file {}: its contents are set aside ({why}); chunks retried after the restart are sent whole",
                        path.display()
                    ),
                ),
            },
            Event::ResumeFileInUse { path } => log::write(
                Level::Warn,
                name,
                &format!(
                    "resume_file {} is already used by another [OUTPUT] of this process: this one keeps its memory of retried chunks in the process only; give each [OUTPUT] its own file",
                    path.display()
                ),
            ),
            Event::ResumeFileFailed { error } => {
                limited(Level::Warn, "resume_file".into(), &|| {
                    format!(
                        "cannot write resume_file {error}; a restart after a kill will send the accepted logs of the chunks now waiting for a retry again"
                    )
                });
            }
            Event::FlushPanicked => log::write(
                Level::Error,
                name,
                "internal error while flushing (panic caught); the chunk will be retried",
            ),
            Event::FlushThreadFailed { error } => {
                limited(Level::Error, "spawn".into(), &|| {
                    format!("cannot start a flush thread ({error}); the chunk will be retried")
                });
            }
            Event::Exited { abandoned } => {
                let snap = self.counters.snapshot();
                log::write(
                    Level::Info,
                    name,
                    &format!(
                        "exit: {snap}{}",
                        if abandoned > 0 {
                            format!(", {abandoned} flush(es) still running at exit")
                        } else {
                            String::new()
                        }
                    ),
                );
                let held = self.limiter.held_back();
                if !held.is_empty() {
                    let list: Vec<String> = held
                        .iter()
                        .map(|(k, n)| match k.status {
                            0 => format!("{} x{n}", k.kind),
                            s => format!("{} (HTTP {s}) x{n}", k.kind),
                        })
                        .collect();
                    log::write(
                        Level::Info,
                        name,
                        &format!(
                            "lines held back by the once-per-interval limit since their last report (counted above): {}",
                            list.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// The line of a refused chunk, with the hint its status calls for.
fn rejection_line(
    refusal: &Refusal,
    host: &str,
    site: &str,
    pending: u64,
    elsewhere: &KeyElsewhere,
) -> String {
    let Refusal {
        status,
        body,
        detail,
    } = refusal;
    let response = if body.is_empty() { "(empty)" } else { body };
    let mut line = match detail {
        Detail::EveryPart { singles } => format!(
            "HTTP {status} from {host} for every part of the payload, down to {singles} single logs with none accepted: the intake (or a relay) refuses the whole payload, not one log, so {pending} log(s) are not delivered and the chunk is reported as failed; response: {response}"
        ),
        Detail::SplitBudget { requests } => format!(
            "HTTP {status} from {host}: still refused after {requests} requests splitting the payload to isolate the logs it refuses, so {pending} log(s) are not delivered and the chunk is reported as failed; response: {response}"
        ),
        _ => format!("HTTP {status} from {host}: {pending} log(s) dropped; response: {response}"),
    };
    if let Detail::Redirect(location) = detail {
        line.push_str(&format!(
            ". The endpoint redirects to {}: the plugin follows no redirect (it would carry the API key elsewhere), so set `endpoint` to where it points",
            location.as_deref().unwrap_or("(no Location header)")
        ));
    } else if *status == 403 {
        line.push_str(&format!(
            ". The API key was rejected by {site}: a key from another Datadog site is the usual cause, so check `site`"
        ));
        match elsewhere {
            KeyElsewhere::NotAsked => {}
            KeyElsewhere::ValidOn(other) => line.push_str(&format!(
                "; the key is valid on {other}: {}",
                site_advice(other)
            )),
            KeyElsewhere::Nowhere => {
                line.push_str("; the key is valid on no other commercial Datadog site either")
            }
        }
    } else if *status == 401 {
        line.push_str(". The request had no valid API key: check `apikey`");
    }
    line
}

/// What the host boundary meets outside an instance's work (loading, Init before the
/// instance exists, calls for an unknown instance, panics): each writes one line.
#[derive(Clone, Debug)]
pub(crate) enum HostEvent<'a> {
    /// A panic was caught at the boundary of `what`; Fluent Bit gets `code`.
    PanicCaught {
        /// The exported function.
        what: &'a str,
        /// The return code given instead.
        code: i32,
    },
    /// A panic's message and place (the panic hook; the key is redacted by the writer).
    PanicMessage {
        /// The message.
        message: &'a str,
        /// ` at file:line`, or empty.
        at: &'a str,
    },
    /// Init was called without a plugin struct.
    NoPluginStruct,
    /// Init was called without a property getter or context.
    NoPropertyGetter,
    /// A bad option: its error names the option, the value and what is accepted.
    BadOption {
        /// The error's text.
        error: &'a str,
    },
    /// The instance could not be made.
    CannotStart {
        /// Why.
        error: &'a str,
    },
    /// A flush for an instance this plugin does not know (or that exited).
    UnknownFlush,
    /// An exit for a context this plugin never issued.
    UnknownExit,
    /// The host has no metrics API (Fluent Bit 1.9, or symbols missing).
    NoMetrics {
        /// Why.
        why: &'a str,
    },
}

/// Writes the line of `event`, as instance `name` (`datadog_logs` when there is none yet).
pub(crate) fn host_event(name: &str, event: HostEvent) {
    let (level, line) = match event {
        HostEvent::PanicCaught { what, code } => (
            Level::Error,
            format!("internal error in {what} (panic caught); returning {code} to Fluent Bit"),
        ),
        HostEvent::PanicMessage { message, at } => (Level::Error, format!("panic: {message}{at}")),
        HostEvent::NoPluginStruct => (
            Level::Error,
            "FLBPluginInit called without a plugin struct".to_string(),
        ),
        HostEvent::NoPropertyGetter => (
            Level::Error,
            "the host passed no property getter or context; cannot start".to_string(),
        ),
        HostEvent::BadOption { error } => (Level::Error, error.to_string()),
        HostEvent::CannotStart { error } => (Level::Error, format!("cannot start: {error}")),
        HostEvent::UnknownFlush => (
            Level::Error,
            "flush for an unknown or closed instance; the chunk will be retried".to_string(),
        ),
        HostEvent::UnknownExit => (
            Level::Warn,
            "exit for a context this plugin never issued; no instance was stopped".to_string(),
        ),
        HostEvent::NoMetrics { why } => (
            Level::Info,
            format!("metrics are not available on this host ({why}); logs are delivered as usual"),
        ),
    };
    log::write(level, name, &line);
}

/// The advice for a site name: its short name when it is a Datadog site.
fn site_advice(name: &str) -> String {
    match Site::parse(name) {
        Some(s) => format!("set `site {}`", s.short),
        None => format!("set `site {name}`"),
    }
}

/// The events of one flush: counted in the instance's counters and in the flush's own.
#[derive(Debug)]
pub(crate) struct FlushEvents<'a> {
    events: &'a Events,
    counters: Counters,
}

impl FlushEvents<'_> {
    /// Records an event of this flush.
    pub(crate) fn emit(&self, event: Event) {
        self.events.record(Some(&self.counters), event);
    }

    #[cfg(test)]
    /// This flush's counters so far.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests;
