// Enumerating the tokens consistent with one position's revealed digits (carry-over filter),
// without a mask: the n-th consistent code fills the masked digit slots with the mixed-radix
// digits of n. Needs `state` bound and common.wgsl.

struct Pattern {
    // Sum of revealed digits times their powers.
    fixed: u32,
    // Number of codes to enumerate (b^masked; with the filter off, V).
    count: u32,
}

fn pattern_of(position: u32) -> Pattern {
    let l = params[P_DIGITS];
    let b = params[P_BASE];
    if ((params[P_FLAGS] & FLAG_CARRY_OVER) == 0u) {
        return Pattern(0u, params[P_VOCAB]);
    }
    var fixed = 0u;
    var count = 1u;
    for (var j = 0u; j < l; j = j + 1u) {
        let d = u32(state[position * l + j]);
        if (d == b) {
            // Saturate: more codes than the vocabulary are never needed.
            count = min(count * b, 0x7fffffffu);
        } else {
            fixed = fixed + d * power(j);
        }
    }
    return Pattern(fixed, count);
}

// The n-th code of the pattern (may be ≥ V: the caller skips those).
fn code_of(position: u32, pattern: Pattern, n: u32) -> u32 {
    if ((params[P_FLAGS] & FLAG_CARRY_OVER) == 0u) {
        return n;
    }
    let l = params[P_DIGITS];
    let b = params[P_BASE];
    var code = pattern.fixed;
    var rest = n;
    for (var jj = 0u; jj < l; jj = jj + 1u) {
        let j = l - 1u - jj;
        if (u32(state[position * l + j]) == b) {
            code = code + (rest % b) * power(j);
            rest = rest / b;
        }
    }
    return code;
}
