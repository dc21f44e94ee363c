//! Log lines in Fluent Bit's own format, written to stderr, with secrets redacted.
//!
//! A proxy plugin cannot use the host's logger on every version (Fluent Bit 1.9's api table
//! has no `log_print`), so lines are formatted as Fluent Bit formats them:
//! `[2024/11/24 20:32:18] [ warn] [output:datadog_logs:datadog_logs.0] message`.
//! Every line passes through [`redact`], which replaces each API key the plugin knows of, so
//! a key can never reach the log even through a server's response body.
//! The threshold comes from the environment variable `FLUENT_BIT_DATADOG_LOG_LEVEL`
//! (`error`, `warn`, `info` (default), `debug`, `trace`): Fluent Bit's `log_level` is consumed
//! by its core and never reaches a proxy plugin.
//!
//! On Fluent Bit >= 2.0 an instance's lines go through the host's logger instead (see
//! [`route`]): its `Log_Level` decides through `output_log_check` (unless the environment
//! variable is set, which then decides), and `log_print` writes the line, so it follows
//! `Log_File` and has the host's own timestamp. The line is redacted on both paths.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Severity of a log line, ordered from most to least severe (Fluent Bit's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Something failed and data may be lost.
    Error = 1,
    /// Something the user should look at.
    Warn = 2,
    /// Start-up and shutdown facts.
    Info = 3,
    /// One line per flush.
    Debug = 4,
    /// Per-request detail.
    Trace = 5,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => " warn",
            Level::Info => " info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// Parses a level name as accepted in `FLUENT_BIT_DATADOG_LOG_LEVEL`.
    pub(crate) fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => None,
        }
    }
}

/// The environment variable that sets the plugin's log threshold.
pub(crate) const LEVEL_ENV: &str = "FLUENT_BIT_DATADOG_LOG_LEVEL";

/// The level set by the environment variable, if it is set to a level name.
fn env_threshold() -> Option<Level> {
    static LEVEL: OnceLock<Option<Level>> = OnceLock::new();
    *LEVEL.get_or_init(|| std::env::var(LEVEL_ENV).ok().and_then(|v| Level::parse(&v)))
}

fn threshold() -> Level {
    env_threshold().unwrap_or(Level::Info)
}

/// The host's logger for one output instance (Fluent Bit >= 2.0's `output_log_check` and
/// `log_print`), implemented where the host is called.
pub(crate) trait HostLogger: Send + Sync {
    /// True when the instance's `Log_Level` admits `level`.
    fn enabled(&self, level: Level) -> bool;
    /// Writes `line` (already prefixed and redacted) at `level`.
    fn print(&self, level: Level, line: &str);
}

type Routes = RwLock<Vec<(String, Arc<dyn HostLogger>)>>;

fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| RwLock::new(Vec::new()))
}

/// From now on, writes the lines of `instance` through the host's `logger`.
pub(crate) fn route(instance: &str, logger: Arc<dyn HostLogger>) {
    let mut list = routes().write().unwrap_or_else(|e| e.into_inner());
    list.retain(|(n, _)| n != instance);
    list.push((instance.to_string(), logger));
}

/// Writes the lines of `instance` to stderr again (its host logger is going away).
pub(crate) fn unroute(instance: &str) {
    let mut list = routes().write().unwrap_or_else(|e| e.into_inner());
    list.retain(|(n, _)| n != instance);
}

fn route_of(instance: &str) -> Option<Arc<dyn HostLogger>> {
    let list = routes().read().unwrap_or_else(|e| e.into_inner());
    list.iter()
        .find(|(n, _)| n == instance)
        .map(|(_, l)| l.clone())
}

/// True when lines of `level` may be written (for some instance); lets callers skip
/// formatting work.
pub(crate) fn enabled(level: Level) -> bool {
    level <= threshold()
        || (env_threshold().is_none()
            && routes()
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(_, l)| l.enabled(level)))
}

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Keys at least this long are redacted wherever they occur; shorter ones only as a whole
/// token, so a (mistaken) one-letter key cannot turn every `a` of every line into `***`.
const SUBSTRING_MIN: usize = 6;

/// Registers a secret (an API key) that must never appear in a log line, whatever its length.
pub(crate) fn add_secret(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut list = secrets().write().unwrap_or_else(|e| e.into_inner());
    if !list.iter().any(|s| s == secret) {
        list.push(secret.to_string());
    }
}

/// Replaces every registered secret in `text` by `***`: anywhere for a key of
/// 6 characters or more (`SUBSTRING_MIN`), as a whole token (not next to a letter or digit)
/// for a shorter one.
pub(crate) fn redact(text: &str) -> String {
    let list = secrets().read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in list.iter() {
        if !out.contains(s.as_str()) {
            continue;
        }
        out = if s.len() >= SUBSTRING_MIN {
            out.replace(s.as_str(), "***")
        } else {
            replace_tokens(&out, s)
        };
    }
    out
}

