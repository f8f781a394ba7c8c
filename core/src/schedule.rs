//! The sampler's time grid and the idle-step closed form (spec §5.4, §6.4).

/// The smallest time of the grid, `1e-5` as in the official sampler.
pub const T_MIN: f32 = 1e-5;

/// The official time grid: `ts = linspace(1, 1e-5, T+1)` in f32, `dt = (1 − 1e-5)/T` in f64,
/// and `s_k = t_k − dt` rounded to f32.
#[derive(Debug, Clone)]
pub struct TimeGrid {
    steps: usize,
    step: f32,
    dt: f64,
}

impl TimeGrid {
    /// The grid for `steps` ≥ 1 steps. Its times are computed when asked for, so the grid
    /// takes no memory per step.
    pub fn new(steps: usize) -> Self {
        let steps = steps.max(1);
        Self { steps, step: (T_MIN - 1.0) / steps as f32, dt: (1.0 - f64::from(T_MIN)) / steps as f64 }
    }

    /// Number of loop steps T.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The step size dt = (1 − 1e-5)/T.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// `t_k` of step k (0 ≤ k ≤ T): torch.linspace(1, 1e-5, T + 1) in f32, which computes
    /// start + k·step for the first half of the points and end − (T − k)·step for the second.
    pub fn t(&self, k: usize) -> f32 {
        let n = self.steps + 1;
        if k < n / 2 { 1.0 + self.step * k as f32 } else { T_MIN - self.step * (n - 1 - k) as f32 }
    }

    /// `s_k = t_k − dt` in f32.
    pub fn s(&self, k: usize) -> f32 {
        (f64::from(self.t(k)) - self.dt) as f32
    }

    /// The probability that a still-masked sub-token is revealed at step k, `(t − s)/t`.
    pub fn reveal_probability(&self, k: usize) -> f32 {
        let (t, s) = (self.t(k), self.s(k));
        (t - s) / t
    }
}

/// Closed-form idle-step ratio `(1 − dt)^N` for N masked sub-tokens at the start.
pub fn expected_idle_ratio(steps: usize, masked_subtokens: usize) -> f64 {
    let dt = (1.0 - f64::from(T_MIN)) / steps.max(1) as f64;
    (1.0 - dt).powf(masked_subtokens as f64)
}

/// Expected number of network calls with caching: first step, every non-idle step after it, and
/// the final noise-removal call: `1 + (T−1)(1 − ISR) + 1`.
pub fn expected_nfe(steps: usize, masked_subtokens: usize) -> f64 {
    let isr = expected_idle_ratio(steps, masked_subtokens);
    1.0 + (steps.max(1) as f64 - 1.0) * (1.0 - isr) + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's Table 1 ISR column (T = L = 1024), reproduced by the closed form.
    #[test]
    fn idle_ratio_matches_paper_table() {
        for (l, isr) in [(1, 0.3677), (2, 0.1352), (3, 0.0497), (4, 0.0183), (6, 0.0025), (8, 0.0003)] {
            let got = expected_idle_ratio(1024, 1024 * l);
            assert!((got - isr).abs() < 6e-5, "ℓ={l}: {got}");
        }
        assert!((expected_nfe(1024, 1024) - 648.8).abs() < 0.1);
    }

    #[test]
    fn grid_endpoints() {
        let g = TimeGrid::new(256);
        assert_eq!(g.t(0), 1.0);
        assert_eq!(g.t(256), T_MIN);
        assert!(g.s(255) > 0.0 && g.s(255) < 2e-5);
        assert!((g.reveal_probability(0) - (1.0 - 1e-5) / 256.0).abs() < 1e-6);
    }
}
