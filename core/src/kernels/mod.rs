//! The sub-token kernels: encode, decode, consistency filter + normaliser, truncation cutoffs,
//! categorical draw, digit scores (for the adaptive reveal policies) and reveal. Each exists twice with one contract: as a WGSL shader (`wgsl/`, launched on
//! burn-wgpu through Burn's `template` feature) and as a Burn-tensor-ops twin that runs on any
//! backend and serves as the shaders' test oracle.
//!
//! Integer tensors hold ids as i32; −1 marks "none" (an undecodable token, a position not
//! drawn, or one without candidates). Floats are f32.
//!
//! ## Why the f32 Gumbel draw is safe
//! The draw adds Gumbel noise `−ln(−ln u)` to each scaled logit and takes the argmax.
//! `u = (k + ½)·2⁻²³` for a 23-bit k, so u is exact in f32, never 0 or 1, and its cells have
//! equal mass 2⁻²³. The noise is therefore a 2²³-level quantisation of the exact Gumbel law,
//! bounded by about ±16.6 (at the extreme cells): a token's win probability is off by at most
//! the chance that its quantised noise lands in a cell that changes the winner, O(2⁻²³) per
//! competitor, far below what any test or user can see (the distribution test in
//! `tests/tests/suite/kernels.rs` checks draws against exact softmax probabilities). f32 rounding of
//! `logit/T + G` only decides exact near-ties (|Δ| ≲ 1e-7 relative), where either winner is
//! equally likely under the true law. The random words themselves are integers and equal
//! everywhere; `ln` is the platform's, so the CPU and a GPU agree to a few ULPs of the noise.

mod cube;
mod params;
mod shader;
mod twin;

use burn::tensor::{Device, Int, Tensor};

use crate::codec::SubTokenCodec;
use crate::error::{PrimeError, Result};
use crate::rng::Stream;
use crate::weights::f16_to_f32;

pub use params::{KernelParams, Launch};
pub(crate) use twin::{consistent_tokens, to_i32};

/// Which implementation runs the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// The WGSL shaders (burn-wgpu devices only).
    Shader,
    /// The Burn-tensor-ops twins (any device).
    Twin,
}

impl KernelPath {
    /// The shaders on a wgpu device, the twins elsewhere.
    pub fn for_device(device: &Device) -> Self {
        if cube::is_wgpu(device) { Self::Shader } else { Self::Twin }
    }
}

/// f16 values, given by their bits, as an f32 tensor on `device`: the `unpack` shader expands
/// them on the device (`Shader`), the twin on the host (`Twin`). Exact either way.
pub fn expand_f16(bits: &[u16], path: KernelPath, device: &Device) -> Result<Tensor<1>> {
    match path {
        KernelPath::Shader => shader::unpack_f16(bits, device),
        KernelPath::Twin => {
            Ok(Tensor::from_data(burn::tensor::TensorData::new(f16_to_f32(bits), [bits.len()]), device))
        }
    }
}

/// Per-position results of the consistency filter + normaliser.
#[cfg(feature = "diagnostics")]
#[derive(Debug, Clone)]
pub struct Normaliser {
    /// Maximum scaled logit over the consistent tokens (L).
    pub max: Tensor<1>,
    /// `log Σ exp(scaled logit)` over the consistent tokens (L).
    pub log_normaliser: Tensor<1>,
    /// Number of consistent tokens (L).
    pub count: Tensor<1, Int>,
}

/// Per-position truncation cutoffs (the sampler's top-k / top-p rule): a token competes iff its
/// scaled logit is above `score`, or equal with an id ≤ `token`.
#[derive(Debug, Clone)]
pub struct Cutoffs {
    /// Scaled logit of each position's last kept token (L).
    pub score: Tensor<1>,
    /// Id of each position's last kept token (L).
    pub token: Tensor<1, Int>,
}

/// What a draw needs besides logits and state.
#[derive(Debug, Clone)]
pub struct DrawRequest {
    /// Seed of the counter-based stream.
    pub seed: u64,
    /// Step whose noise is used.
    pub step: u32,
    /// 1 / temperature.
    pub inv_temperature: f32,
    /// Add Gumbel noise (a sample); without it, the argmax.
    pub noise: bool,
    /// Positions to draw (L; nonzero = draw).
    pub active: Tensor<1, Int>,
    /// Optional truncation.
    pub cutoffs: Option<Cutoffs>,
    /// Sequence position of each row, which keys its noise (the logits may hold only some
    /// positions' rows); empty: row r is position r.
    pub positions: Vec<u32>,
}

