//! The GPU held to the CPU reference, iteration by iteration, on awkward sizes: one row,
//! sizes that are not a multiple of the workgroup, wide and tall data, every activation.

mod common;

use common::*;
use wgtrain::backend::Session;
use wgtrain::backend::gpu::{GpuContext, GpuSession, KernelPath, LOOP_MAX_ELEMENTS};
use wgtrain::data::{Dataset, Demo};
use wgtrain::metrics::{Metric, Metrics};
use wgtrain::model::Activation;

/// Runs `iters` iterations on both backends and compares every check: loss to 1e-5
/// relative, confusion counts exactly; then the last logits and weights to a small
/// tolerance. Logistic regression runs on every GPU path: with the blocked kernels of big
/// data, and where the data is small enough in one workgroup (lr_loop.wgsl) of 2, 8 (CPU
/// adapters) and 64 (real GPUs) invocations; an MLP with one hidden layer on mlp_pass.wgsl
/// where it fits and on the layered kernels.
fn agree(d: &Dataset, hidden: &[usize], act: Activation, lr: f32, iters: u64) {
    // The paths each context must take, so that no variant silently tests another's.
    let one_pass = hidden.len() == 1 && d.features <= 64 && hidden[0] <= 128;
    let fits_loop = d.features <= 64 && d.rows * (d.features + 1) <= LOOP_MAX_ELEMENTS;
    let blocked = if hidden.is_empty() {
        gpu_context_on(KernelPath::Blocked)
    } else {
        gpu_context()
    };
    let path = agree_on(blocked, d, hidden, act, lr, iters, 1);
    assert!(path.is_none_or(|p| p == (false, one_pass)), "{path:?}");
    if hidden.len() == 1 {
        let layered = gpu_context_on(KernelPath::Layered);
        let path = agree_on(layered, d, hidden, act, lr, iters, 1);
        assert!(path.is_none_or(|p| p == (false, false)), "{path:?}");
    }
    if hidden.is_empty() {
        for wg in [2, 8, 64] {
            let path = agree_on(gpu_context_loop_workgroup(wg), d, hidden, act, lr, iters, 1);
            assert!(path.is_none_or(|p| p == (fits_loop, false)), "{path:?}");
        }
    }
}

fn agree_on(
    ctx: Option<GpuContext>,
    d: &Dataset,
    hidden: &[usize],
    act: Activation,
    lr: f32,
    iters: u64,
    segments: usize,
) -> Option<(bool, bool)> {
    let sp = spec(d, hidden, act);
    let cfg = config(&sp, lr, 11);
    let ctx = ctx?;
    let mut gpu = GpuSession::new(ctx, d, None, &sp, &cfg).unwrap();
    assert_eq!(gpu.segments(), segments, "segments of the training rows");
    let mut cpu = session(Kind::Cpu, d, &sp, &cfg).unwrap();
    for t in 0..=iters {
        let g = Metrics::from_counts(&gpu.evaluate().unwrap().train);
        let c = Metrics::from_counts(&cpu.evaluate().unwrap().train);
        let rel = (g.loss - c.loss).abs() / c.loss.abs().max(1e-30);
        assert!(
            rel <= 1e-5,
            "iteration {t}: loss gpu {} cpu {} (rel {rel:e})",
            g.loss,
            c.loss
        );
        assert_eq!(
            (g.tp, g.fp, g.fn_, g.tn),
            (c.tp, c.fp, c.fn_, c.tn),
            "iteration {t}: counts"
        );
        if t < iters {
            gpu.update().unwrap();
            cpu.update().unwrap();
        }
    }
    let (zg, zc) = (gpu.logits().unwrap(), cpu.logits().unwrap());
    assert_eq!(zg.len(), d.rows, "logits");
    for (r, (g, c)) in zg.iter().zip(&zc).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 + 1e-4 * c.abs(),
            "row {r}'s logit: gpu {g} cpu {c}"
        );
    }
    let (pg, pc) = (gpu.params().unwrap(), cpu.params().unwrap());
    for (i, (g, c)) in pg.iter().zip(&pc).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 + 1e-4 * c.abs(),
            "parameter {i}: gpu {g} cpu {c}"
        );
    }
    let (qg, qc) = (
        gpu.previous_params().unwrap(),
        cpu.previous_params().unwrap(),
    );
    assert!(
        qg.iter()
            .zip(&qc)
            .all(|(g, c)| (g - c).abs() <= 1e-4 + 1e-4 * c.abs())
    );
    let p = gpu.path();
    Some((p == KernelPath::OneWorkgroup, p == KernelPath::OnePassMlp))
}

#[test]
fn one_row_logistic() {
    agree(
        &demo(Demo::Hyperplane, 1, Some(3), 0.0, 1),
        &[],
        Activation::Relu,
        0.5,
        10,
    );
}

#[test]
fn one_row_mlp() {
    agree(
        &demo(Demo::Hyperplane, 1, Some(2), 0.0, 2),
        &[5],
        Activation::Tanh,
        0.5,
        10,
    );
}

