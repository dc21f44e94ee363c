//! Objects over 1 MB are cut to fit: the message, then the largest other strings, then
//! strings nested in arrays and maps; only an object that cutting strings cannot bring under
//! the limit is left out.

use super::reference::ref_json;
use super::{case_config, check_object, map_alone};
use crate::support::strategies::{config_of, key, leaf, text};
use fluent_bit_datadog::internals::decode;
use fluent_bit_datadog::internals::map::{MAX_LOG_BYTES, Mapped, TRUNCATION_MARKER};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use test_support::msgpack::Mp;

proptest! {
    #![proptest_config(case_config(16))]

    /// A message over 1 MB is cut on a character and escape boundary, ends with the marker,
    /// and the object fits.
    #[test]
    fn long_messages_are_cut_to_fit(
        unit in text().prop_filter("not empty", |t| !t.is_empty()),
        extra in prop::collection::vec((key(leaf()), leaf()), 0..6).prop_map(|mut e| {
            // Another message or log would be the message instead, or stay beside it.
            e.retain(|(k, _)| {
                !matches!(k, Mp::Str(b) | Mp::Bin(b) if b == b"message" || b == b"log")
            });
            e
        }),
        as_message in any::<bool>(),
        as_bin in any::<bool>(),
    ) {
        let reps = 1_300_000 / unit.len() + 1;
        let long: Vec<u8> = unit.repeat(reps);
        let name: &[u8] = if as_message { b"message" } else { b"log" };
        let value = if as_bin { Mp::Bin(long.clone()) } else { Mp::Str(long.clone()) };
        let mut pairs = vec![(Mp::Str(name.to_vec()), value)];
        pairs.extend(extra);
        let time = decode::Timestamp { secs: 1, nanos: 0 };
        let (r, out) = map_alone(&config_of(&[]), &Mp::Map(pairs), time);
        prop_assert_eq!(r, Mapped::Written { truncated: true, partial: false });
        let o = check_object(&out);
        let msg = o["message"].as_str().unwrap();
        let kept = msg.strip_suffix(TRUNCATION_MARKER).unwrap();
        prop_assert!(String::from_utf8_lossy(&long).starts_with(kept));
        prop_assert!(out.len() > MAX_LOG_BYTES - 16, "{}", out.len());
    }
}

proptest! {
    #![proptest_config(case_config(16))]

    /// An object over 1 MB made of strings: the message and then the largest other top-level
    /// strings are cut until it fits; every cut string ends with the marker and starts like
    /// the original, every other attribute is untouched.
    #[test]
    fn oversized_strings_are_cut_to_fit(
        strings in prop::collection::vec(
            (
                prop::sample::select(&["log", "message", "a", "b", "c", "d"][..]),
                text(),
                prop_oneof![0..64usize, 150_000..700_000usize],
                any::<bool>(),
            ),
            1..6,
        ),
        extra in prop::collection::vec(("x[0-9]", leaf()), 0..4),
    ) {
        let mut pairs = Vec::new();
        let mut want: HashMap<String, String> = HashMap::new();
        for (name, unit, len, as_bin) in &strings {
            let long = if unit.is_empty() { vec![b'u'; *len] } else {
                unit.repeat(len / unit.len() + 1)
            };
            want.entry(name.to_string()).or_insert_with(|| String::from_utf8_lossy(&long).into());
            let v = if *as_bin { Mp::Bin(long) } else { Mp::Str(long) };
            pairs.push((Mp::Str(name.as_bytes().to_vec()), v));
        }
        for (k, v) in &extra {
            pairs.push((Mp::Str(k.clone().into_bytes()), v.clone()));
        }
        let time = decode::Timestamp { secs: 1, nanos: 0 };
        let (r, out) = map_alone(&config_of(&[]), &Mp::Map(pairs), time);
        let o = check_object(&out);
        // `log` is the message unless the record has one of its own.
        if !want.contains_key("message") && let Some(m) = want.remove("log") {
            want.insert("message".into(), m);
        }
        let mut cut = 0;
        for (k, full) in &want {
            let got = o[k.as_str()].as_str().unwrap();
            if got != full {
                let kept = got.strip_suffix(TRUNCATION_MARKER).unwrap();
                prop_assert!(full.starts_with(kept), "{k}");
                cut += 1;
            }
        }
        // Only top-level strings are large, and they can all be cut: the object always fits.
        prop_assert_eq!(r, Mapped::Written { truncated: cut > 0, partial: false });
        if cut > 0 {
            prop_assert!(out.len() > MAX_LOG_BYTES - 8, "cut too much: {}", out.len());
        }
        let mut seen = HashSet::new();
        for (k, v) in &extra {
            if seen.insert(k) {
                let mut t = String::new();
                ref_json(v, 1, false, &mut t);
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                prop_assert_eq!(&o[k.as_str()], &v);
            }
        }
    }
}

