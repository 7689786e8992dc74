// stop_rule_core.wgsl: the device stop rule as functions, class_sums() and judge(), shared (by
// concatenation after reduction.wgsl, see src/backend/gpu/kernels.rs) by stop_rule.wgsl and
// lr_loop.wgsl.
// The host's rule engine (src/stop.rs, f64) stays the judge: judge() only has to be
// conservative. It pauses the chunk at any iteration where a rule fires OR where f32 rounding
// could make its verdict differ from the host's (a value within a relative rule.tol of a bound:
// 4e-6, more for macro averages over many classes);
// the host then replays the chunk's history through its engine and either stops there or
// resumes. So it never runs past an iteration where the host would stop.
//
// Metrics come from the watched set's K × K counts: accuracy = Σ diagonal / rows (an exact
// integer ratio); with K = 2 precision, recall, F1 and IoU of class 1 (integer ratios); with
// K ≥ 3 their macro averages, the mean over the K classes of each class's score against the
// rest (f32, summed in class order), whose "same as the best" test compares the per-class
// integers (true positives and predictions; the supports are fixed by the labels).
//
// Bindings it declares (group 0), which every shader that includes it must bind:
//   1  stop     storage, read_write  StopState  carried across iterations and chunks: State,
//                                    then ints [4K]: the best's true positives [K] and
//                                    predictions [K] per class, then the last check's
//   2  history  storage, read_write  u32[..]    one entry per iteration of the chunk, each
//                                    EntryHead then the iteration's record (reduction.wgsl)
//   4  rule     uniform              Rule
// The including file defines record_at(i), word i of the iteration's record.
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
    classes: u32,       // K (2 for a sigmoid head)
    tol: f32,           // relative closeness left to the host
    pad0: u32,
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

struct StopState {
    head: State,
    ints: array<u32>,
}

