//! A msgpack value tree and its encoder, for building records in tests: written with
//! `rmp::encode`, so bin, ext, non-string and duplicate keys can be expressed (serde cannot).

/// A msgpack value.
#[derive(Clone, Debug)]
pub enum Mp {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    /// A msgpack str; the bytes need not be UTF-8.
    Str(Vec<u8>),
    Bin(Vec<u8>),
    Arr(Vec<Mp>),
    Map(Vec<(Mp, Mp)>),
    Ext(i8, Vec<u8>),
}

/// Appends the encoding of `m` to `out`.
pub fn enc_into(m: &Mp, out: &mut Vec<u8>) {
    use rmp::encode::*;
    match m {
        Mp::Nil => write_nil(out).unwrap(),
        Mp::Bool(b) => write_bool(out, *b).unwrap(),
        Mp::UInt(n) => {
            write_uint(out, *n).unwrap();
        }
        Mp::Int(n) => {
            write_sint(out, *n).unwrap();
        }
        Mp::F32(f) => write_f32(out, *f).unwrap(),
        Mp::F64(f) => write_f64(out, *f).unwrap(),
        Mp::Str(b) => {
            write_str_len(out, b.len() as u32).unwrap();
            out.extend_from_slice(b);
        }
        Mp::Bin(b) => write_bin(out, b).unwrap(),
        Mp::Arr(items) => {
            write_array_len(out, items.len() as u32).unwrap();
            for i in items {
                enc_into(i, out);
            }
        }
        Mp::Map(pairs) => {
            write_map_len(out, pairs.len() as u32).unwrap();
            for (k, v) in pairs {
                enc_into(k, out);
                enc_into(v, out);
            }
        }
        Mp::Ext(t, d) => {
            write_ext_meta(out, d.len() as u32, *t).unwrap();
            out.extend_from_slice(d);
        }
    }
}

/// An EventTime (ext type 0: u32 BE seconds, u32 BE nanoseconds).
pub fn event_time(secs: u32, nanos: u32) -> Mp {
    let mut d = secs.to_be_bytes().to_vec();
    d.extend_from_slice(&nanos.to_be_bytes());
    Mp::Ext(0, d)
}