/// Replaces the occurrences of `token` in `text` that no ASCII letter or digit touches.
fn replace_tokens(text: &str, token: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in text.match_indices(token) {
        let end = i + token.len();
        if !(word(text[..i].chars().next_back()) || word(text[end..].chars().next())) {
            out.push_str(&text[last..i]);
            out.push_str("***");
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Writes one line for the plugin instance `instance` (e.g. `datadog_logs.0`) at `level`.
pub(crate) fn write(level: Level, instance: &str, message: &str) {
    if let Some(host) = route_of(instance) {
        let admitted = match env_threshold() {
            Some(t) => level <= t,
            None => host.enabled(level),
        };
        if admitted {
            let line = format!("[output:datadog_logs:{instance}] {message}");
            host.print(level, &redact(&line));
        }
        return;
    }
    if level > threshold() {
        return;
    }
    // Only the message is redacted: the timestamp and prefix hold no secret, and a short key
    // must not mangle them.
    let line = format!(
        "[{}] [{}] [output:datadog_logs:{}] {}\n",
        timestamp(SystemTime::now()),
        level.label(),
        instance,
        redact(message)
    );
    #[cfg(test)]
    captured::push(&line);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Test hook: the lines written by the current thread, so unit tests can check them.
#[cfg(test)]
pub(crate) mod captured {
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn push(line: &str) {
        LINES.with(|l| l.borrow_mut().push(line.to_string()));
    }

    /// Takes the lines the current thread wrote since the last call.
    pub(crate) fn take() -> Vec<String> {
        LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}

/// `YYYY/MM/DD HH:MM:SS` in UTC, as Fluent Bit prints it in a container.
fn timestamp(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// What a rate-limited line is about: the kind of event, and a number that tells lines of
/// the same kind apart when they deserve their own line (an HTTP status; 0 when none does).
///
/// Typed rather than built from the line's text, so the number of keys is bounded by the code,
/// not by what servers and sockets answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// The kind of event (`"retry"`, `"drop"`, `"malformed"`, ...).
    pub kind: &'static str,
    /// An HTTP status, or 0.
    pub status: u16,
}

impl Key {
    /// The key of `kind` lines about `status`.
    pub(crate) const fn with_status(kind: &'static str, status: u16) -> Key {
        Key { kind, status }
    }
}

impl From<&'static str> for Key {
    fn from(kind: &'static str) -> Key {
        Key { kind, status: 0 }
    }
}

/// Writes each distinct failure at most once per interval, counting the repeats in between.
///
/// The [`Key`] names the kind of failure (e.g. `retry` with status 500); when a suppressed key
/// is written again its line ends with `(N more since the last report)`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    seen: Mutex<HashMap<Key, (Instant, u64)>>,
}

impl RateLimiter {
    /// A limiter that lets each key through once per `interval`.
    pub(crate) fn new(interval: Duration) -> RateLimiter {
        RateLimiter {
            interval,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Writes the line `message` makes unless a line with the same `key` was written within
    /// the interval (the message is made only when it is written).
    pub(crate) fn write_with(
        &self,
        level: Level,
        instance: &str,
        key: impl Into<Key>,
        message: impl FnOnce() -> String,
    ) {
        if !enabled(level) {
            return;
        }
        if let Some(suffix) = self.admit(key.into(), Instant::now()) {
            write(level, instance, &format!("{}{suffix}", message()));
        }
    }

    /// The lines held back since their key was last written, and how many, by key (in
    /// order of kind and status): what the exit line reports, so that a failure whose
    /// repeats never came back after the interval is still told.
    pub(crate) fn held_back(&self) -> Vec<(Key, u64)> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut held: Vec<(Key, u64)> = seen
            .iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(k, (_, n))| (*k, *n))
            .collect();
        held.sort_by_key(|(k, _)| (k.kind, k.status));
        held
    }

    /// Decides whether a line may be written now; `Some(suffix)` to write it.
    fn admit(&self, key: impl Into<Key>, now: Instant) -> Option<String> {
        let key = key.into();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(&key) {
            Some((last, repeats)) if now.duration_since(*last) < self.interval => {
                *repeats += 1;
                None
            }
            Some((last, repeats)) => {
                let suffix = if *repeats > 0 {
                    format!(" ({} more since the last report)", *repeats)
                } else {
                    String::new()
                };
                *last = now;
                *repeats = 0;
                Some(suffix)
            }
            None => {
                if seen.len() > 1024 {
                    seen.clear();
                }
                seen.insert(key, (now, 0));
                Some(String::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_matches_fluent_bit_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_732_400_000);
        assert_eq!(timestamp(t), "2024/11/23 22:13:20");
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000/02/29 00:00:00");
    }

    #[test]
    fn redact_replaces_registered_secrets() {
        add_secret("abcdef0123456789secretkey");
        assert_eq!(
            redact("key=abcdef0123456789secretkey!"),
            "key=***!".to_string()
        );
    }

    #[test]
    fn short_keys_are_redacted_as_whole_tokens() {
        add_secret("k9");
        add_secret("Q");
        assert_eq!(
            redact("bad key k9: {\"k\":\"k9\"} k9k9 ak9 k9"),
            "bad key ***: {\"k\":\"***\"} k9k9 ak9 ***"
        );
        assert_eq!(redact("Q=1 max Q"), "***=1 max ***");
        assert_eq!(redact("é Q é"), "é *** é");
    }

    #[test]
    fn rate_limiter_counts_repeats() {
        let rl = RateLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(rl.admit("a", t0), Some(String::new()));
        assert_eq!(rl.admit("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(rl.admit("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(rl.admit("b", t0), Some(String::new()));
        // The same kind about another status is another key.
        assert_eq!(
            rl.admit(Key::with_status("a", 500), t0),
            Some(String::new())
        );
        assert_eq!(rl.admit(Key::with_status("a", 500), t0), None);
        assert_eq!(
            rl.admit("a", t0 + Duration::from_secs(61)),
            Some(" (2 more since the last report)".to_string())
        );
    }

    #[test]
    fn level_parse_accepts_names() {
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse("warning"), Some(Level::Warn));
        assert_eq!(Level::parse("loud"), None);
    }
}
