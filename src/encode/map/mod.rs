//! Record -> one Datadog log object, written straight from msgpack into the payload buffer.
//!
//! The object is built in one pass with no intermediate tree:
//! 1. the plugin's own attributes, each only if the record lacks it: `json_date_key` (epoch
//!    milliseconds), the tag (`include_tag_key`), `ddsource`, `service`, `hostname`, and from
//!    OpenTelemetry metadata `status`, `dd.trace_id`, `dd.span_id`;
//! 2. `ddtags`: the record's own tags, then the ECS tags (`provider ecs`), then `dd_tags`,
//!    without duplicates;
//! 3. `message`: the record's `message`, else the `dd_message_key` value (default `log`);
//! 4. the record's other attributes, with their types and nesting.
//!
//! No object ever has duplicate keys, at any depth: the first occurrence of a key wins (the
//! plugin's attributes are only written when the record has none). Strings that are not valid
//! UTF-8 (str or bin) are kept lossily; non-string keys become strings (an array or map key
//! its JSON text, in which a key that is itself an array or map is cut); NaN and infinities
//! become `null`; nesting deeper than [`MAX_DEPTH`] is replaced by [`NESTING_MARKER`]. An
//! object over Datadog's 1 MB single-log limit has its message cut to fit (then, if needed,
//! the largest other strings of its attributes, at any depth), each cut string ending in
//! [`TRUNCATION_MARKER`]; one that cannot be brought under the limit that way (too many
//! keys) is left out and counted.
//!
//! A record with the same keys as the one before (a container's records usually have) is
//! written from that record's object with the date and values put in (`template`), which
//! gives the same bytes for less work.
//!
//! # Layout
//!
//! [`Mapper::write_decoded`] is the driver: it tries the plan (`template`), then writes the
//! object in the steps listed above, one function each, then fits it to the limit. Each
//! concern has its module: `attrs` (the plugin's own attributes and the scan of the record's
//! names), `otlp` (OpenTelemetry metadata), `tags` (`ddtags`, kept across records), `value`
//! (any msgpack value as JSON, keys, nesting), `truncate` (the 1 MB limit) and `template`
//! (writing a record from the previous one's object, and when that is allowed).
//!
//! [`Scratch`] holds what one worker reuses: per-record temporaries, cleared for each record,
//! apart from the caches that live across records (the tags, the plan), whose validity rules
//! are stated where they are defined.

use crate::config::options::Config;
use crate::encode::decode::{self, Entry, Record};
use fields::{Attrs, Present, Slot, write_attr};
use std::collections::HashSet;
use tags::Tags;
use template::{Marks, Template};
use value::{Key, write_any_key, write_entry_value};

mod attrs;
mod fields;
mod otlp;
mod tags;
mod template;
mod truncate;
mod value;

pub use tags::{push_ecs_tags, push_tag};
pub(crate) use value::write_str;

/// Datadog's limit for one log object, in bytes of JSON.
pub const MAX_LOG_BYTES: usize = 1_000_000;
/// Deepest nesting of arrays and maps kept; deeper values become [`NESTING_MARKER`].
pub const MAX_DEPTH: usize = 32;
/// Replaces a value nested deeper than [`MAX_DEPTH`].
pub const NESTING_MARKER: &str = "[nested deeper than 32 levels]";
/// Ends a message that was cut to fit [`MAX_LOG_BYTES`].
pub const TRUNCATION_MARKER: &str = "...TRUNCATED...";

/// What happened to one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// The object was appended to the buffer; `truncated` when its message was cut.
    Written {
        /// The message was cut to fit [`MAX_LOG_BYTES`].
        truncated: bool,
        /// The record is one part of a line the container runtime split (its
        /// `partial_message` is true), shipped as it is.
        partial: bool,
    },
    /// The object could not be made to fit [`MAX_LOG_BYTES`]; nothing was appended.
    TooLarge {
        /// Its size before truncation.
        bytes: usize,
    },
}

/// Per-worker buffers reused from record to record, so mapping allocates nothing per record.
#[derive(Debug, Default)]
pub struct Scratch {
    /// This record's temporaries.
    tmp: Temps,
    /// What outlives a record.
    cache: Cache,
}

/// Buffers for one record at a time: each record starts from them cleared (their capacity
/// is what is reused).
#[derive(Debug, Default)]
struct Temps {
    /// The record's body pairs.
    entries: Vec<Entry>,
    /// Entries not written as attributes (consumed by the tags or the message, or duplicates).
    skip: Vec<bool>,
    /// The keys written so far at each open level of the object, for the duplicate checks.
    keys: Vec<(usize, usize)>,
    /// Room for a key's text or a tag being made.
    text: Vec<u8>,
    /// Room for the string values that may be cut when the object is over 1 MB.
    strings: Vec<(usize, usize)>,
    /// The top-level keys once there are too many to check one by one (see `value`).
    seen: HashSet<Box<[u8]>>,
    /// Entries whose values become ECS tags.
    ecs_entries: Vec<usize>,
    /// Where the general way wrote the current object's slots (see `template`).
    marks: Marks,
}

