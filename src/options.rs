//! Reading and validating the `[OUTPUT]` options into a typed, immutable [`Config`].
//!
//! Option names follow Fluent Bit's built-in `datadog` output where it has them, so switching
//! is a change of `Name`. Values are looked up through a function (the host's
//! `output_get_property` in production, a map in tests) and the environment through another,
//! so every rule here is testable without a host. A bad value fails with an [`OptionError`]
//! naming the option, the value (never an API key's) and what is accepted.

use crate::site::{self, Site};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Every option key the plugin reads, in the order they are documented.
pub const KEYS: &[&str] = &[
    "apikey",
    "api_key",
    "apikey_file",
    "site",
    "endpoint",
    "dd_service",
    "dd_source",
    "dd_hostname",
    "dd_tags",
    "dd_message_key",
    "provider",
    "include_tag_key",
    "tag_key",
    "json_date_key",
    "compress",
    "compression_level",
    "timeout",
    "proxy",
    "tls_ca_file",
    "tls_verify",
    "max_concurrency",
    "site_probe",
];

/// Default of `compression_level`, chosen from `cargo bench` (see README, "Performance").
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 3;
/// Default of `max_concurrency`: requests of one flush in flight at once. Measured with
/// scripts/bench.sh (7-request chunks, 50 ms intake): 1 -> 0.39 s a chunk, 4 -> 0.13 s,
/// 8 -> 0.08 s (about one round trip) at the same CPU; a 2 MB chunk rarely needs more.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Default whole-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the site (and so the intake) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A site named by `site` or `DD_SITE`.
    Site(Site),
    /// `endpoint`: a full URL of a relay or a local intake.
    Endpoint(String),
    /// Nothing named a site: find the one that accepts the key.
    AutoDetect,
}

/// Body compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `Content-Encoding: gzip` at the given level (1-9).
    Gzip(u32),
    /// Plain JSON.
    None,
}

