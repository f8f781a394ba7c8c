//! The training loss (spec §5.1) and the marginalised validation bound (spec §5.3), both on the
//! carry-over-filtered output distribution.
//!
//! [`Objective::training_loss`] is the loss as tensor ops, differentiated by Burn's autodiff: the
//! reference. [`Objective::head_loss`] is what the trainer runs: the output head and the loss
//! with their own gradient (see [`super::head_loss`]), the same value and the same gradients.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::corpus::TokenCorpus;
use super::head_loss;
use super::noise::{NoiseSchedule, NoisedBatch};
use crate::codec::SubTokenCodec;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::network::{Linear, Network};
use crate::readback::read_f32;
use crate::rng::CounterRng;

/// Added (negated) to the logit of every token outside the consistent set: exp(−1e4) is 0 in f32,
/// and a finite value keeps gradients free of NaN.
const EXCLUDED: f64 = 1e4;

/// The loss of one model configuration (on any device).
#[derive(Debug, Clone)]
pub struct Objective {
    codec: SubTokenCodec,
    vocab: usize,
    /// digit_j(v) for every token v, one table of V values per digit slot j.
    digit_tables: Vec<Vec<f32>>,
}

/// What the loss needs of each position (row) of a batch, on the host.
#[derive(Debug, Clone)]
pub struct RowTargets {
    /// Clean token of each row (N).
    pub clean: Vec<u32>,
    /// Whether digit j of row n is revealed, at `n·ℓ + j` (N·ℓ).
    pub revealed: Vec<bool>,
    /// The row's weight in the loss: 1/t of its sequence divided by the number of rows (N).
    pub weight: Vec<f32>,
}

impl RowTargets {
    /// The rows with at least one masked digit (the others add 0 to the loss).
    pub fn live_rows(&self) -> Vec<usize> {
        let ell = self.revealed.len() / self.clean.len().max(1);
        (0..self.clean.len()).filter(|&n| self.revealed[n * ell..(n + 1) * ell].iter().any(|r| !r)).collect()
    }

    /// The rows `rows`, in that order.
    pub fn rows(&self, rows: &[usize]) -> Self {
        let ell = self.revealed.len() / self.clean.len().max(1);
        Self {
            clean: rows.iter().map(|&n| self.clean[n]).collect(),
            revealed: rows.iter().flat_map(|&n| self.revealed[n * ell..(n + 1) * ell].iter().copied()).collect(),
            weight: rows.iter().map(|&n| self.weight[n]).collect(),
        }
    }
}

/// Per-row tensors of one batch (N = B·L rows), uploaded.
pub(super) struct RowTensors {
    /// Clean digit j of every row, (N, 1) each.
    clean_digits: Vec<Tensor<2>>,
    /// True where digit j is revealed, (N, 1) each.
    revealed: Vec<Tensor<2, Bool>>,
    /// Clean token ids, (N, 1).
    pub clean: Tensor<2, Int>,
    /// The row's weight (see [`RowTargets::weight`]), (N, 1).
    pub weight: Tensor<2>,
}

impl Objective {
    /// The objective of `config`.
    pub fn new(config: &ModelConfig) -> Result<Self> {
        let codec = config.codec()?;
        let vocab = config.vocab_size as usize;
        let digit_tables =
            (0..codec.digits()).map(|j| (0..vocab as u32).map(|v| codec.digit(v, j) as f32).collect()).collect();
        Ok(Self { codec, vocab, digit_tables })
    }

    /// The sub-token codec.
    pub fn codec(&self) -> &SubTokenCodec {
        &self.codec
    }

    /// The official loss: mean over positions of −log p(x0 | y_t)/t under the carry-over filter.
    /// Fully revealed tokens contribute exactly 0. Returns a one-element tensor. Tensor ops
    /// throughout, so Burn's autodiff differentiates it: the reference for [`Self::head_loss`].
    pub fn training_loss(&self, logits: Tensor<3>, batch: &NoisedBatch) -> Tensor<1> {
        let [rows, length, width] = logits.dims();
        let logits = logits.reshape([rows * length, width]).narrow(1, 0, self.vocab);
        let b = self.upload(&self.row_targets(batch), &logits.device());
        let filtered = self.filter(logits.clone(), &b);
        let nll = logsumexp(filtered) - logits.gather(1, b.clean);
        (nll * b.weight).sum()
    }

    /// The output head `head` (the network's vocabulary blocks, in order) applied to `hidden`
    /// (B·L, D), then [`Self::training_loss`] times `share` — the same value, with its gradient
    /// (to `hidden`, the head's weights and biases) computed in one fused pass instead of by
    /// autodiff through the B·L × V logits. The result must be the final loss (its upstream
    /// gradient is 1).
    pub fn head_loss(&self, head: &[Linear], hidden: Tensor<2>, batch: &NoisedBatch, share: f32) -> Tensor<1> {
        let mut targets = self.row_targets(batch);
        targets.weight.iter_mut().for_each(|w| *w *= share);
        head_loss::head_loss(head, hidden, &targets, self)
    }

