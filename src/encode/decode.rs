//! Chunk bytes -> records (timestamp, metadata, body), borrowing from the chunk.
//!
//! A chunk is msgpack records laid end to end with no outer array. Each record is
//! `[TS, BODY]` (Fluent Bit <= 2.0) or `[[TS, META], BODY]` (>= 2.1); a chunk may mix them.
//! TS is an EventTime (ext type 0: u32 BE seconds, u32 BE nanoseconds), an integer or a
//! float. OpenTelemetry group markers (EventTime seconds 0xFFFFFFFF / 0xFFFFFFFE) are not
//! logs and come out as [`Item::GroupMarker`].
//!
//! Nothing is copied or allocated: a [`Record`] holds slices of the chunk, and the usual
//! record headers are read straight from their bytes. A malformed record is reported as
//! [`Item::Malformed`] and the decoder resynchronises on the next position where a whole,
//! well-formed record starts, so the valid records of a damaged chunk still come out; a work
//! budget bounds what the parses of a damaged chunk read (see [`Chunk`]). Its tests are in
//! `decode/tests.rs` and `decode/resync_work.rs`.

mod msgpack;

use msgpack::entries_of;
pub(crate) use msgpack::{Entry, as_bytes, map_entries};
pub use msgpack::{Reader, Value};

/// Seconds field of an EventTime that marks the start of an OpenTelemetry group.
pub const GROUP_START: u32 = 0xFFFF_FFFF;
/// Seconds field of an EventTime that marks the end of an OpenTelemetry group.
pub const GROUP_END: u32 = 0xFFFF_FFFE;

/// A record's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second (0..1e9).
    pub nanos: u32,
}

impl Timestamp {
    /// Milliseconds since the epoch, rounded half up as Fluent Bit's datadog output does.
    pub fn millis(&self) -> i64 {
        self.secs
            .saturating_mul(1000)
            .saturating_add(((self.nanos as i64) + 500_000) / 1_000_000)
    }
}

/// One log record, borrowing from the chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record<'a> {
    /// When the record was made.
    pub time: Timestamp,
    /// The v2 metadata map's bytes (empty for v1 records).
    pub meta: &'a [u8],
    /// The body map's bytes.
    pub body: &'a [u8],
}

/// What the decoder found at one position of the chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Item<'a> {
    /// A log record.
    Record(Record<'a>),
    /// An OpenTelemetry group start or end marker: not a log, never shipped.
    GroupMarker,
    /// Bytes that are not a record; the decoder has moved past them.
    Malformed {
        /// Offset in the chunk where the bad record started.
        offset: usize,
        /// Bytes skipped to reach the next record (or the end).
        skipped: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Values a chunk's parses may read per byte of the chunk: the work budget's size and the
/// rate at which it refills as the decoder moves on.
const WORK_PER_BYTE: u64 = 8;

/// Iterates over the items of a chunk.
///
/// Work is bounded by a budget of `WORK_PER_BYTE` (8) values per byte of the chunk. A parse
/// that succeeds gets back what it read (a record reads at most two values per byte of
/// it); a parse that fails keeps it spent; every byte the decoder moves past refills it by
/// `WORK_PER_BYTE` (8), up to its first size. So the failed parses of a chunk, those of
/// resynchronisation included, read at most `2 * WORK_PER_BYTE` values per byte of it, and
/// the successful ones at most 4 (a record found by resynchronisation is read twice),
/// however the damage is built. A parse that runs out fails like any malformed record.
/// Only damage built so that many parses read far before failing spends the budget; then
/// a whole record right after it comes out if it reads fewer values than the budget has
/// refilled since.
#[derive(Clone, Debug)]
pub struct Chunk<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Values the parses may still read.
    budget: u64,
    /// Values read by all parses so far (tests bound it).
    #[cfg(test)]
    work: u64,
}

/// Decodes `chunk` lazily; see the module documentation.
pub fn chunk(chunk: &[u8]) -> Chunk<'_> {
    Chunk {
        buf: chunk,
        pos: 0,
        budget: full_budget(chunk.len()),
        #[cfg(test)]
        work: 0,
    }
}

/// The work budget of a chunk of `len` bytes.
fn full_budget(len: usize) -> u64 {
    (len as u64).saturating_mul(WORK_PER_BYTE)
}

enum Parsed<'a> {
    Record(Record<'a>),
    Marker,
}

/// Parses one record at the reader's position; on success the reader is past it.
///
/// With `entries`, the body's pairs are listed there as the body is read (ranges relative to
/// the body), so the mapper need not read the body a second time to find them.
fn parse_record<'a>(
    r: &mut Reader<'a>,
    entries: Option<&mut Vec<Entry>>,
) -> Result<Parsed<'a>, &'static str> {
    let buf: &'a [u8] = r.buf;
    let (time, meta) = match common_header(&buf[r.pos..]) {
        Some((time, meta, len)) => {
            r.pos += len;
            (time, meta)
        }
        None => match header(r)? {
            Some(h) => h,
            None => return Ok(Parsed::Marker),
        },
    };
    parse_body(r, entries, time, meta)
}

