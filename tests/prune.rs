//! Pruning: masks held at exact zeros by every update path of both backends (with their
//! optimizer state), `wgtrain prune` alike on the GPU and the CPU round by round, the
//! compacted model of `--method neurons` predicting as the masked one, the report, the saved
//! file and bad input.

mod common;

use clap::Parser;
use common::cli::*;
use common::*;
use wgtrain::backend::{BackendChoice, SessionConfig};
use wgtrain::batches::Batching;
use wgtrain::cli::{Cli, Command};
use wgtrain::data::Demo;
use wgtrain::model::Activation;
use wgtrain::optim::{Optimizer, OptimizerKind};
use wgtrain::stop::StopRule;
use wgtrain::train::TrainOptions;

/// A mask over `spec`'s parameters: every third weight, and hidden unit 1 whole (its row,
/// bias and outgoing column) where there is a hidden layer.
fn mask_of(spec: &wgtrain::model::ModelSpec) -> Vec<bool> {
    let layout = spec.layout();
    let mut mask = vec![true; spec.parameter_count()];
    for l in &layout {
        for i in (l.w_off..l.b_off).step_by(3) {
            mask[i] = false;
        }
    }
    if layout.len() > 1 {
        let (a, b) = (layout[0], layout[1]);
        for i in 0..a.inputs {
            mask[a.w_off + a.inputs + i] = false;
        }
        mask[a.b_off + 1] = false;
        for o in 0..b.outputs {
            mask[b.w_off + o * b.inputs + 1] = false;
        }
    }
    mask
}

both_backends! {
    /// Full batch and mini-batches, SGD with momentum and Adam with weight decay, logistic
    /// regression and MLPs (on the GPU: the one-workgroup, blocked, one-pass and layered
    /// kernels), chunks judged on the device: after 40 updates every pruned weight is exactly
    /// 0 and so is its optimizer state, while the others have moved.
    fn pruned_parameters_stay_exactly_zero(kind) {
        let (train, val) = moons_split(300, 3);
        let optimizers = [
            Optimizer { momentum: 0.9, ..Default::default() },
            Optimizer { kind: OptimizerKind::Adam, weight_decay: 0.01, ..Default::default() },
        ];
        for hidden in [&[][..], &[8], &[8, 5]] {
            for optimizer in optimizers {
                for batch in [None, Some(32)] {
                    let spec = spec(&train, hidden, Activation::Tanh);
                    let mask = mask_of(&spec);
                    let mut params = spec.init_params(4);
                    for (p, &keep) in params.iter_mut().zip(&mask) {
                        if !keep {
                            *p = 0.0;
                        }
                    }
                    let cfg = SessionConfig {
                        params: params.clone(),
                        lr: 0.05,
                        optimizer,
                        batch: batch.map(|size| Batching { size, shuffle: true, seed: 1 }),
                        mask: Some(mask.clone()),
                        ..Default::default()
                    };
                    let what = format!("{hidden:?}, {:?}, batch {batch:?}", optimizer.kind);
                    let Some(mut s) = session_val(kind, &train, Some(&val), &spec, &cfg) else {
                        return;
                    };
                    let rule = StopRule { threshold: None, max_iter: 40, ..Default::default() };
                    let (out, _) = train_with(s.as_mut(), &TrainOptions::new(rule));
                    let state = s.optimizer_state(false).unwrap();
                    assert_eq!(state.buffers.len(), optimizer.buffers(), "{what}");
                    let mut moved = 0;
                    for (i, &keep) in mask.iter().enumerate() {
                        if keep {
                            moved += usize::from(out.params[i] != params[i]);
                        } else {
                            assert_eq!(out.params[i], 0.0, "{what}: pruned weight {i}");
                            for b in &state.buffers {
                                assert_eq!(b[i], 0.0, "{what}: the state of pruned weight {i}");
                            }
                        }
                    }
                    assert!(moved > mask.iter().filter(|&&k| k).count() / 2, "{what}: {moved} moved");
                }
            }
        }
    }
}

/// A mask that leaves a pruned parameter non-zero is refused.
#[test]
fn a_mask_over_non_zero_weights_is_refused() {
    let (train, _) = moons_split(50, 1);
    let spec = spec(&train, &[4], Activation::Relu);
    let cfg = SessionConfig {
        params: spec.init_params(1),
        lr: 0.1,
        mask: Some(mask_of(&spec)),
        ..Default::default()
    };
    let e = wgtrain::backend::cpu::CpuSession::new(&train, None, &spec, &cfg)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("pruning mask"), "{e}");
}

