//! The output head and the training loss with their own gradient.
//!
//! Autodiff through the loss keeps a dozen B·L × V intermediates (filtered logits, their
//! exponentials, the gather's scatter, …) and runs each as a single-threaded pass: at the text
//! demo's shape that was most of a training step's elementwise time. Here the logits
//! `z = h·Wᵀ + b` are computed outside the graph, and one pass per row (all cores on the CPU)
//! turns them in place into the row's share of the loss and its gradient
//! `G = ∂loss/∂z = w·(p − onehot(x0))`, p the carry-over-filtered softmax and w the row's weight.
//! The head's gradients follow by two matrix products: `∂h = G·W`, `∂Wᵀ = hᵀ·G`, `∂b = Σ_rows G`.
//! They enter the graph through a surrogate whose gradient is exactly them,
//! `s = Σ h∘∂h + Σ Wᵀ∘∂Wᵀ + Σ b∘∂b` with the `∂` constants, and the loss returned is
//! `loss + (s − detach(s))`: the loss's value with s's gradient.
//!
//! [`twin::nll_gradient`] is the row pass as Burn ops (any device, the wgpu one included); the
//! tests compare it with the fused pass, and [`super::Objective::training_loss`] through
//! autodiff with the whole.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::objective::{Objective, RowTargets};
use crate::network::{Linear, fused};

/// See [`Objective::head_loss`].
///
/// Positions whose digits are all revealed add exactly 0 to the loss and its gradient, so only
/// the others go through the head (a third of the positions are fully revealed on average at
/// ℓ = 2, half at ℓ = 1). On burn-flex, positions with revealed digits whose consistent tokens
/// are few (see [`narrow_rows`]) are scored on those tokens alone ([`host::narrow_rows`]).
pub(super) fn head_loss(head: &[Linear], hidden: Tensor<2>, targets: &RowTargets, objective: &Objective) -> Tensor<1> {
    let live = targets.live_rows();
    if live.is_empty() {
        // Nothing to score: a zero loss that is still part of the graph.
        return hidden.sum() * 0.0;
    }
    #[cfg(not(target_family = "wasm"))]
    let narrow = match head {
        [only] if host::plain(&only.weight_t.val().inner()) => narrow_rows(targets, &live, objective),
        _ => Vec::new(),
    };
    #[cfg(target_family = "wasm")]
    let narrow: Vec<usize> = Vec::new();
    let dense: Vec<usize> = live.iter().copied().filter(|n| narrow.binary_search(n).is_err()).collect();
    let rows = targets.clean.len();
    let pick = |t: &Tensor<2>, subset: &[usize]| match subset.len() == rows {
        true => t.clone(),
        false => {
            let ids: Vec<i64> = subset.iter().map(|&n| n as i64).collect();
            t.clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(ids, [subset.len()]), &t.device()))
        }
    };
    let parts: Vec<(Tensor<2>, Option<Tensor<1>>)> =
        head.iter().map(|p| (p.weight_t.val().inner(), p.bias().map(Tensor::inner))).collect();
    let inner = hidden.clone().inner();
    let device = inner.device();
    let mut grads = HeadGradients::new(parts.len(), &device);
    let mut d_hidden = Vec::new();
    if !dense.is_empty() {
        let h = pick(&inner, &dense);
        let d = dense_rows(&parts, h, &targets.rows(&dense), objective, &mut grads);
        d_hidden.push((dense, d));
    }
    #[cfg(not(target_family = "wasm"))]
    if !narrow.is_empty() {
        let (h, t) = (pick(&inner, &narrow), targets.rows(&narrow));
        let d = match host::narrow_rows(&parts[0], &h, &t, objective, &mut grads) {
            Some(d) => d,
            None => dense_rows(&parts, h, &t, objective, &mut grads),
        };
        d_hidden.push((narrow, d));
    }
    if !hidden.is_autodiff() {
        return grads.loss;
    }
    let mut surrogate = Tensor::<1>::zeros([1], &hidden.device());
    for ((part, d_weight), d_bias) in head.iter().zip(grads.weight).zip(grads.bias) {
        if let Some(d_weight) = d_weight {
            surrogate = surrogate + (part.weight_t.val() * d_weight).sum();
        }
        if let (Some(b), Some(d_bias)) = (part.bias(), d_bias) {
            surrogate = surrogate + (b * d_bias).sum();
        }
    }
    for (subset, d) in d_hidden {
        surrogate = surrogate + (pick(&hidden, &subset) * d).sum();
    }
    surrogate.clone() - surrogate.detach() + grads.loss
}