/// Reads a record's header, `[timestamp, ` or `[[timestamp, metadata], `, in any encoding;
/// `None` for a group marker, whose body is then skipped.
fn header<'a>(r: &mut Reader<'a>) -> Result<Option<(Timestamp, &'a [u8])>, &'static str> {
    match r.read() {
        Ok(Value::Array(2)) => {}
        Ok(Value::Array(_)) => return Err("record is not a 2-element array"),
        Ok(_) => return Err("record is not an array"),
        Err(_) => return Err("bad msgpack at record start"),
    }
    let mut meta: &[u8] = &[];
    let head = r.read().map_err(|_| "bad msgpack in timestamp")?;
    let ts_value = match head {
        Value::Array(2) => {
            let ts = r.read().map_err(|_| "bad msgpack in timestamp")?;
            let m = r.raw_value().map_err(|_| "bad msgpack in metadata")?;
            if !is_map_header(m) {
                return Err("metadata is not a map");
            }
            meta = m;
            ts
        }
        Value::Array(_) => return Err("record header is not [timestamp, metadata]"),
        other => other,
    };
    let time = match ts_value {
        Value::Ext(0, d) if d.len() == 8 => {
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
            let nanos = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
            if secs == GROUP_START || secs == GROUP_END {
                r.skip().map_err(|_| "bad msgpack in group marker body")?;
                return Ok(None);
            }
            event_time(secs, nanos)
        }
        Value::UInt(s) => Timestamp {
            secs: s.min(i64::MAX as u64 / 1000) as i64,
            nanos: 0,
        },
        // The same bounds for a number however it is encoded (a positive one may be signed).
        Value::Int(s) => Timestamp {
            secs: s.clamp(i64::MIN / 1000, i64::MAX / 1000),
            nanos: 0,
        },
        Value::Float(f) if f.is_finite() => {
            let secs = f.floor();
            let nanos = ((f - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
            Timestamp {
                secs: secs.clamp(-9.2e15, 9.2e15) as i64,
                nanos,
            }
        }
        _ => return Err("timestamp is not an EventTime, integer or float"),
    };
    Ok(Some((time, meta)))
}

/// The header of a record in the layouts Fluent Bit writes for nearly every record, read
/// straight from the bytes: `[[EventTime, {}], ` (2.1+; 4.x writes both arrays with array32
/// headers) or `[EventTime, ` (before 2.1), with the empty map and the arrays in any of
/// their encodings. Returns the time, the metadata and the header's length; `None` for
/// anything else (other timestamps, metadata that is not empty, group markers), which
/// [`parse_record`] reads the general way.
fn common_header(b: &[u8]) -> Option<(Timestamp, &[u8], usize)> {
    let outer = array2_header(b)?;
    let inner = array2_header(&b[outer..]);
    let at = outer + inner.unwrap_or(0);
    let [0xd7, 0x00, s0, s1, s2, s3, n0, n1, n2, n3, ..] = *b.get(at..)? else {
        return None;
    };
    let secs = u32::from_be_bytes([s0, s1, s2, s3]);
    if secs == GROUP_START || secs == GROUP_END {
        return None;
    }
    let nanos = u32::from_be_bytes([n0, n1, n2, n3]);
    let end = at + 10;
    let meta = match (inner, b.get(end..)?) {
        (None, _) => &b[end..end],
        (Some(_), [0x80, ..]) => &b[end..end + 1],
        (Some(_), [0xde, 0, 0, ..]) => &b[end..end + 3],
        (Some(_), [0xdf, 0, 0, 0, 0, ..]) => &b[end..end + 5],
        _ => return None,
    };
    Some((event_time(secs, nanos), meta, end + meta.len()))
}

/// True when `b` starts with a map's header.
fn is_map_header(b: &[u8]) -> bool {
    matches!(b.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

/// The time of an EventTime's two fields.
fn event_time(secs: u32, nanos: u32) -> Timestamp {
    Timestamp {
        secs: secs as i64,
        nanos: nanos.min(999_999_999),
    }
}

/// Reads the body of a record whose header is read (see [`parse_record`]).
fn parse_body<'a>(
    r: &mut Reader<'a>,
    entries: Option<&mut Vec<Entry>>,
    time: Timestamp,
    meta: &'a [u8],
) -> Result<Parsed<'a>, &'static str> {
    let body = match entries {
        Some(list) => {
            let start = r.position();
            let body = &r.buf[start..];
            let mut br = Reader {
                budget: r.budget,
                ..Reader::new(body)
            };
            if !is_map_header(body) {
                return Err("body is not a map");
            }
            let listed = entries_of(&mut br, list);
            r.budget = br.budget;
            listed.map_err(|_| "bad msgpack in body")?;
            r.pos += br.position();
            &body[..br.position()]
        }
        None => {
            // Checked before the body is read: a body that is not a map is refused at once.
            if !is_map_header(&r.buf[r.pos..]) {
                return Err("body is not a map");
            }
            r.raw_value().map_err(|_| "bad msgpack in body")?
        }
    };
    Ok(Parsed::Record(Record { time, meta, body }))
}

/// True where a record plausibly starts: a 2-array whose first element is a timestamp or
/// a 2-array header. Cheap enough to test at every byte while resynchronising.
fn plausible_start(b: &[u8]) -> bool {
    let Some(n) = array2_header(b) else {
        return false;
    };
    let rest = &b[n..];
    let rest = array2_header(rest).map_or(rest, |m| &rest[m..]);
    matches!(
        rest.first(),
        Some(0xd7 | 0xc7 | 0x00..=0x7f | 0xcc..=0xd3 | 0xca | 0xcb)
    )
}

/// The size of a header for an array of 2 at the start of `b`, in any of its encodings
/// (Fluent Bit 2.1+ writes records with array32 headers, `dd 00 00 00 02`).
fn array2_header(b: &[u8]) -> Option<usize> {
    match b {
        [0x92, ..] => Some(1),
        [0xdc, 0x00, 0x02, ..] => Some(3),
        [0xdd, 0x00, 0x00, 0x00, 0x02, ..] => Some(5),
        _ => None,
    }
}

impl<'a> Iterator for Chunk<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        self.advance(None)
    }
}

impl<'a> Chunk<'a> {
    /// Like [`Iterator::next`], and for a record also lists its body's pairs into `entries`
    /// (as [`map_entries`] would), reading the body only once.
    pub fn next_with_entries(&mut self, entries: &mut Vec<Entry>) -> Option<Item<'a>> {
        self.advance(Some(entries))
    }

    fn advance(&mut self, entries: Option<&mut Vec<Entry>>) -> Option<Item<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        match self.try_parse(start, entries) {
            Ok((parsed, len)) => {
                self.move_to(start + len);
                Some(match parsed {
                    Parsed::Record(rec) => Item::Record(rec),
                    Parsed::Marker => Item::GroupMarker,
                })
            }
            Err(reason) => {
                // Move to the next offset where a whole record parses.
                let mut next = start + 1;
                while next < self.buf.len() {
                    if plausible_start(&self.buf[next..]) && self.try_parse(next, None).is_ok() {
                        break;
                    }
                    next += 1;
                    self.refill(1);
                }
                self.pos = next;
                Some(Item::Malformed {
                    offset: start,
                    skipped: next - start,
                    reason,
                })
            }
        }
    }

    /// Parses the record at `at` within the budget: a success is given back what it read,
    /// a failure keeps it spent. Returns the record and its length.
    fn try_parse(
        &mut self,
        at: usize,
        entries: Option<&mut Vec<Entry>>,
    ) -> Result<(Parsed<'a>, usize), &'static str> {
        let mut r = Reader {
            buf: &self.buf[at..],
            pos: 0,
            budget: self.budget,
        };
        let result = parse_record(&mut r, entries);
        #[cfg(test)]
        {
            self.work += self.budget - r.budget;
        }
        match result {
            Ok(parsed) => Ok((parsed, r.position())),
            Err(reason) => {
                self.budget = r.budget;
                Err(if r.budget == 0 {
                    "work budget for damaged records spent"
                } else {
                    reason
                })
            }
        }
    }

    /// Moves the decoder to `pos`, refilling the budget for the bytes passed.
    fn move_to(&mut self, pos: usize) {
        self.refill(pos - self.pos);
        self.pos = pos;
    }

    /// Refills the budget for `passed` bytes, up to its first size.
    fn refill(&mut self, passed: usize) {
        self.budget = full_budget(self.buf.len()).min(
            self.budget
                .saturating_add((passed as u64).saturating_mul(WORK_PER_BYTE)),
        );
    }
}

/// Counts of what a chunk holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Log records.
    pub records: usize,
    /// OpenTelemetry group markers skipped.
    pub markers: usize,
    /// Malformed stretches skipped.
    pub malformed: usize,
}

/// Counts the items of a chunk (used by tests and benchmarks).
pub fn count(data: &[u8]) -> Counts {
    let mut c = Counts::default();
    for item in chunk(data) {
        match item {
            Item::Record(_) => c.records += 1,
            Item::GroupMarker => c.markers += 1,
            Item::Malformed { .. } => c.malformed += 1,
        }
    }
    c
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod resync_work;
