// Categorical draw by Gumbel-max over each position's consistent tokens:
// x0_i = argmax_v (logit_v / temperature + G(seed, step, i, v)), ties to the lowest id,
// with G = −ln(−ln u) from the counter-based stream (index = token id), keyed on the row's
// sequence position from `key_positions` (the logits may hold only some positions' rows).
// Without the noise flag it is the plain argmax (MDLM's final rule). With the cutoff flag, only
// tokens inside the position's truncation prefix (score > c, or score = c and id ≤ c's id)
// compete.
// Positions whose `draw_mask` entry is 0 are skipped and get −1; so does a position with no
// candidate (the host reports it as an error).
// Each thread walks 4 consecutive codes at a time, so one Threefry block serves 4 tokens.
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs.

const WG: u32 = {{ workgroup }}u;
const NONE: u32 = 0xffffffffu;
var<workgroup> red_score: array<f32, WG>;
var<workgroup> red_token: array<u32, WG>;

// Whether (s, v) beats (best_s, best_v): higher score, then lower id; NONE never wins.
fn beats(s: f32, v: u32, best_s: f32, best_v: u32) -> bool {
    if (v == NONE) {
        return false;
    }
    if (best_v == NONE) {
        return true;
    }
    return s > best_s || (s == best_s && v < best_v);
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
    let live = in_range && draw_mask[position] != {{ int }}(0);
    var pattern = pattern_of(position);
    if (!live) {
        pattern.count = 0u;
    }
    let vocab = params[P_VOCAB];
    let inv_t = bitcast<f32>(params[P_INV_TEMP]);
    let flags = params[P_FLAGS];
    let noise = (flags & FLAG_NOISE) != 0u;
    let use_cut = (flags & FLAG_CUTOFF) != 0u;
    let c_score = cut_score[position];
    let c_token = u32(cut_token[position]);
    let row = position * params[P_WIDTH];
    let step = params[P_STEP];
    let stream = params[P_STREAM];
    // The noise is keyed on the row's sequence position (the logits may hold only some rows).
    let key_position = u32(key_positions[position]);

    var best_s = 0.0;
    var best_v = NONE;
    var block_id = NONE;
    var block = vec4<u32>(0u);
    for (var base = lid * 4u; base < pattern.count; base = base + WG * 4u) {
        for (var t = 0u; t < 4u; t = t + 1u) {
            let n = base + t;
            if (n >= pattern.count) {
                break;
            }
            let v = code_of(position, pattern, n);
            if (v >= vocab) {
                continue;
            }
            let s = logits[row + v] * inv_t;
            if (use_cut && !(s > c_score || (s == c_score && v <= c_token))) {
                continue;
            }
            var score = s;
            if (noise) {
                if ((v >> 2u) != block_id) {
                    block_id = v >> 2u;
                    block = threefry(vec4<u32>(step, key_position, block_id, 0u), vec4<u32>(params[P_SEED_LO], params[P_SEED_HI], stream, 0u));
                }
                let u = word_to_uniform(block[v & 3u]);
                score = s + (-log(-log(u)));
            }
            if (beats(score, v, best_s, best_v)) {
                best_s = score;
                best_v = v;
            }
        }
    }
    red_score[lid] = best_s;
    red_token[lid] = best_v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s && beats(red_score[lid + s], red_token[lid + s], red_score[lid], red_token[lid])) {
            red_score[lid] = red_score[lid + s];
            red_token[lid] = red_token[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u && in_range) {
        if (red_token[0] == NONE) {
            out[i] = {{ int }}(-1);
        } else {
            out[i] = {{ int }}(red_token[0]);
        }
    }
}
