//! End-to-end tests of K-class training: softmax reports, model files, predict and eval, the
//! flags that choose the head, and the checksums of two-class runs pinned from before K
//! classes existed.

mod common;

use common::cli::*;
use serde_json::Value;

/// The checksum, stopping iteration and reason of a `train --json` run.
fn stop_of(args: &[&str]) -> (String, u64, String) {
    let r = train_json(args);
    (
        r["model"]["checksum"].as_str().unwrap().to_string(),
        uint(&r["stop"]["iteration"], "stop.iteration"),
        r["stop"]["reason"].as_str().unwrap().to_string(),
    )
}

/// A CSV of K classes named by text, 2 features, `rows` rows: class c around angle 2πc/K.
fn classes_csv(names: &[&str], rows: usize, seed: u64) -> String {
    let mut next = lcg(seed);
    let k = names.len();
    let mut s = String::from("a,b,kind\n");
    for r in 0..rows {
        let c = r % k;
        let angle = std::f64::consts::TAU * c as f64 / k as f64;
        let a = 3.0 * angle.cos() + next() - 0.5;
        let b = 3.0 * angle.sin() + next() - 0.5;
        s.push_str(&format!("{a:.5},{b:.5},{}\n", names[c]));
    }
    s
}

/// The confusion matrix of a metrics object, checked square of side k with `rows` in all.
fn confusion(m: &Value, k: usize, rows: u64) -> Vec<Vec<u64>> {
    let c: Vec<Vec<u64>> = serde_json::from_value(m["confusion"].clone()).expect("a matrix");
    assert_eq!(c.len(), k, "{m}");
    assert!(c.iter().all(|r| r.len() == k), "{m}");
    assert_eq!(c.iter().flatten().sum::<u64>(), rows, "{m}");
    c
}

// Two-class runs keep the weights they had before K classes: the checksums below were taken
// from the binary built at 0801cd0.
const PINNED: [(&str, &str, &str); 6] = [
    (
        "cpu",
        "--demo blobs --threshold none --max-iter 50",
        "d437f82ba1face309f11a4ebf5c6a14d1ee493a79312e00e1fbae4f75266264d",
    ),
    (
        "cpu",
        "--demo hyperplane --rows 700 --features 5 --val-split 0.2 --metric loss --patience 3 --max-iter 400 --restore-best",
        "4ce814cabd56efd2c2ad51b2ac96332c916dc2949a5988c1ca828cc3f273c677",
    ),
    (
        "cpu",
        "--demo moons --hidden 6,5 --activation sigmoid --max-iter 120 --threshold none",
        "cf2feec89c9a160dedcca24e8d0def8e44550d06c860b0c3bdb4c35368871f42",
    ),
    (
        "gpu",
        "--demo blobs --threshold none --max-iter 50",
        "f835d970cae92d5720c13275713ea411424a49c7c5c93aecc55e49b61666970b",
    ),
    (
        "gpu",
        "--demo hyperplane --rows 700 --features 5 --val-split 0.2 --metric loss --patience 3 --max-iter 400 --restore-best",
        "218b019a2da43b0958bc732d18c27287c3531563afdbbec5d54cec06a9d74816",
    ),
    (
        "gpu",
        "--demo moons --hidden 6,5 --activation sigmoid --max-iter 120 --threshold none",
        "7a49d5e3ff1eba5d92709dffd9c327e1dcb4a8706964aa1fdcabab7bf59092b4",
    ),
];

#[test]
fn two_class_checksums_are_unchanged() {
    for (b, args, sum) in PINNED {
        let mut a: Vec<&str> = args.split(' ').collect();
        a.extend(["--backend", b]);
        let r = train_json(&a);
        assert_eq!(r["model"]["checksum"], sum, "{b} {args}");
        assert_eq!(r["model"]["head"], "sigmoid");
        assert_eq!(r["data"]["classes"], serde_json::json!(["0", "1"]));
        assert!(
            r["metrics"]["tp"].is_u64(),
            "binary fields stay: {}",
            r["metrics"]
        );
    }
}

