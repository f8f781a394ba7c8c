//! The MDM-Prime ancestral sampler with caching (spec §6.4): one state machine, two executors.
//!
//! [`Sampler`] owns all of a generation's bookkeeping: the phase, which sub-token slots each
//! step reveals (that never depends on the network: ancestral reveal uniforms of the masked
//! slots, or the event-driven plan), when the cached network output is stale, NFE, idle
//! steps, and the events. It never touches logits. An [`Executor`] does the work the sampler
//! plans: the [`HostExecutor`] reads each network output back and draws on the host; the
//! [`DeviceExecutor`] keeps state and logits on the device and runs the sub-token kernels
//! (WGSL shaders, or their Burn-ops twins). [`Run`] drives the two, blocking ([`Run::step`]) or
//! awaiting its reads ([`Run::step_async`], the browser's form), and counts what it reads back.
//!
//! Randomness comes from one counter-based stream keyed on (seed, step, position, index):
//! reveal decisions use index = digit slot, x0 draws use Gumbel noise with index = token id, so
//! both executors take the same steps.

mod batch;
mod candidates;
mod defaults;
mod device;
mod events;
mod executor;
mod host;
mod policy;
mod run;
mod settings;
mod truncation;

pub use batch::{Round, run_together, step_round};
pub use candidates::{Candidates, top_consistent, top_consistent_on_device};
pub use device::DeviceExecutor;
pub use events::{Outcome, PositionCandidates, StepEvent};
pub use executor::{Executor, Progress, StepResult};
pub use host::HostExecutor;
pub use policy::{DigitScore, RevealPolicy};
pub use run::{Run, RunStats};
pub use settings::{Conditioning, FinalRule, SamplerSettings, SamplerShape, SamplingMode};
pub use truncation::{Cutoff, cutoff};

use std::collections::BTreeMap;

use burn::tensor::{Int, Tensor};

use crate::error::{PrimeError, Result};
use crate::logits::NetworkInput;
use crate::rng::{CounterRng, Stream};
use crate::schedule::TimeGrid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Loop(usize),
    Final,
    Done,
}

/// What the next step does, decided by the [`Sampler`] before an executor does any work.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    /// Step index: 0..T−1 for loop steps, T for the final noise-removal step (also the step
    /// whose noise the draws use).
    pub step: usize,
    /// Whether this is the final step (reveals every masked slot).
    pub is_final: bool,
    /// Whether the step needs a fresh network output (the cached one is stale or absent).
    pub call_network: bool,
    /// Flat sub-token slots this step reveals, ascending (empty for an adaptive loop step,
    /// whose executor asks [`Sampler::select_reveals`] once it has the network output).
    pub reveals: Vec<u32>,
    /// An adaptive policy chooses this loop step's reveals from the network output.
    pub adaptive: bool,
    /// Token positions whose x0 is drawn, ascending: those that reveal a slot, or, when guesses
    /// are recorded, every position with a masked slot (an adaptive step: every position that
    /// may reveal, of which the executor draws those that do).
    pub draws: Vec<u32>,
    /// Add Gumbel noise to the draw (a sample); without it, the argmax (MDLM's final rule).
    pub noise: bool,
    /// Apply the top-k / top-p truncation to the draw.
    pub truncate: bool,
    /// Record what a viewer shows: every token's guess and the candidates of partly revealed
    /// tokens.
    pub record: bool,
    /// Positions with 0 < k < ℓ revealed digits after the step (their candidates are
    /// recorded), ascending; empty unless `record`.
    pub partly_revealed: Vec<u32>,
}

impl StepPlan {
    /// Whether the step reveals nothing (an idle loop step; an adaptive step always reveals).
    pub fn is_idle(&self) -> bool {
        self.reveals.is_empty() && !self.is_final && !self.adaptive
    }

    /// Whether the step draws tokens.
    pub fn draws_tokens(&self) -> bool {
        !self.draws.is_empty()
    }
}

