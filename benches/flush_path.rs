//! `cargo bench`: figures for the flush path, printed as tables (no assertions).
//!
//! * decode + map + serialize (`batch::build`) on generated FireLens-shaped records, both
//!   repetitive (one request shape with a counter: about 710 bytes of JSON each) and varied
//!   (application and access-log lines whose ids, addresses and latencies do not repeat: about
//!   750 bytes), and on the fixtures: µs per record and MB/s of JSON;
//! * each codec at each useful level (gzip 1-9, zstd 1-12) through the plugin's pooled,
//!   reused compressor state, on each workload: µs per record, MB/s, compressed bytes per
//!   record, and bytes relative to gzip level 6 of the same JSON. A codec chosen on the
//!   repetitive workload alone misleads: it flatters zstd's long matches;
//! * the whole in-memory path (build + compression) with the default codec and with gzip 3
//!   (the previous default), and its ratio to compression alone, the physical floor;
//! * peak heap bytes during one flush relative to the chunk's size (counting allocator), each
//!   batch encoded as soon as it is full, as the plugin does (`batch::build_encoded`).
//!
//! * the library path (`library_path`: rmp-serde and serde_json, see docs/dependencies.md)
//!   beside today's, measured in the same run: `batch::build` alone and the whole path with
//!   the default codec, µs per log, and the library path's cost relative to today's.
//!
//! Timings are the median of several samples of at least 20 ms each; compare ratios taken
//! in one run. `--quick` (or `BENCH_QUICK=1`): fewer samples and levels;
//! `BENCH_LIBRARY_ONLY=1`: the first table and the library path's only.

use conformance_host as host;

mod library_path;
use library_path::{LibMapper, LibScratch};

use fluent_bit_datadog::internals::batch;
use fluent_bit_datadog::internals::compress::{Codec, Compressors, Encoder};
use fluent_bit_datadog::internals::map::{Mapper, Scratch};
use fluent_bit_datadog::internals::options::{
    Compression, Config, DEFAULT_COMPRESSION, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live and peak heap bytes.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn config() -> Config {
    Config::from_lookup(
        |k| match k {
            "apikey" => Some("0123456789abcdef0123456789abcdef".into()),
            "endpoint" => Some("http://127.0.0.1:9".into()),
            "provider" => Some("ecs".into()),
            "dd_service" => Some("checkout".into()),
            "dd_source" => Some("firelens".into()),
            "dd_tags" => Some("env:prod,team:payments".into()),
            _ => None,
        },
        |_| None,
    )
    .expect("bench config")
}

/// Median seconds per call of `f` over `runs` samples. Each sample repeats `f` for at least
/// 20 ms (a fixture is read in well under a millisecond), so that one preemption or timer
/// tick does not decide a figure; the first call, untimed, warms caches and buffers.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    let first = Instant::now();
    f();
    let once = first.elapsed().as_secs_f64().max(1e-6);
    let reps = (0.02 / once).ceil().max(1.0) as usize;
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..reps {
                f();
            }
            s.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[runs / 2]
}

struct Input {
    name: &'static str,
    chunks: Vec<Vec<u8>>,
    tag: &'static str,
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("BENCH_QUICK").is_some();
    let runs = if quick { 3 } else { 9 };
    let cfg = config();
    let mapper = Mapper::new(&cfg);
    let generated: Vec<Vec<u8>> = (0..10)
        .map(|i| host::firelens_chunk(2000, i * 2000, true))
        .collect();
    let varied: Vec<Vec<u8>> = (0..10)
        .map(|i| host::varied_chunk(2000, i * 2000))
        .collect();
    let inputs = [
        Input {
            name: "generated FireLens (20k records, 2000/chunk)",
            chunks: generated,
            tag: host::FIRELENS_TAG,
        },
        Input {
            name: "varied FireLens (20k records, 2000/chunk)",
            chunks: varied,
            tag: host::FIRELENS_TAG,
        },
        Input {
            name: "fixture fb-1.9.10-forward",
            chunks: vec![host::fixture("fb-1.9.10-forward.msgpack")],
            tag: host::FIRELENS_TAG,
        },
        Input {
            name: "fixtures fb-4.2.8-forward-1+2",
            chunks: vec![
                host::fixture("fb-4.2.8-forward-1.msgpack"),
                host::fixture("fb-4.2.8-forward-2.msgpack"),
            ],
            tag: host::FIRELENS_TAG,
        },
    ];

