// Encode: tokens (L) → flat digits (ℓL), slot i·ℓ + j = digit j of token i (most significant
// first). Tokens must be < V (checked on the host).
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs.

@compute @workgroup_size({{ workgroup }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = element_index(gid, nwg);
    let l = params[P_DIGITS];
    if (s >= params[P_L] * l) {
        return;
    }
    out[s] = {{ int }}(digit_of(u32(tokens[s / l]), s % l));
}
