// Encode: tokens (L) → flat digits (ℓL), slot i·ℓ + j = digit j of token i (most significant
// first). Tokens must be < V (checked on the host).
//
// Bindings: tokens (L), params, out (ℓL).

@group(0) @binding(0) var<storage, read_write> tokens: array<{{ int }}>;
@group(0) @binding(1) var<storage, read_write> params: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<{{ int }}>;

@compute @workgroup_size({{ workgroup }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = element_index(gid, nwg);
    let l = params[P_DIGITS];
    if (s >= params[P_L] * l) {
        return;
    }
    out[s] = {{ int }}(digit_of(u32(tokens[s / l]), s % l));
}
