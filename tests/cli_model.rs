//! End-to-end tests of model files: `train --save` / `--init-weights`, `predict` and `eval`.
//!
//! The model file is also read back here with the `safetensors` crate directly and the forward
//! pass computed by hand in f64, independently of wgtrain's model code: the README's recipe for
//! reproducing `predict` in NumPy, held to `predict`'s output.
//!
//! Everything runs on the CPU except the tests about the GPU (lavapipe is slow).

mod common;

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use common::cli::{
    Fixtures, assert_contains_all, backend, checksum_of, fails, fixture_csv, ok, parse_predictions,
    read_csv, train_json,
};

/// The metadata of a safetensors file, read with the safetensors crate only.
fn metadata(path: &str) -> HashMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("a safetensors file");
    meta.metadata().clone().expect("metadata")
}

/// The README's recipe, by hand in f64 from the file alone: x' = (x − mean)/std;
/// a = act(W a + b) per hidden layer; z = W a + b; p = 1/(1 + exp(−z)). Returns each row's
/// (p, z) for the CSV `data` (features looked up by name).
fn by_hand(model: &str, data: &str) -> Vec<(f64, f64)> {
    let bytes = std::fs::read(model).unwrap();
    let st = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let meta = metadata(model);
    let json = |k: &str| -> Value { serde_json::from_str(&meta[k]).expect("JSON metadata") };
    let arch = json("wgtrain.architecture");
    let layers: Vec<usize> = serde_json::from_value(arch["layers"].clone()).unwrap();
    let act = arch["activation"].as_str().map(str::to_string);
    let features: Vec<String> = serde_json::from_value(json("wgtrain.features")).unwrap();
    let stand = json("wgtrain.standardization");
    let stats: Option<(Vec<f64>, Vec<f64>)> = (!stand.is_null()).then(|| {
        (
            serde_json::from_value(stand["mean"].clone()).unwrap(),
            serde_json::from_value(stand["std"].clone()).unwrap(),
        )
    });
    let tensor = |name: &str, shape: &[usize]| -> Vec<f64> {
        let t = st.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::F32);
        assert_eq!(t.shape(), shape, "{name}");
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect()
    };
    let (header, rows) = read_csv(&std::fs::read_to_string(data).unwrap());
    let col = |f: &str| header.iter().position(|h| h == f).expect("feature column");
    let cols: Vec<usize> = features.iter().map(|f| col(f)).collect();
    rows.iter()
        .map(|row| {
            let mut a: Vec<f64> = cols
                .iter()
                .enumerate()
                .map(|(j, &c)| {
                    let x: f64 = row[c].parse::<f32>().unwrap() as f64;
                    match &stats {
                        Some((mean, std)) => (x - mean[j]) / std[j],
                        None => x,
                    }
                })
                .collect();
            let last = layers.len() - 2;
            for i in 0..=last {
                let (n_in, n_out) = (layers[i], layers[i + 1]);
                let w = tensor(&format!("layers.{i}.weight"), &[n_out, n_in]);
                let b = tensor(&format!("layers.{i}.bias"), &[n_out]);
                a = (0..n_out)
                    .map(|o| {
                        let z = b[o] + (0..n_in).map(|k| w[o * n_in + k] * a[k]).sum::<f64>();
                        if i == last {
                            return z;
                        }
                        match act.as_deref() {
                            Some("relu") => z.max(0.0),
                            Some("tanh") => z.tanh(),
                            Some("sigmoid") => 1.0 / (1.0 + (-z).exp()),
                            other => panic!("activation {other:?}"),
                        }
                    })
                    .collect();
            }
            let z = a[0];
            (1.0 / (1.0 + (-z).exp()), z)
        })
        .collect()
}

