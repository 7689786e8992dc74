//! The built-in demo sets (xnor, blobs, moons, hyperplane): deterministic for a seed, with
//! exact label noise, and checked against the machine's memory before anything is allocated.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::{Dataset, LabelMapping};
use crate::error::{Error, Result};
use crate::memory;

/// The built-in data sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Demo {
    /// The four points (±1, ±1) labelled 1 where the signs agree: not linearly separable.
    Xnor,
    /// Two Gaussian blobs (σ = 1) centred at (2, 2) and (−2, −2); 2 features.
    Blobs,
    /// Two interleaving half circles with jitter σ = 0.1; 2 features.
    Moons,
    /// Points uniform in [−1, 1]^F labelled by the side of a random hyperplane through 0.
    Hyperplane,
}

impl Demo {
    pub fn name(self) -> &'static str {
        match self {
            Demo::Xnor => "xnor",
            Demo::Blobs => "blobs",
            Demo::Moons => "moons",
            Demo::Hyperplane => "hyperplane",
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
    /// Fraction of labels flipped, in [0, 1]; exactly round(noise · rows) rows are flipped.
    pub noise: f64,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rows: None,
            features: None,
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
        Demo::Blobs | Demo::Moons => check_demo_size(rows, None)?,
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (x, mut y, f): (Vec<f32>, Vec<f32>, usize) = match kind {
        Demo::Xnor => (
            vec![1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0],
            vec![1.0, 0.0, 0.0, 1.0],
            2,
        ),
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
    for k in 0..flips {
        let pick = k + (rng.next_u64() % (n - k) as u64) as usize;
        idx.swap(k, pick);
        y[idx[k]] = 1.0 - y[idx[k]];
    }
    Ok(Dataset {
        rows: n,
        features: f,
        feature_names: (1..=f).map(|j| format!("x{j}")).collect(),
        x,
        y,
        label: LabelMapping {
            column: "label".into(),
            positive: "1".into(),
            negative: "0".into(),
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
