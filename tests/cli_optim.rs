//! End-to-end tests of the optimizers, schedules and mini-batches: the defaults keep the
//! weights they had before optimizers existed, warm starts resume exactly, shuffled runs
//! repeat, checks fall once per epoch, and every bad flag is named.

mod common;

use common::cli::*;
use serde_json::Value;

// Runs with the default settings (SGD, no momentum, full batch, constant rate) keep their
// weights: the checksums below were taken from the binary built before optimizers existed
// (issue 12's, 7405aef).
const PINNED: [(&str, &str, &str); 5] = [
    (
        "cpu",
        "--demo spirals --hidden 16 --max-iter 200 --threshold none",
        "f5064f6c602fb201fdfb70309dc4b8e8e934d8d9799569d33f125cee6bfb7514",
    ),
    (
        "gpu",
        "--demo spirals --hidden 16 --max-iter 200 --threshold none",
        "43caaf602a4ce4bb2447bc212f2329a8239873fe0dc6dcf6f9d34481c457e792",
    ),
    (
        "cpu",
        "--demo blobs --classes 4 --max-iter 150 --threshold none --lr 0.5",
        "ed98284fede8dccbc8b68ae5055a4af3bb9f7814ccb0c3c284461e40a6005218",
    ),
    (
        "cpu",
        "--demo moons --hidden 8,8 --activation tanh --val-split 0.25 --eval-every 5 --patience 3 --max-iter 400",
        "a59219ce38fa46a54d3afb42df38822682b2143453c0225c910ebce2b978ea50",
    ),
    (
        "gpu",
        "--demo moons --hidden 8,8 --activation tanh --val-split 0.25 --eval-every 5 --patience 3 --max-iter 400",
        "32b85e15eb0520c91e2b6af1258b244838c7db677f9ce0c8c6f230167a07b474",
    ),
];

fn gpu_present() -> bool {
    backend(common::Kind::Gpu).is_some()
}

#[test]
fn default_settings_keep_the_weights_of_before() {
    for (b, args, sum) in PINNED {
        if b == "gpu" && !gpu_present() {
            continue;
        }
        let base: Vec<&str> = args.split(' ').collect();
        // The defaults, left out, spelt out, and a batch of every row.
        let spelt = [
            "--optimizer",
            "sgd",
            "--momentum",
            "0",
            "--weight-decay",
            "0",
            "--lr-schedule",
            "constant",
        ];
        let whole = ["--batch-size", "100000"];
        for extra in [&[][..], &spelt[..], &whole[..]] {
            let mut a = base.clone();
            a.extend(["--backend", b]);
            a.extend(extra);
            let r = train_json(&a);
            assert_eq!(r["model"]["checksum"], sum, "{b} {args} {extra:?}");
            assert_eq!(r["training"]["optimizer"], "sgd");
            assert_eq!(r["training"]["updates_per_epoch"], 1);
            assert_eq!(r["stop"]["epoch"].as_f64(), r["stop"]["iteration"].as_f64());
        }
    }
}

/// `train --json` with `args` plus `--backend b`.
fn run(b: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--backend", b]);
    train_json(&a)
}

/// Full-batch optimizer settings every backend runs.
const OPTIMIZERS: [&[&str]; 6] = [
    &["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"],
    &[
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--nesterov",
        "--lr",
        "0.05",
        "--weight-decay",
        "0.01",
    ],
    &["--optimizer", "adam", "--lr", "0.01"],
    &[
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--weight-decay",
        "0.1",
        "--lr-schedule",
        "step",
        "--lr-step",
        "20",
        "--lr-gamma",
        "0.5",
    ],
    &[
        "--optimizer",
        "adamw",
        "--lr",
        "0.01",
        "--weight-decay",
        "0.1",
    ],
    &[
        "--optimizer",
        "adamw",
        "--lr",
        "0.02",
        "--lr-schedule",
        "cosine",
        "--lr-tmax",
        "100",
    ],
];