    if let Some(v) = std::env::var_os("BENCH_PROFILE_BUILD") {
        // For a profiler: only decode + map + serialize, for a few seconds, or for a given
        // number of passes over the 20k generated records (`BENCH_PROFILE_BUILD=3`, for
        // instruction counts under callgrind).
        // Buffers are reused as a running instance reuses them.
        let mut scratch = Scratch::default();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let passes: Option<u32> = v.to_str().and_then(|v| v.parse().ok());
        // `BENCH_PROFILE_INPUT=1` profiles the varied input, `2` or `3` a fixture.
        let input = std::env::var("BENCH_PROFILE_INPUT")
            .ok()
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| inputs.get(i))
            .unwrap_or(&inputs[0]);
        // `BENCH_PROFILE_PATH=library` profiles the library path instead.
        let library = std::env::var("BENCH_PROFILE_PATH").is_ok_and(|p| p == "library");
        let lib = LibMapper::new(&cfg);
        let mut lib_scratch = LibScratch::default();
        let start = Instant::now();
        let mut pass = 0;
        while passes.map_or(start.elapsed().as_secs() < 5, |n| pass < n) {
            pass += 1;
            for c in &input.chunks {
                let (b, _) = if library {
                    library_path::build(c, input.tag, &lib, &mut lib_scratch, &mut spare)
                } else {
                    batch::build(c, input.tag, &mapper, &mut scratch, &mut spare)
                };
                batch::recycle(std::hint::black_box(b), &mut spare);
            }
        }
        return;
    }
    println!(
        "# fluent-bit-datadog flush-path benchmark ({} runs per figure, median)",
        runs
    );
    println!();
    println!("## decode + map + serialize (batch::build)");
    println!("| input | records | msgpack MB | JSON MB | µs/record | JSON MB/s | JSON B/record |");
    println!("|---|---|---|---|---|---|---|");
    let mut scratch = Scratch::default();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut jsons: Vec<Vec<Vec<u8>>> = Vec::new();
    for input in &inputs {
        let mut records = 0u64;
        let mut json = Vec::new();
        for c in &input.chunks {
            let (batches, st) = batch::build(c, input.tag, &mapper, &mut scratch, &mut spare);
            records += st.records;
            json.extend(batches.into_iter().map(|b| b.json));
        }
        let json_bytes: usize = json.iter().map(Vec::len).sum();
        let msgpack: usize = input.chunks.iter().map(Vec::len).sum();
        let t = median(runs, || {
            for c in &input.chunks {
                let (b, _) = batch::build(c, input.tag, &mapper, &mut scratch, &mut spare);
                batch::recycle(std::hint::black_box(b), &mut spare);
            }
        });
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} |",
            input.name,
            records,
            msgpack as f64 / 1e6,
            json_bytes as f64 / 1e6,
            t * 1e6 / records as f64,
            json_bytes as f64 / 1e6 / t,
            json_bytes as f64 / records as f64
        );
        jsons.push(json);
    }

    compare_library_path(runs, &cfg, &inputs);
    if std::env::var_os("BENCH_LIBRARY_ONLY").is_some() {
        // Only the comparison (for repeating it on a noisy machine).
        return;
    }

    // Each codec alone, on each input's JSON, through pooled state as the plugin uses it.
    let levels: Vec<Compression> = if quick {
        vec![
            Compression::Gzip(1),
            Compression::Gzip(3),
            Compression::Gzip(6),
            Compression::Zstd(1),
            Compression::Zstd(3),
        ]
    } else {
        (1..=9)
            .map(Compression::Gzip)
            .chain([1, 2, 3, 4, 5, 6, 9, 12].map(Compression::Zstd))
            .collect()
    };
    let mut alone_default = Vec::new();
    for (input, json) in inputs.iter().zip(&jsons) {
        let records = records_of(input, &mapper) as f64;
        let json_bytes: usize = json.iter().map(Vec::len).sum();
        println!();
        println!(
            "## compression alone: {} ({:.2} MB of JSON, {:.0} B/record)",
            input.name,
            json_bytes as f64 / 1e6,
            json_bytes as f64 / records
        );
        println!(
            "| codec | level | µs/record | MB/s | compressed B/record | ratio | bytes vs gzip 6 |"
        );
        println!("|---|---|---|---|---|---|---|");
        let gzip6: usize = json
            .iter()
            .map(|j| compressed(Compression::Gzip(6), j).len())
            .sum();
        for &c in &levels {
            let size: usize = json.iter().map(|j| compressed(c, j).len()).sum();
            let t = time_codec(runs, c, json);
            let (codec, level) = match c {
                Compression::Gzip(l) => ("gzip", l),
                Compression::Zstd(l) => ("zstd", l),
                Compression::None => ("none", 0),
            };
            if c == DEFAULT_COMPRESSION {
                alone_default.push(t);
            }
            println!(
                "| {codec} | {level}{} | {:.3} | {:.0} | {:.1} | {:.2} | {:.2} |",
                if c == DEFAULT_COMPRESSION {
                    " (default)"
                } else {
                    ""
                },
                t * 1e6 / records,
                json_bytes as f64 / 1e6 / t,
                size as f64 / records,
                json_bytes as f64 / size as f64,
                size as f64 / gzip6 as f64
            );
        }
    }

    // Whole in-memory path with the default codec, and with gzip 3 (the default before zstd).
    for whole_codec in [DEFAULT_COMPRESSION, Compression::Gzip(DEFAULT_GZIP_LEVEL)] {
        println!();
        println!(
            "## whole path: decode + map + serialize + compress ({whole_codec:?}{})",
            if whole_codec == DEFAULT_COMPRESSION {
                ", the default"
            } else {
                ""
            }
        );
        println!("| input | µs/record | compression alone µs/record | whole / compression alone |");
        println!("|---|---|---|---|");
        // The plugin's encoder: pooled compressors and output buffers.
        let encoder = Encoder::new(whole_codec, 8);
        for (input, json) in inputs.iter().zip(&jsons) {
            let recs = records_of(input, &mapper);
            let whole = median(runs, || {
                for c in &input.chunks {
                    // As the plugin does: each batch encoded as soon as it is full.
                    let (mut batches, _) = batch::build_encoded(
                        c,
                        input.tag,
                        &mapper,
                        &mut scratch,
                        &mut spare,
                        Some(&encoder),
                    );
                    for b in &mut batches {
                        if let Some(e) = b.encoded.take() {
                            encoder.recycle(std::hint::black_box(e));
                        }
                    }
                    batch::recycle(batches, &mut spare);
                }
            });
            let alone = time_codec(runs, whole_codec, json);
            println!(
                "| {} | {:.3} | {:.3} | {:.2} |",
                input.name,
                whole * 1e6 / recs as f64,
                alone * 1e6 / recs as f64,
                whole / alone
            );
        }
    }

    // Peak heap of one flush of a 2000-record chunk, each batch encoded as soon as it is full
    // (as the plugin does), the encoded bodies kept until the end of the flush.
    let encoder = Encoder::new(DEFAULT_COMPRESSION, 1);
    println!();
    println!("## peak heap during one flush (build + {DEFAULT_COMPRESSION:?} of every request)");
    println!("| input | chunk bytes | peak heap bytes | peak / chunk |");
    println!("|---|---|---|---|");
    for input in &inputs {
        let chunk = &input.chunks[0];
        let mut scratch = Scratch::default();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        // Warm the scratch buffers as a running instance would.
        let (warm, _) = batch::build(chunk, input.tag, &mapper, &mut scratch, &mut spare);
        batch::recycle(warm, &mut spare);
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        {
            let (batches, _) = batch::build_encoded(
                chunk,
                input.tag,
                &mapper,
                &mut scratch,
                &mut spare,
                Some(&encoder),
            );
            std::hint::black_box(batches);
        }
        let peak = PEAK.load(Ordering::Relaxed) - base;
        println!(
            "| {} | {} | {} | {:.2} |",
            input.name,
            chunk.len(),
            peak,
            peak as f64 / chunk.len() as f64
        );
    }
}

