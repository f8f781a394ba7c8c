//! Several generations driven together, so that their network calls run as one batch: B
//! sequences per call instead of B calls. Each generation keeps its own sampler, executor and
//! seed, so what it draws is what it would draw alone.

use std::ops::ControlFlow;

use burn::tensor::Device;

use super::{Outcome, Run, StepEvent};
use crate::denoiser::Denoiser;
use crate::error::{PrimeError, Result};
use crate::logits::{Logits, NetworkInput};

/// One sequence's share of a batched network call, handed to its executor as its denoiser.
struct Prefetched<'a> {
    device: &'a Device,
    /// The logits computed for this step; `None` for a step that calls no network.
    logits: Option<Logits>,
}

impl Denoiser for Prefetched<'_> {
    fn device(&self) -> &Device {
        self.device
    }

    fn logits(&self, _input: NetworkInput) -> Result<Logits> {
        self.logits.clone().ok_or_else(|| PrimeError::Input("a step called the network outside its batch".into()))
    }
}

/// What one [`step_round`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Some runs took steps; call again.
    Stepped,
    /// Every run is done.
    Done,
    /// `on_event` broke (abort).
    Stopped,
}

/// One round of driving `runs` together: every unfinished run first takes the steps that need
/// no network call (cached outputs, idle steps); then the runs that need one get their logits
/// from a single [`Denoiser::logits_batch`] call and take that step. `on_event` sees every step
/// as (run index, run, event). A server calls this between admitting and dropping runs;
/// [`run_together`] calls it until every run is done.
pub fn step_round(
    runs: &mut [Run],
    denoiser: &dyn Denoiser,
    mut on_event: impl FnMut(usize, &Run, &StepEvent) -> ControlFlow<()>,
) -> Result<Round> {
    let device = denoiser.device().clone();
    let mut waiting = Vec::new();
    for (i, run) in runs.iter_mut().enumerate() {
        while !run.is_done() {
            if run.next_calls_network()? {
                waiting.push(i);
                break;
            }
            let event = run.step(&Prefetched { device: &device, logits: None })?;
            if on_event(i, run, &event).is_break() {
                return Ok(Round::Stopped);
            }
        }
    }
    if waiting.is_empty() {
        return Ok(Round::Done);
    }
    let inputs = waiting.iter().map(|&i| runs[i].network_input(&device)).collect();
    let outputs = denoiser.logits_batch(inputs)?;
    if outputs.len() != waiting.len() {
        return Err(PrimeError::Input(format!(
            "the network answered {} of {} sequences in a batch",
            outputs.len(),
            waiting.len()
        )));
    }
    for (&i, logits) in waiting.iter().zip(outputs) {
        let event = runs[i].step(&Prefetched { device: &device, logits: Some(logits) })?;
        if on_event(i, &runs[i], &event).is_break() {
            return Ok(Round::Stopped);
        }
    }
    Ok(Round::Stepped)
}

/// Runs `runs` to the end together, one [`step_round`] after another. `on_event` sees every
/// step as (run index, run, event); returns `Ok(None)` if it breaks (abort).
pub fn run_together(
    runs: &mut [Run],
    denoiser: &dyn Denoiser,
    mut on_event: impl FnMut(usize, &Run, &StepEvent) -> ControlFlow<()>,
) -> Result<Option<Vec<Outcome>>> {
    loop {
        match step_round(runs, denoiser, &mut on_event)? {
            Round::Stepped => {}
            Round::Done => return runs.iter().map(Run::outcome).collect::<Result<Vec<_>>>().map(Some),
            Round::Stopped => return Ok(None),
        }
    }
}