/// One generation's bookkeeping (see the module docs).
#[derive(Debug)]
pub struct Sampler {
    shape: SamplerShape,
    settings: SamplerSettings,
    grid: TimeGrid,
    rng: CounterRng,
    /// The state the generation starts from: conditioning revealed, the rest masked.
    initial: Vec<u32>,
    /// Which flat slots are masked now (always known on the host).
    masked: Vec<bool>,
    /// Whether each position is fixed by the conditioning.
    fixed: Vec<bool>,
    /// The class every network call asks for.
    class: Option<u32>,
    /// The state after the last step, when the executor reported it.
    state: Option<Vec<u32>>,
    phase: Phase,
    cache_valid: bool,
    /// The plan handed out by [`Sampler::plan`] and not yet committed.
    issued: Option<StepPlan>,
    nfe: usize,
    idle_steps: usize,
    masked_at_start: usize,
    /// Event-driven mode: the flat sub-token slots revealed at each loop step that reveals
    /// any, ascending (steps without reveals take no memory).
    reveal_plan: Option<BTreeMap<u32, Vec<u32>>>,
}

impl Sampler {
    /// Starts a generation: every free sub-token masked, the conditioning tokens revealed.
    pub fn new(shape: SamplerShape, settings: SamplerSettings, conditioning: &Conditioning) -> Result<Self> {
        settings.validate()?;
        let fixed_tokens = conditioning.resolve(shape.length, &shape.codec)?;
        let l = shape.codec.digits();
        let mask = shape.codec.mask_id();
        let mut initial = vec![mask; shape.length * l];
        for (i, token) in fixed_tokens.iter().enumerate() {
            if let Some(t) = token {
                shape.codec.encode_token_into(*t, &mut initial[i * l..(i + 1) * l]);
            }
        }
        let masked: Vec<bool> = initial.iter().map(|&d| d == mask).collect();
        let masked_at_start = masked.iter().filter(|&&m| m).count();
        settings.check_work(masked_at_start)?;
        let grid = TimeGrid::new(settings.steps);
        let rng = CounterRng::new(settings.seed);
        let reveal_plan = (settings.mode == SamplingMode::EventDriven).then(|| plan_reveals(&masked, l, &grid, &rng));
        Ok(Self {
            grid,
            rng,
            reveal_plan,
            fixed: fixed_tokens.iter().map(Option::is_some).collect(),
            class: conditioning.class,
            state: Some(initial.clone()),
            initial,
            masked,
            shape,
            settings,
            phase: Phase::Loop(0),
            cache_valid: false,
            issued: None,
            nfe: 0,
            idle_steps: 0,
            masked_at_start,
        })
    }

    /// The class every network call asks for (`None`: no class).
    pub fn class(&self) -> Option<u32> {
        self.class
    }

    /// The model shape the sampler was built for.
    pub fn shape(&self) -> &SamplerShape {
        &self.shape
    }

    /// The settings in force.
    pub fn settings(&self) -> &SamplerSettings {
        &self.settings
    }

    /// The state sampling starts from (ℓ·L ids, mask id where masked).
    pub fn initial_state(&self) -> &[u32] {
        &self.initial
    }

    /// The current state, when the executor reported it with the last step (a device run reads
    /// it back only when asked to).
    pub fn state(&self) -> Option<&[u32]> {
        self.state.as_deref()
    }

    /// Whether each position is fixed by the conditioning (prompt, suffix, pins).
    pub fn fixed(&self) -> &[bool] {
        &self.fixed
    }

    /// Event-driven mode: the loop step at which each flat slot is revealed (`None` for slots
    /// left to the final step or revealed from the start); `None` in ancestral mode.
    pub fn planned_steps(&self) -> Option<Vec<Option<u32>>> {
        self.reveal_plan.as_ref().map(|plan| {
            let mut steps = vec![None; self.initial.len()];
            for (&k, slots) in plan {
                slots.iter().for_each(|&s| steps[s as usize] = Some(k));
            }
            steps
        })
    }

    /// The reveal probability of a masked slot at loop step k (ancestral rule).
    pub fn reveal_probability(&self, k: usize) -> f32 {
        self.grid.reveal_probability(k)
    }

