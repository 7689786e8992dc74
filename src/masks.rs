//! Pruning masks over the flat parameter vector: global magnitude pruning, the mask distance of
//! early-bird tickets, hidden-unit (neuron) pruning and the compaction of a pruned MLP. Pure
//! functions, no I/O.
//!
//! A mask has one entry per parameter, true = kept. `layout` must describe `params` (as
//! [`ModelSpec::layout`] does); [`compact`] checks it, the others take it as given.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::model::{LayerLayout, ModelSpec};

/// The parameter count the layout describes: the end of its last bias.
fn parameters(layout: &[LayerLayout]) -> usize {
    layout
        .iter()
        .map(|l| l.b_off + l.outputs)
        .max()
        .unwrap_or(0)
}

/// The indices of every weight (never a bias), in index order.
fn weight_indices(layout: &[LayerLayout]) -> impl Iterator<Item = usize> + '_ {
    layout.iter().flat_map(|l| l.w_off..l.b_off)
}

/// The number of weight entries.
pub fn weights(layout: &[LayerLayout]) -> usize {
    layout.iter().map(|l| l.b_off - l.w_off).sum()
}

/// The number of weights `mask` keeps.
pub fn kept_weights(layout: &[LayerLayout], mask: &[bool]) -> usize {
    weight_indices(layout)
        .filter(|&i| mask.get(i).copied().unwrap_or(false))
        .count()
}

/// Global unstructured magnitude pruning (as PyTorch's `global_unstructured` with
/// `L1Unstructured`): of the weights `mask` keeps, the `remove` of smallest |w| are pruned,
/// ties going to the lower index first; biases are never pruned. |w| is ordered by
/// `f32::total_cmp`, so a NaN counts as the largest.
pub fn magnitude_prune(
    layout: &[LayerLayout],
    params: &[f32],
    mask: &[bool],
    remove: usize,
) -> Vec<bool> {
    let mut out = mask.to_vec();
    let mut kept: Vec<(f32, usize)> = weight_indices(layout)
        .filter(|&i| mask.get(i).copied().unwrap_or(false))
        .filter_map(|i| params.get(i).map(|w| (w.abs(), i)))
        .collect();
    let remove = remove.min(kept.len());
    if remove == 0 {
        return out;
    }
    if remove < kept.len() {
        kept.select_nth_unstable_by(remove - 1, by_magnitude);
    }
    for &(_, i) in &kept[..remove] {
        out[i] = false;
    }
    out
}

/// The mask of sparsity `sparsity` over all weights of the dense `params`: the round(s · W)
/// smallest weights pruned (half away from zero), every bias kept.
pub fn magnitude_mask(layout: &[LayerLayout], params: &[f32], sparsity: f64) -> Vec<bool> {
    let all = vec![true; parameters(layout)];
    // A float-to-int cast saturates: a negative or NaN sparsity removes none.
    let remove = (sparsity * weights(layout) as f64).round() as usize;
    magnitude_prune(layout, params, &all, remove)
}

/// The fraction of weights (not biases) whose keep/prune status differs between `a` and `b`:
/// the normalised Hamming distance of You et al., "Drawing Early-Bird Tickets" (ICLR 2020).
/// 0 when there are no weights.
pub fn mask_distance(layout: &[LayerLayout], a: &[bool], b: &[bool]) -> f64 {
    let w = weights(layout);
    if w == 0 {
        return 0.0;
    }
    let differ = weight_indices(layout)
        .filter(|&i| a.get(i) != b.get(i))
        .count();
    differ as f64 / w as f64
}

