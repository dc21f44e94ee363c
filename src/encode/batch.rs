//! Objects -> requests within Datadog's limits: at most 1000 objects and 5 MB of JSON each.
//!
//! [`build`] runs a chunk through the decoder and the mapper, writing each object straight into
//! the JSON array of the current [`Batch`] and starting a new one when the next object would
//! break a limit. Each batch keeps the byte range of every object, so a request that Datadog
//! refuses (400, 413) can be split and resent ([`Batch::subset_json`]).
//!
//! With compression on, the plugin encodes each batch as soon as it is full
//! ([`build_encoded`], with the instance's [`Encoder`]) and keeps only the encoded body: the
//! JSON buffer goes on to the next batch, so a flush holds one batch's JSON at a time rather
//! than the whole chunk's (about 1.5 MB per 2000 FireLens records). The rare paths that need
//! the JSON again (splitting a refused payload, re-encoding for the gzip fallback) ask the
//! batch for it ([`Batch::json_text`]), which decodes it from the body.

use crate::encode::body::{self, Body, Codec, Encoded, Encoder};
use crate::encode::decode::{self, Item};
use crate::encode::map::{Mapped, Mapper, Scratch};
use std::borrow::Cow;

/// Most objects Datadog accepts in one request.
pub const MAX_OBJECTS: usize = 1000;
/// Most bytes of uncompressed JSON Datadog accepts in one request.
pub const MAX_BYTES: usize = 5_000_000;

/// One request's worth of log objects: a JSON array and the ranges of its elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The JSON array, `[{...},{...}]`; empty once the batch is `encoded`.
    pub json: Vec<u8>,
    /// Byte ranges of each object in the JSON array.
    pub objects: Vec<(usize, usize)>,
    /// Bytes of the JSON array (set when the batch is closed).
    pub json_len: usize,
    /// The JSON array encoded when the batch was built (see [`build_encoded`]), which then
    /// holds it instead of `json`.
    pub encoded: Option<Encoded>,
}

impl Batch {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when the batch holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The JSON text of object `i` (of a batch that is not `encoded`).
    pub fn object(&self, i: usize) -> &[u8] {
        let (a, b) = self.objects[i];
        &self.json[a..b]
    }

    /// Bytes of object `i`'s JSON text.
    pub fn object_len(&self, i: usize) -> usize {
        let (a, b) = self.objects[i];
        b - a
    }

    /// The JSON array, decoded from the encoded body when only that is kept; `None` if that
    /// does not decode to the array it was made from.
    pub fn json_text(&self) -> Option<Cow<'_, [u8]>> {
        match &self.encoded {
            None => Some(Cow::Borrowed(&self.json[..])),
            Some(e) => body::decode(e.codec, &e.bytes, self.json_len).map(Cow::Owned),
        }
    }

    /// The whole batch as the body of one request in `codec`: the body encoded when the
    /// batch was built if it has that encoding, else made now by `encoder` (from the JSON,
    /// decoded first when only the body is kept). `None` when no body can be made.
    pub fn body(&self, codec: Option<Codec>, encoder: &Encoder) -> Option<Body<'_>> {
        if let Some(e) = self.encoded.as_ref().filter(|e| Some(e.codec) == codec) {
            return Some(Body {
                codec,
                bytes: Cow::Borrowed(&e.bytes[..]),
            });
        }
        match self.json_text()? {
            Cow::Borrowed(json) => encoder.body(json, codec),
            Cow::Owned(json) => {
                let body = encoder.body(&json, codec)?;
                Some(Body {
                    codec: body.codec,
                    bytes: Cow::Owned(body.bytes.into_owned()),
                })
            }
        }
    }

    /// The JSON array of objects `idx` of this batch (in that order), cut from `text`, the
    /// batch's JSON array ([`Batch::json_text`]), for resending part of a
    /// request that the intake refused (400, 413).
    pub fn subset_json(&self, text: &[u8], idx: &[usize]) -> Vec<u8> {
        let size: usize = idx.iter().map(|&i| self.object_len(i) + 1).sum();
        let mut json = Vec::with_capacity(size + 2);
        json.push(b'[');
        for (n, &i) in idx.iter().enumerate() {
            if n > 0 {
                json.push(b',');
            }
            let (a, b) = self.objects[i];
            json.extend_from_slice(&text[a..b]);
        }
        json.push(b']');
        json
    }
}

