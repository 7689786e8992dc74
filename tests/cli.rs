//! End-to-end tests of the `wgtrain` binary: error messages for bad input, backend choice,
//! the JSON report, CSV and demo training, determinism and the `devices` subcommand.
//!
//! Tests of training itself run on both backends (`both_backends!`); the others train on the
//! CPU (`--backend gpu` on lavapipe is slow). Fixtures are written into a fresh temporary
//! directory per test.

mod common;

use predicates::prelude::*;
use serde_json::Value;

use common::Kind;
use common::cli::{
    Fixtures, assert_contains_all, backend, checksum_of, num, train_fails, train_json, uint,
    wgtrain,
};

/// Four columns, label last; the `b` cell on file line 4 is `cell`.
fn csv_with_bad_b(cell: &str) -> String {
    format!("id,a,b,y\n1,0.5,1.0,0\n2,1.5,2.0,1\n3,2.5,{cell},0\n4,3.5,4.0,1\n")
}

/// Eight tumours, three malignant (large radius), label in the middle, an id column first.
const MB_CSV: &str = "\
id,radius,diag,texture
101,17.9,M,10.4
102,8.1,B,12.0
103,20.6,M,17.8
104,9.3,B,14.1
105,10.2,B,13.2
106,19.7,M,21.3
107,7.8,B,18.6
108,11.0,B,15.5
";

// ---------------------------------------------------------------------------------------
// 1. Bad input
// ---------------------------------------------------------------------------------------

#[test]
fn missing_file_names_the_file() {
    let f = Fixtures::new();
    let path = f.path("nope.csv");
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(&err, &["wgtrain: error:", &path, "No such file"]);
    assert_eq!(err.matches("No such file").count(), 1, "said once: {err}");
}

#[test]
fn empty_file_is_reported() {
    let f = Fixtures::new();
    let path = f.file("empty.csv", "");
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(&err, &[&format!("{path}: "), "the file is empty"]);
}

#[test]
fn header_without_rows_is_reported() {
    let f = Fixtures::new();
    let path = f.file("header.csv", "a,b,y\n");
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(&err, &[&format!("{path}: "), "no data rows"]);
}

#[test]
fn wrong_field_count_names_the_line() {
    let f = Fixtures::new();
    let path = f.file(
        "fields.csv",
        "id,a,b,y\n1,0.5,1.0,0\n2,1.5,2.0,1\n3,2.5,3.0,0\n4,3.5,1\n",
    );
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[&format!("{path}, line 5: "), "expected 4 fields", "found 3"],
    );
}

fn bad_cell(cell: &str, what: &str) {
    let f = Fixtures::new();
    let path = f.file("cell.csv", &csv_with_bad_b(cell));
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(&err, &[&format!("{path}, line 4, column 3 \"b\": "), what]);
}

#[test]
fn text_feature_cell_names_line_column_and_value() {
    bad_cell("abc", "\"abc\" is not a number");
}

#[test]
fn nan_feature_cell_names_line_column_and_value() {
    bad_cell("NaN", "\"NaN\" is not a finite number");
}

#[test]
fn inf_feature_cell_names_line_column_and_value() {
    bad_cell("inf", "\"inf\" is not a finite number");
}

#[test]
fn empty_feature_cell_names_line_and_column() {
    bad_cell("", "the cell is empty");
}

#[test]
fn label_with_one_value_is_reported() {
    let f = Fixtures::new();
    let path = f.file("one.csv", "a,b,y\n1,2,0\n3,4,0\n5,6,0\n");
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            &format!("{path}: "),
            "label column \"y\"",
            "only one distinct value (\"0\")",
            "at least two",
        ],
    );
}

#[test]
fn label_with_more_values_than_a_model_has_classes_is_reported() {
    let f = Fixtures::new();
    let rows: String = (0..260).map(|i| format!("{i},{},c{i}\n", i % 7)).collect();
    let path = f.file("many.csv", &format!("a,b,y\n{rows}"));
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            &format!("{path}, line 258: "),
            "label column \"y\"",
            "more than 256 distinct values",
            "(\"c0\", \"c1\", \"c2\"",
            "--label",
        ],
    );
}

