// stop_rule_core.wgsl: the device stop rule as a function, judge(), shared (by concatenation
// after reduction.wgsl, see src/backend/gpu/kernels.rs) by stop_rule.wgsl and lr_loop.wgsl.
// The host's rule engine (src/stop.rs, f64) stays the judge: judge() only has to be
// conservative. It pauses the chunk at any iteration where a rule fires OR where f32 rounding
// could make its verdict differ from the host's (a value within a relative 4e-6 of a bound);
// the host then replays the chunk's history through its engine and either stops there or
// resumes. So it never runs past an iteration where the host would stop.
//
// Bindings it declares (group 0), which every shader that includes it must bind:
//   1  state    storage, read_write  State    carried across iterations and chunks
//   2  history  storage, read_write  Entry[K] one entry per iteration of the chunk
//   4  rule     uniform              Rule
// The flag bits (RULE_*, ENTRY_*) and metric codes (METRIC_*) come from the prelude.

struct Rule {
    metric: u32,        // METRIC_ACCURACY, ..., METRIC_LOSS
    monitor_val: u32,   // 1: watch the validation rows (Reduction.val)
    has_val: u32,
    flags: u32,         // RULE_THRESHOLD, RULE_DIVERGENCE, RULE_PATIENCE, RULE_TRACK (the best),
                        // RULE_RELATIVE (delta)
    threshold: f32,
    divergence: f32,
    delta: f32,         // absolute D, or the fraction R with RULE_RELATIVE
    patience: u32,      // already max(P, 1)
    warmup: u32,
    eval_every: u32,
    max_iter: u32,
    n_args: u32,        // dispatches before the copy entry in `args`
    copy_groups: u32,   // workgroups of the best-weights copy
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

struct State {
    t: u32,             // the iteration this kernel judges next
    slot: u32,          // entries written in this chunk
    paused: u32,
    has_best: u32,
    best: f32,          // the best value, as computed here
    best_a: u32,        // the integers it came from: (numerator, denominator) or (loss bits, rows)
    best_b: u32,
    wait: u32,          // counted checks since the last improvement
    cand: f32,          // the value of the last check, for the host to adopt after a pause
    cand_a: u32,
    cand_b: u32,
    pad: u32,
}

struct Entry {
    result: Reduction,
    t: u32,
    flags: u32,         // ENTRY_CHECKED, ENTRY_IMPROVED (and copied), ENTRY_PAUSED here
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(1) var<storage, read_write> state: State;
@group(0) @binding(2) var<storage, read_write> history: array<Entry>;
@group(0) @binding(4) var<uniform> rule: Rule;

fn is_finite(bits: u32) -> bool {
    return (bits & 0x7f800000u) != 0x7f800000u;
}

// Whether x and y are too close for f32 to order them as the host's f64 would.
fn near(x: f32, y: f32, scale: f32) -> bool {
    return abs(x - y) <= 4e-6 * max(scale, 1e-30);
}

fn ratio(a: u32, b: u32) -> f32 {
    if (b == 0u) {
        return 0.0;
    }
    return f32(a) / f32(b);
}

// Judges iteration state.t from its evaluation `res`: writes its history entry, advances the
// state, and returns the entry's flags: ENTRY_CHECKED, ENTRY_IMPROVED (the caller keeps these
// weights as the best when rule.copy_groups != 0), ENTRY_PAUSED (the rest of the chunk must
// not run). Call it only while state.paused == 0.
fn judge(res: Reduction) -> u32 {
    let t = state.t;
    let slot = state.slot;
    history[slot].result = res;
    let hib = rule.metric != METRIC_LOSS;
    var flags = 0u;
    var pause = false;
    var improved = false;
    let finite = is_finite(res.train.loss_bits)
        && (rule.has_val == 0u || is_finite(res.val.loss_bits));
    if (!finite) {
        pause = true;
    } else if (t % rule.eval_every == 0u || t >= rule.max_iter) {
        flags |= ENTRY_CHECKED;
        var m = res.train;
        if (rule.monitor_val != 0u) {
            m = res.val;
        }
        let tp = m.tp;
        let fp = m.fp;
        let fn_ = m.fn_;
        let tn = m.tn;
        var a = 0u;
        var b = 0u;
        switch rule.metric {
            case METRIC_ACCURACY: { a = tp + tn; b = tp + fp + fn_ + tn; }
            case METRIC_PRECISION: { a = tp; b = tp + fp; }
            case METRIC_RECALL: { a = tp; b = tp + fn_; }
            case METRIC_F1: { a = 2u * tp; b = 2u * tp + fp + fn_; }
            case METRIC_IOU: { a = tp; b = tp + fp + fn_; }
            default: { a = m.loss_bits; b = tp + fp + fn_ + tn; }
        }
        var value = ratio(a, b);
        if (rule.metric == METRIC_LOSS) {
            value = bitcast<f32>(a) / f32(b);
        }
        state.cand = value;
        state.cand_a = a;
        state.cand_b = b;
        if ((rule.flags & RULE_THRESHOLD) != 0u) {
            let meets = select(value <= rule.threshold, value >= rule.threshold, hib);
            pause = pause || meets || near(value, rule.threshold, max(abs(value), abs(rule.threshold)));
        }
        if ((rule.flags & RULE_DIVERGENCE) != 0u) {
            let worse = select(value > rule.divergence, value < rule.divergence, hib);
            pause = pause || worse || near(value, rule.divergence, max(abs(value), abs(rule.divergence)));
        }
        if (!pause && (rule.flags & RULE_TRACK) != 0u && t >= rule.warmup) {
            if (state.has_best == 0u) {
                improved = true;
            } else if (a == state.best_a && b == state.best_b) {
                improved = false; // the same value exactly: a gain of 0 never beats a delta >= 0
            } else {
                let gain = select(state.best - value, value - state.best, hib);
                var needed = rule.delta;
                if ((rule.flags & RULE_RELATIVE) != 0u) {
                    needed = rule.delta * abs(state.best);
                }
                let scale = max(max(abs(value), abs(state.best)), needed);
                if (near(gain, needed, scale)) {
                    pause = true;
                } else {
                    improved = gain > needed;
                }
            }
            if (!pause) {
                if (improved) {
                    state.has_best = 1u;
                    state.best = value;
                    state.best_a = a;
                    state.best_b = b;
                    state.wait = 0u;
                    flags |= ENTRY_IMPROVED;
                } else {
                    state.wait += 1u;
                    if ((rule.flags & RULE_PATIENCE) != 0u && state.wait >= rule.patience) {
                        pause = true;
                    }
                }
            }
        }
    }
    if (t >= rule.max_iter) {
        pause = true;
    }
    if (pause) {
        flags |= ENTRY_PAUSED;
        state.paused = 1u;
    }
    history[slot].t = t;
    history[slot].flags = flags;
    state.slot = slot + 1u;
    state.t = t + 1u;
    return flags;
}
