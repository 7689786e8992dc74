// stop_rule.wgsl: the stop rules on the device, so that a chunk of iterations runs without a
// readback per iteration: judge() (stop_rule_core.wgsl, prepended to this file after
// reduction.wgsl) on the iteration's reduction, then the chunk's remaining dispatches zeroed
// on a pause.
//
// Bindings (group 0):
//   0  result   storage, read        Reduction  this iteration's evaluation (reduce_stats.wgsl)
//   1  state, 2  history: see stop_rule_core.wgsl
//   3  args     storage, read_write  DispatchArgs[n_args + 1]  indirect dispatch sizes
//                                              (x, y, z): the chunk's dispatches at 0..n_args, zeroed on a pause (the
//                                              rest of the chunk becomes no-ops); the best-weights
//                                              copy at n_args, live only when this iteration improved
//   4  rule: see stop_rule_core.wgsl
// Workgroup: a single invocation (1, 1, 1).

struct DispatchArgs {
    x: u32,
    y: u32,
    z: u32,
}

@group(0) @binding(0) var<storage, read> result: Reduction;
@group(0) @binding(3) var<storage, read_write> args: array<DispatchArgs>;

@compute @workgroup_size(1)
fn main() {
    if (state.paused != 0u) {
        return;
    }
    let flags = judge(result);
    args[rule.n_args].x = select(0u, rule.copy_groups, (flags & ENTRY_IMPROVED) != 0u);
    if ((flags & ENTRY_PAUSED) != 0u) {
        for (var i = 0u; i < rule.n_args; i += 1u) {
            args[i] = DispatchArgs(0u, 0u, 0u);
        }
    }
}