/// What is kept from one record to the next, each valid only under the rules its type states.
#[derive(Debug, Default)]
struct Cache {
    /// The tag sets made lately, most recently used first, at most [`TAG_SETS`].
    sets: Vec<TagSet>,
    /// Records written from a plan so far (for the tests).
    hits: u64,
}

/// How many tag sets (and their plans) a [`Scratch`] keeps. One is enough for a FireLens
/// chunk (one container's records), but a chunk can mix the records of several containers
/// or tasks (one tag for a whole service, a router fed by others over `forward`), and with
/// one set those would remake their tags and lose their plan at every record.
const TAG_SETS: usize = 8;

/// One tag set made for some records, and the plan made under it.
#[derive(Debug, Default)]
struct TagSet {
    /// The tags and their inputs.
    tags: Tags,
    /// The plan for records with these tags shaped like the last one mapped the general way
    /// with them.
    template: Template,
}

impl Cache {
    /// Makes `sets[k]` the most recently used.
    fn bring_forward(&mut self, k: usize) {
        if k > 0 {
            self.sets[..=k].rotate_right(1);
        }
    }

    /// Bytes of heap capacity held.
    fn capacity_bytes(&self) -> usize {
        vec_bytes(&self.sets)
            + self
                .sets
                .iter()
                .map(|set| set.tags.capacity_bytes() + set.template.capacity_bytes())
                .sum::<usize>()
    }
}

impl Scratch {
    /// The buffer the decoder lists a record's body pairs into, for
    /// [`Mapper::write_decoded`].
    pub fn entries(&mut self) -> &mut Vec<Entry> {
        &mut self.tmp.entries
    }

    /// Bytes of heap memory the buffers hold (their capacity, not what they hold now).
    pub fn capacity_bytes(&self) -> usize {
        self.tmp.capacity_bytes() + self.cache.capacity_bytes()
    }

    /// Gives the memory back when the buffers hold more than `limit` bytes (after one huge
    /// record, say: they grow to the largest record seen): they start again empty, caches
    /// included (which only costs the next record the general way).
    pub fn shrink_to(&mut self, limit: usize) {
        if self.capacity_bytes() > limit {
            *self = Scratch::default();
        }
    }
}

/// Bytes of heap capacity of a vector.
fn vec_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * std::mem::size_of::<T>()
}

impl Temps {
    /// Bytes of heap capacity held (the keys in `seen` counted by their length).
    fn capacity_bytes(&self) -> usize {
        let seen = self.seen.capacity() * (std::mem::size_of::<Box<[u8]>>() + 1)
            + self.seen.iter().map(|k| k.len()).sum::<usize>();
        vec_bytes(&self.entries)
            + vec_bytes(&self.skip)
            + vec_bytes(&self.keys)
            + vec_bytes(&self.text)
            + vec_bytes(&self.strings)
            + seen
            + vec_bytes(&self.ecs_entries)
            + self.marks.capacity_bytes()
    }

    /// Clears what the previous record left, for a record of `self.entries`.
    fn clear(&mut self) {
        self.marks.clear();
        self.skip.clear();
        self.skip.resize(self.entries.len(), false);
        self.keys.clear();
        self.strings.clear();
        self.seen.clear();
    }
}

/// The mapping settings of one instance, with the static parts pre-serialized.
#[derive(Debug, Clone)]
pub struct Mapper {
    message_key: Vec<u8>,
    date_key: Option<String>,
    tag_key: Option<String>,
    static_tags: Vec<String>,
    ecs: bool,
    /// The plugin's own attributes, in the order they are written (see [`Attrs`]).
    attrs: Attrs,
    /// Tells this mapper's settings from another's (clones share it): a [`Scratch`] keeps the
    /// tags it made last only for the mapper that made them.
    id: u64,
}