    /// The marginalised bound of each row, in nats: Σ over masked sub-tokens of
    /// −log Σ_v p(v | y_t)[digit_j(v) = x0_j], times 1/t.
    pub fn marginal_bound(&self, logits: Tensor<3>, batch: &NoisedBatch) -> Tensor<1> {
        let [rows, length, width] = logits.dims();
        let logits = logits.reshape([rows * length, width]).narrow(1, 0, self.vocab);
        let device = logits.device();
        let b = self.upload(&self.row_targets(batch), &device);
        let filtered = self.filter(logits, &b);
        let log_p = filtered.clone() - logsumexp(filtered);
        let mut total = Tensor::<2>::zeros([rows * length, 1], &device);
        for (j, (clean, revealed)) in b.clean_digits.iter().zip(&b.revealed).enumerate() {
            let shape = [rows * length, self.vocab];
            let other = self.table(j, &device).expand(shape).not_equal(clean.clone().expand(shape));
            let marginal = logsumexp(log_p.clone().mask_fill(other, -EXCLUDED));
            total = total - marginal.mask_fill(revealed.clone(), 0.0);
        }
        // The rows' weights are 1/t over the number of rows; the bound wants 1/t.
        (total * b.weight * (rows * length) as f64).reshape([rows, length]).sum_dim(1).reshape([rows])
    }

    /// Logits (N, V) with every token inconsistent with the revealed digits set to −1e4 (the
    /// clean token is always consistent, so the maximum stays a real logit and the excluded
    /// terms' exponentials are exactly 0), in one `mask_fill` of a boolean mask.
    pub(super) fn filter(&self, logits: Tensor<2>, b: &RowTensors) -> Tensor<2> {
        let shape = logits.dims();
        let device = logits.device();
        let mut excluded: Option<Tensor<2, Bool>> = None;
        for (j, (clean, revealed)) in b.clean_digits.iter().zip(&b.revealed).enumerate() {
            let differs = self.table(j, &device).expand(shape).not_equal(clean.clone().expand(shape));
            let here = differs.bool_and(revealed.clone().expand(shape));
            excluded = Some(match excluded {
                Some(before) => before.bool_or(here),
                None => here,
            });
        }
        match excluded {
            Some(mask) => logits.mask_fill(mask, -EXCLUDED),
            None => logits,
        }
    }

    /// The host tables of digit_j(v), one per digit slot.
    pub fn digit_tables(&self) -> &[Vec<f32>] {
        &self.digit_tables
    }

    /// The vocabulary size V (the logits' first V columns are tokens).
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// digit_j(v) as a (1, V) tensor on `device`.
    fn table(&self, j: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.digit_tables[j].clone(), [1, self.vocab]), device)
    }

    /// The batch's per-row targets, each row weighted by 1/t over the number of rows.
    pub fn row_targets(&self, batch: &NoisedBatch) -> RowTargets {
        let rows = batch.clean.len();
        let weight = (0..rows).map(|n| 1.0 / batch.times[n / batch.length.max(1)] / rows as f32).collect();
        RowTargets { clean: batch.clean.clone(), revealed: batch.masked.iter().map(|&m| !m).collect(), weight }
    }

    /// The targets as tensors on `device`, for the tensor-op definitions.
    pub(super) fn upload(&self, targets: &RowTargets, device: &Device) -> RowTensors {
        let (rows, ell) = (targets.clean.len(), self.codec.digits());
        let column = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [rows, 1]), device);
        let mut clean_digits = Vec::with_capacity(ell);
        let mut revealed = Vec::with_capacity(ell);
        for j in 0..ell {
            clean_digits.push(column(targets.clean.iter().map(|&t| self.codec.digit(t, j) as f32).collect()));
            let slots: Vec<bool> = targets.revealed.iter().skip(j).step_by(ell).copied().collect();
            revealed.push(Tensor::from_data(TensorData::new(slots, [rows, 1]), device));
        }
        let clean: Vec<i64> = targets.clean.iter().map(|&t| i64::from(t)).collect();
        RowTensors {
            clean_digits,
            revealed,
            clean: Tensor::from_data(TensorData::new(clean, [rows, 1]), device),
            weight: column(targets.weight.clone()),
        }
    }
}

/// log Σ exp over the last axis, (N, V) → (N, 1), stabilised by the (detached) maximum.
pub(super) fn logsumexp(x: Tensor<2>) -> Tensor<2> {
    let max = x.clone().max_dim(1).detach();
    (x - max.clone()).exp().sum_dim(1).log() + max
}
/// A Monte-Carlo estimate of the validation NLL bound, in nats per token.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoundEstimate {
    /// Mean bound per token (an upper bound on the NLL per token, in expectation).
    pub nll_per_token: f64,
    /// Standard error of that mean over sequences.
    pub std_error: f64,
    /// Sequences scored.
    pub sequences: usize,
    /// Tokens scored.
    pub tokens: usize,
}

/// The marginalised bound of `network` on every non-overlapping window of `corpus`, with one
/// antithetic time per row drawn from `seed` (α_t = 1 − t, spec §5.3).
pub fn validation_bound(
    network: &Network,
    config: &ModelConfig,
    corpus: &TokenCorpus,
    batch_size: usize,
    seed: u64,
) -> Result<BoundEstimate> {
    let device = network.device();
    let objective = Objective::new(config)?;
    let rng = CounterRng::new(seed);
    let constants = network.constants();
    let windows: Vec<&[u32]> = corpus.windows(config.length).collect();
    let mut per_token = Vec::with_capacity(windows.len());
    for (step, chunk) in windows.chunks(batch_size.max(1)).enumerate() {
        let batch = NoisedBatch::draw(chunk, objective.codec(), &rng, step as u32, NoiseSchedule::Exact);
        let logits = network.forward(&constants, batch.input(&device), None);
        let bound = read_f32(objective.marginal_bound(logits, &batch), "the validation bound")?;
        per_token.extend(bound.iter().map(|&v| f64::from(v) / config.length as f64));
    }
    let n = per_token.len() as f64;
    let mean = per_token.iter().sum::<f64>() / n;
    let var = per_token.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Ok(BoundEstimate {
        nll_per_token: mean,
        std_error: (var / n).sqrt(),
        sequences: per_token.len(),
        tokens: per_token.len() * config.length,
    })
}
