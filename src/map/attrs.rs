//! The plugin's own attributes (`json_date_key`, the tag, `ddsource`, `service`, `hostname`,
//! and the names the OpenTelemetry fields and the message take), pre-serialized once per
//! instance, and the scan that finds which of them a record carries itself.

use super::tags::{ECS_KEYS, is_tag_list};
use super::template::Slot;
use super::value::write_i64;
use super::{Mapper, Temps, write_str};
use crate::decode::Record;
use crate::options::Config;

/// One of the plugin's own attributes, pre-serialized: `"key":` or `"key":"value"`.
#[derive(Debug, Clone)]
pub(super) struct Attr {
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
pub(super) struct Attrs {
    pub(super) date: Option<Attr>,
    pub(super) tag: Option<Attr>,
    pub(super) source: Option<Attr>,
    pub(super) service: Option<Attr>,
    pub(super) hostname: Option<Attr>,
    pub(super) status: Option<Attr>,
    pub(super) trace_id: Option<Attr>,
    pub(super) span_id: Option<Attr>,
    pub(super) ddtags: Attr,
    /// The date or the tag attribute is named `ddtags`.
    pub(super) date_is_ddtags: bool,
    pub(super) tag_is_ddtags: bool,
    pub(super) message: Option<Attr>,
}

impl Attrs {
    pub(super) fn new(cfg: &Config) -> Attrs {
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

/// Which reserved attributes the record carries itself.
#[derive(Default)]
pub(super) struct Present {
    pub(super) message: bool,
    pub(super) service: bool,
    pub(super) source: bool,
    pub(super) hostname: bool,
    pub(super) status: bool,
    pub(super) date: bool,
    pub(super) tag: bool,
    pub(super) trace_id: bool,
    pub(super) span_id: bool,
    /// Entry index of the `dd_message_key` attribute.
    pub(super) message_key: Option<usize>,
    /// Entry index of the record's `ddtags` when it is a tag list.
    pub(super) own_tags: Option<usize>,
    /// The record has a key named `ddtags` (whether or not it is a tag list).
    pub(super) ddtags_key: bool,
    /// With `provider ecs`, an ECS attribute stays an attribute (its value is not text, or
    /// empty).
    pub(super) ecs_kept: bool,
}

impl Mapper {
    /// One pass over the record's attribute names: notes which reserved attributes the record
    /// has and where the message key is, and marks the attributes the tags consume (its
    /// `ddtags` when it is a tag list, the ECS attributes with `provider ecs`, and later
    /// duplicates of either) in `s.skip`, listing the ECS ones in `s.ecs_entries`.
    pub(super) fn scan(&self, body: &[u8], s: &mut Temps) -> Present {
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
}

/// Writes one of the plugin's own attributes (its value too when it is fixed) after a comma
/// unless it is the first, recording its key for the duplicate checks of the record's keys.
pub(super) fn write_attr(out: &mut Vec<u8>, keys: &mut Vec<(usize, usize)>, attr: &Attr) {
    if !keys.is_empty() {
        out.push(b',');
    }
    let a = out.len();
    out.extend_from_slice(&attr.json);
    keys.push((a, a + attr.key_len));
}

impl Attrs {
    /// True when `ddtags` is left out because the date or the tag attribute took the name
    /// and was written (see [`Attrs`]).
    pub(super) fn ddtags_taken(&self, present: &Present) -> bool {
        (self.date_is_ddtags && self.date.is_some() && !present.date)
            || (self.tag_is_ddtags && self.tag.is_some() && !present.tag)
    }
}

impl Mapper {
    /// Writes the date (a slot of the plan), the tag, `ddsource`, `service` and `hostname`,
    /// each when configured and the record lacks it.
    pub(super) fn write_own_attrs(
        &self,
        rec: &Record,
        tag: &str,
        present: &Present,
        s: &mut Temps,
        out: &mut Vec<u8>,
    ) {
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
    }
}
