//! What the steps of writing an object share: the plugin's own attributes pre-serialized
//! once per instance ([`Attrs`]), which reserved attributes a record has ([`Present`]), the
//! slots of a plan ([`Slot`]), and which attributes are tags ([`ECS_KEYS`], [`is_tag_list`]).

use super::value::write_str;
use crate::config::options::Config;
use crate::encode::decode::{self, Reader, Value};

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
        // `provider ecs` without `dd_source`: `ecs`, the source Datadog's ECS Explorer
        // correlates FireLens logs by.
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
    /// The record has a top-level `partial_message` key, whatever its value.
    pub(super) partial_key: bool,
    /// The record is one part of a line the container runtime split (see [`is_partial`]).
    pub(super) partial: bool,
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

/// Attributes that `provider ecs` turns into tags (FireLens metadata).
pub(super) const ECS_KEYS: [&[u8]; 6] = [
    b"container_id",
    b"container_name",
    b"container_image",
    b"ecs_cluster",
    b"ecs_task_definition",
    b"ecs_task_arn",
];

/// True when a `ddtags` value is a tag list: a comma-separated string or an array of strings.
/// Anything else stays an ordinary attribute.
pub(super) fn is_tag_list(raw: &[u8]) -> bool {
    if decode::as_bytes(raw).is_some() {
        return true;
    }
    let mut r = Reader::new(raw);
    let Ok(Value::Array(n)) = r.read() else {
        return false;
    };
    (0..n).all(|_| matches!(r.read(), Ok(Value::Str(_) | Value::Bin(_))))
}

/// True when a `partial_message` value says the record is one part of a split line: a
/// string (str or bin) equal to `true` in any case, as Fluent Bit's multiline filter tests it,
/// or the boolean true (some forwarders write one).
pub(super) fn is_partial(raw: &[u8]) -> bool {
    match Reader::new(raw).read() {
        Ok(Value::Str(b) | Value::Bin(b)) => b.eq_ignore_ascii_case(b"true"),
        Ok(Value::Bool(b)) => b,
        _ => false,
    }
}

/// What the general way wrote in one place of an object that depends on more than the keys.
/// A plan copies everything else as it was; see `template::eligible` for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// The record's time (`json_date_key`).
    Date,
    /// The value of this entry as the message.
    Message(usize),
    /// The value of this entry.
    Value(usize),
}