/// The loss of some rows and the gradients of the head's parameters, summed over row groups
/// (`None`: no group has added to it yet).
pub(super) struct HeadGradients {
    /// Σ w·nll so far, (1).
    pub loss: Tensor<1>,
    /// ∂loss/∂Wᵀ of each vocabulary block, (D, width).
    pub weight: Vec<Option<Tensor<2>>>,
    /// ∂loss/∂b of each vocabulary block (its bias), (width).
    pub bias: Vec<Option<Tensor<1>>>,
}

impl HeadGradients {
    fn new(blocks: usize, device: &Device) -> Self {
        Self { loss: Tensor::zeros([1], device), weight: vec![None; blocks], bias: vec![None; blocks] }
    }
}

/// `total + more`, or `more` where nothing was added yet.
fn accumulate<const D: usize>(total: &mut Option<Tensor<D>>, more: Tensor<D>) {
    *total = Some(match total.take() {
        Some(before) => before + more,
        None => more,
    });
}

/// The rows `h` (n, D) through the whole head: logits, the loss pass, then the products. Adds
/// to `grads` and returns ∂loss/∂h (n, D).
fn dense_rows(
    parts: &[(Tensor<2>, Option<Tensor<1>>)],
    h: Tensor<2>,
    targets: &RowTargets,
    objective: &Objective,
    grads: &mut HeadGradients,
) -> Tensor<2> {
    let blocks = parts
        .iter()
        .map(|(w, b)| {
            let z = h.clone().matmul(w.clone());
            match b {
                Some(b) => fused::add_bias(z, b),
                None => z,
            }
        })
        .collect();
    let (loss, grad) = nll_gradient(Tensor::cat(blocks, 1), targets, objective);
    grads.loss = grads.loss.clone() + loss;
    let mut d_hidden: Option<Tensor<2>> = None;
    let mut start = 0;
    for (((w, b), d_weight), d_bias) in parts.iter().zip(grads.weight.iter_mut()).zip(grads.bias.iter_mut()) {
        let width = w.dims()[1];
        let g = grad.clone().narrow(1, start, width);
        start += width;
        accumulate(d_weight, h.clone().transpose().matmul(g.clone()));
        if b.is_some() {
            accumulate(d_bias, g.clone().sum_dim(0).reshape([width]));
        }
        accumulate(&mut d_hidden, g.matmul(w.clone().transpose()));
    }
    d_hidden.unwrap_or_else(|| Tensor::zeros(h.dims(), &h.device()))
}

/// The live rows (of `live`, ascending) whose consistent tokens are at most a quarter of the
/// vocabulary: scored on those alone, they cost a small part of a full row of the head.
pub fn narrow_rows(targets: &RowTargets, live: &[usize], objective: &Objective) -> Vec<usize> {
    let codec = objective.codec();
    let (ell, base) = (codec.digits(), u64::from(codec.base()));
    let vocab = objective.vocab() as u64;
    live.iter()
        .copied()
        .filter(|&n| {
            let masked = targets.revealed[n * ell..(n + 1) * ell].iter().filter(|r| !**r).count();
            let consistent = (0..masked).try_fold(1u64, |s, _| s.checked_mul(base)).unwrap_or(u64::MAX);
            consistent.saturating_mul(4) <= vocab
        })
        .collect()
}

/// The weighted loss Σ_n w_n·nll_n of logits (N, W) (a one-element tensor) and its gradient
/// (N, W); columns from V on are not tokens and get gradient 0. Fused on burn-flex, Burn ops
/// elsewhere.
pub fn nll_gradient(logits: Tensor<2>, targets: &RowTargets, objective: &Objective) -> (Tensor<1>, Tensor<2>) {
    #[cfg(not(target_family = "wasm"))]
    let logits = match host::nll_gradient(logits, targets, objective.digit_tables(), objective.vocab()) {
        Ok(out) => return out,
        Err(logits) => *logits,
    };
    twin::nll_gradient(logits, targets, objective)
}

