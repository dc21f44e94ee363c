//! One plugin instance, and the thread that does a flush's work off Fluent Bit's coroutine
//! stack.
//!
//! Fluent Bit calls FlushCtx on a 24 KiB coroutine stack with no guard page, and with
//! `Workers N` from N threads at once. [`Instance::flush`] therefore does almost nothing on
//! the caller's stack: it starts a scoped thread with a normal stack, which borrows the chunk
//! (no copy), runs decode -> map -> batch -> send, and hands back the verdict
//! ([`FLB_OK`], [`FLB_RETRY`] or [`FLB_ERROR`]).

use crate::batch;
use crate::detect::{self, Resolver, Target};
use crate::flush::{self, Memory, Report};
use crate::log::{self, Level, RateLimiter};
use crate::map::{Mapper, Scratch};
use crate::options::Config;
use crate::send::{self, Client};
use crate::stats::{self, Stats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Fluent Bit's return code: the chunk is dropped.
pub const FLB_ERROR: i32 = crate::bindings::FLB_ERROR;
/// Fluent Bit's return code: the chunk was delivered.
pub const FLB_OK: i32 = crate::bindings::FLB_OK;
/// Fluent Bit's return code: the chunk is retried later.
pub const FLB_RETRY: i32 = crate::bindings::FLB_RETRY;

/// Environment variable of the test hook that makes flushes panic.
pub const FAULT_ENV: &str = "FLUENT_BIT_DATADOG_FAULT";

/// Stack size of the flush thread.
const FLUSH_STACK: usize = 2 << 20;
/// How often the same failure may be logged.
const ERROR_INTERVAL: Duration = Duration::from_secs(60);

/// Buffers one flush thread works with, kept between flushes so a steady flow allocates
/// nothing new: the mapper's scratch space and emptied JSON payload buffers.
#[derive(Debug, Default)]
struct Buffers {
    scratch: Scratch,
    spare: Vec<Vec<u8>>,
}

/// Everything one `[OUTPUT]` section owns.
pub struct Instance {
    name: Arc<str>,
    config: Config,
    mapper: Mapper,
    client: Arc<Client>,
    resolver: Arc<Resolver>,
    stats: Stats,
    memory: Memory,
    limiter: RateLimiter,
    buffers: Mutex<Vec<Buffers>>,
    init_thread: ThreadId,
    warned_no_workers: AtomicBool,
    in_flight: Mutex<usize>,
    /// Test hook: `FLUENT_BIT_DATADOG_FAULT=panic` makes every flush panic (with the key in
    /// the message) so tests can check the boundary catches it and redacts the key.
    fault_panic: bool,
    idle: Condvar,
    closed: AtomicBool,
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
    pub fn new(config: Config, name: &str) -> Result<Instance, String> {
        log::add_secret(&config.api_key);
        let (client, roots) = Client::new(&config)?;
        let client = Arc::new(client);
        let resolver = Arc::new(Resolver::new(&config));
        let name: Arc<str> = Arc::from(name);
        let inst = Instance {
            mapper: Mapper::new(&config),
            name: name.clone(),
            client: client.clone(),
            resolver: resolver.clone(),
            stats: Stats::default(),
            memory: Memory::default(),
            limiter: RateLimiter::new(ERROR_INTERVAL),
            buffers: Mutex::new(Vec::new()),
            init_thread: std::thread::current().id(),
            warned_no_workers: AtomicBool::new(false),
            in_flight: Mutex::new(0),
            fault_panic: std::env::var(FAULT_ENV).is_ok_and(|v| v == "panic"),
            idle: Condvar::new(),
            closed: AtomicBool::new(false),
            config,
        };
        let dest = match resolver.target() {
            Target::Ready { url, .. } => url,
            _ => "the site that accepts the key (auto-detection)".to_string(),
        };
        log::write(
            Level::Info,
            &name,
            &format!(
                "datadog_logs {} sending to {dest}, compress={:?}, TLS roots: {roots}",
                send::VERSION,
                inst.config.compression
            ),
        );
        if !inst.config.tls_verify {
            let line = "tls_verify is off: the intake's certificate is not checked";
            log::write(Level::Warn, &name, line);
        }
        resolver.start(client, name);
        Ok(inst)
    }

    /// The instance's name in log lines (`datadog_logs.0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Delivers one chunk and returns Fluent Bit's verdict. Safe to call from several threads
    /// at once; the work runs on a separate thread with a normal stack.
    pub fn flush(&self, data: &[u8], tag: &str) -> i32 {
        if std::thread::current().id() == self.init_thread
            && !self.warned_no_workers.swap(true, Ordering::Relaxed)
        {
            log::write(
                Level::Warn,
                &self.name,
                "flushes run on Fluent Bit's engine thread, so each request blocks every input and output; set `Workers 1` (or more) on this [OUTPUT]",
            );
        }
        {
            // Counted under the same lock `shutdown` waits on, so a flush is either seen by
            // shutdown or refused, never run behind its back.
            let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(Ordering::Acquire) {
                return FLB_RETRY;
            }
            *n += 1;
        }
        let code = std::thread::scope(|s| {
            let spawned = std::thread::Builder::new()
                .name("dd-flush".into())
                .stack_size(FLUSH_STACK)
                .spawn_scoped(s, || self.process(data, tag));
            match spawned {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    log::write(
                        Level::Error,
                        &self.name,
                        "internal error while flushing (panic caught); the chunk will be retried",
                    );
                    FLB_RETRY
                }),
                Err(e) => {
                    self.limiter.write(
                        Level::Error,
                        &self.name,
                        "spawn",
                        &format!("cannot start a flush thread ({e}); the chunk will be retried"),
                    );
                    FLB_RETRY
                }
            }
        });
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            self.idle.notify_all();
        }
        if code == FLB_RETRY {
            stats::add(&self.stats.retries, 1);
        }
        code
    }

    /// The whole path of one chunk, on the flush thread.
    fn process(&self, data: &[u8], tag: &str) -> i32 {
        let started = Instant::now();
        if self.fault_panic {
            panic!("injected fault for key {}", self.config.api_key);
        }
        let (url, site) = match self.resolver.target() {
            Target::Ready { url, site } => (url, site),
            _ => match self.wait_for_site() {
                Ok(ready) => ready,
                Err(code) => return code,
            },
        };

        let mut bufs = self
            .buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let (batches, built) =
            batch::build(data, tag, &self.mapper, &mut bufs.scratch, &mut bufs.spare);
        let code = self.deliver(data, tag, &url, &site, &batches, &built, started);
        batch::recycle(batches, &mut bufs.spare);
        self.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(bufs);
        code
    }

    /// While auto-detection has no answer, the flush waits for it here, on its own thread,
    /// for at most `timeout` (the bound of one request, which the exit wait already allows
    /// for): a RETRY would spend Fluent Bit's `Retry_Limit` budget (1 by default) on waiting.
    /// Still unknown after that bound (no site's API nor intake answered), or a key that no
    /// site accepts (probed again with backoff): RETRY, so a transient answer costs a retry
    /// rather than the chunk.
    fn wait_for_site(&self) -> Result<(String, String), i32> {
        self.resolver.start(self.client.clone(), self.name.clone());
        match self.resolver.wait_target(self.config.timeout) {
            Target::Ready { url, site } => Ok((url, site)),
            Target::Pending => {
                self.limiter.write(
                    Level::Warn,
                    &self.name,
                    "pending",
                    &format!(
                        "the key's site is still unknown after waiting {}s for site auto-detection; the chunk will be retried (set `site` to skip the probe)",
                        self.config.timeout.as_secs_f32()
                    ),
                );
                Err(FLB_RETRY)
            }
            Target::Failed => {
                self.limiter.write(
                    Level::Error,
                    &self.name,
                    "failed",
                    "no Datadog site accepts the API key: the chunk will be retried while the sites are asked again. Check `apikey` and set `site` to your account's site",
                );
                Err(FLB_RETRY)
            }
        }
    }

    /// Logs what building found, sends the batches and decides the verdict.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        data: &[u8],
        tag: &str,
        url: &str,
        site: &str,
        batches: &[batch::Batch],
        built: &batch::BuildStats,
        started: Instant,
    ) -> i32 {
        stats::add(&self.stats.records_in, built.records);
        stats::add(&self.stats.dropped_malformed, built.malformed);
        stats::add(&self.stats.dropped_too_large, built.too_large);
        stats::add(&self.stats.truncated, built.truncated);
        if let Some((offset, reason)) = built.first_malformed {
            self.limiter.write(
                Level::Warn,
                &self.name,
                "malformed",
                &format!(
                    "skipped {} malformed record(s) in a chunk of tag '{tag}' (first at byte {offset}: {reason}); the chunk's other records are delivered",
                    built.malformed
                ),
            );
        }
        if built.truncated > 0 {
            self.limiter.write(
                Level::Warn,
                &self.name,
                "truncated",
                &format!(
                    "truncated {} message(s) over Datadog's 1 MB log limit (they end in {})",
                    built.truncated,
                    crate::map::TRUNCATION_MARKER
                ),
            );
        }
        if built.too_large > 0 {
            self.limiter.write(
                Level::Error,
                &self.name,
                "too_large",
                &format!(
                    "dropped {} record(s) that stay over Datadog's 1 MB log limit even with an empty message",
                    built.too_large
                ),
            );
        }

        let objects: usize = batches.iter().map(|b| b.len()).sum();
        if objects == 0 {
            return FLB_OK;
        }
        let key = (!self.memory.is_empty()).then(|| flush::chunk_key(tag, data));
        let mut done = key
            .and_then(|k| self.memory.take(k, objects))
            .unwrap_or_else(|| vec![false; objects]);
        let resumed = done.iter().any(|d| *d);

        let report = flush::deliver(
            &self.client,
            url,
            batches,
            &mut done,
            self.config.max_concurrency,
        );
        flush::count(&self.stats, &report);
        self.log_drops(&report);

        let code = if report.pending == 0 {
            FLB_OK
        } else if let Some((status, body)) =
            report.rejected.clone().filter(|_| report.retry.is_none())
        {
            stats::add(&self.stats.dropped_rejected, report.pending);
            self.log_rejection(status, &body, url, site, report.pending);
            FLB_ERROR
        } else {
            let key = key.unwrap_or_else(|| flush::chunk_key(tag, data));
            if done.iter().any(|d| *d) {
                self.memory.put(key, done);
            }
            if let Some((status, body)) = &report.rejected {
                self.log_rejection(*status, body, url, site, report.pending);
            }
            self.limiter.write(
                Level::Warn,
                &self.name,
                &format!("retry {}", report.retry.as_deref().unwrap_or("")),
                &format!(
                    "{} of {objects} log(s) not delivered to {} ({}); the chunk will be retried and only those will be sent",
                    report.pending,
                    send::host_of(url),
                    report.retry.as_deref().unwrap_or("transient failure")
                ),
            );
            FLB_RETRY
        };
        if log::enabled(Level::Debug) {
            log::write(
                Level::Debug,
                &self.name,
                &format!(
                    "flush tag='{tag}': {} records, {objects} objects in {} batch(es){}, {} accepted, {} requests, {} B json, {} B sent, {} ms -> {}",
                    built.records,
                    batches.len(),
                    if resumed { " (resumed retry)" } else { "" },
                    report.accepted,
                    report.requests,
                    report.bytes_json,
                    report.bytes_wire,
                    started.elapsed().as_millis(),
                    match code {
                        FLB_OK => "OK",
                        FLB_RETRY => "RETRY",
                        _ => "ERROR",
                    }
                ),
            );
        }
        code
    }

    fn log_drops(&self, report: &Report) {
        for (status, size) in &report.dropped {
            let why = if *status == 413 {
                "too large for the intake (413)"
            } else {
                "refused as invalid (400)"
            };
            self.limiter.write(
                Level::Error,
                &self.name,
                &format!("drop {status}"),
                &format!("dropped one log of {size} bytes: {why} even when sent alone; the rest of its request was delivered"),
            );
        }
    }

    fn log_rejection(&self, status: u16, body: &str, url: &str, site: &str, pending: u64) {
        let host = send::host_of(url);
        let mut line = format!(
            "HTTP {status} from {host}: {pending} log(s) dropped; response: {}",
            if body.is_empty() { "(empty)" } else { body }
        );
        if status == 403 {
            line.push_str(&format!(
                ". The API key was rejected by {site}: a key from another Datadog site is the usual cause, so check `site`"
            ));
            if self.config.probe_override.is_some()
                || matches!(
                    self.config.destination,
                    crate::options::Destination::Site(_) | crate::options::Destination::AutoDetect
                )
            {
                match self.resolver.explain_403(&self.client, site) {
                    Some(other) => line.push_str(&format!(
                        "; the key is valid on {other}: {}",
                        detect::site_advice(&other)
                    )),
                    None => line
                        .push_str("; the key is valid on no other commercial Datadog site either"),
                }
            }
        } else if status == 401 {
            line.push_str(". The request had no valid API key: check `apikey`");
        }
        self.limiter
            .write(Level::Error, &self.name, &format!("reject {status}"), &line);
    }

    /// Stops accepting flushes, waits up to `wait` for flushes in flight, joins the probe
    /// thread, and writes the summary line. Idempotent.
    pub fn shutdown(&self, wait: Duration) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Flushes waiting for the site stop waiting (RETRY) rather than hold up the exit.
        self.resolver.stop();
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
        let snap = self.stats.snapshot();
        log::write(
            Level::Info,
            &self.name,
            &format!(
                "exit: {snap}{}",
                if abandoned > 0 {
                    format!(", {abandoned} flush(es) still running at exit")
                } else {
                    String::new()
                }
            ),
        );
    }

    /// Time to allow flushes in flight at exit: one whole request timeout and a margin.
    pub fn exit_wait(&self) -> Duration {
        self.config.timeout + Duration::from_secs(5)
    }
}
