//! JSON string writing for the hot path: bytes in, an escaped JSON string out.
//!
//! Log lines are mostly plain text, so the escaper looks at eight bytes at a time and copies
//! runs that need no escape in one go; only words holding a `"`, a `\` or a control byte are
//! examined byte by byte. The output is exactly serde_json's (`\"`, `\\`, `\b`, `\f`, `\n`,
//! `\r`, `\t`, `\u00XX` for other control bytes; everything else as is), which the tests check.

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

/// The escape sequence of a byte, or `None` when it is written as is.
#[inline]
fn escape_of(c: u8) -> Option<&'static [u8]> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    static CONTROL: [[u8; 6]; 32] = {
        let mut t = [[0u8; 6]; 32];
        let mut i = 0;
        while i < 32 {
            t[i] = [b'\\', b'u', b'0', b'0', HEX[i >> 4], HEX[i & 15]];
            i += 1;
        }
        t
    };
    match c {
        b'"' => Some(b"\\\""),
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b'\t' => Some(b"\\t"),
        0x08 => Some(b"\\b"),
        0x0c => Some(b"\\f"),
        0x00..=0x1f => Some(&CONTROL[c as usize]),
        _ => None,
    }
}

/// Appends `s` as a JSON string, quotes included.
pub fn escape(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        if let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            let m = escape_mask(w);
            if m == 0 {
                i += 8;
                continue;
            }
            // Jump to the first byte that may need escaping.
            i += (m.trailing_zeros() / 8) as usize;
        }
        if let Some(e) = escape_of(b[i]) {
            out.extend_from_slice(&b[run..i]);
            out.extend_from_slice(e);
            run = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Appends bytes as a JSON string; invalid UTF-8 sequences become U+FFFD.
pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
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
    fn invalid_utf8_is_replaced() {
        let mut out = Vec::new();
        write_str(&mut out, b"ok \xc3( \xff");
        assert_eq!(out, "\"ok \u{fffd}( \u{fffd}\"".as_bytes());
    }

    proptest! {
        #[test]
        fn matches_serde_json(s in ".*", t in proptest::collection::vec(0u8..0x80, 0..64)) {
            prop_assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
            let t = String::from_utf8(t).unwrap();
            prop_assert_eq!(ours(&t), serde_json::to_string(&t).unwrap());
        }
    }
}
