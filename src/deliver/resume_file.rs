//! The resume memory on disk (option `resume_file`): what the intake accepted of each chunk
//! handed back for a retry, kept in a file of the instance's own, so that a Fluent Bit killed
//! while chunks wait for their retry, and restarted on the same filesystem storage, sends
//! only what is still pending instead of the whole chunks again.
//!
//! The file is rewritten whole (a temporary file renamed over it) each time an entry is
//! remembered or a chunk it holds is done, so a kill leaves either the old contents or the
//! new, never a torn file. It is written, not synced: it survives the process's death
//! (SIGKILL, OOM), not a power loss. It is advisory: when it cannot be read or written, the
//! chunks are sent whole again, which duplicates logs but loses none.
//!
//! One file serves one `[OUTPUT]`: a second instance of the process that names a file in use
//! runs without one (see [`Opened::InUse`]), so that two outputs never skip each other's
//! logs. (Processes are not locked against each other.)
//!
//! Layout (little-endian): [`MAGIC`]; the number of entries (u32); per entry the chunk's key
//! (u64, see `resume::ChunkKey`), when it was remembered (u64, seconds since the Unix epoch), its
//! object count (u32) and one bit per object, set when accepted; then a checksum (u64) of
//! all that precedes it. A file whose magic or checksum does not match is ignored whole.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first bytes of a resume file, with its layout's version.
pub(crate) const MAGIC: &[u8] = b"fluent-bit-datadog resume 1\n";

/// Most bytes read from a resume file: the memory's bound of flags (`resume::MEMORY_BYTES`,
/// 64 MiB) as bits, and room for the entries' headers.
const MAX_FILE: u64 = 9 << 20;

/// The resume files open in this process (a hot reload's new instance opens its file after
/// the old one let it go).
static OPEN: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// What opening a resume file gave.
#[derive(Debug)]
pub(crate) enum Opened {
    /// The file, what it holds (nothing when it did not exist yet), and why what it held
    /// was set aside, if it was (damaged, or of another layout).
    File(ResumeFile, Vec<Saved>, Option<String>),
    /// Another instance of this process has it open.
    InUse,
}

/// One remembered chunk, as saved and loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Saved {
    /// The chunk's key.
    pub(crate) key: u64,
    /// When it was remembered.
    pub(crate) at: SystemTime,
    /// One flag per object, true when accepted.
    pub(crate) flags: Vec<bool>,
}

/// The file one instance keeps its resume memory in.
#[derive(Debug)]
pub(crate) struct ResumeFile {
    path: PathBuf,
    tmp: PathBuf,
    /// The checksum of what was written last, so that the same contents are not written
    /// again (a long outage hands back chunks of which nothing was accepted, over and over).
    last: Option<u64>,
}

impl ResumeFile {
    /// The file at `path`, unless another instance has it open. Fails when its directory
    /// cannot take the file or the file cannot be read.
    pub(crate) fn open(path: &Path) -> Result<Opened, String> {
        {
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            if open.iter().any(|p| p == path) {
                return Ok(Opened::InUse);
            }
            open.push(path.to_path_buf());
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        // From here on, dropping `file` (an error included) lets the path go.
        let mut file = ResumeFile {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
            last: None,
        };
        let (saved, ignored) = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
            Err(e) => return Err(e.to_string()),
            Ok(m) if m.len() > MAX_FILE => (
                Vec::new(),
                Some(format!("{} bytes, over {MAX_FILE}", m.len())),
            ),
            Ok(_) => {
                let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
                match decode(&bytes) {
                    Ok(saved) => (saved, None),
                    Err(why) => (Vec::new(), Some(why)),
                }
            }
        };
        // Written once now, so that a directory that cannot take the file fails Init.
        file.save(&saved).map_err(|e| e.to_string())?;
        Ok(Opened::File(file, saved, ignored))
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's contents with `entries`, unless they are what it holds already.
    pub(crate) fn save(&mut self, entries: &[Saved]) -> std::io::Result<()> {
        let bytes = encode(entries);
        let sum = checksum(&bytes);
        if self.last == Some(sum) {
            return Ok(());
        }
        std::fs::write(&self.tmp, bytes)?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.last = Some(sum);
        Ok(())
    }
}

impl Drop for ResumeFile {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|p| p != &self.path);
    }
}

