//! Arbitrary records under arbitrary options: valid objects, the documented rules for plain
//! attributes, and records that share their keys mapped as they would be alone.

use super::reference::ref_json;
use super::{case_config, check_batches, check_object, map_alone, show};
use crate::support::strategies::{config, config_of, key, leaf, meta, record, text, value};
use fluent_bit_datadog::internals::batch;
use fluent_bit_datadog::internals::decode::{self, Item};
use fluent_bit_datadog::internals::map::{MAX_LOG_BYTES, Mapped, Mapper, Scratch};
use proptest::prelude::*;
use proptest::sample::Index;
use test_support::msgpack::{Mp, enc_into};

/// What the decoder should make of a well-formed record with this timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Record,
    Marker,
    Refused,
}

fn expect(ts: &Mp) -> Expect {
    match ts {
        Mp::Ext(0, d) if d.len() == 8 => {
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
            if secs == decode::GROUP_START || secs == decode::GROUP_END {
                Expect::Marker
            } else {
                Expect::Record
            }
        }
        Mp::UInt(_) | Mp::Int(_) => Expect::Record,
        Mp::F64(f) if f.is_finite() => Expect::Record,
        Mp::F32(f) if f.is_finite() => Expect::Record,
        _ => Expect::Refused,
    }
}

proptest! {
    #![proptest_config(case_config(256))]

    /// Records of arbitrary values, v1 and v2, alone and several to a chunk.
    #[test]
    fn arbitrary_records_map_to_valid_objects(
        cfg in config(),
        recs in prop::collection::vec(record(), 1..4),
    ) {
        let mapper = Mapper::new(&cfg);
        let mut scratch = Scratch::default();
        let mut chunk = Vec::new();
        for r in &recs {
            let mut one = Vec::new();
            r.encode(&mut one);
            chunk.extend_from_slice(&one);
            // Alone.
            let mut found = 0;
            for item in decode::chunk(&one) {
                if let Item::Record(rec) = item {
                    found += 1;
                    let mut out = b"[{},".to_vec();
                    match mapper.write(&rec, "app.tag", &mut scratch, &mut out) {
                        Mapped::Written { .. } => {
                            prop_assert_eq!(&out[..4], b"[{},");
                            check_object(&out[4..]);
                        }
                        Mapped::TooLarge { bytes } => {
                            prop_assert!(bytes > MAX_LOG_BYTES);
                            prop_assert_eq!(&out[..], b"[{},");
                        }
                    }
                }
            }
            let c = decode::count(&one);
            match expect(&r.ts) {
                Expect::Record => {
                    prop_assert_eq!((c.records, c.markers, c.malformed), (1, 0, 0));
                    prop_assert_eq!(found, 1);
                }
                Expect::Marker => {
                    prop_assert_eq!((c.records, c.markers, c.malformed), (0, 1, 0));
                }
                Expect::Refused => prop_assert!(c.malformed >= 1),
            }
        }
        // Together, through the batcher.
        let mut spare = Vec::new();
        let (batches, stats) = batch::build(&chunk, "app.tag", &mapper, &mut scratch, &mut spare);
        check_batches(&batches, &stats);
        // Again, into the recycled buffers of the first run (with stale bytes in them).
        let first = batches.clone();
        batch::recycle(batches, &mut spare);
        spare.push(b"stale [{\"x\":1}".to_vec());
        let (again, stats2) = batch::build(&chunk, "app.tag", &mapper, &mut scratch, &mut spare);
        prop_assert_eq!(&again, &first);
        prop_assert_eq!(stats2, stats);
        if recs.iter().all(|r| expect(&r.ts) != Expect::Refused) {
            let want = recs.iter().filter(|r| expect(&r.ts) == Expect::Record).count();
            prop_assert_eq!(stats.records as usize, want);
            prop_assert_eq!(stats.malformed, 0);
        }
    }

    /// A plain attribute comes out as the documented rules say: types and nesting kept,
    /// strings lossy, non-string keys as text, first duplicate wins, NaN and infinities
    /// null, EventTime in milliseconds, deep nesting cut.
    #[test]
    fn plain_attributes_follow_the_rules(v in value(), ts in (any::<u32>(), 0..1_000_000_000u32)) {
        let cfg = config_of(&[("json_date_key", "off")]);
        let body = Mp::Map(vec![(Mp::Str(b"v".to_vec()), v.clone())]);
        let time = decode::Timestamp { secs: ts.0 as i64, nanos: ts.1 };
        let (r, out) = map_alone(&cfg, &body, time);
        prop_assert_eq!(r, Mapped::Written { truncated: false, partial: false });
        let got = check_object(&out);
        let mut want = String::new();
        ref_json(&v, 1, false, &mut want);
        let want: serde_json::Value = serde_json::from_str(&want).unwrap();
        prop_assert_eq!(&got["v"], &want);
        prop_assert_eq!(got.as_object().unwrap().len(), 1);
    }
}

