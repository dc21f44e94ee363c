//! Any msgpack value as JSON: scalars, strings, arrays and maps with their keys, at any depth.
//!
//! The rules every value follows, at any depth: no map has duplicate keys (the first
//! occurrence wins); a key that is not a str or bin becomes a string (an array or map key its
//! JSON text, in which a key that is itself an array or map is cut); strings that are not
//! valid UTF-8 are kept lossily; NaN and infinities become `null`; a nested EventTime becomes
//! epoch milliseconds; nesting deeper than [`MAX_DEPTH`] is replaced by [`NESTING_MARKER`].

use super::{MAX_DEPTH, NESTING_MARKER};
use crate::encode::decode::{Entry, Reader, Value};
use std::collections::HashSet;

/// Above this many keys in one map, duplicates are found with a hash set.
const LINEAR_DEDUP_MAX: usize = 32;

/// Writes a key (its text, or a raw msgpack value), unless the same key text was already written
/// in this map (entries `keys[base..]`). Returns false for a duplicate; the caller then
/// truncates what was written and skips the value.
pub(super) fn write_any_key(
    out: &mut Vec<u8>,
    keys: &mut Vec<(usize, usize)>,
    base: usize,
    key: Key<'_>,
    tmp: &mut Vec<u8>,
    depth: usize,
    seen: &mut HashSet<Box<[u8]>>,
) -> bool {
    if keys.len() > base {
        out.push(b',');
    }
    let a = out.len();
    match key {
        Key::Text(text) => write_str(out, text),
        Key::Raw(raw) => write_key_text(out, raw, tmp, depth),
    }
    let b = out.len();
    let new = &out[a..b];
    let dup = if keys.len() - base <= LINEAR_DEDUP_MAX {
        keys[base..].iter().any(|&(x, y)| &out[x..y] == new)
    } else {
        // `seen` holds this map's keys from the first time it is needed on, so each key
        // costs one lookup (rebuilding a set per key made a large map quadratic).
        if seen.is_empty() {
            seen.extend(keys[base..].iter().map(|&(x, y)| Box::from(&out[x..y])));
        }
        !seen.insert(Box::from(new))
    };
    if dup {
        return false;
    }
    keys.push((a, b));
    out.push(b':');
    true
}

/// A map key to write: its text, or its raw msgpack value when it is not a str or bin.
#[derive(Clone, Copy)]
pub(super) enum Key<'a> {
    Text(&'a [u8]),
    Raw(&'a [u8]),
}

/// Writes a map key given as a raw msgpack value as a JSON string.
fn write_key_text(out: &mut Vec<u8>, raw_key: &[u8], tmp: &mut Vec<u8>, depth: usize) {
    match Reader::new(raw_key).read() {
        Ok(Value::Str(b) | Value::Bin(b)) => write_str(out, b),
        Ok(Value::UInt(n)) => write_str(out, itoa::Buffer::new().format(n).as_bytes()),
        Ok(Value::Int(n)) => write_str(out, itoa::Buffer::new().format(n).as_bytes()),
        _ => {
            // Any other key: its JSON text, as a string (one that is a string already, such
            // as an ext's, as it is). Within that text an array or map key is cut like a
            // value too deep: escaping keys within keys would double the size per level.
            tmp.clear();
            write_value(&mut Reader::new(raw_key), tmp, depth, &mut Vec::new(), true);
            let text = std::mem::take(tmp);
            if text.first() == Some(&b'"') {
                out.extend_from_slice(&text);
            } else {
                write_str(out, &text);
            }
            *tmp = text;
        }
    }
}

/// Writes one msgpack value as JSON. `depth` counts the containers around it; `in_key` when
/// the value is (part of) a map key being written as text.
pub(super) fn write_value(
    r: &mut Reader,
    out: &mut Vec<u8>,
    depth: usize,
    keys: &mut Vec<(usize, usize)>,
    in_key: bool,
) {
    let v = match r.read() {
        Ok(v) => v,
        Err(_) => {
            out.extend_from_slice(b"null");
            return;
        }
    };
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::UInt(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Float(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes())
        }
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::Str(b) | Value::Bin(b) => write_str(out, b),
        Value::Ext(0, d) if d.len() == 8 => {
            // A nested EventTime: epoch milliseconds.
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as i64;
            let nanos = u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as i64;
            write_i64(
                out,
                secs * 1000 + (nanos.min(999_999_999) + 500_000) / 1_000_000,
            );
        }
        Value::Ext(t, d) => {
            let mut s = format!("ext:{t}:");
            for b in d {
                s.push_str(&format!("{b:02x}"));
            }
            write_str(out, s.as_bytes());
        }
        Value::Array(n) | Value::Map(n) if depth >= MAX_DEPTH => {
            let items = if matches!(v, Value::Map(_)) { 2 * n } else { n };
            for _ in 0..items {
                if r.skip().is_err() {
                    break;
                }
            }
            write_str(out, NESTING_MARKER.as_bytes());
        }
        Value::Array(n) => {
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                write_value(r, out, depth + 1, keys, in_key);
            }
            out.push(b']');
        }
        Value::Map(n) => {
            out.push(b'{');
            let base = keys.len();
            let mut tmp = Vec::new();
            let mut seen = HashSet::new();
            let key_depth = if in_key { MAX_DEPTH } else { depth + 1 };
            for _ in 0..n {
                let mark = out.len();
                let Ok(raw_key) = r.raw_value() else {
                    break;
                };
                if write_any_key(
                    out,
                    keys,
                    base,
                    Key::Raw(raw_key),
                    &mut tmp,
                    key_depth,
                    &mut seen,
                ) {
                    write_value(r, out, depth + 1, keys, in_key);
                } else {
                    out.truncate(mark);
                    if r.skip().is_err() {
                        break;
                    }
                }
            }
            keys.truncate(base);
            out.push(b'}');
        }
    }
}

/// Writes the value of a top-level attribute: its text as a JSON string, or any other value
/// as JSON.
pub(super) fn write_entry_value(
    body: &[u8],
    e: Entry,
    out: &mut Vec<u8>,
    keys: &mut Vec<(usize, usize)>,
) {
    match e.text_in(body) {
        Some(text) => write_str(out, text),
        None => {
            let raw = &body[e.value.0..e.value.1];
            write_value(&mut Reader::new(raw), out, 1, keys, false);
        }
    }
}

/// Writes an integer as JSON.
pub(super) fn write_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes bytes as a JSON string; invalid UTF-8 sequences become U+FFFD.
pub(crate) fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    crate::encode::json::write_str(out, bytes);
}
