//! Records written from the previous record's plan.

use super::*;

#[test]
fn records_of_one_container_are_written_from_the_plan() {
    // FireLens records of one container: from the third on (the second confirms the tags),
    // each is written from the previous one's plan, as it would be on its own.
    let m = Mapper::new(&cfg(&[("provider", "ecs"), ("dd_tags", "env:a")]));
    let mut shared = Scratch::default();
    for n in 0..5 {
        let body = enc(&obj(&[
            ("container_name", s("/app")),
            ("ecs_cluster", s("arn:aws:ecs:us-east-1:1:cluster/c")),
            (
                "log",
                s(&format!("{{\"n\":{n},\"msg\":\"{}\"}}", "x".repeat(n * 40))),
            ),
            ("source", if n == 3 { M::UInt(2) } else { s("stdout") }),
        ]));
        let rec = Record {
            time: Timestamp {
                secs: 1_700_000_000 + n as i64,
                nanos: 0,
            },
            meta: &[],
            body: &body,
        };
        same_as_alone(&m, &rec, &mut shared, &format!("record {n}"));
    }
    assert_eq!(shared.cache.hits, 3);
}

#[test]
fn an_odd_record_keeps_the_plan_and_a_new_shape_replaces_it() {
    let m = Mapper::new(&cfg(&[("provider", "ecs")]));
    let mut shared = Scratch::default();
    let mut write = |pairs: &[(&str, M)]| {
        let body = enc(&obj(pairs));
        let rec = Record {
            time: T0,
            meta: &[],
            body: &body,
        };
        same_as_alone(&m, &rec, &mut shared, "");
        shared.cache.hits
    };
    fn line(k: &str) -> [(&str, M); 2] {
        [("container_name", s("/a")), (k, s("x"))]
    }
    write(&line("log"));
    write(&line("log"));
    assert_eq!(write(&line("log")), 1);
    // One line of another shape goes the general way; the plan stays for the next ones.
    write(&line("msg"));
    assert_eq!(write(&line("log")), 2);
    // A new shape for good: the record of the eighth miss in a row becomes the plan.
    for _ in 0..8 {
        assert_eq!(write(&line("msg")), 2);
    }
    assert_eq!(write(&line("msg")), 3);
}

#[test]
fn interleaved_containers_each_keep_their_tags_and_plan() {
    // A chunk that mixes the records of several containers (one tag for a whole service,
    // say): each container's tags and plan are kept while at most TAG_SETS of them take
    // turns, and every record is still what it would be on its own.
    let m = Mapper::new(&cfg(&[("provider", "ecs"), ("dd_tags", "env:a")]));
    let mut shared = Scratch::default();
    let mut write = |container: usize, n: usize| {
        let body = enc(&obj(&[
            ("container_id", s(&format!("c{container}"))),
            ("container_name", s("/app")),
            ("log", s(&format!("line {n}"))),
        ]));
        let rec = Record {
            time: T0,
            meta: &[],
            body: &body,
        };
        same_as_alone(
            &m,
            &rec,
            &mut shared,
            &format!("container {container}, line {n}"),
        );
        shared.cache.hits
    };
    // Two rounds to make each container's tags and then its plan; from the third round on,
    // every record is written from its container's plan.
    let mut hits = 0;
    for round in 0..5 {
        for c in 0..TAG_SETS {
            hits = write(c, round);
        }
    }
    assert_eq!(hits, 3 * TAG_SETS as u64);
    // One container more than are kept: each evicts the least recently used, so none keeps
    // its tags long enough for a plan, and nothing is written from a stale one.
    for round in 0..3 {
        for c in 0..=TAG_SETS {
            assert_eq!(write(100 + c, round), hits, "container {c}, round {round}");
        }
    }
    // The sets are bounded.
    assert_eq!(shared.cache.sets.len(), TAG_SETS);
}