/// The file's bytes for `entries`.
pub(crate) fn encode(entries: &[Saved]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend((entries.len() as u32).to_le_bytes());
    for e in entries {
        // Whole seconds: the same entries give the same bytes from one save to the next.
        let secs =
            e.at.duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
        out.extend(e.key.to_le_bytes());
        out.extend(secs.to_le_bytes());
        out.extend((e.flags.len() as u32).to_le_bytes());
        for bits in e.flags.chunks(8) {
            let byte = bits
                .iter()
                .enumerate()
                .fold(0u8, |b, (i, &f)| b | (u8::from(f) << i));
            out.push(byte);
        }
    }
    let sum = checksum(&out);
    out.extend(sum.to_le_bytes());
    out
}

/// The entries of a file's bytes, or why they cannot be trusted.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Saved>, String> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a resume file of this version")?;
    let (body, sum) = body
        .split_last_chunk::<8>()
        .ok_or("shorter than its header")?;
    if checksum(&bytes[..bytes.len() - 8]) != u64::from_le_bytes(*sum) {
        return Err("its checksum does not match (damaged, or written by another build)".into());
    }
    let mut r = body;
    let mut take = |n: usize| -> Result<&[u8], &'static str> {
        let (a, b) = r.split_at_checked(n).ok_or("cut short")?;
        r = b;
        Ok(a)
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let count = u32_of(take(4)?);
    let mut out = Vec::new();
    for _ in 0..count {
        let key = u64_of(take(8)?);
        let at = UNIX_EPOCH + Duration::from_secs(u64_of(take(8)?));
        let n = u32_of(take(4)?) as usize;
        let bits = take(n.div_ceil(8))?;
        let flags = (0..n).map(|i| bits[i / 8] & (1 << (i % 8)) != 0).collect();
        out.push(Saved { key, at, flags });
    }
    if !r.is_empty() {
        return Err("bytes after its last entry".into());
    }
    Ok(out)
}

/// The checksum of a file's contents.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: u64, n: usize) -> Saved {
        Saved {
            key,
            at: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + key),
            flags: (0..n).map(|i| (i * 7 + key as usize) % 3 == 0).collect(),
        }
    }

    #[test]
    fn entries_come_back_as_saved() {
        for entries in [
            vec![],
            vec![entry(1, 0)],
            vec![entry(2, 1000), entry(3, 9), entry(4, 8)],
        ] {
            assert_eq!(decode(&encode(&entries)), Ok(entries));
        }
    }

    #[test]
    fn a_damaged_or_foreign_file_is_not_trusted() {
        let good = encode(&[entry(5, 1000), entry(6, 3)]);
        // Every byte flipped, and every length cut short: never taken for entries.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad).is_err(), "byte {at} flipped");
            assert!(decode(&good[..at]).is_err(), "cut at {at}");
        }
        assert!(decode(b"{}").is_err());
    }

    /// Opens `path`, which no other instance has open.
    fn opened(path: &Path) -> (ResumeFile, Vec<Saved>, Option<String>) {
        match ResumeFile::open(path).unwrap() {
            Opened::File(file, saved, ignored) => (file, saved, ignored),
            Opened::InUse => panic!("{} in use", path.display()),
        }
    }

    #[test]
    fn open_creates_reads_and_sets_aside_what_it_cannot_trust() {
        let dir = std::env::temp_dir().join(format!("resume-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        let _ = std::fs::remove_file(&path);
        let (mut file, saved, ignored) = opened(&path);
        assert!(saved.is_empty() && ignored.is_none() && path.exists());
        // One instance at a time: a second one gets none.
        assert!(matches!(ResumeFile::open(&path), Ok(Opened::InUse)));
        file.save(&[entry(7, 10)]).unwrap();
        // The same contents again are not written again.
        std::fs::write(&path, b"moved aside").unwrap();
        file.save(&[entry(7, 10)]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"moved aside");
        file.save(&[entry(8, 10)]).unwrap();
        drop(file);
        // Let go: the next instance (a reload's, a restart's) reads what it holds.
        let (file, saved, _) = opened(&path);
        assert_eq!(saved, vec![entry(8, 10)]);
        drop(file);
        std::fs::write(&path, b"garbage").unwrap();
        let (file, saved, ignored) = opened(&path);
        assert!(saved.is_empty());
        assert!(ignored.unwrap().contains("not a resume file"));
        drop(file);
        let missing = dir.join("no-such-dir/state");
        assert!(ResumeFile::open(&missing).is_err());
        // A failed open lets the path go too.
        assert!(ResumeFile::open(&missing).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
