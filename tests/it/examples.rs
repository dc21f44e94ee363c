//! The shipped examples cannot drift from the code: every key of a `datadog_logs` output in
//! fluent-bit.conf, fluent-bit.yaml, docker/*.conf and examples/ecs-task-definition.json is an
//! option of the plugin's table (`options::OPTIONS`) or a Fluent Bit core key, and the options
//! go through the plugin's own Init in the conformance host and must be accepted.
//! (scripts/check-compose.py checks the container wiring, which needs Python and PyYAML.)

use crate::support as common;

use common::host::Props;
use std::collections::BTreeMap;

/// Output keys Fluent Bit's core consumes itself (`flb_output_set_property`); they never
/// reach a proxy plugin.
const CORE: [&str; 13] = [
    "name",
    "match",
    "match_regex",
    "alias",
    "log_level",
    "log_suppress_interval",
    "host",
    "port",
    "ipv6",
    "retry_limit",
    "workers",
    "storage.total_limit_size",
    "tls",
];
/// Prefixes of core keys.
const CORE_PREFIXES: [&str; 2] = ["tls.", "net."];
/// Core keys a `datadog_logs` output must not use: they would silently do nothing.
const USELESS_CORE: [(&str, &str); 3] = [
    ("host", "use `site` or `endpoint`"),
    ("port", "use `endpoint`"),
    (
        "tls",
        "use `endpoint` with https:// (TLS is always on for Datadog sites)",
    ),
];

fn is_core(key: &str) -> bool {
    CORE.contains(&key) || CORE_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Fails unless `key` (lowercase) of a `datadog_logs` output in `source` is a plugin option
/// (name or alias) or a core key that does something for this plugin.
fn check_key(source: &str, key: &str) {
    if let Some((_, instead)) = USELESS_CORE.iter().find(|(k, _)| *k == key) {
        panic!(
            "{source}: `{key}` is consumed by Fluent Bit's core and never reaches datadog_logs: {instead}"
        );
    }
    let option = fluent_bit_datadog::internals::options::option(key);
    assert!(
        is_core(key) || option.is_some_and(|o| o.names().any(|n| n == key) && !o.test_only),
        "{source}: `{key}` is neither a datadog_logs option (src/config/options.rs OPTIONS) nor a Fluent Bit core key"
    );
}

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

fn plugin_options(
    source: &str,
    pairs: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .inspect(|(k, _)| check_key(source, k))
        .filter(|(k, _)| !is_core(k))
        .map(|(k, v)| {
            let v = expand(&k, &v);
            (k, v)
        })
        .collect()
}

/// The classic format: `[OUTPUT]` sections whose `Name` is datadog_logs.
fn classic_outputs(source: &str, text: &str) -> Vec<BTreeMap<String, String>> {
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
        .map(|(_, kv)| plugin_options(source, kv))
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
            plugin_options("fluent-bit.yaml", pairs)
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
            plugin_options("examples/ecs-task-definition.json", pairs)
        })
        .collect()
}

#[test]
fn docker_confs_use_only_known_keys() {
    let dir = format!("{}/docker", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            let name = format!("docker/{}", path.file_name().unwrap().to_string_lossy());
            // Checks the keys of any datadog_logs output (FireLens generates the one in use).
            classic_outputs(&name, &repo_file(&name));
            seen += 1;
        }
    }
    assert!(seen >= 2, "docker/*.conf not found");
}

#[test]
fn unknown_and_useless_keys_are_refused() {
    let conf = "[OUTPUT]\n    Name datadog_logs\n    Match *\n    apikey k\n    api_key k\n    Workers 1\n    tls.verify off\n";
    assert_eq!(classic_outputs("t", conf).len(), 1);
    for bad in ["dd_typo x", "Host h", "site_probe a=http://x", "tls on"] {
        let text = format!("{conf}    {bad}\n");
        let r = std::panic::catch_unwind(|| classic_outputs("t", &text));
        assert!(r.is_err(), "{bad} was accepted");
    }
}

#[test]
fn shipped_configs_pass_the_plugins_own_option_validation() {
    let sources = [
        (
            "fluent-bit.conf",
            classic_outputs("fluent-bit.conf", &repo_file("fluent-bit.conf")),
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
    let mut host = common::load_plugin();
    host.register();
    for (name, outputs) in &sources {
        assert_eq!(outputs.len(), 1, "{name}: one datadog_logs output");
        let opts = &outputs[0];
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
