// copy_params.wgsl: keeps a copy of the current weights as the best, on the device.
//
// Bindings (group 0):
//   0  src  storage, read        f32[P]  the current weights
//   1  dst  storage, read_write  f32[P]  the best weights
// Workgroup: WORKGROUP (64, from the prelude src/backend/gpu/kernels.rs writes) invocations
// along x; grid (ceil(P / WORKGROUP), 1, 1), dispatched indirectly so that
// stop_rule.wgsl can make it a no-op when the iteration did not improve. Invocation i copies
// element i.

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < arrayLength(&dst)) {
        dst[i] = src[i];
    }
}
