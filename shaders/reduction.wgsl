// reduction.wgsl: the layout of an evaluation's loss and confusion counts, shared (by
// concatenation, see src/backend/gpu/kernels.rs) by reduce_stats.wgsl, stop_rule_core.wgsl
// (with its callers stop_rule.wgsl and lr_loop.wgsl). No bindings.

struct SetStats {
    loss_bits: u32,     // Σ loss, f32 bits
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

struct Reduction {
    train: SetStats,
    val: SetStats,      // zeros without validation rows
}
