//! The MDM-Prime ancestral sampler with caching (spec §6.4), as a step-by-step state machine.
//!
//! The caller feeds network outputs when [`Sampler::needs_logits`] says so and calls
//! [`Sampler::step`] to advance; every step yields a [`StepEvent`]. [`run`] drives it with any
//! [`Denoiser`]. The network can be sync or async: the sampler itself never calls it.
//!
//! Randomness comes from one counter-based stream keyed on (seed, step, position, index):
//! reveal decisions use index = digit slot, x0 draws use Gumbel noise with index = token id.

mod events;
mod on_device;
mod settings;
mod truncation;

use std::ops::ControlFlow;

pub use events::{Outcome, StepEvent};
pub use on_device::{DeviceDenoiser, DeviceOptions, DeviceStats};
pub use settings::{Conditioning, FinalRule, SamplerSettings, SamplerShape, SamplingMode};
pub use truncation::{Cutoff, cutoff};

use crate::error::{PrimeError, Result};
use crate::rng::{CounterRng, GumbelRow, Stream};
use crate::schedule::TimeGrid;

/// Anything that maps a sub-token state (ℓ·L ids) to logits (L × V_out, row-major).
pub trait Denoiser {
    /// One network evaluation.
    fn logits(&mut self, state: &[u32]) -> Result<Vec<f32>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Loop(usize),
    Final,
    Done,
}

/// The cached network output: logits and, with truncation, each position's cutoff.
#[derive(Debug)]
struct Cache {
    logits: Vec<f32>,
    cutoffs: Vec<Option<Cutoff>>,
}

/// One generation in progress.
#[derive(Debug)]
pub struct Sampler {
    shape: SamplerShape,
    settings: SamplerSettings,
    grid: TimeGrid,
    rng: CounterRng,
    state: Vec<u32>,
    phase: Phase,
    cache: Option<Cache>,
    fresh: bool,
    nfe: usize,
    idle_steps: usize,
    masked_at_start: usize,
    /// Event-driven mode: the flat sub-token slots revealed at each loop step, ascending.
    reveal_plan: Option<Vec<Vec<u32>>>,
}

impl Sampler {
    /// Starts a generation: every free sub-token masked, the conditioning tokens revealed.
    pub fn new(shape: SamplerShape, settings: SamplerSettings, conditioning: &Conditioning) -> Result<Self> {
        settings.validate()?;
        let fixed = conditioning.resolve(shape.length, &shape.codec)?;
        let l = shape.codec.digits();
        let mut state = vec![shape.codec.mask_id(); shape.length * l];
        for (i, token) in fixed.iter().enumerate() {
            if let Some(t) = token {
                shape.codec.encode_token_into(*t, &mut state[i * l..(i + 1) * l]);
            }
        }
        let masked_at_start = state.iter().filter(|&&d| d == shape.codec.mask_id()).count();
        let grid = TimeGrid::new(settings.steps);
        let rng = CounterRng::new(settings.seed);
        let reveal_plan =
            (settings.mode == SamplingMode::EventDriven).then(|| plan_reveals(&state, &shape, &grid, &rng));
        Ok(Self {
            grid,
            rng,
            reveal_plan,
            shape,
            settings,
            state,
            phase: Phase::Loop(0),
            cache: None,
            fresh: false,
            nfe: 0,
            idle_steps: 0,
            masked_at_start,
        })
    }

    /// The current sub-token state (mask id where masked).
    pub fn state(&self) -> &[u32] {
        &self.state
    }

    /// Sub-tokens masked when sampling began (N in the idle-step formula).
    pub fn masked_at_start(&self) -> usize {
        self.masked_at_start
    }

    /// Whether the next step needs a fresh network output for [`Sampler::state`].
    pub fn needs_logits(&self) -> bool {
        self.cache.is_none() && self.phase != Phase::Done && !self.planned_idle()
    }