both_backends! {
    fn k_blobs_report_the_confusion_matrix_and_every_class(kind) {
        let Some(b) = backend(kind) else { return };
        let r = train_json(&[
            "--demo", "blobs", "--classes", "4", "--rows", "403", "--max-iter", "300",
            "--threshold", "0.95", "--val-split", "0.25", "--backend", b,
        ]);
        assert_eq!(r["model"]["head"], "softmax");
        assert_eq!(r["model"]["layers"], serde_json::json!([2, 4]));
        assert_eq!(r["data"]["classes"], serde_json::json!(["0", "1", "2", "3"]));
        assert!(r["data"].get("positives").is_none(), "{}", r["data"]);
        assert_eq!(r["data"]["label_mapping"]["classes"], r["data"]["classes"]);
        let train_rows = uint(&r["data"]["rows"], "rows");
        let c = confusion(&r["metrics"], 4, train_rows);
        let diag: u64 = (0..4).map(|i| c[i][i]).sum();
        assert_eq!(num(&r["metrics"]["accuracy"], "accuracy"), diag as f64 / train_rows as f64);
        let per = r["metrics"]["per_class"].as_object().unwrap();
        let keys: Vec<&String> = per.keys().collect();
        assert_eq!(keys, ["0", "1", "2", "3"]);
        for (i, key) in keys.iter().enumerate() {
            let support: u64 = c[i].iter().sum();
            assert_eq!(per[*key]["support"], support);
        }
        let macro_f1: f64 = per.values().map(|v| num(&v["f1"], "f1")).sum::<f64>() / 4.0;
        assert!((num(&r["metrics"]["f1"], "f1") - macro_f1).abs() < 1e-12);
        assert!(r["metrics"].get("tp").is_none(), "{}", r["metrics"]);
        let val_rows = uint(&r["data"]["val"]["rows"], "val rows");
        confusion(&r["val_metrics"], 4, val_rows);
        assert_eq!(r["stop"]["reason"], "threshold", "{}", r["stop"]);
        assert!(num(&r["stop"]["value"], "value") >= 0.95);
    }

    fn spirals_need_a_hidden_layer(kind) {
        let Some(b) = backend(kind) else { return };
        let args = |hidden: &'static [&'static str]| {
            // Full-batch descent needs ~1000 steps here: at 400 the MLP is still at ~0.52.
            let mut a = vec![
                "--demo", "spirals", "--rows", "600", "--max-iter", "1000", "--lr", "0.5",
                "--threshold", "none", "--backend", b,
            ];
            a.extend_from_slice(hidden);
            train_json(&a)
        };
        let linear = args(&[]);
        let mlp = args(&["--hidden", "32", "--activation", "tanh"]);
        assert_eq!(mlp["model"]["layers"], serde_json::json!([2, 32, 3]));
        let (la, ma) = (
            num(&linear["metrics"]["accuracy"], "accuracy"),
            num(&mlp["metrics"]["accuracy"], "accuracy"),
        );
        assert!(la < 0.7, "spirals are not linearly separable: {la}");
        assert!(ma > la + 0.1, "a hidden layer separates them better: {ma} vs {la}");
    }

    fn k10_predict_and_eval_round_trip(kind) {
        let Some(b) = backend(kind) else { return };
        let f = Fixtures::new();
        let names = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay"];
        let data = f.file("k10.csv", &classes_csv(&names, 997, 5));
        let model = f.path("k10.safetensors");
        let r = train_json(&[
            "--data", &data, "--max-iter", "150", "--lr", "1", "--threshold", "none",
            "--save", &model, "--backend", b,
        ]);
        let mut sorted = names;
        sorted.sort();
        assert_eq!(r["data"]["classes"], serde_json::json!(sorted));
        let (out, _) = ok(&["predict", "--model", &model, "--data", &data, "--backend", b]);
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        let want: Vec<String> = std::iter::once("predicted".to_string())
            .chain(sorted.iter().map(|c| format!("p_{c}")))
            .collect();
        assert_eq!(header, want.join(","));
        let mut predicted = Vec::new();
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 11, "{line}");
            let p: Vec<f64> = cells[1..].iter().map(|c| c.parse().unwrap()).collect();
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{line}");
            let best = (0..10).fold(0, |b, i| if p[i] > p[b] { i } else { b });
            assert_eq!(cells[0], sorted[best], "{line}");
            predicted.push(cells[0].to_string());
        }
        assert_eq!(predicted.len(), 997);
        let (text, _) = ok(&["eval", "--model", &model, "--data", &data, "--json", "--backend", b]);
        let e = json(&text);
        let c = confusion(&e["metrics"], 10, 997);
        assert_eq!(e["classes"], serde_json::json!(sorted));
        // The same weights on the same rows: eval's matrix is training's.
        assert_eq!(serde_json::json!(c), r["metrics"]["confusion"]);
        assert_eq!(e["metrics"]["accuracy"], r["metrics"]["accuracy"]);
        let (human, _) = ok(&["eval", "--model", &model, "--data", &data, "--backend", b]);
        assert_contains_all(&human, &["10 classes (ant, bee, cat", "true  predicted", "ibis", "macro f1"]);
    }
}

