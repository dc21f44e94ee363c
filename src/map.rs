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
//! its largest other string attributes), each cut string ending in
//! [`TRUNCATION_MARKER`].
//!
//! A record with the same keys as the one before (a container's records usually have) is
//! written from that record's object with the date and values put in (`template`), which
//! gives the same bytes for less work.

use crate::decode::{self, Entry, Reader, Record, Value};
use crate::options::Config;
use std::collections::HashSet;
use template::{Marks, Slot, Template};

mod template;

/// Datadog's limit for one log object, in bytes of JSON.
pub const MAX_LOG_BYTES: usize = 1_000_000;
/// Deepest nesting of arrays and maps kept; deeper values become [`NESTING_MARKER`].
pub const MAX_DEPTH: usize = 32;
/// Replaces a value nested deeper than [`MAX_DEPTH`].
pub const NESTING_MARKER: &str = "[nested deeper than 32 levels]";
/// Ends a message that was cut to fit [`MAX_LOG_BYTES`].
pub const TRUNCATION_MARKER: &str = "...TRUNCATED...";

/// Attributes that `provider ecs` turns into tags (FireLens metadata).
const ECS_KEYS: [&[u8]; 6] = [
    b"container_id",
    b"container_name",
    b"container_image",
    b"ecs_cluster",
    b"ecs_task_definition",
    b"ecs_task_arn",
];

/// Above this many keys in one map, duplicates are found with a hash set.
const LINEAR_DEDUP_MAX: usize = 32;

/// What happened to one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// The object was appended to the buffer; `truncated` when its message was cut.
    Written {
        /// The message was cut to fit [`MAX_LOG_BYTES`].
        truncated: bool,
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
    entries: Vec<Entry>,
    skip: Vec<bool>,
    keys: Vec<(usize, usize)>,
    tags: Vec<u8>,
    /// `tags` as a JSON string, written once for all the records that share them.
    tags_json: Vec<u8>,
    tag_ranges: Vec<(usize, usize)>,
    text: Vec<u8>,
    strings: Vec<(usize, usize)>,
    /// The top-level keys once there are more than [`LINEAR_DEDUP_MAX`].
    seen: HashSet<Box<[u8]>>,
    /// Inputs of the current `tags` (static tags, ECS values, the record's own ddtags), as
    /// length-prefixed pieces.
    sig: Vec<u8>,
    /// Entries whose values become ECS tags.
    ecs_entries: Vec<usize>,
    /// The [`Mapper::id`] whose tags `tags` holds, made from `sig` (0: none yet).
    tags_of: u64,
    /// The plan for records shaped like the last one mapped the general way.
    template: Template,
    /// Where that way wrote the current object's slots.
    marks: Marks,
}

