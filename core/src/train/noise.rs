//! The forward (noising) process on sub-tokens for a batch of clean windows (spec §2).

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::codec::SubTokenCodec;
use crate::rng::{CounterRng, Stream};

/// Sampling ε of the official training times and mask rate.
const EPS: f32 = 1e-3;

/// How diffusion times and mask rates are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSchedule {
    /// The official training draw: t = (1−ε)u + ε, mask rate (1−ε)t (loglinear, ε = 1e-3).
    Training,
    /// α_t = 1 − t exactly: t = u, mask rate t. Used for the validation bound, which is then a
    /// bound on the full process from the clean data to the all-masked state.
    Exact,
}

/// A batch of clean windows and their noised sub-token states.
#[derive(Debug, Clone)]
pub struct NoisedBatch {
    /// Rows B.
    pub batch: usize,
    /// Tokens per row L.
    pub length: usize,
    /// Noised sub-token ids (B·ℓL), masked slots hold the mask id.
    pub noised: Vec<u32>,
    /// Clean token ids (B·L).
    pub clean: Vec<u32>,
    /// Whether each sub-token slot (B·ℓL) is masked.
    pub masked: Vec<bool>,
    /// Diffusion time of each row.
    pub times: Vec<f32>,
    /// The class-embedding row each sequence is conditioned on (empty: none; see
    /// [`crate::network::Network::hidden`]).
    pub classes: Vec<u32>,
}

impl NoisedBatch {
    /// Noises `windows` (each of the same length) at `step`: one antithetic time per row,
    /// `u_r = (u + r/B) mod 1`, then every sub-token masked independently (spec §2).
    pub fn draw(
        windows: &[&[u32]],
        codec: &SubTokenCodec,
        rng: &CounterRng,
        step: u32,
        schedule: NoiseSchedule,
    ) -> Self {
        let batch = windows.len();
        let length = windows.first().map_or(0, |w| w.len());
        let ell = codec.digits();
        let u0 = rng.uniform(Stream::TrainSample, step, u32::MAX, 0);
        let mut out = Self {
            batch,
            length,
            noised: Vec::with_capacity(batch * length * ell),
            clean: Vec::with_capacity(batch * length),
            masked: Vec::with_capacity(batch * length * ell),
            times: Vec::with_capacity(batch),
            classes: Vec::new(),
        };
        let mut digits = vec![0u32; ell];
        for (r, window) in windows.iter().enumerate() {
            let u = (u0 + r as f32 / batch as f32).fract();
            let (t, rate) = match schedule {
                NoiseSchedule::Training => {
                    let t = (1.0 - EPS) * u + EPS;
                    (t, (1.0 - EPS) * t)
                }
                NoiseSchedule::Exact => (u, u),
            };
            out.times.push(t);
            for (i, &token) in window.iter().enumerate() {
                out.clean.push(token);
                codec.encode_token_into(token, &mut digits);
                for (j, &digit) in digits.iter().enumerate() {
                    let slot = (i * ell + j) as u32;
                    let masked = rng.uniform(Stream::TrainMask, step, r as u32, slot) < rate;
                    out.masked.push(masked);
                    out.noised.push(if masked { codec.mask_id() } else { digit });
                }
            }
        }
        out
    }

    /// The rows `range` of the batch (whole sequences), as a batch of their own.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Self {
        let (tokens, slots) = (self.length, self.masked.len() / self.batch.max(1));
        Self {
            batch: range.len(),
            length: self.length,
            noised: self.noised[range.start * slots..range.end * slots].to_vec(),
            clean: self.clean[range.start * tokens..range.end * tokens].to_vec(),
            masked: self.masked[range.start * slots..range.end * slots].to_vec(),
            times: self.times[range.clone()].to_vec(),
            classes: self.classes.get(range).map(<[u32]>::to_vec).unwrap_or_default(),
        }
    }

    /// The noised sub-token ids as a (B, ℓL) tensor.
    pub fn input(&self, device: &Device) -> Tensor<2, Int> {
        let ids: Vec<i64> = self.noised.iter().map(|&v| i64::from(v)).collect();
        let width = self.noised.len() / self.batch.max(1);
        Tensor::from_data(TensorData::new(ids, [self.batch, width]), device)
    }
}
