//! Property tests over the stages of the record's path (`decode`, `map`, `batch`, `options`),
//! by subject:
//!
//! * [`records`]: arbitrary msgpack values wrapped as `[ts, body]` and `[[ts, meta], body]`
//!   records, under arbitrary mapping options: decoding and mapping never panic, and every
//!   object is valid JSON, at most 1 MB, with no duplicate key at any depth; a plain attribute
//!   comes out as the documented rules say (checked against [`reference`], a small reference
//!   written from the docs); records sharing keys map as they would alone;
//! * [`truncation`]: objects over 1 MB are cut to fit (messages, other strings, nested bulk);
//! * [`damaged`]: random overwrites, truncations and splices of the real fixtures: nothing
//!   panics, every batch is a valid JSON array within Datadog's limits, and every record whose
//!   bytes the damage did not touch still comes out, unless a record the damage made up
//!   swallowed it;
//! * [`rmpv`]: our reader and decoder against rmpv on valid msgpack in every header width.
//!
//! The generators are shared with the library path's tests (`support::strategies`).

mod damaged;
mod records;
mod reference;
mod rmpv;
mod truncation;

use crate::support::json::NoDup;
use fluent_bit_datadog::internals::batch::{self, Batch, BuildStats};
use fluent_bit_datadog::internals::decode;
use fluent_bit_datadog::internals::map::{MAX_LOG_BYTES, Mapped, Mapper, Scratch};
use fluent_bit_datadog::internals::options::Config;
use proptest::prelude::*;
use test_support::msgpack::{Mp, enc_into};

/// `cases` per property, times `PROPERTIES_SCALE` from the environment for a longer search
/// (e.g. `PROPERTIES_SCALE=50 cargo test --release --test it properties::`).
fn case_config(cases: u32) -> ProptestConfig {
    let scale = std::env::var("PROPERTIES_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig {
        cases: cases.saturating_mul(scale),
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

/// Maps one record with body `body` (a map) on its own: the result and the object's bytes.
fn map_alone(cfg: &Config, body: &Mp, time: decode::Timestamp) -> (Mapped, Vec<u8>) {
    let mut bytes = Vec::new();
    enc_into(body, &mut bytes);
    let rec = decode::Record {
        time,
        meta: &[],
        body: &bytes,
    };
    let mut out = Vec::new();
    let r = Mapper::new(cfg).write(&rec, "t", &mut Scratch::default(), &mut out);
    (r, out)
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(3000)]).into_owned()
}

/// Valid JSON with no duplicate key at any depth; returns it parsed.
fn parse_checked(bytes: &[u8]) -> serde_json::Value {
    if let Err(e) = serde_json::from_slice::<NoDup>(bytes) {
        panic!("{e}: {}", show(bytes));
    }
    serde_json::from_slice(bytes).unwrap()
}

/// One mapped object: a JSON object within the 1 MB limit, without duplicate keys.
fn check_object(bytes: &[u8]) -> serde_json::Value {
    assert!(bytes.len() <= MAX_LOG_BYTES, "{} bytes", bytes.len());
    let v = parse_checked(bytes);
    assert!(v.is_object(), "{}", show(bytes));
    v
}

/// Every batch is a JSON array of its objects, within Datadog's limits.
fn check_batches(batches: &[Batch], stats: &BuildStats) {
    let mut objects = 0;
    for b in batches {
        assert!(!b.is_empty());
        assert!(b.len() <= batch::MAX_OBJECTS);
        assert!(b.json.len() <= batch::MAX_BYTES, "{}", b.json.len());
        let v = parse_checked(&b.json);
        assert_eq!(v.as_array().map(Vec::len), Some(b.len()));
        for i in 0..b.len() {
            check_object(b.object(i));
        }
        objects += b.len();
    }
    assert_eq!(objects as u64, stats.records - stats.too_large);
}
