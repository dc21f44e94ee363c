use super::*;

/// The pairs of a map read with the general reader only: what [`map_entries`] must list.
fn entries_by_reader(map: &[u8]) -> Result<Vec<Entry>, Error> {
    let mut r = Reader::new(map);
    let Value::Map(n) = r.read()? else {
        return Ok(Vec::new());
    };
    let text = |raw: &[u8], at: usize| match Reader::new(raw).read() {
        Ok(Value::Str(b) | Value::Bin(b)) => Some((at + raw.len() - b.len(), at + raw.len())),
        _ => None,
    };
    let mut out = Vec::new();
    for _ in 0..n {
        let k = r.position();
        let key = r.raw_value()?;
        let v = r.position();
        let value = r.raw_value()?;
        out.push(Entry {
            key: (k, v),
            value: (v, r.position()),
            name: text(key, k),
            text: text(value, v),
        });
    }
    Ok(out)
}

proptest::proptest! {
    /// The string-pair fast path lists the same entries as the general reader, for maps
    /// of short and str8 strings, other values, and bytes cut off anywhere.
    #[test]
    fn map_entries_match_the_general_reader(
        pairs in proptest::collection::vec(
            (0..6usize, 0..300usize, 0..6usize, 0..300usize),
            0..12,
        ),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let value = |kind: usize, len: usize, out: &mut Vec<u8>| match kind {
            0 => {
                let len = len % 32;
                out.push(0xa0 | len as u8);
                out.extend(std::iter::repeat_n(b'x', len));
            }
            1 => {
                let len = len % 256;
                out.extend([0xd9, len as u8]);
                out.extend(std::iter::repeat_n(b'y', len));
            }
            2 => {
                out.extend([0xda, (len >> 8) as u8, len as u8]);
                out.extend(std::iter::repeat_n(b'w', len));
            }
            3 => out.extend([0xc4, 1, 0xff]),
            4 => out.extend([0x92, 0x01, 0xa1, b'z']),
            _ => out.push(0xc0),
        };
        let mut map = vec![0xde, 0, pairs.len() as u8];
        if pairs.len() < 16 {
            map = vec![0x80 | pairs.len() as u8];
        }
        for &(kk, kl, vk, vl) in &pairs {
            value(kk, kl, &mut map);
            value(vk, vl, &mut map);
        }
        for m in [&map[..], &map[..cut.index(map.len() + 1)]] {
            let mut listed = Vec::new();
            let fast = map_entries(m, &mut listed).map(|()| listed);
            let general = entries_by_reader(m);
            proptest::prop_assert_eq!(fast.is_ok(), general.is_ok());
            if let (Ok(a), Ok(b)) = (fast, general) {
                proptest::prop_assert_eq!(a, b);
            }
        }
    }
}

#[test]
fn map_entries_lists_pairs() {
    // {"a": 1, 2: "b", [1]: nil}
    let map = [0x83, 0xa1, b'a', 0x01, 0x02, 0xa1, b'b', 0x91, 0x01, 0xc0];
    let mut out = Vec::new();
    map_entries(&map, &mut out).unwrap();
    let pairs: Vec<(&[u8], &[u8])> = out
        .iter()
        .map(|e| (&map[e.key.0..e.key.1], &map[e.value.0..e.value.1]))
        .collect();
    assert_eq!(
        pairs,
        [
            (&[0xa1, b'a'][..], &[0x01][..]),
            (&[0x02][..], &[0xa1, b'b'][..]),
            (&[0x91, 0x01][..], &[0xc0][..]),
        ]
    );
    let names: Vec<Option<&[u8]>> = out.iter().map(|e| e.name_in(&map)).collect();
    assert_eq!(names, [Some(&b"a"[..]), None, None]);
    let texts: Vec<Option<&[u8]>> = out.iter().map(|e| e.text_in(&map)).collect();
    assert_eq!(texts, [None, Some(&b"b"[..]), None]);
    // A bin value and an ext value (read whole, no text).
    let map = [
        0x82, 0xa1, b'x', 0xc4, 0x01, 0xff, 0xa1, b'y', 0xd4, 0x01, 0x02,
    ];
    map_entries(&map, &mut out).unwrap();
    assert_eq!(out[0].text_in(&map), Some(&[0xff][..]));
    assert_eq!(out[1].text_in(&map), None);
    assert_eq!(out[1].value, (8, 11));
    assert_eq!(as_bytes(&[0xa1, b'a']), Some(&b"a"[..]));
    assert_eq!(as_bytes(&[0xc4, 0x01, 0xff]), Some(&[0xff][..]));
    assert_eq!(as_bytes(&[0x01]), None);
}
