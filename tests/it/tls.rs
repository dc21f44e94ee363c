//! TLS to a relay or local intake: certificates made at test time with rcgen, served by the
//! mock intake (`--tls-cert`/`--tls-key`), delivered through the conformance host (flushes on
//! 24 KiB stacks, as Fluent Bit runs them).
//!
//! A self-signed certificate made the usual way (`openssl req -x509`, which marks it
//! `CA:TRUE`) and listed in `tls_ca_file` is trusted, its name still checked; anything else
//! keeps full verification, and `tls_verify off` accepts any certificate with a warning.

use crate::support as common;

use common::mock::MockIntake;
use common::{KEY, Run, opts, run_host};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::json;
use std::path::{Path, PathBuf};

const RECORDS: usize = 3000;
const PER_CHUNK: usize = 1000;

/// A certificate and its key, as PEM files in a directory of the test's own.
struct Pem {
    cert: PathBuf,
    key: PathBuf,
}

fn dir(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{test}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn params(names: &[&str], ca: bool) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names.clone()).unwrap();
    p.distinguished_name.push(DnType::CommonName, &names[0]);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}

fn write(dir: &Path, name: &str, cert: &Certificate, key: &KeyPair) -> Pem {
    let pem = Pem {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pem.cert, cert.pem()).unwrap();
    std::fs::write(&pem.key, key.serialize_pem()).unwrap();
    pem
}

/// A self-signed `CA:TRUE` certificate for `names`, as `openssl req -x509 -addext
/// subjectAltName=...` makes it.
fn self_signed(dir: &Path, name: &str, names: &[&str]) -> Pem {
    let key = KeyPair::generate().unwrap();
    let cert = params(names, true).self_signed(&key).unwrap();
    write(dir, name, &cert, &key)
}

/// Starts the mock intake serving TLS with `pem`.
fn tls_mock(pem: &Pem) -> MockIntake {
    let (cert, key) = (pem.cert.to_str().unwrap(), pem.key.to_str().unwrap());
    MockIntake::start_with_args(
        "127.0.0.1:0",
        Some(KEY),
        &["--tls-cert", cert, "--tls-key", key],
    )
}

/// `https://HOST:PORT` of `mock`.
fn https(mock: &MockIntake, host: &str) -> String {
    let port = mock.addr.rsplit(':').next().unwrap();
    format!("https://{host}:{port}")
}

/// Init and one flush of `RECORDS` generated records through the conformance host.
fn deliver(url: &str, extra: &[(&str, &str)]) -> Run {
    run_host(&json!({
        "instances": [{"options": opts(url, extra)}],
        "flushes": [{"instance": 0, "generate": {"records": RECORDS, "per_chunk": PER_CHUNK}}],
    }))
}

/// [`deliver`] to `https://HOST:PORT` of `mock` with `tls_ca_file` set to `ca`'s certificate.
fn deliver_trusting(mock: &MockIntake, host: &str, ca: &Pem) -> Run {
    let ca_file = ca.cert.to_str().unwrap();
    deliver(&https(mock, host), &[("tls_ca_file", ca_file)])
}

fn assert_delivered(run: &Run, mock: &MockIntake) {
    assert_eq!(run.report["init"], json!([1]), "{}", run.stderr);
    assert_eq!(
        run.final_codes(0),
        [1; RECORDS / PER_CHUNK],
        "{}",
        run.stderr
    );
    assert_eq!(mock.objects().len(), RECORDS);
}

/// Every chunk is kept for a retry, nothing reaches the intake, and the log says why.
fn assert_refused(run: &Run, mock: &MockIntake, reason: &str) {
    assert_eq!(run.report["init"], json!([1]), "{}", run.stderr);
    assert_eq!(
        run.final_codes(0),
        [2; RECORDS / PER_CHUNK],
        "{}",
        run.stderr
    );
    assert_eq!(mock.received()["requests"], 0);
    assert!(
        !run.lines_with(reason).is_empty(),
        "no line with {reason}:\n{}",
        run.stderr
    );
}

#[test]
fn self_signed_ca_certificate_for_an_ip_in_tls_ca_file_delivers() {
    let d = dir("ip");
    let pem = self_signed(&d, "relay", &["127.0.0.1"]);
    let mock = tls_mock(&pem);
    let run = deliver_trusting(&mock, "127.0.0.1", &pem);
    assert_delivered(&run, &mock);
    assert!(run.lines_with("tls_verify is off").is_empty());
}

#[test]
fn self_signed_ca_certificate_for_localhost_in_tls_ca_file_delivers() {
    let d = dir("localhost");
    let pem = self_signed(&d, "relay", &["localhost"]);
    let mock = tls_mock(&pem);
    let run = deliver_trusting(&mock, "localhost", &pem);
    assert_delivered(&run, &mock);
}

#[test]
fn self_signed_certificate_for_another_name_is_refused() {
    let d = dir("wrong-name");
    let pem = self_signed(&d, "relay", &["127.0.0.2", "example.com"]);
    let mock = tls_mock(&pem);
    let run = deliver_trusting(&mock, "127.0.0.1", &pem);
    assert_refused(&run, &mock, "certificate not valid for name \"127.0.0.1\"");
}

#[test]
fn self_signed_certificate_not_in_tls_ca_file_is_refused() {
    let d = dir("unlisted");
    let served = self_signed(&d, "served", &["127.0.0.1"]);
    let listed = self_signed(&d, "listed", &["127.0.0.1"]);
    let mock = tls_mock(&served);
    let run = deliver_trusting(&mock, "127.0.0.1", &listed);
    assert_refused(&run, &mock, "invalid peer certificate");
}

#[test]
fn expired_self_signed_certificate_in_tls_ca_file_is_refused() {
    let d = dir("expired");
    let key = KeyPair::generate().unwrap();
    let mut p = params(&["127.0.0.1"], true);
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let pem = write(&d, "relay", &p.self_signed(&key).unwrap(), &key);
    let mock = tls_mock(&pem);
    let run = deliver_trusting(&mock, "127.0.0.1", &pem);
    assert_refused(&run, &mock, "expired");
}

#[test]
fn tls_verify_off_delivers_to_an_unknown_certificate_with_one_warning() {
    let d = dir("verify-off");
    let pem = self_signed(&d, "relay", &["example.com"]);
    let mock = tls_mock(&pem);
    let run = deliver(&https(&mock, "127.0.0.1"), &[("tls_verify", "off")]);
    assert_delivered(&run, &mock);
    let warnings = run.lines_with("tls_verify is off: the intake's certificate is not checked");
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("] [ warn] [output:datadog_logs:datadog_logs.0] tls_verify"),
        "{}",
        warnings[0]
    );
}

#[test]
fn ca_signed_server_certificate_delivers() {
    let d = dir("chain");
    let ca_key = KeyPair::generate().unwrap();
    let ca = params(&["Test relay CA"], true)
        .self_signed(&ca_key)
        .unwrap();
    let ca_pem = write(&d, "ca", &ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = params(&["127.0.0.1"], false)
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let pem = write(&d, "relay", &leaf, &key);
    let mock = tls_mock(&pem);
    let run = deliver_trusting(&mock, "127.0.0.1", &ca_pem);
    assert_delivered(&run, &mock);
}
