// advance_slot.wgsl: counts one mini-batch update of a submission, so that the next update's
// gather_rows.wgsl and reduce_update.wgsl read the next entries of their tables.
//
// Bindings (group 0):
//   0  stop  storage, read_write  u32[..]  the update counter (apart from the stop rule's
//                                          state, which counts a chunk's checks); word
//                                          STATE_SLOT is the update's entry j, set to 0 by
//                                          the host before the submission
// Workgroup: 1 invocation, grid (1, 1, 1): stop[STATE_SLOT] += 1.

@group(0) @binding(0) var<storage, read_write> stop: array<u32>;

@compute @workgroup_size(1)
fn main() {
    stop[STATE_SLOT] = stop[STATE_SLOT] + 1u;
}