/// The dense model of the CLI tests: a 2 → 16 → 1 MLP on 2,000 moons rows.
fn dense(fx: &Fixtures) -> String {
    dense_of(fx, "2000", "16", "0.5", "0.97")
}

/// A dense MLP trained on the CPU on `rows` moons rows to `threshold` val accuracy, saved.
fn dense_of(fx: &Fixtures, rows: &str, hidden: &str, lr: &str, threshold: &str) -> String {
    let model = fx.path("dense.safetensors");
    ok(&[
        "train",
        "--demo",
        "moons",
        "--rows",
        rows,
        "--hidden",
        hidden,
        "--lr",
        lr,
        "--val-split",
        "0.2",
        "--threshold",
        threshold,
        "--backend",
        "cpu",
        "--save",
        &model,
        "--quiet",
    ]);
    model
}

fn prune_args<'a>(model: &'a str, save: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "prune",
        "--model",
        model,
        "--demo",
        "moons",
        "--rows",
        "2000",
        "--val-split",
        "0.2",
        "--lr",
        "0.5",
        "--save",
        save,
        "--quiet",
    ];
    a.extend_from_slice(more);
    a
}

fn prune_json(model: &str, save: &str, more: &[&str]) -> serde_json::Value {
    let mut a = prune_args(model, save, more);
    a.push("--json");
    json(&ok(&a).0)
}

