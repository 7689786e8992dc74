//! The kernel table (every WGSL source, assembled from its shared parts behind a generated
//! prelude of the kernels' limits) and the Pod layouts of the uniforms, state and records the
//! host shares with WGSL, one Rust struct per WGSL struct.

use bytemuck::{Pod, Zeroable};

use crate::backend::{ChunkRule, Evaluation};
use crate::metrics::{Counts, Metric};
use crate::model::LayerLayout;
use crate::stop::MinDelta;

/// Invocations per workgroup of the element-wise kernels (dense_forward, dense_backprop,
/// reduce_update, copy_params) and of lr_pass.wgsl.
pub(super) const WORKGROUP: usize = 64;
/// Invocations of loss_metrics.wgsl's one workgroup.
pub(super) const LOSS_WORKGROUP: usize = 256;
/// Invocations of reduce_stats.wgsl's one workgroup.
pub(super) const STATS_WORKGROUP: usize = 64;
/// Most rows per block of `lr_pass.wgsl` (the size of its ∂L/∂z scratch).
pub(super) const MAX_BLOCK: usize = 3072;
/// The (o, i) tile of one `dense_grad.wgsl` workgroup is GRAD_TILE × GRAD_TILE.
pub(super) const GRAD_TILE: usize = 32;
/// Invocations of one `mlp_pass.wgsl` workgroup.
pub(super) const MLP_WORKGROUP: usize = 256;
/// Rows per tile of `mlp_pass.wgsl`.
pub(super) const MLP_TILE: usize = 16;
/// `mlp_pass.wgsl`'s limits: inputs and hidden units.
pub(super) const MLP_MAX_F: usize = 64;
pub(super) const MLP_MAX_H: usize = 128;
// mlp_pass.wgsl maps its invocations onto pairs of a tile's rows × four hidden units, and
// onto four hidden units × eight inputs of the first layer's gradient.
const _: () = assert!(MLP_WORKGROUP == MLP_TILE / 2 * (MLP_MAX_H / 4));
const _: () = assert!(MLP_WORKGROUP == MLP_MAX_H / 4 * (MLP_MAX_F / 8));
/// The most features `lr_loop.wgsl` takes (a multiple of four).
pub(super) const LOOP_MAX_FEATURES: usize = 64;
/// The most invocations of `lr_loop.wgsl`'s workgroup.
pub const LOOP_MAX_WORKGROUP: u32 = 64;
/// The most logits `lr_loop.wgsl` takes; each invocation also keeps K·(⌈F/4⌉ + 1) ≤
/// LOOP_MAX_FEATURES / 4 + 1 vec4s of partial gradient.
pub(super) const LOOP_MAX_K: usize = 8;
/// The most classes of a softmax head (a sigmoid head counts two).
pub(super) const MAX_CLASSES: usize = crate::model::MAX_CLASSES;
/// Confusion cells a kernel counts in workgroup memory before adding them to the set's tally
/// (`tally.wgsl`), K ≤ 16; with more cells each row adds to the tally directly. 1 KiB keeps
/// lr_pass.wgsl and mlp_pass.wgsl within the 16 KiB of workgroup memory every adapter has.
pub(super) const HIST_CELLS: usize = 256;
/// Invocations of stop_rule.wgsl's one workgroup (each sums the counts of its classes).
pub(super) const STOP_WORKGROUP: usize = 64;
/// The most logits of `mlp_pass.wgsl`, and the output-layer weights each invocation keeps
/// the partial gradient of (MLP_MAX_H · MLP_MAX_K = MLP_WORKGROUP · MLP_W1_SLOTS).
pub(super) const MLP_MAX_K: usize = 16;
pub(super) const MLP_W1_SLOTS: usize = 8;
const _: () = assert!(MLP_MAX_H * MLP_MAX_K == MLP_WORKGROUP * MLP_W1_SLOTS);
/// Words of [`RecordHead`] and [`EntryHead`] before their counts.
pub(super) const HEAD_WORDS: usize = 4;

/// Bits of [`Rule::flags`].
const RULE_THRESHOLD: u32 = 1;
const RULE_DIVERGENCE: u32 = 2;
const RULE_PATIENCE: u32 = 4;
const RULE_TRACK: u32 = 8;
const RULE_RELATIVE: u32 = 16;
/// Bits of each parameter's word in the optimizer's flags (`pflags` of update kernels): a
/// weight, which weight decay applies to (else a bias).
pub(super) const PARAM_DECAYS: u32 = 1;
/// ... and a pruned parameter, held at exactly 0 with its state 0.
pub(super) const PARAM_PRUNED: u32 = 2;
/// Bits of [`Entry::flags`].
const ENTRY_CHECKED: u32 = 1;
const ENTRY_IMPROVED: u32 = 2;
const ENTRY_PAUSED: u32 = 4;