/// The one-workgroup kernel pads each row to whole vec4s: feature counts below, at and past
/// a multiple of four, up to its limit of 64.
#[test]
fn one_workgroup_feature_counts() {
    for features in [1, 4, 5, 17, 63] {
        agree(
            &demo(Demo::Hyperplane, 37, Some(features), 0.1, features as u64),
            &[],
            Activation::Relu,
            0.5,
            6,
        );
    }
}

#[test]
fn rows_not_a_multiple_of_the_workgroup_logistic() {
    agree(
        &demo(Demo::Hyperplane, 65, Some(7), 0.1, 3),
        &[],
        Activation::Relu,
        0.5,
        20,
    );
}

#[test]
fn hidden_wider_than_a_workgroup_relu() {
    agree(
        &demo(Demo::Moons, 257, None, 0.05, 4),
        &[70, 3],
        Activation::Relu,
        0.3,
        15,
    );
}

#[test]
fn wide_data_sigmoid() {
    agree(
        &demo(Demo::Hyperplane, 5, Some(300), 0.0, 5),
        &[4],
        Activation::Sigmoid,
        0.5,
        15,
    );
}

/// Logistic regression's gradient per feature group: 17 groups over 3 runs of rows each
/// (64 features), and 76 groups, more than a workgroup's invocations (300 features).
#[test]
fn logistic_feature_groups() {
    for (rows, features) in [(130, 64), (70, 300)] {
        agree(
            &demo(Demo::Hyperplane, rows, Some(features), 0.1, 8),
            &[],
            Activation::Relu,
            0.5,
            8,
        );
    }
}

/// mlp_pass.wgsl at its limits, 64 inputs and 128 hidden units (32 gradient slots per
/// invocation), over two blocks, the second a partial tile (600 = 512 + 5·16 + 8 rows).
#[test]
fn mlp_pass_at_its_limits_sigmoid() {
    agree(
        &demo(Demo::Hyperplane, 600, Some(64), 0.1, 9),
        &[128],
        Activation::Sigmoid,
        0.5,
        4,
    );
}

#[test]
fn tall_data_tanh() {
    agree(
        &demo(Demo::Blobs, 3001, None, 0.05, 6),
        &[9],
        Activation::Tanh,
        0.5,
        15,
    );
}

#[test]
fn deep_mlp_every_layer_backpropagates() {
    agree(
        &demo(Demo::Moons, 130, None, 0.0, 7),
        &[6, 5, 4],
        Activation::Tanh,
        0.5,
        20,
    );
}

/// Big data gets bigger blocks of rows per workgroup (512 here, and the largest, 3,072).
#[test]
fn logistic_blocks_larger_than_256_rows() {
    for (rows, parts) in [(70_001, 137), (800_003, 261)] {
        let Some(ctx) = gpu_context() else { return };
        let d = demo(Demo::Hyperplane, rows, Some(2), 0.1, 7);
        let sp = spec(&d, &[], Activation::Relu);
        let s = GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.5, 1)).unwrap();
        assert_eq!(s.parts(), parts, "blocks of {rows} rows");
    }
    agree(
        &demo(Demo::Hyperplane, 70_001, Some(4), 0.1, 6),
        &[],
        Activation::Relu,
        0.5,
        3,
    );
    agree(
        &demo(Demo::Hyperplane, 800_003, Some(2), 0.1, 7),
        &[],
        Activation::Relu,
        0.5,
        2,
    );
}

/// With at most 6 workgroups per grid dimension every kernel but the loss needs a 2-D grid.
#[test]
fn two_dimensional_grids() {
    let ctx =
        match GpuContext::open_with_limits(None, |l| l.max_compute_workgroups_per_dimension = 6) {
            Ok(c) => Some(c),
            Err(e) => {
                no_gpu(&e.to_string());
                None
            }
        };
    agree_on(
        ctx,
        &demo(Demo::Moons, 150, None, 0.05, 9),
        &[9],
        Activation::Relu,
        0.3,
        8,
        1,
    );
}

/// Small logistic regressions run in one workgroup (lr_loop.wgsl) by default; MLPs, big data,
/// more than 64 features, data cut in segments and a forced blocked path do not.
#[test]
fn which_sessions_run_in_one_workgroup() {
    let cases: [(usize, usize, &[usize], bool); 6] = [
        (1, 3, &[], true),
        (1008, 64, &[], true),
        (1009, 64, &[], false),
        (100, 65, &[], false),
        (100, 4, &[3], false),
        (100_000, 16, &[], false),
    ];
    for (rows, features, hidden, looped) in cases {
        let Some(ctx) = gpu_context() else { return };
        let d = demo(Demo::Hyperplane, rows, Some(features), 0.0, 1);
        let sp = spec(&d, hidden, Activation::Relu);
        let s = GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.1, 0)).unwrap();
        let one_workgroup = s.path() == KernelPath::OneWorkgroup;
        assert_eq!(
            one_workgroup, looped,
            "{rows} × {features}, hidden {hidden:?}"
        );
    }
    let d = demo(Demo::Hyperplane, 1000, Some(3), 0.0, 1);
    let sp = spec(&d, &[], Activation::Relu);
    for ctx in [narrow_binding(4096), gpu_context_on(KernelPath::Blocked)] {
        let Some(ctx) = ctx else { return };
        let s = GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.1, 0)).unwrap();
        assert!(s.path() != KernelPath::OneWorkgroup);
    }
}

