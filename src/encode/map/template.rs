//! Records shaped like the one before: written from a plan, not worked out again.
//!
//! The records of a chunk usually come from one container: the same keys in the same order,
//! the same ECS metadata, only the time and the values change. Their objects then differ only
//! in those, so once a record has been mapped the general way ([`Mapper::write_decoded`]),
//! its object is kept as a [`Template`]: the literal bytes (braces, keys, the plugin's own
//! attributes, the tags) with slots cut out where the date and the values went. The next
//! record is checked against it (see [`Mapper::template_matches`]) and, if it matches,
//! written by copying the literal pieces and filling the slots, with the same functions, so
//! the object is byte for byte what the general way would write. The rule that keeps this
//! true is [`eligible`]'s. Whatever the plan cannot answer for goes the general way (an
//! object over 1 MB too, written twice then: once here, then cut the general way; a record
//! over half that in msgpack goes straight there).
//!
//! A plan holds the tags' JSON of the record it was made from, so each plan belongs to one
//! tag set (`TagSet`: the tags and their inputs, `tags::Tags`) and is valid only while that
//! set holds that record's tags: the general way drops it when it remakes the set's tags for
//! other inputs. A record is tried against the plan of each kept set, the most recently used
//! first. A record with a set's tags that does not match its plan leaves the plan in place (a
//! container's odd line does not cost the next lines their plan); after [`REPLACE_AFTER`]
//! such records in a row, the next one of them mapped the general way becomes the plan.

use super::fields::{Present, Slot};
use super::otlp::{Otlp, otlp_fields};
use super::truncate::write_message;
use super::value::{write_entry_value, write_i64};
use super::{MAX_LOG_BYTES, Mapper, Scratch, TagSet, Temps};
use crate::encode::decode::Record;

/// The plan made from the last record mapped the general way with one tag set's tags (see
/// the module doc).
#[derive(Debug, Default)]
pub(super) struct Template {
    /// The [`Mapper::id`] it was made by; 0 when there is no plan.
    mapper: u64,
    /// The tag the record came with (written as an attribute when `include_tag_key` is on).
    tag: Vec<u8>,
    /// How many entries the record had.
    entries: usize,
    /// The raw key bytes of the entries that did not make ECS tags, end to end, and for each
    /// its entry and where its bytes end. (The others are compared with their values, as the
    /// tags' inputs.)
    keys: Vec<u8>,
    key_ends: Vec<(usize, usize)>,
    /// Entries whose values became ECS tags.
    ecs: Vec<usize>,
    /// The object's bytes with the slots cut out.
    text: Vec<u8>,
    /// Each slot: where it goes in `text`, and what fills it.
    slots: Vec<(usize, Slot)>,
    /// Records in a row with the plan's tags that it did not match (see
    /// [`Template::wanted`]).
    misses: u32,
}

/// A plan that has not matched this many records in a row is replaced by the next one the
/// general way maps: the records changed shape (a new kind of line), or never settle on one
/// (then this bounds the cost of making plans to one in this many records).
const REPLACE_AFTER: u32 = 8;

/// True when the object the general way just wrote may become a plan, given what it read
/// besides the record's keys: whether its tags were made before, for an earlier record, and
/// kept (`tags_reused`), the record's OpenTelemetry fields and the reserved attributes it has
/// (`present`).
///
/// The rule that keeps the plan's objects byte for byte those of the general way: **every
/// byte of the object that depends on more than the record's keys is a slot, is checked
/// when a record is matched, or disqualifies the record from becoming a plan.** Its pieces:
///
/// * slots ([`Slot`](super::fields::Slot)), filled per record: the date, the message, each attribute's value;
/// * checked by [`Mapper::template_matches`]: the mapper (its settings, by id); the keys,
///   byte for byte (which also decides
///   which reserved attributes the record has, so which of the plugin's own are written,
///   and under which name the message goes); the Fluent Bit tag (written with
///   `include_tag_key`); the ECS attributes' names and values and, with them, the Fluent Bit
///   tag (the tags' inputs: it gives `ecs_container_name`); and that
///   the record has no OpenTelemetry fields;
/// * disqualifying, here: tags made for this record rather than reused (the plan keeps the
///   tags' JSON, valid only while its tag set holds that record's, see `tags::Tags`); any
///   OpenTelemetry field (written from metadata, not a slot); a `ddtags` attribute (whether
///   it is a tag list, and which tags it gives, depends on its value); an ECS attribute kept
///   as an attribute (that depends on its value being non-empty text); a `partial_message`
///   attribute (whether the record is counted as a part depends on its value, which the
///   plan's way does not read).
///
/// A change to the mapping that makes some byte depend on a value must add a slot, a check,
/// or a case here.
pub(super) fn eligible(tags_reused: bool, otlp: &Otlp, present: &Present) -> bool {
    tags_reused
        && otlp.is_empty()
        && !present.ddtags_key
        && !present.ecs_kept
        && !present.partial_key
}

/// Where the general way wrote each slot of the current object, to make a [`Template`].
#[derive(Debug, Default)]
pub(super) struct Marks {
    /// Start and end in the output, and the slot.
    spots: Vec<(usize, usize, Slot)>,
}

impl Marks {
    /// Bytes of heap capacity held.
    pub(super) fn capacity_bytes(&self) -> usize {
        super::vec_bytes(&self.spots)
    }

    /// Forgets the previous record's.
    pub(super) fn clear(&mut self) {
        self.spots.clear();
    }

    /// Notes that `out[start..end]` was written for `slot`.
    pub(super) fn note(&mut self, start: usize, end: usize, slot: Slot) {
        self.spots.push((start, end, slot));
    }
}

