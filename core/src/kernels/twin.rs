//! The Burn-tensor-ops twins of the WGSL kernels: the same contracts, on any backend.
//!
//! They build what the shaders avoid (an L × V consistency mask, an L × V noise table drawn on
//! the host from the same counter-based stream) because their job is to be obviously right.

use burn::tensor::{Bool, Device, IndexingUpdateOp, Int, IntDType, Tensor, TensorData};

#[cfg(feature = "diagnostics")]
use super::Normaliser;
use super::params::KernelParams;
use super::{Cutoffs, DigitScores, DrawRequest, Revealed};
use crate::codec::SubTokenCodec;
use crate::rng::{CounterRng, Stream, word_to_uniform};

fn ints<const D: usize>(values: Vec<i32>, shape: [usize; D], device: &Device) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn floats<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `b^(ℓ−1−j)` as a (rows, ℓ) tensor.
fn powers(p: &KernelParams, rows: usize, device: &Device) -> Tensor<2, Int> {
    let l = p.digits();
    ints(p.powers().iter().map(|&w| w as i32).collect(), [1, l], device).expand([rows, l])
}

/// The same integers as i32 (the kernels' integer type).
pub(crate) fn to_i32(t: Tensor<1, Int>) -> Tensor<1, Int> {
    if t.dtype() == burn::tensor::DType::I32 { t } else { t.cast(IntDType::I32) }
}

/// The ℓ digits of each of L tokens (≥ 0), flat: slot i·ℓ + j holds digit j of token i.
fn token_digits(p: &KernelParams, tokens: Tensor<1, Int>) -> Tensor<1, Int> {
    let (n, l) = (p.length(), p.digits());
    let device = tokens.device();
    let digits = tokens.reshape([n, 1]).expand([n, l]).div(powers(p, n, &device)).remainder_scalar(p.codec().base());
    digits.reshape([n * l])
}

/// See [`super::SubTokenKernels::encode`].
#[cfg(feature = "diagnostics")]
pub fn encode(p: &KernelParams, tokens: Tensor<1, Int>) -> Tensor<1, Int> {
    to_i32(token_digits(p, tokens))
}

/// See [`super::SubTokenKernels::decode`].
#[cfg(feature = "diagnostics")]
pub fn decode(p: &KernelParams, state: Tensor<1, Int>) -> Tensor<1, Int> {
    let (n, l, b) = (p.length(), p.digits(), p.codec().base() as i32);
    let device = state.device();
    let digits = state.reshape([n, l]);
    let masked = digits.clone().greater_equal_elem(b).int().sum_dim(1).reshape([n]).greater_elem(0);
    let code = digits.clamp(0, b - 1).mul(powers(p, n, &device)).sum_dim(1).reshape([n]);
    let invalid = masked.bool_or(code.clone().greater_equal_elem(p.codec().vocab() as i32));
    to_i32(code.mask_fill(invalid, -1))
}

/// (L, V): whether token v is consistent with position i's revealed digits.
fn consistency_mask(p: &KernelParams, state: Tensor<1, Int>, carry_over: bool) -> Tensor<2, Bool> {
    let (n, l, v) = (p.length(), p.digits(), p.codec().vocab() as usize);
    if !carry_over {
        return Tensor::<2, Int>::ones([n, v], &state.device()).greater_elem(0);
    }
    consistent_tokens(p.codec(), state.reshape([n, l]))
}

/// (rows, V): whether token v agrees with every revealed digit of each row of `patterns`
/// (rows × ℓ digits, the mask id where masked).
pub(crate) fn consistent_tokens(codec: &SubTokenCodec, patterns: Tensor<2, Int>) -> Tensor<2, Bool> {
    let [n, l] = patterns.dims();
    let v = codec.vocab() as usize;
    let device = patterns.device();
    let table: Vec<i32> = (0..v as u32).flat_map(|t| (0..l).map(move |j| codec.digit(t, j) as i32)).collect();
    let table = ints(table, [v, l], &device);
    let mut mask = Tensor::<2, Int>::ones([n, v], &device).greater_elem(0);
    for j in 0..l {
        let observed = patterns.clone().slice([0..n, j..j + 1]).expand([n, v]);
        let digit = table.clone().slice([0..v, j..j + 1]).reshape([1, v]).expand([n, v]);
        let ok = observed.clone().equal_elem(codec.mask_id() as i32).bool_or(observed.equal(digit));
        mask = mask.bool_and(ok);
    }
    mask
}

fn scaled(p: &KernelParams, logits: Tensor<2>, inv_temperature: f32) -> Tensor<2> {
    let (n, v) = (p.length(), p.codec().vocab() as usize);
    logits.slice([0..n, 0..v]).mul_scalar(inv_temperature)
}

