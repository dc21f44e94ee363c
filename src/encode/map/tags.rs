//! `ddtags`: the record's own tags (its `ddtags` when that is a tag list), then the ECS tags
//! (`provider ecs`, from the FireLens attributes), then `dd_tags`, without duplicates.
//!
//! The records of a chunk usually share their tags (one task, one container), so the tags
//! and their JSON are kept in [`Tags`] across records, with their inputs, and made again only
//! when a record's inputs are none of the last few sets' (`Cache`, which keeps up to
//! `TAG_SETS` of them, for the chunks that mix containers).

use super::fields::{Present, write_attr};
use super::{Cache, Mapper, TAG_SETS, TagSet, Temps, write_str};
use crate::encode::decode::{self, Entry, Reader, Value};

/// The tags made last, kept across records with what they were made from.
#[derive(Debug, Default)]
pub(super) struct Tags {
    /// The tags, comma-separated.
    list: Vec<u8>,
    /// Where each tag is in `list`, for the duplicate checks.
    ranges: Vec<(usize, usize)>,
    /// `list` as a JSON string, written once for all the records that share them.
    json: Vec<u8>,
    /// Inputs of `list` (static tags aside: see `of`): ECS values and the record's own
    /// ddtags, as length-prefixed pieces (see [`tag_inputs`]).
    sig: Vec<u8>,
    /// The [`Mapper::id`] whose tags `list` holds, made from `sig` (0: none yet).
    of: u64,
}

impl Tags {
    /// Bytes of heap capacity held.
    pub(super) fn capacity_bytes(&self) -> usize {
        use super::vec_bytes;
        vec_bytes(&self.list)
            + vec_bytes(&self.ranges)
            + vec_bytes(&self.json)
            + vec_bytes(&self.sig)
    }

    /// True when these are the tags `mapper` makes from these inputs: the record's
    /// `ecs_entries` and its own tag list `own`.
    pub(super) fn same_inputs(
        &self,
        mapper: u64,
        body: &[u8],
        entries: &[Entry],
        ecs_entries: &[usize],
        own: Option<&[u8]>,
    ) -> bool {
        let mut check = Signature {
            prev: &self.sig,
            pos: 0,
            same: self.of == mapper,
        };
        tag_inputs(body, entries, ecs_entries, own, |p| check.compare(p));
        check.same && check.pos == self.sig.len()
    }
}

impl Mapper {
    /// Writes `ddtags` (unless the record has no tags, or the date or tag attribute took the
    /// name), made by [`Mapper::collect_tags`]. Returns true when the tags were made before
    /// (for an earlier record, kept in `cache`).
    pub(super) fn write_tags(
        &self,
        body: &[u8],
        present: &Present,
        s: &mut Temps,
        cache: &mut Cache,
        out: &mut Vec<u8>,
    ) -> bool {
        let own = present.own_tags.map(|i| {
            let e = s.entries[i];
            &body[e.value.0..e.value.1]
        });
        let same = self.collect_tags(body, s, own, cache);
        let tags = &cache.sets[0].tags;
        if !self.attrs.ddtags_taken(present) && !tags.list.is_empty() {
            write_attr(out, &mut s.keys, &self.attrs.ddtags);
            out.extend_from_slice(&tags.json);
        }
        same
    }

    /// Finds the tags of a record among the sets `cache` keeps, or makes them from its own
    /// tag list, the ECS attributes [`Mapper::scan`] found and `dd_tags`: into a new set while
    /// there are fewer than [`TAG_SETS`], else into the least recently used one, whose plan
    /// goes with it (a plan holds the tags it was made with, see `template`). Either way the
    /// record's set becomes the first.
    ///
    /// Returns true when the tags were found.
    fn collect_tags(
        &self,
        body: &[u8],
        s: &mut Temps,
        own: Option<&[u8]>,
        cache: &mut Cache,
    ) -> bool {
        let found = cache.sets.iter().position(|set| {
            set.tags
                .same_inputs(self.id, body, &s.entries, &s.ecs_entries, own)
        });
        if let Some(k) = found {
            cache.bring_forward(k);
            return true;
        }
        if cache.sets.len() < TAG_SETS {
            cache.sets.push(TagSet::default());
        }
        cache.bring_forward(cache.sets.len() - 1);
        let set = &mut cache.sets[0];
        set.template.forget();
        let t = &mut set.tags;
        t.sig.clear();
        tag_inputs(body, &s.entries, &s.ecs_entries, own, |p| {
            t.sig.extend_from_slice(&(p.len() as u32).to_le_bytes());
            t.sig.extend_from_slice(p);
        });
        t.list.clear();
        t.ranges.clear();
        if let Some(raw) = own {
            own_tags(raw, &mut t.list, &mut t.ranges);
        }
        for &i in &s.ecs_entries {
            let e = s.entries[i];
            if let (Some(k), Some(v)) = (e.name_in(body), e.text_in(body)) {
                ecs_tags(k, v, &mut t.list, &mut t.ranges, &mut s.text);
            }
        }
        for tag in &self.static_tags {
            push_tag(&mut t.list, &mut t.ranges, tag.as_bytes());
        }
        t.json.clear();
        write_str(&mut t.json, &t.list);
        t.of = self.id;
        false
    }
}

/// Feeds `f` everything the tags are made from besides this mapper's own settings (see
/// [`Mapper`]'s id): the raw bytes of the ECS attributes (names and values) and, after an
/// empty piece, the record's own tag list. No other piece is empty.
///
/// Only the ECS run is compared byte for byte in the usual case: the empty piece and the
/// length prefixes cost no call to `memcmp`.
fn tag_inputs(
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

/// Compares the inputs of a record's tags, piece by piece, with those of a kept tag set
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