struct EntryHead {
    t: u32,
    flags: u32,         // ENTRY_CHECKED, ENTRY_IMPROVED (and copied), ENTRY_PAUSED here
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(1) var<storage, read_write> stop: StopState;
@group(0) @binding(2) var<storage, read_write> history: array<u32>;
@group(0) @binding(4) var<uniform> rule: Rule;

// The watched set's per-class true positives, predictions and supports (class_sums()).
var<workgroup> cls_tp: array<u32, MAX_CLASSES>;
var<workgroup> cls_pred: array<u32, MAX_CLASSES>;
var<workgroup> cls_sup: array<u32, MAX_CLASSES>;

// Fills cls_* from the record: call from every invocation k of `lanes` (uniformly), then
// barrier before judge().
fn class_sums(k: u32, lanes: u32) {
    let kk = rule.classes;
    let s = rule.monitor_val;
    for (var c = k; c < kk; c += lanes) {
        var pred = 0u;
        var sup = 0u;
        for (var t = 0u; t < kk; t += 1u) {
            pred += record_at(record_cell(kk, s, t, c));
            sup += record_at(record_cell(kk, s, c, t));
        }
        cls_tp[c] = record_at(record_cell(kk, s, c, c));
        cls_pred[c] = pred;
        cls_sup[c] = sup;
    }
}

// The first word of history entry `slot` (its EntryHead; the record follows).
fn entry_base(slot: u32) -> u32 {
    return slot * (HEAD_WORDS + record_len(rule.classes));
}

fn is_finite(bits: u32) -> bool {
    return (bits & 0x7f800000u) != 0x7f800000u;
}

// Whether x and y are too close for f32 to order them as the host's f64 would.
fn near(x: f32, y: f32, scale: f32) -> bool {
    return abs(x - y) <= rule.tol * max(scale, 1e-30);
}

// Class c's score under rule.metric against the rest, as (numerator, denominator).
fn class_score(c: u32) -> vec2<u32> {
    let tp = cls_tp[c];
    let pred = cls_pred[c];
    let sup = cls_sup[c];
    switch rule.metric {
        case METRIC_PRECISION: { return vec2<u32>(tp, pred); }
        case METRIC_RECALL: { return vec2<u32>(tp, sup); }
        case METRIC_F1: { return vec2<u32>(2u * tp, pred + sup); }
        default: { return vec2<u32>(tp, pred + sup - tp); }
    }
}

fn ratio(a: u32, b: u32) -> f32 {
    if (b == 0u) {
        return 0.0;
    }
    return f32(a) / f32(b);
}

// Judges iteration stop.head.t from its record's loss sums and cls_* (class_sums()): writes
// its history entry's head (the caller copies the record after it), advances the state, and
// returns the entry's flags: ENTRY_CHECKED, ENTRY_IMPROVED (the caller keeps these weights as
// the best when rule.copy_groups != 0), ENTRY_PAUSED (the rest of the chunk must not run).
// Call it from one invocation, only while stop.head.paused == 0.
fn judge(train_loss_bits: u32, val_loss_bits: u32) -> u32 {
    let t = stop.head.t;
    let slot = stop.head.slot;
    let kk = rule.classes;
    let hib = rule.metric != METRIC_LOSS;
    let macro_avg = kk > 2u && hib && rule.metric != METRIC_ACCURACY;
    var flags = 0u;
    var pause = false;
    var improved = false;
    let finite = is_finite(train_loss_bits)
        && (rule.has_val == 0u || is_finite(val_loss_bits));
    if (!finite) {
        pause = true;
    } else if (t % rule.eval_every == 0u || t >= rule.max_iter) {
        flags |= ENTRY_CHECKED;
        var correct = 0u;
        var rows = 0u;
        for (var c = 0u; c < kk; c += 1u) {
            correct += cls_tp[c];
            rows += cls_sup[c];
        }
        let tp = cls_tp[1];
        let fp = cls_pred[1] - tp;
        let fn_ = cls_sup[1] - tp;
        var a = 0u;
        var b = 0u;
        var value = 0.0;
        if (macro_avg) {
            var sum = 0.0;
            for (var c = 0u; c < kk; c += 1u) {
                let q = class_score(c);
                sum += ratio(q.x, q.y);
            }
            value = sum / f32(kk);
        } else {
            switch rule.metric {
                case METRIC_ACCURACY: { a = correct; b = rows; }
                case METRIC_PRECISION: { a = tp; b = tp + fp; }
                case METRIC_RECALL: { a = tp; b = tp + fn_; }
                case METRIC_F1: { a = 2u * tp; b = 2u * tp + fp + fn_; }
                case METRIC_IOU: { a = tp; b = tp + fp + fn_; }
                default: { a = select(train_loss_bits, val_loss_bits, rule.monitor_val != 0u); b = rows; }
            }
            value = ratio(a, b);
            if (rule.metric == METRIC_LOSS) {
                value = bitcast<f32>(a) / f32(b);
            }
        }
        stop.head.cand = value;
        stop.head.cand_a = a;
        stop.head.cand_b = b;
        var same_ints = true;
        if (macro_avg) {
            for (var c = 0u; c < kk; c += 1u) {
                stop.ints[2u * kk + c] = cls_tp[c];
                stop.ints[3u * kk + c] = cls_pred[c];
                same_ints = same_ints && stop.ints[c] == cls_tp[c]
                    && stop.ints[kk + c] == cls_pred[c];
            }
        }
        if ((rule.flags & RULE_THRESHOLD) != 0u) {
            let meets = select(value <= rule.threshold, value >= rule.threshold, hib);
            pause = pause || meets || near(value, rule.threshold, max(abs(value), abs(rule.threshold)));
        }
        if ((rule.flags & RULE_DIVERGENCE) != 0u) {
            let worse = select(value > rule.divergence, value < rule.divergence, hib);
            pause = pause || worse || near(value, rule.divergence, max(abs(value), abs(rule.divergence)));
        }
        if (!pause && (rule.flags & RULE_TRACK) != 0u && t >= rule.warmup) {
            if (stop.head.has_best == 0u) {
                improved = true;
            } else if (a == stop.head.best_a && b == stop.head.best_b && same_ints) {
                improved = false; // the same value exactly: a gain of 0 never beats a delta >= 0
            } else {
                let gain = select(stop.head.best - value, value - stop.head.best, hib);
                var needed = rule.delta;
                if ((rule.flags & RULE_RELATIVE) != 0u) {
                    needed = rule.delta * abs(stop.head.best);
                }
                let scale = max(max(abs(value), abs(stop.head.best)), needed);
                if (near(gain, needed, scale)) {
                    pause = true;
                } else {
                    improved = gain > needed;
                }
            }
            if (!pause) {
                if (improved) {
                    stop.head.has_best = 1u;
                    stop.head.best = value;
                    stop.head.best_a = a;
                    stop.head.best_b = b;
                    if (macro_avg) {
                        for (var c = 0u; c < kk; c += 1u) {
                            stop.ints[c] = cls_tp[c];
                            stop.ints[kk + c] = cls_pred[c];
                        }
                    }
                    stop.head.wait = 0u;
                    flags |= ENTRY_IMPROVED;
                } else {
                    stop.head.wait += 1u;
                    if ((rule.flags & RULE_PATIENCE) != 0u && stop.head.wait >= rule.patience) {
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
        stop.head.paused = 1u;
    }
    let e = entry_base(slot);
    history[e] = t;
    history[e + 1u] = flags;
    stop.head.slot = slot + 1u;
    stop.head.t = t + 1u;
    return flags;
}
