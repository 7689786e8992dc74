// stop_rule.wgsl: the stop rules on the device, so that a chunk of iterations runs without a
// readback per iteration: class_sums() and judge() (stop_rule_core.wgsl, prepended to this
// file after reduction.wgsl) on the iteration's record, which is copied into its history
// entry, then the chunk's remaining dispatches zeroed on a pause.
//
// Bindings (group 0):
//   0  result   storage, read        u32[..]  this iteration's record (reduction.wgsl),
//                                             written by reduce_stats.wgsl
//   1  stop, 2  history: see stop_rule_core.wgsl
//   3  args     storage, read_write  DispatchArgs[n_args + 1]  indirect dispatch sizes
//                                             (x, y, z): the chunk's dispatches at 0..n_args,
//                                             zeroed on a pause (the rest of the chunk becomes
//                                             no-ops); the best-weights copy at n_args, live
//                                             only when this iteration improved
//   4  rule: see stop_rule_core.wgsl
// Workgroup: one of STOP_WORKGROUP (64, from the prelude) invocations: invocation k sums the
// counts of classes k, k+64, ... and copies words k, k+64, ... of the record; invocation 0
// judges.

struct DispatchArgs {
    x: u32,
    y: u32,
    z: u32,
}

@group(0) @binding(0) var<storage, read> result: array<u32>;
@group(0) @binding(3) var<storage, read_write> args: array<DispatchArgs>;

var<workgroup> running: u32;
var<workgroup> slot_now: u32;

fn record_at(i: u32) -> u32 {
    return result[i];
}

@compute @workgroup_size(STOP_WORKGROUP)
fn main(@builtin(local_invocation_index) k: u32) {
    if (k == 0u) {
        running = select(0u, 1u, stop.head.paused == 0u);
        slot_now = stop.head.slot;
    }
    if (workgroupUniformLoad(&running) == 0u) {
        return;
    }
    let e = entry_base(workgroupUniformLoad(&slot_now)) + HEAD_WORDS;
    for (var i = k; i < record_len(rule.classes); i += STOP_WORKGROUP) {
        history[e + i] = result[i];
    }
    class_sums(k, STOP_WORKGROUP);
    workgroupBarrier();
    if (k != 0u) {
        return;
    }
    let flags = judge(result[0], result[1]);
    args[rule.n_args].x = select(0u, rule.copy_groups, (flags & ENTRY_IMPROVED) != 0u);
    if ((flags & ENTRY_PAUSED) != 0u) {
        for (var i = 0u; i < rule.n_args; i += 1u) {
            args[i] = DispatchArgs(0u, 0u, 0u);
        }
    }
}
