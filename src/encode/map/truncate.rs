//! Datadog's 1 MB limit for one log ([`MAX_LOG_BYTES`] bytes of JSON).
//!
//! An object over the limit has its message cut to fit, then, if needed, the largest other
//! string values of the record's attributes, wherever they are (top-level, or inside nested
//! maps and arrays), each cut string ending in [`TRUNCATION_MARKER`]; cuts fall on character
//! boundaries and never inside an escape, and keys are never cut (so no map gains a duplicate
//! key). An object that does not fit even so (for example one with hundreds of thousands of
//! keys) is left out ([`Mapped::TooLarge`](super::Mapped::TooLarge)), which the caller counts
//! and logs. A message longer than the limit is only written in part in the first place (see
//! [`write_message`]).

use super::value::write_value;
use super::{MAX_LOG_BYTES, Mapped, TRUNCATION_MARKER, write_str};
use crate::encode::decode::{Entry, Reader};

/// Fits the object written at `out[start..]`, which is over [`MAX_LOG_BYTES`]: cuts the
/// message (its JSON string at `message`) first, then the largest other string values written
/// from `attrs_from` on (the record's attributes, at any depth), or takes the object out when
/// that is not enough. `strings` is room for their ranges, emptied for reuse. `whole_message`
/// is the whole text of a message written only in part (see [`write_message`]), for the size
/// reported then.
pub(super) fn fit(
    out: &mut Vec<u8>,
    start: usize,
    attrs_from: usize,
    message: Option<(usize, usize)>,
    whole_message: Option<&[u8]>,
    strings: &mut Vec<(usize, usize)>,
) -> Mapped {
    let size = out.len() - start;
    let excess = |out: &Vec<u8>| (out.len() - start).saturating_sub(MAX_LOG_BYTES);
    // The message first: it is usually what is too large, and cutting it needs no scan of
    // the object (a 2 MB message is cut without reading the other 1 MB written).
    let mut message = message;
    if let Some((m0, m1)) = message {
        let e = excess(out);
        if e > 0 {
            let removed = cut_string(out, m0, m1, e);
            message = Some((m0, m1 - removed));
        }
    }
    if excess(out) > 0 {
        // Then the largest other strings, wherever they are.
        let mut cuts: Vec<(usize, usize)> = std::mem::take(strings);
        cuts.clear();
        string_values(&out[..out.len() - 1], attrs_from, &mut cuts);
        cuts.retain(|&c| Some(c) != message);
        cuts.sort_by_key(|&(a, b)| std::cmp::Reverse(b - a));
        for i in 0..cuts.len() {
            let e = excess(out);
            if e == 0 {
                break;
            }
            let (m0, m1) = cuts[i];
            let removed = cut_string(out, m0, m1, e);
            for c in cuts.iter_mut().skip(i + 1) {
                if c.0 > m0 {
                    *c = (c.0 - removed, c.1 - removed);
                }
            }
        }
        cuts.clear();
        *strings = cuts;
    }
    let size_after = out.len() - start;
    if size_after <= MAX_LOG_BYTES {
        return Mapped::Written {
            truncated: true,
            partial: false,
        };
    }
    out.truncate(start);
    let left_out = whole_message.map_or(0, |text| {
        let (mut whole, mut part) = (Vec::new(), Vec::new());
        write_str(&mut whole, text);
        write_str(&mut part, &text[..char_floor(text, MAX_LOG_BYTES)]);
        whole.len() - part.len()
    });
    Mapped::TooLarge {
        bytes: size + left_out,
    }
}

/// Lists the ranges (quotes included) of the string values in the JSON text `json[from..]`,
/// which starts outside any string: every string not followed by `:` (the writer puts a key's
/// colon right after it), at any depth.
fn string_values(json: &[u8], from: usize, found: &mut Vec<(usize, usize)>) {
    let mut i = from;
    while let Some(q) = json[i..].iter().position(|&b| b == b'"') {
        let a = i + q;
        let mut j = a + 1;
        while j < json.len() && json[j] != b'"' {
            j += if json[j] == b'\\' { 2 } else { 1 };
        }
        let b = (j + 1).min(json.len());
        if json.get(b) != Some(&b':') {
            found.push((a, b));
        }
        i = b;
    }
}

