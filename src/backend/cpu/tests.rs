//! Unit tests of the fast path: against `backend::reference`, across thread counts and
//! instruction sets, and its kernels against plain loops.

use super::kernels::*;
use super::session::working_bytes;
use super::*;
use crate::backend::reference::{self, bce_from_logit, sigmoid};
use crate::backend::{Session, SessionConfig};
use crate::data::{Dataset, Demo, DemoOptions, demo};
use crate::metrics::Counts;
use crate::model::{Activation, Head, ModelSpec};

fn data(kind: Demo, rows: usize, features: Option<usize>, seed: u64) -> Dataset {
    demo(
        kind,
        &DemoOptions {
            rows: Some(rows),
            features,
            classes: None,
            noise: 0.1,
            seed,
        },
    )
    .unwrap()
}

fn session(d: &Dataset, hidden: &[usize], act: Activation, seed: u64) -> (ModelSpec, CpuSession) {
    let spec = ModelSpec::new(d.features, hidden, act).unwrap();
    let cfg = SessionConfig {
        params: spec.init_params(seed),
        lr: 0.5,
        ..Default::default()
    };
    let s = CpuSession::new(d, None, &spec, &cfg).unwrap();
    (spec, s)
}

fn close(a: &[f32], b: &[f32], what: &str) {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * scale + 1e-4 * y.abs(),
            "{what}[{i}]: fast {x} reference {y} (scale {scale})"
        );
    }
}

#[test]
fn working_memory_is_counted_with_checked_arithmetic() {
    let spec = ModelSpec::new(2, &[], Activation::Relu).unwrap();
    let layout = spec.layout();
    // Rows 2·10·3 + logits 10 + weights 11·3 + one block's scratch 2·64·1 + 512 and
    // gradient 3, in f32.
    assert_eq!(
        working_bytes(10, 0, 2, &layout, 3, 0),
        Some(4 * (60 + 10 + 33 + 643))
    );
    assert_eq!(
        working_bytes(10, 5, 2, &layout, 3, 0),
        Some(4 * (60 + 30 + 10 + 33 + 643 + 640))
    );
    // Batches of 4: their rows 4·3, logits 4 and two blocks (full, remainder) 2·643.
    assert_eq!(
        working_bytes(10, 0, 2, &layout, 3, 4),
        Some(4 * (60 + 10 + 33 + 643 + 12 + 4 + 1286))
    );
    assert_eq!(working_bytes(usize::MAX / 2, 0, 2, &layout, 3, 0), None);
    assert_eq!(working_bytes(10, 0, usize::MAX, &layout, 3, 0), None);
    assert_eq!(
        working_bytes(1 << 40, 0, 2, &layout, usize::MAX / 4, 0),
        None
    );
    assert_eq!(working_bytes(10, 0, 2, &layout, 3, usize::MAX), None);
}

