//! Delivering one chunk: its batches go out in parallel, refused payloads are split, and
//! what was accepted is remembered so that a retried chunk never sends it twice.
//!
//! * Every object of the chunk has a `done` flag (accepted, or dropped for good).
//! * Batches are sent over up to `max_concurrency` threads sharing the instance's pool.
//! * What an answer means is [`Outcome`]'s: 400, 413 and 422 ([`Outcome::splits_payload`])
//!   split the request in halves down to single objects, and an object still refused alone is
//!   dropped; after 408/429/5xx/network ([`Outcome::is_retriable`]) or a refusal the objects
//!   stay pending, and [`crate::deliver::verdict`] decides what that means for the chunk.
//! * Splitting is bounded. The rule: a batch of `n` objects may spend [`split_budget`]`(n)`
//!   requests (`6 * ceil(log2 n) + 4`, 64 for 1000) on its parts; isolating one bad log costs
//!   about `2 * log2 n` (at most 20 for 1000), two 38, three 54, so up to three bad logs
//!   (often more) are still isolated and dropped alone. When the
//!   first [`EVERY_PART_SINGLES`] single objects refused alone come with nothing of the batch
//!   accepted, the intake (or a relay) is taken to refuse everything: splitting stops for the
//!   whole chunk, and those objects are not dropped one by one. Either way the objects left
//!   stay pending with a refusal ([`Detail::EveryPart`], [`Detail::SplitBudget`]), which makes
//!   the verdict ERROR: the drop is the host's to see, never an OK.
//! * When the flush ends with objects pending (RETRY), the flags are kept in a bounded
//!   [`Memory`] keyed by the chunk's bytes and tag; the host re-sends the same bytes, so the
//!   retry sends only what is still pending.

use crate::deliver::client::{Client, Outcome};
use crate::deliver::verdict::{Delivery, Detail, Failure, Refusal};
use crate::encode::batch::{Batch, Payload};
use crate::observe::events::{Event, FlushEvents};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A batch and the `done` flags of its objects, owned by whichever thread sends it.
type Work<'a> = (&'a Batch, &'a mut [bool]);

/// Most bytes of `done` flags remembered at once (one byte per object): 64 MiB, 64 million
/// pending objects, far more than any filesystem backlog Fluent Bit retries at once.
pub const MEMORY_BYTES: usize = 64 << 20;
/// How long a chunk handed back for a retry is remembered: longer than Fluent Bit's longest
/// scheduled retry wait (`scheduler.cap`, 2000 s by default) many times over.
pub const MEMORY_TTL: Duration = Duration::from_secs(4 * 3600);

/// Single objects refused alone, with nothing of their batch accepted, after which the intake
/// is taken to refuse every payload (see the module's rule).
pub const EVERY_PART_SINGLES: u32 = 4;

/// Requests a batch of `n` objects may spend on splitting a refused payload: what isolating
/// three bad logs costs, and a margin (`6 * ceil(log2 n) + 4`).
pub fn split_budget(n: usize) -> u32 {
    6 * n.max(1).next_power_of_two().trailing_zeros() + 4
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
) -> Delivery {
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
        refuses_everything: AtomicBool::new(false),
    };
    let mut total = Delivery::default();
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
    /// Set when a batch concluded that the intake refuses every payload: the chunk's other
    /// batches stop splitting (and sending) too.
    refuses_everything: AtomicBool,
}

/// Where splitting one batch stands.
#[derive(Debug)]
struct Split<'b> {
    /// Requests left for the parts of the batch.
    budget: u32,
    /// Whether any request of the batch was accepted.
    accepted: bool,
    /// Objects refused alone while nothing was accepted: dropped once something is (or the
    /// batch ends without a conclusion), left pending if the intake refuses everything.
    held: Vec<usize>,
    /// The last payload refusal: its status and the start of its body.
    last: Option<(u16, String)>,
    /// Why splitting stopped early, if it did.
    end: Option<Detail>,
    /// The batch's JSON array, once a part of it is needed (decoded when the batch kept only
    /// its encoded body); `Some(None)` if it did not decode.
    json: Option<Option<Cow<'b, [u8]>>>,
}

