// reduce_update.wgsl: the gradient-descent step, from the partial gradients of the training
// rows' parts (blocks or segments) written by lr_pass.wgsl or dense_grad.wgsl.
//
// Bindings (group 0):
//   0  cur       storage, read        f32[P]   weights before the step
//   1  next      storage, read_write  f32[P]   weights after the step
//   2  partials  storage, read        u32[..]  part j's gradient of parameter p at j·stride + p
//                                              (f32 bits)
//   3  cfg       uniform              Update
// Workgroup: WORKGROUP (64, from the prelude) invocations along x; grid (min(G, max_x),
// ceil(G / max_x)) for G = ceil(P / WORKGROUP), parameter p = x + y·WORKGROUP·nwg.x. Invocation p
// adds its parameter's partials over the parts in order (deterministic), then
// next[p] = apply_update(p, cur[p], Σ, lr) (update.wgsl, which this file is appended to).

struct Update {
    params: u32,
    parts: u32,
    stride: u32,
    lr: f32,
}

@group(0) @binding(0) var<storage, read> cur: array<f32>;
@group(0) @binding(1) var<storage, read_write> next: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<u32>;
@group(0) @binding(3) var<uniform> cfg: Update;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = gid.x + gid.y * nwg.x * WORKGROUP;
    if (p >= cfg.params) {
        return;
    }
    var g = 0.0;
    for (var j = 0u; j < cfg.parts; j += 1u) {
        g += bitcast<f32>(partials[j * cfg.stride + p]);
    }
    next[p] = apply_update(p, cur[p], g, cfg.lr);
}