/// The fast path against the plain reference, iteration by iteration: every block and
/// tile remainder, narrow and wide layers, every activation.
#[test]
fn fast_path_matches_the_reference() {
    type Case = (Demo, usize, Option<usize>, &'static [usize], Activation);
    let cases: &[Case] = &[
        (Demo::Hyperplane, 1, Some(3), &[], Activation::Relu),
        (
            Demo::Hyperplane,
            2 * BLOCK_ROWS + 37,
            Some(37),
            &[],
            Activation::Relu,
        ),
        (
            Demo::Hyperplane,
            BLOCK_ROWS + TILE_ROWS + 1,
            Some(64),
            &[],
            Activation::Relu,
        ),
        (Demo::Moons, 513, None, &[70, 3], Activation::Relu),
        (Demo::Hyperplane, 300, Some(20), &[33, 17], Activation::Tanh),
        (
            Demo::Hyperplane,
            BLOCK_ROWS + 3,
            Some(5),
            &[4],
            Activation::Sigmoid,
        ),
        (Demo::Blobs, 77, None, &[16, 16], Activation::Sigmoid),
    ];
    for (k, &(kind, rows, features, hidden, act)) in cases.iter().enumerate() {
        let d = data(kind, rows, features, k as u64);
        let (spec, mut s) = session(&d, hidden, act, k as u64);
        let layout = spec.layout();
        for t in 0..4 {
            let what = format!("case {k} iteration {t}");
            let (c, grad, logits) = reference::evaluate(&d.x, &d.y, &s.params, &layout, act);
            let e = s.evaluate().unwrap();
            assert!(e.val.is_none());
            let f = e.train;
            assert_eq!(
                (f.tp(), f.fp(), f.fn_(), f.tn()),
                (c.tp(), c.fp(), c.fn_(), c.tn()),
                "{what}"
            );
            let rel = (f.loss_sum - c.loss_sum).abs() / c.loss_sum.abs().max(1e-30);
            assert!(rel <= 1e-6, "{what}: loss {} vs {}", f.loss_sum, c.loss_sum);
            close(&s.grad, &grad, &format!("{what} grad"));
            close(&s.logits().unwrap(), &logits, &format!("{what} logits"));
            s.update().unwrap();
        }
    }
}

/// Validation rows are evaluated forward only, with the training weights.
#[test]
fn validation_rows_match_the_reference() {
    let d = data(Demo::Hyperplane, 700, Some(9), 1);
    let v = data(Demo::Hyperplane, BLOCK_ROWS + 5, Some(9), 2);
    let spec = ModelSpec::new(9, &[24], Activation::Tanh).unwrap();
    let cfg = SessionConfig {
        params: spec.init_params(3),
        lr: 0.5,
        ..Default::default()
    };
    let mut s = CpuSession::new(&d, Some(&v), &spec, &cfg).unwrap();
    s.evaluate().unwrap();
    s.update().unwrap();
    let e = s.evaluate().unwrap().val.unwrap();
    let (c, _, _) = reference::evaluate(&v.x, &v.y, &s.params, &spec.layout(), spec.activation);
    assert_eq!(
        (e.tp(), e.fp(), e.fn_(), e.tn()),
        (c.tp(), c.fp(), c.fn_(), c.tn())
    );
    assert!((e.loss_sum - c.loss_sum).abs() <= 1e-6 * c.loss_sum);
}

/// Bit-identical results with 1 and 3 threads: the blocks are fixed and summed in order.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let d = data(Demo::Hyperplane, 5 * BLOCK_ROWS + 123, Some(12), 4);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (_, mut s) = session(&d, &[20], Activation::Relu, 4);
            let mut losses = Vec::new();
            for _ in 0..5 {
                let e = s.evaluate().unwrap().train;
                losses.push((e.loss_sum.to_bits(), e.tp(), e.fp(), e.fn_(), e.tn()));
                s.update().unwrap();
            }
            let bits: Vec<u32> = s.params.iter().map(|p| p.to_bits()).collect();
            (losses, bits)
        })
    };
    assert_eq!(run(1), run(3));
}

