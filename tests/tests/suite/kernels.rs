//! The WGSL sub-token kernels equal their Burn-ops twins on wgpu (lavapipe in CI), and the
//! twins equal the host reference (codec, filter, sampler rules) on every backend.

use burn::tensor::{Device, Int, Tensor, TensorData};
use prime_core::SubTokenCodec;
use prime_core::distribution::logsumexp_over;
use prime_core::kernels::{Cutoffs, DrawRequest, KernelPath, RevealRule, SubTokenKernels, expand_f16};
use prime_core::rng::{CounterRng, Stream};
use prime_core::sampler::{Cutoff, cutoff};
use prime_tests::backends;

/// A codec, sequence length and logits width to test on.
struct Case {
    name: &'static str,
    codec: SubTokenCodec,
    length: usize,
    width: usize,
}

fn cases() -> Vec<Case> {
    vec![
        // V not a power of b: 18² = 324 codes, 24 invalid.
        Case { name: "V300-l2", codec: SubTokenCodec::new(300, 2).expect("codec"), length: 12, width: 300 },
        // ℓ = 1 (MDLM): the mask id is V, logits carry the mask class (V + 1).
        Case { name: "V50-l1", codec: SubTokenCodec::new(50, 1).expect("codec"), length: 7, width: 51 },
        // V a power of b: 4³ = 64, no invalid code.
        Case { name: "V64-l3", codec: SubTokenCodec::new(64, 3).expect("codec"), length: 9, width: 64 },
    ]
}

/// A deterministic pseudo-random sequence for test inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

/// Logits with many exact ties (multiples of ½ in [−4, 4)).
fn logits(case: &Case, seed: u64) -> Vec<f32> {
    let mut r = Lcg(seed);
    (0..case.length * case.width).map(|_| (r.next() % 16) as f32 * 0.5 - 4.0).collect()
}

/// A state mixing fully masked tokens (all consistent), fully revealed ones (exactly one),
/// partly revealed ones and, where the codec has invalid codes, a pattern with none.
fn state(case: &Case, seed: u64) -> Vec<u32> {
    let c = &case.codec;
    let (l, mask) = (c.digits(), c.mask_id());
    let mut r = Lcg(seed);
    let mut out = Vec::new();
    for i in 0..case.length {
        let token = r.next() % c.vocab();
        for j in 0..l {
            let digit = c.digit(token, j);
            out.push(match i % 4 {
                0 => mask,
                1 => digit,
                _ => {
                    if r.next().is_multiple_of(2) {
                        mask
                    } else {
                        digit
                    }
                }
            });
        }
    }
    if c.vocab() == 300 {
        // 16·18 + 17 = 305 ≥ 300: no consistent token at position 3.
        out[6] = 16;
        out[7] = 17;
    }
    out
}

fn int_tensor(values: &[i32], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

fn ids(values: &[u32], device: &Device) -> Tensor<1, Int> {
    int_tensor(&values.iter().map(|&v| v as i32).collect::<Vec<_>>(), device)
}

fn logits_tensor(case: &Case, values: Vec<f32>, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [case.length, case.width]), device)
}

fn read_ints(t: Tensor<1, Int>) -> Vec<i32> {
    t.into_data().convert::<i32>().try_into_vec::<i32>().expect("int data")
}

fn read_floats(t: Tensor<1>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("float data")
}

/// The kernel paths to compare on `device`: shader and twin on wgpu, the twin elsewhere.
fn paths(device: &Device) -> Vec<KernelPath> {
    match KernelPath::for_device(device) {
        KernelPath::Shader => vec![KernelPath::Shader, KernelPath::Twin],
        KernelPath::Twin => vec![KernelPath::Twin],
    }
}

fn kernels(case: &Case, path: KernelPath, device: &Device) -> SubTokenKernels {
    SubTokenKernels::new(&case.codec, case.length, case.width, path, device).expect("kernels")
}

/// The host rule's truncation cutoff of each position over its candidates (consistent with
/// the filter, logits scaled by `inv_t`); `None` where it has none.
fn host_cutoffs(
    case: &Case,
    lg: &[f32],
    st: &[u32],
    inv_t: f32,
    carry_over: bool,
    top_k: Option<usize>,
    top_p: f32,
) -> Vec<Option<Cutoff>> {
    let l = case.codec.digits();
    (0..case.length)
        .map(|i| {
            let cands: Vec<(u32, f32)> =
                prime_core::distribution::consistent_tokens(&case.codec, &st[i * l..(i + 1) * l], carry_over)
                    .into_iter()
                    .map(|v| (v, lg[i * case.width + v as usize] * inv_t))
                    .collect();
            cutoff(cands, top_k, top_p)
        })
        .collect()
}

