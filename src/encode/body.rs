//! Request bodies: the instance's [`Encoder`] (the configured codec, the zstd -> gzip
//! fallback, pooled compressors and output buffers) and the [`Body`] of one request.
//!
//! gzip is zlib-rs through flate2, zstd is libzstd through the `zstd` crate. Each codec's
//! state (a deflate stream of about 380 KB; a zstd context of about 1 MB at level 1, more at
//! higher levels) is made on demand up to one per core and then kept: a flush holds one only
//! while it encodes a batch (see `batch::build`), a request only while it re-encodes one (the
//! gzip fallback, a part of a refused payload), never while it waits for the intake.
//! [`decode`] gives a batch's JSON back from its body.
//!
//! Keeping them is what holds resident memory flat. State made and dropped per request leaves
//! its blocks in the malloc arena of the short-lived sender thread that made it, and glibc
//! does not trim an arena below twice the largest block it has unmapped (a few MB once the
//! host has freed a chunk), so with `Workers 2` a dozen arenas each kept about 1 MB.
//!
//! The fallback: with `compress zstd`, a 415 for a zstd body, or a 400 for one whose same logs
//! gzipped are accepted, switches the instance to gzip for good ([`Encoder::answered`],
//! [`Encoder::checked`]); the sender then posts the logs again gzipped, so a refusal of the
//! encoding never reaches the 400 bisection.

use crate::config::options::{Compression, DEFAULT_GZIP_LEVEL};
use flate2::{Compress, Crc, FlushCompress, Status};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};

/// Largest zstd window (log2 bytes). A request holds at most 5 MB of JSON; a 1 MiB window
/// bounds a context's memory at every level while costing almost nothing in ratio on log
/// lines, whose repeats are close together.
const ZSTD_WINDOW_LOG: u32 = 20;

/// Which encoding one request body gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: zstd`.
    Zstd,
}

impl Codec {
    /// The `Content-Encoding` header value.
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }
}

/// A request body already encoded, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Its encoding.
    pub codec: Codec,
    /// The encoded bytes.
    pub bytes: Vec<u8>,
}

/// The bytes of one request and their encoding (`None`: plain JSON).
#[derive(Debug)]
pub struct Body<'a> {
    /// Its `Content-Encoding`, if any.
    pub codec: Option<Codec>,
    /// What goes on the wire.
    pub bytes: Cow<'a, [u8]>,
}

/// How many zstd bodies refused with 400 are sent again gzipped, while no zstd body has been
/// accepted yet, before a 400 is taken to be about the logs alone. Three: a poisoned log in
/// the first batches still lets a later, clean part of the bisection show whether the intake
/// takes zstd, and an intake that refuses everything costs at most three extra requests.
pub(crate) const GZIP_CHECKS: u32 = 3;

/// Most idle output buffers kept for the next requests (never more than `max_concurrency`).
pub(crate) const SPARE_OUTPUTS: usize = 8;
/// An output buffer larger than this is not kept for the next request.
const KEEP_OUTPUT: usize = 512 * 1024;

/// What the answer to a zstd body means for the encoding (see [`Encoder::answered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The answer stands.
    Stands,
    /// The intake refused zstd (415): the instance now gzips, and the same logs are sent
    /// again gzipped. `first` on the answer that switched it.
    Switched {
        /// True for the answer that made the switch (the one worth a line).
        first: bool,
    },
    /// A 400 before any zstd body was accepted: the same logs are sent again gzipped to tell
    /// the encoding from the logs; that answer goes to [`Encoder::checked`].
    Check,
}

/// The encoding of an instance's request bodies, and what the intake's answers taught it.
pub struct Encoder {
    compression: Compression,
    compressors: Compressors,
    /// Set once the intake refused zstd: every later body is gzipped.
    zstd_refused: AtomicBool,
    /// Set once the intake accepted a zstd body: a later 400 for one is about its logs, not
    /// its encoding, and goes straight to the bisection.
    zstd_accepted: AtomicBool,
    /// zstd bodies refused with 400 whose gzipped copy was refused too. After
    /// [`GZIP_CHECKS`] of them a 400 goes straight to the bisection: an intake that refuses
    /// everything must not double every request.
    both_refused: AtomicU32,
    spare_outputs: Mutex<Vec<Vec<u8>>>,
    max_spare_outputs: usize,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// The encoder of `compression`, keeping up to `max_concurrency` idle output buffers
    /// (at most [`SPARE_OUTPUTS`]).
    pub fn new(compression: Compression, max_concurrency: usize) -> Encoder {
        let compressors = match compression {
            Compression::Gzip(level) => Compressors::new(level, 1),
            Compression::Zstd(level) => Compressors::new(DEFAULT_GZIP_LEVEL, level),
            Compression::None => Compressors::new(DEFAULT_GZIP_LEVEL, 1),
        };
        Encoder {
            compression,
            compressors,
            zstd_refused: AtomicBool::new(false),
            zstd_accepted: AtomicBool::new(false),
            both_refused: AtomicU32::new(0),
            spare_outputs: Mutex::new(Vec::new()),
            max_spare_outputs: max_concurrency.clamp(1, SPARE_OUTPUTS),
        }
    }