/// The AVX2 build of the fast path gives the baseline's bits (on a CPU without AVX2 there
/// is nothing to compare, and it says so).
#[test]
fn instruction_sets_give_the_same_bits() {
    if Simd::detect() == Simd::Baseline {
        eprintln!("this CPU has no AVX2: only the baseline fast path exists here");
        return;
    }
    let moons = data(Demo::Moons, 2 * BLOCK_ROWS + 77, None, 5);
    // 21 features: two whole eights of a dot product and a tail.
    let wide = data(Demo::Hyperplane, 2 * BLOCK_ROWS + 77, Some(21), 5);
    for (d, hidden, act) in [
        (&moons, &[][..], Activation::Relu),
        (&wide, &[][..], Activation::Relu),
        (&moons, &[24, 5][..], Activation::Tanh),
    ] {
        let run = |simd: Simd| {
            let (_, s) = session(d, hidden, act, 6);
            let mut s = s.with_simd(simd);
            assert_eq!(s.simd, simd);
            let mut seen = Vec::new();
            for _ in 0..4 {
                let e = s.evaluate().unwrap().train;
                seen.push((e.loss_sum.to_bits(), e.tp(), e.fp(), e.fn_(), e.tn()));
                s.update().unwrap();
            }
            (
                seen,
                s.params.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(run(Simd::Baseline), run(Simd::Avx2), "{hidden:?}");
    }
}

#[test]
fn update_needs_an_evaluate() {
    let d = data(Demo::Blobs, 10, None, 0);
    let (_, mut s) = session(&d, &[], Activation::Relu, 0);
    assert!(s.update().is_err());
    assert!(s.logits().is_err());
    s.evaluate().unwrap();
    assert_eq!(s.logits().unwrap().len(), 10);
    s.update().unwrap();
    assert!(s.update().is_err());
    assert_eq!(s.previous_params().unwrap().len(), 3);
}

#[test]
fn exp_neg_is_exp_to_two_ulp() {
    let mut a = 0.0f32;
    while a < 87.0 {
        let (got, want) = (exp_neg(a), (-(a as f64)).exp());
        let rel = (got as f64 - want).abs() / want;
        assert!(rel <= 2.5e-7, "e^-{a}: {got} vs {want} (rel {rel:e})");
        a += 0.001 + a * 1e-3;
    }
    assert_eq!(exp_neg(0.0), 1.0);
    assert!(exp_neg(f32::NAN).is_nan());
    assert_eq!(exp_neg(f32::INFINITY), exp_neg(87.0));
    assert!(exp_neg(1000.0) < 1e-37);
}

/// Non-finite logits give the reference's non-finite loss and gradient.
#[test]
fn non_finite_logits_stay_non_finite() {
    for z in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for y in [0.0, 1.0] {
            let (mut bce, mut c, mut d) = (BceSum::new(), Counts::default(), [0.0]);
            loss_and_delta(&[z], &[y], &mut d, 0.5, &mut bce, &mut c);
            let want = bce_from_logit(z, y) as f64;
            let got = bce.total();
            assert!(
                got == want || got.is_nan() && want.is_nan(),
                "{z} {y}: {got} {want}"
            );
            let dw = (sigmoid(z) - y) * 0.5;
            // e^−|z| stops at e^−87: σ(−∞) comes out as 1.6e-38 rather than 0.
            let near = (d[0] - dw).abs() <= 1e-37;
            assert!(
                near || d[0].is_nan() && dw.is_nan(),
                "{z} {y}: {} {dw}",
                d[0]
            );
        }
    }
}

#[test]
fn kernels_match_plain_loops() {
    // C[m, n] += A[m, k]·B[k, n] with A as a matrix and as a transposed view.
    let shapes = [
        (1, 1, 1),
        (3, 5, 17),
        (4, 7, 32),
        (5, 3, 40),
        (2, 16, 15),
        (3, 130, 20),
    ];
    for &(m, k, n) in &shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let c0: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.01).collect();
        let mut want = c0.clone();
        for i in 0..m {
            for j in 0..n {
                for q in 0..k {
                    want[i * n + j] += a[i * k + q] * b[q * n + j];
                }
            }
        }
        let mut pack = vec![[0.0; 4]; GEMM_K * GEMM_ROWS];
        let mut c = c0.clone();
        let a_rows = Strided {
            data: &a,
            rs: k,
            cs: 1,
        };
        gemm_acc(&mut c, a_rows, &b, (m, k, n), &mut pack);
        close(&c, &want, "gemm");
        let mut at = vec![0.0; k * m]; // [k, m]
        for i in 0..m {
            for q in 0..k {
                at[q * m + i] = a[i * k + q];
            }
        }
        let mut c = c0.clone();
        let a_cols = Strided {
            data: &at,
            rs: 1,
            cs: m,
        };
        gemm_acc(&mut c, a_cols, &b, (m, k, n), &mut pack);
        close(&c, &want, "gemm transposed");
    }
    for len in [0, 1, 15, 16, 17, 64, 100] {
        let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..len).map(|i| 1.0 - i as f32 * 0.25).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let got = dots([&a[..]], &b)[0];
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{got} {want}"
        );
    }
}

