// gather_rows.wgsl: one mini-batch's rows and labels, copied out of the training rows into
// the batch's own buffers before its forward and backward passes (src/backend/gpu/
// minibatch.rs records it once per update).
//
// Bindings (group 0):
//   0  src_x    storage, read        f32[N·F]   the training rows, row-major (the first N·F
//                                               words of the training set's activations)
//   1  src_y    storage, read        f32[N]     their labels (class indices)
//   2  index    storage, read        u32[..]    the row indices of a submission's batches,
//                                               one batch after another
//   3  batches  storage, read        vec2<u32>[MAX_CHUNK + 1]  entry j: (first index, rows)
//                                               of the submission's update j
//   4  stop     storage, read        u32[..]    the update counter: word STATE_SLOT is j
//                                               (advance_slot.wgsl counts the updates)
//   5  dst_x    storage, read_write  f32[B·F..] the batch's rows (the first rows·F words of
//                                               the batch set's activations)
//   6  dst_y    storage, read_write  f32[B]     their labels
//   7  cfg      uniform              Gather
// Workgroup: WORKGROUP (64, from the prelude) invocations along x; grid (min(G, max_x),
// ceil(G / max_x)) for G = ceil(B·F / WORKGROUP). Invocation i copies element i of the batch,
// row i / F and column i % F (consecutive invocations read consecutive words of one row),
// and row i's label when i < rows; invocations past rows·F do nothing.

struct Gather {
    features: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> src_x: array<f32>;
@group(0) @binding(1) var<storage, read> src_y: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> batches: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> stop: array<u32>;
@group(0) @binding(5) var<storage, read_write> dst_x: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst_y: array<f32>;
@group(0) @binding(7) var<uniform> cfg: Gather;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WORKGROUP;
    let b = batches[min(stop[STATE_SLOT], arrayLength(&batches) - 1u)];
    let f = cfg.features;
    if (i < b.y) {
        dst_y[i] = src_y[index[b.x + i]];
    }
    if (i >= b.y * f) {
        return;
    }
    let r = i / f;
    let c = i - r * f;
    dst_x[i] = src_x[index[b.x + r] * f + c];
}
