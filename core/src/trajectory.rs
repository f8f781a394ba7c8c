//! The trajectory format: one generation, step by step, as JSON Lines. `prime generate
//! --trajectory` writes it, the page exports it and replays it.
//!
//! Line 1 is a [`Header`] (`format` = `prime-trajectory`, `version` = 1: the model, the request,
//! which positions are fixed); then one [`StepRecord`] per step (the sampler's [`StepEvent`],
//! flattened, plus the texts of token ids not labelled before and the bytes read back); the last
//! line is an [`Ending`] (the outcome and the text).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::config::ModelClass;
use crate::error::{PrimeError, Result};
use crate::generation::GenerationRequest;
use crate::image::{ImageShape, Pixel};
use crate::model::Model;
use crate::recommended::SamplingDefaults;
use crate::sampler::{Outcome, Run, StepEvent};

/// The `format` of every trajectory header.
pub const FORMAT: &str = "prime-trajectory";
/// The version this runtime writes and reads.
pub const VERSION: u32 = 1;

/// What a viewer needs to know about the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// `PerceiverDIT` (MDM-Prime) or `DIT` (MDLM).
    pub model_class: ModelClass,
    /// Vocabulary size V.
    pub vocab_size: u32,
    /// Sub-tokens per token ℓ.
    pub subtokens: usize,
    /// Digit base b.
    pub base: u32,
    /// The mask id (b).
    pub mask_id: u32,
    /// Sequence length L.
    pub length: usize,
    /// Trained parameters.
    pub parameters: usize,
    /// Whether the model has a tokenizer.
    pub tokenizer: bool,
    /// Image models: the pixel grid (absent for text models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageShape>,
    /// The sampler settings the model recommends (`config.json`'s `sampling`; absent when it
    /// recommends none).
    #[serde(default, skip_serializing_if = "SamplingDefaults::is_empty")]
    pub sampling: SamplingDefaults,
    /// The classes a class-conditioned model draws, by name (absent for other models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

impl ModelSummary {
    /// The summary of a loaded model.
    pub fn of(model: &Model) -> Self {
        let config = model.config();
        Self {
            model_class: config.model_class,
            vocab_size: config.vocab_size,
            subtokens: config.subtokens,
            base: model.codec().base(),
            mask_id: model.codec().mask_id(),
            length: config.length,
            parameters: model.parameters(),
            tokenizer: model.text().is_some(),
            image: config.image,
            sampling: config.sampling.clone(),
            classes: config.classes.clone(),
        }
    }
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The model.
    pub model: ModelSummary,
    /// The request, as given.
    pub request: GenerationRequest,
    /// The executor that ran the steps (`host`, `shader`, `twin`).
    pub executor: String,
    /// The device, in words.
    pub device: String,
    /// Whether each position is fixed by the prompt, suffix or pins.
    pub fixed: Vec<bool>,
}

impl Header {
    /// The header of `run`, started from `request` on `model`, with `executor` and `device`
    /// named for the reader.
    pub fn new(model: &Model, request: &GenerationRequest, run: &Run, executor: &str, device: &str) -> Self {
        // The class the run draws, by name (a request for `each` picks one by its seed).
        let class = model.config().class_name(run.sampler().class()).map(str::to_string);
        Self {
            format: FORMAT.into(),
            version: VERSION,
            model: ModelSummary::of(model),
            request: GenerationRequest { class, ..request.clone() },
            executor: executor.into(),
            device: device.into(),
            fixed: run.sampler().fixed().to_vec(),
        }
    }

