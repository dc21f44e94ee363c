//! Reading and validating the `[OUTPUT]` options into a typed, immutable [`Config`].
//!
//! Every option is defined once, in [`OPTIONS`]: its name, aliases, documented default, the
//! text of what it accepts, and its parser. Validation, the README's option table (checked by
//! a test) and the check of the shipped example configurations (tests/examples.rs) all come
//! from that table. Option names follow Fluent Bit's built-in `datadog` output where it has
//! them, so switching is a change of `Name`. Values are looked up through a function (the
//! host's `output_get_property` in production, a map in tests) and the environment through
//! another, so every rule here is testable without a host. A bad value fails with an
//! [`OptionError`] naming the option, the value (never an API key, never a URL's password)
//! and what is accepted.
//!
//! Each parser validates its value and stores the parsed result in a draft; precedence
//! between options (`apikey` over `apikey_file` over `DD_API_KEY`, `endpoint` over `site`
//! over `DD_SITE`) and rules across options (`compression_level` per codec) are resolved once
//! every option is parsed. Nothing is parsed again later.

use crate::config::sites::{self, Site};
use crate::config::values::{
    ApiKey, CaCertificates, Proxy, Reject, check_key, describe_secret, endpoint_url, parse_bool,
    parse_duration, parse_probe_list, redact_url_userinfo, split_tags,
};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default of `compress`, chosen from `cargo bench` and `scripts/bench.sh` (see README,
/// "Performance"): zstd at [`DEFAULT_ZSTD_LEVEL`].
pub const DEFAULT_COMPRESSION: Compression = Compression::Zstd(DEFAULT_ZSTD_LEVEL);
/// Default `compression_level` for `compress zstd` (1-19), chosen from `cargo bench`.
pub const DEFAULT_ZSTD_LEVEL: u32 = 1;
/// Default `compression_level` for `compress gzip` (1-9), chosen from `cargo bench`; also
/// the level of the gzip fallback when the intake refuses zstd.
pub const DEFAULT_GZIP_LEVEL: u32 = 3;
/// Default of `max_concurrency`: requests of one flush in flight at once. Measured with
/// scripts/bench.sh (7-request chunks, 50 ms intake): 1 -> 0.39 s a chunk, 4 -> 0.13 s,
/// 8 -> 0.08 s (about one round trip) at the same CPU; a 2 MB chunk rarely needs more.
pub(crate) const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Default whole-request timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How an option's value may appear in an [`OptionError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// As given.
    Value,
    /// As given, with a URL's `user:password@` replaced (see [`redact_url_userinfo`]).
    Url,
    /// Never: only its length is described.
    Secret,
}

/// One option the plugin reads: the single definition its validation, the README's option
/// table and the example-configuration checks come from.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// The documented name, lowercase (Fluent Bit looks names up case-insensitively).
    pub name: &'static str,
    /// Other names read when `name` is absent.
    pub aliases: &'static [&'static str],
    /// The default as the README's option table states it.
    pub default: &'static str,
    /// What the option accepts, as error messages say it; the README row contains it too.
    /// Empty for free text, which nothing rejects.
    pub accepted: &'static str,
    /// How the value may be echoed in an error.
    pub shown: Shown,
    /// An undocumented option for tests only (absent from the README).
    pub test_only: bool,
    parse: fn(&str, &mut Draft) -> Result<(), Reject>,
}

impl OptionSpec {
    /// The name and the aliases.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    /// The error for `value`, described as [`OptionSpec::shown`] allows, under the name
    /// `label` (the option's name, or where the value came from).
    fn error(&self, label: &str, value: &str, why: Reject) -> OptionError {
        let value = match (why.value, self.shown) {
            (Some(v), _) => v,
            (None, Shown::Value) => format!("'{value}'"),
            (None, Shown::Url) => format!("'{}'", redact_url_userinfo(value)),
            (None, Shown::Secret) => describe_secret(value),
        };
        let accepted = match why.detail {
            Some(d) if self.accepted.is_empty() => d,
            Some(d) => format!("{}: {d}", self.accepted),
            None => self.accepted.to_string(),
        };
        OptionError {
            option: label.to_string(),
            value,
            accepted,
        }
    }
}

const FREE: &str = "";
const BOOL_WORDS: &str = "true/on/yes or false/off/no";

