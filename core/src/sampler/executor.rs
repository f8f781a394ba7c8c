//! What an executor is: the code that carries out the steps a [`super::Sampler`] plans.

use burn::tensor::{Device, Int, Tensor};

use super::{PositionCandidates, Sampler, StepPlan};
use crate::denoiser::Denoiser;
use crate::error::Result;
use crate::logits::Logits;
use crate::readback::{HostValues, Readback};

/// What an executor reports for one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepResult {
    /// The state after the step, when the executor has it on the host (always on the host
    /// path; on the device path when states are synced, and at the final step).
    pub state: Option<Vec<u32>>,
    /// Recorded guesses (see [`Sampler::guesses`]); empty unless the plan records.
    pub guesses: Vec<Option<u32>>,
    /// Recorded candidates of the plan's partly revealed positions.
    pub candidates: Vec<PositionCandidates>,
    /// An adaptive step: the slots the policy chose (see [`Sampler::select_reveals`]),
    /// ascending; `None` for a scheduled step.
    pub reveals: Option<Vec<u32>>,
    /// An adaptive step: the score that chose each of `reveals`.
    pub scores: Vec<f32>,
}

/// Where an executor stands within a step.
#[derive(Debug)]
pub enum Progress {
    /// It needs these device values on the host before it can go on.
    Read(Box<Readback>),
    /// The step's work is done.
    Done(StepResult),
}

impl Progress {
    /// Asks for a network output (L × V_out) on the host.
    pub fn read_logits(logits: &Logits) -> Self {
        Self::Read(Box::new(Readback { ints: None, floats: logits.flat_blocks() }))
    }
}

/// Carries out planned steps. A step is a sequence of [`Executor::advance`] calls: the first
/// gets `None`; each call that answers [`Progress::Read`] is followed by one that gets the
/// values read. The caller does the reads, so the same executor runs blocking or awaited.
pub trait Executor: std::fmt::Debug {
    /// Goes on with `plan` (which `sampler` made); `values` answers the previous call's read.
    fn advance(
        &mut self,
        sampler: &Sampler,
        plan: &StepPlan,
        denoiser: &dyn Denoiser,
        values: Option<HostValues>,
    ) -> Result<Progress>;

    /// The state the next network call is fed (ℓ·L ids on `device`), so that a driver can run
    /// several sequences' calls as one batch before their steps.
    fn network_input(&self, device: &Device) -> Tensor<1, Int>;

    /// Drops the cached network output: the sampler's last commit made it stale, and the next
    /// step that draws calls the network again. Holding it would keep a second L × V logits
    /// tensor alive through that call.
    fn release_output(&mut self);
}
