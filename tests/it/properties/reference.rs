//! A reference for plain attributes, written from the module documentation of `map`.

use fluent_bit_datadog::internals::map::{MAX_DEPTH, NESTING_MARKER};
use std::collections::HashSet;
use test_support::msgpack::Mp;

pub(super) fn ref_json(m: &Mp, depth: usize, in_key: bool, out: &mut String) {
    let json_str = |s: &str| serde_json::to_string(s).unwrap();
    match m {
        Mp::Nil => out.push_str("null"),
        Mp::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Mp::UInt(n) => out.push_str(&n.to_string()),
        Mp::Int(n) => out.push_str(&n.to_string()),
        Mp::F32(f) => ref_float(*f as f64, out),
        Mp::F64(f) => ref_float(*f, out),
        Mp::Str(b) | Mp::Bin(b) => out.push_str(&json_str(&String::from_utf8_lossy(b))),
        Mp::Ext(0, d) if d.len() == 8 => {
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as i64;
            let nanos = u32::from_be_bytes([d[4], d[5], d[6], d[7]]).min(999_999_999) as i64;
            out.push_str(&(secs * 1000 + (nanos + 500_000) / 1_000_000).to_string());
        }
        Mp::Ext(t, d) => {
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&json_str(&format!("ext:{t}:{hex}")));
        }
        Mp::Arr(_) | Mp::Map(_) if depth >= MAX_DEPTH => out.push_str(&json_str(NESTING_MARKER)),
        Mp::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ref_json(v, depth + 1, in_key, out);
            }
            out.push(']');
        }
        Mp::Map(pairs) => {
            out.push('{');
            let mut seen = HashSet::new();
            let key_depth = if in_key { MAX_DEPTH } else { depth + 1 };
            for (k, v) in pairs {
                let k = ref_key(k, key_depth);
                if !seen.insert(k.clone()) {
                    continue;
                }
                if seen.len() > 1 {
                    out.push(',');
                }
                out.push_str(&json_str(&k));
                out.push(':');
                ref_json(v, depth + 1, in_key, out);
            }
            out.push('}');
        }
    }
}

fn ref_float(f: f64, out: &mut String) {
    if f.is_finite() {
        // Shortest round-trip form (as a key, the text itself matters: 1e300, not 1e+300).
        out.push_str(ryu::Buffer::new().format_finite(f));
    } else {
        out.push_str("null");
    }
}

/// The text of a key: a string as it is, an integer in decimal, anything else its JSON text.
pub(super) fn ref_key(k: &Mp, depth: usize) -> String {
    match k {
        Mp::Str(b) | Mp::Bin(b) => String::from_utf8_lossy(b).into_owned(),
        Mp::UInt(n) => n.to_string(),
        Mp::Int(n) => n.to_string(),
        other => {
            let mut t = String::new();
            ref_json(other, depth, true, &mut t);
            match serde_json::from_str::<String>(&t) {
                Ok(s) if t.starts_with('"') => s,
                _ => t,
            }
        }
    }
}
