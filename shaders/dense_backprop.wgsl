// dense_backprop.wgsl: carries ∂L/∂Z back through one dense layer and the activation below it.
//
// Bindings (group 0):
//   0  params  storage, read        f32[P]  weights before the step; W [out_dim, in_dim] at w_off
//   1  acts    storage, read        f32[..] the layer's input A_prev [rows, in_dim] at in_off
//                                           (the previous layer's activation output)
//   2  deltas  storage, read_write  f32[..] D [rows, out_dim] at d_off (read);
//                                           D_prev [rows, in_dim] at prev_d_off (written)
//   3  cfg     uniform              BackCfg
// Workgroup: WORKGROUP (64, from the prelude) invocations along x; grid as in
// dense_forward.wgsl, index x + y·WORKGROUP·nwg.x.
// One invocation computes one element (r, i):
//   D_prev[r, i] = (Σ_o D[r, o]·W[o, i]) · act'(A_prev[r, i])
// with act' from the output a (activate_grad of activation.wgsl, which this file is appended
// to).

struct BackCfg {
    rows: u32,
    in_dim: u32,
    out_dim: u32,
    in_off: u32,
    d_off: u32,
    prev_d_off: u32,
    w_off: u32,
    act: u32,
}

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read> acts: array<f32>;
@group(0) @binding(2) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(3) var<uniform> cfg: BackCfg;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WORKGROUP;
    if (idx >= cfg.rows * cfg.in_dim) {
        return;
    }
    let r = idx / cfg.in_dim;
    let i = idx % cfg.in_dim;
    var s = 0.0;
    for (var o = 0u; o < cfg.out_dim; o += 1u) {
        s += deltas[cfg.d_off + r * cfg.out_dim + o] * params[cfg.w_off + o * cfg.in_dim + i];
    }
    deltas[cfg.prev_d_off + idx] = s * activate_grad(acts[cfg.in_off + idx], cfg.act);
}