/// Trains on a fixture file and saves; returns (fixtures, data path, model path, report).
fn trained(extra: &[&str]) -> (Fixtures, String, String, Value) {
    let f = Fixtures::new();
    let data = f.file("train.csv", &fixture_csv(80, 1));
    let model = f.path("model.safetensors");
    let report = train_json(
        &[
            &[
                "--data",
                &data,
                "--drop",
                "id",
                "--backend",
                "cpu",
                "--lr",
                "0.5",
                "--threshold",
                "none",
                "--max-iter",
                "60",
                "--save",
                &model,
            ],
            extra,
        ]
        .concat(),
    );
    (f, data, model, report)
}

/// The report as `--save` keeps it: without `timing`.
fn without_timing(r: &Value) -> Value {
    let mut r = r.clone();
    r.as_object_mut().expect("a report object").remove("timing");
    r
}

// ---------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------

#[test]
fn save_writes_every_metadata_key_and_the_tensors() {
    let (f, _, model, report) = trained(&["--hidden", "5,3", "--activation", "tanh"]);
    let meta = metadata(&model);
    let json = |k: &str| -> Value {
        serde_json::from_str(meta.get(k).unwrap_or_else(|| panic!("no key {k}")))
            .unwrap_or_else(|e| panic!("{k} is not JSON: {e}"))
    };
    assert_eq!(
        json("wgtrain.architecture"),
        serde_json::json!({"layers": [3, 5, 3, 1], "activation": "tanh"})
    );
    assert_eq!(json("wgtrain.features"), serde_json::json!(["a", "b", "k"]));
    assert_eq!(
        json("wgtrain.label"),
        serde_json::json!({"column": "label", "positive": "yes", "negative": "no"})
    );
    let s = json("wgtrain.standardization");
    // k is constant: std stored as 1 so that (x − mean)/std maps it to 0 as training did.
    assert_eq!(s["mean"][2], 3.5);
    assert_eq!(s["std"][2], 1.0);
    assert!(s["std"][0].as_f64().unwrap() > 1.0);
    // The report in the file is the report printed, every digit of it, but for the timings
    // (which differ run to run; `--save-timings` keeps them).
    assert_eq!(json("wgtrain.report"), without_timing(&report));

    let bytes = std::fs::read(&model).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    for (name, shape) in [
        ("layers.0.weight", &[5, 3][..]),
        ("layers.0.bias", &[5][..]),
        ("layers.1.weight", &[3, 5][..]),
        ("layers.2.weight", &[1, 3][..]),
        ("layers.2.bias", &[1][..]),
    ] {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        assert_eq!(t.shape(), shape, "{name}");
    }
    // An atomic write leaves no temporary file behind.
    assert_eq!(f.names(), ["model.safetensors", "train.csv"]);
}

#[test]
fn save_and_load_round_trip() {
    let (_f, _, model, report) = trained(&["--hidden", "4"]);
    let file = wgtrain::modelfile::load(Path::new(&model)).expect("the model loads");
    let m = &file.model;
    assert_eq!(m.spec.layers, vec![3, 4, 1]);
    assert_eq!(m.features, vec!["a", "b", "k"]);
    assert_eq!(m.label.positive(), "yes");
    // The weights read back are the returned weights, bit for bit.
    assert_eq!(wgtrain::model::checksum(&m.params), checksum_of(&report));
    assert_eq!(file.report.as_ref(), Some(&without_timing(&report)));
    // Saved again, the same bytes but for the report.
    let again = wgtrain::modelfile::to_bytes(m, None).unwrap();
    let back = wgtrain::modelfile::from_bytes("again", &again).unwrap();
    assert_eq!(&back.model, m);
}