/// The WGSL `const` lines every kernel starts with: the limits above, defined only here.
pub(super) fn prelude() -> String {
    let u = |v: usize| v as u64;
    let consts: [(&str, u64); 35] = [
        ("WORKGROUP", u(WORKGROUP)),
        ("LOSS_WORKGROUP", u(LOSS_WORKGROUP)),
        ("STATS_WORKGROUP", u(STATS_WORKGROUP)),
        ("MAX_BLOCK", u(MAX_BLOCK)),
        ("GRAD_TILE", u(GRAD_TILE)),
        ("MLP_WORKGROUP", u(MLP_WORKGROUP)),
        ("MLP_TILE", u(MLP_TILE)),
        ("MLP_MAX_F", u(MLP_MAX_F)),
        ("MLP_MAX_H", u(MLP_MAX_H)),
        ("LOOP_MAX_FEATURES", u(LOOP_MAX_FEATURES)),
        ("LOOP_MAX_WORKGROUP", u64::from(LOOP_MAX_WORKGROUP)),
        ("LOOP_MAX_K", u(LOOP_MAX_K)),
        ("MAX_CLASSES", u(MAX_CLASSES)),
        ("HIST_CELLS", u(HIST_CELLS)),
        ("STOP_WORKGROUP", u(STOP_WORKGROUP)),
        ("MLP_MAX_K", u(MLP_MAX_K)),
        ("MLP_W1_SLOTS", u(MLP_W1_SLOTS)),
        ("HEAD_WORDS", u(HEAD_WORDS)),
        ("RULE_THRESHOLD", RULE_THRESHOLD.into()),
        ("RULE_DIVERGENCE", RULE_DIVERGENCE.into()),
        ("RULE_PATIENCE", RULE_PATIENCE.into()),
        ("RULE_TRACK", RULE_TRACK.into()),
        ("RULE_RELATIVE", RULE_RELATIVE.into()),
        ("ENTRY_CHECKED", ENTRY_CHECKED.into()),
        ("ENTRY_IMPROVED", ENTRY_IMPROVED.into()),
        ("ENTRY_PAUSED", ENTRY_PAUSED.into()),
        ("METRIC_ACCURACY", metric_code(Metric::Accuracy).into()),
        ("METRIC_PRECISION", metric_code(Metric::Precision).into()),
        ("METRIC_RECALL", metric_code(Metric::Recall).into()),
        ("METRIC_F1", metric_code(Metric::F1).into()),
        ("METRIC_IOU", metric_code(Metric::Iou).into()),
        ("METRIC_LOSS", metric_code(Metric::Loss).into()),
        ("STATE_SLOT", u(std::mem::offset_of!(State, slot) / 4)),
        ("PARAM_DECAYS", PARAM_DECAYS.into()),
        ("PARAM_PRUNED", PARAM_PRUNED.into()),
    ];
    consts
        .iter()
        .map(|(name, v)| format!("const {name}: u32 = {v}u;\n"))
        .collect()
}

/// `Rule::metric`'s code for `m`.
fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::Accuracy => 0,
        Metric::Precision => 1,
        Metric::Recall => 2,
        Metric::F1 => 3,
        Metric::Iou => 4,
        Metric::Loss => 5,
    }
}

const ACTIVATION: &str = include_str!("../../../shaders/activation.wgsl");
const REDUCTION: &str = include_str!("../../../shaders/reduction.wgsl");
const STOP_RULE_CORE: &str = include_str!("../../../shaders/stop_rule_core.wgsl");
const UPDATE: &str = include_str!("../../../shaders/update.wgsl");
const TALLY: &str = include_str!("../../../shaders/tally.wgsl");

/// Every kernel. WGSL has no includes: a kernel's source is the prelude, then the shared files
/// it calls, then its own file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    DenseForward,
    LossMetrics,
    DenseGrad,
    DenseBackprop,
    LrPass,
    ReduceStats,
    ReduceUpdate,
    MlpPass,
    LrLoop,
    StopRule,
    CopyParams,
    GatherRows,
    AdvanceSlot,
}

