//! The host executor: each network output is read back, and the carry-over filter, the
//! truncation and the Gumbel-max draw run on the host, position by position.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{
    Cutoff, DigitScore, Executor, PositionCandidates, Progress, Sampler, SamplerSettings, SamplerShape, StepPlan,
    StepResult, cutoff, top_consistent,
};
use crate::denoiser::Denoiser;
use crate::error::{PrimeError, Result};
use crate::logits::{HostLogits, RowLayout};
use crate::readback::HostValues;
use crate::rng::{CounterRng, GumbelRow};

/// How many candidates of a partly revealed token are recorded.
pub const RECORDED_CANDIDATES: usize = 5;

/// The cached network output: logits and, with truncation, each position's cutoff.
#[derive(Debug)]
struct Cache {
    logits: HostLogits,
    cutoffs: Vec<Option<Cutoff>>,
}

/// Runs steps on the host (see the module docs).
#[derive(Debug)]
pub struct HostExecutor {
    state: Vec<u32>,
    cache: Option<Cache>,
    /// Where the rows of the output being read lie.
    reading: Option<RowLayout>,
}

/// The ℓ digits of position i.
fn digits_of(state: &[u32], l: usize, i: usize) -> &[u32] {
    &state[i * l..(i + 1) * l]
}

/// Calls `visit(token, scaled logit)` for each candidate of a position with a finite logit:
/// the tokens consistent with its digits (all V without the carry-over filter).
pub(super) fn for_each_candidate(
    shape: &SamplerShape,
    settings: &SamplerSettings,
    digits: &[u32],
    row: &[f32],
    mut visit: impl FnMut(u32, f32),
) {
    let inv_t = 1.0 / settings.temperature;
    let emit = |v: u32| {
        let x = row[v as usize];
        if x.is_finite() {
            visit(v, x * inv_t);
        }
    };
    if settings.carry_over {
        shape.codec.for_each_consistent(digits, emit);
    } else {
        (0..shape.codec.vocab()).for_each(emit);
    }
}

fn no_candidate(i: usize, digits: &[u32]) -> PrimeError {
    PrimeError::NoConsistentToken { position: i, digits: digits.to_vec() }
}

/// The truncation cutoff of position i under host logits and state.
fn position_cutoff(sampler: &Sampler, state: &[u32], logits: &HostLogits, i: usize) -> Result<Cutoff> {
    let (shape, settings) = (sampler.shape(), sampler.settings());
    let digits = digits_of(state, shape.codec.digits(), i);
    let mut candidates = Vec::new();
    for_each_candidate(shape, settings, digits, logits.row(i)?, |v, s| candidates.push((v, s)));
    cutoff(candidates, settings.top_k, settings.top_p).ok_or_else(|| no_candidate(i, digits))
}

/// Integers (ids, positions) as a device tensor.
pub(super) fn int_tensor(values: Vec<i32>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The state as a device tensor of network ids.
pub(super) fn state_tensor(state: &[u32], device: &Device) -> Tensor<1, Int> {
    int_tensor(state.iter().map(|&v| v as i32).collect(), device)
}

impl HostExecutor {
    /// An executor for `sampler`, starting from its initial state.
    pub fn new(sampler: &Sampler) -> Self {
        Self { state: sampler.initial_state().to_vec(), cache: None, reading: None }
    }

    /// Checks and caches a network output of `layout` read back for `plan`.
    fn cache_output(&self, sampler: &Sampler, plan: &StepPlan, values: Vec<f32>, layout: RowLayout) -> Result<Cache> {
        let shape = sampler.shape();
        let logits = HostLogits::new(values, shape.output_width, layout, shape.length)?;
        let l = shape.codec.digits();
        let mask = shape.codec.mask_id();
        let cutoffs = (0..shape.length)
            .map(|i| {
                let open = digits_of(&self.state, l, i).contains(&mask);
                if plan.truncate && open {
                    position_cutoff(sampler, &self.state, &logits, i).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Cache { logits, cutoffs })
    }

    /// x0 of position i: Gumbel-max (or the argmax without noise) over the kept candidates.
    fn draw(&self, sampler: &Sampler, plan: &StepPlan, cache: &Cache, i: usize) -> Result<u32> {
        let (shape, settings) = (sampler.shape(), sampler.settings());
        let cut = if plan.truncate { cache.cutoffs[i] } else { None };
        let digits = digits_of(&self.state, shape.codec.digits(), i);
        let mut noise = GumbelRow::new(CounterRng::new(settings.seed), plan.step as u32, i as u32);
        let mut best: Option<(f32, u32)> = None;
        for_each_candidate(shape, settings, digits, cache.logits.row(i)?, |v, s| {
            if cut.is_some_and(|c| !c.keeps(s, v)) {
                return;
            }
            let score = if plan.noise { s + noise.get(v) } else { s };
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, v));
            }
        });
        best.map(|(_, v)| v).ok_or_else(|| no_candidate(i, digits))
    }

    /// Every masked slot's digit confidence and entropy under the distribution the step draws
    /// from (carry-over filtered, temperature-scaled, truncated): the digit marginals of each
    /// open position's kept candidates.
    fn digit_scores(&self, sampler: &Sampler, plan: &StepPlan, cache: &Cache) -> Result<Vec<DigitScore>> {
        let (shape, settings) = (sampler.shape(), sampler.settings());
        let (l, mask, base) = (shape.codec.digits(), shape.codec.mask_id(), shape.codec.base() as usize);
        let mut scores = Vec::new();
        let mut marginal = vec![0.0f64; base];
        for i in 0..shape.length {
            let digits = digits_of(&self.state, l, i);
            if !digits.contains(&mask) {
                continue;
            }
            let cut = if plan.truncate { cache.cutoffs[i] } else { None };
            let mut kept = Vec::new();
            for_each_candidate(shape, settings, digits, cache.logits.row(i)?, |v, s| {
                if cut.is_none_or(|c| c.keeps(s, v)) {
                    kept.push((v, s));
                }
            });
            let top = kept.iter().map(|&(_, s)| s).fold(f32::NEG_INFINITY, f32::max);
            if kept.is_empty() || !top.is_finite() {
                return Err(no_candidate(i, digits));
            }
            let total: f64 = kept.iter().map(|&(_, s)| f64::from(s - top).exp()).sum();
            for j in (0..l).filter(|&j| digits[j] == mask) {
                marginal.iter_mut().for_each(|m| *m = 0.0);
                for &(v, s) in &kept {
                    marginal[shape.codec.digit(v, j) as usize] += f64::from(s - top).exp() / total;
                }
                let confidence = marginal.iter().copied().fold(0.0, f64::max);
                let entropy: f64 = marginal.iter().filter(|&&q| q > 0.0).map(|&q| -q * q.ln()).sum();
                scores.push(DigitScore {
                    slot: (i * l + j) as u32,
                    confidence: confidence as f32,
                    entropy: entropy as f32,
                });
            }
        }
        Ok(scores)
    }

    /// Candidates of the partly revealed positions under the step's network output.
    fn candidates(&self, sampler: &Sampler, partly_revealed: &[u32], cache: &Cache) -> Vec<PositionCandidates> {
        let shape = sampler.shape();
        let l = shape.codec.digits();
        partly_revealed
            .iter()
            .filter_map(|&i| {
                let i = i as usize;
                let row = cache.logits.row(i).ok()?;
                let c = top_consistent(
                    &shape.codec,
                    row,
                    digits_of(&self.state, l, i),
                    sampler.settings().temperature,
                    RECORDED_CANDIDATES,
                )?;
                Some(PositionCandidates { position: i as u32, count: c.consistent as u32, top: c.top })
            })
            .collect()
    }
}