/// llvmpipe silently ends every loop of an invocation after 65,535 back-edges. Under a loop
/// budget (as on CPU adapters, here made small), logistic regression's blocks shrink until
/// lr_pass.wgsl fits it, and still agree with the CPU, and so do mlp_pass.wgsl's; data that
/// fits no block, and layered kernels past it, are a clear error.
#[test]
fn loop_budget_shrinks_blocks_or_refuses() {
    let budget_on = |b: u64, path| {
        gpu_context_on(path).map(|mut c| {
            c.loop_edge_budget = Some(b);
            c
        })
    };
    let budget = |b: u64| budget_on(b, KernelPath::Blocked);
    let d = demo(Demo::Hyperplane, 1000, Some(100), 0.1, 3);
    let sp = spec(&d, &[], Activation::Relu);
    let Some(ctx) = budget(1000) else { return };
    let s = GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.5, 1)).unwrap();
    assert_eq!(s.parts(), 16, "blocks of 64 rows instead of 256");
    agree_on(budget(1000), &d, &[], Activation::Relu, 0.5, 4, 1);
    let refused = |ctx: Option<GpuContext>, d: &Dataset, hidden: &[usize]| {
        let Some(ctx) = ctx else { return };
        let sp = spec(d, hidden, Activation::Tanh);
        let err = match GpuSession::new(ctx, d, None, &sp, &config(&sp, 0.5, 1)) {
            Ok(_) => panic!("hidden {hidden:?}: the loops cannot fit the budget"),
            Err(e) => e,
        };
        assert!(matches!(err, wgtrain::Error::TooLarge(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("65,535") && msg.contains("--backend cpu"),
            "{msg}"
        );
    };
    refused(budget(500), &d, &[]);
    let layered = |b: u64| budget_on(b, KernelPath::Layered);
    refused(layered(5000), &demo(Demo::Moons, 300, None, 0.05, 3), &[5]);
    // mlp_pass.wgsl's blocks shrink too: 64 → 128 → 1 takes at most 367 back-edges per
    // 16-row tile, so a budget of 1,600 leaves blocks of 64 rows instead of 512.
    let d = demo(Demo::Hyperplane, 300, Some(64), 0.1, 4);
    let sp = spec(&d, &[128], Activation::Relu);
    let one_pass = |b: u64| budget_on(b, KernelPath::OnePassMlp);
    let Some(ctx) = one_pass(1600) else { return };
    let s = GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.5, 1)).unwrap();
    assert_eq!(s.parts(), 5, "blocks of 64 rows");
    agree_on(one_pass(1600), &d, &[128], Activation::Relu, 0.5, 3, 1);
    refused(one_pass(400), &d, &[128]);
}

/// Whole runs stop at the same iteration on both backends.
#[test]
fn same_stop_iteration() {
    let d = demo(Demo::Moons, 300, None, 0.0, 8);
    let sp = spec(&d, &[12], Activation::Tanh);
    let cfg = config(&sp, 0.5, 8);
    let r = rule(Metric::Accuracy, Some(0.95), 2000);
    let Some(mut gpu) = session(Kind::Gpu, &d, &sp, &cfg) else {
        return;
    };
    let mut cpu = session(Kind::Cpu, &d, &sp, &cfg).unwrap();
    let (g, _) = train_all(gpu.as_mut(), &r);
    let (c, _) = train_all(cpu.as_mut(), &r);
    assert_eq!(c.stop.reason, wgtrain::stop::StopReason::Threshold);
    assert!(c.stop.iteration > 10, "the case must need training");
    assert_eq!(g.stop.iteration, c.stop.iteration);
    assert_eq!(g.stop.reason, c.stop.reason);
}

/// A context whose storage bindings hold at most `bytes`, so small data needs segments.
fn narrow_binding(bytes: u64) -> Option<GpuContext> {
    match GpuContext::open_with_limits(None, |l| l.max_storage_buffer_binding_size = bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            no_gpu(&e.to_string());
            None
        }
    }
}

/// As [`narrow_binding`], on `path`.
fn narrow_on(bytes: u64, path: KernelPath) -> Option<GpuContext> {
    narrow_binding(bytes).map(|mut c| {
        c.force_path = Some(path);
        c
    })
}

/// Runs `iters` iterations and returns every evaluation's loss bits and counts, then the
/// weights' bits.
fn trace(s: &mut GpuSession, iters: u64) -> (Vec<(u64, [u64; 4])>, Vec<u32>) {
    let mut out = Vec::new();
    for t in 0..=iters {
        let e = s.evaluate().unwrap();
        for c in std::iter::once(&e.train).chain(&e.val) {
            out.push((
                (c.loss_sum as f32).to_bits() as u64,
                [c.tp(), c.fp(), c.fn_(), c.tn()],
            ));
        }
        if t < iters {
            s.update().unwrap();
        }
    }
    (out, bits(&s.params().unwrap()))
}