/// Every option the plugin reads, in the order the README documents them.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "apikey",
        aliases: &["api_key"],
        default: "`apikey_file`, then env `DD_API_KEY`",
        accepted: "a Datadog API key (printable ASCII, no blanks)",
        shown: Shown::Secret,
        test_only: false,
        parse: |v, d| {
            d.api_key = Some(check_key(v)?);
            Ok(())
        },
    },
    OptionSpec {
        name: "apikey_file",
        aliases: &[],
        default: "none",
        accepted: "a readable file holding the API key",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.api_key_file = Some(v.trim().to_string());
            Ok(())
        },
    },
    OptionSpec {
        name: "site",
        aliases: &[],
        default: "env `DD_SITE`, else auto-detected",
        accepted: "one of the Datadog sites, as a domain or a short name, case-insensitive",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let s = Site::parse(v).ok_or_else(|| Reject::detail(sites::accepted()))?;
            d.site = Some(s);
            Ok(())
        },
    },
    OptionSpec {
        name: "endpoint",
        aliases: &[],
        default: "none",
        accepted: "an http:// or https:// URL such as http://127.0.0.1:8080 (/api/v2/logs is appended when it has no path)",
        shown: Shown::Url,
        test_only: false,
        parse: |v, d| {
            d.endpoint = Some(endpoint_url(v).ok_or_else(Reject::default)?);
            Ok(())
        },
    },
    OptionSpec {
        name: "dd_service",
        aliases: &[],
        default: "none",
        accepted: FREE,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.service = Some(v.to_string());
            Ok(())
        },
    },
    OptionSpec {
        name: "dd_source",
        aliases: &[],
        default: "`ecs` with `provider ecs`, else none",
        accepted: FREE,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.source = Some(v.to_string());
            Ok(())
        },
    },
    OptionSpec {
        name: "dd_hostname",
        aliases: &[],
        default: "none",
        accepted: FREE,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.hostname = Some(v.to_string());
            Ok(())
        },
    },
    OptionSpec {
        name: "dd_tags",
        aliases: &[],
        default: "none",
        accepted: FREE,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.tags = split_tags(v);
            Ok(())
        },
    },
    OptionSpec {
        name: "dd_message_key",
        aliases: &[],
        default: "`log`",
        accepted: FREE,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.message_key = Some(v.trim().to_string());
            Ok(())
        },
    },
    OptionSpec {
        name: "provider",
        aliases: &[],
        default: "none",
        accepted: "ecs",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let ecs = v.trim().eq_ignore_ascii_case("ecs");
            d.ecs = ecs.then_some(true).ok_or_else(Reject::default)?;
            Ok(())
        },
    },
    OptionSpec {
        name: "include_tag_key",
        aliases: &[],
        default: "`false`",
        accepted: BOOL_WORDS,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.include_tag = parse_bool(v).ok_or_else(Reject::default)?;
            Ok(())
        },
    },
    OptionSpec {
        name: "tag_key",
        aliases: &[],
        default: "`tagkey`",
        accepted: FREE,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.tag_key = Some(v.to_string());
            Ok(())
        },
    },
    OptionSpec {
        name: "json_date_key",
        aliases: &[],
        default: "`timestamp`",
        accepted: FREE,
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let key = (parse_bool(v) != Some(false)).then(|| v.trim().to_string());
            d.date_key = Some(key);
            Ok(())
        },
    },
    OptionSpec {
        name: "compress",
        aliases: &[],
        default: "`zstd`",
        accepted: "zstd, gzip or none",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let codec = match v.trim().to_ascii_lowercase().as_str() {
                "zstd" => Codec::Zstd,
                "gzip" => Codec::Gzip,
                "none" | "off" | "false" => Codec::None,
                _ => return Err(Reject::default()),
            };
            d.codec = Some(codec);
            Ok(())
        },
    },
    OptionSpec {
        name: "compression_level",
        aliases: &[],
        default: "`1` for zstd, `3` for gzip",
        accepted: "1-9 for gzip, 1-19 for zstd",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let n = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=19).contains(n));
            d.level = Some((n.ok_or_else(Reject::default)?, v.to_string()));
            Ok(())
        },
    },
    OptionSpec {
        name: "timeout",
        aliases: &[],
        default: "`30s`",
        accepted: "a duration up to 1h such as 30s, 1500ms or 2m (a plain number is seconds)",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.timeout = Some(parse_duration(v).ok_or_else(Reject::default)?);
            Ok(())
        },
    },
    OptionSpec {
        name: "proxy",
        aliases: &[],
        default: "env `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, `NO_PROXY`",
        accepted: "an HTTP proxy URL such as http://proxy.internal:3128",
        shown: Shown::Url,
        test_only: false,
        parse: |v, d| {
            d.proxy = Some(Proxy::parse(v).ok_or_else(Reject::default)?);
            Ok(())
        },
    },
    OptionSpec {
        name: "resume_file",
        aliases: &[],
        default: "none (in memory only)",
        accepted: "an absolute file path in an existing, writable directory, one per [OUTPUT]",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let path = PathBuf::from(v.trim());
            match path.parent() {
                _ if !path.is_absolute() => Err(Reject::default()),
                Some(dir) if !dir.is_dir() => Err(Reject::detail(format!(
                    "{} is not a directory",
                    dir.display()
                ))),
                _ if path.is_dir() => Err(Reject::detail("it is a directory")),
                _ => {
                    d.resume_file = Some(path);
                    Ok(())
                }
            }
        },
    },
    OptionSpec {
        name: "tls_ca_file",
        aliases: &[],
        default: "system roots",
        accepted: "a readable PEM file holding at least one CERTIFICATE",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let path = PathBuf::from(v.trim());
            let pem = std::fs::read(&path).map_err(|e| Reject::detail(e.to_string()))?;
            let der: Vec<Vec<u8>> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.der().to_vec()),
                    _ => None,
                })
                .collect();
            if der.is_empty() {
                return Err(Reject::default());
            }
            d.tls_ca = Some((path, CaCertificates(der)));
            Ok(())
        },
    },
    OptionSpec {
        name: "tls_verify",
        aliases: &[],
        default: "`on`",
        accepted: "on/true/yes or off/false/no",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            d.tls_verify = Some(parse_bool(v).ok_or_else(Reject::default)?);
            Ok(())
        },
    },
    OptionSpec {
        name: "max_concurrency",
        aliases: &[],
        default: "`8`",
        accepted: "an integer from 1 to 64",
        shown: Shown::Value,
        test_only: false,
        parse: |v, d| {
            let n = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n));
            d.max_concurrency = Some(n.ok_or_else(Reject::default)?);
            Ok(())
        },
    },
    OptionSpec {
        name: "site_probe",
        aliases: &[],
        default: "none",
        accepted: "name=http://host:port pairs separated by commas",
        shown: Shown::Url,
        test_only: true,
        parse: |v, d| {
            d.probe = Some(parse_probe_list(v).ok_or_else(Reject::default)?);
            Ok(())
        },
    },
];

