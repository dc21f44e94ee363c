//! The library path: the record path built on rmp-serde and serde_json, the reference the
//! hand-written reader (`src/encode/decode.rs`) and writer (`src/encode/json.rs`,
//! `src/encode/map/value.rs`) are measured against (see docs/dependencies.md). It gives the
//! same Datadog objects, byte for byte, as `batch::build` (tests/library_path.rs checks it).
//!
//! What is the crates' and what is not:
//! - **Read with rmp-serde**, borrowing from the chunk (`&str`/`&[u8]`, no copies): each
//!   record's timestamp (EventTime through rmp-serde's ext newtype, integer or float) and
//!   metadata (the OpenTelemetry fields; everything else skipped with
//!   [`serde::de::IgnoredAny`]), the body's names and text values (one deserializer per body),
//!   every value written (transcoded, see below), and `ddtags` lists.
//! - **Written with serde_json**: strings through its `Serializer` (its escaping), numbers
//!   and punctuation through its `Formatter` (`CompactFormatter`). Nested values go from the
//!   rmp-serde deserializer straight into the output by a visitor (`write::Json`), with no
//!   `serde_json::Value` between. serde_transcode does not fit: the object's rules (no
//!   duplicate keys at any depth, non-string keys as strings, EventTime as milliseconds,
//!   other ext values as text, NaN as null, nesting cut at 32 levels) are decided per value
//!   as it is visited, which a plain transcoder cannot do.
//! - **Framed with rmp**, the crates' lower layer: where a record, its metadata, its body
//!   and each of the body's pairs start and end. rmp-serde cannot express that: its
//!   borrowing deserializer does not tell its position (`position()` exists only for the
//!   copying `Cursor` reader), and resynchronisation and the work budget for damaged chunks
//!   need byte offsets. rmp's one way to find a value's end, `decode::MessageLen` (0.8.15),
//!   recurses per level of nesting and cannot charge a work budget, so `frame::skip` walks
//!   values with rmp's marker and length readers, iteratively (no nesting depth can exhaust the stack) and
//!   charging each value read to the chunk's budget, with the product's rule (8 values per
//!   byte, given back on success, refilled as the decoder moves on).
//! - **Not swapped**, taken from the product through `internals`: the batching (`Batcher`,
//!   1000 objects / 5 MB), the `Timestamp` type (its rounding to milliseconds), the
//!   configuration (`Config`), and the 1 MB limit: an object over `MAX_LOG_BYTES` (rare) is
//!   handed to the product's `Mapper`, whose truncation cuts it (and which reads that record
//!   with the hand-written reader); and the ECS tags (`push_ecs_tags`, `push_tag`), string
//!   work on the attributes' values once read, which neither reader nor writer touches.
//! - **Written again here** (the mapping rules, which no crate has): the plugin's own
//!   attributes, the OpenTelemetry fields, `ddtags` (own tags; ECS tags and `dd_tags` through
//!   the product's functions), the
//!   `dd_message_key` rename and duplicate-key rules. No plan/template: every record is
//!   mapped the general way (the product writes a record shaped like the one before from a
//!   plan; that is a mapping optimisation, not the reader's or the writer's); the tags of
//!   the last record are kept, as the product keeps them.
//!
//! Where it is not byte for byte the product's: a value nested as deep as rmp-serde's
//! depth limit (1024 levels; 1023 pass) cannot be read or skipped by it; the object keeps what came
//! before and closes its arrays and maps there (the product skips the whole value; the two
//! agree when nothing follows the deep part, as in tests/library_path.rs), and a metadata
//! map with an array or map as a key (the product then misreads the map's later keys).

//!
//! The modules, by job: `frame` (rmp), `read` (rmp-serde), `record` (a chunk's items),
//! `write` (serde_json), `map` (the mapping rules); the flush path is here.
//!
//! The same file is compiled into the plugin with the cargo feature `library-path`, for
//! measuring it end to end in Fluent Bit (see Cargo.toml and [`build_in_plugin`]); the
//! default build does not contain it.

