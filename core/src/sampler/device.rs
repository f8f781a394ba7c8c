//! The device executor: the state, the network output and the draws stay on the compute device,
//! where the sub-token kernels (the WGSL shaders, or their Burn-ops twins) filter, draw and
//! reveal. The sampler knows which slots each step reveals without the network, so a step
//! reads nothing back unless states are synced, guesses are recorded, the draw is truncated
//! (the truncation cutoffs come from the cutoff kernel), or it is the final step.
//! What a recorded step reads is small: the state (ℓ·L ids), x0 (L ids) and the candidates of
//! the partly revealed tokens (P·(2k + 1) numbers), never the L × V logits. An adaptive reveal
//! policy reads each step's digit scores (2·ℓ·L numbers, from the scores kernel), chooses on
//! the host, and the reveal kernel uncovers exactly the chosen slots.

use burn::tensor::{Device, Int, Tensor};

use super::candidates::DeviceCandidates;
use super::host::{RECORDED_CANDIDATES, int_tensor, state_tensor};
use super::{DigitScore, Executor, Progress, Sampler, StepPlan, StepResult, top_consistent_on_device};
use crate::denoiser::Denoiser;
use crate::error::{PrimeError, Result};
use crate::kernels::{Cutoffs, DrawRequest, KernelPath, RevealRule, SubTokenKernels};
use crate::logits::Logits;
use crate::readback::{HostValues, Readback};

/// Where the executor stands within a step.
#[derive(Debug, Default)]
enum Stage {
    /// Nothing done yet.
    #[default]
    Start,
    /// An adaptive step's digit scores were sent to the host: the position of each row
    /// scored, in the order read.
    Scores(Vec<u32>),
    /// The draw and reveal ran; what was sent to the host.
    Finish(Box<Layout>),
}

/// What the end-of-step read holds, in order.
#[derive(Debug)]
struct Layout {
    /// The state before the step (on the host), when recording.
    before: Option<Vec<u32>>,
    /// The read starts with the state (ℓ·L ids).
    state: bool,
    /// Then x0 (L ids, −1 where not drawn).
    x0: bool,
    /// Then the candidates' tokens and counts (the probabilities are the float read).
    candidates: Option<DeviceCandidates>,
    /// An adaptive step: the slots chosen and the score that chose each.
    chosen: Option<Vec<(u32, f32)>>,
}

/// What the kernels need to work on one row block of the logits.
struct BlockInputs {
    /// Kernels for the block's rows.
    kernels: SubTokenKernels,
    /// The state of the block's positions.
    state: Tensor<1, Int>,
    /// The block's positions as a device index; `None` when it is the whole sequence.
    index: Option<Tensor<1, Int>>,
}

/// Where each position's row lands among the rows of `logits`' blocks (in block order), and
/// how many rows there are: a position without a row lands on that count, where the caller
/// puts a sentinel after the blocks' outputs.
fn landing(logits: &Logits, length: usize) -> (Vec<i32>, usize) {
    let mut landing = vec![-1i32; length];
    let mut rows = 0;
    for block in logits.blocks() {
        for (n, &i) in block.positions.iter().enumerate() {
            landing[i as usize] = (rows + n) as i32;
        }
        rows += block.positions.len();
    }
    landing.iter_mut().filter(|r| **r < 0).for_each(|r| *r = rows as i32);
    (landing, rows)
}

/// Runs steps on the device (see the module docs).
#[derive(Debug)]
pub struct DeviceExecutor {
    kernels: SubTokenKernels,
    device: Device,
    state: Tensor<1, Int>,
    /// The host copy of the state, while it is current.
    host_state: Option<Vec<u32>>,
    /// Event-driven mode: each slot's planned step (−1: the final step).
    planned: Option<Tensor<1, Int>>,
    /// The network output and, when truncating, the cutoffs of each of its row blocks.
    cache: Option<(Logits, Option<Vec<Cutoffs>>)>,
    sync_states: bool,
    stage: Stage,
}

