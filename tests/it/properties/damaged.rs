//! Random overwrites, truncations and splices of the real fixtures: nothing panics, every
//! batch is valid and within Datadog's limits, and every record the damage did not touch
//! still comes out, unless a record the damage made up swallowed it.

use super::{case_config, check_batches};
use crate::support::chunks::{Damage, Op, op};
use crate::support::strategies::{config, config_of};
use fluent_bit_datadog::internals::batch;
use fluent_bit_datadog::internals::decode::{self, Item, Reader};
use fluent_bit_datadog::internals::map::{Mapper, Scratch};
use fluent_bit_datadog::internals::options::Config;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::HashSet;
use std::sync::OnceLock;

struct Fixture {
    data: Vec<u8>,
    tag: &'static str,
    /// Byte ranges of the records (not the group markers).
    records: Vec<(usize, usize)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Record,
    Marker,
    Malformed,
}

/// The decoder's items with the byte range each covers, decoding one item at a time.
fn items(data: &[u8]) -> Vec<(usize, usize, Kind)> {
    let mut v = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let item = decode::chunk(&data[pos..]).next().unwrap();
        let (end, kind) = match item {
            Item::Record(_) | Item::GroupMarker => {
                let mut r = Reader::new(&data[pos..]);
                r.skip().unwrap();
                let kind = if matches!(item, Item::Record(_)) {
                    Kind::Record
                } else {
                    Kind::Marker
                };
                (pos + r.position(), kind)
            }
            Item::Malformed {
                offset, skipped, ..
            } => {
                assert_eq!(offset, 0);
                assert!(skipped > 0);
                (pos + skipped, Kind::Malformed)
            }
        };
        v.push((pos, end, kind));
        pos = end;
    }
    v
}

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| {
        let load = |name: &str, tag: &'static str, count: usize| {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let all = items(&data);
            assert!(all.iter().all(|i| i.2 != Kind::Malformed), "{name}");
            let records: Vec<(usize, usize)> = all
                .iter()
                .filter(|i| i.2 == Kind::Record)
                .map(|i| (i.0, i.1))
                .collect();
            assert_eq!(records.len(), count, "{name}");
            Fixture { data, tag, records }
        };
        [
            load("fb-4.2.8-forward-1.msgpack", "main-container-firelens", 143),
            load("fb-4.2.8-otlp-groups.msgpack", "v1_logs", 1),
        ]
    })
}

/// Where the damage lands: mostly near the start of a record, where the structure is.
fn damage(f: &Fixture, near: bool, rec: Index, off: usize, anywhere: Index, op: &Op) -> Damage {
    let at = if near {
        (f.records[rec.index(f.records.len())].0 + off).min(f.data.len() - 1)
    } else {
        anywhere.index(f.data.len())
    };
    Damage::new(&f.data, at, op)
}

