//! Tests of the mock Datadog intake itself, over real HTTP on loopback.

use test_support::mock;

use std::io::Write;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use mock::MockIntake;
use serde_json::{Value, json};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn batch(n: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({ "message": format!("line {i}"), "i": i }))
        .collect();
    serde_json::to_vec(&items).unwrap()
}

/// Posts an uncompressed JSON body with the right key; returns the status.
fn post_json(mock: &MockIntake, body: &str) -> u16 {
    mock.post_logs(body.as_bytes(), None, Some(KEY)).0
}

fn statuses(mock: &MockIntake) -> Value {
    mock.received()["statuses"].clone()
}

#[test]
fn accepts_gzip_and_records_objects() {
    let mock = MockIntake::start(Some(KEY));
    let payload = br#"[{"message":"hello","service":"svc"},{"message":"world","n":2}]"#;
    let wire = gzip(payload);
    let (status, body) = mock.post_logs_with(
        &wire,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("DD-API-KEY", KEY),
            ("User-Agent", "fluent-bit-datadog/test"),
            ("DD-EVP-ORIGIN", "fluent-bit"),
            ("DD-EVP-ORIGIN-VERSION", "1.2.3"),
        ],
    );
    assert_eq!((status, body.as_str()), (202, "{}"));

    let objects = mock.objects();
    assert_eq!(
        objects,
        vec![
            json!({"message":"hello","service":"svc"}),
            json!({"message":"world","n":2})
        ]
    );
    let received = mock.received();
    assert_eq!(received["requests"], 1);
    assert_eq!(received["accepted_requests"], 1);
    assert_eq!(received["statuses"], json!({"202": 1}));
    let entry = &received["log"][0];
    assert_eq!(entry["seq"], 1);
    assert_eq!(entry["status"], 202);
    assert_eq!(entry["objects"], 2);
    assert_eq!(entry["encoding"], "gzip");
    assert_eq!(entry["bytes_wire"], wire.len());
    assert_eq!(entry["bytes_json"], payload.len());
    assert_eq!(entry["api_key_ok"], true);
    assert_eq!(entry["injected"], false);
    assert_eq!(entry["headers"]["user-agent"], "fluent-bit-datadog/test");
    assert_eq!(entry["headers"]["dd-evp-origin"], "fluent-bit");
    assert_eq!(entry["headers"]["dd-evp-origin-version"], "1.2.3");
    assert_eq!(entry["headers"]["content-type"], "application/json");
    assert!(
        !received.to_string().contains(KEY),
        "API key leaked: {received}"
    );
}

