//! What a generation asks for: sampler settings and the tokens held fixed.

use serde::{Deserialize, Serialize};

use crate::codec::SubTokenCodec;
use crate::config::{ModelClass, ModelConfig};
use crate::error::{PrimeError, Result};
use crate::sampler::RevealPolicy;

/// The most loop steps T: 2²⁰. Steps beyond the number of masked sub-tokens (8192 for the
/// largest official model) are mostly idle, and every step costs a kernel launch on a device.
pub const MAX_STEPS: usize = 1 << 20;

/// The most reveal draws (loop steps × masked sub-tokens) one generation may ask for: 2³²,
/// a few minutes of one CPU core for the ancestral loop.
pub const MAX_SAMPLER_DRAWS: u64 = 1 << 32;

/// Sampler knobs. Defaults reproduce the official sampler (nucleus off, τ = 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerSettings {
    /// Number of loop steps T (the final noise-removal call comes on top).
    pub steps: usize,
    /// Seed of the counter-based random stream.
    pub seed: u64,
    /// Temperature τ > 0 applied to the logits.
    pub temperature: f32,
    /// Official nucleus rule: keep the most likely tokens whose cumulative probability is ≤ p
    /// (the top one always kept); 1 disables it.
    pub top_p: f32,
    /// Keep only the k most likely tokens; `None` disables it.
    pub top_k: Option<usize>,
    /// Restrict x0 to tokens consistent with the revealed digits (carry-over filter).
    pub carry_over: bool,
    /// Record what a viewer shows: each step draws and reports the model's current guess for
    /// every not-yet-revealed token, and the most likely consistent tokens of each partly
    /// revealed one. It costs a network output at every step in event-driven mode.
    pub record_guesses: bool,
    /// How reveal times are drawn (the schedule policy).
    pub mode: SamplingMode,
    /// Which masked sub-tokens a loop step reveals: the schedule's random times (official), or
    /// an adaptive policy that decides from the step's network output.
    pub policy: RevealPolicy,
    /// Classifier-free guidance scale w for a generation drawn for a class: each network call
    /// also runs the sequence without its class, and the logits become
    /// `cond + w · (cond − uncond)`. 0 (the default) runs the class alone; without a class it
    /// has no effect.
    pub guidance: f32,
}

/// The largest guidance scale.
pub const MAX_GUIDANCE: f32 = 100.0;

/// How the sampler decides when each masked sub-token is revealed. Both modes have the same law.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SamplingMode {
    /// The official loop: at step k every masked sub-token is revealed with probability
    /// (t_k − s_k)/t_k, decided at that step.
    #[default]
    Ancestral,
    /// Every masked sub-token's reveal step is drawn up front: it is uniform over the T steps
    /// (probability dt each, spec §5.4), and with probability 1 − T·dt it waits for the final
    /// step. The steps without reveals are then known in advance: they cost no network call
    /// and no work, and x0 is drawn only for the tokens that reveal a digit.
    EventDriven,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            steps: 256,
            seed: 0,
            temperature: 1.0,
            top_p: 1.0,
            top_k: None,
            carry_over: true,
            record_guesses: false,
            mode: SamplingMode::Ancestral,
            policy: RevealPolicy::Schedule,
            guidance: 0.0,
        }
    }
}

