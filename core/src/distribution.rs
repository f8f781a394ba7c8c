//! The output distribution over full tokens, on the host: log-softmax, the carry-over
//! consistency filter, and MDLM's SUBS parameterisation (spec §4, §6.5).
//!
//! The filter is evaluated per position from that token's revealed digits, enumerating only
//! the consistent codes; no (L × V) mask is ever built.

use serde::Serialize;

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

    #[test]
    fn empty_consistent_set_is_an_error_not_nan() {
        let codec = SubTokenCodec::new(300, 2).unwrap();
        let row = vec![0.0f32; 300];
        assert!(carry_over_log_probs(&codec, &row, &[16, 17], 3).is_err());
    }
}
