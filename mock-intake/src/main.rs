//! `mock_intake`: a stand-in for the Datadog log intake (`POST /api/v2/logs`).
//!
//! Used by the integration tests (spawned as a child process, see
//! `test-support/src/mock.rs`) and by docker compose. It validates requests the
//! way Datadog does (API key, compression, size and entry limits, JSON shape),
//! records the accepted log objects, and can be told over HTTP to inject
//! faults (error statuses, delays) so retry behaviour can be tested.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p mock-intake -- --addr 127.0.0.1:8080 --print
//! ```
//!
//! The first line on stdout is always `mock_intake listening on http://IP:PORT`
//! (the real port when `--addr` used port 0).
//!
//! With `--tls-cert PEM --tls-key PEM` the same port also speaks TLS (tokio-rustls): a
//! connection whose first byte is a TLS handshake record is served over TLS, any other as
//! plain HTTP, so `https://IP:PORT` is the intake under test while the control API stays on
//! `http://IP:PORT`. A second stdout line then says `mock_intake serving TLS on https://IP:PORT`.
//!
//! Endpoints:
//! - `POST /api/v2/logs`: the intake. 202 `{}` on success; 401 (no key),
//!   403 (wrong key), 415 (unknown `Content-Encoding`), 400 (bad body,
//!   duplicate keys), 413 (> 5 000 000 bytes decompressed or > 1000 entries).
//! - `GET /api/v1/validate`: 200 `{"valid":true}` or 403.
//! - `POST /mock/rules` with `{"rules":[RULE,...]}`: replace the fault rules.
//! - `POST /mock/reset`: clear rules, recorded objects and counters.
//! - `GET /mock/received`: everything recorded so far, as JSON.
//! - `GET /mock/health`: 200 `{"status":"ok"}`.
//!
//! A RULE has optional fields `status`, `delay_ms`, `times`, `every`, `after`,
//! `over_bytes`, `poison`, `path` (default `/api/v2/logs`) and `body`; see
//! [`Rule`]. The API key is never echoed or logged.
//!
//! The HTTP layer is hyper (HTTP/1.1 with keep-alive) on a multi-threaded
//! tokio runtime: every connection is its own task, so any number of clients
//! are served at once; decompression and JSON parsing run on tokio's blocking
//! pool and rule delays are timers, so neither holds up other connections.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const LOGS_PATH: &str = "/api/v2/logs";
const VALIDATE_PATH: &str = "/api/v1/validate";
/// Datadog's limit on the uncompressed payload size.
const MAX_DECOMPRESSED: usize = 5_000_000;
/// Datadog's limit on the number of entries in one payload.
const MAX_ENTRIES: usize = 1000;
/// Upper bound on the bytes read off the wire for one request.
const MAX_WIRE: usize = 64 * 1024 * 1024;
/// Upper bound on a control request body (`/mock/rules`).
const MAX_CONTROL_BODY: usize = 1024 * 1024;
/// Request headers copied into the request log.
const LOGGED_HEADERS: [&str; 4] = [
    "user-agent",
    "dd-evp-origin",
    "dd-evp-origin-version",
    "content-type",
];

const USAGE: &str = "\
mock_intake: mock Datadog log intake for tests