    /// Event-driven mode: whether the next loop step is known to reveal nothing, so it needs no
    /// network output (unless guesses are recorded, which need one every step).
    fn planned_idle(&self) -> bool {
        match (&self.reveal_plan, self.phase) {
            (Some(plan), Phase::Loop(k)) => plan[k].is_empty() && !self.settings.record_guesses,
            _ => false,
        }
    }

    /// Whether the final step has been taken.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Network calls so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }

    /// Supplies the network output for the current state (L × V_out values).
    pub fn supply_logits(&mut self, logits: Vec<f32>) -> Result<()> {
        let width = self.shape.output_width;
        if logits.len() != self.shape.length * width {
            return Err(PrimeError::Input(format!(
                "network returned {} logits, expected {} × {width}",
                logits.len(),
                self.shape.length
            )));
        }
        if let Some(i) = logits.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
            return Err(PrimeError::NonFinite { position: i / width });
        }
        let truncate = self.settings.truncates() && matches!(self.phase, Phase::Loop(_));
        let cutoffs = (0..self.shape.length)
            .map(|i| if truncate && self.has_mask(i) { self.position_cutoff(&logits, i) } else { Ok(None) })
            .collect::<Result<Vec<_>>>()?;
        self.cache = Some(Cache { logits, cutoffs });
        self.fresh = true;
        self.nfe += 1;
        Ok(())
    }

    fn digits_of(&self, i: usize) -> &[u32] {
        let l = self.shape.codec.digits();
        &self.state[i * l..(i + 1) * l]
    }

    fn has_mask(&self, i: usize) -> bool {
        self.digits_of(i).contains(&self.shape.codec.mask_id())
    }

    /// Calls `visit(token, scaled logit)` for each candidate of position i with a finite logit.
    fn for_each_candidate(&self, logits: &[f32], i: usize, mut visit: impl FnMut(u32, f32)) {
        let row = &logits[i * self.shape.output_width..(i + 1) * self.shape.output_width];
        let inv_t = 1.0 / self.settings.temperature;
        let emit = |v: u32| {
            let x = row[v as usize];
            if x.is_finite() {
                visit(v, x * inv_t);
            }
        };
        if self.settings.carry_over {
            self.shape.codec.for_each_consistent(self.digits_of(i), emit);
        } else {
            (0..self.shape.codec.vocab()).for_each(emit);
        }
    }

    fn position_cutoff(&self, logits: &[f32], i: usize) -> Result<Option<Cutoff>> {
        let mut candidates = Vec::new();
        self.for_each_candidate(logits, i, |v, s| candidates.push((v, s)));
        match cutoff(candidates, self.settings.top_k, self.settings.top_p) {
            Some(c) => Ok(Some(c)),
            None => Err(self.no_candidate(i)),
        }
    }

    fn no_candidate(&self, i: usize) -> PrimeError {
        PrimeError::NoConsistentToken { position: i, digits: self.digits_of(i).to_vec() }
    }

    /// x0 for position i: Gumbel-max over the kept candidates with noise keyed on `step`.
    fn draw(&self, cache: &Cache, i: usize, step: u32, truncate: bool) -> Result<u32> {
        let cut = if truncate { cache.cutoffs[i] } else { None };
        let mut best: Option<(f32, u32)> = None;
        let mut noise = GumbelRow::new(self.rng, step, i as u32);
        self.for_each_candidate(&cache.logits, i, |v, s| {
            if cut.is_some_and(|c| !c.keeps(s, v)) {
                return;
            }
            let score = s + noise.get(v);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, v));
            }
        });
        best.map(|(_, v)| v).ok_or_else(|| self.no_candidate(i))
    }

    /// The most likely candidate of position i (lowest id on ties).
    fn argmax(&self, cache: &Cache, i: usize) -> Result<u32> {
        let mut best: Option<(f32, u32)> = None;
        self.for_each_candidate(&cache.logits, i, |v, s| {
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, v));
            }
        });
        best.map(|(_, v)| v).ok_or_else(|| self.no_candidate(i))
    }

    /// Takes one step: a loop step, or the final noise-removal step after the last one.
    ///
    /// Fails if the cache is empty (see [`Sampler::needs_logits`]) or sampling is over.
    pub fn step(&mut self) -> Result<StepEvent> {
        if self.phase == Phase::Done {
            return Err(PrimeError::Input("sampling is already finished".into()));
        }
        let cache = self.cache.take();
        if cache.is_none() && !self.planned_idle() {
            return Err(PrimeError::Input("step() needs a network output first (needs_logits)".into()));
        }
        let result = match (self.phase, &cache) {
            (Phase::Loop(k), _) => self.loop_step(cache.as_ref(), k),
            (Phase::Final, Some(c)) => self.final_step(c),
            _ => Err(PrimeError::Input("step() needs a network output first (needs_logits)".into())),
        };
        let event = match result {
            Ok(event) => event,
            Err(e) => {
                self.cache = cache;
                return Err(e);
            }
        };
        self.fresh = false;
        // Keep the cache only through idle loop steps; the final call is always fresh.
        if event.idle && self.phase != Phase::Final {
            self.cache = cache;
        }
        Ok(event)
    }

    /// The sub-token slots revealed at loop step k, ascending: decided now (ancestral) or
    /// read from the plan (event-driven).
    fn reveals_at(&self, k: usize) -> Vec<u32> {
        if let Some(plan) = &self.reveal_plan {
            return plan[k].clone();
        }
        let mask = self.shape.codec.mask_id();
        self.ancestral_reveals(k, |s| self.state[s] == mask)
    }

    /// The ancestral rule at loop step k: the masked slots whose reveal uniform is below
    /// (t − s)/t. It does not depend on the network, only on which slots are masked.
    fn ancestral_reveals(&self, k: usize, masked: impl Fn(usize) -> bool) -> Vec<u32> {
        let l = self.shape.codec.digits();
        let p = self.grid.reveal_probability(k);
        (0..self.state.len())
            .filter(|&s| masked(s) && self.rng.uniform(Stream::Reveal, k as u32, (s / l) as u32, (s % l) as u32) < p)
            .map(|s| s as u32)
            .collect()
    }

    fn loop_step(&mut self, cache: Option<&Cache>, k: usize) -> Result<StepEvent> {
        let l = self.shape.codec.digits();
        let record = self.settings.record_guesses;
        let slots = self.reveals_at(k);
        let mut revealed = Vec::with_capacity(slots.len());
        let mut guesses = if record { vec![None; self.shape.length] } else { Vec::new() };
        let mut next = self.state.clone();
        let missing = || PrimeError::Input("step() needs a network output first (needs_logits)".into());
        // Slots are ascending, so the slots of one position are adjacent.
        for group in slots.chunk_by(|a, b| a / l as u32 == b / l as u32) {
            let i = (group[0] as usize) / l;
            let x0 = self.draw(cache.ok_or_else(missing)?, i, k as u32, true)?;
            for &slot in group {
                next[slot as usize] = self.shape.codec.digit(x0, slot as usize % l);
                revealed.push(slot);
            }
            if record {
                guesses[i] = Some(x0);
            }
        }
        if record {
            for (i, guess) in guesses.iter_mut().enumerate().filter(|(_, g)| g.is_none()) {
                *guess = if self.has_mask(i) {
                    Some(self.draw(cache.ok_or_else(missing)?, i, k as u32, true)?)
                } else {
                    self.shape.codec.decode_token(self.digits_of(i)).ok()
                };
            }
        }
        let idle = revealed.is_empty();
        if idle {
            self.idle_steps += 1;
        }
        self.state = next;
        self.advance(k);
        Ok(self.event(k, self.grid.t(k), revealed, guesses, idle))
    }

    fn final_step(&mut self, cache: &Cache) -> Result<StepEvent> {
        let l = self.shape.codec.digits();
        let mask = self.shape.codec.mask_id();
        let steps = self.grid.steps();
        let mut revealed = Vec::new();
        let mut next = self.state.clone();
        for i in (0..self.shape.length).filter(|&i| self.has_mask(i)) {
            let x0 = match self.shape.final_rule {
                FinalRule::Sample => self.draw(cache, i, steps as u32, false)?,
                FinalRule::Argmax => self.argmax(cache, i)?,
            };
            for j in (0..l).filter(|&j| self.state[i * l + j] == mask) {
                next[i * l + j] = self.shape.codec.digit(x0, j);
                revealed.push((i * l + j) as u32);
            }
        }
        self.state = next;
        self.phase = Phase::Done;
        let guesses = if self.settings.record_guesses { self.decoded_tokens() } else { Vec::new() };
        Ok(self.event(steps, self.grid.t(steps), revealed, guesses, false))
    }

    /// Moves past loop step k.
    fn advance(&mut self, k: usize) {
        self.phase = if k + 1 < self.grid.steps() { Phase::Loop(k + 1) } else { Phase::Final };
    }

    /// Every token decoded from the current state (`None` where a digit is masked or invalid).
    fn decoded_tokens(&self) -> Vec<Option<u32>> {
        (0..self.shape.length).map(|i| self.shape.codec.decode_token(self.digits_of(i)).ok()).collect()
    }

    fn event(&self, step: usize, t: f32, revealed: Vec<u32>, guesses: Vec<Option<u32>>, idle: bool) -> StepEvent {
        StepEvent {
            step,
            steps: self.grid.steps(),
            t,
            is_final: self.phase == Phase::Done,
            state: self.state.clone(),
            revealed,
            guesses,
            idle,
            network_called: self.fresh,
            nfe: self.nfe,
            idle_steps: self.idle_steps,
        }
    }

    /// The decoded tokens, once sampling is finished. Fails on a digit string outside the
    /// vocabulary (possible only without the carry-over filter).
    pub fn outcome(&self) -> Result<Outcome> {
        if !self.is_done() {
            return Err(PrimeError::Input("sampling is not finished".into()));
        }
        Ok(Outcome {
            tokens: self.shape.codec.decode(&self.state)?,
            steps: self.grid.steps(),
            nfe: self.nfe,
            idle_steps: self.idle_steps,
            masked_at_start: self.masked_at_start,
        })
    }
}

