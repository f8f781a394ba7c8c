//! Top-k and the official nucleus rule, as a per-position cutoff rather than a mask.
//!
//! Candidates are ordered by (scaled logit descending, id ascending) — a stable descending sort.
//! The kept set is always a prefix of that order, so it is described by its last member: token
//! `v` is kept iff `s_v > s_c`, or `s_v = s_c` and `v ≤ c`.

/// The last kept candidate of a position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cutoff {
    /// Its scaled logit.
    pub score: f32,
    /// Its token id.
    pub token: u32,
}

impl Cutoff {
    /// Whether a candidate with this score and id is inside the kept prefix.
    pub fn keeps(&self, score: f32, token: u32) -> bool {
        score > self.score || (score == self.score && token <= self.token)
    }
}

/// The cutoff for `candidates` (token, scaled logit; finite logits only), keeping at most
/// `top_k` and then, on the renormalised remainder, the official nucleus of mass `top_p`.
/// Returns `None` when `candidates` is empty.
pub fn cutoff(mut candidates: Vec<(u32, f32)>, top_k: Option<usize>, top_p: f32) -> Option<Cutoff> {
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = candidates.len().min(top_k.unwrap_or(usize::MAX));
    if kept == 0 {
        return None;
    }
    if top_p < 1.0 {
        let max = f64::from(candidates[0].1);
        let weights: Vec<f64> = candidates[..kept].iter().map(|c| (f64::from(c.1) - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut cumulative = 0.0;
        let mut nucleus = 0;
        for w in &weights {
            cumulative += w / total;
            if cumulative <= f64::from(top_p) {
                nucleus += 1;
            } else {
                break;
            }
        }
        kept = nucleus.max(1);
    }
    let last = candidates[kept - 1];
    Some(Cutoff { score: last.1, token: last.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nucleus_drops_the_crossing_entry_but_keeps_the_top() {
        // probabilities 0.5, 0.3, 0.2 (ids 2, 0, 1)
        let c = vec![(0, 0.3f32.ln()), (1, 0.2f32.ln()), (2, 0.5f32.ln())];
        let cut = cutoff(c.clone(), None, 0.85).unwrap();
        assert_eq!(cut.token, 0, "0.5 + 0.3 ≤ 0.85 keeps two");
        let cut = cutoff(c.clone(), None, 0.79).unwrap();
        assert_eq!(cut.token, 2, "0.8 > 0.79: the crossing entry is dropped");
        let cut = cutoff(c.clone(), None, 0.1).unwrap();
        assert_eq!(cut.token, 2, "top-1 always kept");
        let cut = cutoff(c, Some(2), 1.0).unwrap();
        assert!(cut.keeps(0.3f32.ln(), 0) && !cut.keeps(0.2f32.ln(), 1));
    }

    #[test]
    fn ties_break_by_lower_id() {
        let c = vec![(5, 1.0f32), (3, 1.0), (9, 0.0)];
        let cut = cutoff(c, Some(1), 1.0).unwrap();
        assert_eq!(cut.token, 3);
        assert!(cut.keeps(1.0, 3) && !cut.keeps(1.0, 5));
    }
}