impl DeviceExecutor {
    /// An executor for `sampler` on `device` along `path`. With `sync_states`, every step
    /// reads the state back so that every event carries it.
    pub fn new(sampler: &Sampler, path: KernelPath, device: &Device, sync_states: bool) -> Result<Self> {
        // The twin cutoffs sort, which Burn's wgpu backend does with a blocking read: a
        // browser's WebGPU cannot.
        if cfg!(target_arch = "wasm32")
            && path == KernelPath::Twin
            && sampler.settings().truncates()
            && KernelPath::for_device(device) == KernelPath::Shader
        {
            return Err(PrimeError::Input(
                "the twin executor cannot truncate (top-k / top-p) on WebGPU in a browser: use executor `auto` or `host`"
                    .into(),
            ));
        }
        let shape = sampler.shape();
        let kernels = SubTokenKernels::new(&shape.codec, shape.length, shape.output_width, path, device)?;
        let planned = sampler
            .planned_steps()
            .map(|steps| int_tensor(steps.iter().map(|s| s.map_or(-1, |k| k as i32)).collect(), device));
        Ok(Self {
            kernels,
            device: device.clone(),
            state: state_tensor(sampler.initial_state(), device),
            host_state: Some(sampler.initial_state().to_vec()),
            planned,
            cache: None,
            sync_states,
            stage: Stage::Start,
        })
    }

    /// The truncation cutoffs of each row block of `logits` (the cutoff kernel), in block order.
    fn cutoffs(&self, sampler: &Sampler, logits: &Logits) -> Result<Vec<Cutoffs>> {
        let settings = sampler.settings();
        logits
            .blocks()
            .map(|block| {
                let inputs = self.block_inputs(sampler, &block.positions)?;
                inputs.kernels.cutoffs(
                    block.rows.clone(),
                    inputs.state,
                    1.0 / settings.temperature,
                    settings.top_k,
                    settings.top_p,
                    settings.carry_over,
                )
            })
            .collect()
    }

    /// The kernels, state and index of the row block of `positions` (the whole sequence's
    /// own when it holds every position).
    fn block_inputs(&self, sampler: &Sampler, positions: &[u32]) -> Result<BlockInputs> {
        let shape = sampler.shape();
        let (l, length, rows) = (shape.codec.digits(), shape.length, positions.len());
        if rows == length {
            return Ok(BlockInputs { kernels: self.kernels.clone(), state: self.state.clone(), index: None });
        }
        let kernels = SubTokenKernels::new(&shape.codec, rows, shape.output_width, self.kernels.path(), &self.device)?;
        let index = int_tensor(positions.iter().map(|&i| i as i32).collect(), &self.device);
        let state = self.state.clone().reshape([length, l]).select(0, index.clone()).reshape([rows * l]);
        Ok(BlockInputs { kernels, state, index: Some(index) })
    }

    /// The cached network output of this step and, where `plan` truncates, its row blocks'
    /// cutoffs (a final step reuses a truncating step's output without them).
    fn network_output(&self, plan: &StepPlan) -> Result<(&Logits, Option<&[Cutoffs]>)> {
        let (logits, cutoffs) =
            self.cache.as_ref().ok_or_else(|| PrimeError::Device("the step has no network output".into()))?;
        Ok((logits, if plan.truncate { cutoffs.as_deref() } else { None }))
    }

