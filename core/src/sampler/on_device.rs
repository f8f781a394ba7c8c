//! The sampler driven on the compute device with the sub-token kernels: the state, the network
//! output and the draws stay on the device. Which slots a step reveals does not depend on the
//! network (ancestral: the reveal uniforms of the still-masked slots; event-driven: the plan), so
//! the host tracks the mask pattern itself and a loop step reads nothing back unless the caller
//! asks for every state or for the guesses; the final step reads the state once.
//!
//! It takes the same steps as [`super::run`] with the same random stream (x0 keyed on
//! (step, position, token), reveals on (step, position, digit)), so it produces the same
//! tokens, up to the platform's `ln` in the Gumbel noise (see [`crate::kernels`]).

use std::ops::ControlFlow;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

use super::{Cutoff, Outcome, Phase, Sampler, StepEvent};
use crate::error::{PrimeError, Result};
use crate::kernels::{Cutoffs, DrawRequest, KernelPath, RevealRule, SubTokenKernels};
use crate::model::Model;
use crate::network::{read_f32, read_i32};
use crate::sampler::FinalRule;

/// A network whose output stays on the compute device.
pub trait DeviceDenoiser {
    /// The device the state and logits live on.
    fn device(&self) -> &Device;
    /// Logits (L × V_out) of one sequence's sub-token state (ℓ·L ids).
    fn logits_on_device(&mut self, state: Tensor<1, Int>) -> Result<Tensor<2>>;
}

impl DeviceDenoiser for Model {
    fn device(&self) -> &Device {
        Model::device(self)
    }

    fn logits_on_device(&mut self, state: Tensor<1, Int>) -> Result<Tensor<2>> {
        self.forward_on_device(state)
    }
}

/// How a device run reports its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Which implementation of the kernels to use.
    pub path: KernelPath,
    /// Read every changed state back so that each event carries `state`. Without it,
    /// loop-step events carry an empty `state` (their `revealed` slots are always there) and
    /// only the final state is read.
    pub sync_states: bool,
}

/// Host traffic of a device run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStats {
    /// Device-to-host reads (each one a small buffer: a state or a token row; logits only for
    /// top-k / top-p cutoffs).
    pub readbacks: usize,
    /// Steps taken (loop steps plus the final one).
    pub steps: usize,
    /// Steps that launched the draw and reveal kernels (the others were idle).
    pub kernel_steps: usize,
}

