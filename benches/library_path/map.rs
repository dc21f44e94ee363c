//! Mapping: the rules of src/encode/map (the plugin's own attributes, the OpenTelemetry
//! fields, `ddtags`, the `dd_message_key` rename, duplicate keys), written again over the
//! library reader and writer.

use super::read::{Otlp, TagList, tag_list};
use super::record::{Entry, LibRecord, is_partial};
use super::write::{Fmt, key_is_new, put_raw, put_str, write_raw_key, write_value};
use super::{Config, MAX_LOG_BYTES, Mapped, Mapper, Record, Scratch, push_ecs_tags, push_tag};
use serde_json::ser::Formatter;
use std::collections::HashSet;

/// One of the plugin's own attributes, pre-serialized: `"key":` or `"key":"value"`.
#[derive(Clone, Debug)]
struct Attr {
    json: Vec<u8>,
    key_len: usize,
}

impl Attr {
    fn new(key: &str, value: Option<&str>) -> Attr {
        let mut json = Vec::new();
        put_str(&mut json, key.as_bytes());
        let key_len = json.len();
        json.push(b':');
        if let Some(v) = value {
            put_str(&mut json, v.as_bytes());
        }
        Attr { json, key_len }
    }
}

const ECS_KEYS: [&[u8]; 6] = [
    b"container_id",
    b"container_name",
    b"container_image",
    b"ecs_cluster",
    b"ecs_task_definition",
    b"ecs_task_arn",
];

/// The mapping settings of one instance (as `Mapper`), on the library reader and writer.
pub struct LibMapper {
    message_key: Vec<u8>,
    date_key: Option<Vec<u8>>,
    tag_key: Option<Vec<u8>>,
    static_tags: Vec<String>,
    ecs: bool,
    date: Option<Attr>,
    tag: Option<Attr>,
    source: Option<Attr>,
    service: Option<Attr>,
    hostname: Option<Attr>,
    status: Option<Attr>,
    trace_id: Option<Attr>,
    span_id: Option<Attr>,
    ddtags: Attr,
    message: Option<Attr>,
    date_is_ddtags: bool,
    tag_is_ddtags: bool,
    /// The product's mapper, for objects over 1 MB (see the module doc).
    product: Mapper,
}

impl LibMapper {
    /// The library path's mapping for an instance's configuration.
    pub fn new(cfg: &Config) -> LibMapper {
        LibMapper::with_product(cfg, Mapper::new(cfg))
    }

    /// As [`LibMapper::new`], handing objects over 1 MB to `product` (made for `cfg`).
    pub fn with_product(cfg: &Config, product: Mapper) -> LibMapper {
        let mut names: Vec<String> = Vec::new();
        let mut attr = |key: Option<&str>, value: Option<&str>| {
            let key = key?;
            if names.iter().any(|n| n == key) {
                return None;
            }
            names.push(key.to_string());
            Some(Attr::new(key, value))
        };
        let date = attr(cfg.date_key.as_deref(), None);
        let tag = attr(cfg.tag_key.as_deref(), None);
        let source = (cfg.source.as_deref())
            .or(cfg.ecs.then_some("ecs"))
            .and_then(|v| attr(Some("ddsource"), Some(v)));
        let service = cfg
            .service
            .as_deref()
            .and_then(|v| attr(Some("service"), Some(v)));
        let hostname = cfg
            .hostname
            .as_deref()
            .and_then(|v| attr(Some("hostname"), Some(v)));
        let status = attr(Some("status"), None);
        let trace_id = attr(Some("dd.trace_id"), None);
        let span_id = attr(Some("dd.span_id"), None);
        let message = attr(Some("message"), None);
        let is_ddtags = |k: &Option<String>| k.as_deref() == Some("ddtags");
        LibMapper {
            message_key: cfg.message_key.as_bytes().to_vec(),
            date_key: cfg.date_key.as_ref().map(|k| k.as_bytes().to_vec()),
            tag_key: cfg.tag_key.as_ref().map(|k| k.as_bytes().to_vec()),
            static_tags: cfg.tags.clone(),
            ecs: cfg.ecs,
            date,
            tag,
            source,
            service,
            hostname,
            status,
            trace_id,
            span_id,
            ddtags: Attr::new("ddtags", None),
            message,
            date_is_ddtags: is_ddtags(&cfg.date_key),
            tag_is_ddtags: is_ddtags(&cfg.tag_key) && !is_ddtags(&cfg.date_key),
            product,
        }
    }
}

