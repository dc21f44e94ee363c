//! The verdict of one flush: OK, RETRY or ERROR with its reason, decided in one place.
//!
//! [`verdict`] is a pure function of what the flush found (a [`FlushReport`]): no I/O, no
//! logging, no counting. What follows from the verdict happens elsewhere: the instance
//! remembers a partly delivered chunk and explains a 403, the events write the lines and
//! count, and only the host module turns the verdict into Fluent Bit's return code.
//!
//! | site | objects pending after sending | a refusal (401, 403, ...) | a transient failure | verdict |
//! |---|---|---|---|---|
//! | auto-detection still has no answer (after the flush waited for it) | - | - | - | RETRY ([`RetryReason::SitePending`]) |
//! | no site accepts the key (the sites are asked again with backoff) | - | - | - | RETRY ([`RetryReason::SiteRefused`]) |
//! | ready | none (or the chunk held no object) | any | any | OK |
//! | ready | some | yes | no | ERROR ([`ErrorReason::Refused`]) |
//! | ready | some | any | yes, or neither | RETRY ([`RetryReason::Undelivered`]) |
//!
//! Objects dropped one by one (400, 413 or 422 alone, over 1 MB, malformed) are not pending:
//! they never hold a chunk back. A payload whose splitting concluded that the intake refuses
//! everything ([`Detail::EveryPart`]) or spent its budget ([`Detail::SplitBudget`]) leaves its
//! objects pending with a refusal: ERROR, so the drop is visible to the host.

/// A request that failed in a way a later attempt may not meet (408, 429, 5xx, network).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The HTTP status, or `None` when there was no answer.
    pub status: Option<u16>,
    /// What failed: `HTTP 503`, `timeout (...)`, `connection error: ...`.
    pub reason: String,
}

/// A request the intake refused whatever it holds (401, 403, a redirect, ...), or a payload
/// whose splitting ended in the conclusion that it is refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The start of the response body.
    pub body: String,
    /// What the plugin concluded beyond the status.
    pub detail: Detail,
}

impl Refusal {
    #[cfg(test)]
    /// A plain refusal of `status` with the start of its response `body`.
    pub(crate) fn new(status: u16, body: String) -> Refusal {
        Refusal {
            status,
            body,
            detail: Detail::None,
        }
    }
}

/// What the plugin concluded beyond a refusal's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Nothing more than the status.
    #[default]
    None,
    /// A 3xx: the endpoint redirects to this `Location` (the plugin follows no redirect).
    Redirect(Option<String>),
    /// Splitting a refused payload (400, 413, 422) found every part refused, down to single
    /// logs, with none accepted: the intake or a relay refuses everything, not one log.
    EveryPart {
        /// Single logs refused in a row, none of the payload accepted.
        singles: u32,
    },
    /// Splitting a refused payload spent its request budget before isolating the bad logs.
    SplitBudget {
        /// The budget: requests one payload may spend on splitting.
        requests: u32,
    },
}

/// What sending a chunk's objects came to, as far as the verdict is concerned. What was
/// accepted, dropped and sent is counted by the events as it happens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Objects still pending.
    pub pending: u64,
    /// The last transient failure (408, 429, 5xx, network), if any request met one.
    pub transient: Option<Failure>,
    /// The last refusal (401, 403, a redirect, ...), or the conclusion of splitting a
    /// refused payload, if any.
    pub refused: Option<Refusal>,
}

impl Delivery {
    pub(crate) fn merge(&mut self, o: Delivery) {
        if o.transient.is_some() {
            self.transient = o.transient;
        }
        if o.refused.is_some() {
            self.refused = o.refused;
        }
    }

    pub(crate) fn failed(reason: String) -> Delivery {
        Delivery {
            transient: Some(Failure {
                status: None,
                reason,
            }),
            ..Delivery::default()
        }
    }
}

/// Everything the verdict depends on: what the flush found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FlushReport {
    /// Auto-detection had no answer for the key's site, even after the flush waited for it:
    /// nothing was sent.
    SitePending,
    /// No Datadog site accepts the key: nothing was sent.
    SiteRefused,
    /// The site was known, and the chunk's objects were sent.
    Sent {
        /// Objects the chunk became (records neither malformed nor too large).
        objects: u64,
        /// What sending them came to.
        delivery: Delivery,
    },
}

/// Why a chunk is handed back for Fluent Bit's retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// Auto-detection has not found the key's site yet, even after the flush waited for it.
    SitePending,
    /// No Datadog site accepts the key. The sites are asked again with backoff, so a
    /// transient refusal costs a retry rather than the chunk.
    SiteRefused,
    /// Some objects are still pending after a transient failure; the retry sends only those.
    Undelivered {
        /// Objects still pending.
        pending: u64,
        /// The last transient failure (`None` only if no request said why).
        failure: Option<Failure>,
        /// A refusal met by other requests of the same chunk, also worth a line.
        refusal: Option<Refusal>,
    },
    /// The instance is shutting down and takes no more flushes.
    Closing,
    /// The flush thread panicked or could not be started.
    Internal,
}