fn int_tensor(values: Vec<i32>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Cutoff that keeps every candidate (for positions with nothing left to draw).
const KEEP_ALL: Cutoff = Cutoff { score: f32::MIN, token: i32::MAX as u32 };

impl Sampler {
    /// Runs this sampler to the end on `model`'s device with the sub-token kernels, passing
    /// every step to `on_event`. Returns `Ok(None)` if `on_event` breaks (abort).
    pub fn run_on_device<D: DeviceDenoiser + ?Sized>(
        &mut self,
        model: &mut D,
        options: DeviceOptions,
        mut on_event: impl FnMut(&StepEvent) -> ControlFlow<()>,
    ) -> Result<Option<(Outcome, DeviceStats)>> {
        let device = model.device().clone();
        let (length, l) = (self.shape.length, self.shape.codec.digits());
        let kernels = SubTokenKernels::new(&self.shape.codec, length, self.shape.output_width, options.path, &device)?;
        let to_ids = |v: &[u32]| int_tensor(v.iter().map(|&x| x as i32).collect(), &device);
        let mut state = to_ids(&self.state);
        let all = int_tensor(vec![1; length], &device);
        let plan = self.reveal_plan.as_ref().map(|plan| {
            let mut steps = vec![-1i32; length * l];
            for (k, slots) in plan.iter().enumerate() {
                for &s in slots {
                    steps[s as usize] = k as i32;
                }
            }
            int_tensor(steps, &device)
        });
        let carry_over = self.settings.carry_over;
        let inv_t = 1.0 / self.settings.temperature;
        let mut stats = DeviceStats::default();
        let mut cache: Option<(Tensor<2>, Option<Cutoffs>)> = None;
        let mask = self.shape.codec.mask_id();
        let mut masked: Vec<bool> = self.state.iter().map(|&d| d == mask).collect();
        while !self.is_done() {
            stats.steps += 1;
            let event = match self.phase {
                Phase::Loop(k) if self.planned_idle() => {
                    self.idle_steps += 1;
                    self.advance(k);
                    self.event_on_device(k, Vec::new(), Vec::new(), true, options.sync_states)
                }
                Phase::Loop(k) => {
                    if cache.is_none() {
                        let logits = model.logits_on_device(state.clone())?;
                        let cutoffs = if self.settings.truncates() {
                            stats.readbacks += 1;
                            Some(self.device_cutoffs(read_f32(logits.clone(), "logits")?, &device)?)
                        } else {
                            None
                        };
                        cache = Some((logits, cutoffs));
                        self.nfe += 1;
                        self.fresh = true;
                    }
                    let (logits, cutoffs) = cache.as_ref().ok_or_else(|| PrimeError::Device("no logits".into()))?;
                    let record = self.settings.record_guesses;
                    // Which slots this step reveals does not depend on the network: the plan, or
                    // the ancestral rule on the host's mask pattern (the same uniforms the reveal
                    // kernel draws). So nothing is read back, and only those positions are drawn.
                    let slots = match &self.reveal_plan {
                        Some(p) => p[k].clone(),
                        None => self.ancestral_reveals(k, |s| masked[s]),
                    };
                    slots.iter().for_each(|&s| masked[s as usize] = false);
                    let changed = !slots.is_empty();
                    let mut guesses = Vec::new();
                    // An idle step changes nothing on the device: only draw and reveal when a slot
                    // is revealed, or when every guess is recorded.
                    if changed || record {
                        stats.kernel_steps += 1;
                        let active = if record {
                            all.clone()
                        } else {
                            let mut a = vec![0i32; length];
                            slots.iter().for_each(|&s| a[s as usize / l] = 1);
                            int_tensor(a, &device)
                        };
                        let request = DrawRequest {
                            seed: self.settings.seed,
                            step: k as u32,
                            inv_temperature: inv_t,
                            noise: true,
                            active,
                            cutoffs: cutoffs.clone(),
                        };
                        let x0 = kernels.draw(logits.clone(), state.clone(), &request, carry_over)?;
                        let rule = match &plan {
                            Some(p) => RevealRule::Planned(Box::new(p.clone())),
                            None => RevealRule::Probability(self.grid.reveal_probability(k)),
                        };
                        let next = kernels.reveal(state.clone(), x0.clone(), self.settings.seed, k as u32, rule)?;
                        if record {
                            stats.readbacks += 1;
                            guesses = self.guesses_from(&read_i32(x0, "x0")?);
                        }
                        state = next.state;
                    }
                    if changed {
                        cache = None;
                        // Cutoffs and guesses read the host copy of the state.
                        if options.sync_states || self.settings.truncates() || record {
                            stats.readbacks += 1;
                            let synced = self.sync_state(&read_i32(state.clone(), "the state")?);
                            if synced != slots {
                                return Err(PrimeError::Device(format!(
                                    "step {k}: the device revealed {synced:?}, the reveal rule says {slots:?}"
                                )));
                            }
                        }
                    } else {
                        self.idle_steps += 1;
                    }
                    self.advance(k);
                    self.event_on_device(k, slots, guesses, !changed, options.sync_states)
                }
                Phase::Final => {
                    stats.kernel_steps += 1;
                    let logits = model.logits_on_device(state.clone())?;
                    self.nfe += 1;
                    self.fresh = true;
                    let steps = self.grid.steps() as u32;
                    let request = DrawRequest {
                        seed: self.settings.seed,
                        step: steps,
                        inv_temperature: inv_t,
                        noise: self.shape.final_rule == FinalRule::Sample,
                        active: all.clone(),
                        cutoffs: None,
                    };
                    let x0 = kernels.draw(logits, state.clone(), &request, carry_over)?;
                    let next = kernels.reveal(state, x0, self.settings.seed, steps, RevealRule::Probability(1.0))?;
                    state = next.state.clone();
                    stats.readbacks += 1;
                    let revealed = self.sync_state(&read_i32(next.state, "the state")?);
                    self.phase = Phase::Done;
                    let guesses = if self.settings.record_guesses { self.decoded_tokens() } else { Vec::new() };
                    self.event(steps as usize, self.grid.t(steps as usize), revealed, guesses, false)
                }
                Phase::Done => break,
            };
            self.fresh = false;
            if on_event(&event).is_break() {
                return Ok(None);
            }
        }
        Ok(Some((self.outcome()?, stats)))
    }

    /// An event of a device loop step; without synced states it carries no state.
    fn event_on_device(
        &self,
        k: usize,
        revealed: Vec<u32>,
        guesses: Vec<Option<u32>>,
        idle: bool,
        synced: bool,
    ) -> StepEvent {
        let mut event = self.event(k, self.grid.t(k), revealed, guesses, idle);
        if !synced {
            event.state.clear();
        }
        event
    }

    /// Replaces the host copy of the state; returns the slots that changed.
    fn sync_state(&mut self, device_state: &[i32]) -> Vec<u32> {
        let mut revealed = Vec::new();
        for (s, (&new, old)) in device_state.iter().zip(self.state.iter_mut()).enumerate() {
            if new as u32 != *old {
                *old = new as u32;
                revealed.push(s as u32);
            }
        }
        revealed
    }

    /// Guesses of a step: the draw where the token still has a mask, else the token itself.
    fn guesses_from(&self, x0: &[i32]) -> Vec<Option<u32>> {
        (0..self.shape.length)
            .map(|i| {
                if self.has_mask(i) {
                    u32::try_from(x0[i]).ok()
                } else {
                    self.shape.codec.decode_token(self.digits_of(i)).ok()
                }
            })
            .collect()
    }

    /// Per-position truncation cutoffs of host logits, uploaded (positions without a mask keep
    /// everything).
    fn device_cutoffs(&self, logits: Vec<f32>, device: &Device) -> Result<Cutoffs> {
        let mut score = Vec::with_capacity(self.shape.length);
        let mut token = Vec::with_capacity(self.shape.length);
        for i in 0..self.shape.length {
            let c = if self.has_mask(i) { self.position_cutoff(&logits, i)?.unwrap_or(KEEP_ALL) } else { KEEP_ALL };
            score.push(c.score);
            token.push(c.token as i32);
        }
        Ok(Cutoffs {
            score: Tensor::from_data(TensorData::new(score, [self.shape.length]), device),
            token: int_tensor(token, device),
        })
    }
}