USAGE: mock_intake [--addr HOST:PORT] [--api-key KEY] [--print] [--quiet]
                   [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT  address to bind (env MOCK_INTAKE_ADDR, default 127.0.0.1:8080; port 0 = any)
  --api-key KEY     the only accepted DD-API-KEY (env MOCK_INTAKE_API_KEY; default: any non-empty key)
  --print           print every accepted log object as a JSON line on stdout (env MOCK_INTAKE_PRINT=1)
  --quiet           do not log requests on stderr (env MOCK_INTAKE_QUIET=1)
  --tls-cert PEM    also serve TLS on the same port with this certificate chain (needs --tls-key)
  --tls-key PEM     the private key of --tls-cert
  --help            show this help

Control API: POST /mock/rules {\"rules\":[...]}, POST /mock/reset, GET /mock/received";

// ---------------------------------------------------------------- configuration

struct Config {
    addr: String,
    api_key: Option<String>,
    print: bool,
    quiet: bool,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Parses the command line (environment variables give the defaults).
/// `Ok(None)` means `--help` was requested.
fn parse_config(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        addr: std::env::var("MOCK_INTAKE_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into()),
        api_key: std::env::var("MOCK_INTAKE_API_KEY").ok(),
        print: env_flag("MOCK_INTAKE_PRINT"),
        quiet: env_flag("MOCK_INTAKE_QUIET"),
        tls_cert: None,
        tls_key: None,
    };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{what} needs a value"))
        };
        match name.as_str() {
            "--addr" => config.addr = value("--addr")?,
            "--api-key" => config.api_key = Some(value("--api-key")?),
            "--print" => config.print = true,
            "--quiet" => config.quiet = true,
            "--tls-cert" => config.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => config.tls_key = Some(value("--tls-key")?),
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    config.api_key = config
        .api_key
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    Ok(Some(config))
}

// ---------------------------------------------------------------- fault rules

/// One fault-injection rule; all conditions present must hold for it to match.
#[derive(Debug, Clone)]
struct Rule {
    /// Answer this status (with `body`) instead of processing the request.
    status: Option<u16>,
    /// Sleep this long before answering (or before processing normally).
    delay: Option<Duration>,
    /// Remaining uses; `None` = unlimited.
    times: Option<u64>,
    /// Matches only when the request sequence number is a multiple of this.
    every: Option<u64>,
    /// Matches only when the request sequence number is greater than this.
    after: Option<u64>,
    /// Matches only when the decompressed body is larger than this.
    over_bytes: Option<usize>,
    /// Matches only when the decompressed body contains this substring.
    poison: Option<String>,
    path: String,
    body: String,
}

fn parse_rule(v: &Value) -> Result<Rule, String> {
    let obj = v.as_object().ok_or("a rule must be a JSON object")?;
    let uint = |key: &str| -> Result<Option<u64>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("rule field `{key}` must be a non-negative integer")),
        }
    };
    let string = |key: &str| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("rule field `{key}` must be a string")),
        }
    };
    const KNOWN: [&str; 9] = [
        "status",
        "delay_ms",
        "times",
        "every",
        "after",
        "over_bytes",
        "poison",
        "path",
        "body",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown rule field `{k}`"));
    }
    let status = match uint("status")? {
        None => None,
        Some(s @ 100..=599) => Some(s as u16),
        Some(s) => return Err(format!("rule status {s} is not an HTTP status")),
    };
    let every = uint("every")?;
    if every == Some(0) {
        return Err("rule field `every` must be at least 1".into());
    }
    let path = string("path")?.unwrap_or_else(|| LOGS_PATH.into());
    if path != LOGS_PATH && path != VALIDATE_PATH {
        return Err(format!("rule path must be {LOGS_PATH} or {VALIDATE_PATH}"));
    }
    Ok(Rule {
        status,
        delay: uint("delay_ms")?.map(Duration::from_millis),
        times: uint("times")?,
        every,
        after: uint("after")?,
        over_bytes: uint("over_bytes")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        poison: string("poison")?,
        path,
        body: string("body")?.unwrap_or_else(|| r#"{"errors":["injected"]}"#.into()),
    })
}

/// Parses `{"rules":[...]}` (a bare array is accepted too).
fn parse_rules(body: &[u8]) -> Result<Vec<Rule>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let list = match &v {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("rules") {
            Some(Value::Array(a)) => a,
            _ => return Err("expected {\"rules\":[...]}".into()),
        },
        _ => return Err("expected {\"rules\":[...]}".into()),
    };
    list.iter().map(parse_rule).collect()
}

/// What the request body looks like to the rule matcher.
#[derive(Clone, Copy)]
enum BodyView<'a> {
    /// No body (validate requests) or an undecodable one.
    Unknown,
    /// Decompressed body exceeded the size cap.
    TooLarge,
    Decoded(&'a [u8]),
}

