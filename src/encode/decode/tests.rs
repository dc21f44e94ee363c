use super::msgpack::Error;
use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn fixtures_decode_to_their_documented_counts() {
    let cases = [
        ("fb-1.9.10-forward.msgpack", 2008, 0),
        ("fb-4.2.8-forward-1.msgpack", 143, 0),
        ("fb-4.2.8-forward-2.msgpack", 1865, 0),
        ("fb-4.2.8-otlp-groups.msgpack", 1, 2),
    ];
    for (name, records, markers) in cases {
        let c = count(&fixture(name));
        assert_eq!(
            c,
            Counts {
                records,
                markers,
                malformed: 0
            },
            "{name}"
        );
    }
}

#[test]
fn v1_integer_timestamp_and_v2_eventtime() {
    let v1 = fixture("fb-1.9.10-forward.msgpack");
    let recs: Vec<Record> = chunk(&v1)
        .filter_map(|i| match i {
            Item::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(recs[0].time.secs, 1_732_400_000);
    // The fixture README says .123456789; the bytes hold 0x075bcccc = 123456716 ns.
    assert_eq!(recs[0].time.nanos, 123_456_716);
    assert_eq!(recs[0].time.millis(), 1_732_400_000_123);
    assert!(recs[0].meta.is_empty());
    // Record 2 carries an integer timestamp that 1.9.10 passes through.
    assert_eq!(recs[1].time.nanos, 0);
    let v2 = fixture("fb-4.2.8-forward-1.msgpack");
    let first = chunk(&v2).next().unwrap();
    match first {
        Item::Record(r) => {
            // 4.2.8 writes the empty metadata map as a map32.
            assert_eq!(Reader::new(r.meta).read(), Ok(Value::Map(0)));
            assert_eq!(r.time.millis(), 1_732_400_000_123);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn float_timestamps_are_accepted() {
    // [1.5, {"a": 1}]
    let data = [
        0x92, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x81, 0xa1, b'a', 0x01,
    ];
    match chunk(&data).next().unwrap() {
        Item::Record(r) => {
            assert_eq!(
                r.time,
                Timestamp {
                    secs: 1,
                    nanos: 500_000_000
                }
            );
            assert_eq!(r.time.millis(), 1500);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_between_records_is_skipped_and_counted() {
    let rec = [0x92, 0x05, 0x81, 0xa1, b'a', 0x01];
    let mut data = rec.to_vec();
    data.extend_from_slice(&[0xc1, 0xc1, 0x92, 0xff]);
    data.extend_from_slice(&rec);
    data.extend_from_slice(&[0x92, 0x05]); // truncated at the end
    let c = count(&data);
    assert_eq!(c.records, 2);
    assert_eq!(c.malformed, 2);
}

#[test]
fn huge_declared_lengths_are_refused_without_allocating() {
    let data = [0x92, 0x05, 0xdf, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(count(&data).malformed, 1);
    let mut r = Reader::new(&[0xdd, 0x7f, 0xff, 0xff, 0xff]);
    assert_eq!(r.read(), Err(Error::LengthTooLarge));
    let mut r = Reader::new(&[0xdb, 0x7f, 0xff, 0xff, 0xff, b'a']);
    assert_eq!(r.read(), Err(Error::Truncated));
}

#[test]
fn deep_nesting_is_skipped_iteratively() {
    let mut body = vec![0x81, 0xa1, b'k'];
    body.extend(std::iter::repeat_n(0x91u8, 100_000));
    body.push(0xc0);
    let mut data = vec![0x92, 0x01];
    data.extend_from_slice(&body);
    let c = count(&data);
    assert_eq!(c.records, 1);
}

#[test]
fn entries_listed_while_decoding_match_map_entries() {
    for name in [
        "fb-1.9.10-forward.msgpack",
        "fb-4.2.8-forward-1.msgpack",
        "fb-4.2.8-otlp-groups.msgpack",
    ] {
        let data = fixture(name);
        let plain: Vec<Item> = chunk(&data).collect();
        let mut items = chunk(&data);
        let (mut listed, mut again) = (Vec::new(), Vec::new());
        let mut n = 0;
        while let Some(item) = items.next_with_entries(&mut listed) {
            assert_eq!(item, plain[n], "{name} item {n}");
            if let Item::Record(r) = item {
                map_entries(r.body, &mut again).unwrap();
                assert_eq!(listed, again, "{name} record {n}");
            }
            n += 1;
        }
        assert_eq!(n, plain.len());
    }
}

proptest::proptest! {
    /// The byte-pattern header reader agrees with the general one wherever it answers,
    /// and answers for the layouts Fluent Bit writes.
    #[test]
    fn common_header_matches_the_general_reader(
        secs in proptest::prop_oneof![
            proptest::prelude::Just(GROUP_START),
            proptest::prelude::Just(GROUP_END),
            proptest::prelude::any::<u32>(),
        ],
        nanos in proptest::prelude::any::<u32>(),
        layout in 0..8usize,
    ) {
        let mut ts = vec![0xd7, 0x00];
        ts.extend(secs.to_be_bytes());
        ts.extend(nanos.to_be_bytes());
        // Array headers for 2 elements in their three encodings.
        let (a1, a16, a32) = (&[0x92][..], &[0xdc, 0, 2][..], &[0xdd, 0, 0, 0, 2][..]);
        let v2 = |outer: &[u8], inner: &[u8], meta: &[u8]| [outer, inner, &ts, meta].concat();
        let mut b = match layout {
            0 => [a1, &ts].concat(),
            1 => v2(a1, a1, &[0x80]),
            2 => v2(a1, a1, &[0xdf, 0, 0, 0, 0]),
            // Metadata that is not empty: left to the general reader.
            3 => v2(a1, a1, &[0x81, 0xa1, b'k', 0x01]),
            4 => [a32, &ts].concat(),
            // Fluent Bit 4.x: both arrays as array32.
            5 => v2(a32, a32, &[0x80]),
            6 => v2(a16, a32, &[0xde, 0, 0]),
            _ => v2(a32, a1, &[0xdf, 0, 0, 0, 0]),
        };
        let body_at = b.len();
        b.extend([0x81, 0xa1, b'a', 0x02]);
        let general = header(&mut Reader::new(&b)).unwrap();
        let mut r = Reader::new(&b);
        let _ = header(&mut r);
        match common_header(&b) {
            Some((time, meta, len)) => {
                proptest::prop_assert_eq!(general, Some((time, meta)));
                proptest::prop_assert_eq!(len, body_at);
                proptest::prop_assert_eq!(r.position(), body_at);
            }
            None => proptest::prop_assert!(
                layout == 3 || secs == GROUP_START || secs == GROUP_END,
                "layout {} not read by common_header", layout
            ),
        }
    }
}
