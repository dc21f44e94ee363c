//! `resume_file` (src/deliver/resume_file.rs) across a killed process: the conformance host
//! flushes a chunk that the intake takes in part, ends without any exit call (as a SIGKILL
//! leaves the plugin), and a second process flushes the same chunk again, as Fluent Bit does
//! from its filesystem storage after a restart.

use crate::support as common;
use common::mock::MockIntake;
use common::{KEY, Run, opts, run_host, tally};
use serde_json::json;

/// One process: one chunk of 3000 generated records (3 requests of 1000, one at a time),
/// flushed once, and no exit.
fn process(url: &str, resume_file: Option<&str>) -> Run {
    let mut extra = vec![("max_concurrency", "1")];
    extra.extend(resume_file.map(|f| ("resume_file", f)));
    run_host(&json!({
        "instances": [{"options": opts(url, &extra)}],
        "flushes": [{"instance": 0, "generate": {"records": 3000, "per_chunk": 3000}}],
        "exit": "none",
    }))
}

/// Delivered logs (distinct, duplicates) after a kill and a restart, with or without a
/// resume file.
fn kill_and_restart(resume: bool) -> ((usize, usize), Run) {
    let dir = std::env::temp_dir().join(format!("resume-it-{}-{resume}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("datadog.resume");
    let _ = std::fs::remove_file(&file);
    let path = resume.then(|| file.to_str().unwrap().to_string());
    let mock = MockIntake::start(Some(KEY));
    // The 2nd request of 3 refused: 2000 logs accepted, the chunk handed back for a retry.
    mock.set_rules(json!([{"status": 503, "every": 2, "times": 1}]));
    let first = process(&mock.url, path.as_deref());
    assert_eq!(first.codes(0), [vec![2]], "RETRY");
    assert_eq!(tally(&mock.objects()), (2000, 0));
    // The restart: the intake is healthy, the same chunk comes again.
    let second = process(&mock.url, path.as_deref());
    assert_eq!(second.codes(0), [vec![1]], "OK");
    let delivered = tally(&mock.objects());
    std::fs::remove_dir_all(&dir).unwrap();
    (delivered, second)
}

#[test]
fn a_restart_with_a_resume_file_sends_only_what_was_pending() {
    let ((distinct, duplicates), second) = kill_and_restart(true);
    assert_eq!((distinct, duplicates), (3000, 0));
    let opened = second.lines_with("resume_file ");
    assert!(
        opened
            .iter()
            .any(|l| l.contains("[ info]") && l.contains("1 chunk(s) handed back")),
        "{opened:?}"
    );
}

#[test]
fn without_a_resume_file_the_accepted_logs_come_twice() {
    // The measure of what the file saves: the whole chunk again.
    assert_eq!(kill_and_restart(false).0, (3000, 2000));
}
