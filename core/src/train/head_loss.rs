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
/// ℓ = 2, half at ℓ = 1).
pub(super) fn head_loss(head: &[Linear], hidden: Tensor<2>, targets: &RowTargets, objective: &Objective) -> Tensor<1> {
    let live = targets.live_rows();
    if live.is_empty() {
        // Nothing to score: a zero loss that is still part of the graph.
        return hidden.sum() * 0.0;
    }
    let index = |device: &Device| {
        let ids: Vec<i64> = live.iter().map(|&n| n as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(ids, [live.len()]), device)
    };
    let (hidden, targets) = match live.len() == targets.clean.len() {
        true => (hidden, targets.clone()),
        false => (hidden.clone().select(0, index(&hidden.device())), targets.rows(&live)),
    };
    let h = hidden.clone().inner();
    let parts: Vec<(Tensor<2>, Option<Tensor<1>>)> =
        head.iter().map(|p| (p.weight_t.val().inner(), p.bias().map(Tensor::inner))).collect();
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
    let (loss, grad) = nll_gradient(Tensor::cat(blocks, 1), &targets, objective);
    if !hidden.is_autodiff() {
        return loss;
    }
    let mut surrogate = Tensor::<1>::zeros([1], &hidden.device());
    let mut d_hidden: Option<Tensor<2>> = None;
    let mut start = 0;
    for (part, (w, _)) in head.iter().zip(&parts) {
        let width = w.dims()[1];
        let g = grad.clone().narrow(1, start, width);
        start += width;
        let d_weight = h.clone().transpose().matmul(g.clone());
        surrogate = surrogate + (part.weight_t.val() * d_weight).sum();
        if let Some(b) = part.bias() {
            surrogate = surrogate + (b * g.clone().sum_dim(0).reshape([width])).sum();
        }
        let d = g.matmul(w.clone().transpose());
        d_hidden = Some(match d_hidden {
            Some(before) => before + d,
            None => d,
        });
    }
    if let Some(d) = d_hidden {
        surrogate = surrogate + (hidden * d).sum();
    }
    surrogate.clone() - surrogate.detach() + loss
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
    use burn::tensor::Tensor;
    use burn_flex::Flex;
    use rayon::prelude::*;

    use super::TensorData;
    use crate::network::fused::exp;
    use crate::network::fused::host::{Kernel, owned, vectorised};
    use crate::train::RowTargets;

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
