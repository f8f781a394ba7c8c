// Digit scores for the adaptive reveal policies: for every masked sub-token slot s = i·ℓ + j,
// the digit marginal q_d = Σ p_v over the kept candidates v of position i whose digit j is d,
// where p is the distribution the draw uses (consistent tokens, scaled logits, optional
// truncation cutoff, normalised over what is kept). Writes the confidence max_d q_d and the
// entropy −Σ_d q_d ln q_d (nats). A revealed slot, or a slot of a position with no kept
// candidate, gets −1 in both (the host knows which slots are masked and reports the latter).
//
// One workgroup per position: pass 1 takes the maximum kept score, pass 2 the normaliser;
// then, digit by digit, each thread sums the codes of its digit values d (the codes whose
// digit j is d and whose other digits range over the free ones) and the workgroup reduces
// the maximum and the entropy terms. The digit loop runs for every j (a revealed one does no
// work), so every barrier stays in uniform control flow.
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs; the reductions are
// reduce.wgsl's.

const WG: u32 = {{ workgroup }}u;
var<workgroup> digits_uniform: u32;

// The scaled logit of code v at this position if it is a kept candidate; `ok` false otherwise.
struct Kept {
    score: f32,
    ok: bool,
}

fn kept(position: u32, v: u32) -> Kept {
    if (v >= params[P_VOCAB]) {
        return Kept(0.0, false);
    }
    let s = logits[position * params[P_WIDTH] + v] * bitcast<f32>(params[P_INV_TEMP]);
    if ((params[P_FLAGS] & FLAG_CUTOFF) != 0u) {
        let c_score = cut_score[position];
        if (!(s > c_score || (s == c_score && v <= u32(cut_token[position])))) {
            return Kept(0.0, false);
        }
    }
    return Kept(s, true);
}

// Whether digit j of position i ranges freely in the codes scored (masked under the carry-over
// filter; every digit without it).
fn is_free(position: u32, j: u32) -> bool {
    return (params[P_FLAGS] & FLAG_CARRY_OVER) == 0u || u32(state[position * params[P_DIGITS] + j]) == params[P_BASE];
}

// The number of codes whose digit `fixed_j` is given: b^(free digits other than fixed_j),
// saturated (more codes than the vocabulary are never needed).
fn codes_with_digit(position: u32, fixed_j: u32) -> u32 {
    var count = 1u;
    for (var j = 0u; j < params[P_DIGITS]; j = j + 1u) {
        if (j != fixed_j && is_free(position, j)) {
            count = min(count * params[P_BASE], 0x7fffffffu);
        }
    }
    return count;
}

// The n-th code whose digit `fixed_j` is d: the known digits in place, the other free digits
// the mixed-radix digits of n.
fn code_with_digit(position: u32, fixed_j: u32, d: u32, n: u32) -> u32 {
    let l = params[P_DIGITS];
    let b = params[P_BASE];
    var code = d * power(fixed_j);
    var rest = n;
    for (var jj = 0u; jj < l; jj = jj + 1u) {
        let j = l - 1u - jj;
        if (j == fixed_j) {
            continue;
        }
        if (is_free(position, j)) {
            code = code + (rest % b) * power(j);
            rest = rest / b;
        } else {
            code = code + u32(state[position * l + j]) * power(j);
        }
    }
    return code;
}

@compute @workgroup_size({{ workgroup }}, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = workgroup_position(wid, nwg);
    // No early return: the barriers below need uniform control flow.
    let in_range = i < params[P_L];
    let position = min(i, params[P_L] - 1u);
    let pattern = pattern_of(position);
    let b = params[P_BASE];
    if (lid == 0u) {
        digits_uniform = params[P_DIGITS];
    }
    let l = workgroupUniformLoad(&digits_uniform);

    // Pass 1: the maximum kept score (the lowest finite f32, as bits: see normaliser.wgsl).
    let lowest = bitcast<f32>(0xff7fffffu);
    var best = lowest;
    for (var n = lid; n < pattern.count; n = n + WG) {
        let k = kept(position, code_of(position, pattern, n));
        if (k.ok) {
            best = max(best, k.score);
        }
    }
    let top = workgroup_max(lid, best);

    // Pass 2: Σ exp(s − max) over the kept candidates.
    var sum = 0.0;
    for (var n = lid; n < pattern.count; n = n + WG) {
        let k = kept(position, code_of(position, pattern, n));
        if (k.ok) {
            sum = sum + exp(k.score - top);
        }
    }
    let total = workgroup_sum(lid, sum);

    // The digit marginals, one masked digit at a time.
    for (var j = 0u; j < l; j = j + 1u) {
        let masked = u32(state[position * l + j]) == b;
        var confidence = 0.0;
        var entropy = 0.0;
        if (masked && total > 0.0) {
            let per_digit = codes_with_digit(position, j);
            for (var d = lid; d < b; d = d + WG) {
                var q = 0.0;
                for (var n = 0u; n < per_digit; n = n + 1u) {
                    let k = kept(position, code_with_digit(position, j, d, n));
                    if (k.ok) {
                        q = q + exp(k.score - top);
                    }
                }
                q = q / total;
                confidence = max(confidence, q);
                if (q > 0.0) {
                    entropy = entropy - q * log(q);
                }
            }
        }
        let best_digit = workgroup_max(lid, confidence);
        let digit_entropy = workgroup_sum(lid, entropy);
        if (lid == 0u && in_range) {
            if (masked && total > 0.0) {
                out_confidence[i * l + j] = best_digit;
                out_entropy[i * l + j] = digit_entropy;
            } else {
                out_confidence[i * l + j] = -1.0;
                out_entropy[i * l + j] = -1.0;
            }
        }
    }
}
