//! What a partly revealed token can still become: the size of its consistent set and its most
//! likely members. The host form serves the host executor; the device form (Burn ops, for any
//! device) serves the device executor, which then reads back only these few numbers.

use burn::tensor::{Int, Tensor};
use serde::Serialize;

use super::PositionCandidates;
use super::host::int_tensor;
use crate::codec::SubTokenCodec;
use crate::distribution::consistent_tokens;
use crate::kernels::{self, to_i32};
use crate::logits::Logits;

/// What a position can still become: how many tokens agree with its revealed digits, and the
/// most likely of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidates {
    /// Size of the consistent set (vocabulary tokens agreeing with every revealed digit).
    pub consistent: usize,
    /// The most likely consistent tokens with their probability under the carry-over-filtered,
    /// temperature-scaled distribution, most likely first (lowest id on ties).
    pub top: Vec<(u32, f32)>,
}

/// The `k` most likely tokens consistent with `pattern` under one logits row (V or more
/// entries, only the first V are tokens) at temperature `temperature`; `None` when no
/// consistent token has a finite logit.
pub fn top_consistent(
    codec: &SubTokenCodec,
    row: &[f32],
    pattern: &[u32],
    temperature: f32,
    k: usize,
) -> Option<Candidates> {
    let members = consistent_tokens(codec, pattern, true);
    let scaled: Vec<(u32, f32)> =
        members.iter().map(|&v| (v, row[v as usize] / temperature)).filter(|(_, x)| x.is_finite()).collect();
    let max = scaled.iter().map(|&(_, x)| x).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    let total: f64 = scaled.iter().map(|&(_, x)| f64::from(x - max).exp()).sum();
    let mut top = scaled;
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(k);
    let top = top.into_iter().map(|(v, x)| (v, (f64::from(x - max).exp() / total) as f32)).collect();
    Some(Candidates { consistent: members.len(), top })
}

/// The candidates of some positions, computed on the device (see [`top_consistent_on_device`]).
#[derive(Debug, Clone)]
pub struct DeviceCandidates {
    /// Positions, in order.
    pub positions: Vec<u32>,
    /// Entries per position.
    pub k: usize,
    /// The k most likely consistent tokens of each position (P·k).
    pub tokens: Tensor<1, Int>,
    /// Their probabilities (P·k); 0 for padding where fewer than k tokens are consistent.
    pub probs: Tensor<1>,
    /// Consistent-set sizes (P).
    pub counts: Tensor<1, Int>,
}

impl DeviceCandidates {
    /// The host values read back (tokens then counts, and probabilities) as per-position
    /// candidates, dropping padding entries.
    pub fn to_host(&self, ints: &[i32], probs: &[f32]) -> Vec<PositionCandidates> {
        let (p, k) = (self.positions.len(), self.k);
        self.positions
            .iter()
            .enumerate()
            .map(|(n, &position)| PositionCandidates {
                position,
                count: ints[p * k + n].max(0) as u32,
                top: (0..k)
                    .filter(|&r| probs[n * k + r] > 0.0)
                    .map(|r| (ints[n * k + r].max(0) as u32, probs[n * k + r]))
                    .collect(),
            })
            .collect()
    }
}

/// [`top_consistent`] for the rows `positions` (ascending, non-empty) of device logits (L ×
/// V_out, in row blocks) under a device state (ℓ·L), on the device: only P·(2k + 1) numbers
/// are left to read. Ties in probability may be ordered differently from the host form.
pub fn top_consistent_on_device(
    codec: &SubTokenCodec,
    logits: &Logits,
    state: Tensor<1, Int>,
    positions: &[u32],
    temperature: f32,
    k: usize,
) -> DeviceCandidates {
    let k = k.min(codec.vocab() as usize);
    let mut parts = Vec::new();
    for block in logits.blocks() {
        // (position, row in the block) of the asked positions this block holds.
        let inside: Vec<(u32, u32)> = positions
            .iter()
            .filter_map(|&i| block.positions.binary_search(&i).ok().map(|row| (i, row as u32)))
            .collect();
        if !inside.is_empty() {
            parts.push(block_candidates(codec, block.rows.clone(), state.clone(), &inside, temperature, k));
        }
    }
    let cat_ints = |pick: fn(&DeviceCandidates) -> Tensor<1, Int>| Tensor::cat(parts.iter().map(pick).collect(), 0);
    DeviceCandidates {
        positions: parts.iter().flat_map(|c| c.positions.iter().copied()).collect(),
        k,
        tokens: cat_ints(|c| c.tokens.clone()),
        probs: Tensor::cat(parts.iter().map(|c| c.probs.clone()).collect(), 0),
        counts: cat_ints(|c| c.counts.clone()),
    }
}

/// [`top_consistent_on_device`] within one block of rows, for (position, row) pairs.
fn block_candidates(
    codec: &SubTokenCodec,
    logits: Tensor<2>,
    state: Tensor<1, Int>,
    inside: &[(u32, u32)],
    temperature: f32,
    k: usize,
) -> DeviceCandidates {
    let (p, l, v) = (inside.len(), codec.digits(), codec.vocab() as usize);
    let device = logits.device();
    let positions: Vec<u32> = inside.iter().map(|&(i, _)| i).collect();
    let at = int_tensor(positions.iter().map(|&i| i as i32).collect(), &device);
    let rows_of = int_tensor(inside.iter().map(|&(_, r)| r as i32).collect(), &device);
    let length = state.dims()[0] / l;
    let patterns = state.reshape([length, l]).select(0, at);
    let mask = kernels::consistent_tokens(codec, patterns);
    let scaled = logits.select(0, rows_of).slice([0..p, 0..v]).div_scalar(temperature);
    let scores = scaled.mask_fill(mask.clone().bool_not(), f32::NEG_INFINITY);
    let max = scores.clone().max_dim(1);
    let log_normaliser = max.clone().add(scores.clone().sub(max).exp().sum_dim(1).log());
    let (top, tokens) = scores.topk_with_indices(k, 1);
    let probs = top.sub(log_normaliser.expand([p, k])).exp();
    DeviceCandidates {
        positions,
        k,
        tokens: to_i32(tokens.reshape([p * k])),
        probs: probs.reshape([p * k]),
        counts: to_i32(mask.int().sum_dim(1).reshape([p])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::carry_over_log_probs;

    #[test]
    fn top_consistent_ranks_the_filtered_distribution() {
        let codec = SubTokenCodec::new(300, 2).unwrap();
        let row: Vec<f32> = (0..300).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let pattern = [5, 18];
        let got = top_consistent(&codec, &row, &pattern, 0.7, 3).unwrap();
        assert_eq!(got.consistent, 18);
        // Reference: the filtered log-probabilities at temperature 0.7, ranked by hand.
        let scaled: Vec<f32> = row.iter().map(|x| x / 0.7).collect();
        let lp = carry_over_log_probs(&codec, &scaled, &pattern, 0).unwrap();
        let mut ranked: Vec<(u32, f32)> =
            (0..300u32).filter(|&v| lp[v as usize].is_finite()).map(|v| (v, lp[v as usize])).collect();
        ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        assert_eq!(got.top.len(), 3);
        for ((v, p), (w, l)) in got.top.iter().zip(&ranked) {
            assert_eq!(v, w);
            assert!((p - l.exp()).abs() < 1e-6, "token {v}: {p} vs {}", l.exp());
        }
        assert!(top_consistent(&codec, &vec![f32::NEG_INFINITY; 300], &pattern, 1.0, 3).is_none());
    }
}
