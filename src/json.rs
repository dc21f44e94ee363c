//! JSON string writing for the hot path: bytes in, an escaped JSON string out.
//!
//! Log lines are mostly plain ASCII text, so the writer looks at eight bytes at a time: it
//! stores the whole word into the output speculatively, and when the word holds no `"`, `\`,
//! control byte or non-ASCII byte it simply moves on. Otherwise it moves to the first such
//! byte and writes its escape over what was stored past it. The output has room reserved up
//! front, so the common path is a load, a few arithmetic operations and a store per eight
//! bytes, with no call per run of plain text.
//!
//! UTF-8 is checked in the same pass: while the text is ASCII nothing more is needed; at the
//! first non-ASCII byte the rest is validated once, and text that is not UTF-8 is written
//! again with invalid sequences replaced by U+FFFD. The output is exactly serde_json's (`\"`,
//! `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00XX` for other control bytes; everything
//! else as is), which the tests check.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask whose lowest set bit lies in the first byte of `w` (little-endian) that is below
/// 0x20, a `"` or a `\`; zero when there is none. Bytes after the first may be flagged
/// wrongly (a borrow ripples up), so only the lowest bit is trusted.
#[inline]
fn escape_mask(w: u64) -> u64 {
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let q = w ^ (ONES * b'"' as u64);
    let quote = q.wrapping_sub(ONES) & !q & HIGHS;
    let b = w ^ (ONES * b'\\' as u64);
    let backslash = b.wrapping_sub(ONES) & !b & HIGHS;
    control | quote | backslash
}

/// For each byte: 0 when it is written as is, the letter of its two-byte escape (`\n`), or
/// `u` for a `\u00XX` escape.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` as a JSON string, quotes included.
pub fn escape(out: &mut Vec<u8>, s: &str) {
    let written = write_escaped(out, s.as_bytes(), true);
    debug_assert!(written, "a str is UTF-8");
}

/// Appends bytes as a JSON string; invalid UTF-8 sequences become U+FFFD.
pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    if !write_escaped(out, bytes, false) {
        escape(out, &String::from_utf8_lossy(bytes));
    }
}

/// Appends `b` as a JSON string. Unless `utf8` says it is known to be UTF-8, it is checked;
/// when it is not, nothing is appended and the result is false.
fn write_escaped(out: &mut Vec<u8>, b: &[u8], utf8: bool) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let start = out.len();
    let n = b.len();
    // Room for the quotes, two bytes per input byte (every escape but `\u00XX` takes two)
    // and a word stored past the end. Invariant: out.len() >= j + 2 * (n - i) + 16.
    out.resize(start + 2 * n + 17, 0);
    out[start] = b'"';
    let mut j = start + 1;
    let mut i = 0;
    // The high bits are flagged until the text is known to be UTF-8.
    let mut highs = if utf8 { 0 } else { HIGHS };
    while i < n {
        let k = (n - i).min(8);
        let word: [u8; 8] = match b.get(i..i + 8) {
            Some(w) => w.try_into().unwrap_or([0; 8]),
            None => {
                // The tail, padded with a byte that is never flagged.
                let mut w = [b' '; 8];
                w[..k].copy_from_slice(&b[i..]);
                w
            }
        };
        out[j..j + 8].copy_from_slice(&word);
        let w = u64::from_le_bytes(word);
        let m = escape_mask(w) | (w & highs);
        if m == 0 {
            i += k;
            j += k;
            continue;
        }
        let z = (m.trailing_zeros() / 8) as usize;
        i += z;
        j += z;
        let c = b[i];
        if c >= 0x80 {
            // Everything before is ASCII, so `i` starts a character: check the rest once.
            if std::str::from_utf8(&b[i..]).is_err() {
                out.truncate(start);
                return false;
            }
            highs = 0;
            continue;
        }
        match ESCAPE[c as usize] {
            b'u' => {
                let need = j + 6 + 2 * (n - i - 1) + 16;
                if out.len() < need {
                    out.resize(need + 6 * (n - i), 0);
                }
                out[j..j + 6].copy_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                ]);
                j += 6;
            }
            // Never flagged: already stored as is.
            0 => j += 1,
            e => {
                out[j] = b'\\';
                out[j + 1] = e;
                j += 2;
            }
        }
        i += 1;
    }
    out.truncate(j);
    out.push(b'"');
    true
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
    fn invalid_utf8_is_replaced() {
        let mut out = Vec::new();
        write_str(&mut out, b"ok \xc3( \xff");
        assert_eq!(out, "\"ok \u{fffd}( \u{fffd}\"".as_bytes());
    }

    #[test]
    fn text_of_control_bytes_only_grows_the_buffer() {
        // Six output bytes per input byte, more than the room reserved up front.
        let s: String = (0u8..0x20).cycle().take(1000).map(char::from).collect();
        let mut out = b"prefix".to_vec();
        escape(&mut out, &s);
        let expected = format!("prefix{}", serde_json::to_string(&s).unwrap());
        assert_eq!(out, expected.as_bytes());
    }

    #[test]
    fn non_ascii_after_escapes_and_in_the_tail() {
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
