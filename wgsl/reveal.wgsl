// Reveal: every masked sub-token slot s = i·ℓ + j takes digit j of the drawn token x0_i with
// probability p (uniform from the stream keyed on (step, i, j) below p), else stays masked.
// With the planned flag, slot s is revealed iff plan[s] equals the step instead (the
// event-driven sampler draws every slot's reveal step up front).
// Revealed slots never change. Writes the next state and raises one "changed" flag, so idle
// detection reads back a single word.
//
// Bindings: generated from the kernel's list in core/src/kernels/shader.rs.

@compute @workgroup_size({{ workgroup }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = element_index(gid, nwg);
    let l = params[P_DIGITS];
    if (s >= params[P_L] * l) {
        return;
    }
    let current = state[s];
    var value = current;
    let i = s / l;
    let j = s % l;
    let drawn = x0[i];
    if (u32(current) == params[P_BASE] && drawn >= {{ int }}(0)) {
        var reveal = false;
        if ((params[P_FLAGS] & FLAG_PLANNED) != 0u) {
            reveal = plan[s] == {{ int }}(params[P_STEP]);
        } else {
            reveal = reveals(i, j);
        }
        if (reveal) {
            value = {{ int }}(digit_of(u32(drawn), j));
            atomicOr(&changed[0], 1u);
        }
    }
    next[s] = value;
}
