//! The library path: the record path built on rmp-serde and serde_json, the reference the
//! hand-written reader (`src/decode.rs`) and writer (`src/json.rs`, `src/map/value.rs`) are
//! measured against (see docs/dependencies.md). It gives the same Datadog objects, byte for
//! byte, as `batch::build` (tests/library_path.rs checks it).
//!
//! What is the crates' and what is not:
//! - **Read with rmp-serde**, borrowing from the chunk (`&str`/`&[u8]`, no copies): each
//!   record's timestamp (EventTime through rmp-serde's ext newtype, integer or float) and
//!   metadata (the OpenTelemetry fields; everything else skipped with
//!   [`serde::de::IgnoredAny`]), the body's names and text values (one deserializer per body),
//!   every value written (transcoded, see below), and `ddtags` lists.
//! - **Written with serde_json**: strings through its `Serializer` (its escaping), numbers
//!   and punctuation through its `Formatter` (`CompactFormatter`). Nested values go from the
//!   rmp-serde deserializer straight into the output by a visitor ([`Json`]), with no
//!   `serde_json::Value` between. serde_transcode does not fit: the object's rules (no
//!   duplicate keys at any depth, non-string keys as strings, EventTime as milliseconds,
//!   other ext values as text, NaN as null, nesting cut at 32 levels) are decided per value
//!   as it is visited, which a plain transcoder cannot do.
//! - **Framed with rmp**, the crates' lower layer: where a record, its metadata, its body
//!   and each of the body's pairs start and end. rmp-serde cannot express that: its
//!   borrowing deserializer does not tell its position (`position()` exists only for the
//!   copying `Cursor` reader), and resynchronisation and the work budget for damaged chunks
//!   need byte offsets. rmp has no "skip a value", so [`skip`] walks values with rmp's
//!   marker and length readers, iteratively (no nesting depth can exhaust the stack) and
//!   charging each value read to the chunk's budget, with the product's rule (8 values per
//!   byte, given back on success, refilled as the decoder moves on).
//! - **Not swapped**, taken from the product through `internals`: the batching (`Batcher`,
//!   1000 objects / 5 MB), the `Timestamp` type (its rounding to milliseconds), the
//!   configuration (`Config`), and the 1 MB limit: an object over `MAX_LOG_BYTES` (rare) is
//!   handed to the product's `Mapper`, whose truncation cuts it (and which reads that record
//!   with the hand-written reader).
//! - **Written again here** (the mapping rules, which no crate has): the plugin's own
//!   attributes, the OpenTelemetry fields, `ddtags` (own tags, ECS tags, `dd_tags`), the
//!   `dd_message_key` rename and duplicate-key rules. No plan/template: every record is
//!   mapped the general way (the product writes a record shaped like the one before from a
//!   plan; that is a mapping optimisation, not the reader's or the writer's); the tags of
//!   the last record are kept, as the product keeps them.
//!
//! Where it is not byte for byte the product's: a value nested deeper than rmp-serde's
//! recursion limit (1024 levels) cannot be skipped by it; the object keeps what came
//! before and closes its arrays and maps there (the product skips the whole value; the two
//! agree when nothing follows the deep part, as in tests/library_path.rs), and a metadata
//! map with an array or map as a key (the product then misreads the map's later keys).

#![allow(dead_code)]

use fluent_bit_datadog::internals::batch::{Batch, Batcher, BuildStats};
use fluent_bit_datadog::internals::compress::Encoder;
use fluent_bit_datadog::internals::decode::{Record, Timestamp};
use fluent_bit_datadog::internals::map::{
    MAX_DEPTH, MAX_LOG_BYTES, Mapped, Mapper, NESTING_MARKER, Scratch,
};
use fluent_bit_datadog::internals::options::Config;
use rmp::Marker;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serializer as _};
use serde_json::ser::Formatter;
use std::collections::HashSet;
use std::fmt;

// ---------------------------------------------------------------------------------------
// Framing with rmp
// ---------------------------------------------------------------------------------------

/// Values a chunk's parses may read per byte of the chunk (the product's rule).
const WORK_PER_BYTE: u64 = 8;

/// Where one value read with rmp starts and what it is.
enum Head {
    /// A scalar, string, binary or ext: its whole length.
    Leaf,
    /// An array or map: this many values follow.
    Items(u64),
}

/// Reads the header of the value at `b[*pos..]` with rmp, moving `pos` past it (and past a
/// leaf's payload).
fn head(b: &[u8], pos: &mut usize, budget: &mut u64) -> Result<Head, ()> {
    *budget = budget.checked_sub(1).ok_or(())?;
    let start = b.get(*pos..).ok_or(())?;
    let mut rd: &[u8] = start;
    let first = *start.first().ok_or(())?;
    let (head, payload) = match Marker::from_u8(first) {
        Marker::Reserved => return Err(()),
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => (
            Head::Leaf,
            rmp::decode::read_str_len(&mut rd).map_err(drop)? as usize,
        ),
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => (
            Head::Leaf,
            rmp::decode::read_bin_len(&mut rd).map_err(drop)? as usize,
        ),
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => (
            Head::Leaf,
            rmp::decode::read_ext_meta(&mut rd).map_err(drop)?.size as usize,
        ),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let n = rmp::decode::read_array_len(&mut rd).map_err(drop)? as u64;
            (Head::Items(n), 0)
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let n = rmp::decode::read_map_len(&mut rd).map_err(drop)? as u64;
            (Head::Items(2 * n), 0)
        }
        m => {
            rd = &rd[1..];
            let data = match m {
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                _ => 0,
            };
            (Head::Leaf, data)
        }
    };
    let header = start.len() - rd.len();
    if let Head::Items(n) = head {
        // Every element takes at least a byte: a larger count cannot be honest.
        if n > rd.len() as u64 {
            return Err(());
        }
    }
    if payload > rd.len() {
        return Err(());
    }
    *pos += header + payload;
    Ok(head)
}