/// Host cutoffs as the kernels take them (a position without candidates keeps nothing).
fn cutoffs_tensor(cuts: &[Option<Cutoff>], device: &Device) -> Cutoffs {
    let score: Vec<f32> = cuts.iter().map(|c| c.map_or(f32::MAX, |c| c.score)).collect();
    let token: Vec<i32> = cuts.iter().map(|c| c.map_or(-1, |c| c.token as i32)).collect();
    Cutoffs {
        score: Tensor::from_data(TensorData::new(score, [cuts.len()]), device),
        token: int_tensor(&token, device),
    }
}

/// The `unpack` shader expands every finite f16 value (normal, subnormal, ±0, ±65504) to the
/// f32 its twin gives, bit for bit, with an odd count (the last word half used).
#[test]
fn unpack_expands_every_f16_value_exactly() {
    let mut bits: Vec<u16> = (0..=u16::MAX).filter(|b| b & 0x7c00 != 0x7c00).collect();
    bits.push(0x3c00);
    assert!(bits.len() % 2 == 1);
    let want: Vec<u32> = bits.iter().map(|&b| f32::to_bits(half::f16::from_bits(b).to_f32())).collect();
    for (backend, device) in backends() {
        for path in paths(&device) {
            let got = read_floats(expand_f16(&bits, path, &device).expect("expand"));
            let got: Vec<u32> = got.into_iter().map(f32::to_bits).collect();
            let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(got.len(), want.len(), "{backend}/{path:?}");
            assert!(wrong == 0, "{backend}/{path:?}: {wrong} of {} values differ", want.len());
        }
    }
}

#[test]
fn encode_and_decode_match_the_codec() {
    for (backend, device) in backends() {
        for case in cases() {
            let c = &case.codec;
            let mut r = Lcg(5);
            let tokens: Vec<u32> = (0..case.length).map(|_| r.next() % c.vocab()).collect();
            let want = c.encode(&tokens).expect("encode");
            let st = state(&case, 11);
            let want_decoded: Vec<i32> =
                st.chunks(c.digits()).map(|d| c.decode_token(d).map(|t| t as i32).unwrap_or(-1)).collect();
            for path in paths(&device) {
                let k = kernels(&case, path, &device);
                let got = read_ints(k.encode(ids(&tokens, &device)).expect("encode"));
                assert_eq!(got, want.iter().map(|&d| d as i32).collect::<Vec<_>>(), "{backend}/{path:?}/{}", case.name);
                let round = read_ints(k.decode(ids(&want, &device)).expect("decode"));
                assert_eq!(round, tokens.iter().map(|&t| t as i32).collect::<Vec<_>>(), "{backend}/{path:?}");
                let decoded = read_ints(k.decode(ids(&st, &device)).expect("decode"));
                assert_eq!(decoded, want_decoded, "{backend}/{path:?}/{}: masked and invalid give −1", case.name);
            }
        }
    }
}