    /// Sub-tokens masked when sampling began (N in the idle-step formula).
    pub fn masked_at_start(&self) -> usize {
        self.masked_at_start
    }

    /// Whether the final step has been taken.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Network calls so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }

    /// Positions with a masked slot now, ascending: the only rows a step draws from.
    pub fn masked_positions(&self) -> Vec<u32> {
        (0..self.shape.length).filter(|&i| self.has_mask(i)).map(|i| i as u32).collect()
    }

    /// A network call on `state` for the positions the coming steps draw from (those with a
    /// masked slot now; the set only shrinks while the output is cached), with the class the
    /// generation asks for.
    pub fn network_input(&self, state: Tensor<1, Int>) -> NetworkInput {
        NetworkInput { state, rows: self.masked_positions(), class: self.class, guidance: self.settings.guidance }
    }

    fn has_mask(&self, i: usize) -> bool {
        let l = self.shape.codec.digits();
        self.masked[i * l..(i + 1) * l].contains(&true)
    }

    /// Plans the next step (and remembers the plan, which [`Sampler::commit`] expects back).
    /// Fails once sampling is over.
    pub fn plan(&mut self) -> Result<StepPlan> {
        let plan = self.next_plan()?;
        self.issued = Some(plan.clone());
        Ok(plan)
    }

    fn next_plan(&self) -> Result<StepPlan> {
        let l = self.shape.codec.digits();
        let record = self.settings.record_guesses;
        let adaptive =
            self.settings.policy.is_adaptive() && matches!(self.phase, Phase::Loop(_)) && self.masked.contains(&true);
        let (step, is_final, reveals) = match self.phase {
            Phase::Done => return Err(PrimeError::Input("sampling is already finished".into())),
            Phase::Loop(k) if adaptive => (k, false, Vec::new()),
            Phase::Loop(k) => (k, false, self.reveals_at(k)),
            Phase::Final => {
                let all = (0..self.masked.len()).filter(|&s| self.masked[s]).map(|s| s as u32).collect();
                (self.grid.steps(), true, all)
            }
        };
        let draws: Vec<u32> = if record || is_final || adaptive {
            self.masked_positions()
        } else {
            let mut positions: Vec<u32> = reveals.iter().map(|&s| s / l as u32).collect();
            positions.dedup();
            positions
        };
        // The official rule calls the network whenever the cache is stale (ancestral); the
        // event-driven plan knows in advance which steps reveal nothing and skips them.
        // An adaptive policy's final step has nothing left to reveal (its loop reveals at least
        // the minimum that ends within T steps) and calls nothing.
        let call_network = if self.settings.policy.is_adaptive() {
            !self.cache_valid && !draws.is_empty()
        } else {
            is_final || (!self.cache_valid && (self.reveal_plan.is_none() || !reveals.is_empty() || record))
        };
        let partly_revealed = if record { self.partly_revealed_after(&reveals) } else { Vec::new() };
        Ok(StepPlan {
            step,
            is_final,
            call_network,
            reveals,
            adaptive,
            draws,
            noise: !is_final || self.shape.final_rule == FinalRule::Sample,
            truncate: !is_final && self.settings.truncates(),
            record,
            partly_revealed,
        })
    }

    /// Positions with some but not all digits revealed once `reveals` are.
    pub fn partly_revealed_after(&self, reveals: &[u32]) -> Vec<u32> {
        let l = self.shape.codec.digits();
        let mut masked = self.masked.clone();
        reveals.iter().for_each(|&s| masked[s as usize] = false);
        (0..self.shape.length)
            .filter(|&i| {
                let known = masked[i * l..(i + 1) * l].iter().filter(|&&m| !m).count();
                known > 0 && known < l
            })
            .map(|i| i as u32)
            .collect()
    }

    /// The fewest sub-tokens an adaptive policy reveals at loop step k: ⌈masked / (T − k)⌉,
    /// so that the loop ends within its T steps.
    pub fn minimum_reveals(&self, k: usize) -> usize {
        self.masked_now().div_ceil(self.grid.steps().saturating_sub(k).max(1))
    }

