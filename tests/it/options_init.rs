//! Option validation through the host's Init: a bad or missing option makes Init return 0
//! after exactly one error line naming the option, the value (never the key's) and what is
//! accepted.

use crate::support as common;

use common::{KEY, run_host, run_host_env};
use serde_json::{Value, json};

/// (options, option named in the line, fragment of what is accepted)
fn cases() -> Vec<(Value, &'static str, &'static str)> {
    let with = |k: &str, v: &str| json!({"apikey": KEY, k: v});
    vec![
        (json!({}), "apikey", "DD_API_KEY"),
        (json!({"apikey": "   "}), "apikey", "printable ASCII"),
        (
            json!({"apikey_file": "/nonexistent/dd.key"}),
            "apikey_file",
            "readable file",
        ),
        (
            with("site", "datadoghq.co"),
            "site",
            "ap1.datadoghq.com (ap1)",
        ),
        (with("site", "eu"), "site", "us2.ddog-gov.com (us2-fed)"),
        (with("endpoint", "intake:8080"), "endpoint", "http://"),
        (with("provider", "eks"), "provider", "ecs"),
        (
            with("include_tag_key", "maybe"),
            "include_tag_key",
            "true/on/yes",
        ),
        (with("compress", "lz4"), "compress", "zstd, gzip or none"),
        (
            with("compression_level", "20"),
            "compression_level",
            "1-9 for gzip",
        ),
        (
            with("compression_level", "fast"),
            "compression_level",
            "1-9 for gzip",
        ),
        (with("timeout", "soon"), "timeout", "30s"),
        (with("proxy", "socks5://p:1080"), "proxy", "HTTP proxy URL"),
        (
            with("tls_ca_file", "/nonexistent/ca.pem"),
            "tls_ca_file",
            "PEM",
        ),
        (with("max_concurrency", "0"), "max_concurrency", "1 to 64"),
        (
            with("resume_file", "/nonexistent/state"),
            "resume_file",
            "writable directory",
        ),
        (
            with("resume_file", "/proc/datadog.resume"),
            "resume_file",
            "writable directory",
        ),
    ]
}

#[test]
fn every_bad_option_fails_init_with_one_clear_line() {
    let cases = cases();
    let instances: Vec<Value> = cases
        .iter()
        .map(|(o, _, _)| json!({"options": o}))
        .collect();
    let run = run_host(&json!({"instances": instances, "flushes": [], "exit": "none"}));
    let codes = run.report["init"].as_array().unwrap();
    assert_eq!(codes.len(), cases.len());
    for (i, (opts, option, accepted)) in cases.iter().enumerate() {
        assert_eq!(codes[i], 0, "case {i} {opts} must fail Init");
        let name = format!("[output:datadog_logs:datadog_logs.{i}]");
        let lines: Vec<&str> = run.lines_with(&name);
        assert_eq!(lines.len(), 1, "case {i}: one line, got {lines:?}");
        let line = lines[0];
        assert!(line.contains("[error]"), "{line}");
        assert!(line.contains(&format!("'{option}'")), "case {i}: {line}");
        assert!(line.contains(accepted), "case {i}: {line}");
        if let Some((k, v)) = opts
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| *k != "apikey")
        {
            assert!(
                line.contains(v.as_str().unwrap()),
                "case {i} ({k}): value missing: {line}"
            );
        }
    }
    assert!(!run.stderr.contains(KEY), "the key leaked:\n{}", run.stderr);
}

#[test]
fn key_and_site_from_the_environment() {
    let mock = common::mock::MockIntake::start(Some(KEY));
    let run = run_host_env(
        &json!({"instances": [{"options": {"endpoint": mock.url}}],
                "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack"}]}),
        &[("DD_API_KEY", KEY)],
    );
    assert_eq!(run.report["init"], json!([1]));
    assert_eq!(run.final_codes(0), [1]);
    assert_eq!(mock.objects().len(), 1);
    let run = run_host_env(
        &json!({"instances": [{"options": {"apikey": KEY}}], "flushes": [], "exit": "ctx"}),
        &[("DD_SITE", "AP1")],
    );
    assert_eq!(run.report["init"], json!([1]));
    assert!(
        run.stderr
            .contains("https://http-intake.logs.ap1.datadoghq.com/api/v2/logs"),
        "{}",
        run.stderr
    );
    let run = run_host_env(
        &json!({"instances": [{"options": {"apikey": KEY}}], "flushes": [], "exit": "none"}),
        &[("DD_SITE", "mars")],
    );
    assert_eq!(run.report["init"], json!([0]));
    assert!(run.stderr.contains("DD_SITE") && run.stderr.contains("'mars'"));
}