/// Today's path and the library path (benches/library_path), in the same run, each figure
/// taken right after the other's: `batch::build` alone, and the whole path with the default
/// codec (each batch encoded as soon as it is full), µs per log, and library / today.
fn compare_library_path(runs: usize, cfg: &Config, inputs: &[Input]) {
    let mapper = Mapper::new(cfg);
    let lib = LibMapper::new(cfg);
    let (mut scratch, mut lib_scratch) = (Scratch::default(), LibScratch::default());
    let mut spare: Vec<Vec<u8>> = Vec::new();
    // One encoder for both paths: pooled compressors and output buffers, as the plugin's.
    let encoder = Encoder::new(DEFAULT_COMPRESSION, 8);
    println!();
    println!(
        "## library path (rmp-serde + serde_json) beside today's, µs/log ({DEFAULT_COMPRESSION:?} for the whole path)"
    );
    println!(
        "| input | build today | build library | library / today | whole today | whole library | library / today |"
    );
    println!("|---|---|---|---|---|---|---|");
    for input in inputs {
        let recs = records_of(input, &mapper) as f64;
        let mut build_today = || {
            for c in &input.chunks {
                let (b, _) = batch::build(c, input.tag, &mapper, &mut scratch, &mut spare);
                batch::recycle(std::hint::black_box(b), &mut spare);
            }
        };
        let t_build = median(runs, &mut build_today);
        let mut spare_lib: Vec<Vec<u8>> = Vec::new();
        let l_build = median(runs, || {
            for c in &input.chunks {
                let (b, _) =
                    library_path::build(c, input.tag, &lib, &mut lib_scratch, &mut spare_lib);
                batch::recycle(std::hint::black_box(b), &mut spare_lib);
            }
        });
        let t_whole = median(runs, || {
            for c in &input.chunks {
                let (mut batches, _) = batch::build_encoded(
                    c,
                    input.tag,
                    &mapper,
                    &mut scratch,
                    &mut spare,
                    Some(&encoder),
                );
                for b in &mut batches {
                    if let Some(e) = b.encoded.take() {
                        encoder.recycle(std::hint::black_box(e));
                    }
                }
                batch::recycle(batches, &mut spare);
            }
        });
        let l_whole = median(runs, || {
            for c in &input.chunks {
                let (mut batches, _) = library_path::build_encoded(
                    c,
                    input.tag,
                    &lib,
                    &mut lib_scratch,
                    &mut spare_lib,
                    Some(&encoder),
                );
                for b in &mut batches {
                    if let Some(e) = b.encoded.take() {
                        encoder.recycle(std::hint::black_box(e));
                    }
                }
                batch::recycle(batches, &mut spare_lib);
            }
        });
        let us = |t: f64| t * 1e6 / recs;
        println!(
            "| {} | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} | {:.2} |",
            input.name,
            us(t_build),
            us(l_build),
            l_build / t_build,
            us(t_whole),
            us(l_whole),
            l_whole / t_whole
        );
    }
}