/// The row pass as Burn ops, on any device.
pub mod twin {
    use burn::tensor::{Int, Tensor};

    use crate::train::objective::{Objective, RowTargets, logsumexp};

    /// See [`super::nll_gradient`].
    pub fn nll_gradient(logits: Tensor<2>, targets: &RowTargets, objective: &Objective) -> (Tensor<1>, Tensor<2>) {
        let device = logits.device();
        let [rows, width] = logits.dims();
        let vocab = objective.vocab();
        let t = objective.upload(targets, &device);
        let tokens = logits.narrow(1, 0, vocab);
        let filtered = objective.filter(tokens.clone(), &t);
        let lse = logsumexp(filtered.clone());
        let nll = lse.clone() - tokens.gather(1, t.clean.clone());
        let loss = (nll * t.weight.clone()).sum();
        let ids = Tensor::<1, Int>::arange(0..vocab as i64, &device).reshape([1, vocab]);
        let onehot = ids.expand([rows, vocab]).equal(t.clean.expand([rows, vocab])).float();
        let grad = ((filtered - lse).exp() - onehot) * t.weight;
        let grad = match width - vocab {
            0 => grad,
            pad => Tensor::cat(vec![grad, Tensor::zeros([rows, pad], &device)], 1),
        };
        (loss, grad)
    }
}

/// The row pass on burn-flex: rows in parallel, each in three vectorised sweeps.
#[cfg(not(target_family = "wasm"))]
pub mod host {
    use burn::tensor::{DType, Shape, Tensor};
    use burn_flex::{Flex, FlexTensor};
    use rayon::prelude::*;

    use super::{HeadGradients, TensorData};
    use crate::network::fused::exp;
    use crate::network::fused::host::{Kernel, flex, flex_contiguous, owned, values, vectorised};
    use crate::readback::read_f32;
    use crate::train::{Objective, RowTargets};

    /// Logit values per parallel task (rounded to whole rows).
    const TASK: usize = 1 << 16;
    /// Independent accumulators of the row reductions, so they vectorise.
    const LANES: usize = 16;

    /// See [`super::nll_gradient`]: the gradient written over the logits' buffer. Gives the
    /// logits back where they are not a plain f32 burn-flex tensor or the targets do not fit.
    pub fn nll_gradient(
        logits: Tensor<2>,
        targets: &RowTargets,
        tables: &[Vec<f32>],
        vocab: usize,
    ) -> Result<(Tensor<1>, Tensor<2>), Box<Tensor<2>>> {
        let [rows, width] = logits.dims();
        let ell = tables.len();
        let fits = targets.clean.len() == rows
            && targets.weight.len() == rows
            && targets.revealed.len() == rows * ell
            && (1..=width).contains(&vocab)
            && tables.iter().all(|t| t.len() == vocab)
            && targets.clean.iter().all(|&c| (c as usize) < vocab);
        if !fits {
            return Err(Box::new(logits));
        }
        let device = logits.device();
        let mut out = owned(logits)?;
        let chunk = (TASK / width).max(1);
        let loss: f64 = out.storage_mut::<f32>()[..rows * width]
            .par_chunks_mut(chunk * width)
            .enumerate()
            .map_init(
                || vec![0.0f32; vocab],
                |mask, (i, block)| {
                    let mut sum = 0.0;
                    for (r, row) in block.chunks_exact_mut(width).enumerate() {
                        let n = i * chunk + r;
                        sum += vectorised(Row {
                            row,
                            mask,
                            tables,
                            clean: targets.clean[n] as usize,
                            revealed: &targets.revealed[n * ell..(n + 1) * ell],
                            weight: targets.weight[n],
                        });
                    }
                    sum
                },
            )
            .sum();
        let loss = Tensor::<1>::from_data(TensorData::new(vec![loss as f32], [1]), &device);
        Ok((loss, Tensor::from_primitive::<Flex>(out)))
    }

