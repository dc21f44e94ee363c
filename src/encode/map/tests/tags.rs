//! `ddtags` (rule 2), the tag cache and the ECS tags.

use super::*;

// ---------------------------------------------------------------------------------------------
// rule 2: ddtags

#[test]
fn ddtags_merge_record_ecs_static_without_duplicates() {
    let c = cfg(&[
        ("provider", "ecs"),
        ("dd_tags", "env:prod, team:a,env:prod"),
        ("json_date_key", "off"),
    ]);
    let o = map_with(
        &c,
        &obj(&[
            ("ddtags", s(" team:a, own:1,own:1 ,, ")),
            ("container_id", s("abc")),
            ("log", s("x")),
        ]),
    );
    assert_eq!(
        tags(&o),
        ["team:a", "own:1", "container_id:abc", "env:prod"],
        "{o}"
    );
    assert!(o.get("container_id").is_none());
    assert_eq!(o["message"], "x");
    // An array of strings is a tag list too.
    let o = map_with(
        &c,
        &obj(&[("ddtags", M::Arr(vec![s("a:1"), M::Bin(b"b:2".to_vec())]))]),
    );
    assert_eq!(tags(&o), ["a:1", "b:2", "env:prod", "team:a"]);
    // The ECS tags themselves are not repeated.
    let o = map_with(
        &c,
        &obj(&[
            ("ddtags", s("container_id:abc")),
            ("container_id", s("abc")),
        ]),
    );
    assert_eq!(tags(&o), ["container_id:abc", "env:prod", "team:a"]);
    // A ddtags value that is no tag list stays an ordinary attribute when nothing is merged.
    let o = map_plain(&obj(&[("ddtags", M::UInt(5))]));
    assert_eq!(o, json!({"ddtags": 5}));
    // Static tags alone.
    let c = cfg(&[("dd_tags", "env:prod"), ("json_date_key", "off")]);
    assert_eq!(map_with(&c, &obj(&[])), json!({"ddtags": "env:prod"}));
}

#[test]
fn tags_follow_each_record_when_the_scratch_is_reused() {
    // The tags are remade only when their inputs change; a scratch that served earlier
    // records must give exactly what a fresh one gives.
    let c = cfg(&[("provider", "ecs"), ("dd_tags", "env:prod")]);
    let m = Mapper::new(&c);
    let bodies = [
        obj(&[
            ("container_name", s("/a")),
            ("ecs_cluster", s("c1")),
            ("log", s("1")),
        ]),
        obj(&[
            ("container_name", s("/a")),
            ("ecs_cluster", s("c1")),
            ("log", s("2")),
        ]),
        obj(&[("container_name", s("/b")), ("ecs_cluster", s("c1"))]),
        obj(&[("ecs_cluster", s("c1")), ("container_name", s("/b"))]),
        obj(&[("container_name", s("/b")), ("ddtags", s("x:1"))]),
        // The previous record's inputs less its own tags.
        obj(&[("container_name", s("/b"))]),
        obj(&[("container_name", s("/b")), ("ddtags", s("x:1"))]),
        // The same bytes split differently between an ECS value and the record's own tags.
        obj(&[("container_name", s("/bx")), ("ddtags", s(":1"))]),
        obj(&[("container_name", s("")), ("log", s("empty"))]),
        obj(&[("log", s("no ecs"))]),
        obj(&[("ddtags", M::UInt(3))]),
        obj(&[
            ("container_name", s("/a")),
            ("ecs_cluster", s("c1")),
            ("log", s("1")),
        ]),
    ];
    let mut shared = Scratch::default();
    for (n, body) in bodies.iter().enumerate() {
        let body = enc(body);
        let rec = Record {
            time: T0,
            meta: &[],
            body: &body,
        };
        same_as_alone(&m, &rec, &mut shared, &format!("record {n}"));
    }
}