#[test]
fn normaliser_matches_the_host_filter() {
    for (backend, device) in backends() {
        for case in cases() {
            let c = &case.codec;
            let l = c.digits();
            let (lg, st) = (logits(&case, 3), state(&case, 4));
            for (temperature, carry_over) in [(1.0f32, true), (0.7, true), (1.0, false)] {
                let inv_t = 1.0 / temperature;
                let mut per_path = Vec::new();
                for path in paths(&device) {
                    let k = kernels(&case, path, &device);
                    let out = k
                        .normaliser(logits_tensor(&case, lg.clone(), &device), ids(&st, &device), inv_t, carry_over)
                        .expect("normaliser");
                    let (max, lse, count) =
                        (read_floats(out.max), read_floats(out.log_normaliser), read_ints(out.count));
                    for i in 0..case.length {
                        let pattern = &st[i * l..(i + 1) * l];
                        let members = prime_core::distribution::consistent_tokens(c, pattern, carry_over);
                        let tag = format!("{backend}/{path:?}/{}/T{temperature}/co{carry_over}/pos {i}", case.name);
                        assert_eq!(count[i] as usize, members.len(), "{tag}: count");
                        if members.is_empty() {
                            continue;
                        }
                        let row: Vec<f32> =
                            lg[i * case.width..(i + 1) * case.width].iter().map(|&x| x * inv_t).collect();
                        let want_max = members.iter().map(|&v| row[v as usize]).fold(f32::NEG_INFINITY, f32::max);
                        let want_lse = logsumexp_over(&row, members.iter().copied()).expect("members");
                        assert_eq!(max[i], want_max, "{tag}: max");
                        let rel = (lse[i] - want_lse).abs() / want_lse.abs().max(1.0);
                        assert!(rel <= 1e-6, "{tag}: lse {} vs {want_lse}", lse[i]);
                    }
                    per_path.push((max, lse, count));
                }
                if let [(max_s, lse_s, count_s), (max_t, lse_t, count_t)] = &per_path[..] {
                    assert_eq!(count_s, count_t, "{backend}/{}: counts, shader vs twin", case.name);
                    for i in (0..case.length).filter(|&i| count_s[i] > 0) {
                        assert_eq!(max_s[i], max_t[i], "{backend}/{}: max, shader vs twin", case.name);
                        let rel = (lse_s[i] - lse_t[i]).abs() / lse_t[i].abs().max(1.0);
                        assert!(rel <= 1e-6, "{backend}/{}: lse shader {} vs twin {}", case.name, lse_s[i], lse_t[i]);
                    }
                }
            }
        }
    }
}

/// The host's rule: lowest-id argmax of the scaled logits over the consistent, kept tokens.
fn host_argmax(case: &Case, lg: &[f32], st: &[u32], i: usize, keep: impl Fn(u32, f32) -> bool) -> i32 {
    let l = case.codec.digits();
    let mut best: Option<(f32, u32)> = None;
    case.codec.for_each_consistent(&st[i * l..(i + 1) * l], |v| {
        let s = lg[i * case.width + v as usize];
        if keep(v, s) && best.is_none_or(|(b, _)| s > b) {
            best = Some((s, v));
        }
    });
    best.map_or(-1, |(_, v)| v as i32)
}

#[test]
fn argmax_draw_breaks_ties_to_the_lowest_id() {
    for (backend, device) in backends() {
        for case in cases() {
            let (lg, st) = (logits(&case, 8), state(&case, 9));
            let mut active = vec![1i32; case.length];
            active[1] = 0;
            let want: Vec<i32> = (0..case.length)
                .map(|i| if active[i] == 0 { -1 } else { host_argmax(&case, &lg, &st, i, |_, _| true) })
                .collect();
            for path in paths(&device) {
                let k = kernels(&case, path, &device);
                let request = DrawRequest {
                    seed: 0,
                    step: 0,
                    inv_temperature: 1.0,
                    noise: false,
                    active: int_tensor(&active, &device),
                    cutoffs: None,
                    positions: Vec::new(),
                };
                let got = read_ints(
                    k.draw(logits_tensor(&case, lg.clone(), &device), ids(&st, &device), &request, true).expect("draw"),
                );
                assert_eq!(got, want, "{backend}/{path:?}/{}", case.name);
            }
        }
    }
}

