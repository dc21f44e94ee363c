//! Our reader against rmpv.
//!
//! Valid msgpack in every header width: the values are written with a header chosen among all
//! that can hold them (a 3-byte str may be written str8, str16 or str32, 5 as a positive fixint,
//! u8..u64 or i8..i64), since Fluent Bit writes some non-minimal headers (array32 records) and
//! rmpv's encoder writes only the smallest one. Both decoders read the same bytes and must agree.

use super::case_config;
use crate::support::strategies::{bytes, leaf};
use fluent_bit_datadog::internals::decode::{self, Item, Reader};
use proptest::prelude::*;
use test_support::msgpack::{Mp, event_time};

/// The header chosen for each value, in turn: taken from a generated list, cycled.
struct Widths<'a> {
    choices: &'a [u8],
    at: usize,
}

impl Widths<'_> {
    /// One of `n` candidate encodings.
    fn pick(&mut self, n: usize) -> usize {
        let c = self
            .choices
            .get(self.at % self.choices.len().max(1))
            .copied();
        self.at += 1;
        c.unwrap_or(0) as usize % n
    }
}

/// Appends a length header: one of `forms` (marker, length bytes) that fits `len`, after a
/// fix form `fix` when `len` fits it.
fn enc_len(
    len: usize,
    fix: Option<(u8, usize)>,
    forms: [u8; 3],
    w: &mut Widths,
    out: &mut Vec<u8>,
) {
    let mut cands: Vec<(u8, usize)> = Vec::new();
    if let Some((marker, max)) = fix {
        if len <= max {
            cands.push((marker | len as u8, 0));
        }
    }
    for (m, size) in forms.into_iter().zip([1usize, 2, 4]) {
        if m != 0 && (size == 4 || len < 1 << (8 * size)) {
            cands.push((m, size));
        }
    }
    let (m, size) = cands[w.pick(cands.len())];
    out.push(m);
    out.extend_from_slice(&(len as u32).to_be_bytes()[4 - size..]);
}

/// Appends `n` in one of the integer encodings that hold it.
fn enc_int(n: i128, w: &mut Widths, out: &mut Vec<u8>) {
    let mut cands: Vec<Vec<u8>> = Vec::new();
    if (0..128).contains(&n) || (-32..0).contains(&n) {
        cands.push(vec![n as i8 as u8]);
    }
    for (m, size) in [(0xccu8, 1usize), (0xcd, 2), (0xce, 4), (0xcf, 8)] {
        if n >= 0 && n < 1i128 << (8 * size) {
            let mut b = vec![m];
            b.extend_from_slice(&(n as u64).to_be_bytes()[8 - size..]);
            cands.push(b);
        }
    }
    for (m, size) in [(0xd0u8, 1usize), (0xd1, 2), (0xd2, 4), (0xd3, 8)] {
        let half = 1i128 << (8 * size - 1);
        if (-half..half).contains(&n) {
            let mut b = vec![m];
            b.extend_from_slice(&(n as i64).to_be_bytes()[8 - size..]);
            cands.push(b);
        }
    }
    let i = w.pick(cands.len());
    out.extend_from_slice(&cands[i]);
}

