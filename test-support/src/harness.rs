//! Runs of the `conformance_host` binary with captured plugin logs, and the options the
//! integration tests give it.

use crate::host;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// A recognisable API key: tests assert it never appears in the plugin's output.
pub const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// What a `conformance_host` run printed.
pub struct Run {
    /// The JSON report from stdout.
    pub report: Value,
    /// The plugin's log lines.
    pub stderr: String,
}

impl Run {
    /// Flush codes of flush step `i`, one list of attempts per chunk.
    pub fn codes(&self, i: usize) -> Vec<Vec<i64>> {
        self.report["flushes"][i]["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect()
            })
            .collect()
    }

    /// Final code of each chunk of flush step `i`.
    pub fn final_codes(&self, i: usize) -> Vec<i64> {
        self.codes(i).iter().map(|c| *c.last().unwrap()).collect()
    }

    /// The value of counter `name` in the last exit summary line.
    pub fn counter(&self, name: &str) -> u64 {
        let line = self
            .lines_with("] exit: ")
            .pop()
            .expect("exit summary line");
        summary_value(line, name)
    }

    /// Log lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains(needle)).collect()
    }
}

/// Runs the `conformance_host` binary on `scenario`, with debug logging.
pub fn run_host(scenario: &Value) -> Run {
    run_host_env(scenario, &[])
}

/// Like [`run_host`], with extra environment variables.
pub fn run_host_env(scenario: &Value, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(crate::workspace_bin("conformance_host"));
    cmd.arg("-")
        .env("FLB_DATADOG_SO", host::library_path())
        .env("FLUENT_BIT_DATADOG_LOG_LEVEL", "debug")
        .env_remove("DD_API_KEY")
        .env_remove("DD_SITE")
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .env_remove("all_proxy")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn conformance_host");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scenario.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("conformance_host output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "conformance_host failed ({}):\n{stderr}",
        out.status
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad report ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Run { report, stderr }
}

/// Options for an instance sending to `url` with the test key.
pub fn opts(url: &str, extra: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("apikey".into(), KEY.into());
    m.insert("endpoint".into(), url.into());
    for (k, v) in extra {
        m.insert((*k).into(), (*v).into());
    }
    Value::Object(m)
}

/// The messages of the received objects, in arrival order.
pub fn messages(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The value of counter `name` in an exit summary line (`... exit: records_in=5 ...`).
pub fn summary_value(line: &str, name: &str) -> u64 {
    let key = format!(" {name}=");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} not in {line}"))
        + key.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Distinct messages among `objects` and how many arrived more than once.
pub fn tally(objects: &[Value]) -> (usize, usize) {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for o in objects {
        *seen.entry(o["message"].as_str().unwrap_or("")).or_default() += 1;
    }
    (seen.len(), seen.values().map(|n| n - 1).sum())
}
