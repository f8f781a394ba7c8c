//! One generation in the browser: `prime-core`'s generation layer (the device executor on
//! WebGPU, the host executor on the CPU), every read awaited, every step turned into a
//! trajectory record for the page.

use prime_core::trajectory::{Ending, Header, Recorder, StepRecord};
use prime_core::{GenerationRequest, Model, Result, Run};
use serde::Serialize;

/// What the page receives for one step: its trajectory record and, after the final step, the
/// trajectory's ending.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepMessage {
    /// The step's record (as in a trajectory file).
    #[serde(flatten)]
    pub record: StepRecord,
    /// The outcome and text, after the final step.
    pub ending: Option<Ending>,
}

/// A generation in progress.
#[derive(Debug)]
pub struct Session {
    run: Run,
    recorder: Recorder,
    header: Header,
}

impl Session {
    /// Starts a generation of `model` for `request` on the device named `device`. What the
    /// page shows is always recorded (guesses and candidates); it does not change the tokens.
    pub fn new(model: &Model, request: &GenerationRequest, device: &str) -> Result<Self> {
        let mut request = request.clone();
        request.settings.record_guesses = true;
        let executor = request.resolve_executor(model)?.name();
        let run = request.start(model)?;
        let header = Header::new(model, &request, &run, executor, device);
        Ok(Self { run, recorder: Recorder::default(), header })
    }

    /// The trajectory header of this generation.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Takes one step (the reads are awaited, never blocking) and records it.
    pub async fn step(&mut self, model: &Model) -> Result<StepMessage> {
        let event = self.run.step_async(model).await?;
        let record = self.recorder.record(model, &event, self.run.stats().last_step_bytes)?;
        let ending = if event.is_final { Some(Ending::of(model, &self.run)?) } else { None };
        Ok(StepMessage { record, ending })
    }

    /// Whether the final step has been taken.
    pub fn is_done(&self) -> bool {
        self.run.is_done()
    }
}
