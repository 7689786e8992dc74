//! End-to-end tests of the validation and stop-rule flags of `wgtrain train`: `--val`,
//! `--val-split`, `--monitor`, `--log`, `--patience`, `--restore-best`, `--divergence`,
//! `--max-time`, `--warmup`, `--min-delta[-rel]` and `--eval-every`, their error messages, the
//! human summary, and one CPU/GPU agreement check.
//!
//! The stop rules' runs train on both backends (`both_backends!`); the flag and message tests
//! train on the CPU. Fixtures and logs are written into a fresh temporary directory per test.

mod common;

use serde_json::Value;

use common::cli::{
    Fixtures, assert_contains_all, backend, checksum_of, num, train_fails, train_human, train_json,
    train_run, uint, wgtrain,
};

const METRIC_FIELDS: [&str; 6] = ["loss", "accuracy", "precision", "recall", "f1", "iou"];
const COUNT_FIELDS: [&str; 4] = ["tp", "fp", "fn", "tn"];

/// Asserts that a metrics object has every field and that its counts sum to `rows`; returns
/// its positives (tp + fn).
fn check_metrics(m: &Value, what: &str, rows: u64) -> u64 {
    for k in METRIC_FIELDS {
        let v = num(&m[k], &format!("{what}.{k}"));
        assert!(v.is_finite(), "{what}.{k} = {v}");
        if k != "loss" {
            assert!((0.0..=1.0).contains(&v), "{what}.{k} = {v}");
        }
    }
    let counts: Vec<u64> = COUNT_FIELDS
        .iter()
        .map(|k| uint(&m[*k], &format!("{what}.{k}")))
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), rows, "{what} counts: {m}");
    counts[0] + counts[2]
}

