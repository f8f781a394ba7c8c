// Consistency filter + normaliser: for each position i, over the tokens consistent with its
// revealed digits, the maximum scaled logit, log Σ exp(scaled logit) and the number of
// consistent tokens. One workgroup per position; no (L × V) mask is built.
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs; the reductions are
// reduce.wgsl's.

const WG: u32 = {{ workgroup }}u;

@compute @workgroup_size({{ workgroup }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = workgroup_position(wid, nwg);
    let in_range = i < params[P_L];
    let position = min(i, params[P_L] - 1u);
    let pattern = pattern_of(position);
    let vocab = params[P_VOCAB];
    let inv_t = bitcast<f32>(params[P_INV_TEMP]);
    let row = position * params[P_WIDTH];

    // Pass 1: maximum and count.
    // The lowest finite f32, written as bits: the decimal literal -3.4028235e38 lies just
    // outside f32 before rounding, which naga accepts and Tint (Chrome) rejects.
    var best = bitcast<f32>(0xff7fffffu);
    var count = 0u;
    for (var n = lid; n < pattern.count; n = n + WG) {
        let v = code_of(position, pattern, n);
        if (v < vocab) {
            best = max(best, logits[row + v] * inv_t);
            count = count + 1u;
        }
    }
    let top = workgroup_max(lid, best);
    // Summed in f32: exact for counts below 2^24 (vocabularies up to 16.7 M tokens).
    let total = u32(workgroup_sum(lid, f32(count)));

    // Pass 2: Σ exp(s − max).
    var sum = 0.0;
    for (var n = lid; n < pattern.count; n = n + WG) {
        let v = code_of(position, pattern, n);
        if (v < vocab) {
            sum = sum + exp(logits[row + v] * inv_t - top);
        }
    }
    let normaliser = workgroup_sum(lid, sum);
    if (lid == 0u && in_range) {
        out_max[i] = top;
        out_lse[i] = top + log(normaliser);
        out_count[i] = {{ int }}(total);
    }
}
