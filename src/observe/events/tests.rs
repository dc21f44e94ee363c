use super::*;
use crate::deliver::verdict::ErrorReason;
use crate::observe::log::captured;

fn events() -> Events {
    captured::take();
    Events::new("datadog_logs.7".into(), Duration::from_secs(60))
}

/// Emits `event` on fresh events; returns the counters that changed and the lines.
fn outcome(event: Event) -> (Vec<(&'static str, u64)>, Vec<String>) {
    let ev = events();
    ev.emit(event);
    let snap = ev.counters().snapshot();
    let changed = Counter::ALL
        .iter()
        .filter(|c| snap.get(**c) > 0)
        .map(|c| (c.name(), snap.get(*c)))
        .collect();
    (changed, captured::take())
}

/// An event, the counters it changes, and a part of the one line it writes (if any).
type Case<'a> = (Event<'a>, Vec<(&'static str, u64)>, Option<&'static str>);

#[test]
fn each_event_counts_itself_and_writes_its_line() {
    let refusal = Refusal::new(401, String::new());
    let dropped = Verdict::Error(ErrorReason::Refused {
        refusal: refusal.clone(),
        pending: 1,
    });
    let failure = Failure {
        status: Some(503),
        reason: "HTTP 503".into(),
    };
    let cases: Vec<Case> = vec![
        (
            Event::RecordsDecoded { n: 5 },
            vec![("records_in", 5)],
            None,
        ),
        (
            Event::MalformedSkipped {
                n: 2,
                tag: "app",
                offset: 17,
                reason: "truncated map",
            },
            vec![("dropped_malformed", 2)],
            Some(
                "[ warn] [output:datadog_logs:datadog_logs.7] skipped 2 malformed record(s) in a chunk of tag 'app' (first at byte 17: truncated map); the chunk's other records are delivered",
            ),
        ),
        (
            Event::RecordsTruncated { n: 1 },
            vec![("truncated", 1)],
            Some("truncated 1 message(s) over Datadog's 1 MB log limit (they end in"),
        ),
        (Event::RecordsTruncated { n: 0 }, vec![], None),
        (
            Event::RecordsTooLarge { n: 3 },
            vec![("dropped_too_large", 3)],
            Some(
                "[error] [output:datadog_logs:datadog_logs.7] dropped 3 record(s) that stay over Datadog's 1 MB log limit",
            ),
        ),
        (Event::RecordsTooLarge { n: 0 }, vec![], None),
        (
            Event::ChunkResumed { pending: 4 },
            vec![("retried_logs", 4)],
            None,
        ),
        (
            Event::Sent(Step::Request {
                status: Some(202),
                json_bytes: 100,
                wire_bytes: 40,
                duration: Duration::from_millis(3),
            }),
            vec![
                ("requests", 1),
                ("bytes_json", 100),
                ("bytes_wire", 40),
                ("request_micros", 3000),
            ],
            None,
        ),
        (
            Event::SiteInUse {
                site: "datadoghq.eu",
            },
            vec![],
            None,
        ),
        (
            Event::Sent(Step::Accepted { n: 9 }),
            vec![("objects_sent", 9)],
            None,
        ),
        (
            Event::Sent(Step::Dropped {
                status: 413,
                bytes: 1234,
            }),
            vec![("dropped_413", 1)],
            Some(
                "dropped one log of 1234 bytes: too large for the intake (413) even when sent alone; the rest of its request was delivered",
            ),
        ),
        (
            Event::Sent(Step::Dropped {
                status: 400,
                bytes: 9,
            }),
            vec![("dropped_400", 1)],
            Some("dropped one log of 9 bytes: refused as invalid (400) even when sent alone"),
        ),
        (
            Event::ChunkRejected {
                refusal: &refusal,
                host: "intake.example",
                site: "datadoghq.com",
                pending: 6,
                dropped: true,
                elsewhere: &KeyElsewhere::NotAsked,
            },
            vec![("dropped_rejected", 6)],
            Some(
                "[error] [output:datadog_logs:datadog_logs.7] HTTP 401 from intake.example: 6 log(s) dropped; response: (empty). The request had no valid API key: check `apikey`",
            ),
        ),
        (
            Event::ChunkRejected {
                refusal: &refusal,
                host: "intake.example",
                site: "datadoghq.com",
                pending: 6,
                dropped: false,
                elsewhere: &KeyElsewhere::NotAsked,
            },
            vec![],
            Some("HTTP 401 from intake.example: 6 log(s) dropped"),
        ),
        (
            Event::ChunkRetried {
                pending: 3,
                objects: 10,
                host: "intake.example",
                failure: Some(&failure),
            },
            vec![],
            Some(
                "[ warn] [output:datadog_logs:datadog_logs.7] 3 of 10 log(s) not delivered to intake.example (HTTP 503); the chunk will be retried and only those will be sent",
            ),
        ),
        (
            Event::ChunkRetried {
                pending: 3,
                objects: 10,
                host: "intake.example",
                failure: None,
            },
            vec![],
            Some("(transient failure)"),
        ),
        (
            Event::Answered {
                verdict: &Verdict::Retry(RetryReason::SitePending),
            },
            vec![("retries", 1)],
            None,
        ),
        (
            Event::Answered {
                verdict: &Verdict::Retry(RetryReason::Closing),
            },
            vec![],
            None,
        ),
        (
            Event::Answered {
                verdict: &Verdict::Ok,
            },
            vec![],
            None,
        ),
        (Event::Answered { verdict: &dropped }, vec![], None),
        (
            Event::FlushPanicked,
            vec![],
            Some("internal error while flushing (panic caught); the chunk will be retried"),
        ),
        (
            Event::FlushThreadFailed { error: "EAGAIN" },
            vec![],
            Some("cannot start a flush thread (EAGAIN); the chunk will be retried"),
        ),
        (
            Event::Exited { abandoned: 2 },
            vec![],
            Some(
                "] exit: records_in=0 objects_sent=0 requests=0 retries=0 dropped_400=0 dropped_413=0 dropped_too_large=0 dropped_malformed=0 dropped_rejected=0 truncated=0 bytes_json=0 bytes_wire=0, 2 flush(es) still running at exit",
            ),
        ),
    ];
    for (event, counts, line) in cases {
        let name = format!("{event:?}");
        let (changed, lines) = outcome(event);
        assert_eq!(changed, counts, "{name}");
        match line {
            None => assert!(lines.is_empty(), "{name}: {lines:?}"),
            Some(want) => {
                assert_eq!(lines.len(), 1, "{name}: {lines:?}");
                assert!(lines[0].contains(want), "{name}: {}", lines[0]);
            }
        }
    }
}

#[test]
fn a_403_line_says_where_the_key_is_valid() {
    let refusal = Refusal::new(403, "Forbidden".into());
    let line =
        |elsewhere| rejection_line(&refusal, "intake.example", "datadoghq.com", 2, &elsewhere);
    let base = "HTTP 403 from intake.example: 2 log(s) dropped; response: Forbidden. The API key was rejected by datadoghq.com: a key from another Datadog site is the usual cause, so check `site`";
    assert_eq!(line(KeyElsewhere::NotAsked), base);
    assert_eq!(
        line(KeyElsewhere::Nowhere),
        format!("{base}; the key is valid on no other commercial Datadog site either")
    );
    assert!(
        line(KeyElsewhere::ValidOn("ap1.datadoghq.com".into())).starts_with(&format!(
            "{base}; the key is valid on ap1.datadoghq.com: set `site ap1`"
        ))
    );
}

#[test]
fn a_payload_refused_as_a_whole_and_a_redirect_say_so() {
    let line = |status, detail| {
        let refusal = Refusal {
            status,
            body: "{\"errors\":[\"bad\"]}".into(),
            detail,
        };
        rejection_line(
            &refusal,
            "relay:8080",
            "datadoghq.com",
            3000,
            &KeyElsewhere::NotAsked,
        )
    };
    assert_eq!(
        line(400, Detail::EveryPart { singles: 4 }),
        "HTTP 400 from relay:8080 for every part of the payload, down to 4 single logs with none accepted: the intake (or a relay) refuses the whole payload, not one log, so 3000 log(s) are not delivered and the chunk is reported as failed; response: {\"errors\":[\"bad\"]}"
    );
    assert!(
        line(413, Detail::SplitBudget { requests: 48 })
            .starts_with("HTTP 413 from relay:8080: still refused after 48 requests splitting")
    );
    assert!(
        line(301, Detail::Redirect(Some("https://relay/api/v2/logs".into()))).ends_with(
            ". The endpoint redirects to https://relay/api/v2/logs: the plugin follows no redirect (it would carry the API key elsewhere), so set `endpoint` to where it points"
        )
    );
}

#[test]
fn failure_lines_are_rate_limited_by_kind_and_status() {
    let ev = events();
    let failure = |status| Failure {
        status,
        reason: "x".into(),
    };
    let (f500, f503, net) = (failure(Some(500)), failure(Some(503)), failure(None));
    for f in [&f500, &f500, &f503, &net, &net, &f503] {
        ev.emit(Event::ChunkRetried {
            pending: 1,
            objects: 1,
            host: "h",
            failure: Some(f),
        });
    }
    for status in [400, 400, 413] {
        ev.emit(Event::Sent(Step::Dropped { status, bytes: 1 }));
    }
    // One line per status (and one for "no answer"), then one per drop status.
    assert_eq!(captured::take().len(), 3 + 2);
    assert_eq!(ev.counters().get(Counter::Dropped400), 2, "counted all");
    // What was held back and never came back after the interval is told at exit.
    ev.emit(Event::Exited { abandoned: 0 });
    let lines = captured::take();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("] exit: "), "{lines:?}");
    let kinds: Vec<&str> = [
        "drop (HTTP 400) x1",
        "retry x1",
        "retry (HTTP 500) x1",
        "retry (HTTP 503) x1",
    ]
    .into_iter()
    .filter(|k| !lines[1].contains(k))
    .collect();
    assert!(kinds.is_empty(), "missing {kinds:?} in {}", lines[1]);
}