/// Event-driven mode: each masked slot's reveal step `⌊u/dt⌋` from one uniform u, so that
/// P(step k) = dt for every loop step and the rest (1 − T·dt) is left to the final step.
fn plan_reveals(state: &[u32], shape: &SamplerShape, grid: &TimeGrid, rng: &CounterRng) -> Vec<Vec<u32>> {
    let l = shape.codec.digits();
    let mask = shape.codec.mask_id();
    let mut plan = vec![Vec::new(); grid.steps()];
    for (s, _) in state.iter().enumerate().filter(|&(_, &d)| d == mask) {
        let u = f64::from(rng.uniform(Stream::RevealStep, 0, (s / l) as u32, (s % l) as u32));
        let k = (u / grid.dt()) as usize;
        if let Some(bucket) = plan.get_mut(k) {
            bucket.push(s as u32);
        }
    }
    plan
}

/// Runs a sampler to the end with `denoiser`, passing every step to `on_event`.
///
/// Returns `Ok(None)` if `on_event` breaks (abort).
pub fn run<D: Denoiser + ?Sized>(
    sampler: &mut Sampler,
    denoiser: &mut D,
    mut on_event: impl FnMut(&StepEvent) -> ControlFlow<()>,
) -> Result<Option<Outcome>> {
    while !sampler.is_done() {
        if sampler.needs_logits() {
            let logits = denoiser.logits(sampler.state())?;
            sampler.supply_logits(logits)?;
        }
        let event = sampler.step()?;
        if on_event(&event).is_break() {
            return Ok(None);
        }
    }
    sampler.outcome().map(Some)
}
