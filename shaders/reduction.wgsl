// reduction.wgsl: the layout of an evaluation's record (its loss sums and K × K confusion
// counts), shared (by concatenation, see src/backend/gpu/kernels.rs) by reduce_stats.wgsl and
// stop_rule_core.wgsl (with its callers stop_rule.wgsl and lr_loop.wgsl). No bindings.
//
// A record is u32 words: RecordHead (HEAD_WORDS, from the prelude), then the training rows'
// counts [K, K] row-major ([true][predicted]), then the validation rows' (zeros without
// validation rows). K = 2 for a sigmoid head (class 1 iff z >= 0).

struct RecordHead {
    train_loss_bits: u32,   // Σ loss of the training rows, f32 bits
    val_loss_bits: u32,     // of the validation rows
    classes: u32,           // K
    pad0: u32,
}

// Word of set s's count [t][p] in a record of K classes.
fn record_cell(k: u32, s: u32, t: u32, p: u32) -> u32 {
    return HEAD_WORDS + (s * k + t) * k + p;
}

// Words of a record of K classes.
fn record_len(k: u32) -> u32 {
    return HEAD_WORDS + 2u * k * k;
}