impl Scratch {
    /// The buffer the decoder lists a record's body pairs into, for
    /// [`Mapper::write_decoded`].
    pub fn entries(&mut self) -> &mut Vec<Entry> {
        &mut self.entries
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

/// One of the plugin's own attributes, pre-serialized: `"key":` or `"key":"value"`.
#[derive(Debug, Clone)]
struct Attr {
    json: Vec<u8>,
    /// Length of the key's JSON string at the start of `json`.
    key_len: usize,
}

impl Attr {
    fn new(key: &[u8], value: Option<&str>) -> Attr {
        let mut json = Vec::new();
        write_str(&mut json, key);
        let key_len = json.len();
        json.push(b':');
        if let Some(v) = value {
            write_str(&mut json, v.as_bytes());
        }
        Attr { json, key_len }
    }
}

/// The plugin's own attributes. Each is written only when the record lacks it, and only the
/// first of those that share a name (options can name one attribute twice, e.g.
/// `json_date_key service` with `dd_service`): the later ones are `None`, decided once here
/// since attributes of one name are present or absent together.
///
/// `ddtags` is the exception: it is written whether or not the record has a `ddtags` (the
/// record's own tags are merged into it), so when the date or tag attribute is also named
/// `ddtags` the choice is made per record: `ddtags` is left out only when that attribute was
/// written, which is when the record has no `ddtags` of its own.
#[derive(Debug, Clone)]
struct Attrs {
    date: Option<Attr>,
    tag: Option<Attr>,
    source: Option<Attr>,
    service: Option<Attr>,
    hostname: Option<Attr>,
    status: Option<Attr>,
    trace_id: Option<Attr>,
    span_id: Option<Attr>,
    ddtags: Attr,
    /// The date or the tag attribute is named `ddtags`.
    date_is_ddtags: bool,
    tag_is_ddtags: bool,
    message: Option<Attr>,
}

impl Attrs {
    fn new(cfg: &Config) -> Attrs {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut attr = |key: Option<&str>, value: Option<&str>| {
            let key = key?.as_bytes();
            if names.iter().any(|n| n == key) {
                return None;
            }
            names.push(key.to_vec());
            Some(Attr::new(key, value))
        };
        let date = attr(cfg.date_key.as_deref(), None);
        let tag = attr(cfg.tag_key.as_deref(), None);
        let source = cfg
            .source
            .as_deref()
            .and_then(|v| attr(Some("ddsource"), Some(v)));
        let service = cfg
            .service
            .as_deref()
            .and_then(|v| attr(Some("service"), Some(v)));
        let hostname = cfg
            .hostname
            .as_deref()
            .and_then(|v| attr(Some("hostname"), Some(v)));
        let named_ddtags = |k: &Option<String>| k.as_deref() == Some("ddtags");
        Attrs {
            date_is_ddtags: named_ddtags(&cfg.date_key),
            tag_is_ddtags: named_ddtags(&cfg.tag_key) && !named_ddtags(&cfg.date_key),
            date,
            tag,
            source,
            service,
            hostname,
            status: attr(Some("status"), None),
            trace_id: attr(Some("dd.trace_id"), None),
            span_id: attr(Some("dd.span_id"), None),
            ddtags: Attr::new(b"ddtags", None),
            message: attr(Some("message"), None),
        }
    }
}

/// OpenTelemetry fields found in a record's metadata.
#[derive(Default)]
struct Otlp<'a> {
    severity_text: Option<&'a [u8]>,
    trace_id: Option<u64>,
    span_id: Option<u64>,
}

/// Which reserved attributes the record carries itself.
#[derive(Default)]
struct Present {
    message: bool,
    service: bool,
    source: bool,
    hostname: bool,
    status: bool,
    date: bool,
    tag: bool,
    trace_id: bool,
    span_id: bool,
    /// Entry index of the `dd_message_key` attribute.
    message_key: Option<usize>,
    /// Entry index of the record's `ddtags` when it is a tag list.
    own_tags: Option<usize>,
    /// The record has a key named `ddtags` (whether or not it is a tag list).
    ddtags_key: bool,
    /// With `provider ecs`, an ECS attribute stays an attribute (its value is not text, or
    /// empty).
    ecs_kept: bool,
}

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
        if decode::map_entries(rec.body, &mut s.entries).is_err() {
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
            return Mapped::Written { truncated: false };
        }
        // The general way.
        s.marks.clear();
        let start = out.len();
        let body = rec.body;
        s.skip.clear();
        s.skip.resize(s.entries.len(), false);
        s.keys.clear();
        s.strings.clear();
        s.seen.clear();

        let present = self.scan(body, s);
        let otlp = otlp_fields(rec.meta);
        let no_otlp =
            otlp.severity_text.is_none() && otlp.trace_id.is_none() && otlp.span_id.is_none();

        out.push(b'{');
        let a = &self.attrs;
        let keys = &mut s.keys;
        if let Some(k) = &a.date
            && !present.date
        {
            write_attr(out, keys, k);
            let d0 = out.len();
            write_i64(out, rec.time.millis());
            s.marks.note(d0, out.len(), Slot::Date);
        }
        if let Some(k) = &a.tag
            && !present.tag
        {
            write_attr(out, keys, k);
            write_str(out, tag.as_bytes());
        }
        for (attr, has) in [
            (&a.source, present.source),
            (&a.service, present.service),
            (&a.hostname, present.hostname),
        ] {
            if let Some(k) = attr
                && !has
            {
                write_attr(out, keys, k);
            }
        }
        if let Some(sev) = otlp.severity_text
            && let Some(k) = &a.status
            && !present.status
        {
            write_attr(out, keys, k);
            write_str(out, sev);
        }
        for (attr, id, has) in [
            (&a.trace_id, otlp.trace_id, present.trace_id),
            (&a.span_id, otlp.span_id, present.span_id),
        ] {
            if let (Some(k), Some(id)) = (attr, id)
                && !has
            {
                write_attr(out, keys, k);
                out.push(b'"');
                out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
                out.push(b'"');
            }
        }