#[test]
fn scratch_shared_between_mappers_keeps_each_ones_tags() {
    // The same record through two instances with different dd_tags, one Scratch between
    // them: each record gets its own instance's tags, not the ones made last.
    let a = Mapper::new(&cfg(&[("provider", "ecs"), ("dd_tags", "env:a")]));
    let b = Mapper::new(&cfg(&[("provider", "ecs"), ("dd_tags", "env:b")]));
    let body = enc(&obj(&[("container_name", s("/c")), ("log", s("x"))]));
    let rec = Record {
        time: T0,
        meta: &[],
        body: &body,
    };
    let mut shared = Scratch::default();
    for (m, want) in [
        (&a, "env:a"),
        (&b, "env:b"),
        (&a, "env:a"),
        (&a.clone(), "env:a"),
    ] {
        let mut out = Vec::new();
        m.write(&rec, TAG, &mut shared, &mut out);
        let o = parse_checked(&out);
        assert_eq!(o["ddtags"], format!("container_name:c,{want}"));
    }
}

#[test]
fn ecs_remap_follows_fluent_bit_4_1() {
    let c = cfg(&[("provider", "ecs"), ("json_date_key", "off")]);
    let arn = "arn:aws:ecs:ap-northeast-1:123456789012:task/prod/cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e";
    let o = map_with(
        &c,
        &obj(&[
            ("container_id", s("cid-1")),
            ("container_name", s("/main-container")),
            ("container_image", s("repo/img:1.2")),
            (
                "ecs_cluster",
                s("arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod"),
            ),
            ("ecs_task_arn", s(arn)),
            ("ecs_task_definition", s("your-service:42")),
            ("source", s("stdout")),
        ]),
    );
    assert_eq!(
        tags(&o),
        [
            "container_id:cid-1",
            "container_name:main-container",
            "container_image:repo/img:1.2",
            "cluster_name:prod",
            &format!("task_arn:{arn}"),
            "region:ap-northeast-1",
            "task_id:prod/cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e",
            "task_family:your-service",
            "task_version:42",
        ]
    );
    // The remapped attributes leave the object.
    assert_eq!(o.as_object().unwrap().len(), 2, "{o}");
    assert_eq!(o["source"], "stdout");

    // Values not in the expected form: the whole value under the tag's name.
    let o = map_with(
        &c,
        &obj(&[
            ("ecs_cluster", s("plain")),
            ("ecs_task_definition", s("nodef")),
            ("ecs_task_arn", s("weird")),
            ("container_name", s("//x")),
        ]),
    );
    assert_eq!(
        tags(&o),
        [
            "cluster_name:plain",
            "ecs_task_definition:nodef",
            "task_arn:weird",
            "task_id:weird",
            "container_name:/x",
        ]
    );
    // task_id is the text after the first `task/`; the cluster after the first `cluster/`.
    let o = map_with(
        &c,
        &obj(&[
            ("ecs_task_arn", s("arn:aws:ecs:eu-west-1:1:task/a/task/b")),
            ("ecs_cluster", s("x:cluster/c/cluster/d")),
        ]),
    );
    assert_eq!(
        tags(&o),
        [
            "task_arn:arn:aws:ecs:eu-west-1:1:task/a/task/b",
            "region:eu-west-1",
            "task_id:a/task/b",
            "cluster_name:c/cluster/d",
        ]
    );
    // Only non-empty string values are remapped; the others stay as they are.
    let o = map_with(
        &c,
        &obj(&[
            ("ecs_cluster", s("")),
            ("container_name", M::UInt(5)),
            ("container_id", M::Nil),
            ("ecs_task_arn", M::Arr(vec![s("task/x")])),
        ]),
    );
    assert_eq!(
        o,
        json!({"ecs_cluster": "", "container_name": 5, "container_id": null,
               "ecs_task_arn": ["task/x"]})
    );
}

#[test]
fn ecs_keys_stay_without_provider() {
    let body = obj(&[
        ("container_id", s("cid-1")),
        ("container_name", s("/main-container")),
        ("ecs_cluster", s("arn:aws:ecs:r:1:cluster/prod")),
        ("ecs_task_arn", s("arn:aws:ecs:r:1:task/prod/x")),
        ("ecs_task_definition", s("svc:1")),
    ]);
    let o = map_plain(&body);
    assert_eq!(
        o,
        json!({
            "container_id": "cid-1",
            "container_name": "/main-container",
            "ecs_cluster": "arn:aws:ecs:r:1:cluster/prod",
            "ecs_task_arn": "arn:aws:ecs:r:1:task/prod/x",
            "ecs_task_definition": "svc:1",
        })
    );
}