/// Writes the message value; returns the byte range of its JSON string when it is one.
///
/// A text message longer than [`MAX_LOG_BYTES`] is certain to be cut, and cut before
/// anything else (see [`fit`]), so only its first [`MAX_LOG_BYTES`]
/// bytes are written: a multi-megabyte line costs no more to escape than what can be
/// kept of it. The whole text is then returned too, for the size of an object that does
/// not fit even so.
pub(super) fn write_message<'b>(
    body: &'b [u8],
    e: Entry,
    out: &mut Vec<u8>,
    keys: &mut Vec<(usize, usize)>,
) -> (Option<(usize, usize)>, Option<&'b [u8]>) {
    match e.text_in(body) {
        Some(text) => {
            let m0 = out.len();
            if text.len() > MAX_LOG_BYTES {
                write_str(out, &text[..char_floor(text, MAX_LOG_BYTES)]);
                return (Some((m0, out.len())), Some(text));
            }
            write_str(out, text);
            (Some((m0, out.len())), None)
        }
        None => {
            let raw = &body[e.value.0..e.value.1];
            write_value(&mut Reader::new(raw), out, 1, keys, false);
            (None, None)
        }
    }
}

/// The last character boundary of UTF-8 text at or before `p` (`p` itself in text that is
/// not UTF-8 there), so that a message written in part stays valid UTF-8 and takes the
/// escaper's fast path rather than the lossy copy.
fn char_floor(text: &[u8], p: usize) -> usize {
    let mut q = p;
    while q > 0 && p - q < 3 && text.get(q).is_some_and(|&b| b & 0xc0 == 0x80) {
        q -= 1;
    }
    if text.get(q).is_some_and(|&b| b & 0xc0 == 0x80) {
        p
    } else {
        q
    }
}

/// Cuts the JSON string at `out[m0..m1]` (quotes included) by up to `excess` bytes (more
/// when the cut must fall on a boundary), at a character boundary, and appends
/// [`TRUNCATION_MARKER`]. Returns the bytes removed (0 when the string is too short to cut).
fn cut_string(out: &mut Vec<u8>, m0: usize, m1: usize, excess: usize) -> usize {
    let content = m1 - m0 - 2;
    if content <= TRUNCATION_MARKER.len() {
        return 0;
    }
    let budget = content.saturating_sub(excess + TRUNCATION_MARKER.len());
    let cut = safe_cut(&out[m0 + 1..m1 - 1], budget);
    out.splice(m0 + 1 + cut..m1 - 1, TRUNCATION_MARKER.bytes());
    content - cut - TRUNCATION_MARKER.len()
}

/// The last position at or before `p` where escaped JSON text can be cut: not inside an
/// escape (`\n`, `\\`, `\u00XX`) nor inside a UTF-8 sequence. Looks only near `p`, so
/// cutting a 1 MB message does not walk it.
fn safe_cut(text: &[u8], p: usize) -> usize {
    let mut p = p.min(text.len());
    // Backslashes right before `i`: an odd count means `i` follows an escape's backslash.
    let escaping = |i: usize| text[..i].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1;
    // Inside a \uXXXX escape: cut before it.
    for q in p.saturating_sub(5)..p {
        if text[q] == b'\\' && text.get(q + 1) == Some(&b'u') && !escaping(q) {
            p = q;
            break;
        }
    }
    // Between a backslash and the character it escapes.
    if p > 0 && escaping(p) {
        p -= 1;
    }
    // Inside a multi-byte character (escapes are ASCII, so this cannot enter one).
    while p > 0 && p < text.len() && text[p] & 0xc0 == 0x80 {
        p -= 1;
    }
    p
}