#[test]
fn sampled_draws_equal_between_shader_and_twin() {
    for (backend, device) in backends() {
        for case in cases() {
            let c = &case.codec;
            let l = c.digits();
            let (lg, st) = (logits(&case, 21), state(&case, 22));
            // Top-2 cutoffs from the host's truncation rule.
            let cuts = host_cutoffs(&case, &lg, &st, 1.25, true, Some(2), 1.0);
            for step in [0u32, 7] {
                for truncate in [false, true] {
                    let mut results = Vec::new();
                    for path in paths(&device) {
                        let k = kernels(&case, path, &device);
                        let request = DrawRequest {
                            seed: 42,
                            step,
                            inv_temperature: 1.25,
                            noise: true,
                            active: int_tensor(&vec![1; case.length], &device),
                            cutoffs: truncate.then(|| cutoffs_tensor(&cuts, &device)),
                            positions: Vec::new(),
                        };
                        let got = read_ints(
                            k.draw(logits_tensor(&case, lg.clone(), &device), ids(&st, &device), &request, true)
                                .expect("draw"),
                        );
                        // Every other row, drawn as a block of their own with its positions,
                        // draws the same tokens: the noise is keyed on the sequence position.
                        let picked: Vec<u32> = (1..case.length as u32).step_by(2).collect();
                        let n = picked.len();
                        let index = int_tensor(&picked.iter().map(|&i| i as i32).collect::<Vec<_>>(), &device);
                        let part = SubTokenKernels::new(c, n, case.width, path, &device).expect("kernels");
                        let part_request = DrawRequest {
                            active: request.active.clone().select(0, index.clone()),
                            cutoffs: truncate.then(|| {
                                let part: Vec<_> = picked.iter().map(|&i| cuts[i as usize]).collect();
                                cutoffs_tensor(&part, &device)
                            }),
                            positions: picked.clone(),
                            ..request.clone()
                        };
                        let rows: Vec<f32> =
                            picked.iter().flat_map(|&i| lg[i as usize * case.width..][..case.width].to_vec()).collect();
                        let part_state: Vec<u32> =
                            picked.iter().flat_map(|&i| st[i as usize * l..][..l].to_vec()).collect();
                        let rows = Tensor::<2>::from_data(TensorData::new(rows, [n, case.width]), &device);
                        let part_got =
                            read_ints(part.draw(rows, ids(&part_state, &device), &part_request, true).expect("draw"));
                        let want: Vec<i32> = picked.iter().map(|&i| got[i as usize]).collect();
                        assert_eq!(part_got, want, "{backend}/{path:?}/{}: the odd rows as a block", case.name);
                        for (i, &x) in got.iter().enumerate() {
                            let consistent = c.count_consistent(&st[i * l..(i + 1) * l]);
                            assert_eq!(x < 0, consistent == 0, "{backend}/{path:?}/{}: pos {i} drew {x}", case.name);
                            if x >= 0 {
                                let pattern = &st[i * l..(i + 1) * l];
                                let digits: Vec<u32> = (0..l).map(|j| c.digit(x as u32, j)).collect();
                                assert!(pattern.iter().zip(&digits).all(|(&p, &d)| p == c.mask_id() || p == d));
                                if let (true, Some(cut)) = (truncate, cuts[i]) {
                                    assert!(cut.keeps(lg[i * case.width + x as usize] * 1.25, x as u32), "kept set");
                                }
                            }
                        }
                        results.push((path, got));
                    }
                    if let [(_, shader), (_, twin)] = &results[..] {
                        assert_eq!(shader, twin, "{backend}/{}: step {step}, truncate {truncate}", case.name);
                    }
                }
            }
        }
    }
}

#[test]
fn reveal_matches_the_host_rule_and_flags_changes() {
    for (backend, device) in backends() {
        for case in cases() {
            let c = &case.codec;
            let l = c.digits();
            let st = state(&case, 31);
            let mut r = Lcg(32);
            let x0: Vec<i32> =
                (0..case.length).map(|i| if i % 5 == 4 { -1 } else { (r.next() % c.vocab()) as i32 }).collect();
            let rng = CounterRng::new(77);
            for (step, p) in [(3u32, 0.5f32), (4, 0.0), (5, 1.0)] {
                let want: Vec<i32> = (0..st.len())
                    .map(|s| {
                        let (i, j) = (s / l, s % l);
                        let reveal = st[s] == c.mask_id()
                            && x0[i] >= 0
                            && rng.uniform(Stream::Reveal, step, i as u32, j as u32) < p;
                        if reveal { c.digit(x0[i] as u32, j) as i32 } else { st[s] as i32 }
                    })
                    .collect();
                let changed = want.iter().zip(&st).any(|(&a, &b)| a != b as i32);
                for path in paths(&device) {
                    let k = kernels(&case, path, &device);
                    let out = k
                        .reveal(ids(&st, &device), int_tensor(&x0, &device), 77, step, RevealRule::Probability(p))
                        .expect("reveal");
                    let tag = format!("{backend}/{path:?}/{}/step {step}", case.name);
                    assert_eq!(read_ints(out.state), want, "{tag}");
                    assert_eq!(read_ints(out.changed)[0] != 0, changed, "{tag}: changed flag");
                }
            }
        }
    }
}

