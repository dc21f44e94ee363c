//! Resuming a chunk handed back for a retry: what of it was accepted is remembered, so that
//! its retry sends only what is still pending and nothing twice.
//!
//! The host re-sends the same bytes under the same tag, so a chunk is known by a hash of
//! both ([`ChunkKey`], made once per flush and hashed only when something is remembered at
//! all). The [`Memory`] of an instance holds one `done` flag per object of each chunk handed
//! back, bounded by bytes and age; with `resume_file`, on disk too (see
//! [`crate::deliver::resume_file`]), so that a restart after a kill resumes the same way.

#[cfg(test)]
use super::resume_file::Opened;
use super::resume_file::{ResumeFile, Saved};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Most bytes of `done` flags remembered at once (one byte per object): 64 MiB, 64 million
/// pending objects, far more than any filesystem backlog Fluent Bit retries at once.
pub(crate) const MEMORY_BYTES: usize = 64 << 20;
/// How long a chunk handed back for a retry is remembered: longer than Fluent Bit's longest
/// scheduled retry wait (`scheduler.cap`, 2000 s by default) many times over.
pub(crate) const MEMORY_TTL: Duration = Duration::from_secs(4 * 3600);

/// The key of one flush's chunk: its tag and bytes, hashed once, on first use.
#[derive(Debug)]
pub(crate) struct ChunkKey<'a> {
    tag: &'a str,
    data: &'a [u8],
    hash: OnceCell<u64>,
}

impl<'a> ChunkKey<'a> {
    /// The key of the chunk `data` of `tag` (nothing is hashed yet).
    pub(crate) fn new(tag: &'a str, data: &'a [u8]) -> ChunkKey<'a> {
        ChunkKey {
            tag,
            data,
            hash: OnceCell::new(),
        }
    }

    /// The chunk's tag.
    pub(crate) fn tag(&self) -> &'a str {
        self.tag
    }

    /// The hash of tag and bytes, made on the first call.
    fn hash(&self) -> u64 {
        *self.hash.get_or_init(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.tag.hash(&mut h);
            self.data.hash(&mut h);
            h.finish()
        })
    }
}

/// Delivery state of chunks handed back for a retry, keyed by their content.
///
/// Bounded by bytes of flags ([`MEMORY_BYTES`]) and age ([`MEMORY_TTL`]), not by a count of
/// chunks: a sustained 429 over a large filesystem backlog keeps every retrying chunk's entry,
/// so no retry re-sends what was accepted. Only when the flags of the chunks waiting exceed
/// the byte bound is the oldest entry forgotten (its retry then sends the whole chunk again).
#[derive(Debug)]
pub(crate) struct Memory {
    chunks: Mutex<Remembered>,
    max_bytes: usize,
    ttl: Duration,
    /// The file the entries are kept in too (`resume_file`), its lock held while writing.
    file: Option<Mutex<ResumeFile>>,
}

/// The entries and the bytes of flags they hold.
#[derive(Debug, Default)]
struct Remembered {
    map: HashMap<u64, (Instant, Vec<bool>)>,
    bytes: usize,
    /// With a file: the entries taken by a retry that is still sending, kept in the file
    /// until it ends (a kill during the retry then resumes from them).
    taken: HashMap<u64, (Instant, Vec<bool>)>,
}

impl Default for Memory {
    fn default() -> Memory {
        Memory::with_bounds(MEMORY_BYTES, MEMORY_TTL)
    }
}

impl Memory {
    /// A memory holding at most `max_bytes` of flags, each entry for at most `ttl`.
    pub(crate) fn with_bounds(max_bytes: usize, ttl: Duration) -> Memory {
        Memory {
            chunks: Mutex::default(),
            max_bytes,
            ttl,
            file: None,
        }
    }

    /// The default memory, kept in `file` too and starting with what it holds (`saved`);
    /// entries older than the age bound are left out.
    pub(crate) fn with_file(file: ResumeFile, saved: Vec<Saved>) -> Memory {
        let mut m = Memory::default();
        let (now, wall) = (Instant::now(), SystemTime::now());
        for s in saved {
            let age = wall.duration_since(s.at).unwrap_or_default();
            if let Some(at) = now.checked_sub(age).filter(|_| age < m.ttl) {
                m.put_at(s.key, s.flags, at);
            }
        }
        m.file = Some(Mutex::new(file));
        m
    }

