// stop_rule_core.wgsl: the device stop rule as a function, judge(), shared (by concatenation,
// see src/backend/gpu.rs) by stop_rule.wgsl and lr_loop.wgsl. The host's rule engine
// (src/stop.rs, f64) stays the judge: judge() only has to be conservative. It pauses the chunk
// at any iteration where a rule fires OR where f32 rounding could make its verdict differ from
// the host's (a value within a relative 4e-6 of a bound); the host then replays the chunk's
// history through its engine and either stops there or resumes. So it never runs past an
// iteration where the host would stop.
//
// Bindings it declares (group 0), which every shader that includes it must bind:
//   1  state    storage, read_write  State    carried across iterations and chunks
//   2  history  storage, read_write  Entry[K] one entry per iteration of the chunk
//   4  rule     uniform              Rule

struct Rule {
    metric: u32,        // 0 accuracy, 1 precision, 2 recall, 3 f1, 4 iou, 5 loss
    monitor_val: u32,   // 1: watch the validation rows (result words 8..13)
    has_val: u32,
    flags: u32,         // bit 0 threshold, 1 divergence, 2 patience, 3 track the best, 4 relative delta
    threshold: f32,
    divergence: f32,
    delta: f32,         // absolute D, or the fraction R with bit 4
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
    result: array<u32, 16>,
    t: u32,
    flags: u32,         // bit 0 checked, 1 improved (and copied), 2 paused here
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

// Judges iteration state.t from its evaluation `res` (training rows' loss and counts at
// 0..5, validation rows' at 8..13): writes its history entry, advances the state, and returns
// the entry's flags: bit 0 checked, 1 improved (the caller keeps these weights as the best
// when rule.copy_groups != 0), 2 paused (the rest of the chunk must not run). Call it only
// while state.paused == 0.
fn judge(res: array<u32, 16>) -> u32 {
    let t = state.t;
    let slot = state.slot;
    for (var i = 0u; i < 16u; i += 1u) {
        history[slot].result[i] = res[i];
    }
    let hib = rule.metric != 5u;
    var flags = 0u;
    var pause = false;
    var improved = false;
    let finite = is_finite(res[0]) && (rule.has_val == 0u || is_finite(res[8]));
    if (!finite) {
        pause = true;
    } else if (t % rule.eval_every == 0u || t >= rule.max_iter) {
        flags |= 1u;
        let o = select(0u, 8u, rule.monitor_val != 0u);
        let tp = res[o + 1u];
        let fp = res[o + 2u];
        let fn_ = res[o + 3u];
        let tn = res[o + 4u];
        var a = 0u;
        var b = 0u;
        switch rule.metric {
            case 0u: { a = tp + tn; b = tp + fp + fn_ + tn; }
            case 1u: { a = tp; b = tp + fp; }
            case 2u: { a = tp; b = tp + fn_; }
            case 3u: { a = 2u * tp; b = 2u * tp + fp + fn_; }
            case 4u: { a = tp; b = tp + fp + fn_; }
            default: { a = res[o]; b = tp + fp + fn_ + tn; }
        }
        var value = ratio(a, b);
        if (rule.metric == 5u) {
            value = bitcast<f32>(a) / f32(b);
        }
        state.cand = value;
        state.cand_a = a;
        state.cand_b = b;
        if ((rule.flags & 1u) != 0u) {
            let meets = select(value <= rule.threshold, value >= rule.threshold, hib);
            pause = pause || meets || near(value, rule.threshold, max(abs(value), abs(rule.threshold)));
        }
        if ((rule.flags & 2u) != 0u) {
            let worse = select(value > rule.divergence, value < rule.divergence, hib);
            pause = pause || worse || near(value, rule.divergence, max(abs(value), abs(rule.divergence)));
        }
        if (!pause && (rule.flags & 8u) != 0u && t >= rule.warmup) {
            if (state.has_best == 0u) {
                improved = true;
            } else if (a == state.best_a && b == state.best_b) {
                improved = false; // the same value exactly: a gain of 0 never beats a delta >= 0
            } else {
                let gain = select(state.best - value, value - state.best, hib);
                var needed = rule.delta;
                if ((rule.flags & 16u) != 0u) {
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
                    flags |= 2u;
                } else {
                    state.wait += 1u;
                    if ((rule.flags & 4u) != 0u && state.wait >= rule.patience) {
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
        flags |= 4u;
        state.paused = 1u;
    }
    history[slot].t = t;
    history[slot].flags = flags;
    state.slot = slot + 1u;
    state.t = t + 1u;
    return flags;
}