/// Forward-only logits: bit-identical to the session's (the same blocks and tiles), and the
/// reference's to within rounding (other orders of summation); 1 row, 1001 rows, wide and
/// tall data, logistic and one or two hidden layers, every activation.
#[test]
fn forward_logits_match_the_session_and_the_reference() {
    type Case = (Demo, usize, Option<usize>, &'static [usize], Activation);
    let cases: &[Case] = &[
        (Demo::Hyperplane, 1, Some(3), &[], Activation::Relu),
        (Demo::Hyperplane, 1, Some(5), &[7], Activation::Tanh),
        (Demo::Moons, 1001, None, &[], Activation::Relu),
        (Demo::Moons, 1001, None, &[24], Activation::Sigmoid),
        (Demo::Blobs, 1001, None, &[16, 5], Activation::Tanh),
        (Demo::Hyperplane, 300, Some(300), &[], Activation::Relu),
        (Demo::Hyperplane, 300, Some(300), &[20], Activation::Relu),
        (
            Demo::Hyperplane,
            200,
            Some(300),
            &[33, 17],
            Activation::Sigmoid,
        ),
        (
            Demo::Hyperplane,
            3 * BLOCK_ROWS + 77,
            Some(4),
            &[],
            Activation::Sigmoid,
        ),
        (
            Demo::Hyperplane,
            2 * BLOCK_ROWS + 5,
            Some(9),
            &[18],
            Activation::Relu,
        ),
        (
            Demo::Moons,
            2 * BLOCK_ROWS + 5,
            None,
            &[6, 3],
            Activation::Tanh,
        ),
    ];
    for (k, &(kind, rows, features, hidden, act)) in cases.iter().enumerate() {
        let what = format!("case {k}");
        let d = data(kind, rows, features, 10 + k as u64);
        let (spec, mut s) = session(&d, hidden, act, k as u64);
        // Trained weights a few steps in, not only the initial ones.
        for _ in 0..2 {
            s.evaluate().unwrap();
            s.update().unwrap();
        }
        s.evaluate().unwrap();
        let got = forward_logits(&spec, &s.params, &d).unwrap();
        assert_eq!(got.len(), rows, "{what}");
        let bits = |v: &[f32]| v.iter().map(|z| z.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&got),
            bits(&s.logits().unwrap()),
            "{what}: vs the session"
        );
        let want = reference::logits(&d.x, d.rows, &s.params, &spec.layout(), act);
        close(&got, &want, &format!("{what} logits"));
    }
}

#[test]
fn forward_logits_check_shapes_and_memory() {
    let d = data(Demo::Blobs, 10, None, 0);
    let spec = ModelSpec::new(d.features, &[4], Activation::Relu).unwrap();
    let p = spec.init_params(0);
    assert!(forward_logits(&spec, &p[1..], &d).is_err());
    let other = ModelSpec::new(d.features + 1, &[4], Activation::Relu).unwrap();
    assert!(forward_logits(&other, &other.init_params(0), &d).is_err());
    let empty = Dataset {
        rows: 0,
        x: Vec::new(),
        y: Vec::new(),
        ..d.clone()
    };
    assert_eq!(
        forward_logits(&spec, &p, &empty).unwrap(),
        Vec::<f32>::new()
    );
    let layout = spec.layout();
    assert_eq!(forward::forward_bytes(usize::MAX, &layout, p.len()), None);
    // Logits 10, weights 17, one block's tile outputs 64·(4 + 1) and pack 512, in f32.
    assert_eq!(
        forward::forward_bytes(10, &layout, p.len()),
        Some(4 * (10 + 17 + 320 + 512))
    );
}

/// The session's update is the one update site's, bit for bit.
#[test]
fn the_session_updates_through_the_one_update_site() {
    let d = data(Demo::Moons, 300, None, 3);
    let (_, mut s) = session(&d, &[5], Activation::Tanh, 3);
    s.evaluate().unwrap();
    let mut want = s.params.clone();
    reference::update(&mut want, &s.grad, s.optim.lr);
    s.update().unwrap();
    assert_eq!(
        s.params.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|p| p.to_bits()).collect::<Vec<_>>()
    );
}

// K classes: softmax heads.

fn data_k(kind: Demo, rows: usize, features: Option<usize>, k: usize, seed: u64) -> Dataset {
    demo(
        kind,
        &DemoOptions {
            rows: Some(rows),
            features,
            classes: Some(k),
            noise: 0.1,
            seed,
        },
    )
    .unwrap()
}

fn softmax_session(
    d: &Dataset,
    val: Option<&Dataset>,
    hidden: &[usize],
    act: Activation,
    k: usize,
    seed: u64,
) -> (ModelSpec, CpuSession) {
    let spec = ModelSpec::with_head(d.features, hidden, act, Head::Softmax, k).unwrap();
    let cfg = SessionConfig {
        params: spec.init_params(seed),
        lr: 0.5,
        ..Default::default()
    };
    let s = CpuSession::new(d, val, &spec, &cfg).unwrap();
    (spec, s)
}

