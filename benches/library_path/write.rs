//! Writing with serde_json: strings by its serializer, numbers and punctuation by its
//! `Formatter`, nested values transcoded from the rmp-serde deserializer with no
//! `serde_json::Value` between.

use super::read::Ext;
use super::{MAX_DEPTH, NESTING_MARKER};
use serde::Deserialize;
use serde::Serializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::ser::Formatter;
use std::collections::HashSet;
use std::fmt;

/// serde_json's compact `Formatter`, but for floats: serde_json (1.0.154) writes them with
/// zmij, whose exponents differ in form from ryu's, which the product writes (`1.5e+300`
/// against `1.5e300`: the same number, not the same bytes). A `Formatter` is serde_json's
/// own way to change such a choice; this one writes floats with ryu, so the objects are the
/// product's byte for byte.
pub(super) struct Fmt;

impl Formatter for Fmt {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f64) -> std::io::Result<()> {
        w.write_all(ryu::Buffer::new().format_finite(v).as_bytes())
    }
}

/// Writes bytes as a JSON string with serde_json's serializer; invalid UTF-8 becomes U+FFFD.
pub fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    // `from_utf8` first: `from_utf8_lossy` walks valid text several times slower.
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let _ = (&mut serde_json::Serializer::with_formatter(&mut *out, Fmt)).serialize_str(&text);
}

pub(super) fn put_raw(out: &mut Vec<u8>, s: &[u8]) {
    let _ = Fmt.write_raw_fragment(out, std::str::from_utf8(s).unwrap_or(""));
}

/// Above this many keys in one map, duplicates are found with a hash set.
const LINEAR_DEDUP_MAX: usize = 32;

/// After writing a key's JSON string at `out[a..]`: true when it is new in this map (keys
/// `keys[base..]`), which then records it and writes the colon.
pub(super) fn key_is_new(
    out: &mut Vec<u8>,
    keys: &mut Vec<(usize, usize)>,
    base: usize,
    a: usize,
    seen: &mut HashSet<Box<[u8]>>,
) -> bool {
    let b = out.len();
    let new = &out[a..b];
    let dup = if keys.len() - base <= LINEAR_DEDUP_MAX {
        keys[base..].iter().any(|&(x, y)| &out[x..y] == new)
    } else {
        if seen.is_empty() {
            seen.extend(keys[base..].iter().map(|&(x, y)| Box::from(&out[x..y])));
        }
        !seen.insert(Box::from(new))
    };
    if dup {
        return false;
    }
    keys.push((a, b));
    let _ = Fmt.end_object_key(out);
    let _ = Fmt.begin_object_value(out);
    true
}

/// Transcodes one value from the rmp-serde deserializer into JSON in `out`, with the
/// object's rules. `depth` counts the containers around it; `in_key` when the value is (part
/// of) a map key being written as text.
pub struct Json<'o> {
    out: &'o mut Vec<u8>,
    depth: usize,
    keys: &'o mut Vec<(usize, usize)>,
    in_key: bool,
}

impl<'de> DeserializeSeed<'de> for Json<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn write_ext(out: &mut Vec<u8>, ty: i8, data: &[u8]) {
    match <[u8; 8]>::try_from(data) {
        Ok(d) if ty == 0 => {
            // A nested EventTime: epoch milliseconds.
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as i64;
            let nanos = u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as i64;
            let _ = Fmt.write_i64(
                out,
                secs * 1000 + (nanos.min(999_999_999) + 500_000) / 1_000_000,
            );
        }
        _ => {
            let mut s = format!("ext:{ty}:");
            for b in data {
                s.push_str(&format!("{b:02x}"));
            }
            put_str(out, s.as_bytes());
        }
    }
}

