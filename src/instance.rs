//! One plugin instance, and the thread that does a flush's work off Fluent Bit's coroutine
//! stack.
//!
//! Fluent Bit calls FlushCtx on a 24 KiB coroutine stack with no guard page, and with
//! `Workers N` from N threads at once. [`Instance::flush`] therefore does almost nothing on
//! the caller's stack: it starts a scoped thread with a normal stack, which borrows the chunk
//! (no copy), runs decode -> map -> batch -> send, and hands back the [`Verdict`] (which
//! only [`crate::host`] turns into Fluent Bit's return code).
//!
//! After the verdict, the instance does what it calls for: it remembers a chunk handed back
//! for its retry, asks auto-detection where a key refused with 403 is valid, and emits
//! the events that write the lines.

use crate::config::options::{Config, Destination, OptionError, option};
use crate::deliver::client::{self, Client};
use crate::deliver::resume::{ChunkKey, Memory};
use crate::deliver::resume_file::{Opened, ResumeFile};
use crate::deliver::split::{self, Route};
use crate::deliver::verdict::{self, Delivery, ErrorReason, FlushReport, RetryReason, Verdict};
use crate::detect::{Resolver, SiteState};
use crate::encode::batch::{self, Batch, BuildStats};
use crate::encode::body::Encoder;
use crate::encode::map::{Mapper, Scratch};
use crate::observe::events::{ERROR_INTERVAL, Event, Events, FlushEvents, KeyElsewhere};
use crate::observe::log;
use crate::observe::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Stack size of the flush thread.
const FLUSH_STACK: usize = 2 << 20;

/// Most bytes of mapping scratch space a flush keeps for the next one: buffers grown past it
/// by a huge record (one of 2 MB with 350,000 keys grows them to tens of MB) are let go
/// after the flush. Well above what ordinary records need, so a steady flow keeps its
/// buffers (and their plan).
pub(crate) const SCRATCH_KEEP: usize = 4 << 20;

/// The longest exit waits for requests already on the wire: Fluent Bit's default `Grace`
/// (5 s), so the plugin's exit fits in the time the host gives its outputs to finish.
pub(crate) const EXIT_WAIT_MAX: Duration = Duration::from_secs(5);

/// Buffers one flush thread works with, kept between flushes so a steady flow allocates
/// nothing new: the mapper's scratch space and emptied JSON payload buffers.
#[derive(Debug, Default)]
struct Buffers {
    scratch: Scratch,
    spare: Vec<Vec<u8>>,
}

/// Everything one `[OUTPUT]` section owns.
pub(crate) struct Instance {
    name: Arc<str>,
    config: Config,
    mapper: Mapper,
    client: Arc<Client>,
    encoder: Encoder,
    resolver: Arc<Resolver>,
    events: Arc<Events>,
    memory: Memory,
    buffers: Mutex<Vec<Buffers>>,
    init_thread: ThreadId,
    warned_no_workers: AtomicBool,
    in_flight: Mutex<usize>,
    idle: Condvar,
    /// Set when exit begins: no flush starts after it.
    closed: AtomicBool,
    /// Set once the exit summary was written.
    exited: AtomicBool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// Creates the instance: HTTP client, mapping, and (when no site is given) the background
    /// site probe. Called on the thread that runs Init.
    pub(crate) fn new(config: Config, name: &str) -> Result<Instance, String> {
        log::add_secret(config.api_key.expose());
        let (client, roots) = Client::new(&config)?;
        let client = Arc::new(client);
        let resolver = Arc::new(Resolver::new(&config));
        let name: Arc<str> = Arc::from(name);
        let events = Arc::new(Events::new(name.clone(), ERROR_INTERVAL));
        let (memory, opened) = match &config.resume_file {
            None => (Memory::default(), None),
            Some(path) => match ResumeFile::open(path).map_err(|e| {
                let accepted = option("resume_file").map_or("", |o| o.accepted);
                OptionError {
                    option: "resume_file".into(),
                    value: format!("'{}'", path.display()),
                    accepted: format!("{accepted}: {e}"),
                }
                .to_string()
            })? {
                Opened::File(file, saved, ignored) => {
                    (Memory::with_file(file, saved), Some((path, Ok(ignored))))
                }
                Opened::InUse => (Memory::default(), Some((path, Err(())))),
            },
        };
        let destination = match resolver.state() {
            SiteState::Ready { url, .. } => url,
            _ => "the site that accepts the key (auto-detection)".to_string(),
        };
        events.emit(Event::Started {
            version: client::VERSION,
            destination: &destination,
            compress: &format!("{:?}", config.compression),
            roots,
        });
        match opened {
            Some((path, Ok(ignored))) => events.emit(Event::ResumeFileOpened {
                path,
                chunks: memory.len(),
                ignored: ignored.as_deref(),
            }),
            Some((path, Err(()))) => events.emit(Event::ResumeFileInUse { path }),
            None => {}
        }
        for line in config.warnings() {
            events.emit(Event::ConfigWarning { line: &line });
        }
        resolver.start(client.clone(), events.clone());
        Ok(Instance {
            mapper: Mapper::new(&config),
            name,
            client,
            encoder: Encoder::new(config.compression, config.max_concurrency),
            resolver,
            events,
            memory,
            buffers: Mutex::new(Vec::new()),
            init_thread: std::thread::current().id(),
            warned_no_workers: AtomicBool::new(false),
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
            closed: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            config,
        })
    }