#[test]
fn unknown_label_column_lists_the_columns() {
    let f = Fixtures::new();
    let path = f.file("mb.csv", MB_CSV);
    let err = train_fails(&["--data", &path, "--label", "nosuch", "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            "--label nosuch",
            &path,
            "no column \"nosuch\"",
            "columns: id, radius, diag, texture",
        ],
    );
}

#[test]
fn unknown_drop_column_lists_the_columns() {
    let f = Fixtures::new();
    let path = f.file("mb.csv", MB_CSV);
    let err = train_fails(&[
        "--data",
        &path,
        "--label",
        "diag",
        "--drop",
        "nosuch",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &err,
        &[
            "--drop nosuch",
            &path,
            "no column \"nosuch\"",
            "columns: id, radius, diag, texture",
        ],
    );
}

#[test]
fn positive_not_among_labels_lists_them() {
    let f = Fixtures::new();
    let path = f.file("mb.csv", MB_CSV);
    let err = train_fails(&[
        "--data",
        &path,
        "--label",
        "diag",
        "--positive",
        "X",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &err,
        &["--positive X", "\"diag\"", "\"B\" and \"M\"", "not \"X\""],
    );
}

#[test]
fn accuracy_threshold_above_one_is_rejected() {
    let err = train_fails(&["--demo", "xnor", "--threshold", "1.5", "--backend", "cpu"]);
    assert_contains_all(&err, &["--threshold 1.5", "accuracy", "between 0 and 1"]);
}

#[test]
fn non_numeric_threshold_is_rejected() {
    let err = train_fails(&["--demo", "xnor", "--threshold", "abc", "--backend", "cpu"]);
    assert_contains_all(&err, &["--threshold", "abc", "`none`"]);
}

#[test]
fn zero_learning_rate_is_rejected() {
    let err = train_fails(&["--demo", "xnor", "--lr", "0", "--backend", "cpu"]);
    assert_contains_all(&err, &["'0'", "--lr", "above 0"]);
}

#[test]
fn zero_hidden_units_are_rejected() {
    let err = train_fails(&["--demo", "xnor", "--hidden", "0", "--backend", "cpu"]);
    assert_contains_all(&err, &["--hidden", "at least one unit"]);
}

#[test]
fn rows_do_not_apply_to_xnor() {
    let err = train_fails(&["--demo", "xnor", "--rows", "10", "--backend", "cpu"]);
    assert_contains_all(&err, &["--rows", "--demo xnor"]);
}

#[test]
fn noise_above_one_is_rejected() {
    let err = train_fails(&["--noise", "2", "--demo", "blobs", "--backend", "cpu"]);
    assert_contains_all(&err, &["--noise 2", "between 0 and 1"]);
}

#[test]
fn no_data_source_is_rejected() {
    let err = train_fails(&["--backend", "cpu"]);
    assert_contains_all(&err, &["--data", "--demo"]);
}

// ---------------------------------------------------------------------------------------
// 2. Backend choice without an adapter
// ---------------------------------------------------------------------------------------

#[test]
fn gpu_backend_without_adapter_explains_the_fix() {
    let assert = wgtrain()
        .env("WGPU_BACKEND", "metal")
        .args(["train", "--demo", "xnor", "--backend", "gpu"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("panicked").not());
    let err = String::from_utf8_lossy(&assert.get_output().stderr);
    assert_contains_all(
        &err,
        &["no GPU adapter", "mesa-vulkan-drivers", "--backend cpu"],
    );
}

#[test]
fn auto_backend_without_adapter_falls_back_to_cpu() {
    let assert = wgtrain()
        .env("WGPU_BACKEND", "metal")
        .args(["train", "--demo", "xnor", "--backend", "auto", "--json"])
        .assert()
        .success();
    let out = assert.get_output();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line notice, got:\n{err}");
    assert!(lines[0].starts_with("wgtrain: "), "{err}");
    assert!(lines[0].contains("CPU"), "{err}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["backend"], "cpu");
    assert!(report["adapter"].is_null());
}

// ---------------------------------------------------------------------------------------
// 3. The JSON report
// ---------------------------------------------------------------------------------------

#[test]
fn json_report_has_every_field() {
    let r = train_json(&[
        "--demo",
        "blobs",
        "--rows",
        "50",
        "--hidden",
        "3",
        "--seed",
        "1",
        "--backend",
        "cpu",
    ]);
    assert_eq!(r["backend"], "cpu");
    assert!(r["adapter"].is_null(), "adapter: {}", r["adapter"]);

    let d = &r["data"];
    assert_eq!(uint(&d["rows"], "data.rows"), 50);
    assert_eq!(uint(&d["features"], "data.features"), 2);
    assert_eq!(uint(&d["positives"], "data.positives"), 25);
    assert_eq!(d["label_mapping"]["column"], "label");
    assert_eq!(d["label_mapping"]["positive"], "1");
    assert_eq!(d["label_mapping"]["negative"], "0");

    let m = &r["model"];
    assert_eq!(m["layers"], serde_json::json!([2, 3, 1]));
    assert_eq!(m["activation"], "relu");
    let lr = train_json(&[
        "--demo",
        "blobs",
        "--rows",
        "20",
        "--max-iter",
        "1",
        "--backend",
        "cpu",
    ]);
    assert!(
        lr["model"]["activation"].is_null(),
        "no hidden layer, no activation"
    );
    assert_eq!(
        uint(&m["parameters"], "model.parameters"),
        2 * 3 + 3 + 3 + 1
    );
    let sum = m["checksum"].as_str().expect("model.checksum is a string");
    assert_eq!(sum.len(), 64, "checksum {sum}");
    assert!(
        sum.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "checksum {sum} is not lowercase hex"
    );

    let s = &r["stop"];
    let reason = s["reason"].as_str().expect("stop.reason is a string");
    assert!(
        ["threshold", "max_iter", "non_finite"].contains(&reason),
        "reason {reason}"
    );
    let iteration = uint(&s["iteration"], "stop.iteration");
    assert!(iteration <= 1000);
    assert_eq!(s["metric"], "accuracy");
    assert_eq!(num(&s["threshold"], "stop.threshold"), 0.99);
    let value = num(&s["value"], "stop.value");
    let message = s["message"].as_str().expect("stop.message is a string");
    assert!(message.contains(&iteration.to_string()), "{message}");

    let mt = &r["metrics"];
    for k in ["loss", "accuracy", "precision", "recall", "f1", "iou"] {
        num(&mt[k], k);
    }
    assert_eq!(num(&mt["accuracy"], "accuracy"), value);
    let counts: u64 = ["tp", "fp", "fn", "tn"]
        .iter()
        .map(|k| uint(&mt[*k], k))
        .sum();
    assert_eq!(counts, 50);

    assert_eq!(uint(&r["max_iter"], "max_iter"), 1000);
    let t = &r["timing"];
    for k in ["setup_s", "train_s", "iterations_per_s"] {
        assert!(num(&t[k], k) >= 0.0, "timing.{k}: {}", t[k]);
    }
}

// ---------------------------------------------------------------------------------------
// 4. CSV training end to end
// ---------------------------------------------------------------------------------------

#[test]
fn csv_with_text_labels_drop_and_positive() {
    let f = Fixtures::new();
    let path = f.file("mb.csv", MB_CSV);

    // The label is a middle column; without --drop the id is a feature.
    let r = train_json(&["--data", &path, "--label", "diag", "--backend", "cpu"]);
    assert_eq!(r["data"]["features"], 3);

    let base = ["--data", &path, "--label", "diag", "--drop", "id"];
    let r = train_json(&[&base[..], &["--backend", "cpu"]].concat());
    let d = &r["data"];
    assert_eq!(d["rows"], 8);
    assert_eq!(d["features"], 2);
    assert_eq!(d["label_mapping"]["column"], "diag");
    assert_eq!(d["label_mapping"]["positive"], "M"); // sorts last
    assert_eq!(d["label_mapping"]["negative"], "B");
    assert_eq!(d["positives"], 3);
    assert_eq!(r["model"]["layers"], serde_json::json!([2, 1]));
    assert_eq!(r["stop"]["reason"], "threshold");
    assert_eq!(r["metrics"]["accuracy"], 1.0);

    let r = train_json(&[&base[..], &["--positive", "B", "--backend", "cpu"]].concat());
    let d = &r["data"];
    assert_eq!(d["label_mapping"]["positive"], "B");
    assert_eq!(d["label_mapping"]["negative"], "M");
    assert_eq!(d["positives"], 5);
    assert_eq!(r["metrics"]["accuracy"], 1.0);
}

// ---------------------------------------------------------------------------------------
// 5. The XNOR demo
// ---------------------------------------------------------------------------------------

both_backends! {
    fn xnor_logistic_regression_cannot_fit(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let r = train_json(&["--demo", "xnor", "--backend", backend]);
        assert_eq!(r["backend"], backend);
        assert_eq!(r["model"]["layers"], serde_json::json!([2, 1]));
        assert_eq!(r["stop"]["reason"], "max_iter");
        assert_eq!(r["stop"]["iteration"], 1000);
        assert!(num(&r["metrics"]["accuracy"], "accuracy") < 1.0);
    }

    fn xnor_mlp_reaches_full_accuracy(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let r = train_json(&[
            "--demo",
            "xnor",
            "--hidden",
            "8",
            "--activation",
            "tanh",
            "--lr",
            "0.5",
            "--backend",
            backend,
        ]);
        assert_eq!(r["backend"], backend);
        assert_eq!(r["model"]["layers"], serde_json::json!([2, 8, 1]));
        assert_eq!(r["model"]["activation"], "tanh");
        assert_eq!(r["stop"]["reason"], "threshold");
        assert_eq!(r["stop"]["value"], 1.0);
        assert_eq!(r["metrics"]["accuracy"], 1.0);
        assert!(uint(&r["stop"]["iteration"], "stop.iteration") < 1000);
    }
}

// ---------------------------------------------------------------------------------------
// 6. Determinism
// ---------------------------------------------------------------------------------------

const DET_ARGS: [&str; 12] = [
    "--demo",
    "blobs",
    "--rows",
    "200",
    "--noise",
    "0.1",
    "--hidden",
    "4",
    "--threshold",
    "none",
    "--max-iter",
    "50",
];

both_backends! {
    fn training_is_deterministic(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let checksum = |extra: &[&str]| {
            let r = train_json(&[&DET_ARGS[..], &["--backend", backend], extra].concat());
            assert_eq!(r["backend"], backend);
            match kind {
                Kind::Gpu => assert!(
                    r["adapter"]["name"].is_string(),
                    "adapter: {}",
                    r["adapter"]
                ),
                Kind::Cpu => assert!(r["adapter"].is_null(), "adapter: {}", r["adapter"]),
            }
            assert_eq!(r["stop"]["iteration"], 50);
            checksum_of(&r)
        };
        let a = checksum(&[]);
        let b = checksum(&[]);
        assert_eq!(a, b);
        // The checksum does depend on the run: another seed gives other weights.
        let c = checksum(&["--seed", "1"]);
        assert_ne!(a, c);
    }
}

// ---------------------------------------------------------------------------------------
// 7. devices
// ---------------------------------------------------------------------------------------

#[test]
fn devices_lists_adapters() {
    wgtrain().arg("devices").assert().success();

    let assert = wgtrain().args(["devices", "--json"]).assert().success();
    let v: Value = serde_json::from_slice(&assert.get_output().stdout).expect("JSON");
    let list = v.as_array().expect("a JSON array");
    for a in list {
        for k in ["name", "api", "device_type", "driver"] {
            assert!(a[k].is_string(), "adapter field {k}: {a}");
        }
    }

    // With no backend that can serve, the list is empty and the table explains the fix.
    let assert = wgtrain()
        .env("WGPU_BACKEND", "metal")
        .args(["devices", "--json"])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&assert.get_output().stdout).expect("JSON");
    assert_eq!(v, serde_json::json!([]));
    wgtrain()
        .env("WGPU_BACKEND", "metal")
        .arg("devices")
        .assert()
        .success()
        .stdout(predicate::str::contains("mesa-vulkan-drivers"));
}

// ---------------------------------------------------------------------------------------
// 8. Iteration limits
// ---------------------------------------------------------------------------------------

both_backends! {
    fn no_threshold_runs_exactly_max_iter(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let r = train_json(&[
            "--demo",
            "xnor",
            "--threshold",
            "none",
            "--max-iter",
            "5",
            "--backend",
            backend,
        ]);
        assert_eq!(r["backend"], backend);
        assert_eq!(r["stop"]["reason"], "max_iter");
        assert_eq!(r["stop"]["iteration"], 5);
        assert!(r["stop"]["threshold"].is_null());
        assert_eq!(r["max_iter"], 5);
    }

    fn max_iter_zero_returns_the_initial_weights(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let r = train_json(&["--demo", "xnor", "--max-iter", "0", "--backend", backend]);
        assert_eq!(r["backend"], backend);
        assert_eq!(r["stop"]["reason"], "max_iter");
        assert_eq!(r["stop"]["iteration"], 0);
        assert_eq!(r["max_iter"], 0);
    }
}

#[test]
fn crlf_and_blank_lines_count_in_line_numbers() {
    let f = Fixtures::new();
    let path = f.file("crlf.csv", "a,b,y\r\n1,2,0\r\nx,2,0\r\n");
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(&err, &[&format!("{path}, line 3, column 1 \"a\""), "\"x\""]);
    let path = f.file("blank.csv", "a,b,y\n1,2,0\n\n\n\nx,2,0\n");
    let err = train_fails(&["--data", &path, "--backend", "cpu"]);
    assert_contains_all(&err, &[&format!("{path}, line 6, column 1 \"a\"")]);
}

#[test]
fn negative_numbers_reach_the_checks() {
    let err = train_fails(&[
        "--demo",
        "xnor",
        "--metric",
        "loss",
        "--threshold",
        "-1",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &["--threshold -1", "never below 0"]);
    let err = train_fails(&["--demo", "xnor", "--lr", "-0.5", "--backend", "cpu"]);
    assert_contains_all(&err, &["'-0.5'", "--lr", "above 0"]);
}

#[test]
fn zero_hidden_units_name_the_value() {
    let err = train_fails(&["--demo", "xnor", "--hidden", "4,0", "--backend", "cpu"]);
    assert_contains_all(&err, &["--hidden 4,0", "at least one unit"]);
}

#[test]
fn adapter_is_picked_by_name() {
    let devices = wgtrain().args(["devices", "--json"]).output().unwrap();
    let list: Value = serde_json::from_slice(&devices.stdout).unwrap();
    let Some(name) = list
        .as_array()
        .and_then(|a| a.first())
        .and_then(|a| a["name"].as_str())
    else {
        common::no_gpu("wgtrain devices lists no adapter");
        return;
    };
    // A lower-cased piece of the name selects it.
    let piece = name.split_whitespace().next().unwrap().to_lowercase();
    let r = train_json(&[
        "--demo",
        "xnor",
        "--max-iter",
        "2",
        "--backend",
        "gpu",
        "--adapter",
        &piece,
    ]);
    assert_eq!(r["adapter"]["name"], name);
    let err = train_fails(&[
        "--demo",
        "xnor",
        "--backend",
        "gpu",
        "--adapter",
        "no-such-gpu",
    ]);
    assert_contains_all(&err, &["--adapter no-such-gpu", "wgpu sees", name]);
}
