//! Hostile chunks, and damage done to real ones: what the conformance host, the property
//! tests and the library path are all given.

use proptest::prelude::*;
use proptest::sample::Index;

/// `[1, {"log": "deep record", "deep": [[[...100,000 levels]]]}]`, then a record whose body
/// holds a map declaring 2^32-1 pairs with nothing behind them (a liar), then one normal
/// FireLens record: two records come out, the deep one cut at the nesting limit.
pub fn deep_record_and_a_liar() -> Vec<u8> {
    let mut chunk = vec![0x92, 0x01, 0x82, 0xa3];
    chunk.extend_from_slice(b"log");
    chunk.push(0xab);
    chunk.extend_from_slice(b"deep record");
    chunk.push(0xa4);
    chunk.extend_from_slice(b"deep");
    chunk.extend(std::iter::repeat_n(0x91u8, 100_000));
    chunk.push(0xc0);
    chunk.extend_from_slice(&[0x92, 0x02, 0x81, 0xa1, b'x', 0xdf, 0xff, 0xff, 0xff, 0xff]);
    chunk.extend_from_slice(&conformance_host::firelens_chunk(1, 7, false));
    chunk
}

/// One change to a chunk: `data[at..at + remove]` replaced by `insert`.
#[derive(Clone, Debug)]
pub struct Damage {
    pub at: usize,
    pub remove: usize,
    pub insert: Vec<u8>,
}

impl Damage {
    /// `op` done to `data` at `at` (less than `data.len()`).
    pub fn new(data: &[u8], at: usize, op: &Op) -> Damage {
        let len = data.len();
        match op {
            Op::Overwrite(b) => {
                let n = b.len().min(len - at);
                Damage {
                    at,
                    remove: n,
                    insert: b[..n].to_vec(),
                }
            }
            Op::Truncate => Damage {
                at,
                remove: len - at,
                insert: Vec::new(),
            },
            Op::Splice {
                remove,
                random,
                copy,
            } => {
                let insert = match copy {
                    Some((from, n)) => {
                        let a = from.index(len);
                        data[a..(a + n).min(len)].to_vec()
                    }
                    None => random.clone(),
                };
                Damage {
                    at,
                    remove: (*remove).min(len - at),
                    insert,
                }
            }
        }
    }

    /// The damaged copy of `data`.
    pub fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut d = data[..self.at].to_vec();
        d.extend_from_slice(&self.insert);
        d.extend_from_slice(&data[self.at + self.remove..]);
        d
    }
}

/// What damage does.
#[derive(Clone, Debug)]
pub enum Op {
    /// Bytes overwritten in place (the length does not change).
    Overwrite(Vec<u8>),
    /// The chunk cut short at the position.
    Truncate,
    /// Bytes removed and others (random, or copied from elsewhere in the chunk) inserted.
    Splice {
        remove: usize,
        random: Vec<u8>,
        copy: Option<(Index, usize)>,
    },
}

/// Overwrites, truncations and splices.
pub fn op() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..12).prop_map(Op::Overwrite),
        1 => Just(Op::Truncate),
        3 => (0..64usize, super::strategies::bytes(12), prop::option::of((any::<Index>(), 1..600usize)))
            .prop_map(|(remove, random, copy)| Op::Splice { remove, random, copy }),
    ]
    .boxed()
}
