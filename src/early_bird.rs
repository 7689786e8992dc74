//! The early-bird stop rule (You et al., "Drawing Early-Bird Tickets", ICLR 2020): stop dense
//! training once the magnitude mask at a sparsity has settled. Its settings and its state
//! between checks; the training loop asks it at checks where the engine went on.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::masks;
use crate::model::LayerLayout;

/// `--early-bird-eps`'s default.
pub const DEFAULT_EPS: f64 = 0.1;
/// `--early-bird-window`'s default.
pub const DEFAULT_WINDOW: u32 = 5;

/// The rule as the flags give it, before the model is known.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EarlyBirdSettings {
    /// The sparsity of the watched mask, 0 < S < 1.
    pub sparsity: f64,
    /// A check is stable when the mask moved by less than this fraction of the weights.
    pub eps: f64,
    /// Stable checks in a row that stop the run.
    pub window: u32,
}

impl EarlyBirdSettings {
    /// An error unless 0 < sparsity < 1, 0 < eps ≤ 1 and window ≥ 1.
    pub fn check(&self) -> Result<()> {
        let s = self.sparsity;
        if !(s > 0.0 && s < 1.0) {
            return Err(Error::Config(format!(
                "--early-bird {s}: the sparsity must lie strictly between 0 and 1"
            )));
        }
        let e = self.eps;
        if !(e > 0.0 && e <= 1.0) {
            return Err(Error::Config(format!(
                "--early-bird-eps {e}: must be above 0 and at most 1 (a fraction of the weights)"
            )));
        }
        if self.window == 0 {
            return Err(Error::Config(
                "--early-bird-window 0: must be at least 1 (checks in a row)".into(),
            ));
        }
        Ok(())
    }

    /// The rule over a model's parameters.
    pub fn on(self, layout: Vec<LayerLayout>) -> EarlyBird {
        EarlyBird {
            sparsity: self.sparsity,
            eps: self.eps,
            window: self.window,
            layout,
        }
    }
}

/// Stop once the magnitude mask at `sparsity` (over all weights, [`masks::magnitude_mask`])
/// moved by less than `eps` ([`masks::mask_distance`]) from one check to the next for
/// `window` checks in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyBird {
    pub sparsity: f64,
    pub eps: f64,
    pub window: u32,
    /// The model's layout ([`crate::model::ModelSpec::layout`]).
    pub layout: Vec<LayerLayout>,
}

impl EarlyBird {
    pub fn settings(&self) -> EarlyBirdSettings {
        EarlyBirdSettings {
            sparsity: self.sparsity,
            eps: self.eps,
            window: self.window,
        }
    }
}

/// What the report tells of the rule: its settings and the last distance seen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EarlyBirdReport {
    #[serde(flatten)]
    pub settings: EarlyBirdSettings,
    /// The mask distance at the last check (null before a second check).
    pub distance: Option<f64>,
    /// Stable checks in a row at the end.
    pub stable: u32,
}

/// The rule's state between checks.
#[derive(Clone, Debug)]
pub struct Watch {
    rule: EarlyBird,
    previous: Option<Vec<bool>>,
    distance: Option<f64>,
    stable: u32,
}

impl Watch {
    /// A checked rule, with no check seen yet.
    pub fn new(rule: EarlyBird) -> Result<Self> {
        rule.settings().check()?;
        Ok(Watch {
            rule,
            previous: None,
            distance: None,
            stable: 0,
        })
    }

    /// Observes a check's weights; true once the mask has been stable for `window` checks in
    /// a row. The first check has no previous mask and is not stable.
    pub fn observe(&mut self, params: &[f32]) -> Result<bool> {
        let r = &self.rule;
        let expected = r.layout.last().map_or(0, |l| l.b_off + l.outputs);
        if params.len() != expected {
            return Err(Error::Config(format!(
                "--early-bird: the layout describes {expected} parameters but the model has {}",
                params.len()
            )));
        }
        let mask = masks::magnitude_mask(&r.layout, params, r.sparsity);
        if let Some(prev) = &self.previous {
            let d = masks::mask_distance(&r.layout, prev, &mask);
            self.distance = Some(d);
            self.stable = if d < r.eps { self.stable + 1 } else { 0 };
        }
        self.previous = Some(mask);
        Ok(self.stable >= r.window)
    }

