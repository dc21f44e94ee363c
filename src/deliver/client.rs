//! The HTTP client, the choice of body encoding, and what each intake response means.
//!
//! One ureq agent per instance keeps connections alive across flushes. TLS is rustls, set up by
//! [`crate::deliver::tls`]: the system's CA bundle, plus `tls_ca_file` when given (whose own
//! certificates are also trusted as server certificates), or nothing with `tls_verify off`.
//!
//! What an answer means is decided once, by [`classify`] (its table), and the decisions that
//! follow from it live beside the type: [`Outcome::is_retriable`], [`Outcome::splits_payload`].
//!
//! With `compress zstd`, a 415 for a zstd body, or a 400 for one whose same batch gzipped is
//! accepted, switches the instance to gzip for good (one warning) and the batch is sent again
//! gzipped: a refusal of the encoding never reaches the 400 bisection.

use crate::config::options::{Compression, Config, DEFAULT_GZIP_LEVEL};
use crate::deliver::tls::TlsConnector;
use crate::encode::batch::Payload;
use crate::encode::body::{Codec, Compressors, Encoded};
use crate::observe::log::{self, Level};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

/// How many zstd bodies refused with 400 are sent again gzipped, while no zstd body has been
/// accepted yet, before a 400 is taken to be about the logs alone. Three: a poisoned log in
/// the first batches still lets a later, clean part of the bisection show whether the intake
/// takes zstd, and an intake that refuses everything costs at most three extra requests.
pub const GZIP_CHECKS: u32 = 3;

/// The `User-Agent` and origin version sent with every request.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What one request came to (see [`classify`] for the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the intake took the payload.
    Accepted,
    /// 400, 413 or 422: this payload will never be accepted as it is, but a part of it may be.
    PayloadRefused {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// 3xx, 401, 403, 415: no request will be accepted, whatever it holds.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
        /// The `Location` of a redirect (set by [`Outcome::located`]).
        location: Option<String>,
    },
    /// A failure a later attempt may not meet: 408, 429, 5xx, another 4xx (404, 409, ...),
    /// or the network.
    Transient {
        /// The HTTP status, or `None` for a transport error (connect, timeout, DNS, ...).
        status: Option<u16>,
        /// What failed, for log lines: `HTTP 503`, `timeout (...)`, `connection error: ...`.
        reason: String,
    },
}

impl Outcome {
    #[cfg(test)]
    /// True when the same payload may be accepted later: keep it for Fluent Bit's retry.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Outcome::Transient { .. })
    }

    #[cfg(test)]
    /// True when the payload must be split: its halves may be accepted, and a single object
    /// refused alone is dropped.
    pub fn splits_payload(&self) -> bool {
        matches!(self, Outcome::PayloadRefused { .. })
    }

    /// True for 415: the intake refuses the request's encoding (a compression it does not
    /// take), whatever the payload; sending it another way may be accepted.
    pub fn refuses_encoding(&self) -> bool {
        matches!(self, Outcome::Refused { status: 415, .. })
    }

    /// Adds a redirect's `Location` to a refused 3xx (other outcomes are returned as they are).
    pub fn located(mut self, to: Option<&str>) -> Outcome {
        if let Outcome::Refused {
            status: 300..=399,
            location,
            ..
        } = &mut self
        {
            *location = to.map(|t| t.chars().take(200).collect());
        }
        self
    }
}

/// One request: its outcome, the bytes put on the wire and the round trip's duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    /// What the intake (or the network) answered.
    pub outcome: Outcome,
    /// The HTTP status of the answer, or `None` when there was none (transport error).
    pub status: Option<u16>,
    /// Bytes of the request body on the wire (compressed when compression is on).
    pub wire_bytes: usize,
    /// From sending the request to the end of the response (compression excluded).
    pub duration: Duration,
    /// The zstd request of the same batch that the intake refused for its encoding, when this
    /// answer is the gzipped attempt that followed it.
    pub refused_encoding: Option<Attempt>,
}