#[test]
fn planned_reveal_uncovers_exactly_the_planned_slots() {
    for (backend, device) in backends() {
        for case in cases() {
            let c = &case.codec;
            let l = c.digits();
            let st = state(&case, 41);
            let x0: Vec<i32> = (0..case.length).map(|i| (i as u32 * 37 % c.vocab()) as i32).collect();
            let plan: Vec<i32> = (0..st.len()).map(|s| (s % 3) as i32 - 1).collect();
            let want: Vec<i32> = (0..st.len())
                .map(|s| {
                    if st[s] == c.mask_id() && plan[s] == 1 {
                        c.digit(x0[s / l] as u32, s % l) as i32
                    } else {
                        st[s] as i32
                    }
                })
                .collect();
            for path in paths(&device) {
                let k = kernels(&case, path, &device);
                let rule = RevealRule::Planned(Box::new(int_tensor(&plan, &device)));
                let out = k.reveal(ids(&st, &device), int_tensor(&x0, &device), 3, 1, rule).expect("reveal");
                assert_eq!(read_ints(out.state), want, "{backend}/{path:?}/{}", case.name);
            }
        }
    }
}

/// The cutoff shader and its twin find the host's truncation cutoff (top-k, nucleus, both;
/// with and without the filter; tied logits), and −1 where a position has no candidate.
#[test]
fn cutoffs_match_the_host_rule() {
    for (backend, device) in backends() {
        for case in cases() {
            let (lg, st) = (logits(&case, 61), state(&case, 62));
            for (temperature, carry_over, top_k, top_p) in [
                (1.0f32, true, None, 0.85f32),
                (0.7, true, Some(3), 1.0),
                (1.25, true, Some(5), 0.6),
                (1.0, false, None, 0.5),
                (1.0, true, None, 0.05),
                (1.0, true, None, 1.0),
            ] {
                let inv_t = 1.0 / temperature;
                let want: Vec<(f32, i32)> = host_cutoffs(&case, &lg, &st, inv_t, carry_over, top_k, top_p)
                    .iter()
                    .map(|c| c.map_or((f32::MAX, -1), |cut| (cut.score, cut.token as i32)))
                    .collect();
                assert_eq!(
                    want.iter().any(|w| w.1 < 0),
                    case.name == "V300-l2" && carry_over,
                    "{}: the empty position",
                    case.name
                );
                for path in paths(&device) {
                    let k = kernels(&case, path, &device);
                    let out = k
                        .cutoffs(
                            logits_tensor(&case, lg.clone(), &device),
                            ids(&st, &device),
                            inv_t,
                            top_k,
                            top_p,
                            carry_over,
                        )
                        .expect("cutoffs");
                    let got: Vec<(f32, i32)> = read_floats(out.score).into_iter().zip(read_ints(out.token)).collect();
                    let tag =
                        format!("{backend}/{path:?}/{}/T{temperature}/co{carry_over}/k{top_k:?}/p{top_p}", case.name);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        if w.1 < 0 {
                            assert_eq!(g.1, -1, "{tag}: pos {i} has no candidate");
                        } else {
                            assert_eq!(g, w, "{tag}: pos {i}");
                        }
                    }
                }
            }
        }
    }
}

/// The host's digit marginals of position i (f64): the kept candidates' softmax summed per
/// digit value of each masked digit; `None` per slot where the slot is revealed or nothing is
/// kept.
fn host_digit_scores(
    case: &Case,
    lg: &[f32],
    st: &[u32],
    inv_t: f32,
    carry_over: bool,
    cut: impl Fn(usize, u32, f32) -> bool,
) -> Vec<Option<(f64, f64)>> {
    let c = &case.codec;
    let (l, b) = (c.digits(), c.base() as usize);
    let mut out = Vec::new();
    for i in 0..case.length {
        let pattern = &st[i * l..(i + 1) * l];
        let kept: Vec<(u32, f64)> = prime_core::distribution::consistent_tokens(c, pattern, carry_over)
            .into_iter()
            .map(|v| (v, f64::from(lg[i * case.width + v as usize] * inv_t)))
            .filter(|&(v, s)| cut(i, v, s as f32))
            .collect();
        let top = kept.iter().map(|&(_, s)| s).fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = kept.iter().map(|&(_, s)| (s - top).exp()).sum();
        for (j, &digit) in pattern.iter().enumerate() {
            if digit != c.mask_id() || kept.is_empty() {
                out.push(None);
                continue;
            }
            let mut q = vec![0.0f64; b];
            kept.iter().for_each(|&(v, s)| q[c.digit(v, j) as usize] += (s - top).exp() / total);
            let confidence = q.iter().copied().fold(0.0, f64::max);
            let entropy = q.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum();
            out.push(Some((confidence, entropy)));
        }
    }
    out
}

