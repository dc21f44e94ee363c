//! Msgpack read one value header at a time, within a budget, and a map's pairs as byte ranges.

use std::fmt;

/// One msgpack value header; strings and binaries borrow from the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// A negative integer (or any signed encoding).
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A float (32-bit values are widened).
    Float(f64),
    /// A msgpack str: bytes that should be, but may not be, UTF-8.
    Str(&'a [u8]),
    /// A msgpack bin.
    Bin(&'a [u8]),
    /// An array header: this many values follow.
    Array(u32),
    /// A map header: this many key/value pairs follow.
    Map(u32),
    /// An extension value: its type and data.
    Ext(i8, &'a [u8]),
}

/// Why bytes could not be read as msgpack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The input ended inside a value.
    Truncated,
    /// The reserved marker 0xc1.
    InvalidMarker,
    /// A container declares more elements than bytes remain.
    LengthTooLarge,
    /// The chunk's work budget for damaged records is spent (see `decode::Chunk`).
    WorkBudget,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated msgpack value",
            Error::InvalidMarker => "invalid msgpack marker 0xc1",
            Error::LengthTooLarge => "msgpack length larger than the rest of the chunk",
            Error::WorkBudget => "work budget for damaged records spent",
        })
    }
}

/// A pull reader over msgpack bytes.
///
/// Skipping a value is iterative, so no nesting depth can exhaust the stack, and a declared
/// length is checked against the bytes left before anything trusts it.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    /// Values this reader may still read (see `decode::Chunk`'s work budget); unlimited by
    /// default.
    pub(super) budget: u64,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            budget: u64::MAX,
        }
    }

    /// Counts `n` values read; fails once the budget is spent.
    fn charge(&mut self, n: u64) -> Result<(), Error> {
        match self.budget.checked_sub(n) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => {
                self.budget = 0;
                Err(Error::WorkBudget)
            }
        }
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len8(&mut self) -> Result<usize, Error> {
        Ok(self.byte()? as usize)
    }
    fn len16(&mut self) -> Result<usize, Error> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn len32(&mut self) -> Result<usize, Error> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn container(&mut self, n: usize, per_item: usize) -> Result<u32, Error> {
        // Every element takes at least one byte: a larger count cannot be honest.
        if n.saturating_mul(per_item) > self.remaining() {
            return Err(Error::LengthTooLarge);
        }
        Ok(n as u32)
    }

    fn ext(&mut self, n: usize) -> Result<Value<'a>, Error> {
        let ty = self.byte()? as i8;
        Ok(Value::Ext(ty, self.take(n)?))
    }

    /// Reads the next value header (for containers, only the element count).
    pub fn read(&mut self) -> Result<Value<'a>, Error> {
        self.charge(1)?;
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => Value::UInt(m as u64),
            0x80..=0x8f => Value::Map(self.container((m & 0x0f) as usize, 2)?),
            0x90..=0x9f => Value::Array(self.container((m & 0x0f) as usize, 1)?),
            0xa0..=0xbf => Value::Str(self.take((m & 0x1f) as usize)?),
            0xc0 => Value::Nil,
            0xc1 => return Err(Error::InvalidMarker),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.len8()?;
                Value::Bin(self.take(n)?)
            }
            0xc5 => {
                let n = self.len16()?;
                Value::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = self.len32()?;
                Value::Bin(self.take(n)?)
            }
            0xc7 => {
                let n = self.len8()?;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            0xca => Value::Float(f32::from_be_bytes(self.be()?) as f64),
            0xcb => Value::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Value::UInt(self.byte()? as u64),
            0xcd => Value::UInt(u16::from_be_bytes(self.be()?) as u64),
            0xce => Value::UInt(u32::from_be_bytes(self.be()?) as u64),
            0xcf => Value::UInt(u64::from_be_bytes(self.be()?)),
            0xd0 => Value::Int(self.byte()? as i8 as i64),
            0xd1 => Value::Int(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => Value::Int(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => Value::Int(i64::from_be_bytes(self.be()?)),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = self.len8()?;
                Value::Str(self.take(n)?)
            }
            0xda => {
                let n = self.len16()?;
                Value::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.len32()?;
                Value::Str(self.take(n)?)
            }
            0xdc => {
                let n = self.len16()?;
                Value::Array(self.container(n, 1)?)
            }
            0xdd => {
                let n = self.len32()?;
                Value::Array(self.container(n, 1)?)
            }
            0xde => {
                let n = self.len16()?;
                Value::Map(self.container(n, 2)?)
            }
            0xdf => {
                let n = self.len32()?;
                Value::Map(self.container(n, 2)?)
            }
            0xe0..=0xff => Value::Int(m as i8 as i64),
        })
    }

    /// Skips one whole value, however deeply nested, without recursion.
    pub fn skip(&mut self) -> Result<(), Error> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match self.read()? {
                Value::Array(n) => pending += n as u64,
                Value::Map(n) => pending += 2 * n as u64,
                _ => {}
            }
        }
        Ok(())
    }

    /// Skips one whole value and returns its bytes.
    pub fn raw_value(&mut self) -> Result<&'a [u8], Error> {
        let start = self.pos;
        self.skip()?;
        Ok(&self.buf[start..self.pos])
    }
}