/// The loss sums, confusion matrices and gradients of two counts agree.
fn same_counts(f: &Counts, c: &Counts, what: &str) {
    assert_eq!(f.confusion, c.confusion, "{what}: confusion");
    let rel = (f.loss_sum - c.loss_sum).abs() / c.loss_sum.abs().max(1e-30);
    assert!(rel <= 1e-5, "{what}: loss {} vs {}", f.loss_sum, c.loss_sum);
}

/// A softmax case: data kind, rows, features, hidden layers, activation, K, and the classes
/// the data has (fewer than K leaves classes absent).
type SoftmaxCase = (
    Demo,
    usize,
    Option<usize>,
    &'static [usize],
    Activation,
    usize,
    usize,
);

const SOFTMAX_CASES: &[SoftmaxCase] = &[
    // K = 2 through a softmax head.
    (Demo::Blobs, 77, None, &[], Activation::Relu, 2, 2),
    (Demo::Hyperplane, 300, Some(7), &[9], Activation::Tanh, 2, 2),
    // K = 3: one row; logistic, one and two hidden layers, every activation.
    (Demo::Spirals, 1, None, &[], Activation::Relu, 3, 3),
    (Demo::Spirals, 1, None, &[5], Activation::Tanh, 3, 3),
    (Demo::Spirals, 513, None, &[20], Activation::Relu, 3, 3),
    (
        Demo::Spirals,
        300,
        None,
        &[16, 7],
        Activation::Sigmoid,
        3,
        3,
    ),
    (
        Demo::Blobs,
        2 * TILE_ROWS + 3,
        None,
        &[],
        Activation::Relu,
        3,
        3,
    ),
    // K = 4 with class 3 absent from the data.
    (Demo::Blobs, 150, None, &[6], Activation::Tanh, 4, 3),
    // K = 10: rows off the tile and block sizes, wide and tall data, narrow and wide layers.
    (Demo::Hyperplane, 1, Some(64), &[], Activation::Relu, 10, 10),
    (
        Demo::Hyperplane,
        BLOCK_ROWS + TILE_ROWS + 1,
        Some(64),
        &[],
        Activation::Relu,
        10,
        10,
    ),
    (
        Demo::Hyperplane,
        2 * BLOCK_ROWS + 37,
        Some(37),
        &[],
        Activation::Relu,
        10,
        10,
    ),
    (
        Demo::Hyperplane,
        200,
        Some(300),
        &[],
        Activation::Relu,
        10,
        10,
    ),
    (
        Demo::Hyperplane,
        200,
        Some(300),
        &[24],
        Activation::Sigmoid,
        10,
        10,
    ),
    (Demo::Blobs, 1001, None, &[33, 17], Activation::Tanh, 10, 10),
    (
        Demo::Hyperplane,
        BLOCK_ROWS + 5,
        Some(12),
        &[18],
        Activation::Relu,
        10,
        10,
    ),
    // K ≥ 16: the output layer's forward pass is a matrix product; a tail of columns.
    (
        Demo::Hyperplane,
        500,
        Some(20),
        &[],
        Activation::Relu,
        20,
        20,
    ),
    (Demo::Blobs, 300, None, &[8], Activation::Relu, 37, 37),
    (
        Demo::Hyperplane,
        129,
        Some(16),
        &[16],
        Activation::Tanh,
        16,
        16,
    ),
    (Demo::Blobs, 300, None, &[], Activation::Relu, 256, 256),
    (Demo::Blobs, 70, None, &[5], Activation::Sigmoid, 256, 256),
];

/// The fast path against the plain reference with softmax heads of K = 2 to 256, iteration
/// by iteration: loss, confusion matrix, gradient and logits.
#[test]
fn softmax_fast_path_matches_the_reference() {
    for (i, &(kind, rows, features, hidden, act, k, present)) in SOFTMAX_CASES.iter().enumerate() {
        let d = data_k(kind, rows, features, present, i as u64);
        let (spec, mut s) = softmax_session(&d, None, hidden, act, k, i as u64);
        let layout = spec.layout();
        for t in 0..4 {
            let what = format!("case {i} (K = {k}) iteration {t}");
            let (c, grad, logits) = reference::evaluate(&d.x, &d.y, &s.params, &layout, act);
            let e = s.evaluate().unwrap();
            assert!(e.val.is_none());
            assert_eq!(e.train.k(), k, "{what}");
            same_counts(&e.train, &c, &what);
            close(&s.grad, &grad, &format!("{what} grad"));
            let z = s.logits().unwrap();
            assert_eq!(z.len(), rows * k, "{what}");
            close(&z, &logits, &format!("{what} logits"));
            s.update().unwrap();
        }
    }
}

