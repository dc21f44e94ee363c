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

/// Delivered logs (distinct, duplicates) when the chunk handed back before a hot reload
/// (Exit and Init in the same process, `cycles: 2`) comes again after it.
fn across_a_reload(resume: bool) -> (usize, usize) {
    let dir = std::env::temp_dir().join(format!("resume-reload-{}-{resume}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("datadog.resume");
    let _ = std::fs::remove_file(&file);
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 503, "every": 2, "times": 1}]));
    let mut extra = vec![("max_concurrency", "1")];
    if resume {
        extra.push(("resume_file", file.to_str().unwrap()));
    }
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &extra)}],
        "flushes": [{"instance": 0, "generate": {"records": 3000, "per_chunk": 3000}}],
        "cycles": 2,
    }));
    assert_eq!(run.lines_with("] exit: ").len(), 2, "two lives");
    std::fs::remove_dir_all(&dir).unwrap();
    tally(&mock.objects())
}

#[test]
fn the_memory_carries_across_a_hot_reload_with_a_resume_file() {
    assert_eq!(across_a_reload(true), (3000, 0));
    // Without the file each life starts with an empty memory.
    assert_eq!(across_a_reload(false), (3000, 2000));
}

#[test]
fn a_second_output_on_the_same_file_runs_without_it() {
    let dir = std::env::temp_dir().join(format!("resume-shared-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("datadog.resume");
    let mock = MockIntake::start(Some(KEY));
    let o = opts(&mock.url, &[("resume_file", file.to_str().unwrap())]);
    let run = run_host(&json!({"instances": [{"options": o}, {"options": o}], "flushes": []}));
    assert_eq!(run.report["init"], json!([1, 1]));
    let second = run.lines_with("[output:datadog_logs:datadog_logs.1]");
    assert!(
        second
            .iter()
            .any(|l| l.contains("[ warn]") && l.contains("already used by another [OUTPUT]")),
        "{second:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