/// See [`super::SubTokenKernels::normaliser`].
#[cfg(feature = "diagnostics")]
pub fn normaliser(
    p: &KernelParams,
    logits: Tensor<2>,
    state: Tensor<1, Int>,
    inv_temperature: f32,
    carry_over: bool,
) -> Normaliser {
    let n = p.length();
    let mask = consistency_mask(p, state, carry_over);
    let s = scaled(p, logits, inv_temperature).mask_fill(mask.clone().bool_not(), f32::NEG_INFINITY);
    let max = s.clone().max_dim(1);
    let sum = s.sub(max.clone()).exp().sum_dim(1);
    let log_normaliser = max.clone().add(sum.log()).reshape([n]);
    Normaliser { max: max.reshape([n]), log_normaliser, count: to_i32(mask.int().sum_dim(1).reshape([n])) }
}

/// (L, V): the candidates a draw keeps: consistent (with the filter) and, with cutoffs,
/// inside each position's truncation prefix of the scaled logits `s`.
fn kept(
    p: &KernelParams,
    state: Tensor<1, Int>,
    s: &Tensor<2>,
    cutoffs: Option<&Cutoffs>,
    carry_over: bool,
) -> Tensor<2, Bool> {
    let (n, v) = (p.length(), p.codec().vocab() as usize);
    let device = state.device();
    let keep = consistency_mask(p, state, carry_over);
    let Some(c) = cutoffs else { return keep };
    let score = c.score.clone().reshape([n, 1]).expand([n, v]);
    let token = c.token.clone().reshape([n, 1]).expand([n, v]);
    let ids = Tensor::<1, Int>::arange(0..v as i64, &device).reshape([1, v]).expand([n, v]);
    let inside = s.clone().greater(score.clone()).bool_or(s.clone().equal(score).bool_and(ids.lower_equal(token)));
    keep.bool_and(inside)
}

/// See [`super::SubTokenKernels::cutoffs`]: each row's candidates sorted by score, the
/// cumulative weights of the first k, and the last entry of the nucleus; its id is found
/// among the candidates of equal score (ties weigh the same, so the sort's order among them
/// does not matter), counting ids upwards. Burn's wgpu backend sorts on the host (a blocking
/// read, which a browser's WebGPU cannot do; the device executor refuses that case).
pub fn cutoffs(
    p: &KernelParams,
    logits: Tensor<2>,
    state: Tensor<1, Int>,
    inv_temperature: f32,
    top_k: Option<usize>,
    top_p: f32,
    carry_over: bool,
) -> Cutoffs {
    let (n, v) = (p.length(), p.codec().vocab() as usize);
    let device = state.device();
    let s = scaled(p, logits, inv_temperature);
    let candidate = consistency_mask(p, state, carry_over).bool_and(s.clone().is_finite());
    let count = candidate.clone().int().sum_dim(1);
    let none = count.clone().equal_elem(0);
    let s = s.mask_fill(candidate.clone().bool_not(), f32::NEG_INFINITY);
    let sorted = s.clone().sort_descending(1);
    let top = sorted.clone().slice([0..n, 0..1]).mask_fill(none.clone(), 0.0);
    let kept = match top_k {
        Some(k) => count.clamp_max(i32::try_from(k).unwrap_or(i32::MAX)),
        None => count,
    };
    let rank = Tensor::<1, Int>::arange(0..v as i64, &device).reshape([1, v]).expand([n, v]);
    let in_top_k = rank.lower(kept.clone().expand([n, v]));
    let weights = sorted.clone().sub(top.expand([n, v])).exp().mask_fill(in_top_k.clone().bool_not(), 0.0);
    let nucleus = if top_p < 1.0 {
        let budget = weights.clone().sum_dim(1).mul_scalar(top_p).expand([n, v]);
        weights.cumsum(1).lower_equal(budget).bool_and(in_top_k).int().sum_dim(1).clamp_min(1)
    } else {
        kept
    };
    let score = sorted.gather(1, nucleus.clone().sub_scalar(1).clamp_min(0)).mask_fill(none.clone(), f32::MAX);
    let level = score.clone().expand([n, v]);
    let within = nucleus.sub(s.clone().greater(level.clone()).int().sum_dim(1));
    let ties = s.equal(level).bool_and(candidate);
    let place = ties.clone().int().cumsum(1);
    let token = ties.bool_and(place.equal(within.expand([n, v]))).int().argmax(1).mask_fill(none, -1);
    Cutoffs { score: score.reshape([n]), token: to_i32(token.reshape([n])) }
}