/// What building the batches of a chunk found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Log records decoded.
    pub records: u64,
    /// OpenTelemetry group markers skipped.
    pub markers: u64,
    /// Malformed stretches of the chunk skipped.
    pub malformed: u64,
    /// Messages cut to fit Datadog's 1 MB log limit.
    pub truncated: u64,
    /// Records dropped because they could not fit 1 MB even with an empty message.
    pub too_large: u64,
    /// Records shipped that are one part of a line split by the container runtime
    /// (`partial_message`).
    pub partial: u64,
    /// Offset and reason of the first malformed stretch, for the log line.
    pub first_malformed: Option<(usize, &'static str)>,
}

/// Cuts a stream of objects into batches.
#[derive(Debug, Default)]
pub struct Batcher {
    done: Vec<Batch>,
    cur: Batch,
    obj_start: usize,
    /// Emptied buffers of earlier flushes, reused so a steady flow allocates nothing new.
    spare: Vec<Vec<u8>>,
}

impl Batcher {
    /// A batcher that fills the buffers in `spare` (cleared) before allocating new ones.
    pub fn with_spare(spare: Vec<Vec<u8>>) -> Batcher {
        let mut b = Batcher {
            spare,
            ..Batcher::default()
        };
        b.cur.json = b.take_buffer();
        b
    }

    fn take_buffer(&mut self) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v
    }

    /// Opens a new object slot and returns the buffer to write it into.
    pub fn begin(&mut self) -> &mut Vec<u8> {
        let json = &mut self.cur.json;
        json.push(if json.is_empty() { b'[' } else { b',' });
        self.obj_start = json.len();
        json
    }

    /// Drops the object slot opened by [`Batcher::begin`].
    pub fn abort(&mut self) {
        self.cur.json.truncate(self.obj_start - 1);
    }

    /// Accepts the object written since [`Batcher::begin`], moving it to a new batch when it
    /// would take the current one past a limit.
    pub fn commit(&mut self) {
        self.commit_encoded(None)
    }

    /// [`Batcher::commit`], encoding with `encoder` the batch it closes, if it closes one (see
    /// [`build_encoded`]): that batch's JSON buffer then goes on to the next batch.
    pub fn commit_encoded(&mut self, encoder: Option<&Encoder>) {
        let end = self.cur.json.len();
        let fits = self.cur.objects.len() < MAX_OBJECTS && end < MAX_BYTES;
        if fits || self.cur.objects.is_empty() {
            self.cur.objects.push((self.obj_start, end));
            return;
        }
        let obj = self.cur.json[self.obj_start..end].to_vec();
        self.cur.json.truncate(self.obj_start - 1);
        self.cur.json.push(b']');
        self.cur.json_len = self.cur.json.len();
        let mut closed = std::mem::take(&mut self.cur);
        if let Some(json) = encode_into(&mut closed, encoder) {
            self.spare.push(json);
        }
        self.done.push(closed);
        self.cur.json = self.take_buffer();
        self.cur.json.push(b'[');
        self.cur.json.extend_from_slice(&obj);
        self.cur.objects.push((1, self.cur.json.len()));
    }

    /// Closes the last batch and returns them all.
    pub fn finish(mut self) -> Vec<Batch> {
        if !self.cur.objects.is_empty() {
            self.cur.json.push(b']');
            self.cur.json_len = self.cur.json.len();
            self.done.push(self.cur);
        }
        self.done
    }
}

/// Encodes the closed batch `b` with `encoder`; when it gives an encoding, `b` keeps that
/// instead of its JSON, whose buffer (emptied) is returned for the next batch.
fn encode_into(b: &mut Batch, encoder: Option<&Encoder>) -> Option<Vec<u8>> {
    let e: Encoded = encoder?.encode(&b.json)?;
    b.encoded = Some(e);
    let mut json = std::mem::take(&mut b.json);
    json.clear();
    Some(json)
}

