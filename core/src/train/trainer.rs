//! The training loop's state: model, AdamW, EMA weights, step counter, checkpoints.
//!
//! Every random draw (windows, times, masks) is keyed on the step, so a run resumed from a
//! checkpoint takes exactly the batches an uninterrupted run would have taken.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, grad_clipping::GradientClippingConfig};
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::corpus::TokenCorpus;
use super::ema;
use super::init::initial_weights;
use super::noise::{NoiseSchedule, NoisedBatch};
use super::objective::Objective;
use super::schedule::LearningRateSchedule;
use crate::config::ModelConfig;
use crate::error::{PrimeError, Result};
use crate::network::Network;
use crate::readback::read_f32;
use crate::rng::{CounterRng, Stream};
use crate::weights::WeightFile;

/// Hyper-parameters of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Sequences per step.
    pub batch_size: usize,
    /// Learning-rate schedule (its `total` is the planned number of steps).
    pub schedule: LearningRateSchedule,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Gradient-norm clipping threshold.
    pub grad_clip: f32,
    /// EMA decay per step.
    pub ema_decay: f64,
    /// Seed of initial weights and of every training draw.
    pub seed: u64,
}

/// How many forward passes' worth of intermediates a training step keeps (the forward pass,
/// its saved activations for the backward pass, and the gradients): a rough factor for the
/// memory estimate of a batch.
const TRAINING_MEMORY_FACTOR: usize = 4;

impl TrainSettings {
    /// Rejects settings outside their domain, and batches whose estimated memory (see
    /// [`ModelConfig::footprint`]) exceeds the limit.
    pub fn validate(&self, config: &ModelConfig) -> Result<()> {
        let bad = |m: String| Err(PrimeError::Training(m));
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        let rate = self.schedule.peak;
        if !(rate > 0.0 && rate.is_finite()) {
            return bad(format!("the learning rate must be a positive number, got {rate}"));
        }
        if self.schedule.total == 0 {
            return bad("the planned number of steps must be positive".into());
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad(format!("the EMA decay must be in [0, 1), got {}", self.ema_decay));
        }
        let rows = self.batch_size.saturating_mul(TRAINING_MEMORY_FACTOR);
        config
            .footprint()
            .check(rows)
            .map_err(|e| PrimeError::Training(format!("batch_size = {}: {e}", self.batch_size)))
    }
}

/// What a checkpoint folder records beside the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    config: ModelConfig,
    settings: TrainSettings,
    step: usize,
}

const STATE_FILE: &str = "trainer.json";
const MODEL_FILE: &str = "model.bpk";
const EMA_FILE: &str = "ema.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// Wall time of each phase of the last training step, in seconds. On the CPU every phase runs
/// when it is called; on a GPU the work is queued, and the loss read after the forward pass is
/// where the queue is drained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StepTimes {
    /// Cutting the windows and drawing the noised batch.
    pub data: f64,
    /// The forward pass and the loss (read back).
    pub forward: f64,
    /// The backward pass.
    pub backward: f64,
    /// Gradient clipping and the AdamW update.
    pub optimizer: f64,
    /// The EMA update.
    pub ema: f64,
}

impl StepTimes {
    /// The mean of each phase over `steps` (zero for none).
    pub fn mean(steps: &[StepTimes]) -> Self {
        let n = steps.len().max(1) as f64;
        let total = |phase: fn(&StepTimes) -> f64| steps.iter().map(phase).sum::<f64>() / n;
        Self {
            data: total(|t| t.data),
            forward: total(|t| t.forward),
            backward: total(|t| t.backward),
            optimizer: total(|t| t.optimizer),
            ema: total(|t| t.ema),
        }
    }
}

/// The share of training rows a class-conditioned network is shown "no class" instead of the
/// row's label (as in classifier-free guidance training).
pub const CLASS_DROPOUT: f32 = 0.1;

/// A training run in memory.
pub struct Trainer {
    config: ModelConfig,
    settings: TrainSettings,
    model: Network,
    ema: Network,
    optimizer: ModuleOptimizer,
    objective: Objective,
    rng: CounterRng,
    step: usize,
    times: StepTimes,
    /// Slices of the batch run side by side (on the CPU, one per core; elsewhere 1).
    shards: usize,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("config", &self.config).field("step", &self.step).finish_non_exhaustive()
    }
}

impl Trainer {
    /// A fresh run on `device` (a plain device; autodiff is added here).
    pub fn new(config: ModelConfig, settings: TrainSettings, device: &Device) -> Result<Self> {
        let weights = initial_weights(&config, settings.seed)?;
        Self::starting_from(config, settings, device, weights)
    }