        let own = present.own_tags.map(|i| {
            let e = s.entries[i];
            &body[e.value.0..e.value.1]
        });
        let same_tags = self.collect_tags(body, s, own);
        if !same_tags {
            // A plan holds the tags of the record it was made from, and is valid only while
            // `s.sig` and `s.tags` are still that record's: whatever remakes them drops it.
            s.template.forget();
        }
        // Left out when the date or tag attribute took the name (see `Attrs`).
        let ddtags_taken = (a.date_is_ddtags && a.date.is_some() && !present.date)
            || (a.tag_is_ddtags && a.tag.is_some() && !present.tag);
        if !ddtags_taken && !s.tags.is_empty() {
            write_attr(out, &mut s.keys, &a.ddtags);
            out.extend_from_slice(&s.tags_json);
        }

        let mut message = None;
        // The whole text of a message written only in part (see `write_message`).
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
            (message, whole_message) = self.write_message(body, s.entries[i], out, &mut s.keys);
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
                (message, whole_message) = self.write_message(body, e, out, &mut s.keys);
                s.marks.note(v0, out.len(), Slot::Message(i));
                continue;
            }
            if write_entry_value(body, e, out, &mut s.keys) {
                s.strings.push((v0, out.len()));
            }
            s.marks.note(v0, out.len(), Slot::Value(i));
        }
        out.push(b'}');

        let size = out.len() - start;
        if size <= MAX_LOG_BYTES {
            // A plan for the next records, when one is wanted (none, or it stopped matching)
            // and nothing here depended on more than the keys, the date and the values (see
            // `template`): the tags were the previous record's (a run of records from one
            // container), and no tag list or OpenTelemetry field of the record's own was read.
            if same_tags
                && no_otlp
                && !present.ddtags_key
                && !present.ecs_kept
                && s.template.wanted(self.id)
            {
                self.keep_template(rec, tag, s, out, start);
            }
            return Mapped::Written { truncated: false };
        }
        // Over 1 MB: cut the message first, then the largest other top-level strings.
        let mut cuts: Vec<(usize, usize)> = std::mem::take(&mut s.strings);
        cuts.sort_by_key(|&(a, b)| std::cmp::Reverse(b - a));
        if let Some(m) = message {
            cuts.insert(0, m);
        }
        for i in 0..cuts.len() {
            let excess = (out.len() - start).saturating_sub(MAX_LOG_BYTES);
            if excess == 0 {
                break;
            }
            let (m0, m1) = cuts[i];
            let removed = cut_string(out, m0, m1, excess);
            for c in cuts.iter_mut().skip(i + 1) {
                if c.0 > m0 {
                    *c = (c.0 - removed, c.1 - removed);
                }
            }
        }
        cuts.clear();
        s.strings = cuts;
        let size_after = out.len() - start;
        if size_after <= MAX_LOG_BYTES {
            return Mapped::Written { truncated: true };
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

    /// One pass over the record's attribute names: notes which reserved attributes the record
    /// has and where the message key is, and marks the attributes the tags consume (its
    /// `ddtags` when it is a tag list, the ECS attributes with `provider ecs`, and later
    /// duplicates of either) in `s.skip`, listing the ECS ones in `s.ecs_entries`.
    fn scan(&self, body: &[u8], s: &mut Scratch) -> Present {
        let mut p = Present::default();
        let mut seen_ecs = [false; ECS_KEYS.len()];
        s.ecs_entries.clear();
        for (i, e) in s.entries.iter().enumerate() {
            let Some(k) = e.name_in(body) else {
                continue;
            };
            let ecs = match k {
                b"message" => {
                    p.message = true;
                    None
                }
                b"service" => {
                    p.service = true;
                    None
                }
                b"ddsource" => {
                    p.source = true;
                    None
                }
                b"hostname" => {
                    p.hostname = true;
                    None
                }
                b"status" => {
                    p.status = true;
                    None
                }
                b"dd.trace_id" => {
                    p.trace_id = true;
                    None
                }
                b"dd.span_id" => {
                    p.span_id = true;
                    None
                }
                b"ddtags" => {
                    if std::mem::replace(&mut p.ddtags_key, true) {
                        // A duplicate: the first ddtags wins, whatever became of it.
                        s.skip[i] = true;
                    } else if is_tag_list(&body[e.value.0..e.value.1]) {
                        s.skip[i] = true;
                        p.own_tags = Some(i);
                    }
                    None
                }
                b"container_id" => Some(0),
                b"container_name" => Some(1),
                b"container_image" => Some(2),
                b"ecs_cluster" => Some(3),
                b"ecs_task_definition" => Some(4),
                b"ecs_task_arn" => Some(5),
                _ => None,
            };
            if let Some(n) = ecs
                && self.ecs
            {
                debug_assert_eq!(ECS_KEYS[n], k);
                if std::mem::replace(&mut seen_ecs[n], true) {
                    // A duplicate: the first occurrence wins, whatever became of it.
                    s.skip[i] = true;
                } else if e.text_in(body).is_some_and(|v| !v.is_empty()) {
                    s.skip[i] = true;
                    s.ecs_entries.push(i);
                } else {
                    p.ecs_kept = true;
                }
            }
            if self.date_key.as_deref().map(str::as_bytes) == Some(k) {
                p.date = true;
            }
            if self.tag_key.as_deref().map(str::as_bytes) == Some(k) {
                p.tag = true;
            }
            if k == self.message_key.as_slice() && p.message_key.is_none() {
                p.message_key = Some(i);
            }
        }
        p
    }

    /// Makes the tags of a record from its own tag list, the ECS attributes [`Mapper::scan`]
    /// found and `dd_tags`, into `s.tags` (and `s.tags_json`). The records of a chunk usually
    /// share them (one task, one container), so when their inputs are the same as the
    /// previous record's, the tags made then are kept as they are.
    ///
    /// Returns true when the tags were the previous record's.
    fn collect_tags(&self, body: &[u8], s: &mut Scratch, own: Option<&[u8]>) -> bool {
        let mut check = Signature {
            prev: &s.sig,
            pos: 0,
            same: s.tags_of == self.id,
        };
        self.tag_inputs(body, &s.entries, &s.ecs_entries, own, |p| check.compare(p));
        if check.same && check.pos == s.sig.len() {
            return true;
        }
        s.sig.clear();
        self.tag_inputs(body, &s.entries, &s.ecs_entries, own, |p| {
            s.sig.extend_from_slice(&(p.len() as u32).to_le_bytes());
            s.sig.extend_from_slice(p);
        });
        s.tags.clear();
        s.tag_ranges.clear();
        if let Some(raw) = own {
            own_tags(raw, &mut s.tags, &mut s.tag_ranges);
        }
        for &i in &s.ecs_entries {
            let e = s.entries[i];
            if let (Some(k), Some(v)) = (e.name_in(body), e.text_in(body)) {
                ecs_tags(k, v, &mut s.tags, &mut s.tag_ranges, &mut s.text);
            }
        }
        for t in &self.static_tags {
            push_tag(&mut s.tags, &mut s.tag_ranges, t.as_bytes());
        }
        s.tags_json.clear();
        write_str(&mut s.tags_json, &s.tags);
        s.tags_of = self.id;
        false
    }

    /// Feeds `f` everything the tags are made from besides this mapper's own settings (see
    /// [`Mapper::id`]): the raw bytes of the ECS attributes (names and values) and, after an
    /// empty piece, the record's own tag list. No other piece is empty.
    ///
    /// Only the ECS run is compared byte for byte in the usual case: the empty piece and the
    /// length prefixes cost no call to `memcmp`.
    fn tag_inputs(
        &self,
        body: &[u8],
        entries: &[Entry],
        ecs_entries: &[usize],
        own: Option<&[u8]>,
        mut f: impl FnMut(&[u8]),
    ) {
        // The ECS attributes' raw key/value bytes, one piece per run of adjacent attributes
        // (FireLens writes them together, so usually one piece for all of them).
        let mut k = 0;
        while let Some(&first) = ecs_entries.get(k) {
            let mut last = first;
            while ecs_entries.get(k + 1) == Some(&(last + 1)) {
                k += 1;
                last += 1;
            }
            f(&body[entries[first].key.0..entries[last].value.1]);
            k += 1;
        }
        f(b"");
        if let Some(raw) = own {
            f(raw);
        }
    }

    /// Writes the message value; returns the byte range of its JSON string when it is one.
    ///
    /// A text message longer than [`MAX_LOG_BYTES`] is certain to be cut, and cut before
    /// anything else (see [`Mapper::write_decoded`]), so only its first [`MAX_LOG_BYTES`]
    /// bytes are written: a multi-megabyte line costs no more to escape than what can be
    /// kept of it. The whole text is then returned too, for the size of an object that does
    /// not fit even so.
    fn write_message<'b>(
        &self,
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

/// Compares the inputs of a record's tags, piece by piece, with the previous record's
/// (length-prefixed in `prev`) without copying them.
struct Signature<'a> {
    prev: &'a [u8],
    pos: usize,
    same: bool,
}