/// Appends `m` with each header chosen by `w` (see [`Widths`]).
fn enc_wide(m: &Mp, w: &mut Widths, out: &mut Vec<u8>) {
    match m {
        Mp::Nil => out.push(0xc0),
        Mp::Bool(b) => out.push(0xc2 | *b as u8),
        Mp::UInt(n) => enc_int(*n as i128, w, out),
        Mp::Int(n) => enc_int(*n as i128, w, out),
        Mp::F32(f) => {
            out.push(0xca);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Mp::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Mp::Str(b) => {
            enc_len(b.len(), Some((0xa0, 31)), [0xd9, 0xda, 0xdb], w, out);
            out.extend_from_slice(b);
        }
        Mp::Bin(b) => {
            enc_len(b.len(), None, [0xc4, 0xc5, 0xc6], w, out);
            out.extend_from_slice(b);
        }
        Mp::Arr(items) => {
            enc_len(items.len(), Some((0x90, 15)), [0, 0xdc, 0xdd], w, out);
            for i in items {
                enc_wide(i, w, out);
            }
        }
        Mp::Map(pairs) => {
            enc_len(pairs.len(), Some((0x80, 15)), [0, 0xde, 0xdf], w, out);
            for (k, v) in pairs {
                enc_wide(k, w, out);
                enc_wide(v, w, out);
            }
        }
        Mp::Ext(t, d) => {
            let fixext = [1usize, 2, 4, 8, 16].iter().position(|&n| n == d.len());
            match fixext {
                Some(i) if w.pick(2) == 0 => out.push(0xd4 + i as u8),
                _ => enc_len(d.len(), None, [0xc7, 0xc8, 0xc9], w, out),
            }
            out.push(*t as u8);
            out.extend_from_slice(d);
        }
    }
}

/// Any value, with long strings (str16 holding more than 255 bytes) and every ext length.
fn any_value() -> BoxedStrategy<Mp> {
    let leaf = prop_oneof![
        8 => leaf(),
        1 => any::<i8>().prop_map(|n| Mp::Int(n as i64)),
        1 => any::<i16>().prop_map(|n| Mp::Int(n as i64)),
        1 => any::<i32>().prop_map(|n| Mp::Int(n as i64)),
        1 => any::<u16>().prop_map(|n| Mp::UInt(n as u64)),
        1 => any::<u32>().prop_map(|n| Mp::UInt(n as u64)),
        1 => bytes(300).prop_map(Mp::Str),
        1 => bytes(300).prop_map(Mp::Bin),
        1 => (any::<i8>(), bytes(20)).prop_map(|(t, d)| Mp::Ext(t, d)),
    ];
    leaf.prop_recursive(4, 40, 18, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..18).prop_map(Mp::Arr),
            prop::collection::vec((inner.clone(), inner), 0..18).prop_map(Mp::Map),
        ]
    })
    .boxed()
}

/// A timestamp the decoder takes for a record's (not a group marker's).
fn record_time() -> BoxedStrategy<Mp> {
    prop_oneof![
        3 => (0..decode::GROUP_END, any::<u32>()).prop_map(|(s, n)| event_time(s, n)),
        1 => any::<u64>().prop_map(Mp::UInt),
        1 => any::<i64>().prop_map(Mp::Int),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Mp::F64),
        1 => any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(Mp::F32),
    ]
    .boxed()
}

/// Requires the values `r` reads next to be `v`, value by value.
fn same(r: &mut Reader<'_>, v: &rmpv::Value) -> Result<(), TestCaseError> {
    use decode::Value as V;
    use rmpv::Value as R;
    let at = r.position();
    let ours = r
        .read()
        .map_err(|e| TestCaseError::fail(format!("at {at}: {e} where rmpv read {v:?}")))?;
    let agree = match (ours, v) {
        (V::Nil, R::Nil) => true,
        (V::Bool(a), R::Boolean(b)) => a == *b,
        (V::UInt(a), R::Integer(b)) => b.as_u64() == Some(a),
        (V::Int(a), R::Integer(b)) => b.as_i64() == Some(a),
        (V::Float(a), R::F32(b)) => a.to_bits() == (*b as f64).to_bits(),
        (V::Float(a), R::F64(b)) => a.to_bits() == b.to_bits(),
        (V::Str(a), R::String(b)) => a == b.as_bytes(),
        (V::Bin(a), R::Binary(b)) => a == &b[..],
        (V::Ext(t, a), R::Ext(u, b)) => t == *u && a == &b[..],
        (V::Array(n), R::Array(items)) => {
            prop_assert_eq!(n as usize, items.len(), "array at {}", at);
            for i in items {
                same(r, i)?;
            }
            true
        }
        (V::Map(n), R::Map(pairs)) => {
            prop_assert_eq!(n as usize, pairs.len(), "map at {}", at);
            for (k, v) in pairs {
                same(r, k)?;
                same(r, v)?;
            }
            true
        }
        _ => false,
    };
    prop_assert!(agree, "at {}: we read {:?}, rmpv {:?}", at, ours, v);
    Ok(())
}

/// Requires `bytes` to hold exactly the value `v`.
fn same_whole(bytes: &[u8], v: &rmpv::Value) -> Result<(), TestCaseError> {
    let mut r = Reader::new(bytes);
    same(&mut r, v)?;
    prop_assert!(r.is_empty(), "{} bytes left after {:?}", r.remaining(), v);
    Ok(())
}

