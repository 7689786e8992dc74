// dense_forward.wgsl: the forward pass of one dense layer.
//
// Bindings (group 0):
//   0  params  storage, read        f32[P]  all weights and biases, flat; this layer's
//                                           W [out_dim, in_dim] at w_off, b [out_dim] at b_off
//   1  acts    storage, read_write  f32[..] layer input [rows, in_dim] at in_off (read),
//                                           layer output [rows, out_dim] at out_off (written)
//   2  cfg     uniform              Dense
// Workgroup: 64 invocations along x. The grid is (min(G, max_x), ceil(G / max_x)) for
// G = ceil(rows·out_dim / 64) workgroups, so invocation (x, y) has index x + y·64·nwg.x.
// One invocation computes one output element (r, o):
//   z = b[o] + Σ_i in[r, i]·W[o, i];  out[r, o] = act(z)
// act: 0 identity (the output logit), 1 relu, 2 tanh (of z clamped to ±15), 3 sigmoid.

struct Dense {
    rows: u32,
    in_dim: u32,
    out_dim: u32,
    in_off: u32,
    out_off: u32,
    w_off: u32,
    b_off: u32,
    act: u32,
}

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<uniform> cfg: Dense;

fn activate(z: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(z, 0.0); }
        case 2u: { return tanh(clamp(z, -15.0, 15.0)); }
        case 3u: { return 1.0 / (1.0 + exp(-z)); }
        default: { return z; }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= cfg.rows * cfg.out_dim) {
        return;
    }
    let r = idx / cfg.out_dim;
    let o = idx % cfg.out_dim;
    let a0 = cfg.in_off + r * cfg.in_dim;
    let w0 = cfg.w_off + o * cfg.in_dim;
    var z = params[cfg.b_off + o];
    for (var i = 0u; i < cfg.in_dim; i += 1u) {
        z += acts[a0 + i] * params[w0 + i];
    }
    acts[cfg.out_off + idx] = activate(z, cfg.act);
}