/// `first` updates, save, the rest resumed from the file: the same weights as all at once.
fn resume_equals_straight(b: &str, common: &[&str], first: u64, total: u64) {
    let f = Fixtures::new();
    let saved = f.path("half.safetensors");
    let all = total.to_string();
    let head = first.to_string();
    let rest = (total - first).to_string();
    let with = |extra: &[&str]| -> Value {
        let mut a = common.to_vec();
        a.extend(["--threshold", "none"]);
        a.extend(extra);
        run(b, &a)
    };
    let straight = with(&["--max-iter", &all]);
    with(&["--max-iter", &head, "--save", &saved]);
    let resumed = with(&["--max-iter", &rest, "--init-weights", &saved]);
    assert_eq!(resumed["training"]["start_step"], first, "{common:?}");
    assert_eq!(
        checksum_of(&resumed),
        checksum_of(&straight),
        "{b} {common:?}: {first} + {} updates differ from {total}",
        total - first
    );
}

both_backends! {
    fn warm_starts_resume_every_optimizer_exactly(kind) {
        let Some(b) = backend(kind) else { return };
        for opt in OPTIMIZERS {
            let mut common = vec!["--demo", "moons", "--rows", "300", "--hidden", "6"];
            common.extend(opt);
            resume_equals_straight(b, &common, 37, 80);
        }
    }

    fn optimizers_reach_a_threshold_and_say_how(kind) {
        let Some(b) = backend(kind) else { return };
        let r = run(b, &[
            "--demo", "moons", "--rows", "600", "--hidden", "8", "--optimizer", "adam",
            "--lr", "0.05", "--threshold", "0.95", "--max-iter", "2000",
        ]);
        assert_eq!(r["stop"]["reason"], "threshold", "{}", r["stop"]);
        let t = &r["training"];
        assert_eq!(t["optimizer"], "adam");
        assert_eq!((t["beta1"].as_f64(), t["beta2"].as_f64(), t["eps"].as_f64()), (Some(0.9), Some(0.999), Some(1e-8)));
        assert!(t.get("momentum").is_none(), "{t}");
        // Plain SGD at the same rate needs more updates on this problem.
        let sgd = run(b, &[
            "--demo", "moons", "--rows", "600", "--hidden", "8", "--lr", "0.05",
            "--threshold", "0.95", "--max-iter", "2000",
        ]);
        assert!(
            uint(&r["stop"]["iteration"], "adam") < uint(&sgd["stop"]["iteration"], "sgd"),
            "adam {} sgd {}", r["stop"], sgd["stop"]
        );
    }
}

/// Mini-batch settings on backend `b`.
fn mini(b: &str, extra: &[&str]) -> Value {
    let mut a = vec![
        "--demo",
        "moons",
        "--rows",
        "500",
        "--hidden",
        "8",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-size",
        "64",
    ];
    a.extend(extra);
    run(b, &a)
}

