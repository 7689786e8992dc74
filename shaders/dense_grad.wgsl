// dense_grad.wgsl: one dense layer's gradient over one segment of the training rows, in
// parts of `chunk` rows: G[o, i] = Σ_r D[r, o]·A[r, i] (A[r, in_dim] = 1 gives the bias).
//
// Bindings (group 0):
//   0  acts      storage, read        f32[..] layer input A [rows, in_dim] at in_off
//   1  deltas    storage, read        f32[..] ∂L/∂Z D [rows, out_dim] at d_off
//   2  partials  storage, read_write  f32[..] part p's gradient of parameter q written at
//                                             part_off + p·stride + q (W [o, i] at
//                                             w_off + o·in_dim + i, b [o] at b_off + o);
//                                             reduce_update.wgsl adds the parts
//   3  cfg       uniform              GradCfg
// Workgroup: 64 invocations as 8 × 8 (GT × GT, GT = GRAD_TILE / 4 from the prelude); the
// workgroup owns a GRAD_TILE × GRAD_TILE (32 × 32) tile of (o, i) and one part, invocation
// (ty, tx) = (k / 8, k % 8) a 4 × 4 block: o = o0 + 4·ty + 0..3,
// i = i0 + 4·tx + 0..3. Workgroup w = x + y·nwg.x (grid (min(G, max_x), ceil(G / max_x)) for
// G = tiles·parts) has tile w % tiles and part w / tiles. Each invocation adds its rows in
// order, one row at a time (deterministic, no barriers, no atomics).

struct GradCfg {
    rows: u32,
    in_dim: u32,
    out_dim: u32,
    in_off: u32,
    d_off: u32,
    w_off: u32,
    b_off: u32,
    part_off: u32,
    stride: u32,
    chunk: u32,
    tiles_i: u32,
    tiles: u32,
}

const GT: u32 = GRAD_TILE / 4u;

@group(0) @binding(0) var<storage, read> acts: array<f32>;
@group(0) @binding(1) var<storage, read> deltas: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> cfg: GradCfg;

@compute @workgroup_size(GT * GT)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) k: u32) {
    let w = wid.x + wid.y * nwg.x;
    let part = w / cfg.tiles;
    let tile = w % cfg.tiles;
    let r_begin = part * cfg.chunk;
    if (r_begin >= cfg.rows) {
        return;
    }
    let r_end = min(r_begin + cfg.chunk, cfg.rows);
    let o0 = (tile / cfg.tiles_i) * GRAD_TILE + (k / GT) * 4u;
    let i0 = (tile % cfg.tiles_i) * GRAD_TILE + (k % GT) * 4u;
    if (o0 >= cfg.out_dim || i0 > cfg.in_dim) {
        return;
    }
    var acc: array<vec4<f32>, 4>;
    for (var j = 0u; j < 4u; j += 1u) {
        acc[j] = vec4<f32>(0.0);
    }
    for (var r = r_begin; r < r_end; r += 1u) {
        var d = vec4<f32>(0.0);
        var a = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j += 1u) {
            if (o0 + j < cfg.out_dim) {
                d[j] = deltas[cfg.d_off + r * cfg.out_dim + o0 + j];
            }
            let i = i0 + j;
            if (i < cfg.in_dim) {
                a[j] = acts[cfg.in_off + r * cfg.in_dim + i];
            } else if (i == cfg.in_dim) {
                a[j] = 1.0;
            }
        }
        for (var j = 0u; j < 4u; j += 1u) {
            acc[j] += d[j] * a;
        }
    }
    let base = cfg.part_off + part * cfg.stride;
    for (var j = 0u; j < 4u; j += 1u) {
        let o = o0 + j;
        for (var l = 0u; l < 4u; l += 1u) {
            let i = i0 + l;
            if (o < cfg.out_dim && i <= cfg.in_dim) {
                var q = cfg.b_off + o;
                if (i < cfg.in_dim) {
                    q = cfg.w_off + o * cfg.in_dim + i;
                }
                partials[base + q] = acc[j][l];
            }
        }
    }
}
