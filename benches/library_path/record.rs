//! Records: a chunk's items, framed with rmp and read with rmp-serde, with the product's work
//! budget and resynchronisation rule.

use super::Timestamp;
use super::frame::{Head, WORK_PER_BYTE, array2, head, is_map, plausible_start, skip};
use super::read::{Meta, Otlp, Time, text_of};
use rmp::Marker;

/// One pair of a body: byte ranges in the body, and of the name and value when they are
/// text.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    pub(super) key: (usize, usize),
    pub(super) value: (usize, usize),
    pub(super) name: Option<(usize, usize)>,
    pub(super) text: Option<(usize, usize)>,
}

/// Whether the record's first top-level `partial_message` says it is one part of a line split
/// by the container runtime: the string (or bin) "true" in any case, or boolean true, as the
/// product's mapper reads it.
pub(super) fn is_partial(body: &[u8], entries: &[Entry]) -> bool {
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
    pub(super) fn name_in<'a>(&self, body: &'a [u8]) -> Option<&'a [u8]> {
        self.name.map(|(a, b)| &body[a..b])
    }
    pub(super) fn text_in<'a>(&self, body: &'a [u8]) -> Option<&'a [u8]> {
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

    pub(super) fn advance(
        &mut self,
        entries: Option<&mut Vec<Entry>>,
    ) -> Option<(LibItem<'a>, Otlp<'a>)> {
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
