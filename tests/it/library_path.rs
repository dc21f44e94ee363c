//! The library path (benches/library_path/mod.rs: rmp-serde and serde_json) against the
//! product's path (`batch::build`): the same batches, byte for byte, on the fixtures, the
//! generated FireLens workload, the varied workload and arbitrary records under arbitrary
//! options (the generators of `support::strategies`); and the product's hostile-chunk,
//! resynchronisation and work-budget checks (`properties::damaged`, src/encode/decode/tests.rs,
//! src/encode/decode/resync_work.rs) on the library path.

#[path = "../../benches/library_path/mod.rs"]
mod lib_path;

use crate::support::chunks::{Damage, deep_record_and_a_liar, op};
use crate::support::host;
use crate::support::strategies::{Rec, body, config, config_of, leaf, meta, timestamp, value};
use fluent_bit_datadog::internals::batch::{self, Batch, BuildStats};
use fluent_bit_datadog::internals::decode::{self, Item};
use fluent_bit_datadog::internals::map::{Mapper, NESTING_MARKER, Scratch};
use fluent_bit_datadog::internals::options::Config;
use lib_path::{LibItem, LibMapper, LibScratch};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use test_support::damage::{REC, RECORD_LIKE_BYTES, adversarial_chunks, repeated};

/// `n` cases per property. Failures are kept in `library_path.proptest-regressions` beside
/// this file, whose seeds are replayed first (proptest's default place would be
/// `tests/proptest-regressions/library_path.txt`, this binary having a `main.rs`).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(n)
    }
}

/// The bench's configuration: FireLens with ECS tags, a service, a source and static tags.
fn firelens_config() -> Config {
    config_of(&[
        ("provider", "ecs"),
        ("dd_service", "checkout"),
        ("dd_source", "firelens"),
        ("dd_tags", "env:prod,team:payments"),
    ])
}

/// A batch's JSON array and its objects' ranges.
type BatchBytes = (Vec<u8>, Vec<(usize, usize)>);

/// What a build made, without the reason text of the first malformed stretch (the two paths
/// word their reasons alike but need not agree on which check failed first).
fn outcome(batches: Vec<Batch>, stats: BuildStats) -> (Vec<BatchBytes>, [u64; 5]) {
    let b = batches.into_iter().map(|b| (b.json, b.objects)).collect();
    let s = [
        stats.records,
        stats.markers,
        stats.malformed,
        stats.truncated,
        stats.too_large,
    ];
    (b, s)
}

/// Both paths on `chunks`, under `cfg`, with scratch kept across chunks as a worker keeps
/// it: the same batches, byte for byte, and the same counts.
fn same_on(cfg: &Config, tag: &str, chunks: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let (mapper, lib) = (Mapper::new(cfg), LibMapper::new(cfg));
    let (mut scratch, mut lib_scratch) = (Scratch::default(), LibScratch::default());
    for (n, c) in chunks.iter().enumerate() {
        let ours = batch::build(c, tag, &mapper, &mut scratch, &mut Vec::new());
        let theirs = lib_path::build(c, tag, &lib, &mut lib_scratch, &mut Vec::new());
        let first = (
            ours.1.first_malformed.map(|m| m.0),
            theirs.1.first_malformed.map(|m| m.0),
        );
        let (ours, theirs) = (outcome(ours.0, ours.1), outcome(theirs.0, theirs.1));
        prop_assert_eq!(&ours.1, &theirs.1, "chunk {}: counts", n);
        prop_assert_eq!(first.0, first.1, "chunk {}: first malformed offset", n);
        prop_assert_eq!(ours.0.len(), theirs.0.len(), "chunk {}: batches", n);
        for (i, (a, b)) in ours.0.iter().zip(&theirs.0).enumerate() {
            if a.0 != b.0 {
                let at = a.0.iter().zip(&b.0).position(|(x, y)| x != y).unwrap_or(0);
                let show = |j: &[u8]| {
                    String::from_utf8_lossy(&j[at.saturating_sub(200)..(at + 200).min(j.len())])
                        .into_owned()
                };
                prop_assert!(
                    false,
                    "chunk {} batch {}: differs at byte {}:\nproduct: {}\nlibrary: {}",
                    n,
                    i,
                    at,
                    show(&a.0),
                    show(&b.0)
                );
            }
            prop_assert_eq!(&a.1, &b.1, "chunk {} batch {}: object ranges", n, i);
        }
    }
    Ok(())
}

