//! The sampling flags every generating command takes, in one place: they build the core's
//! `SamplerSettings` and `GenerationRequest`.

use clap::Args;
use prime_core::sampler::{RevealPolicy, SamplingMode};
use prime_core::{EACH_CLASS, ExecutorChoice, GenerationRequest, ModelConfig, SamplerSettings};

/// Sampler settings and executor, shared by `prime generate`, `prime bench`, `prime-train words`
/// and `prime-train judge`. A command changes a default with `mut_arg` (e.g. the number of
/// steps). The mode and the executor are options, so that a command can tell a choice from the
/// default (`bench` times one path when they are given).
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Sampling steps T [default: the model's recommendation (`sampling` in its config.json),
    /// else 256].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the random stream (of the first sample, when a command draws several: sample i
    /// uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Nucleus mass (official rule); 1 disables it [default: the model's recommendation, else 1].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens [default: the model's recommendation, else off].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Temperature [default: the model's recommendation, else 1].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Sample without the carry-over consistency filter (as the official non-`_co_` models);
    /// the final digits may then decode to an id outside the vocabulary, which is an error.
    #[arg(long)]
    pub no_carry_over: bool,
    /// How reveal times are drawn (both modes have the same law) [default: ancestral].
    #[arg(long, value_enum)]
    pub mode: Option<SamplingMode>,
    /// Which masked sub-tokens a step reveals: `schedule` (the official random times),
    /// `confidence:τ` (every digit the model is at least τ sure of) or `entropy:γ` (the surest
    /// digits up to γ nats in all); the last two also reveal enough to end within T steps, and
    /// run on the host executor.
    #[arg(long, default_value = "schedule")]
    pub policy: RevealPolicy,
    /// Which executor runs the sampler's steps (`--sampler` is an old name for it)
    /// [default: auto].
    #[arg(long, alias = "sampler", value_enum)]
    pub executor: Option<ExecutorChoice>,
    /// Classifier-free guidance scale w for samples drawn for a class (each call also runs the
    /// network without the class: logits cond + w·(cond − uncond)) [default: the model's
    /// recommendation, else 0].
    #[arg(long)]
    pub guidance: Option<f32>,
    #[command(flatten)]
    pub class: ClassArg,
}

/// The `--class` value that draws without a class.
pub const NO_CLASS: &str = "none";

/// `--class`, for every command that draws samples.
#[derive(Args, Debug, Clone, Default)]
pub struct ClassArg {
    /// Class-conditioned models: the class to draw, by name or number; `each` gives the sample
    /// of seed s class s mod the number of classes (samples take the classes in turn); `none`
    /// draws without a class [default: each].
    #[arg(long)]
    pub class: Option<String>,
}

impl ClassArg {
    /// The class this flag asks `model` for (see [`GenerationRequest::class`]): the flag's
    /// value, each class in turn where it is left out and the model has classes, no class for
    /// `none` or a model without classes.
    pub fn resolve(&self, model: &ModelConfig) -> Option<String> {
        match self.class.as_deref() {
            Some(none) if none.trim().eq_ignore_ascii_case(NO_CLASS) => None,
            Some(class) => Some(class.to_string()),
            None if model.classes.is_empty() => None,
            None => Some(EACH_CLASS.to_string()),
        }
    }
}

impl SamplingArgs {
    /// The executor asked for (`auto` unless given).
    pub fn executor(&self) -> ExecutorChoice {
        self.executor.unwrap_or_default()
    }

    /// The sampler settings these flags describe for `model` (nothing recorded): a flag that is
    /// given wins, then the model's recommendation, then the official default.
    pub fn settings(&self, model: &ModelConfig) -> SamplerSettings {
        let recommended = model.sampling.settings();
        SamplerSettings {
            steps: self.steps.unwrap_or(recommended.steps),
            seed: self.seed,
            temperature: self.temperature.unwrap_or(recommended.temperature),
            top_p: self.top_p.unwrap_or(recommended.top_p),
            top_k: self.top_k.or(recommended.top_k),
            carry_over: !self.no_carry_over,
            record_guesses: false,
            mode: self.mode.unwrap_or_default(),
            policy: self.policy,
            guidance: self.guidance.unwrap_or(recommended.guidance),
        }
    }

    /// A request without tokens held fixed, with these settings, executor and class for
    /// `model`; a command adds its prompt, suffix or pins.
    pub fn request(&self, model: &ModelConfig) -> GenerationRequest {
        GenerationRequest {
            settings: self.settings(model),
            executor: self.executor(),
            class: self.class.resolve(model),
            ..GenerationRequest::default()
        }
    }
}
