//! The intake's state and request handlers: Datadog's checks, fault rules, recording.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use serde_json::{Map, Value, json};

use crate::body::{BodyError, decode_body, parse_batch, read_body};
use crate::config::Config;
use crate::rules::{BodyView, LOGS_PATH, Rule, VALIDATE_PATH, parse_rules};

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

/// What the intake has seen since it started or was last reset.
#[derive(Default)]
pub(crate) struct State {
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

/// The mock intake: its settings and its state, shared by all connections.
pub(crate) struct Intake {
    pub(crate) config: Config,
    pub(crate) state: Mutex<State>,
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
    fn take_rule(&self, path: &str, seq: u64, encoding: &str, body: BodyView<'_>) -> Option<Rule> {
        let mut state = self.lock();
        let rule = state
            .rules
            .iter_mut()
            .find(|r| r.matches(path, seq, encoding, body))?;
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

    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
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
                let zstd = !this.config.no_zstd;
                let decoded = wire.and_then(|w| decode_body(&encoding, &w, zstd));
                let view = match &decoded {
                    Ok(b) => BodyView::Decoded(b),
                    Err(e) if e.status == 413 => BodyView::TooLarge,
                    Err(_) => BodyView::Unknown,
                };
                let rule = this.take_rule(LOGS_PATH, seq, &encoding, view);
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
        let rule = self.take_rule(VALIDATE_PATH, seq, "", BodyView::Unknown);
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

/// The body of every response.
pub(crate) type Body = Full<Bytes>;