#[test]
fn two_classes_with_a_softmax_head() {
    let f = Fixtures::new();
    let model = f.path("m.safetensors");
    let r = train_json(&[
        "--demo",
        "moons",
        "--head",
        "softmax",
        "--hidden",
        "8",
        "--max-iter",
        "50",
        "--backend",
        "cpu",
        "--save",
        &model,
    ]);
    assert_eq!(r["model"]["layers"], serde_json::json!([2, 8, 2]));
    assert_eq!(
        r["data"]["label_mapping"]["classes"],
        serde_json::json!(["0", "1"])
    );
    // Two classes keep the positive-class scores and counts.
    assert!(r["metrics"]["tp"].is_u64());
    let data = f.file("m.csv", "x1,x2,label\n0.5,0.2,1\n-1,0.5,0\n");
    let (out, _) = ok(&[
        "predict",
        "--model",
        &model,
        "--data",
        &data,
        "--backend",
        "cpu",
    ]);
    assert!(out.starts_with("predicted,p_0,p_1\n"), "{out}");
}

#[test]
fn text_labels_sort_and_numeric_labels_ascend() {
    let f = Fixtures::new();
    let data = f.file(
        "t.csv",
        "a,y\n1,zeta\n2,alpha\n3,mid\n4,alpha\n5,zeta\n6,mid\n",
    );
    let r = train_json(&["--data", &data, "--max-iter", "3", "--backend", "cpu"]);
    assert_eq!(
        r["data"]["classes"],
        serde_json::json!(["alpha", "mid", "zeta"])
    );
    let data = f.file("n.csv", "a,y\n1,10\n2,9\n3,-1\n4,1e1\n5,9.0\n6,-1\n");
    let r = train_json(&["--data", &data, "--max-iter", "3", "--backend", "cpu"]);
    // 10 and 1e1 are one class, named as first written; ascending by value.
    assert_eq!(r["data"]["classes"], serde_json::json!(["-1", "9", "10"]));
    let human = train_human(&["--data", &data, "--max-iter", "3", "--backend", "cpu"]);
    assert_contains_all(
        &human,
        &[
            "label \"y\": 3 classes (-1, 9, 10)",
            "macro f1",
            "predicted",
        ],
    );
}

#[test]
fn head_and_positive_flags_are_checked() {
    let f = Fixtures::new();
    let data = f.file("t.csv", "a,y\n1,x\n2,y\n3,z\n");
    let e = train_fails(&["--data", &data, "--positive", "x", "--backend", "cpu"]);
    assert_contains_all(&e, &["--positive x", "two-class labels", "has 3 classes"]);
    let e = train_fails(&["--data", &data, "--head", "sigmoid", "--backend", "cpu"]);
    assert_contains_all(&e, &["--head sigmoid", "3 classes", "--head softmax"]);
    let two = f.file("two.csv", "a,y\n1,x\n2,y\n");
    let e = train_fails(&["--data", &two, "--head", "softmax", "--positive", "x"]);
    assert_contains_all(&e, &["--positive x", "sigmoid head"]);
    let one = f.file("one.csv", "a,y\n1,x\n2,x\n");
    let e = train_fails(&["--data", &one, "--backend", "cpu"]);
    assert_contains_all(
        &e,
        &["one.csv", "only one distinct value (\"x\")", "at least two"],
    );
    let e = train_fails(&["--demo", "moons", "--classes", "3"]);
    assert_contains_all(&e, &["--classes 3", "blobs, spirals and hyperplane"]);
    let e = train_fails(&["--demo", "blobs", "--classes", "1"]);
    assert_contains_all(&e, &["--classes 1", "2 to 256"]);
    let many: String = (0..300).map(|i| format!("{i},{i}\n")).collect();
    let many = f.file("many.csv", &format!("a,y\n{many}"));
    let e = train_fails(&["--data", &many, "--backend", "cpu"]);
    assert_contains_all(&e, &["many.csv, line 258", "more than 256 distinct values"]);
}

#[test]
fn a_softmax_model_refuses_labels_it_does_not_know() {
    let f = Fixtures::new();
    let data = f.file("t.csv", "a,y\n1,x\n2,y\n3,z\n");
    let model = f.path("m.safetensors");
    stop_of(&[
        "--data",
        &data,
        "--max-iter",
        "3",
        "--backend",
        "cpu",
        "--save",
        &model,
    ]);
    let other = f.file("o.csv", "a,y\n1,x\n2,w\n");
    let e = fails(&[
        "eval",
        "--model",
        &model,
        "--data",
        &other,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &e,
        &[
            "o.csv, line 3",
            "label \"w\" is none of the training data's 3 classes (\"x\", \"y\", \"z\")",
        ],
    );
}