impl Rule {
    fn matches(&self, path: &str, seq: u64, body: BodyView<'_>) -> bool {
        if self.path != path || self.times == Some(0) {
            return false;
        }
        if self.every.is_some_and(|k| seq % k != 0) || self.after.is_some_and(|a| seq <= a) {
            return false;
        }
        if let Some(n) = self.over_bytes {
            let big = match body {
                BodyView::TooLarge => true,
                BodyView::Decoded(b) => b.len() > n,
                BodyView::Unknown => false,
            };
            if !big {
                return false;
            }
        }
        if let Some(p) = &self.poison {
            let hit = match body {
                BodyView::Decoded(b) => {
                    p.is_empty() || b.windows(p.len()).any(|w| w == p.as_bytes())
                }
                _ => false,
            };
            if !hit {
                return false;
            }
        }
        true
    }
}

// ---------------------------------------------------------------- body decoding

/// Why a body could not be used: the HTTP status to answer, and a message.
#[derive(Debug)]
struct BodyError {
    status: u16,
    msg: String,
}

impl BodyError {
    fn new(status: u16, msg: String) -> BodyError {
        BodyError { status, msg }
    }
}

/// Reads at most `limit` bytes of the request body.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| BodyError::new(400, format!("cannot read request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > limit {
            return Err(BodyError::new(
                413,
                format!("request body over {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Decompresses `wire` per `Content-Encoding`, never inflating past the cap.
fn decode_body(encoding: &str, wire: &[u8]) -> Result<Vec<u8>, BodyError> {
    let reader: Box<dyn Read + '_> = match encoding {
        "" | "identity" => Box::new(wire),
        "gzip" | "x-gzip" => Box::new(MultiGzDecoder::new(wire)),
        // HTTP "deflate" is zlib-wrapped, but raw deflate is common too.
        "deflate" => match wire {
            [a, b, ..] if a & 0x0f == 8 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0 => {
                Box::new(ZlibDecoder::new(wire))
            }
            _ => Box::new(DeflateDecoder::new(wire)),
        },
        other => {
            return Err(BodyError::new(
                415,
                format!("unsupported Content-Encoding `{other}`"),
            ));
        }
    };
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::new(400, format!("cannot decompress {encoding} body: {e}")))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(BodyError::new(
            413,
            format!("payload over {MAX_DECOMPRESSED} bytes once decompressed"),
        ));
    }
    Ok(out)
}

/// Parses a log payload: a JSON array of objects without duplicate keys.
fn parse_batch(body: &[u8]) -> Result<Vec<Value>, String> {
    let v = test_support::json::parse(body)?;
    let Value::Array(items) = v else {
        return Err("payload must be a JSON array of objects".into());
    };
    if let Some(i) = items.iter().position(|x| !x.is_object()) {
        return Err(format!("entry {i} is not a JSON object"));
    }
    Ok(items)
}

// ---------------------------------------------------------------- shared state

#[derive(Default)]
struct State {
    /// Bumped by reset, so requests in flight across a reset are not recorded.
    generation: u64,
    rules: Vec<Rule>,
    requests: u64,
    validate_requests: u64,
    accepted_requests: u64,
    objects: Vec<Value>,
    statuses: BTreeMap<u16, u64>,
    log: Vec<Value>,
}

struct Intake {
    config: Config,
    state: Mutex<State>,
}

struct Reply {
    status: u16,
    body: String,
    objects: usize,
}

impl Reply {
    fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            objects: 0,
        }
    }
    fn error(status: u16, msg: &str) -> Reply {
        Reply::json(status, json!({ "errors": [msg] }).to_string())
    }
}

enum KeyCheck {
    Missing,
    Wrong,
    Ok,
}