/// What one flush thread reuses from record to record.
#[derive(Default)]
pub struct LibScratch {
    pub(super) entries: Vec<Entry>,
    skip: Vec<bool>,
    keys: Vec<(usize, usize)>,
    seen: HashSet<Box<[u8]>>,
    ecs_entries: Vec<usize>,
    text: Vec<u8>,
    /// The tags of the last record: their inputs, their list and its JSON string.
    tag_sig: Vec<u8>,
    tag_list: Vec<u8>,
    tag_ranges: Vec<(usize, usize)>,
    tag_json: Vec<u8>,
    tags_made: bool,
    /// Scratch space of the ECS tags.
    tag_tmp: Vec<u8>,
    /// For objects over 1 MB, handed to the product's mapper.
    product: Scratch,
}

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
    message_key: Option<usize>,
    own_tags: Option<usize>,
    ddtags_key: bool,
}

/// Writes an attribute after a comma unless it is the first, noting its key.
fn write_attr(out: &mut Vec<u8>, keys: &mut Vec<(usize, usize)>, attr: &Attr) {
    let _ = Fmt.begin_object_key(out, keys.is_empty());
    let a = out.len();
    out.extend_from_slice(&attr.json);
    keys.push((a, a + attr.key_len));
}

impl LibMapper {
    fn scan(&self, body: &[u8], s: &mut LibScratch) -> Present {
        let mut p = Present::default();
        let mut seen_ecs = [false; ECS_KEYS.len()];
        s.ecs_entries.clear();
        for (i, e) in s.entries.iter().enumerate() {
            let Some(k) = e.name_in(body) else {
                continue;
            };
            match k {
                b"message" => p.message = true,
                b"service" => p.service = true,
                b"ddsource" => p.source = true,
                b"hostname" => p.hostname = true,
                b"status" => p.status = true,
                b"dd.trace_id" => p.trace_id = true,
                b"dd.span_id" => p.span_id = true,
                b"ddtags" => {
                    if std::mem::replace(&mut p.ddtags_key, true) {
                        s.skip[i] = true;
                    } else if !matches!(tag_list(&body[e.value.0..e.value.1]), TagList::Not) {
                        s.skip[i] = true;
                        p.own_tags = Some(i);
                    }
                }
                _ => {}
            }
            if self.ecs
                && let Some(n) = ECS_KEYS.iter().position(|&x| x == k)
            {
                if std::mem::replace(&mut seen_ecs[n], true) {
                    s.skip[i] = true;
                } else if e.text_in(body).is_some_and(|v| !v.is_empty()) {
                    s.skip[i] = true;
                    s.ecs_entries.push(i);
                }
            }
            if self.date_key.as_deref() == Some(k) {
                p.date = true;
            }
            if self.tag_key.as_deref() == Some(k) {
                p.tag = true;
            }
            if k == self.message_key.as_slice() && p.message_key.is_none() {
                p.message_key = Some(i);
            }
        }
        p
    }

    /// Makes the tags of a record of Fluent Bit tag `tag` into `s.tag_json`, unless the last
    /// record's were made from the same inputs. The ECS tags are the product's own function's
    /// (`push_ecs_tags`): string work on attribute values, neither reading nor writing.
    fn tags(&self, body: &[u8], tag: &str, p: &Present, s: &mut LibScratch) {
        let own = p.own_tags.map(|i| {
            let e = s.entries[i];
            &body[e.value.0..e.value.1]
        });
        let mut sig = std::mem::take(&mut s.text);
        sig.clear();
        if !s.ecs_entries.is_empty() {
            // The Fluent Bit tag gives `ecs_container_name`.
            sig.extend_from_slice(&(tag.len() as u32).to_le_bytes());
            sig.extend_from_slice(tag.as_bytes());
        }
        for &i in &s.ecs_entries {
            let e = s.entries[i];
            let piece = &body[e.key.0..e.value.1];
            sig.extend_from_slice(&(piece.len() as u32).to_le_bytes());
            sig.extend_from_slice(piece);
        }
        sig.extend_from_slice(&u32::MAX.to_le_bytes());
        sig.extend_from_slice(own.unwrap_or(b""));
        if s.tags_made && sig == s.tag_sig {
            s.text = sig;
            return;
        }
        let (list, ranges) = (&mut s.tag_list, &mut s.tag_ranges);
        list.clear();
        ranges.clear();
        match own.map(tag_list) {
            Some(TagList::Text(text)) => {
                for t in text.split(|&b| b == b',') {
                    push_tag(list, ranges, t.trim_ascii());
                }
            }
            Some(TagList::List(items)) => {
                for t in items {
                    push_tag(list, ranges, t.trim_ascii());
                }
            }
            _ => {}
        }
        let attrs = s.ecs_entries.iter().filter_map(|&i| {
            let e = s.entries[i];
            e.name_in(body).zip(e.text_in(body))
        });
        push_ecs_tags(attrs, tag.as_bytes(), list, ranges, &mut s.tag_tmp);
        for static_tag in &self.static_tags {
            push_tag(list, ranges, static_tag.as_bytes());
        }
        s.tag_json.clear();
        put_str(&mut s.tag_json, list);
        s.text = std::mem::replace(&mut s.tag_sig, sig);
        s.tags_made = true;
    }