/// The positions of flat slots, ascending and once each.
fn positions_of(slots: &[u32], l: usize) -> Vec<u32> {
    let mut positions: Vec<u32> = slots.iter().map(|&s| s / l as u32).collect();
    positions.dedup();
    positions
}

impl Executor for HostExecutor {
    fn network_input(&self, device: &Device) -> Tensor<1, Int> {
        state_tensor(&self.state, device)
    }

    fn release_output(&mut self) {
        self.cache = None;
    }

    fn advance(
        &mut self,
        sampler: &Sampler,
        plan: &StepPlan,
        denoiser: &dyn Denoiser,
        values: Option<HostValues>,
    ) -> Result<Progress> {
        if plan.call_network {
            match (values, self.reading.take()) {
                (None, _) => {
                    let input = sampler.network_input(state_tensor(&self.state, denoiser.device()));
                    let logits = denoiser.logits(input)?;
                    self.reading = Some(logits.layout());
                    return Ok(Progress::read_logits(&logits));
                }
                (Some(v), Some(layout)) => self.cache = Some(self.cache_output(sampler, plan, v.floats, layout)?),
                (Some(_), None) => {
                    return Err(PrimeError::Input("logits were read that no network call asked for".into()));
                }
            }
        }
        let before = self.state.clone();
        let l = sampler.shape().codec.digits();
        let mut x0 = vec![None; sampler.shape().length];
        let mut candidates = Vec::new();
        let (mut chosen, mut scores) = (None, Vec::new());
        // Recording draws every masked position, so a step without draws records nothing either.
        if plan.draws_tokens() {
            let cache =
                self.cache.as_ref().ok_or_else(|| PrimeError::Input("the step has no network output".into()))?;
            let (reveals, draws) = if plan.adaptive {
                let picked = sampler.select_reveals(plan, &self.digit_scores(sampler, plan, cache)?)?;
                let reveals: Vec<u32> = picked.iter().map(|&(slot, _)| slot).collect();
                scores = picked.iter().map(|&(_, score)| score).collect();
                let draws = if plan.record { plan.draws.clone() } else { positions_of(&reveals, l) };
                (reveals, draws)
            } else {
                (plan.reveals.clone(), plan.draws.clone())
            };
            for &i in &draws {
                x0[i as usize] = Some(self.draw(sampler, plan, cache, i as usize)?);
            }
            let codec = &sampler.shape().codec;
            for &slot in &reveals {
                let (i, j) = (slot as usize / l, slot as usize % l);
                let token =
                    x0[i].ok_or_else(|| PrimeError::Input(format!("position {i} reveals but was not drawn")))?;
                self.state[slot as usize] = codec.digit(token, j);
            }
            if plan.record {
                let partly =
                    if plan.adaptive { sampler.partly_revealed_after(&reveals) } else { plan.partly_revealed.clone() };
                candidates = self.candidates(sampler, &partly, cache);
            }
            chosen = plan.adaptive.then_some(reveals);
        }
        Ok(Progress::Done(StepResult {
            guesses: sampler.guesses(plan, &before, &self.state, &x0),
            candidates,
            state: Some(self.state.clone()),
            reveals: chosen,
            scores,
        }))
    }
}