#[test]
fn no_standardize_stores_null() {
    let (_f, data, model, _) = trained(&["--no-standardize"]);
    assert_eq!(metadata(&model)["wgtrain.standardization"], "null");
    let (out, _) = ok(&[
        "predict",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    let (p, _) = parse_predictions(&out);
    for (mine, (hand, _)) in p.iter().zip(by_hand(&model, &data)) {
        assert!((mine - hand).abs() <= 1e-5, "{mine} vs {hand}");
    }
}

#[test]
fn truncated_or_corrupt_model_is_a_clear_error() {
    let (f, data, model, _) = trained(&[]);
    let bytes = std::fs::read(&model).unwrap();
    let cut = f.path("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let err = fails(&[
        "predict",
        "--model",
        &cut,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &err,
        &[&format!("{cut}: "), "not a readable safetensors file"],
    );

    let junk = f.file("junk.safetensors", "id,a,b\n1,2,3\n");
    let err = fails(&[
        "eval",
        "--model",
        &junk,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &err,
        &[&format!("{junk}: "), "not a readable safetensors file"],
    );

    // A well-formed safetensors file that is not a wgtrain model.
    let plain = f.path("plain.safetensors");
    let w = 1.0f32.to_le_bytes();
    let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![1], &w).unwrap();
    std::fs::write(&plain, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
    let err = fails(&[
        "predict",
        "--model",
        &plain,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &[&format!("{plain}: "), "no metadata"]);

    let missing = f.path("missing.safetensors");
    let err = fails(&["predict", "--model", &missing, "--data", &data]);
    assert_contains_all(&err, &[&missing, "No such file"]);
}

#[test]
fn save_to_a_missing_folder_fails_and_leaves_nothing() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &fixture_csv(20, 2));
    let target = f.path("no-such-folder/model.safetensors");
    let err = fails(&[
        "train",
        "--data",
        &data,
        "--drop",
        "id",
        "--backend",
        "cpu",
        "--save",
        &target,
    ]);
    assert_contains_all(&err, &["--save", &target, "does not exist"]);
    assert_eq!(f.names(), ["train.csv"]);
    let out = f.path("no-such-folder/p.csv");
    let (_, _, model, _) = trained(&[]);
    let err = fails(&[
        "predict",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
        "--out",
        &out,
    ]);
    assert_contains_all(&err, &["--out", "does not exist"]);
    assert_eq!(f.names(), ["train.csv"]);
}

// ---------------------------------------------------------------------------------------
// Continuing training
// ---------------------------------------------------------------------------------------

both_backends! {
    /// 50 iterations, save, 50 more from the file: the same weights as 100 straight.
    fn continuing_training_is_bit_identical(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        let f = Fixtures::new();
        let data = f.file("train.csv", &fixture_csv(120, 3));
        let (half, resumed) = (f.path("half.safetensors"), f.path("resumed.safetensors"));
        let base = [
            "--data",
            &data,
            "--drop",
            "id",
            "--backend",
            backend,
            "--lr",
            "0.3",
            "--threshold",
            "none",
            "--val-split",
            "0.25",
            "--seed",
            "7",
        ];
        let straight = train_json(
            &[
                &base[..],
                &[
                    "--hidden",
                    "6,4",
                    "--activation",
                    "sigmoid",
                    "--max-iter",
                    "100",
                ],
            ]
            .concat(),
        );
        let first = train_json(
            &[
                &base[..],
                &[
                    "--hidden",
                    "6,4",
                    "--activation",
                    "sigmoid",
                    "--max-iter",
                    "50",
                ],
                &["--save", &half],
            ]
            .concat(),
        );
        assert_eq!(straight["backend"], backend);
        assert_ne!(checksum_of(&first), checksum_of(&straight));
        // The architecture comes from the file; naming it again is fine when it matches.
        let second = train_json(
            &[
                &base[..],
                &["--max-iter", "50", "--init-weights", &half],
                &["--activation", "sigmoid", "--save", &resumed],
            ]
            .concat(),
        );
        assert_eq!(second["model"]["layers"], serde_json::json!([3, 6, 4, 1]));
        assert_eq!(checksum_of(&second), checksum_of(&straight), "on {backend}");
        assert_eq!(second["metrics"], straight["metrics"]);
        assert_eq!(second["val_metrics"], straight["val_metrics"]);
        let saved = wgtrain::modelfile::load(Path::new(&resumed)).unwrap();
        assert_eq!(
            wgtrain::model::checksum(&saved.model.params),
            checksum_of(&straight)
        );
        // The continued run kept the first run's statistics.
        assert_eq!(
            metadata(&half)["wgtrain.standardization"],
            metadata(&resumed)["wgtrain.standardization"]
        );
    }
}

#[test]
fn init_weights_mismatches_are_clear_errors() {
    let (f, data, model, _) = trained(&["--hidden", "4", "--activation", "tanh"]);
    let train = |extra: &[&str]| {
        fails(
            &[
                &["train", "--data", &data, "--drop", "id", "--backend", "cpu"][..],
                &["--init-weights", &model],
                extra,
            ]
            .concat(),
        )
    };
    let err = train(&["--hidden", "8"]);
    assert_contains_all(&err, &["--hidden 8", &model, "hidden layers 4"]);
    let err = train(&["--activation", "relu"]);
    assert_contains_all(&err, &["--activation relu", "uses tanh"]);
    let err = train(&["--no-standardize"]);
    assert_contains_all(&err, &["--no-standardize", "standardized"]);
    let err = train(&["--positive", "no"]);
    assert_contains_all(&err, &["label", "yes = positive", "no = positive"]);
    // Data with other features.
    let other = f.file("other.csv", "a,c,label\n1,2,yes\n3,4,no\n");
    let err = fails(&[
        "train",
        "--data",
        &other,
        "--backend",
        "cpu",
        "--init-weights",
        &model,
    ]);
    assert_contains_all(&err, &["--init-weights", "[a, b, k]", "[a, c]"]);
    // The same columns in another order.
    let swapped = f.file("swapped.csv", "b,a,k,label\n1,2,3,yes\n3,4,3,no\n");
    let err = fails(&[
        "train",
        "--data",
        &swapped,
        "--backend",
        "cpu",
        "--init-weights",
        &model,
    ]);
    assert_contains_all(&err, &["another order"]);
}

// ---------------------------------------------------------------------------------------
// predict and eval
// ---------------------------------------------------------------------------------------

both_backends! {
    /// Trained on the CPU, predicted on each backend.
    fn predict_matches_the_forward_pass_by_hand(kind) {
        let Some(backend) = backend(kind) else {
            return;
        };
        for extra in [
            &["--hidden", "5", "--activation", "relu"][..],
            &["--hidden", "4,3", "--activation", "tanh"][..],
            &["--hidden", "3", "--activation", "sigmoid"][..],
            &[][..],
        ] {
            let (f, _, model, _) = trained(extra);
            // New rows, features in another order, an extra column, no label.
            let mut text = String::from("k,extra,b,a\n");
            for row in &read_csv(&fixture_csv(30, 9)).1 {
                text.push_str(&format!("{},x,{},{}\n", row[3], row[2], row[1]));
            }
            text.push_str("4.5,y,-20,7\n"); // a constant column off its value, out of range
            let new = f.file("new.csv", &text);
            let (out, err) = ok(&[
                "predict",
                "--model",
                &model,
                "--data",
                &new,
                "--backend",
                backend,
            ]);
            assert_eq!(err, "", "no metrics without labels");
            let (p, predicted) = parse_predictions(&out);
            let hand = by_hand(&model, &new);
            assert_eq!(p.len(), 31);
            for (r, ((mine, class), (hp, hz))) in p.iter().zip(&predicted).zip(&hand).enumerate() {
                assert!(
                    (mine - hp).abs() <= 1e-5,
                    "{extra:?} row {r}: predict {mine}, by hand {hp}"
                );
                if hz.abs() > 1e-4 {
                    assert_eq!(class, if *hz >= 0.0 { "yes" } else { "no" }, "row {r}");
                }
            }
        }
    }
}

#[test]
fn predict_reads_features_by_name_and_keeps_row_order() {
    let (f, data, model, _) = trained(&["--hidden", "4"]);
    let (plain, err) = ok(&[
        "predict",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    // The training file has the label: metrics on stderr, the CSV alone on stdout.
    assert_contains_all(&err, &["accuracy", "TP "]);
    // The same rows with the columns shuffled and one more.
    let (header, rows) = read_csv(&fixture_csv(80, 1));
    let order = [4, 2, 0, 3, 1];
    let mut text = order.map(|j| header[j].clone()).join(",") + ",note\n";
    for r in &rows {
        text.push_str(&(order.map(|j| r[j].clone()).join(",") + ",hello\n"));
    }
    let shuffled = f.file("shuffled.csv", &text);
    let (out, _) = ok(&[
        "predict",
        "--model",
        &model,
        "--data",
        &shuffled,
        "--backend",
        "cpu",
    ]);
    assert_eq!(out, plain);
    let (p, predicted) = parse_predictions(&out);
    assert_eq!(p.len(), 80);
    assert!(predicted.iter().all(|c| c == "yes" || c == "no"));

    // --out: the file holds the CSV; the metrics go to stdout.
    let target = f.path("preds.csv");
    let (stdout, _) = ok(&[
        "predict",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
        "--out",
        &target,
    ]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), plain);
    assert_contains_all(&stdout, &["wrote 80 predictions", "accuracy"]);
    assert!(
        !f.names().iter().any(|n| n.contains(".tmp")),
        "{:?}",
        f.names()
    );
}

#[test]
fn predict_without_a_feature_names_it() {
    let (f, _, model, _) = trained(&[]);
    let data = f.file("nob.csv", "a,k,label\n1,3.5,yes\n");
    let err = fails(&[
        "predict",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &[&data, "no column \"b\"", "a feature of the model"]);
}

#[test]
fn eval_prints_metrics_and_counts() {
    let (f, data, model, report) = trained(&["--hidden", "3"]);
    let (out, _) = ok(&[
        "eval",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["rows"], 80);
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["label_mapping"]["positive"], "yes");
    // On the training rows, the metrics of the training report.
    for k in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "iou",
        "tp",
        "fp",
        "fn",
        "tn",
    ] {
        assert_eq!(v["metrics"][k], report["metrics"][k], "{k}");
    }
    let (a, b) = (
        v["metrics"]["loss"].as_f64().unwrap(),
        report["metrics"]["loss"].as_f64().unwrap(),
    );
    // eval sums the loss of the logits on the host; training sums its kernels' f32 per-row
    // losses: the same to f32's precision.
    assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");

    let (text, _) = ok(&[
        "eval",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&text, &["80 rows", "accuracy", "TP ", "TN "]);

    let unlabelled = f.file("nolabel.csv", "a,b,k\n1,2,3.5\n");
    let err = fails(&[
        "eval",
        "--model",
        &model,
        "--data",
        &unlabelled,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &[&unlabelled, "no column \"label\""]);
    let unknown = f.file("unknown.csv", "a,b,k,label\n1,2,3.5,maybe\n");
    let err = fails(&[
        "eval",
        "--model",
        &model,
        "--data",
        &unknown,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &[&unknown, "line 2", "\"maybe\""]);
}

#[test]
fn predict_on_gpu_agrees_with_cpu() {
    if common::gpu_context().is_none() {
        return;
    }
    let (_f, data, model, _) = trained(&["--hidden", "6", "--activation", "tanh"]);
    let run = |backend: &str| {
        let (out, _) = ok(&[
            "predict",
            "--model",
            &model,
            "--data",
            &data,
            "--backend",
            backend,
        ]);
        parse_predictions(&out)
    };
    let (cpu, cpu_class) = run("cpu");
    let (gpu, gpu_class) = run("gpu");
    assert_eq!(cpu.len(), gpu.len());
    for (c, g) in cpu.iter().zip(&gpu) {
        assert!((c - g).abs() <= 1e-5, "cpu {c}, gpu {g}");
    }
    let differ = cpu_class
        .iter()
        .zip(&gpu_class)
        .filter(|(a, b)| a != b)
        .count();
    assert!(differ <= 1, "{differ} classes differ");
    let (out, _) = ok(&[
        "eval",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "gpu",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["backend"], "gpu");
    assert!(v["adapter"]["name"].is_string());
}