/// A value for records that share their keys: often one of a few texts (so ECS attributes
/// and tags repeat from record to record, as a container's do), sometimes empty or any value.
fn shared_value() -> BoxedStrategy<Mp> {
    prop_oneof![
        4 => prop::sample::select(&[
            "arn:aws:ecs:us-east-1:1:task/c/abc",
            "arn:aws:ecs:us-east-1:1:cluster/c",
            "/app",
            "fam:3",
            "x",
        ][..])
        .prop_map(|t| Mp::Str(t.as_bytes().to_vec())),
        1 => Just(Mp::Str(Vec::new())),
        2 => text().prop_map(Mp::Str),
        2 => value(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(case_config(256))]

    /// Records with the same keys in the same order, one after the other, are written from
    /// the previous record's plan (`map::template`) when they can be: byte for byte what each
    /// would be on its own, whatever changes between them (values and their kinds, a key, the
    /// tag, OpenTelemetry metadata, the time, a message over 1 MB).
    #[test]
    fn records_sharing_keys_map_as_they_would_alone(
        cfg in config(),
        keys in prop::collection::vec(key(leaf()), 0..8),
        rows in prop::collection::vec(
            (
                // A new value for each key, or (None) the previous record's, so that runs of
                // records share their ECS values and tags, as a container's do.
                prop::collection::vec(prop::option::weighted(0.3, shared_value()), 8),
                prop::option::of(meta()),
                (any::<u32>(), any::<u32>()),
                prop::sample::select(&["app.a", "app.a", "app.b"][..]),
                0..40u8,
                prop::option::weighted(0.2, (any::<Index>(), key(leaf()))),
            ),
            1..16,
        ),
    ) {
        let mapper = Mapper::new(&cfg);
        let mut shared = Scratch::default();
        let mut last: Vec<Mp> = vec![Mp::Str(b"/app".to_vec()); 8];
        for (values, meta, (secs, nanos), tag, big, other_key) in rows {
            for (l, v) in last.iter_mut().zip(values) {
                if let Some(v) = v {
                    *l = v;
                }
            }
            let mut pairs: Vec<(Mp, Mp)> = keys.iter().cloned().zip(last.iter().cloned()).collect();
            if let Some((at, k)) = other_key
                && !pairs.is_empty()
            {
                // Now and then one key differs (often a name of the same length).
                let at = at.index(pairs.len());
                pairs[at].0 = k;
            }
            if big == 0 && !pairs.is_empty() {
                // Now and then a value over 1 MB, to be cut.
                pairs[0].1 = Mp::Str(vec![b'"'; 600_000]);
            }
            let mut body = Vec::new();
            enc_into(&Mp::Map(pairs), &mut body);
            let mut meta_bytes = Vec::new();
            if let Some(m) = &meta {
                enc_into(m, &mut meta_bytes);
            }
            let rec = decode::Record {
                time: decode::Timestamp { secs: secs as i64, nanos: nanos % 1_000_000_000 },
                meta: &meta_bytes,
                body: &body,
            };
            let (mut with_plan, mut alone) = (b"[{},".to_vec(), b"[{},".to_vec());
            let r1 = mapper.write(&rec, tag, &mut shared, &mut with_plan);
            let r2 = mapper.write(&rec, tag, &mut Scratch::default(), &mut alone);
            prop_assert_eq!(r1, r2);
            prop_assert_eq!(show(&with_plan), show(&alone));
        }
    }
}
