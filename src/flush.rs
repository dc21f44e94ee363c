//! Delivering one chunk: its batches go out in parallel, refused payloads are split, and
//! what was accepted is remembered so that a retried chunk never sends it twice.
//!
//! * Every object of the chunk has a `done` flag (accepted, or dropped for good).
//! * Batches are sent over up to `max_concurrency` threads sharing the instance's pool.
//! * 400 and 413 split the request in halves down to single objects; an object still refused
//!   alone is dropped and counted. 408/429/5xx/network: the objects stay pending.
//! * When the flush ends with objects pending (RETRY), the flags are kept in a bounded
//!   [`Memory`] keyed by the chunk's bytes and tag; the host re-sends the same bytes, so the
//!   retry sends only what is still pending.

use crate::batch::Batch;
use crate::send::{Client, Outcome};
use crate::stats::{self, Stats};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A batch and the `done` flags of its objects, owned by whichever thread sends it.
type Work<'a> = (&'a Batch, &'a mut [bool]);

/// Most chunks remembered at once.
pub const MEMORY_CHUNKS: usize = 256;
/// How long a partially delivered chunk is remembered.
pub const MEMORY_TTL: Duration = Duration::from_secs(4 * 3600);

/// What happened to one chunk's requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects accepted in this flush.
    pub accepted: u64,
    /// Objects dropped after 400 alone.
    pub dropped_400: u64,
    /// Objects dropped after 413 alone.
    pub dropped_413: u64,
    /// Requests made.
    pub requests: u64,
    /// JSON bytes sent.
    pub bytes_json: u64,
    /// Wire bytes sent.
    pub bytes_wire: u64,
    /// Why some objects are still pending (the last transient failure), if any are.
    pub retry: Option<String>,
    /// A 4xx other than 400/413 that refuses every request: status and body start.
    pub rejected: Option<(u16, String)>,
    /// Objects still pending.
    pub pending: u64,
    /// Sizes of the objects dropped alone after 400 or 413 (status, bytes), for log lines.
    pub dropped: Vec<(u16, usize)>,
}

impl Report {
    fn merge(&mut self, o: Report) {
        self.accepted += o.accepted;
        self.dropped_400 += o.dropped_400;
        self.dropped_413 += o.dropped_413;
        self.requests += o.requests;
        self.bytes_json += o.bytes_json;
        self.bytes_wire += o.bytes_wire;
        self.pending += o.pending;
        if o.retry.is_some() {
            self.retry = o.retry;
        }
        if o.rejected.is_some() {
            self.rejected = o.rejected;
        }
        self.dropped.extend(o.dropped);
    }
}

/// Sends the pending objects of `batches` to `url`, updating `done` (one flag per object, in
/// batch order). Batches run on up to `concurrency` threads.
pub fn deliver(
    client: &Client,
    url: &str,
    batches: &[Batch],
    done: &mut [bool],
    concurrency: usize,
) -> Report {
    // Split `done` into one slice per batch, so each thread owns its flags.
    let mut slices: Vec<Work> = Vec::with_capacity(batches.len());
    let mut rest = done;
    for b in batches {
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(b.len());
        slices.push((b, mine));
        rest = tail;
    }
    let work: Vec<Work> = slices
        .into_iter()
        .filter(|(_, d)| d.iter().any(|x| !x))
        .collect();
    let mut total = Report::default();
    if work.len() <= 1 || concurrency <= 1 {
        for (b, d) in work {
            total.merge(deliver_batch(client, url, b, d));
        }
        return total;
    }
    let queue: Vec<Mutex<Option<Work>>> = work.into_iter().map(|w| Mutex::new(Some(w))).collect();
    let next = AtomicUsize::new(0);
    let threads = concurrency.min(queue.len());
    let reports: Vec<Report> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (queue, next) = (&queue, &next);
                std::thread::Builder::new()
                    .name("dd-send".into())
                    .spawn_scoped(s, move || {
                        let mut r = Report::default();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(slot) = queue.get(i) else { break };
                            let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                            if let Some((b, d)) = taken {
                                r.merge(deliver_batch(client, url, b, d));
                            }
                        }
                        r
                    })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h {
                Ok(h) => out.push(h.join().unwrap_or_else(|_| Report {
                    retry: Some("a sender thread panicked".into()),
                    ..Report::default()
                })),
                Err(e) => out.push(Report {
                    retry: Some(format!("cannot start a sender thread: {e}")),
                    ..Report::default()
                }),
            }
        }
        out
    });
    // Work a failed thread never picked up is still pending: send it here.
    for slot in &queue {
        let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((b, d)) = taken {
            total.merge(deliver_batch(client, url, b, d));
        }
    }
    for r in reports {
        total.merge(r);
    }
    total
}