    /// Whether `t` is a plain contiguous f32 burn-flex tensor.
    pub fn plain(t: &Tensor<2>) -> bool {
        flex(t).is_some()
    }

    /// What one narrow row gives: its consistent tokens (ascending), the gradient of its loss
    /// with respect to their logits, and its weighted loss.
    struct NarrowRow {
        tokens: Vec<usize>,
        grad: Vec<f32>,
        loss: f64,
    }

    /// Rows `h` (n, D) scored on their consistent tokens alone, through the head `part`
    /// (Wᵀ (D, width), bias): the same loss and gradients as the full rows, whose other tokens'
    /// probabilities are exactly 0 under the carry-over filter. Adds to `grads` (the first
    /// block's) and returns ∂loss/∂h (n, D); `None` (and nothing added) where a tensor is not
    /// an f32 burn-flex one.
    pub(in crate::train) fn narrow_rows(
        part: &(Tensor<2>, Option<Tensor<1>>),
        h: &Tensor<2>,
        targets: &RowTargets,
        objective: &Objective,
        grads: &mut HeadGradients,
    ) -> Option<Tensor<2>> {
        let device = h.device();
        let [n, d_model] = h.dims();
        let width = part.0.dims()[1];
        let (w, h) = (flex_contiguous(&part.0)?, flex_contiguous(h)?);
        let bias = match &part.1 {
            Some(b) => Some(read_f32(b.clone(), "the output bias").ok()?),
            None => None,
        };
        let d_weight = match grads.weight[0].take() {
            None => FlexTensor::zeros(Shape::new([d_model, width]), DType::F32),
            Some(t) => match owned(t) {
                Ok(t) => t,
                Err(t) => {
                    grads.weight[0] = Some(*t);
                    return None;
                }
            },
        };
        let d_bias = match (&bias, grads.bias[0].take()) {
            (None, _) => None,
            (Some(_), None) => Some(vec![0.0f32; width]),
            (Some(_), Some(b)) => match read_f32(b.clone(), "the output bias's gradient") {
                Ok(v) => Some(v),
                Err(_) => {
                    grads.bias[0] = Some(b);
                    grads.weight[0] = Some(Tensor::from_primitive::<Flex>(d_weight));
                    return None;
                }
            },
        };
        let (w, h) = (values(&w), values(&h));
        let codec = objective.codec();
        let ell = codec.digits();
        let rows: Vec<NarrowRow> = (0..n)
            .into_par_iter()
            .map(|r| {
                let clean = targets.clean[r];
                let mut tokens = vec![0u64];
                for j in 0..ell {
                    let power = codec.digit_power(j);
                    if targets.revealed[r * ell + j] {
                        let at = u64::from(codec.digit(clean, j)) * power;
                        tokens.iter_mut().for_each(|t| *t += at);
                    } else {
                        tokens = tokens
                            .iter()
                            .flat_map(|&t| (0..u64::from(codec.base())).map(move |d| t + d * power))
                            .collect();
                    }
                }
                let tokens: Vec<usize> =
                    tokens.into_iter().filter(|&t| t < u64::from(codec.vocab())).map(|t| t as usize).collect();
                let h = &h[r * d_model..(r + 1) * d_model];
                let mut z: Vec<f32> = match &bias {
                    Some(b) => tokens.iter().map(|&t| b[t]).collect(),
                    None => vec![0.0; tokens.len()],
                };
                for (d, &hd) in h.iter().enumerate() {
                    let w = &w[d * width..(d + 1) * width];
                    z.iter_mut().zip(&tokens).for_each(|(z, &t)| *z += hd * w[t]);
                }
                let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let lse = max + z.iter().map(|&v| exp(v - max)).sum::<f32>().ln();
                let weight = targets.weight[r];
                let mut loss = 0.0;
                for (z, &t) in z.iter_mut().zip(&tokens) {
                    let target = t == clean as usize;
                    if target {
                        loss = f64::from(weight * (lse - *z));
                    }
                    *z = weight * (exp(*z - lse) - if target { 1.0 } else { 0.0 });
                }
                NarrowRow { tokens, grad: z, loss }
            })
            .collect();
        let mut d_hidden = vec![0.0f32; n * d_model];
        d_hidden.par_chunks_mut(d_model.max(1)).zip(&rows).for_each(|(out, row)| {
            for (d, o) in out.iter_mut().enumerate() {
                let w = &w[d * width..(d + 1) * width];
                *o = row.tokens.iter().zip(&row.grad).map(|(&t, &g)| g * w[t]).sum();
            }
        });
        let mut d_weight = d_weight;
        d_weight.storage_mut::<f32>()[..d_model * width].par_chunks_mut(width.max(1)).enumerate().for_each(
            |(d, out)| {
                for (r, row) in rows.iter().enumerate() {
                    let hd = h[r * d_model + d];
                    row.tokens.iter().zip(&row.grad).for_each(|(&t, &g)| out[t] += hd * g);
                }
            },
        );
        grads.weight[0] = Some(Tensor::from_primitive::<Flex>(d_weight));
        if let Some(mut sums) = d_bias {
            for row in &rows {
                row.tokens.iter().zip(&row.grad).for_each(|(&t, &g)| sums[t] += g);
            }
            grads.bias[0] = Some(Tensor::from_data(TensorData::new(sums, [width]), &device));
        }
        let loss: f64 = rows.iter().map(|r| r.loss).sum();
        grads.loss = grads.loss.clone() + loss as f32;
        Some(Tensor::from_data(TensorData::new(d_hidden, [n, d_model]), &device))
    }