    /// A fresh run whose network starts from `weights` (every tensor `config` implies, e.g. a
    /// trained model's, to train further) instead of a seeded init.
    pub fn starting_from(
        config: ModelConfig,
        settings: TrainSettings,
        device: &Device,
        mut weights: WeightFile,
    ) -> Result<Self> {
        config.validate()?;
        settings.validate(&config)?;
        let model = Network::load(&config, &mut weights, &device.clone().autodiff(), usize::MAX)?;
        let ema = model.valid();
        let optimizer = optimizer(&settings);
        let objective = Objective::new(&config)?;
        let rng = CounterRng::new(settings.seed);
        // burn-flex runs most elementwise ops on one core: slices of the batch on every core
        // keep them all busy. A GPU queue gains nothing from it.
        let shards = if *device == Device::flex() { rayon::current_num_threads() } else { 1 };
        Ok(Self {
            config,
            settings,
            model,
            ema,
            optimizer,
            objective,
            rng,
            step: 0,
            times: StepTimes::default(),
            shards,
        })
    }

    /// Runs each batch as `shards` slices side by side (at least 1; by default one per core
    /// on the CPU and 1 on a GPU). The step's loss and gradients are the same up to rounding.
    #[must_use]
    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The run's settings.
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// Plans `total` steps instead of the current total (only ever more): the cosine decay is
    /// stretched to the new end, so a finished run can be continued.
    pub fn extend_to(&mut self, total: usize) {
        self.settings.schedule.total = self.settings.schedule.total.max(total);
    }

    /// The EMA weights (used for sampling and validation).
    pub fn ema(&self) -> &Network {
        &self.ema
    }

    /// Where the last step's time went.
    pub fn last_step_times(&self) -> StepTimes {
        self.times
    }

    /// One optimiser step on a fresh batch from `corpus`; returns the batch loss.
    pub fn train_step(&mut self, corpus: &TokenCorpus) -> Result<f32> {
        let mut clock = std::time::Instant::now();
        let mut lap = || {
            let now = std::time::Instant::now();
            let seconds = (now - clock).as_secs_f64();
            clock = now;
            seconds
        };
        let step = u32::try_from(self.step).map_err(|_| PrimeError::Input("too many steps".into()))?;
        let length = self.config.length;
        let windows: Vec<&[u32]> = (0..self.settings.batch_size as u32)
            .map(|row| corpus.random_window(&self.rng, step, row, length))
            .collect();
        let mut batch = NoisedBatch::draw(&windows, self.objective.codec(), &self.rng, step, NoiseSchedule::Training);
        if let Some(none) = self.model.no_class() {
            batch.classes = self.classes(corpus, step, none)?;
        }
        let data = lap();
        let shards = self.shards.min(batch.batch).max(1);
        let passes: Vec<Result<ShardPass>> = if shards == 1 {
            vec![shard_pass(&self.model, &self.objective, &batch, 1.0)]
        } else {
            (0..shards)
                .into_par_iter()
                .map(|s| {
                    let rows = batch.rows(s * batch.batch / shards..(s + 1) * batch.batch / shards);
                    let share = rows.batch as f32 / batch.batch as f32;
                    // Its own copy of the parameters (same ids, a graph of its own), so the
                    // shards' graphs stay apart and run their backward passes side by side.
                    let model = self.model.clone().fork(&self.model.device());
                    shard_pass(&model, &self.objective, &rows, share)
                })
                .collect()
        };
        let wall = lap();
        let mut value = 0.0;
        let mut forward = 0.0;
        let mut grads: Option<GradientsParams> = None;
        for pass in passes {
            let pass = pass?;
            value += pass.loss;
            forward += pass.forward / shards as f64;
            grads = Some(match grads {
                Some(mut total) => {
                    self.model.visit(&mut AddGradients { total: &mut total, from: pass.grads });
                    total
                }
                None => pass.grads,
            });
        }
        if !value.is_finite() {
            return Err(PrimeError::Training(format!("the loss is {value} at step {}", self.step)));
        }
        let grads = grads.unwrap_or_default();
        let backward = wall + lap() - forward;
        let lr = self.settings.schedule.at(self.step);
        self.model = self.optimizer.step(lr, self.model.clone(), grads);
        let optimizer = lap();
        self.ema = ema::update(self.ema.clone(), &self.model.valid(), self.settings.ema_decay);
        self.times = StepTimes { data, forward, backward, optimizer, ema: lap() };
        self.step += 1;
        Ok(value)
    }