    /// An adaptive step: scores every masked slot of every row block on the device and asks
    /// for the scores (confidences, then entropies, row by row).
    fn score(&mut self, sampler: &Sampler, plan: &StepPlan) -> Result<Progress> {
        let settings = sampler.settings();
        let (logits, cutoffs) = self.network_output(plan)?;
        let (mut confidence, mut entropy, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for (b, block) in logits.blocks().enumerate() {
            let inputs = self.block_inputs(sampler, &block.positions)?;
            let scores = inputs.kernels.digit_scores(
                block.rows.clone(),
                inputs.state,
                1.0 / settings.temperature,
                cutoffs.and_then(|c| c.get(b)),
                settings.carry_over,
            )?;
            confidence.push(scores.confidence);
            entropy.push(scores.entropy);
            rows.extend_from_slice(&block.positions);
        }
        self.stage = Stage::Scores(rows);
        let floats = vec![Tensor::cat(confidence, 0), Tensor::cat(entropy, 0)];
        Ok(Progress::Read(Box::new(Readback { ints: None, floats })))
    }

    /// The policy's choice from the scores read (see [`Self::score`]) of the rows `rows`.
    fn choose(sampler: &Sampler, plan: &StepPlan, rows: &[u32], values: &HostValues) -> Result<Vec<(u32, f32)>> {
        let l = sampler.shape().codec.digits();
        let n = rows.len() * l;
        if values.floats.len() != 2 * n {
            return Err(PrimeError::Device(format!("read {} digit scores, expected {}", values.floats.len(), 2 * n)));
        }
        let (confidence, entropy) = values.floats.split_at(n);
        let mut scores = Vec::new();
        for (r, &i) in rows.iter().enumerate() {
            for j in 0..l {
                let slot = i * l as u32 + j as u32;
                if !sampler.is_masked_slot(slot) {
                    continue;
                }
                let (c, e) = (confidence[r * l + j], entropy[r * l + j]);
                if c < 0.0 {
                    return Err(PrimeError::Device(format!(
                        "position {i} has no candidate token consistent with its revealed digits"
                    )));
                }
                scores.push(DigitScore { slot, confidence: c, entropy: e });
            }
        }
        sampler.select_reveals(plan, &scores)
    }

    /// The draw of `request` (over the whole sequence, without cutoffs) from every row block
    /// of `logits`: each block draws its rows with the state and active flags of its
    /// positions and its own `cutoffs`, its noise keyed on them, so the blocks draw what one
    /// whole output would. Positions without a row (their logits were not computed: nothing is
    /// drawn there) get −1, as inactive ones do.
    fn draw(
        &self,
        sampler: &Sampler,
        logits: &Logits,
        cutoffs: Option<&[Cutoffs]>,
        request: &DrawRequest,
    ) -> Result<Tensor<1, Int>> {
        let length = sampler.shape().length;
        let carry_over = sampler.settings().carry_over;
        let mut drawn = Vec::with_capacity(logits.block_count() + 1);
        for (b, block) in logits.blocks().enumerate() {
            let inputs = self.block_inputs(sampler, &block.positions)?;
            let cutoffs = cutoffs.and_then(|c| c.get(b)).cloned();
            let part = match inputs.index {
                None => DrawRequest { cutoffs, ..request.clone() },
                Some(index) => DrawRequest {
                    active: request.active.clone().select(0, index),
                    cutoffs,
                    positions: block.positions.clone(),
                    ..request.clone()
                },
            };
            drawn.push(inputs.kernels.draw(block.rows.clone(), inputs.state, &part, carry_over)?);
        }
        let (landing, rows) = landing(logits, length);
        if rows == length && drawn.len() == 1 {
            return drawn.pop().ok_or_else(|| PrimeError::Device("no draw".into()));
        }
        drawn.push(int_tensor(vec![-1], &self.device));
        Ok(Tensor::cat(drawn, 0).select(0, int_tensor(landing, &self.device)))
    }

    /// Scores first for an adaptive step, else goes straight to the work.
    fn begin(&mut self, sampler: &Sampler, plan: &StepPlan) -> Result<Progress> {
        if plan.adaptive && plan.draws_tokens() {
            return self.score(sampler, plan);
        }
        self.work(sampler, plan, None)
    }

    /// Draws and reveals on the device (an adaptive step: the `chosen` slots), then asks for
    /// what the step must report.
    fn work(&mut self, sampler: &Sampler, plan: &StepPlan, chosen: Option<Vec<(u32, f32)>>) -> Result<Progress> {
        let settings = sampler.settings();
        let length = sampler.shape().length;
        let before = if plan.record { self.host_state.clone() } else { None };
        let chosen_slots: Option<Vec<u32>> = chosen.as_ref().map(|c| c.iter().map(|&(slot, _)| slot).collect());
        let reveals = chosen_slots.as_ref().map_or(!plan.reveals.is_empty(), |c| !c.is_empty());
        let mut x0 = None;
        if plan.draws_tokens() {
            let (logits, cutoffs) = self.network_output(plan)?;
            let mut active = vec![0i32; length];
            plan.draws.iter().for_each(|&i| active[i as usize] = 1);
            let request = DrawRequest {
                seed: settings.seed,
                step: plan.step as u32,
                inv_temperature: 1.0 / settings.temperature,
                noise: plan.noise,
                active: int_tensor(active, &self.device),
                cutoffs: None,
                positions: Vec::new(),
            };
            let drawn = self.draw(sampler, logits, cutoffs, &request)?;
            if reveals {
                let rule = match (&chosen, &self.planned, plan.is_final) {
                    (_, _, true) => RevealRule::Probability(1.0),
                    (Some(chosen), _, false) => {
                        let mut at = vec![-1i32; length * sampler.shape().codec.digits()];
                        chosen.iter().for_each(|&(slot, _)| at[slot as usize] = plan.step as i32);
                        RevealRule::Planned(Box::new(int_tensor(at, &self.device)))
                    }
                    (None, Some(planned), false) => RevealRule::Planned(Box::new(planned.clone())),
                    (None, None, false) => RevealRule::Probability(sampler.reveal_probability(plan.step)),
                };
                let next =
                    self.kernels.reveal(self.state.clone(), drawn.clone(), settings.seed, plan.step as u32, rule)?;
                self.state = next.state;
            }
            x0 = Some(drawn);
        }
        let partly_revealed = match &chosen_slots {
            Some(slots) if plan.record => sampler.partly_revealed_after(slots),
            _ => plan.partly_revealed.clone(),
        };
        let candidates = match (&self.cache, partly_revealed.is_empty()) {
            (Some((logits, _)), false) => Some(top_consistent_on_device(
                &sampler.shape().codec,
                logits,
                self.state.clone(),
                &partly_revealed,
                settings.temperature,
                RECORDED_CANDIDATES,
            )),
            _ => None,
        };
        if !plan.is_idle() && !self.syncs(plan) {
            // The state changes on the device without being read: the host copy is stale.
            self.host_state = None;
        }
        let layout = Layout {
            before,
            state: self.syncs(plan) && (reveals || self.host_state.is_none()),
            x0: plan.record && x0.is_some(),
            candidates,
            chosen,
        };
        let mut ints = Vec::new();
        if layout.state {
            ints.push(self.state.clone());
        }
        if let (true, Some(x0)) = (layout.x0, x0) {
            ints.push(x0);
        }
        let mut floats = Vec::new();
        if let Some(c) = &layout.candidates {
            ints.extend([c.tokens.clone(), c.counts.clone()]);
            floats.push(c.probs.clone());
        }
        if ints.is_empty() && floats.is_empty() {
            return self.finish(sampler, plan, layout, HostValues::default());
        }
        let ints = (!ints.is_empty()).then(|| Tensor::cat(ints, 0));
        self.stage = Stage::Finish(Box::new(layout));
        Ok(Progress::Read(Box::new(Readback { ints, floats })))
    }

    /// Whether this step reports the state.
    fn syncs(&self, plan: &StepPlan) -> bool {
        self.sync_states || plan.record || plan.is_final
    }

    /// Turns the values read at the end of a step into its result.
    fn finish(&mut self, sampler: &Sampler, plan: &StepPlan, layout: Layout, values: HostValues) -> Result<Progress> {
        let shape = sampler.shape();
        let mut ints = values.ints.as_slice();
        let mut take = |n: usize| -> Result<Vec<i32>> {
            if ints.len() < n {
                return Err(PrimeError::Device(format!("read {} values, expected at least {n} more", ints.len())));
            }
            let (head, rest) = ints.split_at(n);
            ints = rest;
            Ok(head.to_vec())
        };
        if layout.state {
            let state = take(shape.length * shape.codec.digits())?;
            self.host_state = Some(state.iter().map(|&d| d as u32).collect());
        }
        let x0: Vec<Option<u32>> = if layout.x0 {
            take(shape.length)?.iter().map(|&t| u32::try_from(t).ok()).collect()
        } else {
            vec![None; shape.length]
        };
        let candidates = match &layout.candidates {
            Some(c) => {
                let n = c.positions.len();
                c.to_host(&take(n * c.k + n)?, &values.floats)
            }
            None => Vec::new(),
        };
        let state = if self.syncs(plan) { self.host_state.clone() } else { None };
        let guesses = match (&layout.before, &state) {
            (Some(before), Some(after)) => sampler.guesses(plan, before, after, &x0),
            _ => Vec::new(),
        };
        let (reveals, scores) = match layout.chosen {
            Some(chosen) => {
                let (slots, scores) = chosen.into_iter().unzip();
                (Some(slots), scores)
            }
            None => (None, Vec::new()),
        };
        Ok(Progress::Done(StepResult { state, guesses, candidates, reveals, scores }))
    }
}

impl Executor for DeviceExecutor {
    fn network_input(&self, _device: &Device) -> Tensor<1, Int> {
        self.state.clone()
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
        match (std::mem::take(&mut self.stage), values) {
            (Stage::Start, None) => {
                if plan.call_network {
                    let logits = denoiser.logits(sampler.network_input(self.state.clone()))?;
                    let cutoffs = if plan.truncate { Some(self.cutoffs(sampler, &logits)?) } else { None };
                    self.cache = Some((logits, cutoffs));
                }
                self.begin(sampler, plan)
            }
            (Stage::Scores(rows), Some(values)) => {
                let chosen = Self::choose(sampler, plan, &rows, &values)?;
                self.work(sampler, plan, Some(chosen))
            }
            (Stage::Finish(layout), Some(values)) => self.finish(sampler, plan, *layout, values),
            _ => Err(PrimeError::Device("the device executor was advanced out of order".into())),
        }
    }
}
