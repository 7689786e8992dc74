// dense_forward.wgsl: the forward pass of one dense layer, Z = A·Wᵀ + b, out = act(Z).
//
// Bindings (group 0):
//   0  params  storage, read        f32[P]  all weights and biases, flat; this layer's
//                                           W [out_dim, in_dim] at w_off, b [out_dim] at b_off
//   1  acts    storage, read_write  f32[..] layer input A [rows, in_dim] at in_off (read),
//                                           layer output [rows, out_dim] at out_off (written)
//   2  cfg     uniform              Dense
// Workgroup: WORKGROUP (64, from the prelude) invocations as (WORKGROUP / tx) × tx, tx = 1, 2,
// 4 or 8 (narrow layers use fewer along the outputs); the workgroup owns a tile of
// 4·(WORKGROUP / tx) rows × 4·tx outputs, invocation (k / tx, k % tx) a 4 × 4 block of it. Workgroup w = x + y·nwg.x (grid (min(G, max_x),
// ceil(G / max_x)) for G = row tiles · tiles_o) has row tile w / tiles_o, output tile
// w % tiles_o.
// Per element: z = b[o] + Σ_i A[r, i]·W[o, i] in order of i; out[r, o] = act(z).
// act: 0 identity (the output logit), 1 relu, 2 tanh, 3 sigmoid (activation.wgsl, which this
// file is appended to).

struct Dense {
    rows: u32,
    in_dim: u32,
    out_dim: u32,
    in_off: u32,
    out_off: u32,
    w_off: u32,
    b_off: u32,
    act: u32,
    tiles_o: u32,
    tx: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<uniform> cfg: Dense;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) k: u32) {
    let w = wid.x + wid.y * nwg.x;
    let ty = WORKGROUP / cfg.tx;
    let r0 = (w / cfg.tiles_o) * 4u * ty + (k / cfg.tx) * 4u;
    let o0 = (w % cfg.tiles_o) * 4u * cfg.tx + (k % cfg.tx) * 4u;
    if (r0 >= cfg.rows || o0 >= cfg.out_dim) {
        return;
    }
    var bias = vec4<f32>(0.0);
    for (var l = 0u; l < 4u; l += 1u) {
        if (o0 + l < cfg.out_dim) {
            bias[l] = params[cfg.b_off + o0 + l];
        }
    }
    var acc: array<vec4<f32>, 4>;
    for (var j = 0u; j < 4u; j += 1u) {
        acc[j] = bias;
    }
    for (var i = 0u; i < cfg.in_dim; i += 1u) {
        var a = vec4<f32>(0.0);
        var wv = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j += 1u) {
            if (r0 + j < cfg.rows) {
                a[j] = acts[cfg.in_off + (r0 + j) * cfg.in_dim + i];
            }
            if (o0 + j < cfg.out_dim) {
                wv[j] = params[cfg.w_off + (o0 + j) * cfg.in_dim + i];
            }
        }
        for (var j = 0u; j < 4u; j += 1u) {
            acc[j] += a[j] * wv;
        }
    }
    for (var j = 0u; j < 4u; j += 1u) {
        let r = r0 + j;
        for (var l = 0u; l < 4u; l += 1u) {
            let o = o0 + l;
            if (r < cfg.rows && o < cfg.out_dim) {
                acts[cfg.out_off + r * cfg.out_dim + o] = activate(acc[j][l], cfg.act);
            }
        }
    }
}
