// Unpack: f16 weights → f32. `packed` holds two IEEE binary16 values per u32 word, the first in
// the low half (the little-endian order of a safetensors file); `out` receives them as f32.
// `unpack2x16float` is core WGSL, so this runs where the adapter lacks `shader-f16`.
// One thread per word; the parameter block is one word: the number of values (odd counts leave
// the high half of the last word unused).
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs.

@compute @workgroup_size({{ workgroup }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = element_index(gid, nwg);
    let n = params[0];
    if (2u * w >= n) {
        return;
    }
    let pair = unpack2x16float(packed[w]);
    out[2u * w] = pair.x;
    if (2u * w + 1u < n) {
        out[2u * w + 1u] = pair.y;
    }
}
