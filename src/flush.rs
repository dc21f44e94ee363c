//! Delivering one chunk: its batches go out in parallel, refused payloads are split, and
//! what was accepted is remembered so that a retried chunk never sends it twice.
//!
//! * Every object of the chunk has a `done` flag (accepted, or dropped for good).
//! * Batches are sent over up to `max_concurrency` threads sharing the instance's pool.
//! * What an answer means is [`Outcome`]'s: 400 and 413 ([`Outcome::splits_payload`]) split
//!   the request in halves down to single objects, and an object still refused alone is
//!   dropped; after 408/429/5xx/network ([`Outcome::is_retriable`]) or another 4xx the
//!   objects stay pending, and [`crate::verdict`] decides what that means for the chunk.
//! * When the flush ends with objects pending (RETRY), the flags are kept in a bounded
//!   [`Memory`] keyed by the chunk's bytes and tag; the host re-sends the same bytes, so the
//!   retry sends only what is still pending.

use crate::batch::Batch;
use crate::events::{Event, FlushEvents};
use crate::send::{Client, Outcome};
use crate::verdict::{Failure, Refusal};
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

/// What sending a chunk's objects came to, as far as the verdict is concerned. What was
/// accepted, dropped and sent is counted by the events as it happens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects still pending.
    pub pending: u64,
    /// The last transient failure (408, 429, 5xx, network), if any request met one.
    pub transient: Option<Failure>,
    /// The last refusal (a 4xx other than 400/413), if any request met one.
    pub refused: Option<Refusal>,
}

impl Report {
    fn merge(&mut self, o: Report) {
        if o.transient.is_some() {
            self.transient = o.transient;
        }
        if o.refused.is_some() {
            self.refused = o.refused;
        }
    }

    fn failed(reason: String) -> Report {
        Report {
            transient: Some(Failure {
                status: None,
                reason,
            }),
            ..Report::default()
        }
    }
}

/// Sends the pending objects of `batches` to `url`, updating `done` (one flag per object, in
/// batch order). Batches run on up to `concurrency` threads; each request and each object
/// accepted or dropped is an event of `events`.
pub fn deliver(
    client: &Client,
    url: &str,
    batches: &[Batch],
    done: &mut [bool],
    concurrency: usize,
    events: &FlushEvents,
) -> Report {
    // Split `done` into one slice per batch, so each thread owns its flags.
    let mut slices: Vec<Work> = Vec::with_capacity(batches.len());
    let mut rest = &mut *done;
    for b in batches {
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(b.len());
        slices.push((b, mine));
        rest = tail;
    }
    let work: Vec<Work> = slices
        .into_iter()
        .filter(|(_, d)| d.iter().any(|x| !x))
        .collect();
    let sender = Sender {
        client,
        url,
        events,
    };
    let mut total = Report::default();
    if work.len() <= 1 || concurrency <= 1 {
        for (b, d) in work {
            total.merge(sender.batch(b, d));
        }
    } else {
        total = sender.parallel(work, concurrency);
    }
    // Counted from the flags, so objects of a sender thread that failed stay pending.
    total.pending = done.iter().filter(|d| !**d).count() as u64;
    total
}

/// What every request of one flush goes to, and where its events go.
struct Sender<'a> {
    client: &'a Client,
    url: &'a str,
    events: &'a FlushEvents<'a>,
}

impl<'a> Sender<'a> {
    /// Sends `work` over up to `concurrency` threads.
    fn parallel(&self, work: Vec<Work<'a>>, concurrency: usize) -> Report {
        let queue: Vec<Mutex<Option<Work>>> =
            work.into_iter().map(|w| Mutex::new(Some(w))).collect();
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
                                    r.merge(self.batch(b, d));
                                }
                            }
                            r
                        })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                match h {
                    Ok(h) => out.push(
                        h.join()
                            .unwrap_or_else(|_| Report::failed("a sender thread panicked".into())),
                    ),
                    Err(e) => {
                        out.push(Report::failed(format!("cannot start a sender thread: {e}")))
                    }
                }
            }
            out
        });
        let mut total = Report::default();
        // Work a failed thread never picked up is still pending: send it here.
        for slot in &queue {
            let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((b, d)) = taken {
                total.merge(self.batch(b, d));
            }
        }
        for r in reports {
            total.merge(r);
        }
        total
    }

    /// Sends the pending objects of one batch, splitting on 400/413.
    fn batch(&self, batch: &Batch, done: &mut [bool]) -> Report {
        let pending: Vec<usize> = (0..batch.len()).filter(|&i| !done[i]).collect();
        let mut report = Report::default();
        self.set(
            batch,
            &pending,
            done,
            &mut report,
            pending.len() == batch.len(),
        );
        report
    }

    /// Sends objects `idx` of `batch` (all of it when `whole`) and acts on the outcome.
    fn set(
        &self,
        batch: &Batch,
        idx: &[usize],
        done: &mut [bool],
        report: &mut Report,
        whole: bool,
    ) {
        if idx.is_empty() {
            return;
        }
        if self.client.is_closing() {
            // Exiting: no new request; the objects stay pending (the chunk is retried).
            report.transient = Some(Failure {
                status: None,
                reason: "not sent: the instance is exiting".into(),
            });
            return;
        }
        let sub;
        let json: &[u8] = if whole {
            &batch.json
        } else {
            sub = batch.subset_json(idx);
            &sub
        };
        let posted = self.client.post_logs(self.url, json);
        self.events.emit(Event::RequestDone {
            status: posted.status,
            json_bytes: json.len() as u64,
            wire_bytes: posted.wire_bytes as u64,
            duration: posted.duration,
        });
        match posted.outcome {
            Outcome::Accepted => {
                for &i in idx {
                    done[i] = true;
                }
                self.events.emit(Event::ObjectsAccepted {
                    n: idx.len() as u64,
                });
            }
            Outcome::PayloadRefused { status, .. } if idx.len() == 1 => {
                done[idx[0]] = true;
                self.events.emit(Event::ObjectDropped {
                    status,
                    bytes: batch.object(idx[0]).len(),
                });
            }
            Outcome::PayloadRefused { .. } => {
                let (a, b) = idx.split_at(idx.len() / 2);
                self.set(batch, a, done, report, false);
                self.set(batch, b, done, report, false);
            }
            Outcome::Transient { status, reason } => {
                report.transient = Some(Failure { status, reason })
            }
            Outcome::Refused { status, body } => report.refused = Some(Refusal { status, body }),
        }
    }
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