    /// One row: its logits (W, overwritten by the gradient), scratch for the consistency mask
    /// (V), and its targets.
    struct Row<'a> {
        row: &'a mut [f32],
        mask: &'a mut [f32],
        tables: &'a [Vec<f32>],
        clean: usize,
        revealed: &'a [bool],
        weight: f32,
    }

    impl Kernel for Row<'_> {
        type Output = f64;
        #[inline(always)]
        fn run(self) -> f64 {
            let Row { row, mask, tables, clean, revealed, weight } = self;
            let (z, pad) = row.split_at_mut(mask.len());
            pad.fill(0.0);
            mask.fill(1.0);
            for (table, _) in tables.iter().zip(revealed).filter(|(_, r)| **r) {
                let digit = table[clean];
                mask.iter_mut().zip(table).for_each(|(m, &t)| *m = if t == digit { *m } else { 0.0 });
            }
            let max = masked_max(z, mask);
            let sum = masked_exp_sum(z, mask, max);
            let lse = max + sum.ln();
            let nll = lse - z[clean];
            z.iter_mut().zip(mask.iter()).for_each(|(z, &m)| *z = weight * m * exp(*z - lse));
            z[clean] -= weight;
            f64::from(weight * nll)
        }
    }

    /// The largest `z` where `mask` is 1 (the clean token always is).
    #[inline(always)]
    fn masked_max(z: &[f32], mask: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let (zs, ms) = (z.chunks_exact(LANES), mask.chunks_exact(LANES));
        let (z_rest, m_rest) = (zs.remainder(), ms.remainder());
        for (zs, ms) in zs.zip(ms) {
            for k in 0..LANES {
                let v = if ms[k] > 0.0 { zs[k] } else { f32::NEG_INFINITY };
                acc[k] = if v > acc[k] { v } else { acc[k] };
            }
        }
        for (&z, &m) in z_rest.iter().zip(m_rest) {
            if m > 0.0 && z > acc[0] {
                acc[0] = z;
            }
        }
        acc.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }

    /// `Σ mask·e^(z − max)`.
    #[inline(always)]
    fn masked_exp_sum(z: &[f32], mask: &[f32], max: f32) -> f32 {
        let mut acc = [0.0f32; LANES];
        let (zs, ms) = (z.chunks_exact(LANES), mask.chunks_exact(LANES));
        let rest: f32 = zs.remainder().iter().zip(ms.remainder()).map(|(&z, &m)| m * exp(z - max)).sum();
        for (zs, ms) in zs.zip(ms) {
            for k in 0..LANES {
                acc[k] += ms[k] * exp(zs[k] - max);
            }
        }
        acc.iter().sum::<f32>() + rest
    }
}