/// A `--log` file: the header and every row parsed as f64.
struct Log {
    header: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Log {
    fn read(path: &str) -> Log {
        let text = std::fs::read_to_string(path).expect("the log file exists");
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .expect("a header line")
            .split(',')
            .map(str::to_string)
            .collect();
        let rows: Vec<Vec<f64>> = lines
            .enumerate()
            .map(|(i, line)| {
                let cells: Vec<f64> = line
                    .split(',')
                    .map(|c| {
                        c.parse::<f64>().unwrap_or_else(|e| {
                            panic!("log line {}: {c:?} is not a number ({e}): {line}", i + 2)
                        })
                    })
                    .collect();
                assert_eq!(cells.len(), header.len(), "log line {}: {line}", i + 2);
                cells
            })
            .collect();
        Log { header, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name:?} in the log: {:?}", self.header))
    }

    /// Every value of column `name`.
    fn column(&self, name: &str) -> Vec<f64> {
        let j = self.col(name);
        self.rows.iter().map(|r| r[j]).collect()
    }

    fn iterations(&self) -> Vec<u64> {
        self.column("iteration")
            .iter()
            .map(|&t| {
                assert!(t >= 0.0 && t.fract() == 0.0, "iteration {t}");
                t as u64
            })
            .collect()
    }

    /// The row of iteration `t`.
    fn at(&self, t: u64) -> &[f64] {
        let j = self.col("iteration");
        self.rows
            .iter()
            .find(|r| r[j] == t as f64)
            .unwrap_or_else(|| panic!("no log row for iteration {t}"))
    }
}

const TRAIN_HEADER: &str =
    "iteration,elapsed_s,train_loss,train_accuracy,train_precision,train_recall,train_f1,train_iou";

/// A run that plateaus on the validation loss well before max_iter and stops by patience.
const PATIENCE_ARGS: [&str; 17] = [
    "--demo",
    "moons",
    "--val-split",
    "0.3",
    "--hidden",
    "8",
    "--metric",
    "loss",
    "--patience",
    "3",
    "--threshold",
    "none",
    "--max-iter",
    "3000",
    "--lr",
    "2",
    "--seed=0",
];

fn patience_args(extra: &[&str]) -> Vec<String> {
    PATIENCE_ARGS
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------
// 1. --val FILE.csv
// ---------------------------------------------------------------------------------------

/// Eight training rows, four positive; label last.
const TRAIN_CSV: &str = "\
a,b,y
0.1,1.0,0
0.3,1.2,0
0.2,0.9,0
0.4,1.1,0
2.1,3.0,1
2.3,2.8,1
1.9,3.2,1
2.2,3.1,1
";

/// The training columns in another order plus a text column; five rows, two positive.
const VAL_CSV: &str = "\
y,note,b,a
1,x,2.9,2.0
0,y,1.0,0.2
1,z,3.3,2.4
0,w,0.8,0.3
0,v,1.3,0.1
";

#[test]
fn val_file_is_reported_and_monitored() {
    let f = Fixtures::new();
    let train = f.file("train.csv", TRAIN_CSV);
    let val = f.file("val.csv", VAL_CSV);
    let base = [
        "--data",
        &train,
        "--val",
        &val,
        "--metric",
        "loss",
        "--threshold",
        "none",
        "--max-iter",
        "20",
        "--backend",
        "cpu",
    ];
    let r = train_json(&base);

    let d = &r["data"];
    assert_eq!(uint(&d["rows"], "data.rows"), 8);
    assert_eq!(uint(&d["features"], "data.features"), 2);
    assert_eq!(uint(&d["positives"], "data.positives"), 4);
    let v = &d["val"];
    assert_eq!(v["source"], val.as_str());
    assert_eq!(uint(&v["rows"], "data.val.rows"), 5);
    assert_eq!(uint(&v["positives"], "data.val.positives"), 2);

    assert_eq!(check_metrics(&r["metrics"], "metrics", 8), 4);
    assert_eq!(check_metrics(&r["val_metrics"], "val_metrics", 5), 2);

    let s = &r["stop"];
    assert_eq!(s["reason"], "max_iter");
    assert_eq!(s["iteration"], 20);
    assert_eq!(
        s["monitor"], "val",
        "validation data is monitored by default"
    );
    assert_eq!(s["value"], r["val_metrics"]["loss"]);
    assert_ne!(
        r["val_metrics"]["loss"], r["metrics"]["loss"],
        "the two sets must differ for this test to tell them apart"
    );
    let message = s["message"].as_str().expect("stop.message");
    assert!(message.contains("val loss"), "{message}");

    // --monitor train watches the training rows although validation rows exist.
    let r = train_json(&[&base[..], &["--monitor", "train"]].concat());
    let s = &r["stop"];
    assert_eq!(s["monitor"], "train");
    assert_eq!(s["value"], r["metrics"]["loss"]);
    assert_eq!(uint(&r["data"]["val"]["rows"], "data.val.rows"), 5);
    check_metrics(&r["val_metrics"], "val_metrics", 5);
    let message = s["message"].as_str().expect("stop.message");
    assert!(!message.contains("val loss"), "{message}");

    // Without validation data there are no validation metrics.
    let r = train_json(&["--data", &train, "--max-iter", "2", "--backend", "cpu"]);
    assert!(r["val_metrics"].is_null(), "{}", r["val_metrics"]);
    assert!(r["data"]["val"].is_null(), "{}", r["data"]["val"]);
    assert_eq!(r["stop"]["monitor"], "train");
}

#[test]
fn val_file_missing_a_feature_names_file_line_and_column() {
    let f = Fixtures::new();
    let train = f.file("train.csv", TRAIN_CSV);
    let val = f.file("val_missing.csv", "y,note,a\n1,x,2.0\n0,y,0.2\n");
    let err = train_fails(&["--data", &train, "--val", &val, "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            "wgtrain: error:",
            &format!("{val}, line 1: "),
            "no column \"b\"",
            "a feature of the training data",
            "y, note, a",
        ],
    );
}

#[test]
fn val_file_with_an_unknown_label_names_file_line_and_column() {
    let f = Fixtures::new();
    let train = f.file("train.csv", TRAIN_CSV);
    let val = f.file(
        "val_label.csv",
        "y,note,b,a\n1,x,2.9,2.0\n0,y,1.0,0.2\n2,z,3.3,2.4\n",
    );
    let err = train_fails(&["--data", &train, "--val", &val, "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            &format!("{val}, line 4, column 1 \"y\": "),
            "label \"2\"",
            "\"1\" (positive)",
            "\"0\" (negative)",
        ],
    );
    // A label that equals a training label as a number is the same class.
    let val = f.file(
        "val_label_num.csv",
        "y,note,b,a\n1.0,x,2.9,2.0\n0,y,1.0,0.2\n",
    );
    let r = train_json(&["--data", &train, "--val", &val, "--backend", "cpu"]);
    assert_eq!(
        uint(&r["data"]["val"]["positives"], "data.val.positives"),
        1
    );
}

#[test]
fn val_and_val_split_conflict() {
    let f = Fixtures::new();
    let train = f.file("train.csv", TRAIN_CSV);
    let val = f.file("val.csv", VAL_CSV);
    let err = train_fails(&[
        "--data",
        &train,
        "--val",
        &val,
        "--val-split",
        "0.25",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &["--val <FILE.csv>", "--val-split <F>"]);
}

// ---------------------------------------------------------------------------------------
// 2. --val-split
// ---------------------------------------------------------------------------------------

#[test]
fn val_split_is_stratified_and_seeded() {
    let args = [
        "--demo",
        "blobs",
        "--rows",
        "200",
        "--val-split",
        "0.25",
        "--hidden",
        "3",
        "--threshold",
        "none",
        "--max-iter",
        "30",
        "--seed",
        "7",
        "--backend",
        "cpu",
    ];
    let r = train_json(&args);
    let d = &r["data"];
    assert_eq!(uint(&d["rows"], "data.rows"), 150);
    assert_eq!(uint(&d["positives"], "data.positives"), 75);
    let v = &d["val"];
    assert_eq!(uint(&v["rows"], "data.val.rows"), 50);
    assert_eq!(uint(&v["positives"], "data.val.positives"), 25);
    let source = v["source"].as_str().expect("data.val.source");
    assert_contains_all(source, &["demo:blobs", "--val-split 0.25"]);
    assert_eq!(check_metrics(&r["metrics"], "metrics", 150), 75);
    assert_eq!(check_metrics(&r["val_metrics"], "val_metrics", 50), 25);
    assert_eq!(r["stop"]["monitor"], "val");

    let sum = checksum_of;
    let again = train_json(&args);
    assert_eq!(sum(&r), sum(&again), "same seed, same weights");
    assert_eq!(
        r["val_metrics"], again["val_metrics"],
        "same seed, same split"
    );
    let mut other = args;
    other[13] = "8";
    let other = train_json(&other);
    assert_ne!(sum(&r), sum(&other), "another seed, other weights");
}

#[test]
fn val_split_outside_zero_one_names_the_flag() {
    let err = train_fails(&[
        "--demo",
        "blobs",
        "--rows",
        "200",
        "--val-split",
        "1.5",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &err,
        &["wgtrain: error:", "--val-split 1.5", "between 0 and 1"],
    );
    let err = train_fails(&["--demo", "blobs", "--val-split", "0", "--backend", "cpu"]);
    assert_contains_all(&err, &["--val-split 0", "between 0 and 1"]);
}

// ---------------------------------------------------------------------------------------
// 3. --monitor val without validation data
// ---------------------------------------------------------------------------------------

#[test]
fn monitor_val_without_validation_data_names_val() {
    let err = train_fails(&["--demo", "blobs", "--monitor", "val", "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &["wgtrain: error:", "--monitor val", "--val", "--val-split"],
    );
}

// ---------------------------------------------------------------------------------------
// 4. --log
// ---------------------------------------------------------------------------------------

#[test]
fn log_has_one_row_per_check_and_ends_at_the_report() {
    let f = Fixtures::new();
    let log = f.path("run.csv");
    let run = train_run(&[
        "--demo",
        "moons",
        "--rows",
        "200",
        "--noise",
        "0.2",
        "--eval-every",
        "3",
        "--max-iter",
        "10",
        "--threshold",
        "none",
        "--log",
        &log,
        "--backend",
        "cpu",
    ]);
    let text = std::fs::read_to_string(&log).expect("the log");
    assert_eq!(text.lines().next(), Some(TRAIN_HEADER));
    let l = Log::read(&log);
    assert_eq!(l.iterations(), vec![0, 3, 6, 9, 10]);
    let elapsed = l.column("elapsed_s");
    assert!(
        elapsed.windows(2).all(|w| w[0] <= w[1]) && elapsed[0] >= 0.0,
        "elapsed_s: {elapsed:?}"
    );
    assert_eq!(run.r["stop"]["iteration"], 10);
    assert_eq!(uint(&run.r["eval_every"], "eval_every"), 3);

    // The last row is the returned weights: every metric equal to the report's, exactly.
    let last = l.rows.last().expect("a row");
    let accuracy = last[l.col("train_accuracy")];
    assert_eq!(accuracy, run.exact("metrics", "accuracy"));
    assert!(
        accuracy > 0.0 && accuracy < 1.0,
        "an accuracy strictly between 0 and 1 makes the comparison meaningful: {accuracy}"
    );
    for k in METRIC_FIELDS {
        assert_eq!(
            last[l.col(&format!("train_{k}"))],
            run.exact("metrics", k),
            "train_{k}"
        );
    }
    // The first row is the initial weights of a logistic regression: loss ln 2.
    assert!((l.rows[0][l.col("train_loss")] - std::f64::consts::LN_2).abs() < 1e-6);

    // With validation rows the header gains the val_* columns.
    let log2 = f.path("run_val.csv");
    let run = train_run(&[
        "--demo",
        "moons",
        "--rows",
        "200",
        "--noise",
        "0.2",
        "--val-split",
        "0.2",
        "--eval-every",
        "3",
        "--max-iter",
        "10",
        "--threshold",
        "none",
        "--log",
        &log2,
        "--backend",
        "cpu",
    ]);
    let text = std::fs::read_to_string(&log2).expect("the log");
    assert_eq!(
        text.lines().next(),
        Some(
            format!("{TRAIN_HEADER},val_loss,val_accuracy,val_precision,val_recall,val_f1,val_iou")
                .as_str()
        )
    );
    let l = Log::read(&log2);
    assert_eq!(l.iterations(), vec![0, 3, 6, 9, 10]);
    let last = l.rows.last().expect("a row");
    for k in METRIC_FIELDS {
        assert_eq!(
            last[l.col(&format!("train_{k}"))],
            run.exact("metrics", k),
            "train_{k}"
        );
        assert_eq!(
            last[l.col(&format!("val_{k}"))],
            run.exact("val_metrics", k),
            "val_{k}"
        );
    }
}

#[test]
fn log_in_a_missing_directory_names_the_path() {
    let f = Fixtures::new();
    let log = f.path("no/such/dir/run.csv");
    let err = train_fails(&["--demo", "xnor", "--log", &log, "--backend", "cpu"]);
    assert_contains_all(&err, &[&format!("--log {log}: "), "does not exist"]);
}

// ---------------------------------------------------------------------------------------
// 5. --patience
// ---------------------------------------------------------------------------------------

both_backends! {
    fn patience_stops_after_three_checks_without_improvement(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let f = Fixtures::new();
        let log = f.path("patience.csv");
        let args = patience_args(&["--log", &log, "--backend", backend]);
        let run = train_run(&as_strs(&args));
        let s = &run.r["stop"];
        assert_eq!(s["reason"], "patience");
        assert_eq!(s["monitor"], "val");
        assert_eq!(s["metric"], "loss");
        assert_eq!(s["restored_best"], false);
        let stopped_at = uint(&s["stopped_at"], "stop.stopped_at");
        assert!(stopped_at < 3000, "a plateau before max_iter: {stopped_at}");
        assert_eq!(uint(&s["iteration"], "stop.iteration"), stopped_at);
        let best_it = uint(&s["best_iteration"], "stop.best_iteration");
        let best = run.exact("stop", "best_value");
        // Every iteration is a check: the last improvement was exactly 3 checks before the stop.
        assert_eq!(best_it + 3, stopped_at);

        let l = Log::read(&log);
        let its = l.iterations();
        assert_eq!(its, (0..=stopped_at).collect::<Vec<_>>());
        let val_loss = l.column("val_loss");
        let j = l.col("val_loss");
        assert_eq!(
            l.at(best_it)[j],
            best,
            "the best row's val_loss is best_value"
        );
        // The last three checks brought no improvement (min_delta 0: not below the best) ...
        for row in &l.rows[l.rows.len() - 3..] {
            assert!(
                row[j] >= best,
                "iteration {}: {} < best {best}",
                row[0],
                row[j]
            );
        }
        // ... the best is the lowest val_loss of the whole run ...
        let min = val_loss.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(min, best);
        // ... and the check just before it was worse, or it would not have counted.
        assert!(val_loss[best_it as usize - 1] > best);
        // The reported value is the last row's.
        assert_eq!(run.exact("stop", "value"), val_loss[val_loss.len() - 1]);
        assert_eq!(
            run.exact("val_metrics", "loss"),
            val_loss[val_loss.len() - 1]
        );
    }
}

both_backends! {
    fn min_delta_makes_patience_stop_no_later(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        // A large min_delta leaves fewer checks that count as improvements, so patience fires
        // earlier; the best then need not be the lowest value.
        let plain = train_json(&as_strs(&patience_args(&["--backend", backend])));
        let strict = train_json(&as_strs(&patience_args(&[
            "--min-delta",
            "0.01",
            "--backend",
            backend,
        ])));
        assert_eq!(strict["stop"]["reason"], "patience");
        let a = uint(&plain["stop"]["stopped_at"], "plain stopped_at");
        let b = uint(&strict["stop"]["stopped_at"], "strict stopped_at");
        assert!(b < a, "--min-delta 0.01 stops at {b}, without it at {a}");
        let rel = train_json(&as_strs(&patience_args(&[
            "--min-delta-rel",
            "0.5",
            "--backend",
            backend,
        ])));
        assert_eq!(rel["stop"]["reason"], "patience");
        assert!(uint(&rel["stop"]["stopped_at"], "rel stopped_at") < a);
    }
}

// ---------------------------------------------------------------------------------------
// 6. --restore-best
// ---------------------------------------------------------------------------------------

both_backends! {
    fn restore_best_returns_the_best_checks_weights(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let f = Fixtures::new();
        let log = f.path("restore.csv");
        let args = patience_args(&["--restore-best", "--log", &log, "--backend", backend]);
        let run = train_run(&as_strs(&args));
        let r = &run.r;
        let s = &r["stop"];
        assert_eq!(s["reason"], "patience");
        assert_eq!(s["restored_best"], true);
        assert_eq!(r["restore_best"], true);
        let iteration = uint(&s["iteration"], "stop.iteration");
        let best_it = uint(&s["best_iteration"], "stop.best_iteration");
        let stopped_at = uint(&s["stopped_at"], "stop.stopped_at");
        assert_eq!(iteration, best_it);
        assert!(stopped_at > iteration, "{stopped_at} > {iteration}");

        let l = Log::read(&log);
        let row = l.at(best_it);
        assert_eq!(run.exact("val_metrics", "loss"), row[l.col("val_loss")]);
        assert_eq!(run.exact("stop", "value"), row[l.col("val_loss")]);
        assert_eq!(run.exact("stop", "best_value"), row[l.col("val_loss")]);
        assert_eq!(run.exact("metrics", "loss"), row[l.col("train_loss")]);
        // value_at_stop is still the metric where the rule fired.
        assert_eq!(
            run.exact("stop", "value_at_stop"),
            l.at(stopped_at)[l.col("val_loss")]
        );
        assert_ne!(
            run.exact("stop", "value_at_stop"),
            run.exact("stop", "value")
        );

        // The same run without --restore-best stops at the same place with other weights.
        let plain = train_json(&as_strs(&patience_args(&["--backend", backend])));
        assert_eq!(plain["stop"]["stopped_at"], stopped_at);
        assert_eq!(plain["stop"]["iteration"], stopped_at);
        assert_ne!(plain["model"]["checksum"], r["model"]["checksum"]);
    }
}

// ---------------------------------------------------------------------------------------
// 7. --divergence
// ---------------------------------------------------------------------------------------

both_backends! {
    fn divergence_stops_at_the_first_check(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        // A zero-initialised logistic regression starts at loss ln 2 > 0.5.
        let r = train_json(&[
            "--demo",
            "blobs",
            "--rows",
            "100",
            "--metric",
            "loss",
            "--divergence",
            "0.5",
            "--threshold",
            "none",
            "--backend",
            backend,
        ]);
        let s = &r["stop"];
        assert_eq!(s["reason"], "divergence");
        assert_eq!(s["iteration"], 0);
        assert_eq!(s["stopped_at"], 0);
        let v = num(&s["value"], "stop.value");
        assert!((v - std::f64::consts::LN_2).abs() < 1e-6, "loss {v}");
        let message = s["message"].as_str().expect("stop.message");
        assert_contains_all(message, &["(divergence)", "> 0.5000"]);

        // XNOR: a logistic regression is at accuracy 0.5, below 0.6.
        let r = train_json(&["--demo", "xnor", "--divergence", "0.6", "--backend", backend]);
        let s = &r["stop"];
        assert_eq!(s["reason"], "divergence");
        assert_eq!(s["stopped_at"], 0);
        assert_eq!(s["value"], 0.5);

        // Exactly at the bound is not worse than it: no divergence.
        let r = train_json(&[
            "--demo",
            "xnor",
            "--divergence",
            "0.5",
            "--max-iter",
            "20",
            "--backend",
            backend,
        ]);
        assert_eq!(r["stop"]["reason"], "max_iter");
        assert_eq!(r["stop"]["stopped_at"], 20);
    }
}

// ---------------------------------------------------------------------------------------
// 8. --max-time
// ---------------------------------------------------------------------------------------

/// On the CPU only: a GPU run checks the time between chunks (it stopped at iteration 3 on
/// lavapipe), so the first iteration is not where it stops there.
#[test]
fn max_time_stops_after_the_first_iteration() {
    let r = train_json(&[
        "--demo",
        "blobs",
        "--threshold",
        "none",
        "--max-iter",
        "100000",
        "--max-time",
        "0.000001",
        "--backend",
        "cpu",
    ]);
    let s = &r["stop"];
    assert_eq!(s["reason"], "max_time");
    assert_eq!(s["stopped_at"], 0);
    assert_eq!(s["iteration"], 0);
    let message = s["message"].as_str().expect("stop.message");
    assert!(message.contains("(max_time)"), "{message}");
}

// ---------------------------------------------------------------------------------------
// 9. --warmup
// ---------------------------------------------------------------------------------------

both_backends! {
    fn warmup_delays_patience(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        // XNOR with a logistic regression never improves: patience 1 stops at the second check.
        let base = [
            "--demo",
            "xnor",
            "--patience",
            "1",
            "--threshold",
            "none",
            "--max-iter",
            "500",
            "--backend",
            backend,
        ];
        let r = train_json(&base);
        assert_eq!(r["stop"]["reason"], "patience");
        assert_eq!(r["stop"]["best_iteration"], 0);
        assert_eq!(r["stop"]["stopped_at"], 1);

        // Checks before iteration 50 neither set the best nor count.
        let r = train_json(&[&base[..], &["--warmup", "50"]].concat());
        let s = &r["stop"];
        let stopped_at = uint(&s["stopped_at"], "stop.stopped_at");
        assert!(
            stopped_at >= 50 || s["reason"] == "max_iter",
            "stopped at {stopped_at} ({})",
            s["reason"]
        );
        assert_eq!(s["reason"], "patience");
        assert_eq!(s["best_iteration"], 50);
        assert_eq!(stopped_at, 51);
    }
}

// ---------------------------------------------------------------------------------------
// 10. Bad values of the rule flags
// ---------------------------------------------------------------------------------------

#[test]
fn min_delta_and_min_delta_rel_conflict() {
    let err = train_fails(&[
        "--demo",
        "blobs",
        "--min-delta",
        "0.1",
        "--min-delta-rel",
        "0.1",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &["--min-delta <D>", "--min-delta-rel <R>"]);
}

#[test]
fn negative_min_delta_names_the_flag() {
    let err = train_fails(&["--demo", "blobs", "--min-delta=-1", "--backend", "cpu"]);
    assert_contains_all(&err, &["wgtrain: error:", "--min-delta -1", "at least 0"]);
    let err = train_fails(&[
        "--demo",
        "blobs",
        "--min-delta-rel=-0.5",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &["--min-delta-rel -0.5", "at least 0"]);
}

/// The usual spelling, `--flag -1` with a space, should reach the same checks as `--flag=-1`
/// (as it does for `--threshold`, `--lr`, `--noise` and `--divergence`). Today clap rejects the
/// value as an unknown argument ("unexpected argument '-1' found") without naming the flag.
#[test]
fn negative_values_with_a_space_name_the_flag() {
    for (flag, value) in [
        ("--min-delta", "-1"),
        ("--min-delta-rel", "-1"),
        ("--max-time", "-1"),
        ("--val-split", "-0.5"),
    ] {
        let err = train_fails(&["--demo", "blobs", flag, value, "--backend", "cpu"]);
        assert_contains_all(&err, &[&format!("{flag} {value}")]);
    }
}

#[test]
fn eval_every_zero_names_the_flag() {
    let err = train_fails(&["--demo", "blobs", "--eval-every", "0", "--backend", "cpu"]);
    assert_contains_all(&err, &["wgtrain: error:", "--eval-every 0", "at least 1"]);
}

#[test]
fn max_time_zero_names_the_flag() {
    let err = train_fails(&["--demo", "blobs", "--max-time", "0", "--backend", "cpu"]);
    assert_contains_all(&err, &["wgtrain: error:", "--max-time 0", "above 0"]);
    let err = train_fails(&["--demo", "blobs", "--max-time=-1", "--backend", "cpu"]);
    assert_contains_all(&err, &["--max-time -1", "above 0"]);
}

// ---------------------------------------------------------------------------------------
// 11. The human summary
// ---------------------------------------------------------------------------------------

#[test]
fn human_summary_names_the_reason() {
    let json = train_json(&as_strs(&patience_args(&["--backend", "cpu"])));
    let best_it = uint(&json["stop"]["best_iteration"], "stop.best_iteration");
    let stopped_at = uint(&json["stop"]["stopped_at"], "stop.stopped_at");

    let out = train_human(&as_strs(&patience_args(&["--backend", "cpu"])));
    assert_contains_all(
        &out,
        &[
            &format!("result:  stopped at iteration {stopped_at}: val loss did not improve"),
            "for 3 checks in a row (patience)",
            &format!("at iteration {best_it}"),
        ],
    );
    assert!(!out.contains("returned the best weights"), "{out}");

    let out = train_human(&as_strs(&patience_args(&[
        "--restore-best",
        "--backend",
        "cpu",
    ])));
    assert_contains_all(
        &out,
        &[
            "(patience)",
            &format!("returned the best weights, of iteration {best_it} (val loss"),
        ],
    );

    let out = train_human(&["--demo", "xnor", "--divergence", "0.6", "--backend", "cpu"]);
    assert_contains_all(
        &out,
        &["stopped at iteration 0: accuracy 0.5000 < 0.6000 (divergence)"],
    );
}

// ---------------------------------------------------------------------------------------
// 12. GPU agrees with CPU on a patience stop
// ---------------------------------------------------------------------------------------

#[test]
fn gpu_patience_stop_matches_cpu() {
    let devices = wgtrain().args(["devices", "--json"]).output().unwrap();
    let list: Value = serde_json::from_slice(&devices.stdout).unwrap_or(Value::Null);
    if list.as_array().is_none_or(|a| a.is_empty()) {
        common::no_gpu("wgtrain devices lists no adapter");
        return;
    }
    let cpu = train_json(&as_strs(&patience_args(&["--backend", "cpu"])));
    let gpu = train_json(&as_strs(&patience_args(&["--backend", "gpu"])));
    assert_eq!(cpu["backend"], "cpu");
    assert_eq!(gpu["backend"], "gpu");
    assert_eq!(gpu["stop"]["reason"], "patience");
    assert_eq!(gpu["stop"]["reason"], cpu["stop"]["reason"]);
    assert_eq!(gpu["stop"]["stopped_at"], cpu["stop"]["stopped_at"]);
    assert_eq!(gpu["data"]["val"], cpu["data"]["val"], "the same split");
}