    /// Appends the Datadog object for `rec` (tagged `tag`) to `out`.
    pub(super) fn write(
        &self,
        rec: &LibRecord,
        otlp: &Otlp,
        tag: &str,
        s: &mut LibScratch,
        out: &mut Vec<u8>,
    ) -> Mapped {
        let start = out.len();
        s.skip.clear();
        s.skip.resize(s.entries.len(), false);
        s.keys.clear();
        s.seen.clear();
        let body = rec.body;
        let p = self.scan(body, s);
        let _ = Fmt.begin_object(out);
        // The plugin's own attributes.
        if let Some(k) = &self.date
            && !p.date
        {
            write_attr(out, &mut s.keys, k);
            let _ = Fmt.write_i64(out, rec.time.millis());
        }
        if let Some(k) = &self.tag
            && !p.tag
        {
            write_attr(out, &mut s.keys, k);
            put_str(out, tag.as_bytes());
        }
        for (attr, has) in [
            (&self.source, p.source),
            (&self.service, p.service),
            (&self.hostname, p.hostname),
        ] {
            if let Some(k) = attr
                && !has
            {
                write_attr(out, &mut s.keys, k);
            }
        }
        // OpenTelemetry metadata.
        if let Some(sev) = otlp.severity_text
            && let Some(k) = &self.status
            && !p.status
        {
            write_attr(out, &mut s.keys, k);
            put_str(out, sev);
        }
        for (attr, id, has) in [
            (&self.trace_id, otlp.trace_id, p.trace_id),
            (&self.span_id, otlp.span_id, p.span_id),
        ] {
            if let (Some(k), Some(id)) = (attr, id)
                && !has
            {
                write_attr(out, &mut s.keys, k);
                put_str(out, itoa::Buffer::new().format(id).as_bytes());
            }
        }
        // ddtags.
        self.tags(body, tag, &p, s);
        let taken = (self.date_is_ddtags && self.date.is_some() && !p.date)
            || (self.tag_is_ddtags && self.tag.is_some() && !p.tag);
        if !taken && !s.tag_list.is_empty() {
            write_attr(out, &mut s.keys, &self.ddtags);
            put_raw(out, &s.tag_json);
        }
        // The message, renamed from `dd_message_key`.
        let mut renamed = false;
        if !p.message
            && let Some(i) = p.message_key
            && let Some(k) = &self.message
        {
            write_attr(out, &mut s.keys, k);
            s.skip[i] = true;
            renamed = true;
            self.write_entry_value(body, s.entries[i], out, &mut s.keys);
        }
        // The record's other attributes.
        for i in 0..s.entries.len() {
            if s.skip[i] {
                continue;
            }
            let e = s.entries[i];
            let name = e.name_in(body);
            if renamed && name == Some(self.message_key.as_slice()) {
                continue;
            }
            let mark = out.len();
            let _ = Fmt.begin_object_key(out, s.keys.is_empty());
            let a = out.len();
            match name {
                Some(text) => put_str(out, text),
                None => write_raw_key(&body[e.key.0..e.key.1], out),
            }
            if !key_is_new(out, &mut s.keys, 0, a, &mut s.seen) {
                out.truncate(mark);
                continue;
            }
            self.write_entry_value(body, e, out, &mut s.keys);
        }
        let _ = Fmt.end_object(out);
        if out.len() - start <= MAX_LOG_BYTES {
            let partial = is_partial(body, &s.entries);
            return Mapped::Written {
                truncated: false,
                partial,
            };
        }
        // Over Datadog's 1 MB limit: the product's mapper cuts it (see the module doc).
        out.truncate(start);
        let record = Record {
            time: rec.time,
            meta: rec.meta,
            body: rec.body,
        };
        self.product.write(&record, tag, &mut s.product, out)
    }

    fn write_entry_value(
        &self,
        body: &[u8],
        e: Entry,
        out: &mut Vec<u8>,
        keys: &mut Vec<(usize, usize)>,
    ) {
        match e.text_in(body) {
            Some(text) => put_str(out, text),
            None => write_value(&body[e.value.0..e.value.1], out, 1, keys),
        }
    }
}
