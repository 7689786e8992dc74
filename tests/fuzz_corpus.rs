//! Replays the fuzzers' saved inputs on stable: every file of fuzz/corpus/TARGET (the
//! minimised corpus) and fuzz/regressions/TARGET (each input a fuzzer found to crash, kept
//! after the fix) runs through the same body as the fuzz target (src/fuzzing.rs).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    let mut failed = Vec::new();
    for dir in ["corpus", "regressions"] {
        let dir = root.join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("a directory entry").path())
            .collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).expect("a saved fuzz input");
            if catch_unwind(AssertUnwindSafe(|| body(&bytes))).is_err() {
                failed.push(p.display().to_string());
            }
            ran += 1;
        }
    }
    assert!(
        ran > 0,
        "no saved inputs for the fuzz target {target} under {}",
        root.display()
    );
    assert!(
        failed.is_empty(),
        "{target}: these saved inputs panic:\n{}",
        failed.join("\n")
    );
}

#[test]
fn csv_corpus_and_regressions_load_or_fail_cleanly() {
    replay("csv", wgtrain::fuzzing::csv);
}

#[test]
fn model_file_corpus_and_regressions_load_or_fail_cleanly() {
    replay("model_file", wgtrain::fuzzing::model_file);
}

#[test]
fn flags_corpus_and_regressions_parse_or_fail_cleanly() {
    replay("flags", wgtrain::fuzzing::flags);
}