/// The first value of header `name` (matched case-insensitively).
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The request target without query or fragment (as sent: origin form `/path`
/// or, from a proxy-style client, absolute form `http://host/path`).
fn path_of(uri: &Uri) -> String {
    uri.to_string()
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_string()
}

/// Runs CPU-bound or blocking work (decompression, JSON, stdout) on tokio's
/// blocking pool so it never stalls the threads that serve connections. A
/// panic is passed on to the caller's task (which then answers 500).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => panic!("blocking task failed: {e}"),
        },
    }
}

impl Intake {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_key(&self, headers: &HeaderMap) -> KeyCheck {
        match header(headers, "dd-api-key").map(|k| k.trim().to_string()) {
            None => KeyCheck::Missing,
            Some(k) if k.is_empty() => KeyCheck::Missing,
            Some(k) => match &self.config.api_key {
                Some(expected) if *expected != k => KeyCheck::Wrong,
                _ => KeyCheck::Ok,
            },
        }
    }

    /// Finds the first live matching rule and uses it up once.
    fn take_rule(&self, path: &str, seq: u64, body: BodyView<'_>) -> Option<Rule> {
        let mut state = self.lock();
        let rule = state
            .rules
            .iter_mut()
            .find(|r| r.matches(path, seq, body))?;
        if let Some(t) = rule.times.as_mut() {
            *t -= 1;
        }
        Some(rule.clone())
    }

