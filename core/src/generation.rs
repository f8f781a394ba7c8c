//! One generation layer for the CLI, the bench and the browser: a request (prompt, suffix and
//! pins as text or ids, sampler settings, executor), checked against a model once, and started
//! as a [`Run`].

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{PrimeError, Result};
use crate::kernels::KernelPath;
use crate::model::Model;
use crate::sampler::{Conditioning, Run, Sampler, SamplerSettings, SamplerShape};

/// Tokens given as text (encoded with the model's tokenizer) or as ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tokens {
    /// Text; the empty text is no tokens.
    Text(String),
    /// Token ids.
    Ids(Vec<u32>),
}

impl Default for Tokens {
    fn default() -> Self {
        Self::Ids(Vec::new())
    }
}

impl Tokens {
    /// The ids, encoding text with `model`'s tokenizer; `what` names the tokens in errors.
    pub fn ids(&self, model: &Model, what: &str) -> Result<Vec<u32>> {
        match self {
            Self::Text(text) if text.is_empty() => Ok(Vec::new()),
            Self::Text(text) => model.encode_text(text, what),
            Self::Ids(ids) => Ok(ids.clone()),
        }
    }
}

/// Which executor carries out the sampler's steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ExecutorChoice {
    /// The WGSL kernels on a wgpu device (native GPU or the browser's WebGPU), the host
    /// executor elsewhere.
    #[default]
    Auto,
    /// The host executor: each network output is read back and drawn from on the host.
    Host,
    /// The device executor with the WGSL kernels (wgpu devices only).
    Shader,
    /// The device executor with the kernels' Burn-ops twins (any device).
    Twin,
}

impl ExecutorChoice {
    /// The name reports and trajectory headers use (`auto`, `host`, `shader`, `twin`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Host => "host",
            Self::Shader => "shader",
            Self::Twin => "twin",
        }
    }
}

/// Everything a generation asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationRequest {
    /// Tokens the sequence starts with.
    pub prompt: Tokens,
    /// Tokens the sequence ends with.
    pub suffix: Tokens,
    /// (position, token id) pairs held fixed anywhere.
    pub pins: Vec<(usize, u32)>,
    /// Steps, seed, temperature, truncation, carry-over, mode, recording.
    pub settings: SamplerSettings,
    /// Which executor runs the steps.
    pub executor: ExecutorChoice,
    /// Device executor: read every state back so that every event carries it (recording
    /// does this anyway).
    pub sync_states: bool,
    /// The class a class-conditioned model is asked for: a class name or number, or
    /// [`EACH_CLASS`] (the sample drawn with seed s takes class s mod the number of classes, so
    /// the samples of [`GenerationRequest::start_seeds`] take the classes in turn). Absent: no
    /// class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// The [`GenerationRequest::class`] that gives the samples of a batch the classes in turn.
pub const EACH_CLASS: &str = "each";

impl GenerationRequest {
    /// The executor this request gets on `model`'s device. Fails for the shaders off wgpu.
    pub fn resolve_executor(&self, model: &Model) -> Result<ExecutorChoice> {
        let on_wgpu = KernelPath::for_device(model.device()) == KernelPath::Shader;
        match self.executor {
            ExecutorChoice::Auto if on_wgpu => Ok(ExecutorChoice::Shader),
            ExecutorChoice::Auto => Ok(ExecutorChoice::Host),
            ExecutorChoice::Shader if !on_wgpu => {
                Err(PrimeError::Input("the shader executor needs a wgpu device (a GPU, or WebGPU)".into()))
            }
            choice => Ok(choice),
        }
    }

    /// Starts one generation of this request per offset i in `offsets`, with seed `seed + i`
    /// (each draws what a single run with that seed draws); [`crate::sampler::run_together`]
    /// batches their network calls.
    pub fn start_seeds(&self, model: &Model, offsets: Range<usize>) -> Result<Vec<Run>> {
        offsets.map(|i| self.start_offset(model, i)).collect()
    }

    /// Starts sample `i` of this request: the generation with seed `seed + i`.
    pub fn start_offset(&self, model: &Model, i: usize) -> Result<Run> {
        let seed = u64::try_from(i).ok().and_then(|i| self.settings.seed.checked_add(i)).ok_or_else(|| {
            PrimeError::Input(format!("seed {} + sample {i} overflows a 64-bit seed", self.settings.seed))
        })?;
        let mut request = self.clone();
        request.settings.seed = seed;
        request.start_as(model, self.class_of(model, i)?)
    }

    /// The class sample `i` asks for (see [`GenerationRequest::class`]).
    pub fn class_of(&self, model: &Model, i: usize) -> Result<Option<u32>> {
        let classes = &model.config().classes;
        match self.class.as_deref().map(str::trim) {
            None => Ok(None),
            Some(each) if each.eq_ignore_ascii_case(EACH_CLASS) && !classes.is_empty() => {
                let seed = self.settings.seed.wrapping_add(i as u64);
                Ok(Some((seed % classes.len() as u64) as u32))
            }
            Some(name) => model.config().class_id(name).map(Some),
        }
    }

    /// Checks the request against `model` and starts the generation (sample 0 of
    /// [`GenerationRequest::start_seeds`]). The carry-over filter is used only where the model
    /// was trained for it.
    pub fn start(&self, model: &Model) -> Result<Run> {
        self.start_as(model, self.class_of(model, 0)?)
    }

    fn start_as(&self, model: &Model, class: Option<u32>) -> Result<Run> {
        let conditioning = Conditioning {
            prefix: self.prompt.ids(model, "prompt")?,
            suffix: self.suffix.ids(model, "suffix")?,
            pinned: self.pins.clone(),
            class,
        };
        let mut settings = self.settings.clone();
        settings.carry_over &= model.config().carry_over;
        let sampler = Sampler::new(SamplerShape::from_config(model.config())?, settings, &conditioning)?;
        match self.resolve_executor(model)? {
            ExecutorChoice::Host | ExecutorChoice::Auto => Ok(Run::on_host(sampler)),
            ExecutorChoice::Shader => Run::on_device(sampler, KernelPath::Shader, model.device(), self.sync_states),
            ExecutorChoice::Twin => Run::on_device(sampler, KernelPath::Twin, model.device(), self.sync_states),
        }
    }
}
