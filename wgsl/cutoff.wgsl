// Truncation cutoffs on the device, by the host's rule (core/src/sampler/truncation.rs): the
// candidates of position i — its consistent codes below V with a finite scaled logit — in the
// order (scaled logit descending, id ascending); top-k keeps the first k, then the nucleus keeps
// the longest prefix whose cumulative probability (renormalised over those k) stays ≤ top-p,
// and at least one. A kept set is a prefix of that order, written as its last member:
// `out_score` and `out_token` (the draw's `cut_score` / `cut_token`). A position without
// candidates gets −1 as its token.
//
// No sort: scores are compared through an order-preserving u32 key, and each boundary is found
// by bisection over keys or ids, every probe one pass over the candidates and a workgroup sum
// (reduce.wgsl). Candidates of equal score weigh the same, so how many of a run of ties the
// nucleus keeps is arithmetic. Every pass runs for every position: all barriers stay in
// uniform control flow.
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs.

const WG: u32 = {{ workgroup }}u;
const ALL: u32 = 0xffffffffu;

// An order-preserving key of an f32: a larger score has a larger key.
fn key_of(s: f32) -> u32 {
    let b = bitcast<u32>(s);
    if ((b & 0x80000000u) != 0u) {
        return ~b;
    }
    return b | 0x80000000u;
}

fn score_of(key: u32) -> f32 {
    if ((key & 0x80000000u) != 0u) {
        return bitcast<f32>(key & 0x7fffffffu);
    }
    return bitcast<f32>(~key);
}

// A prefix of the order: every candidate with a key above `key`, and those with `key` itself
// and an id ≤ `id`.
struct Prefix {
    key: u32,
    id: u32,
}

// The n-th code of a position's pattern: its id, scaled logit and key, and whether it is a
// candidate (below V, with a finite scaled logit: exponent bits not all set).
struct Candidate {
    v: u32,
    s: f32,
    key: u32,
    ok: bool,
}

fn candidate(position: u32, pattern: Pattern, n: u32) -> Candidate {
    let v = code_of(position, pattern, n);
    if (v >= params[P_VOCAB]) {
        return Candidate(v, 0.0, 0u, false);
    }
    let s = logits[position * params[P_WIDTH] + v] * bitcast<f32>(params[P_INV_TEMP]);
    return Candidate(v, s, key_of(s), (bitcast<u32>(s) & 0x7f800000u) != 0x7f800000u);
}

fn in_prefix(c: Candidate, p: Prefix) -> bool {
    return c.key > p.key || (c.key == p.key && c.v <= p.id);
}

// This invocation's largest scaled logit among the candidates (the lowest finite f32 without
// any; see normaliser.wgsl for why it is written as bits).
fn best_score(position: u32, pattern: Pattern, lid: u32) -> f32 {
    var best = bitcast<f32>(0xff7fffffu);
    for (var n = lid; n < pattern.count; n = n + WG) {
        let c = candidate(position, pattern, n);
        if (c.ok) {
            best = max(best, c.s);
        }
    }
    return best;
}

// Σ over the candidates in both prefixes of 1, or of exp(s − top) when `weighted`; every
// invocation of the workgroup calls it and gets the sum.
fn tally(position: u32, pattern: Pattern, lid: u32, a: Prefix, b: Prefix, weighted: bool, top: f32) -> f32 {
    var sum = 0.0;
    for (var n = lid; n < pattern.count; n = n + WG) {
        let c = candidate(position, pattern, n);
        if (c.ok && in_prefix(c, a) && in_prefix(c, b)) {
            if (weighted) {
                sum = sum + exp(c.s - top);
            } else {
                sum = sum + 1.0;
            }
        }
    }
    return workgroup_sum(lid, sum);
}

// The largest key whose prefix holds at least m candidates of `within` (the key of the m-th).
fn key_search(position: u32, pattern: Pattern, lid: u32, within: Prefix, m: f32) -> u32 {
    var lo = 0u;
    var hi = ALL;
    for (var it = 0u; it < 32u; it = it + 1u) {
        let mid = lo + ((hi - lo) >> 1u) + ((hi - lo) & 1u);
        if (tally(position, pattern, lid, within, Prefix(mid, ALL), false, 0.0) >= m) {
            lo = mid;
        } else {
            hi = max(mid, 1u) - 1u;
        }
    }
    return lo;
}