impl Signature<'_> {
    fn compare(&mut self, piece: &[u8]) {
        if !self.same {
            return;
        }
        let len = (piece.len() as u32).to_le_bytes();
        let body = self.pos + 4;
        self.same = self.prev.get(self.pos..body) == Some(&len[..])
            && (piece.is_empty() || self.prev.get(body..body + piece.len()) == Some(piece));
        self.pos = body + piece.len();
    }
}

/// True when a `ddtags` value is a tag list: a comma-separated string or an array of strings.
/// Anything else stays an ordinary attribute.
fn is_tag_list(raw: &[u8]) -> bool {
    if decode::as_bytes(raw).is_some() {
        return true;
    }
    let mut r = Reader::new(raw);
    let Ok(Value::Array(n)) = r.read() else {
        return false;
    };
    (0..n).all(|_| matches!(r.read(), Ok(Value::Str(_) | Value::Bin(_))))
}

/// Appends the record's own `ddtags` (see [`is_tag_list`]).
fn own_tags(raw: &[u8], tags: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>) {
    if let Some(text) = decode::as_bytes(raw) {
        for t in text.split(|&b| b == b',') {
            push_tag(tags, ranges, t.trim_ascii());
        }
        return;
    }
    let mut r = Reader::new(raw);
    let Ok(Value::Array(n)) = r.read() else {
        return;
    };
    for _ in 0..n {
        if let Ok(Value::Str(b) | Value::Bin(b)) = r.read() {
            push_tag(tags, ranges, b.trim_ascii());
        }
    }
}

