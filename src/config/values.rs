//! The parsers of single option values, their secret-keeping types, and a refused value's echo.

use std::fmt;
use std::time::Duration;

/// Why a parser refused a value: by default the table's accepted text says it all.
#[derive(Debug, Default)]
pub(super) struct Reject {
    /// Replaces the echoed value (e.g. `(empty)`).
    pub(super) value: Option<String>,
    /// Added to the accepted text (e.g. an I/O error, the list of sites).
    pub(super) detail: Option<String>,
}

impl Reject {
    pub(super) fn detail(d: impl Into<String>) -> Reject {
        Reject {
            value: None,
            detail: Some(d.into()),
        }
    }
}

/// Replaces the `user:password@` of every URL in `text` by `***@`, so a proxy or endpoint
/// URL can be printed. Text without `://` is taken as one URL without its scheme.
pub(crate) fn redact_url_userinfo(text: &str) -> String {
    fn authority(rest: &str) -> String {
        let end = rest.find(['/', '?', '#', ',', ' ']).unwrap_or(rest.len());
        let (auth, tail) = rest.split_at(end);
        match auth.rfind('@') {
            Some(at) => format!("***{}{tail}", &auth[at..]),
            None => rest.to_string(),
        }
    }
    if !text.contains("://") {
        return authority(text);
    }
    let mut parts = text.split("://");
    let mut out = parts.next().unwrap_or_default().to_string();
    for p in parts {
        out.push_str("://");
        // Only the authority's end bounds the userinfo: a later URL in `p` begins after a
        // ',' and its own `://` is handled by the next part.
        out.push_str(&authority(p));
    }
    out
}

pub(super) fn describe_secret(value: &str) -> String {
    match value.trim().chars().count() {
        0 => "(empty)".to_string(),
        n => format!("(a {n}-character value, not shown)"),
    }
}

/// The Datadog API key. Its `Debug` never shows it; [`ApiKey::expose`] is for the request
/// header and for registering it with the log redaction.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key (for tests and benchmarks; Init validates keys through the option table).
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

pub(super) fn check_key(text: &str) -> Result<ApiKey, Reject> {
    let key = text.trim();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Reject::default());
    }
    Ok(ApiKey(key.to_string()))
}

/// An explicit HTTP proxy, parsed once at Init. `Debug` hides its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    url: String,
    parsed: ureq::Proxy,
}

impl Proxy {
    pub(super) fn parse(text: &str) -> Option<Proxy> {
        let url = text.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return None;
        }
        let parsed = ureq::Proxy::new(url).ok()?;
        Some(Proxy {
            url: url.to_string(),
            parsed,
        })
    }

    /// The proxy for the HTTP agent.
    pub fn to_ureq(&self) -> ureq::Proxy {
        self.parsed.clone()
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({})", redact_url_userinfo(&self.url))
    }
}

/// The certificates of `tls_ca_file`, DER-encoded, read once at Init.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CaCertificates(pub Vec<Vec<u8>>);

impl fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} certificate(s)", self.0.len())
    }
}

/// Parses Fluent Bit's boolean words (`flb_utils_bool`): true/on/yes, false/off/no.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Parses a duration: `30s`, `500ms`, `2m`, or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim().to_ascii_lowercase();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t.as_str(), "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// Checks a base URL and appends `/api/v2/logs` unless it already has a path.
pub(crate) fn endpoint_url(text: &str) -> Option<String> {
    let t = text.trim();
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c));
    if !host_ok {
        return None;
    }
    if path.is_empty() || path == "/" {
        Some(format!(
            "{}{}/api/v2/logs",
            &t[..t.len() - rest.len()],
            authority
        ))
    } else {
        Some(t.to_string())
    }
}

/// Splits a comma-separated tag list, trimming blanks and dropping empty entries.
pub(crate) fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn parse_probe_list(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, url) = item.split_once('=')?;
        let url = url.trim().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return None;
        }
        out.push((name.trim().to_string(), url.to_string()));
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests;