    /// Sub-tokens masked now.
    fn masked_now(&self) -> usize {
        self.masked.iter().filter(|&&m| m).count()
    }

    /// The slots an adaptive `plan` reveals, ascending, each with the score that chose it:
    /// the policy's choice among `scores`, which must score every masked slot.
    pub fn select_reveals(&self, plan: &StepPlan, scores: &[DigitScore]) -> Result<Vec<(u32, f32)>> {
        let masked = self.masked_now();
        if !plan.adaptive || scores.len() != masked || scores.iter().any(|s| !self.is_masked_slot(s.slot)) {
            return Err(PrimeError::Input(format!(
                "step {}: {} scores for {masked} masked sub-tokens of an {} step",
                plan.step,
                scores.len(),
                if plan.adaptive { "adaptive" } else { "scheduled" }
            )));
        }
        Ok(self.settings.policy.select(scores, self.minimum_reveals(plan.step)))
    }

    /// Whether flat slot `slot` is masked now (false past the end).
    pub fn is_masked_slot(&self, slot: u32) -> bool {
        self.masked.get(slot as usize).copied().unwrap_or(false)
    }

    /// The sub-token slots revealed at loop step k, ascending: decided now by the ancestral
    /// rule (the masked slots whose reveal uniform is below (t − s)/t, independent of the
    /// network), or read from the event-driven plan.
    fn reveals_at(&self, k: usize) -> Vec<u32> {
        if let Some(plan) = &self.reveal_plan {
            return plan.get(&(k as u32)).cloned().unwrap_or_default();
        }
        let l = self.shape.codec.digits();
        let p = self.grid.reveal_probability(k);
        (0..self.masked.len())
            .filter(|&s| {
                self.masked[s] && self.rng.uniform(Stream::Reveal, k as u32, (s / l) as u32, (s % l) as u32) < p
            })
            .map(|s| s as u32)
            .collect()
    }

    /// The guesses an executor reports for `plan`: for a loop step, x0 where the token had a
    /// masked slot before the step and the token itself elsewhere; for the final step, every
    /// decoded token. `before` and `after` are the states around the step, `x0` the draws (L).
    pub fn guesses(&self, plan: &StepPlan, before: &[u32], after: &[u32], x0: &[Option<u32>]) -> Vec<Option<u32>> {
        if !plan.record {
            return Vec::new();
        }
        let l = self.shape.codec.digits();
        let decode = |state: &[u32], i: usize| self.shape.codec.decode_token(&state[i * l..(i + 1) * l]).ok();
        (0..self.shape.length)
            .map(|i| match (plan.is_final, self.has_mask(i)) {
                (true, _) => decode(after, i),
                (false, true) => x0[i],
                (false, false) => decode(before, i),
            })
            .collect()
    }

    /// Whether the network output the last step used may serve the next one (false until the
    /// first call, and after every step that changed the state).
    pub fn output_is_fresh(&self) -> bool {
        self.cache_valid
    }