    /// Number of chunks remembered (those a retry is sending included).
    pub(crate) fn len(&self) -> usize {
        let r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        r.map.len() + r.taken.len()
    }

    /// Writes the entries to the file, when there is one. The file's lock is taken before
    /// the entries are read, so of two writers the later one writes the newer state.
    fn save(&self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        let (now, wall) = (Instant::now(), SystemTime::now());
        let entries: Vec<Saved> = {
            let r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
            // A chunk of which nothing was accepted is sent whole after a restart either way.
            (r.map.iter().chain(&r.taken))
                .filter(|(_, (_, flags))| flags.contains(&true))
                .map(|(&key, (at, flags))| Saved {
                    key,
                    at: wall - now.saturating_duration_since(*at),
                    flags: flags.clone(),
                })
                .collect()
        };
        file.save(&entries)
            .map_err(|e| format!("{}: {e}", file.path().display()))
    }

    /// The retry of the chunk of `key` ended without handing it back: its entry leaves the
    /// file. Returns the error of writing the file.
    pub(crate) fn done(&self, key: &ChunkKey<'_>) -> Result<(), String> {
        if self.file.is_none() {
            return Ok(());
        }
        let removed = {
            let mut r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
            r.taken.remove(&key.hash()).is_some()
        };
        if removed { self.save() } else { Ok(()) }
    }

    /// True when nothing is remembered (then no chunk needs hashing).
    fn is_empty(&self) -> bool {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .is_empty()
    }

    /// True when flags are remembered for the chunk of `key` (one handed back for a retry).
    /// The chunk is not hashed while nothing at all is remembered (the common case).
    pub(crate) fn contains(&self, key: &ChunkKey<'_>) -> bool {
        if self.is_empty() {
            return false;
        }
        let hash = key.hash();
        let r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        r.map.contains_key(&hash)
    }

    /// Takes the flags remembered for the chunk of `key` if they describe `objects` objects.
    pub(crate) fn take(&self, key: &ChunkKey<'_>, objects: usize) -> Option<Vec<bool>> {
        if self.is_empty() {
            return None;
        }
        self.take_hashed(key.hash(), objects)
    }

    /// [`Memory::take`] of the chunk hashed `hash`.
    fn take_hashed(&self, hash: u64, objects: usize) -> Option<Vec<bool>> {
        let mut r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let (at, flags) = r.map.remove(&hash)?;
        r.bytes -= flags.len();
        if flags.len() != objects {
            return None;
        }
        if self.file.is_some() {
            r.taken.insert(hash, (at, flags.clone()));
        }
        Some(flags)
    }

    /// Remembers the flags of a chunk that will be retried. Returns the error of writing the
    /// file (the memory holds them all the same).
    pub(crate) fn put(&self, key: &ChunkKey<'_>, flags: Vec<bool>) -> Result<(), String> {
        self.put_at(key.hash(), flags, Instant::now());
        self.save()
    }

    /// [`Memory::put`] of the chunk hashed `key` at time `now`: forgets entries older than the age bound, then the
    /// oldest ones while the flags would exceed the byte bound.
    fn put_at(&self, key: u64, flags: Vec<bool>, now: Instant) {
        let mut r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        r.map
            .retain(|_, (t, _)| now.saturating_duration_since(*t) < ttl);
        r.taken
            .retain(|_, (t, _)| now.saturating_duration_since(*t) < ttl);
        r.map.remove(&key);
        r.taken.remove(&key);
        r.bytes = r.map.values().map(|(_, f)| f.len()).sum();
        while r.bytes + flags.len() > self.max_bytes {
            let Some(oldest) = r.map.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) else {
                break;
            };
            if let Some((_, old)) = r.map.remove(&oldest) {
                r.bytes -= old.len();
            }
        }
        r.bytes += flags.len();
        r.map.insert(key, (now, flags));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_keeps_every_retrying_chunk_within_its_byte_bound() {
        let m = Memory::default();
        let data: Vec<[u8; 8]> = (0..1001u64).map(u64::to_le_bytes).collect();
        let key = |k: usize| ChunkKey::new("t", &data[k]);
        assert!(!m.contains(&key(0)));
        // A sustained 429 over a backlog of 1000 chunks of 1000 objects: every entry kept.
        for k in 0..1000 {
            m.put(&key(k), vec![k % 2 == 0; 1000]).unwrap();
        }
        assert_eq!(m.len(), 1000);
        assert!(m.contains(&key(0)) && m.contains(&key(999)) && !m.contains(&key(1000)));
        assert_eq!(m.take(&key(0), 1000), Some(vec![true; 1000]));
        assert!(!m.contains(&key(0)));
        assert_eq!(
            m.take(&key(1), 999),
            None,
            "the flags must describe the chunk"
        );
        assert_eq!(m.take(&key(1), 1000), None, "taken once");
        assert_eq!(m.len(), 998);
    }

