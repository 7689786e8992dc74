//! The built-in demo sets (xnor, blobs, moons, hyperplane, spirals): deterministic for a seed, with
//! exact label noise, and checked against the machine's memory before anything is allocated.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::{Dataset, LabelMapping};
use crate::error::{Error, Result};
use crate::memory;
use crate::model::MAX_CLASSES;

/// The built-in data sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Demo {
    /// The four points (±1, ±1) labelled 1 where the signs agree: not linearly separable.
    Xnor,
    /// Gaussian blobs (σ = 1), one per class: for two at (2, 2) and (−2, −2), for K ≥ 3
    /// centred on a circle of radius 4; 2 features.
    Blobs,
    /// Two interleaving half circles with jitter σ = 0.1; 2 features.
    Moons,
    /// Points uniform in [−1, 1]^F labelled by the side of a random hyperplane through 0; for
    /// K ≥ 3 classes by the largest of K random linear scores (a linear softmax teacher).
    Hyperplane,
    /// K interleaved spiral arms (default 3), each turning 1.3 times around the origin with
    /// jitter: not linearly separable; 2 features.
    Spirals,
}

impl Demo {
    pub fn name(self) -> &'static str {
        match self {
            Demo::Xnor => "xnor",
            Demo::Blobs => "blobs",
            Demo::Moons => "moons",
            Demo::Hyperplane => "hyperplane",
            Demo::Spirals => "spirals",
        }
    }
}

/// Sizes and randomness of a demo set.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Rows (default 1000; xnor has 4).
    pub rows: Option<usize>,
    /// Features (hyperplane only; default 8).
    pub features: Option<usize>,
    /// Classes (blobs and spirals only; default 2 for blobs, 3 for spirals).
    pub classes: Option<usize>,
    /// Fraction of labels flipped, in [0, 1]; exactly round(noise · rows) rows are flipped
    /// (to another class, each equally likely, for K ≥ 3).
    pub noise: f64,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rows: None,
            features: None,
            classes: None,
            noise: 0.0,
            seed: 0,
        }
    }
}

