//! What the sampler reports: one event per step, and the outcome.

use serde::Serialize;

/// The state after one sampler step; the CLI and the page consume the same events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepEvent {
    /// Step index: 0..T−1 for loop steps, T for the final noise-removal step.
    pub step: usize,
    /// Number of loop steps T.
    pub steps: usize,
    /// Time t of the step (1 at the first step).
    pub t: f32,
    /// Whether this was the final noise-removal step.
    pub is_final: bool,
    /// Every sub-token after the step, flat (token i, digit j at i·ℓ + j); the mask id marks masks.
    pub state: Vec<u32>,
    /// Flat sub-token slots revealed by this step.
    pub revealed: Vec<u32>,
    /// Per token, the model's current guess (x0 drawn this step, or the token once revealed);
    /// empty unless guesses are recorded.
    pub guesses: Vec<Option<u32>>,
    /// Whether the state did not change (an idle step).
    pub idle: bool,
    /// Whether this step used a fresh network output rather than the cache.
    pub network_called: bool,
    /// Network calls so far.
    pub nfe: usize,
    /// Idle loop steps so far.
    pub idle_steps: usize,
}

/// The result of a finished generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
