//! One test per rule of the mapping (see the module documentation of `map`).
//!
//! Records are built with a tiny msgpack writer ([`M`](test_support::msgpack::Mp)) because bin, ext and non-string keys
//! cannot be expressed through serde. Every object a test produces goes through
//! [`parse_checked`], which rejects invalid JSON and duplicate keys at any depth (a plain
//! `serde_json::Value` would silently keep the last duplicate).

use super::*;
use crate::encode::decode::Timestamp;
use serde_json::{Value as J, json};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// msgpack builder

use test_support::msgpack::{Mp as M, enc_into, event_time};

fn s(t: &str) -> M {
    M::Str(t.as_bytes().to_vec())
}

/// A map with string keys, in the given order (duplicates allowed).
fn obj(pairs: &[(&str, M)]) -> M {
    M::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn enc(m: &M) -> Vec<u8> {
    let mut out = Vec::new();
    enc_into(m, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// configuration and mapping

const KEY: &str = "0123456789abcdef0123456789abcdef";
const TAG: &str = "app.firelens";
const T0: Timestamp = Timestamp {
    secs: 1_732_400_000,
    nanos: 123_456_789,
};

fn cfg(pairs: &[(&str, &str)]) -> Config {
    let mut p: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.insert("apikey".into(), KEY.into());
    Config::from_lookup(|k| p.get(k).cloned(), |_| None).unwrap()
}

/// Maps one record; the output buffer starts with bytes of an earlier object, which must be
/// left alone. Returns the result and the new object's bytes.
fn map_raw(c: &Config, time: Timestamp, meta: &[u8], body: &M) -> (Mapped, Vec<u8>) {
    let body = enc(body);
    let rec = Record {
        time,
        meta,
        body: &body,
    };
    let prefix = b"[{\"earlier\":1},";
    let mut out = prefix.to_vec();
    let r = Mapper::new(c).write(&rec, TAG, &mut Scratch::default(), &mut out);
    assert_eq!(
        &out[..prefix.len()],
        prefix,
        "bytes before the object changed"
    );
    (r, out[prefix.len()..].to_vec())
}

/// Maps one record that must be written, and returns it parsed (after the duplicate check).
fn map_meta(c: &Config, time: Timestamp, meta: &M, body: &M) -> J {
    let (r, out) = map_raw(c, time, &enc(meta), body);
    assert_eq!(
        r,
        Mapped::Written {
            truncated: false,
            partial: false
        }
    );
    parse_checked(&out)
}

fn map_with(c: &Config, body: &M) -> J {
    let (r, out) = map_raw(c, T0, &[], body);
    assert_eq!(
        r,
        Mapped::Written {
            truncated: false,
            partial: false
        }
    );
    parse_checked(&out)
}

/// Maps with the default configuration minus the date attribute, so the object is exactly
/// what the record makes of itself.
fn map_plain(body: &M) -> J {
    map_with(&cfg(&[("json_date_key", "false")]), body)
}

fn tags(o: &J) -> Vec<&str> {
    o["ddtags"].as_str().expect("ddtags").split(',').collect()
}

// ---------------------------------------------------------------------------------------------
// JSON checker: validity and no duplicate keys at any depth

use test_support::json::NoDup;

/// Parses `bytes` as JSON after checking it has no duplicate key at any depth.
fn parse_checked(bytes: &[u8]) -> J {
    if let Err(e) = serde_json::from_slice::<NoDup>(bytes) {
        panic!(
            "{e}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
        );
    }
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn checker_rejects_duplicates_and_bad_json() {
    assert!(serde_json::from_slice::<NoDup>(br#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
    assert!(serde_json::from_slice::<NoDup>(br#"{"a":1,"a":2}"#).is_err());
    assert!(serde_json::from_slice::<NoDup>(br#"[{"x":{"a":1,"\u0061":2}}]"#).is_err());
    assert!(serde_json::from_slice::<NoDup>(br#"{"a":1"#).is_err());
    assert!(serde_json::from_slice::<NoDup>(b"\"\xff\"").is_err());
}

/// Maps `rec` with `shared` (which may hold tags and a plan from earlier records) and with a
/// fresh Scratch, and checks the objects are the same bytes.
fn same_as_alone(m: &Mapper, rec: &Record, shared: &mut Scratch, what: &str) {
    let (mut reused, mut fresh) = (Vec::new(), Vec::new());
    m.write(rec, TAG, shared, &mut reused);
    m.write(rec, TAG, &mut Scratch::default(), &mut fresh);
    assert_eq!(
        String::from_utf8_lossy(&reused),
        String::from_utf8_lossy(&fresh),
        "{what}"
    );
}

mod attrs;
mod otlp;
mod partial;
mod tags;
mod template;
mod truncate;
mod value;

/// One huge record grows the buffers far past what ordinary records need; shrinking above a
/// limit gives that back, and ordinary records keep theirs (and their plan).
#[test]
fn scratch_gives_back_memory_after_a_huge_record() {
    const LIMIT: usize = 4 << 20;
    let m = Mapper::new(&cfg(&[]));
    let small = enc(&obj(&[("log", s("hello")), ("a", M::UInt(1))]));
    let rec = |body| Record {
        time: T0,
        meta: &[],
        body,
    };
    let mut scratch = Scratch::default();
    for _ in 0..3 {
        m.write(&rec(&small), TAG, &mut scratch, &mut Vec::new());
    }
    let ordinary = scratch.capacity_bytes();
    scratch.shrink_to(LIMIT);
    assert_eq!(
        scratch.capacity_bytes(),
        ordinary,
        "an ordinary record's buffers are kept"
    );

    let huge = enc(&M::Map(
        (0..350_000)
            .map(|i| (s(&format!("k{i}")), M::UInt(i)))
            .collect(),
    ));
    let mut out = Vec::new();
    m.write(&rec(&huge), TAG, &mut scratch, &mut out);
    let grown = scratch.capacity_bytes();
    scratch.shrink_to(LIMIT);
    let after = scratch.capacity_bytes();
    println!(
        "scratch: ordinary {ordinary} B, after a 350,000-key record {grown} B, shrunk {after} B"
    );
    assert!(grown > LIMIT, "{grown}");
    assert!(after <= LIMIT, "{after}");
    // Still works, with the same bytes as a fresh one.
    same_as_alone(&m, &rec(&small), &mut scratch, "after shrinking");
}
