//! The fault rules: parsing `POST /mock/rules` and matching a rule to a request.

use std::time::Duration;

use serde_json::Value;

/// The intake endpoint (and the default path of a rule).
pub(crate) const LOGS_PATH: &str = "/api/v2/logs";
/// The API-key validation endpoint.
pub(crate) const VALIDATE_PATH: &str = "/api/v1/validate";

/// One fault-injection rule; all conditions present must hold for it to match.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Answer this status (with `body`) instead of processing the request.
    pub(crate) status: Option<u16>,
    /// Sleep this long before answering (or before processing normally).
    pub(crate) delay: Option<Duration>,
    /// Remaining uses; `None` = unlimited.
    pub(crate) times: Option<u64>,
    /// Matches only when the request sequence number is a multiple of this.
    every: Option<u64>,
    /// Matches only when the request sequence number is greater than this.
    after: Option<u64>,
    /// Matches only when the decompressed body is larger than this.
    over_bytes: Option<usize>,
    /// Matches only when the decompressed body contains this substring.
    poison: Option<String>,
    /// Matches only when the request's `Content-Encoding` is this (`identity` when absent).
    encoding: Option<String>,
    path: String,
    pub(crate) body: String,
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
    const KNOWN: [&str; 10] = [
        "status",
        "delay_ms",
        "times",
        "every",
        "after",
        "over_bytes",
        "poison",
        "encoding",
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
        encoding: string("encoding")?.map(|e| e.trim().to_ascii_lowercase()),
        path,
        body: string("body")?.unwrap_or_else(|| r#"{"errors":["injected"]}"#.into()),
    })
}

/// Parses `{"rules":[...]}` (a bare array is accepted too).
pub(crate) fn parse_rules(body: &[u8]) -> Result<Vec<Rule>, String> {
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
pub(crate) enum BodyView<'a> {
    /// No body (validate requests) or an undecodable one.
    Unknown,
    /// Decompressed body exceeded the size cap.
    TooLarge,
    Decoded(&'a [u8]),
}

impl Rule {
    pub(crate) fn matches(&self, path: &str, seq: u64, encoding: &str, body: BodyView<'_>) -> bool {
        if self.path != path || self.times == Some(0) {
            return false;
        }
        if let Some(e) = &self.encoding {
            let sent = if encoding.is_empty() {
                "identity"
            } else {
                encoding
            };
            if e != sent {
                return false;
            }
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