impl Posted {
    /// A request that was not sent because its body could not be made (`reason`): a
    /// transient failure, so its objects stay pending and the chunk is retried.
    fn unsent(reason: &str) -> Posted {
        Posted {
            outcome: Outcome::Transient {
                status: None,
                reason: format!("{reason} (not sent)"),
            },
            status: None,
            wire_bytes: 0,
            duration: Duration::ZERO,
            refused_encoding: None,
        }
    }
}

/// A request whose answer was superseded by a second attempt at the same batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status of its answer, or `None` when there was none.
    pub status: Option<u16>,
    /// Bytes of its body on the wire.
    pub wire_bytes: usize,
    /// From sending it to the end of its response.
    pub duration: Duration,
}

impl Posted {
    /// A second attempt at the same batch (the zstd fallback sends it again gzipped): its
    /// answer decides, and this one is kept as [`Posted::refused_encoding`] so that every
    /// request is still counted.
    fn then(self, again: Posted) -> Posted {
        Posted {
            refused_encoding: Some(Attempt {
                status: self.status,
                wire_bytes: self.wire_bytes,
                duration: self.duration,
            }),
            ..again
        }
    }
}

/// The answer of a key-validation probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validation {
    /// 200: the key belongs to this site.
    Valid,
    /// 401/403: the key is unknown here.
    Invalid,
    /// No verdict (timeout, 429, 5xx, network).
    Unknown(String),
}

/// Most idle output buffers kept for the next requests (never more than `max_concurrency`).
pub const SPARE_OUTPUTS: usize = 8;
/// An output buffer larger than this is not kept for the next request.
const KEEP_OUTPUT: usize = 512 * 1024;

