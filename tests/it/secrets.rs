//! The API key never appears in anything the plugin prints, on any error path: bad options,
//! 401, 403, 400, 413, transport errors, timeouts, and panics caught at the boundary.

use crate::support as common;

use common::mock::MockIntake;
use common::{KEY, opts, run_host, run_host_env};
use serde_json::json;

fn assert_no_key(what: &str, text: &str) {
    assert!(!text.contains(KEY), "{what}: the API key leaked:\n{text}");
    // Not even a long fragment of it.
    assert!(
        !text.contains(&KEY[..16]) && !text.contains(&KEY[16..]),
        "{what}: part of the key leaked"
    );
}

#[test]
fn the_key_appears_in_no_line_on_any_error_path() {
    let mock = MockIntake::start(Some(KEY));
    let dead = MockIntake::reserve_addr();
    let flush = |rules: serde_json::Value| {
        mock.set_rules(rules);
        let run = run_host(&json!({
            "instances": [{"options": opts(&mock.url, &[("timeout", "1s")])}],
            "flushes": [{"instance": 0, "fixture": "fb-4.2.8-forward-1.msgpack", "retries": 1, "retry_pause_ms": 10}],
        }));
        mock.reset();
        run
    };
    let mut outputs = Vec::new();
    for (what, rules) in [
        (
            "401",
            json!([{"status": 401, "body": format!("{{\"errors\":[\"bad key {KEY}\"]}}")}]),
        ),
        ("403", json!([{"status": 403}])),
        ("400", json!([{"status": 400, "poison": "bulk line 7\""}])),
        ("413", json!([{"status": 413, "over_bytes": 500_000}])),
        ("500", json!([{"status": 500, "times": 1}])),
        (
            "timeout",
            json!([{"delay_ms": 1500, "status": 503, "times": 1}]),
        ),
    ] {
        let run = flush(rules);
        assert!(!run.stderr.is_empty());
        outputs.push((what, run.stderr, run.report.to_string()));
    }
    // Transport error: nothing listens.
    let run = run_host(&json!({
        "instances": [{"options": opts(&format!("http://{dead}"), &[("timeout", "1s")])}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack"}],
    }));
    assert!(run.stderr.contains("connection error"));
    outputs.push(("transport", run.stderr, run.report.to_string()));
    // Bad options next to a valid key.
    let run = run_host(&json!({
        "instances": [{"options": {"apikey": KEY, "site": "nowhere", "compress": "lz4"}}],
        "flushes": [], "exit": "none",
    }));
    outputs.push(("options", run.stderr, run.report.to_string()));
    // A key with a blank inside is refused without echoing it.
    let run = run_host(&json!({
        "instances": [{"options": {"apikey": format!("{} {}", &KEY[..16], &KEY[16..])}}],
        "flushes": [], "exit": "none",
    }));
    assert_eq!(run.report["init"], json!([0]));
    outputs.push(("key with blank", run.stderr, run.report.to_string()));
    // A panic inside the flush, whose message carries the key, is caught and redacted.
    let run = run_host_env(
        &json!({
            "instances": [{"options": opts(&mock.url, &[])}],
            "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack"}],
        }),
        &[("FLUENT_BIT_DATADOG_FAULT", "panic")],
    );
    assert_eq!(run.final_codes(0), [2], "a caught panic asks for a retry");
    assert!(
        run.stderr.contains("panic: injected fault for key ***"),
        "{}",
        run.stderr
    );
    outputs.push(("panic", run.stderr, run.report.to_string()));

    for (what, stderr, report) in &outputs {
        assert_no_key(what, stderr);
        assert_no_key(what, report);
    }
    let all: String = outputs.iter().map(|o| o.1.as_str()).collect();
    for needle in [
        "HTTP 401",
        "HTTP 403",
        "refused as invalid (400)",
        "connection error",
        "invalid option 'site'",
    ] {
        assert!(all.contains(needle), "{needle} path not exercised");
    }
}

/// A proxy password given in `proxy` appears in no line: not when the value is refused, not
/// in the start-up lines when it is accepted.
#[test]
fn a_proxy_password_is_never_printed() {
    const PASSWORD: &str = "S3cretPr0xyPass";
    let run = run_host(&json!({
        "instances": [{"options": opts("http://127.0.0.1:9", &[("proxy", "http://alice:S3cretPr0xyPass@[bad host:99999")])}],
        "flushes": [], "exit": "none",
    }));
    assert_eq!(run.report["init"], json!([0]));
    assert!(
        run.stderr
            .contains("invalid option 'proxy' = 'http://***@[bad host:99999'"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    let run = run_host(&json!({
        "instances": [{"options": opts("http://127.0.0.1:9", &[("proxy", "http://alice:S3cretPr0xyPass@127.0.0.1:9")])}],
        "flushes": [], "exit": "none",
    }));
    assert_eq!(run.report["init"], json!([1]), "{}", run.stderr);
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
}

/// However short a key is, it is redacted (here from a 401 body that echoes it).
#[test]
fn a_short_key_is_redacted_too() {
    const SHORT: &str = "k3y";
    let mock = MockIntake::start(Some(SHORT));
    mock.set_rules(
        json!([{"status": 401, "body": format!("{{\"errors\":[\"bad key {SHORT}\"]}}")}]),
    );
    let mut options = opts(&mock.url, &[]);
    options["apikey"] = json!(SHORT);
    let run = run_host(&json!({
        "instances": [{"options": options}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack"}],
    }));
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
    assert!(run.stderr.contains("bad key ***"), "{}", run.stderr);
    assert!(!run.stderr.contains(SHORT), "{}", run.stderr);
}

/// A plain http:// endpoint that is not loopback would send the key in clear text: Init warns.
#[test]
fn plain_http_to_a_remote_endpoint_warns_at_init() {
    let warning = "unencrypted";
    let init = |endpoint: &str| {
        // Init only: no flush, so nothing is sent anywhere.
        run_host(&json!({
            "instances": [{"options": opts(endpoint, &[])}],
            "flushes": [], "exit": "none",
        }))
    };
    let run = init("http://relay.example:8080");
    assert_eq!(run.report["init"], json!([1]), "{}", run.stderr);
    assert!(
        run.stderr.contains("[ warn]")
            && run.stderr.contains("endpoint http://relay.example:8080")
            && run.stderr.contains(warning),
        "{}",
        run.stderr
    );
    for quiet in ["http://127.0.0.1:9", "https://relay.example:8443"] {
        let run = init(quiet);
        assert!(!run.stderr.contains(warning), "{quiet}: {}", run.stderr);
    }
}
