//! The shipped examples cannot drift from the code: the `datadog_logs` output options of
//! fluent-bit.conf, fluent-bit.yaml and examples/ecs-task-definition.json go through the
//! plugin's own Init in the conformance host and must be accepted.

use test_support as common;

use common::host::{Host, Props};
use std::collections::BTreeMap;

/// Options Fluent Bit's core consumes; they never reach a proxy plugin.
const CORE: [&str; 8] = [
    "name",
    "match",
    "match_regex",
    "alias",
    "log_level",
    "workers",
    "retry_limit",
    "storage.total_limit_size",
];

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Replaces `${VAR}` as a deployment would: the key with a test key, the endpoint with a
/// loopback URL (so no test ever reaches Datadog), anything else with an empty value.
fn expand(key: &str, value: &str) -> String {
    if !value.contains("${") {
        return value.to_string();
    }
    match key {
        "apikey" | "api_key" => common::KEY.to_string(),
        "endpoint" => "http://127.0.0.1:9".to_string(),
        _ => String::new(),
    }
}

fn plugin_options(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| !CORE.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = expand(&k, &v);
            (k, v)
        })
        .collect()
}

/// The classic format: `[OUTPUT]` sections whose `Name` is datadog_logs.
fn classic_outputs(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        if line.starts_with('[') {
            sections.push((
                line.trim_matches(['[', ']']).to_ascii_uppercase(),
                Vec::new(),
            ));
        } else if let (Some((_, kv)), Some((k, v))) =
            (sections.last_mut(), line.split_once(char::is_whitespace))
        {
            kv.push((k.to_string(), v.trim().to_string()));
        }
    }
    sections
        .into_iter()
        .filter(|(name, kv)| {
            name == "OUTPUT"
                && kv
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("name") && v == "datadog_logs")
        })
        .map(|(_, kv)| plugin_options(kv))
        .collect()
}

fn yaml_outputs(text: &str) -> Vec<BTreeMap<String, String>> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).expect("fluent-bit.yaml parses");
    let outputs = docs[0]["pipeline"]["outputs"]
        .as_vec()
        .expect("pipeline.outputs")
        .clone();
    outputs
        .iter()
        .filter(|o| o["name"].as_str() == Some("datadog_logs"))
        .map(|o| {
            let pairs = o.as_hash().unwrap().iter().map(|(k, v)| {
                let value = match v {
                    yaml_rust2::Yaml::String(s) => s.clone(),
                    yaml_rust2::Yaml::Integer(i) => i.to_string(),
                    yaml_rust2::Yaml::Boolean(b) => b.to_string(),
                    other => panic!("unexpected YAML value {other:?}"),
                };
                (k.as_str().unwrap().to_string(), value)
            });
            plugin_options(pairs)
        })
        .collect()
}

fn task_definition_outputs(text: &str) -> Vec<BTreeMap<String, String>> {
    let def: serde_json::Value = serde_json::from_str(text).expect("task definition is JSON");
    def["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["logConfiguration"]["logDriver"] == "awsfirelens")
        .map(|c| {
            let lc = &c["logConfiguration"];
            let mut pairs: Vec<(String, String)> = lc["options"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            // FireLens turns each secret into `<name> ${<name>_<index>}`.
            for s in lc["secretOptions"].as_array().into_iter().flatten() {
                pairs.push((
                    s["name"].as_str().unwrap().to_string(),
                    "${SECRET_0}".into(),
                ));
            }
            plugin_options(pairs)
        })
        .collect()
}

#[test]
fn shipped_configs_pass_the_plugins_own_option_validation() {
    let sources = [
        (
            "fluent-bit.conf",
            classic_outputs(&repo_file("fluent-bit.conf")),
        ),
        (
            "fluent-bit.yaml",
            yaml_outputs(&repo_file("fluent-bit.yaml")),
        ),
        (
            "examples/ecs-task-definition.json",
            task_definition_outputs(&repo_file("examples/ecs-task-definition.json")),
        ),
    ];
    let mut host = Host::load();
    host.register();
    for (name, outputs) in &sources {
        assert_eq!(outputs.len(), 1, "{name}: one datadog_logs output");
        let opts = &outputs[0];
        for k in opts.keys() {
            assert!(
                fluent_bit_datadog::options::KEYS.contains(&k.as_str()),
                "{name}: option {k} is not one the plugin reads"
            );
        }
        assert!(opts.contains_key("apikey"), "{name}: no apikey");
        // An empty endpoint would mean site auto-detection over the network: never in tests.
        assert!(opts.contains_key("site") || opts.get("endpoint").is_some_and(|e| !e.is_empty()));
        let pairs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, ctx) = host.init(Props::new(&pairs));
        assert_eq!(code, 1, "{name}: Init refused {opts:?}");
        host.exit_ctx(ctx);
    }
    // The configs describe the same pipeline.
    assert_eq!(
        sources[0].1, sources[1].1,
        "fluent-bit.conf and fluent-bit.yaml differ"
    );
    let task = &sources[2].1[0];
    assert_eq!(task["site"], "ap1.datadoghq.com");
    assert_eq!(task["provider"], "ecs");
}
