use super::*;

use test_support::damage::{REC, RECORD_LIKE_BYTES, adversarial_chunks, repeated, reported_chunk};

/// Decodes `data`; returns the records, and the values all parses read.
fn decode(data: &[u8]) -> (Vec<Record<'_>>, u64) {
    let mut c = chunk(data);
    let mut recs = Vec::new();
    for item in c.by_ref() {
        if let Item::Record(r) = item {
            recs.push(r);
        }
    }
    (recs, c.work)
}

fn assert_linear_and_last_record_out(name: &str, data: &[u8]) {
    let (recs, work) = decode(data);
    let bound = (2 * WORK_PER_BYTE + 4) * data.len() as u64;
    assert!(work <= bound, "{name}: {work} values read, bound {bound}");
    let last = recs.last().unwrap_or_else(|| panic!("{name}: no record"));
    assert_eq!(last.body, &REC[2..], "{name}");
    assert_eq!(last.time.secs, 5, "{name}");
}

#[test]
fn resync_work_is_linear_on_adversarial_damage() {
    // The small size first: without the budget it fails in a second, not in hours.
    for len in [16 << 10, 256 << 10] {
        assert_adversarial_shapes(len);
    }
}

fn assert_adversarial_shapes(len: usize) {
    for (name, data) in adversarial_chunks(len) {
        assert_linear_and_last_record_out(name, &data);
    }
}

#[test]
fn a_body_that_is_not_a_map_is_refused_unread() {
    // [0, [nil x 1000]]: refused after three values, not after reading its 1001.
    let mut data = vec![0x92, 0x00, 0xdc, 0x03, 0xe8];
    data.extend([0xc0; 1000]);
    let (recs, work) = decode(&data);
    assert!(recs.is_empty());
    assert!(work <= 3, "{work} values read");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    /// Damage of 1-2 MiB built from record-like pieces: all the parses of the chunk read
    /// at most `2 * WORK_PER_BYTE + 4` values per byte.
    #[test]
    fn work_is_linear_on_large_damaged_chunks(
        pieces in proptest::collection::vec(
            proptest::collection::vec(
                proptest::prop_oneof![
                    7 => proptest::sample::select(&RECORD_LIKE_BYTES[..]),
                    1 => proptest::prelude::any::<u8>(),
                ],
                1..8,
            ),
            1..6,
        ),
        len in (1usize << 20)..(2 << 20),
    ) {
        let unit: Vec<u8> = pieces.concat();
        let data = repeated(&unit, len);
        let (_, work) = decode(&data);
        let bound = (2 * WORK_PER_BYTE + 4) * data.len() as u64;
        proptest::prop_assert!(work <= bound, "{} values read, bound {}", work, bound);
    }
}

#[test]
#[ignore = "prints a timing; run with --ignored --nocapture"]
fn reported_chunk_timing() {
    for len in [16 << 10, 64 << 10, 256 << 10, 2 << 20] {
        let data = reported_chunk(len);
        let t = std::time::Instant::now();
        let c = count(&data);
        println!("{len} bytes: {c:?} in {:?}", t.elapsed());
    }
}