/// Skips the whole value at `b[*pos..]`, however deeply nested, without recursion.
fn skip(b: &[u8], pos: &mut usize, budget: &mut u64) -> Result<(), ()> {
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        if let Head::Items(n) = head(b, pos, budget)? {
            pending += n;
        }
    }
    Ok(())
}

/// The length of an array-of-2 header at the start of `b` (any encoding), read with rmp.
fn array2(b: &[u8]) -> Option<usize> {
    let mut rd = b;
    if !matches!(
        Marker::from_u8(*b.first()?),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32
    ) {
        return None;
    }
    (rmp::decode::read_array_len(&mut rd).ok()? == 2).then(|| b.len() - rd.len())
}

fn is_map(b: &[u8]) -> bool {
    b.first().is_some_and(|&m| {
        matches!(
            Marker::from_u8(m),
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32
        )
    })
}

/// Where a record plausibly starts (the product's filter for resynchronisation): a 2-array
/// whose first element is a timestamp or a 2-array header.
fn plausible_start(b: &[u8]) -> bool {
    let Some(n) = array2(b) else {
        return false;
    };
    let rest = &b[n..];
    let rest = array2(rest).map_or(rest, |m| &rest[m..]);
    rest.first().is_some_and(|&m| {
        matches!(
            Marker::from_u8(m),
            Marker::FixExt8
                | Marker::Ext8
                | Marker::FixPos(_)
                | Marker::U8
                | Marker::U16
                | Marker::U32
                | Marker::U64
                | Marker::I8
                | Marker::I16
                | Marker::I32
                | Marker::I64
                | Marker::F32
                | Marker::F64
        )
    })
}

// ---------------------------------------------------------------------------------------
// Reading with rmp-serde
// ---------------------------------------------------------------------------------------

