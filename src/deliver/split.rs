//! Delivering one chunk: its batches go out in parallel, refused payloads are split, and
//! what was accepted is remembered so that a retried chunk never sends it twice.
//!
//! * Every object of the chunk has a `done` flag (accepted, or dropped for good).
//! * Batches are sent over up to `max_concurrency` threads sharing the instance's pool.
//! * What an answer means is [`Outcome`]'s ([`crate::deliver::client::classify`]); what
//!   follows is decided here, in one `match` ([`Sender::set`]): 400, 413 and 422 split the
//!   request in halves down to single objects, and an object still refused alone is dropped;
//!   after 408/429/5xx/network or a refusal the objects stay pending, and
//!   [`crate::deliver::verdict`] decides what that means for the chunk.
//! * Each body is made by the instance's [`Encoder`], which also says when a zstd body's
//!   answer calls for the same logs gzipped (the zstd -> gzip fallback).
//! * What happens as it goes (each request, objects accepted or dropped, the switch to gzip)
//!   is told to the caller's watcher as a [`Step`]; the lines and counters are made above.
//! * Splitting is bounded. The rule: a batch of `n` objects may spend [`split_budget`]`(n)`
//!   requests (`6 * ceil(log2 n) + 4`, 64 for 1000) on its parts; isolating one bad log costs
//!   about `2 * log2 n` (at most 20 for 1000), two 38, three 54, so up to three bad logs
//!   (often more) are still isolated and dropped alone. When the
//!   first [`EVERY_PART_SINGLES`] single objects refused alone come with nothing of the batch
//!   accepted, the intake (or a relay) is taken to refuse everything: splitting stops for the
//!   whole chunk, and those objects are not dropped one by one. Either way the objects left
//!   stay pending with a refusal ([`Detail::EveryPart`], [`Detail::SplitBudget`]), which makes
//!   the verdict ERROR: the drop is the host's to see, never an OK.
//! * When the flush ends with objects pending (RETRY), the caller keeps the flags for the
//!   retry ([`crate::deliver::resume`]), so the retry sends only what is still pending.

use crate::deliver::client::{Client, Outcome, Posted};
use crate::deliver::verdict::{Delivery, Detail, Failure, Refusal};
use crate::encode::batch::Batch;
use crate::encode::body::{Codec, Encoder, Fallback};
use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A batch and the `done` flags of its objects, owned by whichever thread sends it.
type Work<'a> = (&'a Batch, &'a mut [bool]);

/// Something that happened while sending, told to the [`Route`]'s watcher as it happens.
#[derive(Clone, Debug)]
pub(crate) enum Step<'a> {
    /// One request's round trip ended.
    Request {
        /// The HTTP status, or `None` when there was no answer.
        status: Option<u16>,
        /// Bytes of JSON in the request.
        json_bytes: u64,
        /// Bytes on the wire.
        wire_bytes: u64,
        /// Round-trip duration.
        duration: Duration,
    },
    /// Objects the intake accepted.
    Accepted {
        /// How many.
        n: u64,
    },
    /// An object refused alone with 400, 413 or 422, dropped.
    Dropped {
        /// 400, 413 or 422.
        status: u16,
        /// Its size in JSON.
        bytes: usize,
    },
    /// The intake refused zstd (this answer): the instance gzips from now on. Told once.
    ZstdRefused {
        /// The status of the answer to the zstd body.
        status: u16,
        /// The start of its body.
        body: &'a str,
    },
}

/// Where one flush's requests go and what they go with.
pub(crate) struct Route<'a> {
    /// The instance's HTTP client.
    pub client: &'a Client,
    /// The instance's encoder (the codec of each body, the zstd -> gzip fallback).
    pub encoder: &'a Encoder,
    /// The intake URL.
    pub url: &'a str,
    /// Most batches sent at once (`max_concurrency`).
    pub concurrency: usize,
    /// Told every [`Step`], from the sending threads.
    pub watch: &'a (dyn Fn(Step<'_>) + Sync),
}

/// Single objects refused alone, with nothing of their batch accepted, after which the intake
/// is taken to refuse every payload (see the module's rule).
pub(crate) const EVERY_PART_SINGLES: u32 = 4;