/// Validation rows of a softmax head: forward only, with the training weights, K × K counts.
#[test]
fn softmax_validation_rows_match_the_reference() {
    let d = data_k(Demo::Hyperplane, 700, Some(9), 5, 1);
    let v = data_k(Demo::Hyperplane, BLOCK_ROWS + 5, Some(9), 5, 2);
    let (spec, mut s) = softmax_session(&d, Some(&v), &[24], Activation::Tanh, 5, 3);
    for _ in 0..3 {
        s.evaluate().unwrap();
        s.update().unwrap();
    }
    let e = s.evaluate().unwrap();
    let (c, _, _) = reference::evaluate(&v.x, &v.y, &s.params, &spec.layout(), spec.activation);
    let val = e.val.unwrap();
    assert_eq!(val.k(), 5);
    assert_eq!(val.rows(), v.rows as u64);
    same_counts(&val, &c, "validation");
}

#[test]
fn softmax_working_memory_counts_k_logits_per_row() {
    let spec = ModelSpec::with_head(2, &[], Activation::Relu, Head::Softmax, 3).unwrap();
    let layout = spec.layout();
    // Rows 2·10·3 + logits 10·3 + weights 11·9 + one block's scratch 2·64·3 + 512 + 3·64
    // and gradient 9, in f32.
    assert_eq!(
        working_bytes(10, 0, 2, &layout, 9, 0),
        Some(4 * (60 + 30 + 99 + 384 + 512 + 192 + 9))
    );
    assert_eq!(working_bytes(usize::MAX / 3, 0, 2, &layout, 9, 0), None);
}

/// A softmax session refuses labels that are not class indices below K.
#[test]
fn softmax_sessions_refuse_labels_outside_the_classes() {
    let d = data_k(Demo::Blobs, 30, None, 4, 0);
    let spec = ModelSpec::with_head(2, &[], Activation::Relu, Head::Softmax, 3).unwrap();
    let cfg = SessionConfig {
        params: spec.init_params(0),
        lr: 0.1,
        ..Default::default()
    };
    let e = CpuSession::new(&d, None, &spec, &cfg).err().unwrap();
    let r = d.y.iter().position(|&y| y == 3.0).unwrap();
    assert!(
        e.to_string()
            .contains(&format!("training row {r}: the label 3 ")),
        "{e}"
    );
    let ok = data_k(Demo::Blobs, 30, None, 3, 0);
    for bad in [-1.0, 0.5, f32::NAN] {
        let mut v = ok.clone();
        v.y[7] = bad;
        let e = CpuSession::new(&ok, Some(&v), &spec, &cfg).err().unwrap();
        assert!(e.to_string().contains("validation row 7"), "{e}");
    }
    assert!(CpuSession::new(&ok, Some(&ok), &spec, &cfg).is_ok());
}

/// Bit-identical softmax runs with 1 and 3 threads, logistic and MLP.
#[test]
fn softmax_results_do_not_depend_on_the_thread_count() {
    let d = data_k(Demo::Hyperplane, 5 * BLOCK_ROWS + 123, Some(12), 10, 4);
    for hidden in [&[][..], &[20][..]] {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (_, mut s) = softmax_session(&d, None, hidden, Activation::Relu, 10, 4);
                let mut seen = Vec::new();
                for _ in 0..5 {
                    let e = s.evaluate().unwrap().train;
                    seen.push((e.loss_sum.to_bits(), e.confusion));
                    s.update().unwrap();
                }
                let bits: Vec<u32> = s.params.iter().map(|p| p.to_bits()).collect();
                (seen, bits)
            })
        };
        assert_eq!(run(1), run(3), "{hidden:?}");
    }
}

