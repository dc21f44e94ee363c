//! The HTTP client, the choice of body encoding, and what each intake response means.
//!
//! One ureq agent per instance keeps connections alive across flushes. TLS is rustls with the
//! system's CA bundle (through rustls-platform-verifier), plus `tls_ca_file` when given;
//! Mozilla's bundled roots are the fallback on a system with no CA bundle.
//!
//! | response | meaning |
//! |---|---|
//! | 2xx | accepted |
//! | 408, 429, 5xx, connect/transport error | retry later ([`Outcome::Retry`]) |
//! | 400, 413 | this payload will never be accepted as it is ([`Outcome::Rejected`]); split it |
//! | other 4xx (401, 403, ...) | no request will be accepted ([`Outcome::Rejected`]) |
//!
//! With `compress zstd`, a 415 for a zstd body, or a 400 for one whose same batch gzipped is
//! accepted, switches the instance to gzip for good (one warning) and the batch is sent again
//! gzipped: a refusal of the encoding never reaches the 400 bisection.

use crate::compress::{Codec, Compressors};
use crate::log::{self, Level};
use crate::options::{Compression, Config, DEFAULT_GZIP_LEVEL};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The `User-Agent` and origin version sent with every request.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What one request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the intake took the payload.
    Accepted,
    /// A failure that a later attempt may not meet: 408, 429, 5xx, or the network.
    Retry(String),
    /// A 4xx other than 408/429: resending the same payload gets the same answer.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
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
    /// The instance's name for log lines (`datadog_logs.0`), once known.
    log_name: OnceLock<Arc<str>>,
    spare_outputs: Mutex<Vec<Vec<u8>>>,
    max_spare_outputs: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

/// The root certificates to trust, and a note for the start-up log line.
fn root_certs(cfg: &Config) -> Result<(ureq::tls::RootCerts, &'static str), String> {
    let Some(path) = &cfg.tls_ca_file else {
        let system = rustls_native_certs::load_native_certs();
        return Ok(if system.certs.is_empty() {
            (
                ureq::tls::RootCerts::WebPki,
                "bundled Mozilla roots (no system CA bundle found)",
            )
        } else {
            (ureq::tls::RootCerts::PlatformVerifier, "system CA bundle")
        });
    };
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read tls_ca_file {}: {e}", path.display()))?;
    let mut certs: Vec<ureq::tls::Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    for item in ureq::tls::parse_pem(&pem).flatten() {
        if let ureq::tls::PemItem::Certificate(c) = item {
            certs.push(c);
        }
    }
    Ok((
        ureq::tls::RootCerts::Specific(Arc::new(certs)),
        "system CA bundle and tls_ca_file",
    ))
}

impl Client {
    /// Builds the agent: timeouts, connection pool, proxy and TLS roots from `cfg`.
    /// Returns the client and a description of the trusted roots.
    pub fn new(cfg: &Config) -> Result<(Client, &'static str), String> {
        let (roots, roots_note) = root_certs(cfg)?;
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let proxy = match &cfg.proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| format!("proxy: {e}"))?),
            None => ureq::Proxy::try_from_env(),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
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
            .tls_config(tls)
            .build()
            .into();
        Ok((
            Client {
                agent,
                api_key: cfg.api_key.clone(),
                compression: cfg.compression,
                compressors: match cfg.compression {
                    Compression::Gzip(level) => Compressors::new(level, 1),
                    Compression::Zstd(level) => Compressors::new(DEFAULT_GZIP_LEVEL, level),
                    Compression::None => Compressors::new(DEFAULT_GZIP_LEVEL, 1),
                },
                zstd_refused: AtomicBool::new(false),
                zstd_accepted: AtomicBool::new(false),
                log_name: OnceLock::new(),
                spare_outputs: Mutex::new(Vec::new()),
                max_spare_outputs: cfg.max_concurrency.clamp(1, SPARE_OUTPUTS),
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

    /// POSTs one JSON array to `url`. Returns the outcome and the bytes put on the wire.
    ///
    /// A zstd body refused for its encoding (415; or 400 when the same batch gzipped is
    /// accepted) switches the instance to gzip and is sent again gzipped; the bytes of both
    /// attempts are counted. Until the intake has accepted one zstd body, a 400 for a zstd
    /// body is tried once more gzipped; after that, a 400 is about the logs.
    pub fn post_logs(&self, url: &str, json: &[u8]) -> (Outcome, usize) {
        let codec = self.codec();
        let (outcome, wire) = self.post_encoded(url, json, codec);
        if codec != Some(Codec::Zstd) {
            return (outcome, wire);
        }
        match outcome {
            Outcome::Accepted => {
                self.zstd_accepted.store(true, Ordering::Relaxed);
                (Outcome::Accepted, wire)
            }
            Outcome::Rejected { status: 415, body } => {
                self.refuse_zstd(415, &body);
                let (outcome, again) = self.post_encoded(url, json, Some(Codec::Gzip));
                (outcome, wire + again)
            }
            Outcome::Rejected { status: 400, body }
                if !self.zstd_accepted.load(Ordering::Relaxed) =>
            {
                // The intake may not say why; the same batch gzipped tells the encoding apart
                // from the logs. If that is refused too, its 400 goes to the bisection.
                let (outcome, again) = self.post_encoded(url, json, Some(Codec::Gzip));
                if outcome == Outcome::Accepted {
                    self.refuse_zstd(400, &body);
                }
                (outcome, wire + again)
            }
            other => (other, wire),
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
    fn post_encoded(&self, url: &str, json: &[u8], codec: Option<Codec>) -> (Outcome, usize) {
        let req = self
            .agent
            .post(url)
            .header("DD-API-KEY", &self.api_key)
            .header("Content-Type", "application/json")
            .header("DD-EVP-ORIGIN", "fluent-bit-datadog")
            .header("DD-EVP-ORIGIN-VERSION", VERSION);
        let mut out = None;
        let (req, body): (_, &[u8]) = match codec {
            Some(mut codec) => {
                let out = out.insert(self.take_output());
                if !self.compressors.compress(codec, json, out) && codec == Codec::Zstd {
                    // No zstd context could be made (out of memory): gzip this one.
                    codec = Codec::Gzip;
                    self.compressors.compress(codec, json, out);
                }
                (req.header("Content-Encoding", codec.encoding()), &out[..])
            }
            None => (req, json),
        };
        let wire = body.len();
        let outcome = match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = body_start(&mut resp);
                classify(status, text)
            }
            Err(e) => Outcome::Retry(transport_reason(&e)),
        };
        if let Some(out) = out {
            self.put_output(out);
        }
        (outcome, wire)
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

    /// Asks `GET <api_base>/api/v1/validate` whether the key belongs to that site.
    pub fn validate(&self, api_base: &str, timeout: Duration) -> Validation {
        let url = format!("{api_base}/api/v1/validate");
        let result = self
            .agent
            .get(&url)
            .header("DD-API-KEY", &self.api_key)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call();
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
}

/// Maps a status to an outcome.
pub fn classify(status: u16, body: String) -> Outcome {
    match status {
        200..=299 => Outcome::Accepted,
        408 | 429 | 500..=599 => Outcome::Retry(format!("HTTP {status}")),
        _ => Outcome::Rejected { status, body },
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
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(s, String::new()), Outcome::Retry(_)),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413] {
            assert!(
                matches!(classify(s, String::new()), Outcome::Rejected { .. }),
                "{s}"
            );
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