    /// Takes the step `plan` described, with what the executor reported: the one place where
    /// NFE, idle steps, the cache's validity and the phase change.
    ///
    /// Fails if the plan is not the one [`Sampler::plan`] last handed out, or if the executor's
    /// state disagrees with the reveals the sampler planned.
    pub fn commit(&mut self, plan: StepPlan, result: StepResult) -> Result<StepEvent> {
        if self.issued.take().as_ref() != Some(&plan) {
            return Err(PrimeError::Input(format!("step {} was not planned by this sampler", plan.step)));
        }
        let reveals =
            if plan.adaptive { self.check_chosen(&plan, result.reveals.as_deref())? } else { plan.reveals.clone() };
        reveals.iter().for_each(|&s| self.masked[s as usize] = false);
        if let Some(state) = &result.state {
            self.check_state(&plan, state)?;
        }
        if plan.is_final && result.state.is_none() {
            return Err(PrimeError::Device("the final step did not report the state".into()));
        }
        self.state = result.state;
        if plan.call_network {
            self.nfe += 1;
            self.cache_valid = true;
        }
        if plan.is_idle() {
            self.idle_steps += 1;
        } else {
            self.cache_valid = false;
        }
        let finished = self.settings.policy.is_adaptive() && !self.masked.contains(&true);
        self.phase = match self.phase {
            // An adaptive policy that revealed everything early goes on to the (empty) final step.
            Phase::Loop(_) if finished => Phase::Final,
            Phase::Loop(k) if k + 1 < self.grid.steps() => Phase::Loop(k + 1),
            Phase::Loop(_) => Phase::Final,
            _ => Phase::Done,
        };
        Ok(StepEvent {
            step: plan.step,
            steps: self.grid.steps(),
            t: self.grid.t(plan.step),
            is_final: plan.is_final,
            state: self.state.clone().unwrap_or_default(),
            idle: plan.is_idle(),
            revealed: reveals,
            scores: result.scores,
            guesses: result.guesses,
            candidates: result.candidates,
            network_called: plan.call_network,
            nfe: self.nfe,
            idle_steps: self.idle_steps,
        })
    }

    /// The reveals an executor chose for an adaptive step: at least the minimum, ascending,
    /// each a masked slot.
    fn check_chosen(&self, plan: &StepPlan, chosen: Option<&[u32]>) -> Result<Vec<u32>> {
        let chosen = chosen.ok_or_else(|| {
            PrimeError::Device(format!("step {}: the executor reported no reveals for an adaptive step", plan.step))
        })?;
        let ascending = chosen.windows(2).all(|w| w[0] < w[1]);
        let minimum = self.minimum_reveals(plan.step);
        if !ascending || chosen.len() < minimum || !chosen.iter().all(|&s| self.is_masked_slot(s)) {
            return Err(PrimeError::Device(format!(
                "step {}: the executor's reveals {chosen:?} are not at least {minimum} masked slots, ascending",
                plan.step
            )));
        }
        Ok(chosen.to_vec())
    }

    /// Checks a reported state against the planned mask pattern.
    fn check_state(&self, plan: &StepPlan, state: &[u32]) -> Result<()> {
        let mask = self.shape.codec.mask_id();
        if state.len() != self.masked.len() {
            return Err(PrimeError::Device(format!(
                "step {}: the executor reported {} sub-tokens, expected {}",
                plan.step,
                state.len(),
                self.masked.len()
            )));
        }
        let wrong: Vec<usize> = (0..state.len()).filter(|&s| (state[s] == mask) != self.masked[s]).collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(PrimeError::Device(format!(
                "step {}: the executor's state disagrees with the reveal rule at slots {wrong:?}",
                plan.step
            )))
        }
    }

    /// The decoded tokens, once sampling is finished. Fails on a digit string outside the
    /// vocabulary (possible only without the carry-over filter).
    pub fn outcome(&self) -> Result<Outcome> {
        let state = match (&self.state, self.is_done()) {
            (Some(state), true) => state,
            _ => return Err(PrimeError::Input("sampling is not finished".into())),
        };
        Ok(Outcome {
            tokens: self.shape.codec.decode(state)?,
            steps: self.grid.steps(),
            nfe: self.nfe,
            idle_steps: self.idle_steps,
            masked_at_start: self.masked_at_start,
        })
    }
}

/// Event-driven mode: each masked slot's reveal step `⌊u/dt⌋` from one uniform u, so that
/// P(step k) = dt for every loop step and the rest (1 − T·dt) is left to the final step.
fn plan_reveals(masked: &[bool], l: usize, grid: &TimeGrid, rng: &CounterRng) -> BTreeMap<u32, Vec<u32>> {
    let mut plan: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in (0..masked.len()).filter(|&s| masked[s]) {
        let u = f64::from(rng.uniform(Stream::RevealStep, 0, (s / l) as u32, (s % l) as u32));
        let k = (u / grid.dt()) as usize;
        if k < grid.steps() {
            plan.entry(k as u32).or_default().push(s as u32);
        }
    }
    plan
}
