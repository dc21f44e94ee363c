//! The HTTP client, compression, and what each intake response means.
//!
//! One ureq agent per instance keeps connections alive across flushes. TLS is rustls, set up by
//! [`crate::tls`]: the system's CA bundle, plus `tls_ca_file` when given (whose own
//! certificates are also trusted as server certificates), or nothing with `tls_verify off`.
//!
//! What an answer means is decided once, by [`classify`] (its table), and the decisions that
//! follow from it live beside the type: [`Outcome::is_retriable`], [`Outcome::splits_payload`].

use crate::options::{Compression, Config};
use crate::tls::TlsConnector;
use flate2::{Compress, Crc, FlushCompress, Status};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

/// The `User-Agent` and origin version sent with every request.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What one request came to (see [`classify`] for the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the intake took the payload.
    Accepted,
    /// 400 or 413: this payload will never be accepted as it is, but a part of it may be.
    PayloadRefused {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// Another 4xx (401, 403, 404, ...): no request will be accepted, whatever it holds.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// A failure a later attempt may not meet: 408, 429, 5xx, or the network.
    Transient {
        /// The HTTP status, or `None` for a transport error (connect, timeout, DNS, ...).
        status: Option<u16>,
        /// What failed, for log lines: `HTTP 503`, `timeout (...)`, `connection error: ...`.
        reason: String,
    },
}