impl<'de> Visitor<'de> for Json<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any msgpack value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        let _ = Fmt.write_null(self.out);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        let _ = Fmt.write_bool(self.out, v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        let _ = Fmt.write_u64(self.out, v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        let _ = Fmt.write_i64(self.out, v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        let _ = if v.is_finite() {
            Fmt.write_f64(self.out, v)
        } else {
            Fmt.write_null(self.out)
        };
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        put_str(self.out, v.as_bytes());
        Ok(())
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<(), E> {
        put_str(self.out, v);
        Ok(())
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let Ext(ty, data) = Ext::deserialize(d)?;
        write_ext(self.out, ty, data);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            while let Ok(Some(_)) = a.next_element::<IgnoredAny>() {}
            put_str(self.out, NESTING_MARKER.as_bytes());
            return Ok(());
        }
        let _ = Fmt.begin_array(self.out);
        let mut first = true;
        loop {
            let mark = self.out.len();
            let _ = Fmt.begin_array_value(self.out, first);
            let v0 = self.out.len();
            let elem = Json {
                out: &mut *self.out,
                depth: self.depth + 1,
                keys: &mut *self.keys,
                in_key: self.in_key,
            };
            match a.next_element_seed(elem) {
                Ok(Some(())) => first = false,
                Ok(None) => {
                    self.out.truncate(mark);
                    break;
                }
                // A value rmp-serde could not read to its end (nested past its recursion
                // limit): what was written of it stays, and the array is closed there.
                Err(_) => {
                    if self.out.len() == v0 {
                        self.out.truncate(mark);
                    }
                    break;
                }
            }
        }
        let _ = Fmt.end_array(self.out);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            while let Ok(Some(_)) = a.next_entry::<IgnoredAny, IgnoredAny>() {}
            put_str(self.out, NESTING_MARKER.as_bytes());
            return Ok(());
        }
        let _ = Fmt.begin_object(self.out);
        let base = self.keys.len();
        let mut seen = HashSet::new();
        let key_depth = if self.in_key {
            MAX_DEPTH
        } else {
            self.depth + 1
        };
        loop {
            let mark = self.out.len();
            let first = self.keys.len() == base;
            let _ = Fmt.begin_object_key(self.out, first);
            let a0 = self.out.len();
            let key = Key {
                out: &mut *self.out,
                depth: key_depth,
            };
            match a.next_key_seed(key) {
                Ok(Some(())) => {}
                Ok(None) | Err(_) => {
                    self.out.truncate(mark);
                    break;
                }
            }
            if key_is_new(self.out, self.keys, base, a0, &mut seen) {
                let v0 = self.out.len();
                let value = Json {
                    out: &mut *self.out,
                    depth: self.depth + 1,
                    keys: &mut *self.keys,
                    in_key: self.in_key,
                };
                if a.next_value_seed(value).is_err() {
                    // As for an array (above); a value with nothing written is null.
                    if self.out.len() == v0 {
                        let _ = Fmt.write_null(self.out);
                    }
                    break;
                }
            } else {
                self.out.truncate(mark);
                if a.next_value::<IgnoredAny>().is_err() {
                    break;
                }
            }
        }
        self.keys.truncate(base);
        let _ = Fmt.end_object(self.out);
        Ok(())
    }
}

/// Writes a map key as a JSON string: a str or bin as its text, an integer as its digits,
/// anything else as its JSON text (as it is when that is a string already).
struct Key<'o> {
    out: &'o mut Vec<u8>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Key<'_> {
    /// Writes the key's JSON text made by `f` into `out`, as a string.
    fn write_text<E>(self, f: impl FnOnce(Json) -> Result<(), E>) -> Result<(), E> {
        let mut text = Vec::new();
        let mut keys = Vec::new();
        let r = f(Json {
            out: &mut text,
            depth: self.depth,
            keys: &mut keys,
            in_key: true,
        });
        if text.first() == Some(&b'"') {
            self.out.extend_from_slice(&text);
        } else {
            put_str(self.out, &text);
        }
        r
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any msgpack value")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        put_str(self.out, v.as_bytes());
        Ok(())
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<(), E> {
        put_str(self.out, v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        put_str(self.out, itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        put_str(self.out, itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.write_text(|j| j.visit_unit())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.write_text(|j| j.visit_bool(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.write_text(|j| j.visit_f64(v))
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.write_text(|j| j.visit_newtype_struct(d))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<(), A::Error> {
        self.write_text(|j| j.visit_seq(a))
    }
    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<(), A::Error> {
        self.write_text(|j| j.visit_map(a))
    }
}

/// Transcodes the msgpack value `raw` into `out` (see [`Json`]).
pub(super) fn write_value(
    raw: &[u8],
    out: &mut Vec<u8>,
    depth: usize,
    keys: &mut Vec<(usize, usize)>,
) {
    let mut de = rmp_serde::Deserializer::from_read_ref(raw);
    let mark = out.len();
    let r = Json {
        out: &mut *out,
        depth,
        keys,
        in_key: false,
    }
    .deserialize(&mut de);
    if r.is_err() && out.len() == mark {
        let _ = Fmt.write_null(out);
    }
}

/// Writes a top-level key given as its raw msgpack value.
pub(super) fn write_raw_key(raw: &[u8], out: &mut Vec<u8>) {
    let mut de = rmp_serde::Deserializer::from_read_ref(raw);
    let _ = Key { out, depth: 1 }.deserialize(&mut de);
}
