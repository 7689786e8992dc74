//! The GPU held to the CPU reference, iteration by iteration, on awkward sizes: one row,
//! sizes that are not a multiple of the workgroup, wide and tall data, every activation.

mod common;

use common::*;
use wgtrain::backend::Session;
use wgtrain::backend::gpu::{GpuContext, GpuSession};
use wgtrain::data::{Dataset, Demo};
use wgtrain::metrics::{Metric, Metrics};
use wgtrain::model::Activation;

/// Runs `iters` iterations on both backends and compares every check: loss to 1e-5
/// relative, confusion counts exactly; then the final weights to a small tolerance.
fn agree(d: &Dataset, hidden: &[usize], act: Activation, lr: f32, iters: u64) {
    agree_on(gpu_context(), d, hidden, act, lr, iters)
}

fn agree_on(
    ctx: Option<GpuContext>,
    d: &Dataset,
    hidden: &[usize],
    act: Activation,
    lr: f32,
    iters: u64,
) {
    let sp = spec(d, hidden, act);
    let cfg = config(&sp, lr, 11);
    let Some(ctx) = ctx else { return };
    let mut gpu = GpuSession::new(ctx, d, None, &sp, &cfg).unwrap();
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
    );
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

/// Data beyond one storage binding is a clear error naming the sizes, not a GPU fault.
#[test]
fn data_beyond_a_storage_binding_is_a_clear_error() {
    let ctx = match GpuContext::open_with_limits(None, |l| l.max_storage_buffer_binding_size = 4096)
    {
        Ok(c) => c,
        Err(e) => return no_gpu(&e.to_string()),
    };
    let d = demo(Demo::Hyperplane, 200, Some(8), 0.0, 1);
    let sp = spec(&d, &[], Activation::Relu);
    let err = match GpuSession::new(ctx, &d, None, &sp, &config(&sp, 0.1, 0)) {
        Ok(_) => panic!("200 × 8 floats cannot fit 4096 bytes"),
        Err(e) => e,
    };
    assert!(matches!(err, wgtrain::Error::TooLarge(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("200 rows × 8 features") && msg.contains("4096 bytes"),
        "{msg}"
    );
}