/// One key/value pair of a map: byte ranges of the key and the value in the map's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Start and end of the key's bytes.
    pub key: (usize, usize),
    /// Start and end of the value's bytes.
    pub value: (usize, usize),
    /// Start and end of the key's text when the key is a str or bin (most are), so callers
    /// can compare names without decoding the key again.
    pub name: Option<(usize, usize)>,
    /// Start and end of the value's text when the value is a str or bin.
    pub text: Option<(usize, usize)>,
}

impl Entry {
    /// The key's text (see [`Entry::name`]) in `map`, the bytes the entry was listed from.
    pub fn name_in<'a>(&self, map: &'a [u8]) -> Option<&'a [u8]> {
        self.name.map(|(a, b)| &map[a..b])
    }

    /// The value's text (see [`Entry::text`]) in `map`, the bytes the entry was listed from.
    pub fn text_in<'a>(&self, map: &'a [u8]) -> Option<&'a [u8]> {
        self.text.map(|(a, b)| &map[a..b])
    }
}

/// Lists a map's pairs into `out` (cleared first, so the caller can reuse it).
///
/// Ranges rather than slices keep `out` free of lifetimes, so one buffer serves every record.
/// A value that is not a map yields no pairs.
pub(crate) fn map_entries(map: &[u8], out: &mut Vec<Entry>) -> Result<(), Error> {
    entries_of(&mut Reader::new(map), out)
}

/// Reads one map from `r` (positioned at its header, at offset 0 of its buffer), listing
/// its pairs into `out`; a value that is not a map yields no pairs.
pub(super) fn entries_of(r: &mut Reader<'_>, out: &mut Vec<Entry>) -> Result<(), Error> {
    out.clear();
    let n = match r.buf.get(r.pos) {
        Some(&m @ 0x80..=0x8f) => {
            r.pos += 1;
            (m & 0x0f) as u32
        }
        _ => match r.read()? {
            Value::Map(n) => n,
            _ => return Ok(()),
        },
    };
    for _ in 0..n {
        r.charge(2)?;
        if let Some(e) = string_pair(r.buf, r.pos) {
            r.pos = e.value.1;
            out.push(e);
            continue;
        }
        let k = r.position();
        let name = read_text(r)?;
        let v = r.position();
        let text = read_text(r)?;
        out.push(Entry {
            key: (k, v),
            value: (v, r.position()),
            name,
            text,
        });
    }
    Ok(())
}

/// The usual pair of a log record, a fixstr or str8 key and value, read straight
/// from the bytes at `k`; `None` for anything else (or a pair cut short), which
/// [`entries_of`] reads the general way.
#[inline(always)]
fn string_pair(buf: &[u8], k: usize) -> Option<Entry> {
    let (name, v) = short_str(buf, k)?;
    let (text, end) = short_str(buf, v)?;
    if end > buf.len() {
        return None;
    }
    Some(Entry {
        key: (k, v),
        value: (v, end),
        name: Some((name, v)),
        text: Some((text, end)),
    })
}

/// Where the text of a fixstr or str8 at `buf[at..]` starts and ends (the end is not checked
/// against the buffer); `None` for any other value. The strings of log records are nearly
/// all of these two kinds.
#[inline(always)]
fn short_str(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let (start, len) = match *buf.get(at..)? {
        [m @ 0xa0..=0xbf, ..] => (at + 1, (m & 0x1f) as usize),
        [0xd9, n, ..] => (at + 2, n as usize),
        _ => return None,
    };
    Some((start, start + len))
}

/// Reads one whole value; returns the range of its bytes when it is a str or bin.
#[inline(always)]
fn read_text(r: &mut Reader<'_>) -> Result<Option<(usize, usize)>, Error> {
    // Most keys and values of log records are short strings: read those headers directly.
    let Some((start, end)) = short_str(r.buf, r.pos) else {
        return read_text_slow(r);
    };
    if end > r.buf.len() {
        return Err(Error::Truncated);
    }
    r.pos = end;
    Ok(Some((start, end)))
}

/// [`read_text`] for any value.
fn read_text_slow(r: &mut Reader<'_>) -> Result<Option<(usize, usize)>, Error> {
    let mut probe = r.clone();
    match probe.read()? {
        Value::Str(b) | Value::Bin(b) => {
            *r = probe;
            Ok(Some((r.position() - b.len(), r.position())))
        }
        Value::Array(_) | Value::Map(_) => {
            r.skip()?;
            Ok(None)
        }
        _ => {
            // A scalar: read whole already.
            *r = probe;
            Ok(None)
        }
    }
}

/// The bytes of a str or bin value, or `None` for any other value.
pub(crate) fn as_bytes(raw: &[u8]) -> Option<&[u8]> {
    match Reader::new(raw).read() {
        Ok(Value::Str(b) | Value::Bin(b)) => Some(b),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
