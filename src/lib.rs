//! # fluent-bit-datadog
//!
//! A Fluent Bit output plugin, loaded with `-e libfluent_bit_datadog.so` through the host's
//! Go-style proxy interface and named `datadog_logs` in `[OUTPUT]`, that ships logs to
//! Datadog's log intake (`POST https://http-intake.logs.<site>/api/v2/logs`).
//!
//! The path of a record, one module per step:
//!
//! 1. [`ffi`]: Fluent Bit calls `FLBPluginFlushCtx` with a chunk of msgpack records;
//! 2. [`worker`]: the chunk is handed to a thread with a normal stack (not the host's 24 KiB
//!    coroutine stack), which waits for nothing but the result;
//! 3. [`decode`]: records are read in place, `[TS, BODY]` and `[[TS, META], BODY]` alike;
//! 4. [`map`]: each record becomes one Datadog object, written straight into the JSON payload
//!    ([`json`] escapes its strings);
//! 5. [`batch`]: objects are cut into requests of at most 1000 objects and 5 MB;
//! 6. [`flush`] and [`send`] (TLS set up by [`tls`]): requests go out in parallel, gzipped; 400/413 are split, 5xx and
//!    network errors keep the chunk for Fluent Bit's retry, and accepted requests are
//!    remembered so the retry sends only what is missing.
//!
//! [`options`] and [`site`] turn `[OUTPUT]` options into a validated configuration;
//! [`detect`] finds the key's Datadog site when none is given; [`log`] writes Fluent Bit-style
//! lines with the API key redacted; [`stats`] counts what happened.

#![warn(missing_docs)]

#[allow(missing_docs, non_camel_case_types, non_upper_case_globals, dead_code)]
mod bindings;

pub mod batch;
pub mod decode;
pub mod detect;
pub mod ffi;
pub mod flush;
pub mod json;
pub mod log;
pub mod map;
pub mod options;
pub mod send;
pub mod site;
pub mod stats;
pub mod tls;
pub mod worker;

#[cfg(all(test, feature = "bindgen"))]
mod bindings_current {
    /// The committed bindings must match what bindgen makes of `include/flb_proxy.h`.
    #[test]
    fn committed_bindings_are_current() {
        let fresh = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));
        let committed = include_str!("bindings.rs");
        assert_eq!(
            committed.trim(),
            fresh.trim(),
            "src/bindings.rs is stale: copy $OUT_DIR/bindings.rs over it"
        );
    }
}