    /// The encoding of the next request: the configured one, but gzip once zstd was refused.
    pub fn codec(&self) -> Option<Codec> {
        match self.compression {
            Compression::None => None,
            Compression::Gzip(_) => Some(Codec::Gzip),
            Compression::Zstd(_) if self.zstd_refused.load(Ordering::Relaxed) => Some(Codec::Gzip),
            Compression::Zstd(_) => Some(Codec::Zstd),
        }
    }

    /// Encodes a batch's JSON array as the next request would be (`None` with `compress
    /// none`, or if it cannot be), into a pooled buffer: give it back with
    /// [`Encoder::recycle`].
    pub fn encode(&self, json: &[u8]) -> Option<Encoded> {
        let codec = self.codec()?;
        let mut out = self.take_output();
        if self.compressors.compress(codec, json, &mut out) {
            return Some(Encoded { codec, bytes: out });
        }
        self.put_output(out);
        None
    }

    /// Takes back the buffer of a body made by [`Encoder::encode`], for the next ones.
    pub fn recycle(&self, encoded: Encoded) {
        self.put_output(encoded.bytes);
    }

    /// The body of `json` in `codec` (plain JSON for `None`, borrowed). A zstd context that
    /// cannot be made (out of memory) gives a gzip body; `None` when no body can be made, so
    /// that nothing is ever sent empty under a `Content-Encoding`. Give it back with
    /// [`Encoder::release`].
    pub fn body<'a>(&self, json: &'a [u8], codec: Option<Codec>) -> Option<Body<'a>> {
        let Some(mut codec) = codec else {
            return Some(Body {
                codec: None,
                bytes: Cow::Borrowed(json),
            });
        };
        let mut out = self.take_output();
        let mut done = self.compressors.compress(codec, json, &mut out);
        if !done && codec == Codec::Zstd {
            codec = Codec::Gzip;
            done = self.compressors.compress(codec, json, &mut out);
        }
        if !done {
            self.put_output(out);
            return None;
        }
        Some(Body {
            codec: Some(codec),
            bytes: Cow::Owned(out),
        })
    }

    /// Takes back the buffer of a body, if it owns one.
    pub fn release(&self, body: Body<'_>) {
        if let Cow::Owned(out) = body.bytes {
            self.put_output(out);
        }
    }

    /// Learns from the answer (`status`, `None` for no answer) to a body in `codec`, and says
    /// whether the same logs go again gzipped (see [`Fallback`]).
    pub fn answered(&self, codec: Option<Codec>, status: Option<u16>) -> Fallback {
        if codec != Some(Codec::Zstd) {
            return Fallback::Stands;
        }
        match status {
            Some(200..=299) => {
                self.zstd_accepted.store(true, Ordering::Relaxed);
                Fallback::Stands
            }
            Some(415) => Fallback::Switched {
                first: !self.zstd_refused.swap(true, Ordering::Relaxed),
            },
            Some(400)
                if !self.zstd_accepted.load(Ordering::Relaxed)
                    && self.both_refused.load(Ordering::Relaxed) < GZIP_CHECKS =>
            {
                Fallback::Check
            }
            _ => Fallback::Stands,
        }
    }

    /// Learns from the answer to the gzipped copy sent after [`Fallback::Check`]: accepted
    /// means the intake refuses zstd (the instance switches; true on the switch itself),
    /// refused with 400 too means the logs were refused.
    pub fn checked(&self, status: Option<u16>) -> bool {
        match status {
            Some(200..=299) => !self.zstd_refused.swap(true, Ordering::Relaxed),
            Some(400) => {
                self.both_refused.fetch_add(1, Ordering::Relaxed);
                false
            }
            _ => false,
        }
    }

    fn take_output(&self) -> Vec<u8> {
        let spare = self
            .spare_outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        spare.unwrap_or_default()
    }

    fn put_output(&self, out: Vec<u8>) {
        if out.capacity() > KEEP_OUTPUT {
            return;
        }
        let mut spare = self.spare_outputs.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < self.max_spare_outputs {
            spare.push(out);
        }
    }
}