fn check_damaged(f: &Fixture, cfg: &Config, d: &Damage) -> Result<(), TestCaseError> {
    let data = d.apply(&f.data);
    let mapper = Mapper::new(cfg);
    let mut spare = Vec::new();
    let (batches, stats) = batch::build(&data, f.tag, &mapper, &mut Scratch::default(), &mut spare);
    check_batches(&batches, &stats);

    let got = items(&data);
    let got_records = got.iter().filter(|i| i.2 == Kind::Record).count();
    prop_assert_eq!(got_records as u64, stats.records);
    prop_assert_eq!(decode::count(&data).records as u64, stats.records);

    // Where the untouched records of the original are in the damaged chunk.
    let end = d.at + d.remove;
    let shift = |x: usize| x + d.insert.len() - d.remove;
    let mut untouched: Vec<(usize, usize)> = Vec::new();
    let (mut before, mut after) = (0, 0);
    for &(a, b) in &f.records {
        if b <= d.at {
            untouched.push((a, b));
            before += 1;
        } else if a >= end {
            untouched.push((shift(a), shift(b)));
            after += 1;
        }
    }
    let original: HashSet<(usize, usize)> = untouched.iter().copied().collect();
    let decoded: HashSet<(usize, usize)> = got
        .iter()
        .filter(|i| i.2 == Kind::Record)
        .map(|i| (i.0, i.1))
        .collect();
    // Items that are neither malformed nor an untouched record: made up from damaged bytes.
    let made_up: Vec<(usize, usize)> = got
        .iter()
        .filter(|i| i.2 != Kind::Malformed && !original.contains(&(i.0, i.1)))
        .map(|i| (i.0, i.1))
        .collect();
    let mut swallowed = 0;
    for &(a, b) in &untouched {
        if decoded.contains(&(a, b)) {
            continue;
        }
        // Lost only when an item made up of damaged bytes ran over it.
        let over = made_up.iter().any(|&(x, y)| x < b && a < y);
        prop_assert!(
            over,
            "untouched record {a}..{b} lost; {} records out, items near it: {:?}",
            stats.records,
            got.iter()
                .filter(|i| i.1 > a.saturating_sub(200) && i.0 < b + 200)
                .collect::<Vec<_>>()
        );
        prop_assert!(a >= d.at, "a record before the damage was lost");
        swallowed += 1;
    }
    prop_assert!(stats.records as usize >= before + after - swallowed);
    Ok(())
}

proptest! {
    #![proptest_config(case_config(64))]

    #[test]
    fn damaged_forward_chunk(
        cfg in config(),
        near in prop::bool::weighted(0.7),
        rec in any::<Index>(),
        off in 0..48usize,
        anywhere in any::<Index>(),
        op in op(),
    ) {
        let f = &fixtures()[0];
        check_damaged(f, &cfg, &damage(f, near, rec, off, anywhere, &op))?;
    }
}

proptest! {
    #![proptest_config(case_config(512))]

    #[test]
    fn damaged_otlp_chunk(
        cfg in config(),
        near in any::<bool>(),
        rec in any::<Index>(),
        off in 0..48usize,
        anywhere in any::<Index>(),
        op in op(),
    ) {
        let f = &fixtures()[1];
        check_damaged(f, &cfg, &damage(f, near, rec, off, anywhere, &op))?;
    }
}

/// Fluent Bit 2.1+ writes records with array32 headers; after a damaged record the decoder
/// must still find them (it used to look for fixarray headers only and lost the rest of the
/// chunk).
#[test]
fn resync_finds_array32_records() {
    let f = &fixtures()[0];
    let mut data = f.data.clone();
    data[0] = 0xc1;
    let c = decode::count(&data);
    // The damaged record's own `[timestamp, metadata]` looks like a v1 record with an empty
    // body, so it comes out too; all 142 others do.
    assert!(c.records >= 142, "{c:?}");
    // The same with the group-start marker of the OTLP chunk: its `[timestamp, metadata]`
    // is a marker of its own, and the log record still comes out.
    let mut data = fixtures()[1].data.clone();
    data[0] = 0xc1;
    let c = decode::count(&data);
    assert_eq!(c.records, 1, "{c:?}");
}

/// Every single-byte truncation point of the small OTLP chunk, and every single-byte
/// overwrite with a few telling values.
#[test]
fn otlp_chunk_every_position() {
    let f = &fixtures()[1];
    let cfg = config_of(&[("provider", "ecs")]);
    for at in 0..f.data.len() {
        for d in [
            Damage {
                at,
                remove: f.data.len() - at,
                insert: vec![],
            },
            Damage {
                at,
                remove: 1,
                insert: vec![0xc1],
            },
            Damage {
                at,
                remove: 1,
                insert: vec![0xff],
            },
            Damage {
                at,
                remove: 1,
                insert: vec![f.data[at] ^ 0x01],
            },
            Damage {
                at,
                remove: 0,
                insert: vec![0x00],
            },
        ] {
            check_damaged(f, &cfg, &d).unwrap_or_else(|e| panic!("{d:?}: {e}"));
        }
    }
}
