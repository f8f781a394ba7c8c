//! What the sampler reports: one event per step, and the outcome.

use serde::{Deserialize, Serialize};

/// The state after one sampler step; the CLI, the trajectory file and the page consume the
/// same events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    /// Step index: 0..T−1 for loop steps, T for the final noise-removal step.
    pub step: usize,
    /// Number of loop steps T.
    pub steps: usize,
    /// Time t of the step (1 at the first step).
    pub t: f32,
    /// Whether this was the final noise-removal step.
    pub is_final: bool,
    /// Every sub-token after the step, flat (token i, digit j at i·ℓ + j); the mask id marks
    /// masks. Empty when a device run was not asked to read states back.
    pub state: Vec<u32>,
    /// Flat sub-token slots revealed by this step.
    pub revealed: Vec<u32>,
    /// Under an adaptive reveal policy, the score that chose each slot of `revealed` (its
    /// digit confidence, or its digit entropy in nats); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<f32>,
    /// Per token, the model's current guess (x0 drawn this step, or the token once revealed);
    /// empty unless guesses are recorded.
    pub guesses: Vec<Option<u32>>,
    /// Recorded with the guesses: what each partly revealed token (0 < k < ℓ digits known
    /// after the step) can still become under the network output the step used.
    pub candidates: Vec<PositionCandidates>,
    /// Whether the state did not change (an idle step).
    pub idle: bool,
    /// Whether this step used a fresh network output rather than the cache.
    pub network_called: bool,
    /// Network calls so far.
    pub nfe: usize,
    /// Idle loop steps so far.
    pub idle_steps: usize,
}

/// What one partly revealed token can still become.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionCandidates {
    /// Token position.
    pub position: u32,
    /// How many vocabulary tokens agree with its revealed digits.
    pub count: u32,
    /// The most likely of them with their probability under the carry-over-filtered,
    /// temperature-scaled distribution, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// The result of a finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The generated token ids (L of them).
    pub tokens: Vec<u32>,
    /// Loop steps T.
    pub steps: usize,
    /// Network calls, the final one included.
    pub nfe: usize,
    /// Loop steps whose state did not change.
    pub idle_steps: usize,
    /// Sub-tokens masked at the start.
    pub masked_at_start: usize,
}
