//! End-to-end tests of sizes beyond memory (models, demo and bench data, model files whose
//! architecture claims huge layers) and of numbers f32 cannot hold (a model file's
//! standardization, extreme inputs): each a clear error stating the sizes or naming the file,
//! exit status 1, never an abort or a panic.

mod common;

use std::collections::HashMap;

use predicates::prelude::*;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use common::cli::{Fixtures, assert_contains_all, train_json, wgtrain};
use wgtrain::memory;

/// Runs wgtrain with `args`, expects exit status 1 without a panic, returns stderr.
fn fails_1(args: &[&str]) -> String {
    let assert = wgtrain()
        .args(args)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("panicked").not());
    String::from_utf8(assert.get_output().stderr.clone()).expect("UTF-8 stderr")
}

/// Whether this machine's memory is below `bytes`; says so loudly where it is not.
fn memory_below(bytes: u64, case: &str) -> bool {
    let below = memory::limit().bytes < bytes;
    if !below {
        eprintln!(
            "SKIPPED: {case}: this machine has {} of memory, enough for it",
            memory::fmt_bytes(memory::limit().bytes)
        );
    }
    below
}

#[test]
fn hidden_layers_beyond_memory_are_clear_errors() {
    let e = fails_1(&[
        "train",
        "--demo",
        "moons",
        "--hidden",
        "4000000000,4000000000",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &e,
        &[
            "--hidden 4000000000,4000000000: the model [2, 4000000000, 4000000000, 1] has \
             16,000,000,020,000,000,001 parameters (over 16 EiB as f32), more than ",
            "of memory",
        ],
    );
    // 10¹² parameters: 3.6 TiB.
    let e = fails_1(&[
        "train",
        "--demo",
        "moons",
        "--hidden",
        "1000000,1000000",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &e,
        &["1,000,005,000,001 parameters (3.6 TiB as f32), more than "],
    );
    if memory_below(40_002_000_004, "--hidden 100000,100000") {
        let e = fails_1(&[
            "train",
            "--demo",
            "moons",
            "--hidden",
            "100000,100000",
            "--backend",
            "auto",
        ]);
        assert_contains_all(
            &e,
            &[
                "--hidden 100000,100000: ",
                "10,000,500,001 parameters (37.3 GiB as f32)",
            ],
        );
    }
}

#[test]
fn demo_and_bench_data_beyond_memory_are_clear_errors() {
    let e = fails_1(&[
        "train",
        "--demo",
        "blobs",
        "--rows",
        "18446744073709551615",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &e,
        &["--rows 18446744073709551615: the data has ", "over 16 EiB"],
    );
    // 2.4 TiB.
    if memory_below(2_680_000_000_000, "--demo hyperplane --rows 10000000000") {
        let e = fails_1(&[
            "train",
            "--demo",
            "hyperplane",
            "--rows",
            "10000000000",
            "--features",
            "64",
            "--backend",
            "cpu",
        ]);
        assert_contains_all(
            &e,
            &[
                "--rows 10000000000 --features 64: the data has 10,000,000,000 rows × 64 features, 2.4 TiB",
            ],
        );
    }
    if memory_below(26_800_000_000_000, "bench --rows 100000000000") {
        let e = fails_1(&["bench", "--rows", "100000000000", "--backends", "cpu"]);
        assert_contains_all(&e, &["--rows 100000000000 --features 64: ", "24.4 TiB"]);
    }
    let e = fails_1(&[
        "bench",
        "--hidden",
        "4000000000,4000000000",
        "--backends",
        "cpu",
    ]);
    assert_contains_all(&e, &["--hidden 4000000000,4000000000: ", "over 16 EiB"]);
    // Not a number in digits: a usage error (status 2) that says what to write.
    wgtrain()
        .args(["bench", "--rows", "1e11", "--backends", "cpu"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "write the count in digits: 100000000000",
        ))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn cpu_working_memory_is_checked_before_training() {
    // The parameters (528 MB) fit; a partial gradient and scratch for each of 147 blocks of
    // rows (over 200 GB) do not.
    if memory_below(77_000_000_000, "the CPU session's working memory") {
        let e = fails_1(&[
            "train",
            "--demo",
            "hyperplane",
            "--rows",
            "300000",
            "--features",
            "64",
            "--hidden",
            "2000000",
            "--backend",
            "cpu",
        ]);
        assert_contains_all(
            &e,
            &[
                "the CPU backend needs ",
                "for 300,000 rows × 64 features and 132,000,001 parameters",
                "of memory",
            ],
        );
    }
}

/// A saved model (features a, b; label y) and a CSV to apply it to.
struct Saved {
    f: Fixtures,
    model: String,
    data: String,
}

fn saved(extra: &[&str]) -> Saved {
    let f = Fixtures::new();
    let mut csv = String::from("a,b,y\n");
    for i in 0..40 {
        let (a, b) = ((i % 7) as f64 - 3.0, (i % 5) as f64 * 0.5);
        csv.push_str(&format!(
            "{a},{b},{}\n",
            if a + b > 0.0 { "M" } else { "B" }
        ));
    }
    let data = f.file("d.csv", &csv);
    let model = f.path("m.safetensors");
    let args = [
        "--data",
        &data,
        "--backend",
        "cpu",
        "--threshold",
        "none",
        "--max-iter",
        "5",
        "--save",
        &model,
    ];
    train_json(&[&args[..], extra].concat());
    Saved { f, model, data }
}

impl Saved {
    /// The model file rewritten as `name`, with `meta` changed and every tensor's values
    /// replaced by `fill` where given.
    fn edited(&self, name: &str, meta: &[(&str, &str)], fill: Option<f32>) -> String {
        let bytes = std::fs::read(&self.model).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut m: HashMap<String, String> = header.metadata().clone().unwrap();
        for (k, v) in meta {
            m.insert(k.to_string(), v.to_string());
        }
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| {
                let data = match fill {
                    Some(v) => v.to_le_bytes().repeat(t.data().len() / 4),
                    None => t.data().to_vec(),
                };
                (n, t.shape().to_vec(), data)
            })
            .collect();
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, s, d)| {
                let v = TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap();
                (n.clone(), v)
            })
            .collect();
        let path = self.f.path(name);
        std::fs::write(&path, safetensors::serialize(views, Some(m)).unwrap()).unwrap();
        path
    }

    /// `predict` and `eval` of `model` on `data` both exit 1; returns eval's stderr.
    fn both_fail(&self, model: &str, data: &str, needles: &[&str]) -> String {
        let out = self.f.path("out.csv");
        for cmd in ["predict", "eval"] {
            let mut args = vec![cmd, "--model", model, "--data", data, "--backend", "cpu"];
            if cmd == "predict" {
                args.extend(["--out", &out]);
            }
            let e = fails_1(&args);
            assert_contains_all(&e, needles);
        }
        assert!(!std::path::Path::new(&out).exists(), "predict wrote {out}");
        fails_1(&["eval", "--model", model, "--data", data, "--backend", "cpu"])
    }
}

#[test]
fn model_files_claiming_huge_layers_are_refused_before_allocating() {
    let s = saved(&["--hidden", "3", "--activation", "tanh"]);
    for (i, (layers, needle)) in [
        (
            "[2,1000000000000,1]",
            "the model [2, 1000000000000, 1] has 4,000,000,000,001 parameters (14.6 TiB as f32)",
        ),
        (
            "[2,18446744073709551615,1]",
            "has over 18,446,744,073,709,551,615 parameters",
        ),
        (
            "[2,18446744073709551615,18446744073709551615,1]",
            "has over 18,446,744,073,709,551,615 parameters",
        ),
        (
            "[2,4294967296,4294967296,1]",
            "parameters (over 16 EiB as f32)",
        ),
        // Fits in memory, not the file: refused by the tensors' shapes.
        (
            "[2,1000000,1]",
            "tensor \"layers.0.weight\" has shape [3, 2]; the architecture [2, 1000000, 1] needs [1000000, 2]",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let arch = format!(r#"{{"layers":{layers},"activation":"tanh"}}"#);
        let m = s.edited(
            &format!("huge{i}.safetensors"),
            &[("wgtrain.architecture", &arch)],
            None,
        );
        s.both_fail(&m, &s.data, &[&format!("{m}: "), needle]);
    }
}

#[test]
fn standardization_unusable_in_f32_is_refused_on_load() {
    let s = saved(&[]);
    for (i, stats) in [
        r#"{"mean":[0,0],"std":[1,1e-300]}"#,
        r#"{"mean":[0,1e300],"std":[1,1]}"#,
        r#"{"mean":[0,0],"std":[1,0]}"#,
        r#"{"mean":[0,0],"std":[1,-1]}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let m = s.edited(
            &format!("stats{i}.safetensors"),
            &[("wgtrain.standardization", stats)],
            None,
        );
        s.both_fail(
            &m,
            &s.data,
            &[
                &format!("{m}: "),
                "wgtrain.standardization",
                "feature \"b\"",
            ],
        );
    }
    let m = s.edited(
        "nan.safetensors",
        &[("wgtrain.standardization", r#"{"mean":[0,NaN],"std":[1,1]}"#)],
        None,
    );
    s.both_fail(&m, &s.data, &[&format!("{m}: "), "wgtrain.standardization"]);
}

#[test]
fn extreme_inputs_are_errors_naming_the_row_not_nan() {
    let s = saved(&[]);
    // A tiny but possible std: 1e30 standardizes past f32.
    let m = s.edited(
        "tiny.safetensors",
        &[(
            "wgtrain.standardization",
            r#"{"mean":[0,0],"std":[1,1e-10]}"#,
        )],
        None,
    );
    let data = s.f.file("big.csv", "a,b,y\n1,0.5,M\n2,1e30,B\n");
    let e = s.both_fail(&m, &data, &[&format!("{data}: row 2, column \"b\": ")]);
    assert_contains_all(&e, &["beyond the range of f32"]);
    // Finite inputs whose logit overflows f32.
    let s = saved(&["--no-standardize"]);
    let m = s.edited("wide.safetensors", &[], Some(1e30));
    let data = s.f.file("big.csv", "a,b,y\n1,0.5,M\n1e10,1e10,B\n");
    s.both_fail(
        &m,
        &data,
        &[&format!("{data}: row 2: the model's output (logit) is inf")],
    );
}

/// Whether wgpu sees llvmpipe (lavapipe), whose 128 MiB bindings and loop limit the GPU
/// size tests need; says so loudly where it does not.
fn llvmpipe(case: &str) -> bool {
    let seen = wgtrain::backend::gpu::list_adapters()
        .iter()
        .any(|a| a.name.contains("llvmpipe"));
    if !seen {
        common::no_gpu(&format!("{case}: wgpu sees no llvmpipe adapter"));
    }
    seen
}

#[test]
fn gpu_buffers_past_the_adapters_limits_name_the_layer_before_allocating() {
    if !llvmpipe("GPU buffer limits") {
        return;
    }
    let train = |hidden: &str| {
        let args = [
            "train",
            "--demo",
            "moons",
            "--rows",
            "10",
            "--backend",
            "gpu",
            "--adapter",
            "llvmpipe",
            "--hidden",
            hidden,
            "--max-iter",
            "1",
            "-q",
        ];
        let start = std::time::Instant::now();
        let e = fails_1(&args);
        (e, start.elapsed())
    };
    // One row's 100,000,000 activations (381 MiB) exceed a 128 MiB binding; the 1.6 GB of
    // parameters fit this machine's memory, so only the adapter's limit refuses it.
    let (e, _) = train("100000000");
    assert_contains_all(
        &e,
        &[
            "the hidden layer 1 (100,000,000 units)",
            "381.5 MiB buffer",
            "llvmpipe",
            "binds at most 128.0 MiB",
        ],
    );
    assert!(!e.contains("rows"), "blames the rows: {e}");
    // Checked before the 4,000,000,001 parameters are drawn (that took 32 s and 11.8 GB).
    if memory::limit().bytes < 17 << 30 {
        eprintln!("SKIPPED: GPU limits before 16 GB of parameters: memory refuses them first");
    } else {
        let (e, took) = train("1000000000");
        assert_contains_all(&e, &["the hidden layer 1 (1,000,000,000 units)", "3.7 GiB"]);
        // Drawing them first took 32 s here; a generous bound that only allocating breaks.
        assert!(
            took.as_secs_f64() < 20.0,
            "took {took:?}: were the parameters drawn first?"
        );
    }
    // A layer wider than llvmpipe's loop limit is named, not the 10 rows.
    let (e, _) = train("40000");
    assert_contains_all(
        &e,
        &[
            "the hidden layer 1 (40,000 units)",
            "shader loops",
            "--backend cpu",
        ],
    );
    assert!(!e.contains("rows"), "blames the rows: {e}");
    assert!(
        !e.contains("--hidden"),
        "advice predict could not take: {e}"
    );
    // Just under that bound, the rows' share of the loop budget tips it: the layer is named.
    let (e, _) = train("6659");
    assert_contains_all(&e, &["the widest layer (6,659 units)", "shader loops"]);
}

/// Runs `args` (with a 20 s timeout), expects exit status 1 without a panic; returns stderr.
fn fails_fast(args: &[&str]) -> String {
    let out = wgtrain()
        .args(args)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .expect("running wgtrain");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn model_files_are_read_by_their_header_not_whole() {
    let s = saved(&[]);
    let d = s.data.as_str();
    for dev in ["/dev/zero", "/dev/urandom"] {
        if !std::path::Path::new(dev).exists() {
            eprintln!("SKIPPED: {dev} does not exist here");
            continue;
        }
        let e = fails_fast(&["predict", "--backend", "cpu", "--model", dev, "--data", d]);
        assert_contains_all(
            &e,
            &[&format!("--model {dev}: not a readable safetensors file")],
        );
        let e = fails_fast(&[
            "train",
            "--backend",
            "cpu",
            "--data",
            d,
            "--init-weights",
            dev,
        ]);
        assert_contains_all(&e, &[&format!("--init-weights {dev}: not a readable")]);
    }
    // A sparse 4 GiB file: refused by its first bytes.
    let sparse = s.f.path("sparse.safetensors");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let e = fails_fast(&[
        "predict",
        "--backend",
        "cpu",
        "--model",
        &sparse,
        "--data",
        d,
    ]);
    assert_contains_all(
        &e,
        &[
            &format!("--model {sparse}: "),
            "the header's 0 bytes do not start a JSON object",
        ],
    );
    // A header length past the cap, and tensor data the file does not hold.
    let good = std::fs::read(&s.model).unwrap();
    let mut long = good.clone();
    long[..8].copy_from_slice(&(200u64 << 20).to_le_bytes());
    let long_path = s.f.path("long.safetensors");
    std::fs::write(&long_path, &long).unwrap();
    let e = fails_fast(&[
        "eval",
        "--backend",
        "cpu",
        "--model",
        &long_path,
        "--data",
        d,
    ]);
    assert_contains_all(
        &e,
        &["200.0 MiB", "more than the 100.0 MiB a header may take"],
    );
    // A sparse file whose header adds a 6 GiB tensor: refused on the header, nothing read.
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&good[8..8 + n]).unwrap();
    let data = (good.len() - 8 - n) as u64;
    let claim = 6u64 << 30;
    map.insert(
        "junk".into(),
        serde_json::json!({"dtype": "F32", "shape": [claim / 4], "data_offsets": [data, data + claim]}),
    );
    let json = serde_json::to_vec(&map).unwrap();
    let mut head = (json.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(&json);
    head.extend_from_slice(&good[8 + n..]);
    let sparse_path = s.f.path("junk.safetensors");
    let file = std::fs::File::create(&sparse_path).unwrap();
    std::io::Write::write_all(&mut &file, &head).unwrap();
    file.set_len(head.len() as u64 + claim).unwrap();
    drop(file);
    let started = std::time::Instant::now();
    let e = fails_fast(&[
        "predict",
        "--backend",
        "cpu",
        "--model",
        &sparse_path,
        "--data",
        d,
    ]);
    assert_contains_all(
        &e,
        &[&format!(
            "--model {sparse_path}: unexpected tensor \"junk\"; the architecture [2, 1] has the tensors "
        )],
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}: the file was read past its header",
        started.elapsed()
    );
    // A header whose tensors the file does not hold.
    let claim_path = s.f.path("claim.safetensors");
    std::fs::write(&claim_path, &good[..8 + n]).unwrap();
    let e = fails_fast(&[
        "eval",
        "--backend",
        "cpu",
        "--model",
        &claim_path,
        "--data",
        d,
    ]);
    assert_contains_all(
        &e,
        &["the header states 12 B of tensor data, the file holds 0 B after the header"],
    );
    // A directory names the flag.
    let dir = s.f.path("dir");
    std::fs::create_dir(&dir).unwrap();
    let e = fails_fast(&["predict", "--backend", "cpu", "--model", &dir, "--data", d]);
    assert_contains_all(&e, &[&format!("--model {dir}: Is a directory")]);
    let e = fails_fast(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        d,
        "--init-weights",
        &dir,
    ]);
    assert_contains_all(&e, &[&format!("--init-weights {dir}: Is a directory")]);
}

#[test]
fn model_metadata_that_means_nothing_is_refused() {
    let s = saved(&[]);
    for (i, (key, value, needle)) in [
        (
            "wgtrain.label",
            r#"{"column":"y","positive":"1","negative":"1.0"}"#,
            "has the same value for both classes",
        ),
        (
            "wgtrain.label",
            r#"{"column":"a","positive":"M","negative":"B"}"#,
            "the label column \"a\" is also a feature",
        ),
        (
            "wgtrain.architecture",
            r#"{"layers":[2,1],"activation":"relu"}"#,
            "logistic regression, which has no activation",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let m = s.edited(&format!("meta{i}.safetensors"), &[(key, value)], None);
        s.both_fail(&m, &s.data, &[&format!("--model {m}: "), needle]);
    }
    // Unknown keys are ignored.
    let m = s.edited("extra.safetensors", &[("wgtrain.someday", "{}")], None);
    wgtrain()
        .args(["eval", "--model", &m, "--data", &s.data, "--backend", "cpu"])
        .assert()
        .success();
}
