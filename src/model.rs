//! Model specification, parameter layout and initialisation.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::memory;

/// The most classes a label column may have.
pub const MAX_CLASSES: usize = 256;

/// The output layer and its loss: one logit with a sigmoid (two classes, binary
/// cross-entropy) or K logits with a softmax (cross-entropy, argmax prediction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    Sigmoid,
    Softmax,
}

impl Head {
    pub fn name(self) -> &'static str {
        match self {
            Head::Sigmoid => "sigmoid",
            Head::Softmax => "softmax",
        }
    }

    /// The head for K classes: a sigmoid for two unless softmax is asked for.
    pub fn for_classes(k: usize, asked: Option<Head>) -> Head {
        match asked {
            Some(h) if k == 2 => h,
            _ if k == 2 => Head::Sigmoid,
            _ => Head::Softmax,
        }
    }

    /// Output-layer width for K classes.
    pub fn outputs(self, k: usize) -> usize {
        match self {
            Head::Sigmoid => 1,
            Head::Softmax => k,
        }
    }
}

/// Activation of the hidden layers.
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

/// Layer sizes [inputs, hidden..., outputs], the hidden activation and the head (outputs: 1
/// for a sigmoid, K for softmax).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    pub layers: Vec<usize>,
    pub activation: Activation,
    pub head: Head,
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

/// Σ over dense layers of (inputs + 1) · outputs, `None` past u64.
pub fn parameter_count_of(layers: &[usize]) -> Option<u64> {
    memory::sum(
        layers
            .windows(2)
            .map(|w| memory::mul(w[0], w[1])?.checked_add(w[1] as u64)),
    )
}

/// Layer sizes as `[3, 16, 1]`; a long list (a hostile file's) shortened to its ends and its
/// length.
pub fn layers_text(layers: &[usize]) -> String {
    if layers.len() <= 12 {
        return format!("{layers:?}");
    }
    let head: Vec<String> = layers[..8].iter().map(|n| n.to_string()).collect();
    let tail: Vec<String> = layers[layers.len() - 2..]
        .iter()
        .map(|n| n.to_string())
        .collect();
    format!(
        "[{}, …, {}] ({} layers)",
        head.join(", "),
        tail.join(", "),
        layers.len()
    )
}

/// The parameter count of `layers`, if its f32 values fit this machine's memory; else an
/// error stating the count and the bytes.
pub fn check_parameters(layers: &[usize]) -> Result<usize> {
    let count = parameter_count_of(layers);
    memory::check(count.and_then(memory::f32_bytes), |size| {
        format!(
            "the model {} has {} parameters ({size} as f32)",
            layers_text(layers),
            memory::count_text(count)
        )
    })?;
    // Within memory, so within usize.
    count.and_then(|c| usize::try_from(c).ok()).ok_or_else(|| {
        Error::TooLarge(format!(
            "the model {} has too many parameters",
            layers_text(layers)
        ))
    })
}

impl ModelSpec {
    /// Layers [inputs, hidden..., 1] with a sigmoid head.
    pub fn new(inputs: usize, hidden: &[usize], activation: Activation) -> Result<Self> {
        Self::with_head(inputs, hidden, activation, Head::Sigmoid, 2)
    }

    /// Layers [inputs, hidden..., head.outputs(classes)]; an error unless every layer has a
    /// unit and the parameters fit in memory (so `layout` and `parameter_count` cannot
    /// overflow).
    pub fn with_head(
        inputs: usize,
        hidden: &[usize],
        activation: Activation,
        head: Head,
        classes: usize,
    ) -> Result<Self> {
        if !(2..=MAX_CLASSES).contains(&classes) || (head == Head::Sigmoid && classes != 2) {
            return Err(Error::Config(format!(
                "a {} head cannot classify {classes} classes",
                head.name()
            )));
        }
        let list = || {
            let v: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
            v.join(",")
        };
        if inputs == 0 {
            return Err(Error::Config("the data has no features".into()));
        }
        if hidden.contains(&0) {
            return Err(Error::Config(format!(
                "--hidden {}: every hidden layer needs at least one unit",
                list()
            )));
        }
        let mut layers = vec![inputs];
        layers.extend_from_slice(hidden);
        layers.push(head.outputs(classes));
        check_parameters(&layers).map_err(|e| match e {
            Error::TooLarge(m) if !hidden.is_empty() => {
                Error::TooLarge(format!("--hidden {}: {m}", list()))
            }
            other => other,
        })?;
        Ok(ModelSpec {
            layers,
            activation,
            head,
        })
    }

    /// The number of classes K.
    pub fn classes(&self) -> usize {
        match self.head {
            Head::Sigmoid => 2,
            Head::Softmax => self.outputs(),
        }
    }

    /// The output layer's width.
    pub fn outputs(&self) -> usize {
        self.layers.last().copied().unwrap_or(1)
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

    /// Σ (inputs + 1) · outputs; cannot overflow for a spec from [`ModelSpec::new`].
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
    fn sizes_are_checked_before_anything_is_allocated() {
        assert_eq!(parameter_count_of(&[3, 4, 2, 1]), Some(29));
        assert_eq!(parameter_count_of(&[3, usize::MAX, 1]), None);
        let e = ModelSpec::new(2, &[4_000_000_000, 4_000_000_000], Activation::Relu)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "--hidden 4000000000,4000000000: the model [2, 4000000000, 4000000000, 1] has \
                 16,000,000,020,000,000,001 parameters (over 16 EiB as f32), more than "
            ),
            "{e}"
        );
        // 5·10¹² parameters: 18.2 TiB.
        let e = ModelSpec::new(3, &[1_000_000_000_000], Activation::Tanh)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("5,000,000,000,001 parameters (18.2 TiB as f32)"),
            "{e}"
        );
        let long: Vec<usize> = (1..=20).rev().collect();
        assert_eq!(
            layers_text(&long),
            "[20, 19, 18, 17, 16, 15, 14, 13, …, 2, 1] (20 layers)"
        );
        let e = check_parameters(&[3, usize::MAX, 1])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("over 18,446,744,073,709,551,615 parameters"),
            "{e}"
        );
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
