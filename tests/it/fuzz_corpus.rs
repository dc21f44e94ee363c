//! Replays the fuzz corpus (fuzz/corpus/chunk) and every input that once broke the plugin
//! (fuzz/regressions) through the same check as the fuzz target, in the normal test suite.

#[path = "../../fuzz/check.rs"]
mod check;

fn replay(dir: &str) -> usize {
    let path = format!("{}/fuzz/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{path}: {e}")) {
        let file = entry.unwrap().path();
        let data = std::fs::read(&file).unwrap();
        eprintln!("replaying {}", file.display());
        check::chunk_to_payloads(&data);
        n += 1;
    }
    n
}

#[test]
fn fuzz_corpus_replays_clean() {
    assert!(replay("corpus/chunk") >= 50, "the saved corpus is missing");
}

#[test]
fn fuzz_regressions_stay_fixed() {
    assert!(replay("regressions") >= 1);
}
