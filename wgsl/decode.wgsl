// Decode: flat digits (ℓL) → tokens (L). A token with a masked digit, a digit ≥ b or a code
// ≥ V (an invalid code, possible only without the carry-over filter) decodes to −1.
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs.

@compute @workgroup_size({{ workgroup }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element_index(gid, nwg);
    if (i >= params[P_L]) {
        return;
    }
    let l = params[P_DIGITS];
    let b = params[P_BASE];
    var code = 0u;
    var valid = true;
    for (var j = 0u; j < l; j = j + 1u) {
        let d = u32(state[i * l + j]);
        if (d >= b) {
            valid = false;
        } else {
            code = code + d * power(j);
        }
    }
    if (valid && code < params[P_VOCAB]) {
        out[i] = {{ int }}(code);
    } else {
        out[i] = {{ int }}(-1);
    }
}
