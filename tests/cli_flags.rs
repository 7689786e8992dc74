//! Flags given where they would be ignored or silently changed are errors that echo what the
//! user typed (issue 11's "Flags that are silently changed or ignored").

mod common;

use common::cli::{Fixtures, assert_contains_all, fails, ok, train_fails};

const BLIGHT: &str = "examples/data/blight_train.csv";

#[test]
fn chunk_sizes_outside_1_to_1024_are_errors_not_clamps() {
    for k in ["0", "100000", "1025"] {
        let e = train_fails(&["--demo", "moons", "--chunk", k]);
        assert_contains_all(&e, &["--chunk", &format!("'{k}'"), "1..=1024"]);
    }
    let e = train_fails(&["--demo", "moons", "--chunk", "8", "--sync", "every"]);
    assert_contains_all(&e, &["--chunk 8", "--sync chunk"]);
}

#[test]
fn chunk_on_the_cpu_is_ignored_with_a_notice() {
    let (_, err) = ok(&[
        "train",
        "--demo",
        "moons",
        "--backend",
        "cpu",
        "--chunk",
        "8",
        "--max-iter",
        "3",
        "--json",
    ]);
    assert_contains_all(&err, &["--chunk 8", "CPU backend", "ignored"]);
}

#[test]
fn csv_flags_with_a_demo_set_are_errors() {
    for (flag, v) in [("--label", "y"), ("--positive", "1"), ("--drop", "a,b")] {
        let e = train_fails(&["--demo", "moons", flag, v]);
        assert_contains_all(
            &e,
            &[&format!("{flag} {v}"), "only with --data", "--demo moons"],
        );
    }
}

#[test]
fn demo_flags_with_a_csv_file_or_the_wrong_demo_are_errors() {
    for (flag, v) in [("--rows", "5"), ("--features", "3"), ("--noise", "0.1")] {
        let e = train_fails(&["--data", BLIGHT, flag, v]);
        assert_contains_all(&e, &[&format!("{flag} {v}"), "only with --demo"]);
    }
    let e = train_fails(&["--demo", "xnor", "--rows", "50"]);
    assert_contains_all(&e, &["--rows 50", "xnor", "four points"]);
    let e = train_fails(&["--demo", "moons", "--features", "5"]);
    assert_contains_all(&e, &["--features 5", "hyperplane"]);
}

#[test]
fn a_demo_set_of_one_class_is_an_error_as_a_csv_file_would_be() {
    let e = train_fails(&["--demo", "moons", "--rows", "1", "--backend", "cpu"]);
    assert_contains_all(
        &e,
        &["--demo moons --rows 1", "1 row", "at least two classes"],
    );
}

#[test]
fn adapter_with_the_cpu_backend_is_an_error() {
    let e = train_fails(&["--demo", "moons", "--backend", "cpu", "--adapter", "llvm"]);
    assert_contains_all(&e, &["--adapter llvm", "--backend cpu"]);
    let f = Fixtures::new();
    let model = f.path("m.safetensors");
    ok(&[
        "train",
        "--data",
        BLIGHT,
        "--backend",
        "cpu",
        "--max-iter",
        "2",
        "--save",
        &model,
    ]);
    for cmd in ["predict", "eval"] {
        let e = fails(&[
            cmd,
            "--model",
            &model,
            "--data",
            BLIGHT,
            "--backend",
            "cpu",
            "--adapter",
            "nv",
        ]);
        assert_contains_all(&e, &["--adapter nv", "--backend cpu"]);
    }
}

#[test]
fn learning_rates_f32_cannot_hold_are_errors_echoing_the_input() {
    for (lr, why) in [
        ("1e300", "too large for f32"),
        ("1e-50", "too small for f32"),
        ("0", "above 0"),
        ("-0.5", "above 0"),
        ("inf", "above 0"),
        ("fast", "expected a number"),
    ] {
        let e = train_fails(&["--demo", "moons", "--lr", lr]);
        assert_contains_all(&e, &[&format!("'{lr}'"), "--lr", why]);
    }
}

/// A model file trained on BLIGHT with `extra` flags, on the CPU.
fn saved(f: &Fixtures, name: &str, extra: &[&str]) -> String {
    let model = f.path(name);
    let base = [
        "train",
        "--data",
        BLIGHT,
        "--backend",
        "cpu",
        "--max-iter",
        "2",
    ];
    ok(&[&base[..], extra, &["--save", &model]].concat());
    model
}