    /// Applies a rule's delay; returns its injected reply, if it has one.
    async fn apply_rule(rule: Option<Rule>) -> Option<Reply> {
        let rule = rule?;
        if let Some(d) = rule.delay {
            tokio::time::sleep(d).await;
        }
        rule.status.map(|s| Reply::json(s, rule.body))
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let method = parts.method;
        let path = path_of(&parts.uri);
        let reply = match (method.as_str(), path.as_str()) {
            ("POST", LOGS_PATH) => self.handle_logs(parts.headers, body, peer).await,
            ("GET", VALIDATE_PATH) => self.handle_validate(&parts.headers).await,
            ("POST", "/mock/rules") => self.handle_set_rules(body).await,
            ("POST", "/mock/reset") => self.handle_reset(),
            ("GET", "/mock/received") => {
                let this = Arc::clone(&self);
                blocking(move || Reply::json(200, this.received().to_string())).await
            }
            ("GET", "/mock/health") => Reply::json(200, r#"{"status":"ok"}"#),
            (_, LOGS_PATH | VALIDATE_PATH | "/mock/rules" | "/mock/reset" | "/mock/received") => {
                Reply::error(405, "Method Not Allowed")
            }
            _ => Reply::error(404, "Not Found"),
        };
        if !self.config.quiet {
            eprintln!(
                "mock_intake: {method} {path} -> {} ({} objects)",
                reply.status, reply.objects
            );
        }
        let mut response = Response::new(Full::new(Bytes::from(reply.body)));
        *response.status_mut() =
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    async fn handle_logs(
        self: &Arc<Self>,
        headers: HeaderMap,
        body: Incoming,
        peer: SocketAddr,
    ) -> Reply {
        let (seq, generation) = {
            let mut state = self.lock();
            state.requests += 1;
            (state.requests, state.generation)
        };
        let key = self.check_key(&headers);
        let encoding = header(&headers, "content-encoding")
            .map(|e| e.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let wire = read_body(body, MAX_WIRE).await;
        let bytes_wire = wire.as_ref().map_or(0, Vec::len);
        let (decoded, rule) = {
            let (this, encoding) = (Arc::clone(self), encoding.clone());
            blocking(move || {
                let decoded = wire.and_then(|w| decode_body(&encoding, &w));
                let view = match &decoded {
                    Ok(b) => BodyView::Decoded(b),
                    Err(e) if e.status == 413 => BodyView::TooLarge,
                    Err(_) => BodyView::Unknown,
                };
                let rule = this.take_rule(LOGS_PATH, seq, view);
                (decoded, rule)
            })
            .await
        };
        let injected = Self::apply_rule(rule).await;
        let this = Arc::clone(self);
        blocking(move || {
            let was_injected = injected.is_some();
            let (reply, objects) = match injected {
                Some(r) => (r, Vec::new()),
                None => Self::process_logs(&key, &decoded),
            };
            let logged: Map<String, Value> = LOGGED_HEADERS
                .iter()
                .filter_map(|h| header(&headers, h).map(|v| (h.to_string(), Value::String(v))))
                .collect();
            let entry = json!({
                "seq": seq,
                "status": reply.status,
                "objects": objects.len(),
                "encoding": if encoding.is_empty() { "identity" } else { encoding.as_str() },
                "bytes_wire": bytes_wire,
                "bytes_json": decoded.as_ref().map_or(0, Vec::len),
                "api_key_ok": matches!(key, KeyCheck::Ok),
                "injected": was_injected,
                "peer": peer.to_string(),
                "headers": logged,
            });
            this.record(generation, entry, reply.status, objects);
            reply
        })
        .await
    }

    /// Datadog's own checks, in order: key, encoding/size, JSON shape, entry count.
    fn process_logs(key: &KeyCheck, decoded: &Result<Vec<u8>, BodyError>) -> (Reply, Vec<Value>) {
        match key {
            KeyCheck::Missing => return (Reply::error(401, "Unauthorized"), Vec::new()),
            KeyCheck::Wrong => return (Reply::error(403, "Forbidden"), Vec::new()),
            KeyCheck::Ok => {}
        }
        let body = match decoded {
            Ok(b) => b,
            Err(e) => return (Reply::error(e.status, &e.msg), Vec::new()),
        };
        match parse_batch(body) {
            Err(msg) => (Reply::error(400, &msg), Vec::new()),
            Ok(items) if items.len() > MAX_ENTRIES => {
                let msg = format!("{} entries, more than {MAX_ENTRIES}", items.len());
                (Reply::error(413, &msg), Vec::new())
            }
            Ok(items) => {
                let reply = Reply {
                    status: 202,
                    body: "{}".into(),
                    objects: items.len(),
                };
                (reply, items)
            }
        }
    }

    /// Stores the outcome of one log request (and prints objects if asked).
    fn record(&self, generation: u64, entry: Value, status: u16, objects: Vec<Value>) {
        if self.config.print && !objects.is_empty() {
            let mut out = io::stdout().lock();
            for o in &objects {
                let _ = writeln!(out, "{o}");
            }
            let _ = out.flush();
        }
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        *state.statuses.entry(status).or_default() += 1;
        if status == 202 {
            state.accepted_requests += 1;
            state.objects.extend(objects);
        }
        state.log.push(entry);
    }

    async fn handle_validate(&self, headers: &HeaderMap) -> Reply {
        let seq = {
            let mut state = self.lock();
            state.validate_requests += 1;
            state.validate_requests
        };
        let rule = self.take_rule(VALIDATE_PATH, seq, BodyView::Unknown);
        if let Some(reply) = Self::apply_rule(rule).await {
            return reply;
        }
        match self.check_key(headers) {
            KeyCheck::Ok => Reply::json(200, r#"{"valid":true}"#),
            _ => Reply::error(403, "Forbidden"),
        }
    }

    async fn handle_set_rules(&self, body: Incoming) -> Reply {
        let parsed = read_body(body, MAX_CONTROL_BODY)
            .await
            .map_err(|e| e.msg)
            .and_then(|b| parse_rules(&b));
        match parsed {
            Ok(rules) => {
                let n = rules.len();
                self.lock().rules = rules;
                Reply::json(200, json!({ "rules": n }).to_string())
            }
            Err(msg) => Reply::error(400, &msg),
        }
    }

    fn handle_reset(&self) -> Reply {
        let mut state = self.lock();
        let generation = state.generation + 1;
        *state = State {
            generation,
            ..State::default()
        };
        Reply::json(200, "{}")
    }

    fn received(&self) -> Value {
        let state = self.lock();
        let statuses: Map<String, Value> = state
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), Value::from(*n)))
            .collect();
        json!({
            "requests": state.requests,
            "accepted_requests": state.accepted_requests,
            "validate_requests": state.validate_requests,
            "objects": state.objects,
            "statuses": statuses,
            "log": state.log,
        })
    }
}

// ---------------------------------------------------------------- process setup

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe exit; also makes PID 1 in a container stop promptly.
    unsafe { libc::_exit(0) };
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only calls `_exit`, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

type Body = Full<Bytes>;

/// Answers one request. The handler runs in a task of its own, so a request
/// is processed (and recorded) to the end even if its client goes away, and a
/// panic in it becomes a bare 500 instead of killing the connection silently.
async fn respond(
    intake: Arc<Intake>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    match tokio::spawn(intake.handle(req, peer)).await {
        Ok(response) => Ok(response),
        Err(_) => {
            eprintln!("mock_intake: request handler panicked");
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok(response)
        }
    }
}

// ---------------------------------------------------------------- TLS

/// The server side of `--tls-cert`/`--tls-key`: a certificate chain and its key, from PEM.
fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {key}: {e}"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("TLS setup: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves one connection: over TLS when `tls` is set and the client opens with a TLS
/// handshake record (first byte 0x16), else as plain HTTP.
async fn serve_connection(
    http: http1::Builder,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    intake: Arc<Intake>,
    peer: SocketAddr,
) {
    let mut first = [0u8; 1];
    let handshake = match tls {
        Some(acceptor) if matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16) => {
            match acceptor.accept(stream).await {
                Ok(tls_stream) => {
                    return serve_http(http, TokioIo::new(tls_stream), intake, peer).await;
                }
                Err(e) => e,
            }
        }
        _ => return serve_http(http, TokioIo::new(stream), intake, peer).await,
    };
    // Clients that refuse the certificate are what the TLS tests check for.
    if !intake.config.quiet {
        eprintln!("mock_intake: TLS handshake with {peer} failed: {handshake}");
    }
}

