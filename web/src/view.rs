//! What the page renders for one sampler step: the sampler's event, plus, per token, its digit
//! slots, its label and (for partly revealed tokens) what it can still become. The page only
//! draws these; all the numbers come from here.

use prime_core::distribution::top_consistent;
use prime_core::{Model, StepEvent};
use serde::Serialize;

/// How many of a partly revealed token's consistent tokens the page lists.
pub const TOP_CANDIDATES: usize = 5;

/// One token the page may list, with its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// Vocabulary id.
    pub token: u32,
    /// Its text (or `#id` without a tokenizer).
    pub text: String,
    /// Its probability under the filtered distribution of the last network output.
    pub p: f32,
}

/// What a partly revealed token can still become.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consistent {
    /// Vocabulary tokens agreeing with the revealed digits.
    pub count: usize,
    /// The most likely of them.
    pub top: Vec<Choice>,
}

/// One token cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The ℓ digit slots, most significant first; `None` where masked.
    pub digits: Vec<Option<u32>>,
    /// Revealed digits (0..=ℓ).
    pub known: usize,
    /// Whether the token is part of the prompt or suffix (fixed, never sampled).
    pub fixed: bool,
    /// The token, once every digit is revealed.
    pub token: Option<u32>,
    /// The model's current guess for a token not yet fully revealed.
    pub guess: Option<u32>,
    /// Text of the token, or of the guess while it is not revealed.
    pub label: Option<String>,
    /// For a partly revealed token (0 < known < ℓ): its consistent set under the last output.
    pub consistent: Option<Consistent>,
}

/// One step as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    /// Step index (the final noise-removal step is `steps`).
    pub step: usize,
    /// Loop steps T.
    pub steps: usize,
    /// Time t of the step.
    pub t: f32,
    /// Whether this is the final noise-removal step.
    pub is_final: bool,
    /// Whether the step changed nothing.
    pub idle: bool,
    /// Whether the step called the network (otherwise its cached output was reused).
    pub network_called: bool,
    /// Network calls so far.
    pub nfe: usize,
    /// Idle steps so far.
    pub idle_steps: usize,
    /// Flat sub-token slots revealed by this step.
    pub revealed: Vec<u32>,
    /// The tokens.
    pub cells: Vec<Cell>,
    /// The generated text, after the final step.
    pub text: Option<String>,
    /// The generated token ids, after the final step.
    pub tokens: Option<Vec<u32>>,
}

/// The text the page shows for one token.
pub fn token_label(model: &Model, token: u32) -> String {
    model.text().and_then(|t| t.decode(&[token]).ok()).unwrap_or_else(|| format!("#{token}"))
}

/// Builds the view of `event`. `fixed` marks the prompt and suffix positions; `logits` is the
/// network output the step used (for the consistent sets), `temperature` its scaling.
pub fn build(model: &Model, event: &StepEvent, fixed: &[bool], logits: Option<&[f32]>, temperature: f32) -> StepView {
    let codec = model.codec();
    let (l, mask) = (codec.digits(), codec.mask_id());
    let width = model.config().output_width();
    let cells = event
        .state
        .chunks(l)
        .enumerate()
        .map(|(i, pattern)| {
            let digits: Vec<Option<u32>> = pattern.iter().map(|&d| (d != mask).then_some(d)).collect();
            let known = digits.iter().flatten().count();
            let token = if known == l { codec.decode_token(pattern).ok() } else { None };
            let guess = if token.is_none() { event.guesses.get(i).copied().flatten() } else { None };
            let consistent = match logits {
                Some(logits) if known > 0 && known < l => {
                    let row = &logits[i * width..(i + 1) * width];
                    top_consistent(codec, row, pattern, temperature, TOP_CANDIDATES).map(|c| Consistent {
                        count: c.consistent,
                        top: c
                            .top
                            .into_iter()
                            .map(|(token, p)| Choice { token, text: token_label(model, token), p })
                            .collect(),
                    })
                }
                _ => None,
            };
            Cell {
                digits,
                known,
                fixed: fixed.get(i).copied().unwrap_or(false),
                token,
                guess,
                label: token.or(guess).map(|v| token_label(model, v)),
                consistent,
            }
        })
        .collect();
    StepView {
        step: event.step,
        steps: event.steps,
        t: event.t,
        is_final: event.is_final,
        idle: event.idle,
        network_called: event.network_called,
        nfe: event.nfe,
        idle_steps: event.idle_steps,
        revealed: event.revealed.clone(),
        cells,
        text: None,
        tokens: None,
    }
}
