//! OpenTelemetry metadata: `otlp.severity_text`, `otlp.trace_id` and `otlp.span_id` in a
//! record's metadata (Fluent Bit 4.x) become `status`, `dd.trace_id` and `dd.span_id`, each
//! only when the record lacks that attribute.

use super::Mapper;
use super::fields::{Present, write_attr};
use crate::encode::decode::{self, Reader, Value};

/// OpenTelemetry fields found in a record's metadata.
#[derive(Default)]
pub(super) struct Otlp<'a> {
    severity_text: Option<&'a [u8]>,
    trace_id: Option<u64>,
    span_id: Option<u64>,
}

/// Reads `otlp.severity_text`, `otlp.trace_id` and `otlp.span_id` from the metadata map.
pub(super) fn otlp_fields(meta: &[u8]) -> Otlp<'_> {
    let mut o = Otlp::default();
    if meta.len() <= 1 {
        return o;
    }
    let Some(otlp) = map_get(meta, b"otlp") else {
        return o;
    };
    o.severity_text = map_get(otlp, b"severity_text").and_then(decode::as_bytes);
    o.trace_id = map_get(otlp, b"trace_id").and_then(id_low64);
    o.span_id = map_get(otlp, b"span_id").and_then(id_low64);
    o
}

/// The raw value of `key` in a map (first occurrence).
fn map_get<'a>(map: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut r = Reader::new(map);
    let Ok(Value::Map(n)) = r.read() else {
        return None;
    };
    for _ in 0..n {
        let k = r.read().ok()?;
        let v = r.raw_value().ok()?;
        if matches!(k, Value::Str(b) | Value::Bin(b) if b == key) {
            return Some(v);
        }
    }
    None
}

/// The low 64 bits of a trace or span id given as raw bytes (8 or 16) or hex text,
/// which is the form Datadog correlates on.
fn id_low64(raw: &[u8]) -> Option<u64> {
    let bytes = match Reader::new(raw).read().ok()? {
        Value::Bin(b) => b,
        Value::Str(s) if s.len() == 8 || s.len() == 16 => {
            if s.iter().all(u8::is_ascii_hexdigit) {
                let text = std::str::from_utf8(s).ok()?;
                return u64::from_str_radix(text, 16).ok().filter(|&v| v != 0);
            }
            s
        }
        Value::Str(s) if s.len() == 32 && s.iter().all(u8::is_ascii_hexdigit) => {
            let text = std::str::from_utf8(&s[16..]).ok()?;
            return u64::from_str_radix(text, 16).ok().filter(|&v| v != 0);
        }
        _ => return None,
    };
    if bytes.len() != 8 && bytes.len() != 16 {
        return None;
    }
    let low: [u8; 8] = bytes[bytes.len() - 8..].try_into().ok()?;
    Some(u64::from_be_bytes(low)).filter(|&v| v != 0)
}

impl Otlp<'_> {
    /// True when the metadata had none of the fields.
    pub(super) fn is_empty(&self) -> bool {
        self.severity_text.is_none() && self.trace_id.is_none() && self.span_id.is_none()
    }
}

impl Mapper {
    /// Writes `status`, `dd.trace_id` and `dd.span_id` from `otlp`, each unless the record
    /// has that attribute.
    pub(super) fn write_otlp(
        &self,
        otlp: &Otlp,
        present: &Present,
        out: &mut Vec<u8>,
        keys: &mut Vec<(usize, usize)>,
    ) {
        let a = &self.attrs;
        if let Some(sev) = otlp.severity_text
            && let Some(k) = &a.status
            && !present.status
        {
            write_attr(out, keys, k);
            super::write_str(out, sev);
        }
        for (attr, id, has) in [
            (&a.trace_id, otlp.trace_id, present.trace_id),
            (&a.span_id, otlp.span_id, present.span_id),
        ] {
            if let (Some(k), Some(id)) = (attr, id)
                && !has
            {
                write_attr(out, keys, k);
                out.push(b'"');
                out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
                out.push(b'"');
            }
        }
    }
}
