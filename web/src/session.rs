//! One generation in the browser: the `prime-core` sampler, fed by network outputs that are
//! read back without blocking, and turned into [`StepView`]s for the page.

use std::cell::RefCell;

use prime_core::{Conditioning, Model, Result, Sampler, SamplerSettings, SamplerShape};
use serde::Deserialize;

use crate::view::{self, StepView};

/// What the page asks to generate.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Request {
    /// Text the sequence starts with (empty: none).
    pub prompt: String,
    /// Text the sequence ends with (empty: none).
    pub suffix: String,
    /// Steps, seed, temperature, top-p, top-k, mode (the `prime-core` settings, same defaults).
    pub settings: SamplerSettings,
}

/// A generation in progress.
#[derive(Debug)]
pub struct Session {
    sampler: Sampler,
    fixed: Vec<bool>,
    temperature: f32,
    /// The network output the next step uses, kept for the consistent-set lists.
    logits: Option<Vec<f32>>,
}

fn text_tokens(model: &Model, text: &str, what: &str) -> Result<Vec<u32>> {
    if text.is_empty() { Ok(Vec::new()) } else { model.encode_text(text, what) }
}

impl Session {
    /// Starts a generation of `model` for `request`. Guesses are always recorded (the page
    /// shows them); they do not change the sampled tokens.
    pub fn new(model: &Model, request: &Request) -> Result<Self> {
        let conditioning = Conditioning {
            prefix: text_tokens(model, &request.prompt, "prompt")?,
            suffix: text_tokens(model, &request.suffix, "suffix")?,
            pinned: Vec::new(),
        };
        let mut settings = request.settings.clone();
        settings.record_guesses = true;
        settings.carry_over &= model.config().carry_over;
        let shape = SamplerShape::from_config(model.config())?;
        let fixed = conditioning.resolve(shape.length, &shape.codec)?.iter().map(Option::is_some).collect();
        let temperature = settings.temperature;
        Ok(Self { sampler: Sampler::new(shape, settings, &conditioning)?, fixed, temperature, logits: None })
    }

    /// The state the network must be run on before the next step, if it needs a fresh output.
    pub fn pending(&self) -> Option<Vec<u32>> {
        self.sampler.needs_logits().then(|| self.sampler.state().to_vec())
    }

    /// Supplies the network output for [`Session::pending`]'s state.
    pub fn supply(&mut self, logits: Vec<f32>) -> Result<()> {
        self.sampler.supply_logits(logits.clone())?;
        self.logits = Some(logits);
        Ok(())
    }

    /// Takes one sampler step and describes it.
    pub fn step(&mut self, model: &Model) -> Result<StepView> {
        let event = self.sampler.step()?;
        let mut view = view::build(model, &event, &self.fixed, self.logits.as_deref(), self.temperature);
        if event.is_final {
            let tokens = self.sampler.outcome()?.tokens;
            view.text = model.text().map(|t| t.decode(&tokens)).transpose()?;
            view.tokens = Some(tokens);
        }
        Ok(view)
    }

    /// Whether the final step has been taken.
    pub fn is_done(&self) -> bool {
        self.sampler.is_done()
    }
}

/// Takes one step of `session`: runs the network first when the sampler needs it (the
/// read-back is awaited, never blocking), then the sampler step.
pub async fn advance(model: &Model, session: &RefCell<Session>) -> Result<StepView> {
    let pending = session.borrow().pending();
    if let Some(state) = pending {
        let logits = model.logits_async(&state).await?;
        session.borrow_mut().supply(logits)?;
    }
    session.borrow_mut().step(model)
}