/// Data beyond one storage binding trains: with 4 KiB bindings, 1,000 rows × 3 features go
/// in four segments, held to the CPU iteration by iteration.
#[test]
fn data_beyond_a_storage_binding_trains_logistic() {
    agree_on(
        narrow_binding(4096),
        &demo(Demo::Hyperplane, 1000, Some(3), 0.05, 2),
        &[],
        Activation::Relu,
        0.5,
        10,
        4,
    );
}

/// MLPs too: 2 → 5 → 1 in three segments, 300 rows on the layered kernels (each row holds
/// its layers' outputs) and 1,000 rows on mlp_pass.wgsl (X and z alone).
#[test]
fn data_beyond_a_storage_binding_trains_mlp() {
    let layered = narrow_on(4096, KernelPath::Layered);
    for (ctx, rows) in [(layered, 300), (narrow_binding(4096), 1000)] {
        agree_on(
            ctx,
            &demo(Demo::Moons, rows, None, 0.05, 3),
            &[5],
            Activation::Tanh,
            0.5,
            10,
            3,
        );
    }
}

/// Segments are cut on block boundaries, so a run cut in segments (training and validation
/// rows) is bit-identical to one that is not.
#[test]
fn segments_do_not_change_a_bit() {
    let (Some(narrow), Some(whole)) = (narrow_binding(4096), gpu_context_on(KernelPath::Blocked))
    else {
        return;
    };
    let d = demo(Demo::Hyperplane, 1000, Some(3), 0.05, 2);
    let v = demo(Demo::Hyperplane, 700, Some(3), 0.05, 4);
    let sp = spec(&d, &[], Activation::Relu);
    let cfg = config(&sp, 0.5, 5);
    let mut a = GpuSession::new(narrow, &d, Some(&v), &sp, &cfg).unwrap();
    let mut b = GpuSession::new(whole, &d, Some(&v), &sp, &cfg).unwrap();
    assert_eq!(
        (a.segments(), b.segments()),
        (4, 1),
        "the case must cut the rows"
    );
    let (ta, pa) = trace(&mut a, 12);
    let (tb, pb) = trace(&mut b, 12);
    assert_eq!(ta, tb);
    assert_eq!(pa, pb);
    let mut cpu = session_val(Kind::Cpu, &d, Some(&v), &sp, &cfg).unwrap();
    for _ in 0..12 {
        cpu.evaluate().unwrap();
        cpu.update().unwrap();
    }
    let c = cpu.evaluate().unwrap().val.unwrap();
    assert_eq!(&ta[ta.len() - 1].1, &[c.tp(), c.fp(), c.fn_(), c.tn()]);
    assert_eq!(bits(&a.logits().unwrap()).len(), 1000);
}

/// Where not even one block of rows fits a storage binding, the error names the sizes.
#[test]
fn rows_wider_than_a_storage_binding_are_a_clear_error() {
    let Some(ctx) = narrow_binding(4096) else {
        return;
    };
    let d = demo(Demo::Hyperplane, 200, Some(20), 0.0, 1);
    let sp = spec(&d, &[], Activation::Relu);
    let err = match GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.1, 0)) {
        Ok(_) => panic!("64 rows × 21 floats cannot fit 4096 bytes"),
        Err(e) => e,
    };
    assert!(matches!(err, wgtrain::Error::TooLarge(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("20 features") && msg.contains("4096 bytes") && msg.contains("5376 bytes"),
        "{msg}"
    );
}

/// Chunks on the device over data cut in segments stop where `--sync every` does, with the
/// same weights bit for bit (an MLP in three segments on either MLP path; chunks of 1,024
/// asked for, capped at the 64 entries of 64 bytes the small binding's history holds).
#[test]
fn chunks_over_segments_match_every() {
    chunks_over_segments(300, KernelPath::Layered);
    chunks_over_segments(1000, KernelPath::OnePassMlp);
}

fn chunks_over_segments(rows: usize, path: KernelPath) {
    use wgtrain::train::{SyncMode, TrainOptions};
    let d = demo(Demo::Moons, rows, None, 0.05, 3);
    let sp = spec(&d, &[5], Activation::Tanh);
    let cfg = config(&sp, 0.5, 5);
    let run = |sync| {
        let ctx = narrow_on(4096, path)?;
        let mut s = GpuSession::new(ctx, &d, None, &sp, &cfg).unwrap();
        assert_eq!(s.segments(), 3);
        let opts = TrainOptions {
            sync,
            chunk: Some(1024),
            ..TrainOptions::new(rule(Metric::Accuracy, Some(0.97), 400))
        };
        let (out, log) = train_with(&mut s, &opts);
        Some((
            out.stop.iteration,
            out.stop.reason,
            bits(&out.params),
            log.len(),
        ))
    };
    let (Some(every), Some(chunk)) = (run(SyncMode::Every), run(SyncMode::Chunk)) else {
        return;
    };
    assert!(every.0 > 64, "the case must outlast one chunk: {every:?}");
    assert_eq!(every, chunk);
}

/// Forward-only inference (`forward_logits`) gives the CPU reference's logits: one row, rows
/// not a multiple of the workgroup, wide and tall data, logistic regression and one or two
/// hidden layers, and rows cut in segments by a small storage binding.
#[test]
fn forward_logits_match_the_reference() {
    use wgtrain::backend::gpu::forward_logits;
    use wgtrain::backend::reference;
    let cases: [(usize, usize, &[usize], Activation); 7] = [
        (1, 3, &[], Activation::Relu),
        (1, 2, &[5], Activation::Tanh),
        (1001, 7, &[], Activation::Relu),
        (1001, 4, &[9], Activation::Sigmoid),
        (5, 300, &[4], Activation::Relu),
        (70, 300, &[], Activation::Relu),
        (3001, 3, &[9, 6], Activation::Tanh),
    ];
    for (rows, features, hidden, act) in cases {
        let d = demo(Demo::Hyperplane, rows, Some(features), 0.1, rows as u64);
        let sp = spec(&d, hidden, act);
        let params = sp.init_params(3);
        let (_, _, want) = reference::evaluate(&d.x, &d.y, &params, &sp.layout(), act);
        let what = format!("{rows} × {features}, hidden {hidden:?}");
        for ctx in [gpu_context(), narrow_binding(16 << 10)] {
            let Some(ctx) = ctx else { return };
            let got = forward_logits(&ctx, &sp, &params, &d).unwrap();
            assert_eq!(got.len(), rows, "{what}");
            for (r, (g, c)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - c).abs() <= 1e-4 + 1e-4 * c.abs(),
                    "{what}: row {r}'s logit: gpu {g} cpu {c}"
                );
            }
        }
    }
    // Weights that do not match the model are an error, not a panic.
    let Some(ctx) = gpu_context() else { return };
    let d = demo(Demo::Hyperplane, 10, Some(3), 0.1, 1);
    let sp = spec(&d, &[4], Activation::Relu);
    let err = forward_logits(&ctx, &sp, &[0.0; 3], &d).unwrap_err();
    assert!(matches!(err, wgtrain::Error::Config(_)), "{err:?}");
}

