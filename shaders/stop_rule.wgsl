// stop_rule.wgsl: the stop rules on the device, so that a chunk of iterations runs without a
// readback per iteration: judge() (stop_rule_core.wgsl, prepended to this file) on the
// iteration's reduction, then the chunk's remaining dispatches zeroed on a pause.
//
// Bindings (group 0):
//   0  result   storage, read        u32[16]  this iteration's reduction (loss_metrics.wgsl):
//                                              training rows at 0..5, validation rows at 8..13
//   1  state, 2  history: see stop_rule_core.wgsl
//   3  args     storage, read_write  u32[3·(n_args + 1)]  indirect dispatch sizes: the chunk's
//                                              dispatches at 0..n_args, zeroed on a pause (the
//                                              rest of the chunk becomes no-ops); the best-weights
//                                              copy at n_args, live only when this iteration improved
//   4  rule: see stop_rule_core.wgsl
// Workgroup: a single invocation (1, 1, 1).

@group(0) @binding(0) var<storage, read> result: array<u32, 16>;
@group(0) @binding(3) var<storage, read_write> args: array<u32>;

@compute @workgroup_size(1)
fn main() {
    if (state.paused != 0u) {
        return;
    }
    let flags = judge(result);
    args[3u * rule.n_args] = select(0u, rule.copy_groups, (flags & 2u) != 0u);
    if ((flags & 4u) != 0u) {
        for (var i = 0u; i < 3u * rule.n_args; i += 1u) {
            args[i] = 0u;
        }
    }
}
