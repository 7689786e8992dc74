//! Helpers for the end-to-end tests of the `wgtrain` binary: running it, fixtures (files,
//! CSV writers), reading its reports and predictions, and the backend a test runs on.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use super::Kind;

/// The built `wgtrain` binary, as an assert_cmd command.
pub fn wgtrain() -> Command {
    Command::cargo_bin("wgtrain").expect("the wgtrain binary is built")
}

/// The path of the built `wgtrain` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wgtrain"))
}

/// The built `wgtrain` binary as a plain `std::process::Command` (for spawned children,
/// pipes and descriptors that assert_cmd does not handle).
pub fn wgtrain_std() -> std::process::Command {
    std::process::Command::new(bin())
}

/// The `--backend` value of `kind`; `None` for the GPU where there is no adapter, after
/// [`super::no_gpu`] said so (or failed the test under `CI`).
pub fn backend(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Cpu => Some("cpu"),
        Kind::Gpu => super::gpu_context().map(|_| "gpu"),
    }
}

/// A temporary directory holding fixtures and outputs; removed when dropped.
pub struct Fixtures {
    dir: TempDir,
}

impl Fixtures {
    pub fn new() -> Self {
        Fixtures {
            dir: TempDir::new().expect("a temporary directory"),
        }
    }

    /// The path of `name` in the directory, as a string (as the binary prints it).
    pub fn path(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        path.to_str().expect("a UTF-8 temp path").to_string()
    }

    /// Writes `text` to `name` in the directory and returns the path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).expect("writing a fixture");
        p
    }

    /// The names of the files in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Runs wgtrain with `args`, expects success, returns (stdout, stderr).
pub fn ok(args: &[&str]) -> (String, String) {
    let assert = wgtrain().args(args).assert().success();
    let out = assert.get_output();
    (
        String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout"),
        String::from_utf8(out.stderr.clone()).expect("UTF-8 stderr"),
    )
}

/// Runs wgtrain with `args` and returns its output, whatever its exit status.
pub fn output(args: &[&str]) -> std::process::Output {
    wgtrain().args(args).output().expect("wgtrain runs")
}

/// Runs wgtrain with `args`, expects a non-zero exit without a panic, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let assert = wgtrain()
        .args(args)
        .assert()
        .failure()
        .stderr(predicate::str::contains("panicked").not());
    String::from_utf8(assert.get_output().stderr.clone()).expect("UTF-8 stderr")
}

/// Runs `wgtrain train ARGS...`, expects a non-zero exit without a panic, returns stderr.
pub fn train_fails(args: &[&str]) -> String {
    fails(&[&["train"], args].concat())
}

/// Runs `wgtrain train ARGS...` (no `--json`), expects success, returns stdout.
pub fn train_human(args: &[&str]) -> String {
    ok(&[&["train"], args].concat()).0
}

/// Parses `text` (a command's stdout) as one JSON value, showing the text on failure.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{text}"))
}

/// A `--json` run: the parsed report and the text it was parsed from.
pub struct Run {
    pub r: Value,
    pub text: String,
}

impl Run {
    /// The number at `"obj": { ... "key": N ... }` read from the text with the standard
    /// library's correctly rounded parser (serde_json without `float_roundtrip` may be off by
    /// one ulp), so it can be compared exactly with a number from the log.
    pub fn exact(&self, obj: &str, key: &str) -> f64 {
        let open = format!("\"{obj}\": {{");
        let start = self
            .text
            .find(&open)
            .unwrap_or_else(|| panic!("no object {obj:?} in the report:\n{}", self.text));
        let body = &self.text[start + open.len()..];
        let body = &body[..body.find('}').expect("the object closes")];
        let field = format!("\"{key}\": ");
        let at = body
            .find(&field)
            .unwrap_or_else(|| panic!("no field {obj}.{key} in the report:\n{}", self.text))
            + field.len();
        let token: String = body[at..]
            .chars()
            .take_while(|c| !matches!(c, ',' | '\n' | '}'))
            .collect();
        token
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{obj}.{key} = {token:?} is not a number: {e}"))
    }
}

/// Runs `wgtrain train ARGS... --json`, expects success, returns the report.
pub fn train_run(args: &[&str]) -> Run {
    let (text, _) = ok(&[&["train"], args, &["--json"]].concat());
    Run {
        r: json(&text),
        text,
    }
}