impl Kernel {
    /// The kernels every session builds, in the order of its pipeline table (index `k as
    /// usize`); `LrLoop` follows where the session runs it.
    pub const ITERATION: [Kernel; 8] = [
        Kernel::DenseForward,
        Kernel::LossMetrics,
        Kernel::DenseGrad,
        Kernel::DenseBackprop,
        Kernel::LrPass,
        Kernel::ReduceStats,
        Kernel::ReduceUpdate,
        Kernel::MlpPass,
    ];

    /// Every kernel (for the tests).
    #[cfg(test)]
    pub const ALL: [Kernel; 13] = [
        Kernel::DenseForward,
        Kernel::LossMetrics,
        Kernel::DenseGrad,
        Kernel::DenseBackprop,
        Kernel::LrPass,
        Kernel::ReduceStats,
        Kernel::ReduceUpdate,
        Kernel::MlpPass,
        Kernel::LrLoop,
        Kernel::StopRule,
        Kernel::CopyParams,
        Kernel::GatherRows,
        Kernel::AdvanceSlot,
    ];

    /// The shader's name: its file in `shaders/` without `.wgsl`.
    pub fn name(self) -> &'static str {
        self.parts().1
    }

    /// The shared files, the name and the kernel's own file.
    fn parts(self) -> (&'static [&'static str], &'static str, &'static str) {
        macro_rules! own {
            ($name:literal) => {
                (
                    $name,
                    include_str!(concat!("../../../shaders/", $name, ".wgsl")),
                )
            };
        }
        let ((name, own), shared): ((&str, &str), &[&str]) = match self {
            Kernel::DenseForward => (own!("dense_forward"), &[ACTIVATION]),
            Kernel::LossMetrics => (own!("loss_metrics"), &[TALLY]),
            Kernel::DenseGrad => (own!("dense_grad"), &[]),
            Kernel::DenseBackprop => (own!("dense_backprop"), &[ACTIVATION]),
            Kernel::LrPass => (own!("lr_pass"), &[TALLY]),
            Kernel::ReduceStats => (own!("reduce_stats"), &[REDUCTION]),
            Kernel::ReduceUpdate => (own!("reduce_update"), &[UPDATE]),
            Kernel::MlpPass => (own!("mlp_pass"), &[ACTIVATION, TALLY]),
            Kernel::LrLoop => (own!("lr_loop"), &[REDUCTION, STOP_RULE_CORE, UPDATE]),
            Kernel::StopRule => (own!("stop_rule"), &[REDUCTION, STOP_RULE_CORE]),
            Kernel::CopyParams => (own!("copy_params"), &[]),
            Kernel::GatherRows => (own!("gather_rows"), &[]),
            Kernel::AdvanceSlot => (own!("advance_slot"), &[]),
        };
        (shared, name, own)
    }

    /// The full WGSL source.
    pub fn source(self) -> String {
        let (shared, _, own) = self.parts();
        let mut s = prelude();
        for part in shared.iter().chain([&own]) {
            s += part;
        }
        s
    }
}

/// `Dense` of dense_forward.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Dense {
    pub rows: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub in_off: u32,
    pub out_off: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub act: u32,
    pub tiles_o: u32,
    pub tx: u32,
    pub pad1: u32,
    pub pad2: u32,
}

impl Dense {
    /// The uniform of `layer` over `rows` rows, its input at `in_off` and output at `out_off`
    /// of the activations, with activation `act`; and the workgroups its dispatch needs.
    pub fn layer(
        rows: usize,
        layer: &LayerLayout,
        in_off: usize,
        out_off: usize,
        act: u32,
    ) -> (Dense, usize) {
        let u = |v: usize| v as u32;
        // Invocations along the outputs: 8, fewer for a narrow layer.
        let tx = layer.outputs.div_ceil(4).next_power_of_two().min(8);
        let tiles_o = layer.outputs.div_ceil(4 * tx);
        let dense = Dense {
            rows: u(rows),
            in_dim: u(layer.inputs),
            out_dim: u(layer.outputs),
            in_off: u(in_off),
            out_off: u(out_off),
            w_off: u(layer.w_off),
            b_off: u(layer.b_off),
            act,
            tiles_o: u(tiles_o),
            tx: u(tx),
            ..Default::default()
        };
        (dense, rows.div_ceil(4 * (WORKGROUP / tx)) * tiles_o)
    }
}

/// `LossCfg` of loss_metrics.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct LossCfg {
    pub rows: u32,
    pub logit_off: u32,
    pub delta_off: u32,
    pub inv_rows: f32,
    pub result_off: u32,
    pub pad_k: u32,
    /// The set's counts in the tally ([K, K] at tally_off; K = 2 for one logit).
    pub tally_off: u32,
    pub pad0: u32,
}

