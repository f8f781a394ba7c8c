//! The training loss (spec §5.1) and the marginalised validation bound (spec §5.3), both on the
//! carry-over-filtered output distribution, written with tensor ops so autodiff sees them.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::corpus::TokenCorpus;
use super::noise::{NoiseSchedule, NoisedBatch};
use crate::codec::SubTokenCodec;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::network::Network;
use crate::readback::read_f32;
use crate::rng::CounterRng;

/// Added (negated) to the logit of every token outside the consistent set: exp(−1e4) is 0 in f32,
/// and a finite value keeps gradients free of NaN.
const EXCLUDED: f64 = 1e4;

/// The loss of one model configuration on one device.
#[derive(Debug, Clone)]
pub struct Objective {
    codec: SubTokenCodec,
    vocab: usize,
    /// digit_j(v) for every token v, one (1, 1, V) table per digit slot j.
    digit_tables: Vec<Tensor<3>>,
}

/// Host tensors of one batch that the loss needs, uploaded.
struct BatchTensors {
    /// Clean digit j of every token, (B, L, 1) each.
    clean_digits: Vec<Tensor<3>>,
    /// 1 where digit j is revealed, (B, L, 1) each (for the marginal bound's weights).
    revealed_weight: Vec<Tensor<3>>,
    /// True where digit j is revealed, (B, L, 1) each.
    revealed: Vec<Tensor<3, Bool>>,
    /// Clean token ids, (B, L, 1).
    clean: Tensor<3, Int>,
    /// 1/t per row, (B, 1, 1).
    inverse_time: Tensor<3>,
}

impl Objective {
    /// The objective of `config` on `device`.
    pub fn new(config: &ModelConfig, device: &Device) -> Result<Self> {
        let codec = config.codec()?;
        let vocab = config.vocab_size as usize;
        let digit_tables = (0..codec.digits())
            .map(|j| {
                let d: Vec<f32> = (0..vocab as u32).map(|v| codec.digit(v, j) as f32).collect();
                Tensor::<3>::from_data(TensorData::new(d, [1, 1, vocab]), device)
            })
            .collect();
        Ok(Self { codec, vocab, digit_tables })
    }

    /// The sub-token codec.
    pub fn codec(&self) -> &SubTokenCodec {
        &self.codec
    }

    /// The official loss: mean over positions of −log p(x0 | y_t)/t under the carry-over filter.
    /// Fully revealed tokens contribute exactly 0. Returns a one-element tensor.
    pub fn training_loss(&self, logits: Tensor<3>, batch: &NoisedBatch) -> Tensor<1> {
        let device = logits.device();
        let b = self.upload(batch, &device);
        let logits = logits.narrow(2, 0, self.vocab);
        let filtered = self.filter(logits.clone(), &b);
        let nll = logsumexp(filtered) - logits.gather(2, b.clean);
        (nll * b.inverse_time).mean()
    }

    /// The marginalised bound of each row, in nats: Σ over masked sub-tokens of
    /// −log Σ_v p(v | y_t)[digit_j(v) = x0_j], times 1/t.
    pub fn marginal_bound(&self, logits: Tensor<3>, batch: &NoisedBatch) -> Tensor<1> {
        let device = logits.device();
        let b = self.upload(batch, &device);
        let [rows, length, _] = logits.dims();
        let filtered = self.filter(logits.narrow(2, 0, self.vocab), &b);
        let log_p = filtered.clone() - logsumexp(filtered);
        let mut total = Tensor::<3>::zeros([rows, length, 1], &device);
        for ((table, clean), revealed) in self.digit_tables.iter().zip(&b.clean_digits).zip(&b.revealed_weight) {
            let other = differs(table, clean, [rows, length, self.vocab]);
            let marginal = logsumexp(log_p.clone() - other * EXCLUDED);
            total = total - marginal * (revealed.clone().neg() + 1.0);
        }
        (total * b.inverse_time).sum_dim(1).reshape([rows])
    }

    /// Logits with every token inconsistent with the revealed digits set to −1e4 (the clean
    /// token is always consistent, so the maximum stays a real logit and the excluded terms'
    /// exponentials are exactly 0). The mask is built in one-byte booleans and applied in one
    /// pass: the float penalty sum it replaces took five passes of four bytes per digit over
    /// the B × L × V logits.
    fn filter(&self, logits: Tensor<3>, b: &BatchTensors) -> Tensor<3> {
        let shape = logits.dims();
        let mut excluded: Option<Tensor<3, Bool>> = None;
        for ((table, clean), revealed) in self.digit_tables.iter().zip(&b.clean_digits).zip(&b.revealed) {
            let differs = table.clone().expand(shape).not_equal(clean.clone().expand(shape));
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

    fn upload(&self, batch: &NoisedBatch, device: &Device) -> BatchTensors {
        let (rows, length, ell) = (batch.batch, batch.length, self.codec.digits());
        let column = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, [rows, length, 1]), device);
        let mut clean_digits = Vec::with_capacity(ell);
        let mut revealed_weight = Vec::with_capacity(ell);
        let mut revealed = Vec::with_capacity(ell);
        for j in 0..ell {
            clean_digits.push(column(batch.clean.iter().map(|&t| self.codec.digit(t, j) as f32).collect()));
            let slots: Vec<bool> = batch.masked.iter().skip(j).step_by(ell).map(|&m| !m).collect();
            revealed_weight.push(column(slots.iter().map(|&r| if r { 1.0 } else { 0.0 }).collect()));
            revealed.push(Tensor::from_data(TensorData::new(slots, [rows, length, 1]), device));
        }
        let clean: Vec<i64> = batch.clean.iter().map(|&t| i64::from(t)).collect();
        let inverse: Vec<f32> = batch.times.iter().map(|t| 1.0 / t).collect();
        BatchTensors {
            clean_digits,
            revealed_weight,
            revealed,
            clean: Tensor::from_data(TensorData::new(clean, [rows, length, 1]), device),
            inverse_time: Tensor::from_data(TensorData::new(inverse, [rows, 1, 1]), device),
        }
    }
}

/// 1 where digit_j(v) differs from the clean digit, 0 where it agrees; shape (B, L, V).
fn differs(table: &Tensor<3>, clean: &Tensor<3>, shape: [usize; 3]) -> Tensor<3> {
    (table.clone().expand(shape) - clean.clone().expand(shape)).abs().clamp_max(1.0)
}

/// log Σ exp over the last axis, (B, L, V) → (B, L, 1), stabilised by the (detached) maximum.
fn logsumexp(x: Tensor<3>) -> Tensor<3> {
    let max = x.clone().max_dim(2).detach();
    (x - max.clone()).exp().sum_dim(2).log() + max
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
    let objective = Objective::new(config, &device)?;
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
