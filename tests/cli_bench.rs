//! End-to-end tests of `wgtrain bench` on tiny sizes: the JSON report's fields, the human
//! and Markdown outputs, one GPU configuration (lavapipe in CI) and errors for bad flags.

mod common;

use serde_json::Value;

use common::cli::{bench_fails, bench_json, bench_ok};

const TINY: &[&str] = &[
    "--rows",
    "200",
    "--features",
    "8",
    "--iters",
    "5",
    "--repeats",
    "2",
];

/// The fields every configuration's result has, with sane values.
fn check_result(r: &Value, repeats: usize) {
    let f = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("field {k} missing in {r}"))
    };
    assert_eq!(r["train_s"].as_array().unwrap().len(), repeats);
    assert_eq!(r["per_iteration_s"].as_array().unwrap().len(), repeats);
    assert!(f("warmup_train_s") > 0.0);
    let p = &r["per_iteration"];
    for k in ["median", "mean", "stddev", "min", "max"] {
        assert!(p[k].as_f64().is_some(), "per_iteration.{k} missing in {r}");
    }
    let (min, med, max) = (
        p["min"].as_f64().unwrap(),
        p["median"].as_f64().unwrap(),
        p["max"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= med && med <= max, "{p}");
    assert!((f("iterations_per_s") - 1.0 / med).abs() < 1e-6 / med);
    assert!(f("gb_per_s") > 0.0 && f("gflop_per_s") > 0.0);
    let s = &r["speedup"];
    for k in ["median", "min", "max"] {
        assert!(s[k].as_f64().unwrap() > 0.0, "speedup.{k} in {r}");
    }
    assert!(f("final_loss").is_finite());
    assert!((0.0..=1.0).contains(&f("final_accuracy")));
}

#[test]
fn cpu_json_has_every_field() {
    let v = bench_json(&[TINY, &["--backends", "cpu"]].concat());
    assert_eq!(v["rows"], 200);
    assert_eq!(v["features"], 8);
    assert_eq!(v["iters"], 5);
    assert_eq!(v["repeats"], 2);
    assert_eq!(v["layers"], serde_json::json!([8, 1]));
    assert_eq!(v["bytes_per_iteration"], 200 * 8 * 4);
    assert_eq!(v["flops_per_iteration"].as_f64(), Some(6.0 * 200.0 * 8.0));
    assert!(
        v["flop_formula"]
            .as_str()
            .unwrap()
            .contains("forward 2·rows·Σ(in·out) + backward 4·rows·Σ(in·out)")
    );
    assert!(v["timing_method"].as_str().unwrap().contains("warm-up"));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["label"], "cpu");
    assert_eq!(results[0]["config"]["backend"], "cpu");
    assert!(results[0]["config"]["sync"].is_null());
    assert!(results[0]["adapter"].is_null());
    assert_eq!(results[0]["speedup"]["median"].as_f64(), Some(1.0));
    check_result(&results[0], 2);
}

#[test]
fn mlp_counts_every_layer() {
    let v = bench_json(&[TINY, &["--backends", "cpu", "--hidden", "4,3"]].concat());
    assert_eq!(v["layers"], serde_json::json!([8, 4, 3, 1]));
    assert_eq!(v["activation"], "relu");
    let per_row = 8.0 * 4.0 + 4.0 * 3.0 + 3.0;
    assert_eq!(
        v["flops_per_iteration"].as_f64(),
        Some(6.0 * 200.0 * per_row)
    );
    check_result(&v["results"][0], 2);
}

#[test]
fn human_and_markdown_outputs() {
    let human = bench_ok(&[TINY, &["--backends", "cpu"]].concat());
    for want in [
        "Benchmark 1: cpu",
        "Time per iteration (median):",
        "min … max",
        "mean ± σ",
        "iterations/s",
        "GB/s",
        "GFLOP/s",
        "forward 2·rows·Σ(in·out)",
    ] {
        assert!(human.contains(want), "no {want:?} in:\n{human}");
    }
    let md = bench_ok(&[TINY, &["--backends", "cpu", "--markdown"]].concat());
    assert!(md.contains("| Configuration |"), "{md}");
    assert!(md.contains("|---|"), "{md}");
    assert!(md.lines().any(|l| l.starts_with("| cpu |")), "{md}");
}

#[test]
fn cpu_and_one_gpu_config_on_lavapipe() {
    if common::gpu_context().is_none() {
        return;
    }
    let v = bench_json(&[TINY, &["--backends", "cpu,gpu", "--sync", "every"]].concat());
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["label"], "gpu sync=every");
    assert_eq!(results[1]["config"]["sync"], "every");
    assert!(results[1]["adapter"]["name"].is_string());
    assert_eq!(results[1]["speedup"]["against"]["backend"], "cpu");
    for r in results {
        check_result(r, 2);
    }
    // Both backends train the same model on the same data.
    let loss = |r: &Value| r["final_loss"].as_f64().unwrap();
    assert!((loss(&results[0]) - loss(&results[1])).abs() < 1e-3);
}

/// Runs `args` with `--gpu-kernels a,b` under `--sync sync`: two GPU results, labelled by
/// their kernels, that train the same model to the same loss.
fn kernels_side_by_side(args: &[&str], sync: &str, [a, b]: [&str; 2]) {
    let kernels = format!("{a},{b}");
    let flags = [
        "--backends",
        "gpu",
        "--sync",
        sync,
        "--gpu-kernels",
        &kernels,
    ];
    let v = bench_json(&[TINY, args, &flags].concat());
    let results = v["results"].as_array().unwrap();
    let labels: Vec<&str> = results
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    let want = [a, b].map(|k| format!("gpu sync={sync} kernels={k}"));
    assert_eq!(labels, want);
    assert_eq!(results[1]["config"]["kernels"], b);
    for r in results {
        check_result(r, 2);
    }
    let loss = |r: &Value| r["final_loss"].as_f64().unwrap();
    assert!((loss(&results[0]) - loss(&results[1])).abs() < 1e-4);
}

