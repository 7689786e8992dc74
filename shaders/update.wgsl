// update.wgsl: the one place the parameter update is written, shared (by concatenation, see
// src/backend/gpu/kernels.rs) by reduce_update.wgsl and lr_loop.wgsl. No bindings.
// apply_update(p, w, g, lr) is parameter p's weight after one step from w with the full-batch
// gradient g: plain gradient descent, w − lr·g.

fn apply_update(p: u32, w: f32, g: f32, lr: f32) -> f32 {
    return w - lr * g;
}