/// The digit-score shader and its twin give the host's marginals (confidence and entropy of
/// each masked digit, −1 elsewhere), with and without the filter, at two temperatures, with
/// top-2 cutoffs, including a position with no consistent token.
#[test]
fn digit_scores_match_the_host_marginals() {
    for (backend, device) in backends() {
        for case in cases() {
            let (lg, st) = (logits(&case, 51), state(&case, 52));
            for (temperature, carry_over, truncate) in [(1.0f32, true, false), (0.7, true, true), (1.0, false, false)] {
                let inv_t = 1.0 / temperature;
                let cuts = host_cutoffs(&case, &lg, &st, inv_t, carry_over, Some(2), 1.0);
                let want = host_digit_scores(&case, &lg, &st, inv_t, carry_over, |i, v, s| {
                    !truncate || cuts[i].is_none_or(|cut| cut.keeps(s, v))
                });
                assert!(want.iter().any(Option::is_none) && want.iter().any(Option::is_some), "a mixed case");
                let cutoffs = truncate.then(|| cutoffs_tensor(&cuts, &device));
                for path in paths(&device) {
                    let k = kernels(&case, path, &device);
                    let out = k
                        .digit_scores(
                            logits_tensor(&case, lg.clone(), &device),
                            ids(&st, &device),
                            inv_t,
                            cutoffs.as_ref(),
                            carry_over,
                        )
                        .expect("digit scores");
                    let (confidence, entropy) = (read_floats(out.confidence), read_floats(out.entropy));
                    let tag = format!("{backend}/{path:?}/{}/T{temperature}/co{carry_over}/cut{truncate}", case.name);
                    for (s, w) in want.iter().enumerate() {
                        match w {
                            None => assert_eq!((confidence[s], entropy[s]), (-1.0, -1.0), "{tag}: slot {s}"),
                            Some((conf, ent)) => {
                                assert!(
                                    (f64::from(confidence[s]) - conf).abs() <= 2e-6,
                                    "{tag}: slot {s} confidence {} vs {conf}",
                                    confidence[s]
                                );
                                assert!(
                                    (f64::from(entropy[s]) - ent).abs() <= 2e-5,
                                    "{tag}: slot {s} entropy {} vs {ent}",
                                    entropy[s]
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Draws from many positions with identical inputs (independent noise per position) follow
/// the exact filtered softmax: a chi-square test against the true probabilities.
#[test]
fn draw_distribution_matches_exact_probabilities() {
    let codec = SubTokenCodec::new(20, 2).expect("codec"); // b = 5, 25 codes
    let length = 4000;
    let width = 20;
    let case = Case { name: "dist", codec, length, width };
    let row: Vec<f32> = (0..width).map(|v| ((v * 7) % 5) as f32 * 0.6 - 1.0).collect();
    // Digit 0 revealed as 2: consistent tokens 10..14.
    let pattern = [2u32, 5];
    let members: Vec<u32> = (10..15).collect();
    let temperature = 0.8f32;
    let weights: Vec<f64> =
        members.iter().map(|&v| (f64::from(row[v as usize]) / f64::from(temperature)).exp()).collect();
    let total: f64 = weights.iter().sum();
    for (backend, device) in backends() {
        for path in paths(&device) {
            let k = kernels(&case, path, &device);
            let mut counts = vec![0u64; members.len()];
            for step in 0..2u32 {
                let request = DrawRequest {
                    seed: 9,
                    step,
                    inv_temperature: 1.0 / temperature,
                    noise: true,
                    active: int_tensor(&vec![1; length], &device),
                    cutoffs: None,
                    positions: Vec::new(),
                };
                let lg = logits_tensor(&case, row.repeat(length), &device);
                let st = ids(&pattern.repeat(length), &device);
                for x in read_ints(k.draw(lg, st, &request, true).expect("draw")) {
                    let slot = members.iter().position(|&m| m as i32 == x).expect("drawn token is consistent");
                    counts[slot] += 1;
                }
            }
            let n = (2 * length) as f64;
            let chi2: f64 = counts
                .iter()
                .zip(&weights)
                .map(|(&o, &w)| {
                    let e = n * w / total;
                    (o as f64 - e).powi(2) / e
                })
                .sum();
            // χ²(4) at 0.999 is 18.47.
            assert!(chi2 < 18.47, "{backend}/{path:?}: chi-square {chi2:.2}, counts {counts:?}");
        }
    }
}
