// Shared helpers, appended to every sub-token kernel.
//
// The bindings of each kernel and the constants of the parameter block (`P_*` word offsets,
// `FLAG_*` bits, `STREAM_*` ids) are generated from the Rust side (core/src/kernels/params.rs
// and shader.rs) and added to every kernel's source: the WGSL never restates them.
//
// `params` words: length L, digits ℓ, base b (also the mask id), vocab V, row width W, seed
// lo/hi, step, f32 bits of 1/temperature and of the reveal probability, flags (carry-over
// filter, Gumbel noise, cutoffs, planned reveals), stream id, top-k (0: none), f32 bits of
// top-p, then the powers b^(ℓ−1−j).

const PARITY: u32 = 0x1BD11BDAu;

fn rotl(x: u32, r: u32) -> u32 {
    return (x << r) | (x >> (32u - r));
}

// Threefry-4x32-20 (the same block function as core/src/rng.rs).
fn threefry(counter: vec4<u32>, key: vec4<u32>) -> vec4<u32> {
    var ks = array<u32, 5>(key.x, key.y, key.z, key.w, PARITY ^ key.x ^ key.y ^ key.z ^ key.w);
    var rot = array<vec2<u32>, 8>(
        vec2<u32>(10u, 26u), vec2<u32>(11u, 21u), vec2<u32>(13u, 27u), vec2<u32>(23u, 5u),
        vec2<u32>(6u, 20u), vec2<u32>(17u, 11u), vec2<u32>(25u, 10u), vec2<u32>(18u, 20u));
    var x = array<u32, 4>(counter.x + ks[0], counter.y + ks[1], counter.z + ks[2], counter.w + ks[3]);
    for (var r = 0u; r < 20u; r = r + 1u) {
        let ro = rot[r % 8u];
        if (r % 2u == 0u) {
            x[0] = x[0] + x[1];
            x[1] = rotl(x[1], ro.x) ^ x[0];
            x[2] = x[2] + x[3];
            x[3] = rotl(x[3], ro.y) ^ x[2];
        } else {
            x[0] = x[0] + x[3];
            x[3] = rotl(x[3], ro.x) ^ x[0];
            x[2] = x[2] + x[1];
            x[1] = rotl(x[1], ro.y) ^ x[2];
        }
        if (r % 4u == 3u) {
            let s = r / 4u + 1u;
            for (var i = 0u; i < 4u; i = i + 1u) {
                x[i] = x[i] + ks[(s + i) % 5u];
            }
            x[3] = x[3] + s;
        }
    }
    return vec4<u32>(x[0], x[1], x[2], x[3]);
}

// The word of (stream, step, position, index), as CounterRng::word.
fn rng_word(stream: u32, step: u32, position: u32, index: u32) -> u32 {
    let key = vec4<u32>(params[P_SEED_LO], params[P_SEED_HI], stream, 0u);
    let block = threefry(vec4<u32>(step, position, index >> 2u, 0u), key);
    return block[index & 3u];
}

// (⌊w/2^9⌋ + ½)·2^−23: exact in f32, inside (0, 1).
fn word_to_uniform(w: u32) -> f32 {
    return (f32(w >> 9u) + 0.5) * (1.0 / 8388608.0);
}

fn power(j: u32) -> u32 {
    return params[P_POWERS + j];
}

// Digit j of token v, most significant first.
fn digit_of(v: u32, j: u32) -> u32 {
    return (v / power(j)) % params[P_BASE];
}

// Flat index of an element-wise invocation over a (x, y) grid of workgroups.
fn element_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * {{ workgroup }}u;
}

// Position of a one-workgroup-per-position kernel over a (x, y) grid of workgroups.
fn workgroup_position(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The ancestral reveal decision of slot (i, j) at this step: uniform below p.
fn reveals(i: u32, j: u32) -> bool {
    return word_to_uniform(rng_word(STREAM_REVEAL, params[P_STEP], i, j)) < bitcast<f32>(params[P_REVEAL_P]);
}