/// `GradCfg` of dense_grad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct GradCfg {
    pub rows: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub in_off: u32,
    pub d_off: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub part_off: u32,
    pub stride: u32,
    pub chunk: u32,
    pub tiles_i: u32,
    pub tiles: u32,
}

/// `BackCfg` of dense_backprop.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct BackCfg {
    pub rows: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub in_off: u32,
    pub d_off: u32,
    pub prev_d_off: u32,
    pub w_off: u32,
    pub act: u32,
}

/// `Pass` of lr_pass.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Pass {
    pub rows: u32,
    pub features: u32,
    pub z_off: u32,
    pub part0: u32,
    pub stride: u32,
    pub grad: u32,
    pub inv_rows: f32,
    pub block: u32,
    pub pad_k: u32,
    /// The set's counts in the tally.
    pub tally_off: u32,
    pub pad0: u32,
    pub pad1: u32,
}

/// `Mlp` of mlp_pass.wgsl: [`Pass`]'s fields, then the model's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Mlp {
    pub rows: u32,
    pub f: u32,
    pub z_off: u32,
    pub part0: u32,
    pub stride: u32,
    pub grad: u32,
    pub inv_rows: f32,
    pub block: u32,
    pub h: u32,
    pub act: u32,
    pub w0: u32,
    pub b0: u32,
    pub w1: u32,
    pub b1: u32,
    pub params: u32,
    pub pad_k: u32,
    pub tally_off: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}

/// `Stats` of reduce_stats.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Stats {
    pub part0: u32,
    pub parts: u32,
    pub stride: u32,
    pub col: u32,
    /// 0: the training rows' loss and counts in the record, 1: the validation rows'.
    pub out_set: u32,
    /// K · K confusion cells per set.
    pub cells: u32,
    pub pad0: u32,
    pub pad1: u32,
}

/// `Update` of reduce_update.wgsl (the rate and the optimizer's scalars are apart: see
/// [`crate::optim::StepScalars`] and `optimizer.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Update {
    pub params: u32,
    pub parts: u32,
    pub stride: u32,
    pub pad0: u32,
}

/// `Gather` of gather_rows.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Gather {
    pub features: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}

/// `Loop` of lr_loop.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Loop {
    pub rows: u32,
    pub features: u32,
    pub val_rows: u32,
    pub iters: u32,
    pub inv_rows: f32,
    pub update_first: u32,
    pub judge: u32,
    pub keep_z: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
    pub pad3: u32,
}

/// `RecordHead` of reduction.wgsl: an evaluation's record starts with it, then the training
/// rows' K × K confusion counts (row-major, [true][predicted]), then the validation rows'
/// (zeros without validation rows): [`record_words`] u32 in all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct RecordHead {
    /// Σ loss of each set, as f32 bits.
    pub train_loss_bits: u32,
    pub val_loss_bits: u32,
    /// K (2 for a sigmoid head).
    pub classes: u32,
    pub pad0: u32,
}

/// Words of one record for K classes.
pub(super) const fn record_words(k: usize) -> usize {
    HEAD_WORDS + 2 * k * k
}

/// A record's words from an evaluation (`k` classes).
pub(super) fn encode_record(e: &Evaluation, k: usize) -> Vec<u32> {
    let head = RecordHead {
        train_loss_bits: (e.train.loss_sum as f32).to_bits(),
        val_loss_bits: e.val.as_ref().map_or(0, |v| (v.loss_sum as f32).to_bits()),
        classes: k as u32,
        pad0: 0,
    };
    let mut out = bytemuck::cast_slice::<RecordHead, u32>(&[head]).to_vec();
    for c in [Some(&e.train), e.val.as_ref()] {
        match c {
            Some(c) => out.extend(c.confusion.iter().map(|&v| v as u32)),
            None => out.resize(out.len() + k * k, 0),
        }
    }
    out
}

/// The evaluation a record holds (`words` of [`record_words`]).
pub(super) fn decode_record(words: &[u32], has_val: bool) -> Evaluation {
    let head: RecordHead = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&words[..HEAD_WORDS]));
    let k = head.classes as usize;
    let counts = |s: usize, bits: u32| Counts {
        loss_sum: f32::from_bits(bits) as f64,
        confusion: words[HEAD_WORDS + s * k * k..HEAD_WORDS + (s + 1) * k * k]
            .iter()
            .map(|&v| u64::from(v))
            .collect(),
    };
    Evaluation {
        train: counts(0, head.train_loss_bits),
        val: has_val.then(|| counts(1, head.val_loss_bits)),
    }
}