impl Outcome {
    /// True when the same payload may be accepted later: keep it for Fluent Bit's retry.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Outcome::Transient { .. })
    }

    /// True when the payload must be split: its halves may be accepted, and a single object
    /// refused alone is dropped.
    pub fn splits_payload(&self) -> bool {
        matches!(self, Outcome::PayloadRefused { .. })
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

/// The instance's deflate streams (about 380 KB of state each), made on demand up to one per
/// core and then kept for the client's life: a request holds one only while it compresses,
/// not while it waits for the intake.
///
/// Keeping them, and the output buffers, is what holds resident memory flat. A stream made and
/// dropped per request leaves its blocks in the malloc arena of the short-lived sender thread
/// that made it, and glibc does not trim an arena below twice the largest block it has
/// unmapped (a few MB once the host has freed a chunk), so with `Workers 2` a dozen arenas
/// each kept about 1 MB.
#[derive(Default)]
struct Deflaters {
    idle: Vec<Compress>,
    made: usize,
}

/// The instance's HTTP client.
pub struct Client {
    agent: ureq::Agent,
    api_key: String,
    compression: Compression,
    deflaters: Mutex<Deflaters>,
    deflater_idle: Condvar,
    max_deflaters: usize,
    spare_outputs: Mutex<Vec<Vec<u8>>>,
    max_spare_outputs: usize,
    /// Set at exit: no new request or probe is started (see [`Client::close`]).
    closing: std::sync::atomic::AtomicBool,
}

/// A deflate stream lent to one request; returned to the client when dropped.
struct Lease<'a> {
    client: &'a Client,
    z: Option<Compress>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(z) = self.z.take() {
            let mut d = self
                .client
                .deflaters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            d.idle.push(z);
        }
        self.client.deflater_idle.notify_one();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the agent: timeouts, connection pool, proxy and TLS trust (see [`crate::tls`])
    /// from `cfg`.
    /// Returns the client and a description of the trusted roots.
    pub fn new(cfg: &Config) -> Result<(Client, &'static str), String> {
        let roots_note = crate::tls::trust_note(cfg);
        let proxy = match &cfg.proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| format!("proxy: {e}"))?),
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
                api_key: cfg.api_key.clone(),
                compression: cfg.compression,
                deflaters: Mutex::new(Deflaters::default()),
                deflater_idle: Condvar::new(),
                max_deflaters: std::thread::available_parallelism().map_or(2, |n| n.get()),
                spare_outputs: Mutex::new(Vec::new()),
                max_spare_outputs: cfg.max_concurrency.clamp(1, SPARE_OUTPUTS),
                closing: std::sync::atomic::AtomicBool::new(false),
            },
            roots_note,
        ))
    }

    /// POSTs one JSON array to `url`.
    pub fn post_logs(&self, url: &str, json: &[u8]) -> Posted {
        let req = self
            .agent
            .post(url)
            .header("DD-API-KEY", &self.api_key)
            .header("Content-Type", "application/json")
            .header("DD-EVP-ORIGIN", "fluent-bit-datadog")
            .header("DD-EVP-ORIGIN-VERSION", VERSION);
        let mut out = None;
        let (req, body): (_, &[u8]) = match self.compression {
            Compression::Gzip(level) => {
                let out = out.insert(self.take_output());
                let mut lease = self.lease(level);
                if let Some(z) = lease.z.as_mut() {
                    gzip_into(z, level, json, out);
                }
                drop(lease);
                (req.header("Content-Encoding", "gzip"), &out[..])
            }
            Compression::None => (req, json),
        };
        let wire_bytes = body.len();
        let started = Instant::now();
        let (outcome, status) = match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = body_start(&mut resp);
                (classify(status, text), Some(status))
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
        }
    }

    /// Lends an idle deflate stream, makes one while fewer than one per core exist, or waits
    /// for one to be returned.
    fn lease(&self, level: u32) -> Lease<'_> {
        let mut d = self.deflaters.lock().unwrap_or_else(|e| e.into_inner());
        let z = loop {
            if let Some(z) = d.idle.pop() {
                break z;
            }
            if d.made < self.max_deflaters {
                // Counted once made, so a failure to make one cannot use up a slot.
                let z = Compress::new(flate2::Compression::new(level), false);
                d.made += 1;
                break z;
            }
            d = self
                .deflater_idle
                .wait(d)
                .unwrap_or_else(|e| e.into_inner());
        };
        Lease {
            client: self,
            z: Some(z),
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

/// Maps a status to an outcome:
///
/// | status | outcome | the flush then |
/// |---|---|---|
/// | 2xx | [`Outcome::Accepted`] | marks the objects done |
/// | 408, 429, 5xx (transport errors too, in [`Client::post_logs`]) | [`Outcome::Transient`] | keeps the objects for Fluent Bit's retry |
/// | 400, 413 | [`Outcome::PayloadRefused`] | splits the request; drops an object refused alone |
/// | other (401, 403, 404, ...) | [`Outcome::Refused`] | drops the chunk, unless some of it waits for a retry anyway |
pub fn classify(status: u16, body: String) -> Outcome {
    match status {
        200..=299 => Outcome::Accepted,
        408 | 429 | 500..=599 => Outcome::Transient {
            status: Some(status),
            reason: format!("HTTP {status}"),
        },
        400 | 413 => Outcome::PayloadRefused { status, body },
        _ => Outcome::Refused { status, body },
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

/// Gzips `json` at `level` (1-9).
pub fn gzip(json: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut z = Compress::new(flate2::Compression::new(level), false);
    gzip_into(&mut z, level, json, &mut out);
    out
}

/// Gzips `json` into `out` (cleared) with `z`, a raw deflate stream made at `level`, which is
/// reset first: the gzip header, the deflate stream, then CRC-32 and length.
fn gzip_into(z: &mut Compress, level: u32, json: &[u8], out: &mut Vec<u8>) {
    z.reset();
    out.clear();
    out.reserve(json.len() / 4 + 64);
    // No name, no time; XFL as flate2's GzEncoder sets it; OS unknown.
    let xfl = match level {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    };
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
    let mut input = json;
    loop {
        let before = z.total_in();
        let status = z.compress_vec(input, out, FlushCompress::Finish);
        input = &input[(z.total_in() - before) as usize..];
        match status {
            Ok(Status::StreamEnd) => break,
            Ok(_) => out.reserve(out.capacity() / 2 + 4096),
            // Only a corrupt stream state fails; send nothing rather than half a stream.
            Err(_) => {
                out.clear();
                return;
            }
        }
    }
    let mut crc = Crc::new();
    crc.update(json);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
}

/// The host part of a URL, for log lines.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn statuses_are_classified() {
        for s in [200, 202, 204] {
            assert_eq!(classify(s, String::new()), Outcome::Accepted);
        }
        for s in [408, 429, 500, 502, 503, 504] {
            let o = classify(s, String::new());
            assert!(
                matches!(o, Outcome::Transient { status: Some(x), .. } if x == s),
                "{s}"
            );
            assert!(o.is_retriable() && !o.splits_payload(), "{s}");
        }
        for s in [400, 413] {
            let o = classify(s, "no".into());
            assert!(matches!(o, Outcome::PayloadRefused { .. }), "{s}");
            assert!(!o.is_retriable() && o.splits_payload(), "{s}");
        }
        for s in [401, 403, 404] {
            let o = classify(s, String::new());
            assert!(matches!(o, Outcome::Refused { .. }), "{s}");
            assert!(!o.is_retriable() && !o.splits_payload(), "{s}");
        }
    }

    #[test]
    fn gzip_round_trips() {
        let json = br#"[{"message":"hello"}]"#.repeat(100);
        let z = gzip(&json, 3);
        assert!(z.len() < json.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, json);
    }

    #[test]
    fn reused_compressor_round_trips() {
        let mut z = Compress::new(flate2::Compression::new(6), false);
        let mut out = Vec::new();
        for n in [1, 5000, 0, 300] {
            let json = br#"[{"message":"hello"}]"#.repeat(n);
            gzip_into(&mut z, 6, &json, &mut out);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, json);
        }
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