/// A str or bin value, borrowed; `None` for any other value (skipped with `IgnoredAny`).
struct Text<'a>(Option<&'a [u8]>);

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Some(v.as_bytes())))
    }
    fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Text<'de>, E> {
        Ok(Text(Some(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_unit<E>(self) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> Result<Text<'de>, D::Error> {
        IgnoredAny::deserialize(d)?;
        Ok(Text(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

/// A msgpack ext value, as rmp-serde gives it: `(type, data)` inside its ext newtype.
struct Ext<'a>(i8, &'a [u8]);

impl<'de> Deserialize<'de> for Ext<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <(i8, &'de [u8])>::deserialize(d).map(|(t, data)| Ext(t, data))
    }
}

/// A record's time as written: EventTime (ext 0), integer or float.
enum Time {
    Event(u32, u32),
    UInt(u64),
    Int(i64),
    Float(f64),
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = Time;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an EventTime, integer or float")
    }
    fn visit_u64<E>(self, v: u64) -> Result<Time, E> {
        Ok(Time::UInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Time, E> {
        Ok(Time::Int(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Time, E> {
        if v.is_finite() {
            Ok(Time::Float(v))
        } else {
            Err(E::custom("timestamp is not finite"))
        }
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<Time, D::Error> {
        let Ext(ty, data) = Ext::deserialize(d)?;
        match (ty, <[u8; 8]>::try_from(data)) {
            (0, Ok(d)) => Ok(Time::Event(
                u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
                u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
            )),
            _ => Err(serde::de::Error::custom(
                "ext timestamp is not an EventTime",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TimeVisitor)
    }
}

/// The OpenTelemetry fields of a record's metadata (Fluent Bit 4.x): `otlp.severity_text`,
/// `otlp.trace_id`, `otlp.span_id`; every other key and value skipped with `IgnoredAny`.
#[derive(Default)]
struct Otlp<'a> {
    severity_text: Option<&'a [u8]>,
    trace_id: Option<u64>,
    span_id: Option<u64>,
}

impl Otlp<'_> {
    fn is_empty(&self) -> bool {
        self.severity_text.is_none() && self.trace_id.is_none() && self.span_id.is_none()
    }
}

/// The metadata map: its `otlp` map (first occurrence), if any.
struct Meta<'a>(Otlp<'a>);

impl<'de> Deserialize<'de> for Meta<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a metadata map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Meta<'de>, A::Error> {
                let mut otlp = None;
                while let Some(Text(k)) = a.next_key::<Text>()? {
                    if otlp.is_none() && k == Some(b"otlp") {
                        otlp = Some(a.next_value::<OtlpMap>()?.0);
                    } else {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Meta(otlp.unwrap_or_default()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `otlp` value: its fields when it is a map, none otherwise.
struct OtlpMap<'a>(Otlp<'a>);

impl<'de> Deserialize<'de> for OtlpMap<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OtlpMap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<OtlpMap<'de>, A::Error> {
                let mut o = Otlp::default();
                let (mut sev, mut trace, mut span) = (false, false, false);
                while let Some(Text(k)) = a.next_key::<Text>()? {
                    let first = |seen: &mut bool| !std::mem::replace(seen, true);
                    match k {
                        Some(b"severity_text") if first(&mut sev) => {
                            o.severity_text = a.next_value::<Text>()?.0
                        }
                        Some(b"trace_id") if first(&mut trace) => {
                            o.trace_id = id_low64(a.next_value::<Id>()?)
                        }
                        Some(b"span_id") if first(&mut span) => {
                            o.span_id = id_low64(a.next_value::<Id>()?)
                        }
                        _ => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(OtlpMap(o))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<OtlpMap<'de>, A::Error> {
                TextVisitor.visit_seq(a).map(|_| OtlpMap(Otlp::default()))
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<OtlpMap<'de>, D::Error> {
                IgnoredAny::deserialize(d).map(|_| OtlpMap(Otlp::default()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<OtlpMap<'de>, E> {
                Ok(OtlpMap(Otlp::default()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<OtlpMap<'de>, E> {
                Ok(OtlpMap(Otlp::default()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<OtlpMap<'de>, E> {
                Ok(OtlpMap(Otlp::default()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<OtlpMap<'de>, E> {
                Ok(OtlpMap(Otlp::default()))
            }
            fn visit_unit<E>(self) -> Result<OtlpMap<'de>, E> {
                Ok(OtlpMap(Otlp::default()))
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<OtlpMap<'de>, E> {
                Ok(OtlpMap(Otlp::default()))
            }
            fn visit_borrowed_bytes<E>(self, _: &'de [u8]) -> Result<OtlpMap<'de>, E> {
                Ok(OtlpMap(Otlp::default()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A trace or span id as written: bin bytes, str text, or anything else.
enum Id<'a> {
    Bin(&'a [u8]),
    Str(&'a [u8]),
    Other,
}

impl<'de> Deserialize<'de> for Id<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // rmp-serde hands a str that is not UTF-8 to `visit_borrowed_bytes` too; tell the two
        // apart by the marker is not possible through serde, so such a str counts as bytes.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Id<'de>, E> {
                Ok(Id::Str(v.as_bytes()))
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Id<'de>, E> {
                Ok(Id::Bin(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Id<'de>, E> {
                Ok(Id::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Id<'de>, E> {
                Ok(Id::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Id<'de>, E> {
                Ok(Id::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Id<'de>, E> {
                Ok(Id::Other)
            }
            fn visit_unit<E>(self) -> Result<Id<'de>, E> {
                Ok(Id::Other)
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Id<'de>, D::Error> {
                IgnoredAny::deserialize(d).map(|_| Id::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Id<'de>, A::Error> {
                TextVisitor.visit_seq(a).map(|_| Id::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Id<'de>, A::Error> {
                TextVisitor.visit_map(a).map(|_| Id::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The low 64 bits of a trace or span id (raw bytes, 8 or 16, or hex text), which Datadog
/// correlates on; `None` for zero.
fn id_low64(id: Id) -> Option<u64> {
    let hex = |s: &[u8]| {
        std::str::from_utf8(s)
            .ok()
            .and_then(|t| u64::from_str_radix(t, 16).ok())
    };
    let bytes = match id {
        Id::Bin(b) => b,
        Id::Str(s) if (s.len() == 8 || s.len() == 16) && s.iter().all(u8::is_ascii_hexdigit) => {
            return hex(s).filter(|&v| v != 0);
        }
        Id::Str(s) if s.len() == 32 && s.iter().all(u8::is_ascii_hexdigit) => {
            return hex(&s[16..]).filter(|&v| v != 0);
        }
        Id::Str(s) => s,
        Id::Other => return None,
    };
    if bytes.len() != 8 && bytes.len() != 16 {
        return None;
    }
    let low: [u8; 8] = bytes[bytes.len() - 8..].try_into().ok()?;
    Some(u64::from_be_bytes(low)).filter(|&v| v != 0)
}

/// A body key or value as text, read with rmp-serde: `None` for a value that is not a str or
/// bin (rmp's marker says so first, so a deeply nested value is not given to rmp-serde's
/// recursive reader to be skipped).
fn text_of(raw: &[u8]) -> Option<(usize, usize)> {
    let m = Marker::from_u8(*raw.first()?);
    if !matches!(
        m,
        Marker::FixStr(_)
            | Marker::Str8
            | Marker::Str16
            | Marker::Str32
            | Marker::Bin8
            | Marker::Bin16
            | Marker::Bin32
    ) {
        return None;
    }
    let Text(t) = rmp_serde::from_slice::<Text>(raw).ok()?;
    let t = t?;
    let a = t.as_ptr() as usize - raw.as_ptr() as usize;
    Some((a, a + t.len()))
}

// ---------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------

/// One pair of a body: byte ranges in the body, and of the name and value when they are
/// text.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    key: (usize, usize),
    value: (usize, usize),
    name: Option<(usize, usize)>,
    text: Option<(usize, usize)>,
}

/// Whether the record's first top-level `partial_message` says it is one part of a line split
/// by the container runtime: the string (or bin) "true" in any case, or boolean true, as the
/// product's mapper reads it.
fn is_partial(body: &[u8], entries: &[Entry]) -> bool {
    let Some(e) = entries
        .iter()
        .find(|e| e.name_in(body) == Some(b"partial_message".as_slice()))
    else {
        return false;
    };
    match &body[e.value.0..e.value.1] {
        [0xc3] => true,
        [0xc4, 4, rest @ ..] => rest.eq_ignore_ascii_case(b"true"),
        _ => e
            .text_in(body)
            .is_some_and(|t| t.eq_ignore_ascii_case(b"true")),
    }
}

impl Entry {
    fn name_in<'a>(&self, body: &'a [u8]) -> Option<&'a [u8]> {
        self.name.map(|(a, b)| &body[a..b])
    }
    fn text_in<'a>(&self, body: &'a [u8]) -> Option<&'a [u8]> {
        self.text.map(|(a, b)| &body[a..b])
    }
}

/// A record read by the library path.
#[derive(Clone, Copy, Debug)]
pub struct LibRecord<'a> {
    /// When the record was made.
    pub time: Timestamp,
    /// The metadata map's bytes (empty for `[TS, BODY]` records).
    pub meta: &'a [u8],
    /// The body map's bytes.
    pub body: &'a [u8],
}

/// What the library path found at one position of a chunk.
#[derive(Clone, Copy, Debug)]
pub enum LibItem<'a> {
    /// A log record.
    Record(LibRecord<'a>),
    /// An OpenTelemetry group start or end marker.
    GroupMarker,
    /// Bytes that are not a record, skipped to the next position where one parses.
    Malformed {
        offset: usize,
        skipped: usize,
        reason: &'static str,
    },
}

enum Parsed<'a> {
    Record(LibRecord<'a>, Otlp<'a>),
    Marker,
}

fn time_of(t: Time) -> Timestamp {
    match t {
        Time::Event(secs, nanos) => Timestamp {
            secs: secs as i64,
            nanos: nanos.min(999_999_999),
        },
        Time::UInt(s) => Timestamp {
            secs: s.min(i64::MAX as u64 / 1000) as i64,
            nanos: 0,
        },
        Time::Int(s) => Timestamp {
            secs: s.clamp(i64::MIN / 1000, i64::MAX / 1000),
            nanos: 0,
        },
        Time::Float(f) => {
            let secs = f.floor();
            Timestamp {
                secs: secs.clamp(-9.2e15, 9.2e15) as i64,
                nanos: ((f - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32,
            }
        }
    }
}

/// Parses the record at the start of `b`: framed with rmp, read with rmp-serde. Lists the
/// body's pairs into `entries` (with `Some`). Returns it and its length.
fn parse<'a>(
    b: &'a [u8],
    budget: &mut u64,
    entries: Option<&mut Vec<Entry>>,
) -> Result<(Parsed<'a>, usize), &'static str> {
    let mut pos = 0;
    match head(b, &mut pos, budget) {
        Ok(Head::Items(2)) if array2(b).is_some() => {}
        Ok(_) => return Err("record is not a 2-element array"),
        Err(_) => return Err("bad msgpack at record start"),
    }
    // `[TS, META]` or `TS`.
    let h0 = pos;
    let (ts, meta) = if let Some(n) = array2(&b[pos..]) {
        pos += n;
        *budget = budget
            .checked_sub(1)
            .ok_or("work budget for damaged records spent")?;
        let t0 = pos;
        skip(b, &mut pos, budget).map_err(|_| "bad msgpack in timestamp")?;
        let m0 = pos;
        skip(b, &mut pos, budget).map_err(|_| "bad msgpack in metadata")?;
        (&b[t0..m0], &b[m0..pos])
    } else {
        if matches!(
            b.get(pos).map(|&m| Marker::from_u8(m)),
            Some(Marker::FixArray(_) | Marker::Array16 | Marker::Array32)
        ) {
            return Err("record header is not [timestamp, metadata]");
        }
        skip(b, &mut pos, budget).map_err(|_| "bad msgpack in timestamp")?;
        (&b[h0..pos], &b[pos..pos])
    };
    let otlp = if meta.is_empty() {
        Otlp::default()
    } else {
        rmp_serde::from_slice::<Meta>(meta)
            .map_err(|_| "metadata is not a map")?
            .0
    };
    let time = rmp_serde::from_slice::<Time>(ts)
        .map_err(|_| "timestamp is not an EventTime, integer or float")?;
    if let Time::Event(0xFFFF_FFFF | 0xFFFF_FFFE, _) = time {
        skip(b, &mut pos, budget).map_err(|_| "bad msgpack in group marker body")?;
        return Ok((Parsed::Marker, pos));
    }
    let time = time_of(time);
    // The body: a map, its pairs framed with rmp.
    let b0 = pos;
    if !is_map(&b[pos..]) {
        return Err("body is not a map");
    }
    let Ok(Head::Items(n)) = head(b, &mut pos, budget) else {
        return Err("bad msgpack in body");
    };
    let mut list = entries;
    if let Some(l) = list.as_deref_mut() {
        l.clear();
    }
    for _ in 0..n / 2 {
        let k = pos - b0;
        skip(b, &mut pos, budget).map_err(|_| "bad msgpack in body")?;
        let v = pos - b0;
        skip(b, &mut pos, budget).map_err(|_| "bad msgpack in body")?;
        if let Some(l) = list.as_deref_mut() {
            let shift = |r: Option<(usize, usize)>, at: usize| r.map(|(x, y)| (x + at, y + at));
            let e = pos - b0;
            l.push(Entry {
                key: (k, v),
                value: (v, e),
                name: shift(text_of(&b[b0 + k..b0 + v]), k),
                text: shift(text_of(&b[b0 + v..b0 + e]), v),
            });
        }
    }
    let body = &b[b0..pos];
    Ok((Parsed::Record(LibRecord { time, meta, body }, otlp), pos))
}

/// The items of a chunk, with the product's work budget and resynchronisation rule.
pub struct LibChunk<'a> {
    buf: &'a [u8],
    pos: usize,
    budget: u64,
    /// Values read by all parses so far (the tests bound it).
    pub work: u64,
}

/// Decodes `chunk` with the library path.
pub fn chunk(chunk: &[u8]) -> LibChunk<'_> {
    LibChunk {
        buf: chunk,
        pos: 0,
        budget: (chunk.len() as u64).saturating_mul(WORK_PER_BYTE),
        work: 0,
    }
}

impl<'a> LibChunk<'a> {
    fn full(&self) -> u64 {
        (self.buf.len() as u64).saturating_mul(WORK_PER_BYTE)
    }

    fn refill(&mut self, passed: usize) {
        self.budget = self.full().min(
            self.budget
                .saturating_add((passed as u64).saturating_mul(WORK_PER_BYTE)),
        );
    }

    fn try_parse(
        &mut self,
        at: usize,
        entries: Option<&mut Vec<Entry>>,
    ) -> Result<(Parsed<'a>, usize), &'static str> {
        let mut budget = self.budget;
        let result = parse(&self.buf[at..], &mut budget, entries);
        self.work += self.budget - budget;
        match result {
            Ok(ok) => Ok(ok),
            Err(reason) => {
                self.budget = budget;
                Err(if budget == 0 {
                    "work budget for damaged records spent"
                } else {
                    reason
                })
            }
        }
    }

    fn advance(&mut self, entries: Option<&mut Vec<Entry>>) -> Option<(LibItem<'a>, Otlp<'a>)> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        match self.try_parse(start, entries) {
            Ok((parsed, len)) => {
                self.refill(len);
                self.pos = start + len;
                Some(match parsed {
                    Parsed::Record(r, o) => (LibItem::Record(r), o),
                    Parsed::Marker => (LibItem::GroupMarker, Otlp::default()),
                })
            }
            Err(reason) => {
                let mut next = start + 1;
                while next < self.buf.len() {
                    if plausible_start(&self.buf[next..]) && self.try_parse(next, None).is_ok() {
                        break;
                    }
                    next += 1;
                    self.refill(1);
                }
                self.pos = next;
                Some((
                    LibItem::Malformed {
                        offset: start,
                        skipped: next - start,
                        reason,
                    },
                    Otlp::default(),
                ))
            }
        }
    }
}

impl<'a> Iterator for LibChunk<'a> {
    type Item = LibItem<'a>;
    fn next(&mut self) -> Option<LibItem<'a>> {
        self.advance(None).map(|(i, _)| i)
    }
}

// ---------------------------------------------------------------------------------------
// Writing with serde_json
// ---------------------------------------------------------------------------------------

/// serde_json's compact `Formatter`, but for floats: serde_json (1.0.154) writes them with
/// zmij, whose exponents differ in form from ryu's, which the product writes (`1.5e+300`
/// against `1.5e300`: the same number, not the same bytes). A `Formatter` is serde_json's
/// own way to change such a choice; this one writes floats with ryu, so the objects are the
/// product's byte for byte.
struct Fmt;

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

fn put_raw(out: &mut Vec<u8>, s: &[u8]) {
    let _ = Fmt.write_raw_fragment(out, std::str::from_utf8(s).unwrap_or(""));
}

/// Above this many keys in one map, duplicates are found with a hash set.
const LINEAR_DEDUP_MAX: usize = 32;

/// After writing a key's JSON string at `out[a..]`: true when it is new in this map (keys
/// `keys[base..]`), which then records it and writes the colon.
fn key_is_new(
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
fn write_value(raw: &[u8], out: &mut Vec<u8>, depth: usize, keys: &mut Vec<(usize, usize)>) {
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
fn write_raw_key(raw: &[u8], out: &mut Vec<u8>) {
    let mut de = rmp_serde::Deserializer::from_read_ref(raw);
    let _ = Key { out, depth: 1 }.deserialize(&mut de);
}

// ---------------------------------------------------------------------------------------
// Mapping (the rules of src/map, written again over the library reader and writer)
// ---------------------------------------------------------------------------------------

/// One of the plugin's own attributes, pre-serialized: `"key":` or `"key":"value"`.
#[derive(Clone, Debug)]
struct Attr {
    json: Vec<u8>,
    key_len: usize,
}

impl Attr {
    fn new(key: &str, value: Option<&str>) -> Attr {
        let mut json = Vec::new();
        put_str(&mut json, key.as_bytes());
        let key_len = json.len();
        json.push(b':');
        if let Some(v) = value {
            put_str(&mut json, v.as_bytes());
        }
        Attr { json, key_len }
    }
}

const ECS_KEYS: [&[u8]; 6] = [
    b"container_id",
    b"container_name",
    b"container_image",
    b"ecs_cluster",
    b"ecs_task_definition",
    b"ecs_task_arn",
];

/// The mapping settings of one instance (as `Mapper`), on the library reader and writer.
pub struct LibMapper {
    message_key: Vec<u8>,
    date_key: Option<Vec<u8>>,
    tag_key: Option<Vec<u8>>,
    static_tags: Vec<String>,
    ecs: bool,
    date: Option<Attr>,
    tag: Option<Attr>,
    source: Option<Attr>,
    service: Option<Attr>,
    hostname: Option<Attr>,
    status: Option<Attr>,
    trace_id: Option<Attr>,
    span_id: Option<Attr>,
    ddtags: Attr,
    message: Option<Attr>,
    date_is_ddtags: bool,
    tag_is_ddtags: bool,
    /// The product's mapper, for objects over 1 MB (see the module doc).
    product: Mapper,
}

impl LibMapper {
    /// The library path's mapping for an instance's configuration.
    pub fn new(cfg: &Config) -> LibMapper {
        let mut names: Vec<String> = Vec::new();
        let mut attr = |key: Option<&str>, value: Option<&str>| {
            let key = key?;
            if names.iter().any(|n| n == key) {
                return None;
            }
            names.push(key.to_string());
            Some(Attr::new(key, value))
        };
        let date = attr(cfg.date_key.as_deref(), None);
        let tag = attr(cfg.tag_key.as_deref(), None);
        let source = cfg
            .source
            .as_deref()
            .and_then(|v| attr(Some("ddsource"), Some(v)));
        let service = cfg
            .service
            .as_deref()
            .and_then(|v| attr(Some("service"), Some(v)));
        let hostname = cfg
            .hostname
            .as_deref()
            .and_then(|v| attr(Some("hostname"), Some(v)));
        let status = attr(Some("status"), None);
        let trace_id = attr(Some("dd.trace_id"), None);
        let span_id = attr(Some("dd.span_id"), None);
        let message = attr(Some("message"), None);
        let is_ddtags = |k: &Option<String>| k.as_deref() == Some("ddtags");
        LibMapper {
            message_key: cfg.message_key.as_bytes().to_vec(),
            date_key: cfg.date_key.as_ref().map(|k| k.as_bytes().to_vec()),
            tag_key: cfg.tag_key.as_ref().map(|k| k.as_bytes().to_vec()),
            static_tags: cfg.tags.clone(),
            ecs: cfg.ecs,
            date,
            tag,
            source,
            service,
            hostname,
            status,
            trace_id,
            span_id,
            ddtags: Attr::new("ddtags", None),
            message,
            date_is_ddtags: is_ddtags(&cfg.date_key),
            tag_is_ddtags: is_ddtags(&cfg.tag_key) && !is_ddtags(&cfg.date_key),
            product: Mapper::new(cfg),
        }
    }
}

/// What one flush thread reuses from record to record.
#[derive(Default)]
pub struct LibScratch {
    entries: Vec<Entry>,
    skip: Vec<bool>,
    keys: Vec<(usize, usize)>,
    seen: HashSet<Box<[u8]>>,
    ecs_entries: Vec<usize>,
    text: Vec<u8>,
    /// The tags of the last record: their inputs, their list and its JSON string.
    tag_sig: Vec<u8>,
    tag_list: Vec<u8>,
    tag_ranges: Vec<(usize, usize)>,
    tag_json: Vec<u8>,
    tags_made: bool,
    /// For objects over 1 MB, handed to the product's mapper.
    product: Scratch,
}

#[derive(Default)]
struct Present {
    message: bool,
    service: bool,
    source: bool,
    hostname: bool,
    status: bool,
    date: bool,
    tag: bool,
    trace_id: bool,
    span_id: bool,
    message_key: Option<usize>,
    own_tags: Option<usize>,
    ddtags_key: bool,
}

/// A `ddtags` value as a tag list: its text, or its array's strings; `None` when it is not
/// a tag list.
enum TagList<'a> {
    Text(&'a [u8]),
    List(Vec<&'a [u8]>),
    Not,
}

impl<'de> Deserialize<'de> for TagList<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TagList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<TagList<'de>, E> {
                Ok(TagList::Text(v.as_bytes()))
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<TagList<'de>, E> {
                Ok(TagList::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<TagList<'de>, A::Error> {
                let mut list = Vec::new();
                let mut all = true;
                while let Some(Text(t)) = a.next_element::<Text>()? {
                    match t {
                        Some(t) if all => list.push(t),
                        _ => all = false,
                    }
                }
                Ok(if all {
                    TagList::List(list)
                } else {
                    TagList::Not
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<TagList<'de>, A::Error> {
                TextVisitor.visit_map(a).map(|_| TagList::Not)
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<TagList<'de>, D::Error> {
                IgnoredAny::deserialize(d).map(|_| TagList::Not)
            }
            fn visit_bool<E>(self, _: bool) -> Result<TagList<'de>, E> {
                Ok(TagList::Not)
            }
            fn visit_i64<E>(self, _: i64) -> Result<TagList<'de>, E> {
                Ok(TagList::Not)
            }
            fn visit_u64<E>(self, _: u64) -> Result<TagList<'de>, E> {
                Ok(TagList::Not)
            }
            fn visit_f64<E>(self, _: f64) -> Result<TagList<'de>, E> {
                Ok(TagList::Not)
            }
            fn visit_unit<E>(self) -> Result<TagList<'de>, E> {
                Ok(TagList::Not)
            }
        }
        d.deserialize_any(V)
    }
}

fn tag_list(raw: &[u8]) -> TagList<'_> {
    rmp_serde::from_slice(raw).unwrap_or(TagList::Not)
}

/// Adds one tag unless it is empty or already there.
fn push_tag(tags: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>, tag: &[u8]) {
    if tag.is_empty() || ranges.iter().any(|&(a, b)| &tags[a..b] == tag) {
        return;
    }
    if !tags.is_empty() {
        tags.push(b',');
    }
    let a = tags.len();
    tags.extend_from_slice(tag);
    ranges.push((a, tags.len()));
}

/// The tags Fluent Bit's datadog output (4.1+) derives from one FireLens attribute.
fn ecs_tags(key: &[u8], v: &[u8], tags: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>) {
    let mut kv = |k: &[u8], val: &[u8]| {
        let mut t = Vec::with_capacity(k.len() + 1 + val.len());
        t.extend_from_slice(k);
        t.push(b':');
        t.extend_from_slice(val);
        push_tag(tags, ranges, &t);
    };
    let after = |hay: &'_ [u8], needle: &[u8]| -> Option<usize> {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + needle.len())
    };
    match key {
        b"container_name" => kv(key, v.strip_prefix(b"/").unwrap_or(v)),
        b"ecs_cluster" => kv(b"cluster_name", &v[after(v, b"cluster/").unwrap_or(0)..]),
        b"ecs_task_definition" => match v.iter().position(|&b| b == b':') {
            Some(i) => {
                kv(b"task_family", &v[..i]);
                kv(b"task_version", &v[i + 1..]);
            }
            None => kv(key, v),
        },
        b"ecs_task_arn" => {
            kv(b"task_arn", v);
            if let Some(rest) = v.strip_prefix(b"arn:aws:ecs:")
                && let Some(i) = rest.iter().position(|&b| b == b':')
            {
                kv(b"region", &rest[..i]);
            }
            kv(b"task_id", &v[after(v, b"task/").unwrap_or(0)..]);
        }
        _ => kv(key, v),
    }
}

/// Writes an attribute after a comma unless it is the first, noting its key.
fn write_attr(out: &mut Vec<u8>, keys: &mut Vec<(usize, usize)>, attr: &Attr) {
    let _ = Fmt.begin_object_key(out, keys.is_empty());
    let a = out.len();
    out.extend_from_slice(&attr.json);
    keys.push((a, a + attr.key_len));
}

impl LibMapper {
    fn scan(&self, body: &[u8], s: &mut LibScratch) -> Present {
        let mut p = Present::default();
        let mut seen_ecs = [false; ECS_KEYS.len()];
        s.ecs_entries.clear();
        for (i, e) in s.entries.iter().enumerate() {
            let Some(k) = e.name_in(body) else {
                continue;
            };
            match k {
                b"message" => p.message = true,
                b"service" => p.service = true,
                b"ddsource" => p.source = true,
                b"hostname" => p.hostname = true,
                b"status" => p.status = true,
                b"dd.trace_id" => p.trace_id = true,
                b"dd.span_id" => p.span_id = true,
                b"ddtags" => {
                    if std::mem::replace(&mut p.ddtags_key, true) {
                        s.skip[i] = true;
                    } else if !matches!(tag_list(&body[e.value.0..e.value.1]), TagList::Not) {
                        s.skip[i] = true;
                        p.own_tags = Some(i);
                    }
                }
                _ => {}
            }
            if self.ecs
                && let Some(n) = ECS_KEYS.iter().position(|&x| x == k)
            {
                if std::mem::replace(&mut seen_ecs[n], true) {
                    s.skip[i] = true;
                } else if e.text_in(body).is_some_and(|v| !v.is_empty()) {
                    s.skip[i] = true;
                    s.ecs_entries.push(i);
                }
            }
            if self.date_key.as_deref() == Some(k) {
                p.date = true;
            }
            if self.tag_key.as_deref() == Some(k) {
                p.tag = true;
            }
            if k == self.message_key.as_slice() && p.message_key.is_none() {
                p.message_key = Some(i);
            }
        }
        p
    }

    /// Makes the record's tags into `s.tag_json`, unless the last record's were made from
    /// the same inputs.
    fn tags(&self, body: &[u8], p: &Present, s: &mut LibScratch) {
        let own = p.own_tags.map(|i| {
            let e = s.entries[i];
            &body[e.value.0..e.value.1]
        });
        let mut sig = std::mem::take(&mut s.text);
        sig.clear();
        for &i in &s.ecs_entries {
            let e = s.entries[i];
            let piece = &body[e.key.0..e.value.1];
            sig.extend_from_slice(&(piece.len() as u32).to_le_bytes());
            sig.extend_from_slice(piece);
        }
        sig.extend_from_slice(&u32::MAX.to_le_bytes());
        sig.extend_from_slice(own.unwrap_or(b""));
        if s.tags_made && sig == s.tag_sig {
            s.text = sig;
            return;
        }
        let (list, ranges) = (&mut s.tag_list, &mut s.tag_ranges);
        list.clear();
        ranges.clear();
        match own.map(tag_list) {
            Some(TagList::Text(text)) => {
                for t in text.split(|&b| b == b',') {
                    push_tag(list, ranges, t.trim_ascii());
                }
            }
            Some(TagList::List(items)) => {
                for t in items {
                    push_tag(list, ranges, t.trim_ascii());
                }
            }
            _ => {}
        }
        for &i in &s.ecs_entries {
            let e = s.entries[i];
            if let (Some(k), Some(v)) = (e.name_in(body), e.text_in(body)) {
                ecs_tags(k, v, list, ranges);
            }
        }
        for tag in &self.static_tags {
            push_tag(list, ranges, tag.as_bytes());
        }
        s.tag_json.clear();
        put_str(&mut s.tag_json, list);
        s.text = std::mem::replace(&mut s.tag_sig, sig);
        s.tags_made = true;
    }

    /// Appends the Datadog object for `rec` (tagged `tag`) to `out`.
    fn write(
        &self,
        rec: &LibRecord,
        otlp: &Otlp,
        tag: &str,
        s: &mut LibScratch,
        out: &mut Vec<u8>,
    ) -> Mapped {
        let start = out.len();
        s.skip.clear();
        s.skip.resize(s.entries.len(), false);
        s.keys.clear();
        s.seen.clear();
        let body = rec.body;
        let p = self.scan(body, s);
        let _ = Fmt.begin_object(out);
        // The plugin's own attributes.
        if let Some(k) = &self.date
            && !p.date
        {
            write_attr(out, &mut s.keys, k);
            let _ = Fmt.write_i64(out, rec.time.millis());
        }
        if let Some(k) = &self.tag
            && !p.tag
        {
            write_attr(out, &mut s.keys, k);
            put_str(out, tag.as_bytes());
        }
        for (attr, has) in [
            (&self.source, p.source),
            (&self.service, p.service),
            (&self.hostname, p.hostname),
        ] {
            if let Some(k) = attr
                && !has
            {
                write_attr(out, &mut s.keys, k);
            }
        }
        // OpenTelemetry metadata.
        if let Some(sev) = otlp.severity_text
            && let Some(k) = &self.status
            && !p.status
        {
            write_attr(out, &mut s.keys, k);
            put_str(out, sev);
        }
        for (attr, id, has) in [
            (&self.trace_id, otlp.trace_id, p.trace_id),
            (&self.span_id, otlp.span_id, p.span_id),
        ] {
            if let (Some(k), Some(id)) = (attr, id)
                && !has
            {
                write_attr(out, &mut s.keys, k);
                put_str(out, itoa::Buffer::new().format(id).as_bytes());
            }
        }
        // ddtags.
        self.tags(body, &p, s);
        let taken = (self.date_is_ddtags && self.date.is_some() && !p.date)
            || (self.tag_is_ddtags && self.tag.is_some() && !p.tag);
        if !taken && !s.tag_list.is_empty() {
            write_attr(out, &mut s.keys, &self.ddtags);
            put_raw(out, &s.tag_json);
        }
        // The message, renamed from `dd_message_key`.
        let mut renamed = false;
        if !p.message
            && let Some(i) = p.message_key
            && let Some(k) = &self.message
        {
            write_attr(out, &mut s.keys, k);
            s.skip[i] = true;
            renamed = true;
            self.write_entry_value(body, s.entries[i], out, &mut s.keys);
        }
        // The record's other attributes.
        for i in 0..s.entries.len() {
            if s.skip[i] {
                continue;
            }
            let e = s.entries[i];
            let name = e.name_in(body);
            if renamed && name == Some(self.message_key.as_slice()) {
                continue;
            }
            let mark = out.len();
            let _ = Fmt.begin_object_key(out, s.keys.is_empty());
            let a = out.len();
            match name {
                Some(text) => put_str(out, text),
                None => write_raw_key(&body[e.key.0..e.key.1], out),
            }
            if !key_is_new(out, &mut s.keys, 0, a, &mut s.seen) {
                out.truncate(mark);
                continue;
            }
            self.write_entry_value(body, e, out, &mut s.keys);
        }
        let _ = Fmt.end_object(out);
        if out.len() - start <= MAX_LOG_BYTES {
            let partial = is_partial(body, &s.entries);
            return Mapped::Written {
                truncated: false,
                partial,
            };
        }
        // Over Datadog's 1 MB limit: the product's mapper cuts it (see the module doc).
        out.truncate(start);
        let record = Record {
            time: rec.time,
            meta: rec.meta,
            body: rec.body,
        };
        self.product.write(&record, tag, &mut s.product, out)
    }

    fn write_entry_value(
        &self,
        body: &[u8],
        e: Entry,
        out: &mut Vec<u8>,
        keys: &mut Vec<(usize, usize)>,
    ) {
        match e.text_in(body) {
            Some(text) => put_str(out, text),
            None => write_value(&body[e.value.0..e.value.1], out, 1, keys),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The flush path
// ---------------------------------------------------------------------------------------

/// `batch::build` on the library path.
pub fn build(
    chunk: &[u8],
    tag: &str,
    mapper: &LibMapper,
    scratch: &mut LibScratch,
    spare: &mut Vec<Vec<u8>>,
) -> (Vec<Batch>, BuildStats) {
    build_encoded(chunk, tag, mapper, scratch, spare, None)
}

/// `batch::build_encoded` on the library path: each batch encoded as soon as it is full.
pub fn build_encoded(
    data: &[u8],
    tag: &str,
    mapper: &LibMapper,
    scratch: &mut LibScratch,
    spare: &mut Vec<Vec<u8>>,
    encoder: Option<&Encoder>,
) -> (Vec<Batch>, BuildStats) {
    let mut stats = BuildStats::default();
    let mut batcher = Batcher::with_spare(std::mem::take(spare));
    let mut items = chunk(data);
    let mut entries = std::mem::take(&mut scratch.entries);
    while let Some((item, otlp)) = items.advance(Some(&mut entries)) {
        match item {
            LibItem::Record(rec) => {
                stats.records += 1;
                std::mem::swap(&mut scratch.entries, &mut entries);
                let out = batcher.begin();
                let mapped = mapper.write(&rec, &otlp, tag, scratch, out);
                std::mem::swap(&mut scratch.entries, &mut entries);
                match mapped {
                    Mapped::Written { truncated, partial } => {
                        stats.truncated += truncated as u64;
                        stats.partial += partial as u64;
                        batcher.commit_encoded(encoder);
                    }
                    Mapped::TooLarge { .. } => {
                        stats.too_large += 1;
                        batcher.abort();
                    }
                }
            }
            LibItem::GroupMarker => stats.markers += 1,
            LibItem::Malformed { offset, reason, .. } => {
                stats.malformed += 1;
                stats.first_malformed.get_or_insert((offset, reason));
            }
        }
    }
    scratch.entries = entries;
    let mut batches = batcher.finish();
    // As `batch::build_encoded`: the last batch is encoded once closed.
    if let Some(last) = batches.last_mut()
        && last.encoded.is_none()
        && let Some(e) = encoder.and_then(|enc| enc.encode(&last.json))
    {
        last.encoded = Some(e);
        let mut json = std::mem::take(&mut last.json);
        json.clear();
        spare.push(json);
    }
    (batches, stats)
}
