//! The scan that finds which reserved attributes a record carries itself, and the writing of
//! the plugin's own attributes it lacks.

use super::fields::{ECS_KEYS, Present, Slot, is_partial, is_tag_list, write_attr};
use super::value::write_i64;
use super::{Mapper, Temps, write_str};
use crate::encode::decode::Record;

impl Mapper {
    /// One pass over the record's attribute names: notes which reserved attributes the record
    /// has, where the message key is and whether it is one part of a split line
    /// (`partial_message`, the first one), and marks the attributes the tags consume (its
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
                b"partial_message" => {
                    if !std::mem::replace(&mut p.partial_key, true) {
                        p.partial = is_partial(&body[e.value.0..e.value.1]);
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