// ---- Softmax heads (K classes) ----

/// Runs `iters` iterations of a softmax head of `k` classes on `ctx` and holds each to the
/// reference fed the session's own weights: the loss to 1e-5 relative, the K × K confusion
/// matrix exactly, the logits and the step W − lr·∇L to a small tolerance. Returns the path
/// and the number of segments.
fn agree_k(
    ctx: Option<GpuContext>,
    d: &Dataset,
    hidden: &[usize],
    act: Activation,
    k: usize,
    iters: u64,
) -> Option<(KernelPath, usize)> {
    use wgtrain::backend::reference;
    let ctx = ctx?;
    let (sp, lr) = (spec_k(d, hidden, act, k), 0.5);
    let layout = sp.layout();
    let mut gpu = GpuSession::new(ctx, d, None, &sp, &config(&sp, lr, 13)).unwrap();
    let what = format!(
        "{} × {} K {k} hidden {hidden:?} on {:?}",
        d.rows,
        d.features,
        gpu.path()
    );
    for t in 0..=iters {
        let w = gpu.params().unwrap();
        let e = gpu.evaluate().unwrap();
        let (c, grad, z) = reference::evaluate(&d.x, &d.y, &w, &layout, act);
        let g = &e.train;
        let rel = (g.loss_sum - c.loss_sum).abs() / c.loss_sum.abs().max(1e-30);
        assert!(
            rel <= 1e-5,
            "{what}, iteration {t}: loss gpu {} cpu {} (rel {rel:e})",
            g.loss_sum,
            c.loss_sum
        );
        assert_eq!(g.k(), k, "{what}");
        assert_eq!(g.confusion, c.confusion, "{what}, iteration {t}: counts");
        let zg = gpu.logits().unwrap();
        assert_eq!(zg.len(), d.rows * k, "{what}: logits");
        for (i, (a, b)) in zg.iter().zip(&z).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 + 1e-4 * b.abs(),
                "{what}, iteration {t}: logit {i}: gpu {a} cpu {b}"
            );
        }
        if t < iters {
            gpu.update().unwrap();
            let next = gpu.params().unwrap();
            for (i, ((n, w), g)) in next.iter().zip(&w).zip(&grad).enumerate() {
                let want = w - lr * g;
                assert!(
                    (n - want).abs() <= 1e-5 + 1e-5 * want.abs(),
                    "{what}, iteration {t}: parameter {i}: gpu {n} reference {want}"
                );
            }
        }
    }
    Some((gpu.path(), gpu.segments()))
}

/// Asserts the session took `want` (where a GPU ran).
fn took(got: Option<(KernelPath, usize)>, want: KernelPath) {
    assert!(got.is_none_or(|(p, _)| p == want), "{got:?}, not {want:?}");
}