/// The AVX2 build of the softmax path gives the baseline's bits.
#[test]
fn softmax_instruction_sets_give_the_same_bits() {
    if Simd::detect() == Simd::Baseline {
        eprintln!("this CPU has no AVX2: only the baseline fast path exists here");
        return;
    }
    let wide = data_k(Demo::Hyperplane, 2 * BLOCK_ROWS + 77, Some(21), 10, 5);
    let spirals = data_k(Demo::Spirals, BLOCK_ROWS + 77, None, 3, 5);
    let many = data_k(Demo::Blobs, 700, None, 20, 5);
    for (d, hidden, act, k) in [
        (&wide, &[][..], Activation::Relu, 10),
        (&wide, &[24][..], Activation::Sigmoid, 10),
        (&spirals, &[24, 5][..], Activation::Tanh, 3),
        (&many, &[17][..], Activation::Relu, 20),
    ] {
        let run = |simd: Simd| {
            let (_, s) = softmax_session(d, None, hidden, act, k, 6);
            let mut s = s.with_simd(simd);
            assert_eq!(s.simd, simd);
            let mut seen = Vec::new();
            for _ in 0..4 {
                let e = s.evaluate().unwrap().train;
                let z: Vec<u32> = s.logits().unwrap().iter().map(|z| z.to_bits()).collect();
                seen.push((e.loss_sum.to_bits(), e.confusion, z));
                s.update().unwrap();
            }
            (
                seen,
                s.params.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(run(Simd::Baseline), run(Simd::Avx2), "K = {k} {hidden:?}");
    }
}

/// Forward-only softmax logits ([rows, K]): bit-identical to the session's, the reference's
/// to within rounding.
#[test]
fn softmax_forward_logits_match_the_session_and_the_reference() {
    for (i, &(kind, rows, features, hidden, act, k, present)) in SOFTMAX_CASES.iter().enumerate() {
        let what = format!("case {i} (K = {k})");
        let d = data_k(kind, rows, features, present, 10 + i as u64);
        let (spec, mut s) = softmax_session(&d, None, hidden, act, k, i as u64);
        for _ in 0..2 {
            s.evaluate().unwrap();
            s.update().unwrap();
        }
        s.evaluate().unwrap();
        let got = forward_logits(&spec, &s.params, &d).unwrap();
        assert_eq!(got.len(), rows * k, "{what}");
        let bits = |v: &[f32]| v.iter().map(|z| z.to_bits()).collect::<Vec<_>>();
        let session = s.logits().unwrap();
        assert_eq!(bits(&got), bits(&session), "{what}: vs the session");
        let want = reference::logits(&d.x, d.rows, &s.params, &spec.layout(), act);
        close(&got, &want, &format!("{what} logits"));
    }
}

/// The softmax kernel on chosen logits: large ones, ties, −∞, a NaN, against the reference.
#[test]
fn softmax_kernel_matches_the_reference_on_awkward_logits() {
    let k = 3;
    let z = [
        1000.0,
        0.0,
        -1000.0, // stable for large logits
        2.0,
        2.0,
        1.0, // a tie goes to the lowest class
        0.0,
        0.0,
        0.0, // all tied
        -3.0,
        f32::NEG_INFINITY,
        5.0, // −∞ has probability 0
        0.5,
        -0.25,
        88.0, // past e^−87
    ];
    let y = [0.0, 1.0, 2.0, 2.0, 0.0];
    let inv_n = 1.0 / y.len() as f32;
    let mut d = [0.0; 15];
    let (mut loss, mut confusion, mut t) = (0.0, vec![0u64; k * k], vec![0.0; k * TILE_ROWS]);
    softmax_loss_and_delta(&z, &y, &mut d, &mut t, k, inv_n, &mut loss, &mut confusion);
    let c = reference::loss_and_counts(&z, &y, k);
    assert_eq!(confusion, c.confusion);
    assert!(
        (loss - c.loss_sum).abs() <= 1e-6 * c.loss_sum,
        "{loss} {}",
        c.loss_sum
    );
    let want = reference::output_delta(&z, &y, k);
    for (i, (a, b)) in d.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-7 * inv_n, "d[{i}]: {a} vs {b}");
    }
    // A NaN logit gives a NaN loss and NaN deltas in its row, as in the reference.
    let z = [0.0, f32::NAN, 1.0];
    let (mut loss, mut confusion, mut d) = (0.0, vec![0u64; 9], [0.0; 3]);
    softmax_loss_and_delta(
        &z,
        &[0.0],
        &mut d,
        &mut t,
        k,
        1.0,
        &mut loss,
        &mut confusion,
    );
    let c = reference::loss_and_counts(&z, &[0.0], k);
    assert!(loss.is_nan() && c.loss_sum.is_nan());
    assert_eq!(confusion, c.confusion);
    assert!(d.iter().all(|v| v.is_nan()));
}