/// Appends the tags Fluent Bit's datadog output (4.1+) derives from one FireLens attribute.
fn ecs_tags(
    key: &[u8],
    v: &[u8],
    tags: &mut Vec<u8>,
    ranges: &mut Vec<(usize, usize)>,
    tmp: &mut Vec<u8>,
) {
    let mut kv = |k: &str, val: &[u8]| {
        tmp.clear();
        tmp.extend_from_slice(k.as_bytes());
        tmp.push(b':');
        tmp.extend_from_slice(val);
        push_tag(tags, ranges, tmp);
    };
    match key {
        b"container_name" => kv("container_name", v.strip_prefix(b"/").unwrap_or(v)),
        b"ecs_cluster" => kv("cluster_name", after(v, b"cluster/").unwrap_or(v)),
        b"ecs_task_definition" => match v.iter().position(|&b| b == b':') {
            Some(i) => {
                kv("task_family", &v[..i]);
                kv("task_version", &v[i + 1..]);
            }
            None => kv("ecs_task_definition", v),
        },
        b"ecs_task_arn" => {
            kv("task_arn", v);
            if let Some(rest) = v.strip_prefix(b"arn:aws:ecs:")
                && let Some(i) = rest.iter().position(|&b| b == b':')
            {
                kv("region", &rest[..i]);
            }
            kv("task_id", after(v, b"task/").unwrap_or(v));
        }
        // container_id, container_image
        _ => kv(std::str::from_utf8(key).unwrap_or("attribute"), v),
    }
}

/// The text after the first occurrence of `needle`.
fn after<'a>(hay: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| &hay[i + needle.len()..])
}

/// Adds one tag unless it is empty or already present.
fn push_tag(tags: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>, tag: &[u8]) {
    if tag.is_empty() || ranges.iter().any(|&(a, b)| &tags[a..b] == tag) {
        return;
    }
    if !tags.is_empty() {
        tags.push(b',');
    }
    let a = tags.len();
    tags.extend_from_slice(tag);
    ranges.push((a, tags.len()));
}