both_backends! {
    fn mini_batches_check_once_per_epoch_and_count_epochs(kind) {
        let Some(b) = backend(kind) else { return };
        // 500 rows in batches of 64: 8 updates per epoch, the last of 52 rows.
        let f = Fixtures::new();
        let log = f.path("log.csv");
        let r = mini(b, &["--threshold", "none", "--max-epochs", "5", "--log", &log]);
        assert_eq!(r["training"]["updates_per_epoch"], 8);
        assert_eq!(r["training"]["batch_size"], 64);
        assert_eq!(r["training"]["shuffle"], true);
        assert_eq!(r["eval_every"], 8);
        assert_eq!(r["max_iter"], 40);
        assert_eq!(r["stop"]["iteration"], 40);
        assert_eq!(r["stop"]["epoch"], 5.0);
        let (_, rows) = read_csv(&std::fs::read_to_string(&log).unwrap());
        let iters: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(iters, ["0", "8", "16", "24", "32", "40"]);
        // --eval-every counts updates as before.
        let r = mini(b, &["--threshold", "none", "--max-iter", "10", "--eval-every", "3", "--log", &log]);
        assert_eq!(r["eval_every"], 3);
        let (_, rows) = read_csv(&std::fs::read_to_string(&log).unwrap());
        let iters: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(iters, ["0", "3", "6", "9", "10"]);
        assert_eq!(num(&r["stop"]["epoch"], "epoch"), 10.0 / 8.0);
    }

    fn a_check_reports_exact_metrics_of_the_weights(kind) {
        let Some(b) = backend(kind) else { return };
        // The metrics at the stop are those of the saved weights on every row, not a running
        // average of batch losses: eval of the saved model gives the same numbers.
        let f = Fixtures::new();
        let data = f.file("d.csv", &fixture_csv(300, 4));
        let model = f.path("m.safetensors");
        let r = run(b, &[
            "--data", &data, "--hidden", "5", "--optimizer", "sgd", "--momentum", "0.9", "--lr",
            "0.05", "--batch-size", "32", "--threshold", "none", "--max-epochs", "3", "--save",
            &model,
        ]);
        let (out, _) = ok(&["eval", "--model", &model, "--data", &data, "--backend", b, "--json"]);
        let e = json(&out);
        assert_eq!(e["metrics"]["accuracy"], r["metrics"]["accuracy"]);
        let (x, y) = (num(&e["metrics"]["loss"], "eval"), num(&r["metrics"]["loss"], "train"));
        assert!((x - y).abs() <= 1e-6 * y.abs(), "eval {x} train {y}");
    }

    fn shuffled_runs_repeat_and_the_order_matters(kind) {
        let Some(b) = backend(kind) else { return };
        let a = mini(b, &["--threshold", "none", "--max-iter", "30"]);
        let again = mini(b, &["--threshold", "none", "--max-iter", "30"]);
        assert_eq!(checksum_of(&a), checksum_of(&again));
        let ordered = mini(b, &["--threshold", "none", "--max-iter", "30", "--no-shuffle"]);
        assert_eq!(ordered["training"]["shuffle"], false);
        assert_ne!(checksum_of(&a), checksum_of(&ordered));
        let other_seed = mini(b, &["--threshold", "none", "--max-iter", "30", "--seed", "1"]);
        assert_ne!(checksum_of(&a), checksum_of(&other_seed));
    }

    fn warm_starts_resume_shuffled_mini_batches_mid_epoch(kind) {
        let Some(b) = backend(kind) else { return };
        for opt in [
            &["--optimizer", "adam", "--lr", "0.01"][..],
            &["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--lr", "0.02"][..],
            &["--optimizer", "adamw", "--lr", "0.01", "--weight-decay", "0.05", "--lr-schedule", "cosine", "--lr-tmax", "60"][..],
            &["--lr", "0.1", "--no-shuffle"][..],
        ] {
            let mut common = vec!["--demo", "moons", "--rows", "250", "--hidden", "6", "--batch-size", "40"];
            common.extend(opt);
            // 7 updates per epoch: 17 ends mid-epoch.
            resume_equals_straight(b, &common, 17, 45);
        }
    }

    fn mini_batch_runs_stop_where_the_cpu_stops(kind) {
        let Some(b) = backend(kind) else { return };
        let args = [
            "--demo", "moons", "--rows", "800", "--hidden", "8", "--optimizer", "adam", "--lr",
            "0.01", "--batch-size", "50", "--val-split", "0.25", "--threshold", "0.9",
        ];
        let here = run(b, &args);
        let cpu = run("cpu", &args);
        assert_eq!(here["stop"]["reason"], "threshold", "{}", here["stop"]);
        assert_eq!(here["stop"]["iteration"], cpu["stop"]["iteration"]);
        assert_eq!(here["val_metrics"]["confusion"], cpu["val_metrics"]["confusion"]);
    }
}

#[test]
fn batch_sizes_at_the_edges() {
    // B = 1, B not dividing N, B > N (full batch), one row.
    for (rows, b) in [("20", "1"), ("23", "5"), ("10", "64")] {
        let r = run(
            "cpu",
            &[
                "--demo",
                "blobs",
                "--rows",
                rows,
                "--batch-size",
                b,
                "--threshold",
                "none",
                "--max-epochs",
                "2",
            ],
        );
        let n: u64 = rows.parse().unwrap();
        let bs: u64 = b.parse().unwrap();
        let per = n.div_ceil(bs);
        assert_eq!(r["training"]["updates_per_epoch"], per, "{rows} {b}");
        assert_eq!(r["stop"]["iteration"], 2 * per);
        assert!(num(&r["metrics"]["loss"], "loss").is_finite());
    }
    let f = Fixtures::new();
    let one = f.file("one.csv", "a,y\n1,0\n");
    let e = train_fails(&["--data", &one, "--batch-size", "1", "--backend", "cpu"]);
    assert!(e.contains("one.csv"), "{e}");
}

