// copy_params.wgsl: keeps a copy of the current weights and of the optimizer state that goes
// with them as the best, on the device.
//
// Bindings (group 0):
//   0  src     storage, read        f32[P]  the current weights
//   1  dst     storage, read_write  f32[P]  the best weights
//   2  m       storage, read        f32[P]  the optimizer's first state buffer (a dummy of 4
//                                           without one)
//   3  v       storage, read        f32[P]  its second (a dummy of 4 without one)
//   4  best_m  storage, read_write  f32[P]  m's copy (a dummy alike)
//   5  best_v  storage, read_write  f32[P]  v's copy (a dummy alike)
// Workgroup: WORKGROUP (64, from the prelude src/backend/gpu/kernels.rs writes) invocations
// along x; grid (ceil(P / WORKGROUP), 1, 1), dispatched indirectly so that
// stop_rule.wgsl can make it a no-op when the iteration did not improve. Invocation i copies
// element i of each (a dummy's 4 to its dummy copy: harmless).

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> best_m: array<f32>;
@group(0) @binding(5) var<storage, read_write> best_v: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < arrayLength(&dst)) {
        dst[i] = src[i];
    }
    if (i < arrayLength(&best_m)) {
        best_m[i] = m[i];
    }
    if (i < arrayLength(&best_v)) {
        best_v[i] = v[i];
    }
}