/// Reads `otlp.severity_text`, `otlp.trace_id` and `otlp.span_id` from the metadata map.
fn otlp_fields(meta: &[u8]) -> Otlp<'_> {
    let mut o = Otlp::default();
    if meta.len() <= 1 {
        return o;
    }
    let Some(otlp) = map_get(meta, b"otlp") else {
        return o;
    };
    o.severity_text = map_get(otlp, b"severity_text").and_then(decode::as_bytes);
    o.trace_id = map_get(otlp, b"trace_id").and_then(id_low64);
    o.span_id = map_get(otlp, b"span_id").and_then(id_low64);
    o
}

/// The raw value of `key` in a map (first occurrence).
fn map_get<'a>(map: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut r = Reader::new(map);
    let Ok(Value::Map(n)) = r.read() else {
        return None;
    };
    for _ in 0..n {
        let k = r.read().ok()?;
        let v = r.raw_value().ok()?;
        if matches!(k, Value::Str(b) | Value::Bin(b) if b == key) {
            return Some(v);
        }
    }
    None
}

/// The low 64 bits of a trace or span id given as raw bytes (8 or 16) or hex text,
/// which is the form Datadog correlates on.
fn id_low64(raw: &[u8]) -> Option<u64> {
    let bytes = match Reader::new(raw).read().ok()? {
        Value::Bin(b) => b,
        Value::Str(s) if s.len() == 8 || s.len() == 16 => {
            if s.iter().all(u8::is_ascii_hexdigit) {
                let text = std::str::from_utf8(s).ok()?;
                return u64::from_str_radix(text, 16).ok().filter(|&v| v != 0);
            }
            s
        }
        Value::Str(s) if s.len() == 32 && s.iter().all(u8::is_ascii_hexdigit) => {
            let text = std::str::from_utf8(&s[16..]).ok()?;
            return u64::from_str_radix(text, 16).ok().filter(|&v| v != 0);
        }
        _ => return None,
    };
    if bytes.len() != 8 && bytes.len() != 16 {
        return None;
    }
    let low: [u8; 8] = bytes[bytes.len() - 8..].try_into().ok()?;
    Some(u64::from_be_bytes(low)).filter(|&v| v != 0)
}

/// Writes one of the plugin's own attributes (its value too when it is fixed) after a comma
/// unless it is the first, recording its key for the duplicate checks of the record's keys.
fn write_attr(out: &mut Vec<u8>, keys: &mut Vec<(usize, usize)>, attr: &Attr) {
    if !keys.is_empty() {
        out.push(b',');
    }
    let a = out.len();
    out.extend_from_slice(&attr.json);
    keys.push((a, a + attr.key_len));
}

/// Writes a key (its text, or a raw msgpack value), unless the same key text was already written
/// in this map (entries `keys[base..]`). Returns false for a duplicate; the caller then
/// truncates what was written and skips the value.
fn write_any_key(
    out: &mut Vec<u8>,
    keys: &mut Vec<(usize, usize)>,
    base: usize,
    key: Key<'_>,
    tmp: &mut Vec<u8>,
    depth: usize,
    seen: &mut HashSet<Box<[u8]>>,
) -> bool {
    if keys.len() > base {
        out.push(b',');
    }
    let a = out.len();
    match key {
        Key::Text(text) => write_str(out, text),
        Key::Raw(raw) => write_key_text(out, raw, tmp, depth),
    }
    let b = out.len();
    let new = &out[a..b];
    let dup = if keys.len() - base <= LINEAR_DEDUP_MAX {
        keys[base..].iter().any(|&(x, y)| &out[x..y] == new)
    } else {
        // `seen` holds this map's keys from the first time it is needed on, so each key
        // costs one lookup (rebuilding a set per key made a large map quadratic).
        if seen.is_empty() {
            seen.extend(keys[base..].iter().map(|&(x, y)| Box::from(&out[x..y])));
        }
        !seen.insert(Box::from(new))
    };
    if dup {
        return false;
    }
    keys.push((a, b));
    out.push(b':');
    true
}

