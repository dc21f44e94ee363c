//! `ddtags`: the record's own tags (its `ddtags` when that is a tag list), then the ECS tags
//! (`provider ecs`, from the FireLens attributes and the Fluent Bit tag), then `dd_tags`,
//! without duplicates.
//!
//! The ECS tags are, first, those Fluent Bit's built-in datadog output (4.1+) makes, one
//! attribute at a time (`ecs_tags`), then those of Datadog's Agent that the attributes
//! together give (`agent_tags`): `aws_account`, `ecs_cluster_name`, `cluster_arn`,
//! `ecs_container_name` (from the Fluent Bit tag, which FireLens makes
//! `<container>-firelens-<task id>`) and `task_definition_arn`.
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
    /// Inputs of `list` (static tags aside: see `of`): the Fluent Bit tag and the ECS
    /// values, and the record's own ddtags, as length-prefixed pieces (see [`tag_inputs`]).
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
    /// `ecs_entries` with the Fluent Bit `tag`, and its own tag list `own`.
    pub(super) fn same_inputs(
        &self,
        mapper: u64,
        tag: &str,
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
        tag_inputs(tag, body, entries, ecs_entries, own, |p| check.compare(p));
        check.same && check.pos == self.sig.len()
    }
}

impl Mapper {
    /// Writes `ddtags` (unless the record has no tags, or the date or tag attribute took the
    /// name), made by [`Mapper::collect_tags`] for a record of Fluent Bit tag `tag`. Returns
    /// true when the tags were made before (for an earlier record, kept in `cache`).
    pub(super) fn write_tags(
        &self,
        body: &[u8],
        tag: &str,
        present: &Present,
        s: &mut Temps,
        cache: &mut Cache,
        out: &mut Vec<u8>,
    ) -> bool {
        let own = present.own_tags.map(|i| {
            let e = s.entries[i];
            &body[e.value.0..e.value.1]
        });
        let same = self.collect_tags(body, tag, s, own, cache);
        let tags = &cache.sets[0].tags;
        if !self.attrs.ddtags_taken(present) && !tags.list.is_empty() {
            write_attr(out, &mut s.keys, &self.attrs.ddtags);
            out.extend_from_slice(&tags.json);
        }
        same
    }

    /// Finds the tags of a record among the sets `cache` keeps, or makes them from its own
    /// tag list, the ECS attributes [`Mapper::scan`] found (with the Fluent Bit `tag`) and
    /// `dd_tags`: into a new set while
    /// there are fewer than [`TAG_SETS`], else into the least recently used one, whose plan
    /// goes with it (a plan holds the tags it was made with, see `template`). Either way the
    /// record's set becomes the first.
    ///
    /// Returns true when the tags were found.
    fn collect_tags(
        &self,
        body: &[u8],
        tag: &str,
        s: &mut Temps,
        own: Option<&[u8]>,
        cache: &mut Cache,
    ) -> bool {
        let found = cache.sets.iter().position(|set| {
            set.tags
                .same_inputs(self.id, tag, body, &s.entries, &s.ecs_entries, own)
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
        tag_inputs(tag, body, &s.entries, &s.ecs_entries, own, |p| {
            t.sig.extend_from_slice(&(p.len() as u32).to_le_bytes());
            t.sig.extend_from_slice(p);
        });
        t.list.clear();
        t.ranges.clear();
        if let Some(raw) = own {
            own_tags(raw, &mut t.list, &mut t.ranges);
        }
        let attrs = s.ecs_entries.iter().filter_map(|&i| {
            let e = s.entries[i];
            e.name_in(body).zip(e.text_in(body))
        });
        push_ecs_tags(
            attrs,
            tag.as_bytes(),
            &mut t.list,
            &mut t.ranges,
            &mut s.text,
        );
        for static_tag in &self.static_tags {
            push_tag(&mut t.list, &mut t.ranges, static_tag.as_bytes());
        }
        t.json.clear();
        write_str(&mut t.json, &t.list);
        t.of = self.id;
        false
    }
}

/// Feeds `f` everything the tags are made from besides this mapper's own settings (see
/// [`Mapper`]'s id): when the record has ECS attributes, the Fluent Bit `tag` (which gives
/// `ecs_container_name`) and their raw bytes (names and values); then an empty piece; then
/// the record's own tag list. No other piece is empty but the tag, which cannot be mistaken
/// for the separator: with ECS attributes there are at least three pieces before the
/// record's own tags, without them only the empty one.
///
/// Only the tag and the ECS run are compared byte for byte in the usual case: the empty
/// piece and the length prefixes cost no call to `memcmp`.
fn tag_inputs(
    tag: &str,
    body: &[u8],
    entries: &[Entry],
    ecs_entries: &[usize],
    own: Option<&[u8]>,
    mut f: impl FnMut(&[u8]),
) {
    if !ecs_entries.is_empty() {
        f(tag.as_bytes());
    }
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

/// Appends the ECS tags of a record of Fluent Bit tag `tag` whose ECS attributes (first
/// occurrences with a non-empty text value, see [`Mapper::scan`]) are `attrs`, as name and
/// value: those of Fluent Bit's output ([`ecs_tags`]) attribute by attribute, then, when there
/// was one, those of Datadog's Agent ([`agent_tags`]). `tmp` is scratch space. The library
/// path (feature `library-path`) makes its tags with it too.
pub fn push_ecs_tags<'a>(
    attrs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    tag: &[u8],
    tags: &mut Vec<u8>,
    ranges: &mut Vec<(usize, usize)>,
    tmp: &mut Vec<u8>,
) {
    let mut task = Task::default();
    let mut any = false;
    for (k, v) in attrs {
        ecs_tags(k, v, tags, ranges, tmp);
        task.note(k, v);
        any = true;
    }
    if any {
        agent_tags(&task, tag, tags, ranges, tmp);
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
            if let Some(arn) = Arn::parse(v) {
                kv("region", arn.region);
            }
            kv("task_id", after(v, b"task/").unwrap_or(v));
        }
        // container_id, container_image
        _ => kv(std::str::from_utf8(key).unwrap_or("attribute"), v),
    }
}

/// The FireLens attributes that [`agent_tags`] combines (their first occurrences, non-empty
/// text: see [`Mapper::scan`]).
#[derive(Default)]
struct Task<'a> {
    cluster: Option<&'a [u8]>,
    arn: Option<&'a [u8]>,
    definition: Option<&'a [u8]>,
}