    pub fn report(&self) -> EarlyBirdReport {
        EarlyBirdReport {
            settings: self.rule.settings(),
            distance: self.distance,
            stable: self.stable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, ModelSpec};

    fn rule(eps: f64, window: u32) -> EarlyBird {
        // 1→4→1: 8 weights (0..4, 8..12), biases 4..8 and 12.
        let spec = ModelSpec::new(1, &[4], Activation::Relu).unwrap();
        EarlyBirdSettings {
            sparsity: 0.5,
            eps,
            window,
        }
        .on(spec.layout())
    }

    /// Params whose 4 smallest weights are at `small` (out of the 8 weight slots).
    fn params(small: [usize; 4]) -> Vec<f32> {
        let slots = [0, 1, 2, 3, 8, 9, 10, 11];
        let mut p = vec![0.0f32; 13];
        for (k, &i) in slots.iter().enumerate() {
            p[i] = if small.contains(&k) { 0.1 } else { 1.0 };
        }
        p
    }

    #[test]
    fn a_window_of_stable_checks_stops() {
        let mut w = Watch::new(rule(0.3, 3)).unwrap();
        let a = params([0, 1, 2, 3]);
        let b = params([0, 1, 2, 4]); // 2 of 8 flip: 0.25 < 0.3
        let c = params([4, 5, 6, 7]); // 6 of 8 flip from b
        // The first check is never stable.
        assert!(!w.observe(&a).unwrap());
        assert_eq!((w.report().distance, w.report().stable), (None, 0));
        assert!(!w.observe(&b).unwrap());
        assert_eq!((w.report().distance, w.report().stable), (Some(0.25), 1));
        assert!(!w.observe(&b).unwrap());
        // A large change starts the count again.
        assert!(!w.observe(&c).unwrap());
        assert_eq!((w.report().distance, w.report().stable), (Some(0.75), 0));
        assert!(!w.observe(&c).unwrap());
        assert!(!w.observe(&c).unwrap());
        assert!(w.observe(&c).unwrap());
        assert_eq!(w.report().stable, 3);
    }

    #[test]
    fn the_distance_must_be_below_eps() {
        let mut w = Watch::new(rule(0.25, 1)).unwrap();
        assert!(!w.observe(&params([0, 1, 2, 3])).unwrap());
        // Exactly eps is not below it.
        assert!(!w.observe(&params([0, 1, 2, 4])).unwrap());
        assert!(w.observe(&params([0, 1, 2, 4])).unwrap());
    }

    #[test]
    fn bad_settings_and_shapes_are_errors() {
        let msg = |r: EarlyBird| Watch::new(r).unwrap_err().to_string();
        for s in [0.0, 1.0, -0.5, f64::NAN] {
            let r = EarlyBird {
                sparsity: s,
                ..rule(0.1, 5)
            };
            assert!(msg(r).starts_with(&format!("--early-bird {s}:")));
        }
        for e in [0.0, 1.5, f64::NAN] {
            assert!(msg(rule(e, 5)).starts_with(&format!("--early-bird-eps {e}:")));
        }
        assert!(Watch::new(rule(1.0, 5)).is_ok());
        assert!(msg(rule(0.1, 0)).starts_with("--early-bird-window 0:"));
        let mut w = Watch::new(rule(0.1, 5)).unwrap();
        let e = w.observe(&[0.0; 12]).unwrap_err().to_string();
        assert!(e.contains("13 parameters but the model has 12"), "{e}");
    }
}
