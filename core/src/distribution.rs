//! The output distribution over full tokens, on the host: log-softmax, the carry-over
//! consistency filter, and MDLM's SUBS parameterisation (spec §4, §6.5).
//!
//! The filter is evaluated per position from that token's revealed digits, enumerating only
//! the consistent codes; no (L × V) mask is ever built.

use crate::codec::SubTokenCodec;
use crate::error::{PrimeError, Result};

/// Log-sum-exp of `values` over the entries `members` yields, or `None` if it yields none.
/// Accumulates in f64.
pub fn logsumexp_over(values: &[f32], members: impl Iterator<Item = u32> + Clone) -> Option<f32> {
    let max = members.clone().map(|v| values[v as usize]).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    let sum: f64 = members.map(|v| f64::from(values[v as usize] - max).exp()).sum();
    Some((f64::from(max) + sum.ln()) as f32)
}

/// Plain log-softmax of one row.
pub fn log_softmax(row: &[f32]) -> Vec<f32> {
    match logsumexp_over(row, 0..row.len() as u32) {
        Some(lse) => row.iter().map(|&x| x - lse).collect(),
        None => vec![f32::NAN; row.len()],
    }
}

/// The consistent tokens of one position: all V without the filter, else those agreeing with
/// every revealed digit of `pattern`.
pub fn consistent_tokens(codec: &SubTokenCodec, pattern: &[u32], carry_over: bool) -> Vec<u32> {
    if !carry_over {
        return (0..codec.vocab()).collect();
    }
    let mut out = Vec::new();
    codec.for_each_consistent(pattern, |v| out.push(v));
    out
}

/// Carry-over-filtered log-probabilities of one position: −∞ outside the consistent set,
/// log-softmax over it inside. `row` has V entries. Fails if no token is consistent.
pub fn carry_over_log_probs(codec: &SubTokenCodec, row: &[f32], pattern: &[u32], position: usize) -> Result<Vec<f32>> {
    let members = consistent_tokens(codec, pattern, true);
    let lse = logsumexp_over(row, members.iter().copied())
        .ok_or_else(|| PrimeError::NoConsistentToken { position, digits: pattern.to_vec() })?;
    let mut out = vec![f32::NEG_INFINITY; row.len()];
    for v in members {
        out[v as usize] = row[v as usize] - lse;
    }
    Ok(out)
}

/// The official MDLM SUBS log-probabilities of one position (`row` has V+1 entries, the last is
/// the mask class): −1e6 is added to the mask logit before normalising; a visible token gets 0 at
/// itself and −1e6 elsewhere.
pub fn subs_log_probs(row: &[f32], token: u32, mask_id: u32) -> Vec<f32> {
    const NEG: f32 = -1e6;
    if token != mask_id {
        let mut out = vec![NEG; row.len()];
        out[token as usize] = 0.0;
        return out;
    }
    let mut shifted = row.to_vec();
    shifted[mask_id as usize] += NEG;
    log_softmax(&shifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_probs_sum_to_one_and_respect_digits() {
        let codec = SubTokenCodec::new(300, 2).unwrap();
        let row: Vec<f32> = (0..300).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let lp = carry_over_log_probs(&codec, &row, &[5, 18], 0).unwrap();
        let total: f64 = lp.iter().map(|&x| f64::from(x).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        for (v, &x) in lp.iter().enumerate() {
            assert_eq!(x.is_finite(), v / 18 == 5, "token {v}");
        }
        // 16·18 + 12 = 300 is the first invalid code: digit 0 = 16 leaves 12 tokens.
        assert_eq!(codec.count_consistent(&[16, 18]), 12);
    }

    #[test]
    fn empty_consistent_set_is_an_error_not_nan() {
        let codec = SubTokenCodec::new(300, 2).unwrap();
        let row = vec![0.0f32; 300];
        assert!(carry_over_log_probs(&codec, &row, &[16, 17], 3).is_err());
    }
}