/// Logistic regression with K = 3 and 10: K = 3 in one workgroup (the planner's choice,
/// with 2, 8 and 64 invocations), K = 10 past its registers on the blocked kernel (the
/// planner's choice, and where the one-workgroup kernel is forced, an error); both blocked
/// and layered too; rows not a multiple of the workgroup.
#[test]
fn softmax_logistic_on_every_path() {
    for k in [3, 10] {
        let d = demo_k(Demo::Hyperplane, 65, Some(7), k, 0.1, k as u64);
        let planned = if k == 3 {
            KernelPath::OneWorkgroup
        } else {
            KernelPath::Blocked
        };
        took(
            agree_k(gpu_context(), &d, &[], Activation::Relu, k, 6),
            planned,
        );
        for path in [KernelPath::Blocked, KernelPath::Layered] {
            took(
                agree_k(gpu_context_on(path), &d, &[], Activation::Relu, k, 6),
                path,
            );
        }
        if k == 3 {
            for wg in [2, 8, 64] {
                let ctx = gpu_context_loop_workgroup(wg);
                took(agree_k(ctx, &d, &[], Activation::Relu, k, 6), planned);
            }
            continue;
        }
        let Some(ctx) = gpu_context_on(KernelPath::OneWorkgroup) else {
            return;
        };
        let sp = spec_k(&d, &[], Activation::Relu, k);
        let err = GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.5, 1)).err();
        assert!(matches!(err, Some(wgtrain::Error::Config(_))), "{err:?}");
    }
}

/// The one-workgroup kernel at its register limits: 8 logits over 4 features, 2 over 28, 3
/// over 16 (each K·(⌈F/4⌉ + 1) ≤ 17 vec4s); one feature more goes blocked.
#[test]
fn softmax_one_workgroup_register_limits() {
    for (k, f) in [(8, 4), (2, 28), (3, 16), (2, 29), (8, 5)] {
        let d = demo_k(Demo::Hyperplane, 37, Some(f), k, 0.1, f as u64);
        let fits = (k * (f.div_ceil(4) + 1)) <= 17;
        let want = if fits {
            KernelPath::OneWorkgroup
        } else {
            KernelPath::Blocked
        };
        took(
            agree_k(gpu_context(), &d, &[], Activation::Relu, k, 5),
            want,
        );
    }
}

/// One and two hidden layers with K = 3 and 10: mlp_pass.wgsl (the planner's choice for one
/// hidden layer) and the layered kernels, over 257 rows (a partial tile and block).
#[test]
fn softmax_mlp_on_every_path() {
    for k in [3, 10] {
        let d = demo_k(Demo::Hyperplane, 257, Some(5), k, 0.05, 20 + k as u64);
        took(
            agree_k(gpu_context(), &d, &[9], Activation::Tanh, k, 5),
            KernelPath::OnePassMlp,
        );
        let layered = gpu_context_on(KernelPath::Layered);
        took(
            agree_k(layered, &d, &[9], Activation::Tanh, k, 5),
            KernelPath::Layered,
        );
        let deep = agree_k(gpu_context(), &d, &[6, 5], Activation::Relu, k, 5);
        took(deep, KernelPath::Layered);
    }
}

/// One row, and a class absent from the data (K = 4, labels 0..=2), on every path.
#[test]
fn softmax_one_row_and_an_absent_class() {
    let one = demo_k(Demo::Hyperplane, 1, Some(3), 3, 0.0, 1);
    let absent = demo_k(Demo::Blobs, 90, None, 3, 0.1, 2);
    for (d, k) in [(&one, 3), (&absent, 4)] {
        for path in [KernelPath::Blocked, KernelPath::Layered] {
            took(
                agree_k(gpu_context_on(path), d, &[], Activation::Relu, k, 5),
                path,
            );
        }
        for path in [KernelPath::OnePassMlp, KernelPath::Layered] {
            took(
                agree_k(gpu_context_on(path), d, &[4], Activation::Sigmoid, k, 5),
                path,
            );
        }
    }
}

/// Wide data: 300 features, logistic regression blocked and layered, an MLP layered (past
/// mlp_pass.wgsl's 64 features).
#[test]
fn softmax_wide_data() {
    let d = demo_k(Demo::Hyperplane, 70, Some(300), 3, 0.1, 3);
    for path in [KernelPath::Blocked, KernelPath::Layered] {
        took(
            agree_k(gpu_context_on(path), &d, &[], Activation::Relu, 3, 4),
            path,
        );
    }
    took(
        agree_k(gpu_context(), &d, &[4], Activation::Relu, 3, 4),
        KernelPath::Layered,
    );
}

/// Tall data: more rows than one block, and rows cut in segments by a 16 KiB binding, on
/// every path (the one-workgroup kernel over 1,000 rows, more than its invocations).
#[test]
fn softmax_tall_data_in_segments() {
    let d = demo_k(Demo::Hyperplane, 1000, Some(3), 3, 0.1, 4);
    let cases: [(&[usize], KernelPath); 4] = [
        (&[], KernelPath::Blocked),
        (&[], KernelPath::Layered),
        (&[5], KernelPath::OnePassMlp),
        (&[5], KernelPath::Layered),
    ];
    for (hidden, path) in cases {
        let got = agree_k(
            narrow_on(16 << 10, path),
            &d,
            hidden,
            Activation::Tanh,
            3,
            4,
        );
        took(got, path);
        assert!(
            got.is_none_or(|(_, s)| s > 1),
            "{path:?}: {got:?} must cut segments"
        );
        took(
            agree_k(gpu_context_on(path), &d, hidden, Activation::Tanh, 3, 3),
            path,
        );
    }
}