/// The instance's HTTP client.
pub struct Client {
    agent: ureq::Agent,
    api_key: String,
    compression: Compression,
    compressors: Compressors,
    /// Set once the intake refused zstd: every later request is gzipped.
    zstd_refused: AtomicBool,
    /// Set once the intake accepted a zstd body: a later 400 for one is about its logs, not
    /// its encoding, and goes straight to the bisection.
    zstd_accepted: AtomicBool,
    /// zstd bodies refused with 400 whose gzipped copy was refused too (so the logs, not the
    /// encoding, were refused). After [`GZIP_CHECKS`] of them, a 400 goes straight to the
    /// bisection: an intake that refuses everything must not double every request.
    both_refused: AtomicU32,
    /// The instance's name for log lines (`datadog_logs.0`), once known.
    log_name: OnceLock<Arc<str>>,
    spare_outputs: Mutex<Vec<Vec<u8>>>,
    max_spare_outputs: usize,
    /// Set at exit: no new request or probe is started (see [`Client::close`]).
    closing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the agent: timeouts, connection pool, proxy and TLS trust (see [`crate::deliver::tls`])
    /// from `cfg`.
    /// Returns the client and a description of the trusted roots.
    pub fn new(cfg: &Config) -> Result<(Client, &'static str), String> {
        let roots_note = crate::deliver::tls::trust_note(cfg);
        let proxy = match &cfg.proxy {
            Some(p) => Some(p.to_ureq()),
            None => ureq::Proxy::try_from_env(),
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.timeout))
            .timeout_connect(Some(cfg.connect_timeout()))
            .max_idle_connections(64)
            .max_idle_connections_per_host(cfg.max_concurrency.max(4) * 2)
            .max_idle_age(Duration::from_secs(50))
            .max_redirects(0)
            // Each pooled connection may keep an input and an output buffer (128 KiB each by
            // default); the intake answers with a few bytes and bodies stream through, so
            // 16 KiB each is plenty.
            .input_buffer_size(16 * 1024)
            .output_buffer_size(16 * 1024)
            .user_agent(format!("fluent-bit-datadog/{VERSION}"))
            .proxy(proxy)
            .build();
        // ureq's default chain without its own TLS step: CONNECT proxy, TCP, then our TLS.
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(TlsConnector::new(cfg));
        let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
        Ok((
            Client {
                agent,
                api_key: cfg.api_key.expose().to_string(),
                compression: cfg.compression,
                compressors: match cfg.compression {
                    Compression::Gzip(level) => Compressors::new(level, 1),
                    Compression::Zstd(level) => Compressors::new(DEFAULT_GZIP_LEVEL, level),
                    Compression::None => Compressors::new(DEFAULT_GZIP_LEVEL, 1),
                },
                zstd_refused: AtomicBool::new(false),
                zstd_accepted: AtomicBool::new(false),
                both_refused: AtomicU32::new(0),
                log_name: OnceLock::new(),
                spare_outputs: Mutex::new(Vec::new()),
                max_spare_outputs: cfg.max_concurrency.clamp(1, SPARE_OUTPUTS),
                closing: std::sync::atomic::AtomicBool::new(false),
            },
            roots_note,
        ))
    }

    /// Names the instance in the client's own log lines (the zstd fallback warning).
    pub fn set_log_name(&self, name: Arc<str>) {
        let _ = self.log_name.set(name);
    }

    /// The encoding of the next request: the configured one, but gzip once zstd was refused.
    fn codec(&self) -> Option<Codec> {
        match self.compression {
            Compression::None => None,
            Compression::Gzip(_) => Some(Codec::Gzip),
            Compression::Zstd(_) if self.zstd_refused.load(Ordering::Relaxed) => Some(Codec::Gzip),
            Compression::Zstd(_) => Some(Codec::Zstd),
        }
    }

    /// Encodes one batch's JSON array as the next request would be (`None` with `compress
    /// none`, or if it cannot be), into a buffer of the instance's pool: give it back with
    /// [`Client::recycle`].
    pub fn encode(&self, json: &[u8]) -> Option<Encoded> {
        let codec = self.codec()?;
        let mut out = self.take_output();
        if self.compressors.compress(codec, json, &mut out) {
            return Some(Encoded { codec, bytes: out });
        }
        self.put_output(out);
        None
    }

    /// Takes back the buffer of a body made by [`Client::encode`], for the next ones.
    pub fn recycle(&self, encoded: Encoded) {
        self.put_output(encoded.bytes);
    }

    /// POSTs one JSON array to `url`. Returns the outcome and the bytes put on the wire.
    ///
    /// The payload's encoded body is sent as it is when it has the encoding the request
    /// needs; otherwise the JSON is encoded now (decoded from that body first when only it
    /// is kept).
    ///
    /// A zstd body refused for its encoding (415; or 400 when the same batch gzipped is
    /// accepted) switches the instance to gzip and is sent again gzipped; the bytes of both
    /// attempts are counted. Until the intake has accepted one zstd body, a 400 for a zstd
    /// body is tried once more gzipped; after that, a 400 is about the logs.
    pub fn post_logs(&self, url: &str, json: Payload) -> Posted {
        let codec = self.codec();
        let first = self.post_encoded(url, json, codec);
        if codec != Some(Codec::Zstd) {
            return first;
        }
        match &first.outcome {
            Outcome::Accepted => {
                self.zstd_accepted.store(true, Ordering::Relaxed);
                first
            }
            refused @ Outcome::Refused { body, .. } if refused.refuses_encoding() => {
                self.refuse_zstd(415, body);
                first.then(self.post_encoded(url, json, Some(Codec::Gzip)))
            }
            Outcome::PayloadRefused { status: 400, body }
                if !self.zstd_accepted.load(Ordering::Relaxed)
                    && self.both_refused.load(Ordering::Relaxed) < GZIP_CHECKS =>
            {
                // The intake may not say why; the same batch gzipped tells the encoding apart
                // from the logs. If that is refused too, its 400 goes to the bisection.
                let body = body.clone();
                let again = first.then(self.post_encoded(url, json, Some(Codec::Gzip)));
                match again.outcome {
                    Outcome::Accepted => self.refuse_zstd(400, &body),
                    Outcome::PayloadRefused { status: 400, .. } => {
                        self.both_refused.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                again
            }
            _ => first,
        }
    }

    /// Switches the instance to gzip; the first call logs one warning.
    fn refuse_zstd(&self, status: u16, body: &str) {
        if self.zstd_refused.swap(true, Ordering::Relaxed) {
            return;
        }
        let name = self.log_name.get().map_or("datadog_logs", |n| n);
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

    /// POSTs `json` encoded with `codec` (`None`: plain JSON).
    fn post_encoded(&self, url: &str, json: Payload, codec: Option<Codec>) -> Posted {
        let req = self
            .agent
            .post(url)
            .header("DD-API-KEY", &self.api_key)
            .header("Content-Type", "application/json")
            .header("DD-EVP-ORIGIN", "fluent-bit-datadog")
            .header("DD-EVP-ORIGIN-VERSION", VERSION);
        let mut out = None;
        let ready = json.encoded.filter(|e| Some(e.codec) == codec);
        let text = match ready {
            Some(_) => Cow::Borrowed(&[][..]),
            None => match json.text() {
                Some(text) => text,
                None => return Posted::unsent("the batch's encoded body did not decode"),
            },
        };
        let (req, body): (_, &[u8]) = match (codec, ready) {
            (Some(codec), Some(e)) => (req.header("Content-Encoding", codec.encoding()), &e.bytes),
            (Some(mut codec), None) => {
                let out = out.insert(self.take_output());
                let mut done = self.compressors.compress(codec, &text, out);
                if !done && codec == Codec::Zstd {
                    // No zstd context could be made (out of memory): gzip this one.
                    codec = Codec::Gzip;
                    done = self.compressors.compress(codec, &text, out);
                }
                if !done {
                    // Never an empty body under a Content-Encoding: the objects stay pending.
                    let out = std::mem::take(out);
                    self.put_output(out);
                    return Posted::unsent("the body could not be compressed");
                }
                (req.header("Content-Encoding", codec.encoding()), &out[..])
            }
            (None, _) => (req, &text),
        };
        let wire_bytes = body.len();
        let started = Instant::now();
        let (outcome, status) = match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let location = resp.headers().get("location").cloned();
                let text = body_start(&mut resp);
                let location = location.as_ref().and_then(|l| l.to_str().ok());
                (classify(status, text).located(location), Some(status))
            }
            Err(e) => (
                Outcome::Transient {
                    status: None,
                    reason: transport_reason(&e),
                },
                None,
            ),
        };
        let duration = started.elapsed();
        if let Some(out) = out {
            self.put_output(out);
        }
        Posted {
            outcome,
            status,
            wire_bytes,
            duration,
            refused_encoding: None,
        }
    }

    fn take_output(&self) -> Vec<u8> {
        let spare = self
            .spare_outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        spare.unwrap_or_default()
    }

    fn put_output(&self, out: Vec<u8>) {
        if out.capacity() > KEEP_OUTPUT {
            return;
        }
        let mut spare = self.spare_outputs.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < self.max_spare_outputs {
            spare.push(out);
        }
    }

    /// At exit: from now on no new request is started (the flush loop checks
    /// [`Client::is_closing`] between requests, probes answer "unknown"); requests already
    /// on the wire finish within their timeout.
    pub fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// True once [`Client::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Asks `GET <api_base>/api/v1/validate` whether the key belongs to that site.
    pub fn validate(&self, api_base: &str, timeout: Duration) -> Validation {
        if self.is_closing() {
            return Validation::Unknown("the instance is exiting".into());
        }
        let url = format!("{api_base}/api/v1/validate");
        let result = self
            .agent
            .get(&url)
            .header("DD-API-KEY", &self.api_key)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call();
        verdict(result)
    }
    /// Asks an intake whether it accepts the key: `POST <url>` with the body `[]`, which
    /// holds no log, so nothing is stored whatever the answer.
    ///
    /// 2xx means the key is accepted; 401/403 that it is not (an intake answers 403 to a key
    /// of another site). Every other answer (400, 404, 408, 413, 429, 5xx, network) gives no
    /// verdict: an intake that read the key might still refuse an empty array, but treating
    /// that as "accepted" could pick the wrong site, while "no verdict" only waits for the
    /// validate API or the next round.
    pub fn probe_intake(&self, url: &str, timeout: Duration) -> Validation {
        if self.is_closing() {
            return Validation::Unknown("the instance is exiting".into());
        }
        let result = self
            .agent
            .post(url)
            .header("DD-API-KEY", &self.api_key)
            .header("Content-Type", "application/json")
            .header("DD-EVP-ORIGIN", "fluent-bit-datadog")
            .header("DD-EVP-ORIGIN-VERSION", VERSION)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(&b"[]"[..]);
        verdict(result)
    }
}

