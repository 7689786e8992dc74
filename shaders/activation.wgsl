// activation.wgsl: the hidden activations and their derivatives, shared (by concatenation,
// see src/backend/gpu/kernels.rs) by dense_forward.wgsl, dense_backprop.wgsl and mlp_pass.wgsl.
// act: 0 identity (the output logit), 1 relu, 2 tanh (of z clamped to ±15), 3 sigmoid. The
// derivative is taken from the output a: relu (a > 0), tanh 1 − a², sigmoid a(1 − a).

fn activate(z: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(z, 0.0); }
        case 2u: { return tanh(clamp(z, -15.0, 15.0)); }
        case 3u: { return 1.0 / (1.0 + exp(-z)); }
        default: { return z; }
    }
}

fn activate_grad(a: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return select(0.0, 1.0, a > 0.0); }
        case 2u: { return 1.0 - a * a; }
        case 3u: { return a * (1.0 - a); }
        default: { return 1.0; }
    }
}