/// Answers the HTTP/1.1 requests of one connection until it closes.
async fn serve_http<I>(http: http1::Builder, io: I, intake: Arc<Intake>, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let quiet = intake.config.quiet;
    let service = service_fn(move |req| respond(Arc::clone(&intake), req, peer));
    if let Err(e) = http.serve_connection(io, service).await {
        // Unparsable requests (hyper answered 400) and clients that hung up are routine.
        if !quiet && !e.is_parse() && !e.is_incomplete_message() {
            eprintln!("mock_intake: cannot send response: {e}");
        }
    }
}

/// Accepts connections forever, serving each one (HTTP/1.1, keep-alive) in its own task.
async fn serve(listener: TcpListener, intake: Arc<Intake>, tls: Option<TlsAcceptor>) {
    let mut http = http1::Builder::new();
    // A client may shut down its write side once its request is sent and still get the answer.
    // No timer is set, so idle keep-alive connections are kept until the client closes them.
    http.half_close(true);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("mock_intake: accept error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = serve_connection(http.clone(), stream, tls.clone(), Arc::clone(&intake), peer);
        tokio::spawn(conn);
    }
}

fn main() {
    let config = match parse_config(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(msg) => {
            eprintln!("mock_intake: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match std::net::TcpListener::bind(config.addr.as_str())
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock_intake: cannot listen on {}: {e}", config.addr);
            std::process::exit(1);
        }
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => match tls_acceptor(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("mock_intake: {e}");
                std::process::exit(2);
            }
        },
        _ => None,
    };
    install_signal_handlers();
    let bound = listener
        .local_addr()
        .map_or_else(|_| config.addr.clone(), |a| a.to_string());
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "mock_intake listening on http://{bound}");
        if tls.is_some() {
            let _ = writeln!(out, "mock_intake serving TLS on https://{bound}");
        }
        let _ = out.flush();
    }
    let intake = Arc::new(Intake {
        config,
        state: Mutex::new(State::default()),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("mock-intake")
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mock_intake: cannot start worker threads: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => serve(listener, intake, tls).await,
            Err(e) => {
                eprintln!("mock_intake: cannot listen on {bound}: {e}");
                std::process::exit(1);
            }
        }
    });
}