    #[test]
    fn memory_forgets_the_oldest_over_its_bytes_and_the_old_after_its_age() {
        let m = Memory::with_bounds(10, Duration::from_secs(100));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        m.put_at(1, vec![false; 4], at(0));
        m.put_at(2, vec![false; 4], at(1));
        m.put_at(3, vec![false; 4], at(2)); // 12 bytes > 10: the oldest (1) goes
        let taken = |k: u64, n: usize| m.take_hashed(k, n);
        assert_eq!(m.len(), 2);
        assert_eq!(taken(1, 4), None);
        m.put_at(4, vec![true; 2], at(150)); // 2 and 3 are over 100 s old
        assert_eq!(m.len(), 1);
        assert_eq!(taken(4, 2), Some(vec![true; 2]));
        // Replacing an entry does not count its old flags.
        m.put_at(5, vec![false; 8], at(151));
        m.put_at(5, vec![true; 8], at(152));
        assert_eq!(taken(5, 8), Some(vec![true; 8]));
        assert_eq!(m.chunks.lock().unwrap().bytes, 0);
    }

    #[test]
    fn a_restart_on_the_resume_file_resumes_as_the_process_would() {
        let dir = std::env::temp_dir().join(format!("resume-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("datadog.resume");
        let _ = std::fs::remove_file(&path);
        // A new process on the same file: what the last one left in it.
        let restart = || match ResumeFile::open(&path).unwrap() {
            Opened::File(file, saved, None) => Memory::with_file(file, saved),
            other => panic!("{other:?}"),
        };
        let (a, b) = (b"chunk a".as_slice(), b"chunk b".as_slice());
        let (ka, kb) = (ChunkKey::new("t", a), ChunkKey::new("t", b));
        let flags = vec![true, false, true];
        let m = restart();
        m.put(&ka, flags.clone()).unwrap();
        m.put(&kb, vec![false, true]).unwrap();
        // Nothing of `c` was accepted: a restart sends it whole either way, so it is not kept.
        m.put(&ChunkKey::new("t", b"chunk c"), vec![false; 4])
            .unwrap();
        // Killed while all three wait for their retry.
        drop(m);
        let m = restart();
        assert_eq!(m.len(), 2);
        assert_eq!(m.take(&ChunkKey::new("t", a), 3), Some(flags.clone()));
        // Killed while the retry of `a` is sending: its entry is still in the file.
        drop(m);
        let m = restart();
        assert_eq!(m.take(&ChunkKey::new("t", a), 3), Some(flags.clone()));
        m.done(&ChunkKey::new("t", a)).unwrap();
        // The retry of `a` ended: only `b` is left.
        drop(m);
        let m = restart();
        assert_eq!(m.len(), 1);
        assert_eq!(m.take(&ChunkKey::new("t", a), 3), None);
        assert_eq!(m.take(&ChunkKey::new("t", b), 2), Some(vec![false, true]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_cannot_be_written_is_an_error_and_the_memory_goes_on() {
        let dir = std::env::temp_dir().join(format!("resume-gone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("datadog.resume");
        let Ok(Opened::File(file, saved, _)) = ResumeFile::open(&path) else {
            panic!("open");
        };
        let m = Memory::with_file(file, saved);
        std::fs::remove_dir_all(&dir).unwrap();
        let key = ChunkKey::new("t", b"chunk");
        let err = m.put(&key, vec![true, false]).unwrap_err();
        assert!(err.contains("datadog.resume"), "{err}");
        assert_eq!(m.take(&key, 2), Some(vec![true, false]));
    }

    #[test]
    fn the_key_depends_on_tag_and_bytes() {
        let k = |t, d| ChunkKey::new(t, d).hash();
        assert_eq!(k("a", b"xy"), k("a", b"xy"));
        assert_ne!(k("a", b"xy"), k("b", b"xy"));
        assert_ne!(k("a", b"xy"), k("a", b"xz"));
    }
}