/// Requests a batch of `n` objects may spend on splitting a refused payload: what isolating
/// three bad logs costs, and a margin (`6 * ceil(log2 n) + 4`).
pub(crate) fn split_budget(n: usize) -> u32 {
    6 * n.max(1).next_power_of_two().trailing_zeros() + 4
}

/// Sends the pending objects of `batches` along `route`, updating `done` (one flag per
/// object, in batch order). Batches run on up to `route.concurrency` threads; each request
/// and each object accepted or dropped is a [`Step`] told to `route.watch`.
pub(crate) fn deliver(route: &Route<'_>, batches: &[Batch], done: &mut [bool]) -> Delivery {
    let concurrency = route.concurrency;
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
        route,
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

/// The sending of one flush.
struct Sender<'a> {
    route: &'a Route<'a>,
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
    /// The batch's JSON array, once a part of it is needed ([`Batch::json_text`]);
    /// `Some(None)` if it did not decode.
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

    /// Posts the whole batch (`part` `None`) or a part of its JSON in the encoder's codec; when
    /// the answer to a zstd body calls for it ([`Encoder::answered`]), posts the same logs
    /// again gzipped, whose answer then stands. Every request is a [`Step::Request`].
    fn post(&self, batch: &Batch, part: Option<&[u8]>) -> Posted {
        #[cfg(feature = "test-hooks")]
        crate::fault::before_request();
        let encoder = self.route.encoder;
        let codec = encoder.codec();
        let first = self.post_as(batch, part, codec);
        let check = match encoder.answered(codec, first.status) {
            Fallback::Stands => return first,
            Fallback::Switched { first: switched } => {
                if switched {
                    self.zstd_refused(&first);
                }
                false
            }
            Fallback::Check => true,
        };
        let again = self.post_as(batch, part, Some(Codec::Gzip));
        if check && encoder.checked(again.status) {
            self.zstd_refused(&first);
        }
        again
    }

    /// One request of `batch` (or of `part` of its JSON) in `codec`.
    fn post_as(&self, batch: &Batch, part: Option<&[u8]>, codec: Option<Codec>) -> Posted {
        let encoder = self.route.encoder;
        let body = match part {
            None => batch.body(codec, encoder),
            Some(json) => encoder.body(json, codec),
        };
        let Some(body) = body else {
            return Posted::unsent("the body could not be made");
        };
        let posted = self.route.client.post(self.route.url, &body);
        encoder.release(body);
        (self.route.watch)(Step::Request {
            status: posted.status,
            json_bytes: part.map_or(batch.json_len, <[u8]>::len) as u64,
            wire_bytes: posted.wire_bytes as u64,
            duration: posted.duration,
        });
        posted
    }

    /// Tells the watcher that the intake refused zstd, with its answer.
    fn zstd_refused(&self, answer: &Posted) {
        let body = match &answer.outcome {
            Outcome::Refused { body, .. } | Outcome::PayloadRefused { body, .. } => body.as_str(),
            _ => "",
        };
        (self.route.watch)(Step::ZstdRefused {
            status: answer.status.unwrap_or_default(),
            body,
        });
    }

    /// Drops the objects refused alone that were held back.
    fn drop_held(&self, batch: &Batch, done: &mut [bool], split: &mut Split<'_>) {
        let status = split.last.as_ref().map_or(400, |l| l.0);
        for i in std::mem::take(&mut split.held) {
            done[i] = true;
            (self.route.watch)(Step::Dropped {
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
        if self.route.client.is_closing() {
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
        let part = if whole {
            None
        } else {
            let text = split.json.get_or_insert_with(|| batch.json_text());
            let Some(text) = text else {
                // Not expected: the body was encoded from this JSON moments ago.
                report.transient = Some(Failure {
                    status: None,
                    reason: "not sent: the batch's encoded body did not decode".into(),
                });
                return;
            };
            sub = batch.subset_json(text, idx);
            Some(&sub[..])
        };
        let posted = self.post(batch, part);
        match posted.outcome {
            Outcome::Accepted => {
                for &i in idx {
                    done[i] = true;
                }
                (self.route.watch)(Step::Accepted {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_budget_isolates_a_few_bad_logs() {
        assert_eq!(split_budget(1000), 64);
        assert_eq!(split_budget(1), 4);
        assert_eq!(split_budget(2), 10);
        // Three bad logs in 1000 cost at most 54 requests after the first.
        assert!(split_budget(1000) >= 54);
    }
}