/// The next [`Mapper::id`].
static NEXT_MAPPER_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Mapper {
    /// Prepares the mapping for an instance's configuration.
    pub fn new(cfg: &Config) -> Mapper {
        Mapper {
            message_key: cfg.message_key.as_bytes().to_vec(),
            date_key: cfg.date_key.clone(),
            tag_key: cfg.tag_key.clone(),
            static_tags: cfg.tags.clone(),
            ecs: cfg.ecs,
            attrs: Attrs::new(cfg),
            id: NEXT_MAPPER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Appends the Datadog object for `rec` (tagged `tag` by Fluent Bit) to `out`.
    pub fn write(&self, rec: &Record, tag: &str, s: &mut Scratch, out: &mut Vec<u8>) -> Mapped {
        if decode::map_entries(rec.body, &mut s.tmp.entries).is_err() {
            // The decoder has already checked the body; keep going with what was listed.
        }
        self.write_decoded(rec, tag, s, out)
    }

    /// Like [`Mapper::write`] for a record whose body pairs the decoder has already listed
    /// into [`Scratch::entries`] (see `decode::Chunk::next_with_entries`), so the body is not
    /// read once more to find them.
    pub fn write_decoded(
        &self,
        rec: &Record,
        tag: &str,
        s: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Mapped {
        if self.write_from_template(rec, tag, s, out) {
            // A plan is never made from a record with a `partial_message` (see `template`).
            return Mapped::Written {
                truncated: false,
                partial: false,
            };
        }
        // The general way.
        let start = out.len();
        let (t, cache) = (&mut s.tmp, &mut s.cache);
        t.clear();
        let present = self.scan(rec.body, t);
        let otlp = otlp::otlp_fields(rec.meta);

        out.push(b'{');
        self.write_own_attrs(rec, tag, &present, t, out);
        self.write_otlp(&otlp, &present, out, &mut t.keys);
        let same_tags = self.write_tags(rec.body, tag, &present, t, cache, out);
        let attrs_from = out.len();
        let (message, whole_message) = self.write_record_attrs(rec.body, &present, t, out);
        out.push(b'}');

        if out.len() - start <= MAX_LOG_BYTES {
            // A plan for the next records, when one is wanted (none, or it stopped matching)
            // and allowed.
            // The record's tag set is the first now (see `tags`); when it was made before,
            // its plan (if any) did not match this record.
            let plan = &mut cache.sets[0].template;
            if same_tags {
                plan.missed();
            }
            if template::eligible(same_tags, &otlp, &present) && plan.wanted(self.id) {
                plan.keep(self.id, rec, tag, t, out, start);
            }
            return Mapped::Written {
                truncated: false,
                partial: present.partial,
            };
        }
        match truncate::fit(
            out,
            start,
            attrs_from,
            message,
            whole_message,
            &mut t.strings,
        ) {
            Mapped::Written { truncated, .. } => Mapped::Written {
                truncated,
                partial: present.partial,
            },
            too_large => too_large,
        }
    }

    /// Writes `message` (the record's, else the `dd_message_key` value renamed) and the
    /// record's other attributes, noting the slots. Returns where the message's JSON string
    /// went, and its whole text when only part of it was written (see
    /// `truncate::write_message`).
    fn write_record_attrs<'b>(
        &self,
        body: &'b [u8],
        present: &Present,
        s: &mut Temps,
        out: &mut Vec<u8>,
    ) -> (Option<(usize, usize)>, Option<&'b [u8]>) {
        let a = &self.attrs;
        let mut message = None;
        // The whole text of a message written only in part (see `truncate::write_message`).
        let mut whole_message = None;
        let mut renamed = false;
        if !present.message
            && let Some(i) = present.message_key
            && let Some(k) = &a.message
        {
            write_attr(out, &mut s.keys, k);
            s.skip[i] = true;
            renamed = true;
            let m0 = out.len();
            (message, whole_message) =
                truncate::write_message(body, s.entries[i], out, &mut s.keys);
            s.marks.note(m0, out.len(), Slot::Message(i));
        }

        for i in 0..s.entries.len() {
            if s.skip[i] {
                continue;
            }
            let e = s.entries[i];
            let mark = out.len();
            let name = e.name_in(body);
            if renamed && name == Some(self.message_key.as_slice()) {
                // A later duplicate of the message key: the first one became `message`.
                continue;
            }
            let key = match name {
                Some(text) => Key::Text(text),
                None => Key::Raw(&body[e.key.0..e.key.1]),
            };
            if !write_any_key(out, &mut s.keys, 0, key, &mut s.text, 1, &mut s.seen) {
                out.truncate(mark);
                continue;
            }
            let v0 = out.len();
            if name == Some(b"message") {
                (message, whole_message) = truncate::write_message(body, e, out, &mut s.keys);
                s.marks.note(v0, out.len(), Slot::Message(i));
                continue;
            }
            write_entry_value(body, e, out, &mut s.keys);
            s.marks.note(v0, out.len(), Slot::Value(i));
        }
        (message, whole_message)
    }
}

#[cfg(test)]
mod tests;