/// Decodes `bytes`, encoded with `codec`, back into the `len` bytes they were made from;
/// `None` when they do not decode to exactly that many.
pub fn decode(codec: Codec, bytes: &[u8], len: usize) -> Option<Vec<u8>> {
    let out = match codec {
        Codec::Zstd => zstd::bulk::decompress(bytes, len).ok()?,
        Codec::Gzip => {
            use std::io::Read;
            let mut out = Vec::with_capacity(len);
            flate2::read::GzDecoder::new(bytes)
                .take(len as u64 + 1)
                .read_to_end(&mut out)
                .ok()?;
            out
        }
    };
    (out.len() == len).then_some(out)
}

/// Idle compressor states and how many exist.
struct PoolState<T> {
    idle: Vec<T>,
    made: usize,
}

/// A pool of at most `max` compressor states of one kind.
struct Pool<T> {
    state: Mutex<PoolState<T>>,
    returned: Condvar,
    max: usize,
}

impl<T> Pool<T> {
    fn new(max: usize) -> Pool<T> {
        Pool {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                made: 0,
            }),
            returned: Condvar::new(),
            max: max.max(1),
        }
    }

    /// Runs `f` with an idle state, one made by `make` while fewer than `max` exist, or the
    /// first one returned. `None` when `make` fails (nothing is counted then).
    fn with<R>(&self, make: impl FnOnce() -> Option<T>, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let item = loop {
            if let Some(item) = s.idle.pop() {
                break item;
            }
            if s.made < self.max {
                // Counted once made, so a failure to make one cannot use up a slot.
                drop(s);
                let item = make()?;
                s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.made += 1;
                break item;
            }
            s = self.returned.wait(s).unwrap_or_else(|e| e.into_inner());
        };
        drop(s);
        let mut lease = Lease {
            pool: self,
            item: Some(item),
        };
        lease.item.as_mut().map(f)
    }
}

/// A state lent to one request; returned to the pool when dropped (also on a panic).
struct Lease<'a, T> {
    pool: &'a Pool<T>,
    item: Option<T>,
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            let mut s = self.pool.state.lock().unwrap_or_else(|e| e.into_inner());
            s.idle.push(item);
        }
        self.pool.returned.notify_one();
    }
}

/// The instance's compressors: gzip at one level and zstd at one level, pooled.
pub struct Compressors {
    gzip_level: u32,
    zstd_level: i32,
    deflaters: Pool<Compress>,
    zstd: Pool<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for Compressors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressors")
            .field("gzip_level", &self.gzip_level)
            .field("zstd_level", &self.zstd_level)
            .finish_non_exhaustive()
    }
}

impl Compressors {
    /// Pools of up to one state per core for gzip at `gzip_level` (1-9) and zstd at
    /// `zstd_level` (1-19); nothing is made before the first request.
    pub fn new(gzip_level: u32, zstd_level: u32) -> Compressors {
        let max = std::thread::available_parallelism().map_or(2, |n| n.get());
        Compressors {
            gzip_level,
            zstd_level: i32::try_from(zstd_level).unwrap_or(1),
            deflaters: Pool::new(max),
            zstd: Pool::new(max),
        }
    }

    /// Compresses `json` into `out` (cleared). Returns false when it could not (a zstd
    /// context that cannot be made, a corrupt stream): `out` is then empty, and the caller
    /// sends nothing in that encoding.
    pub fn compress(&self, codec: Codec, json: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let done = match codec {
            Codec::Gzip => {
                let level = self.gzip_level;
                self.deflaters.with(
                    || Some(Compress::new(flate2::Compression::new(level), false)),
                    |z| gzip_into(z, level, json, out),
                )
            }
            Codec::Zstd => {
                let level = self.zstd_level;
                self.zstd
                    .with(|| zstd_compressor(level), |z| zstd_into(z, json, out))
            }
        };
        let ok = done.unwrap_or(false);
        if !ok {
            out.clear();
        }
        ok
    }
}

/// A zstd context at `level` with the window capped at [`ZSTD_WINDOW_LOG`].
fn zstd_compressor(level: i32) -> Option<zstd::bulk::Compressor<'static>> {
    let mut z = zstd::bulk::Compressor::new(level).ok()?;
    let log = ZSTD_WINDOW_LOG;
    z.set_parameter(zstd::stream::raw::CParameter::WindowLog(log))
        .ok()?;
    Some(z)
}

/// Compresses `json` into `out` as one zstd frame (with the content size) using `z`.
///
/// `out` gets room for a quarter of `json` first, which log JSON fits with plenty to spare
/// (9:1 for varied lines, 40:1 and more for a container's repetitive ones); only a batch that
/// does not fit is compressed again, into room for the worst case. Reserving the worst case
/// (more than `json` itself) for every body made each output buffer too large for the sender
/// to keep for the next request, so each request allocated and freed one of about 750 KB.
fn zstd_into(z: &mut zstd::bulk::Compressor<'static>, json: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(json.len() / 4 + 1024);
    if z.compress_to_buffer(json, out).is_ok() {
        return true;
    }
    // Too little room (`compress_to_buffer` starts the frame again from the beginning).
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(json.len()));
    z.compress_to_buffer(json, out).is_ok()
}

