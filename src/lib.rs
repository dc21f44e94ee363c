//! # fluent-bit-datadog
//!
//! A Fluent Bit output plugin, loaded with `-e libfluent_bit_datadog.so` through the host's
//! Go-style proxy interface and named `datadog_logs` in `[OUTPUT]`, that ships logs to
//! Datadog's log intake (`POST https://http-intake.logs.<site>/api/v2/logs`).
//!
//! ## The layers, in the order a record goes through them
//!
//! Each layer imports only the layers below it (in this list, those after it):
//! - `host`: the `FLBPlugin*` exports, the panic guard and the instance registry (`mod.rs`),
//!   the host's optional API, logger and cmetrics (`api`), and `bindings`; the only unsafe code.
//! - `instance`: one `[OUTPUT]` instance; its flush runs on a thread with a normal stack and
//!   goes site -> encode -> resume -> deliver -> verdict -> events.
//! - `detect`: the instance's `SiteState`: the configured site, or the search for the key's.
//! - `observe`: every log line and counter (`events`), the host's metrics (`metrics`),
//!   Fluent Bit-style lines with secrets redacted (`log`).
//! - `deliver`: the HTTP client over rustls (`client`, `tls`), sending a chunk's batches with
//!   bounded 400/413 splitting (`split`), what a retried chunk already delivered (`resume`,
//!   on disk with `resume_file`),
//!   and the pure `verdict`: OK, RETRY or ERROR.
//! - `encode`: chunk bytes -> records (`decode`) -> Datadog objects (`map`, strings by `json`)
//!   -> batches of at most 1000 objects and 5 MB (`batch`), each a request body made by the
//!   instance's `Encoder` (`body`: the codec and the zstd -> gzip fallback).
//! - `config`: the option table -> a validated `Config` (`options`, one value's parsers in
//!   `values`); the Datadog sites (`sites`).
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
//!   each line's text is written in one place, `src/observe/events.rs`, which tests assert. The threshold is the instance's `Log_Level` on
//!   Fluent Bit >= 2.0, or `FLUENT_BIT_DATADOG_LOG_LEVEL`.
//! - **The metrics**: `fluentbit_datadog_logs_*`, defined in `src/observe/metrics.rs`.
//! - **The mock intake's control API** (`POST /mock/rules`, `POST /mock/reset`,
//!   `GET /mock/received`, `GET /mock/health`): `mock-intake/`, used by the tests
//!   through `test-support`.
//!
//! Every module is private to the crate. [`internals`] is the one surface for the crate's own
//! tests, benches and fuzz target: the stages of the record's path they drive directly. It is
//! not a stable API. Unsafe code is denied everywhere but in `host`.

#![warn(missing_docs)]
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

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
#[allow(unreachable_pub)]
#[path = "../benches/library_path/mod.rs"]
mod library_path;
mod observe;

/// The stages of the record's path, for the crate's own tests, benches and fuzz target.
///
/// Fluent Bit uses only the C interface; nothing here is a stable API.
pub mod internals {
    /// Objects -> batches within Datadog's limits (see `src/encode/batch.rs`).
    pub mod batch {
        pub use crate::encode::batch::{
            Batch, Batcher, BuildStats, MAX_BYTES, MAX_OBJECTS, build, build_encoded, recycle,
        };
    }
    /// Request bodies: the encoder, zstd and gzip (see `src/encode/body.rs`).
    pub mod compress {
        pub use crate::encode::body::{Codec, Compressors, Encoded, Encoder, decode, gzip, zstd};
    }
    /// Chunk bytes -> records, and the msgpack reader under them (see `src/encode/decode.rs`,
    /// `src/encode/decode/msgpack.rs`).
    pub mod decode {
        pub use crate::encode::decode::{
            GROUP_END, GROUP_START, Item, Reader, Record, Timestamp, Value, chunk, count,
        };
    }
    /// Record -> one Datadog log object (see `src/encode/map/mod.rs`).
    pub mod map {
        pub use crate::encode::map::{
            MAX_DEPTH, MAX_LOG_BYTES, Mapped, Mapper, NESTING_MARKER, Scratch, TRUNCATION_MARKER,
            push_ecs_tags, push_tag,
        };
    }
    /// The `[OUTPUT]` options and the validated `Config` (see `src/config/options.rs`).
    pub mod options {
        pub use crate::config::options::{
            Compression, Config, DEFAULT_COMPRESSION, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL,
            OPTIONS, OptionSpec, option,
        };
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
