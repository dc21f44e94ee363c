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
    assert_eq!(shared.cache.template.hits, 3);
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
        shared.cache.template.hits
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
