//! Model specification, parameter layout and initialisation.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Activation of the hidden layers (the output is always a sigmoid on one logit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }

    /// The code the WGSL kernels use (0 is the identity of the output layer).
    pub fn code(self) -> u32 {
        match self {
            Activation::Relu => 1,
            Activation::Tanh => 2,
            Activation::Sigmoid => 3,
        }
    }
}

/// Layer sizes [inputs, hidden..., 1] and the hidden activation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    pub layers: Vec<usize>,
    pub activation: Activation,
}

/// Where one dense layer's parameters live in the flat parameter vector.
/// W is [outputs, inputs] row-major at `w_off`; b is [outputs] at `b_off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    pub inputs: usize,
    pub outputs: usize,
    pub w_off: usize,
    pub b_off: usize,
}

impl ModelSpec {
    pub fn new(inputs: usize, hidden: &[usize], activation: Activation) -> Result<Self> {
        if inputs == 0 {
            return Err(Error::Config("the data has no features".into()));
        }
        if hidden.contains(&0) {
            let list: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
            return Err(Error::Config(format!(
                "--hidden {}: every hidden layer needs at least one unit",
                list.join(",")
            )));
        }
        let mut layers = vec![inputs];
        layers.extend_from_slice(hidden);
        layers.push(1);
        Ok(ModelSpec { layers, activation })
    }

    pub fn is_logistic(&self) -> bool {
        self.layers.len() == 2
    }

    pub fn layout(&self) -> Vec<LayerLayout> {
        let mut off = 0;
        self.layers
            .windows(2)
            .map(|w| {
                let l = LayerLayout {
                    inputs: w[0],
                    outputs: w[1],
                    w_off: off,
                    b_off: off + w[0] * w[1],
                };
                off += w[0] * w[1] + w[1];
                l
            })
            .collect()
    }

    pub fn parameter_count(&self) -> usize {
        self.layers.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Logistic regression: all zeros. MLP: weights uniform in ±sqrt(6 / fan_in) (He) before
    /// ReLU, ±sqrt(6 / (fan_in + fan_out)) (Xavier) otherwise and for the output layer;
    /// biases zero. Deterministic for the seed.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut p = vec![0.0f32; self.parameter_count()];
        if self.is_logistic() {
            return p;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layout = self.layout();
        let last = layout.len() - 1;
        for (i, l) in layout.iter().enumerate() {
            let bound = if i < last && self.activation == Activation::Relu {
                (6.0 / l.inputs as f64).sqrt()
            } else {
                (6.0 / (l.inputs + l.outputs) as f64).sqrt()
            };
            for w in &mut p[l.w_off..l.b_off] {
                let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                *w = ((2.0 * u - 1.0) * bound) as f32;
            }
        }
        p
    }
}

/// SHA-256 of the parameters' f32 little-endian bytes, in hex.
pub fn checksum(params: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in params {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_contiguous() {
        let s = ModelSpec::new(3, &[4, 2], Activation::Tanh).unwrap();
        let l = s.layout();
        assert_eq!(
            l[0],
            LayerLayout {
                inputs: 3,
                outputs: 4,
                w_off: 0,
                b_off: 12
            }
        );
        assert_eq!(
            l[1],
            LayerLayout {
                inputs: 4,
                outputs: 2,
                w_off: 16,
                b_off: 24
            }
        );
        assert_eq!(
            l[2],
            LayerLayout {
                inputs: 2,
                outputs: 1,
                w_off: 26,
                b_off: 28
            }
        );
        assert_eq!(s.parameter_count(), 29);
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let s = ModelSpec::new(10, &[5], Activation::Relu).unwrap();
        let a = s.init_params(1);
        assert_eq!(a, s.init_params(1));
        assert_ne!(a, s.init_params(2));
        let bound = (6.0f32 / 10.0).sqrt();
        assert!(a[..50].iter().all(|w| w.abs() <= bound));
        assert!(a[50..55].iter().all(|&b| b == 0.0)); // biases
        let lr = ModelSpec::new(10, &[], Activation::Relu).unwrap();
        assert!(lr.init_params(3).iter().all(|&w| w == 0.0));
    }

    #[test]
    fn checksum_is_sha256_of_le_bytes() {
        // SHA-256 of the empty input.
        assert_eq!(
            checksum(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(checksum(&[0.0]), checksum(&[-0.0]));
    }
}