/// See [`super::SubTokenKernels::digit_scores`]: each digit's marginal is the kept
/// probabilities scattered (summed) onto the digit values.
pub fn digit_scores(
    p: &KernelParams,
    logits: Tensor<2>,
    state: Tensor<1, Int>,
    inv_temperature: f32,
    cutoffs: Option<&Cutoffs>,
    carry_over: bool,
) -> DigitScores {
    let c = p.codec();
    let (n, l, v, b) = (p.length(), p.digits(), c.vocab() as usize, c.base() as usize);
    let device = state.device();
    let s = scaled(p, logits, inv_temperature);
    let keep = kept(p, state.clone(), &s, cutoffs, carry_over);
    let any = keep.clone().int().sum_dim(1).greater_elem(0);
    let s = s.mask_fill(keep.bool_not(), f32::NEG_INFINITY);
    // A row with nothing kept gets weight 0 everywhere (its maximum taken as 0, not −∞).
    let top = s.clone().max_dim(1).mask_fill(any.clone().bool_not(), 0.0);
    let weights = s.sub(top).exp();
    let probs = weights.clone().div(weights.sum_dim(1).clamp_min(f32::MIN_POSITIVE));
    let mut confidence = Vec::with_capacity(l);
    let mut entropy = Vec::with_capacity(l);
    for j in 0..l {
        let digit: Vec<i32> = (0..v as u32).map(|t| c.digit(t, j) as i32).collect();
        let index = ints(digit, [1, v], &device).expand([n, v]);
        let q = Tensor::<2>::zeros([n, b], &device).scatter(1, index, probs.clone(), IndexingUpdateOp::Add);
        confidence.push(q.clone().max_dim(1));
        entropy.push(q.clone().mul(q.clamp_min(f32::MIN_POSITIVE).log()).sum_dim(1).neg());
    }
    let scored = state.equal_elem(c.mask_id() as i32).bool_and(any.expand([n, l]).reshape([n * l]));
    let flat =
        |parts: Vec<Tensor<2>>| Tensor::cat(parts, 1).reshape([n * l]).mask_fill(scored.clone().bool_not(), -1.0);
    DigitScores { confidence: flat(confidence), entropy: flat(entropy) }
}

/// Uniforms of (stream, step) for every (position in `positions`, index < width), row-major.
fn uniform_table(
    seed: u64,
    stream: Stream,
    step: u32,
    positions: impl ExactSizeIterator<Item = u32>,
    width: usize,
) -> Vec<f32> {
    let rng = CounterRng::new(seed);
    let mut out = Vec::with_capacity(positions.len() * width);
    for i in positions {
        for block in 0..(width as u32).div_ceil(4) {
            let words = rng.block(stream, step, i, block);
            let take = (width - 4 * block as usize).min(4);
            out.extend(words[..take].iter().map(|&w| word_to_uniform(w)));
        }
    }
    out
}

/// See [`super::SubTokenKernels::draw`].
pub fn draw(
    p: &KernelParams,
    logits: Tensor<2>,
    state: Tensor<1, Int>,
    request: &DrawRequest,
    carry_over: bool,
) -> Tensor<1, Int> {
    let (n, v) = (p.length(), p.codec().vocab() as usize);
    let device = state.device();
    let s = scaled(p, logits, request.inv_temperature);
    let keep = kept(p, state, &s, request.cutoffs.as_ref(), carry_over);
    let score = if request.noise {
        let u = if request.positions.is_empty() {
            uniform_table(request.seed, Stream::Token, request.step, 0..n as u32, v)
        } else {
            uniform_table(request.seed, Stream::Token, request.step, request.positions.iter().copied(), v)
        };
        let u = floats(u, [n, v], &device);
        s.add(u.log().neg().log().neg())
    } else {
        s
    };
    let any = keep.clone().int().sum_dim(1).reshape([n]).greater_elem(0);
    let winner = score.mask_fill(keep.bool_not(), f32::NEG_INFINITY).argmax(1).reshape([n]);
    let live = any.bool_and(request.active.clone().not_equal_elem(0));
    to_i32(winner.mask_fill(live.bool_not(), -1))
}

/// See [`super::SubTokenKernels::reveal`].
pub fn reveal(
    p: &KernelParams,
    state: Tensor<1, Int>,
    x0: Tensor<1, Int>,
    seed: u64,
    step: u32,
    prob: f32,
    plan: Option<Tensor<1, Int>>,
) -> Revealed {
    let (n, l, b) = (p.length(), p.digits(), p.codec().base() as i32);
    let device = state.device();
    let chosen = match plan {
        Some(plan) => plan.equal_elem(step as i32),
        None => floats(uniform_table(seed, Stream::Reveal, step, 0..n as u32, l), [n * l], &device).lower_elem(prob),
    };
    let digits = token_digits(p, x0.clone().clamp_min(0));
    let drawn = x0.reshape([n, 1]).expand([n, l]).greater_equal_elem(0).reshape([n * l]);
    let reveal = state.clone().equal_elem(b).bool_and(drawn).bool_and(chosen);
    let changed = to_i32(reveal.clone().int().sum().greater_elem(0).int());
    Revealed { state: to_i32(state.mask_where(reveal, digits)), changed }
}