/// Each sub-token slot's digit scores under the distribution a draw uses (see
/// [`SubTokenKernels::digit_scores`]).
#[derive(Debug, Clone)]
pub struct DigitScores {
    /// The probability of the slot's most likely digit (ℓL); −1 where the slot is revealed or
    /// its position has no kept candidate.
    pub confidence: Tensor<1>,
    /// The entropy of the slot's digit distribution in nats (ℓL); −1 where `confidence` is.
    pub entropy: Tensor<1>,
}

/// Which masked slots a reveal uncovers.
#[derive(Debug, Clone)]
pub enum RevealRule {
    /// Each independently with this probability (the ancestral sampler).
    Probability(f32),
    /// Those whose entry in this (ℓL) plan equals the step (the event-driven sampler).
    Planned(Box<Tensor<1, Int>>),
}

/// The next state and whether anything changed.
#[derive(Debug, Clone)]
pub struct Revealed {
    /// The state after the reveal (ℓL).
    pub state: Tensor<1, Int>,
    /// One element: nonzero iff some sub-token was revealed.
    pub changed: Tensor<1, Int>,
}

/// The kernels for one codec, sequence length and output row width, on one path.
#[derive(Debug, Clone)]
pub struct SubTokenKernels {
    params: KernelParams,
    path: KernelPath,
}

impl SubTokenKernels {
    /// Kernels for sequences of `length` tokens whose logits rows have `width` ≥ V entries.
    /// Fails if the path is the shader path and `device` is not a wgpu device, or if the codes
    /// do not fit the shaders' 31-bit arithmetic.
    pub fn new(codec: &SubTokenCodec, length: usize, width: usize, path: KernelPath, device: &Device) -> Result<Self> {
        if path == KernelPath::Shader && !cube::is_wgpu(device) {
            return Err(PrimeError::Device("the WGSL kernels need a wgpu device".into()));
        }
        Ok(Self { params: KernelParams::new(codec, length, width)?, path })
    }

    /// The path in use.
    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// The static parameters.
    pub fn params(&self) -> &KernelParams {
        &self.params
    }

    /// Tokens (L) → flat digits (ℓL). Tokens must be in `[0, V)`.
    #[cfg(feature = "diagnostics")]
    pub fn encode(&self, tokens: Tensor<1, Int>) -> Result<Tensor<1, Int>> {
        self.params.check_len(tokens.dims()[0], 1, "tokens")?;
        match self.path {
            KernelPath::Shader => shader::encode(&self.params, tokens),
            KernelPath::Twin => Ok(twin::encode(&self.params, tokens)),
        }
    }

    /// Flat digits (ℓL) → tokens (L); −1 where a digit is masked or the code is invalid.
    #[cfg(feature = "diagnostics")]
    pub fn decode(&self, state: Tensor<1, Int>) -> Result<Tensor<1, Int>> {
        self.params.check_len(state.dims()[0], self.params.digits(), "state")?;
        match self.path {
            KernelPath::Shader => shader::decode(&self.params, state),
            KernelPath::Twin => Ok(twin::decode(&self.params, state)),
        }
    }

    /// Max, log-normaliser and count over each position's consistent tokens (all V without
    /// the carry-over filter), for logits scaled by `inv_temperature`.
    #[cfg(feature = "diagnostics")]
    pub fn normaliser(
        &self,
        logits: Tensor<2>,
        state: Tensor<1, Int>,
        inv_temperature: f32,
        carry_over: bool,
    ) -> Result<Normaliser> {
        self.check_inputs(&logits, &state)?;
        let words = self.params.words(&Launch { carry_over, inv_temperature, ..Launch::default() });
        match self.path {
            KernelPath::Shader => shader::normaliser(&self.params, &words, logits, state),
            KernelPath::Twin => Ok(twin::normaliser(&self.params, logits, state, inv_temperature, carry_over)),
        }
    }