/// Sends the pending objects of one batch, splitting on 400/413.
fn deliver_batch(client: &Client, url: &str, batch: &Batch, done: &mut [bool]) -> Report {
    let pending: Vec<usize> = (0..batch.len()).filter(|&i| !done[i]).collect();
    let mut report = Report::default();
    send_set(
        client,
        url,
        batch,
        &pending,
        done,
        &mut report,
        pending.len() == batch.len(),
    );
    report.pending = done.iter().filter(|d| !**d).count() as u64;
    report
}

fn send_set(
    client: &Client,
    url: &str,
    batch: &Batch,
    idx: &[usize],
    done: &mut [bool],
    report: &mut Report,
    whole: bool,
) {
    if idx.is_empty() {
        return;
    }
    let sub;
    let json: &[u8] = if whole {
        &batch.json
    } else {
        sub = batch.subset_json(idx);
        &sub
    };
    let (outcome, wire) = client.post_logs(url, json);
    report.requests += 1;
    report.bytes_json += json.len() as u64;
    report.bytes_wire += wire as u64;
    match outcome {
        Outcome::Accepted => {
            for &i in idx {
                done[i] = true;
            }
            report.accepted += idx.len() as u64;
        }
        Outcome::Retry(why) => report.retry = Some(why),
        Outcome::Rejected { status, .. } if (status == 400 || status == 413) && idx.len() == 1 => {
            done[idx[0]] = true;
            if status == 400 {
                report.dropped_400 += 1;
            } else {
                report.dropped_413 += 1;
            }
            report.dropped.push((status, batch.object(idx[0]).len()));
        }
        Outcome::Rejected { status, .. } if status == 400 || status == 413 => {
            let (a, b) = idx.split_at(idx.len() / 2);
            send_set(client, url, batch, a, done, report, false);
            send_set(client, url, batch, b, done, report, false);
        }
        Outcome::Rejected { status, body } => report.rejected = Some((status, body)),
    }
}

/// Adds a flush's report to the instance counters.
pub fn count(stats: &Stats, r: &Report) {
    stats::add(&stats.objects_sent, r.accepted);
    stats::add(&stats.requests, r.requests);
    stats::add(&stats.dropped_400, r.dropped_400);
    stats::add(&stats.dropped_413, r.dropped_413);
    stats::add(&stats.bytes_json, r.bytes_json);
    stats::add(&stats.bytes_wire, r.bytes_wire);
}

/// Delivery state of chunks that were partially accepted, keyed by their content.
#[derive(Debug, Default)]
pub struct Memory {
    chunks: Mutex<HashMap<u64, (Instant, Vec<bool>)>>,
}

/// The key of a chunk: a hash of its tag and bytes (the host re-sends the same bytes).
pub fn chunk_key(tag: &str, data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tag.hash(&mut h);
    data.hash(&mut h);
    h.finish()
}

impl Memory {
    /// True when nothing is remembered (the common case: no hashing needed).
    pub fn is_empty(&self) -> bool {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Takes the flags remembered for `key` if they describe `objects` objects.
    pub fn take(&self, key: u64, objects: usize) -> Option<Vec<bool>> {
        let mut map = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let (_, flags) = map.remove(&key)?;
        (flags.len() == objects).then_some(flags)
    }

    /// Remembers the flags of a chunk that will be retried.
    pub fn put(&self, key: u64, flags: Vec<bool>) {
        let mut map = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, (t, _)| now.duration_since(*t) < MEMORY_TTL);
        if map.len() >= MEMORY_CHUNKS
            && let Some(oldest) = map.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(key, (now, flags));
    }

    /// Number of chunks remembered.
    pub fn len(&self) -> usize {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_bounded_and_checks_sizes() {
        let m = Memory::default();
        assert!(m.is_empty());
        for k in 0..(MEMORY_CHUNKS as u64 + 10) {
            m.put(k, vec![true, false]);
        }
        assert_eq!(m.len(), MEMORY_CHUNKS);
        assert_eq!(m.take(MEMORY_CHUNKS as u64 + 9, 2), Some(vec![true, false]));
        assert_eq!(m.take(MEMORY_CHUNKS as u64 + 8, 3), None);
        assert_eq!(m.take(0, 2), None); // evicted
    }

    #[test]
    fn chunk_key_depends_on_tag_and_bytes() {
        assert_eq!(chunk_key("a", b"xy"), chunk_key("a", b"xy"));
        assert_ne!(chunk_key("a", b"xy"), chunk_key("b", b"xy"));
        assert_ne!(chunk_key("a", b"xy"), chunk_key("a", b"xz"));
    }
}
