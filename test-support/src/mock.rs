//! Runs `mock_intake` (the mock Datadog log intake, see `mock-intake/src/main.rs`) as a child
//! process on loopback and talks to its control API (`/mock/received`, `/mock/rules`,
//! `/mock/reset`).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long to wait for the child to print its listening address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const BANNER_PREFIX: &str = "mock_intake listening on http://";

/// A running `mock_intake` child process; killed on drop.
pub struct MockIntake {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    child: Child,
    agent: ureq::Agent,
}

/// A ureq agent that returns 4xx/5xx responses instead of errors.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Reads a whole response as `(status, body)`.
fn finish(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> (u16, String) {
    let mut resp = resp.unwrap_or_else(|e| panic!("mock_intake: {what} failed: {e}"));
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap_or_else(|e| panic!("mock_intake: reading {what} response failed: {e}"));
    (status, body)
}

/// Spawns a thread that forwards `reader`'s lines to stderr (and keeps a copy).
fn drain<R: Read + Send + 'static>(
    reader: R,
    tag: &'static str,
    copy: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            eprintln!("[mock_intake {tag}] {line}");
            if let Ok(mut c) = copy.lock() {
                c.push_str(&line);
                c.push('\n');
            }
        }
    })
}

impl MockIntake {
    /// Starts the mock on `127.0.0.1:<any free port>`. With `api_key`, only
    /// that key is accepted; without, any non-empty key is.
    pub fn start(api_key: Option<&str>) -> MockIntake {
        MockIntake::start_on("127.0.0.1:0", api_key)
    }

    /// Starts the mock on a specific address (e.g. one from [`reserve_addr`]).
    ///
    /// [`reserve_addr`]: MockIntake::reserve_addr
    pub fn start_on(addr: &str, api_key: Option<&str>) -> MockIntake {
        MockIntake::start_with_args(addr, api_key, &[])
    }

    /// Starts the mock with extra command-line arguments (e.g. `--tls-cert`, `--tls-key`).
    pub fn start_with_args(addr: &str, api_key: Option<&str>, extra: &[&str]) -> MockIntake {
        let mut cmd = Command::new(crate::workspace_bin("mock_intake"));
        cmd.args(["--addr", addr, "--quiet"])
            .args(extra)
            .env_remove("MOCK_INTAKE_ADDR")
            .env_remove("MOCK_INTAKE_API_KEY")
            .env_remove("MOCK_INTAKE_PRINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(key) = api_key {
            cmd.args(["--api-key", key]);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn mock_intake: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for line in lines.map_while(Result::ok) {
                eprintln!("[mock_intake stdout] {line}");
            }
        });
        let stderr_copy = Arc::new(Mutex::new(String::new()));
        let stderr_thread = drain(stderr, "stderr", Arc::clone(&stderr_copy));

        let banner = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                let _ = stderr_thread.join();
                let err = stderr_copy.lock().map(|s| s.clone()).unwrap_or_default();
                panic!(
                    "mock_intake did not report its address within {STARTUP_TIMEOUT:?} \
                     (--addr {addr}, exit: {status:?}); stderr:\n{err}"
                );
            }
        };
        let bound = match banner.strip_prefix(BANNER_PREFIX) {
            Some(b) => b.trim().to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("unexpected first line from mock_intake: {banner:?}");
            }
        };
        MockIntake {
            url: format!("http://{bound}"),
            addr: bound,
            child,
            agent: http_agent(),
        }
    }

    /// Finds a free loopback port and returns `127.0.0.1:PORT` without
    /// listening on it (connections are refused until a mock starts there).
    pub fn reserve_addr() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr").to_string();
        drop(listener);
        addr
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the mock now (to simulate an outage); `Drop` is then a no-op.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn get(&self, path: &str) -> (u16, String) {
        finish(self.agent.get(format!("{}{path}", self.url)).call(), path)
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let req = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json");
        finish(req.send(body), path)
    }

    /// `GET /mock/received`: `{"requests", "accepted_requests",
    /// "validate_requests", "objects", "statuses", "log"}`.
    pub fn received(&self) -> Value {
        let (status, body) = self.get("/mock/received");
        assert_eq!(status, 200, "GET /mock/received: {body}");
        serde_json::from_str(&body).expect("/mock/received returns JSON")
    }

    /// All accepted log objects, in arrival order.
    pub fn objects(&self) -> Vec<Value> {
        match self.received()["objects"].take() {
            Value::Array(a) => a,
            other => panic!("objects is not an array: {other}"),
        }
    }

    /// The per-request log (one entry per `POST /api/v2/logs`).
    pub fn log(&self) -> Vec<Value> {
        match self.received()["log"].take() {
            Value::Array(a) => a,
            other => panic!("log is not an array: {other}"),
        }
    }

    /// Number of `POST /api/v2/logs` requests seen since the last reset.
    pub fn requests(&self) -> u64 {
        self.received()["requests"].as_u64().unwrap_or(0)
    }

    /// Replaces the fault rules; takes `[RULE, ...]` or `{"rules": [...]}`.
    pub fn set_rules(&self, rules: Value) {
        let body = if rules.is_array() {
            json!({ "rules": rules })
        } else {
            rules
        };
        let (status, resp) = self.post("/mock/rules", &body.to_string());
        assert_eq!(status, 200, "POST /mock/rules {body}: {resp}");
    }

    /// Clears rules, recorded objects and counters.
    pub fn reset(&self) {
        let (status, body) = self.post("/mock/reset", "");
        assert_eq!(status, 200, "POST /mock/reset: {body}");
    }

    /// Polls `/mock/received` until `pred` holds; panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if pred(&received) {
                return received;
            }
            if Instant::now() >= deadline {
                panic!("mock_intake: condition not met within {timeout:?}; received: {received}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `n` objects were accepted and returns them all.
    pub fn wait_for_objects(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let received = self.wait_until(timeout, |r| {
            r["objects"].as_array().is_some_and(|a| a.len() >= n)
        });
        received["objects"].as_array().cloned().unwrap_or_default()
    }

    /// Sends `POST /api/v2/logs` with the given body and headers.
    pub fn post_logs_with(&self, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = self.agent.post(format!("{}/api/v2/logs", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        finish(req.send(body), "POST /api/v2/logs")
    }

    /// Sends `POST /api/v2/logs` (JSON content type, optional encoding and key).
    pub fn post_logs(
        &self,
        body: &[u8],
        encoding: Option<&str>,
        api_key: Option<&str>,
    ) -> (u16, String) {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(e) = encoding {
            headers.push(("Content-Encoding", e));
        }
        if let Some(k) = api_key {
            headers.push(("DD-API-KEY", k));
        }
        self.post_logs_with(body, &headers)
    }

    /// Sends `GET /api/v1/validate` with an optional key.
    pub fn validate(&self, api_key: Option<&str>) -> (u16, String) {
        let mut req = self.agent.get(format!("{}/api/v1/validate", self.url));
        if let Some(k) = api_key {
            req = req.header("DD-API-KEY", k);
        }
        finish(req.call(), "GET /api/v1/validate")
    }
}

impl Drop for MockIntake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