/// Decodes `chunk`, maps every record and cuts the objects into batches.
///
/// `spare` holds emptied JSON buffers of earlier flushes (see [`recycle`]); they are filled
/// before any new buffer is allocated.
pub fn build(
    chunk: &[u8],
    tag: &str,
    mapper: &Mapper,
    scratch: &mut Scratch,
    spare: &mut Vec<Vec<u8>>,
) -> (Vec<Batch>, BuildStats) {
    build_encoded(chunk, tag, mapper, scratch, spare, None)
}

/// [`build`], encoding each batch with `encoder` as soon as it is full (see the module doc);
/// a batch it does not encode (`compress none`, or a failure) keeps its JSON. Give the
/// bodies back with [`Encoder::recycle`] after sending.
pub fn build_encoded(
    chunk: &[u8],
    tag: &str,
    mapper: &Mapper,
    scratch: &mut Scratch,
    spare: &mut Vec<Vec<u8>>,
    encoder: Option<&Encoder>,
) -> (Vec<Batch>, BuildStats) {
    let mut stats = BuildStats::default();
    let mut batcher = Batcher::with_spare(std::mem::take(spare));
    let mut items = decode::chunk(chunk);
    while let Some(item) = items.next_with_entries(scratch.entries()) {
        match item {
            Item::Record(rec) => {
                stats.records += 1;
                let out = batcher.begin();
                match mapper.write_decoded(&rec, tag, scratch, out) {
                    Mapped::Written { truncated, partial } => {
                        stats.truncated += truncated as u64;
                        stats.partial += partial as u64;
                        batcher.commit_encoded(encoder);
                    }
                    Mapped::TooLarge { .. } => {
                        stats.too_large += 1;
                        batcher.abort();
                    }
                }
            }
            Item::GroupMarker => stats.markers += 1,
            Item::Malformed { offset, reason, .. } => {
                stats.malformed += 1;
                stats.first_malformed.get_or_insert((offset, reason));
            }
        }
    }
    let leftover = std::mem::take(&mut batcher.spare);
    *spare = leftover;
    let mut batches = batcher.finish();
    // The last batch, closed by `finish`. Its buffer (the one every encoded batch of the
    // chunk was written into) is kept for the next flush within the same budget as the
    // buffers of batches that kept their JSON (see `recycle`).
    if let Some(last) = batches.last_mut()
        && let Some(json) = encode_into(last, encoder)
    {
        keep_spare(json, spare);
    }
    (batches, stats)
}

/// Most bytes of spare buffer capacity kept between flushes, per flush thread: room for every
/// batch of a chunk of about 2 MB of msgpack (Fluent Bit's usual chunk size), so a steady flow
/// allocates and frees no payload buffer: large blocks freed by the short-lived flush threads
/// stay in their malloc arenas (see the module doc of `body`).
pub(crate) const SPARE_BYTES: usize = 4 << 20;

/// Returns the JSON buffers of sent batches to `spare` for the next flush, up to
/// [`SPARE_BYTES`] of capacity in all.
pub fn recycle(batches: Vec<Batch>, spare: &mut Vec<Vec<u8>>) {
    for b in batches {
        // An encoded batch's JSON buffer went back to the batcher when it was encoded.
        if b.json.capacity() > 0 {
            keep_spare(b.json, spare);
        }
    }
}

