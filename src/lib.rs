//! # fluent-bit-datadog
//!
//! A Fluent Bit output plugin, loaded with `-e libfluent_bit_datadog.so` through the host's
//! Go-style proxy interface and named `datadog_logs` in `[OUTPUT]`, that ships logs to
//! Datadog's log intake (`POST https://http-intake.logs.<site>/api/v2/logs`).
//!
//! ## The layers, in the order a record goes through them
//!
//! - `host`: the `FLBPlugin*` exports, the panic guard, the instance registry and the host's
//!   optional API (logger, cmetrics), with `host::bindings`; the only unsafe code.
//! - `instance`: one `[OUTPUT]` instance; its flush runs on a thread with a normal stack and
//!   goes site -> encode -> deliver -> verdict -> events.
//! - `detect`: which Datadog site the flush sends to, or the search for the key's site.
//! - `encode`: chunk bytes -> records (`decode`) -> Datadog objects (`map`, strings by `json`)
//!   -> requests of at most 1000 objects and 5 MB (`batch`), each compressed (`body`).
//! - `deliver`: the HTTP client over rustls (`client`, `tls`), bounded 400/413 splitting and
//!   the memory of accepted requests (`split`), and the pure `verdict`: OK, RETRY or ERROR.
//! - `observe`: every log line and counter (`events`), the host's metrics (`metrics`),
//!   Fluent Bit-style lines with secrets redacted (`log`).
//! - `config`: the option table -> a validated `Config` (`options`); the Datadog sites.
//!
//! ## Contracts
//!
//! What others rely on, and where each is defined:
//! - **The C interface**: the exported `FLBPluginRegister`, `FLBPluginInit`,
//!   `FLBPluginFlushCtx`, `FLBPluginExitCtx` and `FLBPluginExit` (`src/host/mod.rs`), with the
//!   layouts of `include/flb_proxy.h`; the plugin registers as `datadog_logs`. Return codes are
//!   Fluent Bit's `FLB_OK`, `FLB_RETRY`, `FLB_ERROR`. This is the only public surface Fluent Bit
//!   uses; the library is linked `-z now -z nodelete` and loads on glibc >= 2.17.
//! - **The option names**: the table `OPTIONS` in `src/config/options.rs`; the README's option table
//!   and the example configurations are checked against it (`tests/readme_options.rs`,
//!   `tests/examples.rs`).
//! - **The log lines**: Fluent Bit's format, `[time] [level] [output:datadog_logs:NAME] text`;
//!   each line's text is written in one place, `src/observe/events.rs` (and the Init lines in
//!   `src/instance.rs`), which tests assert. The threshold is the instance's `Log_Level` on
//!   Fluent Bit >= 2.0, or `FLUENT_BIT_DATADOG_LOG_LEVEL`.
//! - **The metrics**: `fluentbit_datadog_logs_*`, defined in `src/observe/metrics.rs`.
//! - **The mock intake's control API** (`POST /mock/rules`, `POST /mock/reset`,
//!   `GET /mock/received`, `GET /mock/health`): `mock-intake/src/main.rs`, used by the tests
//!   through `test-support`.
//!
//! Every module is private to the crate. [`internals`] is the one surface for the crate's own
//! tests, benches and fuzz target: the stages of the record's path they drive directly. It is
//! not a stable API. Unsafe code is denied everywhere but in `host`.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod config;
mod deliver;
mod detect;
mod encode;
#[cfg(feature = "test-hooks")]
mod fault;
mod host;
mod instance;
// Measurement only (feature `library-path`, see Cargo.toml): the library path, compiled from
// its one copy in benches/, which names this crate as the bench and tests do.
#[cfg(feature = "library-path")]
extern crate self as fluent_bit_datadog;
#[cfg(feature = "library-path")]
#[path = "../benches/library_path/mod.rs"]
mod library_path;
mod observe;

/// The stages of the record's path, for the crate's own tests, benches and fuzz target.
///
/// Fluent Bit uses only the C interface; nothing here is a stable API.
pub mod internals {
    /// Objects -> requests within Datadog's limits (see `src/batch.rs`).
    pub mod batch {
        pub use crate::encode::batch::*;
    }
    /// Request bodies compressed with zstd or gzip (see `src/compress.rs`).
    pub mod compress {
        pub use crate::encode::body::*;
    }
    /// Chunk bytes -> records (see `src/decode.rs`).
    pub mod decode {
        pub use crate::encode::decode::*;
    }
    /// Record -> one Datadog log object (see `src/map/mod.rs`).
    pub mod map {
        pub use crate::encode::map::*;
    }
    /// The `[OUTPUT]` options and the validated `Config` (see `src/options.rs`).
    pub mod options {
        pub use crate::config::options::*;
    }
}

#[cfg(all(test, feature = "bindgen"))]
mod bindings_current {
    /// The committed bindings must match what bindgen makes of `include/flb_proxy.h`.
    #[test]
    fn committed_bindings_are_current() {
        let fresh = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));
        let committed = include_str!("host/bindings.rs");
        assert_eq!(
            committed.trim(),
            fresh.trim(),
            "src/host/bindings.rs is stale: copy $OUT_DIR/bindings.rs over src/host/bindings.rs"
        );
    }
}
