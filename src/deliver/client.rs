//! The HTTP client: it posts a [`Body`] it is given, and says what the answer means.
//!
//! One ureq agent per instance keeps connections alive across flushes. TLS is rustls, set up by
//! [`crate::deliver::tls`]: the system's CA bundle, plus `tls_ca_file` when given (whose own
//! certificates are also trusted as server certificates), or nothing with `tls_verify off`.
//!
//! What an answer means is decided once, by [`classify`] (its table); what the flush does
//! about it is [`crate::deliver::split`]'s. The client has no codec policy: the body comes
//! encoded, and the zstd -> gzip fallback is the encoder's
//! ([`crate::encode::body::Encoder`]).

use crate::config::options::Config;
use crate::deliver::tls::TlsConnector;
use crate::encode::body::Body;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

/// The `User-Agent` and origin version sent with every request.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What one request came to (see [`classify`] for the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
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
    /// Adds a redirect's `Location` to a refused 3xx (other outcomes are returned as they are).
    pub(crate) fn located(mut self, to: Option<&str>) -> Outcome {
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
pub(crate) struct Posted {
    /// What the intake (or the network) answered.
    pub outcome: Outcome,
    /// The HTTP status of the answer, or `None` when there was none (transport error).
    pub status: Option<u16>,
    /// Bytes of the request body on the wire (compressed when compression is on).
    pub wire_bytes: usize,
    /// From sending the request to the end of the response (compression excluded).
    pub duration: Duration,
}

impl Posted {
    /// A request that was not sent because its body could not be made (`reason`): a
    /// transient failure, so its objects stay pending and the chunk is retried.
    pub(crate) fn unsent(reason: &str) -> Posted {
        Posted {
            outcome: Outcome::Transient {
                status: None,
                reason: format!("{reason} (not sent)"),
            },
            status: None,
            wire_bytes: 0,
            duration: Duration::ZERO,
        }
    }
}

/// The answer of a key-validation probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Validation {
    /// 200: the key belongs to this site.
    Valid,
    /// 401/403: the key is unknown here.
    Invalid,
    /// No verdict (timeout, 429, 5xx, network).
    Unknown(String),
}

/// The instance's HTTP client.
pub(crate) struct Client {
    agent: ureq::Agent,
    api_key: String,
    /// Set at exit: no new request or probe is started (see [`Client::close`]).
    closing: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the agent: timeouts, connection pool, proxy and TLS trust (see [`crate::deliver::tls`])
    /// from `cfg`.
    /// Returns the client and a description of the trusted roots.
    pub(crate) fn new(cfg: &Config) -> Result<(Client, &'static str), String> {
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
                closing: AtomicBool::new(false),
            },
            roots_note,
        ))
    }

    /// POSTs one request's `body` (a JSON array of logs, encoded as it says) to `url`.
    /// Returns the outcome, the bytes put on the wire and the round trip's duration.
    pub(crate) fn post(&self, url: &str, body: &Body<'_>) -> Posted {
        let req = self
            .agent
            .post(url)
            .header("DD-API-KEY", &self.api_key)
            .header("Content-Type", "application/json")
            .header("DD-EVP-ORIGIN", "fluent-bit-datadog")
            .header("DD-EVP-ORIGIN-VERSION", VERSION);
        let req = match body.codec {
            Some(codec) => req.header("Content-Encoding", codec.encoding()),
            None => req,
        };
        let body: &[u8] = &body.bytes;
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
        Posted {
            outcome,
            status,
            wire_bytes,
            duration: started.elapsed(),
        }
    }

    /// At exit: from now on no new request is started (the flush loop checks
    /// [`Client::is_closing`] between requests, probes answer "unknown"); requests already
    /// on the wire finish within their timeout.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// True once [`Client::close`] was called.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Asks `GET <api_base>/api/v1/validate` whether the key belongs to that site.
    pub(crate) fn validate(&self, api_base: &str, timeout: Duration) -> Validation {
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
        validation(result)
    }
    /// Asks an intake whether it accepts the key: `POST <url>` with the body `[]`, which
    /// holds no log, so nothing is stored whatever the answer.
    ///
    /// 2xx means the key is accepted; 401/403 that it is not (an intake answers 403 to a key
    /// of another site). Every other answer (400, 404, 408, 413, 429, 5xx, network) gives no
    /// verdict: an intake that read the key might still refuse an empty array, but treating
    /// that as "accepted" could pick the wrong site, while "no verdict" only waits for the
    /// validate API or the next round.
    pub(crate) fn probe_intake(&self, url: &str, timeout: Duration) -> Validation {
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
        validation(result)
    }
}

/// What a probe's answer says about the key: 2xx accepted, 401/403 refused, else no verdict.
fn validation(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Validation {
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

/// Maps a status to an outcome; `docs/delivery.md` gives the reasons:
///
/// | status | outcome | the flush then |
/// |---|---|---|
/// | 2xx | [`Outcome::Accepted`] | marks the objects done |
/// | 408, 429, 5xx (transport errors too, in [`Client::post`]) | [`Outcome::Transient`] | keeps the objects for Fluent Bit's retry |
/// | 400, 413, 422 | [`Outcome::PayloadRefused`] | splits the request (bounded); drops an object refused alone |
/// | 3xx (redirects are not followed), 401, 403, 415 | [`Outcome::Refused`] | drops the chunk, unless some of it waits for a retry anyway |
/// | other 4xx (404, 409, ...), 1xx, unknown | [`Outcome::Transient`] | keeps the objects for Fluent Bit's retry, as the Datadog Agent and Vector do |
pub(crate) fn classify(status: u16, body: String) -> Outcome {
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
pub(crate) fn host_of(url: &str) -> &str {
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
        }
        for s in [400, 413, 422] {
            let o = classify(s, "no".into());
            assert!(matches!(o, Outcome::PayloadRefused { .. }), "{s}");
        }
        for s in [301, 302, 307, 308, 401, 403, 415] {
            let o = classify(s, String::new());
            assert!(matches!(o, Outcome::Refused { .. }), "{s}");
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