/// `Rule` of stop_rule_core.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct Rule {
    pub metric: u32,
    pub monitor_val: u32,
    pub has_val: u32,
    pub flags: u32,
    pub threshold: f32,
    pub divergence: f32,
    pub delta: f32,
    pub patience: u32,
    pub warmup: u32,
    pub eval_every: u32,
    pub max_iter: u32,
    pub n_args: u32,
    pub copy_groups: u32,
    /// K (2 for a sigmoid head).
    pub classes: u32,
    /// How close (relative) two f32 values may be before the device leaves the verdict to
    /// the host: 4e-6, more for macro averages over many classes (K roundings each).
    pub tol: f32,
    pub pad0: u32,
}

impl Rule {
    /// The device's form of `r` for `k` classes: `n_args` dispatches before the best-weights
    /// copy, which has `copy_groups` workgroups (0: no copy).
    pub fn new(r: &ChunkRule, k: usize, has_val: bool, n_args: u32, copy_groups: u32) -> Self {
        let rule = &r.rule;
        let clamp = |v: u64| v.min(u64::from(u32::MAX)) as u32;
        let (relative, delta) = match rule.min_delta {
            MinDelta::Abs(d) => (false, d),
            MinDelta::Rel(r) => (true, r),
        };
        let track = rule.patience.is_some() || r.restore_best;
        let bit = |on: bool, b: u32| if on { b } else { 0 };
        Rule {
            metric: metric_code(rule.metric),
            monitor_val: u32::from(r.monitor_val),
            has_val: u32::from(has_val),
            flags: bit(rule.threshold.is_some(), RULE_THRESHOLD)
                | bit(rule.divergence.is_some(), RULE_DIVERGENCE)
                | bit(rule.patience.is_some(), RULE_PATIENCE)
                | bit(track, RULE_TRACK)
                | bit(relative, RULE_RELATIVE),
            threshold: rule.threshold.unwrap_or(0.0) as f32,
            divergence: rule.divergence.unwrap_or(0.0) as f32,
            delta: delta as f32,
            patience: clamp(rule.patience.unwrap_or(1).max(1)),
            warmup: clamp(rule.warmup),
            eval_every: clamp(rule.eval_every.max(1)),
            max_iter: clamp(rule.max_iter),
            n_args,
            copy_groups,
            classes: k as u32,
            tol: if k > 2 && !matches!(rule.metric, Metric::Accuracy | Metric::Loss) {
                4e-6 * (k as f32 / 8.0).max(1.0)
            } else {
                4e-6
            },
            ..Default::default()
        }
    }
}

/// `State` of stop_rule_core.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct State {
    pub t: u32,
    pub slot: u32,
    pub paused: u32,
    pub has_best: u32,
    pub best: f32,
    pub best_a: u32,
    pub best_b: u32,
    pub wait: u32,
    pub cand: f32,
    pub cand_a: u32,
    pub cand_b: u32,
    pub pad: u32,
}

/// Words after [`State`] in the stop state: the best's and the candidate's per-class
/// true positives and predictions (each [K]), so that macro metrics compare integers.
pub(super) const fn state_ints(k: usize) -> usize {
    4 * k
}

/// `EntryHead` of stop_rule_core.wgsl: one iteration of a chunk, followed by its record
/// ([`record_words`]); [`entry_words`] u32 in all.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct EntryHead {
    pub t: u32,
    pub flags: u32,
    pub pad0: u32,
    pub pad1: u32,
}

/// Words of one history entry for K classes.
pub(super) const fn entry_words(k: usize) -> usize {
    HEAD_WORDS + record_words(k)
}

impl EntryHead {
    pub fn checked(&self) -> bool {
        self.flags & ENTRY_CHECKED != 0
    }
    pub fn improved(&self) -> bool {
        self.flags & ENTRY_IMPROVED != 0
    }
    pub fn paused(&self) -> bool {
        self.flags & ENTRY_PAUSED != 0
    }
}