/// Records in `input`.
fn records_of(input: &Input, mapper: &Mapper) -> u64 {
    let mut scratch = Scratch::default();
    let mut spare = Vec::new();
    input
        .chunks
        .iter()
        .map(|c| {
            batch::build(c, input.tag, mapper, &mut scratch, &mut spare)
                .1
                .records
        })
        .sum()
}

fn codec_of(c: Compression) -> Codec {
    match c {
        Compression::Zstd(_) => Codec::Zstd,
        _ => Codec::Gzip,
    }
}

/// The plugin's pool of compressor state for `c`.
fn pool_for(c: Compression) -> Compressors {
    match c {
        Compression::Gzip(l) => Compressors::new(l, DEFAULT_ZSTD_LEVEL),
        Compression::Zstd(l) => Compressors::new(DEFAULT_GZIP_LEVEL, l),
        Compression::None => Compressors::new(DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL),
    }
}

/// `json` compressed with `c` (fresh state).
fn compressed(c: Compression, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pool_for(c).compress(codec_of(c), json, &mut out);
    out
}

/// Median seconds to compress every request of `json` with `c`, reusing pooled state as the
/// plugin does.
fn time_codec(runs: usize, c: Compression, json: &[Vec<u8>]) -> f64 {
    let pool = pool_for(c);
    let codec = codec_of(c);
    let mut out = Vec::new();
    median(runs, || {
        for j in json {
            pool.compress(codec, j, &mut out);
            std::hint::black_box(&out);
        }
    })
}
