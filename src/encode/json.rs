//! JSON strings for the hot path: bytes in, an escaped JSON string out.
//!
//! Log lines are long and FireLens ones are often JSON text themselves, full of quotes, so
//! escaping is where mapping spends most of its time. Two escapers share the work:
//! - json-escape-simd (sonic-rs's SIMD kernel) for most strings. It copies clean 16 or 32
//!   byte blocks at once, but starts over after each escape, and each of those costs a
//!   branch the CPU cannot predict: on JSON text, one every few bytes;
//! - for strings that start like JSON text, `escape_dense`: it finds every quote and
//!   backslash of a 32-byte block at once (SIMD compares through `wide`, which needs no
//!   `unsafe` here), then writes the block's pieces with fixed-size copies, one per escape,
//!   so only the end of each block is a branch it mispredicts.
//!
//! Both write exactly serde_json's text (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00XX`
//! for other control bytes; everything else as is), which the tests check. msgpack strings
//! are not always UTF-8: they are checked first, and invalid sequences become U+FFFD.

use wide::u8x16;

/// Strings longer than this are escaped a piece at a time: json-escape-simd reserves room
/// for the worst case (six bytes per input byte), which for a 2 MB message would be 12 MB.
const PIECE: usize = 64 * 1024;

/// Appends `s` as a JSON string, quotes included.
pub(crate) fn escape(out: &mut Vec<u8>, s: &str) {
    if s.len() <= PIECE {
        escape_piece(out, s);
        return;
    }
    // Escaping is per character, so pieces cut at character boundaries give the same text.
    let mut rest = s;
    let mut first = true;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PIECE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        if first {
            escape_piece(out, piece);
            first = false;
        } else {
            // Reopen the string: drop the previous piece's closing quote.
            out.pop();
            continue_string(out, piece);
        }
        rest = tail;
    }
}

/// Escapes one string of at most [`PIECE`] bytes with the escaper that suits it.
fn escape_piece(out: &mut Vec<u8>, s: &str) {
    if looks_dense(s) {
        escape_dense(out, s);
    } else {
        json_escape_simd::escape_into(s, out);
    }
}

/// Appends `s` escaped, and the closing quote, to the JSON string open at the end of `out`
/// (its last byte is the opening quote or the last byte of its text so far).
///
/// json-escape-simd writes the opening quote too: it lands where that last byte was, which
/// is then put back, so nothing is moved.
fn continue_string(out: &mut Vec<u8>, s: &str) {
    let n = out.len() - 1;
    let last = out[n];
    out.truncate(n);
    json_escape_simd::escape_into(s, out);
    out[n] = last;
}

/// Bytes at the end of a string left to json-escape-simd by `escape_dense`, whose copies
/// read up to 32 bytes past the byte they start at.
const TAIL: usize = 64;

/// True for a string long enough for `escape_dense` with at least two quotes or
/// backslashes in its first 32 bytes, as JSON text has (`{"level":"info",...`): plain text
/// has few and is faster with json-escape-simd's clean-block copies.
fn looks_dense(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 2 * TAIL {
        return false;
    }
    let (q1, _, _) = block_masks(&b[..16]);
    let (q2, _, _) = block_masks(&b[16..32]);
    (q1 | q2 << 16).count_ones() >= 2
}

/// For 16 bytes: a bit for each `"` or `\`, for each control byte (below 0x20) and for each
/// byte that is not ASCII.
#[inline(always)]
fn block_masks(b: &[u8]) -> (u32, u32, u32) {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    let v = u8x16::new(a);
    let slash = v.simd_eq(u8x16::splat(b'"')) | v.simd_eq(u8x16::splat(b'\\'));
    let control = v.min(u8x16::splat(0x1f)).simd_eq(v);
    (slash.to_bitmask(), control.to_bitmask(), v.to_bitmask())
}

/// Escapes `s` (at least `2 * TAIL` bytes) a 32-byte block at a time, and its last
/// `TAIL`-odd bytes with json-escape-simd.
///
/// In a block with no control byte, every `"` and `\` only needs a backslash before it.
/// For each one, the 32 bytes from the previous one are copied, whole, to the output, and
/// the output position moves on only by the bytes up to it, where the backslash goes: the
/// next copy overwrites the rest. A block with a control byte (rare) is written byte by byte.
fn escape_dense(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut end = b.len() - TAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let base = out.len();
    // Room for two bytes per input byte and one copy's overrun; a control byte makes more.
    out.resize(base + 2 * end + 96, 0);
    out[base] = b'"';
    let mut j = base + 1;
    let mut i = 0;
    while i < end {
        let len = (end - i).min(32);
        let valid = if len == 32 { u32::MAX } else { (1 << len) - 1 };
        let (s1, c1, _) = block_masks(&b[i..i + 16]);
        let (s2, c2, _) = block_masks(&b[i + 16..i + 32]);
        if (c1 | c2 << 16) & valid != 0 {
            let need = j + 6 * 32 + 2 * (end - i) + 96;
            if out.len() < need {
                out.resize(need, 0);
            }
            for &c in &b[i..i + len] {
                j = escape_byte(out, j, c);
            }
            i += 32;
            continue;
        }
        let mut from = 0;
        let mut marks = (s1 | s2 << 16) & valid;
        while marks != 0 {
            let at = marks.trailing_zeros() as usize;
            out[j..j + 32].copy_from_slice(&b[i + from..i + from + 32]);
            j += at - from;
            out[j] = b'\\';
            j += 1;
            from = at;
            marks &= marks - 1;
        }
        out[j..j + 32].copy_from_slice(&b[i + from..i + from + 32]);
        j += len - from;
        i += 32;
    }
    out.truncate(j);
    continue_string(out, &s[end..]);
}