    /// Checks the format and version of a header read from a file.
    pub fn check(&self) -> Result<()> {
        if self.format != FORMAT || self.version != VERSION {
            return Err(PrimeError::Input(format!(
                "not a {FORMAT} version {VERSION} file (format {:?}, version {})",
                self.format, self.version
            )));
        }
        Ok(())
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The sampler's event.
    #[serde(flatten)]
    pub event: StepEvent,
    /// Texts of the token ids this step mentions (guesses, candidates) that earlier steps did
    /// not label.
    pub labels: Vec<(u32, String)>,
    /// Bytes read back from the device to take the step.
    pub read_bytes: usize,
    /// Image models: what each pixel shows after the step (masked, partly revealed with the
    /// grey levels it can still become, or known); absent for text models and for a device run
    /// that did not read its states back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<Vec<Pixel>>,
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ending {
    /// Tokens, NFE, idle steps.
    pub outcome: Outcome,
    /// The decoded text, with a tokenizer.
    pub text: Option<String>,
}

impl Ending {
    /// The ending of a finished run (its text with `model`'s tokenizer, if any).
    pub fn of(model: &Model, run: &Run) -> Result<Self> {
        let outcome = run.outcome()?;
        let text = model.text().map(|t| t.decode(&outcome.tokens)).transpose()?;
        Ok(Self { outcome, text })
    }
}

/// The text of a token: its tokenizer text, or `#id` without a tokenizer.
pub fn token_label(model: &Model, token: u32) -> String {
    model.text().and_then(|t| t.decode(&[token]).ok()).unwrap_or_else(|| format!("#{token}"))
}

/// Turns a run's events into records, labelling each token id once.
#[derive(Debug, Default)]
pub struct Recorder {
    labelled: HashSet<u32>,
}

impl Recorder {
    /// The record of `event`, which took `read_bytes` of read-back. Fails only if the state
    /// holds a digit the model's codec does not (never for a state the sampler made).
    pub fn record(&mut self, model: &Model, event: &StepEvent, read_bytes: usize) -> Result<StepRecord> {
        let mentioned = event
            .guesses
            .iter()
            .flatten()
            .copied()
            .chain(event.candidates.iter().flat_map(|c| c.top.iter().map(|&(t, _)| t)));
        let mut labels = Vec::new();
        for token in mentioned {
            if self.labelled.insert(token) {
                labels.push((token, token_label(model, token)));
            }
        }
        let pixels = match model.config().image {
            Some(_) if !event.state.is_empty() => Some(Pixel::all(model.codec(), &event.state)?),
            _ => None,
        };
        Ok(StepRecord { event: event.clone(), labels, read_bytes, pixels })
    }
}

/// A whole trajectory, read back from its lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trajectory {
    /// The first line.
    pub header: Header,
    /// The steps.
    pub steps: Vec<StepRecord>,
    /// The last line.
    pub ending: Ending,
}

impl Trajectory {
    /// Parses the JSON Lines of a trajectory file, and checks that every record fits the
    /// header's model (a viewer indexes its arrays by the model's shape).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |n: usize, e: serde_json::Error| PrimeError::Input(format!("trajectory line {n}: {e}"));
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let (first, rest) = lines.split_first().ok_or_else(|| PrimeError::Input("the trajectory is empty".into()))?;
        let header: Header = serde_json::from_str(first).map_err(|e| bad(1, e))?;
        header.check()?;
        let (last, steps) =
            rest.split_last().ok_or_else(|| PrimeError::Input("the trajectory has no ending line".into()))?;
        let steps = steps
            .iter()
            .enumerate()
            .map(|(n, line)| serde_json::from_str(line).map_err(|e| bad(n + 2, e)))
            .collect::<Result<Vec<StepRecord>>>()?;
        if steps.is_empty() {
            return Err(PrimeError::Input("the trajectory has no steps".into()));
        }
        let ending: Ending = serde_json::from_str(last).map_err(|e| bad(lines.len(), e))?;
        let model = &header.model;
        if header.fixed.len() != model.length || ending.outcome.tokens.len() != model.length {
            return Err(PrimeError::Input(format!(
                "the trajectory's fixed positions ({}) or final tokens ({}) are not the model's length {}",
                header.fixed.len(),
                ending.outcome.tokens.len(),
                model.length
            )));
        }
        for (n, record) in steps.iter().enumerate() {
            record.fits(model).map_err(|why| {
                PrimeError::Input(format!(
                    "trajectory line {}: the record does not fit the header's model: {why}",
                    n + 2
                ))
            })?;
        }
        Ok(Self { header, steps, ending })
    }
}

impl StepRecord {
    /// Why this record cannot be a step of `model` (`Err` with the reason), if it cannot.
    fn fits(&self, model: &ModelSummary) -> std::result::Result<(), String> {
        let e = &self.event;
        let (slots, length) = (model.subtokens * model.length, model.length);
        if e.state.len() != slots {
            return Err(format!("{} digit slots, the model has {slots}", e.state.len()));
        }
        if let Some(d) = e.state.iter().find(|&&d| d > model.mask_id) {
            return Err(format!("digit {d} is above the mask id {}", model.mask_id));
        }
        if let Some(s) = e.revealed.iter().find(|&&s| s as usize >= slots) {
            return Err(format!("revealed slot {s} is beyond the {slots} slots"));
        }
        if e.guesses.len() != length {
            return Err(format!("{} guesses, the model has {length} positions", e.guesses.len()));
        }
        if let Some(c) = e.candidates.iter().find(|c| c.position as usize >= length) {
            return Err(format!("candidates at position {}, beyond the {length} positions", c.position));
        }
        match (&model.image, &self.pixels) {
            (Some(_), Some(p)) if p.len() == length => Ok(()),
            (Some(_), Some(p)) => Err(format!("{} pixels, the image has {length}", p.len())),
            (Some(_), None) => Err("an image model's record without pixels".into()),
            (None, _) => Ok(()),
        }
    }
}