/// `DispatchArgs` of stop_rule.wgsl: one indirect dispatch's workgroups.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(super) struct DispatchArgs {
    pub x: u32,
    pub y: u32,
    pub z: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{OptConsts, StepScalars};
    use std::mem::size_of;

    /// (size, alignment) of a WGSL type under the storage/uniform layout rules, for the types
    /// these shaders use: 32-bit scalars, vec4s, fixed arrays and structs of them.
    fn layout_of(src: &str, ty: &str) -> (usize, usize) {
        let ty = ty.trim();
        match ty {
            "u32" | "i32" | "f32" => (4, 4),
            _ if ty.starts_with("vec4<") => (16, 16),
            _ if ty.starts_with("array<") => {
                let inner = &ty["array<".len()..ty.len() - 1];
                let (elem, n) = inner.rsplit_once(',').expect("a sized array");
                let n: usize = n
                    .trim()
                    .trim_end_matches('u')
                    .parse()
                    .expect("a literal length");
                let (size, align) = layout_of(src, elem);
                (n * size.next_multiple_of(align), align)
            }
            _ => struct_layout(src, ty),
        }
    }

    /// The WGSL struct `name` as declared in `src`.
    fn struct_layout(src: &str, name: &str) -> (usize, usize) {
        let head = format!("struct {name} {{");
        let start = src
            .find(&head)
            .unwrap_or_else(|| panic!("no struct {name}"))
            + head.len();
        let body = &src[start..start + src[start..].find('}').expect("the struct's end")];
        let (mut size, mut align) = (0usize, 1usize);
        for field in body
            .lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
        {
            let Some((_, ty)) = field.trim_end_matches(',').split_once(':') else {
                continue;
            };
            let (s, a) = layout_of(src, ty);
            size = size.next_multiple_of(a) + s;
            align = align.max(a);
        }
        (size.next_multiple_of(align), align)
    }

    fn wgsl_size(k: Kernel, name: &str) -> usize {
        struct_layout(&k.source(), name).0
    }

    #[test]
    fn pod_structs_match_their_wgsl_structs() {
        let cases = [
            (Kernel::DenseForward, "Dense", size_of::<Dense>()),
            (Kernel::LossMetrics, "LossCfg", size_of::<LossCfg>()),
            (Kernel::DenseGrad, "GradCfg", size_of::<GradCfg>()),
            (Kernel::DenseBackprop, "BackCfg", size_of::<BackCfg>()),
            (Kernel::LrPass, "Pass", size_of::<Pass>()),
            (Kernel::MlpPass, "Mlp", size_of::<Mlp>()),
            (Kernel::ReduceStats, "Stats", size_of::<Stats>()),
            (Kernel::ReduceStats, "RecordHead", size_of::<RecordHead>()),
            (Kernel::ReduceUpdate, "Update", size_of::<Update>()),
            (Kernel::GatherRows, "Gather", size_of::<Gather>()),
            (Kernel::LrLoop, "Loop", size_of::<Loop>()),
            (Kernel::ReduceUpdate, "OptConsts", size_of::<OptConsts>()),
            (
                Kernel::ReduceUpdate,
                "StepScalars",
                size_of::<StepScalars>(),
            ),
            (Kernel::LrLoop, "OptConsts", size_of::<OptConsts>()),
            (Kernel::LrLoop, "StepScalars", size_of::<StepScalars>()),
            (Kernel::StopRule, "Rule", size_of::<Rule>()),
            (Kernel::StopRule, "State", size_of::<State>()),
            (Kernel::StopRule, "EntryHead", size_of::<EntryHead>()),
            (Kernel::StopRule, "DispatchArgs", size_of::<DispatchArgs>()),
        ];
        for (k, name, rust) in cases {
            assert_eq!(wgsl_size(k, name), rust, "{name} of {}", k.name());
        }
        // The heads before the counts are HEAD_WORDS long.
        assert_eq!(size_of::<RecordHead>(), 4 * HEAD_WORDS);
        assert_eq!(size_of::<EntryHead>(), 4 * HEAD_WORDS);
        // Uniforms are read in 16-byte rows.
        for (k, name, rust) in &cases[..15] {
            assert_eq!(rust % 16, 0, "{name} of {}", k.name());
        }
    }

    /// Each limit reaches WGSL once, from the prelude: no kernel file defines it again.
    #[test]
    fn limits_come_from_the_prelude_only() {
        let prelude = prelude();
        for k in Kernel::ALL {
            let src = k.source();
            assert!(src.starts_with(&prelude), "{}", k.name());
            let body = &src[prelude.len()..];
            for line in prelude.lines() {
                let name = line.split(':').next().unwrap_or(line);
                assert!(!body.contains(&format!("{name}:")), "{}: {name}", k.name());
            }
        }
    }
}