#[test]
fn auto_with_an_adapter_that_matches_none_is_an_error_not_a_cpu_fallback() {
    let name = "no-such-adapter-zzz";
    let e = train_fails(&["--demo", "moons", "--backend", "auto", "--adapter", name]);
    assert_contains_all(&e, &[&format!("--adapter {name}")]);
    assert!(!e.contains("training on the CPU"), "{e}");
    let f = Fixtures::new();
    let model = saved(&f, "m.safetensors", &[]);
    for cmd in ["predict", "eval"] {
        let args = [cmd, "--model", &model, "--data", BLIGHT, "--adapter", name];
        let e = fails(&args);
        assert_contains_all(&e, &[&format!("--adapter {name}")]);
    }
}

#[test]
fn activation_without_hidden_layers_is_an_error() {
    let e = train_fails(&["--demo", "moons", "--activation", "sigmoid"]);
    assert_contains_all(
        &e,
        &["--activation sigmoid", "logistic regression", "--hidden"],
    );
    let f = Fixtures::new();
    let lr = saved(&f, "lr.safetensors", &[]);
    let e = train_fails(&[
        "--data",
        BLIGHT,
        "--backend",
        "cpu",
        "--init-weights",
        &lr,
        "--activation",
        "tanh",
    ]);
    assert_contains_all(&e, &["--activation tanh", &lr, "logistic regression"]);
    // The hidden layers of an --init-weights model take it.
    let mlp = saved(
        &f,
        "mlp.safetensors",
        &["--hidden", "3", "--activation", "tanh"],
    );
    ok(&[
        "train",
        "--data",
        BLIGHT,
        "--backend",
        "cpu",
        "--max-iter",
        "2",
        "--init-weights",
        &mlp,
        "--activation",
        "tanh",
    ]);
}

#[test]
fn stop_rule_flags_that_could_never_act_are_errors() {
    let e = train_fails(&["--demo", "moons", "--patience", "0"]);
    assert_contains_all(&e, &["--patience 0", "at least 1"]);
    for (metric, v, why) in [
        ("accuracy", "1.5", "between 0 and 1"),
        ("f1", "-0.2", "between 0 and 1"),
        ("loss", "-1", "never below 0"),
    ] {
        let e = train_fails(&["--demo", "moons", "--metric", metric, "--divergence", v]);
        assert_contains_all(&e, &[&format!("--divergence {v}"), why]);
    }
    let e = train_fails(&[
        "--demo",
        "moons",
        "--max-iter",
        "100",
        "--warmup",
        "100",
        "--patience",
        "3",
    ]);
    assert_contains_all(&e, &["--warmup 100", "--max-iter 100", "--patience 3"]);
    // Without --patience a long warm-up only delays the best.
    ok(&[
        "train",
        "--demo",
        "moons",
        "--backend",
        "cpu",
        "--max-iter",
        "5",
        "--warmup",
        "10",
    ]);
}

#[test]
fn predict_and_eval_refuse_one_stream_for_model_and_data() {
    for cmd in ["predict", "eval"] {
        let out = common::cli::wgtrain()
            .args([
                cmd,
                "--model",
                "/dev/stdin",
                "--data",
                "-",
                "--backend",
                "cpu",
            ])
            .write_stdin("a,b,y\n1,2,1\n")
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {e}");
        assert_contains_all(
            &e,
            &[
                "--data - and --model /dev/stdin are the same stream, which only one of them can read",
            ],
        );
        assert!(out.stdout.is_empty(), "{cmd}");
    }
}

#[test]
fn a_threshold_f64_cannot_hold_is_an_error_not_zero() {
    let e = train_fails(&["--demo", "moons", "--threshold", "1e-400"]);
    assert_contains_all(&e, &["'1e-400'", "--threshold", "too close to 0"]);
    let e = train_fails(&["--demo", "moons", "--threshold", "4e-320"]);
    assert_contains_all(&e, &["'4e-320'", "too close to 0"]);
}

#[test]
fn noise_with_xnor_names_only_the_noise() {
    let e = train_fails(&["--demo", "xnor", "--noise", "0.5"]);
    assert_contains_all(&e, &["--noise 0.5", "xnor"]);
    assert!(!e.contains("--rows"), "{e}");
}
