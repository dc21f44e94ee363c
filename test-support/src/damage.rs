//! Damaged chunks that make a msgpack decoder's resynchronisation work hard: the shapes the
//! product's decoder (`src/encode/decode/resync_work.rs`) and the library path
//! (`tests/it/library_path.rs`) must both get through in work linear in the chunk's size.

/// One valid record, `[5, {"a": 1}]`, that every damaged chunk here ends with.
pub const REC: [u8; 6] = [0x92, 0x05, 0x81, 0xa1, b'a', 0x01];

/// `[0, str32 of "\x92\x00" repeated]` then [`REC`], about `len` bytes in all: the chunk of
/// the report that made resynchronisation quadratic (every byte of the string looks like the
/// start of a record).
pub fn reported_chunk(len: usize) -> Vec<u8> {
    let n = (len - 7 - REC.len()) / 2 * 2;
    let mut data = vec![0x92, 0x00, 0xdb];
    data.extend((n as u32).to_be_bytes());
    data.extend([0x92, 0x00].repeat(n / 2));
    data.extend(REC);
    data
}

/// A bad byte, `unit` repeated to fill `len` bytes, a bad byte, then [`REC`].
pub fn repeated(unit: &[u8], len: usize) -> Vec<u8> {
    let mut data = vec![0xc1];
    data.extend(unit.repeat(len / unit.len()));
    data.push(0xc1);
    data.extend(REC);
    data
}

/// Units that, repeated (see [`repeated`]), look like records or their headers at every
/// offset, each with its name for the assertion messages.
pub const SHAPES: [(&str, &[u8]); 6] = [
    ("92 00", &[0x92, 0x00]),
    ("92 c4", &[0x92, 0xc4]),
    ("nested maps", &[0x92, 0x00, 0x81, 0x00]),
    ("nested array32", &[0xdd, 0, 0, 0, 2, 0x00]),
    (
        "map16 of records",
        &[0x92, 0x00, 0xde, 0x7f, 0xff, 0x92, 0x00, 0x80],
    ),
    ("v2 headers", &[0x92, 0x92, 0x00, 0x81, 0x00]),
];

/// The reported chunk and every shape of [`SHAPES`], about `len` bytes each, named.
pub fn adversarial_chunks(len: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut all = vec![("reported", reported_chunk(len))];
    all.extend(
        SHAPES
            .iter()
            .map(|&(name, unit)| (name, repeated(unit, len))),
    );
    all
}

/// Record-like bytes the property tests build damage from (array and map headers, a
/// timestamp, bin and str markers), mixed with arbitrary bytes by the tests.
pub const RECORD_LIKE_BYTES: [u8; 7] = [0x92, 0x00, 0x81, 0xde, 0xff, 0xc4, 0xa1];