#[test]
fn flush_events_count_in_the_flush_and_the_instance() {
    let ev = events();
    ev.emit(Event::Sent(Step::Accepted { n: 1 }));
    let flush = ev.flush();
    for status in [Some(202), Some(500), None, Some(202)] {
        flush.emit(Event::Sent(Step::Request {
            status,
            json_bytes: 10,
            wire_bytes: 5,
            duration: Duration::ZERO,
        }));
    }
    flush.emit(Event::Sent(Step::Accepted { n: 2 }));
    assert_eq!(flush.counters().get(Counter::ObjectsSent), 2);
    assert_eq!(ev.counters().get(Counter::ObjectsSent), 3);
    let snap = ev.counters().snapshot();
    assert_eq!(snap.get(Counter::Requests), 4);
    assert_eq!(snap.get(Counter::BytesJson), 40);
    assert_eq!(snap.requests_by_status(), [(0, 1), (202, 2), (500, 1)]);
    assert_eq!(
        flush.counters().snapshot().requests_by_status(),
        [(0, 1), (202, 2), (500, 1)]
    );
}

#[test]
fn snapshot_shows_the_summary_and_drops_by_reason() {
    let ev = events();
    ev.emit(Event::RecordsDecoded { n: 5 });
    ev.emit(Event::Sent(Step::Dropped {
        status: 400,
        bytes: 1,
    }));
    ev.emit(Event::RecordsTooLarge { n: 2 });
    ev.emit(Event::Sent(Step::Request {
        status: Some(202),
        json_bytes: 0,
        wire_bytes: 100,
        duration: Duration::ZERO,
    }));
    let snap = ev.counters().snapshot();
    assert_eq!(
        snap.to_string(),
        "records_in=5 objects_sent=0 requests=1 retries=0 dropped_400=1 dropped_413=0 \
         dropped_too_large=2 dropped_malformed=0 dropped_rejected=0 truncated=0 \
         bytes_json=0 bytes_wire=100"
    );
    assert_eq!(
        snap.dropped_by_reason(),
        [
            ("http_400", 1),
            ("http_413", 0),
            ("too_large", 2),
            ("malformed", 0),
            ("rejected", 0)
        ]
    );
}

#[test]
fn partial_records_are_counted_and_warned_of_once_per_interval() {
    let ev = events();
    let part = |n| Event::PartialRecords {
        n,
        tag: "app-firelens-0123",
    };
    ev.emit(part(3));
    assert_eq!(ev.counters().get(Counter::PartialRecords), 3);
    let lines = captured::take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].trim_end().ends_with(
            "[ warn] [output:datadog_logs:datadog_logs.7] shipped 3 partial record(s) of tag 'app-firelens-0123' unjoined, each as its own log: they are pieces of lines over 16 KB split by the container runtime (partial_message); join them before this output with [FILTER] Name multiline, Match *, Mode partial_message, multiline.key_content log"
        ),
        "{lines:?}"
    );
    ev.emit(part(3));
    assert_eq!(ev.counters().get(Counter::PartialRecords), 6);
    assert!(captured::take().is_empty(), "once per interval");
    ev.emit(part(0));
    assert_eq!(ev.counters().get(Counter::PartialRecords), 6);
    assert!(captured::take().is_empty());
    // Not in the exit summary's text, which is relied on.
    assert!(!ev.counters().snapshot().to_string().contains("partial"));
}
