//! Driving a sampler with an executor, blocking or awaited, and counting what is read back.

use std::future::Future;
use std::ops::ControlFlow;
use std::task::{Context, Poll, Waker};

use burn::tensor::Device;
use serde::Serialize;

use super::{DeviceExecutor, Executor, HostExecutor, Outcome, Progress, Sampler, StepEvent};
use crate::denoiser::Denoiser;
use crate::error::{PrimeError, Result};
use crate::kernels::KernelPath;
use crate::logits::NetworkInput;
use crate::readback::{HostValues, Readback};

/// What a run has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    /// Steps taken (loop steps plus the final one).
    pub steps: usize,
    /// Steps that drew tokens (the others were idle and did no sampler work).
    pub draw_steps: usize,
    /// Device-to-host reads.
    pub readbacks: usize,
    /// Bytes read back from the device, in all.
    pub bytes_read: usize,
    /// Bytes read back to take the last step.
    pub last_step_bytes: usize,
}

/// A generation in progress: a [`Sampler`] and the [`Executor`] that carries out its steps.
#[derive(Debug)]
pub struct Run {
    sampler: Sampler,
    executor: Box<dyn Executor>,
    stats: RunStats,
}

impl Run {
    /// Drives `sampler` with `executor`.
    pub fn new(sampler: Sampler, executor: Box<dyn Executor>) -> Self {
        Self { sampler, executor, stats: RunStats::default() }
    }

    /// Drives `sampler` with a [`HostExecutor`].
    pub fn on_host(sampler: Sampler) -> Self {
        let executor = HostExecutor::new(&sampler);
        Self::new(sampler, Box::new(executor))
    }

    /// Drives `sampler` with a [`DeviceExecutor`] on `device` along `path` (see
    /// [`DeviceExecutor::new`]).
    pub fn on_device(sampler: Sampler, path: KernelPath, device: &Device, sync_states: bool) -> Result<Self> {
        let executor = DeviceExecutor::new(&sampler, path, device, sync_states)?;
        Ok(Self::new(sampler, Box::new(executor)))
    }

    /// The sampler (its state, settings and counters).
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    /// What the run has done so far.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    /// Whether the final step has been taken.
    pub fn is_done(&self) -> bool {
        self.sampler.is_done()
    }

    /// Whether the next step calls the network. Fails once sampling is over.
    pub fn next_calls_network(&mut self) -> Result<bool> {
        Ok(self.sampler.plan()?.call_network)
    }

    /// What the next network call is fed: the state on `device` and the rows the sampler
    /// needs (see [`super::run_together`]).
    pub fn network_input(&self, device: &Device) -> NetworkInput {
        self.sampler.network_input(self.executor.network_input(device))
    }

    /// The result, once the final step has been taken.
    pub fn outcome(&self) -> Result<Outcome> {
        self.sampler.outcome()
    }

    /// Takes one step; `read` turns each requested read-back into host values.
    async fn step_with<F, R>(&mut self, denoiser: &dyn Denoiser, mut read: R) -> Result<StepEvent>
    where
        R: FnMut(Readback) -> F,
        F: Future<Output = Result<HostValues>>,
    {
        let plan = self.sampler.plan()?;
        let mut bytes = 0;
        let mut values = None;
        loop {
            match self.executor.advance(&self.sampler, &plan, denoiser, values.take())? {
                Progress::Read(readback) => {
                    let v = read(*readback).await?;
                    bytes += v.bytes();
                    self.stats.readbacks += 1;
                    values = Some(v);
                }
                Progress::Done(result) => {
                    let draws = plan.draws_tokens();
                    let event = self.sampler.commit(plan, result)?;
                    if !self.sampler.output_is_fresh() {
                        self.executor.release_output();
                    }
                    self.stats.steps += 1;
                    self.stats.draw_steps += usize::from(draws);
                    self.stats.bytes_read += bytes;
                    self.stats.last_step_bytes = bytes;
                    return Ok(event);
                }
            }
        }
    }

    /// Takes one step, blocking on every read (native).
    pub fn step(&mut self, denoiser: &dyn Denoiser) -> Result<StepEvent> {
        let future = self.step_with(denoiser, |r| std::future::ready(r.read()));
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(PrimeError::Device("a blocking step was suspended".into())),
        }
    }

    /// Takes one step, awaiting every read (a browser's WebGPU allows no other kind).
    pub async fn step_async(&mut self, denoiser: &dyn Denoiser) -> Result<StepEvent> {
        self.step_with(denoiser, Readback::read_async).await
    }

    /// Runs to the end, blocking, passing every step to `on_event`. Returns `Ok(None)` if
    /// `on_event` breaks (abort).
    pub fn run(
        &mut self,
        denoiser: &dyn Denoiser,
        mut on_event: impl FnMut(&StepEvent) -> ControlFlow<()>,
    ) -> Result<Option<Outcome>> {
        while !self.is_done() {
            let event = self.step(denoiser)?;
            if on_event(&event).is_break() {
                return Ok(None);
            }
        }
        self.outcome().map(Some)
    }
}