#[test]
fn accepts_identity_and_deflate() {
    let mock = MockIntake::start(None);
    assert_eq!(mock.post_logs(br#"[{"a":1}]"#, None, Some("k")).0, 202);
    assert_eq!(
        mock.post_logs(br#"[{"a":2}]"#, Some("identity"), Some("k"))
            .0,
        202
    );

    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(br#"[{"a":3}]"#).unwrap();
    assert_eq!(
        mock.post_logs(&zlib.finish().unwrap(), Some("deflate"), Some("k"))
            .0,
        202
    );

    let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
    raw.write_all(br#"[{"a":4}]"#).unwrap();
    assert_eq!(
        mock.post_logs(&raw.finish().unwrap(), Some("deflate"), Some("k"))
            .0,
        202
    );

    assert_eq!(mock.post_logs(&gzip(b"[]"), Some("GZIP"), Some("k")).0, 202);

    let a: Vec<Value> = mock.objects().iter().map(|o| o["a"].clone()).collect();
    assert_eq!(a, vec![json!(1), json!(2), json!(3), json!(4)]);
    let encodings: Vec<Value> = mock.log().iter().map(|e| e["encoding"].clone()).collect();
    assert_eq!(
        encodings,
        vec![
            json!("identity"),
            json!("identity"),
            json!("deflate"),
            json!("deflate"),
            json!("gzip")
        ]
    );
}

#[test]
fn api_key_handling() {
    let mock = MockIntake::start(Some(KEY));
    let body = br#"[{"m":1}]"#;
    assert_eq!(mock.post_logs(body, None, None).0, 401);
    assert_eq!(mock.post_logs(body, None, Some("")).0, 401);
    let (status, resp) = mock.post_logs(body, None, Some("wrong"));
    assert_eq!(
        (status, resp.as_str()),
        (403, r#"{"errors":["Forbidden"]}"#)
    );
    assert_eq!(mock.post_logs(body, None, Some(KEY)).0, 202);
    assert_eq!(statuses(&mock), json!({"202": 1, "401": 2, "403": 1}));
    assert_eq!(mock.objects().len(), 1);
    let ok: Vec<Value> = mock.log().iter().map(|e| e["api_key_ok"].clone()).collect();
    assert_eq!(
        ok,
        vec![json!(false), json!(false), json!(false), json!(true)]
    );

    // Without a configured key, any non-empty key is accepted.
    let open = MockIntake::start(None);
    assert_eq!(open.post_logs(body, None, Some("anything")).0, 202);
    assert_eq!(open.post_logs(body, None, None).0, 401);
}

#[test]
fn validate_endpoint() {
    let mock = MockIntake::start(Some(KEY));
    assert_eq!(
        mock.validate(Some(KEY)),
        (200, r#"{"valid":true}"#.to_string())
    );
    assert_eq!(
        mock.validate(Some("nope")),
        (403, r#"{"errors":["Forbidden"]}"#.to_string())
    );
    assert_eq!(mock.validate(None).0, 403);

    mock.set_rules(json!([{"path": "/api/v1/validate", "status": 503, "times": 1}]));
    assert_eq!(mock.validate(Some(KEY)).0, 503);
    assert_eq!(mock.validate(Some(KEY)).0, 200);
    let received = mock.received();
    assert_eq!(received["validate_requests"], 5);
    assert_eq!(received["requests"], 0, "validate is not a log request");
}

#[test]
fn too_many_entries_is_413() {
    let mock = MockIntake::start(None);
    assert_eq!(mock.post_logs(&batch(1001), None, Some("k")).0, 413);
    assert_eq!(
        mock.post_logs(&gzip(&batch(1000)), Some("gzip"), Some("k"))
            .0,
        202
    );
    assert_eq!(mock.objects().len(), 1000);
    assert_eq!(statuses(&mock), json!({"202": 1, "413": 1}));
}

#[test]
fn too_large_is_413() {
    let mock = MockIntake::start(None);
    // Plain body one byte over the limit.
    let mut plain = b"[{\"m\":\"".to_vec();
    plain.resize(5_000_001 - 3, b'x');
    plain.extend_from_slice(b"\"}]");
    assert_eq!(plain.len(), 5_000_001);
    assert_eq!(mock.post_logs(&plain, None, Some("k")).0, 413);

    // A small gzip body that inflates to 50 MB: rejected without inflating it all.
    let mut huge = b"[{\"m\":\"".to_vec();
    huge.resize(50_000_000, b'x');
    huge.extend_from_slice(b"\"}]");
    let wire = gzip(&huge);
    assert!(wire.len() < 200_000);
    assert_eq!(mock.post_logs(&wire, Some("gzip"), Some("k")).0, 413);

    // Exactly at the limit is fine.
    plain.truncate(5_000_000 - 3);
    plain.extend_from_slice(b"\"}]");
    assert_eq!(
        mock.post_logs(&gzip(&plain), Some("gzip"), Some("k")).0,
        202
    );
    assert_eq!(statuses(&mock), json!({"202": 1, "413": 2}));
    assert_eq!(mock.objects().len(), 1);
}

#[test]
fn invalid_bodies_are_rejected() {
    let mock = MockIntake::start(None);
    for bad in [
        "not json",
        "",
        r#"{"message":"an object, not an array"}"#,
        "[1, 2]",
        r#"[{"a":1}, "x"]"#,
        r#"[{"a":1}] trailing"#,
        r#"[{"a":1}"#,
    ] {
        let (status, body) = mock.post_logs(bad.as_bytes(), None, Some("k"));
        assert_eq!(status, 400, "body {bad:?}: {body}");
        let v: Value = serde_json::from_str(&body).expect("error body is JSON");
        assert!(v["errors"][0].is_string(), "{body}");
    }
    // Duplicate keys, at the top level of an entry or nested.
    let (status, body) = mock.post_logs(br#"[{"a":1},{"m":"x","m":"y"}]"#, None, Some("k"));
    assert_eq!(status, 400);
    assert!(body.contains("duplicate key"), "{body}");
    assert_eq!(post_json(&mock, r#"[{"a":{"b":1,"b":2}}]"#), 400);
    // The same key in different objects is fine.
    assert_eq!(post_json(&mock, r#"[{"m":"x"},{"m":"y"}]"#), 202);

    assert_eq!(mock.post_logs(b"[]", Some("br"), Some("k")).0, 415);
    assert_eq!(
        mock.post_logs(b"definitely not gzip", Some("gzip"), Some("k"))
            .0,
        400
    );
    let wire = gzip(br#"[{"a":1}]"#);
    assert_eq!(
        mock.post_logs(&wire[..wire.len() / 2], Some("gzip"), Some("k"))
            .0,
        400
    );
    assert_eq!(mock.objects(), vec![json!({"m":"x"}), json!({"m":"y"})]);
}

#[test]
fn rule_times() {
    let mock = MockIntake::start(None);
    mock.set_rules(json!([{"status": 500, "times": 2, "body": "{\"errors\":[\"boom\"]}"}]));
    let (status, body) = mock.post_logs(br#"[{"n":1}]"#, None, Some("k"));
    assert_eq!((status, body.as_str()), (500, r#"{"errors":["boom"]}"#));
    assert_eq!(mock.post_logs(br#"[{"n":2}]"#, None, Some("k")).0, 500);
    assert_eq!(mock.post_logs(br#"[{"n":3}]"#, None, Some("k")).0, 202);
    assert_eq!(mock.post_logs(br#"[{"n":4}]"#, None, Some("k")).0, 202);
    assert_eq!(mock.objects(), vec![json!({"n":3}), json!({"n":4})]);
    let received = mock.received();
    assert_eq!(received["statuses"], json!({"202": 2, "500": 2}));
    assert_eq!(received["requests"], 4);
    assert_eq!(received["accepted_requests"], 2);
    assert_eq!(received["log"][0]["injected"], true);
    assert_eq!(received["log"][2]["injected"], false);
}

#[test]
fn rule_default_body_and_order() {
    let mock = MockIntake::start(None);
    // First matching rule wins; a used-up rule falls through to the next.
    mock.set_rules(json!({"rules": [{"status": 429, "times": 1}, {"status": 503, "times": 1}]}));
    let (status, body) = mock.post_logs(b"[]", None, Some("k"));
    assert_eq!((status, body.as_str()), (429, r#"{"errors":["injected"]}"#));
    assert_eq!(mock.post_logs(b"[]", None, Some("k")).0, 503);
    assert_eq!(mock.post_logs(b"[]", None, Some("k")).0, 202);
}

#[test]
fn rule_every_and_after() {
    let mock = MockIntake::start(None);
    mock.set_rules(json!([{"status": 503, "every": 3}]));
    let got: Vec<u16> = (0..7).map(|_| post_json(&mock, "[]")).collect();
    assert_eq!(got, vec![202, 202, 503, 202, 202, 503, 202]);

    mock.reset();
    mock.set_rules(json!([{"status": 500, "after": 2, "times": 2}]));
    let got: Vec<u16> = (0..5).map(|_| post_json(&mock, "[]")).collect();
    assert_eq!(got, vec![202, 202, 500, 500, 202]);
}

#[test]
fn rule_over_bytes() {
    let mock = MockIntake::start(None);
    mock.set_rules(json!([{"status": 413, "over_bytes": 100}]));
    assert_eq!(post_json(&mock, r#"[{"m":"small"}]"#), 202);
    let big = format!(r#"[{{"m":"{}"}}]"#, "y".repeat(200));
    assert_eq!(post_json(&mock, &big), 413);
    // Measured on the decompressed body, not the wire size.
    let wire = gzip(big.as_bytes());
    assert!(wire.len() < 100);
    assert_eq!(mock.post_logs(&wire, Some("gzip"), Some("k")).0, 413);
    assert_eq!(mock.objects().len(), 1);
}

#[test]
fn rule_poison() {
    let mock = MockIntake::start(None);
    mock.set_rules(json!([{"status": 400, "poison": "POISON"}]));
    assert_eq!(post_json(&mock, r#"[{"m":"fine"}]"#), 202);
    assert_eq!(
        post_json(&mock, r#"[{"m":"fine"},{"m":"POISON pill"}]"#),
        400
    );
    let wire = gzip(br#"[{"m":"POISON"}]"#);
    assert_eq!(mock.post_logs(&wire, Some("gzip"), Some("k")).0, 400);
    assert_eq!(post_json(&mock, r#"[{"m":"fine again"}]"#), 202);
    assert_eq!(
        mock.objects(),
        vec![json!({"m":"fine"}), json!({"m":"fine again"})]
    );
}

#[test]
fn rule_delay_does_not_block_other_requests() {
    let mock = MockIntake::start(None);
    mock.set_rules(json!([{"delay_ms": 1500, "poison": "SLOW"}]));
    let url = mock.url.clone();
    let slow = thread::spawn(move || {
        let agent = mock::http_agent();
        let start = Instant::now();
        let mut resp = agent
            .post(format!("{url}/api/v2/logs"))
            .header("DD-API-KEY", "k")
            .send(r#"[{"m":"SLOW"}]"#)
            .unwrap();
        let _ = resp.body_mut().read_to_string();
        (resp.status().as_u16(), start.elapsed())
    });
    thread::sleep(Duration::from_millis(150));
    let start = Instant::now();
    assert_eq!(post_json(&mock, r#"[{"m":"fast"}]"#), 202);
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "fast request was blocked"
    );
    let (status, elapsed) = slow.join().unwrap();
    assert_eq!(status, 202, "delay without status processes normally");
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(
        mock.objects(),
        vec![json!({"m":"fast"}), json!({"m":"SLOW"})]
    );

    // delay + status
    mock.set_rules(json!([{"delay_ms": 300, "status": 504, "times": 1}]));
    let start = Instant::now();
    assert_eq!(post_json(&mock, "[]"), 504);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn bad_rules_are_rejected() {
    let mock = MockIntake::start(None);
    let agent = mock::http_agent();
    for bad in [
        r#"{"rules":[{"stauts":500}]}"#,
        r#"{"rules":[{"every":0}]}"#,
        r#"{"rules":[{"status":42}]}"#,
        r#"{"rules":[{"path":"/elsewhere"}]}"#,
        r#"{"rules":{}}"#,
        "nope",
    ] {
        let mut resp = agent
            .post(format!("{}/mock/rules", mock.url))
            .send(bad)
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
        let _ = resp.body_mut().read_to_string();
    }
}

#[test]
fn reset_clears_everything() {
    let mock = MockIntake::start(None);
    assert_eq!(post_json(&mock, r#"[{"a":1}]"#), 202);
    mock.set_rules(json!([{"status": 500}]));
    assert_eq!(post_json(&mock, r#"[{"a":2}]"#), 500);
    mock.reset();
    let received = mock.received();
    assert_eq!(received["requests"], 0);
    assert_eq!(received["accepted_requests"], 0);
    assert_eq!(received["objects"], json!([]));
    assert_eq!(received["log"], json!([]));
    assert_eq!(received["statuses"], json!({}));
    // Rules are gone and sequence numbers restart at 1.
    assert_eq!(post_json(&mock, r#"[{"a":3}]"#), 202);
    assert_eq!(mock.log()[0]["seq"], 1);
    assert_eq!(mock.objects(), vec![json!({"a":3})]);
}

#[test]
fn keep_alive_reuses_connection() {
    let mock = MockIntake::start(None);
    for _ in 0..5 {
        assert_eq!(post_json(&mock, r#"[{"a":1}]"#), 202);
    }
    assert_eq!(mock.post_logs(b"[]", None, None).0, 401);
    assert_eq!(post_json(&mock, "[]"), 202);
    let peers: Vec<Value> = mock.log().iter().map(|e| e["peer"].clone()).collect();
    assert!(
        peers.iter().all(|p| p == &peers[0] && p.is_string()),
        "{peers:?}"
    );
}

#[test]
fn many_keep_alive_connections_at_once() {
    // Twelve clients connect at the same moment and each sends two slow requests over one
    // keep-alive connection, holding it open until all are done (as a connection pool does):
    // every request is served promptly, none waits for another connection to close.
    const CLIENTS: usize = 12;
    let mock = MockIntake::start(None);
    mock.set_rules(json!([{"delay_ms": 200}]));
    let wire = std::sync::Arc::new(gzip(&batch(1000)));
    let start = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let done = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, wire) = (mock.url.clone(), wire.clone());
            let (start, done) = (start.clone(), done.clone());
            thread::spawn(move || {
                // Bounded, so a starved request fails the test instead of hanging it.
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                start.wait();
                let results: Vec<_> = (0..2)
                    .map(|_| {
                        let t = Instant::now();
                        let result = agent
                            .post(format!("{url}/api/v2/logs"))
                            .header("DD-API-KEY", "k")
                            .header("Content-Encoding", "gzip")
                            .header("Content-Type", "application/json")
                            .send(&wire[..])
                            .and_then(|mut resp| {
                                let body = resp.body_mut().read_to_string()?;
                                Ok((resp.status().as_u16(), body))
                            })
                            .map_err(|e| e.to_string());
                        (result, t.elapsed())
                    })
                    .collect();
                done.wait();
                drop(agent);
                results
            })
        })
        .collect();
    for client in clients {
        for (result, elapsed) in client.join().unwrap() {
            assert_eq!(result, Ok((202, "{}".to_string())), "after {elapsed:?}");
            assert!(elapsed < Duration::from_secs(5), "request took {elapsed:?}");
        }
    }
    let received = mock.received();
    assert_eq!(received["statuses"], json!({"202": 2 * CLIENTS}));
    assert_eq!(
        received["objects"].as_array().unwrap().len(),
        2 * CLIENTS * 1000
    );
    let peers: std::collections::HashSet<&str> = received["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["peer"].as_str().unwrap())
        .collect();
    assert_eq!(
        peers.len(),
        CLIENTS,
        "one keep-alive connection per client: {peers:?}"
    );
}

#[test]
fn routing_errors() {
    let mock = MockIntake::start(None);
    let agent = mock::http_agent();
    let mut resp = agent.get(format!("{}/nowhere", mock.url)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let _ = resp.body_mut().read_to_string();
    let mut resp = agent
        .get(format!("{}/api/v2/logs", mock.url))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let _ = resp.body_mut().read_to_string();
    // Query strings are ignored for routing.
    let mut resp = agent
        .post(format!("{}/api/v2/logs?ddsource=test", mock.url))
        .header("DD-API-KEY", "k")
        .send("[]")
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let _ = resp.body_mut().read_to_string();
}

#[test]
fn start_on_reserved_address() {
    let addr = MockIntake::reserve_addr();
    let agent = mock::http_agent();
    assert!(
        agent
            .get(format!("http://{addr}/mock/health"))
            .call()
            .is_err(),
        "nothing listens yet"
    );
    let mock = MockIntake::start_on(&addr, Some(KEY));
    assert_eq!(mock.addr, addr);
    assert_eq!(mock.url, format!("http://{addr}"));
    assert_eq!(post_json(&mock, r#"[{"x":1}]"#), 202);
    assert_eq!(
        mock.wait_for_objects(1, Duration::from_secs(5)),
        vec![json!({"x":1})]
    );
}

#[test]
fn stop_refuses_connections() {
    let mut mock = MockIntake::start(None);
    assert_eq!(post_json(&mock, "[]"), 202);
    mock.stop();
    let agent = mock::http_agent();
    assert!(
        agent
            .get(format!("{}/mock/health", mock.url))
            .call()
            .is_err()
    );
}

#[test]
fn print_mode_and_cli() {
    let bin = env!("CARGO_BIN_EXE_mock_intake");
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--addr"));
    let out = Command::new(bin).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // --print writes each accepted object as a JSON line after the banner.
    let mut child = Command::new(bin)
        .args(["--addr", "127.0.0.1:0", "--print", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let banner = lines.next().unwrap().unwrap();
    let addr = banner
        .strip_prefix("mock_intake listening on http://")
        .expect(&banner)
        .to_string();
    assert!(!addr.ends_with(":0"), "{addr}");
    let agent = mock::http_agent();
    let resp = agent
        .post(format!("http://{addr}/api/v2/logs"))
        .header("DD-API-KEY", "k")
        .send(r#"[{"a":1},{"b":"two"}]"#)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let printed: Vec<Value> = (0..2)
        .map(|_| serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap())
        .collect();
    assert_eq!(printed, vec![json!({"a":1}), json!({"b":"two"})]);
    child.kill().unwrap();
    child.wait().unwrap();
}