    /// One token per active position from the filtered, scaled, optionally truncated
    /// distribution (Gumbel-max; ties to the lowest id); −1 elsewhere.
    pub fn draw(
        &self,
        logits: Tensor<2>,
        state: Tensor<1, Int>,
        request: &DrawRequest,
        carry_over: bool,
    ) -> Result<Tensor<1, Int>> {
        self.check_inputs(&logits, &state)?;
        self.params.check_len(request.active.dims()[0], 1, "active")?;
        if !request.positions.is_empty() {
            self.params.check_len(request.positions.len(), 1, "positions")?;
        }
        let words = self.params.words(&Launch {
            carry_over,
            seed: request.seed,
            step: request.step,
            inv_temperature: request.inv_temperature,
            noise: request.noise,
            cutoff: request.cutoffs.is_some(),
            ..Launch::default()
        });
        match self.path {
            KernelPath::Shader => shader::draw(&self.params, &words, logits, state, request),
            KernelPath::Twin => Ok(twin::draw(&self.params, logits, state, request, carry_over)),
        }
    }

    /// Each position's truncation cutoff under the sampler's rule
    /// (`sampler/truncation.rs`): over its candidates (consistent with the filter, finite
    /// scaled logit), top-k (`None`: off) and then the nucleus of mass `top_p` (1: off). A
    /// position without candidates gets token −1.
    pub fn cutoffs(
        &self,
        logits: Tensor<2>,
        state: Tensor<1, Int>,
        inv_temperature: f32,
        top_k: Option<usize>,
        top_p: f32,
        carry_over: bool,
    ) -> Result<Cutoffs> {
        self.check_inputs(&logits, &state)?;
        let words = self.params.words(&Launch {
            carry_over,
            inv_temperature,
            top_k: top_k.map_or(0, |k| u32::try_from(k).unwrap_or(u32::MAX)),
            top_p,
            ..Launch::default()
        });
        match self.path {
            KernelPath::Shader => shader::cutoffs(&self.params, &words, logits, state),
            KernelPath::Twin => {
                Ok(twin::cutoffs(&self.params, logits, state, inv_temperature, top_k, top_p, carry_over))
            }
        }
    }

    /// Every masked slot's digit marginal under the distribution [`Self::draw`] uses with the
    /// same logits, state, temperature, cutoffs and filter (the kept candidates' scaled
    /// logits, normalised over what is kept): its largest probability and its entropy.
    pub fn digit_scores(
        &self,
        logits: Tensor<2>,
        state: Tensor<1, Int>,
        inv_temperature: f32,
        cutoffs: Option<&Cutoffs>,
        carry_over: bool,
    ) -> Result<DigitScores> {
        self.check_inputs(&logits, &state)?;
        let words =
            self.params.words(&Launch { carry_over, inv_temperature, cutoff: cutoffs.is_some(), ..Launch::default() });
        match self.path {
            KernelPath::Shader => shader::digit_scores(&self.params, &words, logits, state, cutoffs),
            KernelPath::Twin => {
                Ok(twin::digit_scores(&self.params, logits, state, inv_temperature, cutoffs, carry_over))
            }
        }
    }

    /// Reveals masked slots from the drawn tokens `x0` (L, −1 = none) at `step`: each with
    /// probability `rule`'s p from the reveal stream of `seed`, or exactly the slots whose
    /// planned step equals `step`.
    pub fn reveal(
        &self,
        state: Tensor<1, Int>,
        x0: Tensor<1, Int>,
        seed: u64,
        step: u32,
        rule: RevealRule,
    ) -> Result<Revealed> {
        self.params.check_len(state.dims()[0], self.params.digits(), "state")?;
        self.params.check_len(x0.dims()[0], 1, "x0")?;
        let (p, plan) = match rule {
            RevealRule::Probability(p) => (p, None),
            RevealRule::Planned(plan) => {
                self.params.check_len(plan.dims()[0], self.params.digits(), "plan")?;
                (0.0, Some(*plan))
            }
        };
        let words = self.params.words(&Launch {
            seed,
            step,
            stream: Stream::Reveal,
            reveal_probability: p,
            planned: plan.is_some(),
            ..Launch::default()
        });
        match self.path {
            KernelPath::Shader => shader::reveal(&self.params, &words, state, x0, plan),
            KernelPath::Twin => Ok(twin::reveal(&self.params, state, x0, seed, step, p, plan)),
        }
    }

    fn check_inputs(&self, logits: &Tensor<2>, state: &Tensor<1, Int>) -> Result<()> {
        let [rows, width] = logits.dims();
        if rows != self.params.length() || width != self.params.width() {
            return Err(PrimeError::Input(format!(
                "logits have shape [{rows}, {width}], expected [{}, {}]",
                self.params.length(),
                self.params.width()
            )));
        }
        self.params.check_len(state.dims()[0], self.params.digits(), "state")
    }
}