/// The option named `name` (or one of its aliases), case-insensitively.
pub fn option(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS
        .iter()
        .find(|o| o.names().any(|n| n.eq_ignore_ascii_case(name)))
}

/// The spec of an option this module names itself; the table holds all of them (tested).
fn spec(name: &str) -> &'static OptionSpec {
    option(name).unwrap_or(&OPTIONS[0])
}

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
    /// `Content-Encoding: zstd` at the given level (1-19); gzip once the intake refuses it.
    Zstd(u32),
    /// `Content-Encoding: gzip` at the given level (1-9).
    Gzip(u32),
    /// Plain JSON.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Zstd,
    Gzip,
    None,
}

/// The parsed options, before precedence and cross-option rules are applied.
#[derive(Debug, Default)]
struct Draft {
    api_key: Option<ApiKey>,
    api_key_file: Option<String>,
    site: Option<Site>,
    endpoint: Option<String>,
    service: Option<String>,
    source: Option<String>,
    hostname: Option<String>,
    tags: Vec<String>,
    message_key: Option<String>,
    ecs: bool,
    include_tag: bool,
    tag_key: Option<String>,
    date_key: Option<Option<String>>,
    codec: Option<Codec>,
    /// The level and its text as given (for the error when it does not fit the codec).
    level: Option<(u32, String)>,
    timeout: Option<Duration>,
    proxy: Option<Proxy>,
    tls_ca: Option<(PathBuf, CaCertificates)>,
    resume_file: Option<PathBuf>,
    tls_verify: Option<bool>,
    max_concurrency: Option<usize>,
    probe: Option<Vec<(String, String)>>,
}

/// The validated settings of one plugin instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The Datadog API key (its `Debug` is redacted).
    pub api_key: ApiKey,
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
    /// Explicit HTTP proxy; otherwise the environment's.
    pub proxy: Option<Proxy>,
    /// The path of the extra CA bundle (PEM) to trust.
    pub tls_ca_file: Option<PathBuf>,
    /// The certificates of `tls_ca_file` (empty without one), read at Init.
    pub tls_ca_certs: CaCertificates,
    /// `tls_verify` (default on): check the intake's certificate. Off accepts any.
    pub tls_verify: bool,
    /// Requests of one flush in flight at once.
    pub max_concurrency: usize,
    /// Where the accepted logs of chunks handed back for a retry are kept across a restart.
    pub resume_file: Option<PathBuf>,
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

