//! Reading with rmp-serde, borrowing from the chunk: text, timestamps, the metadata's
//! OpenTelemetry fields, trace and span ids and `ddtags` lists; everything else skipped with
//! [`IgnoredAny`].

use rmp::Marker;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A str or bin value, borrowed; `None` for any other value (skipped with `IgnoredAny`).
pub(super) struct Text<'a>(pub(super) Option<&'a [u8]>);

pub(super) struct TextVisitor;

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
pub(super) struct Ext<'a>(pub(super) i8, pub(super) &'a [u8]);

impl<'de> Deserialize<'de> for Ext<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <(i8, &'de [u8])>::deserialize(d).map(|(t, data)| Ext(t, data))
    }
}

/// A record's time as written: EventTime (ext 0), integer or float.
pub(super) enum Time {
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
pub(super) struct Otlp<'a> {
    pub(super) severity_text: Option<&'a [u8]>,
    pub(super) trace_id: Option<u64>,
    pub(super) span_id: Option<u64>,
}

impl Otlp<'_> {
    fn is_empty(&self) -> bool {
        self.severity_text.is_none() && self.trace_id.is_none() && self.span_id.is_none()
    }
}

/// The metadata map: its `otlp` map (first occurrence), if any.
pub(super) struct Meta<'a>(pub(super) Otlp<'a>);

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
pub(super) fn text_of(raw: &[u8]) -> Option<(usize, usize)> {
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

/// A `ddtags` value as a tag list: its text, or its array's strings; `None` when it is not
/// a tag list.
pub(super) enum TagList<'a> {
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

pub(super) fn tag_list(raw: &[u8]) -> TagList<'_> {
    rmp_serde::from_slice(raw).unwrap_or(TagList::Not)
}
