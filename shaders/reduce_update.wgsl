// reduce_update.wgsl: the optimizer's step, from the partial gradients of the training rows'
// parts (blocks or segments) written by lr_pass.wgsl, mlp_pass.wgsl or dense_grad.wgsl.
//
// Bindings (group 0):
//   0  cur       storage, read        f32[P]   weights before the step
//   1  next      storage, read_write  f32[P]   weights after the step
//   2  partials  storage, read        u32[..]  part j's gradient of parameter p at j·stride + p
//                                              (f32 bits)
//   3  cfg       uniform              Update
//   4  opt       uniform              OptConsts (update.wgsl)
//   5  scalars   storage, read        StepScalars[MAX_CHUNK + 1]  entry j: the scalars of the
//                                              update before evaluation j of a chunk (entry 0
//                                              also of an update outside a chunk)
//   6  pflags    storage, read        u32[P]   bit PARAM_DECAYS: parameter p is a weight
//                                              (decayed), else a bias; bit PARAM_PRUNED: p
//                                              is pruned, held at 0
//   7  m         storage, read_write  f32[P]   the first state buffer (SGD's momentum, Adam's
//                                              exp_avg), updated in place; a dummy of 4 if
//                                              opt.buffers = 0
//   8  v         storage, read_write  f32[P]   Adam's exp_avg_sq, in place; a dummy of 4 if
//                                              opt.buffers < 2
//   9  stop      storage, read        u32[..]  at full batch the stop rule's state
//                                              (stop_rule_core.wgsl): word STATE_SLOT, the
//                                              iterations judged so far in this chunk, is the
//                                              entry of `scalars` this update reads (the host
//                                              sets it to 0 outside chunks); with mini-batches
//                                              the update counter (advance_slot.wgsl), whose
//                                              word STATE_SLOT is the submission's update j
// Workgroup: WORKGROUP (64, from the prelude) invocations along x; grid (min(G, max_x),
// ceil(G / max_x)) for G = ceil(P / WORKGROUP), parameter p = x + y·WORKGROUP·nwg.x. Invocation p
// adds its parameter's partials over the parts in order (deterministic), then
// next[p] = step_param(p, scalars[stop[STATE_SLOT]], cur[p], Σ) (update.wgsl, which this
// file is appended to: it loads m[p], v[p], steps and stores them back).

struct Update {
    params: u32,
    parts: u32,
    stride: u32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read> cur: array<f32>;
@group(0) @binding(1) var<storage, read_write> next: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<u32>;
@group(0) @binding(3) var<uniform> cfg: Update;
@group(0) @binding(4) var<uniform> opt: OptConsts;
@group(0) @binding(5) var<storage, read> scalars: array<StepScalars>;
@group(0) @binding(6) var<storage, read> pflags: array<u32>;
@group(0) @binding(7) var<storage, read_write> m_buf: array<f32>;
@group(0) @binding(8) var<storage, read_write> v_buf: array<f32>;
@group(0) @binding(9) var<storage, read> stop: array<u32>;

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
    let s = scalars[min(stop[STATE_SLOT], arrayLength(&scalars) - 1u)];
    next[p] = step_param(p, s, cur[p], g);
}