fn same(cfg: &Config, tag: &str, chunks: &[Vec<u8>]) {
    if let Err(e) = same_on(cfg, tag, chunks) {
        panic!("{e}");
    }
}

const FIXTURES: [&str; 4] = [
    "fb-1.9.10-forward.msgpack",
    "fb-4.2.8-forward-1.msgpack",
    "fb-4.2.8-forward-2.msgpack",
    "fb-4.2.8-otlp-groups.msgpack",
];

#[test]
fn fixtures_match_byte_for_byte() {
    let all: Vec<Vec<u8>> = FIXTURES.iter().map(|f| host::fixture(f)).collect();
    for cfg in [
        firelens_config(),
        config_of(&[]),
        config_of(&[
            ("include_tag_key", "on"),
            ("json_date_key", "timestamp"),
            ("dd_message_key", "log"),
            ("dd_hostname", "web-1"),
        ]),
    ] {
        same(&cfg, host::FIRELENS_TAG, &all);
    }
}

#[test]
fn generated_and_varied_workloads_match_byte_for_byte() {
    let cfg = firelens_config();
    let generated: Vec<Vec<u8>> = (0..3)
        .map(|i| host::firelens_chunk(2000, i * 2000, i != 1))
        .collect();
    same(&cfg, host::FIRELENS_TAG, &generated);
    let varied: Vec<Vec<u8>> = (0..3).map(|i| host::varied_chunk(2000, i * 2000)).collect();
    same(&cfg, host::FIRELENS_TAG, &varied);
    same(&config_of(&[]), "t", &varied);
}

// ---------------------------------------------------------------------------------------
// Arbitrary records under arbitrary options

/// A record the decoder may refuse: the shared generators' record, with metadata that may
/// not be a map and a body that may not be one either.
fn any_record() -> BoxedStrategy<Vec<u8>> {
    (
        timestamp(),
        prop::option::of(prop_oneof![2 => meta(), 1 => leaf()]),
        prop_oneof![8 => body(), 1 => value()],
    )
        .prop_map(|(ts, meta, body)| {
            let mut out = Vec::new();
            Rec { ts, meta, body }.encode(&mut out);
            out
        })
        .boxed()
}

proptest! {
    #![proptest_config(cases(512))]

    /// Chunks of arbitrary records (valid or refused, group markers among them) under
    /// arbitrary options: the same batches, byte for byte, and the same counts. Records
    /// are repeated, so the product's tag and plan caches are exercised.
    #[test]
    fn arbitrary_records_match_byte_for_byte(
        cfg in config(),
        records in prop::collection::vec(any_record(), 1..8),
        repeat in 1..4usize,
    ) {
        let mut chunk = Vec::new();
        for _ in 0..repeat {
            for r in &records {
                chunk.extend_from_slice(r);
            }
        }
        same_on(&cfg, "tag.one", &[chunk])?;
    }
}

// ---------------------------------------------------------------------------------------
// Hostile chunks and resynchronisation

proptest! {
    #![proptest_config(cases(256))]

    /// Random overwrites, truncations and splices of the real fixtures: the library path
    /// gives the product's batches and counts, so it resynchronises on the same records.
    #[test]
    fn damaged_fixtures_match_byte_for_byte(
        cfg in config(),
        fixture in 1..4usize,
        at in any::<Index>(),
        op in op(),
    ) {
        let data = host::fixture(FIXTURES[fixture]);
        let d = Damage::new(&data, at.index(data.len()), &op).apply(&data);
        same_on(&cfg, "t", &[d])?;
    }
}

/// The two cases `library_path.proptest-regressions` keeps, as its seeds gave them to the
/// generators of the time: a record `[[EventTime 0, {f32: nil}], nil]`, and a zero byte
/// before the first record of a fixture.
#[test]
fn the_kept_regressions_match_byte_for_byte() {
    let record = [
        0x92, 0x92, 0xd7, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0xca, 0x76, 0x97, 0x99, 0x98, 0xc0,
        0xc0,
    ];
    same(&config_of(&[]), "tag.one", &[record.to_vec()]);
    let mut spliced = vec![0x00];
    spliced.extend(host::fixture(FIXTURES[1]));
    same(&config_of(&[]), "t", &[spliced]);
}

