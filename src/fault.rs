//! Faults injected by tests, compiled only with the `test-hooks` feature (which `cargo test`
//! at the workspace root turns on and no release build does).
//!
//! `FLUENT_BIT_DATADOG_FAULT` names the fault:
//! * `panic`: every flush panics, with the API key in the message (the boundary must catch it
//!   and redact the key);
//! * `send_panic:N`: the thread making the process's N-th request to the intake (1-based)
//!   panics instead of sending it, as ureq's resolver does when the OS refuses a new thread.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Environment variable naming the fault.
pub(crate) const FAULT_ENV: &str = "FLUENT_BIT_DATADOG_FAULT";

/// The fault named by [`FAULT_ENV`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No fault.
    None,
    /// Every flush panics.
    FlushPanic,
    /// The N-th request's thread panics.
    SendPanic(u64),
}

/// Parses a [`FAULT_ENV`] value.
pub(crate) fn parse(value: &str) -> Fault {
    match value.split_once(':') {
        None if value == "panic" => Fault::FlushPanic,
        Some(("send_panic", n)) => n.parse().map_or(Fault::None, Fault::SendPanic),
        _ => Fault::None,
    }
}

/// The fault of this process, read once.
pub(crate) fn configured() -> Fault {
    static FAULT: OnceLock<Fault> = OnceLock::new();
    *FAULT.get_or_init(|| std::env::var(FAULT_ENV).map_or(Fault::None, |v| parse(&v)))
}

/// Called by a flush before its work: panics with `key` in the message under `panic`.
pub(crate) fn before_flush(key: &str) {
    if configured() == Fault::FlushPanic {
        panic!("injected fault for key {key}");
    }
}

/// Called before each request to the intake: panics on the N-th under `send_panic:N`.
pub(crate) fn before_request() {
    static REQUESTS: AtomicU64 = AtomicU64::new(0);
    if let Fault::SendPanic(n) = configured()
        && REQUESTS.fetch_add(1, Ordering::Relaxed) + 1 == n
    {
        panic!("injected fault: request {n}'s thread panics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parsed() {
        assert_eq!(parse("panic"), Fault::FlushPanic);
        assert_eq!(parse("send_panic:3"), Fault::SendPanic(3));
        assert_eq!(parse("send_panic:x"), Fault::None);
        assert_eq!(parse(""), Fault::None);
    }
}