    /// The class of each row of the batch at `step`: its record's label, or "no class" (`none`)
    /// for a share [`CLASS_DROPOUT`] of rows (a draw keyed on the step and row), so that the
    /// network also learns to generate without one.
    fn classes(&self, corpus: &TokenCorpus, step: u32, none: u32) -> Result<Vec<u32>> {
        (0..self.settings.batch_size as u32)
            .map(|row| {
                let label = corpus.random_label(&self.rng, step, row, self.config.length).ok_or_else(|| {
                    PrimeError::Training(
                        "the model is conditioned on classes, but the training data has no labels".into(),
                    )
                })?;
                let dropped = self.rng.uniform(Stream::TrainSample, step, row, 3) < CLASS_DROPOUT;
                Ok(if dropped { none } else { label })
            })
            .collect()
    }

    /// Writes a checkpoint into `dir` (created if needed; replaced atomically per file).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| PrimeError::io(dir, e))?;
        let record = |e: burn::store::RecordError| PrimeError::Weights(format!("writing a checkpoint: {e}"));
        let tmp = |name: &str| dir.join(format!("{name}.partial"));
        self.model.clone().save_file(tmp(MODEL_FILE)).map_err(record)?;
        self.ema.clone().save_file(tmp(EMA_FILE)).map_err(record)?;
        self.optimizer.save(tmp(OPTIMIZER_FILE)).map_err(record)?;
        let state = CheckpointState { config: self.config.clone(), settings: self.settings.clone(), step: self.step };
        let json = serde_json::to_string_pretty(&state).map_err(|e| PrimeError::Config(e.to_string()))?;
        std::fs::write(tmp(STATE_FILE), json).map_err(|e| PrimeError::io(&tmp(STATE_FILE), e))?;
        // The state file goes last: a checkpoint whose trainer.json is present is complete.
        for name in [MODEL_FILE, EMA_FILE, OPTIMIZER_FILE, STATE_FILE] {
            std::fs::rename(tmp(name), dir.join(name)).map_err(|e| PrimeError::io(&dir.join(name), e))?;
        }
        Ok(())
    }

    /// Resumes the run saved in `dir`.
    pub fn resume(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| PrimeError::io(&path, e))?;
        let state: CheckpointState =
            serde_json::from_str(&text).map_err(|e| PrimeError::Config(format!("{}: {e}", path.display())))?;
        let mut run = Self::new(state.config, state.settings, device)?;
        let record =
            |name: &str, e: burn::store::RecordError| PrimeError::Weights(format!("{}: {e}", dir.join(name).display()));
        run.model = run.model.try_load_file(dir.join(MODEL_FILE)).map_err(|e| record(MODEL_FILE, e))?;
        run.ema = run.ema.try_load_file(dir.join(EMA_FILE)).map_err(|e| record(EMA_FILE, e))?;
        run.optimizer =
            optimizer(&run.settings).load(dir.join(OPTIMIZER_FILE)).map_err(|e| record(OPTIMIZER_FILE, e))?;
        run.step = state.step;
        Ok(run)
    }
}

/// One slice of a batch, through the network and back.
struct ShardPass {
    /// Its share of the loss.
    loss: f32,
    /// Its share of the gradients.
    grads: GradientsParams,
    /// Seconds of the forward pass.
    forward: f64,
}

/// The forward and backward pass of `model` on `batch`, the loss scaled by `share` (the slice's
/// fraction of the step's rows, so that the slices' losses and gradients add up to the step's).
fn shard_pass(model: &Network, objective: &Objective, batch: &NoisedBatch, share: f32) -> Result<ShardPass> {
    let clock = std::time::Instant::now();
    let constants = model.constants();
    let hidden = model.hidden(&constants, batch.input(&model.device()), &batch.classes, None);
    let loss = objective.head_loss(model.output_head(), hidden, batch, share);
    let value = read_f32(loss.clone().detach(), "the loss")?.first().copied().unwrap_or(f32::NAN);
    let forward = clock.elapsed().as_secs_f64();
    Ok(ShardPass { loss: value, grads: GradientsParams::from_grads(loss.backward(), model), forward })
}

/// Adds the gradients in `from` to those in `total`, parameter by parameter.
struct AddGradients<'a> {
    total: &'a mut GradientsParams,
    from: GradientsParams,
}

impl ModuleVisitor for AddGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(more) = self.from.remove::<D>(param.id) else { return };
        let sum = match self.total.remove::<D>(param.id) {
            Some(before) => before + more,
            None => more,
        };
        self.total.register::<D>(param.id, sum);
    }
}

fn optimizer(settings: &TrainSettings) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(settings.weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(settings.grad_clip)))
        .init()
}