/// The validated settings of one plugin instance.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The Datadog API key. Never printed: `Debug` redacts it.
    pub api_key: String,
    /// Which intake to send to.
    pub destination: Destination,
    /// Base URLs of the APIs probed to find the key's site; `None` means Datadog's sites.
    /// Set by the undocumented test option `site_probe` (`name=url,name=url`).
    pub probe_override: Option<Vec<(String, String)>>,
    /// `service` written when a record has none.
    pub service: Option<String>,
    /// `ddsource` written when a record has none.
    pub source: Option<String>,
    /// `hostname` written when a record has none.
    pub hostname: Option<String>,
    /// Static tags (`dd_tags`), already split and trimmed.
    pub tags: Vec<String>,
    /// The record key that becomes `message`.
    pub message_key: String,
    /// `provider ecs`: turn FireLens metadata into Datadog tags.
    pub ecs: bool,
    /// Attribute name for the Fluent Bit tag, when `include_tag_key` is on.
    pub tag_key: Option<String>,
    /// Attribute for the record time in epoch milliseconds; `None` when disabled.
    pub date_key: Option<String>,
    /// Body compression.
    pub compression: Compression,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Explicit HTTP proxy URL; otherwise the environment's.
    pub proxy: Option<String>,
    /// Extra CA bundle (PEM) to trust.
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_verify` (default on): check the intake's certificate. Off accepts any.
    pub tls_verify: bool,
    /// Requests of one flush in flight at once.
    pub max_concurrency: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"***")
            .field("destination", &self.destination)
            .field("service", &self.service)
            .field("source", &self.source)
            .field("hostname", &self.hostname)
            .field("tags", &self.tags)
            .field("message_key", &self.message_key)
            .field("ecs", &self.ecs)
            .field("tag_key", &self.tag_key)
            .field("date_key", &self.date_key)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("proxy", &self.proxy)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_verify", &self.tls_verify)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

/// A rejected option: which, the offending value (or a description of it), and what is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// The option's name.
    pub option: String,
    /// The value as given, or a description when the value is secret.
    pub value: String,
    /// What the option accepts.
    pub accepted: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid option '{}' = {}: accepted: {}",
            self.option, self.value, self.accepted
        )
    }
}

impl std::error::Error for OptionError {}

fn bad(option: &str, value: &str, accepted: impl Into<String>) -> OptionError {
    OptionError {
        option: option.to_string(),
        value: format!("'{value}'"),
        accepted: accepted.into(),
    }
}

/// Parses Fluent Bit's boolean words (`flb_utils_bool`): true/on/yes, false/off/no.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Parses a duration: `30s`, `500ms`, `2m`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
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
pub fn endpoint_url(text: &str) -> Option<String> {
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
pub fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

impl Config {
    /// Builds a configuration from the instance's options (`prop`) and the environment (`env`).
    ///
    /// `prop` must return `None` for an absent option (the host also returns NULL for an empty
    /// value). `apikey_file` and `tls_ca_file` are read here, once.
    pub fn from_lookup(
        prop: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, OptionError> {
        let get = |k: &str| prop(k).filter(|v| !v.trim().is_empty());
        if prop("apikey")
            .or_else(|| prop("api_key"))
            .is_some_and(|v| v.trim().is_empty())
        {
            return Err(OptionError {
                option: "apikey".into(),
                value: "(empty)".into(),
                accepted: "a non-empty Datadog API key".into(),
            });
        }
        let api_key = read_api_key(&get, &env)?;
        let destination = if let Some(e) = get("endpoint") {
            Destination::Endpoint(endpoint_url(&e).ok_or_else(|| {
                bad(
                    "endpoint",
                    &e,
                    "an http:// or https:// URL such as http://127.0.0.1:8080 (`/api/v2/logs` is appended when it has no path)",
                )
            })?)
        } else if let Some(s) = get("site") {
            Destination::Site(Site::parse(&s).ok_or_else(|| bad("site", &s, site::accepted()))?)
        } else if let Some(s) = env("DD_SITE").filter(|v| !v.trim().is_empty()) {
            Destination::Site(
                Site::parse(&s).ok_or_else(|| bad("site (from DD_SITE)", &s, site::accepted()))?,
            )
        } else {
            Destination::AutoDetect
        };
        let provider_ecs = match get("provider") {
            None => false,
            Some(p) if p.trim().eq_ignore_ascii_case("ecs") => true,
            Some(p) => return Err(bad("provider", &p, "ecs")),
        };
        let include_tag = match get("include_tag_key") {
            None => false,
            Some(v) => parse_bool(&v)
                .ok_or_else(|| bad("include_tag_key", &v, "true/on/yes or false/off/no"))?,
        };
        let tag_key = include_tag.then(|| get("tag_key").unwrap_or_else(|| "tagkey".into()));
        let date_key = match get("json_date_key") {
            None => Some("timestamp".to_string()),
            Some(v) if parse_bool(&v) == Some(false) => None,
            Some(v) => Some(v.trim().to_string()),
        };
        let level = match get("compression_level") {
            None => DEFAULT_COMPRESSION_LEVEL,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=9).contains(n))
                .ok_or_else(|| bad("compression_level", &v, "an integer from 1 to 9"))?,
        };
        let compression = match get("compress") {
            None => Compression::Gzip(level),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => Compression::Gzip(level),
                "none" | "off" | "false" => Compression::None,
                _ => return Err(bad("compress", &v, "gzip or none")),
            },
        };
        let timeout = match get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(v) => parse_duration(&v).ok_or_else(|| {
                bad(
                    "timeout",
                    &v,
                    "a duration up to 1h such as 30s, 1500ms or 2m (a plain number is seconds)",
                )
            })?,
        };
        let proxy = match get("proxy") {
            None => None,
            Some(p) => {
                let ok = (p.starts_with("http://") || p.starts_with("https://"))
                    && ureq::Proxy::new(p.trim()).is_ok();
                if !ok {
                    return Err(bad(
                        "proxy",
                        &p,
                        "an HTTP proxy URL such as http://proxy.internal:3128",
                    ));
                }
                Some(p.trim().to_string())
            }
        };
        let tls_ca_file = match get("tls_ca_file") {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path.trim())
                    .map_err(|e| bad("tls_ca_file", &path, format!("a readable PEM file ({e})")))?;
                let certs = ureq::tls::parse_pem(&pem)
                    .filter_map(|i| match i {
                        Ok(ureq::tls::PemItem::Certificate(_)) => Some(()),
                        _ => None,
                    })
                    .count();
                if certs == 0 {
                    return Err(bad(
                        "tls_ca_file",
                        &path,
                        "a PEM file holding at least one CERTIFICATE",
                    ));
                }
                Some(PathBuf::from(path.trim()))
            }
        };
        let tls_verify = match get("tls_verify") {
            None => true,
            Some(v) => parse_bool(&v)
                .ok_or_else(|| bad("tls_verify", &v, "on/true/yes or off/false/no"))?,
        };
        let max_concurrency = match get("max_concurrency") {
            None => DEFAULT_MAX_CONCURRENCY,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| bad("max_concurrency", &v, "an integer from 1 to 64"))?,
        };
        let probe_override = match get("site_probe") {
            None => None,
            Some(v) => Some(parse_probe_list(&v).ok_or_else(|| {
                bad(
                    "site_probe",
                    &v,
                    "name=http://host:port pairs separated by commas",
                )
            })?),
        };
        let message_key = get("dd_message_key")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "log".to_string());
        Ok(Config {
            api_key,
            destination,
            probe_override,
            service: get("dd_service"),
            source: get("dd_source"),
            hostname: get("dd_hostname"),
            tags: get("dd_tags").map(|t| split_tags(&t)).unwrap_or_default(),
            message_key,
            ecs: provider_ecs,
            tag_key,
            date_key,
            compression,
            timeout,
            proxy,
            tls_ca_file,
            tls_verify,
            max_concurrency,
        })
    }

    /// The timeout for establishing a connection: shorter than the whole-request timeout.
    pub fn connect_timeout(&self) -> Duration {
        (self.timeout / 2).min(Duration::from_secs(10))
    }
}

fn parse_probe_list(text: &str) -> Option<Vec<(String, String)>> {
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

fn read_api_key(
    get: &impl Fn(&str) -> Option<String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, OptionError> {
    let (key, from) = if let Some(k) = get("apikey").or_else(|| get("api_key")) {
        (k, "apikey")
    } else if let Some(path) = get("apikey_file") {
        let text = std::fs::read_to_string(path.trim()).map_err(|e| {
            bad(
                "apikey_file",
                &path,
                format!("a readable file holding the API key ({e})"),
            )
        })?;
        (text, "apikey_file")
    } else if let Some(k) = env("DD_API_KEY") {
        (k, "apikey (from DD_API_KEY)")
    } else {
        return Err(OptionError {
            option: "apikey".into(),
            value: "(not set)".into(),
            accepted: "a Datadog API key, given as `apikey`, `apikey_file` or the DD_API_KEY environment variable".into(),
        });
    };
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(OptionError {
            option: from.into(),
            value: "(empty)".into(),
            accepted: "a non-empty Datadog API key".into(),
        });
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OptionError {
            option: from.into(),
            value: format!("(a {}-character value, not shown)", key.chars().count()),
            accepted: "a Datadog API key: printable ASCII with no blanks (32 hex digits)".into(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, OptionError> {
        cfg_env(pairs, &[])
    }

    fn cfg_env(pairs: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Config, OptionError> {
        let p: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let e: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| p.get(k).cloned(), |k| e.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[("apikey", KEY)]).unwrap();
        assert_eq!(c.api_key, KEY);
        assert_eq!(c.destination, Destination::AutoDetect);
        assert_eq!(c.message_key, "log");
        assert_eq!(c.date_key.as_deref(), Some("timestamp"));
        assert_eq!(c.tag_key, None);
        assert!(!c.ecs);
        assert_eq!(c.compression, Compression::Gzip(DEFAULT_COMPRESSION_LEVEL));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(c.connect_timeout() < c.timeout);
        assert_eq!(c.max_concurrency, DEFAULT_MAX_CONCURRENCY);
    }

    #[test]
    fn api_key_sources_in_order() {
        assert_eq!(cfg(&[("api_key", KEY)]).unwrap().api_key, KEY);
        let env = [("DD_API_KEY", "fromenv")];
        assert_eq!(cfg_env(&[], &env).unwrap().api_key, "fromenv");
        assert_eq!(cfg_env(&[("apikey", KEY)], &env).unwrap().api_key, KEY);
        let dir = std::env::temp_dir().join(format!("fbdd-key-{}", std::process::id()));
        std::fs::write(&dir, format!("  {KEY}\n")).unwrap();
        let path = dir.to_str().unwrap();
        assert_eq!(
            cfg_env(&[("apikey_file", path)], &env).unwrap().api_key,
            KEY
        );
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn missing_empty_and_unreadable_keys_fail() {
        let e = cfg(&[]).unwrap_err();
        assert_eq!(e.option, "apikey");
        let e = cfg(&[("apikey_file", "/nonexistent/key")]).unwrap_err();
        assert_eq!(e.option, "apikey_file");
        assert!(e.to_string().contains("/nonexistent/key"));
        let e = cfg_env(&[], &[("DD_API_KEY", "   ")]).unwrap_err();
        assert!(e.to_string().contains("empty"));
        let e = cfg(&[("apikey", "abc def")]).unwrap_err();
        assert!(!e.to_string().contains("abc def"));
    }

    #[test]
    fn site_option_env_and_endpoint() {
        let c = cfg(&[("apikey", KEY), ("site", "AP1")]).unwrap();
        assert_eq!(
            c.destination,
            Destination::Site(Site::parse("ap1").unwrap())
        );
        let c = cfg_env(&[("apikey", KEY)], &[("DD_SITE", "datadoghq.eu")]).unwrap();
        assert_eq!(
            c.destination,
            Destination::Site(Site::parse("eu1").unwrap())
        );
        let c = cfg_env(
            &[("apikey", KEY), ("site", "us5")],
            &[("DD_SITE", "datadoghq.eu")],
        )
        .unwrap();
        assert_eq!(
            c.destination,
            Destination::Site(Site::parse("us5").unwrap())
        );
        let c = cfg(&[("apikey", KEY), ("endpoint", "http://127.0.0.1:8080")]).unwrap();
        assert_eq!(
            c.destination,
            Destination::Endpoint("http://127.0.0.1:8080/api/v2/logs".into())
        );
        let c = cfg(&[("apikey", KEY), ("endpoint", "https://relay:9/custom/path")]).unwrap();
        assert_eq!(
            c.destination,
            Destination::Endpoint("https://relay:9/custom/path".into())
        );
    }

    #[test]
    fn unknown_site_lists_every_site() {
        let e = cfg(&[("apikey", KEY), ("site", "datadoghq.co")]).unwrap_err();
        assert_eq!(e.option, "site");
        let text = e.to_string();
        assert!(text.contains("'datadoghq.co'"));
        for s in crate::site::SITES {
            assert!(text.contains(s.domain) && text.contains(s.short), "{text}");
        }
        let e = cfg_env(&[("apikey", KEY)], &[("DD_SITE", "mars")]).unwrap_err();
        assert!(e.option.contains("DD_SITE"));
    }

    #[test]
    fn each_bad_value_names_option_value_and_accepted() {
        let cases: &[(&str, &str, &str)] = &[
            ("endpoint", "ftp://x", "http://"),
            ("endpoint", "127.0.0.1:8080", "http://"),
            ("provider", "eks", "ecs"),
            ("include_tag_key", "maybe", "true"),
            ("compress", "zstd", "gzip or none"),
            ("compression_level", "0", "1 to 9"),
            ("compression_level", "10", "1 to 9"),
            ("compression_level", "fast", "1 to 9"),
            ("timeout", "soon", "duration"),
            ("timeout", "-5s", "duration"),
            ("timeout", "0", "duration"),
            ("proxy", "socks5://p:1080", "HTTP proxy URL"),
            ("tls_ca_file", "/nonexistent.pem", "readable PEM"),
            ("tls_verify", "maybe", "on/true/yes or off/false/no"),
            ("max_concurrency", "0", "1 to 64"),
            ("site_probe", "nourl", "name=http"),
        ];
        for (opt, val, accepted) in cases {
            let e = cfg(&[("apikey", KEY), (opt, val)]).unwrap_err();
            assert_eq!(&e.option, opt, "{e}");
            let text = e.to_string();
            assert!(text.contains(&format!("'{val}'")), "{text}");
            assert!(text.contains(accepted), "{text}");
            assert!(!text.contains(KEY));
        }
    }

    #[test]
    fn mapping_options() {
        let c = cfg(&[
            ("apikey", KEY),
            ("dd_service", "web"),
            ("dd_source", "nginx"),
            ("dd_hostname", "h1"),
            ("dd_tags", " env:prod, ,team:a ,"),
            ("dd_message_key", "msg"),
            ("provider", "ECS"),
            ("include_tag_key", "On"),
            ("json_date_key", "off"),
            ("compress", "none"),
            ("timeout", "1500ms"),
        ])
        .unwrap();
        assert_eq!(c.service.as_deref(), Some("web"));
        assert_eq!(c.source.as_deref(), Some("nginx"));
        assert_eq!(c.hostname.as_deref(), Some("h1"));
        assert_eq!(c.tags, ["env:prod", "team:a"]);
        assert_eq!(c.message_key, "msg");
        assert!(c.ecs);
        assert_eq!(c.tag_key.as_deref(), Some("tagkey"));
        assert_eq!(c.date_key, None);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.timeout, Duration::from_millis(1500));
        let c = cfg(&[
            ("apikey", KEY),
            ("include_tag_key", "true"),
            ("tag_key", "fluent_tag"),
            ("json_date_key", "ts"),
        ])
        .unwrap();
        assert_eq!(c.tag_key.as_deref(), Some("fluent_tag"));
        assert_eq!(c.date_key.as_deref(), Some("ts"));
    }

    #[test]
    fn tls_verify_is_on_unless_turned_off() {
        assert!(cfg(&[("apikey", KEY)]).unwrap().tls_verify);
        assert!(
            cfg(&[("apikey", KEY), ("tls_verify", "Yes")])
                .unwrap()
                .tls_verify
        );
        assert!(
            !cfg(&[("apikey", KEY), ("tls_verify", "off")])
                .unwrap()
                .tls_verify
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), None);
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = cfg(&[("apikey", KEY)]).unwrap();
        assert!(!format!("{c:?}").contains(KEY));
    }
}