/// Keeps `buf` in `spare` if that stays within [`SPARE_BYTES`] of capacity; drops it
/// otherwise (a buffer grown by an unusually large batch is not held for good).
fn keep_spare(buf: Vec<u8>, spare: &mut Vec<Vec<u8>>) {
    let kept: usize = spare.iter().map(Vec::capacity).sum();
    if kept + buf.capacity() <= SPARE_BYTES {
        spare.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(b: &mut Batcher, obj: &[u8]) {
        b.begin().extend_from_slice(obj);
        b.commit();
    }

    #[test]
    fn splits_at_1000_objects() {
        let mut b = Batcher::default();
        for _ in 0..2500 {
            push(&mut b, b"{\"a\":1}");
        }
        let batches = b.finish();
        let sizes: Vec<usize> = batches.iter().map(Batch::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        for batch in &batches {
            let v: serde_json::Value = serde_json::from_slice(&batch.json).unwrap();
            assert_eq!(v.as_array().unwrap().len(), batch.len());
        }
    }

    #[test]
    fn splits_before_5_mb() {
        let big = format!("{{\"m\":\"{}\"}}", "x".repeat(900_000));
        let mut b = Batcher::default();
        for _ in 0..12 {
            push(&mut b, big.as_bytes());
        }
        let batches = b.finish();
        assert!(batches.len() >= 3);
        for batch in &batches {
            assert!(batch.json.len() <= MAX_BYTES, "{}", batch.json.len());
            let v: serde_json::Value = serde_json::from_slice(&batch.json).unwrap();
            assert_eq!(v.as_array().unwrap().len(), batch.len());
        }
        assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 12);
    }

    #[test]
    fn abort_leaves_valid_json() {
        let mut b = Batcher::default();
        push(&mut b, b"{}");
        b.begin().extend_from_slice(b"{\"half");
        b.abort();
        push(&mut b, b"{\"b\":2}");
        let batches = b.finish();
        assert_eq!(batches[0].json, b"[{},{\"b\":2}]");
        let mut b = Batcher::default();
        b.begin();
        b.abort();
        assert!(b.finish().is_empty());
    }

    #[test]
    fn recycle_keeps_buffers_up_to_the_byte_budget() {
        let batch = |cap: usize| Batch {
            json: Vec::with_capacity(cap),
            ..Batch::default()
        };
        let mut spare = vec![Vec::with_capacity(1 << 20)];
        recycle(
            vec![
                batch(1 << 20),
                batch(8 << 20),
                batch(1 << 20),
                batch(1 << 20),
            ],
            &mut spare,
        );
        // The 8 MiB buffer does not fit; the next three 1 MiB ones reach the budget.
        assert_eq!(spare.len(), 4);
        assert!(spare.iter().map(Vec::capacity).sum::<usize>() <= SPARE_BYTES);
    }

    #[test]
    fn subset_rebuilds_an_array() {
        let mut b = Batcher::default();
        for i in 0..5 {
            push(&mut b, format!("{{\"i\":{i}}}").as_bytes());
        }
        let batch = b.finish().remove(0);
        let text = &batch.json;
        assert_eq!(batch.subset_json(text, &[1, 2]), b"[{\"i\":1},{\"i\":2}]");
        assert_eq!(batch.subset_json(text, &[4, 0]), b"[{\"i\":4},{\"i\":0}]");
        assert_eq!(batch.subset_json(text, &[3]), b"[{\"i\":3}]");
    }

    #[test]
    fn parts_of_split_lines_are_shipped_and_counted() {
        use crate::config::options::Config;
        use test_support::msgpack::{Mp, enc_into, event_time};
        let cfg = Config::from_lookup(
            |k| (k == "apikey").then(|| "0123456789abcdef0123456789abcdef".into()),
            |_| None,
        )
        .unwrap();
        let s = |t: &str| Mp::Str(t.as_bytes().to_vec());
        let mut chunk = Vec::new();
        for (log, ordinal) in [
            ("a1", "1"),
            ("plain", ""),
            ("a2", "2"),
            ("b", ""),
            ("a3", "3"),
        ] {
            let mut body = vec![(s("log"), s(log))];
            if !ordinal.is_empty() {
                body.extend([
                    (s("partial_message"), s("true")),
                    (s("partial_id"), s("id")),
                    (s("partial_ordinal"), s(ordinal)),
                    (
                        s("partial_last"),
                        s(if ordinal == "3" { "true" } else { "false" }),
                    ),
                ]);
            }
            let rec = Mp::Arr(vec![event_time(1_732_400_000, 0), Mp::Map(body)]);
            enc_into(&rec, &mut chunk);
        }
        let (batches, stats) = build(
            &chunk,
            "t",
            &Mapper::new(&cfg),
            &mut Scratch::default(),
            &mut Vec::new(),
        );
        assert_eq!((stats.records, stats.partial), (5, 3));
        let objects: Vec<serde_json::Value> = serde_json::from_slice(&batches[0].json).unwrap();
        let messages: Vec<&str> = objects
            .iter()
            .map(|o| o["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages, ["a1", "plain", "a2", "b", "a3"]);
    }

    #[test]
    fn encoded_batches_keep_their_body_and_give_their_json_buffer_on() {
        use crate::config::options::Compression;
        use crate::config::options::Config;
        let cfg = Config::from_lookup(
            |k| (k == "apikey").then(|| "0123456789abcdef0123456789abcdef".into()),
            |_| None,
        )
        .unwrap();
        let mapper = Mapper::new(&cfg);
        // 2500 records: three batches (1000, 1000, 500).
        let chunk = conformance_host::varied_chunk(2500, 0);
        let plain = build(
            &chunk,
            "t",
            &mapper,
            &mut Scratch::default(),
            &mut Vec::new(),
        )
        .0;
        assert_eq!(plain.len(), 3);

        let zstd = Encoder::new(Compression::Zstd(1), 1);
        let mut spare = Vec::new();
        let (batches, stats) = build_encoded(
            &chunk,
            "t",
            &mapper,
            &mut Scratch::default(),
            &mut spare,
            Some(&zstd),
        );
        assert_eq!(stats.records, 2500);
        assert_eq!(batches.len(), 3);
        // One JSON buffer served every batch (the largest one fits in it), and it is handed
        // back for the next flush.
        assert_eq!(spare.len(), 1);
        assert!(spare[0].capacity() >= plain.iter().map(|p| p.json.len()).max().unwrap());
        for (b, p) in batches.iter().zip(&plain) {
            assert!(b.json.is_empty());
            assert_eq!(b.encoded.as_ref().unwrap().codec, Codec::Zstd);
            assert_eq!(b.objects, p.objects);
            assert_eq!(b.json_len, p.json.len());
            let text = b.json_text().unwrap();
            assert_eq!(&text[..], &p.json[..]);
            assert_eq!(
                b.subset_json(&text, &[2, 0]),
                p.subset_json(&p.json, &[2, 0])
            );
            assert_eq!(b.object_len(7), p.object(7).len());
        }
        // Their (empty) JSON buffers are not kept for the next flush: it would start with
        // a buffer of no capacity instead of the one it can reuse.
        recycle(batches, &mut spare);
        assert_eq!(spare.len(), 1);
        assert!(spare[0].capacity() > 0);

        // A buffer grown past the budget by one very large batch (1000 records of 4.6 KB) is
        // not kept for the next flush, encoded or not.
        use test_support::msgpack::{Mp, enc_into};
        let mut big = Vec::new();
        for _ in 0..1000 {
            let log = (Mp::Str(b"log".to_vec()), Mp::Str(vec![b'x'; 4600]));
            enc_into(
                &Mp::Arr(vec![Mp::Int(1_700_000_000), Mp::Map(vec![log])]),
                &mut big,
            );
        }
        let mut spare = Vec::new();
        let (batches, _) = build_encoded(
            &big,
            "t",
            &mapper,
            &mut Scratch::default(),
            &mut spare,
            Some(&zstd),
        );
        assert!(batches[0].json_len > SPARE_BYTES);
        assert_eq!(batches.len(), 1);
        recycle(batches, &mut spare);
        assert!(spare.iter().map(Vec::capacity).sum::<usize>() <= SPARE_BYTES);
        // An encoder that declines (`compress none`) keeps the JSON.
        let (kept, _) = build_encoded(
            &chunk,
            "t",
            &mapper,
            &mut Scratch::default(),
            &mut Vec::new(),
            Some(&Encoder::new(Compression::None, 1)),
        );
        assert_eq!(kept, plain);
    }
}