/// Many classes: past the workgroup histogram (40 classes, 1,600 cells, on lr_pass.wgsl), past
/// the blocked kernel's 48 logits and mlp_pass.wgsl's 16 (the layered kernels take them), and
/// the most, 256.
#[test]
fn softmax_many_classes() {
    let d = demo_k(Demo::Blobs, 300, None, 40, 0.0, 5);
    took(
        agree_k(gpu_context(), &d, &[], Activation::Relu, 40, 3),
        KernelPath::Blocked,
    );
    let d = demo_k(Demo::Blobs, 300, None, 49, 0.0, 6);
    took(
        agree_k(gpu_context(), &d, &[], Activation::Relu, 49, 3),
        KernelPath::Layered,
    );
    let d = demo_k(Demo::Blobs, 300, None, 17, 0.0, 7);
    took(
        agree_k(gpu_context(), &d, &[6], Activation::Tanh, 17, 3),
        KernelPath::Layered,
    );
    let d = demo_k(Demo::Blobs, 300, None, 16, 0.0, 7);
    took(
        agree_k(gpu_context(), &d, &[6], Activation::Tanh, 16, 3),
        KernelPath::OnePassMlp,
    );
    let d = demo_k(Demo::Blobs, 600, None, 256, 0.0, 8);
    took(
        agree_k(gpu_context(), &d, &[], Activation::Relu, 256, 2),
        KernelPath::Layered,
    );
    took(
        agree_k(gpu_context(), &d, &[8], Activation::Relu, 256, 2),
        KernelPath::Layered,
    );
}

/// The speed properties for K = 10: 100,000 × 64 logistic regression runs blocked (one pass
/// over X per iteration, blocks of 256 rows), and 64 → 128 → 10 on mlp_pass.wgsl; both agree
/// with the reference.
#[test]
fn softmax_k10_keeps_the_one_pass_paths() {
    let d = demo_k(Demo::Hyperplane, 100_000, Some(64), 10, 0.1, 9);
    let got = agree_k(gpu_context(), &d, &[], Activation::Relu, 10, 1);
    took(got, KernelPath::Blocked);
    if let Some(ctx) = gpu_context() {
        let sp = spec_k(&d, &[], Activation::Relu, 10);
        let s = GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.5, 1)).unwrap();
        assert_eq!(s.parts(), 391, "blocks of 256 rows");
        assert_eq!(s.kernels(), ["lr_pass", "reduce_stats", "reduce_update"]);
    }
    let d = demo_k(Demo::Hyperplane, 2000, Some(64), 10, 0.1, 10);
    let got = agree_k(gpu_context(), &d, &[128], Activation::Relu, 10, 2);
    took(got, KernelPath::OnePassMlp);
}

/// `forward_logits` gives the reference's [rows × K] logits for K = 3 and 10, whole and in
/// segments.
#[test]
fn softmax_forward_logits_match_the_reference() {
    use wgtrain::backend::gpu::forward_logits;
    use wgtrain::backend::reference;
    for (k, hidden) in [
        (3, &[][..]),
        (3, &[7][..]),
        (10, &[5, 4][..]),
        (10, &[][..]),
    ] {
        let d = demo_k(Demo::Hyperplane, 1001, Some(6), k, 0.1, k as u64);
        let sp = spec_k(&d, hidden, Activation::Tanh, k);
        let params = sp.init_params(3);
        let want = reference::logits(&d.x, d.rows, &params, &sp.layout(), Activation::Tanh);
        for ctx in [gpu_context(), narrow_binding(16 << 10)] {
            let Some(ctx) = ctx else { return };
            let got = forward_logits(&ctx, &sp, &params, &d).unwrap();
            assert_eq!(got.len(), d.rows * k);
            for (i, (g, c)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - c).abs() <= 1e-4 + 1e-4 * c.abs(),
                    "K {k}: logit {i}: {g} vs {c}"
                );
            }
        }
    }
}

/// Whole trajectories: 400 iterations of spirals (three classes) with a softmax head on the
/// one-pass MLP and in one workgroup, against the reference stepping its own weights from the
/// same start: the losses stay within 1e-4 relative.
#[test]
fn softmax_trajectories_follow_the_reference() {
    use wgtrain::backend::reference;
    let d = demo_k(Demo::Spirals, 600, None, 3, 0.0, 12);
    for (hidden, path) in [
        (&[32][..], KernelPath::OnePassMlp),
        (&[][..], KernelPath::OneWorkgroup),
    ] {
        let Some(ctx) = gpu_context() else { return };
        let act = Activation::Tanh;
        let sp = spec_k(&d, hidden, act, 3);
        let cfg = config(&sp, 0.5, 12);
        let layout = sp.layout();
        let mut gpu = GpuSession::new(ctx, &d, None, &sp, &cfg).unwrap();
        assert_eq!(gpu.path(), path);
        let mut w = cfg.params.clone();
        for t in 0..=400 {
            let g = gpu.evaluate().unwrap().train;
            let (c, grad, _) = reference::evaluate(&d.x, &d.y, &w, &layout, act);
            let rel = (g.loss_sum - c.loss_sum).abs() / c.loss_sum;
            assert!(
                rel <= 1e-4,
                "{path:?}, iteration {t}: loss {} vs {}",
                g.loss_sum,
                c.loss_sum
            );
            reference::update(&mut w, &grad, cfg.lr);
            gpu.update().unwrap();
        }
    }
}