/// `--gpu-kernels` measures logistic regression on both GPU paths in one run; where the data
/// cannot run in one workgroup, the error names the flag.
#[test]
fn gpu_kernels_side_by_side() {
    if common::gpu_context().is_none() {
        return;
    }
    kernels_side_by_side(&[], "chunk", ["blocked", "one-workgroup"]);
    let args = ["--backends", "gpu", "--sync", "chunk"];
    let mlp = ["--hidden", "4", "--gpu-kernels", "one-workgroup"];
    let err = bench_fails(&[TINY, &args, &mlp].concat());
    assert!(
        err.contains("--gpu-kernels one-workgroup") && err.contains("an MLP takes"),
        "{err}"
    );
}

/// An MLP's two GPU paths side by side; kernels for the other kind of model, or a model
/// `one-pass` cannot take, are an error that names the flag.
#[test]
fn gpu_kernels_of_an_mlp() {
    if common::gpu_context().is_none() {
        return;
    }
    kernels_side_by_side(&["--hidden", "4"], "every", ["layered", "one-pass"]);
    for (extra, want) in [
        (
            &["--hidden", "200", "--gpu-kernels", "one-pass"][..],
            "one hidden layer",
        ),
        (
            &["--hidden", "4,4", "--gpu-kernels", "one-pass"],
            "one hidden layer",
        ),
        (&["--gpu-kernels", "layered"], "logistic regression takes"),
    ] {
        let err = bench_fails(&[TINY, &["--backends", "gpu"], extra].concat());
        assert!(
            err.contains(&format!("--gpu-kernels {}", extra[extra.len() - 1]))
                && err.contains(want),
            "{extra:?}: {err}"
        );
    }
}

#[test]
fn bad_flags_name_the_flag() {
    for (args, want) in [
        (&["--rows", "0"][..], "--rows 0"),
        (&["--features", "0"], "--features 0"),
        (&["--iters", "0"], "--iters 0"),
        (&["--repeats", "0"], "--repeats 0"),
        (&["--chunk", "0"], "'0' for '--chunk"),
        (&["--lr", "-1"], "'-1' for '--lr"),
        (&["--hidden", "4,0"], "--hidden 4,0"),
        (&["--backends", "tpu"], "--backends"),
        (&["--backends", "cpu,cpu"], "--backends"),
        (&["--sync", "sometimes"], "--sync"),
        (&["--gpu-kernels", "fast"], "--gpu-kernels"),
        (&["--rows", "many"], "--rows"),
        (&["--json", "--markdown"], "--markdown"),
        (&["--no-such-flag"], "--no-such-flag"),
    ] {
        // CPU only, so that no test here waits for a GPU adapter to open.
        let err = if args.first() == Some(&"--backends") {
            bench_fails(args)
        } else {
            bench_fails(&[&["--backends", "cpu"][..], args].concat())
        };
        assert!(err.contains(want), "{args:?}: no {want:?} in:\n{err}");
    }
}

#[test]
fn bench_flags_parse_as_train_does_and_none_is_without_effect() {
    // The learning rate and chunk size have train's parsers.
    for (args, want) in [
        (
            &["--lr", "1e300"][..],
            &["'1e300'", "--lr", "too large for f32"][..],
        ),
        (
            &["--lr", "1e-50"],
            &["'1e-50'", "--lr", "too small for f32"],
        ),
        (&["--chunk", "100000"], &["'100000'", "--chunk", "1..=1024"]),
        (&["--chunk", "1025"], &["'1025'", "--chunk", "1..=1024"]),
    ] {
        let err = bench_fails(&[&["--backends", "cpu"][..], args].concat());
        common::cli::assert_contains_all(&err, want);
    }
    // GPU flags where only the CPU is measured, an activation without hidden layers.
    for (args, want) in [
        (&["--chunk", "8"][..], "--chunk 8"),
        (&["--adapter", "llvm"], "--adapter llvm"),
        (&["--gpu-kernels", "blocked"], "--gpu-kernels blocked"),
        (&["--gpu-kernels", "auto"], "--gpu-kernels auto"),
        (&["--sync", "every"], "--sync every"),
        (&["--sync", "every,chunk"], "--sync every,chunk"),
    ] {
        let err = bench_fails(&[TINY, &["--backends", "cpu"], args].concat());
        common::cli::assert_contains_all(&err, &[want, "--backends cpu"]);
    }
    // --chunk where no configuration syncs by chunks (refused before any adapter opens).
    let err = bench_fails(
        &[
            TINY,
            &["--backends", "gpu", "--sync", "every", "--chunk", "8"],
        ]
        .concat(),
    );
    common::cli::assert_contains_all(&err, &["--chunk 8: only with --sync chunk"]);
    let err = bench_fails(&[TINY, &["--backends", "cpu", "--activation", "tanh"]].concat());
    common::cli::assert_contains_all(&err, &["--activation tanh", "--hidden"]);
    let v = bench_json(
        &[
            TINY,
            &["--backends", "cpu", "--hidden", "3", "--activation", "tanh"],
        ]
        .concat(),
    );
    assert_eq!(v["activation"], "tanh");
    // An adapter asked for by name and not found is an error, not a CPU-only notice.
    let err = bench_fails(&[TINY, &["--adapter", "no-such-adapter-zzz"]].concat());
    common::cli::assert_contains_all(&err, &["--adapter no-such-adapter-zzz"]);
    assert!(!err.contains("measuring the CPU only"), "{err}");
}