    /// Gives the instance the host's metrics, showing the site at once when it is known.
    /// Its events feed them ([`crate::observe::events`] is the only place that counts).
    pub(crate) fn with_metrics(self, metrics: Metrics) -> Instance {
        self.events.set_metrics(metrics);
        if let SiteState::Ready { site, .. } = self.resolver.state() {
            self.events.emit(Event::SiteInUse { site: &site });
        }
        self
    }

    /// The host's metrics of this instance.
    pub(crate) fn metrics(&self) -> &Metrics {
        self.events.metrics()
    }

    /// The instance's name in log lines (`datadog_logs.0`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Delivers one chunk and returns the verdict. Safe to call from several threads at once;
    /// the work runs on a separate thread with a normal stack.
    pub(crate) fn flush(&self, data: &[u8], tag: &str) -> Verdict {
        let verdict = self.flush_on_thread(data, tag);
        self.events.emit(Event::Answered { verdict: &verdict });
        verdict
    }

    fn flush_on_thread(&self, data: &[u8], tag: &str) -> Verdict {
        if std::thread::current().id() == self.init_thread
            && !self.warned_no_workers.swap(true, Ordering::Relaxed)
        {
            self.events.emit(Event::OnEngineThread);
        }
        {
            // Counted under the same lock `shutdown` waits on, so a flush is either seen by
            // shutdown or refused, never run behind its back.
            let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(Ordering::Acquire) {
                return Verdict::Retry(RetryReason::Closing);
            }
            *n += 1;
        }
        let verdict = std::thread::scope(|s| {
            let spawned = std::thread::Builder::new()
                .name("dd-flush".into())
                .stack_size(FLUSH_STACK)
                .spawn_scoped(s, || self.process(data, tag));
            match spawned {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    self.events.emit(Event::FlushPanicked);
                    Verdict::Retry(RetryReason::Internal)
                }),
                Err(e) => {
                    self.events.emit(Event::FlushThreadFailed {
                        error: &e.to_string(),
                    });
                    Verdict::Retry(RetryReason::Internal)
                }
            }
        });
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            self.idle.notify_all();
        }
        verdict
    }

    /// The whole path of one chunk, on the flush thread: site -> encode -> resume -> deliver
    /// -> verdict -> events.
    fn process(&self, data: &[u8], tag: &str) -> Verdict {
        let started = Instant::now();
        #[cfg(feature = "test-hooks")]
        crate::fault::before_flush(self.config.api_key.expose());
        let key = ChunkKey::new(tag, data);
        let (url, site) = match self.site() {
            Ok(ready) => ready,
            Err(unsent) => return verdict::verdict(&unsent),
        };
        self.events.emit(Event::SiteInUse { site: &site });

        let mut bufs = self
            .buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        // Each batch is encoded as soon as it is full, so the flush holds one batch's JSON at
        // a time (see `batch`); except in a retried chunk whose accepted objects are
        // remembered: only what is pending goes out, encoded by the requests that send it.
        let retried = self.memory.contains(&key);
        let encoder = (!retried).then_some(&self.encoder);
        #[cfg(not(feature = "library-path"))]
        let (mut batches, built) = batch::build_encoded(
            data,
            tag,
            &self.mapper,
            &mut bufs.scratch,
            &mut bufs.spare,
            encoder,
        );
        // Measurement only (feature `library-path`, see Cargo.toml): the library path.
        #[cfg(feature = "library-path")]
        let (mut batches, built) = crate::library_path::build_in_plugin(
            &self.config,
            &self.mapper,
            data,
            tag,
            &mut bufs.spare,
            encoder,
        );
        let events = self.events.flush();
        report_built(&events, &built, tag);
        let verdict = self.deliver(&key, &url, &site, &batches, &events, started);
        for b in &mut batches {
            if let Some(e) = b.encoded.take() {
                self.encoder.recycle(e);
            }
        }
        batch::recycle(batches, &mut bufs.spare);
        bufs.scratch.shrink_to(SCRATCH_KEEP);
        self.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(bufs);
        verdict
    }

    /// The intake URL and the site's name; while auto-detection has no answer, the flush
    /// waits for it here, on its own thread, for at most `timeout` (the bound of one request;
    /// exit ends the wait at once): a RETRY would spend Fluent Bit's `Retry_Limit` budget (1
    /// by default) on waiting. Still unknown after that bound (no site's API nor intake
    /// answered), or a key that no site accepts (probed again with backoff): the report of
    /// an unsent chunk (RETRY), so a transient answer costs a retry rather than the chunk.
    fn site(&self) -> Result<(String, String), FlushReport> {
        if let SiteState::Ready { url, site } = self.resolver.state() {
            return Ok((url, site));
        }
        self.resolver
            .start(self.client.clone(), self.events.clone());
        match self.resolver.wait_state(self.config.timeout) {
            SiteState::Ready { url, site } => Ok((url, site)),
            SiteState::Pending => {
                self.events.emit(Event::SiteStillUnknown {
                    waited: self.config.timeout,
                });
                Err(FlushReport::SitePending)
            }
            SiteState::Failed => {
                self.events.emit(Event::KeyOnNoSite);
                Err(FlushReport::SiteRefused)
            }
        }
    }

    /// Sends the chunk's pending objects (all, or what its remembered flags leave), decides
    /// the verdict and acts on it: remembers the flags of a chunk handed back, explains a
    /// refusal, and emits the chunk's events.
    fn deliver(
        &self,
        key: &ChunkKey<'_>,
        url: &str,
        site: &str,
        batches: &[Batch],
        events: &FlushEvents,
        started: Instant,
    ) -> Verdict {
        let objects: usize = batches.iter().map(Batch::len).sum();
        if objects == 0 {
            return Verdict::Ok;
        }
        let remembered = self.memory.take(key, objects);
        let resumed = remembered.is_some();
        let mut done = remembered.unwrap_or_else(|| vec![false; objects]);
        if resumed {
            events.emit(Event::ChunkResumed {
                pending: done.iter().filter(|d| !**d).count() as u64,
            });
        }
        let delivery = self.send(key, url, batches, &mut done, events);
        let verdict = verdict::verdict(&FlushReport::Sent {
            objects: objects as u64,
            delivery,
        });
        // Every chunk handed back is remembered (not only a partly delivered one), so its
        // retry counts as retried logs and sends only what is still pending.
        let kept = if let Verdict::Retry(RetryReason::Undelivered { .. }) = &verdict {
            self.memory.put(key, done)
        } else if resumed {
            self.memory.done(key)
        } else {
            Ok(())
        };
        if let Err(error) = kept {
            events.emit(Event::ResumeFileFailed { error: &error });
        }
        self.report_verdict(&verdict, objects as u64, url, site, events);
        events.emit(Event::FlushDone {
            tag: key.tag(),
            objects: objects as u64,
            batches: batches.len(),
            resumed,
            elapsed: started.elapsed(),
            verdict: &verdict,
        });
        verdict
    }

    /// Sends along this instance's route. A panic while sending (the flush thread's own
    /// requests) must not lose what was accepted before it: the flags are remembered, then
    /// the panic goes on to the join that turns it into a RETRY.
    fn send(
        &self,
        key: &ChunkKey<'_>,
        url: &str,
        batches: &[Batch],
        done: &mut Vec<bool>,
        events: &FlushEvents,
    ) -> Delivery {
        let watch = |step: split::Step<'_>| events.emit(Event::Sent(step));
        let route = Route {
            client: &self.client,
            encoder: &self.encoder,
            url,
            concurrency: self.config.max_concurrency,
            watch: &watch,
        };
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            split::deliver(&route, batches, done)
        }));
        match sent {
            Ok(delivery) => delivery,
            Err(panic) => {
                if let Err(error) = self.memory.put(key, std::mem::take(done)) {
                    events.emit(Event::ResumeFileFailed { error: &error });
                }
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// The lines of a chunk refused (with where else the key is valid, for a 403) or retried.
    fn report_verdict(
        &self,
        verdict: &Verdict,
        objects: u64,
        url: &str,
        site: &str,
        events: &FlushEvents,
    ) {
        let host = client::host_of(url);
        if let Some(refusal) = verdict.refusal() {
            let elsewhere = self.explain_refusal(refusal.status, site);
            let (pending, dropped) = match verdict {
                Verdict::Error(ErrorReason::Refused { pending, .. }) => (*pending, true),
                Verdict::Retry(RetryReason::Undelivered { pending, .. }) => (*pending, false),
                _ => (0, false),
            };
            events.emit(Event::ChunkRejected {
                refusal,
                host,
                site,
                pending,
                dropped,
                elsewhere: &elsewhere,
            });
        }
        if let Verdict::Retry(RetryReason::Undelivered {
            pending, failure, ..
        }) = verdict
        {
            events.emit(Event::ChunkRetried {
                pending: *pending,
                objects,
                host,
                failure: failure.as_ref(),
            });
        }
    }

    /// For a 403 from a site the plugin chose or was told (not an explicit `endpoint`), asks
    /// auto-detection where else the key is valid (probed once, then cached). A step of its
    /// own after the verdict, so no log line ever starts a network probe.
    fn explain_refusal(&self, status: u16, site: &str) -> KeyElsewhere {
        let probing = self.config.probe_override.is_some()
            || matches!(
                self.config.destination,
                Destination::Site(_) | Destination::AutoDetect
            );
        if status != 403 || !probing {
            return KeyElsewhere::NotAsked;
        }
        match self.resolver.explain_403(&self.client, site) {
            Some(other) => KeyElsewhere::ValidOn(other),
            None => KeyElsewhere::Nowhere,
        }
    }

    /// Stops the instance's work at once: flushes not yet started are refused (RETRY), flushes
    /// running send no further request (their unsent objects stay pending: RETRY), flushes
    /// waiting for the site stop waiting, and no probe starts. Idempotent; [`Instance::shutdown`]
    /// then waits for what is on the wire.
    pub(crate) fn begin_shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.client.close();
        self.resolver.stop();
    }

    /// Begins the shutdown, waits up to `wait` for flushes in flight (only requests already
    /// on the wire are left to finish), joins the probe thread, and writes the summary line.
    /// Idempotent.
    pub(crate) fn shutdown(&self, wait: Duration) {
        if self.exited.swap(true, Ordering::AcqRel) {
            return;
        }
        self.begin_shutdown();
        let deadline = Instant::now() + wait;
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            n = self
                .idle
                .wait_timeout(n, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let abandoned = *n;
        drop(n);
        self.resolver.join();
        self.events.emit(Event::Exited { abandoned });
    }

    /// How long exit waits for requests already on the wire: the request timeout, at most
    /// [`EXIT_WAIT_MAX`] (Fluent Bit's default `Grace`). Nothing new is sent once exit began,
    /// so one request's time is all there is to wait for, however many batches a flush had.
    pub(crate) fn exit_wait(&self) -> Duration {
        self.config.timeout.min(EXIT_WAIT_MAX)
    }
}

/// What building the chunk's batches found, as the flush's events.
fn report_built(events: &FlushEvents, built: &BuildStats, tag: &str) {
    events.emit(Event::RecordsDecoded { n: built.records });
    if let Some((offset, reason)) = built.first_malformed {
        events.emit(Event::MalformedSkipped {
            n: built.malformed,
            tag,
            offset,
            reason,
        });
    }
    events.emit(Event::RecordsTruncated { n: built.truncated });
    events.emit(Event::PartialRecords {
        n: built.partial,
        tag,
    });
    events.emit(Event::RecordsTooLarge { n: built.too_large });
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::msgpack::{Mp, enc_into};

    /// After a flush of one record with 350,000 keys, the flush thread's buffers kept for the
    /// next flush are back under [`SCRATCH_KEEP`].
    #[test]
    fn a_huge_record_leaves_no_large_buffers_behind() {
        let cfg = Config::from_lookup(
            |k| match k {
                "apikey" => Some("0123456789abcdef0123456789abcdef".into()),
                // Nothing listens there: the flush is refused fast, after mapping.
                "endpoint" => Some("http://127.0.0.1:9".into()),
                "timeout" => Some("2s".into()),
                _ => None,
            },
            |_| None,
        )
        .unwrap();
        let inst = Instance::new(cfg, "datadog_logs.test").unwrap();
        let body = Mp::Map(
            (0..350_000u64)
                .map(|i| (Mp::Str(format!("k{i}").into_bytes()), Mp::UInt(i)))
                .collect(),
        );
        let mut chunk = Vec::new();
        enc_into(&Mp::Arr(vec![Mp::UInt(1), body]), &mut chunk);
        inst.flush(&chunk, "t");
        let kept: Vec<usize> = inst
            .buffers
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.scratch.capacity_bytes())
            .collect();
        assert_eq!(kept.len(), 1);
        assert!(kept[0] <= SCRATCH_KEEP, "{kept:?}");
        inst.shutdown(Duration::ZERO);
    }
}