/// What a probe's answer says about the key: 2xx accepted, 401/403 refused, else no verdict.
fn verdict(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Validation {
    match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let _ = body_start(&mut resp);
            match status {
                200..=299 => Validation::Valid,
                401 | 403 => Validation::Invalid,
                s => Validation::Unknown(format!("HTTP {s}")),
            }
        }
        Err(e) => Validation::Unknown(transport_reason(&e)),
    }
}

/// Maps a status to an outcome; the README's delivery table gives the reasons:
///
/// | status | outcome | the flush then |
/// |---|---|---|
/// | 2xx | [`Outcome::Accepted`] | marks the objects done |
/// | 408, 429, 5xx (transport errors too, in [`Client::post_logs`]) | [`Outcome::Transient`] | keeps the objects for Fluent Bit's retry |
/// | 400, 413, 422 | [`Outcome::PayloadRefused`] | splits the request (bounded); drops an object refused alone |
/// | 3xx (redirects are not followed), 401, 403, 415 | [`Outcome::Refused`] | drops the chunk, unless some of it waits for a retry anyway |
/// | other 4xx (404, 409, ...), 1xx, unknown | [`Outcome::Transient`] | keeps the objects for Fluent Bit's retry, as the Datadog Agent and Vector do |
pub fn classify(status: u16, body: String) -> Outcome {
    match status {
        200..=299 => Outcome::Accepted,
        400 | 413 | 422 => Outcome::PayloadRefused { status, body },
        300..=399 | 401 | 403 | 415 => Outcome::Refused {
            status,
            body,
            location: None,
        },
        _ => Outcome::Transient {
            status: Some(status),
            reason: format!("HTTP {status}"),
        },
    }
}

