// dense_grad.wgsl: one dense layer's gradient over one segment of the training rows.
//
// Bindings (group 0):
//   0  acts      storage, read        f32[..] layer input [rows, in_dim] at in_off
//   1  deltas    storage, read        f32[..] ∂L/∂Z [rows, out_dim] at d_off
//   2  partials  storage, read_write  f32[..] the segment's gradient of parameter q written at
//                                             part_off + q (reduce_update.wgsl adds segments)
//   3  cfg       uniform              GradCfg
// Workgroup: 64 invocations; one workgroup per parameter, out_dim·(in_dim + 1) of them, on a
// grid (min(G, max_x), ceil(G / max_x)). Parameter p = x + y·nwg.x: o = p / (in_dim + 1),
// i = p % (in_dim + 1), where i = in_dim is the bias b[o], else W[o, i].
// Invocation k sums D[r, o]·in[r, i] (in = 1 for the bias) over rows k, k+64, ... in order;
// a fixed tree adds the 64 partial sums (deterministic).

struct GradCfg {
    rows: u32,
    in_dim: u32,
    out_dim: u32,
    in_off: u32,
    d_off: u32,
    w_off: u32,
    b_off: u32,
    part_off: u32,
}

@group(0) @binding(0) var<storage, read> acts: array<f32>;
@group(0) @binding(1) var<storage, read> deltas: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> cfg: GradCfg;

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) k: u32) {
    let p = wid.x + wid.y * nwg.x;
    // p is the same for the whole workgroup, so this exit keeps the barriers uniform.
    if (p >= cfg.out_dim * (cfg.in_dim + 1u)) {
        return;
    }
    let o = p / (cfg.in_dim + 1u);
    let i = p % (cfg.in_dim + 1u);
    var s = 0.0;
    for (var r = k; r < cfg.rows; r += 64u) {
        var a = 1.0;
        if (i < cfg.in_dim) {
            a = acts[cfg.in_off + r * cfg.in_dim + i];
        }
        s += deltas[cfg.d_off + r * cfg.out_dim + o] * a;
    }
    part[k] = s;
    workgroupBarrier();
    for (var h = 32u; h > 0u; h >>= 1u) {
        if (k < h) {
            part[k] += part[k + h];
        }
        workgroupBarrier();
    }
    if (k == 0u) {
        var idx = cfg.b_off + o;
        if (i < cfg.in_dim) {
            idx = cfg.w_off + o * cfg.in_dim + i;
        }
        partials[cfg.part_off + idx] = part[0];
    }
}
