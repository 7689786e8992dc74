//! Preparing loaded data for training: z-score standardization and the stratified, seeded
//! validation split.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use super::Dataset;
use crate::error::{Error, Result};

/// Z-score statistics of the training rows: mean and population standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    /// Population standard deviation; 0 marks a constant column, which maps to all zeros.
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Each column's sums run over the rows in order, so the statistics do not depend on how
    /// the columns are shared out: blocks of 16 columns (a cache line of each row) in parallel.
    pub fn fit(data: &Dataset) -> Self {
        let (n, f) = (data.rows, data.features);
        let blocks: Vec<(usize, usize)> =
            (0..f).step_by(16).map(|a| (a, (a + 16).min(f))).collect();
        let parts: Vec<(Vec<f64>, Vec<f64>)> = blocks
            .par_iter()
            .map(|&(a, b)| {
                let mut mean = vec![0.0f64; b - a];
                for r in 0..n {
                    for (m, &v) in mean.iter_mut().zip(&data.row(r)[a..b]) {
                        *m += v as f64;
                    }
                }
                mean.iter_mut().for_each(|m| *m /= n as f64);
                let mut var = vec![0.0f64; b - a];
                let mut constant = vec![true; b - a];
                for r in 0..n {
                    for (k, &v) in data.row(r)[a..b].iter().enumerate() {
                        let d = v as f64 - mean[k];
                        var[k] += d * d;
                        if v != data.x[a + k] {
                            constant[k] = false;
                        }
                    }
                }
                let std = var
                    .iter()
                    .zip(&constant)
                    .map(|(&v, &c)| if c { 0.0 } else { (v / n as f64).sqrt() })
                    .collect();
                (mean, std)
            })
            .collect();
        let (mut mean, mut std) = (Vec::with_capacity(f), Vec::with_capacity(f));
        for (m, s) in parts {
            mean.extend(m);
            std.extend(s);
        }
        Standardizer { mean, std }
    }

    /// x ← (x − mean) / std, computed in f64; constant columns become 0. Blocks of rows in
    /// parallel (each value on its own, so the result does not depend on the split).
    pub fn apply(&self, data: &mut Dataset) {
        let f = data.features;
        if f == 0 {
            return;
        }
        data.x.par_chunks_mut(f * 4096).for_each(|block| {
            for row in block.chunks_mut(f) {
                for ((v, &mean), &std) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                    *v = if std == 0.0 {
                        0.0
                    } else {
                        ((*v as f64 - mean) / std) as f32
                    };
                }
            }
        });
    }
}

/// Holds out a stratified, seeded fraction of the rows for validation: round(fraction · n_c)
/// rows of each class c, picked by a seeded shuffle. Both parts keep the original row order.
/// Returns (training, validation).
pub fn split_stratified(data: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Config(format!(
            "--val-split {fraction}: must be a fraction between 0 and 1 (exclusive)"
        )));
    }
    // A stream of its own, so the split does not shift with other uses of the seed.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5B11_7000_0001);
    let mut held = vec![false; data.rows];
    for class in 0..data.label.k() {
        let class = class as f32;
        let mut idx: Vec<usize> = (0..data.rows).filter(|&r| data.y[r] == class).collect();
        let take = (fraction * idx.len() as f64).round() as usize;
        for k in 0..take {
            let pick = k + (rng.next_u64() % (idx.len() - k) as u64) as usize;
            idx.swap(k, pick);
            held[idx[k]] = true;
        }
    }
    let (val_idx, train_idx): (Vec<usize>, Vec<usize>) = (0..data.rows).partition(|&r| held[r]);
    if val_idx.is_empty() || train_idx.is_empty() {
        return Err(Error::Config(format!(
            "--val-split {fraction}: {} rows split into {} for training and {} for validation; both need at least one",
            data.rows,
            train_idx.len(),
            val_idx.len()
        )));
    }
    Ok((
        data.subset(&train_idx, data.source.clone()),
        data.subset(
            &val_idx,
            format!("{} (held out: --val-split {fraction})", data.source),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::csv::tests::parse;
    use crate::data::{CsvOptions, Demo, DemoOptions, demo};

    #[test]
    fn standardize_population_std_and_constant_column() {
        let mut d = parse("a,c,y\n1,5,0\n3,5,1\n", &CsvOptions::default()).unwrap();
        let s = Standardizer::fit(&d);
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.std, vec![1.0, 0.0]);
        s.apply(&mut d);
        assert_eq!(d.x, vec![-1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn the_statistics_are_those_of_one_pass_in_row_order() {
        let d = demo(
            Demo::Hyperplane,
            &DemoOptions {
                rows: Some(500),
                features: Some(37),
                ..Default::default()
            },
        )
        .unwrap();
        let (n, f) = (d.rows, d.features);
        let mut mean = vec![0.0f64; f];
        let mut var = vec![0.0f64; f];
        for r in 0..n {
            for (m, &v) in mean.iter_mut().zip(d.row(r)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        for r in 0..n {
            for (j, &v) in d.row(r).iter().enumerate() {
                var[j] += (v as f64 - mean[j]) * (v as f64 - mean[j]);
            }
        }
        let std: Vec<f64> = var.iter().map(|v| (v / n as f64).sqrt()).collect();
        let s = Standardizer::fit(&d);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&s.mean), bits(&mean));
        assert_eq!(bits(&s.std), bits(&std));
    }

    #[test]
    fn stratified_split_keeps_class_shares_and_order() {
        let d = demo(
            Demo::Hyperplane,
            &DemoOptions {
                rows: Some(200),
                ..Default::default()
            },
        )
        .unwrap();
        let (tr, va) = split_stratified(&d, 0.25, 3).unwrap();
        assert_eq!(tr.rows + va.rows, 200);
        let pos = d.positives();
        assert_eq!(va.positives(), (0.25 * pos as f64).round() as usize);
        assert_eq!(
            va.rows - va.positives(),
            (0.25 * (200 - pos) as f64).round() as usize
        );
        let (tr2, _) = split_stratified(&d, 0.25, 3).unwrap();
        assert_eq!(tr.x, tr2.x);
        assert!(split_stratified(&d, 1.0, 3).is_err());
        assert!(split_stratified(&d, 0.0001, 3).is_err());
    }
}
