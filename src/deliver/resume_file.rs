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
//! Layout (little-endian): [`MAGIC`]; the name of the output that wrote it (u16 length, then
//! its bytes: a file written by another `[OUTPUT]` is set aside, so that two outputs sharing
//! one file by mistake never skip each other's logs); the number of entries (u32); per entry the chunk's key
//! (u64, see `resume::ChunkKey`), when it was remembered (u64, seconds since the Unix epoch), its
//! object count (u32) and one bit per object, set when accepted; then a checksum (u64) of
//! all that precedes it. A file whose magic or checksum does not match is ignored whole.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first bytes of a resume file, with its layout's version.
pub(crate) const MAGIC: &[u8] = b"fluent-bit-datadog resume 1\n";

/// Most bytes read from a resume file: the memory's bound of flags (`resume::MEMORY_BYTES`,
/// 64 MiB) as bits, and room for the entries' headers.
const MAX_FILE: u64 = 9 << 20;

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
    /// The name of the output instance that owns it.
    owner: String,
    /// The checksum of what was written last, so that the same contents are not written
    /// again (a long outage hands back chunks of which nothing was accepted, over and over).
    last: Option<u64>,
}

impl ResumeFile {
    /// The file at `path` of the output instance named `owner`, with what it holds (nothing when it does not exist yet). Fails
    /// when its directory cannot be written or the file cannot be read; a file of another
    /// layout or damaged is set aside as empty (the second value says why).
    pub(crate) fn open(
        path: &Path,
        owner: &str,
    ) -> Result<(ResumeFile, Vec<Saved>, Option<String>), String> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut file = ResumeFile {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
            owner: owner.to_string(),
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
                match decode(&bytes, owner) {
                    Ok(saved) => (saved, None),
                    Err(why) => (Vec::new(), Some(why)),
                }
            }
        };
        // Written once now, so that a directory that cannot take the file fails Init.
        file.save(&saved).map_err(|e| e.to_string())?;
        Ok((file, saved, ignored))
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's contents with `entries`, unless they are what it holds already.
    pub(crate) fn save(&mut self, entries: &[Saved]) -> std::io::Result<()> {
        let bytes = encode(entries, &self.owner);
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

/// The file's bytes for `entries` of the output named `owner`.
pub(crate) fn encode(entries: &[Saved], owner: &str) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let owner = &owner.as_bytes()[..owner.len().min(u16::MAX as usize)];
    out.extend((owner.len() as u16).to_le_bytes());
    out.extend(owner);
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

/// The entries of a file's bytes written for the output named `owner`, or why they cannot be
/// trusted.
pub(crate) fn decode(bytes: &[u8], owner: &str) -> Result<Vec<Saved>, String> {
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
    let len = take(2)?;
    let written_by = take(usize::from(u16::from_le_bytes([len[0], len[1]])))?;
    if written_by != owner.as_bytes() {
        return Err(format!(
            "written by output '{}', not this one",
            String::from_utf8_lossy(written_by)
        ));
    }
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
            assert_eq!(decode(&encode(&entries, "dd.0"), "dd.0"), Ok(entries));
        }
    }

    #[test]
    fn a_damaged_or_foreign_file_is_not_trusted() {
        let good = encode(&[entry(5, 1000), entry(6, 3)], "dd.0");
        // Every byte flipped, and every length cut short: never taken for entries.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad, "dd.0").is_err(), "byte {at} flipped");
            assert!(decode(&good[..at], "dd.0").is_err(), "cut at {at}");
        }
        assert!(decode(b"{}", "dd.0").is_err());
        // Another output's file: set aside, whatever it holds.
        let why = decode(&good, "dd.1").unwrap_err();
        assert!(why.contains("written by output 'dd.0'"), "{why}");
    }

    #[test]
    fn open_creates_reads_and_sets_aside_what_it_cannot_trust() {
        let dir = std::env::temp_dir().join(format!("resume-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        let _ = std::fs::remove_file(&path);
        let (mut file, saved, ignored) = ResumeFile::open(&path, "dd.0").unwrap();
        assert!(saved.is_empty() && ignored.is_none() && path.exists());
        file.save(&[entry(7, 10)]).unwrap();
        let (_, saved, _) = ResumeFile::open(&path, "dd.0").unwrap();
        assert_eq!(saved, vec![entry(7, 10)]);
        // The same contents again are not written again.
        std::fs::write(&path, b"moved aside").unwrap();
        file.save(&[entry(7, 10)]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"moved aside");
        file.save(&[entry(8, 10)]).unwrap();
        assert_eq!(
            ResumeFile::open(&path, "dd.0").unwrap().1,
            vec![entry(8, 10)]
        );
        std::fs::write(&path, b"garbage").unwrap();
        let (_, saved, ignored) = ResumeFile::open(&path, "dd.0").unwrap();
        assert!(saved.is_empty());
        assert!(ignored.unwrap().contains("not a resume file"));
        assert!(ResumeFile::open(&dir.join("no-such-dir/state"), "dd.0").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