impl Config {
    /// Builds a configuration from the instance's options (`prop`) and the environment (`env`).
    ///
    /// `prop` must return `None` for an absent option (the host also returns NULL for an empty
    /// value). Every option of [`OPTIONS`] is looked up (by name, then aliases) and parsed;
    /// `apikey_file` and `tls_ca_file` are read here, once.
    pub fn from_lookup(
        prop: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, OptionError> {
        let mut d = Draft::default();
        for spec in OPTIONS {
            let Some((name, value)) = spec.names().find_map(|n| prop(n).map(|v| (n, v))) else {
                continue;
            };
            // An empty value is unset, except for the key: an empty key is a mistake.
            if value.trim().is_empty() && spec.shown != Shown::Secret {
                continue;
            }
            let label = if spec.shown == Shown::Secret {
                spec.name
            } else {
                name
            };
            (spec.parse)(&value, &mut d).map_err(|why| spec.error(label, &value, why))?;
        }
        // A blank DD_API_KEY is a mistake worth an error; a blank DD_SITE is unset.
        let api_key = match (d.api_key.take(), &d.api_key_file, env("DD_API_KEY")) {
            (Some(k), _, _) => k,
            (None, Some(path), _) => {
                let file = spec("apikey_file");
                let text = std::fs::read_to_string(path)
                    .map_err(|e| file.error(file.name, path, Reject::detail(e.to_string())))?;
                check_key(&text).map_err(|why| spec("apikey").error(file.name, &text, why))?
            }
            (None, None, Some(k)) => check_key(&k)
                .map_err(|why| spec("apikey").error("apikey (from DD_API_KEY)", &k, why))?,
            (None, None, None) => {
                let why = Reject {
                    value: Some("(not set)".into()),
                    detail: Some(
                        "given as `apikey`, `apikey_file` or the DD_API_KEY environment variable"
                            .into(),
                    ),
                };
                return Err(spec("apikey").error("apikey", "", why));
            }
        };
        let dd_site = env("DD_SITE").filter(|v| !v.trim().is_empty());
        let destination = match (d.endpoint, d.site, dd_site) {
            (Some(e), _, _) => Destination::Endpoint(e),
            (None, Some(s), _) => Destination::Site(s),
            (None, None, Some(s)) => {
                let site = spec("site");
                let mut d2 = Draft::default();
                (site.parse)(&s, &mut d2)
                    .map_err(|why| site.error("site (from DD_SITE)", &s, why))?;
                d2.site.map_or(Destination::AutoDetect, Destination::Site)
            }
            (None, None, None) => Destination::AutoDetect,
        };
        let level = d.level.as_ref().map(|l| l.0);
        let compression = match d.codec {
            None => match level {
                None => DEFAULT_COMPRESSION,
                Some(level) => Compression::Zstd(level),
            },
            Some(Codec::Zstd) => Compression::Zstd(level.unwrap_or(DEFAULT_ZSTD_LEVEL)),
            Some(Codec::Gzip) => match &d.level {
                Some((n, text)) if *n > 9 => {
                    let spec = spec("compression_level");
                    return Err(spec.error(spec.name, text, Reject::default()));
                }
                _ => Compression::Gzip(level.unwrap_or(DEFAULT_GZIP_LEVEL)),
            },
            Some(Codec::None) => Compression::None,
        };
        let (tls_ca_file, tls_ca_certs) = d.tls_ca.unzip();
        Ok(Config {
            api_key,
            destination,
            probe_override: d.probe,
            service: d.service,
            source: d.source,
            hostname: d.hostname,
            tags: d.tags,
            message_key: d.message_key.unwrap_or_else(|| "log".to_string()),
            ecs: d.ecs,
            tag_key: d
                .include_tag
                .then(|| d.tag_key.unwrap_or_else(|| "tagkey".into())),
            date_key: d.date_key.unwrap_or_else(|| Some("timestamp".to_string())),
            compression,
            timeout: d.timeout.unwrap_or(DEFAULT_TIMEOUT),
            proxy: d.proxy,
            tls_ca_file,
            tls_ca_certs: tls_ca_certs.unwrap_or_default(),
            tls_verify: d.tls_verify.unwrap_or(true),
            max_concurrency: d.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY),
            resume_file: d.resume_file,
        })
    }

    /// The timeout for establishing a connection: shorter than the whole-request timeout.
    pub fn connect_timeout(&self) -> Duration {
        (self.timeout / 2).min(Duration::from_secs(10))
    }

    /// Settings that work but deserve a warning at Init, one line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let plain = match &self.destination {
            Destination::Endpoint(url) => url.strip_prefix("http://").map(|rest| (url, rest)),
            _ => None,
        };
        if let Some((url, rest)) = plain {
            let host = host_of_authority(rest.split('/').next().unwrap_or_default());
            if !is_loopback(host) {
                out.push(format!(
                    "endpoint {} is plain http:// to a host that is not loopback: the API key and the logs travel unencrypted; use https://",
                    redact_url_userinfo(url)
                ));
            }
        }
        if !self.tls_verify {
            out.push("tls_verify is off: the intake's certificate is not checked".to_string());
        }
        out
    }
}

/// The host of `host:port` or `[v6]:port`.
fn host_of_authority(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