/// The per-round facts the backends must share.
fn rounds(r: &serde_json::Value) -> Vec<(u64, u64, bool, String)> {
    r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["weights_kept"].as_u64().unwrap(),
                x["updates"].as_u64().unwrap(),
                x["met"].as_bool().unwrap(),
                x["stop_reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn gpu_and_cpu_prune_alike_round_by_round() {
    let fx = Fixtures::new();
    let model = dense(&fx);
    for method in ["magnitude", "neurons"] {
        let cpu = prune_json(
            &model,
            &fx.path("c.safetensors"),
            &["--backend", "cpu", "--method", method],
        );
        let Some(gpu_flag) = backend(Kind::Gpu) else {
            return;
        };
        let gpu = prune_json(
            &model,
            &fx.path("g.safetensors"),
            &["--backend", gpu_flag, "--method", method],
        );
        assert_eq!(rounds(&cpu), rounds(&gpu), "{method}");
        assert!(rounds(&cpu).len() >= 3, "{method}: {cpu}");
        for key in ["ended", "target"] {
            assert_eq!(cpu[key], gpu[key], "{method}: {key}");
        }
        assert_eq!(
            cpu["result"]["sparsity"], gpu["result"]["sparsity"],
            "{method}"
        );
        assert_eq!(cpu["result"]["layers"], gpu["result"]["layers"], "{method}");
    }
}

#[test]
fn the_report_the_file_and_the_compute_saved() {
    let fx = Fixtures::new();
    let model = dense(&fx);
    let out = fx.path("p.safetensors");
    let r = prune_json(&model, &out, &["--backend", "cpu"]);
    let rs = r["rounds"].as_array().unwrap();
    let n = rs.len() as u64;
    assert_eq!(r["totals"]["fixed_budget_updates"].as_u64(), Some(n * 500));
    let spent: u64 = rs.iter().map(|x| x["updates"].as_u64().unwrap()).sum();
    assert_eq!(r["totals"]["updates"].as_u64(), Some(spent));
    // The dense model met its own target less the tolerance at once: round 1 costs nothing.
    assert_eq!(rs[0]["updates"].as_u64(), Some(0), "{r}");
    assert_eq!(r["target_from"], "dense_minus_tolerance");
    let target = r["target"].as_f64().unwrap();
    assert!((r["dense_value"].as_f64().unwrap() - 0.005 - target).abs() < 1e-12);
    // Each round removes 20% of the weights left (48 in all).
    let mut alive = 48u64;
    for x in rs {
        alive -= ((alive as f64 * 0.2).round() as u64).max(1);
        assert_eq!(x["weights_kept"].as_u64(), Some(alive));
        assert_eq!(
            x["met"].as_bool(),
            Some(x["metric_after_finetune"].as_f64().unwrap() >= target)
        );
    }
    // The result is the last round that met the target, saved with exact zeros.
    let last_met = rs.iter().rfind(|x| x["met"] == true).unwrap();
    assert_eq!(r["result"]["round"], last_met["round"]);
    let kept = r["result"]["weights_kept"].as_u64().unwrap() as usize;
    let file = wgtrain::modelfile::load(std::path::Path::new(&out)).unwrap();
    let layout = file.model.spec.layout();
    let zeros: usize = layout
        .iter()
        .map(|l| {
            file.model.params[l.w_off..l.b_off]
                .iter()
                .filter(|w| **w == 0.0)
                .count()
        })
        .sum();
    assert!(zeros >= 48 - kept, "{zeros} zeros, {kept} kept");
    let bytes = std::fs::read(&out).unwrap();
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_string();
    assert!(
        head.contains("wgtrain.pruning") && head.contains("\\\"method\\\":\\\"magnitude\\\""),
        "{head}"
    );
    // predict reads it as any model.
    let csv = fx.file("rows.csv", "x1,x2\n0.5,0.2\n-1.0,0.3\n");
    let (p, _) = ok(&[
        "predict",
        "--model",
        &out,
        "--data",
        &csv,
        "--backend",
        "cpu",
    ]);
    assert_eq!(p.lines().count(), 3, "{p}");

    // --target-sparsity lands on it: 0.5 of 48 weights.
    let r = prune_json(
        &model,
        &fx.path("t.safetensors"),
        &["--backend", "cpu", "--target-sparsity", "0.5"],
    );
    assert_eq!(r["ended"], "target_sparsity", "{r}");
    assert_eq!(r["result"]["weights_kept"].as_u64(), Some(24));
    assert_eq!(r["result"]["sparsity"].as_f64(), Some(0.5));

    // A target above the dense model's value: round 1 misses, the result is the dense model,
    // which says it does not meet the target.
    let r = prune_json(
        &model,
        &fx.path("u.safetensors"),
        &[
            "--backend",
            "cpu",
            "--threshold",
            "0.999",
            "--round-max-iter",
            "20",
        ],
    );
    assert_eq!(r["ended"], "round_missed", "{r}");
    assert_eq!(r["result"]["round"].as_u64(), Some(0));
    assert_eq!(r["result"]["met"].as_bool(), Some(false));
    assert_eq!(r["rounds"][0]["updates"].as_u64(), Some(20));
    // A target sparsity below one weight ends before any round.
    let r = prune_json(
        &model,
        &fx.path("v.safetensors"),
        &["--backend", "cpu", "--target-sparsity", "0.001"],
    );
    assert_eq!(
        (r["ended"].as_str(), r["rounds"].as_array().map(Vec::len)),
        (Some("target_sparsity"), Some(0))
    );

    // The human report and the log and chart.
    let log = fx.path("r.csv");
    let plot = fx.path("r.svg");
    let human = fx.path("h.safetensors");
    let mut a = prune_args(
        &model,
        &human,
        &["--backend", "cpu", "--log", &log, "--plot", &plot],
    );
    a.retain(|x| *x != "--quiet");
    let (text, _) = ok(&a);
    assert!(
        text.contains("round  sparsity") && text.contains("saved"),
        "{text}"
    );
    let csv = std::fs::read_to_string(&log).unwrap();
    assert!(csv.starts_with("round,sparsity,weights_kept"), "{csv}");
    assert_eq!(csv.lines().count(), n as usize + 1);
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
}

/// `--method neurons` saves the compacted model, whose logits are the masked model's.
#[test]
fn the_compacted_model_predicts_as_the_masked_one() {
    let fx = Fixtures::new();
    let model = dense_of(&fx, "1000", "12,6", "0.3", "0.95");
    let out = fx.path("n.safetensors");
    let a = [
        "prune",
        "--model",
        &model,
        "--demo",
        "moons",
        "--rows",
        "1000",
        "--val-split",
        "0.2",
        "--lr",
        "0.3",
        "--save",
        &out,
        "--backend",
        "cpu",
        "--method",
        "neurons",
    ];
    let cli = Cli::try_parse_from(std::iter::once("wgtrain").chain(a)).unwrap();
    let Command::Prune(p) = cli.command else {
        panic!("a prune command")
    };
    let job = p.job().unwrap();
    let checked = wgtrain::outputs::check_train(&job.train, None).unwrap();
    let outcome = wgtrain::prune::run(&job, &checked, |_| {}).unwrap();
    let (masked, saved) = (&outcome.masked, &outcome.saved);
    assert!(
        saved.spec.layers[1] < 12 || saved.spec.layers[2] < 6,
        "{:?}",
        saved.spec.layers
    );
    assert_eq!(saved.spec.layers.len(), masked.spec.layers.len());
    let rows = demo(Demo::Moons, 300, None, 0.1, 9);
    let logits = |m: &wgtrain::modelfile::Model| {
        wgtrain::backend::forward_logits(BackendChoice::Cpu, None, &m.spec, &m.params, &rows)
            .unwrap()
            .0
    };
    let (a, b) = (logits(masked), logits(saved));
    for (x, y) in a.iter().zip(&b) {
        let (px, py) = (
            wgtrain::predict::probability(*x),
            wgtrain::predict::probability(*y),
        );
        assert!((px - py).abs() <= 1e-6, "{px} against {py}");
    }
}

#[test]
fn bad_input_is_refused_with_the_flag() {
    let fx = Fixtures::new();
    let model = dense(&fx);
    let save = fx.path("x.safetensors");
    let cases: [(&[&str], &str); 10] = [
        (&["--step", "0"], "--step 0"),
        (&["--step", "1"], "--step 1"),
        (&["--step", "1.5"], "--step 1.5"),
        (&["--target-sparsity", "1"], "--target-sparsity 1"),
        (&["--max-rounds", "0"], "--max-rounds 0"),
        (&["--tolerance", "-0.1"], "--tolerance -0.1"),
        (&["--threshold", "none"], "--threshold none"),
        (&["--max-iter", "50"], "--max-iter 50"),
        (&["--early-bird", "0.5"], "--early-bird 0.5"),
        (&["--restore-best"], "--restore-best"),
    ];
    for (more, said) in cases {
        let e = fails(&prune_args(&model, &save, more));
        assert!(e.contains(said), "{more:?}: {e}");
    }
    // A logistic regression has no hidden units.
    let lr = fx.path("lr.safetensors");
    ok(&[
        "train",
        "--demo",
        "moons",
        "--rows",
        "200",
        "--backend",
        "cpu",
        "--save",
        &lr,
        "--quiet",
        "--max-iter",
        "5",
    ]);
    let e = fails(&prune_args(&lr, &save, &["--method", "neurons"]));
    assert!(
        e.contains("--method neurons") && e.contains("logistic"),
        "{e}"
    );
    // A model whose inputs do not match the data's columns.
    let other = fx.file(
        "three.csv",
        "a,b,c,label\n1,2,3,0\n2,3,4,1\n3,1,2,0\n0,1,0,1\n",
    );
    let e = fails(&[
        "prune",
        "--model",
        &model,
        "--data",
        &other,
        "--save",
        &save,
        "--backend",
        "cpu",
    ]);
    assert!(
        e.contains(&format!("--model {model}")) && e.contains("features"),
        "{e}"
    );
    // No --save.
    let e = fails(&["prune", "--model", &model, "--demo", "moons"]);
    assert!(e.contains("--save"), "{e}");
    // The output may not be the model it reads.
    let e = fails(&prune_args(&model, &model, &[]));
    assert!(e.contains("--save"), "{e}");
}

/// Ctrl-C during a round: prune stops after the current update with `ended: interrupted`, exit
/// status 130, and still writes the result (here the dense model: no round met the target).
#[cfg(unix)]
#[test]
fn ctrl_c_stops_pruning_and_still_writes_the_result() {
    use std::process::Stdio;
    use std::time::Duration;
    let fx = Fixtures::new();
    let model = dense(&fx);
    let out = fx.path("i.safetensors");
    let log = fx.path("i.csv");
    // An unreachable target and a round without end: only the signal stops it.
    let mut a = prune_args(
        &model,
        &out,
        &[
            "--backend",
            "cpu",
            "--threshold",
            "0.999",
            "--round-max-iter",
            "100000000",
            "--log",
            &log,
            "--json",
        ],
    );
    a.retain(|x| *x != "--quiet");
    let mut child = wgtrain_std()
        .args(&a)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wgtrain starts");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "prune ended before the signal"
    );
    let status = signal_and_wait(
        &mut child,
        "INT",
        Duration::from_secs(120),
        "prune did not stop",
    );
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    let r = json(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(r["ended"], "interrupted", "{r}");
    assert_eq!(r["rounds"][0]["stop_reason"], "interrupted");
    assert!(r["rounds"][0]["updates"].as_u64().unwrap() > 0);
    assert_eq!(r["result"]["round"].as_u64(), Some(0));
    assert!(std::path::Path::new(&out).exists(), "the result is written");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
}