/// Compresses `json` with zstd at `level` (1-19) with a fresh context, as the plugin does.
/// For benchmarks and tests; the plugin reuses pooled contexts.
pub fn zstd(json: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut z) = zstd_compressor(i32::try_from(level).unwrap_or(1)) {
        zstd_into(&mut z, json, &mut out);
    }
    out
}

/// Gzips `json` at `level` (1-9) with a fresh stream. For benchmarks and tests; the plugin
/// reuses pooled streams.
pub fn gzip(json: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut z = Compress::new(flate2::Compression::new(level), false);
    gzip_into(&mut z, level, json, &mut out);
    out
}

/// Gzips `json` into `out` (cleared) with `z`, a raw deflate stream made at `level`, which is
/// reset first: the gzip header, the deflate stream, then CRC-32 and length. False (and `out`
/// empty) only for a corrupt stream state.
fn gzip_into(z: &mut Compress, level: u32, json: &[u8], out: &mut Vec<u8>) -> bool {
    z.reset();
    out.clear();
    out.reserve(json.len() / 4 + 64);
    // No name, no time; XFL as flate2's GzEncoder sets it; OS unknown.
    let xfl = match level {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    };
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
    let mut input = json;
    loop {
        let before = z.total_in();
        let status = z.compress_vec(input, out, FlushCompress::Finish);
        input = &input[(z.total_in() - before) as usize..];
        match status {
            Ok(Status::StreamEnd) => break,
            Ok(_) => out.reserve(out.capacity() / 2 + 4096),
            // Only a corrupt stream state fails; send nothing rather than half a stream.
            Err(_) => {
                out.clear();
                return false;
            }
        }
    }
    let mut crc = Crc::new();
    crc.update(json);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    #[test]
    fn gzip_round_trips() {
        let json = br#"[{"message":"hello"}]"#.repeat(100);
        let z = gzip(&json, 3);
        assert!(z.len() < json.len());
        assert_eq!(gunzip(&z), json);
    }

    #[test]
    fn zstd_round_trips() {
        let json = br#"[{"message":"hello"}]"#.repeat(100);
        let z = zstd(&json, 1);
        assert!(z.len() < json.len());
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), json);
    }

    #[test]
    fn decode_gives_back_what_was_encoded() {
        let c = Compressors::new(3, 1);
        let mut out = Vec::new();
        for n in [0, 1, 5000] {
            let json = br#"[{"message":"hello"}]"#.repeat(n);
            for codec in [Codec::Gzip, Codec::Zstd] {
                assert!(c.compress(codec, &json, &mut out));
                assert_eq!(decode(codec, &out, json.len()).as_deref(), Some(&json[..]));
                // Another length than the one recorded, or damaged bytes: no answer.
                assert_eq!(decode(codec, &out, json.len() + 1), None);
                assert_eq!(decode(codec, &out[..out.len() / 2], json.len()), None);
            }
        }
    }

    #[test]
    fn zstd_of_incompressible_json_round_trips() {
        // Bytes that do not compress 4:1 (or at all) take the second, worst-case attempt.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b' ' + (x % 94) as u8
            })
            .collect();
        let c = Compressors::new(6, 1);
        let mut out = Vec::new();
        for json in [&noise[..], &noise[..1000], b"[]"] {
            assert!(c.compress(Codec::Zstd, json, &mut out));
            assert_eq!(zstd::decode_all(&out[..]).unwrap(), json);
        }
        assert!(c.compress(Codec::Zstd, &noise, &mut out));
        assert!(
            out.len() > noise.len() / 4,
            "the first attempt cannot have fit"
        );
    }

    #[test]
    fn pooled_compressors_round_trip_and_are_reused() {
        let c = Compressors::new(6, 3);
        let mut out = Vec::new();
        for n in [1, 5000, 0, 300] {
            let json = br#"[{"message":"hello"}]"#.repeat(n);
            assert!(c.compress(Codec::Gzip, &json, &mut out));
            assert_eq!(gunzip(&out), json);
            assert!(c.compress(Codec::Zstd, &json, &mut out));
            assert_eq!(zstd::decode_all(&out[..]).unwrap(), json);
        }
        // One thread: one state of each kind was made, and it is idle again.
        for (made, idle) in [
            {
                let s = c.deflaters.state.lock().unwrap();
                (s.made, s.idle.len())
            },
            {
                let s = c.zstd.state.lock().unwrap();
                (s.made, s.idle.len())
            },
        ] {
            assert_eq!((made, idle), (1, 1));
        }
    }
}