/// Reads the response to the end (so the connection is reused) and keeps its first 200
/// characters, on one line.
fn body_start(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut s: String = text.chars().take(200).collect();
    s = s.replace(['\n', '\r'], " ");
    s.trim().to_string()
}

fn transport_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timeout ({t})"),
        ureq::Error::Io(io) => format!("connection error: {io}"),
        ureq::Error::HostNotFound => "host not found (DNS)".to_string(),
        other => other.to_string(),
    }
}

/// The host part of a URL, for log lines.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        for s in [200, 202, 204] {
            assert_eq!(classify(s, String::new()), Outcome::Accepted);
        }
        for s in [
            408, 429, 500, 502, 503, 504, 404, 409, 405, 410, 499, 100, 600,
        ] {
            let o = classify(s, String::new());
            assert!(
                matches!(o, Outcome::Transient { status: Some(x), .. } if x == s),
                "{s}"
            );
            assert!(o.is_retriable() && !o.splits_payload(), "{s}");
        }
        for s in [400, 413, 422] {
            let o = classify(s, "no".into());
            assert!(matches!(o, Outcome::PayloadRefused { .. }), "{s}");
            assert!(!o.is_retriable() && o.splits_payload(), "{s}");
        }
        for s in [301, 302, 307, 308, 401, 403, 415] {
            let o = classify(s, String::new());
            assert!(matches!(o, Outcome::Refused { .. }), "{s}");
            assert!(!o.is_retriable() && !o.splits_payload(), "{s}");
            assert_eq!(o.refuses_encoding(), s == 415, "{s}");
        }
    }

    #[test]
    fn a_redirect_keeps_its_location() {
        let to = "https://intake.example/api/v2/logs";
        assert_eq!(
            classify(301, String::new()).located(Some(to)),
            Outcome::Refused {
                status: 301,
                body: String::new(),
                location: Some(to.into())
            }
        );
        // Only a redirect carries one.
        assert_eq!(
            classify(403, String::new()).located(Some(to)),
            classify(403, String::new())
        );
        assert_eq!(
            classify(202, String::new()).located(Some(to)),
            Outcome::Accepted
        );
    }

    #[test]
    fn host_is_extracted() {
        assert_eq!(
            host_of("https://http-intake.logs.ap1.datadoghq.com/api/v2/logs"),
            "http-intake.logs.ap1.datadoghq.com"
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080/api/v2/logs"),
            "127.0.0.1:8080"
        );
    }
}