#[test]
fn predict_ignores_the_optimizer_state() {
    let f = Fixtures::new();
    let data = f.file("d.csv", &fixture_csv(120, 2));
    let adam = f.path("adam.safetensors");
    train_json(&[
        "--data",
        &data,
        "--hidden",
        "4",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--max-iter",
        "20",
        "--threshold",
        "none",
        "--backend",
        "cpu",
        "--save",
        &adam,
    ]);
    let (out, _) = ok(&[
        "predict",
        "--model",
        &adam,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    let (p, _) = parse_predictions(&out);
    assert_eq!(p.len(), 120);
    // A momentum run's file resumed as Adam is refused, unless the state is reset.
    let e = train_fails(&[
        "--data",
        &data,
        "--init-weights",
        &adam,
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &e,
        &[
            "adam.safetensors",
            "adam after 20 updates",
            "sgd with momentum",
            "--reset-optimizer",
        ],
    );
    let r = train_json(&[
        "--data",
        &data,
        "--init-weights",
        &adam,
        "--optimizer",
        "sgd",
        "--reset-optimizer",
        "--max-iter",
        "1",
        "--threshold",
        "none",
        "--backend",
        "cpu",
    ]);
    assert_eq!(r["training"]["start_step"], 0);
}

#[test]
fn bad_optimizer_flags_are_named() {
    let base = ["--demo", "moons", "--backend", "cpu"];
    for (args, want) in [
        (
            &["--batch-size", "0"][..],
            "--batch-size 0: must be at least 1",
        ),
        (
            &["--optimizer", "adam", "--momentum", "0.9"][..],
            "--momentum 0.9: only with --optimizer sgd",
        ),
        (&["--nesterov"][..], "--nesterov: needs --momentum above 0"),
        (
            &["--optimizer", "adam", "--nesterov"][..],
            "--nesterov: only with --optimizer sgd",
        ),
        (
            &["--weight-decay", "-0.1"][..],
            "--weight-decay -0.1: must be a finite number at least 0",
        ),
        (
            &["--momentum", "-1"][..],
            "--momentum -1: must be a finite number at least 0",
        ),
        (&["--lr", "-0.1"][..], "-0.1"),
        (
            &["--lr-schedule", "step", "--lr-step", "0"][..],
            "--lr-step 0: must be at least 1",
        ),
        (
            &["--lr-schedule", "step"][..],
            "--lr-schedule step: needs --lr-step",
        ),
        (
            &["--lr-step", "5"][..],
            "--lr-step 5: only with --lr-schedule step",
        ),
        (
            &["--lr-schedule", "step", "--lr-step", "5", "--lr-gamma", "0"][..],
            "--lr-gamma 0: must be a finite number above 0",
        ),
        (
            &["--lr-schedule", "cosine", "--lr-tmax", "0"][..],
            "--lr-tmax 0: must be at least 1",
        ),
        (
            &["--optimizer", "adam", "--beta1", "1"][..],
            "--beta1 1: must be at least 0 and below 1",
        ),
        (
            &["--optimizer", "adam", "--beta2", "-0.5"][..],
            "--beta2 -0.5: must be at least 0 and below 1",
        ),
        (
            &["--optimizer", "adam", "--eps", "0"][..],
            "--eps 0: must be a finite number above 0",
        ),
        (
            &["--beta1", "0.8"][..],
            "--beta1 0.8: only with --optimizer adam or adamw",
        ),
        (&["--shuffle"][..], "--shuffle: only with --batch-size"),
        (
            &["--batch-size", "8", "--max-epochs", "2", "--max-iter", "5"][..],
            "--max-epochs",
        ),
    ] {
        let mut a = base.to_vec();
        a.extend(args);
        let e = train_fails(&a);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn a_non_finite_mini_batch_run_returns_the_last_finite_check() {
    // Checks every 10 updates; the loss overflows before the check at 10, so the weights of
    // the check at 0 come back, as they were evaluated there.
    let args = [
        "--demo",
        "moons",
        "--rows",
        "500",
        "--hidden",
        "8",
        "--batch-size",
        "50",
    ];
    let mut blown = args.to_vec();
    blown.extend(["--lr", "1e30", "--threshold", "none", "--max-epochs", "5"]);
    let r = run("cpu", &blown);
    assert_eq!(r["stop"]["reason"], "non_finite", "{}", r["stop"]);
    assert_eq!(
        (
            r["stop"]["iteration"].as_u64(),
            r["stop"]["non_finite_at"].as_u64()
        ),
        (Some(0), Some(10))
    );
    let mut start = args.to_vec();
    start.extend(["--max-iter", "0"]);
    assert_eq!(checksum_of(&r), checksum_of(&run("cpu", &start)));
}
