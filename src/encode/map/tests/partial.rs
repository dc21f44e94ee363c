//! Records that are one part of a line split by the container runtime (`partial_message`):
//! told apart, kept off the plan, and written as they are.

use super::*;

/// A FireLens part as Docker's fluentd driver writes it, `partial_message` being `flag`.
fn part(flag: M, log: &str) -> M {
    obj(&[
        ("log", s(log)),
        ("partial_message", flag),
        ("partial_id", s("id")),
        ("partial_ordinal", s("1")),
        ("partial_last", s("false")),
    ])
}

fn mapped(body: &M) -> (Mapped, J) {
    let (r, out) = map_raw(&cfg(&[("json_date_key", "false")]), T0, &[], body);
    (r, parse_checked(&out))
}

#[test]
fn a_part_is_told_and_shipped_whole_with_its_partial_attributes() {
    let (r, o) = mapped(&part(s("true"), "x"));
    assert_eq!(
        r,
        Mapped::Written {
            truncated: false,
            partial: true
        }
    );
    assert_eq!(
        o,
        json!({"message": "x", "partial_message": "true", "partial_id": "id",
               "partial_ordinal": "1", "partial_last": "false"})
    );
}

#[test]
fn only_a_true_top_level_partial_message_makes_a_part() {
    let partial = |body: &M| match mapped(body).0 {
        Mapped::Written { partial, .. } => partial,
        other => panic!("{other:?}"),
    };
    for flag in [
        s("true"),
        s("TRUE"),
        s("True"),
        M::Bin(b"true".to_vec()),
        M::Bool(true),
    ] {
        assert!(partial(&part(flag.clone(), "x")), "{flag:?}");
    }
    for flag in [
        s("false"),
        s("truer"),
        s(""),
        M::UInt(1),
        M::Bool(false),
        M::Nil,
    ] {
        assert!(!partial(&part(flag.clone(), "x")), "{flag:?}");
    }
    assert!(!partial(&obj(&[("log", s("x"))])), "absent");
    let nested = obj(&[
        ("log", s("x")),
        ("x", obj(&[("partial_message", s("true"))])),
    ]);
    assert!(!partial(&nested), "nested");
}

#[test]
fn a_part_is_never_written_from_a_plan_and_leaves_the_plan_in_place() {
    let m = Mapper::new(&cfg(&[("provider", "ecs")]));
    let mut shared = Scratch::default();
    let mut write = |body: &M| {
        let body = enc(body);
        let rec = Record {
            time: T0,
            meta: &[],
            body: &body,
        };
        let r = m.write(&rec, TAG, &mut shared, &mut Vec::new());
        (r, shared.cache.hits)
    };
    let written = |partial| Mapped::Written {
        truncated: false,
        partial,
    };
    // Records whose `partial_message` is "false": the same keys as a part's.
    let plain = || part(s("false"), "y");
    write(&plain());
    write(&plain());
    assert_eq!(write(&plain()), (written(false), 0), "no plan for them");
    // Plain lines make a plan; a part of otherwise the same keys is still told.
    let line = || obj(&[("container_name", s("/a")), ("log", s("y"))]);
    write(&line());
    write(&line());
    assert_eq!(write(&line()), (written(false), 1));
    for _ in 0..3 {
        assert_eq!(write(&part(s("true"), "x")).0, written(true));
    }
    assert_eq!(
        write(&line()),
        (written(false), 2),
        "the plan is still there"
    );
}