/// Why a chunk is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ErrorReason {
    /// The intake refuses every request (401, 403, ...) and nothing is worth retrying.
    Refused {
        /// The refusal.
        refusal: Refusal,
        /// Objects dropped with the chunk.
        pending: u64,
    },
}

/// What a flush comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every object was accepted or dropped for good.
    Ok,
    /// The chunk is handed back for a later retry.
    Retry(RetryReason),
    /// The chunk is dropped.
    Error(ErrorReason),
}

impl Verdict {
    /// `OK`, `RETRY` or `ERROR`, as in the debug line of a flush.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Retry(_) => "RETRY",
            Verdict::Error(_) => "ERROR",
        }
    }

    /// The refusal behind this verdict, if one was met (ERROR, or RETRY beside a refusal).
    pub(crate) fn refusal(&self) -> Option<&Refusal> {
        match self {
            Verdict::Error(ErrorReason::Refused { refusal, .. })
            | Verdict::Retry(RetryReason::Undelivered {
                refusal: Some(refusal),
                ..
            }) => Some(refusal),
            _ => None,
        }
    }
}

/// Decides the verdict of a flush from its report (see the module's table).
pub(crate) fn verdict(report: &FlushReport) -> Verdict {
    let (objects, d) = match report {
        FlushReport::SitePending => return Verdict::Retry(RetryReason::SitePending),
        FlushReport::SiteRefused => return Verdict::Retry(RetryReason::SiteRefused),
        FlushReport::Sent { objects, delivery } => (*objects, delivery),
    };
    if objects == 0 || d.pending == 0 {
        return Verdict::Ok;
    }
    match (&d.refused, &d.transient) {
        (Some(refusal), None) => Verdict::Error(ErrorReason::Refused {
            refusal: refusal.clone(),
            pending: d.pending,
        }),
        (refusal, failure) => Verdict::Retry(RetryReason::Undelivered {
            pending: d.pending,
            failure: failure.clone(),
            refusal: refusal.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            status: Some(503),
            reason: "HTTP 503".into(),
        }
    }

    fn refusal() -> Refusal {
        Refusal::new(403, "Forbidden".into())
    }

    fn sent(objects: u64, pending: u64, t: Option<Failure>, r: Option<Refusal>) -> FlushReport {
        FlushReport::Sent {
            objects,
            delivery: Delivery {
                pending,
                transient: t,
                refused: r,
            },
        }
    }

    #[test]
    fn verdict_table() {
        use ErrorReason as E;
        use RetryReason as R;
        let undelivered = |pending, failure, refusal| {
            Verdict::Retry(R::Undelivered {
                pending,
                failure,
                refusal,
            })
        };
        let table: Vec<(&str, FlushReport, Verdict)> = vec![
            (
                "site pending",
                FlushReport::SitePending,
                Verdict::Retry(R::SitePending),
            ),
            (
                "site failed",
                FlushReport::SiteRefused,
                Verdict::Retry(R::SiteRefused),
            ),
            ("empty chunk", sent(0, 0, None, None), Verdict::Ok),
            ("all accepted", sent(10, 0, None, None), Verdict::Ok),
            (
                "accepted after a transient failure (resumed)",
                sent(10, 0, Some(failure()), None),
                Verdict::Ok,
            ),
            (
                "nothing pending beside a refusal",
                sent(10, 0, None, Some(refusal())),
                Verdict::Ok,
            ),
            (
                "some pending after a transient failure",
                sent(10, 4, Some(failure()), None),
                undelivered(4, Some(failure()), None),
            ),
            (
                "all pending after a transient failure",
                sent(10, 10, Some(failure()), None),
                undelivered(10, Some(failure()), None),
            ),
            (
                "refused alone: dropped",
                sent(10, 10, None, Some(refusal())),
                Verdict::Error(E::Refused {
                    refusal: refusal(),
                    pending: 10,
                }),
            ),
            (
                "refused and transient: retried, the refusal kept for its line",
                sent(10, 6, Some(failure()), Some(refusal())),
                undelivered(6, Some(failure()), Some(refusal())),
            ),
            (
                "pending with no reason (a sender thread lost): retried",
                sent(10, 3, None, None),
                undelivered(3, None, None),
            ),
        ];
        for (name, report, want) in table {
            assert_eq!(verdict(&report), want, "{name}");
        }
    }

    #[test]
    fn labels_and_refusal() {
        assert_eq!(Verdict::Ok.label(), "OK");
        assert_eq!(Verdict::Retry(RetryReason::Closing).label(), "RETRY");
        assert_eq!(
            Verdict::Error(ErrorReason::Refused {
                refusal: refusal(),
                pending: 1
            })
            .label(),
            "ERROR"
        );
        let v = verdict(&sent(2, 2, None, Some(refusal())));
        assert_eq!(v.refusal(), Some(&refusal()));
        let v = verdict(&sent(2, 2, Some(failure()), Some(refusal())));
        assert_eq!(v.refusal(), Some(&refusal()));
        assert_eq!(verdict(&sent(2, 2, Some(failure()), None)).refusal(), None);
    }
}