/// Wraps `v` in containers, innermost first: a map `{"n": v, "k": 1}` or an array `[1, v]`.
fn wrap(v: Mp, shape: &[bool]) -> Mp {
    shape.iter().fold(v, |v, &in_map| {
        if in_map {
            Mp::Map(vec![
                (Mp::Str(b"n".to_vec()), v),
                (Mp::Str(b"k".to_vec()), Mp::UInt(1)),
            ])
        } else {
            Mp::Arr(vec![Mp::UInt(1), v])
        }
    })
}

/// The value at the end of the path `wrap` made, outermost first.
fn unwrap_json<'a>(mut v: &'a serde_json::Value, shape: &[bool]) -> &'a serde_json::Value {
    for &in_map in shape.iter().rev() {
        v = if in_map { &v["n"] } else { &v[1] };
    }
    v
}

proptest! {
    #![proptest_config(case_config(12))]

    /// An object over 1 MB whose bulk is in nested strings arrives cut, not dropped: every
    /// object either fits with the cut strings ending in the marker (each starting like the
    /// original, keys and structure untouched), or, only when it cannot be brought under the
    /// limit by cutting strings (here: a map of 200,000 keys), is left out.
    #[test]
    fn nested_bulk_is_cut_to_fit(
        strings in prop::collection::vec(
            (
                text(),
                prop_oneof![0..64usize, 150_000..700_000usize],
                prop::collection::vec(any::<bool>(), 1..5),
            ),
            1..6,
        ),
        many_keys in prop::sample::select(&[0usize, 0, 0, 200_000][..]),
    ) {
        let mut pairs = Vec::new();
        let mut want = Vec::new();
        for (i, (unit, len, shape)) in strings.iter().enumerate() {
            let long = if unit.is_empty() { vec![b'u'; *len] } else {
                unit.repeat(len / unit.len() + 1)
            };
            want.push((format!("a{i}"), shape.clone(), String::from_utf8_lossy(&long).into_owned()));
            pairs.push((Mp::Str(format!("a{i}").into_bytes()), wrap(Mp::Str(long), shape)));
        }
        if many_keys > 0 {
            let keys = (0..many_keys)
                .map(|i| (Mp::Str(format!("k{i}").into_bytes()), Mp::UInt(1)))
                .collect();
            pairs.push((Mp::Str(b"many".to_vec()), Mp::Map(keys)));
        }
        let time = decode::Timestamp { secs: 1, nanos: 0 };
        let (r, out) = map_alone(&config_of(&[]), &Mp::Map(pairs), time);
        if many_keys > 0 {
            prop_assert!(matches!(r, Mapped::TooLarge { bytes } if bytes > MAX_LOG_BYTES), "{r:?}");
            prop_assert!(out.is_empty());
            return Ok(());
        }
        let o = check_object(&out);
        let mut cut = 0;
        for (k, shape, full) in &want {
            let got = unwrap_json(&o[k.as_str()], shape).as_str().unwrap();
            if got != full {
                let kept = got.strip_suffix(TRUNCATION_MARKER).unwrap();
                prop_assert!(full.starts_with(kept), "{k}");
                cut += 1;
            }
            let mut skeleton = o[k.as_str()].clone();
            let mut expected = serde_json::to_value(wrap_json(shape)).unwrap();
            *unwrap_json_mut(&mut skeleton, shape) = serde_json::Value::Null;
            *unwrap_json_mut(&mut expected, shape) = serde_json::Value::Null;
            prop_assert_eq!(skeleton, expected);
        }
        prop_assert_eq!(r, Mapped::Written { truncated: cut > 0, partial: false });
        if cut > 0 {
            prop_assert!(out.len() > MAX_LOG_BYTES - 8, "cut too much: {}", out.len());
        }
    }
}

/// The JSON `wrap` gives, with a null leaf.
fn wrap_json(shape: &[bool]) -> serde_json::Value {
    shape.iter().fold(serde_json::Value::Null, |v, &in_map| {
        if in_map {
            serde_json::json!({"n": v, "k": 1})
        } else {
            serde_json::json!([1, v])
        }
    })
}

fn unwrap_json_mut<'a>(
    mut v: &'a mut serde_json::Value,
    shape: &[bool],
) -> &'a mut serde_json::Value {
    for &in_map in shape.iter().rev() {
        v = if in_map { &mut v["n"] } else { &mut v[1] };
    }
    v
}