impl SamplerSettings {
    /// Rejects settings outside their domain.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(PrimeError::Input(format!(
                "steps must be between 1 and {MAX_STEPS} (more steps than sub-tokens only add idle steps), got {}",
                self.steps
            )));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(PrimeError::Input(format!("temperature must be positive, got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(PrimeError::Input(format!("top-p must be in (0, 1], got {}", self.top_p)));
        }
        if !(0.0..=MAX_GUIDANCE).contains(&self.guidance) {
            return Err(PrimeError::Input(format!(
                "guidance must be between 0 and {MAX_GUIDANCE}, got {}",
                self.guidance
            )));
        }
        if self.top_k == Some(0) {
            return Err(PrimeError::Input("top-k must be at least 1".into()));
        }
        self.policy.validate()?;
        if self.policy.is_adaptive() && self.mode == SamplingMode::EventDriven {
            return Err(PrimeError::Input(format!(
                "the {} policy decides at each step from the network output; event-driven mode draws the \
                 schedule's reveal times up front: use one or the other",
                self.policy
            )));
        }
        Ok(())
    }

    /// Refuses a request whose sampler work, estimated as loop steps × masked sub-tokens
    /// (the reveal draws of the ancestral loop), exceeds `MAX_SAMPLER_DRAWS` (2³²). Every sub-token
    /// is revealed by step T, so steps beyond the number of masked sub-tokens are mostly idle.
    pub fn check_work(&self, masked_subtokens: usize) -> Result<()> {
        let draws = self.steps as f64 * masked_subtokens as f64;
        if draws <= MAX_SAMPLER_DRAWS as f64 {
            return Ok(());
        }
        Err(PrimeError::Input(format!(
            "steps = {} is too many for {masked_subtokens} masked sub-tokens: an estimated {draws:.1e} reveal draws \
             (steps × masked sub-tokens), above the limit of {:.1e} (several minutes of CPU); \
             steps beyond {masked_subtokens} are mostly idle, so at most {} steps lose little",
            self.steps,
            MAX_SAMPLER_DRAWS as f64,
            MAX_SAMPLER_DRAWS / masked_subtokens.max(1) as u64
        )))
    }

    /// Whether a truncation (top-k or top-p) is active.
    pub fn truncates(&self) -> bool {
        self.top_p < 1.0 || self.top_k.is_some()
    }
}

/// Tokens held fixed during generation: a prefix, a suffix and arbitrary pinned positions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Conditioning {
    /// Tokens at positions 0.. (a prompt).
    pub prefix: Vec<u32>,
    /// Tokens at the end of the sequence.
    pub suffix: Vec<u32>,
    /// (position, token) pairs anywhere.
    pub pinned: Vec<(usize, u32)>,
    /// The class the model is asked for (class-conditioned models; checked by the model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<u32>,
}

impl Conditioning {
    /// The fixed token of every position (`None` where free), checked against L and V.
    pub fn resolve(&self, length: usize, codec: &SubTokenCodec) -> Result<Vec<Option<u32>>> {
        if self.prefix.len() + self.suffix.len() > length {
            return Err(PrimeError::Input(format!(
                "prompt ({} tokens) and suffix ({} tokens) do not fit the model length of {length} tokens",
                self.prefix.len(),
                self.suffix.len()
            )));
        }
        let mut fixed = vec![None; length];
        let suffix_start = length - self.suffix.len();
        let assignments = self
            .prefix
            .iter()
            .enumerate()
            .map(|(i, &t)| (i, t))
            .chain(self.suffix.iter().enumerate().map(|(i, &t)| (suffix_start + i, t)))
            .chain(self.pinned.iter().copied());
        for (position, token) in assignments {
            if position >= length {
                return Err(PrimeError::Input(format!(
                    "pinned position {position} is outside the model length of {length} tokens"
                )));
            }
            codec.check_token(token, position)?;
            match fixed[position] {
                Some(other) if other != token => {
                    return Err(PrimeError::Input(format!("position {position} is fixed to both {other} and {token}")));
                }
                _ => fixed[position] = Some(token),
            }
        }
        Ok(fixed)
    }
}

/// How the final noise-removal call picks the remaining tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinalRule {
    /// Sample from the (filtered, temperature-scaled, untruncated) distribution: MDM-Prime.
    Sample,
    /// Take the most likely token: MDLM's greedy last step.
    Argmax,
}

/// What the sampler needs to know about the model.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerShape {
    /// The sub-token codec.
    pub codec: SubTokenCodec,
    /// Sequence length L in tokens.
    pub length: usize,
    /// Width of a logits row (V, or V + 1 with MDLM's mask class, which is never drawn).
    pub output_width: usize,
    /// The final step's rule.
    pub final_rule: FinalRule,
}

impl SamplerShape {
    /// The shape of a model with this config.
    pub fn from_config(config: &ModelConfig) -> Result<Self> {
        Ok(Self {
            codec: config.codec()?,
            length: config.length,
            output_width: config.output_width(),
            final_rule: match config.model_class {
                ModelClass::PerceiverDIT => FinalRule::Sample,
                ModelClass::DIT => FinalRule::Argmax,
            },
        })
    }
}