impl<'a> Sender<'a> {
    /// Sends `work` over up to `concurrency` threads.
    fn parallel(&self, work: Vec<Work<'a>>, concurrency: usize) -> Delivery {
        let queue: Vec<Mutex<Option<Work>>> =
            work.into_iter().map(|w| Mutex::new(Some(w))).collect();
        let next = AtomicUsize::new(0);
        let threads = concurrency.min(queue.len());
        let reports: Vec<Delivery> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (queue, next) = (&queue, &next);
                    std::thread::Builder::new()
                        .name("dd-send".into())
                        .spawn_scoped(s, move || {
                            let mut r = Delivery::default();
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
                    Ok(h) => {
                        out.push(h.join().unwrap_or_else(|_| {
                            Delivery::failed("a sender thread panicked".into())
                        }))
                    }
                    Err(e) => out.push(Delivery::failed(format!(
                        "cannot start a sender thread: {e}"
                    ))),
                }
            }
            out
        });
        let mut total = Delivery::default();
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

    /// Sends the pending objects of one batch, splitting on 400/413/422 within the budget.
    fn batch(&self, batch: &Batch, done: &mut [bool]) -> Delivery {
        let pending: Vec<usize> = (0..batch.len()).filter(|&i| !done[i]).collect();
        let mut report = Delivery::default();
        let mut split = Split {
            budget: split_budget(batch.len()),
            accepted: false,
            held: Vec::new(),
            last: None,
            end: None,
            json: None,
        };
        let whole = pending.len() == batch.len();
        self.set(batch, &pending, done, &mut report, &mut split, whole);
        if split.end.is_none() && !self.refuses_everything.load(Ordering::Relaxed) {
            self.drop_held(batch, done, &mut split);
        }
        if let (Some(detail), Some((status, body))) = (split.end, split.last) {
            report.refused = Some(Refusal {
                status,
                body,
                detail,
            });
        }
        report
    }

    /// Drops the objects refused alone that were held back.
    fn drop_held(&self, batch: &Batch, done: &mut [bool], split: &mut Split<'_>) {
        let status = split.last.as_ref().map_or(400, |l| l.0);
        for i in std::mem::take(&mut split.held) {
            done[i] = true;
            self.events.emit(Event::ObjectDropped {
                status,
                bytes: batch.object_len(i),
            });
        }
    }

    /// Sends objects `idx` of `batch` (all of it when `whole`) and acts on the outcome.
    fn set<'b>(
        &self,
        batch: &'b Batch,
        idx: &[usize],
        done: &mut [bool],
        report: &mut Delivery,
        split: &mut Split<'b>,
        whole: bool,
    ) {
        if idx.is_empty() || split.end.is_some() || self.refuses_everything.load(Ordering::Relaxed)
        {
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
        if split.last.is_some() {
            // A part of a refused payload: paid from the budget.
            if split.budget == 0 {
                split.end = Some(Detail::SplitBudget {
                    requests: split_budget(batch.len()),
                });
                return;
            }
            split.budget -= 1;
        }
        let sub;
        let json = if whole {
            batch.payload()
        } else {
            let text = split.json.get_or_insert_with(|| batch.payload().text());
            let Some(text) = text else {
                // Not expected: the body was encoded from this JSON moments ago.
                report.transient = Some(Failure {
                    status: None,
                    reason: "not sent: the batch's encoded body did not decode".into(),
                });
                return;
            };
            sub = batch.subset_json(text, idx);
            Payload::json(&sub)
        };
        #[cfg(feature = "test-hooks")]
        crate::fault::before_request();
        let posted = self.client.post_logs(self.url, json);
        if let Some(first) = &posted.refused_encoding {
            self.events.emit(Event::RequestDone {
                status: first.status,
                json_bytes: json.json_len as u64,
                wire_bytes: first.wire_bytes as u64,
                duration: first.duration,
            });
        }
        self.events.emit(Event::RequestDone {
            status: posted.status,
            json_bytes: json.json_len as u64,
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
                split.accepted = true;
                self.drop_held(batch, done, split);
            }
            Outcome::PayloadRefused { status, body } => {
                split.last = Some((status, body));
                if idx.len() > 1 {
                    let (a, b) = idx.split_at(idx.len() / 2);
                    self.set(batch, a, done, report, split, false);
                    self.set(batch, b, done, report, split, false);
                } else if split.accepted {
                    split.held.push(idx[0]);
                    self.drop_held(batch, done, split);
                } else {
                    split.held.push(idx[0]);
                    if split.held.len() >= EVERY_PART_SINGLES as usize {
                        split.end = Some(Detail::EveryPart {
                            singles: EVERY_PART_SINGLES,
                        });
                        self.refuses_everything.store(true, Ordering::Relaxed);
                    }
                }
            }
            Outcome::Transient { status, reason } => {
                report.transient = Some(Failure { status, reason })
            }
            Outcome::Refused {
                status,
                body,
                location,
            } => {
                let detail = match status {
                    300..=399 => Detail::Redirect(location),
                    _ => Detail::None,
                };
                report.refused = Some(Refusal {
                    status,
                    body,
                    detail,
                })
            }
        }
    }
}