/// Runs `wgtrain train ARGS... --json`, expects success, returns the parsed report.
pub fn train_json(args: &[&str]) -> Value {
    train_run(args).r
}

/// Runs `wgtrain bench -q ARGS...`, expects success, returns stdout.
pub fn bench_ok(args: &[&str]) -> String {
    ok(&[&["bench", "-q"], args].concat()).0
}

/// Runs `wgtrain bench -q ARGS... --json`, expects success, returns the parsed report.
pub fn bench_json(args: &[&str]) -> Value {
    json(&bench_ok(&[args, &["--json"]].concat()))
}

/// Runs `wgtrain bench ARGS...`, expects a failure without a panic, returns stderr.
pub fn bench_fails(args: &[&str]) -> String {
    fails(&[&["bench"], args].concat())
}

/// A report's `model.checksum`.
pub fn checksum_of(r: &Value) -> String {
    r["model"]["checksum"]
        .as_str()
        .expect("model.checksum")
        .to_string()
}

/// Bytes (a command's output) as text, invalid UTF-8 replaced.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that `haystack` contains every needle, showing the whole text on failure.
pub fn assert_contains_all(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(
            haystack.contains(n),
            "expected {n:?} in the message:\n{haystack}"
        );
    }
}

pub fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

pub fn uint(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not an unsigned integer: {v}"))
}

/// Uniform numbers in [-1, 1) from a 64-bit LCG started at `state`: fixed fixtures without a
/// random-number crate.
pub fn lcg(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// `rows` rows of columns id, a, b, k (constant), label (yes/no, roughly a + 0.5 b > 0 with
/// some noise), from a fixed-seed generator.
pub fn fixture_csv(rows: usize, seed: u64) -> String {
    let mut next = lcg(seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407));
    let mut s = String::from("id,a,b,k,label\n");
    for r in 0..rows {
        let (a, b, noise) = (3.0 * next() + 1.0, 10.0 * next(), 0.4 * next());
        let label = if a - 1.0 + 0.05 * b + noise > 0.0 {
            "yes"
        } else {
            "no"
        };
        s.push_str(&format!("{r},{a:.4},{b:.3},3.5,{label}\n"));
    }
    s
}

/// `rows` rows of a, b, label (yes/no by a + b/2 > 0 with some noise), from a fixed-seed
/// generator.
pub fn ab_csv(rows: usize) -> String {
    let mut next = lcg(0x9E37_79B9_7F4A_7C15);
    let mut s = String::from("a,b,label\n");
    for _ in 0..rows {
        let (a, b) = (next(), next());
        let y = if a + 0.5 * b + 0.2 * next() > 0.0 {
            "yes"
        } else {
            "no"
        };
        s.push_str(&format!("{a:.4},{b:.4},{y}\n"));
    }
    s
}

/// A CSV as (header, rows of cells).
pub fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let split = |l: &str| l.split(',').map(str::to_string).collect::<Vec<_>>();
    let header = split(lines.next().expect("a header"));
    (header, lines.map(split).collect())
}

/// `predict`'s CSV as (probabilities, predicted labels).
pub fn parse_predictions(text: &str) -> (Vec<f64>, Vec<String>) {
    let (header, rows) = read_csv(text);
    assert_eq!(header, ["probability", "predicted"], "{text}");
    rows.iter()
        .map(|r| {
            assert_eq!(r.len(), 2, "{text}");
            (r[0].parse::<f64>().expect("a probability"), r[1].clone())
        })
        .unzip()
}

/// Says loudly that a test cannot run here (straight to the stream: the harness captures
/// eprintln! of passing tests).
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!! TEST SKIPPED: {why}\n");
}

/// Makes a FIFO at `path` with mkfifo(1); false (after saying so) where that is not possible.
pub fn mkfifo(path: &str) -> bool {
    match std::process::Command::new("mkfifo").arg(path).status() {
        Ok(s) if s.success() => true,
        other => {
            skipped(&format!("cannot make a FIFO with mkfifo ({other:?})"));
            false
        }
    }
}

/// Sends `SIG{signal}` (e.g. "TERM") to `child` and waits at most `limit` for it to exit;
/// kills it and fails the test, saying `what`, if it does not.
pub fn signal_and_wait(
    child: &mut std::process::Child,
    signal: &str,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let kill = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let sent = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if sent.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: still running {limit:?} after SIG{signal}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