/// A map key to write: its text, or its raw msgpack value when it is not a str or bin.
#[derive(Clone, Copy)]
enum Key<'a> {
    Text(&'a [u8]),
    Raw(&'a [u8]),
}

/// Writes a map key given as a raw msgpack value as a JSON string.
fn write_key_text(out: &mut Vec<u8>, raw_key: &[u8], tmp: &mut Vec<u8>, depth: usize) {
    match Reader::new(raw_key).read() {
        Ok(Value::Str(b) | Value::Bin(b)) => write_str(out, b),
        Ok(Value::UInt(n)) => write_str(out, itoa::Buffer::new().format(n).as_bytes()),
        Ok(Value::Int(n)) => write_str(out, itoa::Buffer::new().format(n).as_bytes()),
        _ => {
            // Any other key: its JSON text, as a string (one that is a string already, such
            // as an ext's, as it is). Within that text an array or map key is cut like a
            // value too deep: escaping keys within keys would double the size per level.
            tmp.clear();
            write_value(&mut Reader::new(raw_key), tmp, depth, &mut Vec::new(), true);
            let text = std::mem::take(tmp);
            if text.first() == Some(&b'"') {
                out.extend_from_slice(&text);
            } else {
                write_str(out, &text);
            }
            *tmp = text;
        }
    }
}

/// Writes one msgpack value as JSON. `depth` counts the containers around it; `in_key` when
/// the value is (part of) a map key being written as text.
fn write_value(
    r: &mut Reader,
    out: &mut Vec<u8>,
    depth: usize,
    keys: &mut Vec<(usize, usize)>,
    in_key: bool,
) {
    let v = match r.read() {
        Ok(v) => v,
        Err(_) => {
            out.extend_from_slice(b"null");
            return;
        }
    };
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::UInt(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Float(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes())
        }
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::Str(b) | Value::Bin(b) => write_str(out, b),
        Value::Ext(0, d) if d.len() == 8 => {
            // A nested EventTime: epoch milliseconds.
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as i64;
            let nanos = u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as i64;
            write_i64(
                out,
                secs * 1000 + (nanos.min(999_999_999) + 500_000) / 1_000_000,
            );
        }
        Value::Ext(t, d) => {
            let mut s = format!("ext:{t}:");
            for b in d {
                s.push_str(&format!("{b:02x}"));
            }
            write_str(out, s.as_bytes());
        }
        Value::Array(n) | Value::Map(n) if depth >= MAX_DEPTH => {
            let items = if matches!(v, Value::Map(_)) { 2 * n } else { n };
            for _ in 0..items {
                if r.skip().is_err() {
                    break;
                }
            }
            write_str(out, NESTING_MARKER.as_bytes());
        }
        Value::Array(n) => {
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                write_value(r, out, depth + 1, keys, in_key);
            }
            out.push(b']');
        }
        Value::Map(n) => {
            out.push(b'{');
            let base = keys.len();
            let mut tmp = Vec::new();
            let mut seen = HashSet::new();
            let key_depth = if in_key { MAX_DEPTH } else { depth + 1 };
            for _ in 0..n {
                let mark = out.len();
                let Ok(raw_key) = r.raw_value() else {
                    break;
                };
                if write_any_key(
                    out,
                    keys,
                    base,
                    Key::Raw(raw_key),
                    &mut tmp,
                    key_depth,
                    &mut seen,
                ) {
                    write_value(r, out, depth + 1, keys, in_key);
                } else {
                    out.truncate(mark);
                    if r.skip().is_err() {
                        break;
                    }
                }
            }
            keys.truncate(base);
            out.push(b'}');
        }
    }
}

/// Writes the value of a top-level attribute: its text as a JSON string, or any other value
/// as JSON. Returns true for text (which may be cut when the object is over 1 MB).
fn write_entry_value(
    body: &[u8],
    e: Entry,
    out: &mut Vec<u8>,
    keys: &mut Vec<(usize, usize)>,
) -> bool {
    match e.text_in(body) {
        Some(text) => {
            write_str(out, text);
            true
        }
        None => {
            let raw = &body[e.value.0..e.value.1];
            write_value(&mut Reader::new(raw), out, 1, keys, false);
            false
        }
    }
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes bytes as a JSON string; invalid UTF-8 sequences become U+FFFD.
pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    crate::json::write_str(out, bytes);
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

#[cfg(test)]
mod tests;