/// Uniform in [0, 1) with 53 random bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - uniform(rng); // (0, 1]
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Fails unless a demo set of `rows` rows fits in memory (X and y in f32, and the row indices
/// the label noise shuffles); `features` as given by `--features` (`None`: 2), named in the
/// error with `--rows`.
pub fn check_demo_size(rows: usize, features: Option<usize>) -> Result<()> {
    let f = features.unwrap_or(2);
    let bytes = memory::sum([
        memory::mul(rows, f).and_then(memory::f32_bytes),
        memory::mul(rows, 4),
        memory::mul(rows, std::mem::size_of::<usize>()),
    ]);
    memory::check(bytes, |size| {
        let flags = match features {
            Some(f) => format!("--rows {rows} --features {f}"),
            None => format!("--rows {rows}"),
        };
        format!(
            "{flags}: the data has {} rows × {f} features, {size} with the labels",
            memory::fmt_count(rows as u64)
        )
    })
}

/// Builds a demo set, deterministic for the seed.
pub fn demo(kind: Demo, opts: &DemoOptions) -> Result<Dataset> {
    if !(0.0..=1.0).contains(&opts.noise) || opts.noise.is_nan() {
        return Err(Error::Config(format!(
            "--noise {}: must be a fraction between 0 and 1",
            opts.noise
        )));
    }
    if opts.features.is_some() && kind != Demo::Hyperplane {
        return Err(Error::Config(format!(
            "--features applies to --demo hyperplane only ({} has 2 features)",
            kind.name()
        )));
    }
    if opts.classes.is_some() && !matches!(kind, Demo::Blobs | Demo::Spirals | Demo::Hyperplane) {
        return Err(Error::Config(format!(
            "--classes applies to --demo blobs, spirals and hyperplane only ({} has two classes)",
            kind.name()
        )));
    }
    let k = opts
        .classes
        .unwrap_or(if kind == Demo::Spirals { 3 } else { 2 });
    if !(2..=MAX_CLASSES).contains(&k) {
        return Err(Error::Config(format!(
            "--classes {k}: must be 2 to {MAX_CLASSES}"
        )));
    }
    if kind == Demo::Xnor && (opts.rows.is_some() || opts.noise > 0.0) {
        return Err(Error::Config(
            "--rows and --noise do not apply to --demo xnor (always its four points)".into(),
        ));
    }
    let rows = opts.rows.unwrap_or(1000);
    let features = opts.features.unwrap_or(8);
    if rows == 0 {
        return Err(Error::Config("--rows must be at least 1".into()));
    }
    if features == 0 {
        return Err(Error::Config("--features must be at least 1".into()));
    }
    match kind {
        Demo::Xnor => {}
        Demo::Hyperplane => check_demo_size(rows, Some(features))?,
        Demo::Blobs | Demo::Moons | Demo::Spirals => check_demo_size(rows, None)?,
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (x, mut y, f): (Vec<f32>, Vec<f32>, usize) = match kind {
        Demo::Xnor => (
            vec![1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0],
            vec![1.0, 0.0, 0.0, 1.0],
            2,
        ),
        Demo::Blobs if k > 2 => {
            let mut x = Vec::with_capacity(rows * 2);
            let mut y = Vec::with_capacity(rows);
            for r in 0..rows {
                let c = r % k;
                let a = 2.0 * std::f64::consts::PI * c as f64 / k as f64;
                x.push((4.0 * a.cos() + normal(&mut rng)) as f32);
                x.push((4.0 * a.sin() + normal(&mut rng)) as f32);
                y.push(c as f32);
            }
            (x, y, 2)
        }
        Demo::Spirals => {
            let mut x = Vec::with_capacity(rows * 2);
            let mut y = Vec::with_capacity(rows);
            for r in 0..rows {
                let c = r % k;
                let t = uniform(&mut rng);
                let a = 2.0 * std::f64::consts::PI * (c as f64 / k as f64 + 1.3 * t)
                    + 0.15 * normal(&mut rng);
                x.push((t * a.cos()) as f32);
                x.push((t * a.sin()) as f32);
                y.push(c as f32);
            }
            (x, y, 2)
        }
        Demo::Blobs => {
            let mut x = Vec::with_capacity(rows * 2);
            let mut y = Vec::with_capacity(rows);
            for r in 0..rows {
                let label = (r % 2) as f32;
                let c = if label == 1.0 { 2.0 } else { -2.0 };
                x.push((c + normal(&mut rng)) as f32);
                x.push((c + normal(&mut rng)) as f32);
                y.push(label);
            }
            (x, y, 2)
        }
        Demo::Moons => {
            let mut x = Vec::with_capacity(rows * 2);
            let mut y = Vec::with_capacity(rows);
            for r in 0..rows {
                let label = (r % 2) as f32;
                let t = std::f64::consts::PI * uniform(&mut rng);
                let (px, py) = if label == 0.0 {
                    (t.cos(), t.sin())
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin())
                };
                x.push((px + 0.1 * normal(&mut rng)) as f32);
                x.push((py + 0.1 * normal(&mut rng)) as f32);
                y.push(label);
            }
            (x, y, 2)
        }
        Demo::Hyperplane if k > 2 => {
            // w: [K, F]
            let w: Vec<f64> = (0..k * features).map(|_| normal(&mut rng)).collect();
            let mut x = Vec::with_capacity(rows * features);
            let mut y = Vec::with_capacity(rows);
            for _ in 0..rows {
                let row: Vec<f32> = (0..features)
                    .map(|_| (2.0 * uniform(&mut rng) - 1.0) as f32)
                    .collect();
                let mut best = (0, f64::NEG_INFINITY);
                for c in 0..k {
                    let score: f64 = w[c * features..(c + 1) * features]
                        .iter()
                        .zip(&row)
                        .map(|(wj, &v)| wj * v as f64)
                        .sum();
                    if score > best.1 {
                        best = (c, score);
                    }
                }
                x.extend_from_slice(&row);
                y.push(best.0 as f32);
            }
            (x, y, features)
        }
        Demo::Hyperplane => {
            let w: Vec<f64> = (0..features).map(|_| normal(&mut rng)).collect();
            let mut x = Vec::with_capacity(rows * features);
            let mut y = Vec::with_capacity(rows);
            for _ in 0..rows {
                let mut dot = 0.0;
                for wj in &w {
                    let v = (2.0 * uniform(&mut rng) - 1.0) as f32;
                    dot += wj * v as f64;
                    x.push(v);
                }
                y.push(if dot > 0.0 { 1.0 } else { 0.0 });
            }
            (x, y, features)
        }
    };
    let n = y.len();
    // Flip exactly round(noise · n) distinct rows, chosen by a partial Fisher–Yates shuffle.
    let flips = (opts.noise * n as f64).round() as usize;
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..flips {
        let pick = i + (rng.next_u64() % (n - i) as u64) as usize;
        idx.swap(i, pick);
        let r = idx[i];
        y[r] = if k == 2 {
            1.0 - y[r]
        } else {
            let other = 1 + (rng.next_u64() % (k as u64 - 1)) as usize;
            ((y[r] as usize + other) % k) as f32
        };
    }
    Ok(Dataset {
        rows: n,
        features: f,
        feature_names: (1..=f).map(|j| format!("x{j}")).collect(),
        x,
        y,
        label: LabelMapping {
            column: "label".into(),
            classes: (0..k).map(|c| c.to_string()).collect(),
        },
        source: format!("demo:{}", kind.name()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demos_are_deterministic_and_sized() {
        let o = DemoOptions {
            rows: Some(101),
            noise: 0.1,
            seed: 7,
            ..Default::default()
        };
        for kind in [Demo::Blobs, Demo::Moons, Demo::Hyperplane] {
            let a = demo(kind, &o).unwrap();
            let b = demo(kind, &o).unwrap();
            assert_eq!(a.x, b.x);
            assert_eq!(a.y, b.y);
            assert_eq!(a.rows, 101);
        }
        let clean = demo(
            Demo::Hyperplane,
            &DemoOptions {
                noise: 0.0,
                ..o.clone()
            },
        )
        .unwrap();
        let noisy = demo(Demo::Hyperplane, &o).unwrap();
        let flipped = clean.y.iter().zip(&noisy.y).filter(|(a, b)| a != b).count();
        assert_eq!(flipped, 10); // round(0.1 * 101)
        assert_eq!(demo(Demo::Xnor, &DemoOptions::default()).unwrap().rows, 4);
    }

    #[test]
    fn k_class_demos_have_k_balanced_classes_and_noise_changes_the_class() {
        for (kind, k, default_k) in [(Demo::Blobs, 5, 2), (Demo::Spirals, 4, 3)] {
            let o = DemoOptions {
                rows: Some(103),
                classes: Some(k),
                seed: 3,
                ..Default::default()
            };
            let d = demo(kind, &o).unwrap();
            assert_eq!(
                d.label.classes,
                (0..k).map(|c| c.to_string()).collect::<Vec<_>>()
            );
            let counts = d.class_counts();
            assert_eq!(counts.iter().sum::<usize>(), 103);
            assert!(
                counts.iter().all(|&n| n == 103 / k || n == 103 / k + 1),
                "{counts:?}"
            );
            let noisy = demo(
                kind,
                &DemoOptions {
                    noise: 0.2,
                    ..o.clone()
                },
            )
            .unwrap();
            assert_eq!(noisy.x, d.x);
            let changed = d.y.iter().zip(&noisy.y).filter(|(a, b)| a != b).count();
            assert_eq!(changed, 21); // round(0.2 * 103), each to another class
            assert!(noisy.y.iter().all(|&c| c >= 0.0 && (c as usize) < k));
            let dflt = demo(
                kind,
                &DemoOptions {
                    classes: None,
                    ..o.clone()
                },
            )
            .unwrap();
            assert_eq!(dflt.label.k(), default_k);
        }
        let e = |kind, classes| {
            let o = DemoOptions {
                classes: Some(classes),
                ..Default::default()
            };
            demo(kind, &o).unwrap_err().to_string()
        };
        assert!(e(Demo::Moons, 3).contains("--classes applies to --demo blobs, spirals"));
        let h = demo(
            Demo::Hyperplane,
            &DemoOptions {
                rows: Some(2000),
                features: Some(6),
                classes: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(h.label.k(), 5);
        assert!(
            h.class_counts().iter().all(|&n| n > 100),
            "{:?}",
            h.class_counts()
        );
        assert!(e(Demo::Blobs, 1).contains("--classes 1: must be 2 to 256"));
        assert!(e(Demo::Spirals, 257).contains("--classes 257: must be 2 to 256"));
    }

    #[test]
    fn demos_beyond_memory_are_refused_before_allocating() {
        let big = |kind, rows, features| {
            let o = DemoOptions {
                rows: Some(rows),
                features,
                ..Default::default()
            };
            demo(kind, &o).unwrap_err().to_string()
        };
        let e = big(Demo::Hyperplane, 1 << 40, Some(64));
        assert!(
            e.starts_with(
                "--rows 1099511627776 --features 64: the data has 1,099,511,627,776 rows × 64 \
                 features, 268.0 TiB with the labels, more than "
            ),
            "{e}"
        );
        let e = big(Demo::Moons, usize::MAX, None);
        assert!(
            e.contains("rows × 2 features, over 16 EiB with the labels"),
            "{e}"
        );
        let e = big(Demo::Hyperplane, 10, Some(usize::MAX));
        assert!(e.contains("over 16 EiB"), "{e}");
    }
}