/// The time of a record whose timestamp rmpv read as `v`, by the documented rules.
fn time_of(v: &rmpv::Value) -> decode::Timestamp {
    use rmpv::Value as R;
    let (secs, nanos) = match v {
        R::Ext(0, d) => (
            u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as i64,
            u32::from_be_bytes([d[4], d[5], d[6], d[7]]).min(999_999_999),
        ),
        R::Integer(i) => match i.as_i64() {
            Some(s) => (s.clamp(i64::MIN / 1000, i64::MAX / 1000), 0),
            None => (i64::MAX / 1000, 0),
        },
        R::F32(_) | R::F64(_) => {
            let f = v.as_f64().unwrap();
            let secs = f.floor();
            let nanos = ((f - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
            (secs.clamp(-9.2e15, 9.2e15) as i64, nanos)
        }
        other => panic!("not a record time: {other:?}"),
    };
    decode::Timestamp { secs, nanos }
}

proptest! {
    #![proptest_config(case_config(256))]

    /// Valid records, v1 and v2, in every header width: our reader, value by value, and the
    /// chunk decoder (timestamps, metadata, body, the body's listed pairs) agree with rmpv.
    #[test]
    fn reader_and_decoder_agree_with_rmpv(
        recs in prop::collection::vec(
            (
                record_time(),
                prop::option::of(prop::collection::vec((any_value(), any_value()), 0..6)),
                prop::collection::vec((any_value(), any_value()), 0..12),
            ),
            1..4,
        ),
        choices in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let mut data = Vec::new();
        let mut w = Widths { choices: &choices, at: 0 };
        for (ts, meta, body) in &recs {
            let head = match meta {
                None => ts.clone(),
                Some(m) => Mp::Arr(vec![ts.clone(), Mp::Map(m.clone())]),
            };
            enc_wide(&Mp::Arr(vec![head, Mp::Map(body.clone())]), &mut w, &mut data);
        }

        // rmpv's reading of each record, and our reader's, value by value.
        let mut rest = &data[..];
        let mut r = Reader::new(&data);
        let mut theirs = Vec::new();
        while !rest.is_empty() {
            let v = rmpv::decode::read_value(&mut rest)
                .map_err(|e| TestCaseError::fail(format!("rmpv: {e}")))?;
            same(&mut r, &v)?;
            prop_assert_eq!(r.position(), data.len() - rest.len());
            theirs.push(v);
        }
        prop_assert_eq!(theirs.len(), recs.len());

        // The chunk decoder's records.
        let mut c = decode::chunk(&data);
        let mut entries = Vec::new();
        for v in &theirs {
            let rmpv::Value::Array(rec) = v else { unreachable!() };
            let (ts, meta) = match &rec[0] {
                rmpv::Value::Array(h) => (&h[0], Some(&h[1])),
                ts => (ts, None),
            };
            let Some(Item::Record(ours)) = c.next_with_entries(&mut entries) else {
                return Err(TestCaseError::fail(format!("no record for {v:?}")));
            };
            prop_assert_eq!(ours.time, time_of(ts));
            match meta {
                Some(m) => same_whole(ours.meta, m)?,
                None => prop_assert!(ours.meta.is_empty()),
            }
            same_whole(ours.body, &rec[1])?;
            let rmpv::Value::Map(pairs) = &rec[1] else { unreachable!() };
            prop_assert_eq!(entries.len(), pairs.len());
            for (e, (k, v)) in entries.iter().zip(pairs) {
                same_whole(&ours.body[e.key.0..e.key.1], k)?;
                same_whole(&ours.body[e.value.0..e.value.1], v)?;
                let text = |v: &rmpv::Value| match v {
                    rmpv::Value::String(s) => Some(s.as_bytes().to_vec()),
                    rmpv::Value::Binary(b) => Some(b.clone()),
                    _ => None,
                };
                prop_assert_eq!(e.name_in(ours.body).map(<[u8]>::to_vec), text(k));
                prop_assert_eq!(e.text_in(ours.body).map(<[u8]>::to_vec), text(v));
            }
        }
        prop_assert_eq!(c.next(), None);
    }
}
