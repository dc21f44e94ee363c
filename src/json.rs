//! JSON strings for the hot path: bytes in, an escaped JSON string out.
//!
//! Escaping is json-escape-simd's (sonic-rs's SIMD kernel, with a portable fallback): log
//! lines are long and FireLens ones are often JSON text themselves, full of quotes, so this
//! is where mapping spends most of its time. Its output is exactly serde_json's (`\"`, `\\`,
//! `\b`, `\f`, `\n`, `\r`, `\t`, `\u00XX` for other control bytes; everything else as is),
//! which the tests check. msgpack strings are not always UTF-8: they are checked first, and
//! invalid sequences become U+FFFD.

/// Strings longer than this are escaped a piece at a time: json-escape-simd reserves room
/// for the worst case (six bytes per input byte), which for a 2 MB message would be 12 MB.
const PIECE: usize = 64 * 1024;

/// Appends `s` as a JSON string, quotes included.
pub fn escape(out: &mut Vec<u8>, s: &str) {
    if s.len() <= PIECE {
        json_escape_simd::escape_into(s, out);
        return;
    }
    // Escaping is per character, so pieces cut at character boundaries give the same text.
    // Each piece is escaped straight into `out`, quotes included; the quotes between two
    // pieces are then undone without moving the text (see below).
    let mut rest = s;
    let mut first = true;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PIECE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        if first {
            json_escape_simd::escape_into(piece, out);
            first = false;
        } else {
            // `out` ends with the previous piece's last byte and its closing quote. Both are
            // dropped, the new piece's opening quote lands where that byte was, and the byte
            // is put back over it.
            let n = out.len() - 2;
            let last = out[n];
            out.truncate(n);
            json_escape_simd::escape_into(piece, out);
            out[n] = last;
        }
        rest = tail;
    }
}

/// Strings up to this long that need no escaping are copied as they are (see [`write_str`]).
const SHORT: usize = 24;

/// Appends bytes as a JSON string; invalid UTF-8 sequences become U+FFFD.
pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    // Most keys and many values are short plain ASCII: checking and copying them costs less
    // than the UTF-8 check and the SIMD escaper's set-up.
    if bytes.len() <= SHORT
        && bytes
            .iter()
            .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
    {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => escape(out, s),
        Err(_) => escape(out, &String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        escape(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn matches_serde_json_on_every_byte_value() {
        for c in 0u32..=0x7f {
            let ch = char::from_u32(c).unwrap();
            for s in [ch.to_string(), format!("abcdefg{ch}hijklmnop{ch}{ch}")] {
                assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "{c:#x}");
            }
        }
        let s = "日本語 ✓ emoji 🔥 \u{7f} \u{2028}";
        assert_eq!(ours(s), serde_json::to_string(s).unwrap());
    }

    #[test]
    fn long_strings_are_escaped_in_pieces_with_the_same_result() {
        // Escapes and multi-byte characters across the piece boundaries.
        let unit = "ab\"c\\d\n✓é🔥\u{1}";
        for len in [PIECE - 3, PIECE, PIECE + 1, 3 * PIECE + 7] {
            let s: String = unit.chars().cycle().take(len).collect();
            let mut out = b"x".to_vec();
            escape(&mut out, &s);
            assert_eq!(out[1..], *serde_json::to_vec(&s).unwrap(), "{len} chars");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut out = Vec::new();
        write_str(&mut out, b"ok \xc3( \xff");
        assert_eq!(out, "\"ok \u{fffd}( \u{fffd}\"".as_bytes());
    }

    #[test]
    fn text_of_control_bytes_only() {
        // Six output bytes per input byte, after bytes already in the buffer.
        let s: String = (0u8..0x20).cycle().take(1000).map(char::from).collect();
        let mut out = b"prefix".to_vec();
        escape(&mut out, &s);
        let expected = format!("prefix{}", serde_json::to_string(&s).unwrap());
        assert_eq!(out, expected.as_bytes());
    }

    #[test]
    fn non_ascii_after_escapes_and_at_the_end() {
        for s in [
            "\"\"\"é",
            "abcdefgh\u{1}é",
            "é\"",
            "abcdefghijklmno✓",
            "\u{7f}\u{80}",
        ] {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        let mut out = Vec::new();
        write_str(&mut out, b"abcdefgh\"\xe2\x9c\x93\n\xe2\x9c");
        assert_eq!(out, "\"abcdefgh\\\"✓\\n\u{fffd}\"".as_bytes());
    }

    proptest! {
        #[test]
        fn matches_serde_json(s in ".*", t in proptest::collection::vec(0u8..0x80, 0..64)) {
            prop_assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
            let t = String::from_utf8(t).unwrap();
            prop_assert_eq!(ours(&t), serde_json::to_string(&t).unwrap());
        }

        #[test]
        fn any_bytes_are_written_as_their_lossy_text(
            b in proptest::collection::vec(any::<u8>(), 0..200),
            prefix in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut out = prefix.clone();
            write_str(&mut out, &b);
            let mut expected = prefix;
            expected.extend(serde_json::to_vec(&String::from_utf8_lossy(&b)).unwrap());
            prop_assert_eq!(out, expected);
        }
    }
}