/// Every item the library decoder finds, as the product's decoder finds it: records with
/// the same time, metadata and body, markers, and malformed stretches at the same offsets.
fn same_items(data: &[u8]) {
    let ours: Vec<Item> = decode::chunk(data).collect();
    let theirs: Vec<LibItem> = lib_path::chunk(data).collect();
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        match (a, b) {
            (Item::Record(a), LibItem::Record(b)) => {
                assert_eq!((a.time, a.meta, a.body), (b.time, b.meta, b.body));
            }
            (Item::GroupMarker, LibItem::GroupMarker) => {}
            (
                Item::Malformed {
                    offset: o1,
                    skipped: s1,
                    ..
                },
                LibItem::Malformed {
                    offset: o2,
                    skipped: s2,
                    ..
                },
            ) => assert_eq!((o1, s1), (o2, s2)),
            _ => panic!("{a:?} vs {b:?}"),
        }
    }
}

#[test]
fn resync_finds_array32_records_after_every_damaged_byte() {
    // Fluent Bit 2.1+ writes array32 headers; after a bad byte the rest must still come out.
    let data = host::fixture("fb-4.2.8-forward-1.msgpack");
    let mut d = data.clone();
    d[0] = 0xc1;
    assert!(
        lib_path::chunk(&d)
            .filter(|i| matches!(i, LibItem::Record(_)))
            .count()
            >= 142
    );
    same_items(&d);
    // The OTLP chunk damaged at every position, one byte at a time.
    let otlp = host::fixture("fb-4.2.8-otlp-groups.msgpack");
    for at in 0..otlp.len() {
        for b in [0xc1, 0x00, 0x92, 0xff] {
            let mut d = otlp.clone();
            d[at] = b;
            same_items(&d);
        }
    }
}

#[test]
fn a_record_nested_100000_levels_deep_and_a_liar() {
    // The conformance host's hostile chunk (tests/it/conformance.rs).
    let chunk = deep_record_and_a_liar();
    // On a thread of its own: rmp-serde recurses once per level up to its limit of 1024,
    // which (measured) takes 128-256 KiB of stack in a release build and 2-3 MiB in a debug
    // one, more than a test thread's 2 MiB. The product's path recurses not at all (it
    // runs on Fluent Bit's 24 KiB coroutine stack in tests/it/conformance.rs).
    let t = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let cfg = config_of(&[]);
            same(&config_of(&[]), "t", std::slice::from_ref(&chunk));
            let (batches, stats) = lib_path::build(
                &chunk,
                "t",
                &LibMapper::new(&cfg),
                &mut LibScratch::default(),
                &mut Vec::new(),
            );
            (batches, stats)
        })
        .unwrap();
    let (batches, stats) = t.join().unwrap();
    assert_eq!(
        stats.records, 2,
        "the deep record and the normal one; the liar is skipped"
    );
    let json = String::from_utf8(batches[0].json.clone()).unwrap();
    assert!(
        json.contains(&format!("\"{NESTING_MARKER}\"")),
        "{}",
        &json[..300]
    );
}

/// The stack the deep record is mapped on (see `a_record_nested_100000_levels_deep_and_a_liar`).
const STACK: usize = 8 << 20;

/// All the parses of `data` read at most `2 * 8 + 4` values per byte (the product's bound),
/// and the valid record at the end comes out.
fn assert_linear_and_last_record_out(name: &str, data: &[u8]) {
    let mut c = lib_path::chunk(data);
    let last = c
        .by_ref()
        .filter_map(|i| match i {
            LibItem::Record(r) => Some(r.body),
            _ => None,
        })
        .last();
    let bound = 20 * data.len() as u64;
    assert!(
        c.work <= bound,
        "{name}: {} values read, bound {bound}",
        c.work
    );
    assert_eq!(last, Some(&REC[2..]), "{name}");
}

#[test]
fn resync_work_is_linear_on_adversarial_damage() {
    for len in [16 << 10, 256 << 10] {
        for (name, data) in adversarial_chunks(len) {
            assert_linear_and_last_record_out(name, &data);
        }
    }
}

proptest! {
    #![proptest_config(cases(8))]

    /// Damage of 1-2 MiB built from record-like pieces: all the parses read at most
    /// `2 * 8 + 4` values per byte.
    #[test]
    fn work_is_linear_on_large_damaged_chunks(
        pieces in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![7 => prop::sample::select(&RECORD_LIKE_BYTES[..]), 1 => any::<u8>()],
                1..8,
            ),
            1..6,
        ),
        len in (1usize << 20)..(2 << 20),
    ) {
        let data = repeated(&pieces.concat(), len);
        let mut c = lib_path::chunk(&data);
        c.by_ref().for_each(drop);
        prop_assert!(c.work <= 20 * data.len() as u64, "{} values read", c.work);
    }
}