/// Writes one byte of a block that holds a control byte at `out[j..]`; returns the new end.
fn escape_byte(out: &mut [u8], j: usize, c: u8) -> usize {
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        0..0x20 => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let u = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ];
            out[j..j + 6].copy_from_slice(&u);
            return j + 6;
        }
        _ => {
            out[j] = c;
            return j + 1;
        }
    };
    out[j] = b'\\';
    out[j + 1] = short;
    j + 2
}

/// Strings up to this long that need no escaping are copied as they are (see [`write_str`]).
const SHORT: usize = 32;

/// True when `b` (at most [`SHORT`] bytes) is ASCII with nothing to escape: checked as one
/// or two 16-byte blocks (overlapping, or padded with a letter).
#[inline]
fn plain_short(b: &[u8]) -> bool {
    let n = b.len();
    let clean = |block: &[u8]| {
        let (slash, control, non_ascii) = block_masks(block);
        slash | control | non_ascii == 0
    };
    if n >= 16 {
        clean(&b[..16]) && clean(&b[n - 16..])
    } else {
        let mut padded = [b'a'; 16];
        padded[..n].copy_from_slice(b);
        clean(&padded)
    }
}

/// Appends bytes as a JSON string; invalid UTF-8 sequences become U+FFFD.
pub(crate) fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    // Most keys and many values are short plain ASCII: checking and copying them costs less
    // than the UTF-8 check and the SIMD escaper's set-up.
    if bytes.len() <= SHORT && plain_short(bytes) {
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

    #[test]
    fn short_strings_with_one_special_byte_anywhere() {
        // The short path checks one or two 16-byte blocks: every length up to SHORT and
        // beyond, one byte to escape (or not ASCII) at each position.
        for n in 1..=SHORT + 2 {
            for at in 0..n {
                for special in [0x00, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xc3, 0xff, b' '] {
                    let mut b = vec![b'k'; n];
                    b[at] = special;
                    let mut out = Vec::new();
                    write_str(&mut out, &b);
                    let expected = serde_json::to_vec(&String::from_utf8_lossy(&b)).unwrap();
                    assert_eq!(out, expected, "{n} bytes, {special:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn json_text_takes_the_dense_escaper_and_plain_text_does_not() {
        let json = format!("{{\"level\":\"info\",\"msg\":\"{}\"}}", "x".repeat(200));
        assert!(looks_dense(&json));
        assert_eq!(ours(&json), serde_json::to_string(&json).unwrap());
        let plain = format!("INFO request served in 12 ms {}", "y".repeat(200));
        assert!(!looks_dense(&plain));
        // Too short to be worth it, however many quotes.
        assert!(!looks_dense(&"\"".repeat(2 * TAIL - 1)));
        assert!(looks_dense(&"\"".repeat(2 * TAIL)));
    }

    #[test]
    fn dense_text_across_pieces() {
        // JSON text longer than a piece, with no control byte: every piece by blocks.
        let unit = "{\"k\":\"v\\\\w\",\"n\":12,\"é\":\"✓🔥\"},";
        let s: String = unit.chars().cycle().take(3 * PIECE).collect();
        assert!(looks_dense(&s));
        assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
    }

    /// Strings that start like JSON text (so `escape_dense` takes them when long enough),
    /// from an alphabet of quotes, backslashes, letters, multi-byte characters and, when
    /// `control`, control bytes.
    fn dense_text(control: bool) -> impl Strategy<Value = String> {
        let mut alphabet = vec![
            '"', '\\', 'a', 'b', ':', ',', ' ', 'é', '日', '🔥', '\u{7f}', '/',
        ];
        if control {
            alphabet.extend(['\n', '\t', '\u{1}', '\u{1f}', '\u{8}', '\u{c}', '\r']);
        }
        proptest::collection::vec(proptest::sample::select(alphabet), 0..700)
            .prop_map(|cs| format!("{{\"a\":\"{}", cs.into_iter().collect::<String>()))
    }

    proptest! {
        #[test]
        fn dense_strings_match_serde_json(
            s in dense_text(false),
            t in dense_text(true),
            prefix in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            for s in [s, t] {
                let mut out = prefix.clone();
                escape(&mut out, &s);
                let mut expected = prefix.clone();
                expected.extend(serde_json::to_vec(&s).unwrap());
                prop_assert_eq!(out, expected);
            }
        }

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