// The smallest id x for which the prefix (key, x) holds at least m candidates of `within`,
// by bisection over the `bits` bits of the ids.
fn id_search(position: u32, pattern: Pattern, lid: u32, within: Prefix, key: u32, m: f32, bits: u32) -> u32 {
    var lo = 0u;
    var hi = params[P_VOCAB] - 1u;
    for (var it = 0u; it < bits; it = it + 1u) {
        let mid = lo + ((hi - lo) >> 1u);
        if (tally(position, pattern, lid, within, Prefix(key, mid), false, 0.0) >= m) {
            hi = mid;
        } else {
            lo = min(mid + 1u, hi);
        }
    }
    return lo;
}

// The smallest score among the candidates of `within` above key `floor` (the largest finite
// f32 when there is none); every invocation gets it.
fn smallest_above(position: u32, pattern: Pattern, lid: u32, within: Prefix, floor: u32) -> f32 {
    var least = bitcast<f32>(0x7f7fffffu);
    for (var n = lid; n < pattern.count; n = n + WG) {
        let c = candidate(position, pattern, n);
        if (c.ok && in_prefix(c, within) && c.key > floor) {
            least = min(least, c.s);
        }
    }
    return -workgroup_max(lid, -least);
}

// Parameter words as uniform values: to the uniformity analysis a storage read is not, and
// the passes below branch on them around barriers.
var<workgroup> top_k_word: u32;
var<workgroup> top_p_word: u32;
var<workgroup> vocab_word: u32;

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
    let every = Prefix(0u, ALL);
    if (lid == 0u) {
        top_k_word = params[P_TOP_K];
        top_p_word = params[P_TOP_P];
        vocab_word = params[P_VOCAB];
    }
    let k_word = workgroupUniformLoad(&top_k_word);
    let p = bitcast<f32>(workgroupUniformLoad(&top_p_word));
    let bits = 32u - countLeadingZeros(max(workgroupUniformLoad(&vocab_word), 2u) - 1u);

    // The candidates and the top score (the weights are exp(s − top)).
    let n = tally(position, pattern, lid, every, every, false, 0.0);
    let top = workgroup_max(lid, best_score(position, pattern, lid));

    // Top-k: the prefix of the first k (all of them without top-k).
    var kept = n;
    var top_k = every;
    if (k_word != 0u) {
        kept = min(f32(k_word), n);
        let key = key_search(position, pattern, lid, every, kept);
        top_k = Prefix(key, id_search(position, pattern, lid, every, key, kept, bits));
    }
    var last = top_k;
    if (k_word == 0u && p >= 1.0) {
        // Nothing truncates: the last candidate of the order.
        let key = key_of(smallest_above(position, pattern, lid, every, 0u));
        last = Prefix(key, id_search(position, pattern, lid, every, key, n, bits));
    }
    if (p < 1.0) {
        // Nucleus: the run of ties where the cumulative mass crosses p·total (the largest key
        // whose prefix of the top-k weighs more), the mass above it, and how many of its ties
        // still fit: the nucleus holds `count_above + fit` candidates, at least one.
        let total = tally(position, pattern, lid, top_k, every, true, top);
        let budget = p * total;
        var lo = 0u;
        var hi = ALL;
        for (var it = 0u; it < 32u; it = it + 1u) {
            let mid = lo + ((hi - lo) >> 1u) + ((hi - lo) & 1u);
            if (tally(position, pattern, lid, top_k, Prefix(mid, ALL), true, top) > budget) {
                lo = mid;
            } else {
                hi = max(mid, 1u) - 1u;
            }
        }
        let above = Prefix(min(lo, ALL - 1u) + 1u, ALL);
        let mass_above = tally(position, pattern, lid, top_k, above, true, top);
        let count_above = tally(position, pattern, lid, top_k, above, false, 0.0);
        let ties = tally(position, pattern, lid, top_k, Prefix(lo, ALL), false, 0.0) - count_above;
        let fit = clamp(floor((budget - mass_above) / exp(score_of(lo) - top)), 0.0, max(ties - 1.0, 0.0));
        let size = min(max(count_above + fit, 1.0), kept);
        // The last member is in the crossing run, or it is the last of the run above it.
        let in_run = Prefix(lo, id_search(position, pattern, lid, top_k, lo, size, bits));
        let run_above = key_of(smallest_above(position, pattern, lid, top_k, lo));
        let end_above = Prefix(run_above, id_search(position, pattern, lid, top_k, run_above, size, bits));
        if (total > budget) {
            last = in_run;
            if (size <= count_above) {
                last = end_above;
            }
        }
    }

    if (lid == 0u && in_range) {
        if (n > 0.0) {
            out_score[i] = score_of(last.key);
            out_token[i] = {{ int }}(last.id);
        } else {
            out_score[i] = bitcast<f32>(0x7f7fffffu);
            out_token[i] = {{ int }}(-1);
        }
    }
}