impl Template {
    /// Bytes of heap capacity held.
    pub(super) fn capacity_bytes(&self) -> usize {
        use super::vec_bytes;
        vec_bytes(&self.tag)
            + vec_bytes(&self.keys)
            + vec_bytes(&self.key_ends)
            + vec_bytes(&self.ecs)
            + vec_bytes(&self.text)
            + vec_bytes(&self.slots)
    }

    /// Drops the plan: the general way has remade the tags, which it holds.
    pub(super) fn forget(&mut self) {
        self.mapper = 0;
    }

    /// Counts a record with the plan's tags that it did not match.
    pub(super) fn missed(&mut self) {
        self.misses = self.misses.saturating_add(1);
    }

    /// True when a record the general way just mapped (for `mapper`) should become the plan:
    /// there is none, or it stopped matching.
    pub(super) fn wanted(&self, mapper: u64) -> bool {
        self.mapper != mapper || self.misses >= REPLACE_AFTER
    }

    /// Makes the plan, for `mapper`, from the object just written at `out[start..]` for
    /// `rec`, whose slots are in `s.marks`. The caller has checked that the object may
    /// become one ([`eligible`]).
    pub(super) fn keep(
        &mut self,
        mapper: u64,
        rec: &Record,
        tag: &str,
        s: &Temps,
        out: &[u8],
        start: usize,
    ) {
        let t = self;
        t.text.clear();
        t.slots.clear();
        let mut from = start;
        for &(a, b, slot) in &s.marks.spots {
            t.text.extend_from_slice(&out[from..a]);
            t.slots.push((t.text.len(), slot));
            from = b;
        }
        t.text.extend_from_slice(&out[from..]);
        t.entries = s.entries.len();
        t.keys.clear();
        t.key_ends.clear();
        for (i, e) in s.entries.iter().enumerate() {
            if !s.ecs_entries.contains(&i) {
                t.keys.extend_from_slice(&rec.body[e.key.0..e.key.1]);
                t.key_ends.push((i, t.keys.len()));
            }
        }
        t.ecs.clear();
        t.ecs.extend_from_slice(&s.ecs_entries);
        t.tag.clear();
        t.tag.extend_from_slice(tag.as_bytes());
        t.mapper = mapper;
        t.misses = 0;
    }
}

impl Mapper {
    /// True when `set` has a plan of this mapper's and `rec` has the keys, tag inputs and tag
    /// of its record, and no OpenTelemetry fields.
    fn template_matches(&self, rec: &Record, tag: &str, s: &Temps, set: &TagSet) -> bool {
        let (t, tags) = (&set.template, &set.tags);
        let body = rec.body;
        if t.mapper != self.id
            || s.entries.len() != t.entries
            || (self.attrs.tag.is_some() && t.tag != tag.as_bytes())
        {
            return false;
        }
        let mut from = 0;
        for &(i, end) in &t.key_ends {
            let e = s.entries[i];
            if !same_bytes(&body[e.key.0..e.key.1], &t.keys[from..end]) {
                return false;
            }
            from = end;
        }
        // The same bytes, keys and values, in the entries that made the ECS tags (so they
        // are non-empty text again): the same tags, those of the plan's record, whose inputs
        // `tags` holds.
        if !tags.same_inputs(self.id, tag, body, &s.entries, &t.ecs, None) {
            return false;
        }
        otlp_fields(rec.meta).is_empty()
    }

    /// Writes `rec` from the first kept plan it matches, whose tag set becomes the most
    /// recently used; false, with nothing appended, when it matches none or when the object
    /// would be over [`MAX_LOG_BYTES`] (to be cut the general way).
    pub(super) fn write_from_template(
        &self,
        rec: &Record,
        tag: &str,
        s: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> bool {
        if rec.body.len() > MAX_LOG_BYTES / 2 {
            // Its object may well be over the limit, to be written again the general way,
            // and next to its size what a plan saves is nothing.
            return false;
        }
        let (tmp, cache) = (&mut s.tmp, &mut s.cache);
        let Some(k) = (cache.sets.iter()).position(|set| self.template_matches(rec, tag, tmp, set))
        else {
            return false;
        };
        let (s, t) = (tmp, &mut cache.sets[k].template);
        let body = rec.body;
        let start = out.len();
        s.keys.clear();
        let mut lit = 0;
        for &(at, slot) in &t.slots {
            out.extend_from_slice(&t.text[lit..at]);
            lit = at;
            match slot {
                Slot::Date => write_i64(out, rec.time.millis()),
                Slot::Message(i) => {
                    write_message(body, s.entries[i], out, &mut s.keys);
                }
                Slot::Value(i) => {
                    write_entry_value(body, s.entries[i], out, &mut s.keys);
                }
            }
        }
        out.extend_from_slice(&t.text[lit..]);
        if out.len() - start > MAX_LOG_BYTES {
            out.truncate(start);
            return false;
        }
        t.misses = 0;
        cache.hits += 1;
        cache.bring_forward(k);
        true
    }
}

/// `a == b` for the short slices keys are, without a call to `memcmp`: slices of 4 to 16
/// bytes are compared as two overlapping words.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word8 =
        |x: &[u8], at: usize| u64::from_le_bytes(x[at..at + 8].try_into().unwrap_or([0; 8]));
    let word4 =
        |x: &[u8], at: usize| u32::from_le_bytes(x[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn same_bytes_is_slice_equality() {
        for n in 0..20usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "{n} bytes, differing at {at}");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }
}