/// K = 3: the CPU and the GPU stop at the same iteration, for the same reason, under every
/// rule (thresholds on accuracy, macro F1 and the loss; patience with a delta; restore-best;
/// divergence; max_iter), training a softmax MLP on validation-monitored, overlapping blobs
/// (a smooth descent: at large steps on spirals the two trajectories part in f32 after some
/// hundred iterations, as any two summation orders do).
#[test]
fn three_classes_same_stop_on_both_backends() {
    use wgtrain::data::{Standardizer, split_stratified};
    use wgtrain::stop::{MinDelta, StopReason, StopRule};
    use wgtrain::train::{Monitor, TrainOptions};
    let case = |lr: f32| {
        let d = demo_k(Demo::Blobs, 360, None, 3, 0.15, 71);
        let (mut train, mut val) = split_stratified(&d, 0.3, 71).unwrap();
        let s = Standardizer::fit(&train);
        s.apply(&mut train);
        s.apply(&mut val);
        let sp = spec_k(&train, &[16], Activation::Tanh, 3);
        let cfg = config(&sp, lr, 71);
        (train, val, sp, cfg)
    };
    let base = StopRule {
        threshold: None,
        ..rule(Metric::Accuracy, None, 1500)
    };
    let rules: Vec<(&str, f32, TrainOptions, StopReason)> = vec![
        (
            "accuracy threshold",
            0.1,
            TrainOptions::new(StopRule {
                threshold: Some(0.83),
                ..base.clone()
            }),
            StopReason::Threshold,
        ),
        (
            "macro f1 threshold",
            0.1,
            TrainOptions::new(StopRule {
                metric: Metric::F1,
                threshold: Some(0.83),
                ..base.clone()
            }),
            StopReason::Threshold,
        ),
        (
            "loss threshold",
            0.1,
            TrainOptions::new(StopRule {
                metric: Metric::Loss,
                threshold: Some(0.62),
                ..base.clone()
            }),
            StopReason::Threshold,
        ),
        (
            "patience on the loss with a delta",
            0.1,
            TrainOptions::new(StopRule {
                metric: Metric::Loss,
                patience: Some(3),
                min_delta: MinDelta::Abs(1e-3),
                ..base.clone()
            }),
            StopReason::Patience,
        ),
        (
            "restore-best on macro f1",
            0.1,
            TrainOptions {
                restore_best: true,
                ..TrainOptions::new(StopRule {
                    metric: Metric::F1,
                    patience: Some(20),
                    ..base.clone()
                })
            },
            StopReason::Patience,
        ),
        (
            "divergence",
            60.0,
            TrainOptions::new(StopRule {
                metric: Metric::Loss,
                divergence: Some(3.0),
                ..base.clone()
            }),
            StopReason::Divergence,
        ),
        (
            "max_iter",
            0.1,
            TrainOptions::new(StopRule {
                max_iter: 57,
                ..base.clone()
            }),
            StopReason::MaxIter,
        ),
    ];
    for (name, lr, opts, reason) in rules {
        let (train, val, sp, cfg) = case(lr);
        let opts = TrainOptions {
            monitor: Monitor::Val,
            ..opts
        };
        let Some(mut gpu) = session_val(Kind::Gpu, &train, Some(&val), &sp, &cfg) else {
            return;
        };
        let mut cpu = session_val(Kind::Cpu, &train, Some(&val), &sp, &cfg).unwrap();
        let (g, _) = train_with(gpu.as_mut(), &opts);
        let (c, _) = train_with(cpu.as_mut(), &opts);
        assert_eq!(c.stop.reason, reason, "{name}: {:?}", c.stop);
        assert!(c.stop.stopped_at > 0, "{name}: the case must need training");
        assert_eq!(g.stop.reason, c.stop.reason, "{name}");
        assert_eq!(g.stop.stopped_at, c.stop.stopped_at, "{name}");
        assert_eq!(g.stop.iteration, c.stop.iteration, "{name}");
        // The same matrices; the losses as close as two summation orders in f32 get.
        let (gv, cv) = (g.counts.val.unwrap(), c.counts.val.unwrap());
        assert_eq!(gv.confusion, cv.confusion, "{name}: the confusion matrices");
        let rel = (gv.loss_sum - cv.loss_sum).abs() / cv.loss_sum.abs().max(1.0);
        assert!(
            rel < 1e-4 || !cv.loss_sum.is_finite(),
            "{name}: {gv:?} vs {cv:?}"
        );
    }
}