/// Pruning order: (|w|, index) ascending, |w| by `f32::total_cmp`.
fn by_magnitude(a: &(f32, usize), b: &(f32, usize)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// W[row, col] of a layer.
fn at(params: &[f32], l: &LayerLayout, row: usize, col: usize) -> f32 {
    params[l.w_off + row * l.inputs + col]
}

/// Each hidden unit's score: for unit j of hidden layer h (the outputs of `layout[h]`, the
/// inputs of `layout[h + 1]`), sqrt(Σ_i W_h[j, i]² + Σ_o W_{h+1}[o, j]²), each sum in f64
/// in index order. A logistic regression has no hidden layer: an empty list.
pub fn unit_scores(layout: &[LayerLayout], params: &[f32]) -> Vec<Vec<f64>> {
    layout
        .windows(2)
        .map(|pair| {
            let (l, next) = (&pair[0], &pair[1]);
            (0..l.outputs)
                .map(|j| {
                    let sq = |w: f32| f64::from(w) * f64::from(w);
                    let incoming: f64 = (0..l.inputs).map(|i| sq(at(params, l, j, i))).sum();
                    let outgoing: f64 = (0..next.outputs).map(|o| sq(at(params, next, o, j))).sum();
                    (incoming + outgoing).sqrt()
                })
                .collect()
        })
        .collect()
}

/// Structured pruning: of the units `alive` keeps, across all hidden layers, the `remove` of
/// smallest [`unit_scores`] die, ties going to the lower (layer, index) first. The last alive
/// unit of a layer is never removed (the next candidate is taken instead), so the network
/// stays connected; fewer than `remove` die when only those are left.
pub fn neuron_prune(
    layout: &[LayerLayout],
    params: &[f32],
    alive: &[Vec<bool>],
    remove: usize,
) -> Vec<Vec<bool>> {
    let scores = unit_scores(layout, params);
    let mut out = alive.to_vec();
    let mut candidates: Vec<(f64, usize, usize)> = Vec::new();
    for (h, (s, a)) in scores.iter().zip(alive).enumerate() {
        for (j, (&score, &live)) in s.iter().zip(a).enumerate() {
            if live {
                candidates.push((score, h, j));
            }
        }
    }
    candidates.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut left: Vec<usize> = out
        .iter()
        .map(|a| a.iter().filter(|&&x| x).count())
        .collect();
    let mut removed = 0;
    for (_, h, j) in candidates {
        if removed == remove {
            break;
        }
        if left[h] > 1 {
            out[h][j] = false;
            left[h] -= 1;
            removed += 1;
        }
    }
    out
}

/// The parameter mask of the dead units: a dead unit's incoming weight row, its bias and its
/// outgoing weight column are pruned; everything else is kept.
pub fn unit_mask(layout: &[LayerLayout], alive: &[Vec<bool>]) -> Vec<bool> {
    let mut mask = vec![true; parameters(layout)];
    for (pair, a) in layout.windows(2).zip(alive) {
        let (l, next) = (&pair[0], &pair[1]);
        for (j, _) in a.iter().enumerate().take(l.outputs).filter(|(_, x)| !**x) {
            let row = l.w_off + j * l.inputs;
            mask[row..row + l.inputs].fill(false);
            mask[l.b_off + j] = false;
            for o in 0..next.outputs {
                mask[next.w_off + o * next.inputs + j] = false;
            }
        }
    }
    mask
}

/// The smaller model with the dead units removed (same activation, head and classes) and its
/// parameters: the kept rows, columns and biases copied in order, so its forward pass equals
/// that of `params` under [`unit_mask`]. An error unless `params` fits `spec` and `alive` has
/// one entry per hidden unit with at least one alive per layer.
pub fn compact(
    spec: &ModelSpec,
    params: &[f32],
    alive: &[Vec<bool>],
) -> Result<(ModelSpec, Vec<f32>)> {
    if spec.layers.len() < 2 {
        return Err(Error::Config(format!(
            "compact: the model {:?} needs an input and an output layer",
            spec.layers
        )));
    }
    let hidden = &spec.layers[1..spec.layers.len() - 1];
    if params.len() != spec.parameter_count() {
        return Err(Error::Config(format!(
            "compact: the model {:?} has {} parameters, not {}",
            spec.layers,
            spec.parameter_count(),
            params.len()
        )));
    }
    let shape: Vec<usize> = alive.iter().map(Vec::len).collect();
    if shape != hidden {
        return Err(Error::Config(format!(
            "compact: the alive units have the shape {shape:?}, but the model's hidden layers are {hidden:?}"
        )));
    }
    let sizes: Vec<usize> = alive
        .iter()
        .map(|a| a.iter().filter(|&&x| x).count())
        .collect();
    if let Some(h) = sizes.iter().position(|&n| n == 0) {
        return Err(Error::Config(format!(
            "compact: hidden layer {h} has no alive unit; the network would be disconnected"
        )));
    }
    let small = ModelSpec::with_head(
        spec.layers[0],
        &sizes,
        spec.activation,
        spec.head,
        spec.classes(),
    )?;
    let layout = spec.layout();
    let last = layout.len() - 1;
    let all = |n: usize| vec![true; n];
    let mut out = Vec::with_capacity(small.parameter_count());
    for (k, l) in layout.iter().enumerate() {
        let keep_in = if k == 0 {
            all(l.inputs)
        } else {
            alive[k - 1].clone()
        };
        let keep_out = if k == last {
            all(l.outputs)
        } else {
            alive[k].clone()
        };
        let rows = || (0..l.outputs).filter(|&o| keep_out[o]);
        for o in rows() {
            out.extend(
                (0..l.inputs)
                    .filter(|&i| keep_in[i])
                    .map(|i| at(params, l, o, i)),
            );
        }
        out.extend(rows().map(|o| params[l.b_off + o]));
    }
    debug_assert_eq!(out.len(), small.parameter_count());
    Ok((small, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Head};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    fn spec(inputs: usize, hidden: &[usize], act: Activation, classes: usize) -> ModelSpec {
        let head = Head::for_classes(classes, None);
        ModelSpec::with_head(inputs, hidden, act, head, classes).unwrap()
    }

    /// Params drawn from a small set of values (many ties in |w|, signs both ways).
    fn tied(n: usize, seed: u64) -> Vec<f32> {
        let set = [0.0, 0.5, -0.5, 1.0, -1.0, 0.25, -0.0, 2.0];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| set[(rng.next_u64() % set.len() as u64) as usize])
            .collect()
    }

    /// The reference: sort every kept (|w|, index) pair, prune the first `remove`. A stable
    /// sort on |w| alone (no NaN here) of pairs in index order breaks ties by index.
    fn reference(layout: &[LayerLayout], p: &[f32], mask: &[bool], remove: usize) -> Vec<bool> {
        let mut pairs: Vec<(f32, usize)> = (0..p.len())
            .filter(|&i| mask[i] && !is_bias(layout, i))
            .map(|i| (p[i].abs(), i))
            .collect();
        pairs.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("no NaN"));
        let mut out = mask.to_vec();
        for &(_, i) in pairs.iter().take(remove) {
            out[i] = false;
        }
        out
    }

    fn is_bias(layout: &[LayerLayout], i: usize) -> bool {
        layout
            .iter()
            .any(|l| (l.b_off..l.b_off + l.outputs).contains(&i))
    }

    #[test]
    fn global_order_matches_a_plain_sort_with_ties() {
        let s = spec(4, &[6, 3], Activation::Relu, 3);
        let layout = s.layout();
        let w = weights(&layout);
        assert_eq!(w, 4 * 6 + 6 * 3 + 3 * 3);
        for seed in 0..20 {
            let p = tied(s.parameter_count(), seed);
            let all = vec![true; p.len()];
            for remove in [0, 1, 5, w / 2, w - 1, w, w + 7] {
                let got = magnitude_prune(&layout, &p, &all, remove);
                assert_eq!(
                    got,
                    reference(&layout, &p, &all, remove),
                    "seed {seed} remove {remove}"
                );
                assert_eq!(kept_weights(&layout, &got), w - remove.min(w));
            }
        }
    }

    #[test]
    fn pruned_entries_stay_pruned_and_are_not_counted() {
        let s = spec(3, &[5], Activation::Tanh, 2);
        let layout = s.layout();
        let p = tied(s.parameter_count(), 7);
        let w = weights(&layout);
        let first = magnitude_prune(&layout, &p, &vec![true; p.len()], 6);
        assert_eq!(kept_weights(&layout, &first), w - 6);
        // Removing 4 more from the pruned mask prunes exactly 4 new weights, never a pruned
        // one twice: as 10 at once, since the order is global and total.
        let second = magnitude_prune(&layout, &p, &first, 4);
        assert_eq!(kept_weights(&layout, &second), w - 10);
        assert!(first.iter().zip(&second).all(|(a, b)| *a || !*b));
        assert_eq!(
            second,
            magnitude_prune(&layout, &p, &vec![true; p.len()], 10)
        );
        assert_eq!(second, reference(&layout, &p, &first, 4));
        // A weight pruned by hand, however large, stays pruned and is not counted.
        let mut hand = vec![true; p.len()];
        hand[0] = false;
        let mut big = p.clone();
        big[0] = 100.0;
        let got = magnitude_prune(&layout, &big, &hand, 3);
        assert!(!got[0]);
        assert_eq!(kept_weights(&layout, &got), w - 4);
        assert_eq!(got, reference(&layout, &big, &hand, 3));
    }

    #[test]
    fn remove_none_or_all_and_biases_never() {
        let s = spec(2, &[4], Activation::Relu, 2);
        let layout = s.layout();
        let p = tied(s.parameter_count(), 3);
        let all = vec![true; p.len()];
        assert_eq!(magnitude_prune(&layout, &p, &all, 0), all);
        let none = magnitude_prune(&layout, &p, &all, usize::MAX);
        assert_eq!(kept_weights(&layout, &none), 0);
        for (i, &kept) in none.iter().enumerate() {
            assert_eq!(kept, is_bias(&layout, i), "entry {i}");
        }
        // Tiny biases next to large weights are still never pruned.
        let mut q = vec![5.0; p.len()];
        for l in &layout {
            q[l.b_off..l.b_off + l.outputs].fill(0.0);
        }
        let half = magnitude_prune(&layout, &q, &all, 3);
        assert!(
            (0..q.len())
                .filter(|&i| is_bias(&layout, i))
                .all(|i| half[i])
        );
        // Ties: the lowest indices go first.
        assert_eq!(&half[..4], &[false, false, false, true]);
    }

    #[test]
    fn nan_and_signs_order_totally() {
        let s = spec(2, &[], Activation::Relu, 2);
        let layout = s.layout();
        let p = [f32::NAN, -0.0, 0.0];
        let got = magnitude_prune(&layout, &p, &[true; 3], 1);
        assert_eq!(got, [true, false, true]);
        let got = magnitude_prune(&layout, &p, &[true; 3], 2);
        assert_eq!(got, [false, false, true]);
    }

    #[test]
    fn magnitude_mask_rounds_half_away_from_zero() {
        // 2→3→1: 9 weights.
        let s = spec(2, &[3], Activation::Tanh, 2);
        let layout = s.layout();
        let p: Vec<f32> = (1..=s.parameter_count()).map(|v| v as f32).collect();
        let kept = |sp| kept_weights(&layout, &magnitude_mask(&layout, &p, sp));
        assert_eq!(kept(0.5), 9 - 5); // 4.5 rounds to 5
        assert_eq!(kept(0.3), 9 - 3); // 2.7
        assert_eq!(kept(0.0), 9);
        assert_eq!(kept(1.0), 0);
        assert_eq!(kept(f64::NAN), 9);
        let m = magnitude_mask(&layout, &p, 0.5);
        // The five smallest: indices 0..6 hold 1..6, the biases 6..9 are skipped.
        assert_eq!(&m[..6], &[false, false, false, false, false, true]);
    }

    #[test]
    fn distance_counts_weights_only() {
        // 2→2→1: weights 0..4 and 6..8, biases 4, 5, 8.
        let s = spec(2, &[2], Activation::Relu, 2);
        let layout = s.layout();
        assert_eq!(weights(&layout), 6);
        let t = true;
        let f = false;
        let m0 = [t, t, t, t, t, t, t, t, t];
        let m1 = [f, t, t, t, t, t, t, t, t]; // one weight differs
        let m2 = [f, f, t, t, f, f, t, t, f]; // + one weight, biases ignored
        let m3 = [t, t, f, f, t, t, f, f, t]; // all six differ from m2
        let d = |a: &[bool], b: &[bool]| mask_distance(&layout, a, b);
        assert_eq!(d(&m0, &m0), 0.0);
        assert_eq!(d(&m0, &m1), 1.0 / 6.0);
        assert_eq!(d(&m1, &m2), 1.0 / 6.0);
        assert_eq!(d(&m0, &m2), 2.0 / 6.0);
        assert_eq!(d(&m2, &m3), 1.0);
        assert_eq!(d(&m3, &m2), 1.0);
        assert_eq!(mask_distance(&[], &[], &[]), 0.0);
    }

    #[test]
    fn unit_scores_by_hand() {
        // 2→3→1: W0 [3, 2] at 0, b0 at 6, W1 [1, 3] at 9, b1 at 12.
        let s = spec(2, &[3], Activation::Relu, 2);
        let layout = s.layout();
        let p = [
            1.0, 2.0, // unit 0 in
            0.0, 3.0, // unit 1 in
            -4.0, 0.0, // unit 2 in
            9.0, 9.0, 9.0, // b0 (not scored)
            2.0, 4.0, -3.0, // W1: out of units 0, 1, 2
            9.0,  // b1
        ];
        let sc = unit_scores(&layout, &p);
        assert_eq!(sc.len(), 1);
        assert_eq!(sc[0], vec![3.0, 5.0, 5.0]); // √(1+4+4), √(9+16), √(16+9)
        let lr = spec(3, &[], Activation::Relu, 2);
        assert!(unit_scores(&lr.layout(), &[0.0; 4]).is_empty());
    }

    #[test]
    fn neuron_prune_ties_and_the_last_unit() {
        // 1→3→2→1 with W0 = 1, W1 = W2 = 0.1: layer 0's units score √1.02, layer 1's √0.04
        // (tied lowest).
        let s = spec(1, &[3, 2], Activation::Relu, 2);
        let layout = s.layout();
        let mut p = vec![1.0f32; s.parameter_count()];
        let l1 = layout[1];
        p[l1.w_off..l1.b_off].fill(0.1);
        let l2 = layout[2];
        p[l2.w_off..l2.b_off].fill(0.1);
        let sc = unit_scores(&layout, &p);
        assert!(sc[1][0] == sc[1][1] && sc[1][0] < sc[0][0], "{sc:?}");
        let alive = vec![vec![true; 3], vec![true; 2]];
        // The lowest ties: layer 1 unit 0 first; its unit 1 is then the last of its layer.
        let one = neuron_prune(&layout, &p, &alive, 1);
        assert_eq!(one, vec![vec![true; 3], vec![false, true]]);
        let two = neuron_prune(&layout, &p, &alive, 2);
        assert_eq!(two, vec![vec![false, true, true], vec![false, true]]);
        // Everything asked: one unit per layer survives.
        let all = neuron_prune(&layout, &p, &alive, 99);
        assert_eq!(all, vec![vec![false, false, true], vec![false, true]]);
        // Dead units stay dead and are not counted.
        let again = neuron_prune(&layout, &p, &one, 1);
        assert_eq!(again, two);
        assert_eq!(neuron_prune(&layout, &p, &alive, 0), alive);
        // Layer 0's tie order is by index.
        let mut q = vec![1.0f32; s.parameter_count()];
        q[layout[0].w_off + 1] = 0.5; // unit 1's incoming weight
        q[layout[0].w_off + 2] = 0.5; // unit 2's
        let r = neuron_prune(&layout, &q, &alive, 1);
        assert_eq!(r, vec![vec![true, false, true], vec![true; 2]]);
        // Ties across layers: the lower layer first. 1→2→2→1 of ones: every unit scores √3.
        let s = spec(1, &[2, 2], Activation::Relu, 2);
        let ones = vec![1.0f32; s.parameter_count()];
        let alive = vec![vec![true; 2], vec![true; 2]];
        let got = neuron_prune(&s.layout(), &ones, &alive, 2);
        assert_eq!(got, vec![vec![false, true], vec![false, true]]);
    }

    #[test]
    fn unit_mask_prunes_exactly_the_dead_units() {
        // 2→3→2→1: W0 [3,2] 0..6, b0 6..9, W1 [2,3] 9..15, b1 15..17, W2 [1,2] 17..19, b2 19.
        let s = spec(2, &[3, 2], Activation::Tanh, 2);
        let layout = s.layout();
        let m = unit_mask(&layout, &[vec![true, false, true], vec![true, false]]);
        let pruned: Vec<usize> = (0..m.len()).filter(|&i| !m[i]).collect();
        // Layer 0 unit 1: row 2..4, bias 7, column 1 of W1 (10, 13).
        // Layer 1 unit 1: row 12..15, bias 16, column 1 of W2 (18).
        assert_eq!(pruned, vec![2, 3, 7, 10, 12, 13, 14, 16, 18]);
        assert!(
            unit_mask(&layout, &[vec![true; 3], vec![true; 2]])
                .iter()
                .all(|&x| x)
        );
    }

    /// A plain forward pass: h = act(W x + b) per hidden layer, linear logits at the end.
    fn forward(spec: &ModelSpec, p: &[f32], x: &[f32]) -> Vec<f64> {
        let layout = spec.layout();
        let mut h: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        for (k, l) in layout.iter().enumerate() {
            let z: Vec<f64> = (0..l.outputs)
                .map(|o| {
                    let dot: f64 = (0..l.inputs)
                        .map(|i| f64::from(at(p, l, o, i)) * h[i])
                        .sum();
                    dot + f64::from(p[l.b_off + o])
                })
                .collect();
            h = if k + 1 == layout.len() {
                z
            } else {
                z.into_iter()
                    .map(|v| match spec.activation {
                        Activation::Relu => v.max(0.0),
                        Activation::Tanh => v.tanh(),
                        Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                    })
                    .collect()
            };
        }
        h
    }

    #[test]
    fn compact_equals_the_masked_model() {
        for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            // 3→5→4→2: two softmax logits.
            let s = ModelSpec::with_head(3, &[5, 4], act, Head::Softmax, 2).unwrap();
            let mut p = s.init_params(11);
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut uniform = || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            for v in &mut p {
                *v += 0.3 * uniform(); // non-zero biases too
            }
            let alive = vec![
                vec![true, false, true, false, true],
                vec![false, true, true, false],
            ];
            let mask = unit_mask(&s.layout(), &alive);
            let masked: Vec<f32> = p
                .iter()
                .zip(&mask)
                .map(|(&v, &k)| if k { v } else { 0.0 })
                .collect();
            let (small, q) = compact(&s, &p, &alive).unwrap();
            assert_eq!(small.layers, vec![3, 3, 2, 2]);
            assert_eq!((small.activation, small.head), (act, Head::Softmax));
            assert_eq!(q.len(), small.parameter_count());
            for _ in 0..50 {
                let x: Vec<f32> = (0..3).map(|_| 3.0 * uniform()).collect();
                let (a, b) = (forward(&s, &masked, &x), forward(&small, &q, &x));
                assert_eq!(a.len(), 2);
                for (u, v) in a.iter().zip(&b) {
                    assert!((u - v).abs() <= 1e-6, "{act:?}: {a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn compact_checks_shapes() {
        let s = spec(3, &[5, 4], Activation::Relu, 2);
        let p = s.init_params(1);
        let e = |alive: &[Vec<bool>]| compact(&s, &p, alive).unwrap_err().to_string();
        assert!(
            e(&[vec![true; 5]]).contains("[5]"),
            "{}",
            e(&[vec![true; 5]])
        );
        assert!(e(&[vec![true; 5], vec![true; 3]]).contains("[5, 4]"));
        assert!(e(&[vec![true; 5], vec![false; 4]]).contains("layer 1 has no alive unit"));
        let short = compact(&s, &p[1..], &[vec![true; 5], vec![true; 4]]);
        assert!(short.unwrap_err().to_string().contains("parameters"));
        // All alive: the same model and parameters.
        let (same, q) = compact(&s, &p, &[vec![true; 5], vec![true; 4]]).unwrap();
        assert_eq!((same, q), (s.clone(), p.clone()));
        // Logistic regression: nothing to remove.
        let lr = spec(3, &[], Activation::Relu, 2);
        let (same, q) = compact(&lr, &[1.0, 2.0, 3.0, 4.0], &[]).unwrap();
        assert_eq!((same.layers, q), (vec![3, 1], vec![1.0, 2.0, 3.0, 4.0]));
    }
}
