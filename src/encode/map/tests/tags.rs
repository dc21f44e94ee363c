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
            // Datadog Agent's (TAG is no FireLens tag: no ecs_container_name).
            "aws_account:123456789012",
            "ecs_cluster_name:prod",
            "cluster_arn:arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod",
            "task_definition_arn:arn:aws:ecs:ap-northeast-1:123456789012:task-definition/your-service:42",
        ]
    );
    // The remapped attributes leave the object.
    assert_eq!(o.as_object().unwrap().len(), 3, "{o}");
    assert_eq!(o["source"], "stdout");
    assert_eq!(o["ddsource"], "ecs");

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
            "ecs_cluster_name:plain",
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
            "aws_account:1",
            // Neither an ARN nor a name to build one from: no cluster_arn.
            "ecs_cluster_name:c/cluster/d",
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
        json!({"ddsource": "ecs", "ecs_cluster": "", "container_name": 5, "container_id": null,
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

// ---------------------------------------------------------------------------------------------
// Datadog Agent's ECS tags, from a FireLens record and its Fluent Bit tag

const TASK_ID: &str = "cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e";
/// The tag FireLens gives the records of container `main-container` (as in the fixtures).
const FIRELENS_TAG: &str = "main-container-firelens-cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e";

/// A FireLens record of task `task_arn` in cluster `cluster`, as in the fixtures.
fn firelens_record(cluster: &str, task_arn: &str) -> M {
    obj(&[
        ("container_id", s("cid-1")),
        ("container_name", s("main-container")),
        ("ecs_cluster", s(cluster)),
        ("ecs_task_arn", s(task_arn)),
        ("ecs_task_definition", s("your-service:42")),
        ("source", s("stdout")),
        ("log", s("line")),
    ])
}

/// Maps one record of Fluent Bit tag `tag` with `provider ecs`; returns the object.
fn map_ecs(tag: &str, body: &M) -> J {
    let m = Mapper::new(&cfg(&[("provider", "ecs"), ("json_date_key", "off")]));
    let body = enc(body);
    let rec = Record {
        time: T0,
        meta: &[],
        body: &body,
    };
    let mut out = Vec::new();
    m.write(&rec, tag, &mut Scratch::default(), &mut out);
    parse_checked(&out)
}

/// The tags of `o` that only the Agent's names give (not Fluent Bit's built-in output's).
fn agent_only(o: &J) -> Vec<&str> {
    let agent = [
        "aws_account:",
        "ecs_cluster_name:",
        "cluster_arn:",
        "ecs_container_name:",
        "task_definition_arn:",
    ];
    (tags(o).into_iter())
        .filter(|t| agent.iter().any(|a| t.starts_with(a)))
        .collect()
}

#[test]
fn ecs_agent_tags_from_a_firelens_record() {
    let arn = format!("arn:aws:ecs:ap-northeast-1:123456789012:task/prod/{TASK_ID}");
    let cluster = "arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod";
    let o = map_ecs(FIRELENS_TAG, &firelens_record(cluster, &arn));
    let want = [
        "container_id:cid-1",
        "container_name:main-container",
        "cluster_name:prod",
        &format!("task_arn:{arn}"),
        "region:ap-northeast-1",
        &format!("task_id:prod/{TASK_ID}"),
        "task_family:your-service",
        "task_version:42",
        "aws_account:123456789012",
        "ecs_cluster_name:prod",
        "cluster_arn:arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod",
        "ecs_container_name:main-container",
        "task_definition_arn:arn:aws:ecs:ap-northeast-1:123456789012:task-definition/your-service:42",
    ];
    assert_eq!(tags(&o), want, "{o}");
    assert_eq!(o["ddsource"], "ecs");
    // The cluster as a bare name (what some setups give): the same cluster_arn, built.
    assert_eq!(
        tags(&map_ecs(FIRELENS_TAG, &firelens_record("prod", &arn))),
        want
    );
    // The task ARN's old form (no cluster in it): the task id is still its last part.
    let old = format!("arn:aws:ecs:ap-northeast-1:123456789012:task/{TASK_ID}");
    let o = map_ecs(FIRELENS_TAG, &firelens_record("prod", &old));
    assert!(
        tags(&o).contains(&"ecs_container_name:main-container"),
        "{o}"
    );
}

#[test]
fn ecs_arns_of_any_partition() {
    for (partition, region) in [("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1")] {
        let arn = format!("arn:{partition}:ecs:{region}:123456789012:task/prod/{TASK_ID}");
        let o = map_ecs(FIRELENS_TAG, &firelens_record("prod", &arn));
        assert!(
            tags(&o).contains(&format!("region:{region}").as_str()),
            "{o}"
        );
        assert_eq!(
            agent_only(&o),
            [
                "aws_account:123456789012".to_string(),
                "ecs_cluster_name:prod".into(),
                format!("cluster_arn:arn:{partition}:ecs:{region}:123456789012:cluster/prod"),
                "ecs_container_name:main-container".into(),
                format!(
                    "task_definition_arn:arn:{partition}:ecs:{region}:123456789012:task-definition/your-service:42"
                ),
            ],
            "{o}"
        );
    }
    // Not an ECS ARN: nothing is read from it (no region, no account, no ARN built).
    for arn in [
        format!("arn:aws:s3:ap-northeast-1:123456789012:task/prod/{TASK_ID}"),
        format!("arn:aws:ecs::123456789012:task/prod/{TASK_ID}"),
        format!("arn:aws:ecs:ap-northeast-1::task/prod/{TASK_ID}"),
        "arn:aws:ecs:ap-northeast-1:123456789012".to_string(),
    ] {
        let o = map_ecs(FIRELENS_TAG, &firelens_record("prod", &arn));
        assert!(!tags(&o).iter().any(|t| t.starts_with("region:")), "{o}");
        assert_eq!(agent_only(&o), ["ecs_cluster_name:prod"], "{o}");
    }
}

#[test]
fn ecs_container_name_only_from_a_firelens_tag_of_the_task() {
    let arn = format!("arn:aws:ecs:ap-northeast-1:123456789012:task/prod/{TASK_ID}");
    let body = firelens_record("prod", &arn);
    let name = |tag: &str| {
        let o = map_ecs(tag, &body);
        (tags(&o).into_iter())
            .find_map(|t| t.strip_prefix("ecs_container_name:"))
            .map(str::to_string)
    };
    assert_eq!(name(FIRELENS_TAG).as_deref(), Some("main-container"));
    // A container whose own name holds `-firelens-`.
    assert_eq!(
        name(&format!("a-firelens-b-firelens-{TASK_ID}")).as_deref(),
        Some("a-firelens-b")
    );
    // A task ARN that ends in `/`: no task id to match.
    let o = map_ecs(
        "main-container-firelens-",
        &firelens_record("prod", "arn:aws:ecs:ap-northeast-1:123456789012:task/prod/"),
    );
    assert!(tags(&o).contains(&"aws_account:123456789012"), "{o}");
    assert!(
        !tags(&o)
            .iter()
            .any(|t| t.starts_with("ecs_container_name:")),
        "{o}"
    );
    for tag in [
        "app.firelens",
        "main-container",
        // Another task's id, or none.
        "main-container-firelens-0123456789abcdef0123456789abcdef",
        "main-container-firelens-",
        // No container name before it.
        &format!("-firelens-{TASK_ID}"),
        &format!("main-container-{TASK_ID}"),
    ] {
        assert_eq!(name(tag), None, "{tag}");
    }
}

#[test]
fn task_definition_arn_only_from_family_and_revision() {
    let arn = format!("arn:aws:ecs:ap-northeast-1:123456789012:task/prod/{TASK_ID}");
    for (def, want) in [
        ("svc:7", Some("svc:7")),
        ("svc", None),
        ("svc:", None),
        (":7", None),
        ("svc:latest", None),
        ("a/b:7", None),
    ] {
        let mut body = firelens_record("prod", &arn);
        if let M::Map(pairs) = &mut body {
            pairs[4].1 = s(def);
        }
        let o = map_ecs(FIRELENS_TAG, &body);
        let got = (tags(&o).into_iter()).find_map(|t| {
            t.strip_prefix(
                "task_definition_arn:arn:aws:ecs:ap-northeast-1:123456789012:task-definition/",
            )
        });
        assert_eq!(got, want, "{def}: {o}");
    }
}

#[test]
fn one_scratch_gives_each_tag_its_own_ecs_container_name() {
    // Chunks of two containers of one task, the same ECS attributes, through one Scratch:
    // the tag is one of the tag set's inputs, so neither the kept tags nor the plan made for
    // one container's records serve the other's.
    let m = Mapper::new(&cfg(&[("provider", "ecs")]));
    let arn = format!("arn:aws:ecs:ap-northeast-1:123456789012:task/prod/{TASK_ID}");
    let body = enc(&firelens_record("prod", &arn));
    let rec = Record {
        time: T0,
        meta: &[],
        body: &body,
    };
    let web = format!("web-firelens-{TASK_ID}");
    let worker = format!("worker-firelens-{TASK_ID}");
    let mut shared = Scratch::default();
    for (chunk, tag) in [&web, &worker, &web, &worker].into_iter().enumerate() {
        let want = format!("ecs_container_name:{}", &tag[..tag.find('-').unwrap_or(0)]);
        for n in 0..3 {
            let (mut reused, mut fresh) = (Vec::new(), Vec::new());
            m.write(&rec, tag, &mut shared, &mut reused);
            m.write(&rec, tag, &mut Scratch::default(), &mut fresh);
            assert_eq!(reused, fresh, "chunk {chunk} record {n}");
            let o = parse_checked(&reused);
            assert!(tags(&o).contains(&want.as_str()), "chunk {chunk}: {o}");
        }
    }
    // The plans still serve: a container's first chunk makes its tags (record 0), then its
    // plan (record 1), which writes record 2; its next chunk is all written from that plan.
    assert_eq!(shared.cache.hits, 1 + 1 + 3 + 3);
}

#[test]
fn provider_ecs_sets_ddsource_ecs_unless_told_otherwise() {
    let body = obj(&[("container_id", s("c")), ("log", s("x"))]);
    let source = |opts: &[(&str, &str)], body: &M| map_with(&cfg(opts), body)["ddsource"].clone();
    assert_eq!(source(&[("provider", "ecs")], &body), "ecs");
    // Also on a record without FireLens metadata: the instance's setting, not the record's.
    assert_eq!(
        source(&[("provider", "ecs")], &obj(&[("log", s("x"))])),
        "ecs"
    );
    // An explicit dd_source wins (it also picks the log pipeline).
    assert_eq!(
        source(&[("provider", "ecs"), ("dd_source", "nodejs")], &body),
        "nodejs"
    );
    // The record's own ddsource wins over both.
    let own = obj(&[("ddsource", s("java")), ("container_id", s("c"))]);
    assert_eq!(source(&[("provider", "ecs")], &own), "java");
    // No provider, no dd_source: none.
    assert_eq!(source(&[], &body), J::Null);
}