/// Delivery state of chunks handed back for a retry, keyed by their content.
///
/// Bounded by bytes of flags ([`MEMORY_BYTES`]) and age ([`MEMORY_TTL`]), not by a count of
/// chunks: a sustained 429 over a large filesystem backlog keeps every retrying chunk's entry,
/// so no retry re-sends what was accepted. Only when the flags of the chunks waiting exceed
/// the byte bound is the oldest entry forgotten (its retry then sends the whole chunk again).
#[derive(Debug)]
pub struct Memory {
    chunks: Mutex<Remembered>,
    max_bytes: usize,
    ttl: Duration,
}

/// The entries and the bytes of flags they hold.
#[derive(Debug, Default)]
struct Remembered {
    map: HashMap<u64, (Instant, Vec<bool>)>,
    bytes: usize,
}

impl Default for Memory {
    fn default() -> Memory {
        Memory::with_bounds(MEMORY_BYTES, MEMORY_TTL)
    }
}

/// The key of a chunk: a hash of its tag and bytes (the host re-sends the same bytes).
pub fn chunk_key(tag: &str, data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tag.hash(&mut h);
    data.hash(&mut h);
    h.finish()
}

impl Memory {
    /// A memory holding at most `max_bytes` of flags, each entry for at most `ttl`.
    pub fn with_bounds(max_bytes: usize, ttl: Duration) -> Memory {
        Memory {
            chunks: Mutex::default(),
            max_bytes,
            ttl,
        }
    }

    /// True when nothing is remembered (the common case: no hashing needed).
    pub fn is_empty(&self) -> bool {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .is_empty()
    }

    /// True when flags are remembered for `key` (a chunk handed back for a retry).
    pub fn contains(&self, key: u64) -> bool {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .contains_key(&key)
    }

    /// Takes the flags remembered for `key` if they describe `objects` objects.
    pub fn take(&self, key: u64, objects: usize) -> Option<Vec<bool>> {
        let mut r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let (_, flags) = r.map.remove(&key)?;
        r.bytes -= flags.len();
        (flags.len() == objects).then_some(flags)
    }

    /// Remembers the flags of a chunk that will be retried.
    pub fn put(&self, key: u64, flags: Vec<bool>) {
        self.put_at(key, flags, Instant::now());
    }

    /// [`Memory::put`] at time `now`: forgets entries older than the age bound, then the
    /// oldest ones while the flags would exceed the byte bound.
    fn put_at(&self, key: u64, flags: Vec<bool>, now: Instant) {
        let mut r = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        r.map
            .retain(|_, (t, _)| now.saturating_duration_since(*t) < ttl);
        r.map.remove(&key);
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

    #[cfg(test)]
    /// Number of chunks remembered.
    pub fn len(&self) -> usize {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_keeps_every_retrying_chunk_within_its_byte_bound() {
        let m = Memory::default();
        assert!(m.is_empty());
        // A sustained 429 over a backlog of 1000 chunks of 1000 objects: every entry kept.
        for k in 0..1000u64 {
            m.put(k, vec![k % 2 == 0; 1000]);
        }
        assert_eq!(m.len(), 1000);
        assert!(m.contains(0) && m.contains(999) && !m.contains(1000));
        assert_eq!(m.take(0, 1000), Some(vec![true; 1000]));
        assert!(!m.contains(0));
        assert_eq!(m.take(1, 999), None, "the flags must describe the chunk");
        assert_eq!(m.take(1, 1000), None, "taken once");
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
        assert_eq!((m.len(), m.take(1, 4)), (2, None));
        m.put_at(4, vec![true; 2], at(150)); // 2 and 3 are over 100 s old
        assert_eq!(m.len(), 1);
        assert_eq!(m.take(4, 2), Some(vec![true; 2]));
        // Replacing an entry does not count its old flags.
        m.put_at(5, vec![false; 8], at(151));
        m.put_at(5, vec![true; 8], at(152));
        assert_eq!(m.take(5, 8), Some(vec![true; 8]));
    }

    #[test]
    fn the_split_budget_isolates_a_few_bad_logs() {
        assert_eq!(split_budget(1000), 64);
        assert_eq!(split_budget(1), 4);
        assert_eq!(split_budget(2), 10);
        // Three bad logs in 1000 cost at most 54 requests after the first.
        assert!(split_budget(1000) >= 54);
    }

    #[test]
    fn chunk_key_depends_on_tag_and_bytes() {
        assert_eq!(chunk_key("a", b"xy"), chunk_key("a", b"xy"));
        assert_ne!(chunk_key("a", b"xy"), chunk_key("b", b"xy"));
        assert_ne!(chunk_key("a", b"xy"), chunk_key("a", b"xz"));
    }
}