impl<'a> Task<'a> {
    fn note(&mut self, key: &[u8], v: &'a [u8]) {
        match key {
            b"ecs_cluster" => self.cluster = Some(v),
            b"ecs_task_arn" => self.arn = Some(v),
            b"ecs_task_definition" => self.definition = Some(v),
            _ => {}
        }
    }
}

/// An ECS ARN, `arn:<partition>:ecs:<region>:<account>:<resource>`, in any partition
/// (`aws`, `aws-cn`, `aws-us-gov`, ...).
struct Arn<'a> {
    partition: &'a [u8],
    region: &'a [u8],
    account: &'a [u8],
    resource: &'a [u8],
}

impl<'a> Arn<'a> {
    /// The parts of `v`, when it is an ECS ARN with none of them empty.
    fn parse(v: &'a [u8]) -> Option<Arn<'a>> {
        let mut p = v.splitn(6, |&b| b == b':');
        let (arn, partition, service) = (p.next()?, p.next()?, p.next()?);
        let (region, account, resource) = (p.next()?, p.next()?, p.next()?);
        let parts = [partition, region, account, resource];
        (arn == b"arn" && service == b"ecs" && parts.iter().all(|x| !x.is_empty())).then_some(Arn {
            partition,
            region,
            account,
            resource,
        })
    }

    /// The pieces of the ARN of resource `<kind><name>` in the same partition, region and
    /// account (`kind` ends in `/`).
    fn sibling(&self, kind: &'a [u8], name: &'a [u8]) -> [&'a [u8]; 9] {
        let (p, r, a) = (self.partition, self.region, self.account);
        [b"arn:", p, b":ecs:", r, b":", a, b":", kind, name]
    }
}

/// Appends the tags of Datadog's Agent for ECS that the FireLens attributes give together
/// (the others, `region` and `task_arn` among them, [`ecs_tags`] has added): `aws_account`,
/// `ecs_cluster_name`, `cluster_arn`, `ecs_container_name` (`tag` less
/// `-firelens-<task id>`) and `task_definition_arn`. The ARNs built here take ECS's form
/// with the task ARN's partition, region and account.
fn agent_tags(
    task: &Task,
    tag: &[u8],
    tags: &mut Vec<u8>,
    ranges: &mut Vec<(usize, usize)>,
    tmp: &mut Vec<u8>,
) {
    let mut kv = |k: &str, parts: &[&[u8]]| {
        tmp.clear();
        tmp.extend_from_slice(k.as_bytes());
        tmp.push(b':');
        for p in parts {
            tmp.extend_from_slice(p);
        }
        push_tag(tags, ranges, tmp);
    };
    let arn = task.arn.and_then(Arn::parse);
    if let Some(a) = &arn {
        kv("aws_account", &[a.account]);
    }
    if let Some(c) = task.cluster {
        let name = after(c, b"cluster/").unwrap_or(c);
        kv("ecs_cluster_name", &[name]);
        if Arn::parse(c).is_some_and(|ca| ca.resource.starts_with(b"cluster/")) {
            kv("cluster_arn", &[c]);
        } else if let Some(a) = &arn
            && is_name(c)
        {
            kv("cluster_arn", &a.sibling(b"cluster/", c));
        }
    }
    if let Some(a) = &arn
        && let Some(path) = a.resource.strip_prefix(b"task/")
    {
        let id = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        if let Some(container) = Some(tag)
            .filter(|_| !id.is_empty())
            .and_then(|t| t.strip_suffix(id))
            .and_then(|t| t.strip_suffix(b"-firelens-"))
            .filter(|c| !c.is_empty())
        {
            kv("ecs_container_name", &[container]);
        }
    }
    if let Some(a) = &arn
        && let Some(d) = task.definition
        && let Some(i) = d.iter().position(|&b| b == b':')
        && is_name(&d[..i])
        && !d[i + 1..].is_empty()
        && d[i + 1..].iter().all(u8::is_ascii_digit)
    {
        kv("task_definition_arn", &a.sibling(b"task-definition/", d));
    }
}

/// True for a name ECS could have given a cluster or a task family: not empty, and no `:`
/// or `/` (which would make the ARN built from it another one).
fn is_name(v: &[u8]) -> bool {
    !v.is_empty() && !v.iter().any(|&b| b == b':' || b == b'/')
}

/// The text after the first occurrence of `needle`.
fn after<'a>(hay: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| &hay[i + needle.len()..])
}

/// Adds one tag unless it is empty or already present (`ranges`: where each tag of `tags` is).
pub fn push_tag(tags: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>, tag: &[u8]) {
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