#![allow(dead_code)]

mod frame;
mod map;
mod read;
mod record;
mod write;

pub use map::{LibMapper, LibScratch};
// Used by tests/library_path.rs, not by the bench nor the plugin.
#[allow(unused_imports)]
pub use record::{LibChunk, LibItem, LibRecord, chunk};

use fluent_bit_datadog::internals::batch::{Batch, Batcher, BuildStats};
use fluent_bit_datadog::internals::compress::Encoder;
use fluent_bit_datadog::internals::decode::{Record, Timestamp};
use fluent_bit_datadog::internals::map::{
    MAX_DEPTH, MAX_LOG_BYTES, Mapped, Mapper, NESTING_MARKER, Scratch, push_ecs_tags, push_tag,
};
use fluent_bit_datadog::internals::options::Config;
use std::sync::Mutex;

/// `batch::build` on the library path.
pub fn build(
    chunk: &[u8],
    tag: &str,
    mapper: &LibMapper,
    scratch: &mut LibScratch,
    spare: &mut Vec<Vec<u8>>,
) -> (Vec<Batch>, BuildStats) {
    build_encoded(chunk, tag, mapper, scratch, spare, None)
}

/// `batch::build_encoded` on the library path: each batch encoded as soon as it is full.
pub fn build_encoded(
    data: &[u8],
    tag: &str,
    mapper: &LibMapper,
    scratch: &mut LibScratch,
    spare: &mut Vec<Vec<u8>>,
    encoder: Option<&Encoder>,
) -> (Vec<Batch>, BuildStats) {
    let mut stats = BuildStats::default();
    let mut batcher = Batcher::with_spare(std::mem::take(spare));
    let mut items = chunk(data);
    let mut entries = std::mem::take(&mut scratch.entries);
    while let Some((item, otlp)) = items.advance(Some(&mut entries)) {
        match item {
            LibItem::Record(rec) => {
                stats.records += 1;
                std::mem::swap(&mut scratch.entries, &mut entries);
                let out = batcher.begin();
                let mapped = mapper.write(&rec, &otlp, tag, scratch, out);
                std::mem::swap(&mut scratch.entries, &mut entries);
                match mapped {
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
            LibItem::GroupMarker => stats.markers += 1,
            LibItem::Malformed { offset, reason, .. } => {
                stats.malformed += 1;
                stats.first_malformed.get_or_insert((offset, reason));
            }
        }
    }
    scratch.entries = entries;
    let mut batches = batcher.finish();
    // As `batch::build_encoded`: the last batch is encoded once closed.
    if let Some(last) = batches.last_mut()
        && last.encoded.is_none()
        && let Some(e) = encoder.and_then(|enc| enc.encode(&last.json))
    {
        last.encoded = Some(e);
        let mut json = std::mem::take(&mut last.json);
        json.clear();
        spare.push(json);
    }
    (batches, stats)
}

/// The plugin's chunk -> batches step on the library path (cargo feature `library-path`,
/// for measurement only), in place of `batch::build_encoded`: a `LibMapper` made for `cfg`
/// at each flush (a few small allocations per chunk; `product`, the instance's mapper, cuts
/// objects over 1 MB), and scratch space kept across flushes, as the product keeps its.
pub fn build_in_plugin(
    cfg: &Config,
    product: &Mapper,
    data: &[u8],
    tag: &str,
    spare: &mut Vec<Vec<u8>>,
    encoder: Option<&Encoder>,
) -> (Vec<Batch>, BuildStats) {
    static SCRATCH: Mutex<Vec<LibScratch>> = Mutex::new(Vec::new());
    let take = || SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut scratch = take().unwrap_or_default();
    let mapper = LibMapper::with_product(cfg, product.clone());
    let built = build_encoded(data, tag, &mapper, &mut scratch, spare, encoder);
    SCRATCH
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(scratch);
    built
}
